//! The driver's own HTTP client, for what `wrk` cannot do: count answers per
//! connection, time one connection at a time, hold thousands of idle
//! connections and ask each of them again.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
pub const GET_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";

/// Connects with a 2 s connect and write timeout and `read_timeout`.
pub fn connect(addr: SocketAddr, read_timeout: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(read_timeout.max(Duration::from_millis(1))))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    Ok(stream)
}

/// Reads one HTTP response into `buf` (head and `Content-Length` body).
/// Returns whether the connection stays open.
pub fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<bool> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let head = match response.parse(buf) {
            Ok(httparse::Status::Complete(head)) => head,
            Ok(httparse::Status::Partial) => continue,
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        };
        if response.code != Some(200) {
            let status = response.code.unwrap_or(0);
            return Err(io::Error::other(format!("status {status}")));
        }
        let mut length = 0;
        let mut keep = true;
        for h in response.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                length = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
            }
            if h.name.eq_ignore_ascii_case("connection") && h.value.eq_ignore_ascii_case(b"close") {
                keep = false;
            }
        }
        while buf.len() < head + length {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        return Ok(keep);
    }
}

/// One connection-per-request exchange: connect, send `GET` with
/// `Connection: close`, read the answer. Returns the time to the complete
/// answer. The time the server takes to close is not counted, but waited
/// for, so that the server closes first and the client's port is not left
/// in TIME_WAIT (thousands of sequential requests would use up the
/// ephemeral ports otherwise).
pub fn one_request(addr: SocketAddr, buf: &mut Vec<u8>) -> io::Result<Duration> {
    let start = Instant::now();
    let mut stream = connect(addr, Duration::from_secs(2))?;
    stream.write_all(GET_CLOSE)?;
    read_response(&mut stream, buf)?;
    let elapsed = start.elapsed();
    let mut rest = [0u8; 256];
    while matches!(stream.read(&mut rest), Ok(n) if n > 0) {}
    Ok(elapsed)
}

/// Connections opened at once by [`IdleConnections::open`]: well inside
/// the listen backlog (the servers ask for 128 to 1024).
pub const BATCH: usize = 100;

/// Idle keep-alive connections, each answered once.
#[derive(Debug, Default)]
pub struct IdleConnections {
    pub streams: Vec<TcpStream>,
    /// How many connections were opened.
    pub opened: usize,
    /// How many of them answered their first request.
    pub answered: usize,
}

impl IdleConnections {
    /// Opens `n` connections, one request each, and keeps them open.
    /// They are opened in batches of [`BATCH`]: connect a batch, send its
    /// requests, then read its answers, so the server can take many per
    /// wake-up (one at a time, a `poll(2)` server with 10,000 connections
    /// needs minutes for this). Stops at the first connection that cannot
    /// be opened (out of descriptors or ports), and says why.
    pub fn open(addr: SocketAddr, n: usize) -> (IdleConnections, Option<io::Error>) {
        let mut idle = IdleConnections::default();
        let mut buf = Vec::new();
        while idle.opened < n {
            let first = idle.streams.len();
            let mut error = None;
            for _ in 0..BATCH.min(n - idle.opened) {
                match connect(addr, Duration::from_secs(5)) {
                    Ok(stream) => idle.streams.push(stream),
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
                idle.opened += 1;
            }
            let batch = &mut idle.streams[first..];
            let sent: Vec<bool> = batch.iter_mut().map(|s| s.write_all(GET).is_ok()).collect();
            for (stream, sent) in batch.iter_mut().zip(sent) {
                if sent && read_response(stream, &mut buf).is_ok() {
                    idle.answered += 1;
                }
            }
            if error.is_some() {
                return (idle, error);
            }
        }
        (idle, None)
    }

    /// Sends a second request on every connection, then reads every answer:
    /// how many answered. All requests go out first, so a slow server is
    /// asked all at once rather than one round trip at a time.
    pub fn ask_again(&mut self) -> usize {
        let mut sent = vec![false; self.streams.len()];
        for (stream, sent) in self.streams.iter_mut().zip(&mut sent) {
            *sent = stream.write_all(GET).is_ok();
        }
        let mut buf = Vec::new();
        let mut answered = 0;
        for (stream, sent) in self.streams.iter_mut().zip(sent) {
            if sent && read_response(stream, &mut buf).is_ok() {
                answered += 1;
            }
        }
        answered
    }
}
