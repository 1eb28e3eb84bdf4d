//! Helpers shared by the integration tests: clients with timeouts, and server
//! processes run as children and signalled with `kill`.
//!
//! Every helper fails fast: nothing here can block longer than its timeout.
#![allow(dead_code)] // each test file uses a different subset
pub mod relay;
#[cfg(feature = "tls")]
pub mod tls;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The timeout for every client read and write in the tests.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to `addr` with read and write timeouts set.
pub fn client(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("read timeout");
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .expect("write timeout");
    stream
}

/// Sends `message` and reads the same number of bytes back.
pub fn echo_round_trip(stream: &mut TcpStream, message: &[u8]) -> io::Result<Vec<u8>> {
    stream.write_all(message)?;
    let mut reply = vec![0; message.len()];
    stream.read_exact(&mut reply)?;
    Ok(reply)
}

/// Whether a new connection to `addr` is refused (the listener is closed).
pub fn is_refused(addr: SocketAddr) -> bool {
    match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
        Err(e) => e.kind() == io::ErrorKind::ConnectionRefused,
        Ok(_) => false,
    }
}

/// Reads until end of file; the error kind if the connection fails instead
/// (e.g. `ConnectionReset`).
pub fn read_to_end(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut all = Vec::new();
    stream.read_to_end(&mut all)?;
    Ok(all)
}

/// The path of an example's binary. `cargo test` builds the examples into
/// `target/<profile>/examples/`, next to the `deps/` folder holding the test
/// binary.
pub fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} not built: run the whole `cargo test` (it builds the examples), \
         or `cargo build --examples` before running one test file",
        path.display()
    );
    path
}

/// The HTTP example's binary, checked to be newer than its sources (the
/// library's, every file under `src/` but the echo binary's, and the
/// example's). Plain `cargo test` builds examples, but `cargo test --test
/// NAME` does not, and a stale binary would test old code without a word.
pub fn fresh_http_example() -> PathBuf {
    let binary = example_path("http");
    let modified = |path: &std::path::Path| {
        std::fs::metadata(path)
            .and_then(|m| m.modified())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let built = modified(&binary);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = vec![
        root.join("examples/http.rs"),
        root.join("examples/chat.html"),
    ];
    let mut dirs = vec![root.join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read a source directory") {
            let path = entry.expect("read a source directory").path();
            if path.is_dir() {
                dirs.push(path);
            } else if !path.ends_with("main.rs") && !path.ends_with("cli.rs") {
                // The echo binary's files are not part of the library.
                sources.push(path);
            }
        }
    }
    for source in sources {
        assert!(
            modified(&source) <= built,
            "{} is older than {}: run `cargo build --all-features --examples` or plain `cargo test`",
            binary.display(),
            source.display()
        );
    }
    binary
}

/// The echo binary's path.
pub fn echo_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_graceful-server"))
}

/// A server process started by a test. Killed on drop, so a failing test
/// never leaves it running.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    stderr_lines: mpsc::Receiver<String>,
    stderr_seen: Vec<String>,
    /// Stdout after the first line.
    stdout_lines: mpsc::Receiver<String>,
}

impl ServerProcess {
    /// Starts `program` with `args` and waits (at most 10 s) for its first
    /// stdout line, `listening on IP:PORT`.
    pub fn start(program: impl Into<PathBuf>, args: &[&str]) -> ServerProcess {
        let mut command = Command::new(program.into());
        command.args(args);
        ServerProcess::start_command(command)
    }

    /// Like [`ServerProcess::start`], for a command prepared by the caller.
    pub fn start_command(mut command: Command) -> ServerProcess {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn server");
        let stdout = child.stdout.take().expect("piped stdout");
        let (line_tx, line_rx) = mpsc::channel();
        thread::spawn(move || {
            // Every line, read as it comes, so the child never blocks on a
            // full pipe.
            let mut reader = BufReader::new(stdout);
            loop {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(1..) => {
                        if line_tx.send(line).is_err() {
                            let _ = io::copy(&mut reader, &mut io::sink());
                            return;
                        }
                    }
                    _ => return,
                }
            }
        });
        let stderr_lines = spawn_line_reader(child.stderr.take().expect("piped stderr"));
        let line = match line_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("server printed no first line within 10 s");
            }
        };
        let addr = line
            .trim_end()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("first line ends with IP:PORT");
        ServerProcess {
            child,
            addr,
            stdout_lines: line_rx,
            stderr_lines,
            stderr_seen: Vec::new(),
        }
    }

    /// The next line on stdout, waiting at most `timeout`.
    pub fn next_stdout_line(&self, timeout: Duration) -> Option<String> {
        self.stdout_lines.recv_timeout(timeout).ok()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. "INT", "TERM") with the `kill` command.
    #[cfg(unix)] // Windows has no signals to send (nor a `kill` command)
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits until a stderr line contains `needle`; returns that line.
    pub fn wait_for_stderr(&mut self, needle: &str, timeout: Duration) -> String {
        if let Some(line) = self.stderr_seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) => {
                    self.stderr_seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no stderr line containing {needle:?} within {timeout:?}; saw {:?}",
                    self.stderr_seen
                ),
            }
        }
    }

    /// Waits for the process to exit, at most `timeout`; kills it and fails
    /// the test if it does not.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        wait_child(&mut self.child, timeout, "server")
    }

    /// Whether the process has exited, without waiting.
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_some()
    }

    /// Every stderr line read so far plus what is left, once the process has
    /// exited.
    pub fn stderr(&mut self) -> String {
        while let Ok(line) = self.stderr_lines.recv_timeout(Duration::from_secs(2)) {
            self.stderr_seen.push(line);
        }
        self.stderr_seen.join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `child` to exit, at most `timeout`; kills it and fails the test
/// (naming it `what`) if it does not.
pub fn wait_child(child: &mut Child, timeout: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {timeout:?}");
        }
        // Polling a child's exit has no blocking-with-timeout form in std;
        // this only bounds how soon the test notices, it hides no race.
        thread::sleep(Duration::from_millis(5));
    }
}

fn spawn_line_reader(stderr: ChildStderr) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Starts a library server in the background: `builder.start(handler)`.
pub trait Start {
    fn start<H: graceful_server::Handler>(self, handler: H) -> graceful_server::RunningServer;
}

impl Start for graceful_server::Builder {
    fn start<H: graceful_server::Handler>(self, handler: H) -> graceful_server::RunningServer {
        self.build().expect("build").spawn(handler).expect("spawn")
    }
}

/// Waits (at most 5 s) for a running server to finish, and checks that its
/// report adds up.
pub fn join(running: graceful_server::RunningServer) -> graceful_server::Report {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(running.join());
    });
    let report = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("server did not stop within 5 s")
        .expect("join");
    assert_eq!(
        report.outcomes(),
        report.accepted,
        "every accepted connection must be in exactly one outcome: {report:?}"
    );
    report
}

/// Connects to `addr` until a connect is refused (the listener has closed),
/// at most 5 s. Returns how many connects got through meanwhile: they raced
/// the close, and were either swept and served or reset.
pub fn wait_until_refused(addr: SocketAddr) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut racers = 0;
    while !is_refused(addr) {
        racers += 1;
        assert!(Instant::now() < deadline, "listener still open after 5 s");
    }
    racers
}

/// The echo handler of the library tests: one read per turn, written back;
/// between turns the connection waits mid-conversation, so shutdown waits
/// for the client to hang up.
pub fn echo(conn: &mut graceful_server::Connection) -> io::Result<graceful_server::Next> {
    let mut buf = [0; 4096];
    let n = conn.read(&mut buf)?;
    if n == 0 {
        return Ok(graceful_server::Next::Close); // the client hung up
    }
    conn.write_all(&buf[..n])?;
    Ok(graceful_server::Next::Wait)
}

/// Echo in one long turn, until the client hangs up, as a
/// thread-per-connection handler would: the connection holds its worker the
/// whole time. For tests that need the workers busy, so that later
/// connections pile up in the queue and the kernel backlog.
pub fn echo_holding_the_worker(
    conn: &mut graceful_server::Connection,
) -> io::Result<graceful_server::Next> {
    let mut buf = [0; 4096];
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(graceful_server::Next::Close);
        }
        conn.write_all(&buf[..n])?;
    }
}
