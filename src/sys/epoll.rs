//! epoll (Linux, Android): a readiness set kept in the kernel, so that the
//! cost of a wait does not grow with the number of idle descriptors.
//!
//! Any number of threads may wait in one set at once: a one-shot descriptor
//! is reported to one of them, and an edge-triggered one wakes one of them
//! per change. The workers' shared wait rests on both.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::{check, timeout_ms, Interest, Readable};

/// An epoll set, and room for the events of one wait.
pub(crate) struct Epoll {
    fd: OwnedFd,
    buffer: Vec<libc::epoll_event>,
}

impl Epoll {
    /// How many events one wait can return; more stay pending for the next.
    const BATCH: usize = 256;

    pub(crate) fn new() -> io::Result<Epoll> {
        // SAFETY: plain system call without pointers; on success it returns a
        // new descriptor that nothing else owns, which `OwnedFd` takes over.
        let fd = unsafe { check(libc::epoll_create1(libc::EPOLL_CLOEXEC))? };
        // SAFETY: `fd` was just returned by `epoll_create1` and is owned by
        // nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let empty = libc::epoll_event { events: 0, u64: 0 };
        Ok(Epoll {
            fd,
            buffer: vec![empty; Self::BATCH],
        })
    }

    /// Starts watching `fd` under `token`.
    pub(crate) fn add(&self, fd: BorrowedFd<'_>, token: u64, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, interest)
    }

    /// Watches `fd`, already in the set, under `token` for `interest`:
    /// this is how a one-shot descriptor is armed again.
    pub(crate) fn modify(
        &self,
        fd: BorrowedFd<'_>,
        token: u64,
        interest: Interest,
    ) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, interest)
    }

    /// Stops watching `fd`. (Closing it does that too.)
    pub(crate) fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, Interest::Level)
    }

    fn ctl(
        &self,
        op: libc::c_int,
        fd: BorrowedFd<'_>,
        token: u64,
        interest: Interest,
    ) -> io::Result<()> {
        let flags = match interest {
            Interest::Level => libc::EPOLLIN | libc::EPOLLRDHUP,
            // Registered once: reported per arrival, to one waiter.
            Interest::Input => libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET,
            Interest::Output => libc::EPOLLOUT | libc::EPOLLONESHOT,
            Interest::Edge => libc::EPOLLIN | libc::EPOLLET,
        };
        let mut event = libc::epoll_event {
            events: flags as u32,
            u64: token,
        };
        // SAFETY: both descriptors are open for the duration of the call (one
        // is owned by `self`, the other borrowed), and `event` is a valid
        // `epoll_event` that the kernel only reads.
        unsafe {
            check(libc::epoll_ctl(
                self.fd.as_raw_fd(),
                op,
                fd.as_raw_fd(),
                &mut event,
            ))?;
        }
        Ok(())
    }

    /// Waits until a watched descriptor is ready or `timeout` passes, and
    /// appends what is ready to `events` (at most [`Self::BATCH`]).
    pub(crate) fn wait(
        &mut self,
        events: &mut Vec<Readable>,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let capacity = libc::c_int::try_from(self.buffer.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `buffer` holds `capacity` initialised `epoll_event`s that
        // the kernel may overwrite; the epoll descriptor is owned by `self`.
        let n = unsafe {
            check(libc::epoll_wait(
                self.fd.as_raw_fd(),
                self.buffer.as_mut_ptr(),
                capacity,
                timeout_ms(timeout),
            ))?
        };
        let n = usize::try_from(n).unwrap_or(0);
        events.extend(self.buffer[..n].iter().map(|e| Readable { token: e.u64 }));
        Ok(())
    }

    /// Waits with no timeout for one event, from any thread: each one-shot
    /// descriptor is reported to one waiter only.
    pub(crate) fn wait_one(&self) -> io::Result<Option<u64>> {
        let mut event = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: `event` is one valid `epoll_event` the kernel may
        // overwrite; the epoll descriptor is owned by `self`.
        let n = unsafe { check(libc::epoll_wait(self.fd.as_raw_fd(), &mut event, 1, -1))? };
        Ok((n == 1).then_some(event.u64))
    }
}
