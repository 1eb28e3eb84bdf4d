//! Measurement 10, slow clients: 200 attacker connections hold the server
//! (4 workers) in one of five ways, and beside them one well-behaved client
//! asks `GET /` on a fresh connection (`Connection: close`), one request
//! after another, for the load's duration (at least 3 s). Each good request
//! has 5 s to connect, send and be answered; it fails if it errors, times
//! out, or its answer is not a complete `200`.
//!
//! The attacks, each from 200 connections opened before the good client
//! starts and kept up until it is done:
//!
//! - `silent`: connect and send nothing;
//! - `half-head`: half a request head (`GET / HTTP/1.1`, `Host`, and a
//!   header line cut after its name), then nothing;
//! - `trickled-head`: a head trickled one header line a second, never
//!   ended;
//! - `trickled-body`: `POST /echo` with `Content-Length: 16000`, the head
//!   at once, the body one byte a second;
//! - `non-reader`: `POST /echo` with a 512 KiB body sent at once, and the
//!   512 KiB echo never read.
//!
//! Every attack gets a fresh server process. The attackers run on one
//! thread of the driver (on the client CPU) over nonblocking sockets; an
//! attacker the server closes (seen as a hang-up, a reset or a failed
//! write) is opened again and counted. A non-reader's connection that the
//! server abandons with unsent data in its buffers is not seen closed.
//!
//! Every attacker connects like a client across an Ethernet path with a
//! small window: a 1460-byte MSS and a 4 KiB receive buffer, set before
//! `connect`. On plain loopback sockets (64 KiB MSS) the kernel gives the
//! server a 4 MiB send buffer at once, and the 512 KiB answer disappears
//! into it: no server would ever be held by the non-reader. With these
//! options the server can hand the kernel about 74 KB before its write
//! waits, as it would for a slow reader on a real network.

use std::collections::BTreeMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::{Bench, Measurement, Row};
use crate::client::{self, GET_CLOSE};
use crate::record::Record;
use crate::report::{Goal, Target, Unit};
use crate::servers::{Spec, BASELINE};
use crate::stats::percentile;

/// Attacker connections per attack.
const ATTACKERS: usize = 200;
/// A good request's time to connect, send and be answered.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The good client asks for at least this long, even with `--quick`.
const MIN_SECS: u64 = 3;
/// Between the attackers' opening and the first good request, so that the
/// server has accepted them and is in the state the attack aims at.
const SETTLE: Duration = Duration::from_millis(300);
/// Good requests start at most this often: enough samples for a p99,
/// without using up the client's ports or its CPU, which the attackers
/// share.
const SPACING: Duration = Duration::from_millis(1);
/// How long the good client waits, after its answer, for the server to
/// close (not counted): the server then holds the TIME_WAIT, not the
/// client's port.
const DRAIN: Duration = Duration::from_secs(1);
/// The attackers' loop period.
const TICK: Duration = Duration::from_millis(10);
/// A trickled line or byte every this long.
const TRICKLE: Duration = Duration::from_secs(1);
/// An attacker's connect timeout; the opening of all 200 stops after
/// [`OPEN_LIMIT`], the rest are opened by the loop.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// An attacker's MSS and receive buffer (see the module's doc).
const ATTACKER_MSS: libc::c_int = 1460;
const ATTACKER_RCVBUF: libc::c_int = 4096;
const OPEN_LIMIT: Duration = Duration::from_secs(5);
/// Attackers reopened per tick at most, so that a server refusing them
/// cannot stall the trickling.
const REOPEN_PER_TICK: usize = 20;
const TRICKLED_BODY: u64 = 16_000;
const NON_READER_BODY: usize = 512 * 1024;
/// The target: at most this p99 under every attack, and no failure.
const P99_TARGET_US: f64 = 100_000.0;
/// The servers the targets are for.
const OURS: [&str; 2] = ["ours", "ours-defaults"];

/// The non-reader's body, written from this.
static BODY: [u8; 64 * 1024] = [b'a'; 64 * 1024];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attack {
    Silent,
    HalfHead,
    TrickledHead,
    TrickledBody,
    NonReader,
}

const ATTACKS: [Attack; 5] = [
    Attack::Silent,
    Attack::HalfHead,
    Attack::TrickledHead,
    Attack::TrickledBody,
    Attack::NonReader,
];

impl Attack {
    /// As in the rows' labels and figures (see [`rows!`]).
    fn id(self) -> &'static str {
        match self {
            Attack::Silent => "silent",
            Attack::HalfHead => "half-head",
            Attack::TrickledHead => "trickled-head",
            Attack::TrickledBody => "trickled-body",
            Attack::NonReader => "non-reader",
        }
    }

    /// What an attacker sends as soon as it is connected.
    fn opening(self) -> Vec<u8> {
        match self {
            Attack::Silent => Vec::new(),
            Attack::HalfHead => b"GET / HTTP/1.1\r\nHost: x\r\nX-A:".to_vec(),
            Attack::TrickledHead => b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec(),
            Attack::TrickledBody => {
                format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {TRICKLED_BODY}\r\n\r\n")
                    .into_bytes()
            }
            Attack::NonReader => format!(
                "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {NON_READER_BODY}\r\n\r\n"
            )
            .into_bytes(),
        }
    }

    /// The `n`th trickle (from 1), sent `n` seconds after the opening.
    fn trickle(self, n: u64) -> Option<Vec<u8>> {
        match self {
            Attack::TrickledHead => Some(format!("X-N: {n}\r\n").into_bytes()),
            Attack::TrickledBody if n <= TRICKLED_BODY => Some(b"a".to_vec()),
            _ => None,
        }
    }

    /// Body bytes sent right after the opening, as fast as the socket
    /// takes them.
    fn body(self) -> usize {
        match self {
            Attack::NonReader => NON_READER_BODY,
            _ => 0,
        }
    }
}

/// The key of one of an attack's figures.
fn figure(attack: Attack, what: &str) -> String {
    format!("sc_{}_{what}", attack.id())
}

/// The rows of each attack, by its id.
macro_rules! rows {
    ($($id:literal),*) => {
        &[$(
            Row {
                label: concat!($id, ": failed good requests"),
                figure: concat!("sc_", $id, "_failures"),
                unit: Unit::Count,
            },
            Row {
                label: concat!($id, ": good requests made"),
                figure: concat!("sc_", $id, "_requests"),
                unit: Unit::Count,
            },
            Row {
                label: concat!($id, ": p50 (answered)"),
                figure: concat!("sc_", $id, "_p50_us"),
                unit: Unit::Micros,
            },
            Row {
                label: concat!($id, ": p99 (answered)"),
                figure: concat!("sc_", $id, "_p99_us"),
                unit: Unit::Micros,
            },
            Row {
                label: concat!($id, ": attackers the server closed (reopened)"),
                figure: concat!("sc_", $id, "_closed"),
                unit: Unit::Count,
            },
        )*]
    };
}

pub const MEASUREMENT: Measurement = Measurement {
    id: "slow-clients",
    title: "10. one good client beside 200 slow attackers, 4 workers (own client)",
    servers: &["ours", "ours-base", "ours-defaults", "node", "tiny"],
    needs: &[],
    run,
    rows: rows!(
        "silent",
        "half-head",
        "trickled-head",
        "trickled-body",
        "non-reader"
    ),
    targets,
};

fn run(bench: &mut Bench, spec: &Spec) -> Result<(), String> {
    let secs = bench.config.secs.max(MIN_SECS);
    bench.record.command(
        "own client (measure/slow_clients.rs)",
        &format!(
            "# for each attack (silent, half-head, trickled-head, trickled-body, non-reader), \
             a fresh server: {ATTACKERS} attacker connections, then for {secs} s one client: \
             connect, GET / with Connection: close, read the answer (5 s timeout), repeat"
        ),
    );
    let mut errors = Vec::new();
    for attack in ATTACKS {
        if let Err(e) = one_attack(bench, spec, attack, Duration::from_secs(secs)) {
            errors.push(format!("{}: {e}", attack.id()));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Runs `attack` on a fresh `spec` server for `window` and records the
/// good client's figures.
fn one_attack(
    bench: &mut Bench,
    spec: &Spec,
    attack: Attack,
    window: Duration,
) -> Result<(), String> {
    let mut server = bench.start(spec, &[])?;
    let addr = server.addr;
    let stop = AtomicBool::new(false);
    let (opened_tx, opened_rx) = mpsc::channel();
    let (opened, attackers, good) = thread::scope(|scope| {
        let attackers = scope.spawn(|| attack_loop(addr, attack, &stop, opened_tx));
        let opened = opened_rx.recv().ok();
        thread::sleep(SETTLE);
        let good = good_client(addr, window);
        stop.store(true, Ordering::Relaxed);
        (opened, attackers.join(), good)
    });
    let attackers = attackers.map_err(|_| "the attackers' thread panicked".to_string())?;
    let crashed = !server.running();
    drop(server);

    let (id, r) = (spec.id, &mut bench.record);
    let mut latencies = good.latencies_us;
    let (p50, p99) = (
        percentile(&mut latencies, 50.0),
        percentile(&mut latencies, 99.0),
    );
    r.set(id, &figure(attack, "failures"), good.failures as f64);
    r.set(id, &figure(attack, "requests"), good.requests as f64);
    r.set(id, &figure(attack, "p50_us"), p50);
    r.set(id, &figure(attack, "p99_us"), p99);
    r.set(id, &figure(attack, "closed"), attackers.closed as f64);
    let name = attack.id();
    if good.failures > 0 {
        let reasons: Vec<String> = good
            .reasons
            .iter()
            .map(|(why, n)| format!("{why}: {n}"))
            .collect();
        r.note(format!(
            "slow-clients {name} on {id}: {} of {} good requests failed ({})",
            good.failures,
            good.requests,
            reasons.join(", ")
        ));
    }
    if let Some(opened) = opened.filter(|&n| n < ATTACKERS) {
        r.note(format!(
            "slow-clients {name} on {id}: only {opened} of {ATTACKERS} attackers connected \
             before the good client started"
        ));
    }
    if let Some(e) = attackers.connect_error {
        r.note(format!(
            "slow-clients {name} on {id}: {} attacker connect(s) failed, the first: {e}",
            attackers.connect_errors
        ));
    }
    if crashed {
        return Err("the server exited during the attack".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The well-behaved client

/// What the good client saw.
#[derive(Default)]
struct Good {
    requests: u64,
    failures: u64,
    /// Answered requests' times.
    latencies_us: Vec<f64>,
    /// Why requests failed, with how many.
    reasons: BTreeMap<String, u64>,
}

/// Good requests one after another until `window` has passed (the last
/// one may take its full timeout after that).
fn good_client(addr: SocketAddr, window: Duration) -> Good {
    let mut good = Good::default();
    let mut buf = Vec::new();
    let deadline = Instant::now() + window;
    let mut next = Instant::now();
    while Instant::now() < deadline {
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        next = Instant::now() + SPACING;
        good.requests += 1;
        match good_request(addr, &mut buf) {
            Ok(took) => good.latencies_us.push(took.as_secs_f64() * 1e6),
            Err(e) => {
                good.failures += 1;
                let why = match e.kind() {
                    ErrorKind::WouldBlock | ErrorKind::TimedOut => {
                        "no answer within 5 s".to_string()
                    }
                    _ => e.to_string(),
                };
                *good.reasons.entry(why).or_default() += 1;
            }
        }
    }
    good
}

/// One good request: connect, send `GET /` with `Connection: close`, read
/// a complete `200`, all within [`TIMEOUT`]. Returns the time to the
/// answer; then waits (uncounted) for the server to close.
fn good_request(addr: SocketAddr, buf: &mut Vec<u8>) -> io::Result<Duration> {
    let start = Instant::now();
    let left = || {
        TIMEOUT
            .checked_sub(start.elapsed())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| io::Error::from(ErrorKind::TimedOut))
    };
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(left()?))?;
    stream.write_all(GET_CLOSE)?;
    stream.set_read_timeout(Some(left()?))?;
    client::read_response(&mut stream, buf)?;
    let took = start.elapsed();
    if took > TIMEOUT {
        return Err(io::Error::new(
            ErrorKind::TimedOut,
            "answered after the timeout",
        ));
    }
    stream.set_read_timeout(Some(DRAIN))?;
    let mut rest = [0u8; 256];
    while matches!(stream.read(&mut rest), Ok(n) if n > 0) {}
    Ok(took)
}

// ---------------------------------------------------------------------------
// The attackers

/// One attacker connection and what it still has to send.
struct Attacker {
    stream: Option<TcpStream>,
    /// Bytes queued (the opening, then trickles) and how many are sent.
    queue: Vec<u8>,
    sent: usize,
    /// Body bytes still to send after the queue (the non-reader's).
    body_left: usize,
    /// Trickles queued so far, and when the next is due.
    trickles: u64,
    next_trickle: Instant,
}

/// What the attackers' thread reports.
#[derive(Debug, Default)]
struct Attackers {
    /// Connections the server closed during the attack (each opened again).
    closed: u64,
    connect_errors: u64,
    connect_error: Option<String>,
}

impl Attacker {
    fn unopened() -> Attacker {
        Attacker {
            stream: None,
            queue: Vec::new(),
            sent: 0,
            body_left: 0,
            trickles: 0,
            next_trickle: Instant::now(),
        }
    }

    /// Connects and queues the opening.
    fn open(&mut self, addr: SocketAddr, attack: Attack) -> io::Result<()> {
        let stream = attacker_socket(addr)?;
        // Every trickled byte goes out at once.
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        *self = Attacker {
            stream: Some(stream),
            queue: attack.opening(),
            sent: 0,
            body_left: attack.body(),
            trickles: 0,
            next_trickle: Instant::now() + TRICKLE,
        };
        Ok(())
    }

    /// Queues the trickles due by `now` and writes what the socket takes.
    /// False if the server closed the connection.
    fn progress(&mut self, attack: Attack, now: Instant) -> bool {
        let Some(stream) = self.stream.as_mut() else {
            return true;
        };
        while now >= self.next_trickle {
            self.trickles += 1;
            if let Some(bytes) = attack.trickle(self.trickles) {
                self.queue.extend_from_slice(&bytes);
            }
            self.next_trickle += TRICKLE;
        }
        loop {
            let queued = self.sent < self.queue.len();
            let chunk = if queued {
                &self.queue[self.sent..]
            } else if self.body_left > 0 {
                &BODY[..self.body_left.min(BODY.len())]
            } else {
                self.queue.clear();
                self.sent = 0;
                return true;
            };
            match stream.write(chunk) {
                Ok(0) => return false,
                Ok(n) if queued => self.sent += n,
                Ok(n) => self.body_left -= n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }
}

/// A connection to `addr` with [`ATTACKER_MSS`] and [`ATTACKER_RCVBUF`],
/// options that must be set before `connect`, which std cannot do. Its
/// write timeout ([`CONNECT_TIMEOUT`]) also bounds the `connect`, as
/// Linux does; the caller makes it nonblocking, so no write waits.
fn attacker_socket(addr: SocketAddr) -> io::Result<TcpStream> {
    let SocketAddr::V4(v4) = addr else {
        return Err(io::Error::new(ErrorKind::Unsupported, "attackers use IPv4"));
    };
    // SAFETY: plain syscall; the descriptor it returns is checked, then
    // owned by `socket`, which closes it on every path.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new socket that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let timeout = libc::timeval {
        tv_sec: CONNECT_TIMEOUT.as_secs() as libc::time_t,
        tv_usec: CONNECT_TIMEOUT.subsec_micros() as libc::suseconds_t,
    };
    set_option(&socket, libc::IPPROTO_TCP, libc::TCP_MAXSEG, &ATTACKER_MSS)?;
    set_option(&socket, libc::SOL_SOCKET, libc::SO_RCVBUF, &ATTACKER_RCVBUF)?;
    set_option(&socket, libc::SOL_SOCKET, libc::SO_SNDTIMEO, &timeout)?;
    let to = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(v4.ip().octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `to` is a valid sockaddr_in of the length given.
    let connected = unsafe {
        libc::connect(
            socket.as_raw_fd(),
            std::ptr::addr_of!(to).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if connected != 0 {
        let e = io::Error::last_os_error();
        // A connect cut by the timeout says EINPROGRESS.
        return Err(match e.raw_os_error() {
            Some(libc::EINPROGRESS) => io::Error::new(ErrorKind::TimedOut, "connect timed out"),
            _ => e,
        });
    }
    Ok(TcpStream::from(socket))
}

fn set_option<T>(
    socket: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` points to a live `T` of the size given.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if set == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// For each attacker, whether it is open and the server has hung up or
/// reset it; nothing is read.
fn hung_up(attackers: &[Attacker]) -> Vec<bool> {
    let mut fds: Vec<libc::pollfd> = attackers
        .iter()
        .map(|a| libc::pollfd {
            // A negative descriptor is skipped by poll(2).
            fd: a.stream.as_ref().map_or(-1, |s| s.as_raw_fd()),
            events: libc::POLLRDHUP,
            revents: 0,
        })
        .collect();
    // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs for the
    // kernel to fill in; a zero timeout returns at once.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
    if ready <= 0 {
        return vec![false; attackers.len()];
    }
    fds.iter()
        .map(|p| p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0)
        .collect()
}

/// Opens the attackers, sends `opened` how many are connected, then keeps
/// the attack up (trickling, reopening what the server closes) until
/// `stop`. Dropping the attackers at the end closes them all.
fn attack_loop(
    addr: SocketAddr,
    attack: Attack,
    stop: &AtomicBool,
    opened: mpsc::Sender<usize>,
) -> Attackers {
    let mut report = Attackers::default();
    let failed = |report: &mut Attackers, e: io::Error| {
        report.connect_errors += 1;
        report.connect_error.get_or_insert_with(|| e.to_string());
    };
    let mut attackers: Vec<Attacker> = (0..ATTACKERS).map(|_| Attacker::unopened()).collect();
    let limit = Instant::now() + OPEN_LIMIT;
    for a in &mut attackers {
        if Instant::now() >= limit {
            break;
        }
        match a.open(addr, attack) {
            Ok(()) => {
                if !a.progress(attack, Instant::now()) {
                    a.stream = None;
                }
            }
            Err(e) => failed(&mut report, e),
        }
    }
    let _ = opened.send(attackers.iter().filter(|a| a.stream.is_some()).count());
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let gone = hung_up(&attackers);
        for (a, gone) in attackers.iter_mut().zip(gone) {
            if a.stream.is_some() && (gone || !a.progress(attack, now)) {
                a.stream = None;
                report.closed += 1;
            }
        }
        for a in attackers
            .iter_mut()
            .filter(|a| a.stream.is_none())
            .take(REOPEN_PER_TICK)
        {
            match a.open(addr, attack) {
                Ok(()) => {
                    if !a.progress(attack, Instant::now()) {
                        a.stream = None;
                    }
                }
                Err(e) => failed(&mut report, e),
            }
        }
        thread::sleep(TICK);
    }
    report
}

// ---------------------------------------------------------------------------
// Targets

fn targets(r: &Record) -> Vec<Target> {
    // The baseline's too, when it ran (`--baseline`).
    let base = ATTACKS
        .iter()
        .any(|&a| r.median(BASELINE.0, &figure(a, "requests")).is_some())
        .then_some(BASELINE.0);
    OURS.iter()
        .copied()
        .chain(base)
        .flat_map(|server| [failures(r, server), worst_p99(r, server)])
        .collect()
}

/// The failed good requests over all attacks; `ours` names the attacks
/// that had some (failed / made).
fn failures(r: &Record, server: &str) -> Target {
    let per_attack: Option<Vec<(Attack, f64, f64)>> = ATTACKS
        .iter()
        .map(|&a| {
            let failed = r.median(server, &figure(a, "failures"))?;
            let made = r.median(server, &figure(a, "requests"))?;
            Some((a, failed, made))
        })
        .collect();
    let value = per_attack
        .as_ref()
        .map(|v| v.iter().map(|(_, failed, _)| failed).sum::<f64>());
    let ours = per_attack.as_ref().zip(value).map(|(v, total)| {
        let failing: Vec<String> = v
            .iter()
            .filter(|(_, failed, _)| *failed > 0.0)
            .map(|(a, failed, made)| format!("{} {failed:.0}/{made:.0}", a.id()))
            .collect();
        if failing.is_empty() {
            "0".to_string()
        } else {
            format!("{total:.0} ({})", failing.join(", "))
        }
    });
    Target {
        label: format!("10. slow clients, {server}: failed good requests, all 5 attacks"),
        ours,
        peer: None,
        value,
        unit: Unit::Count,
        goal: Goal::AtMost(0.0),
        chart: false,
    }
}

/// The highest p99 of the attacks, an attack without any answered request
/// counting as infinite; `ours` names the attack (or every attack that got
/// no answer).
fn worst_p99(r: &Record, server: &str) -> Target {
    let per_attack: Option<Vec<(Attack, f64)>> = ATTACKS
        .iter()
        .map(|&a| {
            r.median(server, &figure(a, "requests"))?;
            let p99 = r
                .median(server, &figure(a, "p99_us"))
                .unwrap_or(f64::INFINITY);
            Some((a, p99))
        })
        .collect();
    let worst = per_attack
        .as_ref()
        .and_then(|v| v.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1)));
    let ours = per_attack.as_ref().zip(worst).map(|(v, (a, p99))| {
        if p99.is_infinite() {
            let unanswered: Vec<&str> = v
                .iter()
                .filter(|(_, p99)| p99.is_infinite())
                .map(|(a, _)| a.id())
                .collect();
            format!("no answer under {}", unanswered.join(", "))
        } else {
            format!("{} ({})", Unit::Micros.show(p99), a.id())
        }
    });
    Target {
        label: format!("10. slow clients, {server}: p99 under the worst of the 5 attacks"),
        ours,
        peer: None,
        value: worst.map(|(_, p99)| p99),
        unit: Unit::Micros,
        goal: Goal::AtMost(P99_TARGET_US),
        chart: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_attack_has_its_rows() {
        for attack in ATTACKS {
            for what in ["failures", "requests", "p50_us", "p99_us", "closed"] {
                let key = figure(attack, what);
                assert!(
                    MEASUREMENT.rows.iter().any(|row| row.figure == key),
                    "no row for {key}"
                );
            }
        }
        assert_eq!(MEASUREMENT.rows.len(), ATTACKS.len() * 5);
    }

    #[test]
    fn attacks_never_end_their_request_head_or_body_in_the_window() {
        let head = Attack::HalfHead.opening();
        assert!(!head.windows(4).any(|w| w == b"\r\n\r\n"));
        let trickled: Vec<u8> = (1..=60)
            .filter_map(|n| Attack::TrickledHead.trickle(n))
            .flatten()
            .collect();
        assert!(!trickled.windows(4).any(|w| w == b"\r\n\r\n"));
        assert_eq!(Attack::TrickledBody.trickle(1), Some(b"a".to_vec()));
        assert_eq!(Attack::Silent.trickle(1), None);
        assert_eq!(Attack::NonReader.body(), 512 * 1024);
    }

    #[test]
    fn an_attacker_leaves_the_server_less_buffer_than_the_echo() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let _attacker = attacker_socket(addr).expect("connect");
        let (mut server, _) = listener.accept().expect("accept");
        server.set_nonblocking(true).expect("nonblocking");
        let mut written = 0;
        let started = Instant::now();
        while written <= NON_READER_BODY && started.elapsed() < Duration::from_millis(500) {
            match server.write(&BODY) {
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(TICK),
                Err(e) => panic!("write: {e}"),
            }
        }
        assert!(
            written < NON_READER_BODY,
            "{written} bytes fit in the buffers"
        );
    }

    #[test]
    fn targets_name_the_failing_attack() {
        let mut r = Record::default();
        for attack in ATTACKS {
            let failed = if attack == Attack::HalfHead { 2.0 } else { 0.0 };
            r.set("ours", &figure(attack, "failures"), failed);
            r.set("ours", &figure(attack, "requests"), 10.0);
            if attack != Attack::HalfHead {
                r.set("ours", &figure(attack, "p99_us"), 1_000.0);
            }
        }
        let failed = failures(&r, "ours");
        assert_eq!(failed.value, Some(2.0));
        assert_eq!(failed.ours.as_deref(), Some("2 (half-head 2/10)"));
        assert_eq!(failed.met(), Some(false));
        let p99 = worst_p99(&r, "ours");
        assert_eq!(p99.ours.as_deref(), Some("no answer under half-head"));
        assert_eq!(p99.met(), Some(false));
        assert_eq!(failures(&r, "ours-defaults").value, None);
        r.set("ours", &figure(Attack::HalfHead, "p99_us"), 2_000.0);
        let p99 = worst_p99(&r, "ours");
        assert_eq!(p99.ours.as_deref(), Some("2000 us (half-head)"));
        assert_eq!(p99.met(), Some(true));
    }
}
