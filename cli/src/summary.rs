//! What `nanolimit replay` counts, and how it prints it: a table, or JSON.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use nanolimit::policy::{PolicyManager, PolicySpec};
use nanolimit::Clock;
use serde::Serialize;

use crate::render::duration;
use crate::verdict::{OutcomeView, VerdictView};

/// How many malformed lines are quoted in the summary.
pub const MALFORMED_EXAMPLES: usize = 5;

/// A malformed line, quoted in the summary.
#[derive(Clone, Debug, Serialize)]
pub struct Malformed {
    pub input: String,
    pub line: u64,
    pub error: String,
}

/// One policy's counts.
#[derive(Debug)]
pub struct PolicyTally {
    name: String,
    shadow: bool,
    algorithm: &'static str,
    key: String,
    rate: u64,
    period_ns: u64,
    burst: u64,
    cost: u64,
    matched: u64,
    allowed: u64,
    denied: u64,
    shadow_denied: u64,
    errors: u64,
    keys: HashSet<Box<str>>,
    denied_keys: HashMap<Box<str>, u64>,
}

impl PolicyTally {
    fn new(spec: &PolicySpec) -> Self {
        let q = spec.quota();
        Self {
            name: spec.name().to_owned(),
            shadow: spec.is_shadow(),
            algorithm: spec.algorithm_kind().name(),
            key: spec.key().to_string(),
            rate: q.rate(),
            period_ns: u64::try_from(q.period().as_nanos()).unwrap_or(u64::MAX),
            burst: q.burst(),
            cost: spec.cost_multiplier(),
            matched: 0,
            allowed: 0,
            denied: 0,
            shadow_denied: 0,
            errors: 0,
            keys: HashSet::new(),
            denied_keys: HashMap::new(),
        }
    }
}

/// Everything counted over a replay.
#[derive(Debug)]
pub struct Tally {
    pub inputs: Vec<String>,
    pub lines: u64,
    pub requests: u64,
    pub allowed: u64,
    pub denied: u64,
    pub malformed: u64,
    pub malformed_examples: Vec<Malformed>,
    /// Lines whose time was earlier than the latest seen (judged at the latest time).
    pub out_of_order: u64,
    /// From the first request's time to the latest time seen, in ns.
    pub span_ns: u64,
    /// The largest step forward in time between a line and the latest time before it, and
    /// where: one line far in the future makes every later line "earlier than the latest",
    /// judged at that future time.
    pub largest_jump: Option<Jump>,
    pub policies: Vec<PolicyTally>,
}

/// A step forward in time, and the line that made it.
#[derive(Clone, Debug, Serialize)]
pub struct Jump {
    pub ns: u64,
    pub input: String,
    pub line: u64,
}

impl Tally {
    pub fn new<C: Clock>(manager: &PolicyManager<C>, inputs: Vec<String>) -> Self {
        Self {
            inputs,
            lines: 0,
            requests: 0,
            allowed: 0,
            denied: 0,
            malformed: 0,
            malformed_examples: Vec::new(),
            out_of_order: 0,
            span_ns: 0,
            largest_jump: None,
            policies: manager.policies().map(PolicyTally::new).collect(),
        }
    }

    /// Time moved forward by `ns` at `input:line`.
    #[inline]
    pub fn jumped(&mut self, ns: u64, input: &str, line: u64) {
        if self.largest_jump.as_ref().is_none_or(|j| ns > j.ns) {
            self.largest_jump = Some(Jump {
                ns,
                input: input.to_owned(),
                line,
            });
        }
    }

    pub fn malformed(&mut self, input: &str, line: u64, error: String) {
        self.malformed += 1;
        if self.malformed_examples.len() < MALFORMED_EXAMPLES {
            self.malformed_examples.push(Malformed {
                input: input.to_owned(),
                line,
                error,
            });
        }
    }

    #[inline]
    pub fn record(&mut self, verdict: &impl VerdictView) {
        self.requests += 1;
        if verdict.is_allowed() {
            self.allowed += 1;
        } else {
            self.denied += 1;
        }
        for outcome in verdict.outcomes() {
            let p = &mut self.policies[outcome.index()];
            p.matched += 1;
            let key = outcome.key();
            if !p.keys.contains(key) {
                p.keys.insert(key.into());
            }
            if outcome.decision().is_none() {
                p.errors += 1;
            }
            if outcome.is_allowed() {
                p.allowed += 1;
                continue;
            }
            if p.shadow {
                p.shadow_denied += 1;
            } else {
                p.denied += 1;
            }
            match p.denied_keys.get_mut(key) {
                Some(n) => *n += 1,
                None => {
                    p.denied_keys.insert(key.into(), 1);
                }
            }
        }
    }

    /// The summary, with the `top` most denied keys per policy.
    pub fn summary(&self, top: usize) -> Summary<'_> {
        Summary {
            inputs: &self.inputs,
            lines: self.lines,
            requests: self.requests,
            allowed: self.allowed,
            denied: self.denied,
            malformed: self.malformed,
            malformed_examples: &self.malformed_examples,
            out_of_order: self.out_of_order,
            span_ns: self.span_ns,
            largest_jump: self.largest_jump.as_ref(),
            policies: self
                .policies
                .iter()
                .map(|p| PolicySummary {
                    name: &p.name,
                    mode: if p.shadow { "shadow" } else { "enforce" },
                    algorithm: p.algorithm,
                    key: &p.key,
                    rate: p.rate,
                    period_ns: p.period_ns,
                    burst: p.burst,
                    cost: p.cost,
                    matched: p.matched,
                    allowed: p.allowed,
                    denied: p.denied,
                    shadow_denied: p.shadow_denied,
                    errors: p.errors,
                    distinct_keys: p.keys.len() as u64,
                    top_denied: top_keys(&p.denied_keys, top),
                })
                .collect(),
        }
    }
}

fn top_keys(counts: &HashMap<Box<str>, u64>, top: usize) -> Vec<KeyCount<'_>> {
    let mut v: Vec<KeyCount<'_>> = counts
        .iter()
        .map(|(k, &n)| KeyCount { key: k, denied: n })
        .collect();
    v.sort_unstable_by(|a, b| b.denied.cmp(&a.denied).then(a.key.cmp(b.key)));
    v.truncate(top);
    v
}

/// A key and how often it was denied.
#[derive(Debug, Serialize)]
pub struct KeyCount<'a> {
    pub key: &'a str,
    pub denied: u64,
}

/// One policy in the summary.
#[derive(Debug, Serialize)]
pub struct PolicySummary<'a> {
    pub name: &'a str,
    pub mode: &'static str,
    pub algorithm: &'static str,
    pub key: &'a str,
    pub rate: u64,
    pub period_ns: u64,
    pub burst: u64,
    pub cost: u64,
    pub matched: u64,
    pub allowed: u64,
    pub denied: u64,
    pub shadow_denied: u64,
    pub errors: u64,
    pub distinct_keys: u64,
    pub top_denied: Vec<KeyCount<'a>>,
}

/// The summary `--json` prints.
#[derive(Debug, Serialize)]
pub struct Summary<'a> {
    pub inputs: &'a [String],
    pub lines: u64,
    pub requests: u64,
    pub allowed: u64,
    pub denied: u64,
    pub malformed: u64,
    pub malformed_examples: &'a [Malformed],
    pub out_of_order: u64,
    pub span_ns: u64,
    pub largest_jump: Option<&'a Jump>,
    pub policies: Vec<PolicySummary<'a>>,
}

impl Summary<'_> {
    /// As JSON, one line.
    pub fn to_json(&self) -> String {
        let mut s =
            serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        s.push('\n');
        s
    }

    /// As a table.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} line{} from {} input{}: {} requests, {} malformed",
            self.lines,
            if self.lines == 1 { "" } else { "s" },
            self.inputs.len(),
            if self.inputs.len() == 1 { "" } else { "s" },
            self.requests,
            self.malformed
        );
        for m in self.malformed_examples {
            let _ = writeln!(
                out,
                "  malformed: {}:{}: {}",
                printable(&m.input),
                m.line,
                printable(&m.error)
            );
        }
        let _ = write!(out, "time span: {}", duration(u128::from(self.span_ns)));
        if let Some(j) = self.largest_jump {
            let _ = write!(
                out,
                "; largest jump forward: {} at {}:{}",
                duration(u128::from(j.ns)),
                printable(&j.input),
                j.line
            );
        }
        let _ = writeln!(
            out,
            "\n{} line{} earlier than the latest time seen (judged at the latest time seen)",
            self.out_of_order,
            if self.out_of_order == 1 { "" } else { "s" }
        );
        let _ = writeln!(out, "allowed: {}  denied: {}\n", self.allowed, self.denied);
        let header = [
            "policy",
            "mode",
            "algorithm",
            "quota",
            "key",
            "matched",
            "allowed",
            "denied",
            "shadow-denied",
            "errors",
            "keys-seen",
        ];
        let rows: Vec<[String; 11]> = self
            .policies
            .iter()
            .map(|p| {
                let mut quota = format!("{}/{}", p.rate, duration(u128::from(p.period_ns)));
                if p.burst != p.rate {
                    let _ = write!(quota, " burst {}", p.burst);
                }
                if p.cost != 1 {
                    let _ = write!(quota, " cost {}", p.cost);
                }
                [
                    p.name.to_owned(),
                    p.mode.to_owned(),
                    p.algorithm.to_owned(),
                    quota,
                    p.key.to_owned(),
                    p.matched.to_string(),
                    p.allowed.to_string(),
                    p.denied.to_string(),
                    p.shadow_denied.to_string(),
                    p.errors.to_string(),
                    p.distinct_keys.to_string(),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |out: &mut String, cells: &[&str]| {
            let mut s = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i < 5 {
                    let _ = write!(s, "{cell:<w$}  ");
                } else {
                    let _ = write!(s, "{cell:>w$}  ");
                }
            }
            let _ = writeln!(out, "{}", s.trim_end());
        };
        line(&mut out, &header);
        for row in &rows {
            let cells: Vec<&str> = row.iter().map(String::as_str).collect();
            line(&mut out, &cells);
        }
        if self.policies.iter().any(|p| !p.top_denied.is_empty()) {
            out.push_str("\ntop denied keys:\n");
            for p in &self.policies {
                for k in &p.top_denied {
                    let key = if k.key.is_empty() {
                        "(empty)".into()
                    } else {
                        printable(k.key)
                    };
                    let _ = writeln!(
                        out,
                        "  {:<w$}  {:>8}  {key}",
                        p.name,
                        k.denied,
                        w = widths[0]
                    );
                }
            }
        }
        out
    }
}

/// `s` safe to print on a terminal: control characters (newlines, escapes) and the
/// bidirectional overrides written as Rust escapes (`\n`, `\u{1b}`), so text from a log can
/// neither forge table rows nor drive the terminal. Everything else as is.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(unsafe_char) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::printable;

    /// Regression (review of issue 4, fault 4): keys from log content were printed raw, so a
    /// newline forged a row and an escape sequence colored the terminal.
    #[test]
    fn control_characters_in_keys_are_escaped() {
        assert_eq!(printable("10.0.0.1"), "10.0.0.1");
        assert_eq!(printable("é \\ \""), "é \\ \"");
        assert_eq!(printable("a\n  per-ip  999  b"), "a\\n  per-ip  999  b");
        assert_eq!(printable("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(printable("x\u{202e}y\r\t"), "x\\u{202e}y\\r\\t");
    }
}
