//! `--store redis://...`: `CL.THROTTLE`, `NL.CHECK`, `NL.PEEK` and `POST /v1/check` decided in
//! a shared Redis by the library's [`RedisLimiter`], so that any number of `serve` instances
//! pointed at the same Redis enforce one limit per key.
//!
//! Keys in Redis: `<prefix>cl:<algorithm>:<rate>/<period ns>/<burst>:<key>` for `CL.THROTTLE`
//! (a key is namespaced by its quota, as in memory) and `<prefix>policy:<name>:<algorithm>:
//! <rate>/<period ns>/<burst>:<key>` for a named policy (a global policy's one bucket has the
//! empty key). A reload that changes a policy's quota therefore starts its keys full (the old
//! ones expire); the in-memory carry-over rule does not apply. Keys must be UTF-8.

use core::fmt;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use nanolimit::policy::{AlgorithmKind, PolicyResult, PolicySpec};
use nanolimit::store::redis::{
    FailurePolicy, RedisAlgorithm, RedisBuilder, RedisConnection, RedisDecision, RedisLimitError,
    RedisLimiter,
};
use nanolimit::{Decision, Gcra, Quota, TokenBucket};

use super::policies::{Generation, Policies, PolicyError};
use super::stats::Stats;
use super::throttle::{PerQuota, Throttle, ThrottleError, ThrottleParams, ThrottleReply};

/// How the service reaches Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// `redis://host:port[/db]`.
    pub url: String,
    /// The start of every key the service writes.
    pub prefix: String,
    /// The longest wait for one decision.
    pub timeout: Duration,
    /// What a decision is when Redis does not answer in time or cannot be reached.
    pub on_failure: FailurePolicy,
}

impl StoreConfig {
    /// `url` with the defaults: prefix `nanolimit:`, a 50 ms timeout, errors on failure.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "nanolimit:".to_owned(),
            timeout: Duration::from_millis(50),
            on_failure: FailurePolicy::Error,
        }
    }
}

/// A failure policy by name: `error`, `closed`, `open` or `fallback`.
pub fn parse_failure_policy(text: &str) -> Result<FailurePolicy, String> {
    match text {
        "error" => Ok(FailurePolicy::Error),
        "closed" => Ok(FailurePolicy::FailClosed),
        "open" => Ok(FailurePolicy::FailOpen),
        "fallback" => Ok(FailurePolicy::Fallback),
        _ => Err(format!(
            "'{}' is not a failure policy (error, closed, open or fallback)",
            text.escape_debug()
        )),
    }
}

/// Why the store decided nothing (besides the errors of the in-memory path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the Redis store decided nothing: {}", self.0)
    }
}

/// One policy's limiter in Redis, with the spec it was made for.
struct PolicyLimiter {
    quota: Quota,
    algorithm: AlgorithmKind,
    limiter: AnyLimiter,
}

/// The start of the Redis keys of the policy named `name`: `<prefix>policy:<name>:` (the
/// limiter appends `<algorithm>:<rate>/<period ns>/<burst>:<key>`). Shared with
/// `nanolimit replay --store`.
pub fn policy_prefix(prefix: &str, name: &str) -> String {
    format!("{prefix}policy:{name}:")
}

/// A policy's limiter in Redis: GCRA or the token bucket, chosen at run time.
pub enum AnyLimiter {
    /// `algorithm = "gcra"`.
    Gcra(RedisLimiter<Gcra>),
    /// `algorithm = "token-bucket"`.
    TokenBucket(RedisLimiter<TokenBucket>),
}

impl AnyLimiter {
    /// The limiter `builder` describes, with the policy's `algorithm`.
    pub fn new(builder: RedisBuilder, algorithm: AlgorithmKind) -> Self {
        match algorithm {
            AlgorithmKind::Gcra => Self::Gcra(builder.build()),
            AlgorithmKind::TokenBucket => Self::TokenBucket(builder.token_bucket().build()),
        }
    }

    /// A check (or a peek) of `cost` for `key`, at Redis's time, or at `now` (nanoseconds on
    /// the caller's own scale) when it is given.
    pub async fn decide(
        &self,
        key: &str,
        cost: u64,
        peek: bool,
        now: Option<u64>,
    ) -> Result<RedisDecision, RedisLimitError> {
        async fn run<A: RedisAlgorithm>(
            l: &RedisLimiter<A>,
            key: &str,
            cost: u64,
            peek: bool,
            now: Option<u64>,
        ) -> Result<RedisDecision, RedisLimitError> {
            match (peek, now) {
                (false, None) => l.check_n(key, cost).await,
                (true, None) => l.peek_n(key, cost).await,
                (false, Some(now)) => l.check_n_at(key, cost, now).await,
                (true, Some(now)) => l.peek_n_at(key, cost, now).await,
            }
        }
        match self {
            Self::Gcra(l) => run(l, key, cost, peek, now).await,
            Self::TokenBucket(l) => run(l, key, cost, peek, now).await,
        }
    }
}

/// The limiters kept in Redis: one per `CL.THROTTLE` quota, one per policy.
pub struct RedisStore {
    connection: RedisConnection,
    config: StoreConfig,
    throttle: PerQuota<RedisLimiter<Gcra>>,
    policies: RwLock<HashMap<String, Arc<PolicyLimiter>>>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store over `config.url` (connected lazily: Redis may be down at start). Must be
    /// called inside a tokio runtime.
    pub fn open(config: StoreConfig, max_quotas: usize) -> Result<Self, StoreError> {
        let connection =
            RedisConnection::open(&config.url).map_err(|e| StoreError(e.to_string()))?;
        Ok(Self {
            connection,
            config,
            throttle: PerQuota::new(max_quotas),
            policies: RwLock::new(HashMap::new()),
        })
    }

    /// The store's settings.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    fn builder(&self, quota: Quota, prefix: String) -> RedisBuilder {
        RedisLimiter::builder(self.connection.clone(), quota)
            .prefix(prefix)
            .timeout(self.config.timeout)
            .on_failure(self.config.on_failure)
    }

    /// One `CL.THROTTLE` decision (the arguments already validated, `quantity <= limit`).
    pub async fn throttle(
        &self,
        stats: &Stats,
        params: ThrottleParams,
        key: &[u8],
        quantity: u64,
    ) -> Result<ThrottleReply, ThrottleError> {
        let key = std::str::from_utf8(key).map_err(|_| ThrottleError::BadArgument {
            name: "key",
            reason: "not UTF-8 (keys kept in Redis must be text)".to_owned(),
        })?;
        let make = |quota| {
            self.builder(quota, format!("{}cl:", self.config.prefix))
                .build()
        };
        // Always idle: the buckets live in Redis, so a new limiter of the same quota reads
        // the same keys.
        let limiter = self.throttle.get(params, make, |_| true)?;
        let outcome = limiter.check_n(key, quantity).await.map_err(|e| match e {
            RedisLimitError::InsufficientCapacity(_) => ThrottleError::QuantityAboveLimit {
                quantity,
                limit: params.limit(),
            },
            e => ThrottleError::Store(e.to_string()),
        })?;
        Ok(Throttle::reply(&count(stats, outcome), params.limit()))
    }

    /// A check (or a peek) of `cost` for `key` under `spec`: the result as the in-memory
    /// policies give it (the spec's cost multiplier applied; a global policy ignores `key`).
    pub async fn policy(
        &self,
        stats: &Stats,
        spec: &PolicySpec,
        key: &str,
        cost: u64,
        peek: bool,
    ) -> Result<PolicyResult, PolicyError> {
        let cost = cost.saturating_mul(spec.cost_multiplier());
        let burst = spec.quota().burst();
        if cost > burst {
            return Ok(PolicyResult::NeverFits { cost, burst });
        }
        let key = if spec.key().is_global() { "" } else { key };
        let limiter = self.policy_limiter(spec);
        let outcome = limiter
            .limiter
            .decide(key, cost, peek, None)
            .await
            .map_err(|e| PolicyError::Store(e.to_string()))?;
        Ok(PolicyResult::Decided(count(stats, outcome)))
    }

    /// [`policy`](Self::policy) for the policy named `name` in `policies`: the generation
    /// that named it, its index there and the result (as [`Policies::decide_raw`] gives).
    pub async fn named_policy(
        &self,
        stats: &Stats,
        policies: &Policies,
        name: &str,
        key: &str,
        cost: u64,
        peek: bool,
    ) -> Result<(Arc<Generation>, usize, PolicyResult), PolicyError> {
        let (generation, index) = policies.find(name)?;
        let spec = generation
            .spec(index)
            .ok_or_else(|| PolicyError::Unknown(name.to_owned()))?;
        let result = self.policy(stats, spec, key, cost, peek).await?;
        Ok((generation, index, result))
    }

    /// The limiter of `spec`, made again when a reload changed its quota or algorithm.
    fn policy_limiter(&self, spec: &PolicySpec) -> Arc<PolicyLimiter> {
        let fits =
            |l: &PolicyLimiter| l.quota == *spec.quota() && l.algorithm == spec.algorithm_kind();
        if let Some(l) = self
            .policies
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(spec.name())
            .filter(|l| fits(l))
        {
            return Arc::clone(l);
        }
        let prefix = policy_prefix(&self.config.prefix, spec.name());
        let builder = self.builder(*spec.quota(), prefix);
        let limiter = AnyLimiter::new(builder, spec.algorithm_kind());
        let made = Arc::new(PolicyLimiter {
            quota: *spec.quota(),
            algorithm: spec.algorithm_kind(),
            limiter,
        });
        // The map holds one entry per policy name ever served: bounded by the policy files.
        self.policies
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(spec.name().to_owned(), Arc::clone(&made));
        made
    }
}

/// The decision, counting it when Redis did not make it (its failure logged).
fn count(stats: &Stats, outcome: RedisDecision) -> Decision {
    if !outcome.is_from_redis() {
        Stats::bump(&stats.store_degraded);
        if let Some(e) = outcome.failure() {
            tracing::warn!(error = %e, source = ?outcome.source(), "Redis failed; decided by the failure policy");
        }
    }
    *outcome.decision()
}
