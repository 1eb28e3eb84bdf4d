//! [`Outcome`]: how a connection's time on the server ended, the one
//! word the [`Report`](crate::Report) counts it under and the
//! [event hook](crate::Builder::on_event) tells.

/// How a connection's time on the server ended: one outcome of the
/// [`Report`](crate::Report), as told to the [event hook](crate::Builder::on_event).
///
/// ```
/// use std::io::{self, Write};
/// use std::net::TcpStream;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
///
/// use graceful_server::{Connection, Event, Next, Outcome, Server};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Count failed connections, e.g. for a metric.
/// let failed = Arc::new(AtomicU64::new(0));
/// let counter = Arc::clone(&failed);
/// let server = Server::builder("127.0.0.1:0")
///     .on_event(move |event| {
///         if let Event::ConnectionEnded { outcome: Outcome::Failed, .. } = event {
///             counter.fetch_add(1, Ordering::Relaxed);
///         }
///     })
///     .build()?;
/// let running = server.spawn(|_conn: &mut Connection| -> io::Result<Next> {
///     Err(io::Error::new(io::ErrorKind::InvalidData, "not my protocol"))
/// })?;
/// TcpStream::connect(running.local_addr())?.write_all(b"?")?;
///
/// running.shutdown_handle().shutdown();
/// let report = running.join()?;
/// assert_eq!(report.failed, 1);
/// assert_eq!(failed.load(Ordering::Relaxed), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The conversation ended normally: the handler said
    /// [`Next::Close`](crate::Next::Close) (its queued output, if any, all
    /// sent), or the client closed or reset the connection while it waited
    /// idle ([`Next::Idle`](crate::Next::Idle), or new to a handler whose
    /// new connections are idle), before sending a byte of anything new:
    /// that is how keep-alive ends (wrk's resets at the end of a run, a
    /// proxy closing its idle upstream connections).
    Completed,
    /// The conversation broke: the handler returned an error other than a
    /// timeout (e.g. the client reset the connection in the middle of a
    /// request, or mid-conversation), or sending queued output failed.
    Failed,
    /// Cut for slowness: a turn failed with a timeout (an error of kind
    /// `TimedOut` or `WouldBlock`: a read or write timeout, a
    /// [deadline](crate::Connection::set_deadline), or the HTTP layer's
    /// header timeout and minimum data rates), or a mid-conversation wait
    /// outlasted the [wait timeout](crate::Builder::wait_timeout).
    TimedOut,
    /// Closed by the server while waiting idle: at the end of the idle
    /// grace at shutdown, or after the [idle
    /// timeout](crate::Builder::idle_timeout).
    ClosedIdle,
    /// Cut by a forced shutdown (deadline, second signal,
    /// [`ShutdownHandle::force`](crate::ShutdownHandle::force)) after it had
    /// had at least one turn, whatever the handler made of the cut.
    ForceClosed,
    /// Closed without a single turn: a forced shutdown found it before its
    /// first turn, wherever it was (queued for a worker, or waiting for its
    /// first input, e.g. a client that connected and sent nothing), or the
    /// socket could not be prepared. See
    /// [`Report::unserved`](crate::Report::unserved).
    Unserved,
    /// The handler panicked (the worker lives on).
    Panicked,
}
