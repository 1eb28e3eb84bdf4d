//! Server-sent events on the HTTP layer, over real sockets on loopback:
//! raw HTTP clients that read the chunked stream, and a rustls client over
//! TLS. `curl -N` on the HTTP example's `/events` is in
//! `tests/long_lived_example.rs`.
#![cfg(feature = "http")]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use graceful_server::http::{self, EventSender, Response, ServerEvent};
use graceful_server::{Builder, PushError, RunningServer, Server};

use support::{client, join};

type Subscribers = Arc<Mutex<Vec<EventSender>>>;

/// A server whose `/events` starts a stream (its goodbye event says
/// `bye`), keeping each sender in `subscribers`; `/` answers `hello`.
fn server(builder: Builder, subscribers: Subscribers) -> RunningServer {
    builder
        .build()
        .expect("build")
        .spawn(app(subscribers))
        .expect("spawn")
}

fn app(subscribers: Subscribers) -> impl graceful_server::Handler {
    http::handler(move |req| match req.path() {
        "/events" => {
            let (response, events) = req.event_stream();
            events.set_goodbye(Some(ServerEvent::data("bye").event("goodbye")));
            subscribers.lock().unwrap().push(events);
            response
        }
        _ => Response::text("hello"),
    })
}

/// Pushes `event` to every subscriber; returns how many took it.
fn broadcast(subscribers: &Subscribers, event: &ServerEvent) -> usize {
    let mut list = subscribers.lock().unwrap();
    list.retain(|s| s.send(event).is_ok());
    list.len()
}

/// An event-stream client that has read the response's head.
struct Subscriber {
    reader: BufReader<TcpStream>,
    head: String,
}

impl Subscriber {
    fn new(addr: SocketAddr, version: &str) -> Subscriber {
        let mut stream = client(addr);
        let request =
            format!("GET /events {version}\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
        stream.write_all(request.as_bytes()).expect("request");
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        while !head.ends_with("\r\n\r\n") {
            assert!(reader.read_line(&mut head).expect("the head") > 0, "{head}");
        }
        Subscriber { reader, head }
    }

    /// The next chunk's data; empty for the last chunk.
    fn chunk(&mut self) -> String {
        let mut size = String::new();
        self.reader.read_line(&mut size).expect("a chunk size");
        let size = usize::from_str_radix(size.trim_end(), 16).expect("a hex size");
        let mut data = vec![0; size + 2];
        self.reader.read_exact(&mut data).expect("a chunk");
        assert!(data.ends_with(b"\r\n"));
        data.truncate(size);
        String::from_utf8(data).expect("UTF-8")
    }

    /// What is left until the server closes the connection.
    fn rest(&mut self) -> String {
        let mut rest = String::new();
        self.reader
            .read_to_string(&mut rest)
            .expect("read to the end");
        rest
    }
}

fn wait_for(subscribers: &Subscribers, n: usize) {
    let start = Instant::now();
    while subscribers.lock().unwrap().len() < n {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never subscribed"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// The case: on four workers, eight subscribers all get every
/// event, and plain requests are answered meanwhile.
#[test]
fn eight_subscribers_on_four_workers_get_every_event_while_get_is_answered() {
    let subscribers = Subscribers::default();
    let running = server(
        Server::builder("127.0.0.1:0").workers(4),
        Arc::clone(&subscribers),
    );
    let addr = running.local_addr();
    let mut clients: Vec<Subscriber> = (0..8).map(|_| Subscriber::new(addr, "HTTP/1.1")).collect();
    let head = &clients[0].head;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("\r\nContent-Type: text/event-stream\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nCache-Control: no-cache\r\n"), "{head}");
    assert!(
        head.contains("\r\nTransfer-Encoding: chunked\r\n"),
        "{head}"
    );
    wait_for(&subscribers, 8);
    for round in 0..5 {
        let event = ServerEvent::data(format!("tick {round}")).id(round.to_string());
        assert_eq!(broadcast(&subscribers, &event), 8);
        for subscriber in &mut clients {
            assert_eq!(
                subscriber.chunk(),
                format!("id: {round}\ndata: tick {round}\n\n")
            );
        }
        // A probe is answered at once (within 2 s on a loaded machine): no
        // worker is held.
        let mut probe = client(addr);
        probe
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        probe
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("probe");
        let mut answer = String::new();
        probe
            .read_to_string(&mut answer)
            .expect("the probe's answer");
        assert!(answer.ends_with("\r\n\r\nhello"), "{answer}");
    }
    // At shutdown, each gets the goodbye event and the end of the body.
    running.shutdown_handle().shutdown();
    for subscriber in &mut clients {
        assert_eq!(subscriber.chunk(), "event: goodbye\ndata: bye\n\n");
        assert_eq!(subscriber.chunk(), "");
        assert_eq!(subscriber.rest(), "");
    }
    let report = join(running);
    assert!(!report.forced, "{report:?}");
    assert_eq!(report.goodbyes, 8, "{report:?}");
    assert_eq!(report.goodbyes_answered, 8, "{report:?}");
}

#[test]
fn a_subscriber_that_disconnects_makes_send_say_closed() {
    let subscribers = Subscribers::default();
    let running = server(Server::builder("127.0.0.1:0"), Arc::clone(&subscribers));
    let mut subscriber = Subscriber::new(running.local_addr(), "HTTP/1.1");
    wait_for(&subscribers, 1);
    let sender = subscribers.lock().unwrap()[0].clone();
    sender.send(&ServerEvent::data("one")).expect("send");
    assert_eq!(subscriber.chunk(), "data: one\n\n");
    drop(subscriber);
    let start = Instant::now();
    while !sender.is_closed() {
        assert!(start.elapsed() < Duration::from_secs(10), "never closed");
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        sender.send(&ServerEvent::data("late")),
        Err(PushError::Closed)
    );
    running.shutdown_handle().shutdown();
    let report = join(running);
    assert_eq!(report.completed, 1, "{report:?}");
    assert_eq!(report.goodbyes, 0, "{report:?}");
}

#[test]
fn the_goodbye_ends_the_drain_at_once_for_http_1_0_too() {
    let subscribers = Subscribers::default();
    let running = server(
        Server::builder("127.0.0.1:0").drain_timeout(Some(Duration::from_secs(30))),
        Arc::clone(&subscribers),
    );
    let mut subscriber = Subscriber::new(running.local_addr(), "HTTP/1.0");
    // No chunks for HTTP/1.0: the body ends with the connection.
    assert!(
        !subscriber.head.contains("Transfer-Encoding"),
        "{}",
        subscriber.head
    );
    assert!(
        subscriber.head.contains("\r\nConnection: close\r\n"),
        "{}",
        subscriber.head
    );
    wait_for(&subscribers, 1);
    broadcast(
        &subscribers,
        &ServerEvent::data("first\nsecond").event("news"),
    );
    let start = Instant::now();
    running.shutdown_handle().shutdown();
    assert_eq!(
        subscriber.rest(),
        "event: news\ndata: first\ndata: second\n\nevent: goodbye\ndata: bye\n\n"
    );
    let report = join(running);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "waited for the deadline"
    );
    assert!(!report.forced, "{report:?}");
    assert_eq!(report.goodbyes_answered, 1, "{report:?}");
}

#[test]
fn close_ends_the_stream_and_head_starts_none() {
    let subscribers = Subscribers::default();
    let running = server(Server::builder("127.0.0.1:0"), Arc::clone(&subscribers));
    let addr = running.local_addr();
    // The sender ends the stream, after what it sent before.
    let mut subscriber = Subscriber::new(addr, "HTTP/1.1");
    wait_for(&subscribers, 1);
    let sender = subscribers.lock().unwrap().remove(0);
    sender.send(&ServerEvent::data("last")).expect("send");
    sender.close().expect("close");
    assert!(sender.is_closed());
    assert_eq!(sender.close(), Err(PushError::Closed));
    assert_eq!(subscriber.chunk(), "data: last\n\n");
    assert_eq!(subscriber.chunk(), "");
    assert_eq!(subscriber.rest(), "");

    // HEAD gets the fields and no stream; its sender is closed.
    let mut stream = client(addr);
    stream
        .write_all(b"HEAD /events HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("HEAD");
    let mut answers = String::new();
    stream.read_to_string(&mut answers).expect("the answers");
    assert!(answers.starts_with("HTTP/1.1 200 OK\r\n"), "{answers}");
    assert!(answers.contains("text/event-stream"), "{answers}");
    assert!(answers.ends_with("\r\n\r\nhello"), "{answers}");
    wait_for(&subscribers, 1);
    assert!(subscribers.lock().unwrap()[0].is_closed());
    running.shutdown_handle().shutdown();
    join(running);
}

#[cfg(feature = "tls")]
#[test]
fn events_over_tls_and_the_goodbye_with_close_notify() {
    use support::tls::{handshake, read_to_close, Certs};

    let certs = Certs::new();
    let subscribers = Subscribers::default();
    let running = server(
        Server::builder("127.0.0.1:0").tls(certs.server_config()),
        Arc::clone(&subscribers),
    );
    let mut tls = certs.client(running.local_addr());
    handshake(&mut tls).expect("TLS handshake");
    tls.write_all(b"GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("request");
    let mut received = Vec::new();
    let mut byte = [0; 1];
    while !received.ends_with(b"\r\n\r\n") {
        tls.read_exact(&mut byte).expect("the head");
        received.push(byte[0]);
    }
    wait_for(&subscribers, 1);
    broadcast(&subscribers, &ServerEvent::data("secret"));
    let mut chunk = [0; b"E\r\ndata: secret\n\n\r\n".len()];
    tls.read_exact(&mut chunk).expect("the event");
    assert_eq!(&chunk, b"E\r\ndata: secret\n\n\r\n");
    running.shutdown_handle().shutdown();
    let rest = read_to_close(&mut tls).expect("the end, with close_notify");
    assert_eq!(
        String::from_utf8_lossy(&rest),
        "1A\r\nevent: goodbye\ndata: bye\n\n\r\n0\r\n\r\n"
    );
    let report = join(running);
    assert!(!report.forced, "{report:?}");
    assert_eq!(report.goodbyes_answered, 1, "{report:?}");
}
