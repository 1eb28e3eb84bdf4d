//! Accept errors and the connection maximum under a low descriptor limit: running out of file descriptors
//! never ends the accept loop and never makes it spin; the server recovers
//! when descriptors are free again, and nobody is lost.
//!
//! The servers run as child processes with a low descriptor limit
//! (`ulimit -n`), so the test process itself keeps its own limit: the echo
//! binary, and a library server run by this test binary started again.

// Limits descriptors with `ulimit` in `sh`, reads CPU time from /proc and
// stops servers with `kill`: Linux only.
#![cfg(target_os = "linux")]

mod support;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use graceful_server::Server;

use support::{client, echo, echo_binary, ServerProcess, IO_TIMEOUT};

/// Descriptor limit for the servers: a handful for stdio, the listener, the
/// readiness wait and the wake-ups (one per worker and the acceptor; the
/// servers run few workers), then room for about fifteen connections.
const FD_LIMIT: u32 = 32;
const CLIENTS: usize = 40;

/// Set in the environment of the library server's process.
const CHILD: &str = "GRACEFUL_SERVER_EXHAUSTION_CHILD";

/// User plus system CPU time of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is field 3, utime 14 and stime 15.
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| fields[n - 3].parse::<u64>().expect("number");
    field(14) + field(15)
}

/// More clients than the server at `addr` (process `pid`) has descriptors
/// for: they wait, the server does not spin, and each is served in turn.
fn exhaust_and_recover(addr: SocketAddr, pid: u32) {
    // The handshake completes in the kernel backlog whatever the server
    // does.
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| client(addr)).collect();
    for (i, conn) in clients.iter_mut().enumerate() {
        conn.write_all(format!("{i:02}").as_bytes()).expect("write");
    }

    // The first one is served, so the server is up and accepting...
    let mut reply = [0; 2];
    clients[0].read_exact(&mut reply).expect("first echo");
    assert_eq!(&reply, b"00");
    // ...and while the others wait it must not spin: over one second a busy
    // loop would burn about a second of CPU.
    let before = cpu_ticks(pid);
    thread::sleep(Duration::from_secs(1));
    let burned = cpu_ticks(pid) - before;
    assert!(burned < 30, "{burned} ticks of CPU in 1 s while exhausted");

    // Every client is served in turn as the earlier ones leave.
    for (i, mut conn) in clients.into_iter().enumerate().skip(1) {
        conn.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        let mut reply = [0; 2];
        conn.read_exact(&mut reply)
            .unwrap_or_else(|e| panic!("client {i} not served after recovery: {e}"));
        assert_eq!(reply, format!("{i:02}").as_bytes());
    }
}

// The echo binary under a low limit. It does not run out of descriptors:
// its connection maximum defaults to the descriptor limit minus a reserve, so
// it stops accepting first and new clients wait in the backlog. Before
// the event-driven core it ran 64 workers here, one per connection; a worker
// now costs two descriptors (its wake-up socket pair) and holds no
// connection, so 2 workers serve everyone.
#[test]
fn under_a_low_descriptor_limit_the_binary_serves_everyone_in_turn() {
    let mut command = Command::new("sh");
    command.arg("-c").arg(format!(
        "ulimit -n {FD_LIMIT} && exec \"$0\" --addr 127.0.0.1:0 --workers 2"
    ));
    command.arg(echo_binary());
    let mut server = ServerProcess::start_command(command);

    exhaust_and_recover(server.addr, server.pid());

    server.signal("INT");
    let status = server.wait_exit(Duration::from_secs(10));
    let stderr = server.stderr();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(&format!("{CLIENTS} accepted")), "{stderr}");
    assert!(stderr.contains("0 unserved"), "{stderr}");
}

/// The server process of
/// `out_of_descriptors_the_library_backs_off_and_recovers`, which runs this
/// test binary again with [`CHILD`] set. Run by hand (`--ignored`), it does
/// nothing.
///
/// Its connection maximum is far above what its descriptor limit allows, so
/// `accept` fails with EMFILE: the acceptor must back off and retry, not
/// spin or give up.
#[test]
#[ignore = "the server process of out_of_descriptors_the_library_backs_off_and_recovers"]
fn child_library_server() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let server = Server::builder("127.0.0.1:0")
        .workers(2)
        .max_connections(1000)
        .build()
        .expect("build");
    server.shutdown_handle().install_ctrl_c().expect("ctrl-c");
    println!("listening on {}", server.local_addr());
    let report = server.serve(echo).expect("serve");
    println!("report: {report}");
    assert_eq!(report.accepted, CLIENTS as u64, "{report}");
    assert_eq!(report.completed, CLIENTS as u64, "{report}");
    assert!(!report.forced, "{report}");
}

/// The library server started by `child_library_server` in a child process
/// with a low descriptor limit. Killed on drop.
struct LibraryServer {
    child: Child,
    addr: SocketAddr,
    /// Every stdout line of the child (the test harness's among them).
    lines: mpsc::Receiver<String>,
}

impl LibraryServer {
    fn start() -> LibraryServer {
        let exe = std::env::current_exe().expect("current_exe");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -n {FD_LIMIT} && exec \"$0\" \"$@\""))
            .arg(exe)
            .args(["--exact", "child_library_server", "--ignored"])
            .args(["--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the child");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // The harness prints its own lines first, and with one test thread
        // `test child_library_server ... ` on the same line.
        let addr = loop {
            let line = match lines.recv_timeout(Duration::from_secs(10)) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    panic!("the child printed no `listening on` line within 10 s");
                }
            };
            if let Some((_, addr)) = line.split_once("listening on ") {
                break addr.parse().expect("IP:PORT");
            }
        };
        LibraryServer { child, addr, lines }
    }
}

impl Drop for LibraryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// The library with a connection maximum above what the descriptor limit
// allows: accepting fails with EMFILE, the acceptor backs off without
// spinning, and recovers as clients leave.
#[test]
fn out_of_descriptors_the_library_backs_off_and_recovers() {
    let mut server = LibraryServer::start();
    exhaust_and_recover(server.addr, server.child.id());

    let status = Command::new("kill")
        .arg("-INT")
        .arg(server.child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -INT failed");
    let status = support::wait_child(&mut server.child, Duration::from_secs(10), "the child");
    // The reader ends, and the channel disconnects, at the end of the pipe.
    let mut output = Vec::new();
    while let Ok(line) = server.lines.recv_timeout(Duration::from_secs(5)) {
        output.push(line);
    }
    let output = output.join("\n");
    // The child asserts on its report; a failed assertion fails its run.
    assert!(status.success(), "{status}: {output}");
    assert!(output.contains("report: drained in"), "{output}");
    assert!(output.contains("0 unserved"), "{output}");
}
