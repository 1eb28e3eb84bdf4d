//! Windows: `WSAPoll`, the `poll(2)` of Winsock, which the `poll(2)`
//! backend (`poll.rs`) uses there, and the few Winsock
//! declarations this crate needs, as in `winsock2.h` and `winerror.h`.
//!
//! std links `ws2_32` already and initialises Winsock (`WSAStartup`) before
//! it creates its first socket, and every socket polled here is one of
//! std's.

use std::ffi::{c_int, c_short, c_ulong};
use std::io;
use std::time::Duration;

use super::{timeout_ms, Raw};

/// `SOCKET`: a pointer-sized handle (`UINT_PTR`).
type Socket = usize;

/// `WSAPOLLFD`: one entry of a `WSAPoll` set, laid out as `pollfd`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(super) struct PollFd {
    fd: Socket,
    pub(super) events: c_short,
    pub(super) revents: c_short,
}

/// `POLLRDNORM`: normal data (or a connection to accept) can be read
/// without blocking. Hang-up (`POLLHUP`, 0x0002) and errors (`POLLERR`,
/// 0x0001; `POLLNVAL`, 0x0004) are reported without being asked for.
const POLLRDNORM: c_short = 0x0100;
/// `POLLWRNORM`: normal data can be written without blocking.
pub(super) const POLL_OUT: c_short = 0x0010;
/// `SOCKET_ERROR`.
const SOCKET_ERROR: c_int = -1;
/// `WSAEMFILE`: too many open sockets.
pub(super) const WSAEMFILE: i32 = 10024;
/// `WSAENOBUFS`: no buffer space available.
pub(super) const WSAENOBUFS: i32 = 10055;

#[link(name = "ws2_32")]
extern "system" {
    fn WSAPoll(fds: *mut PollFd, nfds: c_ulong, timeout: c_int) -> c_int;
    fn WSAGetLastError() -> c_int;
}

/// An entry asking whether `socket` has input (or hung up).
pub(super) fn poll_entry(socket: Raw) -> PollFd {
    PollFd {
        // std widens `SOCKET` (pointer-sized) to `RawSocket` (u64); the
        // value came from a `SOCKET`, so narrowing it back loses nothing.
        fd: socket as Socket,
        events: POLLRDNORM,
        revents: 0,
    }
}

/// The socket of an entry.
pub(super) fn poll_source(entry: &PollFd) -> Raw {
    entry.fd as Raw
}

/// Waits with `WSAPoll` until an entry of `fds` is ready or `timeout`
/// passes, and fills their `revents`.
pub(super) fn poll(fds: &mut [PollFd], timeout: Option<Duration>) -> io::Result<()> {
    if fds.is_empty() {
        // `WSAPoll` rejects an empty set (`WSAEINVAL`), where `poll(2)`
        // sleeps. With no timeout a wait on nothing never ends; parking
        // the thread is that, up to a spurious wake-up.
        match timeout {
            Some(timeout) => std::thread::sleep(timeout),
            None => std::thread::park(),
        }
        return Ok(());
    }
    let count = c_ulong::try_from(fds.len()).unwrap_or(c_ulong::MAX);
    // SAFETY: `fds` holds `count` initialised `WSAPOLLFD`s; Winsock writes
    // only their `revents`. Winsock is initialised: every socket in the set
    // is one of std's, and std starts Winsock before creating one. A socket
    // closed meanwhile is reported as `POLLNVAL`, not used.
    let result = unsafe { WSAPoll(fds.as_mut_ptr(), count, timeout_ms(timeout)) };
    if result == SOCKET_ERROR {
        // SAFETY: no arguments; reads this thread's last Winsock error.
        let code = unsafe { WSAGetLastError() };
        return Err(io::Error::from_raw_os_error(code));
    }
    Ok(())
}
