//! The HTTP example (`examples/http.rs`) under load, under attack and under
//! garbage: shutdown in the middle of keep-alive traffic loses no request,
//! silent and non-reading clients cannot hold workers past their timeouts,
//! and thousands of random and mutated requests get well-formed answers or a
//! closed connection, never a dead server.
//!
//! Every client has read and write timeouts and every loop is bounded, so a
//! misbehaving server fails a test within seconds instead of hanging it.

// Every scenario ends the example with SIGINT (`kill`), and one sets a
// socket option with libc: unix only.
#![cfg(unix)]

mod support;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::ServerProcess;

/// How long a test waits for the server to exit after the signal.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the HTTP example on a free loopback port. Backtraces are off so
/// that panicking requests cost little.
fn start(args: &[&str]) -> ServerProcess {
    let mut command = Command::new(support::fresh_http_example());
    command
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .env("RUST_BACKTRACE", "0");
    ServerProcess::start_command(command)
}

fn assert_exit(server: &mut ServerProcess, code: i32) -> String {
    let status = server.wait_exit(EXIT_TIMEOUT);
    let stderr = server.stderr();
    assert_eq!(status.code(), Some(code), "stderr: {stderr}");
    stderr
}

/// A seeded xorshift64* generator: the same seed gives the same test.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

// ---------------------------------------------------------------------------
// Reading responses strictly.
// ---------------------------------------------------------------------------

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

    fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// Checks a status line (`HTTP/1.1 NNN Reason`) and returns the code.
fn parse_status_line(line: &str) -> Result<u16, String> {
    let rest = line
        .strip_prefix("HTTP/1.1 ")
        .ok_or_else(|| format!("bad status line {line:?}"))?;
    let (code, reason) = rest
        .split_once(' ')
        .ok_or_else(|| format!("no reason phrase in {line:?}"))?;
    let status = code
        .parse::<u16>()
        .ok()
        .filter(|c| code.len() == 3 && (100..600).contains(c))
        .ok_or_else(|| format!("bad status code in {line:?}"))?;
    if reason.is_empty() || !reason.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Err(format!("bad reason phrase in {line:?}"));
    }
    Ok(status)
}

/// Checks a header line (`Name: value`) and splits it.
fn parse_header_line(line: &str) -> Result<(String, String), String> {
    let (name, value) = line
        .split_once(':')
        .ok_or_else(|| format!("bad header line {line:?}"))?;
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(format!("bad header name in {line:?}"));
    }
    if !value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        return Err(format!("bad header value in {line:?}"));
    }
    Ok((name.to_string(), value.trim().to_string()))
}

/// The body length a response announces; every response of the example
/// has exactly one `Content-Length`.
fn content_length(headers: &[(String, String)]) -> Result<usize, String> {
    let mut lengths = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"));
    let (_, value) = lengths.next().ok_or("no Content-Length")?;
    if lengths.next().is_some() {
        return Err("several Content-Length headers".into());
    }
    value
        .parse()
        .map_err(|_| format!("bad Content-Length {value:?}"))
}

/// How reading a response on a live connection went.
#[derive(Debug)]
#[allow(dead_code)] // the fields are read through `Debug`, in failure messages
enum ReadError {
    /// The connection ended (end of file or reset) before the first byte of
    /// a response.
    Closed(io::ErrorKind),
    /// It ended, or timed out, in the middle of a response.
    Truncated(String),
    /// Bytes that are not a well-formed response.
    Malformed(String),
}

/// One keep-alive HTTP client connection.
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn new(stream: TcpStream) -> Client {
        Client {
            reader: BufReader::new(stream),
        }
    }

    fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    fn send(&mut self, raw: &[u8]) -> io::Result<()> {
        self.reader.get_mut().write_all(raw)
    }

    fn send_get(&mut self, path: &str) -> io::Result<()> {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
    }

    /// Reads one line without its CRLF. `Ok(None)` at end of file.
    fn line(&mut self) -> io::Result<Option<String>> {
        let mut raw = Vec::new();
        if self.reader.read_until(b'\n', &mut raw)? == 0 {
            return Ok(None);
        }
        if !raw.ends_with(b"\r\n") {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        raw.truncate(raw.len() - 2);
        String::from_utf8(raw)
            .map(Some)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a non-UTF-8 line"))
    }

    /// Reads one response framed by its `Content-Length`, checking every
    /// line of it.
    fn response(&mut self) -> Result<Response, ReadError> {
        let truncated = |e: io::Error| ReadError::Truncated(e.to_string());
        let status_line = match self.line() {
            Ok(Some(line)) => line,
            Ok(None) => return Err(ReadError::Closed(io::ErrorKind::UnexpectedEof)),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                return Err(ReadError::Closed(e.kind()))
            }
            Err(e) => return Err(truncated(e)),
        };
        let status = parse_status_line(&status_line).map_err(ReadError::Malformed)?;
        let mut headers = Vec::new();
        loop {
            let line = self
                .line()
                .map_err(truncated)?
                .ok_or_else(|| ReadError::Truncated("end of file in the head".into()))?;
            if line.is_empty() {
                break;
            }
            headers.push(parse_header_line(&line).map_err(ReadError::Malformed)?);
        }
        let len = content_length(&headers).map_err(ReadError::Malformed)?;
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body).map_err(truncated)?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// Whether the server has already closed the connection (its end of
    /// file or reset is waiting to be read), checked without blocking.
    /// Anything else waiting is a response nobody asked for.
    fn closed_by_server(&mut self) -> bool {
        assert!(
            self.reader.buffer().is_empty(),
            "unsolicited bytes from the server: {:?}",
            String::from_utf8_lossy(self.reader.buffer())
        );
        let stream = self.reader.get_ref();
        stream.set_nonblocking(true).expect("set_nonblocking");
        let peeked = stream.peek(&mut [0; 1]);
        stream.set_nonblocking(false).expect("set_nonblocking");
        match peeked {
            Ok(0) => true,
            Ok(_) => panic!("unsolicited bytes from the server"),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(_) => true,
        }
    }
}

fn is_refused(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
    )
}

// ---------------------------------------------------------------------------
// Shutdown under load.
// ---------------------------------------------------------------------------

/// What the clients saw, in total.
#[derive(Default)]
struct Seen {
    /// Requests sent on connections opened before the signal.
    sent_before: AtomicU64,
    answered_before: AtomicU64,
    /// Of those answers, the ones that said `Connection: close`.
    closing_answers: AtomicU64,
    /// Connections opened before the signal that the server closed while
    /// the client had no request out (it checks just before sending): the
    /// idle close at the end of the grace window.
    closed_idle_before_send: AtomicU64,
    /// Connections made after the signal, and what became of them.
    refused_after: AtomicU64,
    served_after: AtomicU64,
    /// Connects after the signal that got through but ended without an
    /// answer: they raced the listener's close (queued in the kernel
    /// backlog after the final sweep).
    raced_after: AtomicU64,
    /// Requests sent on a connection opened before the signal that got no
    /// complete answer. Must stay empty.
    lost: Mutex<Vec<String>>,
}

/// One client: requests back to back on a keep-alive connection (or with a
/// random pause when `think` is set), reconnecting when the server closes,
/// until a connect is refused after the signal.
fn load_client(
    addr: SocketAddr,
    signalled: &AtomicBool,
    seen: &Seen,
    answers: &mpsc::Sender<()>,
    think: Option<u64>,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut rng = think.map(Rng::new);
    let mut conn: Option<(Client, bool)> = None;
    while Instant::now() < deadline {
        let (client, before) = match &mut conn {
            Some(conn) => conn,
            None => {
                match TcpStream::connect_timeout(&addr, support::IO_TIMEOUT) {
                    Ok(stream) => {
                        // Read after the connect returned: false means the
                        // handshake completed before the signal was sent.
                        let before = !signalled.load(Ordering::SeqCst);
                        stream.set_read_timeout(Some(support::IO_TIMEOUT)).unwrap();
                        stream.set_write_timeout(Some(support::IO_TIMEOUT)).unwrap();
                        conn.insert((Client::new(stream), before))
                    }
                    // After the signal the listener closes: a connect is
                    // refused, or reset when the handshake completed into
                    // the kernel's queue just before the close (std's
                    // `connect_timeout` then reports the reset). Either way
                    // the connection never opened.
                    Err(e) if is_refused(&e) && signalled.load(Ordering::SeqCst) => {
                        seen.refused_after.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    Err(e) => panic!("connect failed before the signal: {e}"),
                }
            }
        };
        let before = *before;
        if let Some(rng) = &mut rng {
            // A client between requests, so that some requests land right
            // at the end of the idle grace.
            thread::sleep(Duration::from_millis(rng.below(400) as u64));
        }
        if client.closed_by_server() {
            let counter = match before {
                true => &seen.closed_idle_before_send,
                false => &seen.raced_after,
            };
            counter.fetch_add(1, Ordering::SeqCst);
            conn = None;
            continue;
        }
        if before {
            seen.sent_before.fetch_add(1, Ordering::SeqCst);
        }
        let result = match client.send_get("/") {
            Ok(()) => client.response(),
            Err(e) => Err(ReadError::Closed(e.kind())),
        };
        match result {
            Ok(response) => {
                assert_eq!(response.status, 200, "{response:?}");
                assert_eq!(response.body, b"Hello, world!");
                if before {
                    seen.answered_before.fetch_add(1, Ordering::SeqCst);
                } else {
                    seen.served_after.fetch_add(1, Ordering::SeqCst);
                }
                if response.closes() {
                    seen.closing_answers.fetch_add(1, Ordering::SeqCst);
                    conn = None;
                }
                let _ = answers.send(());
            }
            Err(ReadError::Malformed(what)) => panic!("malformed response: {what}"),
            Err(error) if before => {
                let local = client.stream().local_addr().ok();
                seen.lost
                    .lock()
                    .unwrap()
                    .push(format!("{local:?}: {error:?}"));
                conn = None;
            }
            Err(_) => {
                seen.raced_after.fetch_add(1, Ordering::SeqCst);
                conn = None;
            }
        }
    }
    panic!("client still running after 30 s");
}

/// Runs 16 keep-alive clients against the example (32 workers), sends
/// SIGINT after a few hundred answers, waits for exit 0 and returns what the
/// clients saw with a one-line summary. `thinking` of the clients pause up to
/// 400 ms before each request instead of sending back to back.
fn shutdown_under_load(thinking: u64, seed: u64) -> (Seen, String) {
    const CLIENTS: u64 = 16;
    const ANSWERS_BEFORE_SIGNAL: usize = 300;
    let mut server = start(&["--workers", "32"]);
    let addr = server.addr;
    let signalled = AtomicBool::new(false);
    let seen = Seen::default();
    let (answers_tx, answers_rx) = mpsc::channel();
    thread::scope(|scope| {
        for i in 0..CLIENTS {
            let answers = answers_tx.clone();
            let (signalled, seen) = (&signalled, &seen);
            let think = (i < thinking).then_some(seed * CLIENTS + i + 1);
            scope.spawn(move || load_client(addr, signalled, seen, &answers, think));
        }
        drop(answers_tx);
        for n in 0..ANSWERS_BEFORE_SIGNAL {
            answers_rx
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("only {n} answers within 10 s"));
        }
        signalled.store(true, Ordering::SeqCst);
        server.signal("INT");
    });
    let stderr = assert_exit(&mut server, 0);

    let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
    let summary = format!(
        "{} sent before the signal, {} answered ({} with Connection: close), \
         {} idle connections closed before a send; after the signal: {} refused, \
         {} served, {} raced the listener's close; lost: {:?}; server: {stderr}",
        get(&seen.sent_before),
        get(&seen.answered_before),
        get(&seen.closing_answers),
        get(&seen.closed_idle_before_send),
        get(&seen.refused_after),
        get(&seen.served_after),
        get(&seen.raced_after),
        seen.lost.lock().unwrap(),
    );
    eprintln!("{summary}");
    assert_eq!(
        get(&seen.refused_after),
        CLIENTS,
        "every client ends on a refused connect: {summary}"
    );
    assert!(stderr.contains("drained"), "{summary}");
    (seen, summary)
}

/// 16 keep-alive clients sending back to back, SIGINT in the middle: every
/// request sent on a connection opened before the signal is answered in
/// full (the one in flight at the signal with `Connection: close`); later
/// connects are refused, or race the listener's close (counted apart);
/// exit 0.
#[test]
fn shutdown_under_load_loses_no_request() {
    let (seen, summary) = shutdown_under_load(0, 0);
    assert!(seen.lost.lock().unwrap().is_empty(), "{summary}");
    assert_eq!(
        seen.sent_before.load(Ordering::SeqCst),
        seen.answered_before.load(Ordering::SeqCst),
        "{summary}"
    );
}

/// The idle race: as above, but six of the clients pause up to 400 ms before
/// each request, so that some requests reach the server right when the idle
/// grace (250 ms) ends and their connection is closed as idle (the other ten
/// keep the machine busy, which widens the race).
///
/// Such a request cannot always be answered: the server decided to close
/// before it arrived, and the client cannot know until the close reaches
/// it. What the server can promise is a clean end: the client sees end of
/// file, which HTTP clients take as "not processed, retry" (RFC 9112
/// section 9.3.1), never a reset.
///
/// Ignored, because it cannot be made deterministic: the example now reads
/// once more after an idle close (Linux still returns data queued before the
/// close) and answers it, and otherwise sends its FIN before closing; but a
/// request that reaches the socket after the close itself still meets a
/// reset, and a reconnect can (rarely) be reset by the kernel when its port
/// meets one of the server's TIME_WAIT sockets. Run it with `--ignored` to
/// see how often that happens on a given machine.
#[test]
#[ignore = "timing-dependent by nature; see the doc comment"]
fn a_request_racing_the_idle_close_ends_cleanly() {
    for round in 0..5 {
        let (seen, summary) = shutdown_under_load(6, round);
        let lost = seen.lost.lock().unwrap();
        assert!(
            lost.iter().all(|l| !l.contains("ConnectionReset")),
            "round {round}: a request racing the idle close was reset: {summary}"
        );
    }
}

// ---------------------------------------------------------------------------
// Slow and silent clients.
// ---------------------------------------------------------------------------

/// With a 1 s read timeout and 4 workers, 12 silent connections hold the
/// workers for at most 1 s each: a real request queued behind them is
/// answered after about 3 s, well before the 10 s default would allow.
#[test]
fn silent_clients_cannot_keep_a_request_waiting() {
    const BOUND: Duration = Duration::from_secs(9);
    let mut server = start(&["--read-timeout", "1", "--workers", "4"]);
    let mut silent: Vec<TcpStream> = (0..12).map(|_| support::client(server.addr)).collect();
    let started = Instant::now();
    let mut real = Client::new(support::client(server.addr));
    real.stream().set_read_timeout(Some(BOUND)).unwrap();
    real.send_get("/").expect("send");
    let response = real
        .response()
        .unwrap_or_else(|e| panic!("no answer within {BOUND:?}: {e:?}"));
    assert_eq!(response.status, 200);
    eprintln!("answered after {:?}", started.elapsed());
    // Each silent connection was cut by the server, not left open.
    for stream in &mut silent {
        match support::read_to_end(stream) {
            Ok(bytes) => assert!(bytes.is_empty(), "a silent client got {bytes:?}"),
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
        }
    }
    server.signal("INT");
    assert_exit(&mut server, 0);
}

/// Sets a small receive buffer, so that a client that stops reading fills
/// the response path after a few hundred KiB instead of megabytes.
fn shrink_receive_buffer(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 4096;
    // SAFETY: a valid socket descriptor and a pointer to a c_int of the
    // given length, as SO_RCVBUF expects.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_RCVBUF)");
}

/// A client pipelines `GET /` without reading the answers until its own
/// writes stall. The answers its socket cannot take wait on the connection,
/// not on a worker: with a single worker, the next client is answered at
/// once (before, the worker was held until the write timeout).
#[test]
fn a_client_that_stops_reading_holds_no_worker() {
    const BOUND: Duration = Duration::from_secs(2);
    // Thousands of requests on one connection: more than it carries by
    // default (1000), after which the server would close it.
    let mut server = start(&["--workers", "1", "--keepalive-requests", "none"]);
    let mut staller = support::client(server.addr);
    shrink_receive_buffer(&staller);
    staller
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let chunk = "GET / HTTP/1.1\r\nHost: test\r\n\r\n".repeat(2048);
    // Write until nothing moves for 0.5 s: the server has stopped reading,
    // because it is blocked writing answers nobody reads. Bounded at 256 MiB.
    let mut written = 0;
    let stalled = loop {
        match staller.write(chunk.as_bytes()) {
            Ok(n) => written += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break true
            }
            Err(_) => break false,
        }
        if written > 256 << 20 {
            break false;
        }
    };
    assert!(stalled, "the pipeline never stalled ({written} bytes sent)");
    let started = Instant::now();
    let mut probe = Client::new(support::client(server.addr));
    probe.stream().set_read_timeout(Some(BOUND)).unwrap();
    probe.send_get("/").expect("send");
    let response = probe
        .response()
        .unwrap_or_else(|e| panic!("the only worker was not freed within {BOUND:?}: {e:?}"));
    assert_eq!(response.status, 200);
    eprintln!(
        "stalled after {written} bytes of requests; probe answered after {:?}",
        started.elapsed()
    );
    drop(staller);
    server.signal("INT");
    let stderr = assert_exit(&mut server, 0);
    // The staller hung up with answers unread: a reset, so failed.
    assert!(
        stderr.contains(" 0 completed, 1 failed"),
        "the stalled connection ends when its client leaves: {stderr}"
    );
}

// ---------------------------------------------------------------------------
// Fuzzing the request handling.
// ---------------------------------------------------------------------------

/// Valid requests the fuzzer starts from. No `/slow` (a mutated delay could
/// be long) and no `HEAD` (its answer has no body, which a client cannot
/// frame without knowing how the server read the mutated request).
const SEEDS: &[&str] = &[
    "GET / HTTP/1.1\r\nHost: test\r\n\r\n",
    "GET /healthz HTTP/1.1\r\nHost: test\r\nUser-Agent: fuzz/1.0\r\nAccept: */*\r\n\r\n",
    "GET /?a=b&c=d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello",
    "GET /nowhere HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
    "GET / HTTP/1.0\r\n\r\n",
];

const METHODS: &[&str] = &[
    "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT", "get", "G ET", "", "GETT",
    "\u{0}GET",
];
const VERSIONS: &[&str] = &[
    "HTTP/2.0",
    "HTTP/1.2",
    "HTTP/0.9",
    "HTTP/1.1.1",
    "HTTP/x",
    "http/1.1",
    "HTTP/1",
    "",
];
const LENGTHS: &[&str] = &[
    "-1",
    "abc",
    "99999999999999999999999",
    "1048577",
    "1048576",
    "+5",
    "5, 5",
    "",
    "0x10",
    " 3",
    "3\r\nContent-Length: 4",
    "0",
    "2",
];

fn replace_first(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes);
    if text.len() == bytes.len() && text.contains(from) {
        text.replacen(from, to, 1).into_bytes()
    } else {
        bytes.to_vec()
    }
}

/// One request: a seed, mutated zero to three times, or pure junk.
fn fuzz_request(rng: &mut Rng) -> Vec<u8> {
    if rng.chance(5) {
        return (0..rng.below(3000)).map(|_| rng.next() as u8).collect();
    }
    let mut request = rng.pick(SEEDS).as_bytes().to_vec();
    if rng.chance(2) {
        request = b"GET /panic HTTP/1.1\r\nHost: test\r\n\r\n".to_vec();
    }
    for _ in 0..rng.below(4) {
        match rng.below(12) {
            0 | 1 => {
                for _ in 0..=rng.below(3) {
                    if !request.is_empty() {
                        let at = rng.below(request.len());
                        request[at] = rng.next() as u8;
                    }
                }
            }
            2 => request.truncate(rng.below(request.len() + 1)),
            3 => {
                let at = rng.below(request.len() + 1);
                let junk: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
                request.splice(at..at, junk);
            }
            4 => {
                let big = format!("X-Big: {}\r\n", "a".repeat(1000 + rng.below(12_000)));
                request = replace_first(&request, "\r\n", &format!("\r\n{big}"));
            }
            5 => {
                let many: String = (0..60 + rng.below(20))
                    .map(|i| format!("X-H{i}: v\r\n"))
                    .collect();
                request = replace_first(&request, "\r\n", &format!("\r\n{many}"));
            }
            6 => request = replace_first(&request, "GET", rng.pick(METHODS)),
            7 => {
                request = replace_first(&request, "HTTP/1.1", rng.pick(VERSIONS));
                request = replace_first(&request, "HTTP/1.0", rng.pick(VERSIONS));
            }
            8 => {
                let header = format!("\r\nContent-Length: {}", rng.pick(LENGTHS));
                request = replace_first(&request, "\r\n", &format!("{header}\r\n"));
            }
            9 => request = replace_first(&request, "\r\n", "\r\nTransfer-Encoding: chunked\r\n"),
            10 => {
                let text = String::from_utf8_lossy(&request).replace("\r\n", "\n");
                request = text.into_bytes();
            }
            _ => {
                if !request.is_empty() {
                    let from = rng.below(request.len());
                    let to = from + rng.below(request.len() - from + 1);
                    let copy = request[from..to].to_vec();
                    let at = rng.below(request.len() + 1);
                    request.splice(at..at, copy);
                }
            }
        }
    }
    // A `HEAD` answer has no body; see SEEDS.
    if request.windows(4).any(|w| w.eq_ignore_ascii_case(b"HEAD")) {
        return SEEDS[0].as_bytes().to_vec();
    }
    request
}

/// Checks everything a connection received: zero or more complete,
/// well-formed responses, nothing after one that says `Connection: close`.
/// Returns how many there were.
fn check_responses(mut bytes: &[u8]) -> Result<usize, String> {
    let mut count = 0;
    while !bytes.is_empty() {
        let head_end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("a truncated response head")?;
        let head = std::str::from_utf8(&bytes[..head_end]).map_err(|_| "a non-UTF-8 head")?;
        let mut lines = head.split("\r\n");
        let status = parse_status_line(lines.next().unwrap_or_default())?;
        if ![200, 400, 404, 405, 408, 413, 414, 431, 500, 501, 503, 505].contains(&status) {
            return Err(format!("unexpected status {status}"));
        }
        let headers = lines
            .map(parse_header_line)
            .collect::<Result<Vec<_>, _>>()?;
        let len = content_length(&headers)?;
        let rest = &bytes[head_end + 4..];
        if rest.len() < len {
            return Err(format!(
                "body of {} bytes, Content-Length {len}",
                rest.len()
            ));
        }
        bytes = &rest[len..];
        count += 1;
        let closes = headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close"));
        // The HTTP layer's rejections end the connection (after bad input
        // it cannot tell where a next request would start); the routes'
        // 400, 404 and 405 are ordinary answers on a healthy connection.
        let rejection = [408, 413, 414, 431, 500, 501, 505].contains(&status);
        if rejection && !closes {
            return Err(format!("error {status} without Connection: close"));
        }
        if closes && !bytes.is_empty() {
            return Err("bytes after a Connection: close response".into());
        }
    }
    Ok(count)
}

/// Sends one connection's worth of fuzz (1 to 4 pipelined requests, in 1 to
/// 3 writes), ends its side, and checks what comes back.
fn fuzz_connection(addr: SocketAddr, rng: &mut Rng) -> Result<(usize, usize), String> {
    let requests = 1 + rng.below(4);
    let mut raw = Vec::new();
    for _ in 0..requests {
        raw.extend(fuzz_request(rng));
    }
    let mut stream = support::client(addr);
    stream.set_nodelay(true).unwrap();
    let pieces = 1 + rng.below(3);
    let mut rest = &raw[..];
    for piece in 0..pieces {
        let len = if piece + 1 == pieces {
            rest.len()
        } else {
            rng.below(rest.len() + 1)
        };
        // The server may close early (after an error response, a panic):
        // what it answered is checked below.
        if stream.write_all(&rest[..len]).is_err() {
            break;
        }
        rest = &rest[len..];
    }
    let _ = stream.shutdown(Shutdown::Write);
    let mut received = Vec::new();
    match stream.read_to_end(&mut received) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Err(e) => {
            return Err(format!(
                "neither answered nor closed: {e} after {} bytes",
                received.len()
            ))
        }
    }
    let answered = check_responses(&received).map_err(|what| {
        format!(
            "{what}; sent {:?}; received {:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(300)]),
            String::from_utf8_lossy(&received[..received.len().min(600)])
        )
    })?;
    Ok((requests, answered))
}

/// Thousands of random and mutated requests over real sockets: every
/// response is well-formed (or the connection just closes), no panic escapes
/// a worker, and afterwards each of the 4 workers still serves.
#[test]
fn fuzzed_requests_get_well_formed_answers_or_a_close() {
    const THREADS: u64 = 4;
    const CONNECTIONS_PER_THREAD: usize = 500;
    const WORKERS: usize = 4;
    let mut server = start(&["--workers", "4", "--read-timeout", "2"]);
    let addr = server.addr;
    let started = Instant::now();
    let totals: Vec<(usize, usize)> = thread::scope(|scope| {
        let threads: Vec<_> = (0..THREADS)
            .map(|seed| {
                scope.spawn(move || {
                    let mut rng = Rng::new(0x5EED + seed);
                    let (mut sent, mut answered) = (0, 0);
                    for i in 0..CONNECTIONS_PER_THREAD {
                        let (s, a) = fuzz_connection(addr, &mut rng)
                            .unwrap_or_else(|e| panic!("seed {seed}, connection {i}: {e}"));
                        sent += s;
                        answered += a;
                    }
                    (sent, answered)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let sent: usize = totals.iter().map(|t| t.0).sum();
    let answered: usize = totals.iter().map(|t| t.1).sum();
    eprintln!(
        "{sent} fuzzed requests, {answered} answers, in {:?}",
        started.elapsed()
    );
    assert!(answered > 0);

    // The process is up and every worker serves: four connections held open
    // at once, each answered by its own worker.
    let mut clients = Vec::new();
    for _ in 0..WORKERS {
        let mut client = Client::new(support::client(addr));
        client.send_get("/").expect("send");
        let response = client.response().expect("a worker answers");
        assert_eq!(response.status, 200);
        assert!(!response.closes(), "nobody else is waiting");
        clients.push(client);
    }
    for client in &mut clients {
        client.send_get("/").expect("send");
        assert_eq!(client.response().expect("answered").status, 200);
    }
    server.signal("INT");
    let stderr = assert_exit(&mut server, 0);
    assert!(stderr.contains("drained"), "{stderr}");
}
