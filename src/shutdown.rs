//! The shutdown signal, its cloneable [`ShutdownHandle`], and the Ctrl-C opt-in.
//!
//! A signal is three one-way latches: *graceful* (shutdown has started),
//! *stopped* (stop accepting and drain: at once, or after the drain delay) and
//! *forced* (stop waiting, cut what is left). Each latch is an atomic flag for
//! cheap checks plus a channel whose only sender is dropped when the latch
//! trips. Dropping the sender disconnects the channel, and a disconnected
//! channel wakes **every** receiver at once, so any number of threads can wait
//! on (or `select!` over) the same shutdown without polling, and a trigger never
//! has to know who is listening.
//!
//! Threads that wait for readiness rather than on a channel (the acceptor)
//! are woken by a byte on their wake-up socket, sent with every trip.
//!
//! Orderings: `SeqCst` conservatively; each atomic's doc says what would be
//! enough. No wake-up rests on these flags alone: a latch's waiters are woken
//! by its channel, the acceptor by its wake-up socket, and a connection
//! parked during a sweep reads the state under the lock the sweep takes
//! after setting it (see `Parking::park`).

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::error::Error;
use crate::wake::Waker;

/// One latch: a flag for quick checks and a channel that disconnects when the
/// latch trips.
struct Latch {
    /// Set once, when the latch trips, and never cleared: the `swap` lets
    /// exactly one caller drop the sender. For quick checks; who must not
    /// miss the trip waits on the channel. `SeqCst` conservatively;
    /// `Release` on the swap and `Acquire` on the loads would be enough.
    tripped: AtomicBool,
    // The only sender. `None` once tripped. Never used to send: dropping it is
    // the broadcast.
    sender: Mutex<Option<Sender<()>>>,
    receiver: Receiver<()>,
}

impl Latch {
    fn new() -> Latch {
        let (sender, receiver) = crossbeam_channel::bounded(0);
        Latch {
            tripped: AtomicBool::new(false),
            sender: Mutex::new(Some(sender)),
            receiver,
        }
    }

    /// Trips the latch. Returns `true` for the call that tripped it.
    fn trip(&self) -> bool {
        // The swap makes the trigger idempotent and lets every later call
        // return without touching the mutex.
        if self.tripped.swap(true, Ordering::SeqCst) {
            return false;
        }
        // A poisoned mutex only means another thread panicked while holding
        // it; the `Option` inside is still valid, so take it anyway.
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(sender);
        true
    }

    fn is_tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
    }

    /// Waits until the latch trips or `timeout` passes. Returns `true` if it
    /// tripped.
    fn wait_timeout(&self, timeout: Duration) -> bool {
        match self.receiver.recv_timeout(timeout) {
            Err(RecvTimeoutError::Timeout) => false,
            // Nothing is ever sent, so any other outcome is the disconnect.
            Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
        }
    }
}

/// The state of a server's shutdown: its latches, the idle-grace flag, and
/// who started and forced it. One per server, shared by everything that
/// asks whether shutdown has started (not to be confused with an
/// operating-system signal, [`Trigger::Signal`]).
pub(crate) struct ShutdownState {
    graceful: Latch,
    stopped: Latch,
    forced: Latch,
    /// Set when the idle grace ends (or at the force): idle connections are
    /// closed from then on. Never cleared. Read by the lifecycle's
    /// decisions: the drain sets it, then sweeps the parking under the
    /// locks under which a connection being parked reads it, so the locks
    /// order it. `SeqCst` conservatively; `Relaxed` would be enough.
    closing_idle: AtomicBool,
    /// The drain trips `stopped` once it has announced the shutdown, after
    /// this delay.
    drain_delay: Duration,
    /// The acceptor's wake-up socket.
    acceptor: Waker,
    /// Who started the shutdown: 0 until the first caller's
    /// `compare_exchange` sets it, never changed after. Read for the events
    /// and the report, once the shutdown has started. `SeqCst`
    /// conservatively; `Release` on the exchange and `Acquire` on the load
    /// would be enough.
    trigger: AtomicU8,
    /// Why the shutdown was forced, as `trigger` is set and read (0 until
    /// forced).
    force_reason: AtomicU8,
}

/// What started a shutdown, as [`Event::ShutdownStarted`](crate::Event::ShutdownStarted) says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Trigger {
    /// [`ShutdownHandle::shutdown`] (or `force`), called by the program.
    Handle,
    /// A signal (SIGINT, SIGTERM, SIGHUP; Ctrl-C on Windows) caught by the
    /// handler [`ShutdownHandle::install_ctrl_c`] installed.
    Signal,
}

/// Why a shutdown was forced, as [`Event::Forced`](crate::Event::Forced) says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ForceReason {
    /// The [drain timeout](crate::Builder::drain_timeout) expired.
    Deadline,
    /// [`ShutdownHandle::force`], called by the program.
    Handle,
    /// A second signal while draining.
    Signal,
}

impl Trigger {
    fn code(self) -> u8 {
        match self {
            Trigger::Handle => 1,
            Trigger::Signal => 2,
        }
    }
}

impl ForceReason {
    fn code(self) -> u8 {
        match self {
            ForceReason::Deadline => 1,
            ForceReason::Handle => 2,
            ForceReason::Signal => 3,
        }
    }
}

impl ShutdownState {
    pub(crate) fn new(drain_delay: Duration, acceptor: Waker) -> Arc<ShutdownState> {
        Arc::new(ShutdownState {
            graceful: Latch::new(),
            stopped: Latch::new(),
            forced: Latch::new(),
            closing_idle: AtomicBool::new(false),
            drain_delay,
            acceptor,
            trigger: AtomicU8::new(0),
            force_reason: AtomicU8::new(0),
        })
    }

    /// Starts the shutdown, for `trigger` (if it has not started).
    pub(crate) fn shutdown_by(&self, trigger: Trigger) {
        let _ =
            self.trigger
                .compare_exchange(0, trigger.code(), Ordering::SeqCst, Ordering::SeqCst);
        self.shutdown();
    }

    /// Forces the shutdown, for `reason` (if it was not forced already).
    pub(crate) fn force_by(&self, reason: ForceReason) {
        let _ = self.force_reason.compare_exchange(
            0,
            reason.code(),
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        // A force starts the shutdown too: by the same hand.
        let trigger = match reason {
            ForceReason::Signal => Trigger::Signal,
            ForceReason::Deadline | ForceReason::Handle => Trigger::Handle,
        };
        let _ =
            self.trigger
                .compare_exchange(0, trigger.code(), Ordering::SeqCst, Ordering::SeqCst);
        self.force();
    }

    /// Who started the shutdown; `Handle` if nobody said.
    pub(crate) fn trigger(&self) -> Trigger {
        match self.trigger.load(Ordering::SeqCst) {
            2 => Trigger::Signal,
            _ => Trigger::Handle,
        }
    }

    /// Why the shutdown was forced; `Handle` if nobody said.
    pub(crate) fn force_reason(&self) -> ForceReason {
        match self.force_reason.load(Ordering::SeqCst) {
            1 => ForceReason::Deadline,
            3 => ForceReason::Signal,
            _ => ForceReason::Handle,
        }
    }

    /// Starts the shutdown: the drain, woken by it, says so (the
    /// `ShutdownStarted` event) and then stops accepting, after the drain
    /// delay if there is one.
    fn shutdown(&self) {
        self.graceful.trip();
        self.acceptor.wake();
    }

    /// Ends the drain delay: stop accepting, drain.
    pub(crate) fn stop_accepting(&self) {
        self.stopped.trip();
        self.acceptor.wake();
    }

    /// Ends the idle grace: idle connections are closed, now and whenever a
    /// connection turns idle later.
    pub(crate) fn close_idle(&self) {
        self.closing_idle.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_closing_idle(&self) -> bool {
        self.closing_idle.load(Ordering::SeqCst)
    }

    pub(crate) fn force(&self) {
        // Forcing implies the earlier stages: trip them first so that anyone
        // waiting for them also wakes.
        self.graceful.trip();
        self.stopped.trip();
        self.closing_idle.store(true, Ordering::SeqCst);
        self.forced.trip();
        self.acceptor.wake();
    }

    /// A waker for the acceptor, for the parts of the server that must
    /// wake it too (the registry, the workers).
    pub(crate) fn acceptor_waker(&self) -> Waker {
        self.acceptor.clone()
    }

    pub(crate) fn drain_delay(&self) -> Duration {
        self.drain_delay
    }

    pub(crate) fn is_accepting_stopped(&self) -> bool {
        self.stopped.is_tripped()
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.graceful.is_tripped()
    }

    pub(crate) fn is_forced(&self) -> bool {
        self.forced.is_tripped()
    }

    /// Disconnects when shutdown starts.
    pub(crate) fn graceful_receiver(&self) -> &Receiver<()> {
        &self.graceful.receiver
    }

    /// Disconnects when shutdown is forced.
    pub(crate) fn forced_receiver(&self) -> &Receiver<()> {
        &self.forced.receiver
    }

    /// Waits for the start of shutdown for at most `timeout`; `true` if it
    /// started.
    pub(crate) fn wait_timeout(&self, timeout: Duration) -> bool {
        self.graceful.wait_timeout(timeout)
    }
}

/// Starts a server's shutdown from anywhere: another thread, a signal handler,
/// a test.
///
/// Get one from [`Server::shutdown_handle`](crate::Server::shutdown_handle) or
/// [`RunningServer::shutdown_handle`](crate::RunningServer::shutdown_handle).
/// Handles are cheap to clone and can be sent to and shared between threads.
/// Triggering is idempotent, never blocks, and works before serving starts (the
/// server then sweeps its backlog and returns at once).
///
/// # Example
///
/// ```
/// use std::time::Duration;
///
/// # fn main() -> Result<(), graceful_server::Error> {
/// let server = graceful_server::Server::builder("127.0.0.1:0").build()?;
/// let handle = server.shutdown_handle();
/// std::thread::spawn(move || {
///     std::thread::sleep(Duration::from_millis(10));
///     handle.shutdown();
/// });
/// let report = server.serve(|_conn: &mut graceful_server::Connection| {
///     Ok(graceful_server::Next::Close)
/// })?;
/// assert!(!report.forced);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ShutdownHandle {
    signal: Arc<ShutdownState>,
}

impl ShutdownHandle {
    pub(crate) fn new(signal: Arc<ShutdownState>) -> ShutdownHandle {
        ShutdownHandle { signal }
    }

    /// Starts a graceful shutdown: stop accepting, finish what was accepted.
    ///
    /// Calling it again, or after [`force`](Self::force), does nothing.
    ///
    /// ```
    /// use graceful_server::{Connection, Next, Server};
    ///
    /// # fn main() -> Result<(), graceful_server::Error> {
    /// let running = Server::builder("127.0.0.1:0")
    ///     .build()?
    ///     .spawn(|_conn: &mut Connection| Ok(Next::Close))?;
    /// let handle = running.shutdown_handle();
    /// handle.shutdown();
    /// handle.shutdown(); // does nothing more
    /// assert!(handle.is_shutting_down());
    /// assert!(!handle.is_forced());
    ///
    /// let report = running.join()?;
    /// assert!(!report.forced);
    /// # Ok(())
    /// # }
    /// ```
    pub fn shutdown(&self) {
        self.signal.shutdown_by(Trigger::Handle);
    }

    /// Forces the shutdown now, as if the drain timeout had expired.
    ///
    /// Starts the shutdown too if it had not started. Every remaining
    /// connection is shut down in both directions, queued connections are
    /// closed unserved, and the report says `forced`.
    ///
    /// ```
    /// use std::io::{self, Read, Write};
    /// use std::net::TcpStream;
    /// use std::time::Duration;
    ///
    /// use graceful_server::{Connection, Next, Server};
    ///
    /// fn echo(conn: &mut Connection) -> io::Result<Next> {
    ///     let mut buf = [0; 1024];
    ///     let n = conn.read(&mut buf)?;
    ///     conn.write_all(&buf[..n])?;
    ///     Ok(if n == 0 { Next::Close } else { Next::Wait })
    /// }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let running = Server::builder("127.0.0.1:0").build()?.spawn(echo)?;
    /// let mut client = TcpStream::connect(running.local_addr())?;
    /// client.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// client.set_write_timeout(Some(Duration::from_secs(5)))?;
    /// client.write_all(b"hi")?;
    /// client.read_exact(&mut [0; 2])?;
    ///
    /// // A graceful shutdown waits for this client to hang up (`Next::Wait`);
    /// // forcing, as a second Ctrl-C does, cuts it.
    /// let handle = running.shutdown_handle();
    /// handle.shutdown();
    /// handle.force();
    /// let report = running.join()?;
    /// assert!(report.forced);
    /// assert_eq!(report.force_closed, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn force(&self) {
        self.signal.force_by(ForceReason::Handle);
    }

    /// Whether shutdown has started (gracefully or forced).
    pub fn is_shutting_down(&self) -> bool {
        self.signal.is_shutting_down()
    }

    /// Whether shutdown has been forced (second signal, [`force`](Self::force),
    /// or the drain timeout).
    pub fn is_forced(&self) -> bool {
        self.signal.is_forced()
    }

    /// Blocks until shutdown starts.
    ///
    /// ```
    /// use std::thread;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = graceful_server::Server::builder("127.0.0.1:0").build()?;
    /// let handle = server.shutdown_handle();
    /// let cleanup = thread::spawn({
    ///     let handle = handle.clone();
    ///     move || {
    ///         handle.wait();
    ///         eprintln!("shutting down: flushing the caches");
    ///     }
    /// });
    ///
    /// handle.shutdown();
    /// cleanup.join().map_err(|_| "the cleanup thread panicked")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn wait(&self) {
        // Nothing is ever sent: `recv` returns only on disconnection.
        let _ = self.signal.graceful_receiver().recv();
    }

    /// Blocks until shutdown starts or `timeout` passes; returns whether it
    /// started.
    ///
    /// In a loop, it runs periodic work until shutdown starts; see
    /// [`RunningServer::stats_handle`](crate::RunningServer::stats_handle).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # fn main() -> Result<(), graceful_server::Error> {
    /// let server = graceful_server::Server::builder("127.0.0.1:0").build()?;
    /// let handle = server.shutdown_handle();
    /// assert!(!handle.wait_timeout(Duration::from_millis(10))); // not yet
    ///
    /// handle.shutdown();
    /// assert!(handle.wait_timeout(Duration::from_secs(5))); // returns at once
    /// # Ok(())
    /// # }
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.signal.wait_timeout(timeout)
    }

    /// A receiver that becomes ready (disconnected) when shutdown starts, for
    /// use in [`select!`](crate::crossbeam_channel::select) next to your own
    /// channels (the crate re-exports [`crossbeam_channel`](crate::crossbeam_channel)
    /// for this).
    ///
    /// No message is ever sent on it: a `recv` arm fires with `Err(RecvError)`
    /// once shutdown has started.
    ///
    /// ```
    /// use std::thread;
    ///
    /// use graceful_server::crossbeam_channel::{select, unbounded};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = graceful_server::Server::builder("127.0.0.1:0").build()?;
    /// let handle = server.shutdown_handle();
    /// let (jobs, job_queue) = unbounded::<String>();
    /// let shutdown = handle.receiver();
    ///
    /// // A background worker that stops when shutdown starts.
    /// let worker = thread::spawn(move || loop {
    ///     select! {
    ///         recv(job_queue) -> job => match job {
    ///             Ok(job) => eprintln!("doing {job}"),
    ///             Err(_) => return, // every sender is gone
    ///         },
    ///         recv(shutdown) -> _ => return, // shutdown has started
    ///     }
    /// });
    ///
    /// jobs.send("the laundry".to_string())?;
    /// handle.shutdown();
    /// worker.join().map_err(|_| "the worker panicked")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn receiver(&self) -> Receiver<()> {
        self.signal.graceful_receiver().clone()
    }

    /// Installs a process-wide Ctrl-C handler driving this handle: the first
    /// SIGINT, SIGTERM or SIGHUP starts a graceful shutdown, the second forces
    /// it.
    ///
    /// Nothing in this crate installs a signal handler unless you call this.
    /// It uses the `ctrlc` crate (with its `termination` feature), which
    /// allows one handler per process.
    ///
    /// - SIGINT and SIGTERM are always handled, even when the process
    ///   inherited them as ignored (a background job of a non-interactive
    ///   shell ignores SIGINT), so that `kill -INT` stops a server started
    ///   with `&` from a script, as it does in Node.
    /// - SIGHUP is handled unless the process inherited it as ignored: under
    ///   `nohup` it stays ignored, so closing the terminal does not stop the
    ///   server.
    /// - On Windows the console's Ctrl-C and Ctrl-Break count as the signal
    ///   (there is no SIGHUP; closing the console ends the process soon
    ///   after, drained or not).
    ///
    /// # Errors
    ///
    /// [`Error::CtrlC`] if a handler was already installed through the
    /// `ctrlc` crate in this process (by this method or by other code using
    /// `ctrlc`), or if the operating system refuses to install it. A handler
    /// installed by other means (e.g. `libc::sigaction` directly) is not
    /// detected: it is replaced.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use graceful_server::{Connection, Next, Server};
    /// # fn handler(_conn: &mut Connection) -> std::io::Result<Next> { Ok(Next::Close) }
    ///
    /// # fn main() -> Result<(), graceful_server::Error> {
    /// let server = Server::builder("127.0.0.1:0").build()?;
    /// server.shutdown_handle().install_ctrl_c()?;
    /// // Serves until Ctrl-C (drain, then return) or a second one (force).
    /// let report = server.serve(handler)?;
    /// eprintln!("{report}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn install_ctrl_c(&self) -> Result<(), Error> {
        // Read before `ctrlc` replaces it. If it cannot be read, handle
        // SIGHUP as usual.
        let hangup_ignored = crate::sys::hangup_is_ignored().unwrap_or(false);
        let signal = Arc::clone(&self.signal);
        ctrlc::set_handler(move || {
            if signal.is_shutting_down() {
                signal.force_by(ForceReason::Signal);
            } else {
                signal.shutdown_by(Trigger::Signal);
            }
        })
        .map_err(|e| {
            Error::CtrlC(match e {
                ctrlc::Error::System(e) => e,
                ctrlc::Error::MultipleHandlers => io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "a handler was already installed through the ctrlc crate",
                ),
                other => io::Error::other(other.to_string()),
            })
        })?;
        if hangup_ignored {
            // `ctrlc` installs its SIGHUP handler with the others; put the
            // inherited "ignore" back. If that fails SIGHUP still shuts down
            // gracefully, which is the safe side.
            let _ = crate::sys::ignore_hangup();
        }
        Ok(())
    }
}

impl fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("shutting_down", &self.is_shutting_down())
            .field("forced", &self.is_forced())
            .finish()
    }
}
