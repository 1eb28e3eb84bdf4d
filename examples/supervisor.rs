//! A supervisor that restarts a server without losing a connection.
//!
//! ```text
//! supervisor [--addr ADDR]... [--unix PATH]... [--ready-timeout SECS] -- PROGRAM [ARGS...]
//! ```
//!
//! The supervisor binds the listening sockets itself (TCP, and Unix domain
//! sockets) and keeps them open for as long as it runs servers. Each server
//! it runs gets a copy of every one, as descriptors 3 on, through systemd's
//! socket-activation protocol (`LISTEN_FDS`, `LISTEN_PID`), which the
//! library reads with [`Builder::inherit_listener`]. Because each socket
//! outlives every server, a restart is lossless: while the old server drains
//! and the new one starts, the kernel keeps queueing connections in the one
//! shared backlog, so none is refused and none is reset.
//!
//! On SIGHUP it starts a new server and waits for its `READY=1` on
//! `NOTIFY_SOCKET` ([`Builder::systemd_notify`]). Only then does it send
//! SIGTERM to the old one, which stops accepting and drains; the new one has
//! been accepting from the same backlog since it got ready. A new server
//! that does not get ready in time is killed, and the old one goes on.
//!
//! On SIGINT or SIGTERM it stops as losslessly as a single server does: it
//! closes its own copy of the socket first, then sends SIGTERM to its
//! servers, so that the last copy to close is a server's, right after that
//! server has accepted everything waiting in the backlog. Connections whose
//! handshake completed are served; later connects are refused. A server
//! still starting is stopped once it is ready (or killed at its ready
//! timeout), and the current one keeps serving until then. A second signal
//! is forwarded to every server at once: it forces the drain of those
//! already stopping. The supervisor exits with the current server's status.
//!
//! ```text
//! cargo build --release --example supervisor --example http
//! target/release/examples/supervisor -- target/release/examples/http
//! kill -HUP <supervisor pid>      # restart: no client notices
//! ```
//!
//! Unix only: it passes descriptors and handles signals with `libc`.
//!
//! [`Builder::inherit_listener`]: graceful_server::Builder::inherit_listener
//! [`Builder::systemd_notify`]: graceful_server::Builder::systemd_notify

#[cfg(not(unix))]
fn main() {
    eprintln!("supervisor: this example needs a Unix system");
    std::process::exit(1);
}

#[cfg(unix)]
fn main() -> std::process::ExitCode {
    unix::main()
}

#[cfg(unix)]
mod unix {
    /// Writes `supervisor: ` and the message to stderr as one line, with
    /// one `write`. The servers share this stderr, and `eprintln!` writes a
    /// line in pieces, between which a server's output could land and tear
    /// it; a write this small to a pipe is atomic.
    macro_rules! log {
        ($($arg:tt)*) => {
            log_line(format_args!($($arg)*))
        };
    }

    use std::ffi::OsString;
    use std::io::{self, Write};
    use std::net::{SocketAddr, TcpListener};
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::DirBuilderExt;
    use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, ExitCode, ExitStatus};
    use std::sync::mpsc::{self, Receiver, Sender};
    use std::thread;
    use std::time::{Duration, Instant};

    const USAGE: &str =
        "usage: supervisor [--addr ADDR]... [--unix PATH]... [--ready-timeout SECS] \
                         -- PROGRAM [ARGS...]";
    const HELP: &str = "\
supervisor: runs a server on a listening socket it keeps open, and restarts
it on SIGHUP without refusing or resetting a connection

  --addr ADDR            address to listen on [default: 127.0.0.1:8080];
                         repeatable
  --unix PATH            a Unix domain socket to listen on; repeatable
                         (given --addr or --unix, only those)
  --ready-timeout SECS   how long a new server may take to send READY=1
                         [default: 10]

PROGRAM gets the sockets as descriptors 3 on, in the order given
(LISTEN_FDS, LISTEN_PID) and a NOTIFY_SOCKET. SIGHUP: start a new PROGRAM, wait for its READY=1, then send
SIGTERM to the old one. SIGINT/SIGTERM: close the supervisor's copy of the
socket, send SIGTERM to PROGRAM (to a PROGRAM still starting once it is
ready), and exit with its status; a second signal is forwarded too. PROGRAM
must run the server in its own process (or exec it), since the socket
closes only when every copy of it has.

The first lines on stdout are 'listening on IP:PORT' (or 'listening on
unix:PATH'), one per socket. Progress goes to stderr.";
    const DEFAULT_ADDR: &str = "127.0.0.1:8080";
    /// How long a new server may take to send `READY=1`.
    const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(10);
    /// The first inherited descriptor in the socket-activation protocol
    /// (`SD_LISTEN_FDS_START`).
    const LISTEN_FD: i32 = 3;
    /// The most sockets the supervisor passes on (the child's copies are
    /// made on the stack, between `fork` and `exec`, where nothing may
    /// allocate).
    const MAX_SOCKETS: usize = 64;

    /// The signals the supervisor handles. They are blocked in every thread
    /// and taken one at a time by the signal thread with `sigwait`, so no
    /// code runs in a signal handler.
    const SIGNALS: [i32; 4] = [libc::SIGHUP, libc::SIGINT, libc::SIGTERM, libc::SIGCHLD];

    /// A socket to listen on, as given.
    enum Listen {
        Tcp(SocketAddr),
        Unix(PathBuf),
    }

    /// A listening socket the supervisor holds open for its servers.
    enum Socket {
        Tcp(TcpListener),
        /// With its file, which the supervisor removes when it closes it:
        /// the servers inherit it, so they leave the file alone.
        Unix(UnixListener, PathBuf),
    }

    impl Socket {
        fn bind(listen: &Listen) -> Result<Socket, String> {
            match listen {
                Listen::Tcp(addr) => TcpListener::bind(addr)
                    .map(Socket::Tcp)
                    .map_err(|e| format!("cannot listen on {addr}: {e}")),
                Listen::Unix(path) => {
                    // A file left by a crashed run is replaced, a live
                    // socket never.
                    if path.exists() && UnixStream::connect(path).is_err() {
                        let _ = std::fs::remove_file(path);
                    }
                    UnixListener::bind(path)
                        .map(|socket| Socket::Unix(socket, path.clone()))
                        .map_err(|e| format!("cannot listen on unix:{}: {e}", path.display()))
                }
            }
        }

        fn raw_fd(&self) -> i32 {
            match self {
                Socket::Tcp(socket) => socket.as_raw_fd(),
                Socket::Unix(socket, _) => socket.as_raw_fd(),
            }
        }

        fn shown(&self) -> Result<String, String> {
            match self {
                Socket::Tcp(socket) => socket
                    .local_addr()
                    .map(|addr| addr.to_string())
                    .map_err(|e| e.to_string()),
                Socket::Unix(_, path) => Ok(format!("unix:{}", path.display())),
            }
        }
    }

    impl Drop for Socket {
        fn drop(&mut self) {
            if let Socket::Unix(_, path) = self {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    struct Options {
        /// At least one.
        listen: Vec<Listen>,
        ready_timeout: Duration,
        program: OsString,
        args: Vec<OsString>,
    }

    /// What the main loop reacts to. Everything arrives on one channel, so
    /// the supervisor's state lives in one thread, without locks.
    enum Event {
        /// A signal taken by the signal thread.
        Signal(i32),
        /// The server of this generation sent `READY=1`.
        Ready(u64),
        /// The server of this generation did not send `READY=1` in time.
        NotReady(u64),
    }

    /// A server process and its generation: 1 for the first, then one more
    /// for each restart.
    struct Server {
        child: Child,
        generation: u64,
        /// Sent SIGTERM: it is draining, or about to. Another SIGTERM would
        /// force its drain, so a graceful stop sends it once.
        told_to_stop: bool,
        /// Sent SIGKILL: it will close its copy of the socket without
        /// accepting what is waiting in the backlog.
        killed: bool,
    }

    impl Server {
        fn new(child: Child, generation: u64) -> Server {
            Server {
                child,
                generation,
                told_to_stop: false,
                killed: false,
            }
        }

        fn pid(&self) -> u32 {
            self.child.id()
        }

        /// Sends SIGTERM, once: the server stops accepting (after taking what
        /// is waiting in the backlog) and drains.
        fn tell_to_stop(&mut self) {
            if !self.told_to_stop {
                log!(
                    "stopping generation {} (pid {})",
                    self.generation,
                    self.pid()
                );
                self.signal(libc::SIGTERM);
                self.told_to_stop = true;
            }
        }

        fn kill(&mut self) {
            let _ = self.child.kill();
            self.killed = true;
        }

        /// Sends `signal`. Only servers not yet reaped are in the
        /// supervisor's lists, and reaping happens on this same thread, so
        /// the pid cannot have been reused by another process.
        fn signal(&self, signal: i32) {
            let pid = libc::pid_t::try_from(self.pid()).expect("a pid fits in pid_t");
            // SAFETY: `kill` has no memory-safety preconditions.
            unsafe { libc::kill(pid, signal) };
        }
    }

    pub fn main() -> ExitCode {
        let options = match parse_args(std::env::args_os().skip(1)) {
            Ok(Some(options)) => options,
            Ok(None) => {
                println!("{HELP}");
                return ExitCode::SUCCESS;
            }
            Err(message) => {
                log!("{message}\n{USAGE}");
                return ExitCode::from(2);
            }
        };
        match run(options) {
            Ok(status) => exit_code(status),
            Err(message) => {
                log!("{message}");
                ExitCode::from(1)
            }
        }
    }

    fn run(options: Options) -> Result<ExitStatus, String> {
        // Block the signals before any thread exists, so that every thread
        // inherits the mask and only `sigwait` ever sees them.
        let signals = signal_set();
        // SAFETY: `signals` is an initialized set; the old mask is not asked for.
        let blocked =
            unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &signals, std::ptr::null_mut()) };
        if blocked != 0 {
            return Err(format!(
                "cannot block signals: {}",
                io::Error::from_raw_os_error(blocked)
            ));
        }

        let sockets = options
            .listen
            .iter()
            .map(Socket::bind)
            .collect::<Result<Vec<_>, _>>()?;
        let mut lines = String::new();
        for socket in &sockets {
            lines.push_str(&format!("listening on {}\n", socket.shown()?));
        }
        // The supervisor never accepts: the socket is only held open, so that
        // its backlog outlives every server, until the supervisor stops.

        let notify_dir = NotifyDir::create()?;
        let (events_tx, events) = mpsc::channel();
        spawn_signal_thread(signals, events_tx.clone())?;

        let mut stdout = io::stdout().lock();
        // A closed stdout must not stop the supervisor.
        let _ = stdout.write_all(lines.as_bytes());
        let _ = stdout.flush();
        drop(stdout);

        let mut supervisor = Supervisor {
            options,
            listener: Some(sockets),
            notify_dir,
            events_tx,
            generation: 0,
            current: None,
            starting: None,
            retired: Vec::new(),
            stopping: false,
            current_status: None,
        };
        supervisor.start_server()?;
        Ok(supervisor.run(&events))
    }

    /// The supervisor's state, owned by the main loop.
    struct Supervisor {
        options: Options,
        /// The supervisor's copies of the listening sockets, which it hands
        /// to every server it starts; closed when it stops (see
        /// [`Supervisor::advance_stop`]).
        listener: Option<Vec<Socket>>,
        notify_dir: NotifyDir,
        events_tx: Sender<Event>,
        /// The last generation started.
        generation: u64,
        /// The server that is serving (once the first one got ready).
        current: Option<Server>,
        /// A server started and not ready yet.
        starting: Option<Server>,
        /// Servers told to stop (draining) or killed, not reaped yet.
        retired: Vec<Server>,
        /// SIGINT or SIGTERM arrived (or the current server died, or the
        /// first one never got ready): no more restarts; exit once every
        /// server is gone.
        stopping: bool,
        /// How the current server ended; the supervisor's exit status.
        current_status: Option<ExitStatus>,
    }

    impl Supervisor {
        fn run(&mut self, events: &Receiver<Event>) -> ExitStatus {
            while !self.finished() {
                // Cannot fail: `self.events_tx` keeps the channel open.
                let Ok(event) = events.recv() else { break };
                match event {
                    Event::Signal(libc::SIGCHLD) => self.reap(),
                    Event::Signal(libc::SIGHUP) => self.restart(),
                    Event::Signal(_) => self.stop(),
                    Event::Ready(generation) => self.ready(generation),
                    Event::NotReady(generation) => self.not_ready(generation),
                }
                // Every event may be the one a stop was waiting for.
                self.advance_stop();
            }
            self.current_status
                .unwrap_or_else(|| ExitStatus::from_raw(1 << 8))
        }

        fn finished(&self) -> bool {
            self.stopping
                && self.current.is_none()
                && self.starting.is_none()
                && self.retired.is_empty()
        }

        /// Starts a new server on the shared socket. It becomes current when
        /// it sends `READY=1`.
        fn start_server(&mut self) -> Result<(), String> {
            self.generation += 1;
            let generation = self.generation;
            let notify_path = self.notify_dir.path_for(generation);
            // A socket of its own for each server: a `READY=1` read from it
            // can only come from the server we are waiting for, never from a
            // slow one we already gave up on.
            let _ = std::fs::remove_file(&notify_path);
            let notify = UnixDatagram::bind(&notify_path)
                .map_err(|e| format!("cannot bind {}: {e}", notify_path.display()))?;
            let sockets = self
                .listener
                .as_ref()
                .ok_or("the listening sockets are closed: stopping")?;
            let child = spawn_server(&self.options, sockets, &notify_path)
                .map_err(|e| format!("cannot start {:?}: {e}", self.options.program))?;
            log!("started generation {generation} as pid {}", child.id());
            self.starting = Some(Server::new(child, generation));
            let events = self.events_tx.clone();
            let timeout = self.options.ready_timeout;
            let spawned = thread::Builder::new()
                .name(format!("ready-{generation}"))
                .spawn(move || {
                    let ready = wait_for_ready(&notify, timeout);
                    let _ = std::fs::remove_file(&notify_path);
                    let _ = events.send(if ready {
                        Event::Ready(generation)
                    } else {
                        Event::NotReady(generation)
                    });
                });
            if let Err(e) = spawned {
                self.not_ready(generation);
                return Err(format!("cannot start a thread: {e}"));
            }
            Ok(())
        }

        /// SIGHUP: start a new server; the old one goes on until it is ready.
        fn restart(&mut self) {
            if self.stopping {
                log!("SIGHUP ignored: stopping");
            } else if let Some(starting) = &self.starting {
                log!(
                    "SIGHUP ignored: generation {} is still starting",
                    starting.generation
                );
            } else if let Err(message) = self.start_server() {
                // The current server goes on serving.
                log!("restart failed: {message}");
            }
        }

        /// The new server is accepting: it becomes current, and the old one
        /// is told to drain.
        fn ready(&mut self, generation: u64) {
            if self.starting.as_ref().map(|s| s.generation) != Some(generation) {
                return; // it died or was given up on before its message came
            }
            let new = self.starting.take().expect("checked just above");
            if self.stopping {
                // Ready after the stop began: it stops with the others
                // (`advance_stop`), and if it is the first server, its exit
                // status is the supervisor's.
                log!(
                    "generation {generation} ready as pid {}, while stopping",
                    new.pid()
                );
                if self.current.is_none() {
                    self.current = Some(new);
                } else {
                    self.retired.push(new);
                }
                return;
            }
            log!("generation {generation} ready as pid {}", new.pid());
            if let Some(mut old) = self.current.replace(new) {
                old.tell_to_stop();
                self.retired.push(old);
            }
        }

        /// The new server did not get ready in time: kill it, keep the old.
        fn not_ready(&mut self, generation: u64) {
            if self.starting.as_ref().map(|s| s.generation) != Some(generation) {
                return;
            }
            let mut new = self.starting.take().expect("checked just above");
            log!(
                "generation {generation} (pid {}) not ready in time; killed",
                new.pid()
            );
            new.kill();
            self.retired.push(new);
            if self.current.is_none() {
                // There is nothing to keep: give up.
                self.stopping = true;
            }
        }

        /// SIGINT or SIGTERM: stop every server gracefully, losing nothing;
        /// `advance_stop`, which runs next, does it in the right order. A
        /// second one is forwarded to every server at once: it forces the
        /// drain of those already stopping, and stops the others now.
        fn stop(&mut self) {
            if !self.stopping {
                self.stopping = true;
                if let Some(starting) = &self.starting {
                    log!(
                        "generation {} is still starting: stopping once it is \
                         ready or gone",
                        starting.generation
                    );
                }
                return;
            }
            log!("second stop signal: forwarded to every server");
            let servers = self.current.iter_mut();
            let servers = servers.chain(self.starting.iter_mut());
            for server in servers.chain(self.retired.iter_mut()) {
                server.signal(libc::SIGTERM);
                server.told_to_stop = true;
            }
        }

        /// While stopping: closes the supervisor's copy of the listening
        /// socket, then tells the servers to stop, in an order that loses no
        /// connection. Runs after every event, until every server is told.
        ///
        /// The socket stops listening (new connects are refused instead of
        /// queued) only when its last copy is closed. A server told to stop
        /// accepts everything waiting in the backlog, then closes its copy;
        /// that final sweep is lossless only if the copy it closes is the
        /// last. So:
        ///
        /// 1. The supervisor closes its own copy first, before it tells any
        ///    server. Held any longer, it would keep the socket listening
        ///    after the last server's sweep: connects would queue in a
        ///    backlog nobody reads, and be reset when the supervisor exits.
        ///    Closing it first changes nothing for clients, since the
        ///    servers are still accepting.
        /// 2. A server still starting is left to finish starting. It may be
        ///    accepting already, and a SIGTERM that came before its signal
        ///    handler would kill it, losing what it accepted and closing its
        ///    copy without a sweep. Once ready (for the servers of this
        ///    crate, `READY=1` comes after the handler is installed) it stops
        ///    like the others; if it never gets ready, it is killed at its
        ///    ready timeout. A killed server closes its copy without a sweep,
        ///    so the current server keeps serving until every killed one is
        ///    reaped.
        /// 3. Then every server not yet told gets SIGTERM. Each closes its
        ///    copy after its own sweep, so whichever closes last, the
        ///    backlog is swept right before the socket closes, exactly as
        ///    when a server that bound the socket itself stops (with the
        ///    same instant between that sweep and the close: see "Not
        ///    guaranteed" in the README).
        ///
        /// No other process holds a copy: the shell that sets `LISTEN_PID`
        /// replaces itself with PROGRAM (`exec`), the supervisor's own
        /// descriptor is close-on-exec, and the library duplicates the
        /// inherited one close-on-exec.
        fn advance_stop(&mut self) {
            if !self.stopping {
                return;
            }
            if self.listener.take().is_some() {
                log!("closed its copies of the listening sockets");
            }
            if self.starting.is_some() || self.retired.iter().any(|server| server.killed) {
                return;
            }
            for server in self.retired.iter_mut().chain(self.current.iter_mut()) {
                server.tell_to_stop();
            }
        }

        /// SIGCHLD: collect every server that exited, so none is left a
        /// zombie. One SIGCHLD may stand for several exits.
        fn reap(&mut self) {
            if let Some((server, status)) = exited(&mut self.starting) {
                log!(
                    "generation {} (pid {}) exited before it was ready: {status}",
                    server.generation,
                    server.pid()
                );
                if self.current.is_none() {
                    // The first server failed: there is nothing to run.
                    self.current_status = Some(status);
                    self.stopping = true;
                }
            }
            if let Some((server, status)) = exited(&mut self.current) {
                log!(
                    "generation {} (pid {}) exited: {status}",
                    server.generation,
                    server.pid()
                );
                self.current_status = Some(status);
                if !self.stopping {
                    // It died by itself: stop everything and report it.
                    self.stop();
                }
            }
            self.retired
                .retain_mut(|server| match server.child.try_wait() {
                    Ok(Some(status)) => {
                        log!(
                            "generation {} (pid {}) exited: {status}",
                            server.generation,
                            server.pid()
                        );
                        false
                    }
                    Ok(None) => true,
                    // Not our child any more (cannot happen): forget it.
                    Err(_) => false,
                });
        }
    }

    /// Takes the server out of `slot` if it has exited, with how it ended.
    fn exited(slot: &mut Option<Server>) -> Option<(Server, ExitStatus)> {
        let status = match slot.as_mut()?.child.try_wait() {
            Ok(Some(status)) => status,
            Ok(None) => return None,
            // Not our child any more (cannot happen): count it as failed.
            Err(_) => ExitStatus::from_raw(1 << 8),
        };
        slot.take().map(|server| (server, status))
    }

    /// Runs PROGRAM with the listening sockets as descriptors 3 on.
    fn spawn_server(options: &Options, sockets: &[Socket], notify: &Path) -> io::Result<Child> {
        // `LISTEN_PID` must hold the pid of the process that runs PROGRAM,
        // which exists only after `fork`. Setting it in a `pre_exec` closure
        // with `setenv` would be wrong twice: `setenv` is not
        // async-signal-safe (it allocates, and takes a lock another thread
        // may have held at the fork, which deadlocks the child), and std has
        // already built the child's environment before forking, so the
        // change would not even reach PROGRAM. A shell does it right: `$$` is
        // the shell's own pid, and `exec` replaces the shell with PROGRAM in
        // the same process, so the pid stays true. The cost is one extra
        // `exec` of /bin/sh, which every Unix has. Because the shell
        // replaces itself rather than starting PROGRAM as its child, no
        // extra process holds a copy of the socket, which would keep it
        // listening after the server's final sweep (see
        // `Supervisor::advance_stop`).
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(r#"LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@""#)
            .arg(&options.program)
            .args(&options.args)
            .env("LISTEN_FDS", sockets.len().to_string())
            .env_remove("LISTEN_FDNAMES")
            .env("NOTIFY_SOCKET", notify);

        let fds: Vec<i32> = sockets.iter().map(Socket::raw_fd).collect();
        let signals = signal_set();
        let pre_exec = move || {
            // Only async-signal-safe calls here: this runs in the child
            // between `fork` and `exec`. Each socket is copied above every
            // target first, so that no `dup2` overwrites a socket not yet
            // moved; the copies at 3 on are not close-on-exec.
            let high = LISTEN_FD + fds.len() as i32;
            let mut copies = [-1; MAX_SOCKETS];
            for (copy, &fd) in copies.iter_mut().zip(&fds) {
                // SAFETY: `fd` is our open listener; F_DUPFD_CLOEXEC takes
                // an int.
                *copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, high) };
                if *copy == -1 {
                    return Err(io::Error::last_os_error());
                }
            }
            for (i, &copy) in copies.iter().take(fds.len()).enumerate() {
                // SAFETY: `copy` was opened above.
                if unsafe { libc::dup2(copy, LISTEN_FD + i as i32) } == -1 {
                    return Err(io::Error::last_os_error());
                }
            }
            // The child inherits our blocked signals. std unblocks them too;
            // doing it here keeps the example correct on its own.
            // SAFETY: `signals` is an initialized set.
            unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &signals, std::ptr::null_mut()) };
            Ok(())
        };
        // SAFETY: the closure only calls async-signal-safe functions
        // (`fcntl`, `dup2`, `pthread_sigmask`) and reads `errno`; it
        // allocates nothing and takes no lock.
        unsafe { command.pre_exec(pre_exec) };
        command.spawn()
    }

    /// Waits at most `timeout` for a datagram holding the line `READY=1`.
    fn wait_for_ready(socket: &UnixDatagram, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut buf = [0; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // A zero timeout is rejected, which also ends the wait.
            if socket.set_read_timeout(Some(left)).is_err() {
                return false;
            }
            match socket.recv(&mut buf) {
                // One datagram may hold several `KEY=VALUE` lines.
                Ok(n) => {
                    if String::from_utf8_lossy(&buf[..n])
                        .lines()
                        .any(|line| line == "READY=1")
                    {
                        return true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Timed out (`WouldBlock`), or the socket failed.
                Err(_) => return false,
            }
        }
    }

    /// A private directory (mode 0700) for the notification sockets, so that
    /// no other user can put a socket where we are about to bind one.
    struct NotifyDir(PathBuf);

    impl NotifyDir {
        /// Creates `supervisor-PID-N` in the temporary directory, with the
        /// first `N` not taken. A supervisor killed outright (SIGKILL)
        /// leaves its directory behind, and a later one may get the same
        /// pid; an existing directory is never reused, since it may not be
        /// ours.
        fn create() -> Result<NotifyDir, String> {
            let pid = std::process::id();
            let mut taken = None;
            for n in 0..100 {
                let path = std::env::temp_dir().join(format!("supervisor-{pid}-{n}"));
                match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                    Ok(()) => return Ok(NotifyDir(path)),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => taken = Some(path),
                    Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
                }
            }
            let last = taken.expect("the loop ran, and every name was taken");
            Err(format!(
                "cannot create a directory for the notification sockets: \
                 {} and the 99 names before it exist",
                last.display()
            ))
        }

        fn path_for(&self, generation: u64) -> PathBuf {
            self.0.join(format!("notify-{generation}"))
        }
    }

    impl Drop for NotifyDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn log_line(message: std::fmt::Arguments<'_>) {
        let line = format!("supervisor: {message}\n");
        // A closed stderr must not stop the supervisor.
        let _ = io::stderr().write_all(line.as_bytes());
    }

    fn signal_set() -> libc::sigset_t {
        // SAFETY: `sigemptyset` initializes the set before `sigaddset` uses
        // it; both only write to it.
        unsafe {
            let mut set = std::mem::zeroed::<libc::sigset_t>();
            libc::sigemptyset(&mut set);
            for signal in SIGNALS {
                libc::sigaddset(&mut set, signal);
            }
            set
        }
    }

    /// Takes the blocked signals one by one and sends them to the main
    /// loop. `sigwait` returns in a normal thread, so the supervisor can do
    /// anything in response, unlike in a signal handler.
    fn spawn_signal_thread(signals: libc::sigset_t, events: Sender<Event>) -> Result<(), String> {
        thread::Builder::new()
            .name("signals".into())
            .spawn(move || loop {
                let mut signal = 0;
                // SAFETY: `signals` is an initialized set, `signal` a valid
                // place for the result.
                if unsafe { libc::sigwait(&signals, &mut signal) } != 0 {
                    continue;
                }
                if events.send(Event::Signal(signal)).is_err() {
                    return; // the main loop is gone
                }
            })
            .map(drop)
            .map_err(|e| format!("cannot start the signal thread: {e}"))
    }

    /// The server's exit status as ours: its code, or 128 + the signal
    /// that killed it, as shells report it.
    fn exit_code(status: ExitStatus) -> ExitCode {
        let code = status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(1);
        ExitCode::from(u8::try_from(code).unwrap_or(1))
    }

    /// The options, or `None` for `--help`.
    fn parse_args(mut args: impl Iterator<Item = OsString>) -> Result<Option<Options>, String> {
        let mut listen = Vec::new();
        let mut ready_timeout = DEFAULT_READY_TIMEOUT;
        loop {
            let Some(arg) = args.next() else {
                return Err("missing '-- PROGRAM'".into());
            };
            let arg = arg
                .into_string()
                .map_err(|arg| format!("unknown argument {arg:?}"))?;
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => {
                    (flag.to_string(), Some(value.to_string()))
                }
                _ => (arg, None),
            };
            let mut value = || -> Result<String, String> {
                inline
                    .clone()
                    .or_else(|| args.next().and_then(|v| v.into_string().ok()))
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--" => break,
                "--addr" => {
                    let text = value()?;
                    listen.push(Listen::Tcp(text.parse().map_err(|_| {
                        format!("--addr: {text:?} is not an IP:PORT address")
                    })?));
                }
                "--unix" => listen.push(Listen::Unix(value()?.into())),
                "--ready-timeout" => {
                    let text = value()?;
                    ready_timeout = text
                        .parse::<f64>()
                        .ok()
                        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| {
                            format!("--ready-timeout: {text:?} is not a number of seconds")
                        })?;
                }
                "--help" | "-h" => return Ok(None),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        let program = args.next().ok_or("missing PROGRAM after '--'")?;
        if listen.len() > MAX_SOCKETS {
            return Err(format!("at most {MAX_SOCKETS} sockets"));
        }
        if listen.is_empty() {
            listen.push(Listen::Tcp(
                DEFAULT_ADDR
                    .parse()
                    .expect("the default address is a valid socket address"),
            ));
        }
        Ok(Some(Options {
            listen,
            ready_timeout,
            program,
            args: args.collect(),
        }))
    }
}
