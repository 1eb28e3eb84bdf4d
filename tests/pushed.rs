//! Long-lived connections on the core: output pushed from other threads
//! while connections wait without a worker, turns asked for, and the
//! goodbye turn at shutdown. Raw TCP clients on loopback; the HTTP layer's
//! event streams and WebSockets have their own tests.

mod support;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use graceful_server::{Connection, Event, Next, Outcome, PushError, Pusher, Server};
use support::{client, join};

type Subscribers = Arc<Mutex<Vec<Pusher>>>;

/// A handler that subscribes each client at its first line (`sub\n`),
/// answers `ping\n` with `pong\n`, asks for a goodbye, and says
/// `bye\n` in its goodbye turn; a woken turn writes `woken\n`.
fn subscribing(subscribers: Subscribers) -> impl Fn(&mut Connection) -> io::Result<Next> {
    move |conn: &mut Connection| {
        if conn.is_goodbye() {
            conn.write_all(b"bye\n")?;
            // Wait for the client to hang up: its answer to the goodbye.
            return Ok(Next::Wait);
        }
        if conn.is_woken() {
            conn.write_all(b"woken\n")?;
            if !conn.has_buffered_input() {
                return Ok(Next::Wait);
            }
        }
        let mut line = String::new();
        if conn.read_line(&mut line)? == 0 {
            return Ok(Next::Close);
        }
        match line.as_str() {
            "sub\n" => {
                conn.set_goodbye(true);
                subscribers.lock().unwrap().push(conn.pusher());
                conn.write_all(b"subscribed\n")?;
            }
            "ping\n" => conn.write_all(b"pong\n")?,
            _ => return Ok(Next::Close),
        }
        Ok(Next::Wait)
    }
}

fn read_line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).expect("read a line");
    line
}

fn subscribe(addr: std::net::SocketAddr) -> BufReader<TcpStream> {
    let mut stream = client(addr);
    stream.write_all(b"sub\n").expect("subscribe");
    let mut reader = BufReader::new(stream);
    assert_eq!(read_line(&mut reader), "subscribed\n");
    reader
}

/// Pushes `message` to every subscriber; returns how many took it.
fn broadcast(subscribers: &Subscribers, message: &[u8]) -> usize {
    let mut list = subscribers.lock().unwrap();
    list.retain(|p| p.send(message).is_ok());
    list.len()
}

#[test]
fn eight_subscribers_on_two_workers_all_get_every_push_while_others_are_served() {
    let subscribers = Subscribers::default();
    let running = Server::builder("127.0.0.1:0")
        .workers(2)
        .build()
        .expect("build")
        .spawn(subscribing(Arc::clone(&subscribers)))
        .expect("spawn");
    let addr = running.local_addr();
    let mut readers: Vec<_> = (0..8).map(|_| subscribe(addr)).collect();
    for round in 0..5 {
        let message = format!("event {round}\n");
        assert_eq!(broadcast(&subscribers, message.as_bytes()), 8);
        for reader in &mut readers {
            assert_eq!(read_line(reader), message);
        }
        // Another client is answered meanwhile: no worker is held.
        let mut other = BufReader::new(client(addr));
        other.get_mut().write_all(b"ping\n").expect("ping");
        assert_eq!(read_line(&mut other), "pong\n");
    }
    drop(readers);
    running.shutdown_handle().shutdown();
    let report = join(running);
    assert!(!report.forced, "{report:?}");
}

#[test]
fn a_push_to_an_ended_connection_says_closed() {
    let subscribers = Subscribers::default();
    let running = Server::builder("127.0.0.1:0")
        .build()
        .expect("build")
        .spawn(subscribing(Arc::clone(&subscribers)))
        .expect("spawn");
    let reader = subscribe(running.local_addr());
    let pusher = subscribers.lock().unwrap()[0].clone();
    assert!(!pusher.is_closed());
    drop(reader);
    // The server sees the end of file in a turn and closes the connection.
    let start = Instant::now();
    while !pusher.is_closed() {
        assert!(start.elapsed() < Duration::from_secs(5), "never closed");
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(pusher.send(b"late\n"), Err(PushError::Closed));
    assert_eq!(pusher.wake(), Err(PushError::Closed));
    running.shutdown_handle().shutdown();
    join(running);
}

#[test]
fn a_full_mailbox_refuses_the_push_and_keeps_what_it_holds() {
    let subscribers = Subscribers::default();
    // A handler that holds its worker in the turn after subscribing, so
    // that pushes pile up in the mailbox.
    let (hold_tx, hold_rx) = crossbeam_channel::bounded::<()>(0);
    let list = Arc::clone(&subscribers);
    let running = Server::builder("127.0.0.1:0")
        .max_pushed_output(10)
        .build()
        .expect("build")
        .spawn(move |conn: &mut Connection| {
            let mut line = String::new();
            if conn.read_line(&mut line)? == 0 {
                return Ok(Next::Close);
            }
            list.lock().unwrap().push(conn.pusher());
            let _ = hold_rx.recv_timeout(Duration::from_secs(5));
            Ok(Next::Wait)
        })
        .expect("spawn");
    let mut stream = client(running.local_addr());
    stream.write_all(b"sub\n").expect("subscribe");
    let start = Instant::now();
    while subscribers.lock().unwrap().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(5), "never subscribed");
        thread::sleep(Duration::from_millis(5));
    }
    let pusher = subscribers.lock().unwrap()[0].clone();
    assert_eq!(pusher.send(b"12345678"), Ok(()));
    assert_eq!(pusher.send(b"abc"), Err(PushError::Full));
    assert_eq!(pusher.send(b"90"), Ok(()));
    hold_tx.send(()).expect("release the turn");
    let mut got = [0; 10];
    stream.read_exact(&mut got).expect("the pushed bytes");
    assert_eq!(&got, b"1234567890");
    drop(stream);
    running.shutdown_handle().shutdown();
    join(running);
}

#[test]
fn wake_gives_a_turn_without_input() {
    let subscribers = Subscribers::default();
    let running = Server::builder("127.0.0.1:0")
        .build()
        .expect("build")
        .spawn(subscribing(Arc::clone(&subscribers)))
        .expect("spawn");
    let mut reader = subscribe(running.local_addr());
    let pusher = subscribers.lock().unwrap()[0].clone();
    pusher.wake().expect("wake");
    assert_eq!(read_line(&mut reader), "woken\n");
    // A push and a wake together: the bytes first, then the turn.
    pusher.send(b"pushed\n").expect("push");
    pusher.wake().expect("wake");
    assert_eq!(read_line(&mut reader), "pushed\n");
    assert_eq!(read_line(&mut reader), "woken\n");
    drop(reader);
    running.shutdown_handle().shutdown();
    join(running);
}

#[test]
fn goodbyes_answered_end_the_drain_at_once_and_are_counted() {
    let subscribers = Subscribers::default();
    let goodbyes = Arc::new(Mutex::new(Vec::new()));
    let told = Arc::clone(&goodbyes);
    let running = Server::builder("127.0.0.1:0")
        .drain_timeout(Some(Duration::from_secs(20)))
        .on_event(move |event| {
            if let Event::Goodbye { id, .. } = event {
                told.lock().unwrap().push(*id);
            }
        })
        .build()
        .expect("build")
        .spawn(subscribing(Arc::clone(&subscribers)))
        .expect("spawn");
    let addr = running.local_addr();
    let readers: Vec<_> = (0..20).map(|_| subscribe(addr)).collect();
    let handle = running.shutdown_handle();
    let signalled = Instant::now();
    handle.shutdown();
    thread::scope(|scope| {
        for mut reader in readers {
            scope.spawn(move || {
                assert_eq!(read_line(&mut reader), "bye\n");
                // The answer: hang up.
            });
        }
    });
    let report = join(running);
    assert!(!report.forced, "{report:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "the drain waited for the deadline"
    );
    assert_eq!(report.goodbyes, 20, "{report:?}");
    assert_eq!(report.goodbyes_answered, 20, "{report:?}");
    assert_eq!(report.completed, 20, "{report:?}");
    assert_eq!(goodbyes.lock().unwrap().len(), 20);
}

#[test]
fn a_client_that_never_answers_the_goodbye_is_cut_at_the_deadline() {
    let subscribers = Subscribers::default();
    let running = Server::builder("127.0.0.1:0")
        .drain_timeout(Some(Duration::from_millis(500)))
        .build()
        .expect("build")
        .spawn(subscribing(Arc::clone(&subscribers)))
        .expect("spawn");
    let mut reader = subscribe(running.local_addr());
    running.shutdown_handle().shutdown();
    assert_eq!(read_line(&mut reader), "bye\n");
    // Stays connected, silent.
    let report = join(running);
    assert!(report.forced, "{report:?}");
    assert_eq!(report.goodbyes, 1, "{report:?}");
    assert_eq!(report.goodbyes_answered, 0, "{report:?}");
    assert_eq!(report.force_closed, 1, "{report:?}");
    drop(reader);
}

#[test]
fn goodbyes_can_be_paced_in_batches() {
    let subscribers = Subscribers::default();
    let running = Server::builder("127.0.0.1:0")
        .goodbye_pace(2, Duration::from_millis(300))
        .build()
        .expect("build")
        .spawn(subscribing(Arc::clone(&subscribers)))
        .expect("spawn");
    let addr = running.local_addr();
    let readers: Vec<_> = (0..6).map(|_| subscribe(addr)).collect();
    running.shutdown_handle().shutdown();
    let start = Instant::now();
    let times: Vec<Duration> = thread::scope(|scope| {
        let waits: Vec<_> = readers
            .into_iter()
            .map(|mut reader| {
                scope.spawn(move || {
                    assert_eq!(read_line(&mut reader), "bye\n");
                    start.elapsed()
                })
            })
            .collect();
        waits
            .into_iter()
            .map(|w| w.join().expect("reader"))
            .collect()
    });
    let report = join(running);
    assert!(!report.forced, "{report:?}");
    let mut times = times;
    times.sort();
    // Three batches of two: the last pair comes at least two intervals
    // after the first.
    assert!(
        times[5] - times[0] >= Duration::from_millis(500),
        "not paced: {times:?}"
    );
    assert_eq!(report.goodbyes_answered, 6, "{report:?}");
}

#[test]
fn a_subscriber_that_stops_reading_is_cut_at_the_write_timeout() {
    let subscribers = Subscribers::default();
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&outcomes);
    let running = Server::builder("127.0.0.1:0")
        .write_timeout(Some(Duration::from_millis(500)))
        .on_event(move |event| {
            if let Event::ConnectionEnded { outcome, .. } = event {
                seen.lock().unwrap().push(*outcome);
            }
        })
        .build()
        .expect("build")
        .spawn(subscribing(Arc::clone(&subscribers)))
        .expect("spawn");
    let reader = subscribe(running.local_addr());
    let pusher = subscribers.lock().unwrap()[0].clone();
    let chunk = vec![b'x'; 64 * 1024];
    // Push until the mailbox is full: the socket buffers have filled up.
    let start = Instant::now();
    loop {
        match pusher.send(&chunk) {
            Ok(()) => {}
            Err(PushError::Full) => thread::sleep(Duration::from_millis(10)),
            Err(_closed) => break,
        }
        assert!(start.elapsed() < Duration::from_secs(10), "never cut");
    }
    assert_eq!(*outcomes.lock().unwrap(), [Outcome::TimedOut]);
    drop(reader);
    running.shutdown_handle().shutdown();
    let report = join(running);
    assert_eq!(report.timed_out, 1, "{report:?}");
}
