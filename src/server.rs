//! The builder (configuration and its validation), the bound [`Server`], the
//! [`RunningServer`], and the drain that runs between the shutdown signal and
//! the [`Report`].

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::acceptor::Acceptor;
use crate::connection::{Connection, Registry};
use crate::error::Error;
use crate::pool::{Handler, Job, Liveness, Worker};
use crate::report::Report;
use crate::shutdown::{ShutdownHandle, Signal};
use crate::systemd::{self, Notifier};

/// Default worker count. Each connection holds a worker for its whole life
/// (thread per connection), so this is the number of clients served at once,
/// not a CPU count: 32 lets a few long-lived connections (keep-alive, echo
/// sessions) coexist with short ones, while an idle worker costs only a few
/// KiB of touched stack.
const DEFAULT_WORKERS: usize = 32;
/// Default queue capacity: a burst of twice the pool can wait in the queue;
/// beyond that, connections wait in the kernel backlog.
const DEFAULT_QUEUE: usize = 64;
/// Default drain timeout: with the default force grace it leaves room inside
/// Kubernetes' default 30 s termination grace period.
const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
/// Default acceptor wait cap: at most 100 wake-ups a second when idle.
const DEFAULT_WAIT_CAP: Duration = Duration::from_millis(10);
/// Default force grace.
const DEFAULT_FORCE_GRACE: Duration = Duration::from_secs(1);

/// Upper bounds that catch unit mistakes (milliseconds passed as seconds)
/// and values no server can honour.
const MAX_WORKERS: usize = 65_536;
const MAX_WAIT_CAP: Duration = Duration::from_secs(1);

enum Source {
    Addr(io::Result<Vec<SocketAddr>>),
    Listener(TcpListener),
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
    source: Source,
    config: Config,
}

#[derive(Clone, Debug)]
struct Config {
    workers: usize,
    queue_capacity: usize,
    drain_timeout: Option<Duration>,
    drain_delay: Duration,
    idle_grace: Duration,
    force_grace: Duration,
    accept_wait_cap: Duration,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// `None`: bind. `Some(None)`: the first inherited socket, else bind.
    /// `Some(Some(name))`: the inherited socket with that name, else bind.
    inherit: Option<Option<String>>,
    notify: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            workers: DEFAULT_WORKERS,
            queue_capacity: DEFAULT_QUEUE,
            drain_timeout: Some(DEFAULT_DRAIN_TIMEOUT),
            drain_delay: Duration::ZERO,
            idle_grace: Duration::ZERO,
            force_grace: DEFAULT_FORCE_GRACE,
            accept_wait_cap: DEFAULT_WAIT_CAP,
            read_timeout: None,
            write_timeout: None,
            inherit: None,
            notify: false,
        }
    }
}

impl Config {
    fn validate(&self) -> Result<(), Error> {
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
        if self.accept_wait_cap.is_zero() {
            return invalid("accept_wait_cap", "must be above zero");
        }
        if self.accept_wait_cap > MAX_WAIT_CAP {
            return invalid("accept_wait_cap", "must be at most 1 s");
        }
        // std rejects a zero timeout ("use None to block forever").
        if self.read_timeout == Some(Duration::ZERO) {
            return invalid("read_timeout", "must be above zero, or None");
        }
        if self.write_timeout == Some(Duration::ZERO) {
            return invalid("write_timeout", "must be above zero, or None");
        }
        Ok(())
    }
}

impl Builder {
    fn new(source: Source) -> Builder {
        Builder {
            source,
            config: Config::default(),
        }
    }

    /// The number of worker threads, i.e. of connections served at once. By
    /// default, 32.
    ///
    /// Each connection holds a worker for its whole life, so this is a
    /// concurrency limit rather than a CPU count; more connections wait in the
    /// queue and then in the kernel backlog. Must be 1 to 65536.
    pub fn workers(mut self, workers: usize) -> Builder {
        self.config.workers = workers;
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
    /// During the delay [`ShutdownHandle::is_shutting_down`] and
    /// [`Connection::is_shutting_down`] already say `true` (so a readiness
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
    /// default, zero: they are closed at once.
    ///
    /// A request that arrives during the window is still served (the handler
    /// sees [`Connection::is_shutting_down`] and should answer with its
    /// protocol's "closing" marker). After it, idle connections are closed,
    /// and so is any connection that turns idle later. See
    /// [`Connection::idle`].
    pub fn idle_grace(mut self, grace: Duration) -> Builder {
        self.config.idle_grace = grace;
        self
    }

    /// How long to wait, after forcing, for handlers to notice that their
    /// sockets are shut down. By default, 1 second.
    ///
    /// A handler blocked on something other than its socket (a lock, a
    /// channel, a long computation) cannot be interrupted. After this grace
    /// its thread is left behind, counted in
    /// [`Report::threads_left_behind`], and serving returns anyway.
    pub fn force_grace(mut self, grace: Duration) -> Builder {
        self.config.force_grace = grace;
        self
    }

    /// The longest the acceptor waits between looks at an idle listener. By
    /// default, 10 milliseconds.
    ///
    /// After a connection the wait starts at 50 µs and doubles up to this
    /// cap. It bounds the extra latency of the first connection after a quiet
    /// spell, and the idle cost: at most `1 s / cap` wake-ups a second.
    /// Shutdown does not wait for it: the wait ends at the signal. Must be
    /// above zero and at most 1 second.
    pub fn accept_wait_cap(mut self, cap: Duration) -> Builder {
        self.config.accept_wait_cap = cap;
        self
    }

    /// The read timeout set on every accepted stream. By default, none.
    ///
    /// A silent client then makes the handler's `read` fail with `WouldBlock`
    /// or `TimedOut` instead of holding a worker for ever. Must not be zero.
    pub fn read_timeout(mut self, timeout: Option<Duration>) -> Builder {
        self.config.read_timeout = timeout;
        self
    }

    /// The write timeout set on every accepted stream. By default, none.
    ///
    /// A client that stops reading then makes the handler's `write` fail
    /// instead of holding a worker for ever. Must not be zero.
    pub fn write_timeout(mut self, timeout: Option<Duration>) -> Builder {
        self.config.write_timeout = timeout;
        self
    }

    /// Serves on a listening socket inherited through systemd's
    /// socket-activation protocol, when there is one. By default, off.
    ///
    /// When `LISTEN_PID` is this process's id and `LISTEN_FDS` is at least 1,
    /// [`build`](Self::build) takes the first inherited socket (descriptor 3)
    /// instead of binding the address; otherwise it binds as usual. The
    /// socket is checked to be a listening TCP socket and duplicated
    /// close-on-exec. It is never `shutdown()`, since other processes (the
    /// supervisor, the next server) hold it too: that shared backlog is what
    /// makes a restart lose no connection. Only one server per process can
    /// take it.
    pub fn inherit_listener(mut self, inherit: bool) -> Builder {
        self.config.inherit = inherit.then_some(None);
        self
    }

    /// Like [`inherit_listener(true)`](Self::inherit_listener), taking the
    /// inherited socket whose name in `LISTEN_FDNAMES` (systemd's
    /// `FileDescriptorName=`) is `name`.
    pub fn inherit_listener_named(mut self, name: impl Into<String>) -> Builder {
        self.config.inherit = Some(Some(name.into()));
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
    pub fn build(self) -> Result<Server, Error> {
        self.config.validate()?;
        let inherited = match &self.config.inherit {
            Some(name) => systemd::inherited_listener(name.as_deref())?,
            None => None,
        };
        let (listener, first) = match (inherited, self.source) {
            (Some(inherited), _) => inherited,
            (None, Source::Listener(listener)) => (listener, None),
            (None, Source::Addr(addrs)) => (bind(addrs.map_err(Error::Address)?)?, None),
        };
        // On an inherited socket this flag is shared with every holder;
        // they cope, since the acceptor treats `WouldBlock` as "nothing yet".
        listener.set_nonblocking(true).map_err(Error::Listener)?;
        let local_addr = listener.local_addr().map_err(Error::Listener)?;
        Ok(Server {
            listener,
            first,
            local_addr,
            signal: Signal::new(self.config.drain_delay),
            notifier: self.config.notify.then(Notifier::from_env).flatten(),
            config: self.config,
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
        let source: &dyn fmt::Debug = match &self.source {
            Source::Addr(addrs) => addrs,
            Source::Listener(listener) => listener,
        };
        f.debug_struct("Builder")
            .field("source", source)
            .field("config", &self.config)
            .finish()
    }
}

/// A bound server, ready to serve.
///
/// Create one with [`Server::builder`] or [`Server::from_listener`], then
/// either [`serve`](Server::serve) on the current thread or
/// [`spawn`](Server::spawn) in the background.
pub struct Server {
    listener: TcpListener,
    /// A connection accepted while checking an inherited listener.
    first: Option<(TcpStream, SocketAddr)>,
    local_addr: SocketAddr,
    config: Config,
    signal: Arc<Signal>,
    notifier: Option<Notifier>,
}

impl Server {
    /// Starts configuring a server that will listen on `addr`.
    ///
    /// The address is resolved now and bound by [`Builder::build`], which
    /// reports any problem with it. Use port 0 to get a free port, and read
    /// it with [`Server::local_addr`].
    pub fn builder(addr: impl ToSocketAddrs) -> Builder {
        Builder::new(Source::Addr(
            addr.to_socket_addrs().map(|addrs| addrs.collect()),
        ))
    }

    /// Starts configuring a server on a listener you bound yourself (for
    /// tests, or a socket inherited from a supervisor).
    ///
    /// The server puts it in nonblocking mode.
    pub fn from_listener(listener: TcpListener) -> Builder {
        Builder::new(Source::Listener(listener))
    }

    /// The address the server listens on (with the real port if you asked
    /// for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle to shut the server down, usable before serving starts.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle::new(Arc::clone(&self.signal))
    }

    /// Serves connections on the current thread until shut down, then
    /// returns what happened.
    ///
    /// `handler` runs on a worker thread for each connection, with the
    /// stream and its [`Connection`]. When it returns (or panics), the stream
    /// is closed. Returning an error only counts the connection as
    /// [`failed`](Report::failed).
    ///
    /// # Errors
    ///
    /// [`Error::Spawn`] if a thread cannot be started; nothing keeps running
    /// then.
    pub fn serve<H>(self, handler: H) -> Result<Report, Error>
    where
        H: Fn(TcpStream, &Connection) -> io::Result<()> + Send + Sync + 'static,
    {
        Ok(self.start(Arc::new(handler))?.run())
    }

    /// Serves connections on background threads and returns at once.
    ///
    /// See [`serve`](Server::serve) for the handler.
    ///
    /// # Errors
    ///
    /// [`Error::Spawn`] if a thread cannot be started; nothing keeps running
    /// then.
    pub fn spawn<H>(self, handler: H) -> Result<RunningServer, Error>
    where
        H: Fn(TcpStream, &Connection) -> io::Result<()> + Send + Sync + 'static,
    {
        let local_addr = self.local_addr;
        let handle = self.shutdown_handle();
        let drop_bound = self
            .config
            .drain_timeout
            .map(|timeout| self.config.drain_delay + timeout + self.config.force_grace);
        let drain = self.start(Arc::new(handler))?;
        let registry = Arc::clone(&drain.registry);
        let (report_tx, report_rx) = crossbeam_channel::bounded(1);
        let spawned = thread::Builder::new()
            .name("shutdown".into())
            .spawn(move || {
                let _ = report_tx.send(drain.run());
            });
        if let Err(source) = spawned {
            // The drain was moved into the failed closure and dropped; stop
            // the acceptor so that it and the workers exit.
            handle.shutdown();
            return Err(Error::Spawn {
                thread: "shutdown".into(),
                source,
            });
        }
        Ok(RunningServer {
            local_addr,
            handle,
            registry,
            report: report_rx,
            drop_bound,
        })
    }

    /// Starts the workers and the acceptor.
    fn start(self, handler: Arc<Handler>) -> Result<Drain, Error> {
        let Server {
            listener,
            first,
            config,
            signal,
            notifier,
            ..
        } = self;
        let (jobs_tx, jobs_rx) = crossbeam_channel::bounded::<Job>(config.queue_capacity);
        let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
        let registry = Arc::new(Registry::new());
        let liveness = Arc::new(Liveness::default());
        let listener_closed = Arc::new(OnceLock::new());
        // If anything below fails, returning drops `jobs_tx`: the workers
        // already started see the channel disconnect and exit.
        for id in 1..=config.workers {
            Worker::spawn(
                id,
                jobs_rx.clone(),
                Arc::clone(&handler),
                Arc::clone(&liveness),
                done_tx.clone(),
            )?;
        }
        let started = Instant::now();
        Acceptor {
            listener,
            first,
            jobs: jobs_tx,
            signal: Arc::clone(&signal),
            registry: Arc::clone(&registry),
            liveness: Arc::clone(&liveness),
            wait_cap: config.accept_wait_cap,
            read_timeout: config.read_timeout,
            write_timeout: config.write_timeout,
            listener_closed: Arc::clone(&listener_closed),
            done: done_tx,
        }
        .spawn()?;
        if let Some(notifier) = &notifier {
            notifier.send("READY=1");
        }
        Ok(Drain {
            notifier,
            config,
            signal,
            registry,
            liveness,
            jobs: jobs_rx,
            done: done_rx,
            listener_closed,
            started,
        })
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A server serving on background threads; see [`Server::spawn`].
///
/// Dropping it starts a graceful shutdown and waits for it at most the drain
/// delay plus the drain timeout plus the force grace (with no drain timeout it does not wait: the
/// drain goes on in the background). Call [`join`](Self::join) to wait for
/// the [`Report`].
pub struct RunningServer {
    local_addr: SocketAddr,
    handle: ShutdownHandle,
    registry: Arc<Registry>,
    report: Receiver<Report>,
    drop_bound: Option<Duration>,
}

impl RunningServer {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle to shut the server down.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// Connections accepted and not finished yet (being served or waiting).
    pub fn open_connections(&self) -> usize {
        self.registry.open()
    }

    /// Waits until the server has shut down and returns the report.
    ///
    /// It does not start the shutdown: trigger it through the
    /// [`ShutdownHandle`] (or Ctrl-C) first, or this waits for ever.
    ///
    /// # Errors
    ///
    /// [`Error::Internal`] if the server's shutdown thread panicked, which
    /// would be a bug in this crate.
    pub fn join(self) -> Result<Report, Error> {
        self.report
            .recv()
            .map_err(|_| Error::Internal("the shutdown thread ended without a report"))
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(bound) = self.drop_bound {
            // Bounded: the drain itself returns within this time. A margin
            // covers the time to build the report.
            let _ = self.report.recv_timeout(bound + Duration::from_millis(100));
        }
    }
}

impl fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningServer")
            .field("local_addr", &self.local_addr)
            .field("open_connections", &self.open_connections())
            .field("shutdown", &self.handle)
            .finish()
    }
}

/// Everything the drain watches: it waits for the signal, then leads the
/// shutdown to its end.
struct Drain {
    config: Config,
    notifier: Option<Notifier>,
    signal: Arc<Signal>,
    registry: Arc<Registry>,
    liveness: Arc<Liveness>,
    /// A receiver of the job queue, to close queued connections when forced.
    jobs: Receiver<Job>,
    /// Disconnects when the acceptor and every worker have exited.
    done: Receiver<()>,
    listener_closed: Arc<OnceLock<Instant>>,
    started: Instant,
}

/// Why a wait in the drain ended.
#[derive(Debug, PartialEq, Eq)]
enum Wake {
    /// Every worker and the acceptor exited.
    Done,
    /// Shutdown was forced.
    Forced,
    /// The time ran out.
    Timeout,
}

impl Drain {
    fn run(self) -> Report {
        // Blocks without timeout: an idle server costs no wake-ups here.
        let _ = self.signal.graceful_receiver().recv();
        let signalled = Instant::now();
        self.notify("STOPPING=1");
        let delay = self.signal.drain_delay();
        if !delay.is_zero() {
            self.notify(&format!(
                "STATUS=shutting down: serving for {delay:?} more before draining"
            ));
            // Serve normally, while `is_shutting_down` already says true. Only
            // a force cuts the delay short: the acceptor keeps `done` open.
            self.wait(Some(signalled + delay));
            self.signal.stop_accepting();
        }
        let draining = Instant::now();
        self.notify(&format!(
            "STATUS=draining {} connection(s)",
            self.registry.open()
        ));
        let deadline = self.config.drain_timeout.map(|t| draining + t);

        let mut wake = Wake::Timeout;
        if !self.config.idle_grace.is_zero() {
            let grace_end = draining + self.config.idle_grace;
            wake = self.wait(Some(deadline.map_or(grace_end, |d| d.min(grace_end))));
        }
        if wake == Wake::Timeout {
            self.registry.close_idle();
            wake = self.wait(deadline);
        }
        let drained = Instant::now();

        let mut left_behind = 0;
        if wake != Wake::Done {
            // Deadline or second signal: cut everything still open.
            self.signal.force();
            self.registry.force_close_all();
            self.jobs.try_iter().for_each(Job::close_unserved);
            let grace_end = Instant::now() + self.config.force_grace;
            if self.wait_done(grace_end) != Wake::Done {
                left_behind = self.liveness.alive();
            }
        }
        let returned = Instant::now();

        let tally = self.registry.tally();
        let stop_accepting = self.listener_closed.get().map_or(Duration::ZERO, |closed| {
            closed.saturating_duration_since(signalled)
        });
        Report {
            accepted: tally.accepted,
            completed: tally.completed,
            failed: tally.failed,
            closed_idle: tally.closed_idle,
            // Still open now means stuck in a handler after being cut.
            force_closed: tally.force_closed + tally.open,
            unserved: tally.unserved,
            panicked: tally.panicked,
            threads_left_behind: left_behind,
            forced: self.signal.is_forced(),
            serving: signalled.saturating_duration_since(self.started),
            stop_accepting,
            drain: drained - signalled,
            force: returned - drained,
            shutdown: returned - signalled,
        }
    }

    fn notify(&self, message: &str) {
        if let Some(notifier) = &self.notifier {
            notifier.send(message);
        }
    }

    /// Waits for the end of the drain, a force, or `until`.
    fn wait(&self, until: Option<Instant>) -> Wake {
        let timeout = match until {
            Some(until) => crossbeam_channel::at(until),
            None => crossbeam_channel::never(),
        };
        crossbeam_channel::select! {
            // Nothing is sent on `done` or on the force channel; a `recv`
            // returns when they disconnect.
            recv(self.done) -> _ => Wake::Done,
            recv(self.signal.forced_receiver()) -> _ => Wake::Forced,
            recv(timeout) -> _ => Wake::Timeout,
        }
    }

    /// Waits for the end of the drain or `until`, ignoring the force (which
    /// has already happened).
    fn wait_done(&self, until: Instant) -> Wake {
        let timeout = until.saturating_duration_since(Instant::now());
        match self.done.recv_timeout(timeout) {
            Err(RecvTimeoutError::Timeout) => Wake::Timeout,
            Ok(()) | Err(RecvTimeoutError::Disconnected) => Wake::Done,
        }
    }
}
