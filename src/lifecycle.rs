//! What happens to a connection next: one decision, in one place.
//!
//! A connection moves between three places: a worker (in a turn of its
//! handler, or sending its queued output), the [parking](crate::parking)
//! (waiting for input or for room for its output, holding no thread), and
//! the job channel (accepted, or due, and waiting for a free worker). Every
//! time something happens to it, whoever holds it asks [`Life::decide`]
//! what comes next and does what the answer says:
//!
//! | event                         | who asks                  | possible answers                 |
//! |-------------------------------|---------------------------|----------------------------------|
//! | [`Event::Start`]              | a worker, from the queue  | receive, TLS, turn, send, close  |
//! | [`Event::Ready`]              | a worker woken by readiness | receive, TLS, turn, send, mail, close |
//! | [`Event::Received`]           | a worker, after a read without blocking | turn, park, close  |
//! | [`Event::Tls`]                | a worker, after the TLS step | turn, park, close             |
//! | [`Event::TurnEnded`]          | a worker, after the handler | turn, send, park, close        |
//! | [`Event::Sent`]               | a worker, after sending   | turn, park, close                |
//! | [`Event::MailOpened`]         | a worker, after taking pushed mail | turn, send, park, close   |
//! | [`Event::Parking`]            | the parking, under its lock | park, mail, turn, close        |
//! | [`Event::ArmFailed`]          | the parking               | turn, close                      |
//! | [`Event::Timer`]              | the acceptor's timer sweep | stay, turn, close               |
//! | [`Event::Mail`]               | a pusher ringing a parked one | hand to a worker, close      |
//! | [`Event::Goodbye`]            | the drain's goodbye sweep | hand to a worker, stay           |
//! | [`Event::IdleGraceOver`]      | the drain's idle sweep    | stay, close                      |
//! | [`Event::Forced`]             | the drain, the acceptor   | close                            |
//!
//! The rules, in the order [`Life::decide`] applies them:
//!
//! - **Forced**: once shutdown is forced, every event closes the connection
//!   ([`Outcome::ForceClosed`], or [`Outcome::Unserved`] if it never had a
//!   turn), whatever the handler made of the cut. Only a panic keeps its
//!   own outcome.
//! - **Output first**: queued output is sent before anything else, and a
//!   connection with output queued is mid-conversation (never closed as
//!   idle); its deadline bounds the wait for the client to take it.
//! - **Input read ahead is served**: buffered input that a turn did not
//!   leave for want of more (a pipelined request) gets a turn at once,
//!   before any rule about idleness.
//! - **The idle grace**: after it, a connection waiting idle with nothing
//!   buffered is closed ([`Outcome::ClosedIdle`]): at the sweep that ends
//!   the grace, and whenever a connection turns idle later.
//! - **Pushed mail** ([`Pusher`](crate::Pusher)) is taken once the output
//!   before it has gone: its bytes become output, a requested turn is
//!   given.
//! - **The goodbye**: once the server stops accepting, a connection that
//!   asked for one ([`Connection::set_goodbye`]) and waits mid-conversation
//!   gets one turn that says so, once.
//! - **Timers**: a connection's own [deadline](Connection::set_deadline)
//!   gives it a turn; the idle or wait timeout closes it.
//!
//! The scheduling state these rules read ([`Life`]'s private fields) is
//! written only here; outcomes are decided only here, and counted by the
//! registry when the connection is dropped.

use std::io;
use std::time::{Duration, Instant};

use crate::connection::{Connection, Next};
use crate::listener::is_hang_up;
use crate::outcome::Outcome;
use crate::sys::Interest;

/// How a connection waits between turns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Waiting {
    /// At a safe boundary ([`Next::Idle`]): shutdown may close it after the
    /// idle grace.
    Idle,
    /// In the middle of a conversation ([`Next::Wait`]): shutdown waits for
    /// it until the drain deadline.
    Conversation,
}

/// The idle and wait timeouts of waiting connections (the builder's
/// `idle_timeout` and `wait_timeout`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    /// For [`Next::Idle`] waits.
    pub(crate) idle: Option<Duration>,
    /// For [`Next::Wait`] waits.
    pub(crate) wait: Option<Duration>,
}

/// What happened to a connection.
#[derive(Debug)]
pub(crate) enum Event {
    /// A worker took it from the job channel: newly accepted, or due.
    Start,
    /// A worker's readiness wait reported it: input (or the client's end)
    /// arrived, or room for its queued output. (Edge-triggered, the input
    /// may have been read since.)
    Ready,
    /// A nonblocking read: a new connection's first, or one after a
    /// readiness report with nothing buffered.
    Received(io::Result<usize>),
    /// The TLS step before a turn: whether the handler has something to
    /// read (`Ok(false)`: wait for more records, or for the handshake's
    /// output to go).
    Tls(io::Result<bool>),
    /// The handler's turn ended: what it returned (`Err` if it panicked),
    /// and how much input had been consumed before it.
    TurnEnded {
        result: Result<io::Result<Next>, Panicked>,
        consumed: u64,
    },
    /// Sending queued output: whether all of it went.
    Sent(io::Result<bool>),
    /// Pushed mail was taken: whether a turn was asked for.
    MailOpened(bool),
    /// A pusher rang while it was parked.
    Mail,
    /// The server stopped accepting while it was parked: its goodbye, if it
    /// wants one.
    Goodbye,
    /// It is about to wait in the parking (decided under the parking's
    /// lock, so that it sees the shutdown state a sweep acted on), with the
    /// server's idle and wait timeouts.
    Parking(Instant, Timeouts),
    /// Its readiness could not be watched (out of memory in the kernel).
    ArmFailed(io::Error),
    /// Its timer came due while parked.
    Timer(Instant, Timeouts),
    /// The idle grace ended while it was parked.
    IdleGraceOver,
    /// Shutdown was forced while it was parked or queued.
    Forced,
}

/// A handler panicked in the turn (the payload is dropped: the report and
/// the event hook count panics, the panic hook has already printed it).
#[derive(Debug)]
pub(crate) struct Panicked;

/// What comes next for a connection.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Read what the client has sent, without blocking
    /// ([`Event::Received`] follows).
    Receive,
    /// Advance its TLS session: the handshake, or records without
    /// plaintext ([`Event::Tls`] follows).
    Tls,
    /// Call the handler ([`Event::TurnEnded`] follows).
    Turn,
    /// Send its queued output ([`Event::Sent`] follows).
    Send,
    /// Take its pushed mail ([`Event::MailOpened`] follows).
    OpenMail,
    /// Put it in the parking, which asks again under its lock
    /// ([`Event::Parking`]) whether it may wait, and for what.
    Wait,
    /// Wait in the parking; from [`Event::Parking`], for this.
    Park(Interest),
    /// Leave it where it is (a sweep or a timer found nothing to do).
    Stay,
    /// Close it, counted as this.
    Close(Outcome, Option<io::Error>),
}

/// A connection with its scheduling state: what moves between the workers,
/// the parking and the job channel.
pub(crate) struct Life {
    /// Boxed once, when accepted: a connection moves between threads and
    /// tables by value several times a request, and a pointer is cheaper
    /// to move than its few hundred bytes.
    conn: Box<Connection>,
    /// How it waits now; set from each turn's [`Next`].
    waiting: Waiting,
    /// When it started waiting.
    since: Instant,
    /// Not yet started by a worker: its first input is still to be read.
    new: bool,
    /// Whether a turn has run: a connection closed before its first turn
    /// counts as unserved.
    served: bool,
    /// The turn that queued output said [`Next::Close`]: close once it is
    /// sent.
    close_after_output: bool,
    /// The last turn left buffered input without consuming any of it (a
    /// partial request): that input waits for more from the socket.
    stalled: bool,
    /// A turn asked for with [`Pusher::wake`](crate::Pusher::wake), not
    /// given yet.
    woken: bool,
    /// Its goodbye turn: `Some(false)` due, `Some(true)` given.
    goodbye: Option<bool>,
    /// The parking's bookkeeping, kept with the connection between two
    /// parkings; written only by the parking.
    pub(crate) berth: Berth,
}

/// What the [parking](crate::parking) keeps about a connection between its
/// waits.
#[derive(Debug, Default)]
pub(crate) struct Berth {
    /// What the readiness wait watches the socket for: `None` until it is
    /// first parked (registered), then what it was last armed for.
    pub(crate) armed: Option<Interest>,
    /// The deadline of its entry in the parking's timers, if one may still
    /// come.
    pub(crate) timer: Option<Instant>,
}

impl Life {
    /// A connection just accepted, waiting as `waiting` until its first
    /// turn.
    pub(crate) fn new(conn: Connection, waiting: Waiting) -> Life {
        Life {
            conn: Box::new(conn),
            waiting,
            since: Instant::now(),
            new: true,
            served: false,
            close_after_output: false,
            stalled: false,
            woken: false,
            goodbye: None,
            berth: Berth::default(),
        }
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    pub(crate) fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub(crate) fn id(&self) -> u64 {
        self.conn.id()
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.waiting == Waiting::Idle
    }

    /// Decides what comes next after `event`. See the module's docs for
    /// the rules.
    pub(crate) fn decide(&mut self, event: Event) -> Decision {
        if self.conn.shutdown_state().is_forced()
            && !matches!(event, Event::TurnEnded { result: Err(_), .. })
        {
            return self.forced();
        }
        match event {
            Event::Start if self.new => {
                self.new = false;
                if self.conn.has_buffered_input() || self.conn.is_tls() {
                    // A TLS connection's first input is its handshake,
                    // which the TLS step takes as it arrives.
                    self.ready()
                } else {
                    // One nonblocking read, which the turn's own read would
                    // have made: served at once if the client has sent
                    // something, parked otherwise.
                    Decision::Receive
                }
            }
            Event::Start => self.ready(),
            Event::Ready => self.reported(),
            Event::Received(Ok(_)) => Decision::Turn,
            Event::Received(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => Decision::Wait,
            // Between turns: nothing consumed since the last.
            Event::Received(Err(error)) => self.failed(error, self.conn.consumed()),
            Event::Tls(Ok(true)) => Decision::Turn,
            Event::Tls(Ok(false)) => Decision::Wait,
            Event::Tls(Err(error)) => match error.kind() {
                io::ErrorKind::TimedOut => Decision::Close(Outcome::TimedOut, Some(error)),
                // Closed before a byte of its handshake: a TCP connect
                // alone (a port scan, a health check), not a failure.
                io::ErrorKind::NotConnected => Decision::Close(Outcome::Completed, None),
                _ => Decision::Close(Outcome::Failed, Some(error)),
            },
            Event::TurnEnded { result, consumed } => self.turn_ended(result, consumed),
            Event::Sent(Ok(true)) if self.close_after_output => {
                Decision::Close(Outcome::Completed, None)
            }
            Event::Sent(Ok(true)) => self.next_input(),
            Event::Sent(Ok(false)) => Decision::Wait,
            Event::Sent(Err(error)) => Decision::Close(Outcome::Failed, Some(error)),
            Event::MailOpened(turn) => {
                self.woken |= turn;
                if self.conn.has_queued_output() {
                    Decision::Send
                } else {
                    self.next_input()
                }
            }
            Event::Mail => Decision::OpenMail,
            Event::Goodbye if self.goodbye_due() => self.turn(),
            Event::Goodbye => Decision::Stay,
            Event::Parking(now, timeouts) => self.parking(now, &timeouts),
            Event::ArmFailed(error) if self.conn.has_queued_output() => {
                // Output cannot be waited for.
                Decision::Close(Outcome::Failed, Some(error))
            }
            // Waiting for input, serving it now is the only way not to
            // lose it.
            Event::ArmFailed(_) => self.turn(),
            Event::Timer(now, timeouts) => match self.timer(now, &timeouts) {
                Decision::Park(_) => Decision::Stay,
                other => other,
            },
            Event::IdleGraceOver if self.is_closing_idle() => {
                Decision::Close(Outcome::ClosedIdle, None)
            }
            Event::IdleGraceOver => Decision::Stay,
            Event::Forced => self.forced(),
        }
    }

    /// Closes the connection, counted as `outcome`, as a
    /// [`Decision::Close`] said.
    pub(crate) fn close(self, outcome: Outcome, error: Option<io::Error>) {
        (*self.conn).close(outcome, error);
    }

    /// Closes the connection because shutdown was forced.
    pub(crate) fn close_forced(self) {
        let Decision::Close(outcome, error) = self.forced() else {
            return;
        };
        (*self.conn).close(outcome, error);
    }

    /// Before the handler is called: marks the connection served, and
    /// returns how much input has been consumed so far (for
    /// [`Event::TurnEnded`]).
    pub(crate) fn start_turn(&mut self) -> u64 {
        self.served = true;
        let goodbye = self.goodbye == Some(false);
        if goodbye {
            self.goodbye = Some(true);
        }
        self.conn
            .set_turn_reason(std::mem::take(&mut self.woken), goodbye);
        self.conn.consumed()
    }

    /// The TLS step before a turn (see [`Decision::Tls`]).
    pub(crate) fn advance_tls(&mut self) -> io::Result<bool> {
        let owed = self.woken || self.goodbye == Some(false);
        self.conn.advance_tls(owed)
    }

    /// Whether it is due a goodbye turn now: the server has stopped
    /// accepting, it asked for one, waits mid-conversation and has not had
    /// it. Marks it due.
    fn goodbye_due(&mut self) -> bool {
        if self.goodbye.is_none()
            && self.waiting == Waiting::Conversation
            && self.conn.wants_goodbye()
            && self.conn.shutdown_state().is_accepting_stopped()
        {
            self.goodbye = Some(false);
        }
        self.goodbye == Some(false)
    }

    /// Whether a turn is owed without input: asked for by a pusher, or the
    /// goodbye.
    fn turn_owed(&mut self) -> bool {
        self.woken || self.goodbye_due()
    }

    /// When a parked connection's timer must look at it next: its own
    /// deadline, or the end of its idle or wait timeout, whichever comes
    /// first; `None` for never (or too far to represent).
    pub(crate) fn next_timer(&self, timeouts: &Timeouts) -> Option<Instant> {
        if self.conn.has_queued_output() {
            return self.conn.deadline();
        }
        match (self.conn.deadline(), self.timeout_at(timeouts)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A worker has it, with something to do: its queued output, its
    /// mail, the TLS step, or a turn.
    fn ready(&mut self) -> Decision {
        if self.conn.has_queued_output() {
            Decision::Send
        } else if self.conn.has_mail() {
            Decision::OpenMail
        } else {
            self.turn()
        }
    }

    /// Reported ready by the readiness wait. A report may be stale (an
    /// edge for input read since), so with nothing buffered one nonblocking
    /// read comes first, which the turn would have made: a handler is
    /// never called to block on input that is not there.
    fn reported(&mut self) -> Decision {
        let plain = !self.conn.is_tls() && !self.conn.has_queued_output();
        if plain && !self.conn.has_buffered_input() && !self.conn.has_mail() {
            Decision::Receive
        } else {
            self.ready()
        }
    }

    /// A turn; over TLS, the TLS step first (the handshake, and records
    /// without plaintext, are taken before the handler, which then only
    /// runs with something to read).
    fn turn(&self) -> Decision {
        if self.conn.is_tls() {
            Decision::Tls
        } else {
            Decision::Turn
        }
    }

    /// After a turn with nothing left to send: a request read ahead
    /// (pipelined) is served at once; otherwise the connection waits.
    fn next_input(&mut self) -> Decision {
        if self.conn.has_mail() {
            Decision::OpenMail
        } else if self.has_ready_input() || self.turn_owed() {
            self.turn()
        } else {
            Decision::Wait
        }
    }

    /// Whether buffered input waits for a turn: some is buffered, and the
    /// last turn did not leave it unconsumed for want of more.
    fn has_ready_input(&self) -> bool {
        self.conn.has_buffered_input() && !self.stalled
    }

    fn turn_ended(
        &mut self,
        result: Result<io::Result<Next>, Panicked>,
        consumed: u64,
    ) -> Decision {
        let next = match result {
            Err(Panicked) => return Decision::Close(Outcome::Panicked, None),
            Ok(Err(error)) => return self.failed(error, consumed),
            Ok(Ok(next)) => next,
        };
        // Input left buffered by a turn that used none of it waits for more
        // from the socket; calling the handler again at once would spin.
        self.stalled = self.conn.consumed() == consumed;
        self.waiting = match next {
            Next::Idle => Waiting::Idle,
            Next::Wait => Waiting::Conversation,
            Next::Close if !self.conn.has_queued_output() => {
                return Decision::Close(Outcome::Completed, None)
            }
            Next::Close => {
                self.close_after_output = true;
                Waiting::Conversation
            }
        };
        self.since = Instant::now();
        if self.conn.has_queued_output() {
            Decision::Send
        } else {
            self.next_input()
        }
    }

    /// About to wait: whether it may, and for what.
    fn parking(&mut self, now: Instant, timeouts: &Timeouts) -> Decision {
        if !self.conn.has_queued_output() {
            // Buffered input first: a request read ahead is served, even
            // from a connection that said it waits idle.
            if self.conn.has_mail() {
                return Decision::OpenMail;
            }
            if self.has_ready_input() || (self.turn_owed() && !self.conn.is_handshaking()) {
                return self.turn();
            }
            if self.is_closing_idle() {
                // Turned idle after the grace: closed at once.
                return Decision::Close(Outcome::ClosedIdle, None);
            }
        }
        self.timer(now, timeouts)
    }

    /// Whether it waits idle, with nothing buffered or queued, after the
    /// idle grace: the one rule that closes idle connections at shutdown.
    fn is_closing_idle(&self) -> bool {
        self.waiting == Waiting::Idle
            && !self.conn.has_queued_output()
            && !self.has_ready_input()
            && self.conn.shutdown_state().is_closing_idle()
    }

    /// What its time says at `now`: its own deadline comes first (the
    /// handler may still have something to say, a `408`); then its idle or
    /// wait timeout; otherwise it waits, for input or for room for its
    /// output.
    fn timer(&self, now: Instant, timeouts: &Timeouts) -> Decision {
        let late = self.conn.deadline().is_some_and(|d| now >= d);
        if self.conn.has_queued_output() {
            // Its output is late: nothing for the handler to add.
            if late {
                let why = "the client did not take the queued output by the connection's deadline";
                return timed_out(why);
            }
            return Decision::Park(Interest::Output);
        }
        if late {
            return self.turn();
        }
        if self.timeout_at(timeouts).is_some_and(|at| now >= at) {
            return match self.waiting {
                // Its conversation was over.
                Waiting::Idle => Decision::Close(Outcome::ClosedIdle, None),
                Waiting::Conversation => timed_out("no input within the wait timeout"),
            };
        }
        Decision::Park(Interest::Input)
    }

    /// When its idle or wait timeout ends.
    fn timeout_at(&self, timeouts: &Timeouts) -> Option<Instant> {
        let timeout = match self.waiting {
            Waiting::Idle => timeouts.idle,
            Waiting::Conversation => timeouts.wait,
        };
        timeout.and_then(|t| self.since.checked_add(t))
    }

    /// A turn (or the first read) that began with `consumed` bytes of input
    /// consumed failed with `error`.
    fn failed(&self, error: io::Error, consumed: u64) -> Decision {
        // Whether the client was at a safe boundary, with nothing new.
        let nothing_new = self.conn.consumed() == consumed && !self.conn.has_buffered_input();
        if self.waiting == Waiting::Idle && nothing_new && is_hang_up(&error) {
            // Closed or reset while waiting idle, before a byte of a new
            // request: how keep-alive ends, not a failure.
            return Decision::Close(Outcome::Completed, None);
        }
        let outcome = match error.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Outcome::TimedOut,
            _ => Outcome::Failed,
        };
        Decision::Close(outcome, Some(error))
    }

    /// Shutdown was forced.
    fn forced(&self) -> Decision {
        let outcome = if self.served {
            Outcome::ForceClosed
        } else {
            Outcome::Unserved
        };
        Decision::Close(outcome, None)
    }
}

/// Closed for slowness, saying which wait it outlasted.
fn timed_out(why: &str) -> Decision {
    let error = io::Error::new(io::ErrorKind::TimedOut, why);
    Decision::Close(Outcome::TimedOut, Some(error))
}

impl std::fmt::Debug for Life {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Life")
            .field("conn", &self.conn)
            .field("waiting", &self.waiting)
            .field("served", &self.served)
            .finish_non_exhaustive()
    }
}
