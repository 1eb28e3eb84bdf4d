//! [`Transport`]: what serving a request needs from a connection.
//!
//! The protocol code is written against this trait rather than against the
//! server's connection type, so that it can be tested on bytes in memory and
//! so that the seam to the server is one small impl (see `turn.rs`).

use std::io::{BufRead, Write};
use std::net::SocketAddr;

/// A connection as the HTTP layer sees it: buffered input, unbuffered
/// output, and two facts about it.
///
/// The input must be one buffered reader that lives as long as the
/// connection: requests pipelined behind the current one stay in its buffer
/// for the next call.
pub(crate) trait Transport: BufRead + Write {
    /// The client's address.
    fn peer_addr(&self) -> SocketAddr;

    /// Whether the server has started to shut down. Asked again after the
    /// handler has run, so a shutdown that started during a slow request
    /// still shows in its response.
    fn is_shutting_down(&self) -> bool;
}

/// An in-memory connection for tests: input from a buffer, output into a
/// `Vec`, and a shutdown flag the test (or its handler) can set.
#[cfg(test)]
pub(crate) mod testing {
    use std::io::{self, BufRead, BufReader, Read, Write};
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::Transport;

    /// The address every test connection comes from.
    pub(crate) const PEER: &str = "192.0.2.7:40000";

    /// Input that yields its pieces one `read` at a time, then either end of
    /// file or a timeout, as a socket with a read timeout would.
    pub(crate) struct Script {
        pieces: Vec<Vec<u8>>,
        then_timeout: bool,
    }

    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some(piece) = self.pieces.first_mut() else {
                return if self.then_timeout {
                    Err(io::ErrorKind::WouldBlock.into())
                } else {
                    Ok(0)
                };
            };
            let n = piece.len().min(buf.len());
            buf[..n].copy_from_slice(&piece[..n]);
            piece.drain(..n);
            if piece.is_empty() {
                self.pieces.remove(0);
            }
            Ok(n)
        }
    }

    pub(crate) struct Mock {
        input: BufReader<Script>,
        pub(crate) output: Vec<u8>,
        pub(crate) shutting_down: Arc<AtomicBool>,
    }

    impl Mock {
        /// A connection on which the client sends `input`, then closes.
        pub(crate) fn new(input: impl Into<Vec<u8>>) -> Mock {
            Mock::pieces(vec![input.into()], false)
        }

        /// A connection on which the client sends `pieces`, one per read,
        /// then closes or (`then_timeout`) goes silent past the timeout.
        pub(crate) fn pieces(pieces: Vec<Vec<u8>>, then_timeout: bool) -> Mock {
            let script = Script {
                pieces,
                then_timeout,
            };
            Mock {
                // A small buffer, so that heads and bodies span refills.
                input: BufReader::with_capacity(64, script),
                output: Vec::new(),
                shutting_down: Arc::new(AtomicBool::new(false)),
            }
        }

        /// Takes what was written so far.
        pub(crate) fn take_output(&mut self) -> Vec<u8> {
            std::mem::take(&mut self.output)
        }
    }

    impl Read for Mock {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.input.read(buf)
        }
    }

    impl BufRead for Mock {
        fn fill_buf(&mut self) -> io::Result<&[u8]> {
            self.input.fill_buf()
        }

        fn consume(&mut self, amt: usize) {
            self.input.consume(amt);
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
        fn peer_addr(&self) -> SocketAddr {
            PEER.parse().expect("PEER is a valid socket address")
        }

        fn is_shutting_down(&self) -> bool {
            self.shutting_down.load(Ordering::SeqCst)
        }
    }
}
