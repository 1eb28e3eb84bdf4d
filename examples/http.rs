//! An HTTP/1.1 server with keep-alive that shuts down without losing a
//! request: the routes and a command line on [`graceful_server::http`].
//!
//! Everything about HTTP and shutdown is the library's: between requests a
//! connection waits idle (holding no worker), so ctrl-c closes it after the
//! idle grace instead of waiting for it; a request in flight (`/slow`)
//! finishes, and every response sent after the signal says
//! `Connection: close`; `/healthz` answers `503` once shutdown has started;
//! bad input gets its status; a panic costs one connection.
//!
//! With `--verbose` it writes an access log to stderr: a line per request
//! in the Common Log Format ([`http::common_log_line`] of each
//! `Event::Request`), handed from the event hook to a writer thread, and a
//! line per connection that ends in an error. `/hello?name=` reads a
//! decoded query parameter.
//!
//! `/metrics` shows the server's live [`Stats`] to a Prometheus scraper, in
//! the OpenMetrics text format written by the `prometheus-client` crate (a
//! dependency of this example only, not of the library). Each number is a
//! `graceful_server_` series:
//!
//! | series | type | what |
//! | --- | --- | --- |
//! | `graceful_server_connections_open` | gauge | [`Stats::open`] |
//! | `graceful_server_connections_busy` | gauge | [`Stats::busy`] |
//! | `graceful_server_connections_parked` | gauge | [`Stats::parked`] |
//! | `graceful_server_connections_queued` | gauge | [`Stats::queued`] |
//! | `graceful_server_connections_accepted_total` | counter | [`Stats::accepted`] |
//! | `graceful_server_connections_ended_total{outcome="..."}` | counter | one per outcome: `completed`, `failed`, `timed_out`, `closed_idle`, `force_closed`, `unserved`, `panicked` |
//!
//! The four gauges are separate series, not one with a `state` label,
//! because `open` counts the other three (and connections between states):
//! summed over a label they would count connections twice. The outcomes do
//! add up: `accepted_total - sum(ended_total) = open`, give or take the
//! connections moving while the numbers are read.
//!
//! ```text
//! cargo run --release --features http --example http -- --workers 4
//! curl -v http://127.0.0.1:8080/ http://127.0.0.1:8080/healthz
//! curl http://127.0.0.1:8080/metrics
//! ```
//!
//! Long-lived connections, which wait between their messages holding no
//! worker: `/events` is a stream of server-sent events, a tick every
//! `?ms=N` (1000 by default) pushed to every subscriber by one ticker
//! thread; with the `websocket` feature, `/ws` is a WebSocket echo and
//! `/chat` a chat room, whose page is `/chat.html` (open it in two
//! browser tabs). At shutdown each of them is told goodbye (the event
//! stream's last event, WebSocket Close 1001) and the server exits as soon
//! as the clients have answered; the page shows it, and reconnects.
//!
//! ```text
//! cargo run --release --features websocket --example http
//! curl -N http://127.0.0.1:8080/events?ms=200
//! # and http://127.0.0.1:8080/chat.html in a browser
//! ```
//!
//! HTTPS, with `--tls-cert` and `--tls-key` (PEM files) and the `tls`
//! feature; for a try on your machine, a self-signed certificate (the
//! README's HTTPS section, which CI runs):
//!
//! ```text
//! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
//!     -keyout key.pem -out cert.pem -days 30 -subj /CN=localhost \
//!     -addext subjectAltName=DNS:localhost,IP:127.0.0.1
//! cargo run --release --features http,tls --example http -- --addr 127.0.0.1:8443 \
//!     --tls-cert cert.pem --tls-key key.pem
//! curl --cacert cert.pem https://localhost:8443/
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use graceful_server::http::{self, EventSender, Limits, Request, Response, ServerEvent};
use graceful_server::{Builder, Event, Report, Server, Stats, StatsHandle};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

const USAGE: &str =
    "usage: http [--addr ADDR]... [--unix PATH]... [--workers N] [--drain-timeout SECS|none] \
     [--drain-delay SECS] [--idle-grace SECS] [--header-timeout SECS] \
     [--request-timeout SECS|none] [--keepalive-requests N|none] [--keepalive-time SECS|none] \
     [--gathered-total BYTES] [--read-timeout SECS|none] [--write-timeout SECS|none] \
     [--tls-cert FILE --tls-key FILE] [--poll] [--verbose] [--help]";

/// The example's own defaults; the others are the library's.
const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// Long enough for a request sent just before the signal to cross a network
/// and be answered with `Connection: close` instead of meeting a closed
/// socket; short enough that nobody waiting for the server to exit notices.
const DEFAULT_IDLE_GRACE: Duration = Builder::DEFAULT_IDLE_GRACE;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest `/slow` may take.
const MAX_SLOW_MS: u64 = 60_000;
/// `/events`' default interval between ticks, and its shortest.
const DEFAULT_TICK_MS: u64 = 1000;
const MIN_TICK_MS: u64 = 10;

fn help() -> String {
    format!(
        "\
http: an HTTP/1.1 server with keep-alive that shuts down gracefully

routes:
  GET|HEAD /          200 'Hello, world!'
  GET /hello?name=N   200 'Hello, N!' (the query parameter decoded)
  GET /slow?ms=N      200 after N ms (N at most {MAX_SLOW_MS})
  GET /panic          the handler panics: the connection closes, the server
                      goes on
  GET /healthz        200 'ok' while serving, 503 once shutdown has started
  GET /metrics        the server's live numbers (open, busy, parked and
                      queued connections; accepted and ended by outcome) as
                      graceful_server_* series in the OpenMetrics text format
                      that Prometheus scrapes
  POST /echo          200 with the request body
  GET /events?ms=N    server-sent events: a tick every N ms [default: {tick}]
                      (N at least {min_tick}); at shutdown a 'goodbye' event,
                      then the stream ends
  GET /ws             WebSocket echo (the websocket feature); at shutdown
                      Close 1001, unless ?goodbye=off: then the server waits
                      for the client to close, as the echo binary does
  GET /chat           WebSocket chat: each text message goes to every client
                      of /chat (the websocket feature)
  GET /chat.html      a page that chats over /chat and shows /events' ticks,
                      the goodbye when the server stops, and reconnects

On SIGINT (ctrl-c), SIGTERM or SIGHUP the server stops accepting. Requests in
flight finish, and their responses say 'Connection: close'. Idle keep-alive
connections get the idle grace, in which a request that arrives is still
answered (with 'Connection: close'), then they are closed. A second signal,
or the drain timeout, closes everything left and exits at once.

options:
  --addr ADDR             address to listen on [default: {DEFAULT_ADDR}]
                          (port 0 picks a free port); repeat it to listen
                          on several, all stopped together (one
                          'listening on' line each, in order)
  --unix PATH             listen on a Unix domain socket (unix only;
                          'listening on unix:PATH'); repeatable, and it
                          mixes with --addr. Given any --addr or --unix,
                          the server listens on exactly those (the default
                          address is then not used). Try it with
                          curl --unix-socket PATH http://localhost/
  --workers N             requests served at once [default: {workers}]
  --drain-timeout SECS    how long to wait for connections at shutdown, or
                          'none' to wait for ever [default: {drain}]
  --drain-delay SECS      after the signal, keep accepting and serving for
                          this long (while /healthz already says 503) before
                          draining: for load balancers that stop sending
                          clients only after the signal [default: 0]
  --idle-grace SECS       how long idle keep-alive connections stay open after
                          the signal [default: {grace}]
  --header-timeout SECS   answer 408 and disconnect a client whose request
                          head takes longer than this [default: {timeout}]
  --request-timeout SECS  answer 408 and disconnect a client whose request,
                          head and body, takes longer than this from its
                          first byte, or 'none' [default: {request}]
  --keepalive-requests N  close a connection after this many requests (the
                          last response says 'Connection: close'), or 'none'
                          [default: {requests}]
  --keepalive-time SECS   close a connection with its first response after
                          this long, or 'none' [default: {age}]
  --gathered-total BYTES  the most memory the request bodies gathered before
                          the handler runs may hold, all connections
                          together; past it, bodies wait in the kernel
                          [default: {total}]
  --read-timeout SECS     disconnect a client silent this long between
                          requests, or in one read of a request body, or
                          'none' [default: {timeout}]
  --write-timeout SECS    disconnect a client that stops reading for this
                          long, or 'none' [default: {timeout}]
  --tls-cert FILE         serve HTTPS on every listener with this
                          certificate chain (PEM, the server's certificate
                          first); needs --tls-key and the tls feature
                          (--features http,tls). ALPN offers http/1.1;
                          shutdown ends each TLS connection with
                          close_notify
  --tls-key FILE          the certificate's private key (PEM)
  --poll                  watch waiting connections with poll(2) instead of
                          epoll (to compare the portable backend)
  --verbose               a line on stderr per request, in the Common Log
                          Format (written in batches, at most 50 ms late),
                          and one for every connection that ends in an
                          error
  --help                  print this help

Durations are in seconds; fractions are allowed (0.5).
The first line on stdout is 'listening on IP:PORT'. Progress goes to stderr.
Started by systemd socket activation (or examples/supervisor.rs), the server
serves on the inherited socket instead of binding --addr, and reports
READY=1 / STOPPING=1 to NOTIFY_SOCKET when set.

exit status:
  0  every connection ended by itself or as idle
  1  the server could not start or failed (e.g. address in use)
  2  bad command line (also a TLS certificate or key that cannot be used)
  3  shutdown was forced (drain timeout or second signal)",
        workers = Builder::DEFAULT_WORKERS,
        drain = Builder::DEFAULT_DRAIN_TIMEOUT.as_secs_f64(),
        grace = DEFAULT_IDLE_GRACE.as_secs_f64(),
        timeout = DEFAULT_TIMEOUT.as_secs_f64(),
        request = shown_seconds(Limits::default().request_timeout),
        requests = Limits::default()
            .keepalive_requests
            .map_or("none".to_string(), |n| n.to_string()),
        age = shown_seconds(Limits::default().keepalive_time),
        total = Limits::default().gathered_total,
        tick = DEFAULT_TICK_MS,
        min_tick = MIN_TICK_MS,
    )
}

/// Seconds, or `none`.
fn shown_seconds(duration: Option<Duration>) -> String {
    duration.map_or("none".to_string(), |d| d.as_secs_f64().to_string())
}

/// What the routes share: the server's numbers (set once it runs, see
/// [`run`]), the event streams' ticker, the chat room.
#[derive(Default)]
struct App {
    stats: OnceLock<StatsHandle>,
    ticker: Arc<Ticker>,
    #[cfg(feature = "websocket")]
    chat: Arc<ChatRoom>,
}

/// The routes: this is all the HTTP code the example has.
fn route(req: &mut Request<'_>, app: &App) -> Response {
    match (req.method(), req.path()) {
        ("GET" | "HEAD", "/") => Response::text("Hello, world!"),
        ("GET", "/hello") => {
            let name = req.query_param("name").unwrap_or("world".into());
            Response::text(format!("Hello, {name}!"))
        }
        ("GET", "/slow") => slow(req),
        ("GET", "/panic") => panic!("GET /panic: a deliberate panic; it costs this one connection"),
        ("GET" | "HEAD", "/healthz") => http::readiness(req),
        ("GET", "/metrics") => metrics(app.stats.get()),
        // A body the layer cannot read (too large, malformed) is answered
        // by the layer itself, whatever this returns.
        ("POST", "/echo") => match req.read_body() {
            Ok(body) => Response::new(200).body(body),
            Err(_) => Response::new(400),
        },
        ("GET", "/events") => events(req, &app.ticker),
        #[cfg(feature = "websocket")]
        ("GET", "/ws") => websocket_echo(req),
        #[cfg(feature = "websocket")]
        ("GET", "/chat") => chat(req, &app.chat),
        ("GET" | "HEAD", "/chat.html") => Response::new(200)
            .header("Content-Type", "text/html; charset=utf-8")
            .body(include_str!("chat.html")),
        (_, "/" | "/healthz" | "/chat.html") => not_allowed("GET, HEAD"),
        #[cfg(not(feature = "websocket"))]
        (_, "/ws" | "/chat") => {
            Response::text("WebSocket needs the websocket feature: --features websocket\n")
                .with_status(501)
        }
        (_, "/hello" | "/slow" | "/panic" | "/metrics" | "/events") => not_allowed("GET"),
        #[cfg(feature = "websocket")]
        (_, "/ws" | "/chat") => not_allowed("GET"),
        (_, "/echo") => not_allowed("POST"),
        _ => Response::text("not found\n").with_status(404),
    }
}

fn not_allowed(allow: &str) -> Response {
    Response::text("method not allowed\n")
        .with_status(405)
        .header("Allow", allow)
}

fn slow(req: &Request<'_>) -> Response {
    let ms = req
        .query_param("ms")
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|&ms| ms <= MAX_SLOW_MS);
    let Some(ms) = ms else {
        return Response::text(format!("ms must be a number up to {MAX_SLOW_MS}\n"))
            .with_status(400);
    };
    std::thread::sleep(Duration::from_millis(ms));
    Response::text(format!("slept {ms} ms\n"))
}

/// `GET /events?ms=N`: a stream of ticks from the [`Ticker`].
fn events(req: &mut Request<'_>, ticker: &Arc<Ticker>) -> Response {
    let ms = match req.query_param("ms").map(|ms| ms.parse::<u64>()) {
        None => DEFAULT_TICK_MS,
        Some(Ok(ms)) if ms >= MIN_TICK_MS => ms,
        Some(_) => {
            return Response::text(format!("ms must be a number from {MIN_TICK_MS}\n"))
                .with_status(400)
        }
    };
    let (response, sender) = req.event_stream();
    // Sent at shutdown, before the stream ends. A browser reconnects after
    // `retry`, by when a restarted server is up.
    sender.set_goodbye(Some(
        ServerEvent::data("the server is shutting down")
            .event("goodbye")
            .retry(Duration::from_secs(2)),
    ));
    ticker.subscribe(sender, Duration::from_millis(ms));
    response
}

/// One thread pushes the ticks of every event stream, each at its own
/// interval, and forgets the streams whose client has gone: the streams
/// hold no thread of their own, and no worker.
#[derive(Default)]
struct Ticker {
    subscribers: Mutex<Vec<Subscriber>>,
    /// Rung when a subscriber joins, so that the thread looks at its due
    /// time; the thread is started by the first.
    joined: Condvar,
    started: OnceLock<()>,
}

struct Subscriber {
    sender: EventSender,
    every: Duration,
    next: Instant,
    ticks: u64,
}

impl Ticker {
    fn subscribe(self: &Arc<Self>, sender: EventSender, every: Duration) {
        let first = Instant::now() + every;
        self.lock().push(Subscriber {
            sender,
            every,
            next: first,
            ticks: 0,
        });
        self.joined.notify_one();
        self.started.get_or_init(|| {
            let ticker = Arc::clone(self);
            // Failing to spawn leaves the streams without ticks (they still
            // end at shutdown); nothing else depends on it.
            let _ = std::thread::Builder::new()
                .name("ticker".into())
                .spawn(move || ticker.run());
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscriber>> {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Sleeps until the next tick is due, sends the ticks due, forever
    /// (the process ends it).
    fn run(&self) {
        let mut subscribers = self.lock();
        loop {
            let now = Instant::now();
            subscribers.retain_mut(|s| {
                if s.next > now {
                    return true;
                }
                s.ticks += 1;
                s.next = now + s.every;
                let tick = ServerEvent::data(format!("tick {}", s.ticks)).id(s.ticks.to_string());
                // Closed: the client has gone. Full: it is behind; it skips
                // this tick.
                !matches!(
                    s.sender.send(&tick),
                    Err(graceful_server::PushError::Closed)
                )
            });
            let next = subscribers.iter().map(|s| s.next).min();
            subscribers = match next {
                Some(next) => {
                    let wait = next.saturating_duration_since(Instant::now());
                    self.joined
                        .wait_timeout(subscribers, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self
                    .joined
                    .wait(subscribers)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
    }
}

/// `GET /ws`: a WebSocket echo; `?goodbye=off` leaves it alone at shutdown
/// (the server then waits for the client to close it).
#[cfg(feature = "websocket")]
fn websocket_echo(req: &mut Request<'_>) -> Response {
    use graceful_server::http::{Message, WebSocket, WebSocketConfig};

    let goodbye = req.query_param("goodbye").as_deref() != Some("off");
    let echo = |ws: &mut WebSocket<'_>, message: Message| ws.send(message);
    match req.websocket_with(WebSocketConfig::default().goodbye(goodbye), echo) {
        Ok((response, _sender)) => response,
        Err(refusal) => refusal,
    }
}

/// The members of `/chat`: each text message goes to every one of them,
/// through their senders, from the worker that received it.
#[cfg(feature = "websocket")]
#[derive(Default)]
struct ChatRoom {
    members: Mutex<Vec<graceful_server::http::WsSender>>,
}

#[cfg(feature = "websocket")]
impl ChatRoom {
    /// Sends `text` to every member, and forgets those who have left.
    fn broadcast(&self, text: &str) {
        let mut members = self.members.lock().unwrap_or_else(PoisonError::into_inner);
        members
            .retain(|member| !matches!(member.send(text), Err(graceful_server::PushError::Closed)));
    }
}

/// `GET /chat`: joins the chat room.
#[cfg(feature = "websocket")]
fn chat(req: &mut Request<'_>, room: &Arc<ChatRoom>) -> Response {
    use graceful_server::http::{Message, WebSocket};

    let speaking = Arc::clone(room);
    let handler = move |ws: &mut WebSocket<'_>, message: Message| {
        if let Message::Text(text) = message {
            speaking.broadcast(&format!("{}: {text}", ws.id()));
        }
        Ok(())
    };
    match req.websocket(handler) {
        Ok((response, sender)) => {
            room.members
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(sender);
            // The newcomer too: it gets this once its `101` is sent.
            room.broadcast("someone joined");
            response
        }
        Err(refusal) => refusal,
    }
}

/// `GET /metrics`: the numbers now, in the OpenMetrics text format.
fn metrics(stats: Option<&StatsHandle>) -> Response {
    // Only a request on an inherited or fixed socket can come before the
    // handle is set, between `spawn` and the next line of `run`.
    let Some(stats) = stats else {
        return Response::text("metrics not ready yet\n").with_status(503);
    };
    // A registry per scrape, holding one snapshot: the numbers are the
    // server's, so there is nothing to keep between scrapes.
    let mut registry = Registry::with_prefix("graceful_server");
    registry.register_collector(Box::new(Snapshot(stats.stats())));
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &registry) {
        Ok(()) => Response::new(200)
            .header(
                "Content-Type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
            .body(text),
        // Writing to a `String` cannot fail, but the encoder's type says it
        // might.
        Err(_) => Response::new(500),
    }
}

/// One reading of [`Stats`], written out as the `graceful_server_` series
/// listed in the module docs.
#[derive(Debug)]
struct Snapshot(Stats);

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = &self.0;
        for (name, help, value) in [
            (
                "connections_open",
                "Connections accepted and not closed yet.",
                stats.open,
            ),
            (
                "connections_busy",
                "Connections in a turn: a handler is running for them.",
                stats.busy,
            ),
            (
                "connections_parked",
                "Connections between turns, waiting for input.",
                stats.parked,
            ),
            (
                "connections_queued",
                "Connections with input, waiting for a worker.",
                stats.queued,
            ),
        ] {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }

        let accepted = ConstCounter::new(stats.accepted);
        accepted.encode(encoder.encode_descriptor(
            "connections_accepted",
            "Connections accepted.",
            None,
            accepted.metric_type(),
        )?)?;

        // One counter per outcome, as in the shutdown report: every
        // accepted connection ends in exactly one.
        let outcomes = [
            ("completed", stats.completed),
            ("failed", stats.failed),
            ("timed_out", stats.timed_out),
            ("closed_idle", stats.closed_idle),
            ("force_closed", stats.force_closed),
            ("unserved", stats.unserved),
            ("panicked", stats.panicked),
        ];
        let mut ended = encoder.encode_descriptor(
            "connections_ended",
            "Connections ended, by outcome.",
            None,
            MetricType::Counter,
        )?;
        for (outcome, value) in outcomes {
            ConstCounter::new(value).encode(ended.encode_family(&[("outcome", outcome)])?)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Command line.
// ---------------------------------------------------------------------------

fn main() -> ExitCode {
    // The TLS files are loaded before anything starts: a bad pair is a bad
    // command line.
    let parsed = parse(std::env::args().skip(1)).and_then(|options| match options {
        Some(options) => {
            let tls = tls_config(options.tls_cert.as_deref(), options.tls_key.as_deref())?;
            Ok(Some((options, tls)))
        }
        None => Ok(None),
    });
    let (options, tls) = match parsed {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            println!("{}", help());
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("http: {message}\n{USAGE}\ntry 'http --help'");
            return ExitCode::from(2);
        }
    };
    match run(&options, tls) {
        // 0 drained, 3 forced.
        Ok(report) => report.exit_code(),
        Err(error) => {
            eprintln!("http: {}", chain(&error));
            ExitCode::from(1)
        }
    }
}

fn run(options: &Options, tls: Option<TlsConfig>) -> Result<Report, graceful_server::Error> {
    // Every connection costs a descriptor: use all the system allows, as
    // Go's servers do. Failing to raise it only leaves the soft limit.
    let _ = graceful_server::raise_descriptor_limit();
    let mut builder = with_tls(listening(&options.listen), tls)
        .workers(options.workers)
        .drain_timeout(options.drain_timeout)
        .drain_delay(options.drain_delay)
        .idle_grace(options.idle_grace)
        .read_timeout(options.read_timeout)
        .idle_timeout(options.read_timeout)
        .write_timeout(options.write_timeout)
        .use_poll(options.poll)
        .inherit_listener(true)
        .systemd_notify(true);
    // Progress from the shutdown's events; with --verbose, the access log
    // and a line per connection that ends in an error too.
    let log = options.verbose.then(AccessLog::start);
    builder = builder.on_event(move |event| {
        if let Some(log) = &log {
            log_event(log, event);
        }
        progress(event);
    });
    let server = builder.build()?;
    let handle = server.shutdown_handle();
    // Before the `listening on` line: a signal sent right after it must find
    // the handler in place.
    handle.install_ctrl_c()?;
    let limits = Limits {
        header_timeout: options.header_timeout,
        request_timeout: options.request_timeout,
        keepalive_requests: options.keepalive_requests,
        keepalive_time: options.keepalive_time,
        gathered_total: options.gathered_total,
        ..Limits::default()
    };
    // `/metrics` reads the numbers through a handle that exists only once
    // the server runs: set right after `spawn`, before anyone is told where
    // to connect.
    let app = Arc::new(App::default());
    let routes = {
        let app = Arc::clone(&app);
        move |req: &mut Request<'_>| route(req, &app)
    };
    let running = server.spawn(http::handler(routes).limits(limits))?;
    // Only set here, so this cannot find it set already.
    let _ = app.stats.set(running.stats_handle());
    // Flushed at once (stdout is line-buffered only on a terminal); a closed
    // stdout must not stop the server.
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        for addr in running.local_addrs() {
            let _ = writeln!(stdout, "listening on {addr}");
        }
        let _ = stdout.flush();
    }
    running.join()
}

/// The progress lines on stderr, from the shutdown's events alone.
fn progress(event: &Event<'_>) {
    match event {
        Event::ShutdownStarted {
            open,
            idle_grace,
            drain_timeout,
            ..
        } => {
            let deadline = match drain_timeout {
                Some(timeout) => format!("up to {}s", timeout.as_secs_f64()),
                None => "with no deadline".into(),
            };
            say(format!(
                "shutting down: {open} connection(s) open; idle ones close in {}s; waiting \
                 {deadline} for the others (press ctrl-c again to force)",
                idle_grace.as_secs_f64(),
            ));
        }
        Event::Forced { reason } => say(format!("forced ({reason:?})")),
        Event::Finished { report } => say(report.to_string()),
        _ => {}
    }
}

/// With `--verbose`: a line per request in the Common Log Format, and one
/// per connection that ends in an error.
fn log_event(log: &AccessLog, event: &Event<'_>) {
    if let Some(line) = http::common_log_line(event) {
        return log.push(&line);
    }
    match event {
        Event::ConnectionEnded {
            id,
            peer,
            outcome,
            open_for,
            error: Some(error),
        } => log.push(&format!(
            "connection {id} from {peer}: {outcome:?} after {open_for:.1?}: {error}"
        )),
        // Everything before the report, which `progress` writes next.
        Event::Finished { .. } => log.flush(),
        _ => {}
    }
}

/// The `--verbose` lines, written to stderr in batches by a thread of their
/// own: a `write` per request cost a busy server 9% of its keep-alive
/// throughput (docs/performance.md), a lock and a copy cost it next to
/// nothing. A line waits at most [`AccessLog::BATCH`]; an idle server's
/// writer sleeps until the next line, so it makes no wake-ups. Each batch
/// is one `write_all`, made under the lock, so that a line is never lost
/// at exit nor torn.
struct AccessLog {
    pending: Mutex<Vec<u8>>,
    arrived: Condvar,
}

impl AccessLog {
    /// How long a line may wait for the lines after it.
    const BATCH: Duration = Duration::from_millis(50);

    /// The log, and its writer thread.
    fn start() -> Arc<AccessLog> {
        let log = Arc::new(AccessLog {
            pending: Mutex::new(Vec::with_capacity(64 * 1024)),
            arrived: Condvar::new(),
        });
        let writer = Arc::clone(&log);
        // Without its thread the log still works: `flush` at the end
        // writes it all.
        let _ = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || writer.write_batches());
        log
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        // A panic while holding the lock leaves the bytes valid.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a line.
    fn push(&self, line: &str) {
        let mut pending = self.lock();
        if pending.is_empty() {
            self.arrived.notify_one();
        }
        pending.extend_from_slice(line.as_bytes());
        pending.push(b'\n');
    }

    /// Writes what is pending now.
    fn flush(&self) {
        write_out(&mut self.lock());
    }

    /// The writer thread: waits for a line, lets the batch gather, writes it.
    fn write_batches(&self) {
        loop {
            let mut pending = self.lock();
            while pending.is_empty() {
                pending = self
                    .arrived
                    .wait(pending)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            drop(pending);
            std::thread::sleep(Self::BATCH);
            write_out(&mut self.lock());
        }
    }
}

/// Writes `pending` to stderr and empties it; a closed stderr loses it.
fn write_out(pending: &mut Vec<u8>) {
    use std::io::Write;
    if !pending.is_empty() {
        let _ = std::io::stderr().lock().write_all(pending);
        pending.clear();
    }
}

/// Writes one line to stderr in a single `write`, so that it cannot be torn
/// by other processes sharing the stream (a supervisor and its servers).
fn say(mut line: String) {
    use std::io::Write;
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// An error and its sources on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    line
}

/// The server's TLS config, from `--tls-cert` and `--tls-key`.
#[cfg(feature = "tls")]
type TlsConfig = Arc<graceful_server::rustls::ServerConfig>;
/// Without the `tls` feature there is none.
#[cfg(not(feature = "tls"))]
enum TlsConfig {}

/// Both files or neither, loaded and checked to be a pair.
fn tls_config(
    cert: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
) -> Result<Option<TlsConfig>, String> {
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(_), None) => Err("--tls-cert needs --tls-key (the certificate's private key)".into()),
        (None, Some(_)) => Err("--tls-key needs --tls-cert (the certificate chain)".into()),
        #[cfg(feature = "tls")]
        (Some(cert), Some(key)) => http::tls_config_from_pem(cert, key)
            .map(Some)
            .map_err(|e| e.to_string()),
        #[cfg(not(feature = "tls"))]
        (Some(_), Some(_)) => Err(
            "--tls-cert: this example was built without TLS; run it with --features http,tls"
                .into(),
        ),
    }
}

/// `builder` serving HTTPS on every listener, if `tls` is given.
fn with_tls(builder: Builder, tls: Option<TlsConfig>) -> Builder {
    match tls {
        #[cfg(feature = "tls")]
        Some(config) => builder.tls(config),
        #[cfg(not(feature = "tls"))]
        Some(never) => match never {},
        None => builder,
    }
}

/// One listener of the command line.
#[derive(Debug, PartialEq)]
enum Listen {
    Tcp(SocketAddr),
    #[cfg(unix)]
    Unix(std::path::PathBuf),
}

/// A builder listening on `listen` (at least one), in order.
fn listening(listen: &[Listen]) -> Builder {
    let mut builder: Option<Builder> = None;
    for listener in listen {
        builder = Some(match (builder, listener) {
            (None, Listen::Tcp(addr)) => Server::builder(*addr),
            (Some(b), Listen::Tcp(addr)) => b.listen(*addr),
            #[cfg(unix)]
            (None, Listen::Unix(path)) => Server::builder_unix(path),
            #[cfg(unix)]
            (Some(b), Listen::Unix(path)) => b.listen_unix(path),
        });
    }
    // The parser gives at least one.
    builder.unwrap_or_else(|| Server::builder(DEFAULT_ADDR))
}

#[derive(Debug, PartialEq)]
struct Options {
    /// In the order given; the default address unless `--addr` or
    /// `--unix` is given.
    listen: Vec<Listen>,
    workers: usize,
    drain_timeout: Option<Duration>,
    drain_delay: Duration,
    idle_grace: Duration,
    header_timeout: Duration,
    request_timeout: Option<Duration>,
    keepalive_requests: Option<u64>,
    keepalive_time: Option<Duration>,
    gathered_total: u64,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    tls_cert: Option<std::path::PathBuf>,
    tls_key: Option<std::path::PathBuf>,
    poll: bool,
    verbose: bool,
}

/// The options, or `None` for `--help`.
fn parse(args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut options = Options {
        listen: Vec::new(),
        workers: Builder::DEFAULT_WORKERS,
        drain_timeout: Some(Builder::DEFAULT_DRAIN_TIMEOUT),
        drain_delay: Duration::ZERO,
        idle_grace: DEFAULT_IDLE_GRACE,
        header_timeout: DEFAULT_TIMEOUT,
        request_timeout: Limits::default().request_timeout,
        keepalive_requests: Limits::default().keepalive_requests,
        keepalive_time: Limits::default().keepalive_time,
        gathered_total: Limits::default().gathered_total,
        read_timeout: Some(DEFAULT_TIMEOUT),
        write_timeout: Some(DEFAULT_TIMEOUT),
        tls_cert: None,
        tls_key: None,
        poll: false,
        verbose: false,
    };
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        // `--flag=value` or `--flag value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_string(), Some(value.into())),
            _ => (arg, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--help" | "-h" => return Ok(None),
            "--addr" => {
                let text = value()?;
                options
                    .listen
                    .push(Listen::Tcp(text.parse().map_err(|_| {
                        format!("--addr: {text:?} is not an IP:PORT address")
                    })?));
            }
            "--unix" => {
                let text = value()?;
                #[cfg(unix)]
                options.listen.push(Listen::Unix(text.into()));
                #[cfg(not(unix))]
                return Err(format!("--unix {text}: Unix domain sockets are unix only"));
            }
            "--workers" => {
                let text = value()?;
                options.workers = text
                    .parse()
                    .ok()
                    .filter(|n| (1..=65_536).contains(n))
                    .ok_or_else(|| {
                        format!("--workers: {text:?} is not a number from 1 to 65536")
                    })?;
            }
            "--drain-timeout" => options.drain_timeout = seconds_or_none(&flag, &value()?)?,
            "--drain-delay" => options.drain_delay = seconds(&flag, &value()?)?,
            "--idle-grace" => options.idle_grace = seconds(&flag, &value()?)?,
            "--header-timeout" => options.header_timeout = seconds(&flag, &value()?)?,
            "--request-timeout" => options.request_timeout = seconds_or_none(&flag, &value()?)?,
            "--keepalive-requests" => {
                let text = value()?;
                options.keepalive_requests = match text.as_str() {
                    "none" => None,
                    _ => Some(text.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                        format!("--keepalive-requests: {text:?} is not a number above 0, or 'none'")
                    })?),
                };
            }
            "--keepalive-time" => options.keepalive_time = seconds_or_none(&flag, &value()?)?,
            "--gathered-total" => {
                let text = value()?;
                options.gathered_total = text
                    .parse()
                    .map_err(|_| format!("--gathered-total: {text:?} is not a number of bytes"))?;
            }
            "--read-timeout" => options.read_timeout = timeout(&flag, &value()?)?,
            "--write-timeout" => options.write_timeout = timeout(&flag, &value()?)?,
            "--tls-cert" => options.tls_cert = Some(value()?.into()),
            "--tls-key" => options.tls_key = Some(value()?.into()),
            "--poll" => options.poll = true,
            "--verbose" | "-v" => options.verbose = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if options.listen.is_empty() {
        options.listen.push(Listen::Tcp(
            DEFAULT_ADDR
                .parse()
                .expect("the default address is a valid socket address"),
        ));
    }
    Ok(Some(options))
}

/// A number of seconds, fractions allowed.
fn seconds(flag: &str, text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| format!("{flag}: {text:?} is not a number of seconds (fractions allowed)"))
}

/// Seconds, or `none` for no limit.
fn seconds_or_none(flag: &str, text: &str) -> Result<Option<Duration>, String> {
    if text == "none" {
        return Ok(None);
    }
    seconds(flag, text).map(Some)
}

/// A socket timeout: above zero, or `none`.
fn timeout(flag: &str, text: &str) -> Result<Option<Duration>, String> {
    match seconds_or_none(flag, text)? {
        Some(duration) if duration.is_zero() => {
            Err(format!("{flag}: must be above zero, or 'none'"))
        }
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Option<Options>, String> {
        parse(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_and_values() {
        let Ok(Some(options)) = args(&[]) else {
            panic!("no arguments must serve");
        };
        let default = Listen::Tcp(DEFAULT_ADDR.parse().expect("valid"));
        assert_eq!(options.listen, [default]);
        assert_eq!(options.workers, Builder::DEFAULT_WORKERS);
        assert_eq!(options.idle_grace, DEFAULT_IDLE_GRACE);
        let Ok(Some(options)) = args(&[
            "--workers=4",
            "--read-timeout",
            "none",
            "--idle-grace",
            "0.5",
            "--header-timeout",
            "2.5",
            "--poll",
        ]) else {
            panic!("valid arguments");
        };
        assert_eq!(options.workers, 4);
        assert_eq!(options.read_timeout, None);
        assert_eq!(options.idle_grace, Duration::from_millis(500));
        assert_eq!(options.header_timeout, Duration::from_millis(2500));
        assert!(options.poll);
        assert_eq!(options.keepalive_requests, Some(1000));
        let Ok(Some(options)) = args(&[
            "--request-timeout",
            "none",
            "--keepalive-requests",
            "3",
            "--keepalive-time=0.25",
            "--gathered-total",
            "1048576",
        ]) else {
            panic!("valid arguments");
        };
        assert_eq!(options.request_timeout, None);
        assert_eq!(options.keepalive_requests, Some(3));
        assert_eq!(options.keepalive_time, Some(Duration::from_millis(250)));
        assert_eq!(options.gathered_total, 1 << 20);
        assert_eq!(args(&["--help"]), Ok(None));
        let Ok(Some(options)) = args(&["--addr", "127.0.0.1:1", "--addr=[::1]:2"]) else {
            panic!("--addr twice");
        };
        let given = [
            Listen::Tcp("127.0.0.1:1".parse().expect("valid")),
            Listen::Tcp("[::1]:2".parse().expect("valid")),
        ];
        assert_eq!(options.listen, given, "in order, the default replaced");
        #[cfg(unix)]
        {
            let Ok(Some(options)) = args(&["--unix", "/tmp/h.sock"]) else {
                panic!("--unix");
            };
            assert_eq!(options.listen, [Listen::Unix("/tmp/h.sock".into())]);
        }
    }

    #[test]
    fn bad_values_are_errors() {
        for bad in [
            &["--workers", "0"][..],
            &["--read-timeout", "0"],
            &["--idle-grace", "none"],
            &["--header-timeout", "none"],
            &["--keepalive-requests", "0"],
            &["--gathered-total", "lots"],
            &["--drain-timeout", "-1"],
            &["--addr", "localhost"],
            &["--addr"],
            &["--bogus"],
        ] {
            assert!(args(bad).is_err(), "{bad:?} must be rejected");
        }
    }
}
