//! B6: handler panics are contained. In its own test binary because it
//! installs a panic hook that silences the workers' panic messages.

mod support;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use graceful_server::{Connection, Server};

use support::{client, echo_round_trip};

const WORKERS: usize = 4;
const PANICS: u64 = 10_000;

/// Panics on `!`, echoes anything else until the client hangs up.
fn handler(mut stream: TcpStream, _conn: &Connection) -> io::Result<()> {
    let mut buf = [0; 64];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        if buf[0] == b'!' {
            panic!("asked to panic");
        }
        stream.write_all(&buf[..n])?;
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

    let running = Server::builder("127.0.0.1:0")
        .workers(WORKERS)
        .build()
        .expect("build")
        .spawn(handler)
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

    // Every worker is still there: WORKERS connections are served at the same
    // time (each echo holds its worker until the client hangs up).
    let mut clients: Vec<TcpStream> = (0..WORKERS).map(|_| client(addr)).collect();
    for (i, conn) in clients.iter_mut().enumerate() {
        let message = format!("still here {i}");
        let reply = echo_round_trip(conn, message.as_bytes()).expect("served concurrently");
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
        .recv_timeout(Duration::from_secs(5))
        .expect("server did not stop within 5 s")
        .expect("join");
    assert_eq!(report.panicked, PANICS, "{report}");
    assert_eq!(report.completed, WORKERS as u64, "{report}");
    assert_eq!(report.outcomes(), report.accepted, "{report}");
}
