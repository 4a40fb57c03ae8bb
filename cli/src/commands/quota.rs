//! `nanolimit quota <RATE>/<PERIOD> [--burst N]`: validate a quota and explain what it means.

use clap::Args;
use nanolimit::{Quota, QuotaError, LIFETIME};

use crate::render::{duration, duration_ratio, fraction, per_second};
use crate::spec::{parse_burst, parse_quota_spec, QuotaSpec};
use crate::CliError;

/// Nanoseconds in a Julian year (365.25 days).
const YEAR_NS: u128 = 31_557_600 * 1_000_000_000;
const SEC_NS: u128 = 1_000_000_000;

/// Arguments of `nanolimit quota`.
#[derive(Args, Debug)]
pub struct QuotaArgs {
    /// The quota: RATE admissions per PERIOD. PERIOD is a whole number with a unit (ns, us,
    /// ms, s, m, h, d) or a bare number of seconds: 100/1m, 3/1s, 10/250ms, 5/90.
    #[arg(value_name = "RATE/PERIOD", value_parser = parse_quota_spec)]
    pub quota: QuotaSpec,

    /// Bucket capacity: how many requests may be admitted at once after an idle spell
    /// [default: the rate].
    #[arg(long, value_name = "N", value_parser = parse_burst)]
    pub burst: Option<u64>,
}

/// Builds the quota with nanolimit's own validation and describes it.
pub fn run(args: &QuotaArgs) -> Result<String, CliError> {
    let quota = build(&args.quota, args.burst)?;
    Ok(describe(&quota))
}

/// The quota, or a one-line message naming what is wrong with it.
fn build(spec: &QuotaSpec, burst: Option<u64>) -> Result<Quota, CliError> {
    let invalid = |e: QuotaError| CliError::Usage(format!("invalid quota '{}': {e}", spec.text));
    let quota = Quota::new(spec.rate, spec.period).map_err(invalid)?;
    match burst {
        None => Ok(quota),
        Some(burst) => quota
            .with_burst(burst)
            .map_err(|e| CliError::Usage(format!("invalid burst {burst}: {e}"))),
    }
}

/// Indents a continuation line under the values of [`describe`].
const CONTINUED: &str = "\n                   ";

/// What the quota means, one `label: value` line per property (with an indented
/// continuation where a value needs a remark), all from the library's own getters.
pub fn describe(quota: &Quota) -> String {
    let rate = u128::from(quota.rate());
    let period = quota.period().as_nanos();
    let burst = quota.burst();
    let ticks = u128::from(quota.ticks_per_token());
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        out.push_str(&format!("{label:<18} {value}\n"));
    };

    line(
        "rate:",
        format!(
            "{rate} per {} ({} per second)",
            duration(period),
            per_second(rate * SEC_NS, period)
        ),
    );
    line("period:", format!("{} ({period} ns)", duration(period)));
    line("burst:", burst.to_string());

    let rounded = quota.emission_interval().as_nanos();
    line(
        "emission interval:",
        if period.is_multiple_of(rate) {
            format!("{} ({rounded} ns)", duration(rounded))
        } else {
            format!(
                "{} (exactly {} s){CONTINUED}not a whole number of ns: emission_interval() \
                 rounds it down to {rounded} ns; the limiter keeps the exact fraction",
                duration_ratio(period, rate, 6),
                fraction(period, rate * SEC_NS)
            )
        },
    );

    // Computed here rather than read from `Quota::refill_time`, which saturates at
    // `Duration::MAX` (about 584 billion years) for the slowest quotas with the largest bursts.
    let refill = (u128::from(burst) * period).div_ceil(rate);
    let refill_exact = (u128::from(burst) * period).is_multiple_of(rate);
    line(
        "refill time:",
        format!(
            "{} ({refill} ns{}): burst x emission interval, from empty to full",
            duration(refill),
            if refill_exact { "" } else { ", rounded up" }
        ),
    );

    line(
        "ticks per token:",
        format!("{ticks} (one tick is 1/{ticks} of the emission interval)"),
    );
    let resolution = quota.resolution().as_nanos();
    line(
        "resolution:",
        if ticks * rate == period {
            format!(
                "{} (one tick is exactly 1 ns: decisions match the exact model)",
                duration(resolution)
            )
        } else {
            format!(
                "{} (rounded up from one tick: {} = {} ns){CONTINUED}a decision can differ \
                 from the exact model only within one tick of the moment its answer changes",
                duration(resolution),
                duration_ratio(period, rate * ticks, 9),
                fraction(period, rate * ticks)
            )
        },
    );
    line(
        "lifetime:",
        format!(
            "2^61 ns from the clock's origin ({}, about {} years)",
            duration(LIFETIME.as_nanos()),
            LIFETIME.as_nanos() / YEAR_NS
        ),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn spec(rate: u64, secs: u64) -> QuotaSpec {
        QuotaSpec {
            rate,
            period: Duration::from_secs(secs),
            text: format!("{rate}/{secs}"),
        }
    }

    #[test]
    fn library_errors_become_one_line_messages() {
        let err = |s: &QuotaSpec, b| build(s, b).unwrap_err().to_string();
        assert_eq!(
            err(&spec(0, 1), None),
            "invalid quota '0/1': rate must be at least 1 per period"
        );
        assert_eq!(
            err(&spec(1, 0), None),
            "invalid quota '1/0': period must be longer than zero"
        );
        assert_eq!(
            err(&spec(1, 1), Some(0)),
            "invalid burst 0: burst must be at least 1"
        );
        assert_eq!(
            err(&spec(1, 1), Some((1 << 56) + 1)),
            "invalid burst 72057594037927937: burst must be at most 2^56"
        );
        // The largest rate per period (10^9/s for 365 days) is its own default burst.
        assert!(build(&spec(31_536_000_000_000_000, 365 * 86_400), None).is_ok());
    }

    /// Regression (review): the refill time of the slowest quota with the largest burst was
    /// read from `Quota::refill_time`, which saturates, and printed as if exact.
    #[test]
    fn refill_time_beyond_duration_max_is_exact() {
        let quota = build(&spec(1, 365 * 86_400), Some(1 << 56)).unwrap();
        let expected = (1u128 << 56) * 365 * 86_400 * 1_000_000_000;
        let text = describe(&quota);
        assert!(text.contains(&format!("({expected} ns)")), "{text}");
    }

    #[test]
    fn whole_interval_is_exact() {
        let quota = build(&spec(100, 60), Some(20)).unwrap();
        let text = describe(&quota);
        assert!(
            text.contains("emission interval: 600ms (600000000 ns)\n"),
            "{text}"
        );
        assert!(
            text.contains("refill time:       12s (12000000000 ns): "),
            "{text}"
        );
        assert!(text.contains("one tick is exactly 1 ns"), "{text}");
        assert!(!text.contains("rounded"), "{text}");
    }

    #[test]
    fn huge_burst_on_a_slow_quota_shows_the_coarser_tick() {
        let quota = build(&spec(1, 365 * 86_400), Some(1_000_000)).unwrap();
        let text = describe(&quota);
        assert!(
            text.contains(
                "resolution:        13.677µs (rounded up from one tick: \
                 ~13.676559885µs = 31536000000000000/2305843009213 ns)\n"
            ),
            "{text}"
        );
    }
}
