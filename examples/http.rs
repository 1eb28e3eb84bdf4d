//! An HTTP/1.1 server with keep-alive that shuts down without losing a
//! request.
//!
//! Keep-alive is where graceful shutdown usually goes wrong: idle connections
//! keep the server alive until they time out (Node before 19), or are cut so
//! abruptly that a request already on the wire is lost. This example shows
//! the library's answer:
//!
//! - each turn serves one request; between requests the connection waits
//!   idle ([`Next::Idle`]), holding no worker, so shutdown closes it (after a
//!   short grace window) instead of waiting for it;
//! - a request in flight (`/slow`) finishes, and every response sent after
//!   shutdown started says `Connection: close`;
//! - `/healthz` answers `503` once shutdown has started, for load balancers;
//! - bad input gets a status code and a closed connection, a panic costs one
//!   connection, and every buffer is bounded.
//!
//! Requests are parsed with `httparse`; this file only frames them.
//!
//! ```text
//! cargo run --release --example http -- --workers 4
//! curl -v http://127.0.0.1:8080/ http://127.0.0.1:8080/healthz
//! ```

use std::borrow::Cow;
use std::io::{self, BufRead, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use graceful_server::{Connection, Error, Next, Report, Server};

#[path = "../src/cli.rs"]
mod cli;

const PROGRAM: &str = "http";

const USAGE: &str = "usage: http [--addr ADDR] [--workers N] [--drain-timeout SECS|none] \
     [--drain-delay SECS] [--idle-grace SECS] [--read-timeout SECS|none] [--write-timeout SECS|none] [--poll] [--help]";

const HELP: &str = "\
http: an HTTP/1.1 server with keep-alive that shuts down gracefully

routes:
  GET|HEAD /          200 'Hello, world!'
  GET /slow?ms=N      200 after N ms (N at most 60000)
  GET /panic          the handler panics: the connection closes, the server
                      goes on
  GET /healthz        200 'ok' while serving, 503 once shutdown has started

On SIGINT (ctrl-c), SIGTERM or SIGHUP the server stops accepting. Requests in
flight finish, and their responses say 'Connection: close'. Idle keep-alive
connections get the idle grace, in which a request that arrives is still
answered (with 'Connection: close'), then they are closed. A second signal,
or the drain timeout, closes everything left and exits at once.

options:
  --addr ADDR             address to listen on [default: 127.0.0.1:8080]
                          (port 0 picks a free port)
  --workers N             connections served at once [default: 32]
  --drain-timeout SECS    how long to wait for connections at shutdown, or
                          'none' to wait for ever [default: 20]
  --drain-delay SECS      after the signal, keep accepting and serving for
                          this long (while /healthz already says 503) before
                          draining: for load balancers that stop sending
                          clients only after the signal [default: 0]
  --idle-grace SECS       how long idle keep-alive connections stay open after
                          the signal [default: 0.25]: enough for a request a
                          client sent just before it to arrive and be answered
                          rather than lost, short enough to go unnoticed
  --read-timeout SECS     disconnect a client silent this long, between or
                          within requests, or 'none' [default: 10]
  --write-timeout SECS    disconnect a client that stops reading for this
                          long, or 'none' [default: 10]
  --poll                  watch waiting connections with poll(2) instead of
                          epoll (to compare the portable backend)
  --help                  print this help

Durations are in seconds; fractions are allowed (0.5).
The first line on stdout is 'listening on IP:PORT'. Progress goes to stderr.
Started by systemd socket activation (or examples/supervisor.rs), the server
serves on the inherited socket instead of binding --addr, and reports
READY=1 / STOPPING=1 to NOTIFY_SOCKET when set.

exit status:
  0  every connection ended by itself or as idle
  1  the server could not start or failed (e.g. address in use)
  2  bad command line
  3  shutdown was forced (drain timeout or second signal)";

const DEFAULT_ADDR: &str = "127.0.0.1:8080";
const DEFAULT_WORKERS: usize = 32;
const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
/// Long enough for a request sent just before the signal to cross a network
/// (a few round trips even between regions) and be answered with
/// `Connection: close` instead of meeting a closed socket; short enough that
/// nobody waiting for the server to exit notices it.
const DEFAULT_IDLE_GRACE: Duration = Duration::from_millis(250);
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest request head (request line and headers) accepted: the size of
/// the buffer each connection reads into.
const MAX_HEAD: usize = 8 * 1024;
/// At most this many headers; more is answered like a head too large.
const MAX_HEADERS: usize = 64;
/// The largest request body accepted. Bodies are read and thrown away.
const MAX_BODY: u64 = 1024 * 1024;
/// The longest `/slow` may take.
const MAX_SLOW_MS: u64 = 60_000;
/// How long, after the last response of a connection the server closes, it
/// keeps reading (and discarding) what the client still sends; see
/// [`close_politely`].
const LINGER: Duration = Duration::from_millis(500);

#[derive(Debug, PartialEq)]
struct Options {
    addr: SocketAddr,
    workers: usize,
    drain_timeout: Option<Duration>,
    drain_delay: Duration,
    idle_grace: Duration,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    poll: bool,
}

#[derive(Debug, PartialEq)]
enum Command {
    Serve(Options),
    Help,
}

fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)) {
        Ok(Command::Serve(options)) => cli::exit_status(PROGRAM, run(&options)),
        Ok(Command::Help) => {
            println!("{HELP}");
            ExitCode::SUCCESS
        }
        Err(message) => cli::usage_error(PROGRAM, &message, USAGE),
    }
}

fn run(options: &Options) -> Result<Report, Error> {
    let server = Server::builder(options.addr)
        .workers(options.workers)
        .drain_timeout(options.drain_timeout)
        .drain_delay(options.drain_delay)
        .idle_grace(options.idle_grace)
        .read_timeout(options.read_timeout)
        .idle_timeout(options.read_timeout)
        .use_poll(options.poll)
        .write_timeout(options.write_timeout)
        .inherit_listener(true)
        .systemd_notify(true)
        .build()?;
    let handle = server.shutdown_handle();
    // Before the `listening on` line: a signal sent right after it must find
    // the handler in place.
    handle.install_ctrl_c()?;
    let running = server.spawn(Http)?;
    let plan = cli::drain_plan(options.drain_delay, options.drain_timeout);
    let idle_grace = options.idle_grace.as_secs_f64();
    cli::announce_and_join(running, &handle, |open| {
        format!(
            "{open} connection(s) open; idle ones close in {idle_grace}s; {plan} \
             for the others (press ctrl-c again to force)"
        )
    })
}

// ---------------------------------------------------------------------------
// One turn: read a request, answer it, say whether the connection stays.
// ---------------------------------------------------------------------------

/// The handler: serves one request per turn. Between requests the
/// connection waits idle (no worker held); shutdown may close it then.
struct Http;

impl graceful_server::Handler for Http {
    fn turn(&self, conn: &mut Connection) -> io::Result<Next> {
        serve_request(conn)
    }

    /// A connection that has not sent a request yet is as safe to close at
    /// shutdown as one between requests.
    fn new_connections_are_idle(&self) -> bool {
        true
    }
}

fn serve_request(conn: &mut Connection) -> io::Result<Next> {
    let request = match read_request(conn)? {
        Head::Request(request) => request,
        Head::Closed => return Ok(Next::Close),
        Head::Reject(status) => {
            // After bad input we cannot tell where the next request would
            // start, so every error response ends the connection.
            write_response(conn, &Response::error(status), false, Closing::Yes)?;
            close_politely(conn.stream());
            return Ok(Next::Close);
        }
    };
    if !skip_body(conn, request.body_len)? {
        return Ok(Next::Close); // the client hung up in the middle of its body
    }
    let response = route(&request, conn);
    // Decided after the work is done: a shutdown that started during a
    // `/slow` request must show in its response.
    let closing = closing(&request, &response, conn);
    write_response(conn, &response, request.method == Method::Head, closing)?;
    if closing == Closing::Yes {
        close_politely(conn.stream());
        return Ok(Next::Close);
    }
    Ok(Next::Idle)
}

/// Whether the connection stays open after `response` to `request`.
fn closing(request: &Request, response: &Response, conn: &Connection) -> Closing {
    let close = !request.keep_alive
        // Error responses (404, a bad `/slow` value) close too: one rule
        // for every error, as for the rejections of bad input.
        || response.status.0 >= 400
        // Every response sent during shutdown says it is the last.
        || conn.is_shutting_down();
    if close {
        Closing::Yes
    } else if request.http10 {
        Closing::KeepAlive10
    } else {
        Closing::No
    }
}

/// What the connection produced.
enum Head {
    Request(Request),
    /// Bad input, to answer with this status before closing.
    Reject(Status),
    /// The client hung up.
    Closed,
}

/// Reads one request head, line by line through the connection's buffer, so
/// that bytes after it (a body, pipelined requests) stay buffered.
fn read_request(conn: &mut Connection) -> io::Result<Head> {
    let mut head = Vec::with_capacity(512);
    loop {
        let before = head.len();
        let limit = (MAX_HEAD - before) as u64;
        let n = match (&mut *conn).take(limit).read_until(b'\n', &mut head) {
            Ok(n) => n,
            // A client silent past the read timeout in the middle of a head
            // is a failure; at its start, simply done.
            Err(error) if is_timeout(&error) && before == 0 => return Ok(Head::Closed),
            Err(error) => return Err(error),
        };
        if n == 0 {
            // End of file: the client hung up (if it was in the middle of a
            // head there is nobody left to answer).
            return Ok(Head::Closed);
        }
        let line = &head[before..];
        if line == b"\r\n" || line == b"\n" {
            if before == 0 {
                // Blank lines before a request are allowed (RFC 9112 2.2).
                head.clear();
                continue;
            }
            return Ok(match parse_head(&head) {
                Parsed::Complete { request, .. } => Head::Request(request),
                Parsed::Invalid(status) => Head::Reject(status),
                Parsed::Partial => Head::Reject(Status::BAD_REQUEST),
            });
        }
        if head.len() >= MAX_HEAD {
            return Ok(Head::Reject(Status::HEAD_TOO_LARGE));
        }
    }
}

/// Reads and discards a request body of `len` bytes, so that the next
/// pipelined request parses from the right place. Returns `false` if the
/// client hung up first.
fn skip_body(conn: &mut Connection, len: u64) -> io::Result<bool> {
    let skipped = io::copy(&mut conn.take(len), &mut io::sink())?;
    Ok(skipped == len)
}

fn is_timeout(error: &io::Error) -> bool {
    // A read timeout surfaces as `WouldBlock` on Unix, `TimedOut` on Windows.
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

// ---------------------------------------------------------------------------
// Requests: what httparse found, checked against our limits.
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Get,
    Head,
}

/// The parts of a request head the server needs, copied out of the inbox.
#[derive(Debug)]
struct Request {
    method: Method,
    /// The request target, query included.
    target: String,
    /// Whether the client wants the connection kept open.
    keep_alive: bool,
    /// HTTP/1.0 (whose keep-alive must be confirmed in the response).
    http10: bool,
    body_len: u64,
}

enum Parsed {
    Complete { request: Request },
    Partial,
    Invalid(Status),
}

fn parse_head(bytes: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(bytes) {
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Ok(httparse::Status::Complete(_)) => match check(&parsed) {
            Ok(request) => Parsed::Complete { request },
            Err(status) => Parsed::Invalid(status),
        },
        Err(httparse::Error::TooManyHeaders) => Parsed::Invalid(Status::HEAD_TOO_LARGE),
        Err(_) => Parsed::Invalid(Status::BAD_REQUEST),
    }
}

/// Turns a complete head into a [`Request`], or the status that refuses it.
fn check(parsed: &httparse::Request<'_, '_>) -> Result<Request, Status> {
    // A complete parse always has these three; be safe rather than sorry.
    let (Some(method), Some(target), Some(version)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Err(Status::BAD_REQUEST);
    };
    let has = |name: &str| {
        parsed
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(name))
    };
    // Chunked bodies would need a decoder; refusing them keeps the framing
    // simple and safe (no request smuggling through a body we misread).
    if has("transfer-encoding") {
        return Err(Status::NOT_IMPLEMENTED);
    }
    let body_len = content_length(parsed.headers)?;
    if body_len > MAX_BODY {
        return Err(Status::PAYLOAD_TOO_LARGE);
    }
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        _ => return Err(Status::METHOD_NOT_ALLOWED),
    };
    let http10 = version == 0;
    // HTTP/1.1 keeps the connection open unless told otherwise; HTTP/1.0
    // closes it unless asked to keep it.
    let keep_alive = if http10 {
        connection_has(parsed.headers, "keep-alive")
    } else {
        !connection_has(parsed.headers, "close")
    };
    Ok(Request {
        method,
        target: target.to_string(),
        keep_alive,
        http10,
        body_len,
    })
}

/// The body length from `Content-Length` (0 without one). Several headers
/// must agree, as RFC 9112 section 6.3 requires.
fn content_length(headers: &[httparse::Header<'_>]) -> Result<u64, Status> {
    let mut length = None;
    for header in headers {
        if !header.name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        let value = std::str::from_utf8(header.value)
            .ok()
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or(Status::BAD_REQUEST)?;
        if length.is_some_and(|seen| seen != value) {
            return Err(Status::BAD_REQUEST);
        }
        length = Some(value);
    }
    Ok(length.unwrap_or(0))
}

/// Whether a `Connection` header lists `token` (e.g. `close`).
fn connection_has(headers: &[httparse::Header<'_>], token: &str) -> bool {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
        .flat_map(|value| value.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

// ---------------------------------------------------------------------------
// Routes.
// ---------------------------------------------------------------------------

fn route(request: &Request, conn: &Connection) -> Response {
    let (path, query) = request
        .target
        .split_once('?')
        .unwrap_or((&request.target, ""));
    match path {
        "/" => Response::text(Status::OK, "Hello, world!"),
        "/slow" => slow(query),
        "/panic" => panic!("GET /panic: a deliberate panic; it costs this one connection"),
        "/healthz" if conn.is_shutting_down() => {
            Response::text(Status::UNAVAILABLE, "shutting down\n")
        }
        "/healthz" => Response::text(Status::OK, "ok"),
        _ => Response::text(Status::NOT_FOUND, "not found\n"),
    }
}

/// `/slow?ms=N`: the example's stand-in for real work. It is not cut short
/// at shutdown: work in flight is what a graceful drain waits for.
fn slow(query: &str) -> Response {
    let ms = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("ms="))
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|&ms| ms <= MAX_SLOW_MS);
    let Some(ms) = ms else {
        return Response::error(Status::BAD_REQUEST);
    };
    std::thread::sleep(Duration::from_millis(ms));
    Response::text(Status::OK, format!("slept {ms} ms\n"))
}

// ---------------------------------------------------------------------------
// Responses.
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Status(u16, &'static str);

impl Status {
    const OK: Status = Status(200, "OK");
    const BAD_REQUEST: Status = Status(400, "Bad Request");
    const NOT_FOUND: Status = Status(404, "Not Found");
    const METHOD_NOT_ALLOWED: Status = Status(405, "Method Not Allowed");
    const PAYLOAD_TOO_LARGE: Status = Status(413, "Payload Too Large");
    const HEAD_TOO_LARGE: Status = Status(431, "Request Header Fields Too Large");
    const NOT_IMPLEMENTED: Status = Status(501, "Not Implemented");
    const UNAVAILABLE: Status = Status(503, "Service Unavailable");
}

struct Response {
    status: Status,
    body: Cow<'static, str>,
}

impl Response {
    fn text(status: Status, body: impl Into<Cow<'static, str>>) -> Response {
        Response {
            status,
            body: body.into(),
        }
    }

    /// An error response whose body is its reason phrase.
    fn error(status: Status) -> Response {
        Response::text(status, format!("{}\n", status.1))
    }
}

/// What the response says about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closing {
    /// `Connection: close`, and the server closes after it.
    Yes,
    /// Stays open; HTTP/1.1's default, so no header.
    No,
    /// Stays open; an HTTP/1.0 client needs `Connection: keep-alive` to know.
    KeepAlive10,
}

/// Writes the whole response with one `write_all`, so that it leaves in as
/// few packets as possible (a head and a body written separately can wait
/// for a delayed ACK).
fn write_response(
    stream: &mut Connection,
    response: &Response,
    head_only: bool,
    closing: Closing,
) -> io::Result<()> {
    let Status(code, reason) = response.status;
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n",
        response.body.len()
    );
    if response.status == Status::METHOD_NOT_ALLOWED {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    match closing {
        Closing::Yes => out.push_str("Connection: close\r\n"),
        Closing::KeepAlive10 => out.push_str("Connection: keep-alive\r\n"),
        Closing::No => {}
    }
    out.push_str("\r\n");
    if !head_only {
        out.push_str(&response.body);
    }
    stream.write_all(out.as_bytes())
}

/// Ends a connection after its last response without destroying that
/// response.
///
/// Closing a socket that still has unread input makes the kernel send a
/// reset, and a reset can make the client drop the response it has not read
/// yet. That input is common here: requests pipelined behind the last one, or
/// the body of a refused request. So, as RFC 9112 section 9.6 advises, send
/// our end of file first, then read and discard whatever still comes until
/// the client closes too, for at most [`LINGER`].
fn close_politely(mut stream: &TcpStream) {
    // Errors here mean the connection is already gone, which is the goal.
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + LINGER;
    let mut scratch = [0; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // `set_read_timeout` rejects zero, which also ends the loop.
        if stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut scratch) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

// ---------------------------------------------------------------------------
// Command line.
// ---------------------------------------------------------------------------

fn parse_args(args: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut options = Options {
        addr: DEFAULT_ADDR
            .parse()
            .expect("the default address is a valid socket address"),
        workers: DEFAULT_WORKERS,
        drain_timeout: Some(DEFAULT_DRAIN_TIMEOUT),
        drain_delay: Duration::ZERO,
        idle_grace: DEFAULT_IDLE_GRACE,
        read_timeout: Some(DEFAULT_READ_TIMEOUT),
        write_timeout: Some(DEFAULT_WRITE_TIMEOUT),
        poll: false,
    };
    let mut flags = cli::Flags::new(args);
    while let Some(flag) = flags.next_flag() {
        let options = &mut options;
        match flag.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--addr" => options.addr = cli::addr(&flag, &flags.value(&flag)?)?,
            "--workers" => options.workers = cli::workers(&flag, &flags.value(&flag)?)?,
            "--drain-timeout" => {
                options.drain_timeout = cli::seconds_or_none(&flag, &flags.value(&flag)?)?;
            }
            "--drain-delay" => options.drain_delay = cli::seconds(&flag, &flags.value(&flag)?)?,
            "--idle-grace" => options.idle_grace = cli::seconds(&flag, &flags.value(&flag)?)?,
            "--read-timeout" => {
                options.read_timeout = cli::timeout(&flag, &flags.value(&flag)?)?;
            }
            "--write-timeout" => {
                options.write_timeout = cli::timeout(&flag, &flags.value(&flag)?)?;
            }
            "--poll" => options.poll = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Command::Serve(options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Command, String> {
        parse_args(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_and_values() {
        let Ok(Command::Serve(options)) = args(&[]) else {
            panic!("no arguments must serve");
        };
        assert_eq!(options.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(options.read_timeout, Some(Duration::from_secs(10)));
        let Ok(Command::Serve(options)) = args(&["--read-timeout=none", "--idle-grace", "0"])
        else {
            panic!("valid values must parse");
        };
        assert_eq!(options.read_timeout, None);
        assert_eq!(options.idle_grace, Duration::ZERO);
    }

    #[test]
    fn bad_values_are_errors() {
        for bad in [
            &["--read-timeout", "0"][..],
            &["--write-timeout", "-1"],
            &["--idle-grace", "none"],
            &["--workers", "0"],
            &["--bogus"],
        ] {
            assert!(args(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    fn parse(raw: &str) -> Parsed {
        parse_head(raw.as_bytes())
    }

    #[test]
    fn keep_alive_follows_the_version_and_the_connection_header() {
        let keep = |raw: &str| match parse(raw) {
            Parsed::Complete { request, .. } => request.keep_alive,
            _ => panic!("{raw:?} must parse"),
        };
        assert!(keep("GET / HTTP/1.1\r\n\r\n"));
        assert!(!keep("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n"));
        assert!(!keep("GET / HTTP/1.0\r\n\r\n"));
        assert!(keep("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn refusals() {
        let status = |raw: &str| match parse(raw) {
            Parsed::Invalid(status) => status.0,
            _ => panic!("{raw:?} must be refused"),
        };
        assert_eq!(status("POST / HTTP/1.1\r\n\r\n"), 405);
        assert_eq!(
            status("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            501
        );
        assert_eq!(
            status("GET / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n"),
            413
        );
        assert_eq!(status("GET / HTTP/1.1\r\nContent-Length: +5\r\n\r\n"), 400);
        assert_eq!(
            status("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            400
        );
        assert_eq!(status("GET / HTTP/1.1\r\nBad Header\r\n\r\n"), 400);
    }
}
