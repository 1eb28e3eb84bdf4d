//! `graceful-server`: a TCP echo server that shuts down gracefully.
//!
//! Arguments -> builder -> serve -> exit code. Everything interesting is in
//! the library; this file is Node's `server.js` echo server with a graceful
//! exit, made real.

use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use graceful_server::{Builder, Connection, Error, Next, Report};

mod cli;

const PROGRAM: &str = "graceful-server";

const USAGE: &str =
    "usage: graceful-server [--addr ADDR]... [--unix PATH]... [--workers N] [--drain-timeout SECS|none] \
     [--drain-delay SECS] [--tls-cert FILE --tls-key FILE] [--verbose] [--help] [--version]";

fn help() -> String {
    format!(
        "\
graceful-server: a TCP echo server that shuts down gracefully

Every byte a client sends comes back. On SIGINT (ctrl-c), SIGTERM or SIGHUP
the server stops accepting, keeps serving the connections it has until their
clients hang up, and exits. A second signal, or the drain timeout, closes the
remaining connections and exits at once.

options:
  --addr ADDR             address to listen on [default: 127.0.0.1:7878]
                          (port 0 picks a free port; 0.0.0.0 or [::] to
                          listen on every interface); repeat it to listen
                          on several (e.g. 127.0.0.1 and [::1]), all
                          stopped together
  --unix PATH             listen on a Unix domain socket (unix only);
                          repeatable, and it mixes with --addr. Given any
                          --addr or --unix, the server listens on exactly
                          those (the default address is then not used).
                          A stale socket file is replaced, a live one
                          never; ours is removed at exit
  --workers N             turns served at once (a connection waiting for
                          input holds none) [default: {workers}]
  --drain-timeout SECS    how long to wait for connections at shutdown,
                          fractions allowed, or 'none' to wait for ever
                          [default: {drain}]
  --drain-delay SECS      after the signal, keep accepting and serving for
                          this long before draining (for load balancers
                          that stop sending clients only after the signal)
                          [default: 0]
  --tls-cert FILE         speak TLS on every listener with this certificate
                          chain (PEM, the server's certificate first);
                          needs --tls-key. Shutdown ends each TLS
                          connection with close_notify. Needs the binary
                          built with --features tls
  --tls-key FILE          the certificate's private key (PEM: PKCS#8,
                          PKCS#1 or SEC1)
  --verbose               a line on stderr for every connection that ends
                          (id, peer, outcome, duration, error) and every
                          failed accept
  --help                  print this help
  --version               print the version

The first lines on stdout are one per listener, in the order given:
'listening on IP:PORT' for an --addr, 'listening on unix:PATH' for a --unix. Progress goes to stderr.

Started by systemd socket activation (or examples/supervisor.rs), the server
serves on the inherited socket (LISTEN_FDS) instead of binding --addr, and
reports READY=1 / STOPPING=1 to NOTIFY_SOCKET when set.

exit status:
  0  every connection ended by itself
  1  the server could not start or failed (e.g. address in use)
  2  bad command line (also a TLS certificate or key that cannot be used)
  3  shutdown was forced (drain timeout or second signal)",
        workers = Builder::DEFAULT_WORKERS,
        drain = Builder::DEFAULT_DRAIN_TIMEOUT.as_secs_f64(),
    )
}

/// The binary's own default; every other default is the library's.
const DEFAULT_ADDR: &str = "127.0.0.1:7878";

#[derive(Debug, PartialEq)]
struct Options {
    /// In the order given; the default address unless `--addr` or
    /// `--unix` is given.
    listen: Vec<cli::Listen>,
    workers: usize,
    drain_timeout: Option<Duration>,
    drain_delay: Duration,
    tls_cert: Option<std::path::PathBuf>,
    tls_key: Option<std::path::PathBuf>,
    verbose: bool,
}

#[derive(Debug, PartialEq)]
enum Command {
    Serve(Options),
    Help,
    Version,
}

fn main() -> ExitCode {
    match parse(std::env::args().skip(1)) {
        Ok(Command::Serve(options)) => {
            // Loaded before anything starts: a bad pair is a bad command line.
            let tls = cli::tls_config(options.tls_cert.as_deref(), options.tls_key.as_deref());
            match tls {
                Ok(tls) => cli::exit_status(PROGRAM, run(&options, tls.as_ref())),
                Err(message) => cli::usage_error(PROGRAM, &message, USAGE),
            }
        }
        Ok(Command::Help) => {
            println!("{}", help());
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            println!("{PROGRAM} {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Err(message) => cli::usage_error(PROGRAM, &message, USAGE),
    }
}

fn run(options: &Options, tls: Option<&cli::TlsConfig>) -> Result<Report, Error> {
    // Every connection costs a descriptor: use all the system allows, as
    // Go's servers do. Failing to raise it only leaves the soft limit.
    let _ = graceful_server::raise_descriptor_limit();
    let fallback = DEFAULT_ADDR
        .parse()
        .expect("the default address is a valid socket address");
    let verbose = options.verbose;
    let server = cli::with_tls(cli::builder(&options.listen, fallback), tls)
        // Progress from the shutdown's events; with --verbose, a line per
        // connection too.
        .on_event(move |event| {
            cli::progress(event);
            if verbose {
                cli::log_event(event);
            }
        })
        .workers(options.workers)
        .drain_timeout(options.drain_timeout)
        .drain_delay(options.drain_delay)
        .inherit_listener(true)
        .systemd_notify(true)
        .build()?;
    let handle = server.shutdown_handle();
    // Before the `listening on` line: a signal sent right after it must find
    // the handler in place.
    handle.install_ctrl_c()?;
    let running = server.spawn(echo)?;
    cli::listen_and_join(running)
}

/// The echo handler, one turn: the bytes that arrived go back. The client
/// may send more at any time, so between turns the connection waits
/// mid-conversation: shutdown waits for the client to hang up.
fn echo(conn: &mut Connection) -> io::Result<Next> {
    let mut buf = [0; 16 * 1024];
    let n = conn.read(&mut buf)?;
    if n == 0 {
        return Ok(Next::Close); // the client hung up
    }
    conn.write_all(&buf[..n])?;
    Ok(Next::Wait)
}

fn parse(args: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut options = Options {
        listen: Vec::new(),
        workers: Builder::DEFAULT_WORKERS,
        drain_timeout: Some(Builder::DEFAULT_DRAIN_TIMEOUT),
        drain_delay: Duration::ZERO,
        tls_cert: None,
        tls_key: None,
        verbose: false,
    };
    let mut flags = cli::Flags::new(args);
    while let Some(flag) = flags.next_flag() {
        match flag.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--version" | "-V" => return Ok(Command::Version),
            "--addr" => options
                .listen
                .push(cli::Listen::Tcp(cli::addr(&flag, &flags.value(&flag)?)?)),
            "--unix" => options
                .listen
                .push(cli::unix_path(&flag, &flags.value(&flag)?)?),
            "--workers" => options.workers = cli::workers(&flag, &flags.value(&flag)?)?,
            "--drain-timeout" => {
                options.drain_timeout = cli::seconds_or_none(&flag, &flags.value(&flag)?)?;
            }
            "--drain-delay" => options.drain_delay = cli::seconds(&flag, &flags.value(&flag)?)?,
            "--tls-cert" => options.tls_cert = Some(cli::path(&flag, &flags.value(&flag)?)?),
            "--tls-key" => options.tls_key = Some(cli::path(&flag, &flags.value(&flag)?)?),
            "--verbose" | "-v" => options.verbose = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if options.listen.is_empty() {
        options.listen.push(cli::Listen::Tcp(
            DEFAULT_ADDR
                .parse()
                .expect("the default address is a valid socket address"),
        ));
    }
    Ok(Command::Serve(options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Command, String> {
        parse(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults() {
        let Ok(Command::Serve(options)) = args(&[]) else {
            panic!("no arguments must serve");
        };
        let default = cli::Listen::Tcp("127.0.0.1:7878".parse().expect("valid"));
        assert_eq!(options.listen, [default]);
        assert_eq!(options.workers, Builder::DEFAULT_WORKERS);
        assert_eq!(options.drain_timeout, Some(Builder::DEFAULT_DRAIN_TIMEOUT));
    }

    #[test]
    fn values_in_both_forms() {
        let parsed = args(&[
            "--addr=127.0.0.1:0",
            "--workers",
            "4",
            "--drain-timeout",
            "0.5",
        ]);
        assert_eq!(
            parsed,
            Ok(Command::Serve(Options {
                listen: vec![cli::Listen::Tcp("127.0.0.1:0".parse().expect("valid"))],
                workers: 4,
                drain_timeout: Some(Duration::from_millis(500)),
                drain_delay: Duration::ZERO,
                tls_cert: None,
                tls_key: None,
                verbose: false,
            }))
        );
        let Ok(Command::Serve(options)) = args(&["--addr", "127.0.0.1:1", "--addr=[::1]:2"]) else {
            panic!("--addr twice must parse");
        };
        let both: Vec<cli::Listen> = ["127.0.0.1:1", "[::1]:2"]
            .iter()
            .map(|a| cli::Listen::Tcp(a.parse().expect("valid")))
            .collect();
        assert_eq!(
            options.listen, both,
            "repeated, in order, the default replaced"
        );
        #[cfg(unix)]
        {
            let parsed = args(&["--unix", "/tmp/a.sock", "--addr", "127.0.0.1:1"]);
            let Ok(Command::Serve(options)) = parsed else {
                panic!("--unix must parse");
            };
            assert_eq!(
                options.listen,
                [
                    cli::Listen::Unix("/tmp/a.sock".into()),
                    cli::Listen::Tcp("127.0.0.1:1".parse().expect("valid")),
                ],
                "in the order given"
            );
        }
        let Ok(Command::Serve(options)) = args(&["--drain-timeout=none"]) else {
            panic!("'none' must parse");
        };
        assert_eq!(options.drain_timeout, None);
    }

    #[test]
    fn tls_files_go_together() {
        let Ok(Command::Serve(options)) = args(&["--tls-cert", "c.pem", "--tls-key=k.pem"]) else {
            panic!("--tls-cert and --tls-key must parse");
        };
        assert_eq!(options.tls_cert.as_deref(), Some("c.pem".as_ref()));
        assert_eq!(options.tls_key.as_deref(), Some("k.pem".as_ref()));
        let alone = cli::tls_config(Some("c.pem".as_ref()), None).map(|c| c.is_some());
        assert!(
            alone.is_err_and(|e| e.contains("--tls-key")),
            "a certificate alone"
        );
        let alone = cli::tls_config(None, Some("k.pem".as_ref())).map(|c| c.is_some());
        assert!(
            alone.is_err_and(|e| e.contains("--tls-cert")),
            "a key alone"
        );
        assert!(matches!(cli::tls_config(None, None), Ok(None)));
        // A missing file, with the feature; without it, any pair says so.
        let missing = cli::tls_config(
            Some("/nonexistent/c.pem".as_ref()),
            Some("/nonexistent/k.pem".as_ref()),
        )
        .map(|c| c.is_some());
        #[cfg(feature = "tls")]
        assert!(
            missing.is_err_and(|e| e.contains("/nonexistent/c.pem")),
            "a missing file is named"
        );
        #[cfg(not(feature = "tls"))]
        assert!(
            missing.is_err_and(|e| e.contains("--features tls")),
            "built without TLS, the flag says how to get it"
        );
    }

    #[test]
    fn bad_values_are_errors() {
        for bad in [
            &["--workers", "0"][..],
            &["--workers", "lots"],
            &["--workers", "-3"],
            &["--drain-timeout", "-1"],
            &["--drain-timeout", "NaN"],
            &["--drain-timeout", "inf"],
            &["--drain-delay", "none"],
            &["--drain-delay", "-2"],
            &["--addr", "localhost"],
            &["--addr", "300.1.1.1:80"],
            &["--addr"],
            &["--tls-cert"],
            &["--tls-key="],
            &["--bogus"],
        ] {
            assert!(args(bad).is_err(), "{bad:?} must be rejected");
        }
    }
}
