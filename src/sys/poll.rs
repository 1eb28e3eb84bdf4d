//! `poll(2)` (every unix; `WSAPoll` on Windows, declared in
//! `windows.rs`): a set of descriptors kept by us and
//! passed whole to every wait, which scans them all.
//!
//! One-shot arming is done here, not by the kernel: an entry reported once
//! is marked disarmed and left out of the next waits until it is armed
//! again. Since the set is ours, a descriptor must be taken out of it before
//! it is closed, or a wait would poll a number that may already name another
//! file or socket.
//!
//! Two sets: [`PollSet`], the acceptor's (one thread arms and waits), and
//! [`TieredSet`], the workers' (one waiter per [`Tier`] polls a
//! [`Snapshot`] of it while others arm and disarm under a lock). Since a
//! wait scans its whole array, the tiered set keeps what was armed long
//! ago and not ready since apart (cold), so that the waits made for every
//! parked connection (hot) scan only the recent ones.

use std::collections::HashMap;
use std::io;
use std::time::{Duration, Instant};

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

    /// Appends an entry for every armed descriptor.
    fn armed_entries(&self, fds: &mut Vec<PollFd>) {
        fds.extend(
            self.entries
                .iter()
                .filter(|(_, (_, _, armed))| *armed)
                .map(|(&fd, &(_, interest, _))| entry(fd, interest)),
        );
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

/// Which array of a [`TieredSet`] an armed entry is in, so which waiter
/// polls it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tier {
    /// Armed recently: polled on every round of the workers' leader.
    Hot,
    /// Armed long ago and not ready since: polled by a waiter of its own,
    /// which polls again only when this array changes.
    Cold,
}

/// A `poll(2)` set shared by two waiters, each polling one [`Tier`] from a
/// [`Snapshot`] while the others change the set under the owner's lock.
///
/// Entries are armed one-shot (as in [`PollSet`]): reported once, then out
/// of the set until armed again. Every arming is new in the hot tier;
/// [`TieredSet::sweep`] moves those armed long enough ago to the cold one.
/// Each tier is kept as the array its waiter polls, changed in place: an
/// entry added is pushed at the end, one taken out is replaced by the last
/// (its index in the entry is updated). So a change costs O(1), an array
/// never has holes, and a waiter copies its array (a `memcpy`) only when
/// it changed, never walking the map.
///
/// Every arming gets a **stamp**, kept beside its slot in the array and in
/// each snapshot: a report counts only if its descriptor's entry is still
/// armed under the stamp that was polled. A report for an entry disarmed
/// since (taken away, maybe closed, its number maybe reused by another
/// arming) or already reported is dropped, whichever waiter makes it.
#[derive(Default)]
pub(crate) struct TieredSet {
    /// The armed descriptors: a disarmed or reported one is removed.
    entries: HashMap<Raw, Armed>,
    hot: Array,
    cold: Array,
    /// The stamp of the next arming.
    next_stamp: u64,
}

/// An armed entry of a [`TieredSet`].
struct Armed {
    token: u64,
    interest: Interest,
    stamp: u64,
    /// Its array, and its index there.
    tier: Tier,
    slot: usize,
}

/// One tier's array: what its waiter polls.
#[derive(Default)]
struct Array {
    fds: Vec<PollFd>,
    /// Beside each entry of `fds`: its arming's stamp and when it was armed.
    slots: Vec<Slot>,
    /// Changed with every change to the array, so that a [`Snapshot`]
    /// knows whether its copy is current.
    version: u64,
}

#[derive(Clone, Copy)]
struct Slot {
    stamp: u64,
    since: Instant,
}

impl Array {
    fn push(&mut self, fd: PollFd, slot: Slot) -> usize {
        self.fds.push(fd);
        self.slots.push(slot);
        self.version = self.version.wrapping_add(1);
        self.fds.len() - 1
    }

    /// Takes out the entry at `index`, moving the last one there; returns
    /// it and the descriptor of the one moved, if one was.
    fn swap_remove(&mut self, index: usize) -> (PollFd, Slot, Option<Raw>) {
        let fd = self.fds.swap_remove(index);
        let slot = self.slots.swap_remove(index);
        self.version = self.version.wrapping_add(1);
        (fd, slot, self.fds.get(index).map(poll_source))
    }
}

impl TieredSet {
    fn array(&mut self, tier: Tier) -> &mut Array {
        match tier {
            Tier::Hot => &mut self.hot,
            Tier::Cold => &mut self.cold,
        }
    }

    /// How many entries are armed in `tier`.
    pub(crate) fn len(&self, tier: Tier) -> usize {
        match tier {
            Tier::Hot => self.hot.fds.len(),
            Tier::Cold => self.cold.fds.len(),
        }
    }

    /// Arms `fd` under `token` for `interest`, in the hot tier, as armed
    /// `now`. If it was armed already (never, from the parking: it
    /// disarms first), that arming ends: returns its tier, whose waiter
    /// may still poll it.
    pub(crate) fn arm(
        &mut self,
        fd: Raw,
        token: u64,
        interest: Interest,
        now: Instant,
    ) -> Option<Tier> {
        let before = self.disarm(fd);
        let stamp = self.next_stamp;
        self.next_stamp = self.next_stamp.wrapping_add(1);
        let slot = self
            .hot
            .push(entry(fd, interest), Slot { stamp, since: now });
        let armed = Armed {
            token,
            interest,
            stamp,
            tier: Tier::Hot,
            slot,
        };
        self.entries.insert(fd, armed);
        before
    }

    /// Stops reporting `fd` until it is armed again; returns the tier it
    /// was armed in, whose waiter may hold it in a snapshot (`None`: it
    /// was not armed, so no array has it).
    pub(crate) fn disarm(&mut self, fd: Raw) -> Option<Tier> {
        let armed = self.entries.remove(&fd)?;
        self.unplace(armed.tier, armed.slot);
        Some(armed.tier)
    }

    /// Takes the entry at `slot` out of `tier`'s array, and tells the entry
    /// moved into its place where it is now.
    fn unplace(&mut self, tier: Tier, slot: usize) -> (PollFd, Slot) {
        let (fd, meta, moved) = self.array(tier).swap_remove(slot);
        if let Some(armed) = moved.and_then(|moved| self.entries.get_mut(&moved)) {
            armed.slot = slot;
        }
        (fd, meta)
    }

    /// Moves the hot entries armed at least `age` before `now` to the cold
    /// tier, in one batch; returns how many moved.
    pub(crate) fn sweep(&mut self, now: Instant, age: Duration) -> usize {
        let mut moved = 0;
        // Backwards, so that the entry a removal moves into `index` (the
        // last) has been looked at already.
        for index in (0..self.hot.fds.len()).rev() {
            if now.saturating_duration_since(self.hot.slots[index].since) < age {
                continue;
            }
            let raw = poll_source(&self.hot.fds[index]);
            let (fd, slot) = self.unplace(Tier::Hot, index);
            let slot = self.cold.push(fd, slot);
            if let Some(armed) = self.entries.get_mut(&raw) {
                armed.tier = Tier::Cold;
                armed.slot = slot;
            }
            moved += 1;
        }
        moved
    }

    /// Moves every cold entry back to the hot tier, as armed `now`: when
    /// the cold tier's waiter is gone.
    pub(crate) fn warm_all(&mut self, now: Instant) {
        while let Some(index) = self.cold.fds.len().checked_sub(1) {
            let raw = poll_source(&self.cold.fds[index]);
            let (fd, slot) = self.unplace(Tier::Cold, index);
            let slot = self.hot.push(fd, Slot { since: now, ..slot });
            if let Some(armed) = self.entries.get_mut(&raw) {
                armed.tier = Tier::Hot;
                armed.slot = slot;
            }
        }
    }

    /// Makes `snapshot` a copy of `tier`'s array as it is now; returns
    /// whether it copied (not if the array is as it last copied it).
    pub(crate) fn refresh(&self, tier: Tier, snapshot: &mut Snapshot) -> bool {
        let array = match tier {
            Tier::Hot => &self.hot,
            Tier::Cold => &self.cold,
        };
        if snapshot.copied == Some((tier, array.version)) {
            return false;
        }
        snapshot.copied = Some((tier, array.version));
        // Index 0 is the waiter's wake-up, set by `Snapshot::wait`.
        snapshot.fds.truncate(1);
        if snapshot.fds.is_empty() {
            snapshot.fds.push(entry(Raw::default(), Interest::Input));
        }
        snapshot.fds.extend_from_slice(&array.fds);
        snapshot.stamps.clear();
        snapshot.stamps.push(0);
        snapshot
            .stamps
            .extend(array.slots.iter().map(|slot| slot.stamp));
        true
    }

    /// Reports to `found` the tokens of what `snapshot`'s wait found ready
    /// and is still armed under the stamp polled, disarming them (one-shot).
    pub(crate) fn take_ready(&mut self, snapshot: &Snapshot, mut found: impl FnMut(u64)) {
        let polled = snapshot.fds.iter().zip(&snapshot.stamps).skip(1);
        for (pollfd, &stamp) in polled.filter(|(p, _)| p.revents != 0) {
            let fd = poll_source(pollfd);
            let Some(armed) = self.entries.get(&fd) else {
                // Disarmed since (taken away, maybe closed): not ours.
                continue;
            };
            if armed.stamp != stamp {
                // Armed again since: this report is of an arming gone.
                continue;
            }
            found(armed.token);
            if armed.interest != Interest::Level {
                self.disarm(fd);
            }
        }
    }
}

/// A copy of one tier's array of a [`TieredSet`], and first the waiter's
/// wake-up: what a waiter polls without the set's lock while others arm
/// and disarm entries. Kept by its waiter from one wait to the next, for
/// its allocation and so that an unchanged array is not copied again.
#[derive(Default)]
pub(crate) struct Snapshot {
    fds: Vec<PollFd>,
    /// The stamp of each entry's arming (index 0, the wake-up, has none).
    stamps: Vec<u64>,
    /// The tier and array version copied.
    copied: Option<(Tier, u64)>,
}

impl Snapshot {
    /// Waits until `wake` or an entry is ready or `timeout` passes. An
    /// entry's descriptor may be closed after the snapshot was taken:
    /// `poll(2)` then reports it as invalid (`POLLNVAL`) or polls whatever
    /// took its number, a report that [`TieredSet::take_ready`] drops, the
    /// entry having been disarmed before the close. Whoever disarms an
    /// entry wakes the waiter that polls its tier, so that it polls anew.
    pub(crate) fn wait(&mut self, wake: Borrowed<'_>, timeout: Option<Duration>) -> io::Result<()> {
        // `wake` is borrowed, so open for the whole wait.
        let wake = entry(raw(wake), Interest::Input);
        match self.fds.first_mut() {
            Some(first) => *first = wake,
            None => {
                self.fds.push(wake);
                self.stamps.push(0);
            }
        }
        poll(&mut self.fds, timeout)
    }

    /// Whether the last wait ended because of the wake-up.
    pub(crate) fn woken(&self) -> bool {
        self.fds.first().is_some_and(|wake| wake.revents != 0)
    }
}

/// The `poll(2)` entry that watches `fd` for `interest`.
fn entry(fd: Raw, interest: Interest) -> PollFd {
    let mut entry = poll_entry(fd);
    if interest == Interest::Output {
        entry.events = POLL_OUT;
    }
    entry
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
