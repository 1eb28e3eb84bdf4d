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

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::connection::Handler;
use crate::error::Error;
use crate::input;
use crate::lifecycle::{Decision, Event, Life, Panicked};
use crate::parking::{Parking, Woken};
use crate::push::Doorbell;
use crate::wake::Waker;

/// How long a worker pauses after its readiness wait failed (out of
/// memory), rather than spin on it.
const WAIT_FAILED_PAUSE: Duration = Duration::from_millis(5);

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
    jobs: Receiver<Life>,
    /// Where connections wait between turns.
    pub(crate) parking: Parking,
}

impl Pool {
    pub(crate) fn new(jobs: Receiver<Life>, parking: Parking, acceptor: Waker) -> Pool {
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

impl Doorbell for Pool {
    fn ring(&self, id: u64) {
        self.parking.ring(id);
    }
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
        while let Some((life, event)) = self.next() {
            self.serve(life, event);
        }
        self.pool.alive.fetch_sub(1, Ordering::SeqCst);
    }

    /// Waits for the next connection to serve, and what happened to it;
    /// `None` once the job channel is empty and disconnected (the acceptor
    /// is done).
    fn next(&self) -> Option<(Life, Event)> {
        // Whether this worker was woken by a job announcement, which it
        // passes on if jobs are left (announcements made before anyone
        // woke may have counted once).
        let mut announced = false;
        loop {
            match self.take_job() {
                Ok(Some(life)) => {
                    if announced {
                        self.pool.pass_on(false);
                    }
                    return Some((life, Event::Start));
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
                Some(Ok(Woken::Ready(life))) => return Some((life, Event::Ready)),
                Some(Ok(Woken::Job)) => announced = true,
                Some(Ok(Woken::Nothing)) => {}
                Some(Err(_)) => thread::sleep(WAIT_FAILED_PAUSE),
                // What the last look found, taken at the top of the loop
                // (a job cannot be put back: it is served from here).
                None => match job {
                    Ok(Some(life)) => return Some((life, Event::Start)),
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
    fn take_job(&self) -> Result<Option<Life>, TryRecvError> {
        match self.pool.jobs.try_recv() {
            Ok(life) => {
                if self.pool.acceptor_wants_space.swap(false, Ordering::SeqCst) {
                    self.pool.acceptor.wake();
                }
                Ok(Some(life))
            }
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(TryRecvError::Disconnected),
        }
    }

    /// Serves `life` after `event`, doing what its
    /// [lifecycle](crate::lifecycle) decides, until it is parked or closed.
    fn serve(&self, mut life: Life, event: Event) {
        let mut decision = life.decide(event);
        loop {
            let event = match decision {
                Decision::Receive => Event::Received(life.conn_mut().receive(input::CAPACITY)),
                Decision::Tls => Event::Tls(life.advance_tls()),
                Decision::OpenMail => Event::MailOpened(life.conn_mut().open_mail()),
                Decision::Turn => self.turn(&mut life),
                Decision::Send => Event::Sent(life.conn_mut().send_queued()),
                Decision::Wait | Decision::Park(_) | Decision::Stay => {
                    match self.pool.parking.park(life) {
                        None => return,
                        Some((back, instead)) => {
                            (life, decision) = (back, instead);
                            continue;
                        }
                    }
                }
                Decision::Close(outcome, error) => return life.close(outcome, error),
            };
            decision = life.decide(event);
        }
    }

    /// Runs one turn of the handler (or of the protocol the connection
    /// switched to), inside `catch_unwind`.
    fn turn(&self, life: &mut Life) -> Event {
        let consumed = life.start_turn();
        self.pool.busy.fetch_add(1, Ordering::Relaxed);
        // AssertUnwindSafe: after a panic the connection is closed without
        // being read from again, so no broken state is observed.
        let conn = life.conn_mut();
        let result = panic::catch_unwind(AssertUnwindSafe(|| match conn.take_protocol() {
            // Switched to another protocol (a WebSocket): it serves the turn.
            Some(mut protocol) => {
                let next = protocol.turn(conn);
                conn.restore_protocol(protocol);
                next
            }
            None => self.handler.turn(conn),
        }));
        self.pool.busy.fetch_sub(1, Ordering::Relaxed);
        Event::TurnEnded {
            result: result.map_err(|_| Panicked),
            consumed,
        }
    }
}
