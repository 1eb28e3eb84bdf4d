//! Every call into the operating system that std does not offer, in one
//! place: readiness (epoll on Linux, `poll(2)` elsewhere on unix, `WSAPoll`
//! on Windows), the listen backlog, the descriptor limit, signal
//! dispositions, and adopting an inherited descriptor.
//!
//! This is the crate's only module allowed `unsafe`, and each block says why
//! it is sound. The rest of the crate sees safe functions that take borrowed
//! descriptors, so a descriptor can never be used after it was closed.
//!
//! It is also the one place that knows unix descriptors from Windows
//! sockets: the rest of the crate names them [`Borrowed`], [`Raw`] and
//! [`AsSource`], which are std's `BorrowedFd`, `RawFd` and `AsFd` on unix and
//! `BorrowedSocket`, `RawSocket` and `AsSocket` on Windows.
#![allow(unsafe_code)]

use std::ffi::c_int;
use std::io;
#[cfg(unix)]
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
#[cfg(windows)]
use std::os::windows::io::{AsRawSocket, AsSocket, BorrowedSocket, RawSocket};
use std::time::Duration;

/// A descriptor (unix) or socket (Windows) borrowed for the call.
#[cfg(unix)]
pub(crate) type Borrowed<'a> = BorrowedFd<'a>;
/// A descriptor (unix) or socket (Windows) borrowed for the call.
#[cfg(windows)]
pub(crate) type Borrowed<'a> = BorrowedSocket<'a>;

/// A descriptor's number, only to recognise it again (never to use it).
#[cfg(unix)]
pub(crate) type Raw = RawFd;
/// A socket's number, only to recognise it again (never to use it).
#[cfg(windows)]
pub(crate) type Raw = RawSocket;

/// Anything with a socket in it (listener, stream, wake-up socket): std's
/// `AsFd` on unix, `AsSocket` on Windows, under one name.
pub(crate) trait AsSource {
    /// The socket, borrowed.
    fn as_source(&self) -> Borrowed<'_>;

    /// The socket's number, to forget it in a poll set before it closes.
    fn raw_source(&self) -> Raw {
        raw(self.as_source())
    }
}

#[cfg(unix)]
impl<T: AsFd + ?Sized> AsSource for T {
    fn as_source(&self) -> Borrowed<'_> {
        self.as_fd()
    }
}

#[cfg(windows)]
impl<T: AsSocket + ?Sized> AsSource for T {
    fn as_source(&self) -> Borrowed<'_> {
        self.as_socket()
    }
}

fn raw(source: Borrowed<'_>) -> Raw {
    #[cfg(unix)]
    return source.as_raw_fd();
    #[cfg(windows)]
    return source.as_raw_socket();
}

/// Converts `-1` results into the thread's `errno`.
#[cfg(unix)]
fn check(result: c_int) -> io::Result<c_int> {
    if result == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// A timeout in whole milliseconds for `poll`/`epoll_wait`/`WSAPoll`: `-1`
/// for none, rounded **up**, so that a deadline 0.3 ms away is not polled in
/// a spin of zero-millisecond waits.
fn timeout_ms(timeout: Option<Duration>) -> c_int {
    match timeout {
        None => -1,
        Some(t) => {
            let ms = t.as_nanos().div_ceil(1_000_000);
            c_int::try_from(ms).unwrap_or(c_int::MAX)
        }
    }
}

/// The `accept` errors that mean the process or the system is out of
/// descriptors, buffers or memory (std reports some of them as an
/// uncategorized kind, so they are matched by number).
#[cfg(unix)]
pub(crate) const RESOURCE_ERRORS: [i32; 4] =
    [libc::ENOMEM, libc::ENFILE, libc::EMFILE, libc::ENOBUFS];
/// The `accept` errors that mean the process or the system is out of
/// sockets or buffers: `WSAEMFILE` and `WSAENOBUFS` (winerror.h).
#[cfg(windows)]
pub(crate) const RESOURCE_ERRORS: [i32; 2] = [winsock::WSAEMFILE, winsock::WSAENOBUFS];

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
    /// Reported once when it can take more output (or has failed), then
    /// disarmed until rearmed (a parked connection with output queued).
    Output,
    /// Reported once per change (epoll's edge trigger), to one waiter: the
    /// workers' job announcements.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Edge,
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
        fd: Borrowed<'_>,
        token: u64,
        interest: Interest,
    ) -> io::Result<()> {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Poller::Epoll(epoll) => epoll.ctl(libc::EPOLL_CTL_ADD, fd, token, interest),
            Poller::Poll(set) => {
                set.entries.insert(raw(fd), (token, interest, true));
                Ok(())
            }
        }
    }

    /// Stops watching `fd`. Closing a descriptor also stops watching it, so
    /// this is only needed for descriptors that stay open.
    pub(crate) fn remove(&mut self, fd: Borrowed<'_>) -> io::Result<()> {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Poller::Epoll(epoll) => epoll.ctl(libc::EPOLL_CTL_DEL, fd, 0, Interest::Level),
            Poller::Poll(set) => {
                set.entries.remove(&raw(fd));
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
        let flags = match interest {
            Interest::Level => libc::EPOLLIN | libc::EPOLLRDHUP,
            Interest::Oneshot => libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT,
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

    /// Waits with no timeout for one event, from any thread: each one-shot
    /// descriptor is reported to one waiter only.
    fn wait_one(&self) -> io::Result<Option<u64>> {
        let mut event = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: `event` is one valid `epoll_event` the kernel may
        // overwrite; the epoll descriptor is owned by `self`.
        let n = unsafe { check(libc::epoll_wait(self.fd.as_raw_fd(), &mut event, 1, -1))? };
        Ok((n == 1).then_some(event.u64))
    }
}

/// The `poll(2)` backend (`WSAPoll` on Windows): the registered
/// descriptors, scanned on every wait.
#[derive(Default)]
pub(crate) struct PollSet {
    /// Descriptor -> (token, interest, armed).
    entries: std::collections::HashMap<Raw, (u64, Interest, bool)>,
    fds: Vec<PollFd>,
}

impl PollSet {
    fn wait(&mut self, events: &mut Vec<Readable>, timeout: Option<Duration>) -> io::Result<()> {
        let mut fds = std::mem::take(&mut self.fds);
        fds.clear();
        self.armed_entries(&mut fds);
        // Every descriptor in the set is open: the acceptor removes a
        // descriptor (`forget`) before closing it.
        let polled = poll(&mut fds, timeout);
        if polled.is_ok() {
            self.take_ready(&fds, events);
        }
        self.fds = fds;
        polled
    }

    /// Appends an entry for every armed descriptor.
    fn armed_entries(&self, fds: &mut Vec<PollFd>) {
        fds.extend(self.entries.iter().filter(|(_, (_, _, armed))| *armed).map(
            |(&fd, &(_, interest, _))| {
                let mut entry = poll_entry(fd);
                if interest == Interest::Output {
                    entry.events = POLL_OUT;
                }
                entry
            },
        ));
    }

    /// Reports the polled entries that are ready, disarming one-shot ones.
    fn take_ready(&mut self, fds: &[PollFd], events: &mut Vec<Readable>) {
        for pollfd in fds.iter().filter(|p| p.revents != 0) {
            if let Some((token, interest, armed)) = self.entries.get_mut(&poll_source(pollfd)) {
                // Disarmed meanwhile (taken away, maybe closed): not ours.
                if !*armed {
                    continue;
                }
                if *interest != Interest::Level {
                    *armed = false;
                }
                events.push(Readable { token: *token });
            }
        }
    }
}

/// What a worker's wait in the [`Shared`] poller brought.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Woken {
    /// A parked connection is ready: its token.
    Ready(u64),
    /// A job was announced with [`Shared::notify`] (or every worker was
    /// told to look: the job channel may have closed).
    Job,
    /// Nothing (interrupted): look again.
    Nothing,
}

/// The readiness wait that every free worker shares: the parked
/// connections, and a count of announced jobs.
///
/// With epoll, every free worker waits in `epoll_wait` on the one set at
/// once; each one-shot connection is reported to exactly one of them, and
/// jobs are announced on an `eventfd` in the set, edge-triggered, so that
/// an announcement wakes one worker, not all. Announcements made before a
/// worker woke count once: the worker that takes a job passes the
/// announcement on while jobs are left ([`Shared::notify`] again).
/// With `poll(2)` only one worker at a time (the leader) polls, the others
/// wait on a condition variable for what it found; a connection armed while
/// the leader polls wakes it, so that it polls again with the new set.
pub(crate) enum Shared {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Epoll {
        epoll: Epoll,
        /// An `eventfd`, watched edge-triggered: each write wakes one waiter.
        jobs: std::fs::File,
    },
    Poll(PollShared),
}

/// The token of the jobs semaphore in the epoll set.
#[cfg(any(target_os = "linux", target_os = "android"))]
const JOBS: u64 = u64::MAX;

impl Shared {
    pub(crate) fn new(backend: Backend) -> io::Result<Shared> {
        Ok(match backend {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Backend::Epoll => {
                let epoll = Epoll::new()?;
                let jobs = std::fs::File::from(eventfd()?);
                epoll.ctl(libc::EPOLL_CTL_ADD, jobs.as_fd(), JOBS, Interest::Edge)?;
                Shared::Epoll { epoll, jobs }
            }
            Backend::Poll => Shared::Poll(PollShared::new()?),
        })
    }

    /// Watches `fd` under `token` for `interest` (one-shot): `first` adds
    /// it, otherwise it is rearmed.
    pub(crate) fn arm(
        &self,
        fd: Borrowed<'_>,
        token: u64,
        interest: Interest,
        first: bool,
    ) -> io::Result<()> {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Shared::Epoll { epoll, .. } => {
                let op = if first {
                    libc::EPOLL_CTL_ADD
                } else {
                    libc::EPOLL_CTL_MOD
                };
                epoll.ctl(op, fd, token, interest)
            }
            // A poll set entry is the same whether new or not.
            Shared::Poll(shared) => {
                let _ = first;
                shared.arm(raw(fd), token, interest);
                Ok(())
            }
        }
    }

    /// Stops reporting `fd` until it is armed again: for a connection taken
    /// away before it was reported, which may be closed next. (A stray epoll
    /// report is ignored by its stale token; the `poll(2)` set must not
    /// poll a descriptor that may be closed.)
    pub(crate) fn disarm(&self, fd: Raw) {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Shared::Epoll { .. } => {}
            Shared::Poll(shared) => shared.disarm(fd),
        }
    }

    /// Announces `jobs` jobs: wakes up to that many waiting workers (with
    /// epoll, one; it passes the announcement on).
    pub(crate) fn notify(&self, jobs: u64) {
        if jobs == 0 {
            return;
        }
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Shared::Epoll { jobs: counter, .. } => {
                use std::io::{Read, Write};
                // Each write is an edge: one waiter wakes. Nobody reads the
                // counter (that would cost a call per job); it would take
                // 2^64 writes to fill, and then one read empties it.
                let mut counter: &std::fs::File = counter;
                if counter.write(&1u64.to_ne_bytes()).is_err() {
                    let mut count = [0; 8];
                    let _ = counter.read(&mut count);
                    let _ = counter.write(&1u64.to_ne_bytes());
                }
            }
            Shared::Poll(shared) => shared.notify(jobs),
        }
    }

    /// Waits, with no timeout, for a parked connection to be ready or a job
    /// to be announced.
    pub(crate) fn wait(&self) -> io::Result<Woken> {
        let woken = match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Shared::Epoll { epoll, .. } => match epoll.wait_one() {
                // The edge was the message: the counter is left as it is.
                Ok(Some(JOBS)) => Ok(Woken::Job),
                Ok(Some(token)) => Ok(Woken::Ready(token)),
                Ok(None) => Ok(Woken::Nothing),
                Err(e) => Err(e),
            },
            Shared::Poll(shared) => shared.wait(),
        };
        match woken {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Woken::Nothing),
            other => other,
        }
    }
}

/// The `poll(2)` backend of [`Shared`]: leader and followers.
pub(crate) struct PollShared {
    state: std::sync::Mutex<PollState>,
    /// Followers wait here for what the leader found, or for its place.
    found: std::sync::Condvar,
    /// Ends the leader's poll, to poll again with a changed set.
    leader: crate::wake::Waker,
    leader_wake: crate::wake::WakeReceiver,
}

#[derive(Default)]
struct PollState {
    set: PollSet,
    /// Tokens the leader found ready, not taken yet.
    ready: std::collections::VecDeque<u64>,
    /// Announced jobs not taken yet.
    jobs: u64,
    /// Whether a worker is polling.
    polling: bool,
}

impl PollShared {
    fn new() -> io::Result<PollShared> {
        let (leader, leader_wake) = crate::wake::channel()?;
        Ok(PollShared {
            state: std::sync::Mutex::default(),
            found: std::sync::Condvar::new(),
            leader,
            leader_wake,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PollState> {
        // The state is only counters and a set, consistent after every
        // statement: a panic elsewhere leaves nothing half-done.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn arm(&self, fd: Raw, token: u64, interest: Interest) {
        let mut state = self.lock();
        state.set.entries.insert(fd, (token, interest, true));
        if state.polling {
            self.leader.wake();
        }
    }

    fn disarm(&self, fd: Raw) {
        let mut state = self.lock();
        if let Some((_, _, armed)) = state.set.entries.get_mut(&fd) {
            *armed = false;
            if state.polling {
                // The leader's poll may hold the descriptor: end it, so
                // that it is not polled once closed.
                self.leader.wake();
            }
        }
    }

    fn notify(&self, jobs: u64) {
        let mut state = self.lock();
        state.jobs = state.jobs.saturating_add(jobs);
        if state.polling {
            self.leader.wake();
        }
        drop(state);
        self.found.notify_all();
    }

    fn wait(&self) -> io::Result<Woken> {
        let mut state = self.lock();
        loop {
            if state.jobs > 0 {
                state.jobs -= 1;
                return Ok(Woken::Job);
            }
            if let Some(token) = state.ready.pop_front() {
                return Ok(Woken::Ready(token));
            }
            if state.polling {
                state = self
                    .found
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                continue;
            }
            // Lead: poll the armed set and the leader's wake-up, unlocked.
            state.polling = true;
            let mut fds = vec![poll_entry(raw(self.leader_wake.as_source()))];
            state.set.armed_entries(&mut fds);
            drop(state);
            let polled = poll(&mut fds, None);
            state = self.lock();
            state.polling = false;
            if fds[0].revents != 0 {
                self.leader_wake.drain();
            }
            if polled.is_ok() {
                let mut found = Vec::new();
                state.set.take_ready(&fds[1..], &mut found);
                state.ready.extend(found.into_iter().map(|r| r.token));
            }
            // Others may take what was found, or lead next.
            self.found.notify_all();
            polled?;
        }
    }
}

/// One entry of a `poll(2)` set.
#[cfg(unix)]
type PollFd = libc::pollfd;

/// An entry asking whether `fd` has input (or hung up).
#[cfg(unix)]
fn poll_entry(fd: Raw) -> PollFd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// The descriptor of an entry.
#[cfg(unix)]
fn poll_source(entry: &PollFd) -> Raw {
    entry.fd
}

/// Waits with `poll(2)` until an entry of `fds` is ready or `timeout`
/// passes, and fills their `revents`.
#[cfg(unix)]
fn poll(fds: &mut [PollFd], timeout: Option<Duration>) -> io::Result<()> {
    let count = libc::nfds_t::try_from(fds.len()).unwrap_or(libc::nfds_t::MAX);
    // SAFETY: `fds` holds `count` initialised `pollfd`s; the kernel writes
    // only their `revents`. A descriptor closed meanwhile is reported as
    // `POLLNVAL`, not used.
    unsafe {
        check(libc::poll(fds.as_mut_ptr(), count, timeout_ms(timeout)))?;
    }
    Ok(())
}

/// The few Winsock declarations this crate needs, as in `winsock2.h` and
/// `winerror.h`. std links `ws2_32` already and initialises Winsock
/// (`WSAStartup`) before it creates its first socket, and every socket
/// polled here is one of std's.
#[cfg(windows)]
mod winsock {
    use std::ffi::{c_int, c_short, c_ulong};

    /// `SOCKET`: a pointer-sized handle (`UINT_PTR`).
    pub(super) type Socket = usize;

    /// `WSAPOLLFD`: one entry of a `WSAPoll` set, laid out as `pollfd`.
    #[repr(C)]
    #[derive(Clone, Copy, Debug)]
    pub(super) struct WsaPollFd {
        pub(super) fd: Socket,
        pub(super) events: c_short,
        pub(super) revents: c_short,
    }

    /// `POLLRDNORM`: normal data (or a connection to accept) can be read
    /// without blocking. Hang-up (`POLLHUP`, 0x0002) and errors (`POLLERR`,
    /// 0x0001; `POLLNVAL`, 0x0004) are reported without being asked for.
    pub(super) const POLLRDNORM: c_short = 0x0100;
    /// `SOCKET_ERROR`.
    pub(super) const SOCKET_ERROR: c_int = -1;
    /// `WSAEMFILE`: too many open sockets.
    pub(super) const WSAEMFILE: i32 = 10024;
    /// `WSAENOBUFS`: no buffer space available.
    pub(super) const WSAENOBUFS: i32 = 10055;

    #[link(name = "ws2_32")]
    extern "system" {
        pub(super) fn WSAPoll(fds: *mut WsaPollFd, nfds: c_ulong, timeout: c_int) -> c_int;
        pub(super) fn WSAGetLastError() -> c_int;
    }
}

/// One entry of a `WSAPoll` set.
#[cfg(windows)]
type PollFd = winsock::WsaPollFd;

/// An entry asking whether `socket` has input (or hung up).
#[cfg(windows)]
fn poll_entry(socket: Raw) -> PollFd {
    winsock::WsaPollFd {
        // std widens `SOCKET` (pointer-sized) to `RawSocket` (u64); the
        // value came from a `SOCKET`, so narrowing it back loses nothing.
        fd: socket as winsock::Socket,
        events: winsock::POLLRDNORM,
        revents: 0,
    }
}

/// The socket of an entry.
#[cfg(windows)]
fn poll_source(entry: &PollFd) -> Raw {
    entry.fd as Raw
}

/// Waits with `WSAPoll` until an entry of `fds` is ready or `timeout`
/// passes, and fills their `revents`.
#[cfg(windows)]
fn poll(fds: &mut [PollFd], timeout: Option<Duration>) -> io::Result<()> {
    if fds.is_empty() {
        // `WSAPoll` rejects an empty set (`WSAEINVAL`), where `poll(2)`
        // sleeps. With no timeout a wait on nothing never ends; parking
        // the thread is that, up to a spurious wake-up.
        match timeout {
            Some(timeout) => std::thread::sleep(timeout),
            None => std::thread::park(),
        }
        return Ok(());
    }
    let count = std::ffi::c_ulong::try_from(fds.len()).unwrap_or(std::ffi::c_ulong::MAX);
    // SAFETY: `fds` holds `count` initialised `WSAPOLLFD`s; Winsock writes
    // only their `revents`. Winsock is initialised: every socket in the set
    // is one of std's, and std starts Winsock before creating one. A socket
    // closed meanwhile is reported as `POLLNVAL`, not used.
    let result = unsafe { winsock::WSAPoll(fds.as_mut_ptr(), count, timeout_ms(timeout)) };
    if result == winsock::SOCKET_ERROR {
        // SAFETY: no arguments; reads this thread's last Winsock error.
        let code = unsafe { winsock::WSAGetLastError() };
        return Err(io::Error::from_raw_os_error(code));
    }
    Ok(())
}

/// Waits until `source` has input (or hung up) or `timeout` passes;
/// returns whether it has. This is how a read under a deadline waits.
pub(crate) fn wait_readable(source: Borrowed<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    let mut fds = [poll_entry(raw(source))];
    // The descriptor is borrowed, so open for the whole wait.
    match poll(&mut fds, timeout) {
        Ok(()) => Ok(fds[0].revents != 0),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reads what `stream` already holds into `buf`, without blocking:
/// `WouldBlock` when nothing has arrived. The stream stays blocking for
/// everyone else: on unix this is one `recv` with `MSG_DONTWAIT`.
#[cfg(unix)]
pub(crate) fn recv_nonblocking(stream: Borrowed<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes, and the
    // descriptor is borrowed from an open stream for the call.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    // A negative count is -1 with `errno` set.
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Writes what `stream`'s send buffer takes of `buf` now, without blocking:
/// `WouldBlock` when it is full.
#[cfg(unix)]
pub(crate) fn send_nonblocking(stream: Borrowed<'_>, buf: &[u8]) -> io::Result<usize> {
    // A peer that has gone must give an error, not a SIGPIPE.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    // Elsewhere std sets `SO_NOSIGPIPE` on its sockets instead.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let flags = libc::MSG_DONTWAIT;
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes, and the
    // descriptor is borrowed from an open stream for the call.
    let n = unsafe { libc::send(stream.as_raw_fd(), buf.as_ptr().cast(), buf.len(), flags) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// How many bytes written to `stream` its peer has not acknowledged yet:
/// the part of the send queue still on this side. What a client has really
/// taken is what was written minus this. `None` where the system does not
/// tell (then only the write timeout bounds a client that does not read).
#[cfg(any(target_os = "linux", target_os = "android"))]
#[cfg_attr(not(feature = "http"), allow(dead_code))] // used by the HTTP layer
pub(crate) fn unsent_output(stream: Borrowed<'_>) -> Option<u64> {
    let mut unsent: c_int = 0;
    // SAFETY: `TIOCOUTQ` (`SIOCOUTQ` for TCP) writes one `int` through the
    // pointer, which points at one; the descriptor is borrowed, open.
    let result = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut unsent) };
    if result == -1 {
        return None;
    }
    u64::try_from(unsent).ok()
}

/// How many bytes written to `stream` are still in its send queue
/// (`SO_NWRITE`).
#[cfg(any(target_os = "macos", target_os = "ios"))]
#[cfg_attr(not(feature = "http"), allow(dead_code))] // used by the HTTP layer
pub(crate) fn unsent_output(stream: Borrowed<'_>) -> Option<u64> {
    let mut unsent: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: `SO_NWRITE` writes one `int` and its length through the
    // pointers, which point at an `int` and its size; the descriptor is
    // borrowed, open.
    let result = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NWRITE,
            (&mut unsent as *mut c_int).cast(),
            &mut len,
        )
    };
    if result == -1 {
        return None;
    }
    u64::try_from(unsent).ok()
}

/// Not told on this system.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios"
)))]
#[cfg_attr(not(feature = "http"), allow(dead_code))] // used by the HTTP layer
pub(crate) fn unsent_output(stream: Borrowed<'_>) -> Option<u64> {
    let _ = stream;
    None
}

/// Waits until `stream` can take more output (or has failed) or `timeout`
/// passes; returns whether it can.
pub(crate) fn wait_writable(stream: Borrowed<'_>, timeout: Duration) -> io::Result<bool> {
    let mut fds = [poll_entry(raw(stream))];
    fds[0].events = POLL_OUT;
    match poll(&mut fds, Some(timeout)) {
        Ok(()) => Ok(fds[0].revents != 0),
        // Interrupted: the caller looks at its deadline and waits again.
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
        Err(e) => Err(e),
    }
}

/// The `poll` event for "output possible".
#[cfg(unix)]
const POLL_OUT: std::ffi::c_short = libc::POLLOUT;
/// `POLLWRNORM` (winsock2.h): normal data can be written without blocking.
#[cfg(windows)]
const POLL_OUT: std::ffi::c_short = 0x0010;

/// Sets the accept backlog of a listening socket. Calling `listen` again on
/// a listening socket only changes its backlog; the kernel caps the value at
/// `net.core.somaxconn`.
#[cfg(unix)]
pub(crate) fn set_backlog(listener: &impl AsFd, backlog: u32) -> io::Result<()> {
    let backlog = c_int::try_from(backlog).unwrap_or(c_int::MAX);
    // SAFETY: plain system call on a borrowed, open descriptor.
    unsafe { check(libc::listen(listener.as_fd().as_raw_fd(), backlog))? };
    Ok(())
}

/// Sets a TCP listener's receive and send timeouts (`None`: none). Linux
/// copies them to every connection accepted from it, which saves two
/// system calls per connection.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn set_accepted_timeouts(
    listener: &impl AsFd,
    read: Option<Duration>,
    write: Option<Duration>,
) -> io::Result<()> {
    for (option, timeout) in [(libc::SO_RCVTIMEO, read), (libc::SO_SNDTIMEO, write)] {
        let timeout = timeout.unwrap_or(Duration::ZERO);
        let mut value = libc::timeval {
            tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_usec: libc::suseconds_t::from(timeout.subsec_micros()),
        };
        // As std does: a timeout under a microsecond is not "none".
        if !timeout.is_zero() && value.tv_sec == 0 && value.tv_usec == 0 {
            value.tv_usec = 1;
        }
        let size = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
        // SAFETY: `value` is a valid `timeval` the kernel reads `size`
        // bytes of; the descriptor is borrowed, so open for the call.
        unsafe {
            check(libc::setsockopt(
                listener.as_fd().as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                std::ptr::addr_of!(value).cast(),
                size,
            ))?;
        }
    }
    Ok(())
}

/// Keeps std's backlog (128) on Windows. Winsock documents that `listen` on
/// a socket that already listens succeeds without changing its backlog, and
/// std's `TcpListener::bind` has listened already.
#[cfg(windows)]
pub(crate) fn set_backlog(listener: &impl AsSource, backlog: u32) -> io::Result<()> {
    let _ = (listener, backlog);
    Ok(())
}

/// The soft limit on open descriptors (`RLIMIT_NOFILE`), if finite.
#[cfg(unix)]
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

/// Raises the soft limit on open descriptors to the hard limit; returns the
/// soft limit now (`None` for unlimited). On macOS the kernel also caps it
/// at `OPEN_MAX`, which `setrlimit` refuses to exceed.
#[cfg(unix)]
pub(crate) fn raise_descriptor_limit() -> io::Result<Option<u64>> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid `rlimit` the kernel writes into.
    check(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) })?;
    if limit.rlim_cur != limit.rlim_max {
        #[cfg(not(any(target_os = "macos", target_os = "ios")))]
        let soft = limit.rlim_max;
        #[cfg(any(target_os = "macos", target_os = "ios"))]
        // `OPEN_MAX` of `<sys/syslimits.h>`, which libc does not declare.
        let soft = limit.rlim_max.min(10_240);
        let raised = libc::rlimit {
            rlim_cur: soft,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `raised` is a valid `rlimit` the kernel reads.
        check(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) })?;
    }
    Ok(descriptor_limit())
}

/// Windows has no limit on sockets to raise.
#[cfg(windows)]
pub(crate) fn raise_descriptor_limit() -> io::Result<Option<u64>> {
    Ok(None)
}

/// Windows has no per-process limit on sockets to read (only memory bounds
/// them), so the caller's fallback applies.
#[cfg(windows)]
pub(crate) fn descriptor_limit() -> Option<u64> {
    None
}

/// A new `eventfd`: a counter that is readable while nonzero, for
/// wake-ups. Nonblocking and close-on-exec.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain system call without pointers; on success it returns a
    // new descriptor that nothing else owns.
    let fd = unsafe { check(libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK))? };
    // SAFETY: `fd` was just returned by `eventfd` and is owned by nobody
    // else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether SIGHUP is currently ignored (`SIG_IGN`), e.g. under `nohup`.
/// Reads the disposition without changing it.
#[cfg(unix)]
pub(crate) fn hangup_is_ignored() -> io::Result<bool> {
    signal_is_ignored(libc::SIGHUP)
}

/// Windows has no SIGHUP (closing the console is a control event, which
/// `ctrlc` handles), so there is no inherited "ignore" to keep.
#[cfg(windows)]
pub(crate) fn hangup_is_ignored() -> io::Result<bool> {
    Ok(false)
}

/// Sets SIGHUP's disposition back to "ignore".
#[cfg(unix)]
pub(crate) fn ignore_hangup() -> io::Result<()> {
    ignore_signal(libc::SIGHUP)
}

/// Nothing to do: Windows has no SIGHUP (see [`hangup_is_ignored`]).
#[cfg(windows)]
pub(crate) fn ignore_hangup() -> io::Result<()> {
    Ok(())
}

/// Whether `signal` is currently ignored (`SIG_IGN`), e.g. SIGHUP under
/// `nohup`. Reads the disposition without changing it.
#[cfg(unix)]
fn signal_is_ignored(signal: c_int) -> io::Result<bool> {
    // SAFETY: all-zero is a valid `sigaction` (no handler, empty mask).
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only reads the current one into `current`,
    // a valid `sigaction` the kernel writes into.
    unsafe { check(libc::sigaction(signal, std::ptr::null(), &mut current))? };
    Ok(current.sa_sigaction == libc::SIG_IGN)
}

/// Sets `signal`'s disposition back to "ignore".
#[cfg(unix)]
fn ignore_signal(signal: c_int) -> io::Result<()> {
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
#[cfg(unix)]
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
    use crate::wake::socket_pair;
    use std::io::Write;

    #[test]
    fn timeouts_round_up_to_whole_milliseconds() {
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_micros(300))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_millis(5))), 5);
        assert_eq!(timeout_ms(Some(Duration::MAX)), c_int::MAX);
    }

    fn backends() -> Vec<Backend> {
        let mut all = vec![Backend::Poll];
        if Backend::native() != Backend::Poll {
            all.push(Backend::native());
        }
        all
    }

    #[test]
    fn the_shared_wait_reports_a_oneshot_once_until_armed_again() {
        for backend in backends() {
            let shared = Shared::new(backend).expect("shared");
            let (mut tx, rx) = socket_pair().expect("pair");
            shared
                .arm(rx.as_source(), 7, Interest::Oneshot, true)
                .expect("add");
            tx.write_all(b"x").expect("write");
            assert_eq!(shared.wait().expect("wait"), Woken::Ready(7), "{backend:?}");
            // Still readable, but disarmed: the job comes first.
            shared.notify(1);
            assert_eq!(shared.wait().expect("wait"), Woken::Job, "{backend:?}");
            shared
                .arm(rx.as_source(), 8, Interest::Oneshot, false)
                .expect("rearm");
            assert_eq!(shared.wait().expect("wait"), Woken::Ready(8), "{backend:?}");
        }
    }

    #[test]
    fn the_shared_wait_reports_room_for_output() {
        for backend in backends() {
            let shared = Shared::new(backend).expect("shared");
            let (tx, rx) = socket_pair().expect("pair");
            // A fresh socket has room for output, and no input.
            shared
                .arm(tx.as_source(), 9, Interest::Output, true)
                .expect("add");
            assert_eq!(shared.wait().expect("wait"), Woken::Ready(9), "{backend:?}");
            // Armed for input instead: nothing has arrived, the job comes.
            shared
                .arm(tx.as_source(), 10, Interest::Oneshot, false)
                .expect("rearm");
            shared.notify(1);
            assert_eq!(shared.wait().expect("wait"), Woken::Job, "{backend:?}");
            drop(rx);
        }
    }

    #[test]
    fn an_announcement_wakes_one_waiting_worker() {
        for backend in backends() {
            let shared = std::sync::Arc::new(Shared::new(backend).expect("shared"));
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            for _ in 0..3 {
                let shared = std::sync::Arc::clone(&shared);
                let done = done_tx.clone();
                std::thread::spawn(move || {
                    let woken = shared.wait();
                    let _ = done.send(woken.ok());
                });
            }
            let timeout = Duration::from_secs(5);
            for _ in 0..2 {
                shared.notify(1);
                let woken = done_rx.recv_timeout(timeout).expect("a waiter woke");
                assert_eq!(woken, Some(Woken::Job), "{backend:?}");
                assert!(
                    done_rx.recv_timeout(Duration::from_millis(100)).is_err(),
                    "{backend:?}: one announcement wakes one waiter"
                );
            }
            shared.notify(1);
            let last = done_rx.recv_timeout(timeout).expect("the third woke");
            assert_eq!(last, Some(Woken::Job), "{backend:?}");
        }
    }

    #[test]
    fn level_reports_while_readable() {
        for backend in backends() {
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

    #[test]
    fn wait_readable_sees_input_and_a_hang_up() {
        let (mut tx, rx) = socket_pair().expect("pair");
        let none = wait_readable(rx.as_source(), Some(Duration::ZERO)).expect("poll");
        assert!(!none, "nothing written yet");
        tx.write_all(b"d").expect("write");
        assert!(wait_readable(rx.as_source(), None).expect("poll"));
        let (tx, rx) = socket_pair().expect("pair");
        drop(tx);
        let ready = wait_readable(rx.as_source(), Some(Duration::from_secs(5))).expect("poll");
        assert!(ready, "end of file counts as ready");
    }

    #[test]
    fn the_descriptor_limit_is_read() {
        // Every unix test environment has a finite limit of at least a few
        // dozen; Windows has none to read.
        assert!(descriptor_limit().map_or(true, |n| n >= 16));
    }
}
