//! The kinds of listener, in one place: TCP, and Unix domain sockets on
//! unix. What the rest of the crate sees of them: an [`Addr`] (where a
//! listener listens, or where a client is), a [`Stream`] (an accepted
//! connection's socket), and the crate's `Listener` (accept until
//! `WouldBlock`, and the socket file of a Unix listener).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
#[cfg(unix)]
use std::os::unix::net::{UnixListener, UnixStream};
#[cfg(unix)]
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::sys::{self, AsSource, Borrowed};

/// Where a listener listens, or where a client connects from.
///
/// ```
/// use graceful_server::{Addr, Server};
///
/// # fn main() -> Result<(), graceful_server::Error> {
/// let server = Server::builder("127.0.0.1:0").build()?;
/// let addr = &server.local_addrs()[0];
/// assert!(matches!(addr, Addr::Tcp(a) if a.ip().is_loopback()));
/// assert!(addr.to_string().starts_with("127.0.0.1:"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Addr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix domain socket: the path of a listener, or of a client that
    /// bound one (`None`: clients usually do not, and are unnamed).
    #[cfg(unix)]
    Unix(Option<PathBuf>),
}

impl Addr {
    /// The TCP address, if this is one.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            Addr::Tcp(addr) => Some(*addr),
            #[cfg(unix)]
            Addr::Unix(_) => None,
        }
    }

    /// The path, if this is a named Unix socket.
    #[cfg(unix)]
    pub fn unix_path(&self) -> Option<&Path> {
        match self {
            Addr::Unix(path) => path.as_deref(),
            Addr::Tcp(_) => None,
        }
    }
}

/// `IP:PORT` for TCP (as `SocketAddr` shows it), `unix:PATH` for a Unix
/// socket, `unix:` alone for an unnamed one.
impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp(addr) => write!(f, "{addr}"),
            #[cfg(unix)]
            Addr::Unix(Some(path)) => write!(f, "unix:{}", path.display()),
            #[cfg(unix)]
            Addr::Unix(None) => f.write_str("unix:"),
        }
    }
}

impl From<SocketAddr> for Addr {
    fn from(addr: SocketAddr) -> Addr {
        Addr::Tcp(addr)
    }
}

/// An accepted connection's socket, as [`Connection::stream`](crate::Connection::stream)
/// shows it: to change its options or read its addresses. Read and write
/// through the `Connection`, not through this.
#[derive(Debug)]
#[non_exhaustive]
pub enum Stream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A Unix domain socket connection.
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Stream {
    /// The TCP stream, if this is one.
    pub fn as_tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Tcp(stream) => Some(stream),
            #[cfg(unix)]
            Stream::Unix(_) => None,
        }
    }

    /// The Unix stream, if this is one.
    #[cfg(unix)]
    pub fn as_unix(&self) -> Option<&UnixStream> {
        match self {
            Stream::Unix(stream) => Some(stream),
            Stream::Tcp(_) => None,
        }
    }

    /// Shuts down reading, writing or both, as the streams' own
    /// `shutdown`.
    ///
    /// # Errors
    ///
    /// The system's, e.g. when the connection is already gone.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.shutdown(how),
            #[cfg(unix)]
            Stream::Unix(stream) => stream.shutdown(how),
        }
    }

    /// Sets the read timeout, as the streams' own `set_read_timeout`.
    ///
    /// # Errors
    ///
    /// A zero duration, or the system's.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.set_read_timeout(timeout),
            #[cfg(unix)]
            Stream::Unix(stream) => stream.set_read_timeout(timeout),
        }
    }

    /// Sets the write timeout, as the streams' own `set_write_timeout`.
    ///
    /// # Errors
    ///
    /// A zero duration, or the system's.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.set_write_timeout(timeout),
            #[cfg(unix)]
            Stream::Unix(stream) => stream.set_write_timeout(timeout),
        }
    }

    // Linux's `accept4` returns blocking sockets, and its nonblocking reads
    // need no mode switch: unused there.
    #[cfg_attr(any(target_os = "linux", target_os = "android"), allow(dead_code))]
    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.set_nonblocking(nonblocking),
            #[cfg(unix)]
            Stream::Unix(stream) => stream.set_nonblocking(nonblocking),
        }
    }

    /// Reads what has arrived into `buf` without blocking: `WouldBlock`
    /// when nothing has. The stream stays blocking for everyone else: on
    /// unix one `recv` with `MSG_DONTWAIT`; Winsock has no such flag, so
    /// there the socket is switched to nonblocking mode for the read.
    pub(crate) fn recv_nonblocking(&self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(unix)]
        return crate::sys::recv_nonblocking(self.as_source(), buf);
        #[cfg(windows)]
        {
            self.set_nonblocking(true)?;
            let result = (&*self).read(buf);
            self.set_nonblocking(false)?;
            result
        }
    }

    /// Writes what the send buffer takes of `buf` now, without blocking:
    /// `WouldBlock` when it is full.
    pub(crate) fn send_nonblocking(&self, buf: &[u8]) -> io::Result<usize> {
        #[cfg(unix)]
        return crate::sys::send_nonblocking(self.as_source(), buf);
        #[cfg(windows)]
        {
            self.set_nonblocking(true)?;
            let result = (&*self).write(buf);
            self.set_nonblocking(false)?;
            result
        }
    }

    /// A blocking read (bounded by the socket's read timeout), or, with a
    /// deadline, one that fails with `TimedOut` once the deadline has
    /// passed without input.
    pub(crate) fn read_by(&self, out: &mut [u8], deadline: Option<Instant>) -> io::Result<usize> {
        match deadline {
            None => (&*self).read(out),
            Some(deadline) => {
                self.retry_until(|| deadline, Wait::Readable, |s| s.recv_nonblocking(out))
            }
        }
    }

    /// A blocking write (bounded by the socket's write timeout), or, with a
    /// deadline, one that fails with `TimedOut` once the deadline has
    /// passed with the socket still full.
    pub(crate) fn write_by(&self, buf: &[u8], deadline: Option<Instant>) -> io::Result<usize> {
        match deadline {
            None => (&*self).write(buf),
            Some(deadline) => {
                self.retry_until(|| deadline, Wait::Writable, |s| s.send_nonblocking(buf))
            }
        }
    }

    /// [`write_by`](Self::write_by) with a deadline, which `deadline` works
    /// out only if the socket is full: a write that goes at once, the usual
    /// case, reads no clock for it.
    pub(crate) fn write_by_lazily(
        &self,
        buf: &[u8],
        deadline: impl FnOnce() -> Instant,
    ) -> io::Result<usize> {
        self.retry_until(deadline, Wait::Writable, |s| s.send_nonblocking(buf))
    }

    /// Tries `attempt` (a nonblocking read or write) until it does not
    /// find the socket empty or full, waiting for it in between, until
    /// the deadline, which `deadline` gives when first needed.
    fn retry_until(
        &self,
        deadline: impl FnOnce() -> Instant,
        wait: Wait,
        mut attempt: impl FnMut(&Stream) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let mut deadline = Some(deadline);
        let mut due = None;
        loop {
            match attempt(self) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Worked out at the first wait: most attempts need none.
                    let due = *due.get_or_insert_with(|| {
                        deadline
                            .take()
                            .map_or_else(Instant::now, |deadline| deadline())
                    });
                    let left = due.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(past_deadline());
                    }
                    match wait {
                        Wait::Readable => sys::wait_readable(self.as_source(), Some(left))?,
                        Wait::Writable => sys::wait_writable(self.as_source(), left)?,
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }
}

/// What [`Stream::retry_until`] waits for.
#[derive(Clone, Copy)]
enum Wait {
    Readable,
    Writable,
}

/// The error of a read or write that would have waited past the
/// connection's deadline.
pub(crate) fn past_deadline() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the connection's deadline has passed",
    )
}

/// Whether `error` says the client hung up (reset, or closed with data
/// unread) rather than that the connection failed in another way.
pub(crate) fn is_hang_up(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match *self {
            Stream::Tcp(stream) => (&*stream).read(buf),
            #[cfg(unix)]
            Stream::Unix(stream) => (&*stream).read(buf),
        }
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match *self {
            Stream::Tcp(stream) => (&*stream).write(buf),
            #[cfg(unix)]
            Stream::Unix(stream) => (&*stream).write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match *self {
            Stream::Tcp(stream) => (&*stream).write_vectored(bufs),
            #[cfg(unix)]
            Stream::Unix(stream) => (&*stream).write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(unix)]
impl std::os::fd::AsFd for Stream {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Stream::Tcp(stream) => stream.as_fd(),
            Stream::Unix(stream) => stream.as_fd(),
        }
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsSocket for Stream {
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        match self {
            Stream::Tcp(stream) => stream.as_socket(),
        }
    }
}

/// A listening socket the acceptor accepts from.
#[derive(Debug)]
pub(crate) enum Listener {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix {
        socket: UnixListener,
        /// The socket file, removed when the listener closes; `None` for an
        /// inherited or adopted listener, whose file is not ours. Only held,
        /// for its `Drop`.
        #[allow(dead_code)]
        file: Option<SocketFile>,
    },
}

impl Listener {
    /// Accepts one connection; `WouldBlock` when none waits.
    pub(crate) fn accept(&self) -> io::Result<(Stream, Addr)> {
        match self {
            Listener::Tcp(listener) => {
                let (stream, peer) = listener.accept()?;
                Ok((Stream::Tcp(stream), Addr::Tcp(peer)))
            }
            #[cfg(unix)]
            Listener::Unix { socket, .. } => {
                let (stream, peer) = socket.accept()?;
                let path = peer.as_pathname().map(Path::to_path_buf);
                Ok((Stream::Unix(stream), Addr::Unix(path)))
            }
        }
    }

    pub(crate) fn local_addr(&self) -> io::Result<Addr> {
        match self {
            Listener::Tcp(listener) => listener.local_addr().map(Addr::Tcp),
            #[cfg(unix)]
            Listener::Unix { socket, .. } => {
                let addr = socket.local_addr()?;
                Ok(Addr::Unix(addr.as_pathname().map(Path::to_path_buf)))
            }
        }
    }

    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match self {
            Listener::Tcp(listener) => listener.set_nonblocking(nonblocking),
            #[cfg(unix)]
            Listener::Unix { socket, .. } => socket.set_nonblocking(nonblocking),
        }
    }

    pub(crate) fn as_source(&self) -> Borrowed<'_> {
        match self {
            Listener::Tcp(listener) => listener.as_source(),
            #[cfg(unix)]
            Listener::Unix { socket, .. } => socket.as_source(),
        }
    }

    /// Binds a Unix socket at `path`. A file already there is replaced only
    /// if nothing listens on it (a stale socket from a crashed run): a live
    /// server's socket is never taken. The file gets `mode` if given, and
    /// is removed when the listener closes.
    #[cfg(unix)]
    pub(crate) fn bind_unix(path: &Path, mode: Option<u32>) -> io::Result<Listener> {
        let socket = match UnixListener::bind(path) {
            Ok(socket) => socket,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                if UnixStream::connect(path).is_ok() {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        "a server already listens on this socket",
                    ));
                }
                // Refused (or not a socket at all): nobody listens. Only a
                // socket file is removed, never another kind of file.
                use std::os::unix::fs::FileTypeExt;
                if !std::fs::symlink_metadata(path)?.file_type().is_socket() {
                    return Err(e);
                }
                std::fs::remove_file(path)?;
                UnixListener::bind(path)?
            }
            Err(e) => return Err(e),
        };
        if let Some(mode) = mode {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        }
        let file = SocketFile::new(path)?;
        Ok(Listener::Unix {
            socket,
            file: Some(file),
        })
    }
}

/// A Unix socket file this server made: removed when dropped, if it is
/// still the same file (a server started after this one may have replaced
/// it with its own).
#[cfg(unix)]
#[derive(Debug)]
pub(crate) struct SocketFile {
    path: PathBuf,
    /// Device and inode, to recognise the file.
    id: (u64, u64),
}

#[cfg(unix)]
impl SocketFile {
    fn new(path: &Path) -> io::Result<SocketFile> {
        Ok(SocketFile {
            path: path.to_path_buf(),
            id: file_id(path)?,
        })
    }
}

#[cfg(unix)]
fn file_id(path: &Path) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

#[cfg(unix)]
impl Drop for SocketFile {
    fn drop(&mut self) {
        if file_id(&self.path).is_ok_and(|id| id == self.id) {
            // Gone already is as good.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
