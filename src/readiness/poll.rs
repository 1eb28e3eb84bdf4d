//! The `poll(2)` form of the workers' shared wait: a leader, followers, and
//! a waiter for the connections parked long ago.
//!
//! `poll(2)` has no kernel-side set: every wait passes its whole array and
//! the kernel scans it all. So only one worker at a time (the **leader**)
//! polls; the others (the **followers**) wait on a condition variable for
//! what it found, or for its place. A connection armed or disarmed while
//! the leader polls wakes it, so that it polls again with the new set: one
//! leader round per park, under load.
//!
//! # Two tiers
//!
//! If the leader polled every parked connection, each of those rounds
//! would scan every idle keep-alive connection too: beside 10,000 of them
//! the busy few ran at 1% of their speed alone. So the set is kept in two
//! tiers ([`TieredSet`]):
//!
//! - **hot**: what was armed in the last [`COLD_AFTER`] or so. The leader
//!   polls this, and a round costs O(hot), whatever the number of idle
//!   connections.
//! - **cold**: what has been armed longer and not turned ready. The leader
//!   moves it there in one batch, at most every half [`COLD_AFTER`], at the
//!   start of a round (so only while it is busy; a quiet server does not
//!   age anything, and does not need to). A thread of its own, `poll-cold`,
//!   polls the cold tier with no timeout, and copies its array again only
//!   when that changed (a batch moved in, an entry disarmed or reported).
//!   A cold connection turning ready is seen at once, by that wait, and
//!   handed to the workers as the leader's finds are, plus one wake-up of a
//!   worker.
//!
//! Why [`COLD_AFTER`] is 100 ms: under load the leader makes tens of
//! thousands of rounds a second, so an idle entry kept hot 100 ms costs
//! thousands of scans of it, about what one trip through a tier of 10,000
//! cold entries costs (that tier is scanned again when the entry turns
//! ready). Clients that pause for less (5-30 ms think times) stay hot and
//! never pay the extra hand-off. A connection that turns ready once in a
//! long while costs a scan of the cold tier then: O(cold) per such event,
//! where every event cost O(all) before.
//!
//! The thread starts when an entry first goes cold and ends when the cold
//! tier is empty (every connection closed: the server's end), or when the
//! wait is dropped, which joins it. If it cannot start, or its poll fails,
//! the cold entries go back to the hot tier and stay there: the leader's
//! poll, as before the tiers, reports any failure to a worker.
//!
//! # The arguments
//!
//! Everything is under one lock (`PollState`), and every cross-thread
//! signal is a wake-up channel (a counter: a wake-up sent before its
//! receiver waits is not lost) or the condition variable (followers check
//! under the lock before waiting), so no atomics and no ordering policy.
//!
//! - **No report is lost.** A waiter copies its tier (under the lock) and
//!   polls the copy (without). A change made after the copy wakes it:
//!   arming anything wakes the leader if it polls; disarming wakes the
//!   waiter of the entry's tier; a batch moved cold wakes the cold waiter.
//!   A wake-up is drained under the lock before the next copy, so the copy
//!   includes what the drained wake-ups announced. What a waiter finds goes
//!   to `ready` under the lock, and the followers are notified; the cold
//!   waiter also wakes a polling leader, which may be the only free worker.
//! - **Nothing is reported twice or after its disarm.** Each arming has a
//!   stamp ([`TieredSet`]); a report counts only if the entry is still
//!   armed under the stamp that was polled, and counting it disarms the
//!   entry, under the lock. Only the leader moves entries between tiers, at
//!   the start of its round, so no snapshot in flight holds an entry of the
//!   other tier.
//! - **A descriptor that may be closed next is not polled again.** Before
//!   a connection taken out of the parking may be closed it is disarmed:
//!   taken out of its tier's array under the lock, and the waiter that may
//!   hold it in a snapshot (the leader for hot, the cold waiter for cold) is
//!   woken to poll a fresh copy. (Its wait in progress may still see the
//!   closed number, as `POLLNVAL` or as whatever took it; the stamp drops
//!   that report.) An entry reported is out of its array already, and its
//!   reporter copies anew before it polls again.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::Wakeup;
use crate::sys::{AsSource, Borrowed, Interest, Raw, Snapshot, Tier, TieredSet};
use crate::wake::{self, WakeReceiver, Waker};

/// How long an entry is armed, not ready, before it may move to the cold
/// tier; see the module's docs.
const COLD_AFTER: Duration = Duration::from_millis(100);

/// The `poll(2)` form of [`WorkerWait`](super::WorkerWait): leader,
/// followers, and the cold tier's waiter.
pub(crate) struct LeaderFollowers {
    shared: Arc<Shared>,
}

/// What the workers and the cold waiter share.
struct Shared {
    state: Mutex<PollState>,
    /// Followers wait here for what was found, or for the leader's place.
    found: Condvar,
    /// Ends the leader's poll, to poll again with a changed set.
    leader: Waker,
    leader_wake: WakeReceiver,
    /// How long an entry stays hot ([`COLD_AFTER`]; the tests shorten it).
    cold_after: Duration,
}

struct PollState {
    set: TieredSet,
    /// Tokens found ready, not taken yet.
    ready: VecDeque<u64>,
    /// Announced jobs not taken yet.
    jobs: u64,
    /// Whether a worker is polling (leads).
    polling: bool,
    /// The leader's copy of the hot tier, kept between rounds (taken out
    /// while it polls).
    hot: Snapshot,
    /// When the leader next looks for entries to move cold.
    next_sweep: Instant,
    cold: ColdWaiter,
}

/// The cold tier's waiter, as the others see it.
#[derive(Default)]
struct ColdWaiter {
    /// Ends its poll; `Some` while it runs (it clears this as it ends).
    waker: Option<Waker>,
    thread: Option<JoinHandle<()>>,
    /// The wait is dropped: end now.
    stopping: bool,
    /// It could not start, or its poll failed: the tiers are off, and
    /// every entry stays hot.
    failed: bool,
    /// Statistics: how many times it copied the cold tier (the tests
    /// watch it).
    copies: u64,
}

impl ColdWaiter {
    fn wake(&self) {
        if let Some(waker) = &self.waker {
            waker.wake();
        }
    }
}

impl LeaderFollowers {
    pub(super) fn new() -> io::Result<LeaderFollowers> {
        LeaderFollowers::with_cold_after(COLD_AFTER)
    }

    fn with_cold_after(cold_after: Duration) -> io::Result<LeaderFollowers> {
        let (leader, leader_wake) = wake::channel()?;
        let state = PollState {
            set: TieredSet::default(),
            ready: VecDeque::new(),
            jobs: 0,
            polling: false,
            hot: Snapshot::default(),
            next_sweep: Instant::now(),
            cold: ColdWaiter::default(),
        };
        Ok(LeaderFollowers {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                found: Condvar::new(),
                leader,
                leader_wake,
                cold_after,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, PollState> {
        self.shared.lock()
    }

    pub(super) fn arm(&self, fd: Borrowed<'_>, token: u64, interest: Interest) {
        let now = Instant::now();
        let mut state = self.lock();
        if state.set.arm(fd.raw_source(), token, interest, now) == Some(Tier::Cold) {
            state.cold.wake();
        }
        if state.polling {
            self.shared.leader.wake();
        }
    }

    pub(super) fn disarm(&self, fd: Raw) {
        let mut state = self.lock();
        // The waiter of its tier may hold the descriptor in its snapshot:
        // end that poll, so that it is not polled once closed.
        match state.set.disarm(fd) {
            Some(Tier::Hot) if state.polling => self.shared.leader.wake(),
            Some(Tier::Cold) => state.cold.wake(),
            _ => {}
        }
    }

    pub(super) fn notify(&self, jobs: u64) {
        let mut state = self.lock();
        state.jobs = state.jobs.saturating_add(jobs);
        if state.polling {
            self.shared.leader.wake();
        }
        drop(state);
        self.shared.found.notify_all();
    }

    pub(super) fn wait(&self) -> io::Result<Wakeup> {
        let mut state = self.lock();
        loop {
            if state.jobs > 0 {
                state.jobs -= 1;
                return Ok(Wakeup::Job);
            }
            if let Some(token) = state.ready.pop_front() {
                return Ok(Wakeup::Ready(token));
            }
            if state.polling {
                state = self
                    .shared
                    .found
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // Lead: poll the hot tier and the leader's wake-up, unlocked.
            state.polling = true;
            if state.set.len(Tier::Hot) > 0 {
                self.sweep(&mut state, Instant::now());
            }
            let mut snapshot = std::mem::take(&mut state.hot);
            state.set.refresh(Tier::Hot, &mut snapshot);
            drop(state);
            let polled = snapshot.wait(self.shared.leader_wake.as_source(), None);
            state = self.lock();
            state.polling = false;
            if polled.is_err() || snapshot.woken() {
                self.shared.leader_wake.drain();
            }
            if polled.is_ok() {
                let PollState { set, ready, .. } = &mut *state;
                set.take_ready(&snapshot, |token| ready.push_back(token));
            }
            state.hot = snapshot;
            // Others may take what was found, or lead next.
            self.shared.found.notify_all();
            polled?;
        }
    }

    /// The leader's look for entries to move cold, at most every half
    /// `cold_after`: they move in one batch, and the cold waiter (started
    /// if it is not running) is woken once for it.
    fn sweep(&self, state: &mut PollState, now: Instant) {
        if now < state.next_sweep || state.cold.failed {
            return;
        }
        let cold_after = self.shared.cold_after;
        state.next_sweep = now.checked_add(cold_after / 2).unwrap_or(now);
        if state.set.sweep(now, cold_after) == 0 {
            return;
        }
        if state.cold.waker.is_some() {
            state.cold.wake();
            return;
        }
        if self.start_cold(state).is_err() {
            state.cold.failed = true;
            state.set.warm_all(now);
        }
    }

    /// Starts the cold waiter, with a wake-up channel of its own.
    fn start_cold(&self, state: &mut PollState) -> io::Result<()> {
        if let Some(ended) = state.cold.thread.take() {
            // It cleared its waker under the lock and took the lock for the
            // last time then, so this join does not wait for us.
            let _ = ended.join();
        }
        let (waker, wake) = wake::channel()?;
        let shared = Arc::clone(&self.shared);
        let thread = thread::Builder::new()
            .name("poll-cold".to_owned())
            .spawn(move || shared.poll_cold(&wake))?;
        state.cold.waker = Some(waker);
        state.cold.thread = Some(thread);
        Ok(())
    }

    /// The tier sizes (hot, cold), and whether the cold waiter runs.
    #[cfg(test)]
    fn tiers(&self) -> (usize, usize, bool) {
        let state = self.lock();
        let (hot, cold) = (state.set.len(Tier::Hot), state.set.len(Tier::Cold));
        (hot, cold, state.cold.waker.is_some())
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, PollState> {
        // The state is counters, a set and handles, consistent after every
        // statement: a panic elsewhere leaves nothing half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cold waiter's loop: poll the cold tier until it is empty or the
    /// wait is dropped, handing what turns ready to the workers.
    fn poll_cold(&self, wake: &WakeReceiver) {
        let mut snapshot = Snapshot::default();
        let mut state = self.lock();
        while !state.cold.stopping && state.set.len(Tier::Cold) > 0 {
            if state.set.refresh(Tier::Cold, &mut snapshot) {
                state.cold.copies += 1;
            }
            drop(state);
            let polled = snapshot.wait(wake.as_source(), None);
            state = self.lock();
            if polled.is_err() || snapshot.woken() {
                wake.drain();
            }
            match polled {
                Ok(()) => {
                    let before = state.ready.len();
                    let PollState { set, ready, .. } = &mut *state;
                    set.take_ready(&snapshot, |token| ready.push_back(token));
                    if state.ready.len() > before {
                        // A follower takes it; or the leader, which may be
                        // the only free worker.
                        if state.polling {
                            self.leader.wake();
                        }
                        self.found.notify_all();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // Back to the leader, whose poll reports the failure
                    // if it persists.
                    state.cold.failed = true;
                    state.set.warm_all(Instant::now());
                    if state.polling {
                        self.leader.wake();
                    }
                }
            }
        }
        state.cold.waker = None;
    }
}

impl Drop for LeaderFollowers {
    fn drop(&mut self) {
        let thread = {
            let mut state = self.lock();
            state.cold.stopping = true;
            state.cold.wake();
            state.cold.thread.take()
        };
        if let Some(thread) = thread {
            // It ends at its next look at the state: the wake-up ends its
            // poll.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::socket_pair;
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::mpsc;

    const TIMEOUT: Duration = Duration::from_secs(5);

    /// Waits on `lf` in a thread of its own; the wake-up arrives on the
    /// channel.
    fn wait_in_thread<'scope>(
        scope: &'scope thread::Scope<'scope, '_>,
        lf: &Arc<LeaderFollowers>,
    ) -> mpsc::Receiver<Wakeup> {
        let (tx, rx) = mpsc::channel();
        let lf = Arc::clone(lf);
        scope.spawn(move || {
            let woken = lf.wait().expect("wait");
            let _ = tx.send(woken);
        });
        rx
    }

    /// Moves every armed entry cold, as the leader would after
    /// `cold_after`.
    fn chill(lf: &LeaderFollowers) {
        let mut state = lf.lock();
        state.next_sweep = Instant::now();
        let later = Instant::now() + Duration::from_secs(3600);
        lf.sweep(&mut state, later);
    }

    #[test]
    fn a_cold_entry_turning_ready_is_reported_once_and_at_once() {
        let lf = Arc::new(LeaderFollowers::new().expect("wait"));
        let (mut tx, rx) = socket_pair().expect("pair");
        lf.arm(rx.as_source(), 7, Interest::Input);
        chill(&lf);
        assert_eq!(lf.tiers(), (0, 1, true), "cold, and its waiter runs");
        thread::scope(|s| {
            let woken = wait_in_thread(s, &lf);
            assert!(woken.recv_timeout(Duration::from_millis(50)).is_err());
            tx.write_all(b"x").expect("write");
            let woken = woken.recv_timeout(TIMEOUT).expect("reported");
            assert_eq!(woken, Wakeup::Ready(7));
        });
        // Still readable, but reported: the job comes first, and the cold
        // tier is empty, so its waiter ends.
        lf.notify(1);
        assert_eq!(lf.wait().expect("wait"), Wakeup::Job);
        let thread = lf.lock().cold.thread.take().expect("started");
        thread.join().expect("cold waiter");
        assert_eq!(lf.tiers(), (0, 0, false));
        // Armed again: hot, and reported by the leader.
        lf.arm(rx.as_source(), 8, Interest::Input);
        assert_eq!(lf.wait().expect("wait"), Wakeup::Ready(8));
    }

    #[test]
    fn a_cold_entry_disarmed_is_not_polled_or_reported() {
        let lf = Arc::new(LeaderFollowers::new().expect("wait"));
        let (mut tx, rx) = socket_pair().expect("pair");
        let (_tx2, rx2) = socket_pair().expect("pair");
        lf.arm(rx.as_source(), 1, Interest::Input);
        lf.arm(rx2.as_source(), 2, Interest::Input);
        chill(&lf);
        assert_eq!(lf.tiers(), (0, 2, true));
        // Its waiter polls a copy without rx before rx is closed...
        let deadline = Instant::now() + TIMEOUT;
        while lf.lock().cold.copies == 0 {
            assert!(Instant::now() < deadline, "the cold waiter did not start");
            thread::yield_now();
        }
        let copies = lf.lock().cold.copies;
        lf.disarm(rx.raw_source());
        assert_eq!(lf.tiers(), (0, 1, true));
        while lf.lock().cold.copies == copies {
            assert!(Instant::now() < deadline, "the cold waiter was not woken");
            thread::yield_now();
        }
        // ... and does not report it.
        tx.write_all(b"x").expect("write");
        drop(rx);
        // Whatever takes the closed number next is a new arming.
        let (mut tx3, rx3) = socket_pair().expect("pair");
        lf.arm(rx3.as_source(), 3, Interest::Input);
        tx3.write_all(b"y").expect("write");
        assert_eq!(lf.wait().expect("wait"), Wakeup::Ready(3));
        lf.notify(1);
        assert_eq!(lf.wait().expect("wait"), Wakeup::Job, "1 is not reported");
        // The last cold one disarmed: its waiter ends.
        lf.disarm(rx2.raw_source());
        let thread = lf.lock().cold.thread.take().expect("started");
        thread.join().expect("cold waiter");
        assert_eq!(lf.tiers(), (0, 0, false));
    }

    #[test]
    fn the_cold_waiter_ends_when_the_wait_is_dropped() {
        let lf = LeaderFollowers::new().expect("wait");
        let (_tx, rx) = socket_pair().expect("pair");
        lf.arm(rx.as_source(), 1, Interest::Input);
        chill(&lf);
        assert_eq!(lf.tiers(), (0, 1, true));
        let shared = Arc::downgrade(&lf.shared);
        drop(lf);
        assert!(shared.upgrade().is_none(), "the cold waiter let go");
    }

    #[test]
    fn entries_age_into_the_cold_tier_as_the_leader_polls() {
        let lf = Arc::new(LeaderFollowers::with_cold_after(Duration::ZERO).expect("wait"));
        let (_tx, rx) = socket_pair().expect("pair");
        lf.arm(rx.as_source(), 1, Interest::Input);
        // The next leader's round moves it.
        thread::scope(|s| {
            let woken = wait_in_thread(s, &lf);
            let deadline = Instant::now() + TIMEOUT;
            while lf.tiers() != (0, 1, true) {
                assert!(Instant::now() < deadline, "not moved: {:?}", lf.tiers());
                thread::yield_now();
            }
            lf.notify(1);
            assert_eq!(woken.recv_timeout(TIMEOUT), Ok(Wakeup::Job));
        });
    }

    /// Many connections in both tiers, each written to once: each reported
    /// exactly once, to one of several waiting workers.
    #[test]
    fn many_entries_in_both_tiers_are_each_reported_once() {
        const PAIRS: usize = 200;
        let lf = Arc::new(LeaderFollowers::new().expect("wait"));
        let pairs: Vec<_> = (0..PAIRS).map(|_| socket_pair().expect("pair")).collect();
        for (i, (_, rx)) in pairs.iter().enumerate().take(PAIRS / 2) {
            lf.arm(rx.as_source(), i as u64, Interest::Input);
        }
        chill(&lf);
        for (i, (_, rx)) in pairs.iter().enumerate().skip(PAIRS / 2) {
            lf.arm(rx.as_source(), i as u64, Interest::Input);
        }
        assert_eq!(lf.tiers(), (PAIRS / 2, PAIRS / 2, true));
        let (tx, rx) = mpsc::channel();
        thread::scope(|s| {
            for _ in 0..4 {
                let (lf, tx) = (Arc::clone(&lf), tx.clone());
                s.spawn(move || loop {
                    match lf.wait().expect("wait") {
                        Wakeup::Ready(token) => tx.send(token).expect("send"),
                        Wakeup::Job => return,
                        Wakeup::Nothing => {}
                    }
                });
            }
            // Odd ones first, then even ones, interleaving the tiers.
            let order = (0..PAIRS)
                .filter(|i| i % 2 == 1)
                .chain((0..PAIRS).step_by(2));
            for i in order {
                (&pairs[i].0).write_all(b"x").expect("write");
            }
            let mut seen = [false; PAIRS];
            for _ in 0..PAIRS {
                let token = rx.recv_timeout(TIMEOUT).expect("every one reported");
                assert!(!seen[token as usize], "{token} reported twice");
                seen[token as usize] = true;
            }
            assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
            lf.notify(4);
        });
        assert_eq!(lf.tiers(), (0, 0, false));
    }

    /// Operations per stress run unless `GRACEFUL_STRESS_TIERS` says.
    const STRESS_OPS: u64 = 20_000;

    #[cfg(unix)]
    type Sock = std::os::unix::net::UnixStream;
    #[cfg(windows)]
    type Sock = std::net::TcpStream;

    /// A connection of the stress test, as the parking would hold it.
    struct Conn {
        tx: Sock,
        rx: Sock,
        /// Its arming: the low half of its token.
        generation: u64,
        parked: bool,
        /// The generations reported.
        reported: std::collections::HashSet<u64>,
    }

    fn nonblocking_pair() -> (Sock, Sock) {
        let (tx, rx) = socket_pair().expect("pair");
        tx.set_nonblocking(true).expect("nonblocking");
        rx.set_nonblocking(true).expect("nonblocking");
        (tx, rx)
    }

    /// Reads what `rx` has; how many bytes.
    fn drain(rx: &Sock) -> u64 {
        use std::io::Read;
        let (mut total, mut buf) = (0, [0; 256]);
        loop {
            match (&*rx).read(&mut buf) {
                Ok(0) => return total,
                Ok(n) => total += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return total,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// Announces a job to each of the stress test's three workers when
    /// dropped: their signal to end.
    struct Stop<'a>(&'a LeaderFollowers);

    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.notify(3);
        }
    }

    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// Connections written to at random, served by three workers, taken
    /// away (disarmed), sometimes closed and replaced (their numbers
    /// reused), by a fourth thread; every entry moves cold at every leader
    /// round, so both tiers' waiters and the moves race with it all.
    /// Checks: every byte written is read (no report lost), no arming is
    /// reported twice, and a report still current finds input (none comes
    /// from a poll of a closed descriptor whose number was reused).
    /// `GRACEFUL_STRESS_TIERS` sets the writes per run; a long run:
    /// `GRACEFUL_STRESS_TIERS=2000000 cargo test --release --lib tiers_under`.
    #[test]
    fn tiers_under_stress_lose_nothing_and_report_nothing_stale() {
        let ops = match std::env::var("GRACEFUL_STRESS_TIERS") {
            Ok(ops) => ops.trim().parse().expect("GRACEFUL_STRESS_TIERS: a number"),
            Err(_) => STRESS_OPS,
        };
        // Every entry moves cold at every leader round; or about half do.
        for cold_after in [Duration::ZERO, Duration::from_micros(50)] {
            stress_tiers(cold_after, ops);
        }
    }

    fn stress_tiers(cold_after: Duration, ops: u64) {
        const CONNS: usize = 16;
        let lf = LeaderFollowers::with_cold_after(cold_after).expect("wait");
        let token_of = |conn: usize, generation: u64| ((conn as u64) << 32) | generation;
        let conns: Vec<Mutex<Conn>> = (0..CONNS)
            .map(|i| {
                let (tx, rx) = nonblocking_pair();
                lf.arm(rx.as_source(), token_of(i, 0), Interest::Input);
                Mutex::new(Conn {
                    tx,
                    rx,
                    generation: 0,
                    parked: true,
                    reported: Default::default(),
                })
            })
            .collect();
        let lock = |i: usize| conns[i].lock().expect("no test thread panicked");
        let (written, read) = (AtomicU64::new(0), AtomicU64::new(0));
        let serve = |token: u64| {
            let (i, generation) = ((token >> 32) as usize, token & u64::from(u32::MAX));
            let mut conn = lock(i);
            assert!(
                conn.reported.insert(generation),
                "{token:#x} reported twice"
            );
            if !conn.parked || conn.generation != generation {
                return; // Taken away meanwhile: stale, as the parking sees it.
            }
            let got = drain(&conn.rx);
            assert!(got > 0, "{token:#x}: a current report, and no input");
            read.fetch_add(got, Ordering::SeqCst);
            conn.generation += 1;
            lf.arm(
                conn.rx.as_source(),
                token_of(i, conn.generation),
                Interest::Input,
            );
        };
        thread::scope(|s| {
            // However this ends (a failed check panics), the workers end
            // too, so that the scope's join does not hang.
            let _stop = Stop(&lf);
            for _ in 0..3 {
                s.spawn(|| loop {
                    match lf.wait().expect("wait") {
                        Wakeup::Ready(token) => serve(token),
                        Wakeup::Job => return,
                        Wakeup::Nothing => {}
                    }
                });
            }
            let taker = s.spawn(|| {
                let mut rng = 0x9E37_79B9_7F4A_7C15;
                for k in 0..ops / 4 {
                    let i = (xorshift(&mut rng) % CONNS as u64) as usize;
                    let mut conn = lock(i);
                    if !conn.parked {
                        continue;
                    }
                    lf.disarm(conn.rx.raw_source());
                    read.fetch_add(drain(&conn.rx), Ordering::SeqCst);
                    if k % 2 == 0 {
                        // Closed; the next socket likely takes its number.
                        (conn.tx, conn.rx) = nonblocking_pair();
                    }
                    conn.generation += 1;
                    lf.arm(
                        conn.rx.as_source(),
                        token_of(i, conn.generation),
                        Interest::Input,
                    );
                }
            });
            let mut rng = 0x2545_F491_4F6C_DD1D;
            for _ in 0..ops {
                let i = (xorshift(&mut rng) % CONNS as u64) as usize;
                let conn = lock(i);
                match (&conn.tx).write(b"x") {
                    Ok(n) => written.fetch_add(n as u64, Ordering::SeqCst),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                    Err(e) => panic!("write: {e}"),
                };
            }
            taker.join().expect("taker");
            let deadline = Instant::now() + Duration::from_secs(10);
            while read.load(Ordering::SeqCst) < written.load(Ordering::SeqCst) {
                assert!(
                    Instant::now() < deadline,
                    "a report was lost: {} of {} bytes read",
                    read.load(Ordering::SeqCst),
                    written.load(Ordering::SeqCst)
                );
                thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(read.load(Ordering::SeqCst), written.load(Ordering::SeqCst));
        });
    }
}
