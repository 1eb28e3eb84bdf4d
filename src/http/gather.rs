//! Gathering a request while the connection waits: its head, and a small
//! body, taken from what has arrived without blocking, across as many turns
//! as the client needs.
//!
//! Each turn takes what the socket holds and looks at the buffer. If the
//! request is not all there, the turn ends with the connection waiting
//! (holding no worker) and the bytes left in its buffer; the server calls
//! again when more arrive, or when the request's deadline passes. The
//! deadline is the connection's own: the header timeout from the first
//! byte of the head, then, for a gathered body, the minimum body rate from
//! the end of the head; never past the whole request's time budget from
//! the head's first byte. A body is gathered within the server's budget
//! for gathered requests; past it, it waits in the kernel (`budget.rs`).

use std::io;
use std::sync::Arc;
use std::time::Instant;

use super::body::Framing;
use super::budget::{admit, Admission, Budget};
use super::conversation::earliest;
use super::head::{parse_head, Head, Parsed, Refusal};
use super::limits::Limits;
use super::transport::Transport;
use crate::listener::is_hang_up;

/// What the input holds so far.
#[derive(Debug)]
pub(crate) enum Gathered {
    /// A request to serve, and when it was found complete: its head is
    /// consumed; its body follows in the buffer (all of it, if small) or on
    /// the socket.
    Request(Head, Instant),
    /// Part of a request: wait for more, until the connection's deadline.
    Partial,
    /// Nothing of a request (between requests): wait idle.
    Nothing,
    /// The client closed the connection before sending a request.
    Closed,
    /// Bad input, to answer before closing.
    Refused(Refusal),
    /// The request did not arrive within its deadline: answer `408`, close.
    Late(&'static str),
}

/// What taking more input gave.
enum Took {
    More,
    Eof,
    Nothing,
}

/// Takes what has arrived, so that at most `limit` bytes are buffered.
fn take(io: &mut dyn Transport, limit: usize) -> io::Result<Took> {
    loop {
        return match io.receive(limit) {
            Ok(0) => Ok(Took::Eof),
            Ok(_) => Ok(Took::More),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Took::Nothing),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
    }
}

/// The bytes of the body to gather before the handler runs, if any.
fn body_to_gather(head: &Head, limits: &Limits) -> Option<usize> {
    match head.framing {
        // A client waiting for `100 Continue` sends nothing until the
        // handler reads.
        Framing::Length(length) if length <= limits.gathered_body && !head.expect_continue => {
            usize::try_from(length).ok()
        }
        _ => None,
    }
}

/// Sets the deadline of a body being gathered, from the minimum body rate:
/// the body's time starts when its head completes (`started`: during this
/// turn, or it was buffered whole), and every byte that arrives buys
/// `1 / rate` more, as a streamed body's does. `length` is the head's, and
/// `seen` what the buffer held when the turn began (all counted then).
/// The whole request's deadline bounds it too.
fn pace_body(io: &mut dyn Transport, limits: &Limits, started: bool, length: usize, seen: usize) {
    let request_deadline = io.conversation().request_deadline(limits);
    let Some(rate) = limits.min_body_rate else {
        // Set once, when the body starts; it does not move.
        if started {
            io.set_deadline(request_deadline);
        }
        return;
    };
    let buffered = io.buffered().len();
    let deadline = if started {
        rate.deadline(Instant::now(), (buffered - length) as u64)
    } else {
        let more = rate.allowance(buffered.saturating_sub(seen) as u64);
        io.deadline()
            .zip(more)
            .and_then(|(at, more)| at.checked_add(more))
    };
    io.set_deadline(earliest(deadline, request_deadline));
}

/// Why a request is late: its whole time ran out, or `otherwise`.
fn late(io: &mut dyn Transport, limits: &Limits, otherwise: &'static str) -> Gathered {
    let request_deadline = io.conversation().request_deadline(limits);
    if request_deadline.is_some_and(|deadline| Instant::now() >= deadline) {
        return Gathered::Late("request not received within the request timeout");
    }
    Gathered::Late(otherwise)
}

/// Looks at what has arrived, taking more as long as the socket has it. A
/// body is gathered within the server's `budget`, and past it left in the
/// kernel (see `budget.rs`).
///
/// # Errors
///
/// The connection failed.
pub(crate) fn gather(
    io: &mut dyn Transport,
    limits: &Limits,
    budget: &Arc<Budget>,
) -> io::Result<Gathered> {
    // What an earlier turn already looked at: a head complete beyond it
    // was completed by this turn's input.
    let seen = io.buffered().len();
    loop {
        match parse_head(io.buffered(), limits) {
            Parsed::Refused(refusal) => return Ok(Gathered::Refused(refusal)),
            Parsed::Blank => match take(io, limits.max_head) {
                Ok(Took::More) => {}
                // Closed or reset between requests: how keep-alive ends
                // (wrk resets its idle connections at the end of a run).
                Ok(Took::Eof) => return Ok(Gathered::Closed),
                Err(e) if is_hang_up(&e) => return Ok(Gathered::Closed),
                Err(e) => return Err(e),
                Ok(Took::Nothing) => {
                    // Only empty lines: nothing to keep.
                    let blank = io.buffered().len();
                    io.consume(blank);
                    return Ok(Gathered::Nothing);
                }
            },
            Parsed::Partial => {
                if io.deadline().is_none() {
                    // The head's first byte is here: its time starts, and
                    // the whole request's.
                    let started = io.conversation().head_started();
                    let header_deadline = started.checked_add(limits.header_timeout);
                    let request_deadline = io.conversation().request_deadline(limits);
                    io.set_deadline(earliest(header_deadline, request_deadline));
                }
                match take(io, limits.max_head)? {
                    Took::More => {}
                    // Hung up in the head; the client may still read why.
                    Took::Eof => return Ok(Gathered::Refused(Refusal::new(400))),
                    Took::Nothing if io.is_past_deadline() => {
                        let why = "request head not received within the header timeout";
                        return Ok(late(io, limits, why));
                    }
                    Took::Nothing => return Ok(Gathered::Partial),
                }
            }
            Parsed::Complete(head, length) => {
                // A head that arrived whole: its time starts now.
                let now = Instant::now();
                io.conversation().begin(now);
                let Some(body) = body_to_gather(&head, limits) else {
                    io.set_deadline(None);
                    io.consume(length);
                    return Ok(Gathered::Request(head, now));
                };
                let whole = length.saturating_add(body);
                if io.buffered().len() >= whole {
                    io.set_deadline(None);
                    io.consume(length);
                    return Ok(Gathered::Request(head, now));
                }
                match admit(io, budget, limits, length, whole) {
                    Admission::Gather => {}
                    Admission::Stream => {
                        io.set_deadline(None);
                        io.consume(length);
                        return Ok(Gathered::Request(head, now));
                    }
                    Admission::Wait => return Ok(Gathered::Partial),
                    Admission::Late(why) => return Ok(Gathered::Late(why)),
                }
                match take(io, whole)? {
                    Took::More => {}
                    Took::Eof => return Ok(Gathered::Refused(Refusal::new(400))),
                    Took::Nothing => {
                        let started = length > seen || io.deadline().is_none();
                        pace_body(io, limits, started, length, seen);
                        if io.is_past_deadline() {
                            let why = "request body slower than the minimum body rate";
                            return Ok(late(io, limits, why));
                        }
                        return Ok(Gathered::Partial);
                    }
                }
            }
        }
    }
}
