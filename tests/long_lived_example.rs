//! The HTTP example's long-lived routes (`examples/http.rs`: `/events`,
//! `/ws`, `/chat`, `/chat.html`), run as a child process, stopped with
//! SIGINT, and driven by real clients: `curl -N` for the event stream,
//! Python's `websockets` library and tungstenite's client for WebSocket.
//!
//! Python's `websockets` is installed by `.ci/run`; without it, the test
//! that needs it says so and passes without running.

// Every scenario ends the example with SIGINT (`kill`): unix only.
#![cfg(all(unix, feature = "websocket"))]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::ServerProcess;

type Client = tungstenite::WebSocket<TcpStream>;

/// How long a test waits for a client's line, or for the server to exit.
const BOUND: Duration = Duration::from_secs(10);

fn start(args: &[&str]) -> ServerProcess {
    let mut command = Command::new(support::fresh_http_example());
    command.args(["--addr", "127.0.0.1:0"]).args(args);
    ServerProcess::start_command(command)
}

/// A WebSocket client of the example's `path`, with 5 s timeouts.
fn connect(addr: SocketAddr, path: &str) -> Client {
    let url = format!("ws://{addr}{path}");
    let (ws, _) = tungstenite::client(url.as_str(), support::client(addr)).expect("handshake");
    ws
}

fn read_text(ws: &mut Client) -> String {
    loop {
        match ws.read().expect("a message") {
            tungstenite::Message::Text(text) => return text.as_str().to_string(),
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => {}
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// A child process whose stdout lines arrive on a channel, killed on drop.
struct LineReader {
    child: std::process::Child,
    lines: crossbeam_channel::Receiver<String>,
}

impl LineReader {
    fn spawn(command: &mut Command) -> LineReader {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the client");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = crossbeam_channel::unbounded();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        LineReader { child, lines }
    }

    /// The next line, or a panic with the client's stderr.
    fn line(&mut self) -> String {
        match self.lines.recv_timeout(BOUND) {
            Ok(line) => line,
            Err(_) => {
                let _ = self.child.kill();
                let mut err = String::new();
                let _ = self
                    .child
                    .stderr
                    .take()
                    .map(|mut e| e.read_to_string(&mut err));
                panic!("no line from the client within {BOUND:?}; its stderr: {err}");
            }
        }
    }

    fn wait(&mut self) -> std::process::ExitStatus {
        support::wait_child(&mut self.child, BOUND, "the client")
    }
}

impl Drop for LineReader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn curl_follows_the_event_stream_and_gets_the_goodbye_at_sigint() {
    let mut server = start(&[]);
    let url = format!("http://{}/events?ms=50", server.addr);
    let mut curl =
        LineReader::spawn(Command::new("curl").args(["-N", "-sS", "--max-time", "20", &url]));
    // Three ticks, each an id line, a data line and an empty line.
    for tick in 1..=3 {
        assert_eq!(curl.line(), format!("id: {tick}"));
        assert_eq!(curl.line(), format!("data: tick {tick}"));
        assert_eq!(curl.line(), "");
    }
    let signalled = Instant::now();
    server.signal("INT");
    // Ticks may still come before the goodbye; then the stream ends.
    let mut line = curl.line();
    while line != "event: goodbye" {
        line = curl.line();
    }
    assert_eq!(curl.line(), "retry: 2000");
    assert_eq!(curl.line(), "data: the server is shutting down");
    let status = curl.wait();
    assert!(
        status.success(),
        "curl: {status} (the stream did not end well)"
    );
    let status = server.wait_exit(BOUND);
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "the drain waited for the event stream"
    );
}

/// Echo, binary, ping and the goodbye, seen by Python's `websockets`.
const PYTHON_CLIENT: &str = r#"
import sys
from websockets.sync.client import connect
from websockets.exceptions import ConnectionClosedOK

with connect("ws://127.0.0.1:%s/ws" % sys.argv[1], open_timeout=5, close_timeout=5) as ws:
    ws.send("hello")
    assert ws.recv(timeout=5) == "hello"
    ws.send(b"\x00\x01\xff")
    assert ws.recv(timeout=5) == b"\x00\x01\xff"
    ws.send("x" * 100000)
    assert ws.recv(timeout=5) == "x" * 100000
    assert ws.ping(b"are you there").wait(5), "no pong"
    print("echoed", flush=True)
    try:
        ws.recv(timeout=20)
        print("a message instead of the goodbye", flush=True)
    except ConnectionClosedOK as closed:
        print("closed %d %s" % (closed.rcvd.code, closed.rcvd.reason), flush=True)
"#;

fn python_has_websockets() -> bool {
    Command::new("python3")
        .args(["-c", "import websockets.sync.client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

#[test]
fn python_websockets_echoes_then_sees_1001_at_sigint_and_the_server_exits_0() {
    if !python_has_websockets() {
        eprintln!(
            "SKIPPED: python3 has no `websockets` library (pip install websockets; .ci/run does)"
        );
        return;
    }
    let mut server = start(&[]);
    let port = server.addr.port().to_string();
    let mut python = LineReader::spawn(Command::new("python3").args(["-c", PYTHON_CLIENT, &port]));
    assert_eq!(python.line(), "echoed");
    let signalled = Instant::now();
    server.signal("INT");
    assert_eq!(python.line(), "closed 1001 going away");
    assert!(python.wait().success());
    let status = server.wait_exit(BOUND);
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "the drain waited for the WebSocket"
    );
}

#[test]
fn chat_messages_reach_every_member_and_the_page_is_served() {
    let mut server = start(&[]);
    let addr = server.addr;
    let mut ann = connect(addr, "/chat");
    assert_eq!(read_text(&mut ann), "someone joined");
    let mut bob = connect(addr, "/chat");
    assert_eq!(read_text(&mut ann), "someone joined");
    assert_eq!(read_text(&mut bob), "someone joined");
    ann.send(tungstenite::Message::text("hi all"))
        .expect("send");
    let (ann_got, bob_got) = (read_text(&mut ann), read_text(&mut bob));
    assert_eq!(ann_got, bob_got);
    assert!(ann_got.ends_with(": hi all"), "{ann_got}");

    let mut page = support::client(addr);
    page.write_all(b"GET /chat.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("GET /chat.html");
    let mut answer = String::new();
    page.read_to_string(&mut answer).expect("the page");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("Content-Type: text/html"), "{answer}");
    assert!(
        answer.contains("/chat\"") && answer.contains("/events"),
        "{answer}"
    );

    // At SIGINT both get Close 1001; tungstenite answers it.
    server.signal("INT");
    for ws in [&mut ann, &mut bob] {
        loop {
            match ws.read() {
                Ok(tungstenite::Message::Close(frame)) => {
                    let code: u16 = frame.expect("a code").code.into();
                    assert_eq!(code, 1001);
                }
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed) => break,
                Err(error) => panic!("{error}"),
            }
        }
    }
    let status = server.wait_exit(BOUND);
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
}

/// The seed's scenario over WebSocket (`/ws?goodbye=off`): after SIGINT
/// the clients are still served and new connections are refused; the
/// server exits 0 once they have left.
#[test]
fn without_the_goodbye_clients_are_served_after_sigint_and_the_server_exits_0() {
    let mut server = start(&[]);
    let addr = server.addr;
    let mut clients: Vec<Client> = (0..2).map(|_| connect(addr, "/ws?goodbye=off")).collect();
    server.signal("INT");
    server.wait_for_stderr("shutting down", BOUND);
    let start = Instant::now();
    while !support::is_refused(addr) {
        assert!(
            start.elapsed() < BOUND,
            "new connections were still accepted"
        );
        thread::sleep(Duration::from_millis(10));
    }
    for (i, ws) in clients.iter_mut().enumerate() {
        let text = format!("after the signal {i}");
        ws.send(tungstenite::Message::text(text.clone()))
            .expect("send");
        assert_eq!(read_text(ws), text);
    }
    assert!(!server.has_exited(), "the server left before its clients");
    for mut ws in clients {
        ws.close(None).expect("close");
        while ws.read().is_ok() {}
    }
    let status = server.wait_exit(BOUND);
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
}
