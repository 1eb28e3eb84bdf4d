//! What belongs to the whole process: its limit on open descriptors, its
//! signal dispositions, and the descriptors it inherited.

#[cfg(unix)]
use std::ffi::c_int;
use std::io;
#[cfg(unix)]
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

#[cfg(unix)]
use super::check;

/// The soft limit on open descriptors (`RLIMIT_NOFILE`), if finite.
#[cfg(unix)]
pub(crate) fn descriptor_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid `rlimit` the kernel writes into.
    let result = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if result != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    #[allow(clippy::useless_conversion)] // `rlim_t` is not u64 everywhere
    u64::try_from(limit.rlim_cur).ok()
}

/// Raises the soft limit on open descriptors to the hard limit; returns the
/// soft limit now (`None` for unlimited). On macOS the kernel also caps it
/// at `OPEN_MAX`, which `setrlimit` refuses to exceed.
#[cfg(unix)]
pub(crate) fn raise_descriptor_limit() -> io::Result<Option<u64>> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid `rlimit` the kernel writes into.
    check(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) })?;
    if limit.rlim_cur != limit.rlim_max {
        #[cfg(not(any(target_os = "macos", target_os = "ios")))]
        let soft = limit.rlim_max;
        #[cfg(any(target_os = "macos", target_os = "ios"))]
        // `OPEN_MAX` of `<sys/syslimits.h>`, which libc does not declare.
        let soft = limit.rlim_max.min(10_240);
        let raised = libc::rlimit {
            rlim_cur: soft,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `raised` is a valid `rlimit` the kernel reads.
        check(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) })?;
    }
    Ok(descriptor_limit())
}

/// Windows has no limit on sockets to raise.
#[cfg(windows)]
pub(crate) fn raise_descriptor_limit() -> io::Result<Option<u64>> {
    Ok(None)
}

/// Windows has no per-process limit on sockets to read (only memory bounds
/// them), so the caller's fallback applies.
#[cfg(windows)]
pub(crate) fn descriptor_limit() -> Option<u64> {
    None
}

/// Whether SIGHUP is currently ignored (`SIG_IGN`), e.g. under `nohup`.
/// Reads the disposition without changing it.
#[cfg(unix)]
pub(crate) fn hangup_is_ignored() -> io::Result<bool> {
    signal_is_ignored(libc::SIGHUP)
}

/// Windows has no SIGHUP (closing the console is a control event, which
/// `ctrlc` handles), so there is no inherited "ignore" to keep.
#[cfg(windows)]
pub(crate) fn hangup_is_ignored() -> io::Result<bool> {
    Ok(false)
}

/// Sets SIGHUP's disposition back to "ignore".
#[cfg(unix)]
pub(crate) fn ignore_hangup() -> io::Result<()> {
    ignore_signal(libc::SIGHUP)
}

/// Nothing to do: Windows has no SIGHUP (see [`hangup_is_ignored`]).
#[cfg(windows)]
pub(crate) fn ignore_hangup() -> io::Result<()> {
    Ok(())
}

/// Whether `signal` is currently ignored (`SIG_IGN`), e.g. SIGHUP under
/// `nohup`. Reads the disposition without changing it.
#[cfg(unix)]
fn signal_is_ignored(signal: c_int) -> io::Result<bool> {
    // SAFETY: all-zero is a valid `sigaction` (no handler, empty mask).
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only reads the current one into `current`,
    // a valid `sigaction` the kernel writes into.
    unsafe { check(libc::sigaction(signal, std::ptr::null(), &mut current))? };
    Ok(current.sa_sigaction == libc::SIG_IGN)
}

/// Sets `signal`'s disposition back to "ignore".
#[cfg(unix)]
fn ignore_signal(signal: c_int) -> io::Result<()> {
    // SAFETY: all-zero is a valid `sigaction` (empty mask, no flags); with
    // `SIG_IGN` as its handler no code of ours runs in signal context.
    let mut ignore: libc::sigaction = unsafe { std::mem::zeroed() };
    ignore.sa_sigaction = libc::SIG_IGN;
    // SAFETY: `ignore` is a valid `sigaction` the kernel only reads; the old
    // action is not asked for (null).
    unsafe { check(libc::sigaction(signal, &ignore, std::ptr::null_mut()))? };
    Ok(())
}

/// Takes ownership of a descriptor this process inherited, as
/// [`OwnedFd::from_raw_fd`] does, for socket activation.
///
/// # Safety
///
/// `fd` must be open and this process's to own, and nothing else in the
/// process may own it or use it afterwards: the socket-activation protocol
/// hands over the descriptors `LISTEN_FDS` counts when `LISTEN_PID` names
/// this process, and each may be taken at most once. Only the caller can
/// know that, having read the environment and kept count.
#[cfg(unix)]
pub(crate) unsafe fn adopt_inherited(fd: RawFd) -> OwnedFd {
    // SAFETY: the caller promises that `fd` is open and ours alone, which
    // is what `from_raw_fd` asks.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_descriptor_limit_is_read() {
        // Every unix test environment has a finite limit of at least a few
        // dozen; Windows has none to read.
        assert!(descriptor_limit().map_or(true, |n| n >= 16));
    }
}
