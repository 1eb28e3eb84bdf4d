//! Measurement 14, HTTPS side by side: ours (`examples/http` built with
//! `--features http,tls`, rustls 0.23 on aws-lc-rs, `--tls-cert`/`--tls-key`),
//! tiny_http 0.12 with `ssl-rustls` (`src/bin/tiny_tls.rs`; rustls 0.20, the
//! one its latest release depends on) and nginx (one worker process,
//! OpenSSL; skipped with a note when it is not installed: `apt-get install
//! -y nginx`). Three `wrk -t1 -c16` loads on one server process each:
//!
//! 1. `tls_ka`: keep-alive, HTTPS requests per second (16 handshakes, then
//!    requests only);
//! 2. `tls_full`: `Connection: close`, every request on a new connection
//!    with a **full** handshake: new TLS connections per second;
//! 3. `tls_resume`: `Connection: close` as wrk does it by default, resuming
//!    the previous session of a connection slot where the server lets it.
//!
//! Resumption: wrk keeps one OpenSSL `SSL` per connection slot and, after
//! `SSL_shutdown` and `SSL_clear`, offers the session (TLS 1.3 ticket) of
//! the slot's previous connection in the next handshake. All three servers
//! issue TLS 1.3 tickets with their defaults (rustls: stateful tickets from
//! an in-memory cache of 256 sessions; nginx: stateless tickets), and
//! nothing on ours' or tiny_http's command line turns that off, so by
//! default wrk resumes. But OpenSSL drops a session whose connection ended
//! without `close_notify` (an unexpected EOF is an error), and tiny_http
//! closes with a bare TCP close: against it wrk never resumes. Load 2
//! forces full handshakes for every server from the client side, so the
//! servers compare like for like; load 3 shows what resumption changes.
//!
//! Both are done by a counter preloaded into wrk
//! (`tls_handshakes.c`, compiled here with `cc` into `target/bench/tls/`):
//! it counts the handshakes wrk completes as full or resumed
//! (`SSL_session_reused`) and, with `BENCH_TLS_NO_RESUME=1`, drops the
//! slot's session before each handshake. The figures `_handshakes`
//! (completed handshakes per request) and `_resumed_pct` come from it: the
//! check that load 2 was full handshakes only and one per request. Without
//! a C compiler (or with a wrk that links OpenSSL statically) load 2 runs
//! as wrk does by default and a note says so.
//!
//! The certificate (ECDSA P-256, for `localhost` and `127.0.0.1`, made with
//! rcgen) is made once per run in `target/bench/tls/` and served by every
//! server. wrk does not check it. wrk sends the URL's host as SNI, and
//! rustls 0.20 rejects a ClientHello whose SNI is an IP address (illegal
//! parameter: every connection fails), so the URL is
//! `https://localhost:PORT/` for every server (`/etc/hosts`: 127.0.0.1; the
//! servers listen on 127.0.0.1 only).
//!
//! nginx runs from a configuration written for each round in
//! `target/bench/tls/nginx/` (`worker_processes 1`, TLSv1.3 and TLSv1.2,
//! `return 200 "Hello, world!"`, `access_log off`, keep-alive with
//! `keepalive_requests 1000000` so that it does not close a connection
//! after its default 1,000 requests), on a free loopback port, as
//! `taskset -c 0 nginx -c CONF -p PREFIX -e ERRORLOG -g 'daemon off;'`; its
//! CPU time and context switches are the master's and the worker's.
//!
//! wrk's one thread on CPU 1 is the limit on two CPUs (a client handshake
//! per request costs it more than the server's side), so wrk's own CPU time
//! is recorded beside the server's (`_wrk_cpu_pct`, from `wait4`), and the
//! server's CPU time per request is reported as ours / peer too.
//!
//! tiny_http ends every TLS connection without `close_notify`, which
//! OpenSSL reports as an error: with `Connection: close` wrk counts one
//! read error per request there (the answer was complete and is counted).

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use super::{ratio, Bench, Measurement, Row, WrkOn};
use crate::record::Record;
use crate::report::{Goal, Target, Unit};
use crate::servers::{Server, Spec};
use crate::system::Tool;
use crate::wrk::Load;

/// Connections of every load.
const CONNECTIONS: usize = 16;
/// Between two loads, so that one's closing connections are gone before
/// the next starts.
const SETTLE: Duration = Duration::from_millis(300);
/// The handshake counter's source, compiled for wrk's `LD_PRELOAD`.
const COUNTER_C: &str = include_str!("tls_handshakes.c");
/// The line the counter prints when wrk exits.
const COUNTER_LINE: &str = "tls-handshakes:";

/// The rows of one load: `$label` as shown, `$key` the figures' prefix.
macro_rules! rows {
    ($(($label:literal, $key:literal)),*) => {
        &[$(
            Row {
                label: concat!($label, ": req/s"),
                figure: concat!($key, "_rps"),
                unit: Unit::Rps,
            },
            Row {
                label: concat!($label, ": p50"),
                figure: concat!($key, "_p50_us"),
                unit: Unit::Micros,
            },
            Row {
                label: concat!($label, ": p99"),
                figure: concat!($key, "_p99_us"),
                unit: Unit::Micros,
            },
            Row {
                label: concat!($label, ": server CPU"),
                figure: concat!($key, "_cpu_pct"),
                unit: Unit::Percent,
            },
            Row {
                label: concat!($label, ": server CPU time per request"),
                figure: concat!($key, "_cpu_us"),
                unit: Unit::MicrosFine,
            },
            Row {
                label: concat!($label, ": server context switches per request"),
                figure: concat!($key, "_switches"),
                unit: Unit::PerRequest,
            },
            Row {
                label: concat!($label, ": handshakes per request (wrk, counted)"),
                figure: concat!($key, "_handshakes"),
                unit: Unit::PerRequest,
            },
            Row {
                label: concat!($label, ": handshakes resumed"),
                figure: concat!($key, "_resumed_pct"),
                unit: Unit::Percent,
            },
            Row {
                label: concat!($label, ": load generator CPU (wrk, one thread)"),
                figure: concat!($key, "_wrk_cpu_pct"),
                unit: Unit::Percent,
            },
            Row {
                label: concat!($label, ": wrk errors"),
                figure: concat!($key, "_errors"),
                unit: Unit::Count,
            },
        )*]
    };
}

pub const MEASUREMENT: Measurement = Measurement {
    id: "tls",
    title: "14. HTTPS (wrk -t1 -c16 on https://localhost:PORT/): keep-alive, and new TLS \
            connections (Connection: close) with full handshakes and with wrk's resumption",
    servers: &["ours-tls", "tiny-tls", "nginx"],
    needs: &[Tool::Wrk],
    run,
    rows: rows!(
        ("HTTPS keep-alive", "tls_ka"),
        ("new TLS connections, full handshakes", "tls_full"),
        ("new TLS connections, resumption allowed", "tls_resume")
    ),
    targets,
};

/// What every server of the run shares: made once per run.
#[derive(Debug, Clone)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
    /// The handshake counter, or why there is none.
    counter: Result<PathBuf, String>,
}

fn files() -> Result<Files, String> {
    static FILES: OnceLock<Result<Files, String>> = OnceLock::new();
    FILES.get_or_init(make_files).clone()
}

fn dir() -> PathBuf {
    crate::target_dir().join("bench").join("tls")
}

fn make_files() -> Result<Files, String> {
    let dir = dir();
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let (cert, key) = certificate(&dir)?;
    Ok(Files {
        cert,
        key,
        counter: compile_counter(&dir),
    })
}

/// A self-signed ECDSA P-256 certificate for `localhost` and `127.0.0.1`
/// (rcgen's default algorithm), as `cert.pem` and `key.pem` (PKCS#8, which
/// rustls 0.20's loader in tiny_http reads too).
fn certificate(dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .map_err(|e| format!("cannot make the certificate: {e}"))?;
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let write = |path: &Path, text: String| {
        fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    write(&cert, made.cert.pem())?;
    write(&key, made.key_pair.serialize_pem())?;
    Ok((cert, key))
}

/// `cc -shared -fPIC -O2 tls_handshakes.c -o tls_handshakes.so -ldl`.
fn compile_counter(dir: &Path) -> Result<PathBuf, String> {
    let source = dir.join("tls_handshakes.c");
    let library = dir.join("tls_handshakes.so");
    fs::write(&source, COUNTER_C).map_err(|e| format!("cannot write {}: {e}", source.display()))?;
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let output = Command::new(&cc)
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&library)
        .arg(&source)
        .arg("-ldl")
        .output()
        .map_err(|e| format!("cannot run {cc}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{cc} could not compile {}: {}",
            source.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(library)
}

/// The three loads: figure prefix, `Connection: close`, full handshakes
/// forced.
const LOADS: [(&str, bool, bool); 3] = [
    ("tls_ka", false, false),
    ("tls_full", true, true),
    ("tls_resume", true, false),
];

fn run(bench: &mut Bench, spec: &Spec) -> Result<(), String> {
    let files = files()?;
    let counter = match &files.counter {
        Ok(path) => Some(path.to_string_lossy().into_owned()),
        Err(e) => {
            bench.record.note(format!(
                "tls: no handshake counter ({e}): handshakes are not counted, and the \
                 full-handshake load is wrk's default (it resumes sessions where the server \
                 allows it)"
            ));
            None
        }
    };
    let (mut server, children) = if spec.id == "nginx" {
        (start_nginx(bench, spec, &files)?, true)
    } else {
        let cert = files.cert.to_string_lossy().into_owned();
        let key = files.key.to_string_lossy().into_owned();
        let server = bench.start(spec, &["--tls-cert", &cert, "--tls-key", &key])?;
        (server, false)
    };
    let url = format!("https://localhost:{}/", server.addr.port());
    let mut failures = Vec::new();
    for (prefix, close, full) in LOADS {
        thread::sleep(SETTLE);
        let mut env = Vec::new();
        if let Some(counter) = &counter {
            env.push(("LD_PRELOAD".to_string(), counter.clone()));
            if full {
                env.push(("BENCH_TLS_NO_RESUME".to_string(), "1".to_string()));
            }
        }
        let load = Load {
            connections: CONNECTIONS,
            secs: bench.config.secs,
            close,
        };
        let on = WrkOn {
            url: &url,
            env: &env,
            children,
        };
        match bench.wrk_on(&mut server, spec.id, prefix, load, &on) {
            Ok((result, stderr)) => match handshakes(&stderr) {
                Some((full_count, resumed)) => {
                    let done = full_count + resumed;
                    if result.requests > 0 {
                        bench.record.set(
                            spec.id,
                            &format!("{prefix}_handshakes"),
                            done as f64 / result.requests as f64,
                        );
                    }
                    if done > 0 {
                        bench.record.set(
                            spec.id,
                            &format!("{prefix}_resumed_pct"),
                            resumed as f64 / done as f64 * 100.0,
                        );
                    }
                }
                None if counter.is_some() => bench.record.note(format!(
                    "tls: wrk did not load the handshake counter (LD_PRELOAD; an OpenSSL linked \
                     statically?): handshakes are not counted, and {prefix} ran with wrk's \
                     resumption"
                )),
                None => {}
            },
            Err(e) => failures.push(format!("{prefix}: {e}")),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

/// `tls-handshakes: N full, M resumed` in wrk's stderr.
fn handshakes(stderr: &str) -> Option<(u64, u64)> {
    let line = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix(COUNTER_LINE))?;
    let mut numbers = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|n| n.parse::<u64>().ok());
    Some((numbers.next()??, numbers.next()??))
}

/// nginx's configuration: one worker process, the run's certificate, `GET
/// /` answered with `Hello, world!`.
fn nginx_conf(addr: SocketAddr, files: &Files, prefix: &Path) -> String {
    format!(
        "\
# Written by the benchmark (measure/tls.rs) for one round.
worker_processes 1;
pid {pid};
error_log {prefix}/error.log;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    default_type text/plain;
    # Keep-alive on; no close after nginx's default 1,000 requests.
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    server {{
        listen {addr} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.3 TLSv1.2;
        # Every path, like the other servers.
        location / {{
            return 200 \"Hello, world!\";
        }}
    }}
}}
",
        pid = prefix.join("nginx.pid").display(),
        prefix = prefix.display(),
        cert = files.cert.display(),
        key = files.key.display(),
    )
}

/// Writes the configuration for a free loopback port and starts nginx on
/// it, pinned like every server.
fn start_nginx(bench: &mut Bench, spec: &Spec, files: &Files) -> Result<Server, String> {
    let addr = free_port()?;
    let prefix = dir().join("nginx");
    fs::create_dir_all(&prefix).map_err(|e| format!("cannot create {}: {e}", prefix.display()))?;
    let conf = prefix.join("nginx.conf");
    fs::write(&conf, nginx_conf(addr, files, &prefix))
        .map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let mut argv = spec.program.clone();
    argv.extend([
        "-c".into(),
        path(&conf),
        "-p".into(),
        format!("{}/", prefix.display()),
        "-e".into(),
        path(&prefix.join("error.log")),
        "-g".into(),
        "daemon off;".into(),
    ]);
    Server::start_command(
        spec.id,
        &argv,
        addr,
        bench.pin,
        &bench.log_dir,
        &mut bench.record,
    )
}

/// A loopback port nobody listens on (bound and released: another process
/// could take it before nginx does, which only fails this round).
fn free_port() -> Result<SocketAddr, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free loopback port: {e}"))
}

fn targets(r: &Record) -> Vec<Target> {
    let fig = |id, figure| (id, figure);
    let vs = |label: &str, figure: &'static str, peer: &'static str, goal: Goal| {
        ratio(
            r,
            label,
            fig("ours-tls", figure),
            fig(peer, figure),
            Unit::Rps,
            goal,
        )
    };
    // Lower is better, and steadier than req/s when the load generator is
    // the limit (new connections: wrk's one thread does a client handshake
    // each) or other work shares the CPUs. Not on the chart.
    let cpu = |label: &str, figure: &'static str, peer: &'static str| {
        ratio(
            r,
            label,
            fig("ours-tls", figure),
            fig(peer, figure),
            Unit::MicrosFine,
            Goal::None,
        )
    };
    vec![
        vs(
            "14. HTTPS keep-alive req/s, 16 conns: ours / tiny_http (ssl-rustls)",
            "tls_ka_rps",
            "tiny-tls",
            Goal::AtLeast(1.0),
        ),
        vs(
            "14. new TLS connections/s, full handshakes, 16 conns: ours / tiny_http (ssl-rustls)",
            "tls_full_rps",
            "tiny-tls",
            Goal::AtLeast(1.0),
        ),
        vs(
            "14. HTTPS keep-alive req/s, 16 conns: ours / nginx",
            "tls_ka_rps",
            "nginx",
            Goal::None,
        ),
        vs(
            "14. new TLS connections/s, full handshakes, 16 conns: ours / nginx",
            "tls_full_rps",
            "nginx",
            Goal::None,
        ),
        cpu(
            "14. server CPU time per HTTPS keep-alive request: ours / tiny_http (ssl-rustls)",
            "tls_ka_cpu_us",
            "tiny-tls",
        ),
        cpu(
            "14. server CPU time per new TLS connection, full handshake: ours / tiny_http \
             (ssl-rustls)",
            "tls_full_cpu_us",
            "tiny-tls",
        ),
        cpu(
            "14. server CPU time per HTTPS keep-alive request: ours / nginx",
            "tls_ka_cpu_us",
            "nginx",
        ),
        cpu(
            "14. server CPU time per new TLS connection, full handshake: ours / nginx",
            "tls_full_cpu_us",
            "nginx",
        ),
        vs(
            "14. new TLS connections/s, wrk's resumption, 16 conns: ours / tiny_http \
             (ssl-rustls)",
            "tls_resume_rps",
            "tiny-tls",
            Goal::None,
        ),
        vs(
            "14. new TLS connections/s, wrk's resumption, 16 conns: ours / nginx",
            "tls_resume_rps",
            "nginx",
            Goal::None,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_counters_line() {
        let stderr = "something\ntls-handshakes: 1117 full, 3 resumed\n";
        assert_eq!(handshakes(stderr), Some((1117, 3)));
        assert_eq!(handshakes("no line\n"), None);
    }

    #[test]
    fn every_target_is_computed_from_the_rows() {
        let mut r = Record::default();
        for row in MEASUREMENT.rows {
            for id in MEASUREMENT.servers {
                r.set(id, row.figure, 2.0);
            }
        }
        r.set("ours-tls", "tls_ka_rps", 3.0);
        let targets = (MEASUREMENT.targets)(&r);
        assert_eq!(targets.len(), 10);
        assert!(targets.iter().all(|t| t.value.is_some()));
        // The throughput ratios are on the chart, the CPU time ones not.
        let charted: Vec<bool> = targets.iter().map(|t| t.chart).collect();
        assert_eq!(charted.iter().filter(|&&c| c).count(), 6);
        assert!(!charted[4] && !charted[7]);
        assert_eq!(targets[0].value, Some(1.5));
        assert_eq!(targets[0].met(), Some(true));
        assert_eq!(targets[1].met(), Some(true));
        assert_eq!(MEASUREMENT.rows.len(), 30);
    }

    #[test]
    fn nginx_conf_has_one_worker_and_the_certificate() {
        let files = Files {
            cert: PathBuf::from("/c.pem"),
            key: PathBuf::from("/k.pem"),
            counter: Err(String::new()),
        };
        let addr: SocketAddr = "127.0.0.1:4433".parse().expect("an address");
        let conf = nginx_conf(addr, &files, Path::new("/p"));
        for line in [
            "worker_processes 1;",
            "listen 127.0.0.1:4433 ssl;",
            "ssl_certificate /c.pem;",
            "ssl_certificate_key /k.pem;",
            "ssl_protocols TLSv1.3 TLSv1.2;",
            "access_log off;",
            "return 200 \"Hello, world!\";",
        ] {
            assert!(conf.contains(line), "{line} in {conf}");
        }
    }
}
