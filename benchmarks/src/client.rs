//! The driver's own HTTP client, for what `wrk` cannot do: count answers per
//! connection, time one connection at a time, hold thousands of idle
//! connections and ask each of them again, speak over a Unix domain socket.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
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

/// Connects to the Unix domain socket at `path` with a 2 s connect and write
/// timeout and `read_timeout`. `UnixStream::connect` has no timeout, and a
/// connect to a full backlog waits for as long as the socket's send timeout
/// allows: so the socket is made, given its send timeout, and then
/// connected.
pub fn connect_unix(path: &Path, read_timeout: Duration) -> io::Result<UnixStream> {
    // SAFETY: a zeroed sockaddr_un is valid (AF_UNSPEC, empty path); the
    // path is copied inside sun_path with room for its NUL.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("socket path too long: {}", path.display()),
        ));
    }
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: plain syscall; a non-negative result is a new descriptor that
    // nothing else owns.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned here alone.
    let stream = UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) });
    // SO_SNDTIMEO before connect: the connect timeout.
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    // SAFETY: `addr` is a valid sockaddr_un of at least `len` bytes; `fd`
    // is open for as long as `stream` lives.
    let connected = unsafe {
        libc::connect(
            fd,
            (&addr as *const libc::sockaddr_un).cast(),
            len as libc::socklen_t,
        )
    };
    if connected != 0 {
        return Err(io::Error::last_os_error());
    }
    stream.set_read_timeout(Some(read_timeout.max(Duration::from_millis(1))))?;
    Ok(stream)
}

/// Where the own client connects: loopback TCP or a Unix domain socket.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// A connection to an [`Endpoint`].
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Endpoint {
    /// Connects like [`connect`] or [`connect_unix`]: 2 s to connect and
    /// per write, `read_timeout` per read.
    pub fn connect(&self, read_timeout: Duration) -> io::Result<Stream> {
        Ok(match self {
            Endpoint::Tcp(addr) => Stream::Tcp(connect(*addr, read_timeout)?),
            Endpoint::Unix(path) => Stream::Unix(connect_unix(path, read_timeout)?),
        })
    }
}

impl Stream {
    pub fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        let timeout = Some(timeout.max(Duration::from_millis(1)));
        match self {
            Stream::Tcp(s) => s.set_read_timeout(timeout),
            Stream::Unix(s) => s.set_read_timeout(timeout),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads one HTTP response into `buf` (head and `Content-Length` body).
/// Returns whether the connection stays open.
pub fn read_response(stream: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<bool> {
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
    one_request_to(&Endpoint::Tcp(addr), buf)
}

/// [`one_request`] to any [`Endpoint`].
pub fn one_request_to(endpoint: &Endpoint, buf: &mut Vec<u8>) -> io::Result<Duration> {
    let start = Instant::now();
    let mut stream = endpoint.connect(Duration::from_secs(2))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

    #[test]
    fn one_request_over_a_unix_socket() {
        let dir = std::env::temp_dir().join(format!("gsb-client-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("creates the directory");
        let path = dir.join("t.sock");
        let listener = UnixListener::bind(&path).expect("binds");
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accepts");
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                s.read_exact(&mut byte).expect("reads the request");
                head.push(byte[0]);
            }
            s.write_all(ANSWER).expect("answers");
            head
        });
        let mut buf = Vec::new();
        let endpoint = Endpoint::Unix(path.clone());
        one_request_to(&endpoint, &mut buf).expect("answered");
        assert!(buf.ends_with(b"ok"));
        assert_eq!(server.join().expect("server thread"), GET_CLOSE);
        // Nobody listens any more: refused, at once.
        assert!(endpoint.connect(Duration::from_secs(1)).is_err());
        std::fs::remove_dir_all(&dir).expect("removes the directory");
    }

    #[test]
    fn a_unix_path_too_long_is_refused() {
        let path = PathBuf::from(format!("/tmp/{}", "x".repeat(200)));
        let e = connect_unix(&path, Duration::from_secs(1)).expect_err("too long");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
