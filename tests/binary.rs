//! The echo binary, run as a child process over real loopback sockets and
//! signalled with `kill`: the README's two-terminal scenario end to
//! end, the deadline, the second signal, the command line and the exit codes.
//!
//! Signals belong to the whole process, so they only ever go to the child.
//! Every wait is for an event (a stderr line, a reply, an exit) and has a
//! bound, so a regression fails the test instead of hanging it.

// Elsewhere the signal tests are unix only (`kill`), and so are the
// helpers only they use.
#![cfg_attr(not(unix), allow(dead_code, unused_imports))]

mod support;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::{client, echo_round_trip, is_refused, ServerProcess};

/// Generous bound for anything the server should do "at once": a loaded
/// 2-core machine can be slow, and a passing run never waits this long.
const BOUND: Duration = Duration::from_secs(10);

/// The environment variables that would make the binary inherit a socket or
/// notify a supervisor instead of doing what the test asks.
const SYSTEMD_VARS: [&str; 4] = [
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
];

/// The echo binary with `args` and a clean environment.
fn echo_command(args: &[&str]) -> Command {
    let mut command = Command::new(support::echo_binary());
    command.args(args);
    for var in SYSTEMD_VARS {
        command.env_remove(var);
    }
    command
}

/// Starts the echo binary on a free loopback port, plus `args`.
fn start(args: &[&str]) -> ServerProcess {
    let mut all = vec!["--addr", "127.0.0.1:0"];
    all.extend_from_slice(args);
    ServerProcess::start_command(echo_command(&all))
}

/// What a process that exits by itself left behind.
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs the echo binary with exactly `args` (no `--addr` added) and waits
/// for it to exit, at most [`BOUND`]; kills it and fails the test if it
/// does not.
fn run_to_exit(args: &[&str]) -> Finished {
    let mut child = echo_command(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the echo binary");
    // Read both pipes on their own threads, so a chatty child never blocks
    // on a full pipe while we wait for it.
    let collect = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = collect(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = collect(Box::new(child.stderr.take().expect("piped stderr")));
    let status = support::wait_child(&mut child, BOUND, &format!("graceful-server {args:?}"));
    Finished {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Whether a socket listens on `addr`'s port, from the kernel's socket table
/// (Linux only; `None` elsewhere). Looking does not touch the listener.
fn is_listening(addr: SocketAddr) -> Option<bool> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let port = format!(":{:04X}", addr.port());
    let listening = ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        std::fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|line| {
                let mut fields = line.split_whitespace();
                let local = fields.nth(1).unwrap_or("");
                let state = fields.nth(1).unwrap_or("");
                // 0A is TCP_LISTEN.
                local.ends_with(&port) && state == "0A"
            })
    });
    Some(listening)
}

/// Waits until nothing listens on `addr` any more.
///
/// The `shutting down` line is printed when the shutdown is triggered, while
/// the acceptor sweeps the backlog and closes the listener on its own thread.
/// A probe connect in that window would be swept and served, and change the
/// counts. The kernel's socket table shows when the listener is gone without
/// touching it. Other systems have no such table; there the window (a few
/// microseconds against a pipe round trip) is accepted.
fn wait_until_not_listening(addr: SocketAddr) {
    let deadline = Instant::now() + BOUND;
    while is_listening(addr) == Some(true) {
        assert!(
            Instant::now() < deadline,
            "{addr} still listening {BOUND:?} after shutdown started"
        );
        // The listener's close is not observable as an event from outside
        // the process; the poll only bounds how soon we notice it.
        thread::sleep(Duration::from_millis(2));
    }
}

/// Asserts that `stream` was closed by the server: end of file, or a reset.
/// A timeout means the server never closed it.
fn assert_closed_by_server(stream: &mut TcpStream) {
    match support::read_to_end(stream) {
        Ok(rest) => assert!(rest.is_empty(), "unexpected bytes {rest:?}"),
        Err(e) => assert!(
            matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
            ),
            "expected end of file or a reset, got {e}"
        ),
    }
}

/// The README's two-terminal scenario: two clients, a signal, the server keeps serving them
/// and says so, refuses newcomers, and exits 0 once both hang up.
#[cfg(unix)] // used by the signal tests only
fn two_terminal_scenario(signal: &str) {
    let mut server = start(&[]);
    let addr = server.addr;
    let mut first = client(addr);
    let mut second = client(addr);
    // A reply means each connection is accepted and its handler is running.
    assert_eq!(echo_round_trip(&mut first, b"hello 1").unwrap(), b"hello 1");
    assert_eq!(
        echo_round_trip(&mut second, b"hello 2").unwrap(),
        b"hello 2"
    );

    server.signal(signal);
    let line = server.wait_for_stderr("shutting down", BOUND);
    assert!(
        line.contains("2 connection"),
        "open count missing: {line:?}"
    );
    assert!(line.contains("force"), "no hint how to force: {line:?}");

    // Still running, still serving both clients.
    assert_eq!(echo_round_trip(&mut first, b"still 1").unwrap(), b"still 1");
    assert_eq!(
        echo_round_trip(&mut second, b"still 2").unwrap(),
        b"still 2"
    );
    wait_until_not_listening(addr);
    assert!(is_refused(addr), "a new connection was not refused");
    assert_eq!(echo_round_trip(&mut first, b"again 1").unwrap(), b"again 1");

    drop(first);
    drop(second);
    let status = server.wait_exit(BOUND);
    assert_eq!(status.code(), Some(0), "{status}; {}", server.stderr());
    let report = server.wait_for_stderr(" accepted", BOUND);
    assert!(report.starts_with("drained"), "not drained: {report:?}");
    assert!(report.contains(" 2 accepted"), "{report:?}");
    assert!(report.contains(" 2 completed"), "{report:?}");
}

#[test]
#[cfg(unix)] // stops the server with a signal (`kill`), which Windows lacks
fn sigint_drains_open_connections_then_exits_0() {
    two_terminal_scenario("INT");
}

#[test]
#[cfg(unix)] // stops the server with a signal (`kill`), which Windows lacks
fn sigterm_drains_open_connections_then_exits_0() {
    two_terminal_scenario("TERM");
}

#[test]
#[cfg(unix)] // stops the server with a signal (`kill`), which Windows lacks
fn sighup_starts_a_graceful_shutdown() {
    let mut server = start(&[]);
    assert_eq!(
        echo_round_trip(&mut client(server.addr), b"hi").unwrap(),
        b"hi"
    );
    server.signal("HUP");
    if hangup_ignored_here() {
        // Run under `nohup` (the tests themselves): the server inherited
        // SIGHUP as ignored and keeps it so, as the README says. It still
        // serves; SIGINT stops it instead.
        assert_eq!(
            echo_round_trip(&mut client(server.addr), b"still").unwrap(),
            b"still"
        );
        server.signal("INT");
    }
    let status = server.wait_exit(BOUND);
    assert_eq!(status.code(), Some(0), "{status}; {}", server.stderr());
    let report = server.wait_for_stderr(" accepted", BOUND);
    assert!(report.starts_with("drained"), "{report:?}");
    let accepted = if hangup_ignored_here() { 2 } else { 1 };
    assert!(
        report.contains(&format!(" {accepted} accepted")),
        "{report:?}"
    );
}

/// Whether this process ignores SIGHUP (started under `nohup`), so that
/// the server it starts inherits that: from `/proc/self/status`'s
/// `SigIgn` mask on Linux; elsewhere taken as not.
#[cfg(unix)]
fn hangup_ignored_here() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let mask = status.lines().find_map(|l| l.strip_prefix("SigIgn:"))?;
            u64::from_str_radix(mask.trim(), 16).ok()
        })
        // SIGHUP is signal 1: bit 0.
        .is_some_and(|mask| mask & 1 != 0)
}

#[test]
#[cfg(unix)] // stops the server with a signal (`kill`), which Windows lacks
fn drain_timeout_forces_and_exits_3() {
    let mut server = start(&["--drain-timeout", "0.3"]);
    let mut stay = client(server.addr);
    assert_eq!(echo_round_trip(&mut stay, b"stay").unwrap(), b"stay");

    let signalled = Instant::now();
    server.signal("INT");
    let line = server.wait_for_stderr("shutting down", BOUND);
    assert!(line.contains("1 connection"), "{line:?}");
    let status = server.wait_exit(BOUND);
    // A lower bound only: the deadline cannot pass before it is due.
    assert!(
        signalled.elapsed() >= Duration::from_millis(300),
        "forced after {:?}, before the 0.3 s deadline",
        signalled.elapsed()
    );
    assert_eq!(status.code(), Some(3), "{status}; {}", server.stderr());
    let report = server.wait_for_stderr(" accepted", BOUND);
    assert!(report.starts_with("forced"), "{report:?}");
    assert!(report.contains(" 1 force-closed"), "{report:?}");
    assert_closed_by_server(&mut stay);
}

#[test]
#[cfg(unix)] // stops the server with a signal (`kill`), which Windows lacks
fn second_signal_forces_and_exits_3() {
    let mut server = start(&["--drain-timeout", "none"]);
    let mut stay = client(server.addr);
    assert_eq!(echo_round_trip(&mut stay, b"stay").unwrap(), b"stay");

    server.signal("INT");
    let line = server.wait_for_stderr("shutting down", BOUND);
    assert!(line.contains("no deadline"), "{line:?}");
    // Without a deadline only the second signal can end this.
    server.signal("INT");
    let status = server.wait_exit(BOUND);
    assert_eq!(status.code(), Some(3), "{status}; {}", server.stderr());
    let report = server.wait_for_stderr(" accepted", BOUND);
    assert!(report.starts_with("forced"), "{report:?}");
    assert_closed_by_server(&mut stay);
}

#[test]
#[cfg(unix)] // stops the server with a signal (`kill`), which Windows lacks
fn a_signal_right_after_the_listening_line_is_handled() {
    // The line is printed only once the handler is in place; a few rounds
    // make a missed ordering likely to show.
    for signal in ["INT", "TERM", "INT"] {
        let mut server = start(&[]);
        server.signal(signal);
        let status = server.wait_exit(BOUND);
        // `code()` is None when a signal killed the process.
        assert_eq!(status.code(), Some(0), "{status}; {}", server.stderr());
        let report = server.wait_for_stderr(" accepted", BOUND);
        assert!(report.starts_with("drained"), "{report:?}");
    }
}

#[test]
#[cfg(unix)] // stops the server with a signal (`kill`), which Windows lacks
fn queued_and_backlogged_connections_are_served_at_shutdown() {
    let mut server = start(&["--workers", "1"]);
    let addr = server.addr;
    // A holds the only worker.
    let mut busy = client(addr);
    assert_eq!(echo_round_trip(&mut busy, b"busy").unwrap(), b"busy");
    // B..F wait for it: in the job queue or still in the kernel backlog. Their
    // messages wait in the socket buffers until a worker gets to them.
    let mut waiting: Vec<(TcpStream, Vec<u8>)> = (b'B'..=b'F')
        .map(|name| {
            let mut stream = client(addr);
            let message = format!("waiting {}", name as char).into_bytes();
            stream.write_all(&message).expect("write while waiting");
            (stream, message)
        })
        .collect();

    server.signal("INT");
    server.wait_for_stderr("shutting down", BOUND);
    wait_until_not_listening(addr);
    assert!(is_refused(addr), "a new connection was not refused");

    // A hangs up; the worker then serves each waiting client in turn, and
    // moves on when that client hangs up.
    drop(busy);
    for (stream, message) in &mut waiting {
        let mut reply = vec![0; message.len()];
        stream
            .read_exact(&mut reply)
            .unwrap_or_else(|e| panic!("{:?}: no echo: {e}", String::from_utf8_lossy(message)));
        assert_eq!(&reply, message);
        stream.shutdown(std::net::Shutdown::Write).expect("hang up");
    }
    let status = server.wait_exit(BOUND);
    assert_eq!(status.code(), Some(0), "{status}; {}", server.stderr());
    let report = server.wait_for_stderr(" accepted", BOUND);
    assert!(report.starts_with("drained"), "{report:?}");
    assert!(report.contains(" 6 accepted"), "{report:?}");
    assert!(report.contains(" 0 unserved"), "{report:?}");
}

#[test]
fn bad_command_lines_exit_2_with_a_message_and_a_hint() {
    for (args, problem) in [
        (&["--workers", "0"][..], "--workers"),
        (&["--workers", "lots"], "--workers"),
        (&["--drain-timeout", "-1"], "--drain-timeout"),
        (&["--drain-timeout", "abc"], "--drain-timeout"),
        (&["--addr", "nonsense"], "--addr"),
        (&["--addr"], "--addr"),
        (&["--bogus"], "--bogus"),
    ] {
        let done = run_to_exit(args);
        assert_eq!(done.status.code(), Some(2), "{args:?}: {}", done.stderr);
        assert_eq!(done.stdout, "", "{args:?} wrote to stdout");
        assert!(
            !done.stderr.contains("panicked"),
            "{args:?}: {}",
            done.stderr
        );
        let first = done.stderr.lines().next().unwrap_or("");
        assert!(
            first.contains(problem),
            "{args:?}: first stderr line {first:?} does not name {problem}"
        );
        assert!(
            done.stderr.contains("usage") && done.stderr.contains("--help"),
            "{args:?}: no usage hint in {:?}",
            done.stderr
        );
    }
}

#[test]
fn an_address_in_use_exits_1() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("local_addr").to_string();
    let done = run_to_exit(&["--addr", &addr]);
    assert_eq!(done.status.code(), Some(1), "{}", done.stderr);
    assert!(!done.stdout.contains("listening on"), "{}", done.stdout);
    assert!(
        done.stderr.contains("cannot listen") && done.stderr.contains(&addr),
        "{:?}",
        done.stderr
    );
    assert!(!done.stderr.contains("panicked"), "{}", done.stderr);
    drop(taken);
}

#[test]
fn help_lists_options_defaults_and_exit_codes() {
    let done = run_to_exit(&["--help"]);
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
    let help = &done.stdout;
    for needle in [
        "--addr",
        "--workers",
        "--drain-timeout",
        "--help",
        "--version",
        "127.0.0.1:7878",
        "default",
        "none",
        "exit status",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
    for code in ["0", "1", "2", "3"] {
        assert!(
            help.lines().any(|line| line.trim_start().starts_with(code)),
            "--help does not explain exit status {code}:\n{help}"
        );
    }
}

#[test]
fn version_prints_the_version() {
    let done = run_to_exit(&["--version"]);
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
    assert_eq!(
        done.stdout.trim_end(),
        format!("graceful-server {}", env!("CARGO_PKG_VERSION"))
    );
}

/// Starts the echo binary through `sh`, which first sets `signal`'s
/// disposition to "ignore" (`trap '' SIG`); `exec` keeps it, as `nohup` and
/// a non-interactive shell's `&` do.
#[cfg(target_os = "linux")] // used by the /proc tests only
fn start_with_ignored(signal: &str) -> ServerProcess {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!(r#"trap '' {signal}; exec "$0" --addr 127.0.0.1:0"#))
        .arg(support::echo_binary());
    ServerProcess::start_command(command)
}

/// Whether signal number `signal` is set in the hexadecimal mask `field`
/// (`SigIgn`, `SigCgt`) of `/proc/PID/status`.
#[cfg(target_os = "linux")]
fn proc_signal_mask_has(pid: u32, field: &str, signal: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let mask = status
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .map(|hex| u64::from_str_radix(hex.trim(), 16).expect("hex mask"))
        .expect("mask line");
    mask & (1 << (signal - 1)) != 0
}

#[test]
#[cfg(target_os = "linux")] // reads the dispositions from /proc
fn sighup_inherited_as_ignored_stays_ignored_under_nohup() {
    let mut server = start_with_ignored("HUP");
    // The handler is installed before the `listening on` line.
    assert!(
        proc_signal_mask_has(server.pid(), "SigIgn", 1),
        "SIGHUP must stay ignored"
    );
    assert!(
        proc_signal_mask_has(server.pid(), "SigCgt", 2),
        "SIGINT handled"
    );
    assert!(
        proc_signal_mask_has(server.pid(), "SigCgt", 15),
        "SIGTERM handled"
    );
    // A hangup changes nothing: a new client is still served.
    server.signal("HUP");
    let mut conn = client(server.addr);
    assert_eq!(
        echo_round_trip(&mut conn, b"still here").unwrap(),
        b"still here"
    );
    drop(conn);
    // SIGTERM still drains and exits 0.
    server.signal("TERM");
    let status = server.wait_exit(BOUND);
    assert_eq!(status.code(), Some(0), "{status}; {}", server.stderr());
}

#[test]
#[cfg(target_os = "linux")] // reads the dispositions from /proc
fn sigint_inherited_as_ignored_is_still_handled() {
    let mut server = start_with_ignored("INT");
    assert!(
        proc_signal_mask_has(server.pid(), "SigCgt", 2),
        "SIGINT must be handled even when inherited as ignored"
    );
    let mut conn = client(server.addr);
    assert_eq!(echo_round_trip(&mut conn, b"hi").unwrap(), b"hi");
    server.signal("INT");
    server.wait_for_stderr("shutting down", BOUND);
    // Mid-conversation: still served during the drain.
    assert_eq!(echo_round_trip(&mut conn, b"more").unwrap(), b"more");
    drop(conn);
    let status = server.wait_exit(BOUND);
    assert_eq!(status.code(), Some(0), "{status}; {}", server.stderr());
}

#[test]
#[cfg(unix)] // stops the server with a signal (`kill`), which Windows lacks
fn verbose_logs_every_connection_end() {
    let mut server = start(&["--verbose"]);
    let mut conn = client(server.addr);
    assert_eq!(echo_round_trip(&mut conn, b"hi").unwrap(), b"hi");
    drop(conn);
    let line = server.wait_for_stderr("connection 1 from 127.0.0.1:", BOUND);
    assert!(line.contains(": Completed after "), "{line:?}");
    server.signal("INT");
    let status = server.wait_exit(BOUND);
    assert_eq!(status.code(), Some(0), "{status}");
}
