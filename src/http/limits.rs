//! The limits that bound what one request may cost: the size of its head,
//! its number of headers, the length of its target and the size of its
//! body, and how long its head and body may take to arrive and its response
//! to leave; how many requests a connection may carry and for how long
//! (keep-alive rotation); and how much memory the requests being gathered
//! may hold across the server.
//!
//! Every buffer the HTTP layer fills is bounded by one of these, so a client
//! cannot make a connection hold more memory, or read more bytes, than they
//! allow; and every wait is bounded by one, so a slow client cannot hold a
//! worker for longer. A request over a limit is answered with the status
//! that names the problem and the connection is closed.

use std::time::{Duration, Instant};

/// How large and how slow a request may be, how long a connection may
/// carry requests, and how much memory the requests being gathered may
/// hold across the server. Set them with
/// [`HttpHandler::limits`](super::HttpHandler::limits).
///
/// The fields are public so that you can change one and keep the defaults
/// for the others:
///
/// ```
/// use graceful_server::http::Limits;
///
/// let limits = Limits { max_body: 16 * 1024 * 1024, ..Limits::default() };
/// assert_eq!(limits.max_headers, 100);
/// ```
///
/// # Slow clients
///
/// No worker waits for a client's request: the head, and a body of at most
/// [`gathered_body`](Self::gathered_body) bytes, are gathered while the
/// connection waits between turns, and the handler runs once they are in.
/// What a slow client can still hold is bounded:
///
/// | client | what it holds | until |
/// |---|---|---|
/// | silent, or stalled in a head | its connection, no worker | `header_timeout` from the head's first byte (`408`), or the server's idle timeout if it sent nothing |
/// | trickling a head | its connection, no worker | `header_timeout` (`408`) |
/// | trickling a small body | its connection, no worker | the body is slower than `min_body_rate` (`408`) |
/// | sending most of a small body, then stalling, past `gathered_total` | its connection and at most a read buffer, no worker (the body waits in the kernel) | the body is slower than `min_body_rate` (`408`) |
/// | trickling a larger (or chunked) body the handler reads | a worker | the body is slower than `min_body_rate` (`408`) |
/// | not reading the response | a worker, once the socket buffers are full | the response is slower than `min_response_rate` (cut) |
///
/// Whatever the pace, the whole request (head and body) must arrive within
/// [`request_timeout`](Self::request_timeout) of its first byte (`408`).
///
/// A cut counts in [`Report::timed_out`](crate::Report::timed_out), and the
/// [event hook](crate::Builder::on_event) hears it with the reason as its
/// error.
///
/// # Keep-alive rotation
///
/// A connection closes after [`keepalive_requests`](Self::keepalive_requests)
/// requests (1000), or with the first response after
/// [`keepalive_time`](Self::keepalive_time) (an hour), whichever comes
/// first: that response says `Connection: close`. Clients open a new
/// connection for their next request, which a load balancer may send to
/// another server. nginx does the same with the same defaults.
///
/// ```
/// use std::time::Duration;
///
/// use graceful_server::http::Limits;
///
/// // Move clients around more often: every 100 requests or every minute.
/// let limits = Limits {
///     keepalive_requests: Some(100),
///     keepalive_time: Some(Duration::from_secs(60)),
///     ..Limits::default()
/// };
/// # let _ = limits;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest request head in bytes, by default 16 KiB (Node's
    /// default): request line, header lines and the empty line that ends
    /// them. A larger head is answered with
    /// `431 Request Header Fields Too Large`, or `414 URI Too Long` if it is
    /// the request line that does not end.
    ///
    /// Chunk extensions and trailers of a chunked body may also take at most
    /// this many bytes in all, for the same reason: they are headers in
    /// disguise.
    pub max_head: usize,
    /// The largest number of header lines in a request, by default 100
    /// (Apache's and hyper's default). More are answered with
    /// `431 Request Header Fields Too Large`.
    pub max_headers: usize,
    /// The longest request target in bytes, by default 8 KiB: RFC 9112
    /// (section 3) asks servers to accept request lines of at least 8000
    /// bytes. The target is the path and query, or the absolute URI. A
    /// longer one is answered with `414 URI Too Long`.
    pub max_target: usize,
    /// The largest request body in bytes, by default 1 MiB (nginx's
    /// default). A `Content-Length` above it is answered with
    /// `413 Content Too Large` before the handler is called; a chunked body
    /// that grows past it makes the body's `read` fail, and the response is
    /// `413` too.
    pub max_body: u64,
    /// How long a request head may take to arrive, from its first byte, by
    /// default 30 s (ASP.NET Kestrel's `RequestHeadersTimeout`; Node's
    /// `headersTimeout` and nginx's `client_header_timeout` are 60 s). The
    /// connection holds no worker meanwhile; past it the client gets
    /// `408 Request Timeout` and the connection is closed.
    pub header_timeout: Duration,
    /// The largest body gathered before the handler runs, by default
    /// 64 KiB: a body with a `Content-Length` up to this size is taken
    /// while the connection waits between turns (holding no worker), so
    /// that [`Request::read_body`](super::Request::read_body) returns at
    /// once. 64 KiB holds the forms and JSON documents of most APIs, and it
    /// is the same bound as the body left unread that is drained to keep
    /// the connection; a connection gathering one holds at most
    /// `max_head + gathered_body` bytes of buffer (80 KiB by default), less
    /// than the kernel's default receive buffer for a TCP socket (128 KiB
    /// on Linux).
    ///
    /// Larger bodies, chunked ones, and bodies the client waits to send
    /// until told (`Expect: 100-continue`) stream to the handler as it
    /// reads them. Zero gathers none.
    pub gathered_body: u64,
    /// The slowest a request body may arrive, by default 240 bytes a second
    /// after a 5 s grace (Kestrel's `MinRequestBodyDataRate`). A body that
    /// falls behind is answered `408 Request Timeout` and the connection is
    /// closed. A gathered body is timed from the end of its head. `None`
    /// removes the bound, leaving only the server's read timeout on each
    /// read.
    pub min_body_rate: Option<MinRate>,
    /// The slowest a client may read a response, by default 240 bytes a
    /// second with a 5 s grace (as Kestrel's `MinResponseDataRate`). A
    /// client that falls behind is cut: the connection is closed without
    /// the rest of the response. `None` removes the bound, leaving only the
    /// server's write timeout on each write.
    ///
    /// The socket's buffers take the first part of any response at once
    /// (up to a few MiB), so the rate applies from when they are full:
    ///
    /// - an answer held in memory (bytes, not a reader) is written as far
    ///   as the socket takes it, and the rest is sent while the connection
    ///   waits, holding no worker; it must all be sent by the time a client
    ///   at this rate would have taken it (grace included), or the
    ///   connection is closed;
    /// - a streamed answer is written by the worker, and from when the
    ///   buffers fill, the client must take `bytes_per_second * grace` in
    ///   every `grace` (what it has acknowledged, where the system tells:
    ///   Linux, Android, macOS and iOS; elsewhere the write timeout bounds
    ///   each write). A client that does not read holds the worker for at
    ///   most two graces after its buffers fill.
    pub min_response_rate: Option<MinRate>,
    /// How long a whole request may take to arrive, head and body, from the
    /// head's first byte, by default 300 s (Node's `requestTimeout`). Past
    /// it the client gets `408 Request Timeout`, the connection is closed
    /// and counted as [timed out](crate::Report::timed_out), however fast
    /// the request's bytes were coming: the other deadlines bound each
    /// part, and a 1 MiB body at the minimum 240 bytes a second alone
    /// would take 73 minutes. `None` removes the bound.
    ///
    /// A body the client holds back until told (`Expect: 100-continue`) has
    /// the whole budget again from the `100 Continue`. The time your closure
    /// takes before it reads the body counts, as in Node; raise this for
    /// large uploads on slow links.
    pub request_timeout: Option<Duration>,
    /// How many requests a connection may carry, by default 1000 (nginx's
    /// `keepalive_requests`): the response to the last says
    /// `Connection: close`, and the client opens a new connection for the
    /// next, so that behind a load balancer connections move to new or
    /// less loaded servers, and per-connection memory is returned now and
    /// then. `None` for no limit (Node's `maxRequestsPerSocket` default).
    pub keepalive_requests: Option<u64>,
    /// How long a connection may carry requests, from its first, by default
    /// one hour (nginx's `keepalive_time`): the first response after that
    /// says `Connection: close`. `None` for no limit.
    pub keepalive_time: Option<Duration>,
    /// The most memory that requests being gathered may hold at once, on
    /// all connections together, by default 32 MiB (512 bodies of 64 KiB).
    /// A gathered request counts its head and its body from when its
    /// body starts to be gathered until it is answered.
    ///
    /// Past it, a new body is not gathered: on TCP it is left in the
    /// kernel's buffers (the connection waits, holding no worker, until
    /// the kernel holds all of it: Linux, macOS and the BSDs), and the
    /// closure then reads it from the socket; elsewhere (TLS, Unix
    /// sockets, Windows) the closure reads it as it arrives, as it does a
    /// large body. So however many clients send most of a body and stall,
    /// the process holds at most this much for their bodies, plus at most
    /// a read buffer (8 KiB) each; their bodies are in the kernel, whose
    /// own limits on TCP memory see them.
    pub gathered_total: u64,
}

/// A minimum data rate: after `grace`, at least `bytes_per_second` on
/// average since the start. See [`Limits::min_body_rate`].
///
/// ```
/// use std::time::Duration;
///
/// use graceful_server::http::{Limits, MinRate};
///
/// // Uploads from clients on slow links: 100 bytes a second after 10 s.
/// let slow = MinRate { bytes_per_second: 100, grace: Duration::from_secs(10) };
/// let limits = Limits { min_body_rate: Some(slow), ..Limits::default() };
/// # let _ = limits;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinRate {
    /// The rate. Zero means no minimum beyond the grace: everything must
    /// have moved within it.
    pub bytes_per_second: u64,
    /// How long before the rate applies (a first byte may take a while).
    pub grace: Duration,
}

/// Kestrel's defaults for both of its minimum data rates.
const DEFAULT_MIN_RATE: MinRate = MinRate {
    bytes_per_second: 240,
    grace: Duration::from_secs(5),
};

impl MinRate {
    /// When a transfer that started at `start` and has moved `bytes` falls
    /// behind the rate: `start + grace + bytes / rate`. `None` if that is
    /// too far to represent (no bound in practice).
    pub(crate) fn deadline(&self, start: Instant, bytes: u64) -> Option<Instant> {
        start
            .checked_add(self.grace)?
            .checked_add(self.allowance(bytes)?)
    }

    /// The window in which a response's client must take
    /// [`bytes_in`](Self::bytes_in) of it: the grace, or a second if the
    /// grace is zero.
    pub(crate) fn window(&self) -> Duration {
        if self.grace.is_zero() {
            Duration::from_secs(1)
        } else {
            self.grace
        }
    }

    /// The bytes the rate asks for in `window`.
    pub(crate) fn bytes_in(&self, window: Duration) -> u64 {
        let bytes = u128::from(self.bytes_per_second) * window.as_nanos() / 1_000_000_000;
        u64::try_from(bytes).unwrap_or(u64::MAX)
    }

    /// How long `bytes` may take at the rate; `None` if too long to
    /// represent.
    pub(crate) fn allowance(&self, bytes: u64) -> Option<Duration> {
        match self.bytes_per_second {
            0 => Some(Duration::ZERO),
            rate => {
                let nanos = u128::from(bytes) * 1_000_000_000 / u128::from(rate);
                u64::try_from(nanos).ok().map(Duration::from_nanos)
            }
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_head: 16 * 1024,
            max_headers: 100,
            max_target: 8 * 1024,
            max_body: 1024 * 1024,
            header_timeout: Duration::from_secs(30),
            gathered_body: 64 * 1024,
            min_body_rate: Some(DEFAULT_MIN_RATE),
            min_response_rate: Some(DEFAULT_MIN_RATE),
            request_timeout: Some(Duration::from_secs(300)),
            keepalive_requests: Some(1000),
            keepalive_time: Some(Duration::from_secs(60 * 60)),
            gathered_total: 32 * 1024 * 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_deadline_grows_with_the_bytes() {
        let start = Instant::now();
        let rate = MinRate {
            bytes_per_second: 1000,
            grace: Duration::from_secs(2),
        };
        assert_eq!(
            rate.deadline(start, 0),
            Some(start + Duration::from_secs(2))
        );
        assert_eq!(
            rate.deadline(start, 500),
            Some(start + Duration::from_millis(2500))
        );
        let zero = MinRate {
            bytes_per_second: 0,
            ..rate
        };
        assert_eq!(
            zero.deadline(start, 1 << 40),
            Some(start + Duration::from_secs(2))
        );
        let huge = MinRate {
            bytes_per_second: 1,
            grace: Duration::MAX,
        };
        assert_eq!(huge.deadline(start, u64::MAX), None);
    }
}
