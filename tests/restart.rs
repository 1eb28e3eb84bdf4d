//! Zero-downtime restart, end to end: the supervisor example restarting the
//! HTTP example under load (against a control that restarts the usual way),
//! the drain delay, readiness notifications, and socket activation with the
//! echo binary, including a malformed environment.
//!
//! Every server runs as a child process and is signalled with `kill`; every
//! client has read and write timeouts; every wait is for an event (a stderr
//! line, a notification, a reply) with a deadline.
#![cfg(unix)]

mod support;

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::{ServerProcess, IO_TIMEOUT};

/// How long a test waits for a server to start, get ready, or exit. Generous:
/// the machine may be loaded, and a timeout only bounds how long a failure
/// takes to show.
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Restarts done under load by the supervisor.
const RESTARTS: u64 = 10;
/// Restarts done the usual way in the control.
const CONTROL_RESTARTS: u64 = 3;
/// Clients sending requests back to back.
const CLIENTS: usize = 16;
/// Responses to see between restarts, so that every server generation really
/// serves load.
const RESPONSES_BETWEEN_RESTARTS: u64 = 200;
/// Sets `LISTEN_PID` to the pid of the process that then runs the program:
/// `$$` is the shell's pid, and `exec` keeps it. `$0` is the program.
const WITH_LISTEN_PID: &str = r#"LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@""#;

fn supervisor() -> PathBuf {
    support::example_path("supervisor")
}

fn http() -> PathBuf {
    support::fresh_http_example()
}

// ---------------------------------------------------------------------------
// Restart under load.
// ---------------------------------------------------------------------------

/// What the clients saw. Every request sent ends in exactly one of
/// `answered`, `reset`, `unanswered` or `closed_before_read`; `refused`
/// counts connects, which send nothing.
#[derive(Default)]
struct Tally {
    /// Requests written.
    sent: AtomicU64,
    /// Complete `200 Hello, world!` responses.
    answered: AtomicU64,
    /// Connects refused (nothing listening).
    refused: AtomicU64,
    /// Connects that failed otherwise (e.g. timed out).
    connect_failed: AtomicU64,
    /// The errors behind `connect_failed`, for the summary.
    connect_errors: Mutex<Vec<io::ErrorKind>>,
    /// Requests whose connection was reset, on a new connection or in the
    /// middle of a response.
    reset: AtomicU64,
    /// Requests that got end of file or a timeout without a complete
    /// response, on a new connection or in the middle of a response, or a
    /// wrong response.
    unanswered: AtomicU64,
    /// Requests sent on a reused keep-alive connection that the server had
    /// already closed as idle: not a byte of response came back. This is
    /// the race every HTTP/1.1 client must expect (RFC 9112 section 9.3.1:
    /// it retries such a request on a new connection); it is counted apart
    /// so that it is neither hidden nor mistaken for a lost request.
    closed_before_read: AtomicU64,
}

impl Tally {
    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::SeqCst)
    }

    /// Refused connects plus failed requests.
    fn losses(&self) -> u64 {
        Tally::get(&self.refused)
            + Tally::get(&self.connect_failed)
            + Tally::get(&self.reset)
            + Tally::get(&self.unanswered)
    }

    fn summary(&self) -> String {
        format!(
            "sent {}, answered {}, refused {}, connect failed {}, reset {}, unanswered {}, \
             closed before read (retryable) {}; connect errors {:?}",
            Tally::get(&self.sent),
            Tally::get(&self.answered),
            Tally::get(&self.refused),
            Tally::get(&self.connect_failed),
            Tally::get(&self.reset),
            Tally::get(&self.unanswered),
            Tally::get(&self.closed_before_read),
            self.connect_errors.lock().expect("errors lock"),
        )
    }
}

/// The clients' shared state: the counters, a stop flag, and the number of
/// servers started so far, which a client refused by a closed port waits on
/// instead of retrying in a loop.
struct Load {
    addr: SocketAddr,
    tally: Tally,
    stop: AtomicBool,
    servers: Mutex<u64>,
    server_started: Condvar,
    /// Whether a client whose connection ended waits for the gate to open
    /// before it connects again (see [`Load::with_reconnect_gate`]).
    gated: bool,
    gate_open: Mutex<bool>,
    gate_opened: Condvar,
}

impl Load {
    fn new(addr: SocketAddr) -> Load {
        Load {
            addr,
            tally: Tally::default(),
            stop: AtomicBool::new(false),
            servers: Mutex::new(1),
            server_started: Condvar::new(),
            gated: false,
            gate_open: Mutex::new(false),
            gate_opened: Condvar::new(),
        }
    }

    /// Clients that, once a connection of theirs has ended, wait for
    /// [`Load::open_gate`] before they connect again. For a final stop:
    /// the server's responses say `Connection: close`, and the clients
    /// would otherwise reconnect at once, into the instant between the
    /// server's final sweep of the backlog and its close of the socket. A
    /// connect completed in that instant is reset by the kernel, whoever
    /// holds the socket; docs/reliability.md lists it under "Not guaranteed", and
    /// the library's own tests count such racers. Held back, the clients
    /// connect only when the test has seen the socket closed.
    fn with_reconnect_gate(addr: SocketAddr) -> Load {
        Load {
            gated: true,
            ..Load::new(addr)
        }
    }

    fn open_gate(&self) {
        *self.gate_open.lock().expect("gate lock") = true;
        self.gate_opened.notify_all();
    }

    /// Waits (at most `EVENT_TIMEOUT`) for the gate to open, or the end.
    fn wait_for_gate(&self) {
        let open = self.gate_open.lock().expect("gate lock");
        let (_open, _timeout) = self
            .gate_opened
            .wait_timeout_while(open, EVENT_TIMEOUT, |open| {
                !*open && !self.stop.load(Ordering::SeqCst)
            })
            .expect("gate lock");
    }

    fn servers(&self) -> u64 {
        *self.servers.lock().expect("servers lock")
    }

    /// Tells refused clients that a new server listens.
    fn new_server(&self) {
        *self.servers.lock().expect("servers lock") += 1;
        self.server_started.notify_all();
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.server_started.notify_all();
        // Under the gate's lock, so that a client cannot miss the wake-up
        // between its look at the flag and its wait.
        let _open = self.gate_open.lock().expect("gate lock");
        self.gate_opened.notify_all();
    }

    /// Waits until `n` connects in all were refused.
    fn wait_for_refused(&self, n: u64) {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        while Tally::get(&self.tally.refused) < n {
            assert!(
                Instant::now() < deadline,
                "fewer than {n} connects were refused in {EVENT_TIMEOUT:?}: {}",
                self.tally.summary()
            );
            // Only bounds how soon the test sees the count; hides no race.
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until `more` responses beyond `from` were answered.
    fn wait_for_answers(&self, from: u64, more: u64) {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        while Tally::get(&self.tally.answered) < from + more {
            assert!(
                Instant::now() < deadline,
                "the clients got fewer than {more} answers in {EVENT_TIMEOUT:?}: {}",
                self.tally.summary()
            );
            // Only bounds how soon the test sees the count; hides no race.
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// One client: requests back to back, each sent as soon as the previous
    /// response is read, so that its connection is busy rather than idle.
    /// It reconnects after `Connection: close` or any failure.
    fn client(&self) {
        let tally = &self.tally;
        let mut conn: Option<(BufReader<TcpStream>, bool)> = None;
        let mut connected_before = false;
        while !self.stop.load(Ordering::SeqCst) {
            let (mut reader, reused) = match conn.take() {
                Some(open) => open,
                None => {
                    if self.gated && connected_before {
                        self.wait_for_gate();
                        if self.stop.load(Ordering::SeqCst) {
                            break;
                        }
                    }
                    let servers = self.servers();
                    match TcpStream::connect_timeout(&self.addr, IO_TIMEOUT) {
                        Ok(stream) => {
                            connected_before = true;
                            stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
                            stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
                            (BufReader::new(stream), false)
                        }
                        Err(e) => {
                            if e.kind() == io::ErrorKind::ConnectionRefused {
                                tally.refused.fetch_add(1, Ordering::SeqCst);
                                self.wait_for_next_server(servers);
                            } else {
                                tally.connect_failed.fetch_add(1, Ordering::SeqCst);
                                let mut errors = tally.connect_errors.lock().expect("errors lock");
                                errors.push(e.kind());
                            }
                            continue;
                        }
                    }
                }
            };
            tally.sent.fetch_add(1, Ordering::SeqCst);
            let outcome = reader
                .get_mut()
                .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
                .map_err(|error| Failure {
                    error,
                    bytes_read: 0,
                })
                .and_then(|()| read_response(&mut reader));
            match outcome {
                Ok(response) if response.status == 200 && response.body == b"Hello, world!" => {
                    tally.answered.fetch_add(1, Ordering::SeqCst);
                    if !response.close {
                        conn = Some((reader, true));
                    }
                }
                Ok(_) => {
                    tally.unanswered.fetch_add(1, Ordering::SeqCst);
                }
                Err(failure) if reused && failure.bytes_read == 0 => {
                    tally.closed_before_read.fetch_add(1, Ordering::SeqCst);
                }
                Err(failure) if is_reset(&failure.error) => {
                    tally.reset.fetch_add(1, Ordering::SeqCst);
                }
                Err(_) => {
                    tally.unanswered.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }

    /// After a refused connect: waits for the next server (or the end), so
    /// that a client counts a gap once instead of spinning on it. Spinning
    /// would also risk a TCP self-connect: a connect to a closed port on the
    /// same host can be given that very port as its own and connect to
    /// itself.
    fn wait_for_next_server(&self, seen: u64) {
        let servers = self.servers.lock().expect("servers lock");
        let (_servers, _timeout) = self
            .server_started
            .wait_timeout_while(servers, EVENT_TIMEOUT, |servers| {
                *servers == seen && !self.stop.load(Ordering::SeqCst)
            })
            .expect("servers lock");
    }
}

/// A response as the client read it.
struct Response {
    status: u16,
    close: bool,
    body: Vec<u8>,
}

/// Why a request failed, and whether any of its response had arrived.
struct Failure {
    error: io::Error,
    bytes_read: usize,
}

fn is_reset(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// Reads one response (status line, headers, `Content-Length` body).
fn read_response(reader: &mut BufReader<TcpStream>) -> Result<Response, Failure> {
    let mut bytes_read = 0;
    let fail = |error: io::Error, bytes_read| Failure { error, bytes_read };
    let mut line = String::new();
    let mut next_line = |line: &mut String, bytes_read: &mut usize| -> Result<(), Failure> {
        line.clear();
        match reader.read_line(line) {
            Ok(0) => Err(fail(io::ErrorKind::UnexpectedEof.into(), *bytes_read)),
            Ok(n) => {
                *bytes_read += n;
                Ok(())
            }
            Err(error) => Err(fail(error, *bytes_read)),
        }
    };
    next_line(&mut line, &mut bytes_read)?;
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| fail(io::ErrorKind::InvalidData.into(), bytes_read))?;
    let (mut length, mut close) = (0, false);
    loop {
        next_line(&mut line, &mut bytes_read)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or((header, ""));
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value
                .parse()
                .map_err(|_| fail(io::ErrorKind::InvalidData.into(), bytes_read))?;
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    let mut body = vec![0; length];
    reader
        .read_exact(&mut body)
        .map_err(|error| fail(error, bytes_read))?;
    Ok(Response {
        status,
        close,
        body,
    })
}

/// Runs the load's clients while `restart` restarts the server.
fn under_load(load: &Load, restart: impl FnOnce()) {
    thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| scope.spawn(|| load.client()))
            .collect();
        // Stop the clients even if `restart` panics, so the scope can end.
        struct StopOnDrop<'a>(&'a Load);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.stop();
            }
        }
        let stop = StopOnDrop(load);
        restart();
        drop(stop);
        for client in clients {
            client.join().expect("client thread panicked");
        }
    });
}

/// The pid in a supervisor line `... ready as pid N`.
fn ready_pid(line: &str) -> u32 {
    line.rsplit(' ')
        .next()
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"))
}

/// The children of `pid` and their states, read from `/proc` (Linux).
#[cfg(target_os = "linux")]
fn children(pid: u32) -> Vec<(u32, char)> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue; // not a process, or it just exited
        };
        // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next());
        let ppid = fields.next().and_then(|p| p.parse::<u32>().ok());
        let child = head.split(' ').next().and_then(|p| p.parse::<u32>().ok());
        if let (Some(state), Some(ppid), Some(child)) = (state, ppid, child) {
            if ppid == pid {
                children.push((child, state));
            }
        }
    }
    children
}

/// A port for the control's servers, each binding it in turn, chosen below
/// the ephemeral range: while the port is closed between two servers, no
/// client connect can be given it as its own port and connect to itself.
fn control_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let start = low.saturating_sub(1);
    (start.saturating_sub(2000)..start)
        .rev()
        .find(|&port| TcpListener::bind(("127.0.0.1", port)).is_ok())
        .expect("a free port below the ephemeral range")
}

/// The supervisor restarts the HTTP example 10 times while 16 clients send
/// keep-alive requests back to back: no connect is refused, no request is
/// reset or left unanswered, and every generation is a new process, reaped
/// once it has drained. The control restarts the server the usual way
/// (stop it, start another that binds the port) under the same load, and
/// the clients do see losses there: the test can see them.
#[test]
fn supervisor_restarts_under_load_without_losses_unlike_a_plain_restart() {
    // The control first: stop, then start a server binding the same port.
    let port = control_port();
    let addr = format!("127.0.0.1:{port}");
    let start_http = || ServerProcess::start(http(), &["--addr", &addr, "--workers", "32"]);
    let mut server = start_http();
    let control = Load::new(server.addr);
    under_load(&control, || {
        for _ in 0..CONTROL_RESTARTS {
            control.wait_for_answers(Tally::get(&control.tally.answered), 200);
            server.signal("TERM");
            let status = server.wait_exit(EVENT_TIMEOUT);
            assert!(status.success(), "the control server exited with {status}");
            server = start_http();
            control.new_server();
        }
        control.wait_for_answers(Tally::get(&control.tally.answered), 200);
    });
    server.signal("TERM");
    server.wait_exit(EVENT_TIMEOUT);

    // The supervisor: the same load and more restarts.
    let mut supervisor = ServerProcess::start(
        supervisor(),
        &[
            "--addr",
            "127.0.0.1:0",
            "--",
            http().to_str().expect("UTF-8 path"),
            "--addr",
            "127.0.0.1:0",
            "--workers",
            "32",
        ],
    );
    let first = supervisor.wait_for_stderr("generation 1 ready as pid", EVENT_TIMEOUT);
    let mut pids = vec![ready_pid(&first)];
    let supervised = Load::new(supervisor.addr);
    under_load(&supervised, || {
        supervised.wait_for_answers(0, RESPONSES_BETWEEN_RESTARTS);
        for generation in 2..=RESTARTS + 1 {
            supervisor.signal("HUP");
            let line = supervisor.wait_for_stderr(
                &format!("generation {generation} ready as pid"),
                EVENT_TIMEOUT,
            );
            let pid = ready_pid(&line);
            assert!(
                !pids.contains(&pid),
                "generation {generation} reused pid {pid}"
            );
            let old = pids[pids.len() - 1];
            pids.push(pid);
            // The old server drained and exited cleanly, and was reaped.
            supervisor.wait_for_stderr(
                &format!(
                    "generation {} (pid {old}) exited: exit status: 0",
                    generation - 1
                ),
                EVENT_TIMEOUT,
            );
            supervised.wait_for_answers(
                Tally::get(&supervised.tally.answered),
                RESPONSES_BETWEEN_RESTARTS,
            );
        }
        #[cfg(target_os = "linux")]
        {
            // No zombie: only the current server is left.
            let children = children(supervisor.pid());
            let current = pids[pids.len() - 1];
            assert!(
                matches!(children[..], [(pid, state)] if pid == current && state != 'Z'),
                "the supervisor's children should be only pid {current}: {children:?}"
            );
        }
    });
    supervisor.signal("TERM");
    let status = supervisor.wait_exit(EVENT_TIMEOUT);
    assert!(status.success(), "the supervisor exited with {status}");

    eprintln!(
        "control ({CONTROL_RESTARTS} plain restarts): {}",
        control.tally.summary()
    );
    eprintln!(
        "supervised ({RESTARTS} restarts): {}",
        supervised.tally.summary()
    );
    assert_eq!(pids.iter().collect::<HashSet<_>>().len(), pids.len());
    assert!(
        control.tally.losses() > 0,
        "the control lost nothing, so the test cannot see losses: {}",
        control.tally.summary()
    );
    assert_eq!(
        supervised.tally.losses(),
        0,
        "the supervised restarts lost requests: {}",
        supervised.tally.summary()
    );
}

// ---------------------------------------------------------------------------
// Stopping the supervisor.
// ---------------------------------------------------------------------------

/// The HTTP example's options for the stop tests: a long idle grace, so
/// that a request arriving during the drain is always answered (no client
/// meets an idle close), and a long read timeout, so that the connection
/// holding the drain (see [`hold_the_drain`]) is not dropped while the test
/// looks at the socket.
const HOLDING_HTTP: [&str; 8] = [
    "--addr",
    "127.0.0.1:0",
    "--workers",
    "32",
    "--idle-grace",
    "60",
    "--read-timeout",
    "60",
];

/// The supervisor running `program` with `args`, on a port of its own.
fn start_supervisor(program: &Path, args: &[&str]) -> ServerProcess {
    let mut all = vec!["--addr", "127.0.0.1:0", "--"];
    all.push(program.to_str().expect("UTF-8 path"));
    all.extend_from_slice(args);
    ServerProcess::start(supervisor(), &all)
}

/// A connection that keeps its server draining until the test ends it:
/// one request, answered, and the first line of the next, sent in the same
/// write so that the server reads it with the first. A connection in the
/// middle of a request is never closed before the drain deadline, neither
/// as idle nor to free its worker.
fn hold_the_drain(addr: SocketAddr) -> BufReader<TcpStream> {
    let mut held = BufReader::new(support::client(addr));
    held.get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\nGET / HTTP/1.1\r\n")
        .expect("send the held requests");
    let first = read_response(&mut held).unwrap_or_else(|f| {
        panic!(
            "the held connection: {} after {} bytes",
            f.error, f.bytes_read
        )
    });
    assert_eq!((first.status, first.close), (200, false));
    held
}

/// Connects until a connect is refused, one connection at a time, at most
/// `EVENT_TIMEOUT`; returns how many got through first. Each one that gets
/// through is half-closed and must then end within `IO_TIMEOUT`: closed by
/// a server that accepted it (swept from the backlog and served), or reset
/// (it raced the close of the socket, see [`Load::with_reconnect_gate`]).
/// A connection that neither ends nor is refused sits in the backlog of a
/// copy of the socket nobody accepts from. One at a time, so that probes
/// never fill the worker pool, which would make the library close an idle
/// keep-alive connection to free a worker.
fn probe_until_refused(addr: SocketAddr) -> u64 {
    let deadline = Instant::now() + EVENT_TIMEOUT;
    let mut through = 0;
    loop {
        match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return through,
            Err(e) if is_reset(&e) => through += 1,
            Err(e) => panic!("probe connect: {e}"),
            Ok(mut stream) => {
                through += 1;
                stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
                let _ = stream.shutdown(std::net::Shutdown::Write);
                match support::read_to_end(&mut stream) {
                    Ok(_) => {}
                    Err(e) if is_reset(&e) => {}
                    Err(e) => panic!(
                        "a connect after the stop was neither refused, nor served, nor reset \
                         within {IO_TIMEOUT:?} ({e}): it is queued on a copy of the socket \
                         that nobody accepts from"
                    ),
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "connects still get through {EVENT_TIMEOUT:?} after the stop"
        );
    }
}

/// The end of a stop, once every server was told: waits until a connect is
/// refused, then lets the clients reconnect and waits until each is
/// refused, all while `held` keeps its server draining and so the
/// supervisor running. Then ends `held`'s request, which is answered, and
/// returns the supervisor's exit status.
fn finish_the_stop(
    supervisor: &mut ServerProcess,
    load: &Load,
    mut held: BufReader<TcpStream>,
) -> ExitStatus {
    let through = probe_until_refused(supervisor.addr);
    eprintln!("{through} connect(s) got through before the socket closed");
    load.open_gate();
    load.wait_for_refused(CLIENTS as u64);
    assert!(
        !supervisor.has_exited(),
        "the supervisor exited while a request was open: {}",
        supervisor.stderr()
    );
    let last = held
        .get_mut()
        .write_all(b"Host: test\r\n\r\n")
        .map_err(|error| Failure {
            error,
            bytes_read: 0,
        })
        .and_then(|()| read_response(&mut held))
        .unwrap_or_else(|f| {
            panic!(
                "the held request: {} after {} bytes; {}",
                f.error,
                f.bytes_read,
                supervisor.stderr()
            )
        });
    assert_eq!(
        (last.status, last.close),
        (200, true),
        "the held request is answered, with Connection: close"
    );
    drop(held);
    supervisor.wait_exit(EVENT_TIMEOUT)
}

/// Asserts that the clients lost nothing to a final stop: no connection
/// was reset, no request left unanswered, no connect failed other than by
/// being refused, and every client was refused once it reconnected.
/// Requests closed before read (see [`Tally`]) are reported, not counted:
/// before the stop, on a loaded machine, the library may close a keep-alive
/// connection idle for 10 ms to free a worker for another, and HTTP clients
/// retry such a request. The supervisor cannot cause one: a connect it
/// leaves queued is a new connection, not a reused one.
fn assert_the_stop_lost_nothing(load: &Load, what: &str) {
    let tally = &load.tally;
    eprintln!("{what}: {}", tally.summary());
    assert!(
        Tally::get(&tally.answered) >= RESPONSES_BETWEEN_RESTARTS,
        "{what}: {}",
        tally.summary()
    );
    assert_eq!(
        Tally::get(&tally.reset)
            + Tally::get(&tally.unanswered)
            + Tally::get(&tally.connect_failed),
        0,
        "{what}: connections were reset or requests left unanswered: {}",
        tally.summary()
    );
    assert!(
        Tally::get(&tally.refused) >= CLIENTS as u64,
        "{what}: {}",
        tally.summary()
    );
}

/// Asserts that `needles` appear in `stderr` in this order.
fn assert_in_order(stderr: &str, needles: &[&str]) {
    let positions: Vec<usize> = needles
        .iter()
        .map(|needle| {
            stderr
                .find(needle)
                .unwrap_or_else(|| panic!("no {needle:?} in {stderr}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|pair| pair[0] < pair[1]),
        "expected {needles:?} in this order: {stderr}"
    );
}

/// SIGTERM to the supervisor while 16 clients send keep-alive requests back
/// to back stops as cleanly as the server's own stop: every request in
/// flight is answered (with `Connection: close`), the socket closes while
/// the server still drains and the supervisor still runs, so that every
/// later connect is refused, and nothing is reset. The supervisor closes its
/// own copy of the socket before it tells the server to stop. (When it kept
/// it open, later connects were queued in a backlog nobody read, and reset
/// when it exited, about one per client; this test then fails at its first
/// probe, a connect neither refused nor served.)
#[test]
fn supervisor_stop_under_load_resets_nothing() {
    let mut supervisor = start_supervisor(&http(), &HOLDING_HTTP);
    supervisor.wait_for_stderr("generation 1 ready as pid", EVENT_TIMEOUT);
    let held = hold_the_drain(supervisor.addr);
    let load = Load::with_reconnect_gate(supervisor.addr);
    let mut status = None;
    under_load(&load, || {
        load.wait_for_answers(0, RESPONSES_BETWEEN_RESTARTS);
        supervisor.signal("TERM");
        status = Some(finish_the_stop(&mut supervisor, &load, held));
    });
    let status = status.expect("the supervisor's exit was waited for");
    let stderr = supervisor.stderr();
    assert!(
        status.success(),
        "the supervisor exited with {status}: {stderr}"
    );
    assert_in_order(
        &stderr,
        &[
            "closed its copies of the listening sockets",
            "stopping generation 1",
            "exited: exit status: 0",
        ],
    );
    assert_the_stop_lost_nothing(&load, "stop under load");
}

/// SIGTERM to the supervisor in the middle of a restart, with two servers
/// holding the socket: generation 1 serving, generation 2 still starting
/// (held before it runs the HTTP example by a shell that reads a line from
/// a FIFO, so that the test knows the state). Generation 1 goes on serving
/// until generation 2 is ready; then both are told to stop, and the clients
/// lose nothing, as in `supervisor_stop_under_load_resets_nothing`.
#[test]
fn supervisor_stop_during_a_restart_resets_nothing() {
    let dir = TempDir::new("stop-mid-restart");
    let fifo_path = dir.0.join("fifo");
    let http = http();
    // Generation 1 starts at once: the FIFO does not exist yet.
    let script = format!(
        r#"if [ -p "$0" ]; then read -r line < "$0"; fi; exec "$1" {}"#,
        HOLDING_HTTP.join(" ")
    );
    let mut supervisor = start_supervisor(
        Path::new("/bin/sh"),
        &[
            "-c",
            &script,
            fifo_path.to_str().expect("UTF-8 path"),
            http.to_str().expect("UTF-8 path"),
        ],
    );
    supervisor.wait_for_stderr("generation 1 ready as pid", EVENT_TIMEOUT);
    let path = CString::new(fifo_path.as_os_str().as_bytes()).expect("no NUL in the path");
    // SAFETY: `path` is a valid NUL-terminated string.
    let made = unsafe { libc::mkfifo(path.as_ptr(), 0o600) };
    assert_eq!(made, 0, "mkfifo: {}", io::Error::last_os_error());
    // Opened for reading too, so that the open does not wait for a reader,
    // and the line written later waits in the FIFO for the shell to read it.
    let mut fifo = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo_path)
        .expect("open the FIFO");
    let held = hold_the_drain(supervisor.addr);

    let load = Load::with_reconnect_gate(supervisor.addr);
    let mut status = None;
    under_load(&load, || {
        load.wait_for_answers(0, RESPONSES_BETWEEN_RESTARTS);
        supervisor.signal("HUP");
        supervisor.wait_for_stderr("started generation 2", EVENT_TIMEOUT);
        supervisor.signal("TERM");
        supervisor.wait_for_stderr("generation 2 is still starting", EVENT_TIMEOUT);
        // Generation 1 has not been told to stop: it still serves.
        load.wait_for_answers(Tally::get(&load.tally.answered), RESPONSES_BETWEEN_RESTARTS);
        fifo.write_all(b"go\n").expect("write to the FIFO");
        supervisor.wait_for_stderr("stopping generation 1", EVENT_TIMEOUT);
        status = Some(finish_the_stop(&mut supervisor, &load, held));
    });
    let status = status.expect("the supervisor's exit was waited for");
    let stderr = supervisor.stderr();
    assert!(
        status.success(),
        "the supervisor exited with {status}: {stderr}"
    );
    assert_in_order(
        &stderr,
        &[
            "started generation 2",
            "generation 2 is still starting",
            "closed its copies of the listening sockets",
            "generation 2 ready",
            "stopping generation 1",
        ],
    );
    for generation in [1, 2] {
        assert!(
            stderr.lines().any(
                |line| line.contains(&format!("generation {generation} (pid"))
                    && line.ends_with("exited: exit status: 0")
            ),
            "generation {generation} did not exit cleanly: {stderr}"
        );
    }
    assert_the_stop_lost_nothing(&load, "stop during a restart");
}

// ---------------------------------------------------------------------------
// The supervisor's other paths.
// ---------------------------------------------------------------------------

/// A new server that never sends `READY=1` is killed after the ready
/// timeout, and the old one goes on serving on the same socket. PROGRAM is a
/// shell that runs the echo binary, or, once the flag file exists, `sleep`,
/// which never gets ready.
#[test]
fn supervisor_keeps_the_old_server_when_the_new_one_never_gets_ready() {
    let flag = std::env::temp_dir().join(format!("restart-never-ready-{}", std::process::id()));
    let _ = std::fs::remove_file(&flag);
    let echo = support::echo_binary();
    let mut supervisor = ServerProcess::start(
        supervisor(),
        &[
            "--addr",
            "127.0.0.1:0",
            "--ready-timeout",
            "5",
            "--",
            "/bin/sh",
            "-c",
            r#"if [ -e "$0" ]; then exec sleep 60; fi; exec "$1" --addr 127.0.0.1:0"#,
            flag.to_str().expect("UTF-8 path"),
            echo.to_str().expect("UTF-8 path"),
        ],
    );
    supervisor.wait_for_stderr("generation 1 ready as pid", EVENT_TIMEOUT);
    let mut before = support::client(supervisor.addr);
    assert_eq!(
        support::echo_round_trip(&mut before, b"one").expect("echo"),
        b"one"
    );

    File::create(&flag).expect("create the flag file");
    supervisor.signal("HUP");
    supervisor.wait_for_stderr("generation 2", EVENT_TIMEOUT);
    supervisor.wait_for_stderr("not ready in time; killed", EVENT_TIMEOUT);
    supervisor.wait_for_stderr("generation 2 (pid", EVENT_TIMEOUT);
    let _ = std::fs::remove_file(&flag);

    // Generation 1 still serves, old and new connections alike.
    let mut after = support::client(supervisor.addr);
    assert_eq!(
        support::echo_round_trip(&mut after, b"two").expect("echo"),
        b"two"
    );
    assert_eq!(
        support::echo_round_trip(&mut before, b"three").expect("echo"),
        b"three"
    );
    drop((before, after));

    supervisor.signal("INT");
    let status = supervisor.wait_exit(EVENT_TIMEOUT);
    assert!(status.success(), "the supervisor exited with {status}");
    let stderr = supervisor.stderr();
    assert!(
        stderr.contains("generation 1 (pid") && stderr.contains("exited: exit status: 0"),
        "{stderr}"
    );
}

/// SIGTERM to the supervisor drains the current server, whose exit status
/// becomes the supervisor's: a server forced by its drain timeout exits 3,
/// and so does the supervisor.
#[test]
fn supervisor_exits_with_the_status_of_its_server() {
    let echo = support::echo_binary();
    let mut supervisor = ServerProcess::start(
        supervisor(),
        &[
            "--addr",
            "127.0.0.1:0",
            "--",
            echo.to_str().expect("UTF-8 path"),
            "--drain-timeout",
            "0.2",
        ],
    );
    supervisor.wait_for_stderr("generation 1 ready as pid", EVENT_TIMEOUT);
    // An echo client that does not hang up keeps the drain going until the
    // deadline forces it.
    let mut client = support::client(supervisor.addr);
    assert_eq!(
        support::echo_round_trip(&mut client, b"hold").expect("echo"),
        b"hold"
    );
    supervisor.signal("TERM");
    let status = supervisor.wait_exit(EVENT_TIMEOUT);
    assert_eq!(status.code(), Some(3), "{}", supervisor.stderr());
}

/// The supervisor passes every socket it holds, TCP and Unix, to each
/// server it starts, across a restart; at its stop it removes the socket
/// file it made.
#[test]
fn supervisor_passes_all_of_its_sockets_on_across_a_restart() {
    let dir = std::env::temp_dir().join(format!("gs-supervisor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let path = dir.join("s.sock");
    let echo = support::echo_binary();
    let mut supervisor = ServerProcess::start(
        supervisor(),
        &[
            "--addr",
            "127.0.0.1:0",
            "--unix",
            path.to_str().expect("UTF-8 path"),
            "--",
            echo.to_str().expect("UTF-8 path"),
        ],
    );
    let second = supervisor
        .next_stdout_line(EVENT_TIMEOUT)
        .expect("a second listening line");
    assert_eq!(second, format!("listening on unix:{}\n", path.display()));
    let both = |supervisor: &ServerProcess, word: &[u8]| {
        let mut over_tcp = support::client(supervisor.addr);
        assert_eq!(
            support::echo_round_trip(&mut over_tcp, word).expect("tcp"),
            word
        );
        let mut over_unix = std::os::unix::net::UnixStream::connect(&path).expect("connect");
        over_unix
            .set_read_timeout(Some(IO_TIMEOUT))
            .expect("timeout");
        over_unix.write_all(word).expect("write");
        let mut reply = vec![0; word.len()];
        over_unix.read_exact(&mut reply).expect("unix echo");
        assert_eq!(reply, word);
    };
    supervisor.wait_for_stderr("generation 1 ready as pid", EVENT_TIMEOUT);
    both(&supervisor, b"one");
    supervisor.signal("HUP");
    supervisor.wait_for_stderr("generation 2 ready as pid", EVENT_TIMEOUT);
    both(&supervisor, b"two");
    supervisor.signal("TERM");
    let status = supervisor.wait_exit(EVENT_TIMEOUT);
    assert_eq!(status.code(), Some(0), "{}", supervisor.stderr());
    assert!(
        !path.exists(),
        "the supervisor removes the socket file it made"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// Drain delay.
// ---------------------------------------------------------------------------

/// During the drain delay (3 s: the checks must fit in it on a loaded
/// machine) `/healthz` says 503 and new connections are still
/// served; after it new connections are refused, and the server exits 0.
#[test]
fn drain_delay_keeps_serving_while_healthz_says_503() {
    let delay = Duration::from_secs(3);
    let mut server = ServerProcess::start(http(), &["--addr", "127.0.0.1:0", "--drain-delay", "3"]);
    let healthz = get(server.addr, "/healthz");
    assert_eq!(healthz.status, 200);

    let signalled = Instant::now();
    server.signal("TERM");
    server.wait_for_stderr("shutting down", EVENT_TIMEOUT);
    // New connections, after the server has seen the signal.
    let healthz = get(server.addr, "/healthz");
    assert_eq!(healthz.status, 503, "/healthz during the drain delay");
    assert!(
        healthz.close,
        "responses during shutdown say Connection: close"
    );
    let hello = get(server.addr, "/");
    assert_eq!(
        (hello.status, &hello.body[..]),
        (200, &b"Hello, world!"[..])
    );
    assert!(
        signalled.elapsed() < delay,
        "the machine is too slow for this test: the delay ended before the checks"
    );

    // Then the listener closes: wait for the first refused connect.
    let deadline = Instant::now() + EVENT_TIMEOUT;
    while !support::is_refused(server.addr) {
        assert!(
            Instant::now() < deadline,
            "still accepting after {EVENT_TIMEOUT:?}"
        );
        // Only bounds how often we knock; the server's state decides.
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        signalled.elapsed() >= delay,
        "refused after {:?}, before the drain delay of {delay:?}",
        signalled.elapsed()
    );
    let status = server.wait_exit(EVENT_TIMEOUT);
    assert!(
        status.success(),
        "exited with {status}: {}",
        server.stderr()
    );
}

/// One `GET` on a new connection.
fn get(addr: SocketAddr, path: &str) -> Response {
    let mut stream = support::client(addr);
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").expect("send request");
    read_response(&mut BufReader::new(stream))
        .unwrap_or_else(|f| panic!("GET {path}: {} after {} bytes", f.error, f.bytes_read))
}

// ---------------------------------------------------------------------------
// Readiness notifications.
// ---------------------------------------------------------------------------

/// Starts the echo binary with `NOTIFY_SOCKET=target`, then checks that
/// `READY=1` comes before SIGTERM and `STOPPING=1` after it.
fn check_notifications(socket: &UnixDatagram, target: &str) {
    socket
        .set_read_timeout(Some(EVENT_TIMEOUT))
        .expect("read timeout");
    let mut command = Command::new(support::echo_binary());
    command
        .args(["--addr", "127.0.0.1:0"])
        .env("NOTIFY_SOCKET", target);
    let mut server = ServerProcess::start_command(command);
    let mut messages = Vec::new();
    let next = || {
        let mut buf = [0; 4096];
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no notification within {EVENT_TIMEOUT:?}: {e}"));
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    messages.push(next());
    assert_eq!(messages, ["READY=1"], "before the signal");
    server.signal("TERM");
    while !messages.iter().any(|m| m == "STOPPING=1") {
        messages.push(next());
    }
    assert_eq!(messages[..2], ["READY=1", "STOPPING=1"]);
    assert!(
        messages[2..].iter().all(|m| m.starts_with("STATUS=")),
        "{messages:?}"
    );
    let status = server.wait_exit(EVENT_TIMEOUT);
    assert!(status.success(), "exited with {status}");
}

#[test]
fn notifications_arrive_in_order_on_a_path_socket() {
    let dir = TempDir::new("notify");
    let path = dir.0.join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind the notification socket");
    check_notifications(&socket, path.to_str().expect("UTF-8 path"));
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn notifications_arrive_in_order_on_an_abstract_socket() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("graceful-server-test-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .expect("abstract address");
    let socket = UnixDatagram::bind_addr(&addr).expect("bind the abstract socket");
    check_notifications(&socket, &format!("@{name}"));
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "graceful-server-{name}-{}-{:?}",
            std::process::id(),
            thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).expect("create a temporary directory");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------
// Socket activation without the supervisor.
// ---------------------------------------------------------------------------

/// Whose pid `LISTEN_PID` holds.
enum ListenPid {
    /// The child's own, set by a shell (see [`WITH_LISTEN_PID`]).
    Child,
    /// Another process's.
    Other(u32),
}

/// A command running the echo binary with `fd` as descriptor 3 and
/// `LISTEN_FDS=fds`.
fn activated(fd: RawFd, fds: &str, listen_pid: ListenPid, args: &[&str]) -> Command {
    let echo = support::echo_binary();
    let mut command = match listen_pid {
        ListenPid::Child => {
            let mut command = Command::new("/bin/sh");
            command.arg("-c").arg(WITH_LISTEN_PID).arg(&echo);
            command
        }
        ListenPid::Other(pid) => {
            let mut command = Command::new(&echo);
            command.env("LISTEN_PID", pid.to_string());
            command
        }
    };
    command
        .args(args)
        .env("LISTEN_FDS", fds)
        .env_remove("LISTEN_FDNAMES");
    let pre_exec = move || {
        // Between fork and exec: async-signal-safe calls only.
        let done = if fd == 3 {
            // `dup2` onto itself would leave close-on-exec set.
            // SAFETY: `fd` is open in the parent, hence in the child.
            unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }
        } else {
            // SAFETY: as above; the copy at 3 is not close-on-exec.
            unsafe { libc::dup2(fd, 3) }
        };
        if done == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the closure calls only `fcntl` or `dup2` and reads `errno`.
    unsafe { command.pre_exec(pre_exec) };
    command
}

/// The echo binary serves on a listener passed as descriptor 3 (its
/// `listening on` line shows that address), and after it exits the listener
/// is still open and usable by whoever passed it.
#[test]
fn socket_activation_serves_on_the_inherited_listener_and_leaves_it_open() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let command = activated(
        listener.as_raw_fd(),
        "1",
        ListenPid::Child,
        // Were the listener ignored, the server would bind another port.
        &["--addr", "127.0.0.1:0"],
    );
    // Waiting in the backlog before the server starts: the server's check of
    // the socket accepts it first, and must serve it, not drop it.
    let mut early = support::client(addr);
    early.write_all(b"early").expect("write");
    let mut server = ServerProcess::start_command(command);
    assert_eq!(
        server.addr, addr,
        "the server must show the inherited address"
    );
    let mut client = support::client(addr);
    assert_eq!(
        support::echo_round_trip(&mut client, b"inherited").expect("echo"),
        b"inherited"
    );
    drop(client);
    let mut reply = [0; 5];
    early
        .read_exact(&mut reply)
        .expect("the early connection is served");
    assert_eq!(&reply, b"early");
    drop(early);
    server.signal("TERM");
    let status = server.wait_exit(EVENT_TIMEOUT);
    assert!(
        status.success(),
        "exited with {status}: {}",
        server.stderr()
    );

    // The server's exit closed its copy only. The nonblocking flag it set is
    // shared with ours (one open socket), so put it back before accepting.
    listener.set_nonblocking(false).expect("set blocking");
    let mut client = support::client(addr);
    let (mut accepted, _) = listener.accept().expect("accept on the inherited listener");
    accepted.write_all(b"still here").expect("write");
    let mut reply = [0; 10];
    client.read_exact(&mut reply).expect("read");
    assert_eq!(&reply, b"still here");
}

/// Two sockets passed, a TCP one and a Unix one, with names: the binary
/// serves on both (a `listening on` line each, in order), neither bound by
/// itself, and the Unix socket's file, not the server's, stays.
#[test]
fn socket_activation_serves_every_inherited_socket_tcp_and_unix() {
    let tcp = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = tcp.local_addr().expect("local_addr");
    let dir = std::env::temp_dir().join(format!("gs-activation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let path = dir.join("control.sock");
    let _ = std::fs::remove_file(&path);
    let unix = std::os::unix::net::UnixListener::bind(&path).expect("bind unix");
    let fds = [tcp.as_raw_fd(), unix.as_raw_fd()];
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(WITH_LISTEN_PID)
        .arg(support::echo_binary())
        .args(["--addr", "127.0.0.1:0"])
        .env("LISTEN_FDS", "2")
        .env("LISTEN_FDNAMES", "web:control");
    let pre_exec = move || {
        // Between fork and exec: async-signal-safe calls only. Both are
        // copied above the targets first, so that no target overwrites a
        // source.
        let mut high = [-1; 2];
        for (copy, &fd) in high.iter_mut().zip(&fds) {
            // SAFETY: `fd` is open in the parent, hence in the child.
            *copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 5) };
            if *copy == -1 {
                return Err(io::Error::last_os_error());
            }
        }
        for (i, &copy) in high.iter().enumerate() {
            // SAFETY: `copy` was opened above; the copy at 3 + i is not
            // close-on-exec.
            if unsafe { libc::dup2(copy, 3 + i as libc::c_int) } == -1 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    };
    // SAFETY: the closure calls only `fcntl` and `dup2` and reads `errno`.
    unsafe { command.pre_exec(pre_exec) };
    let mut server = ServerProcess::start_command(command);
    assert_eq!(
        server.addr, addr,
        "the first line is the first inherited socket"
    );
    let second = server
        .next_stdout_line(EVENT_TIMEOUT)
        .expect("a second listening line");
    assert_eq!(second, format!("listening on unix:{}\n", path.display()));
    let mut over_tcp = support::client(addr);
    assert_eq!(
        support::echo_round_trip(&mut over_tcp, b"web").expect("echo"),
        b"web"
    );
    let mut over_unix = std::os::unix::net::UnixStream::connect(&path).expect("connect");
    over_unix
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("timeout");
    over_unix.write_all(b"control").expect("write");
    let mut reply = [0; 7];
    over_unix.read_exact(&mut reply).expect("echo over unix");
    assert_eq!(&reply, b"control");
    drop((over_tcp, over_unix));
    server.signal("TERM");
    let status = server.wait_exit(EVENT_TIMEOUT);
    assert!(
        status.success(),
        "exited with {status}: {}",
        server.stderr()
    );
    assert!(
        path.exists(),
        "an inherited socket's file is not the server's to remove"
    );
    drop(unix);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `LISTEN_PID` names this child but `LISTEN_FDS` is not a number: exit 1
/// with a message naming the variable.
#[test]
fn socket_activation_with_a_malformed_count_is_an_error() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut command = activated(
        listener.as_raw_fd(),
        "abc",
        ListenPid::Child,
        &["--addr", "127.0.0.1:0"],
    );
    let output = command.output().expect("run the server");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("LISTEN_FDS") && stderr.contains("abc"),
        "{stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "nothing may listen: {:?}",
        output.stdout
    );
}

/// Descriptor 3 is a file, not a listening socket: exit 1, clearly.
#[test]
fn socket_activation_of_something_else_than_a_listener_is_an_error() {
    let file = File::open(support::echo_binary()).expect("open a file");
    let mut command = activated(
        file.as_raw_fd(),
        "1",
        ListenPid::Child,
        &["--addr", "127.0.0.1:0"],
    );
    let output = command.output().expect("run the server");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not a listening TCP or Unix socket"),
        "{stderr}"
    );
}

/// `LISTEN_PID` names another process (ours, the parent's): the variables
/// were not meant for the server, which binds `--addr` instead.
#[test]
fn socket_activation_for_another_process_is_ignored() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let command = activated(
        listener.as_raw_fd(),
        "1",
        ListenPid::Other(std::process::id()),
        &["--addr", "127.0.0.1:0"],
    );
    let mut server = ServerProcess::start_command(command);
    assert_ne!(server.addr, listener.local_addr().expect("local_addr"));
    let mut client = support::client(server.addr);
    assert_eq!(
        support::echo_round_trip(&mut client, b"bound").expect("echo"),
        b"bound"
    );
    drop(client);
    server.signal("TERM");
    let status = server.wait_exit(EVENT_TIMEOUT);
    assert!(status.success(), "exited with {status}");
}

/// Descriptor 3 is a UDP socket: it has a local address and no peer, like a
/// listener, but cannot accept. The server must refuse it at start (exit 1)
/// rather than say `listening on` and `READY=1` and then never accept.
#[test]
fn socket_activation_of_a_socket_that_cannot_accept_is_an_error() {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
    let mut command = activated(
        udp.as_raw_fd(),
        "1",
        ListenPid::Child,
        &["--addr", "127.0.0.1:0"],
    );
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the server");
    // Bounded even if the server wrongly keeps running: it is killed then.
    let status = support::wait_child(
        &mut child,
        Duration::from_secs(10),
        "a server given a UDP socket as its listener",
    );
    let mut stderr = String::new();
    let _ = child
        .stderr
        .take()
        .expect("piped stderr")
        .read_to_string(&mut stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not a listening TCP or Unix socket"),
        "{stderr}"
    );
}
