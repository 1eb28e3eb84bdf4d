//! A connection's input: what its client has sent that no turn has used yet.
//!
//! It is a `BufReader` that can also be filled *without blocking*
//! ([`Input::receive`]), growing up to a limit the caller gives, so that a
//! protocol can gather a whole request while the connection waits between
//! turns (holding no worker) and keep the partial bytes for the next turn.
//! Reads that must wait honour the connection's deadline, if it has one:
//! they fail with `TimedOut` instead of waiting past it.
//!
//! The buffer is allocated on first use and given up when the connection is
//! parked with nothing in it, so an idle parked connection holds no buffer.
//! A worker keeps the few it gave up last for the next connections it
//! serves: allocating and zeroing 8 KiB per keep-alive request would cost
//! more than the rest of the request.
//!
//! Over TLS the input owns the connection's [`Session`] too: every read
//! takes records from the socket through it and plaintext out of it, so
//! that the buffer only ever holds plaintext.
//!
//! It also remembers whether its last read from the socket found the
//! kernel's queue empty ([`Input::is_drained`]): a read that returned less
//! than it asked for, or nothing yet. Input arriving after such a read
//! raises a new readiness edge, which is what lets the
//! [parking](crate::parking) wait for the next input without arming the
//! socket again.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use crate::listener::Stream;
use crate::tls::Session;

/// The buffer's usual size, as std's `BufReader`. It grows beyond this only
/// when [`Input::receive`] is asked to gather more.
pub(crate) const CAPACITY: usize = 8 * 1024;

pub(crate) struct Input {
    /// Shared with the registry, which shuts it down at the deadline.
    socket: Arc<Stream>,
    /// `buf[start..end]` is the unread input; `buf.len()` is the capacity.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes consumed over the connection's life: tells whether a turn used
    /// any of its input.
    consumed: u64,
    /// The TLS session, on a TLS listener's connection.
    tls: Option<Box<Session>>,
    /// Whether the last read from the socket found its queue empty; see
    /// the module's docs.
    drained: bool,
}

impl Input {
    pub(crate) fn new(socket: Arc<Stream>, tls: Option<Box<Session>>) -> Input {
        Input {
            socket,
            buf: Vec::new(),
            start: 0,
            end: 0,
            consumed: 0,
            tls,
            drained: false,
        }
    }

    pub(crate) fn socket(&self) -> &Stream {
        &self.socket
    }

    /// The TLS session and the socket under it, on a TLS connection.
    pub(crate) fn tls(&mut self) -> Option<(&mut Session, &Stream)> {
        let tls = self.tls.as_deref_mut()?;
        Some((tls, &*self.socket))
    }

    /// The TLS session, on a TLS connection.
    pub(crate) fn session(&self) -> Option<&Session> {
        self.tls.as_deref()
    }

    /// Whether input waits that is not in the buffer yet: plaintext rustls
    /// has decrypted, or the client's end of the TLS stream.
    pub(crate) fn has_tls_input(&self) -> bool {
        self.tls.as_deref().is_some_and(Session::has_input)
    }

    /// The unread input.
    pub(crate) fn buffer(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub(crate) fn consumed(&self) -> u64 {
        self.consumed
    }

    pub(crate) fn consume(&mut self, amount: usize) {
        let amount = amount.min(self.end - self.start);
        self.start += amount;
        self.consumed += amount as u64;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Whether the last read from the socket found the kernel's queue
    /// empty: it returned less than asked, or `WouldBlock`. Never over TLS
    /// (rustls reads records in sizes of its own) nor after end of file,
    /// an error, or a change of what readiness means
    /// ([`Input::forget_drained`]): then the socket must be armed again.
    pub(crate) fn is_drained(&self) -> bool {
        self.drained
    }

    /// Forgets that the queue was found empty: readiness changed its
    /// meaning (the receive low-water mark was set).
    pub(crate) fn forget_drained(&mut self) {
        self.drained = false;
    }

    /// Frees the buffer if it holds nothing: called when the connection is
    /// parked, where it may wait for a long time.
    pub(crate) fn release_if_empty(&mut self) {
        if self.start == self.end {
            spare::recycle(std::mem::take(&mut self.buf));
        }
    }

    /// Reads what the socket holds, without blocking, so that at most
    /// `limit` bytes are buffered. `Ok(0)` is end of file; `WouldBlock` means
    /// nothing has arrived.
    pub(crate) fn receive(&mut self, limit: usize) -> io::Result<usize> {
        let buffered = self.end - self.start;
        if buffered >= limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the input buffer already holds the limit",
            ));
        }
        self.make_room(limit);
        let room = (self.buf.len() - self.end).min(limit - buffered);
        let out = &mut self.buf[self.end..self.end + room];
        let n = match self.tls.as_deref_mut() {
            Some(tls) => tls.recv_nonblocking(&self.socket, out),
            None => {
                let asked = out.len();
                let received = self.socket.recv_nonblocking(out);
                self.drained = drained(&received, asked);
                received
            }
        }?;
        self.end += n;
        Ok(n)
    }

    /// Makes room after the unread input for up to `limit` unread bytes in
    /// all: allocates, moves the input to the front, or grows.
    fn make_room(&mut self, limit: usize) {
        if self.buf.is_empty() {
            self.buf = spare::buffer();
        }
        if self.end < self.buf.len() {
            return;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            return;
        }
        // Full from the front: grow, doubling, up to the limit.
        let grown = (self.buf.len() * 2).min(limit).max(self.buf.len());
        self.buf.resize(grown, 0);
    }

    /// Fills an empty buffer from the socket, waiting for input (until
    /// `deadline`, if any), and returns the unread input; empty at end of
    /// file.
    pub(crate) fn fill(&mut self, deadline: Option<Instant>) -> io::Result<&[u8]> {
        if self.start == self.end {
            if self.buf.is_empty() {
                self.buf = spare::buffer();
            }
            self.start = 0;
            self.end = 0;
            let n = read_input(
                &self.socket,
                &mut self.tls,
                &mut self.buf,
                deadline,
                &mut self.drained,
            )?;
            self.end = n;
        }
        Ok(self.buffer())
    }

    /// Reads into `out`: from the buffer if it holds anything, else from
    /// the socket (straight into `out` when that is at least a buffer's
    /// size, as `BufReader` does).
    pub(crate) fn read(&mut self, out: &mut [u8], deadline: Option<Instant>) -> io::Result<usize> {
        if self.start == self.end && out.len() >= CAPACITY {
            return read_input(
                &self.socket,
                &mut self.tls,
                out,
                deadline,
                &mut self.drained,
            );
        }
        let available = self.fill(deadline)?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl Drop for Input {
    fn drop(&mut self) {
        // The next connection this thread serves can use it.
        spare::recycle(std::mem::take(&mut self.buf));
    }
}

/// A blocking read of the connection's input: through its TLS session if
/// it has one, else straight from the socket, noting in `drained` whether
/// it found the socket's queue empty.
fn read_input(
    socket: &Stream,
    tls: &mut Option<Box<Session>>,
    out: &mut [u8],
    deadline: Option<Instant>,
    drained: &mut bool,
) -> io::Result<usize> {
    match tls.as_deref_mut() {
        Some(tls) => tls.read(socket, out, deadline),
        None => {
            let asked = out.len();
            let read = socket.read_by(out, deadline);
            *drained = self::drained(&read, asked);
            read
        }
    }
}

/// Whether a read of `asked` bytes from a socket that returned `read` found
/// its queue empty: a short read (TCP and Unix stream sockets copy all
/// they hold, up to what is asked), or nothing there yet. Not end of file,
/// nor an error: a hang-up stays readable, and is reported once more
/// after the socket is armed again.
fn drained(read: &io::Result<usize>, asked: usize) -> bool {
    match read {
        Ok(n) => *n > 0 && *n < asked,
        Err(e) => e.kind() == io::ErrorKind::WouldBlock,
    }
}

/// Read buffers given up by connections parked or closed on this thread.
mod spare {
    use std::cell::RefCell;

    use super::CAPACITY;

    /// How many a thread keeps: enough for the connections a worker serves
    /// in turn, few enough that an idle crowd holds no memory.
    const KEPT: usize = 4;

    thread_local! {
        static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    }

    /// A buffer of `CAPACITY` bytes: a spare one (its old bytes are never
    /// read: input is only read where a `recv` wrote it), or a new one.
    pub(super) fn buffer() -> Vec<u8> {
        SPARE
            .with(|spare| spare.borrow_mut().pop())
            .unwrap_or_else(|| vec![0; CAPACITY])
    }

    /// Keeps `buf` for [`buffer`] if it has the usual size and there is
    /// room; frees it otherwise.
    pub(super) fn recycle(buf: Vec<u8>) {
        if buf.len() != CAPACITY {
            return;
        }
        SPARE.with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.len() < KEPT {
                spare.push(buf);
            }
        });
    }
}
