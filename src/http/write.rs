//! Putting a [`Response`] on the wire: the status line, the `Date`, the
//! handler's fields, the framing, and the body, from memory or streamed.
//!
//! Framing is chosen here, because it depends on the request as much as on
//! the response: a body of known length gets `Content-Length`; one of
//! unknown length is sent `chunked` to an HTTP/1.1 client, and to an
//! HTTP/1.0 client (which knows no chunked) delimited by closing the
//! connection. A `HEAD` response gets the fields the `GET` would have, and
//! no body; `204` and `304` have no body at all.
//!
//! The head goes out in the same `write` as the body (or its first block):
//! the connection writes straight to the socket, and a head and body written
//! separately can wait on the client's delayed acknowledgement.
//!
//! The head and the body are put together in a buffer each thread keeps
//! from one response to the next ([`Scratch`]): a worker allocates it once,
//! not once per response.

use std::cell::Cell;
use std::io::{self, Read, Write};

use super::date;
use super::request::Version;
use super::response::{reason, Content, Fields, Response};
use super::takeover::{Kind, Switch};

/// How much of a streamed body is read and written at a time.
const BLOCK: usize = 16 * 1024;

/// The largest buffer a thread keeps for its next response; a larger one
/// (a large body held in memory) is freed once written.
const SCRATCH_KEPT: usize = 64 * 1024;

thread_local! {
    /// The buffer this thread's last response was put together in, empty,
    /// for the next one.
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// A buffer to put a response together in: the thread's kept one if it has
/// it (taken, not borrowed, so that nothing can find it in use), given
/// back when dropped unless it grew too large to keep.
struct Scratch(Vec<u8>);

impl Scratch {
    fn take() -> Scratch {
        // `try_with` fails only while the thread is being torn down: then
        // a new buffer does.
        Scratch(SCRATCH.try_with(Cell::take).unwrap_or_default())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.0.capacity() <= SCRATCH_KEPT {
            let mut buffer = std::mem::take(&mut self.0);
            buffer.clear();
            let _ = SCRATCH.try_with(|kept| kept.set(buffer));
        }
    }
}

/// Fields the layer writes itself; the handler's are dropped.
const OWN_FIELDS: [&str; 4] = ["content-length", "transfer-encoding", "connection", "date"];

/// How a body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delimit {
    Length(u64),
    Chunked,
    /// HTTP/1.0 with no known length: the end of the connection.
    Close,
}

/// What the request says about how to answer it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Answering {
    pub(crate) version: Version,
    /// A `HEAD` request: fields, no body.
    pub(crate) head_only: bool,
    /// Whether the connection may stay open, as far as the request and the
    /// server are concerned.
    pub(crate) keep_alive: bool,
}

/// Where a response goes: a writer that may take an answer held in memory
/// whole, and finish sending it later.
pub(crate) trait Output: Write {
    /// Writes all of `bytes`, or as much as can go now and the rest later.
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes)
    }
}

/// What a response put on the wire, for the request's event: filled in as
/// it is written, so that a write that fails half way still says what went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sent {
    /// The status sent.
    pub(crate) status: u16,
    /// Bytes of the body written (or queued), framing not counted.
    pub(crate) body_bytes: u64,
}

/// What became of the connection once a response was written.
#[derive(Debug)]
pub(crate) struct Written {
    /// Whether the connection may stay open for another request.
    pub(crate) keep_alive: bool,
    /// The protocol the connection switches to, now that the head is sent.
    pub(crate) switch: Option<Switch>,
}

/// Writes `response` and returns whether the connection may stay open after
/// it: `answering.keep_alive`, unless the response itself ends the
/// connection (`Connection: close`, or a body delimited by closing); or,
/// for a response that takes the connection over (an event stream, a
/// WebSocket's `101`), the switch to commit.
///
/// # Errors
///
/// Writing failed, or the body's reader failed or ended before its length;
/// either way the connection is no longer usable.
// Generic rather than `&mut dyn Write`: callers hold a `&mut dyn Transport`,
// and turning that into `&mut dyn Write` needs trait upcasting (Rust 1.86).
// The layer itself records every response (`write_response_recorded`); this
// is for writers that need no record (the tests').
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn write_response<W: Output + ?Sized>(
    io: &mut W,
    response: Response,
    answering: Answering,
) -> io::Result<Written> {
    write_response_recorded(io, response, answering, &mut Sent::default())
}

/// [`write_response`], recording in `sent` what went out.
pub(crate) fn write_response_recorded<W: Output + ?Sized>(
    io: &mut W,
    response: Response,
    answering: Answering,
    sent: &mut Sent,
) -> io::Result<Written> {
    let (status, headers, content) = response.into_parts();
    let upgrade = matches!(&content, Content::Switch(s) if s.kind == Kind::Upgrade);
    // 1xx are interim responses, but for the `101` of an upgrade, and
    // nothing is defined above 599.
    let (status, headers, content) = if (200..=599).contains(&status) && !upgrade {
        (status, headers, content)
    } else if status == 101 && upgrade {
        sent.status = status;
        let mut out = Scratch::take();
        head(
            &mut out.0,
            status,
            &headers,
            None,
            Connection::Upgrade,
            answering.version,
        );
        io.send(&out.0)?;
        io.flush()?;
        let Content::Switch(switch) = content else {
            // `upgrade` says the content is a switch.
            return Ok(Written::closing());
        };
        return Ok(Written {
            keep_alive: false,
            switch: Some(switch),
        });
    } else {
        Response::error(500).into_parts()
    };
    sent.status = status;
    let mut keep_alive = answering.keep_alive
        && !headers.iter().any(|(name, value)| {
            name.eq_ignore_ascii_case("connection")
                && value
                    .split(',')
                    .any(|token| token.trim().eq_ignore_ascii_case("close"))
        });
    let has_body = status != 204 && status != 304;
    let length = match &content {
        Content::Bytes(bytes) => Some(bytes.len() as u64),
        Content::Reader { len, .. } => *len,
        Content::Switch(_) => None,
    };
    let delimit = match length {
        _ if !has_body => None,
        Some(length) => Some(Delimit::Length(length)),
        None if answering.version == Version::Http11 => Some(Delimit::Chunked),
        None => {
            keep_alive = false;
            Some(Delimit::Close)
        }
    };
    let connection = if keep_alive {
        Connection::KeepAlive
    } else {
        Connection::Close
    };
    let mut scratch = Scratch::take();
    let out = &mut scratch.0;
    head(
        out,
        status,
        &headers,
        delimit,
        connection,
        answering.version,
    );
    let mut switch = None;
    match content {
        _ if answering.head_only || !has_body => io.send(out)?,
        Content::Bytes(bytes) => {
            out.extend_from_slice(&bytes);
            io.send(out)?;
            sent.body_bytes = bytes.len() as u64;
        }
        Content::Reader { reader, .. } => {
            // `has_body`, so `delimit` is set; `Close` is the safe reading.
            let delimit = delimit.unwrap_or(Delimit::Close);
            stream(io, out, reader, delimit, &mut sent.body_bytes)?;
        }
        Content::Switch(events) => {
            // The head now, the body from the protocol, over time.
            io.send(out)?;
            switch = Some(events);
        }
    }
    io.flush()?;
    Ok(Written { keep_alive, switch })
}

impl Written {
    /// The connection closes after the response.
    fn closing() -> Written {
        Written {
            keep_alive: false,
            switch: None,
        }
    }
}

/// What the head's `Connection` field says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Connection {
    /// Nothing for HTTP/1.1 (open is its default), `keep-alive` for
    /// HTTP/1.0.
    KeepAlive,
    Close,
    /// `Upgrade`: the `101` of a protocol switch.
    Upgrade,
}

/// Appends the status line and the header section, with its final empty
/// line, to `out`.
fn head(
    out: &mut Vec<u8>,
    status: u16,
    headers: &Fields,
    delimit: Option<Delimit>,
    connection: Connection,
    version: Version,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, status.into());
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    date::push_now(out);
    out.extend_from_slice(b"\r\n");
    for field in headers.iter() {
        let (name, value) = (&*field.0, &*field.1);
        let valid = Fields::is_own(field)
            || (!OWN_FIELDS.iter().any(|own| own.eq_ignore_ascii_case(name))
                && is_token(name)
                && is_field_value(value));
        if valid {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    match delimit {
        Some(Delimit::Length(length)) => {
            out.extend_from_slice(b"Content-Length: ");
            push_decimal(out, length);
            out.extend_from_slice(b"\r\n");
        }
        Some(Delimit::Chunked) => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        Some(Delimit::Close) | None => {}
    }
    match connection {
        Connection::Close => out.extend_from_slice(b"Connection: close\r\n"),
        // An HTTP/1.0 client assumes the connection closes unless told.
        Connection::KeepAlive if version == Version::Http10 => {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        Connection::KeepAlive => {}
        Connection::Upgrade => out.extend_from_slice(b"Connection: Upgrade\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends `n` in decimal: what `write!` would, without the formatting
/// machinery, which costs more than the digits for a status or a length.
fn push_decimal(out: &mut Vec<u8>, n: u64) {
    // The last digit of `n`: `n % 10` is below 10.
    let digit = |n: u64| b'0' + (n % 10) as u8;
    // A status, and most lengths, in one step; longer numbers three digits
    // at a time.
    match n {
        0..=9 => out.push(digit(n)),
        10..=99 => out.extend_from_slice(&[digit(n / 10), digit(n)]),
        100..=999 => out.extend_from_slice(&[digit(n / 100), digit(n / 10), digit(n)]),
        _ => {
            push_decimal(out, n / 1000);
            out.extend_from_slice(&[digit(n / 100), digit(n / 10), digit(n)]);
        }
    }
}

/// Sends `out` (the head) followed by the body `reader` gives, delimited as
/// `delimit` says, a block at a time, counting the body's bytes written in
/// `sent`.
fn stream<W: Write + ?Sized>(
    io: &mut W,
    out: &mut Vec<u8>,
    mut reader: Box<dyn Read + Send>,
    delimit: Delimit,
    sent: &mut u64,
) -> io::Result<()> {
    let mut block = vec![0; BLOCK];
    let mut remaining = match delimit {
        Delimit::Length(length) => length,
        Delimit::Chunked | Delimit::Close => u64::MAX,
    };
    loop {
        let want = usize::try_from(remaining).map_or(BLOCK, |r| r.min(BLOCK));
        let n = if want == 0 {
            0
        } else {
            read_some(&mut reader, &mut block[..want])?
        };
        if n == 0 && remaining > 0 && matches!(delimit, Delimit::Length(_)) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the response body ended before its Content-Length",
            ));
        }
        if delimit == Delimit::Chunked {
            // A chunk of data, or the last chunk (size 0, no trailers).
            out.extend_from_slice(format!("{n:X}\r\n").as_bytes());
            out.extend_from_slice(&block[..n]);
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(&block[..n]);
        }
        remaining = remaining.saturating_sub(n as u64);
        if !out.is_empty() {
            io.write_all(out)?;
            out.clear();
        }
        *sent += n as u64;
        if n == 0 {
            return Ok(());
        }
    }
}

/// One `read`, tried again if interrupted by a signal.
fn read_some(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

/// Whether `name` is a valid field name: a token (RFC 9110 section 5.6.2).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `value` is a valid field value: no control characters but tab
/// (RFC 9110 section 5.5). CR and LF above all: they would end the field.
fn is_field_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes in memory take every answer whole.
    impl Output for Vec<u8> {}

    fn write(response: Response, version: Version, head_only: bool) -> (String, bool) {
        let mut out = Vec::new();
        let answering = Answering {
            version,
            head_only,
            keep_alive: true,
        };
        let keep = write_response(&mut out, response, answering)
            .expect("a Vec cannot fail")
            .keep_alive;
        (String::from_utf8_lossy(&out).into_owned(), keep)
    }

    /// The response without its `Date` line, which changes.
    fn undated(raw: &str) -> String {
        raw.split("\r\n")
            .filter(|line| !line.starts_with("Date: "))
            .collect::<Vec<_>>()
            .join("\r\n")
    }

    #[test]
    fn bytes_get_a_length() {
        let (raw, keep) = write(Response::text("hi"), Version::Http11, false);
        assert_eq!(
            undated(&raw),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n\r\nhi"
        );
        assert!(keep);
        let (raw, _) = write(Response::text("hi"), Version::Http10, false);
        assert!(raw.contains("\r\nConnection: keep-alive\r\n"));
    }

    #[test]
    fn head_gets_the_fields_without_the_body() {
        let (raw, keep) = write(Response::text("hi"), Version::Http11, true);
        assert!(raw.ends_with("Content-Length: 2\r\n\r\n"), "{raw}");
        assert!(keep);
        let reader = Response::new(200).body_reader(&b"abc"[..], Some(3));
        let (raw, _) = write(reader, Version::Http11, true);
        assert!(raw.ends_with("Content-Length: 3\r\n\r\n"), "{raw}");
    }

    #[test]
    fn unknown_lengths_are_chunked_or_close_delimited() {
        let big = vec![b'x'; BLOCK + 5];
        let reader = Response::new(200).body_reader(io::Cursor::new(big.clone()), None);
        let (raw, keep) = write(reader, Version::Http11, false);
        let expected = format!(
            "Transfer-Encoding: chunked\r\n\r\n4000\r\n{}\r\n5\r\nxxxxx\r\n0\r\n\r\n",
            "x".repeat(BLOCK)
        );
        assert!(raw.ends_with(&expected));
        assert!(keep);
        let reader = Response::new(200).body_reader(io::Cursor::new(big), None);
        let (raw, keep) = write(reader, Version::Http10, false);
        assert!(!keep);
        assert!(!raw.contains("Content-Length") && !raw.contains("Transfer-Encoding"));
        assert!(raw.contains("\r\nConnection: close\r\n\r\nxxx"));
        assert!(raw.ends_with("xxxxx"));
    }

    #[test]
    fn a_known_length_is_exact() {
        let reader = Response::new(200).body_reader(&b"abcdef"[..], Some(3));
        let (raw, _) = write(reader, Version::Http11, false);
        assert!(raw.ends_with("Content-Length: 3\r\n\r\nabc"));
        let short = Response::new(200).body_reader(&b"ab"[..], Some(3));
        let mut out = Vec::new();
        let answering = Answering {
            version: Version::Http11,
            head_only: false,
            keep_alive: true,
        };
        let error = write_response(&mut out, short, answering).expect_err("short body");
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn no_body_for_204_and_304() {
        for status in [204, 304] {
            let (raw, _) = write(
                Response::text("dropped").with_status(status),
                Version::Http11,
                false,
            );
            assert!(
                !raw.contains("dropped") && !raw.contains("Content-Length"),
                "{raw}"
            );
        }
    }

    #[test]
    fn the_layer_owns_framing_and_unsafe_fields_are_dropped() {
        let response = Response::text("hi")
            .header("Content-Length", "99")
            .header("Transfer-Encoding", "gzip")
            .header("Date", "yesterday")
            .header("X-Split", "a\r\nInjected: yes")
            .header("Bad Name", "x")
            .header("X-Fine", "a\tb");
        let (raw, _) = write(response, Version::Http11, false);
        assert!(!raw.contains("99") && !raw.contains("gzip") && !raw.contains("yesterday"));
        assert!(!raw.contains("Injected") && !raw.contains("Bad Name"));
        assert!(raw.contains("\r\nX-Fine: a\tb\r\n"));
        assert_eq!(raw.matches("Date: ").count(), 1);
    }

    #[test]
    fn connection_close_from_the_handler_closes() {
        let (raw, keep) = write(
            Response::text("hi").header("Connection", "close"),
            Version::Http11,
            false,
        );
        assert!(!keep);
        assert_eq!(raw.matches("Connection: close").count(), 1);
    }

    #[test]
    fn decimals_as_display_writes_them() {
        for n in [
            0,
            7,
            10,
            99,
            100,
            999,
            1000,
            1001,
            65_535,
            1_000_000,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    #[test]
    fn statuses_out_of_range_become_500() {
        for status in [0, 100, 101, 199, 600, 999] {
            let (raw, keep) = write(Response::new(status), Version::Http11, false);
            assert!(
                raw.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
                "{raw}"
            );
            assert!(keep);
        }
        let (raw, _) = write(Response::new(299), Version::Http11, false);
        assert!(raw.starts_with("HTTP/1.1 299 \r\n"));
    }
}
