//! `GET /metrics` of the HTTP example (`examples/http.rs`), read as a
//! Prometheus scraper reads it: the OpenMetrics text is parsed by a
//! scraper's parser (the `prometheus-parse` crate), every series is there
//! with its type, and the numbers match the traffic the test sent, which
//! is the server's `Stats`.
//!
//! Every client has read and write timeouts and the one wait is bounded, so
//! a server that misbehaves fails the test within seconds instead of
//! hanging it.

#![cfg(feature = "http")]

mod support;

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use prometheus_parse::{Scrape, Value};
use support::ServerProcess;

/// The four gauges, one per number of connections in [`Stats`].
///
/// [`Stats`]: graceful_server::Stats
const GAUGES: [&str; 4] = [
    "graceful_server_connections_open",
    "graceful_server_connections_busy",
    "graceful_server_connections_parked",
    "graceful_server_connections_queued",
];
/// The counter of accepted connections (the family's name; its sample adds
/// `_total`).
const ACCEPTED: &str = "graceful_server_connections_accepted";
/// The counter family of ended connections, labelled by outcome.
const ENDED: &str = "graceful_server_connections_ended";
/// Every outcome of the shutdown report, as the `outcome` label spells it.
const OUTCOMES: [&str; 7] = [
    "completed",
    "failed",
    "timed_out",
    "closed_idle",
    "force_closed",
    "unserved",
    "panicked",
];

/// The HTTP example's binary, built from the current sources.
fn example() -> PathBuf {
    support::fresh_http_example()
}

/// A response as the client read it.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One keep-alive HTTP client connection with the tests' 5 s timeouts.
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        Client {
            reader: BufReader::new(support::client(addr)),
        }
    }

    fn send(&mut self, raw: &[u8]) {
        self.reader.get_mut().write_all(raw).expect("send request");
    }

    /// `method path` on this connection, and its response.
    fn request(&mut self, method: &str, path: &str, close: bool) -> Response {
        let connection = if close { "Connection: close\r\n" } else { "" };
        self.send(format!("{method} {path} HTTP/1.1\r\nHost: test\r\n{connection}\r\n").as_bytes());
        self.response().expect("a response")
    }

    /// Reads one response framed by `Content-Length`.
    fn response(&mut self) -> io::Result<Response> {
        let status_line = self.line()?;
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let line = self.line()?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header line {line:?}"));
            headers.push((name.to_string(), value.trim().to_string()));
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().expect("a numeric Content-Length"))
            .expect("every response has a Content-Length");
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body)?;
        let body = String::from_utf8(body).expect("a UTF-8 body");
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// One line without its CRLF; an error at end of file.
    fn line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }

    /// Waits until the server closes the connection; a reset counts (that
    /// is how a panicking handler's connection may end), a timeout fails.
    fn wait_closed(&mut self) {
        let mut rest = Vec::new();
        if let Err(e) = self.reader.read_to_end(&mut rest) {
            assert_eq!(
                e.kind(),
                io::ErrorKind::ConnectionReset,
                "the server must close the connection, not leave it open"
            );
        }
    }
}

/// One scrape, parsed: every sample's value by series (`name` or
/// `name{outcome="..."}`).
#[derive(Debug)]
struct Metrics {
    values: BTreeMap<String, u64>,
    text: String,
}

impl Metrics {
    /// The value of `series`; fails the test if the scrape lacks it.
    fn get(&self, series: &str) -> u64 {
        *self
            .values
            .get(series)
            .unwrap_or_else(|| panic!("no series {series} in\n{}", self.text))
    }

    fn gauge(&self, which: &str) -> u64 {
        self.get(&format!("graceful_server_connections_{which}"))
    }

    fn accepted(&self) -> u64 {
        self.get(&format!("{ACCEPTED}_total"))
    }

    fn ended(&self, outcome: &str) -> u64 {
        self.get(&format!("{ENDED}_total{{outcome=\"{outcome}\"}}"))
    }

    fn ended_sum(&self) -> u64 {
        OUTCOMES.iter().map(|outcome| self.ended(outcome)).sum()
    }
}

/// `GET /metrics` on `client`, checked as a scraper would check it, and
/// parsed with `prometheus-parse`.
fn scrape(client: &mut Client) -> Metrics {
    let response = client.request("GET", "/metrics", false);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let text = response.body;
    // OpenMetrics ends every exposition with `# EOF`; a scraper that sees
    // no end takes the scrape for cut short.
    assert!(
        text.ends_with("# EOF\n"),
        "no `# EOF` at the end of\n{text}"
    );

    // Each family declares its type. The parser reads `# TYPE` lines, but
    // gives an OpenMetrics counter's `_total` sample no type, so the
    // counters' declarations are checked here.
    let types: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .collect();
    let mut expected_types: BTreeMap<&str, &str> =
        GAUGES.iter().map(|&name| (name, "gauge")).collect();
    expected_types.insert(ACCEPTED, "counter");
    expected_types.insert(ENDED, "counter");
    assert_eq!(
        types, expected_types,
        "the families and their types in\n{text}"
    );

    let scrape = Scrape::parse(text.lines().map(|line| Ok(line.to_owned())))
        .unwrap_or_else(|e| panic!("prometheus-parse rejects the scrape: {e}\n{text}"));
    for family in expected_types.keys() {
        assert!(
            scrape
                .docs
                .get(*family)
                .is_some_and(|help| !help.is_empty()),
            "{family} has no HELP in\n{text}"
        );
    }
    let mut values = BTreeMap::new();
    for sample in &scrape.samples {
        let value = match (&sample.value, GAUGES.contains(&sample.metric.as_str())) {
            (Value::Gauge(v), true) => *v,
            (Value::Counter(v) | Value::Untyped(v), false) => *v,
            (other, _) => panic!("{}: unexpected value {other:?}", sample.metric),
        };
        assert!(
            value >= 0.0 && value.fract() == 0.0,
            "{}: {value} is not a count",
            sample.metric
        );
        let mut series = sample.metric.clone();
        let labels: BTreeMap<_, _> = sample.labels.iter().collect();
        if !labels.is_empty() {
            let labels: Vec<String> = labels
                .iter()
                .map(|(name, value)| format!("{name}=\"{value}\""))
                .collect();
            series.push_str(&format!("{{{}}}", labels.join(",")));
        }
        let previous = values.insert(series.clone(), value as u64);
        assert!(previous.is_none(), "{series} twice in\n{text}");
    }

    // Every series, and no other: the four gauges, the accepted counter and
    // one ended counter per outcome.
    let mut expected: Vec<String> = GAUGES.iter().map(|name| name.to_string()).collect();
    expected.push(format!("{ACCEPTED}_total"));
    expected.extend(
        OUTCOMES
            .iter()
            .map(|outcome| format!("{ENDED}_total{{outcome=\"{outcome}\"}}")),
    );
    expected.sort();
    let found: Vec<String> = values.keys().cloned().collect();
    assert_eq!(found, expected, "the series in\n{text}");

    Metrics { values, text }
}

/// Asserts the numbers of a quiet server (nothing moving but the scrape):
/// the scraping connection is the one open, and it is busy (the scrape is
/// its turn); every other accepted connection has ended, in one outcome.
fn assert_quiet(metrics: &Metrics, accepted: u64, ended: &[(&str, u64)]) {
    let text = &metrics.text;
    assert_eq!(metrics.accepted(), accepted, "accepted in\n{text}");
    assert_eq!(metrics.gauge("open"), 1, "the scraper is open in\n{text}");
    assert_eq!(metrics.gauge("busy"), 1, "the scrape is a turn in\n{text}");
    assert_eq!(metrics.gauge("parked"), 0, "parked in\n{text}");
    assert_eq!(metrics.gauge("queued"), 0, "queued in\n{text}");
    for outcome in OUTCOMES {
        let want = ended
            .iter()
            .find(|(name, _)| *name == outcome)
            .map_or(0, |(_, n)| *n);
        assert_eq!(metrics.ended(outcome), want, "{outcome} in\n{text}");
    }
    // The identity of the report, live: whatever is accepted is open or
    // has ended.
    assert_eq!(
        metrics.accepted(),
        metrics.gauge("open") + metrics.ended_sum(),
        "accepted = open + ended in\n{text}"
    );
}

#[test]
fn metrics_parse_and_count_every_outcome() {
    let mut command = Command::new(example());
    command
        .args(["--addr", "127.0.0.1:0", "--workers", "4"])
        // The `/panic` request needs no symbolized backtrace.
        .env("RUST_BACKTRACE", "0");
    let server = ServerProcess::start_command(command);

    // Before any other traffic, every series is there, at zero but for the
    // scraping connection itself.
    let mut scraper = Client::connect(server.addr);
    assert_quiet(&scrape(&mut scraper), 1, &[]);
    // Only `GET`: anything else is refused, and the connection stays.
    let post = scraper.request("POST", "/metrics", false);
    assert_eq!((post.status, post.header("allow")), (405, Some("GET")));

    // Three requests on one connection, the last asking to close: completed.
    let mut hello = Client::connect(server.addr);
    for close in [false, false, true] {
        let response = hello.request("GET", "/", close);
        assert_eq!(
            (response.status, response.body.as_str()),
            (200, "Hello, world!")
        );
    }
    hello.wait_closed();
    // A handler that panics: the connection is answered 500 and closed, and
    // ends as panicked.
    let mut panics = Client::connect(server.addr);
    assert_eq!(panics.request("GET", "/panic", false).status, 500);
    panics.wait_closed();
    // A request the layer cannot parse: 400 and the close, which is the
    // handler's ordinary end, completed.
    let mut bad = Client::connect(server.addr);
    bad.send(b"HELLO\r\n\r\n");
    assert_eq!(bad.response().expect("a response").status, 400);
    bad.wait_closed();

    // The client sees a close before the server has counted it: scrape
    // until the three have ended, at most 5 s.
    let deadline = Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let metrics = scrape(&mut scraper);
        if metrics.ended_sum() >= 3 {
            break metrics;
        }
        assert!(
            Instant::now() < deadline,
            "the three closed connections not counted within 5 s:\n{}",
            metrics.text
        );
        // Only paces the scrapes; the loop ends on the numbers, not on time.
        thread::sleep(Duration::from_millis(10));
    };
    assert_quiet(&metrics, 4, &[("completed", 2), ("panicked", 1)]);
}
