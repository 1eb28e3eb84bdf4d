//! What a forced shutdown does with a handler that cannot be interrupted.
//!
//! Every connection's handler blocks for ever on a channel that never
//! delivers: shutting down its socket cannot wake it. At shutdown the drain
//! timeout expires, the force grace passes, and the server returns anyway,
//! reporting the thread it left behind. Exit status 3 (forced), as the echo
//! binary.
//!
//! `cargo run --example stuck -- [--addr ADDR] [--drain-timeout SECS]`

use std::process::ExitCode;
use std::time::Duration;

use graceful_server::Server;

fn main() -> ExitCode {
    let mut addr = "127.0.0.1:7880".to_string();
    let mut drain_timeout = Duration::from_secs(1);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next();
        match (flag.as_str(), value) {
            ("--addr", Some(value)) => addr = value,
            ("--drain-timeout", Some(value)) => match value.parse::<f64>() {
                Ok(secs) if secs >= 0.0 && secs.is_finite() => {
                    drain_timeout = Duration::from_secs_f64(secs);
                }
                _ => return usage(),
            },
            _ => return usage(),
        }
    }
    let server = match Server::builder(addr.as_str())
        .drain_timeout(Some(drain_timeout))
        .force_grace(Duration::from_millis(500))
        .build()
    {
        Ok(server) => server,
        Err(error) => {
            eprintln!("stuck: {error}");
            return ExitCode::from(1);
        }
    };
    if let Err(error) = server.shutdown_handle().install_ctrl_c() {
        eprintln!("stuck: {error}");
        return ExitCode::from(1);
    }
    println!("listening on {}", server.local_addr());
    let (_never_sent, never) = crossbeam_channel::bounded::<()>(0);
    let report = server.serve(move |_conn: &mut graceful_server::Connection| {
        // Not a socket: the server's shutdown of the stream cannot end this.
        let _ = never.recv();
        Ok(graceful_server::Next::Close)
    });
    match report {
        Ok(report) => {
            eprintln!("{report}");
            ExitCode::from(if report.forced { 3 } else { 0 })
        }
        Err(error) => {
            eprintln!("stuck: {error}");
            ExitCode::from(1)
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: stuck [--addr ADDR] [--drain-timeout SECS]");
    ExitCode::from(2)
}
