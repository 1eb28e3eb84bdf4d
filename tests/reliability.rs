//! Faults and load with nothing lost: no leaked descriptors or threads, a
//! burst in the backlog at shutdown served in full, and a server dropped in
//! the middle of traffic.

// The leak test is Linux only (/proc) and the signal test unix only (`kill`);
// elsewhere the helpers only they use are unused.
#![cfg_attr(not(target_os = "linux"), allow(dead_code, unused_imports))]

mod support;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use graceful_server::Server;

use support::{
    client, echo, echo_binary, echo_holding_the_worker, echo_round_trip, join, wait_until_refused,
    ServerProcess, Start,
};

const EVENT: Duration = Duration::from_secs(5);

fn count_entries(dir: String) -> usize {
    fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {dir}: {e}"))
        .count()
}

/// Waits until `probe` returns `want`, at most `timeout`; returns the last
/// value seen.
fn settle(timeout: Duration, want: usize, probe: impl Fn() -> usize) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let now = probe();
        if now == want || Instant::now() >= deadline {
            return now;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

// After a few thousand connections (echoing, closing at once, resetting),
// the process's descriptors and threads are back to their starting counts.
#[test]
#[cfg(target_os = "linux")] // counts descriptors and threads in /proc
fn no_descriptor_or_thread_leaks() {
    let mut server =
        ServerProcess::start(echo_binary(), &["--addr", "127.0.0.1:0", "--workers", "8"]);
    let pid = server.pid();
    let fds = move || count_entries(format!("/proc/{pid}/fd"));
    let threads = move || count_entries(format!("/proc/{pid}/task"));
    let fds_before = fds();
    let threads_before = threads();

    let addr = server.addr;
    thread::scope(|scope| {
        for worker in 0..4 {
            scope.spawn(move || {
                for i in 0..750 {
                    let mut conn = client(addr);
                    match (worker + i) % 3 {
                        // A full exchange, then a polite close.
                        0 => {
                            echo_round_trip(&mut conn, b"hello").expect("echo");
                        }
                        // Connect and hang up at once.
                        1 => {}
                        // Leave the echo unread and close: the kernel sends
                        // a reset instead of a FIN.
                        _ => {
                            conn.write_all(b"unread").expect("write");
                            let mut first = [0; 1];
                            conn.read_exact(&mut first).expect("echo starts");
                        }
                    }
                }
            });
        }
    });

    let fds_after = settle(EVENT, fds_before, fds);
    assert_eq!(fds_after, fds_before, "descriptors leaked");
    assert_eq!(threads(), threads_before, "threads leaked or lost");

    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(10));
    let stderr = server.stderr();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("3000 accepted"), "{stderr}");
}

// 100 connections waiting in the queue and the kernel backlog at shutdown,
// with the only worker busy, are all served, none reset.
#[test]
fn a_backlog_burst_at_shutdown_is_served_in_full() {
    const BURST: usize = 100;
    // `busy` holds the only worker until it hangs up, after the signal.
    let running = Server::builder("127.0.0.1:0")
        .workers(1)
        .queue_capacity(4)
        .start(echo_holding_the_worker);
    let addr = running.local_addr();
    let mut busy = client(addr);
    echo_round_trip(&mut busy, b"busy").expect("echo");

    let mut burst: Vec<TcpStream> = (0..BURST).map(|_| client(addr)).collect();
    for (i, conn) in burst.iter_mut().enumerate() {
        conn.write_all(format!("{i:03}\n").as_bytes())
            .expect("write");
        conn.shutdown(Shutdown::Write).expect("half-close");
    }

    running.shutdown_handle().shutdown();
    let racers = wait_until_refused(addr);
    drop(busy);

    for (i, conn) in burst.into_iter().enumerate() {
        let mut line = String::new();
        BufReader::new(conn)
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("connection {i} not served: {e}"));
        assert_eq!(line, format!("{i:03}\n"), "connection {i}");
    }

    let report = join(running);
    assert!(
        (1 + BURST as u64..=1 + BURST as u64 + racers).contains(&report.accepted),
        "{report}"
    );
    assert_eq!(report.unserved + report.force_closed, 0, "{report}");
}

// Dropping a running server in the middle of traffic returns within the
// drain timeout plus the force grace, and never panics.
#[test]
fn dropping_a_server_under_traffic_is_bounded() {
    let running = Server::builder("127.0.0.1:0")
        .workers(4)
        .drain_timeout(Some(Duration::from_millis(300)))
        .force_grace(Duration::from_millis(300))
        .start(echo);
    let addr = running.local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let exchanges = Arc::new(AtomicU64::new(0));

    thread::scope(|scope| {
        for _ in 0..6 {
            let (stop, exchanges) = (Arc::clone(&stop), Arc::clone(&exchanges));
            scope.spawn(move || {
                // Bounded: at most 100,000 exchanges, and it stops at the
                // first failure once the server is gone.
                for _ in 0..100_000 {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(mut conn) = TcpStream::connect_timeout(&addr, EVENT) else {
                        return;
                    };
                    let _ = conn.set_read_timeout(Some(EVENT));
                    let _ = conn.set_write_timeout(Some(EVENT));
                    for _ in 0..10 {
                        if echo_round_trip(&mut conn, b"traffic").is_err() {
                            return;
                        }
                        exchanges.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
        // Let traffic flow, then drop the server in the middle of it.
        let deadline = Instant::now() + EVENT;
        while exchanges.load(Ordering::SeqCst) < 200 {
            assert!(Instant::now() < deadline, "no traffic");
            thread::yield_now();
        }
        let started = Instant::now();
        drop(running);
        let took = started.elapsed();
        stop.store(true, Ordering::SeqCst);
        // Bound: drain timeout + force grace + the drop's 100 ms margin,
        // plus slack for a loaded machine.
        assert!(took < Duration::from_secs(3), "drop took {took:?}");
    });
}

// A handler blocked for ever on something that is not a socket: the forced
// shutdown still returns, the thread is reported as left behind, and the
// process exits 3.
#[test]
#[cfg(unix)] // stops the server with a signal (`kill`), which Windows lacks
fn a_stuck_handler_cannot_stop_the_exit() {
    let mut server = ServerProcess::start(
        support::example_path("stuck"),
        &["--addr", "127.0.0.1:0", "--drain-timeout", "0.2"],
    );
    let mut conn = client(server.addr);
    conn.write_all(b"anything").expect("write");
    // Accepted before the signal or swept from the backlog after it, the
    // connection reaches a worker and its handler gets stuck either way.
    server.signal("INT");
    let status = server.wait_exit(Duration::from_secs(10));
    let stderr = server.stderr();
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("1 threads left behind"), "{stderr}");
    assert!(stderr.contains("1 force-closed"), "{stderr}");
}
