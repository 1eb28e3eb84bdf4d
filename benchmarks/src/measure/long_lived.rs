//! Measurement 16, long-lived connections (issue 25): server-sent events
//! and WebSocket, against Node's `http` with the `ws` package
//! (`node/ws.js`, the same routes). Our server is the HTTP example built
//! with `--features http,websocket` (`ours-ws`); both get `--workers 4`
//! (Node has one thread and ignores it). Four parts, each on a fresh
//! server process, with the own clients of [`crate::fleet`] (tungstenite
//! 0.29 for WebSocket, on `127.0.0.1`, every socket with timeouts):
//!
//! 1. **Beside subscribers.** `wrk -c8` on `GET /` alone (after a 1 s
//!    warm-up load, not counted); then 1,000 subscribers of
//!    `GET /events?ms=1000` (a tick a second each) and 1,000 idle
//!    WebSocket clients of `GET /ws` are connected and read, and the same
//!    `wrk -c8` runs beside them; then they disconnect and it runs alone
//!    again. Figures: the three loads' req/s and p99; the ratio of the
//!    load beside them to the mean of the two alone (target for ours: at
//!    least 0.9x; its p99 at most 10 ms); the ticks each subscriber
//!    received per second during the load beside them (1.0 when none is
//!    starved); how many of the 2,000 were still connected after it.
//! 2. **A broadcast.** 1,000 clients of `GET /chat` (each join is
//!    announced to every member, as both servers do: about 500,000
//!    messages, waited out until nothing arrives for 300 ms), then a
//!    1,001st client sends `#bench:N` five times, 300 ms apart; each is a
//!    broadcast to every member. Per broadcast: the time from just before
//!    the send to each of the 1,000 clients' receipt (as its reader thread
//!    saw it), p50, p99 and the last, and how many received it; the
//!    figures are the medians over the five.
//! 3. **Memory per idle WebSocket.** `VmRSS` of the server process
//!    (`/proc/PID/status`) with no client, then with N idle clients of
//!    `GET /ws` (N = 5,000 if this process's descriptor limit allows,
//!    else 1,000), 1 s after the last connected: (with - without) / N.
//!    Node's figure includes whatever V8 has not collected yet.
//! 4. **SIGINT with 1,000 WebSocket clients** of `GET /ws`, which read and
//!    answer a Close: the time from the signal to the server's exit, its
//!    exit status, and how many clients received Close 1001 ("going
//!    away"). Ours says goodbye by itself (issue 25: exit 0 in about a
//!    second); `node/ws.js` does it as a user would (Close 1001 to every
//!    client, `server.close()`, exit once every connection has closed, exit
//!    3 after 20 s).

use std::thread;
use std::time::{Duration, Instant};

use tungstenite::Message;

use super::{bound, difference, ratio, Bench, Measurement, Row};
use crate::fleet::{self, Fleet, Seen, MARK};
use crate::record::Record;
use crate::report::{Goal, Target, Unit};
use crate::servers::Spec;
use crate::stats::{median, percentile};
use crate::system::{self, Tool};
use crate::wrk::{self, Load};

/// Subscribers and WebSocket clients in parts 1, 2 and 4.
const CLIENTS: usize = 1_000;
/// Idle WebSocket clients in part 3 when the descriptor limit allows.
const MANY: usize = 5_000;
/// `wrk`'s connections in part 1.
const WRK_CONNECTIONS: usize = 8;
/// Broadcasts in part 2, and the pause before each.
const BROADCASTS: u64 = 5;
const PAUSE: Duration = Duration::from_millis(300);
/// How long a broadcast may take to reach everyone.
const DELIVERY_LIMIT: Duration = Duration::from_secs(10);
/// The longest a server may take to exit after SIGINT (both give up at
/// 20 s).
const EXIT_LIMIT: Duration = Duration::from_secs(40);

pub const MEASUREMENT: Measurement = Measurement {
    id: "long-lived",
    title: "16. long-lived connections: SSE and WebSocket beside wrk -c8, a broadcast, \
            memory per WebSocket, SIGINT",
    servers: &["ours-ws", "node-ws"],
    needs: &[Tool::Wrk],
    run,
    rows: &[
        Row {
            label: "wrk -c8 alone: req/s",
            figure: "ll_base_rps",
            unit: Unit::Rps,
        },
        Row {
            label: "wrk -c8 alone: p99",
            figure: "ll_base_p99_us",
            unit: Unit::Micros,
        },
        Row {
            label: "wrk -c8 alone again, after them: req/s",
            figure: "ll_after_rps",
            unit: Unit::Rps,
        },
        Row {
            label: "wrk -c8 alone again, after them: p99",
            figure: "ll_after_p99_us",
            unit: Unit::Micros,
        },
        Row {
            label: "wrk -c8 alone: mean req/s of before and after",
            figure: "ll_alone_rps",
            unit: Unit::Rps,
        },
        Row {
            label: "wrk -c8 beside 1,000 SSE + 1,000 WebSocket: req/s",
            figure: "ll_busy_rps",
            unit: Unit::Rps,
        },
        Row {
            label: "wrk -c8 beside 1,000 SSE + 1,000 WebSocket: p99",
            figure: "ll_busy_p99_us",
            unit: Unit::Micros,
        },
        Row {
            label: "wrk -c8 alone: server CPU",
            figure: "ll_base_cpu_pct",
            unit: Unit::Percent,
        },
        Row {
            label: "wrk -c8 beside them: server CPU",
            figure: "ll_busy_cpu_pct",
            unit: Unit::Percent,
        },
        Row {
            label: "wrk -c8 alone: server CPU time per request",
            figure: "ll_base_cpu_us",
            unit: Unit::MicrosFine,
        },
        Row {
            label: "wrk -c8 alone: mean server CPU time per request of before and after",
            figure: "ll_alone_cpu_us",
            unit: Unit::MicrosFine,
        },
        Row {
            label: "wrk -c8 beside them: server CPU time per request",
            figure: "ll_busy_cpu_us",
            unit: Unit::MicrosFine,
        },
        Row {
            label: "wrk -c8 alone: wrk's CPU",
            figure: "ll_base_wrk_cpu_pct",
            unit: Unit::Percent,
        },
        Row {
            label: "wrk -c8 beside them: wrk's CPU",
            figure: "ll_busy_wrk_cpu_pct",
            unit: Unit::Percent,
        },
        Row {
            label: "wrk -c8 beside them: CPU of the driver's clients (beside wrk on CPU 1)",
            figure: "ll_busy_clients_cpu_pct",
            unit: Unit::Percent,
        },
        Row {
            label: "ticks per subscriber per second during that load (1 expected)",
            figure: "ll_busy_tick_rate",
            unit: Unit::PerRequest,
        },
        Row {
            label: "SSE + WebSocket clients still connected after it",
            figure: "ll_busy_connected",
            unit: Unit::OutOf(2 * CLIENTS as u32),
        },
        Row {
            label: "broadcast to 1,000 /chat clients: p50 delivery",
            figure: "ll_bcast_p50_us",
            unit: Unit::Micros,
        },
        Row {
            label: "broadcast to 1,000 /chat clients: p99 delivery",
            figure: "ll_bcast_p99_us",
            unit: Unit::Micros,
        },
        Row {
            label: "broadcast to 1,000 /chat clients: last delivery",
            figure: "ll_bcast_max_us",
            unit: Unit::Micros,
        },
        Row {
            label: "broadcast: clients reached (fewest of 5)",
            figure: "ll_bcast_reached",
            unit: Unit::OutOf(CLIENTS as u32),
        },
        Row {
            label: "1,000 joins to /chat: seconds until quiet",
            figure: "ll_join_s",
            unit: Unit::Seconds,
        },
        Row {
            label: "idle WebSocket clients for the memory figure",
            figure: "ll_mem_clients",
            unit: Unit::Count,
        },
        Row {
            label: "server VmRSS, no client",
            figure: "ll_mem_base_bytes",
            unit: Unit::Bytes,
        },
        Row {
            label: "server VmRSS with them",
            figure: "ll_mem_rss_bytes",
            unit: Unit::Bytes,
        },
        Row {
            label: "memory per idle WebSocket client",
            figure: "ll_mem_per_client",
            unit: Unit::Bytes,
        },
        Row {
            label: "SIGINT with 1,000 WebSocket clients: seconds to exit",
            figure: "ll_sigint_exit_s",
            unit: Unit::Seconds,
        },
        Row {
            label: "SIGINT: exit status",
            figure: "ll_sigint_status",
            unit: Unit::Count,
        },
        Row {
            label: "SIGINT: clients that received Close 1001",
            figure: "ll_sigint_1001",
            unit: Unit::OutOf(CLIENTS as u32),
        },
        Row {
            label: "SIGINT: clients whose connection then ended",
            figure: "ll_sigint_ended",
            unit: Unit::OutOf(CLIENTS as u32),
        },
    ],
    targets,
};

/// One of the four parts, on a server of its own.
type Part = fn(&mut Bench, &Spec) -> Result<(), String>;

fn run(bench: &mut Bench, spec: &Spec) -> Result<(), String> {
    bench.record.command(
        "own clients (src/fleet.rs, measure/long_lived.rs)",
        "# N WebSocket clients (tungstenite 0.29) of ws://127.0.0.1:PORT/ws or /chat, \
         N subscribers of GET /events?ms=1000, read by a thread per 50 clients with poll(2)",
    );
    // Each part's failure is noted and the others still run.
    let parts: [(&str, Part); 4] = [
        ("beside subscribers", beside_subscribers),
        ("broadcast", broadcast),
        ("memory", memory),
        ("SIGINT", sigint),
    ];
    let mut failed = Vec::new();
    for (name, part) in parts {
        if let Err(e) = part(bench, spec) {
            failed.push(format!("{name}: {e}"));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

/// Part 1: `wrk -c8` alone, beside 1,000 subscribers and 1,000 idle
/// WebSocket clients, and alone again once they have gone.
fn beside_subscribers(bench: &mut Bench, spec: &Spec) -> Result<(), String> {
    let mut server = bench.start(spec, &[])?;
    let load = Load {
        connections: WRK_CONNECTIONS,
        secs: bench.config.secs,
        close: false,
    };
    // A fresh process warms up (threads, allocator, JIT) in its first
    // second of load: not counted.
    wrk::run(server.addr, Load { secs: 1, ..load })?;
    let before = bench.wrk(&mut server, spec.id, "ll_base", load)?;

    let mut fleet = Fleet::new(server.addr);
    connect_all(
        bench,
        spec,
        fleet.event_streams("/events?ms=1000", CLIENTS),
        "subscribers",
    )?;
    connect_all(
        bench,
        spec,
        fleet.websockets("/ws", CLIENTS),
        "WebSocket clients",
    )?;
    // The first ticks are due a second after each subscription.
    thread::sleep(Duration::from_millis(1_200));
    let ticks = fleet.ticks();
    let me = std::process::id() as i32;
    let clients_before = system::usage(me);
    let started = Instant::now();
    bench.wrk(&mut server, spec.id, "ll_busy", load)?;
    let secs = started.elapsed().as_secs_f64();
    let clients_cpu = system::usage(me)
        .cpu_ns
        .saturating_sub(clients_before.cpu_ns);
    let ticks = fleet.ticks() - ticks;
    let connected = 2 * CLIENTS - fleet.ended();
    drop(fleet);
    // Let the server see them go.
    thread::sleep(Duration::from_millis(500));
    let after = bench.wrk(&mut server, spec.id, "ll_after", load)?;
    let r = &mut bench.record;
    r.set(
        spec.id,
        "ll_busy_tick_rate",
        ticks as f64 / CLIENTS as f64 / secs,
    );
    r.set(spec.id, "ll_busy_connected", connected as f64);
    if connected < 2 * CLIENTS {
        r.note(format!(
            "{}: {} of the {} subscribers and WebSocket clients were cut during the load \
             beside them",
            spec.id,
            2 * CLIENTS - connected,
            2 * CLIENTS
        ));
    }
    // The clients share CPU 1 with wrk.
    r.set(
        spec.id,
        "ll_busy_clients_cpu_pct",
        clients_cpu as f64 / 1e9 / secs * 100.0,
    );
    // The load alone before and after, so that a drift of the shared
    // machine over the three loads weighs on both sides of the ratio.
    r.set(spec.id, "ll_alone_rps", (before.rps + after.rps) / 2.0);
    // The server's CPU time per request varies less than req/s when other
    // work shares the CPUs.
    if let (Some(a), Some(b)) = (
        r.current(spec.id, "ll_base_cpu_us"),
        r.current(spec.id, "ll_after_cpu_us"),
    ) {
        r.set(spec.id, "ll_alone_cpu_us", (a + b) / 2.0);
    }
    Ok(())
}

/// Part 2: five broadcasts to 1,000 chat clients.
fn broadcast(bench: &mut Bench, spec: &Spec) -> Result<(), String> {
    let server = bench.start(spec, &[])?;
    let mut fleet = Fleet::new(server.addr);
    let started = Instant::now();
    connect_all(
        bench,
        spec,
        fleet.websockets("/chat", CLIENTS),
        "chat clients",
    )?;
    let mut sender = fleet::connect_websocket(server.addr, "/chat")?;
    if !fleet.wait_quiet(Duration::from_millis(300), Duration::from_secs(60)) {
        bench.record.note(format!(
            "{}: the joins to /chat were still arriving after 60 s; broadcast anyway",
            spec.id
        ));
    }
    // Less the 300 ms of quiet that ends it.
    bench
        .record
        .set(spec.id, "ll_join_s", started.elapsed().as_secs_f64() - 0.3);

    let (mut p50s, mut p99s, mut maxes, mut reached) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for tag in 0..BROADCASTS {
        thread::sleep(PAUSE);
        let sent = Instant::now();
        sender
            .send(Message::text(format!("{MARK}{tag}")))
            .map_err(|e| format!("the sender could not send: {e}"))?;
        let count = |seen: &[Seen]| {
            seen.iter()
                .filter(|s| matches!(s, Seen::Marked { tag: t, .. } if *t == tag))
                .count()
        };
        fleet.wait_for(DELIVERY_LIMIT, |seen| count(seen) >= CLIENTS);
        let mut delays: Vec<f64> = fleet
            .seen()
            .iter()
            .filter_map(|s| match *s {
                Seen::Marked { tag: t, at, .. } if t == tag => {
                    Some(at.saturating_duration_since(sent).as_secs_f64() * 1e6)
                }
                _ => None,
            })
            .collect();
        reached.push(delays.len() as f64);
        if delays.is_empty() {
            continue;
        }
        p50s.push(percentile(&mut delays, 50.0));
        p99s.push(percentile(&mut delays, 99.0));
        maxes.push(percentile(&mut delays, 100.0));
    }
    let r = &mut bench.record;
    for (figure, values) in [
        ("ll_bcast_p50_us", &mut p50s),
        ("ll_bcast_p99_us", &mut p99s),
        ("ll_bcast_max_us", &mut maxes),
    ] {
        if !values.is_empty() {
            r.set(spec.id, figure, median(values));
        }
    }
    let fewest = reached.iter().copied().fold(f64::INFINITY, f64::min);
    r.set(spec.id, "ll_bcast_reached", fewest);
    if fewest < CLIENTS as f64 {
        r.note(format!(
            "{}: a broadcast reached only {fewest:.0} of {CLIENTS} chat clients within \
             {DELIVERY_LIMIT:?} (reached per broadcast: {reached:?})",
            spec.id
        ));
    }
    drop(sender);
    drop(server);
    Ok(())
}

/// Part 3: resident memory per idle WebSocket client.
fn memory(bench: &mut Bench, spec: &Spec) -> Result<(), String> {
    // This process holds one descriptor per client, beside its own.
    let n = match system::descriptor_limit() {
        Some(limit) if limit >= (MANY + 1_000) as libc::rlim_t => MANY,
        _ => CLIENTS,
    };
    let server = bench.start(spec, &[])?;
    thread::sleep(Duration::from_millis(500));
    let base = system::rss_bytes(server.pid).ok_or("no VmRSS for the server")?;
    let mut fleet = Fleet::new(server.addr);
    connect_all(
        bench,
        spec,
        fleet.websockets("/ws", n),
        "idle WebSocket clients",
    )?;
    thread::sleep(Duration::from_secs(1));
    let with = system::rss_bytes(server.pid).ok_or("no VmRSS for the server")?;
    let r = &mut bench.record;
    r.set(spec.id, "ll_mem_clients", n as f64);
    r.set(spec.id, "ll_mem_base_bytes", base as f64);
    r.set(spec.id, "ll_mem_rss_bytes", with as f64);
    r.set(
        spec.id,
        "ll_mem_per_client",
        (with as f64 - base as f64) / n as f64,
    );
    drop(server);
    Ok(())
}

/// Part 4: SIGINT with 1,000 WebSocket clients connected.
fn sigint(bench: &mut Bench, spec: &Spec) -> Result<(), String> {
    let mut server = bench.start(spec, &[])?;
    let mut fleet = Fleet::new(server.addr);
    connect_all(
        bench,
        spec,
        fleet.websockets("/ws", CLIENTS),
        "WebSocket clients",
    )?;
    thread::sleep(Duration::from_millis(500));
    let signalled = Instant::now();
    let status = server
        .signal_and_wait(libc::SIGINT, EXIT_LIMIT)
        .ok_or_else(|| format!("no exit within {EXIT_LIMIT:?} of SIGINT"))?;
    let exit_s = signalled.elapsed().as_secs_f64();
    // What the clients still have to read after the exit.
    let goodbyes = |seen: &[Seen]| {
        let mut clients: Vec<usize> = seen
            .iter()
            .filter_map(|s| match *s {
                Seen::Close {
                    client,
                    code: Some(1001),
                    ..
                } => Some(client),
                _ => None,
            })
            .collect();
        clients.sort_unstable();
        clients.dedup();
        clients.len()
    };
    fleet.wait_for(Duration::from_millis(500), |seen| goodbyes(seen) >= CLIENTS);
    thread::sleep(Duration::from_millis(100));
    let r = &mut bench.record;
    r.set(spec.id, "ll_sigint_exit_s", exit_s);
    // A signal's death as the shell shows it, 128 + its number.
    let code = status
        .code()
        .or_else(|| std::os::unix::process::ExitStatusExt::signal(&status).map(|s| 128 + s));
    r.set(
        spec.id,
        "ll_sigint_status",
        code.map_or(f64::NAN, f64::from),
    );
    r.set(spec.id, "ll_sigint_1001", goodbyes(&fleet.seen()) as f64);
    r.set(spec.id, "ll_sigint_ended", fleet.ended() as f64);
    Ok(())
}

/// All of `wanted` connected, or an error that says how many did.
fn connect_all(
    bench: &mut Bench,
    spec: &Spec,
    (connected, error): (usize, Option<String>),
    what: &str,
) -> Result<(), String> {
    match error {
        None => Ok(()),
        Some(e) => {
            let line = format!("{}: connected only {connected} {what}: {e}", spec.id);
            bench.record.note(line.clone());
            Err(line)
        }
    }
}

fn targets(r: &Record) -> Vec<Target> {
    let ours = "ours-ws";
    let node = "node-ws";
    let mut targets = vec![
        ratio(
            r,
            "16. wrk -c8 beside 1,000 SSE + 1,000 WebSocket, ours: req/s / req/s alone",
            (ours, "ll_busy_rps"),
            (ours, "ll_alone_rps"),
            Unit::Rps,
            Goal::AtLeast(0.9),
        ),
        ratio(
            r,
            "16. wrk -c8 beside 1,000 SSE + 1,000 WebSocket, ours: server CPU time per request / alone",
            (ours, "ll_busy_cpu_us"),
            (ours, "ll_alone_cpu_us"),
            Unit::MicrosFine,
            Goal::None,
        ),
        bound(
            r,
            "16. wrk -c8 beside 1,000 SSE + 1,000 WebSocket, ours: p99",
            (ours, "ll_busy_p99_us"),
            Unit::Micros,
            Goal::AtMost(10_000.0),
        ),
        ratio(
            r,
            "16. wrk -c8 beside 1,000 SSE + 1,000 WebSocket, Node.js + ws: req/s / req/s alone",
            (node, "ll_busy_rps"),
            (node, "ll_alone_rps"),
            Unit::Rps,
            Goal::None,
        ),
        ratio(
            r,
            "16. wrk -c8 beside 1,000 SSE + 1,000 WebSocket, Node.js + ws: server CPU time per request / alone",
            (node, "ll_busy_cpu_us"),
            (node, "ll_alone_cpu_us"),
            Unit::MicrosFine,
            Goal::None,
        ),
        bound(
            r,
            "16. wrk -c8 beside 1,000 SSE + 1,000 WebSocket, Node.js + ws: p99",
            (node, "ll_busy_p99_us"),
            Unit::Micros,
            Goal::None,
        ),
        ratio(
            r,
            "16. wrk -c8 beside 1,000 SSE + 1,000 WebSocket: req/s, ours / Node.js + ws",
            (ours, "ll_busy_rps"),
            (node, "ll_busy_rps"),
            Unit::Rps,
            Goal::None,
        ),
        ratio(
            r,
            "16. broadcast to 1,000 WebSocket clients: p99 delivery, ours / Node.js + ws",
            (ours, "ll_bcast_p99_us"),
            (node, "ll_bcast_p99_us"),
            Unit::Micros,
            Goal::None,
        ),
        ratio(
            r,
            "16. memory per idle WebSocket client: ours / Node.js + ws",
            (ours, "ll_mem_per_client"),
            (node, "ll_mem_per_client"),
            Unit::Bytes,
            Goal::None,
        ),
        ratio(
            r,
            "16. SIGINT with 1,000 WebSocket clients: seconds to exit, ours / Node.js + ws",
            (ours, "ll_sigint_exit_s"),
            (node, "ll_sigint_exit_s"),
            Unit::Seconds,
            Goal::None,
        ),
        bound(
            r,
            "16. SIGINT with 1,000 WebSocket clients, ours: seconds to exit (issue: about a second)",
            (ours, "ll_sigint_exit_s"),
            Unit::Seconds,
            Goal::AtMost(2.0),
        ),
        bound(
            r,
            "16. SIGINT with 1,000 WebSocket clients, ours: exit status",
            (ours, "ll_sigint_status"),
            Unit::Count,
            Goal::AtMost(0.0),
        ),
        bound(
            r,
            "16. SIGINT with 1,000 WebSocket clients, ours: clients that received Close 1001",
            (ours, "ll_sigint_1001"),
            Unit::OutOf(CLIENTS as u32),
            Goal::AtLeast(CLIENTS as f64),
        ),
    ];
    targets.push(difference(
        r,
        "16. SIGINT with 1,000 WebSocket clients: Close 1001 received, ours - Node.js + ws",
        (ours, "ll_sigint_1001"),
        (node, "ll_sigint_1001"),
        Unit::Count,
        Goal::None,
    ));
    targets
}
