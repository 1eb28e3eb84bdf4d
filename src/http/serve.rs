//! Serving one request: read its head, call the handler, write the
//! response, and decide whether the connection can carry another request.
//!
//! One call serves exactly one request, and leaves whatever follows it (a
//! pipelined request) in the connection's buffer: the server calls again
//! when there is more input, and pipelined requests are answered in order
//! without anything special being done for them.

use std::io;
use std::panic::{self, AssertUnwindSafe};

use super::body::Body;
use super::head::{read_head, ReadHead};
use super::limits::Limits;
use super::request::{Request, Version};
use super::response::Response;
use super::transport::Transport;
use super::write::{write_response, Answering};

/// A body the handler left unread is read and thrown away after it returns,
/// to keep the connection, if that takes at most this many bytes; a larger
/// rest costs less as a new connection than as bytes read for nothing.
pub(crate) const DRAIN_MAX: u64 = 64 * 1024;

/// Serves one request from `io` with `app`. Returns whether the connection
/// may stay open for another request.
///
/// `Ok(false)` covers every way a conversation ends normally: the client
/// closed or went silent before sending anything (nothing is written), a bad
/// request (answered, e.g. `400`), a request or response that closes the
/// connection, and a shutdown in progress.
///
/// # Errors
///
/// The connection failed (reset, or a write error), or the response's body
/// reader failed; the connection must be closed.
///
/// # Panics
///
/// If `app` panics, the client gets `500 Internal Server Error` and the
/// panic goes on, for the server to contain and count.
pub(crate) fn serve_request<F>(io: &mut dyn Transport, limits: &Limits, app: &F) -> io::Result<bool>
where
    F: Fn(&mut Request<'_>) -> Response + ?Sized,
{
    let head = match read_head(io, limits)? {
        ReadHead::Closed => return Ok(false),
        ReadHead::Refused(refusal) => {
            // After bad input we cannot tell where the next request would
            // start, so every refusal ends the connection.
            let answering = Answering {
                version: Version::Http11,
                head_only: refusal.head_only,
                keep_alive: false,
            };
            write_response(io, Response::error(refusal.status), answering)?;
            return Ok(false);
        }
        ReadHead::Request(head) => head,
    };
    let peer = io.peer_addr();
    let mut answering = Answering {
        version: head.version,
        head_only: head.method == "HEAD",
        keep_alive: head.keep_alive,
    };
    let body = Body::new(io, head.framing, limits, head.expect_continue);
    let mut request = Request::new(
        head.method,
        head.target,
        head.version,
        head.headers,
        peer,
        body,
    );

    // `AssertUnwindSafe`: after a panic the request is dropped unused and the
    // connection closed, so no state the panic may have broken is seen again.
    let response = match panic::catch_unwind(AssertUnwindSafe(|| app(&mut request))) {
        Ok(response) => response,
        Err(panic) => {
            drop(request);
            answering.keep_alive = false;
            // Nothing of the response has been sent (the handler cannot
            // write), so the client can still be told. Best effort: the
            // connection closes either way.
            let _ = write_response(io, Response::error(500), answering);
            // Let the panic go on to the server, which closes the connection
            // and counts it in its report.
            panic::resume_unwind(panic);
        }
    };

    let response = match request.body().failure() {
        // The body broke its framing or its limit, or the client stalled or
        // left in it: whatever the handler made of that, the answer is the
        // layer's, and the connection cannot go on.
        Some(failure) => match failure.status() {
            Some(status) => {
                answering.keep_alive = false;
                Response::error(status)
            }
            // The connection is broken: nobody to answer.
            None => return Err(failure.to_error()),
        },
        None => {
            // The next request starts after this body: skip what the
            // handler left of it, if that is cheap. No point when closing.
            if answering.keep_alive && !request.is_shutting_down() {
                answering.keep_alive = request.body().drain(DRAIN_MAX);
            }
            response
        }
    };
    drop(request);

    // Asked after the handler: a shutdown that started during a slow
    // request must show in its response.
    if io.is_shutting_down() {
        answering.keep_alive = false;
    }
    write_response(io, response, answering)
}
