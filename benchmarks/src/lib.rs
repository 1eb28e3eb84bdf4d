//! Side-by-side benchmark: graceful-server against the peers users would pick
//! instead (the Rust Book's blocking pool, tiny_http, astra, hyper on one
//! thread, Node.js; for HTTPS, tiny_http with rustls and nginx).
//!
//! ```text
//! cargo bench -p graceful-server-benchmarks                   # full run (about 8 minutes)
//! cargo bench -p graceful-server-benchmarks -- --quick        # smoke run (about 1 minute)
//! cargo bench -p graceful-server-benchmarks -- --only keepalive,idle --servers ours,blocking
//! cargo bench -p graceful-server-benchmarks -- --only keepalive,keepalive-c32,close,sequential,costs
//! cargo bench -p graceful-server-benchmarks -- --rounds 1 --only tls   # HTTPS, about 2 minutes
//! cargo bench -p graceful-server-benchmarks -- --only long-lived   # SSE and WebSocket, about 3 minutes
//! cargo bench -p graceful-server-benchmarks -- --help
//! ```
//!
//! The driver builds the server under test (the root crate's HTTP example and
//! echo binary, `cargo build --release`), then runs every measurement in
//! [`measure`] on each of its servers in turn, each in a fresh child process
//! pinned to CPU 0, while the load (this process, `wrk`, the Python clients)
//! runs on CPU 1. The server order rotates every round; tables show medians
//! over rounds, and every ratio is computed within a round before its median
//! is taken. Targets are reported as met or not, never asserted.
//!
//! The peers (`src/bin/`, `node/`): `blocking` (the Rust Book's pool),
//! `tiny` (tiny_http 0.12), `astra` (astra 0.4: hyper's connections on
//! blocking workers, 4 at most), `hyper` (hyper 1 on a tokio current-thread
//! runtime: one thread), `node` (Node.js `http`), and `ours-defaults` (the
//! library's quick start). Every wrk measurement also counts the server's
//! context switches per request (all its threads, from `/proc`); measurement
//! 13, `costs`, counts system calls (strace) and instructions (callgrind)
//! per request, and is skipped when either tool is missing.
//!
//! HTTPS (measurement 14, `tls`, [`measure::tls`]) has peers of its own:
//! `ours-tls` (the HTTP example built with `--features http,tls`, copied to
//! `target/bench/tls/http-tls`), `tiny-tls` (tiny_http 0.12 with
//! `ssl-rustls`, `src/bin/tiny_tls.rs`) and `nginx` (one worker process,
//! from a configuration the measurement writes; skipped when nginx is not
//! installed: `apt-get install -y nginx`), with a certificate made once per
//! run (rcgen) in `target/bench/tls/`. It loads them with `wrk` on
//! `https://localhost:PORT/`: keep-alive, and new connections with full
//! handshakes (forced, and counted, by a small library preloaded into wrk
//! that the driver compiles with `cc`) and with wrk's session resumption.
//!
//! With `--baseline PATH` (a prebuilt `examples/http` of another commit) or
//! `--baseline-commit REV` (built from a temporary `git worktree`, see
//! [`servers::build_baseline`]), that build runs beside ours as `ours-base`
//! in every measurement of ours but `tls` and `unix`, and the report adds
//! `ours / ours-base` ratios, computed within each round like the others:
//! the before-and-after of a change in one run, on the same machine load.
//!
//! Long-lived connections (measurement 15, `long-lived`,
//! [`measure::long_lived`]): the HTTP example built with `--features
//! http,websocket` (`ours-ws`, copied to `target/bench/long-lived/http-ws`)
//! against Node's `http` with the `ws` package (`node-ws`,
//! `node/ws.js`, the same routes; the driver runs `npm ci` in
//! `benchmarks/node/` first and skips it, with a note, without npm), with
//! thousands of WebSocket and server-sent-event clients of its own
//! ([`fleet`]): `wrk -c8` beside 1,000 of each, a broadcast to 1,000, memory
//! per idle WebSocket, and SIGINT with 1,000 connected.
//!
//! Output: the tables on stdout and in `target/bench/compare.md`, the ratio
//! chart in `target/bench/compare.svg`, every figure of every round in
//! `target/bench/rounds.tsv`; with `--update-readme-figures` also
//! `benchmarks/results/compare.{md,svg}` (tracked, what the README shows).
//!
//! Layout: [`config`] (flags), [`system`] (pinning, limits, tools, `/proc`),
//! [`servers`] (building and starting the servers, nginx too), [`wrk`] and [`client`]
//! (the two kinds of load; [`fleet`], the long-lived clients), [`record`] (figures per round, commands, notes),
//! [`measure`] (one file per measurement, with its figures and targets),
//! [`report`] and [`chart`] (the output).

#[cfg(not(target_os = "linux"))]
compile_error!("the benchmark runs on Linux only: it reads /proc and pins with taskset");

pub mod chart;
pub mod client;
pub mod config;
pub mod fleet;
pub mod measure;
pub mod record;
pub mod report;
pub mod servers;
pub mod stats;
pub mod system;
pub mod wrk;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use config::{Config, Parsed};
use measure::Bench;
use record::Record;

/// Above this share of all CPUs in use before the run (percent), the report
/// warns that the machine was busy.
const BUSY: f64 = 10.0;

/// The peer servers of `src/bin/`, as cargo built them for the bench target
/// (`env!("CARGO_BIN_EXE_..")` there).
#[derive(Debug, Clone)]
pub struct PeerBinaries {
    /// The Rust Book's blocking-accept pool (`src/bin/blocking.rs`).
    pub blocking: PathBuf,
    /// tiny_http on a fixed number of threads (`src/bin/tiny.rs`).
    pub tiny: PathBuf,
    /// tiny_http with `ssl-rustls`, HTTPS (`src/bin/tiny_tls.rs`).
    pub tiny_tls: PathBuf,
    /// The crate's HTTP quick start with the library's defaults but 4
    /// workers (`src/bin/quickstart.rs`): `ours-defaults`.
    pub quickstart: PathBuf,
    /// hyper 1 on a tokio current-thread runtime: one thread, one core
    /// (`src/bin/hyper.rs`).
    pub hyper: PathBuf,
    /// astra 0.4, blocking workers driving hyper's connections
    /// (`src/bin/astra.rs`).
    pub astra: PathBuf,
}

/// This package's folder (`benchmarks/`).
pub fn package_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The workspace root, where the server under test is built.
pub fn workspace_dir() -> PathBuf {
    package_dir()
        .parent()
        .expect("the benchmark package lives in a folder of the workspace")
        .to_path_buf()
}

/// Cargo's target folder: `CARGO_TARGET_DIR` or the workspace's `target/`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_dir().join(dir),
        None => workspace_dir().join("target"),
    }
}

/// Runs the whole benchmark; the entry point of `benches/compare.rs`.
pub fn run(peers: PeerBinaries) -> ExitCode {
    let config = match Config::parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(config)) => config,
        Ok(Parsed::Help) => {
            println!("{}", config::help());
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::List) => {
            for m in measure::ALL {
                println!("{:<18} {} [{}]", m.id, m.title, m.servers.join(", "));
            }
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("compare: {message}\n\n{}", config::help());
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let mut record = Record::default();

    // Descriptors first, so that every child inherits the raised limit:
    // 10,000 idle connections need that many on both sides.
    match system::raise_descriptor_limit() {
        Ok(limit) => record.note(format!("descriptor limit (RLIMIT_NOFILE, soft): {limit}")),
        Err(e) => record.note(format!("could not raise the descriptor limit: {e}")),
    }

    // Build with every CPU, before pinning.
    // The TLS build of the HTTP example only if `tls` runs.
    let selected = |id: &str| config.only.is_empty() || config.only.iter().any(|o| o == id);
    let tls = selected("tls");
    // The websocket build of the HTTP example only if `long-lived` runs.
    let long_lived = selected("long-lived");
    let built = match servers::build_ours(&mut record, tls, long_lived) {
        Ok(built) => built,
        Err(e) => {
            eprintln!("compare: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The baseline (`--baseline`, `--baseline-commit`): asked for, so a
    // failure to find or build it ends the run.
    let baseline = match config
        .baseline
        .as_ref()
        .map(|b| servers::baseline(&mut record, b))
    {
        None => None,
        Some(Ok(path)) => Some(path),
        Some(Err(e)) => {
            eprintln!("compare: {e}");
            return ExitCode::FAILURE;
        }
    };
    let machine = system::machine();
    let load_at_start = system::load_average();
    // Before anything of ours runs: what else is using the CPUs.
    let busy_before = system::cpu_busy(Duration::from_secs(1));
    if let Some(busy) = busy_before.filter(|&b| b > BUSY) {
        let line = format!(
            "the machine was busy before the run ({busy:.0}% of all CPUs in use by other \
             processes): expect noisy figures"
        );
        eprintln!("compare: warning: {line}");
        record.note(line);
    }
    let tools = system::Tools::probe();
    for missing in tools.missing() {
        eprintln!("compare: {missing}");
        record.note(missing);
    }
    // Node's `ws` package for `long-lived`, from the lock file.
    let node_ws = long_lived
        && tools.node
        && match servers::install_node_ws(&mut record) {
            Ok(()) => true,
            Err(e) => {
                let line = format!("node-ws (Node.js + ws): not measured: {e}");
                eprintln!("compare: {line}");
                record.note(line);
                false
            }
        };
    let pin = system::pin_load_generator(&mut record);
    let specs = servers::specs(
        &built,
        &peers,
        tools.node,
        node_ws,
        tools.nginx.as_deref(),
        baseline.as_deref(),
    );

    let log_dir = target_dir().join("bench").join("logs");
    if let Err(e) = fs::create_dir_all(&log_dir) {
        eprintln!("compare: cannot create {}: {e}", log_dir.display());
        return ExitCode::FAILURE;
    }
    let measurements: Vec<&measure::Measurement> = measure::ALL
        .iter()
        .filter(|m| config.only.is_empty() || config.only.iter().any(|id| id == m.id))
        .collect();
    eprintln!("compare: {machine}; load average {load_at_start}");
    eprintln!(
        "compare: {} measurement(s), {} round(s), {} s per load{}",
        measurements.len(),
        config.rounds,
        config.secs,
        if pin {
            "; servers on CPU 0, load on CPU 1"
        } else {
            ""
        }
    );

    let mut bench = Bench {
        config: &config,
        record,
        pin,
        log_dir,
    };
    for round in 0..config.rounds {
        bench.record.start_round();
        for m in &measurements {
            if let Some(tool) = m.needs.iter().find(|t| !tools.has(**t)) {
                if round == 0 {
                    bench.record.note(format!(
                        "{}: not measured, {} is missing",
                        m.id,
                        tool.name()
                    ));
                }
                continue;
            }
            let servers: Vec<&servers::Spec> = m
                .servers
                .iter()
                .filter_map(|id| specs.iter().find(|s| s.id == *id))
                .filter(|s| config.servers.is_empty() || config.servers.iter().any(|id| id == s.id))
                .collect();
            for i in 0..servers.len() {
                // Rotate the order every round, so no server always goes
                // first (or always follows the same one).
                let spec = servers[(i + round) % servers.len()];
                eprintln!(
                    "round {}/{} [{:>4.0} s] {}: {}",
                    round + 1,
                    config.rounds,
                    started.elapsed().as_secs_f64(),
                    m.id,
                    spec.id
                );
                if let Err(e) = (m.run)(&mut bench, spec) {
                    let line = format!("round {}: {} on {}: {e}", round + 1, m.id, spec.id);
                    eprintln!("  ! {line}");
                    bench.record.note(line);
                }
            }
        }
    }

    let record = bench.record;
    let targets: Vec<report::Target> = measurements
        .iter()
        .flat_map(|m| (m.targets)(&record))
        .collect();
    let md = report::render(&report::Run {
        config: &config,
        machine: &machine,
        load_at_start: &load_at_start,
        busy_before,
        measurements: &measurements,
        specs: &specs,
        record: &record,
        targets: &targets,
        minutes: started.elapsed().as_secs_f64() / 60.0,
    });
    println!("\n{md}");
    let svg = chart::draw(&targets);
    let bench_dir = target_dir().join("bench");
    write(&bench_dir.join("compare.md"), &md);
    write(&bench_dir.join("rounds.tsv"), &record.rounds_tsv());
    if let Some(svg) = &svg {
        write(&bench_dir.join("compare.svg"), svg);
    }
    if config.update_figures {
        let results = package_dir().join("results");
        write(&results.join("compare.md"), &md);
        if let Some(svg) = &svg {
            write(&results.join("compare.svg"), svg);
        }
    }
    eprintln!(
        "compare: done in {:.1} min",
        started.elapsed().as_secs_f64() / 60.0
    );
    ExitCode::SUCCESS
}

fn write(path: &Path, text: &str) {
    let written = path
        .parent()
        .map_or(Ok(()), fs::create_dir_all)
        .and_then(|()| fs::write(path, text));
    match written {
        Ok(()) => eprintln!("compare: wrote {}", path.display()),
        Err(e) => eprintln!("compare: cannot write {}: {e}", path.display()),
    }
}
