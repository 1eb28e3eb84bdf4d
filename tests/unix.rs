//! Unix domain sockets: the behaviour contract holds as for TCP (backlog
//! swept at shutdown, new connects refused, every connection counted), the
//! socket file is handled honestly (a stale one replaced, a live one never
//! taken, ours removed at the end, an adopted one left alone), and HTTP is
//! served over them unchanged.

// Unix sockets; the binary is stopped with `kill`.
#![cfg(unix)]

mod support;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use graceful_server::{Addr, Connection, Error, Next, Server};

use support::{echo, echo_binary, join, wait_child, Start, IO_TIMEOUT};

/// A fresh directory for this test's sockets, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "graceful-server-{name}-{}-{:?}",
            std::process::id(),
            Instant::now()
        ));
        std::fs::create_dir_all(&dir).expect("create the temporary directory");
        TempDir(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A Unix client with timeouts.
fn unix_client(path: &Path) -> UnixStream {
    let stream = UnixStream::connect(path).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream
}

fn round_trip(stream: &mut UnixStream, message: &[u8]) -> Vec<u8> {
    stream.write_all(message).expect("write");
    let mut reply = vec![0; message.len()];
    stream.read_exact(&mut reply).expect("echo");
    reply
}

/// Whether a connect to `path` fails: the listener is closed (its file is
/// then gone too, so the error is "not found" or "refused").
fn is_refused(path: &Path) -> bool {
    match UnixStream::connect(path) {
        Err(e) => matches!(
            e.kind(),
            io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
        ),
        Ok(_) => false,
    }
}

#[test]
fn the_echo_library_serves_a_unix_socket_and_removes_its_file() {
    let dir = TempDir::new("lib");
    let path = dir.path("echo.sock");
    let running = Server::builder_unix(&path).unix_permissions(0o600).start(
        |conn: &mut Connection| -> io::Result<Next> {
            // The peer is told honestly: a Unix client, unnamed.
            assert_eq!(conn.peer_addr(), &Addr::Unix(None));
            assert!(conn.stream().as_unix().is_some());
            echo(conn)
        },
    );
    assert_eq!(running.local_addrs(), [Addr::Unix(Some(path.clone()))]);
    assert_eq!(
        running.local_addrs()[0].to_string(),
        format!("unix:{}", path.display())
    );
    let mode = std::fs::metadata(&path)
        .expect("the socket file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "permissions as asked");
    let mut client = unix_client(&path);
    assert_eq!(round_trip(&mut client, b"hello"), b"hello");
    running.shutdown_handle().shutdown();
    // Refused once accepting stops, while the client still waits.
    let started = Instant::now();
    while !is_refused(&path) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still accepting"
        );
    }
    assert_eq!(round_trip(&mut client, b"still"), b"still");
    drop(client);
    let report = join(running);
    assert!(
        report.accepted >= 1 && report.completed == report.accepted,
        "{report:?}"
    );
    assert!(!path.exists(), "the socket file is removed at the end");
}

/// Connections waiting in the socket's backlog when shutdown starts are
/// served.
#[test]
fn the_backlog_of_a_unix_socket_is_swept_at_shutdown() {
    let dir = TempDir::new("sweep");
    let path = dir.path("sweep.sock");
    let (entered_tx, entered) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let released = std::sync::Mutex::new(released);
    let running = Server::builder_unix(&path)
        .workers(1)
        .queue_capacity(1)
        .start(move |conn: &mut Connection| -> io::Result<Next> {
            let mut buf = [0; 64];
            let n = conn.read(&mut buf)?;
            if n == 0 {
                return Ok(Next::Close);
            }
            if buf[..n].starts_with(b"first") {
                let _ = entered_tx.send(());
                let _ = released
                    .lock()
                    .map(|r| r.recv_timeout(Duration::from_secs(10)));
            }
            conn.write_all(&buf[..n])?;
            Ok(Next::Close)
        });
    let mut first = unix_client(&path);
    first.write_all(b"first").expect("write");
    entered
        .recv_timeout(Duration::from_secs(5))
        .expect("the worker took it");
    let mut waiting: Vec<(UnixStream, String)> = (0..20)
        .map(|i| {
            let mut conn = unix_client(&path);
            let message = format!("c{i:02}");
            conn.write_all(message.as_bytes()).expect("write");
            (conn, message)
        })
        .collect();
    running.shutdown_handle().shutdown();
    let started = Instant::now();
    while !is_refused(&path) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still accepting"
        );
    }
    release.send(()).expect("release");
    let mut reply = [0; 5];
    first.read_exact(&mut reply).expect("first answered");
    for (conn, message) in &mut waiting {
        let mut reply = vec![0; message.len()];
        conn.read_exact(&mut reply)
            .unwrap_or_else(|e| panic!("{message} not served: {e}"));
        assert_eq!(reply, message.as_bytes());
    }
    drop(waiting);
    let report = join(running);
    assert!(
        report.accepted >= 21 && report.completed == report.accepted,
        "{report:?}"
    );
}

#[test]
fn a_stale_socket_file_is_replaced_and_a_live_one_never_taken() {
    let dir = TempDir::new("stale");
    let path = dir.path("s.sock");
    // Stale: bound, then closed without removing the file (a crashed run).
    drop(UnixListener::bind(&path).expect("bind"));
    assert!(path.exists());
    let running = Server::builder_unix(&path).start(echo);
    let mut client = unix_client(&path);
    assert_eq!(round_trip(&mut client, b"new"), b"new");
    drop(client);

    // Live: this server listens there; a second one must not take it.
    let second = Server::builder_unix(&path).build();
    match second {
        Err(Error::BindUnix {
            path: failed,
            source,
        }) => {
            assert_eq!(failed, path);
            assert_eq!(source.kind(), io::ErrorKind::AddrInUse, "{source}");
        }
        other => panic!("a live socket was taken: {other:?}"),
    }
    // The first server still serves on it.
    let mut client = unix_client(&path);
    assert_eq!(round_trip(&mut client, b"mine"), b"mine");
    drop(client);
    join_after_shutdown(running);

    // Not a socket: never removed.
    let file = dir.path("plain");
    std::fs::write(&file, b"data").expect("write a plain file");
    assert!(matches!(
        Server::builder_unix(&file).build(),
        Err(Error::BindUnix { .. })
    ));
    assert_eq!(std::fs::read(&file).expect("still there"), b"data");
}

fn join_after_shutdown(running: graceful_server::RunningServer) {
    running.shutdown_handle().shutdown();
    join(running);
}

/// A listener the program bound itself is served, and its file is left
/// for the program to remove.
#[test]
fn an_adopted_unix_listener_keeps_its_file() {
    let dir = TempDir::new("adopt");
    let path = dir.path("mine.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    let running = Server::builder("127.0.0.1:0")
        .listen_on_unix(listener)
        .start(echo);
    let mut client = unix_client(&path);
    assert_eq!(round_trip(&mut client, b"x"), b"x");
    drop(client);
    join_after_shutdown(running);
    assert!(path.exists(), "not ours to remove");
}

/// TCP and Unix in one server: one report, and both refuse together.
#[test]
fn tcp_and_unix_listeners_drain_and_refuse_together() {
    let dir = TempDir::new("mixed");
    let path = dir.path("m.sock");
    let running = Server::builder("127.0.0.1:0")
        .listen_unix(&path)
        .start(echo);
    let tcp = running.local_addr();
    let mut over_tcp = support::client(tcp);
    let mut over_unix = unix_client(&path);
    assert_eq!(
        support::echo_round_trip(&mut over_tcp, b"t").expect("tcp echo"),
        b"t"
    );
    assert_eq!(round_trip(&mut over_unix, b"u"), b"u");
    running.shutdown_handle().shutdown();
    support::wait_until_refused(tcp);
    // The acceptor closes its listeners one after the other: the Unix
    // socket refuses too, at most moments later (a connect that gets in
    // meanwhile is served and counted, like any in the backlog).
    let started = Instant::now();
    while !is_refused(&path) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the Unix socket still accepts 5 s after the TCP one refused"
        );
    }
    drop((over_tcp, over_unix));
    let report = join(running);
    assert!(
        report.accepted >= 2 && report.completed == report.accepted,
        "{report:?}"
    );
}

/// The seed scenario over a Unix socket, with the binary: `--unix PATH`
/// alone listens only there; a client mid-conversation keeps the drain
/// going until it hangs up; exit 0; the file is gone.
#[test]
fn the_binary_serves_a_unix_socket_alone() {
    let dir = TempDir::new("bin");
    let path = dir.path("bin.sock");
    let mut child = Command::new(echo_binary())
        .arg("--unix")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("the listening line");
    assert_eq!(line, format!("listening on unix:{}\n", path.display()));
    let mut client = unix_client(&path);
    assert_eq!(round_trip(&mut client, b"seed"), b"seed");
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let started = Instant::now();
    while !is_refused(&path) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still accepting"
        );
    }
    assert_eq!(round_trip(&mut client, b"more"), b"more");
    drop(client);
    let status = wait_child(&mut child, Duration::from_secs(10), "the binary");
    assert_eq!(status.code(), Some(0));
    assert!(!path.exists(), "removed at exit");
}

/// The HTTP example over a Unix socket, with curl as the client.
#[test]
#[cfg(feature = "http")]
fn http_is_served_over_a_unix_socket_to_curl() {
    let curl = Command::new("curl").arg("--version").output();
    if !curl.is_ok_and(|out| out.status.success()) {
        eprintln!("skipped: curl is not installed");
        return;
    }
    let dir = TempDir::new("http");
    let path = dir.path("http.sock");
    let mut server = Command::new(support::fresh_http_example())
        .arg("--unix")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the HTTP example");
    let mut stdout = BufReader::new(server.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("the listening line");
    assert_eq!(line, format!("listening on unix:{}\n", path.display()));
    let out = Command::new("curl")
        .args(["-s", "-m", "5", "-i", "--unix-socket"])
        .arg(&path)
        .arg("http://localhost/")
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with("Hello, world!"), "{text}");
    let posted = Command::new("curl")
        .args([
            "-s",
            "-m",
            "5",
            "--data-binary",
            "over unix",
            "--unix-socket",
        ])
        .arg(&path)
        .arg("http://localhost/echo")
        .output()
        .expect("run curl");
    assert_eq!(posted.stdout, b"over unix");
    let kill = Command::new("kill")
        .args(["-INT", &server.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let status = wait_child(&mut server, Duration::from_secs(10), "the HTTP example");
    assert_eq!(status.code(), Some(0));
    assert!(!path.exists(), "removed at exit");
}
