//! Peer server "hyper": hyper 1 (HTTP/1.1 only, keep-alive on, hyper's
//! defaults otherwise) on a tokio current-thread runtime, so the whole
//! server runs on one thread and one core: the event-loop design at its
//! leanest in Rust. Answers `GET /` (and every other request) with
//! `Hello, world!` and the same headers as the other peers. It has no
//! graceful shutdown: SIGINT ends the process.
//!
//! `cargo run --release -p graceful-server-benchmarks --bin hyper -- --addr 127.0.0.1:0 --workers 4`
//! (`--workers` is accepted for a uniform command line and ignored).

use std::convert::Infallible;
use std::io::{self, Write};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

const BODY: &str = "Hello, world!";

async fn hello(_request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // hyper adds `Content-Length` (the body's size is known) and `Date`.
    let mut response = Response::new(Full::new(Bytes::from_static(BODY.as_bytes())));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}

fn main() -> io::Result<()> {
    let mut addr = "127.0.0.1:7878".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().unwrap_or(addr),
            // One thread: the runtime is current-thread.
            "--workers" => {
                args.next();
            }
            other => eprintln!("hyper: ignoring {other:?}"),
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        println!("listening on {}", listener.local_addr()?);
        io::stdout().flush()?;
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            // A task per connection, on the same (only) thread.
            tokio::task::spawn(async move {
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service_fn(hello))
                    .await;
            });
        }
    })
}
