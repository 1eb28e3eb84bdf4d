//! The bound [`Server`], the [`RunningServer`] it becomes, and the
//! [`StatsHandle`] that watches it.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::acceptor::Acceptor;
use crate::config::{default_max_connections, Config};
use crate::connection::Handler;
use crate::drain::{Drain, Phases};
use crate::error::Error;
use crate::lifecycle::{Timeouts, Waiting};
use crate::listener::{Addr, Listener, Stream};
use crate::parking::Parking;
use crate::pool::{Pool, Worker};
use crate::push::{Doorbell, PushSetup};
use crate::readiness::WorkerWait;
use crate::registry::Registry;
use crate::report::{Report, Stats};
use crate::shutdown::{ShutdownHandle, ShutdownState};
use crate::sys::Poller;
use crate::systemd::Notifier;
use crate::tls::ListenerTls;
use crate::wake::WakeReceiver;

/// The first TCP address of `addrs`, for `local_addr`.
///
/// # Panics
///
/// If there is none: a server listening on Unix sockets only.
fn first_tcp(addrs: &[Addr]) -> SocketAddr {
    addrs.iter().find_map(Addr::tcp).unwrap_or_else(|| {
        panic!("local_addr() of a server with no TCP listener: use local_addrs()")
    })
}

/// A bound server, ready to serve.
///
/// Create one with [`Server::builder`] or [`Server::builder_from_listener`], then
/// either [`serve`](Server::serve) on the current thread or
/// [`spawn`](Server::spawn) in the background.
///
/// # Example
///
/// ```
/// use graceful_server::{Connection, Next, Server};
///
/// fn hang_up(_conn: &mut Connection) -> std::io::Result<Next> {
///     Ok(Next::Close)
/// }
///
/// # fn main() -> Result<(), graceful_server::Error> {
/// let server = Server::builder("127.0.0.1:0").workers(4).build()?;
/// let handle = server.shutdown_handle(); // before serving: `serve` blocks
/// let running = server.spawn(hang_up)?; // `spawn` returns at once
///
/// handle.shutdown();
/// let report = running.join()?;
/// assert_eq!(report.accepted, 0);
/// # Ok(())
/// # }
/// ```
pub struct Server {
    /// At least one, each with its TLS setting.
    pub(crate) listeners: Vec<(Listener, ListenerTls)>,
    /// Connections accepted while checking inherited listeners, with their
    /// listener's TLS setting.
    pub(crate) first: Vec<(Stream, Addr, ListenerTls)>,
    /// The listeners' addresses, in the same order.
    pub(crate) local_addrs: Vec<Addr>,
    pub(crate) config: Config,
    pub(crate) signal: Arc<ShutdownState>,
    pub(crate) poller: Poller,
    /// The workers' readiness wait, for the parking.
    pub(crate) shared: WorkerWait,
    /// The acceptor's end of the wake-up socket whose other end `signal`
    /// holds.
    pub(crate) wake: WakeReceiver,
    pub(crate) notifier: Option<Notifier>,
}

impl Server {
    /// The address the server listens on (with the real port if you asked
    /// for port 0).
    ///
    /// Clients can connect from now on: until serving starts, they wait in
    /// the listen backlog.
    ///
    /// ```
    /// # fn main() -> Result<(), graceful_server::Error> {
    /// let server = graceful_server::Server::builder("127.0.0.1:0").build()?;
    /// let addr = server.local_addr();
    /// assert!(addr.ip().is_loopback());
    /// assert_ne!(addr.port(), 0); // the port the system picked
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// With several listeners, the first TCP one's.
    ///
    /// # Panics
    ///
    /// If the server has no TCP listener (only Unix sockets): see
    /// [`local_addrs`](Self::local_addrs).
    pub fn local_addr(&self) -> SocketAddr {
        first_tcp(&self.local_addrs)
    }

    /// Every address the server listens on, in the order they were given
    /// (the builder's, then each [`listen`](crate::Builder::listen) or
    /// [`listen_on`](crate::Builder::listen_on)).
    ///
    /// ```
    /// # fn main() -> Result<(), graceful_server::Error> {
    /// let server = graceful_server::Server::builder("127.0.0.1:0")
    ///     .listen("127.0.0.1:0")
    ///     .build()?;
    /// let addrs = server.local_addrs();
    /// assert_eq!(addrs.len(), 2);
    /// assert_eq!(addrs[0].tcp(), Some(server.local_addr()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn local_addrs(&self) -> &[Addr] {
        &self.local_addrs
    }

    /// A handle to shut the server down, usable before serving starts.
    ///
    /// Take it before [`serve`](Server::serve), which blocks, and hand it to
    /// whatever decides when to stop: another thread, or
    /// [`install_ctrl_c`](ShutdownHandle::install_ctrl_c).
    ///
    /// ```
    /// use graceful_server::{Connection, Next, Server};
    ///
    /// # fn main() -> Result<(), graceful_server::Error> {
    /// let server = Server::builder("127.0.0.1:0").build()?;
    /// let handle = server.shutdown_handle();
    /// handle.shutdown(); // even before serving: `serve` then returns at once
    /// let report = server.serve(|_conn: &mut Connection| Ok(Next::Close))?;
    /// assert_eq!(report.accepted, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle::new(Arc::clone(&self.signal))
    }

    /// Serves connections on the current thread until shut down, then
    /// returns what happened.
    ///
    /// `handler` serves one turn at a time, on a worker thread, whenever a
    /// connection has input; see [`Handler`] (any
    /// `Fn(&mut Connection) -> io::Result<Next>` closure is one).
    ///
    /// # Errors
    ///
    /// [`Error::Spawn`] if a thread cannot be started, [`Error::Readiness`]
    /// if a wake-up socket cannot be made; nothing keeps running then.
    ///
    /// # Example
    ///
    /// `serve` blocks, so something else must shut the server down: here a
    /// client thread, when it is done.
    ///
    /// ```
    /// use std::io::{self, Read, Write};
    /// use std::net::{SocketAddr, TcpStream};
    /// use std::thread;
    /// use std::time::Duration;
    ///
    /// use graceful_server::{Connection, Next, Server};
    ///
    /// fn shout(conn: &mut Connection) -> io::Result<Next> {
    ///     let mut buf = [0; 1024];
    ///     let n = conn.read(&mut buf)?;
    ///     conn.write_all(&buf[..n].to_ascii_uppercase())?;
    ///     Ok(Next::Close)
    /// }
    ///
    /// fn ask(addr: SocketAddr) -> io::Result<String> {
    ///     let mut client = TcpStream::connect(addr)?;
    ///     client.set_read_timeout(Some(Duration::from_secs(5)))?;
    ///     client.set_write_timeout(Some(Duration::from_secs(5)))?;
    ///     client.write_all(b"ping")?;
    ///     let mut reply = String::new();
    ///     client.read_to_string(&mut reply)?; // until the server closes
    ///     Ok(reply)
    /// }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = Server::builder("127.0.0.1:0").build()?;
    /// let addr = server.local_addr();
    /// let handle = server.shutdown_handle();
    /// let client = thread::spawn(move || {
    ///     let reply = ask(addr);
    ///     handle.shutdown(); // whatever happened, so that `serve` returns
    ///     reply
    /// });
    ///
    /// let report = server.serve(shout)?;
    /// let reply = client.join().map_err(|_| "the client thread panicked")??;
    /// assert_eq!(reply, "PING");
    /// assert_eq!(report.completed, 1);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// [`Connection`]: crate::Connection
    /// [`Next`]: crate::Next
    pub fn serve<H: Handler>(self, handler: H) -> Result<Report, Error> {
        Ok(self.start(Arc::new(handler))?.run())
    }

    /// Serves connections on background threads and returns at once.
    ///
    /// See [`serve`](Server::serve) for the handler.
    ///
    /// # Errors
    ///
    /// [`Error::Spawn`] if a thread cannot be started, [`Error::Readiness`]
    /// if a wake-up socket cannot be made; nothing keeps running then.
    ///
    /// # Example
    ///
    /// How to test a handler: spawn, talk to it, shut down, check the report.
    ///
    /// ```
    /// use std::io::{self, Read, Write};
    /// use std::net::TcpStream;
    /// use std::time::Duration;
    ///
    /// use graceful_server::{Connection, Next, Server};
    ///
    /// fn shout(conn: &mut Connection) -> io::Result<Next> {
    ///     let mut buf = [0; 1024];
    ///     let n = conn.read(&mut buf)?;
    ///     conn.write_all(&buf[..n].to_ascii_uppercase())?;
    ///     Ok(Next::Close)
    /// }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let running = Server::builder("127.0.0.1:0").build()?.spawn(shout)?;
    ///
    /// let mut client = TcpStream::connect(running.local_addr())?;
    /// client.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// client.set_write_timeout(Some(Duration::from_secs(5)))?;
    /// client.write_all(b"ping")?;
    /// let mut reply = String::new();
    /// client.read_to_string(&mut reply)?;
    /// assert_eq!(reply, "PING");
    ///
    /// running.shutdown_handle().shutdown();
    /// let report = running.join()?;
    /// assert_eq!(report.completed, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn spawn<H: Handler>(self, handler: H) -> Result<RunningServer, Error> {
        let local_addrs = self.local_addrs.clone();
        let handle = self.shutdown_handle();
        let config = &self.config;
        let drop_bound = config.drain_timeout.and_then(|timeout| {
            config
                .drain_delay
                .checked_add(timeout)?
                .checked_add(config.force_grace)
        });
        let drain = self.start(Arc::new(handler))?;
        let stats = StatsHandle {
            registry: Arc::clone(&drain.registry),
            pool: Arc::clone(&drain.pool),
        };
        let (report_tx, report_rx) = crossbeam_channel::bounded(1);
        let spawned = thread::Builder::new()
            .name("shutdown".into())
            .spawn(move || {
                let _ = report_tx.send(drain.run());
            });
        if let Err(source) = spawned {
            // The drain was moved into the failed closure and dropped; stop
            // the acceptor so that it and the workers exit.
            handle.force();
            return Err(Error::Spawn {
                thread: "shutdown".into(),
                source,
            });
        }
        Ok(RunningServer {
            local_addrs,
            handle,
            stats,
            report: report_rx,
            drop_bound,
        })
    }

    /// Starts the workers and the acceptor.
    fn start(self, handler: Arc<dyn Handler>) -> Result<Drain, Error> {
        let Server {
            listeners,
            first,
            config,
            signal,
            poller,
            shared,
            wake,
            notifier,
            ..
        } = self;
        let acceptor_waker = signal.acceptor_waker();
        let (jobs_tx, jobs_rx) = crossbeam_channel::bounded(config.queue_capacity);
        let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
        let timeouts = Timeouts {
            idle: config.idle_timeout,
            wait: config.wait_timeout,
        };
        let parking = Parking::new(shared, timeouts, acceptor_waker.clone());
        let pool = Arc::new(Pool::new(jobs_rx.clone(), parking, acceptor_waker.clone()));
        let doorbell: Arc<dyn Doorbell> = Arc::clone(&pool) as Arc<dyn Doorbell>;
        let push = PushSetup {
            doorbell: Arc::downgrade(&doorbell),
            limit: config.max_pushed_output,
        };
        let registry = Arc::new(Registry::new(acceptor_waker, config.hook.clone(), push));
        let new_waiting = if handler.new_connections_are_idle() {
            Waiting::Idle
        } else {
            Waiting::Conversation
        };
        let listener_closed = Arc::new(OnceLock::new());
        // If anything below fails, `jobs_tx` is dropped on return: the
        // workers already started see the channel disconnect and exit.
        for index in 0..config.workers {
            Worker::spawn(
                index,
                Arc::clone(&pool),
                Arc::clone(&handler),
                done_tx.clone(),
            )?;
        }
        let started = Instant::now();
        Acceptor {
            listeners,
            first,
            poller,
            wake,
            jobs: jobs_tx,
            pool: Arc::clone(&pool),
            signal: Arc::clone(&signal),
            registry: Arc::clone(&registry),
            max_connections: config
                .max_connections
                .unwrap_or_else(default_max_connections),
            read_timeout: config.read_timeout,
            write_timeout: config.write_timeout,
            new_waiting,
            listener_closed: Arc::clone(&listener_closed),
            done: done_tx,
        }
        .spawn()?;
        if let Some(notifier) = &notifier {
            notifier.send("READY=1");
        }
        Ok(Drain {
            phases: Phases {
                drain_timeout: config.drain_timeout,
                idle_grace: config.idle_grace,
                force_grace: config.force_grace,
                goodbye_pace: config.goodbye_pace,
            },
            notifier,
            signal,
            registry,
            pool,
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
            .field("local_addrs", &self.local_addrs)
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
///
/// # Example
///
/// ```
/// use graceful_server::{Connection, Next, Server};
///
/// # fn main() -> Result<(), graceful_server::Error> {
/// let running = Server::builder("127.0.0.1:0")
///     .build()?
///     .spawn(|_conn: &mut Connection| Ok(Next::Close))?;
/// eprintln!("serving on {}", running.local_addr());
/// assert_eq!(running.stats().open, 0);
///
/// running.shutdown_handle().shutdown();
/// let report = running.join()?;
/// eprintln!("{report}");
/// # Ok(())
/// # }
/// ```
#[must_use = "dropping a RunningServer shuts it down at once"]
pub struct RunningServer {
    /// At least one.
    local_addrs: Vec<Addr>,
    handle: ShutdownHandle,
    stats: StatsHandle,
    report: Receiver<Report>,
    drop_bound: Option<Duration>,
}

impl RunningServer {
    /// The address the server listens on: where test clients connect.
    ///
    /// ```
    /// use std::net::TcpStream;
    ///
    /// use graceful_server::{Connection, Next, Server};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let running = Server::builder("127.0.0.1:0")
    ///     .build()?
    ///     .spawn(|_conn: &mut Connection| Ok(Next::Close))?;
    /// let client = TcpStream::connect(running.local_addr())?;
    /// drop(client); // hang up at once
    ///
    /// running.shutdown_handle().shutdown();
    /// assert_eq!(running.join()?.accepted, 1);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If the server has no TCP listener; see [`Server::local_addr`].
    pub fn local_addr(&self) -> SocketAddr {
        first_tcp(&self.local_addrs)
    }

    /// Every address the server listens on, in order; see
    /// [`Server::local_addrs`].
    pub fn local_addrs(&self) -> &[Addr] {
        &self.local_addrs
    }

    /// A handle to shut the server down, from this thread or any other.
    ///
    /// ```
    /// use std::thread;
    ///
    /// use graceful_server::{Connection, Next, Server};
    ///
    /// # fn main() -> Result<(), graceful_server::Error> {
    /// let running = Server::builder("127.0.0.1:0")
    ///     .build()?
    ///     .spawn(|_conn: &mut Connection| Ok(Next::Close))?;
    /// let handle = running.shutdown_handle();
    /// thread::spawn(move || handle.shutdown());
    /// let report = running.join()?; // returns once the thread has shut it down
    /// assert!(!report.forced);
    /// # Ok(())
    /// # }
    /// ```
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// Connections accepted and not finished yet (being served or waiting).
    ///
    /// ```
    /// use std::io::{self, Read, Write};
    /// use std::net::TcpStream;
    /// use std::time::Duration;
    ///
    /// use graceful_server::{Connection, Next, Server};
    ///
    /// fn echo(conn: &mut Connection) -> io::Result<Next> {
    ///     let mut buf = [0; 1024];
    ///     let n = conn.read(&mut buf)?;
    ///     conn.write_all(&buf[..n])?;
    ///     Ok(if n == 0 { Next::Close } else { Next::Wait })
    /// }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let running = Server::builder("127.0.0.1:0").build()?.spawn(echo)?;
    /// assert_eq!(running.open_connections(), 0);
    ///
    /// let mut client = TcpStream::connect(running.local_addr())?;
    /// client.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// client.set_write_timeout(Some(Duration::from_secs(5)))?;
    /// client.write_all(b"hi")?;
    /// client.read_exact(&mut [0; 2])?;
    /// assert_eq!(running.open_connections(), 1); // waiting for more
    ///
    /// drop(client); // hang up: the connection ends
    /// running.shutdown_handle().shutdown();
    /// running.join()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn open_connections(&self) -> usize {
        self.stats.registry.open()
    }

    /// Live numbers: connections open, busy, parked and queued, and the
    /// report's totals so far.
    ///
    /// ```
    /// # fn main() -> Result<(), graceful_server::Error> {
    /// let server = graceful_server::Server::builder("127.0.0.1:0").build()?;
    /// let running = server.spawn(|_conn: &mut graceful_server::Connection| {
    ///     Ok(graceful_server::Next::Close)
    /// })?;
    /// let stats = running.stats();
    /// assert_eq!(stats.open, 0);
    ///
    /// running.shutdown_handle().shutdown();
    /// running.join()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats(&self) -> Stats {
        self.stats.stats()
    }

    /// A cloneable handle that reads the same [`Stats`] from anywhere (a
    /// metrics thread).
    ///
    /// ```
    /// use std::thread;
    /// use std::time::Duration;
    ///
    /// use graceful_server::{Connection, Next, Server};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let running = Server::builder("127.0.0.1:0")
    ///     .build()?
    ///     .spawn(|_conn: &mut Connection| Ok(Next::Close))?;
    /// let stats = running.stats_handle();
    /// let shutdown = running.shutdown_handle();
    /// let metrics = thread::spawn(move || {
    ///     // Once a second, until the server starts shutting down.
    ///     while !shutdown.wait_timeout(Duration::from_secs(1)) {
    ///         let now = stats.stats();
    ///         eprintln!("{} open, {} busy, {} queued", now.open, now.busy, now.queued);
    ///     }
    /// });
    ///
    /// running.shutdown_handle().shutdown();
    /// metrics.join().map_err(|_| "the metrics thread panicked")?;
    /// running.join()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats_handle(&self) -> StatsHandle {
        self.stats.clone()
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
    ///
    /// # Example
    ///
    /// ```
    /// use graceful_server::{Connection, Next, Server};
    ///
    /// # fn main() -> Result<(), graceful_server::Error> {
    /// let running = Server::builder("127.0.0.1:0")
    ///     .build()?
    ///     .spawn(|_conn: &mut Connection| Ok(Next::Close))?;
    ///
    /// running.shutdown_handle().shutdown(); // first, or `join` waits for ever
    /// let report = running.join()?;
    /// assert_eq!(report.outcomes(), report.accepted);
    /// eprintln!("{report}");
    /// # Ok(())
    /// # }
    /// ```
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
            let _ = self
                .report
                .recv_timeout(bound.saturating_add(Duration::from_millis(100)));
        }
    }
}

impl fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningServer")
            .field("local_addrs", &self.local_addrs)
            .field("open_connections", &self.open_connections())
            .field("shutdown", &self.handle)
            .finish()
    }
}

/// Reads a running server's [`Stats`]; see [`RunningServer::stats_handle`].
///
/// It stays readable after the server has shut down, and then gives the
/// final numbers.
///
/// ```
/// use graceful_server::{Connection, Next, Server};
///
/// # fn main() -> Result<(), graceful_server::Error> {
/// let running = Server::builder("127.0.0.1:0")
///     .build()?
///     .spawn(|_conn: &mut Connection| Ok(Next::Close))?;
/// let stats = running.stats_handle(); // cheap to clone, `Send` and `Sync`
///
/// running.shutdown_handle().shutdown();
/// let report = running.join()?;
/// assert_eq!(stats.stats().accepted, report.accepted);
/// assert_eq!(stats.stats().open, 0);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct StatsHandle {
    registry: Arc<Registry>,
    pool: Arc<Pool>,
}

impl StatsHandle {
    /// The numbers now.
    pub fn stats(&self) -> Stats {
        let tally = self.registry.tally();
        let as_u64 = |n: usize| n as u64;
        Stats {
            open: tally.open,
            busy: as_u64(self.pool.busy()),
            parked: as_u64(self.registry.waiting()),
            queued: as_u64(self.pool.queued()),
            accepted: tally.accepted,
            completed: tally.completed,
            failed: tally.failed,
            timed_out: tally.timed_out,
            closed_idle: tally.closed_idle,
            force_closed: tally.force_closed,
            unserved: tally.unserved,
            panicked: tally.panicked,
        }
    }
}

impl fmt::Debug for StatsHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StatsHandle").field(&self.stats()).finish()
    }
}
