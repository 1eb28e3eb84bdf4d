//! The glue between the HTTP layer and the server's turn-based core: one
//! turn serves one request; between requests the connection waits idle.

use std::io::{self, BufRead, IoSlice, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use super::serve::Served;

use crate::sys::AsSource;
use crate::{Addr, Connection, Event, Handler, Next};

use super::conversation::Conversation;
use super::handler::HttpHandler;
use super::request::Request;
use super::response::Response;
use super::transport::Transport;

/// A connection during one turn of the HTTP layer, with the layer's
/// memory of it ([`Conversation`]): what [`Transport`] asks for.
///
/// The conversation lives in the connection's layer state between turns, as
/// a type the core does not know; it is taken out once per turn (see
/// [`HttpHandler::turn`](Handler::turn)), so that the many looks at it
/// during a request cost nothing.
struct Turn<'c> {
    conn: &'c mut Connection,
    conversation: &'c mut Conversation,
}

impl Read for Turn<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.conn.read(buf)
    }
}

/// The connection's buffered reader keeps the bytes read past one request
/// (pipelined requests) for the next turn, which is what [`Transport`] asks.
impl BufRead for Turn<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.conn.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.conn.consume(amount);
    }
}

impl Write for Turn<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.conn.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.conn.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.conn.flush()
    }
}

impl Transport for Turn<'_> {
    fn peer_addr(&self) -> &Addr {
        self.conn.peer_addr()
    }

    fn is_shutting_down(&self) -> bool {
        self.conn.is_shutting_down()
    }

    fn buffered(&self) -> &[u8] {
        self.conn.buffered()
    }

    fn receive(&mut self, limit: usize) -> io::Result<usize> {
        self.conn.receive(limit)
    }

    fn deadline(&self) -> Option<Instant> {
        self.conn.deadline()
    }

    fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.conn.set_deadline(deadline);
    }

    fn unsent_output(&self) -> Option<u64> {
        crate::sys::unsent_output(self.conn.stream().as_source())
    }

    fn queue_output(&mut self, output: &[u8]) {
        self.conn.queue_output(output);
    }

    fn has_queued_output(&self) -> bool {
        self.conn.has_queued_output()
    }

    fn id(&self) -> u64 {
        self.conn.id()
    }

    fn tell(&self, event: &Event<'_>) {
        self.conn.tell(event);
    }

    fn conversation(&mut self) -> &mut Conversation {
        self.conversation
    }

    /// Plain TCP only: over TLS the kernel holds records, not request
    /// bytes, and the readiness of a Unix socket ignores the mark.
    fn unread_input(&self) -> Option<usize> {
        let conn = &*self.conn;
        if conn.is_tls() || conn.stream().as_tcp().is_none() {
            return None;
        }
        crate::sys::unread_input(conn.stream().as_source())
    }

    fn set_input_low_water(&mut self, bytes: usize) -> bool {
        let conn = &mut *self.conn;
        if conn.is_tls() || conn.stream().as_tcp().is_none() {
            return false;
        }
        // Readiness now means this many bytes: the parking arms the socket
        // again rather than trust an edge raised under the old mark.
        conn.forget_input_drained();
        crate::sys::set_receive_low_water(conn.stream().as_source(), bytes).is_ok()
    }
}

/// Between requests the connection waits idle ([`Next::Idle`]): it holds no
/// worker, and shutdown may close it. A request that has started arriving
/// waits mid-conversation ([`Next::Wait`]), also holding no worker, until
/// it is all there or its deadline passes: shutdown does not cut it.
impl<F> Handler for HttpHandler<F>
where
    F: Fn(&mut Request<'_>) -> Response + Send + Sync + 'static,
{
    fn turn(&self, conn: &mut Connection) -> io::Result<Next> {
        // The conversation kept from earlier turns, or a new one, on the
        // stack: it is boxed only if the connection goes on (a connection
        // per request never needs a box).
        let mut kept = conn
            .layer_state()
            .take()
            .and_then(|state| state.downcast::<Conversation>().ok());
        let mut new = Conversation::new();
        let conversation = match &mut kept {
            Some(kept) => &mut **kept,
            None => &mut new,
        };
        let served = self.serve_one(&mut Turn { conn, conversation })?;
        let client_finished = conversation.client_finished;
        if matches!(served, Served::Idle | Served::Partial) {
            *conn.layer_state() = Some(kept.unwrap_or_else(|| Box::new(new)));
        }
        // Otherwise the conversation is over: dropped, with whatever it
        // held of the body budget.
        match served {
            Served::Idle => Ok(Next::Idle),
            Served::Partial => Ok(Next::Wait),
            // An event stream or a WebSocket: their protocol takes the
            // next turns.
            Served::Switch(switch) => Ok(switch.commit(conn)),
            Served::Close => {
                // With output queued, the server closes once it is sent.
                if !conn.has_queued_output() {
                    close_politely(conn, client_finished);
                }
                Ok(Next::Close)
            }
        }
    }

    /// A connection that has not sent a request yet is as safe to close at
    /// shutdown as one between requests.
    fn new_connections_are_idle(&self) -> bool {
        true
    }
}

/// How long a closing connection keeps reading what its client still sends;
/// see [`close_politely`].
const LINGER: Duration = Duration::from_millis(200);

/// Ends a connection after its last response without destroying that
/// response.
///
/// Closing a socket that still has unread input makes the kernel send a
/// reset, and a reset can make the client drop the response it has not read
/// yet. That input is common after an error (the rest of a refused body) or
/// with pipelining (requests behind the last one). So, when input is
/// pending, send our end of file first, then read and discard until the
/// client closes too, for at most [`LINGER`] (RFC 9112, section 9.6). With
/// nothing pending, closing at once is already clean.
///
/// When the client said its request was its last (`client_finished`: it
/// may send nothing after it, RFC 9112 section 9.6) and the last read found
/// the socket's queue empty, nothing is pending, and the look is saved.
fn close_politely(conn: &mut Connection, client_finished: bool) {
    if client_finished && conn.is_input_drained() && !conn.has_buffered_input() {
        return;
    }
    // One nonblocking read says it: more input (linger), the client's end
    // of file (it is gone: nothing to wait for), or nothing yet.
    let pending = conn.has_buffered_input()
        || conn
            .receive(crate::input::CAPACITY)
            .is_ok_and(|received| received > 0);
    if !pending {
        return;
    }
    // Over TLS our end is `close_notify`, which must go before the TCP one.
    conn.close_notify();
    // Errors here mean the connection is already gone, which is the goal.
    let _ = conn.stream().shutdown(Shutdown::Write);
    let deadline = Instant::now() + LINGER;
    let mut scratch = [0; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // `set_read_timeout` rejects zero, which also ends the loop.
        if conn.stream().set_read_timeout(Some(left)).is_err() {
            return;
        }
        match conn.read(&mut scratch) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
