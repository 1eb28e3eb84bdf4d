//! The readiness wait every free worker shares: the parked connections, and
//! a count of announced jobs.
//!
//! A free worker waits here for whichever comes first: a parked connection
//! turning ready (each report goes to one worker only) or a job announced
//! for the channel. There is no poller thread in
//! between: the worker that the wait wakes serves at once.
//!
//! With epoll, every free worker waits in `epoll_wait` on the one set at
//! once; a connection is registered once, edge-triggered (each arrival of
//! input is reported to exactly one of them; the
//! [parking](crate::parking) settles who owns a report that comes while a
//! worker has it), output is waited for one-shot, and jobs are announced on an `eventfd` in the set, edge-triggered, so that
//! an announcement wakes one worker, not all. Announcements made before a
//! worker woke count once: the worker that takes a job passes the
//! announcement on while jobs are left ([`WorkerWait::notify`] again).
//!
//! With `poll(2)` only one worker at a time (the leader) polls, the others
//! (the followers) wait on a condition variable for what it found; a
//! connection armed or disarmed while the leader polls wakes it, so that it
//! polls again with the new set. The leader polls only what was armed
//! recently: connections armed long ago and not ready since are polled by a
//! thread of their own, so that a busy few are not slowed by an idle crowd
//! (`readiness/poll.rs`).

use std::io;

#[cfg(any(target_os = "linux", target_os = "android"))]
use crate::sys::{AsSource, Epoll};
use crate::sys::{Backend, Borrowed, Interest, Raw};

mod poll;

use poll::LeaderFollowers;

/// What a worker's wait in the [`WorkerWait`] brought.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wakeup {
    /// A parked connection is ready: its token.
    Ready(u64),
    /// A job was announced with [`WorkerWait::notify`] (or every worker was
    /// told to look: the job channel may have closed).
    Job,
    /// Nothing (interrupted): look again.
    Nothing,
}

/// The readiness wait that every free worker shares; see the module's docs.
pub(crate) enum WorkerWait {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Epoll {
        epoll: Epoll,
        /// An `eventfd`, watched edge-triggered: each write wakes one waiter.
        jobs: std::fs::File,
    },
    Poll(LeaderFollowers),
}

/// The token of the jobs semaphore in the epoll set.
#[cfg(any(target_os = "linux", target_os = "android"))]
const JOBS: u64 = u64::MAX;

impl WorkerWait {
    pub(crate) fn new(backend: Backend) -> io::Result<WorkerWait> {
        Ok(match backend {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Backend::Epoll => {
                let epoll = Epoll::new()?;
                let jobs = std::fs::File::from(crate::sys::eventfd()?);
                epoll.add(jobs.as_source(), JOBS, Interest::Edge)?;
                WorkerWait::Epoll { epoll, jobs }
            }
            Backend::Poll => WorkerWait::Poll(LeaderFollowers::new()?),
        })
    }

    /// Watches `fd` under `token` for `interest`: `first` adds it,
    /// otherwise it is armed again (which reports it at once if it is
    /// ready).
    pub(crate) fn arm(
        &self,
        fd: Borrowed<'_>,
        token: u64,
        interest: Interest,
        first: bool,
    ) -> io::Result<()> {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            WorkerWait::Epoll { epoll, .. } => {
                if first {
                    epoll.add(fd, token, interest)
                } else {
                    epoll.modify(fd, token, interest)
                }
            }
            // A poll set entry is the same whether new or not.
            WorkerWait::Poll(shared) => {
                let _ = first;
                shared.arm(fd, token, interest);
                Ok(())
            }
        }
    }

    /// Whether a socket armed for [`Interest::Input`] stays armed after a
    /// report (epoll's edge trigger: each arrival of input is reported
    /// again), so that parking it again needs no call when its last read
    /// found its queue empty. With `poll(2)` a report disarms it.
    pub(crate) fn keeps_input_armed(&self) -> bool {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            WorkerWait::Epoll { .. } => true,
            WorkerWait::Poll(_) => false,
        }
    }

    /// Stops reporting `fd` until it is armed again: for a connection taken
    /// away before it was reported, which may be closed next. (A stray epoll
    /// report is ignored by its stale token; the `poll(2)` set must not
    /// poll a descriptor that may be closed.)
    pub(crate) fn disarm(&self, fd: Raw) {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            WorkerWait::Epoll { .. } => {}
            WorkerWait::Poll(shared) => shared.disarm(fd),
        }
    }

    /// Announces `jobs` jobs: wakes up to that many waiting workers (with
    /// epoll, one; it passes the announcement on).
    pub(crate) fn notify(&self, jobs: u64) {
        if jobs == 0 {
            return;
        }
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            WorkerWait::Epoll { jobs: counter, .. } => {
                use std::io::{Read, Write};
                // Each write is an edge: one waiter wakes. Nobody reads the
                // counter (that would cost a call per job); it would take
                // 2^64 writes to fill, and then one read empties it.
                let mut counter: &std::fs::File = counter;
                if counter.write(&1u64.to_ne_bytes()).is_err() {
                    let mut count = [0; 8];
                    let _ = counter.read(&mut count);
                    let _ = counter.write(&1u64.to_ne_bytes());
                }
            }
            WorkerWait::Poll(shared) => shared.notify(jobs),
        }
    }

    /// Waits, with no timeout, for a parked connection to be ready or a job
    /// to be announced.
    pub(crate) fn wait(&self) -> io::Result<Wakeup> {
        let woken = match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            WorkerWait::Epoll { epoll, .. } => match epoll.wait_one() {
                // The edge was the message: the counter is left as it is.
                Ok(Some(JOBS)) => Ok(Wakeup::Job),
                Ok(Some(token)) => Ok(Wakeup::Ready(token)),
                Ok(None) => Ok(Wakeup::Nothing),
                Err(e) => Err(e),
            },
            WorkerWait::Poll(shared) => shared.wait(),
        };
        match woken {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Wakeup::Nothing),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{socket_pair, AsSource};
    use std::io::Write;
    use std::time::Duration;

    #[test]
    fn the_shared_wait_reports_a_oneshot_once_until_armed_again() {
        for backend in Backend::all() {
            let shared = WorkerWait::new(backend).expect("shared");
            let (mut tx, rx) = socket_pair().expect("pair");
            shared
                .arm(rx.as_source(), 7, Interest::Input, true)
                .expect("add");
            tx.write_all(b"x").expect("write");
            assert_eq!(
                shared.wait().expect("wait"),
                Wakeup::Ready(7),
                "{backend:?}"
            );
            // Still readable, but disarmed: the job comes first.
            shared.notify(1);
            assert_eq!(shared.wait().expect("wait"), Wakeup::Job, "{backend:?}");
            shared
                .arm(rx.as_source(), 8, Interest::Input, false)
                .expect("rearm");
            assert_eq!(
                shared.wait().expect("wait"),
                Wakeup::Ready(8),
                "{backend:?}"
            );
        }
    }

    #[test]
    fn the_shared_wait_reports_room_for_output() {
        for backend in Backend::all() {
            let shared = WorkerWait::new(backend).expect("shared");
            let (tx, rx) = socket_pair().expect("pair");
            // A fresh socket has room for output, and no input.
            shared
                .arm(tx.as_source(), 9, Interest::Output, true)
                .expect("add");
            assert_eq!(
                shared.wait().expect("wait"),
                Wakeup::Ready(9),
                "{backend:?}"
            );
            // Armed for input instead: nothing has arrived, the job comes.
            shared
                .arm(tx.as_source(), 10, Interest::Input, false)
                .expect("rearm");
            shared.notify(1);
            assert_eq!(shared.wait().expect("wait"), Wakeup::Job, "{backend:?}");
            drop(rx);
        }
    }

    #[test]
    fn an_announcement_wakes_one_waiting_worker() {
        for backend in Backend::all() {
            let shared = std::sync::Arc::new(WorkerWait::new(backend).expect("shared"));
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            for _ in 0..3 {
                let shared = std::sync::Arc::clone(&shared);
                let done = done_tx.clone();
                std::thread::spawn(move || {
                    let woken = shared.wait();
                    let _ = done.send(woken.ok());
                });
            }
            let timeout = Duration::from_secs(5);
            for _ in 0..2 {
                shared.notify(1);
                let woken = done_rx.recv_timeout(timeout).expect("a waiter woke");
                assert_eq!(woken, Some(Wakeup::Job), "{backend:?}");
                assert!(
                    done_rx.recv_timeout(Duration::from_millis(100)).is_err(),
                    "{backend:?}: one announcement wakes one waiter"
                );
            }
            shared.notify(1);
            let last = done_rx.recv_timeout(timeout).expect("the third woke");
            assert_eq!(last, Some(Wakeup::Job), "{backend:?}");
        }
    }
}
