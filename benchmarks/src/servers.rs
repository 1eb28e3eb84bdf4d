//! The servers: building the one under test, the list of servers with their
//! command lines, and running one as a child process pinned to its CPU.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::config::Baseline;
use crate::record::Record;
use crate::system::SERVER_CPU;
use crate::{workspace_dir, PeerBinaries};

/// Worker threads of every server that has a pool.
pub const WORKERS: usize = 4;
/// How long a server may take to print its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The root crate's executables under test.
#[derive(Debug)]
pub struct Ours {
    /// `examples/http.rs`.
    pub http: PathBuf,
    /// The echo binary, `src/main.rs`.
    pub echo: PathBuf,
    /// `examples/http.rs` built with `--features http,tls`, copied to
    /// `target/bench/tls/http-tls` (the plain build that follows replaces
    /// `target/release/examples/http`); `None` if that build failed.
    pub http_tls: Option<PathBuf>,
    /// `examples/http.rs` built with `--features http,websocket`, copied to
    /// `target/bench/long-lived/http-ws`, for measurement `long-lived`;
    /// `None` if not asked for or if that build failed.
    pub http_ws: Option<PathBuf>,
}

/// Builds the HTTP example and the echo binary in release mode. The HTTP
/// example may need the root crate's `http` feature: without it first,
/// then with it. Before them, the HTTP example with `--features http,tls`
/// for the `tls` measurement, if `tls` (a failure there is a note, not an
/// error). Likewise with `--features http,websocket` for `long-lived`, if
/// `websocket`.
pub fn build_ours(record: &mut Record, tls: bool, websocket: bool) -> Result<Ours, String> {
    let http_tls = match tls.then(|| build_ours_copy(record, "tls", "http-tls")) {
        None => None,
        Some(Ok(path)) => Some(path),
        Some(Err(e)) => {
            eprintln!("compare: {e}");
            record.note(format!("ours-tls: not measured: {e}"));
            None
        }
    };
    let http_ws = match websocket.then(|| build_ours_copy(record, "websocket", "http-ws")) {
        None => None,
        Some(Ok(path)) => Some(path),
        Some(Err(e)) => {
            eprintln!("compare: {e}");
            record.note(format!("ours-ws: not measured: {e}"));
            None
        }
    };
    let mut ours = build_ours_plain(record)?;
    ours.http_tls = http_tls;
    ours.http_ws = http_ws;
    Ok(ours)
}

/// `cargo build --release -p graceful-server --example http --features
/// http,FEATURE`, and the executable copied out of cargo's way, to
/// `target/bench/tls/http-tls` or `target/bench/long-lived/http-ws`.
fn build_ours_copy(record: &mut Record, feature: &str, name: &str) -> Result<PathBuf, String> {
    let args = [
        "build",
        "--release",
        "-p",
        "graceful-server",
        "--example",
        "http",
    ];
    let list = format!("http,{feature}");
    let features = ["--features", list.as_str()];
    let shown = format!("cargo {} {}", args.join(" "), features.join(" "));
    eprintln!("compare: {shown}");
    let found = cargo_build(&args, &features)
        .map_err(|e| format!("cannot build the HTTP example with {feature}: {e}"))?;
    let built = found
        .get("http")
        .ok_or("cargo reported no executable for the HTTP example")?;
    let folder = if feature == "tls" {
        "tls"
    } else {
        "long-lived"
    };
    let dir = crate::target_dir().join("bench").join(folder);
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let copy = dir.join(name);
    // Replace rather than overwrite: a copy still running would make the
    // write fail (ETXTBSY).
    let _ = fs::remove_file(&copy);
    fs::copy(built, &copy).map_err(|e| format!("cannot copy {}: {e}", built.display()))?;
    record.command(
        &format!(
            "build the server under test, with {feature} (copied to target/bench/{folder}/{name})"
        ),
        &shown,
    );
    Ok(copy)
}

/// `npm ci` in `benchmarks/node/`: the `ws` package of `node/ws.js`, at the
/// version of `package-lock.json`.
pub fn install_node_ws(record: &mut Record) -> Result<(), String> {
    if !crate::system::have("npm") {
        return Err("npm is not on PATH (install Node.js with npm)".into());
    }
    let dir = crate::package_dir().join("node");
    let args = ["ci", "--prefer-offline", "--no-audit", "--no-fund"];
    eprintln!("compare: (cd benchmarks/node && npm {})", args.join(" "));
    let output = Command::new("npm")
        .args(args)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run npm: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(format!(
            "npm ci failed ({}): {}",
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ));
    }
    record.command(
        "install the ws package for node/ws.js",
        &format!("(cd benchmarks/node && npm {})", args.join(" ")),
    );
    Ok(())
}

fn build_ours_plain(record: &mut Record) -> Result<Ours, String> {
    let base = [
        "build",
        "--release",
        "-p",
        "graceful-server",
        "--example",
        "http",
        "--bin",
        "graceful-server",
    ];
    let mut failures = Vec::new();
    for features in [&[][..], &["--features", "http"][..]] {
        let shown = format!("cargo {} {}", base.join(" "), features.join(" "));
        eprintln!("compare: {}", shown.trim_end());
        match cargo_build(&base, features) {
            Ok(found) => {
                record.command("build the server under test", shown.trim_end());
                let path = |name: &str| {
                    found
                        .get(name)
                        .cloned()
                        .ok_or_else(|| format!("cargo reported no executable for {name}"))
                };
                return Ok(Ours {
                    http: path("http")?,
                    echo: path("graceful-server")?,
                    http_tls: None,
                    http_ws: None,
                });
            }
            Err(e) => failures.push(e),
        }
    }
    Err(format!(
        "cannot build the server under test:\n{}",
        failures.join("\n")
    ))
}

/// Runs cargo in the workspace, and returns the executables it reports by
/// target name. Its diagnostics are shown only if the build fails.
fn cargo_build(args: &[&str], features: &[&str]) -> Result<BTreeMap<String, PathBuf>, String> {
    cargo_build_in(&workspace_dir(), None, args, features)
}

/// [`cargo_build`] in `dir`, with `target` as cargo's target folder if
/// given.
fn cargo_build_in(
    dir: &Path,
    target: Option<&Path>,
    args: &[&str],
    features: &[&str],
) -> Result<BTreeMap<String, PathBuf>, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    if let Some(target) = target {
        command.env("CARGO_TARGET_DIR", target);
    }
    let output = command
        .current_dir(dir)
        .args(args)
        .args(features)
        .arg("--message-format=json-render-diagnostics")
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(8).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "cargo {} {} failed:\n{}",
            args.join(" "),
            features.join(" "),
            tail.join("\n")
        ));
    }
    let mut found = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if !line.contains("\"reason\":\"compiler-artifact\"") {
            continue;
        }
        if let (Some(name), Some(exe)) = (
            json_string_after(line, "\"target\":", "\"name\":\""),
            json_string_after(line, "", "\"executable\":\""),
        ) {
            found.insert(name, PathBuf::from(exe));
        }
    }
    Ok(found)
}

/// The baseline's server id and column heading.
pub const BASELINE: (&str, &str) = ("ours-base", "ours (baseline)");

/// The executable `--baseline` or `--baseline-commit` names, and a note
/// saying what it is.
pub fn baseline(record: &mut Record, which: &Baseline) -> Result<PathBuf, String> {
    match which {
        Baseline::Binary(path) => {
            let path = workspace_dir().join(path);
            if !path.is_file() {
                return Err(format!("--baseline {}: no such file", path.display()));
            }
            record.note(format!(
                "{}: the baseline, {} (--baseline)",
                BASELINE.0,
                shown(&[path.to_string_lossy().into_owned()])
            ));
            Ok(path)
        }
        Baseline::Commit(rev) => build_baseline(record, rev),
    }
}

/// Builds the HTTP example of this repository at `rev`: a detached `git
/// worktree` in `target/bench/baseline/worktree-COMMIT`, `cargo build
/// --release --features http --example http` there with
/// `target/bench/baseline/target` as its target folder (kept, so that the
/// next build of a baseline is incremental), the executable copied to
/// `target/bench/baseline/http-COMMIT`; the worktree is removed afterwards,
/// whether the build worked or not. Without the `http` feature if that
/// fails (a commit from before it existed).
pub fn build_baseline(record: &mut Record, rev: &str) -> Result<PathBuf, String> {
    let root = workspace_dir();
    let commit = git(
        &root,
        &["rev-parse", "--verify", &format!("{rev}^{{commit}}")],
    )
    .map_err(|e| format!("--baseline-commit {rev}: {e}"))?;
    let short = &commit[..commit.len().min(12)];
    let dir = crate::target_dir().join("bench").join("baseline");
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let tree = dir.join(format!("worktree-{short}"));
    let tree_arg = tree.to_string_lossy().into_owned();
    // Left over from an interrupted run.
    if tree.exists() {
        let _ = git(&root, &["worktree", "remove", "--force", &tree_arg]);
        let _ = fs::remove_dir_all(&tree);
    }
    let _ = git(&root, &["worktree", "prune"]);
    let add = ["worktree", "add", "--detach", &tree_arg, &commit];
    eprintln!("compare: git {}", add.join(" "));
    git(&root, &add).map_err(|e| format!("--baseline-commit {rev}: {e}"))?;
    record.command(
        &format!("the baseline ({rev}): a temporary worktree"),
        &format!("git {}", shown(&add.map(String::from))),
    );
    let target = dir.join("target");
    let built = build_baseline_in(record, &tree, &target, rev, &commit);
    let removed = git(&root, &["worktree", "remove", "--force", &tree_arg]);
    match removed {
        Ok(_) => record.command(
            "the baseline: the worktree removed after the build",
            &format!(
                "git worktree remove --force {}",
                shown(std::slice::from_ref(&tree_arg))
            ),
        ),
        Err(e) => {
            eprintln!("compare: could not remove the worktree {tree_arg}: {e}");
            record.note(format!(
                "could not remove the baseline's worktree {tree_arg}: {e}"
            ));
        }
    }
    let built = built?;
    let copy = dir.join(format!("http-{short}"));
    // Replace rather than overwrite (ETXTBSY if a copy still runs).
    let _ = fs::remove_file(&copy);
    fs::copy(&built, &copy).map_err(|e| format!("cannot copy {}: {e}", built.display()))?;
    record.note(format!(
        "{}: the baseline, examples/http at {rev} (commit {commit}), built in a temporary \
         worktree and copied to {}",
        BASELINE.0,
        shown(&[copy.to_string_lossy().into_owned()])
    ));
    Ok(copy)
}

/// The build half of [`build_baseline`]: the executable cargo reports.
fn build_baseline_in(
    record: &mut Record,
    tree: &Path,
    target: &Path,
    rev: &str,
    commit: &str,
) -> Result<PathBuf, String> {
    let args = ["build", "--release", "--example", "http"];
    let mut failures = Vec::new();
    for features in [&["--features", "http"][..], &[][..]] {
        let line = format!(
            "CARGO_TARGET_DIR={} cargo {} {}",
            shown(&[target.to_string_lossy().into_owned()]),
            args.join(" "),
            features.join(" ")
        );
        eprintln!("compare: (in the worktree at {rev}) {}", line.trim_end());
        match cargo_build_in(tree, Some(target), &args, features) {
            Ok(found) => {
                record.command(
                    &format!("the baseline: built in that worktree ({commit})"),
                    line.trim_end(),
                );
                return found
                    .get("http")
                    .cloned()
                    .ok_or_else(|| "cargo reported no executable for the baseline".into());
            }
            Err(e) => failures.push(e),
        }
    }
    Err(format!(
        "cannot build the baseline at {rev}:\n{}",
        failures.join("\n")
    ))
}

/// Runs `git` in `dir`; its stdout, trimmed, or its stderr as the error.
fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new("git")
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The JSON string that follows `key`, searching after `anchor`. Enough for
/// cargo's messages, whose names and paths need no escapes here.
fn json_string_after(line: &str, anchor: &str, key: &str) -> Option<String> {
    let rest = &line[line.find(anchor)?..];
    let start = rest.find(key)? + key.len();
    let end = rest[start..].find('"')?;
    Some(rest[start..start + end].to_string())
}

/// A server to measure: how to start it.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Short key, used by `--servers` and in the figures.
    pub id: &'static str,
    /// Column heading.
    pub name: &'static str,
    pub program: Vec<String>,
    /// Arguments after `--addr 127.0.0.1:0 --workers 4`.
    pub args: Vec<String>,
}

/// Every server; Node.js only if `node` is installed, nginx (the `tls`
/// measurement's peer, started by it from its own configuration) only if
/// `nginx` is, `ours-tls` and `ours-ws` only if they were built,
/// `node-ws` (Node.js with the `ws` package) only if `node_ws` (npm
/// installed it), and `ours-base` only with a `baseline` (the HTTP example
/// of another commit).
pub fn specs(
    ours: &Ours,
    peers: &PeerBinaries,
    node: bool,
    node_ws: bool,
    nginx: Option<&str>,
    baseline: Option<&Path>,
) -> Vec<Spec> {
    let path = |p: &Path| vec![p.to_string_lossy().into_owned()];
    let mut specs = vec![Spec {
        id: "ours",
        name: "ours",
        program: path(&ours.http),
        args: vec![],
    }];
    if let Some(baseline) = baseline {
        specs.push(Spec {
            id: BASELINE.0,
            name: BASELINE.1,
            program: path(baseline),
            args: vec![],
        });
    }
    specs.extend([
        Spec {
            id: "ours-defaults",
            name: "ours (library defaults)",
            program: path(&peers.quickstart),
            args: vec![],
        },
        Spec {
            id: "ours-poll",
            name: "ours --poll",
            program: path(&ours.http),
            args: vec!["--poll".into()],
        },
        Spec {
            id: "echo",
            name: "ours (echo)",
            program: path(&ours.echo),
            args: vec![],
        },
        Spec {
            id: "blocking",
            name: "blocking (Book)",
            program: path(&peers.blocking),
            args: vec![],
        },
        Spec {
            id: "tiny",
            name: "tiny_http",
            program: path(&peers.tiny),
            args: vec![],
        },
        Spec {
            id: "astra",
            name: "astra",
            program: path(&peers.astra),
            args: vec![],
        },
        Spec {
            id: "hyper",
            name: "hyper (1 thread)",
            program: path(&peers.hyper),
            args: vec![],
        },
    ]);
    if let Some(http_tls) = &ours.http_tls {
        specs.push(Spec {
            id: "ours-tls",
            name: "ours (HTTPS)",
            program: path(http_tls),
            args: vec![],
        });
    }
    if let Some(http_ws) = &ours.http_ws {
        specs.push(Spec {
            id: "ours-ws",
            name: "ours (websocket)",
            program: path(http_ws),
            args: vec![],
        });
    }
    specs.push(Spec {
        id: "tiny-tls",
        name: "tiny_http (ssl-rustls)",
        program: path(&peers.tiny_tls),
        args: vec![],
    });
    if let Some(nginx) = nginx {
        specs.push(Spec {
            id: "nginx",
            name: "nginx (HTTPS)",
            program: vec![nginx.to_string()],
            args: vec![],
        });
    }
    if node {
        let script = crate::package_dir().join("node").join("http.js");
        specs.push(Spec {
            id: "node",
            name: "Node.js",
            program: vec!["node".into(), script.to_string_lossy().into_owned()],
            args: vec![],
        });
    }
    if node && node_ws {
        let script = crate::package_dir().join("node").join("ws.js");
        specs.push(Spec {
            id: "node-ws",
            name: "Node.js + ws",
            program: vec!["node".into(), script.to_string_lossy().into_owned()],
            args: vec![],
        });
    }
    specs
}

/// A running server. Dropping it kills the process (none of the peers
/// shuts down gracefully, and the measurements here are not about that).
#[derive(Debug)]
pub struct Server {
    pub pid: i32,
    pub addr: SocketAddr,
    exited: mpsc::Receiver<std::io::Result<ExitStatus>>,
    gone: bool,
    /// Started in a process group of its own, killed as a group: a server
    /// that forks workers (nginx).
    group: bool,
}

impl Server {
    /// Starts `spec` with `extra` arguments, pinned to [`SERVER_CPU`] when
    /// `pin`, its stderr appended to `log_dir/ID.log`, and waits for its
    /// `listening on IP:PORT` line.
    pub fn start(
        spec: &Spec,
        extra: &[&str],
        pin: bool,
        log_dir: &Path,
        record: &mut Record,
    ) -> Result<Server, String> {
        Server::start_wrapped(spec, &[], extra, pin, log_dir, record)
    }

    /// [`Server::start`] under `wrapper` (a program that execs or runs the
    /// server in its own process, such as `valgrind --tool=callgrind`), so
    /// that the child's pid is still the server's.
    pub fn start_wrapped(
        spec: &Spec,
        wrapper: &[String],
        extra: &[&str],
        pin: bool,
        log_dir: &Path,
        record: &mut Record,
    ) -> Result<Server, String> {
        let mut argv: Vec<String> = Vec::new();
        if pin {
            argv.extend(["taskset".into(), "-c".into(), SERVER_CPU.to_string()]);
        }
        argv.extend(wrapper.iter().cloned());
        argv.extend(spec.program.iter().cloned());
        argv.extend([
            "--addr".into(),
            "127.0.0.1:0".into(),
            "--workers".into(),
            WORKERS.to_string(),
        ]);
        argv.extend(spec.args.iter().cloned());
        argv.extend(extra.iter().map(|a| a.to_string()));
        record.command(&format!("server {}", spec.id), &shown(&argv));

        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_dir.join(format!("{}.log", spec.id)))
            .map_err(|e| format!("cannot open the server log: {e}"))?;
        // `taskset` execs the server, so the child's pid is the server's.
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .current_dir(workspace_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", argv.join(" ")))?;
        let pid = child.id() as i32;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (exit_tx, exited) = mpsc::channel();
        thread::spawn(move || {
            let _ = exit_tx.send(child.wait());
        });
        let (line_tx, line_rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = line_tx.send(line);
            // Keep reading, so the server never writes into a closed pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let mut server = Server {
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            exited,
            gone: false,
            group: false,
        };
        let line = line_rx
            .recv_timeout(START_TIMEOUT)
            .map_err(|_| format!("{} printed nothing within {START_TIMEOUT:?}", spec.id))?;
        server.addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("{}: unexpected first line {line:?}", spec.id))?;
        Ok(server)
    }

    /// Starts `argv` (a server with a command line of its own, such as
    /// nginx with its configuration file), pinned to [`SERVER_CPU`] when
    /// `pin`, in a process group of its own (dropping it kills the group:
    /// the master and the workers it forked), its stderr appended to
    /// `log_dir/ID.log`, and waits until `addr` accepts a connection.
    pub fn start_command(
        id: &str,
        argv: &[String],
        addr: SocketAddr,
        pin: bool,
        log_dir: &Path,
        record: &mut Record,
    ) -> Result<Server, String> {
        let mut full: Vec<String> = Vec::new();
        if pin {
            full.extend(["taskset".into(), "-c".into(), SERVER_CPU.to_string()]);
        }
        full.extend(argv.iter().cloned());
        record.command(&format!("server {id}"), &shown(&full));
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_dir.join(format!("{id}.log")))
            .map_err(|e| format!("cannot open the server log: {e}"))?;
        let mut child = Command::new(&full[0])
            .args(&full[1..])
            .current_dir(workspace_dir())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", full.join(" ")))?;
        let pid = child.id() as i32;
        let (exit_tx, exited) = mpsc::channel();
        thread::spawn(move || {
            let _ = exit_tx.send(child.wait());
        });
        let mut server = Server {
            pid,
            addr,
            exited,
            gone: false,
            group: true,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if !server.running() {
                return Err(format!(
                    "{id} exited at start (its log: {})",
                    log_dir.join(format!("{id}.log")).display()
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(server);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{id} did not listen on {addr} within {START_TIMEOUT:?}"
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` and waits up to `limit` for the process to exit:
    /// whether it did (a profiler writes its figures on the way out).
    pub fn stop(&mut self, signal: i32, limit: Duration) -> bool {
        if !self.running() {
            return true;
        }
        // SAFETY: plain syscall on our own child, not yet reaped (as in
        // `drop`).
        unsafe {
            libc::kill(self.pid, signal);
        }
        if self.exited.recv_timeout(limit).is_ok() {
            self.gone = true;
        }
        self.gone
    }

    /// Sends `signal` and waits up to `limit` for the process to exit: its
    /// exit status, or `None` if it is still running (or was already
    /// reaped by [`Server::running`] or [`Server::stop`]).
    pub fn signal_and_wait(&mut self, signal: i32, limit: Duration) -> Option<ExitStatus> {
        if self.gone {
            return None;
        }
        // SAFETY: plain syscall on our own child, not yet reaped (as in
        // `drop`).
        unsafe {
            libc::kill(self.pid, signal);
        }
        let status = self.exited.recv_timeout(limit).ok()?.ok();
        self.gone = true;
        status
    }

    /// Whether the process is still running (it did not crash).
    pub fn running(&mut self) -> bool {
        if !self.gone && self.exited.try_recv().is_ok() {
            self.gone = true;
        }
        !self.gone
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.group {
            // A master that forks workers (nginx) stops them and reaps them
            // itself on SIGTERM; the group's SIGKILL below is the fallback.
            self.stop(libc::SIGTERM, Duration::from_secs(5));
        }
        if self.running() {
            // SAFETY: plain syscall on our own child, which its waiting
            // thread has not reported reaped, so the pid is still its own.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
            }
            let _ = self.exited.recv_timeout(Duration::from_secs(5));
        }
        if self.group {
            // SAFETY: plain syscall on the process group this server was
            // started in (its id is the server's pid): its forked workers,
            // which outlive a killed master.
            unsafe {
                libc::kill(-self.pid, libc::SIGKILL);
            }
        }
    }
}

/// A command line as one would type it in the workspace root.
pub fn shown(argv: &[String]) -> String {
    let root = workspace_dir();
    argv.iter()
        .map(|a| {
            let a = Path::new(a)
                .strip_prefix(&root)
                .map_or_else(|_| a.clone(), |p| p.to_string_lossy().into_owned());
            // Quoted where a shell would split it (`-H 'Connection: close'`,
            // `-g 'daemon off;'`).
            if a.contains([' ', ';', '"']) {
                format!("'{a}'")
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
