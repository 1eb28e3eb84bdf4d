//! The measurements, one file each. A measurement says which servers it
//! runs on, runs on one of them (a fresh process each time), and knows its
//! own figures and targets.
//!
//! Each has a number, shown in the report; number 9 is not a file but the
//! `poll(2)` backend: the `ours-poll` server in 1, 2, 7 and 8.

pub mod close;
pub mod costs;
pub mod idle;
pub mod idle_load;
pub mod keepalive;
pub mod keepalive_c32;
pub mod long_lived;
pub mod many_clients;
pub mod operation;
pub mod quiet;
pub mod sequential;
pub mod slow_clients;
pub mod thinktime;
pub mod tls;
pub mod unix;

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::Config;
use crate::record::Record;
use crate::report::{Goal, Target, Unit};
use crate::servers::{shown, Server, Spec, BASELINE};
use crate::system::{self, Tool, CLIENT_CPU};
use crate::wrk::{self, Load, WrkResult};

/// Every measurement, in the order they run within a round.
pub const ALL: &[Measurement] = &[
    keepalive::MEASUREMENT,
    keepalive_c32::MEASUREMENT,
    close::MEASUREMENT,
    sequential::MEASUREMENT,
    many_clients::MEASUREMENT,
    thinktime::MEASUREMENT,
    quiet::MEASUREMENT,
    idle::MEASUREMENT,
    idle_load::MEASUREMENT,
    slow_clients::MEASUREMENT,
    unix::MEASUREMENT,
    tls::MEASUREMENT,
    operation::MEASUREMENT,
    long_lived::MEASUREMENT,
    costs::MEASUREMENT,
];

pub struct Measurement {
    /// Key for `--only`.
    pub id: &'static str,
    /// Heading in the report, with the measurement's number.
    pub title: &'static str,
    /// Server ids it runs on, ours first (`ours-base` only runs with a
    /// baseline).
    pub servers: &'static [&'static str],
    /// Tools without which it is skipped.
    pub needs: &'static [Tool],
    /// Measures one server, recording its figures in `bench.record`.
    pub run: fn(&mut Bench, &Spec) -> Result<(), String>,
    /// The figures it records, for the table of all figures.
    pub rows: &'static [Row],
    /// Its targets, computed from the medians of the rounds.
    pub targets: fn(&Record) -> Vec<Target>,
}

/// A line of the table of all figures.
pub struct Row {
    pub label: &'static str,
    pub figure: &'static str,
    pub unit: Unit,
}

/// What the measurements share: the configuration, the record, and how to
/// start servers and load.
pub struct Bench<'a> {
    pub config: &'a Config,
    pub record: Record,
    /// Whether servers go to CPU 0 (the load is on CPU 1).
    pub pin: bool,
    pub log_dir: PathBuf,
}

impl Bench<'_> {
    /// Starts a fresh `spec` server with `extra` arguments.
    pub fn start(&mut self, spec: &Spec, extra: &[&str]) -> Result<Server, String> {
        Server::start(spec, extra, self.pin, &self.log_dir, &mut self.record)
    }

    /// Starts a fresh `spec` server under `wrapper` (see
    /// [`Server::start_wrapped`]).
    pub fn start_wrapped(&mut self, spec: &Spec, wrapper: &[String]) -> Result<Server, String> {
        Server::start_wrapped(
            spec,
            wrapper,
            &[],
            self.pin,
            &self.log_dir,
            &mut self.record,
        )
    }

    /// Records a client command line, as one would type it (pinned like
    /// this process).
    pub fn client_command(&mut self, what: &str, argv: &[String]) {
        self.client_command_env(what, &[], argv);
    }

    /// [`Bench::client_command`] with `env` set for the command, shown
    /// first (`NAME=VALUE ... taskset -c 1 PROGRAM ...`).
    pub fn client_command_env(&mut self, what: &str, env: &[(String, String)], argv: &[String]) {
        let mut line = shown(argv);
        if self.pin {
            line = format!("taskset -c {CLIENT_CPU} {line}");
        }
        let env: Vec<String> = env
            .iter()
            .map(|(k, v)| format!("{k}={}", shown(std::slice::from_ref(v))))
            .chain(std::iter::once(line))
            .collect();
        self.record.command(what, &env.join(" "));
    }

    /// Runs `wrk` on `server` and records, under `prefix`: `_rps`, `_p50_us`,
    /// `_p99_us`, `_errors`, and the server's `_cpu_pct`, `_cpu_us` (CPU time
    /// per request) and `_switches` (context switches per request) during
    /// the load.
    pub fn wrk(
        &mut self,
        server: &mut Server,
        id: &str,
        prefix: &str,
        load: Load,
    ) -> Result<WrkResult, String> {
        let url = url(server.addr);
        let run = WrkOn {
            url: &url,
            env: &[],
            children: false,
        };
        self.wrk_on(server, id, prefix, load, &run)
            .map(|(result, _)| result)
    }

    /// [`Bench::wrk`] on `run.url`, with `run.env` in wrk's environment,
    /// counting the server's children too if `run.children`; also returns
    /// wrk's stderr.
    pub fn wrk_on(
        &mut self,
        server: &mut Server,
        id: &str,
        prefix: &str,
        load: Load,
        run: &WrkOn,
    ) -> Result<(WrkResult, String), String> {
        self.client_command_env("load", run.env, &wrk::args_for(run.url, load));
        let usage = |pid| {
            if run.children {
                system::usage_with_children(pid)
            } else {
                system::usage(pid)
            }
        };
        let before = usage(server.pid);
        let started = std::time::Instant::now();
        let (result, stderr) = wrk::run_for(run.url, load, run.env)?;
        let after = usage(server.pid);
        if !server.running() {
            return Err("the server exited during the load".into());
        }
        let seconds = started.elapsed().as_secs_f64();
        let r = &mut self.record;
        r.set(id, &format!("{prefix}_rps"), result.rps);
        r.set(id, &format!("{prefix}_p50_us"), result.p50_us);
        r.set(id, &format!("{prefix}_p99_us"), result.p99_us);
        r.set(id, &format!("{prefix}_errors"), result.errors as f64);
        if let Some(cpu) = result.client_cpu_secs {
            // Near 100%: the load generator's one thread was the limit.
            r.set(id, &format!("{prefix}_wrk_cpu_pct"), cpu / seconds * 100.0);
        }
        r.set(
            id,
            &format!("{prefix}_cpu_pct"),
            after.cpu_ns.saturating_sub(before.cpu_ns) as f64 / 1e9 / seconds * 100.0,
        );
        if result.requests > 0 {
            let per_request = |used: u64| used as f64 / result.requests as f64;
            r.set(
                id,
                &format!("{prefix}_switches"),
                per_request(after.switches.saturating_sub(before.switches)),
            );
            // CPU time per request varies less than req/s when other work
            // shares the server's CPU.
            r.set(
                id,
                &format!("{prefix}_cpu_us"),
                per_request(after.cpu_ns.saturating_sub(before.cpu_ns)) / 1e3,
            );
        }
        Ok((result, stderr))
    }
}

/// Where and how [`Bench::wrk_on`] runs `wrk`.
pub struct WrkOn<'a> {
    /// `http://127.0.0.1:PORT/`, `https://localhost:PORT/`.
    pub url: &'a str,
    /// Added to wrk's environment (and shown before its command line).
    pub env: &'a [(String, String)],
    /// Count the server's direct children too (nginx's worker process).
    pub children: bool,
}

/// Waits `secs` and returns the server's context switches per second and
/// CPU percent over that time.
pub fn idle_usage(pid: i32, secs: f64) -> (f64, f64) {
    let before = system::usage(pid);
    std::thread::sleep(std::time::Duration::from_secs_f64(secs));
    let after = system::usage(pid);
    (
        after.switches.saturating_sub(before.switches) as f64 / secs,
        after.cpu_ns.saturating_sub(before.cpu_ns) as f64 / 1e9 / secs * 100.0,
    )
}

/// Servers that cannot serve `Connection: close` (2, 3 and the
/// connection-per-request costs): astra 0.4 stops answering new
/// connections after a few connection-per-request exchanges. They are
/// listed, so that their cells show `-`, and skipped with this note.
pub fn skip_close(bench: &mut Bench, spec: &Spec) -> bool {
    if spec.id != "astra" {
        return false;
    }
    bench.record.note(
        "astra: not measured with `Connection: close` (2, 3, 13): astra 0.4 stops answering \
         new connections after a few connection-per-request exchanges (by hand: with one \
         sequential client the second connection had no answer within 3 s; wrk -c16 fell to \
         about 150 req/s, every other request timing out), so its cells there show -",
    );
    true
}

/// `http://ADDR/`.
pub fn url(addr: SocketAddr) -> String {
    format!("http://{addr}/")
}

// ---------------------------------------------------------------------------
// Targets

/// `ours / peer`, computed within each round: a throughput ratio.
pub fn ratio(
    record: &Record,
    label: &str,
    ours: (&str, &str),
    peer: (&str, &str),
    unit: Unit,
    goal: Goal,
) -> Target {
    Target {
        label: label.to_string(),
        ours: record.median(ours.0, ours.1).map(|v| unit.show(v)),
        peer: record.median(peer.0, peer.1).map(|v| unit.show(v)),
        value: record.per_round(ours, peer, |a, b| a / b),
        unit: Unit::Ratio,
        goal,
        chart: unit == Unit::Rps,
    }
}

/// `ours - peer`, computed within each round: a latency difference.
pub fn difference(
    record: &Record,
    label: &str,
    ours: (&str, &str),
    peer: (&str, &str),
    unit: Unit,
    goal: Goal,
) -> Target {
    Target {
        label: label.to_string(),
        ours: record.median(ours.0, ours.1).map(|v| unit.show(v)),
        peer: record.median(peer.0, peer.1).map(|v| unit.show(v)),
        value: record.per_round(ours, peer, |a, b| a - b),
        unit: unit.signed(),
        goal,
        chart: false,
    }
}

/// `ours / ours (baseline)` of `figure` (see [`crate::servers::BASELINE`]),
/// computed within each round, reported without a target; nothing when the
/// baseline was not measured (no `--baseline`), so that a run without one
/// shows no empty rows. `what` is the measurement's label before the
/// colon.
pub fn versus_baseline(record: &Record, what: &str, figure: &str, unit: Unit) -> Option<Target> {
    let base = BASELINE.0;
    record.median(base, figure)?;
    Some(ratio(
        record,
        &format!("{what}: ours / {}", BASELINE.1),
        ("ours", figure),
        (base, figure),
        unit,
        Goal::None,
    ))
}

/// `ours / ours (baseline)` of a wrk load's req/s, server CPU time and
/// context switches per request (measurements 1, 12 and 2), if the baseline
/// ran.
pub fn wrk_versus_baseline(r: &Record, what: &str, prefix: &str) -> Vec<Target> {
    [
        ("req/s", "rps", Unit::Rps),
        ("server CPU time per request", "cpu_us", Unit::MicrosFine),
        ("context switches per request", "switches", Unit::PerRequest),
    ]
    .into_iter()
    .filter_map(|(label, figure, unit)| {
        versus_baseline(
            r,
            &format!("{what}, {label}"),
            &format!("{prefix}_{figure}"),
            unit,
        )
    })
    .collect()
}

/// `ours - ours (baseline)` of `figure`, as [`versus_baseline`]: for
/// latencies, compared as differences like those to the peers.
pub fn baseline_difference(
    record: &Record,
    what: &str,
    figure: &str,
    unit: Unit,
) -> Option<Target> {
    let base = BASELINE.0;
    record.median(base, figure)?;
    Some(difference(
        record,
        &format!("{what}: ours - {}", BASELINE.1),
        ("ours", figure),
        (base, figure),
        unit,
        Goal::None,
    ))
}

/// A bound on one of our own figures (no peer).
pub fn bound(record: &Record, label: &str, ours: (&str, &str), unit: Unit, goal: Goal) -> Target {
    let value = record.median(ours.0, ours.1);
    Target {
        label: label.to_string(),
        ours: value.map(|v| unit.show(v)),
        peer: None,
        value,
        unit,
        goal,
        chart: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_ratios_only_when_the_baseline_ran() {
        let mut r = Record::default();
        r.set("ours", "ka4_rps", 90.0);
        r.set("hyper", "ka4_rps", 100.0);
        assert!(versus_baseline(&r, "1. x", "ka4_rps", Unit::Rps).is_none());
        assert!(baseline_difference(&r, "3. x", "ka4_rps", Unit::Micros).is_none());
        r.set("ours-base", "ka4_rps", 100.0);
        let t = versus_baseline(&r, "1. x", "ka4_rps", Unit::Rps).expect("measured");
        assert_eq!(t.label, "1. x: ours / ours (baseline)");
        assert_eq!(t.value, Some(0.9));
        assert_eq!(t.goal, Goal::None);
        let t = baseline_difference(&r, "3. x", "ka4_rps", Unit::Micros).expect("measured");
        assert_eq!(t.value, Some(-10.0));
    }
}
