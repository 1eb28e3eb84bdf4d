//! Wake-up sockets: how one thread interrupts another's readiness wait.
//!
//! A wake-up is one byte written to a connected pair of Unix sockets whose
//! other end is in the sleeper's wait. Unlike a signal or a condition
//! variable it cannot be lost: the byte stays readable until the sleeper
//! drains it, so a wake-up sent just before the sleeper starts waiting still
//! ends that wait. Both ends are nonblocking; a full buffer means a wake-up is
//! already pending, which is all the sender wants.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

/// The sending end; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Waker {
    socket: Arc<UnixStream>,
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
    socket: UnixStream,
}

impl WakeReceiver {
    /// Reads every pending wake-up, so that the next wait sleeps again.
    pub(crate) fn drain(&self) {
        let mut buf = [0; 64];
        // Stops at `WouldBlock` (empty) or at end of file (every waker gone).
        while let Ok(n @ 1..) = (&self.socket).read(&mut buf) {
            if n < buf.len() {
                break;
            }
        }
    }
}

impl AsFd for WakeReceiver {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// A new wake-up channel.
pub(crate) fn channel() -> io::Result<(Waker, WakeReceiver)> {
    let (tx, rx) = UnixStream::pair()?;
    tx.set_nonblocking(true)?;
    rx.set_nonblocking(true)?;
    Ok((
        Waker {
            socket: Arc::new(tx),
        },
        WakeReceiver { socket: rx },
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
        let (conn, _peer) = UnixStream::pair().expect("pair");
        for _ in 0..1000 {
            waker.wake(); // more than fits in the buffer: must not block
        }
        let ready = sys::wait_two(
            conn.as_fd(),
            Some(receiver.as_fd()),
            Some(Duration::from_secs(5)),
        )
        .expect("wait");
        assert!(ready.wake);
        receiver.drain();
        let ready = sys::wait_two(conn.as_fd(), Some(receiver.as_fd()), Some(Duration::ZERO))
            .expect("wait");
        assert!(!ready.wake, "drained");
    }
}
