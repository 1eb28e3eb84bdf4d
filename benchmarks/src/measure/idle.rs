//! Measurement 7, idle wake-ups: context switches per second, summed over every thread
//! of a server that has nothing to do, first with no connection, then with
//! 100 idle keep-alive connections (each sent one request, then went
//! quiet). A server asleep in `accept`, `epoll_wait` or `read` makes none;
//! one that polls with a timeout makes one per timeout per thread.

use std::io::{Read, Write};
use std::thread;
use std::time::Duration;

use super::{bound, idle_usage, Bench, Measurement, Row};
use crate::client::{self, IdleConnections};
use crate::record::Record;
use crate::report::{Goal, Target, Unit};
use crate::servers::{Spec, BASELINE};

const CONNECTIONS: usize = 100;
/// Let the server finish what the last connection started.
const SETTLE: Duration = Duration::from_millis(300);

pub const MEASUREMENT: Measurement = Measurement {
    id: "idle",
    title: "7. idle wake-ups (context switches/s, all threads)",
    servers: &["ours", "ours-base", "ours-poll", "echo"],
    needs: &[],
    run,
    rows: &[
        Row {
            label: "wake-ups/s, no connection",
            figure: "idle0_wps",
            unit: Unit::PerSec,
        },
        Row {
            label: "wake-ups/s, 100 idle keep-alive connections",
            figure: "idle100_wps",
            unit: Unit::PerSec,
        },
        Row {
            label: "CPU, no connection",
            figure: "idle0_cpu_pct",
            unit: Unit::Percent,
        },
        Row {
            label: "CPU, 100 idle connections",
            figure: "idle100_cpu_pct",
            unit: Unit::Percent,
        },
        Row {
            label: "idle connections answered (first request)",
            figure: "idle100_answered",
            unit: Unit::OutOf(CONNECTIONS as u32),
        },
    ],
    targets,
};

fn run(bench: &mut Bench, spec: &Spec) -> Result<(), String> {
    let server = bench.start(spec, &[])?;
    let secs = bench.config.idle_secs;
    let echo = spec.id == "echo";
    bench.record.command(
        "own client (measure/idle.rs)",
        &format!(
            "# count the server's context switches (/proc/PID/task/*/status) over {secs} s; \
             then open {CONNECTIONS} connections, one request each (HTTP: GET /, echo: a \
             line), keep them open and count again"
        ),
    );
    thread::sleep(SETTLE);
    let (wakeups, cpu) = idle_usage(server.pid, secs);
    bench.record.set(spec.id, "idle0_wps", wakeups);
    bench.record.set(spec.id, "idle0_cpu_pct", cpu);

    let (connections, answered) = if echo {
        echo_connections(server.addr)
    } else {
        let (idle, error) = IdleConnections::open(server.addr, CONNECTIONS);
        if let Some(e) = error {
            return Err(format!("opened only {} connections: {e}", idle.opened));
        }
        let answered = idle.answered;
        (idle.streams, answered)
    };
    bench
        .record
        .set(spec.id, "idle100_answered", answered as f64);
    thread::sleep(SETTLE);
    let (wakeups, cpu) = idle_usage(server.pid, secs);
    bench.record.set(spec.id, "idle100_wps", wakeups);
    bench.record.set(spec.id, "idle100_cpu_pct", cpu);
    drop(connections);
    Ok(())
}

/// Echo: each connection sends a line and reads it back.
fn echo_connections(addr: std::net::SocketAddr) -> (Vec<std::net::TcpStream>, usize) {
    let mut streams = Vec::new();
    let mut answered = 0;
    for _ in 0..CONNECTIONS {
        let Ok(mut s) = client::connect(addr, Duration::from_secs(5)) else {
            continue;
        };
        let mut back = [0u8; 6];
        if s.write_all(b"hello\n").is_ok() && s.read_exact(&mut back).is_ok() {
            answered += 1;
        }
        streams.push(s);
    }
    (streams, answered)
}

fn targets(r: &Record) -> Vec<Target> {
    let mut targets = Vec::new();
    for (id, name) in [
        ("ours", "ours"),
        (BASELINE.0, BASELINE.1),
        ("ours-poll", "ours --poll"),
        ("echo", "echo binary"),
    ] {
        // The baseline's bounds only when it ran (`--baseline`).
        if id == BASELINE.0 && r.median(id, "idle0_wps").is_none() {
            continue;
        }
        for (figure, what) in [
            ("idle0_wps", "no connection"),
            ("idle100_wps", "100 idle keep-alive conns"),
        ] {
            let number = if id == "ours-poll" { 9 } else { 7 };
            targets.push(bound(
                r,
                &format!("{number}. idle wake-ups/s, {what}: {name}"),
                (id, figure),
                Unit::PerSec,
                Goal::AtMost(1.0),
            ));
        }
    }
    targets
}
