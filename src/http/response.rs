//! What a handler returns: a [`Response`] (status, headers, body), built
//! with a few chained calls.
//!
//! A response says nothing about framing: the layer adds `Content-Length`
//! or `Transfer-Encoding`, `Connection` and `Date` when it writes it (see
//! `write.rs`), because only the layer knows the request's version, its
//! method and whether the server is shutting down.

use std::borrow::Cow;
use std::fmt;
use std::io::Read;

use super::takeover::Switch;

/// An HTTP response, as a handler returns it.
///
/// ```
/// use std::io::Read;
///
/// use graceful_server::http::Response;
///
/// let hello = Response::text("Hello, world!");
/// assert_eq!(hello.status(), 200);
///
/// let missing = Response::text("no such page\n").with_status(404);
/// let json = Response::new(201)
///     .header("Content-Type", "application/json")
///     .header("Location", "/items/7")
///     .body(r#"{"id":7}"#);
/// assert_eq!(json.get_header("location"), Some("/items/7"));
///
/// // A body read as it is sent: a file, say, or anything else that `Read`s.
/// let streamed = Response::new(200).body_reader(std::io::repeat(b'x').take(1 << 20), Some(1 << 20));
/// # let _ = (missing, streamed);
/// ```
pub struct Response {
    status: u16,
    headers: Fields,
    body: Content,
}

/// A header field: name and value. The layer's own (the `Content-Type` of
/// [`Response::text`]) are borrowed constants, so that a response costs no
/// allocation for them; a handler's are always owned (see
/// [`Fields::is_own`]).
pub(crate) type Field = (Cow<'static, str>, Cow<'static, str>);

/// A response's header fields, in order. The first is held in place, the
/// rest in a list: a response with one field (most, such as those of
/// [`Response::text`]) allocates none for it.
#[derive(Default)]
pub(crate) struct Fields {
    first: Option<Field>,
    rest: Vec<Field>,
}

impl Fields {
    /// Adds a field at the end.
    fn push(&mut self, field: Field) {
        if self.first.is_none() && self.rest.is_empty() {
            self.first = Some(field);
        } else {
            self.rest.push(field);
        }
    }

    /// Removes every field called `name` (in any case).
    fn remove(&mut self, name: &str) {
        if self
            .first
            .as_ref()
            .is_some_and(|(field, _)| field.eq_ignore_ascii_case(name))
        {
            self.first = None;
        }
        self.rest
            .retain(|(field, _)| !field.eq_ignore_ascii_case(name));
    }

    /// Every field, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Field> {
        self.first.iter().chain(&self.rest)
    }

    /// Whether `field` is one of the layer's own constants, known to be a
    /// valid field and none of those that frame the message: borrowed,
    /// since [`Response::header`] and [`Response::append_header`] make
    /// every field they are given owned.
    pub(crate) fn is_own(field: &Field) -> bool {
        matches!(field, (Cow::Borrowed(_), Cow::Borrowed(_)))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.iter().count()
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|(name, value)| (&**name, &**value)))
            .finish()
    }
}

/// A response's body.
pub(crate) enum Content {
    /// In memory.
    Bytes(Vec<u8>),
    /// Read as it is sent; `len` is its length if known in advance.
    Reader {
        reader: Box<dyn Read + Send>,
        len: Option<u64>,
    },
    /// None now: the connection switches to another protocol once the head
    /// is sent (an event stream, a WebSocket).
    Switch(Switch),
}

impl Response {
    /// A response with `status`, no headers and an empty body.
    ///
    /// A status outside `200..=599` is sent as `500 Internal Server Error`:
    /// informational (1xx) responses are the layer's business
    /// (`100 Continue`), and there are no others.
    ///
    /// ```
    /// use graceful_server::http::Response;
    ///
    /// let created = Response::new(201).header("Location", "/items/7");
    /// assert_eq!(created.status(), 201);
    /// let no_content = Response::new(204); // no body, and none is sent
    /// # let _ = no_content;
    /// ```
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Fields::default(),
            body: Content::Bytes(Vec::new()),
        }
    }

    /// A `200 OK` response with `body` as `text/plain; charset=utf-8`.
    ///
    /// ```
    /// use graceful_server::http::Response;
    ///
    /// let hello = Response::text("Hello, world!");
    /// assert_eq!(hello.status(), 200);
    /// assert_eq!(hello.get_header("content-type"), Some("text/plain; charset=utf-8"));
    /// ```
    pub fn text(body: impl Into<String>) -> Response {
        let mut response = Response::new(200).body(body.into());
        response.headers.push((
            Cow::Borrowed("Content-Type"),
            Cow::Borrowed("text/plain; charset=utf-8"),
        ));
        response
    }

    /// An error response the layer sends itself: its reason phrase as text.
    pub(crate) fn error(status: u16) -> Response {
        Response::text(format!("{}\n", reason(status))).with_status(status)
    }

    /// Sets the status code, by default the one given to
    /// [`new`](Response::new), or `200` for [`text`](Response::text).
    pub fn with_status(mut self, status: u16) -> Response {
        self.status = status;
        self
    }

    /// Sets the header field `name` to `value`, replacing any field of that
    /// name (in any case); by default, a response has no fields but the
    /// `Content-Type` of [`text`](Response::text).
    ///
    /// The layer owns the fields that frame the message and the connection:
    /// `Content-Length`, `Transfer-Encoding`, `Connection` and `Date` set here
    /// are not sent, except that `Connection: close` does close the
    /// connection after the response. A field whose name is not a valid
    /// token, or whose value holds a control character such as CR or LF, is
    /// not sent either, so that a value taken from user input can never
    /// split the response in two.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        let name = name.into();
        self.headers.remove(&name);
        self.headers
            .push((Cow::Owned(name), Cow::Owned(value.into())));
        self
    }

    /// Adds a header field, keeping those of the same name (by default there
    /// are none): for fields that may repeat, such as `Set-Cookie`. The rules
    /// of [`header`](Response::header) apply.
    ///
    /// ```
    /// use graceful_server::http::Response;
    ///
    /// let response = Response::text("logged in")
    ///     .append_header("Set-Cookie", "session=3f2a; HttpOnly")
    ///     .append_header("Set-Cookie", "theme=dark"); // both are sent
    /// assert_eq!(response.get_header("set-cookie"), Some("session=3f2a; HttpOnly"));
    /// ```
    pub fn append_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers
            .push((Cow::Owned(name.into()), Cow::Owned(value.into())));
        self
    }

    /// Sets the body to `body` (by default, the body is empty), sent with
    /// its `Content-Length`.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = Content::Bytes(body.into());
        self
    }

    /// Sets the body to what `reader` gives (by default, the body is empty),
    /// read as it is sent.
    ///
    /// With a known `len`, it is sent with that `Content-Length`, and exactly
    /// that many bytes are read; a reader that ends sooner ends the
    /// connection (the client sees a short body). Without one it is sent
    /// `chunked` to HTTP/1.1 clients, and to HTTP/1.0 clients delimited by
    /// closing the connection. A read error ends the connection too.
    pub fn body_reader(mut self, reader: impl Read + Send + 'static, len: Option<u64>) -> Response {
        self.body = Content::Reader {
            reader: Box::new(reader),
            len,
        };
        self
    }

    /// Makes the response take the connection over once its head is sent.
    pub(crate) fn switch(mut self, switch: Switch) -> Response {
        self.body = Content::Switch(switch);
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The value of the first header field called `name` (in any case).
    pub fn get_header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| &**value)
    }

    /// Takes the response apart, for writing it.
    pub(crate) fn into_parts(self) -> (u16, Fields, Content) {
        (self.status, self.headers, self.body)
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Response");
        debug
            .field("status", &self.status)
            .field("headers", &self.headers);
        match &self.body {
            Content::Bytes(bytes) => debug.field("body_len", &bytes.len()),
            Content::Reader { len, .. } => debug.field("body_reader_len", len),
            Content::Switch(switch) => debug.field("switch", &switch.kind),
        };
        debug.finish()
    }
}

/// The reason phrase of `status` (RFC 9110 section 15), or an empty one for
/// codes it does not define, which the status line allows.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_replaces_and_append_header_adds() {
        let response = Response::text("x")
            .header("content-type", "text/html")
            .append_header("Set-Cookie", "a=1")
            .append_header("Set-Cookie", "b=2");
        assert_eq!(response.get_header("Content-Type"), Some("text/html"));
        let (_, headers, _) = response.into_parts();
        assert_eq!(headers.len(), 3);
    }

    #[test]
    fn debug_does_not_need_the_reader() {
        let response = Response::new(200).body_reader(std::io::empty(), None);
        assert!(format!("{response:?}").contains("body_reader_len: None"));
    }
}
