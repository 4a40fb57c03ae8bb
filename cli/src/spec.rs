//! Parsing the command line's quota notation: `<RATE>/<PERIOD>`, periods such as `250ms`,
//! `90s`, `1m`, `1h`, `1d` or a bare number of seconds, and bursts.
//!
//! Only syntax is checked here (whole numbers, known units, no overflow). Whether the numbers
//! make a valid quota (rate at least 1, period at most 365 days, ...) is decided by
//! [`nanolimit::Quota`] itself, so the command and the library can never disagree.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A quota as written on the command line, before validation: `rate` per `period`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaSpec {
    /// Admissions per period.
    pub rate: u64,
    /// The period, exactly as parsed.
    pub period: Duration,
    /// The whole quota as written (for messages).
    pub text: String,
}

/// Why a piece of the quota notation could not be read. One variant per distinct cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpecError {
    /// No `/` between the rate and the period.
    MissingSlash(String),
    /// The rate is empty or not a whole number.
    BadRate(String),
    /// The rate does not fit in 64 bits.
    RateOverflow(String),
    /// The period is empty.
    EmptyPeriod,
    /// The period has no number before its unit (`s`, `ms`).
    PeriodWithoutNumber(String),
    /// The period's number is not a whole number (`1.5s`, `-3s`).
    BadPeriodNumber(String),
    /// The period's unit is not one of the known ones.
    UnknownUnit {
        /// The whole period as written.
        period: String,
        /// The unit as written.
        unit: String,
    },
    /// The period is too long to represent (it is certainly longer than 365 days).
    PeriodOverflow(String),
    /// The burst is empty or not a whole number.
    BadBurst(String),
    /// The burst does not fit in 64 bits.
    BurstOverflow(String),
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingSlash(s) => write!(
                f,
                "'{s}' is not of the form <RATE>/<PERIOD> (for example 100/1m)"
            ),
            Self::BadRate(s) if s.is_empty() => f.write_str("the rate is missing before '/'"),
            Self::BadRate(s) => write!(f, "rate '{s}' is not a whole number"),
            Self::RateOverflow(s) => write!(
                f,
                "rate '{s}' is too large: at most one per nanosecond (10^9 per second)"
            ),
            Self::EmptyPeriod => f.write_str("the period is missing after '/'"),
            Self::PeriodWithoutNumber(s) => {
                write!(f, "period '{s}' has no number before its unit (write 1{s})")
            }
            Self::BadPeriodNumber(s) => write!(
                f,
                "period '{s}' must be a whole number followed by a unit (ns, us, ms, s, m, h or d)"
            ),
            Self::UnknownUnit { period, unit } => write!(
                f,
                "period '{period}' has an unknown unit '{unit}' (use ns, us, ms, s, m, h or d)"
            ),
            Self::PeriodOverflow(s) => {
                write!(f, "period '{s}' is too long: at most 365 days")
            }
            Self::BadBurst(s) if s.is_empty() => f.write_str("the burst is empty"),
            Self::BadBurst(s) => write!(f, "burst '{s}' is not a whole number"),
            Self::BurstOverflow(s) => write!(f, "burst '{s}' is too large: at most 2^56"),
        }
    }
}

impl std::error::Error for SpecError {}

/// Nanoseconds in one unit of each accepted suffix. A bare number means seconds.
const UNITS: &[(&str, u64)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3_600 * 1_000_000_000),
    ("d", 86_400 * 1_000_000_000),
];

/// How a whole number failed to parse.
enum NumberError {
    NotANumber,
    Overflow,
}

/// A non-empty run of ASCII digits as `u64` (no sign, no spaces, no `_`).
fn whole_number(s: &str) -> Result<u64, NumberError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NumberError::NotANumber);
    }
    // Only digits remain, so the one way left to fail is overflow.
    u64::from_str(s).map_err(|_| NumberError::Overflow)
}

/// A period: a whole number followed by `ns`, `us`, `ms`, `s`, `m`, `h` or `d`, or a bare
/// whole number of seconds. Zero is accepted here (the quota rejects it, with its own reason).
pub fn parse_period(s: &str) -> Result<Duration, SpecError> {
    if s.is_empty() {
        return Err(SpecError::EmptyPeriod);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let scale = if unit.is_empty() {
        1_000_000_000
    } else if let Some(&(_, scale)) = UNITS.iter().find(|(name, _)| *name == unit) {
        scale
    } else if digits.is_empty() || !unit.starts_with(char::is_alphabetic) {
        // `abc`, `1.5s`, `-3s`, `1_000s`, `3 s`: not a whole number followed by a unit.
        return Err(SpecError::BadPeriodNumber(s.to_owned()));
    } else {
        return Err(SpecError::UnknownUnit {
            period: s.to_owned(),
            unit: unit.to_owned(),
        });
    };
    if digits.is_empty() {
        return Err(SpecError::PeriodWithoutNumber(s.to_owned()));
    }
    let count = match whole_number(digits) {
        Ok(n) => n,
        Err(NumberError::NotANumber) => return Err(SpecError::BadPeriodNumber(s.to_owned())),
        Err(NumberError::Overflow) => return Err(SpecError::PeriodOverflow(s.to_owned())),
    };
    count
        .checked_mul(scale)
        .map(Duration::from_nanos)
        .ok_or_else(|| SpecError::PeriodOverflow(s.to_owned()))
}

/// `<RATE>/<PERIOD>`, for example `100/1m`, `3/1s`, `10/90` (90 seconds).
pub fn parse_quota_spec(s: &str) -> Result<QuotaSpec, SpecError> {
    let Some((rate, period)) = s.split_once('/') else {
        return Err(SpecError::MissingSlash(s.to_owned()));
    };
    let rate = match whole_number(rate) {
        Ok(n) => n,
        Err(NumberError::NotANumber) => return Err(SpecError::BadRate(rate.to_owned())),
        Err(NumberError::Overflow) => return Err(SpecError::RateOverflow(rate.to_owned())),
    };
    Ok(QuotaSpec {
        rate,
        period: parse_period(period)?,
        text: s.to_owned(),
    })
}

/// A burst: a whole number (0 is accepted here; the quota rejects it with its own reason).
pub fn parse_burst(s: &str) -> Result<u64, SpecError> {
    whole_number(s).map_err(|e| match e {
        NumberError::NotANumber => SpecError::BadBurst(s.to_owned()),
        NumberError::Overflow => SpecError::BurstOverflow(s.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Duration {
        parse_period(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn every_unit_and_bare_seconds() {
        assert_eq!(ok("250ms"), Duration::from_millis(250));
        assert_eq!(ok("1s"), Duration::from_secs(1));
        assert_eq!(ok("90s"), Duration::from_secs(90));
        assert_eq!(ok("1m"), Duration::from_secs(60));
        assert_eq!(ok("1h"), Duration::from_secs(3_600));
        assert_eq!(ok("1d"), Duration::from_secs(86_400));
        assert_eq!(ok("365d"), Duration::from_secs(365 * 86_400));
        assert_eq!(ok("90"), Duration::from_secs(90));
        assert_eq!(ok("7ns"), Duration::from_nanos(7));
        assert_eq!(ok("7us"), Duration::from_micros(7));
        assert_eq!(ok("7µs"), Duration::from_micros(7));
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(ok("007s"), Duration::from_secs(7));
    }

    #[test]
    fn malformed_periods_name_their_fault() {
        assert_eq!(parse_period(""), Err(SpecError::EmptyPeriod));
        assert_eq!(
            parse_period("s"),
            Err(SpecError::PeriodWithoutNumber("s".into()))
        );
        assert_eq!(
            parse_period("5x"),
            Err(SpecError::UnknownUnit {
                period: "5x".into(),
                unit: "x".into()
            })
        );
        assert_eq!(
            parse_period("5sec"),
            Err(SpecError::UnknownUnit {
                period: "5sec".into(),
                unit: "sec".into()
            })
        );
        for bad in ["1.5s", "-3s", "+3s", " 3s", "3 s", "1_000s", "-", "abc"] {
            assert_eq!(
                parse_period(bad),
                Err(SpecError::BadPeriodNumber(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn overflowing_periods_are_errors() {
        // u64::MAX nanoseconds is fine as a number; as days it overflows.
        assert_eq!(
            parse_period("18446744073709551615ns"),
            Ok(Duration::from_nanos(u64::MAX))
        );
        for bad in [
            "18446744073709551616ns",
            "213503982335d",
            "99999999999999999999",
        ] {
            assert_eq!(
                parse_period(bad),
                Err(SpecError::PeriodOverflow(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn quota_specs() {
        assert_eq!(
            parse_quota_spec("100/1m"),
            Ok(QuotaSpec {
                rate: 100,
                period: Duration::from_secs(60),
                text: "100/1m".into()
            })
        );
        assert_eq!(
            parse_quota_spec("3/90").unwrap().period,
            Duration::from_secs(90)
        );
        assert_eq!(parse_quota_spec("0/1s").unwrap().rate, 0);
        assert_eq!(
            parse_quota_spec("abc"),
            Err(SpecError::MissingSlash("abc".into()))
        );
        assert_eq!(
            parse_quota_spec("abc/1s"),
            Err(SpecError::BadRate("abc".into()))
        );
        assert_eq!(parse_quota_spec("/1s"), Err(SpecError::BadRate("".into())));
        assert_eq!(
            parse_quota_spec("-1/1s"),
            Err(SpecError::BadRate("-1".into()))
        );
        assert_eq!(parse_quota_spec("10/"), Err(SpecError::EmptyPeriod));
        assert_eq!(
            parse_quota_spec("10/1s/2"),
            Err(SpecError::UnknownUnit {
                period: "1s/2".into(),
                unit: "s/2".into()
            })
        );
        assert_eq!(
            parse_quota_spec("18446744073709551616/1s"),
            Err(SpecError::RateOverflow("18446744073709551616".into()))
        );
    }

    #[test]
    fn bursts() {
        assert_eq!(parse_burst("20"), Ok(20));
        assert_eq!(parse_burst("0"), Ok(0));
        assert_eq!(parse_burst("x"), Err(SpecError::BadBurst("x".into())));
        assert_eq!(parse_burst(""), Err(SpecError::BadBurst("".into())));
        assert_eq!(
            parse_burst("18446744073709551616"),
            Err(SpecError::BurstOverflow("18446744073709551616".into()))
        );
    }

    #[test]
    fn messages_are_one_line_and_name_the_input() {
        let e = parse_quota_spec("10/5x").unwrap_err().to_string();
        assert_eq!(
            e,
            "period '5x' has an unknown unit 'x' (use ns, us, ms, s, m, h or d)"
        );
        assert!(!e.contains('\n'));
    }
}
