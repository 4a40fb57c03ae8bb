//! Common and Combined Log Format:
//! `host ident user [dd/Mon/yyyy:HH:MM:SS +zzzz] "METHOD path proto" status size ["referer" "agent"]`.
//!
//! The host is the client address; a request line that is not `METHOD path [proto]` (such as
//! `"-"`, which servers log for connections closed before a request) gives an empty method and
//! path. Combined's referer and user agent become the `referer` and `user-agent` headers.

use std::borrow::Cow;

use super::time::{days_from_civil, days_in_month};
use super::{LineError, Record};

/// Parses one line; `headers` says whether to keep the referer and user agent.
pub fn parse(line: &str, headers: bool) -> Result<Record<'_>, LineError> {
    let line = line.trim_end_matches(['\r', '\n']);
    let host_end = line.find([' ', '\t']).unwrap_or(line.len());
    let host = &line[..host_end];
    // An IPv6 host may be logged in brackets (`[2001:db8::2]`): the address is inside.
    let ip = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) if !inner.is_empty() => inner,
        _ => host,
    };
    if ip.is_empty() {
        return Err(LineError::MissingClient);
    }
    let after_host = &line[host_end..];
    let open = after_host.find('[').ok_or(LineError::MissingTimestamp)?;
    let close = open
        + after_host[open..]
            .find(']')
            .ok_or(LineError::MissingTimestamp)?;
    let t_ns = parse_timestamp(&after_host[open + 1..close])?;
    let rest = after_host[close + 1..].trim_start();
    let (request, rest) = quoted(rest).ok_or(LineError::MissingRequest)?;
    let (method, path) = split_request(request);
    let headers = if headers {
        combined_headers(rest)
    } else {
        Vec::new()
    };
    Ok(Record {
        t_ns,
        ip: Cow::Borrowed(ip),
        method: Cow::Borrowed(method),
        path: Cow::Borrowed(path),
        headers,
        cost: 1,
    })
}

/// Combined's referer and user agent: after the status and size, two quoted fields.
fn combined_headers(rest: &str) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    let mut headers = Vec::new();
    let Some(i) = rest.find('"') else {
        return headers;
    };
    let Some((referer, after)) = quoted(&rest[i..]) else {
        return headers;
    };
    headers.push((Cow::Borrowed("referer"), Cow::Borrowed(referer)));
    if let Some((agent, _)) = after.find('"').and_then(|j| quoted(&after[j..])) {
        headers.push((Cow::Borrowed("user-agent"), Cow::Borrowed(agent)));
    }
    headers
}

/// `"...."` at the start of `s` (a backslash escapes the next byte): the inside and the rest.
fn quoted(s: &str) -> Option<(&str, &str)> {
    let body = s.strip_prefix('"')?;
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some((&body[..i], &body[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

fn split_request(request: &str) -> (&str, &str) {
    let mut parts = request.split([' ', '\t']).filter(|p| !p.is_empty());
    match (parts.next(), parts.next()) {
        (Some(method), Some(path)) => (method, path),
        _ => ("", ""),
    }
}

/// `dd/Mon/yyyy:HH:MM:SS +zzzz` as ns since the Unix epoch (UTC).
pub fn parse_timestamp(ts: &str) -> Result<u64, LineError> {
    let b = ts.as_bytes();
    if b.len() != 26 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' || b[14] != b':' {
        return Err(LineError::BadTimestamp);
    }
    if b[17] != b':' || b[20] != b' ' {
        return Err(LineError::BadTimestamp);
    }
    let num = |r: core::ops::Range<usize>| -> Result<i64, LineError> {
        let s = &b[r];
        if s.iter().all(u8::is_ascii_digit) {
            Ok(s.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
        } else {
            Err(LineError::BadTimestamp)
        }
    };
    let day = num(0..2)?;
    let month = match &b[3..6] {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return Err(LineError::BadTimestamp),
    };
    let year = num(7..11)?;
    let (h, m, s) = (num(12..14)?, num(15..17)?, num(18..20)?);
    let sign = match b[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return Err(LineError::BadTimestamp),
    };
    let (oh, om) = (num(22..24)?, num(24..26)?);
    if day < 1 || day > i64::from(days_in_month(year, month)) || h > 23 || m > 59 || s > 60 {
        return Err(LineError::BadTimestamp);
    }
    if oh > 23 || om > 59 {
        return Err(LineError::BadTimestamp);
    }
    let local = days_from_civil(year, month, day as u32) * 86_400 + h * 3600 + m * 60 + s;
    let utc = local - sign * (oh * 3600 + om * 60);
    u64::try_from(utc)
        .ok()
        .and_then(|secs| secs.checked_mul(1_000_000_000))
        .ok_or(LineError::BadTimestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Record<'_>, LineError> {
        super::parse(line, true)
    }

    #[test]
    fn combined_line() {
        let r = parse(r#"10.0.0.1 - - [17/May/2015:10:05:03 +0000] "GET /a?b HTTP/1.1" 200 5 "-" "Mozilla \"x\"""#).unwrap();
        assert_eq!(r.t_ns, (16_572 * 86_400 + 36_303) * 1_000_000_000);
        assert_eq!((&*r.ip, &*r.method, &*r.path), ("10.0.0.1", "GET", "/a?b"));
        assert_eq!(r.headers.len(), 2);
        assert_eq!(r.headers[1].1, r#"Mozilla \"x\""#);
    }

    #[test]
    fn headers_only_when_asked() {
        let line = r#"h - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "r" "ua""#;
        assert!(super::parse(line, false).unwrap().headers.is_empty());
        assert_eq!(parse(line).unwrap().headers.len(), 2);
    }

    #[test]
    fn common_line_and_offsets() {
        let r = parse(r#"h - - [17/May/2015:12:05:03 +0200] "POST /x HTTP/1.0" 200 5"#).unwrap();
        assert_eq!(r.t_ns, (16_572 * 86_400 + 36_303) * 1_000_000_000);
        assert!(r.headers.is_empty());
        let r = parse(r#"h - - [17/May/2015:12:05:03 +0200] "-" 408 0"#).unwrap();
        assert_eq!((&*r.method, &*r.path), ("", ""));
    }

    /// Regression (review of issue 4, fault 10): a bracketed IPv6 host was taken for the
    /// timestamp, and tab separators were not read.
    #[test]
    fn bracketed_ipv6_hosts_and_tabs() {
        let r = parse(r#"[2001:db8::2] - - [17/May/2015:10:05:03 +0000] "GET /v6 HTTP/1.1" 200 5"#)
            .unwrap();
        assert_eq!((&*r.ip, &*r.path), ("2001:db8::2", "/v6"));
        assert_eq!(r.t_ns, (16_572 * 86_400 + 36_303) * 1_000_000_000);
        let r =
            parse("10.0.0.9\t-\t-\t[17/May/2015:10:05:03 +0000]\t\"GET\t/tab HTTP/1.1\"\t200\t5")
                .unwrap();
        assert_eq!((&*r.ip, &*r.method, &*r.path), ("10.0.0.9", "GET", "/tab"));
        assert_eq!(
            parse("[] - - [17/May/2015:10:05:03 +0000] \"GET /\"")
                .unwrap()
                .ip,
            "[]"
        );
    }

    #[test]
    fn malformed_lines() {
        assert_eq!(parse("").unwrap_err(), LineError::MissingClient);
        assert_eq!(
            parse("h - - no time").unwrap_err(),
            LineError::MissingTimestamp
        );
        assert_eq!(
            parse("h - - [32/May/2015:10:05:03 +0000] \"GET / HTTP/1.1\"").unwrap_err(),
            LineError::BadTimestamp
        );
        assert_eq!(
            parse("h - - [17/Foo/2015:10:05:03 +0000] \"GET /\"").unwrap_err(),
            LineError::BadTimestamp
        );
        assert_eq!(
            parse("h - - [17/May/2015:10:05:03 +0000] GET /").unwrap_err(),
            LineError::MissingRequest
        );
        assert_eq!(
            parse("h - - [17/May/2015:10:05:03 +0000] \"GET / unterminated").unwrap_err(),
            LineError::MissingRequest
        );
        assert_eq!(parse("h [é]").unwrap_err(), LineError::BadTimestamp);
    }
}
