//! Measurement 5, think-time clients: 16 Python `requests` sessions, each sending
//! `GET /` on its keep-alive connection, then pausing a random 5-30 ms, as a
//! real client does between requests. Nothing is retried. Between requests
//! the connections are idle: a server that parks them must wake up for each
//! request without losing one (a closed idle connection is a failure here,
//! as it is for a real client).
//!
//! The client is `benchmarks/thinktime.py` (needs `pip install requests`).

use std::process::{Command, Stdio};
use std::time::Duration;

use super::{bound, ratio, url, versus_baseline, Bench, Measurement, Row};
use crate::record::Record;
use crate::report::{Goal, Target, Unit};
use crate::servers::Spec;
use crate::system::Tool;
use crate::wrk::wait_output;

const CLIENTS: usize = 16;

pub const MEASUREMENT: Measurement = Measurement {
    id: "thinktime",
    title: "5. 16 think-time clients (Python requests, 5-30 ms between requests)",
    servers: &["ours", "ours-base", "tiny", "node"],
    needs: &[Tool::PythonRequests],
    run,
    rows: &[
        Row {
            label: "failures",
            figure: "tt_failures",
            unit: Unit::Count,
        },
        Row {
            label: "req/s",
            figure: "tt_rps",
            unit: Unit::Rps,
        },
        Row {
            label: "p50",
            figure: "tt_p50_us",
            unit: Unit::Micros,
        },
        Row {
            label: "p99",
            figure: "tt_p99_us",
            unit: Unit::Micros,
        },
        Row {
            label: "clients answered at least once",
            figure: "tt_served",
            unit: Unit::OutOf(CLIENTS as u32),
        },
    ],
    targets,
};

fn run(bench: &mut Bench, spec: &Spec) -> Result<(), String> {
    let server = bench.start(spec, &[])?;
    let secs = bench.config.secs;
    let script = crate::package_dir().join("thinktime.py");
    let argv: Vec<String> = vec![
        "python3".into(),
        script.to_string_lossy().into_owned(),
        "--url".into(),
        url(server.addr),
        "--clients".into(),
        CLIENTS.to_string(),
        "--secs".into(),
        secs.to_string(),
    ];
    bench.client_command("think-time clients", &argv);
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    let output = wait_output(child, Duration::from_secs(secs + 30))?;
    let text = String::from_utf8_lossy(&output);
    let field = |name: &str| {
        json_number(&text, name)
            .ok_or_else(|| format!("no {name:?} in the client's output: {text}"))
    };
    let r = &mut bench.record;
    r.set(spec.id, "tt_failures", field("failures")?);
    r.set(spec.id, "tt_rps", field("rps")?);
    r.set(spec.id, "tt_served", field("clients_served")?);
    if let (Ok(p50), Ok(p99)) = (field("p50_us"), field("p99_us")) {
        r.set(spec.id, "tt_p50_us", p50);
        r.set(spec.id, "tt_p99_us", p99);
    }
    if field("failures")? > 0.0 {
        let first = text
            .split("\"failure_messages\": [")
            .nth(1)
            .and_then(|rest| rest.split(']').next())
            .unwrap_or("");
        r.note(format!("think-time failures on {}: {first}", spec.id));
    }
    Ok(())
}

/// The number after `"name": ` in a flat JSON object (enough for the
/// client's one line).
fn json_number(text: &str, name: &str) -> Option<f64> {
    let key = format!("\"{name}\": ");
    let start = text.find(&key)? + key.len();
    let rest = &text[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

fn targets(r: &Record) -> Vec<Target> {
    let mut targets = vec![
        bound(
            r,
            "5. think-time clients: failures",
            ("ours", "tt_failures"),
            Unit::Count,
            Goal::AtMost(0.0),
        ),
        ratio(
            r,
            "5. think-time clients req/s: ours / tiny_http",
            ("ours", "tt_rps"),
            ("tiny", "tt_rps"),
            Unit::Rps,
            Goal::AtLeast(0.9),
        ),
        ratio(
            r,
            "5. think-time clients p99: ours / tiny_http",
            ("ours", "tt_p99_us"),
            ("tiny", "tt_p99_us"),
            Unit::Micros,
            Goal::AtMost(2.0),
        ),
        ratio(
            r,
            "5. think-time clients req/s: ours / Node.js",
            ("ours", "tt_rps"),
            ("node", "tt_rps"),
            Unit::Rps,
            Goal::None,
        ),
        ratio(
            r,
            "5. think-time clients p99: ours / Node.js",
            ("ours", "tt_p99_us"),
            ("node", "tt_p99_us"),
            Unit::Micros,
            Goal::None,
        ),
    ];
    targets.extend(versus_baseline(
        r,
        "5. think-time clients req/s",
        "tt_rps",
        Unit::Rps,
    ));
    targets.extend(versus_baseline(
        r,
        "5. think-time clients p99",
        "tt_p99_us",
        Unit::Micros,
    ));
    targets
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_numbers_from_the_clients_line() {
        let line = r#"{"requests": 10, "failures": 0, "rps": 812.5, "p99_us": null}"#;
        assert_eq!(super::json_number(line, "rps"), Some(812.5));
        assert_eq!(super::json_number(line, "failures"), Some(0.0));
        assert_eq!(super::json_number(line, "p99_us"), None);
    }
}
