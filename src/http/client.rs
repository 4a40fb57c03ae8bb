//! The client's address: the peer by default; behind trusted proxies, the first untrusted hop
//! of `Forwarded` or `X-Forwarded-For`, read from the right.

use core::fmt::Write as _;
use std::net::IpAddr;

use ::http::header::{HeaderMap, HeaderName, FORWARDED};

use super::cidr::{mask, normalize, Cidr, CidrError};
use super::forwarded::{parse_forwarded, parse_x_forwarded_for};

/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Which header the trusted proxies write. Only that one is read: a proxy that appends to
/// `X-Forwarded-For` passes a client's own `Forwarded` header through untouched, so reading
/// "whichever is present" would let the client choose its key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProxyHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (default).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

/// Where a [`ClientAddr`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrSource {
    /// The connection's peer (no trusted proxy, no usable header).
    Peer,
    /// An entry of the proxy header, vouched for by trusted proxies.
    Header,
}

/// A resolved client address (IPv4-mapped IPv6 already turned into IPv4), before grouping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr {
    ip: IpAddr,
    source: AddrSource,
}

impl ClientAddr {
    /// The address.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// Whether it is the peer's or a header's.
    pub fn source(&self) -> AddrSource {
        self.source
    }
}

/// How the client's address is found and grouped into a key.
///
/// - With no trusted proxy (the default), the client is the connection's peer; proxy headers
///   are ignored.
/// - If the peer is trusted, the configured [`ProxyHeader`] is read from right to left,
///   skipping trusted entries; the first untrusted address is the client. If every entry
///   is trusted, the leftmost one is. A missing or malformed header, or an entry that names no
///   address (`unknown`, an obfuscated identifier, garbage) before an untrusted one is found,
///   gives the peer: never a value the client could have chosen.
/// - Keys group IPv6 clients by prefix (`/64` by default), so that one host cannot dodge its
///   limit by rotating through its addresses; IPv4 clients by `/32` (each address) by default.
///
/// ```
/// use nanolimit::http::ClientIp;
/// use http::HeaderMap;
///
/// let clients = ClientIp::new().trust_proxies(["10.0.0.0/8"])?;
/// let mut headers = HeaderMap::new();
/// headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.2".parse().unwrap());
/// // From a trusted proxy: the first untrusted entry from the right.
/// assert_eq!(clients.key(clients.resolve("10.0.0.1".parse()?, &headers).ip()), "203.0.113.7");
/// // From anyone else: the header is ignored.
/// assert_eq!(clients.key(clients.resolve("198.51.100.1".parse()?, &headers).ip()), "198.51.100.1");
/// // IPv6 clients are grouped by /64.
/// assert_eq!(clients.key("2001:db8:1:2:aaaa::1".parse()?), "2001:db8:1:2::/64");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIp {
    trusted: Vec<Cidr>,
    header: ProxyHeader,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
}

impl Default for ClientIp {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientIp {
    /// The peer address, no trusted proxy, IPv6 grouped by /64.
    pub fn new() -> Self {
        Self {
            trusted: Vec::new(),
            header: ProxyHeader::XForwardedFor,
            ipv4_prefix: 32,
            ipv6_prefix: 64,
        }
    }

    /// Trusts the proxies in `range`.
    pub fn trust(mut self, range: Cidr) -> Self {
        self.trusted.push(range);
        self
    }

    /// Trusts each of `ranges` (`"10.0.0.0/8"`, `"2001:db8::1"`, ...); fails on the first
    /// that does not parse, naming it.
    pub fn trust_proxies<I, S>(mut self, ranges: I) -> Result<Self, CidrError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for r in ranges {
            self.trusted.push(r.as_ref().parse()?);
        }
        Ok(self)
    }

    /// Reads `header` from trusted proxies (default `X-Forwarded-For`).
    pub fn header(mut self, header: ProxyHeader) -> Self {
        self.header = header;
        self
    }

    /// Groups IPv6 clients by their first `prefix` bits (default 64; 128 keys each address).
    pub fn ipv6_prefix(mut self, prefix: u8) -> Result<Self, CidrError> {
        if prefix > 128 {
            return Err(CidrError::PrefixTooLong { prefix, max: 128 });
        }
        self.ipv6_prefix = prefix;
        Ok(self)
    }

    /// Groups IPv4 clients by their first `prefix` bits (default 32: each address).
    pub fn ipv4_prefix(mut self, prefix: u8) -> Result<Self, CidrError> {
        if prefix > 32 {
            return Err(CidrError::PrefixTooLong { prefix, max: 32 });
        }
        self.ipv4_prefix = prefix;
        Ok(self)
    }

    /// The trusted ranges.
    pub fn trusted(&self) -> &[Cidr] {
        &self.trusted
    }

    /// The header read from trusted proxies.
    pub fn proxy_header(&self) -> ProxyHeader {
        self.header
    }

    /// Whether `ip` is a trusted proxy.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }

    /// The client of a request from `peer` with these headers.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> ClientAddr {
        let name = match self.header {
            ProxyHeader::XForwardedFor => X_FORWARDED_FOR,
            ProxyHeader::Forwarded => FORWARDED,
        };
        self.resolve_lines(peer, headers.get_all(name).iter().map(|v| v.as_bytes()))
    }

    /// As [`resolve`](Self::resolve), from the raw lines of the configured header.
    pub fn resolve_lines<'a, I>(&self, peer: IpAddr, lines: I) -> ClientAddr
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let peer = ClientAddr {
            ip: normalize(peer),
            source: AddrSource::Peer,
        };
        if self.trusted.is_empty() || !self.is_trusted(peer.ip) {
            return peer;
        }
        let nodes = match self.header {
            ProxyHeader::XForwardedFor => parse_x_forwarded_for(lines),
            ProxyHeader::Forwarded => match parse_forwarded(lines) {
                Ok(nodes) => nodes,
                Err(_) => return peer,
            },
        };
        let mut leftmost = None;
        for node in nodes.iter().rev() {
            let Some(ip) = *node else {
                return peer;
            };
            let ip = normalize(ip);
            if !self.is_trusted(ip) {
                return ClientAddr {
                    ip,
                    source: AddrSource::Header,
                };
            }
            leftmost = Some(ip);
        }
        leftmost.map_or(peer, |ip| ClientAddr {
            ip,
            source: AddrSource::Header,
        })
    }

    /// The address's group: the network of its first `ipv4_prefix`/`ipv6_prefix` bits.
    pub fn group(&self, ip: IpAddr) -> (IpAddr, u8) {
        let ip = normalize(ip);
        let prefix = if ip.is_ipv4() {
            self.ipv4_prefix
        } else {
            self.ipv6_prefix
        };
        (mask(ip, prefix), prefix)
    }

    /// The key of `ip`'s group: the address alone for a full-length prefix, else
    /// `network/prefix`.
    pub fn key(&self, ip: IpAddr) -> String {
        let mut out = String::new();
        self.write_key(ip, &mut out);
        out
    }

    /// As [`key`](Self::key), into `out` (cleared first).
    pub fn write_key(&self, ip: IpAddr, out: &mut String) {
        out.clear();
        let (net, prefix) = self.group(ip);
        let full = if net.is_ipv4() { 32 } else { 128 };
        // Writing to a String cannot fail.
        let _ = if prefix == full {
            write!(out, "{net}")
        } else {
            write!(out, "{net}/{prefix}")
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(c: &ClientIp, peer: &str, value: &str) -> ClientAddr {
        c.resolve_lines(ip(peer), [value.as_bytes()])
    }

    fn behind(ranges: &[&str]) -> ClientIp {
        ClientIp::new().trust_proxies(ranges).unwrap()
    }

    /// Fault pinned: a client that is not a trusted proxy wrote `X-Forwarded-For` itself and
    /// got keyed by the address it chose.
    #[test]
    fn spoofed_header_from_an_untrusted_peer_is_ignored() {
        let c = behind(&["10.0.0.0/8"]);
        let got = xff(&c, "198.51.100.9", "1.1.1.1");
        assert_eq!(
            got,
            ClientAddr {
                ip: ip("198.51.100.9"),
                source: AddrSource::Peer
            }
        );
        // No trusted proxy at all: the same.
        assert_eq!(
            xff(&ClientIp::new(), "198.51.100.9", "1.1.1.1").ip(),
            ip("198.51.100.9")
        );
    }

    /// Fault pinned: the leftmost entry was taken as the client, so a client behind a trusted
    /// proxy chose its key by sending `X-Forwarded-For: <anything>` (the proxy appends).
    #[test]
    fn leftmost_entries_written_by_the_client_are_not_believed() {
        let c = behind(&["10.0.0.0/8"]);
        let got = xff(&c, "10.0.0.1", "6.6.6.6, 203.0.113.5");
        assert_eq!(got.ip(), ip("203.0.113.5"));
        assert_eq!(got.source(), AddrSource::Header);
    }

    /// A chain through several trusted proxies (a CDN range, then the load balancer): trusted
    /// hops are skipped from the right.
    #[test]
    fn chain_of_trusted_proxies() {
        let c = behind(&["10.0.0.0/8", "2001:db8:cd::/48"]);
        let got = xff(
            &c,
            "10.0.0.1",
            "7.7.7.7, 203.0.113.5, 2001:db8:cd::9, 10.1.1.1",
        );
        assert_eq!(got.ip(), ip("203.0.113.5"));
        // Every hop trusted: the leftmost (the request started inside).
        assert_eq!(
            xff(&c, "10.0.0.1", "10.9.9.9, 10.1.1.1").ip(),
            ip("10.9.9.9")
        );
        // Trusted peer without the header: the peer.
        assert_eq!(
            c.resolve_lines(ip("10.0.0.1"), []).source(),
            AddrSource::Peer
        );
    }

    /// Fault pinned: an unparseable hop was skipped, so the client's own entry to its left
    /// was believed. A hop that names no address stops the walk and gives the peer.
    #[test]
    fn malformed_entries_fall_back_to_the_peer() {
        let c = behind(&["10.0.0.0/8"]);
        assert_eq!(
            xff(&c, "10.0.0.1", "6.6.6.6, garbage").source(),
            AddrSource::Peer
        );
        assert_eq!(
            xff(&c, "10.0.0.1", "6.6.6.6,,10.0.0.2").source(),
            AddrSource::Peer
        );
        assert_eq!(xff(&c, "10.0.0.1", "").source(), AddrSource::Peer);
        // Past the first untrusted entry, what is further left does not matter.
        assert_eq!(xff(&c, "10.0.0.1", "garbage, 5.5.5.5").ip(), ip("5.5.5.5"));
    }

    /// Fault pinned: a malformed `Forwarded` (unterminated quote, `unknown`, obfuscated
    /// node) was partly believed.
    #[test]
    fn malformed_forwarded_falls_back_to_the_peer() {
        let c = behind(&["10.0.0.0/8"]).header(ProxyHeader::Forwarded);
        let fwd = |v: &str| c.resolve_lines(ip("10.0.0.1"), [v.as_bytes()]);
        assert_eq!(fwd("for=6.6.6.6, for=\"5.5.5.5").source(), AddrSource::Peer);
        assert_eq!(fwd("for=6.6.6.6, for=unknown").source(), AddrSource::Peer);
        assert_eq!(fwd("for=6.6.6.6, for=_lb1").source(), AddrSource::Peer);
        assert_eq!(fwd("for=6.6.6.6, proto=https").source(), AddrSource::Peer);
        assert_eq!(
            fwd(r#"for=6.6.6.6, for="[2001:db8::1]:4711", for=10.2.2.2"#).ip(),
            ip("2001:db8::1")
        );
        // The X-Forwarded-For header is not read when Forwarded is configured.
        let mut headers = HeaderMap::new();
        headers.insert(X_FORWARDED_FOR, "5.5.5.5".parse().unwrap());
        assert_eq!(
            c.resolve(ip("10.0.0.1"), &headers).source(),
            AddrSource::Peer
        );
    }

    /// Fault pinned: `::ffff:1.2.3.4` and `1.2.3.4` were two clients with two budgets, and an
    /// IPv4-mapped trusted proxy was not recognised.
    #[test]
    fn ipv4_mapped_ipv6_is_ipv4() {
        let c = behind(&["10.0.0.0/8"]);
        assert_eq!(c.key(ip("::ffff:1.2.3.4")), "1.2.3.4");
        let got = xff(&c, "::ffff:10.0.0.1", "::ffff:203.0.113.5");
        assert_eq!(got.ip(), ip("203.0.113.5"));
        assert_eq!(
            xff(&c, "10.0.0.1", "::ffff:10.3.3.3, 10.0.0.5").ip(),
            ip("10.3.3.3")
        );
    }

    /// Fault pinned: an IPv6 host rotated through the addresses of its /64 and got a fresh
    /// bucket for each.
    #[test]
    fn ipv6_grouped_by_prefix() {
        let c = ClientIp::new();
        let a = c.key(ip("2001:db8:1:2:0:0:0:1"));
        let b = c.key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_eq!(a, b);
        assert_ne!(a, c.key(ip("2001:db8:1:3::1")));
        let c48 = ClientIp::new().ipv6_prefix(48).unwrap();
        assert_eq!(c48.key(ip("2001:db8:1:3::1")), "2001:db8:1::/48");
        let each = ClientIp::new().ipv6_prefix(128).unwrap();
        assert_eq!(each.key(ip("2001:db8::1")), "2001:db8::1");
        let v4 = ClientIp::new().ipv4_prefix(24).unwrap();
        assert_eq!(v4.key(ip("192.0.2.77")), "192.0.2.0/24");
        assert_eq!(
            ClientIp::new().ipv6_prefix(129),
            Err(CidrError::PrefixTooLong {
                prefix: 129,
                max: 128
            })
        );
        assert_eq!(
            ClientIp::new().trust_proxies(["10.0.0.0/8", "nope"]),
            Err(CidrError::InvalidAddress("nope".into()))
        );
    }
}
