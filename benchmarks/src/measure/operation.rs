//! Measurement 15, the HTTP layer in operation (issue 27):
//!
//! 1. what the access log costs: keep-alive throughput (`wrk -c4`, as in
//!    measurement 1) of the HTTP example with `--verbose`, which writes a
//!    line per request in the Common Log Format to its stderr (a file, the
//!    server's log in `target/bench/logs/`), against the same example
//!    without it: both run side by side, loaded in the order without,
//!    with, with, without in each round, and each figure is the mean of
//!    its two loads;
//! 2. resident memory under the stalled-body attack: connections that each
//!    send the head of `POST /echo` with a 64 KiB body and 60 KiB of the
//!    body, then stall. The server's resident set (`VmRSS` in
//!    `/proc/PID/status`) is read with 10 such connections, then 1,000,
//!    then 10,000 (each time once it has settled: two readings 250 ms
//!    apart within 1%), and a well-behaved `GET /` on a new connection is
//!    timed at each step. Ours runs with its defaults (a 32 MiB budget for
//!    gathered bodies) and, for comparison, with no budget
//!    (`--gathered-total` of 1 TiB: what the example did before); Node.js
//!    with its defaults, which reads the body of `/echo` as it arrives.
//!
//! The attackers are opened by the driver, on the client CPU, with a 2 s
//! connect and write timeout each; one that cannot be opened or written is
//! counted in the notes.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use super::{bound, ratio, Bench, Measurement, Row};
use crate::client;
use crate::record::Record;
use crate::report::{Goal, Target, Unit};
use crate::servers::Spec;
use crate::system::Tool;
use crate::wrk::Load;

/// The attack's steps: (connections in all, figure prefix).
const STEPS: [(usize, &str); 3] = [(10, "stall10"), (1_000, "stall1k"), (10_000, "stall10k")];
/// The declared body, and how much of it each attacker sends.
const BODY: usize = 64 * 1024;
const SENT: usize = 60 * 1024;
/// No budget at all: the example before the budget.
const NO_BUDGET: &str = "1099511627776";
/// How long the resident set may take to settle after a step.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

pub const MEASUREMENT: Measurement = Measurement {
    id: "operation",
    title: "15. HTTP in operation: the access log's cost; memory under stalled bodies",
    servers: &["ours", "node"],
    needs: &[Tool::Wrk],
    run,
    rows: &[
        Row {
            label: "keep-alive req/s, no access log (wrk -c4)",
            figure: "log_off_rps",
            unit: Unit::Rps,
        },
        Row {
            label: "keep-alive req/s, access log to a file (--verbose)",
            figure: "log_on_rps",
            unit: Unit::Rps,
        },
        Row {
            label: "server CPU time per request, no access log",
            figure: "log_off_cpu_us",
            unit: Unit::MicrosFine,
        },
        Row {
            label: "server CPU time per request, access log",
            figure: "log_on_cpu_us",
            unit: Unit::MicrosFine,
        },
        Row {
            label: "resident memory, 10 stalled bodies",
            figure: "stall10_rss_mib",
            unit: Unit::Mib,
        },
        Row {
            label: "resident memory, 1,000 stalled bodies",
            figure: "stall1k_rss_mib",
            unit: Unit::Mib,
        },
        Row {
            label: "resident memory, 10,000 stalled bodies",
            figure: "stall10k_rss_mib",
            unit: Unit::Mib,
        },
        Row {
            label: "memory per stalled body, from 1,000 to 10,000",
            figure: "stall_per_conn_kib",
            unit: Unit::Kib,
        },
        Row {
            label: "a good GET / beside 10,000 stalled bodies",
            figure: "stall10k_good_us",
            unit: Unit::Micros,
        },
        Row {
            label: "no budget: resident memory, 1,000 stalled bodies",
            figure: "nobudget_stall1k_rss_mib",
            unit: Unit::Mib,
        },
        Row {
            label: "no budget: resident memory, 10,000 stalled bodies",
            figure: "nobudget_stall10k_rss_mib",
            unit: Unit::Mib,
        },
        Row {
            label: "no budget: memory per stalled body, from 1,000 to 10,000",
            figure: "nobudget_stall_per_conn_kib",
            unit: Unit::Kib,
        },
    ],
    targets,
};

fn run(bench: &mut Bench, spec: &Spec) -> Result<(), String> {
    if spec.id == "ours" {
        access_log(bench, spec)?;
        stalled(bench, spec, &["--gathered-total", NO_BUDGET], "nobudget_")?;
    }
    stalled(bench, spec, &[], "")
}

/// Keep-alive without and with the access log: both servers run side by
/// side (on the server CPU; the one not loaded is idle), loaded in the
/// order without, with, with, without, so that a drift of the machine's
/// load during the round weighs on both alike; each figure is the mean of
/// its two loads.
fn access_log(bench: &mut Bench, spec: &Spec) -> Result<(), String> {
    let load = Load {
        connections: 4,
        secs: bench.config.secs,
        close: false,
    };
    let mut off = bench.start(spec, &[])?;
    let mut on = bench.start(spec, &["--verbose"])?;
    for (with_log, run) in [(false, "a"), (true, "a"), (true, "b"), (false, "b")] {
        let (server, prefix) = if with_log {
            (&mut on, "log_on")
        } else {
            (&mut off, "log_off")
        };
        bench.wrk(server, spec.id, &format!("{prefix}_{run}"), load)?;
    }
    for prefix in ["log_on", "log_off"] {
        for figure in ["rps", "cpu_us"] {
            let runs = ["a", "b"].map(|run| {
                bench
                    .record
                    .get(spec.id, &format!("{prefix}_{run}_{figure}"))
            });
            if let [Some(a), Some(b)] = runs {
                bench
                    .record
                    .set(spec.id, &format!("{prefix}_{figure}"), (a + b) / 2.0);
            }
        }
    }
    Ok(())
}

/// The stalled-body attack on a fresh `spec` server started with `extra`;
/// figures under `prefix`.
fn stalled(bench: &mut Bench, spec: &Spec, extra: &[&str], prefix: &str) -> Result<(), String> {
    bench.record.command(
        "own client (measure/operation.rs), stalled bodies",
        "# open N connections, each: POST /echo with Content-Length: 65536, 61440 bytes \
         of the body, then nothing; read VmRSS from /proc/PID/status once settled; time a \
         GET / on a new connection",
    );
    let server = bench.start(spec, extra)?;
    // Warm up: the workers, their buffers, the allocator.
    let mut buf = Vec::new();
    for _ in 0..50 {
        client::one_request(server.addr, &mut buf)
            .map_err(|e| format!("{}: warm-up request: {e}", spec.id))?;
    }
    let mut attackers: Vec<TcpStream> = Vec::new();
    let mut failures = 0;
    let mut first_failure = None;
    let mut resident = Vec::new();
    for (n, step) in STEPS {
        while attackers.len() + failures < n {
            match attack(server.addr) {
                Ok(stream) => attackers.push(stream),
                Err(e) => {
                    failures += 1;
                    first_failure.get_or_insert(e);
                }
            }
        }
        let rss = settled(server.pid);
        resident.push(rss);
        bench
            .record
            .set(spec.id, &format!("{prefix}{step}_rss_mib"), rss / 1024.0);
        let good = client::one_request(server.addr, &mut buf)
            .map(|took| took.as_secs_f64() * 1e6)
            .unwrap_or(f64::NAN);
        bench
            .record
            .set(spec.id, &format!("{prefix}{step}_good_us"), good);
    }
    if let [_, at_1k, at_10k] = resident[..] {
        let per_conn = (at_10k - at_1k) / (STEPS[2].0 - STEPS[1].0) as f64;
        bench
            .record
            .set(spec.id, &format!("{prefix}stall_per_conn_kib"), per_conn);
    }
    if let Some(e) = first_failure {
        bench.record.note(format!(
            "{}{}: {failures} stalled-body attacker(s) could not be opened or written: {e}",
            spec.id,
            if prefix.is_empty() {
                ""
            } else {
                " (no budget)"
            },
        ));
    }
    drop(attackers);
    // Let the server see the closes before it is killed.
    thread::sleep(Duration::from_millis(300));
    Ok(())
}

/// One attacker: the head and most of the body, then nothing.
fn attack(addr: SocketAddr) -> Result<TcpStream, String> {
    let mut stream = client::connect(addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    let head = format!("POST /echo HTTP/1.1\r\nHost: bench\r\nContent-Length: {BODY}\r\n\r\n");
    let mut request = head.into_bytes();
    request.resize(request.len() + SENT, b'x');
    stream.write_all(&request).map_err(|e| e.to_string())?;
    Ok(stream)
}

/// The resident memory of `pid` in KiB once it has settled (two readings
/// 250 ms apart within 1%), or after [`SETTLE_LIMIT`].
fn settled(pid: i32) -> f64 {
    let deadline = Instant::now() + SETTLE_LIMIT;
    let mut last = resident_kib(pid);
    loop {
        thread::sleep(Duration::from_millis(250));
        let now = resident_kib(pid);
        if (now - last).abs() <= last * 0.01 || Instant::now() >= deadline {
            return now;
        }
        last = now;
    }
}

/// `VmRSS` of `pid` in KiB; NaN if it cannot be read.
fn resident_kib(pid: i32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(f64::NAN)
}

fn targets(r: &Record) -> Vec<Target> {
    vec![
        ratio(
            r,
            "15. keep-alive req/s, access log to a file / none (ours)",
            ("ours", "log_on_rps"),
            ("ours", "log_off_rps"),
            Unit::Rps,
            Goal::AtLeast(0.95),
        ),
        bound(
            r,
            "15. memory per stalled body past the budget, 1,000 to 10,000 (ours)",
            ("ours", "stall_per_conn_kib"),
            Unit::Kib,
            Goal::AtMost(16.0),
        ),
        ratio(
            r,
            "15. resident memory, 10,000 stalled bodies: ours / Node.js",
            ("ours", "stall10k_rss_mib"),
            ("node", "stall10k_rss_mib"),
            Unit::Mib,
            Goal::None,
        ),
        ratio(
            r,
            "15. resident memory, 10,000 stalled bodies: ours / ours without a budget",
            ("ours", "stall10k_rss_mib"),
            ("ours", "nobudget_stall10k_rss_mib"),
            Unit::Mib,
            Goal::None,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_figure_has_its_row() {
        for (_, step) in STEPS {
            for prefix in ["", "nobudget_"] {
                let figure = format!("{prefix}{step}_rss_mib");
                let shown = MEASUREMENT.rows.iter().any(|row| row.figure == figure);
                // The 10-connection step of the run without a budget is only
                // the baseline.
                assert!(shown || figure == "nobudget_stall10_rss_mib", "{figure}");
            }
        }
    }

    #[test]
    fn resident_memory_is_read_from_proc() {
        let kib = resident_kib(std::process::id() as i32);
        assert!(kib > 0.0, "{kib}");
        assert!(resident_kib(-1).is_nan());
    }
}
