//! Options for a [`KeyedLimiter`]: algorithm, clock, hasher, memory bound and eviction.

use core::hash::{BuildHasher, Hash};
use core::marker::PhantomData;
use core::time::Duration;

use super::{Config, DefaultKeyHasher, KeyedLimiter};
use crate::algorithm::{Algorithm, Gcra, TokenBucket};
use crate::clock::{Clock, DefaultClock};
use crate::quota::Quota;

/// What a full limiter (see [`KeyedBuilder::max_keys`]) does with a new key when no idle key
/// can be reclaimed. Keys already tracked are never affected: they keep their limits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CapacityPolicy {
    /// Refuse the request with [`AtCapacity`](crate::AtCapacity) (fail closed). Under a flood
    /// of distinct keys, new clients are turned away until keys go idle, and the limiter's
    /// memory and every tracked key's limit hold. The default.
    #[default]
    Refuse,
    /// Judge the request against a new, full bucket and store nothing (fail open): each
    /// request from an untracked key is admitted unless its cost exceeds the burst. Memory
    /// still holds; what is given up is limiting the keys that did not fit.
    Untracked,
}

/// How long a full limiter waits, by default, between two reclaiming sweeps that are not
/// paid for by refusals (see [`KeyedBuilder::reclaim_interval`]).
pub const DEFAULT_RECLAIM_INTERVAL: Duration = Duration::from_secs(1);

/// An amortized sweep runs when the number of keys has grown by at least this many (and at
/// least doubled) since the last sweep.
pub(super) const SWEEP_GROWTH_FLOOR: u64 = 1024;

/// Builds a [`KeyedLimiter`]; start from [`KeyedLimiter::builder`].
///
/// ```
/// use nanolimit::{CapacityPolicy, KeyedLimiter, ManualClock, Quota};
///
/// let limiter: KeyedLimiter<String, _, _> = KeyedLimiter::builder(Quota::per_second(10)?)
///     .token_bucket()
///     .clock(ManualClock::default())
///     .max_keys(2)
///     .when_full(CapacityPolicy::Refuse)
///     .build();
/// assert!(limiter.check_key("a").unwrap().is_allowed());
/// assert!(limiter.check_key("b").unwrap().is_allowed());
/// assert!(limiter.check_key("c").is_err()); // a third key does not fit, and none is idle
/// # Ok::<(), nanolimit::QuotaError>(())
/// ```
#[derive(Debug)]
#[must_use]
pub struct KeyedBuilder<K, A = Gcra, C = DefaultClock, S = DefaultKeyHasher> {
    quota: Quota,
    clock: C,
    hasher: S,
    capacity: usize,
    config: Config,
    types: PhantomData<fn() -> (K, A)>,
}

impl<K> KeyedBuilder<K> {
    pub(super) fn new(quota: Quota) -> Self {
        Self {
            quota,
            clock: DefaultClock::default(),
            hasher: DefaultKeyHasher::default(),
            capacity: 0,
            config: Config {
                max_keys: u64::MAX,
                policy: CapacityPolicy::Refuse,
                amortized: true,
                reclaim_interval_ns: nanos(DEFAULT_RECLAIM_INTERVAL),
                growth_floor: SWEEP_GROWTH_FLOOR,
            },
            types: PhantomData,
        }
    }
}

impl<K, A: Algorithm, C: Clock, S> KeyedBuilder<K, A, C, S> {
    /// Use algorithm `B` ([`Gcra`] or [`TokenBucket`]; they decide identically).
    pub fn algorithm<B: Algorithm>(self) -> KeyedBuilder<K, B, C, S> {
        KeyedBuilder {
            quota: self.quota,
            clock: self.clock,
            hasher: self.hasher,
            capacity: self.capacity,
            config: self.config,
            types: PhantomData,
        }
    }

    /// Use GCRA (the default).
    pub fn gcra(self) -> KeyedBuilder<K, Gcra, C, S> {
        self.algorithm()
    }

    /// Use the token bucket.
    pub fn token_bucket(self) -> KeyedBuilder<K, TokenBucket, C, S> {
        self.algorithm()
    }

    /// Read time from `clock` (for example a [`ManualClock`](crate::ManualClock) in tests).
    pub fn clock<D: Clock>(self, clock: D) -> KeyedBuilder<K, A, D, S> {
        KeyedBuilder {
            quota: self.quota,
            clock,
            hasher: self.hasher,
            capacity: self.capacity,
            config: self.config,
            types: PhantomData,
        }
    }

    /// Hash keys with `hasher` instead of the default [`DefaultKeyHasher`] (foldhash, seeded
    /// per instance). Where keys are chosen by untrusted clients and hash flooding is a
    /// concern, `std::collections::hash_map::RandomState` (SipHash-1-3, seeded from the OS)
    /// trades some speed for collision resistance that does not depend on the seed staying
    /// secret from timing.
    ///
    /// ```
    /// use nanolimit::{KeyedLimiter, ManualClock, Quota};
    /// use std::collections::hash_map::RandomState;
    ///
    /// let limiter = KeyedLimiter::builder(Quota::per_second(1)?)
    ///     .clock(ManualClock::default())
    ///     .hasher(RandomState::new())
    ///     .build();
    /// assert!(limiter.check_key("10.0.0.1").unwrap().is_allowed());
    /// assert!(limiter.check_key("10.0.0.1").unwrap().is_denied());
    /// # let _: &KeyedLimiter<String, _, _, RandomState> = &limiter;
    /// # Ok::<(), nanolimit::QuotaError>(())
    /// ```
    pub fn hasher<T: BuildHasher>(self, hasher: T) -> KeyedBuilder<K, A, C, T> {
        KeyedBuilder {
            quota: self.quota,
            clock: self.clock,
            hasher,
            capacity: self.capacity,
            config: self.config,
            types: PhantomData,
        }
    }

    /// Track at most `max_keys` keys. A new key that finds the limiter full first reclaims
    /// idle keys (a sweep, see [`reclaim_interval`](Self::reclaim_interval)); if none can be
    /// reclaimed it meets the [`CapacityPolicy`]. Without this bound (the default) memory
    /// grows with the number of keys that are not idle. `0` tracks no key at all.
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.config.max_keys = u64::try_from(max_keys).unwrap_or(u64::MAX);
        self
    }

    /// What to do with a new key when the limiter is full (default:
    /// [`CapacityPolicy::Refuse`]).
    pub fn when_full(mut self, policy: CapacityPolicy) -> Self {
        self.config.policy = policy;
        self
    }

    /// Sweep idle keys as part of normal operation (default: on). A sweep runs, on the thread
    /// that inserts a new key, once the number of keys has doubled (and grown by at least
    /// 1,024) since the last sweep. A sweep visits every key, so its cost, spread over the
    /// insertions since the last one, is at most about two key visits per insertion; the
    /// thread that triggers it pays for the whole sweep at once. Memory stays within about
    /// twice the keys that were busy at the last sweep. Off, keys leave only through
    /// [`evict_idle`](KeyedLimiter::evict_idle), a [sweeper thread](KeyedLimiter::spawn_sweeper),
    /// [`remove`](KeyedLimiter::remove), or reclaiming at capacity.
    pub fn amortized_eviction(mut self, on: bool) -> Self {
        self.config.amortized = on;
        self
    }

    /// At capacity, a new key triggers a reclaiming sweep if none ran for `interval`
    /// (default [`DEFAULT_RECLAIM_INTERVAL`], 1 s), or if at least `max_keys / 2` new keys have
    /// met the full limiter since the last sweep. A sweep costs one visit per key, so when
    /// every key is busy this bounds the wasted work to one sweep per `interval` plus, at
    /// most, two visits per refused key. Other threads never wait for a sweep: while one runs,
    /// they apply the policy.
    pub fn reclaim_interval(mut self, interval: Duration) -> Self {
        self.config.reclaim_interval_ns = nanos(interval);
        self
    }

    /// Size the map for `capacity` keys up front (default: 0, grow on demand). A hint: it is
    /// lowered to `max_keys` when that is smaller, and to [`MAX_PREALLOCATED_KEYS`] (2^20)
    /// in any case, so that a mistaken value cannot overflow or exhaust memory at
    /// construction; the map still grows past it on demand.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// The limiter. Every key starts with a full bucket.
    pub fn build(self) -> KeyedLimiter<K, A, C, S>
    where
        K: Hash + Eq,
        S: BuildHasher,
    {
        let bound = usize::try_from(self.config.max_keys).unwrap_or(usize::MAX);
        let capacity = self.capacity.min(bound).min(MAX_PREALLOCATED_KEYS);
        KeyedLimiter::from_parts(self.quota, self.clock, self.hasher, capacity, self.config)
    }
}

/// The most keys [`KeyedBuilder::capacity`] preallocates room for: 2^20 (about a million);
/// larger hints are lowered to it, and the map grows past it on demand.
pub const MAX_PREALLOCATED_KEYS: usize = 1 << 20;

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
