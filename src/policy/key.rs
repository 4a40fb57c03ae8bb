//! Key selectors: which bucket of a policy a request uses.

use core::fmt;

use super::request::Request;

/// One part of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyPart {
    /// The client address.
    Ip,
    /// The request path.
    Path,
    /// The request method.
    Method,
    /// The value of a header (name stored in lower case). A request without the header uses
    /// the empty value: all such requests share one bucket, so leaving the header out is no
    /// way around the limit.
    Header(String),
}

/// How a policy turns a request into a key: `"global"` (one bucket for everything), or one or
/// more parts joined with `+` (`"ip"`, `"ip+path"`, `"header:x-api-key"`).
///
/// ```
/// use nanolimit::policy::{KeySelector, Request};
///
/// let sel: KeySelector = "ip+path".parse().unwrap();
/// let mut key = String::new();
/// sel.write_key(&Request::new("10.0.0.1", "GET", "/a"), &mut key);
/// assert_eq!(key, "10.0.0.1 /a");
/// assert!(KeySelector::parse("global").unwrap().is_global());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySelector {
    parts: Vec<KeyPart>,
}

/// Why a key selector was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// The selector, or one of its `+`-separated parts, is empty.
    Empty,
    /// A part that is not `ip`, `path`, `method`, `global` or `header:<name>`.
    UnknownPart(String),
    /// `header:` without a name.
    EmptyHeaderName,
    /// `global` combined with other parts.
    GlobalCombined,
    /// The same part twice (`ip+ip`): it would only lengthen every key.
    RepeatedPart(String),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty key selector"),
            Self::UnknownPart(p) => write!(
                f,
                "unknown key part '{p}' (expected ip, path, method, global or header:<name>)"
            ),
            Self::EmptyHeaderName => f.write_str("'header:' needs a header name"),
            Self::GlobalCombined => f.write_str("'global' cannot be combined with other parts"),
            Self::RepeatedPart(p) => write!(f, "key part '{p}' appears twice"),
        }
    }
}

impl std::error::Error for KeyError {}

impl KeySelector {
    /// One bucket for all requests.
    pub fn global() -> Self {
        Self { parts: Vec::new() }
    }

    /// Parses `"global"`, `"ip"`, `"path"`, `"method"`, `"header:<name>"`, or parts joined
    /// with `+`.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(KeyError::Empty);
        }
        if text == "global" {
            return Ok(Self::global());
        }
        let mut parts = Vec::new();
        for part in text.split('+') {
            let part = part.trim();
            let parsed = match part {
                "" => return Err(KeyError::Empty),
                "global" => return Err(KeyError::GlobalCombined),
                "ip" => KeyPart::Ip,
                "path" => KeyPart::Path,
                "method" => KeyPart::Method,
                _ => match part.strip_prefix("header:") {
                    Some(name) if name.trim().is_empty() => return Err(KeyError::EmptyHeaderName),
                    Some(name) => KeyPart::Header(name.trim().to_ascii_lowercase()),
                    None => return Err(KeyError::UnknownPart(part.to_owned())),
                },
            };
            if parts.contains(&parsed) {
                return Err(KeyError::RepeatedPart(part.to_owned()));
            }
            parts.push(parsed);
        }
        Ok(Self { parts })
    }

    /// Whether every request shares one bucket.
    pub fn is_global(&self) -> bool {
        self.parts.is_empty()
    }

    /// The parts, in order (empty for `global`).
    pub fn parts(&self) -> &[KeyPart] {
        &self.parts
    }

    /// Writes the request's key into `out` (cleared first); `""` for `global`. One part is
    /// its value as is; several are joined by a space, each with `\` written `\\` and a space
    /// written `\ `, so that two different requests never share a key (`a b`+`c` is
    /// `a\ b c`, `a`+`b c` is `a b\ c`).
    #[inline]
    pub fn write_key(&self, req: &Request<'_>, out: &mut String) {
        out.clear();
        let single = self.parts.len() == 1;
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            let value = match part {
                KeyPart::Ip => req.client(),
                KeyPart::Path => req.path(),
                KeyPart::Method => req.method(),
                KeyPart::Header(name) => req.header(name).unwrap_or(""),
            };
            if single || !value.contains([' ', '\\']) {
                out.push_str(value);
            } else {
                for c in value.chars() {
                    if c == ' ' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
            }
        }
    }
}

impl core::str::FromStr for KeySelector {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::parse(s)
    }
}

impl fmt::Display for KeySelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.parts.is_empty() {
            return f.write_str("global");
        }
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            match part {
                KeyPart::Ip => f.write_str("ip")?,
                KeyPart::Path => f.write_str("path")?,
                KeyPart::Method => f.write_str("method")?,
                KeyPart::Header(name) => write!(f, "header:{name}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(KeySelector::parse("ip").unwrap().parts(), &[KeyPart::Ip]);
        assert_eq!(
            KeySelector::parse("ip+header:X-Api-Key").unwrap().parts(),
            &[KeyPart::Ip, KeyPart::Header("x-api-key".into())]
        );
        assert_eq!(KeySelector::parse(""), Err(KeyError::Empty));
        assert_eq!(KeySelector::parse("ip+"), Err(KeyError::Empty));
        assert_eq!(
            KeySelector::parse("ip+global"),
            Err(KeyError::GlobalCombined)
        );
        assert_eq!(
            KeySelector::parse("header:"),
            Err(KeyError::EmptyHeaderName)
        );
        assert_eq!(
            KeySelector::parse("host"),
            Err(KeyError::UnknownPart("host".into()))
        );
        assert_eq!(
            KeySelector::parse("ip+path").unwrap().to_string(),
            "ip+path"
        );
    }

    /// Regression (review of issue 4, fault 11): composite keys joined parts with a bare
    /// space, so `ip "a b"` + `path "c"` and `ip "a"` + `path "b c"` shared one bucket.
    #[test]
    fn composite_keys_do_not_collide_when_values_hold_the_separator() {
        let sel = KeySelector::parse("ip+path").unwrap();
        let key = |ip, path| {
            let mut k = String::new();
            sel.write_key(&Request::new(ip, "GET", path), &mut k);
            k
        };
        assert_eq!(key("a b", "c"), "a\\ b c");
        assert_eq!(key("a", "b c"), "a b\\ c");
        assert_ne!(key("a\\", " c"), key("a\\ ", "c"));
        assert_eq!(key("10.0.0.1", "/x"), "10.0.0.1 /x");
        let mut k = String::new();
        KeySelector::parse("path")
            .unwrap()
            .write_key(&Request::new("", "", "a b"), &mut k);
        assert_eq!(k, "a b", "one part is its value as is");
    }

    /// Regression (fault 11): `ip+ip` was accepted.
    #[test]
    fn a_repeated_part_is_refused() {
        assert_eq!(
            KeySelector::parse("ip+path+ip"),
            Err(KeyError::RepeatedPart("ip".into()))
        );
        assert_eq!(
            KeySelector::parse("header:X-K+header:x-k"),
            Err(KeyError::RepeatedPart("header:x-k".into()))
        );
    }

    #[test]
    fn missing_header_shares_the_empty_key() {
        let sel = KeySelector::parse("header:x-api-key").unwrap();
        let mut key = String::from("junk");
        sel.write_key(&Request::new("1.2.3.4", "GET", "/"), &mut key);
        assert_eq!(key, "");
    }
}
