//! Responses that take the connection over once their head is sent: an
//! event stream ([`Request::event_stream`](super::Request::event_stream))
//! and a WebSocket ([`Request::websocket`](super::Request::websocket)).
//!
//! Such a response carries a [`Switch`]: the [`Protocol`] that serves the
//! connection's next turns instead of the HTTP layer, and the [`Gate`]
//! through which the handler's senders push output to it from any thread.
//! The layer writes the head, then [commits](Switch::commit) the switch on
//! the connection: the gate opens onto the connection's [`Pusher`], the
//! protocol takes the turns, and the connection waits mid-conversation,
//! holding no worker. A switch that is never committed (the handler
//! returned another response, the request was a `HEAD`, the head could not
//! be written) shuts its gate when dropped, so its senders are told
//! [`PushError::Closed`] instead of pushing into an HTTP conversation.
//!
//! # Order
//!
//! What goes to the client goes in the order it was given, whoever gives
//! it: every push takes the gate's lock, and so does the protocol when it
//! ends the conversation (its last words: an event stream's end, a
//! WebSocket's Close). Ending, it shuts the gate and moves the mail pushed
//! so far into the connection's output, under that lock, before writing
//! its last words: nothing pushed before them comes after them, and nothing
//! is pushed after. The lock order is gate, then mailbox, then parking
//! (the pusher's ring); nothing takes them the other way round.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::{Connection, Next, Protocol, PushError, Pusher};

/// What senders may push before the connection is switched (events sent by
/// the handler before it returns): held until the head is sent.
pub(crate) const PENDING_MAX: usize = 64 * 1024;

/// How the head of a switching response is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A body sent over time: `chunked` for HTTP/1.1, until the close for
    /// HTTP/1.0.
    Events,
    /// `101 Switching Protocols`, `Connection: Upgrade`, no body.
    #[cfg_attr(not(feature = "websocket"), allow(dead_code))]
    Upgrade,
}

/// A response's takeover of its connection, committed once its head is
/// sent.
pub(crate) struct Switch {
    pub(crate) kind: Kind,
    gate: Unopened,
    protocol: Box<dyn Protocol>,
    /// Whether the connection gets a goodbye turn at shutdown.
    goodbye: bool,
}

impl Switch {
    pub(crate) fn new(
        kind: Kind,
        gate: Arc<Gate>,
        protocol: Box<dyn Protocol>,
        goodbye: bool,
    ) -> Switch {
        Switch {
            kind,
            gate: Unopened(gate),
            protocol,
            goodbye,
        }
    }

    /// Hands `conn` to the protocol, its head sent: the gate opens (what
    /// was pushed meanwhile is queued behind the head), the protocol takes
    /// the next turns, and the connection waits for them.
    pub(crate) fn commit(self, conn: &mut Connection) -> Next {
        let Switch {
            gate,
            protocol,
            goodbye,
            ..
        } = self;
        let ending = gate.0.open(conn);
        conn.set_goodbye(goodbye);
        conn.switch_protocol(protocol);
        if ending {
            // A sender ended the conversation before it began: the
            // protocol's first turn says so.
            let _ = conn.pusher().wake();
        }
        Next::Wait
    }
}

impl fmt::Debug for Switch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Switch")
            .field("kind", &self.kind)
            .field("goodbye", &self.goodbye)
            .finish_non_exhaustive()
    }
}

/// A gate not opened yet: shut when dropped, unless opened by then.
struct Unopened(Arc<Gate>);

impl Drop for Unopened {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

/// Where senders push a switched connection's output (see the module's
/// docs).
pub(crate) struct Gate {
    phase: Mutex<Phase>,
}

enum Phase {
    /// The head is not sent yet: pushes wait here. `end`: a sender asked
    /// to end the conversation.
    Unopened { pending: Vec<u8>, end: bool },
    /// Pushes go to the connection.
    Open(Pusher),
    /// A sender asked to end the conversation: the protocol has been woken
    /// to do it, nothing more is pushed.
    Ending,
    /// The conversation is over (or never began).
    Shut,
}

impl Gate {
    pub(crate) fn new() -> Arc<Gate> {
        Arc::new(Gate {
            phase: Mutex::new(Phase::Unopened {
                pending: Vec::new(),
                end: false,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Phase> {
        // Each change under the lock is one assignment after the calls
        // that could panic: poisoning leaves a valid phase.
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `bytes` to the client, after everything pushed before.
    pub(crate) fn push(&self, bytes: &[u8]) -> Result<(), PushError> {
        let mut phase = self.lock();
        match &mut *phase {
            Phase::Unopened { end: true, .. } => Err(PushError::Closed),
            Phase::Unopened { pending, .. } => {
                if pending.len().saturating_add(bytes.len()) > PENDING_MAX {
                    return Err(PushError::Full);
                }
                pending.extend_from_slice(bytes);
                Ok(())
            }
            Phase::Open(pusher) => pusher.send(bytes),
            Phase::Ending | Phase::Shut => Err(PushError::Closed),
        }
    }

    /// Asks the protocol to end the conversation, after what was pushed
    /// before; nothing more is pushed.
    pub(crate) fn end(&self) -> Result<(), PushError> {
        let mut phase = self.lock();
        match &mut *phase {
            Phase::Unopened { end, .. } if !*end => {
                *end = true;
                Ok(())
            }
            Phase::Open(pusher) => {
                let woken = pusher.wake();
                *phase = if woken.is_ok() {
                    Phase::Ending
                } else {
                    Phase::Shut
                };
                woken
            }
            Phase::Unopened { .. } | Phase::Ending | Phase::Shut => Err(PushError::Closed),
        }
    }

    /// Whether a sender asked to end the conversation.
    pub(crate) fn is_ending(&self) -> bool {
        matches!(*self.lock(), Phase::Ending)
    }

    /// Whether pushes are refused now: the conversation is over, ending,
    /// or its connection has closed.
    pub(crate) fn is_closed(&self) -> bool {
        match &*self.lock() {
            Phase::Unopened { end, .. } => *end,
            Phase::Open(pusher) => pusher.is_closed(),
            Phase::Ending | Phase::Shut => true,
        }
    }

    /// Opens onto `conn`, whose head is sent: what was pushed meanwhile is
    /// queued. Returns whether a sender asked to end already.
    fn open(&self, conn: &mut Connection) -> bool {
        let mut phase = self.lock();
        let Phase::Unopened { pending, end } = &*phase else {
            return true;
        };
        let end = *end;
        conn.queue_timed(pending);
        *phase = if end {
            Phase::Ending
        } else {
            Phase::Open(conn.pusher())
        };
        end
    }

    /// Ends the conversation from the protocol's side, in a turn of `conn`:
    /// refuses pushes from now on, and queues what was pushed before, so
    /// that the protocol's last words come after it.
    pub(crate) fn shut(&self, conn: &mut Connection) {
        let mut phase = self.lock();
        *phase = Phase::Shut;
        // The turn this may ask for is the protocol's own: it is in it.
        let _ = conn.open_mail();
    }

    /// The switch was never committed.
    fn abandon(&self) {
        let mut phase = self.lock();
        if let Phase::Unopened { .. } = &*phase {
            *phase = Phase::Shut;
        }
    }
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = match &*self.lock() {
            Phase::Unopened { .. } => "unopened",
            Phase::Open(_) => "open",
            Phase::Ending => "ending",
            Phase::Shut => "shut",
        };
        f.debug_struct("Gate").field("phase", &phase).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_wait_for_the_head_up_to_a_bound() {
        let gate = Gate::new();
        assert_eq!(gate.push(b"early"), Ok(()));
        assert_eq!(gate.push(&vec![0; PENDING_MAX]), Err(PushError::Full));
        assert!(!gate.is_closed());
        assert_eq!(gate.end(), Ok(()));
        assert!(gate.is_closed());
        assert_eq!(gate.push(b"late"), Err(PushError::Closed));
        assert_eq!(gate.end(), Err(PushError::Closed));
    }

    #[test]
    fn an_abandoned_gate_refuses_pushes() {
        let gate = Gate::new();
        drop(Unopened(Arc::clone(&gate)));
        assert!(gate.is_closed());
        assert_eq!(gate.push(b"x"), Err(PushError::Closed));
    }
}
