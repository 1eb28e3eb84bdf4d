//! The acceptor: one thread that waits for readiness of the listeners and
//! its wake-up socket, feeds the workers, and keeps the time.
//!
//! - **Accept.** When a listener is readable it accepts until `WouldBlock`
//!   and queues the new connections for the workers. When the job channel is
//!   full, or the [connection maximum](crate::Builder::max_connections) is
//!   reached, it stops watching the listeners, so new connections wait in
//!   the kernel backlog (backpressure) instead of being refused.
//! - **Time.** Parked connections wait in the [parking](crate::parking),
//!   where free workers pick them up when they turn ready; their idle, wait
//!   and own deadlines are kept on a coarse timer here.
//! - **Stop.** At shutdown it accepts what is already in the kernel backlog
//!   (so that no connection whose handshake completed is reset), closes the
//!   listeners (new connects are refused), closes parked idle connections
//!   when the idle grace ends, and exits once the last connection has ended,
//!   or at once when forced.
//!
//! It sleeps without a timeout unless a timer is due: an idle server makes
//! no periodic wake-ups. Shutdown, an earlier timer and a worker freeing a
//! slot in the channel wake it through its wake-up socket.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};

use crate::connection::{Connection, IoTimeouts};
use crate::error::Error;
use crate::event::Event;
use crate::lifecycle::{Life, Waiting};
use crate::listener::{Addr, Listener, Stream};
use crate::parking::TIMER_SLACK;
use crate::pool::Pool;
use crate::registry::Registry;
use crate::shutdown::ShutdownState;
use crate::sys::{self, Interest, Poller, Readable};
use crate::tls::ListenerTls;
use crate::wake::WakeReceiver;

/// The first and the last wait when accepting fails for lack of resources.
/// The cap bounds how long a recovered server can stay deaf; Go's
/// `http.Server` uses 5 ms to 1 s for the same purpose.
const MIN_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_millis(200);

/// The most connections accepted in one go before the acceptor looks at its
/// other work (timers, wake-ups, the other listeners).
const ACCEPT_BATCH: usize = 128;

/// The most connections the final sweep takes. The kernel backlog holds at
/// most `somaxconn` (4096 on current Linux), so this only stops a flood that
/// arrives faster than it can be accepted from delaying the close forever.
const SWEEP_LIMIT: usize = 8192;

/// Tokens of the acceptor's own descriptors, from the top.
const WAKE: u64 = u64::MAX;

/// The token of the listener at `index`.
fn listener_token(index: usize) -> u64 {
    WAKE - 1 - index as u64
}

/// Everything the acceptor thread needs.
pub(crate) struct Acceptor {
    /// Taken by the loop when it starts; at least one, each with its TLS.
    pub(crate) listeners: Vec<(Listener, ListenerTls)>,
    /// A connection accepted before the loop started (while checking an
    /// inherited listener); served first.
    pub(crate) first: Vec<(Stream, Addr, ListenerTls)>,
    pub(crate) poller: Poller,
    pub(crate) wake: WakeReceiver,
    pub(crate) jobs: Sender<Life>,
    pub(crate) pool: Arc<Pool>,
    pub(crate) signal: Arc<ShutdownState>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) max_connections: usize,
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
    /// Whether new connections wait as idle (see
    /// [`Handler::new_connections_are_idle`](crate::Handler::new_connections_are_idle)).
    pub(crate) new_waiting: Waiting,
    /// Set when the listeners are dropped; the report's `stop_accepting`.
    pub(crate) listener_closed: Arc<OnceLock<Instant>>,
    /// Dropped when the acceptor exits; see [`crate::pool`].
    pub(crate) done: Sender<()>,
}

/// What to do after a failed `accept`.
#[derive(Debug, PartialEq, Eq)]
enum AcceptFailure {
    /// A problem of that one connection (aborted before we took it, reset,
    /// interrupted): take the next one.
    Connection,
    /// Out of descriptors, buffers or memory, or an error we do not know:
    /// retrying at once would spin, so wait and retry.
    Resources,
}

fn classify(error: &io::Error) -> AcceptFailure {
    // `raw_os_error`, because std reports EMFILE and ENFILE as an
    // uncategorized kind.
    if let Some(code) = error.raw_os_error() {
        if sys::RESOURCE_ERRORS.contains(&code) {
            return AcceptFailure::Resources;
        }
    }
    match error.kind() {
        io::ErrorKind::ConnectionAborted
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionRefused
        | io::ErrorKind::Interrupted
        | io::ErrorKind::PermissionDenied
        | io::ErrorKind::TimedOut => AcceptFailure::Connection,
        _ => AcceptFailure::Resources,
    }
}

/// One listener, as the loop watches it.
struct Listening {
    socket: Listener,
    /// Whether its connections speak TLS.
    tls: ListenerTls,
    /// Whether the poller watches it.
    watched: bool,
    /// Whether the last wait reported it readable.
    ready: bool,
}

/// The acceptor's state while it runs.
struct Loop {
    a: Acceptor,
    /// Emptied, all at once, when accepting stops.
    listeners: Vec<Listening>,
    /// When the next parked connection's time is up.
    next_timer: Option<Instant>,
    /// Connections for a full channel, in order.
    ready: VecDeque<Life>,
    /// Accepting pauses until then after a resource error.
    backoff: Option<(Instant, Duration)>,
    events: Vec<Readable>,
}

impl Acceptor {
    /// Starts the `acceptor` thread.
    pub(crate) fn spawn(self) -> Result<(), Error> {
        let name = "acceptor";
        thread::Builder::new()
            .name(name.into())
            .spawn(move || self.run())
            // Never joined: like the workers, it reports its exit by
            // dropping `done`.
            .map(drop)
            .map_err(|source| Error::Spawn {
                thread: name.into(),
                source,
            })
    }

    fn run(mut self) {
        let first = std::mem::take(&mut self.first);
        let listeners = std::mem::take(&mut self.listeners)
            .into_iter()
            .map(|(socket, tls)| Listening {
                socket,
                tls,
                watched: false,
                ready: false,
            })
            .collect();
        let mut state = Loop {
            listeners,
            a: self,
            next_timer: None,
            ready: VecDeque::new(),
            backoff: None,
            events: Vec::with_capacity(256),
        };
        for (stream, peer, tls) in first {
            // Accepted before the listener had its timeouts.
            state.admit(stream, peer, &tls, false);
        }
        state.run();
    }
}

impl Loop {
    fn run(mut self) {
        let registered = self
            .a
            .poller
            .add(self.a.wake.as_source(), WAKE, Interest::Level);
        if registered.is_err() {
            // Without its wake-up socket the acceptor cannot learn of
            // shutdown; stop serving at once rather than hang.
            self.a.signal.force();
        }
        loop {
            if self.a.signal.is_forced() {
                break;
            }
            if self.a.signal.is_accepting_stopped() && !self.listeners.is_empty() {
                self.stop_accepting();
            }
            for index in 0..self.listeners.len() {
                if self.listeners[index].watched && self.listeners[index].ready {
                    self.accept_batch(index);
                }
            }
            self.expire_timers();
            self.flush();
            if self.finished() {
                break;
            }
            self.watch_listeners();
            let timeout = self.next_timeout();
            if self.a.poller.wait(&mut self.events, timeout).is_err() {
                // A wait that fails (out of memory) is retried after a pause
                // rather than spun on.
                thread::sleep(MIN_BACKOFF);
            }
            for listening in &mut self.listeners {
                listening.ready = false;
            }
            let first_listener = listener_token(self.listeners.len().saturating_sub(1));
            for event in &self.events {
                match event.token {
                    WAKE => self.a.wake.drain(),
                    token if token >= first_listener && !self.listeners.is_empty() => {
                        let index = (WAKE - 1 - token) as usize;
                        if let Some(listening) = self.listeners.get_mut(index) {
                            listening.ready = true;
                        }
                    }
                    _ => {}
                }
            }
        }
        self.exit();
    }

    /// Whether the drain is over: not accepting, and no connection left.
    fn finished(&self) -> bool {
        if !self.listeners.is_empty() || !self.a.signal.is_accepting_stopped() {
            return false;
        }
        // Ask to be woken by the last connection's end, then look: either
        // this sees it gone, or its end sees the request.
        self.a.registry.wake_acceptor_on_finish();
        self.a.registry.open() == 0
    }

    /// Watches the listeners only while accepting is possible: below the
    /// connection maximum, with room in the job channel, not backing off.
    fn watch_listeners(&mut self) {
        if self.listeners.is_empty() {
            return;
        }
        let now = Instant::now();
        if self.backoff.is_some_and(|(until, _)| now >= until) {
            self.backoff = None;
            // Look at once: the backlogs may have waited all along.
            for listening in &mut self.listeners {
                listening.ready = true;
            }
        }
        let mut wanted = self.ready.is_empty() && self.backoff.is_none();
        if wanted && self.a.registry.open() >= self.a.max_connections {
            // Ask to be woken by the next connection's end, then look again:
            // one that ended in between is seen either way.
            self.a.registry.wake_acceptor_on_finish();
            wanted = self.a.registry.open() < self.a.max_connections;
        }
        for (index, listening) in self.listeners.iter_mut().enumerate() {
            if wanted == listening.watched {
                continue;
            }
            let source = listening.socket.as_source();
            let result = if wanted {
                self.a
                    .poller
                    .add(source, listener_token(index), Interest::Level)
            } else {
                self.a.poller.remove(source)
            };
            if result.is_ok() {
                listening.watched = wanted;
            }
        }
    }

    fn next_timeout(&self) -> Option<Duration> {
        let now = Instant::now();
        let timer = self
            .next_timer
            .map(|at| at.checked_add(TIMER_SLACK).unwrap_or(at));
        let backoff = self.backoff.map(|(until, _)| until);
        [timer, backoff]
            .into_iter()
            .flatten()
            .min()
            .map(|at| at.saturating_duration_since(now))
    }

    /// Accepts from listener `index` until `WouldBlock`, the batch limit,
    /// the connection maximum or a full channel.
    fn accept_batch(&mut self, index: usize) {
        for _ in 0..ACCEPT_BATCH {
            if !self.ready.is_empty() || self.a.registry.open() >= self.a.max_connections {
                return;
            }
            let Some(listening) = self.listeners.get_mut(index) else {
                return;
            };
            match listening.socket.accept() {
                Ok((stream, peer)) => {
                    let tls = listening.tls.clone();
                    self.backoff = None;
                    self.admit(stream, peer, &tls, true);
                    self.flush();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    listening.ready = false;
                    return;
                }
                Err(e) => match classify(&e) {
                    AcceptFailure::Connection => self.a.registry.tell(&Event::AcceptFailed {
                        error: &e,
                        backoff: None,
                    }),
                    AcceptFailure::Resources => {
                        // The pending connection stays in the backlog until
                        // descriptors are free again. The pause is a timer
                        // of the readiness wait, so shutdown still ends it.
                        listening.ready = false;
                        let pause = self
                            .backoff
                            .map_or(MIN_BACKOFF, |(_, last)| (last * 2).min(MAX_BACKOFF));
                        self.backoff = Some((Instant::now() + pause, pause));
                        self.a.registry.tell(&Event::AcceptFailed {
                            error: &e,
                            backoff: Some(pause),
                        });
                        return;
                    }
                },
            }
        }
    }

    /// The shutdown sweep: accepts everything already waiting in every
    /// listener's kernel backlog, whatever the limits, then closes them all.
    /// New connects are refused from then on instead of hanging in a backlog
    /// nobody reads. All are swept before any is closed, so that none
    /// refuses while another still accepts.
    fn stop_accepting(&mut self) {
        let listeners = std::mem::take(&mut self.listeners);
        let accepted_before = self.a.registry.accepted();
        // Twice over when there are several: what reached the first while
        // the others were swept is taken too, just before the close.
        let passes = if listeners.len() > 1 { 2 } else { 1 };
        for listening in (0..passes).flat_map(|_| &listeners) {
            for _ in 0..SWEEP_LIMIT {
                match listening.socket.accept() {
                    Ok((stream, peer)) => self.admit(stream, peer, &listening.tls, true),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => match classify(&e) {
                        AcceptFailure::Connection => {}
                        // Out of descriptors: what is left cannot be taken.
                        AcceptFailure::Resources => break,
                    },
                }
            }
        }
        if listeners.is_empty() {
            return;
        }
        for listening in listeners {
            if listening.watched {
                let _ = self.a.poller.remove(listening.socket.as_source());
            }
            self.a.poller.forget(crate::sys::AsSource::raw_source(
                &listening.socket.as_source(),
            ));
        }
        self.record_closed();
        self.a.registry.tell(&Event::AcceptingStopped {
            swept: self.a.registry.accepted() - accepted_before,
        });
    }

    fn record_closed(&self) {
        let _ = self.a.listener_closed.set(Instant::now());
    }

    /// Prepares an accepted stream, registers it and queues it. `listened`:
    /// accepted from a listener the builder prepared (not before).
    fn admit(&mut self, stream: Stream, peer: Addr, tls: &ListenerTls, listened: bool) {
        let Ok(tls) = self.prepare(&stream, listened).and_then(|()| tls.start()) else {
            self.a.registry.reject();
            return;
        };
        let socket = Arc::new(stream);
        let id = self.a.registry.register(Arc::clone(&socket));
        let conn = Connection::new(
            socket,
            id,
            peer,
            Arc::clone(&self.a.registry),
            Arc::clone(&self.a.signal),
            IoTimeouts {
                read: self.a.read_timeout,
                write: self.a.write_timeout,
            },
            tls,
        );
        self.ready.push_back(Life::new(conn, self.a.new_waiting));
    }

    fn prepare(&self, stream: &Stream, listened: bool) -> io::Result<()> {
        // Accepted sockets inherit the listener's nonblocking mode on macOS,
        // the BSDs and Windows; handlers expect blocking I/O. Linux's
        // `accept4` (which std uses) returns a blocking socket already, so
        // the system call is saved there.
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        stream.set_nonblocking(false)?;
        // Linux copies a TCP listener's timeouts to the accepted socket.
        let inherited = listened
            && cfg!(any(target_os = "linux", target_os = "android"))
            && matches!(stream, Stream::Tcp(_));
        if inherited {
            return Ok(());
        }
        if self.a.read_timeout.is_some() {
            stream.set_read_timeout(self.a.read_timeout)?;
        }
        if self.a.write_timeout.is_some() {
            stream.set_write_timeout(self.a.write_timeout)?;
        }
        Ok(())
    }

    /// Closes parked connections whose wait timed out, and queues those
    /// whose own deadline passed, for a turn.
    fn expire_timers(&mut self) {
        let expired = self.a.pool.parking.expire(Instant::now());
        if !expired.turns.is_empty() {
            self.ready.extend(expired.turns);
        }
        // Woken by a pusher, or for their goodbye.
        if let Some(woken) = self.a.pool.parking.take_woken() {
            self.ready.extend(woken);
        }
        self.next_timer = expired.next;
    }

    /// Moves ready connections into the job channel until it is full.
    fn flush(&mut self) {
        let mut asked = false;
        let mut sent = 0;
        while let Some(life) = self.ready.pop_front() {
            match self.a.jobs.try_send(life) {
                Ok(()) => sent += 1,
                Err(TrySendError::Full(life)) => {
                    self.ready.push_front(life);
                    if asked {
                        break;
                    }
                    // Ask the next worker that takes a job to wake us, then
                    // try once more: a job taken in between would otherwise
                    // go unnoticed.
                    self.a.pool.wake_acceptor_on_space();
                    asked = true;
                }
                // Only if every worker is gone, which cannot happen while
                // the acceptor runs; close rather than lose track.
                Err(TrySendError::Disconnected(life)) => life.close_forced(),
            }
        }
        self.a.pool.set_overflow(self.ready.len());
        self.a.pool.announce(sent);
    }

    /// Leaves: when forced, closes the connections it holds (the drain
    /// closes the others: see `Drain::force`).
    fn exit(mut self) {
        self.ready.drain(..).for_each(Life::close_forced);
        self.a.pool.set_overflow(0);
        if !self.listeners.is_empty() {
            // Forced before the sweep: the listeners close unswept (no
            // `AcceptingStopped`: the force said it all).
            self.listeners.clear();
            self.record_closed();
        }
        let Acceptor {
            jobs, done, pool, ..
        } = self.a;
        // Disconnects the job channel: workers exit once it is empty, and
        // are all woken to see it. (Forced, a connection parked after this
        // is closed by its worker: parking looks at the force first.)
        drop(jobs);
        pool.release_all();
        drop(done);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exhaustion_backs_off_and_connection_errors_are_skipped() {
        for code in sys::RESOURCE_ERRORS {
            let e = io::Error::from_raw_os_error(code);
            assert_eq!(classify(&e), AcceptFailure::Resources, "error {code}");
        }
        let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(classify(&aborted), AcceptFailure::Connection);
        let interrupted = io::Error::from(io::ErrorKind::Interrupted);
        assert_eq!(classify(&interrupted), AcceptFailure::Connection);
    }

    #[test]
    fn the_native_backend_exists() {
        assert!(Poller::new(sys::Backend::native()).is_ok());
    }
}
