//! The shutdown report: what happened to every connection, and how long each
//! phase of the shutdown took.

use std::fmt;
use std::time::Duration;

/// What a server did, returned when it has shut down.
///
/// Every accepted connection ends in exactly one outcome, so
/// `accepted == completed + failed + timed_out + closed_idle + force_closed +
/// unserved + panicked` (see [`Report::outcomes`]).
///
/// `Display` writes one line for humans:
///
/// ```text
/// drained in 1.2ms: 3 accepted, 2 completed, 0 failed, 0 timed out, 1 closed idle, 0 force-closed, 0 unserved, 0 panicked
/// ```
///
/// # Example
///
/// ```
/// use std::net::TcpStream;
///
/// use graceful_server::{Connection, Next, Server};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let running = Server::builder("127.0.0.1:0")
///     .build()?
///     .spawn(|_conn: &mut Connection| Ok(Next::Close))?;
/// drop(TcpStream::connect(running.local_addr())?); // connect, hang up
///
/// running.shutdown_handle().shutdown();
/// let report = running.join()?;
/// assert_eq!((report.accepted, report.completed), (1, 1));
/// assert!(!report.forced);
/// eprintln!("{report}");
/// assert!(report.to_string().starts_with("drained in "));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// Connections accepted, including the ones swept from the backlog at
    /// shutdown.
    pub accepted: u64,
    /// Connections whose handler returned `Ok`.
    pub completed: u64,
    /// Connections whose handler returned an error (usually the client went
    /// away mid-exchange).
    pub failed: u64,
    /// Connections cut for slowness: a read, write or wait that timed out,
    /// a missed [deadline](crate::Connection::set_deadline), or (HTTP) a
    /// request head late past its header timeout or data slower than its
    /// minimum rate. See [`Outcome::TimedOut`](crate::Outcome::TimedOut).
    pub timed_out: u64,
    /// Connections closed while marked idle at shutdown.
    pub closed_idle: u64,
    /// Connections shut down at the deadline or by a forced shutdown,
    /// including those whose handlers were left behind.
    pub force_closed: u64,
    /// Connections closed without a single turn. When shutdown is forced,
    /// every connection that never had a turn counts here (not in
    /// `force_closed`), wherever it was: queued for a worker, or waiting
    /// for its first input, e.g. an `nc` that connected and sent nothing.
    /// So do connections that could not be prepared (the operating system
    /// refused to set their blocking mode or timeouts). A connection that
    /// ended before its first turn in another way keeps that outcome:
    /// closed idle at the idle grace or the idle timeout (if the handler
    /// counts new connections as idle, as the HTTP layer does), or timed
    /// out at the wait timeout.
    pub unserved: u64,
    /// Connections whose handler panicked. The worker survived each one.
    pub panicked: u64,
    /// Connections given a goodbye turn at shutdown
    /// ([`Connection::set_goodbye`](crate::Connection::set_goodbye)), in
    /// whichever outcome they then ended (not a separate outcome).
    pub goodbyes: u64,
    /// Of [`goodbyes`](Self::goodbyes), those whose client answered: they
    /// ended as completed.
    pub goodbyes_answered: u64,
    /// Worker threads still stuck in a handler after the force grace. They
    /// were left running; the process exiting ends them.
    pub threads_left_behind: usize,
    /// Whether the drain was cut short (deadline, second signal, or
    /// [`ShutdownHandle::force`](crate::ShutdownHandle::force)).
    pub forced: bool,
    /// From the start of serving to the shutdown signal.
    pub serving: Duration,
    /// From the signal until the listener was closed (backlog swept).
    pub stop_accepting: Duration,
    /// From the signal until the last connection ended, or until the drain
    /// was forced.
    pub drain: Duration,
    /// From the force until the return: how long it took handlers to notice
    /// their sockets were shut down. Zero when not forced.
    pub force: Duration,
    /// From the signal until the return.
    pub shutdown: Duration,
}

impl Report {
    /// The exit status for `main` to return: 0 when the drain ended by
    /// itself, 3 when it was [forced](Self::forced) (the echo binary's and
    /// the HTTP example's table; 1 and 2 are theirs for "could not start"
    /// and "bad command line").
    ///
    /// ```
    /// use std::process::ExitCode;
    ///
    /// use graceful_server::{Connection, Next, Server};
    ///
    /// fn main() -> ExitCode {
    ///     let serve = || -> Result<_, graceful_server::Error> {
    ///         let running = Server::builder("127.0.0.1:0")
    ///             .build()?
    ///             .spawn(|_conn: &mut Connection| Ok(Next::Close))?;
    ///         running.shutdown_handle().shutdown(); // a ctrl-c, here
    ///         running.join()
    ///     };
    ///     match serve() {
    ///         Ok(report) => {
    ///             assert_eq!(report.exit_code(), ExitCode::SUCCESS);
    ///             report.exit_code()
    ///         }
    ///         Err(error) => {
    ///             eprintln!("{error}");
    ///             ExitCode::FAILURE
    ///         }
    ///     }
    /// }
    /// ```
    pub fn exit_code(&self) -> std::process::ExitCode {
        if self.forced {
            std::process::ExitCode::from(Self::EXIT_FORCED)
        } else {
            std::process::ExitCode::SUCCESS
        }
    }

    /// The status [`exit_code`](Self::exit_code) gives a forced shutdown.
    pub const EXIT_FORCED: u8 = 3;

    /// The sum of all outcomes; equals [`accepted`](Self::accepted).
    ///
    /// ```
    /// # use graceful_server::{Connection, Next, Server};
    /// # fn main() -> Result<(), graceful_server::Error> {
    /// # let running = Server::builder("127.0.0.1:0")
    /// #     .build()?
    /// #     .spawn(|_conn: &mut Connection| Ok(Next::Close))?;
    /// # running.shutdown_handle().shutdown();
    /// let report = running.join()?;
    /// // No connection goes uncounted, whatever happened to it.
    /// assert_eq!(report.outcomes(), report.accepted);
    /// # Ok(())
    /// # }
    /// ```
    pub fn outcomes(&self) -> u64 {
        self.completed
            + self.failed
            + self.timed_out
            + self.closed_idle
            + self.force_closed
            + self.unserved
            + self.panicked
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = if self.forced { "forced" } else { "drained" };
        write!(
            f,
            "{how} in {:.1?}: {} accepted, {} completed, {} failed, {} timed out, {} closed idle, \
             {} force-closed, {} unserved, {} panicked",
            self.shutdown,
            self.accepted,
            self.completed,
            self.failed,
            self.timed_out,
            self.closed_idle,
            self.force_closed,
            self.unserved,
            self.panicked,
        )?;
        if self.goodbyes > 0 {
            write!(
                f,
                ", {} goodbyes ({} answered)",
                self.goodbyes, self.goodbyes_answered
            )?;
        }
        if self.threads_left_behind > 0 {
            write!(f, ", {} threads left behind", self.threads_left_behind)?;
        }
        Ok(())
    }
}

/// Live numbers of a running server; see
/// [`RunningServer::stats`](crate::RunningServer::stats).
///
/// A snapshot: each number is read at a slightly different moment, so the
/// first four need not add up exactly while connections move between states.
/// The totals are those of the [`Report`] so far.
///
/// ```
/// use graceful_server::{Connection, Next, Server, Stats};
///
/// # fn main() -> Result<(), graceful_server::Error> {
/// let running = Server::builder("127.0.0.1:0")
///     .build()?
///     .spawn(|_conn: &mut Connection| Ok(Next::Close))?;
/// let Stats { open, busy, parked, queued, accepted, .. } = running.stats();
/// eprintln!("{open} open ({busy} busy, {parked} parked, {queued} queued), {accepted} accepted");
///
/// running.shutdown_handle().shutdown();
/// running.join()?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Connections accepted and not closed yet.
    pub open: u64,
    /// Connections in a turn (a handler is running for them).
    pub busy: u64,
    /// Connections between turns, waiting for input: parked, holding no
    /// worker.
    pub parked: u64,
    /// Connections with input, waiting for a worker.
    pub queued: u64,
    /// Total connections accepted.
    pub accepted: u64,
    /// Total connections completed; see [`Report::completed`].
    pub completed: u64,
    /// See [`Report::failed`].
    pub failed: u64,
    /// See [`Report::timed_out`].
    pub timed_out: u64,
    /// See [`Report::closed_idle`].
    pub closed_idle: u64,
    /// See [`Report::force_closed`].
    pub force_closed: u64,
    /// See [`Report::unserved`].
    pub unserved: u64,
    /// See [`Report::panicked`].
    pub panicked: u64,
}
