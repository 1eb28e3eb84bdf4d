//! The event-driven core: connections waiting for input hold no worker, so
//! more keep-alive clients than workers are all served, none is closed to
//! make room, and the limits (connection maximum, listen backlog, idle and
//! read timeouts) hold. Every scenario runs on both readiness backends.

mod support;

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use graceful_server::{Builder, Connection, Next, Server};
use support::{client, join, Start, IO_TIMEOUT};

/// Both backends: the platform's own (epoll on Linux) and `poll(2)`.
const BACKENDS: [bool; 2] = [false, true];

fn builder(use_poll: bool) -> Builder {
    Server::builder("127.0.0.1:0")
        .workers(4)
        .use_poll(use_poll)
        .drain_timeout(Some(Duration::from_secs(5)))
}

/// A line protocol with keep-alive: each turn answers one line with
/// `<connection id> <line>` and waits idle for the next.
fn lines(conn: &mut Connection) -> io::Result<Next> {
    let mut line = String::new();
    if conn.read_line(&mut line)? == 0 {
        return Ok(Next::Close);
    }
    let answer = format!("{} {}", conn.id(), line);
    conn.write_all(answer.as_bytes())?;
    Ok(Next::Idle)
}

/// Sends a line and reads the answer; returns the connection id it names.
fn ask(reader: &mut BufReader<TcpStream>, line: &str) -> io::Result<u64> {
    reader.get_mut().write_all(format!("{line}\n").as_bytes())?;
    let mut answer = String::new();
    if reader.read_line(&mut answer)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let (id, echoed) = answer
        .trim_end()
        .split_once(' ')
        .ok_or(io::ErrorKind::InvalidData)?;
    assert_eq!(echoed, line, "answer to the wrong request");
    id.parse().map_err(|_| io::ErrorKind::InvalidData.into())
}

fn open(addr: SocketAddr) -> BufReader<TcpStream> {
    BufReader::new(client(addr))
}

/// Raises the soft descriptor limit so that this process can hold both
/// ends of `connections` connections.
#[cfg(unix)] // RLIMIT_NOFILE; Windows has no descriptor limit to raise
fn allow_descriptors(connections: u64) {
    let wanted = connections * 2 + 256;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid `rlimit` for the kernel to fill in.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    if limit.rlim_cur < wanted as libc::rlim_t {
        limit.rlim_cur = limit.rlim_max.min(wanted as libc::rlim_t);
        // SAFETY: as above; raising the soft limit up to the hard one needs
        // no privilege.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    }
}

/// Windows has no per-process limit on sockets to raise.
#[cfg(not(unix))]
fn allow_descriptors(_connections: u64) {}

#[test]
fn a_thousand_idle_keep_alive_connections_on_four_workers_all_answer_again() {
    const IDLE: usize = 1000;
    allow_descriptors(IDLE as u64 + 100);
    for use_poll in BACKENDS {
        let running = builder(use_poll).start(lines);
        let addr = running.local_addr();
        let mut idle: Vec<_> = (0..IDLE).map(|_| open(addr)).collect();
        let mut ids = Vec::with_capacity(IDLE);
        for (i, conn) in idle.iter_mut().enumerate() {
            ids.push(ask(conn, &format!("first {i}")).expect("first request"));
        }
        // Others are served while the thousand wait.
        for i in 0..20 {
            let mut other = open(addr);
            ask(&mut other, &format!("other {i}")).expect("another client is served");
        }
        for (i, conn) in idle.iter_mut().enumerate() {
            let id = ask(conn, &format!("second {i}"))
                .unwrap_or_else(|e| panic!("idle connection {i} (poll: {use_poll}): {e}"));
            assert_eq!(id, ids[i], "the same connection answers");
        }
        running.shutdown_handle().shutdown();
        let report = join(running);
        assert_eq!(report.accepted, IDLE as u64 + 20);
        assert_eq!(report.closed_idle, IDLE as u64, "{report:?}");
    }
}

/// With `poll(2)` the workers poll only what was parked in the last 100 ms
/// or so, and a thread of its own polls the older connections (the cold
/// tier): connections left idle while another client keeps the workers
/// busy for longer than that are moved there, and still answer at once.
#[test]
fn connections_idle_beside_a_busy_client_still_answer_on_poll() {
    const IDLE: usize = 50;
    let running = builder(true).start(lines);
    let addr = running.local_addr();
    let mut idle: Vec<_> = (0..IDLE).map(|_| open(addr)).collect();
    let ids: Vec<u64> = (idle.iter_mut().enumerate())
        .map(|(i, conn)| ask(conn, &format!("first {i}")).expect("first request"))
        .collect();
    // Busy for three times the hot tier's span: the leader's rounds move
    // the idle ones cold.
    let mut busy = open(addr);
    let started = Instant::now();
    let mut served = 0;
    while started.elapsed() < Duration::from_millis(300) {
        ask(&mut busy, &format!("busy {served}")).expect("the busy client is served");
        served += 1;
    }
    for (i, conn) in idle.iter_mut().rev().enumerate() {
        let i = IDLE - 1 - i;
        let id = ask(conn, &format!("second {i}"))
            .unwrap_or_else(|e| panic!("idle connection {i}: {e}"));
        assert_eq!(id, ids[i], "the same connection answers");
        // And the busy one between them, hot again.
        ask(&mut busy, &format!("busy {served}")).expect("the busy client is served");
        served += 1;
    }
    running.shutdown_handle().shutdown();
    let report = join(running);
    assert_eq!(report.accepted, IDLE as u64 + 1);
    assert_eq!(report.closed_idle, IDLE as u64 + 1, "{report:?}");
}

#[test]
fn more_keep_alive_clients_than_workers_with_think_times_are_all_served() {
    const CLIENTS: usize = 16;
    const REQUESTS: usize = 40;
    for use_poll in BACKENDS {
        let running = builder(use_poll).start(lines);
        let addr = running.local_addr();
        thread::scope(|scope| {
            for c in 0..CLIENTS {
                scope.spawn(move || {
                    let mut conn = open(addr);
                    let mut id = None;
                    for r in 0..REQUESTS {
                        let got = ask(&mut conn, &format!("{c}.{r}")).unwrap_or_else(|e| {
                            panic!("client {c} request {r} (poll: {use_poll}): {e}")
                        });
                        // One connection for the whole session: none was
                        // closed by the server in between.
                        assert_eq!(*id.get_or_insert(got), got);
                        // Think times of 1 to 8 ms, different per client.
                        thread::sleep(Duration::from_millis(1 + ((c * 7 + r) % 8) as u64));
                    }
                });
            }
        });
        running.shutdown_handle().shutdown();
        let report = join(running);
        assert_eq!(report.accepted, CLIENTS as u64);
        // Every client hung up by itself; the server closed none.
        assert_eq!(report.completed, CLIENTS as u64, "{report:?}");
    }
}

#[test]
fn pipelined_requests_in_one_write_are_answered_in_order() {
    for use_poll in BACKENDS {
        let running = builder(use_poll).start(lines);
        let mut conn = open(running.local_addr());
        let batch: String = (0..100).map(|i| format!("p{i}\n")).collect();
        conn.get_mut().write_all(batch.as_bytes()).expect("write");
        for i in 0..100 {
            let mut answer = String::new();
            conn.read_line(&mut answer).expect("answer");
            assert!(answer.ends_with(&format!(" p{i}\n")), "{answer:?} for p{i}");
        }
        running.shutdown_handle().shutdown();
        join(running);
    }
}

/// Requests back to back from more clients than workers, each written in
/// two pieces, some two at once: input keeps arriving while a worker has
/// the connection, and right after it answers (the next request races the
/// worker parking the connection). With epoll's edge-triggered registration
/// such a report lands while the connection is out; lost, its client would
/// wait for ever (here: fail at its 5 s timeout). Never: every answer comes.
#[test]
fn input_racing_a_worker_that_parks_its_connection_is_never_lost() {
    const CLIENTS: usize = 8;
    const EXCHANGES: usize = 1_500;
    for use_poll in BACKENDS {
        // Two answers in a row must not wait for the client's delayed
        // acknowledgement of the first (Nagle's algorithm).
        let running = builder(use_poll).workers(2).start(|conn: &mut Connection| {
            if let Some(tcp) = conn.stream().as_tcp() {
                tcp.set_nodelay(true)?;
            }
            lines(conn)
        });
        let addr = running.local_addr();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                thread::spawn(move || -> io::Result<()> {
                    let mut conn = open(addr);
                    // Each piece goes at once, not when the last is acked.
                    conn.get_ref().set_nodelay(true)?;
                    let mut i = 0;
                    while i < EXCHANGES {
                        let stream = conn.get_mut();
                        if (i + c) % 7 == 0 {
                            // Two requests in one write: one is read ahead.
                            stream.write_all(format!("a{i}\nb{i}\n").as_bytes())?;
                            for line in [format!("a{i}"), format!("b{i}")] {
                                let mut answer = String::new();
                                conn.read_line(&mut answer)?;
                                assert!(answer.ends_with(&format!(" {line}\n")), "{answer:?}");
                            }
                        } else {
                            // One request in two writes: two edges.
                            stream.write_all(format!("r{i}").as_bytes())?;
                            stream.write_all(b"\n")?;
                            let mut answer = String::new();
                            conn.read_line(&mut answer)?;
                            assert!(answer.ends_with(&format!(" r{i}\n")), "{answer:?}");
                        }
                        i += 1;
                    }
                    Ok(())
                })
            })
            .collect();
        for client in clients {
            let result = client.join().expect("client thread");
            assert!(result.is_ok(), "poll: {use_poll}: {result:?}");
        }
        running.shutdown_handle().shutdown();
        let report = join(running);
        assert_eq!(report.completed, CLIENTS as u64, "{report:?}");
    }
}

#[test]
fn at_the_connection_maximum_new_connections_wait_in_the_backlog() {
    for use_poll in BACKENDS {
        let running = builder(use_poll).max_connections(2).start(lines);
        let addr = running.local_addr();
        let mut first = open(addr);
        let mut second = open(addr);
        ask(&mut first, "a").expect("first");
        ask(&mut second, "b").expect("second");
        // The third connects (the kernel completes the handshake) but is
        // not accepted: its request waits, unanswered, not refused.
        let mut third = open(addr);
        third.get_mut().write_all(b"c\n").expect("write");
        third
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        let mut answer = String::new();
        let waited = third.read_line(&mut answer);
        // A read timeout is `WouldBlock` on unix, `TimedOut` on Windows.
        assert!(
            matches!(&waited, Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)),
            "beyond the maximum nothing is served yet: {waited:?} {answer:?}"
        );
        // One closes: the third is accepted and its waiting request served.
        drop(first);
        third
            .get_ref()
            .set_read_timeout(Some(IO_TIMEOUT))
            .expect("timeout");
        third
            .read_line(&mut answer)
            .expect("served once a slot is free");
        assert!(answer.ends_with(" c\n"), "{answer:?}");
        assert_eq!(running.open_connections(), 2);
        running.shutdown_handle().shutdown();
        let report = join(running);
        assert_eq!(report.accepted, 3);
    }
}

#[test]
#[cfg(unix)] // Windows keeps std's backlog of 128 (see `Builder::backlog`)
fn the_listen_backlog_is_applied() {
    // Nothing is accepted (maximum 1, taken), so every connect beyond it
    // must fit in the backlog: with std's 128 the kernel would drop the
    // SYNs of the rest and their connects would time out.
    const CONNECTS: usize = 400;
    allow_descriptors(CONNECTS as u64);
    let running = builder(false).max_connections(1).backlog(1024).start(lines);
    let addr = running.local_addr();
    let mut held = open(addr);
    ask(&mut held, "hold").expect("first");
    let mut waiting = Vec::with_capacity(CONNECTS);
    for i in 0..CONNECTS {
        let conn = TcpStream::connect_timeout(&addr, Duration::from_millis(500))
            .unwrap_or_else(|e| panic!("connect {i} did not fit in the backlog: {e}"));
        waiting.push(conn);
    }
    drop(waiting);
    drop(held);
    running.shutdown_handle().shutdown();
    join(running);
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout() {
    for use_poll in BACKENDS {
        let running = builder(use_poll)
            .idle_timeout(Some(Duration::from_millis(200)))
            .start(lines);
        let mut conn = open(running.local_addr());
        ask(&mut conn, "x").expect("first");
        let started = Instant::now();
        let mut rest = Vec::new();
        let read = io::Read::read_to_end(&mut conn, &mut rest);
        assert!(matches!(read, Ok(0)), "closed with end of file: {read:?}");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(190) && waited < Duration::from_secs(3),
            "closed after {waited:?}"
        );
        running.shutdown_handle().shutdown();
        let report = join(running);
        assert_eq!(report.closed_idle, 1, "{report:?}");
    }
}

#[test]
fn a_mid_conversation_wait_is_bounded_by_the_wait_timeout_only() {
    fn echo_wait(conn: &mut Connection) -> io::Result<Next> {
        let mut line = String::new();
        if conn.read_line(&mut line)? == 0 {
            return Ok(Next::Close);
        }
        conn.write_all(line.as_bytes())?;
        Ok(Next::Wait)
    }
    for use_poll in BACKENDS {
        let running = builder(use_poll)
            // The idle timeout does not apply to a mid-conversation wait.
            .idle_timeout(Some(Duration::from_millis(50)))
            .wait_timeout(Some(Duration::from_millis(400)))
            .start(echo_wait);
        let mut conn = open(running.local_addr());
        conn.get_mut().write_all(b"hi\n").expect("write");
        let mut line = String::new();
        conn.read_line(&mut line).expect("echo");
        let started = Instant::now();
        let mut rest = Vec::new();
        let read = io::Read::read_to_end(&mut conn, &mut rest);
        assert!(matches!(read, Ok(0)), "closed: {read:?}");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(390) && waited < Duration::from_secs(3),
            "closed after {waited:?}"
        );
        running.shutdown_handle().shutdown();
        let report = join(running);
        assert_eq!(
            report.timed_out, 1,
            "a wait timeout counts as timed out: {report:?}"
        );
    }
}

#[test]
fn idle_connections_parked_at_shutdown_close_after_the_grace_and_a_late_request_is_served() {
    for use_poll in BACKENDS {
        let running = builder(use_poll)
            .idle_grace(Duration::from_millis(300))
            .start(lines);
        let addr = running.local_addr();
        // More than the workers, so that some are parked, some lingering.
        let mut conns: Vec<_> = (0..12).map(|_| open(addr)).collect();
        for (i, conn) in conns.iter_mut().enumerate() {
            ask(conn, &format!("{i}")).expect("first");
        }
        let handle = running.shutdown_handle();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(support::join(running));
        });
        handle.shutdown();
        // Within the grace, a request on an idle connection is answered.
        ask(&mut conns[5], "late").expect("a late request within the grace is served");
        // Then every idle connection is closed.
        for (i, conn) in conns.iter_mut().enumerate() {
            let mut rest = Vec::new();
            let read = io::Read::read_to_end(conn, &mut rest);
            assert!(matches!(read, Ok(0)), "connection {i}: {read:?}");
        }
        let report = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("server did not stop within 5 s");
        assert_eq!(report.closed_idle, 12, "{report:?}");
        assert!(!report.forced);
    }
}

#[test]
fn a_handler_that_loops_inside_one_turn_still_works() {
    // The old thread-per-connection style: one turn for the whole
    // connection, looping until the client hangs up.
    fn whole_connection(conn: &mut Connection) -> io::Result<Next> {
        loop {
            let mut line = String::new();
            if conn.read_line(&mut line)? == 0 {
                return Ok(Next::Close);
            }
            conn.write_all(line.as_bytes())?;
        }
    }
    let running = builder(false).start(whole_connection);
    let mut conn = open(running.local_addr());
    for i in 0..10 {
        conn.get_mut()
            .write_all(format!("{i}\n").as_bytes())
            .expect("write");
        let mut line = String::new();
        conn.read_line(&mut line).expect("echo");
        assert_eq!(line, format!("{i}\n"));
    }
    drop(conn);
    running.shutdown_handle().shutdown();
    let report = join(running);
    assert_eq!(report.completed, 1, "{report:?}");
}
