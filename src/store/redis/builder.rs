//! Options of a [`RedisLimiter`](super::RedisLimiter) and of its connection.

use core::marker::PhantomData;
use core::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::Client;

use super::error::RedisLimitError;
use super::outcome::FailurePolicy;
use super::script::QuotaArgs;
use super::{RedisAlgorithm, RedisLimiter};
use crate::algorithm::{Gcra, TokenBucket};
use crate::limiter::KeyedLimiter;
use crate::quota::Quota;

/// The default timeout of one call to Redis: 50 ms.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

/// The default key prefix: `nanolimit:`.
pub const DEFAULT_PREFIX: &str = "nanolimit:";

/// The most keys the default fallback limiter tracks (it then refuses new keys until idle
/// ones can be dropped): 100,000.
pub const DEFAULT_FALLBACK_MAX_KEYS: usize = 100_000;

/// The largest expiry slack: 10^12 ms (about 31 years), far inside what Redis accepts.
const MAX_SLACK_MS: u64 = 1_000_000_000_000;

/// A connection to one Redis server, shared by any number of limiters: cloning is cheap, and
/// every clone multiplexes its commands (pipelined) over the same TCP connection, which is
/// re-established in the background after a failure.
///
/// ```no_run
/// # async fn example() -> Result<(), nanolimit::store::redis::RedisLimitError> {
/// use nanolimit::store::redis::{RedisConnection, RedisLimiter};
/// use nanolimit::Quota;
///
/// let redis = RedisConnection::open("redis://127.0.0.1:6379")?; // connects lazily
/// let api = RedisLimiter::gcra(redis.clone(), Quota::per_second(100).unwrap());
/// let login = RedisLimiter::builder(redis, Quota::per_minute(5).unwrap()).prefix("login:").build();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisConnection {
    pub(crate) manager: ConnectionManager,
}

impl core::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RedisConnection").finish_non_exhaustive()
    }
}

impl RedisConnection {
    /// A connection to the server at `url` (`redis://host:port/db`, `rediss://` needs the
    /// `redis` crate's TLS features). Nothing is sent until the first check, so this succeeds
    /// even while Redis is down. Must be called inside a tokio runtime.
    ///
    /// Reconnection: after a failure, attempts are retried with exponential backoff (from
    /// 50 ms, at most 1 s apart, 4 times), and the next call after the last one starts again;
    /// each attempt gives up after 1 s.
    pub fn open(url: &str) -> Result<Self, RedisLimitError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(RedisLimitError::Config(
                "RedisConnection::open must be called inside a tokio runtime".into(),
            ));
        }
        let client = Client::open(url)
            .map_err(|error| RedisLimitError::Config(format!("bad Redis URL {url:?}: {error}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            // Each limiter's own timeout bounds every call (RedisLimitError::Timeout).
            .set_response_timeout(None)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1))
            .set_number_of_retries(4);
        let manager = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|error| RedisLimitError::Config(format!("cannot set up {url:?}: {error}")))?;
        Ok(Self { manager })
    }

    /// A connection managed by the caller's own `ConnectionManager` (custom retry, timeouts,
    /// TLS, authentication).
    pub fn from_manager(manager: ConnectionManager) -> Self {
        Self { manager }
    }
}

/// Options of a [`RedisLimiter`]. Made by [`RedisLimiter::builder`].
pub struct RedisBuilder<A: RedisAlgorithm = Gcra> {
    connection: RedisConnection,
    quota: Quota,
    prefix: String,
    timeout: Duration,
    on_failure: FailurePolicy,
    fallback: Option<KeyedLimiter<String, A>>,
    expiry_slack: Duration,
    algorithm: PhantomData<A>,
}

impl RedisBuilder<Gcra> {
    pub(crate) fn new(connection: RedisConnection, quota: Quota) -> Self {
        Self {
            connection,
            quota,
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            on_failure: FailurePolicy::Error,
            fallback: None,
            expiry_slack: Duration::ZERO,
            algorithm: PhantomData,
        }
    }
}

impl<A: RedisAlgorithm> RedisBuilder<A> {
    /// Use algorithm `B` (GCRA or the token bucket; they decide identically, and their keys
    /// are distinct).
    pub fn algorithm<B: RedisAlgorithm>(self) -> RedisBuilder<B> {
        RedisBuilder {
            connection: self.connection,
            quota: self.quota,
            prefix: self.prefix,
            timeout: self.timeout,
            on_failure: self.on_failure,
            fallback: None,
            expiry_slack: self.expiry_slack,
            algorithm: PhantomData,
        }
    }

    /// Use GCRA (the default).
    pub fn gcra(self) -> RedisBuilder<Gcra> {
        self.algorithm()
    }

    /// Use the token bucket.
    pub fn token_bucket(self) -> RedisBuilder<TokenBucket> {
        self.algorithm()
    }

    /// The start of every Redis key of this limiter (default [`DEFAULT_PREFIX`]). Give each
    /// policy its own. A hash tag here (`{api}:`) would put all of its keys in one Redis
    /// Cluster slot; see the module documentation.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The longest wait for one answer from Redis (default [`DEFAULT_TIMEOUT`]), connection
    /// included; past it the call fails with [`RedisLimitError::Timeout`] and the failure
    /// policy applies. Timeouts need a tokio runtime with its time driver enabled.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What to do when Redis times out or is unreachable (default [`FailurePolicy::Error`]).
    /// [`FailurePolicy::Fallback`] builds a local [`KeyedLimiter`] of the same quota and
    /// algorithm holding at most [`DEFAULT_FALLBACK_MAX_KEYS`] keys, unless
    /// [`fallback_limiter`](Self::fallback_limiter) supplies one.
    pub fn on_failure(mut self, policy: FailurePolicy) -> Self {
        self.on_failure = policy;
        self
    }

    /// Fall back to `limiter` when Redis fails (sets [`FailurePolicy::Fallback`]). Its quota
    /// should be the same as this limiter's.
    pub fn fallback_limiter(mut self, limiter: KeyedLimiter<String, A>) -> Self {
        self.on_failure = FailurePolicy::Fallback;
        self.fallback = Some(limiter);
        self
    }

    /// Time added to every key's expiry (default zero: a key expires when its bucket is full
    /// again, rounded up to the millisecond). Only useful with explicit times (`check_n_at`)
    /// that do not advance with Redis's clock, as in tests and replays.
    pub fn expiry_slack(mut self, slack: Duration) -> Self {
        self.expiry_slack = slack;
        self
    }

    /// The limiter. Sends nothing to Redis.
    pub fn build(self) -> RedisLimiter<A> {
        let fallback = match (self.on_failure, self.fallback) {
            (FailurePolicy::Fallback, Some(limiter)) => Some(limiter),
            (FailurePolicy::Fallback, None) => Some(
                KeyedLimiter::builder(self.quota)
                    .algorithm::<A>()
                    .max_keys(DEFAULT_FALLBACK_MAX_KEYS)
                    .build(),
            ),
            _ => None,
        };
        let key_prefix = format!(
            "{}{}:{}/{}/{}:",
            self.prefix,
            A::NAME,
            self.quota.rate(),
            self.quota.period().as_nanos(),
            self.quota.burst()
        );
        RedisLimiter {
            connection: self.connection,
            quota: self.quota,
            args: QuotaArgs::new::<A>(&self.quota),
            key_prefix,
            timeout: self.timeout,
            on_failure: self.on_failure,
            fallback,
            slack_ms: u64::try_from(self.expiry_slack.as_millis())
                .unwrap_or(u64::MAX)
                .min(MAX_SLACK_MS),
        }
    }
}
