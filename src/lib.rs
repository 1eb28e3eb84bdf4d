//! A synchronous, std-only threaded TCP server that shuts down gracefully.
//!
//! Node's recipe for a graceful exit is: on SIGINT, call `server.close()`,
//! which stops accepting while the existing connections are still served, and
//! exit once the last one has ended. This crate does the same with plain
//! threads (a nonblocking [`std::net::TcpListener`], one acceptor thread, a
//! fixed pool of workers fed over a bounded channel) and fixes the recipe's
//! flaws: connections waiting in the accept backlog are served instead of
//! reset, idle keep-alive connections cannot keep the server alive for ever,
//! the drain has a deadline, a second Ctrl-C forces, a panicking handler
//! costs one connection, and the end is a [`Report`] of what happened to
//! every connection.
//!
//! # Quick start
//!
//! A handler gets each connection's [`TcpStream`](std::net::TcpStream) and a
//! [`Connection`] context, on a worker thread:
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::TcpStream;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = graceful_server::Server::builder("127.0.0.1:0").workers(4).build()?;
//! let addr = server.local_addr();
//! let running = server.spawn(|mut stream, _conn| {
//!     let mut buf = [0; 64];
//!     let n = stream.read(&mut buf)?;
//!     stream.write_all(&buf[..n])
//! })?;
//!
//! let mut client = TcpStream::connect(addr)?;
//! client.write_all(b"hello")?;
//! let mut reply = [0; 5];
//! client.read_exact(&mut reply)?;
//! assert_eq!(&reply, b"hello");
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
//! # How shutdown works
//!
//! Shutdown starts with [`ShutdownHandle::shutdown`] (or the first Ctrl-C, if
//! you [opted in](ShutdownHandle::install_ctrl_c)). Then:
//!
//! 1. **Stop accepting.** The acceptor wakes at once (it waits on the
//!    shutdown channel, never in a bare `sleep`), accepts every connection
//!    already waiting in the kernel backlog, and closes the listener. New
//!    connects are refused from then on; none that completed its handshake
//!    before is reset.
//! 2. **Drain.** Every accepted connection, running or queued, is served to
//!    its end. Connections marked [idle](Connection::idle) are closed (after
//!    the [idle grace](Builder::idle_grace)).
//! 3. **Finish.** The moment the last worker is done, serving returns the
//!    [`Report`]. Completion is signalled by a channel disconnecting, not
//!    polled, so this takes microseconds.
//!
//! # Ctrl-C
//!
//! The library never installs a signal handler by itself. Call
//! [`ShutdownHandle::install_ctrl_c`] to have the first SIGINT, SIGTERM or
//! SIGHUP start a graceful shutdown and the second one force it. It returns an
//! error, rather than panicking, if the process already has a handler.
//!
//! ```no_run
//! # fn main() -> Result<(), graceful_server::Error> {
//! let server = graceful_server::Server::builder("127.0.0.1:7878").build()?;
//! server.shutdown_handle().install_ctrl_c()?;
//! let report = server.serve(|_stream, _conn| Ok(()))?;
//! eprintln!("{report}");
//! # Ok(())
//! # }
//! ```
//!
//! # Idle connections
//!
//! A protocol with keep-alive spends most of a connection's life waiting for
//! the next request. Waiting for such connections to end would keep the
//! server up for ever, and cutting one in the middle of a request loses it. So
//! a handler marks the time it spends waiting with [`Connection::idle`]: at
//! shutdown, idle connections are closed (their pending `read` returns end of
//! file), while busy ones finish their request. A handler should also check
//! [`Connection::is_shutting_down`] after each request and, if true, answer
//! with its protocol's "closing" marker and return.
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
//! # Panics in handlers
//!
//! Each handler runs inside `catch_unwind`. A panic closes that connection,
//! is counted in [`Report::panicked`], and the worker goes on serving. (The
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
// `unsafe` only in `sys.rs`, for foreign calls and adopting a descriptor.
#![deny(unsafe_code)]

#[cfg(not(unix))]
compile_error!("graceful-server needs a Unix system (epoll or poll(2), Unix sockets)");

mod acceptor;
mod connection;
mod drain;
mod error;
mod pool;
mod registry;
mod report;
mod server;
mod shutdown;
mod sys;
mod systemd;
mod wake;

pub use connection::{Connection, Handler, Next};
pub use error::Error;
pub use report::Report;
pub use server::{Builder, RunningServer, Server};
pub use shutdown::ShutdownHandle;

/// The README's examples, compiled and run as doc tests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
