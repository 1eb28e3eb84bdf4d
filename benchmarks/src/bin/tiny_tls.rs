//! Peer server "tiny-tls": `tiny_http` 0.12 with its `ssl-rustls` feature,
//! answering every request with `Hello, world!` over HTTPS from a fixed
//! number of request threads, like `tiny.rs` over plain HTTP. tiny_http
//! builds its own rustls `ServerConfig` (rustls 0.20's safe defaults: TLS
//! 1.3 and 1.2, an in-memory session cache, TLS 1.3 tickets), so nothing
//! here chooses its TLS settings. It has no graceful shutdown: SIGINT ends
//! the process.
//!
//! `cargo run --release -p graceful-server-benchmarks --bin tiny_tls -- --addr 127.0.0.1:0 --workers 4 --tls-cert cert.pem --tls-key key.pem`

use std::io::{self, Write};
use std::sync::Arc;
use std::thread;

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut addr = "127.0.0.1:7878".to_string();
    let mut workers = 4;
    let mut cert = None;
    let mut key = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().unwrap_or(addr),
            "--workers" => workers = args.next().and_then(|n| n.parse().ok()).unwrap_or(workers),
            "--tls-cert" => cert = args.next(),
            "--tls-key" => key = args.next(),
            other => eprintln!("tiny_tls: ignoring {other:?}"),
        }
    }
    let (Some(cert), Some(key)) = (cert, key) else {
        eprintln!("tiny_tls: needs --tls-cert FILE --tls-key FILE (PEM)");
        std::process::exit(2);
    };
    let ssl = tiny_http::SslConfig {
        certificate: std::fs::read(&cert).map_err(|e| format!("{cert}: {e}"))?,
        private_key: std::fs::read(&key).map_err(|e| format!("{key}: {e}"))?,
    };
    let server = Arc::new(tiny_http::Server::https(&addr, ssl)?);
    let local = server
        .server_addr()
        .to_ip()
        .ok_or("tiny_http is not listening on an IP address")?;
    println!("listening on {local}");
    io::stdout().flush()?;
    let header =
        tiny_http::Header::from_bytes("Content-Type", "text/plain").map_err(|()| "bad header")?;
    let threads: Vec<_> = (0..workers)
        .map(|id| {
            let server = Arc::clone(&server);
            let header = header.clone();
            thread::Builder::new()
                .name(format!("worker-{id}"))
                .spawn(move || {
                    for request in server.incoming_requests() {
                        let response = tiny_http::Response::from_string("Hello, world!")
                            .with_header(header.clone());
                        let _ = request.respond(response);
                    }
                })
        })
        .collect::<Result<_, _>>()?;
    for thread in threads {
        let _ = thread.join();
    }
    Ok(())
}
