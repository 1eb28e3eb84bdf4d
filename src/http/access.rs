//! The request event: after each response the layer writes, the server's
//! event hook hears what was asked, what was answered and how long it took
//! ([`Event::Request`]); and [`common_log_line`], that event as a line of
//! an access log.
//!
//! The event goes through the server's one hook
//! ([`Builder::on_event`](crate::Builder::on_event)) rather than a hook of
//! the HTTP handler's own, so that a program logs and counts in one place:
//! a request and the end of its connection (`ConnectionEnded`, with the
//! same id) meet there, and the `log` feature sends both to the `log`
//! facade.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Instant;

use crate::{Addr, Event};

use super::date;
use super::request::Version;
use super::transport::Transport;
use super::write::Sent;

/// The request line's parts, as far as they are known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Line<'a> {
    pub(crate) method: Option<&'a str>,
    pub(crate) target: Option<&'a str>,
    pub(crate) version: Option<&'a str>,
}

impl<'a> Line<'a> {
    /// A served request's line.
    pub(crate) fn served(method: &'a str, target: &'a str, version: Version) -> Line<'a> {
        Line {
            method: Some(method),
            target: Some(target),
            version: Some(match version {
                Version::Http10 => "HTTP/1.0",
                Version::Http11 => "HTTP/1.1",
            }),
        }
    }

    /// The request line of a request the layer refused, from the input
    /// (where the refused head still is, after any empty lines): its three
    /// parts if the line is complete, has three and is UTF-8; only the
    /// method if the line never ended but has one; nothing otherwise.
    pub(crate) fn refused(input: &'a [u8]) -> Line<'a> {
        let start = input
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(input.len());
        let input = &input[start..];
        let Some(end) = input.iter().position(|&b| b == b'\n') else {
            // Cut short, or too long: the method, if a space followed it.
            let method = input
                .iter()
                .position(|&b| b == b' ')
                .and_then(|space| token(&input[..space]));
            return Line {
                method,
                ..Line::default()
            };
        };
        let line = &input[..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut parts = line.split(|&b| b == b' ');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(method), Some(target), Some(version), None) => {
                match (token(method), token(target), token(version)) {
                    (Some(method), Some(target), Some(version)) => Line {
                        method: Some(method),
                        target: Some(target),
                        version: Some(version),
                    },
                    _ => Line::default(),
                }
            }
            _ => Line::default(),
        }
    }
}

/// `bytes` as text, if they are a non-empty run of UTF-8 without spaces.
fn token(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes)
        .ok()
        .filter(|text| !text.is_empty() && !text.contains(' '))
}

/// Tells the hook that a request on `io`, whose head began at `started`,
/// was answered as `sent` says.
pub(crate) fn tell(
    io: &dyn Transport,
    line: Line<'_>,
    sent: &Sent,
    started: Instant,
    kept_alive: bool,
) {
    io.tell(&Event::Request {
        id: io.id(),
        peer: io.peer_addr(),
        method: line.method,
        target: line.target,
        version: line.version,
        status: sent.status,
        body_bytes: sent.body_bytes,
        duration: started.elapsed(),
        kept_alive,
    });
}

/// An [`Event::Request`] as a line of the Common Log Format (what Apache
/// and nginx write by default), without a line end; `None` for every other
/// event:
///
/// ```text
/// 127.0.0.1 - - [06/Dec/2026:14:03:07 +0000] "GET /search?q=rust HTTP/1.1" 200 13
/// ```
///
/// The client's IP address (`-` over a Unix socket); no identity and no
/// user (`- -`); the time the event is told, in UTC; the request line
/// (`"-"` if the layer refused a request before it could read one); the
/// status; the body's bytes (`-` for none). Bytes of the request line
/// outside printable ASCII, and `"` and `\`, are written `\xHH`, so that a
/// line cannot be forged by a request.
///
/// ```
/// use graceful_server::{http, Server};
///
/// # fn main() -> Result<(), graceful_server::Error> {
/// let server = Server::builder("127.0.0.1:0")
///     .on_event(|event| {
///         if let Some(line) = http::common_log_line(event) {
///             eprintln!("{line}"); // or to a file, or a channel
///         }
///     })
///     .build()?;
/// # let _ = server;
/// # Ok(())
/// # }
/// ```
pub fn common_log_line(event: &Event<'_>) -> Option<String> {
    let Event::Request {
        peer,
        method,
        target,
        version,
        status,
        body_bytes,
        ..
    } = event
    else {
        return None;
    };
    // Written by hand rather than with `write!`: a busy server logs every
    // request, and the formatting machinery costs several times more.
    let mut line = String::with_capacity(128);
    match peer {
        Addr::Tcp(SocketAddr::V4(addr)) => {
            for (i, octet) in addr.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    line.push('.');
                }
                push_decimal(&mut line, u64::from(octet));
            }
        }
        Addr::Tcp(SocketAddr::V6(addr)) => {
            // `write!` to a `String` cannot fail.
            let _ = write!(line, "{}", addr.ip());
        }
        #[cfg(unix)]
        Addr::Unix(_) => line.push('-'),
    }
    line.push_str(" - - [");
    date::push_common_log_now(&mut line);
    line.push_str("] \"");
    let parts = [method, target, version];
    if parts.iter().all(|part| part.is_none()) {
        line.push('-');
    }
    for (i, part) in parts.iter().filter_map(|part| **part).enumerate() {
        if i > 0 {
            line.push(' ');
        }
        push_escaped(&mut line, part);
    }
    line.push_str("\" ");
    push_decimal(&mut line, u64::from(*status));
    line.push(' ');
    if *body_bytes == 0 {
        line.push('-');
    } else {
        push_decimal(&mut line, *body_bytes);
    }
    Some(line)
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        // `n % 10` is a digit.
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &digit in &digits[at..] {
        out.push(char::from(digit));
    }
}

/// Appends `text` with its bytes outside printable ASCII, `"` and `\`
/// written `\xHH`.
fn push_escaped(out: &mut String, text: &str) {
    let plain = |byte: u8| (0x20..0x7f).contains(&byte) && byte != b'"' && byte != b'\\';
    // Nearly always all of it: one copy.
    if text.bytes().all(plain) {
        return out.push_str(text);
    }
    for byte in text.bytes() {
        if plain(byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "\\x{byte:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn refused_lines_give_what_they_can() {
        let full = Line::refused(b"\r\nGET /a HTTP/2.0\r\nHost: x\r\n");
        assert_eq!(
            full,
            Line {
                method: Some("GET"),
                target: Some("/a"),
                version: Some("HTTP/2.0")
            }
        );
        let cut = Line::refused(b"GET /aaaaaaaaaaaaaa");
        assert_eq!(cut.method, Some("GET"));
        assert_eq!(cut.target, None);
        assert_eq!(Line::refused(b"GARBAGE"), Line::default());
        assert_eq!(Line::refused(b"GET  / HTTP/1.1\r\n"), Line::default());
        assert_eq!(Line::refused(b"G\xffT / HTTP/1.1\r\n"), Line::default());
        assert_eq!(Line::refused(b""), Line::default());
        let bare = Line::refused(b"GET / HTTP/1.1\n");
        assert_eq!(bare.version, Some("HTTP/1.1"));
    }

    fn request<'a>(peer: &'a Addr, target: Option<&'a str>, body_bytes: u64) -> Event<'a> {
        Event::Request {
            id: 7,
            peer,
            method: Some("GET"),
            target,
            version: Some("HTTP/1.1"),
            status: 200,
            body_bytes,
            duration: Duration::from_millis(1),
            kept_alive: true,
        }
    }

    #[test]
    fn decimals() {
        for n in [0, 7, 10, 99, 200, 65_535, u64::MAX] {
            let mut out = String::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }

    #[test]
    fn common_log_lines() {
        let peer = Addr::Tcp("192.0.2.7:40000".parse().expect("an address"));
        let line = common_log_line(&request(&peer, Some("/a?b=c"), 13)).expect("a request");
        let (host, rest) = line.split_once(" - - [").expect("host, then the time");
        assert_eq!(host, "192.0.2.7");
        let (time, rest) = rest.split_once("] ").expect("the time");
        assert_eq!(time.len(), "06/Nov/1994:08:49:37 +0000".len(), "{time}");
        assert!(time.ends_with(" +0000"), "{time}");
        assert_eq!(rest, "\"GET /a?b=c HTTP/1.1\" 200 13");
        let empty = common_log_line(&request(&peer, Some("/"), 0)).expect("a request");
        assert!(empty.ends_with("\" 200 -"), "{empty}");
        let forged = common_log_line(&request(&peer, Some("/\"x\\\u{e9}"), 1)).expect("one");
        assert!(
            forged.contains("\"GET /\\x22x\\x5C\\xC3\\xA9 HTTP/1.1\""),
            "{forged}"
        );
        let unknown = Event::Request {
            id: 1,
            peer: &peer,
            method: None,
            target: None,
            version: None,
            status: 400,
            body_bytes: 12,
            duration: Duration::ZERO,
            kept_alive: false,
        };
        let line = common_log_line(&unknown).expect("a request");
        assert!(line.ends_with("] \"-\" 400 12"), "{line}");
        let half = Event::Request {
            id: 1,
            peer: &peer,
            method: Some("GET"),
            target: None,
            version: None,
            status: 400,
            body_bytes: 12,
            duration: Duration::ZERO,
            kept_alive: false,
        };
        let line = common_log_line(&half).expect("a request");
        assert!(line.ends_with("] \"GET\" 400 12"), "{line}");
        let v6 = Addr::Tcp("[2001:db8::7]:40000".parse().expect("an address"));
        let line = common_log_line(&request(&v6, Some("/"), 1)).expect("a request");
        assert!(line.starts_with("2001:db8::7 - - ["), "{line}");
        let other = Event::AcceptingStopped { swept: 0 };
        assert_eq!(common_log_line(&other), None);
    }
}
