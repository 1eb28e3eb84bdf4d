//! The worker threads: the Rust Book's `ThreadPool`, serving turns instead of
//! whole connections, surviving panics, and saying when it is done.
//!
//! Each [`Worker`] takes a [`Job`] (a connection with input) from a bounded
//! channel and runs one turn of the handler inside `catch_unwind`. When the
//! handler says to wait, the worker *lingers*: it waits on that connection and
//! on its own wake-up socket, with no timeout, and serves the next turn
//! itself if input comes first. It gives the connection to the acceptor (to
//! park it) only when it is **kicked**, because a connection is queued and no
//! worker is free, or when someone is already waiting after the turn. So with
//! fewer clients than workers a keep-alive connection costs no hand-off at
//! all (as fast as a thread per connection), and with more clients than
//! workers, waiting connections hold no worker (as fair as an event loop).
//!
//! The pool does not join its threads to learn that it is finished: every
//! worker holds a clone of a `done` sender and drops it on exit, so the
//! channel disconnects the moment the last worker is gone.

use std::cell::Cell;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::connection::{is_hang_up, Connection, Handler, Next, Waiting};
use crate::error::Error;
use crate::registry::Outcome;
use crate::sys::{self, AsSource};
use crate::tls::{self, Before};
use crate::wake::{self, WakeReceiver, Waker};

/// A connection ready for a turn.
pub(crate) type Job = Connection;

/// How long a worker waits for a new connection's first bytes before it lets
/// itself be kicked off it. Clients usually send right after connecting, and
/// giving such a connection up to the acceptor would cost a hand-off per
/// connection; a client that stays silent for longer costs a worker no more
/// than this.
const FIRST_INPUT_WINDOW: Duration = Duration::from_millis(2);

/// Timeouts of waiting connections, as the workers and the acceptor apply
/// them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    /// For [`Next::Idle`] waits.
    pub(crate) idle: Option<Duration>,
    /// For [`Next::Wait`] waits.
    pub(crate) wait: Option<Duration>,
}

/// What a waiting connection's time says to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Due {
    /// Nothing yet.
    Nothing,
    /// Its own [deadline](Connection::set_deadline) passed: give it a turn.
    Turn,
    /// Its wait timed out: close it.
    Close,
}

impl Timeouts {
    /// When the wait of `conn` needs looking at: its own deadline, or the
    /// end of its idle or wait timeout, whichever comes first; `None` for
    /// never (or too far to represent).
    pub(crate) fn next(&self, conn: &Connection) -> Option<Instant> {
        if conn.has_queued_output() {
            return conn.deadline();
        }
        let close = self.close_at(conn);
        match (conn.deadline(), close) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// What is due for `conn` at `now`. Its own deadline comes first: the
    /// handler may still have something to say (a `408`).
    pub(crate) fn due(&self, conn: &Connection, now: Instant) -> Due {
        let late = conn.deadline().is_some_and(|d| now >= d);
        if conn.has_queued_output() {
            // Its output is late: nothing for the handler to add.
            return if late { Due::Close } else { Due::Nothing };
        }
        if late {
            Due::Turn
        } else if self.close_at(conn).is_some_and(|d| now >= d) {
            Due::Close
        } else {
            Due::Nothing
        }
    }

    fn close_at(&self, conn: &Connection) -> Option<Instant> {
        let timeout = match conn.waiting {
            Waiting::Idle => self.idle,
            Waiting::Conversation => self.wait,
        };
        timeout.and_then(|t| conn.since.checked_add(t))
    }

    /// Closes a connection whose wait timed out: an idle one's conversation
    /// was over; any other was cut for slowness, and the error says which
    /// wait it outlasted.
    pub(crate) fn close(conn: Connection) {
        let why = if conn.has_queued_output() {
            "the client did not take the queued output by the connection's deadline"
        } else if conn.waiting == Waiting::Idle {
            return conn.close(Outcome::ClosedIdle);
        } else {
            "no input within the wait timeout"
        };
        conn.close_with_error(
            Outcome::TimedOut,
            io::Error::new(io::ErrorKind::TimedOut, why),
        );
    }
}

/// One worker's place in the pool, seen by whoever may kick it.
struct Slot {
    /// Set while the worker lingers on a connection and may be kicked.
    lingering: AtomicBool,
    /// When the connection it lingers on times out, in nanoseconds since the
    /// pool's epoch; `NO_DEADLINE` for none. The worker's own wait has no
    /// timeout (a timer armed per request costs keep-alive throughput): the
    /// acceptor wakes it when this passes.
    deadline: AtomicU64,
    waker: Waker,
}

/// No deadline, in [`Slot::deadline`] and [`Pool::promised`].
const NO_DEADLINE: u64 = u64::MAX;

/// The state the workers share with the acceptor and the drain.
pub(crate) struct Pool {
    slots: Vec<Slot>,
    /// The zero of the slots' deadlines.
    epoch: Instant,
    /// The latest time by which the acceptor has promised to look at the
    /// slots' deadlines (nanoseconds since `epoch`); a worker with an
    /// earlier deadline wakes it.
    promised: AtomicU64,
    /// Workers blocked on the job channel.
    free: AtomicUsize,
    /// Workers kicked and on their way to the job channel.
    kicked: AtomicIsize,
    /// Workers not exited yet.
    alive: AtomicUsize,
    /// Workers in a turn.
    busy: AtomicUsize,
    /// Jobs the acceptor holds because the channel is full.
    overflow: AtomicUsize,
    /// Set by the acceptor when it holds jobs for a full channel: the next
    /// worker to take a job wakes it.
    acceptor_wants_space: AtomicBool,
    acceptor: Waker,
    jobs: Receiver<Job>,
    /// Where kicked workers send connections to be parked.
    park: Sender<Connection>,
    pub(crate) timeouts: Timeouts,
}

impl Pool {
    pub(crate) fn alive(&self) -> usize {
        self.alive.load(Ordering::SeqCst)
    }

    /// Workers in a turn.
    pub(crate) fn busy(&self) -> usize {
        self.busy.load(Ordering::Relaxed)
    }

    /// Workers blocked on the job channel, waiting for work.
    pub(crate) fn free(&self) -> usize {
        self.free.load(Ordering::SeqCst)
    }

    /// Jobs waiting for a worker.
    pub(crate) fn queued(&self) -> usize {
        self.jobs.len() + self.overflow.load(Ordering::SeqCst)
    }

    /// Whether a job waits that no free (or already kicked) worker will take.
    /// Compared with the number of free workers, not with zero: otherwise
    /// lingering workers would be kicked for jobs that a free worker is
    /// about to take anyway.
    pub(crate) fn someone_waits(&self) -> bool {
        let taken = self.free() as isize + self.kicked.load(Ordering::SeqCst);
        self.queued() as isize > taken
    }

    pub(crate) fn set_overflow(&self, held: usize) {
        self.overflow.store(held, Ordering::SeqCst);
    }

    pub(crate) fn wake_acceptor_on_space(&self) {
        self.acceptor_wants_space.store(true, Ordering::SeqCst);
    }

    /// Kicks lingering workers off their connections, one per job that no
    /// worker will take. Called by the acceptor after queueing.
    pub(crate) fn kick_for_waiting_jobs(&self) {
        for slot in &self.slots {
            if !self.someone_waits() {
                return;
            }
            let kicked = slot
                .lingering
                .compare_exchange(true, false, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok();
            if kicked {
                // The kicked worker uncounts itself once back on the
                // channel, possibly before this count: the counter is
                // signed, and a moment at -1 only makes workers give up
                // their connections a little more readily.
                self.kicked.fetch_add(1, Ordering::SeqCst);
                slot.waker.wake();
            }
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos())
            .unwrap_or(NO_DEADLINE - 1)
    }

    /// For the acceptor: wakes the lingering workers whose connection's
    /// timeout has passed (they close it), and returns the next such
    /// deadline, which the acceptor promises to look at by then.
    pub(crate) fn expire_lingering(&self, now: Instant) -> Option<Instant> {
        // Withdraw the promise while scanning: a worker that starts lingering
        // meanwhile then sees no promise and wakes the acceptor, which scans
        // again.
        self.promised.store(0, Ordering::SeqCst);
        let now_nanos = self.nanos(now);
        let mut next = NO_DEADLINE;
        for slot in &self.slots {
            let deadline = slot.deadline.load(Ordering::SeqCst);
            if deadline == NO_DEADLINE {
                continue;
            }
            if deadline <= now_nanos {
                if slot.lingering.load(Ordering::SeqCst) {
                    slot.waker.wake();
                }
            } else {
                next = next.min(deadline);
            }
        }
        self.promised.store(next, Ordering::SeqCst);
        (next != NO_DEADLINE).then(|| self.epoch + Duration::from_nanos(next))
    }

    /// Wakes every lingering worker so that it looks at the shutdown state
    /// (idle grace over, forced) without giving up its connection.
    pub(crate) fn wake_lingering(&self) {
        for slot in &self.slots {
            if slot.lingering.load(Ordering::SeqCst) {
                slot.waker.wake();
            }
        }
    }
}

/// Builds the pool's shared state and its workers' wake-up receivers.
pub(crate) fn new(
    workers: usize,
    jobs: Receiver<Job>,
    park: Sender<Connection>,
    acceptor: Waker,
    timeouts: Timeouts,
) -> Result<(Arc<Pool>, Vec<WakeReceiver>), Error> {
    let mut slots = Vec::with_capacity(workers);
    let mut receivers = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (waker, receiver) = wake::channel().map_err(|e| wake_error(e, workers))?;
        slots.push(Slot {
            lingering: AtomicBool::new(false),
            deadline: AtomicU64::new(NO_DEADLINE),
            waker,
        });
        receivers.push(receiver);
    }
    let pool = Pool {
        slots,
        epoch: Instant::now(),
        promised: AtomicU64::new(NO_DEADLINE),
        free: AtomicUsize::new(0),
        kicked: AtomicIsize::new(0),
        alive: AtomicUsize::new(0),
        busy: AtomicUsize::new(0),
        overflow: AtomicUsize::new(0),
        acceptor_wants_space: AtomicBool::new(false),
        acceptor,
        jobs,
        park,
        timeouts,
    };
    Ok((Arc::new(pool), receivers))
}

/// A worker's wake-up could not be made. Out of descriptors, the error
/// names the limit and what to change, not the readiness wait.
fn wake_error(error: io::Error, workers: usize) -> Error {
    let out_of_descriptors = error
        .raw_os_error()
        .is_some_and(|code| sys::RESOURCE_ERRORS.contains(&code));
    if !out_of_descriptors {
        return Error::Readiness(error);
    }
    Error::Config {
        setting: "workers",
        reason: format!(
            "{workers} workers ran out of descriptors for their wake-ups ({error}): raise \
             the limit on open descriptors (`ulimit -n`, or \
             graceful_server::raise_descriptor_limit) or use fewer workers"
        ),
    }
}

/// One named worker thread.
pub(crate) struct Worker {
    index: usize,
    pool: Arc<Pool>,
    handler: Arc<dyn Handler>,
    wake: WakeReceiver,
    /// Set when this worker was kicked, until it is back on the channel.
    kicked: Cell<bool>,
}

impl Worker {
    /// Spawns `worker-{index + 1}`. It runs until the job channel is empty
    /// and disconnected, then drops `done`.
    pub(crate) fn spawn(
        index: usize,
        pool: Arc<Pool>,
        handler: Arc<dyn Handler>,
        wake: WakeReceiver,
        done: Sender<()>,
    ) -> Result<(), Error> {
        let name = format!("worker-{}", index + 1);
        pool.alive.fetch_add(1, Ordering::SeqCst);
        let counted = Arc::clone(&pool);
        let worker = Worker {
            index,
            pool,
            handler,
            wake,
            kicked: Cell::new(false),
        };
        let spawned = thread::Builder::new().name(name.clone()).spawn(move || {
            worker.run();
            drop(done);
        });
        match spawned {
            // The thread is never joined: `done` tells when it has finished,
            // and a thread stuck in a handler past the deadline must be
            // left behind rather than waited for.
            Ok(_detached) => Ok(()),
            Err(source) => {
                counted.alive.fetch_sub(1, Ordering::SeqCst);
                Err(Error::Spawn {
                    thread: name,
                    source,
                })
            }
        }
    }

    fn slot(&self) -> &Slot {
        &self.pool.slots[self.index]
    }

    fn run(self) {
        loop {
            self.pool.free.fetch_add(1, Ordering::SeqCst);
            // Counted free first, so that free + kicked never dips.
            if self.kicked.take() {
                self.pool.kicked.fetch_sub(1, Ordering::SeqCst);
            }
            let job = self.pool.jobs.recv();
            self.pool.free.fetch_sub(1, Ordering::SeqCst);
            if self.pool.acceptor_wants_space.swap(false, Ordering::SeqCst) {
                self.pool.acceptor.wake();
            }
            match job {
                Ok(conn) => self.serve(conn),
                // Empty and disconnected: the acceptor is done.
                Err(_) => break,
            }
        }
        self.pool.alive.fetch_sub(1, Ordering::SeqCst);
    }

    /// Serves turns of `conn` until it is closed or parked.
    fn serve(&self, mut conn: Connection) {
        // A connection that has not had a turn may have no input yet (it
        // was just accepted): give its client a moment to send before
        // lingering where it can be kicked.
        if !conn.served && !conn.has_buffered_input() {
            match sys::wait_two(conn.stream().as_source(), None, Some(FIRST_INPUT_WINDOW)) {
                Ok(ready) if ready.connection => {}
                Ok(_) => match self.linger(conn) {
                    Some(ready) => conn = ready,
                    None => return,
                },
                Err(error) => return conn.close_with_error(Outcome::Failed, error),
            }
        }
        loop {
            if conn.signal().is_forced() {
                return conn.close_forced();
            }
            conn = match self.turn(conn) {
                Some(conn) => conn,
                None => return,
            };
            // An answer the socket could not take at once is finished by
            // the acceptor, without holding this worker.
            if conn.has_queued_output() {
                return self.park(conn);
            }
            // Others wait for a worker: let them go first. With input
            // already buffered the acceptor queues it again at once, behind
            // them.
            if self.pool.someone_waits() {
                return self.park(conn);
            }
            if !conn.has_ready_input() {
                conn = match self.linger(conn) {
                    Some(conn) => conn,
                    None => return,
                };
            }
        }
    }

    /// Runs one turn; `None` if the connection was closed.
    fn turn(&self, conn: Connection) -> Option<Connection> {
        // TLS: the handshake, and records without plaintext, are taken
        // before the handler, which then only runs with something to read.
        let mut conn = match tls::before_turn(conn) {
            Before::Turn(conn) => conn,
            Before::Wait(conn) => return Some(conn),
            Before::Closed => return None,
        };
        conn.served = true;
        // In a turn, not waiting (also when this worker served the last
        // turn and lingered on it, or input was buffered already).
        conn.set_waiting(false);
        let consumed = conn.consumed();
        // Whether the client was at a safe boundary when this turn began.
        let was_idle = conn.waiting == Waiting::Idle;
        // AssertUnwindSafe: after a panic the connection is closed without
        // being read from again, so no broken state is observed.
        self.pool.busy.fetch_add(1, Ordering::Relaxed);
        let result = panic::catch_unwind(AssertUnwindSafe(|| self.handler.turn(&mut conn)));
        self.pool.busy.fetch_sub(1, Ordering::Relaxed);
        // Input left buffered by a turn that used none of it waits for more
        // from the socket; calling the handler again at once would spin.
        conn.stalled = conn.consumed() == consumed;
        let waiting = match result {
            Ok(Ok(Next::Idle)) => Waiting::Idle,
            Ok(Ok(Next::Wait)) => Waiting::Conversation,
            Ok(Ok(Next::Close)) if !conn.has_queued_output() => {
                conn.close(Outcome::Completed);
                return None;
            }
            Ok(Ok(Next::Close)) => {
                conn.close_after_output = true;
                Waiting::Conversation
            }
            Ok(Err(error)) => {
                let nothing_new = conn.consumed() == consumed && !conn.has_buffered_input();
                if was_idle && nothing_new && is_hang_up(&error) {
                    // Closed or reset while waiting idle, before a byte of
                    // a new request: how keep-alive ends, not a failure.
                    conn.close(Outcome::Completed);
                    return None;
                }
                let outcome = match error.kind() {
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Outcome::TimedOut,
                    _ => Outcome::Failed,
                };
                conn.close_with_error(outcome, error);
                return None;
            }
            Err(_panic) => {
                conn.close(Outcome::Panicked);
                return None;
            }
        };
        conn.waiting = waiting;
        conn.since = Instant::now();
        conn.set_waiting(true);
        if conn.has_queued_output() {
            match conn.send_queued() {
                // The rest waits for the socket, parked.
                Ok(false) => return Some(conn),
                Ok(true) if conn.close_after_output => {
                    conn.close(Outcome::Completed);
                    return None;
                }
                Ok(true) => {}
                Err(error) => {
                    conn.close_with_error(Outcome::Failed, error);
                    return None;
                }
            }
        }
        if waiting == Waiting::Idle && conn.signal().is_closing_idle() && !conn.has_ready_input() {
            // Turned idle after the grace: closed at once. Not with input
            // already buffered: that is a request read ahead, to serve.
            conn.close(Outcome::ClosedIdle);
            return None;
        }
        Some(conn)
    }

    /// Waits on `conn` and on this worker's wake-up socket until the
    /// connection has input (returned, for a turn), or it must be given up:
    /// kicked (parked), timed out or closed at shutdown (`None`).
    fn linger(&self, conn: Connection) -> Option<Connection> {
        let slot = self.slot();
        loop {
            if conn.signal().is_forced() {
                conn.close_forced();
                return None;
            }
            if conn.waiting == Waiting::Idle && conn.signal().is_closing_idle() {
                conn.close(Outcome::ClosedIdle);
                return None;
            }
            match self.pool.timeouts.due(&conn, Instant::now()) {
                Due::Turn => return Some(conn),
                Due::Close => {
                    Timeouts::close(conn);
                    return None;
                }
                Due::Nothing => {}
            }
            let deadline = self.pool.timeouts.next(&conn);
            // Announce the linger, then look for waiting jobs: the acceptor
            // queues, then looks for lingering workers. Both are SeqCst, so
            // one of the two sees the other and no job waits unnoticed.
            slot.lingering.store(true, Ordering::SeqCst);
            if self.pool.someone_waits() {
                self.stop_lingering(false);
                self.park(conn);
                return None;
            }
            if let Some(deadline) = deadline {
                // The acceptor keeps the time: publish the deadline, then
                // wake it if it did not promise to look by then.
                let nanos = self.pool.nanos(deadline);
                slot.deadline.store(nanos, Ordering::SeqCst);
                let promised = self.pool.promised.load(Ordering::SeqCst);
                if promised == 0 || promised > nanos {
                    self.pool.acceptor.wake();
                }
            }
            let ready = sys::wait_two(conn.stream().as_source(), Some(self.wake.as_source()), None);
            slot.deadline.store(NO_DEADLINE, Ordering::SeqCst);
            let woken = ready.as_ref().map_or(true, |ready| ready.wake);
            let kicked = self.stop_lingering(woken);
            let ready = match ready {
                Ok(ready) => ready,
                Err(error) => {
                    conn.close_with_error(Outcome::Failed, error);
                    return None;
                }
            };
            if kicked {
                self.park(conn);
                return None;
            }
            if ready.connection {
                return Some(conn);
            }
            // Woken to look at the time or the shutdown state: loop.
        }
    }

    /// Clears the lingering mark; returns whether this worker was kicked
    /// meanwhile (the kicker cleared the mark first and counted the kick).
    ///
    /// `woken` says whether the wait saw a byte on the wake-up socket. Only
    /// then (or when kicked) is the socket drained: draining an empty socket
    /// would cost a system call per turn. A byte that arrives after the wait
    /// stays readable and only makes the next wait look again.
    fn stop_lingering(&self, woken: bool) -> bool {
        let kicked = !self.slot().lingering.swap(false, Ordering::SeqCst);
        if kicked {
            self.kicked.set(true);
        }
        if woken || kicked {
            // Wake-ups are only hints to look again; consume them all now.
            self.wake.drain();
        }
        kicked
    }

    /// Gives `conn` to the acceptor to wait there.
    fn park(&self, conn: Connection) {
        match self.pool.park.send(conn) {
            Ok(()) => self.pool.acceptor.wake(),
            // The acceptor has exited, which it does only when forced.
            Err(failed) => failed.into_inner().close_forced(),
        }
    }
}
