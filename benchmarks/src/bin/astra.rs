//! Peer server "astra": astra 0.4, hyper's HTTP/1.1 connection state machine
//! driven by blocking worker threads (one `mio` reactor thread wakes them),
//! with at most `--workers` workers: a connection is a task that a worker
//! runs until it would block. Answers `GET /` (and every other request)
//! with `Hello, world!` and the same headers as the other peers. It has no
//! graceful shutdown: SIGINT ends the process.
//!
//! `cargo run --release -p graceful-server-benchmarks --bin astra -- --addr 127.0.0.1:0 --workers 4`

use std::io::{self, Write};

use astra::{Body, Response, ResponseBuilder, Server};

const BODY: &str = "Hello, world!";

fn main() -> io::Result<()> {
    let mut addr = "127.0.0.1:7878".to_string();
    let mut workers = 4;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().unwrap_or(addr),
            "--workers" => workers = args.next().and_then(|n| n.parse().ok()).unwrap_or(workers),
            other => eprintln!("astra: ignoring {other:?}"),
        }
    }
    // `bind` panics if the address is taken, as astra documents.
    let server = Server::bind(&addr)
        .http1_only()
        .http1_keep_alive(true)
        .max_workers(workers);
    println!("listening on {}", server.local_addr()?);
    io::stdout().flush()?;
    server.serve(|_request, _info| -> Response {
        ResponseBuilder::new()
            .header("Content-Type", "text/plain")
            .header("Content-Length", BODY.len())
            .body(Body::new(BODY))
            .unwrap_or_else(|_| Response::new(Body::new(BODY)))
    })
}
