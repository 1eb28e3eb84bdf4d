//! The limits that bound what one request may cost: the size of its head,
//! its number of headers, the length of its target and the size of its body.
//!
//! Every buffer the HTTP layer fills is bounded by one of these, so a client
//! cannot make a connection hold more memory, or read more bytes, than they
//! allow. A request over a limit is answered with the status that names the
//! problem and the connection is closed.

/// How large a request may be. Set them with
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
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_head: 16 * 1024,
            max_headers: 100,
            max_target: 8 * 1024,
            max_body: 1024 * 1024,
        }
    }
}
