//! Side-by-side benchmark: graceful-server against the peers users would pick
//! instead (the Rust Book's blocking pool, tiny_http, Node.js).
//!
//! ```text
//! cargo bench --bench compare                 # full run (about 7 minutes)
//! cargo bench --bench compare -- --quick      # smoke check (about 1 minute)
//! BENCH_SECS=10 BENCH_ROUNDS=5 cargo bench --bench compare
//! ```
//!
//! It builds the servers (`cargo build --release --bins --examples`), then,
//! for each round, starts every server in turn as a child process pinned to
//! CPU 0 and drives it from CPU 1 with `wrk` (HTTP throughput and latency)
//! or with the small clients below (what wrk cannot do: starvation,
//! sequential connection-per-request latency, echo ping-pong, signal-to-exit
//! time). Servers run one at a time and the order rotates every round; the
//! table shows medians over rounds, and every ratio is computed within a
//! round before taking its median. Targets are reported as met or not, never
//! asserted.
//!
//! Output: the table on stdout, `target/bench/compare.md` (or under
//! `CARGO_TARGET_DIR`), and the chart `benches/results/compare.svg` (a
//! `--quick` run writes its chart next to the table instead).
//!
//! Options (flags after `--`, or environment):
//! `--secs N` / `BENCH_SECS` (seconds per measurement, default 5),
//! `--rounds N` / `BENCH_ROUNDS` (default 3), `--quick` (1 s, 1 round),
//! `--no-chart` (leave the committed SVG alone), `--only ID,ID` (run only
//! these servers: ours, blocking, tiny, node, ours-echo, node-echo; implies
//! `--no-chart`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const SERVER_CPU: &str = "0";
const CLIENT_CPU: &str = "1";
/// Worker threads of every server that has a configurable pool.
const WORKERS: usize = 4;
/// The echo binary serves one connection per worker, so the echo test gives
/// it one worker per client.
const ECHO_CLIENTS: usize = 16;
const ECHO_MESSAGE: usize = 64;
const STARVATION_CONNECTIONS: usize = 32;
const IDLE_KEEPALIVE: usize = 10;
/// How long a server may take to print its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server may take to exit after SIGINT before it is killed.
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// Configuration

struct Config {
    secs: u64,
    rounds: usize,
    idle_secs: f64,
    seq_max: usize,
    chart: bool,
    quick: bool,
    /// Server ids to run (all when empty).
    only: Vec<String>,
}

impl Config {
    fn from_env_and_args() -> Config {
        let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        let mut config = Config {
            secs: env("BENCH_SECS").unwrap_or(5).max(1),
            rounds: env("BENCH_ROUNDS").map_or(3, |r| r as usize).max(1),
            idle_secs: 3.0,
            seq_max: 20_000,
            chart: true,
            quick: false,
            only: Vec::new(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut number = |name: &str| -> u64 {
                match args.next().and_then(|v| v.parse().ok()) {
                    Some(n) => n,
                    None => {
                        eprintln!("compare: {name} needs a number");
                        std::process::exit(2);
                    }
                }
            };
            match arg.as_str() {
                "--quick" => {
                    config.quick = true;
                    config.secs = 1;
                    config.rounds = 1;
                    config.idle_secs = 1.0;
                    config.seq_max = 2_000;
                }
                "--secs" => config.secs = number("--secs").max(1),
                "--rounds" => config.rounds = (number("--rounds") as usize).max(1),
                "--no-chart" => config.chart = false,
                "--only" => {
                    let ids = args.next().unwrap_or_default();
                    config.only = ids.split(',').map(str::to_string).collect();
                    config.chart = false;
                }
                // Added by `cargo bench`.
                "--bench" => {}
                other => eprintln!("compare: ignoring argument {other:?}"),
            }
        }
        config
    }
}

// ---------------------------------------------------------------------------
// Building and finding the binaries

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => manifest_dir().join(dir),
        None => manifest_dir().join("target"),
    }
}

/// Runs `cargo build --release` with `targets` and returns the executables
/// it reports, by target name. Build errors are shown, not fatal.
fn cargo_build(targets: &[&str]) -> Result<BTreeMap<String, PathBuf>, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(manifest_dir())
        .args([
            "build",
            "--release",
            "--message-format=json-render-diagnostics",
        ])
        .args(targets)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!("cargo build {} failed", targets.join(" ")));
    }
    let mut found = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if !line.contains("\"reason\":\"compiler-artifact\"") {
            continue;
        }
        let (Some(name), Some(exe)) = (
            json_string_after(line, "\"target\":", "\"name\":\""),
            json_string_after(line, "", "\"executable\":\""),
        ) else {
            continue;
        };
        found.insert(name, PathBuf::from(exe));
    }
    Ok(found)
}

/// The JSON string that follows `key`, searching after `anchor`. Enough for
/// cargo's messages, whose paths and names need no escapes on Unix.
fn json_string_after(line: &str, anchor: &str, key: &str) -> Option<String> {
    let from = line.find(anchor)?;
    let rest = &line[from..];
    let start = rest.find(key)? + key.len();
    let end = rest[start..].find('"')?;
    Some(rest[start..start + end].to_string())
}

/// Where a target's executable is, from cargo's report or by convention.
fn executable(found: &BTreeMap<String, PathBuf>, name: &str, example: bool) -> Option<PathBuf> {
    if let Some(path) = found.get(name) {
        return Some(path.clone());
    }
    let dir = target_dir().join("release");
    let path = if example {
        dir.join("examples").join(name)
    } else {
        dir.join(name)
    };
    path.exists().then_some(path)
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

// ---------------------------------------------------------------------------
// The servers

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Http,
    Echo,
}

struct Spec {
    /// Short key used in the results.
    id: &'static str,
    /// Column of the table this server's figures go to.
    column: Column,
    kind: Kind,
    program: Vec<String>,
    /// Whether SIGINT starts a graceful shutdown (otherwise it kills).
    graceful: bool,
    /// Whether it takes `--workers` (for the RSS figure).
    pool: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Column {
    Ours,
    Blocking,
    Tiny,
    Node,
}

const COLUMNS: [(Column, &str); 4] = [
    (Column::Ours, "graceful-server"),
    (Column::Blocking, "blocking (Book)"),
    (Column::Tiny, "tiny_http"),
    (Column::Node, "Node.js"),
];

/// A server child process. Dropping it kills the process if it still runs.
struct Server {
    pid: i32,
    addr: SocketAddr,
    exited: mpsc::Receiver<(Instant, std::io::Result<ExitStatus>)>,
    gone: bool,
}

impl Server {
    fn start(
        spec: &Spec,
        workers: usize,
        extra: &[&str],
        pin: bool,
        log_dir: &Path,
    ) -> Result<Server, String> {
        let mut args: Vec<String> = Vec::new();
        if pin {
            args.extend(["taskset".into(), "-c".into(), SERVER_CPU.into()]);
        }
        args.extend(spec.program.iter().cloned());
        args.extend([
            "--addr".into(),
            "127.0.0.1:0".into(),
            "--workers".into(),
            workers.to_string(),
        ]);
        args.extend(extra.iter().map(|a| a.to_string()));
        let log = fs::File::create(log_dir.join(format!("{}.log", spec.id)))
            .map_err(|e| format!("cannot create log: {e}"))?;
        // `taskset` execs the server, so the child's pid is the server's.
        let mut child = Command::new(&args[0])
            .args(&args[1..])
            .current_dir(manifest_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", args.join(" ")))?;
        let pid = child.id() as i32;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (exit_tx, exited) = mpsc::channel();
        thread::spawn(move || {
            let status = child.wait();
            let _ = exit_tx.send((Instant::now(), status));
        });
        let (line_tx, line_rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = line_tx.send(line);
            // Keep reading so that the server never writes into a closed
            // pipe (Node would throw on EPIPE).
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let mut server = Server {
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            exited,
            gone: false,
        };
        let line = line_rx
            .recv_timeout(START_TIMEOUT)
            .map_err(|_| format!("{} printed nothing within {START_TIMEOUT:?}", spec.id))?;
        server.addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("{}: unexpected first line {line:?}", spec.id))?;
        Ok(server)
    }

    fn signal(&self, signal: i32) {
        if !self.gone {
            // SAFETY: plain syscall; the pid is ours and not reaped yet
            // (`gone` is false), so it cannot name another process.
            unsafe {
                libc::kill(self.pid, signal);
            }
        }
    }

    /// Sends SIGINT and measures how long the process takes to exit.
    fn interrupt_and_time(&mut self) -> Result<(Duration, ExitStatus), String> {
        let start = Instant::now();
        self.signal(libc::SIGINT);
        match self.exited.recv_timeout(EXIT_TIMEOUT) {
            Ok((at, status)) => {
                self.gone = true;
                let status = status.map_err(|e| format!("wait failed: {e}"))?;
                Ok((at.duration_since(start), status))
            }
            Err(_) => Err(format!("did not exit within {EXIT_TIMEOUT:?} of SIGINT")),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.gone {
            return;
        }
        self.signal(libc::SIGKILL);
        let _ = self.exited.recv_timeout(EXIT_TIMEOUT);
        self.gone = true;
    }
}

// ---------------------------------------------------------------------------
// /proc readings

fn proc_status_field(path: &Path, field: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Context switches (voluntary + involuntary) of every thread, and the CPU
/// time they used in nanoseconds.
fn switches_and_cpu(pid: i32) -> (u64, u64) {
    let mut switches = 0;
    let mut cpu_ns = 0;
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    for task in tasks.flatten() {
        let status = task.path().join("status");
        switches += proc_status_field(&status, "voluntary_ctxt_switches:").unwrap_or(0);
        switches += proc_status_field(&status, "nonvoluntary_ctxt_switches:").unwrap_or(0);
        // schedstat's first field: time on the CPU in ns (finer than the
        // 10 ms ticks of `stat`).
        if let Some(ns) = fs::read_to_string(task.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        {
            cpu_ns += ns;
        } else if let Some(ns) = stat_cpu_ns(&task.path().join("stat")) {
            cpu_ns += ns;
        }
    }
    (switches, cpu_ns)
}

fn stat_cpu_ns(path: &Path) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    // Fields after the parenthesised name; utime and stime are 14 and 15.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(ticks * 1_000_000_000 / hz)
}

/// The server's CPU use during a measurement: whether the server or the
/// load generator was the bottleneck.
struct CpuMeter {
    pid: i32,
    start: Instant,
    switches: u64,
    cpu_ns: u64,
}

impl CpuMeter {
    fn start(pid: i32) -> CpuMeter {
        let (switches, cpu_ns) = switches_and_cpu(pid);
        CpuMeter {
            pid,
            start: Instant::now(),
            switches,
            cpu_ns,
        }
    }

    /// The server's context switches per unit of work (request, message)
    /// since `start`.
    fn switches_per(&self, work: f64) -> f64 {
        switches_and_cpu(self.pid).0.saturating_sub(self.switches) as f64 / work
    }

    /// Percent of one CPU used since `start`.
    fn percent(&self) -> f64 {
        let used = switches_and_cpu(self.pid).1.saturating_sub(self.cpu_ns);
        used as f64 / 1e9 / self.start.elapsed().as_secs_f64() * 100.0
    }

    fn figure(&self, of: &str) -> &'static str {
        leak(format!("{of}_cpu_pct"))
    }
}

/// Wake-ups per second and CPU percent of an idle server.
fn idle(pid: i32, secs: f64) -> (f64, f64) {
    let (s0, c0) = switches_and_cpu(pid);
    thread::sleep(Duration::from_secs_f64(secs));
    let (s1, c1) = switches_and_cpu(pid);
    let wakeups = s1.saturating_sub(s0) as f64 / secs;
    let cpu = c1.saturating_sub(c0) as f64 / 1e9 / secs * 100.0;
    (wakeups, cpu)
}

fn rss_kib(pid: i32) -> Option<u64> {
    proc_status_field(&PathBuf::from(format!("/proc/{pid}/status")), "VmRSS:")
}

/// Waits until the process has `threads` threads (its pool is up) or 2 s.
fn wait_for_threads(pid: i32, threads: u64) {
    let status = PathBuf::from(format!("/proc/{pid}/status"));
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if proc_status_field(&status, "Threads:").unwrap_or(0) >= threads {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    thread::sleep(Duration::from_millis(200));
}

// ---------------------------------------------------------------------------
// Load: wrk

struct WrkResult {
    rps: f64,
    p99_us: f64,
    errors: u64,
}

fn wrk(addr: SocketAddr, connections: usize, secs: u64, close: bool) -> Result<WrkResult, String> {
    let mut command = Command::new("wrk");
    command.args([
        "-t1",
        &format!("-c{connections}"),
        &format!("-d{secs}s"),
        "--timeout",
        "2s",
        "--latency",
    ]);
    if close {
        command.args(["-H", "Connection: close"]);
    }
    command.arg(format!("http://{addr}/"));
    let output = command
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    let output = wait_output_bounded(output, Duration::from_secs(secs + 15))?;
    let text = String::from_utf8_lossy(&output);
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no Requests/sec in wrk output: {text}"))?;
    let p99_us = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .and_then(|v| parse_wrk_duration(v.trim()))
        .unwrap_or(f64::NAN);
    let mut errors = 0;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Socket errors:") {
            errors += rest
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
        if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            errors += rest.trim().parse::<u64>().unwrap_or(0);
        }
    }
    Ok(WrkResult {
        rps,
        p99_us,
        errors,
    })
}

fn parse_wrk_duration(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let value: f64 = text[..split].parse().ok()?;
    let scale = match &text[split..] {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        _ => return None,
    };
    Some(value * scale)
}

/// Waits for a child's stdout, killing it if it overruns `limit`.
fn wait_output_bounded(mut child: std::process::Child, limit: Duration) -> Result<Vec<u8>, String> {
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let reader = thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("load generator overran its time and was killed".into());
            }
        }
    }
    reader
        .join()
        .map_err(|_| "reader thread panicked".to_string())
}

// ---------------------------------------------------------------------------
// Load: our own clients

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
const GET_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";

fn connect(addr: SocketAddr, read_timeout: Duration) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(read_timeout.max(Duration::from_millis(1))))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    Ok(stream)
}

/// Reads one HTTP response. Returns whether the connection stays open.
fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(head)) = response.parse(buf) else {
            continue;
        };
        let mut length = 0;
        let mut keep = true;
        for h in response.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                length = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
            }
            if h.name.eq_ignore_ascii_case("connection") && h.value.eq_ignore_ascii_case(b"close") {
                keep = false;
            }
        }
        let need = head + length;
        while buf.len() < need {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        return Ok(keep);
    }
}

/// 32 keep-alive clients for `secs`; returns answers per connection slot.
/// A client whose connection is closed reconnects; one that waits in vain
/// stops at the deadline.
fn starvation(addr: SocketAddr, secs: u64) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    thread::scope(|scope| {
        let clients: Vec<_> = (0..STARVATION_CONNECTIONS)
            .map(|_| {
                scope.spawn(move || {
                    let mut answers = 0u64;
                    let mut buf = Vec::new();
                    let mut stream: Option<TcpStream> = None;
                    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                        let s = match stream.as_mut() {
                            Some(s) => s,
                            None => match connect(addr, left) {
                                Ok(s) => stream.insert(s),
                                Err(_) => {
                                    thread::sleep(Duration::from_millis(5));
                                    continue;
                                }
                            },
                        };
                        let _ = s.set_read_timeout(Some(left.max(Duration::from_millis(1))));
                        if s.write_all(GET).is_err() {
                            stream = None;
                            continue;
                        }
                        match read_response(s, &mut buf) {
                            // An answer after the deadline does not count:
                            // it came because other clients hung up.
                            Ok(_) if Instant::now() >= deadline => break,
                            Ok(keep) => {
                                answers += 1;
                                if !keep {
                                    stream = None;
                                }
                            }
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                ) =>
                            {
                                break
                            }
                            Err(_) => stream = None,
                        }
                    }
                    answers
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap_or(0)).collect()
    })
}

/// Sequential connection-per-request latencies in microseconds.
fn sequential(addr: SocketAddr, secs: u64, max: usize) -> Result<Vec<f64>, String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut samples = Vec::new();
    let mut buf = Vec::new();
    while Instant::now() < deadline && samples.len() < max {
        samples.push(one_request(addr, &mut buf)?);
    }
    Ok(samples)
}

fn one_request(addr: SocketAddr, buf: &mut Vec<u8>) -> Result<f64, String> {
    let start = Instant::now();
    let mut s = connect(addr, Duration::from_secs(2)).map_err(|e| format!("connect: {e}"))?;
    s.write_all(GET_CLOSE).map_err(|e| format!("write: {e}"))?;
    read_response(&mut s, buf).map_err(|e| format!("read: {e}"))?;
    Ok(start.elapsed().as_secs_f64() * 1e6)
}

/// The first request after the server was left alone for `quiet`: where a
/// polling acceptor pays its wait cap. Median of `n` tries, microseconds.
fn after_quiet(addr: SocketAddr, quiet: Duration, n: usize) -> Result<f64, String> {
    let mut buf = Vec::new();
    let mut samples = Vec::new();
    for _ in 0..n {
        thread::sleep(quiet);
        samples.push(one_request(addr, &mut buf)?);
    }
    Ok(median(&mut samples))
}

/// Echo ping-pong with `clients` connections; messages per second.
fn echo(addr: SocketAddr, clients: usize, secs: u64) -> Result<f64, String> {
    let duration = Duration::from_secs(secs);
    let counts: Vec<Result<u64, String>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(move || -> Result<u64, String> {
                    let mut s = connect(addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
                    let message = [b'x'; ECHO_MESSAGE];
                    let mut back = [0u8; ECHO_MESSAGE];
                    let start = Instant::now();
                    let mut n = 0;
                    while start.elapsed() < duration {
                        s.write_all(&message).map_err(|e| e.to_string())?;
                        s.read_exact(&mut back).map_err(|e| e.to_string())?;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("client panicked".into())))
            .collect()
    });
    let mut total = 0;
    for count in counts {
        total += count?;
    }
    Ok(total as f64 / secs as f64)
}

/// Opens `n` keep-alive connections, one answered request each, and keeps
/// them open (idle). Returns them and how many were answered.
fn idle_keepalive(addr: SocketAddr, n: usize) -> (Vec<TcpStream>, usize) {
    let mut streams = Vec::new();
    let mut answered = 0;
    let mut buf = Vec::new();
    for _ in 0..n {
        let Ok(mut s) = connect(addr, Duration::from_secs(2)) else {
            continue;
        };
        if s.write_all(GET).is_ok() && read_response(&mut s, &mut buf).is_ok() {
            answered += 1;
        }
        streams.push(s);
    }
    (streams, answered)
}

// ---------------------------------------------------------------------------
// Statistics

fn median(values: &mut [f64]) -> f64 {
    percentile(values, 50.0)
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = (p / 100.0 * (values.len() - 1) as f64).round() as usize;
    values[rank.min(values.len() - 1)]
}

/// Every measurement of one round: (server id, figure) -> value.
type Round = BTreeMap<(&'static str, &'static str), f64>;

struct Results {
    rounds: Vec<Round>,
    notes: Vec<String>,
}

impl Results {
    fn values(&self, id: &str, figure: &str) -> Vec<f64> {
        self.rounds
            .iter()
            .filter_map(|r| r.get(&(id, figure)).copied())
            .filter(|v| !v.is_nan())
            .collect()
    }

    fn median(&self, id: &str, figure: &str) -> Option<f64> {
        let mut values = self.values(id, figure);
        (!values.is_empty()).then(|| median(&mut values))
    }

    /// Median over rounds of a per-round combination of two figures.
    fn per_round(
        &self,
        a: (&str, &str),
        b: (&str, &str),
        combine: fn(f64, f64) -> f64,
    ) -> Option<f64> {
        let mut values: Vec<f64> = self
            .rounds
            .iter()
            .filter_map(|r| Some(combine(*r.get(&a)?, *r.get(&b)?)))
            .filter(|v| v.is_finite())
            .collect();
        (!values.is_empty()).then(|| median(&mut values))
    }
}

// ---------------------------------------------------------------------------
// One server, one round

fn measure(
    spec: &Spec,
    config: &Config,
    pin: bool,
    has_wrk: bool,
    log_dir: &Path,
    round: &mut Round,
    notes: &mut Vec<String>,
) {
    let id = spec.id;
    let mut note = |what: &str, error: String| {
        let line = format!("{id}: {what}: {error}");
        eprintln!("  ! {line}");
        notes.push(line);
    };
    let workers = if spec.kind == Kind::Echo {
        ECHO_CLIENTS
    } else {
        WORKERS
    };
    let mut server = match Server::start(spec, workers, &[], pin, log_dir) {
        Ok(server) => server,
        Err(e) => return note("start", e),
    };
    eprintln!("  {id} on {} (pid {})", server.addr, server.pid);

    // Idle first, on the fresh server.
    thread::sleep(Duration::from_millis(300));
    let (wakeups, cpu) = idle(server.pid, config.idle_secs);
    round.insert((id, "idle_wakeups"), wakeups);
    round.insert((id, "idle_cpu_pct"), cpu);

    match spec.kind {
        Kind::Http => {
            if has_wrk {
                for (figure_rps, figure_p99, connections, close) in [
                    ("ka4_rps", "ka4_p99_us", 4, false),
                    ("ka32_rps", "ka32_p99_us", STARVATION_CONNECTIONS, false),
                    ("close16_rps", "close16_p99_us", 16, true),
                ] {
                    let cpu = CpuMeter::start(server.pid);
                    match wrk(server.addr, connections, config.secs, close) {
                        Ok(r) => {
                            round.insert((id, cpu.figure(figure_rps)), cpu.percent());
                            round.insert(
                                (id, leak(format!("{figure_rps}_switches"))),
                                cpu.switches_per(r.rps * config.secs as f64),
                            );
                            round.insert((id, figure_rps), r.rps);
                            round.insert((id, figure_p99), r.p99_us);
                            if r.errors > 0 {
                                round.insert(
                                    (id, leak(format!("{figure_rps}_errors"))),
                                    r.errors as f64,
                                );
                            }
                        }
                        Err(e) => note(figure_rps, e),
                    }
                }
            }
            let answers = starvation(server.addr, config.secs.min(3));
            let answered = answers.iter().filter(|&&a| a > 0).count();
            round.insert((id, "starve_answered"), answered as f64);
            round.insert(
                (id, "starve_min"),
                answers.iter().copied().min().unwrap_or(0) as f64,
            );
            round.insert(
                (id, "starve_rps"),
                answers.iter().sum::<u64>() as f64 / config.secs.min(3) as f64,
            );

            match sequential(server.addr, config.secs, config.seq_max) {
                Ok(mut samples) => {
                    round.insert((id, "seq_p50_us"), percentile(&mut samples, 50.0));
                    round.insert((id, "seq_p99_us"), percentile(&mut samples, 99.0));
                }
                Err(e) => note("sequential", e),
            }
            match after_quiet(server.addr, Duration::from_millis(200), 5) {
                Ok(us) => {
                    round.insert((id, "quiet_us"), us);
                }
                Err(e) => note("after quiet", e),
            }
        }
        Kind::Echo => {
            let cpu = CpuMeter::start(server.pid);
            match echo(server.addr, ECHO_CLIENTS, config.secs) {
                Ok(mps) => {
                    round.insert((id, cpu.figure("echo_mps")), cpu.percent());
                    round.insert(
                        (id, "echo_switches"),
                        cpu.switches_per(mps * config.secs as f64),
                    );
                    round.insert((id, "echo_mps"), mps);
                }
                Err(e) => note("echo", e),
            }
        }
    }

    // Signal to exit, no connections.
    thread::sleep(Duration::from_millis(50));
    record_exit(spec, &mut server, round, "exit_idle_ms", &mut note);
    drop(server);

    // Signal to exit with idle keep-alive connections. One worker per
    // connection, so that all of them are held open and idle rather than
    // queued.
    // Our example waits `--idle-grace` (250 ms by default) for a last request
    // on idle connections; it is measured with and without that grace.
    let mut variants: Vec<(&[&str], &'static str)> = vec![(&[], "exit_ka10_ms")];
    if spec.id == "ours" {
        variants.push((&["--idle-grace", "0"], "exit_ka10_nograce_ms"));
    }
    for (extra, figure) in variants.into_iter().filter(|_| spec.kind == Kind::Http) {
        match Server::start(spec, 16, extra, pin, log_dir) {
            Ok(mut server) => {
                let (streams, answered) = idle_keepalive(server.addr, IDLE_KEEPALIVE);
                if answered < IDLE_KEEPALIVE {
                    note(
                        "idle keep-alive",
                        format!("only {answered} of {IDLE_KEEPALIVE} answered"),
                    );
                }
                thread::sleep(Duration::from_millis(50));
                record_exit(spec, &mut server, round, figure, &mut note);
                drop(streams);
            }
            Err(e) => note("start (keep-alive exit)", e),
        }
    }

    // Memory per worker.
    if spec.pool {
        let mut rss = [0.0; 2];
        for (slot, workers) in [(0, 1), (1, 512)] {
            match Server::start(spec, workers, &[], pin, log_dir) {
                Ok(server) => {
                    wait_for_threads(server.pid, workers as u64);
                    rss[slot] = rss_kib(server.pid).map_or(f64::NAN, |k| k as f64);
                }
                Err(e) => note("start (rss)", e),
            }
        }
        round.insert((id, "rss1_kib"), rss[0]);
        round.insert((id, "rss512_kib"), rss[1]);
        round.insert((id, "rss_per_worker_kib"), (rss[1] - rss[0]) / 511.0);
    }
}

fn record_exit(
    spec: &Spec,
    server: &mut Server,
    round: &mut Round,
    figure: &'static str,
    note: &mut impl FnMut(&str, String),
) {
    match server.interrupt_and_time() {
        Ok((time, status)) => {
            round.insert((spec.id, figure), time.as_secs_f64() * 1e3);
            if status.signal().is_some() {
                round.insert((spec.id, leak(format!("{figure}_killed"))), 1.0);
            }
        }
        Err(e) => note(figure, e),
    }
}

/// Figure names are `&'static str`; the few built at run time are leaked
/// (a handful of bytes per run).
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

// ---------------------------------------------------------------------------
// Report

struct Target {
    label: &'static str,
    value: Option<f64>,
    goal: &'static str,
    met: Option<bool>,
    /// For the chart: (ratio, threshold).
    ratio: Option<f64>,
    threshold: f64,
}

fn targets(r: &Results) -> Vec<Target> {
    let ratio = |figure: &'static str,
                 peer: &'static str,
                 threshold: f64,
                 label: &'static str,
                 goal: &'static str| {
        let ours = if peer == "node-echo" {
            "ours-echo"
        } else {
            "ours"
        };
        let value = r.per_round((ours, figure), (peer, figure), |a, b| a / b);
        Target {
            label,
            value,
            goal,
            met: value.map(|v| v >= threshold),
            ratio: value,
            threshold,
        }
    };
    let ceiling = |value: Option<f64>, max: f64, label: &'static str, goal: &'static str| Target {
        label,
        value,
        goal,
        met: value.map(|v| v <= max),
        ratio: None,
        threshold: max,
    };
    let starve = r.median("ours", "starve_answered");
    vec![
        ratio(
            "ka4_rps",
            "tiny",
            1.5,
            "keep-alive req/s (4 conns) vs tiny_http",
            ">= 1.5x",
        ),
        ratio(
            "ka4_rps",
            "node",
            1.5,
            "keep-alive req/s (4 conns) vs Node http",
            ">= 1.5x",
        ),
        ratio(
            "ka4_rps",
            "blocking",
            0.9,
            "keep-alive req/s (4 conns) vs blocking",
            ">= 0.9x",
        ),
        ratio(
            "close16_rps",
            "tiny",
            1.0,
            "conn-per-request req/s (16 conns) vs tiny_http",
            ">= 1.0x",
        ),
        ratio(
            "close16_rps",
            "blocking",
            0.9,
            "conn-per-request req/s (16 conns) vs blocking",
            ">= 0.9x",
        ),
        ceiling(
            r.per_round(
                ("ours", "seq_p50_us"),
                ("blocking", "seq_p50_us"),
                |a, b| a - b,
            ),
            100.0,
            "sequential p50 minus blocking's (us)",
            "<= 100 us",
        ),
        ratio(
            "echo_mps",
            "node-echo",
            2.0,
            "echo msgs/s (16 clients) vs Node net",
            ">= 2x",
        ),
        Target {
            label: "keep-alive, 32 conns: connections answered",
            value: starve,
            goal: "32 of 32",
            met: starve.map(|v| v >= STARVATION_CONNECTIONS as f64),
            ratio: None,
            threshold: 0.0,
        },
        ceiling(
            r.median("ours-echo", "idle_wakeups"),
            100.0,
            "idle wake-ups/s (echo binary)",
            "<= 100",
        ),
        ceiling(
            r.median("ours", "idle_wakeups"),
            100.0,
            "idle wake-ups/s (http example)",
            "<= 100",
        ),
        ceiling(
            r.median("ours-echo", "rss_per_worker_kib"),
            16.0,
            "RSS per idle worker (KiB)",
            "<= 16",
        ),
    ]
}

fn fmt_value(figure: &str, v: f64) -> String {
    if v.is_nan() {
        return "-".into();
    }
    if figure.ends_with("_rps") || figure.ends_with("_mps") {
        format!("{v:.0}")
    } else if figure.ends_with("_us") {
        if v >= 10_000.0 {
            format!("{:.1} ms", v / 1e3)
        } else {
            format!("{v:.0} us")
        }
    } else if figure.ends_with("_ms") {
        format!("{v:.2} ms")
    } else if figure.ends_with("_kib") {
        format!("{v:.1} KiB")
    } else if figure.ends_with("_pct") {
        format!("{v:.2}%")
    } else if figure.starts_with("starve_answered") {
        format!("{v:.0}/{STARVATION_CONNECTIONS}")
    } else if figure.ends_with("_switches") {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

/// Rows of the main table: label, figure, server id per column (HTTP ids,
/// or echo ids for echo rows).
fn rows() -> Vec<(&'static str, &'static str, [&'static str; 4])> {
    let http = ["ours", "blocking", "tiny", "node"];
    let echo = ["ours-echo", "", "", "node-echo"];
    let pool = ["ours-echo", "blocking", "tiny", ""];
    vec![
        ("HTTP keep-alive req/s, 4 conns", "ka4_rps", http),
        ("HTTP keep-alive p99, 4 conns", "ka4_p99_us", http),
        ("server CPU during it", "ka4_rps_cpu_pct", http),
        (
            "server context switches per request",
            "ka4_rps_switches",
            http,
        ),
        ("HTTP keep-alive req/s, 32 conns", "ka32_rps", http),
        ("HTTP keep-alive p99, 32 conns", "ka32_p99_us", http),
        ("server CPU during it", "ka32_rps_cpu_pct", http),
        (
            "32 conns: connections answered (own client)",
            "starve_answered",
            http,
        ),
        ("32 conns: fewest answers on one conn", "starve_min", http),
        ("32 conns: req/s (own client)", "starve_rps", http),
        ("conn-per-request req/s, 16 conns", "close16_rps", http),
        ("conn-per-request p99, 16 conns", "close16_p99_us", http),
        ("server CPU during it", "close16_rps_cpu_pct", http),
        ("sequential conn-per-request p50", "seq_p50_us", http),
        ("sequential conn-per-request p99", "seq_p99_us", http),
        (
            "first request after 200 ms quiet (median of 5)",
            "quiet_us",
            http,
        ),
        ("echo ping-pong msgs/s, 16 clients", "echo_mps", echo),
        ("server CPU during it", "echo_mps_cpu_pct", echo),
        ("server context switches per message", "echo_switches", echo),
        ("idle wake-ups/s (HTTP server)", "idle_wakeups", http),
        ("idle wake-ups/s (echo server)", "idle_wakeups", echo),
        ("idle CPU (HTTP server)", "idle_cpu_pct", http),
        ("idle CPU (echo server)", "idle_cpu_pct", echo),
        (
            "SIGINT to exit, no connections (HTTP)",
            "exit_idle_ms",
            http,
        ),
        (
            "SIGINT to exit, no connections (echo)",
            "exit_idle_ms",
            echo,
        ),
        (
            "SIGINT to exit, 10 idle keep-alive conns",
            "exit_ka10_ms",
            http,
        ),
        (
            "SIGINT to exit, 10 idle keep-alive conns, --idle-grace 0",
            "exit_ka10_nograce_ms",
            http,
        ),
        ("RSS, 1 worker (ours: echo binary)", "rss1_kib", pool),
        ("RSS, 512 workers", "rss512_kib", pool),
        ("RSS per extra worker", "rss_per_worker_kib", pool),
    ]
}

fn render(r: &Results, config: &Config, machine: &str, command: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "Machine: {machine}\n");
    let _ = writeln!(md, "Command: `{command}`\n");
    let _ = writeln!(
        md,
        "Medians of {} round(s), {} s per throughput measurement; ratios are computed within each round, then the median is taken.\n",
        config.rounds, config.secs
    );
    let _ = write!(md, "| Figure |");
    for (_, name) in COLUMNS {
        let _ = write!(md, " {name} |");
    }
    let _ = writeln!(md, "\n|---|---:|---:|---:|---:|");
    let mut killed = false;
    for (label, figure, ids) in rows() {
        let _ = write!(md, "| {label} |");
        for id in ids {
            let cell = if id.is_empty() {
                "n/a".to_string()
            } else {
                match r.median(id, figure) {
                    Some(v) => {
                        let mut cell = fmt_value(figure, v);
                        if r.median(id, leak(format!("{figure}_killed"))).is_some() {
                            cell.push_str(" \u{2020}");
                            killed = true;
                        }
                        if let Some(e) = r.median(id, leak(format!("{figure}_errors"))) {
                            let _ = write!(cell, " ({e:.0} err)");
                        }
                        cell
                    }
                    None => "-".to_string(),
                }
            };
            let _ = write!(md, " {cell} |");
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "graceful-server column: `examples/http.rs` with --workers {WORKERS} for HTTP rows, the `graceful-server` echo binary for echo and RSS rows (--workers {ECHO_CLIENTS} for echo, one worker per connection). Node.js has one event loop. The SIGINT rows with keep-alive connections run every server with --workers 16 so that all 10 connections are held idle."
    );
    if killed {
        let _ = writeln!(md, "\n\u{2020} no graceful shutdown: SIGINT's default action killed the process (nothing was drained).");
    }
    let _ = writeln!(
        md,
        "\n| Target | Measured | Goal | Met |\n|---|---:|---|---|"
    );
    for t in targets(r) {
        let value = match t.value {
            Some(v) if t.ratio.is_some() => fmt_ratio(v, t.threshold),
            Some(v) => format!("{v:.1}"),
            None => "-".into(),
        };
        let met = match t.met {
            Some(true) => "met",
            Some(false) => "**not met**",
            None => "not measured",
        };
        let _ = writeln!(md, "| {} | {value} | {} | {met} |", t.label, t.goal);
    }
    if !r.notes.is_empty() {
        let _ = writeln!(md, "\nNotes from the run:\n");
        for n in &r.notes {
            let _ = writeln!(md, "- {n}");
        }
    }
    md
}

/// Three decimals near the goal, so that a miss never prints as the goal
/// itself (1.497x, not 1.50x).
fn fmt_ratio(v: f64, threshold: f64) -> String {
    if (v - threshold).abs() < 0.01 {
        format!("{v:.3}x")
    } else {
        format!("{v:.2}x")
    }
}

/// A horizontal bar chart of the ratio targets, hand-written SVG.
fn chart(targets: &[Target]) -> String {
    let bars: Vec<&Target> = targets.iter().filter(|t| t.ratio.is_some()).collect();
    let (left, width, bar_h, gap, top) = (330.0, 360.0, 22.0, 12.0, 40.0);
    let max = bars
        .iter()
        .filter_map(|t| t.ratio)
        .chain(bars.iter().map(|t| t.threshold))
        .fold(2.0_f64, f64::max)
        * 1.1;
    let scale = |v: f64| left + v / max * width;
    let height = top + bars.len() as f64 * (bar_h + gap) + 30.0;
    let total_w = left + width + 80.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{height}" viewBox="0 0 {total_w} {height}" font-family="sans-serif" font-size="12">"##
    );
    let _ = writeln!(
        svg,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        svg,
        r##"<text x="10" y="20" font-size="14" font-weight="bold">graceful-server: ratio to each peer (median of rounds; tick = target)</text>"##
    );
    let _ = writeln!(
        svg,
        r##"<text x="10" y="{}" fill="#555"><tspan fill="#2e8b57">&#9632; met</tspan>  <tspan fill="#c0392b">&#9632; not met</tspan></text>"##,
        height - 10.0
    );
    let one = (scale(1.0) * 10.0).round() / 10.0;
    let _ = writeln!(
        svg,
        r##"<line x1="{one}" y1="{}" x2="{one}" y2="{}" stroke="#888" stroke-dasharray="4,3"/>"##,
        top - 6.0,
        height - 24.0
    );
    let _ = writeln!(
        svg,
        r##"<text x="{one}" y="{}" text-anchor="middle" fill="#555">1.0x</text>"##,
        height - 10.0
    );
    for (i, t) in bars.iter().enumerate() {
        let y = top + i as f64 * (bar_h + gap);
        let v = t.ratio.unwrap_or(0.0);
        let colour = if t.met == Some(true) {
            "#2e8b57"
        } else {
            "#c0392b"
        };
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="end">{}</text>"##,
            left - 8.0,
            y + bar_h * 0.7,
            t.label
        );
        let _ = writeln!(
            svg,
            r##"<rect x="{left}" y="{y}" width="{:.1}" height="{bar_h}" fill="{colour}"/>"##,
            (scale(v) - left).max(1.0)
        );
        let tick = scale(t.threshold);
        let _ = writeln!(
            svg,
            r##"<line x1="{tick:.1}" y1="{}" x2="{tick:.1}" y2="{}" stroke="#000" stroke-width="2"/>"##,
            y - 3.0,
            y + bar_h + 3.0
        );
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{}">{}</text>"##,
            scale(v).max(tick) + 6.0,
            y + bar_h * 0.7,
            fmt_ratio(v, t.threshold)
        );
    }
    let _ = writeln!(svg, "</svg>");
    svg
}

// ---------------------------------------------------------------------------

fn machine() -> String {
    let cpus = command_output("nproc", &[]).unwrap_or_else(|| "?".into());
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = command_output("uname", &["-sr"]).unwrap_or_default();
    let node = command_output("node", &["--version"])
        .map(|v| format!(", Node.js {v}"))
        .unwrap_or_default();
    let rustc = command_output("rustc", &["--version"]).unwrap_or_default();
    format!("{cpus} CPUs (nproc), {model}, {kernel}, {rustc}{node}")
}

fn main() {
    let config = Config::from_env_and_args();
    let started = Instant::now();
    let command = if config.quick {
        "cargo bench --bench compare -- --quick".to_string()
    } else {
        format!(
            "BENCH_SECS={} BENCH_ROUNDS={} cargo bench --bench compare",
            config.secs, config.rounds
        )
    };

    // Build everything before pinning, with every CPU.
    eprintln!("compare: building the servers (cargo build --release)");
    let mut found = match cargo_build(&[
        "--bins",
        "--example",
        "baseline_blocking",
        "--example",
        "baseline_tiny_http",
    ]) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("compare: {e}");
            std::process::exit(1);
        }
    };
    let mut notes = Vec::new();
    if manifest_dir().join("examples/http.rs").exists() {
        match cargo_build(&["--example", "http"]) {
            Ok(more) => found.extend(more),
            Err(e) => notes.push(format!("HTTP example not benchmarked: {e}")),
        }
    } else {
        notes.push("HTTP example not benchmarked: examples/http.rs does not exist yet".into());
    }

    // Before pinning, which would make `nproc` say 1.
    let machine = machine();
    let has_wrk = have("wrk");
    if !has_wrk {
        let hint = "wrk is not installed: HTTP throughput figures skipped (install it with `apt-get install -y wrk`)";
        eprintln!("compare: {hint}");
        notes.push(hint.into());
    }
    let cpus: usize = command_output("nproc", &[])
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let pin = have("taskset") && cpus >= 2;
    if pin {
        // Pin this process (the load generator: our clients and wrk, which
        // inherit it) to CPU 1; servers are started on CPU 0.
        let me = std::process::id().to_string();
        let ok = Command::new("taskset")
            .args(["-a", "-p", "-c", CLIENT_CPU, &me])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            notes.push("could not pin the load generator to CPU 1".into());
        }
    } else {
        let why = if cpus < 2 {
            "fewer than 2 CPUs"
        } else {
            "taskset (util-linux) is missing"
        };
        notes.push(format!(
            "no CPU pinning: {why}; server and load generator share the CPUs"
        ));
    }

    let mut specs = Vec::new();
    let path = |p: PathBuf| vec![p.to_string_lossy().into_owned()];
    if let Some(p) = executable(&found, "http", true)
        .filter(|_| manifest_dir().join("examples/http.rs").exists())
    {
        specs.push(Spec {
            id: "ours",
            column: Column::Ours,
            kind: Kind::Http,
            program: path(p),
            graceful: true,
            pool: false,
        });
    }
    match executable(&found, "baseline_blocking", true) {
        Some(p) => specs.push(Spec {
            id: "blocking",
            column: Column::Blocking,
            kind: Kind::Http,
            program: path(p),
            graceful: false,
            pool: true,
        }),
        None => notes.push("baseline_blocking was not built".into()),
    }
    match executable(&found, "baseline_tiny_http", true) {
        Some(p) => specs.push(Spec {
            id: "tiny",
            column: Column::Tiny,
            kind: Kind::Http,
            program: path(p),
            graceful: false,
            pool: true,
        }),
        None => notes.push("baseline_tiny_http was not built".into()),
    }
    match executable(&found, "graceful-server", false) {
        Some(p) => specs.push(Spec {
            id: "ours-echo",
            column: Column::Ours,
            kind: Kind::Echo,
            program: path(p),
            graceful: true,
            pool: true,
        }),
        None => notes.push("the graceful-server binary was not built".into()),
    }
    if have("node") {
        let script = |name: &str| {
            vec![
                "node".to_string(),
                manifest_dir()
                    .join("benches/node")
                    .join(name)
                    .to_string_lossy()
                    .into_owned(),
            ]
        };
        specs.push(Spec {
            id: "node",
            column: Column::Node,
            kind: Kind::Http,
            program: script("http.js"),
            graceful: true,
            pool: false,
        });
        specs.push(Spec {
            id: "node-echo",
            column: Column::Node,
            kind: Kind::Echo,
            program: script("echo.js"),
            graceful: true,
            pool: false,
        });
    } else {
        notes.push("node is not on PATH: Node.js peers skipped".into());
    }

    if !config.only.is_empty() {
        specs.retain(|s| config.only.iter().any(|id| id == s.id));
    }
    let log_dir = target_dir().join("bench").join("logs");
    if let Err(e) = fs::create_dir_all(&log_dir) {
        eprintln!("compare: cannot create {}: {e}", log_dir.display());
        std::process::exit(1);
    }
    eprintln!("compare: {machine}");
    eprintln!(
        "compare: {} server(s), {} round(s), {} s per measurement{}",
        specs.len(),
        config.rounds,
        config.secs,
        if pin {
            ", servers on CPU 0, load on CPU 1"
        } else {
            ""
        }
    );

    let mut results = Results {
        rounds: Vec::new(),
        notes,
    };
    for round in 0..config.rounds {
        let mut measured = Round::new();
        // Interleave: rotate the order every round.
        let n = specs.len();
        for i in 0..n {
            let spec = &specs[(i + round) % n];
            eprintln!(
                "round {}/{}: {} ({:?}, graceful SIGINT: {})",
                round + 1,
                config.rounds,
                spec.id,
                spec.column,
                spec.graceful
            );
            measure(
                spec,
                &config,
                pin,
                has_wrk,
                &log_dir,
                &mut measured,
                &mut results.notes,
            );
        }
        results.rounds.push(measured);
    }

    let md = render(&results, &config, &machine, &command);
    println!("\n{md}");
    let out = target_dir().join("bench").join("compare.md");
    match fs::write(&out, &md) {
        Ok(()) => eprintln!("compare: table written to {}", out.display()),
        Err(e) => eprintln!("compare: cannot write {}: {e}", out.display()),
    }
    if config.chart {
        // A quick run's chart must not replace the committed one.
        let svg_path = if config.quick {
            target_dir().join("bench").join("compare.svg")
        } else {
            manifest_dir().join("benches/results/compare.svg")
        };
        let written = fs::create_dir_all(svg_path.parent().expect("has a parent"))
            .and_then(|()| fs::write(&svg_path, chart(&targets(&results))));
        match written {
            Ok(()) => eprintln!("compare: chart written to {}", svg_path.display()),
            Err(e) => eprintln!("compare: cannot write {}: {e}", svg_path.display()),
        }
    }
    eprintln!("compare: done in {:.0} s", started.elapsed().as_secs_f64());
}
