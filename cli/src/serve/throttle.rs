//! The store behind `CL.THROTTLE`: one keyed GCRA limiter per distinct quota.
//!
//! As in redis-cell, the quota comes with each call. The same key called with different
//! parameters gets a different bucket: a key is namespaced by its quota (`max_burst`, `count`,
//! `period`), so callers that disagree about a key's quota never reset or borrow from each
//! other's state. Memory is bounded twice: at most `max_quotas` distinct quotas, each with at
//! most `max_keys` keys (idle keys, whose buckets are full again, are evicted as the limiter
//! grows; a new key that finds no room is refused). When every quota slot is taken, a new
//! quota first reclaims the quotas that no request is using and whose buckets are all full
//! again (dropping them changes no answer: their keys would start full anyway); in memory that
//! takes a sweep of their keys, so it runs at most once per [`RECLAIM_INTERVAL`].

use core::fmt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use nanolimit::{Clock, Decision, Gcra, KeyedError, KeyedLimiter, Quota, QuotaError};

/// The clock every limiter of the service reads (the monotonic clock, or a manual one in
/// tests).
pub type SharedClock = Arc<dyn Clock>;

/// One quota's limiter; keys are raw bytes (Redis keys need not be UTF-8).
pub type ThrottleLimiter = KeyedLimiter<Vec<u8>, Gcra, SharedClock>;

/// The quota arguments of a `CL.THROTTLE` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ThrottleParams {
    /// `max_burst`: the bucket holds `max_burst + 1`.
    pub max_burst: u64,
    /// `count` admissions per `period`.
    pub count: u64,
    /// `period` in seconds.
    pub period_secs: u64,
}

impl ThrottleParams {
    /// The limit reported in replies: `max_burst + 1`.
    pub fn limit(&self) -> u64 {
        self.max_burst.saturating_add(1)
    }

    /// The quota, or which argument is out of range.
    pub fn quota(&self) -> Result<Quota, ThrottleError> {
        let bad = |name: &'static str, e: QuotaError| ThrottleError::BadArgument {
            name,
            reason: e.to_string(),
        };
        let period = Duration::from_secs(self.period_secs);
        let quota = Quota::new(self.count, period).map_err(|e| match e {
            QuotaError::PeriodTooLong | QuotaError::ZeroPeriod => bad("period", e),
            _ => bad("count", e),
        })?;
        quota
            .with_burst(self.limit())
            .map_err(|e| bad("max_burst", e))
    }
}

/// Why a `CL.THROTTLE` call decided nothing. Nothing changed in any of these cases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ThrottleError {
    /// An argument is not a number in its range.
    BadArgument {
        /// The argument's name as in the command's syntax.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// `quantity` exceeds the limit: it could never be admitted.
    QuantityAboveLimit {
        /// The quantity asked for.
        quantity: u64,
        /// `max_burst + 1`.
        limit: u64,
    },
    /// A new quota while `max_quotas` distinct quotas are in use.
    TooManyQuotas {
        /// The bound.
        max: usize,
    },
    /// A new key while its quota's limiter holds `max_keys` keys and none is idle.
    AtCapacity {
        /// The bound.
        max_keys: usize,
    },
    /// `--store`: Redis failed and the failure policy is `error`, or Redis holds something
    /// else under the key.
    Store(String),
}

impl fmt::Display for ThrottleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadArgument { name, reason } => write!(f, "ERR invalid {name}: {reason}"),
            Self::QuantityAboveLimit { quantity, limit } => write!(
                f,
                "ERR invalid quantity: {quantity} is more than the limit {limit} (max_burst + 1) and can never be admitted"
            ),
            Self::TooManyQuotas { max } => write!(
                f,
                "ERR too many distinct quotas: at most {max} (max_burst, count, period) combinations are tracked"
            ),
            Self::AtCapacity { max_keys } => write!(
                f,
                "ERR at capacity: {max_keys} keys are tracked for this quota and none is idle"
            ),
            Self::Store(detail) => write!(f, "ERR store unavailable: {detail}"),
        }
    }
}

impl std::error::Error for ThrottleError {}

/// The `CL.THROTTLE` reply: limited, limit, remaining, retry-after, reset-after.
pub type ThrottleReply = [i64; 5];

/// One limiter per distinct quota, made on first use, at most `max_quotas` of them: the
/// in-memory limiters here, and the Redis ones of `--store`.
pub struct PerQuota<L> {
    limiters: RwLock<HashMap<ThrottleParams, Arc<L>>>,
    max_quotas: usize,
}

impl<L> PerQuota<L> {
    /// An empty map holding at most `max_quotas` limiters.
    pub fn new(max_quotas: usize) -> Self {
        Self {
            limiters: RwLock::new(HashMap::new()),
            max_quotas,
        }
    }

    /// The limiter of `params`, made by `make` from its quota on first use. When every slot
    /// is taken, the limiters that no caller holds and for which `idle` says so are dropped
    /// first to make room.
    pub fn get(
        &self,
        params: ThrottleParams,
        make: impl FnOnce(Quota) -> L,
        mut idle: impl FnMut(&L) -> bool,
    ) -> Result<Arc<L>, ThrottleError> {
        if let Some(l) = self.read().get(&params) {
            return Ok(Arc::clone(l));
        }
        let quota = params.quota()?;
        // A poisoned lock only means another thread panicked while holding it; the map itself
        // is always whole (inserts are single calls), so its contents are still good.
        let mut map = self.limiters.write().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = map.get(&params) {
            return Ok(Arc::clone(l));
        }
        if map.len() >= self.max_quotas {
            // Held by nobody else (`get_mut`): no request is deciding on it, and none can start
            // while this write lock is held, so dropping an idle one loses no admission.
            map.retain(|_, l| match Arc::get_mut(l) {
                Some(l) => !idle(l),
                None => true,
            });
        }
        if map.len() >= self.max_quotas {
            return Err(ThrottleError::TooManyQuotas {
                max: self.max_quotas,
            });
        }
        let limiter = Arc::new(make(quota));
        map.insert(params, Arc::clone(&limiter));
        Ok(limiter)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<ThrottleParams, Arc<L>>> {
        // Poisoned: as in `get`.
        self.limiters.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// The least time between two sweeps that reclaim idle quotas: a flood of new quotas cannot
/// make the server sweep every key over and over.
pub const RECLAIM_INTERVAL: Duration = Duration::from_secs(1);

/// All the quotas' limiters.
pub struct Throttle {
    limiters: PerQuota<ThrottleLimiter>,
    clock: SharedClock,
    max_keys: usize,
    /// Clock time (ns) from which the next reclaiming sweep may run.
    next_reclaim_ns: AtomicU64,
}

impl Throttle {
    /// An empty store.
    pub fn new(clock: SharedClock, max_keys: usize, max_quotas: usize) -> Self {
        Self {
            limiters: PerQuota::new(max_quotas),
            clock,
            max_keys,
            next_reclaim_ns: AtomicU64::new(0),
        }
    }

    /// The limiter of `params`, created on first use.
    pub fn limiter(&self, params: ThrottleParams) -> Result<Arc<ThrottleLimiter>, ThrottleError> {
        let mut sweep_due = None;
        let idle = |l: &ThrottleLimiter| {
            // Decided once per reclaim, which is rare: the clock is read only then, never on
            // the path of a known quota. Relaxed: only read and written inside `get`'s write
            // lock, which orders every access.
            let due = *sweep_due.get_or_insert_with(|| {
                let now = self.clock.now();
                let due = now >= self.next_reclaim_ns.load(Ordering::Relaxed);
                if due {
                    let next = now.saturating_add(RECLAIM_INTERVAL.as_nanos() as u64);
                    self.next_reclaim_ns.store(next, Ordering::Relaxed);
                }
                due
            });
            due && {
                l.evict_idle();
                l.is_empty()
            }
        };
        let make = |quota| {
            KeyedLimiter::builder(quota)
                .clock(Arc::clone(&self.clock))
                .max_keys(self.max_keys)
                .amortized_eviction(true)
                .build()
        };
        self.limiters.get(params, make, idle)
    }

    /// One `CL.THROTTLE` decision on `limiter` (of `params`) for `key`. A quantity of 0 takes
    /// nothing and reports the bucket as it is.
    pub fn throttle(
        limiter: &ThrottleLimiter,
        params: &ThrottleParams,
        key: &[u8],
        quantity: u64,
    ) -> Result<ThrottleReply, ThrottleError> {
        let limit = params.limit();
        let decision = match limiter.check_key_n(key, quantity) {
            Ok(d) => d,
            Err(KeyedError::AtCapacity(e)) => {
                return Err(ThrottleError::AtCapacity {
                    max_keys: e.max_keys,
                })
            }
            Err(_) => return Err(ThrottleError::QuantityAboveLimit { quantity, limit }),
        };
        Ok(Self::reply(&decision, limit))
    }

    /// The reply for `decision` of a quota whose limit (`max_burst + 1`) is `limit`:
    /// retry-after and reset-after in whole seconds, rounded up.
    pub fn reply(decision: &Decision, limit: u64) -> ThrottleReply {
        let secs = |s: u64| i64::try_from(s).unwrap_or(i64::MAX);
        [
            i64::from(decision.is_denied()),
            secs(limit),
            secs(decision.remaining()),
            if decision.is_allowed() {
                -1
            } else {
                secs(decision.retry_after_secs())
            },
            secs(decision.reset_after_secs()),
        ]
    }

    /// Distinct quotas in use.
    pub fn quotas(&self) -> usize {
        self.limiters.read().len()
    }

    /// Keys tracked over all quotas.
    pub fn keys(&self) -> usize {
        self.limiters.read().values().map(|l| l.len()).sum()
    }

    /// `max_keys` per quota.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// `max_quotas`.
    pub fn max_quotas(&self) -> usize {
        self.limiters.max_quotas
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nanolimit::ManualClock;

    /// 1,000 per second with a bucket of 1: full again 1 ms after a use.
    fn quota(n: u64) -> ThrottleParams {
        ThrottleParams {
            max_burst: 0,
            count: 1_000,
            period_secs: n,
        }
    }

    /// Fault pinned: quota slots were never given back, so a client that called
    /// `CL.THROTTLE` with `max_quotas` distinct quotas once refused every new quota until
    /// the server restarted. Idle quotas are now reclaimed, by a sweep at most once a second.
    #[test]
    fn idle_quotas_are_reclaimed_at_most_once_per_interval() {
        let clock = ManualClock::new(0);
        let throttle = Throttle::new(Arc::new(clock.clone()), 16, 2);
        let use_quota = |n: u64| {
            let l = throttle.limiter(quota(n))?;
            Throttle::throttle(&l, &quota(n), b"k", 1)
        };
        assert_eq!(use_quota(1).unwrap()[0], 0);
        assert_eq!(use_quota(2).unwrap()[0], 0);
        // Both buckets are empty: nothing to reclaim (this sweep sets the next one at 1 s).
        let full = Err(ThrottleError::TooManyQuotas { max: 2 });
        assert_eq!(use_quota(3), full);
        // Idle after 1 ms, but the last sweep was less than a second ago.
        clock.set(999_999_999);
        assert_eq!(use_quota(3), full);
        assert_eq!(throttle.quotas(), 2);
        clock.set(1_000_000_000);
        assert_eq!(use_quota(3).unwrap()[0], 0);
        assert_eq!((throttle.quotas(), throttle.keys()), (1, 1));
        // A quota in use by a request is never dropped, idle or not.
        let held = throttle.limiter(quota(3)).unwrap();
        assert_eq!(use_quota(4).unwrap()[0], 0);
        clock.set(3_000_000_000);
        assert_eq!(use_quota(5).unwrap()[0], 0, "quota 4 was idle and not held");
        assert_eq!(throttle.quotas(), 2);
        clock.set(5_000_000_000);
        assert_eq!(use_quota(6).unwrap()[0], 0);
        let kept = |n| throttle.limiters.read().contains_key(&quota(n));
        assert!(
            kept(3) && !kept(5),
            "both idle; quota 3 is held, so quota 5 made room"
        );
        drop(held);
    }
}
