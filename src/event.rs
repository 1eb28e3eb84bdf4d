//! What the server tells an embedding program as it runs: the [`Event`]s
//! given to the hook set with [`Builder::on_event`](crate::Builder::on_event).
//!
//! The library never prints; a program that wants a log line per connection,
//! or metrics, sets a hook and decides itself.

use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use crate::listener::Addr;
use crate::outcome::Outcome;
use crate::report::Report;
use crate::shutdown::{ForceReason, Trigger};

/// Something that happened on a running server, as told to the hook set with
/// [`Builder::on_event`](crate::Builder::on_event).
///
/// ```
/// use graceful_server::{Connection, Event, Next, Server};
///
/// # fn main() -> Result<(), graceful_server::Error> {
/// let server = Server::builder("127.0.0.1:0")
///     .on_event(|event| match event {
///         Event::ConnectionEnded { id, outcome, open_for, error: Some(error), .. } => {
///             eprintln!("connection {id}: {outcome:?} after {open_for:?}: {error}");
///         }
///         Event::AcceptFailed { error, backoff: Some(pause) } => {
///             eprintln!("accept failed: {error} (pausing for {pause:?})");
///         }
///         Event::AcceptFailed { error, backoff: None } => eprintln!("accept failed: {error}"),
///         _ => {} // connections that ended without an error, and future events
///     })
///     .build()?;
/// let running = server.spawn(|_conn: &mut Connection| Ok(Next::Close))?;
///
/// running.shutdown_handle().shutdown();
/// running.join()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A connection ended.
    ConnectionEnded {
        /// Its [id](crate::Connection::id).
        id: u64,
        /// The client's address.
        peer: &'a Addr,
        /// How it ended: the outcome it counts as in the report.
        outcome: Outcome,
        /// From accept to close.
        open_for: Duration,
        /// The error that ended it: the one a turn returned, or the socket's
        /// (a failed wait). `None` for every other outcome.
        error: Option<&'a io::Error>,
    },
    /// An HTTP request was answered (feature `http`): one event per
    /// response the [HTTP layer](crate::http) writes, the handler's and the
    /// layer's own (`400`, `408`, `413`, `414`, `431`, `500` after a panic,
    /// `501`, `505`), told on the worker once the response is written. What
    /// an access log or a count of statuses needs; see
    /// [`http::common_log_line`](crate::http::common_log_line) for a line
    /// of the Common Log Format.
    ///
    /// A request that gets no answer has none: its client left or reset
    /// the connection before it, or the server was forced to cut it (its
    /// `ConnectionEnded` says why).
    #[cfg(feature = "http")]
    Request {
        /// The [id](crate::Connection::id) of its connection.
        id: u64,
        /// The client's address.
        peer: &'a Addr,
        /// The method as sent (`"GET"`). `None` only for a request the
        /// layer refused before its request line was complete or readable
        /// (malformed, a line over the limit, a head that never ended).
        method: Option<&'a str>,
        /// The request target as sent (`"/search?q=rust"`); `None` as for
        /// `method`.
        target: Option<&'a str>,
        /// The version: `"HTTP/1.0"` or `"HTTP/1.1"` for a request the
        /// layer served (a later `HTTP/1.x` is served as 1.1), as sent for
        /// one it refused (`"HTTP/2.0"` for a `505`); `None` as for
        /// `method`.
        version: Option<&'a str>,
        /// The status sent: `500` for a status outside `200..=599`, as the
        /// layer sends it.
        status: u16,
        /// Bytes of the response's body written (handed to the socket, or
        /// queued to be sent while the connection waits): the framing and
        /// the head are not counted, and a `HEAD` response counts 0.
        body_bytes: u64,
        /// From the first byte of the request's head (or the moment the
        /// layer began to look at a head that arrived whole) to the last
        /// byte of the response written or queued.
        duration: Duration,
        /// Whether the connection stays open for another request (`false`
        /// when the response said `Connection: close`, or writing it
        /// failed).
        kept_alive: bool,
    },
    /// The shutdown started: the first event of a shutdown, sent once.
    ShutdownStarted {
        /// What started it.
        trigger: Trigger,
        /// Connections open at that moment.
        open: usize,
        /// How long the server goes on accepting and serving before it
        /// drains ([`Builder::drain_delay`](crate::Builder::drain_delay)).
        drain_delay: Duration,
        /// How long idle connections stay open
        /// ([`Builder::idle_grace`](crate::Builder::idle_grace)).
        idle_grace: Duration,
        /// How long the drain may take before it is forced
        /// ([`Builder::drain_timeout`](crate::Builder::drain_timeout));
        /// `None` for ever.
        drain_timeout: Option<Duration>,
    },
    /// Accepting stopped: every listener's backlog was swept and every
    /// listener closed; new connects are refused from now on. Always after
    /// `ShutdownStarted`; not sent when a force came before the sweep.
    AcceptingStopped {
        /// Connections the final sweep took from the backlogs (they are
        /// served).
        swept: u64,
    },
    /// A connection gets its goodbye turn: it asked for one
    /// ([`Connection::set_goodbye`](crate::Connection::set_goodbye)) and
    /// waits mid-conversation as the server stops accepting. Told on the
    /// worker, just before the turn. Whether the client answered shows in
    /// its `ConnectionEnded` (completed, or cut at the deadline) and in the
    /// report's `goodbyes_answered`.
    Goodbye {
        /// Its [id](crate::Connection::id).
        id: u64,
        /// The client's address.
        peer: &'a Addr,
    },
    /// The idle grace ended: idle connections are closed from now on. Not
    /// sent when the drain ends (or is forced) first.
    IdleGraceOver {
        /// Connections waiting idle between requests at that moment, now
        /// closed. (New connections that never sent anything are closed too
        /// when their handler counts them as idle; the report's
        /// `closed_idle` counts every one.)
        closed: u64,
    },
    /// The shutdown was forced: every connection still open is cut (the
    /// report's `force_closed` and `unserved` count them).
    Forced {
        /// Why.
        reason: ForceReason,
    },
    /// The server has finished: the last event, with the report that
    /// serving returns.
    Finished {
        /// What happened to every connection.
        report: &'a Report,
    },
    /// An `accept` failed. The acceptor goes on: it skips a failure of that
    /// one connection, and backs off when out of resources.
    AcceptFailed {
        /// What the operating system said.
        error: &'a io::Error,
        /// The pause before the next accept, when out of resources
        /// (descriptors, buffers, memory); `None` when the failure concerned
        /// only that connection and accepting goes on at once.
        backoff: Option<Duration>,
    },
}

/// The shared form of the hook. It runs on the server's threads (workers and
/// the acceptor), so it must be quick; a panic in it is caught and ignored,
/// since it would otherwise happen while a connection is being closed.
#[derive(Clone)]
pub(crate) struct Hook(Arc<dyn Fn(&Event<'_>) + Send + Sync>);

impl Hook {
    pub(crate) fn new(hook: impl Fn(&Event<'_>) + Send + Sync + 'static) -> Hook {
        Hook(Arc::new(hook))
    }

    pub(crate) fn call(&self, event: &Event<'_>) {
        // AssertUnwindSafe: the hook only reads the event; nothing of the
        // server's is observed after a panic.
        let _ = panic::catch_unwind(AssertUnwindSafe(|| (self.0)(event)));
    }
}

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hook(..)")
    }
}
