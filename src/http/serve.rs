//! Serving one request: gather it, call the handler, write the response,
//! and decide what the connection does next.
//!
//! One call serves at most one request, and leaves whatever follows it (a
//! pipelined request) in the connection's buffer: the server calls again
//! when there is more input, and pipelined requests are answered in order
//! without anything special being done for them. A request not all there
//! yet ends the call early, its bytes kept for the next one.

use std::io::{self, Write};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use super::access::{self, Line};
use super::body::{Body, Failure};
use super::budget::Budget;
use super::gather::{gather, Gathered};
use super::head::Refusal;
use super::limits::{Limits, MinRate};
use super::request::{Request, Version};
use super::response::Response;
use super::takeover::Switch;
use super::transport::Transport;
use super::write::{write_response_recorded, Answering, Output, Sent, Written};

/// A body the handler left unread is read and thrown away after it returns,
/// to keep the connection, if that takes at most this many bytes; a larger
/// rest costs less as a new connection than as bytes read for nothing.
pub(crate) const DRAIN_MAX: u64 = 64 * 1024;

/// What the connection does after a call.
#[derive(Debug)]
pub(crate) enum Served {
    /// Wait idle for the next request: a response went out and the
    /// connection stays open, or nothing of a request has arrived.
    Idle,
    /// Part of a request has arrived: wait for the rest, until the
    /// connection's deadline.
    Partial,
    /// Close the connection.
    Close,
    /// The response's head is sent and the connection switches to another
    /// protocol (an event stream, a WebSocket).
    Switch(Switch),
}

/// Switches compare by their kind alone (for tests).
impl PartialEq for Served {
    fn eq(&self, other: &Served) -> bool {
        match (self, other) {
            (Served::Switch(a), Served::Switch(b)) => a.kind == b.kind,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

/// Serves one request from `io` with `app`, once it has all arrived.
///
/// `Ok(Served::Close)` covers every way a conversation ends normally: the
/// client closed before sending anything (nothing is written), a bad
/// request (answered, e.g. `400`), a request or response that closes the
/// connection, and a shutdown in progress.
///
/// # Errors
///
/// The connection failed (reset, or a write error), the response's body
/// reader failed, or the client was too slow (kind `TimedOut`: the request
/// did not arrive in time, and was answered `408`, or the client read the
/// response too slowly); the connection must be closed.
///
/// Every response written, the closure's or the layer's, is told to the
/// event hook ([`Event::Request`](crate::Event::Request)).
///
/// # Panics
///
/// If `app` panics, the client gets `500 Internal Server Error` and the
/// panic goes on, for the server to contain and count.
pub(crate) fn serve_request<F>(
    io: &mut dyn Transport,
    limits: &Limits,
    budget: &Arc<Budget>,
    app: &F,
) -> io::Result<Served>
where
    F: Fn(&mut Request<'_>) -> Response + ?Sized,
{
    let (head, arrived) = match gather(io, limits, budget)? {
        Gathered::Request(head, arrived) => (head, arrived),
        Gathered::Partial => return Ok(Served::Partial),
        Gathered::Nothing => return Ok(Served::Idle),
        Gathered::Closed => return Ok(Served::Close),
        Gathered::Refused(refusal) => {
            // After bad input we cannot tell where the next request would
            // start, so every refusal ends the connection.
            refuse(io, refusal, limits)?;
            return Ok(Served::Close);
        }
        Gathered::Late(why) => {
            refuse(io, Refusal::new(408), limits)?;
            return Err(io::Error::new(io::ErrorKind::TimedOut, why));
        }
    };
    let started = io.conversation().head_started();
    let request_deadline = io.conversation().request_deadline(limits);
    let peer = io.peer_addr().clone();
    let mut answering = Answering {
        version: head.version,
        head_only: head.method() == "HEAD",
        keep_alive: head.keep_alive,
    };
    let body =
        Body::new(io, head.framing, limits, head.expect_continue, arrived).until(request_deadline);
    let mut request = Request::new(head.version, head.headers, peer, body);

    // `AssertUnwindSafe`: after a panic the request is dropped unused and the
    // connection closed, so no state the panic may have broken is seen again.
    let response = match panic::catch_unwind(AssertUnwindSafe(|| app(&mut request))) {
        Ok(response) => response,
        Err(panic) => {
            let asked = request.take_head();
            drop(request);
            answering.keep_alive = false;
            // Nothing of the response has been sent (the handler cannot
            // write), so the client can still be told. Best effort: the
            // connection closes either way.
            let mut sent = Sent::default();
            let _ = write_response_recorded(
                &mut Paced::new(io, limits, arrived),
                Response::error(500),
                answering,
                &mut sent,
            );
            let line = Line::served(asked.method(), asked.target(), head.version);
            access::tell(io, line, &sent, started, false);
            // Let the panic go on to the server, which closes the connection
            // and counts it in its report.
            panic::resume_unwind(panic);
        }
    };

    let mut late = None;
    let response = match request.body().failure() {
        // The body broke its framing or its limit, or the client stalled or
        // left in it: whatever the handler made of that, the answer is the
        // layer's, and the connection cannot go on.
        Some(failure) => match failure.status() {
            Some(status) => {
                answering.keep_alive = false;
                if failure == Failure::TimedOut {
                    late = Some(failure.to_error());
                }
                Response::error(status)
            }
            // The connection is broken: nobody to answer.
            None => return Err(failure.to_error()),
        },
        None => {
            // The next request starts after this body: skip what the
            // handler left of it, if that is cheap.
            if answering.keep_alive {
                answering.keep_alive = request.body().drain(DRAIN_MAX);
            }
            response
        }
    };
    // The client's own last request, all read: see `close_politely`.
    let client_finished = !head.keep_alive && request.body().is_done();
    let asked = request.take_head();
    drop(request);
    io.conversation().client_finished = client_finished;

    // The last request a connection may carry, by number or by age:
    // rotation, so that clients move to other servers now and then.
    if answering.keep_alive && io.conversation().must_rotate(limits) {
        answering.keep_alive = false;
    }
    // Asked after the handler: a shutdown that started during a slow
    // request must show in its response. Requests the client has already
    // sent behind this one are answered too, the last with the close.
    if io.is_shutting_down() && answering.keep_alive {
        answering.keep_alive = more_input(io, limits);
    }
    let mut sent = Sent::default();
    let written = write_response_recorded(
        &mut Paced::new(io, limits, arrived),
        response,
        answering,
        &mut sent,
    );
    release_deadline(io);
    io.conversation().finish();
    // A connection switched to another protocol (an event stream, a
    // WebSocket) carries no more requests.
    let kept = late.is_none()
        && written
            .as_ref()
            .is_ok_and(|written| written.keep_alive && written.switch.is_none());
    access::tell(
        io,
        Line::served(asked.method(), asked.target(), head.version),
        &sent,
        started,
        kept,
    );
    asked.recycle();
    if let Some(late) = late {
        return Err(late);
    }
    Ok(match written? {
        Written {
            switch: Some(switch),
            ..
        } => Served::Switch(switch),
        Written {
            keep_alive: true, ..
        } => Served::Idle,
        Written { .. } => Served::Close,
    })
}

/// Answers a request refused before the handler ran, and tells the hook.
fn refuse(io: &mut dyn Transport, refusal: Refusal, limits: &Limits) -> io::Result<()> {
    let answering = Answering {
        version: Version::Http11,
        head_only: refusal.head_only,
        keep_alive: false,
    };
    let started = io.conversation().head_started();
    let mut sent = Sent::default();
    let written = write_response_recorded(
        &mut Paced::new(io, limits, Instant::now()),
        Response::error(refusal.status),
        answering,
        &mut sent,
    );
    release_deadline(io);
    io.conversation().finish();
    // The refused head is still in the buffer: nothing of it was consumed.
    access::tell(io, Line::refused(io.buffered()), &sent, started, false);
    written.map(drop)
}

/// Clears the deadline after a response, unless it bounds the part of the
/// response still queued.
fn release_deadline(io: &mut dyn Transport) {
    if !io.has_queued_output() {
        io.set_deadline(None);
    }
}

/// Whether the client has sent more than this request already: buffered,
/// or waiting in the socket now.
fn more_input(io: &mut dyn Transport, limits: &Limits) -> bool {
    !io.buffered().is_empty() || io.receive(limits.max_head).is_ok_and(|n| n > 0)
}

/// The connection as the response's writer: once the socket's buffers are
/// full, the client must keep taking the response at the minimum rate, or
/// it is cut, so that a client that does not read cannot hold the worker.
///
/// What the client has taken is measured as what it has *acknowledged*
/// (written minus what is still queued in the kernel), in windows of the
/// rate's grace from the moment the send buffer first fills: in each, the
/// client must take `bytes_per_second * grace`. Counting what the kernel
/// accepted instead would credit the few megabytes it takes at once,
/// whether the client reads or not, and let a client that never reads hold
/// the worker for hours. Where the system does not say what is queued, the
/// server's write timeout bounds each write instead.
struct Paced<'a> {
    io: &'a mut dyn Transport,
    /// A moment not after the first write: a deadline then makes a write
    /// take what the socket takes at once, and wait for nothing.
    now: Instant,
    rate: Option<MinRate>,
    sent: u64,
    /// The start of the current window, and what the client had
    /// acknowledged then; `None` until the send buffer first fills.
    window: Option<(Instant, u64)>,
}

impl<'a> Paced<'a> {
    /// The writer of a response on `io`; `now` is a moment not after its
    /// first write (a clock read taken during the request, reused).
    fn new(io: &'a mut dyn Transport, limits: &Limits, now: Instant) -> Paced<'a> {
        // Whatever bounded the request does not bound its response.
        io.set_deadline(None);
        Paced {
            io,
            now,
            rate: limits.min_response_rate,
            sent: 0,
            window: None,
        }
    }

    /// What the client has acknowledged so far, if the system tells.
    fn delivered(&self) -> Option<u64> {
        Some(self.sent.saturating_sub(self.io.unsent_output()?))
    }
}

fn too_slow() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the client read the response slower than the minimum response rate",
    )
}

impl Write for Paced<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(rate) = self.rate else {
            return self.io.write(buf);
        };
        let length = rate.window();
        loop {
            // Until the buffer fills, a write that would wait fails at once
            // (one system call either way); then it may wait until the end
            // of the window.
            let deadline = match self.window {
                None => Some(Instant::now()),
                Some((start, _)) => start.checked_add(length),
            };
            self.io.set_deadline(deadline);
            match self.io.write(buf) {
                Ok(n) => {
                    self.sent += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            match (self.window, self.delivered()) {
                // The system does not say what the client took: the write
                // timeout alone bounds the wait.
                (_, None) => {
                    self.io.set_deadline(None);
                    let n = self.io.write(buf)?;
                    self.sent += n as u64;
                    return Ok(n);
                }
                (None, Some(delivered)) => self.window = Some((now, delivered)),
                (Some((start, then)), Some(delivered)) => {
                    if start.checked_add(length).is_some_and(|end| now >= end) {
                        if delivered.saturating_sub(then) < rate.bytes_in(length) {
                            return Err(too_slow());
                        }
                        self.window = Some((now, delivered));
                    }
                }
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.io.flush()
    }
}

/// An answer held in memory goes out without waiting for the client: what
/// the socket takes now is written, and the rest is queued on the
/// connection, which the server finishes sending while the connection
/// waits, holding no worker. It must all go by the time a client at the
/// minimum rate would have taken it.
impl Output for Paced<'_> {
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some(rate) = self.rate else {
            // No bound for a queued answer: write it here, each write
            // bounded by the server's write timeout.
            return self.io.write_all(bytes);
        };
        // A deadline already passed: each write takes what the socket takes
        // at once, or fails.
        self.io.set_deadline(Some(self.now));
        let mut at = 0;
        while at < bytes.len() {
            match self.io.write(&bytes[at..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => at += n,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.sent += at as u64;
        if at < bytes.len() {
            let rest = &bytes[at..];
            self.io.queue_output(rest);
            self.io
                .set_deadline(rate.deadline(Instant::now(), rest.len() as u64));
        }
        Ok(())
    }
}
