//! Handler panics are contained. In its own test binary because it
//! installs a panic hook that silences the workers' panic messages.

mod support;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use graceful_server::{Connection, Next, Server};

use support::{client, echo_round_trip};

const WORKERS: usize = 4;
const PANICS: u64 = 10_000;

/// How long a test waits for something that should take milliseconds.
const EVENT: Duration = Duration::from_secs(5);

/// One read per turn: panics on `!`; on `?` announces itself on `entered`
/// and waits (holding its worker) for a `release` before echoing; echoes
/// anything else. Between turns the connection waits mid-conversation.
fn handler(
    entered: Sender<()>,
    release: Receiver<()>,
) -> impl Fn(&mut Connection) -> io::Result<Next> + Send + Sync + 'static {
    move |conn| {
        let mut buf = [0; 64];
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(Next::Close);
        }
        match buf[0] {
            b'!' => panic!("asked to panic"),
            b'?' => {
                let _ = entered.send(());
                // Bounded, so that a failing test cannot leave a worker
                // stuck and the server unable to stop.
                let _ = release.recv_timeout(EVENT * 2);
            }
            _ => {}
        }
        conn.write_all(&buf[..n])?;
        Ok(Next::Wait)
    }
}

#[test]
fn ten_thousand_panics_leave_the_pool_full_size() {
    // Silence the expected panics of the workers, and only those: a failing
    // assertion in the test thread still prints.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let worker = thread::current()
            .name()
            .is_some_and(|name| name.starts_with("worker-"));
        if !worker {
            default_hook(info);
        }
    }));

    let (entered_tx, entered_rx) = crossbeam_channel::unbounded();
    let (release_tx, release_rx) = crossbeam_channel::unbounded();
    let running = Server::builder("127.0.0.1:0")
        .workers(WORKERS)
        .build()
        .expect("build")
        .spawn(handler(entered_tx, release_rx))
        .expect("spawn");
    let addr = running.local_addr();

    for i in 0..PANICS {
        let mut conn = client(addr);
        conn.write_all(b"!").expect("write");
        // The panic closes the connection: end of file (or a reset, if the
        // close raced our write).
        let mut buf = [0; 1];
        match conn.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            other => panic!("connection {i}: expected a close, got {other:?}"),
        }
    }

    // Every worker is still there: WORKERS turns run at the same time, each
    // holding its worker at the gate until all of them are in.
    let mut clients: Vec<TcpStream> = (0..WORKERS).map(|_| client(addr)).collect();
    for conn in &mut clients {
        conn.write_all(b"?").expect("write");
    }
    for inside in 0..WORKERS {
        entered_rx.recv_timeout(EVENT).unwrap_or_else(|_| {
            panic!("only {inside} of {WORKERS} workers serve at the same time")
        });
    }
    for _ in 0..WORKERS {
        release_tx.send(()).expect("handlers wait for the release");
    }
    for (i, conn) in clients.iter_mut().enumerate() {
        let mut reply = [0; 1];
        conn.read_exact(&mut reply).expect("released");
        assert_eq!(&reply, b"?");
        let message = format!("still here {i}");
        let reply = echo_round_trip(conn, message.as_bytes()).expect("served");
        assert_eq!(reply, message.as_bytes());
    }
    drop(clients);

    let handle = running.shutdown_handle();
    handle.shutdown();
    let (tx, rx) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        let _ = tx.send(running.join());
    });
    let report = rx
        .recv_timeout(EVENT)
        .expect("server did not stop within 5 s")
        .expect("join");
    assert_eq!(report.panicked, PANICS, "{report}");
    assert_eq!(report.completed, WORKERS as u64, "{report}");
    assert_eq!(report.outcomes(), report.accepted, "{report}");
}
