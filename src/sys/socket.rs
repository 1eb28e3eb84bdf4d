//! Socket calls std does not offer: reading and writing what the socket
//! takes now without making it nonblocking for everyone else, how much
//! output the peer has not acknowledged yet, how much input waits in the
//! kernel and how much must before the socket counts as readable (the
//! receive low-water mark), the listen backlog, the
//! timeouts a listener hands to the sockets it accepts, and which `accept`
//! errors mean "out of resources".

#[cfg(unix)]
use std::ffi::c_int;
use std::io;
#[cfg(unix)]
use std::os::fd::{AsFd, AsRawFd};
#[cfg(any(target_os = "linux", target_os = "android"))]
use std::time::Duration;

#[cfg(unix)]
use super::check;
#[cfg(windows)]
use super::windows::{WSAEMFILE, WSAENOBUFS};
#[cfg(windows)]
use super::AsSource;
use super::Borrowed;

/// The `accept` errors that mean the process or the system is out of
/// descriptors, buffers or memory (std reports some of them as an
/// uncategorized kind, so they are matched by number).
#[cfg(unix)]
pub(crate) const RESOURCE_ERRORS: [i32; 4] =
    [libc::ENOMEM, libc::ENFILE, libc::EMFILE, libc::ENOBUFS];
/// The `accept` errors that mean the process or the system is out of
/// sockets or buffers: `WSAEMFILE` and `WSAENOBUFS` (winerror.h).
#[cfg(windows)]
pub(crate) const RESOURCE_ERRORS: [i32; 2] = [WSAEMFILE, WSAENOBUFS];

/// Reads what `stream` already holds into `buf`, without blocking:
/// `WouldBlock` when nothing has arrived. The stream stays blocking for
/// everyone else: on unix this is one `recv` with `MSG_DONTWAIT`.
#[cfg(unix)]
pub(crate) fn recv_nonblocking(stream: Borrowed<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes, and the
    // descriptor is borrowed from an open stream for the call.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    // A negative count is -1 with `errno` set.
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Writes what `stream`'s send buffer takes of `buf` now, without blocking:
/// `WouldBlock` when it is full.
#[cfg(unix)]
pub(crate) fn send_nonblocking(stream: Borrowed<'_>, buf: &[u8]) -> io::Result<usize> {
    // A peer that has gone must give an error, not a SIGPIPE.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    // Elsewhere std sets `SO_NOSIGPIPE` on its sockets instead.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let flags = libc::MSG_DONTWAIT;
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes, and the
    // descriptor is borrowed from an open stream for the call.
    let n = unsafe { libc::send(stream.as_raw_fd(), buf.as_ptr().cast(), buf.len(), flags) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// How many bytes written to `stream` its peer has not acknowledged yet:
/// the part of the send queue still on this side. What a client has really
/// taken is what was written minus this. `None` where the system does not
/// tell (then only the write timeout bounds a client that does not read).
#[cfg(any(target_os = "linux", target_os = "android"))]
#[cfg_attr(not(feature = "http"), allow(dead_code))] // used by the HTTP layer
pub(crate) fn unsent_output(stream: Borrowed<'_>) -> Option<u64> {
    let mut unsent: c_int = 0;
    // SAFETY: `TIOCOUTQ` (`SIOCOUTQ` for TCP) writes one `int` through the
    // pointer, which points at one; the descriptor is borrowed, open.
    let result = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut unsent) };
    if result == -1 {
        return None;
    }
    u64::try_from(unsent).ok()
}

/// How many bytes written to `stream` are still in its send queue
/// (`SO_NWRITE`).
#[cfg(any(target_os = "macos", target_os = "ios"))]
#[cfg_attr(not(feature = "http"), allow(dead_code))] // used by the HTTP layer
pub(crate) fn unsent_output(stream: Borrowed<'_>) -> Option<u64> {
    let mut unsent: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: `SO_NWRITE` writes one `int` and its length through the
    // pointers, which point at an `int` and its size; the descriptor is
    // borrowed, open.
    let result = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NWRITE,
            (&mut unsent as *mut c_int).cast(),
            &mut len,
        )
    };
    if result == -1 {
        return None;
    }
    u64::try_from(unsent).ok()
}

/// Not told on this system.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios"
)))]
#[cfg_attr(not(feature = "http"), allow(dead_code))] // used by the HTTP layer
pub(crate) fn unsent_output(stream: Borrowed<'_>) -> Option<u64> {
    let _ = stream;
    None
}

/// How many bytes have arrived on `stream` and wait in the kernel, not
/// read yet (`FIONREAD`): what a read would take now without waiting.
/// `None` where the system does not tell.
#[cfg(unix)]
#[cfg_attr(not(feature = "http"), allow(dead_code))] // used by the HTTP layer
pub(crate) fn unread_input(stream: Borrowed<'_>) -> Option<usize> {
    let mut unread: c_int = 0;
    // SAFETY: `FIONREAD` writes one `int` through the pointer, which points
    // at one; the descriptor is borrowed, open.
    let result = unsafe { libc::ioctl(stream.as_raw_fd(), libc::FIONREAD, &mut unread) };
    if result == -1 {
        return None;
    }
    usize::try_from(unread).ok()
}

/// Not used on Windows: see [`set_receive_low_water`].
#[cfg(windows)]
#[cfg_attr(not(feature = "http"), allow(dead_code))] // used by the HTTP layer
pub(crate) fn unread_input(stream: Borrowed<'_>) -> Option<usize> {
    let _ = stream;
    None
}

/// Makes `stream` count as readable (to `poll`, `epoll` and `kqueue`, and
/// to a blocking read) only once at least `bytes` have arrived
/// (`SO_RCVLOWAT`), or it is closed or failed; 1 is the usual mark. The
/// kernel keeps what arrives meanwhile in its own buffers, which Linux
/// grows to hold the mark; the BSDs and macOS cap the mark at the
/// buffer's size, and Linux also reports the socket readable when its
/// memory runs short or the window closes, so a wake-up below the mark
/// means that the rest cannot wait there.
#[cfg(unix)]
#[cfg_attr(not(feature = "http"), allow(dead_code))] // used by the HTTP layer
pub(crate) fn set_receive_low_water(stream: Borrowed<'_>, bytes: usize) -> io::Result<()> {
    let value = c_int::try_from(bytes.max(1)).unwrap_or(c_int::MAX);
    let size = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: `value` is an `int` the kernel reads `size` bytes of; the
    // descriptor is borrowed, so open for the call.
    unsafe {
        check(libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            std::ptr::addr_of!(value).cast(),
            size,
        ))?;
    }
    Ok(())
}

/// Windows sockets do not support `SO_RCVLOWAT` (`WSAPoll` reports a
/// socket readable once anything has arrived).
#[cfg(windows)]
#[cfg_attr(not(feature = "http"), allow(dead_code))] // used by the HTTP layer
pub(crate) fn set_receive_low_water(stream: Borrowed<'_>, bytes: usize) -> io::Result<()> {
    let _ = (stream, bytes);
    Err(io::ErrorKind::Unsupported.into())
}

/// Sets the accept backlog of a listening socket. Calling `listen` again on
/// a listening socket only changes its backlog; the kernel caps the value at
/// `net.core.somaxconn`.
#[cfg(unix)]
pub(crate) fn set_backlog(listener: &impl AsFd, backlog: u32) -> io::Result<()> {
    let backlog = c_int::try_from(backlog).unwrap_or(c_int::MAX);
    // SAFETY: plain system call on a borrowed, open descriptor.
    unsafe { check(libc::listen(listener.as_fd().as_raw_fd(), backlog))? };
    Ok(())
}

/// Keeps std's backlog (128) on Windows. Winsock documents that `listen` on
/// a socket that already listens succeeds without changing its backlog, and
/// std's `TcpListener::bind` has listened already.
#[cfg(windows)]
pub(crate) fn set_backlog(listener: &impl AsSource, backlog: u32) -> io::Result<()> {
    let _ = (listener, backlog);
    Ok(())
}

/// Sets a TCP listener's receive and send timeouts (`None`: none). Linux
/// copies them to every connection accepted from it, which saves two
/// system calls per connection.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn set_accepted_timeouts(
    listener: &impl AsFd,
    read: Option<Duration>,
    write: Option<Duration>,
) -> io::Result<()> {
    for (option, timeout) in [(libc::SO_RCVTIMEO, read), (libc::SO_SNDTIMEO, write)] {
        let timeout = timeout.unwrap_or(Duration::ZERO);
        let mut value = libc::timeval {
            tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_usec: libc::suseconds_t::from(timeout.subsec_micros()),
        };
        // As std does: a timeout under a microsecond is not "none".
        if !timeout.is_zero() && value.tv_sec == 0 && value.tv_usec == 0 {
            value.tv_usec = 1;
        }
        let size = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
        // SAFETY: `value` is a valid `timeval` the kernel reads `size`
        // bytes of; the descriptor is borrowed, so open for the call.
        unsafe {
            check(libc::setsockopt(
                listener.as_fd().as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                std::ptr::addr_of!(value).cast(),
                size,
            ))?;
        }
    }
    Ok(())
}
