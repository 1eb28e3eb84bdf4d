//! The echo binary's command-line plumbing (a module of `src/main.rs`, not
//! of the library, which never prints): flags and their values, the
//! `listening on` line, progress on stderr, and exit codes.

use std::error::Error as _;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use graceful_server::{Builder, Error, Event, ForceReason, Report, RunningServer, Server};

/// Exit status: could not start, or failed.
const EXIT_FAILED: u8 = 1;
/// Exit status: bad command line.
const EXIT_USAGE: u8 = 2;

/// The command line as flags with values, in both `--flag value` and
/// `--flag=value` forms.
pub struct Flags<I> {
    args: I,
    inline: Option<String>,
}

impl<I: Iterator<Item = String>> Flags<I> {
    pub fn new(args: I) -> Flags<I> {
        Flags { args, inline: None }
    }

    /// The next flag's name.
    pub fn next_flag(&mut self) -> Option<String> {
        let arg = self.args.next()?;
        match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                self.inline = Some(value.to_string());
                Some(flag.to_string())
            }
            _ => {
                self.inline = None;
                Some(arg)
            }
        }
    }

    /// The value of `flag`, the flag just returned by
    /// [`next_flag`](Self::next_flag).
    pub fn value(&mut self, flag: &str) -> Result<String, String> {
        self.inline
            .take()
            .or_else(|| self.args.next())
            .ok_or_else(|| format!("{flag} needs a value"))
    }
}

pub fn addr(flag: &str, text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("{flag}: {text:?} is not an IP:PORT address"))
}

/// One listener of the command line, in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    #[cfg(unix)]
    Unix(std::path::PathBuf),
}

/// `--unix PATH`: a Unix domain socket, on unix.
pub fn unix_path(flag: &str, text: &str) -> Result<Listen, String> {
    if text.is_empty() {
        return Err(format!("{flag}: the path is empty"));
    }
    #[cfg(unix)]
    return Ok(Listen::Unix(text.into()));
    #[cfg(not(unix))]
    return Err(format!("{flag}: Unix domain sockets are unix only"));
}

/// A builder listening on `listen`, in order; on `fallback` if it is
/// empty (the parser always gives one).
pub fn builder(listen: &[Listen], fallback: SocketAddr) -> Builder {
    let mut builder: Option<Builder> = None;
    for listener in listen {
        builder = Some(match (builder, listener) {
            (None, Listen::Tcp(addr)) => Server::builder(*addr),
            (Some(b), Listen::Tcp(addr)) => b.listen(*addr),
            #[cfg(unix)]
            (None, Listen::Unix(path)) => Server::builder_unix(path),
            #[cfg(unix)]
            (Some(b), Listen::Unix(path)) => b.listen_unix(path),
        });
    }
    builder.unwrap_or_else(|| Server::builder(fallback))
}

/// A server's TLS config, as `--tls-cert` and `--tls-key` give it.
#[cfg(feature = "tls")]
pub type TlsConfig = std::sync::Arc<graceful_server::rustls::ServerConfig>;
/// Without the `tls` feature there is none to give.
#[cfg(not(feature = "tls"))]
pub enum TlsConfig {}

/// `--tls-cert FILE --tls-key FILE`: the two PEM files, both or neither,
/// loaded and checked to be a pair, so that a bad one is a usage error
/// before anything starts.
pub fn tls_config(cert: Option<&Path>, key: Option<&Path>) -> Result<Option<TlsConfig>, String> {
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(_), None) => Err("--tls-cert needs --tls-key (the certificate's private key)".into()),
        (None, Some(_)) => Err("--tls-key needs --tls-cert (the certificate chain)".into()),
        (Some(cert), Some(key)) => load_tls(cert, key).map(Some),
    }
}

#[cfg(feature = "tls")]
fn load_tls(cert: &Path, key: &Path) -> Result<TlsConfig, String> {
    graceful_server::tls_config_from_pem(cert, key).map_err(|e| e.to_string())
}

#[cfg(not(feature = "tls"))]
fn load_tls(_cert: &Path, _key: &Path) -> Result<TlsConfig, String> {
    Err("--tls-cert: this binary was built without TLS; build it with `--features tls`".into())
}

/// `builder` speaking TLS on every listener, if `tls` is given.
pub fn with_tls(builder: Builder, tls: Option<&TlsConfig>) -> Builder {
    match tls {
        #[cfg(feature = "tls")]
        Some(config) => builder.tls(std::sync::Arc::clone(config)),
        #[cfg(not(feature = "tls"))]
        Some(never) => match *never {},
        None => builder,
    }
}

/// A path flag's value.
pub fn path(flag: &str, text: &str) -> Result<PathBuf, String> {
    if text.is_empty() {
        return Err(format!("{flag}: the path is empty"));
    }
    Ok(text.into())
}

pub fn workers(flag: &str, text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=65_536).contains(&n) => Ok(n),
        _ => Err(format!("{flag}: {text:?} is not a number from 1 to 65536")),
    }
}

/// A number of seconds, fractions allowed.
pub fn seconds(flag: &str, text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| format!("{flag}: {text:?} is not a number of seconds (fractions allowed)"))
}

/// Seconds, or `none` for no limit.
pub fn seconds_or_none(flag: &str, text: &str) -> Result<Option<Duration>, String> {
    if text == "none" {
        return Ok(None);
    }
    seconds(flag, text)
        .map(Some)
        .map_err(|message| format!("{message} or 'none'"))
}

/// Prints the bad command line's message with a usage hint; exit status 2.
pub fn usage_error(program: &str, message: &str, usage: &str) -> ExitCode {
    eprintln!("{program}: {message}\n{usage}\ntry '{program} --help'");
    ExitCode::from(EXIT_USAGE)
}

/// The exit status for how serving ended: the report's (0 drained, 3
/// forced), or 1 failed (with the error on stderr).
pub fn exit_status(program: &str, result: Result<Report, Error>) -> ExitCode {
    match result {
        Ok(report) => report.exit_code(),
        Err(error) => {
            eprintln!("{program}: {}", chain(&error));
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// An error and its sources on one line: "cannot listen on X: address in use".
pub fn chain(error: &Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

/// What the server does once the signal came, for the progress line:
/// "accepting for 5s more, then waiting up to 20s".
pub fn drain_plan(delay: Duration, timeout: Option<Duration>) -> String {
    let delay = match delay {
        Duration::ZERO => String::new(),
        delay => format!("accepting for {}s more, then ", delay.as_secs_f64()),
    };
    let deadline = match timeout {
        Some(timeout) => format!("up to {}s", timeout.as_secs_f64()),
        None => "with no deadline".to_string(),
    };
    format!("{delay}waiting {deadline}")
}

/// The life of a served program after start: print a `listening on` line
/// per listener (flushed), then wait for the report. What happens on the
/// way is said by [`progress`], from the events.
pub fn listen_and_join(running: RunningServer) -> Result<Report, Error> {
    let mut stdout = io::stdout().lock();
    // A closed stdout must not stop the server; the line is for whoever
    // reads it.
    // One line per listener, in the order given, in one write.
    let lines: String = running
        .local_addrs()
        .iter()
        .map(|addr| format!("listening on {addr}\n"))
        .collect();
    let _ = stdout.write_all(lines.as_bytes());
    let _ = stdout.flush();
    drop(stdout);

    running.join()
}

/// The progress lines on stderr, from the shutdown's events alone: what
/// an embedding program can print the same way.
pub fn progress(event: &Event<'_>) {
    match event {
        Event::ShutdownStarted {
            open,
            drain_delay,
            drain_timeout,
            ..
        } => say(format!(
            "shutting down: {open} connection(s) open; {} for them to close \
             (press ctrl-c again to force)",
            drain_plan(*drain_delay, *drain_timeout)
        )),
        Event::Forced { reason } => say(format!(
            "forced ({}): closing every connection left",
            match reason {
                ForceReason::Deadline => "the drain timeout expired",
                ForceReason::Signal => "a second signal",
                _ => "asked by the program",
            }
        )),
        Event::Finished { report } => say(report.to_string()),
        _ => {}
    }
}

/// `--verbose`: one line on stderr per event.
pub fn log_event(event: &Event<'_>) {
    match event {
        Event::ConnectionEnded {
            id,
            peer,
            outcome,
            open_for,
            error,
        } => match error {
            Some(error) => say(format!(
                "connection {id} from {peer}: {outcome:?} after {open_for:.1?}: {error}"
            )),
            None => say(format!(
                "connection {id} from {peer}: {outcome:?} after {open_for:.1?}"
            )),
        },
        Event::AcceptFailed { error, backoff } => match backoff {
            Some(pause) => say(format!("accept failed: {error}; retrying in {pause:?}")),
            None => say(format!("accept failed: {error}")),
        },
        _ => {}
    }
}

/// Writes one line to stderr in a single `write`, so that it cannot be torn
/// by other processes sharing the stream (a supervisor and its servers).
pub fn say(mut line: String) {
    line.push('\n');
    let _ = io::stderr().lock().write_all(line.as_bytes());
}
