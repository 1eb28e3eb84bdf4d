//! Defaults that lose nothing across a network: a library HTTP server with
//! every default but the number of workers, 16 keep-alive clients 80 ms of
//! round trip away (through `support::relay`, since this kernel has no
//! `tc netem`), and a shutdown in the middle of their traffic. Every request
//! a client had sent gets a complete answer, each client's last answer says
//! `Connection: close`, and then its connection closes.
//!
//! Across a network a request spends half a round trip on the wire, where
//! the server sees its connection idle. Closing idle connections at once
//! (an idle grace of zero) meets such requests: the control run shows that
//! loss, which the default grace of 500 ms prevents.
//!
//! Every client socket has read and write timeouts and every wait is
//! bounded, so a misbehaving server fails a test within seconds.

#![cfg(feature = "http")]

mod support;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use graceful_server::http::{self, Response};
use graceful_server::{Builder, Report, Server};

use support::relay::Relay;
use support::Start;

const CLIENTS: usize = 16;
/// Answers the clients get, in total, before the shutdown.
const ANSWERS_BEFORE_SHUTDOWN: usize = 100;
/// The relay's delay each way: 80 ms round trips.
const ONE_WAY: Duration = Duration::from_millis(40);
const HELLO: &str = "Hello, world!";
const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n";

/// A response as the client read it.
#[derive(Debug)]
struct Answer {
    status: u16,
    closes: bool,
    body: Vec<u8>,
}

/// Reads one response, framed by its `Content-Length`, straight from the
/// socket (nothing is read past it: one request is out at a time). An end
/// of file before it is complete is an error of kind `UnexpectedEof`.
fn read_answer(stream: &mut TcpStream) -> io::Result<Answer> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let mut got = Vec::new();
    let mut buf = [0; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&got[..end])
                .map_err(|_| invalid("a non-UTF-8 head".into()))?
                .to_owned();
            let status_line = head.split("\r\n").next().unwrap_or_default();
            let status = status_line
                .strip_prefix("HTTP/1.1 ")
                .and_then(|rest| rest.get(..3))
                .and_then(|code| code.parse().ok())
                .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
            let header = |name: &str| {
                head.split("\r\n").skip(1).find_map(|line| {
                    let (n, v) = line.split_once(':')?;
                    n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                })
            };
            let len: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| invalid(format!("no Content-Length in {head:?}")))?;
            if got.len() >= end + 4 + len {
                if got.len() > end + 4 + len {
                    return Err(invalid("bytes after the response".into()));
                }
                let closes = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
                return Ok(Answer {
                    status,
                    closes,
                    body: got[end + 4..].to_vec(),
                });
            }
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            let what = match got.is_empty() {
                true => "closed before the response",
                false => "closed in the middle of the response",
            };
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, what));
        }
        got.extend_from_slice(&buf[..n]);
    }
}

/// What one client saw.
#[derive(Debug, Default)]
struct Seen {
    sent: u64,
    answered: u64,
    /// The last answer said `Connection: close`.
    told_to_close: bool,
    /// After that answer the connection ended with a clean end of file.
    closed_after: bool,
    /// The request that got no complete answer, and why.
    lost: Option<String>,
}

/// One keep-alive client: after `phase`, `GET /` back to back until an
/// answer says `Connection: close` (then it checks that the connection
/// closes) or a request goes unanswered (lost).
fn client(addr: SocketAddr, phase: Duration, answers: &mpsc::Sender<()>) -> Seen {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stream = support::client(addr);
    stream.set_nodelay(true).expect("nodelay");
    // Paces the clients apart, so that at the shutdown some requests are on
    // their way to the server and some answers on their way back.
    thread::sleep(phase);
    let mut seen = Seen::default();
    loop {
        assert!(
            Instant::now() < deadline,
            "still running after 10 s: {seen:?}"
        );
        seen.sent += 1;
        let answer = stream
            .write_all(GET)
            .and_then(|()| read_answer(&mut stream));
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => {
                seen.lost = Some(format!("request {}: {e} ({:?})", seen.sent, e.kind()));
                return seen;
            }
        };
        assert_eq!((answer.status, &answer.body[..]), (200, HELLO.as_bytes()));
        seen.answered += 1;
        // The receiver outlives every client (it is the test's).
        let _ = answers.send(());
        if answer.closes {
            seen.told_to_close = true;
            seen.closed_after =
                matches!(support::read_to_end(&mut stream), Ok(rest) if rest.is_empty());
            return seen;
        }
    }
}

/// Serves `Hello, world!` with `builder`, runs the clients through the
/// relay, shuts down after [`ANSWERS_BEFORE_SHUTDOWN`] answers, and returns
/// what each client saw and the report (checked to add up).
fn shutdown_across_the_network(builder: Builder) -> (Vec<Seen>, Report) {
    let running = builder.start(http::handler(|_| Response::text(HELLO)));
    // Dropped before `running` if the test fails: its connections close,
    // so that dropping the server does not wait for its drain timeout.
    let relay = Relay::start(running.local_addr(), ONE_WAY);
    let addr = relay.addr();
    let (answers_tx, answers) = mpsc::channel();
    let seen = thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let answers_tx = answers_tx.clone();
                // Spread over one round trip.
                let phase = 2 * ONE_WAY * i as u32 / CLIENTS as u32;
                scope.spawn(move || client(addr, phase, &answers_tx))
            })
            .collect();
        for n in 0..ANSWERS_BEFORE_SHUTDOWN {
            answers
                .recv_timeout(Duration::from_secs(5))
                .unwrap_or_else(|_| panic!("only {n} answers within 5 s"));
        }
        running.shutdown_handle().shutdown();
        clients
            .into_iter()
            .map(|c| {
                c.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect::<Vec<_>>()
    });
    let report = support::join(running);
    drop(relay);
    (seen, report)
}

/// Totals of the clients: requests sent, answered, lost.
fn totals(seen: &[Seen]) -> (u64, u64, usize) {
    let sent = seen.iter().map(|s| s.sent).sum();
    let answered = seen.iter().map(|s| s.answered).sum();
    let lost = seen.iter().filter(|s| s.lost.is_some()).count();
    (sent, answered, lost)
}

/// The defaults, 80 ms away: nothing lost. Each connection ends with a
/// `Connection: close` answer followed by the close, so every connection is
/// `completed` and none had to be closed idle.
#[test]
fn defaults_lose_nothing_across_a_network() {
    let started = Instant::now();
    let (seen, report) = shutdown_across_the_network(Server::builder("127.0.0.1:0").workers(4));
    let (sent, answered, lost) = totals(&seen);
    eprintln!(
        "default idle grace: {CLIENTS} clients, {sent} requests, {answered} answered, \
         {lost} lost, in {:?}; {report}",
        started.elapsed()
    );
    let lost: Vec<_> = seen.iter().filter_map(|s| s.lost.as_deref()).collect();
    assert!(lost.is_empty(), "requests lost: {lost:?}");
    assert_eq!(answered, sent, "{seen:?}");
    for client in &seen {
        assert!(
            client.told_to_close,
            "last answer without Connection: close: {client:?}"
        );
        assert!(
            client.closed_after,
            "not closed after Connection: close: {client:?}"
        );
    }
    // Every client had one answer after the shutdown: its closing one.
    assert!(
        answered >= (ANSWERS_BEFORE_SHUTDOWN + CLIENTS) as u64,
        "{answered} answers"
    );
    let counts = [
        report.accepted,
        report.completed,
        report.failed,
        report.timed_out,
        report.closed_idle,
        report.force_closed,
        report.unserved,
        report.panicked,
    ];
    assert_eq!(
        counts,
        [CLIENTS as u64, CLIENTS as u64, 0, 0, 0, 0, 0, 0],
        "accepted, completed, failed, timed out, closed idle, force-closed, unserved, \
         panicked: {report}"
    );
    assert!(!report.forced, "{report}");
}

/// The control: the same run with an idle grace of zero, which closes the
/// idle connections at the signal, meeting the requests on the wire. It
/// prints how many were lost; it asserts only that every request is
/// accounted for (answered, or the one a client lost), since how many are
/// on the wire at that moment is timing.
#[test]
fn control_without_an_idle_grace_requests_on_the_wire_are_lost() {
    let builder = Server::builder("127.0.0.1:0")
        .workers(4)
        .idle_grace(Duration::ZERO);
    let (seen, report) = shutdown_across_the_network(builder);
    let (sent, answered, lost) = totals(&seen);
    eprintln!(
        "idle grace 0: {CLIENTS} clients, {sent} requests, {answered} answered, {lost} lost; \
         {report}"
    );
    for client in &seen {
        let unanswered = client.sent - client.answered;
        assert_eq!(unanswered, u64::from(client.lost.is_some()), "{client:?}");
        assert!(client.lost.is_some() || client.told_to_close, "{client:?}");
    }
    assert_eq!(report.accepted, CLIENTS as u64, "{report}");
}
