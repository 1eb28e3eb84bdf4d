//! Peer server "ours-defaults": the crate's HTTP quick start with every
//! library default except `.workers(4)` (so no read or write timeout, the
//! default limits), plus the `POST /echo` route of the README's routing
//! example. Ctrl-c shuts it down gracefully.
//!
//! `cargo run --release -p graceful-server-benchmarks --bin quickstart -- --addr 127.0.0.1:0 --workers 4`

use std::io::{self, Write};

use graceful_server::http::{self, Response};
use graceful_server::Server;

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut addr = "127.0.0.1:8080".to_string();
    let mut workers = 4;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().unwrap_or(addr),
            "--workers" => workers = args.next().and_then(|n| n.parse().ok()).unwrap_or(workers),
            other => eprintln!("quickstart: ignoring {other:?}"),
        }
    }
    let server = Server::builder(addr.as_str()).workers(workers).build()?;
    server.shutdown_handle().install_ctrl_c()?;
    println!("listening on {}", server.local_addr());
    io::stdout().flush()?;
    let report = server.serve(http::handler(|req| match (req.method(), req.path()) {
        ("POST", "/echo") => match req.read_body() {
            Ok(body) => Response::new(200).body(body),
            Err(_) => Response::new(400),
        },
        _ => Response::text("Hello, world!"),
    }))?;
    eprintln!("{report}");
    Ok(())
}
