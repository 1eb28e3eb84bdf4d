//! B7: running out of file descriptors never ends the accept loop and never
//! makes it spin; the server recovers when descriptors are free again.
//!
//! The echo binary runs with a low descriptor limit (`ulimit -n`), so the
//! test process itself keeps its own limit.

mod support;

use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::Duration;

use support::{client, echo_binary, ServerProcess, IO_TIMEOUT};

/// Descriptor limit for the server: a handful for stdio, the listener and the
/// signal pipe, then room for about a dozen connections (two descriptors
/// each: the stream and the registry's clone).
const FD_LIMIT: u32 = 32;
const CLIENTS: usize = 40;

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

#[test]
fn out_of_descriptors_the_server_waits_and_recovers() {
    let mut command = Command::new("sh");
    command.arg("-c").arg(format!(
        "ulimit -n {FD_LIMIT} && exec \"$0\" --addr 127.0.0.1:0 --workers 64"
    ));
    command.arg(echo_binary());
    let mut server = ServerProcess::start_command(command);

    // More clients than the server has descriptors for; the handshake
    // completes in the kernel backlog whatever the server does.
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| client(server.addr)).collect();
    for (i, conn) in clients.iter_mut().enumerate() {
        conn.write_all(format!("{i:02}").as_bytes()).expect("write");
    }

    // The first one is served, so the server is up and accepting...
    let mut reply = [0; 2];
    std::io::Read::read_exact(&mut clients[0], &mut reply).expect("first echo");
    assert_eq!(&reply, b"00");
    // ...and while it is out of descriptors it must not spin: over one second
    // of exhaustion a busy loop would burn about a second of CPU.
    let before = cpu_ticks(server.pid());
    thread::sleep(Duration::from_secs(1));
    let burned = cpu_ticks(server.pid()) - before;
    assert!(burned < 30, "{burned} ticks of CPU in 1 s while exhausted");

    // Every client is served in turn as the earlier ones leave.
    for (i, mut conn) in clients.into_iter().enumerate().skip(1) {
        conn.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        let mut reply = [0; 2];
        std::io::Read::read_exact(&mut conn, &mut reply)
            .unwrap_or_else(|e| panic!("client {i} not served after recovery: {e}"));
        assert_eq!(reply, format!("{i:02}").as_bytes());
    }

    server.signal("INT");
    let status = server.wait_exit(Duration::from_secs(10));
    let stderr = server.stderr();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(&format!("{CLIENTS} accepted")), "{stderr}");
    assert!(stderr.contains("0 unserved"), "{stderr}");
}
