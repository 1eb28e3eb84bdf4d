//! HTTP load from `wrk`: throughput and latency percentiles.

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// One `wrk` run: `connections` connections from one thread for `secs`.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub connections: usize,
    pub secs: u64,
    /// Send `Connection: close`: one request per connection.
    pub close: bool,
}

/// What `wrk` reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WrkResult {
    pub requests: u64,
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Socket errors (connect, read, write, timeout) plus non-2xx answers.
    pub errors: u64,
    /// CPU time wrk itself used (user and system), when known: whether the
    /// load generator, not the server, was the limit.
    pub client_cpu_secs: Option<f64>,
}

/// The arguments of `wrk` for `load` on `addr`.
pub fn args(addr: SocketAddr, load: Load) -> Vec<String> {
    args_for(&format!("http://{addr}/"), load)
}

/// The arguments of `wrk` for `load` on `url` (`https://` as well).
pub fn args_for(url: &str, load: Load) -> Vec<String> {
    let mut args = vec![
        "wrk".to_string(),
        "-t1".into(),
        format!("-c{}", load.connections),
        format!("-d{}s", load.secs),
        "--timeout".into(),
        "2s".into(),
        "--latency".into(),
    ];
    if load.close {
        args.extend(["-H".into(), "Connection: close".into()]);
    }
    args.push(url.to_string());
    args
}

/// Runs `wrk` (killed if it overruns by 15 s) and parses its report.
pub fn run(addr: SocketAddr, load: Load) -> Result<WrkResult, String> {
    run_for(&format!("http://{addr}/"), load, &[]).map(|(result, _)| result)
}

/// Runs `wrk` on `url` with `env` added to its environment (such as an
/// `LD_PRELOAD`), and returns its parsed report and its stderr.
pub fn run_for(
    url: &str,
    load: Load,
    env: &[(String, String)],
) -> Result<(WrkResult, String), String> {
    let args = args_for(url, load);
    let mut child = Command::new(&args[0])
        .args(&args[1..])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let errors = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let (output, cpu) = wait_output_usage(child, Duration::from_secs(load.secs + 15))?;
    let stderr = errors.join().unwrap_or_default();
    let mut result = parse(&String::from_utf8_lossy(&output))?;
    result.client_cpu_secs = cpu;
    Ok((result, stderr))
}

/// Parses `wrk --latency`'s report.
pub fn parse(text: &str) -> Result<WrkResult, String> {
    let line = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(str::trim))
    };
    let rps = line("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no Requests/sec in wrk's output: {text}"))?;
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .unwrap_or(0);
    let percentile = |p: &str| line(p).and_then(duration_us).unwrap_or(f64::NAN);
    let mut errors = 0;
    if let Some(rest) = line("Socket errors:") {
        errors += rest
            .split(',')
            .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
            .sum::<u64>();
    }
    if let Some(rest) = line("Non-2xx or 3xx responses:") {
        errors += rest.parse::<u64>().unwrap_or(0);
    }
    Ok(WrkResult {
        requests,
        rps,
        p50_us: percentile("50%"),
        p99_us: percentile("99%"),
        errors,
        client_cpu_secs: None,
    })
}

/// `139.00us`, `4.35ms`, `1.02s` -> microseconds.
fn duration_us(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let value: f64 = text[..split].parse().ok()?;
    let scale = match &text[split..] {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        _ => return None,
    };
    Some(value * scale)
}

/// [`wait_output`], reaping the child with `wait4` for the CPU time it
/// used (user and system, seconds).
pub fn wait_output_usage(
    mut child: Child,
    limit: Duration,
) -> Result<(Vec<u8>, Option<f64>), String> {
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let reader = thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let pid = child.id() as libc::pid_t;
    let deadline = Instant::now() + limit;
    let cpu = loop {
        let mut status = 0;
        // SAFETY: a zeroed rusage is valid for the kernel to fill in.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: waits for our own child, not reaped yet (nothing else
        // waits for it); WNOHANG: does not block.
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if reaped == pid {
            let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            break Some(secs(usage.ru_utime) + secs(usage.ru_stime));
        }
        if reaped < 0 {
            // Reaped elsewhere (cannot happen here): no figure.
            break None;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "the load generator overran {limit:?} and was killed"
            ));
        }
        thread::sleep(Duration::from_millis(20));
    };
    let output = reader
        .join()
        .map_err(|_| "the reader thread panicked".to_string())?;
    Ok((output, cpu))
}

/// Waits for a child's stdout, killing the child if it overruns `limit`.
pub fn wait_output(mut child: Child, limit: Duration) -> Result<Vec<u8>, String> {
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let reader = thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the load generator overran {limit:?} and was killed"
                ));
            }
        }
    }
    reader
        .join()
        .map_err(|_| "the reader thread panicked".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "\
Running 5s test @ http://127.0.0.1:40000/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   741.35us  180.61us   9.52ms   91.13%
    Req/Sec    21.02k   512.11    21.93k    80.00%
  Latency Distribution
     50%  712.00us
     75%  781.00us
     90%  841.00us
     99%    1.50ms
  104600 requests in 5.00s, 10.88MB read
  Socket errors: connect 0, read 12, write 0, timeout 3
  Non-2xx or 3xx responses: 2
Requests/sec:  20919.72
Transfer/sec:      2.18MB
";

    #[test]
    fn parses_wrks_report() {
        let r = parse(REPORT).expect("parses");
        assert_eq!(r.requests, 104_600);
        assert_eq!(r.rps, 20919.72);
        assert_eq!(r.p50_us, 712.0);
        assert_eq!(r.p99_us, 1500.0);
        assert_eq!(r.errors, 17);
    }
}
