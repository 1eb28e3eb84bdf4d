//! [`readiness`]: the answer to a load balancer's health check, which must
//! turn to failure as soon as shutdown starts.
//!
//! During a drain the server still answers, so a check that only asks "do
//! you answer?" keeps sending it clients it is about to refuse. A check
//! that fails from the moment shutdown starts lets the load balancer move
//! traffic away while the requests in flight finish; with
//! [`Builder::drain_delay`](crate::Builder::drain_delay) the server keeps
//! serving long enough for the balancer to notice.

use super::request::Request;
use super::response::Response;

/// `200 ok` while the server is serving, `503 shutting down` once shutdown
/// has started: a readiness check in one line.
///
/// ```
/// use graceful_server::http::{self, Response};
///
/// let handler = http::handler(|req| match req.path() {
///     "/healthz" => http::readiness(req),
///     _ => Response::text("Hello, world!"),
/// });
/// # let _ = handler;
/// ```
pub fn readiness(request: &Request<'_>) -> Response {
    if request.is_shutting_down() {
        Response::text("shutting down").with_status(503)
    } else {
        Response::text("ok")
    }
}
