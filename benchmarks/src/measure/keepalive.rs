//! Measurement 1, keep-alive throughput: `wrk` with 4 connections, each sending its
//! next request as soon as the answer arrives. With 4 workers every
//! connection has one; this is the blocking pool's best case.

use super::{ratio, wrk_versus_baseline, Bench, Measurement, Row};
use crate::record::Record;
use crate::report::{Goal, Target, Unit};
use crate::servers::Spec;
use crate::system::Tool;
use crate::wrk::Load;

pub const MEASUREMENT: Measurement = Measurement {
    id: "keepalive",
    title: "1. keep-alive, 4 connections (wrk -c4)",
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
            figure: "ka4_rps",
            unit: Unit::Rps,
        },
        Row {
            label: "p99",
            figure: "ka4_p99_us",
            unit: Unit::Micros,
        },
        Row {
            label: "server CPU",
            figure: "ka4_cpu_pct",
            unit: Unit::Percent,
        },
        Row {
            label: "server CPU time per request",
            figure: "ka4_cpu_us",
            unit: Unit::MicrosFine,
        },
        Row {
            label: "server context switches per request",
            figure: "ka4_switches",
            unit: Unit::PerRequest,
        },
        Row {
            label: "wrk errors",
            figure: "ka4_errors",
            unit: Unit::Count,
        },
    ],
    targets,
};

fn run(bench: &mut Bench, spec: &Spec) -> Result<(), String> {
    let mut server = bench.start(spec, &[])?;
    let load = Load {
        connections: 4,
        secs: bench.config.secs,
        close: false,
    };
    bench.wrk(&mut server, spec.id, "ka4", load)?;
    Ok(())
}

fn targets(r: &Record) -> Vec<Target> {
    let rps = |id| (id, "ka4_rps");
    let mut targets = vec![
        ratio(
            r,
            "1. keep-alive req/s, 4 conns: ours / blocking",
            rps("ours"),
            rps("blocking"),
            Unit::Rps,
            Goal::AtLeast(1.0),
        ),
        ratio(
            r,
            "1. keep-alive req/s, 4 conns: ours / tiny_http",
            rps("ours"),
            rps("tiny"),
            Unit::Rps,
            Goal::AtLeast(1.5),
        ),
        ratio(
            r,
            "1. keep-alive req/s, 4 conns: ours / Node.js",
            rps("ours"),
            rps("node"),
            Unit::Rps,
            Goal::None,
        ),
        ratio(
            r,
            "1. keep-alive req/s, 4 conns: ours / hyper (1 thread)",
            rps("ours"),
            rps("hyper"),
            Unit::Rps,
            Goal::AtLeast(1.0),
        ),
        ratio(
            r,
            "1. keep-alive req/s, 4 conns: ours / astra",
            rps("ours"),
            rps("astra"),
            Unit::Rps,
            Goal::None,
        ),
        ratio(
            r,
            "9. keep-alive req/s, 4 conns: ours --poll / blocking",
            rps("ours-poll"),
            rps("blocking"),
            Unit::Rps,
            Goal::AtLeast(0.95),
        ),
        ratio(
            r,
            "9. keep-alive req/s, 4 conns: ours --poll / tiny_http",
            rps("ours-poll"),
            rps("tiny"),
            Unit::Rps,
            Goal::AtLeast(1.5),
        ),
    ];
    targets.extend(wrk_versus_baseline(r, "1. keep-alive, 4 conns", "ka4"));
    targets
}
