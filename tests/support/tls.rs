//! TLS helpers for the tests: a CA and a server certificate made with
//! rcgen, written to PEM files, and a rustls client with timeouts.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use graceful_server::rustls::{self, pki_types::PrivateKeyDer, ClientConnection, StreamOwned};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

use super::IO_TIMEOUT;

/// A test CA and a certificate it signed for `localhost` and `127.0.0.1`,
/// in memory and as PEM files in a directory of their own.
pub struct Certs {
    pub ca_der: rustls::pki_types::CertificateDer<'static>,
    pub cert_der: rustls::pki_types::CertificateDer<'static>,
    pub key_der: Vec<u8>,
    pub dir: PathBuf,
    pub ca_pem: PathBuf,
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
    /// The key of another certificate: with `cert_pem`, a mismatched pair.
    pub other_key_pem: PathBuf,
}

impl Certs {
    pub fn new() -> Certs {
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "gs-tls-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("create the certificate directory");

        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "graceful-server test CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");

        let key = KeyPair::generate().expect("server key");
        let params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("server params");
        let cert = params
            .signed_by(&key, &ca, &ca_key)
            .expect("server certificate");
        let other_key = KeyPair::generate().expect("another key");

        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write a PEM file");
            path
        };
        Certs {
            ca_pem: write("ca.pem", ca.pem()),
            cert_pem: write("cert.pem", cert.pem()),
            key_pem: write("key.pem", key.serialize_pem()),
            other_key_pem: write("other-key.pem", other_key.serialize_pem()),
            ca_der: ca.der().clone(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
            dir,
        }
    }

    /// The library's provider (aws-lc-rs), whose client offers the
    /// post-quantum X25519MLKEM768 first, as browsers do.
    pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let config = rustls::ServerConfig::builder_with_provider(Certs::provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert_der.clone(), self.ca_der.clone()],
                PrivateKeyDer::Pkcs8(self.key_der.clone().into()),
            )
            .expect("server config");
        Arc::new(config)
    }

    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("add the CA");
        let config = rustls::ClientConfig::builder_with_provider(Certs::provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }

    /// A TLS client connected to `addr`, with timeouts; the handshake
    /// happens on its first read or write.
    pub fn client(&self, addr: SocketAddr) -> TlsClient {
        self.client_with(addr, self.client_config())
    }

    /// [`client`](Self::client) with a config of the test's own (other key
    /// exchange groups, ALPN protocols); start it from
    /// [`client_config`](Self::client_config).
    pub fn client_with(&self, addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> TlsClient {
        let name = "localhost".try_into().expect("a server name");
        let conn = ClientConnection::new(config, name).expect("client connection");
        let tcp = super::client(addr);
        StreamOwned::new(conn, tcp)
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub type TlsClient = StreamOwned<ClientConnection, TcpStream>;

/// Completes the handshake now.
pub fn handshake(client: &mut TlsClient) -> io::Result<()> {
    while client.conn.is_handshaking() {
        client.conn.complete_io(&mut client.sock)?;
    }
    Ok(())
}

/// Reads to the end of the TLS stream: `Ok` only if the server sent
/// `close_notify`; a TCP end without it is `UnexpectedEof`.
pub fn read_to_close(client: &mut TlsClient) -> io::Result<Vec<u8>> {
    let mut all = Vec::new();
    client.read_to_end(&mut all)?;
    Ok(all)
}

/// Sends our `close_notify`.
pub fn send_close_notify(client: &mut TlsClient) -> io::Result<()> {
    client.conn.send_close_notify();
    client.flush()?;
    while client.conn.wants_write() {
        client.conn.write_tls(&mut client.sock)?;
    }
    Ok(())
}

/// Reads one HTTP response (head and a `Content-Length` body).
pub fn read_response(client: &mut TlsClient) -> io::Result<String> {
    let mut data = Vec::new();
    let mut byte = [0; 1];
    while !data.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        data.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&data).to_string();
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    client.read_exact(&mut body)?;
    Ok(format!("{head}{}", String::from_utf8_lossy(&body)))
}

/// The TLS end, as a test reads it.
pub fn ended_cleanly(result: io::Result<Vec<u8>>) -> Result<Vec<u8>, String> {
    result.map_err(|e| format!("no close_notify: the TLS stream ended with {e:?}"))
}

/// For tests that need to send raw bytes on a TLS port.
pub fn raw(addr: SocketAddr) -> TcpStream {
    let stream = super::client(addr);
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("read timeout");
    stream
}

/// The first bytes of a TLS ClientHello: a handshake record header that
/// promises more than it sends.
pub const PARTIAL_HELLO: &[u8] = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
