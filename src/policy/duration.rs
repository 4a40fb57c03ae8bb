//! Periods as written in a policy file: `250ms`, `1s`, `90s`, `1m`, `1h`, `1d`.

use core::fmt;
use core::time::Duration;

/// Why a period was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeriodError {
    /// Not `<whole number><unit>` with a unit among ns, us, ms, s, m, h, d.
    Malformed(String),
    /// Zero, or too large to represent.
    OutOfRange(String),
}

impl fmt::Display for PeriodError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(t) => write!(
                f,
                "bad duration '{t}': expected a whole number and a unit (ns, us, ms, s, m, h, d), such as 250ms or 1m"
            ),
            Self::OutOfRange(t) => write!(f, "bad duration '{t}': must be above zero and at most 365d"),
        }
    }
}

impl std::error::Error for PeriodError {}

/// Parses a period: a whole number followed by `ns`, `us`, `ms`, `s`, `m`, `h` or `d`.
///
/// ```
/// use core::time::Duration;
/// use nanolimit::policy::parse_period;
///
/// assert_eq!(parse_period("250ms"), Ok(Duration::from_millis(250)));
/// assert_eq!(parse_period("1d"), Ok(Duration::from_secs(86_400)));
/// assert!(parse_period("1.5s").is_err());
/// ```
pub fn parse_period(text: &str) -> Result<Duration, PeriodError> {
    let malformed = || PeriodError::Malformed(text.to_owned());
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(malformed());
    }
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| PeriodError::OutOfRange(text.to_owned()))?;
    let unit_ns: u64 = match unit {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        _ => return Err(malformed()),
    };
    match number.checked_mul(unit_ns) {
        Some(ns) if ns > 0 && Duration::from_nanos(ns) <= crate::Quota::MAX_PERIOD => {
            Ok(Duration::from_nanos(ns))
        }
        _ => Err(PeriodError::OutOfRange(text.to_owned())),
    }
}
