//! [`HttpHandler`]: the user's closure from request to response, with its
//! limits; what a [`Server`](crate::Server) serves.

use std::fmt;
use std::io;
use std::sync::Arc;

use super::budget::Budget;
use super::limits::Limits;
use super::request::Request;
use super::response::Response;
use super::serve::{serve_request, Served};
use super::transport::Transport;

/// An HTTP handler for a [`Server`](crate::Server): made by [`handler`]
/// from a closure that turns a [`Request`] into a [`Response`].
///
/// Each turn of the server serves one request; between requests the
/// connection waits idle, holding no worker, and is closed when the server
/// shuts down.
///
/// ```
/// use std::io::{Read, Write};
/// use std::net::TcpStream;
/// use std::time::Duration;
///
/// use graceful_server::{http::{self, Response}, Server};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let handler = http::handler(|_req| Response::text("Hello, world!"));
/// let running = Server::builder("127.0.0.1:0").build()?.spawn(handler)?;
///
/// let mut client = TcpStream::connect(running.local_addr())?;
/// client.set_read_timeout(Some(Duration::from_secs(5)))?;
/// client.set_write_timeout(Some(Duration::from_secs(5)))?;
/// client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
/// let mut answer = String::new();
/// client.read_to_string(&mut answer)?;
/// assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
/// assert!(answer.ends_with("\r\n\r\nHello, world!"), "{answer}");
///
/// running.shutdown_handle().shutdown();
/// running.join()?;
/// # Ok(())
/// # }
/// ```
pub struct HttpHandler<F> {
    app: F,
    limits: Limits,
    /// What the requests being gathered hold, on every connection of the
    /// server ([`Limits::gathered_total`]).
    budget: Arc<Budget>,
}

/// Makes an HTTP handler of `app`, which is called once per request, on the
/// server's worker threads (so several calls may run at once).
///
/// ```
/// use graceful_server::http::{self, Limits, Response};
///
/// let handler = http::handler(|req| match req.path() {
///     "/healthz" => http::readiness(req),
///     _ => Response::text("Hello, world!"),
/// })
/// .limits(Limits { max_body: 64 * 1024, ..Limits::default() });
/// # let _ = handler;
/// ```
pub fn handler<F>(app: F) -> HttpHandler<F>
where
    F: Fn(&mut Request<'_>) -> Response + Send + Sync + 'static,
{
    HttpHandler {
        app,
        limits: Limits::default(),
        budget: Arc::default(),
    }
}

impl<F> HttpHandler<F>
where
    F: Fn(&mut Request<'_>) -> Response + Send + Sync + 'static,
{
    /// Sets the limits on each request, by default [`Limits::default`]: a
    /// 16 KiB head, 100 header lines, an 8 KiB target and a 1 MiB body, in
    /// 300 s at most; 1000 requests or an hour per connection; 32 MiB for
    /// the requests being gathered, server-wide.
    ///
    /// ```
    /// use graceful_server::http::{self, Limits, Response};
    ///
    /// // Uploads of up to 16 MiB; the other limits keep their defaults.
    /// let handler = http::handler(|req| match req.read_body() {
    ///     Ok(body) => Response::text(format!("{} bytes", body.len())),
    ///     Err(_) => Response::new(400), // the layer answers 413 over the limit
    /// })
    /// .limits(Limits { max_body: 16 * 1024 * 1024, ..Limits::default() });
    /// # let _ = handler;
    /// ```
    pub fn limits(mut self, limits: Limits) -> HttpHandler<F> {
        self.limits = limits;
        self
    }

    /// Serves one request on `io`, if it has arrived; returns what the
    /// connection does next. See [`serve_request`].
    pub(crate) fn serve_one(&self, io: &mut dyn Transport) -> io::Result<Served> {
        serve_request(io, &self.limits, &self.budget, &self.app)
    }
}

impl<F> fmt::Debug for HttpHandler<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpHandler")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}
