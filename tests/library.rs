//! What happens to every kind of connection at shutdown, tested through the
//! library API over real loopback sockets.
//!
//! Recipe: bind `127.0.0.1:0`, give every client timeouts, wait for events
//! (`recv_timeout(..).expect(..)`), never sleep and hope.

mod support;

use std::io::{self, BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use graceful_server::{Builder, Connection, Error, Handler, Next, Report, RunningServer, Server};

use support::{
    client, echo, echo_holding_the_worker, echo_round_trip, is_refused, join, wait_until_refused,
    Start, IO_TIMEOUT,
};

/// How long a test waits for something that should take milliseconds.
const EVENT: Duration = Duration::from_secs(5);

fn builder() -> Builder {
    Server::builder("127.0.0.1:0")
}

/// Echoes one line per turn, then waits idle for the next one (a safe
/// boundary, like keep-alive between requests). Once shutdown has started it
/// answers `closing` instead of echoing, and closes.
fn line_echo(conn: &mut Connection) -> io::Result<Next> {
    let mut line = String::new();
    if conn.read_line(&mut line)? == 0 {
        return Ok(Next::Close);
    }
    if conn.is_shutting_down() {
        conn.write_all(b"closing\n")?;
        return Ok(Next::Close);
    }
    conn.write_all(line.as_bytes())?;
    Ok(Next::Idle)
}

/// Waits (at most [`EVENT`]) until the server has registered `n` open
/// connections: a `connect` returns when the kernel completed the handshake,
/// maybe before the acceptor took the connection.
fn wait_open(running: &RunningServer, n: usize) {
    let deadline = Instant::now() + EVENT;
    while running.open_connections() < n {
        assert!(Instant::now() < deadline, "connections not accepted");
        thread::yield_now();
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

// With the only worker busy, connections in the queue and in the
// kernel backlog at the signal are all served, none reset, and new
// connections are refused long before the busy one ends.
#[test]
fn backlog_and_queue_are_served_after_the_signal() {
    let running = builder()
        .workers(1)
        .queue_capacity(2)
        .start(echo_holding_the_worker);
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

    // The busy connection is still served after the signal.
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

// The server finishes as soon as the last connection ends.
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

// A connection waiting idle is closed at shutdown while one in the middle
// of a turn finishes it; a connection that turns idle after the signal is
// closed at once.
#[test]
fn idle_connections_close_at_shutdown_and_busy_ones_finish() {
    let gate = Gate::new();
    let gate_in = std::sync::Arc::new(gate);
    let gate_handler = std::sync::Arc::clone(&gate_in);
    // One line per turn, idle between lines; `work` blocks inside its turn.
    let running = builder().start(move |conn: &mut Connection| {
        let mut line = String::new();
        if conn.read_line(&mut line)? == 0 {
            return Ok(Next::Close);
        }
        if line == "work\n" {
            gate_handler.pass(conn.id());
        }
        conn.write_all(line.as_bytes())?;
        Ok(Next::Idle)
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
    // ...and, turning idle afterwards (`Next::Idle`), is closed at once.
    assert!(
        sees_close(&mut busy),
        "connection idle after the signal not closed"
    );

    let report = join(running);
    assert_eq!(report.closed_idle, 2, "{report}");
    assert!(!report.forced, "{report}");
}

// A request that arrives during the idle grace window is still served.
#[test]
fn a_request_during_the_idle_grace_is_served() {
    let running = builder()
        .idle_grace(Duration::from_secs(3))
        .start(line_echo);
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

// The grace window ends early when every connection is done, and idle
// connections are closed when it ends.
#[test]
fn idle_connections_close_when_the_grace_ends() {
    let running = builder()
        .idle_grace(Duration::from_millis(100))
        .start(line_echo);
    let mut idle = client(running.local_addr());
    idle.write_all(b"ping\n").expect("write");
    assert_eq!(read_line(&mut idle).expect("echo"), "ping");
    running.shutdown_handle().shutdown();
    assert!(sees_close(&mut idle), "idle connection not closed");
    let report = join(running);
    assert_eq!(report.closed_idle, 1, "{report}");
}

// A connection waiting mid-conversation (`Next::Wait`) is never cut
// before the deadline.
#[test]
fn connections_waiting_mid_conversation_are_not_cut_before_the_deadline() {
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

// The deadline forces: remaining connections are shut down, queued ones
// closed unserved, and the report says forced.
#[test]
fn the_deadline_forces() {
    // `busy` holds the only worker, so `queued` never gets a turn.
    let running = builder()
        .workers(1)
        .drain_timeout(Some(Duration::from_millis(300)))
        .start(echo_holding_the_worker);
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
    // Shutting the socket down wakes the handler blocked reading it on
    // unix. Windows does not promise that (under Wine it does not), and the
    // handler is then left behind after the force grace.
    if cfg!(unix) {
        assert_eq!(report.threads_left_behind, 0, "{report}");
    }
    assert!(sees_close(&mut busy), "force-closed connection still open");
    assert!(sees_close(&mut queued), "unserved connection still open");
}

// A handler stuck in something that is not a socket cannot stop the
// return; its thread is left behind and counted.
#[test]
fn a_stuck_handler_is_left_behind() {
    let (_never_tx, never_rx) = crossbeam_channel::bounded::<()>(0);
    let (entered_tx, entered_rx) = crossbeam_channel::bounded(1);
    let running = builder()
        .workers(2)
        .drain_timeout(Some(Duration::from_millis(100)))
        .force_grace(Duration::from_millis(200))
        .start(move |_conn: &mut Connection| {
            let _ = entered_tx.send(());
            // Blocks until the test ends: not a socket, cannot be cut.
            let _ = never_rx.recv();
            Ok(Next::Close)
        });
    let mut stuck = client(running.local_addr());
    // A turn starts when input arrives.
    stuck.write_all(b"x").expect("write");
    entered_rx.recv_timeout(EVENT).expect("handler entered");
    running.shutdown_handle().shutdown();
    let report = join(running);
    assert!(report.forced, "{report}");
    assert_eq!(report.threads_left_behind, 1, "{report}");
    assert_eq!(report.force_closed, 1, "{report}");
}

// Forcing during the drain (the second signal) cuts at once, even with
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

// Accepted streams are blocking, with the configured timeouts.
#[test]
fn streams_are_blocking_with_the_configured_timeouts() {
    let (result_tx, result_rx) = crossbeam_channel::unbounded();
    // A turn is called when the client's first line arrives; it then reads
    // past what has arrived, which must block (up to the read timeout).
    let running = builder()
        .read_timeout(Some(Duration::from_millis(300)))
        .start(move |conn: &mut Connection| {
            let mut hello = String::new();
            conn.read_line(&mut hello)?;
            conn.write_all(b"ready\n")?;
            let mut buf = [0; 8];
            let result = conn.read(&mut buf).map_err(|e| e.kind());
            let _ = result_tx.send(result);
            Ok(Next::Close)
        });
    let addr = running.local_addr();

    // A nonblocking stream would fail at once with WouldBlock; a blocking
    // one waits for the byte sent after the greeting.
    let mut talker = client(addr);
    talker.write_all(b"hello\n").expect("write");
    assert_eq!(read_line(&mut talker).expect("greeting"), "ready");
    thread::sleep(Duration::from_millis(50));
    talker.write_all(b"x").expect("write");
    let first = result_rx.recv_timeout(EVENT).expect("handler result");
    assert_eq!(first, Ok(1));

    // A client silent after its first line runs into the read timeout.
    let mut silent = client(addr);
    silent.write_all(b"hello\n").expect("write");
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

// A shutdown triggered before serving starts: the server sweeps and
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

// A cloned handle, used from another thread, stops `serve`.
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

/// The handler of `the_report_counts_every_outcome`: one line per
/// connection, whose words ask for an outcome. It speaks a protocol in which
/// the client speaks first, so a new connection counts as idle until its
/// first line (as in HTTP): one that says nothing is closed at shutdown.
struct Outcomes {
    holding: Sender<()>,
}

impl Handler for Outcomes {
    fn turn(&self, conn: &mut Connection) -> io::Result<Next> {
        let mut line = String::new();
        conn.read_line(&mut line)?;
        match line.as_str() {
            "panic\n" => panic!("asked to"),
            "fail\n" => Err(io::Error::other("asked to")),
            "hold\n" => {
                let _ = self.holding.send(());
                // In the middle of a turn until cut at the deadline.
                let _ = conn.read_line(&mut line);
                Ok(Next::Close)
            }
            _ => Ok(Next::Close),
        }
    }

    fn new_connections_are_idle(&self) -> bool {
        true
    }
}

// The report adds up under a mix of outcomes.
#[test]
fn the_report_counts_every_outcome() {
    let (holding_tx, holding_rx) = crossbeam_channel::bounded(1);
    let running = builder()
        .workers(4)
        .drain_timeout(Some(Duration::from_millis(300)))
        // Idle connections close at once, before the deadline cuts the rest.
        .idle_grace(Duration::ZERO)
        .start(Outcomes {
            holding: holding_tx,
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
    // `idle` must be accepted before the signal, to be closed as idle rather
    // than swept from the backlog.
    wait_open(&running, 2);
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

// By default a new connection waits mid-conversation until its first
// turn, so shutdown does not cut a client that has connected but not spoken
// yet: it waits for it, and serves it.
#[test]
fn a_silent_new_connection_is_waited_for_by_default() {
    let running = builder().drain_timeout(None).start(line_echo);
    let mut silent = client(running.local_addr());
    wait_open(&running, 1);
    running.shutdown_handle().shutdown();
    let (tx, rx) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        let _ = tx.send(running.join());
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "returned while a new connection had not spoken yet"
    );
    silent.write_all(b"late\n").expect("write");
    assert_eq!(read_line(&mut silent).expect("served"), "closing");
    assert!(sees_close(&mut silent));
    let report = rx
        .recv_timeout(EVENT)
        .expect("server did not stop within 5 s")
        .expect("join");
    assert_adds_up(&report);
    assert_eq!(report.completed, 1, "{report}");
    assert!(!report.forced, "{report}");
}

// Bad configuration is an error from `build`, before anything is bound.
#[test]
fn bad_configuration_fails_before_binding() {
    let free = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = free.local_addr().expect("addr");
    drop(free);
    let cases: Vec<(Builder, &str)> = vec![
        (Server::builder(addr).workers(0), "workers"),
        (Server::builder(addr).queue_capacity(0), "queue_capacity"),
        (Server::builder(addr).max_connections(0), "max_connections"),
        (Server::builder(addr).backlog(0), "backlog"),
        (
            Server::builder(addr).idle_timeout(Some(Duration::ZERO)),
            "idle_timeout",
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

// An address in use is a clear error.
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
    let kind = source.downcast_ref::<io::Error>().map(io::Error::kind);
    assert_eq!(kind, Some(io::ErrorKind::AddrInUse), "{source}");
    // Windows words it differently ("Only one usage of each socket
    // address..."), or not at all under Wine.
    if cfg!(unix) {
        assert!(
            source.to_string().to_lowercase().contains("in use"),
            "{source}"
        );
    }
}

// Dropping a running server in the middle of traffic never panics and
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
    let running = builder().workers(2).start(move |_conn: &mut Connection| {
        let name = thread::current().name().map(str::to_owned);
        seen.lock().expect("lock").push(name);
        Ok(Next::Close)
    });
    let mut conn = client(running.local_addr());
    conn.write_all(b"x").expect("write");
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
    send_sync::<Next>();
    let _ = IO_TIMEOUT;
}

// Drain delay: after the signal the server goes on accepting and serving
// while `is_shutting_down` already says true; then it stops accepting.
#[test]
fn the_drain_delay_keeps_accepting_then_drains() {
    // Answers a one-byte request with whether shutdown has started.
    fn tell(conn: &mut Connection) -> io::Result<Next> {
        let mut request = [0];
        conn.read_exact(&mut request)?;
        let reply: &[u8] = if conn.is_shutting_down() {
            b"shutting down\n"
        } else {
            b"serving\n"
        };
        conn.write_all(reply)?;
        Ok(Next::Close)
    }
    let running = builder()
        .drain_delay(Duration::from_millis(1500))
        .start(tell);
    let addr = running.local_addr();
    let handle = running.shutdown_handle();
    let signalled = Instant::now();
    handle.shutdown();
    assert!(handle.is_shutting_down());

    // Accepted and served during the delay, and told about the shutdown.
    let mut during = client(addr);
    during.write_all(b"?").expect("write");
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

// No connection is ever closed to make room for another. With more idle
// keep-alive clients than workers, a new client is served, and every idle
// one is still open and answers a second request. (This replaces "an idle
// connection yields its worker to a waiting one": the old core closed an
// idle connection when a client waited for its worker. Waiting connections
// now hold no worker, so nothing needs to be cut.)
#[test]
fn idle_connections_are_never_closed_to_make_room() {
    for use_poll in [false, true] {
        let running = builder().workers(1).use_poll(use_poll).start(line_echo);
        let addr = running.local_addr();
        let mut idle: Vec<TcpStream> = (0..3).map(|_| client(addr)).collect();
        for (i, conn) in idle.iter_mut().enumerate() {
            conn.write_all(format!("first {i}\n").as_bytes())
                .expect("write");
            assert_eq!(read_line(conn).expect("echo"), format!("first {i}"));
        }

        // Three connections wait idle: more than there are workers.
        let mut newcomer = client(addr);
        newcomer.write_all(b"new\n").expect("write");
        assert_eq!(read_line(&mut newcomer).expect("served"), "new");

        // None of the idle ones was closed for it.
        for (i, conn) in idle.iter_mut().enumerate().rev() {
            conn.write_all(format!("second {i}\n").as_bytes())
                .expect("write");
            let line = read_line(conn).unwrap_or_else(|e| panic!("idle {i}: {e}"));
            assert_eq!(line, format!("second {i}"), "poll: {use_poll}");
        }

        running.shutdown_handle().shutdown();
        for conn in idle.iter_mut().chain([&mut newcomer]) {
            assert!(sees_close(conn), "idle connection not closed at shutdown");
        }
        let report = join(running);
        assert_eq!(report.accepted, 4, "{report}");
        assert_eq!(report.closed_idle, 4, "{report}");
        assert!(!report.forced, "{report}");
    }
}
