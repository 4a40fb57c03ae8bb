//! The Redis backend (feature `redis`): the same decisions as the in-memory limiter, with the
//! state kept in Redis so that many processes on many machines share one limit.
//!
//! ```no_run
//! use nanolimit::store::redis::{FailurePolicy, RedisConnection, RedisLimiter};
//! use nanolimit::Quota;
//! use std::sync::Arc;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let redis = RedisConnection::open("redis://127.0.0.1:6379")?;
//! let limiter = Arc::new(
//!     RedisLimiter::builder(redis, Quota::per_second(100)?.with_burst(20)?)
//!         .prefix("api:")
//!         .on_failure(FailurePolicy::Fallback)
//!         .build(),
//! );
//! let outcome = limiter.check("client-42").await?;
//! if outcome.is_allowed() {
//!     // serve; outcome.decision().remaining() more may follow now
//! } else {
//!     // 429, Retry-After: outcome.decision().retry_after_secs()
//! }
//! # Ok(()) }
//! ```
//!
//! How it works (`docs/design.md`, "Distributed mode (Redis)"):
//!
//! - **One key per bucket.** The Redis key is
//!   `<prefix><algorithm>:<rate>/<period in ns>/<burst>:<key>` (for example
//!   `nanolimit:gcra:100/1000000000/20:client-42`), holding the packed `u64` state as a decimal
//!   string: the theoretical arrival time (GCRA) or the packed stamp and tokens (token
//!   bucket), in the quota's ticks. Naming the quota in the key means that two limiters with
//!   different quotas never misread each other's state, and that a changed quota starts from
//!   full buckets. Each decision touches exactly one key, so the script runs unchanged on
//!   Redis Cluster: the key's own hash slot routes it. A hash tag (`{...}`) in the prefix or in
//!   the caller's key decides the slot instead: `{tenant-7}:user-1` and `{tenant-7}:user-2`
//!   share a slot (and a node); nothing here needs that.
//! - **One script.** The transition runs in a Lua script ([`script_source`]), atomically,
//!   hashed once and always called by `EVALSHA`; on a `NOSCRIPT` error (e.g. after a Redis
//!   restart) the `redis` crate sends `SCRIPT LOAD`, then the same `EVALSHA` once more (never
//!   `EVAL`), so nothing needs preloading. It is a port of the pure algorithms on exact
//!   integers (base-2^24 limbs: Redis Lua numbers are doubles); the client then derives the
//!   decision from the state and time the script used with the library's own Rust code, and
//!   checks that the state the script wrote is the one that code computes
//!   ([`RedisLimitError::Mismatch`] otherwise).
//! - **Time** is Redis's `TIME` by default, so clients with skewed clocks agree, counted in
//!   nanoseconds from [`REDIS_EPOCH_UNIX_SECS`] (2026-01-01T00:00:00Z: the 2^61 ns lifetime
//!   then lasts until 2099). The `_at` methods take an explicit time on that scale instead.
//! - **Expiry:** every write sets the key to expire when its bucket is full again (rounded up
//!   to the millisecond, plus [`RedisBuilder::expiry_slack`]); a full bucket decides exactly as
//!   a missing key, so idle keys leave nothing behind and lose nothing.
//! - **Failures:** every call has a timeout; on a timeout or an unreachable Redis the
//!   [`FailurePolicy`] returns the error, fails closed, fails open or falls back to a local
//!   limiter, and says so in [`RedisDecision::source`]. The connection reconnects by itself.
//!
//! A [`RedisLimiter`] is `Send + Sync`: share it behind an `Arc` between tasks. Concurrent
//! calls are multiplexed (pipelined) over one connection.

mod builder;
mod error;
mod outcome;
mod script;

use core::time::Duration;

pub use builder::{
    RedisBuilder, RedisConnection, DEFAULT_FALLBACK_MAX_KEYS, DEFAULT_PREFIX, DEFAULT_TIMEOUT,
};
pub use error::RedisLimitError;
pub use outcome::{DecisionSource, FailurePolicy, RedisDecision};

use crate::algorithm::{cost_in_ticks, Algorithm, Gcra, TokenBucket};
use crate::limiter::{KeyedError, KeyedLimiter};
use crate::quota::Quota;
use script::{Op, QuotaArgs};

/// Unix time (seconds) at which the limiter's Redis time reads 0 ns: 2026-01-01T00:00:00Z.
/// Every client of the same keys uses it; explicit times (`check_n_at`) mixed with Redis time
/// on the same keys must be nanoseconds since this instant.
pub const REDIS_EPOCH_UNIX_SECS: u64 = 1_767_225_600;

/// The Lua source the limiter runs in Redis (for inspection, or to preload it).
pub fn script_source() -> &'static str {
    script::SOURCE
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::algorithm::Gcra {}
    impl Sealed for crate::algorithm::TokenBucket {}
}

/// The algorithms the Redis script implements: [`Gcra`] and [`TokenBucket`].
pub trait RedisAlgorithm: Algorithm + sealed::Sealed {}
impl RedisAlgorithm for Gcra {}
impl RedisAlgorithm for TokenBucket {}

/// A keyed rate limiter whose buckets live in Redis: every process using the same Redis,
/// prefix and quota shares one bucket per key. Async (tokio).
pub struct RedisLimiter<A: RedisAlgorithm = Gcra> {
    connection: RedisConnection,
    quota: Quota,
    args: QuotaArgs,
    /// `<prefix><algorithm>:<rate>/<period ns>/<burst>:`
    key_prefix: String,
    timeout: Duration,
    on_failure: FailurePolicy,
    fallback: Option<KeyedLimiter<String, A>>,
    slack_ms: u64,
}

impl<A: RedisAlgorithm> core::fmt::Debug for RedisLimiter<A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("algorithm", &A::NAME)
            .field("quota", &self.quota)
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .field("on_failure", &self.on_failure)
            .finish_non_exhaustive()
    }
}

impl RedisLimiter<Gcra> {
    /// A GCRA limiter with default options: prefix [`DEFAULT_PREFIX`], timeout
    /// [`DEFAULT_TIMEOUT`], [`FailurePolicy::Error`].
    pub fn gcra(connection: RedisConnection, quota: Quota) -> Self {
        Self::builder(connection, quota).build()
    }

    /// Options: algorithm, prefix, timeout, failure policy, expiry slack.
    pub fn builder(connection: RedisConnection, quota: Quota) -> RedisBuilder<Gcra> {
        RedisBuilder::new(connection, quota)
    }
}

impl RedisLimiter<TokenBucket> {
    /// A token-bucket limiter with default options.
    pub fn token_bucket(connection: RedisConnection, quota: Quota) -> Self {
        RedisBuilder::new(connection, quota).token_bucket().build()
    }
}

impl<A: RedisAlgorithm> RedisLimiter<A> {
    /// One unit for `key`, at Redis's time.
    pub async fn check(&self, key: &str) -> Result<RedisDecision, RedisLimitError> {
        self.run(key, 1, Op::Check, None).await
    }

    /// `n` units for `key`, at Redis's time. `n` above the burst is
    /// [`RedisLimitError::InsufficientCapacity`] (Redis is not asked); `n = 0` is admitted
    /// and changes nothing.
    pub async fn check_n(&self, key: &str, n: u64) -> Result<RedisDecision, RedisLimitError> {
        self.run(key, n, Op::Check, None).await
    }

    /// `n` units for `key` at `now`, nanoseconds since [`REDIS_EPOCH_UNIX_SECS`] (or on the
    /// caller's own scale, if every client of these keys uses it).
    pub async fn check_n_at(
        &self,
        key: &str,
        n: u64,
        now: u64,
    ) -> Result<RedisDecision, RedisLimitError> {
        self.run(key, n, Op::Check, Some(now)).await
    }

    /// What [`check`](Self::check) would decide now, changing nothing.
    pub async fn peek(&self, key: &str) -> Result<RedisDecision, RedisLimitError> {
        self.run(key, 1, Op::Peek, None).await
    }

    /// What [`check_n`](Self::check_n) would decide now, changing nothing.
    pub async fn peek_n(&self, key: &str, n: u64) -> Result<RedisDecision, RedisLimitError> {
        self.run(key, n, Op::Peek, None).await
    }

    /// What [`check_n_at`](Self::check_n_at) would decide at `now`, changing nothing.
    pub async fn peek_n_at(
        &self,
        key: &str,
        n: u64,
        now: u64,
    ) -> Result<RedisDecision, RedisLimitError> {
        self.run(key, n, Op::Peek, Some(now)).await
    }

    /// The Redis key that holds `key`'s bucket.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// # use nanolimit::store::redis::{RedisConnection, RedisLimiter};
    /// # use nanolimit::Quota;
    /// let limiter = RedisLimiter::gcra(RedisConnection::open("redis://127.0.0.1/")?, Quota::per_second(100)?);
    /// assert_eq!(limiter.redis_key("alice"), "nanolimit:gcra:100/1000000000/100:alice");
    /// # Ok(()) }
    /// ```
    pub fn redis_key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.key_prefix.len() + key.len());
        full.push_str(&self.key_prefix);
        full.push_str(key);
        full
    }

    /// The quota.
    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// The timeout of one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The failure policy.
    pub fn failure_policy(&self) -> FailurePolicy {
        self.on_failure
    }

    /// The local limiter used under [`FailurePolicy::Fallback`].
    pub fn fallback(&self) -> Option<&KeyedLimiter<String, A>> {
        self.fallback.as_ref()
    }

    async fn run(
        &self,
        key: &str,
        cost: u64,
        op: Op,
        now: Option<u64>,
    ) -> Result<RedisDecision, RedisLimitError> {
        cost_in_ticks(cost, &self.quota)?;
        let redis_key = self.redis_key(key);
        let call = script::invoke::<A>(
            self.connection.manager.clone(),
            &redis_key,
            op,
            cost,
            now,
            &self.args,
            self.slack_ms,
            REDIS_EPOCH_UNIX_SECS,
        );
        let failure = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(reply)) => {
                return script::decide::<A>(&redis_key, &reply, op, cost, &self.quota)
                    .map(RedisDecision::from_redis)
            }
            Ok(Err(error)) => error,
            Err(_elapsed) => RedisLimitError::Timeout(self.timeout),
        };
        if !failure.is_unavailability() {
            return Err(failure);
        }
        self.degrade(key, cost, op, failure)
    }

    /// Applies the failure policy to a timeout or an unreachable Redis.
    fn degrade(
        &self,
        key: &str,
        cost: u64,
        op: Op,
        failure: RedisLimitError,
    ) -> Result<RedisDecision, RedisLimitError> {
        let (decision, source) = match (self.on_failure, &self.fallback) {
            (FailurePolicy::FailClosed, _) => (
                outcome::closed(&self.quota, cost),
                DecisionSource::FailedClosed,
            ),
            (FailurePolicy::FailOpen, _) => (
                outcome::open(&self.quota, cost, op),
                DecisionSource::FailedOpen,
            ),
            (FailurePolicy::Fallback, Some(local)) => {
                let decision = match op {
                    Op::Check => match local.check_key_n(key, cost) {
                        Ok(decision) => decision,
                        // The local limiter is at its key limit: deny, as failing closed.
                        Err(KeyedError::AtCapacity(_)) => outcome::closed(&self.quota, cost),
                        Err(KeyedError::InsufficientCapacity(error)) => return Err(error.into()),
                    },
                    Op::Peek => local.peek_key_n(key, cost)?,
                };
                (decision, DecisionSource::Fallback)
            }
            _ => return Err(failure),
        };
        Ok(RedisDecision::degraded(decision, source, failure))
    }
}
