//! The glue between the HTTP layer and the server's turn-based core: one
//! turn serves one request; between requests the connection waits idle.

use std::io::{self, Read};
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

/// The connection's buffered reader keeps the bytes read past one request
/// (pipelined requests) for the next turn, which is what [`Transport`] asks.
impl Transport for Connection {
    fn peer_addr(&self) -> &Addr {
        Connection::peer_addr(self)
    }

    fn is_shutting_down(&self) -> bool {
        Connection::is_shutting_down(self)
    }

    fn buffered(&self) -> &[u8] {
        Connection::buffered(self)
    }

    fn receive(&mut self, limit: usize) -> io::Result<usize> {
        Connection::receive(self, limit)
    }

    fn deadline(&self) -> Option<Instant> {
        Connection::deadline(self)
    }

    fn set_deadline(&mut self, deadline: Option<Instant>) {
        Connection::set_deadline(self, deadline);
    }

    fn unsent_output(&self) -> Option<u64> {
        crate::sys::unsent_output(self.stream().as_source())
    }

    fn queue_output(&mut self, output: &[u8]) {
        Connection::queue_output(self, output);
    }

    fn has_queued_output(&self) -> bool {
        Connection::has_queued_output(self)
    }

    fn id(&self) -> u64 {
        Connection::id(self)
    }

    fn tell(&self, event: &Event<'_>) {
        Connection::tell(self, event);
    }

    /// Kept in the connection's layer state, made on its first request.
    fn conversation(&mut self) -> &mut Conversation {
        let state = self.layer_state();
        if !state
            .as_ref()
            .is_some_and(|state| state.is::<Conversation>())
        {
            *state = Some(Box::new(Conversation::new()));
        }
        state
            .as_mut()
            .and_then(|state| state.downcast_mut::<Conversation>())
            .expect("cannot fail: the state was just made a Conversation if it was not one")
    }

    /// Plain TCP only: over TLS the kernel holds records, not request
    /// bytes, and the readiness of a Unix socket ignores the mark.
    fn unread_input(&self) -> Option<usize> {
        if self.is_tls() || self.stream().as_tcp().is_none() {
            return None;
        }
        crate::sys::unread_input(self.stream().as_source())
    }

    fn set_input_low_water(&mut self, bytes: usize) -> bool {
        if self.is_tls() || self.stream().as_tcp().is_none() {
            return false;
        }
        // Readiness now means this many bytes: the parking arms the socket
        // again rather than trust an edge raised under the old mark.
        self.forget_input_drained();
        crate::sys::set_receive_low_water(self.stream().as_source(), bytes).is_ok()
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
        match self.serve_one(conn)? {
            Served::Idle => Ok(Next::Idle),
            Served::Partial => Ok(Next::Wait),
            // An event stream or a WebSocket: their protocol takes the
            // next turns.
            Served::Switch(switch) => Ok(switch.commit(conn)),
            Served::Close => {
                // With output queued, the server closes once it is sent.
                if !conn.has_queued_output() {
                    close_politely(conn);
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
fn close_politely(conn: &mut Connection) {
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
