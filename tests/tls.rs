//! TLS (feature `tls`) over real sockets with real clients: rustls's, curl
//! and Python's `ssl`. Certificates are made in the test with rcgen.
//!
//! Whether the server sent `close_notify` is seen by a rustls client: its
//! read returns `Ok(0)` only after one, and fails with `UnexpectedEof` at a
//! TCP end without it (the forced cut below shows the difference).
#![cfg(all(feature = "tls", feature = "http"))]

mod support;

use std::io::{self, Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use graceful_server::http::{self, Response};
use graceful_server::rustls;
use graceful_server::{Connection, Event, Next, Outcome, RunningServer, Server};

use support::tls::{
    ended_cleanly, handshake, raw, read_response, read_to_close, send_close_notify, Certs,
    PARTIAL_HELLO,
};
#[cfg(unix)]
use support::ServerProcess;

const BOUND: Duration = Duration::from_secs(10);

fn hello_app() -> impl graceful_server::Handler {
    http::handler(|req| match req.path() {
        "/" => Response::text("Hello, world!"),
        _ => Response::text("not here").with_status(404),
    })
}

/// The HTTP layer answering `hello_app`, over TLS with `certs`.
fn hello_over_tls(certs: &Certs) -> RunningServer {
    Server::builder("127.0.0.1:0")
        .tls(certs.server_config())
        .build()
        .expect("build")
        .spawn(hello_app())
        .expect("spawn")
}

#[test]
fn echo_over_tls_and_the_clients_close_notify_completes_it() {
    let certs = Certs::new();
    let running = Server::builder("127.0.0.1:0")
        .tls(certs.server_config())
        .build()
        .expect("build")
        .spawn(support::echo)
        .expect("spawn");
    let mut client = certs.client(running.local_addr());
    client.write_all(b"hello over TLS").expect("write");
    let mut reply = [0; 14];
    client.read_exact(&mut reply).expect("read the echo");
    assert_eq!(&reply, b"hello over TLS");

    // Our close_notify is the end of the server's input: its read returns
    // 0, the handler says Close, and the server answers with its own.
    send_close_notify(&mut client).expect("send close_notify");
    let rest = ended_cleanly(read_to_close(&mut client)).expect("the server's close_notify");
    assert!(rest.is_empty());
    running.shutdown_handle().shutdown();
    let report = support::join(running);
    assert_eq!((report.accepted, report.completed), (1, 1), "{report:?}");
}

#[test]
fn idle_keep_alive_is_closed_at_shutdown_with_close_notify() {
    let certs = Certs::new();
    let running = Server::builder("127.0.0.1:0")
        .tls(certs.server_config())
        .idle_grace(Duration::from_millis(100))
        .build()
        .expect("build")
        .spawn(hello_app())
        .expect("spawn");
    let mut client = certs.client(running.local_addr());
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("write");
    let response = read_response(&mut client).expect("response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("Hello, world!"), "{response}");
    assert!(!response.contains("Connection: close"), "{response}");

    // Idle between requests: shutdown closes it after the grace, with
    // close_notify first.
    running.shutdown_handle().shutdown();
    let rest = ended_cleanly(read_to_close(&mut client)).expect("close_notify at the idle close");
    assert!(rest.is_empty(), "{rest:?}");
    let report = support::join(running);
    assert_eq!(report.closed_idle, 1, "{report:?}");
}

#[test]
fn connection_close_is_answered_then_close_notify() {
    let certs = Certs::new();
    let running = hello_over_tls(&certs);
    let mut client = certs.client(running.local_addr());
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("write");
    let all = ended_cleanly(read_to_close(&mut client)).expect("close_notify after the response");
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("Connection: close"), "{text}");
    assert!(text.ends_with("Hello, world!"), "{text}");
    running.shutdown_handle().shutdown();
    let report = support::join(running);
    assert_eq!(report.completed, 1, "{report:?}");
}

/// The check above can fail: a connection cut by a forced shutdown in the
/// middle of a turn ends without close_notify, and the client sees it.
#[test]
fn a_forced_cut_mid_turn_ends_without_close_notify() {
    let certs = Certs::new();
    let (started_tx, started_rx) = crossbeam_channel::bounded(1);
    let running = Server::builder("127.0.0.1:0")
        .tls(certs.server_config())
        .build()
        .expect("build")
        .spawn(move |conn: &mut Connection| {
            let mut buf = [0; 64];
            let n = conn.read(&mut buf)?;
            conn.write_all(&buf[..n])?;
            let _ = started_tx.send(());
            // Holds the turn, reading, until the cut makes the read fail.
            loop {
                if conn.read(&mut buf)? == 0 {
                    return Ok(Next::Close);
                }
            }
        })
        .expect("spawn");
    let mut client = certs.client(running.local_addr());
    client.write_all(b"hi").expect("write");
    let mut reply = [0; 2];
    client.read_exact(&mut reply).expect("read");
    started_rx.recv_timeout(BOUND).expect("the turn started");
    running.shutdown_handle().force();
    let end = read_to_close(&mut client);
    assert!(
        matches!(&end, Err(e) if e.kind() == io::ErrorKind::UnexpectedEof
            || e.kind() == io::ErrorKind::ConnectionReset),
        "a cut must not look like a clean end: {end:?}"
    );
    let report = support::join(running);
    assert_eq!(report.force_closed, 1, "{report:?}");
}

#[test]
fn keep_alive_and_pipelining_over_tls() {
    let certs = Certs::new();
    let running = Server::builder("127.0.0.1:0")
        .tls(certs.server_config())
        .workers(2)
        .build()
        .expect("build")
        .spawn(http::handler(|req| Response::text(req.path().to_string())))
        .expect("spawn");
    let mut client = certs.client(running.local_addr());
    // Three requests in one write: they arrive in one record, decrypted
    // together; the second and third wait in the buffers and are served
    // without more input from the socket.
    client
        .write_all(
            b"GET /one HTTP/1.1\r\nHost: l\r\n\r\n\
              GET /two HTTP/1.1\r\nHost: l\r\n\r\n\
              GET /three HTTP/1.1\r\nHost: l\r\n\r\n",
        )
        .expect("write");
    for path in ["/one", "/two", "/three"] {
        let response = read_response(&mut client).expect("a pipelined response");
        assert!(response.ends_with(path), "{path}: {response}");
    }
    // The same connection serves on, after a pause.
    for path in ["/four", "/five"] {
        write!(client, "GET {path} HTTP/1.1\r\nHost: l\r\n\r\n").expect("write");
        let response = read_response(&mut client).expect("a keep-alive response");
        assert!(response.ends_with(path), "{path}: {response}");
    }
    running.shutdown_handle().shutdown();
    ended_cleanly(read_to_close(&mut client)).expect("close_notify at shutdown");
    let report = support::join(running);
    assert_eq!(report.accepted, 1, "one connection for five requests");
}

/// More pipelined requests than the connection's buffer takes at once:
/// what rustls has decrypted beyond it counts as buffered input, so the
/// connection is served on, never left waiting for a socket that has
/// nothing more to say.
#[test]
fn plaintext_waiting_in_rustls_is_served_without_more_input() {
    const REQUESTS: usize = 100;
    let certs = Certs::new();
    let running = Server::builder("127.0.0.1:0")
        .tls(certs.server_config())
        .build()
        .expect("build")
        .spawn(http::handler(|req| Response::text(req.path().to_string())))
        .expect("spawn");
    let mut client = certs.client(running.local_addr());
    handshake(&mut client).expect("handshake");
    let pad = "p".repeat(160);
    let all: String = (0..REQUESTS)
        .map(|i| format!("GET /{i} HTTP/1.1\r\nHost: l\r\nX-Pad: {pad}\r\n\r\n"))
        .collect();
    assert!(all.len() > 12 * 1024, "more than a buffer, within a record");
    // One write: rustls sends it as one record of up to 16 KiB.
    client
        .write_all(&all.as_bytes()[..16 * 1024])
        .expect("write");
    client
        .write_all(&all.as_bytes()[16 * 1024..])
        .expect("write");
    for i in 0..REQUESTS {
        let response = read_response(&mut client).expect("a pipelined response");
        assert!(response.ends_with(&format!("/{i}")), "{i}: {response}");
    }
    running.shutdown_handle().shutdown();
    let report = support::join(running);
    assert_eq!(report.accepted, 1, "{report:?}");
}

#[test]
fn a_body_larger_than_a_record_and_a_large_response() {
    let certs = Certs::new();
    let running = Server::builder("127.0.0.1:0")
        .tls(certs.server_config())
        .build()
        .expect("build")
        .spawn(http::handler(|req| {
            let mut body = Vec::new();
            if req.body().read_to_end(&mut body).is_err() {
                return Response::text("bad body").with_status(400);
            }
            // Ten times the body back: several records, more than a socket
            // buffer may take at once.
            Response::text("").body(body.repeat(10))
        }))
        .expect("spawn");
    let mut client = certs.client(running.local_addr());
    let body = vec![b'x'; 100_000];
    write!(
        client,
        "POST /echo HTTP/1.1\r\nHost: l\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .expect("write the head");
    client.write_all(&body).expect("write the body");
    let response = read_response(&mut client).expect("response");
    assert!(response.starts_with("HTTP/1.1 200"), "{}", &response[..40]);
    let (_, body) = response.split_once("\r\n\r\n").expect("a head");
    assert_eq!(body.len(), 1_000_000);
    assert!(body.bytes().all(|b| b == b'x'));
    running.shutdown_handle().shutdown();
    let report = support::join(running);
    assert_eq!(report.accepted, 1, "{report:?}");
}

#[test]
fn a_bad_client_hello_is_failed_with_an_alert() {
    let certs = Certs::new();
    let running = hello_over_tls(&certs);
    // Plain HTTP on the TLS port.
    let mut plain = raw(running.local_addr());
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: l\r\n\r\n")
        .expect("write");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert_eq!(
        answer.first(),
        Some(&0x15),
        "a TLS alert record: {answer:?}"
    );
    // A client that connects and leaves without a byte (a TCP health
    // check) ends as a plaintext one would: completed.
    drop(raw(running.local_addr()));
    running.shutdown_handle().shutdown();
    let report = support::join(running);
    assert_eq!(report.failed, 1, "{report:?}");
    assert_eq!(report.accepted, 2, "{report:?}");
}

/// 200 clients stalled mid-handshake (or silent) on 4 workers: a real
/// HTTPS client is answered at once, long before their deadline, and they
/// are cut at it and counted timed out.
#[test]
fn stalled_handshakes_hold_no_worker_and_are_cut_at_their_deadline() {
    const STALLED: usize = 200;
    const TIMEOUT: Duration = Duration::from_secs(4);
    let certs = Certs::new();
    let cut_before = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&cut_before);
    let running = Server::builder("127.0.0.1:0")
        .tls(certs.server_config())
        .workers(4)
        .tls_handshake_timeout(TIMEOUT)
        .on_event(move |event| {
            if let Event::ConnectionEnded {
                outcome: Outcome::TimedOut,
                ..
            } = event
            {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        })
        .build()
        .expect("build")
        .spawn(hello_app())
        .expect("spawn");
    let addr = running.local_addr();
    let started = Instant::now();
    let stalled: Vec<_> = (0..STALLED)
        .map(|i| {
            let mut stream = raw(addr);
            stream
                .set_read_timeout(Some(TIMEOUT + BOUND))
                .expect("read timeout");
            if i % 2 == 0 {
                stream.write_all(PARTIAL_HELLO).expect("half a hello");
            }
            stream
        })
        .collect();

    let asked = Instant::now();
    let mut client = certs.client(addr);
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("write");
    let all = ended_cleanly(read_to_close(&mut client)).expect("answered, then close_notify");
    let answered = asked.elapsed();
    assert!(String::from_utf8_lossy(&all).ends_with("Hello, world!"));
    assert_eq!(
        cut_before.load(Ordering::SeqCst),
        0,
        "answered only after stalled handshakes were cut"
    );
    assert!(
        answered < TIMEOUT / 2,
        "the real client waited {answered:?} behind stalled handshakes"
    );

    // Each stalled client sees its connection end at the deadline, not
    // before.
    for mut stream in stalled {
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
    }
    let waited = started.elapsed();
    assert!(
        waited >= TIMEOUT,
        "cut after {waited:?}, before the {TIMEOUT:?} deadline"
    );
    running.shutdown_handle().shutdown();
    let report = support::join(running);
    assert_eq!(report.timed_out, STALLED as u64, "{report:?}");
    assert_eq!(report.completed, 1, "{report:?}");
}

#[test]
fn a_slow_but_steady_handshake_is_not_cut_early() {
    let certs = Certs::new();
    let running = Server::builder("127.0.0.1:0")
        .tls(certs.server_config())
        .tls_handshake_timeout(Duration::from_secs(5))
        .build()
        .expect("build")
        .spawn(support::echo)
        .expect("spawn");
    let mut client = certs.client(running.local_addr());
    // The handshake by itself, then nothing for a while: the connection
    // waits mid-conversation with no deadline of its own.
    handshake(&mut client).expect("handshake");
    client.write_all(b"ping").expect("write");
    let mut reply = [0; 4];
    client.read_exact(&mut reply).expect("read");
    assert_eq!(&reply, b"ping");
    drop(client);
    running.shutdown_handle().shutdown();
    let report = support::join(running);
    assert_eq!(report.timed_out, 0, "{report:?}");
}

#[test]
fn tls_on_one_listener_and_plain_on_another() {
    let certs = Certs::new();
    let running = Server::builder("127.0.0.1:0")
        .listen_tls("127.0.0.1:0", certs.server_config())
        .build()
        .expect("build")
        .spawn(hello_app())
        .expect("spawn");
    let addrs: Vec<_> = running
        .local_addrs()
        .iter()
        .map(|a| a.tcp().expect("tcp"))
        .collect();
    let mut plain = support::client(addrs[0]);
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: l\r\nConnection: close\r\n\r\n")
        .expect("write");
    let text = String::from_utf8(support::read_to_end(&mut plain).expect("read")).expect("utf-8");
    assert!(text.ends_with("Hello, world!"), "{text}");
    let mut tls = certs.client(addrs[1]);
    tls.write_all(b"GET / HTTP/1.1\r\nHost: l\r\nConnection: close\r\n\r\n")
        .expect("write");
    let all = ended_cleanly(read_to_close(&mut tls)).expect("close_notify");
    assert!(String::from_utf8_lossy(&all).ends_with("Hello, world!"));
    running.shutdown_handle().shutdown();
    assert_eq!(support::join(running).completed, 2);
}

/// The name of the key exchange group a client's handshake negotiated.
fn negotiated_group(client: &mut support::tls::TlsClient) -> rustls::NamedGroup {
    handshake(client).expect("handshake");
    client
        .conn
        .negotiated_key_exchange_group()
        .expect("a key exchange group, once the handshake is done")
        .name()
}

/// `tls_config_from_pem`'s provider (aws-lc-rs) gives the post-quantum
/// hybrid to a client that offers it, as browsers have by default since
/// 2024, and a classical group to a client that offers only those.
#[test]
fn post_quantum_key_exchange_for_a_client_that_offers_it() {
    let certs = Certs::new();
    let config = graceful_server::tls_config_from_pem(&certs.cert_pem, &certs.key_pem)
        .expect("the PEM files load");
    let running = Server::builder("127.0.0.1:0")
        .tls(config)
        .build()
        .expect("build")
        .spawn(hello_app())
        .expect("spawn");
    let addr = running.local_addr();

    // rustls's client on aws-lc-rs: X25519MLKEM768 first, X25519 after it.
    let offered: Vec<_> = Certs::provider()
        .kx_groups
        .iter()
        .map(|group| group.name())
        .collect();
    assert_eq!(offered.first(), Some(&rustls::NamedGroup::X25519MLKEM768));
    let mut post_quantum = certs.client(addr);
    let group = negotiated_group(&mut post_quantum);
    eprintln!("negotiated with a post-quantum-capable client: {group:?}");
    assert_eq!(group, rustls::NamedGroup::X25519MLKEM768);
    post_quantum
        .write_all(b"GET / HTTP/1.1\r\nHost: l\r\n\r\n")
        .expect("write");
    let response = read_response(&mut post_quantum).expect("a response");
    assert!(response.ends_with("Hello, world!"), "{response}");

    // A client that offers only X25519 still gets it.
    let classical = rustls::crypto::CryptoProvider {
        kx_groups: vec![rustls::crypto::aws_lc_rs::kx_group::X25519],
        ..rustls::crypto::aws_lc_rs::default_provider()
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certs.ca_der.clone()).expect("add the CA");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(classical))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut classical = certs.client_with(addr, Arc::new(config));
    assert_eq!(negotiated_group(&mut classical), rustls::NamedGroup::X25519);

    drop((post_quantum, classical));
    running.shutdown_handle().shutdown();
    let report = support::join(running);
    assert_eq!(report.accepted, 2, "{report:?}");
}

/// A client config that offers `protocols` with ALPN.
fn offering(certs: &Certs, protocols: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut config = (*certs.client_config()).clone();
    config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// `http::tls_config_from_pem` offers ALPN `http/1.1`: a browser-like
/// client (`h2` first) learns that HTTP/1.1 is spoken, and is served; one
/// that speaks only `h2` is refused in the handshake instead of failing on
/// its first request. The echo binary's config offers no ALPN.
#[test]
fn https_listeners_of_the_http_layer_offer_http_1_1_with_alpn() {
    let certs = Certs::new();
    let config =
        http::tls_config_from_pem(&certs.cert_pem, &certs.key_pem).expect("the PEM files load");
    assert_eq!(config.alpn_protocols, [http::ALPN_PROTOCOL.to_vec()]);
    let running = Server::builder("127.0.0.1:0")
        .tls(config)
        .listen_tls(
            "127.0.0.1:0",
            graceful_server::tls_config_from_pem(&certs.cert_pem, &certs.key_pem)
                .expect("the PEM files load"),
        )
        .build()
        .expect("build")
        .spawn(hello_app())
        .expect("spawn");
    let addrs: Vec<_> = running
        .local_addrs()
        .iter()
        .map(|a| a.tcp().expect("tcp"))
        .collect();
    let (https, plain_config) = (addrs[0], addrs[1]);

    let mut browser = certs.client_with(https, offering(&certs, &[b"h2", b"http/1.1"]));
    handshake(&mut browser).expect("handshake");
    assert_eq!(browser.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    browser
        .write_all(b"GET / HTTP/1.1\r\nHost: l\r\nConnection: close\r\n\r\n")
        .expect("write");
    let all = ended_cleanly(read_to_close(&mut browser)).expect("close_notify");
    assert!(String::from_utf8_lossy(&all).ends_with("Hello, world!"));

    // No ALPN offered: served as before, nothing chosen.
    let mut silent = certs.client(https);
    handshake(&mut silent).expect("handshake");
    assert_eq!(silent.conn.alpn_protocol(), None);

    // Only h2: refused with rustls's `no_application_protocol` alert (or,
    // if the server's close overtakes the alert, a reset: either way the
    // handshake does not complete).
    let mut h2_only = certs.client_with(https, offering(&certs, &[b"h2"]));
    let refused = handshake(&mut h2_only).expect_err("no protocol in common");
    assert!(
        refused.to_string().contains("NoApplicationProtocol")
            || refused.kind() == io::ErrorKind::ConnectionReset,
        "{refused}"
    );

    // `tls_config_from_pem` (the echo binary's): no ALPN answered.
    let mut echo_client = certs.client_with(plain_config, offering(&certs, &[b"http/1.1"]));
    handshake(&mut echo_client).expect("handshake");
    assert_eq!(echo_client.conn.alpn_protocol(), None);

    drop((silent, h2_only, echo_client));
    running.shutdown_handle().shutdown();
    let report = support::join(running);
    assert_eq!(report.accepted, 4, "{report:?}");
}

// ---------------------------------------------------------------------------
// The binaries.
// ---------------------------------------------------------------------------

/// The seed scenario over TLS: a client mid-conversation at SIGINT is still
/// served, and the server exits 0 once it hangs up (newcomers being refused
/// is the listener's business, tested over plain TCP in binary.rs).
#[test]
#[cfg(unix)]
fn echo_binary_over_tls_drains_then_exits_0() {
    let certs = Certs::new();
    let mut server = ServerProcess::start(
        support::echo_binary(),
        &[
            "--addr",
            "127.0.0.1:0",
            "--tls-cert",
            certs.cert_pem.to_str().expect("utf-8 path"),
            "--tls-key",
            certs.key_pem.to_str().expect("utf-8 path"),
        ],
    );
    let mut client = certs.client(server.addr);
    client.write_all(b"hello").expect("write");
    let mut reply = [0; 5];
    client.read_exact(&mut reply).expect("read");
    assert_eq!(&reply, b"hello");

    server.signal("INT");
    server.wait_for_stderr("shutting down", BOUND);
    client.write_all(b"still").expect("write after the signal");
    client
        .read_exact(&mut reply)
        .expect("served after the signal");
    assert_eq!(&reply, b"still");
    send_close_notify(&mut client).expect("hang up");
    ended_cleanly(read_to_close(&mut client)).expect("the server's close_notify");
    let status = server.wait_exit(BOUND);
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    let report = server.wait_for_stderr(" accepted", BOUND);
    assert!(report.starts_with("drained"), "{report}");
    assert!(report.contains(" 1 accepted, 1 completed"), "{report}");
}

#[cfg(unix)]
fn start_http_example(certs: &Certs, extra: &[&str]) -> ServerProcess {
    let mut args = vec![
        "--addr",
        "127.0.0.1:0",
        "--tls-cert",
        certs.cert_pem.to_str().expect("utf-8 path"),
        "--tls-key",
        certs.key_pem.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    ServerProcess::start(support::fresh_http_example(), &args)
}

#[test]
#[cfg(unix)]
fn http_example_over_tls_with_curl() {
    let certs = Certs::new();
    let mut server = start_http_example(&certs, &[]);
    let url = format!("https://localhost:{}/", server.addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", server.addr.port());
    // Two URLs: the second over the same kept-alive connection.
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10"])
        .arg("--cacert")
        .arg(&certs.ca_pem)
        .args(["--resolve", &resolve])
        .args([&url, &url])
        .args(["--write-out", " connects=%{num_connects}"])
        .stdin(Stdio::null())
        .output()
        .expect("run curl (it must be installed)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.starts_with("Hello, world! connects=1Hello, world! connects=0"),
        "{stdout}"
    );
    // curl refuses a server its CA did not sign.
    let other = Certs::new();
    let refused = Command::new("curl")
        .args(["--silent", "--max-time", "10", "--cacert"])
        .arg(&other.ca_pem)
        .args(["--resolve", &resolve, &url])
        .stdin(Stdio::null())
        .status()
        .expect("run curl");
    assert!(
        !refused.success(),
        "curl trusted a certificate it should not"
    );
    server.signal("INT");
    let status = server.wait_exit(BOUND);
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
}

/// Python's `ssl` with `suppress_ragged_eofs=False` raises `SSLEOFError`
/// at a TCP end without close_notify: "clean" means it came.
#[cfg(unix)]
const PYTHON_CLIENT: &str = r#"
import socket, ssl, sys
port, cafile = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=cafile)
raw = socket.create_connection(("127.0.0.1", port), timeout=10)
s = ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
def response():
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("closed before a response")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0]
    while len(body) < length:
        body += s.recv(4096)
    return head, body
s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\nGET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
for _ in range(2):
    head, body = response()
    assert head.startswith(b"HTTP/1.1 200"), head
    assert body == b"Hello, world!", body
print("served", flush=True)
sys.stdin.readline()  # the test signals the server, then says go on
try:
    rest = s.recv(4096)
    print("clean" if rest == b"" else "data %r" % rest, flush=True)
except ssl.SSLEOFError as e:
    print("ragged %s" % e, flush=True)
"#;

#[test]
#[cfg(unix)]
fn http_example_over_tls_with_python_ssl_sees_close_notify_at_shutdown() {
    let certs = Certs::new();
    let mut server = start_http_example(&certs, &["--idle-grace", "0.2"]);
    let mut python = Command::new("python3")
        .arg("-c")
        .arg(PYTHON_CLIENT)
        .arg(server.addr.port().to_string())
        .arg(&certs.ca_pem)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3 (it must be installed)");
    let mut stdout = python.stdout.take().expect("piped stdout");
    let (lines_tx, lines_rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        let mut text = String::new();
        let mut byte = [0; 1];
        while let Ok(1) = stdout.read(&mut byte) {
            if byte[0] == b'\n' {
                let _ = lines_tx.send(std::mem::take(&mut text));
            } else {
                text.push(byte[0] as char);
            }
        }
    });
    let line = lines_rx.recv_timeout(BOUND);
    if line.as_deref() != Ok("served") {
        let _ = python.kill();
        let mut err = String::new();
        let _ = python.stderr.take().map(|mut e| e.read_to_string(&mut err));
        panic!("python: {line:?} {err}");
    }
    server.signal("INT");
    let status = server.wait_exit(BOUND);
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    let mut stdin = python.stdin.take().expect("piped stdin");
    stdin.write_all(b"go\n").expect("tell python to go on");
    let line = lines_rx.recv_timeout(BOUND).expect("python's verdict");
    let _ = python.wait();
    assert_eq!(
        line, "clean",
        "the idle close at shutdown sent no close_notify"
    );
}

#[test]
fn bad_tls_files_exit_2_before_anything_starts() {
    let certs = Certs::new();
    let cert = certs.cert_pem.to_str().expect("utf-8 path");
    let key = certs.key_pem.to_str().expect("utf-8 path");
    let other_key = certs.other_key_pem.to_str().expect("utf-8 path");
    let missing = certs.dir.join("missing.pem");
    let missing = missing.to_str().expect("utf-8 path");
    let cases: [(&[&str], &str); 5] = [
        (&["--tls-cert", missing, "--tls-key", key], "missing.pem"),
        (&["--tls-cert", cert, "--tls-key", missing], "missing.pem"),
        // A key where the certificate should be, and the reverse.
        (&["--tls-cert", key, "--tls-key", key], "no certificate"),
        (&["--tls-cert", cert, "--tls-key", other_key], "pair"),
        (&["--tls-cert", cert], "--tls-key"),
    ];
    for program in [support::echo_binary(), support::fresh_http_example()] {
        for (args, needle) in cases {
            let output = Command::new(&program)
                .args(["--addr", "127.0.0.1:0"])
                .args(args)
                .stdin(Stdio::null())
                .output()
                .expect("run the binary");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(stderr.contains(needle), "{args:?}: {stderr}");
            assert!(
                output.stdout.is_empty(),
                "{args:?} started listening: {}",
                String::from_utf8_lossy(&output.stdout)
            );
        }
    }
}
