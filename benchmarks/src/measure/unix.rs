//! Measurement 11, a Unix domain socket beside TCP: one server process
//! listens on `127.0.0.1:0` and on a socket file in a temporary directory
//! (`--unix`), and the own client (`wrk` speaks no Unix sockets) loads each
//! in turn within the round, TCP first, then the Unix socket:
//!
//! 1. keep-alive: 4 client threads, each on one connection, `GET /` and
//!    read the answer, again and again for the load's duration;
//! 2. connection-per-request: 4 client threads, each connecting, sending
//!    `GET /` with `Connection: close`, reading the whole answer, waiting
//!    for the server to close, and connecting again.
//!
//! Figures: req/s, p50 and p99 (write to complete answer; for
//! connection-per-request from before the connect), the server's CPU time
//! per request, and client errors. The targets are the Unix / TCP
//! throughput ratios, computed within each round: a Unix socket skips the
//! TCP/IP stack, so it should be at least as fast as loopback TCP. The
//! Unix / TCP ratios of p99 and of the server's CPU time per request are
//! reported beside them (the CPU time varies less than req/s on a shared
//! machine). None is on the chart, which shows ours / peer.
//!
//! The socket file's directory is made for the run and removed after the
//! server has been killed (which leaves its socket file behind).

use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use super::{ratio, Bench, Measurement, Row};
use crate::client::{self, Endpoint, Stream, GET};
use crate::record::Record;
use crate::report::{Goal, Target, Unit};
use crate::servers::Spec;
use crate::stats::percentile;
use crate::system;

/// Client threads, one connection at a time each.
const CLIENTS: usize = 4;
/// A client's read timeout; connects and writes have 2 s
/// ([`client::connect`], [`client::connect_unix`]).
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Between two loads, so that one's closing connections are gone before
/// the next starts.
const SETTLE: Duration = Duration::from_millis(200);
/// The socket file in the temporary directory.
const SOCKET: &str = "bench.sock";

/// The rows of one load: `$label` as shown, `$key` the figures' middle.
macro_rules! rows {
    ($(($label:literal, $key:literal)),*) => {
        &[$(
            Row {
                label: concat!($label, ": req/s"),
                figure: concat!("unix_", $key, "_rps"),
                unit: Unit::Rps,
            },
            Row {
                label: concat!($label, ": p50"),
                figure: concat!("unix_", $key, "_p50_us"),
                unit: Unit::Micros,
            },
            Row {
                label: concat!($label, ": p99"),
                figure: concat!("unix_", $key, "_p99_us"),
                unit: Unit::Micros,
            },
            Row {
                label: concat!($label, ": server CPU per request"),
                figure: concat!("unix_", $key, "_cpu_us"),
                unit: Unit::MicrosFine,
            },
            Row {
                label: concat!($label, ": client errors"),
                figure: concat!("unix_", $key, "_errors"),
                unit: Unit::Count,
            },
        )*]
    };
}

pub const MEASUREMENT: Measurement = Measurement {
    id: "unix",
    title: "11. keep-alive and connection-per-request, Unix socket beside TCP (own client)",
    servers: &["ours"],
    needs: &[],
    run,
    rows: rows!(
        ("keep-alive, TCP", "ka_tcp"),
        ("keep-alive, Unix socket", "ka_unix"),
        ("conn-per-request, TCP", "close_tcp"),
        ("conn-per-request, Unix socket", "close_unix")
    ),
    targets,
};

/// A directory of our own under the system's temporary one, removed when
/// dropped.
struct TempDir(PathBuf);

impl TempDir {
    /// `TMPDIR/graceful-server-bench-unix-PID`, mode 0700: the same path in
    /// every round, so the recorded command line is one. One left by an
    /// earlier run with this pid is replaced.
    fn create() -> Result<TempDir, String> {
        let path =
            std::env::temp_dir().join(format!("graceful-server-bench-unix-{}", std::process::id()));
        let make = || fs::DirBuilder::new().mode(0o700).create(&path);
        if let Err(e) = make() {
            if e.kind() != ErrorKind::AlreadyExists {
                return Err(format!("cannot create {}: {e}", path.display()));
            }
            fs::remove_dir_all(&path)
                .and_then(|()| make())
                .map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
        }
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// What one client thread saw.
#[derive(Default)]
struct Client {
    latencies_us: Vec<f64>,
    errors: u64,
}

fn run(bench: &mut Bench, spec: &Spec) -> Result<(), String> {
    // Declared before the server, so dropped after it: the directory goes
    // once the server is dead.
    let dir = TempDir::create()?;
    let socket = dir.0.join(SOCKET);
    let socket_arg = socket.to_string_lossy().into_owned();
    let mut server = bench.start(spec, &["--unix", &socket_arg])?;
    // The example binds every listener before its first `listening on`
    // line, which `start` waited for.
    if !socket.exists() {
        return Err(format!(
            "the server printed its TCP address but {} does not exist",
            socket.display()
        ));
    }
    let secs = bench.config.secs;
    bench.record.command(
        "own client (measure/unix.rs), keep-alive",
        &format!(
            "# {CLIENTS} threads, each with one keep-alive connection: GET /, read the \
             answer, repeat, for {secs} s; to 127.0.0.1:{}, then to unix:{socket_arg}",
            server.addr.port()
        ),
    );
    bench.record.command(
        "own client (measure/unix.rs), connection-per-request",
        &format!(
            "# {CLIENTS} threads, each: connect, GET / with Connection: close, read the \
             answer, wait for the close; repeat for {secs} s; to 127.0.0.1:{}, then to \
             unix:{socket_arg}",
            server.addr.port()
        ),
    );
    let endpoints = [
        ("tcp", Endpoint::Tcp(server.addr)),
        ("unix", Endpoint::Unix(socket.clone())),
    ];
    for (mode, close) in [("ka", false), ("close", true)] {
        for (transport, endpoint) in &endpoints {
            thread::sleep(SETTLE);
            let key = format!("unix_{mode}_{transport}");
            let before = system::usage(server.pid);
            let clients = load(endpoint, close, Duration::from_secs(secs));
            let after = system::usage(server.pid);
            if !server.running() {
                return Err(format!("the server exited during {key}"));
            }
            let mut all: Vec<f64> = clients
                .iter()
                .flat_map(|c| c.latencies_us.iter().copied())
                .collect();
            let errors: u64 = clients.iter().map(|c| c.errors).sum();
            let n = all.len();
            let r = &mut bench.record;
            r.set(spec.id, &format!("{key}_rps"), n as f64 / secs as f64);
            r.set(
                spec.id,
                &format!("{key}_p50_us"),
                percentile(&mut all, 50.0),
            );
            r.set(
                spec.id,
                &format!("{key}_p99_us"),
                percentile(&mut all, 99.0),
            );
            r.set(spec.id, &format!("{key}_errors"), errors as f64);
            if n > 0 {
                r.set(
                    spec.id,
                    &format!("{key}_cpu_us"),
                    after.cpu_ns.saturating_sub(before.cpu_ns) as f64 / n as f64 / 1e3,
                );
            }
        }
    }
    drop(server);
    drop(dir);
    Ok(())
}

/// [`CLIENTS`] threads on `endpoint` for `duration`, keep-alive or
/// connection-per-request.
fn load(endpoint: &Endpoint, close: bool, duration: Duration) -> Vec<Client> {
    let deadline = Instant::now() + duration;
    thread::scope(|scope| {
        let threads: Vec<_> = (0..CLIENTS)
            .map(|_| {
                scope.spawn(move || {
                    if close {
                        per_request(endpoint, deadline)
                    } else {
                        keep_alive(endpoint, deadline)
                    }
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or_default())
            .collect()
    })
}

/// Requests on one connection until `deadline`; connects again if the
/// server closes it or it fails. An answer after the deadline does not
/// count.
fn keep_alive(endpoint: &Endpoint, deadline: Instant) -> Client {
    let mut me = Client::default();
    let mut buf = Vec::new();
    let mut stream: Option<Stream> = None;
    while Instant::now() < deadline {
        let s = match stream.as_mut() {
            Some(s) => s,
            None => match endpoint.connect(READ_TIMEOUT) {
                Ok(s) => stream.insert(s),
                Err(_) => {
                    me.errors += 1;
                    thread::sleep(Duration::from_millis(5));
                    continue;
                }
            },
        };
        let start = Instant::now();
        if s.write_all(GET).is_err() {
            me.errors += 1;
            stream = None;
            continue;
        }
        match client::read_response(s, &mut buf) {
            Ok(_) if Instant::now() >= deadline => break,
            Ok(keep) => {
                me.latencies_us.push(start.elapsed().as_secs_f64() * 1e6);
                if !keep {
                    stream = None;
                }
            }
            Err(_) => {
                me.errors += 1;
                stream = None;
            }
        }
    }
    me
}

/// Connection-per-request exchanges ([`client::one_request_to`]) until
/// `deadline`; one finished after it does not count.
fn per_request(endpoint: &Endpoint, deadline: Instant) -> Client {
    let mut me = Client::default();
    let mut buf = Vec::new();
    while Instant::now() < deadline {
        match client::one_request_to(endpoint, &mut buf) {
            Ok(_) if Instant::now() >= deadline => break,
            Ok(took) => me.latencies_us.push(took.as_secs_f64() * 1e6),
            Err(_) => {
                me.errors += 1;
                thread::sleep(Duration::from_millis(5));
            }
        }
    }
    me
}

fn targets(r: &Record) -> Vec<Target> {
    // Unix / TCP of our own server: "ours" is the Unix figure, "peer" the
    // TCP one. Not on the chart (ours / peer).
    let unix_vs_tcp = |label: &str, mode: &str, figure: &str, unit: Unit, goal: Goal| {
        let mut target = ratio(
            r,
            label,
            ("ours", &format!("unix_{mode}_unix_{figure}")),
            ("ours", &format!("unix_{mode}_tcp_{figure}")),
            unit,
            goal,
        );
        target.chart = false;
        target
    };
    vec![
        unix_vs_tcp(
            "11. Unix socket keep-alive vs TCP: req/s ratio (ours: Unix, peer: TCP)",
            "ka",
            "rps",
            Unit::Rps,
            Goal::AtLeast(1.0),
        ),
        unix_vs_tcp(
            "11. Unix socket conn-per-request vs TCP: req/s ratio (ours: Unix, peer: TCP)",
            "close",
            "rps",
            Unit::Rps,
            Goal::AtLeast(1.0),
        ),
        unix_vs_tcp(
            "11. Unix socket keep-alive vs TCP: p99 ratio (ours: Unix, peer: TCP)",
            "ka",
            "p99_us",
            Unit::Micros,
            Goal::None,
        ),
        unix_vs_tcp(
            "11. Unix socket conn-per-request vs TCP: p99 ratio (ours: Unix, peer: TCP)",
            "close",
            "p99_us",
            Unit::Micros,
            Goal::None,
        ),
        // Steadier than req/s when other work shares the server's CPU.
        unix_vs_tcp(
            "11. Unix socket keep-alive vs TCP: server CPU per request ratio (ours: Unix, peer: TCP)",
            "ka",
            "cpu_us",
            Unit::MicrosFine,
            Goal::None,
        ),
        unix_vs_tcp(
            "11. Unix socket conn-per-request vs TCP: server CPU per request ratio (ours: Unix, peer: TCP)",
            "close",
            "cpu_us",
            Unit::MicrosFine,
            Goal::None,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_is_computed_from_the_rows() {
        let mut r = Record::default();
        for row in MEASUREMENT.rows {
            r.set("ours", row.figure, 2.0);
        }
        for key in ["ka", "close"] {
            r.set("ours", &format!("unix_{key}_unix_rps"), 3.0);
        }
        let targets = (MEASUREMENT.targets)(&r);
        assert_eq!(targets.len(), 6);
        assert!(targets.iter().all(|t| t.value.is_some() && !t.chart));
        assert_eq!(targets[0].met(), Some(true));
        assert_eq!(targets[0].value, Some(1.5));
        assert_eq!(MEASUREMENT.rows.len(), 20);
    }
}
