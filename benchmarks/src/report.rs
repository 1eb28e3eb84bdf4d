//! The report: the targets table (figure / ours / peer / ratio / target /
//! met?), the table of every figure, the command lines used, and notes.

use std::fmt::Write as _;

use crate::config::Config;
use crate::measure::Measurement;
use crate::record::Record;
use crate::servers::{Spec, BASELINE, WORKERS};
use crate::stats::median;
use crate::system;

/// How a figure is shown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unit {
    /// Requests per second.
    Rps,
    /// Microseconds (shown in ms from 10 ms on).
    Micros,
    /// Microseconds with a decimal (CPU time per request).
    MicrosFine,
    /// Microseconds with a sign: a difference.
    SignedMicros,
    /// Events per second (wake-ups).
    PerSec,
    Percent,
    /// A plain count.
    Count,
    /// A large count, shown in millions.
    Millions,
    /// A count out of this many.
    OutOf(u32),
    /// Context switches per request.
    PerRequest,
    Seconds,
    /// Kibibytes.
    Kib,
    /// Mebibytes.
    Mib,
    /// Bytes, shown in B, KiB or MiB.
    Bytes,
    /// `ours / peer`.
    Ratio,
}

impl Unit {
    pub fn show(self, v: f64) -> String {
        if v.is_nan() {
            return "-".into();
        }
        match self {
            Unit::Rps => format!("{v:.0}/s"),
            Unit::Micros if v.abs() >= 10_000.0 => format!("{:.1} ms", v / 1e3),
            Unit::Micros => format!("{v:.0} us"),
            Unit::MicrosFine => format!("{v:.1} us"),
            Unit::SignedMicros => format!("{v:+.0} us"),
            Unit::PerSec => format!("{v:.1}/s"),
            Unit::Percent => format!("{v:.1}%"),
            Unit::Count => format!("{v:.0}"),
            Unit::Millions => format!("{:.1} M", v / 1e6),
            Unit::OutOf(n) => format!("{v:.0}/{n}"),
            Unit::PerRequest => format!("{v:.2}"),
            Unit::Seconds => format!("{v:.2} s"),
            Unit::Kib => format!("{v:.1} KiB"),
            Unit::Mib => format!("{v:.1} MiB"),
            Unit::Bytes if v.abs() >= 1024.0 * 1024.0 => format!("{:.1} MiB", v / 1024.0 / 1024.0),
            Unit::Bytes if v.abs() >= 1024.0 => format!("{:.1} KiB", v / 1024.0),
            Unit::Bytes => format!("{v:.0} B"),
            Unit::Ratio => format!("{v:.2}x"),
        }
    }

    /// The unit of a difference of two figures of this unit.
    pub fn signed(self) -> Unit {
        match self {
            Unit::Micros => Unit::SignedMicros,
            other => other,
        }
    }
}

/// What a target asks of its value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    AtLeast(f64),
    AtMost(f64),
    /// Shown for reference, no target.
    None,
}

/// One line of the targets table.
#[derive(Debug, Clone)]
pub struct Target {
    pub label: String,
    /// Our median, shown.
    pub ours: Option<String>,
    /// The peer's median (or the reference figure's), shown.
    pub peer: Option<String>,
    /// What the goal is checked against: a ratio, a difference, or our own
    /// figure when there is no peer.
    pub value: Option<f64>,
    pub unit: Unit,
    pub goal: Goal,
    /// Whether the chart shows it: throughput ratios, where more is better.
    pub chart: bool,
}

impl Target {
    pub fn met(&self) -> Option<bool> {
        let v = self.value?;
        match self.goal {
            Goal::AtLeast(min) => Some(v >= min),
            Goal::AtMost(max) => Some(v <= max),
            Goal::None => None,
        }
    }

    /// The threshold, if any.
    pub fn threshold(&self) -> Option<f64> {
        match self.goal {
            Goal::AtLeast(t) | Goal::AtMost(t) => Some(t),
            Goal::None => None,
        }
    }

    /// The compared value; three decimals near a ratio goal, so that a miss
    /// never prints as the goal itself (0.947x, not 0.95x).
    pub fn shown_value(&self) -> String {
        match (self.value, self.threshold()) {
            (Some(v), Some(t)) if self.unit == Unit::Ratio && (v - t).abs() < 0.01 => {
                format!("{v:.3}x")
            }
            (Some(v), _) => self.unit.show(v),
            (None, _) => "not measured".into(),
        }
    }

    pub fn shown_goal(&self) -> String {
        match self.goal {
            Goal::AtLeast(t) => format!(">= {}", self.unit.show(t)),
            Goal::AtMost(t) => format!("<= {}", self.unit.show(t)),
            Goal::None => "(reported)".into(),
        }
    }
}

/// The summary table's columns: (heading, figure, unit). One row per server
/// with any of them; a column nobody has is left out.
const SUMMARY: &[(&str, &str, Unit)] = &[
    ("keep-alive c4", "ka4_rps", Unit::Rps),
    ("keep-alive c32", "c32_rps", Unit::Rps),
    ("`Connection: close` c16", "close16_rps", Unit::Rps),
    ("sequential p50", "seq_p50_us", Unit::Micros),
    ("HTTPS keep-alive c16", "tls_ka_rps", Unit::Rps),
    (
        "new TLS conns c16, full handshakes",
        "tls_full_rps",
        Unit::Rps,
    ),
    ("switches/req c4", "ka4_switches", Unit::PerRequest),
    ("switches/req c32", "c32_switches", Unit::PerRequest),
    (
        "switches/req close c16",
        "close16_switches",
        Unit::PerRequest,
    ),
    (
        "switches/req HTTPS c16",
        "tls_ka_switches",
        Unit::PerRequest,
    ),
    (
        "switches/req new TLS conn",
        "tls_full_switches",
        Unit::PerRequest,
    ),
    (
        "syscalls/req keep-alive",
        "cost_ka_syscalls",
        Unit::PerRequest,
    ),
    (
        "syscalls/req close",
        "cost_close_syscalls",
        Unit::PerRequest,
    ),
    ("instructions/req keep-alive", "cost_ka_ir", Unit::Count),
    ("instructions/req close", "cost_close_ir", Unit::Count),
];

/// Everything the report shows.
pub struct Run<'a> {
    pub config: &'a Config,
    pub machine: &'a str,
    /// `/proc/loadavg` when the run started.
    pub load_at_start: &'a str,
    /// Percent of all CPUs busy during the second before the run.
    pub busy_before: Option<f64>,
    pub measurements: &'a [&'a Measurement],
    pub specs: &'a [Spec],
    pub record: &'a Record,
    pub targets: &'a [Target],
    pub minutes: f64,
}

/// The report as Markdown.
pub fn render(run: &Run) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# graceful-server side by side\n");
    let _ = writeln!(md, "Command: `{}`\n", run.config.command());
    let _ = writeln!(
        md,
        "Machine: {}. Load average (1, 5, 15 min) at the start {}, at the end {}; \
         CPUs busy in the second before the run: {}.\n",
        run.machine,
        run.load_at_start,
        system::load_average(),
        run.busy_before
            .map_or_else(|| "unknown".to_string(), |b| format!("{b:.0}%"))
    );
    let _ = writeln!(
        md,
        "{} round(s), {} s per load, {WORKERS} workers or threads for every server with a \
         pool; medians over rounds, ratios and differences computed within each round. \
         Run took {:.1} min.\n",
        run.record.rounds(),
        run.config.secs,
        run.minutes
    );

    // Only the servers that some measurement of this run ran on.
    let specs: Vec<&Spec> = run
        .specs
        .iter()
        .filter(|s| run.measurements.iter().any(|m| m.servers.contains(&s.id)))
        .filter(|s| run.config.servers.is_empty() || run.config.servers.iter().any(|id| id == s.id))
        .collect();

    summary(&mut md, &specs, run.record);

    let _ = writeln!(md, "## Targets\n");
    let _ = writeln!(md, "| Figure | ours | peer | ratio | target | met? |");
    let _ = writeln!(md, "|---|---:|---:|---:|---|---|");
    for t in run.targets {
        let met = match t.met() {
            Some(true) => "yes",
            Some(false) => "**no**",
            None if t.value.is_none() => "not measured",
            None => "-",
        };
        let compared = if t.peer.is_none() && t.unit != Unit::Ratio {
            "-".to_string()
        } else {
            t.shown_value()
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {compared} | {} | {met} |",
            t.label,
            t.ours.as_deref().unwrap_or("-"),
            t.peer.as_deref().unwrap_or("-"),
            t.shown_goal()
        );
    }

    let _ = writeln!(md, "\n## Every figure (medians)\n");
    let _ = write!(md, "| Figure |");
    for spec in &specs {
        let _ = write!(md, " {} |", spec.name);
    }
    let _ = write!(md, "\n|---|");
    for _ in &specs {
        let _ = write!(md, "---:|");
    }
    let _ = writeln!(md);
    for m in run.measurements {
        let _ = write!(md, "| **{}** |", m.title);
        for _ in &specs {
            let _ = write!(md, " |");
        }
        let _ = writeln!(md);
        for row in m.rows {
            let _ = write!(md, "| {} |", row.label);
            for spec in &specs {
                let cell = if m.servers.contains(&spec.id) {
                    run.record
                        .median(spec.id, row.figure)
                        .map_or_else(|| "-".to_string(), |v| row.unit.show(v))
                } else {
                    String::new()
                };
                let _ = write!(md, " {cell} |");
            }
            let _ = writeln!(md);
        }
    }

    let _ = writeln!(md, "\n## Command lines\n");
    let _ = writeln!(md, "```text");
    let _ = writeln!(md, "{}", run.config.command());
    for (what, line) in run.record.commands() {
        let _ = writeln!(md, "# {what}\n{line}");
    }
    let _ = writeln!(md, "```");
    let _ = writeln!(
        md,
        "\n`taskset -c 0` is every server's CPU, `taskset -c 1` the load's (the driver \
         pins itself, so its own client threads run there too). `127.0.0.1:PORT` is the \
         port the server printed."
    );

    if !run.record.notes().is_empty() {
        let _ = writeln!(md, "\n## Notes\n");
        for n in run.record.notes() {
            let _ = writeln!(md, "- {n}");
        }
    }
    md
}

/// The table of the issue's figures: a row per server, a column per figure
/// (throughput, latency, and what a request costs).
fn summary(md: &mut String, specs: &[&Spec], record: &Record) {
    let columns: Vec<&(&str, &str, Unit)> = SUMMARY
        .iter()
        .filter(|(_, figure, _)| specs.iter().any(|s| record.median(s.id, figure).is_some()))
        .collect();
    if columns.is_empty() {
        return;
    }
    let _ = writeln!(md, "## Summary (medians)\n");
    let _ = write!(md, "| server |");
    for (heading, _, _) in &columns {
        let _ = write!(md, " {heading} |");
    }
    let _ = write!(md, "\n|---|");
    for _ in &columns {
        let _ = write!(md, "---:|");
    }
    let _ = writeln!(md);
    for spec in specs {
        let cells: Vec<Option<String>> = columns
            .iter()
            .map(|(_, figure, unit)| record.median(spec.id, figure).map(|v| unit.show(v)))
            .collect();
        if cells.iter().all(Option::is_none) {
            continue;
        }
        let _ = write!(md, "| {} |", spec.name);
        for cell in cells {
            let _ = write!(md, " {} |", cell.as_deref().unwrap_or("-"));
        }
        let _ = writeln!(md);
    }
    let baseline = specs.iter().any(|s| s.id == BASELINE.0);
    if baseline {
        // ours / ours (baseline), each column's ratio within each round.
        let ratios: Vec<Option<f64>> = columns
            .iter()
            .map(|(_, figure, _)| {
                record.per_round(("ours", figure), (BASELINE.0, figure), |a, b| a / b)
            })
            .collect();
        if ratios.iter().any(Option::is_some) {
            let _ = write!(md, "| **ours / {}** |", BASELINE.1);
            for ratio in &ratios {
                let cell = ratio.map_or_else(|| "-".to_string(), |v| Unit::Ratio.show(v));
                let _ = write!(md, " {cell} |");
            }
            let _ = writeln!(md);
        }
    }
    let _ = writeln!(
        md,
        "\nswitches/req: voluntary and involuntary context switches of every thread of the \
         server (`/proc/PID/task/*/status`; threads that exit during the load are not counted) \
         during the load, per request; syscalls/req and \
         instructions/req: measurement 13 (strace, callgrind), one request at a time; HTTPS \
         and new TLS connections (full handshakes): measurement 14.\n"
    );
    if baseline {
        baseline_rounds(md, &columns, record);
    }
}

/// Each round's `ours / ours (baseline)` of every summary column: how
/// much the ratio moves from round to round.
fn baseline_rounds(md: &mut String, columns: &[&(&str, &str, Unit)], record: &Record) {
    let rows: Vec<(&str, Vec<Option<f64>>)> = columns
        .iter()
        .map(|(heading, figure, _)| {
            let each = record.each_round(("ours", figure), (BASELINE.0, figure), |a, b| a / b);
            (*heading, each)
        })
        .filter(|(_, each)| each.iter().any(Option::is_some))
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(md, "### ours / {} per round\n", BASELINE.1);
    let _ = write!(md, "| figure | median |");
    for round in 1..=record.rounds() {
        let _ = write!(md, " round {round} |");
    }
    let _ = write!(md, "\n|---|---:|");
    for _ in 0..record.rounds() {
        let _ = write!(md, "---:|");
    }
    let _ = writeln!(md);
    for (heading, each) in rows {
        let mut values: Vec<f64> = each.iter().flatten().copied().collect();
        let _ = write!(
            md,
            "| {heading} | {} |",
            Unit::Ratio.show(median(&mut values))
        );
        for value in each {
            let cell = value.map_or_else(|| "-".to_string(), |v| Unit::Ratio.show(v));
            let _ = write!(md, " {cell} |");
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(
        md,
        "\nFor req/s more is better; for latency, switches, system calls and instructions \
         less is.\n"
    );
}
