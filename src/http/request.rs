//! What a handler gets: the [`Request`], its [`Headers`] and its
//! [`Version`].
//!
//! Everything but the body is read and checked before the handler is
//! called, so a handler never sees a malformed head. The body is left on
//! the connection and read through [`Request::body`], so that a handler
//! that does not need it never waits for it.

use std::cell::Cell;
use std::fmt;
use std::io::{self, Read};

use crate::Addr;

use super::body::Body;
use super::events::{self, EventSender};
use super::response::Response;
#[cfg(feature = "websocket")]
use super::websocket::{self, WebSocketConfig, WebSocketHandler, WsSender};

/// The HTTP version of a request. Responses always say `HTTP/1.1`, as
/// RFC 9110 (section 6.2) asks of a server that implements it.
///
/// ```
/// use graceful_server::http::{Request, Response, Version};
///
/// fn hello(req: &mut Request) -> Response {
///     match req.version() {
///         Version::Http10 => Response::text("Hello, old client!"),
///         Version::Http11 => Response::text("Hello!"),
///     }
/// }
///
/// assert_eq!(Version::Http11.to_string(), "HTTP/1.1");
/// # let _ = graceful_server::http::handler(hello);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// `HTTP/1.0`: the connection closes after the response unless the
    /// client asked for `Connection: keep-alive`.
    Http10,
    /// `HTTP/1.1`: the connection stays open unless either side says
    /// `Connection: close`.
    Http11,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        })
    }
}

/// The header fields of a request, in the order received. Names are matched
/// without regard to case, as HTTP requires.
///
/// Values have their surrounding spaces and tabs removed. They are bytes on
/// the wire and nearly always ASCII: [`get`](Headers::get) gives the text
/// of a value that is valid UTF-8, [`get_bytes`](Headers::get_bytes) the
/// bytes of any.
///
/// ```
/// use graceful_server::http::{Request, Response};
///
/// // Answers with the request's fields, one per line.
/// fn show_headers(req: &mut Request) -> Response {
///     let headers = req.headers();
///     // `Accept` may be sent several times: look at every one.
///     let json = headers.get_all("accept").any(|value| value.contains("/json"));
///     let mut text = format!("{} fields, json: {json}\n", headers.len());
///     for (name, value) in headers.iter() {
///         text += &format!("{name}: {}\n", String::from_utf8_lossy(value));
///     }
///     Response::text(text)
/// }
/// # let _ = graceful_server::http::handler(show_headers);
/// ```
//
// The head is copied into two buffers, so that a request costs the same
// three (text, values, and the table of where each field is) however many
// fields it has, rather than two per field; a worker reuses them from one
// request to the next. The request line's method and target come first in
// the text (the [`Request`] reads them from here), then the fields' names;
// the values are bytes, checked for UTF-8 only when asked for as text.
#[derive(Clone, Default)]
pub struct Headers {
    /// The method, the target, then each field's name.
    text: String,
    /// Where the method ends in `text`; the target follows it.
    method_end: usize,
    /// Where the target ends in `text`; the names follow it.
    target_end: usize,
    /// Each field's value, one after the other.
    values: Vec<u8>,
    /// Where each field is, in the order received.
    fields: Vec<Field>,
}

/// The most a thread keeps of a request's buffers for its next request
/// (bytes of text or values, fields); larger ones are freed with their
/// request.
const SPARE_BYTES: usize = 16 * 1024;
const SPARE_FIELDS: usize = 128;

/// A [`Headers`]' buffers: text, values, fields.
type Buffers = (String, Vec<u8>, Vec<Field>);

thread_local! {
    /// The buffers of this thread's last request, empty, for
    /// its next: a worker allocates them once, not once per request.
    static SPARE: Cell<Buffers> = const { Cell::new((String::new(), Vec::new(), Vec::new())) };
}

/// Where a field's name and value are in a [`Headers`]' buffers.
#[derive(Clone, Copy, Debug)]
struct Field {
    /// In `text`.
    name: (usize, usize),
    /// In `values`.
    value: (usize, usize),
}

impl Headers {
    /// Headers for a request with `method` and `target`, with room for a
    /// head of `length` bytes and `fields` fields, so that adding them
    /// allocates no more.
    ///
    /// The buffers are the thread's spare ones, if it has them (see
    /// [`recycle`](Self::recycle)).
    pub(crate) fn with_line(method: &str, target: &str, length: usize, fields: usize) -> Headers {
        // `try_with` fails only while the thread is being torn down: then
        // new buffers do.
        let (mut text, mut values, mut table) = SPARE.try_with(Cell::take).unwrap_or_default();
        // Each part of the head fits in its length.
        text.reserve(length);
        values.reserve(length);
        table.reserve(fields);
        text.push_str(method);
        text.push_str(target);
        Headers {
            text,
            method_end: method.len(),
            target_end: method.len() + target.len(),
            values,
            fields: table,
        }
    }

    /// Gives the buffers to the thread for its next request, unless they
    /// are too large to keep.
    pub(crate) fn recycle(self) {
        let Headers {
            mut text,
            mut values,
            fields: mut table,
            ..
        } = self;
        let small = text.capacity() <= SPARE_BYTES
            && values.capacity() <= SPARE_BYTES
            && table.capacity() <= SPARE_FIELDS;
        if small {
            text.clear();
            values.clear();
            table.clear();
            let _ = SPARE.try_with(|spare| spare.set((text, values, table)));
        }
    }

    /// Adds a field at the end; the value's surrounding whitespace is
    /// removed.
    pub(crate) fn push(&mut self, name: &str, value: &[u8]) {
        let name_start = self.text.len();
        self.text.push_str(name);
        let value_start = self.values.len();
        self.values.extend_from_slice(trim_whitespace(value));
        self.fields.push(Field {
            name: (name_start, self.text.len()),
            value: (value_start, self.values.len()),
        });
    }

    /// The request line's method.
    pub(crate) fn method(&self) -> &str {
        &self.text[..self.method_end]
    }

    /// The request line's target.
    pub(crate) fn target(&self) -> &str {
        &self.text[self.method_end..self.target_end]
    }

    fn name(&self, field: &Field) -> &str {
        &self.text[field.name.0..field.name.1]
    }

    /// A field's value, if it is UTF-8.
    fn text_value(&self, field: &Field) -> Option<&str> {
        std::str::from_utf8(self.value(field)).ok()
    }

    fn value(&self, field: &Field) -> &[u8] {
        &self.values[field.value.0..field.value.1]
    }

    /// The fields called `name`, in order.
    fn named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s Field> + 's {
        self.fields.iter().filter(move |field| {
            // The length first: most fields are not the one asked for.
            field.name.1 - field.name.0 == name.len() && self.name(field).eq_ignore_ascii_case(name)
        })
    }

    /// The value of the first field called `name`, or `None` if there is
    /// none or its value is not valid UTF-8.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.named(name)
            .next()
            .and_then(|field| self.text_value(field))
    }

    /// The value of the first field called `name`, as bytes.
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        self.named(name).next().map(|field| self.value(field))
    }

    /// The values of every field called `name`, in order, skipping those that
    /// are not valid UTF-8. Fields that may repeat, such as `Accept` or
    /// `Cookie`, need this.
    pub fn get_all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.named(name)
            .filter_map(move |field| self.text_value(field))
    }

    /// The values of every field called `name`, in order, as bytes.
    pub fn get_all_bytes<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s [u8]> + 's {
        self.named(name).map(move |field| self.value(field))
    }

    /// Whether there is a field called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.named(name).next().is_some()
    }

    /// Every field as (name, value), in the order received, names as sent.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.fields
            .iter()
            .map(move |field| (self.name(field), self.value(field)))
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Whether a field called `name` lists `token` (e.g. `Connection:
    /// keep-alive, Upgrade` lists `upgrade`), in any case.
    pub(crate) fn lists(&self, name: &str, token: &str) -> bool {
        self.get_all(name)
            .flat_map(|value| value.split(','))
            .any(|item| item.trim().eq_ignore_ascii_case(token))
    }
}

/// Equal when they hold the same fields in the same order, names as sent.
impl PartialEq for Headers {
    fn eq(&self, other: &Headers) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

/// The fields, as (name, value bytes) pairs in order.
impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Fields<'a>(&'a Headers);
        impl fmt::Debug for Fields<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list().entries(self.0.iter()).finish()
            }
        }
        f.debug_struct("Headers")
            .field("fields", &Fields(self))
            .finish()
    }
}

fn trim_whitespace(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// An HTTP request, as the handler gets it.
///
/// The head (method, target, version, headers) has been read and checked;
/// the body is still on the connection, and is read through
/// [`body`](Request::body) or [`read_body`](Request::read_body). A handler
/// that does not read it need not: what it leaves is read and thrown away
/// once the handler returns if it is small (up to 64 KiB), and the
/// connection closed after the response if not.
///
/// ```
/// use graceful_server::http::{Request, Response};
///
/// fn route(req: &mut Request) -> Response {
///     match (req.method(), req.path()) {
///         ("GET" | "HEAD", "/") => Response::text("Hello, world!"),
///         ("GET", "/search") => Response::text(format!("query: {:?}", req.query())),
///         ("POST", "/echo") => match req.read_body() {
///             Ok(body) => Response::new(200).body(body),
///             // The layer answers a body that was too large or malformed
///             // with 413 or 400 itself, whatever is returned here.
///             Err(_) => Response::new(400),
///         },
///         _ => Response::text("not found").with_status(404),
///     }
/// }
/// ```
pub struct Request<'a> {
    version: Version,
    /// The fields, and the request line's method and target, which are
    /// kept in the same buffer.
    headers: Headers,
    peer: Addr,
    body: Body<'a>,
}

impl<'a> Request<'a> {
    /// A request with the method and target that `headers` hold.
    pub(crate) fn new(
        version: Version,
        headers: Headers,
        peer: Addr,
        body: Body<'a>,
    ) -> Request<'a> {
        Request {
            version,
            headers,
            peer,
            body,
        }
    }

    /// Takes the head out (the fields, with the method and the target), for
    /// the request's event once the request itself is done with.
    pub(crate) fn take_head(&mut self) -> Headers {
        std::mem::take(&mut self.headers)
    }

    /// The method, as sent (methods are case-sensitive): `"GET"`, `"POST"`..
    pub fn method(&self) -> &str {
        self.headers.method()
    }

    /// The request target exactly as sent: usually a path and query
    /// (`/search?q=rust`), an absolute URI when the client talks to a proxy
    /// (`http://example.com/search?q=rust`), `*` for `OPTIONS *`, or
    /// `host:port` for `CONNECT`.
    pub fn target(&self) -> &str {
        self.headers.target()
    }

    /// The path of the target, without the query, not percent-decoded:
    /// `/search` for both `/search?q=rust` and
    /// `http://example.com/search?q=rust`, `/` for `http://example.com`. For
    /// the other forms (`*`, `host:port`) it is the whole target.
    pub fn path(&self) -> &str {
        split_target(self.target()).0
    }

    /// The query of the target (after `?`), not percent-decoded, or `None` if
    /// the target has no `?`. [`query_pairs`](Self::query_pairs) decodes it.
    pub fn query(&self) -> Option<&str> {
        split_target(self.target()).1
    }

    /// The HTTP version of the request.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The header fields.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The value of the first header field called `name` (in any case), if
    /// valid UTF-8: a shortcut for [`headers().get(name)`](Headers::get).
    ///
    /// ```
    /// use graceful_server::http::{Request, Response};
    ///
    /// fn hello(req: &mut Request) -> Response {
    ///     let agent = req.header("user-agent").unwrap_or("stranger"); // any case
    ///     Response::text(format!("Hello, {agent}!"))
    /// }
    /// # let _ = graceful_server::http::handler(hello);
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The client's address.
    pub fn peer_addr(&self) -> &Addr {
        &self.peer
    }

    /// Whether the server has started to shut down. The response will say
    /// `Connection: close` whatever the handler does; a readiness check
    /// should fail from now on (see [`readiness`](super::readiness)).
    pub fn is_shutting_down(&self) -> bool {
        self.body.is_shutting_down()
    }

    /// The body, to read with [`Read`]. It ends where the request's body
    /// ends (it never reads into the next request), decodes `chunked`
    /// transfer coding, and fails once more than
    /// [`max_body`](super::Limits::max_body) bytes arrive. A client that sent
    /// `Expect: 100-continue` is told to go on at the first read, and only
    /// then.
    ///
    /// ```
    /// use std::io::{self, Read, Write};
    /// use std::net::TcpStream;
    /// use std::time::Duration;
    ///
    /// use graceful_server::{http::{self, Request, Response}, Server};
    ///
    /// // Counts the bytes of an upload without holding it in memory.
    /// fn count(req: &mut Request) -> Response {
    ///     match io::copy(req.body(), &mut io::sink()) {
    ///         Ok(n) => Response::text(format!("{n} bytes")),
    ///         Err(_) => Response::new(400), // the layer sends 400, 408 or 413 itself
    ///     }
    /// }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let running = Server::builder("127.0.0.1:0").build()?.spawn(http::handler(count))?;
    /// let mut client = TcpStream::connect(running.local_addr())?;
    /// client.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// client.set_write_timeout(Some(Duration::from_secs(5)))?;
    /// client.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\
    ///                    Connection: close\r\n\r\nhello")?;
    /// let mut answer = String::new();
    /// client.read_to_string(&mut answer)?;
    /// assert!(answer.ends_with("\r\n\r\n5 bytes"), "{answer}");
    ///
    /// running.shutdown_handle().shutdown();
    /// running.join()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn body(&mut self) -> &mut Body<'a> {
        &mut self.body
    }

    /// Answers with an event stream (server-sent events): returns the
    /// response to return, and a sender through which events reach the
    /// client from any thread, while its connection waits without a
    /// worker.
    ///
    /// The response is `200` with `Content-Type: text/event-stream` and
    /// `Cache-Control: no-cache` (add fields to it as to any other). Once
    /// its head is sent, the connection belongs to the stream: its body is
    /// the events, `chunked` for an HTTP/1.1 client, delimited by the close
    /// for HTTP/1.0. A response to `HEAD`, or another response returned in
    /// its place, starts no stream (the sender says
    /// [`Closed`](crate::PushError::Closed)).
    ///
    /// The stream ends when the client leaves (its sender then says
    /// [`Closed`](crate::PushError::Closed)), when you
    /// [close](EventSender::close) it, or when the server shuts down: the
    /// connection then gets one last turn, which sends the
    /// [goodbye event](EventSender::set_goodbye), if any, and the end of
    /// the body, and closes; the drain does not wait for the client.
    ///
    /// ```
    /// use std::io::{BufRead, BufReader, Write};
    /// use std::net::TcpStream;
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    ///
    /// use graceful_server::http::{self, EventSender, Response, ServerEvent};
    /// use graceful_server::Server;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let subscribers: Arc<Mutex<Vec<EventSender>>> = Arc::default();
    /// let list = Arc::clone(&subscribers);
    /// let handler = http::handler(move |req| match req.path() {
    ///     "/events" => {
    ///         let (response, events) = req.event_stream();
    ///         events.set_goodbye(Some(ServerEvent::data("bye").event("goodbye")));
    ///         list.lock().unwrap().push(events);
    ///         response
    ///     }
    ///     _ => Response::text("not found").with_status(404),
    /// });
    /// let running = Server::builder("127.0.0.1:0").build()?.spawn(handler)?;
    ///
    /// let mut client = TcpStream::connect(running.local_addr())?;
    /// client.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// client.write_all(b"GET /events HTTP/1.0\r\n\r\n")?;
    /// let mut client = BufReader::new(client);
    /// let mut line = String::new();
    /// while line != "\r\n" {
    ///     line.clear();
    ///     client.read_line(&mut line)?; // the head
    /// }
    /// // From any thread: every subscriber still there gets the event.
    /// subscribers.lock().unwrap().retain(|s| s.send(&ServerEvent::data("tick")).is_ok());
    /// line.clear();
    /// client.read_line(&mut line)?;
    /// assert_eq!(line, "data: tick\n");
    ///
    /// // At shutdown the stream says goodbye and ends.
    /// running.shutdown_handle().shutdown();
    /// let mut rest = String::new();
    /// std::io::Read::read_to_string(&mut client, &mut rest)?;
    /// assert_eq!(rest, "\nevent: goodbye\ndata: bye\n\n");
    /// let report = running.join()?;
    /// assert!(!report.forced);
    /// # Ok(())
    /// # }
    /// ```
    pub fn event_stream(&mut self) -> (Response, EventSender) {
        events::start(self.version == Version::Http11)
    }

    /// Answers a WebSocket handshake: returns the `101 Switching Protocols`
    /// to return, and a sender through which messages reach the client
    /// from any thread; or, if the request is not a valid handshake, the
    /// refusal to return instead (`426 Upgrade Required` to a request that
    /// does not ask for a WebSocket, or for another version than 13; `400`
    /// to a malformed one). Feature `websocket`.
    ///
    /// Once the `101` is sent, the connection is a WebSocket: each message
    /// from the client is a turn of `handler`, and between them the
    /// connection waits holding no worker. Pings are answered, the sizes of
    /// messages and frames are bounded, a client's Close is answered, and
    /// at shutdown the client is told Close 1001 ("going away"), all with
    /// [`WebSocketConfig::default`]'s settings (see
    /// [`websocket_with`](Self::websocket_with) for others). No
    /// subprotocol and no extension is agreed (`Sec-WebSocket-Protocol`
    /// and `Sec-WebSocket-Extensions` are ignored).
    ///
    /// Another response returned in place of the `101` starts no WebSocket
    /// (the sender says [`Closed`](crate::PushError::Closed)).
    ///
    /// # Errors
    ///
    /// The refusal described above, as the response to return.
    ///
    /// ```
    /// use graceful_server::http::{self, Message, Response, WebSocket};
    ///
    /// let handler = http::handler(|req| match req.path() {
    ///     // Echo: each message comes back.
    ///     "/ws" => match req.websocket(|ws: &mut WebSocket<'_>, message: Message| ws.send(message)) {
    ///         Ok((response, _sender)) => response,
    ///         Err(refusal) => refusal,
    ///     },
    ///     _ => Response::text("not found").with_status(404),
    /// });
    /// # let _ = handler;
    /// ```
    #[cfg(feature = "websocket")]
    pub fn websocket<H: WebSocketHandler>(
        &mut self,
        handler: H,
    ) -> Result<(Response, WsSender), Response> {
        self.websocket_with(WebSocketConfig::default(), handler)
    }

    /// As [`websocket`](Self::websocket), with `config`'s sizes and
    /// goodbye. Feature `websocket`.
    ///
    /// # Errors
    ///
    /// As [`websocket`](Self::websocket).
    #[cfg(feature = "websocket")]
    pub fn websocket_with<H: WebSocketHandler>(
        &mut self,
        config: WebSocketConfig,
        handler: H,
    ) -> Result<(Response, WsSender), Response> {
        websocket::upgrade(self, config, handler)
    }

    /// Whether the request has a body left to read.
    #[cfg(feature = "websocket")]
    pub(crate) fn has_body(&self) -> bool {
        !self.body.is_done()
    }

    /// Reads the whole body into memory: at most
    /// [`max_body`](super::Limits::max_body) bytes.
    ///
    /// # Errors
    ///
    /// Fails if the body is malformed or too large (the layer then answers
    /// `400` or `413` itself, whatever the handler returns), if the client
    /// is too slow (the minimum body rate, or the server's read timeout:
    /// the layer answers `408`), or if the connection fails.
    pub fn read_body(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        self.body.read_to_end(&mut body)?;
        Ok(body)
    }
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method())
            .field("target", &self.target())
            .field("version", &self.version)
            .field("headers", &self.headers)
            .field("peer", &self.peer)
            .field("body", &self.body)
            .finish()
    }
}

/// Splits a request target into its path and query (RFC 9112 section 3.2).
fn split_target(target: &str) -> (&str, Option<&str>) {
    // Origin form (`/path?query`), nearly every request: no scheme to look
    // for, since a target that starts with `/` has none.
    if target.starts_with('/') {
        return match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        };
    }
    // Absolute form, as sent to proxies (and which servers must accept):
    // skip the scheme and the authority. `path` is then what follows, or `/`.
    let Some(rest) = absolute_form_rest(target) else {
        // One of the forms without a path (`*`, `host:port`).
        return (target, None);
    };
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    (if path.is_empty() { "/" } else { path }, query)
}

/// For an absolute-form target (`http://host:port/path?query`), what follows
/// the authority (`/path?query`, possibly empty); `None` for other forms.
fn absolute_form_rest(target: &str) -> Option<&str> {
    let (scheme, rest) = target.split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return None;
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    Some(&rest[authority_end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_path_and_query() {
        let cases = [
            ("/", "/", None),
            ("/search?q=rust&x", "/search", Some("q=rust&x")),
            ("/?", "/", Some("")),
            ("/a%20b", "/a%20b", None),
            ("http://example.com/p?q", "/p", Some("q")),
            ("HTTP://example.com:8080/p/q", "/p/q", None),
            ("https://example.com", "/", None),
            ("http://example.com?q=1", "/", Some("q=1")),
            ("*", "*", None),
            ("example.com:443", "example.com:443", None),
        ];
        for (target, path, query) in cases {
            assert_eq!(split_target(target), (path, query), "{target}");
        }
    }

    #[test]
    fn header_lookup_ignores_case_and_trims() {
        let mut headers = Headers::default();
        headers.push("Content-Type", b" text/plain \t");
        headers.push("accept", b"a");
        headers.push("ACCEPT", b"b");
        headers.push("X-Bytes", b"\xff");
        assert_eq!(headers.get("content-type"), Some("text/plain"));
        assert_eq!(headers.get_all("Accept").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(headers.get("x-bytes"), None);
        assert_eq!(headers.get_bytes("X-BYTES"), Some(&b"\xff"[..]));
        assert!(headers.contains("x-bytes"));
        assert!(!headers.contains("missing"));
        assert_eq!(headers.len(), 4);
        assert_eq!(
            headers.iter().next(),
            Some(("Content-Type", &b"text/plain"[..]))
        );
    }

    #[test]
    fn listed_tokens() {
        let mut headers = Headers::default();
        headers.push("Connection", b"Keep-Alive, Upgrade");
        assert!(headers.lists("connection", "keep-alive"));
        assert!(headers.lists("connection", "upgrade"));
        assert!(!headers.lists("connection", "close"));
    }
}
