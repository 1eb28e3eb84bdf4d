//! TLS (feature `tls`): a rustls session under a connection, so that
//! handlers see plaintext through the same [`Connection`].
//!
//! What lives here, and where it is used:
//!
//! - [`ListenerTls`]: a listener's TLS setting, which the acceptor turns
//!   into a [`Session`] for each connection it admits.
//! - [`Session`]: the `rustls::ServerConnection` of one connection, owned
//!   by its read buffer ([`Input`](crate::input)), because every read goes
//!   through it: records in from the socket, plaintext out to the buffer.
//!   Writes encrypt through it and go to the socket with the same timeouts
//!   and deadline as plaintext writes; queued output is queued encrypted.
//! - [`Session::step`]: what a worker does before a turn of a TLS
//!   connection (`Connection::advance_tls`, as the
//!   [lifecycle](crate::lifecycle) decides). The handshake advances there as
//!   its records arrive, never inside a handler: each flight is taken without blocking, the answer is written
//!   as far as the socket takes it at once (the rest queued, sent as the
//!   socket drains), and the connection waits between flights like any other,
//!   holding no worker, under the handshake deadline. Records that carry
//!   no plaintext (a ticket, a key update) are handled there too, so that
//!   a handler's turn comes only with plaintext, or the client's end, to
//!   read.
//! - `close_notify`: sent when a connection closes ([`Session::close`],
//!   from the connection's `Drop`, the one place every close passes), unless
//!   the stream is broken (a failed write, a TLS error: then the alert, if
//!   any, went instead) or a forced close finds output still queued.
//!
//! Without the feature, [`Session`] is a type that cannot exist, so the
//! plaintext paths compile to what they were.

#[cfg(feature = "tls")]
pub use enabled::config_from_pem;
#[cfg(all(feature = "tls", feature = "http"))]
pub(crate) use enabled::server_config;
#[cfg(feature = "tls")]
pub(crate) use enabled::{check, ListenerTls, Session};

#[cfg(not(feature = "tls"))]
pub(crate) use disabled::{ListenerTls, Session};

#[cfg(not(feature = "tls"))]
mod disabled {
    use std::io::{self, IoSlice};
    use std::time::Instant;

    use crate::listener::Stream;
    use crate::outcome::Outcome;

    /// No TLS without the feature.
    #[derive(Clone, Debug, Default)]
    pub(crate) struct ListenerTls;

    impl ListenerTls {
        pub(crate) fn start(&self) -> io::Result<Option<Box<Session>>> {
            Ok(None)
        }
    }

    /// A session cannot exist without the feature: every method is
    /// unreachable by construction.
    pub(crate) enum Session {}

    #[allow(clippy::unused_self)]
    impl Session {
        pub(crate) fn has_input(&self) -> bool {
            match *self {}
        }

        pub(crate) fn handshake_deadline(&self) -> Option<Instant> {
            match *self {}
        }

        pub(crate) fn recv_nonblocking(&mut self, _: &Stream, _: &mut [u8]) -> io::Result<usize> {
            match *self {}
        }

        pub(crate) fn read(
            &mut self,
            _: &Stream,
            _: &mut [u8],
            _: Option<Instant>,
        ) -> io::Result<usize> {
            match *self {}
        }

        pub(crate) fn write(
            &mut self,
            _: &Stream,
            _: &[IoSlice<'_>],
            _: Option<Instant>,
        ) -> io::Result<usize> {
            match *self {}
        }

        pub(crate) fn encrypt_into(&mut self, _: &[u8], _: &mut Vec<u8>) {
            match *self {}
        }

        pub(crate) fn close(&mut self, _: &Stream, _: Outcome, _: bool) {
            match *self {}
        }

        pub(crate) fn drain_into(&mut self, _: &mut Vec<u8>) {
            match *self {}
        }

        pub(crate) fn step(&mut self, _: &Stream, _: bool) -> io::Result<bool> {
            match *self {}
        }
    }
}

#[cfg(feature = "tls")]
mod enabled {
    use std::fmt;
    use std::io::{self, IoSlice, Read, Write};
    use std::path::Path;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use rustls::{ServerConfig, ServerConnection};

    use crate::error::Error;
    use crate::listener::{is_hang_up, Stream};
    use crate::outcome::Outcome;
    use crate::sys::{self, AsSource};

    /// An error of kind `InvalidData` for what rustls rejected.
    fn invalid(error: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, error)
    }

    /// How long a close waits for the socket to take the rest of a
    /// `close_notify` it took only part of (a socket that takes none is not
    /// waited for: its client has stopped reading).
    const CLOSE_WAIT: Duration = Duration::from_millis(10);

    /// A listener's TLS: the config its connections use, and how long a
    /// handshake may take.
    #[derive(Clone, Debug, Default)]
    pub(crate) struct ListenerTls {
        pub(crate) setup: Option<(Arc<ServerConfig>, Duration)>,
    }

    impl ListenerTls {
        /// A session for a connection just accepted, if the listener speaks
        /// TLS.
        pub(crate) fn start(&self) -> io::Result<Option<Box<Session>>> {
            let Some((config, timeout)) = &self.setup else {
                return Ok(None);
            };
            let conn = ServerConnection::new(Arc::clone(config)).map_err(invalid)?;
            let now = Instant::now();
            Ok(Some(Box::new(Session {
                conn,
                // The builder bounds the timeout, so this cannot overflow.
                handshake_deadline: now.checked_add(*timeout).unwrap_or(now),
                plaintext: 0,
                peer_closed: false,
                received: false,
                broken: false,
            })))
        }
    }

    /// Checks that `config` can make sessions, for
    /// [`Builder::build`](crate::Builder::build).
    pub(crate) fn check(config: &Arc<ServerConfig>) -> Result<(), String> {
        ServerConnection::new(Arc::clone(config))
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// One connection's TLS session.
    pub(crate) struct Session {
        conn: ServerConnection,
        /// When the handshake must be complete.
        handshake_deadline: Instant,
        /// Plaintext rustls has decrypted that nobody has read yet: input
        /// buffered as much as the connection's own buffer.
        plaintext: usize,
        /// The client has ended its side: `close_notify`, or the TCP end.
        peer_closed: bool,
        /// Whether a byte has come from the client.
        received: bool,
        /// A write failed or the client broke the protocol: the stream
        /// cannot end cleanly, so no `close_notify` follows.
        broken: bool,
    }

    impl fmt::Debug for Session {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Session")
                .field("handshaking", &self.conn.is_handshaking())
                .field("plaintext", &self.plaintext)
                .field("peer_closed", &self.peer_closed)
                .finish_non_exhaustive()
        }
    }

    /// The socket as rustls reads it without blocking.
    struct Nonblocking<'a>(&'a Stream);

    impl Read for Nonblocking<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.recv_nonblocking(buf)
        }
    }

    impl Write for Nonblocking<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.send_nonblocking(buf)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The socket as a handler's reads and writes use it: blocking, with
    /// the socket's timeouts, and failing with `TimedOut` past `deadline`.
    struct Blocking<'a> {
        socket: &'a Stream,
        deadline: Option<Instant>,
    }

    impl Read for Blocking<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.socket.read_by(buf, self.deadline)
        }
    }

    impl Write for Blocking<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.socket.write_by(buf, self.deadline)
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.deadline.is_some() {
                let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| b);
                return self.write(first);
            }
            (&*self.socket).write_vectored(bufs)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Session {
        /// Whether there is something for a handler to read: decrypted
        /// plaintext, or the client's end.
        pub(crate) fn has_input(&self) -> bool {
            self.plaintext > 0 || self.peer_closed
        }

        /// The handshake's deadline while it lasts; `None` after.
        pub(crate) fn handshake_deadline(&self) -> Option<Instant> {
            self.conn
                .is_handshaking()
                .then_some(self.handshake_deadline)
        }

        /// Decrypts the records read so far. A client that broke the
        /// protocol gets rustls's alert, if the socket takes it at once.
        fn process(&mut self, socket: &Stream) -> io::Result<()> {
            match self.conn.process_new_packets() {
                Ok(state) => {
                    self.plaintext = state.plaintext_bytes_to_read();
                    self.peer_closed |= state.peer_has_closed();
                    Ok(())
                }
                Err(error) => {
                    self.broken = true;
                    let _ = self.send_nonblocking(socket);
                    Err(invalid(error))
                }
            }
        }

        /// Reads records into rustls from `from` once, and decrypts them.
        fn read_records(&mut self, socket: &Stream, from: &mut dyn Read) -> io::Result<()> {
            match self.conn.read_tls(from) {
                Ok(0) => self.peer_closed = true,
                Ok(_) => self.received = true,
                Err(e) => return Err(e),
            }
            self.process(socket)?;
            // What rustls answers outside a handshake (a key update) goes
            // now if it can; otherwise before the next write.
            if self.conn.wants_write() && !self.conn.is_handshaking() {
                let _ = self.send_nonblocking(socket);
            }
            Ok(())
        }

        /// Takes decrypted plaintext into `out`; `None` when there is none
        /// (and the client has not ended).
        fn take_plaintext(&mut self, out: &mut [u8]) -> Option<io::Result<usize>> {
            match self.conn.reader().read(out) {
                Ok(n) => {
                    self.plaintext = self.plaintext.saturating_sub(n);
                    Some(Ok(n))
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.plaintext = 0;
                    None
                }
                // A TCP end without `close_notify`: `UnexpectedEof`.
                Err(e) => Some(Err(e)),
            }
        }

        /// As a nonblocking read of the socket: plaintext already decrypted,
        /// else what the records that have arrived give; `Ok(0)` at the
        /// client's `close_notify`, `UnexpectedEof` at a TCP end without
        /// it, `WouldBlock` when nothing has arrived.
        pub(crate) fn recv_nonblocking(
            &mut self,
            socket: &Stream,
            out: &mut [u8],
        ) -> io::Result<usize> {
            loop {
                if let Some(result) = self.take_plaintext(out) {
                    return result;
                }
                self.read_records(socket, &mut Nonblocking(socket))?;
            }
        }

        /// As a blocking read of the socket (its read timeout, and
        /// `deadline`, bound each wait for records).
        pub(crate) fn read(
            &mut self,
            socket: &Stream,
            out: &mut [u8],
            deadline: Option<Instant>,
        ) -> io::Result<usize> {
            loop {
                if let Some(result) = self.take_plaintext(out) {
                    return result;
                }
                self.read_records(socket, &mut Blocking { socket, deadline })?;
            }
        }

        /// Encrypts `bufs` (as much as rustls takes at once) and writes the
        /// records to the socket, blocking as a plaintext write does.
        /// Returns the plaintext bytes taken.
        pub(crate) fn write(
            &mut self,
            socket: &Stream,
            bufs: &[IoSlice<'_>],
            deadline: Option<Instant>,
        ) -> io::Result<usize> {
            // Records still pending first (a ticket), so that rustls's
            // buffer has room.
            self.flush(socket, deadline)?;
            let taken = self.conn.writer().write_vectored(bufs)?;
            self.flush(socket, deadline)?;
            Ok(taken)
        }

        /// Writes every pending record, blocking.
        fn flush(&mut self, socket: &Stream, deadline: Option<Instant>) -> io::Result<()> {
            while self.conn.wants_write() {
                let written = self.conn.write_tls(&mut Blocking { socket, deadline });
                match written {
                    Ok(0) => {
                        self.broken = true;
                        return Err(io::ErrorKind::WriteZero.into());
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        // Part of a record may be on the wire: the stream
                        // is cut, and must look cut to the client.
                        self.broken = true;
                        return Err(e);
                    }
                }
            }
            Ok(())
        }

        /// Encrypts `plain` and appends the records to `out`: output queued
        /// to go while the connection waits.
        pub(crate) fn encrypt_into(&mut self, mut plain: &[u8], out: &mut Vec<u8>) {
            loop {
                // Writing to a `Vec` cannot fail.
                while self.conn.wants_write() && self.conn.write_tls(out).is_ok() {}
                if plain.is_empty() {
                    return;
                }
                match self.conn.writer().write(plain) {
                    Ok(n) if n > 0 => plain = &plain[n..],
                    // rustls takes at least one record once its buffer is
                    // empty, as it is here; never loop on nothing.
                    _ => return,
                }
            }
        }

        /// Moves the records rustls has to send into `out`.
        pub(crate) fn drain_into(&mut self, out: &mut Vec<u8>) {
            self.encrypt_into(&[], out);
        }

        /// Writes pending records as far as the socket takes them now;
        /// whether all went.
        fn send_nonblocking(&mut self, socket: &Stream) -> io::Result<bool> {
            self.send_nonblocking_counted(socket).map(|(all, _)| all)
        }

        /// Advances the handshake with what has arrived, without blocking:
        /// reads flights and writes the answers as far as the socket takes
        /// them (the caller queues the rest).
        fn handshake(&mut self, socket: &Stream) -> io::Result<()> {
            loop {
                if !self.send_nonblocking(socket)? || !self.conn.is_handshaking() {
                    return Ok(());
                }
                match self.conn.read_tls(&mut Nonblocking(socket)) {
                    Ok(0) if !self.received => {
                        return Err(io::Error::new(
                            io::ErrorKind::NotConnected,
                            "the client closed the connection before a TLS handshake",
                        ));
                    }
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the client closed the connection during the TLS handshake",
                        ));
                    }
                    Ok(_) => {
                        self.received = true;
                        self.process(socket)?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if !self.received && is_hang_up(&e) => {
                        return Err(io::Error::new(io::ErrorKind::NotConnected, e));
                    }
                    Err(e) => return Err(e),
                }
            }
        }

        /// The TLS step before a turn, without blocking: advances the
        /// handshake with what has arrived (records the socket does not
        /// take at once stay pending: queue them with
        /// [`drain_into`](Self::drain_into)), or takes records that carry
        /// no plaintext (a ticket, a key update). Returns whether the
        /// handler has something to read; `ready` says it has already (input
        /// buffered, its deadline passed, output queued).
        ///
        /// # Errors
        ///
        /// `TimedOut` once the handshake's deadline has passed,
        /// `NotConnected` if the client closed before a byte of its
        /// handshake, or what broke the session.
        pub(crate) fn step(&mut self, socket: &Stream, ready: bool) -> io::Result<bool> {
            if self.conn.is_handshaking() {
                if Instant::now() >= self.handshake_deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the TLS handshake did not complete within the handshake timeout",
                    ));
                }
                self.handshake(socket)?;
                if self.conn.is_handshaking() || self.conn.wants_write() {
                    return Ok(false);
                }
            }
            if ready {
                return Ok(true);
            }
            self.pull(socket)?;
            Ok(self.has_input())
        }

        /// Takes the records that have arrived, without blocking, until
        /// there is plaintext or the client's end, or nothing more.
        fn pull(&mut self, socket: &Stream) -> io::Result<()> {
            while !self.has_input() {
                match self.read_records(socket, &mut Nonblocking(socket)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if is_hang_up(&e) => {
                        // A reset: the handler's read will say so.
                        self.peer_closed = true;
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }

        /// Ends the session as the connection closes with `outcome`:
        /// `close_notify` first, unless the stream is broken, or the close
        /// is forced with output still queued (what was sent is cut, and
        /// must look cut). Never blocks for long: what the socket does not
        /// take at once is waited for only if it took part of it, for at
        /// most [`CLOSE_WAIT`].
        pub(crate) fn close(&mut self, socket: &Stream, outcome: Outcome, queued: bool) {
            let forced = matches!(outcome, Outcome::ForceClosed | Outcome::Unserved);
            if self.broken || (forced && queued) {
                return;
            }
            self.conn.send_close_notify();
            // A stream with records already pending (a blocking write's
            // rest) cannot be finished without blocking; those are rare.
            let deadline = Instant::now() + CLOSE_WAIT;
            let mut wrote_any = false;
            loop {
                match self.send_nonblocking_counted(socket) {
                    Ok((true, _)) | Err(_) => return,
                    Ok((false, n)) => wrote_any |= n > 0,
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if !wrote_any || left.is_zero() {
                    return;
                }
                if !matches!(sys::wait_writable(socket.as_source(), left), Ok(true)) {
                    return;
                }
            }
        }

        /// As [`send_nonblocking`](Self::send_nonblocking), also saying how
        /// many bytes went.
        fn send_nonblocking_counted(&mut self, socket: &Stream) -> io::Result<(bool, usize)> {
            let mut sent = 0;
            while self.conn.wants_write() {
                match self.conn.write_tls(&mut Nonblocking(socket)) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok((false, sent)),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok((true, sent))
        }
    }

    /// Before a turn of `conn`: advances its handshake, or takes the
    /// records that have arrived, and says whether the handler has anything
    /// to read. See the module's docs.
    /// Reads a certificate chain and its private key from PEM files and
    /// makes a server config of them: TLS 1.3 and 1.2 with rustls's safe
    /// defaults, no client certificates, no ALPN. That is what a command
    /// line's `--tls-cert FILE --tls-key FILE` needs; for HTTPS with the
    /// HTTP layer, `http::tls_config_from_pem` (features `http` and `tls`)
    /// is the same config offering ALPN `http/1.1`. Build a
    /// [`rustls::ServerConfig`] yourself for anything else (a certificate
    /// resolver, client certificates, other key exchange groups).
    ///
    /// The chain file holds the server's certificate first, then the
    /// intermediates; the key file a PKCS#8, PKCS#1 or SEC1 key.
    ///
    /// The crypto provider is the one your program installed as the
    /// process's default
    /// ([`CryptoProvider::install_default`](rustls::crypto::CryptoProvider::install_default)),
    /// as for rustls's own `ServerConfig::builder`; if none is installed,
    /// aws-lc-rs (feature `aws-lc-rs`, on by default), which offers the
    /// post-quantum hybrid key exchange X25519MLKEM768 first and the
    /// classical groups (X25519, P-384, P-256) after it, so that a client
    /// that offers it gets it, and every other client what it offers.
    ///
    /// # Errors
    ///
    /// [`Error::Tls`] saying what is wrong: a file missing or unreadable,
    /// no certificate or no key in it, a key that does not belong to the
    /// certificate; or no crypto provider (the feature `aws-lc-rs` off and
    /// none installed).
    ///
    /// # Example
    ///
    /// ```no_run
    /// # fn main() -> Result<(), graceful_server::Error> {
    /// let config = graceful_server::tls_config_from_pem("cert.pem", "key.pem")?;
    /// let server = graceful_server::Server::builder("127.0.0.1:8443")
    ///     .tls(config)
    ///     .build()?;
    /// # drop(server);
    /// # Ok(())
    /// # }
    /// ```
    pub fn config_from_pem(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Arc<ServerConfig>, Error> {
        server_config(cert.as_ref(), key.as_ref()).map(Arc::new)
    }

    /// The config of [`config_from_pem`], before it is shared: the HTTP
    /// layer adds its ALPN protocol to it.
    pub(crate) fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, Error> {
        let read = |path: &Path, what: &str| {
            std::fs::read(path).map_err(|e| {
                Error::Tls(format!(
                    "cannot read the {what} file {}: {e}",
                    path.display()
                ))
            })
        };
        let cert_pem = read(cert, "certificate")?;
        let key_pem = read(key, "key")?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Tls(format!("{}: not a PEM certificate: {e}", cert.display())))?;
        if chain.is_empty() {
            return Err(Error::Tls(format!(
                "{}: no certificate in it (a PEM file with a BEGIN CERTIFICATE block)",
                cert.display()
            )));
        }
        let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            Error::Tls(format!(
                "{}: no private key in it (a PEM file with a BEGIN PRIVATE KEY block): {e}",
                key.display()
            ))
        })?;
        ServerConfig::builder_with_provider(provider()?)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_no_client_auth()
            // Checks that the key is the certificate's.
            .with_single_cert(chain, key_der)
            .map_err(|e| {
                Error::Tls(format!(
                    "{} and {} do not make a usable pair: {e}",
                    cert.display(),
                    key.display()
                ))
            })
    }

    /// The crypto provider of [`config_from_pem`]: the process's default if
    /// the program installed one, else the crate's own.
    fn provider() -> Result<Arc<CryptoProvider>, Error> {
        match CryptoProvider::get_default() {
            Some(installed) => Ok(Arc::clone(installed)),
            None => own_provider().map(Arc::new),
        }
    }

    /// aws-lc-rs, rustls's default provider: its default key exchange
    /// groups put X25519MLKEM768 first. Asked for by name, so that another
    /// crate enabling `ring` in the same program cannot make the choice
    /// ambiguous, as it would for rustls's `ServerConfig::builder`.
    #[cfg(feature = "aws-lc-rs")]
    fn own_provider() -> Result<CryptoProvider, Error> {
        Ok(rustls::crypto::aws_lc_rs::default_provider())
    }

    /// Without the feature `aws-lc-rs` the crate has no provider of its own.
    #[cfg(not(feature = "aws-lc-rs"))]
    fn own_provider() -> Result<CryptoProvider, Error> {
        Err(Error::Tls(
            "no TLS crypto provider: build with the feature `aws-lc-rs` (on by default), \
             or install one with rustls::crypto::CryptoProvider::install_default first"
                .to_string(),
        ))
    }
}

#[cfg(all(test, feature = "tls"))]
mod tests {
    use std::path::PathBuf;

    use super::config_from_pem;
    use crate::error::Error;

    /// A directory of PEM files for one test.
    struct Files(PathBuf);

    impl Files {
        fn new(name: &str) -> Files {
            let dir =
                std::env::temp_dir().join(format!("gs-tls-unit-{}-{name}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("create a directory");
            Files(dir)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, text).expect("write a file");
            path
        }
    }

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn reason(result: Result<impl Sized, Error>) -> String {
        match result {
            Err(Error::Tls(reason)) => reason,
            Err(other) => panic!("expected Error::Tls, got {other:?}"),
            Ok(_) => panic!("expected an error"),
        }
    }

    #[test]
    fn a_pair_loads_and_every_bad_file_is_named() {
        let files = Files::new("pairs");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        let cert_pem = files.write("cert.pem", &cert.cert.pem());
        let key_pem = files.write("key.pem", &cert.key_pair.serialize_pem());
        let other_key = files.write("other.pem", &other.key_pair.serialize_pem());
        let empty = files.write("empty.pem", "");
        let missing = files.0.join("missing.pem");

        assert!(config_from_pem(&cert_pem, &key_pem).is_ok());

        let why = reason(config_from_pem(&missing, &key_pem));
        assert!(
            why.contains("certificate file") && why.contains("missing.pem"),
            "{why}"
        );
        let why = reason(config_from_pem(&cert_pem, &missing));
        assert!(
            why.contains("key file") && why.contains("missing.pem"),
            "{why}"
        );
        let why = reason(config_from_pem(&empty, &key_pem));
        assert!(why.contains("no certificate"), "{why}");
        let why = reason(config_from_pem(&key_pem, &key_pem));
        assert!(why.contains("no certificate"), "{why}");
        let why = reason(config_from_pem(&cert_pem, &empty));
        assert!(why.contains("no private key"), "{why}");
        let why = reason(config_from_pem(&cert_pem, &cert_pem));
        assert!(why.contains("no private key"), "{why}");
        let why = reason(config_from_pem(&cert_pem, &other_key));
        assert!(why.contains("do not make a usable pair"), "{why}");
    }

    #[test]
    fn a_listener_without_tls_starts_no_session() {
        let plain = super::ListenerTls::default();
        assert!(matches!(plain.start(), Ok(None)));
    }

    #[test]
    fn a_listener_with_tls_starts_a_session_in_its_handshake() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .expect("config");
        let timeout = std::time::Duration::from_secs(3);
        let tls = super::ListenerTls {
            setup: Some((std::sync::Arc::new(config), timeout)),
        };
        let session = tls.start().expect("start").expect("a session");
        let deadline = session.handshake_deadline().expect("handshaking");
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        assert!(left <= timeout && left > timeout / 2, "{left:?}");
        assert!(!session.has_input());
    }
}
