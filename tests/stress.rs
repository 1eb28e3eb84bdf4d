//! The stress runner: minutes of mixed load with shutdowns and restarts in
//! the middle, checking after every shutdown that the report adds up and
//! that no request was lost. Not part of CI: every test here is ignored.
//!
//! ```text
//! cargo build --release --examples
//! STRESS_SECS=120 cargo test --release --test stress -- --ignored --nocapture
//! ```
//!
//! Two runners, which run side by side:
//!
//! - `stress_the_library`: servers spawned in this process with a
//!   line-protocol handler (echo, sleep, panic, fail) that serves one line
//!   per turn, waits idle between lines, and records, per connection, how
//!   many lines it read and how the connection ended. After each shutdown
//!   every request a client sent without getting its answer must be
//!   explained by the server's side:
//!   a panic or failure the client asked for, a connection closed as idle
//!   before the request was read, one cut at the deadline, one closed
//!   unserved in the queue, or a connect that raced the listener's close.
//! - `stress_the_http_example`: the same with `examples/http.rs` as a child
//!   process, signalled with SIGINT (twice, now and then, to force).
//!
//! A lost request fails the run; the totals are printed at the end.

// Elsewhere the HTTP runner is unix only (it stops the example with `kill`),
// and so are the helpers only it uses.
#![cfg_attr(not(unix), allow(dead_code, unused_imports))]

mod support;

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use graceful_server::{Connection, Next, Report, Server};

/// How long each runner runs: `STRESS_SECS`, 120 by default.
fn duration() -> Duration {
    let secs = std::env::var("STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    Duration::from_secs(secs)
}

/// A seeded xorshift64* generator.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Client timeouts: far above anything a served request takes, so that a
/// timeout means a request really was lost.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, CLIENT_TIMEOUT)?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    Ok(stream)
}

/// Whether the server already closed `stream` (checked without blocking).
fn closed_by_server(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).expect("set_nonblocking");
    let peeked = stream.peek(&mut [0; 1]);
    stream.set_nonblocking(false).expect("set_nonblocking");
    match peeked {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    }
}

/// Totals over the whole run.
#[derive(Default)]
struct Totals {
    cycles: AtomicU64,
    forced: AtomicU64,
    connections: AtomicU64,
    requests: AtomicU64,
    answered: AtomicU64,
    faults: AtomicU64,
    /// Unanswered requests, each explained by the server's side.
    closed_idle_unread: AtomicU64,
    cut_at_deadline: AtomicU64,
    raced_close: AtomicU64,
    lost: AtomicU64,
}

impl Totals {
    fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn print(&self, name: &str, elapsed: Duration) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        eprintln!(
            "{name}: {:.0?}: {} shutdowns survived ({} forced), {} connections handled, \
             {} requests, {} answered, {} faults injected; unanswered but explained: \
             {} closed idle before being read, {} cut at the deadline, {} raced the \
             listener's close; lost = {}",
            elapsed,
            get(&self.cycles),
            get(&self.forced),
            get(&self.connections),
            get(&self.requests),
            get(&self.answered),
            get(&self.faults),
            get(&self.closed_idle_unread),
            get(&self.cut_at_deadline),
            get(&self.raced_close),
            get(&self.lost),
        );
    }
}

// ---------------------------------------------------------------------------
// The library, in process.
// ---------------------------------------------------------------------------

/// What the handler saw of one connection, over all its turns.
#[derive(Clone, Debug)]
struct Record {
    peer: SocketAddr,
    lines_read: u64,
    /// A turn ended the connection (the client hung up, or a read, a write
    /// or the handler failed); otherwise the server closed it between turns
    /// (as idle, at a timeout, or at the deadline).
    ended_in_turn: bool,
    /// The turn that ended it did so because shutdown was forced: its
    /// socket was cut.
    cut: bool,
    panicked: bool,
}

impl Record {
    /// The server closed it (as idle, or at the deadline) before the end.
    fn closed_by_server(&self) -> bool {
        !self.ended_in_turn || self.cut
    }
}

/// Records by connection id.
type Records = Arc<Mutex<HashMap<u64, Record>>>;

/// Files one turn into the connection's record when the turn ends, even by
/// a panic.
struct Turn {
    records: Records,
    id: u64,
    peer: SocketAddr,
    lines_read: u64,
    /// `Some(cut)` when the turn ends the connection.
    ended: Option<bool>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let record = records.entry(self.id).or_insert_with(|| Record {
            peer: self.peer,
            lines_read: 0,
            ended_in_turn: false,
            cut: false,
            panicked: false,
        });
        record.lines_read += self.lines_read;
        if thread::panicking() {
            record.panicked = true;
            record.ended_in_turn = true;
        }
        if let Some(cut) = self.ended {
            record.ended_in_turn = true;
            record.cut = cut;
        }
    }
}

/// The line protocol: `echo X` answers `X`, `sleep N` sleeps N ms then
/// answers `slept`, `panic` panics, `fail` returns an error. One line per
/// turn. Once shutdown has started, answers end in ` [closing]` and the
/// client sends no more; the connection then ends as idle.
fn line_handler(records: Records) -> impl Fn(&mut Connection) -> io::Result<Next> + Send + Sync {
    move |conn| {
        let mut turn = Turn {
            records: Arc::clone(&records),
            id: conn.id(),
            peer: conn.peer_addr().tcp().expect("a TCP client"),
            lines_read: 0,
            ended: None,
        };
        let mut line = String::new();
        let read = conn.read_line(&mut line);
        if read.is_err() || !line.ends_with('\n') {
            // The client hung up (maybe mid-line), or the read failed; at
            // the deadline, because the server cut the socket.
            turn.ended = Some(conn.is_forced());
            return read.map(|_| Next::Close);
        }
        turn.lines_read += 1;
        let line = line.trim_end();
        let answer = match line.split_once(' ').unwrap_or((line, "")) {
            ("echo", text) => text.to_string(),
            ("sleep", ms) => {
                let ms = ms.parse::<u64>().unwrap_or(0).min(1000);
                thread::sleep(Duration::from_millis(ms));
                "slept".to_string()
            }
            ("panic", _) => panic!("a panic the client asked for"),
            ("fail", _) => {
                turn.ended = Some(false);
                return Err(io::Error::other("a failure the client asked for"));
            }
            _ => "unknown".to_string(),
        };
        let closing = if conn.is_shutting_down() {
            " [closing]"
        } else {
            ""
        };
        let written = conn.write_all(format!("{answer}{closing}\n").as_bytes());
        if written.is_err() {
            turn.ended = Some(conn.is_forced());
        }
        written?;
        // Idle only while nothing of the next line has arrived: a request
        // already read into the buffer (pipelined) is not at a safe
        // boundary, and must not be closed as idle.
        Ok(if conn.has_buffered_input() {
            Next::Wait
        } else {
            Next::Idle
        })
    }
}

/// What one library client saw of a request it got no answer for.
struct Unanswered {
    local: SocketAddr,
    /// The request's index on its connection.
    index: u64,
    /// The connection was made after the signal.
    after_signal: bool,
}

/// What a client expects for a request.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    Answer,
    /// A panic, a failure, a reset or a stall the client caused.
    Nothing,
}

/// One library client thread: random kinds of connections until a connect is
/// refused after the signal.
fn library_client(
    addr: SocketAddr,
    seed: u64,
    signalled: &AtomicBool,
    totals: &Totals,
    unanswered: &Mutex<Vec<Unanswered>>,
) {
    let mut rng = Rng::new(seed);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let stream = match connect(addr) {
            Ok(stream) => stream,
            Err(e) if signalled.load(Ordering::SeqCst) => {
                assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
                return;
            }
            Err(e) => panic!("connect before the signal: {e}"),
        };
        let after_signal = signalled.load(Ordering::SeqCst);
        totals.add(&totals.connections, 1);
        let local = stream.local_addr().expect("local_addr");
        let mut reader = BufReader::new(stream.try_clone().expect("try_clone"));
        let mut writer = &stream;
        // Requests pipelined in one write, then read one by one.
        let kind = rng.below(100);
        let (count, pipelined) = match kind {
            0..=39 => (1 + rng.below(20), false), // keep-alive
            40..=59 => (1, false),                // connection per request
            60..=74 => (2 + rng.below(4), true),  // pipelined
            _ => (1, false),                      // faults and slow ones, below
        };
        let mut requests: Vec<(String, Expect)> = (0..count)
            .map(|i| match rng.below(10) {
                0 => (format!("sleep {}\n", rng.below(300)), Expect::Answer),
                _ => (format!("echo {seed}-{i}\n"), Expect::Answer),
            })
            .collect();
        match kind {
            75..=79 => requests = vec![("panic\n".into(), Expect::Nothing)],
            80..=84 => requests = vec![("fail\n".into(), Expect::Nothing)],
            85..=89 => {
                // A reset: requests sent, the connection closed without
                // reading the answers.
                totals.add(&totals.faults, 1);
                let _ = writer.write_all(b"echo a\necho b\nsleep 20\necho c\n");
                continue;
            }
            90..=94 => {
                // A slow client: its line arrives a few bytes at a time.
                requests = vec![(format!("echo slow-{seed}\n"), Expect::Answer)];
            }
            95..=96 if seed % 4 == 0 => {
                // A stall: half a line, then silence until the read timeout
                // cuts it (only on a few client threads, so that stalls never
                // hold every worker).
                totals.add(&totals.faults, 1);
                let _ = writer.write_all(b"echo stal");
                let mut rest = Vec::new();
                let _ = reader.read_to_end(&mut rest);
                continue;
            }
            _ => {}
        }
        if requests[0].1 == Expect::Nothing {
            totals.add(&totals.faults, 1);
        }
        let slow = (90..=94).contains(&kind);
        if slow {
            stream.set_nodelay(true).expect("nodelay");
        }
        let mut sent = 0;
        let mut line = String::new();
        'requests: for (index, (request, expect)) in requests.iter().enumerate() {
            if !pipelined || index == 0 {
                if !pipelined && index > 0 && rng.chance(20) {
                    // A pause between requests: the connection is idle.
                    thread::sleep(Duration::from_millis(rng.below(30)));
                }
                if closed_by_server(&stream) {
                    break 'requests; // closed as idle before this request
                }
                // Pipelined requests leave in one write.
                let batch: Vec<String> = if pipelined {
                    vec![requests.iter().map(|(r, _)| r.as_str()).collect()]
                } else {
                    vec![request.clone()]
                };
                let in_batch = if pipelined { requests.len() } else { 1 };
                for request in &batch {
                    let result = if slow {
                        request
                            .as_bytes()
                            .chunks(3)
                            .try_for_each(|chunk| writer.write_all(chunk))
                    } else {
                        writer.write_all(request.as_bytes())
                    };
                    if result.is_err() {
                        break;
                    }
                    sent += in_batch;
                    totals.add(&totals.requests, in_batch as u64);
                }
            }
            if index >= sent {
                break;
            }
            line.clear();
            let got = reader.read_line(&mut line);
            match (got, expect) {
                (Ok(n), Expect::Answer) if n > 0 && line.ends_with('\n') => {
                    let answer = line.trim_end();
                    let text = answer.trim_end_matches(" [closing]");
                    let want = request.trim_end();
                    let ok = match want.split_once(' ') {
                        Some(("echo", body)) => text == body,
                        _ => text == "slept",
                    };
                    assert!(ok, "answer {answer:?} to {want:?}");
                    totals.add(&totals.answered, 1);
                    if answer.ends_with(" [closing]") {
                        // The last answer: pipelined ones already sent are
                        // still answered; nothing more is sent.
                        if !pipelined {
                            break 'requests;
                        }
                    }
                }
                (_, Expect::Nothing) => break 'requests,
                (_, Expect::Answer) => {
                    unanswered.lock().unwrap().push(Unanswered {
                        local,
                        index: index as u64,
                        after_signal,
                    });
                    break 'requests;
                }
            }
        }
        let _ = stream.shutdown(Shutdown::Write);
    }
    panic!("library client {seed} still running after 60 s");
}

/// Waits for a server to finish (at most 15 s: above the longest drain
/// timeout plus the force grace) and checks that its report adds up.
fn join(running: graceful_server::RunningServer) -> Report {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(running.join());
    });
    let report = rx
        .recv_timeout(Duration::from_secs(15))
        .expect("server did not stop within 15 s")
        .expect("join");
    assert_eq!(
        report.outcomes(),
        report.accepted,
        "every accepted connection is in exactly one outcome: {report:?}"
    );
    report
}

/// Minutes of mixed load on servers spawned in this process, each shut down
/// after 1 to 4 s (some forced by a short drain timeout or a second
/// `force`), with every unanswered request explained.
#[test]
#[ignore = "stress runner: cargo test --release --test stress -- --ignored --nocapture"]
fn stress_the_library() {
    const CLIENTS: u64 = 8;
    // The handler's deliberate panics would flood the output.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let deliberate = info
            .payload()
            .downcast_ref::<&str>()
            .is_some_and(|m| *m == "a panic the client asked for");
        if !deliberate {
            default_hook(info);
        }
    }));
    let totals = Totals::default();
    let started = Instant::now();
    let mut rng = Rng::new(42);
    let mut cycle = 0;
    while started.elapsed() < duration() {
        cycle += 1;
        let records: Records = Arc::default();
        let force_kind = rng.below(10);
        let drain_timeout = match force_kind {
            0 | 1 => Duration::from_millis(50), // forced by the deadline
            _ => Duration::from_secs(5),
        };
        let running = Server::builder("127.0.0.1:0")
            .workers(2 + rng.below(15) as usize)
            .queue_capacity(1 + rng.below(32) as usize)
            .idle_grace(Duration::from_millis(rng.below(3) * 50))
            .drain_timeout(Some(drain_timeout))
            .force_grace(Duration::from_secs(2))
            .read_timeout(Some(Duration::from_secs(1)))
            .write_timeout(Some(Duration::from_secs(2)))
            .build()
            .expect("build")
            .spawn(line_handler(Arc::clone(&records)))
            .expect("spawn");
        let addr = running.local_addr();
        let handle = running.shutdown_handle();
        let signalled = AtomicBool::new(false);
        let unanswered = Mutex::new(Vec::new());
        let serve_for = Duration::from_millis(1000 + rng.below(3000));
        let report: Report = thread::scope(|scope| {
            for i in 0..CLIENTS {
                let (signalled, totals, unanswered) = (&signalled, &totals, &unanswered);
                let seed = cycle * 100 + i;
                scope.spawn(move || library_client(addr, seed, signalled, totals, unanswered));
            }
            // The load pattern's length, not a wait for an event.
            thread::sleep(serve_for);
            signalled.store(true, Ordering::SeqCst);
            handle.shutdown();
            if force_kind == 2 {
                handle.force(); // the second ctrl-c
            }
            join(running)
        });
        let records = records.lock().unwrap();
        // A connection is served once it has had a turn.
        let served = report.accepted - report.unserved;
        assert_eq!(
            records.len() as u64,
            served,
            "cycle {cycle}: every served connection has a record: {report:?}"
        );
        let panicked = records.values().filter(|r| r.panicked).count() as u64;
        assert_eq!(panicked, report.panicked, "cycle {cycle}: {report:?}");
        // By the client's address; several records for one address only if
        // a port was reused in a cycle, in the order of acceptance.
        let mut ids: Vec<u64> = records.keys().copied().collect();
        ids.sort_unstable();
        let mut by_peer: HashMap<SocketAddr, Vec<&Record>> = HashMap::new();
        for id in ids {
            let record = &records[&id];
            by_peer.entry(record.peer).or_default().push(record);
        }
        totals.add(&totals.cycles, 1);
        if report.forced {
            totals.add(&totals.forced, 1);
            if force_kind > 2 {
                eprintln!("cycle {cycle}: forced by the 5 s deadline: {report}");
            }
        }
        for lost in unanswered.lock().unwrap().iter() {
            let record = by_peer.get(&lost.local).and_then(|r| r.last());
            let counter = match record {
                // Never served: closed in the queue at the deadline, or the
                // connect raced the listener's close.
                None if report.forced => &totals.cut_at_deadline,
                None if lost.after_signal => &totals.raced_close,
                None => &totals.lost,
                Some(r) if r.closed_by_server() && r.lines_read <= lost.index => {
                    &totals.closed_idle_unread
                }
                Some(r) if r.closed_by_server() && report.forced => &totals.cut_at_deadline,
                Some(_) => &totals.lost,
            };
            if std::ptr::eq(counter, &totals.lost) {
                eprintln!(
                    "cycle {cycle}: LOST request {} on {}: server record {:?}; {report:?}",
                    lost.index, lost.local, record
                );
            }
            totals.add(counter, 1);
        }
        if cycle % 10 == 0 {
            totals.print("library (so far)", started.elapsed());
        }
    }
    totals.print("library", started.elapsed());
    assert_eq!(totals.lost.load(Ordering::Relaxed), 0, "requests were lost");
}

// ---------------------------------------------------------------------------
// The HTTP example, as a child process.
// ---------------------------------------------------------------------------

/// Reads one `Content-Length`-framed response; `None` if the connection
/// ended before a complete one. Returns whether it said `Connection: close`.
fn http_response(reader: &mut BufReader<TcpStream>, head_only: bool) -> Option<(u16, bool)> {
    let mut line = String::new();
    reader.read_line(&mut line).ok().filter(|&n| n > 0)?;
    let status: u16 = line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let (mut len, mut closes) = (None, false);
    loop {
        line.clear();
        reader.read_line(&mut line).ok().filter(|&n| n > 0)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').expect("a header line");
        if name.eq_ignore_ascii_case("content-length") {
            len = value.trim().parse::<usize>().ok();
        }
        if name.eq_ignore_ascii_case("connection") && value.trim().eq_ignore_ascii_case("close") {
            closes = true;
        }
    }
    let len = len.expect("a Content-Length");
    if !head_only {
        let mut body = vec![0; len];
        reader.read_exact(&mut body).ok()?;
    }
    Some((status, closes))
}

/// One HTTP client thread: random kinds of connections until a connect is
/// refused after the signal. Returns how many requests on connections opened
/// before the signal got no answer and no sign of the close before they were
/// sent (candidates for the idle race, checked against the report).
fn http_client(addr: SocketAddr, seed: u64, signalled: &AtomicBool, totals: &Totals) -> u64 {
    let mut rng = Rng::new(seed);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut unexplained = 0;
    while Instant::now() < deadline {
        let stream = match connect(addr) {
            Ok(stream) => stream,
            Err(e) if signalled.load(Ordering::SeqCst) => {
                assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
                return unexplained;
            }
            Err(e) => panic!("connect before the signal: {e}"),
        };
        let after_signal = signalled.load(Ordering::SeqCst);
        totals.add(&totals.connections, 1);
        let mut reader = BufReader::new(stream.try_clone().expect("try_clone"));
        let mut writer = &stream;
        let kind = rng.below(100);
        if kind < 10 {
            // Faults: a panic, bad input, or a reset (requests sent, the
            // connection closed without reading).
            totals.add(&totals.faults, 1);
            let raw: &[u8] = match rng.below(3) {
                0 => b"GET /panic HTTP/1.1\r\n\r\n",
                1 => b"BREW / HTCPCP/1.0\r\n\r\n",
                _ => b"GET / HTTP/1.1\r\n\r\nGET /slow?ms=20 HTTP/1.1\r\n\r\n",
            };
            let _ = writer.write_all(raw);
            if kind % 3 != 2 {
                let mut rest = Vec::new();
                let _ = reader.read_to_end(&mut rest);
            }
            continue;
        }
        let count = if kind < 50 { 1 + rng.below(20) } else { 1 };
        let close_each = (50..70).contains(&kind);
        let slow = (70..80).contains(&kind);
        for i in 0..count {
            if i > 0 && rng.chance(20) {
                thread::sleep(Duration::from_millis(rng.below(30)));
            }
            if closed_by_server(&stream) {
                break; // closed as idle before sending
            }
            let (path, head) = match rng.below(10) {
                0 => (format!("/slow?ms={}", rng.below(300)), false),
                1 => ("/healthz".to_string(), false),
                2 => ("/".to_string(), true),
                _ => ("/".to_string(), false),
            };
            let method = if head { "HEAD" } else { "GET" };
            let connection = if close_each {
                "Connection: close\r\n"
            } else {
                ""
            };
            let request = format!("{method} {path} HTTP/1.1\r\nHost: stress\r\n{connection}\r\n");
            let sent = if slow {
                request
                    .as_bytes()
                    .chunks(5)
                    .try_for_each(|chunk| writer.write_all(chunk))
            } else {
                writer.write_all(request.as_bytes())
            };
            totals.add(&totals.requests, 1);
            let answer = sent.ok().and_then(|()| http_response(&mut reader, head));
            match answer {
                Some((status, closes)) => {
                    assert!(
                        status == 200 || (status == 503 && path == "/healthz"),
                        "{status} for {path}"
                    );
                    totals.add(&totals.answered, 1);
                    if closes {
                        break;
                    }
                }
                None if after_signal => {
                    totals.add(&totals.raced_close, 1);
                    break;
                }
                None => {
                    unexplained += 1;
                    break;
                }
            }
        }
        let _ = stream.shutdown(Shutdown::Write);
    }
    panic!("HTTP client {seed} still running after 60 s");
}

/// Parses the example's final report line into (accepted, outcomes, closed
/// idle, forced).
fn parse_report(stderr: &str) -> (u64, u64, u64, bool) {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("drained in") || l.starts_with("forced in"))
        .unwrap_or_else(|| panic!("no report line in {stderr}"));
    let number = |what: &str| -> u64 {
        let end = line
            .find(what)
            .unwrap_or_else(|| panic!("{what:?} in {line}"));
        let start = line[..end - 1].rfind(' ').map_or(0, |i| i + 1);
        line[start..end - 1]
            .parse()
            .unwrap_or_else(|_| panic!("{what:?} in {line}"))
    };
    let outcomes = [
        "completed",
        "failed",
        "closed idle",
        "force-closed",
        "unserved",
        "panicked",
    ]
    .iter()
    .map(|what| number(what))
    .sum();
    (
        number("accepted"),
        outcomes,
        number("closed idle"),
        line.starts_with("forced"),
    )
}

/// Minutes of mixed load on the HTTP example, restarted every 1 to 4 s
/// (some shutdowns forced by a second SIGINT or a short drain timeout).
#[test]
#[cfg(unix)] // stops the server with a signal (`kill`), which Windows lacks
#[ignore = "stress runner: cargo test --release --test stress -- --ignored --nocapture"]
fn stress_the_http_example() {
    const CLIENTS: u64 = 8;
    let totals = Totals::default();
    let started = Instant::now();
    let mut rng = Rng::new(7);
    let mut cycle = 0;
    while started.elapsed() < duration() {
        cycle += 1;
        let force_kind = rng.below(10);
        let workers = (2 + rng.below(15)).to_string();
        let grace = format!("{}", rng.below(4) as f64 * 0.1);
        let drain = if force_kind == 0 { "0.05" } else { "5" };
        let mut command = Command::new(support::example_path("http"));
        command
            .args(["--addr", "127.0.0.1:0", "--workers", &workers])
            .args(["--idle-grace", &grace, "--drain-timeout", drain])
            .args(["--read-timeout", "2", "--write-timeout", "2"])
            .env("RUST_BACKTRACE", "0");
        let mut server = support::ServerProcess::start_command(command);
        let addr = server.addr;
        let signalled = AtomicBool::new(false);
        let serve_for = Duration::from_millis(1000 + rng.below(3000));
        let unexplained: u64 = thread::scope(|scope| {
            let clients: Vec<_> = (0..CLIENTS)
                .map(|i| {
                    let (signalled, totals) = (&signalled, &totals);
                    scope.spawn(move || http_client(addr, cycle * 100 + i, signalled, totals))
                })
                .collect();
            // The load pattern's length, not a wait for an event.
            thread::sleep(serve_for);
            signalled.store(true, Ordering::SeqCst);
            server.signal("INT");
            if force_kind == 1 {
                server.wait_for_stderr("shutting down", Duration::from_secs(10));
                server.signal("INT");
            }
            clients.into_iter().map(|c| c.join().unwrap()).sum()
        });
        let status = server.wait_exit(Duration::from_secs(15));
        let stderr = server.stderr();
        let (accepted, outcomes, closed_idle, forced) = parse_report(&stderr);
        assert_eq!(accepted, outcomes, "cycle {cycle}: {stderr}");
        assert_eq!(
            status.code(),
            Some(if forced { 3 } else { 0 }),
            "cycle {cycle}: {stderr}"
        );
        totals.add(&totals.cycles, 1);
        if forced {
            totals.add(&totals.forced, 1);
            totals.add(&totals.cut_at_deadline, unexplained);
        } else if unexplained <= closed_idle {
            // Each one can be a request that reached an idle connection
            // just as it was closed (see tests/http_reliability.rs).
            totals.add(&totals.closed_idle_unread, unexplained);
        } else {
            eprintln!(
                "cycle {cycle}: LOST: {unexplained} unanswered, {closed_idle} closed idle: {stderr}"
            );
            totals.add(&totals.lost, unexplained);
        }
        if cycle % 10 == 0 {
            totals.print("http (so far)", started.elapsed());
        }
    }
    totals.print("http", started.elapsed());
    assert_eq!(totals.lost.load(Ordering::Relaxed), 0, "requests were lost");
}
