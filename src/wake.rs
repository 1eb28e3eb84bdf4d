//! Wake-ups: how one thread interrupts another's readiness wait.
//!
//! A wake-up is a counter the sleeper's wait watches: an `eventfd` on Linux
//! and Android (one descriptor, shared by both ends), elsewhere a byte
//! written to a connected pair of sockets (Unix sockets on unix, loopback
//! TCP sockets on Windows, which has no socket pair in std). Unlike a signal
//! or a condition variable it cannot be lost: it stays readable until the
//! sleeper drains it, so a wake-up sent just before the sleeper starts
//! waiting still ends that wait. Both ends are nonblocking; a full counter
//! or buffer means a wake-up is already pending, which is all the sender
//! wants.
//!
//! The acceptor has one, and so does the leader of the workers' `poll(2)`
//! wait; the workers themselves have none (they share one readiness wait).

use std::io::{self, Read, Write};
use std::sync::Arc;

#[cfg(not(any(target_os = "linux", target_os = "android")))]
use crate::sys::{socket_pair, Socket};
use crate::sys::{AsSource, Borrowed};

/// The sending end's file: the `eventfd` itself.
#[cfg(any(target_os = "linux", target_os = "android"))]
type Sender = std::fs::File;
/// The sending end's file: one end of the pair.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
type Sender = Socket;

/// The sending end; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Waker {
    sender: Arc<Sender>,
}

impl Waker {
    /// Ends the sleeper's current or next wait.
    pub(crate) fn wake(&self) {
        // `WouldBlock`: the counter or buffer is full of earlier wake-ups,
        // so the sleeper will wake anyway. Any other error means the
        // sleeper is gone. An `eventfd` adds the 8-byte number written.
        let _ = (&*self.sender).write(&WAKE_UP);
    }
}

/// What one wake-up writes: 1 for an `eventfd`'s counter, one byte to a
/// socket.
#[cfg(any(target_os = "linux", target_os = "android"))]
const WAKE_UP: [u8; 8] = 1u64.to_ne_bytes();
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const WAKE_UP: [u8; 1] = [1];

/// The receiving end, watched by the sleeper.
#[derive(Debug)]
pub(crate) struct WakeReceiver {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    counter: Arc<std::fs::File>,
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    socket: Socket,
}

impl WakeReceiver {
    /// Reads every pending wake-up, so that the next wait sleeps again.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(crate) fn drain(&self) {
        // One read takes the whole counter and resets it to zero.
        let mut count = [0; 8];
        let _ = (&*self.counter).read(&mut count);
    }

    /// Reads every pending wake-up, so that the next wait sleeps again.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
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

    /// The descriptor to wait on.
    pub(crate) fn as_source(&self) -> Borrowed<'_> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        return self.counter.as_source();
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        return self.socket.as_source();
    }
}

/// A new wake-up channel: one `eventfd`.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn channel() -> io::Result<(Waker, WakeReceiver)> {
    let counter = Arc::new(std::fs::File::from(crate::sys::eventfd()?));
    Ok((
        Waker {
            sender: Arc::clone(&counter),
        },
        WakeReceiver { counter },
    ))
}

/// A new wake-up channel: a socket pair.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn channel() -> io::Result<(Waker, WakeReceiver)> {
    let (tx, rx) = socket_pair()?;
    tx.set_nonblocking(true)?;
    rx.set_nonblocking(true)?;
    Ok((
        Waker {
            sender: Arc::new(tx),
        },
        WakeReceiver { socket: rx },
    ))
}

/// How many descriptors one wake-up channel holds.
pub(crate) const DESCRIPTORS: u64 = if cfg!(any(target_os = "linux", target_os = "android")) {
    1
} else {
    2
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys;
    use std::time::Duration;

    #[test]
    fn a_wake_before_the_wait_is_not_lost_and_drain_rearms() {
        let (waker, receiver) = channel().expect("wake channel");
        for _ in 0..1000 {
            waker.wake(); // more than fits in the buffer: must not block
        }
        let woken = sys::wait_readable(receiver.as_source(), Some(Duration::from_secs(5)));
        assert!(woken.expect("wait"));
        receiver.drain();
        let woken = sys::wait_readable(receiver.as_source(), Some(Duration::ZERO));
        assert!(!woken.expect("wait"), "drained");
    }
}
