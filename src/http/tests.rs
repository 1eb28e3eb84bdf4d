//! The protocol, end to end, on connections in memory: requests in, one
//! call per request, responses out, and what the call said about keeping
//! the connection.

use std::io::{self, Read};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::date::is_imf_fixdate;
use super::serve::Served;
use super::transport::testing::{turn, Mock, Told, PEER};
use super::transport::Transport;
use super::*;

/// A response as the client reads it.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn closes(&self) -> bool {
        self.header("connection") == Some("close")
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("test bodies are text")
    }
}

/// Parses one response from the start of `raw` and checks what every
/// response must have: a `Date`, and a `Content-Length` or
/// `Transfer-Encoding` (but for bodies that end with the connection, and
/// `204`/`304`). Returns it and what follows it.
fn parse_reply(raw: &[u8], head_only: bool) -> (Reply, &[u8]) {
    let mut fields = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Response::new(&mut fields);
    let len = match parsed.parse(raw) {
        Ok(httparse::Status::Complete(len)) => len,
        other => panic!(
            "not a response ({other:?}): {:?}",
            String::from_utf8_lossy(raw)
        ),
    };
    assert!(raw.starts_with(b"HTTP/1.1 "));
    let status = parsed.code.expect("a complete response has a status");
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            let value = String::from_utf8(h.value.to_vec()).expect("our fields are text");
            (h.name.to_string(), value)
        })
        .collect();
    let mut reply = Reply {
        status,
        headers,
        body: Vec::new(),
    };
    let date = reply.header("date").expect("every response has a Date");
    assert!(is_imf_fixdate(date), "{date:?}");
    let rest = &raw[len..];
    let length = reply
        .header("content-length")
        .map(|v| v.parse::<usize>().expect("a number"));
    let chunked = reply.header("transfer-encoding") == Some("chunked");
    assert!(!(length.is_some() && chunked), "both framings");
    if status == 204 || status == 304 {
        assert!(length.is_none() && !chunked);
        return (reply, rest);
    }
    if head_only {
        assert!(length.is_some() || chunked || reply.closes());
        return (reply, rest);
    }
    if let Some(length) = length {
        reply.body = rest[..length].to_vec();
        (reply, &rest[length..])
    } else if chunked {
        let mut rest = rest;
        loop {
            let line_end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("a size line");
            let size = std::str::from_utf8(&rest[..line_end]).expect("hex");
            let size = usize::from_str_radix(size, 16).expect("a chunk size");
            rest = &rest[line_end + 2..];
            if size == 0 {
                assert!(rest.starts_with(b"\r\n"));
                return (reply, &rest[2..]);
            }
            reply.body.extend_from_slice(&rest[..size]);
            assert_eq!(&rest[size..size + 2], b"\r\n");
            rest = &rest[size + 2..];
        }
    } else {
        assert!(
            reply.closes(),
            "a body without length must end the connection"
        );
        reply.body = rest.to_vec();
        (reply, &[])
    }
}

/// The routes the tests talk to.
fn app(shutdown: Arc<AtomicBool>) -> impl Fn(&mut Request<'_>) -> Response + Send + Sync + 'static {
    move |req: &mut Request<'_>| match req.path() {
        "/" => Response::text("Hello, world!"),
        "/echo" => match req.read_body() {
            Ok(body) => Response::new(200).body(body),
            Err(error) => Response::text(error.to_string()).with_status(422),
        },
        "/describe" => Response::text(format!(
            "{} {} {:?} {} {} {}",
            req.method(),
            req.path(),
            req.query(),
            req.version(),
            req.header("x-test").unwrap_or("-"),
            req.peer_addr(),
        )),
        "/stream" => Response::new(200).body_reader(io::Cursor::new(b"streamed".to_vec()), None),
        "/healthz" => readiness(req),
        "/slow-shutdown" => {
            // Shutdown starts while the request is being served.
            shutdown.store(true, Ordering::SeqCst);
            Response::text("done")
        }
        "/panic" => panic!("a deliberate panic in a test handler"),
        "/no-content" => Response::new(204),
        // Answers without reading the body.
        _ => Response::text("not found").with_status(404),
    }
}

/// Serves requests from `input` until the connection ends; returns each
/// call's output and verdict.
fn converse(input: impl Into<Vec<u8>>) -> Vec<(Vec<u8>, bool)> {
    converse_with(Mock::new(input), Limits::default())
}

fn converse_with(mut mock: Mock, limits: Limits) -> Vec<(Vec<u8>, bool)> {
    let handler = handler(app(mock.shutting_down.clone())).limits(limits);
    let serve = |mock: &mut Mock| handler.serve_one(mock);
    let mut turns = Vec::new();
    // A bound, so that a bug that loops fails the test instead of hanging.
    for _ in 0..100 {
        let (output, open) = turn(&mut mock, &serve);
        let open = match open {
            Ok(open) => open,
            // Too slow: answered `408` (or cut), then closed.
            Err(error) if error.kind() == io::ErrorKind::TimedOut => false,
            Err(error) => panic!("in-memory I/O cannot fail: {error}"),
        };
        turns.push((output, open));
        if !open {
            return turns;
        }
    }
    panic!("the connection never ended");
}

/// The replies to a conversation on which the client sends `input`, which
/// must be `expected` in number.
fn replies_to(input: &str, expected: usize) -> Vec<Reply> {
    let turns = converse(input);
    collect(turns, expected, false)
}

fn collect(turns: Vec<(Vec<u8>, bool)>, expected: usize, head_only: bool) -> Vec<Reply> {
    let mut replies = Vec::new();
    for (output, _) in &turns {
        if output.is_empty() {
            continue;
        }
        let (reply, rest) = parse_reply(output, head_only);
        assert!(
            rest.is_empty(),
            "one response per request: {:?}",
            String::from_utf8_lossy(rest)
        );
        replies.push(reply);
    }
    assert_eq!(replies.len(), expected, "{replies:#?}");
    replies
}

/// The status of the answer to `input`, which must be refused: answered once
/// with `Connection: close`, and the connection closed.
fn refusal(input: &[u8]) -> u16 {
    refusal_with(input, Limits::default())
}

fn refusal_with(input: &[u8], limits: Limits) -> u16 {
    let turns = converse_with(Mock::new(input), limits);
    assert_eq!(turns.len(), 1, "refused on the first request");
    let (output, keep_alive) = &turns[0];
    assert!(!keep_alive);
    let (reply, rest) = parse_reply(output, false);
    assert!(rest.is_empty());
    assert!(reply.closes(), "{reply:?}");
    reply.status
}

#[test]
fn hello_world() {
    let turns = converse("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    // Kept open after the response; the next call finds the client gone.
    assert_eq!(turns.len(), 2);
    assert!(turns[0].1);
    assert_eq!(turns[1], (Vec::new(), false));
    let (reply, _) = parse_reply(&turns[0].0, false);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "Hello, world!");
    assert_eq!(reply.header("content-length"), Some("13"));
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(reply.header("connection"), None);
}

#[test]
fn head_has_the_fields_of_get_without_the_body() {
    let turns = converse("HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, rest) = parse_reply(&turns[0].0, true);
    assert!(rest.is_empty(), "no body after a HEAD response");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("13"));
    assert!(turns[0].1);
    let (get, _) = parse_reply(&turns[1].0, false);
    assert_eq!(get.text(), "Hello, world!");
    // Unknown length: the fields of a chunked GET.
    let turns = converse("HEAD /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, rest) = parse_reply(&turns[0].0, true);
    assert!(rest.is_empty());
    assert_eq!(head.header("transfer-encoding"), Some("chunked"));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let input = "GET /describe?n=1 HTTP/1.1\r\nHost: x\r\n\r\n\
                 POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
                 GET /describe?n=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let replies = replies_to(input, 3);
    assert!(replies[0].text().starts_with("GET /describe Some(\"n=1\")"));
    assert_eq!(replies[1].text(), "hello");
    assert!(replies[2].text().starts_with("GET /describe Some(\"n=3\")"));
    assert!(replies[2].closes());
}

#[test]
fn the_request_describes_itself() {
    let replies = replies_to(
        "GET /describe?a=b HTTP/1.1\r\nHost: x\r\nX-TEST:  yes \r\n\r\n",
        1,
    );
    assert_eq!(
        replies[0].text(),
        format!("GET /describe Some(\"a=b\") HTTP/1.1 yes {PEER}")
    );
}

#[test]
fn absolute_form_is_routed_by_its_path() {
    let input = "GET http://example.com/describe?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n";
    let replies = replies_to(input, 1);
    assert!(
        replies[0].text().starts_with("GET /describe Some(\"q=1\")"),
        "{}",
        replies[0].text()
    );
}

#[test]
fn http10_closes_unless_asked_to_keep_alive() {
    let turns = converse("GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n");
    assert_eq!(turns.len(), 1);
    assert!(!turns[0].1);
    let (reply, _) = parse_reply(&turns[0].0, false);
    assert!(reply.closes());

    let turns = converse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n");
    assert_eq!(turns.len(), 2);
    assert!(turns[0].1 && !turns[1].1);
    let (first, _) = parse_reply(&turns[0].0, false);
    assert_eq!(first.header("connection"), Some("keep-alive"));
    let (second, _) = parse_reply(&turns[1].0, false);
    assert!(second.closes());
}

#[test]
fn connection_close_is_honoured() {
    let replies = replies_to(
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
        1,
    );
    assert!(replies[0].closes());
}

#[test]
fn shutdown_closes_after_the_response() {
    // Started before the request: it is answered, and so is the one the
    // client had already sent behind it, which carries the close.
    let mock =
        Mock::new("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    mock.shutting_down.store(true, Ordering::SeqCst);
    let replies = collect(converse_with(mock, Limits::default()), 2, false);
    assert_eq!(replies[0].status, 503);
    assert_eq!(replies[0].text(), "shutting down");
    assert!(!replies[0].closes());
    assert_eq!(replies[1].text(), "Hello, world!");
    assert!(replies[1].closes());
    // Started while the request was served.
    let replies = replies_to("GET /slow-shutdown HTTP/1.1\r\nHost: x\r\n\r\n", 1);
    assert_eq!(replies[0].text(), "done");
    assert!(replies[0].closes());
    // Pipelined behind one in flight: every one answered, only the last
    // closes.
    let batch = "GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(50);
    let mock = Mock::new(batch);
    mock.shutting_down.store(true, Ordering::SeqCst);
    let replies = collect(converse_with(mock, Limits::default()), 50, false);
    assert!(replies[..49].iter().all(|reply| !reply.closes()));
    assert!(replies[49].closes());
    // Not started: ready.
    let replies = replies_to(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        1,
    );
    assert_eq!((replies[0].status, replies[0].text()), (200, "ok"));
}

#[test]
fn a_panic_is_answered_500_and_passed_on() {
    let mut mock =
        Mock::new("GET /panic HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let handler = handler(app(Arc::default()));
    let result = panic::catch_unwind(AssertUnwindSafe(|| handler.serve_one(&mut mock)));
    assert!(result.is_err(), "the panic goes on to the server");
    let (reply, rest) = parse_reply(&mock.output, false);
    assert!(rest.is_empty());
    assert_eq!(reply.status, 500);
    assert!(reply.closes());
}

#[test]
fn continue_is_sent_when_the_body_is_read() {
    let input =
        "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello";
    let turns = converse(input);
    let output = &turns[0].0;
    let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
    assert!(
        output.starts_with(interim),
        "{:?}",
        String::from_utf8_lossy(output)
    );
    let (reply, _) = parse_reply(&output[interim.len()..], false);
    assert_eq!(reply.text(), "hello");
    assert!(turns[0].1);
}

#[test]
fn continue_is_not_sent_when_the_body_is_not_read() {
    let input =
        "POST /elsewhere HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
    let turns = converse(input);
    assert_eq!(turns.len(), 1);
    let (output, keep_alive) = &turns[0];
    assert!(
        output.starts_with(b"HTTP/1.1 404 "),
        "{:?}",
        String::from_utf8_lossy(output)
    );
    // The client may or may not send the body now: the connection cannot
    // tell it from a next request, so it closes.
    assert!(!keep_alive);
    let (reply, _) = parse_reply(output, false);
    assert!(reply.closes());
    // And refused bodies are never invited.
    let input =
        "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2000000\r\n\r\n";
    assert_eq!(refusal(input.as_bytes()), 413);
}

#[test]
fn chunked_request_bodies_are_decoded() {
    let input = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                 5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: x\r\n\r\n\
                 GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let replies = replies_to(input, 2);
    assert_eq!(replies[0].text(), "hello, world");
    assert_eq!(replies[1].text(), "Hello, world!");
}

#[test]
fn unknown_lengths_are_sent_chunked_or_until_close() {
    let replies = replies_to(
        "GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        1,
    );
    assert_eq!(replies[0].header("transfer-encoding"), Some("chunked"));
    assert_eq!(replies[0].text(), "streamed");
    let turns = converse("GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(turns.len(), 1, "a close-delimited body ends the connection");
    let (reply, _) = parse_reply(&turns[0].0, false);
    assert!(reply.closes() && reply.header("content-length").is_none());
    assert_eq!(reply.text(), "streamed");
}

#[test]
fn no_content_has_no_length() {
    let replies = replies_to(
        "GET /no-content HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        1,
    );
    assert_eq!(replies[0].status, 204);
}

#[test]
fn small_unread_bodies_are_drained_large_ones_close() {
    let small = format!(
        "POST /elsewhere HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{}\
         GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "x".repeat(1000)
    );
    let replies = replies_to(&small, 2);
    assert_eq!(replies[0].status, 404);
    assert!(!replies[0].closes());
    assert_eq!(replies[1].text(), "Hello, world!");

    let chunked = "POST /elsewhere HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                   3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_eq!(replies_to(chunked, 2)[1].text(), "Hello, world!");

    let large = format!(
        "POST /elsewhere HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{}",
        "x".repeat(100_000)
    );
    let replies = replies_to(&large, 1);
    assert_eq!(replies[0].status, 404);
    assert!(replies[0].closes());
}

#[test]
fn the_client_leaving_ends_the_conversation_quietly() {
    assert_eq!(converse(""), [(Vec::new(), false)]);
    // Empty lines between requests are not requests (RFC 9112 section 2.2).
    let turns = converse("GET / HTTP/1.1\r\nHost: x\r\n\r\n\r\n");
    assert_eq!(turns.len(), 2);
    assert_eq!(turns[1], (Vec::new(), false));
    // Silent past the read timeout between requests: the same.
    let silent = Mock::pieces(vec![], true);
    assert_eq!(
        converse_with(silent, Limits::default()),
        [(Vec::new(), false)]
    );
}

#[test]
fn requests_cut_short_are_answered_and_closed() {
    // Hung up in the head.
    assert_eq!(refusal(b"GET / HTTP/1.1\r\nHost: x\r\n"), 400);
    // Stalled in the head, one byte at a time, past the read timeout.
    let pieces = b"GET / HTTP/1.1\r\n".iter().map(|&b| vec![b]).collect();
    let turns = converse_with(Mock::pieces(pieces, true), Limits::default());
    let (reply, _) = parse_reply(&turns[0].0, false);
    assert_eq!(reply.status, 408);
    assert!(!turns[0].1);
    // Hung up in the body the handler reads: the layer's answer, not the
    // handler's (it would have said 422).
    assert_eq!(
        refusal(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello"),
        400
    );
    let stalled = Mock::pieces(
        vec![b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello".to_vec()],
        true,
    );
    let turns = converse_with(stalled, Limits::default());
    let (reply, _) = parse_reply(&turns[0].0, false);
    assert_eq!(reply.status, 408);
}

#[test]
fn bad_requests_are_400() {
    for bad in [
        &b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
        b"\x00\x01\x02\x03\r\n\r\n",
    ] {
        assert_eq!(refusal(bad), 400, "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn bodies_over_the_limit_are_413() {
    let limits = Limits {
        max_body: 10,
        ..Limits::default()
    };
    let long = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world";
    assert_eq!(refusal_with(long, limits), 413);
    let exact = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\nhelloworld";
    let replies = collect(converse_with(Mock::new(exact), limits), 1, false);
    assert_eq!(replies[0].text(), "helloworld");
    let chunked = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                    6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n";
    assert_eq!(refusal_with(chunked, limits), 413);
}

#[test]
fn long_targets_are_414_and_large_heads_431() {
    let limits = Limits {
        max_head: 200,
        max_headers: 4,
        max_target: 50,
        ..Limits::default()
    };
    let target = format!("/{}", "a".repeat(50));
    let input = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(refusal_with(input.as_bytes(), limits), 414);
    // A request line that never ends within the head limit.
    let input = format!("GET /{}", "a".repeat(300));
    assert_eq!(refusal_with(input.as_bytes(), limits), 414);
    let input = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nA: {}\r\n\r\n",
        "a".repeat(200)
    );
    assert_eq!(refusal_with(input.as_bytes(), limits), 431);
    let input = "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    assert_eq!(refusal_with(input.as_bytes(), limits), 431);
    let input = "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nConnection: close\r\n\r\n";
    assert_eq!(
        collect(converse_with(Mock::new(input), limits), 1, false)[0].status,
        200
    );
}

#[test]
fn other_transfer_codings_are_501() {
    assert_eq!(
        refusal(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        501
    );
}

#[test]
fn other_versions_are_505() {
    assert_eq!(refusal(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n"), 505);
    assert_eq!(refusal(b"GET / HTTP/3.0\r\nHost: x\r\n\r\n"), 505);
    assert_eq!(refusal(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 505);
}

#[test]
fn refusals_of_head_requests_have_no_body() {
    let limits = Limits {
        max_body: 1,
        ..Limits::default()
    };
    let turns = converse_with(
        Mock::new("HEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"),
        limits,
    );
    let (reply, rest) = parse_reply(&turns[0].0, true);
    assert_eq!(reply.status, 413);
    assert!(rest.is_empty());
}

#[test]
fn public_types_debug_and_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<HttpHandler<fn(&mut Request<'_>) -> Response>>();
    send_sync::<Limits>();
    fn send<T: Send>() {}
    send::<Response>();

    let handler = handler(|_req| Response::text("x"));
    assert!(format!("{handler:?}").starts_with("HttpHandler { limits: Limits {"));
    let debug = Arc::new(std::sync::Mutex::new(String::new()));
    let seen = debug.clone();
    let handler = self::handler(move |req| {
        if let Ok(mut seen) = seen.lock() {
            *seen = format!("{req:?}");
        }
        let _ = req.body().read(&mut [0; 1]);
        Response::new(200)
    });
    let mut mock = Mock::new("GET /x HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(
        handler.serve_one(&mut mock).expect("in memory"),
        Served::Idle
    );
    let debug = debug.lock().map(|d| d.clone()).unwrap_or_default();
    assert!(
        debug.starts_with("Request { method: \"GET\", target: \"/x\""),
        "{debug}"
    );
    assert_eq!(format!("{:?}", Version::Http10), "Http10");
}

#[test]
fn huge_limits_do_not_overflow() {
    let limits = Limits {
        max_head: usize::MAX,
        max_headers: usize::MAX,
        max_target: usize::MAX,
        max_body: u64::MAX,
        gathered_body: u64::MAX,
        ..Limits::default()
    };
    let input = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                 3;a=b\r\nabc\r\n0\r\nT: 1\r\n\r\n\
                 POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nde";
    let replies = collect(converse_with(Mock::new(input), limits), 2, false);
    assert_eq!((replies[0].text(), replies[1].text()), ("abc", "de"));
}

/// Serves `mock` once, as one call of the server's turn.
fn call(
    handler: &HttpHandler<impl Fn(&mut Request<'_>) -> Response + Send + Sync + 'static>,
    mock: &mut Mock,
) -> io::Result<Served> {
    handler.serve_one(mock)
}

#[test]
fn a_head_in_pieces_is_gathered_across_calls_without_waiting() {
    let mut mock = Mock::pieces(vec![b"GET / HT".to_vec()], true);
    let handler = handler(app(mock.shutting_down.clone()));
    // Each call takes what has arrived and ends waiting, with nothing
    // written and the bytes kept.
    for piece in [&b"TP/1.1\r\nHo"[..], b"st: x\r\n"] {
        assert_eq!(
            call(&handler, &mut mock).expect("in memory"),
            Served::Partial
        );
        assert!(mock.take_output().is_empty());
        assert!(mock.deadline().is_some(), "the header timeout runs");
        mock.arrive(piece);
    }
    assert_eq!(
        call(&handler, &mut mock).expect("in memory"),
        Served::Partial
    );
    mock.arrive(b"\r\n");
    assert_eq!(call(&handler, &mut mock).expect("in memory"), Served::Idle);
    let replies = collect(vec![(mock.take_output(), true)], 1, false);
    assert_eq!(replies[0].text(), "Hello, world!");
    assert_eq!(mock.deadline(), None, "cleared once the request is in");
}

#[test]
fn a_small_body_is_gathered_before_the_closure_runs() {
    let head = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n";
    let mut mock = Mock::pieces(vec![format!("{head}hello").into_bytes()], true);
    let handler = handler(app(mock.shutting_down.clone()));
    // The head is in, the body not all: no call of the closure yet.
    assert_eq!(
        call(&handler, &mut mock).expect("in memory"),
        Served::Partial
    );
    assert!(mock.take_output().is_empty());
    assert!(mock.deadline().is_some(), "the body rate runs");
    mock.arrive(b"world");
    assert_eq!(call(&handler, &mut mock).expect("in memory"), Served::Idle);
    let replies = collect(vec![(mock.take_output(), true)], 1, false);
    assert_eq!(replies[0].text(), "helloworld");
}

#[test]
fn a_head_late_past_the_header_timeout_is_answered_408() {
    let mut mock = Mock::pieces(vec![b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec()], true);
    let handler = handler(app(mock.shutting_down.clone()));
    assert_eq!(
        call(&handler, &mut mock).expect("in memory"),
        Served::Partial
    );
    mock.pass_deadline();
    let error = call(&handler, &mut mock).expect_err("too late");
    assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    let (reply, _) = parse_reply(&mock.take_output(), false);
    assert_eq!(reply.status, 408);
    assert!(reply.closes());
}

#[test]
fn a_body_behind_expect_continue_is_not_gathered() {
    // The client sends no body until told: the closure must run to say so.
    let mut mock = Mock::pieces(
        vec![
            b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
                .to_vec(),
        ],
        true,
    );
    let handler = handler(app(mock.shutting_down.clone()));
    let error = call(&handler, &mut mock).expect_err("silent after the 100");
    assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    let output = mock.take_output();
    assert!(
        output.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"),
        "{output:?}"
    );
    let (reply, _) = parse_reply(&output[25..], false);
    assert_eq!(reply.status, 408);
}

/// Serves every request of `input` on one connection with `limits`; returns
/// the replies and the request events told.
fn events_of(input: &[u8], limits: Limits) -> (Vec<(Vec<u8>, bool)>, Vec<Told>) {
    let mut mock = Mock::new(input);
    let handler = handler(app(mock.shutting_down.clone())).limits(limits);
    let serve = |mock: &mut Mock| handler.serve_one(mock);
    let mut turns = Vec::new();
    loop {
        let (output, open) = turn(&mut mock, &serve);
        let open = open.unwrap_or(false);
        turns.push((output, open));
        if !open {
            break;
        }
    }
    (turns, mock.take_events())
}

fn told(method: &str, target: &str, status: u16, body_bytes: u64, kept_alive: bool) -> Told {
    Told {
        method: Some(method.into()),
        target: Some(target.into()),
        version: Some("HTTP/1.1".into()),
        status,
        body_bytes,
        kept_alive,
    }
}

#[test]
fn every_answer_is_told_to_the_hook() {
    let input = "GET / HTTP/1.1\r\nHost: x\r\n\r\n\
                 HEAD / HTTP/1.1\r\nHost: x\r\n\r\n\
                 GET /nowhere?q=1 HTTP/1.1\r\nHost: x\r\n\r\n\
                 POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc";
    let (_, events) = events_of(input.as_bytes(), Limits::default());
    assert_eq!(
        events,
        [
            told("GET", "/", 200, 13, true),
            told("HEAD", "/", 200, 0, true),
            told("GET", "/nowhere?q=1", 404, 9, true),
            told("POST", "/echo", 200, 3, false),
        ]
    );
    // A streamed body counts what was written, not its chunked framing.
    let (_, events) = events_of(
        b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Limits::default(),
    );
    assert_eq!(events, [told("GET", "/stream", 200, 8, false)]);
}

#[test]
fn the_layers_own_answers_are_told_too() {
    let refused = |input: &str, limits: Limits| {
        let (_, events) = events_of(input.as_bytes(), limits);
        assert_eq!(events.len(), 1, "{input:?}: {events:?}");
        let event = events[0].clone();
        assert!(!event.kept_alive);
        assert!(event.body_bytes > 0, "the reason phrase is the body");
        event
    };
    let event = refused("GET / HTTP/1.1\r\n\r\n", Limits::default());
    assert_eq!((event.status, event.method.as_deref()), (400, Some("GET")));
    let event = refused("BR EW\r\n\r\n", Limits::default());
    assert_eq!((event.status, event.method), (400, None));
    let event = refused("GET / HTTP/2.0\r\n\r\n", Limits::default());
    assert_eq!(
        (event.status, event.version.as_deref()),
        (505, Some("HTTP/2.0"))
    );
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    let event = refused(&long, Limits::default());
    assert_eq!(event.status, 414);
    let event = refused(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n",
        Limits::default(),
    );
    assert_eq!(event.status, 413);
    let event = refused(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        Limits::default(),
    );
    assert_eq!(event.status, 501);
    let few = Limits {
        max_headers: 1,
        ..Limits::default()
    };
    let event = refused("GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n\r\n", few);
    assert_eq!(event.status, 431);
    // A body that breaks its framing while the closure reads it.
    let event = refused(
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        Limits::default(),
    );
    assert_eq!(
        (event.status, event.target.as_deref()),
        (400, Some("/echo"))
    );

    // A head late past its deadline.
    let mut mock = Mock::pieces(vec![b"GET /late HTTP/1.1\r\nHost: x\r\n".to_vec()], true);
    let late = handler(app(mock.shutting_down.clone()));
    assert_eq!(late.serve_one(&mut mock).ok(), Some(Served::Partial));
    mock.pass_deadline();
    assert!(late.serve_one(&mut mock).is_err());
    let events = mock.take_events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].status, events[0].target.as_deref()),
        (408, Some("/late"))
    );

    // A panic: 500, told before the panic goes on.
    let mut mock = Mock::new("GET /panic HTTP/1.1\r\nHost: x\r\n\r\n");
    let panicking = handler(app(mock.shutting_down.clone()));
    let result = panic::catch_unwind(AssertUnwindSafe(|| panicking.serve_one(&mut mock)));
    assert!(result.is_err());
    assert_eq!(mock.take_events(), [told("GET", "/panic", 500, 22, false)]);
}

#[test]
fn connections_rotate_after_a_number_of_requests() {
    let limits = Limits {
        keepalive_requests: Some(2),
        ..Limits::default()
    };
    let get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let (turns, events) = events_of(get.repeat(3).as_bytes(), limits);
    let replies = collect(turns, 2, false);
    assert!(!replies[0].closes());
    assert!(replies[1].closes(), "the second of two says close");
    assert_eq!(
        events.iter().map(|e| e.kept_alive).collect::<Vec<_>>(),
        [true, false]
    );
    let aged = Limits {
        keepalive_time: Some(std::time::Duration::ZERO),
        ..Limits::default()
    };
    let (turns, _) = events_of(get.repeat(2).as_bytes(), aged);
    let replies = collect(turns, 1, false);
    assert!(replies[0].closes(), "an aged connection closes");
}

#[test]
fn a_request_over_its_time_budget_is_answered_408() {
    let limits = Limits {
        request_timeout: Some(std::time::Duration::from_secs(3600)),
        header_timeout: std::time::Duration::from_secs(7200),
        min_body_rate: None,
        ..Limits::default()
    };
    // A head in pieces: its deadline is the request's, the earlier.
    let mut mock = Mock::pieces(vec![b"GET / HTTP/1.1\r\n".to_vec()], true);
    let head_handler = handler(app(mock.shutting_down.clone())).limits(limits);
    assert_eq!(
        head_handler.serve_one(&mut mock).ok(),
        Some(Served::Partial)
    );
    let deadline = mock.deadline().expect("a deadline");
    let in_an_hour = std::time::Instant::now() + std::time::Duration::from_secs(3600);
    assert!(
        deadline <= in_an_hour,
        "the request's hour, not the head's two"
    );
    mock.pass_deadline();
    let error = head_handler.serve_one(&mut mock).expect_err("late");
    assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    let (reply, _) = parse_reply(&mock.take_output(), false);
    assert_eq!(reply.status, 408);

    // A gathered body without a rate: the request's deadline bounds it.
    let head = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n";
    let mut mock = Mock::pieces(vec![format!("{head}hello").into_bytes()], true);
    let body_handler = handler(app(mock.shutting_down.clone())).limits(limits);
    assert_eq!(
        body_handler.serve_one(&mut mock).ok(),
        Some(Served::Partial)
    );
    assert!(mock.deadline().is_some(), "bounded without a rate");
    mock.pass_deadline();
    assert!(body_handler.serve_one(&mut mock).is_err());
    let (reply, _) = parse_reply(&mock.take_output(), false);
    assert_eq!(reply.status, 408);
}

#[test]
fn past_the_budget_a_body_is_not_gathered() {
    // No budget at all: the closure reads the body from the connection
    // (the mock cannot wait in a kernel), and the request is served.
    let limits = Limits {
        gathered_total: 0,
        ..Limits::default()
    };
    let head = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n";
    let mock = Mock::pieces(
        vec![format!("{head}hello").into_bytes(), b"world".to_vec()],
        true,
    );
    let replies = collect(converse_with(mock, limits), 1, false);
    assert_eq!(replies[0].text(), "helloworld");
}
