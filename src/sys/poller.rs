//! [`Poller`]: the readiness wait of one thread (the acceptor's), over
//! whichever [`Backend`] the server was built with.

use std::io;
use std::time::Duration;

#[cfg(any(target_os = "linux", target_os = "android"))]
use super::Epoll;
use super::{raw, Backend, Borrowed, Interest, PollSet, Raw, Readable};

/// The readiness wait of the acceptor thread.
///
/// Only the acceptor thread registers descriptors and waits, so the `poll(2)`
/// backend needs no lock.
pub(crate) enum Poller {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Epoll(Epoll),
    Poll(PollSet),
}

impl Poller {
    pub(crate) fn new(backend: Backend) -> io::Result<Poller> {
        Ok(match backend {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Backend::Epoll => Poller::Epoll(Epoll::new()?),
            Backend::Poll => Poller::Poll(PollSet::default()),
        })
    }

    /// Starts watching `fd` for input (or hang-up) under `token`.
    pub(crate) fn add(
        &mut self,
        fd: Borrowed<'_>,
        token: u64,
        interest: Interest,
    ) -> io::Result<()> {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Poller::Epoll(epoll) => epoll.add(fd, token, interest),
            Poller::Poll(set) => {
                set.arm(raw(fd), token, interest);
                Ok(())
            }
        }
    }

    /// Stops watching `fd`. Closing a descriptor also stops watching it, so
    /// this is only needed for descriptors that stay open.
    pub(crate) fn remove(&mut self, fd: Borrowed<'_>) -> io::Result<()> {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Poller::Epoll(epoll) => epoll.delete(fd),
            Poller::Poll(set) => {
                set.remove(raw(fd));
                Ok(())
            }
        }
    }

    /// Forgets a descriptor that is about to be closed. epoll forgets it by
    /// itself on close; the `poll(2)`/`WSAPoll` set must be told, or it would
    /// poll a number that may already name another file or socket.
    pub(crate) fn forget(&mut self, fd: Raw) {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Poller::Epoll(_) => {}
            Poller::Poll(set) => set.remove(fd),
        }
    }

    /// Waits until a watched descriptor is ready or `timeout` passes, and
    /// fills `events`. `EINTR` counts as a wake-up with no events.
    pub(crate) fn wait(
        &mut self,
        events: &mut Vec<Readable>,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        events.clear();
        let result = match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Poller::Epoll(epoll) => epoll.wait(events, timeout),
            Poller::Poll(set) => set.wait(events, timeout),
        };
        match result {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{socket_pair, AsSource};
    use std::io::Write;

    #[test]
    fn level_reports_while_readable() {
        for backend in Backend::all() {
            let mut poller = Poller::new(backend).expect("poller");
            let (mut tx, rx) = socket_pair().expect("pair");
            poller.add(rx.as_source(), 1, Interest::Level).expect("add");
            let mut events = Vec::new();
            poller
                .wait(&mut events, Some(Duration::ZERO))
                .expect("wait");
            assert!(events.is_empty(), "{backend:?}: nothing written yet");
            tx.write_all(b"x").expect("write");
            for _ in 0..2 {
                poller
                    .wait(&mut events, Some(Duration::from_secs(5)))
                    .expect("wait");
                assert_eq!(events, [Readable { token: 1 }], "{backend:?}");
            }
            poller.remove(rx.as_source()).expect("remove");
            poller
                .wait(&mut events, Some(Duration::ZERO))
                .expect("wait");
            assert!(events.is_empty(), "{backend:?}: removed");
        }
    }
}
