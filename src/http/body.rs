//! The request [`Body`]: a [`Read`] that ends where the body ends, decodes
//! `chunked`, enforces the body limit, and sends `100 Continue` when the
//! client waits for it.
//!
//! The body is read straight from the connection's buffered reader, never
//! past its end, so the bytes after it (a pipelined request) stay in the
//! buffer for the next request. A body that breaks its framing cannot be
//! trusted to end anywhere sensible, so the first failure is remembered:
//! every later read fails the same way, the response says why (`400`,
//! `408`, `413`), and the connection closes.

use std::fmt;
use std::io::{self, BufRead, Read};
use std::time::Instant;

use super::limits::{Limits, MinRate};
use super::transport::Transport;

/// A chunk size has at most this many hex digits: 16 fill a `u64`. More
/// (leading zeros) is refused rather than parsed, to keep size lines short.
const MAX_SIZE_DIGITS: usize = 16;

/// How a request's body is delimited (RFC 9112 section 6.3), decided from
/// its head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No `Content-Length` and no `Transfer-Encoding`: no body at all.
    Empty,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Why reading the body failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The chunked framing is broken (bad size line, missing CRLF..).
    Malformed,
    /// More than the body limit arrived.
    TooLarge,
    /// The client went silent past the connection's read timeout, or fell
    /// behind the minimum body rate.
    TimedOut,
    /// The client closed the connection before the end of the body.
    Truncated,
    /// The connection failed (reset, ..): there is nobody left to answer.
    Broken(io::ErrorKind),
}

impl Failure {
    /// The status that answers the failure, if answering is worth trying.
    pub(crate) fn status(self) -> Option<u16> {
        match self {
            Failure::Malformed | Failure::Truncated => Some(400),
            Failure::TimedOut => Some(408),
            Failure::TooLarge => Some(413),
            Failure::Broken(_) => None,
        }
    }

    /// The failure as the error the reads return.
    pub(crate) fn to_error(self) -> io::Error {
        let (kind, message) = match self {
            Failure::Malformed => (io::ErrorKind::InvalidData, "malformed chunked request body"),
            Failure::TooLarge => (io::ErrorKind::InvalidData, "request body over the limit"),
            Failure::TimedOut => (
                io::ErrorKind::TimedOut,
                "request body slower than the read timeout or the minimum body rate",
            ),
            Failure::Truncated => (
                io::ErrorKind::UnexpectedEof,
                "the client closed the connection in the request body",
            ),
            Failure::Broken(kind) => (kind, "the connection failed in the request body"),
        };
        io::Error::new(kind, message)
    }
}

/// Where the reader is in the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Nothing more to read.
    Done,
    /// In a `Content-Length` body, with this much left.
    Length { remaining: u64 },
    /// Before a chunk-size line.
    ChunkSize,
    /// In a chunk's data, with this much left.
    ChunkData { remaining: u64 },
    /// After a chunk's data, before the CRLF that ends it.
    ChunkEnd,
}

/// The body of a [`Request`](super::Request), read with [`Read`].
///
/// It reads at most the body's length, or up to the last chunk of a chunked
/// body (whose chunk extensions and trailers it skips), then returns end of
/// file. Reads fail once more than [`Limits::max_body`] bytes arrive, on a
/// malformed chunked body, when the client falls behind
/// [`Limits::min_body_rate`] or goes silent past the server's read timeout,
/// or when it hangs up before the end; the
/// response is then the layer's (`413`, `400`, `408`), not the handler's.
///
/// If the client sent `Expect: 100-continue`, the first read (and only a
/// read) tells it to send the body, with `HTTP/1.1 100 Continue`.
///
/// ```
/// use std::io::{BufRead, BufReader};
///
/// use graceful_server::http::{Request, Response};
///
/// // Counts the lines of an upload as they arrive.
/// fn count_lines(req: &mut Request) -> Response {
///     let mut lines = 0;
///     for line in BufReader::new(req.body()).lines() {
///         if line.is_err() {
///             return Response::new(400); // the layer sends 400, 408 or 413 itself
///         }
///         lines += 1;
///     }
///     Response::text(format!("{lines} lines"))
/// }
/// # let _ = graceful_server::http::handler(count_lines);
/// ```
pub struct Body<'a> {
    io: &'a mut dyn Transport,
    state: State,
    /// Body bytes (chunk data) read so far, against `max`.
    received: u64,
    max: u64,
    /// What chunk extensions and trailers may still take, in bytes.
    framing_budget: usize,
    /// Bytes taken from the connection, framing included: bounds the drain.
    wire: u64,
    /// A `100 Continue` is owed before the first read.
    continue_pending: bool,
    /// The slowest the body may arrive, timed from `start`.
    rate: Option<MinRate>,
    /// When the body began to be read (or the client was told to send it).
    start: Instant,
    /// When the whole request must be in ([`Limits::request_timeout`]).
    until: Option<Instant>,
    request_timeout: Option<std::time::Duration>,
    failure: Option<Failure>,
}

impl<'a> Body<'a> {
    /// The body of a request framed as `framing`, read from `io`; its time
    /// starts at `start`, when its head was found complete.
    pub(crate) fn new(
        io: &'a mut dyn Transport,
        framing: Framing,
        limits: &Limits,
        expect_continue: bool,
        start: Instant,
    ) -> Body<'a> {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(remaining) => State::Length { remaining },
            Framing::Chunked => State::ChunkSize,
        };
        Body {
            io,
            state,
            received: 0,
            max: limits.max_body,
            framing_budget: limits.max_head,
            wire: 0,
            // Nothing to continue to without a body.
            continue_pending: expect_continue && state != State::Done,
            rate: limits.min_body_rate,
            start,
            until: None,
            request_timeout: limits.request_timeout,
            failure: None,
        }
    }

    /// Bounds every read by `deadline` too: when the whole request must be
    /// in, from the first byte of its head.
    pub(crate) fn until(mut self, deadline: Option<Instant>) -> Body<'a> {
        self.until = deadline;
        self
    }

    /// Bounds the next wait for input by the minimum rate (the body must
    /// have reached `wire` bytes by the rate's deadline for them) and by
    /// the request's own deadline.
    fn pace(&mut self) {
        let rate = self
            .rate
            .and_then(|rate| rate.deadline(self.start, self.wire));
        if self.rate.is_some() || self.until.is_some() {
            let deadline = match (rate, self.until) {
                (Some(rate), Some(until)) => Some(rate.min(until)),
                (rate, None) => rate,
                (None, until) => until,
            };
            self.io.set_deadline(deadline);
        }
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.io.is_shutting_down()
    }

    /// Whether the body has been read to its end (or there is none).
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The failure of a read so far, if any.
    pub(crate) fn failure(&self) -> Option<Failure> {
        self.failure
    }

    /// Reads and discards the rest of the body, if that means taking at
    /// most `max_wire` more bytes from the connection. Returns whether the
    /// body was read to its end, so that the connection can carry another
    /// request.
    pub(crate) fn drain(&mut self, max_wire: u64) -> bool {
        if self.failure.is_some() {
            return false;
        }
        // Read to its end already (every body of a GET): nothing to do.
        if self.state == State::Done {
            return true;
        }
        // The client waits for our `100 Continue` before sending the body,
        // and may or may not send it without one: the next bytes could be
        // either the body or a new request, so we cannot go on.
        if self.continue_pending {
            return false;
        }
        // Known to be too long: do not even start.
        if let State::Length { remaining } = self.state {
            if remaining > max_wire {
                return false;
            }
        }
        let start = self.wire;
        let mut scratch = [0; 4096];
        loop {
            match self.read(&mut scratch) {
                Ok(0) => return true,
                Ok(_) if self.wire - start > max_wire => return false,
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    /// Remembers `failure` and returns it as an error.
    fn fail(&mut self, failure: Failure) -> io::Error {
        self.failure = Some(failure);
        failure.to_error()
    }

    /// Remembers an I/O error as a failure (except `Interrupted`, after
    /// which the read can simply be tried again) and returns it.
    fn fail_io(&mut self, error: io::Error) -> io::Error {
        match error.kind() {
            io::ErrorKind::Interrupted => {}
            // A read timeout surfaces as `WouldBlock` on Unix, `TimedOut`
            // on Windows.
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                self.failure = Some(Failure::TimedOut);
            }
            kind => self.failure = Some(Failure::Broken(kind)),
        }
        error
    }

    /// Reads body bytes into `buf`, at most `remaining`.
    fn read_data(&mut self, buf: &mut [u8], remaining: u64) -> io::Result<usize> {
        let want = usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()));
        let n = match self.io.read(&mut buf[..want]) {
            Ok(n) => n,
            Err(error) => return Err(self.fail_io(error)),
        };
        if n == 0 {
            return Err(self.fail(Failure::Truncated));
        }
        self.received += n as u64;
        self.wire += n as u64;
        Ok(n)
    }

    /// Reads one line ending in CRLF, of at most `limit` bytes with the
    /// CRLF, and returns it without the CRLF.
    fn read_crlf_line(&mut self, limit: usize) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        let read = (&mut *self.io)
            .take(limit as u64)
            .read_until(b'\n', &mut line);
        let n = read.map_err(|error| self.fail_io(error))?;
        self.wire += n as u64;
        if line.ends_with(b"\r\n") {
            line.truncate(line.len() - 2);
            Ok(line)
        } else if line.ends_with(b"\n") || n == limit {
            // A bare LF, or a line over its limit. Chunked framing is where
            // request smuggling hides, so it is read strictly.
            Err(self.fail(Failure::Malformed))
        } else {
            Err(self.fail(Failure::Truncated))
        }
    }

    /// Reads a chunk-size line (`1a2f;name=value` CRLF) and returns the size.
    fn read_chunk_size(&mut self) -> io::Result<u64> {
        // Saturating: the budget is the user's `max_head`, which may be huge.
        let limit = self.framing_budget.saturating_add(MAX_SIZE_DIGITS + 2);
        let line = self.read_crlf_line(limit)?;
        let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        let extension = &line[digits..];
        if digits == 0 || digits > MAX_SIZE_DIGITS || !is_chunk_extension(extension) {
            return Err(self.fail(Failure::Malformed));
        }
        // Extensions are ignored, but they are headers in disguise: bound
        // them as a head is bounded.
        let Some(budget) = self.framing_budget.checked_sub(extension.len()) else {
            return Err(self.fail(Failure::Malformed));
        };
        self.framing_budget = budget;
        // At most 16 hex digits: the value fits a `u64`.
        let size = line[..digits].iter().fold(0u64, |size, &digit| {
            let value = char::from(digit).to_digit(16).unwrap_or(0);
            (size << 4) | u64::from(value)
        });
        Ok(size)
    }

    /// Reads the CRLF that ends a chunk's data.
    fn read_chunk_end(&mut self) -> io::Result<()> {
        let mut crlf = [0; 2];
        match self.io.read_exact(&mut crlf) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(self.fail(Failure::Truncated));
            }
            Err(error) => return Err(self.fail_io(error)),
        }
        self.wire += 2;
        if crlf == *b"\r\n" {
            Ok(())
        } else {
            Err(self.fail(Failure::Malformed))
        }
    }

    /// Reads and discards the trailer section after the last chunk, up to
    /// and including the empty line that ends the body.
    fn skip_trailers(&mut self) -> io::Result<()> {
        loop {
            let line = self.read_crlf_line(self.framing_budget.saturating_add(2))?;
            if line.is_empty() {
                return Ok(());
            }
            // Cannot underflow: the line was read with this budget as limit.
            self.framing_budget = self.framing_budget.saturating_sub(line.len());
        }
    }
}

/// Whether `extension`, what follows a chunk size on its line, is empty or a
/// `;`-introduced chunk extension without control characters.
fn is_chunk_extension(extension: &[u8]) -> bool {
    let trimmed = extension
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .map_or(&[][..], |start| &extension[start..]);
    extension.is_empty()
        || (trimmed.first() == Some(&b';')
            && trimmed
                .iter()
                .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f)))
}

impl Read for Body<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(failure) = self.failure {
            return Err(failure.to_error());
        }
        if self.continue_pending {
            self.continue_pending = false;
            // The client holds the body back until told to go on: send the
            // interim response now, when the handler wants the body, and
            // never if it answers without it (RFC 9110 section 10.1.1).
            let sent = self
                .io
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .and_then(|()| self.io.flush());
            if let Err(error) = sent {
                return Err(self.fail_io(error));
            }
            // The client starts sending now, and the body has the whole
            // request's time again: the client could not send it before.
            self.start = Instant::now();
            if self.until.is_some() {
                self.until = self
                    .request_timeout
                    .and_then(|timeout| self.start.checked_add(timeout));
            }
        }
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            self.pace();
            match self.state {
                State::Done => return Ok(0),
                State::Length { remaining } => {
                    let n = self.read_data(buf, remaining)?;
                    let remaining = remaining - n as u64;
                    self.state = if remaining == 0 {
                        State::Done
                    } else {
                        State::Length { remaining }
                    };
                    return Ok(n);
                }
                State::ChunkSize => {
                    let size = self.read_chunk_size()?;
                    if size == 0 {
                        self.skip_trailers()?;
                        self.state = State::Done;
                    } else if size > self.max.saturating_sub(self.received) {
                        // Refused before its data is read.
                        return Err(self.fail(Failure::TooLarge));
                    } else {
                        self.state = State::ChunkData { remaining: size };
                    }
                }
                State::ChunkData { remaining } => {
                    let n = self.read_data(buf, remaining)?;
                    let remaining = remaining - n as u64;
                    self.state = if remaining == 0 {
                        State::ChunkEnd
                    } else {
                        State::ChunkData { remaining }
                    };
                    return Ok(n);
                }
                State::ChunkEnd => {
                    self.read_chunk_end()?;
                    self.state = State::ChunkSize;
                }
            }
        }
    }
}

impl fmt::Debug for Body<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body")
            .field("state", &self.state)
            .field("received", &self.received)
            .field("max", &self.max)
            .field("continue_pending", &self.continue_pending)
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::transport::testing::Mock;

    /// A body of `framing` read from `mock`, at most 100 bytes, its time
    /// starting now; `expect_continue` as the head said.
    fn new_body(mock: &mut Mock, framing: Framing, expect_continue: bool) -> Body<'_> {
        Body::new(mock, framing, &limits(100), expect_continue, Instant::now())
    }

    fn limits(max_body: u64) -> Limits {
        Limits {
            max_body,
            max_head: 64,
            ..Limits::default()
        }
    }

    /// Reads a whole body framed as `framing` from `input`; returns what was
    /// read (or the failure) and what is left on the connection.
    fn read(input: &str, framing: Framing, max_body: u64) -> (Result<Vec<u8>, Failure>, Vec<u8>) {
        let mut mock = Mock::new(input);
        let result = {
            let mut body = Body::new(&mut mock, framing, &limits(max_body), false, Instant::now());
            let mut out = Vec::new();
            match body.read_to_end(&mut out) {
                Ok(_) => Ok(out),
                Err(_) => Err(body.failure().expect("a failed read records why")),
            }
        };
        let mut rest = Vec::new();
        mock.read_to_end(&mut rest)
            .expect("reading a Vec cannot fail");
        (result, rest)
    }

    #[test]
    fn a_length_body_stops_at_its_length() {
        let (body, rest) = read("hello, worldGET", Framing::Length(12), 100);
        assert_eq!(body.as_deref(), Ok(&b"hello, world"[..]));
        assert_eq!(rest, b"GET");
        let (body, rest) = read("GET", Framing::Empty, 100);
        assert_eq!(body.as_deref(), Ok(&b""[..]));
        assert_eq!(rest, b"GET");
        let (body, _) = read("short", Framing::Length(12), 100);
        assert_eq!(body, Err(Failure::Truncated));
    }

    #[test]
    fn chunked_bodies_are_decoded_and_trailers_skipped() {
        let input = "5\r\nhello\r\n7;name=\"value\"\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\nGET";
        let (body, rest) = read(input, Framing::Chunked, 100);
        assert_eq!(body.as_deref(), Ok(&b"hello, world"[..]));
        assert_eq!(rest, b"GET");
        // Upper and lower case hex, and whitespace before an extension.
        let (body, _) = read(
            "A \t;x\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n",
            Framing::Chunked,
            100,
        );
        assert_eq!(body.map(|b| b.len()), Ok(20));
    }

    #[test]
    fn broken_chunked_framing_is_malformed() {
        for bad in [
            "z\r\n",                                   // not hex
            "\r\n",                                    // no size
            "5\nhello\r\n0\r\n\r\n",                   // bare LF after the size
            "5\r\nhelloXX0\r\n\r\n",                   // no CRLF after the data
            "5 x\r\nhello\r\n0\r\n\r\n",               // junk after the size
            "5;a\x01b\r\nhello\r\n0\r\n\r\n",          // a control character
            "00000000000000005\r\nhello\r\n0\r\n\r\n", // 17 digits
            "0\r\nTrailer: x\n\r\n",                   // bare LF in the trailers
        ] {
            let (body, _) = read(bad, Framing::Chunked, 100);
            assert_eq!(body, Err(Failure::Malformed), "{bad:?}");
        }
        let (body, _) = read("5\r\nhel", Framing::Chunked, 100);
        assert_eq!(body, Err(Failure::Truncated));
        // The largest size there is parses, and is then too large.
        let (body, _) = read("ffffffffffffffff\r\n", Framing::Chunked, 100);
        assert_eq!(body, Err(Failure::TooLarge));
    }

    #[test]
    fn chunk_extensions_and_trailers_share_a_budget() {
        let long = "x".repeat(40);
        // 42 bytes of extension, then 42 of trailer: over the 64 allowed.
        let input = format!("1;{long}\r\na\r\n0\r\nT: {long}\r\n\r\n");
        let (body, _) = read(&input, Framing::Chunked, 100);
        assert_eq!(body, Err(Failure::Malformed));
        let input = format!("1;{long}\r\na\r\n0\r\n\r\n");
        let (body, _) = read(&input, Framing::Chunked, 100);
        assert_eq!(body.as_deref(), Ok(&b"a"[..]));
    }

    #[test]
    fn chunked_bodies_over_the_limit_fail() {
        let (body, _) = read("6\r\nhello!\r\n0\r\n\r\n", Framing::Chunked, 5);
        assert_eq!(body, Err(Failure::TooLarge));
        let (body, _) = read("3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n", Framing::Chunked, 5);
        assert_eq!(body, Err(Failure::TooLarge));
        let (body, _) = read("5\r\nhello\r\n0\r\n\r\n", Framing::Chunked, 5);
        assert_eq!(body.as_deref(), Ok(&b"hello"[..]));
    }

    #[test]
    fn a_failure_sticks() {
        let mut mock = Mock::new("z\r\n5\r\nhello\r\n0\r\n\r\n");
        let mut body = new_body(&mut mock, Framing::Chunked, false);
        let mut buf = [0; 16];
        assert!(body.read(&mut buf).is_err());
        assert!(body.read(&mut buf).is_err());
        assert_eq!(body.failure(), Some(Failure::Malformed));
        assert!(!body.drain(1024));
    }

    #[test]
    fn a_timeout_is_remembered() {
        let mut mock = Mock::pieces(vec![b"hel".to_vec()], true);
        let mut body = new_body(&mut mock, Framing::Length(5), false);
        let mut out = Vec::new();
        assert!(body.read_to_end(&mut out).is_err());
        assert_eq!(body.failure(), Some(Failure::TimedOut));
        assert_eq!(Failure::TimedOut.status(), Some(408));
    }

    #[test]
    fn continue_is_sent_at_the_first_read_only() {
        let mut mock = Mock::new("hello");
        let mut body = new_body(&mut mock, Framing::Length(5), true);
        let mut out = Vec::new();
        body.read_to_end(&mut out).expect("the body is all there");
        assert_eq!(mock.output, b"HTTP/1.1 100 Continue\r\n\r\n");
        assert_eq!(out, b"hello");

        // Never read: nothing sent, and the body cannot be drained.
        let mut mock = Mock::new("hello");
        let mut body = new_body(&mut mock, Framing::Length(5), true);
        assert!(!body.drain(1024));
        assert!(mock.output.is_empty());

        // No body: nothing to continue to.
        let mut mock = Mock::new("");
        let mut body = new_body(&mut mock, Framing::Length(0), true);
        assert_eq!(body.read(&mut [0; 4]).ok(), Some(0));
        assert!(mock.output.is_empty());
    }

    #[test]
    fn small_rests_are_drained_large_ones_not() {
        let mut mock = Mock::new("hello, worldGET");
        let mut body = new_body(&mut mock, Framing::Length(12), false);
        assert_eq!(body.read(&mut [0; 5]).ok(), Some(5));
        assert!(body.drain(7));
        let mut rest = Vec::new();
        mock.read_to_end(&mut rest)
            .expect("reading a Vec cannot fail");
        assert_eq!(rest, b"GET");

        let mut mock = Mock::new("hello, world");
        let mut body = new_body(&mut mock, Framing::Length(12), false);
        assert!(!body.drain(11));

        let chunked = "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n";
        let mut mock = Mock::new(chunked);
        let mut body = new_body(&mut mock, Framing::Chunked, false);
        assert!(body.drain(chunked.len() as u64));
        let mut mock = Mock::new(chunked);
        let mut body = new_body(&mut mock, Framing::Chunked, false);
        assert!(!body.drain(8));
    }
}
