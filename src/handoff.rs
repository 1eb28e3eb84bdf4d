//! The job hand-off between the acceptor and the workers: how a connection
//! the acceptor queues reaches a free worker, and how a worker that makes
//! room in the full queue reaches the acceptor, with no wake-up lost. The
//! argument is written here, once; the code below points back to it.
//!
//! # The parties
//!
//! The acceptor queues jobs in a bounded channel with `try_send` (it never
//! blocks) and then [announces](Handoff::announce) them. A worker takes
//! them with `try_recv` ([`Handoff::next`]); when there is none it waits in
//! the readiness wait it shares with the other free workers (a [`Wait`]:
//! in the server, the [parking](crate::parking), where a parked connection
//! turning ready ends a wait too). Two atomics join the two sides:
//!
//! - `waiting` counts the workers that have decided to wait: each looks at
//!   the channel once more after counting itself, then waits. The acceptor
//!   announces as many of the jobs it queued as there are such workers; a
//!   worker not counted yet looks at the channel after it counts itself, so
//!   it needs no announcement.
//! - `space_wanted` is set by the acceptor when the channel is full and it
//!   holds jobs back (it then sleeps in its own readiness wait); the next
//!   worker to take a job clears it and wakes the acceptor.
//!
//! # Why no wake-up is lost
//!
//! Each of the two is a store-then-load handshake: each side stores, then
//! loads what the other side stores (the store-buffering pattern of
//! Dekker's mutual exclusion), with a `fence(SeqCst)` between its store and
//! its load:
//!
//! | who | stores | fence, then loads |
//! |---|---|---|
//! | a worker about to wait | `waiting += 1` | the channel (`try_recv`: the last look) |
//! | the acceptor, having queued | the channel (`try_send`) | `waiting` |
//! | the acceptor, the channel full | `space_wanted = true` | the channel (`try_send` once more) |
//! | a worker, having taken a job | the channel (`try_recv`) | `space_wanted` |
//!
//! In each pair at least one side sees the other's store. The worker sees
//! the job (or sees it already taken by another worker, which is not a
//! stranded job either), or the acceptor sees the worker counted and
//! announces. The acceptor's second try finds the room the worker made, or
//! the worker sees the flag and wakes the acceptor. Both may happen; that
//! costs a spurious wake-up, no more.
//!
//! This rests on documented guarantees only. std documents that Rust's
//! atomics follow the C++20 memory model ([`std::sync::atomic`]) and that a
//! `SeqCst` fence takes part in the single total order S of `SeqCst`
//! operations and fences ([`fence`]). C++20 says (N4861, [atomics.order]
//! ¶4.4): if a `SeqCst` fence X happens before an atomic operation A, B
//! happens before a `SeqCst` fence Y, and A is coherence-ordered before B
//! (on one atomic object: for instance, A reads a value older than the one
//! B writes, ¶3.3), then X precedes Y in S. Suppose both loads of a pair
//! missed the other side's store (for the channel: one of the reads
//! `try_recv` or `try_send` makes of it): each load is then
//! coherence-ordered before that store, so the rule puts each side's fence
//! before the other's in S, which a total order cannot do. The rule holds for atomic operations of any ordering,
//! so nothing is assumed about the orderings crossbeam-channel uses inside:
//! only that a message (or a free slot) is in the channel's atomic state
//! once `try_send` (or `try_recv`) has returned, as in any data-race-free
//! structure (its locks, if it had any, are atomics too). The crate used to
//! assume instead that `try_send` and `try_recv` take part in the `SeqCst`
//! order: true of crossbeam's code today, not promised by its API.
//!
//! # What the readiness wait must do
//!
//! [`Wait`] is all the hand-off asks of the readiness wait, and its
//! contract is the rest of the argument:
//!
//! 1. **An announcement is not lost for want of a waiter**: one made while
//!    no worker waits ends the next wait. (epoll: the `eventfd`'s edge
//!    stays on the ready list until a wait takes it; `poll(2)`: a count
//!    under a `Mutex`.)
//! 2. **It is a message**: what the announcer did before it happens before
//!    what the worker whose wait it ended does after. (epoll: the kernel
//!    hands the ready list over under the epoll instance's lock; `poll(2)`:
//!    the `Mutex`.)
//! 3. **It may count once**: announcements pending together may end a
//!    single wait. (epoll: an edge while the last one is still pending adds
//!    nothing, and an announcement of n jobs is one edge, to save calls.)
//!
//! # Announcements that counted once
//!
//! So a worker whose wait an announcement ended, and that then takes a job,
//! passes the announcement on ([`Handoff::pass_on`]): if jobs are left and
//! workers are counted, it announces one more. By 2. it sees every job
//! queued and every worker counted before the announcements that woke it (a
//! job it does not see has been taken; a worker it does not see counted has
//! left its wait, and looks at the channel before it waits again), so what
//! an announcement stood for is passed on until the jobs or the waiting
//! workers run out. A worker woken that finds no job (a worker that was not
//! waiting took it) waits again: an announcement is a hint, not a job.
//!
//! When the acceptor leaves it drops its sender, which disconnects the
//! channel, and announces once per live worker; each worker that finds the
//! channel closed passes that on as it leaves, if a worker is counted. A
//! worker counting itself later finds the channel closed in its last look:
//! this is the first handshake again, with the disconnection in place of the
//! job, because the leaving worker fences between seeing the disconnection
//! and reading `waiting` (coherence-order chains through the disconnection's
//! store, ¶3.4).
//!
//! # Orderings
//!
//! The fences do the ordering: every atomic here could be `Relaxed`. They
//! are `SeqCst`, conservatively, as elsewhere in the crate; on x86-64 that
//! costs nothing for the loads and read-modify-writes, and the one `SeqCst`
//! store is the acceptor's, when the channel is full. A worker that finds a
//! job at once pays one `try_recv`, one fence and one load.

use std::io;
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, TryRecvError};

use crate::wake::Waker;

/// How long a worker pauses after its readiness wait failed (out of
/// memory), rather than spin on it.
const WAIT_FAILED_PAUSE: Duration = Duration::from_millis(5);

/// What a wait in the readiness wait brought.
pub(crate) enum Woken<R> {
    /// Something else to serve: in the server, a parked connection that
    /// turned ready (it is the worker's now).
    Ready(R),
    /// A job was announced ([`Wait::notify`]).
    Job,
    /// Nothing (a stale report, an interrupted wait): look again.
    Nothing,
}

/// The readiness wait the free workers share, as the hand-off uses it. The
/// module's docs say what an implementation must promise.
pub(crate) trait Wait {
    /// What a wait brings besides announcements.
    type Ready;

    /// Waits, with no timeout, until something is ready or a job is
    /// announced.
    fn wait(&self) -> io::Result<Woken<Self::Ready>>;

    /// Announces `jobs` (at least one) jobs: ends up to that many waits,
    /// at least one, now or when a worker next waits; announcements pending
    /// together may count once.
    fn notify(&self, jobs: u64);
}

/// What a worker is to serve next.
pub(crate) enum Next<T, R> {
    /// A job from the channel.
    Job(T),
    /// What its wait brought ([`Woken::Ready`]).
    Ready(R),
}

/// The channel of jobs, and the two atomics of the handshakes (see the
/// module's docs).
pub(crate) struct Handoff<T> {
    /// The workers' end; the acceptor holds the sender.
    jobs: Receiver<T>,
    /// Workers that have counted themselves and are between their last look
    /// at the channel and the end of their wait. A worker is counted from
    /// before its last look until after its wait, so whoever queues a job
    /// after that look sees it counted (the first handshake). Not the free
    /// workers: a free worker that has not counted itself looks first.
    waiting: AtomicUsize,
    /// Set by the acceptor when the channel is full and it holds jobs back;
    /// cleared by the first worker to take a job after, which wakes the
    /// acceptor (the second handshake). It may stay set after the
    /// acceptor's second try succeeded: the next worker to take a job then
    /// wakes the acceptor for nothing.
    space_wanted: AtomicBool,
    /// The acceptor's wake-up.
    acceptor: Waker,
}

impl<T> Handoff<T> {
    pub(crate) fn new(jobs: Receiver<T>, acceptor: Waker) -> Handoff<T> {
        Handoff {
            jobs,
            waiting: AtomicUsize::new(0),
            space_wanted: AtomicBool::new(false),
            acceptor,
        }
    }

    /// Jobs in the channel (a statistic: the channel's own count).
    pub(crate) fn len(&self) -> usize {
        self.jobs.len()
    }

    /// For the acceptor, the channel full: asks the next worker that takes a
    /// job to wake it. The caller tries to send once more after this (the
    /// second handshake's load: the fence is here, before it).
    pub(crate) fn want_space(&self) {
        self.space_wanted.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// For the acceptor, after it queued `sent` jobs: announces them to as
    /// many counted workers (the first handshake's load).
    pub(crate) fn announce(&self, wait: &impl Wait, sent: usize) {
        if sent == 0 {
            return;
        }
        fence(Ordering::SeqCst);
        let waiting = self.waiting.load(Ordering::SeqCst);
        if waiting > 0 {
            wait.notify(sent.min(waiting) as u64);
        }
    }

    /// For a worker: waits for the next job, or for what else its wait
    /// brings; `None` once the channel is empty and disconnected (the
    /// acceptor is done).
    pub(crate) fn next<W: Wait>(&self, wait: &W) -> Option<Next<T, W::Ready>> {
        // Whether an announcement ended this worker's wait: it passes it on
        // if jobs are left (announcements may have counted once).
        let mut announced = false;
        loop {
            match self.take() {
                Ok(Some(job)) => {
                    if announced {
                        self.pass_on(wait, false);
                    }
                    return Some(Next::Job(job));
                }
                Ok(None) => {}
                Err(_) => {
                    self.pass_on(wait, true);
                    return None;
                }
            }
            // The first handshake, the worker's side: counted, fence, the
            // last look.
            self.waiting.fetch_add(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            let job = self.take();
            let woken = match job {
                Ok(None) => Some(wait.wait()),
                _ => None,
            };
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            match woken {
                Some(Ok(Woken::Ready(ready))) => return Some(Next::Ready(ready)),
                Some(Ok(Woken::Job)) => announced = true,
                Some(Ok(Woken::Nothing)) => {}
                Some(Err(_)) => thread::sleep(WAIT_FAILED_PAUSE),
                // What the last look found, taken at the top of the loop
                // (a job cannot be put back: it is served from here).
                None => match job {
                    Ok(Some(job)) => return Some(Next::Job(job)),
                    _ => {
                        self.pass_on(wait, true);
                        return None;
                    }
                },
            }
        }
    }

    /// A job from the channel if there is one (`Ok(None)` if not); an error
    /// once it is empty and disconnected. After a job or the disconnection,
    /// a fence: the second handshake's, and the one `pass_on` reads after.
    fn take(&self) -> Result<Option<T>, TryRecvError> {
        match self.jobs.try_recv() {
            Ok(job) => {
                // The second handshake, the worker's side: a slot freed,
                // fence, the flag (swapped only when set, to keep the
                // read-modify-write off the fast path).
                fence(Ordering::SeqCst);
                if self.space_wanted.load(Ordering::SeqCst)
                    && self.space_wanted.swap(false, Ordering::SeqCst)
                {
                    self.acceptor.wake();
                }
                Ok(Some(job))
            }
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => {
                fence(Ordering::SeqCst);
                Err(TryRecvError::Disconnected)
            }
        }
    }

    /// For a worker that took a job after an announcement, or that is
    /// `leaving`: announces once more if a worker is counted and jobs are
    /// left (or the channel is closed), after [`take`](Self::take)'s fence.
    /// See the module's docs, "Announcements that counted once".
    fn pass_on(&self, wait: &impl Wait, leaving: bool) {
        let waiting = self.waiting.load(Ordering::SeqCst);
        if waiting > 0 && (leaving || !self.jobs.is_empty()) {
            wait.notify(1);
        }
    }
}

#[cfg(test)]
mod tests {
    //! A stress test of the hand-off over the real readiness wait: a
    //! producer that queues and announces jobs as the acceptor does
    //! (`Loop::flush`), workers that take them with [`Handoff::next`], and a
    //! watchdog that fails the test, with what it saw, when no job is taken
    //! for [`STALL`] while some are outstanding.
    //!
    //! The jobs come in bursts of at most one per worker, and a worker's
    //! turn lasts until its whole burst is taken (as a handler waiting for
    //! its peers would). So each job must reach a *waiting* worker: a lost
    //! announcement is a stall, not a delay until a busy worker comes back
    //! for the job. It runs with four workers, then with one: with several,
    //! a job queued as a worker goes to wait is announced to another one
    //! that is counted, so a missed last look only shows when every worker
    //! is on its way to wait at once; with one, every hand-off is that case.
    //!
    //! `GRACEFUL_STRESS_HANDOFFS` sets the hand-offs per run (default
    //! [`HANDOFFS`]); a long run: `GRACEFUL_STRESS_HANDOFFS=10000000 cargo
    //! test --release --lib handoff -- --nocapture`.

    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicU64, AtomicU8};
    use std::sync::Arc;
    use std::thread::JoinHandle;
    use std::time::Instant;

    use crossbeam_channel::{Sender, TrySendError};

    use super::*;
    use crate::readiness::{Wakeup, WorkerWait};
    use crate::sys::{self, Backend};
    use crate::wake::{self, WakeReceiver};

    /// Hand-offs per run unless `GRACEFUL_STRESS_HANDOFFS` says.
    const HANDOFFS: u64 = 25_000;
    /// Small, so that the producer often finds the channel full.
    const CAPACITY: usize = 2;
    /// No job taken for this long, with jobs outstanding, is a lost wake-up.
    const STALL: Duration = Duration::from_secs(2);
    /// How often the watchdog looks.
    const TICK: Duration = Duration::from_millis(10);
    /// The longest pause of [`spin`], in spins.
    const SPIN: u64 = 64;
    /// How many times a thread waiting for jobs to be taken spins before it
    /// yields instead.
    const PATIENCE: u32 = 1000;

    /// What the producer is doing, for the watchdog's message.
    const RUNNING: u8 = 0;
    const WAITING_FOR_SPACE: u8 = 1;
    const WAITING_FOR_TAKERS: u8 = 2;

    /// The workers' real readiness wait, counting its use. Nothing is
    /// parked in it: only announcements end a wait.
    struct Counted {
        shared: WorkerWait,
        waits: AtomicU64,
        notifies: AtomicU64,
    }

    impl Wait for Counted {
        type Ready = u64;

        fn wait(&self) -> io::Result<Woken<u64>> {
            self.waits.fetch_add(1, Ordering::Relaxed);
            Ok(match self.shared.wait()? {
                Wakeup::Ready(token) => Woken::Ready(token),
                Wakeup::Job => Woken::Job,
                Wakeup::Nothing => Woken::Nothing,
            })
        }

        fn notify(&self, jobs: u64) {
            self.notifies.fetch_add(1, Ordering::Relaxed);
            self.shared.notify(jobs);
        }
    }

    /// What the threads tell the watchdog, and its word to stop.
    #[derive(Default)]
    struct Progress {
        taken: AtomicU64,
        in_turn: AtomicUsize,
        producer: AtomicU8,
        /// Times the producer found the channel full.
        full: AtomicU64,
        stop: AtomicBool,
    }

    impl Progress {
        /// Waits until `n` jobs have been taken; `false` if told to stop.
        fn until_taken(&self, n: u64) -> bool {
            let mut looks = 0;
            while self.taken.load(Ordering::SeqCst) < n {
                if self.stop.load(Ordering::SeqCst) {
                    return false;
                }
                looks += 1;
                if looks < PATIENCE {
                    std::hint::spin_loop();
                } else {
                    thread::yield_now();
                }
            }
            true
        }
    }

    /// Marsaglia's xorshift64: pauses and bursts of random length.
    struct XorShift(u64);

    impl XorShift {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// A short pause of random length, so that the threads meet at every
    /// point of each other's paths.
    fn spin(rng: &mut XorShift) {
        for _ in 0..rng.below(SPIN) {
            std::hint::spin_loop();
        }
    }

    fn handoffs() -> u64 {
        match std::env::var("GRACEFUL_STRESS_HANDOFFS") {
            Ok(count) => count
                .trim()
                .replace('_', "")
                .parse()
                .expect("GRACEFUL_STRESS_HANDOFFS: a number of hand-offs"),
            Err(_) => HANDOFFS,
        }
    }

    #[test]
    fn no_wake_up_is_lost_in_many_handoffs() {
        let count = handoffs();
        let mut backends = vec![Backend::native()];
        if Backend::native() != Backend::Poll {
            backends.push(Backend::Poll);
        }
        for backend in backends {
            for workers in [4, 1] {
                let started = Instant::now();
                let seen =
                    stress(backend, workers, count).unwrap_or_else(|stall| panic!("{stall}"));
                eprintln!(
                    "{backend:?}, {workers} worker(s): {count} hand-offs in {:.2?}: {seen}",
                    started.elapsed()
                );
            }
        }
    }

    /// Runs `count` hand-offs to `workers` over `backend`; how often each
    /// path was taken, or what the watchdog saw stall.
    fn stress(backend: Backend, workers: usize, count: u64) -> Result<String, String> {
        let (jobs, receiver) = crossbeam_channel::bounded(CAPACITY);
        let (waker, space) = wake::channel().expect("wake-up channel");
        let handoff = Arc::new(Handoff::new(receiver, waker));
        let wait = Arc::new(Counted {
            shared: WorkerWait::new(backend).expect("readiness wait"),
            waits: AtomicU64::new(0),
            notifies: AtomicU64::new(0),
        });
        let progress = Arc::new(Progress::default());
        let threads: Vec<JoinHandle<()>> = (0..workers)
            .map(|index| {
                let (handoff, wait) = (Arc::clone(&handoff), Arc::clone(&wait));
                let progress = Arc::clone(&progress);
                thread::spawn(move || {
                    let mut rng = XorShift(0x2545_F491_4F6C_DD1D + index as u64);
                    while let Some(next) = handoff.next(&*wait) {
                        // A job is the number of jobs taken once its burst is.
                        let Next::Job(burst_taken) = next else {
                            continue;
                        };
                        progress.in_turn.fetch_add(1, Ordering::SeqCst);
                        progress.taken.fetch_add(1, Ordering::SeqCst);
                        progress.until_taken(burst_taken);
                        spin(&mut rng);
                        progress.in_turn.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        let producer = {
            let (handoff, wait) = (Arc::clone(&handoff), Arc::clone(&wait));
            let progress = Arc::clone(&progress);
            thread::spawn(move || {
                produce(jobs, &handoff, &*wait, &space, &progress, workers, count);
            })
        };
        let finished = || producer.is_finished() && threads.iter().all(JoinHandle::is_finished);
        let mut outcome = watch(&handoff, &progress, count);
        if outcome.is_ok() {
            // Every job taken: the producer closes the channel, and the
            // workers must all see it with no help.
            let closing = Instant::now();
            while !finished() && closing.elapsed() < STALL {
                thread::sleep(TICK);
            }
            if !finished() {
                outcome = Err(format!(
                    "{} worker(s) still counted waiting {STALL:?} after the channel closed",
                    handoff.waiting.load(Ordering::SeqCst)
                ));
            }
        }
        // Ends every thread even after a stall: the producer stops (its
        // sender dropped, the channel disconnects) and the workers are
        // woken until they have all seen it.
        progress.stop.store(true, Ordering::SeqCst);
        let ending = Instant::now();
        while !finished() {
            assert!(
                ending.elapsed() < Duration::from_secs(30),
                "{backend:?}, {workers} worker(s): the threads did not end"
            );
            wait.notify(workers as u64);
            thread::sleep(TICK);
        }
        match outcome {
            Ok(()) => Ok(format!(
                "{} waits, {} announcements, the channel full {} times",
                wait.waits.load(Ordering::Relaxed),
                wait.notifies.load(Ordering::Relaxed),
                progress.full.load(Ordering::SeqCst)
            )),
            Err(stall) => Err(format!(
                "{backend:?}, {workers} worker(s): a wake-up was lost: {stall}"
            )),
        }
    }

    /// The acceptor's part: bursts of at most one job per worker, queued as
    /// `Loop::flush` queues them; while the channel is full, sleeping until
    /// a worker wakes it (only that: a lost wake-up stalls it); after a
    /// burst, waiting until it is all taken, then a random pause, so that
    /// the next burst meets the workers anywhere on their way to wait. Ends
    /// as the acceptor's exit does: the channel closed, every worker told.
    fn produce(
        jobs: Sender<u64>,
        handoff: &Handoff<u64>,
        wait: &impl Wait,
        space: &WakeReceiver,
        progress: &Progress,
        workers: usize,
        count: u64,
    ) {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut queued = 0;
        while queued < count {
            let end = (queued + 1 + rng.below(workers as u64)).min(count);
            let mut ready: VecDeque<u64> = (queued..end).map(|_| end).collect();
            queued = end;
            loop {
                let sent = flush(&jobs, handoff, &mut ready, progress);
                handoff.announce(wait, sent);
                if ready.is_empty() {
                    break;
                }
                progress.producer.store(WAITING_FOR_SPACE, Ordering::SeqCst);
                if !wait_for_space(space, progress) {
                    return;
                }
                progress.producer.store(RUNNING, Ordering::SeqCst);
            }
            progress
                .producer
                .store(WAITING_FOR_TAKERS, Ordering::SeqCst);
            if !progress.until_taken(end) {
                return;
            }
            progress.producer.store(RUNNING, Ordering::SeqCst);
            spin(&mut rng);
        }
        drop(jobs);
        wait.notify(workers as u64);
    }

    /// Queues what fits, as `Loop::flush` does; how many were queued.
    fn flush(
        jobs: &Sender<u64>,
        handoff: &Handoff<u64>,
        ready: &mut VecDeque<u64>,
        progress: &Progress,
    ) -> usize {
        let mut asked = false;
        let mut sent = 0;
        while let Some(job) = ready.pop_front() {
            match jobs.try_send(job) {
                Ok(()) => sent += 1,
                Err(TrySendError::Full(job)) => {
                    ready.push_front(job);
                    if asked {
                        break;
                    }
                    handoff.want_space();
                    progress.full.fetch_add(1, Ordering::SeqCst);
                    asked = true;
                }
                Err(TrySendError::Disconnected(_)) => unreachable!("the workers hold it"),
            }
        }
        sent
    }

    /// Sleeps until a worker that took a job wakes the producer (nothing
    /// else ends this: a lost wake-up stalls here); `false` if told to stop.
    fn wait_for_space(space: &WakeReceiver, progress: &Progress) -> bool {
        loop {
            if progress.stop.load(Ordering::SeqCst) {
                return false;
            }
            let woken = sys::wait_readable(space.as_source(), Some(TICK * 5));
            if woken.expect("wait for space") {
                space.drain();
                return true;
            }
        }
    }

    /// Watches the workers take `count` jobs; what it saw if none is taken
    /// for [`STALL`] while some are outstanding.
    fn watch(handoff: &Handoff<u64>, progress: &Progress, count: u64) -> Result<(), String> {
        let mut last = (0, Instant::now());
        loop {
            thread::sleep(TICK);
            let taken = progress.taken.load(Ordering::SeqCst);
            if taken >= count {
                return Ok(());
            }
            if taken != last.0 {
                last = (taken, Instant::now());
                continue;
            }
            if last.1.elapsed() < STALL {
                continue;
            }
            let producer = match progress.producer.load(Ordering::SeqCst) {
                WAITING_FOR_SPACE => "sleeping until a worker makes room",
                WAITING_FOR_TAKERS => "waiting for its jobs to be taken",
                _ => "running",
            };
            return Err(format!(
                "no job taken for {STALL:?} after {taken} of {count}; the channel holds {} \
                 job(s), {} worker(s) counted waiting, {} in a turn; the producer is {producer}",
                handoff.len(),
                handoff.waiting.load(Ordering::SeqCst),
                progress.in_turn.load(Ordering::SeqCst),
            ));
        }
    }
}
