//! Measurement 2, connection-per-request throughput: `wrk` with 16 connections and
//! `Connection: close`, so every request is a new connection: accept,
//! dispatch and close are on the path of every request.

use super::{ratio, skip_close, wrk_versus_baseline, Bench, Measurement, Row};
use crate::record::Record;
use crate::report::{Goal, Target, Unit};
use crate::servers::Spec;
use crate::system::Tool;
use crate::wrk::Load;

pub const MEASUREMENT: Measurement = Measurement {
    id: "close",
    title: "2. connection-per-request, 16 connections (wrk -c16, Connection: close)",
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
            figure: "close16_rps",
            unit: Unit::Rps,
        },
        Row {
            label: "p99",
            figure: "close16_p99_us",
            unit: Unit::Micros,
        },
        Row {
            label: "server CPU",
            figure: "close16_cpu_pct",
            unit: Unit::Percent,
        },
        Row {
            label: "server CPU time per request",
            figure: "close16_cpu_us",
            unit: Unit::MicrosFine,
        },
        Row {
            label: "server context switches per request",
            figure: "close16_switches",
            unit: Unit::PerRequest,
        },
        Row {
            label: "wrk errors (see the notes)",
            figure: "close16_errors",
            unit: Unit::Count,
        },
    ],
    targets,
};

fn run(bench: &mut Bench, spec: &Spec) -> Result<(), String> {
    if skip_close(bench, spec) {
        return Ok(());
    }
    let mut server = bench.start(spec, &[])?;
    let load = Load {
        connections: 16,
        secs: bench.config.secs,
        close: true,
    };
    let result = bench.wrk(&mut server, spec.id, "close16", load)?;
    if result.errors > 0 && spec.id == "tiny" {
        bench.record.note(
            "tiny_http closes a `Connection: close` request's socket without saying \
             `Connection: close` in its answer, which wrk counts as read errors; its answers \
             are complete",
        );
    }
    Ok(())
}

fn targets(r: &Record) -> Vec<Target> {
    let rps = |id| (id, "close16_rps");
    let mut targets = vec![
        ratio(
            r,
            "2. conn-per-request req/s, 16 conns: ours / blocking",
            rps("ours"),
            rps("blocking"),
            Unit::Rps,
            Goal::AtLeast(1.0),
        ),
        ratio(
            r,
            "2. conn-per-request req/s, 16 conns: ours / tiny_http",
            rps("ours"),
            rps("tiny"),
            Unit::Rps,
            Goal::AtLeast(1.0),
        ),
        ratio(
            r,
            "2. conn-per-request req/s, 16 conns: ours / hyper (1 thread)",
            rps("ours"),
            rps("hyper"),
            Unit::Rps,
            Goal::None,
        ),
        ratio(
            r,
            "2. conn-per-request req/s, 16 conns: ours / Node.js",
            rps("ours"),
            rps("node"),
            Unit::Rps,
            Goal::None,
        ),
        ratio(
            r,
            "9. conn-per-request req/s, 16 conns: ours --poll / blocking",
            rps("ours-poll"),
            rps("blocking"),
            Unit::Rps,
            Goal::AtLeast(0.95),
        ),
        ratio(
            r,
            "9. conn-per-request req/s, 16 conns: ours --poll / tiny_http",
            rps("ours-poll"),
            rps("tiny"),
            Unit::Rps,
            Goal::AtLeast(1.0),
        ),
    ];
    targets.extend(wrk_versus_baseline(
        r,
        "2. conn-per-request, 16 conns",
        "close16",
    ));
    targets
}
