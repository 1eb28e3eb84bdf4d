//! The accept loop: nonblocking accept, an adaptive and interruptible wait,
//! backoff on resource exhaustion, and the final sweep of the kernel backlog.
//!
//! The listener is nonblocking, so the acceptor never sits inside `accept`
//! where a shutdown could not reach it. It accepts until `WouldBlock`, then
//! waits **on the shutdown channel** with a timeout instead of sleeping: the
//! wait ends early the moment shutdown starts, so shutdown is seen within
//! microseconds, while an idle server wakes at most once per wait cap. The
//! timeout starts small (a burst of connections is picked up quickly) and
//! doubles up to the cap while nothing arrives.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Select, Sender, TrySendError};

use crate::connection::{Connection, Registry};
use crate::error::Error;
use crate::pool::{Job, Liveness};
use crate::shutdown::Signal;

/// The first wait after a connection. Short, so that a client connecting
/// right after another one is not delayed by more than this.
const MIN_WAIT: Duration = Duration::from_micros(50);

/// The first and the last wait when accepting fails for lack of resources.
/// The cap bounds how long a recovered server can stay deaf; Go's
/// `http.Server` uses 5 ms to 1 s for the same purpose.
const MIN_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_millis(200);

/// How long a connection must have been idle before it gives its worker up
/// to a connection waiting for one. Long enough that a client sending its
/// next request right now (or its first, just after connecting) is not cut;
/// short enough that waiting connections are served promptly.
const PRESSURE_IDLE: Duration = Duration::from_millis(10);

/// The most connections the final sweep takes. The kernel backlog holds at
/// most `somaxconn` (4096 on current Linux), so this only stops a flood that
/// arrives faster than it can be accepted from delaying the close forever.
const SWEEP_LIMIT: usize = 8192;

/// What the acceptor needs besides the listener.
pub(crate) struct Acceptor {
    pub(crate) listener: TcpListener,
    /// A connection accepted before the loop started (while checking an
    /// inherited listener); served first.
    pub(crate) first: Option<(TcpStream, SocketAddr)>,
    pub(crate) jobs: Sender<Job>,
    pub(crate) signal: Arc<Signal>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) liveness: Arc<Liveness>,
    pub(crate) wait_cap: Duration,
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
    /// Set when the listener is dropped; the report's `stop_accepting`.
    pub(crate) listener_closed: Arc<OnceLock<Instant>>,
    /// Dropped when the acceptor exits; see [`crate::pool`].
    pub(crate) done: Sender<()>,
}

/// What to do after a failed `accept`.
#[derive(Debug, PartialEq, Eq)]
enum AcceptFailure {
    /// A problem of that one connection (aborted before we took it, reset,
    /// interrupted): take the next one.
    Connection,
    /// Out of descriptors, buffers or memory, or an error we do not know:
    /// retrying at once would spin, so wait and retry.
    Resources,
}

fn classify(error: &io::Error) -> AcceptFailure {
    // `raw_os_error`, because std reports EMFILE and ENFILE as an
    // uncategorized kind. The numbers are the same on Linux, macOS and the
    // BSDs except ENOBUFS.
    const ENOMEM: i32 = 12;
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    const ENOBUFS: i32 = 105;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    const ENOBUFS: i32 = 55;
    if let Some(ENOMEM | ENFILE | EMFILE | ENOBUFS) = error.raw_os_error() {
        return AcceptFailure::Resources;
    }
    match error.kind() {
        io::ErrorKind::ConnectionAborted
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionRefused
        | io::ErrorKind::Interrupted
        | io::ErrorKind::PermissionDenied
        | io::ErrorKind::TimedOut => AcceptFailure::Connection,
        _ => AcceptFailure::Resources,
    }
}

impl Acceptor {
    /// Starts the `acceptor` thread.
    pub(crate) fn spawn(self) -> Result<(), Error> {
        let name = "acceptor";
        thread::Builder::new()
            .name(name.into())
            .spawn(move || self.run())
            // Never joined: like the workers, it reports its exit by
            // dropping `done`.
            .map(drop)
            .map_err(|source| Error::Spawn {
                thread: name.into(),
                source,
            })
    }

    fn run(mut self) {
        let first = self.first.take();
        let mut held = self.accept_until_shutdown(first);
        self.sweep_backlog(&mut held);
        let Acceptor {
            listener,
            jobs,
            signal,
            listener_closed,
            done,
            ..
        } = self;
        // Closing the listener now makes new connects fail with
        // ECONNREFUSED instead of hanging in a backlog nobody will read.
        drop(listener);
        let _ = listener_closed.set(Instant::now());
        hand_over(held, &jobs, &signal);
        // Disconnects the job channel: workers exit once it is empty.
        drop(jobs);
        drop(done);
    }

    /// Accepts and queues connections until shutdown starts. Returns the
    /// connection it was holding for a full queue, if any.
    fn accept_until_shutdown(&self, first: Option<(TcpStream, SocketAddr)>) -> VecDeque<Job> {
        let mut wait = MIN_WAIT.min(self.wait_cap);
        let mut backoff = MIN_BACKOFF;
        let mut held = VecDeque::new();
        if let Some(job) = first.and_then(|(stream, peer)| self.admit(stream, peer)) {
            if let Err(job) = self.queue(job) {
                held.push_back(job);
                return held;
            }
        }
        while !self.signal.is_accepting_stopped() {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    wait = MIN_WAIT.min(self.wait_cap);
                    backoff = MIN_BACKOFF;
                    let Some(job) = self.admit(stream, peer) else {
                        continue;
                    };
                    if let Err(job) = self.queue(job) {
                        held.push_back(job);
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Checked at every wake-up, since a connection may turn
                    // idle after the one waiting for its worker was queued.
                    self.relieve_pressure();
                    if self.signal.wait_stopped_timeout(wait) {
                        break;
                    }
                    wait = (wait * 2).min(self.wait_cap);
                }
                Err(e) => match classify(&e) {
                    AcceptFailure::Connection => {}
                    AcceptFailure::Resources => {
                        // The pending connection stays in the backlog until
                        // descriptors are free again; waiting on the signal
                        // keeps the backoff interruptible.
                        if self.signal.wait_stopped_timeout(backoff) {
                            break;
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                },
            }
        }
        held
    }

    /// Queues a job for the workers. While the queue is full it waits for a
    /// free slot or for shutdown, whichever comes first, leaving new
    /// connections in the kernel backlog meanwhile (backpressure). Gives the
    /// job back if shutdown came first.
    fn queue(&self, job: Job) -> Result<(), Job> {
        let job = match self.jobs.try_send(job) {
            Ok(()) => {
                self.relieve_pressure();
                return Ok(());
            }
            Err(TrySendError::Full(job)) => job,
            // Only if every worker is gone, which cannot happen while the
            // acceptor holds the sender; close it rather than lose track.
            Err(TrySendError::Disconnected(job)) => {
                job.close_unserved();
                return Ok(());
            }
        };
        let mut select = Select::new();
        let send = select.send(&self.jobs);
        let stop = select.recv(self.signal.stopped_receiver());
        loop {
            // With a timeout, to look for idle connections holding workers
            // while the queue is full.
            let Ok(ready) = select.select_timeout(PRESSURE_IDLE) else {
                self.relieve_pressure();
                continue;
            };
            if ready.index() == send {
                if let Err(failed) = ready.send(&self.jobs, job) {
                    failed.into_inner().close_unserved();
                }
                return Ok(());
            }
            debug_assert_eq!(ready.index(), stop);
            let _ = ready.recv(self.signal.stopped_receiver());
            return Err(job);
        }
    }

    /// Connections wait for a worker and every worker is in a handler: if
    /// one of those handlers is only waiting for its client's next request,
    /// close that idle connection, so that a few keep-alive clients cannot
    /// hold the pool while others queue.
    fn relieve_pressure(&self) {
        if self.registry.waiting() > 0 && self.liveness.free() == 0 {
            self.registry.close_longest_idle(PRESSURE_IDLE);
        }
    }

    /// The shutdown sweep: accepts everything already waiting in the kernel
    /// backlog, so that no connection whose handshake completed is reset when
    /// the listener closes. The swept connections are held, not queued, so
    /// the sweep takes microseconds even when every worker is busy.
    fn sweep_backlog(&self, held: &mut VecDeque<Job>) {
        for _ in 0..SWEEP_LIMIT {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    if let Some(job) = self.admit(stream, peer) {
                        held.push_back(job);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => match classify(&e) {
                    AcceptFailure::Connection => {}
                    // Out of descriptors: what is left in the backlog
                    // cannot be taken.
                    AcceptFailure::Resources => return,
                },
            }
        }
    }

    /// Prepares an accepted stream and registers it. A stream that cannot be
    /// prepared is closed at once and counted as unserved.
    fn admit(&self, stream: TcpStream, peer: SocketAddr) -> Option<Job> {
        match self.prepare(&stream) {
            Ok(clone) => {
                let (id, entry) = self.registry.register(clone);
                let conn = Connection::new(
                    id,
                    peer,
                    entry,
                    Arc::clone(&self.registry),
                    Arc::clone(&self.liveness),
                    Arc::clone(&self.signal),
                );
                Some(Job { stream, conn })
            }
            Err(_) => {
                self.registry.reject();
                None
            }
        }
    }

    fn prepare(&self, stream: &TcpStream) -> io::Result<Option<TcpStream>> {
        // Accepted sockets inherit the listener's nonblocking mode on macOS
        // and the BSDs (not on Linux); handlers expect blocking I/O.
        stream.set_nonblocking(false)?;
        if self.read_timeout.is_some() {
            stream.set_read_timeout(self.read_timeout)?;
        }
        if self.write_timeout.is_some() {
            stream.set_write_timeout(self.write_timeout)?;
        }
        // The registry's handle for closing the connection at shutdown. When
        // descriptors run out, the accept can succeed and the clone fail:
        // serving the connection without it beats closing it unserved.
        Ok(stream.try_clone().ok())
    }
}

/// Gives the held connections to the workers, one free slot at a time. If
/// shutdown is forced meanwhile, the rest are closed unserved.
fn hand_over(mut held: VecDeque<Job>, jobs: &Sender<Job>, signal: &Signal) {
    while let Some(job) = held.pop_front() {
        let mut select = Select::new();
        let send = select.send(jobs);
        let forced = select.recv(signal.forced_receiver());
        let ready = select.select();
        if ready.index() == send {
            if let Err(failed) = ready.send(jobs, job) {
                failed.into_inner().close_unserved();
            }
        } else {
            debug_assert_eq!(ready.index(), forced);
            let _ = ready.recv(signal.forced_receiver());
            job.close_unserved();
            held.drain(..).for_each(Job::close_unserved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exhaustion_backs_off_and_connection_errors_are_skipped() {
        for code in [12, 23, 24] {
            let e = io::Error::from_raw_os_error(code);
            assert_eq!(classify(&e), AcceptFailure::Resources, "errno {code}");
        }
        let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(classify(&aborted), AcceptFailure::Connection);
        let interrupted = io::Error::from(io::ErrorKind::Interrupted);
        assert_eq!(classify(&interrupted), AcceptFailure::Connection);
    }
}
