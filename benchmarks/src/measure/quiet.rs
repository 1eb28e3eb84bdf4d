//! Measurement 6, the first request after a quiet spell: the client waits 250 ms, then
//! connects and sends one request. A server that sleeps while idle must
//! wake at once for it; a server that polls pays its polling interval.

use std::thread;
use std::time::Duration;

use super::{baseline_difference, difference, Bench, Measurement, Row};
use crate::client;
use crate::record::Record;
use crate::report::{Goal, Target, Unit};
use crate::servers::Spec;
use crate::stats::{median, percentile};

const QUIET: Duration = Duration::from_millis(250);

pub const MEASUREMENT: Measurement = Measurement {
    id: "quiet",
    title: "6. first request (new connection) after 250 ms of quiet",
    servers: &["ours", "ours-base", "blocking"],
    needs: &[],
    run,
    rows: &[
        Row {
            label: "median",
            figure: "quiet_us",
            unit: Unit::Micros,
        },
        Row {
            label: "slowest sample",
            figure: "quiet_max_us",
            unit: Unit::Micros,
        },
    ],
    targets,
};

fn run(bench: &mut Bench, spec: &Spec) -> Result<(), String> {
    let server = bench.start(spec, &[])?;
    let n = bench.config.quiet_samples;
    bench.record.command(
        "own client (measure/quiet.rs)",
        &format!(
            "# {n} times: wait 250 ms, then connect, GET / with Connection: close, read \
             the answer; the median"
        ),
    );
    let mut buf = Vec::new();
    let mut samples = Vec::new();
    for _ in 0..n {
        thread::sleep(QUIET);
        let took = client::one_request(server.addr, &mut buf).map_err(|e| e.to_string())?;
        samples.push(took.as_secs_f64() * 1e6);
    }
    bench
        .record
        .set(spec.id, "quiet_max_us", percentile(&mut samples, 100.0));
    bench.record.set(spec.id, "quiet_us", median(&mut samples));
    Ok(())
}

fn targets(r: &Record) -> Vec<Target> {
    let what = "6. first request after 250 ms quiet";
    let mut targets = vec![difference(
        r,
        &format!("{what}: ours - blocking"),
        ("ours", "quiet_us"),
        ("blocking", "quiet_us"),
        Unit::Micros,
        Goal::AtMost(150.0),
    )];
    targets.extend(baseline_difference(r, what, "quiet_us", Unit::Micros));
    targets
}
