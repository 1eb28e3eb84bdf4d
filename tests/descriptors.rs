//! What a server costs in descriptors: a few of its own, however many
//! workers (they share one readiness wait), so the descriptors are the
//! connections'; and the binary raises the soft limit to the hard one at
//! start.
//!
//! The servers run as child processes under `ulimit` in `sh`, so the test
//! process keeps its own limit.

// `ulimit` in `sh`, /proc for a process's limits, `eventfd`: Linux only.
#![cfg(target_os = "linux")]

mod support;

use std::fs;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{client, echo_binary, ServerProcess};

/// Runs the echo binary under `limits` (an `ulimit` command line) with
/// `args`.
fn under_limit(limits: &str, args: &[&str]) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("{limits} && exec \"$0\" \"$@\""))
        .arg(echo_binary())
        .args(args)
        .stdin(Stdio::null());
    command
}

/// The soft and hard limits on open files of process `pid`.
fn open_files_limits(pid: u32) -> (String, String) {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).expect("read /proc/PID/limits");
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .expect("a Max open files line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].to_string(), fields[4].to_string())
}

/// 600 workers under a limit of 1024 (soft and hard): with a socket pair
/// per worker they needed 1,202 descriptors before the first connection;
/// sharing one readiness wait they leave room for 300 connections at once
/// (and more), all served.
#[test]
fn six_hundred_workers_under_a_limit_of_1024_serve_300_connections_at_once() {
    let command = under_limit(
        "ulimit -n 1024",
        &["--addr", "127.0.0.1:0", "--workers", "600"],
    );
    serves_at_once(command, 300);
}

/// Started with a soft limit below the hard one, the binary raises the
/// soft limit to the hard one before serving.
#[test]
fn the_binary_raises_the_soft_descriptor_limit_to_the_hard_one() {
    let hard = fs::read_to_string("/proc/self/limits").expect("limits");
    let hard: u64 = hard
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(4))
        .and_then(|value| value.parse().ok())
        .expect("a numeric hard limit");
    if hard <= 512 {
        eprintln!("skipped: the hard limit ({hard}) leaves nothing to raise to");
        return;
    }
    let command = under_limit("ulimit -Sn 512", &["--addr", "127.0.0.1:0"]);
    let mut server = ServerProcess::start_command(command);
    let (soft, now_hard) = open_files_limits(server.pid());
    assert_eq!(soft, hard.to_string(), "soft limit not raised");
    assert_eq!(now_hard, hard.to_string());
    server.signal("INT");
    let status = server.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
}

/// Workers cost no descriptors: 300 workers start under a limit of 256
/// (a descriptor per worker would not fit) and serve 150 connections at
/// once (below the connection maximum the limit leaves: 256, less its
/// own and a reserve of 64).
#[test]
fn three_hundred_workers_fit_under_a_limit_of_256() {
    let command = under_limit(
        "ulimit -n 256",
        &["--addr", "127.0.0.1:0", "--workers", "300"],
    );
    serves_at_once(command, 150);
}

/// Starts the echo binary with `command`, opens `clients` connections and
/// has each echoed while all stay open, then stops it with SIGINT: it
/// exits 0, every connection served.
fn serves_at_once(command: Command, clients: usize) {
    let mut server = ServerProcess::start_command(command);
    let mut conns: Vec<_> = (0..clients).map(|_| client(server.addr)).collect();
    for (i, conn) in conns.iter_mut().enumerate() {
        conn.write_all(format!("{i:03}").as_bytes()).expect("write");
    }
    // All open at once, each answered while the others stay open.
    for (i, conn) in conns.iter_mut().enumerate() {
        let mut reply = [0; 3];
        conn.read_exact(&mut reply)
            .unwrap_or_else(|e| panic!("client {i} not served: {e}"));
        assert_eq!(reply, format!("{i:03}").as_bytes());
    }
    drop(conns);
    server.signal("INT");
    let status = server.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    let stderr = server.stderr();
    let served = format!("{clients} accepted, {clients} completed");
    assert!(stderr.contains(&served), "{stderr}");
}
