//! `eventfd` (Linux, Android): a counter in the kernel, readable while
//! nonzero. One descriptor is both ends of a wake-up: writing adds to the
//! counter, reading takes it whole and resets it to zero.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use super::check;

/// A new `eventfd`, at zero: nonblocking (a write that would overflow the
/// counter, or a read of zero, is `WouldBlock`) and close-on-exec.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain system call without pointers; on success it returns a
    // new descriptor that nothing else owns.
    let fd = unsafe { check(libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK))? };
    // SAFETY: `fd` was just returned by `eventfd` and is owned by nobody
    // else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
