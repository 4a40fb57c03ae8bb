//! Input formats of `nanolimit replay`: Common/Combined Log Format and JSONL traces.
//!
//! A parser turns one line into a [`Record`] (time in ns since the Unix epoch, and the
//! request's fields, borrowed from the line where possible), or a [`LineError`] saying why the
//! line is malformed. Parsers never panic.

use std::borrow::Cow;
use std::fmt;

pub mod clf;
pub mod jsonl;
pub mod time;

/// The format of one input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// JSONL if the first non-blank line starts with `{`, else CLF/Combined.
    Auto,
    /// Common or Combined Log Format.
    Clf,
    /// One JSON object per line.
    Jsonl,
}

impl Format {
    /// Resolves `Auto` from the first non-blank line (`Clf` for an empty input).
    pub fn resolve(self, first_line: Option<&str>) -> Self {
        match self {
            Self::Auto => match first_line {
                Some(line) if line.trim_start().starts_with('{') => Self::Jsonl,
                _ => Self::Clf,
            },
            other => other,
        }
    }
}

/// One request read from a line.
#[derive(Debug, Default)]
pub struct Record<'a> {
    /// Nanoseconds since the Unix epoch (JSONL: since whatever origin the trace uses).
    pub t_ns: u64,
    pub ip: Cow<'a, str>,
    pub method: Cow<'a, str>,
    pub path: Cow<'a, str>,
    pub headers: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    pub cost: u64,
}

/// Why a line is malformed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineError {
    /// CLF: no `[timestamp]`.
    MissingTimestamp,
    /// CLF: the timestamp is not `dd/Mon/yyyy:HH:MM:SS +zzzz`, or is before 1970 or past
    /// 2^64 ns after it (in 2554).
    BadTimestamp,
    /// CLF: no quoted request line after the timestamp.
    MissingRequest,
    /// CLF: no client address.
    MissingClient,
    /// JSONL: not a JSON object of the expected shape (serde_json's message).
    Json(String),
    /// JSONL: `t` negative, not a number, or too large.
    BadTime,
    /// JSONL: `cost` is 0.
    ZeroCost,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingTimestamp => f.write_str("no [timestamp]"),
            Self::BadTimestamp => {
                f.write_str("timestamp is not a dd/Mon/yyyy:HH:MM:SS +zzzz time from 1970 to 2554")
            }
            Self::MissingRequest => f.write_str("no quoted request line"),
            Self::MissingClient => f.write_str("no client address"),
            Self::Json(e) => write!(f, "bad JSON: {e}"),
            Self::BadTime => f.write_str(
                "\"t\" must be a number of seconds from 0 to 18446744073.709551615 (2^64 ns), \
                 without a sign",
            ),
            Self::ZeroCost => f.write_str("\"cost\" must be >= 1"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{clf, jsonl};

    /// Damaged copies of good lines (bytes replaced, cut, duplicated; a fixed xorshift seed):
    /// every one parses or is refused, never panics.
    #[test]
    fn damaged_lines_never_panic() {
        let good = [
            r#"10.0.0.1 - - [17/May/2015:10:05:03 +0000] "GET /a HTTP/1.1" 200 5 "-" "ua \"q\"""#,
            r#"{"t": 1.5, "ip": "a", "method": "GET", "path": "/", "headers": {"k": "v"}, "cost": 2}"#,
        ];
        let alphabet = b"[]\"\\{}:/ +-.e0129aZ\xc3\xa9\n";
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut bytes = good[(next() % 2) as usize].as_bytes().to_vec();
            for _ in 0..(next() % 4) {
                let i = (next() as usize) % bytes.len().max(1);
                match next() % 3 {
                    0 if !bytes.is_empty() => {
                        bytes[i] = alphabet[(next() as usize) % alphabet.len()]
                    }
                    1 => bytes.truncate(i),
                    _ => {
                        let tail = bytes[i.min(bytes.len())..].to_vec();
                        bytes.extend_from_slice(&tail);
                    }
                }
            }
            let line = String::from_utf8_lossy(&bytes);
            let _ = clf::parse(&line, true);
            let _ = jsonl::parse(&line);
        }
    }
}
