//! Many long-lived clients at once, for measurement `long-lived`
//! ([`crate::measure::long_lived`]): WebSocket clients (tungstenite 0.29's
//! client) and server-sent-event subscribers, on `127.0.0.1`.
//!
//! Each client connects and does its handshake on the calling thread, with
//! blocking sockets and timeouts (2 s to connect, 5 s per read and write),
//! and is then handed to one of the fleet's reader threads, one per
//! [`GROUP`] clients. A reader thread waits for its non-blocking sockets
//! with `poll(2)`, and for a bell (a socket pair) that the fleet rings when
//! it hands over a client or stops, so that idle clients cost no wake-up
//! (the reader threads share a CPU with `wrk`); it reads whatever arrives:
//! it
//! counts messages and events, and notes the time at which each WebSocket
//! client received a marked message ([`MARK`]) and a Close frame. A Close
//! is answered (tungstenite queues the answer and sends it on the next
//! read, which follows at once).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

/// Clients per reader thread.
pub const GROUP: usize = 50;
/// The longest a reader thread waits in `poll(2)`: the bell wakes it for
/// anything new, this is a safety net. Long, because on this shared
/// machine each timed-out `poll(2)` of 50 sockets cost about 1.5 ms of CPU
/// (1,000 idle clients: 3% of the CPU that `wrk` uses, with a 1 s timeout).
pub const POLL_MS: i32 = 10_000;
/// What a marked message carries, followed by its tag (a number): the
/// broadcast of [`crate::measure::long_lived`] sends `#bench:TAG`, which
/// the chat servers forward as `ID: #bench:TAG`.
pub const MARK: &str = "#bench:";
/// Each reader thread's stack: it holds little.
const STACK: usize = 256 * 1024;
/// Read and write timeout of the handshakes (and of the sender's socket).
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest one call of [`Fleet::websockets`] or
/// [`Fleet::event_streams`] may take to connect its clients (each within
/// its own timeouts), so that a server that answers slowly cannot hold the
/// run for long: 5,000 clients take a few seconds.
pub const CONNECT_ALL_LIMIT: Duration = Duration::from_secs(120);

/// What a reader thread saw, with the time it saw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Seen {
    /// A WebSocket client received the marked message `tag`.
    Marked {
        client: usize,
        tag: u64,
        at: Instant,
    },
    /// A WebSocket client received a Close frame with this code (`None`:
    /// a Close without a code).
    Close {
        client: usize,
        code: Option<u16>,
        at: Instant,
    },
}

/// What the reader threads share with the fleet.
#[derive(Debug, Default)]
pub struct Shared {
    stop: AtomicBool,
    /// WebSocket messages of any kind, and server-sent events.
    received: AtomicU64,
    /// Server-sent events (`data: tick` lines).
    ticks: AtomicU64,
    /// Connections that ended: closed by the server, reset, or broken.
    ended: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
}

impl Shared {
    fn note(&self, seen: Seen) {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(seen);
    }
}

enum Kind {
    WebSocket(Box<WebSocket<TcpStream>>),
    /// An event stream after its response head, and the last bytes read
    /// (a `data: tick` split between two reads is counted once whole).
    Events(TcpStream, Vec<u8>),
}

struct Client {
    index: usize,
    /// `None` once the connection has ended: its socket is closed then, as
    /// a browser closes its end when the server has closed after the
    /// closing handshake (a server that waits for that, such as Node's,
    /// would otherwise wait for ever).
    kind: Option<Kind>,
}

impl Client {
    fn fd(&self) -> Option<i32> {
        match self.kind.as_ref()? {
            Kind::WebSocket(ws) => Some(ws.get_ref().as_raw_fd()),
            Kind::Events(stream, _) => Some(stream.as_raw_fd()),
        }
    }

    /// Reads everything that has arrived; notes what it was.
    fn serve(&mut self, shared: &Shared) {
        let index = self.index;
        let ended = match &mut self.kind {
            Some(Kind::WebSocket(ws)) => read_websocket(index, ws, shared),
            Some(Kind::Events(stream, tail)) => read_events(stream, tail, shared),
            None => return,
        };
        if ended {
            // Closes the socket.
            self.kind = None;
            shared.ended.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Reads until `WouldBlock`; whether the connection ended.
fn read_websocket(index: usize, ws: &mut WebSocket<TcpStream>, shared: &Shared) -> bool {
    loop {
        match ws.read() {
            Ok(message) => {
                let at = Instant::now();
                shared.received.fetch_add(1, Ordering::Relaxed);
                match message {
                    Message::Text(text) => {
                        if let Some(tag) = marked(&text) {
                            shared.note(Seen::Marked {
                                client: index,
                                tag,
                                at,
                            });
                        }
                    }
                    Message::Close(frame) => shared.note(Seen::Close {
                        client: index,
                        code: frame.map(|f| u16::from(f.code)),
                        at,
                    }),
                    _ => {}
                }
                // On to the next read, which sends the answer to a ping
                // or a Close.
            }
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                return false
            }
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            // Closed after the closing handshake, reset, or broken.
            Err(_) => return true,
        }
    }
}

/// Reads until `WouldBlock`, counting `data: tick` lines; whether the
/// stream ended.
fn read_events(stream: &mut TcpStream, tail: &mut Vec<u8>, shared: &Shared) -> bool {
    const TICK: &[u8] = b"data: tick";
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => {
                tail.extend_from_slice(&buf[..n]);
                let ticks = count(tail, TICK);
                if ticks > 0 {
                    shared.ticks.fetch_add(ticks, Ordering::Relaxed);
                    shared.received.fetch_add(ticks, Ordering::Relaxed);
                }
                // Keep only what could begin a `data: tick` not yet whole.
                let keep = tail.len().min(TICK.len() - 1);
                tail.drain(..tail.len() - keep);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

/// How many times `needle` occurs in `haystack`, without overlaps.
pub fn count(haystack: &[u8], needle: &[u8]) -> u64 {
    let mut n = 0;
    let mut at = 0;
    while at + needle.len() <= haystack.len() {
        if &haystack[at..at + needle.len()] == needle {
            n += 1;
            at += needle.len();
        } else {
            at += 1;
        }
    }
    n
}

/// The tag of a marked message (`#bench:TAG`, anywhere in the text).
pub fn marked(text: &str) -> Option<u64> {
    let rest = &text[text.find(MARK)? + MARK.len()..];
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    rest[..digits].parse().ok()
}

/// A reader thread: polls its clients until the fleet stops.
fn reader(new: mpsc::Receiver<Client>, mut bell: UnixStream, shared: Arc<Shared>) {
    let mut clients: Vec<Client> = Vec::new();
    let mut fds: Vec<libc::pollfd> = Vec::new();
    let mut rung = [0u8; 64];
    while !shared.stop.load(Ordering::Relaxed) {
        // Non-blocking: empties what has rung so far.
        while matches!(bell.read(&mut rung), Ok(n) if n > 0) {}
        while let Ok(client) = new.try_recv() {
            clients.push(client);
        }
        // The bell first; ended clients stay, closed and unpolled.
        fds.clear();
        fds.push(libc::pollfd {
            fd: bell.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        let mut live = Vec::with_capacity(clients.len());
        for (i, client) in clients.iter().enumerate() {
            if let Some(fd) = client.fd() {
                live.push(i);
                fds.push(libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
        }
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs for
        // the kernel to fill in; every descriptor in it is open (the bell,
        // and sockets owned by clients in `clients`).
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, POLL_MS) };
        if ready <= 0 {
            continue;
        }
        for (fd, &i) in fds[1..].iter().zip(&live) {
            if fd.revents != 0 {
                clients[i].serve(&shared);
            }
        }
    }
}

/// Long-lived clients of one server, and the threads that read them.
pub struct Fleet {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// Per reader thread: where to hand it clients, and its bell.
    groups: Vec<(mpsc::Sender<Client>, UnixStream)>,
    threads: Vec<thread::JoinHandle<()>>,
    /// Clients added so far (connected or not).
    added: usize,
}

impl Fleet {
    pub fn new(addr: SocketAddr) -> Fleet {
        Fleet {
            addr,
            shared: Arc::new(Shared::default()),
            groups: Vec::new(),
            threads: Vec::new(),
            added: 0,
        }
    }

    /// Connects `n` WebSocket clients to `path` (`/ws`, `/chat`), one
    /// after the other. Returns how many connected, and the first error.
    pub fn websockets(&mut self, path: &str, n: usize) -> (usize, Option<String>) {
        self.add(n, |addr| {
            connect_websocket(addr, path).map(|ws| Kind::WebSocket(Box::new(ws)))
        })
    }

    /// Connects `n` subscribers to the event stream at `path`
    /// (`/events?ms=1000`). Returns how many connected, and the first
    /// error.
    pub fn event_streams(&mut self, path: &str, n: usize) -> (usize, Option<String>) {
        self.add(n, |addr| {
            subscribe(addr, path).map(|(stream, rest)| Kind::Events(stream, rest))
        })
    }

    fn add(
        &mut self,
        n: usize,
        connect: impl Fn(SocketAddr) -> Result<Kind, String>,
    ) -> (usize, Option<String>) {
        let started = Instant::now();
        for done in 0..n {
            if started.elapsed() > CONNECT_ALL_LIMIT {
                let e = format!("connecting took over {CONNECT_ALL_LIMIT:?}; gave up");
                return (done, Some(e));
            }
            let kind = match connect(self.addr) {
                Ok(kind) => kind,
                Err(e) => return (done, Some(e)),
            };
            let nonblocking = match &kind {
                Kind::WebSocket(ws) => ws.get_ref().set_nonblocking(true),
                Kind::Events(stream, _) => stream.set_nonblocking(true),
            };
            if let Err(e) = nonblocking {
                return (
                    done,
                    Some(format!("cannot make a socket non-blocking: {e}")),
                );
            }
            let client = Client {
                index: self.added,
                kind: Some(kind),
            };
            if let Err(e) = self.hand_over(client) {
                return (done, Some(e));
            }
            self.added += 1;
        }
        (n, None)
    }

    fn hand_over(&mut self, client: Client) -> Result<(), String> {
        let group = client.index / GROUP;
        if group == self.groups.len() {
            let (tx, rx) = mpsc::channel();
            let (ring, bell) = UnixStream::pair()
                .and_then(|(a, b)| {
                    a.set_nonblocking(true)?;
                    b.set_nonblocking(true)?;
                    Ok((a, b))
                })
                .map_err(|e| format!("cannot make a reader thread's bell: {e}"))?;
            let shared = Arc::clone(&self.shared);
            let thread = thread::Builder::new()
                .name(format!("fleet-{group}"))
                .stack_size(STACK)
                .spawn(move || reader(rx, bell, shared))
                .map_err(|e| format!("cannot start a reader thread: {e}"))?;
            self.groups.push((tx, ring));
            self.threads.push(thread);
        }
        let (tx, ring) = &self.groups[group];
        tx.send(client)
            .map_err(|_| "a reader thread has gone".to_string())?;
        ring_bell(ring);
        Ok(())
    }

    /// WebSocket messages and events received so far.
    pub fn received(&self) -> u64 {
        self.shared.received.load(Ordering::Relaxed)
    }

    /// Server-sent events (ticks) received so far.
    pub fn ticks(&self) -> u64 {
        self.shared.ticks.load(Ordering::Relaxed)
    }

    /// Connections that have ended so far.
    pub fn ended(&self) -> usize {
        self.shared.ended.load(Ordering::Relaxed)
    }

    /// Everything noted so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until nothing has been received for `quiet` (at most
    /// `limit`): the storm of a chat's joins is over. Whether it went quiet.
    pub fn wait_quiet(&self, quiet: Duration, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut last = self.received();
        let mut since = Instant::now();
        while Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
            let now = self.received();
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= quiet {
                return true;
            }
        }
        false
    }

    /// Waits until `done` says so of what was seen, checking every 10 ms,
    /// at most `limit`. Whether it did.
    pub fn wait_for(&self, limit: Duration, done: impl Fn(&[Seen]) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if done(
                &self
                    .shared
                    .seen
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            ) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Fleet {
    /// Stops the reader threads and closes every socket (no closing
    /// handshake).
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for (_, ring) in &self.groups {
            ring_bell(ring);
        }
        self.groups.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Wakes a reader thread. A full bell (it has not read yet) is rung
/// already.
fn ring_bell(mut ring: &UnixStream) {
    let _ = ring.write(&[1]);
}

/// A blocking TCP connection to `addr` with the fleet's timeouts.
fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let stream =
        TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    let set = stream
        .set_nodelay(true)
        .and_then(|()| stream.set_read_timeout(Some(IO_TIMEOUT)))
        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)));
    set.map_err(|e| format!("socket options: {e}"))?;
    Ok(stream)
}

/// A WebSocket client of `ws://ADDR/PATH`, handshake done, its socket
/// still blocking (with the fleet's timeouts). Its read buffer is 4 KiB,
/// not tungstenite's default 128 KiB: thousands of clients in this process.
pub fn connect_websocket(addr: SocketAddr, path: &str) -> Result<WebSocket<TcpStream>, String> {
    let stream = connect(addr)?;
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let url = format!("ws://{addr}{path}");
    tungstenite::client::client_with_config(url.as_str(), stream, Some(config))
        .map(|(ws, _response)| ws)
        .map_err(|e| format!("WebSocket handshake on {path}: {e}"))
}

/// Sends `GET PATH` and reads the response head, which must be `200`.
/// Returns the stream and what followed the head.
fn subscribe(addr: SocketAddr, path: &str) -> Result<(TcpStream, Vec<u8>), String> {
    let mut stream = connect(addr)?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("sending GET {path}: {e}"))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let end = loop {
        let n = stream
            .read(&mut buf)
            .map_err(|e| format!("reading the head of {path}: {e}"))?;
        if n == 0 {
            return Err(format!("{path}: closed before its response head"));
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if head.len() > 16 * 1024 {
            return Err(format!("{path}: a response head over 16 KiB"));
        }
    };
    if !head.starts_with(b"HTTP/1.1 200") && !head.starts_with(b"HTTP/1.0 200") {
        let line = String::from_utf8_lossy(&head[..head.len().min(40)]).into_owned();
        return Err(format!("{path}: answered {line:?}"));
    }
    Ok((stream, head.split_off(end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_marks() {
        assert_eq!(count(b"data: tick 1\n\ndata: tick 2", b"data: tick"), 2);
        assert_eq!(count(b"data: tic", b"data: tick"), 0);
        assert_eq!(marked("17: #bench:42"), Some(42));
        assert_eq!(marked("#bench:7"), Some(7));
        assert_eq!(marked("someone joined"), None);
        assert_eq!(marked("#bench:"), None);
    }
}
