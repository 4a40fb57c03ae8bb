//! The limiter behind a policy: keyed or direct (`key = "global"`), GCRA or token bucket,
//! chosen at run time. A small enum over the four concrete types keeps every check a direct,
//! inlinable call (no trait object).

use std::sync::Arc;

use crate::algorithm::{Gcra, TokenBucket};
use crate::clock::Clock;
use crate::decision::Decision;
use crate::limiter::{AtCapacity, DirectLimiter, KeyedError, KeyedLimiter};
use crate::quota::Quota;

use super::spec::AlgorithmKind;

/// What a policy's limiter answered, short of a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The keyed limiter is at its maximum number of keys.
    AtCapacity(AtCapacity),
    /// The cost exceeds the burst (the manager checks this first; kept for completeness).
    NeverFits,
}

impl From<KeyedError> for Refused {
    fn from(e: KeyedError) -> Self {
        match e {
            KeyedError::AtCapacity(e) => Self::AtCapacity(e),
            _ => Self::NeverFits,
        }
    }
}

pub(crate) enum PolicyLimiter<C: Clock> {
    KeyedGcra(KeyedLimiter<String, Gcra, Arc<C>>),
    KeyedTokenBucket(KeyedLimiter<String, TokenBucket, Arc<C>>),
    DirectGcra(DirectLimiter<Gcra, Arc<C>>),
    DirectTokenBucket(DirectLimiter<TokenBucket, Arc<C>>),
}

impl<C: Clock> PolicyLimiter<C> {
    pub(crate) fn new(
        algorithm: AlgorithmKind,
        global: bool,
        quota: Quota,
        max_keys: Option<usize>,
        clock: Arc<C>,
    ) -> Self {
        let keyed = || {
            let builder = KeyedLimiter::builder(quota);
            match max_keys {
                Some(n) => builder.max_keys(n),
                None => builder,
            }
        };
        match (algorithm, global) {
            (AlgorithmKind::Gcra, true) => {
                Self::DirectGcra(DirectLimiter::with_clock(quota, clock))
            }
            (AlgorithmKind::TokenBucket, true) => {
                Self::DirectTokenBucket(DirectLimiter::with_clock(quota, clock))
            }
            (AlgorithmKind::Gcra, false) => Self::KeyedGcra(keyed().clock(clock).build()),
            (AlgorithmKind::TokenBucket, false) => {
                Self::KeyedTokenBucket(keyed().token_bucket().clock(clock).build())
            }
        }
    }

    /// Admits `n` for `key` if the bucket holds it (`key` is ignored by a direct limiter).
    #[inline]
    pub(crate) fn check(&self, key: &str, n: u64) -> Result<Decision, Refused> {
        match self {
            Self::KeyedGcra(l) => Ok(l.check_key_n(key, n)?),
            Self::KeyedTokenBucket(l) => Ok(l.check_key_n(key, n)?),
            Self::DirectGcra(l) => l.check_n(n).map_err(|_| Refused::NeverFits),
            Self::DirectTokenBucket(l) => l.check_n(n).map_err(|_| Refused::NeverFits),
        }
    }

    /// What `check` would answer now, changing nothing.
    #[inline]
    pub(crate) fn peek(&self, key: &str, n: u64) -> Result<Decision, Refused> {
        let r = match self {
            Self::KeyedGcra(l) => l.peek_key_n(key, n),
            Self::KeyedTokenBucket(l) => l.peek_key_n(key, n),
            Self::DirectGcra(l) => l.peek_n(n),
            Self::DirectTokenBucket(l) => l.peek_n(n),
        };
        r.map_err(|_| Refused::NeverFits)
    }

    /// Whether a check of a new key could now be refused at capacity: a keyed limiter with a
    /// key limit that it has reached. (Below the limit, a check alone always finds room.)
    #[inline]
    pub(crate) fn may_refuse_new_key(&self) -> bool {
        match self {
            Self::KeyedGcra(l) => l.max_keys().is_some_and(|max| l.len() >= max),
            Self::KeyedTokenBucket(l) => l.max_keys().is_some_and(|max| l.len() >= max),
            Self::DirectGcra(_) | Self::DirectTokenBucket(_) => false,
        }
    }

    /// Tracks `key` (a full bucket, nothing consumed) so that a check now is not refused at
    /// capacity: `Ok(true)` if this call stored it.
    pub(crate) fn reserve(&self, key: &str) -> Result<bool, Refused> {
        match self {
            Self::KeyedGcra(l) => l.reserve_key(key).map_err(Refused::AtCapacity),
            Self::KeyedTokenBucket(l) => l.reserve_key(key).map_err(Refused::AtCapacity),
            Self::DirectGcra(_) | Self::DirectTokenBucket(_) => Ok(false),
        }
    }

    /// Undoes a [`reserve`](Self::reserve) that stored `key`, if the key is still idle.
    pub(crate) fn unreserve(&self, key: &str) {
        match self {
            Self::KeyedGcra(l) => {
                l.evict_if_idle(key);
            }
            Self::KeyedTokenBucket(l) => {
                l.evict_if_idle(key);
            }
            Self::DirectGcra(_) | Self::DirectTokenBucket(_) => {}
        }
    }

    /// Forgets `key` (a keyed limiter only): whether it was tracked.
    pub(crate) fn remove(&self, key: &str) -> bool {
        match self {
            Self::KeyedGcra(l) => l.remove(key),
            Self::KeyedTokenBucket(l) => l.remove(key),
            Self::DirectGcra(_) | Self::DirectTokenBucket(_) => false,
        }
    }

    /// Keys currently tracked (1 for a direct limiter).
    pub(crate) fn keys(&self) -> usize {
        match self {
            Self::KeyedGcra(l) => l.len(),
            Self::KeyedTokenBucket(l) => l.len(),
            Self::DirectGcra(_) | Self::DirectTokenBucket(_) => 1,
        }
    }
}
