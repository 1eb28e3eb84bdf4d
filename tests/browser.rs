//! The HTTP example's chat page (`examples/chat.html`, served at
//! `/chat.html`) in a real browser: headless Chromium, driven by Python's
//! selenium (`tests/browser.py`), in two browsers at once: each says
//! something, and both must see it, as the chat room broadcasts it.
//!
//! - `the_chat_page_chats_and_shows_the_goodbye_at_sigterm`: the example
//!   alone; both pages chat, then SIGTERM: both show the WebSocket's
//!   goodbye (close code 1001) and the event stream's goodbye event, and
//!   the example exits 0 (Chromium answered the closing handshake, so the
//!   drain was not forced).
//! - `the_chat_page_reconnects_by_itself_after_a_restart`: the example under
//!   `examples/supervisor.rs`; both pages chat, then SIGHUP: the supervisor
//!   starts a new server and stops the old one, both pages show the old
//!   one's goodbye, reconnect by themselves (to the new server: the old
//!   one stopped accepting before it said goodbye) and chat again; the old
//!   server exited 0. Then SIGTERM: both pages show the new server's
//!   goodbye and the supervisor exits 0.
//!
//! The script prints `signal NAME` when it wants a signal sent, and `done`
//! at the end; every wait is bounded, here (a line from the script, an exit)
//! and in the script (each thing a page must show, and the whole script).
//! Only 127.0.0.1 is used. The two tests run one at a time (four Chromium
//! processes at once would slow a small machine for nothing).
//!
//! Ignored by a plain `cargo test`, so that it stays green on a machine
//! without a browser: it needs `chromium` and `chromedriver` (Debian's
//! `chromium` and `chromium-driver`) and Python's `selenium`. `.ci/run`
//! installs them and runs it with
//! `cargo test --all-features --test browser -- --ignored`, after a build of
//! the examples (`cargo build --all-features --examples`, or the whole
//! `cargo test`); run without them, it fails saying what is missing.
#![cfg(all(unix, feature = "websocket"))]

mod support;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use support::ServerProcess;

/// The selenium script.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser.py");
/// How long the script may take to print its next line. Its first lines wait
/// for two browsers to start on a possibly loaded machine; each check it
/// makes is bounded by 20 s, and the whole script by 180 s.
const LINE_BOUND: Duration = Duration::from_secs(120);
/// How long a server (or the script) may take to exit.
const EXIT_BOUND: Duration = Duration::from_secs(30);

/// One test at a time: each runs two browsers.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Fails, saying what to install, unless the browser, its driver and
/// selenium are there.
fn check_prerequisites() {
    let mut missing = Vec::new();
    for program in ["chromium", "chromedriver"] {
        let found = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
            .unwrap_or(false);
        if !found {
            missing.push(program);
        }
    }
    let selenium = Command::new("python3")
        .args(["-c", "import selenium"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false);
    if !selenium {
        missing.push("python3 with selenium");
    }
    assert!(
        missing.is_empty(),
        "not found: {}. `.ci/run` installs them (apt-get install chromium \
         chromium-driver; python3 -m pip install selenium) before it runs this test",
        missing.join(", ")
    );
}

/// `tests/browser.py` running as a child, in a process group of its own
/// (with the chromedriver and Chromium processes it starts): if the test
/// fails, the whole group is killed, so no browser is left behind.
struct Script {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
    /// The stdout lines read so far, for messages.
    seen: Vec<String>,
    /// Whether the script has been waited for: until then its id is still
    /// its process group's, even once it has exited.
    reaped: bool,
}

impl Script {
    fn start(url: &str, scenario: &str) -> Script {
        let mut child = Command::new("python3")
            .arg(SCRIPT)
            .arg(url)
            .arg(scenario)
            // Selenium talks to chromedriver on localhost: never through
            // a proxy the environment may name.
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run python3 tests/browser.py");
        let stdout = lines(child.stdout.take().expect("piped stdout"));
        let stderr = lines(child.stderr.take().expect("piped stderr"));
        Script {
            child,
            stdout,
            stderr,
            seen: Vec::new(),
            reaped: false,
        }
    }

    /// Reads the script's lines until one starts with `wanted`; progress
    /// lines (`step: ...`) are kept for messages, any other line fails the
    /// test.
    fn expect(&mut self, wanted: &str) -> String {
        loop {
            let line = match self.stdout.recv_timeout(LINE_BOUND) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Timeout) => self.fail(&format!(
                    "no {wanted:?} from the script within {LINE_BOUND:?}"
                )),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.fail(&format!("the script ended before {wanted:?}"))
                }
            };
            self.seen.push(line.clone());
            if line.starts_with(wanted) {
                return line;
            }
            if !line.starts_with("step: ") {
                self.fail(&format!("{line:?} from the script, expected {wanted:?}"));
            }
        }
    }

    /// Waits for `done` and for the script to exit 0; returns the `done`
    /// line.
    fn finish(&mut self) -> String {
        let done = self.expect("done");
        let status = support::wait_child(&mut self.child, EXIT_BOUND, "tests/browser.py");
        self.reaped = true;
        if !status.success() {
            self.fail(&format!("the script exited with {status}"));
        }
        done
    }

    /// Stops the script and its browsers, and fails with what it printed.
    fn fail(&mut self, why: &str) -> ! {
        self.kill_group();
        let status = match self.child.wait() {
            Ok(status) => status.to_string(),
            Err(e) => format!("not waited for: {e}"),
        };
        self.reaped = true;
        let mut stderr = Vec::new();
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(2)) {
            stderr.push(line);
        }
        panic!(
            "{why}\nthe script ({status}) printed:\n{}\nits stderr:\n{}",
            self.seen.join("\n"),
            stderr.join("\n")
        );
    }

    /// Kills the script and whatever it started (chromedriver, Chromium).
    fn kill_group(&mut self) {
        if !self.reaped {
            let group = libc::pid_t::try_from(self.child.id()).expect("pid");
            // SAFETY: kill has no memory-safety preconditions. The group is
            // the script's own (process_group(0)), and the script, its
            // leader, is not reaped yet (a zombie at most): the id is still
            // its group's, and cannot name another process.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill_group();
            let _ = self.child.wait();
        }
    }
}

/// The lines of `pipe`, read as they come by a thread of their own.
fn lines(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Kills a process group on drop while the test is failing: the
/// supervisor's, which holds the servers it started. Disarmed once the
/// supervisor has exited by itself (after its servers), when the group is
/// gone.
struct KillGroupOnFailure(Option<u32>);

impl Drop for KillGroupOnFailure {
    fn drop(&mut self) {
        if let (Some(leader), true) = (self.0, thread::panicking()) {
            let group = libc::pid_t::try_from(leader).expect("pid");
            // SAFETY: kill has no memory-safety preconditions. While armed,
            // the group has members (the supervisor is reaped only after
            // this drop, by its `ServerProcess`, or killed and reaped by a
            // failed wait, its servers left in the group).
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
    }
}

#[test]
#[ignore = "needs Chromium, chromedriver and selenium: .ci/run installs them and runs it with --ignored"]
fn the_chat_page_chats_and_shows_the_goodbye_at_sigterm() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    check_prerequisites();
    let mut command = Command::new(support::fresh_http_example());
    // A forced drain (exit 3) would take 10 s, not the default 30.
    command.args(["--addr", "127.0.0.1:0", "--drain-timeout", "10"]);
    let mut server = ServerProcess::start_command(command);
    let started = Instant::now();
    let mut script = Script::start(&format!("http://{}/chat.html", server.addr), "goodbye");

    script.expect("signal TERM");
    let signalled = Instant::now();
    server.signal("TERM");
    let status = server.wait_exit(EXIT_BOUND);
    let drained = signalled.elapsed();
    assert_eq!(
        status.code(),
        Some(0),
        "exit 3 is a forced drain: a page did not answer the goodbye; {}",
        server.stderr()
    );
    let done = script.finish();
    eprintln!(
        "the example drained in {drained:?} after SIGTERM; the script: {done}; \
         the test: {:?}",
        started.elapsed()
    );
}

#[test]
#[ignore = "needs Chromium, chromedriver and selenium: .ci/run installs them and runs it with --ignored"]
fn the_chat_page_reconnects_by_itself_after_a_restart() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    check_prerequisites();
    let http = support::fresh_http_example();
    let mut command = Command::new(support::example_path("supervisor"));
    command
        .args(["--addr", "127.0.0.1:0", "--"])
        .arg(http)
        // The servers serve on the supervisor's socket, not on --addr.
        .args(["--addr", "127.0.0.1:0", "--drain-timeout", "10"])
        .process_group(0);
    let mut supervisor = ServerProcess::start_command(command);
    let mut group = KillGroupOnFailure(Some(supervisor.pid()));
    let started = Instant::now();
    let ready = supervisor.wait_for_stderr("generation 1 ready as pid ", EXIT_BOUND);
    let (_, first) = ready
        .split_once("ready as pid ")
        .expect("the line has the pid");
    let mut script = Script::start(&format!("http://{}/chat.html", supervisor.addr), "restart");

    script.expect("signal HUP");
    supervisor.signal("HUP");
    supervisor.wait_for_stderr("generation 2 ready as pid", EXIT_BOUND);
    // The old server drained without being forced: both pages answered its
    // goodbye.
    let exited =
        supervisor.wait_for_stderr(&format!("generation 1 (pid {first}) exited"), EXIT_BOUND);
    assert!(
        exited.ends_with("exited: exit status: 0"),
        "the old server: {exited}"
    );

    script.expect("signal TERM");
    supervisor.signal("TERM");
    let status = supervisor.wait_exit(EXIT_BOUND);
    group.0 = None;
    assert_eq!(status.code(), Some(0), "{}", supervisor.stderr());
    let done = script.finish();
    eprintln!("the script: {done}; the test: {:?}", started.elapsed());
}
