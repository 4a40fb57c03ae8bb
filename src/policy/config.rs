//! The TOML policy file (feature `serde`). See `docs/config.md` for the schema.
//!
//! Every error names the file, the line and column (1-based) and what is wrong, and nothing
//! is returned from a file with any error: a configuration is read whole or not at all.

use core::fmt;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::duration::{parse_period, PeriodError};
use super::key::{KeyError, KeySelector};
use super::matcher::Matcher;
use super::spec::{AlgorithmKind, PolicySpec, UnknownAlgorithm};
use crate::error::QuotaError;
use crate::quota::Quota;

/// What is wrong with a policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The file could not be read.
    Io(String),
    /// Not valid TOML, a value of the wrong type, a missing or unknown field (the TOML
    /// parser's message).
    Syntax(String),
    /// `algorithm` is neither `gcra` nor `token-bucket`.
    UnknownAlgorithm(UnknownAlgorithm),
    /// `rate` below 1.
    BadRate(i64),
    /// `burst` below 1.
    BadBurst(i64),
    /// `cost` below 1.
    BadCost(i64),
    /// `max_keys` below 1.
    BadMaxKeys(i64),
    /// `period` is not a duration such as `250ms` or `1m`.
    BadDuration(PeriodError),
    /// `key` is not a key selector.
    BadKey(KeyError),
    /// The quota is out of the library's range (for example more than one admission per ns).
    Quota(QuotaError),
    /// A second policy with the same name.
    DuplicateName(String),
    /// An empty policy name.
    EmptyName,
    /// `cost` above the policy's burst: no request could ever be admitted.
    CostAboveBurst {
        /// The policy's `cost`.
        cost: u64,
        /// Its burst.
        burst: u64,
    },
    /// `methods = []`: a policy that matches no request.
    EmptyMethods,
    /// The file holds no `[[policy]]` (empty, or only comments).
    NoPolicies,
    /// The file is not UTF-8 (the position is the first invalid byte's).
    NotUtf8,
}

impl fmt::Display for ConfigErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "cannot read: {e}"),
            Self::Syntax(e) => {
                // toml's messages may span lines ("invalid string\nexpected ..."): one line.
                let mut first = true;
                for part in e.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    if !first {
                        f.write_str("; ")?;
                    }
                    f.write_str(part)?;
                    first = false;
                }
                Ok(())
            }
            Self::UnknownAlgorithm(e) => e.fmt(f),
            Self::BadRate(r) => write!(f, "rate must be an integer >= 1, not {r}"),
            Self::BadBurst(b) => write!(f, "burst must be an integer >= 1, not {b}"),
            Self::BadCost(c) => write!(f, "cost must be an integer >= 1, not {c}"),
            Self::BadMaxKeys(n) => write!(f, "max_keys must be an integer >= 1, not {n}"),
            Self::BadDuration(e) => e.fmt(f),
            Self::BadKey(e) => write!(f, "bad key: {e}"),
            Self::Quota(e) => write!(f, "invalid quota: {e}"),
            Self::DuplicateName(n) => write!(f, "duplicate policy name '{n}'"),
            Self::EmptyName => f.write_str("policy name must not be empty"),
            Self::CostAboveBurst { cost, burst } => write!(
                f,
                "cost {cost} is above the burst {burst}: no request could ever be admitted"
            ),
            Self::EmptyMethods => f.write_str(
                "methods = [] matches no request (leave methods out to match every method)",
            ),
            Self::NoPolicies => f.write_str("no [[policy]]"),
            Self::NotUtf8 => f.write_str("not UTF-8 (invalid byte here)"),
        }
    }
}

/// An error in a policy file, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name as given (or `<string>`).
    pub file: String,
    /// 1-based line (0 when the file could not be read).
    pub line: usize,
    /// 1-based column, in characters (0 when the file could not be read).
    pub column: usize,
    /// What is wrong.
    pub kind: ConfigErrorKind,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == ConfigErrorKind::NoPolicies {
            // The message names the file; the position (1:1) would add nothing.
            write!(f, "no [[policy]] in {}", self.file)
        } else if self.line == 0 {
            write!(f, "{}: {}", self.file, self.kind)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.kind
            )
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    policy: Vec<RawPolicy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    name: Spanned<String>,
    #[serde(default)]
    algorithm: Option<Spanned<String>>,
    rate: Spanned<i64>,
    period: Spanned<String>,
    #[serde(default)]
    burst: Option<Spanned<i64>>,
    key: Spanned<String>,
    #[serde(default)]
    cost: Option<Spanned<i64>>,
    #[serde(default)]
    shadow: bool,
    #[serde(default)]
    max_keys: Option<Spanned<i64>>,
    #[serde(default, rename = "match")]
    matcher: Option<RawMatch>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    #[serde(default)]
    path_prefix: Option<String>,
    #[serde(default)]
    methods: Option<Spanned<Vec<String>>>,
}

/// Reads and validates the policy file at `path`.
pub fn load_policies(path: impl AsRef<Path>) -> Result<Vec<PolicySpec>, ConfigError> {
    let path = path.as_ref();
    let file = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => match std::str::from_utf8(&bytes) {
            Ok(text) => parse_policies(text, &file),
            Err(e) => {
                // Where the first invalid byte is: the valid prefix gives its line and column.
                let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or("");
                let (line, column) = line_column(valid, valid.len());
                Err(ConfigError {
                    file,
                    line,
                    column,
                    kind: ConfigErrorKind::NotUtf8,
                })
            }
        },
        Err(e) => Err(ConfigError {
            file,
            line: 0,
            column: 0,
            kind: ConfigErrorKind::Io(e.to_string()),
        }),
    }
}

/// Parses and validates policies from `text`; `file` names it in errors.
///
/// ```
/// use nanolimit::policy::parse_policies;
///
/// let ok = parse_policies("[[policy]]\nname = \"api\"\nrate = 10\nperiod = \"1s\"\nkey = \"ip\"\n", "p.toml");
/// assert_eq!(ok.unwrap()[0].quota().burst(), 10);
///
/// let err = parse_policies("[[policy]]\nname = \"api\"\nrate = 0\nperiod = \"1s\"\nkey = \"ip\"\n", "p.toml");
/// assert_eq!(err.unwrap_err().to_string(), "p.toml:3:8: rate must be an integer >= 1, not 0");
/// ```
pub fn parse_policies(text: &str, file: &str) -> Result<Vec<PolicySpec>, ConfigError> {
    let at = |span: core::ops::Range<usize>, kind: ConfigErrorKind| {
        let (line, column) = line_column(text, span.start);
        ConfigError {
            file: file.to_owned(),
            line,
            column,
            kind,
        }
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        at(
            e.span().unwrap_or(0..0),
            ConfigErrorKind::Syntax(e.message().to_owned()),
        )
    })?;
    let mut specs: Vec<PolicySpec> = Vec::with_capacity(raw.policy.len());
    for p in raw.policy {
        let name = p.name.get_ref();
        if name.is_empty() {
            return Err(at(p.name.span(), ConfigErrorKind::EmptyName));
        }
        if specs.iter().any(|s| s.name() == name) {
            return Err(at(
                p.name.span(),
                ConfigErrorKind::DuplicateName(name.clone()),
            ));
        }
        let algorithm = match &p.algorithm {
            None => AlgorithmKind::Gcra,
            Some(a) => a
                .get_ref()
                .parse()
                .map_err(|e| at(a.span(), ConfigErrorKind::UnknownAlgorithm(e)))?,
        };
        let rate = positive(&p.rate).map_err(|r| at(p.rate.span(), ConfigErrorKind::BadRate(r)))?;
        let period = parse_period(p.period.get_ref())
            .map_err(|e| at(p.period.span(), ConfigErrorKind::BadDuration(e)))?;
        let mut quota =
            Quota::new(rate, period).map_err(|e| at(p.rate.span(), ConfigErrorKind::Quota(e)))?;
        if let Some(b) = &p.burst {
            let burst = positive(b).map_err(|v| at(b.span(), ConfigErrorKind::BadBurst(v)))?;
            quota = quota
                .with_burst(burst)
                .map_err(|e| at(b.span(), ConfigErrorKind::Quota(e)))?;
        }
        let key = KeySelector::parse(p.key.get_ref())
            .map_err(|e| at(p.key.span(), ConfigErrorKind::BadKey(e)))?;
        let cost = match &p.cost {
            None => 1,
            Some(c) => {
                let cost = positive(c).map_err(|v| at(c.span(), ConfigErrorKind::BadCost(v)))?;
                let burst = quota.burst();
                if cost > burst {
                    return Err(at(
                        c.span(),
                        ConfigErrorKind::CostAboveBurst { cost, burst },
                    ));
                }
                cost
            }
        };
        let max_keys = match &p.max_keys {
            None => None,
            Some(n) => Some(positive(n).map_err(|v| at(n.span(), ConfigErrorKind::BadMaxKeys(v)))?),
        };
        let mut matcher = Matcher::new();
        if let Some(m) = p.matcher {
            if let Some(prefix) = m.path_prefix {
                matcher = matcher.path_prefix(prefix);
            }
            if let Some(methods) = m.methods {
                if methods.get_ref().is_empty() {
                    return Err(at(methods.span(), ConfigErrorKind::EmptyMethods));
                }
                matcher = matcher.methods(methods.into_inner());
            }
        }
        let mut spec = PolicySpec::new(name.clone(), quota, key)
            .algorithm(algorithm)
            .cost(cost)
            .shadow(p.shadow)
            .matching(matcher);
        if let Some(n) = max_keys {
            spec = spec.max_keys(usize::try_from(n).unwrap_or(usize::MAX));
        }
        specs.push(spec);
    }
    if specs.is_empty() {
        return Err(ConfigError {
            file: file.to_owned(),
            line: 1,
            column: 1,
            kind: ConfigErrorKind::NoPolicies,
        });
    }
    Ok(specs)
}

fn positive(v: &Spanned<i64>) -> Result<u64, i64> {
    let v = *v.get_ref();
    u64::try_from(v).ok().filter(|&v| v >= 1).ok_or(v)
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}
