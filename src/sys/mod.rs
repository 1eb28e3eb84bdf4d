//! The operating system: every call into it that std does not offer.
//!
//! # What every platform provides
//!
//! Linux and Android, the other unix systems (macOS, the BSDs) and Windows
//! each provide, under the same names:
//!
//! - **a readiness wait**, [`Poller`]: add a socket under a token, remove or
//!   forget it, wait for ready tokens with a timeout. Its mechanism is a
//!   [`Backend`]: epoll (`epoll.rs`) on Linux and Android, `poll(2)`
//!   (`poll.rs`) on every unix, `WSAPoll` (`windows.rs`) on Windows;
//! - **one-shot arming**, [`Interest::Input`] and [`Interest::Output`]: a
//!   socket is reported once, then not again until it is armed again, so
//!   that it goes to one waiter. The workers' shared wait
//!   (`crate::readiness`) is built on this, with `Epoll` (every waiter in
//!   the kernel's wait at once) or a [`TieredSet`], whose recent entries
//!   one waiter at a time polls and whose old ones another does (each a
//!   [`Snapshot`]);
//! - **waits on one socket** under a deadline: [`wait_readable`],
//!   [`wait_writable`];
//! - **the raw material of wake-ups**: an `eventfd` on Linux and Android,
//!   a connected `socket_pair` elsewhere (`crate::wake` builds on them);
//! - **socket calls** ([`socket.rs`](socket)): a nonblocking `recv` and
//!   `send` on a blocking socket, the output a peer has not acknowledged
//!   yet (`unsent_output`), the input waiting in the kernel
//!   (`unread_input`) and the receive low-water mark
//!   (`set_receive_low_water`; not on Windows), the listen backlog,
//!   accepted sockets' timeouts set once on their listener, and which
//!   `accept` errors mean "out of resources";
//! - **the process** ([`process.rs`](process)): the descriptor limit (read
//!   and raise), SIGHUP's disposition (read, and reset to "ignore"), and
//!   adopting a descriptor inherited through socket activation.
//!
//! Where a platform lacks something the function is still there and says
//! what happens instead (Windows has no descriptor limit and no SIGHUP, and
//! keeps std's backlog; only Linux, Android and macOS tell the unacknowledged
//! output). Nothing here knows the crate's types above it (wake-ups,
//! workers, connections): dependencies point into `sys`, never out of it.
//!
//! # Safety
//!
//! This is the crate's only module allowed `unsafe` code, and each block
//! says why it is sound. The rest of the crate sees safe functions that take
//! borrowed descriptors, so a descriptor can never be used after it was
//! closed. The one exception is `adopt_inherited`, an `unsafe fn`: whether an
//! inherited descriptor is the process's to own is known only to its caller
//! (`systemd.rs`), which makes the crate's one `unsafe` call outside `sys`
//! and says there why it is sound.
//!
//! It is also the one place that knows unix descriptors from Windows
//! sockets: the rest of the crate names them [`Borrowed`], [`Raw`] and
//! [`AsSource`], which are std's `BorrowedFd`, `RawFd` and `AsFd` on unix and
//! `BorrowedSocket`, `RawSocket` and `AsSocket` on Windows.
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::ffi::c_int;
#[cfg(unix)]
use std::io;
#[cfg(unix)]
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
#[cfg(windows)]
use std::os::windows::io::{AsRawSocket, AsSocket, BorrowedSocket, RawSocket};
use std::time::Duration;

#[cfg(any(target_os = "linux", target_os = "android"))]
mod epoll;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod eventfd;
// On Linux and Android wake-ups use an `eventfd`; only the tests use pairs.
#[cfg(any(test, not(any(target_os = "linux", target_os = "android"))))]
mod pair;
mod poll;
mod poller;
mod process;
mod socket;
#[cfg(windows)]
mod windows;

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use epoll::Epoll;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use eventfd::eventfd;
#[cfg(any(test, not(any(target_os = "linux", target_os = "android"))))]
pub(crate) use pair::socket_pair;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) use pair::Socket;
pub(crate) use poll::{wait_readable, wait_writable, PollSet, Snapshot, Tier, TieredSet};
pub(crate) use poller::Poller;
#[cfg(unix)]
pub(crate) use process::adopt_inherited;
pub(crate) use process::{
    descriptor_limit, hangup_is_ignored, ignore_hangup, raise_descriptor_limit,
};
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use socket::set_accepted_timeouts;
#[cfg(unix)]
pub(crate) use socket::{recv_nonblocking, send_nonblocking};
pub(crate) use socket::{set_backlog, RESOURCE_ERRORS};
#[cfg(feature = "http")]
pub(crate) use socket::{set_receive_low_water, unread_input, unsent_output};

/// A descriptor (unix) or socket (Windows) borrowed for the call.
#[cfg(unix)]
pub(crate) type Borrowed<'a> = BorrowedFd<'a>;
/// A descriptor (unix) or socket (Windows) borrowed for the call.
#[cfg(windows)]
pub(crate) type Borrowed<'a> = BorrowedSocket<'a>;

/// A descriptor's number, only to recognise it again (never to use it).
#[cfg(unix)]
pub(crate) type Raw = RawFd;
/// A socket's number, only to recognise it again (never to use it).
#[cfg(windows)]
pub(crate) type Raw = RawSocket;

/// Anything with a socket in it (listener, stream, wake-up socket): std's
/// `AsFd` on unix, `AsSocket` on Windows, under one name.
pub(crate) trait AsSource {
    /// The socket, borrowed.
    fn as_source(&self) -> Borrowed<'_>;

    /// The socket's number, to forget it in a poll set before it closes.
    fn raw_source(&self) -> Raw {
        raw(self.as_source())
    }
}

#[cfg(unix)]
impl<T: AsFd + ?Sized> AsSource for T {
    fn as_source(&self) -> Borrowed<'_> {
        self.as_fd()
    }
}

#[cfg(windows)]
impl<T: AsSocket + ?Sized> AsSource for T {
    fn as_source(&self) -> Borrowed<'_> {
        self.as_socket()
    }
}

fn raw(source: Borrowed<'_>) -> Raw {
    #[cfg(unix)]
    return source.as_raw_fd();
    #[cfg(windows)]
    return source.as_raw_socket();
}

/// What a readiness wait reported for one registered descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Readable {
    pub(crate) token: u64,
}

/// Which readiness mechanism a [`Poller`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    /// Linux's epoll: the cost of a wait does not grow with the number of
    /// idle descriptors.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Epoll,
    /// `poll(2)`: portable, but scans every registered descriptor per wait.
    Poll,
}

impl Backend {
    /// The best backend of this platform.
    pub(crate) fn native() -> Backend {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        return Backend::Epoll;
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        return Backend::Poll;
    }

    /// Every backend of this platform, for the tests to run on each.
    #[cfg(test)]
    pub(crate) fn all() -> Vec<Backend> {
        let mut all = vec![Backend::Poll];
        if Backend::native() != Backend::Poll {
            all.push(Backend::native());
        }
        all
    }
}

/// How a descriptor is watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Interest {
    /// Reported on every wait while readable (listener, wake-up socket).
    Level,
    /// Input (or a hang-up) on a parked connection. `poll(2)` reports it
    /// once, then not again until it is armed again, so that it goes to
    /// one worker; epoll watches it edge-triggered, registered once, and
    /// the parking settles who owns a report (see `crate::parking`).
    Input,
    /// Reported once when it can take more output (or has failed), then
    /// disarmed until rearmed (a parked connection with output queued).
    Output,
    /// Reported once per change (epoll's edge trigger), to one waiter: the
    /// workers' job announcements.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Edge,
}

/// Converts `-1` results into the thread's `errno`.
#[cfg(unix)]
fn check(result: c_int) -> io::Result<c_int> {
    if result == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// A timeout in whole milliseconds for `poll`/`epoll_wait`/`WSAPoll`: `-1`
/// for none, rounded **up**, so that a deadline 0.3 ms away is not polled in
/// a spin of zero-millisecond waits.
fn timeout_ms(timeout: Option<Duration>) -> c_int {
    match timeout {
        None => -1,
        Some(t) => {
            let ms = t.as_nanos().div_ceil(1_000_000);
            c_int::try_from(ms).unwrap_or(c_int::MAX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_round_up_to_whole_milliseconds() {
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_micros(300))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_millis(5))), 5);
        assert_eq!(timeout_ms(Some(Duration::MAX)), c_int::MAX);
    }
}
