//! Checking a request head: everything that can be refused before the
//! handler runs.
//!
//! [`parse_head`] looks at the bytes that have arrived so far, without
//! reading: it says whether they hold a complete head (and parses it with
//! `httparse`), only part of one, or something to refuse. Each limit is
//! checked as soon as it can be, so a request line that is too long is
//! refused before the headers arrive, a head with too many headers before
//! the rest of them. The complete head is checked against RFC 9112's framing
//! rules, the ones whose violation lets a request be smuggled past a proxy.
//!
//! Lines may end in CRLF or in a bare LF (RFC 9112, section 2.2), the same
//! way wherever the head ends: a bare-LF request followed by a CRLF one in
//! the same read is two requests.

use std::borrow::Cow;
use std::mem::MaybeUninit;

use super::body::Framing;
use super::limits::Limits;
use super::request::{Headers, Version};

/// The most fields a head may have for `httparse`'s table of them to be
/// on the stack rather than allocated.
const FIELDS_ON_STACK: usize = 32;

/// A request head that passed every check.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) version: Version,
    /// The fields, with the request line's method and target.
    pub(crate) headers: Headers,
    pub(crate) framing: Framing,
    /// Whether the client wants the connection kept open after this request.
    pub(crate) keep_alive: bool,
    /// Whether the client waits for `100 Continue` before sending the body.
    pub(crate) expect_continue: bool,
}

impl Head {
    pub(crate) fn method(&self) -> &str {
        self.headers.method()
    }

    #[cfg(test)]
    pub(crate) fn target(&self) -> &str {
        self.headers.target()
    }
}

/// A request refused before the handler: answer `status`, then close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    /// The request was a `HEAD`: the answer must have no body.
    pub(crate) head_only: bool,
}

impl Refusal {
    pub(crate) fn new(status: u16) -> Refusal {
        Refusal {
            status,
            head_only: false,
        }
    }
}

/// What the bytes that have arrived hold.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// A complete head, and its length in bytes (with the empty lines
    /// skipped before it).
    Complete(Head, usize),
    /// The start of a head: more must arrive.
    Partial,
    /// Nothing, or only empty lines: no request has begun.
    Blank,
    /// Bad input, to answer before closing.
    Refused(Refusal),
}

/// Looks for a request head at the start of `buf`, and checks it.
pub(crate) fn parse_head(buf: &[u8], limits: &Limits) -> Parsed {
    // RFC 9112 section 2.2: ignore empty lines before a request (old
    // clients send a CRLF after a POST body). They count against the head
    // limit, or a stream of them would never end.
    let skipped = blank_lines(buf);
    let window = &buf[..buf.len().min(limits.max_head)];
    let over_limit = buf.len() >= limits.max_head;
    if skipped >= window.len() {
        return if over_limit {
            Parsed::Refused(Refusal::new(400))
        } else {
            Parsed::Blank
        };
    }
    let window = &window[skipped..];
    let Some(line_end) = window.iter().position(|&b| b == b'\n') else {
        if !over_limit {
            return Parsed::Partial;
        }
        // A request line this long is a long target, unless there is not
        // even a space in it: then it is garbage.
        let status = if window.contains(&b' ') { 414 } else { 400 };
        return Parsed::Refused(Refusal::new(status));
    };
    let later_minor = match check_request_line(&window[..=line_end], limits) {
        Ok(later_minor) => later_minor,
        Err(status) => return Parsed::Refused(Refusal::new(status)),
    };
    let Some(end) = head_end(window, line_end) else {
        // Every line after the request line is a field so far.
        let header_lines = window.iter().filter(|&&b| b == b'\n').count() - 1;
        if header_lines > limits.max_headers {
            return Parsed::Refused(Refusal::new(431));
        }
        return if over_limit {
            Parsed::Refused(Refusal::new(431))
        } else {
            Parsed::Partial
        };
    };
    let head = &window[..end];
    // Every line but the request line and the final empty one is a field.
    let header_lines = head.iter().filter(|&&b| b == b'\n').count() - 2;
    if header_lines > limits.max_headers {
        return Parsed::Refused(Refusal::new(431));
    }
    match parse(head, header_lines, later_minor, limits) {
        Ok(parsed) => Parsed::Complete(parsed, skipped + end),
        Err(refusal) => Parsed::Refused(refusal),
    }
}

/// The length of the empty lines (CRLF or LF) at the start of `buf`.
fn blank_lines(buf: &[u8]) -> usize {
    let mut at = 0;
    loop {
        match &buf[at..] {
            [b'\n', ..] => at += 1,
            [b'\r', b'\n', ..] => at += 2,
            _ => return at,
        }
    }
}

/// Where the head that starts `window` ends: just after the first empty
/// line (LF LF or LF CR LF) at or after the request line's LF at
/// `line_end`.
fn head_end(window: &[u8], line_end: usize) -> Option<usize> {
    let mut at = line_end;
    loop {
        match &window[at + 1..] {
            [b'\n', ..] => return Some(at + 2),
            [b'\r', b'\n', ..] => return Some(at + 3),
            _ => {}
        }
        at += 1 + window[at + 1..].iter().position(|&b| b == b'\n')?;
    }
}

/// Checks what `httparse` cannot tell us about the request line: a version
/// it does not parse (`HTTP/2.0`) is `505`, not malformed, and the target's
/// length has its own limit and status. Says whether the version is a
/// later 1.x (`HTTP/1.2`), which is served as 1.1.
fn check_request_line(line: &[u8], limits: &Limits) -> Result<bool, u16> {
    let Some((_method, target, version)) = request_line_parts(line) else {
        // Not three parts: `httparse` will say it is malformed.
        return Ok(false);
    };
    let later_minor = match classify_version(version) {
        VersionClass::AsIs => false,
        VersionClass::LaterMinor => true,
        VersionClass::Unsupported => return Err(505),
    };
    if target.len() > limits.max_target {
        return Err(414);
    }
    Ok(later_minor)
}

/// The three parts of a request line (with or without its line end), if it
/// has three: exactly two spaces.
fn request_line_parts(line: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let space = |part: &[u8]| part.iter().position(|&b| b == b' ');
    let first = space(line)?;
    let (method, rest) = (&line[..first], &line[first + 1..]);
    let second = space(rest)?;
    let (target, version) = (&rest[..second], &rest[second + 1..]);
    if space(version).is_some() {
        return None;
    }
    Some((method, target, version))
}

/// What a well-formed version says about serving the request.
enum VersionClass {
    /// `HTTP/1.0` and `HTTP/1.1`, or not a well-formed version at all
    /// (`httparse` refuses it as malformed).
    AsIs,
    /// `HTTP/1.2` and later 1.x: the same major version, served as the
    /// highest minor version we speak, 1.1 (RFC 9110, section 2.5).
    LaterMinor,
    /// Another major version (`HTTP/2.0`, `HTTP/3`): `505`.
    Unsupported,
}

fn classify_version(version: &[u8]) -> VersionClass {
    // Nearly every request.
    if version == b"HTTP/1.1" || version == b"HTTP/1.0" {
        return VersionClass::AsIs;
    }
    let Some(number) = version.strip_prefix(b"HTTP/") else {
        return VersionClass::AsIs;
    };
    let (major, minor) = match number.iter().position(|&b| b == b'.') {
        Some(dot) => (&number[..dot], &number[dot + 1..]),
        None => (number, &b"0"[..]),
    };
    let digits = |part: &[u8]| !part.is_empty() && part.iter().all(u8::is_ascii_digit);
    if !digits(major) || !digits(minor) || number == b"1.0" || number == b"1.1" {
        VersionClass::AsIs
    } else if major == b"1" && number.contains(&b'.') {
        VersionClass::LaterMinor
    } else {
        VersionClass::Unsupported
    }
}

/// The head with a later 1.x version rewritten as `HTTP/1.1`, which
/// `httparse` parses; the head itself otherwise.
fn with_served_version(head: &[u8]) -> Cow<'_, [u8]> {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let line = &head[..line_end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match request_line_parts(line) {
        Some((_, _, version)) if matches!(classify_version(version), VersionClass::LaterMinor) => {
            let version_start = line.len() - version.len();
            let mut rewritten = Vec::with_capacity(head.len());
            rewritten.extend_from_slice(&line[..version_start]);
            rewritten.extend_from_slice(b"HTTP/1.1");
            rewritten.extend_from_slice(&head[line.len()..]);
            Cow::Owned(rewritten)
        }
        _ => Cow::Borrowed(head),
    }
}

/// Parses a complete head (ending with its empty line) of `header_lines`
/// header lines, whose version is a `later_minor` 1.x or not, and checks
/// its framing.
fn parse(
    bytes: &[u8],
    header_lines: usize,
    later_minor: bool,
    limits: &Limits,
) -> Result<Head, Refusal> {
    let bytes = if later_minor {
        with_served_version(bytes)
    } else {
        Cow::Borrowed(bytes)
    };
    let bytes = &bytes[..];
    // Room for exactly the head's fields: on the stack for a usual head,
    // never initialised (`httparse` writes each before reading it).
    let mut on_stack = [MaybeUninit::uninit(); FIELDS_ON_STACK];
    let mut on_heap = Vec::new();
    let fields = if header_lines <= FIELDS_ON_STACK {
        &mut on_stack[..header_lines]
    } else {
        on_heap.resize(header_lines, MaybeUninit::uninit());
        &mut on_heap[..]
    };
    let mut parsed = httparse::Request::new(&mut []);
    match parsed.parse_with_uninit_headers(bytes, fields) {
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
    let mut headers = Headers::with_line(method, target, bytes.len(), parsed.headers.len());
    let mut present = Present::default();
    for field in parsed.headers.iter() {
        present.note(field.name);
        headers.push(field.name, field.value);
    }
    let refuse = |status| Refusal {
        status,
        head_only: method == "HEAD",
    };
    check_host(&headers, version).map_err(refuse)?;
    let framing = framing(&headers, version, present).map_err(refuse)?;
    if let Framing::Length(length) = framing {
        if length > limits.max_body {
            return Err(refuse(413));
        }
    }
    // HTTP/1.1 keeps the connection open unless told otherwise; HTTP/1.0
    // closes it unless asked to keep it (RFC 9112 section 9.3).
    let connection_lists = |token| present.connection && headers.lists("connection", token);
    let keep_alive = !connection_lists("close")
        && (version == Version::Http11 || connection_lists("keep-alive"));
    // An HTTP/1.0 client cannot mean it (RFC 9110 section 10.1.1).
    let expect_continue = version == Version::Http11
        && present.expect
        && headers
            .get("expect")
            .is_some_and(|value| value.eq_ignore_ascii_case("100-continue"));
    Ok(Head {
        version,
        headers,
        framing,
        keep_alive,
        expect_continue,
    })
}

/// Which of the fields that frame a request, or say what to do with its
/// connection, a head has: noted in one pass as its fields are copied, so
/// that a check whose field is absent (most, for most requests) looks at
/// nothing.
#[derive(Clone, Copy, Debug, Default)]
struct Present {
    content_length: bool,
    transfer_encoding: bool,
    connection: bool,
    expect: bool,
}

impl Present {
    fn note(&mut self, name: &str) {
        let is = |known: &str| name.eq_ignore_ascii_case(known);
        // The length first: most fields are none of these.
        match name.len() {
            6 if is("expect") => self.expect = true,
            10 if is("connection") => self.connection = true,
            14 if is("content-length") => self.content_length = true,
            17 if is("transfer-encoding") => self.transfer_encoding = true,
            _ => {}
        }
    }
}

/// An HTTP/1.1 request needs exactly one `Host`, any request at most one
/// (RFC 9112 section 3.2), and its value must be a valid `uri-host [ ":" port ]` (section 3.2):
/// a server that routed by a `Host` another party reads differently could
/// be steered by it.
fn check_host(headers: &Headers, version: Version) -> Result<(), u16> {
    let mut hosts = headers.get_all_bytes("host");
    match (hosts.next(), hosts.next()) {
        (None, _) if version == Version::Http11 => Err(400),
        (None, _) => Ok(()),
        (Some(host), None) if is_host(host) => Ok(()),
        _ => Err(400),
    }
}

/// Whether `value` is `uri-host [ ":" port ]` (RFC 3986, section 3.2.2):
/// an IP literal in brackets, or a name of unreserved characters,
/// percent-escapes and sub-delimiters; then an optional port of digits. An
/// empty value is allowed (a target without an authority).
fn is_host(value: &[u8]) -> bool {
    let (host, port) = match value.strip_prefix(b"[") {
        Some(literal) => {
            let Some(close) = literal.iter().position(|&b| b == b']') else {
                return false;
            };
            let inside = &literal[..close];
            let literal_ok = !inside.is_empty()
                && inside
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b":.".contains(&b) || is_unreserved(b));
            if !literal_ok {
                return false;
            }
            (&b""[..], &literal[close + 1..])
        }
        None => match value.iter().position(|&b| b == b':') {
            Some(colon) => (&value[..colon], &value[colon..]),
            None => (value, &b""[..]),
        },
    };
    let port_ok = match port {
        [] => true,
        [b':', digits @ ..] => digits.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    port_ok && is_reg_name(host)
}

/// `reg-name`: unreserved characters, `%` escapes and sub-delimiters.
fn is_reg_name(name: &[u8]) -> bool {
    let mut at = 0;
    while at < name.len() {
        let b = name[at];
        if b == b'%' {
            let escape = name.get(at + 1..at + 3);
            if !escape.is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            at += 3;
            continue;
        }
        if !(is_unreserved(b) || b"!$&'()*+,;=".contains(&b)) {
            return false;
        }
        at += 1;
    }
    true
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

/// How the body is delimited (RFC 9112 section 6.3), or the status that
/// refuses a request whose framing is unclear. Ambiguity is always refused:
/// two parties that read a body's length differently are how requests are
/// smuggled.
fn framing(headers: &Headers, version: Version, present: Present) -> Result<Framing, u16> {
    let has_length = present.content_length;
    if present.transfer_encoding {
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

/// `Transfer-Encoding` must end with `chunked`, or the body's length cannot
/// be known (RFC 9112 section 6.3): `400`, as is `chunked` twice. `chunked`
/// after another coding (`gzip, chunked`) is well framed but a coding we do
/// not decode: `501`.
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
    let is_chunked = |coding: &&str| coding.eq_ignore_ascii_case("chunked");
    match codings.split_last() {
        Some((last, before)) if is_chunked(last) && !before.iter().any(is_chunked) => {
            if before.is_empty() {
                Ok(Framing::Chunked)
            } else {
                Err(501)
            }
        }
        _ => Err(400),
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

    fn read(input: &str) -> Parsed {
        read_with(input, &Limits::default())
    }

    fn read_with(input: &str, limits: &Limits) -> Parsed {
        parse_head(input.as_bytes(), limits)
    }

    fn head(input: &str) -> Head {
        match read(input) {
            Parsed::Complete(head, _) => head,
            other => panic!("{input:?} must parse, got {other:?}"),
        }
    }

    fn refused(input: &str) -> u16 {
        refused_with(input, &Limits::default())
    }

    fn refused_with(input: &str, limits: &Limits) -> u16 {
        match read_with(input, limits) {
            Parsed::Refused(refusal) => refusal.status,
            other => panic!("{input:?} must be refused, got {other:?}"),
        }
    }

    #[test]
    fn a_simple_head() {
        let head = head("\r\nGET /a?b HTTP/1.1\r\nHost: x\r\nX-A:  1 \r\n\r\nrest");
        assert_eq!(head.method(), "GET");
        assert_eq!(head.target(), "/a?b");
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
    fn a_head_ends_at_its_first_empty_line_whatever_the_line_ends() {
        let length = |input: &str| match read(input) {
            Parsed::Complete(_, length) => length,
            other => panic!("{input:?} must parse, got {other:?}"),
        };
        let bare = "GET / HTTP/1.1\nHost: x\n\n";
        let crlf = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        // Followed by a CRLF request in the same read: still its own head.
        assert_eq!(length(&format!("{bare}{crlf}")), bare.len());
        assert_eq!(length(&format!("{crlf}{bare}")), crlf.len());
        // A body holding CRLFCRLF after a bare-LF head does not extend it.
        let post = "POST / HTTP/1.1\nHost: x\nContent-Length: 4\n\n\r\n\r\n";
        assert_eq!(length(post), post.len() - 4);
        // Mixed within one head, and empty lines before it.
        let mixed = "GET / HTTP/1.1\r\nHost: x\n\r\n";
        assert_eq!(length(&format!("\r\n\n{mixed}")), 3 + mixed.len());
        // Not complete until the empty line.
        assert!(matches!(read("GET / HTTP/1.1\nHost: x\n"), Parsed::Partial));
        assert!(matches!(
            read("GET / HTTP/1.1\r\nHost: x\r\n\r"),
            Parsed::Partial
        ));
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
        // Chunked must be the final coding, or the length is unknown.
        assert_eq!(status("Transfer-Encoding: gzip\r\n"), 400);
        assert_eq!(status("Transfer-Encoding: identity\r\n"), 400);
        assert_eq!(status("Transfer-Encoding: chunked, identity\r\n"), 400);
        assert_eq!(
            status("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"),
            400
        );
        // Framed, but with a coding we do not decode.
        assert_eq!(status("Transfer-Encoding: gzip, chunked\r\n"), 501);
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
        for bad in [
            "exa mple.com",
            "a/b@c",
            "x:abc",
            "x:80:80",
            "a@b",
            "[::1",
            "[]",
            "[::1]x",
            "%zz",
            "a\"b",
        ] {
            let input = format!("GET / HTTP/1.1\r\nHost: {bad}\r\n\r\n");
            assert_eq!(refused(&input), 400, "{bad:?}");
        }
        for good in [
            "example.com",
            "example.com:8080",
            "127.0.0.1:80",
            "[::1]:80",
            "[::1]",
            "x:",
            "a%20b",
            "sub_domain.example~",
            "",
        ] {
            head(&format!("GET / HTTP/1.1\r\nHost: {good}\r\n\r\n"));
        }
    }

    #[test]
    fn versions() {
        assert_eq!(refused("GET / HTTP/2.0\r\nHost: x\r\n\r\n"), 505);
        assert_eq!(refused("GET / HTTP/3\r\n\r\n"), 505);
        // A later minor version is served as the highest we speak.
        let later = head("GET / HTTP/1.2\r\nHost: x\r\n\r\n");
        assert_eq!(later.version, Version::Http11);
        assert_eq!(head("GET /a HTTP/1.9\nHost: x\n\n").target(), "/a");
        assert_eq!(refused("GET / HTTP/2.1\r\nHost: x\r\n\r\n"), 505);
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
        assert!(matches!(read_with(&exact, &limits), Parsed::Complete(..)));
        // Empty lines before the request count too.
        let crlfs = "\r\n".repeat(60);
        assert_eq!(refused_with(&crlfs, &limits), 400);
    }

    #[test]
    fn blank_and_partial_input() {
        assert!(matches!(read(""), Parsed::Blank));
        assert!(matches!(read("\r\n\r\n"), Parsed::Blank));
        assert!(matches!(read("\n"), Parsed::Blank));
        assert!(matches!(read("GET / HT"), Parsed::Partial));
        assert!(matches!(read("GET / HTTP/1.1\r\nHost"), Parsed::Partial));
        assert!(matches!(read("\r\nGET"), Parsed::Partial));
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
            Parsed::Refused(Refusal {
                status: 413,
                head_only: true
            })
        ));
    }
}
