//! The behaviour contract (DESIGN.md section 3, B1 to B12) tested through the
//! library API over real loopback sockets.
//!
//! Recipe: bind `127.0.0.1:0`, give every client timeouts, wait for events
//! (`recv_timeout(..).expect(..)`), never sleep and hope.

mod support;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use graceful_server::{Builder, Connection, Error, Report, RunningServer, Server};

use support::{client, echo_round_trip, is_refused, join, wait_until_refused, Start, IO_TIMEOUT};

/// How long a test waits for something that should take milliseconds.
const EVENT: Duration = Duration::from_secs(5);

fn builder() -> Builder {
    Server::builder("127.0.0.1:0")
}

/// Echoes bytes until the client hangs up; not idle-aware (like the binary).
fn echo(stream: TcpStream, _conn: &Connection) -> io::Result<()> {
    let (mut reader, mut writer) = (&stream, &stream);
    io::copy(&mut reader, &mut writer)?;
    Ok(())
}

/// Echoes line by line, marked idle while waiting for the next line. Answers
/// `closing` instead of echoing once shutdown has started, then returns.
fn idle_aware_echo(stream: TcpStream, conn: &Connection) -> io::Result<()> {
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    loop {
        line.clear();
        let n = {
            let _idle = conn.idle();
            reader.read_line(&mut line)?
        };
        if n == 0 {
            return Ok(());
        }
        if conn.is_shutting_down() {
            (&stream).write_all(b"closing\n")?;
            return Ok(());
        }
        (&stream).write_all(line.as_bytes())?;
    }
}

fn assert_adds_up(report: &Report) {
    assert_eq!(
        report.outcomes(),
        report.accepted,
        "every accepted connection must be in exactly one outcome: {report:?}"
    );
}

fn read_line(stream: &mut TcpStream) -> io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0];
    loop {
        match stream.read(&mut byte)? {
            0 => break,
            _ if byte[0] == b'\n' => break,
            _ => line.push(byte[0]),
        }
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// Whether the server closed the connection: end of file or reset.
fn sees_close(stream: &mut TcpStream) -> bool {
    let mut buf = [0; 16];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
        ),
    }
}

/// A handler gate: the test learns when a handler is inside, and decides when
/// it may leave.
struct Gate {
    entered: (Sender<u64>, Receiver<u64>),
    release: (Sender<()>, Receiver<()>),
}

impl Gate {
    fn new() -> Gate {
        Gate {
            entered: crossbeam_channel::unbounded(),
            release: crossbeam_channel::unbounded(),
        }
    }

    /// Called by a handler: announce, then wait to be released.
    fn pass(&self, id: u64) {
        let _ = self.entered.0.send(id);
        let _ = self.release.1.recv();
    }

    fn wait_entered(&self) -> u64 {
        self.entered
            .1
            .recv_timeout(EVENT)
            .expect("handler not entered within 5 s")
    }

    fn release_one(&self) {
        self.release.0.send(()).expect("gate open");
    }
}

// B1 and B2: with the only worker busy, connections in the queue and in the
// kernel backlog at the signal are all served, none reset, and new
// connections are refused long before the busy one ends.
#[test]
fn backlog_and_queue_are_served_after_the_signal() {
    let running = builder().workers(1).queue_capacity(2).start(echo);
    let addr = running.local_addr();

    let mut busy = client(addr);
    assert_eq!(echo_round_trip(&mut busy, b"busy").expect("echo"), b"busy");

    // Two fit in the queue, one is held by the acceptor, the rest wait in
    // the kernel backlog: `connect` returns once the handshake is complete.
    let mut waiting: Vec<TcpStream> = (0..8).map(|_| client(addr)).collect();
    for (i, stream) in waiting.iter_mut().enumerate() {
        stream
            .write_all(format!("hello {i}\n").as_bytes())
            .expect("write");
        // Half-close, so that the echo handler returns after answering.
        stream
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown");
    }

    running.shutdown_handle().shutdown();

    // The listener closes within milliseconds, while `busy` still holds the
    // only worker. Connects that race the close are swept and served, or
    // reset if they land between the sweep and the close.
    let racers = wait_until_refused(addr);

    // The busy connection is still served after the signal (B2).
    assert_eq!(
        echo_round_trip(&mut busy, b"still").expect("echo"),
        b"still"
    );
    drop(busy);

    for (i, stream) in waiting.iter_mut().enumerate() {
        let line = read_line(stream).expect("served, not reset");
        assert_eq!(line, format!("hello {i}"));
    }
    drop(waiting);

    let report = join(running);
    assert!(!report.forced, "{report}");
    // A racer that connected between the final sweep and the close was
    // reset by the kernel (the one unavoidable instant), the others served.
    assert!(
        (9..=9 + racers).contains(&report.accepted),
        "{racers} racers: {report}"
    );
    assert_eq!(report.unserved, 0, "{report}");
    assert_eq!(report.force_closed, 0, "{report}");
}

// B2: the server finishes as soon as the last connection ends.
#[test]
fn finishes_when_the_last_connection_ends() {
    let running = builder().start(echo);
    let mut first = client(running.local_addr());
    let mut second = client(running.local_addr());
    echo_round_trip(&mut first, b"1").expect("echo");
    echo_round_trip(&mut second, b"2").expect("echo");

    let handle = running.shutdown_handle();
    handle.shutdown();
    let (tx, rx) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        let _ = tx.send(running.join());
    });
    drop(first);
    // One connection is still open: the server must not have finished.
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "returned while a connection was open"
    );
    echo_round_trip(&mut second, b"3").expect("still served");
    drop(second);
    let report = rx
        .recv_timeout(EVENT)
        .expect("server did not stop within 5 s")
        .expect("join");
    assert_adds_up(&report);
    assert_eq!(report.completed, 2, "{report}");
    assert!(!report.forced);
}

// B3: an idle-marked connection is closed at shutdown while a busy one
// finishes; a connection that turns idle after the signal is closed at once.
#[test]
fn idle_connections_close_at_shutdown_and_busy_ones_finish() {
    let gate = Gate::new();
    let gate_in = std::sync::Arc::new(gate);
    let gate_handler = std::sync::Arc::clone(&gate_in);
    let running = builder().start(move |stream, conn| {
        let mut reader = BufReader::new(&stream);
        let mut line = String::new();
        loop {
            line.clear();
            let n = {
                let _idle = conn.idle();
                reader.read_line(&mut line)?
            };
            if n == 0 {
                return Ok(());
            }
            if line == "work\n" {
                gate_handler.pass(conn.id());
            }
            (&stream).write_all(line.as_bytes())?;
        }
    });
    let addr = running.local_addr();

    let mut idle = client(addr);
    idle.write_all(b"ping\n").expect("write");
    assert_eq!(read_line(&mut idle).expect("echo"), "ping");

    let mut busy = client(addr);
    busy.write_all(b"work\n").expect("write");
    gate_in.wait_entered();

    running.shutdown_handle().shutdown();
    assert!(sees_close(&mut idle), "idle connection not closed");

    // The busy one is not cut: it gets its answer after the signal...
    gate_in.release_one();
    assert_eq!(read_line(&mut busy).expect("answer"), "work");
    // ...and, turning idle afterwards, is closed at once.
    assert!(
        sees_close(&mut busy),
        "connection idle after the signal not closed"
    );

    let report = join(running);
    assert_eq!(report.closed_idle, 2, "{report}");
    assert!(!report.forced, "{report}");
}

// B3: a request that arrives during the idle grace window is still served.
#[test]
fn a_request_during_the_idle_grace_is_served() {
    let running = builder()
        .idle_grace(Duration::from_secs(3))
        .start(idle_aware_echo);
    let mut idle = client(running.local_addr());
    idle.write_all(b"ping\n").expect("write");
    assert_eq!(read_line(&mut idle).expect("echo"), "ping");

    let handle = running.shutdown_handle();
    handle.shutdown();
    idle.write_all(b"late\n").expect("write");
    assert_eq!(read_line(&mut idle).expect("answer"), "closing");
    assert!(sees_close(&mut idle));

    let report = join(running);
    assert_eq!(report.completed, 1, "{report}");
    assert_eq!(report.closed_idle, 0, "{report}");
}

// B3: the grace window ends early when every connection is done, and idle
// connections are closed when it ends.
#[test]
fn idle_connections_close_when_the_grace_ends() {
    let running = builder()
        .idle_grace(Duration::from_millis(100))
        .start(idle_aware_echo);
    let mut idle = client(running.local_addr());
    idle.write_all(b"ping\n").expect("write");
    assert_eq!(read_line(&mut idle).expect("echo"), "ping");
    running.shutdown_handle().shutdown();
    assert!(sees_close(&mut idle), "idle connection not closed");
    let report = join(running);
    assert_eq!(report.closed_idle, 1, "{report}");
}

// B3: a connection that is not marked idle is never cut before the deadline.
#[test]
fn unmarked_connections_are_not_cut_before_the_deadline() {
    let running = builder().drain_timeout(None).start(echo);
    let mut conn = client(running.local_addr());
    echo_round_trip(&mut conn, b"a").expect("echo");
    running.shutdown_handle().shutdown();
    // Still served well after the signal.
    for _ in 0..5 {
        thread::sleep(Duration::from_millis(50));
        echo_round_trip(&mut conn, b"b").expect("still served");
    }
    drop(conn);
    let report = join(running);
    assert_eq!(report.completed, 1, "{report}");
}

// B4: the deadline forces: remaining connections are shut down, queued ones
// closed unserved, and the report says forced.
#[test]
fn the_deadline_forces() {
    let running = builder()
        .workers(1)
        .drain_timeout(Some(Duration::from_millis(300)))
        .start(echo);
    let addr = running.local_addr();
    let mut busy = client(addr);
    echo_round_trip(&mut busy, b"x").expect("echo");
    let mut queued = client(addr);
    queued.write_all(b"never answered").expect("write");

    running.shutdown_handle().shutdown();
    let report = join(running);
    assert!(report.forced, "{report}");
    assert_eq!(report.force_closed, 1, "{report}");
    assert_eq!(report.unserved, 1, "{report}");
    assert_eq!(report.threads_left_behind, 0, "{report}");
    assert!(sees_close(&mut busy), "force-closed connection still open");
    assert!(sees_close(&mut queued), "unserved connection still open");
}

// B4: a handler stuck in something that is not a socket cannot stop the
// return; its thread is left behind and counted.
#[test]
fn a_stuck_handler_is_left_behind() {
    let (_never_tx, never_rx) = crossbeam_channel::bounded::<()>(0);
    let (entered_tx, entered_rx) = crossbeam_channel::bounded(1);
    let running = builder()
        .workers(2)
        .drain_timeout(Some(Duration::from_millis(100)))
        .force_grace(Duration::from_millis(200))
        .start(move |_stream, _conn| {
            let _ = entered_tx.send(());
            // Blocks until the test ends: not a socket, cannot be cut.
            let _ = never_rx.recv();
            Ok(())
        });
    let _stuck = client(running.local_addr());
    entered_rx.recv_timeout(EVENT).expect("handler entered");
    running.shutdown_handle().shutdown();
    let report = join(running);
    assert!(report.forced, "{report}");
    assert_eq!(report.threads_left_behind, 1, "{report}");
    assert_eq!(report.force_closed, 1, "{report}");
}

// B5: forcing during the drain (the second signal) cuts at once, even with
// no deadline.
#[test]
fn force_during_the_drain_cuts_at_once() {
    let running = builder().drain_timeout(None).start(echo);
    let mut conn = client(running.local_addr());
    echo_round_trip(&mut conn, b"x").expect("echo");
    let handle = running.shutdown_handle();
    handle.shutdown();
    assert!(!handle.is_forced());
    handle.force();
    assert!(handle.is_forced());
    let report = join(running);
    assert!(report.forced, "{report}");
    assert_eq!(report.force_closed, 1, "{report}");
    assert!(sees_close(&mut conn));
}

// B8: accepted streams are blocking, with the configured timeouts.
#[test]
fn streams_are_blocking_with_the_configured_timeouts() {
    let (result_tx, result_rx) = crossbeam_channel::unbounded();
    let running = builder()
        .read_timeout(Some(Duration::from_millis(300)))
        .start(move |mut stream, _conn| {
            stream.write_all(b"ready\n")?;
            let mut buf = [0; 8];
            let result = stream.read(&mut buf).map_err(|e| e.kind());
            let _ = result_tx.send(result);
            Ok(())
        });
    let addr = running.local_addr();

    // A nonblocking stream would fail at once with WouldBlock; a blocking
    // one waits for the byte sent after the greeting.
    let mut talker = client(addr);
    assert_eq!(read_line(&mut talker).expect("greeting"), "ready");
    thread::sleep(Duration::from_millis(50));
    talker.write_all(b"x").expect("write");
    let first = result_rx.recv_timeout(EVENT).expect("handler result");
    assert_eq!(first, Ok(1));

    // A silent client runs into the read timeout.
    let mut silent = client(addr);
    assert_eq!(read_line(&mut silent).expect("greeting"), "ready");
    let second = result_rx.recv_timeout(EVENT).expect("handler result");
    assert!(
        matches!(
            second,
            Err(io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
        ),
        "{second:?}"
    );
    drop((talker, silent));
    running.shutdown_handle().shutdown();
    join(running);
}

// B9: a shutdown triggered before serving starts: the server sweeps and
// returns at once. Triggering is idempotent.
#[test]
fn shutdown_before_serving_returns_at_once() {
    let server = builder().build().expect("build");
    let addr = server.local_addr();
    let handle = server.shutdown_handle();
    handle.shutdown();
    handle.shutdown();
    let report = server.serve(echo).expect("serve");
    assert_adds_up(&report);
    assert_eq!(report.accepted, 0);
    assert!(!report.forced);
    assert!(is_refused(addr), "listener still open after serve returned");
}

// B9: a cloned handle, used from another thread, stops `serve`.
#[test]
fn a_handle_from_another_thread_stops_serve() {
    let server = builder().build().expect("build");
    let addr = server.local_addr();
    let handle = server.shutdown_handle();
    let (tx, rx) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        let _ = tx.send(server.serve(echo));
    });
    let mut conn = client(addr);
    echo_round_trip(&mut conn, b"hi").expect("echo");
    drop(conn);
    let clone = handle.clone();
    thread::spawn(move || clone.shutdown());
    assert!(handle.wait_timeout(EVENT), "shutdown not seen");
    let report = rx
        .recv_timeout(EVENT)
        .expect("serve did not return within 5 s")
        .expect("serve");
    assert_adds_up(&report);
    assert_eq!(report.accepted, 1);
}

// B10: the report adds up under a mix of outcomes.
#[test]
fn the_report_counts_every_outcome() {
    let (holding_tx, holding_rx) = crossbeam_channel::bounded(1);
    let running = builder()
        .workers(4)
        .drain_timeout(Some(Duration::from_millis(300)))
        .start(move |stream, conn| {
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            let n = {
                let _idle = conn.idle();
                reader.read_line(&mut line)?
            };
            match &line[..n] {
                "panic\n" => panic!("asked to"),
                "fail\n" => Err(io::Error::new(io::ErrorKind::Other, "asked to")),
                "hold\n" => {
                    let _ = holding_tx.send(());
                    // Busy (not idle) until cut at the deadline.
                    let _ = reader.read_line(&mut line);
                    Ok(())
                }
                _ => Ok(()),
            }
        });
    let addr = running.local_addr();
    let mut finished = Vec::new();
    for request in ["ok\n", "fail\n", "panic\n"] {
        let mut conn = client(addr);
        conn.write_all(request.as_bytes()).expect("write");
        assert!(sees_close(&mut conn));
        finished.push(conn);
    }
    let mut idle = client(addr);
    let mut hold = client(addr);
    hold.write_all(b"hold\n").expect("write");
    holding_rx
        .recv_timeout(EVENT)
        .expect("hold handler entered");
    // `idle` must be registered before the signal: wait for its handler by
    // checking the open count.
    let deadline = Instant::now() + EVENT;
    while running.open_connections() < 2 {
        assert!(Instant::now() < deadline, "connections not accepted");
        thread::yield_now();
    }
    running.shutdown_handle().shutdown();
    assert!(sees_close(&mut idle));
    let report = join(running);
    assert_eq!(report.accepted, 5, "{report}");
    assert_eq!(report.completed, 1, "{report}");
    assert_eq!(report.failed, 1, "{report}");
    assert_eq!(report.panicked, 1, "{report}");
    assert_eq!(report.closed_idle, 1, "{report}");
    assert_eq!(report.force_closed, 1, "{report}");
    assert!(report.forced);
    let line = report.to_string();
    assert!(line.starts_with("forced in "), "{line}");
    assert!(line.contains("5 accepted"), "{line}");
}

// B11: bad configuration is an error from `build`, before anything is bound.
#[test]
fn bad_configuration_fails_before_binding() {
    let free = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = free.local_addr().expect("addr");
    drop(free);
    let cases: Vec<(Builder, &str)> = vec![
        (Server::builder(addr).workers(0), "workers"),
        (Server::builder(addr).queue_capacity(0), "queue_capacity"),
        (
            Server::builder(addr).accept_wait_cap(Duration::ZERO),
            "accept_wait_cap",
        ),
        (
            Server::builder(addr).read_timeout(Some(Duration::ZERO)),
            "read_timeout",
        ),
        (
            Server::builder(addr).write_timeout(Some(Duration::ZERO)),
            "write_timeout",
        ),
    ];
    for (builder, setting) in cases {
        match builder.build() {
            Err(Error::Config { setting: s, .. }) => assert_eq!(s, setting),
            other => panic!("{setting}: expected a config error, got {other:?}"),
        }
        assert!(is_refused(addr), "{setting}: address was bound");
    }
    let unparsable = Server::builder("no such host:http").build();
    assert!(
        matches!(unparsable, Err(Error::Address(_))),
        "{unparsable:?}"
    );
}

// B11: an address in use is a clear error.
#[test]
fn an_address_in_use_is_an_error() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let error = Server::builder(addr).build().expect_err("address in use");
    assert!(matches!(error, Error::Bind { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with("cannot listen on 127.0.0.1:"),
        "{message}"
    );
    let source = std::error::Error::source(&error).expect("source");
    assert!(
        source.to_string().to_lowercase().contains("in use"),
        "{source}"
    );
}

// B12: dropping a running server in the middle of traffic never panics and
// returns within the drain timeout plus the force grace.
#[test]
fn dropping_a_running_server_is_bounded() {
    let running = builder()
        .drain_timeout(Some(Duration::from_millis(200)))
        .force_grace(Duration::from_millis(200))
        .start(echo);
    let mut conn = client(running.local_addr());
    echo_round_trip(&mut conn, b"x").expect("echo");
    let (tx, rx) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        drop(running);
        let _ = tx.send(());
    });
    rx.recv_timeout(EVENT)
        .expect("drop did not return within 5 s");
    assert!(sees_close(&mut conn), "connection not closed by the drop");

    // Without a drain timeout the drop does not wait at all.
    let running = builder().drain_timeout(None).start(echo);
    let addr = running.local_addr();
    let mut conn = client(addr);
    echo_round_trip(&mut conn, b"x").expect("echo");
    let (tx, rx) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        drop(running);
        let _ = tx.send(());
    });
    rx.recv_timeout(EVENT)
        .expect("drop did not return within 5 s");
    // The drain goes on in the background: still served.
    echo_round_trip(&mut conn, b"y").expect("still served after the drop");
}

// The server's threads are named, as `ps -T` and panic messages show.
#[test]
fn threads_are_named() {
    let names = Mutex::new(Vec::new());
    let names = std::sync::Arc::new(names);
    let seen = std::sync::Arc::clone(&names);
    let running = builder().workers(2).start(move |_stream, _conn| {
        let name = thread::current().name().map(str::to_owned);
        seen.lock().expect("lock").push(name);
        Ok(())
    });
    let mut conn = client(running.local_addr());
    assert!(sees_close(&mut conn));
    running.shutdown_handle().shutdown();
    join(running);
    let names = names.lock().expect("lock");
    let name = names[0].as_deref().unwrap_or("");
    assert!(name.starts_with("worker-"), "{name:?}");
}

#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<graceful_server::ShutdownHandle>();
    send_sync::<Error>();
    send_sync::<Report>();
    send_sync::<RunningServer>();
    send_sync::<Connection>();
    let _ = IO_TIMEOUT;
}

// Drain delay: after the signal the server goes on accepting and serving
// while `is_shutting_down` already says true; then it stops accepting.
#[test]
fn the_drain_delay_keeps_accepting_then_drains() {
    let running = builder()
        .drain_delay(Duration::from_millis(1500))
        .start(|stream, conn| {
            let reply: &[u8] = if conn.is_shutting_down() {
                b"shutting down\n"
            } else {
                b"serving\n"
            };
            (&stream).write_all(reply)
        });
    let addr = running.local_addr();
    let handle = running.shutdown_handle();
    let signalled = Instant::now();
    handle.shutdown();
    assert!(handle.is_shutting_down());

    // Accepted and served during the delay, and told about the shutdown.
    let mut during = client(addr);
    assert_eq!(read_line(&mut during).expect("served"), "shutting down");
    assert!(
        signalled.elapsed() < Duration::from_millis(1500),
        "the machine is too slow to observe the delay; the answer came after it"
    );

    // After the delay, new connections are refused.
    let deadline = Instant::now() + EVENT;
    while !is_refused(addr) {
        assert!(
            Instant::now() < deadline,
            "still accepting 5 s after the delay"
        );
    }
    assert!(signalled.elapsed() >= Duration::from_millis(1500));
    let report = join(running);
    assert!(!report.forced, "{report}");
    assert!(report.accepted >= 1, "{report}");
}

// A force ends the drain delay at once.
#[test]
fn force_ends_the_drain_delay() {
    let running = builder().drain_delay(Duration::from_secs(60)).start(echo);
    let handle = running.shutdown_handle();
    handle.shutdown();
    handle.force();
    let report = join(running);
    assert!(report.forced, "{report}");
}

// Under pressure, idle connections give their worker up: with one worker
// held by an idle keep-alive connection, a new connection is still served.
#[test]
fn an_idle_connection_yields_its_worker_to_a_waiting_one() {
    let running = builder().workers(1).start(idle_aware_echo);
    let addr = running.local_addr();
    let mut idle = client(addr);
    idle.write_all(b"first\n").expect("write");
    assert_eq!(read_line(&mut idle).expect("echo"), "first");

    // `idle` now holds the only worker, waiting for its next line.
    let mut waiting = client(addr);
    waiting.write_all(b"second\n").expect("write");
    assert_eq!(read_line(&mut waiting).expect("served"), "second");
    assert!(sees_close(&mut idle), "the idle connection was not closed");

    // Turning idle while nobody waits keeps the connection open.
    waiting.write_all(b"third\n").expect("write");
    assert_eq!(read_line(&mut waiting).expect("still served"), "third");
    drop(waiting);
    // Let the handler see the hang-up before shutting down, or the shutdown
    // might close it as idle first.
    let deadline = Instant::now() + EVENT;
    while running.open_connections() > 0 {
        assert!(Instant::now() < deadline, "hang-up not seen within 5 s");
        thread::sleep(Duration::from_millis(1));
    }
    running.shutdown_handle().shutdown();
    let report = join(running);
    assert_eq!(report.closed_idle, 1, "{report}");
    assert_eq!(report.completed, 1, "{report}");
}
