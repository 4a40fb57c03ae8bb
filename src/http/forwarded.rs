//! Parsers for the proxy headers: `Forwarded` (RFC 7239) and `X-Forwarded-For`.
//!
//! Each turns the header's lines into one entry per hop, left to right: the hop's address,
//! or `None` when the hop gave none a client could be keyed by (`unknown`, an obfuscated
//! identifier, a malformed node, an element without `for=`). A header whose syntax is broken
//! as a whole is `Err(Malformed)`. Both only parse: which entries to believe is
//! [`ClientIp`](super::ClientIp)'s job.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The header's syntax is broken (an unterminated quoted string, a pair without `=`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

/// The `for=` nodes of a `Forwarded` header, one per element, across all of its lines.
///
/// ```
/// use nanolimit::http::forwarded::parse_forwarded;
///
/// let line = br#"for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711", for=unknown"#;
/// let nodes = parse_forwarded([&line[..]]).unwrap();
/// assert_eq!(nodes, [Some("192.0.2.60".parse().unwrap()), Some("2001:db8:cafe::17".parse().unwrap()), None]);
/// assert!(parse_forwarded([&b"for=\"1.2.3.4"[..]]).is_err());
/// ```
pub fn parse_forwarded<'a, I>(lines: I) -> Result<Vec<Option<IpAddr>>, Malformed>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut nodes = Vec::new();
    for line in lines {
        parse_forwarded_line(line, &mut nodes)?;
    }
    Ok(nodes)
}

fn parse_forwarded_line(s: &[u8], nodes: &mut Vec<Option<IpAddr>>) -> Result<(), Malformed> {
    let mut i = 0;
    let mut value = Vec::new();
    loop {
        // One element: pairs separated by `;`.
        let mut node: Option<Option<IpAddr>> = None;
        let mut pairs = 0usize;
        loop {
            i = skip_ows(s, i);
            if i >= s.len() || s[i] == b',' || s[i] == b';' {
                // An empty pair (allowed by the grammar).
            } else {
                let name_start = i;
                while i < s.len() && is_tchar(s[i]) {
                    i += 1;
                }
                let name = &s[name_start..i];
                if name.is_empty() || s.get(i) != Some(&b'=') {
                    return Err(Malformed);
                }
                i += 1;
                value.clear();
                if s.get(i) == Some(&b'"') {
                    i = quoted_string(s, i + 1, &mut value)?;
                } else {
                    let start = i;
                    while i < s.len() && is_tchar(s[i]) {
                        i += 1;
                    }
                    if i == start {
                        return Err(Malformed);
                    }
                    value.extend_from_slice(&s[start..i]);
                }
                pairs += 1;
                if name.eq_ignore_ascii_case(b"for") {
                    if node.is_some() {
                        // Two `for=` in one element: which one is the hop?
                        return Err(Malformed);
                    }
                    node = Some(parse_node(&value));
                }
                i = skip_ows(s, i);
            }
            match s.get(i) {
                Some(b';') => i += 1,
                _ => break,
            }
        }
        match s.get(i) {
            None | Some(b',') => {
                // An element with no pair at all (`a, , b`) is an empty list element: skipped,
                // as list syntax allows. One with pairs but no `for=` names no address.
                if pairs > 0 {
                    nodes.push(node.unwrap_or(None));
                }
                if i >= s.len() {
                    return Ok(());
                }
                i += 1;
            }
            Some(_) => return Err(Malformed),
        }
    }
}

/// A quoted string's content, unescaped, from just after its opening quote; returns the
/// index after the closing quote.
fn quoted_string(s: &[u8], mut i: usize, out: &mut Vec<u8>) -> Result<usize, Malformed> {
    while i < s.len() {
        match s[i] {
            b'"' => return Ok(i + 1),
            b'\\' => {
                let &c = s.get(i + 1).ok_or(Malformed)?;
                if !(c == b'\t' || c >= 0x20) || c == 0x7f {
                    return Err(Malformed);
                }
                out.push(c);
                i += 2;
            }
            c if c == b'\t' || (c >= 0x20 && c != 0x7f) => {
                out.push(c);
                i += 1;
            }
            _ => return Err(Malformed),
        }
    }
    Err(Malformed)
}

/// A node (`nodename [":" node-port]`): its address, or `None` for `unknown`, obfuscated
/// identifiers (`_hidden`) and anything that is not a well-formed address.
fn parse_node(v: &[u8]) -> Option<IpAddr> {
    let text = core::str::from_utf8(v).ok()?;
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(valid_port)) {
            return None;
        }
        return inside.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let (host, port) = match text.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (text, None),
    };
    if port.is_some_and(|p| !valid_port(p)) {
        return None;
    }
    // `unknown` and `_obfuscated` fail here, as they should.
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// `node-port`: 1-5 digits, or an obfuscated port (`_` and at least one of letters, digits,
/// `.`, `_`, `-`).
fn valid_port(p: &str) -> bool {
    let b = p.as_bytes();
    match b.first() {
        Some(b'_') => {
            b.len() > 1
                && b[1..]
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        }
        Some(_) => b.len() <= 5 && b.iter().all(u8::is_ascii_digit),
        None => false,
    }
}

/// The entries of an `X-Forwarded-For` header, across all of its lines: bare IPv4 or IPv6
/// addresses, optionally with a port (`1.2.3.4:80`, `[2001:db8::1]:80`); `None` for anything
/// else, including an empty entry.
///
/// ```
/// use nanolimit::http::forwarded::parse_x_forwarded_for;
///
/// let nodes = parse_x_forwarded_for([&b"203.0.113.9, 2001:db8::1,[::1]:80 , junk"[..]]);
/// assert_eq!(nodes, [
///     Some("203.0.113.9".parse().unwrap()),
///     Some("2001:db8::1".parse().unwrap()),
///     Some("::1".parse().unwrap()),
///     None,
/// ]);
/// ```
pub fn parse_x_forwarded_for<'a, I>(lines: I) -> Vec<Option<IpAddr>>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut nodes = Vec::new();
    for line in lines {
        for entry in line.split(|&b| b == b',') {
            let start = skip_ows(entry, 0);
            let mut end = entry.len();
            while end > start && matches!(entry[end - 1], b' ' | b'\t') {
                end -= 1;
            }
            nodes.push(parse_xff_entry(&entry[start..end]));
        }
    }
    nodes
}

fn parse_xff_entry(v: &[u8]) -> Option<IpAddr> {
    let text = core::str::from_utf8(v).ok()?;
    if text.starts_with('[') {
        return parse_node(v);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    // `a.b.c.d:port` (a bare IPv6 address has more than one colon and parsed above).
    let (host, port) = text.split_once(':')?;
    if !port.is_empty() && port.len() <= 5 && port.bytes().all(|c| c.is_ascii_digit()) {
        host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    } else {
        None
    }
}

fn skip_ows(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && matches!(s[i], b' ' | b'\t') {
        i += 1;
    }
    i
}

/// RFC 9110 `tchar`.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn fwd(s: &str) -> Result<Vec<Option<IpAddr>>, Malformed> {
        parse_forwarded([s.as_bytes()])
    }

    #[test]
    fn forwarded_grammar() {
        assert_eq!(fwd("for=1.2.3.4"), Ok(vec![ip("1.2.3.4")]));
        assert_eq!(fwd("FOR=\"1.2.3.4:8080\""), Ok(vec![ip("1.2.3.4")]));
        assert_eq!(
            fwd(r#"for="[2001:db8::1]:4711";proto=https, for=10.0.0.1;by=_lb"#),
            Ok(vec![ip("2001:db8::1"), ip("10.0.0.1")])
        );
        // A comma inside a quoted string does not split elements.
        assert_eq!(
            fwd(r#"by="a,b";for=1.1.1.1, for=2.2.2.2"#),
            Ok(vec![ip("1.1.1.1"), ip("2.2.2.2")])
        );
        // Escapes inside quotes.
        assert_eq!(fwd(r#"for="1.2.\3.4""#), Ok(vec![ip("1.2.3.4")]));
        // Empty pairs and empty elements.
        assert_eq!(fwd(";for=1.2.3.4;, ,"), Ok(vec![ip("1.2.3.4")]));
        // Several lines are one list.
        assert_eq!(
            parse_forwarded([&b"for=1.1.1.1"[..], b"for=2.2.2.2"]),
            Ok(vec![ip("1.1.1.1"), ip("2.2.2.2")])
        );
    }

    /// Fault pinned: obfuscated identifiers, `unknown`, elements without `for=` and
    /// addresses in the wrong form must name no address (the caller then falls back to the
    /// peer), never be read as one.
    #[test]
    fn forwarded_nodes_without_an_address() {
        assert_eq!(
            fwd("for=unknown, for=_hidden, for=\"_x:_p\", proto=http"),
            Ok(vec![None, None, None, None])
        );
        // IPv6 must be bracketed; a bracketed address with a bad port is not an address.
        assert_eq!(
            fwd(r#"for="2001:db8::1", for="[::1]:123456", for="[::1]x""#),
            Ok(vec![None, None, None])
        );
        assert_eq!(fwd(r#"for="[1.2.3.4]""#), Ok(vec![None]));
        assert_eq!(fwd(r#"for="1.2.3.4:""#), Ok(vec![None]));
    }

    /// Fault pinned: a malformed header was partly believed; it must be refused whole.
    #[test]
    fn malformed_forwarded() {
        for bad in [
            "for=\"1.2.3.4",           // unterminated quote
            "for",                     // no `=`
            "for=",                    // no value
            "=1.2.3.4",                // no name
            "for=[::1]",               // `[` is not a token character: must be quoted
            "for=1.2.3.4 for=5.6.7.8", // two pairs without `;`
            "for=1.1.1.1;for=2.2.2.2", // two `for` in one element
            "for=\"a\\\"",             // escape eats the closing quote
            "for=\"\u{1}\"",           // control character in a quoted string
        ] {
            assert_eq!(fwd(bad), Err(Malformed), "{bad:?}");
        }
    }

    /// Fault pinned (found by the `client_key` fuzz target): a bare `_` was taken as an
    /// obfuscated port, so `for="203.0.113.9:_"` named an address although RFC 7239's
    /// `obfport` is `"_" 1*(ALPHA / DIGIT / "." / "_" / "-")`: a malformed node must name none.
    #[test]
    fn bare_underscore_is_not_an_obfuscated_port() {
        assert_eq!(
            fwd(r#"for="203.0.113.9:_", for="[2001:db8::1]:_", for="1.2.3.4:_p""#),
            Ok(vec![None, None, ip("1.2.3.4")])
        );
        assert_eq!(
            parse_x_forwarded_for([&b"[2001:db8::1]:_, [2001:db8::1]:_x"[..]]),
            [None, ip("2001:db8::1")]
        );
    }

    #[test]
    fn x_forwarded_for_entries() {
        let p = |s: &str| parse_x_forwarded_for([s.as_bytes()]);
        assert_eq!(p("1.2.3.4"), [ip("1.2.3.4")]);
        assert_eq!(p(" 1.2.3.4:80 ,\t::1 "), [ip("1.2.3.4"), ip("::1")]);
        assert_eq!(p("[2001:db8::1]:443"), [ip("2001:db8::1")]);
        assert_eq!(p(""), [None]);
        assert_eq!(p("1.2.3.4,,5.6.7.8"), [ip("1.2.3.4"), None, ip("5.6.7.8")]);
        assert_eq!(p("unknown, 1.2.3.4:x, 1.2.3"), [None, None, None]);
        assert_eq!(parse_x_forwarded_for([&b"\xff1.2.3.4"[..]]), [None]);
    }
}
