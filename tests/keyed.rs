//! The keyed limiter's behaviour, one property per test, on a manual clock (exact times).
#![cfg(not(nanolimit_loom))]

use std::collections::hash_map::RandomState;
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::Duration;

use nanolimit::{
    Algorithm, AtCapacity, CapacityPolicy, Gcra, KeyedError, KeyedLimiter, ManualClock, Quota,
    TokenBucket,
};

const SECOND: u64 = 1_000_000_000;

fn manual<K: std::hash::Hash + Eq, A: Algorithm>(
    quota: Quota,
) -> (KeyedLimiter<K, A, ManualClock>, ManualClock) {
    let clock = ManualClock::default();
    let limiter = KeyedLimiter::builder(quota)
        .algorithm::<A>()
        .clock(clock.clone())
        .build();
    (limiter, clock)
}

#[test]
fn each_key_has_its_own_bucket_both_algorithms() {
    fn run<A: Algorithm>() {
        let (limiter, clock) = manual::<String, A>(Quota::per_second(3).unwrap());
        for key in ["a", "b", "c"] {
            for _ in 0..3 {
                assert!(limiter.check_key(key).unwrap().is_allowed(), "{}", A::NAME);
            }
            assert!(limiter.check_key(key).unwrap().is_denied());
        }
        assert_eq!(limiter.len(), 3);
        // 3 per second, T = 333,333,333.3 ns: one token back after a third of a second.
        clock.set(SECOND / 3 + 1);
        assert!(limiter.check_key("a").unwrap().is_allowed());
        assert!(limiter.check_key("a").unwrap().is_denied());
        clock.set(SECOND);
        assert_eq!(limiter.peek_key("b").remaining(), 3);
    }
    run::<Gcra>();
    run::<TokenBucket>();
}

#[test]
fn borrowed_lookups_for_owned_keys() {
    let (limiter, _) = manual::<String, Gcra>(Quota::per_minute(1).unwrap());
    let owned = String::from("api-key-123");
    assert!(limiter.check_key(owned.as_str()).unwrap().is_allowed());
    assert!(limiter.check_key("api-key-123").unwrap().is_denied());
    assert!(limiter.check_key(&owned).unwrap().is_denied());

    let (limiter, _) = manual::<Vec<u8>, Gcra>(Quota::per_minute(1).unwrap());
    assert!(limiter.check_key(&b"bytes"[..]).unwrap().is_allowed());
    assert!(limiter.check_key(&b"bytes"[..]).unwrap().is_denied());
}

#[test]
fn cost_above_burst_or_zero_stores_nothing() {
    let (limiter, _) = manual::<u64, TokenBucket>(Quota::per_second(5).unwrap());
    assert_eq!(
        limiter.check_key_n(&1, 6),
        Err(KeyedError::InsufficientCapacity(
            nanolimit::InsufficientCapacity { cost: 6, burst: 5 }
        ))
    );
    assert!(limiter.check_key_n(&1, 0).unwrap().is_allowed());
    assert_eq!(limiter.peek_key(&1).remaining(), 5);
    assert!(limiter.is_empty());
    assert!(limiter.check_key_n(&1, 5).unwrap().is_allowed());
    assert_eq!(limiter.len(), 1);
    assert!(limiter.check_key_n(&1, 0).unwrap().is_allowed()); // zero cost: never denied
}

#[test]
fn evict_idle_removes_only_full_buckets_and_they_come_back_full() {
    fn run<A: Algorithm>() {
        let (limiter, clock) = manual::<u32, A>(Quota::per_second(4).unwrap());
        limiter.check_key_n(&1, 4).unwrap(); // empty
        limiter.check_key_n(&2, 1).unwrap(); // 3 of 4
        assert_eq!(limiter.evict_idle(), 0, "{}", A::NAME);
        // Key 2 is full after one emission interval (250 ms), key 1 after 1 s.
        clock.set(SECOND / 4);
        assert_eq!(limiter.evict_idle(), 1);
        assert_eq!(limiter.len(), 1);
        assert_eq!(limiter.peek_key(&1).remaining(), 1);
        // Key 2 comes back full.
        assert!(limiter.check_key_n(&2, 4).unwrap().is_allowed());
        clock.set(SECOND + SECOND / 4);
        assert_eq!(limiter.evict_idle(), 2);
        assert!(limiter.is_empty());
        let stats = limiter.stats();
        assert_eq!((stats.evicted, stats.sweeps, stats.keys), (3, 3, 0));
    }
    run::<Gcra>();
    run::<TokenBucket>();
}

#[test]
fn remove_resets_a_key() {
    let (limiter, _) = manual::<String, Gcra>(Quota::per_hour(2).unwrap());
    limiter.check_key_n("k", 2).unwrap();
    assert!(limiter.check_key("k").unwrap().is_denied());
    assert!(limiter.remove("k"));
    assert!(!limiter.remove("k"));
    assert!(!limiter.remove("never"));
    assert!(limiter.check_key_n("k", 2).unwrap().is_allowed());
    assert_eq!(limiter.stats().removed, 1);
}

#[test]
fn at_capacity_refuses_new_keys_with_a_distinct_error() {
    let clock = ManualClock::default();
    let limiter = KeyedLimiter::builder(Quota::per_second(1).unwrap())
        .clock(clock.clone())
        .max_keys(2)
        .build();
    assert!(limiter.check_key(&1u8).unwrap().is_allowed());
    assert!(limiter.check_key(&2u8).unwrap().is_allowed());
    assert_eq!(limiter.check_key(&3u8), Err(AtCapacity { max_keys: 2 }));
    assert_eq!(
        limiter.check_key_n(&3u8, 1),
        Err(KeyedError::AtCapacity(AtCapacity { max_keys: 2 }))
    );
    // Tracked keys keep their limits, and are judged as usual.
    assert!(limiter.check_key(&1u8).unwrap().is_denied());
    assert_eq!(limiter.len(), 2);
    assert_eq!(limiter.stats().refused_at_capacity, 2);
    assert_eq!(limiter.max_keys(), Some(2));
    assert_eq!(limiter.capacity_policy(), CapacityPolicy::Refuse);
    assert_eq!(
        AtCapacity { max_keys: 2 }.to_string(),
        "the limiter already tracks its maximum of 2 keys and none is idle"
    );
}

#[test]
fn at_capacity_reclaims_idle_keys_first() {
    let clock = ManualClock::default();
    let limiter = KeyedLimiter::builder(Quota::per_second(1).unwrap())
        .clock(clock.clone())
        .max_keys(2)
        .amortized_eviction(false)
        .build();
    limiter.check_key(&1u8).unwrap();
    limiter.check_key(&2u8).unwrap();
    clock.set(SECOND); // both idle
    limiter.check_key(&1u8).unwrap(); // busy again
    assert!(limiter.check_key(&3u8).unwrap().is_allowed()); // 2 reclaimed
    assert_eq!(limiter.stats().evicted, 1);
    assert!(limiter.check_key(&3u8).unwrap().is_denied()); // 3 is tracked
    assert_eq!(limiter.len(), 2);
}

#[test]
fn reclaiming_sweeps_are_rate_limited_when_nothing_is_idle() {
    let clock = ManualClock::default();
    let limiter = KeyedLimiter::builder(Quota::per_hour(1).unwrap())
        .clock(clock.clone())
        .max_keys(100)
        .reclaim_interval(Duration::from_secs(10))
        .build();
    for key in 0..100u32 {
        limiter.check_key(&key).unwrap();
    }
    // 49 refusals: the first one sweeps (none ran yet), the others are within the interval
    // and below max_keys / 2 refusals.
    for key in 100..149u32 {
        assert!(limiter.check_key(&key).is_err());
    }
    assert_eq!(limiter.stats().sweeps, 1);
    // The 50th refusal since that sweep pays for another.
    for key in 149..200u32 {
        assert!(limiter.check_key(&key).is_err());
    }
    assert_eq!(limiter.stats().sweeps, 2);
    // And so does time.
    clock.set(10 * SECOND);
    assert!(limiter.check_key(&1_000u32).is_err());
    assert_eq!(limiter.stats().sweeps, 3);
    assert_eq!(limiter.stats().refused_at_capacity, 101);
}

#[test]
fn untracked_policy_admits_without_storing() {
    let limiter = KeyedLimiter::builder(Quota::per_second(2).unwrap())
        .clock(ManualClock::default())
        .max_keys(1)
        .when_full(CapacityPolicy::Untracked)
        .build();
    assert!(limiter.check_key_n(&1u64, 2).unwrap().is_allowed());
    assert!(limiter.check_key(&1u64).unwrap().is_denied());
    for _ in 0..5 {
        let decision = limiter.check_key_n(&2u64, 2).unwrap();
        assert!(decision.is_allowed());
        assert_eq!(decision.remaining(), 0);
    }
    assert!(limiter.check_key_n(&2u64, 3).is_err()); // more than the burst, still an error
    assert_eq!(limiter.len(), 1);
    assert_eq!(limiter.stats().untracked_at_capacity, 5);
}

/// An IPv6 scan: 200,000 distinct addresses, each seen once, while two real clients keep
/// asking. Memory stays at `max_keys`, and the real clients keep exactly their limits.
#[test]
fn a_flood_of_distinct_keys_stays_bounded() {
    let clock = ManualClock::default();
    let limiter = KeyedLimiter::builder(Quota::per_second(10).unwrap())
        .clock(clock.clone())
        .max_keys(1_000)
        .build();
    let real = [
        Ipv6Addr::LOCALHOST,
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
    ];
    let mut admitted = [0u64; 2];
    let mut refused = 0u64;
    let steps = 200_000u64;
    for i in 0..steps {
        // 100 µs per step: 20 s in all, so each real client may have 10 + 200 admissions.
        clock.set(i * 100_000);
        let scan = Ipv6Addr::from(0x2001_0db8_ffff_0000_0000_0000_0000_0000u128 + u128::from(i));
        match limiter.check_key(&scan) {
            Ok(decision) => assert!(decision.is_allowed()),
            Err(AtCapacity { max_keys: 1_000 }) => refused += 1,
            Err(other) => panic!("{other}"),
        }
        for (client, count) in real.iter().zip(&mut admitted) {
            if limiter.check_key(client).unwrap().is_allowed() {
                *count += 1;
            }
        }
        assert!(limiter.len() <= 1_000);
    }
    let elapsed = (steps - 1) * 100_000;
    for count in admitted {
        assert_eq!(
            count,
            10 + elapsed / (SECOND / 10),
            "a real client lost its limit"
        );
    }
    assert!(refused > 0);
    let stats = limiter.stats();
    assert_eq!(stats.refused_at_capacity, refused);
    // Every scan address admitted was tracked, then reclaimed once idle (or is still there).
    assert_eq!(stats.evicted + (stats.keys as u64 - 2), steps - refused);
    assert!(stats.evicted > steps / 3, "{stats:?}");
}

#[test]
fn amortized_eviction_sweeps_as_the_map_grows() {
    fn fill(on: bool) -> KeyedLimiter<u32, Gcra, ManualClock> {
        let clock = ManualClock::default();
        let limiter = KeyedLimiter::builder(Quota::per_second(1).unwrap())
            .clock(clock.clone())
            .amortized_eviction(on)
            .build();
        for key in 0..1_500 {
            limiter.check_key(&key).unwrap();
        }
        clock.set(SECOND); // all 1,500 idle
        for key in 10_000..10_600 {
            limiter.check_key(&key).unwrap();
        }
        limiter
    }
    let off = fill(false);
    assert_eq!(off.len(), 2_100);
    assert_eq!(off.stats().sweeps, 0);
    let on = fill(true);
    // A sweep at 1,024 keys (nothing idle yet), the next once the count doubled to 2,048:
    // it removes the 1,500 idle keys.
    assert_eq!(on.stats().sweeps, 2);
    assert_eq!(on.stats().evicted, 1_500);
    assert_eq!(on.len(), 600);
}

#[test]
fn any_hasher() {
    let limiter = KeyedLimiter::builder(Quota::per_second(1).unwrap())
        .clock(ManualClock::default())
        .hasher(RandomState::new())
        .build();
    assert!(limiter.check_key("x").unwrap().is_allowed());
    assert!(limiter.check_key("x").unwrap().is_denied());
    let _: &KeyedLimiter<String, Gcra, ManualClock, RandomState> = &limiter;
}

#[test]
fn many_threads_on_one_new_key_share_one_bucket() {
    use rayon::prelude::*;
    let (limiter, _) = manual::<String, TokenBucket>(Quota::per_minute(50).unwrap());
    let admitted = (0..10_000)
        .into_par_iter()
        .filter(|_| limiter.check_key("shared").unwrap().is_allowed())
        .count();
    assert_eq!(admitted, 50);
    assert_eq!(limiter.len(), 1);
}

#[test]
fn sweeper_thread_stops_with_its_handle_or_the_limiter() {
    let clock = ManualClock::default();
    let limiter = Arc::new(
        KeyedLimiter::builder(Quota::per_second(1).unwrap())
            .clock(clock.clone())
            .build(),
    );
    let handle = limiter
        .spawn_sweeper(Duration::from_millis(1))
        .expect("thread");
    limiter.check_key(&1u16).unwrap();
    clock.set(SECOND);
    while !limiter.is_empty() {
        std::thread::sleep(Duration::from_millis(1));
    }
    handle.stop();
    let sweeps = limiter.stats().sweeps;
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(limiter.stats().sweeps, sweeps, "stopped");

    // Dropping the limiter ends the thread too (it holds a weak reference).
    let handle = limiter.spawn_sweeper(Duration::from_millis(1)).unwrap();
    drop(limiter);
    drop(handle); // joins: returns only because the thread ended
}

#[test]
fn debug_names_the_algorithm() {
    let (limiter, _) = manual::<u8, TokenBucket>(Quota::per_second(1).unwrap());
    let debug = format!("{limiter:?}");
    assert!(debug.contains("token-bucket"), "{debug}");
}

/// Regression (review): `len()` used papaya's per-thread counters, which have no consistent
/// snapshot and were seen reporting 6,083 keys on a 1,000-key limiter during a flood. It now
/// reads the limiter's own occupancy count, which the bound keeps at or below `max_keys`.
#[test]
fn len_never_exceeds_max_keys_during_a_concurrent_flood() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
    const MAX: usize = 1_000;
    let clock = ManualClock::default();
    // One per microsecond: keys go idle fast, so sweeps free slots that the flood refills.
    let quota = Quota::new(1, Duration::from_micros(1)).unwrap();
    let limiter = Arc::new(
        KeyedLimiter::<u64>::builder(quota)
            .clock(clock.clone())
            .max_keys(MAX)
            .build(),
    );
    let _sweeper = limiter.spawn_sweeper(Duration::from_micros(50)).unwrap();
    let (stop, seen) = (AtomicBool::new(false), AtomicUsize::new(0));
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Relaxed) {
                seen.fetch_max(limiter.len().max(limiter.stats().keys), Relaxed);
            }
        });
        let flooders: Vec<_> = (0..6u64)
            .map(|thread| {
                let (limiter, clock) = (&limiter, &clock);
                scope.spawn(move || {
                    for i in 0..100_000u64 {
                        if i % 64 == 0 {
                            clock.advance(Duration::from_micros(2));
                        }
                        let _ = limiter.check_key(&(thread << 40 | i));
                    }
                })
            })
            .collect();
        for flooder in flooders {
            flooder.join().unwrap();
        }
        stop.store(true, Relaxed);
    });
    let seen = seen.load(Relaxed);
    assert!(seen <= MAX, "len reported {seen} keys with max_keys {MAX}");
}

/// Regression (review): a capacity hint of `usize::MAX` made papaya panic ("capacity
/// overflow") at construction. Hints are now lowered to `max_keys` and to a fixed ceiling.
#[test]
fn a_huge_capacity_hint_does_not_panic() {
    let limiter = KeyedLimiter::<u64>::builder(Quota::per_second(1).unwrap())
        .capacity(usize::MAX)
        .max_keys(10)
        .build();
    assert!(limiter.check_key(&1).unwrap().is_allowed());
    let unbounded = KeyedLimiter::<u64>::builder(Quota::per_second(1).unwrap())
        .capacity(usize::MAX)
        .build();
    assert!(unbounded.check_key(&1).unwrap().is_allowed());
}
