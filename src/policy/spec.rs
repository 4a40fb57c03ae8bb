//! A policy as data: what a configuration file (or code) says, validated.

use core::fmt;
use core::str::FromStr;

use super::key::KeySelector;
use super::matcher::Matcher;
use crate::quota::Quota;

/// Which algorithm a policy's limiter runs. Both implement the same model exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AlgorithmKind {
    /// [`Gcra`](crate::Gcra) (`"gcra"`).
    #[default]
    Gcra,
    /// [`TokenBucket`](crate::TokenBucket) (`"token-bucket"`).
    TokenBucket,
}

impl AlgorithmKind {
    /// The name used in policy files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gcra => "gcra",
            Self::TokenBucket => "token-bucket",
        }
    }
}

/// An algorithm name that is neither `gcra` nor `token-bucket`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownAlgorithm(pub String);

impl fmt::Display for UnknownAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown algorithm '{}' (expected \"gcra\" or \"token-bucket\")",
            self.0
        )
    }
}

impl std::error::Error for UnknownAlgorithm {}

impl FromStr for AlgorithmKind {
    type Err = UnknownAlgorithm;

    fn from_str(s: &str) -> Result<Self, UnknownAlgorithm> {
        match s {
            "gcra" => Ok(Self::Gcra),
            "token-bucket" | "token_bucket" => Ok(Self::TokenBucket),
            _ => Err(UnknownAlgorithm(s.to_owned())),
        }
    }
}

impl fmt::Display for AlgorithmKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One named policy: a quota applied per key to the requests it matches.
///
/// ```
/// use nanolimit::policy::{KeySelector, Matcher, PolicySpec};
/// use nanolimit::Quota;
///
/// let api = PolicySpec::new("api", Quota::per_minute(100).unwrap(), KeySelector::parse("ip").unwrap())
///     .matching(Matcher::new().path_prefix("/api/"))
///     .cost(2);
/// assert_eq!(api.name(), "api");
/// assert_eq!(api.cost_multiplier(), 2);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySpec {
    name: String,
    algorithm: AlgorithmKind,
    quota: Quota,
    key: KeySelector,
    cost: u64,
    shadow: bool,
    matcher: Matcher,
    max_keys: Option<usize>,
}

impl PolicySpec {
    /// A GCRA policy of cost 1 that matches every request and enforces.
    pub fn new(name: impl Into<String>, quota: Quota, key: KeySelector) -> Self {
        Self {
            name: name.into(),
            algorithm: AlgorithmKind::Gcra,
            quota,
            key,
            cost: 1,
            shadow: false,
            matcher: Matcher::new(),
            max_keys: None,
        }
    }

    /// Runs `algorithm` instead.
    pub fn algorithm(mut self, algorithm: AlgorithmKind) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Multiplies every request's own cost by `cost` (a cost of 0 is stored as 1).
    pub fn cost(mut self, cost: u64) -> Self {
        self.cost = cost.max(1);
        self
    }

    /// Shadow mode: decide and report, never deny.
    pub fn shadow(mut self, shadow: bool) -> Self {
        self.shadow = shadow;
        self
    }

    /// Applies only to requests `matcher` matches.
    pub fn matching(mut self, matcher: Matcher) -> Self {
        self.matcher = matcher;
        self
    }

    /// Tracks at most `max_keys` keys (see [`KeyedBuilder::max_keys`](crate::KeyedBuilder::max_keys)):
    /// when that many keys are tracked and none is idle, a request with a new key is refused
    /// ([`PolicyResult::AtCapacity`](super::PolicyResult::AtCapacity), a denial). Ignored by a
    /// `global` policy, which has one bucket.
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = Some(max_keys);
        self
    }

    /// The key limit, if any.
    pub fn key_limit(&self) -> Option<usize> {
        self.max_keys
    }

    /// The policy's unique name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The algorithm.
    pub fn algorithm_kind(&self) -> AlgorithmKind {
        self.algorithm
    }

    /// The quota.
    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// The key selector.
    pub fn key(&self) -> &KeySelector {
        &self.key
    }

    /// The policy's cost multiplier.
    pub fn cost_multiplier(&self) -> u64 {
        self.cost
    }

    /// Whether the policy is in shadow mode.
    pub fn is_shadow(&self) -> bool {
        self.shadow
    }

    /// What the policy applies to.
    pub fn matcher(&self) -> &Matcher {
        &self.matcher
    }
}
