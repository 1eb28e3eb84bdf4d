//! systemd's two small protocols, in std only: socket activation (inherit a
//! listening socket through `LISTEN_PID`/`LISTEN_FDS`/`LISTEN_FDNAMES`) and
//! readiness notification (datagrams to `NOTIFY_SOCKET`).
//!
//! A listening socket that outlives the process is what makes a restart
//! lossless: while the old process drains and the new one starts, the kernel
//! keeps queueing connections in the shared socket's backlog, so none is
//! refused and none is reset. Any supervisor speaking the same protocol works
//! (see `examples/supervisor.rs`).
//!
//! Orderings: the one atomic, `TAKEN`, is `SeqCst` conservatively; its doc
//! says what would be enough.

#[cfg(unix)]
use std::net::{TcpListener, TcpStream};
#[cfg(unix)]
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Error;
use crate::listener::{Addr, Listener, Stream};

/// The first inherited descriptor (`SD_LISTEN_FDS_START`).
#[cfg(unix)]
const LISTEN_FDS_START: i32 = 3;

/// The parsed activation environment: how many sockets, and their names.
#[derive(Debug, PartialEq, Eq)]
struct Activation {
    count: usize,
    names: Vec<String>,
}

/// Reads the activation variables as `sd_listen_fds_with_names` does:
/// nothing for us (`Ok(None)`) when `LISTEN_PID` is unset or names another
/// process, an error when the variables are malformed.
fn parse(
    pid: Option<&str>,
    fds: Option<&str>,
    names: Option<&str>,
    our_pid: u32,
) -> Result<Option<Activation>, String> {
    let Some(pid) = pid else {
        return Ok(None);
    };
    let pid: u32 = pid
        .parse()
        .map_err(|_| format!("LISTEN_PID={pid:?} is not a process id"))?;
    if pid != our_pid {
        // Meant for another process (e.g. our parent, which inherited it).
        return Ok(None);
    }
    let Some(fds) = fds else {
        return Ok(None);
    };
    let count: usize = fds
        .parse()
        .map_err(|_| format!("LISTEN_FDS={fds:?} is not a count"))?;
    if count == 0 {
        return Ok(None);
    }
    let names = match names {
        None => Vec::new(),
        Some(names) => {
            let names: Vec<String> = names.split(':').map(str::to_owned).collect();
            if names.len() != count {
                return Err(format!(
                    "LISTEN_FDNAMES has {} names for {count} sockets",
                    names.len()
                ));
            }
            names
        }
    };
    Ok(Some(Activation { count, names }))
}

/// Which inherited sockets to use: every one (`None`), or the one named
/// `name` in `LISTEN_FDNAMES`; indexes in `0..count`.
fn select(activation: &Activation, name: Option<&str>) -> Result<Vec<usize>, String> {
    match name {
        None => Ok((0..activation.count).collect()),
        Some(name) => activation
            .names
            .iter()
            .position(|n| n == name)
            .map(|index| vec![index])
            .ok_or_else(|| format!("no inherited socket is named {name:?}")),
    }
}

/// An inherited listener, and the connection the check took from it, if any.
pub(crate) type Inherited = (Listener, Option<(Stream, Addr)>);

/// The inherited listening sockets, if this process was socket-activated:
/// every one in order (`name` `None`), or the one `LISTEN_FDNAMES` names
/// `name`.
///
/// Each is validated (a listening TCP or Unix stream socket: it has a local
/// address, no peer, and `accept` works on it) and duplicated close-on-exec,
/// so that processes we start do not inherit it. The check may accept a
/// connection: it is returned with the listener, to be served first. An
/// inherited Unix socket's file is not ours: it is never removed.
pub(crate) fn inherited_listeners(name: Option<&str>) -> Result<Option<Vec<Inherited>>, Error> {
    let var = |key| std::env::var(key).ok();
    let activation = parse(
        var("LISTEN_PID").as_deref(),
        var("LISTEN_FDS").as_deref(),
        var("LISTEN_FDNAMES").as_deref(),
        std::process::id(),
    )
    .map_err(Error::Activation)?;
    let Some(activation) = activation else {
        return Ok(None);
    };
    let indexes = select(&activation, name).map_err(Error::Activation)?;
    take_listeners(&indexes).map(Some)
}

#[cfg(unix)]
fn take_listeners(indexes: &[usize]) -> Result<Vec<Inherited>, Error> {
    // Only the first taker may own the descriptors: after it, their numbers
    // are closed or reused by something else in the process.
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Err(Error::Activation(
            "the inherited sockets were already taken in this process".into(),
        ));
    }
    indexes.iter().map(|&index| take_listener(index)).collect()
}

#[cfg(unix)]
fn take_listener(index: usize) -> Result<Inherited, Error> {
    use std::io;
    use std::os::fd::{IntoRawFd, OwnedFd};
    use std::os::unix::net::{UnixListener, UnixStream};

    let fd = i32::try_from(index)
        .ok()
        .and_then(|i| LISTEN_FDS_START.checked_add(i))
        .ok_or_else(|| Error::Activation(format!("socket index {index} is out of range")))?;
    let not_listening = |why: String| {
        Error::Activation(format!(
            "inherited descriptor {fd} is not a listening TCP or Unix socket{why}"
        ))
    };
    let unconnected =
        |peer: io::Result<()>| matches!(peer, Err(e) if e.kind() == io::ErrorKind::NotConnected);
    // Viewed as a stream first: only a stream can be asked for its peer,
    // and a listening socket has none. std refuses a local address of the
    // other family, which tells TCP from Unix.
    // SAFETY: `parse` found `LISTEN_PID` naming this process and `select`
    // took `index` below `LISTEN_FDS`, so by the socket-activation protocol
    // `fd` is open and handed to this process to own. It is owned once:
    // `TAKEN` lets one caller per process past `take_listeners`, which takes
    // each index once, and nothing else in the crate touches these numbers.
    // Whether it is a listening socket is checked next; one that is not is
    // given back unclosed.
    #[allow(unsafe_code)] // the one `unsafe` outside `sys`: see lib.rs
    let owned = unsafe { crate::sys::adopt_inherited(fd) };
    let tcp = TcpStream::from(owned);
    let listener = if tcp.local_addr().is_ok() && unconnected(tcp.peer_addr().map(drop)) {
        Listener::Tcp(TcpListener::from(OwnedFd::from(tcp)))
    } else {
        let unix = UnixStream::from(OwnedFd::from(tcp));
        if unix.local_addr().is_ok() && unconnected(unix.peer_addr().map(drop)) {
            Listener::Unix {
                socket: UnixListener::from(OwnedFd::from(unix)),
                file: None,
            }
        } else {
            // Not ours to close: give the descriptor back untouched.
            let _ = unix.into_raw_fd();
            return Err(not_listening(String::new()));
        }
    };
    // A UDP socket, or a socket bound but not listening, also has a local
    // address and no peer; only `accept` tells them apart (std has no
    // SO_ACCEPTCONN). Nonblocking, so the probe cannot hang; the server sets
    // that (shared) flag for serving anyway.
    let first = match probe_accept(&listener) {
        Ok(first) => first,
        Err(error) => {
            give_back(listener);
            return Err(not_listening(format!(" ({error})")));
        }
    };
    // `try_clone` duplicates with close-on-exec set. Dropping the original
    // closes only our inherited descriptor, never the socket, which the
    // duplicate (and whoever passed it to us) keeps open. The listener is
    // never `shutdown()`: that would stop it for every holder.
    let duplicate = match &listener {
        Listener::Tcp(socket) => socket.try_clone().map(Listener::Tcp),
        Listener::Unix { socket, .. } => socket
            .try_clone()
            .map(|socket| Listener::Unix { socket, file: None }),
    }
    .map_err(|e| Error::Activation(format!("cannot duplicate descriptor {fd}: {e}")))?;
    drop(listener);
    Ok((duplicate, first))
}

/// Leaves an inherited descriptor open, as it was handed to us.
#[cfg(unix)]
fn give_back(listener: Listener) {
    use std::os::fd::IntoRawFd;
    match listener {
        Listener::Tcp(socket) => {
            let _ = socket.into_raw_fd();
        }
        Listener::Unix { socket, .. } => {
            let _ = socket.into_raw_fd();
        }
    }
}

/// One nonblocking `accept`: `Ok(None)` if nothing is waiting, the
/// connection if one was, an error if the socket cannot accept at all.
#[cfg(unix)]
fn probe_accept(listener: &Listener) -> std::io::Result<Option<(Stream, Addr)>> {
    use std::io::ErrorKind;
    listener.set_nonblocking(true)?;
    match listener.accept() {
        Ok(accepted) => Ok(Some(accepted)),
        Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(None),
        // A connection that failed before we took it says nothing against
        // the listener.
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Set once the inherited sockets have been taken: the `swap` lets one
/// caller only take them, which any ordering promises (`Relaxed` would be
/// enough).
#[cfg(unix)]
static TAKEN: AtomicBool = AtomicBool::new(false);

#[cfg(not(unix))]
fn take_listeners(_indexes: &[usize]) -> Result<Vec<Inherited>, Error> {
    Err(Error::Activation(
        "socket activation needs a Unix system".into(),
    ))
}

/// Sends `sd_notify` messages when `NOTIFY_SOCKET` is set.
pub(crate) struct Notifier {
    #[cfg(unix)]
    socket: std::os::unix::net::UnixDatagram,
    #[cfg(unix)]
    target: Target,
}

#[cfg(unix)]
enum Target {
    Path(std::path::PathBuf),
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Abstract(std::os::unix::net::SocketAddr),
}

impl Notifier {
    /// A notifier for `NOTIFY_SOCKET` (a path, or `@name` for Linux's
    /// abstract namespace); `None` when it is unset or unusable.
    pub(crate) fn from_env() -> Option<Notifier> {
        #[cfg(unix)]
        {
            let target = std::env::var_os("NOTIFY_SOCKET")?;
            let target = target.to_str()?;
            let target = match target.strip_prefix('@') {
                #[cfg(any(target_os = "linux", target_os = "android"))]
                Some(name) => {
                    use std::os::linux::net::SocketAddrExt;
                    let addr =
                        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok()?;
                    Target::Abstract(addr)
                }
                _ => Target::Path(target.into()),
            };
            let socket = std::os::unix::net::UnixDatagram::unbound().ok()?;
            Some(Notifier { socket, target })
        }
        #[cfg(not(unix))]
        None
    }

    /// Sends one notification. Failures are ignored: readiness is advice to
    /// the supervisor, and the server works without it.
    pub(crate) fn send(&self, message: &str) {
        #[cfg(unix)]
        {
            let _ = match &self.target {
                Target::Path(path) => self.socket.send_to(message.as_bytes(), path),
                #[cfg(any(target_os = "linux", target_os = "android"))]
                Target::Abstract(addr) => self.socket.send_to_addr(message.as_bytes(), addr),
            };
        }
        #[cfg(not(unix))]
        let _ = message;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: u32 = 4242;

    #[test]
    fn no_variables_means_no_activation() {
        assert_eq!(parse(None, None, None, ME), Ok(None));
        assert_eq!(parse(None, Some("1"), None, ME), Ok(None));
    }

    #[test]
    fn another_process_pid_is_ignored() {
        assert_eq!(parse(Some("1"), Some("1"), None, ME), Ok(None));
    }

    #[test]
    fn our_pid_with_sockets_activates() {
        assert_eq!(
            parse(Some("4242"), Some("2"), Some("http:admin"), ME),
            Ok(Some(Activation {
                count: 2,
                names: vec!["http".into(), "admin".into()],
            }))
        );
        assert_eq!(
            parse(Some("4242"), Some("1"), None, ME),
            Ok(Some(Activation {
                count: 1,
                names: vec![],
            }))
        );
    }

    #[test]
    fn zero_or_missing_count_is_no_activation() {
        assert_eq!(parse(Some("4242"), Some("0"), None, ME), Ok(None));
        assert_eq!(parse(Some("4242"), None, None, ME), Ok(None));
    }

    #[test]
    fn malformed_variables_are_errors() {
        assert!(parse(Some("me"), Some("1"), None, ME).is_err());
        assert!(parse(Some("4242"), Some("-1"), None, ME).is_err());
        assert!(parse(Some("4242"), Some("many"), None, ME).is_err());
        assert!(parse(Some("4242"), Some("2"), Some("only-one"), ME).is_err());
    }

    #[test]
    fn sockets_are_selected_by_name() {
        let activation = Activation {
            count: 2,
            names: vec!["http".into(), "admin".into()],
        };
        assert_eq!(select(&activation, None), Ok(vec![0, 1]), "every one");
        assert_eq!(select(&activation, Some("admin")), Ok(vec![1]));
        assert!(select(&activation, Some("nope")).is_err());
    }
}
