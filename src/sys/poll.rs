//! `poll(2)` (every unix; `WSAPoll` on Windows, declared in
//! `windows.rs`): a set of descriptors kept by us and
//! passed whole to every wait, which scans them all.
//!
//! One-shot arming is done here, not by the kernel: an entry reported once
//! is marked disarmed and left out of the next waits until it is armed
//! again. Since the set is ours, a descriptor must be taken out of it before
//! it is closed, or a wait would poll a number that may already name another
//! file or socket.

use std::collections::HashMap;
use std::io;
use std::marker::PhantomData;
use std::time::Duration;

#[cfg(windows)]
use super::windows::{poll, poll_entry, poll_source, PollFd, POLL_OUT};
#[cfg(unix)]
use super::{check, timeout_ms};
use super::{raw, Borrowed, Interest, Raw, Readable};

/// A `poll(2)` (`WSAPoll`) set: the registered descriptors, each armed or
/// not.
#[derive(Default)]
pub(crate) struct PollSet {
    /// Descriptor -> (token, interest, armed).
    entries: HashMap<Raw, (u64, Interest, bool)>,
    /// The entries of the last wait, kept for their allocation.
    fds: Vec<PollFd>,
}

impl PollSet {
    /// Watches `fd` under `token` for `interest`, armed: whether it was in
    /// the set or not, and whether it was armed or not.
    pub(crate) fn arm(&mut self, fd: Raw, token: u64, interest: Interest) {
        self.entries.insert(fd, (token, interest, true));
    }

    /// Stops reporting `fd` until it is armed again; returns whether it is
    /// in the set.
    pub(crate) fn disarm(&mut self, fd: Raw) -> bool {
        match self.entries.get_mut(&fd) {
            Some((_, _, armed)) => {
                *armed = false;
                true
            }
            None => false,
        }
    }

    /// Takes `fd` out of the set: before it is closed.
    pub(crate) fn remove(&mut self, fd: Raw) {
        self.entries.remove(&fd);
    }

    /// Waits until an armed descriptor is ready or `timeout` passes, and
    /// appends the ready ones to `events`, disarming the one-shot ones.
    pub(crate) fn wait(
        &mut self,
        events: &mut Vec<Readable>,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let mut fds = std::mem::take(&mut self.fds);
        fds.clear();
        self.armed_entries(&mut fds);
        // Every descriptor in the set is open: whoever closes one removes it
        // first (`Poller::forget`).
        let polled = poll(&mut fds, timeout);
        if polled.is_ok() {
            self.take_ready(&fds, events);
        }
        self.fds = fds;
        polled
    }

    /// The armed entries as they are now, after `wake`, to be polled
    /// without the set ([`Snapshot::wait`]) while others change it; then
    /// [`PollSet::take_snapshot_ready`] takes what was found.
    pub(crate) fn snapshot<'a>(&self, wake: Borrowed<'a>) -> Snapshot<'a> {
        let mut fds = vec![poll_entry(raw(wake))];
        self.armed_entries(&mut fds);
        Snapshot {
            fds,
            wake: PhantomData,
        }
    }

    /// Appends to `events` what `snapshot`'s wait found ready among the
    /// set's entries, disarming the one-shot ones. An entry disarmed or
    /// removed since the snapshot was taken is not reported: whoever did
    /// that has taken it away.
    pub(crate) fn take_snapshot_ready(
        &mut self,
        snapshot: &Snapshot<'_>,
        events: &mut Vec<Readable>,
    ) {
        self.take_ready(&snapshot.fds[1..], events);
    }

    /// Appends an entry for every armed descriptor.
    fn armed_entries(&self, fds: &mut Vec<PollFd>) {
        fds.extend(self.entries.iter().filter(|(_, (_, _, armed))| *armed).map(
            |(&fd, &(_, interest, _))| {
                let mut entry = poll_entry(fd);
                if interest == Interest::Output {
                    entry.events = POLL_OUT;
                }
                entry
            },
        ));
    }

    /// Reports the polled entries that are ready, disarming one-shot ones.
    fn take_ready(&mut self, fds: &[PollFd], events: &mut Vec<Readable>) {
        for pollfd in fds.iter().filter(|p| p.revents != 0) {
            if let Some((token, interest, armed)) = self.entries.get_mut(&poll_source(pollfd)) {
                // Disarmed meanwhile (taken away, maybe closed): not ours.
                if !*armed {
                    continue;
                }
                if *interest != Interest::Level {
                    *armed = false;
                }
                events.push(Readable { token: *token });
            }
        }
    }
}

/// The armed entries of a [`PollSet`] at one moment, and first a wake-up
/// descriptor of the caller's, which stays open as long as the snapshot
/// lives (`'a`): what the workers' leader polls while the others arm and
/// disarm entries in the set.
pub(crate) struct Snapshot<'a> {
    fds: Vec<PollFd>,
    wake: PhantomData<Borrowed<'a>>,
}

impl Snapshot<'_> {
    /// Waits until an entry is ready or `timeout` passes. An entry's
    /// descriptor may be closed after the snapshot was taken: `poll(2)` then
    /// reports it as invalid (`POLLNVAL`) or polls whatever took its number,
    /// a report that [`PollSet::take_snapshot_ready`] drops, the entry
    /// having been disarmed before the close. Whoever disarms an entry
    /// should wake the waiter, so that it polls the set anew.
    pub(crate) fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        poll(&mut self.fds, timeout)
    }

    /// Whether the wait ended because of the wake-up descriptor.
    pub(crate) fn woken(&self) -> bool {
        self.fds[0].revents != 0
    }
}

/// Waits until `source` has input (or hung up) or `timeout` passes;
/// returns whether it has. This is how a read under a deadline waits.
pub(crate) fn wait_readable(source: Borrowed<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    let mut fds = [poll_entry(raw(source))];
    // The descriptor is borrowed, so open for the whole wait.
    match poll(&mut fds, timeout) {
        Ok(()) => Ok(fds[0].revents != 0),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
        Err(e) => Err(e),
    }
}

/// Waits until `stream` can take more output (or has failed) or `timeout`
/// passes; returns whether it can.
pub(crate) fn wait_writable(stream: Borrowed<'_>, timeout: Duration) -> io::Result<bool> {
    let mut fds = [poll_entry(raw(stream))];
    fds[0].events = POLL_OUT;
    match poll(&mut fds, Some(timeout)) {
        Ok(()) => Ok(fds[0].revents != 0),
        // Interrupted: the caller looks at its deadline and waits again.
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
        Err(e) => Err(e),
    }
}

/// One entry of a `poll(2)` set.
#[cfg(unix)]
type PollFd = libc::pollfd;

/// The `poll` event for "output possible".
#[cfg(unix)]
const POLL_OUT: std::ffi::c_short = libc::POLLOUT;

/// An entry asking whether `fd` has input (or hung up).
#[cfg(unix)]
fn poll_entry(fd: Raw) -> PollFd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// The descriptor of an entry.
#[cfg(unix)]
fn poll_source(entry: &PollFd) -> Raw {
    entry.fd
}

/// Waits with `poll(2)` until an entry of `fds` is ready or `timeout`
/// passes, and fills their `revents`.
#[cfg(unix)]
fn poll(fds: &mut [PollFd], timeout: Option<Duration>) -> io::Result<()> {
    let count = libc::nfds_t::try_from(fds.len()).unwrap_or(libc::nfds_t::MAX);
    // SAFETY: `fds` holds `count` initialised `pollfd`s; the kernel writes
    // only their `revents`. A descriptor closed meanwhile is reported as
    // `POLLNVAL`, not used.
    unsafe {
        check(libc::poll(fds.as_mut_ptr(), count, timeout_ms(timeout)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{socket_pair, AsSource};
    use std::io::Write;

    #[test]
    fn wait_readable_sees_input_and_a_hang_up() {
        let (mut tx, rx) = socket_pair().expect("pair");
        let none = wait_readable(rx.as_source(), Some(Duration::ZERO)).expect("poll");
        assert!(!none, "nothing written yet");
        tx.write_all(b"d").expect("write");
        assert!(wait_readable(rx.as_source(), None).expect("poll"));
        let (tx, rx) = socket_pair().expect("pair");
        drop(tx);
        let ready = wait_readable(rx.as_source(), Some(Duration::from_secs(5))).expect("poll");
        assert!(ready, "end of file counts as ready");
    }
}
