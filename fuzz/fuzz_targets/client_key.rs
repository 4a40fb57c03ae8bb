//! Arbitrary `X-Forwarded-For` and `Forwarded` (RFC 7239) lines, peer addresses and trusted
//! proxy ranges into the client key extraction (`nanolimit::http::ClientIp`, `Cidr` and the
//! `forwarded` parsers). Never a panic; never a key taken from an entry that no trusted hop
//! vouches for; and every answer equals a plain model written here: the ranges parsed and
//! normalized, the header split into entries, the entries read from the right skipping the
//! trusted ones, and the client's address grouped into its key (IPv6 by `/64` by default).
//!
//! The input is text, one directive a line (`\n`); the first word names it, the rest of the
//! line (after one space) is its value, as raw bytes. Other lines are ignored.
//!
//! ```text
//! trust 10.0.0.0/8                      a trusted range (any text; refused ones are checked too)
//! peer 10.0.0.1                         the connection's peer (the last valid one; default: the
//!                                       first trusted range's address, else 192.0.2.1)
//! xff 6.6.6.6, 203.0.113.7              an X-Forwarded-For line (read with ProxyHeader::XForwardedFor)
//! forwarded for=6.6.6.6;proto=https     a Forwarded line (read with ProxyHeader::Forwarded)
//! group6 48                             the IPv6 grouping prefix (default 64); group4 likewise (32)
//! ```

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::header::FORWARDED;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use nanolimit::http::forwarded::{parse_forwarded, parse_x_forwarded_for};
use nanolimit::http::{
    AddrSource, Cidr, CidrError, ClientAddr, ClientIp, ProxyHeader, X_FORWARDED_FOR,
};

/// An address as the model sees it: IPv4 as 32 bits, IPv6 as 128.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Addr {
    V4(u32),
    V6(u128),
}

impl Addr {
    /// The address as written, IPv4-mapped IPv6 still IPv6.
    fn raw(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Self::V4(u32::from(a)),
            IpAddr::V6(a) => Self::V6(u128::from(a)),
        }
    }

    /// The client the address names: `::ffff:a.b.c.d` (80 zero bits, 16 one bits, then the
    /// IPv4 address) is `a.b.c.d`.
    fn plain(ip: IpAddr) -> Self {
        match Self::raw(ip) {
            Self::V6(bits) if bits >> 32 == 0xffff => Self::V4(bits as u32),
            a => a,
        }
    }

    fn ip(self) -> IpAddr {
        match self {
            Self::V4(b) => IpAddr::V4(Ipv4Addr::from(b)),
            Self::V6(b) => IpAddr::V6(Ipv6Addr::from(b)),
        }
    }

    fn width(self) -> u8 {
        match self {
            Self::V4(_) => 32,
            Self::V6(_) => 128,
        }
    }

    /// The first `prefix` bits (at most the width), the rest zero.
    fn masked(self, prefix: u8) -> Self {
        // Shifting out the whole width is `None`: nothing kept.
        let dropped = u32::from(self.width() - prefix);
        match self {
            Self::V4(b) => Self::V4(b.checked_shr(dropped).map_or(0, |n| n << dropped)),
            Self::V6(b) => Self::V6(b.checked_shr(dropped).map_or(0, |n| n << dropped)),
        }
    }
}

/// A trusted range of the model: the network's bits and its length.
#[derive(Clone, Copy, Debug)]
struct Range {
    net: Addr,
    prefix: u8,
}

impl Range {
    fn contains(self, a: Addr) -> bool {
        a.width() == self.net.width() && a.masked(self.prefix) == self.net
    }
}

fn trusted(ranges: &[Range], a: Addr) -> bool {
    ranges.iter().any(|r| r.contains(a))
}

/// `Cidr`'s documented parsing: surrounding whitespace ignored; `addr` alone is one host;
/// `addr/prefix` with a prefix no longer than the address as given; an IPv4-mapped network of
/// at least 96 bits is the IPv4 network it maps; bits set past the prefix are refused.
fn model_cidr(text: &str) -> Result<Range, CidrError> {
    let s = text.trim();
    let (addr_text, prefix_text) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ip: IpAddr = addr_text
        .parse()
        .map_err(|_| CidrError::InvalidAddress(addr_text.to_owned()))?;
    let Some(prefix_text) = prefix_text else {
        let net = Addr::plain(ip);
        return Ok(Range {
            net,
            prefix: net.width(),
        });
    };
    let prefix: u8 = prefix_text
        .parse()
        .map_err(|_| CidrError::InvalidPrefix(prefix_text.to_owned()))?;
    let given = Addr::raw(ip);
    if prefix > given.width() {
        return Err(CidrError::PrefixTooLong {
            prefix,
            max: given.width(),
        });
    }
    let (addr, prefix) = match (given, Addr::plain(ip)) {
        (Addr::V6(_), v4 @ Addr::V4(_)) if prefix >= 96 => (v4, prefix - 96),
        _ => (given, prefix),
    };
    let net = addr.masked(prefix);
    if net != addr {
        return Err(CidrError::HostBitsSet {
            network: format!("{}/{prefix}", net.ip()),
        });
    }
    Ok(Range { net, prefix })
}

/// RFC 7239 `node-port`: `1*5DIGIT`, or `"_" 1*(ALPHA / DIGIT / "." / "_" / "-")`.
fn port_ok(p: &str) -> bool {
    match p.strip_prefix('_') {
        Some(obf) => {
            !obf.is_empty()
                && obf
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
        }
        None => (1..=5).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_digit()),
    }
}

/// RFC 7239 `node`: `IPv4address [":" node-port]` or `"[" IPv6address "]" [":" node-port]`.
/// `unknown`, obfuscated names (`_hidden`) and anything else name no address.
fn model_node(v: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(v).ok().filter(|t| t.is_ascii())?;
    if let Some(rest) = text.strip_prefix('[') {
        let close = rest.find(']')?;
        let after = &rest[close + 1..];
        if !after.is_empty() && !after.strip_prefix(':').is_some_and(port_ok) {
            return None;
        }
        return rest[..close].parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let host = match text.find(':') {
        Some(at) if !port_ok(&text[at + 1..]) => return None,
        Some(at) => &text[..at],
        None => text,
    };
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// One `X-Forwarded-For` entry (spaces and tabs around it dropped): an address, `a.b.c.d`
/// with a `1*5DIGIT` port, or a bracketed IPv6 address with an optional port.
fn model_xff_entry(v: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(v).ok()?;
    if text.starts_with('[') {
        return model_node(v);
    }
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    let (host, port) = text.split_once(':')?;
    let digits = (1..=5).contains(&port.len()) && port.bytes().all(|c| c.is_ascii_digit());
    digits.then(|| host.parse().ok().map(IpAddr::V4)).flatten()
}

fn model_xff(lines: &[&[u8]]) -> Vec<Option<IpAddr>> {
    let ows = |c: &u8| matches!(c, b' ' | b'\t');
    let mut entries = Vec::new();
    for line in lines {
        for entry in line.split(|&c| c == b',') {
            let from = entry.iter().position(|c| !ows(c)).unwrap_or(entry.len());
            let to = entry.iter().rposition(|c| !ows(c)).map_or(from, |i| i + 1);
            entries.push(model_xff_entry(&entry[from..to]));
        }
    }
    entries
}

/// A lexical unit of a `Forwarded` line.
#[derive(Debug, PartialEq, Eq)]
enum Tok {
    Ows,
    Token(Vec<u8>),
    Quoted(Vec<u8>),
    Eq,
    Semi,
    Comma,
}

/// RFC 9110 `tchar`.
fn tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// `qdtext` and the character of a `quoted-pair`: HTAB, SP, visible ASCII, `obs-text`.
fn quotable(c: u8) -> bool {
    c == b'\t' || (c >= 0x20 && c != 0x7f)
}

/// The line's units, or `None` for a byte no rule allows or a broken quoted string.
fn lex(line: &[u8]) -> Option<Vec<Tok>> {
    let mut toks = Vec::new();
    let mut bytes = line.iter().copied().peekable();
    while let Some(c) = bytes.next() {
        toks.push(match c {
            b' ' | b'\t' => Tok::Ows,
            b'=' => Tok::Eq,
            b';' => Tok::Semi,
            b',' => Tok::Comma,
            b'"' => {
                let mut text = Vec::new();
                loop {
                    match bytes.next()? {
                        b'"' => break,
                        b'\\' => text.push(bytes.next().filter(|&c| quotable(c))?),
                        c if quotable(c) => text.push(c),
                        _ => return None,
                    }
                }
                Tok::Quoted(text)
            }
            c if tchar(c) => {
                let mut word = vec![c];
                while let Some(c) = bytes.next_if(|&c| tchar(c)) {
                    word.push(c);
                }
                Tok::Token(word)
            }
            _ => return None,
        });
    }
    Some(toks)
}

/// `Forwarded = 1#forwarded-element`, `forwarded-element = [pair] *(";" [pair])`,
/// `pair = token "=" value`, spaces allowed around pairs; all lines are one list. Per element:
/// its `for=` node, or `None` without one; empty elements are skipped; two `for=` in one
/// element or any syntax error refuse the whole header.
fn model_forwarded(lines: &[&[u8]]) -> Result<Vec<Option<IpAddr>>, ()> {
    let mut nodes = Vec::new();
    for line in lines {
        let toks = lex(line).ok_or(())?;
        for element in toks.split(|t| *t == Tok::Comma) {
            let mut pairs = 0;
            let mut fors = Vec::new();
            for pair in element.split(|t| *t == Tok::Semi) {
                let from = pair
                    .iter()
                    .position(|t| *t != Tok::Ows)
                    .unwrap_or(pair.len());
                let to = pair
                    .iter()
                    .rposition(|t| *t != Tok::Ows)
                    .map_or(from, |i| i + 1);
                match &pair[from..to] {
                    [] => {}
                    [Tok::Token(name), Tok::Eq, Tok::Token(value) | Tok::Quoted(value)] => {
                        pairs += 1;
                        if name.eq_ignore_ascii_case(b"for") {
                            fors.push(model_node(value));
                        }
                    }
                    _ => return Err(()),
                }
            }
            match fors[..] {
                _ if pairs == 0 => {}
                [] => nodes.push(None),
                [node] => nodes.push(node),
                _ => return Err(()),
            }
        }
    }
    Ok(nodes)
}

/// The documented rule: with no trusted range, or an untrusted peer, the peer. Otherwise the
/// entries from the right: a trusted one is skipped, the first untrusted one is the client,
/// one that names no address gives the peer; all trusted, the leftmost. A refused (or
/// missing) header gives the peer.
fn model_resolve(
    ranges: &[Range],
    peer: IpAddr,
    entries: &Result<Vec<Option<IpAddr>>, ()>,
) -> (Addr, AddrSource) {
    let peer = (Addr::plain(peer), AddrSource::Peer);
    if !trusted(ranges, peer.0) {
        return peer;
    }
    let Ok(entries) = entries else {
        return peer;
    };
    let mut leftmost = peer;
    for entry in entries.iter().rev() {
        let Some(ip) = entry else {
            return peer;
        };
        let a = Addr::plain(*ip);
        if !trusted(ranges, a) {
            return (a, AddrSource::Header);
        }
        leftmost = (a, AddrSource::Header);
    }
    leftmost
}

/// The property itself, whatever the model says: the answer is the peer, or an entry of the
/// header to the right of which every entry, and the peer, is a trusted proxy.
fn assert_vouched(
    ranges: &[Range],
    peer: IpAddr,
    entries: &Result<Vec<Option<IpAddr>>, ()>,
    got: ClientAddr,
) {
    if got.source() == AddrSource::Peer {
        assert_eq!(
            Addr::plain(got.ip()),
            Addr::plain(peer),
            "the peer's address"
        );
        return;
    }
    assert!(
        trusted(ranges, Addr::plain(peer)),
        "a header entry believed from the untrusted peer {peer}"
    );
    let entries = entries
        .as_ref()
        .expect("a header entry taken from a header that does not parse");
    let client = Addr::plain(got.ip());
    let vouched = (0..entries.len()).any(|k| {
        entries[k].map(Addr::plain) == Some(client)
            && entries[k + 1..]
                .iter()
                .all(|e| e.is_some_and(|ip| trusted(ranges, Addr::plain(ip))))
    });
    assert!(
        vouched,
        "{} was not vouched for by trusted hops: {entries:?}",
        got.ip()
    );
}

/// The key of a client's group: the address alone at full length, else `network/prefix`.
fn model_key(a: Addr, ipv4_prefix: u8, ipv6_prefix: u8) -> String {
    let prefix = match a {
        Addr::V4(_) => ipv4_prefix,
        Addr::V6(_) => ipv6_prefix,
    };
    let net = a.masked(prefix).ip();
    if prefix == a.width() {
        net.to_string()
    } else {
        format!("{net}/{prefix}")
    }
}

#[derive(Default)]
struct Input<'a> {
    trust: Vec<String>,
    peer: Option<IpAddr>,
    xff: Vec<&'a [u8]>,
    forwarded: Vec<&'a [u8]>,
    group4: Option<String>,
    group6: Option<String>,
}

impl<'a> Input<'a> {
    fn parse(data: &'a [u8]) -> Self {
        let mut input = Self::default();
        for line in data.split(|&c| c == b'\n') {
            let (word, value) = match line.iter().position(|&c| c == b' ') {
                Some(at) => (&line[..at], &line[at + 1..]),
                None => (line, &b""[..]),
            };
            let text = || String::from_utf8_lossy(value).into_owned();
            match word {
                b"trust" => input.trust.push(text()),
                b"peer" => {
                    if let Ok(ip) = text().parse() {
                        input.peer = Some(ip);
                    }
                }
                b"xff" => input.xff.push(value),
                b"forwarded" => input.forwarded.push(value),
                b"group4" => input.group4 = Some(text()),
                b"group6" => input.group6 = Some(text()),
                _ => {}
            }
        }
        input
    }
}

fuzz_target!(|data: &[u8]| {
    let input = Input::parse(data);

    // The trusted ranges: each text through `Cidr`'s parser and the model's.
    let mut ranges = Vec::new();
    let mut clients = ClientIp::new();
    let mut first_error = None;
    for text in &input.trust {
        let got = text.parse::<Cidr>();
        match (&got, model_cidr(text)) {
            (Ok(cidr), Ok(range)) => {
                assert_eq!((cidr.addr(), cidr.prefix()), (range.net.ip(), range.prefix));
                assert_eq!(cidr.to_string().parse::<Cidr>().as_ref(), Ok(cidr));
                ranges.push(range);
                clients = clients.trust(*cidr);
            }
            (Err(e), Err(want)) => {
                assert_eq!(*e, want, "{text:?}");
                assert!(!e.to_string().is_empty());
                first_error.get_or_insert(want);
            }
            (got, want) => panic!("{text:?}: {got:?}, the model says {want:?}"),
        }
    }
    assert_eq!(
        ClientIp::new().trust_proxies(&input.trust).err(),
        first_error,
        "trust_proxies fails on the first bad range"
    );

    // The grouping prefixes: a number is taken or refused by `ClientIp` as it fits.
    let (mut ipv4_prefix, mut ipv6_prefix) = (32, 64);
    if let Some(Ok(p)) = input.group4.as_deref().map(str::parse::<u8>) {
        match clients.clone().ipv4_prefix(p) {
            Ok(c) if p <= 32 => (clients, ipv4_prefix) = (c, p),
            Err(CidrError::PrefixTooLong { prefix, max: 32 }) if p > 32 && prefix == p => {}
            r => panic!("ipv4_prefix({p}): {r:?}"),
        }
    }
    if let Some(Ok(p)) = input.group6.as_deref().map(str::parse::<u8>) {
        match clients.clone().ipv6_prefix(p) {
            Ok(c) if p <= 128 => (clients, ipv6_prefix) = (c, p),
            Err(CidrError::PrefixTooLong { prefix, max: 128 }) if p > 128 && prefix == p => {}
            r => panic!("ipv6_prefix({p}): {r:?}"),
        }
    }

    let peer = input.peer.unwrap_or_else(|| {
        ranges
            .first()
            .map_or(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), |r| r.net.ip())
    });
    assert_eq!(
        clients.is_trusted(peer),
        trusted(&ranges, Addr::plain(peer))
    );

    // Both headers in one map (when every line is a valid header value): each configuration
    // reads only its own.
    let mut map = Some(HeaderMap::new());
    for (name, lines) in [(X_FORWARDED_FOR, &input.xff), (FORWARDED, &input.forwarded)] {
        for line in lines.iter() {
            match (HeaderValue::from_bytes(line), &mut map) {
                (Ok(v), Some(m)) => {
                    m.append(name.clone(), v);
                }
                _ => map = None,
            }
        }
    }

    for header in [ProxyHeader::XForwardedFor, ProxyHeader::Forwarded] {
        let clients = clients.clone().header(header);
        let (lines, entries) = match header {
            ProxyHeader::XForwardedFor => {
                let entries = model_xff(&input.xff);
                assert_eq!(parse_x_forwarded_for(input.xff.iter().copied()), entries);
                (&input.xff, Ok(entries))
            }
            ProxyHeader::Forwarded => {
                let entries = model_forwarded(&input.forwarded);
                assert_eq!(
                    parse_forwarded(input.forwarded.iter().copied()).map_err(|_| ()),
                    entries,
                    "{:?}",
                    input
                        .forwarded
                        .iter()
                        .map(|l| String::from_utf8_lossy(l))
                        .collect::<Vec<_>>()
                );
                (&input.forwarded, entries)
            }
        };
        for entry in entries.iter().flatten().flatten() {
            assert_eq!(
                clients.is_trusted(*entry),
                trusted(&ranges, Addr::plain(*entry))
            );
        }

        let got = clients.resolve_lines(peer, lines.iter().copied());
        assert_vouched(&ranges, peer, &entries, got);
        let (want, source) = model_resolve(&ranges, peer, &entries);
        assert_eq!((got.ip(), got.source()), (want.ip(), source));
        if let Some(map) = &map {
            assert_eq!(clients.resolve(peer, map), got, "through a HeaderMap");
        }

        // The key: the client's group.
        let key = clients.key(got.ip());
        assert_eq!(key, model_key(want, ipv4_prefix, ipv6_prefix));
        let mut reused = String::from("stale");
        clients.write_key(got.ip(), &mut reused);
        assert_eq!(reused, key);
        let (net, prefix) = clients.group(got.ip());
        if let Addr::V6(bits) = want {
            // An IPv6 client is keyed by its prefix, so that it cannot rotate its addresses.
            assert_eq!(prefix, ipv6_prefix);
            let IpAddr::V6(net6) = net else {
                panic!("the group of {want:?} is {net}");
            };
            let shift = 128 - u32::from(prefix);
            assert_eq!(
                u128::from(net6).checked_shr(shift),
                bits.checked_shr(shift),
                "{want:?} in {net}/{prefix}"
            );
            assert!(prefix == 128 || key == format!("{net6}/{prefix}"));
        } else {
            assert_eq!(prefix, ipv4_prefix);
        }
    }
});
