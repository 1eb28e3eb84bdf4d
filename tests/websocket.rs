//! WebSocket on the HTTP layer (feature `websocket`), over real sockets on
//! loopback: tungstenite's client (a blocking client over a `TcpStream`
//! with timeouts) for the protocol's cases, and raw bytes where a client
//! must misbehave. Python's `websockets` and the HTTP example's routes are
//! in `tests/long_lived_example.rs`.
#![cfg(feature = "websocket")]

mod support;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use graceful_server::http::{self, Message, Response, WebSocket, WebSocketConfig, WsSender};
use graceful_server::{Builder, Event, Outcome, PushError, RunningServer, Server};
use tungstenite::protocol::frame::coding::{CloseCode, Data as OpData, OpCode};
use tungstenite::protocol::frame::Frame;

use support::{client, join};

type Client = tungstenite::WebSocket<TcpStream>;
type Senders = Arc<Mutex<Vec<WsSender>>>;

/// A server whose `/ws` echoes each message, with `config`; every sender
/// the handshakes give is kept in `senders`. `GET /` answers `hello`.
fn echo_server(builder: Builder, config: WebSocketConfig, senders: Senders) -> RunningServer {
    let handler = http::handler(move |req| match req.path() {
        "/ws" => {
            let echo = |ws: &mut WebSocket<'_>, message: Message| ws.send(message);
            match req.websocket_with(config, echo) {
                Ok((response, sender)) => {
                    senders.lock().unwrap().push(sender);
                    response
                }
                Err(refusal) => refusal,
            }
        }
        _ => Response::text("hello"),
    });
    builder
        .workers(2)
        .build()
        .expect("build")
        .spawn(handler)
        .expect("spawn")
}

/// A WebSocket client of `addr`'s `/ws`, with 5 s timeouts.
fn connect(addr: SocketAddr) -> Client {
    let url = format!("ws://{addr}/ws");
    let (ws, response) = tungstenite::client(url.as_str(), client(addr)).expect("handshake");
    assert_eq!(response.status(), 101);
    ws
}

/// Reads until a data message (answering pings on the way).
fn read_message(ws: &mut Client) -> tungstenite::Message {
    loop {
        match ws.read().expect("read a message") {
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => {}
            message => return message,
        }
    }
}

/// Reads until the server's Close; returns its code.
fn read_close(ws: &mut Client) -> CloseCode {
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Close(frame)) => {
                return frame.expect("a Close with a code").code;
            }
            Ok(_) => {}
            Err(error) => panic!("no Close from the server: {error}"),
        }
    }
}

/// Reads the rest of a closing handshake (the server's answer to our
/// Close, if it is still to come) and the end: the server closed the TCP
/// connection.
fn assert_closed(ws: &mut Client) {
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Close(_)) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => return,
            other => panic!("expected the end of the connection, got {other:?}"),
        }
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(10), "{what}");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn echo_ping_and_the_clients_close() {
    let running = echo_server(
        Server::builder("127.0.0.1:0"),
        WebSocketConfig::default(),
        Senders::default(),
    );
    let mut ws = connect(running.local_addr());
    ws.send(tungstenite::Message::text("hello")).expect("send");
    assert_eq!(read_message(&mut ws), tungstenite::Message::text("hello"));
    ws.send(tungstenite::Message::binary(vec![0, 1, 2, 255]))
        .expect("send");
    assert_eq!(
        read_message(&mut ws),
        tungstenite::Message::binary(vec![0, 1, 2, 255])
    );
    // A ping is answered with a pong carrying its data.
    ws.send(tungstenite::Message::Ping(b"are you there".to_vec().into()))
        .expect("ping");
    match ws.read().expect("the pong") {
        tungstenite::Message::Pong(data) => assert_eq!(&data[..], b"are you there"),
        other => panic!("expected a pong, got {other:?}"),
    }
    // The client's Close is answered, then the server closes.
    ws.close(None).expect("close");
    assert_closed(&mut ws);
    running.shutdown_handle().shutdown();
    let report = join(running);
    assert_eq!(report.completed, 1, "{report:?}");
    assert!(!report.forced, "{report:?}");
}

#[test]
fn a_fragmented_message_is_reassembled_with_a_ping_between_its_frames() {
    let running = echo_server(
        Server::builder("127.0.0.1:0"),
        WebSocketConfig::default(),
        Senders::default(),
    );
    let mut ws = connect(running.local_addr());
    let frames = [
        Frame::message("frag", OpCode::Data(OpData::Text), false),
        Frame::ping(b"between".to_vec()),
        Frame::message("men", OpCode::Data(OpData::Continue), false),
        Frame::message("ted", OpCode::Data(OpData::Continue), true),
    ];
    for frame in frames {
        ws.write(tungstenite::Message::Frame(frame))
            .expect("a frame");
        ws.flush().expect("flush");
        // Each frame in its own turn of the server, as a slow client's.
        thread::sleep(Duration::from_millis(20));
    }
    match ws.read().expect("the pong") {
        tungstenite::Message::Pong(data) => assert_eq!(&data[..], b"between"),
        other => panic!("expected the pong first, got {other:?}"),
    }
    assert_eq!(
        read_message(&mut ws),
        tungstenite::Message::text("fragmented")
    );
    drop(ws);
    running.shutdown_handle().shutdown();
    join(running);
}

#[test]
fn oversized_messages_and_frames_are_closed_with_1009() {
    let config = WebSocketConfig::default().max_message(1000).max_frame(600);
    let running = echo_server(Server::builder("127.0.0.1:0"), config, Senders::default());
    let addr = running.local_addr();

    // Within both limits: echoed.
    let mut ws = connect(addr);
    ws.send(tungstenite::Message::binary(vec![7; 600]))
        .expect("send");
    assert_eq!(read_message(&mut ws).len(), 600);

    // One frame over the frame limit: closed as soon as its header says so,
    // though most of it is still on the way.
    ws.send(tungstenite::Message::binary(vec![7; 100_000]))
        .expect("send");
    assert_eq!(read_close(&mut ws), CloseCode::Size);

    // Frames within the limit making a message over it.
    let mut ws = connect(addr);
    for (i, last) in [(0, false), (1, false), (2, true)] {
        let opcode = if i == 0 {
            OpData::Binary
        } else {
            OpData::Continue
        };
        let frame = Frame::message(vec![1; 500], OpCode::Data(opcode), last);
        if ws.send(tungstenite::Message::Frame(frame)).is_err() {
            break; // the server's Close may come before the last frame
        }
    }
    assert_eq!(read_close(&mut ws), CloseCode::Size);
    drop(ws);
    running.shutdown_handle().shutdown();
    let report = join(running);
    assert!(!report.forced, "{report:?}");
}

#[test]
fn protocol_errors_get_their_close_codes() {
    let running = echo_server(
        Server::builder("127.0.0.1:0"),
        WebSocketConfig::default(),
        Senders::default(),
    );
    let addr = running.local_addr();
    // An unmasked frame from a client: 1002.
    let mut ws = connect(addr);
    ws.get_mut()
        .write_all(&[0x81, 0x02, b'h', b'i'])
        .expect("raw frame");
    assert_eq!(read_close(&mut ws), CloseCode::Protocol);
    // Text that is not UTF-8: 1007.
    let mut ws = connect(addr);
    let frame = Frame::message(vec![0xff, 0xfe], OpCode::Data(OpData::Text), true);
    ws.send(tungstenite::Message::Frame(frame)).expect("send");
    assert_eq!(read_close(&mut ws), CloseCode::Invalid);
    drop(ws);
    running.shutdown_handle().shutdown();
    join(running);
}

#[test]
fn a_handlers_error_closes_with_1011_and_fails_the_connection() {
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&outcomes);
    let handler = http::handler(|req| {
        let refuse = |_: &mut WebSocket<'_>, _: Message| -> io::Result<()> {
            Err(io::Error::other("this handler refuses every message"))
        };
        match req.websocket(refuse) {
            Ok((response, _)) => response,
            Err(refusal) => refusal,
        }
    });
    let running = Server::builder("127.0.0.1:0")
        .on_event(move |event| {
            if let Event::ConnectionEnded { outcome, .. } = event {
                seen.lock().unwrap().push(*outcome);
            }
        })
        .build()
        .expect("build")
        .spawn(handler)
        .expect("spawn");
    let mut ws = connect(running.local_addr());
    ws.send(tungstenite::Message::text("hi")).expect("send");
    assert_eq!(read_close(&mut ws), CloseCode::Error);
    // The client answers the Close; the server closes.
    let _ = ws.flush();
    drop(ws);
    wait_until("the connection never ended", || {
        !outcomes.lock().unwrap().is_empty()
    });
    assert_eq!(*outcomes.lock().unwrap(), [Outcome::Failed]);
    running.shutdown_handle().shutdown();
    join(running);
}

#[test]
fn handshakes_that_are_not_websocket_are_refused() {
    let running = echo_server(
        Server::builder("127.0.0.1:0"),
        WebSocketConfig::default(),
        Senders::default(),
    );
    let addr = running.local_addr();
    let cases: [(&str, &str); 4] = [
        ("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", "426"),
        (
            "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            "426",
        ),
        (
            "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n",
            "400",
        ),
        (
            "POST /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Content-Length: 0\r\n\r\n",
            "400",
        ),
    ];
    for (request, status) in cases {
        let mut stream = client(addr);
        stream.write_all(request.as_bytes()).expect("send");
        let mut line = String::new();
        BufReader::new(&stream)
            .read_line(&mut line)
            .expect("status line");
        assert!(
            line.starts_with(&format!("HTTP/1.1 {status} ")),
            "{request:?}: {line:?}"
        );
    }
    running.shutdown_handle().shutdown();
    join(running);
}

#[test]
fn senders_push_from_other_threads_and_say_closed_once_the_client_has_gone() {
    let senders = Senders::default();
    let running = echo_server(
        Server::builder("127.0.0.1:0"),
        WebSocketConfig::default(),
        Arc::clone(&senders),
    );
    let mut ws = connect(running.local_addr());
    let sender = senders.lock().unwrap()[0].clone();
    thread::scope(|scope| {
        scope.spawn(|| {
            for i in 0..50 {
                sender
                    .send(format!("pushed {i}"))
                    .expect("push to an open WebSocket");
            }
        });
    });
    for i in 0..50 {
        assert_eq!(
            read_message(&mut ws),
            tungstenite::Message::text(format!("pushed {i}"))
        );
    }
    ws.close(None).expect("close");
    assert_closed(&mut ws);
    wait_until("the sender never saw the close", || sender.is_closed());
    assert_eq!(sender.send("late"), Err(PushError::Closed));
    running.shutdown_handle().shutdown();
    join(running);
}

#[test]
fn a_client_that_answers_the_goodbye_lets_the_server_exit_at_once() {
    let senders = Senders::default();
    let running = echo_server(
        Server::builder("127.0.0.1:0").drain_timeout(Some(Duration::from_secs(30))),
        WebSocketConfig::default(),
        Arc::clone(&senders),
    );
    let addr = running.local_addr();
    let mut clients: Vec<Client> = (0..3).map(|_| connect(addr)).collect();
    let handle = running.shutdown_handle();
    let start = Instant::now();
    handle.shutdown();
    for ws in &mut clients {
        assert_eq!(read_close(ws), CloseCode::Away);
        // tungstenite answers the Close; the server then closes.
        assert_closed(ws);
    }
    let report = join(running);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "the drain waited for its deadline"
    );
    assert!(!report.forced, "{report:?}");
    assert_eq!(report.goodbyes, 3, "{report:?}");
    assert_eq!(report.goodbyes_answered, 3, "{report:?}");
    assert!(senders.lock().unwrap().iter().all(WsSender::is_closed));
}

#[test]
fn a_client_that_never_answers_the_goodbye_is_cut_at_the_deadline() {
    let running = echo_server(
        Server::builder("127.0.0.1:0").drain_timeout(Some(Duration::from_millis(500))),
        WebSocketConfig::default(),
        Senders::default(),
    );
    // A client that does the handshake, then reads but never answers.
    let mut stream = client(running.local_addr());
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .expect("handshake");
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        assert!(reader.read_line(&mut head).expect("the 101") > 0, "{head}");
    }
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert!(head.contains("\r\nConnection: Upgrade\r\n"), "{head}");
    running.shutdown_handle().shutdown();
    // The goodbye: an unmasked Close frame, 1001 "going away".
    let mut frame = [0; 14];
    reader.read_exact(&mut frame).expect("the Close frame");
    assert_eq!(&frame[..4], &[0x88, 12, 0x03, 0xe9]);
    assert_eq!(&frame[4..], b"going away");
    let report = join(running);
    assert!(report.forced, "{report:?}");
    assert_eq!(report.goodbyes, 1, "{report:?}");
    assert_eq!(report.goodbyes_answered, 0, "{report:?}");
    assert_eq!(report.force_closed, 1, "{report:?}");
}

/// The seed's scenario over WebSocket, with the goodbye turned off: clients
/// connected when shutdown starts are still served, new connections are
/// refused, and the server exits cleanly once they leave.
#[test]
fn without_the_goodbye_the_drain_waits_for_the_clients_and_serves_them() {
    let running = echo_server(
        Server::builder("127.0.0.1:0").drain_timeout(Some(Duration::from_secs(30))),
        WebSocketConfig::default().goodbye(false),
        Senders::default(),
    );
    let addr = running.local_addr();
    let mut clients: Vec<Client> = (0..2).map(|_| connect(addr)).collect();
    let handle = running.shutdown_handle();
    handle.shutdown();
    wait_until("new connections were still accepted", || {
        support::is_refused(addr)
    });
    for (i, ws) in clients.iter_mut().enumerate() {
        let text = format!("still served {i}");
        ws.send(tungstenite::Message::text(text.clone()))
            .expect("send");
        assert_eq!(read_message(ws), tungstenite::Message::text(text));
    }
    for mut ws in clients {
        ws.close(None).expect("close");
        assert_closed(&mut ws);
    }
    let report = join(running);
    assert!(!report.forced, "{report:?}");
    assert_eq!(report.goodbyes, 0, "{report:?}");
    // The two, and any probe of the refusal that came before the listener
    // closed (it hung up at once).
    assert_eq!(report.completed, report.accepted, "{report:?}");
}

#[test]
fn eight_websockets_on_two_workers_leave_them_free_for_others() {
    let running = echo_server(
        Server::builder("127.0.0.1:0"),
        WebSocketConfig::default(),
        Senders::default(),
    );
    let addr = running.local_addr();
    let mut clients: Vec<Client> = (0..8).map(|_| connect(addr)).collect();
    for round in 0..3 {
        for ws in &mut clients {
            ws.send(tungstenite::Message::text(format!("round {round}")))
                .expect("send");
        }
        for ws in &mut clients {
            assert_eq!(
                read_message(ws),
                tungstenite::Message::text(format!("round {round}"))
            );
        }
        // A plain request is answered meanwhile.
        let mut probe = client(addr);
        probe
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("probe");
        let mut answer = String::new();
        probe.read_to_string(&mut answer).expect("the answer");
        assert!(answer.ends_with("\r\n\r\nhello"), "{answer}");
    }
    drop(clients);
    running.shutdown_handle().shutdown();
    join(running);
}
