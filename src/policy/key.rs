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

    /// Writes the request's key into `out` (cleared first): the parts' values joined by a
    /// space (which no address, method, path or header name contains unescaped); `""` for
    /// `global`.
    #[inline]
    pub fn write_key(&self, req: &Request<'_>, out: &mut String) {
        out.clear();
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            match part {
                KeyPart::Ip => out.push_str(req.client()),
                KeyPart::Path => out.push_str(req.path()),
                KeyPart::Method => out.push_str(req.method()),
                KeyPart::Header(name) => out.push_str(req.header(name).unwrap_or("")),
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

    #[test]
    fn missing_header_shares_the_empty_key() {
        let sel = KeySelector::parse("header:x-api-key").unwrap();
        let mut key = String::from("junk");
        sel.write_key(&Request::new("1.2.3.4", "GET", "/"), &mut key);
        assert_eq!(key, "");
    }
}
