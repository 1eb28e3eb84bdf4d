//! The servers: building the one under test, the list of servers with their
//! command lines, and running one as a child process pinned to its CPU.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

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
}

/// Builds the HTTP example and the echo binary in release mode. The HTTP
/// example may need the root crate's `http` feature: without it first,
/// then with it.
pub fn build_ours(record: &mut Record) -> Result<Ours, String> {
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

/// Runs cargo, and returns the executables it reports by target name. Its
/// diagnostics are shown only if the build fails.
fn cargo_build(args: &[&str], features: &[&str]) -> Result<BTreeMap<String, PathBuf>, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(workspace_dir())
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

/// Every server; Node.js only if `node` is installed.
pub fn specs(ours: &Ours, peers: &PeerBinaries, node: bool) -> Vec<Spec> {
    let path = |p: &Path| vec![p.to_string_lossy().into_owned()];
    let mut specs = vec![
        Spec {
            id: "ours",
            name: "ours",
            program: path(&ours.http),
            args: vec![],
        },
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
    ];
    if node {
        let script = crate::package_dir().join("node").join("http.js");
        specs.push(Spec {
            id: "node",
            name: "Node.js",
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
        if self.running() {
            // SAFETY: plain syscall on our own child, which its waiting
            // thread has not reported reaped, so the pid is still its own.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
            }
            let _ = self.exited.recv_timeout(Duration::from_secs(5));
        }
    }
}

/// A command line as one would type it in the workspace root.
pub fn shown(argv: &[String]) -> String {
    let root = workspace_dir();
    argv.iter()
        .map(|a| {
            Path::new(a)
                .strip_prefix(&root)
                .map_or_else(|_| a.clone(), |p| p.to_string_lossy().into_owned())
        })
        .collect::<Vec<_>>()
        .join(" ")
}
