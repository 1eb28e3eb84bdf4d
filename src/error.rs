//! The crate's one error type.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::SocketAddr;

/// Everything that can go wrong when starting or running a server.
///
/// Its `Display` says what failed (`cannot listen on 127.0.0.1:8081`), in
/// lowercase without a cause; [`source`](StdError::source) gives the cause
/// where there is one (`Address already in use (os error 98)`). Print the
/// chain, as the binary does (`cannot listen on 127.0.0.1:8081: Address
/// already in use (os error 98)`), or use an error reporter that does
/// (anyhow's `{:#}`): the cause is not repeated in `Display`, so that such
/// reporters do not print it twice.
///
/// All of these happen before the server accepts its first connection, except
/// [`Error::Internal`]. Once serving, problems with single connections are
/// never errors: they are counted in the [`Report`](crate::Report).
///
/// # Example
///
/// Match a variant to tell the user what to fix:
///
/// ```
/// use std::io;
/// use std::net::TcpListener;
///
/// use graceful_server::{Error, Server};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // A setting out of range.
/// match Server::builder("127.0.0.1:0").workers(0).build() {
///     Err(Error::Config { setting, reason }) => {
///         assert_eq!(setting, "workers");
///         eprintln!("fix the {setting} setting: it {reason}");
///     }
///     other => return Err(format!("expected a config error, got {other:?}").into()),
/// }
///
/// // An address in use: some other socket listens on it.
/// let taken = TcpListener::bind("127.0.0.1:0")?;
/// match Server::builder(taken.local_addr()?).build() {
///     Err(Error::Bind { addr, source }) if source.kind() == io::ErrorKind::AddrInUse => {
///         eprintln!("{addr} is in use: is another server running?");
///     }
///     other => return Err(format!("expected the address in use, got {other:?}").into()),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A setting is out of range, e.g. zero workers or a zero queue
    /// capacity. Returned by [`Builder::build`](crate::Builder::build).
    Config {
        /// The setting, as named by its builder method.
        setting: &'static str,
        /// Why the value is rejected.
        reason: String,
    },
    /// The address could not be resolved, or resolved to nothing.
    Address(io::Error),
    /// Binding the listening socket failed, e.g. the address is in use or
    /// needs privileges.
    Bind {
        /// The address that could not be bound.
        addr: SocketAddr,
        /// What the operating system said.
        source: io::Error,
    },
    /// Binding a Unix domain socket failed: another server listens on it, a
    /// file that is not a socket is in the way, the directory is missing or
    /// not writable. Unix only.
    #[cfg(unix)]
    BindUnix {
        /// The socket's path.
        path: std::path::PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The listener could not be prepared (put in nonblocking mode, or asked
    /// for its local address).
    Listener(io::Error),
    /// The readiness wait (epoll or `poll(2)`, and its wake-up sockets)
    /// could not be set up, e.g. for lack of descriptors. Returned by
    /// [`Builder::build`](crate::Builder::build) and when serving starts.
    Readiness(io::Error),
    /// The socket-activation environment (`LISTEN_PID`, `LISTEN_FDS`,
    /// `LISTEN_FDNAMES`) is malformed, names no socket we asked for, or
    /// hands us something that is not a listening TCP or Unix socket. Returned by
    /// [`Builder::build`](crate::Builder::build) when
    /// [inheriting](crate::Builder::inherit_listener) is on.
    Activation(String),
    /// A server thread could not be spawned.
    Spawn {
        /// The name of the thread.
        thread: String,
        /// What the operating system said.
        source: io::Error,
    },
    /// The Ctrl-C handler could not be installed. Returned by
    /// [`ShutdownHandle::install_ctrl_c`](crate::ShutdownHandle::install_ctrl_c).
    /// The error's kind is [`AlreadyExists`](io::ErrorKind::AlreadyExists)
    /// when a handler was already installed through the `ctrlc` crate; any
    /// other error is the operating system's.
    CtrlC(io::Error),
    /// A TLS certificate or key could not be loaded: a file missing or
    /// unreadable, no certificate or key in it, or a key that is not the
    /// certificate's; or there is no crypto provider (the feature
    /// `aws-lc-rs` off and none installed). Returned by
    /// [`tls_config_from_pem`](crate::tls_config_from_pem). Feature `tls`.
    #[cfg(feature = "tls")]
    Tls(String),
    /// A server thread panicked outside a handler. This is a bug in this
    /// crate; handler panics are contained and counted instead.
    Internal(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config { setting, reason } => write!(f, "invalid {setting}: {reason}"),
            Error::Address(_) => f.write_str("cannot resolve the address"),
            Error::Bind { addr, .. } => write!(f, "cannot listen on {addr}"),
            #[cfg(unix)]
            Error::BindUnix { path, .. } => write!(f, "cannot listen on unix:{}", path.display()),
            Error::Listener(_) => f.write_str("cannot prepare the listening socket"),
            Error::Readiness(_) => f.write_str("cannot set up the readiness wait"),
            Error::Activation(reason) => write!(f, "cannot inherit the listener: {reason}"),
            Error::Spawn { thread, .. } => write!(f, "cannot spawn thread {thread}"),
            Error::CtrlC(_) => f.write_str("cannot install the ctrl-c handler"),
            #[cfg(feature = "tls")]
            Error::Tls(reason) => write!(f, "cannot set up TLS: {reason}"),
            Error::Internal(what) => write!(f, "internal error: {what}"),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Error::Address(source)
            | Error::Bind { source, .. }
            | Error::Spawn { source, .. }
            | Error::Listener(source)
            | Error::Readiness(source)
            | Error::CtrlC(source) => Some(source),
            #[cfg(unix)]
            Error::BindUnix { source, .. } => Some(source),
            Error::Config { .. } | Error::Activation(_) | Error::Internal(_) => None,
            #[cfg(feature = "tls")]
            Error::Tls(_) => None,
        }
    }
}
