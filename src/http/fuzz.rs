//! A property test over random and mutated requests: whatever arrives,
//! serving a request returns (it answers, or says the connection is over),
//! never panics, never loops, and everything it writes is HTTP/1.1.
//!
//! The inputs come from a seeded xorshift generator, so a failure names a
//! case that can be replayed exactly: run the test with that case alone.

use std::io::{self, Read};
use std::panic::{self, AssertUnwindSafe};

use super::transport::testing::{turn, Mock};
use super::*;

/// How many cases the test runs.
const CASES: u64 = 20_000;

/// Marsaglia's xorshift64: tiny, fast, and plenty for shuffling bytes.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        // Zero is the one state xorshift cannot leave; spread nearby seeds.
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True one time in `n`.
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

const METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "OPTIONS", "DELETE"];
const TARGETS: [&str; 6] = [
    "/",
    "/echo",
    "/echo?x=1",
    "/a%20b",
    "http://example.com/echo?q",
    "*",
];
/// Fields that make a request odd or wrong; the rest of a request is right
/// more often than not, so that mutations land in every part of it.
const ODD_FIELDS: [&str; 9] = [
    "Content-Length: 99999999999999999999",
    "Content-Length: 5, 6",
    "Transfer-Encoding: gzip",
    "Host: second.example.com",
    "X-Junk: \u{1}\t junk",
    "Bad Field",
    " folded",
    "Expect: something-else",
    "Connection: upgrade",
];

/// A request, right more often than not.
fn request(rng: &mut XorShift) -> Vec<u8> {
    let eol = if rng.one_in(10) { "\n" } else { "\r\n" };
    let method = if rng.one_in(20) {
        "BR EW"
    } else {
        rng.pick(&METHODS)
    };
    let target = if rng.one_in(20) {
        "/\x7f"
    } else {
        rng.pick(&TARGETS)
    };
    let version = match rng.below(20) {
        0 => "HTTP/2.0",
        1 => "HTTP/1.2",
        2..=5 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    let mut out = format!("{method} {target} {version}{eol}");
    let field = |out: &mut String, field: &str| {
        out.push_str(field);
        out.push_str(eol);
    };
    if !rng.one_in(10) {
        field(&mut out, "Host: example.com");
    }
    if rng.one_in(4) {
        field(&mut out, "Expect: 100-continue");
    }
    match rng.below(4) {
        0 => field(&mut out, "Connection: close"),
        1 => field(&mut out, "Connection: keep-alive"),
        _ => {}
    }
    if rng.one_in(6) {
        field(&mut out, rng.pick(&ODD_FIELDS));
    }
    // The body, framed one way or another (or both, now and then).
    let framing = rng.below(4);
    if framing == 1 || rng.one_in(30) {
        field(&mut out, "Content-Length: 5");
    }
    if framing == 2 {
        field(&mut out, "Transfer-Encoding: chunked");
    }
    out.push_str(eol);
    let mut out = out.into_bytes();
    match framing {
        1 => out.extend_from_slice(b"hello"),
        2 => {
            for _ in 0..rng.below(4) {
                let size = rng.below(20);
                out.extend_from_slice(format!("{size:x}\r\n").as_bytes());
                out.extend(std::iter::repeat(b'z').take(size));
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        }
        _ => {}
    }
    out
}

/// `bytes`, damaged a few times.
fn mutate(rng: &mut XorShift, mut bytes: Vec<u8>) -> Vec<u8> {
    for _ in 0..rng.below(4) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.below(bytes.len());
        match rng.below(6) {
            0 => bytes[at] ^= 1 << rng.below(8),
            1 => bytes.insert(at, rng.next() as u8),
            2 => {
                let end = (at + rng.below(8)).min(bytes.len());
                bytes.drain(at..end);
            }
            3 => bytes.truncate(at),
            4 => {
                let end = (at + rng.below(16)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
            _ => {
                let insert = rng.pick(&[&b"\r\n"[..], b"\n", b"\r", b" ", b":", b"\0"]);
                bytes.splice(at..at, insert.iter().copied());
            }
        }
    }
    bytes
}

/// A handler whose behaviour is set by `mode`: how much of the body it
/// reads, and what kind of response it gives.
fn app(mode: u64) -> impl Fn(&mut Request<'_>) -> Response + Send + Sync + 'static {
    move |req: &mut Request<'_>| {
        let mut read = Vec::new();
        match mode % 3 {
            0 => {}
            1 => {
                let _ = req.body().take(3).read_to_end(&mut read);
            }
            _ => {
                let _ = req.body().read_to_end(&mut read);
            }
        }
        let _ = (
            req.path(),
            req.query(),
            req.headers().get("host"),
            req.is_shutting_down(),
        );
        match mode / 3 % 5 {
            0 => Response::text("fuzz"),
            1 => Response::new(200).body(read),
            2 => Response::new(200).body_reader(io::Cursor::new(read), None),
            3 => Response::new(204).header("X-A", "b"),
            _ => readiness(req),
        }
    }
}

/// Checks that `output` is one HTTP/1.1 response, perhaps after a
/// `100 Continue`.
fn check_output(output: &[u8], case: u64) {
    let show = || String::from_utf8_lossy(output).into_owned();
    assert!(
        output.starts_with(b"HTTP/1.1 "),
        "case {case}: {:?}",
        show()
    );
    let mut fields = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Response::new(&mut fields);
    let Ok(httparse::Status::Complete(len)) = parsed.parse(output) else {
        panic!("case {case}: not a response: {:?}", show());
    };
    if parsed.code == Some(100) {
        return check_output(&output[len..], case);
    }
    let has = |name: &str| {
        parsed
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(name))
    };
    assert!(has("date"), "case {case}: no Date: {:?}", show());
}

/// Serves the connection of one case to its end, checking every call.
fn run_case(case: u64) {
    let mut rng = XorShift::new(case);
    let mut input = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let request = request(&mut rng);
        let request = if rng.one_in(3) {
            mutate(&mut rng, request)
        } else {
            request
        };
        input.extend(request);
    }
    if rng.one_in(10) {
        // Pure noise, now and then.
        input = (0..rng.below(200)).map(|_| rng.next() as u8).collect();
    }
    // Arrives in random pieces, then ends or goes silent.
    let mut pieces = Vec::new();
    let mut rest = &input[..];
    while !rest.is_empty() {
        let n = 1 + rng.below(rest.len().min(64));
        pieces.push(rest[..n].to_vec());
        rest = &rest[n..];
    }
    let mut mock = Mock::pieces(pieces, rng.one_in(3));
    if rng.one_in(8) {
        mock.shutting_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
    let limits = if rng.one_in(8) {
        Limits {
            max_head: rng.below(120),
            max_headers: rng.below(5),
            max_target: rng.below(20),
            max_body: rng.below(10) as u64,
            gathered_body: rng.below(12) as u64,
            ..Limits::default()
        }
    } else {
        Limits::default()
    };
    let handler = handler(app(rng.next())).limits(limits);
    let serve = |mock: &mut Mock| handler.serve_one(mock);
    // Every turn that keeps the connection consumes at least one byte, so
    // this many turns are enough unless something loops.
    for _ in 0..=input.len() + 1 {
        let served = panic::catch_unwind(AssertUnwindSafe(|| turn(&mut mock, &serve)));
        let (output, keep_alive) = match served {
            Ok((output, Ok(keep_alive))) => (output, keep_alive),
            // A silent client: answered `408`.
            Ok((output, Err(error))) if error.kind() == std::io::ErrorKind::TimedOut => {
                (output, false)
            }
            Ok((_, Err(error))) => panic!("case {case}: in-memory I/O cannot fail, got {error}"),
            Err(_) => panic!(
                "case {case}: serving panicked on {:?}",
                String::from_utf8_lossy(&input)
            ),
        };
        if !output.is_empty() {
            check_output(&output, case);
        }
        if !keep_alive {
            return;
        }
    }
    panic!(
        "case {case}: the connection never ended: {:?}",
        String::from_utf8_lossy(&input)
    );
}

#[test]
fn random_and_mutated_requests() {
    for case in 0..CASES {
        run_case(case);
    }
}
