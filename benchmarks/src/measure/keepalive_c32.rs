//! Measurement 12, keep-alive throughput with more clients than workers: `wrk`
//! with 32 connections against 4 workers, each connection sending its next
//! request as soon as the answer arrives. A thread-per-connection pool
//! serves 4 and starves 28 (measurement 4 counts that); an event loop
//! (hyper on one thread, Node.js) serves them all and batches its
//! wake-ups. Same duration as measurement 1.

use super::{ratio, wrk_versus_baseline, Bench, Measurement, Row};
use crate::record::Record;
use crate::report::{Goal, Target, Unit};
use crate::servers::Spec;
use crate::system::Tool;
use crate::wrk::Load;

pub const MEASUREMENT: Measurement = Measurement {
    id: "keepalive-c32",
    title: "12. keep-alive, 32 connections on 4 workers (wrk -c32)",
    servers: &[
        "ours",
        "ours-base",
        "ours-poll",
        "blocking",
        "tiny",
        "astra",
        "hyper",
        "node",
    ],
    needs: &[Tool::Wrk],
    run,
    rows: &[
        Row {
            label: "req/s",
            figure: "c32_rps",
            unit: Unit::Rps,
        },
        Row {
            label: "p99",
            figure: "c32_p99_us",
            unit: Unit::Micros,
        },
        Row {
            label: "server CPU",
            figure: "c32_cpu_pct",
            unit: Unit::Percent,
        },
        Row {
            label: "server CPU time per request",
            figure: "c32_cpu_us",
            unit: Unit::MicrosFine,
        },
        Row {
            label: "server context switches per request",
            figure: "c32_switches",
            unit: Unit::PerRequest,
        },
        Row {
            label: "wrk errors",
            figure: "c32_errors",
            unit: Unit::Count,
        },
    ],
    targets,
};

fn run(bench: &mut Bench, spec: &Spec) -> Result<(), String> {
    let mut server = bench.start(spec, &[])?;
    let load = Load {
        connections: 32,
        secs: bench.config.secs,
        close: false,
    };
    bench.wrk(&mut server, spec.id, "c32", load)?;
    Ok(())
}

fn targets(r: &Record) -> Vec<Target> {
    let rps = |id| (id, "c32_rps");
    let reported = |label: &str, peer: &'static str| {
        ratio(r, label, rps("ours"), rps(peer), Unit::Rps, Goal::None)
    };
    let mut targets = vec![
        ratio(
            r,
            "12. keep-alive req/s, 32 conns: ours / hyper (1 thread)",
            rps("ours"),
            rps("hyper"),
            Unit::Rps,
            Goal::AtLeast(1.0),
        ),
        reported(
            "12. keep-alive req/s, 32 conns: ours / blocking",
            "blocking",
        ),
        reported("12. keep-alive req/s, 32 conns: ours / tiny_http", "tiny"),
        reported("12. keep-alive req/s, 32 conns: ours / astra", "astra"),
        reported("12. keep-alive req/s, 32 conns: ours / Node.js", "node"),
        ratio(
            r,
            "9. keep-alive req/s, 32 conns: ours --poll / hyper (1 thread)",
            rps("ours-poll"),
            rps("hyper"),
            Unit::Rps,
            Goal::None,
        ),
    ];
    targets.extend(wrk_versus_baseline(r, "12. keep-alive, 32 conns", "c32"));
    targets
}
