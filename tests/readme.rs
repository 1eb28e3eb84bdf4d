//! The README's shell commands, run as written, so that one that fails as
//! written fails CI (its Rust examples are doc tests: `src/lib.rs`,
//! `ReadmeDoctests`).
//!
//! The commands are taken from README.md itself, not copied: every
//! ```` ```sh ```` block follows an HTML comment, either
//! `<!-- tested: SESSION ... -->` or `<!-- not tested: why -->`, so that a
//! new block cannot be left out by accident. The blocks of one session
//! (e.g. a server in one terminal, `curl` in another) run in order, in a
//! fresh directory under `target/`, as a user would run them from a clone:
//!
//! - `cargo run ...` starts a server, as in a terminal of its own (its own
//!   process group): the test waits for its `listening on` line, leaves it
//!   serving for the rest of the session, then stops it as ctrl-c does
//!   (SIGINT to its group) and expects exit status 0.
//! - `cargo test ...` is skipped: it is what runs this test.
//! - Every other command (`openssl`, `curl`) runs to its end and must exit
//!   with status 0; a client must print something.
//!
//! Every wait is bounded: a server's first line within the time a release
//! build may take on a loaded 2-core machine, a client within a minute, an
//! exit after SIGINT within 30 s. Only loopback addresses are used (the
//! README's). Ignored by a plain `cargo test`: it builds release binaries
//! (minutes on 2 cores) and binds the README's fixed ports (7878, 8080,
//! 8443); `.ci/run` runs it with `--ignored`, one run at a time on a
//! machine (a lock file in the temporary directory).
#![cfg(unix)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::io::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const README: &str = include_str!("../README.md");

/// A server's first line may wait for a release build.
const BUILD_BOUND: Duration = Duration::from_secs(20 * 60);
/// A client (curl), or a command such as openssl.
const CLIENT_BOUND: Duration = Duration::from_secs(60);
/// A server's exit after SIGINT.
const EXIT_BOUND: Duration = Duration::from_secs(30);
/// Another run of this test holding the README's ports.
const LOCK_BOUND: Duration = Duration::from_secs(30 * 60);

/// One ```` ```sh ```` block marked `tested`.
#[derive(Debug)]
struct Block {
    session: String,
    /// Its line in README.md, for messages.
    line: usize,
    /// Each command as words (continuations joined, comments dropped).
    commands: Vec<Vec<String>>,
}

/// The `tested` blocks, in README order; panics on a ```` ```sh ```` block
/// with no marker, or a marker with no block.
fn tested_blocks(readme: &str) -> Vec<Block> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut blocks = Vec::new();
    let mut marker: Option<(Option<String>, usize)> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        if let Some(rest) = line.strip_prefix("<!-- tested:") {
            let session = rest.split_whitespace().next().unwrap_or("");
            assert!(
                !session.is_empty() && session != "-->",
                "README.md:{}: `tested:` names no session",
                i + 1
            );
            marker = Some((Some(session.to_string()), i + 1));
        } else if line.starts_with("<!-- not tested:") {
            marker = Some((None, i + 1));
        } else if line.starts_with("```") {
            let lang = line.trim_start_matches('`').trim();
            let start = i + 1;
            let end = (start..lines.len())
                .find(|&j| lines[j].trim_start().starts_with("```"))
                .unwrap_or_else(|| panic!("README.md:{start}: a fence that never closes"));
            if lang == "sh" {
                match marker.take() {
                    Some((Some(session), _)) => blocks.push(Block {
                        session,
                        line: start,
                        commands: commands(&lines[start..end], start),
                    }),
                    Some((None, _)) => {}
                    None => panic!(
                        "README.md:{start}: a ```sh block with neither \
                         `<!-- tested: SESSION -->` nor `<!-- not tested: why -->` before it"
                    ),
                }
            } else if let Some((_, at)) = marker.take() {
                panic!("README.md:{at}: a marker followed by a ```{lang} block, not ```sh");
            }
            i = end;
        } else if !line.is_empty() {
            if let Some((_, at)) = marker.take() {
                panic!("README.md:{at}: a marker not followed by a ```sh block");
            }
        }
        i += 1;
    }
    assert!(
        marker.is_none(),
        "README.md: a marker at the end, with no block"
    );
    blocks
}

/// The commands of a block: lines ending in `\` joined with the next, `#`
/// comments dropped, split into words. Quotes, variables, pipes and
/// redirections are refused: the test runs commands without a shell, so
/// they would not mean what they mean to one (extend it if the README
/// needs them).
fn commands(lines: &[&str], first: usize) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let mut current = String::new();
    for (n, line) in lines.iter().enumerate() {
        let code = match line.find(" #") {
            Some(at) => &line[..at],
            None if line.trim_start().starts_with('#') => "",
            None => line,
        };
        let (code, continued) = match code.trim_end().strip_suffix('\\') {
            Some(code) => (code, true),
            None => (code, false),
        };
        if let Some(bad) = code.chars().find(|c| "'\"$|&;<>()`*?~".contains(*c)) {
            panic!(
                "README.md:{}: {bad:?} needs a shell; tests/readme.rs runs commands without one",
                first + n + 1
            );
        }
        current.push(' ');
        current.push_str(code);
        if !continued {
            let words: Vec<String> = current.split_whitespace().map(String::from).collect();
            if !words.is_empty() {
                commands.push(words);
            }
            current.clear();
        }
    }
    assert!(
        current.trim().is_empty(),
        "README.md:{first}: a block ends with a continuation"
    );
    commands
}

/// A child with its output collected by threads, so that it never blocks
/// on a full pipe.
struct Process {
    child: Child,
    shown: String,
    lines: mpsc::Receiver<String>,
    stdout: Vec<String>,
    stderr: Option<thread::JoinHandle<String>>,
}

impl Process {
    /// Starts `words` in `dir`, in a process group of its own (as a shell
    /// starts a job in a terminal).
    fn start(words: &[String], dir: &Path) -> Process {
        let mut child = Command::new(&words[0])
            .args(&words[1..])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", words.join(" ")));
        let stdout = child.stdout.take().expect("piped stdout");
        let (send, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().expect("piped stderr");
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Process {
            child,
            shown: words.join(" "),
            lines,
            stdout: Vec::new(),
            stderr: Some(stderr),
        }
    }

    /// The next stdout line within `bound`.
    fn line(&mut self, bound: Duration) -> Option<String> {
        let line = self.lines.recv_timeout(bound).ok()?;
        self.stdout.push(line.clone());
        Some(line)
    }

    /// Waits for the exit within `bound`; kills the group past it.
    fn wait(&mut self, bound: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for a child") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                self.kill();
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal_group(&self, signal: libc::c_int) {
        let group = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) with a process group we created; no memory is
        // involved.
        unsafe { libc::kill(-group, signal) };
    }

    fn kill(&mut self) {
        self.signal_group(libc::SIGKILL);
        let _ = self.child.wait();
    }

    /// Everything it printed, once it has exited.
    fn output(mut self) -> (String, String) {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.stdout.push(line);
        }
        let stderr = self
            .stderr
            .take()
            .map(|reader| reader.join().unwrap_or_default());
        (self.stdout.join("\n"), stderr.unwrap_or_default())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// How a status reads in a message.
fn shown(status: Option<ExitStatus>) -> String {
    match status {
        None => "no exit within its bound (killed)".to_string(),
        Some(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            _ => format!("{status}"),
        },
    }
}

/// Runs one session's blocks; panics with what went wrong.
fn run_session(name: &str, blocks: &[&Block], dir: &Path) -> Vec<String> {
    let mut log = Vec::new();
    let mut servers: Vec<Process> = Vec::new();
    for block in blocks {
        for words in &block.commands {
            let command = words.join(" ");
            let at = format!("README.md:{} ({name})", block.line);
            match (words[0].as_str(), words.get(1).map(String::as_str)) {
                ("cargo", Some("test")) => {
                    log.push(format!(
                        "{at}: skipped `{command}`: it is what runs this test"
                    ));
                }
                ("cargo", Some("run")) => {
                    let mut server = Process::start(words, dir);
                    let first = server.line(BUILD_BOUND);
                    match first {
                        Some(line) if line.starts_with("listening on ") => {
                            log.push(format!("{at}: `{command}` said {line:?}"));
                            servers.push(server);
                        }
                        other => {
                            let status = server.wait(Duration::from_secs(5));
                            let (out, err) = server.output();
                            panic!(
                                "{at}: `{command}` did not say `listening on ...` \
                                 (first line {other:?}; {}):\nstdout:\n{out}\nstderr:\n{err}",
                                shown(status)
                            );
                        }
                    }
                }
                _ => {
                    let mut client = Process::start(words, dir);
                    let status = client.wait(CLIENT_BOUND);
                    let (out, err) = client.output();
                    assert!(
                        status.is_some_and(|s| s.success()),
                        "{at}: `{command}` failed as written ({}):\nstdout:\n{out}\nstderr:\n{err}",
                        shown(status)
                    );
                    if words[0] == "curl" {
                        assert!(!out.is_empty(), "{at}: `{command}` printed nothing");
                    }
                    let first = out.lines().next().unwrap_or("");
                    log.push(format!("{at}: `{command}` succeeded; {first:?}"));
                }
            }
        }
    }
    // Ctrl-c in each server's terminal, the last started first.
    while let Some(mut server) = servers.pop() {
        server.signal_group(libc::SIGINT);
        let status = server.wait(EXIT_BOUND);
        let command = server.shown.clone();
        let (_, err) = server.output();
        assert!(
            status.is_some_and(|s| s.code() == Some(0)),
            "{name}: `{command}` after SIGINT: {}, not exit status 0:\n{err}",
            shown(status)
        );
        let report = err.lines().last().unwrap_or("").to_string();
        log.push(format!(
            "{name}: `{command}` exited 0 after SIGINT: {report}"
        ));
    }
    log
}

/// One run of this test at a time on a machine: the README's ports are
/// fixed. flock(2) on a file in the temporary directory, released when
/// the file is closed (at the end, or if the test dies).
fn lock_the_ports() -> File {
    let path = std::env::temp_dir().join("graceful-server-readme-ports.lock");
    let file = File::create(&path).expect("create the lock file");
    let deadline = Instant::now() + LOCK_BOUND;
    loop {
        // SAFETY: flock(2) on a descriptor that `file` owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return file;
        }
        assert!(
            Instant::now() < deadline,
            "another run held {} for {LOCK_BOUND:?}",
            path.display()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// The session's working directory under `target/` (where cargo still
/// finds the workspace), removed at the end.
struct WorkDir(PathBuf);

impl WorkDir {
    fn new(session: &str) -> WorkDir {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join(format!("readme-{}-{session}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the session's directory");
        WorkDir(dir)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn markers_cover_every_sh_block_and_the_commands_parse() {
    let blocks = tested_blocks(README);
    let sessions: Vec<&str> = blocks.iter().map(|b| b.session.as_str()).collect();
    for needed in ["setup", "https"] {
        assert!(
            sessions.contains(&needed),
            "no `{needed}` session in README.md"
        );
    }
    let setup = &blocks[0];
    assert_eq!(setup.session, "setup");
    assert_eq!(setup.commands[0], ["cargo", "run", "--release"]);
    let https: Vec<&Vec<String>> = blocks
        .iter()
        .filter(|b| b.session == "https")
        .flat_map(|b| &b.commands)
        .collect();
    assert_eq!(https.len(), 3, "{https:?}");
    assert_eq!(https[0][..2], ["openssl", "req"]);
    assert!(https[0].contains(&"subjectAltName=DNS:localhost,IP:127.0.0.1".to_string()));
    assert_eq!(
        *https[2],
        ["curl", "--cacert", "cert.pem", "https://localhost:8443/"]
    );
}

#[test]
#[ignore = "builds release binaries and binds the README's fixed ports: .ci/run runs it"]
fn the_readmes_shell_commands_work_as_written() {
    let blocks = tested_blocks(README);
    let mut sessions: Vec<&str> = Vec::new();
    for block in &blocks {
        if !sessions.contains(&block.session.as_str()) {
            sessions.push(&block.session);
        }
    }
    let _lock = lock_the_ports();
    for session in sessions {
        let of_session: Vec<&Block> = blocks.iter().filter(|b| b.session == session).collect();
        let dir = WorkDir::new(session);
        for line in run_session(session, &of_session, &dir.0) {
            eprintln!("{line}");
        }
    }
}
