//! A synchronous, std-only threaded TCP server that shuts down gracefully.
//!
//! Node's recipe for a graceful exit is: on SIGINT, call `server.close()`,
//! which stops accepting while the existing connections are still served, and
//! exit once the last one has ended. This crate does the same with plain
//! threads and blocking handlers (a nonblocking [`std::net::TcpListener`], one
//! acceptor thread waiting for readiness, a fixed pool of workers fed over a
//! bounded channel) and fixes the recipe's flaws: connections waiting in the
//! accept backlog are served instead of reset, idle keep-alive connections
//! cannot keep the server alive for ever, the drain has a deadline, a second
//! Ctrl-C forces, a panicking handler costs one connection, and the end is a
//! [`Report`] of what happened to every connection.
//!
//! # Quick start
//!
//! A [`Handler`] serves one *turn* of a connection: it is called on a worker
//! thread when the connection has input, reads and answers, and says what
//! comes [`Next`]. Any `Fn(&mut Connection) -> io::Result<Next>` closure is a
//! handler. An echo server:
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::TcpStream;
//! use graceful_server::{Connection, Next, Server};
//!
//! fn echo(conn: &mut Connection) -> std::io::Result<Next> {
//!     let mut buf = [0; 4096];
//!     let n = conn.read(&mut buf)?;
//!     if n == 0 {
//!         return Ok(Next::Close); // the client hung up
//!     }
//!     conn.write_all(&buf[..n])?;
//!     Ok(Next::Wait) // wait for more, holding no worker
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::builder("127.0.0.1:0").workers(4).build()?;
//! let addr = server.local_addr();
//! let running = server.spawn(echo)?;
//!
//! let mut client = TcpStream::connect(addr)?;
//! client.write_all(b"hello")?;
//! let mut reply = [0; 5];
//! client.read_exact(&mut reply)?;
//! assert_eq!(&reply, b"hello");
//! drop(client); // hang up: the next turn reads 0 bytes and closes
//!
//! running.shutdown_handle().shutdown();
//! let report = running.join()?;
//! assert_eq!(report.completed, 1);
//! assert!(!report.forced);
//! # Ok(())
//! # }
//! ```
//!
//! [`Server::serve`] does the same on the current thread and returns the
//! report when the server has shut down.
//!
//! # How it works
//!
//! ```text
//!        ctrl-c / SIGTERM / ShutdownHandle::shutdown()
//!                 |  flag + broadcast channel + a byte on the wake-up socket
//!                 v
//!  acceptor thread: epoll or poll(2) on the listener (nonblocking) and its
//!  wake-up socket; accept until WouldBlock; timers of parked connections
//!                 |
//!                 +--bounded channel--> worker 1..N (free ones also wait in
//!                                       the parking's readiness wait)
//!                                         handler.turn(&mut conn) -> Next
//!                                         catch_unwind around each turn
//!                                           |
//!        parking: the waiting connections <-+ Idle / Wait: parked by the
//!        (one readiness wait that every     | worker; the free worker that
//!         free worker shares) --------------+ readiness wakes serves the turn
//! ```
//!
//! The acceptor sleeps in `epoll_wait` (Linux), `poll(2)` (other unix
//! systems) or `WSAPoll` (Windows) with no timeout unless a timer is due, so
//! an idle server makes no wake-ups at all. When the listener is readable it
//! accepts until `WouldBlock` and queues the new connections for the
//! workers.
//!
//! After a turn that returns [`Next::Idle`] or [`Next::Wait`], the worker
//! *parks* the connection: it arms it in one readiness wait that every free
//! worker waits in (leader/followers), and is free again. When the
//! connection turns readable, the free worker that the readiness wakes
//! takes it and serves the turn itself: no thread hands it to another. A
//! parked connection holds no thread and, once its buffer is empty, no
//! buffer. So thousands of keep-alive clients share a handful of workers,
//! none is starved (each readiness report goes to the worker that has
//! waited longest), and none is ever closed to make room for another.
//!
//! What happens to a connection next (after a turn, when it turns ready,
//! when its timer is due, at each step of shutdown) is decided in one
//! place, `Life::decide` in `src/lifecycle.rs`; [ARCHITECTURE.md] draws the
//! whole life of a connection and says where each step is.
//!
//! [ARCHITECTURE.md]: https://github.com/graceful-server/graceful-server/blob/main/ARCHITECTURE.md
//!
//! # Long-lived connections
//!
//! A connection that stays open by design (a subscriber to server-sent
//! events, a WebSocket, a chat) holds no worker while it waits, whether for
//! input or for output that another thread pushes to it with a [`Pusher`]
//! (from [`Connection::pusher`]). At shutdown it can say goodbye: a
//! connection that [asked for it](Connection::set_goodbye) gets one turn
//! when the server stops accepting, in which [`Connection::is_goodbye`] is
//! true, and its client's answer ends the drain in about a round trip
//! instead of at the deadline. See [`Pusher`] for an example.
//!
//! # How shutdown works
//!
//! Shutdown starts with [`ShutdownHandle::shutdown`] (or the first Ctrl-C, if
//! you [opted in](ShutdownHandle::install_ctrl_c)). Then:
//!
//! 1. **Stop accepting.** The acceptor wakes at once (the trigger writes a
//!    byte to its wake-up socket), accepts every connection already waiting
//!    in the kernel backlog, and closes the listener. New connects are
//!    refused from then on; none that completed its handshake before is
//!    reset.
//! 2. **Drain.** Every accepted connection is served to its end: turns in
//!    progress finish (the handler sees [`Connection::is_shutting_down`] and
//!    can add its protocol's closing marker), queued connections are served,
//!    connections waiting mid-conversation ([`Next::Wait`]) are waited for;
//!    those that asked for a goodbye get their goodbye turn.
//!    Idle connections ([`Next::Idle`]) are closed after the [idle
//!    grace](Builder::idle_grace); a request arriving within it is served.
//! 3. **Finish.** The moment the last connection ends, serving returns the
//!    [`Report`]. Completion is signalled (a channel disconnecting), never
//!    polled, so this takes microseconds.
//!
//! # Ctrl-C
//!
//! The library never installs a signal handler by itself. Call
//! [`ShutdownHandle::install_ctrl_c`] to have the first SIGINT, SIGTERM or
//! SIGHUP start a graceful shutdown and the second one force it. SIGHUP
//! inherited as ignored (`nohup`) stays ignored. It returns an error, rather
//! than panicking, if the process already installed a handler through the
//! `ctrlc` crate.
//!
//! ```no_run
//! # use graceful_server::{Connection, Next};
//! # fn echo(conn: &mut Connection) -> std::io::Result<Next> { Ok(Next::Close) }
//! # fn main() -> Result<(), graceful_server::Error> {
//! let server = graceful_server::Server::builder("127.0.0.1:7878").build()?;
//! server.shutdown_handle().install_ctrl_c()?;
//! let report = server.serve(echo)?;
//! eprintln!("{report}");
//! # Ok(())
//! # }
//! ```
//!
//! # Idle connections
//!
//! A protocol with keep-alive spends most of a connection's life waiting for
//! the next request. Waiting for such connections to end would keep the
//! server up for ever, and cutting one in the middle of a request loses it.
//! So a handler says which kind of wait follows each turn:
//!
//! - [`Next::Idle`]: at a safe boundary (between requests). Closed at
//!   shutdown after the idle grace, and after the [idle
//!   timeout](Builder::idle_timeout) (60 s by default) without input.
//! - [`Next::Wait`]: in the middle of a conversation. Never cut before the
//!   drain deadline; bounded only by the [wait
//!   timeout](Builder::wait_timeout), if you set one, or by the
//!   connection's own [deadline](Connection::set_deadline).
//!
//! Neither holds a worker while waiting. A handler should also check
//! [`Connection::is_shutting_down`] after each request and, if true, answer
//! with its protocol's closing marker and return [`Next::Close`]. A new
//! connection counts as mid-conversation until its first turn, unless the
//! handler says otherwise ([`Handler::new_connections_are_idle`]).
//!
//! # Embedding like the binary
//!
//! The shutdown tells its phases through the [event hook](Builder::on_event),
//! in order: [`Event::ShutdownStarted`] (what triggered it, how many
//! connections are open, the deadline), [`Event::AcceptingStopped`] (the
//! backlog swept), [`Event::IdleGraceOver`], [`Event::Forced`] (and why),
//! and [`Event::Finished`] with the report. The echo binary prints its
//! progress from these alone; a program does the same in a few lines, and
//! returns the binary's exit status with [`Report::exit_code`] (0 drained,
//! 3 forced):
//!
//! ```
//! use std::error::Error as _;
//! use std::process::ExitCode;
//!
//! use graceful_server::{Connection, Event, Next, Report, Server};
//!
//! fn serve() -> Result<Report, graceful_server::Error> {
//!     let server = Server::builder("127.0.0.1:0")
//!         .on_event(|event| match event {
//!             Event::ShutdownStarted { open, drain_timeout: Some(limit), .. } => {
//!                 eprintln!("shutting down: {open} open, waiting up to {limit:?}")
//!             }
//!             Event::ShutdownStarted { open, drain_timeout: None, .. } => {
//!                 eprintln!("shutting down: {open} open, waiting with no deadline")
//!             }
//!             Event::Forced { reason } => eprintln!("forced: {reason:?}"),
//!             Event::Finished { report } => eprintln!("{report}"),
//!             _ => {}
//!         })
//!         .build()?;
//!     // In a real program: server.shutdown_handle().install_ctrl_c()?;
//!     let handle = server.shutdown_handle();
//!     let running = server.spawn(|_conn: &mut Connection| Ok(Next::Close))?;
//!     handle.shutdown(); // what ctrl-c does
//!     running.join()
//! }
//!
//! fn main() -> ExitCode {
//!     match serve() {
//!         Ok(report) => report.exit_code(),
//!         Err(error) => {
//!             // What failed, then why: "cannot listen on 127.0.0.1:8081:
//!             // Address already in use (os error 98)".
//!             let mut line = error.to_string();
//!             let mut source = error.source();
//!             while let Some(cause) = source {
//!                 line += &format!(": {cause}");
//!                 source = cause.source();
//!             }
//!             eprintln!("{line}");
//!             ExitCode::FAILURE
//!         }
//!     }
//! }
//! ```
//!
//! The same hook hears every connection that ends
//! ([`Event::ConnectionEnded`], with its outcome and error) and, with the
//! `http` feature, every HTTP request answered (`Event::Request`: what an
//! access log needs). With the `log` feature every event also goes to the
//! [`log`](https://docs.rs/log) facade, at levels that suit it (requests
//! at `info` under the target `graceful_server::access`); without it the
//! library depends on no logger and prints nothing.
//!
//! # Listeners
//!
//! A server listens on any number of TCP addresses
//! ([`Builder::listen`]) and, on unix, Unix domain sockets
//! ([`Server::builder_unix`], [`Builder::listen_unix`]): one pool, one
//! report, one shutdown that sweeps every backlog before closing any
//! listener. [`Server::local_addrs`] lists them as [`Addr`]s; a handler sees
//! its client's [`Addr`] (`Addr::Unix(None)` for an unnamed Unix client).
//!
//! ```
//! use graceful_server::{Addr, Connection, Next, Server};
//!
//! # fn main() -> Result<(), graceful_server::Error> {
//! let server = Server::builder("127.0.0.1:0").listen("127.0.0.1:0").build()?;
//! assert_eq!(server.local_addrs().len(), 2);
//! assert!(server.local_addrs().iter().all(|addr| matches!(addr, Addr::Tcp(_))));
//! let running = server.spawn(|_conn: &mut Connection| Ok(Next::Close))?;
//! running.shutdown_handle().shutdown();
//! running.join()?;
//! # Ok(())
//! # }
//! ```
//!
//! # Limits
//!
//! - [`workers`](Builder::workers) (32): turns running at once.
//! - [`max_connections`](Builder::max_connections) (descriptor limit minus
//!   64): beyond it, new connections wait in the kernel backlog, never
//!   refused or reset by the server.
//! - [`backlog`](Builder::backlog) (1024): the listen backlog, applied with
//!   `listen(2)`.
//! - [`queue_capacity`](Builder::queue_capacity) (64): connections with
//!   input waiting for a worker.
//! - [`idle_timeout`](Builder::idle_timeout) (60 s) and
//!   [`wait_timeout`](Builder::wait_timeout) (none): waits between turns.
//! - [`read_timeout`](Builder::read_timeout) and
//!   [`write_timeout`](Builder::write_timeout) (60 s): each read or write
//!   inside a turn.
//!
//! # Slow clients
//!
//! A turn holds its worker for as long as it runs, so a handler should not
//! wait inside a turn for bytes a client has not sent. [`Connection`] has
//! what a protocol needs to avoid it: [`receive`](Connection::receive)
//! takes what has arrived without blocking (end the turn with
//! [`Next::Wait`], consuming nothing, and the next turn comes when more
//! arrives); a [deadline](Connection::set_deadline) bounds every read,
//! write and wait, and gives the handler a turn when it passes, to answer
//! and close; and [`queue_output`](Connection::queue_output) finishes an
//! answer the socket cannot take at once while the connection waits. The
//! HTTP layer (feature `http`) is built on them: a request is gathered
//! without a worker, under a header timeout and minimum data rates.
//!
//! # Deadlines
//!
//! The [drain timeout](Builder::drain_timeout) (20 s by default, `None` for
//! none) bounds the drain. When it expires, or on
//! [`ShutdownHandle::force`] (the second Ctrl-C), every remaining connection
//! is shut down in both directions so blocked reads and writes return, queued
//! connections are closed unserved, and the report says `forced`. A handler
//! stuck in something that is not its socket is given the [force
//! grace](Builder::force_grace), then its thread is left behind and counted,
//! so serving always returns.
//!
//! # Restarts without losing connections
//!
//! A graceful exit alone cannot make a deploy lossless: between the old
//! process closing its listener and the new one binding, connects are
//! refused. The fix is a listening socket that outlives both processes, handed
//! down by systemd or a supervisor. [`Builder::inherit_listener`] takes such a
//! socket (systemd's `LISTEN_FDS` protocol), [`Builder::systemd_notify`]
//! reports `READY=1` and `STOPPING=1` to the supervisor, and
//! [`Builder::drain_delay`] keeps serving for a while after the signal, while
//! [`Connection::is_shutting_down`] already tells readiness checks to fail,
//! for load balancers that stop sending traffic only after the signal. See
//! `examples/supervisor.rs`.
//!
//! # Platforms
//!
//! Linux (epoll), macOS and the other unix systems (`poll(2)`), and Windows
//! (`WSAPoll`, Winsock's `poll`). On Windows:
//!
//! - the wake-up sockets are connected pairs of loopback TCP sockets;
//! - the listen [backlog](Builder::backlog) stays std's (128);
//! - the default [connection maximum](Builder::max_connections) is 65536,
//!   as Windows has no descriptor limit to derive it from;
//! - [`ShutdownHandle::install_ctrl_c`] handles the console's Ctrl-C and
//!   Ctrl-Break (closing the console ends the process soon after, drained
//!   or not); there is no SIGHUP to inherit as ignored;
//! - socket activation ([`Builder::inherit_listener`]) and
//!   [`Builder::systemd_notify`] are unix only;
//! - a forced shutdown shuts every socket down, but Windows does not promise
//!   that this wakes a handler blocked reading its socket: such a handler
//!   may be left behind after the [force grace](Builder::force_grace);
//! - the server cannot tell how much of its output a client has not
//!   acknowledged, so a client that stops reading a streamed HTTP answer is
//!   cut by the [write timeout](Builder::write_timeout), not by the `http`
//!   layer's `min_response_rate`.
//!
//! # Features
//!
//! - `http`: the HTTP/1.1 layer, `graceful_server::http` (with `httparse`).
//!   Off by default.
//! - `tls`: TLS on any listener, with rustls (`Builder::tls`,
//!   `Builder::listen_tls`, `tls_config_from_pem`). Off by default.
//! - `aws-lc-rs`: the crypto provider that `tls_config_from_pem` uses,
//!   aws-lc-rs, rustls's default, which offers the post-quantum key
//!   exchange X25519MLKEM768. On by default, and nothing without `tls`;
//!   with default features off, `tls_config_from_pem` uses the provider
//!   your program installs as rustls's process default (docs/tls.md, "The
//!   provider", says why there is no `ring` option).
//!
//! # Panics in handlers
//!
//! Each turn runs inside `catch_unwind`. A panic closes that connection, is
//! counted in [`Report::panicked`], and the worker goes on serving. (The
//! panic message is still printed by the process's panic hook; install your
//! own with [`std::panic::set_hook`] to change that.)
//!
//! # Testing your handler
//!
//! Bind `127.0.0.1:0`, [`spawn`](Server::spawn), talk to
//! [`local_addr`](RunningServer::local_addr) with a client that has read and
//! write timeouts, then shut down and check the report. The report's
//! [`outcomes`](Report::outcomes) always add up to
//! [`accepted`](Report::accepted).
#![warn(missing_docs)]
// `unsafe` only in `sys/`, for foreign calls, and in `systemd.rs` for the
// one call of `sys::adopt_inherited`: only there is it known that an
// inherited descriptor is the process's to own.
#![deny(unsafe_code)]

mod acceptor;
mod builder;
mod config;
mod connection;
mod drain;
mod error;
mod event;
mod handoff;
#[cfg(feature = "http")]
pub mod http;
mod input;
mod lifecycle;
mod listener;
#[cfg(feature = "log")]
mod logging;
mod outcome;
mod parking;
mod pool;
mod push;
mod readiness;
mod registry;
mod report;
mod server;
mod shutdown;
mod sys;
mod systemd;
mod tls;
mod wake;

pub use builder::{raise_descriptor_limit, Builder};
pub use connection::{Connection, Handler, Next, Protocol};
pub use error::Error;
pub use event::Event;
pub use listener::{Addr, Stream};
pub use outcome::Outcome;
pub use push::{PushError, Pusher};
pub use report::{Report, Stats};
pub use server::{RunningServer, Server, StatsHandle};
pub use shutdown::{ForceReason, ShutdownHandle, Trigger};
#[cfg(feature = "tls")]
pub use tls::config_from_pem as tls_config_from_pem;

/// The TLS crate whose [`ServerConfig`](rustls::ServerConfig)
/// [`Builder::tls`] takes, re-exported so that you can build one with the
/// same version (feature `tls`).
#[cfg(feature = "tls")]
pub use rustls;

/// The channel crate whose [`Receiver`](crossbeam_channel::Receiver)
/// [`ShutdownHandle::receiver`] returns, re-exported so that you can
/// `select!` over it with the same version.
pub use crossbeam_channel;

// The handles are promised to be shareable across threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<ShutdownHandle>();
    send_sync::<StatsHandle>();
    send_sync::<Report>();
    send_sync::<Stats>();
    send_sync::<Error>();
    send_sync::<Server>();
    send_sync::<RunningServer>();
    send_sync::<Builder>();
};

/// The README's examples, compiled and run as doc tests so they cannot rot
/// (with the `websocket` feature, which implies `http`: some of them use
/// both).
#[cfg(all(doctest, feature = "websocket"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
