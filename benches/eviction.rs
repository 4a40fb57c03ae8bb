//! Forgetting idle keys: the cost of a sweep per key visited, and of amortized eviction on the
//! check path; nanolimit and governor side by side in each group, in one run.
//!
//! - `eviction/sweep-keep`: a sweep over 100,000 keys none of which is idle (nanolimit's
//!   `evict_idle`, governor's `retain_recent`): the cost of a visit. Reported per key.
//! - `eviction/sweep-evict-all`: a sweep over 100,000 keys all of which are idle: a visit, the
//!   retiring compare-and-swap (nanolimit) and the removal. Reported per key. The map is
//!   refilled before each sweep, outside the timing.
//! - `eviction/amortized-insert`: a stream of new keys, each checked once and idle a
//!   nanosecond later (a quota of 10^9 per second), 100,000 per limiter: nanolimit with its
//!   default amortized eviction (the inserting thread sweeps now and then, so the map stays
//!   small), nanolimit with it off, and governor (which sweeps only when asked: its map grows).
//!   Reported per check; the difference between the first two is the amortized sweep's cost
//!   on the check path.
//!
//! The sweep groups run on manual clocks (nanolimit's `ManualClock`, governor's
//! `FakeRelativeClock`), moved forward to make every key idle.
//!
//! `cargo bench --bench eviction` (shorter: `-- --warm-up-time 1 --measurement-time 3`).

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput};
use governor::clock::FakeRelativeClock;
use nanolimit::{KeyedLimiter, ManualClock, Quota};

const KEYS: u64 = 100_000;
const BILLION: u32 = 1_000_000_000;

type Nanolimit = KeyedLimiter<u64, nanolimit::Gcra, ManualClock>;
type Governor = governor::RateLimiter<
    u64,
    governor::state::keyed::DefaultKeyedStateStore<u64>,
    FakeRelativeClock,
    governor::middleware::NoOpMiddleware<<FakeRelativeClock as governor::clock::Clock>::Instant>,
>;

/// `KEYS` keys, each checked once under one per second (so idle after a second), on a clock
/// at its origin.
fn populated_nanolimit() -> (Nanolimit, ManualClock) {
    let clock = ManualClock::default();
    let limiter = KeyedLimiter::builder(Quota::per_second(1).expect("valid quota"))
        .clock(clock.clone())
        .amortized_eviction(false)
        .build();
    for key in 0..KEYS {
        assert!(limiter.check_key(&key).expect("no max_keys").is_allowed());
    }
    (limiter, clock)
}

/// As [`populated_nanolimit`], for governor.
fn populated_governor() -> (Governor, FakeRelativeClock) {
    let clock = FakeRelativeClock::default();
    let limiter = governor::RateLimiter::dashmap_with_clock(
        governor::Quota::per_second(NonZeroU32::MIN),
        clock.clone(),
    );
    for key in 0..KEYS {
        assert!(limiter.check_key(&key).is_ok());
    }
    (limiter, clock)
}

fn sweeps(c: &mut Criterion) {
    let (nanolimit, _clock) = populated_nanolimit();
    let (governor, _fake) = populated_governor();
    let mut group = c.benchmark_group("eviction/sweep-keep");
    group.throughput(Throughput::Elements(KEYS));
    group.bench_function("nanolimit-gcra", |b| {
        b.iter(|| assert_eq!(black_box(&nanolimit).evict_idle(), 0))
    });
    group.bench_function("governor", |b| {
        b.iter(|| black_box(&governor).retain_recent())
    });
    group.finish();
    assert_eq!(nanolimit.len() as u64, KEYS);
    assert_eq!(governor.len() as u64, KEYS);

    let mut group = c.benchmark_group("eviction/sweep-evict-all");
    group.throughput(Throughput::Elements(KEYS));
    // Every iteration refills a map of `KEYS` keys first: keep the number of iterations low.
    group.sample_size(10);
    group.bench_function("nanolimit-gcra", |b| {
        b.iter_batched(
            || {
                let (limiter, clock) = populated_nanolimit();
                clock.advance(Duration::from_secs(2));
                limiter
            },
            |limiter| {
                assert_eq!(limiter.evict_idle() as u64, KEYS);
                limiter // dropped outside the timing
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("governor", |b| {
        b.iter_batched(
            || {
                let (limiter, clock) = populated_governor();
                clock.advance(Duration::from_secs(2));
                limiter
            },
            |limiter| {
                limiter.retain_recent();
                assert!(limiter.is_empty());
                limiter
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// Times the first check of `iters` new keys, in limiters of `KEYS` keys built and dropped
/// outside the timing.
fn insert_path<L>(iters: u64, build: impl Fn() -> L, check: impl Fn(&L, u64) -> bool) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(KEYS);
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

fn amortized(c: &mut Criterion) {
    let quota = Quota::per_second(u64::from(BILLION)).expect("valid quota");
    let governor_quota = governor::Quota::per_second(NonZeroU32::new(BILLION).expect("> 0"));
    let mut group = c.benchmark_group("eviction/amortized-insert");
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
    group.bench_function("governor", |b| {
        b.iter_custom(|iters| {
            insert_path(
                iters,
                || governor::DefaultKeyedRateLimiter::<u64>::keyed(governor_quota),
                |l, key| l.check_key(&key).is_ok(),
            )
        })
    });
    group.finish();
    // The scenario: with amortized eviction the map stays far below the keys inserted.
    let limiter = KeyedLimiter::<u64>::gcra(quota);
    for key in 0..KEYS {
        assert!(limiter.check_key(&key).expect("no max_keys").is_allowed());
    }
    assert!(
        (limiter.len() as u64) < KEYS / 2,
        "amortized sweeps should have evicted"
    );
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    sweeps(&mut criterion);
    amortized(&mut criterion);
    criterion.final_summary();
}
