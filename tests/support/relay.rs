//! A TCP relay that stands in for a network: it listens on `127.0.0.1:0`,
//! connects each client to a target, and forwards every chunk in each
//! direction after a fixed one-way delay (the kernel here has no `tc netem`).
//! With 40 ms a request and its response take 80 ms, as across a country.
//!
//! The ends of a connection are delayed too, in order with the data:
//!
//! - end of file: a side that shuts down its writing (or closes) is passed on
//!   as `shutdown(Write)` of the other side after the delay, so half-closes
//!   work;
//! - reset: a side whose read fails (a reset) makes the relay reset the other
//!   side after the delay. On unix that is a real reset: `SO_LINGER` 0 (via
//!   libc), then the socket is closed. Elsewhere it is `shutdown(Both)`, an
//!   end of file rather than a reset.
//!
//! Per connection, each direction has a reader thread (which stamps each
//! chunk with the time it arrived) and a writer thread (which sends it when
//! that time plus the delay has come), so chunks in flight overlap as on a
//! real link. Every socket has timeouts, and dropping the relay stops every
//! thread and closes every connection.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::IO_TIMEOUT;

/// How often a thread waiting on a socket or a channel looks at the stop
/// flag: how long dropping the relay takes, at most (plus the delay).
const POLL: Duration = Duration::from_millis(50);

/// What a reader saw, for the writer of the other side to repeat.
enum Chunk {
    Data(Vec<u8>),
    Eof,
    Reset,
}

/// A running relay; stops when dropped.
pub struct Relay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Relay {
    /// Relays connections to `target`, delaying everything by `one_way`.
    pub fn start(target: SocketAddr, one_way: Duration) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        let addr = listener.local_addr().expect("the relay's address");
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let stop = Arc::clone(&stop);
            thread::Builder::new()
                .name("relay".into())
                .spawn(move || accept(&listener, target, one_way, &stop))
                .expect("spawn the relay")
        };
        Relay {
            addr,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // `accept` has no timeout: a connection of our own wakes it up.
        let _ = TcpStream::connect_timeout(&self.addr, IO_TIMEOUT);
        if let Some(acceptor) = self.acceptor.take() {
            // Not `expect`: a panic in `drop` while a test fails would abort.
            let _ = acceptor.join();
        }
    }
}

/// Accepts until stopped, then waits for every connection's threads.
fn accept(listener: &TcpListener, target: SocketAddr, one_way: Duration, stop: &Arc<AtomicBool>) {
    let mut threads = Vec::new();
    for client in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        // A connection that cannot be relayed (the target refuses) is
        // dropped: its client sees an end of file.
        if let Ok(client) = client {
            if let Ok(pair) = relay(client, target, one_way, stop) {
                threads.extend(pair);
            }
        }
    }
    for thread in threads {
        let _ = thread.join();
    }
}

/// Connects `client` to `target` and starts its four threads.
fn relay(
    client: TcpStream,
    target: SocketAddr,
    one_way: Duration,
    stop: &Arc<AtomicBool>,
) -> io::Result<Vec<JoinHandle<()>>> {
    let server = TcpStream::connect_timeout(&target, IO_TIMEOUT)?;
    for stream in [&client, &server] {
        // Each chunk goes on at once, as it came, not merged by Nagle.
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(POLL))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
    }
    let (client_rx, server_rx) = (client.try_clone()?, server.try_clone()?);
    let mut threads = direction(client_rx, server, one_way, stop);
    threads.extend(direction(server_rx, client, one_way, stop));
    Ok(threads)
}

/// Forwards `from` to `to`: a reader and a writer thread.
fn direction(
    from: TcpStream,
    to: TcpStream,
    one_way: Duration,
    stop: &Arc<AtomicBool>,
) -> Vec<JoinHandle<()>> {
    let (tx, rx) = mpsc::channel();
    let (read_stop, write_stop) = (Arc::clone(stop), Arc::clone(stop));
    vec![
        thread::spawn(move || read(from, &tx, &read_stop)),
        thread::spawn(move || write(to, &rx, one_way, &write_stop)),
    ]
}

fn read(mut from: TcpStream, chunks: &Sender<(Instant, Chunk)>, stop: &AtomicBool) {
    let mut buf = vec![0; 64 * 1024];
    while !stop.load(Ordering::SeqCst) {
        let chunk = match from.read(&mut buf) {
            Ok(0) => Chunk::Eof,
            Ok(n) => Chunk::Data(buf[..n].to_vec()),
            Err(e) if is_timeout(&e) => continue, // the read timeout: look at `stop`
            Err(_) => Chunk::Reset,
        };
        let last = !matches!(chunk, Chunk::Data(_));
        // A send fails once the writer has given up (its side is gone).
        if chunks.send((Instant::now(), chunk)).is_err() || last {
            return;
        }
    }
}

fn write(
    mut to: TcpStream,
    chunks: &Receiver<(Instant, Chunk)>,
    one_way: Duration,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::SeqCst) {
        let (arrived, chunk) = match chunks.recv_timeout(POLL) {
            Ok(next) => next,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // The network's delay, counted from when the chunk arrived.
        thread::sleep((arrived + one_way).saturating_duration_since(Instant::now()));
        match chunk {
            Chunk::Data(bytes) => {
                if to.write_all(&bytes).is_err() {
                    return;
                }
            }
            Chunk::Eof => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Chunk::Reset => {
                reset_relayed(&to);
                return;
            }
        }
    }
}

/// Resets `to` once both of the relay's handles to it are closed: this
/// writer's (on return) and the other direction's reader's, woken here by
/// `shutdown(Read)` (it passes an end of file to the side that reset, which
/// is gone anyway).
fn reset_relayed(to: &TcpStream) {
    #[cfg(unix)]
    set_linger_zero(to);
    #[cfg(unix)]
    let _ = to.shutdown(Shutdown::Read);
    #[cfg(not(unix))]
    let _ = to.shutdown(Shutdown::Both);
}

/// Resets a connection, as wrk does with its idle ones at the end of a run:
/// `SO_LINGER` 0 makes the close send a reset instead of an end of file.
#[cfg(unix)]
pub fn reset(stream: TcpStream) {
    set_linger_zero(&stream);
    drop(stream);
}

/// Makes closing `stream` send a reset.
#[cfg(unix)]
fn set_linger_zero(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor, and a pointer to a `linger` of the
    // given length, as SO_LINGER expects.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_LINGER)");
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}
