//! The shutdown's phases as events: what an embedding program needs to
//! print what the binary prints, in order, for a drain and for a force;
//! and the exit status from the report.

mod support;

use std::io::Write;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use graceful_server::{Connection, Event, ForceReason, Next, Report, Server, Trigger};

use support::{client, echo, join, Start};

/// A phase event, as the test records it.
#[derive(Debug, PartialEq)]
enum Phase {
    Started {
        trigger: Trigger,
        open: usize,
        idle_grace: Duration,
        drain_timeout: Option<Duration>,
    },
    AcceptingStopped {
        swept: u64,
    },
    IdleGraceOver {
        closed: u64,
    },
    Forced {
        reason: ForceReason,
    },
    Finished {
        accepted: u64,
        forced: bool,
    },
}

/// A builder whose hook sends every phase event to the receiver.
fn recording(
    builder: graceful_server::Builder,
) -> (graceful_server::Builder, mpsc::Receiver<Phase>) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let builder = builder.on_event(move |event| {
        let phase = match event {
            Event::ShutdownStarted {
                trigger,
                open,
                idle_grace,
                drain_timeout,
                ..
            } => Phase::Started {
                trigger: *trigger,
                open: *open,
                idle_grace: *idle_grace,
                drain_timeout: *drain_timeout,
            },
            Event::AcceptingStopped { swept } => Phase::AcceptingStopped { swept: *swept },
            Event::IdleGraceOver { closed } => Phase::IdleGraceOver { closed: *closed },
            Event::Forced { reason } => Phase::Forced { reason: *reason },
            Event::Finished { report } => Phase::Finished {
                accepted: report.accepted,
                forced: report.forced,
            },
            _ => return,
        };
        if let Ok(tx) = tx.lock() {
            let _ = tx.send(phase);
        }
    });
    (builder, rx)
}

/// A handler whose clients speak first: new and between-request
/// connections are idle, as in HTTP.
struct Lines;

impl graceful_server::Handler for Lines {
    fn turn(&self, conn: &mut Connection) -> std::io::Result<Next> {
        let mut buf = [0; 64];
        let n = std::io::Read::read(conn, &mut buf)?;
        if n == 0 {
            return Ok(Next::Close);
        }
        conn.write_all(&buf[..n])?;
        Ok(Next::Idle)
    }

    fn new_connections_are_idle(&self) -> bool {
        true
    }
}

#[test]
fn a_drain_tells_its_phases_in_order() {
    let grace = Duration::from_millis(200);
    let (builder, phases) = recording(Server::builder("127.0.0.1:0").idle_grace(grace));
    let running = builder.start(Lines);
    // One idle connection: closed when the grace ends.
    let mut idle = client(running.local_addr());
    assert_eq!(
        support::echo_round_trip(&mut idle, b"x").expect("echo"),
        b"x"
    );
    running.shutdown_handle().shutdown();
    let report = join(running);
    let seen: Vec<Phase> = phases.try_iter().collect();
    assert_eq!(
        seen,
        [
            Phase::Started {
                trigger: Trigger::Handle,
                open: 1,
                idle_grace: grace,
                drain_timeout: Some(graceful_server::Builder::DEFAULT_DRAIN_TIMEOUT),
            },
            Phase::AcceptingStopped { swept: 0 },
            Phase::IdleGraceOver { closed: 1 },
            Phase::Finished {
                accepted: 1,
                forced: false
            },
        ]
    );
    assert_eq!(report.closed_idle, 1);
    // `ExitCode` has no `PartialEq` before Rust 1.77: compared as shown.
    assert_eq!(
        format!("{:?}", report.exit_code()),
        format!("{:?}", ExitCode::SUCCESS)
    );
}

#[test]
fn a_force_at_the_deadline_tells_why() {
    let (builder, phases) =
        recording(Server::builder("127.0.0.1:0").drain_timeout(Some(Duration::from_millis(200))));
    let running = builder.start(echo);
    // Mid-conversation: waited for until the deadline cuts it.
    let mut held = client(running.local_addr());
    assert_eq!(
        support::echo_round_trip(&mut held, b"x").expect("echo"),
        b"x"
    );
    running.shutdown_handle().shutdown();
    let report = join(running);
    let seen: Vec<Phase> = phases.try_iter().collect();
    assert!(
        matches!(
            seen.as_slice(),
            [
                Phase::Started {
                    trigger: Trigger::Handle,
                    open: 1,
                    ..
                },
                Phase::AcceptingStopped { swept: 0 },
                Phase::Forced {
                    reason: ForceReason::Deadline
                },
                Phase::Finished {
                    accepted: 1,
                    forced: true
                },
            ]
        ),
        "{seen:?}"
    );
    assert_eq!(
        format!("{:?}", report.exit_code()),
        format!("{:?}", ExitCode::from(Report::EXIT_FORCED))
    );
}

#[test]
fn a_force_by_the_handle_says_so() {
    let (builder, phases) = recording(Server::builder("127.0.0.1:0"));
    let running = builder.start(echo);
    let mut held = client(running.local_addr());
    assert_eq!(
        support::echo_round_trip(&mut held, b"x").expect("echo"),
        b"x"
    );
    let handle = running.shutdown_handle();
    handle.shutdown();
    handle.force();
    let report = join(running);
    let seen: Vec<Phase> = phases.try_iter().collect();
    // The acceptor's sweep may come before or after the force.
    assert!(
        seen.contains(&Phase::Forced {
            reason: ForceReason::Handle
        }),
        "{seen:?}"
    );
    assert!(
        matches!(seen.first(), Some(Phase::Started { .. })),
        "{seen:?}"
    );
    assert!(
        matches!(seen.last(), Some(Phase::Finished { forced: true, .. })),
        "{seen:?}"
    );
    assert!(report.forced);
}

/// The echo binary prints its progress from these events: the shutting
/// down line (with the count and the plan), then the report, in that
/// order; a signal is the trigger.
#[test]
#[cfg(unix)]
fn the_binary_prints_its_lines_from_the_events() {
    let mut server = support::ServerProcess::start(
        support::echo_binary(),
        &["--addr", "127.0.0.1:0", "--drain-timeout", "0.3"],
    );
    let mut held = client(server.addr);
    assert_eq!(
        support::echo_round_trip(&mut held, b"x").expect("echo"),
        b"x"
    );
    server.signal("INT");
    let status = server.wait_exit(Duration::from_secs(10));
    assert_eq!(
        status.code(),
        Some(3),
        "forced at the deadline: {}",
        server.stderr()
    );
    let stderr = server.stderr();
    let lines: Vec<&str> = stderr.lines().collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in {stderr}"))
    };
    let started = at("shutting down: 1 connection(s) open; waiting up to 0.3s");
    let forced = at("forced (the drain timeout expired): closing every connection left");
    let finished = at("forced in ");
    assert!(started < forced && forced < finished, "{stderr}");
    drop(held);
}
