//! The run's configuration, from the flags after `--` and the environment.

use std::path::PathBuf;

/// A baseline build of the server under test, measured beside it as
/// `ours-base` (`--baseline`, `--baseline-commit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Baseline {
    /// A prebuilt `examples/http` executable; a relative path is taken from
    /// the workspace root.
    Binary(PathBuf),
    /// A revision of this repository, built in a temporary worktree (see
    /// [`crate::servers::build_baseline`]).
    Commit(String),
}

/// How long and what to measure.
#[derive(Debug, Clone)]
pub struct Config {
    /// Seconds of load per throughput measurement.
    pub secs: u64,
    /// Rounds over every server; tables show medians over rounds.
    pub rounds: usize,
    /// Seconds over which an idle server's wake-ups are counted.
    pub idle_secs: f64,
    /// Samples of the first request after a quiet spell, per round.
    pub quiet_samples: usize,
    /// At most this many sequential connection-per-request samples.
    pub sequential_max: usize,
    /// `--quick`: a smoke run.
    pub quick: bool,
    /// Measurement ids to run (all when empty).
    pub only: Vec<String>,
    /// Server ids to run (all when empty).
    pub servers: Vec<String>,
    /// Also write the tracked `benchmarks/results/compare.{md,svg}`.
    pub update_figures: bool,
    /// The build measured beside ours as `ours-base`, if any.
    pub baseline: Option<Baseline>,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    Run(Config),
    Help,
    List,
}

pub fn help() -> String {
    let ids: Vec<&str> = crate::measure::ALL.iter().map(|m| m.id).collect();
    format!(
        "\
usage: cargo bench -p graceful-server-benchmarks -- [--quick] [--secs N] [--rounds N]
           [--only MEASUREMENT,..] [--servers SERVER,..] [--update-readme-figures] [--list]
           [--baseline PATH | --baseline-commit REV]

  --quick                  1 round of 1 s loads (about 1 minute), for a smoke run
  --secs N                 seconds of load per measurement [default: 5; BENCH_SECS]
  --rounds N               rounds; medians are reported [default: 3; BENCH_ROUNDS]
  --only IDS               run only these measurements: {}
  --servers IDS            run only these servers: ours, ours-defaults, ours-poll, echo,
                           blocking, tiny, astra, hyper, node; ours-base (with a
                           baseline); for `tls`: ours-tls, tiny-tls, nginx; for
                           `long-lived`: ours-ws, node-ws
  --update-readme-figures  also write benchmarks/results/compare.md and .svg (tracked)
  --baseline PATH          also measure PATH, a prebuilt examples/http of another commit,
                           as server ours-base (\"ours (baseline)\") wherever ours is
                           measured but tls and unix; the report adds ours / ours-base
                           ratios, computed within each round. A relative PATH is taken
                           from the workspace root
  --baseline-commit REV    the same for this repository at REV: a temporary git worktree
                           in target/bench/baseline/, built there with cargo build
                           --release --features http --example http (target dir
                           target/bench/baseline/target), the executable copied to
                           target/bench/baseline/http-COMMIT, the worktree removed
  --list                   list the measurements and their servers

Needs wrk (apt-get install -y wrk), python3 with requests (pip install requests)
for the think-time clients, node for the Node.js peer, and strace and valgrind
(apt-get install -y strace valgrind) for `costs`, the system calls and
instructions per request, and nginx (apt-get install -y nginx) and a C compiler
(cc, which the TLS crypto needs anyway) for `tls`; what is missing is skipped and said so
in the results. Peers: blocking (the Rust Book's pool), tiny (tiny_http), astra
(blocking workers on hyper), hyper (hyper 1 on a tokio current-thread runtime,
one thread), node (Node.js http); for `tls` (HTTPS, measurement 14): ours-tls
(the HTTP example built with --features http,tls), tiny-tls (tiny_http with
ssl-rustls) and nginx (one worker process).

`long-lived` (measurement 15, about 1 minute per round with 5 s loads):
server-sent events and WebSocket, ours-ws (the HTTP example built with
--features http,websocket) against node-ws (Node.js http with the ws package:
benchmarks/node/ws.js, installed by `npm ci` in benchmarks/node/, skipped
with a note without npm). 1. wrk -c8 on GET / alone, beside 1,000 SSE
subscribers (a tick a second) and 1,000 idle WebSocket clients, and alone
again: req/s ratio (target >= 0.9x) and p99 (target <= 10 ms); 2. five
broadcasts to 1,000 /chat clients: p50, p99 and last delivery; 3. server
VmRSS per idle WebSocket client (5,000 clients if the descriptor limit
allows, else 1,000); 4. SIGINT with 1,000 WebSocket clients: seconds to
exit, exit status, clients that received Close 1001. Needs wrk.",
        ids.join(", ")
    )
}

impl Config {
    /// Reads the flags (`cargo bench` adds `--bench`, which is ignored) and
    /// `BENCH_SECS` / `BENCH_ROUNDS`.
    pub fn parse(args: impl Iterator<Item = String>) -> Result<Parsed, String> {
        let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        let mut config = Config {
            secs: env("BENCH_SECS").unwrap_or(5).max(1),
            rounds: env("BENCH_ROUNDS").map_or(3, |r| r as usize).max(1),
            idle_secs: 3.0,
            quiet_samples: 10,
            sequential_max: 20_000,
            quick: false,
            only: Vec::new(),
            servers: Vec::new(),
            update_figures: false,
            baseline: None,
        };
        let mut args = args.filter(|a| a != "--bench");
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
            match arg.as_str() {
                "--help" | "-h" => return Ok(Parsed::Help),
                "--list" => return Ok(Parsed::List),
                "--quick" => {
                    config.quick = true;
                    config.secs = 1;
                    config.rounds = 1;
                    config.idle_secs = 1.0;
                    config.quiet_samples = 4;
                    config.sequential_max = 2_000;
                }
                "--secs" | "--rounds" => {
                    let v = value(&arg)?;
                    let n: u64 = v
                        .parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| format!("{arg} needs a positive number, not {v:?}"))?;
                    if arg == "--secs" {
                        config.secs = n;
                    } else {
                        config.rounds = n as usize;
                    }
                }
                "--only" | "--servers" => {
                    let v = value(&arg)?;
                    let ids: Vec<String> = v.split(',').map(str::to_string).collect();
                    if arg == "--only" {
                        let known: Vec<&str> = crate::measure::ALL.iter().map(|m| m.id).collect();
                        if let Some(bad) = ids.iter().find(|id| !known.contains(&id.as_str())) {
                            return Err(format!("no measurement {bad:?} (--list shows them)"));
                        }
                        config.only = ids;
                    } else {
                        config.servers = ids;
                    }
                }
                "--update-readme-figures" => {
                    config.update_figures = true;
                }
                "--baseline" | "--baseline-commit" => {
                    let v = value(&arg)?;
                    if config.baseline.is_some() {
                        return Err("one baseline only: --baseline or --baseline-commit".into());
                    }
                    config.baseline = Some(if arg == "--baseline" {
                        Baseline::Binary(PathBuf::from(v))
                    } else {
                        Baseline::Commit(v)
                    });
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if config.update_figures
            && (config.quick
                || !config.only.is_empty()
                || !config.servers.is_empty()
                || config.baseline.is_some())
        {
            return Err(
                "--update-readme-figures writes the tracked figures: only with a full run \
                 (no --quick, --only, --servers, --baseline or --baseline-commit)"
                    .into(),
            );
        }
        Ok(Parsed::Run(config))
    }

    /// The command that reproduces this run.
    pub fn command(&self) -> String {
        let mut flags = Vec::new();
        let (secs, rounds) = if self.quick {
            flags.push("--quick".to_string());
            (1, 1)
        } else {
            (5, 3)
        };
        if self.secs != secs {
            flags.push(format!("--secs {}", self.secs));
        }
        if self.rounds != rounds {
            flags.push(format!("--rounds {}", self.rounds));
        }
        if !self.only.is_empty() {
            flags.push(format!("--only {}", self.only.join(",")));
        }
        if !self.servers.is_empty() {
            flags.push(format!("--servers {}", self.servers.join(",")));
        }
        match &self.baseline {
            Some(Baseline::Binary(path)) => {
                flags.push(format!("--baseline {}", path.display()));
            }
            Some(Baseline::Commit(rev)) => flags.push(format!("--baseline-commit {rev}")),
            None => {}
        }
        if self.update_figures {
            flags.push("--update-readme-figures".to_string());
        }
        let mut command = "cargo bench -p graceful-server-benchmarks".to_string();
        if !flags.is_empty() {
            command.push_str(" -- ");
            command.push_str(&flags.join(" "));
        }
        command
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        match Config::parse(args.iter().map(|a| a.to_string()))? {
            Parsed::Run(config) => Ok(config),
            other => Err(format!("not a run: {other:?}")),
        }
    }

    #[test]
    fn a_baseline_is_a_binary_or_a_commit_not_both() {
        let config = parse(&["--baseline", "base/http", "--only", "keepalive"]).unwrap();
        assert_eq!(
            config.baseline,
            Some(Baseline::Binary(PathBuf::from("base/http")))
        );
        assert!(config
            .command()
            .ends_with("--only keepalive --baseline base/http"));
        let config = parse(&["--baseline-commit", "578acb8"]).unwrap();
        assert_eq!(config.baseline, Some(Baseline::Commit("578acb8".into())));
        assert!(config.command().ends_with("-- --baseline-commit 578acb8"));
        assert!(parse(&["--baseline", "a", "--baseline-commit", "b"]).is_err());
        assert!(parse(&["--baseline"]).is_err());
        assert!(parse(&["--baseline-commit", "b", "--update-readme-figures"]).is_err());
        assert_eq!(parse(&[]).unwrap().baseline, None);
    }
}
