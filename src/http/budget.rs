//! The server-wide budget for gathered requests
//! ([`Limits::gathered_total`]), and where a body goes past it: into the
//! kernel's buffers, not the process's.
//!
//! Gathering a body before the closure runs is what lets a slow client
//! cost no worker, but it costs the process memory: a client that sends
//! most of a 64 KiB body and stalls holds a 64 KiB buffer until its
//! deadline, and enough such clients hold gigabytes that the kernel's own
//! limits on TCP memory never see. So every gathered request reserves its
//! size (head and body) from one budget for the server; past it, a new
//! body is left where it arrives. On TCP the connection then waits,
//! holding no worker, until the kernel holds all of the body: the
//! socket's receive low-water mark (`SO_RCVLOWAT`) is set to what is still
//! to come, so that readiness does not report the socket until then, and
//! the closure reads the body from the socket at once. Where that cannot
//! be done (TLS, whose records the kernel cannot count in plaintext; Unix
//! sockets, whose readiness ignores the mark; Windows, which has none), or
//! when the kernel reports the socket readable below the mark (its buffer
//! cannot hold the rest, or memory is short), the closure reads the body
//! as it arrives, as it reads a large one.
//!
//! # Atomics
//!
//! The budget is one counter of reserved bytes, and it guards no other
//! memory: `Relaxed` is enough. A reservation is a compare-and-swap that
//! never takes the counter past the limit, so the limit holds at every
//! moment; a release is a subtraction of what was added.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::conversation::earliest;
use super::limits::Limits;
use super::transport::Transport;

/// The bytes reserved by requests being gathered, across the server.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    /// The sum of every live [`Reservation`]: never above the limit the
    /// last one was reserved under.
    held: AtomicU64,
}

impl Budget {
    /// Reserves `bytes`, if that keeps what is held within `limit`.
    pub(crate) fn reserve(self: &Arc<Self>, bytes: u64, limit: u64) -> Option<Reservation> {
        let mut held = self.held.load(Ordering::Relaxed);
        loop {
            let after = held.checked_add(bytes).filter(|&after| after <= limit)?;
            match self
                .held
                .compare_exchange_weak(held, after, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    return Some(Reservation {
                        budget: Arc::clone(self),
                        bytes,
                    })
                }
                Err(now) => held = now,
            }
        }
    }

    /// What is reserved now.
    #[cfg(test)]
    pub(crate) fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }
}

/// Bytes reserved from a [`Budget`], given back when dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<Budget>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// How the body of a request whose head is complete arrives.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Gather it into the connection's buffer (the budget has room, or it
    /// is being gathered already).
    Gather,
    /// Call the closure now: it reads the body from the socket (all of it
    /// is there, or waiting in the kernel is not possible).
    Stream,
    /// Wait, holding no worker, for the kernel to hold the rest.
    Wait,
    /// The body did not arrive in time: answer `408`.
    Late(&'static str),
}

/// Decides how the body of a request arrives: `head` bytes of head and
/// `whole` with its body, of which `io.buffered()` holds the start. Sets
/// the connection's deadline for a wait.
pub(crate) fn admit(
    io: &mut dyn Transport,
    budget: &Arc<Budget>,
    limits: &Limits,
    head: usize,
    whole: usize,
) -> Admission {
    let conversation = io.conversation();
    if conversation.reservation.is_some() {
        return Admission::Gather;
    }
    let waited = conversation.in_kernel.take();
    match waited {
        None => {
            let reserved = budget.reserve(whole as u64, limits.gathered_total);
            if reserved.is_some() {
                io.conversation().reservation = reserved;
                return Admission::Gather;
            }
        }
        // Back from a wait: the closure's reads must not wait for the
        // mark. If this fails, the socket is broken, which the reads say.
        Some(_) => {
            io.set_input_low_water(1);
        }
    }
    let buffered = io.buffered().len();
    let Some(unread) = io.unread_input() else {
        return Admission::Stream;
    };
    let arrived = buffered.saturating_add(unread);
    if arrived >= whole {
        // All there: the closure reads it at once.
        return Admission::Stream;
    }
    let now = Instant::now();
    let rate = limits.min_body_rate;
    let body_deadline = match waited {
        // Woken before the deadline, below the mark, with more arrived:
        // the kernel cannot hold the rest (its buffer is full, or its
        // memory short), or the client has gone. The closure reads what
        // comes, or finds out.
        Some(before) if !io.is_past_deadline() && arrived > before => return Admission::Stream,
        // Woken before the deadline with nothing new: a stale report
        // (edge-triggered readiness, or the mark lowered above). Wait
        // again, to the same deadline.
        Some(_) if !io.is_past_deadline() => io.deadline(),
        // At the deadline: what arrived meanwhile buys more time at the
        // rate, as each byte of a gathered body does.
        Some(before) => {
            let more = rate.and_then(|rate| rate.allowance(arrived.saturating_sub(before) as u64));
            io.deadline()
                .zip(more)
                .and_then(|(at, more)| at.checked_add(more))
        }
        // The body's time starts now, with credit for what is there, as a
        // gathered body's does.
        None => rate.and_then(|rate| rate.deadline(now, arrived.saturating_sub(head) as u64)),
    };
    let request_deadline = io.conversation().request_deadline(limits);
    let deadline = earliest(body_deadline, request_deadline);
    if deadline.is_some_and(|deadline| now >= deadline) {
        return Admission::Late(
            if request_deadline.is_some_and(|deadline| now >= deadline) {
                "request not received within the request timeout"
            } else {
                "request body slower than the minimum body rate"
            },
        );
    }
    if !io.set_input_low_water(whole - buffered) {
        return Admission::Stream;
    }
    io.conversation().in_kernel = Some(arrived);
    io.set_deadline(deadline);
    Admission::Wait
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stay_within_the_limit_and_are_given_back() {
        let budget = Arc::new(Budget::default());
        let a = budget.reserve(600, 1000).expect("room for 600");
        assert!(budget.reserve(500, 1000).is_none(), "1100 is over");
        let b = budget.reserve(400, 1000).expect("exactly at the limit");
        assert_eq!(budget.held(), 1000);
        drop(a);
        assert_eq!(budget.held(), 400);
        assert!(budget.reserve(u64::MAX, u64::MAX).is_none(), "no overflow");
        drop(b);
        assert_eq!(budget.held(), 0);
        assert!(budget.reserve(1, 0).is_none());
        assert!(budget.reserve(0, 0).is_some());
    }
}
