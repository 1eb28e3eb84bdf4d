//! Server-sent events: a response whose body is a stream of
//! [`ServerEvent`]s pushed from any thread through an [`EventSender`],
//! while the connection waits between them holding no worker.
//!
//! [`Request::event_stream`](super::Request::event_stream) answers the
//! head (`200`, `text/event-stream`); once it is sent, the connection
//! switches to the [`EventStream`] protocol below, which has nothing to do
//! but notice the client leaving, and say goodbye at shutdown. The body is
//! `chunked` for HTTP/1.1 (an event, or a comment, per chunk; the last
//! chunk ends the stream) and delimited by the close for HTTP/1.0.

use std::fmt;
use std::io::{self, BufRead};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::takeover::{Gate, Kind, Switch};
use super::Response;
use crate::{Connection, Next, Protocol, PushError};

/// One server-sent event: its data, and optionally a type, an id and a
/// reconnection time, as the [HTML standard] defines them.
///
/// ```
/// use std::time::Duration;
///
/// use graceful_server::http::ServerEvent;
///
/// let event = ServerEvent::data("line one\nline two")
///     .event("news")
///     .id("42")
///     .retry(Duration::from_secs(3));
/// assert_eq!(
///     event.to_bytes(),
///     b"event: news\nid: 42\nretry: 3000\ndata: line one\ndata: line two\n\n"
/// );
/// ```
///
/// [HTML standard]: https://html.spec.whatwg.org/multipage/server-sent-events.html
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerEvent {
    data: String,
    event: Option<String>,
    id: Option<String>,
    retry: Option<Duration>,
}

impl ServerEvent {
    /// An event carrying `data`, of the default type (`message`, as a
    /// browser's `EventSource` sees it). Data of several lines is sent as
    /// several `data:` lines, and arrives as it was given, line breaks
    /// included (CR LF and CR arrive as LF). An event with empty data is
    /// not dispatched by browsers (it can still set the id or the
    /// reconnection time).
    pub fn data(data: impl Into<String>) -> ServerEvent {
        ServerEvent {
            data: data.into(),
            ..ServerEvent::default()
        }
    }

    /// Sets the event's type (`addEventListener(name, ..)` in a browser).
    /// By default it has none: the client sees a `message`. Line breaks in
    /// `name` are removed.
    pub fn event(mut self, name: impl Into<String>) -> ServerEvent {
        self.event = Some(name.into());
        self
    }

    /// Sets the event's id, which a reconnecting client sends back in
    /// `Last-Event-ID`. By default it has none. Line breaks and NUL in `id`
    /// are removed.
    pub fn id(mut self, id: impl Into<String>) -> ServerEvent {
        self.id = Some(id.into());
        self
    }

    /// Tells the client how long to wait before reconnecting once the
    /// stream ends, in whole milliseconds. By default the event says
    /// nothing (browsers wait a few seconds).
    pub fn retry(mut self, after: Duration) -> ServerEvent {
        self.retry = Some(after);
        self
    }

    /// The event as it is sent: its fields, one a line, and the empty line
    /// that ends it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(self.data.len() + 16);
        if let Some(event) = &self.event {
            field(&mut out, "event", event, |c| c == '\r' || c == '\n');
        }
        if let Some(id) = &self.id {
            field(&mut out, "id", id, |c| c == '\r' || c == '\n' || c == '\0');
        }
        if let Some(retry) = self.retry {
            out.push_str("retry: ");
            out.push_str(&retry.as_millis().to_string());
            out.push('\n');
        }
        if !self.data.is_empty() {
            for line in lines(&self.data) {
                out.push_str("data: ");
                out.push_str(line);
                out.push('\n');
            }
        }
        out.push('\n');
        out.into_bytes()
    }
}

/// `name: value\n`, without the characters `drop` says.
fn field(out: &mut String, name: &str, value: &str, drop: impl Fn(char) -> bool) {
    out.push_str(name);
    out.push_str(": ");
    out.extend(value.chars().filter(|&c| !drop(c)));
    out.push('\n');
}

/// The lines of `text`, split at CR LF, CR or LF, as an event stream's
/// parser splits them.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let text = rest?;
        match text.find(['\r', '\n']) {
            Some(at) => {
                let skip = if text[at..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&text[at + skip..]);
                Some(&text[..at])
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
}

/// Sends events to one client of an event stream, from any thread; made by
/// [`Request::event_stream`](super::Request::event_stream).
///
/// It is `Clone`, `Send` and `Sync`: keep it wherever the events come from
/// (a list of subscribers that a ticker or a producer pushes to). Sending
/// never blocks: the event is queued for the connection, which sends it
/// while it waits, holding no worker. Once the client has gone (or the
/// stream has ended), every call returns [`PushError::Closed`]: drop the
/// sender then.
///
/// Events sent before the handler has returned the response wait for its
/// head (up to 64 KiB of them). Events pile up to
/// [`Builder::max_pushed_output`](crate::Builder::max_pushed_output) for a
/// client that reads slowly ([`PushError::Full`] beyond); a client that
/// takes nothing within the server's
/// [write timeout](crate::Builder::write_timeout) is disconnected.
#[derive(Clone)]
pub struct EventSender {
    shared: Arc<Shared>,
}

/// What an event stream's senders and its protocol share.
struct Shared {
    gate: Arc<Gate>,
    /// Each event is one chunk (HTTP/1.1), or sent as it is (HTTP/1.0).
    chunked: bool,
    /// The last event, for the goodbye turn.
    goodbye: Mutex<Option<ServerEvent>>,
}

impl Shared {
    /// `bytes` framed as the body's framing says.
    fn frame(&self, bytes: &[u8]) -> Vec<u8> {
        if !self.chunked {
            return bytes.to_vec();
        }
        let mut chunk = format!("{:X}\r\n", bytes.len()).into_bytes();
        chunk.extend_from_slice(bytes);
        chunk.extend_from_slice(b"\r\n");
        chunk
    }
}

impl EventSender {
    /// Sends `event` to the client.
    ///
    /// # Errors
    ///
    /// [`PushError::Closed`] once the client has gone or the stream has
    /// ended; [`PushError::Full`] if the client is too far behind (the
    /// event is not sent: drop it, or send it again later).
    pub fn send(&self, event: &ServerEvent) -> Result<(), PushError> {
        self.push(&event.to_bytes())
    }

    /// Sends a comment, which clients ignore: a keep-alive that stops
    /// proxies from closing a quiet stream. Its lines become comment lines.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn send_comment(&self, comment: &str) -> Result<(), PushError> {
        let mut text = String::with_capacity(comment.len() + 4);
        for line in lines(comment) {
            text.push_str(": ");
            text.push_str(line);
            text.push('\n');
        }
        text.push('\n');
        self.push(text.as_bytes())
    }

    fn push(&self, bytes: &[u8]) -> Result<(), PushError> {
        self.shared.gate.push(&self.shared.frame(bytes))
    }

    /// Sets the event sent last when the server shuts down (before the
    /// stream ends and the connection closes), or none. By default there
    /// is none: the stream just ends. Set it when the stream starts, or
    /// change it at any time.
    ///
    /// A browser's `EventSource` reconnects after the stream ends; a
    /// goodbye event with a [`retry`](ServerEvent::retry) tells it how long
    /// to wait (for the next server to be up), or its type can tell your
    /// page to stop.
    pub fn set_goodbye(&self, event: Option<ServerEvent>) {
        *self
            .shared
            .goodbye
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = event;
    }

    /// Ends the stream: the events sent before go out, then the end of the
    /// body, and the connection closes. Nothing more can be sent.
    ///
    /// # Errors
    ///
    /// [`PushError::Closed`] if it has ended already or the client has
    /// gone.
    pub fn close(&self) -> Result<(), PushError> {
        self.shared.gate.end()
    }

    /// Whether the stream has ended: the client has gone, the server shut
    /// it, or [`close`](Self::close) was called. Events sent now return
    /// [`PushError::Closed`].
    pub fn is_closed(&self) -> bool {
        self.shared.gate.is_closed()
    }
}

impl fmt::Debug for EventSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSender")
            .field("chunked", &self.shared.chunked)
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// The response that starts an event stream, and its first sender (see
/// [`Request::event_stream`](super::Request::event_stream)).
pub(crate) fn start(chunked: bool) -> (Response, EventSender) {
    let shared = Arc::new(Shared {
        gate: Gate::new(),
        chunked,
        goodbye: Mutex::new(None),
    });
    let protocol = EventStream {
        shared: Arc::clone(&shared),
    };
    let switch = Switch::new(
        Kind::Events,
        Arc::clone(&shared.gate),
        Box::new(protocol),
        true,
    );
    let response = Response::new(200)
        .header("Content-Type", "text/event-stream")
        .header("Cache-Control", "no-cache")
        .switch(switch);
    (response, EventSender { shared })
}

/// The protocol of a connection that streams events: the events come
/// through its senders, so its turns only notice the client leaving, and
/// end the stream when asked to, or at shutdown.
struct EventStream {
    shared: Arc<Shared>,
}

/// How much input a turn takes at most: a client of an event stream sends
/// nothing, and what it sends anyway is thrown away.
const DISCARD: usize = 4096;

impl Protocol for EventStream {
    fn turn(&mut self, conn: &mut Connection) -> io::Result<Next> {
        if conn.is_goodbye() {
            let goodbye = self
                .shared
                .goodbye
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            return Ok(self.end(conn, goodbye.as_ref()));
        }
        if self.shared.gate.is_ending() {
            return Ok(self.end(conn, None));
        }
        // Input: only the client's end of file is expected. Anything else
        // (a request pipelined behind this one) is thrown away.
        let buffered = conn.buffered().len();
        conn.consume(buffered);
        match conn.receive(DISCARD) {
            Ok(0) => {
                self.shared.gate.shut(conn);
                Ok(Next::Close)
            }
            Ok(n) => {
                conn.consume(n);
                Ok(Next::Wait)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Next::Wait),
            Err(e) => Err(e),
        }
    }
}

impl EventStream {
    /// Ends the stream: what was pushed goes first, then `last` (if any)
    /// and the end of the body; the connection closes once they are sent.
    fn end(&self, conn: &mut Connection, last: Option<&ServerEvent>) -> Next {
        self.shared.gate.shut(conn);
        let mut tail = match last {
            Some(event) => self.shared.frame(&event.to_bytes()),
            None => Vec::new(),
        };
        if self.shared.chunked {
            tail.extend_from_slice(b"0\r\n\r\n");
        }
        conn.queue_timed(&tail);
        Next::Close
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_lines_split_at_every_line_break() {
        let event = ServerEvent::data("a\r\nb\rc\nd\n");
        assert_eq!(
            String::from_utf8_lossy(&event.to_bytes()),
            "data: a\ndata: b\ndata: c\ndata: d\ndata: \n\n"
        );
        assert_eq!(ServerEvent::data("").to_bytes(), b"\n");
        assert_eq!(ServerEvent::data(" x").to_bytes(), b"data:  x\n\n");
    }

    #[test]
    fn names_and_ids_cannot_break_the_stream() {
        let event = ServerEvent::data("d").event("a\nb\r").id("1\n2\0");
        assert_eq!(event.to_bytes(), b"event: ab\nid: 12\ndata: d\n\n");
    }

    #[test]
    fn chunks_frame_each_event() {
        let shared = Shared {
            gate: Gate::new(),
            chunked: true,
            goodbye: Mutex::new(None),
        };
        assert_eq!(shared.frame(b"data: x\n\n"), b"9\r\ndata: x\n\n\r\n");
        let plain = Shared {
            chunked: false,
            ..shared
        };
        assert_eq!(plain.frame(b"data: x\n\n"), b"data: x\n\n");
    }

    #[test]
    fn comments_are_comment_lines() {
        let (_response, sender) = start(false);
        assert_eq!(sender.send_comment("keep\nalive"), Ok(()));
        assert!(!sender.is_closed());
    }
}
