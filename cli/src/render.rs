//! Exact, human-readable renderings of durations and fractions.
//!
//! Every rendering either is exact or says that it is not (a leading `~`), and an inexact one
//! is always accompanied by the exact value in another form.

/// Nanoseconds per microsecond, millisecond, second, minute, hour, day.
const US: u128 = 1_000;
const MS: u128 = 1_000_000;
const SEC: u128 = 1_000_000_000;
const MIN: u128 = 60 * SEC;
const HOUR: u128 = 60 * MIN;
const DAY: u128 = 24 * HOUR;

/// `n / unit` as an exact decimal with no trailing zeros (`unit` a power of ten).
fn decimal(n: u128, unit: u128) -> String {
    let (whole, frac) = (n / unit, n % unit);
    if frac == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// A whole number of nanoseconds, exactly: `250ms`, `1.5s`, `1m 30s`, `365d`,
/// `333.333334ms`, `7ns`.
pub fn duration(ns: u128) -> String {
    if ns < US {
        return format!("{ns}ns");
    }
    if ns < MS {
        return format!("{}µs", decimal(ns, US));
    }
    if ns < SEC {
        return format!("{}ms", decimal(ns, MS));
    }
    if ns < MIN {
        return format!("{}s", decimal(ns, SEC));
    }
    let mut parts = Vec::new();
    let mut rest = ns;
    for (unit, name) in [(DAY, "d"), (HOUR, "h"), (MIN, "m")] {
        if rest >= unit {
            parts.push(format!("{}{name}", rest / unit));
            rest %= unit;
        }
    }
    if rest > 0 {
        parts.push(format!("{}s", decimal(rest, SEC)));
    }
    parts.join(" ")
}

/// `num / den` nanoseconds (`den > 0`): exact when whole, else `~` and `decimals` decimals,
/// rounded to nearest, in the largest unit up to seconds that keeps a non-zero whole part.
pub fn duration_ratio(num: u128, den: u128, decimals: u32) -> String {
    if num.is_multiple_of(den) {
        return duration(num / den);
    }
    let whole = num / den;
    let (unit, name) = if whole < US {
        (1, "ns")
    } else if whole < MS {
        (US, "µs")
    } else if whole < SEC {
        (MS, "ms")
    } else {
        (SEC, "s")
    };
    format!("~{}{name}", rounded(num, den * unit, decimals))
}

/// `num / den` (`den > 0`) rounded to nearest with `decimals` decimals.
fn rounded(num: u128, den: u128, decimals: u32) -> String {
    let scale = 10u128.pow(decimals);
    let scaled = (num * scale * 2 + den) / (2 * den);
    let width = decimals as usize;
    format!("{}.{:0width$}", scaled / scale, scaled % scale)
}

/// A rate of `num / den` per second (`den > 0`): exact when whole, else `~` and six
/// significant digits.
pub fn per_second(num: u128, den: u128) -> String {
    if num.is_multiple_of(den) {
        return (num / den).to_string();
    }
    // Display only, and marked approximate: f64's 15 significant digits are plenty.
    let value = num as f64 / den as f64;
    if value >= 0.001 {
        format!("~{value:.6}")
    } else {
        format!("~{value:.5e}")
    }
}

/// `num / den` in lowest terms, as `p/q` (or `p` when whole).
pub fn fraction(num: u128, den: u128) -> String {
    let g = gcd(num, den);
    let (p, q) = (num / g, den / g);
    if q == 1 {
        p.to_string()
    } else {
        format!("{p}/{q}")
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_durations() {
        assert_eq!(duration(0), "0ns");
        assert_eq!(duration(7), "7ns");
        assert_eq!(duration(1_500), "1.5µs");
        assert_eq!(duration(250_000_000), "250ms");
        assert_eq!(duration(333_333_334), "333.333334ms");
        assert_eq!(duration(SEC), "1s");
        assert_eq!(duration(1_000_000_001), "1.000000001s");
        assert_eq!(duration(90 * SEC), "1m 30s");
        assert_eq!(duration(HOUR), "1h");
        assert_eq!(duration(DAY + 1), "1d 0.000000001s");
        assert_eq!(duration(365 * DAY), "365d");
    }

    #[test]
    fn inexact_durations_say_so() {
        assert_eq!(duration_ratio(SEC, 3, 6), "~333.333333ms");
        assert_eq!(duration_ratio(2 * SEC, 3, 6), "~666.666667ms");
        assert_eq!(duration_ratio(SEC, 4, 6), "250ms");
        assert_eq!(duration_ratio(10, 3, 6), "~3.333333ns");
        assert_eq!(duration_ratio(60 * SEC, 7, 6), "~8.571429s");
        assert_eq!(duration_ratio(SEC, 1_000_000_002, 9), "~0.999999998ns");
    }

    #[test]
    fn numbers_and_fractions() {
        assert_eq!(per_second(100, 60), "~1.666667");
        assert_eq!(per_second(120, 60), "2");
        assert_eq!(per_second(1, 31_536_000), "~3.17098e-8");
        assert_eq!(fraction(SEC, 3 * SEC), "1/3");
        assert_eq!(fraction(60 * SEC, 7 * SEC), "60/7");
        assert_eq!(fraction(6, 3), "2");
    }
}
