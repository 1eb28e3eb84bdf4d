//! What a run records: every figure of every round, the exact command lines
//! used, and notes (what was skipped or failed).

use std::collections::BTreeMap;

use crate::stats::median;

/// One round's figures: (server id, figure) -> value.
type Round = BTreeMap<(String, String), f64>;

#[derive(Debug, Default)]
pub struct Record {
    rounds: Vec<Round>,
    notes: Vec<String>,
    /// (what, command line), in the order first used.
    commands: Vec<(String, String)>,
}

impl Record {
    pub fn start_round(&mut self) {
        self.rounds.push(Round::new());
    }

    /// Records `value` for `server`'s `figure` in the current round.
    pub fn set(&mut self, server: &str, figure: &str, value: f64) {
        if self.rounds.is_empty() {
            self.start_round();
        }
        let round = self.rounds.last_mut().expect("a round was just started");
        round.insert((server.to_string(), figure.to_string()), value);
    }

    /// `server`'s `figure` in the current round, if recorded.
    pub fn get(&self, server: &str, figure: &str) -> Option<f64> {
        self.rounds
            .last()?
            .get(&(server.to_string(), figure.to_string()))
            .copied()
    }

    pub fn note(&mut self, line: impl Into<String>) {
        let line = line.into();
        if !self.notes.contains(&line) {
            self.notes.push(line);
        }
    }

    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Remembers a command line (once), for the report. Ports differ from
    /// run to run, so `127.0.0.1:PORT` stands for the server's address.
    pub fn command(&mut self, what: &str, line: &str) {
        let line = mask_port(line);
        if !self.commands.iter().any(|(_, l)| *l == line) {
            self.commands.push((what.to_string(), line));
        }
    }

    pub fn commands(&self) -> &[(String, String)] {
        &self.commands
    }

    pub fn rounds(&self) -> usize {
        self.rounds.len()
    }

    /// One figure of the current round, `None` if not measured (yet).
    pub fn current(&self, server: &str, figure: &str) -> Option<f64> {
        self.rounds
            .last()?
            .get(&(server.to_string(), figure.to_string()))
            .copied()
    }

    /// The median over rounds of one figure, `None` if never measured.
    pub fn median(&self, server: &str, figure: &str) -> Option<f64> {
        let mut values: Vec<f64> = self
            .rounds
            .iter()
            .filter_map(|r| r.get(&(server.to_string(), figure.to_string())).copied())
            .filter(|v| !v.is_nan())
            .collect();
        (!values.is_empty()).then(|| median(&mut values))
    }

    /// The median over rounds of a combination of two figures computed
    /// within each round (a ratio or a difference), so that a slow round
    /// slows both sides of it.
    pub fn per_round(
        &self,
        a: (&str, &str),
        b: (&str, &str),
        combine: fn(f64, f64) -> f64,
    ) -> Option<f64> {
        let mut values: Vec<f64> = self
            .each_round(a, b, combine)
            .into_iter()
            .flatten()
            .collect();
        (!values.is_empty()).then(|| median(&mut values))
    }

    /// The combination of two figures in each round, `None` where either
    /// is missing or the result is not finite.
    pub fn each_round(
        &self,
        a: (&str, &str),
        b: (&str, &str),
        combine: fn(f64, f64) -> f64,
    ) -> Vec<Option<f64>> {
        let key = |(s, f): (&str, &str)| (s.to_string(), f.to_string());
        self.rounds
            .iter()
            .map(|r| Some(combine(*r.get(&key(a))?, *r.get(&key(b))?)))
            .map(|v| v.filter(|v| v.is_finite()))
            .collect()
    }

    /// Every figure of every round, tab-separated (`round`, `server`,
    /// `figure`, `value`; rounds from 1), for ratios the report does not
    /// show.
    pub fn rounds_tsv(&self) -> String {
        let mut tsv = String::from("round\tserver\tfigure\tvalue\n");
        for (i, round) in self.rounds.iter().enumerate() {
            for ((server, figure), value) in round {
                tsv.push_str(&format!("{}\t{server}\t{figure}\t{value}\n", i + 1));
            }
        }
        tsv
    }
}

/// `127.0.0.1:43121` -> `127.0.0.1:PORT`, except the `:0` of `--addr`.
fn mask_port(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    // `localhost:` too: the `tls` measurement's URLs (see measure/tls.rs).
    let next = |text: &str| {
        ["127.0.0.1:", "localhost:"]
            .iter()
            .filter_map(|host| Some((text.find(host)?, host.len())))
            .min()
    };
    while let Some((at, len)) = next(rest) {
        let (before, after) = rest.split_at(at + len);
        out.push_str(before);
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        let port = &after[..digits];
        out.push_str(if port == "0" || port.is_empty() {
            port
        } else {
            "PORT"
        });
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::Record;

    #[test]
    fn ratios_are_taken_within_each_round() {
        let mut r = Record::default();
        for (ours, base) in [(110.0, 100.0), (45.0, 50.0), (200.0, 100.0)] {
            r.start_round();
            r.set("ours", "rps", ours);
            r.set("ours-base", "rps", base);
        }
        r.start_round();
        r.set("ours", "rps", 1.0);
        let each = r.each_round(("ours", "rps"), ("ours-base", "rps"), |a, b| a / b);
        assert_eq!(each, vec![Some(1.1), Some(0.9), Some(2.0), None]);
        assert_eq!(
            r.per_round(("ours", "rps"), ("ours-base", "rps"), |a, b| a / b),
            Some(1.1)
        );
        assert!(r.rounds_tsv().contains("\n2\tours-base\trps\t50\n"));
        assert!(r.rounds_tsv().ends_with("\n4\tours\trps\t1\n"));
    }

    #[test]
    fn ports_are_masked_but_not_port_zero() {
        assert_eq!(
            super::mask_port("wrk http://127.0.0.1:4312/ x --addr 127.0.0.1:0"),
            "wrk http://127.0.0.1:PORT/ x --addr 127.0.0.1:0"
        );
        assert_eq!(
            super::mask_port("wrk https://localhost:4312/ listen 127.0.0.1:80"),
            "wrk https://localhost:PORT/ listen 127.0.0.1:PORT"
        );
    }
}
