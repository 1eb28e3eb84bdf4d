//! The settings a [`Builder`](crate::Builder) collects ([`Config`]): their
//! defaults, their bounds, and their validation. The builder writes them;
//! the server they build runs by them.

use std::time::Duration;

use crate::error::Error;
use crate::event::Hook;
use crate::sys::{self, Backend};
use crate::wake;

/// Default worker count: how many turns run at once. A connection waiting
/// for input holds no worker, so this bounds handlers running (or blocked
/// inside a turn) at the same moment, not clients; 32 leaves room for
/// handlers that block on slow work while costing only a few KiB of touched
/// stack each.
pub(crate) const DEFAULT_WORKERS: usize = 32;
/// Default queue capacity: a burst of twice the pool can wait in the queue;
/// beyond that, connections wait in the kernel backlog.
pub(crate) const DEFAULT_QUEUE: usize = 64;
/// Default drain timeout: with the default force grace it leaves room inside
/// Kubernetes' default 30 s termination grace period.
pub(crate) const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
/// Default force grace.
pub(crate) const DEFAULT_FORCE_GRACE: Duration = Duration::from_secs(1);
/// Default idle timeout: longer than any browser or client pool keeps an
/// idle connection (Node's `keepAliveTimeout` is 5 s, nginx's 75 s), short
/// enough that abandoned connections do not pile up.
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default read and write timeouts: how long one read or write inside a
/// turn may wait for the client. nginx bounds each read of a request
/// (`client_header_timeout`, `client_body_timeout`) and each write of a
/// response (`send_timeout`) by 60 s; a worker blocked for a minute on a
/// silent client is the most a handler that reads or writes past what has
/// arrived should risk. They bound each call, not a turn: a protocol
/// bounds whole requests with deadlines
/// ([`Connection::set_deadline`](crate::Connection::set_deadline); the HTTP
/// layer's header timeout and minimum rates).
pub(crate) const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Default idle grace; see [`Builder::idle_grace`](crate::Builder::idle_grace).
pub(crate) const DEFAULT_IDLE_GRACE: Duration = Duration::from_millis(500);
/// See [`Builder::max_pushed_output`](crate::Builder::max_pushed_output).
const DEFAULT_MAX_PUSHED_OUTPUT: usize = 1024 * 1024;
/// Default listen backlog. std listens with 128, which a burst of clients
/// overflows (the kernel then drops SYNs, costing clients a 1 s retransmit).
pub(crate) const DEFAULT_BACKLOG: u32 = 1024;
/// Descriptors kept free for everything else when the connection maximum is
/// derived from `RLIMIT_NOFILE`: the listener, wake-up sockets, files the
/// handlers open.
const RESERVED_DESCRIPTORS: u64 = 64;
/// The connection maximum when the descriptor limit is unknown or infinite.
const FALLBACK_MAX_CONNECTIONS: usize = 65_536;

/// Default TLS handshake timeout. A handshake is two round trips and some
/// arithmetic: a client that has not finished it in 10 s is broken or
/// hostile (Go bounds it by the read timeout, Caddy by 10 s).
#[cfg(feature = "tls")]
pub(crate) const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Upper bounds that catch unit mistakes and values no server can honour.
const MAX_WORKERS: usize = 65_536;
/// The longest TLS handshake timeout: a day.
#[cfg(feature = "tls")]
const MAX_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Which socket-activation socket to serve on, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Inherit {
    /// Bind the builder's address.
    No,
    /// Every inherited socket; bind when there is none.
    All,
    /// The inherited socket with this `LISTEN_FDNAMES` name; bind when there
    /// is none.
    Named(String),
}

#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) workers: usize,
    pub(crate) queue_capacity: usize,
    /// `None`: derived from the descriptor limit in `build`.
    pub(crate) max_connections: Option<usize>,
    pub(crate) backlog: u32,
    pub(crate) drain_timeout: Option<Duration>,
    pub(crate) drain_delay: Duration,
    pub(crate) idle_grace: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) force_grace: Duration,
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
    pub(crate) wait_timeout: Option<Duration>,
    pub(crate) max_pushed_output: usize,
    /// `None`: every goodbye at once.
    pub(crate) goodbye_pace: Option<(usize, Duration)>,
    /// Permissions of the Unix socket files the builder binds.
    #[cfg(unix)]
    pub(crate) unix_mode: Option<u32>,
    pub(crate) backend: Backend,
    pub(crate) inherit: Inherit,
    pub(crate) notify: bool,
    pub(crate) hook: Option<Hook>,
    /// The TLS config of every listener without one of its own.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    #[cfg(feature = "tls")]
    pub(crate) tls_handshake_timeout: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            workers: DEFAULT_WORKERS,
            queue_capacity: DEFAULT_QUEUE,
            max_connections: None,
            backlog: DEFAULT_BACKLOG,
            drain_timeout: Some(DEFAULT_DRAIN_TIMEOUT),
            drain_delay: Duration::ZERO,
            idle_grace: DEFAULT_IDLE_GRACE,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            force_grace: DEFAULT_FORCE_GRACE,
            read_timeout: Some(DEFAULT_IO_TIMEOUT),
            write_timeout: Some(DEFAULT_IO_TIMEOUT),
            wait_timeout: None,
            max_pushed_output: DEFAULT_MAX_PUSHED_OUTPUT,
            goodbye_pace: None,
            #[cfg(unix)]
            unix_mode: None,
            backend: Backend::native(),
            inherit: Inherit::No,
            notify: false,
            hook: None,
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "tls")]
            tls_handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
        }
    }
}

/// The server's own descriptors, however many workers: the acceptor's
/// wake-up (an `eventfd` on Linux, a socket pair elsewhere) and readiness
/// wait, the listener, and the workers' shared readiness wait with its job
/// count (an epoll set and an `eventfd`) or, over `poll(2)`, its leader's
/// wake-up and the cold tier's (`readiness/poll.rs`).
fn own_descriptors() -> u64 {
    3 * wake::DESCRIPTORS + 3
}

/// The connection maximum derived from the descriptor limit: one descriptor
/// per connection, after the server's own and a reserve for the handlers.
pub(crate) fn default_max_connections() -> usize {
    let own = own_descriptors();
    match sys::descriptor_limit() {
        Some(limit) => {
            let usable = limit.saturating_sub(own + RESERVED_DESCRIPTORS).max(1);
            usize::try_from(usable).unwrap_or(FALLBACK_MAX_CONNECTIONS)
        }
        None => FALLBACK_MAX_CONNECTIONS,
    }
}

impl Config {
    /// Checks every setting, before anything is bound or started.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let invalid = |setting, reason: &str| {
            Err(Error::Config {
                setting,
                reason: reason.into(),
            })
        };
        if self.workers == 0 {
            return invalid("workers", "must be at least 1");
        }
        if self.workers > MAX_WORKERS {
            return invalid("workers", "must be at most 65536");
        }
        if self.queue_capacity == 0 {
            return invalid("queue_capacity", "must be at least 1");
        }
        if self.max_connections == Some(0) {
            return invalid("max_connections", "must be at least 1");
        }
        if self.backlog == 0 {
            return invalid("backlog", "must be at least 1");
        }
        // std rejects a zero timeout ("use None to block forever").
        if self.read_timeout == Some(Duration::ZERO) {
            return invalid("read_timeout", "must be above zero, or None");
        }
        if self.write_timeout == Some(Duration::ZERO) {
            return invalid("write_timeout", "must be above zero, or None");
        }
        if self.idle_timeout == Some(Duration::ZERO) {
            return invalid("idle_timeout", "must be above zero, or None");
        }
        if self.wait_timeout == Some(Duration::ZERO) {
            return invalid("wait_timeout", "must be above zero, or None");
        }
        if self.max_pushed_output == 0 {
            return invalid("max_pushed_output", "must be at least 1");
        }
        if self.goodbye_pace.is_some_and(|(batch, _)| batch == 0) {
            return invalid("goodbye_pace", "the batch must be at least 1");
        }
        #[cfg(feature = "tls")]
        if self.tls_handshake_timeout.is_zero()
            || self.tls_handshake_timeout > MAX_HANDSHAKE_TIMEOUT
        {
            return invalid(
                "tls_handshake_timeout",
                "must be above zero and at most a day",
            );
        }
        Ok(())
    }
}
