//! Arbitrary lines into the replay's input parsers (`nanolimit-cli`'s `logs`): the
//! Common/Combined Log Format and JSONL. Never a panic; every accepted line has a time in the
//! documented range (checked against an independent computation) and a key; every rejection
//! is a typed `LineError`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use nanolimit::policy::{KeySelector, Request};
use nanolimit_cli::logs::{clf, jsonl, Format, LineError, Record};

const NS: u64 = 1_000_000_000;

/// `dd/Mon/yyyy:HH:MM:SS +zzzz` in seconds since the epoch, by counting days year by year
/// (not the parser's civil-date formula), or `None` when the text is not a valid time at or
/// after 1970-01-01T00:00:00Z whose nanoseconds fit in a `u64`.
fn reference_timestamp(ts: &str) -> Option<u64> {
    let b = ts.as_bytes();
    if b.len() != 26 {
        return None;
    }
    let shape = b"00/Jan/0000:00:00:00 +0000";
    for (i, (&c, &s)) in b.iter().zip(shape).enumerate() {
        let ok = match s {
            b'0' => c.is_ascii_digit(),
            b'+' => c == b'+' || c == b'-',
            _ if (3..6).contains(&i) => true,
            _ => c == s,
        };
        if !ok {
            return None;
        }
    }
    let num = |from: usize, to: usize| -> i64 {
        ts[from..to]
            .bytes()
            .fold(0, |n, d| n * 10 + i64::from(d - b'0'))
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|&m| m == &ts[3..6])?;
    let (day, year) = (num(0, 2), num(7, 11));
    let (h, m, s) = (num(12, 14), num(15, 17), num(18, 20));
    let (oh, om) = (num(22, 24), num(24, 26));
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mut lengths = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if leap(year) {
        lengths[1] = 29;
    }
    if day < 1 || day > lengths[month] || h > 23 || m > 59 || s > 60 || oh > 23 || om > 59 {
        return None;
    }
    let mut days: i64 = 0;
    if year >= 1970 {
        for y in 1970..year {
            days += if leap(y) { 366 } else { 365 };
        }
    } else {
        for y in year..1970 {
            days -= if leap(y) { 366 } else { 365 };
        }
    }
    days += lengths[..month].iter().sum::<i64>() + day - 1;
    let offset = oh * 3600 + om * 60;
    let utc = days * 86_400 + h * 3600 + m * 60 + s - if b[21] == b'+' { offset } else { -offset };
    let secs = u64::try_from(utc).ok()?;
    secs.checked_mul(NS).map(|_| secs)
}

/// Every request gets a key: the `ip` selector's is the address itself; a compound one renders.
fn key_of(record: &Record<'_>) -> String {
    let headers: Vec<(&str, &str)> = record
        .headers
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect();
    let req = Request::new(&record.ip, &record.method, &record.path)
        .with_headers(&headers)
        .with_cost(record.cost);
    let mut key = String::new();
    KeySelector::parse("ip").unwrap().write_key(&req, &mut key);
    assert_eq!(key, record.ip);
    let mut all = String::new();
    KeySelector::parse("ip+method+path+header:user-agent")
        .unwrap()
        .write_key(&req, &mut all);
    assert!(all.len() >= key.len());
    key
}

fn typed(e: &LineError) {
    // Exhaustive: a new kind of rejection must be looked at here.
    match e {
        LineError::MissingTimestamp
        | LineError::BadTimestamp
        | LineError::MissingRequest
        | LineError::MissingClient
        | LineError::BadTime
        | LineError::ZeroCost => {}
        LineError::Json(message) => assert!(!message.is_empty()),
    }
    assert!(!e.to_string().is_empty());
}

fn check_clf(line: &str) {
    let with = clf::parse(line, true);
    let without = clf::parse(line, false);
    match (&with, &without) {
        (Ok(a), Ok(b)) => {
            assert!(b.headers.is_empty());
            assert_eq!(
                (a.t_ns, &a.ip, &a.method, &a.path, a.cost),
                (b.t_ns, &b.ip, &b.method, &b.path, b.cost)
            );
            assert!(a.headers.len() <= 2);
            assert_eq!(a.cost, 1);
            // The client address is one non-empty field.
            assert!(
                !a.ip.is_empty() && !a.ip.contains([' ', '\t']),
                "{:?}",
                a.ip
            );
            assert!(!key_of(a).is_empty());
            assert_eq!(a.method.is_empty(), a.path.is_empty());
            // The time is the bracketed timestamp's, whole seconds since the epoch.
            let line = line.trim_end_matches(['\r', '\n']);
            let host_end = line.find([' ', '\t']).unwrap_or(line.len());
            let rest = &line[host_end..];
            let open = rest.find('[').expect("a timestamp");
            let close = open + rest[open..].find(']').expect("a closed timestamp");
            let secs = reference_timestamp(&rest[open + 1..close]).expect("a valid timestamp");
            assert_eq!(a.t_ns, secs * NS, "{line:?}");
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b);
            typed(a);
        }
        _ => panic!("headers changed the verdict: {with:?} vs {without:?}"),
    }
}

/// A trace line as the reference reads it: `t`, and every other field skipped.
#[derive(serde::Deserialize)]
struct OnlyT {
    t: serde_json::Value,
}

fn check_jsonl(line: &str) {
    let parsed = jsonl::parse(line);
    // The reference reading of `t`: through an f64 (close, not exact). Only `t` is read into
    // a value: JSON sets no range on numbers, so another field may hold one that no f64 can
    // (`1e1547`), which the trace format ignores like the rest of that field.
    let t = serde_json::from_str::<OnlyT>(line)
        .ok()
        .and_then(|v| v.t.as_f64());
    match parsed {
        Ok(r) => {
            assert!(r.cost >= 1);
            key_of(&r);
            let t = t.expect("an accepted line has a numeric t");
            assert!(t >= 0.0, "t = {t} accepted");
            let want = t * 1e9;
            let got = r.t_ns as f64;
            assert!(
                (got - want).abs() <= want * 1e-12 + 1.0,
                "t = {t}: {got} ns"
            );
        }
        Err(e) => {
            typed(&e);
            if let (LineError::BadTime, Some(t)) = (&e, t) {
                // In range: not negative and below 2^64 ns with room for the f64's rounding.
                // A minus sign is refused even on zero (`-0`): the sign bit says which.
                assert!(
                    !(t.is_sign_positive() && t * 1e9 < 1.8e19),
                    "t = {t} is in range but refused: {line:?}"
                );
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Every line as the replay gives it (no line end, blank lines skipped), then the whole
    // input as one line: the parsers must not panic on embedded line ends either.
    for line in text.split('\n') {
        let line = line.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            continue;
        }
        let _ = Format::Auto.resolve(Some(line));
        check_clf(line);
        check_jsonl(line);
    }
    check_clf(&text);
    check_jsonl(&text);
    // Any bracketed text as a timestamp, against the reference computation.
    if let Some(ts) = text.get(..26) {
        assert_eq!(
            clf::parse_timestamp(ts).ok(),
            reference_timestamp(ts).map(|s| s * NS)
        );
    }
});
