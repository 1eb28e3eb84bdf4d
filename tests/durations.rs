//! Every duration setter takes any `Duration`: one too large to add to the
//! clock means "for ever", never a panic inside serving.

mod support;

use std::io::{self, Read, Write};
use std::time::Duration;

use graceful_server::{Builder, Connection, Next, Server};
use support::{client, join, Start};

fn echo(conn: &mut Connection) -> io::Result<Next> {
    let mut buf = [0; 64];
    let n = conn.read(&mut buf)?;
    if n == 0 {
        return Ok(Next::Close);
    }
    conn.write_all(&buf[..n])?;
    Ok(Next::Idle)
}

/// Serves one exchange with `builder`, then shuts down; `force` ends a
/// shutdown that would otherwise wait for ever. Returns whether it was forced.
fn serve_once(builder: Builder, force: bool) -> bool {
    let running = builder.workers(2).start(echo);
    let mut conn = client(running.local_addr());
    conn.write_all(b"ping").expect("write");
    let mut reply = [0; 4];
    conn.read_exact(&mut reply).expect("read");
    assert_eq!(&reply, b"ping");
    let handle = running.shutdown_handle();
    handle.shutdown();
    if force {
        handle.force();
    }
    join(running).forced
}

fn base() -> Builder {
    Server::builder("127.0.0.1:0")
}

#[test]
fn the_largest_timeouts_mean_for_ever() {
    serve_once(base().read_timeout(Some(Duration::MAX)), false);
    serve_once(base().write_timeout(Some(Duration::MAX)), false);
    serve_once(base().idle_timeout(Some(Duration::MAX)), false);
    serve_once(base().drain_timeout(Some(Duration::MAX)), false);
    serve_once(base().force_grace(Duration::MAX), true);
}

#[test]
fn the_largest_delay_and_grace_wait_until_forced() {
    // Each would wait for ever: a force ends it, without a panic.
    assert!(serve_once(base().drain_delay(Duration::MAX), true));
    assert!(serve_once(base().idle_grace(Duration::MAX), true));
}

#[test]
fn dropping_a_server_with_the_largest_durations_does_not_panic() {
    let running = base()
        .drain_timeout(Some(Duration::MAX))
        .drain_delay(Duration::MAX)
        .force_grace(Duration::MAX)
        .start(echo);
    // The drop bound overflows: it must neither panic nor wait for ever
    // (nothing is connected, so the drain ends once forced).
    running.shutdown_handle().force();
    drop(running);
}
