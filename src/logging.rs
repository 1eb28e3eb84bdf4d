//! The `log` feature: every [`Event`] also goes to the `log` facade, so a
//! program that already has a logger (`env_logger`, `tracing`'s bridge..)
//! sees the server's life without writing a hook.
//!
//! The library still prints nothing: without a logger installed, the
//! facade drops every record after one atomic load. The levels:
//!
//! | event | level | target |
//! |---|---|---|
//! | a request answered (HTTP) | `info` | `graceful_server::access` |
//! | shutdown started, accepting stopped, idle grace over, finished | `info` | `graceful_server` |
//! | forced; an `accept` out of resources | `warn` | `graceful_server` |
//! | a connection ended by an error; an `accept` of one connection failed | `debug` | `graceful_server` |
//! | a connection ended otherwise; a goodbye turn | `trace` | `graceful_server` |

use crate::event::Event;

const TARGET: &str = "graceful_server";
#[cfg(feature = "http")]
const ACCESS: &str = "graceful_server::access";

/// Sends `event` to the `log` facade at its level (see the module docs).
pub(crate) fn log(event: &Event<'_>) {
    match event {
        #[cfg(feature = "http")]
        Event::Request {
            id,
            peer,
            method,
            target,
            version,
            status,
            body_bytes,
            duration,
            kept_alive,
        } => {
            if log::log_enabled!(target: ACCESS, log::Level::Info) {
                let line = match (method, target, version) {
                    (Some(m), Some(t), Some(v)) => format!("{m} {t} {v}"),
                    (Some(m), ..) => format!("{m} -"),
                    _ => "-".into(),
                };
                let kept = if *kept_alive { "kept" } else { "closed" };
                log::info!(
                    target: ACCESS,
                    "{peer} {line:?} {status} {body_bytes} {duration:?} connection {id} {kept}"
                );
            }
        }
        Event::ConnectionEnded {
            id,
            peer,
            outcome,
            open_for,
            error: Some(error),
        } => log::debug!(
            target: TARGET,
            "connection {id} from {peer}: {outcome:?} after {open_for:?}: {error}"
        ),
        Event::ConnectionEnded {
            id,
            peer,
            outcome,
            open_for,
            error: None,
        } => log::trace!(
            target: TARGET,
            "connection {id} from {peer}: {outcome:?} after {open_for:?}"
        ),
        Event::ShutdownStarted {
            trigger,
            open,
            drain_timeout,
            ..
        } => log::info!(
            target: TARGET,
            "shutdown started ({trigger:?}): {open} connection(s) open, drain timeout {drain_timeout:?}"
        ),
        Event::AcceptingStopped { swept } => log::info!(
            target: TARGET,
            "accepting stopped: {swept} connection(s) taken from the backlogs"
        ),
        Event::Goodbye { id, peer } => {
            log::trace!(target: TARGET, "connection {id} from {peer}: goodbye turn")
        }
        Event::IdleGraceOver { closed } => log::info!(
            target: TARGET,
            "idle grace over: {closed} idle connection(s) closed"
        ),
        Event::Forced { reason } => log::warn!(target: TARGET, "shutdown forced: {reason:?}"),
        Event::Finished { report } => log::info!(target: TARGET, "finished: {report}"),
        Event::AcceptFailed {
            error,
            backoff: Some(backoff),
        } => log::warn!(
            target: TARGET,
            "accept failed: {error}; pausing for {backoff:?}"
        ),
        Event::AcceptFailed {
            error,
            backoff: None,
        } => log::debug!(target: TARGET, "accept failed for one connection: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::listener::Addr;
    use crate::outcome::Outcome;

    /// Every record logged, as `LEVEL target: message`.
    struct Captured(Mutex<Vec<String>>);

    impl log::Log for Captured {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }

        fn log(&self, record: &log::Record<'_>) {
            let line = format!("{} {}: {}", record.level(), record.target(), record.args());
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(line);
        }

        fn flush(&self) {}
    }

    static CAPTURED: Captured = Captured(Mutex::new(Vec::new()));

    #[test]
    fn events_go_to_the_log_facade_at_their_levels() {
        // The only test in the crate that installs a logger.
        log::set_logger(&CAPTURED).expect("no other logger");
        log::set_max_level(log::LevelFilter::Trace);
        let peer = Addr::Tcp("192.0.2.7:40000".parse().expect("an address"));
        let error = std::io::Error::new(std::io::ErrorKind::TimedOut, "too slow");
        log(&Event::ConnectionEnded {
            id: 3,
            peer: &peer,
            outcome: Outcome::TimedOut,
            open_for: Duration::from_secs(1),
            error: Some(&error),
        });
        log(&Event::AcceptingStopped { swept: 2 });
        #[cfg(feature = "http")]
        log(&Event::Request {
            id: 3,
            peer: &peer,
            method: Some("GET"),
            target: Some("/"),
            version: Some("HTTP/1.1"),
            status: 200,
            body_bytes: 13,
            duration: Duration::from_millis(2),
            kept_alive: true,
        });
        let lines = CAPTURED
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        // Other tests' servers may log meanwhile: look for ours.
        let has = |prefix: &str, suffix: &str| {
            lines
                .iter()
                .any(|line| line.starts_with(prefix) && line.ends_with(suffix))
        };
        assert!(
            has(
                "DEBUG graceful_server: connection 3 from 192.0.2.7:40000",
                ": too slow"
            ),
            "{lines:?}"
        );
        assert!(
            has("INFO graceful_server: accepting stopped: 2", "backlogs"),
            "{lines:?}"
        );
        #[cfg(feature = "http")]
        assert!(
            has(
                "INFO graceful_server::access: 192.0.2.7:40000 \"GET / HTTP/1.1\" 200 13 ",
                "connection 3 kept"
            ),
            "{lines:?}"
        );
    }
}
