//! Peer server "blocking": the Rust Book's (chapter 21) design, with the same
//! minimal keep-alive HTTP as the root crate's `examples/http.rs`.
//!
//! A blocking `accept` loop feeds a fixed pool of workers over an unbounded
//! `mpsc` channel behind a `Mutex`, exactly as the Book builds it. It pays
//! no polling cost (the acceptor sleeps inside `accept`, a worker inside
//! `read` on its one connection), so it is the upper bound for a std
//! thread-pool design; the price is that a keep-alive connection holds its
//! worker until the client hangs up. It has no graceful shutdown: SIGINT
//! ends the process.
//!
//! `cargo run --release -p graceful-server-benchmarks --bin blocking -- --addr 127.0.0.1:0 --workers 4`

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The Book's `ThreadPool`: N workers sharing one receiver.
struct ThreadPool {
    sender: mpsc::Sender<Job>,
}

impl ThreadPool {
    fn new(size: usize) -> io::Result<ThreadPool> {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for id in 0..size {
            let receiver = Arc::clone(&receiver);
            thread::Builder::new()
                .name(format!("worker-{id}"))
                .spawn(move || loop {
                    // The guard is a temporary, dropped before the job runs.
                    let job = receiver.lock().map(|r| r.recv());
                    match job {
                        Ok(Ok(job)) => job(),
                        _ => break,
                    }
                })?;
        }
        Ok(ThreadPool { sender })
    }

    fn execute(&self, job: impl FnOnce() + Send + 'static) {
        // Cannot fail: the workers hold the receiver for the process's life.
        let _ = self.sender.send(Box::new(job));
    }
}

const HELLO: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!";
const HELLO_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, world!";
const BAD: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Serves requests on one connection until the client closes it or asks to.
fn handle(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; 8192];
    let mut filled = 0;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf[..filled]) {
            Ok(httparse::Status::Complete(len)) => {
                let close = request.version == Some(0)
                    || request.headers.iter().any(|h| {
                        h.name.eq_ignore_ascii_case("connection")
                            && h.value.eq_ignore_ascii_case(b"close")
                    });
                stream.write_all(if close { HELLO_CLOSE } else { HELLO })?;
                if close {
                    return Ok(());
                }
                buf.copy_within(len..filled, 0);
                filled -= len;
                continue;
            }
            Ok(httparse::Status::Partial) if filled < buf.len() => {}
            _ => return stream.write_all(BAD),
        }
        let n = stream.read(&mut buf[filled..])?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
    }
}

fn main() -> io::Result<()> {
    let mut addr = "127.0.0.1:7878".to_string();
    let mut workers = 4;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().unwrap_or(addr),
            "--workers" => workers = args.next().and_then(|n| n.parse().ok()).unwrap_or(workers),
            other => eprintln!("blocking: ignoring {other:?}"),
        }
    }
    let listener = TcpListener::bind(&addr)?;
    let pool = ThreadPool::new(workers)?;
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;
    for stream in listener.incoming() {
        // The Book unwraps here; a failed accept is skipped instead.
        let Ok(stream) = stream else { continue };
        pool.execute(move || {
            let _ = handle(stream);
        });
    }
    Ok(())
}
