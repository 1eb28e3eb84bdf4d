//! The HTTP layer in operation (issue 27), over real sockets on loopback:
//! an event per request, the layer's own answers included; decoded query
//! parameters and form bodies; keep-alive rotation by count and by age; a
//! whole-request time budget against a trickled request; and the
//! server-wide budget for gathered bodies: past it a body waits in the
//! kernel, holding no worker, and the memory of the HTTP example under
//! many stalled bodies stays bounded (its resident set, read in `/proc`).
//!
//! Every client has read and write timeouts, every wait is bounded, and
//! sleeps only pace trickling clients or give a timer its time.

#![cfg(feature = "http")]
// The kernel's wait and /proc are unix and Linux only.
#![cfg_attr(not(unix), allow(dead_code, unused_imports))]

mod support;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use graceful_server::http::{self, Limits, MinRate, Request, Response};
use graceful_server::{Builder, Event, RunningServer, Server};

use support::Start;

/// An [`Event::Request`], owned.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Told {
    id: u64,
    peer: String,
    method: Option<String>,
    target: Option<String>,
    version: Option<String>,
    status: u16,
    body_bytes: u64,
    duration: Duration,
    kept_alive: bool,
}

/// The builder of every server here, with its request events sent to the
/// receiver.
fn server() -> (Builder, mpsc::Receiver<Told>) {
    let (tx, rx) = mpsc::channel();
    let builder = Server::builder("127.0.0.1:0")
        .workers(2)
        .on_event(move |event| {
            if let Event::Request {
                id,
                peer,
                method,
                target,
                version,
                status,
                body_bytes,
                duration,
                kept_alive,
            } = event
            {
                let _ = tx.send(Told {
                    id: *id,
                    peer: peer.to_string(),
                    method: method.map(str::to_string),
                    target: target.map(str::to_string),
                    version: version.map(str::to_string),
                    status: *status,
                    body_bytes: *body_bytes,
                    duration: *duration,
                    kept_alive: *kept_alive,
                });
            }
        });
    (builder, rx)
}

/// The next request event, within 5 s.
fn next(events: &mpsc::Receiver<Told>) -> Told {
    events
        .recv_timeout(Duration::from_secs(5))
        .expect("no request event within 5 s")
}

/// The routes of every server here.
fn route(req: &mut Request<'_>) -> Response {
    match (req.method(), req.path()) {
        ("GET" | "HEAD", "/") => Response::text("Hello, world!"),
        ("GET", "/query") => Response::text(format!("{:?}", pairs(req.query_pairs()))),
        ("GET", "/param") => Response::text(format!("{:?}", req.query_param("x"))),
        ("POST", "/form") => match req.read_form() {
            Ok(form) => Response::text(format!("{form:?}")),
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => Response::new(415),
            Err(_) => Response::new(400),
        },
        ("POST", "/echo") => match req.read_body() {
            Ok(body) => Response::new(200).body(body),
            Err(_) => Response::new(400),
        },
        ("GET", "/panic") => panic!("a deliberate panic in a test handler"),
        ("GET", "/events") => {
            // A stream that ends after its first event.
            let (response, sender) = req.event_stream();
            let _ = sender.send(&http::ServerEvent::data("one"));
            let _ = sender.close();
            response
        }
        _ => Response::new(404),
    }
}

fn pairs<'a>(
    pairs: impl Iterator<Item = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
) -> Vec<(String, String)> {
    pairs
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

fn start(builder: Builder, limits: Limits) -> RunningServer {
    builder.start(http::handler(route).limits(limits))
}

fn stop(running: RunningServer) -> graceful_server::Report {
    running.shutdown_handle().shutdown();
    support::join(running)
}

// ---------------------------------------------------------------------------
// A small HTTP client.
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn closes(&self) -> bool {
        self.headers.iter().any(|(name, value)| {
            name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close")
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        Client {
            reader: BufReader::new(support::client(addr)),
        }
    }

    fn local_addr(&self) -> SocketAddr {
        self.reader.get_ref().local_addr().expect("local address")
    }

    fn send(&mut self, raw: &[u8]) {
        self.reader.get_mut().write_all(raw).expect("send");
    }

    fn line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(line.trim_end().to_string())
    }

    /// One response, framed by its `Content-Length`; `head_only` for the
    /// answer to a `HEAD`.
    fn answer_to(&mut self, head_only: bool) -> io::Result<Answer> {
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
            let (name, value) = line.split_once(':').expect("a header line");
            headers.push((name.to_string(), value.trim().to_string()));
        }
        let length: usize = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, value)| value.parse().expect("a length"));
        let mut body = vec![0; if head_only { 0 } else { length }];
        self.reader.read_exact(&mut body)?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    fn answer(&mut self) -> Answer {
        self.answer_to(false).expect("an answer")
    }

    fn exchange(&mut self, raw: &[u8]) -> Answer {
        self.send(raw);
        self.answer()
    }

    /// Reads to the end (what is left of a body, then the server's close).
    fn is_closed_after_body(&mut self) -> bool {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).is_ok()
    }

    /// Whether the server closed the connection (end of file or a reset).
    fn is_closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => rest.is_empty(),
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
        }
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
}

// ---------------------------------------------------------------------------
// 1. The request event.
// ---------------------------------------------------------------------------

#[test]
fn every_served_request_is_told_with_what_it_was_and_what_went_out() {
    let (builder, events) = server();
    let running = start(builder, Limits::default());
    let mut client = Client::connect(running.local_addr());
    let peer = client.local_addr().to_string();

    let before = Instant::now();
    assert_eq!(client.exchange(&get("/")).text(), "Hello, world!");
    let first = next(&events);
    assert_eq!(
        (first.method.as_deref(), first.target.as_deref()),
        (Some("GET"), Some("/"))
    );
    assert_eq!(first.version.as_deref(), Some("HTTP/1.1"));
    assert_eq!((first.status, first.body_bytes), (200, 13));
    assert!(first.kept_alive);
    assert_eq!(first.peer, peer);
    assert!(first.duration > Duration::ZERO && first.duration <= before.elapsed());

    client.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(client.answer_to(true).expect("an answer").status, 200);
    let head = next(&events);
    assert_eq!((head.method.as_deref(), head.body_bytes), (Some("HEAD"), 0));
    assert_eq!(head.id, first.id, "the same connection");

    let missing = client.exchange(&get("/missing?x=%20y"));
    assert_eq!(missing.status, 404);
    let event = next(&events);
    assert_eq!(event.target.as_deref(), Some("/missing?x=%20y"), "as sent");
    assert_eq!(event.status, 404);

    client.send(b"POST /echo HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(client.answer().text(), "hello");
    let last = next(&events);
    assert_eq!(last.version.as_deref(), Some("HTTP/1.0"));
    assert_eq!((last.status, last.body_bytes), (200, 5));
    assert!(!last.kept_alive, "HTTP/1.0 without keep-alive closes");
    assert!(client.is_closed());

    // Another connection, another id.
    let mut other = Client::connect(running.local_addr());
    other.exchange(&get("/"));
    assert_ne!(next(&events).id, first.id);
    drop(other);

    // An event stream takes its connection over: told once its head is
    // out, as not kept for another request.
    let mut stream = Client::connect(running.local_addr());
    stream.send(&get("/events"));
    let head = stream.line().expect("a status line");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let event = next(&events);
    assert_eq!(
        (event.target.as_deref(), event.status),
        (Some("/events"), 200)
    );
    assert!(!event.kept_alive);
    assert!(stream.is_closed_after_body());
    stop(running);
}

#[test]
fn each_answer_of_the_layer_itself_is_told() {
    let (builder, events) = server();
    let limits = Limits {
        header_timeout: Duration::from_millis(300),
        max_headers: 4,
        ..Limits::default()
    };
    let running = start(builder, limits);
    let addr = running.local_addr();
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    let many_headers = "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    let cases: [(&[u8], u16, Option<&str>); 8] = [
        (b"GET / HTTP/1.1\r\n\r\n", 400, Some("GET")),
        (b"GET /half HTTP/1.1\r\nHost: x\r\n", 408, Some("GET")),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n",
            413,
            Some("POST"),
        ),
        (long_target.as_bytes(), 414, Some("GET")),
        (many_headers.as_bytes(), 431, Some("GET")),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            501,
            Some("POST"),
        ),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, Some("GET")),
        (b"GET /panic HTTP/1.1\r\nHost: x\r\n\r\n", 500, Some("GET")),
    ];
    for (raw, status, method) in cases {
        let mut client = Client::connect(addr);
        let answer = client.exchange(raw);
        assert_eq!(answer.status, status);
        assert!(answer.closes(), "{status} closes");
        let event = next(&events);
        assert_eq!(event.status, status, "{event:?}");
        assert_eq!(event.method.as_deref(), method, "{event:?}");
        assert!(!event.kept_alive, "{event:?}");
        assert_eq!(event.body_bytes, answer.body.len() as u64, "{event:?}");
        assert_eq!(event.peer, client.local_addr().to_string());
    }
    // What the event says of a refused request line, and when the head
    // timed out.
    let mut client = Client::connect(addr);
    client.exchange(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n");
    let event = next(&events);
    assert_eq!(event.version.as_deref(), Some("HTTP/2.0"));
    let mut client = Client::connect(addr);
    let started = Instant::now();
    client.exchange(b"GET /slow-head HTTP/1.1\r\n");
    let event = next(&events);
    assert_eq!(event.target.as_deref(), Some("/slow-head"));
    assert!(
        event.duration >= Duration::from_millis(300) && event.duration <= started.elapsed(),
        "from the head's first byte: {event:?}"
    );
    let report = stop(running);
    assert_eq!(report.panicked, 1);
    assert!(report.timed_out >= 2, "{report:?}");
}

// ---------------------------------------------------------------------------
// 2. Query parameters and form bodies.
// ---------------------------------------------------------------------------

#[test]
fn query_parameters_and_forms_are_decoded() {
    let (builder, _events) = server();
    let running = start(builder, Limits::default());
    let mut client = Client::connect(running.local_addr());
    let cases = [
        ("a+b=c+d", r#"[("a b", "c d")]"#),
        ("plus=%2B&space=%20", r#"[("plus", "+"), ("space", " ")]"#),
        ("x=%E2%82%ac", r#"[("x", "€")]"#),
        (
            "bad=%zz&half=%4&end=%",
            r#"[("bad", "%zz"), ("half", "%4"), ("end", "%")]"#,
        ),
        ("x=%FF", r#"[("x", "�")]"#),
        ("&&a=1&&a=2&", r#"[("a", "1"), ("a", "2")]"#),
        (
            "flag&=v&k=1=2",
            r#"[("flag", ""), ("", "v"), ("k", "1=2")]"#,
        ),
        ("a%3Db=c%26d", r#"[("a=b", "c&d")]"#),
    ];
    for (query, expected) in cases {
        let answer = client.exchange(&get(&format!("/query?{query}")));
        assert_eq!(answer.text(), expected, "{query}");
    }
    assert_eq!(client.exchange(&get("/query")).text(), "[]");
    let answer = client.exchange(&get("/param?y=1&x=first+one&x=second"));
    assert_eq!(answer.text(), r#"Some("first one")"#);
    assert_eq!(client.exchange(&get("/param?y=1")).text(), "None");
    // An absolute-form target has its query too.
    let answer = client.exchange(&get("http://example.com/param?x=%41"));
    assert_eq!(answer.text(), r#"Some("A")"#);

    let body = "name=Ada+Lovelace&lang=en&lang=fr&note=100%25+%zz";
    let form = format!(
        "POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded; \
         charset=UTF-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = client.exchange(form.as_bytes());
    assert_eq!(
        answer.text(),
        r#"[("name", "Ada Lovelace"), ("lang", "en"), ("lang", "fr"), ("note", "100% %zz")]"#
    );
    let json = "POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                Content-Length: 2\r\n\r\n{}";
    assert_eq!(client.exchange(json.as_bytes()).status, 415);
    // The unread body was drained: the connection goes on.
    assert_eq!(client.exchange(&get("/")).status, 200);
    drop(client);
    stop(running);
}

// ---------------------------------------------------------------------------
// 3. Keep-alive rotation.
// ---------------------------------------------------------------------------

#[test]
fn connections_rotate_after_a_number_of_requests_or_an_age() {
    let (builder, events) = server();
    let limits = Limits {
        keepalive_requests: Some(3),
        keepalive_time: None,
        ..Limits::default()
    };
    let running = start(builder, limits);
    let mut client = Client::connect(running.local_addr());
    for n in 1..=3 {
        let answer = client.exchange(&get("/"));
        assert_eq!(answer.closes(), n == 3, "request {n}");
        assert_eq!(next(&events).kept_alive, n < 3);
    }
    assert!(client.is_closed(), "closed after the third");
    stop(running);

    let (builder, events) = server();
    let limits = Limits {
        keepalive_requests: None,
        keepalive_time: Some(Duration::from_millis(300)),
        ..Limits::default()
    };
    let running = start(builder, limits);
    let mut client = Client::connect(running.local_addr());
    for _ in 0..5 {
        assert!(!client.exchange(&get("/")).closes(), "young: kept");
    }
    // Only the passing of time can show an age.
    thread::sleep(Duration::from_millis(400));
    assert!(client.exchange(&get("/")).closes(), "aged: closed");
    assert!(client.is_closed());
    assert_eq!(
        (0..6)
            .map(|_| next(&events).kept_alive)
            .filter(|&kept| !kept)
            .count(),
        1
    );
    let report = stop(running);
    assert_eq!(report.completed, 1);
}

#[test]
fn rotation_has_nginx_defaults() {
    let limits = Limits::default();
    assert_eq!(limits.keepalive_requests, Some(1000));
    assert_eq!(limits.keepalive_time, Some(Duration::from_secs(3600)));
    assert_eq!(limits.request_timeout, Some(Duration::from_secs(300)));
    assert_eq!(limits.gathered_total, 32 << 20);
}

// ---------------------------------------------------------------------------
// 4. The whole-request budget.
// ---------------------------------------------------------------------------

/// Sends `head`, then `body` a byte every `every` until the server answers
/// (or the body ends); returns the answer and how long it took.
fn trickle(addr: SocketAddr, head: &str, body: &[u8], every: Duration) -> (Answer, Duration) {
    let mut client = Client::connect(addr);
    let started = Instant::now();
    client.send(head.as_bytes());
    let stream = client.reader.get_ref().try_clone().expect("clone");
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let body = body.to_vec();
    thread::scope(|scope| {
        scope.spawn(move || {
            let mut stream = stream;
            for byte in body {
                if done_rx.recv_timeout(every).is_ok() {
                    return;
                }
                // The server may have answered and closed meanwhile.
                if stream.write_all(&[byte]).is_err() {
                    return;
                }
            }
        });
        let answer = client.answer();
        let _ = done_tx.send(());
        (answer, started.elapsed())
    })
}

#[test]
fn a_request_slower_than_its_budget_gets_408_however_steady() {
    let (builder, events) = server();
    // No minimum rate and a long header timeout: only the budget can stop
    // a client that keeps sending.
    let limits = Limits {
        request_timeout: Some(Duration::from_secs(1)),
        header_timeout: Duration::from_secs(30),
        min_body_rate: None,
        gathered_body: 64,
        ..Limits::default()
    };
    let running = start(builder, limits);
    let addr = running.local_addr();
    let every = Duration::from_millis(50);

    // A small body, gathered while the connection waits.
    let head = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 60\r\n\r\n";
    let (answer, took) = trickle(addr, head, &[b'a'; 60], every);
    assert_eq!(answer.status, 408);
    assert!(answer.closes());
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(next(&events).status, 408);

    // A larger body, which the closure reads from the socket.
    let head = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n";
    let (answer, took) = trickle(addr, head, &[b'a'; 200], every);
    assert_eq!(answer.status, 408);
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(next(&events).status, 408);

    // A head trickled a byte at a time.
    let head = "GET / HTTP/1.1\r\nHost: x\r\nX-Long: ";
    let (answer, took) = trickle(addr, head, &[b'b'; 200], every);
    assert_eq!(answer.status, 408);
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(next(&events).status, 408);

    // Within the budget, the same pace is served.
    let head = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n";
    let (answer, _) = trickle(addr, head, b"hello", every);
    assert_eq!((answer.status, answer.text().as_str()), (200, "hello"));

    let report = stop(running);
    assert_eq!(report.timed_out, 3, "{report:?}");
}

// ---------------------------------------------------------------------------
// 5. The server-wide budget for gathered bodies.
// ---------------------------------------------------------------------------

/// `POST /echo` with a body of `length` bytes, of which `sent` go now.
fn post_start(addr: SocketAddr, length: usize, sent: usize) -> Client {
    let mut client = Client::connect(addr);
    let head = format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n");
    client.send(head.as_bytes());
    client.send(&vec![b'x'; sent]);
    client
}

#[test]
#[cfg(unix)] // the wait in the kernel needs SO_RCVLOWAT
fn past_the_budget_a_body_waits_in_the_kernel_holding_no_worker() {
    let (builder, _events) = server();
    // No budget: no body is gathered. One worker: a body that held it
    // would keep every other client waiting.
    let limits = Limits {
        gathered_total: 0,
        ..Limits::default()
    };
    let running = start(builder.workers(1), limits);
    let addr = running.local_addr();
    let mut stalled: Vec<Client> = (0..8).map(|_| post_start(addr, 60_000, 50_000)).collect();
    // A well-behaved client is answered at once, again and again.
    let mut good = Client::connect(addr);
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(good.exchange(&get("/")).status, 200);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    // The stalled bodies are served once they are all there.
    for client in &mut stalled {
        client.send(&[b'x'; 10_000]);
    }
    for client in &mut stalled {
        let answer = client.answer();
        assert_eq!((answer.status, answer.body.len()), (200, 60_000));
    }
    drop(stalled);
    drop(good);
    stop(running);
}

#[test]
#[cfg(unix)] // the wait in the kernel needs SO_RCVLOWAT
fn a_body_stalled_in_the_kernel_gets_408_at_its_rate_deadline() {
    let (builder, events) = server();
    let limits = Limits {
        gathered_total: 0,
        min_body_rate: Some(MinRate {
            bytes_per_second: 100_000,
            grace: Duration::from_millis(300),
        }),
        ..Limits::default()
    };
    let running = start(builder, limits);
    let started = Instant::now();
    let mut client = post_start(running.local_addr(), 60_000, 30_000);
    // 30 KB at 100 KB/s: 0.3 s, after the 0.3 s grace.
    let answer = client.answer();
    assert_eq!(answer.status, 408);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(next(&events).status, 408);
    let report = stop(running);
    assert_eq!(report.timed_out, 1);
}

/// The resident memory of process `pid`, in KiB.
#[cfg(target_os = "linux")]
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("a VmRSS line")
}

/// The HTTP example's `graceful_server_connections_parked` gauge, read
/// from `/metrics` on `client`.
#[cfg(target_os = "linux")]
fn parked(client: &mut Client) -> u64 {
    let text = client.exchange(&get("/metrics")).text();
    text.lines()
        .find_map(|line| line.strip_prefix("graceful_server_connections_parked "))
        .and_then(|value| value.trim().parse().ok())
        .expect("a parked gauge")
}

/// Opens `n` more attackers on `addr`: each sends a head for a 64 KiB body
/// and 60 KiB of it, then stalls.
#[cfg(target_os = "linux")]
fn stall(addr: SocketAddr, n: usize, attackers: &mut Vec<TcpStream>) {
    let head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\n";
    let body = vec![b'x'; 60 * 1024];
    for _ in 0..n {
        let mut stream = support::client(addr);
        stream.write_all(head).expect("send a head");
        stream.write_all(&body).expect("send most of a body");
        attackers.push(stream);
    }
}

/// Waits (at most 20 s) until `count` connections are parked, and their
/// memory settled; returns the example's resident memory then.
#[cfg(target_os = "linux")]
fn settled(server: &support::ServerProcess, metrics: &mut Client, count: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    while parked(metrics) < count {
        assert!(Instant::now() < deadline, "{count} connections not parked");
        // Polling a gauge: no blocking form.
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_millis(200));
    resident_kib(server.pid())
}

#[test]
#[cfg(target_os = "linux")] // /proc
fn memory_stays_bounded_under_many_stalled_bodies() {
    // 1,000 attackers here, 1,000 connections in the example, a few more.
    let limit = graceful_server::raise_descriptor_limit().expect("the descriptor limit");
    assert!(
        limit.map_or(true, |limit| limit >= 2_300),
        "the test needs 2,300 descriptors, the hard limit is {limit:?}"
    );
    const BUDGET_KIB: u64 = 4 * 1024;
    let budget = (BUDGET_KIB * 1024).to_string();
    let mut command = std::process::Command::new(support::fresh_http_example());
    command.args([
        "--addr",
        "127.0.0.1:0",
        "--workers",
        "4",
        "--gathered-total",
        &budget,
    ]);
    let server = support::ServerProcess::start_command(command);
    let addr = server.addr;
    let mut metrics = Client::connect(addr);
    // Warm up: the workers, their buffers, the allocator.
    for _ in 0..50 {
        metrics.exchange(&get("/"));
    }
    let mut attackers = Vec::new();
    stall(addr, 10, &mut attackers);
    let base = settled(&server, &mut metrics, 10);
    stall(addr, 490, &mut attackers);
    let at_500 = settled(&server, &mut metrics, 500);
    stall(addr, 500, &mut attackers);
    let at_1000 = settled(&server, &mut metrics, 1000);

    // A well-behaved client is still answered at once.
    let mut good = Client::connect(addr);
    let started = Instant::now();
    assert_eq!(good.exchange(&get("/")).status, 200);
    assert!(started.elapsed() < Duration::from_secs(2));

    let growth = at_1000.saturating_sub(base);
    let per_connection = at_1000.saturating_sub(at_500) / 500;
    eprintln!(
        "resident: {base} KiB with 10 stalled bodies, {at_500} KiB with 500, {at_1000} KiB \
         with 1,000: {per_connection} KiB per connection past the budget"
    );
    // Unbounded, each would hold about 65 KiB: 64 MiB for 1,000. Bounded:
    // the budget, then a read buffer (8 KiB) and a connection each.
    assert!(
        per_connection <= 20,
        "{per_connection} KiB per stalled connection past the budget"
    );
    assert!(
        growth <= BUDGET_KIB + 1000 * 20,
        "{growth} KiB for 1,000 stalled bodies"
    );
    drop(attackers);
}
