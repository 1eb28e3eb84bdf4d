//! Outcomes that tell the truth. A client that closes or resets a connection
//! while it waits idle is `completed`; `failed` means a conversation broke.
//! Tests pin each case, including wrk-style resets at the end of a run and a
//! proxy closing idle upstream connections.
//!
//! Each case runs over real loopback sockets and checks both what the event
//! hook says of every connection (`Event::ConnectionEnded`) and the exact
//! counts of the report. The tests wait for the server to see a close on
//! the event channel (`recv_timeout`) or by polling `stats()`, never by
//! sleeping; every client socket has read and write timeouts.
//!
//! A reset is a close with `SO_LINGER` 0 (set with libc): those cases are
//! unix only.

mod support;

use std::io::{self, Read, Write};
use std::sync::mpsc;
use std::time::Duration;

use graceful_server::{Builder, Connection, Event, Next, Outcome, Report, RunningServer, Server};

use support::Start;

/// What a `ConnectionEnded` event says: the outcome, and the error with its
/// kind, if it carried one.
type Ended = (Outcome, Option<String>);

/// The builder of every server here, with every `ConnectionEnded` event
/// sent to the receiver.
fn builder() -> (Builder, mpsc::Receiver<Ended>) {
    let (tx, rx) = mpsc::channel();
    let builder = Server::builder("127.0.0.1:0")
        .workers(2)
        .on_event(move |event| {
            if let Event::ConnectionEnded { outcome, error, .. } = event {
                let error = error.map(|e| format!("{e} ({:?})", e.kind()));
                let _ = tx.send((*outcome, error));
            }
        });
    (builder, rx)
}

/// The next connection to end, waiting at most 5 s.
fn next_ended(events: &mpsc::Receiver<Ended>) -> Ended {
    events
        .recv_timeout(Duration::from_secs(5))
        .expect("no connection ended within 5 s")
}

/// Shuts the server down once every connection has ended, and checks its
/// report: `completed` and `failed` as given, every other outcome zero, and
/// no connection ended that the test has not already seen.
fn stop(running: RunningServer, events: &mpsc::Receiver<Ended>, completed: u64, failed: u64) {
    running.shutdown_handle().shutdown();
    let report: Report = support::join(running);
    let counts = [
        report.accepted,
        report.completed,
        report.failed,
        report.timed_out,
        report.closed_idle,
        report.force_closed,
        report.unserved,
        report.panicked,
    ];
    assert_eq!(
        counts,
        [completed + failed, completed, failed, 0, 0, 0, 0, 0],
        "accepted, completed, failed, timed out, closed idle, force-closed, unserved, \
         panicked: {report}"
    );
    assert!(!report.forced, "{report}");
    let more: Vec<Ended> = events.try_iter().collect();
    assert!(more.is_empty(), "connections ended unseen: {more:?}");
}

const COMPLETED: Ended = (Outcome::Completed, None);

// ---------------------------------------------------------------------------
// The core: a conversation (`Next::Wait`) and a wait at a safe boundary
// (`Next::Idle`).
// ---------------------------------------------------------------------------

/// Echo that waits idle between messages: each message is a whole exchange.
fn echo_idle(conn: &mut Connection) -> io::Result<Next> {
    let mut buf = [0; 4096];
    let n = conn.read(&mut buf)?;
    if n == 0 {
        return Ok(Next::Close);
    }
    conn.write_all(&buf[..n])?;
    Ok(Next::Idle)
}

/// The echo handler waits mid-conversation; a client that hangs up (end of
/// file) ends it as the handler expects: `Next::Close`, completed.
#[test]
fn an_echo_client_that_hangs_up_is_completed() {
    let (builder, events) = builder();
    let running = builder.start(support::echo);
    let mut client = support::client(running.local_addr());
    assert_eq!(
        support::echo_round_trip(&mut client, b"hello").unwrap(),
        b"hello"
    );
    drop(client);
    assert_eq!(next_ended(&events), COMPLETED);
    stop(running, &events, 1, 0);
}

/// A reset in the middle of a conversation (`Next::Wait`) is a conversation
/// that broke: failed, with the reset as its error.
#[cfg(unix)]
#[test]
fn an_echo_client_that_resets_mid_conversation_is_failed() {
    let (builder, events) = builder();
    let running = builder.start(support::echo);
    let mut client = support::client(running.local_addr());
    assert_eq!(
        support::echo_round_trip(&mut client, b"hello").unwrap(),
        b"hello"
    );
    support::relay::reset(client);
    let (outcome, error) = next_ended(&events);
    eprintln!("echo client reset mid-conversation: {outcome:?}, {error:?}");
    assert_eq!(outcome, Outcome::Failed, "{error:?}");
    let error = error.expect("a failed connection carries its error");
    assert!(error.contains("ConnectionReset"), "{error}");
    stop(running, &events, 0, 1);
}

/// A client that hangs up while its connection waits idle (`Next::Idle`):
/// completed.
#[test]
fn a_client_that_hangs_up_while_waiting_idle_is_completed() {
    let (builder, events) = builder();
    let running = builder.start(echo_idle);
    let mut client = support::client(running.local_addr());
    assert_eq!(
        support::echo_round_trip(&mut client, b"one").unwrap(),
        b"one"
    );
    drop(client);
    assert_eq!(next_ended(&events), COMPLETED);
    stop(running, &events, 1, 0);
}

/// A reset while the connection waits idle (`Next::Idle`, between two
/// exchanges) broke nothing: completed, without an error.
#[cfg(unix)]
#[test]
fn a_client_that_resets_while_waiting_idle_is_completed() {
    let (builder, events) = builder();
    let running = builder.start(echo_idle);
    let mut client = support::client(running.local_addr());
    for message in [&b"one"[..], b"two"] {
        assert_eq!(
            support::echo_round_trip(&mut client, message).unwrap(),
            message
        );
    }
    support::relay::reset(client);
    assert_eq!(next_ended(&events), COMPLETED);
    stop(running, &events, 1, 0);
}

// ---------------------------------------------------------------------------
// HTTP: between requests, and before the first, a connection waits idle.
// ---------------------------------------------------------------------------

#[cfg(feature = "http")]
mod over_http {
    use super::*;

    use std::net::TcpStream;
    use std::thread;
    use std::time::Instant;

    use graceful_server::http::{self, Response};

    const HELLO: &str = "Hello, world!";
    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n";
    /// Half of a request head: the request line and part of a header.
    #[cfg(unix)]
    const HALF_HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: te";

    /// The next `n` connections to end.
    fn ended(events: &mpsc::Receiver<Ended>, n: usize) -> Vec<Ended> {
        (0..n).map(|_| next_ended(events)).collect()
    }

    /// Polls the server's numbers until `accepted` reaches `n`, at most 5 s.
    fn wait_until_accepted(running: &RunningServer, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while running.stats().accepted < n {
            assert!(
                Instant::now() < deadline,
                "{n} connections not accepted within 5 s: {:?}",
                running.stats()
            );
            // Bounded polling of a number that has no blocking form.
            thread::sleep(Duration::from_millis(1));
        }
    }

    fn start() -> (RunningServer, mpsc::Receiver<Ended>) {
        let (builder, events) = builder();
        let running = builder.start(http::handler(|_| Response::text(HELLO)));
        (running, events)
    }

    /// Sends `GET /` and reads the whole answer, straight from the socket
    /// (nothing past it: the server sends nothing else): `200 Hello,
    /// world!`, keeping the connection open.
    fn get(stream: &mut TcpStream) {
        stream.write_all(GET).expect("send");
        let mut got = Vec::new();
        let mut buf = [0; 1024];
        let head_end = loop {
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            let n = stream.read(&mut buf).expect("read the head");
            assert!(
                n > 0,
                "closed in the head: {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&got[..head_end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        let lower = head.to_ascii_lowercase();
        assert!(!lower.contains("connection: close"), "{head}");
        assert!(
            lower.contains(&format!("content-length: {}", HELLO.len())),
            "{head}"
        );
        let end = head_end + 4 + HELLO.len();
        while got.len() < end {
            let n = stream.read(&mut buf).expect("read the body");
            assert!(n > 0, "closed in the body");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(&got[head_end + 4..], HELLO.as_bytes());
    }

    /// After its answers, a keep-alive client closes its connection (end of
    /// file) while it waits idle: completed.
    #[test]
    fn a_keep_alive_client_that_closes_while_idle_is_completed() {
        let (running, events) = start();
        let mut client = support::client(running.local_addr());
        get(&mut client);
        get(&mut client);
        drop(client);
        assert_eq!(next_ended(&events), COMPLETED);
        stop(running, &events, 1, 0);
    }

    /// The same, with a reset instead of an end of file: completed.
    #[cfg(unix)]
    #[test]
    fn a_keep_alive_client_that_resets_while_idle_is_completed() {
        let (running, events) = start();
        let mut client = support::client(running.local_addr());
        get(&mut client);
        get(&mut client);
        support::relay::reset(client);
        assert_eq!(next_ended(&events), COMPLETED);
        stop(running, &events, 1, 0);
    }

    /// wrk's end of a run: every connection has had its answers and waits
    /// idle; wrk resets them all at once. Every one is completed.
    #[cfg(unix)]
    #[test]
    fn wrk_resetting_its_connections_at_the_end_of_a_run_leaves_them_completed() {
        const CONNECTIONS: usize = 8;
        let (running, events) = start();
        let mut clients: Vec<TcpStream> = (0..CONNECTIONS)
            .map(|_| support::client(running.local_addr()))
            .collect();
        for _ in 0..5 {
            for client in &mut clients {
                get(client);
            }
        }
        for client in clients {
            support::relay::reset(client);
        }
        let ends = ended(&events, CONNECTIONS);
        assert!(ends.iter().all(|e| *e == COMPLETED), "{ends:?}");
        stop(running, &events, CONNECTIONS as u64, 0);
    }

    /// A proxy keeps a pool of idle upstream connections. Its idle timeout
    /// closes some of them while the others go on serving; at its own stop
    /// it closes the rest. Every one is completed.
    #[test]
    fn a_proxy_closing_idle_upstream_connections_leaves_them_completed() {
        const POOL: usize = 6;
        let (running, events) = start();
        let mut pool: Vec<TcpStream> = (0..POOL)
            .map(|_| support::client(running.local_addr()))
            .collect();
        for _ in 0..3 {
            for upstream in &mut pool {
                get(upstream);
            }
        }
        // The proxy's idle timeout: half the pool goes.
        let mut kept = pool.split_off(POOL / 2);
        drop(pool);
        let closed = ended(&events, POOL / 2);
        assert!(closed.iter().all(|e| *e == COMPLETED), "{closed:?}");
        // The rest still serves, then the proxy stops.
        for upstream in &mut kept {
            get(upstream);
        }
        drop(kept);
        let closed = ended(&events, POOL / 2);
        assert!(closed.iter().all(|e| *e == COMPLETED), "{closed:?}");
        stop(running, &events, POOL as u64, 0);
    }

    /// A new HTTP connection waits idle for its first request: a client
    /// that connects and closes without sending anything (a health check
    /// of a load balancer, a port scan) is completed.
    #[test]
    fn a_client_that_closes_before_its_first_request_is_completed() {
        let (running, events) = start();
        let client = support::client(running.local_addr());
        wait_until_accepted(&running, 1);
        drop(client);
        assert_eq!(next_ended(&events), COMPLETED);
        stop(running, &events, 1, 0);
    }

    /// The same, with a reset: completed.
    #[cfg(unix)]
    #[test]
    fn a_client_that_resets_before_its_first_request_is_completed() {
        let (running, events) = start();
        let client = support::client(running.local_addr());
        wait_until_accepted(&running, 1);
        support::relay::reset(client);
        assert_eq!(next_ended(&events), COMPLETED);
        stop(running, &events, 1, 0);
    }

    /// A reset in the middle of a request head breaks a conversation: not
    /// completed but failed, with the reset as its error. Both on a new
    /// connection and after a keep-alive request; several rounds, since the
    /// server may read the half head before the reset arrives or together
    /// with it, and both must count alike.
    #[cfg(unix)]
    #[test]
    fn a_reset_in_the_middle_of_a_request_head_is_failed() {
        const ROUNDS: usize = 10;
        let (running, events) = start();
        let mut seen = Vec::new();
        for round in 0..ROUNDS {
            let mut client = support::client(running.local_addr());
            let after_a_request = round % 2 == 1;
            if after_a_request {
                get(&mut client);
            }
            client.write_all(HALF_HEAD).expect("send half a head");
            support::relay::reset(client);
            seen.push((after_a_request, next_ended(&events)));
        }
        eprintln!("reset in the middle of a head (after a request?, outcome): {seen:?}");
        for (after_a_request, (outcome, error)) in &seen {
            assert_eq!(
                *outcome,
                Outcome::Failed,
                "after a request: {after_a_request}; error {error:?}; all: {seen:?}"
            );
            let error = error
                .as_deref()
                .expect("a failed connection carries its error");
            assert!(error.contains("ConnectionReset"), "{error}");
        }
        stop(running, &events, 0, ROUNDS as u64);
    }
}
