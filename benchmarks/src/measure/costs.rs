//! Measurement 13, what one request costs, counted rather than timed (so the
//! figures repeat on a noisy machine where wall-clock ones do not): system
//! calls per request, from `strace -c -f` attached to the running server
//! over a fixed number of requests, and user-space instructions per
//! request, from `valgrind --tool=callgrind` with the server started under
//! it. Two scenarios, both from the driver's own client, one request at a
//! time: keep-alive (one connection, `GET /` after `GET /`) and
//! connection-per-request (`Connection: close`, a new connection each).
//!
//! System calls: the server is started as usual and warmed up (threads a
//! server starts lazily exist by then), `strace -c -f -p PID` attaches to
//! every thread, the requests run, and strace is interrupted, which
//! detaches it and writes its table; the total number of calls divided by
//! the requests is the figure. The Rust Book's blocking pool makes 2 per
//! keep-alive request (`read`, `write`) and about 6 per connection
//! (`accept`, the hand-over to its worker, `read`, `write`, `read` of the
//! end, `close`): the floor to compare with.
//!
//! Instructions: two runs under callgrind, one with [`WARMUP`] requests and
//! one with [`WARMUP`] + [`INSTRUCTION_REQUESTS`]; both are stopped with
//! SIGINT (callgrind writes its totals on the way out), and the difference
//! of their instruction totals (Ir) divided by [`INSTRUCTION_REQUESTS`] is
//! the figure: start-up, warm-up and exit cancel out. The first run's total
//! is reported as the start-up cost. Kernel instructions are not counted.
//!
//! strace slows the traced threads, so a thread that spins (`sched_yield`)
//! before it sleeps spins longer here than it would untraced: those calls
//! are real, but their count is an upper bound.
//!
//! About 5 s per server and round; run alone with `--only costs`. Skipped
//! when strace or valgrind is missing. Node.js is not measured: under
//! valgrind its JIT makes the figure meaningless. astra has no
//! connection-per-request figures (see [`super::skip_close`]).

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::{ratio, skip_close, versus_baseline, Bench, Measurement, Row};
use crate::client::{self, GET};
use crate::record::Record;
use crate::report::{Goal, Target, Unit};
use crate::servers::{shown, Server, Spec};
use crate::system::Tool;

/// Requests before counting starts, in every run.
pub const WARMUP: usize = 20;
/// Requests counted by strace.
pub const SYSCALL_REQUESTS: usize = 2_000;
/// Requests counted by callgrind, beyond the baseline run's.
pub const INSTRUCTION_REQUESTS: usize = 1_000;
/// How long strace may take to attach to every thread.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server under valgrind may take to exit after SIGINT.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

pub const MEASUREMENT: Measurement = Measurement {
    id: "costs",
    title: "13. costs per request: system calls (strace -c -f) and instructions (callgrind), \
            one request at a time (own client)",
    servers: &["ours", "ours-base", "blocking", "tiny", "astra", "hyper"],
    needs: &[Tool::Strace, Tool::Valgrind],
    run,
    rows: &[
        Row {
            label: "system calls per request, keep-alive",
            figure: "cost_ka_syscalls",
            unit: Unit::PerRequest,
        },
        Row {
            label: "system calls per request, connection-per-request",
            figure: "cost_close_syscalls",
            unit: Unit::PerRequest,
        },
        Row {
            label: "instructions per request, keep-alive",
            figure: "cost_ka_ir",
            unit: Unit::Count,
        },
        Row {
            label: "instructions per request, connection-per-request",
            figure: "cost_close_ir",
            unit: Unit::Count,
        },
        Row {
            label: "instructions to start, exit and serve the warm-up, keep-alive run",
            figure: "cost_ka_ir_base",
            unit: Unit::Millions,
        },
        Row {
            label: "instructions to start, exit and serve the warm-up, conn-per-request run",
            figure: "cost_close_ir_base",
            unit: Unit::Millions,
        },
    ],
    targets,
};

/// How the client asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// One connection, one request after the other.
    KeepAlive,
    /// A new connection per request, `Connection: close`.
    Close,
}

impl Scenario {
    fn key(self) -> &'static str {
        match self {
            Scenario::KeepAlive => "ka",
            Scenario::Close => "close",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Scenario::KeepAlive => "keep-alive",
            Scenario::Close => "connection-per-request",
        }
    }
}

fn run(bench: &mut Bench, spec: &Spec) -> Result<(), String> {
    bench.record.command(
        "own client (measure/costs.rs)",
        &format!(
            "# one client, one request at a time: keep-alive (one connection) or \
             Connection: close (a connection each); {WARMUP} requests first, then \
             {SYSCALL_REQUESTS} under strace, {INSTRUCTION_REQUESTS} more than the \
             baseline under callgrind"
        ),
    );
    let mut failures = Vec::new();
    for scenario in [Scenario::KeepAlive, Scenario::Close] {
        if scenario == Scenario::Close && skip_close(bench, spec) {
            continue;
        }
        if let Err(e) = syscalls(bench, spec, scenario) {
            failures.push(format!("{} system calls: {e}", scenario.name()));
        }
        if let Err(e) = instructions(bench, spec, scenario) {
            failures.push(format!("{} instructions: {e}", scenario.name()));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

/// The client: in keep-alive, one connection for the warm-up and the
/// counted requests, so that neither its connect nor its close is counted
/// (and astra, which can stop answering new connections once one has
/// closed, can be measured).
struct Client {
    scenario: Scenario,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Client {
    fn new(scenario: Scenario) -> Client {
        Client {
            scenario,
            stream: None,
            buf: Vec::new(),
        }
    }

    /// Sends `n` requests, one at a time, in the scenario's way.
    fn send(&mut self, server: &Server, n: usize) -> Result<(), String> {
        for i in 0..n {
            let asked = match self.scenario {
                Scenario::KeepAlive => {
                    if self.stream.is_none() {
                        let stream = client::connect(server.addr, Duration::from_secs(10))
                            .map_err(|e| format!("connect: {e}"))?;
                        self.stream = Some(stream);
                    }
                    let stream = self.stream.as_mut().expect("connected above");
                    let answer = stream
                        .write_all(GET)
                        .and_then(|()| client::read_response(stream, &mut self.buf));
                    // A server that rotates keep-alive connections (ours
                    // does after 1,000 requests) says `Connection: close`:
                    // the next request reconnects, and its cost counts.
                    if let Ok(false) = answer {
                        self.stream = None;
                    }
                    answer.map(drop)
                }
                Scenario::Close => client::one_request(server.addr, &mut self.buf).map(drop),
            };
            asked.map_err(|e| format!("request {}: {e}", i + 1))?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// System calls

fn syscalls(bench: &mut Bench, spec: &Spec, scenario: Scenario) -> Result<(), String> {
    let mut server = bench.start(spec, &[])?;
    let mut client = Client::new(scenario);
    client.send(&server, WARMUP)?;
    let out = bench
        .log_dir
        .join(format!("strace-{}-{}.txt", spec.id, scenario.key()));
    let argv: Vec<String> = [
        "strace",
        "-c",
        "-f",
        "-o",
        &out.to_string_lossy(),
        "-p",
        &server.pid.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    bench.client_command("system calls", &masked_pid(&argv));
    let mut strace = attach(&argv, server.pid)?;
    let loaded = client.send(&server, SYSCALL_REQUESTS);
    // SIGINT: strace detaches from every thread and writes its table.
    // SAFETY: plain syscall on our own child, not yet waited for.
    unsafe {
        libc::kill(strace.id() as i32, libc::SIGINT);
    }
    let _ = strace.wait();
    loaded?;
    if !server.running() {
        return Err("the server exited under strace".into());
    }
    let table = fs::read_to_string(&out).map_err(|e| format!("no strace table: {e}"))?;
    let calls = parse_strace(&table).ok_or("no total in strace's table")?;
    let total: u64 = calls.iter().map(|(_, n)| n).sum();
    let per_request = total as f64 / SYSCALL_REQUESTS as f64;
    bench.record.set(
        spec.id,
        &format!("cost_{}_syscalls", scenario.key()),
        per_request,
    );
    if bench.record.rounds() <= 1 {
        let mut top: Vec<String> = calls
            .iter()
            .map(|(name, n)| (name, *n as f64 / SYSCALL_REQUESTS as f64))
            .filter(|(_, n)| *n >= 0.01)
            .map(|(name, n)| format!("{name} {n:.2}"))
            .collect();
        top.truncate(12);
        bench.record.note(format!(
            "13. {} system calls per {} request ({per_request:.2}): {}",
            spec.id,
            scenario.name(),
            top.join(", ")
        ));
    }
    Ok(())
}

/// Starts strace and waits until it has attached to every thread of `pid`
/// (it says `Process N attached with M threads`, or `Process N attached`
/// for each thread).
fn attach(argv: &[String], pid: i32) -> Result<Child, String> {
    let threads = fs::read_dir(format!("/proc/{pid}/task"))
        .map_err(|e| format!("cannot list the server's threads: {e}"))?
        .count();
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run strace: {e}"))?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + ATTACH_TIMEOUT;
    let mut attached = 0;
    let mut said = Vec::new();
    while attached < threads {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(" attached") => attached += attached_threads(&line),
            Ok(line) => said.push(line),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "strace attached to {attached} of {threads} threads: {}",
                    said.join(" / ")
                ));
            }
        }
    }
    Ok(child)
}

/// How many threads one of strace's `attached` lines stands for.
fn attached_threads(line: &str) -> usize {
    line.split_once(" attached with ")
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(1)
}

/// `strace -c`'s table: (system call, calls), most called first, without
/// the total line.
fn parse_strace(table: &str) -> Option<Vec<(String, u64)>> {
    let mut calls = Vec::new();
    let mut total = None;
    for line in table.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // % time, seconds, usecs/call, calls, [errors,] syscall
        if fields.len() < 5 || fields[0].parse::<f64>().is_err() {
            continue;
        }
        let Ok(n) = fields[3].parse::<u64>() else {
            continue;
        };
        let name = fields[fields.len() - 1];
        if name == "total" {
            total = Some(n);
        } else {
            calls.push((name.to_string(), n));
        }
    }
    total?;
    calls.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    Some(calls)
}

/// The strace command with `-p PID` shown as such, so that it is one line
/// in the report.
fn masked_pid(argv: &[String]) -> Vec<String> {
    let mut shown_argv = argv.to_vec();
    if let Some(i) = shown_argv.iter().position(|a| a == "-p") {
        if let Some(pid) = shown_argv.get_mut(i + 1) {
            *pid = "PID".into();
        }
    }
    shown_argv
}

// ---------------------------------------------------------------------------
// Instructions

fn instructions(bench: &mut Bench, spec: &Spec, scenario: Scenario) -> Result<(), String> {
    let base = callgrind_total(bench, spec, scenario, WARMUP)?;
    let more = callgrind_total(bench, spec, scenario, WARMUP + INSTRUCTION_REQUESTS)?;
    let key = scenario.key();
    bench
        .record
        .set(spec.id, &format!("cost_{key}_ir_base"), base as f64);
    bench.record.set(
        spec.id,
        &format!("cost_{key}_ir"),
        (more as f64 - base as f64) / INSTRUCTION_REQUESTS as f64,
    );
    Ok(())
}

/// Runs the server under callgrind, sends `n` requests, stops it, and
/// returns its instruction total.
fn callgrind_total(
    bench: &mut Bench,
    spec: &Spec,
    scenario: Scenario,
    n: usize,
) -> Result<u64, String> {
    let out = bench
        .log_dir
        .join(format!("callgrind-{}-{}-{n}.out", spec.id, scenario.key()));
    let _ = fs::remove_file(&out);
    let wrapper = vec![
        "valgrind".to_string(),
        "--tool=callgrind".into(),
        format!("--callgrind-out-file={}", out.to_string_lossy()),
    ];
    let mut server = bench.start_wrapped(spec, &wrapper)?;
    let mut client = Client::new(scenario);
    let loaded = client.send(&server, n);
    // The keep-alive connection closes before the stop, in both runs.
    drop(client);
    let stopped = server.stop(libc::SIGINT, EXIT_TIMEOUT);
    loaded?;
    if !stopped {
        return Err(format!("did not exit within {EXIT_TIMEOUT:?} of SIGINT"));
    }
    callgrind_file_total(&out)
}

/// The `totals:` (or `summary:`) line of a callgrind output file: Ir.
fn callgrind_file_total(path: &Path) -> Result<u64, String> {
    let shown_path = shown(&[path.to_string_lossy().into_owned()]);
    let text =
        fs::read_to_string(path).map_err(|e| format!("no callgrind output {shown_path}: {e}"))?;
    parse_callgrind(&text).ok_or_else(|| format!("no totals in {shown_path}"))
}

fn parse_callgrind(text: &str) -> Option<u64> {
    let value = |prefix: &str| {
        text.lines()
            .rev()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    value("totals:").or_else(|| value("summary:"))
}

// ---------------------------------------------------------------------------
// Targets

fn targets(r: &Record) -> Vec<Target> {
    let mut targets = Vec::new();
    for (key, what) in [("ka", "keep-alive"), ("close", "conn-per-request")] {
        let syscalls = format!("cost_{key}_syscalls");
        let ir = format!("cost_{key}_ir");
        // The blocking pool's keep-alive floor: recvfrom and sendto.
        let floor = if key == "ka" { " (read + write)" } else { "" };
        // Issue 28: keep-alive at hyper's cost, in calls and instructions.
        let goal = |peer| match (key, peer) {
            ("ka", "hyper") => Goal::AtMost(1.0),
            _ => Goal::None,
        };
        for (peer, name) in [("blocking", "blocking"), ("hyper", "hyper (1 thread)")] {
            let floor = if peer == "blocking" { floor } else { "" };
            targets.push(ratio(
                r,
                &format!("13. system calls per {what} request: ours / {name}{floor}"),
                ("ours", &syscalls),
                (peer, &syscalls),
                Unit::PerRequest,
                goal(peer),
            ));
        }
        for (peer, name) in [("blocking", "blocking"), ("hyper", "hyper (1 thread)")] {
            targets.push(ratio(
                r,
                &format!("13. instructions per {what} request: ours / {name}"),
                ("ours", &ir),
                (peer, &ir),
                Unit::Count,
                goal(peer),
            ));
        }
        targets.extend(versus_baseline(
            r,
            &format!("13. system calls per {what} request"),
            &syscalls,
            Unit::PerRequest,
        ));
        targets.extend(versus_baseline(
            r,
            &format!("13. instructions per {what} request"),
            &ir,
            Unit::Count,
        ));
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRACE: &str = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 60.00    0.006000           3      2000           write
 40.00    0.004000           1      2001         1 read
  0.00    0.000000           0         3           futex
------ ----------- ----------- --------- --------- ----------------
100.00    0.010000           2      4004         1 total
";

    #[test]
    fn parses_strace_tables() {
        let calls = parse_strace(STRACE).expect("parses");
        assert_eq!(
            calls,
            vec![
                ("read".to_string(), 2001),
                ("write".to_string(), 2000),
                ("futex".to_string(), 3)
            ]
        );
        assert!(parse_strace("strace: attach: ptrace(PTRACE_SEIZE, 1): denied").is_none());
    }

    #[test]
    fn parses_callgrind_totals() {
        let text = "version: 1\ncreator: callgrind-3.22.0\nevents: Ir\nsummary: 1234\n\
                    fn=main\n1 10\ntotals: 5678\n";
        assert_eq!(parse_callgrind(text), Some(5678));
        assert_eq!(parse_callgrind("summary: 99\n"), Some(99));
        assert_eq!(parse_callgrind("events: Ir\n"), None);
    }

    #[test]
    fn attach_lines_count_threads() {
        assert_eq!(
            attached_threads("strace: Process 4242 attached with 8 threads"),
            8
        );
        assert_eq!(attached_threads("strace: Process 4243 attached"), 1);
    }

    #[test]
    fn the_pid_is_masked() {
        let argv: Vec<String> = ["strace", "-c", "-p", "4242"].map(String::from).to_vec();
        assert_eq!(masked_pid(&argv), ["strace", "-c", "-p", "PID"]);
    }
}
