//! HTTP/1.1 on a [`Server`](crate::Server): a closure from [`Request`] to
//! [`Response`], served with keep-alive and shut down gracefully (feature
//! `http`).
//!
//! The layer reads and checks each request (with `httparse`), calls your
//! closure, and writes its response with the framing, `Date` and
//! `Connection` fields HTTP needs. Everything a graceful shutdown asks of
//! HTTP is done for you: between requests a connection waits idle, so
//! shutdown can close it; a request in flight finishes; and every response
//! sent once shutdown has started says `Connection: close`.
//!
//! # Quick start
//!
//! ```
//! use graceful_server::{Server, http::{self, Response}};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::builder("127.0.0.1:0").build()?; // e.g. "0.0.0.0:8080"
//! server.shutdown_handle().install_ctrl_c()?;
//! # let addr = server.local_addr();
//! # let handle = server.shutdown_handle();
//! # let client = std::thread::spawn(move || -> std::io::Result<String> {
//! #     use std::io::{Read, Write};
//! #     let mut conn = std::net::TcpStream::connect(addr)?;
//! #     conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
//! #     conn.set_write_timeout(Some(std::time::Duration::from_secs(5)))?;
//! #     conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
//! #     let mut answer = String::new();
//! #     conn.read_to_string(&mut answer)?;
//! #     handle.shutdown();
//! #     Ok(answer)
//! # });
//! let report = server.serve(http::handler(|_req| Response::text("Hello, world!")))?;
//! eprintln!("{report}");
//! # let answer = client.join().expect("client thread")?;
//! # assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
//! # assert!(answer.ends_with("\r\n\r\nHello, world!"), "{answer}");
//! # assert_eq!(report.completed, 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Routing
//!
//! There is no router: match on the method and the [path](Request::path)
//! (which is the same for `/items?id=7` and, as sent to a proxy,
//! `http://example.com/items?id=7`).
//!
//! ```
//! use graceful_server::http::{self, Request, Response};
//!
//! fn route(req: &mut Request) -> Response {
//!     match (req.method(), req.path()) {
//!         // Answer HEAD as GET: the layer sends the fields, not the body.
//!         ("GET" | "HEAD", "/") => Response::text("Hello, world!"),
//!         ("GET", "/healthz") => http::readiness(req),
//!         ("POST", "/echo") => match req.read_body() {
//!             Ok(body) => Response::new(200).body(body),
//!             Err(_) => Response::new(400),
//!         },
//!         // A known path, another method: 405 must say what is allowed
//!         // (RFC 9110, section 15.5.6).
//!         (_, "/") => Response::new(405).header("Allow", "GET, HEAD"),
//!         (_, "/healthz") => Response::new(405).header("Allow", "GET"),
//!         (_, "/echo") => Response::new(405).header("Allow", "POST"),
//!         _ => Response::text("not found").with_status(404),
//!     }
//! }
//!
//! let handler = http::handler(route);
//! # let _ = handler;
//! ```
//!
//! # Query parameters and forms
//!
//! [`Request::query`] is the query as sent; [`Request::query_pairs`] its
//! name and value pairs, in order, with `+` and percent-escapes decoded
//! ([`query_param`](Request::query_param) finds one), and
//! [`Request::read_form`] reads an `application/x-www-form-urlencoded`
//! body into the same pairs. Decoding never fails: an escape that is not
//! one is kept as sent, bytes that are not UTF-8 become U+FFFD.
//!
//! ```
//! use graceful_server::http::{self, Request, Response};
//!
//! // GET /hello?name=Ada+Lovelace answers "Hello, Ada Lovelace!"
//! fn hello(req: &mut Request) -> Response {
//!     let name = req.query_param("name").unwrap_or("world".into());
//!     Response::text(format!("Hello, {name}!"))
//! }
//! # let _ = http::handler(hello);
//! ```
//!
//! # Access log
//!
//! Every response the layer writes, your closure's and its own (`400`,
//! `408`, `413`..), is told to the server's [event
//! hook](crate::Builder::on_event) as an
//! [`Event::Request`](crate::Event::Request): method, target and version,
//! status, body bytes, the time from the head's first byte to the last
//! byte written, the client, the connection's id, and whether the
//! connection stays open. [`common_log_line`] makes it a line of the
//! Common Log Format:
//!
//! ```
//! use graceful_server::{http::{self, Response}, Server};
//!
//! # fn main() -> Result<(), graceful_server::Error> {
//! let server = Server::builder("127.0.0.1:0")
//!     .on_event(|event| {
//!         if let Some(line) = http::common_log_line(event) {
//!             eprintln!("{line}"); // 127.0.0.1 - - [06/Dec/2026:14:03:07 +0000] "GET / HTTP/1.1" 200 13
//!         }
//!     })
//!     .build()?;
//! # let running = server.spawn(http::handler(|_req| Response::text("Hello, world!")))?;
//! # running.shutdown_handle().shutdown();
//! # running.join()?;
//! # Ok(())
//! # }
//! ```
//!
//! The hook runs on the worker that served the request: keep it quick
//! (the HTTP example's `--verbose` hands its lines to a writer thread).
//!
//! # Request bodies
//!
//! A body of up to [`Limits::gathered_body`] bytes (64 KiB) with a
//! `Content-Length` has arrived before your closure runs, gathered while
//! the connection waited without a worker, so reading it does not wait.
//! A larger or chunked body is read as it arrives: read it with
//! [`Request::read_body`] (at most [`Limits::max_body`] bytes, into memory)
//! or stream it from [`Request::body`], a [`Read`](std::io::Read) that ends
//! with the body, decoding `chunked` for you. A client that sent
//! `Expect: 100-continue` is told to go on at the first read, and not at all
//! if you answer without reading, so a refused upload is never sent.
//!
//! A body you leave unread is read and thrown away after your closure
//! returns if it is small (up to 64 KiB), so that the connection can carry
//! the next request; a larger one closes the connection. So does a body
//! the client was still waiting to send: if you answer a request with
//! `Expect: 100-continue` without reading its body, `100 Continue` is never
//! sent, and the client may send the body anyway or give it up, so its
//! next bytes could be either the body or a new request. The layer cannot
//! tell which, so your response goes out with `Connection: close` and the
//! connection closes after it. A body that turns out malformed or too large
//! while you read it makes the read fail, and the layer answers `400` or
//! `413` in place of your response.
//!
//! # Responses
//!
//! [`Response::text`] is a `200` with a text body; [`Response::new`] takes a
//! status; [`header`](Response::header), [`body`](Response::body) and
//! [`with_status`](Response::with_status) chain. A body can be bytes in
//! memory or a [`Read`](std::io::Read) streamed as it is sent
//! ([`body_reader`](Response::body_reader)). The layer adds:
//!
//! - `Content-Length` when the length is known; otherwise
//!   `Transfer-Encoding: chunked` for HTTP/1.1 clients, and for HTTP/1.0
//!   clients a body delimited by closing the connection;
//! - `Date` (an IMF-fixdate, formatted at most once a second per thread);
//! - `Connection: close` when the connection will close after this
//!   response, or `Connection: keep-alive` when an HTTP/1.0 client asked to
//!   keep it open and may.
//!
//! `HEAD` responses carry the fields the `GET` would have, `Content-Length`
//! included, and no body. `204` and `304` have no body at all.
//!
//! # Keep-alive and shutdown
//!
//! HTTP/1.1 connections stay open by default; `Connection: close` from the
//! client, or in your response, closes them after the response. HTTP/1.0
//! connections close unless the client asked for `Connection: keep-alive`.
//! Requests a client pipelines are answered one at a time, in order.
//!
//! A connection carries at most [`Limits::keepalive_requests`] requests
//! (1000) and takes new ones for at most [`Limits::keepalive_time`] (an
//! hour), nginx's defaults: the response that reaches either says
//! `Connection: close`, and the client's next request opens a new
//! connection, which a load balancer may send elsewhere.
//!
//! Once the server starts shutting down ([`Request::is_shutting_down`]),
//! every response says `Connection: close` and its connection closes after
//! it. A health check that should fail from that moment is one line:
//! [`readiness`].
//!
//! # What the layer answers by itself
//!
//! Each of these is answered, then the connection is closed, because after
//! bad input nobody can tell where the next request would start:
//!
//! | status | when |
//! |---|---|
//! | `400 Bad Request` | a malformed head; an HTTP/1.1 request without `Host`, or with two, or one whose value is not `host[:port]`; both `Content-Length` and `Transfer-Encoding`; `Content-Length`s that disagree or are not numbers; a `Transfer-Encoding` whose last coding is not `chunked`; a malformed chunked body; `Transfer-Encoding` in HTTP/1.0; a client that hangs up in the middle of a request |
//! | `408 Request Timeout` | a head not in within [`Limits::header_timeout`] of its first byte; a body slower than [`Limits::min_body_rate`]; a request (head and body) not in within [`Limits::request_timeout`] of its first byte; a client silent past the server's read timeout while the closure reads the body |
//! | `413 Content Too Large` | a body over [`Limits::max_body`] |
//! | `414 URI Too Long` | a request target over [`Limits::max_target`] |
//! | `431 Request Header Fields Too Large` | a head over [`Limits::max_head`], or more than [`Limits::max_headers`] header lines |
//! | `500 Internal Server Error` | your closure panicked |
//! | `501 Not Implemented` | a transfer coding before `chunked` (`gzip, chunked`) |
//! | `505 HTTP Version Not Supported` | a major version other than 1 (`HTTP/2.0`, `HTTP/3`); `HTTP/1.2` and later 1.x are served as HTTP/1.1 (RFC 9110, section 2.5) |
//!
//! Lines of a head may end in CRLF or a bare LF, read the same way wherever
//! the head ends (a bare-LF request followed by a CRLF one in the same read
//! is two requests). A client that closes the connection, or stays silent
//! past the idle timeout, between requests gets no answer: that is how
//! keep-alive ends. A client too slow to read its answer is cut without
//! one (see [`Limits::min_response_rate`]).
//!
//! # Slow clients
//!
//! No worker waits for a request to arrive: the head (and a small body) is
//! gathered while the connection waits, holding no worker, and the closure
//! runs once it is in. An answer held in memory that the socket cannot take
//! at once is finished while the connection waits too. Every request has
//! deadlines; [`Limits`] lists them and what a slow client can still hold.
//! A request that has begun arriving when shutdown starts is in flight: it
//! is served (with `Connection: close`) if it arrives within its deadlines
//! and the drain deadline, and so are the requests the client had already
//! sent behind it, the last with `Connection: close`.
//!
//! The defaults suit clients on ordinary links. A service for clients on
//! slow ones gives heads longer and lets uploads go slower:
//!
//! ```
//! use std::time::Duration;
//!
//! use graceful_server::http::{self, Limits, MinRate, Response};
//!
//! let handler = http::handler(|_req| Response::text("ok")).limits(Limits {
//!     header_timeout: Duration::from_secs(60),
//!     min_body_rate: Some(MinRate { bytes_per_second: 100, grace: Duration::from_secs(10) }),
//!     ..Limits::default()
//! });
//! # let _ = handler;
//! ```
//!
//! # Limits
//!
//! Every buffer and every wait is bounded. The [`Limits`] default to a
//! 16 KiB head, 100 header lines, an 8 KiB target, a 1 MiB body (64 KiB of
//! it gathered before the closure), a 30 s header timeout, 240 bytes a
//! second after 5 s for bodies and answers, 300 s for a whole request,
//! 1000 requests or an hour per connection, and 32 MiB for the requests
//! being gathered on all connections together; change them with
//! [`HttpHandler::limits`].
//!
//! That last one bounds the process's memory whatever the number of
//! clients: past it, a body is left in the kernel's buffers until your
//! closure reads it, and the connection waits for it there, holding no
//! worker ([`Limits::gathered_total`]). Measured with clients that each
//! send 60 KiB of a 64 KiB body and stall, the HTTP example holds about
//! 9 KiB more per client past the budget, where it held 65 KiB before.
//!
//! # Long-lived connections: server-sent events and WebSocket
//!
//! A response can take its connection over once its head is sent, and
//! keep it open without holding a worker:
//!
//! - [`Request::event_stream`] answers with a stream of server-sent
//!   events: it returns the response and an [`EventSender`], through which
//!   [`ServerEvent`]s reach the client from any thread, while the
//!   connection waits between them.
//! - [`Request::websocket`] (feature `websocket`) answers a WebSocket
//!   handshake with `101 Switching Protocols`; each message is then a turn
//!   of your [`WebSocketHandler`], and a [`WsSender`] sends messages from
//!   any thread. Pings are answered, and messages and frames are bounded
//!   ([`WebSocketConfig`]: 1 MiB and 256 KiB by default).
//!
//! At shutdown each of them gets one last turn, its goodbye: an event
//! stream sends its [goodbye event](EventSender::set_goodbye) and ends; a
//! WebSocket sends Close 1001 ("going away") and waits, within the drain
//! deadline, for the client's Close. Clients that answer let the server
//! exit at once; [`Report::goodbyes_answered`](crate::Report::goodbyes_answered)
//! counts them. A WebSocket can do without the goodbye
//! ([`WebSocketConfig::goodbye`]): the drain then waits for its client to
//! close it, as for any connection waiting mid-conversation.
//!
//! Output pushed to one connection and not yet taken by its client is
//! bounded ([`Builder::max_pushed_output`](crate::Builder::max_pushed_output));
//! a client that takes nothing within the
//! [write timeout](crate::Builder::write_timeout) is disconnected.
//!
//! # Panics
//!
//! If your closure panics, the client gets `500 Internal Server Error`
//! (nothing of your response can have been sent: the closure returns it),
//! then the panic goes on to the server, which closes the connection,
//! counts it in [`Report::panicked`](crate::Report::panicked) and keeps
//! serving.
//!
//! # HTTPS
//!
//! With the `tls` feature too, the layer serves HTTPS unchanged: give the
//! server a TLS config (`Builder::tls`) and the closure sees the same
//! requests, decrypted. `http::tls_config_from_pem` makes one from PEM
//! files that offers ALPN `http/1.1`; at shutdown every TLS connection ends
//! with `close_notify` after its last response. See the `tls` items of the
//! crate root, and docs/tls.md.
//!
//! # What it does not do
//!
//! No HTTP/2, no `Upgrade` to anything but WebSocket, no `CONNECT`
//! tunnels, no compression (nor WebSocket's `permessage-deflate`), no
//! WebSocket subprotocols, and no percent-decoding of paths: a path is as
//! sent (queries and forms are decoded when asked, see above). TLS is the server's ([`Builder::tls`](crate::Builder), feature
//! `tls`): the layer serves HTTPS, event streams and WebSockets (`wss:`)
//! over it unchanged.

// The docs above link to the WebSocket items, which exist with the
// `websocket` feature only.
#![cfg_attr(not(feature = "websocket"), allow(rustdoc::broken_intra_doc_links))]

mod access;
mod body;
mod budget;
mod conversation;
mod date;
mod events;
mod form;
mod gather;
mod handler;
mod head;
#[cfg(feature = "tls")]
mod https;
mod limits;
mod readiness;
mod request;
mod response;
mod serve;
mod takeover;
mod transport;
mod turn;
#[cfg(feature = "websocket")]
mod websocket;
mod write;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz;

pub use access::common_log_line;
pub use body::Body;
pub use events::{EventSender, ServerEvent};
pub use form::form_pairs;
pub use handler::{handler, HttpHandler};
#[cfg(feature = "tls")]
pub use https::{tls_config_from_pem, ALPN_PROTOCOL};
pub use limits::{Limits, MinRate};
pub use readiness::readiness;
pub use request::{Headers, Request, Version};
pub use response::Response;
#[cfg(feature = "websocket")]
pub use websocket::{Message, WebSocket, WebSocketConfig, WebSocketHandler, WsSender};

// The senders are promised to be shareable across threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<EventSender>();
    send_sync::<ServerEvent>();
    #[cfg(feature = "websocket")]
    send_sync::<WsSender>();
    #[cfg(feature = "websocket")]
    send_sync::<Message>();
};
