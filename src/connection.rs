//! What a handler gets ([`Connection`]: id, peer, shutdown checks, idle
//! marking) and the registry of live connections behind it.
//!
//! The registry keeps a `try_clone` of every live stream. A clone shares the
//! socket with the handler's stream, so calling `shutdown` on the clone makes
//! the handler's blocked `read` return: that is how idle connections are
//! closed at shutdown and every remaining one is cut at the deadline, without
//! the handler's cooperation.

use std::collections::HashMap;
use std::fmt;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::pool::Liveness;
use crate::shutdown::Signal;

// The life of a registered connection. Transitions are compare-and-swaps, so
// the handler marking itself idle and the server closing idle connections can
// race without a lock and without losing a close.
const BUSY: u8 = 0;
const IDLE: u8 = 1;
const IDLE_CLOSED: u8 = 2;
const FORCE_CLOSED: u8 = 3;

/// One live connection as the registry sees it.
pub(crate) struct Entry {
    /// A clone of the handler's stream, used only to `shutdown` it. `None`
    /// if no descriptor was left for the clone: the connection is served
    /// anyway, but the server cannot cut it.
    stream: Option<TcpStream>,
    state: AtomicU8,
    /// When the connection last turned idle, in nanoseconds since the
    /// registry's epoch.
    idle_since: AtomicU64,
}

impl Entry {
    /// Closes the read side if the connection is idle. Returns whether this
    /// call closed it.
    fn close_if_idle(&self) -> bool {
        // Without a clone there is nothing to close it with: it stays idle,
        // and the handler sees the shutdown through `is_shutting_down`.
        let Some(stream) = &self.stream else {
            return false;
        };
        let closed = self
            .state
            .compare_exchange(IDLE, IDLE_CLOSED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if closed {
            // Only the read side: the handler's pending `read` returns end of
            // file, while a response it may already be writing still goes out.
            // An error here means the socket is already gone, which is the
            // goal.
            let _ = stream.shutdown(Shutdown::Read);
        }
        closed
    }

    fn force_close(&self) {
        self.state.store(FORCE_CLOSED, Ordering::SeqCst);
        // Both directions, so a handler blocked in `read` or in `write` (to a
        // client that stopped reading) returns.
        if let Some(stream) = &self.stream {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// How a connection's time on the server ended, before the registry decides
/// which outcome of the report it counts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The handler returned `Ok`.
    Returned,
    /// The handler returned an error.
    Failed,
    /// The handler panicked.
    Panicked,
    /// No handler ever ran: closed in the queue at the deadline, or the stream
    /// could not be prepared.
    Unserved,
}

/// Outcome counters. Updated only while the registry's map is locked, so a
/// snapshot taken under the same lock always adds up.
#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    closed_idle: AtomicU64,
    force_closed: AtomicU64,
    unserved: AtomicU64,
    panicked: AtomicU64,
}

/// A consistent reading of the counters.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Tally {
    pub(crate) accepted: u64,
    pub(crate) completed: u64,
    pub(crate) failed: u64,
    pub(crate) closed_idle: u64,
    pub(crate) force_closed: u64,
    pub(crate) unserved: u64,
    pub(crate) panicked: u64,
    /// Connections still registered when the tally was taken.
    pub(crate) open: u64,
}

/// Every connection from accept to close.
pub(crate) struct Registry {
    entries: Mutex<HashMap<u64, Arc<Entry>>>,
    /// The zero of `Entry::idle_since`.
    epoch: Instant,
    next_id: AtomicU64,
    /// Set when idle connections start being closed (end of the grace window).
    closing_idle: AtomicBool,
    /// Accepted, not yet picked up by a worker.
    waiting: AtomicUsize,
    counters: Counters,
}

impl Registry {
    pub(crate) fn new() -> Registry {
        Registry {
            entries: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
            next_id: AtomicU64::new(1),
            closing_idle: AtomicBool::new(false),
            waiting: AtomicUsize::new(0),
            counters: Counters::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Entry>>> {
        // Nothing panics while holding this lock, and the map stays valid even
        // if something did, so poisoning is safe to ignore.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a freshly accepted stream; it counts as waiting for a worker
    /// until [`Registry::start`].
    pub(crate) fn register(&self, clone: Option<TcpStream>) -> (u64, Arc<Entry>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(Entry {
            stream: clone,
            state: AtomicU8::new(BUSY),
            idle_since: AtomicU64::new(0),
        });
        let mut entries = self.lock();
        entries.insert(id, Arc::clone(&entry));
        self.counters.accepted.fetch_add(1, Ordering::SeqCst);
        self.waiting.fetch_add(1, Ordering::SeqCst);
        (id, entry)
    }

    /// Counts a stream that was accepted but could not be prepared (set
    /// blocking, given its timeouts). It was closed at once.
    pub(crate) fn reject(&self) {
        let _entries = self.lock();
        self.counters.accepted.fetch_add(1, Ordering::SeqCst);
        self.counters.unserved.fetch_add(1, Ordering::SeqCst);
    }

    /// A worker picked the connection up.
    pub(crate) fn start(&self) {
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }

    /// Removes the connection and counts its outcome. Dropping the entry
    /// drops the registry's clone; with the handler's stream gone too, the
    /// socket closes.
    pub(crate) fn finish(&self, id: u64, ending: Ending) {
        let mut entries = self.lock();
        let Some(entry) = entries.remove(&id) else {
            return;
        };
        if ending == Ending::Unserved {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
        let state = entry.state.load(Ordering::SeqCst);
        let counter = match ending {
            Ending::Unserved => &self.counters.unserved,
            _ if state == FORCE_CLOSED => &self.counters.force_closed,
            Ending::Panicked => &self.counters.panicked,
            _ if state == IDLE_CLOSED => &self.counters.closed_idle,
            Ending::Failed => &self.counters.failed,
            Ending::Returned => &self.counters.completed,
        };
        counter.fetch_add(1, Ordering::SeqCst);
        drop(entries);
        drop(entry);
    }

    /// Number of connections accepted and not yet finished.
    pub(crate) fn open(&self) -> usize {
        self.lock().len()
    }

    /// Number of connections accepted and waiting for a worker.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Ends the grace window: closes every idle connection, and from now on
    /// closes connections as soon as they turn idle.
    pub(crate) fn close_idle(&self) -> usize {
        self.closing_idle.store(true, Ordering::SeqCst);
        let entries: Vec<Arc<Entry>> = self.lock().values().cloned().collect();
        entries.iter().filter(|e| e.close_if_idle()).count()
    }

    fn nanos_since_epoch(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Closes the connection idle the longest, if it has been idle for at
    /// least `min_idle`, to free its worker for a connection waiting in the
    /// queue. Returns whether it closed one.
    pub(crate) fn close_longest_idle(&self, min_idle: Duration) -> bool {
        let now = self.nanos_since_epoch();
        let min_idle = u64::try_from(min_idle.as_nanos()).unwrap_or(u64::MAX);
        let longest = self
            .lock()
            .values()
            .filter(|e| e.state.load(Ordering::SeqCst) == IDLE)
            .map(|e| (e.idle_since.load(Ordering::SeqCst), e))
            .filter(|(since, _)| now.saturating_sub(*since) >= min_idle)
            .min_by_key(|(since, _)| *since)
            .map(|(_, e)| Arc::clone(e));
        // Closed outside the lock: `shutdown` is a system call.
        longest.is_some_and(|e| e.close_if_idle())
    }

    /// Shuts down every remaining connection in both directions.
    pub(crate) fn force_close_all(&self) {
        self.closing_idle.store(true, Ordering::SeqCst);
        let entries: Vec<Arc<Entry>> = self.lock().values().cloned().collect();
        for entry in entries {
            entry.force_close();
        }
    }

    /// Counts every connection still registered as force-closed (their
    /// handlers are stuck) and returns the tally.
    pub(crate) fn tally(&self) -> Tally {
        let entries = self.lock();
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
        Tally {
            accepted: get(&c.accepted),
            completed: get(&c.completed),
            failed: get(&c.failed),
            closed_idle: get(&c.closed_idle),
            force_closed: get(&c.force_closed),
            unserved: get(&c.unserved),
            panicked: get(&c.panicked),
            open: entries.len() as u64,
        }
    }
}

/// The context a handler receives with its stream.
///
/// It tells the handler who it is talking to, lets it learn of shutdown (to
/// finish the current exchange and close politely), and lets it mark the
/// connection idle while it waits for the next request, so that shutdown does
/// not have to wait for a client that has nothing more to say.
pub struct Connection {
    id: u64,
    peer: SocketAddr,
    entry: Arc<Entry>,
    registry: Arc<Registry>,
    liveness: Arc<Liveness>,
    signal: Arc<Signal>,
}

impl Connection {
    pub(crate) fn new(
        id: u64,
        peer: SocketAddr,
        entry: Arc<Entry>,
        registry: Arc<Registry>,
        liveness: Arc<Liveness>,
        signal: Arc<Signal>,
    ) -> Connection {
        Connection {
            id,
            peer,
            entry,
            registry,
            liveness,
            signal,
        }
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    pub(crate) fn signal(&self) -> &Signal {
        &self.signal
    }

    /// A number unique to this connection within its server, starting at 1 in
    /// the order of acceptance.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Whether the server is shutting down. A handler speaking a protocol
    /// with a "closing" marker (HTTP's `Connection: close`) should send it
    /// once this is true, and stop after the current exchange.
    pub fn is_shutting_down(&self) -> bool {
        self.signal.is_shutting_down()
    }

    /// Whether the shutdown has been forced (drain timeout, second signal, or
    /// [`ShutdownHandle::force`](crate::ShutdownHandle::force)). The socket
    /// is shut down by then; a handler busy with something else (a long
    /// computation, a wait) should check this and give up, or its thread is
    /// left behind after the force grace.
    pub fn is_forced(&self) -> bool {
        self.signal.is_forced()
    }

    /// Waits up to `timeout` for shutdown to start; returns whether it did.
    ///
    /// Useful for a handler that waits on something else in a loop: wait in
    /// short slices with this instead of `thread::sleep`.
    pub fn wait_for_shutdown(&self, timeout: Duration) -> bool {
        self.signal.wait_timeout(timeout)
    }

    /// A receiver that becomes ready (disconnected) when shutdown starts, to
    /// use in [`crossbeam_channel::select!`] beside the handler's own
    /// channels. No message is ever sent on it.
    pub fn shutdown_receiver(&self) -> Receiver<()> {
        self.signal.graceful_receiver().clone()
    }

    /// How many other connections are accepted and waiting for a worker.
    ///
    /// Right after a connection is accepted it counts here for the moment a
    /// free worker takes to pick it up; to decide whether to give up a
    /// keep-alive connection, use [`is_under_pressure`](Self::is_under_pressure).
    pub fn waiting(&self) -> usize {
        self.registry.waiting()
    }

    /// Whether connections are waiting for a worker and no worker is free.
    ///
    /// A keep-alive handler should close its connection after the current
    /// response when this is true, so that a few clients cannot hold every
    /// worker while others wait.
    pub fn is_under_pressure(&self) -> bool {
        self.registry.waiting() > 0 && self.liveness.free() == 0
    }

    /// Marks the connection idle until the returned guard is dropped.
    ///
    /// Hold the guard while waiting for the next request, and drop it as soon
    /// as the request's first bytes arrive. At shutdown, idle connections are
    /// closed once the grace window ends (see
    /// [`Builder::idle_grace`](crate::Builder::idle_grace)); a connection that
    /// turns idle after that is closed at once. Closing an idle connection
    /// shuts down its read side: the pending `read` returns `Ok(0)` (end of
    /// file), and the handler should return.
    ///
    /// Idle connections also give their worker up when other connections
    /// wait for one and none is free: then the connection idle the longest,
    /// if idle for at least 10 ms, is closed. So a few idle keep-alive
    /// clients cannot hold the whole pool while others queue, while a
    /// connection whose client is sending its next request right now (idle
    /// for microseconds) is left alone.
    ///
    /// A connection that is not marked idle is never cut before the drain
    /// deadline.
    ///
    /// Hold the guard only around the wait for the *first* bytes of a
    /// request. If the close comes in the instant between `read` returning
    /// those bytes and the guard's drop, what was already received is still
    /// readable (only later reads see end of file); so a request split
    /// across packets may be cut short there, the same race every
    /// keep-alive protocol has when a server closes an idle connection, and
    /// the reason clients retry a request that met a closed keep-alive
    /// connection.
    ///
    /// ```no_run
    /// # use std::io::Read;
    /// # fn handler(mut stream: std::net::TcpStream, conn: &graceful_server::Connection) -> std::io::Result<()> {
    /// let mut buf = [0; 1024];
    /// loop {
    ///     let n = {
    ///         let _idle = conn.idle();
    ///         stream.read(&mut buf)?
    ///     };
    ///     if n == 0 {
    ///         return Ok(()); // client hung up, or closed as idle at shutdown
    ///     }
    ///     // ... handle the request in buf[..n] ...
    /// }
    /// # }
    /// ```
    pub fn idle(&self) -> IdleGuard<'_> {
        let now = self.registry.nanos_since_epoch();
        self.entry.idle_since.store(now, Ordering::SeqCst);
        let marked = self
            .entry
            .state
            .compare_exchange(BUSY, IDLE, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        // Checked after publishing the mark: either the closer sees IDLE, or
        // this sees the closer's flag (both are SeqCst), so no close is lost.
        if marked && self.registry.closing_idle.load(Ordering::SeqCst) {
            self.entry.close_if_idle();
        }
        IdleGuard { conn: self }
    }

    /// Whether this connection was closed by the server (as idle at shutdown,
    /// or at the deadline). Reads on it return end of file.
    pub fn is_closed_by_server(&self) -> bool {
        matches!(
            self.entry.state.load(Ordering::SeqCst),
            IDLE_CLOSED | FORCE_CLOSED
        )
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .field("shutting_down", &self.is_shutting_down())
            .finish_non_exhaustive()
    }
}

/// Keeps a connection marked idle; see [`Connection::idle`].
#[must_use = "the connection is idle only while the guard is held"]
pub struct IdleGuard<'a> {
    conn: &'a Connection,
}

impl Drop for IdleGuard<'_> {
    fn drop(&mut self) {
        // Fails harmlessly if the connection was closed meanwhile: it stays
        // marked closed, which decides its outcome in the report.
        let _ =
            self.conn
                .entry
                .state
                .compare_exchange(IDLE, BUSY, Ordering::SeqCst, Ordering::SeqCst);
    }
}

impl fmt::Debug for IdleGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdleGuard")
            .field("connection", &self.conn.id)
            .finish()
    }
}
