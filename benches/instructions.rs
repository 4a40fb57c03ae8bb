//! Instruction counts (gungraun, under valgrind's callgrind): the direct and keyed cases of
//! `benches/direct.rs` and `benches/keyed.rs`, nanolimit and governor, each on its default
//! clock (quanta) and default hasher. Stable where wall-clock times are noisy.
//!
//! One caveat: on a real clock the path taken can depend on the times read (governor's GCRA
//! branches on whether time moved since the last check), and under valgrind those vary from
//! run to run: governor's direct check has been seen at 58 and at 100 instructions. The
//! `direct_manual` group is the exact comparison: both libraries on a clock that does not
//! move (nanolimit's `ManualClock`, governor's `FakeRelativeClock`: one atomic load each).
//!
//! Each benchmark runs `CHECKS` checks on a limiter built (and, for the keyed cases,
//! populated) by a setup function that is not counted, and returns the limiter so that its
//! drop is not counted either; divide the reported instructions by `CHECKS` for the cost of
//! one check. The outcome of every check is asserted (the assertion
//! costs the same few instructions for every contender).
//!
//! Running needs valgrind and `gungraun-runner` of the same version as the `gungraun` crate
//! (`cargo install gungraun-runner --version 0.20.0`); compiling (`cargo bench --no-run`)
//! needs neither.
//!
//! `cargo bench --bench instructions`

use std::hint::black_box;
use std::num::NonZeroU32;

use governor::clock::FakeRelativeClock;
use gungraun::{library_benchmark, library_benchmark_group, main};
use nanolimit::{DirectLimiter, Gcra, KeyedLimiter, ManualClock, Quota, TokenBucket};

/// Checks per benchmark.
const CHECKS: u64 = 1_000;
const BILLION: u32 = 1_000_000_000;

fn quota(allow: bool) -> Quota {
    if allow {
        Quota::per_second(u64::from(BILLION)).expect("valid quota")
    } else {
        Quota::per_hour(1)
            .and_then(|q| q.with_burst(1))
            .expect("valid quota")
    }
}

fn governor_quota(allow: bool) -> governor::Quota {
    if allow {
        governor::Quota::per_second(NonZeroU32::new(BILLION).expect("> 0"))
    } else {
        governor::Quota::per_hour(NonZeroU32::MIN)
    }
}

// Direct: the limiter and whether its checks are admitted. A denying limiter is drained first.

fn gcra(allow: bool) -> (DirectLimiter, bool) {
    let limiter = DirectLimiter::gcra(quota(allow));
    if !allow {
        assert!(limiter.check().is_allowed());
    }
    (limiter, allow)
}

fn token_bucket(allow: bool) -> (DirectLimiter<TokenBucket>, bool) {
    let limiter = DirectLimiter::token_bucket(quota(allow));
    if !allow {
        assert!(limiter.check().is_allowed());
    }
    (limiter, allow)
}

fn governor_direct(allow: bool) -> (governor::DefaultDirectRateLimiter, bool) {
    let limiter = governor::RateLimiter::direct(governor_quota(allow));
    if !allow {
        assert!(limiter.check().is_ok());
    }
    (limiter, allow)
}

#[library_benchmark]
#[bench::always_allow(args = (true), setup = gcra)]
#[bench::mostly_deny(args = (false), setup = gcra)]
fn direct_nanolimit_gcra((limiter, allow): (DirectLimiter, bool)) -> DirectLimiter {
    for _ in 0..CHECKS {
        assert_eq!(black_box(&limiter).check().is_allowed(), allow);
    }
    limiter
}

#[library_benchmark]
#[bench::always_allow(args = (true), setup = token_bucket)]
#[bench::mostly_deny(args = (false), setup = token_bucket)]
fn direct_nanolimit_token_bucket(
    (limiter, allow): (DirectLimiter<TokenBucket>, bool),
) -> DirectLimiter<TokenBucket> {
    for _ in 0..CHECKS {
        assert_eq!(black_box(&limiter).check().is_allowed(), allow);
    }
    limiter
}

#[library_benchmark]
#[bench::always_allow(args = (true), setup = governor_direct)]
#[bench::mostly_deny(args = (false), setup = governor_direct)]
fn direct_governor(
    (limiter, allow): (governor::DefaultDirectRateLimiter, bool),
) -> governor::DefaultDirectRateLimiter {
    for _ in 0..CHECKS {
        assert_eq!(black_box(&limiter).check().is_ok(), allow);
    }
    limiter
}

library_benchmark_group!(
    name = direct;
    benchmarks = direct_nanolimit_gcra, direct_nanolimit_token_bucket, direct_governor
);

// Direct, on clocks that do not move: the same path at every check.

type GovernorFake = governor::RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    FakeRelativeClock,
    governor::middleware::NoOpMiddleware<<FakeRelativeClock as governor::clock::Clock>::Instant>,
>;

fn gcra_manual(allow: bool) -> (DirectLimiter<Gcra, ManualClock>, bool) {
    let limiter = DirectLimiter::gcra_with_clock(quota(allow), ManualClock::new(1_000_000));
    if !allow {
        assert!(limiter.check().is_allowed());
    }
    (limiter, allow)
}

fn token_bucket_manual(allow: bool) -> (DirectLimiter<TokenBucket, ManualClock>, bool) {
    let limiter = DirectLimiter::token_bucket_with_clock(quota(allow), ManualClock::new(1_000_000));
    if !allow {
        assert!(limiter.check().is_allowed());
    }
    (limiter, allow)
}

fn governor_fake(allow: bool) -> (GovernorFake, bool) {
    let clock = FakeRelativeClock::default();
    clock.advance(std::time::Duration::from_millis(1));
    let limiter = governor::RateLimiter::direct_with_clock(governor_quota(allow), clock);
    if !allow {
        assert!(limiter.check().is_ok());
    }
    (limiter, allow)
}

#[library_benchmark]
#[bench::always_allow(args = (true), setup = gcra_manual)]
#[bench::mostly_deny(args = (false), setup = gcra_manual)]
fn manual_nanolimit_gcra(
    (limiter, allow): (DirectLimiter<Gcra, ManualClock>, bool),
) -> DirectLimiter<Gcra, ManualClock> {
    for _ in 0..CHECKS {
        assert_eq!(black_box(&limiter).check().is_allowed(), allow);
    }
    limiter
}

#[library_benchmark]
#[bench::always_allow(args = (true), setup = token_bucket_manual)]
#[bench::mostly_deny(args = (false), setup = token_bucket_manual)]
fn manual_nanolimit_token_bucket(
    (limiter, allow): (DirectLimiter<TokenBucket, ManualClock>, bool),
) -> DirectLimiter<TokenBucket, ManualClock> {
    for _ in 0..CHECKS {
        assert_eq!(black_box(&limiter).check().is_allowed(), allow);
    }
    limiter
}

#[library_benchmark]
#[bench::always_allow(args = (true), setup = governor_fake)]
#[bench::mostly_deny(args = (false), setup = governor_fake)]
fn manual_governor((limiter, allow): (GovernorFake, bool)) -> GovernorFake {
    for _ in 0..CHECKS {
        assert_eq!(black_box(&limiter).check().is_ok(), allow);
    }
    limiter
}

library_benchmark_group!(
    name = direct_manual;
    benchmarks = manual_nanolimit_gcra, manual_nanolimit_token_bucket, manual_governor
);

// Keyed: `u64` keys, admitted. The setup inserts the keys of the scenario; the benchmark
// checks keys in the order of the scenario (a key beyond them is new: the insert path).
//
// Existing keys run under the admitting quota, on which a key is idle a nanosecond after its
// check: nanolimit's amortized eviction is turned off there so that the population is not
// swept away as it is inserted (existing keys never sweep: the check path is the same).
// New keys run under a quota of 1,000 per hour, under which no key goes idle, with every
// default (amortized sweeps run, and evict nothing), as in `benches/keyed.rs`.

/// The keys checked by the benchmark: one hot key, round-robin over 1,000, random over
/// 1,000,000 (xorshift64*), or keys never seen.
#[derive(Clone, Copy)]
enum Keys {
    Hot,
    RoundRobin,
    Random,
    New,
}

impl Keys {
    /// Keys present before the benchmark.
    fn populated(self) -> u64 {
        match self {
            Keys::Hot => 1,
            Keys::RoundRobin => 1_000,
            Keys::Random => 1_000_000,
            Keys::New => 1_000,
        }
    }

    /// nanolimit's quota, and whether amortized eviction is on.
    fn nanolimit(self) -> (Quota, bool) {
        match self {
            Keys::New => (Quota::per_hour(1_000).expect("valid quota"), true),
            _ => (quota(true), false),
        }
    }

    fn governor(self) -> governor::Quota {
        match self {
            Keys::New => governor::Quota::per_hour(NonZeroU32::new(1_000).expect("> 0")),
            _ => governor_quota(true),
        }
    }

    fn sequence(self) -> Vec<u64> {
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        (0..CHECKS)
            .map(|i| match self {
                Keys::Hot => 0,
                Keys::RoundRobin => i % 1_000,
                Keys::Random => {
                    state ^= state >> 12;
                    state ^= state << 25;
                    state ^= state >> 27;
                    state.wrapping_mul(0x2545_F491_4F6C_DD1D) % 1_000_000
                }
                Keys::New => 1_000 + i,
            })
            .collect()
    }
}

fn keyed_gcra(keys: Keys) -> (KeyedLimiter<u64>, Vec<u64>) {
    let (quota, amortized) = keys.nanolimit();
    let limiter = KeyedLimiter::builder(quota)
        .amortized_eviction(amortized)
        .build();
    for key in 0..keys.populated() {
        assert!(limiter.check_key(&key).expect("no max_keys").is_allowed());
    }
    assert_eq!(limiter.len() as u64, keys.populated());
    (limiter, keys.sequence())
}

fn keyed_token_bucket(keys: Keys) -> (KeyedLimiter<u64, TokenBucket>, Vec<u64>) {
    let (quota, amortized) = keys.nanolimit();
    let limiter = KeyedLimiter::builder(quota)
        .token_bucket()
        .amortized_eviction(amortized)
        .build();
    for key in 0..keys.populated() {
        assert!(limiter.check_key(&key).expect("no max_keys").is_allowed());
    }
    assert_eq!(limiter.len() as u64, keys.populated());
    (limiter, keys.sequence())
}

fn keyed_governor(keys: Keys) -> (governor::DefaultKeyedRateLimiter<u64>, Vec<u64>) {
    let limiter = governor::RateLimiter::keyed(keys.governor());
    for key in 0..keys.populated() {
        assert!(limiter.check_key(&key).is_ok());
    }
    assert_eq!(limiter.len() as u64, keys.populated());
    (limiter, keys.sequence())
}

#[library_benchmark]
#[bench::hot_key(args = (Keys::Hot), setup = keyed_gcra)]
#[bench::round_robin_1k(args = (Keys::RoundRobin), setup = keyed_gcra)]
#[bench::random_1m(args = (Keys::Random), setup = keyed_gcra)]
#[bench::new_keys(args = (Keys::New), setup = keyed_gcra)]
fn keyed_nanolimit_gcra((limiter, keys): (KeyedLimiter<u64>, Vec<u64>)) -> KeyedLimiter<u64> {
    for key in &keys {
        assert!(black_box(&limiter)
            .check_key(key)
            .is_ok_and(|d| d.is_allowed()));
    }
    limiter
}

#[library_benchmark]
#[bench::hot_key(args = (Keys::Hot), setup = keyed_token_bucket)]
#[bench::round_robin_1k(args = (Keys::RoundRobin), setup = keyed_token_bucket)]
#[bench::random_1m(args = (Keys::Random), setup = keyed_token_bucket)]
#[bench::new_keys(args = (Keys::New), setup = keyed_token_bucket)]
fn keyed_nanolimit_token_bucket(
    (limiter, keys): (KeyedLimiter<u64, TokenBucket>, Vec<u64>),
) -> KeyedLimiter<u64, TokenBucket> {
    for key in &keys {
        assert!(black_box(&limiter)
            .check_key(key)
            .is_ok_and(|d| d.is_allowed()));
    }
    limiter
}

#[library_benchmark]
#[bench::hot_key(args = (Keys::Hot), setup = keyed_governor)]
#[bench::round_robin_1k(args = (Keys::RoundRobin), setup = keyed_governor)]
#[bench::random_1m(args = (Keys::Random), setup = keyed_governor)]
#[bench::new_keys(args = (Keys::New), setup = keyed_governor)]
fn keyed_governor_check(
    (limiter, keys): (governor::DefaultKeyedRateLimiter<u64>, Vec<u64>),
) -> governor::DefaultKeyedRateLimiter<u64> {
    for key in &keys {
        assert!(black_box(&limiter).check_key(key).is_ok());
    }
    limiter
}

library_benchmark_group!(
    name = keyed;
    benchmarks = keyed_nanolimit_gcra, keyed_nanolimit_token_bucket, keyed_governor_check
);

main!(library_benchmark_groups = direct, direct_manual, keyed);
