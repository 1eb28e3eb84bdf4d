//! Peer server "tiny": `tiny_http` 0.12 answering `GET /` (and every other
//! request) with `Hello, world!`, and `POST /echo` with the request body,
//! from a fixed number of request threads (tiny_http adds its own threads
//! for reading connections). It has no graceful shutdown: SIGINT ends the
//! process.
//!
//! `cargo run --release -p graceful-server-benchmarks --bin tiny -- --addr 127.0.0.1:0 --workers 4`

use std::io::{self, Write};
use std::sync::Arc;
use std::thread;

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut addr = "127.0.0.1:7878".to_string();
    let mut workers = 4;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().unwrap_or(addr),
            "--workers" => workers = args.next().and_then(|n| n.parse().ok()).unwrap_or(workers),
            other => eprintln!("tiny: ignoring {other:?}"),
        }
    }
    let server = Arc::new(tiny_http::Server::http(&addr)?);
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
                    for mut request in server.incoming_requests() {
                        if *request.method() == tiny_http::Method::Post && request.url() == "/echo"
                        {
                            let mut body = Vec::new();
                            let response = match request.as_reader().read_to_end(&mut body) {
                                Ok(_) => tiny_http::Response::from_data(body),
                                Err(_) => {
                                    tiny_http::Response::from_data(Vec::new()).with_status_code(400)
                                }
                            };
                            let _ = request.respond(response);
                            continue;
                        }
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
