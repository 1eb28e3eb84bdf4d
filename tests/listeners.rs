//! Several listeners in one server: one pool, one report, one shutdown;
//! every backlog swept before any listener closes, and all refusing after.

mod support;

use std::io::{self, Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use graceful_server::{Addr, Connection, Next, RunningServer, Server};

use support::{client, echo, echo_round_trip, is_refused, join, Start};
#[cfg(unix)]
use support::{echo_binary, ServerProcess};

/// A second loopback address to listen on: `::1` where the machine has
/// IPv6 loopback, else another port of 127.0.0.1 (said on stderr).
fn second_loopback() -> &'static str {
    if TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok() {
        "[::1]:0"
    } else {
        eprintln!("no IPv6 loopback here: the second listener is on 127.0.0.1");
        "127.0.0.1:0"
    }
}

/// The TCP addresses a server listens on.
fn tcp_addrs(running: &RunningServer) -> Vec<SocketAddr> {
    running.local_addrs().iter().filter_map(Addr::tcp).collect()
}

#[test]
fn two_listeners_serve_with_one_pool_and_report_and_stop_together() {
    let running = Server::builder("127.0.0.1:0")
        .listen(second_loopback())
        .workers(2)
        .start(echo);
    let addrs = tcp_addrs(&running);
    assert_eq!(addrs.len(), 2);
    assert_eq!(addrs[0], running.local_addr());
    assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    let mut clients: Vec<TcpStream> = addrs.iter().map(|&a| client(a)).collect();
    for (i, conn) in clients.iter_mut().enumerate() {
        let message = format!("hello {i}");
        let reply = echo_round_trip(conn, message.as_bytes()).expect("echo");
        assert_eq!(reply, message.as_bytes());
    }
    running.shutdown_handle().shutdown();
    // Both refuse once accepting has stopped, while the clients still wait
    // mid-conversation. (Each probe that connects first is served and counted.)
    let racers: u64 = addrs.iter().map(|&a| support::wait_until_refused(a)).sum();
    drop(clients);
    let report = join(running);
    // A probe that connected in the instant between the sweep and the
    // close may or may not have been accepted.
    assert!(
        (2..=2 + racers).contains(&report.accepted) && report.completed == report.accepted,
        "{report:?}"
    );
}

/// Connections waiting in each listener's backlog when shutdown starts are
/// all served: the sweep takes every backlog before any listener closes.
#[test]
fn every_backlog_is_swept_at_shutdown() {
    let (entered_tx, entered) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let released = std::sync::Mutex::new(released);
    // One worker, held by the first connection until released: the others
    // wait in the queue and the kernel backlogs.
    let running = Server::builder("127.0.0.1:0")
        .listen(second_loopback())
        .workers(1)
        .queue_capacity(1)
        .start(move |conn: &mut Connection| -> io::Result<Next> {
            let mut buf = [0; 64];
            let n = conn.read(&mut buf)?;
            if n == 0 {
                return Ok(Next::Close);
            }
            if buf[..n].starts_with(b"first") {
                let _ = entered_tx.send(());
                let _ = released
                    .lock()
                    .map(|r| r.recv_timeout(Duration::from_secs(10)));
            }
            conn.write_all(&buf[..n])?;
            Ok(Next::Close)
        });
    let addrs = tcp_addrs(&running);
    let mut first = client(addrs[0]);
    first.write_all(b"first").expect("write");
    entered
        .recv_timeout(Duration::from_secs(5))
        .expect("the worker took the first connection");
    // Ten on each listener, each with its message sent.
    let mut waiting: Vec<(TcpStream, String)> = Vec::new();
    for (l, &addr) in addrs.iter().enumerate() {
        for i in 0..10 {
            let mut conn = client(addr);
            let message = format!("l{l}c{i}");
            conn.write_all(message.as_bytes()).expect("write");
            waiting.push((conn, message));
        }
    }
    let handle = running.shutdown_handle();
    handle.shutdown();
    let racers: u64 = addrs.iter().map(|&a| support::wait_until_refused(a)).sum();
    release.send(()).expect("release the worker");
    let mut reply = [0; 5];
    first.read_exact(&mut reply).expect("first answered");
    for (mut conn, message) in waiting {
        let mut reply = vec![0; message.len()];
        conn.read_exact(&mut reply)
            .unwrap_or_else(|e| panic!("{message} not served: {e}"));
        assert_eq!(reply, message.as_bytes());
    }
    let report = join(running);
    // A probe that connected in the instant between the sweep and the
    // close may or may not have been accepted.
    assert!(
        (21..=21 + racers).contains(&report.accepted) && report.completed == report.accepted,
        "{report:?}"
    );
    assert!(addrs.iter().all(|&a| is_refused(a)));
}

/// `--addr` repeated: a `listening on` line per address, in order; both
/// serve; one signal stops both.
#[test]
#[cfg(unix)] // stops the binary with `kill`
fn the_binary_listens_on_every_addr_given() {
    let second = second_loopback();
    let mut server =
        ServerProcess::start(echo_binary(), &["--addr", "127.0.0.1:0", "--addr", second]);
    let line = server
        .next_stdout_line(Duration::from_secs(5))
        .expect("a second listening line");
    let other: SocketAddr = line
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected second line {line:?}"))
        .parse()
        .expect("IP:PORT");
    assert!(server.addr.is_ipv4(), "the first line is the first --addr");
    assert_eq!(other.is_ipv6(), second.starts_with('['));
    for addr in [server.addr, other] {
        let mut conn = client(addr);
        assert_eq!(echo_round_trip(&mut conn, b"hi").expect("echo"), b"hi");
    }
    server.signal("INT");
    let status = server.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    assert!(is_refused(server.addr) && is_refused(other));
    assert!(server.stderr().contains("2 accepted, 2 completed"));
}
