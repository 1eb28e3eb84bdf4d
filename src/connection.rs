//! What a handler sees: the [`Connection`] it serves one turn at a time, the
//! [`Next`] it answers with, and the [`Handler`] trait.
//!
//! A connection outlives its turns: between them it waits (parked) without
//! a worker being busy on it, and
//! it keeps its read buffer, so bytes the client sent ahead (pipelined
//! requests) are never lost.

#[cfg(feature = "http")]
use std::any::Any;
use std::fmt;
use std::io::{self, BufRead, IoSlice, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::event::Event;
use crate::input::Input;
use crate::listener::{Addr, Stream};
use crate::outcome::Outcome;
use crate::push::{Mailbox, Pusher};
use crate::registry::{Ending, Registry};
use crate::shutdown::ShutdownState;
use crate::tls::Session;

/// What a handler says at the end of a turn: what happens to the connection
/// next.
///
/// # Example
///
/// A line protocol: each line is answered in upper case. Between two lines
/// the connection is idle, so shutdown closes it without waiting for the
/// client.
///
/// ```
/// use std::io::{self, BufRead, Read, Write};
/// use std::net::TcpStream;
/// use std::time::Duration;
///
/// use graceful_server::{Connection, Next, Server};
///
/// fn shout(conn: &mut Connection) -> io::Result<Next> {
///     let mut line = String::new();
///     if conn.read_line(&mut line)? == 0 || line.trim_end() == "quit" {
///         return Ok(Next::Close); // the client hung up or said goodbye
///     }
///     conn.write_all(line.to_uppercase().as_bytes())?;
///     // Nothing is owed to the client now. (`Next::Wait` would make shutdown
///     // wait for the client's next line.)
///     Ok(Next::Idle)
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let running = Server::builder("127.0.0.1:0").build()?.spawn(shout)?;
/// let mut client = TcpStream::connect(running.local_addr())?;
/// client.set_read_timeout(Some(Duration::from_secs(5)))?;
/// client.set_write_timeout(Some(Duration::from_secs(5)))?;
/// client.write_all(b"hello\n")?;
/// let mut reply = [0; 6];
/// client.read_exact(&mut reply)?;
/// assert_eq!(&reply, b"HELLO\n");
///
/// // The client stays connected, but idle: shutdown does not wait for it.
/// running.shutdown_handle().shutdown();
/// let report = running.join()?;
/// assert_eq!(report.closed_idle, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Next {
    /// Close the connection now. It counts as
    /// [`completed`](crate::Report::completed).
    Close,
    /// Wait for more input at a safe boundary, e.g. between two requests.
    ///
    /// The connection is *idle*: at shutdown it is closed after the
    /// [idle grace](crate::Builder::idle_grace) (a request arriving within
    /// the grace is still served), and it is closed after the
    /// [idle timeout](crate::Builder::idle_timeout) without input. Input
    /// already in the connection's buffer (a request read ahead) is served
    /// first, whatever the shutdown state: only a connection with nothing
    /// buffered counts as idle. (Input the turn left without consuming any
    /// of it waits for more from the socket instead.)
    Idle,
    /// Wait for more input in the middle of a conversation (the echo
    /// server's case: the client may send more at any time).
    ///
    /// Shutdown waits for such a connection until its client hangs up, or
    /// until the drain deadline. Without input it is closed after the
    /// [wait timeout](crate::Builder::wait_timeout), if one is set, and it
    /// gets a turn at its [deadline](Connection::set_deadline), if it has
    /// one.
    Wait,
}

/// Serves one turn of a connection.
///
/// The server calls [`turn`](Handler::turn) on a worker thread whenever the
/// connection has input (or its client hung up: then a read returns 0
/// bytes). A turn reads what it needs, writes its answer, and returns
/// [`Next`]. Returning an error, or panicking, closes the connection; the
/// worker goes on with other connections.
///
/// Every `Fn(&mut Connection) -> io::Result<Next>` closure is a handler:
///
/// ```
/// use std::io::{Read, Write};
/// use graceful_server::{Connection, Next};
///
/// // Echo: what arrives goes back, until the client hangs up.
/// fn echo(conn: &mut Connection) -> std::io::Result<Next> {
///     let mut buf = [0; 4096];
///     let n = conn.read(&mut buf)?;
///     if n == 0 {
///         return Ok(Next::Close); // the client hung up
///     }
///     conn.write_all(&buf[..n])?;
///     Ok(Next::Wait) // mid-conversation: shutdown waits for the client
/// }
/// # let _: &dyn graceful_server::Handler = &echo;
/// ```
///
/// A handler may also loop inside one turn (reading until the client is
/// done, as a thread-per-connection server does); the connection then keeps
/// its worker busy for the whole loop.
///
/// A handler can also be a type of yours, to hold settings or shared state,
/// or to say that its clients speak first:
///
/// ```
/// use std::io::{self, BufRead, Write};
/// use std::net::TcpStream;
///
/// use graceful_server::{Connection, Handler, Next, Server};
///
/// struct Greeter {
///     greeting: String,
/// }
///
/// impl Handler for Greeter {
///     fn turn(&self, conn: &mut Connection) -> io::Result<Next> {
///         let mut name = String::new();
///         if conn.read_line(&mut name)? == 0 {
///             return Ok(Next::Close);
///         }
///         writeln!(conn, "{}, {}", self.greeting, name.trim_end())?;
///         Ok(Next::Idle)
///     }
///
///     // The client speaks first, so a connection that has sent nothing yet
///     // can be closed at shutdown like one between two requests.
///     fn new_connections_are_idle(&self) -> bool {
///         true
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let greeter = Greeter { greeting: "hello".to_string() };
/// let running = Server::builder("127.0.0.1:0").build()?.spawn(greeter)?;
/// let silent = TcpStream::connect(running.local_addr())?;
///
/// // Shutdown does not wait for the silent client to speak.
/// running.shutdown_handle().shutdown();
/// let report = running.join()?;
/// assert_eq!(report.closed_idle, 1);
/// # drop(silent);
/// # Ok(())
/// # }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Serves one turn of `conn`.
    ///
    /// # Errors
    ///
    /// An error closes the connection and counts it as
    /// [`failed`](crate::Report::failed).
    fn turn(&self, conn: &mut Connection) -> io::Result<Next>;

    /// Whether a new connection counts as idle until its first turn. By
    /// default, `false`: it counts as mid-conversation, so shutdown waits for
    /// its client's first bytes (until the drain deadline).
    ///
    /// Protocols in which the client speaks first and a connection without a
    /// request can be closed safely (HTTP) return `true`: a connection that
    /// has not sent anything yet is then closed at shutdown like one between
    /// requests.
    fn new_connections_are_idle(&self) -> bool {
        false
    }
}

impl<F> Handler for F
where
    F: Fn(&mut Connection) -> io::Result<Next> + Send + Sync + 'static,
{
    fn turn(&self, conn: &mut Connection) -> io::Result<Next> {
        self(conn)
    }
}

/// A protocol a connection has switched to (HTTP's `Upgrade`: a WebSocket,
/// an event stream), which serves its turns from then on instead of the
/// server's handler. It keeps the protocol's state between turns.
///
/// Switch with [`Connection::switch_protocol`] in a turn; the next turn of
/// the connection goes to the protocol. A protocol's turn has the same
/// contract as a [`Handler`]'s: it returns [`Next`], an error or a panic
/// closes the connection.
pub trait Protocol: Send + Sync + 'static {
    /// Serves one turn of `conn`.
    ///
    /// # Errors
    ///
    /// As [`Handler::turn`].
    fn turn(&mut self, conn: &mut Connection) -> io::Result<Next>;
}

/// What a connection that stays open by design has (see
/// `Connection::long_lived`).
#[derive(Default)]
struct LongLived {
    /// For its [`Pusher`]s; made by the first.
    mailbox: Option<Arc<Mailbox>>,
    /// The protocol serving its turns, if it switched
    /// ([`Connection::switch_protocol`]).
    protocol: Option<Box<dyn Protocol>>,
    /// It asked for a goodbye turn at shutdown.
    goodbye_wanted: bool,
    /// It has had its goodbye turn.
    said_goodbye: bool,
}

/// The read and write timeouts set on the socket, kept to bound each wait
/// of a read or write under a deadline too (which waits in `poll`, where
/// the socket's own timeouts do not apply).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IoTimeouts {
    pub(crate) read: Option<Duration>,
    pub(crate) write: Option<Duration>,
}

impl IoTimeouts {
    /// The earlier of `deadline` and `timeout` from now.
    fn bound(deadline: Option<Instant>, timeout: Option<Duration>) -> Option<Instant> {
        deadline.map(|deadline| IoTimeouts::bound_by(deadline, timeout))
    }

    /// The earlier of `deadline` and `timeout` from now.
    fn bound_by(deadline: Instant, timeout: Option<Duration>) -> Instant {
        match timeout.and_then(|t| Instant::now().checked_add(t)) {
            Some(limit) => deadline.min(limit),
            None => deadline,
        }
    }
}

/// One client connection, served one turn at a time.
///
/// It reads through a buffer that lives as long as the connection
/// ([`Read`] and [`BufRead`]), writes straight to the socket ([`Write`]:
/// write each answer in as few calls as you can), and tells the handler who
/// the client is and whether the server is shutting down.
///
/// The socket is blocking, with the server's
/// [read](crate::Builder::read_timeout) and
/// [write](crate::Builder::write_timeout) timeouts. A handler is only called
/// when input is available, so its first read does not block; reading more
/// than what has arrived blocks as usual.
///
/// # Example
///
/// ```
/// use std::io::{self, BufRead, Write};
///
/// use graceful_server::{Connection, Next};
///
/// fn greet(conn: &mut Connection) -> io::Result<Next> {
///     let mut name = String::new();
///     if conn.read_line(&mut name)? == 0 {
///         return Ok(Next::Close); // the client hung up
///     }
///     let (id, peer) = (conn.id(), conn.peer_addr().clone());
///     writeln!(conn, "hello {}, connection {id} from {peer}", name.trim_end())?;
///     if conn.is_shutting_down() {
///         writeln!(conn, "bye: the server is shutting down")?;
///         return Ok(Next::Close);
///     }
///     Ok(Next::Idle)
/// }
/// # use std::io::BufReader;
/// # use std::net::TcpStream;
/// # use std::time::Duration;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let running = graceful_server::Server::builder("127.0.0.1:0").build()?.spawn(greet)?;
/// # let mut client = TcpStream::connect(running.local_addr())?;
/// # client.set_read_timeout(Some(Duration::from_secs(5)))?;
/// # client.set_write_timeout(Some(Duration::from_secs(5)))?;
/// # client.write_all(b"ann\n")?;
/// # let mut line = String::new();
/// # BufReader::new(&client).read_line(&mut line)?;
/// # assert!(line.starts_with("hello ann, connection 1 from 127.0.0.1:"), "{line}");
/// # drop(client);
/// # running.shutdown_handle().shutdown();
/// # running.join()?;
/// # Ok(())
/// # }
/// ```
pub struct Connection {
    input: Input,
    /// See [`Connection::set_deadline`].
    deadline: Option<Instant>,
    io_timeouts: IoTimeouts,
    /// Output queued with [`Connection::queue_output`]; `output[sent..]`
    /// is still to go.
    output: Vec<u8>,
    sent: usize,
    id: u64,
    peer: Addr,
    registry: Arc<Registry>,
    signal: Arc<ShutdownState>,
    /// What a connection that stays open by design has: made by the first
    /// use (a pusher, a protocol, a goodbye), so that request/response
    /// connections carry (and copy) one pointer for it.
    long_lived: Option<Box<LongLived>>,
    /// Why this turn came, besides input: see [`Connection::is_woken`]
    /// and [`Connection::is_goodbye`]. Set by the lifecycle.
    woken: bool,
    goodbye: bool,
    /// Whether it counts as parked in the live stats. `Some(idle)`:
    /// counted, as waiting idle or not.
    counted_parked: Option<bool>,
    /// Counted when dropped; set by [`Connection::close`], from the
    /// [lifecycle](crate::lifecycle)'s decision.
    outcome: Outcome,
    /// The error that ended it, for the event hook.
    error: Option<io::Error>,
    accepted: Instant,
    /// What a protocol layer remembers about the connection between its
    /// turns (the HTTP layer's requests served, its body budget): dropped
    /// with the connection. See [`Connection::layer_state`].
    #[cfg(feature = "http")]
    layer_state: Option<Box<dyn Any + Send + Sync>>,
}

impl Connection {
    // Called from one place (the acceptor's admit), with what it holds.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        socket: Arc<Stream>,
        id: u64,
        peer: Addr,
        registry: Arc<Registry>,
        signal: Arc<ShutdownState>,
        io_timeouts: IoTimeouts,
        tls: Option<Box<Session>>,
    ) -> Connection {
        // A TLS connection's handshake is due by its deadline.
        let deadline = tls.as_deref().and_then(Session::handshake_deadline);
        Connection {
            input: Input::new(socket, tls),
            deadline,
            io_timeouts,
            output: Vec::new(),
            sent: 0,
            id,
            peer,
            registry,
            signal,
            long_lived: None,
            woken: false,
            goodbye: false,
            counted_parked: None,
            outcome: Outcome::Unserved,
            error: None,
            accepted: Instant::now(),
            #[cfg(feature = "http")]
            layer_state: None,
        }
    }

    /// The state a protocol layer keeps for the connection between turns,
    /// of a type only the layer knows (so that the core need not know the
    /// layer): empty until the layer puts something in, dropped when the
    /// connection closes, however it closes.
    #[cfg(feature = "http")]
    pub(crate) fn layer_state(&mut self) -> &mut Option<Box<dyn Any + Send + Sync>> {
        &mut self.layer_state
    }

    /// Tells the event hook, if there is one (a protocol layer's events:
    /// the HTTP layer's requests).
    #[cfg(feature = "http")]
    pub(crate) fn tell(&self, event: &Event<'_>) {
        self.registry.tell(event);
    }

    /// Why the next turn comes (set by the lifecycle before it).
    pub(crate) fn set_turn_reason(&mut self, woken: bool, goodbye: bool) {
        self.woken = woken;
        self.goodbye = goodbye;
        if !goodbye {
            return;
        }
        let long_lived = self.long_lived();
        if !std::mem::replace(&mut long_lived.said_goodbye, true) {
            self.registry.tell(&Event::Goodbye {
                id: self.id,
                peer: &self.peer,
            });
        }
    }

    /// Its long-lived part, made now if it has none yet.
    fn long_lived(&mut self) -> &mut LongLived {
        self.long_lived.get_or_insert_with(Box::default)
    }

    /// Whether it asked for a goodbye turn at shutdown.
    pub(crate) fn wants_goodbye(&self) -> bool {
        self.long_lived.as_ref().is_some_and(|l| l.goodbye_wanted)
    }

    /// Whether pushed mail (or a request for a turn) waits to be taken.
    #[inline]
    pub(crate) fn has_mail(&self) -> bool {
        match &self.long_lived {
            None => false,
            Some(l) => l.mailbox.as_ref().is_some_and(|m| m.has_mail()),
        }
    }

    /// Takes the pushed mail: its bytes are queued as output (which must
    /// be taken within the write timeout); returns whether a turn was
    /// asked for.
    pub(crate) fn open_mail(&mut self) -> bool {
        let Some(mailbox) = self.long_lived.as_ref().and_then(|l| l.mailbox.as_ref()) else {
            return false;
        };
        let delivery = mailbox.take();
        self.queue_timed(&delivery.bytes);
        delivery.turn
    }

    /// Queues `output` (if any) to be taken by the client within the write
    /// timeout: the connection's deadline, unless one is set already. Pushed
    /// output, and what a [`Protocol`] sends in a turn without waiting for
    /// the socket (the HTTP layer's event streams and WebSockets).
    pub(crate) fn queue_timed(&mut self, output: &[u8]) {
        if output.is_empty() {
            return;
        }
        self.queue_output(output);
        if self.deadline.is_none() {
            self.deadline = self
                .io_timeouts
                .write
                .and_then(|t| Instant::now().checked_add(t));
        }
    }

    /// Takes the protocol the connection switched to, for a turn.
    pub(crate) fn take_protocol(&mut self) -> Option<Box<dyn Protocol>> {
        self.long_lived.as_mut()?.protocol.take()
    }

    /// Puts the protocol back after its turn, unless the turn switched to
    /// another.
    pub(crate) fn restore_protocol(&mut self, protocol: Box<dyn Protocol>) {
        let long_lived = self.long_lived();
        if long_lived.protocol.is_none() {
            long_lived.protocol = Some(protocol);
        }
    }

    /// Counts the connection as parked (`Some(idle)`: waiting idle or
    /// not) or not (`None`), for the live stats.
    pub(crate) fn count_parked(&mut self, parked: Option<bool>) {
        if self.counted_parked == parked {
            return;
        }
        if let Some(idle) = self.counted_parked {
            self.registry.count_waiting(false, idle);
        }
        if let Some(idle) = parked {
            self.registry.count_waiting(true, idle);
        }
        self.counted_parked = parked;
    }

    /// Closes the connection, counted as `outcome`, `error` being what
    /// ended it. Only the [lifecycle](crate::lifecycle) decides this.
    pub(crate) fn close(mut self, outcome: Outcome, error: Option<io::Error>) {
        self.outcome = outcome;
        self.error = error;
        drop(self);
    }

    #[inline]
    pub(crate) fn shutdown_state(&self) -> &ShutdownState {
        &self.signal
    }

    /// A number unique to this connection within its server, starting at 1 in
    /// the order of acceptance.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The client's address: `IP:PORT` over TCP; over a Unix socket, its
    /// path if it bound one (clients usually do not).
    pub fn peer_addr(&self) -> &Addr {
        &self.peer
    }

    /// The socket, e.g. to change its timeouts or read its local address
    /// ([`Stream::as_tcp`], [`Stream::as_unix`](Stream::as_unix)).
    ///
    /// Read through the [`Connection`], not through the socket: bytes already
    /// in the connection's buffer would be skipped.
    pub fn stream(&self) -> &Stream {
        self.input.socket()
    }

    /// Whether input is already buffered, so that the next read does not
    /// touch the socket. After a turn that consumes some input and leaves
    /// more buffered (pipelined requests), the next turn follows at once;
    /// after a turn that consumes none of it (a partial request, see
    /// [`receive`](Self::receive)), the connection waits for more.
    ///
    /// Over TLS, plaintext that has been decrypted but not yet taken into
    /// the buffer counts too, and so does the client's `close_notify`: the
    /// next read returns them without touching the socket.
    #[inline]
    pub fn has_buffered_input(&self) -> bool {
        !self.input.buffer().is_empty() || self.input.has_tls_input()
    }

    /// What is buffered, without reading: the input a turn has not consumed
    /// yet. Consume it with [`BufRead::consume`].
    pub fn buffered(&self) -> &[u8] {
        self.input.buffer()
    }

    /// Reads what the socket already holds into the connection's buffer,
    /// without blocking, growing the buffer so that it holds at most
    /// `limit` bytes. Returns, as a nonblocking `read` does, the number of
    /// bytes added, `Ok(0)` at end of file, or an error of kind
    /// [`WouldBlock`](io::ErrorKind::WouldBlock) when nothing has arrived.
    ///
    /// This is how a protocol gathers a request without holding a worker:
    /// take what has arrived, look at [`buffered`](Self::buffered), and if
    /// the request is not all there, end the turn with [`Next::Wait`]
    /// (and a [deadline](Self::set_deadline)), consuming nothing. The bytes
    /// stay buffered, and the next turn comes when more arrive.
    ///
    /// # Errors
    ///
    /// The socket's error, `WouldBlock` as said, or
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) when `limit` bytes are
    /// buffered already.
    ///
    /// # Example
    ///
    /// A line protocol that never waits for a line inside a turn:
    ///
    /// ```
    /// use std::io::{self, BufRead, Write};
    ///
    /// use graceful_server::{Connection, Next};
    ///
    /// const MAX_LINE: usize = 1024;
    ///
    /// fn shout(conn: &mut Connection) -> io::Result<Next> {
    ///     loop {
    ///         if let Some(end) = conn.buffered().iter().position(|&b| b == b'\n') {
    ///             let line = conn.buffered()[..=end].to_ascii_uppercase();
    ///             conn.consume(end + 1);
    ///             conn.write_all(&line)?;
    ///             return Ok(Next::Idle);
    ///         }
    ///         if conn.buffered().len() >= MAX_LINE {
    ///             return Ok(Next::Close); // a line too long
    ///         }
    ///         match conn.receive(MAX_LINE) {
    ///             Ok(0) => return Ok(Next::Close), // the client hung up
    ///             Ok(_) => {}                      // look again
    ///             // Half a line: wait for the rest without holding a worker.
    ///             Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Next::Wait),
    ///             Err(e) => return Err(e),
    ///         }
    ///     }
    /// }
    /// # use std::io::Read;
    /// # use std::net::TcpStream;
    /// # use std::time::Duration;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let running = graceful_server::Server::builder("127.0.0.1:0").build()?.spawn(shout)?;
    /// # let mut client = TcpStream::connect(running.local_addr())?;
    /// # client.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// # client.set_write_timeout(Some(Duration::from_secs(5)))?;
    /// # client.write_all(b"hel")?;
    /// # std::thread::sleep(Duration::from_millis(50));
    /// # client.write_all(b"lo\n")?;
    /// # let mut reply = [0; 6];
    /// # client.read_exact(&mut reply)?;
    /// # assert_eq!(&reply, b"HELLO\n");
    /// # running.shutdown_handle().shutdown();
    /// # running.join()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn receive(&mut self, limit: usize) -> io::Result<usize> {
        self.input.receive(limit)
    }

    /// Sets the connection's deadline, or clears it (`None`). By default
    /// there is none.
    ///
    /// While it is set:
    ///
    /// - every read or write of the connection that would wait past it fails
    ///   with an error of kind [`TimedOut`](io::ErrorKind::TimedOut) (the
    ///   server's [read](crate::Builder::read_timeout) and
    ///   [write](crate::Builder::write_timeout) timeouts still bound each
    ///   call);
    /// - a connection waiting between turns gets a turn when it passes, even
    ///   if no input has arrived, so that the handler can answer (HTTP's
    ///   `408 Request Timeout`) and close. Check
    ///   [`is_past_deadline`](Self::is_past_deadline) first in a turn.
    ///
    /// It stays set, across turns, until changed. A turn ending in an error
    /// of kind `TimedOut` counts the connection as
    /// [`timed_out`](crate::Report::timed_out).
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    /// The deadline set with [`set_deadline`](Self::set_deadline).
    #[inline]
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether the deadline is set and has passed.
    pub fn is_past_deadline(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// Queues `output` to be sent after the turn, while the connection
    /// waits without a worker: the server writes it as the socket takes it,
    /// in order after everything written before, and the connection goes
    /// on as the turn said ([`Next`]) once all of it is sent. Whatever the
    /// turn writes after this is queued behind it.
    ///
    /// This is how a turn finishes an answer that does not fit the socket's
    /// buffers without waiting for a slow reader: write what the socket
    /// takes at once, queue the rest. A [deadline](Self::set_deadline)
    /// bounds the wait: a connection whose output is not all sent by then
    /// is closed and counted as [`timed_out`](crate::Report::timed_out);
    /// once it is sent, the deadline is cleared. While output is queued the
    /// connection is in the middle of a conversation, whatever the turn
    /// said: shutdown does not close it as idle.
    pub fn queue_output(&mut self, output: &[u8]) {
        match self.input.tls() {
            // Queued encrypted: what is sent while parked is records.
            Some((tls, _)) => tls.encrypt_into(output, &mut self.output),
            None => self.output.extend_from_slice(output),
        }
    }

    /// The TLS step before a turn ([`Session::step`]): the handshake, or
    /// records that carry no plaintext. Returns whether the handler has
    /// something to read (or, `owed`, a turn without input); without TLS,
    /// `Ok(true)`. During the handshake,
    /// records the socket did not take at once are queued, and the
    /// connection's deadline is the handshake's (cleared once it is done).
    pub(crate) fn advance_tls(&mut self, owed: bool) -> io::Result<bool> {
        let ready = owed
            || self.has_buffered_input()
            || self.is_past_deadline()
            || self.has_queued_output();
        let Some((tls, socket)) = self.input.tls() else {
            return Ok(true);
        };
        let handshaking = tls.handshake_deadline().is_some();
        let has_input = tls.step(socket, ready)?;
        if handshaking {
            tls.drain_into(&mut self.output);
            self.deadline = tls.handshake_deadline();
        }
        Ok(has_input)
    }

    /// Whether its TLS handshake is still going on.
    pub(crate) fn is_handshaking(&self) -> bool {
        self.input
            .session()
            .and_then(Session::handshake_deadline)
            .is_some()
    }

    /// Whether the connection speaks TLS.
    #[inline]
    pub(crate) fn is_tls(&self) -> bool {
        self.input.session().is_some()
    }

    /// Sends `close_notify` now, on a TLS connection, before the socket's
    /// write side is shut down (the HTTP layer's polite close).
    #[cfg(feature = "http")]
    pub(crate) fn close_notify(&mut self) {
        let queued = self.has_queued_output();
        if let Some((tls, socket)) = self.input.tls() {
            tls.close(socket, Outcome::Completed, queued);
        }
    }

    /// Whether output queued with [`queue_output`](Self::queue_output) is
    /// still to be sent.
    #[inline]
    pub fn has_queued_output(&self) -> bool {
        self.sent < self.output.len()
    }

    /// Sends queued output until the socket takes no more; returns whether
    /// all of it is sent (then the deadline is cleared).
    pub(crate) fn send_queued(&mut self) -> io::Result<bool> {
        while self.has_queued_output() {
            match self.stream().send_nonblocking(&self.output[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.output = Vec::new();
        self.sent = 0;
        // A TLS handshake goes on under its own deadline.
        self.deadline = self.input.session().and_then(Session::handshake_deadline);
        Ok(true)
    }

    /// Input consumed so far, to tell after a turn whether it used any.
    #[inline]
    pub(crate) fn consumed(&self) -> u64 {
        self.input.consumed()
    }

    /// Frees an empty read buffer, for a long wait.
    pub(crate) fn release_buffer(&mut self) {
        self.input.release_if_empty();
    }

    /// Whether its last read from the socket found the kernel's queue
    /// empty, so that input arriving later raises a new readiness edge
    /// (see [`Input::is_drained`]).
    pub(crate) fn is_input_drained(&self) -> bool {
        self.input.is_drained()
    }

    /// Forgets that its socket's queue was found empty: a readiness edge
    /// has been taken for it since, or readiness changed its meaning.
    pub(crate) fn forget_input_drained(&mut self) {
        self.input.forget_drained();
    }

    /// A [`Pusher`] for this connection: other threads send it output, or
    /// ask for a turn, through it while the connection waits without a
    /// worker (a subscriber of server-sent events, a WebSocket client of a
    /// chat). Return [`Next::Wait`] to keep the connection open.
    pub fn pusher(&mut self) -> Pusher {
        let (id, registry) = (self.id, Arc::clone(&self.registry));
        let mailbox = self
            .long_lived()
            .mailbox
            .get_or_insert_with(|| Arc::new(Mailbox::new(id, registry.push_setup())));
        Pusher::new(Arc::clone(mailbox))
    }

    /// Whether this turn was asked for with [`Pusher::wake`] (input may
    /// have arrived too: check [`has_buffered_input`](Self::has_buffered_input)
    /// or read without blocking with [`receive`](Self::receive)).
    pub fn is_woken(&self) -> bool {
        self.woken
    }

    /// Asks for a goodbye turn when shutdown starts, or not. By default, a
    /// connection gets none.
    ///
    /// A connection that waits mid-conversation ([`Next::Wait`]) when the
    /// server stops accepting then gets one turn, even without input, in
    /// which [`is_goodbye`](Self::is_goodbye) is true: the moment for its
    /// protocol to say goodbye (a WebSocket's Close 1001, an event stream's
    /// last event) and to return [`Next::Close`], or [`Next::Wait`] for the
    /// client's answer (within the drain deadline). A connection in a turn
    /// when shutdown starts gets its goodbye turn after that turn.
    pub fn set_goodbye(&mut self, goodbye: bool) {
        if goodbye || self.long_lived.is_some() {
            self.long_lived().goodbye_wanted = goodbye;
        }
    }

    /// Whether this is the connection's goodbye turn (see
    /// [`set_goodbye`](Self::set_goodbye)).
    pub fn is_goodbye(&self) -> bool {
        self.goodbye
    }

    /// Hands the connection's next turns to `protocol` instead of the
    /// server's handler (after HTTP's `101 Switching Protocols`, say).
    pub fn switch_protocol(&mut self, protocol: Box<dyn Protocol>) {
        self.long_lived().protocol = Some(protocol);
    }

    /// Whether the server is shutting down. A handler speaking a protocol
    /// with a "closing" marker (HTTP's `Connection: close`) should send it
    /// once this is true and then return [`Next::Close`].
    pub fn is_shutting_down(&self) -> bool {
        self.signal.is_shutting_down()
    }

    /// Whether the shutdown has been forced (drain timeout, second signal, or
    /// [`ShutdownHandle::force`](crate::ShutdownHandle::force)). The socket
    /// is shut down by then; a handler busy with something else (a long
    /// computation, a wait) should check this and give up, or its thread is
    /// left behind after the force grace.
    pub fn is_forced(&self) -> bool {
        self.signal.is_forced()
    }
}

impl Read for Connection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let bound = IoTimeouts::bound(self.deadline, self.io_timeouts.read);
        self.input.read(buf, bound)
    }
}

impl BufRead for Connection {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let bound = IoTimeouts::bound(self.deadline, self.io_timeouts.read);
        self.input.fill(bound)
    }

    fn consume(&mut self, amount: usize) {
        self.input.consume(amount);
    }
}

impl Write for Connection {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.has_queued_output() {
            // Behind what is queued: queued too, to keep the order.
            self.queue_output(buf);
            return Ok(buf.len());
        }
        let (deadline, timeout) = (self.deadline, self.io_timeouts.write);
        match self.input.tls() {
            Some((tls, socket)) => {
                let deadline = IoTimeouts::bound(deadline, timeout);
                tls.write(socket, &[IoSlice::new(buf)], deadline)
            }
            None => match deadline {
                None => self.stream().write_by(buf, None),
                // Bounded by the write timeout too, worked out only if
                // the write has to wait: most go at once.
                Some(deadline) => self
                    .stream()
                    .write_by_lazily(buf, || IoTimeouts::bound_by(deadline, timeout)),
            },
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if !self.has_queued_output() {
            if let Some((tls, socket)) = self.input.tls() {
                let deadline = IoTimeouts::bound(self.deadline, self.io_timeouts.write);
                return tls.write(socket, bufs, deadline);
            }
        }
        if self.deadline.is_some() || self.has_queued_output() {
            // One slice at a time, each bounded by the deadline.
            let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| b);
            return self.write(first);
        }
        self.stream().write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // TLS: `close_notify` before the TCP close, on every close (see
        // `Session::close` for when it is left out).
        let (outcome, queued) = (self.outcome, self.has_queued_output());
        if let Some((tls, socket)) = self.input.tls() {
            tls.close(socket, outcome, queued);
        }
        self.count_parked(None);
        let long_lived = self.long_lived.as_deref();
        if let Some(mailbox) = long_lived.and_then(|l| l.mailbox.as_ref()) {
            mailbox.close();
        }
        // Deregister first; the socket closes right after, when the input
        // (the last owner of the descriptor) is dropped with `self`.
        let ending = Ending {
            peer: &self.peer,
            open_for: self.accepted.elapsed(),
            error: self.error.as_ref(),
            said_goodbye: long_lived.is_some_and(|l| l.said_goodbye),
        };
        self.registry.finish(self.id, self.outcome, ending);
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .field("buffered", &self.input.buffer().len())
            .field("deadline", &self.deadline)
            .field("shutting_down", &self.is_shutting_down())
            .finish_non_exhaustive()
    }
}
