//! What an embedding program sees while the server runs: the event hook
//! (every connection's end, with its outcome, duration and error) and the
//! live stats.

mod support;

use std::io::{self, BufRead, Write};
use std::sync::mpsc;
use std::time::Duration;

use graceful_server::{Connection, Event, Next, Outcome, Server};
use support::{client, join, Start};

/// Ended connections as the hook reported them: (id, outcome, error kind).
type Ended = (u64, Outcome, Option<io::ErrorKind>);

/// A line protocol: `ok` keeps the connection idle, `fail` returns an
/// error, `panic` panics, `bye` closes.
fn lines(conn: &mut Connection) -> io::Result<Next> {
    let mut line = String::new();
    if conn.read_line(&mut line)? == 0 {
        return Ok(Next::Close);
    }
    match line.trim() {
        "fail" => Err(io::Error::new(io::ErrorKind::InvalidData, "asked to fail")),
        "panic" => panic!("asked to panic"),
        "bye" => {
            conn.write_all(b"bye\n")?;
            Ok(Next::Close)
        }
        _ => {
            conn.write_all(b"ok\n")?;
            Ok(Next::Idle)
        }
    }
}

fn say(addr: std::net::SocketAddr, line: &str) -> std::io::BufReader<std::net::TcpStream> {
    let mut conn = std::io::BufReader::new(client(addr));
    conn.get_mut().write_all(line.as_bytes()).expect("write");
    conn
}

#[test]
fn the_hook_hears_every_connection_end_with_its_outcome_and_error() {
    let (tx, rx) = mpsc::channel::<Ended>();
    let tx = std::sync::Mutex::new(tx);
    let running = Server::builder("127.0.0.1:0")
        .workers(2)
        .on_event(move |event| {
            if let Event::ConnectionEnded {
                id, outcome, error, ..
            } = event
            {
                let sent = tx
                    .lock()
                    .map(|tx| tx.send((*id, *outcome, error.map(|e| e.kind()))));
                assert!(matches!(sent, Ok(Ok(()))));
            }
        })
        .start(lines);
    let addr = running.local_addr();
    let mut expected = Vec::new();
    for (line, outcome, error) in [
        ("bye\n", Outcome::Completed, None),
        ("fail\n", Outcome::Failed, Some(io::ErrorKind::InvalidData)),
        ("panic\n", Outcome::Panicked, None),
    ] {
        let mut conn = say(addr, line);
        let mut rest = String::new();
        let _ = conn.read_line(&mut rest);
        let (_, got, kind) = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the hook heard nothing within 5 s");
        assert_eq!((got, kind), (outcome, error), "after {line:?}");
        expected.push(outcome);
    }
    // An idle connection closed at shutdown.
    let mut idle = say(addr, "ok\n");
    let mut answer = String::new();
    idle.read_line(&mut answer).expect("answer");
    running.shutdown_handle().shutdown();
    let report = join(running);
    let (_, got, _) = rx.recv_timeout(Duration::from_secs(5)).expect("hook");
    assert_eq!(got, Outcome::ClosedIdle);
    assert_eq!(report.accepted, 4);
    assert!(rx.try_recv().is_err(), "one event per connection");
}

#[test]
fn a_panicking_hook_costs_nothing() {
    let running = Server::builder("127.0.0.1:0")
        .on_event(|_| panic!("a bad hook"))
        .start(lines);
    for _ in 0..3 {
        let mut conn = say(running.local_addr(), "bye\n");
        let mut answer = String::new();
        conn.read_line(&mut answer)
            .expect("served despite the hook");
        assert_eq!(answer, "bye\n");
    }
    running.shutdown_handle().shutdown();
    assert_eq!(join(running).completed, 3);
}

/// Waits until `ready` holds for the server's stats, at most 5 s.
fn wait_for(
    running: &graceful_server::RunningServer,
    ready: impl Fn(&graceful_server::Stats) -> bool,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let stats = running.stats();
        if ready(&stats) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stats never settled: {stats:?}"
        );
        // Stats have no change notification; this only bounds how soon the
        // test looks again.
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn stats_tell_open_busy_parked_and_totals_live() {
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let entered_tx = std::sync::Mutex::new(entered_tx);
    let release_rx = std::sync::Mutex::new(release_rx);
    let running = Server::builder("127.0.0.1:0")
        .workers(2)
        .start(move |conn: &mut Connection| {
            let mut line = String::new();
            if conn.read_line(&mut line)? == 0 {
                return Ok(Next::Close);
            }
            if line.trim() == "hold" {
                let _ = entered_tx.lock().map(|tx| tx.send(()));
                let _ = release_rx
                    .lock()
                    .map(|rx| rx.recv_timeout(Duration::from_secs(5)));
            }
            conn.write_all(b"ok\n")?;
            Ok(Next::Idle)
        });
    let addr = running.local_addr();
    // Three idle connections, served once each.
    let mut idle: Vec<_> = (0..3).map(|_| say(addr, "x\n")).collect();
    for conn in &mut idle {
        let mut answer = String::new();
        conn.read_line(&mut answer).expect("answer");
    }
    // A turn counts as busy until it has returned, a moment after its
    // answer reached the client: wait (bounded) for the three to settle.
    wait_for(&running, |stats| stats.busy == 0 && stats.parked == 3);
    // One busy in a turn.
    let mut busy = say(addr, "hold\n");
    entered_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("turn entered");
    let stats = running.stats();
    assert_eq!(stats.open, 4, "{stats:?}");
    assert_eq!(stats.busy, 1, "{stats:?}");
    assert_eq!(stats.parked, 3, "{stats:?}");
    assert_eq!(stats.queued, 0, "{stats:?}");
    assert_eq!(stats.accepted, 4, "{stats:?}");
    // A handle reads the same from another thread.
    let handle = running.stats_handle();
    let from_thread = std::thread::spawn(move || handle.stats().open)
        .join()
        .expect("stats thread");
    assert_eq!(from_thread, 4);
    release_tx.send(()).expect("release");
    let mut answer = String::new();
    busy.read_line(&mut answer).expect("answer");
    drop(idle);
    drop(busy);
    running.shutdown_handle().shutdown();
    let report = join(running);
    assert_eq!(report.accepted, 4);
}
