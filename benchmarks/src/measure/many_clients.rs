//! Measurement 4, more keep-alive clients than workers: 32 client threads, each sending
//! `GET /` on its own connection as fast as the answers come, against 4
//! workers. `wrk` reports only totals, which look fine when 4 connections
//! are served and 28 starve; this client counts answers per connection.

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use super::{bound, versus_baseline, Bench, Measurement, Row};
use crate::client::{self, GET};
use crate::record::Record;
use crate::report::{Goal, Target, Unit};
use crate::servers::Spec;
use crate::stats::percentile;

const CLIENTS: usize = 32;

pub const MEASUREMENT: Measurement = Measurement {
    id: "many-clients",
    title: "4. 32 keep-alive clients on 4 workers (own client)",
    servers: &["ours", "ours-base", "blocking", "tiny", "node"],
    needs: &[],
    run,
    rows: &[
        Row {
            label: "clients answered at least once",
            figure: "ka32_served",
            unit: Unit::OutOf(CLIENTS as u32),
        },
        Row {
            label: "fewest answers to one client",
            figure: "ka32_fewest",
            unit: Unit::Count,
        },
        Row {
            label: "p99 (answered requests)",
            figure: "ka32_p99_us",
            unit: Unit::Micros,
        },
        Row {
            label: "longest wait (answered or not)",
            figure: "ka32_longest_us",
            unit: Unit::Micros,
        },
        Row {
            label: "req/s",
            figure: "ka32_rps",
            unit: Unit::Rps,
        },
        Row {
            label: "client errors (reset, closed)",
            figure: "ka32_errors",
            unit: Unit::Count,
        },
    ],
    targets,
};

/// What one client saw.
#[derive(Default)]
struct Client {
    latencies_us: Vec<f64>,
    /// The longest wait, including a request still unanswered at the end.
    longest_us: f64,
    errors: u64,
}

fn run(bench: &mut Bench, spec: &Spec) -> Result<(), String> {
    let server = bench.start(spec, &[])?;
    let (addr, secs) = (server.addr, bench.config.secs);
    bench.record.command(
        "own client (measure/many_clients.rs)",
        &format!(
            "# {CLIENTS} threads, each with one keep-alive connection: GET /, read the \
             answer, repeat, for {secs} s"
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(secs);
    let clients: Vec<Client> = thread::scope(|scope| {
        let threads: Vec<_> = (0..CLIENTS)
            .map(|_| scope.spawn(move || one_client(addr, deadline)))
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or_default())
            .collect()
    });
    let mut all: Vec<f64> = clients
        .iter()
        .flat_map(|c| c.latencies_us.iter().copied())
        .collect();
    let r = &mut bench.record;
    let id = spec.id;
    r.set(
        id,
        "ka32_served",
        clients
            .iter()
            .filter(|c| !c.latencies_us.is_empty())
            .count() as f64,
    );
    r.set(
        id,
        "ka32_fewest",
        clients
            .iter()
            .map(|c| c.latencies_us.len())
            .min()
            .unwrap_or(0) as f64,
    );
    r.set(id, "ka32_rps", all.len() as f64 / secs as f64);
    r.set(id, "ka32_p99_us", percentile(&mut all, 99.0));
    r.set(
        id,
        "ka32_longest_us",
        clients.iter().map(|c| c.longest_us).fold(0.0, f64::max),
    );
    r.set(
        id,
        "ka32_errors",
        clients.iter().map(|c| c.errors).sum::<u64>() as f64,
    );
    Ok(())
}

/// Requests on one connection until `deadline`; reconnects if the server
/// closes it. An answer after the deadline does not count.
fn one_client(addr: SocketAddr, deadline: Instant) -> Client {
    let mut me = Client::default();
    let mut buf = Vec::new();
    let mut stream: Option<TcpStream> = None;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let s = match stream.as_mut() {
            Some(s) => s,
            None => match client::connect(addr, left) {
                Ok(s) => stream.insert(s),
                Err(_) => {
                    me.errors += 1;
                    thread::sleep(Duration::from_millis(5));
                    continue;
                }
            },
        };
        let _ = s.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        let start = Instant::now();
        if s.write_all(GET).is_err() {
            me.errors += 1;
            stream = None;
            continue;
        }
        let result = client::read_response(s, &mut buf);
        let waited = start.elapsed().as_secs_f64() * 1e6;
        me.longest_us = me.longest_us.max(waited);
        match result {
            Ok(_) if Instant::now() >= deadline => break,
            Ok(keep) => {
                me.latencies_us.push(waited);
                if !keep {
                    stream = None;
                }
            }
            // Still waiting at the deadline: not an error, a wait.
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(_) => {
                me.errors += 1;
                stream = None;
            }
        }
    }
    me
}

fn targets(r: &Record) -> Vec<Target> {
    let what = "4. 32 keep-alive clients on 4 workers";
    let mut targets = vec![
        bound(
            r,
            "4. 32 keep-alive clients on 4 workers: p99",
            ("ours", "ka32_p99_us"),
            Unit::Micros,
            Goal::AtMost(10_000.0),
        ),
        bound(
            r,
            "4. 32 keep-alive clients on 4 workers: clients served",
            ("ours", "ka32_served"),
            Unit::OutOf(CLIENTS as u32),
            Goal::AtLeast(CLIENTS as f64),
        ),
    ];
    targets.extend(versus_baseline(
        r,
        &format!("{what}, p99"),
        "ka32_p99_us",
        Unit::Micros,
    ));
    targets
}
