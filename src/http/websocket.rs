//! WebSocket (RFC 6455) on the HTTP layer, feature `websocket`: the
//! handshake ([`Request::websocket`](super::Request::websocket)), and the
//! protocol a connection switches to after its `101 Switching Protocols`,
//! which serves each message as a turn of a [`WebSocketHandler`].
//!
//! The frames are tungstenite's: its [`WebSocketContext`] is the protocol's
//! state machine without a stream of its own, given the connection at each
//! call through [`Wire`], which never blocks: it hands over what has
//! arrived and says `WouldBlock` when nothing more has, and it queues what
//! is written on the connection, which sends it as the socket takes it.
//! So a turn takes every message that has arrived, and the WebSocket then
//! waits for the next one holding no worker. Output from other threads
//! ([`WsSender`]) is framed here and pushed through the connection's
//! [`Pusher`](crate::Pusher).
//!
//! # Closing
//!
//! - The client's Close is answered, and the connection closes once the
//!   answer is sent (the server closes first, as RFC 6455 section 7.1.1
//!   asks).
//! - At shutdown, unless [turned off](WebSocketConfig::goodbye), the
//!   connection's goodbye turn sends Close 1001 ("going away") and waits
//!   for the client's Close, within the drain deadline.
//! - A client that breaks the protocol gets the Close its fault calls for
//!   (1002 a protocol error, 1007 text that is not UTF-8, 1009 a message
//!   or frame over the [limits](WebSocketConfig::max_message)); so does a
//!   handler's error (1011). The connection then sends its end of the
//!   stream and reads (and throws away) what the client still sends for
//!   at most [`LINGER`], holding no worker, so that closing does not reset
//!   the connection before the client has read the Close.

use std::fmt;
use std::io::{self, BufRead, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::error::ProtocolError;
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::frame::coding::{CloseCode, Data as OpData, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig as Config, WebSocketContext};
use tungstenite::Error as WsError;

use super::request::{Request, Version};
use super::takeover::{Gate, Kind, Switch};
use super::Response;
use crate::{Addr, Connection, Next, Protocol, PushError};

/// How long a connection closed for a fault reads what its client still
/// sends, after its Close and its end of the stream.
pub(crate) const LINGER: Duration = Duration::from_secs(1);

/// The most a turn reads from the socket at once, and the capacity of
/// tungstenite's read buffer: an idle WebSocket costs little memory.
const READ_SIZE: usize = 4096;

/// A WebSocket's settings: the sizes of what a client may send, and
/// whether shutdown says goodbye.
///
/// ```
/// use graceful_server::http::WebSocketConfig;
///
/// // Larger messages; no goodbye at shutdown (the server waits for the
/// // client to close, as the echo server waits for its clients).
/// let config = WebSocketConfig::default()
///     .max_message(16 * 1024 * 1024)
///     .max_frame(1024 * 1024)
///     .goodbye(false);
/// # let _ = config;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WebSocketConfig {
    max_message: usize,
    max_frame: usize,
    goodbye: bool,
}

impl WebSocketConfig {
    /// The default of [`max_message`](Self::max_message): 1 MiB.
    pub const DEFAULT_MAX_MESSAGE: usize = 1024 * 1024;
    /// The default of [`max_frame`](Self::max_frame): 256 KiB.
    pub const DEFAULT_MAX_FRAME: usize = 256 * 1024;

    /// The largest message a client may send, in bytes, its frames
    /// together. By default, 1 MiB. A larger one closes the connection
    /// with code 1009 ("message too big"). A message is held in memory
    /// whole until it is complete.
    pub fn max_message(mut self, bytes: usize) -> WebSocketConfig {
        self.max_message = bytes;
        self
    }

    /// The largest frame a client may send, in bytes of payload. By
    /// default, 256 KiB. A larger one closes the connection with code 1009,
    /// as soon as its header says its size.
    pub fn max_frame(mut self, bytes: usize) -> WebSocketConfig {
        self.max_frame = bytes;
        self
    }

    /// Whether shutdown says goodbye to the client. By default, it does.
    ///
    /// On, when the server stops accepting, the connection gets one turn
    /// in which it sends Close 1001 ("going away") and then waits for the
    /// client's Close (within the drain deadline): a client that answers
    /// lets the drain end in about a round trip. Off, the connection is
    /// left alone: its messages are served as before, and the drain waits
    /// for the client to close it (or for the drain deadline).
    pub fn goodbye(mut self, goodbye: bool) -> WebSocketConfig {
        self.goodbye = goodbye;
        self
    }

    /// tungstenite's settings for these.
    fn tungstenite(&self) -> Config {
        Config::default()
            .read_buffer_size(READ_SIZE)
            // Each frame goes to the connection at once, which queues it.
            .write_buffer_size(0)
            .max_message_size(Some(self.max_message))
            .max_frame_size(Some(self.max_frame))
    }
}

impl Default for WebSocketConfig {
    fn default() -> WebSocketConfig {
        WebSocketConfig {
            max_message: WebSocketConfig::DEFAULT_MAX_MESSAGE,
            max_frame: WebSocketConfig::DEFAULT_MAX_FRAME,
            goodbye: true,
        }
    }
}

/// A WebSocket message: text or binary data. Pings, pongs and Close are
/// the layer's business, not the handler's.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Message {
    /// A text message (valid UTF-8, checked on arrival).
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

impl Message {
    /// The message's bytes: the text's UTF-8, or the binary data.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(data) => data,
        }
    }

    /// tungstenite's message of the same data.
    fn into_tungstenite(self) -> tungstenite::Message {
        match self {
            Message::Text(text) => tungstenite::Message::text(text),
            Message::Binary(data) => tungstenite::Message::binary(data),
        }
    }
}

impl From<String> for Message {
    fn from(text: String) -> Message {
        Message::Text(text)
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Message {
        Message::Text(text.to_string())
    }
}

impl From<Vec<u8>> for Message {
    fn from(data: Vec<u8>) -> Message {
        Message::Binary(data)
    }
}

impl From<&[u8]> for Message {
    fn from(data: &[u8]) -> Message {
        Message::Binary(data.to_vec())
    }
}

/// Serves the messages of one WebSocket: one call per message, on a worker
/// thread, in order. Between messages the connection waits holding no
/// worker.
///
/// Every `FnMut(&mut WebSocket, Message) -> io::Result<()>` closure is a
/// handler; a type of yours can keep a conversation's state. Returning an
/// error closes the connection with code 1011 ("internal error"); a panic
/// closes it at once (the server counts it).
///
/// ```
/// use graceful_server::http::{Message, WebSocket};
///
/// // Echo: every message comes back as it was sent.
/// fn echo(ws: &mut WebSocket<'_>, message: Message) -> std::io::Result<()> {
///     ws.send(message)
/// }
/// # fn check<H: graceful_server::http::WebSocketHandler>(_: H) {}
/// # check(echo);
/// ```
pub trait WebSocketHandler: Send + Sync + 'static {
    /// Serves `message`, which arrived on `ws`.
    ///
    /// # Errors
    ///
    /// An error closes the connection (code 1011) and ends it as failed.
    fn message(&mut self, ws: &mut WebSocket<'_>, message: Message) -> io::Result<()>;
}

impl<F> WebSocketHandler for F
where
    F: FnMut(&mut WebSocket<'_>, Message) -> io::Result<()> + Send + Sync + 'static,
{
    fn message(&mut self, ws: &mut WebSocket<'_>, message: Message) -> io::Result<()> {
        self(ws, message)
    }
}

/// A WebSocket in a turn of its [`WebSocketHandler`]: reply to the message,
/// close, or take a [`WsSender`] for other threads.
pub struct WebSocket<'a> {
    conn: &'a mut Connection,
    ctx: &'a mut WebSocketContext,
    sender: &'a WsSender,
}

impl WebSocket<'_> {
    /// Sends `message` to the client. It is queued on the connection,
    /// after what was sent before (pushed output included), and goes out
    /// as the socket takes it, after the turn if need be: this never waits
    /// for the client. Once a Close has been sent or received, nothing more
    /// can be sent, and this does nothing.
    ///
    /// # Errors
    ///
    /// None in practice (the message is queued); the signature leaves room
    /// for the connection's.
    pub fn send(&mut self, message: impl Into<Message>) -> io::Result<()> {
        let message = message.into().into_tungstenite();
        let mut wire = Wire(self.conn);
        let sent = self
            .ctx
            .write(&mut wire, message)
            .and_then(|()| self.ctx.flush(&mut wire));
        match sent {
            Ok(()) => Ok(()),
            Err(error) if is_closed(&error) => Ok(()),
            Err(error) => Err(into_io(error)),
        }
    }

    /// Starts the closing handshake: sends a Close with `code` and
    /// `reason` (at most 123 bytes of it, cut at a character boundary).
    /// Messages that arrive before the client's Close are still served;
    /// nothing more can be sent. The connection closes once the client
    /// answers.
    ///
    /// Codes: 1000 normal closure, 1001 going away, 1008 policy violation,
    /// 1011 internal error, 3000-4999 for applications.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) for a code that must
    /// not be sent (1005, 1006, 1015, and those no one has defined).
    pub fn close(&mut self, code: u16, reason: &str) -> io::Result<()> {
        let code = CloseCode::from(code);
        if !code.is_allowed() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("close code {code} may not be sent"),
            ));
        }
        self.sender.gate.shut(self.conn);
        let frame = CloseFrame {
            code,
            reason: truncate(reason, 123).into(),
        };
        match self.ctx.close(&mut Wire(self.conn), Some(frame)) {
            Ok(()) => Ok(()),
            Err(error) if is_closed(&error) => Ok(()),
            Err(error) => Err(into_io(error)),
        }
    }

    /// A sender for this WebSocket, to send it messages from other threads.
    pub fn sender(&self) -> WsSender {
        self.sender.clone()
    }

    /// Whether a Close has been sent or received: nothing more can be
    /// sent.
    pub fn is_closing(&self) -> bool {
        !self.ctx.can_write()
    }

    /// The connection's [id](Connection::id).
    pub fn id(&self) -> u64 {
        self.conn.id()
    }

    /// The client's address.
    pub fn peer_addr(&self) -> &Addr {
        self.conn.peer_addr()
    }

    /// Whether the server is shutting down.
    pub fn is_shutting_down(&self) -> bool {
        self.conn.is_shutting_down()
    }
}

impl fmt::Debug for WebSocket<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket")
            .field("id", &self.conn.id())
            .field("closing", &self.is_closing())
            .finish_non_exhaustive()
    }
}

/// Sends messages to one WebSocket client from any thread; made by
/// [`Request::websocket`](super::Request::websocket), or by
/// [`WebSocket::sender`].
///
/// It is `Clone`, `Send` and `Sync`: keep it wherever messages come from
/// (a chat room's list of members). Sending never blocks: the message is
/// framed here and pushed to the connection, which sends it while it waits,
/// holding no worker. Once the WebSocket is closing or closed, every call
/// returns [`PushError::Closed`]: drop the sender then.
///
/// Messages sent before the handler has returned the `101` wait for it (up
/// to 64 KiB of them). Messages pile up to
/// [`Builder::max_pushed_output`](crate::Builder::max_pushed_output) for a
/// client that reads slowly ([`PushError::Full`] beyond); a client that
/// takes nothing within the server's
/// [write timeout](crate::Builder::write_timeout) is disconnected.
#[derive(Clone)]
pub struct WsSender {
    gate: Arc<Gate>,
}

impl WsSender {
    /// Sends `message` to the client.
    ///
    /// # Errors
    ///
    /// [`PushError::Closed`] once the WebSocket is closing or closed;
    /// [`PushError::Full`] if the client is too far behind (the message is
    /// not sent).
    pub fn send(&self, message: impl Into<Message>) -> Result<(), PushError> {
        let (opcode, data) = match message.into() {
            Message::Text(text) => (OpData::Text, text.into_bytes()),
            Message::Binary(data) => (OpData::Binary, data),
        };
        // A server's frames are not masked.
        let frame = Frame::message(data, OpCode::Data(opcode), true);
        let mut bytes = Vec::with_capacity(frame.len());
        if frame.format(&mut bytes).is_err() {
            // Writing to a `Vec` cannot fail; were it to, nothing is sent.
            return Err(PushError::Closed);
        }
        self.gate.push(&bytes)
    }

    /// Whether the WebSocket is closing or closed: messages sent now
    /// return [`PushError::Closed`].
    pub fn is_closed(&self) -> bool {
        self.gate.is_closed()
    }
}

impl fmt::Debug for WsSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsSender")
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// The handshake of `req` (RFC 6455 section 4.2): the `101` that accepts
/// it and switches the connection to a WebSocket served by `handler`, and
/// a sender to the WebSocket; or the refusal to answer with.
pub(crate) fn upgrade<H: WebSocketHandler>(
    req: &Request<'_>,
    config: WebSocketConfig,
    handler: H,
) -> Result<(Response, WsSender), Response> {
    let accept = handshake(req)?;
    let gate = Gate::new();
    let sender = WsSender {
        gate: Arc::clone(&gate),
    };
    let session = Session {
        ctx: WebSocketContext::new(Role::Server, Some(config.tungstenite())),
        handler,
        sender: sender.clone(),
        state: State::Open,
        error: None,
    };
    let switch = Switch::new(Kind::Upgrade, gate, Box::new(session), config.goodbye);
    let response = Response::new(101)
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Accept", accept)
        .switch(switch);
    Ok((response, sender))
}

/// Checks the handshake; returns the `Sec-WebSocket-Accept` value, or the
/// refusal: `426 Upgrade Required` to a request that does not ask for a
/// WebSocket, or for another version than 13; `400` to a malformed one.
fn handshake(req: &Request<'_>) -> Result<String, Response> {
    let refuse = |status: u16, why: &str| Response::text(format!("{why}\n")).with_status(status);
    let required = |why: &str| {
        refuse(426, why)
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
    };
    let headers = req.headers();
    if !headers.lists("upgrade", "websocket") || !headers.lists("connection", "upgrade") {
        return Err(required(
            "this is a WebSocket endpoint: ask to upgrade to websocket",
        ));
    }
    if req.method() != "GET" || req.version() != Version::Http11 {
        return Err(refuse(400, "a WebSocket handshake is an HTTP/1.1 GET"));
    }
    if headers.get("sec-websocket-version") != Some("13") {
        return Err(required("only WebSocket version 13 is spoken here"));
    }
    let Some(key) = headers.get("sec-websocket-key").filter(|key| is_key(key)) else {
        return Err(refuse(400, "missing or malformed Sec-WebSocket-Key"));
    };
    if req.has_body() {
        // Its bytes would be read as frames.
        return Err(refuse(400, "a WebSocket handshake has no body"));
    }
    Ok(derive_accept_key(key.as_bytes()))
}

/// Whether `key` is 16 bytes in base64, as `Sec-WebSocket-Key` must be.
fn is_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    bytes.len() == 24
        && bytes.ends_with(b"==")
        && bytes[..22]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Whether `error` only says that the WebSocket is closing or closed.
fn is_closed(error: &WsError) -> bool {
    matches!(
        error,
        WsError::ConnectionClosed
            | WsError::AlreadyClosed
            | WsError::Protocol(ProtocolError::SendAfterClosing)
    )
}

fn into_io(error: WsError) -> io::Error {
    match error {
        WsError::Io(error) => error,
        other => io::Error::other(other.to_string()),
    }
}

/// The connection as tungstenite's stream, for one call: reads never block,
/// writes are queued.
struct Wire<'c>(&'c mut Connection);

impl Read for Wire<'_> {
    /// What is buffered; or what one nonblocking read of the socket brings
    /// (`Ok(0)`: the client closed); or `WouldBlock`: nothing has arrived.
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.0.buffered().is_empty() {
            match self.0.receive(READ_SIZE) {
                Ok(0) => return Ok(0),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let buffered = self.0.buffered();
        let n = buffered.len().min(out.len());
        out[..n].copy_from_slice(&buffered[..n]);
        self.0.consume(n);
        Ok(n)
    }
}

impl Write for Wire<'_> {
    /// Queued on the connection, which sends it as the socket takes it
    /// (within the write timeout): never blocks, never fails.
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.queue_timed(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The protocol of a connection switched to WebSocket.
struct Session<H> {
    ctx: WebSocketContext,
    handler: H,
    sender: WsSender,
    state: State,
    /// What ended the conversation on our side (a handler's error): the
    /// connection ends with it once the linger is over.
    error: Option<io::Error>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Messages are served.
    Open,
    /// Closed for a fault: its Close is being sent; the next turn comes
    /// once it is.
    Failing,
    /// Its end of the stream is sent: what the client still sends is
    /// thrown away until it closes or [`LINGER`] passes.
    Lingering,
}

impl<H: WebSocketHandler> Protocol for Session<H> {
    fn turn(&mut self, conn: &mut Connection) -> io::Result<Next> {
        match self.state {
            State::Open => {}
            State::Failing => {
                // Its Close is sent: our end of the stream (over TLS,
                // `close_notify` first), then read until the client's.
                conn.close_notify();
                let _ = conn.stream().shutdown(Shutdown::Write);
                conn.set_deadline(Instant::now().checked_add(LINGER));
                self.state = State::Lingering;
                return self.linger(conn);
            }
            State::Lingering => return self.linger(conn),
        }
        if conn.is_goodbye() && self.ctx.can_write() {
            // What was pushed goes first, then the Close; then the client's
            // answer is waited for.
            self.sender.gate.shut(conn);
            let going_away = CloseFrame {
                code: CloseCode::Away,
                reason: "going away".into(),
            };
            if let Err(error) = self.ctx.close(&mut Wire(conn), Some(going_away)) {
                return self.stopped(conn, error);
            }
        }
        // Every message that has arrived, until the socket has no more.
        loop {
            let message = match self.ctx.read(&mut Wire(conn)) {
                Ok(tungstenite::Message::Text(text)) => Message::Text(text.as_str().to_string()),
                Ok(tungstenite::Message::Binary(data)) => Message::Binary(Vec::from(data)),
                Ok(tungstenite::Message::Close(_)) => {
                    // tungstenite has queued the answer (or this is the
                    // answer to ours): the next read sends it and says the
                    // conversation is over. What was pushed goes first.
                    self.sender.gate.shut(conn);
                    continue;
                }
                // A ping: the next read sends the pong.
                Ok(_) => continue,
                Err(error) => return self.stopped(conn, error),
            };
            let mut ws = WebSocket {
                conn: &mut *conn,
                ctx: &mut self.ctx,
                sender: &self.sender,
            };
            if let Err(error) = self.handler.message(&mut ws, message) {
                return Ok(self.fail(conn, CloseCode::Error, "internal error", Some(error)));
            }
        }
    }
}

impl<H> Session<H> {
    /// What a read's `error` means for the connection.
    fn stopped(&mut self, conn: &mut Connection, error: WsError) -> io::Result<Next> {
        match error {
            // Everything that arrived is served, the answers queued.
            WsError::Io(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Next::Wait),
            // The closing handshake is complete (or the client left
            // without one): the server closes first.
            WsError::ConnectionClosed
            | WsError::AlreadyClosed
            | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                self.sender.gate.shut(conn);
                Ok(Next::Close)
            }
            WsError::Io(e) => Err(e),
            WsError::Capacity(_) => Ok(self.fail(conn, CloseCode::Size, "message too big", None)),
            WsError::Utf8(_) => Ok(self.fail(conn, CloseCode::Invalid, "invalid UTF-8", None)),
            WsError::Protocol(_) => {
                Ok(self.fail(conn, CloseCode::Protocol, "protocol error", None))
            }
            other => {
                let error = io::Error::other(other.to_string());
                Ok(self.fail(conn, CloseCode::Error, "internal error", Some(error)))
            }
        }
    }

    /// Closes for a fault: sends a Close with `code` (unless one was sent
    /// or received already), and asks for a turn once it is sent, to end
    /// the stream politely (see [`State::Failing`]).
    fn fail(
        &mut self,
        conn: &mut Connection,
        code: CloseCode,
        reason: &str,
        error: Option<io::Error>,
    ) -> Next {
        self.sender.gate.shut(conn);
        self.error = error;
        if self.ctx.can_write() {
            // Framed here: tungstenite's state may be broken by the fault.
            let close = Frame::close(Some(CloseFrame {
                code,
                reason: reason.into(),
            }));
            let mut bytes = Vec::new();
            if close.format(&mut bytes).is_ok() {
                conn.queue_timed(&bytes);
            }
        }
        self.state = State::Failing;
        // The turn comes after the output queued before it has gone.
        match conn.pusher().wake() {
            Ok(()) => Next::Wait,
            Err(_) => Next::Close,
        }
    }

    /// Throws away what the client sends, until it closes or the linger
    /// deadline passes; then the connection ends.
    fn linger(&mut self, conn: &mut Connection) -> io::Result<Next> {
        // A few reads a turn: a client that keeps sending does not keep
        // the worker.
        for _ in 0..16 {
            let buffered = conn.buffered().len();
            conn.consume(buffered);
            if conn.is_past_deadline() {
                return self.end();
            }
            match conn.receive(READ_SIZE) {
                Ok(0) => return self.end(),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Next::Wait),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.end(),
            }
        }
        // More is coming: the next turn takes it.
        let buffered = conn.buffered().len();
        conn.consume(buffered);
        Ok(Next::Wait)
    }

    /// The end of a connection closed for a fault: a handler's error ends
    /// it as failed, the client's fault as completed (it was answered).
    fn end(&mut self) -> io::Result<Next> {
        match self.error.take() {
            Some(error) => Err(error),
            None => Ok(Next::Close),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sixteen_bytes_of_base64() {
        assert!(is_key("dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!is_key("dGhlIHNhbXBsZSBub25jZQ="));
        assert!(!is_key("dGhlIHNhbXBsZSBub25j*Q=="));
        assert!(!is_key(""));
        assert_eq!(
            derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn reasons_are_cut_at_a_character_boundary() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("hello", 123), "hello");
    }

    #[test]
    fn the_defaults() {
        let config = WebSocketConfig::default();
        assert_eq!(config.max_message, 1024 * 1024);
        assert_eq!(config.max_frame, 256 * 1024);
        assert!(config.goodbye);
    }
}
