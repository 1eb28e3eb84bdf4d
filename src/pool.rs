//! The worker threads: the Rust Book's `ThreadPool`, serving turns instead of
//! whole connections, surviving panics, and saying when it is done.
//!
//! A free [`Worker`] takes a new connection (a [`Job`]) from the bounded
//! channel the acceptor fills, or, when there is none, waits in the
//! [parking](crate::parking)'s readiness wait together with the other free
//! workers, and serves whichever parked connection turns ready first. It
//! runs each turn of the handler inside `catch_unwind`; when the handler
//! says to wait, the worker parks the connection and is free again. So a
//! connection between requests holds no worker, and the thread that
//! readiness wakes is the one that serves the turn: no hand-off to another
//! thread on the way (leader/followers).
//!
//! The pool does not join its threads to learn that it is finished: every
//! worker holds a clone of a `done` sender and drops it on exit, so the
//! channel disconnects the moment the last worker is gone.

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::connection::{is_hang_up, Connection, Handler, Next, Waiting};
use crate::error::Error;
use crate::input;
use crate::parking::{Parking, Woken};
use crate::registry::Outcome;
use crate::tls::{self, Before};
use crate::wake::Waker;

/// A connection ready for a turn.
pub(crate) type Job = Connection;

/// How long a worker pauses after its readiness wait failed (out of
/// memory), rather than spin on it.
const WAIT_FAILED_PAUSE: Duration = Duration::from_millis(5);

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

/// The state the workers share with the acceptor and the drain.
pub(crate) struct Pool {
    /// Workers not exited yet.
    alive: AtomicUsize,
    /// Workers in a turn.
    busy: AtomicUsize,
    /// Workers waiting for work in the parking's readiness wait.
    idle: AtomicUsize,
    /// Jobs the acceptor holds because the channel is full.
    overflow: AtomicUsize,
    /// Set by the acceptor when it holds jobs for a full channel: the next
    /// worker to take a job wakes it.
    acceptor_wants_space: AtomicBool,
    acceptor: Waker,
    jobs: Receiver<Job>,
    /// Where connections wait between turns.
    pub(crate) parking: Parking,
}

impl Pool {
    pub(crate) fn new(jobs: Receiver<Job>, parking: Parking, acceptor: Waker) -> Pool {
        Pool {
            alive: AtomicUsize::new(0),
            busy: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            overflow: AtomicUsize::new(0),
            acceptor_wants_space: AtomicBool::new(false),
            acceptor,
            jobs,
            parking,
        }
    }

    pub(crate) fn alive(&self) -> usize {
        self.alive.load(Ordering::SeqCst)
    }

    /// Workers in a turn.
    pub(crate) fn busy(&self) -> usize {
        self.busy.load(Ordering::Relaxed)
    }

    /// Jobs waiting for a worker.
    pub(crate) fn queued(&self) -> usize {
        self.jobs.len() + self.overflow.load(Ordering::SeqCst)
    }

    pub(crate) fn set_overflow(&self, held: usize) {
        self.overflow.store(held, Ordering::SeqCst);
    }

    pub(crate) fn wake_acceptor_on_space(&self) {
        self.acceptor_wants_space.store(true, Ordering::SeqCst);
    }

    /// For the acceptor, after it queued `sent` jobs: wakes as many idle
    /// workers (busy ones look at the channel before they wait).
    pub(crate) fn announce(&self, sent: usize) {
        if sent == 0 {
            return;
        }
        let idle = self.idle.load(Ordering::SeqCst);
        self.parking.announce(sent.min(idle) as u64);
    }

    /// For the acceptor, leaving: the channel is closed; wakes the workers
    /// to see it (each passes it on as it leaves).
    pub(crate) fn release_all(&self) {
        self.parking.announce(self.alive() as u64);
    }

    /// For a worker woken by an announcement: announces again while jobs
    /// wait and workers are idle, or, `leaving`, so that the next idle
    /// worker sees the channel closed too.
    fn pass_on(&self, leaving: bool) {
        let idle = self.idle.load(Ordering::SeqCst);
        if idle > 0 && (leaving || !self.jobs.is_empty()) {
            self.parking.announce(1);
        }
    }
}

/// Why a worker has a connection.
enum Work {
    /// Accepted, not served yet.
    New(Connection),
    /// Parked, and now ready.
    Ready(Connection),
}

/// One named worker thread.
pub(crate) struct Worker {
    pool: Arc<Pool>,
    handler: Arc<dyn Handler>,
}

impl Worker {
    /// Spawns `worker-{index + 1}`. It runs until the job channel is empty
    /// and disconnected, then drops `done`.
    pub(crate) fn spawn(
        index: usize,
        pool: Arc<Pool>,
        handler: Arc<dyn Handler>,
        done: Sender<()>,
    ) -> Result<(), Error> {
        let name = format!("worker-{}", index + 1);
        pool.alive.fetch_add(1, Ordering::SeqCst);
        let counted = Arc::clone(&pool);
        let worker = Worker { pool, handler };
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

    fn run(self) {
        while let Some(work) = self.next() {
            match work {
                Work::New(conn) => self.start(conn),
                Work::Ready(conn) => self.resume(conn),
            }
        }
        self.pool.alive.fetch_sub(1, Ordering::SeqCst);
    }

    /// Waits for the next work; `None` once the job channel is empty and
    /// disconnected (the acceptor is done).
    fn next(&self) -> Option<Work> {
        // Whether this worker was woken by a job announcement, which it
        // passes on if jobs are left (announcements made before anyone
        // woke may have counted once).
        let mut announced = false;
        loop {
            match self.take_job() {
                Ok(Some(conn)) => {
                    if announced {
                        self.pool.pass_on(false);
                    }
                    return Some(Work::New(conn));
                }
                Ok(None) => {}
                Err(_) => {
                    self.pool.pass_on(true);
                    return None;
                }
            }
            // Counted idle, then a last look at the channel: the acceptor
            // queues, then reads the count, so either it sees this worker
            // (and announces the job) or this look sees the job.
            self.pool.idle.fetch_add(1, Ordering::SeqCst);
            let job = self.take_job();
            let woken = match job {
                Ok(None) => Some(self.pool.parking.wait()),
                _ => None,
            };
            self.pool.idle.fetch_sub(1, Ordering::SeqCst);
            match woken {
                Some(Ok(Woken::Ready(conn))) => return Some(Work::Ready(conn)),
                Some(Ok(Woken::Job)) => announced = true,
                Some(Ok(Woken::Nothing)) => {}
                Some(Err(_)) => thread::sleep(WAIT_FAILED_PAUSE),
                // What the last look found, taken at the top of the loop
                // (a job cannot be put back: it is served from here).
                None => match job {
                    Ok(Some(conn)) => return Some(Work::New(conn)),
                    _ => {
                        self.pool.pass_on(true);
                        return None;
                    }
                },
            }
        }
    }

    /// A job from the channel if there is one (`Ok(None)` if not); an error
    /// once it is empty and disconnected.
    fn take_job(&self) -> Result<Option<Connection>, TryRecvError> {
        match self.pool.jobs.try_recv() {
            Ok(conn) => {
                if self.pool.acceptor_wants_space.swap(false, Ordering::SeqCst) {
                    self.pool.acceptor.wake();
                }
                Ok(Some(conn))
            }
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(TryRecvError::Disconnected),
        }
    }

    /// A new connection: served at once if its client has sent something
    /// (one nonblocking read, which the turn's own read would have made),
    /// parked otherwise.
    fn start(&self, mut conn: Connection) {
        // A TLS connection's first input is its handshake, which the turn
        // takes (and answers) as it arrives.
        if !conn.has_buffered_input() && !conn.is_tls() {
            match conn.receive(input::CAPACITY) {
                // Input, or the end of it: the turn sees which.
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return self.park(conn),
                Err(error) => return self.failed(conn, error, 0),
            }
        }
        self.serve(conn);
    }

    /// A parked connection that turned ready: for input, a turn; for room
    /// for its queued output, more of it sent.
    fn resume(&self, mut conn: Connection) {
        if !conn.has_queued_output() {
            return self.serve(conn);
        }
        match conn.send_queued() {
            Ok(true) if conn.close_after_output => conn.close(Outcome::Completed),
            // All sent: on as the last turn said. Or the rest waits.
            Ok(_) => self.park(conn),
            Err(error) => conn.close_with_error(Outcome::Failed, error),
        }
    }

    /// Parks `conn`, or serves it now if the parking says so.
    fn park(&self, conn: Connection) {
        if let Some(conn) = self.pool.parking.park(conn) {
            self.serve(conn);
        }
    }

    /// Serves turns of `conn` until it is closed or parked.
    fn serve(&self, mut conn: Connection) {
        loop {
            if conn.signal().is_forced() {
                return conn.close_forced();
            }
            conn = match self.turn(conn) {
                Some(conn) => conn,
                None => return,
            };
            // Requests read ahead (pipelined) are served at once.
            if conn.has_ready_input() && !conn.has_queued_output() {
                continue;
            }
            conn = match self.pool.parking.park(conn) {
                Some(conn) => conn,
                None => return,
            };
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
        // In a turn, not waiting (also when input was buffered already).
        conn.set_waiting(false);
        let consumed = conn.consumed();
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
                self.failed(conn, error, consumed);
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

    /// Closes `conn` after `error` in a turn that began with `consumed`
    /// bytes of its input consumed.
    fn failed(&self, conn: Connection, error: io::Error, consumed: u64) {
        // Whether the client was at a safe boundary, with nothing new.
        let was_idle = conn.waiting == Waiting::Idle;
        let nothing_new = conn.consumed() == consumed && !conn.has_buffered_input();
        if was_idle && nothing_new && is_hang_up(&error) {
            // Closed or reset while waiting idle, before a byte of a new
            // request: how keep-alive ends, not a failure.
            return conn.close(Outcome::Completed);
        }
        let outcome = match error.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Outcome::TimedOut,
            _ => Outcome::Failed,
        };
        conn.close_with_error(outcome, error);
    }
}
