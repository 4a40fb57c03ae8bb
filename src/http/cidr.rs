//! Address ranges (`10.0.0.0/8`, `2001:db8::/32`, a bare address) for the trusted-proxy list.
//!
//! Hand-written rather than taken from a crate: a range is an address and a prefix length,
//! parsing is twenty lines over `std::net`, and the one rule that matters here (host bits
//! set is an error, not silently masked) is ours to choose.

use core::fmt;
use core::str::FromStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IPv4 or IPv6 network: an address whose bits past `prefix` are zero.
///
/// ```
/// use nanolimit::http::Cidr;
///
/// let net: Cidr = "10.0.0.0/8".parse().unwrap();
/// assert!(net.contains("10.1.2.3".parse().unwrap()));
/// assert!(!net.contains("11.0.0.1".parse().unwrap()));
/// // An IPv4-mapped IPv6 client is the IPv4 client.
/// assert!(net.contains("::ffff:10.9.9.9".parse().unwrap()));
/// assert!("10.0.0.1/8".parse::<Cidr>().is_err()); // host bits set: a typo?
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a range was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CidrError {
    /// The part before `/` is not an IPv4 or IPv6 address.
    InvalidAddress(String),
    /// The part after `/` is not a number.
    InvalidPrefix(String),
    /// The prefix is longer than the address (32 for IPv4, 128 for IPv6).
    PrefixTooLong {
        /// The prefix given.
        prefix: u8,
        /// The longest allowed.
        max: u8,
    },
    /// Bits past the prefix are set (`10.0.0.1/8`): ambiguous, so refused.
    HostBitsSet {
        /// The network the prefix describes (`10.0.0.0/8`).
        network: String,
    },
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidAddress(a) => write!(f, "'{}' is not an IP address", a.escape_debug()),
            Self::InvalidPrefix(p) => {
                write!(f, "'{}' is not a prefix length", p.escape_debug())
            }
            Self::PrefixTooLong { prefix, max } => {
                write!(
                    f,
                    "prefix /{prefix} is longer than the address (at most /{max})"
                )
            }
            Self::HostBitsSet { network } => {
                write!(
                    f,
                    "host bits are set past the prefix; did you mean {network}?"
                )
            }
        }
    }
}

impl std::error::Error for CidrError {}

impl Cidr {
    /// The network `addr/prefix`. IPv4-mapped IPv6 networks (`::ffff:10.0.0.0/104`) become
    /// the IPv4 network they map (`10.0.0.0/8`).
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, CidrError> {
        // Checked against the address as given, before any mapping, so that the error names
        // the prefix that was written.
        let max = max_prefix(addr);
        if prefix > max {
            return Err(CidrError::PrefixTooLong { prefix, max });
        }
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix - 96),
                None => (addr, prefix),
            },
            _ => (addr, prefix),
        };
        let network = mask(addr, prefix);
        if network != addr {
            return Err(CidrError::HostBitsSet {
                network: format!("{network}/{prefix}"),
            });
        }
        Ok(Self { addr, prefix })
    }

    /// The one address `addr` (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> Self {
        let addr = normalize(addr);
        Self {
            addr,
            prefix: max_prefix(addr),
        }
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` (IPv4-mapped IPv6 taken as IPv4) is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = normalize(ip);
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// `addr/prefix`, or a bare address; surrounding whitespace is ignored.
    fn from_str(s: &str) -> Result<Self, CidrError> {
        let s = s.trim();
        let (addr_text, prefix_text) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| CidrError::InvalidAddress(addr_text.to_owned()))?;
        match prefix_text {
            None => Ok(Self::host(addr)),
            Some(p) => {
                let prefix = p
                    .parse::<u8>()
                    .map_err(|_| CidrError::InvalidPrefix(p.to_owned()))?;
                Self::new(addr, prefix)
            }
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) as the IPv4 address; anything else unchanged.
pub fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

/// `ip` with every bit past `prefix` cleared (`prefix` at most the address's length).
pub(crate) fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let kept = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & kept))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let kept = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & kept))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_ranges_and_hosts() {
        let c: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(c.contains(ip("2001:db8:ffff::1")));
        assert!(!c.contains(ip("2001:db9::1")));
        assert!(!c.contains(ip("32.1.13.184")), "families never mix");
        let h: Cidr = " 192.0.2.1 ".parse().unwrap();
        assert_eq!(h.to_string(), "192.0.2.1/32");
        assert!(h.contains(ip("192.0.2.1")) && !h.contains(ip("192.0.2.2")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("255.255.255.255")));
        assert!("::/0".parse::<Cidr>().unwrap().contains(ip("::1")));
    }

    /// Fault pinned: bad ranges must be typed errors with their cause, never a panic or a
    /// silently widened range.
    #[test]
    fn refuses_bad_ranges() {
        assert_eq!(
            "10.0.0.1/8".parse::<Cidr>(),
            Err(CidrError::HostBitsSet {
                network: "10.0.0.0/8".into()
            })
        );
        assert_eq!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::PrefixTooLong {
                prefix: 33,
                max: 32
            })
        );
        assert_eq!(
            "::/129".parse::<Cidr>(),
            Err(CidrError::PrefixTooLong {
                prefix: 129,
                max: 128
            })
        );
        assert_eq!(
            "10.0.0.0/x".parse::<Cidr>(),
            Err(CidrError::InvalidPrefix("x".into()))
        );
        assert_eq!(
            "10.0.0.0/999".parse::<Cidr>(),
            Err(CidrError::InvalidPrefix("999".into()))
        );
        assert_eq!(
            "proxy/8".parse::<Cidr>(),
            Err(CidrError::InvalidAddress("proxy".into()))
        );
        assert_eq!(
            CidrError::HostBitsSet {
                network: "10.0.0.0/8".into()
            }
            .to_string(),
            "host bits are set past the prefix; did you mean 10.0.0.0/8?"
        );
    }

    /// Fault pinned: a trusted range written in IPv4-mapped form did not match the IPv4
    /// peer, and an IPv4 range did not match an IPv4-mapped peer.
    #[test]
    fn mapped_addresses_are_ipv4() {
        let c: Cidr = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains(ip("10.2.3.4")));
        assert!("10.0.0.0/8"
            .parse::<Cidr>()
            .unwrap()
            .contains(ip("::ffff:10.2.3.4")));
        assert_eq!(Cidr::host(ip("::ffff:1.2.3.4")).to_string(), "1.2.3.4/32");
    }

    /// Fault pinned (found by the `client_key` fuzz target): an IPv4-mapped range with a
    /// prefix over 128 (`::ffff:10.0.0.0/200`) was mapped first and refused as
    /// `PrefixTooLong { prefix: 104, max: 32 }`, naming a prefix that was never written.
    #[test]
    fn prefix_too_long_names_the_prefix_given_for_mapped_ranges() {
        for text in ["::ffff:10.0.0.0/200", "::ffff:0.0.0.0/129"] {
            let prefix: u8 = text.rsplit_once('/').unwrap().1.parse().unwrap();
            assert_eq!(
                text.parse::<Cidr>(),
                Err(CidrError::PrefixTooLong { prefix, max: 128 }),
                "{text}"
            );
        }
        assert_eq!(
            Cidr::new(ip("::ffff:10.0.0.0"), 255),
            Err(CidrError::PrefixTooLong {
                prefix: 255,
                max: 128
            })
        );
        // In range, the mapping still applies.
        assert_eq!(
            "::ffff:10.0.0.0/128".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/32"
        );
    }
}
