//! JSONL traces: one object per line,
//! `{"t": <seconds, may be fractional>, "ip": "...", "method": "GET", "path": "/...",
//! "headers": {"x-api-key": "..."}, "cost": 1}`; only `t` is required.
//!
//! `t` is read from its decimal text (not through a float), so `0.1` is exactly 100 ms;
//! digits beyond nanoseconds are dropped. Other fields are ignored.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;

use super::{LineError, Record};

#[derive(Deserialize)]
struct Line<'a> {
    /// The number's own text: `serde_json::Number` would go through an f64 (53 bits), which
    /// cannot hold nanoseconds at Unix-epoch times.
    #[serde(borrow)]
    t: &'a serde_json::value::RawValue,
    #[serde(default, borrow)]
    ip: Cow<'a, str>,
    #[serde(default, borrow)]
    method: Cow<'a, str>,
    #[serde(default, borrow)]
    path: Cow<'a, str>,
    #[serde(default, borrow)]
    headers: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
    #[serde(default)]
    cost: Option<u64>,
}

/// Parses one line.
pub fn parse(line: &str) -> Result<Record<'_>, LineError> {
    // serde's derived struct also accepts a sequence of the fields in order (`[2]` as
    // `{"t": 2}`); a trace line is an object, so anything else is refused up front.
    if !line.trim_start().starts_with('{') {
        return Err(LineError::Json("expected a JSON object".into()));
    }
    let parsed: Line<'_> =
        serde_json::from_str(line).map_err(|e| LineError::Json(e.to_string()))?;
    let t_ns = seconds_to_ns(parsed.t.get()).ok_or(LineError::BadTime)?;
    let cost = match parsed.cost {
        Some(0) => return Err(LineError::ZeroCost),
        Some(c) => c,
        None => 1,
    };
    Ok(Record {
        t_ns,
        ip: parsed.ip,
        method: parsed.method,
        path: parsed.path,
        headers: parsed.headers.into_iter().collect(),
        cost,
    })
}

/// `"12"`, `"0.25"`, `"1e3"`, `"1.5e-3"` seconds as whole ns (truncated), if in range and
/// written without a minus sign (even `-0` is refused: a signed time is a mistake upstream).
pub fn seconds_to_ns(text: &str) -> Option<u64> {
    if text.starts_with('-') {
        return None;
    }
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], parse_exponent(&text[i + 1..])?),
        None => (text, 0),
    };
    let (int, frac) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, ""),
    };
    if int.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    // value = digits * 10^(exp - frac.len()) seconds = digits * 10^(exp - frac.len() + 9) ns.
    let digits = format!("{int}{frac}");
    let mut digits = digits.trim_start_matches('0');
    let mut shift = exp.saturating_sub(frac.len() as i64).saturating_add(9);
    if shift < 0 {
        // Truncating division by 10^k drops the last k digits.
        let keep = digits
            .len()
            .saturating_sub(usize::try_from(-shift).unwrap_or(usize::MAX));
        digits = &digits[..keep];
        shift = 0;
    }
    if digits.is_empty() {
        return Some(0);
    }
    // u64::MAX has 20 digits; anything longer (leading zeros are gone) is out of range.
    if digits.len() > 20 || shift > 19 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(10u64.pow(u32::try_from(shift).ok()?))
}

/// An exponent's text (`3`, `+3`, `-30`) as a number, saturated: `1e-99999999999999999999`
/// is 0 and `0e99999999999999999999` is 0, so the size of the exponent alone refuses nothing.
fn parse_exponent(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude = digits.parse::<i64>().unwrap_or(i64::MAX);
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds() {
        assert_eq!(seconds_to_ns("0"), Some(0));
        assert_eq!(seconds_to_ns("0.1"), Some(100_000_000));
        assert_eq!(seconds_to_ns("12.000000001"), Some(12_000_000_001));
        assert_eq!(seconds_to_ns("1e3"), Some(1_000_000_000_000));
        assert_eq!(seconds_to_ns("1.5e-3"), Some(1_500_000));
        assert_eq!(seconds_to_ns("1e-30"), Some(0));
        assert_eq!(seconds_to_ns("-1"), None);
        assert_eq!(seconds_to_ns("1e300"), None);
        assert_eq!(seconds_to_ns("18446744073.709551615"), Some(u64::MAX));
        assert_eq!(seconds_to_ns("18446744073.709551616"), None);
    }

    /// Regression (review of issue 4, fault 2): `t` went through an f64, so at Unix-epoch
    /// times the nanoseconds were rounded away (1700000000.999999999 read as 1700000001) and
    /// the largest time, 18446744073.709551615 s, was refused.
    #[test]
    fn t_is_read_from_its_digits_not_through_a_float() {
        let t = |line| parse(line).map(|r| r.t_ns);
        assert_eq!(
            t(r#"{"t":1700000000.999999999}"#),
            Ok(1_700_000_000_999_999_999)
        );
        assert_eq!(t(r#"{"t": 18446744073.709551615 }"#), Ok(u64::MAX));
        assert_eq!(
            t(r#"{"t":1.7000000009999999e9}"#),
            Ok(1_700_000_000_999_999_900)
        );
        assert_eq!(t(r#"{"t":"1"}"#), Err(LineError::BadTime));
        assert_eq!(t(r#"{"t":null}"#), Err(LineError::BadTime));
    }

    #[test]
    fn lines() {
        let r = parse(r#"{"t": 1.5, "ip": "a", "headers": {"X-Key": "k"}, "cost": 3}"#).unwrap();
        assert_eq!((r.t_ns, &*r.ip, r.cost), (1_500_000_000, "a", 3));
        assert_eq!(r.headers, vec![(Cow::from("X-Key"), Cow::from("k"))]);
        let r = parse(r#"{"t": 2}"#).unwrap();
        assert_eq!((r.t_ns, &*r.path, r.cost), (2_000_000_000, "", 1));
        assert_eq!(parse(r#"{"t": -1}"#).unwrap_err(), LineError::BadTime);
        assert_eq!(
            parse(r#"{"t": 1, "cost": 0}"#).unwrap_err(),
            LineError::ZeroCost
        );
        assert!(matches!(parse(r#"{"ip": "a"}"#), Err(LineError::Json(_))));
        assert!(matches!(parse("not json"), Err(LineError::Json(_))));
        assert!(parse(r#"{"t": 1, "extra": 2}"#).is_ok());
    }

    /// Regression (found by the `logs` fuzz target): `[2]` was accepted as `{"t": 2}`,
    /// because serde's derived struct also reads a sequence of its fields in order.
    #[test]
    fn an_array_is_not_a_trace_line() {
        for line in ["[2]", r#"[1, "10.0.0.1"]"#, " [2]", "2", r#""t""#] {
            assert_eq!(
                parse(line).unwrap_err(),
                LineError::Json("expected a JSON object".into()),
                "{line:?}"
            );
        }
        assert!(parse(r#" {"t": 2}"#).is_ok());
    }

    /// Regression (found by the `logs` fuzz target): an exponent beyond `i32` (`0e-3222222222222220`)
    /// or more than 40 significant digits refused a time in range.
    #[test]
    fn exponent_and_digit_count_alone_refuse_nothing() {
        assert_eq!(seconds_to_ns("0e-3222222222222220"), Some(0));
        assert_eq!(seconds_to_ns("0e3222222222222220"), Some(0));
        assert_eq!(seconds_to_ns("5e-99999999999999999999"), Some(0));
        assert_eq!(seconds_to_ns("5e99999999999999999999"), None);
        let long = format!("1.{}", "0".repeat(60) + "7");
        assert_eq!(seconds_to_ns(&long), Some(1_000_000_000));
        assert_eq!(seconds_to_ns("1e+1"), Some(10_000_000_000));
        assert_eq!(seconds_to_ns("1e"), None);
        assert_eq!(seconds_to_ns("1e+"), None);
    }

    /// Pins the rule the `logs` fuzz target first flagged (its oracle read `-0` as 0, in
    /// range): a minus sign is refused even on zero, with the same typed error as `-1`.
    #[test]
    fn negative_zero_t_is_refused() {
        assert_eq!(parse(r#"{"t": -0}"#).unwrap_err(), LineError::BadTime);
        assert_eq!(parse(r#"{"t": -0.0e5}"#).unwrap_err(), LineError::BadTime);
    }

    /// Pins the rule the `logs` fuzz target flagged next (its oracle parsed the whole line into
    /// f64-backed values and refused `1e1547`): JSON sets no range on numbers, so a field the
    /// format ignores may hold any number; only `t` and `cost` are read, and judged.
    #[test]
    fn an_ignored_field_may_hold_a_number_beyond_any_f64() {
        let r = parse(r#"{"t": 2, "extra": 1e1547, "more": -1e-400}"#).unwrap();
        assert_eq!((r.t_ns, r.cost), (2_000_000_000, 1));
        assert_eq!(parse(r#"{"t": 1e1547}"#).unwrap_err(), LineError::BadTime);
        assert!(matches!(
            parse(r#"{"t": 2, "cost": 1e1547}"#),
            Err(LineError::Json(_))
        ));
    }
}
