//! Measurement 3, sequential connection-per-request latency: one client connects, sends
//! `GET /` with `Connection: close`, reads the answer, and does it again,
//! with nothing else going on. The latency of one request through an
//! unloaded server: accept, hand-over to a worker, answer.

use std::time::{Duration, Instant};

use super::{
    baseline_difference, difference, skip_close, versus_baseline, Bench, Measurement, Row,
};
use crate::client;
use crate::record::Record;
use crate::report::{Goal, Target, Unit};
use crate::servers::Spec;
use crate::stats::percentile;

pub const MEASUREMENT: Measurement = Measurement {
    id: "sequential",
    title: "3. sequential connection-per-request latency (one client)",
    servers: &[
        "ours",
        "ours-base",
        "blocking",
        "tiny",
        "astra",
        "hyper",
        "node",
    ],
    needs: &[],
    run,
    rows: &[
        Row {
            label: "p50",
            figure: "seq_p50_us",
            unit: Unit::Micros,
        },
        Row {
            label: "p99",
            figure: "seq_p99_us",
            unit: Unit::Micros,
        },
        Row {
            label: "samples",
            figure: "seq_n",
            unit: Unit::Count,
        },
    ],
    targets,
};

fn run(bench: &mut Bench, spec: &Spec) -> Result<(), String> {
    if skip_close(bench, spec) {
        return Ok(());
    }
    let server = bench.start(spec, &[])?;
    let (secs, max) = (bench.config.secs, bench.config.sequential_max);
    bench.record.command(
        "own client (measure/sequential.rs)",
        &format!(
            "# 1 client: connect, GET / with Connection: close, read the answer; \
             repeat for {secs} s or {max} requests"
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut samples = Vec::new();
    let mut buf = Vec::new();
    while Instant::now() < deadline && samples.len() < max {
        let took = client::one_request(server.addr, &mut buf)
            .map_err(|e| format!("request {}: {e}", samples.len() + 1))?;
        samples.push(took.as_secs_f64() * 1e6);
    }
    let r = &mut bench.record;
    r.set(spec.id, "seq_p50_us", percentile(&mut samples, 50.0));
    r.set(spec.id, "seq_p99_us", percentile(&mut samples, 99.0));
    r.set(spec.id, "seq_n", samples.len() as f64);
    Ok(())
}

fn targets(r: &Record) -> Vec<Target> {
    let p50 = |id| (id, "seq_p50_us");
    let mut targets = vec![
        difference(
            r,
            "3. sequential conn-per-request p50: ours - blocking",
            p50("ours"),
            p50("blocking"),
            Unit::Micros,
            Goal::AtMost(5.0),
        ),
        difference(
            r,
            "3. sequential conn-per-request p50: ours - tiny_http",
            p50("ours"),
            p50("tiny"),
            Unit::Micros,
            Goal::None,
        ),
        difference(
            r,
            "3. sequential conn-per-request p50: ours - hyper (1 thread)",
            p50("ours"),
            p50("hyper"),
            Unit::Micros,
            Goal::None,
        ),
    ];
    let what = "3. sequential conn-per-request p50";
    targets.extend(baseline_difference(r, what, "seq_p50_us", Unit::Micros));
    targets.extend(versus_baseline(r, what, "seq_p50_us", Unit::Micros));
    targets
}
