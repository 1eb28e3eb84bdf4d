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
//! How a new connection reaches a free worker without a wake-up being lost
//! is the [hand-off](crate::handoff)'s business, and its argument is there.
//!
//! The pool does not join its threads to learn that it is finished: every
//! worker holds a clone of a `done` sender and drops it on exit, so the
//! channel disconnects the moment the last worker is gone.
//!
//! Orderings: `SeqCst` conservatively, except for the statistics
//! (`Relaxed`); each field says what would be enough. No handshake lives
//! here: the counts are read for reports and for how many workers to wake
//! at the end, where each leaving worker passes the wake-up on anyway.

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use crossbeam_channel::{Receiver, Sender};

use crate::connection::Handler;
use crate::error::Error;
use crate::handoff::{self, Handoff, Wait};
use crate::input;
use crate::lifecycle::{Decision, Event, Life, Panicked};
use crate::parking::Parking;
use crate::push::Doorbell;
use crate::wake::Waker;

/// The state the workers share with the acceptor and the drain.
pub(crate) struct Pool {
    /// Workers started and not exited: counted before a thread is spawned
    /// (uncounted if the spawn fails), uncounted as the thread's last act.
    /// Read for the report's threads left behind and for how many workers
    /// to wake when the acceptor leaves (a hint: see
    /// [hand-off](crate::handoff)). `SeqCst` conservatively; `Relaxed`
    /// would be enough.
    alive: AtomicUsize,
    /// Workers in a turn: a statistic, read only for reports; `Relaxed`.
    busy: AtomicUsize,
    /// Jobs the acceptor holds because the channel is full: a statistic,
    /// written by the acceptor and read only for reports. `SeqCst`
    /// conservatively; `Relaxed` would be enough.
    overflow: AtomicUsize,
    /// New connections, from the acceptor to the free workers.
    handoff: Handoff<Life>,
    /// Where connections wait between turns.
    pub(crate) parking: Parking,
}

/// The parking's readiness wait is where free workers wait for jobs.
impl Wait for Parking {
    type Ready = Life;

    fn wait(&self) -> io::Result<handoff::Woken<Life>> {
        Parking::wait(self)
    }

    fn notify(&self, jobs: u64) {
        self.announce(jobs);
    }
}

impl Pool {
    pub(crate) fn new(jobs: Receiver<Life>, parking: Parking, acceptor: Waker) -> Pool {
        Pool {
            alive: AtomicUsize::new(0),
            busy: AtomicUsize::new(0),
            overflow: AtomicUsize::new(0),
            handoff: Handoff::new(jobs, acceptor),
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
        self.handoff.len() + self.overflow.load(Ordering::SeqCst)
    }

    pub(crate) fn set_overflow(&self, held: usize) {
        self.overflow.store(held, Ordering::SeqCst);
    }

    /// For the acceptor, the channel full: the next worker to take a job
    /// wakes it. It tries to send once more after this
    /// ([`Handoff::want_space`]).
    pub(crate) fn wake_acceptor_on_space(&self) {
        self.handoff.want_space();
    }

    /// For the acceptor, after it queued `sent` jobs: wakes as many waiting
    /// workers ([`Handoff::announce`]).
    pub(crate) fn announce(&self, sent: usize) {
        self.handoff.announce(&self.parking, sent);
    }

    /// For the acceptor, leaving: the channel is closed; wakes the workers
    /// to see it (each passes it on as it leaves).
    pub(crate) fn release_all(&self) {
        self.parking.announce(self.alive() as u64);
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
        // Waits for the next connection to serve (`None` once the job
        // channel is empty and disconnected: the acceptor is done), and
        // serves it where it lands, without moving it again.
        while let Some(next) = self.pool.handoff.next(&self.pool.parking) {
            match next {
                handoff::Next::Job(life) => self.serve(life, Event::Start),
                handoff::Next::Ready(life) => self.serve(life, Event::Ready),
            }
        }
        self.pool.alive.fetch_sub(1, Ordering::SeqCst);
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
                Decision::Close(outcome, error) => {
                    return self.pool.parking.close(life, outcome, error)
                }
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
