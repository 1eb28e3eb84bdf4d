//! What the layer remembers about a connection between its requests: how
//! many it has answered and since when (keep-alive rotation), when the
//! current request began (its time budget, and its event's duration), and
//! what the request being gathered holds of the server's body budget.
//!
//! A turn serves at most one request, and a request may take several turns
//! to arrive, so this outlives turns: it lives with the connection (in its
//! layer state, see `turn.rs`) and is dropped with it, which gives back
//! whatever it held of the budget however the connection ends.

use std::time::{Duration, Instant};

use super::budget::Reservation;
use super::limits::Limits;

/// One connection's state between requests.
#[derive(Debug)]
pub(crate) struct Conversation {
    /// Requests answered on the connection so far.
    answered: u64,
    /// When the connection's first request began to arrive; `None` before.
    opened: Option<Instant>,
    /// When the current request's head began to arrive; `None` between
    /// requests.
    head_started: Option<Instant>,
    /// What the request being gathered holds of the server's budget.
    pub(crate) reservation: Option<Reservation>,
    /// While the request's body waits in the kernel: how many bytes of the
    /// request (head included) had arrived when it last looked.
    pub(crate) in_kernel: Option<usize>,
    /// The last request said it was the client's last (`Connection:
    /// close`, or HTTP/1.0 without keep-alive) and was read to its end:
    /// the client sends nothing more, so closing needs no look for input
    /// left behind.
    pub(crate) client_finished: bool,
}

impl Conversation {
    pub(crate) fn new() -> Conversation {
        Conversation {
            answered: 0,
            opened: None,
            head_started: None,
            reservation: None,
            in_kernel: None,
            client_finished: false,
        }
    }

    /// When the current request's head began to arrive: now, if it is only
    /// beginning.
    pub(crate) fn head_started(&mut self) -> Instant {
        match self.head_started {
            Some(started) => started,
            None => self.begin(Instant::now()),
        }
    }

    /// The current request's head began to arrive at `now`, unless it had
    /// begun already: returns when it began. (For a caller that has read
    /// the clock anyway.)
    pub(crate) fn begin(&mut self, now: Instant) -> Instant {
        let started = *self.head_started.get_or_insert(now);
        self.opened.get_or_insert(started);
        started
    }

    /// When the current request must be all in by
    /// ([`Limits::request_timeout`]); `None` without a bound or a request.
    pub(crate) fn request_deadline(&self, limits: &Limits) -> Option<Instant> {
        self.head_started?.checked_add(limits.request_timeout?)
    }

    /// Whether the response to the current request must close the
    /// connection: it is the last of [`Limits::keepalive_requests`], or the
    /// connection has carried requests for [`Limits::keepalive_time`].
    pub(crate) fn must_rotate(&self, limits: &Limits) -> bool {
        let by_count = limits
            .keepalive_requests
            .is_some_and(|max| self.answered.saturating_add(1) >= max);
        by_count || limits.keepalive_time.is_some_and(|age| self.age() >= age)
    }

    fn age(&self) -> Duration {
        self.opened
            .map_or(Duration::ZERO, |opened| opened.elapsed())
    }

    /// The current request is over (answered or refused): counts it, and
    /// gives back what it held.
    pub(crate) fn finish(&mut self) {
        self.answered = self.answered.saturating_add(1);
        self.head_started = None;
        self.reservation = None;
        self.in_kernel = None;
    }
}

/// The earlier of two deadlines, `None` being no deadline.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_by_count_and_age() {
        let limits = Limits {
            keepalive_requests: Some(3),
            keepalive_time: None,
            ..Limits::default()
        };
        let mut conversation = Conversation::new();
        assert!(!conversation.must_rotate(&limits));
        conversation.finish();
        assert!(!conversation.must_rotate(&limits));
        conversation.finish();
        assert!(conversation.must_rotate(&limits), "the third closes");
        let unlimited = Limits {
            keepalive_requests: None,
            keepalive_time: None,
            ..Limits::default()
        };
        assert!(!conversation.must_rotate(&unlimited));
        let aged = Limits {
            keepalive_time: Some(Duration::ZERO),
            ..unlimited
        };
        assert!(conversation.must_rotate(&aged));
        // One request per connection.
        let one = Limits {
            keepalive_requests: Some(1),
            ..unlimited
        };
        assert!(Conversation::new().must_rotate(&one));
    }

    #[test]
    fn the_request_deadline_counts_from_the_head() {
        let limits = Limits {
            request_timeout: Some(Duration::from_secs(2)),
            ..Limits::default()
        };
        let mut conversation = Conversation::new();
        assert_eq!(conversation.request_deadline(&limits), None);
        let started = conversation.head_started();
        assert_eq!(conversation.head_started(), started, "set once");
        assert_eq!(
            conversation.request_deadline(&limits),
            Some(started + Duration::from_secs(2))
        );
        let unbounded = Limits {
            request_timeout: None,
            ..limits
        };
        assert_eq!(conversation.request_deadline(&unbounded), None);
        conversation.finish();
        assert_eq!(conversation.request_deadline(&limits), None);
    }

    #[test]
    fn earliest_ignores_none() {
        let now = Instant::now();
        let later = now + Duration::from_secs(1);
        assert_eq!(earliest(Some(now), Some(later)), Some(now));
        assert_eq!(earliest(None, Some(later)), Some(later));
        assert_eq!(earliest(Some(now), None), Some(now));
        assert_eq!(earliest(None, None), None);
    }
}
