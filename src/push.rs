//! Output pushed to a connection from any thread: the [`Pusher`], and the
//! mailbox it writes to.
//!
//! A connection that stays open by design (a server-sent event stream, a
//! WebSocket) spends its life waiting, parked, holding no worker. Other
//! threads reach it through a [`Pusher`]: they put bytes in its mailbox (or
//! ask for a turn), and *ring its doorbell*. The doorbell is the parking's:
//! if the connection is parked, ringing takes it out and hands it to a
//! worker, which moves the mail to the connection's output and sends it
//! (encrypted, over TLS) as the socket takes it. If it is not parked (in a
//! turn, queued), whoever holds it finds the mail when it next parks it:
//! the [lifecycle](crate::lifecycle) looks at the mailbox under the
//! parking's lock, and the ringing takes that lock after it has filled the
//! mailbox, so either the parking sees the mail or the ring sees the
//! connection parked. No mail waits unseen.
//!
//! The mailbox is bounded ([`Builder::max_pushed_output`]), and a
//! connection's mail is moved to its output only once the output before it
//! has all gone, so a connection holds at most twice that bound of pushed
//! output. A client that stops reading is closed when its output is not
//! taken within the [write timeout](crate::Builder::write_timeout).
//!
//! [`Builder::max_pushed_output`]: crate::Builder::max_pushed_output

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

/// Why a [`Pusher`] could not deliver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PushError {
    /// The connection has ended (or is ending): nothing more reaches it.
    Closed,
    /// Its mailbox is full: the client takes its output more slowly than
    /// it is pushed. Nothing of this push was queued.
    Full,
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PushError::Closed => "the connection has ended",
            PushError::Full => "the connection's pushed output is at its bound",
        })
    }
}

impl std::error::Error for PushError {}

/// Takes a parked connection out of the parking to deliver its mail; the
/// parking implements it.
pub(crate) trait Doorbell: Send + Sync {
    /// Connection `id` has mail.
    fn ring(&self, id: u64);
}

/// What every connection of a server needs to make a mailbox.
pub(crate) struct PushSetup {
    /// Weak: pushers outliving the server must not keep it alive.
    pub(crate) doorbell: Weak<dyn Doorbell>,
    /// The most bytes a mailbox holds.
    pub(crate) limit: usize,
}

/// One connection's mailbox.
pub(crate) struct Mailbox {
    id: u64,
    limit: usize,
    doorbell: Weak<dyn Doorbell>,
    mail: Mutex<Mail>,
}

#[derive(Default)]
struct Mail {
    bytes: Vec<u8>,
    /// A turn was asked for ([`Pusher::wake`]).
    turn: bool,
    /// The doorbell was rung for the mail now in the box: nobody rings
    /// again until the connection takes it.
    rung: bool,
    /// The connection has ended.
    closed: bool,
}

/// What a connection takes from its mailbox.
#[derive(Debug, Default)]
pub(crate) struct Delivery {
    pub(crate) bytes: Vec<u8>,
    pub(crate) turn: bool,
}

impl Mailbox {
    pub(crate) fn new(id: u64, setup: &PushSetup) -> Mailbox {
        Mailbox {
            id,
            limit: setup.limit,
            doorbell: Weak::clone(&setup.doorbell),
            mail: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Mail> {
        // Every change under this lock is complete before any call that
        // could panic: poisoning leaves valid state.
        self.mail.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts `bytes` in, and/or asks for a turn; rings if nobody has.
    fn post(&self, bytes: &[u8], turn: bool) -> Result<(), PushError> {
        let ring = {
            let mut mail = self.lock();
            if mail.closed {
                return Err(PushError::Closed);
            }
            if mail.bytes.len().saturating_add(bytes.len()) > self.limit {
                return Err(PushError::Full);
            }
            mail.bytes.extend_from_slice(bytes);
            mail.turn |= turn;
            !std::mem::replace(&mut mail.rung, true)
        };
        if ring {
            // After the mail is in (see the module's docs).
            match self.doorbell.upgrade() {
                Some(doorbell) => doorbell.ring(self.id),
                None => return Err(PushError::Closed),
            }
        }
        Ok(())
    }

    /// Whether mail waits to be taken.
    pub(crate) fn has_mail(&self) -> bool {
        let mail = self.lock();
        mail.rung
    }

    /// Takes the mail; the next post rings again.
    pub(crate) fn take(&self) -> Delivery {
        let mut mail = self.lock();
        mail.rung = false;
        Delivery {
            bytes: std::mem::take(&mut mail.bytes),
            turn: std::mem::take(&mut mail.turn),
        }
    }

    /// The connection has ended: pushers are told so from now on.
    pub(crate) fn close(&self) {
        let mut mail = self.lock();
        mail.closed = true;
        mail.bytes = Vec::new();
    }
}

/// Sends output to a connection, or asks for a turn of it, from any thread,
/// without a worker waiting on it.
///
/// Get one from [`Connection::pusher`](crate::Connection::pusher) in a turn,
/// and keep it (it is `Clone`, `Send` and `Sync`) wherever the output comes
/// from: a broadcast list, a channel's consumer, a timer thread. What you
/// [`send`](Self::send) goes out in order, after whatever the connection
/// has written or queued before, while the connection waits between turns;
/// no handler runs for it. [`wake`](Self::wake) asks for a turn
/// ([`Connection::is_woken`](crate::Connection::is_woken) says why it came).
///
/// Pushing never blocks and never panics. Once the connection has ended,
/// every call returns [`PushError::Closed`]: drop the pusher then.
///
/// # Example
///
/// A clock: each client gets the time pushed to it every 100 ms from one
/// thread, while its connection waits without a worker.
///
/// ```
/// use std::io::{Read, Write};
/// use std::net::TcpStream;
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
///
/// use graceful_server::{Connection, Next, Pusher, Server};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let clients: Arc<Mutex<Vec<Pusher>>> = Arc::default();
/// let list = Arc::clone(&clients);
/// let running = Server::builder("127.0.0.1:0").build()?.spawn(move |conn: &mut Connection| {
///     let mut buf = [0; 64];
///     if conn.read(&mut buf)? == 0 {
///         return Ok(Next::Close); // the client hung up
///     }
///     list.lock().unwrap().push(conn.pusher());
///     Ok(Next::Wait)
/// })?;
///
/// let mut client = TcpStream::connect(running.local_addr())?;
/// client.set_read_timeout(Some(Duration::from_secs(5)))?;
/// client.write_all(b"subscribe\n")?;
/// // The ticker: pushes to every client, forgets those that have gone.
/// for _ in 0..50 {
///     clients.lock().unwrap().retain(|c| c.send(b"tick\n").is_ok());
///     if !clients.lock().unwrap().is_empty() {
///         break;
///     }
///     std::thread::sleep(Duration::from_millis(100));
/// }
/// let mut tick = [0; 5];
/// client.read_exact(&mut tick)?;
/// assert_eq!(&tick, b"tick\n");
/// # drop(client);
/// # running.shutdown_handle().shutdown();
/// # running.join()?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Pusher {
    mailbox: Arc<Mailbox>,
}

impl Pusher {
    pub(crate) fn new(mailbox: Arc<Mailbox>) -> Pusher {
        Pusher { mailbox }
    }

    /// Queues `bytes` to be sent to the client.
    ///
    /// # Errors
    ///
    /// [`PushError::Closed`] once the connection has ended;
    /// [`PushError::Full`] if its mailbox would hold more than
    /// [`Builder::max_pushed_output`](crate::Builder::max_pushed_output)
    /// bytes (the client reads more slowly than you push: drop messages,
    /// or wait and retry).
    pub fn send(&self, bytes: &[u8]) -> Result<(), PushError> {
        self.mailbox.post(bytes, false)
    }

    /// Asks for a turn of the connection's handler, as soon as a worker is
    /// free, even if no input has arrived.
    ///
    /// # Errors
    ///
    /// [`PushError::Closed`] once the connection has ended.
    pub fn wake(&self) -> Result<(), PushError> {
        self.mailbox.post(&[], true)
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.mailbox.lock().closed
    }

    /// The [id](crate::Connection::id) of the connection it pushes to.
    pub fn id(&self) -> u64 {
        self.mailbox.id
    }
}

impl fmt::Debug for Pusher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pusher")
            .field("id", &self.mailbox.id)
            .field("closed", &self.is_closed())
            .finish()
    }
}
