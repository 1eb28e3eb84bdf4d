//! The worker threads: the Rust Book's `ThreadPool`, made to survive panics
//! and to say when it is done.
//!
//! Each [`Worker`] takes [`Job`]s (an accepted stream and its
//! [`Connection`]) from a bounded channel and runs the handler inside
//! `catch_unwind`, so a panicking handler costs one connection, never the
//! worker. The pool does not join its threads to learn that it is finished:
//! every worker holds a clone of a `done` sender and drops it on exit, so the
//! channel disconnects the moment the last worker is gone, and whoever waits on
//! it wakes at once.

use std::io;
use std::net::TcpStream;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use crossbeam_channel::{Receiver, Sender};

use crate::connection::{Connection, Ending};
use crate::error::Error;

/// A connection to serve.
pub(crate) struct Job {
    pub(crate) stream: TcpStream,
    pub(crate) conn: Connection,
}

impl Job {
    /// Closes the connection without serving it (the deadline passed while it
    /// was queued).
    pub(crate) fn close_unserved(self) {
        let Job { stream, conn } = self;
        drop(stream);
        conn.registry().finish(conn.id(), Ending::Unserved);
    }
}

/// The shared form of the user's handler.
pub(crate) type Handler = dyn Fn(TcpStream, &Connection) -> io::Result<()> + Send + Sync;

/// Counts worker threads that have not exited yet, and those waiting for a
/// job.
#[derive(Default)]
pub(crate) struct Liveness {
    alive: AtomicUsize,
    free: AtomicUsize,
}

impl Liveness {
    pub(crate) fn alive(&self) -> usize {
        self.alive.load(Ordering::SeqCst)
    }

    /// Workers waiting for a job. Zero means a queued connection waits until
    /// some handler returns.
    pub(crate) fn free(&self) -> usize {
        self.free.load(Ordering::SeqCst)
    }
}

/// One named worker thread.
pub(crate) struct Worker;

impl Worker {
    /// Spawns `worker-{id}`. It runs until the job channel is empty and
    /// disconnected, then drops `done`.
    pub(crate) fn spawn(
        id: usize,
        jobs: Receiver<Job>,
        handler: Arc<Handler>,
        liveness: Arc<Liveness>,
        done: Sender<()>,
    ) -> Result<(), Error> {
        let name = format!("worker-{id}");
        liveness.alive.fetch_add(1, Ordering::SeqCst);
        let counted = Arc::clone(&liveness);
        let spawned = thread::Builder::new().name(name.clone()).spawn(move || {
            loop {
                counted.free.fetch_add(1, Ordering::SeqCst);
                let job = jobs.recv();
                counted.free.fetch_sub(1, Ordering::SeqCst);
                match job {
                    Ok(job) => run(job, &*handler),
                    // Empty and disconnected: the acceptor is done.
                    Err(_) => break,
                }
            }
            counted.alive.fetch_sub(1, Ordering::SeqCst);
            drop(done);
        });
        match spawned {
            // The thread is never joined: `done` tells when it has finished,
            // and a thread stuck in a handler past the deadline must be
            // left behind rather than waited for.
            Ok(_detached) => Ok(()),
            Err(source) => {
                liveness.alive.fetch_sub(1, Ordering::SeqCst);
                Err(Error::Spawn {
                    thread: name,
                    source,
                })
            }
        }
    }
}

/// Serves one connection and records how it ended.
fn run(job: Job, handler: &Handler) {
    // A connection still queued when shutdown is forced is closed unserved:
    // starting it now would only have it cut at once.
    if job.conn.signal().is_forced() {
        job.close_unserved();
        return;
    }
    let Job { stream, conn } = job;
    conn.registry().start();
    // AssertUnwindSafe: after a panic the stream has been dropped (closing the
    // connection) and the `Connection` is only used to deregister, so no
    // broken state is observed.
    let ending = match panic::catch_unwind(AssertUnwindSafe(|| handler(stream, &conn))) {
        Ok(Ok(())) => Ending::Returned,
        Ok(Err(_)) => Ending::Failed,
        Err(_panic) => Ending::Panicked,
    };
    conn.registry().finish(conn.id(), ending);
}
