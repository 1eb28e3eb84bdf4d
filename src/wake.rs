//! Wake-up sockets: how one thread interrupts another's readiness wait.
//!
//! A wake-up is one byte written to a connected pair of sockets whose other
//! end is in the sleeper's wait: Unix sockets on unix, loopback TCP sockets
//! on Windows (which has no socket pair in std). Unlike a signal or a
//! condition variable it cannot be lost: the byte stays readable until the
//! sleeper drains it, so a wake-up sent just before the sleeper starts
//! waiting still ends that wait. Both ends are nonblocking; a full buffer
//! means a wake-up is already pending, which is all the sender wants.

use std::io::{self, Read, Write};
use std::sync::Arc;

use crate::sys::{AsSource, Borrowed};

/// One end of a wake-up pair.
#[cfg(unix)]
pub(crate) type Socket = std::os::unix::net::UnixStream;
/// One end of a wake-up pair.
#[cfg(windows)]
pub(crate) type Socket = std::net::TcpStream;

/// The sending end; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Waker {
    socket: Arc<Socket>,
}

impl Waker {
    /// Ends the sleeper's current or next wait.
    pub(crate) fn wake(&self) {
        // `WouldBlock`: the buffer is full of earlier wake-ups, so the sleeper
        // will wake anyway. Any other error means the sleeper is gone.
        let _ = (&*self.socket).write(&[1]);
    }
}

/// The receiving end, watched by the sleeper.
#[derive(Debug)]
pub(crate) struct WakeReceiver {
    socket: Socket,
}

impl WakeReceiver {
    /// Reads every pending wake-up, so that the next wait sleeps again.
    pub(crate) fn drain(&self) {
        let mut buf = [0; 64];
        // Stops at `WouldBlock` (empty) or at end of file (every waker gone).
        while let Ok(n @ 1..) = (&self.socket).read(&mut buf) {
            // A short read empties a Unix socket, which saves a call; over
            // TCP (Windows) it does not prove the buffer empty.
            if cfg!(unix) && n < buf.len() {
                break;
            }
        }
    }

    /// The socket to wait on.
    pub(crate) fn as_source(&self) -> Borrowed<'_> {
        self.socket.as_source()
    }
}

/// A new wake-up channel.
pub(crate) fn channel() -> io::Result<(Waker, WakeReceiver)> {
    let (tx, rx) = socket_pair()?;
    tx.set_nonblocking(true)?;
    rx.set_nonblocking(true)?;
    Ok((
        Waker {
            socket: Arc::new(tx),
        },
        WakeReceiver { socket: rx },
    ))
}

/// A connected pair of Unix sockets.
#[cfg(unix)]
pub(crate) fn socket_pair() -> io::Result<(Socket, Socket)> {
    Socket::pair()
}

/// A connected pair of loopback TCP sockets, made with std alone: listen on
/// an ephemeral port of 127.0.0.1, connect, accept. Another local process
/// could connect to that port in between, so the accepted socket must be
/// ours: its peer is our connector's address. `TCP_NODELAY`, so that a
/// one-byte wake-up is sent at once rather than held back by Nagle's
/// algorithm until the previous one is acknowledged.
#[cfg(windows)]
pub(crate) fn socket_pair() -> io::Result<(Socket, Socket)> {
    use std::net::{Ipv4Addr, TcpListener};

    /// How many strangers' connections to skip before giving up.
    const ATTEMPTS: usize = 16;

    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let connector = Socket::connect(listener.local_addr()?)?;
    let ours = connector.local_addr()?;
    for _ in 0..ATTEMPTS {
        // Our connection completed its handshake before `connect` returned,
        // so it is in the backlog and this blocking accept cannot hang.
        let (accepted, peer) = listener.accept()?;
        if peer == ours {
            connector.set_nodelay(true)?;
            accepted.set_nodelay(true)?;
            return Ok((connector, accepted));
        }
        // Not ours: dropped, which closes it.
    }
    Err(io::Error::other(
        "wake-up socket pair: another process kept connecting to its port",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys;
    use std::time::Duration;

    #[test]
    fn a_wake_before_the_wait_is_not_lost_and_drain_rearms() {
        let (waker, receiver) = channel().expect("wake channel");
        let (_peer, conn) = socket_pair().expect("pair");
        for _ in 0..1000 {
            waker.wake(); // more than fits in the buffer: must not block
        }
        let ready = sys::wait_two(
            conn.as_source(),
            Some(receiver.as_source()),
            Some(Duration::from_secs(5)),
        )
        .expect("wait");
        assert!(ready.wake);
        receiver.drain();
        let ready = sys::wait_two(
            conn.as_source(),
            Some(receiver.as_source()),
            Some(Duration::ZERO),
        )
        .expect("wait");
        assert!(!ready.wake, "drained");
    }

    #[test]
    fn the_pair_is_connected_both_ways() {
        let (mut a, mut b) = socket_pair().expect("pair");
        a.write_all(b"ab").expect("write a");
        b.write_all(b"ba").expect("write b");
        let mut buf = [0; 2];
        b.read_exact(&mut buf).expect("read b");
        assert_eq!(&buf, b"ab");
        a.read_exact(&mut buf).expect("read a");
        assert_eq!(&buf, b"ba");
    }
}
