//! Reading a request head off the connection and checking it: everything
//! that can be refused before the handler runs.
//!
//! The head is read one line at a time, so that nothing after it (the body,
//! a pipelined request) is taken from the connection's buffer, and so that
//! each limit is checked as soon as it can be: a request line that is too
//! long is refused before the headers arrive, a head with too many headers
//! before the rest of them. The complete head is then parsed by `httparse`
//! and checked against RFC 9112's framing rules, the ones whose violation
//! lets a request be smuggled past a proxy.

use std::io::{self, BufRead, Read};

use super::body::Framing;
use super::limits::Limits;
use super::request::{Headers, Version};
use super::transport::Transport;

/// A request head that passed every check.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) version: Version,
    pub(crate) headers: Headers,
    pub(crate) framing: Framing,
    /// Whether the client wants the connection kept open after this request.
    pub(crate) keep_alive: bool,
    /// Whether the client waits for `100 Continue` before sending the body.
    pub(crate) expect_continue: bool,
}

/// A request refused before the handler: answer `status`, then close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    /// The request was a `HEAD`: the answer must have no body.
    pub(crate) head_only: bool,
}

impl Refusal {
    fn new(status: u16) -> Refusal {
        Refusal {
            status,
            head_only: false,
        }
    }
}

/// What reading a head gave.
#[derive(Debug)]
pub(crate) enum ReadHead {
    /// A request to serve.
    Request(Head),
    /// Bad input, to answer before closing.
    Refused(Refusal),
    /// The client closed the connection, or went silent past the read
    /// timeout, before sending anything: nothing to answer.
    Closed,
}

/// How reading one line ended.
enum Line {
    /// It ended with LF.
    Complete,
    /// The connection ended first.
    Eof,
    /// The line did not end within the limit.
    OverLimit,
}

/// Reads a line (up to and including LF) onto the end of `buf`, taking at
/// most `limit` bytes.
fn read_line(io: &mut dyn Transport, buf: &mut Vec<u8>, limit: usize) -> io::Result<Line> {
    let n = io.take(limit as u64).read_until(b'\n', buf)?;
    Ok(if buf.ends_with(b"\n") && n > 0 {
        Line::Complete
    } else if n == limit {
        Line::OverLimit
    } else {
        Line::Eof
    })
}

fn is_blank(line: &[u8]) -> bool {
    line == b"\r\n" || line == b"\n"
}

fn is_timeout(error: &io::Error) -> bool {
    // A read timeout surfaces as `WouldBlock` on Unix, `TimedOut` on Windows.
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Reads the next request head from `io` and checks it.
///
/// # Errors
///
/// An I/O error other than a timeout: the connection is broken.
pub(crate) fn read_head(io: &mut dyn Transport, limits: &Limits) -> io::Result<ReadHead> {
    if let Some(read) = read_buffered_head(io, limits)? {
        return Ok(read);
    }
    let mut head = Vec::new();
    // Bytes of empty lines skipped before the request line: they count
    // against the head limit too, or a stream of them would never end.
    let mut skipped = 0;
    let mut header_lines = 0;
    let mut in_request_line = true;
    loop {
        let line_start = head.len();
        let budget = limits.max_head.saturating_sub(skipped + head.len());
        let line = match read_line(io, &mut head, budget) {
            Ok(line) => line,
            // Silent between requests: the client is done with us. Silent in
            // the middle of one: tell it why we give up.
            Err(error) if is_timeout(&error) => {
                return Ok(if head.is_empty() {
                    ReadHead::Closed
                } else {
                    ReadHead::Refused(Refusal::new(408))
                });
            }
            Err(error) => return Err(error),
        };
        match line {
            // A hang-up between requests is the normal end of a connection;
            // in the middle of a head the client may still read the answer.
            Line::Eof if head.is_empty() => return Ok(ReadHead::Closed),
            Line::Eof => return Ok(ReadHead::Refused(Refusal::new(400))),
            Line::OverLimit if in_request_line => {
                // A request line this long is a long target, unless there is
                // not even a space in it: then it is garbage.
                let status = if head.contains(&b' ') { 414 } else { 400 };
                return Ok(ReadHead::Refused(Refusal::new(status)));
            }
            Line::OverLimit => return Ok(ReadHead::Refused(Refusal::new(431))),
            Line::Complete if in_request_line && is_blank(&head) => {
                // RFC 9112 section 2.2: ignore empty lines before a request
                // (old clients send a CRLF after a POST body).
                skipped += head.len();
                head.clear();
            }
            Line::Complete if in_request_line => {
                if let Err(status) = check_request_line(&head, limits) {
                    return Ok(ReadHead::Refused(Refusal::new(status)));
                }
                in_request_line = false;
            }
            Line::Complete if is_blank(&head[line_start..]) => break,
            Line::Complete => {
                header_lines += 1;
                if header_lines > limits.max_headers {
                    return Ok(ReadHead::Refused(Refusal::new(431)));
                }
            }
        }
    }
    Ok(match parse(&head, header_lines, limits) {
        Ok(head) => ReadHead::Request(head),
        Err(refusal) => ReadHead::Refused(refusal),
    })
}

/// The fast path of [`read_head`]: when the whole head is already in the
/// connection's buffer (a request usually arrives in one packet), it is
/// checked and parsed in place and consumed in one go, with the same limits
/// and answers as the line-by-line path. `None` when the buffer holds less
/// (or something unusual, like empty lines before the request): the
/// line-by-line path takes over, losing nothing.
fn read_buffered_head(io: &mut dyn Transport, limits: &Limits) -> io::Result<Option<ReadHead>> {
    let buffered = match io.fill_buf() {
        Ok(buffered) => buffered,
        // Nothing read yet, so this is between requests: as in `read_head`.
        Err(error) if is_timeout(&error) => return Ok(Some(ReadHead::Closed)),
        Err(error) => return Err(error),
    };
    if buffered.is_empty() {
        return Ok(Some(ReadHead::Closed));
    }
    let window = &buffered[..buffered.len().min(limits.max_head)];
    let Some(end) = window.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = &window[..end + 4];
    let Some(request_line_end) = head.iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    if request_line_end <= 1 {
        // An empty line first: the careful path skips it.
        return Ok(None);
    }
    if let Err(status) = check_request_line(&head[..=request_line_end], limits) {
        return Ok(Some(ReadHead::Refused(Refusal::new(status))));
    }
    // Every line but the request line and the final empty one is a field.
    let header_lines = head.iter().filter(|&&b| b == b'\n').count() - 2;
    if header_lines > limits.max_headers {
        return Ok(Some(ReadHead::Refused(Refusal::new(431))));
    }
    let read = match parse(head, header_lines, limits) {
        Ok(head) => ReadHead::Request(head),
        Err(refusal) => ReadHead::Refused(refusal),
    };
    let len = head.len();
    io.consume(len);
    Ok(Some(read))
}

/// Checks what `httparse` cannot tell us about the request line: a version
/// it does not parse (`HTTP/2.0`) is `505`, not malformed, and the target's
/// length has its own limit and status.
fn check_request_line(line: &[u8], limits: &Limits) -> Result<(), u16> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(_method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        // Not three parts: `httparse` will say it is malformed.
        return Ok(());
    };
    if is_unsupported_version(version) {
        return Err(505);
    }
    if target.len() > limits.max_target {
        return Err(414);
    }
    Ok(())
}

/// Whether `version` is a well-formed HTTP version other than 1.0 and 1.1
/// (`HTTP/2.0`, `HTTP/3`, `HTTP/1.2`..).
fn is_unsupported_version(version: &[u8]) -> bool {
    let Some(number) = version.strip_prefix(b"HTTP/") else {
        return false;
    };
    let (major, minor) = match number.iter().position(|&b| b == b'.') {
        Some(dot) => (&number[..dot], &number[dot + 1..]),
        None => (number, &b"0"[..]),
    };
    let digits = |part: &[u8]| !part.is_empty() && part.iter().all(u8::is_ascii_digit);
    digits(major) && digits(minor) && number != b"1.0" && number != b"1.1"
}

/// Parses a complete head (ending with its empty line) of `header_lines`
/// header lines and checks its framing.
fn parse(bytes: &[u8], header_lines: usize, limits: &Limits) -> Result<Head, Refusal> {
    let mut fields = vec![httparse::EMPTY_HEADER; header_lines];
    let mut parsed = httparse::Request::new(&mut fields);
    match parsed.parse(bytes) {
        Ok(httparse::Status::Complete(len)) if len == bytes.len() => {}
        // Our line count and the parser disagree only on malformed input.
        _ => return Err(Refusal::new(400)),
    }
    let (Some(method), Some(target), Some(version)) = (parsed.method, parsed.path, parsed.version)
    else {
        // A complete parse has all three; be safe rather than sorry.
        return Err(Refusal::new(400));
    };
    let version = if version == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let mut headers = Headers::default();
    for field in parsed.headers.iter() {
        headers.push(field.name, field.value);
    }
    let refuse = |status| Refusal {
        status,
        head_only: method == "HEAD",
    };
    check_host(&headers, version).map_err(refuse)?;
    let framing = framing(&headers, version).map_err(refuse)?;
    if let Framing::Length(length) = framing {
        if length > limits.max_body {
            return Err(refuse(413));
        }
    }
    // HTTP/1.1 keeps the connection open unless told otherwise; HTTP/1.0
    // closes it unless asked to keep it (RFC 9112 section 9.3).
    let keep_alive = !headers.lists("connection", "close")
        && (version == Version::Http11 || headers.lists("connection", "keep-alive"));
    // An HTTP/1.0 client cannot mean it (RFC 9110 section 10.1.1).
    let expect_continue = version == Version::Http11
        && headers
            .get("expect")
            .is_some_and(|value| value.eq_ignore_ascii_case("100-continue"));
    Ok(Head {
        method: method.to_string(),
        target: target.to_string(),
        version,
        headers,
        framing,
        keep_alive,
        expect_continue,
    })
}

/// An HTTP/1.1 request needs exactly one `Host`, any request at most one
/// (RFC 9112 section 3.2).
fn check_host(headers: &Headers, version: Version) -> Result<(), u16> {
    match headers.get_all_bytes("host").count() {
        0 if version == Version::Http11 => Err(400),
        0 | 1 => Ok(()),
        _ => Err(400),
    }
}

/// How the body is delimited (RFC 9112 section 6.3), or the status that
/// refuses a request whose framing is unclear. Ambiguity is always refused:
/// two parties that read a body's length differently are how requests are
/// smuggled.
fn framing(headers: &Headers, version: Version) -> Result<Framing, u16> {
    let has_length = headers.contains("content-length");
    if headers.contains("transfer-encoding") {
        // Both: which one a proxy in front believed is anyone's guess.
        // HTTP/1.0 has no transfer codings: the framing is faulty.
        if has_length || version == Version::Http10 {
            return Err(400);
        }
        return transfer_coding(headers);
    }
    if has_length {
        return content_length(headers).map(Framing::Length);
    }
    Ok(Framing::Empty)
}

/// `Transfer-Encoding` must be exactly `chunked`: another coding is `501`,
/// `chunked` twice (or not last) is `400`.
fn transfer_coding(headers: &Headers) -> Result<Framing, u16> {
    let mut codings = Vec::new();
    for value in headers.get_all_bytes("transfer-encoding") {
        let value = std::str::from_utf8(value).map_err(|_| 400u16)?;
        codings.extend(
            value
                .split(',')
                .map(str::trim)
                .filter(|coding| !coding.is_empty()),
        );
    }
    if codings
        .iter()
        .any(|coding| !coding.eq_ignore_ascii_case("chunked"))
    {
        return Err(501);
    }
    if codings.len() == 1 {
        Ok(Framing::Chunked)
    } else {
        Err(400)
    }
}

/// The body length from every `Content-Length` field. Repeats are allowed
/// only if they agree (RFC 9110 section 8.6), whether as separate fields or
/// as a list (`5, 5`); each must be digits only (no sign, no spaces inside).
fn content_length(headers: &Headers) -> Result<u64, u16> {
    let mut length = None;
    for value in headers.get_all_bytes("content-length") {
        for item in value.split(|&b| b == b',') {
            let item = std::str::from_utf8(item).map_err(|_| 400u16)?.trim();
            if item.is_empty() || !item.bytes().all(|b| b.is_ascii_digit()) {
                return Err(400);
            }
            let value: u64 = item.parse().map_err(|_| 400u16)?;
            if length.is_some_and(|seen| seen != value) {
                return Err(400);
            }
            length = Some(value);
        }
    }
    length.ok_or(400)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::transport::testing::Mock;

    fn read(input: &str) -> ReadHead {
        read_with(input, &Limits::default())
    }

    fn read_with(input: &str, limits: &Limits) -> ReadHead {
        read_head(&mut Mock::new(input), limits).expect("a Vec cannot fail")
    }

    fn head(input: &str) -> Head {
        match read(input) {
            ReadHead::Request(head) => head,
            other => panic!("{input:?} must parse, got {other:?}"),
        }
    }

    fn refused(input: &str) -> u16 {
        refused_with(input, &Limits::default())
    }

    fn refused_with(input: &str, limits: &Limits) -> u16 {
        match read_with(input, limits) {
            ReadHead::Refused(refusal) => refusal.status,
            other => panic!("{input:?} must be refused, got {other:?}"),
        }
    }

    #[test]
    fn a_simple_head() {
        let head = head("\r\nGET /a?b HTTP/1.1\r\nHost: x\r\nX-A:  1 \r\n\r\nrest");
        assert_eq!(head.method, "GET");
        assert_eq!(head.target, "/a?b");
        assert_eq!(head.version, Version::Http11);
        assert_eq!(head.headers.get("x-a"), Some("1"));
        assert_eq!(head.framing, Framing::Empty);
        assert!(head.keep_alive);
        assert!(!head.expect_continue);
        // Bare LF line ends are accepted in heads (RFC 9112 section 2.2).
        let head = self::head("GET / HTTP/1.0\nConnection: keep-alive\n\n");
        assert_eq!(head.version, Version::Http10);
        assert!(head.keep_alive);
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection() {
        let keep = |input: &str| head(input).keep_alive;
        assert!(keep("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(!keep(
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n"
        ));
        assert!(!keep(
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: a, close\r\n\r\n"
        ));
        assert!(!keep("GET / HTTP/1.0\r\n\r\n"));
        assert!(keep("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(!keep(
            "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"
        ));
    }

    #[test]
    fn framing_rules() {
        let framing =
            |headers: &str| head(&format!("POST / HTTP/1.1\r\nHost: x\r\n{headers}\r\n")).framing;
        assert_eq!(framing("Content-Length: 5\r\n"), Framing::Length(5));
        assert_eq!(
            framing("Content-Length: 5\r\nContent-Length: 5\r\n"),
            Framing::Length(5)
        );
        assert_eq!(framing("Content-Length: 5, 5\r\n"), Framing::Length(5));
        assert_eq!(framing("Transfer-Encoding: Chunked\r\n"), Framing::Chunked);
        let status =
            |headers: &str| refused(&format!("POST / HTTP/1.1\r\nHost: x\r\n{headers}\r\n"));
        assert_eq!(
            status("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
            400
        );
        assert_eq!(status("Content-Length: 5\r\nContent-Length: 6\r\n"), 400);
        assert_eq!(status("Content-Length: 5, 6\r\n"), 400);
        assert_eq!(status("Content-Length: +5\r\n"), 400);
        assert_eq!(status("Content-Length: -1\r\n"), 400);
        assert_eq!(status("Content-Length: 0x10\r\n"), 400);
        assert_eq!(status("Content-Length: \r\n"), 400);
        assert_eq!(status("Content-Length: 99999999999999999999999\r\n"), 400);
        assert_eq!(status("Transfer-Encoding: gzip\r\n"), 501);
        assert_eq!(status("Transfer-Encoding: gzip, chunked\r\n"), 501);
        assert_eq!(status("Transfer-Encoding: identity\r\n"), 501);
        assert_eq!(status("Transfer-Encoding: chunked, chunked\r\n"), 400);
        assert_eq!(
            status("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
            400
        );
        assert_eq!(status("Transfer-Encoding: \r\n"), 400);
        assert_eq!(status("Content-Length: 1048577\r\n"), 413);
        assert_eq!(
            refused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
    }

    #[test]
    fn host_rules() {
        assert_eq!(refused("GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
        assert_eq!(refused("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
        head("GET / HTTP/1.0\r\n\r\n");
    }

    #[test]
    fn versions() {
        assert_eq!(refused("GET / HTTP/2.0\r\nHost: x\r\n\r\n"), 505);
        assert_eq!(refused("GET / HTTP/3\r\n\r\n"), 505);
        assert_eq!(refused("GET / HTTP/1.2\r\nHost: x\r\n\r\n"), 505);
        assert_eq!(refused("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 505);
        assert_eq!(refused("GET / HTTP/x.y\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(refused("GET / http/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(refused("GET /\r\n\r\n"), 400);
    }

    #[test]
    fn malformed_heads() {
        for bad in [
            "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
            "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
            "G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET / HTTP/1.1\rHost: x\r\n\r\n",
            "\x16\x03\x01\x02\x00\x01\x00\x01\x7f\x03\x03\r\n\r\n",
        ] {
            assert_eq!(refused(bad), 400, "{bad:?}");
        }
    }

    #[test]
    fn limits() {
        let limits = Limits {
            max_head: 100,
            max_headers: 2,
            max_target: 20,
            ..Limits::default()
        };
        let target = "/".repeat(21);
        assert_eq!(
            refused_with(&format!("GET {target} HTTP/1.1\r\n"), &limits),
            414
        );
        let target = "/".repeat(200);
        assert_eq!(refused_with(&format!("GET {target}"), &limits), 414);
        assert_eq!(refused_with(&"G".repeat(200), &limits), 400);
        let three = "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n";
        assert_eq!(refused_with(three, &limits), 431);
        let long = format!("GET / HTTP/1.1\r\nHost: x\r\nA: {}\r\n\r\n", "a".repeat(80));
        assert_eq!(refused_with(&long, &limits), 431);
        // Exactly at the limit is fine.
        let exact = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nA: {}\r\n\r\n",
            "a".repeat(100 - 32)
        );
        assert_eq!(exact.len(), 100);
        assert!(matches!(read_with(&exact, &limits), ReadHead::Request(_)));
        // Empty lines before the request count too.
        let crlfs = "\r\n".repeat(60);
        assert_eq!(refused_with(&crlfs, &limits), 400);
    }

    #[test]
    fn ends_without_a_request() {
        assert!(matches!(read(""), ReadHead::Closed));
        assert!(matches!(read("\r\n\r\n"), ReadHead::Closed));
        assert_eq!(refused("GET / HTTP/1.1\r\nHost"), 400);
        let mut silent = Mock::pieces(vec![], true);
        let limits = Limits::default();
        assert!(matches!(
            read_head(&mut silent, &limits),
            Ok(ReadHead::Closed)
        ));
        let mut stalled = Mock::pieces(vec![b"GET / HT".to_vec()], true);
        assert!(matches!(
            read_head(&mut stalled, &limits),
            Ok(ReadHead::Refused(Refusal { status: 408, .. }))
        ));
    }

    #[test]
    fn expect_continue() {
        let expect = |input: &str| head(input).expect_continue;
        assert!(expect(
            "PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n"
        ));
        assert!(!expect(
            "PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"
        ));
    }

    #[test]
    fn head_requests_are_refused_without_a_body() {
        let input = "HEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: 9999999\r\n\r\n";
        assert!(matches!(
            read(input),
            ReadHead::Refused(Refusal {
                status: 413,
                head_only: true
            })
        ));
    }
}
