//! The [`Builder`]: where a server starts ([`Server::builder`] and its
//! siblings), a setter for every setting (the settings themselves, their
//! defaults and their checks are `config.rs`'s), and the binding (or
//! inheriting) of the listeners that makes a [`Server`].

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
#[cfg(unix)]
use std::os::unix::net::UnixListener;
#[cfg(unix)]
use std::path::{Path, PathBuf};
use std::time::Duration;

#[cfg(feature = "tls")]
use crate::config::DEFAULT_TLS_HANDSHAKE_TIMEOUT;
use crate::config::{
    Config, Inherit, DEFAULT_BACKLOG, DEFAULT_DRAIN_TIMEOUT, DEFAULT_FORCE_GRACE,
    DEFAULT_IDLE_GRACE, DEFAULT_IDLE_TIMEOUT, DEFAULT_IO_TIMEOUT, DEFAULT_QUEUE, DEFAULT_WORKERS,
};
use crate::error::Error;
use crate::event::{Event, Hook};
use crate::listener::{Addr, Listener, Stream};
use crate::readiness::WorkerWait;
use crate::server::Server;
use crate::shutdown::ShutdownState;
use crate::sys::{self, Backend, Poller};
use crate::systemd::{self, Notifier};
use crate::tls::ListenerTls;
use crate::wake;

pub(crate) enum Source {
    Addr(io::Result<Vec<SocketAddr>>),
    Listener(TcpListener),
    #[cfg(unix)]
    Unix(PathBuf),
    #[cfg(unix)]
    UnixListener(UnixListener),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Addr(addrs) => addrs.fmt(f),
            Source::Listener(listener) => listener.fmt(f),
            #[cfg(unix)]
            Source::Unix(path) => write!(f, "unix:{}", path.display()),
            #[cfg(unix)]
            Source::UnixListener(listener) => listener.fmt(f),
        }
    }
}

/// Configures a [`Server`]. Settings are checked by [`Builder::build`].
///
/// ```
/// use std::time::Duration;
///
/// # fn main() -> Result<(), graceful_server::Error> {
/// let server = graceful_server::Server::builder("127.0.0.1:0")
///     .workers(8)
///     .drain_timeout(Some(Duration::from_secs(5)))
///     .read_timeout(Some(Duration::from_secs(30)))
///     .build()?;
/// # drop(server);
/// # Ok(())
/// # }
/// ```
pub struct Builder {
    /// Where to listen: the constructor's, then each added one, in order.
    sources: Vec<Source>,
    /// The TLS configs of the listeners added with their own
    /// ([`Builder::listen_tls`]), by index in `sources`.
    #[cfg(feature = "tls")]
    listener_tls: Vec<(usize, std::sync::Arc<rustls::ServerConfig>)>,
    config: Config,
}

// `Server`'s constructors live here, with the `Builder` they return, so that
// the builder knows the server it builds and the server never knows the
// builder.
impl Server {
    /// Starts configuring a server that will listen on `addr`.
    ///
    /// The address is resolved now and bound by [`Builder::build`], which
    /// reports any problem with it. Use port 0 to get a free port, and read
    /// it with [`Server::local_addr`].
    ///
    /// # Example
    ///
    /// ```
    /// use graceful_server::Server;
    ///
    /// # fn main() -> Result<(), graceful_server::Error> {
    /// // Anything `ToSocketAddrs`: "0.0.0.0:8080", ("::1", 8080), a `SocketAddr`..
    /// let server = Server::builder(("127.0.0.1", 0)).workers(4).build()?;
    /// assert_ne!(server.local_addr().port(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder(addr: impl ToSocketAddrs) -> Builder {
        Builder::new(Source::Addr(
            addr.to_socket_addrs().map(|addrs| addrs.collect()),
        ))
    }

    /// Starts configuring a server on a listener you bound yourself (for
    /// tests, or a socket inherited from a supervisor).
    ///
    /// The server puts it in nonblocking mode.
    ///
    /// # Example
    ///
    /// ```
    /// use std::net::TcpListener;
    ///
    /// use graceful_server::Server;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let addr = listener.local_addr()?;
    /// let server = Server::builder_from_listener(listener).build()?;
    /// assert_eq!(server.local_addr(), addr);
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder_from_listener(listener: TcpListener) -> Builder {
        Builder::new(Source::Listener(listener))
    }

    /// Starts configuring a server that will listen on a Unix domain socket
    /// at `path` (unix only); see [`Builder::listen_unix`] for what happens
    /// to the socket file. [`local_addr`](Server::local_addr) is for TCP
    /// listeners: read [`local_addrs`](Server::local_addrs) instead.
    #[cfg(unix)]
    pub fn builder_unix(path: impl AsRef<Path>) -> Builder {
        Builder::new(Source::Unix(path.as_ref().to_path_buf()))
    }
}

/// Raises this process's soft limit on open descriptors (`RLIMIT_NOFILE`)
/// to its hard limit, as Go's runtime does at start, and returns the soft
/// limit now (`None`: unlimited, or Windows, which has no such limit).
///
/// Every connection costs a descriptor, so the common soft limit of 1024
/// caps a server at about a thousand connections while the hard limit
/// usually allows far more. The library never calls this by itself: the
/// limit belongs to the whole process (and is inherited by the programs it
/// starts). The echo binary and the HTTP example call it first thing. Call
/// it before [`Builder::build`], whose default
/// [`max_connections`](Builder::max_connections) follows the limit.
///
/// # Errors
///
/// The system refused to read or change the limit.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let limit = graceful_server::raise_descriptor_limit()?;
/// eprintln!("descriptors: {limit:?}");
/// # Ok(())
/// # }
/// ```
pub fn raise_descriptor_limit() -> io::Result<Option<u64>> {
    sys::raise_descriptor_limit()
}

impl Builder {
    /// The default of [`workers`](Self::workers).
    pub const DEFAULT_WORKERS: usize = DEFAULT_WORKERS;
    /// The default of [`queue_capacity`](Self::queue_capacity).
    pub const DEFAULT_QUEUE_CAPACITY: usize = DEFAULT_QUEUE;
    /// The default of [`backlog`](Self::backlog).
    pub const DEFAULT_BACKLOG: u32 = DEFAULT_BACKLOG;
    /// The default of [`drain_timeout`](Self::drain_timeout).
    pub const DEFAULT_DRAIN_TIMEOUT: Duration = DEFAULT_DRAIN_TIMEOUT;
    /// The default of [`idle_timeout`](Self::idle_timeout).
    pub const DEFAULT_IDLE_TIMEOUT: Duration = DEFAULT_IDLE_TIMEOUT;
    /// The default of [`force_grace`](Self::force_grace).
    pub const DEFAULT_FORCE_GRACE: Duration = DEFAULT_FORCE_GRACE;
    /// The default of [`idle_grace`](Self::idle_grace): 500 ms.
    pub const DEFAULT_IDLE_GRACE: Duration = DEFAULT_IDLE_GRACE;
    /// The default of [`read_timeout`](Self::read_timeout): 60 s.
    pub const DEFAULT_READ_TIMEOUT: Duration = DEFAULT_IO_TIMEOUT;
    /// The default of [`write_timeout`](Self::write_timeout): 60 s.
    pub const DEFAULT_WRITE_TIMEOUT: Duration = DEFAULT_IO_TIMEOUT;
    /// The default of [`tls_handshake_timeout`](Self::tls_handshake_timeout):
    /// 10 s.
    #[cfg(feature = "tls")]
    pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = DEFAULT_TLS_HANDSHAKE_TIMEOUT;

    pub(crate) fn new(source: Source) -> Builder {
        Builder {
            sources: vec![source],
            #[cfg(feature = "tls")]
            listener_tls: Vec::new(),
            config: Config::default(),
        }
    }

    /// The number of worker threads, i.e. of turns served at once. By
    /// default, 32.
    ///
    /// A connection waiting for input holds no worker, so this is not a
    /// limit on clients (see [`max_connections`](Self::max_connections)):
    /// it bounds how many handlers run at the same moment. Size it for
    /// handlers that block on slow work. Must be 1 to 65536.
    pub fn workers(mut self, workers: usize) -> Builder {
        self.config.workers = workers;
        self
    }

    /// The most connections open at once. By default, the process's soft
    /// limit on open descriptors (`RLIMIT_NOFILE`) minus the server's own
    /// (two per worker) and 64 more for the handlers; 65536 where there is no
    /// such limit (Windows) or it is infinite.
    ///
    /// Each connection holds one descriptor. At the maximum the acceptor
    /// stops accepting, and new connections wait in the kernel backlog until
    /// one closes: they are never refused or reset by the server. Must be at
    /// least 1.
    pub fn max_connections(mut self, max: usize) -> Builder {
        self.config.max_connections = Some(max);
        self
    }

    /// The listen backlog: how many connections the kernel queues before
    /// they are accepted. By default, 1024.
    ///
    /// Applied with `listen(2)` to a socket the builder binds (std's own
    /// default is 128); the kernel caps it at `net.core.somaxconn` on Linux.
    /// A listener you pass in ([`Server::builder_from_listener`]) or inherit keeps
    /// its own backlog. On Windows it is not applied: Winsock does not change
    /// the backlog of a socket that already listens, so std's 128 stays.
    /// Must be at least 1.
    pub fn backlog(mut self, backlog: u32) -> Builder {
        self.config.backlog = backlog;
        self
    }

    /// How long a connection waiting idle ([`Next::Idle`](crate::Next::Idle))
    /// may wait for input before it is closed. By default, 60 seconds.
    ///
    /// It applies between turns, to connections at a safe boundary; such
    /// closes count as [`closed_idle`](crate::Report::closed_idle). The [read
    /// timeout](Self::read_timeout) applies inside a turn, and to connections
    /// waiting mid-conversation. `None` keeps idle connections for ever (until
    /// shutdown). Must not be zero.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Builder {
        self.config.idle_timeout = timeout;
        self
    }

    /// Uses `poll(2)` instead of epoll to watch waiting connections. By
    /// default, off on Linux (epoll); other systems always use `poll(2)`
    /// (`WSAPoll` on Windows).
    ///
    /// It is here to measure and test the portable backend on Linux.
    /// `poll(2)` scans its whole array on every call, so the workers poll
    /// only the connections parked in the last 100 ms or so, and a thread of
    /// its own the older ones. In the project's benchmark (8 busy keep-alive
    /// clients on 4 workers) it kept its throughput beside 1,000 and 10,000
    /// idle connections (0.97x and 1.01x, p99 4 and 5 ms); but one of many
    /// idle connections turning ready costs a scan of all of them, where
    /// epoll's cost does not grow with them.
    pub fn use_poll(mut self, use_poll: bool) -> Builder {
        self.config.backend = if use_poll {
            Backend::Poll
        } else {
            Backend::native()
        };
        self
    }

    /// How many accepted connections may wait for a worker. By default, 64.
    ///
    /// When the queue is full the acceptor stops accepting, and new
    /// connections wait in the kernel backlog (backpressure). Must be at
    /// least 1.
    pub fn queue_capacity(mut self, capacity: usize) -> Builder {
        self.config.queue_capacity = capacity;
        self
    }

    /// How long a shutdown may wait for connections to finish. By default,
    /// 20 seconds.
    ///
    /// Counted from the shutdown signal (from the end of the [drain
    /// delay](Self::drain_delay), if any). When it expires, every remaining
    /// connection is shut down in both directions, queued ones are closed
    /// unserved, and the report says `forced`. `None` waits for ever, as
    /// Node's `server.close()` does. With the default [force
    /// grace](Self::force_grace), the default fits in Kubernetes' 30 s
    /// termination grace period.
    pub fn drain_timeout(mut self, timeout: Option<Duration>) -> Builder {
        self.config.drain_timeout = timeout;
        self
    }

    /// How long to go on accepting and serving normally after the shutdown
    /// signal. By default, zero.
    ///
    /// During the delay [`ShutdownHandle::is_shutting_down`](crate::ShutdownHandle::is_shutting_down) and
    /// [`Connection::is_shutting_down`](crate::Connection::is_shutting_down)
    /// already say `true` (so a readiness
    /// check can fail and a load balancer stop sending new clients), but new
    /// connections are still accepted and served. After it, the server stops
    /// accepting and drains as usual. Behind a load balancer or in
    /// Kubernetes, where endpoints are removed only after SIGTERM, set it to
    /// the time the balancer takes to notice (a few seconds).
    ///
    /// The [drain timeout](Self::drain_timeout) counts from the end of the
    /// delay, so the termination grace period must cover delay + drain
    /// timeout + [force grace](Self::force_grace). A forced shutdown ends the
    /// delay at once.
    pub fn drain_delay(mut self, delay: Duration) -> Builder {
        self.config.drain_delay = delay;
        self
    }

    /// How long idle connections stay open after the shutdown signal. By
    /// default, 500 ms ([`DEFAULT_IDLE_GRACE`](Self::DEFAULT_IDLE_GRACE)).
    ///
    /// A client that sent a request just before the signal has it on the
    /// wire: closing its idle connection at once would meet the request
    /// (lost, and the client cannot tell whether it ran). The grace lets
    /// every request already sent arrive and be answered, with the closing
    /// marker. 500 ms is longer than a round trip across the world (about
    /// 300 ms) or over a mobile network, short enough that nobody waiting
    /// for the server to stop notices. Zero closes idle connections at
    /// once, as Node's `server.close()` does since v19.
    ///
    /// A request that arrives during the window is still served (the handler
    /// sees [`Connection::is_shutting_down`](crate::Connection::is_shutting_down)
    /// and should answer with its protocol's "closing" marker). After it,
    /// idle connections ([`Next::Idle`](crate::Next::Idle)) are closed, and
    /// so is any connection that turns idle later.
    pub fn idle_grace(mut self, grace: Duration) -> Builder {
        self.config.idle_grace = grace;
        self
    }

    /// The most bytes pushed to one connection through its
    /// [`Pusher`](crate::Pusher)s and not yet taken from its mailbox. By
    /// default, 1 MiB.
    ///
    /// A push that would go past it fails with
    /// [`PushError::Full`](crate::PushError::Full). The mailbox is emptied
    /// into the connection's output only once the output before it has
    /// gone, so a connection holds at most twice this much pushed output;
    /// a client that does not take it within the
    /// [write timeout](Self::write_timeout) is closed and counted as
    /// [`timed_out`](crate::Report::timed_out). Must not be zero.
    pub fn max_pushed_output(mut self, bytes: usize) -> Builder {
        self.config.max_pushed_output = bytes;
        self
    }

    /// Spreads the goodbyes of shutdown over time: `batch` connections
    /// every `interval`. By default, every connection gets its goodbye at
    /// once.
    ///
    /// Goodbyes go to connections that asked for one
    /// ([`Connection::set_goodbye`](crate::Connection::set_goodbye)) when
    /// the server stops accepting. Their clients usually reconnect at once,
    /// to the next process; thousands of them doing so in the same
    /// millisecond is a thundering herd, which pacing avoids (Phoenix's
    /// socket drainer does the same). The idle grace starts after the last
    /// batch; the [drain timeout](Self::drain_timeout) runs from the start.
    /// `batch` must not be zero.
    pub fn goodbye_pace(mut self, batch: usize, interval: Duration) -> Builder {
        self.config.goodbye_pace = Some((batch, interval));
        self
    }

    /// How long to wait, after forcing, for handlers to notice that their
    /// sockets are shut down. By default, 1 second.
    ///
    /// A handler blocked on something other than its socket (a lock, a
    /// channel, a long computation) cannot be interrupted. After this grace
    /// its thread is left behind, counted in
    /// [`Report::threads_left_behind`](crate::Report::threads_left_behind), and serving returns anyway.
    pub fn force_grace(mut self, grace: Duration) -> Builder {
        self.config.force_grace = grace;
        self
    }

    /// The read timeout set on every accepted stream, bounding each read
    /// inside a turn. By default, 60 s ([`DEFAULT_READ_TIMEOUT`](Self::DEFAULT_READ_TIMEOUT)).
    ///
    /// A handler that reads past what has arrived then fails with
    /// `WouldBlock` or `TimedOut` (counted as
    /// [`timed_out`](crate::Report::timed_out)) when the client stays silent this
    /// long, instead of holding its worker for ever; 60 s is nginx's bound
    /// on each read of a request. It bounds one read, not a turn: a client
    /// trickling a byte at a time keeps each read short. Bound whole
    /// requests with a [deadline](crate::Connection::set_deadline), as the
    /// HTTP layer does. It does not apply between turns: see
    /// [`wait_timeout`](Self::wait_timeout) and
    /// [`idle_timeout`](Self::idle_timeout). `None` waits for ever. Must not
    /// be zero.
    pub fn read_timeout(mut self, timeout: Option<Duration>) -> Builder {
        self.config.read_timeout = timeout;
        self
    }

    /// The write timeout set on every accepted stream, bounding each write
    /// inside a turn. By default, 60 s ([`DEFAULT_WRITE_TIMEOUT`](Self::DEFAULT_WRITE_TIMEOUT)),
    /// nginx's `send_timeout`.
    ///
    /// A client that stops reading then makes the handler's `write` fail
    /// (counted as [`timed_out`](crate::Report::timed_out)) instead of holding a
    /// worker for ever. `None` waits for ever. Must not be zero.
    pub fn write_timeout(mut self, timeout: Option<Duration>) -> Builder {
        self.config.write_timeout = timeout;
        self
    }

    /// How long a connection may wait mid-conversation
    /// ([`Next::Wait`](crate::Next::Wait)) between turns. By default, for
    /// ever (`None`).
    ///
    /// A waiting connection holds no worker, only its socket, so the default
    /// lets a client stay connected and silent as long as it likes (the echo
    /// server's `nc` clients), as a thread-per-connection server would. When
    /// it passes, the connection is closed and counted as
    /// [`timed_out`](crate::Report::timed_out). Must not be zero.
    pub fn wait_timeout(mut self, timeout: Option<Duration>) -> Builder {
        self.config.wait_timeout = timeout;
        self
    }

    /// Listens on `addr` too, besides the constructor's address and any
    /// added before. By default, a server has the one listener.
    ///
    /// All listeners share the pool, the registry, the report and the
    /// [`ShutdownHandle`](crate::ShutdownHandle); at shutdown every backlog is swept before any
    /// listener closes, so none is left accepting while another refuses.
    /// `localhost` to clients means `127.0.0.1` and `::1`: listen on both.
    /// Each address is bound by [`build`](Self::build), which fails if any
    /// cannot be.
    ///
    /// ```
    /// use std::net::TcpStream;
    ///
    /// use graceful_server::{Connection, Next, Server};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let running = Server::builder("127.0.0.1:0")
    ///     .listen("127.0.0.1:0")
    ///     .build()?
    ///     .spawn(|_conn: &mut Connection| Ok(Next::Close))?;
    /// for addr in running.local_addrs() {
    ///     let addr = addr.tcp().ok_or("a TCP listener")?;
    ///     drop(TcpStream::connect(addr)?);
    /// }
    /// running.shutdown_handle().shutdown();
    /// assert_eq!(running.join()?.accepted, 2); // one report for both
    /// # Ok(())
    /// # }
    /// ```
    pub fn listen(mut self, addr: impl ToSocketAddrs) -> Builder {
        self.sources.push(Source::Addr(
            addr.to_socket_addrs().map(|addrs| addrs.collect()),
        ));
        self
    }

    /// Listens on a Unix domain socket at `path` too (unix only).
    ///
    /// Everything said of TCP listeners holds: one pool and report, the
    /// backlog swept at shutdown, new connects refused once accepting
    /// stops. The socket file: a stale one (left by a crashed run: nothing
    /// listens on it) is replaced; a live one (another server listens) is
    /// never taken, and [`build`](Self::build) fails with
    /// [`Error::BindUnix`]; another kind of file is never removed. The file
    /// is removed when the server stops listening, unless it has been
    /// replaced meanwhile (by the next server). Its permissions follow the
    /// umask unless [`unix_permissions`](Self::unix_permissions) says.
    /// Handlers see the client's [`Addr::Unix`] (usually unnamed).
    ///
    /// ```
    /// # #[cfg(unix)]
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    ///
    /// use graceful_server::{Connection, Next, Server};
    ///
    /// let dir = std::env::temp_dir().join(format!("gs-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("echo.sock");
    /// let running = Server::builder_unix(&path)
    ///     .build()?
    ///     .spawn(|conn: &mut Connection| {
    ///         let mut buf = [0; 64];
    ///         let n = conn.read(&mut buf)?;
    ///         conn.write_all(&buf[..n])?;
    ///         Ok(Next::Close)
    ///     })?;
    /// let mut client = UnixStream::connect(&path)?;
    /// client.write_all(b"hi")?;
    /// let mut reply = [0; 2];
    /// client.read_exact(&mut reply)?;
    /// assert_eq!(&reply, b"hi");
    /// running.shutdown_handle().shutdown();
    /// running.join()?;
    /// assert!(!path.exists(), "the socket file is removed at the end");
    /// # std::fs::remove_dir(&dir)?;
    /// # Ok(())
    /// # }
    /// # #[cfg(not(unix))]
    /// # fn main() {}
    /// ```
    #[cfg(unix)]
    pub fn listen_unix(mut self, path: impl AsRef<Path>) -> Builder {
        self.sources.push(Source::Unix(path.as_ref().to_path_buf()));
        self
    }

    /// Listens on a Unix listener you bound yourself (or inherited) too
    /// (unix only). Its socket file is yours: the server does not remove
    /// it. The server puts it in nonblocking mode.
    #[cfg(unix)]
    pub fn listen_on_unix(mut self, listener: UnixListener) -> Builder {
        self.sources.push(Source::UnixListener(listener));
        self
    }

    /// The permissions of the Unix socket files the builder binds, e.g.
    /// `0o660` for a group that may connect. By default, what the process's
    /// umask gives. Unix only.
    #[cfg(unix)]
    pub fn unix_permissions(mut self, mode: u32) -> Builder {
        self.config.unix_mode = Some(mode);
        self
    }

    /// Listens on a listener you bound yourself too, as
    /// [`listen`](Self::listen) does for an address. The server puts it in
    /// nonblocking mode.
    pub fn listen_on(mut self, listener: TcpListener) -> Builder {
        self.sources.push(Source::Listener(listener));
        self
    }

    /// Speaks TLS on every listener that has no config of its own (see
    /// [`listen_tls`](Self::listen_tls)), inherited ones included. By
    /// default, none: plain TCP (feature `tls`).
    ///
    /// Every connection of such a listener is a `rustls::ServerConnection`
    /// under the same [`Connection`](crate::Connection): handlers read and
    /// write plaintext, and the [HTTP layer](crate::http) serves HTTPS
    /// unchanged. The handshake holds no worker: it advances as each flight
    /// arrives, the connection waiting between flights like any other, and
    /// it must be done within the
    /// [handshake timeout](Self::tls_handshake_timeout) (else the
    /// connection is closed, counted
    /// [`timed_out`](crate::Report::timed_out)); a handler's first turn
    /// comes after it. A failed handshake is counted
    /// [`failed`](crate::Report::failed), and the client gets rustls's
    /// alert if its socket takes it at once.
    ///
    /// Every close the server decides (after [`Next::Close`](crate::Next::Close),
    /// at the idle grace, at an idle, wait or read timeout, at the end of
    /// the drain) sends `close_notify`, then closes the TCP connection, so
    /// that a client can tell a complete response from a cut one. A client's
    /// `close_notify` is the end of its input: a read returns 0. A TCP end
    /// without it is an error of kind `UnexpectedEof`. A forced close sends
    /// `close_notify` when the socket takes it at once and the connection
    /// was between turns; a connection cut in the middle of a turn, or with
    /// output still queued, ends without it, so that its client sees a cut
    /// stream, which is the truth.
    ///
    /// Build the config with rustls (re-exported as
    /// [`graceful_server::rustls`](crate::rustls)), or from PEM files with
    /// [`tls_config_from_pem`](crate::tls_config_from_pem).
    ///
    /// ```
    /// use std::io::{self, Read, Write};
    /// use std::net::TcpStream;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// use graceful_server::rustls::{self, pki_types::PrivateKeyDer};
    /// use graceful_server::{Connection, Next, Server};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // A self-signed certificate for the example (made with rcgen).
    /// let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    /// let key = PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    /// let config = rustls::ServerConfig::builder_with_provider(Arc::new(
    ///     rustls::crypto::aws_lc_rs::default_provider(),
    /// ))
    /// .with_safe_default_protocol_versions()?
    /// .with_no_client_auth()
    /// .with_single_cert(vec![cert.cert.der().clone()], key)?;
    ///
    /// let running = Server::builder("127.0.0.1:0")
    ///     .tls(Arc::new(config))
    ///     .build()?
    ///     .spawn(|conn: &mut Connection| {
    ///         let mut buf = [0; 64];
    ///         let n = conn.read(&mut buf)?; // plaintext
    ///         conn.write_all(&buf[..n])?;
    ///         Ok(Next::Close) // close_notify, then the TCP close
    ///     })?;
    ///
    /// // A client that trusts that certificate.
    /// let mut roots = rustls::RootCertStore::empty();
    /// roots.add(cert.cert.der().clone())?;
    /// let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
    ///     rustls::crypto::aws_lc_rs::default_provider(),
    /// ))
    /// .with_safe_default_protocol_versions()?
    /// .with_root_certificates(roots)
    /// .with_no_client_auth();
    /// let name = "localhost".try_into()?;
    /// let tls = rustls::ClientConnection::new(Arc::new(client_config), name)?;
    /// let tcp = TcpStream::connect(running.local_addr())?;
    /// tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// tcp.set_write_timeout(Some(Duration::from_secs(5)))?;
    /// let mut client = rustls::StreamOwned::new(tls, tcp);
    /// client.write_all(b"hello")?;
    /// let mut reply = Vec::new();
    /// client.read_to_end(&mut reply)?; // Ok only after close_notify
    /// assert_eq!(reply, b"hello");
    ///
    /// running.shutdown_handle().shutdown();
    /// assert_eq!(running.join()?.completed, 1);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: std::sync::Arc<rustls::ServerConfig>) -> Builder {
        self.config.tls = Some(config);
        self
    }

    /// Listens on `addr` too, speaking TLS with `config` there, whatever
    /// [`tls`](Self::tls) says for the others (feature `tls`). Otherwise
    /// as [`listen`](Self::listen).
    ///
    /// TLS on one port and plain HTTP on another, e.g. to redirect:
    ///
    /// ```no_run
    /// # fn main() -> Result<(), graceful_server::Error> {
    /// let config = graceful_server::tls_config_from_pem("cert.pem", "key.pem")?;
    /// let server = graceful_server::Server::builder("0.0.0.0:80")
    ///     .listen_tls("0.0.0.0:443", config)
    ///     .build()?;
    /// # drop(server);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    pub fn listen_tls(
        mut self,
        addr: impl ToSocketAddrs,
        config: std::sync::Arc<rustls::ServerConfig>,
    ) -> Builder {
        self.listener_tls.push((self.sources.len(), config));
        self.listen(addr)
    }

    /// How long a TLS handshake may take, from the accept. By default,
    /// 10 s ([`DEFAULT_TLS_HANDSHAKE_TIMEOUT`](Self::DEFAULT_TLS_HANDSHAKE_TIMEOUT)).
    /// Feature `tls`.
    ///
    /// A client that has not completed its handshake by then (silent,
    /// stalled mid-flight, or trickling) is closed and counted
    /// [`timed_out`](crate::Report::timed_out). Waiting for its flights
    /// costs no worker, so this bounds the sockets such clients hold, not
    /// the threads. Must be above zero and at most a day.
    #[cfg(feature = "tls")]
    pub fn tls_handshake_timeout(mut self, timeout: Duration) -> Builder {
        self.config.tls_handshake_timeout = timeout;
        self
    }

    /// Serves on the listening sockets inherited through systemd's
    /// socket-activation protocol, when there are any. By default, off.
    ///
    /// When `LISTEN_PID` is this process's id and `LISTEN_FDS` is at least 1,
    /// [`build`](Self::build) takes every inherited socket (descriptors 3
    /// on), TCP or Unix, in order, instead of binding the address (and any
    /// added with [`listen`](Self::listen) or
    /// [`listen_unix`](Self::listen_unix)); otherwise it binds as usual.
    /// Each socket is checked to be a listening TCP or Unix stream socket
    /// and duplicated close-on-exec. It is never `shutdown()`, since other
    /// processes (the supervisor, the next server) hold it too: that shared
    /// backlog is what makes a restart lose no connection; and an inherited
    /// Unix socket's file is never removed. Only one server per process can
    /// take them.
    pub fn inherit_listener(mut self, inherit: bool) -> Builder {
        self.config.inherit = if inherit { Inherit::All } else { Inherit::No };
        self
    }

    /// Like [`inherit_listener(true)`](Self::inherit_listener), taking only
    /// the inherited socket whose name in `LISTEN_FDNAMES` (systemd's
    /// `FileDescriptorName=`) is `name`.
    pub fn inherit_listener_named(mut self, name: impl Into<String>) -> Builder {
        self.config.inherit = Inherit::Named(name.into());
        self
    }

    /// Sends readiness notifications to `NOTIFY_SOCKET`, when it is set. By
    /// default, off.
    ///
    /// The server sends `READY=1` once it accepts, `STOPPING=1` when shutdown
    /// starts, and `STATUS=` lines while it drains, as systemd's
    /// `Type=notify` services do (a path, or `@name` for Linux's abstract
    /// namespace). Failures to send are ignored.
    pub fn systemd_notify(mut self, notify: bool) -> Builder {
        self.config.notify = notify;
        self
    }

    /// Calls `hook` with every [`Event`] (a connection ended, an accept
    /// failed). By default, none.
    ///
    /// The library never prints or logs; this is how an embedding program
    /// learns of a handler's error, a connection's outcome and duration, or
    /// a failing `accept`, e.g. to log them. The hook runs on the server's
    /// threads (workers and the acceptor) while they close a connection or
    /// accept: keep it quick. A panic in it is caught and ignored.
    ///
    /// ```
    /// use graceful_server::{Event, Server};
    ///
    /// # fn main() -> Result<(), graceful_server::Error> {
    /// let server = Server::builder("127.0.0.1:0")
    ///     .on_event(|event| {
    ///         if let Event::ConnectionEnded { id, peer, outcome, error, .. } = event {
    ///             eprintln!("connection {id} from {peer}: {outcome:?} {error:?}");
    ///         }
    ///     })
    ///     .build()?;
    /// # drop(server);
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_event(mut self, hook: impl Fn(&Event<'_>) + Send + Sync + 'static) -> Builder {
        self.config.hook = Some(Hook::new(hook));
        self
    }

    /// Checks the settings and binds the listener (or takes the inherited
    /// one). Nothing runs yet.
    ///
    /// # Errors
    ///
    /// - [`Error::Config`] for a setting out of range (checked first, so
    ///   nothing is bound),
    /// - [`Error::Address`] if the address cannot be resolved,
    /// - [`Error::Bind`] if it cannot be bound (e.g. in use),
    /// - [`Error::Listener`] if the listener cannot be made nonblocking,
    /// - [`Error::Activation`] if inheriting is on and the activation
    ///   environment is malformed or hands over something unusable.
    ///
    /// # Example
    ///
    /// ```
    /// use graceful_server::{Error, Server};
    ///
    /// # fn main() -> Result<(), Error> {
    /// let server = Server::builder("127.0.0.1:0").workers(4).build()?;
    /// eprintln!("listening on {}", server.local_addr());
    ///
    /// // Settings are checked before anything is bound.
    /// let result = Server::builder("127.0.0.1:0").queue_capacity(0).build();
    /// assert!(matches!(result, Err(Error::Config { setting: "queue_capacity", .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub fn build(self) -> Result<Server, Error> {
        self.config.validate()?;
        let tls = self.listener_tls()?;
        let inherited = match &self.config.inherit {
            Inherit::No => None,
            Inherit::All => systemd::inherited_listeners(None)?,
            Inherit::Named(name) => systemd::inherited_listeners(Some(name))?,
        };
        let (listeners, first) = match inherited {
            // Served instead of every configured address, with the
            // builder's own TLS setting.
            Some(inherited) => inherited
                .into_iter()
                .map(|(listener, first)| ((listener, tls.default.clone()), first))
                .unzip::<_, _, Vec<_>, Vec<_>>(),
            None => {
                let mut listeners = Vec::with_capacity(self.sources.len());
                for (source, tls) in self.sources.into_iter().zip(tls.each) {
                    listeners.push((self.config.listener(source)?, tls));
                }
                (listeners, Vec::new())
            }
        };
        let first: Vec<(Stream, Addr, ListenerTls)> = first
            .into_iter()
            .flatten()
            .map(|(stream, peer)| (stream, peer, tls.default.clone()))
            .collect();
        let mut local_addrs = Vec::with_capacity(listeners.len());
        for (listener, _) in &listeners {
            // On an inherited socket this flag is shared with every holder;
            // they cope, since the acceptor treats `WouldBlock` as "nothing
            // yet".
            listener.set_nonblocking(true).map_err(Error::Listener)?;
            // Linux gives accepted TCP sockets the listener's timeouts.
            #[cfg(any(target_os = "linux", target_os = "android"))]
            if let Listener::Tcp(tcp) = listener {
                sys::set_accepted_timeouts(
                    tcp,
                    self.config.read_timeout,
                    self.config.write_timeout,
                )
                .map_err(Error::Listener)?;
            }
            local_addrs.push(listener.local_addr().map_err(Error::Listener)?);
        }
        let poller = Poller::new(self.config.backend).map_err(Error::Readiness)?;
        let shared = WorkerWait::new(self.config.backend).map_err(Error::Readiness)?;
        let (waker, wake) = wake::channel().map_err(Error::Readiness)?;
        Ok(Server {
            listeners,
            first,
            local_addrs,
            signal: ShutdownState::new(self.config.drain_delay, waker),
            poller,
            shared,
            wake,
            notifier: self.config.notify.then(Notifier::from_env).flatten(),
            config: self.config,
        })
    }
}

/// The TLS setting of each listener, in order, and of inherited ones.
struct TlsSettings {
    each: Vec<ListenerTls>,
    default: ListenerTls,
}

impl Builder {
    /// Each source's TLS setting: its own config, the builder's, or none;
    /// every config checked to make sessions.
    #[cfg(feature = "tls")]
    fn listener_tls(&self) -> Result<TlsSettings, Error> {
        let timeout = self.config.tls_handshake_timeout;
        let setting = |config: Option<&std::sync::Arc<rustls::ServerConfig>>| {
            let Some(config) = config else {
                return Ok(ListenerTls::default());
            };
            crate::tls::check(config).map_err(|reason| Error::Config {
                setting: "tls",
                reason: format!("the server config cannot make TLS sessions: {reason}"),
            })?;
            Ok(ListenerTls {
                setup: Some((std::sync::Arc::clone(config), timeout)),
            })
        };
        let default = setting(self.config.tls.as_ref())?;
        let mut each = Vec::with_capacity(self.sources.len());
        for index in 0..self.sources.len() {
            let own = self.listener_tls.iter().rev().find(|(i, _)| *i == index);
            each.push(match own {
                Some((_, config)) => setting(Some(config))?,
                None => default.clone(),
            });
        }
        Ok(TlsSettings { each, default })
    }

    #[cfg(not(feature = "tls"))]
    fn listener_tls(&self) -> Result<TlsSettings, Error> {
        Ok(TlsSettings {
            each: vec![ListenerTls; self.sources.len()],
            default: ListenerTls,
        })
    }
}

impl Config {
    /// Binds (or adopts) the listener `source` says.
    fn listener(&self, source: Source) -> Result<Listener, Error> {
        Ok(match source {
            Source::Listener(listener) => Listener::Tcp(listener),
            Source::Addr(addrs) => {
                let listener = bind(addrs.map_err(Error::Address)?)?;
                sys::set_backlog(&listener, self.backlog).map_err(Error::Listener)?;
                Listener::Tcp(listener)
            }
            #[cfg(unix)]
            Source::UnixListener(listener) => Listener::Unix {
                socket: listener,
                file: None,
            },
            #[cfg(unix)]
            Source::Unix(path) => {
                let listener = Listener::bind_unix(&path, self.unix_mode).map_err(|source| {
                    Error::BindUnix {
                        path: path.clone(),
                        source,
                    }
                })?;
                sys::set_backlog(&listener.as_source(), self.backlog).map_err(Error::Listener)?;
                listener
            }
        })
    }
}

fn bind(addrs: Vec<SocketAddr>) -> Result<TcpListener, Error> {
    let mut last = Error::Address(io::Error::new(
        io::ErrorKind::InvalidInput,
        "the address resolved to nothing",
    ));
    for addr in addrs {
        match TcpListener::bind(addr) {
            Ok(listener) => return Ok(listener),
            Err(source) => last = Error::Bind { addr, source },
        }
    }
    Err(last)
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("sources", &self.sources)
            .field("config", &self.config)
            .finish()
    }
}
