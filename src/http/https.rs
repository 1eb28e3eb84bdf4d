//! HTTPS (features `http` and `tls`): the TLS config of a server that
//! speaks HTTP/1.1, which says so with ALPN.

use std::path::Path;
use std::sync::Arc;

use crate::error::Error;
use rustls::ServerConfig;

/// The ALPN protocol name of HTTP/1.1, the one protocol the layer speaks:
/// put it in `alpn_protocols` of a [`rustls::ServerConfig`] you build
/// yourself, as [`tls_config_from_pem`] does.
pub const ALPN_PROTOCOL: &[u8] = b"http/1.1";

/// [`tls_config_from_pem`](crate::tls_config_from_pem) for an HTTPS
/// server: the same config (TLS 1.3 and 1.2, the same provider and key
/// exchange), offering the ALPN protocol [`ALPN_PROTOCOL`] (`http/1.1`).
///
/// A client that offers ALPN (browsers, curl: `h2` and `http/1.1`) then
/// knows from the handshake that this server speaks HTTP/1.1; one that
/// offers only protocols the layer does not speak (`h2` alone) is refused
/// in the handshake with the alert `no_application_protocol`, instead of
/// failing on its first request; one that offers none is served as before.
///
/// # Errors
///
/// As [`tls_config_from_pem`](crate::tls_config_from_pem): [`Error::Tls`]
/// naming the file and the problem.
///
/// # Example
///
/// ```no_run
/// use graceful_server::http::{self, Response};
/// use graceful_server::Server;
///
/// fn main() -> Result<(), graceful_server::Error> {
///     let server = Server::builder("127.0.0.1:8443")
///         .tls(http::tls_config_from_pem("cert.pem", "key.pem")?)
///         .build()?;
///     server.shutdown_handle().install_ctrl_c()?;
///     let report = server.serve(http::handler(|_req| Response::text("Hello, world!")))?;
///     eprintln!("{report}");
///     Ok(())
/// }
/// ```
pub fn tls_config_from_pem(
    cert: impl AsRef<Path>,
    key: impl AsRef<Path>,
) -> Result<Arc<ServerConfig>, Error> {
    let mut config = crate::tls::server_config(cert.as_ref(), key.as_ref())?;
    config.alpn_protocols = vec![ALPN_PROTOCOL.to_vec()];
    Ok(Arc::new(config))
}
