//! The shutdown sequence, from the signal to the [`Report`]: drain delay,
//! stop accepting, idle grace, deadline, force, threads left behind.
//!
//! [`Drain::run`] reads as the phases, top to bottom, and each step is one
//! function here: [`Drain::stop_accepting`] (the acceptor sweeps the
//! backlogs and closes the listeners), [`Drain::end_idle_grace`] and
//! [`Drain::force`]. What each step does to one connection is the
//! [lifecycle](crate::lifecycle)'s decision, for the connections parked
//! (swept here), in a turn (at its end) or queued.
//!
//! The drain runs on its own thread (the caller's, for
//! [`Server::serve`](crate::Server::serve)). Every wait here is on channels
//! that disconnect (shutdown started, forced, everyone done), with a timeout
//! only when a phase ends at a known time, so nothing is polled.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::event::Event;
use crate::lifecycle::{self, Life};
use crate::pool::Pool;
use crate::registry::Registry;
use crate::report::Report;
use crate::shutdown::{ForceReason, ShutdownState};
use crate::systemd::Notifier;

/// The durations the drain applies.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Phases {
    pub(crate) drain_timeout: Option<Duration>,
    pub(crate) idle_grace: Duration,
    pub(crate) force_grace: Duration,
    /// `Some((batch, interval))`: goodbyes spread over time.
    pub(crate) goodbye_pace: Option<(usize, Duration)>,
}

/// Everything the drain watches.
pub(crate) struct Drain {
    pub(crate) phases: Phases,
    pub(crate) notifier: Option<Notifier>,
    pub(crate) signal: Arc<ShutdownState>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) pool: Arc<Pool>,
    /// A receiver of the job channel, to close queued connections when
    /// forced.
    pub(crate) jobs: Receiver<Life>,
    /// Disconnects when the acceptor and every worker have exited.
    pub(crate) done: Receiver<()>,
    pub(crate) listener_closed: Arc<OnceLock<Instant>>,
    pub(crate) started: Instant,
}

/// Why a wait in the drain ended.
#[derive(Debug, PartialEq, Eq)]
enum Wake {
    /// Every worker and the acceptor exited.
    Done,
    /// Shutdown was forced.
    Forced,
    /// The time ran out.
    Timeout,
}

/// `start + duration`, or `None` (never) if that is too far to represent.
fn after(start: Instant, duration: Duration) -> Option<Instant> {
    start.checked_add(duration)
}

impl Drain {
    /// Waits for the signal, leads the shutdown to its end, and reports.
    pub(crate) fn run(self) -> Report {
        // Blocks without timeout: an idle server costs no wake-ups here.
        let _ = self.signal.graceful_receiver().recv();
        let signalled = Instant::now();
        self.registry.tell(&Event::ShutdownStarted {
            trigger: self.signal.trigger(),
            open: self.registry.open(),
            drain_delay: self.signal.drain_delay(),
            idle_grace: self.phases.idle_grace,
            drain_timeout: self.phases.drain_timeout,
        });
        self.notify("STOPPING=1");
        let delay = self.signal.drain_delay();
        if delay.is_zero() {
            self.stop_accepting();
        } else {
            self.notify(&format!(
                "STATUS=shutting down: serving for {delay:?} more before draining"
            ));
            // Serve normally, while `is_shutting_down` already says true. Only
            // a force cuts the delay short: the acceptor keeps `done` open.
            self.wait(after(signalled, delay));
            self.stop_accepting();
        }
        let draining = Instant::now();
        self.notify(&format!(
            "STATUS=draining {} connection(s)",
            self.registry.open()
        ));
        let deadline = self.phases.drain_timeout.and_then(|t| after(draining, t));
        self.say_goodbye(deadline);
        let draining = Instant::now();

        let mut wake = Wake::Timeout;
        let grace_end = after(draining, self.phases.idle_grace);
        if !self.phases.idle_grace.is_zero() {
            let until = match (deadline, grace_end) {
                (Some(d), Some(g)) => Some(d.min(g)),
                (d, g) => d.or(g),
            };
            wake = self.wait(until);
        }
        if wake == Wake::Timeout {
            // The grace is over, unless it is the deadline that came first.
            let over = grace_end.is_some_and(|end| Instant::now() >= end);
            self.end_idle_grace(over);
            wake = self.wait(deadline);
        }
        let drained = Instant::now();

        let mut left_behind = 0;
        if wake != Wake::Done {
            // Deadline or second signal: cut everything still open.
            self.force(wake == Wake::Timeout);
            let grace_end = after(Instant::now(), self.phases.force_grace);
            if self.wait_done(grace_end) != Wake::Done {
                left_behind = self.pool.alive();
                // Still open now means stuck in a handler after being cut.
                self.registry.count_left_behind();
            }
        }
        let returned = Instant::now();

        let tally = self.registry.tally();
        let stop_accepting = self.listener_closed.get().map_or(Duration::ZERO, |closed| {
            closed.saturating_duration_since(signalled)
        });
        let report = Report {
            accepted: tally.accepted,
            completed: tally.completed,
            failed: tally.failed,
            timed_out: tally.timed_out,
            closed_idle: tally.closed_idle,
            force_closed: tally.force_closed,
            unserved: tally.unserved,
            panicked: tally.panicked,
            goodbyes: tally.goodbyes,
            goodbyes_answered: tally.goodbyes_answered,
            threads_left_behind: left_behind,
            forced: self.signal.is_forced(),
            serving: signalled.saturating_duration_since(self.started),
            stop_accepting,
            drain: drained - signalled,
            force: returned - drained,
            shutdown: returned - signalled,
        };
        self.registry.tell(&Event::Finished { report: &report });
        report
    }

    /// Stop accepting: the acceptor, woken, accepts what waits in every
    /// listener's backlog, then closes the listeners
    /// (`acceptor::Loop::stop_accepting`). New connects are refused from
    /// then on.
    fn stop_accepting(&self) {
        self.signal.stop_accepting();
    }

    /// The goodbyes: every parked connection that asked for one and waits
    /// mid-conversation gets a turn that says so (connections in a turn get
    /// theirs after it: the [lifecycle](crate::lifecycle)'s goodbye rule).
    /// Paced, batch by batch, until none is left, the drain is over, or
    /// `deadline`.
    fn say_goodbye(&self, deadline: Option<Instant>) {
        let Some((batch, interval)) = self.phases.goodbye_pace else {
            self.pool
                .parking
                .sweep(|| lifecycle::Event::Goodbye, usize::MAX);
            return;
        };
        while self.pool.parking.sweep(|| lifecycle::Event::Goodbye, batch) == batch {
            let next = after(Instant::now(), interval);
            let until = match (deadline, next) {
                (Some(d), Some(n)) => Some(d.min(n)),
                (d, n) => d.or(n),
            };
            if self.wait(until) != Wake::Timeout || until == deadline {
                return;
            }
        }
    }

    /// The end of the idle grace (`over`: it ran its course, rather than
    /// being cut short by the deadline): every connection waiting idle is
    /// closed, now if it is parked, and at the end of its turn if it is in
    /// one (the [lifecycle](crate::lifecycle)'s idle-grace rule).
    fn end_idle_grace(&self, over: bool) {
        if over {
            self.registry.tell(&Event::IdleGraceOver {
                closed: self.registry.waiting_idle() as u64,
            });
        }
        // The state first, then the sweep: a connection parked after the
        // sweep looked at its shard sees the state (see `Parking::park`).
        self.signal.close_idle();
        self.pool
            .parking
            .sweep(|| lifecycle::Event::IdleGraceOver, 0);
    }

    /// The force (`deadline`: the drain timeout expired; otherwise a second
    /// signal or `ShutdownHandle::force` already tripped it): every
    /// connection still open is closed. Sockets in a turn are shut down
    /// both ways, so that a handler blocked in a read or a write returns
    /// (its connection is closed when the turn ends); parked and queued
    /// connections are closed here; the acceptor closes those it holds as
    /// it leaves.
    fn force(&self, deadline: bool) {
        if deadline {
            self.signal.force_by(ForceReason::Deadline);
        }
        self.registry.tell(&Event::Forced {
            reason: self.signal.force_reason(),
        });
        self.registry.cut_all();
        self.pool.parking.sweep(|| lifecycle::Event::Forced, 0);
        self.jobs.try_iter().for_each(Life::close_forced);
    }

    fn notify(&self, message: &str) {
        if let Some(notifier) = &self.notifier {
            notifier.send(message);
        }
    }

    /// Waits for the end of the drain, a force, or `until`.
    fn wait(&self, until: Option<Instant>) -> Wake {
        let timeout = match until {
            Some(until) => crossbeam_channel::at(until),
            None => crossbeam_channel::never(),
        };
        crossbeam_channel::select! {
            // Nothing is sent on `done` or on the force channel; a `recv`
            // returns when they disconnect.
            recv(self.done) -> _ => Wake::Done,
            recv(self.signal.forced_receiver()) -> _ => Wake::Forced,
            recv(timeout) -> _ => Wake::Timeout,
        }
    }

    /// Waits for the end of the drain or `until`, ignoring the force (which
    /// has already happened).
    fn wait_done(&self, until: Option<Instant>) -> Wake {
        let Some(until) = until else {
            let _ = self.done.recv();
            return Wake::Done;
        };
        let timeout = until.saturating_duration_since(Instant::now());
        match self.done.recv_timeout(timeout) {
            Err(RecvTimeoutError::Timeout) => Wake::Timeout,
            Ok(()) | Err(RecvTimeoutError::Disconnected) => Wake::Done,
        }
    }
}
