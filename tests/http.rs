//! The HTTP example (`examples/http.rs`), run as a child process and driven
//! over real sockets: keep-alive, shutdown of each kind of connection, bad
//! input, panics, more clients than workers, exit codes.
//!
//! Every client has read and write timeouts, so a server that misbehaves
//! fails a test within seconds instead of hanging it.

mod support;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use support::ServerProcess;

/// How long a test waits for the server to exit after the signal.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP example's binary, built from the current sources.
fn example() -> PathBuf {
    support::fresh_http_example()
}

/// Starts the example. Backtraces are turned off so that the `/panic` test
/// does not spend its time symbolizing 200 of them.
fn start(args: &[&str]) -> ServerProcess {
    let mut command = Command::new(example());
    command
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .env("RUST_BACKTRACE", "0");
    ServerProcess::start_command(command)
}

/// A response as the client read it.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the server said this is the connection's last response.
    fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    fn body(&self) -> &str {
        std::str::from_utf8(&self.body).expect("a UTF-8 body")
    }
}

/// One HTTP client connection with 5 s timeouts.
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        Client {
            reader: BufReader::new(support::client(addr)),
        }
    }

    fn send(&mut self, raw: &[u8]) {
        self.reader.get_mut().write_all(raw).expect("send request");
    }

    /// Sends `GET path` (HTTP/1.1, keep-alive) without waiting.
    fn send_get(&mut self, path: &str) {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
    }

    /// `GET path` on this connection, and its response.
    fn get(&mut self, path: &str) -> Response {
        self.send_get(path);
        self.response().expect("a response")
    }

    /// Reads one response framed by `Content-Length`.
    fn response(&mut self) -> io::Result<Response> {
        self.read_response(true)
    }

    /// Reads the response to a `HEAD` request: no body follows the head.
    fn head_response(&mut self) -> io::Result<Response> {
        self.read_response(false)
    }

    fn read_response(&mut self, with_body: bool) -> io::Result<Response> {
        let status_line = self.line()?;
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let line = self.line()?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header line {line:?}"));
            headers.push((name.to_string(), value.trim().to_string()));
        }
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if with_body {
            let len: usize = response
                .header("content-length")
                .expect("every response has a Content-Length")
                .parse()
                .expect("a numeric Content-Length");
            response.body = vec![0; len];
            self.reader.read_exact(&mut response.body)?;
        }
        Ok(response)
    }

    /// One line without its CRLF; an error at end of file.
    fn line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }

    /// Asserts that the server closes the connection with nothing more to
    /// say. A reset counts as closed: that is how a panicking handler's
    /// connection may end.
    fn assert_closed(&mut self) {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => assert!(
                rest.is_empty(),
                "unexpected bytes before the close: {:?}",
                String::from_utf8_lossy(&rest)
            ),
            Err(e) => assert_eq!(
                e.kind(),
                io::ErrorKind::ConnectionReset,
                "the connection must close, not time out"
            ),
        }
    }
}

fn assert_hello(response: &Response) {
    assert_eq!(response.status, 200);
    assert_eq!(response.body(), "Hello, world!");
    assert!(response
        .header("content-type")
        .is_some_and(|v| v.starts_with("text/plain")));
}

/// Sends SIGINT and waits until the server says it is shutting down, so
/// that what the test does next happens during the drain.
#[cfg(unix)] // used by the signal tests only
fn start_shutdown(server: &mut ServerProcess) {
    server.signal("INT");
    server.wait_for_stderr("shutting down", EXIT_TIMEOUT);
}

#[cfg(unix)] // used by the signal tests only
fn assert_exit(server: &mut ServerProcess, code: i32) {
    let status = server.wait_exit(EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(code), "stderr: {}", server.stderr());
}

#[test]
#[cfg(unix)] // stops the server with a signal (`kill`), which Windows lacks
fn keep_alive_serves_several_requests_on_one_connection() {
    let mut server = start(&[]);
    let mut client = Client::connect(server.addr);
    for _ in 0..3 {
        let response = client.get("/");
        assert_hello(&response);
        assert!(!response.closes(), "HTTP/1.1 keeps the connection open");
    }
    // HEAD: the same head, no body; the next response must parse right
    // after it.
    client.send(b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n");
    let head = client.head_response().expect("a HEAD response");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("13"));
    assert_eq!(client.get("/healthz").body(), "ok");
    assert_eq!(client.get("/slow?ms=10").status, 200);
    // A 404 from the routes is an ordinary response: the connection stays.
    let missing = client.get("/nowhere");
    assert_eq!(missing.status, 404);
    assert!(!missing.closes());
    assert_hello(&client.get("/"));

    start_shutdown(&mut server);
    assert_exit(&mut server, 0);
}

#[test]
fn http_1_0_and_connection_close_are_honoured() {
    let server = start(&[]);

    let mut old = Client::connect(server.addr);
    old.send(b"GET / HTTP/1.0\r\n\r\n");
    let response = old.response().expect("a response");
    assert_hello(&response);
    assert!(response.closes(), "HTTP/1.0 closes by default");
    old.assert_closed();

    let mut old_keep = Client::connect(server.addr);
    for _ in 0..2 {
        old_keep.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let response = old_keep.response().expect("a response");
        assert_hello(&response);
        assert_eq!(response.header("connection"), Some("keep-alive"));
    }

    let mut closing = Client::connect(server.addr);
    closing.send(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    let response = closing.response().expect("a response");
    assert_hello(&response);
    assert!(response.closes());
    closing.assert_closed();
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = start(&[]);
    let mut client = Client::connect(server.addr);
    // One write: a slow request, one with a body the server must skip, a
    // HEAD, and a last one that asks to close.
    client.send(
        b"GET /slow?ms=50 HTTP/1.1\r\nHost: test\r\n\r\n\
          GET /healthz HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello\
          HEAD / HTTP/1.1\r\nHost: test\r\n\r\n\
          GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(client.response().expect("1st").body(), "slept 50 ms\n");
    assert_eq!(client.response().expect("2nd").body(), "ok");
    assert_eq!(client.head_response().expect("3rd").status, 200);
    let last = client.response().expect("4th");
    assert_hello(&last);
    assert!(last.closes());
    client.assert_closed();
}

#[test]
fn bad_input_gets_its_status_and_the_connection_closes() {
    let server = start(&[]);
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: test\r\nX-Big: {}\r\n\r\n",
        "a".repeat(17 * 1024)
    );
    let long_target = format!(
        "GET /{} HTTP/1.1\r\nHost: test\r\n\r\n",
        "a".repeat(9 * 1024)
    );
    // Rejected by the HTTP layer: the answer is the connection's last.
    let rejected: [(&str, &[u8], u16); 10] = [
        ("malformed request line", b"HELLO\r\n\r\n", 400),
        (
            "malformed header",
            b"GET / HTTP/1.1\r\nHost: test\r\nBad Header\r\n\r\n",
            400,
        ),
        ("HTTP/1.1 without Host", b"GET / HTTP/1.1\r\n\r\n", 400),
        (
            "bad Content-Length",
            b"GET / HTTP/1.1\r\nHost: test\r\nContent-Length: lots\r\n\r\n",
            400,
        ),
        ("head over 16 KiB", big_header.as_bytes(), 431),
        ("target over 8 KiB", long_target.as_bytes(), 414),
        (
            "body over 1 MiB",
            b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 1048577\r\n\r\n",
            413,
        ),
        (
            "unknown transfer coding",
            b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            501,
        ),
        (
            "chunked not the final coding",
            b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            400,
        ),
        ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: test\r\n\r\n", 505),
    ];
    for (name, raw, status) in rejected {
        let mut client = Client::connect(server.addr);
        client.send(raw);
        let response = client
            .response()
            .unwrap_or_else(|e| panic!("{name}: no response ({e})"));
        assert_eq!(response.status, status, "{name}");
        assert!(response.closes(), "{name}: a rejection closes");
        client.assert_closed();
    }
    // Answered by the routes: ordinary responses, the connection stays.
    let mut client = Client::connect(server.addr);
    client.send(b"GET /slow?ms=60001 HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(client.response().expect("slow beyond 60 s").status, 400);
    client.send(b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\nhi");
    let response = client.response().expect("POST /");
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("GET, HEAD"));
    assert_hello(&client.get("/"));
    // And the server goes on.
    assert_hello(&Client::connect(server.addr).get("/"));
}

#[test]
fn a_silent_client_is_disconnected_after_the_header_and_read_timeouts() {
    let server = start(&["--read-timeout", "0.2", "--header-timeout", "0.3"]);
    // Silent from the start, and silent in the middle of a request.
    let mut silent = Client::connect(server.addr);
    let mut stalled = Client::connect(server.addr);
    stalled.send(b"GET / HTTP/1.1\r\nHost: te");
    silent.assert_closed();
    // A request head cut short by the header timeout is answered 408,
    // then closed.
    let timed_out = stalled.response().expect("a 408");
    assert_eq!(timed_out.status, 408);
    assert!(timed_out.closes());
    stalled.assert_closed();
    // Between requests too.
    let mut idle = Client::connect(server.addr);
    assert_hello(&idle.get("/"));
    idle.assert_closed();
}

#[test]
#[cfg(unix)] // stops the server with a signal (`kill`), which Windows lacks
fn panics_cost_one_connection_and_every_worker_keeps_serving() {
    let mut server = start(&["--workers", "4"]);
    for _ in 0..200 {
        let mut client = Client::connect(server.addr);
        client.send_get("/panic");
        let response = client.response().expect("a 500");
        assert_eq!(response.status, 500);
        assert!(response.closes());
        client.assert_closed();
    }
    // The server goes on: four keep-alive connections open at once are all
    // served, and stay open.
    let mut clients = Vec::new();
    for _ in 0..4 {
        let mut client = Client::connect(server.addr);
        let response = client.get("/");
        assert_hello(&response);
        assert!(!response.closes(), "keep-alive");
        clients.push(client);
    }
    for client in &mut clients {
        assert_hello(&client.get("/"));
    }

    start_shutdown(&mut server);
    assert_exit(&mut server, 0);
    assert!(
        server.stderr().contains("200 panicked"),
        "the report counts the panics"
    );
}

#[test]
fn keep_alive_clients_do_not_starve_the_others() {
    const CLIENTS: usize = 32;
    // The design target is a second; the bound is generous so that a loaded
    // machine does not fail the test.
    const BOUND: Duration = Duration::from_secs(5);
    let server = start(&["--workers", "4"]);
    let answered = AtomicUsize::new(0);
    let deadline = Instant::now() + BOUND;
    thread::scope(|scope| {
        for _ in 0..CLIENTS {
            scope.spawn(|| {
                let mut got_one = false;
                let mut client = None;
                // Every client keeps asking (keep-alive, reconnecting if
                // ever told to close) until all have an answer, so the
                // contention lasts.
                while answered.load(Ordering::SeqCst) < CLIENTS && Instant::now() < deadline {
                    let conn = client.get_or_insert_with(|| Client::connect(server.addr));
                    conn.send_get("/");
                    let Ok(response) = conn.response() else {
                        client = None; // closed under us; reconnect
                        continue;
                    };
                    assert_hello(&response);
                    // Late answers do not count: in a thread-per-connection
                    // pool the waiting clients are served only when the four
                    // lucky ones stop at the deadline.
                    if !got_one && Instant::now() < deadline {
                        got_one = true;
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                    if response.closes() {
                        client = None;
                    }
                }
            });
        }
    });
    assert_eq!(
        answered.load(Ordering::SeqCst),
        CLIENTS,
        "every client must get an answer within {BOUND:?}"
    );
}

#[test]
#[cfg(unix)] // stops the server with a signal (`kill`), which Windows lacks
fn shutdown_closes_idle_connections_and_lets_requests_in_flight_finish() {
    let mut server = start(&[]);
    let mut idle = Client::connect(server.addr);
    assert!(!idle.get("/").closes());
    let mut busy = Client::connect(server.addr);
    // A first answer shows a worker is reading this connection, so the slow
    // request is picked up at once.
    assert_hello(&busy.get("/"));
    busy.send_get("/slow?ms=2000");

    server.signal("INT");
    thread::scope(|scope| {
        let idle_closed = scope.spawn(|| {
            idle.assert_closed();
            Instant::now()
        });
        let busy_answered = scope.spawn(|| {
            let response = busy.response().expect("the request in flight is answered");
            let answered = Instant::now();
            assert_eq!(response.status, 200);
            assert_eq!(response.body(), "slept 2000 ms\n");
            assert!(response.closes(), "a response during shutdown closes");
            busy.assert_closed();
            answered
        });
        let idle_closed = idle_closed.join().expect("idle client");
        let busy_answered = busy_answered.join().expect("busy client");
        // The idle connection goes after the grace window (0.25 s), not when
        // the drain ends.
        assert!(
            idle_closed < busy_answered,
            "the idle connection must close while the slow request is in flight"
        );
    });
    assert_exit(&mut server, 0);
    let stderr = server.stderr();
    assert!(stderr.contains("1 closed idle"), "stderr: {stderr}");
}

#[test]
#[cfg(unix)] // stops the server with a signal (`kill`), which Windows lacks
fn healthz_turns_503_once_shutdown_starts() {
    // A wide grace window, so that the request sent after the signal
    // surely arrives within it on a loaded machine.
    let mut server = start(&["--idle-grace", "3"]);
    let mut probe = Client::connect(server.addr);
    let before = probe.get("/healthz");
    assert_eq!((before.status, before.body()), (200, "ok"));
    assert!(!before.closes());
    // Keep the drain busy beyond the probe, as a real server would be.
    let mut busy = Client::connect(server.addr);
    busy.send_get("/slow?ms=500");

    start_shutdown(&mut server);
    // The probe's connection is idle but within its grace window: the
    // request is answered, with the last-response marker.
    let during = probe.get("/healthz");
    assert_eq!(during.status, 503);
    assert!(during.closes());
    probe.assert_closed();
    assert_eq!(busy.response().expect("slow answered").status, 200);
    assert_exit(&mut server, 0);
}

#[test]
#[cfg(unix)] // stops the server with a signal (`kill`), which Windows lacks
fn exit_status_is_0_after_a_clean_drain() {
    let mut server = start(&[]);
    let mut client = Client::connect(server.addr);
    assert_hello(&client.get("/"));
    // The client stays connected, idle: it must not hold the server up.
    start_shutdown(&mut server);
    assert_exit(&mut server, 0);
    client.assert_closed();
}

#[test]
#[cfg(unix)] // stops the server with a signal (`kill`), which Windows lacks
fn exit_status_is_3_when_the_drain_is_forced() {
    let mut server = start(&["--drain-timeout", "0.3"]);
    let mut busy = Client::connect(server.addr);
    // A first answer shows a worker is reading this connection, so the slow
    // request is picked up at once.
    assert_hello(&busy.get("/"));
    busy.send_get("/slow?ms=5000");
    start_shutdown(&mut server);
    assert_exit(&mut server, 3);
    assert!(server.stderr().contains("forced"));
    // Cut, not answered.
    busy.assert_closed();
}

#[test]
fn bad_command_line_exits_2_and_an_address_in_use_exits_1() {
    assert_eq!(run_to_exit(&["--read-timeout", "0"]).code(), Some(2));
    let server = start(&[]);
    let taken = server.addr.to_string();
    assert_eq!(run_to_exit(&["--addr", &taken]).code(), Some(1));
}

/// Runs the example with `args` when it is expected to exit by itself; kills
/// it and fails if it does not within [`EXIT_TIMEOUT`].
fn run_to_exit(args: &[&str]) -> std::process::ExitStatus {
    let mut child = Command::new(example())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run the example");
    support::wait_child(
        &mut child,
        EXIT_TIMEOUT,
        &format!("the example with {args:?}"),
    )
}
