//! The registry of live connections: every connection from accept to close,
//! the counts behind the [`Report`](crate::Report), and the one way to cut
//! them all at the deadline.
//!
//! The registry holds a shared reference to every live socket. Calling
//! `shutdown` on it makes a handler's blocked `read` or `write` return, which
//! is how a forced shutdown reaches handlers that are in the middle of a
//! turn, without their cooperation. Closing is not the registry's job: a
//! socket closes when the last reference (the connection's own) is dropped.
//!
//! Orderings: `SeqCst` conservatively, except for the statistics
//! (`Relaxed`); each atomic's doc says what it promises and what would be
//! enough. The one handshake here, the acceptor asking to be woken when a
//! connection ends (`acceptor_waits` with `open`), is made of `SeqCst`
//! operations only, so their single total order is its whole argument.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::event::{Event, Hook};
use crate::listener::{Addr, Stream};
// Its own module, since the events name it too; the modules that record
// outcomes in the registry import it from here.
use crate::outcome::Outcome;
use crate::push::PushSetup;
use crate::wake::Waker;

/// Outcome counters: statistics for the report. Each changes under the
/// registry's lock, with the map, so that [`Registry::tally`], under the
/// same lock, reads them consistent with each other and with `open`; the
/// lock does the ordering, and `Relaxed` would be enough.
#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
    closed_idle: AtomicU64,
    force_closed: AtomicU64,
    unserved: AtomicU64,
    panicked: AtomicU64,
    /// Connections given a goodbye turn, and those of them that then
    /// ended as completed (the client answered the goodbye).
    goodbyes: AtomicU64,
    goodbyes_answered: AtomicU64,
}

/// A consistent reading of the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) accepted: u64,
    pub(crate) completed: u64,
    pub(crate) failed: u64,
    pub(crate) timed_out: u64,
    pub(crate) closed_idle: u64,
    pub(crate) force_closed: u64,
    pub(crate) unserved: u64,
    pub(crate) panicked: u64,
    pub(crate) goodbyes: u64,
    pub(crate) goodbyes_answered: u64,
    /// Connections still registered when the tally was taken.
    pub(crate) open: u64,
}

/// Every connection from accept to close.
pub(crate) struct Registry {
    sockets: Mutex<IdMap<Arc<Stream>>>,
    /// The same as `sockets.len()`: changed under the lock, readable
    /// without it. A connection's end decrements it, then swaps
    /// `acceptor_waits` (the handshake: see there).
    open: AtomicUsize,
    /// Connections between turns and not queued: waiting for input. A
    /// statistic, read only for reports; `Relaxed`.
    waiting: AtomicUsize,
    /// The part of `waiting` waiting idle. A statistic, read only for
    /// reports; `Relaxed`.
    waiting_idle: AtomicUsize,
    /// The next connection's id. Only its uniqueness matters, which the
    /// read-modify-write gives at any ordering; `Relaxed`.
    next_id: AtomicU64,
    /// Set by the acceptor when it waits for a connection to end: it has
    /// stopped accepting at the connection maximum, or it is waiting for the
    /// last connection of the drain. A handshake with `open`: the acceptor
    /// sets this, then reads `open`; a connection's end decrements `open`,
    /// then swaps this back. All four are `SeqCst`, so in their single total
    /// order one side comes second and sees the other's store: the acceptor
    /// sees the connection gone, or the end sees the flag and wakes it.
    /// (`Relaxed` would not do; `Relaxed` with a `SeqCst` fence between each
    /// side's two operations would, as in [hand-off](crate::handoff).)
    acceptor_waits: AtomicBool,
    acceptor: Waker,
    counters: Counters,
    hook: Option<Hook>,
    /// What every connection's pushers need.
    push: PushSetup,
}

/// What a connection's end tells the hook, besides its outcome.
pub(crate) struct Ending<'a> {
    pub(crate) peer: &'a Addr,
    pub(crate) open_for: std::time::Duration,
    pub(crate) error: Option<&'a std::io::Error>,
    pub(crate) said_goodbye: bool,
}

impl Registry {
    pub(crate) fn new(acceptor: Waker, hook: Option<Hook>, push: PushSetup) -> Registry {
        Registry {
            sockets: Mutex::default(),
            open: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            waiting_idle: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            acceptor_waits: AtomicBool::new(false),
            acceptor,
            counters: Counters::default(),
            hook,
            push,
        }
    }

    /// What a connection's pushers need.
    pub(crate) fn push_setup(&self) -> &PushSetup {
        &self.push
    }

    fn lock(&self) -> MutexGuard<'_, IdMap<Arc<Stream>>> {
        // Nothing panics while holding this lock, and the map stays valid even
        // if something did, so poisoning is safe to ignore.
        self.sockets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a freshly accepted socket and returns its id.
    pub(crate) fn register(&self, socket: Arc<Stream>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut sockets = self.lock();
        sockets.insert(id, socket);
        self.open.fetch_add(1, Ordering::SeqCst);
        self.counters.accepted.fetch_add(1, Ordering::SeqCst);
        id
    }

    /// Counts a socket that was accepted but could not be prepared; it was
    /// closed at once.
    pub(crate) fn reject(&self) {
        let _sockets = self.lock();
        self.counters.accepted.fetch_add(1, Ordering::SeqCst);
        self.counters.unserved.fetch_add(1, Ordering::SeqCst);
    }

    /// Removes a connection, counts its outcome and tells the hook.
    pub(crate) fn finish(&self, id: u64, outcome: Outcome, ending: Ending<'_>) {
        let mut sockets = self.lock();
        if sockets.remove(&id).is_none() {
            return;
        }
        let c = &self.counters;
        let counter = match outcome {
            Outcome::Completed => &c.completed,
            Outcome::Failed => &c.failed,
            Outcome::TimedOut => &c.timed_out,
            Outcome::ClosedIdle => &c.closed_idle,
            Outcome::ForceClosed => &c.force_closed,
            Outcome::Unserved => &c.unserved,
            Outcome::Panicked => &c.panicked,
        };
        counter.fetch_add(1, Ordering::SeqCst);
        if ending.said_goodbye {
            c.goodbyes.fetch_add(1, Ordering::SeqCst);
            if outcome == Outcome::Completed {
                c.goodbyes_answered.fetch_add(1, Ordering::SeqCst);
            }
        }
        self.open.fetch_sub(1, Ordering::SeqCst);
        drop(sockets);
        // After the decrement (SeqCst), so an acceptor that set the flag and
        // then read the count either saw this connection gone or is woken.
        if self.acceptor_waits.swap(false, Ordering::SeqCst) {
            self.acceptor.wake();
        }
        self.tell(&Event::ConnectionEnded {
            id,
            peer: ending.peer,
            outcome,
            open_for: ending.open_for,
            error: ending.error,
        });
    }

    /// Calls the hook, if any (and, with the `log` feature, sends the
    /// event to the `log` facade).
    pub(crate) fn tell(&self, event: &Event<'_>) {
        #[cfg(feature = "log")]
        crate::logging::log(event);
        if let Some(hook) = &self.hook {
            hook.call(event);
        }
    }

    /// Connections accepted so far.
    pub(crate) fn accepted(&self) -> u64 {
        self.counters.accepted.load(Ordering::SeqCst)
    }

    /// Connections accepted and not yet closed.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Counts a connection into or out of "waiting for input".
    pub(crate) fn count_waiting(&self, waiting: bool, idle: bool) {
        let counters = [&self.waiting, &self.waiting_idle];
        for counter in counters.iter().take(if idle { 2 } else { 1 }) {
            if waiting {
                counter.fetch_add(1, Ordering::Relaxed);
            } else {
                counter.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Connections waiting idle between turns (between requests).
    pub(crate) fn waiting_idle(&self) -> usize {
        self.waiting_idle.load(Ordering::Relaxed)
    }

    /// Connections between turns, waiting for input.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Asks for a wake-up when the next connection ends. The caller checks
    /// the count again after this, so no ending is missed.
    pub(crate) fn wake_acceptor_on_finish(&self) {
        self.acceptor_waits.store(true, Ordering::SeqCst);
    }

    /// Shuts every live socket down in both directions, so that handlers
    /// blocked in `read` or `write` return.
    pub(crate) fn cut_all(&self) {
        let sockets: Vec<Arc<Stream>> = self.lock().values().cloned().collect();
        for socket in sockets {
            // An error means the socket is already gone, which is the goal.
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    /// Counts every connection still open as force-closed: their threads
    /// are left behind, stuck in a handler after the force. If one ever
    /// returns, its connection's end is not counted again.
    pub(crate) fn count_left_behind(&self) {
        let mut sockets = self.lock();
        let left = sockets.len();
        sockets.clear();
        self.counters
            .force_closed
            .fetch_add(left as u64, Ordering::SeqCst);
        self.open.fetch_sub(left, Ordering::SeqCst);
    }

    /// The counts so far.
    pub(crate) fn tally(&self) -> Tally {
        let sockets = self.lock();
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
        Tally {
            accepted: get(&c.accepted),
            completed: get(&c.completed),
            failed: get(&c.failed),
            timed_out: get(&c.timed_out),
            closed_idle: get(&c.closed_idle),
            force_closed: get(&c.force_closed),
            unserved: get(&c.unserved),
            panicked: get(&c.panicked),
            goodbyes: get(&c.goodbyes),
            goodbyes_answered: get(&c.goodbyes_answered),
            open: sockets.len() as u64,
        }
    }
}

/// A map keyed by connection id, hashed with [`IdHasher`].
pub(crate) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Hashes a connection id (a counter the server assigns, never a client's
/// choice, so no flooding of one bucket can be provoked) with one
/// multiplication, spreading it to the high bits the table's probes use:
/// the default SipHash cost about 200 instructions per lookup, several
/// a request.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only ids are hashed (`write_u64`); anything else still works.
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, id: u64) {
        // Fibonacci hashing: 2^64 divided by the golden ratio.
        self.0 = (self.0 ^ id).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
