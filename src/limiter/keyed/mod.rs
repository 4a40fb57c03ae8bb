//! Many buckets, one per key: a papaya map from key to [`Cell`], with idle-key eviction and a
//! memory bound.
//!
//! Layout:
//! - `protocol`: how a cell is retired and removed without losing a concurrent admission (the
//!   part the loom models check);
//! - this file: the map, lookups without allocation, inserting under the capacity bound;
//! - `builder`, `stats`, `sweeper` (a background thread), `error`.

use core::borrow::Borrow;
use core::fmt;
use core::hash::{BuildHasher, Hash};
use core::marker::PhantomData;
use core::ptr;

use papaya::{Guard, HashMap, HashMapRef, LocalGuard};

use crate::algorithm::{Algorithm, Gcra, TokenBucket};
use crate::cell::Cell;
use crate::clock::{Clock, DefaultClock};
use crate::decision::Decision;
use crate::error::InsufficientCapacity;
use crate::quota::Quota;
use crate::sync::Ordering;

mod builder;
mod error;
#[cfg(nanolimit_loom)]
pub mod protocol;
#[cfg(not(nanolimit_loom))]
mod protocol;
mod stats;
mod sweeper;

pub use builder::{CapacityPolicy, KeyedBuilder, DEFAULT_RECLAIM_INTERVAL, MAX_PREALLOCATED_KEYS};
pub use error::{AtCapacity, KeyedError};
pub use stats::KeyedStats;
pub use sweeper::SweeperHandle;

use protocol::{InsertSlot, Slot};
use stats::Counters;

/// The default hasher of a [`KeyedLimiter`]: foldhash's fast variant, with a random seed per
/// limiter.
///
/// Chosen over ahash (the other common fast choice) because it is designed for the short keys
/// rate limiters see (integers, IP addresses, API keys of a few dozen bytes), has no
/// dependencies, and is what hashbrown itself now defaults to. Its seeds come from address
/// randomization, the time and a heap address rather than the OS's random source: enough that
/// collisions cannot be precomputed, but foldhash does not claim resistance to an attacker
/// who can probe the map's timing at length. Where keys are attacker-chosen and that matters,
/// pass `std::collections::hash_map::RandomState` (SipHash) to
/// [`KeyedBuilder::hasher`]; it is slower per lookup.
#[derive(Clone, Debug, Default)]
pub struct DefaultKeyHasher(foldhash::fast::RandomState);

impl BuildHasher for DefaultKeyHasher {
    type Hasher = foldhash::fast::FoldHasher<'static>;

    #[inline]
    fn build_hasher(&self) -> Self::Hasher {
        self.0.build_hasher()
    }
}

/// Options fixed at construction.
#[derive(Clone, Copy, Debug)]
struct Config {
    /// `u64::MAX`: unbounded.
    max_keys: u64,
    policy: CapacityPolicy,
    amortized: bool,
    reclaim_interval_ns: u64,
    growth_floor: u64,
}

/// The map pinned for one operation.
type Pinned<'m, K, S> = HashMapRef<'m, K, Cell, S, LocalGuard<'m>>;

/// A rate limit per key (client address, API key, route, ...), each key with its own bucket,
/// safe to use from many threads.
///
/// Each key's whole state is one `AtomicU64` inside the map's entry, updated in place: a check
/// on a key already present is a lookup, one clock read and one CAS, with no lock and no
/// allocation. Keys can be looked up by a borrowed form (a `KeyedLimiter<String>` is checked
/// with a `&str`); only a new key is copied into the map.
///
/// A key whose bucket has refilled is indistinguishable from one never seen, so it can be
/// forgotten: [`evict_idle`](Self::evict_idle) sweeps such keys, the limiter sweeps by itself
/// as it grows (see [`KeyedBuilder::amortized_eviction`]), and a [sweeper
/// thread](Self::spawn_sweeper) can do it on a timer. Eviction never loses an admission made
/// concurrently (see `docs/design.md`, "Keyed limiter"). [`KeyedBuilder::max_keys`] bounds
/// memory outright.
///
/// ```
/// use nanolimit::{KeyedLimiter, ManualClock, Quota};
/// use std::time::Duration;
///
/// let clock = ManualClock::default();
/// let limiter = KeyedLimiter::builder(Quota::per_second(2)?)
///     .clock(clock.clone())
///     .build();
/// assert!(limiter.check_key("alice").unwrap().is_allowed());
/// assert!(limiter.check_key("alice").unwrap().is_allowed());
/// assert!(limiter.check_key("alice").unwrap().is_denied()); // alice used her burst
/// assert!(limiter.check_key("bob").unwrap().is_allowed()); // bob has his own bucket
///
/// clock.advance(Duration::from_secs(1)); // both buckets refill: both keys are idle
/// assert_eq!(limiter.evict_idle(), 2);
/// assert!(limiter.is_empty());
/// # let _: &KeyedLimiter<String, _, _> = &limiter;
/// # Ok::<(), nanolimit::QuotaError>(())
/// ```
pub struct KeyedLimiter<K, A: Algorithm = Gcra, C: Clock = DefaultClock, S = DefaultKeyHasher> {
    map: HashMap<K, Cell, S>,
    quota: Quota,
    clock: C,
    config: Config,
    counters: Counters,
    algorithm: PhantomData<A>,
}

impl<K: Hash + Eq> KeyedLimiter<K, Gcra, DefaultClock, DefaultKeyHasher> {
    /// A GCRA limiter per key, on the default clock, with default options (amortized eviction
    /// on, no `max_keys`).
    pub fn gcra(quota: Quota) -> Self {
        Self::builder(quota).build()
    }

    /// Options: algorithm, clock, hasher, `max_keys` and its policy, eviction.
    pub fn builder(quota: Quota) -> KeyedBuilder<K> {
        KeyedBuilder::new(quota)
    }
}

impl<K: Hash + Eq> KeyedLimiter<K, TokenBucket, DefaultClock, DefaultKeyHasher> {
    /// A token-bucket limiter per key, on the default clock, with default options.
    pub fn token_bucket(quota: Quota) -> Self {
        KeyedBuilder::new(quota).token_bucket().build()
    }
}

impl<K, A, C, S> KeyedLimiter<K, A, C, S>
where
    K: Hash + Eq,
    A: Algorithm,
    C: Clock,
    S: BuildHasher,
{
    fn from_parts(quota: Quota, clock: C, hasher: S, capacity: usize, config: Config) -> Self {
        // Blocking resizes: the inserting threads finish a resize before going on, so lookups
        // never probe two tables. (papaya's default, incremental, leaves the last resize
        // half-done until enough later inserts copy it: every check of an existing key then
        // probes the old table first. Measured in docs/benchmarks.md.)
        let map = HashMap::builder()
            .hasher(hasher)
            .capacity(capacity)
            .resize_mode(papaya::ResizeMode::Blocking)
            .build();
        Self {
            map,
            quota,
            clock,
            counters: Counters::new(config.growth_floor),
            config,
            algorithm: PhantomData,
        }
    }

    /// One request of cost 1 for `key`: admitted (and consumed) or denied (nothing changes).
    /// A new key starts with a full bucket. [`AtCapacity`] only if the key is new, the
    /// limiter holds `max_keys` keys, none is idle, and the policy is `Refuse`.
    ///
    /// ```
    /// use nanolimit::{KeyedLimiter, ManualClock, Quota};
    ///
    /// let limiter = KeyedLimiter::builder(Quota::per_minute(1)?)
    ///     .clock(ManualClock::default())
    ///     .build();
    /// let ip: std::net::IpAddr = "2001:db8::1".parse().unwrap();
    /// assert!(limiter.check_key(&ip).unwrap().is_allowed());
    /// let denied = limiter.check_key(&ip).unwrap();
    /// assert_eq!(denied.retry_after_secs(), 60);
    /// # Ok::<(), nanolimit::QuotaError>(())
    /// ```
    #[inline]
    pub fn check_key<Q>(&self, key: &Q) -> Result<Decision, AtCapacity>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match self.check_key_n(key, 1) {
            Ok(decision) => Ok(decision),
            Err(KeyedError::AtCapacity(error)) => Err(error),
            // A quota's burst is at least 1, so a cost of 1 always fits.
            Err(KeyedError::InsufficientCapacity(_)) => unreachable!("burst >= 1"),
        }
    }

    /// A request of cost `n` for `key`, all or nothing. `n > burst` can never succeed: that is
    /// [`KeyedError::InsufficientCapacity`], not a denial, and nothing is stored (not even the
    /// key). A cost of 0 is a peek and never inserts the key.
    ///
    /// ```
    /// use nanolimit::{KeyedError, KeyedLimiter, ManualClock, Quota};
    ///
    /// let limiter = KeyedLimiter::builder(Quota::per_second(10)?)
    ///     .clock(ManualClock::default())
    ///     .build();
    /// assert!(limiter.check_key_n("batch", 10).unwrap().is_allowed());
    /// assert!(limiter.check_key_n("batch", 1).unwrap().is_denied());
    /// assert!(matches!(
    ///     limiter.check_key_n("other", 11),
    ///     Err(KeyedError::InsufficientCapacity(_))
    /// ));
    /// assert_eq!(limiter.len(), 1); // "other" was never stored
    /// # let _: &KeyedLimiter<String, _, _> = &limiter;
    /// # Ok::<(), nanolimit::QuotaError>(())
    /// ```
    #[inline]
    pub fn check_key_n<Q>(&self, key: &Q, n: u64) -> Result<Decision, KeyedError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if n > self.quota.burst() {
            return Err(InsufficientCapacity {
                cost: n,
                burst: self.quota.burst(),
            }
            .into());
        }
        if n == 0 {
            return Ok(self.peek_key_n(key, 0)?);
        }
        let map = self.map.pin();
        let slot = MapSlot {
            limiter: self,
            map: &map,
            key,
        };
        match protocol::check_slot::<A, _>(&slot, &self.quota, n, || self.clock.now()) {
            Ok(result) => Ok(result?),
            Err(Full) => self.at_capacity(n),
        }
    }

    /// What `check_key(key)` would decide now, without consuming anything or storing the key.
    /// `remaining()` is what the key has available now.
    ///
    /// ```
    /// use nanolimit::{KeyedLimiter, ManualClock, Quota};
    ///
    /// let limiter = KeyedLimiter::builder(Quota::per_second(3)?)
    ///     .clock(ManualClock::default())
    ///     .build();
    /// assert_eq!(limiter.peek_key("new").remaining(), 3);
    /// assert!(limiter.is_empty()); // peeking stores nothing
    /// limiter.check_key("new").unwrap();
    /// assert_eq!(limiter.peek_key("new").remaining(), 2);
    /// # let _: &KeyedLimiter<String, _, _> = &limiter;
    /// # Ok::<(), nanolimit::QuotaError>(())
    /// ```
    pub fn peek_key<Q>(&self, key: &Q) -> Decision
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.peek_key_n(key, 1) {
            Ok(decision) => decision,
            Err(_) => unreachable!("burst >= 1"),
        }
    }

    /// What `check_key_n(key, n)` would decide now, without consuming anything or storing
    /// the key.
    ///
    /// ```
    /// use nanolimit::{KeyedLimiter, ManualClock, Quota};
    ///
    /// let limiter = KeyedLimiter::builder(Quota::per_second(4)?)
    ///     .clock(ManualClock::default())
    ///     .build();
    /// limiter.check_key_n(&9u16, 3).unwrap();
    /// assert!(limiter.peek_key_n(&9u16, 1).unwrap().is_allowed());
    /// assert!(limiter.peek_key_n(&9u16, 2).unwrap().is_denied());
    /// assert!(limiter.peek_key_n(&9u16, 5).is_err()); // more than the burst
    /// # Ok::<(), nanolimit::QuotaError>(())
    /// ```
    pub fn peek_key_n<Q>(&self, key: &Q, n: u64) -> Result<Decision, InsufficientCapacity>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = self.map.pin();
        let slot = MapSlot {
            limiter: self,
            map: &map,
            key,
        };
        protocol::peek_slot::<A, _>(&slot, &self.quota, n, || self.clock.now())
    }

    /// Forgets `key`: its next request starts with a full bucket. Returns whether it was
    /// tracked. An admission racing with the removal is either forgotten with the key or
    /// counted on the key's next bucket, never lost in between.
    ///
    /// ```
    /// use nanolimit::{KeyedLimiter, ManualClock, Quota};
    ///
    /// let limiter = KeyedLimiter::builder(Quota::per_hour(1)?)
    ///     .clock(ManualClock::default())
    ///     .build();
    /// limiter.check_key("k").unwrap();
    /// assert!(limiter.check_key("k").unwrap().is_denied());
    /// assert!(limiter.remove("k"));
    /// assert!(!limiter.remove("k"));
    /// assert!(limiter.check_key("k").unwrap().is_allowed()); // reset
    /// # let _: &KeyedLimiter<String, _, _> = &limiter;
    /// # Ok::<(), nanolimit::QuotaError>(())
    /// ```
    pub fn remove<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = self.map.pin();
        let slot = MapSlot {
            limiter: self,
            map: &map,
            key,
        };
        let removed = protocol::remove(&slot);
        if removed {
            // Relaxed: a statistic.
            self.counters.removed.fetch_add(1, Ordering::Relaxed);
        }
        removed
    }

    /// Makes sure `key` is tracked, so that a check of it now is not refused at capacity:
    /// a new key is stored with a full bucket (nothing is consumed), making room as a check
    /// would. `Ok(true)` if this call stored it, `Ok(false)` if it was already tracked (or,
    /// with [`CapacityPolicy::Untracked`], if the full limiter will serve it untracked);
    /// [`AtCapacity`] where a check of the new key would be refused (and counted as such).
    ///
    /// For callers that must know, before consuming anything elsewhere, that a check will not
    /// be refused at capacity (the policy manager's all-or-nothing rule). Another thread can
    /// still evict the key before the check (only if it stays idle); undo a reservation that
    /// is not followed by a check with [`evict_if_idle`](Self::evict_if_idle).
    ///
    /// ```
    /// use nanolimit::{KeyedLimiter, ManualClock, Quota};
    ///
    /// let limiter = KeyedLimiter::builder(Quota::per_hour(1)?)
    ///     .clock(ManualClock::default())
    ///     .max_keys(1)
    ///     .build();
    /// assert_eq!(limiter.reserve_key("a"), Ok(true)); // stored, its bucket full
    /// assert_eq!(limiter.reserve_key("a"), Ok(false));
    /// assert!(limiter.evict_if_idle("a")); // undone: "a" was still full
    /// assert_eq!(limiter.reserve_key("a"), Ok(true));
    /// assert!(limiter.check_key("a").unwrap().is_allowed()); // "a" is busy now
    /// assert!(limiter.reserve_key("b").is_err()); // full, and no key is idle
    /// assert!(!limiter.evict_if_idle("a")); // a key that admitted stays
    /// # let _: &KeyedLimiter<String, _, _> = &limiter;
    /// # Ok::<(), nanolimit::QuotaError>(())
    /// ```
    pub fn reserve_key<Q>(&self, key: &Q) -> Result<bool, AtCapacity>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let map = self.map.pin();
        let slot = MapSlot {
            limiter: self,
            map: &map,
            key,
        };
        // A cell found retired is being unmapped by a concurrent sweep; the check that follows
        // starts the key over (alone, a retired cell is never left mapped).
        if slot.find().is_some() {
            return Ok(false);
        }
        if self.make_room(&map).is_err() {
            if slot.find().is_some() {
                // Inserted by another thread meanwhile.
                return Ok(false);
            }
            return match self.config.policy {
                CapacityPolicy::Refuse => {
                    // Relaxed: a statistic, as in `at_capacity`.
                    (self.counters.at_capacity.refused).fetch_add(1, Ordering::Relaxed);
                    Err(AtCapacity {
                        max_keys: self.max_keys().unwrap_or(usize::MAX),
                    })
                }
                CapacityPolicy::Untracked => Ok(false),
            };
        }
        let cell = Cell::new(A::initial(&self.quota));
        match map.try_insert(key.to_owned(), cell) {
            Ok(_) => Ok(true),
            Err(_) => {
                // Another thread inserted the key first: give the room back.
                self.counters.release(1);
                Ok(false)
            }
        }
    }

    /// Removes `key` if its bucket is full (idle) now, as a sweep would; returns whether it
    /// did. Never forgets an admission: a key any request has taken from stays.
    pub fn evict_if_idle<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = self.map.pin();
        let slot = MapSlot {
            limiter: self,
            map: &map,
            key,
        };
        let Some(cell) = slot.find() else {
            return false;
        };
        let evicted = protocol::evict::<A, _>(&slot, &cell, &self.quota, self.clock.now());
        if evicted {
            // Relaxed: a statistic.
            self.counters.evicted.fetch_add(1, Ordering::Relaxed);
        }
        evicted
    }

    /// Removes every key whose bucket is full (idle) now, and returns how many. Visits each
    /// key once: the cost is proportional to the number of keys, and
    /// other threads keep checking meanwhile (the map is never locked). Safe against
    /// concurrent checks: a key is removed only if no admission got in since it was seen
    /// full (see `docs/design.md`).
    ///
    /// ```
    /// use nanolimit::{KeyedLimiter, ManualClock, Quota};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::default();
    /// let limiter = KeyedLimiter::builder(Quota::per_second(1)?)
    ///     .clock(clock.clone())
    ///     .build();
    /// for key in 0..100u32 {
    ///     limiter.check_key(&key).unwrap();
    /// }
    /// assert_eq!(limiter.evict_idle(), 0); // every bucket is empty: every key is busy
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(limiter.evict_idle(), 100);
    /// assert_eq!(limiter.stats().evicted, 100);
    /// # Ok::<(), nanolimit::QuotaError>(())
    /// ```
    pub fn evict_idle(&self) -> usize {
        let map = self.map.pin();
        let now = self.clock.now();
        self.sweep(&map, now)
    }

    /// The number of keys tracked, counting insertions in flight on other threads at this
    /// instant. Never more than `max_keys`.
    pub fn len(&self) -> usize {
        // The limiter's own occupancy count, exact under concurrency (papaya's `len` sums
        // per-thread counters without a consistent snapshot, and can overshoot).
        usize::try_from(self.counters.occupancy()).unwrap_or(usize::MAX)
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The counters: keys, evictions, refusals at capacity. Reading them is cheap (a few
    /// relaxed loads), and keeping them costs nothing on the path of an existing key.
    ///
    /// ```
    /// use nanolimit::{KeyedLimiter, ManualClock, Quota};
    ///
    /// let limiter = KeyedLimiter::builder(Quota::per_second(1)?)
    ///     .clock(ManualClock::default())
    ///     .max_keys(1)
    ///     .build();
    /// limiter.check_key(&1u64).unwrap();
    /// assert!(limiter.check_key(&2u64).is_err());
    /// let stats = limiter.stats();
    /// assert_eq!((stats.keys, stats.refused_at_capacity), (1, 1));
    /// # Ok::<(), nanolimit::QuotaError>(())
    /// ```
    pub fn stats(&self) -> stats::KeyedStats {
        self.counters.snapshot(self.len())
    }

    /// The quota every key gets.
    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// The clock this limiter reads.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The bound on the number of keys, if any.
    pub fn max_keys(&self) -> Option<usize> {
        (self.config.max_keys != u64::MAX)
            .then(|| usize::try_from(self.config.max_keys).unwrap_or(usize::MAX))
    }

    /// What happens to a new key when the limiter is full.
    pub fn capacity_policy(&self) -> CapacityPolicy {
        self.config.policy
    }

    /// One pass over the map at `now` (read before the pass), retiring and removing every
    /// idle key.
    fn sweep(&self, map: &Pinned<'_, K, S>, now: u64) -> usize {
        let mut evicted = 0;
        for (key, cell) in map.iter() {
            let slot = MapSlot {
                limiter: self,
                map,
                key,
            };
            if protocol::evict::<A, _>(&slot, &cell, &self.quota, now) {
                evicted += 1;
            }
        }
        self.counters
            .sweep_done(now, evicted as u64, self.config.growth_floor);
        // Hand this thread's batch of retired entries (and tables left behind by resizes) to
        // the reclaimer now rather than when the batch fills: it is freed as soon as no
        // guard that could still see it remains.
        self.map.guard().flush();
        evicted
    }

    /// Sweeps if no automatic sweep is running; returns whether this call swept.
    fn try_sweep(&self, map: &Pinned<'_, K, S>, now: Option<u64>) -> bool {
        let Some(_turn) = self.counters.try_begin_sweep() else {
            return false;
        };
        let now = now.unwrap_or_else(|| self.clock.now());
        self.sweep(map, now);
        true
    }

    /// Claims room for one new key: sweeps first if an amortized sweep is due; at capacity,
    /// reclaims idle keys if a reclaiming sweep is due and no other thread is sweeping.
    fn make_room(&self, map: &Pinned<'_, K, S>) -> Result<(), Full> {
        let config = &self.config;
        if config.amortized && self.counters.growth_sweep_due() {
            self.try_sweep(map, None);
        }
        if self.counters.reserve(config.max_keys) {
            return Ok(());
        }
        let now = self.clock.now();
        let refusals = (config.max_keys / 2).max(1);
        if self
            .counters
            .reclaim_due(now, config.reclaim_interval_ns, refusals)
            && self.try_sweep(map, Some(now))
            && self.counters.reserve(config.max_keys)
        {
            return Ok(());
        }
        Err(Full)
    }

    /// A new key met a full limiter: apply the policy.
    #[cold]
    fn at_capacity(&self, cost: u64) -> Result<Decision, KeyedError> {
        match self.config.policy {
            CapacityPolicy::Refuse => {
                // Relaxed: a statistic (and a heuristic for `reclaim_due`).
                (self.counters.at_capacity.refused).fetch_add(1, Ordering::Relaxed);
                Err(AtCapacity {
                    max_keys: self.max_keys().unwrap_or(usize::MAX),
                }
                .into())
            }
            CapacityPolicy::Untracked => {
                // Relaxed: as above.
                (self.counters.at_capacity.untracked).fetch_add(1, Ordering::Relaxed);
                let full = A::initial(&self.quota);
                Ok(A::check(full, self.clock.now(), cost, &self.quota)?.decision)
            }
        }
    }
}

impl<K, A: Algorithm, C: Clock, S> fmt::Debug for KeyedLimiter<K, A, C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedLimiter")
            .field("algorithm", &A::NAME)
            .field("quota", &self.quota)
            .field("keys", &self.counters.occupancy())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// No room for a new key (the policy decides what the caller gets).
struct Full;

/// One key of the pinned map, as the protocol sees it.
struct MapSlot<'m, 'q, K, Q: ?Sized, A: Algorithm, C: Clock, S> {
    limiter: &'m KeyedLimiter<K, A, C, S>,
    map: &'m Pinned<'m, K, S>,
    key: &'q Q,
}

impl<'m, K, Q, A, C, S> Slot for MapSlot<'m, '_, K, Q, A, C, S>
where
    K: Hash + Eq + Borrow<Q>,
    Q: Hash + Eq + ?Sized,
    A: Algorithm,
    C: Clock,
    S: BuildHasher,
{
    type Handle = &'m Cell;

    #[inline]
    fn find(&self) -> Option<&'m Cell> {
        self.map.get(self.key)
    }

    fn discard(&self, retired: &&'m Cell) {
        // Identity, not key: a fresh cell inserted for the key since must stay. Addresses are
        // not reused while our guard is pinned, so equal addresses mean the same entry.
        let removed = self
            .map
            .remove_if(self.key, |_, cell| ptr::eq(cell, *retired));
        if let Ok(Some(_)) = removed {
            self.limiter.counters.release(1);
        }
    }
}

impl<'m, K, Q, A, C, S> InsertSlot for MapSlot<'m, '_, K, Q, A, C, S>
where
    K: Hash + Eq + Borrow<Q>,
    Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    A: Algorithm,
    C: Clock,
    S: BuildHasher,
{
    type Refused = Full;

    #[cold]
    fn insert(&self) -> Result<&'m Cell, Full> {
        if let Err(full) = self.limiter.make_room(self.map) {
            // Regression (a review found it): another thread may have inserted this very key
            // while we looked for room. The key is then tracked, and the request belongs to its
            // cell, not to the capacity policy. (An insertion still in flight, between its
            // reservation and its insert, is not seen: see docs/design.md, "The memory bound".)
            return self.find().ok_or(full);
        }
        let cell = Cell::new(A::initial(&self.limiter.quota));
        match self.map.try_insert(self.key.to_owned(), cell) {
            Ok(cell) => Ok(cell),
            Err(occupied) => {
                // Another thread inserted the key first: use its cell, give the room back.
                self.limiter.counters.release(1);
                Ok(occupied.current)
            }
        }
    }
}
