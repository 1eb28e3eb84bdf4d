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
//! Timeouts are kept in a heap that the acceptor looks at. A connection has
//! at most one entry that matters ([`Connection::timer`]): parking it again
//! with a later deadline (the next keep-alive wait) adds nothing, and the
//! entry, once due, finds the connection's real deadline and is put back
//! for it. So the heap holds about one entry per connection, not one per
//! request.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::connection::{Connection, Waiting};
use crate::pool::{Due, Timeouts};
use crate::readiness::{Wakeup, WorkerWait};
use crate::registry::Outcome;
use crate::sys::{AsSource, Interest};
use crate::wake::Waker;

/// Bits of a readiness token that hold the parking's generation; the rest
/// hold the connection's id. A report carrying an older generation than
/// the connection's (it was taken away and parked again meanwhile) is
/// stale and ignored.
const GENERATION_BITS: u32 = 16;
const GENERATION_MASK: u64 = (1 << GENERATION_BITS) - 1;

/// How many shards the table has.
const SHARDS: usize = 16;

/// No deadline, in [`Parking::earliest`].
const NO_DEADLINE: u64 = u64::MAX;

fn token(conn: &Connection) -> u64 {
    (conn.id() << GENERATION_BITS) | (conn.generation & GENERATION_MASK)
}

/// The parked connections, and the readiness wait they are armed in.
pub(crate) struct Parking {
    shared: WorkerWait,
    /// The table, in shards by connection id, so that workers parking and
    /// taking different connections seldom wait for each other's lock.
    tables: Vec<Mutex<Table>>,
    pub(crate) timeouts: Timeouts,
    /// The zero of `earliest`.
    epoch: Instant,
    /// The earliest timer entry (nanoseconds since `epoch`): never later
    /// than the earliest in the heaps, so that the acceptor need not look
    /// at them before. A worker that makes it earlier wakes the acceptor,
    /// which may be sleeping until a later one.
    earliest: AtomicU64,
    acceptor: Waker,
}

#[derive(Default)]
struct Table {
    conns: HashMap<u64, Connection>,
    /// (deadline, connection id); see the module's docs.
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
}

/// Why a connection is not to wait after all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// A turn now.
    Turn,
    /// Closed, counted so.
    Close(Outcome),
    /// Closed because shutdown was forced.
    Forced,
    /// Its wait or its output timed out.
    TimedOut,
}

/// What parking a connection came to, decided under the lock and done
/// after it (closing calls the user's hook).
// The connection passes through by value, as everywhere: boxing it would
// cost an allocation per turn.
#[allow(clippy::large_enum_variant)]
enum Parked {
    Waiting { wake_acceptor: bool },
    Not(Connection, Verdict),
    Failed(Connection, io::Error),
}

/// What a worker's wait brought.
// As `Parked`: the connection is moved, not boxed.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Woken {
    /// A parked connection turned ready; it is the worker's now.
    Ready(Connection),
    /// A job was announced.
    Job,
    /// A stale report, or an interrupted wait.
    Nothing,
}

/// What the acceptor's look at the timers found: connections to serve, and
/// the next deadline.
pub(crate) struct Expired {
    /// Their own deadline passed: a turn each.
    pub(crate) turns: Vec<Connection>,
    pub(crate) next: Option<Instant>,
}

impl Parking {
    pub(crate) fn new(shared: WorkerWait, timeouts: Timeouts, acceptor: Waker) -> Parking {
        Parking {
            shared,
            tables: (0..SHARDS).map(|_| Mutex::default()).collect(),
            timeouts,
            epoch: Instant::now(),
            earliest: AtomicU64::new(NO_DEADLINE),
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

    /// Parks `conn` until it has input (or room for its queued output), or
    /// closes it if its wait is over. Returns it when it must have a turn
    /// now instead: input already buffered, or its deadline passed.
    pub(crate) fn park(&self, conn: Connection) -> Option<Connection> {
        let parked = {
            let mut table = self.lock(conn.id());
            // Decided under the lock: the acceptor sets the shutdown state
            // before it sweeps the table, so a connection parked after a
            // sweep sees the state that sweep acted on.
            match self.verdict(&conn) {
                None => self.arm(&mut table, conn),
                Some(verdict) => Parked::Not(conn, verdict),
            }
        };
        match parked {
            Parked::Waiting { wake_acceptor } => {
                if wake_acceptor {
                    self.acceptor.wake();
                }
                None
            }
            Parked::Not(conn, Verdict::Turn) => Some(conn),
            Parked::Not(conn, Verdict::Close(outcome)) => {
                conn.close(outcome);
                None
            }
            Parked::Not(conn, Verdict::Forced) => {
                conn.close_forced();
                None
            }
            Parked::Not(conn, Verdict::TimedOut) => {
                Timeouts::close(conn);
                None
            }
            Parked::Failed(conn, error) => {
                conn.close_with_error(Outcome::Failed, error);
                None
            }
        }
    }

    /// `None` if `conn` is to wait; otherwise what to do instead: close it
    /// (forced, idle after the grace, timed out) or serve it now.
    fn verdict(&self, conn: &Connection) -> Option<Verdict> {
        if conn.signal().is_forced() {
            return Some(Verdict::Forced);
        }
        if !conn.has_queued_output() {
            // Buffered input first: a request read ahead is served, even
            // from a connection that said it waits idle.
            if conn.has_ready_input() {
                return Some(Verdict::Turn);
            }
            if conn.waiting == Waiting::Idle && conn.signal().is_closing_idle() {
                return Some(Verdict::Close(Outcome::ClosedIdle));
            }
        }
        match self.timeouts.due(conn, Instant::now()) {
            Due::Nothing => None,
            Due::Turn => Some(Verdict::Turn),
            Due::Close => Some(Verdict::TimedOut),
        }
    }

    /// Arms `conn` in the readiness wait and puts it in the table.
    fn arm(&self, table: &mut Table, mut conn: Connection) -> Parked {
        let interest = if conn.has_queued_output() {
            Interest::Output
        } else {
            // It may wait long: an empty read buffer is freed meanwhile.
            conn.release_buffer();
            Interest::Oneshot
        };
        conn.generation = conn.generation.wrapping_add(1);
        let (id, token, first) = (conn.id(), token(&conn), !conn.registered);
        conn.registered = true;
        let wake_acceptor = self.schedule(table, &mut conn, Instant::now());
        // In the table before it is armed, so that a report finds it; and
        // armed last, so that a worker woken by the report seldom finds the
        // lock still held.
        let conn = match table.conns.entry(id) {
            Entry::Vacant(place) => place.insert(conn),
            // Never: a connection is parked once at a time, under its own
            // id. Served rather than lost if it were.
            Entry::Occupied(_) => return Parked::Not(conn, Verdict::Turn),
        };
        let armed = self
            .shared
            .arm(conn.stream().as_source(), token, interest, first);
        if let Err(error) = armed {
            let Some(mut conn) = table.conns.remove(&id) else {
                return Parked::Waiting { wake_acceptor };
            };
            conn.registered = !first;
            // Cannot watch it (out of memory in the kernel). Waiting for
            // input, serving it now is the only way not to lose it; output
            // cannot be waited for.
            return match interest {
                Interest::Output => Parked::Failed(conn, error),
                _ => Parked::Not(conn, Verdict::Turn),
            };
        }
        Parked::Waiting { wake_acceptor }
    }

    /// Makes sure a timer entry comes by `conn`'s next deadline; returns
    /// whether the acceptor must be woken to look at it in time.
    fn schedule(&self, table: &mut Table, conn: &mut Connection, now: Instant) -> bool {
        let Some(at) = self.timeouts.next(conn) else {
            return false;
        };
        // An entry still to come, not later than this deadline, will do:
        // when due, it finds the connection's deadline and is put back.
        if conn
            .timer
            .is_some_and(|pending| pending > now && pending <= at)
        {
            return false;
        }
        table.timers.push(Reverse((at, conn.id())));
        conn.timer = Some(at);
        let nanos = self.nanos(at);
        nanos < self.earliest.fetch_min(nanos, Ordering::SeqCst)
    }

    /// Waits until a parked connection is ready or a job is announced.
    pub(crate) fn wait(&self) -> io::Result<Woken> {
        Ok(match self.shared.wait()? {
            Wakeup::Ready(token) => match self.take(token) {
                Some(conn) => Woken::Ready(conn),
                None => Woken::Nothing,
            },
            Wakeup::Job => Woken::Job,
            Wakeup::Nothing => Woken::Nothing,
        })
    }

    /// Takes the connection a readiness report is for, unless the report is
    /// stale (the connection was taken away meanwhile).
    fn take(&self, token: u64) -> Option<Connection> {
        let id = token >> GENERATION_BITS;
        let mut table = self.lock(id);
        let current = table
            .conns
            .get(&id)
            .is_some_and(|conn| conn.generation & GENERATION_MASK == token & GENERATION_MASK);
        if current {
            table.conns.remove(&id)
        } else {
            None
        }
    }

    /// Wakes `jobs` waiting workers for jobs in the channel.
    pub(crate) fn announce(&self, jobs: u64) {
        self.shared.notify(jobs);
    }

    /// Takes `id` out of the table, to close or serve it from elsewhere.
    fn remove(&self, table: &mut Table, id: u64) -> Option<Connection> {
        let conn = table.conns.remove(&id)?;
        self.shared.disarm(conn.stream().raw_source());
        Some(conn)
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
                let Some(conn) = table.conns.get_mut(&id) else {
                    // Served or closed since: its next parking schedules
                    // anew.
                    continue;
                };
                if conn.timer != Some(at) {
                    // An earlier entry replaced it.
                    continue;
                }
                conn.timer = None;
                match self.timeouts.due(conn, now) {
                    Due::Nothing => {
                        if let Some(at) = self.timeouts.next(conn) {
                            conn.timer = Some(at);
                            table.timers.push(Reverse((at, id)));
                        }
                    }
                    Due::Turn => turns.extend(self.remove(table, id)),
                    Due::Close => closes.extend(self.remove(table, id)),
                }
            }
            if let Some(&Reverse((at, _))) = table.timers.peek() {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        if let Some(at) = next {
            self.earliest.fetch_min(self.nanos(at), Ordering::SeqCst);
        }
        closes.into_iter().for_each(Timeouts::close);
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

    /// The end of the idle grace: closes every parked idle connection.
    pub(crate) fn close_idle(&self) {
        let idle = self.take_all(|c| c.waiting == Waiting::Idle && !c.has_queued_output());
        for conn in idle {
            conn.close(Outcome::ClosedIdle);
        }
    }

    /// Forced: closes every parked connection.
    pub(crate) fn close_all(&self) {
        self.take_all(|_| true)
            .into_iter()
            .for_each(Connection::close_forced);
    }

    /// Takes every parked connection that `wanted` picks out of the table.
    fn take_all(&self, wanted: impl Fn(&Connection) -> bool) -> Vec<Connection> {
        let mut taken = Vec::new();
        for shard in 0..SHARDS as u64 {
            let mut table = self.lock(shard);
            let ids: Vec<u64> = table
                .conns
                .iter()
                .filter(|(_, c)| wanted(c))
                .map(|(&id, _)| id)
                .collect();
            taken.extend(ids.into_iter().filter_map(|id| self.remove(&mut table, id)));
        }
        taken
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
