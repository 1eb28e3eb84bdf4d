//! Where connections wait between turns, holding no thread.
//!
//! A worker that ends a turn with nothing left to do on its connection
//! **parks** it: the connection goes into the table, armed one-shot in the
//! [`WorkerWait`] readiness wait, and the worker goes back to waiting for work
//! itself. Free workers wait in that same readiness wait (leader/followers:
//! there is no poller thread in between), so the worker that readiness wakes
//! takes the connection out of the table and serves its turn at once. A
//! connection in the table belongs to the table: whoever takes it out (a
//! worker woken by its readiness, or the acceptor at its timeout, at the end
//! of the idle grace, when forced) owns it.
//!
//! # Who owns a readiness report
//!
//! With epoll a connection's socket is registered once, edge-triggered,
//! and stays registered until it closes: parking it again costs no system
//! call when its last read found the kernel's queue empty
//! ([`Connection::is_input_drained`](crate::Connection)), since input
//! arriving after that read raises a new edge. (Otherwise, and with
//! `poll(2)`, it is armed again, one-shot.) An edge may then come while a
//! worker has the connection, so the table keeps a [`Slot`] for every
//! registered connection, parked or out: a report for a parked one takes
//! it; a report for one that is out is noted (`missed`), and the worker,
//! parking it, arms it again, which reports it at once if input is there.
//! Both happen under the shard's lock, so no report is lost between them.
//! The slot goes when the connection closes ([`Parking::forget`]). A
//! report may be stale (input that came with an earlier one, already
//! read): the worker it wakes reads once without blocking before calling
//! the handler (the [lifecycle](crate::lifecycle)'s `Event::Ready`).
//!
//! Timeouts are kept in a heap that the acceptor looks at. A connection has
//! at most one entry that matters ([`Berth::timer`](crate::lifecycle::Berth)): parking it again
//! with a later deadline (the next keep-alive wait) adds nothing, and the
//! entry, once due, finds the connection's real deadline and is put back
//! for it. So the heap holds about one entry per connection, not one per
//! request.
//!
//! Orderings: the table and the heaps are under the shards' locks; the one
//! atomic, `earliest`, is `SeqCst` conservatively (its doc says what would
//! be enough). Job announcements pass through here to the readiness wait;
//! their argument is the [hand-off](crate::handoff)'s.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::BinaryHeap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::handoff::Woken;
use crate::lifecycle::{Decision, Event, Life, Timeouts};
use crate::outcome::Outcome;
use crate::push::Doorbell;
use crate::readiness::{Wakeup, WorkerWait};
use crate::registry::IdMap;
use crate::sys::{AsSource, Interest};
use crate::wake::Waker;

/// How many shards the table has.
const SHARDS: usize = 16;

/// No deadline, in [`Parking::earliest`].
const NO_DEADLINE: u64 = u64::MAX;

/// The parked connections, and the readiness wait they are armed in.
pub(crate) struct Parking {
    shared: WorkerWait,
    /// The table, in shards by connection id, so that workers parking and
    /// taking different connections seldom wait for each other's lock.
    tables: Vec<Mutex<Table>>,
    /// The server's idle and wait timeouts, for the lifecycle's timer rules.
    timeouts: Timeouts,
    /// The zero of `earliest`.
    epoch: Instant,
    /// The earliest timer entry (nanoseconds since `epoch`): never later
    /// than the earliest in the heaps, so that the acceptor need not look
    /// at them before. A worker that makes it earlier wakes the acceptor,
    /// which may be sleeping until a later one.
    ///
    /// A worker pushes its entry under the shard's lock, then lowers this
    /// with `fetch_min`, whose result says whether it lowered it; the
    /// acceptor, looking (`expire`), resets it first and lowers it to the
    /// earliest entry it leaves. So between looks the invariant holds, and
    /// a reset that overwrote a worker's lowering came after that worker's
    /// entry, which the look then finds under the lock. `SeqCst`
    /// conservatively; `Relaxed` would be enough (the locks order the
    /// heaps, and the acceptor's wake-up orders what the worker did before
    /// it).
    earliest: AtomicU64,
    /// Connections taken out for a worker by a pusher's ring or the
    /// goodbye sweep; the acceptor queues them for the workers.
    woken: Mutex<Vec<Life>>,
    /// Whether `woken` may hold any, so that the acceptor's every pass need
    /// not take its lock: set after a push to it (then the acceptor is
    /// woken), cleared before the acceptor empties it. `SeqCst`
    /// conservatively; the waker's write and read order it.
    has_woken: AtomicBool,
    acceptor: Waker,
}

#[derive(Default)]
struct Table {
    /// Every connection registered in the readiness wait, by id.
    conns: IdMap<Slot>,
    /// (deadline, connection id); see the module's docs.
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
}

/// A registered connection's place in the table.
enum Slot {
    /// Waiting: whoever takes it out owns it.
    Parked(Life),
    /// Out with a worker, or on its way to one; `missed` when a readiness
    /// report came meanwhile (see the module's docs).
    Out { missed: bool },
}

/// What the acceptor's look at the timers found: connections to serve, and
/// the next deadline.
pub(crate) struct Expired {
    /// Their own deadline passed: a turn each.
    pub(crate) turns: Vec<Life>,
    pub(crate) next: Option<Instant>,
}

impl Parking {
    pub(crate) fn new(shared: WorkerWait, timeouts: Timeouts, acceptor: Waker) -> Parking {
        Parking {
            shared,
            timeouts,
            tables: (0..SHARDS).map(|_| Mutex::default()).collect(),
            epoch: Instant::now(),
            earliest: AtomicU64::new(NO_DEADLINE),
            woken: Mutex::default(),
            has_woken: AtomicBool::new(false),
            acceptor,
        }
    }

    /// The shard of connection `id`.
    fn lock(&self, id: u64) -> MutexGuard<'_, Table> {
        // `SHARDS` is a power of two and `tables` has that many.
        let shard = &self.tables[(id % SHARDS as u64) as usize];
        // Every change to a table is one insert or remove: a panic
        // elsewhere (in a user's hook, called outside the lock) cannot
        // leave it half-done.
        shard.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos())
            .unwrap_or(NO_DEADLINE - 1)
            .max(1)
    }

    /// Parks `life` until it has input (or room for its queued output),
    /// if the [lifecycle](crate::lifecycle) says it may wait. Otherwise
    /// returns it with what to do instead (a turn, or a close).
    pub(crate) fn park(&self, mut life: Life) -> Option<(Life, Decision)> {
        let (decision, wake_acceptor) = {
            let mut table = self.lock(life.id());
            // Decided under the lock: a sweep (idle grace, force) sets the
            // shutdown state before it takes each shard's lock, so a
            // connection parked after a sweep sees the state that sweep
            // acted on, and one parked before is in the table it sweeps.
            let now = Instant::now();
            match life.decide(Event::Parking(now, self.timeouts)) {
                Decision::Park(interest) => match self.arm(&mut table, life, interest, now) {
                    Ok(wake_acceptor) => (None, wake_acceptor),
                    Err((mut life, error)) => {
                        let decision = life.decide(Event::ArmFailed(error));
                        (Some((life, decision)), false)
                    }
                },
                other => (Some((life, other)), false),
            }
        };
        if wake_acceptor {
            self.acceptor.wake();
        }
        decision
    }

    /// Puts `life` in the table and arms it in the readiness wait for
    /// `interest`, unless it is armed already; returns whether the acceptor
    /// must be woken for its timer.
    fn arm(
        &self,
        table: &mut Table,
        mut life: Life,
        interest: Interest,
        now: Instant,
    ) -> Result<bool, (Life, io::Error)> {
        if interest != Interest::Output {
            // It may wait long: an empty read buffer is freed meanwhile.
            life.conn_mut().release_buffer();
        }
        let idle = life.is_idle();
        life.conn_mut().count_parked(Some(idle));
        let before = life.berth.armed;
        let id = life.id();
        // Still armed for input since a read that found the queue empty
        // (input arriving later raises an edge), and no report came while
        // it was out (arming again checks whether that input is there).
        let missed = table.take_missed(id);
        let armed = !missed
            && before == Some(Interest::Input)
            && interest == Interest::Input
            && self.shared.keeps_input_armed()
            && life.conn().is_input_drained();
        life.berth.armed = Some(interest);
        let wake_acceptor = self.schedule(table, &mut life, now);
        // In the table before it is armed, so that a report finds it; and
        // armed last, so that a worker woken by the report seldom finds the
        // lock still held.
        let life = match table.conns.entry(id) {
            Entry::Occupied(mut slot) if matches!(slot.get(), Slot::Out { .. }) => {
                slot.insert(Slot::Parked(life));
                slot.into_mut()
            }
            Entry::Vacant(place) => place.insert(Slot::Parked(life)),
            // Never: a connection is parked once at a time, under its own
            // id. Served rather than lost if it were.
            Entry::Occupied(_) => {
                life.berth.armed = before;
                life.conn_mut().count_parked(None);
                let error = io::Error::other("parked twice");
                return Err((life, error));
            }
        };
        if armed {
            return Ok(wake_acceptor);
        }
        let Slot::Parked(life) = life else {
            return Ok(wake_acceptor);
        };
        let first = before.is_none();
        let armed = self
            .shared
            .arm(life.conn().stream().as_source(), id, interest, first);
        if let Err(error) = armed {
            let Some(mut life) = table.take_out(id) else {
                return Ok(wake_acceptor);
            };
            if first {
                // Not registered: no slot.
                table.conns.remove(&id);
            }
            life.berth.armed = before;
            life.conn_mut().count_parked(None);
            return Err((life, error));
        }
        Ok(wake_acceptor)
    }

    /// Makes sure a timer entry comes by `life`'s next deadline; returns
    /// whether the acceptor must be woken to look at it in time.
    fn schedule(&self, table: &mut Table, life: &mut Life, now: Instant) -> bool {
        let Some(at) = life.next_timer(&self.timeouts) else {
            return false;
        };
        // An entry still to come, not later than this deadline, will do:
        // when due, it finds the connection's deadline and is put back.
        if life
            .berth
            .timer
            .is_some_and(|pending| pending > now && pending <= at)
        {
            return false;
        }
        table.timers.push(Reverse((at, life.id())));
        life.berth.timer = Some(at);
        let nanos = self.nanos(at);
        nanos < self.earliest.fetch_min(nanos, Ordering::SeqCst)
    }

    /// Waits until a parked connection is ready or a job is announced.
    pub(crate) fn wait(&self) -> io::Result<Woken<Life>> {
        Ok(match self.shared.wait()? {
            Wakeup::Ready(id) => match self.take(id) {
                Some(conn) => Woken::Ready(conn),
                None => Woken::Nothing,
            },
            Wakeup::Job => Woken::Job,
            Wakeup::Nothing => Woken::Nothing,
        })
    }

    /// Takes the connection a readiness report is for, if it is parked; if
    /// a worker has it, notes the report for when it is parked again.
    fn take(&self, id: u64) -> Option<Life> {
        let mut table = self.lock(id);
        let Some(mut life) = table.take_out(id) else {
            // Out with a worker (or closed: no slot): noted for its parking.
            if let Some(Slot::Out { missed }) = table.conns.get_mut(&id) {
                *missed = true;
            }
            return None;
        };
        life.conn_mut().count_parked(None);
        // Its evidence of an empty queue predates this report.
        life.conn_mut().forget_input_drained();
        Some(life)
    }

    /// Wakes `jobs` waiting workers for jobs in the channel.
    pub(crate) fn announce(&self, jobs: u64) {
        self.shared.notify(jobs);
    }

    /// Takes `id` out of the table to serve it from elsewhere, leaving its
    /// slot (it stays registered).
    fn remove(&self, table: &mut Table, id: u64) -> Option<Life> {
        let mut life = table.take_out(id)?;
        self.shared.disarm(life.conn().stream().raw_source());
        life.conn_mut().count_parked(None);
        life.conn_mut().forget_input_drained();
        Some(life)
    }

    /// Takes `id` out of the table to close it: its slot goes too.
    fn remove_to_close(&self, table: &mut Table, id: u64) -> Option<Life> {
        let life = self.remove(table, id);
        if life.is_some() {
            table.conns.remove(&id);
        }
        life
    }

    /// Closes `life`, which a worker has, as a [`Decision::Close`] said,
    /// after taking its slot out of the table if it has one.
    pub(crate) fn close(&self, life: Life, outcome: Outcome, error: Option<io::Error>) {
        self.forget(&life);
        life.close(outcome, error);
    }

    /// Takes the slot of `life` (out with its caller, about to be closed)
    /// out of the table; a report for it that comes later finds nothing.
    fn forget(&self, life: &Life) {
        if life.berth.armed.is_some() {
            let id = life.id();
            let mut table = self.lock(id);
            if let Some(Slot::Out { .. }) = table.conns.get(&id) {
                table.conns.remove(&id);
            }
        }
    }

    /// For the acceptor: closes the connections whose wait timed out and
    /// returns those whose own deadline passed, for a turn, and the next
    /// deadline, which the acceptor promises to look at by then.
    pub(crate) fn expire(&self, now: Instant) -> Expired {
        if self.earliest.load(Ordering::SeqCst) > self.nanos(now) {
            return Expired {
                turns: Vec::new(),
                next: self.earliest(),
            };
        }
        // Forget the earliest while looking: a timer a worker adds
        // meanwhile lowers it again (and wakes the acceptor), whether or
        // not this look sees its entry.
        self.earliest.store(NO_DEADLINE, Ordering::SeqCst);
        let mut turns = Vec::new();
        let mut closes = Vec::new();
        let mut next: Option<Instant> = None;
        for shard in 0..SHARDS as u64 {
            let mut table = self.lock(shard);
            let table = &mut *table;
            while let Some(&Reverse((at, id))) = table.timers.peek() {
                if at > now {
                    break;
                }
                table.timers.pop();
                let Some(Slot::Parked(life)) = table.conns.get_mut(&id) else {
                    // Served or closed since: its next parking schedules
                    // anew.
                    continue;
                };
                if life.berth.timer != Some(at) {
                    // An earlier entry replaced it.
                    continue;
                }
                life.berth.timer = None;
                match life.decide(Event::Timer(now, self.timeouts)) {
                    Decision::Stay => {
                        if let Some(at) = life.next_timer(&self.timeouts) {
                            life.berth.timer = Some(at);
                            table.timers.push(Reverse((at, id)));
                        }
                    }
                    Decision::Close(outcome, error) => {
                        closes.extend(self.remove_to_close(table, id).map(|l| (l, outcome, error)));
                    }
                    _ => turns.extend(self.remove(table, id)),
                }
            }
            if let Some(&Reverse((at, _))) = table.timers.peek() {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        if let Some(at) = next {
            self.earliest.fetch_min(self.nanos(at), Ordering::SeqCst);
        }
        // Closed outside the locks: closing calls the user's hook.
        for (life, outcome, error) in closes {
            life.close(outcome, error);
        }
        Expired {
            turns,
            next: self.earliest(),
        }
    }

    /// When the earliest timer entry is due, if there is one.
    fn earliest(&self) -> Option<Instant> {
        let nanos = self.earliest.load(Ordering::SeqCst);
        (nanos != NO_DEADLINE).then(|| self.epoch + Duration::from_nanos(nanos))
    }

    /// Takes the connections woken for a worker (by a ring, by the goodbye
    /// sweep), for the acceptor to queue.
    pub(crate) fn take_woken(&self) -> Option<Vec<Life>> {
        if !self.has_woken.swap(false, Ordering::SeqCst) {
            return None;
        }
        Some(std::mem::take(
            &mut *self.woken.lock().unwrap_or_else(PoisonError::into_inner),
        ))
    }

    /// Moves `life`, taken out of the table, to the woken list. Called
    /// with its shard's lock held, so that a sweep that took every shard's
    /// lock finds it in the list.
    fn wake(&self, life: Life) {
        self.woken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(life);
        self.has_woken.store(true, Ordering::SeqCst);
    }

    /// A sweep of every parked connection at a shutdown step: asks the
    /// [lifecycle](crate::lifecycle) about each after `event` (the goodbye,
    /// the end of the idle grace, the force), closes those it says to
    /// close, and hands up to `limit` of those it says to serve to the
    /// workers; returns how many it handed over. The caller sets the
    /// shutdown state first (see [`park`](Self::park)).
    pub(crate) fn sweep(&self, event: impl Fn() -> Event, limit: usize) -> usize {
        let mut handed = 0;
        let mut closes = Vec::new();
        for shard in 0..SHARDS as u64 {
            let mut table = self.lock(shard);
            let ids: Vec<u64> = table.conns.keys().copied().collect();
            for id in ids {
                let Some(Slot::Parked(life)) = table.conns.get_mut(&id) else {
                    continue;
                };
                match life.decide(event()) {
                    Decision::Stay => {}
                    Decision::Close(outcome, error) => {
                        let life = self.remove_to_close(&mut table, id);
                        closes.extend(life.map(|l| (l, outcome, error)));
                    }
                    _ if handed == limit => {}
                    _ => {
                        if let Some(life) = self.remove(&mut table, id) {
                            self.wake(life);
                            handed += 1;
                        }
                    }
                }
            }
        }
        if handed > 0 {
            self.acceptor.wake();
        }
        if let Event::Forced = event() {
            // And those on their way to a worker.
            for life in self.take_woken().into_iter().flatten() {
                life.close_forced();
            }
        }
        // Closed outside the locks: closing calls the user's hook.
        for (life, outcome, error) in closes {
            life.close(outcome, error);
        }
        handed
    }
}

/// A pusher's ring: a parked connection with mail is taken out and handed
/// to a worker (see [`crate::push`]).
impl Doorbell for Parking {
    fn ring(&self, id: u64) {
        let closed = {
            let mut table = self.lock(id);
            let Some(mut life) = self.remove(&mut table, id) else {
                // Not parked: whoever has it sees the mail when parking it.
                return;
            };
            match life.decide(Event::Mail) {
                Decision::Close(outcome, error) => {
                    table.conns.remove(&id);
                    Some((life, outcome, error))
                }
                _ => {
                    self.wake(life);
                    None
                }
            }
        };
        match closed {
            Some((life, outcome, error)) => life.close(outcome, error),
            None => self.acceptor.wake(),
        }
    }
}

impl Table {
    /// Takes the connection out if it is parked, leaving its slot.
    fn take_out(&mut self, id: u64) -> Option<Life> {
        let slot = self.conns.get_mut(&id)?;
        match std::mem::replace(slot, Slot::Out { missed: false }) {
            Slot::Parked(life) => Some(life),
            out => {
                *slot = out;
                None
            }
        }
    }

    /// Whether a readiness report came for `id` while it was out, and
    /// forgets it.
    fn take_missed(&mut self, id: u64) -> bool {
        match self.conns.get_mut(&id) {
            Some(Slot::Out { missed }) => std::mem::take(missed),
            _ => false,
        }
    }
}

impl std::fmt::Debug for Parking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parking").finish_non_exhaustive()
    }
}

/// How late the acceptor may look at a timer. Timeouts of parked
/// connections are coarse (a connection idle for a minute may be closed up
/// to this much later), so that many expiring at about the same time cost
/// one wake-up, not one each.
pub(crate) const TIMER_SLACK: Duration = Duration::from_millis(100);
