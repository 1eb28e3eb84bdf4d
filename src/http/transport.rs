//! [`Transport`]: what serving a request needs from a connection.
//!
//! The protocol code is written against this trait rather than against the
//! server's connection type, so that it can be tested on bytes in memory and
//! so that the seam to the server is one small impl (see `turn.rs`).

use std::io::{self, BufRead, Write};
use std::time::Instant;

use crate::{Addr, Event};

use super::conversation::Conversation;

/// A connection as the HTTP layer sees it: buffered input that can also be
/// taken without blocking, unbuffered output, a deadline, and two facts
/// about it.
///
/// The input must be one buffer that lives as long as the connection: a
/// partial request, and requests pipelined behind the current one, stay in
/// it for the next call.
pub(crate) trait Transport: BufRead + Write {
    /// The client's address.
    fn peer_addr(&self) -> &Addr;

    /// Whether the server has started to shut down. Asked again after the
    /// handler has run, so a shutdown that started during a slow request
    /// still shows in its response.
    fn is_shutting_down(&self) -> bool;

    /// The input buffered so far, without reading.
    fn buffered(&self) -> &[u8];

    /// Takes what has arrived into the buffer without blocking, so that at
    /// most `limit` bytes are buffered: the number of bytes added, `Ok(0)`
    /// at end of file, `WouldBlock` when nothing has arrived.
    fn receive(&mut self, limit: usize) -> io::Result<usize>;

    /// The deadline: reads and writes fail with `TimedOut` past it, and a
    /// waiting connection gets a call when it passes.
    fn deadline(&self) -> Option<Instant>;

    fn set_deadline(&mut self, deadline: Option<Instant>);

    /// Bytes written that the client has not acknowledged yet; `None` if
    /// the system does not tell.
    fn unsent_output(&self) -> Option<u64>;

    /// Queues output to send after the call, while the connection waits;
    /// the deadline bounds it.
    fn queue_output(&mut self, output: &[u8]);

    fn has_queued_output(&self) -> bool;

    /// Whether the deadline is set and has passed.
    fn is_past_deadline(&self) -> bool {
        self.deadline().is_some_and(|d| Instant::now() >= d)
    }

    /// The connection's id, for its events.
    fn id(&self) -> u64;

    /// Tells the server's event hook.
    fn tell(&self, event: &Event<'_>);

    /// What the layer remembers about the connection between requests.
    fn conversation(&mut self) -> &mut Conversation;

    /// Bytes that have arrived and wait in the kernel, beyond the buffer;
    /// `None` if the system does not tell, or they would not be request
    /// bytes (TLS records).
    fn unread_input(&self) -> Option<usize> {
        None
    }

    /// Makes readiness report the connection only once `bytes` wait in the
    /// kernel (1: as soon as anything does). Returns whether it could: not
    /// where readiness ignores such a mark.
    fn set_input_low_water(&mut self, bytes: usize) -> bool {
        let _ = bytes;
        false
    }
}

/// An in-memory connection for tests: input from a script of pieces, output
/// into a `Vec`, and a shutdown flag the test (or its handler) can set.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::VecDeque;
    use std::io::{self, BufRead, Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    use std::cell::RefCell;

    use super::Transport;
    use crate::http::conversation::Conversation;
    use crate::http::serve::Served;
    use crate::{Addr, Event};

    /// The address every test connection comes from.
    pub(crate) const PEER: &str = "192.0.2.7:40000";

    /// A blocking read takes at most this much of a piece, so that heads
    /// and bodies span refills as they do on a socket.
    const READ_SIZE: usize = 64;

    /// A connection on which the client sends its pieces (one per
    /// `receive`, at most [`READ_SIZE`] bytes per blocking read), then
    /// either closes or goes silent.
    pub(crate) struct Mock {
        pieces: VecDeque<Vec<u8>>,
        /// After the pieces: silent (reads time out, `receive` finds
        /// nothing) rather than closed.
        then_silent: bool,
        buf: Vec<u8>,
        deadline: Option<Instant>,
        peer: Addr,
        pub(crate) output: Vec<u8>,
        pub(crate) shutting_down: Arc<AtomicBool>,
        conversation: Conversation,
        /// The request events told so far.
        pub(crate) events: RefCell<Vec<Told>>,
    }

    /// A request event, as the mock heard it.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub(crate) struct Told {
        pub(crate) method: Option<String>,
        pub(crate) target: Option<String>,
        pub(crate) version: Option<String>,
        pub(crate) status: u16,
        pub(crate) body_bytes: u64,
        pub(crate) kept_alive: bool,
    }

    impl Mock {
        /// A connection on which the client sends `input`, then closes.
        pub(crate) fn new(input: impl Into<Vec<u8>>) -> Mock {
            Mock::pieces(vec![input.into()], false)
        }

        /// A connection on which the client sends `pieces`, then closes or
        /// (`then_silent`) goes silent.
        pub(crate) fn pieces(pieces: Vec<Vec<u8>>, then_silent: bool) -> Mock {
            Mock {
                pieces: pieces.into_iter().filter(|p| !p.is_empty()).collect(),
                then_silent,
                buf: Vec::new(),
                deadline: None,
                peer: Addr::Tcp(PEER.parse().expect("PEER is a valid socket address")),
                output: Vec::new(),
                shutting_down: Arc::new(AtomicBool::new(false)),
                conversation: Conversation::new(),
                events: RefCell::new(Vec::new()),
            }
        }

        /// Takes the request events told so far.
        pub(crate) fn take_events(&mut self) -> Vec<Told> {
            std::mem::take(self.events.get_mut())
        }

        /// More input from the client, arriving after what was sent so far.
        pub(crate) fn arrive(&mut self, piece: &[u8]) {
            self.pieces.push_back(piece.to_vec());
        }

        /// Takes what was written so far.
        pub(crate) fn take_output(&mut self) -> Vec<u8> {
            std::mem::take(&mut self.output)
        }

        /// Whether everything the client sends has been taken, and it is
        /// now silent: a wait for more would end only at the deadline.
        pub(crate) fn is_silent(&self) -> bool {
            self.pieces.is_empty() && self.then_silent
        }

        /// Lets time run to the deadline, as a silent client's would.
        pub(crate) fn pass_deadline(&mut self) {
            if self.deadline.is_some() {
                self.deadline = Some(Instant::now());
            }
        }

        /// Takes up to `max` bytes of the next piece into the buffer.
        fn take(&mut self, max: usize) -> usize {
            let Some(piece) = self.pieces.front_mut() else {
                return 0;
            };
            let n = piece.len().min(max);
            self.buf.extend(piece.drain(..n));
            if piece.is_empty() {
                self.pieces.pop_front();
            }
            n
        }

        fn silence(&self) -> io::Error {
            // A socket's read timeout is `WouldBlock`; a deadline `TimedOut`.
            if self.deadline.is_some() {
                io::ErrorKind::TimedOut.into()
            } else {
                io::ErrorKind::WouldBlock.into()
            }
        }
    }

    /// One turn of the server on `mock`: calls `serve` until a request is
    /// answered or the conversation ends, letting a silent client's
    /// deadline pass as time would. Returns what was written, and whether
    /// the connection stays open or the error that ended it. An idle wait
    /// on a silent client ends the conversation, as the idle timeout would.
    pub(crate) fn turn(
        mock: &mut Mock,
        serve: &dyn Fn(&mut Mock) -> io::Result<Served>,
    ) -> (Vec<u8>, io::Result<bool>) {
        // A bound, so that a bug that loops fails the test instead of
        // hanging: each call takes a piece, or ends at the deadline.
        for _ in 0..100_000 {
            match serve(mock) {
                Ok(Served::Partial) => {
                    if mock.is_silent() {
                        mock.pass_deadline();
                    }
                }
                Ok(Served::Idle) => {
                    let output = mock.take_output();
                    let open = !(output.is_empty() && mock.is_silent());
                    return (output, Ok(open));
                }
                // The protocol switched to is tested on real connections.
                Ok(Served::Close | Served::Switch(_)) => return (mock.take_output(), Ok(false)),
                Err(error) => return (mock.take_output(), Err(error)),
            }
        }
        panic!("a request never completed");
    }

    impl Read for Mock {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let available = self.fill_buf()?;
            let n = available.len().min(out.len());
            out[..n].copy_from_slice(&available[..n]);
            self.consume(n);
            Ok(n)
        }
    }

    impl BufRead for Mock {
        fn fill_buf(&mut self) -> io::Result<&[u8]> {
            if self.buf.is_empty() && self.take(READ_SIZE) == 0 && self.then_silent {
                return Err(self.silence());
            }
            Ok(&self.buf)
        }

        fn consume(&mut self, amt: usize) {
            self.buf.drain(..amt.min(self.buf.len()));
        }
    }

    impl Write for Mock {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.write(buf)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Transport for Mock {
        fn peer_addr(&self) -> &Addr {
            &self.peer
        }

        fn is_shutting_down(&self) -> bool {
            self.shutting_down.load(Ordering::SeqCst)
        }

        fn buffered(&self) -> &[u8] {
            &self.buf
        }

        fn receive(&mut self, limit: usize) -> io::Result<usize> {
            let room = limit.saturating_sub(self.buf.len());
            if room == 0 {
                return Err(io::ErrorKind::InvalidInput.into());
            }
            match self.take(room) {
                0 if self.then_silent => Err(io::ErrorKind::WouldBlock.into()),
                n => Ok(n),
            }
        }

        fn deadline(&self) -> Option<Instant> {
            self.deadline
        }

        fn set_deadline(&mut self, deadline: Option<Instant>) {
            self.deadline = deadline;
        }

        fn unsent_output(&self) -> Option<u64> {
            Some(0)
        }

        fn queue_output(&mut self, output: &[u8]) {
            self.output.extend_from_slice(output);
        }

        fn has_queued_output(&self) -> bool {
            false
        }

        fn id(&self) -> u64 {
            1
        }

        fn tell(&self, event: &Event<'_>) {
            if let Event::Request {
                method,
                target,
                version,
                status,
                body_bytes,
                kept_alive,
                ..
            } = event
            {
                self.events.borrow_mut().push(Told {
                    method: method.map(str::to_string),
                    target: target.map(str::to_string),
                    version: version.map(str::to_string),
                    status: *status,
                    body_bytes: *body_bytes,
                    kept_alive: *kept_alive,
                });
            }
        }

        fn conversation(&mut self) -> &mut Conversation {
            &mut self.conversation
        }
    }
}
