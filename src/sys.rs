//! Every call into the operating system that std does not offer, in one
//! place: readiness (epoll on Linux, `poll(2)` everywhere on unix), the
//! listen backlog, the descriptor limit, signal dispositions, and adopting an
//! inherited descriptor.
//!
//! This is the crate's only module allowed `unsafe`, and each block says why
//! it is sound. The rest of the crate sees safe functions that take borrowed
//! descriptors, so a descriptor can never be used after it was closed.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Converts `-1` results into the thread's `errno`.
fn check(result: libc::c_int) -> io::Result<libc::c_int> {
    if result == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// A timeout in whole milliseconds for `poll`/`epoll_wait`: `-1` for none,
/// rounded **up**, so that a deadline 0.3 ms away is not polled in a spin of
/// zero-millisecond waits.
fn timeout_ms(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(t) => {
            let ms = t.as_nanos().div_ceil(1_000_000);
            libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
        }
    }
}

/// What a readiness wait reported for one registered descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Readable {
    pub(crate) token: u64,
}

/// Which readiness mechanism a [`Poller`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    /// Linux's epoll: the cost of a wait does not grow with the number of
    /// idle descriptors.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Epoll,
    /// `poll(2)`: portable, but scans every registered descriptor per wait.
    Poll,
}

impl Backend {
    /// The best backend of this platform.
    pub(crate) fn native() -> Backend {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        return Backend::Epoll;
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        return Backend::Poll;
    }
}

/// How a descriptor is watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Interest {
    /// Reported on every wait while readable (listener, wake-up socket).
    Level,
    /// Reported once, then disarmed until [`Poller::rearm`] (a parked
    /// connection: once readable it goes to a worker, and must not be
    /// reported again while the worker has it).
    Oneshot,
}

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
        fd: BorrowedFd<'_>,
        token: u64,
        interest: Interest,
    ) -> io::Result<()> {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Poller::Epoll(epoll) => epoll.ctl(libc::EPOLL_CTL_ADD, fd, token, interest),
            Poller::Poll(set) => {
                set.entries.insert(fd.as_raw_fd(), (token, interest, true));
                Ok(())
            }
        }
    }

    /// Arms a one-shot descriptor again after it was reported.
    pub(crate) fn rearm(&mut self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Poller::Epoll(epoll) => epoll.ctl(libc::EPOLL_CTL_MOD, fd, token, Interest::Oneshot),
            Poller::Poll(set) => {
                set.entries
                    .insert(fd.as_raw_fd(), (token, Interest::Oneshot, true));
                Ok(())
            }
        }
    }

    /// Stops watching `fd`. Closing a descriptor also stops watching it, so
    /// this is only needed for descriptors that stay open.
    pub(crate) fn remove(&mut self, fd: BorrowedFd<'_>) -> io::Result<()> {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Poller::Epoll(epoll) => epoll.ctl(libc::EPOLL_CTL_DEL, fd, 0, Interest::Level),
            Poller::Poll(set) => {
                set.entries.remove(&fd.as_raw_fd());
                Ok(())
            }
        }
    }

    /// Forgets a descriptor that is about to be closed. epoll forgets it by
    /// itself on close; the `poll(2)` set must be told, or it would poll a
    /// number that may already name another file.
    pub(crate) fn forget(&mut self, fd: RawFd) {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Poller::Epoll(_) => {}
            Poller::Poll(set) => {
                set.entries.remove(&fd);
            }
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

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) struct Epoll {
    fd: OwnedFd,
    buffer: Vec<libc::epoll_event>,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl Epoll {
    /// How many events one wait can return; more stay pending for the next.
    const BATCH: usize = 256;

    fn new() -> io::Result<Epoll> {
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

    fn ctl(
        &self,
        op: libc::c_int,
        fd: BorrowedFd<'_>,
        token: u64,
        interest: Interest,
    ) -> io::Result<()> {
        let mut flags = libc::EPOLLIN | libc::EPOLLRDHUP;
        if interest == Interest::Oneshot {
            flags |= libc::EPOLLONESHOT;
        }
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

    fn wait(&mut self, events: &mut Vec<Readable>, timeout: Option<Duration>) -> io::Result<()> {
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
}

/// The `poll(2)` backend: the registered descriptors, scanned on every wait.
#[derive(Default)]
pub(crate) struct PollSet {
    /// Descriptor -> (token, interest, armed).
    entries: std::collections::HashMap<RawFd, (u64, Interest, bool)>,
    fds: Vec<libc::pollfd>,
}

impl PollSet {
    fn wait(&mut self, events: &mut Vec<Readable>, timeout: Option<Duration>) -> io::Result<()> {
        self.fds.clear();
        self.fds.extend(
            self.entries
                .iter()
                .filter(|(_, (_, _, armed))| *armed)
                .map(|(&fd, _)| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                }),
        );
        let count = libc::nfds_t::try_from(self.fds.len()).unwrap_or(libc::nfds_t::MAX);
        // SAFETY: `fds` holds `count` initialised `pollfd`s; the kernel writes
        // only their `revents`. Every descriptor in the set is open: the
        // acceptor removes a descriptor (`forget`) before closing it.
        unsafe {
            check(libc::poll(
                self.fds.as_mut_ptr(),
                count,
                timeout_ms(timeout),
            ))?;
        }
        for pollfd in self.fds.iter().filter(|p| p.revents != 0) {
            if let Some((token, interest, armed)) = self.entries.get_mut(&pollfd.fd) {
                if *interest == Interest::Oneshot {
                    *armed = false;
                }
                events.push(Readable { token: *token });
            }
        }
        Ok(())
    }
}

/// What a worker's wait on its own connection and its wake-up socket saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ready {
    /// Input, end of file or an error on the connection: a turn will not block.
    pub(crate) connection: bool,
    /// A byte on the wake-up socket.
    pub(crate) wake: bool,
}

/// Waits until `connection` has input (or hung up), `wake` has a byte, or
/// `timeout` passes. This is how a worker lingers on a connection between
/// turns: two descriptors, so `poll(2)` is as cheap as anything.
pub(crate) fn wait_two(
    connection: BorrowedFd<'_>,
    wake: Option<BorrowedFd<'_>>,
    timeout: Option<Duration>,
) -> io::Result<Ready> {
    let entry = |fd: RawFd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let mut fds = [entry(connection.as_raw_fd()), entry(-1)];
    if let Some(wake) = wake {
        fds[1].fd = wake.as_raw_fd();
    }
    // SAFETY: `fds` is a valid array of two `pollfd`s (a negative `fd` is
    // ignored by `poll`), and the descriptors are borrowed, so open.
    let result = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms(timeout)) };
    match check(result) {
        Ok(_) => Ok(Ready {
            connection: fds[0].revents != 0,
            wake: fds[1].revents != 0,
        }),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Ready::default()),
        Err(e) => Err(e),
    }
}

/// Sets the accept backlog of a listening socket. Calling `listen` again on
/// a listening socket only changes its backlog; the kernel caps the value at
/// `net.core.somaxconn`.
pub(crate) fn set_backlog(listener: &impl AsFd, backlog: u32) -> io::Result<()> {
    let backlog = libc::c_int::try_from(backlog).unwrap_or(libc::c_int::MAX);
    // SAFETY: plain system call on a borrowed, open descriptor.
    unsafe { check(libc::listen(listener.as_fd().as_raw_fd(), backlog))? };
    Ok(())
}

/// The soft limit on open descriptors (`RLIMIT_NOFILE`), if finite.
pub(crate) fn descriptor_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid `rlimit` the kernel writes into.
    let result = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if result != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    #[allow(clippy::useless_conversion)] // `rlim_t` is not u64 everywhere
    u64::try_from(limit.rlim_cur).ok()
}

/// Whether `signal` is currently ignored (`SIG_IGN`), e.g. SIGHUP under
/// `nohup`. Reads the disposition without changing it.
pub(crate) fn signal_is_ignored(signal: libc::c_int) -> io::Result<bool> {
    // SAFETY: all-zero is a valid `sigaction` (no handler, empty mask).
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only reads the current one into `current`,
    // a valid `sigaction` the kernel writes into.
    unsafe { check(libc::sigaction(signal, std::ptr::null(), &mut current))? };
    Ok(current.sa_sigaction == libc::SIG_IGN)
}

/// Sets `signal`'s disposition back to "ignore".
pub(crate) fn ignore_signal(signal: libc::c_int) -> io::Result<()> {
    // SAFETY: all-zero is a valid `sigaction` (empty mask, no flags); with
    // `SIG_IGN` as its handler no code of ours runs in signal context.
    let mut ignore: libc::sigaction = unsafe { std::mem::zeroed() };
    ignore.sa_sigaction = libc::SIG_IGN;
    // SAFETY: `ignore` is a valid `sigaction` the kernel only reads; the old
    // action is not asked for (null).
    unsafe { check(libc::sigaction(signal, &ignore, std::ptr::null_mut()))? };
    Ok(())
}

/// Takes ownership of a descriptor inherited through socket activation.
///
/// # Safety contract (checked by the caller, `systemd.rs`)
///
/// `fd` is covered by `LISTEN_FDS` for this process, and is adopted at most
/// once per process.
pub(crate) fn adopt_inherited(fd: RawFd) -> OwnedFd {
    // SAFETY: `LISTEN_PID` names this process and `LISTEN_FDS` covers `fd`,
    // so by the socket-activation protocol `fd` is an open descriptor handed
    // to this process for it to own. The caller's `TAKEN` flag makes this the
    // only owner in the process, and it checks that the descriptor is a
    // listening TCP socket before using it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    #[test]
    fn timeouts_round_up_to_whole_milliseconds() {
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_micros(300))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_millis(5))), 5);
        assert_eq!(timeout_ms(Some(Duration::MAX)), libc::c_int::MAX);
    }

    fn backends() -> Vec<Backend> {
        let mut all = vec![Backend::Poll];
        if Backend::native() != Backend::Poll {
            all.push(Backend::native());
        }
        all
    }

    #[test]
    fn oneshot_reports_once_until_rearmed() {
        for backend in backends() {
            let mut poller = Poller::new(backend).expect("poller");
            let (mut tx, rx) = UnixStream::pair().expect("pair");
            poller.add(rx.as_fd(), 7, Interest::Oneshot).expect("add");
            let mut events = Vec::new();
            tx.write_all(b"x").expect("write");
            poller
                .wait(&mut events, Some(Duration::from_secs(5)))
                .expect("wait");
            assert_eq!(events, [Readable { token: 7 }], "{backend:?}");
            poller
                .wait(&mut events, Some(Duration::ZERO))
                .expect("wait");
            assert!(events.is_empty(), "{backend:?}: disarmed after one report");
            poller.rearm(rx.as_fd(), 7).expect("rearm");
            poller
                .wait(&mut events, Some(Duration::from_secs(5)))
                .expect("wait");
            assert_eq!(events, [Readable { token: 7 }], "{backend:?}");
        }
    }

    #[test]
    fn level_reports_while_readable() {
        for backend in backends() {
            let mut poller = Poller::new(backend).expect("poller");
            let (mut tx, rx) = UnixStream::pair().expect("pair");
            poller.add(rx.as_fd(), 1, Interest::Level).expect("add");
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
            poller.remove(rx.as_fd()).expect("remove");
            poller
                .wait(&mut events, Some(Duration::ZERO))
                .expect("wait");
            assert!(events.is_empty(), "{backend:?}: removed");
        }
    }

    #[test]
    fn wait_two_sees_either_descriptor() {
        let (mut a_tx, a_rx) = UnixStream::pair().expect("pair");
        let (mut w_tx, w_rx) = UnixStream::pair().expect("pair");
        let none = wait_two(a_rx.as_fd(), Some(w_rx.as_fd()), Some(Duration::ZERO)).expect("poll");
        assert_eq!(none, Ready::default());
        w_tx.write_all(b"k").expect("write");
        let woke = wait_two(a_rx.as_fd(), Some(w_rx.as_fd()), None).expect("poll");
        assert_eq!((woke.connection, woke.wake), (false, true));
        a_tx.write_all(b"d").expect("write");
        let both = wait_two(a_rx.as_fd(), Some(w_rx.as_fd()), None).expect("poll");
        assert_eq!((both.connection, both.wake), (true, true));
    }

    #[test]
    fn the_descriptor_limit_is_read() {
        // Every test environment has a finite limit of at least a few dozen.
        assert!(descriptor_limit().map_or(true, |n| n >= 16));
    }
}
