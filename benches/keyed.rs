//! A limiter per key, one thread: the cost of a check, nanolimit (GCRA and token bucket) and
//! governor (`RateLimiter::keyed`: a dashmap, default features) side by side in each group, in
//! one run. Keys are `u64`; every contender runs on its default clock (both read the TSC
//! through quanta) and its default hasher. The `ratelimit` crate has no keyed limiter.
//!
//! - `keyed/hot-key`: one key, checked again and again (always admitted).
//! - `keyed/1k-round-robin`: 1,000 keys, pre-populated, checked in turn (always admitted).
//! - `keyed/1m-random`: 1,000,000 keys, pre-populated, checked in a pseudo-random order
//!   (a xorshift generator, the same sequence for every contender; always admitted). The
//!   table no longer fits in the caches: this is mostly the cost of cache misses.
//! - `keyed/new-key`: the first check of keys never seen (the insert path), into a limiter
//!   that grows from empty to 100,000 keys (resizes included), on a quota under which no key
//!   goes idle during the run. nanolimit runs with its defaults (amortized eviction on: its
//!   sweeps visit the map as it grows, and evict nothing here) and with amortized eviction off.
//!
//! The groups of existing keys use a quota of 10^9 per second with a burst of 10^9, under which
//! a key is idle a nanosecond after its check: nanolimit's amortized eviction is turned off
//! there so that the population is not swept away while it is inserted (checks of existing
//! keys never sweep, so their path is the same either way).
//!
//! `cargo bench --bench keyed` (shorter: `-- --warm-up-time 1 --measurement-time 3`).

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use nanolimit::{KeyedLimiter, Quota};

const BILLION: u32 = 1_000_000_000;

/// Keys per limiter in `keyed/new-key`, after which a fresh limiter is built (untimed).
const NEW_KEYS_PER_LIMITER: u64 = 100_000;

fn always_allow() -> (Quota, governor::Quota) {
    (
        Quota::per_second(u64::from(BILLION)).expect("valid quota"),
        governor::Quota::per_second(NonZeroU32::new(BILLION).expect("> 0")),
    )
}

/// A quota under which a key checked once is not idle for minutes.
fn slow() -> (Quota, governor::Quota) {
    (
        Quota::per_hour(1_000).expect("valid quota"),
        governor::Quota::per_hour(NonZeroU32::new(1_000).expect("> 0")),
    )
}

type Gcra = KeyedLimiter<u64>;
type TokenBucket = KeyedLimiter<u64, nanolimit::TokenBucket>;
type Governor = governor::DefaultKeyedRateLimiter<u64>;

/// The contenders of a group, on the same keys.
struct Contenders {
    gcra: Gcra,
    token_bucket: TokenBucket,
    governor: Governor,
}

impl Contenders {
    fn new((quota, governor_quota): (Quota, governor::Quota)) -> Self {
        Self {
            gcra: KeyedLimiter::builder(quota)
                .amortized_eviction(false)
                .build(),
            token_bucket: KeyedLimiter::builder(quota)
                .token_bucket()
                .amortized_eviction(false)
                .build(),
            governor: governor::RateLimiter::keyed(governor_quota),
        }
    }

    fn populate(&self, keys: u64) {
        for key in 0..keys {
            assert!(self.gcra.check_key(&key).expect("no max_keys").is_allowed());
            assert!(self
                .token_bucket
                .check_key(&key)
                .expect("no max_keys")
                .is_allowed());
            assert!(self.governor.check_key(&key).is_ok());
        }
        self.assert_admitting(keys);
    }

    /// Benchmarks each contender on the keys `next` yields (a fresh generator for each).
    fn bench<I: FnMut() -> u64>(
        &self,
        group: &mut BenchmarkGroup<'_, WallTime>,
        next: impl Fn() -> I,
    ) {
        let mut keys = next();
        group.bench_function("nanolimit-gcra", |b| {
            b.iter(|| {
                black_box(&self.gcra)
                    .check_key(&keys())
                    .is_ok_and(|d| d.is_allowed())
            })
        });
        let mut keys = next();
        group.bench_function("nanolimit-token-bucket", |b| {
            b.iter(|| {
                black_box(&self.token_bucket)
                    .check_key(&keys())
                    .is_ok_and(|d| d.is_allowed())
            })
        });
        let mut keys = next();
        group.bench_function("governor", |b| {
            b.iter(|| black_box(&self.governor).check_key(&keys()).is_ok())
        });
    }

    /// Every key of `0..keys` is still tracked and admitted: the scenario was the one named.
    fn assert_admitting(&self, keys: u64) {
        assert_eq!(self.gcra.len() as u64, keys);
        assert_eq!(self.token_bucket.len() as u64, keys);
        assert_eq!(self.governor.len() as u64, keys);
        assert!(self.gcra.check_key(&0).expect("tracked").is_allowed());
        assert!(self
            .token_bucket
            .check_key(&0)
            .expect("tracked")
            .is_allowed());
        assert!(self.governor.check_key(&0).is_ok());
    }
}

/// xorshift64*: a cheap pseudo-random sequence, identical for every contender.
fn random_keys(range: u64) -> impl FnMut() -> u64 {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D) % range
    }
}

fn round_robin(range: u64) -> impl FnMut() -> u64 {
    let mut key = 0;
    move || {
        key = if key + 1 == range { 0 } else { key + 1 };
        key
    }
}

fn existing_keys(c: &mut Criterion, name: &str, keys: u64, random: bool) {
    let contenders = Contenders::new(always_allow());
    contenders.populate(keys);
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    if random {
        contenders.bench(&mut group, || random_keys(keys));
    } else {
        contenders.bench(&mut group, || round_robin(keys));
    }
    group.finish();
    contenders.assert_admitting(keys);
}

/// Times the first check of `iters` new keys, in limiters of `NEW_KEYS_PER_LIMITER` keys built
/// and dropped outside the timing.
fn insert_path<L>(iters: u64, build: impl Fn() -> L, check: impl Fn(&L, u64) -> bool) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(NEW_KEYS_PER_LIMITER);
        let limiter = build();
        let start = Instant::now();
        for key in 0..n {
            assert!(check(black_box(&limiter), key));
        }
        total += start.elapsed();
        drop(limiter);
        left -= n;
    }
    total
}

fn new_keys(c: &mut Criterion) {
    let (quota, governor_quota) = slow();
    let mut group = c.benchmark_group("keyed/new-key");
    group.throughput(Throughput::Elements(1));
    group.bench_function("nanolimit-gcra", |b| {
        b.iter_custom(|iters| {
            insert_path(
                iters,
                || KeyedLimiter::<u64>::gcra(quota),
                |l, key| l.check_key(&key).is_ok_and(|d| d.is_allowed()),
            )
        })
    });
    group.bench_function("nanolimit-gcra/no-amortized", |b| {
        b.iter_custom(|iters| {
            insert_path(
                iters,
                || {
                    KeyedLimiter::<u64>::builder(quota)
                        .amortized_eviction(false)
                        .build()
                },
                |l, key| l.check_key(&key).is_ok_and(|d| d.is_allowed()),
            )
        })
    });
    group.bench_function("nanolimit-token-bucket", |b| {
        b.iter_custom(|iters| {
            insert_path(
                iters,
                || KeyedLimiter::<u64, nanolimit::TokenBucket>::token_bucket(quota),
                |l, key| l.check_key(&key).is_ok_and(|d| d.is_allowed()),
            )
        })
    });
    group.bench_function("governor", |b| {
        b.iter_custom(|iters| {
            insert_path(
                iters,
                || Governor::keyed(governor_quota),
                |l, key| l.check_key(&key).is_ok(),
            )
        })
    });
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    existing_keys(&mut criterion, "keyed/hot-key", 1, false);
    existing_keys(&mut criterion, "keyed/1k-round-robin", 1_000, false);
    existing_keys(&mut criterion, "keyed/1m-random", 1_000_000, true);
    new_keys(&mut criterion);
    criterion.final_summary();
}
