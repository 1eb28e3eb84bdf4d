//! A connected pair of sockets: the wake-up where there is no `eventfd`
//! (Unix sockets on unix, loopback TCP sockets on Windows, which has no
//! socket pair in std). On Linux and Android only the tests use pairs.

use std::io;

/// One end of a socket pair.
#[cfg(unix)]
pub(crate) type Socket = std::os::unix::net::UnixStream;
/// One end of a socket pair.
#[cfg(windows)]
pub(crate) type Socket = std::net::TcpStream;

/// A connected pair of Unix sockets.
#[cfg(unix)]
pub(crate) fn socket_pair() -> io::Result<(Socket, Socket)> {
    Socket::pair()
}

/// A connected pair of loopback TCP sockets, made with std alone: listen on
/// an ephemeral port of 127.0.0.1, connect, accept. Another local process
/// could connect to that port in between, so the accepted socket must be
/// ours: its peer is our connector's address. `TCP_NODELAY`, so that a
/// one-byte wake-up is sent at once rather than held back by Nagle's
/// algorithm until the previous one is acknowledged.
#[cfg(windows)]
pub(crate) fn socket_pair() -> io::Result<(Socket, Socket)> {
    use std::net::{Ipv4Addr, TcpListener};

    /// How many strangers' connections to skip before giving up.
    const ATTEMPTS: usize = 16;

    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let connector = Socket::connect(listener.local_addr()?)?;
    let ours = connector.local_addr()?;
    for _ in 0..ATTEMPTS {
        // Our connection completed its handshake before `connect` returned,
        // so it is in the backlog and this blocking accept cannot hang.
        let (accepted, peer) = listener.accept()?;
        if peer == ours {
            connector.set_nodelay(true)?;
            accepted.set_nodelay(true)?;
            return Ok((connector, accepted));
        }
        // Not ours: dropped, which closes it.
    }
    Err(io::Error::other(
        "wake-up socket pair: another process kept connecting to its port",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn the_pair_is_connected_both_ways() {
        let (mut a, mut b) = socket_pair().expect("pair");
        a.write_all(b"ab").expect("write a");
        b.write_all(b"ba").expect("write b");
        let mut buf = [0; 2];
        b.read_exact(&mut buf).expect("read b");
        assert_eq!(&buf, b"ab");
        a.read_exact(&mut buf).expect("read a");
        assert_eq!(&buf, b"ba");
    }
}
