//! The machine: CPU pinning, the descriptor limit, which tools are
//! installed, and what `/proc` says about a server process.

use std::fs;
use std::process::{Command, Stdio};

use crate::record::Record;

/// The CPU every server runs on (`taskset -c 0`).
pub const SERVER_CPU: usize = 0;
/// The CPU of the load generator: this process and what it starts.
pub const CLIENT_CPU: usize = 1;

/// Raises the soft `RLIMIT_NOFILE` to the hard one and returns it. Children
/// inherit it: the servers need a descriptor per idle connection, and so
/// does this process for its end.
pub fn raise_descriptor_limit() -> Result<libc::rlim_t, String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid `rlimit` for the kernel to fill in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: as above; raising the soft limit up to the hard one needs
        // no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
    }
    Ok(limit.rlim_cur)
}

/// This process's soft `RLIMIT_NOFILE`, if it can be read.
pub fn descriptor_limit() -> Option<libc::rlim_t> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid `rlimit` for the kernel to fill in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    Some(limit.rlim_cur)
}

/// The resident memory of `pid` in bytes (`VmRSS` in `/proc/PID/status`).
pub fn rss_bytes(pid: i32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_field(&status, "VmRSS:").map(|kib| kib * 1024)
}

/// Pins this process (and so every client thread, `wrk` and `python3` it
/// starts) to [`CLIENT_CPU`], if there are two CPUs and `taskset` to put
/// the servers on the other one. Call before starting any thread: only the
/// calling thread is pinned, and threads inherit it.
pub fn pin_load_generator(record: &mut Record) -> bool {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 || !have("taskset") {
        let why = if cpus < 2 {
            "fewer than 2 CPUs"
        } else {
            "taskset (util-linux) is missing"
        };
        record.note(format!(
            "no CPU pinning: {why}; servers and load share the CPUs"
        ));
        return false;
    }
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside
    // it (CLIENT_CPU is below CPU_SETSIZE); pid 0 is this thread.
    let pinned = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(CLIENT_CPU, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    };
    if !pinned {
        record.note(format!(
            "could not pin the load generator to CPU {CLIENT_CPU}: {}",
            std::io::Error::last_os_error()
        ));
    }
    pinned
}

/// Whether `program` is on `PATH`.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// An outside program a measurement needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Wrk,
    /// `python3` with the `requests` module.
    PythonRequests,
    Strace,
    Valgrind,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Wrk => "wrk",
            Tool::PythonRequests => "python3 with requests",
            Tool::Strace => "strace",
            Tool::Valgrind => "valgrind",
        }
    }
}

/// Which tools this machine has.
#[derive(Debug, Clone)]
pub struct Tools {
    pub wrk: bool,
    pub python_requests: bool,
    pub python: bool,
    pub node: bool,
    pub strace: bool,
    pub valgrind: bool,
    /// nginx, the HTTPS peer of the `tls` measurement.
    pub nginx: Option<String>,
    /// A C compiler (`$CC` or `cc`), for the handshake counter of the `tls`
    /// measurement.
    pub cc: bool,
}

impl Tools {
    pub fn probe() -> Tools {
        let python = have("python3");
        Tools {
            wrk: have("wrk"),
            python,
            python_requests: python
                && Command::new("python3")
                    .args(["-c", "import requests"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success()),
            node: have("node"),
            strace: have("strace"),
            valgrind: have("valgrind"),
            nginx: nginx(),
            cc: have(&std::env::var("CC").unwrap_or_else(|_| "cc".into())),
        }
    }

    pub fn has(&self, tool: Tool) -> bool {
        match tool {
            Tool::Wrk => self.wrk,
            Tool::PythonRequests => self.python_requests,
            Tool::Strace => self.strace,
            Tool::Valgrind => self.valgrind,
        }
    }

    /// What is missing, what it costs, and how to install it.
    pub fn missing(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if !self.wrk {
            lines.push(
                "wrk is not installed: the wrk measurements (keepalive, close, idle-load) are \
                 skipped; install it with `apt-get install -y wrk`"
                    .to_string(),
            );
        }
        if !self.python {
            lines.push(
                "python3 is not installed: the think-time measurement is skipped".to_string(),
            );
        } else if !self.python_requests {
            lines.push(
                "the Python module requests is missing: the think-time measurement is skipped; \
                 install it with `pip install requests`"
                    .to_string(),
            );
        }
        for (have, tool) in [(self.strace, "strace"), (self.valgrind, "valgrind")] {
            if !have {
                lines.push(format!(
                    "{tool} is not installed: the costs measurement (system calls and \
                     instructions per request) is skipped; install it with \
                     `apt-get install -y {tool}`"
                ));
            }
        }
        if self.nginx.is_none() {
            lines.push(
                "nginx is not installed: the tls measurement runs without its nginx peer; \
                 install it with `apt-get install -y nginx`"
                    .to_string(),
            );
        }
        if !self.cc {
            lines.push(
                "no C compiler (cc): the tls measurement cannot count full and resumed \
                 handshakes, nor force full ones; install one with `apt-get install -y gcc`"
                    .to_string(),
            );
        }
        if !self.node {
            lines.push(
                "node is not on PATH: the Node.js peer is skipped (install Node.js 20)".to_string(),
            );
        }
        lines
    }
}

/// CPUs, model, kernel, compiler and Node version, for the report.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = output("uname", &["-sr"]).unwrap_or_default();
    let rustc = output("rustc", &["--version"]).unwrap_or_default();
    let node = output("node", &["--version"])
        .map(|v| format!(", Node.js {v}"))
        .unwrap_or_default();
    let wrk = output("sh", &["-c", "wrk --version 2>&1 | head -1"])
        .filter(|v| !v.is_empty())
        .map(|v| format!(", {v}"))
        .unwrap_or_default();
    format!("{cpus} CPUs, {model}, {kernel}, {rustc}{node}{wrk}")
}

/// How busy all CPUs are over `window`, in percent, from `/proc/stat`:
/// whether something else is running beside the benchmark.
pub fn cpu_busy(window: std::time::Duration) -> Option<f64> {
    fn sample() -> Option<(u64, u64)> {
        let stat = fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal ...
        let idle = fields.get(3)? + fields.get(4).unwrap_or(&0);
        Some((fields.iter().take(8).sum(), idle))
    }
    let (total0, idle0) = sample()?;
    std::thread::sleep(window);
    let (total1, idle1) = sample()?;
    let total = total1.checked_sub(total0).filter(|&t| t > 0)?;
    let idle = idle1.saturating_sub(idle0);
    Some(100.0 * (1.0 - idle as f64 / total as f64))
}

/// The load average, to tell a quiet machine from a busy one.
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// What a process has used so far, summed over its threads.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// Context switches, voluntary and involuntary.
    pub switches: u64,
    /// CPU time in nanoseconds.
    pub cpu_ns: u64,
}

/// Reads [`Usage`] from `/proc/PID/task/*/`: `status` for the context
/// switches, `schedstat` (nanoseconds, finer than `stat`'s 10 ms ticks)
/// for the CPU time. Threads that have already exited are not counted.
pub fn usage(pid: i32) -> Usage {
    let mut usage = Usage::default();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return usage;
    };
    for task in tasks.flatten() {
        let status = fs::read_to_string(task.path().join("status")).unwrap_or_default();
        for field in ["voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"] {
            usage.switches += status_field(&status, field).unwrap_or(0);
        }
        usage.cpu_ns += fs::read_to_string(task.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
    }
    usage
}

/// [`usage`] of `pid` and of its direct children: a server that forks its
/// workers (nginx's master and its worker process).
pub fn usage_with_children(pid: i32) -> Usage {
    let mut total = usage(pid);
    for child in children(pid) {
        let u = usage(child);
        total.switches += u.switches;
        total.cpu_ns += u.cpu_ns;
    }
    total
}

/// The processes whose parent is `pid`, from `/proc/*/stat`.
pub fn children(pid: i32) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| {
            // `PID (COMM) STATE PPID ...`: COMM may hold spaces and
            // parentheses, so split after the last `)`.
            fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|stat| {
                    let rest = &stat[stat.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<i32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// The `nginx` executable: on `PATH`, or Debian's `/usr/sbin/nginx`
/// (`/usr/sbin` is not on every user's `PATH`).
pub fn nginx() -> Option<String> {
    if have("nginx") {
        return Some("nginx".into());
    }
    let sbin = "/usr/sbin/nginx";
    std::path::Path::new(sbin).exists().then(|| sbin.into())
}

fn status_field(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}
