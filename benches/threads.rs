//! Many threads checking at once: aggregate throughput and its scaling from one thread,
//! nanolimit (GCRA) and governor side by side in each group, in one run.
//!
//! - `threads/one-key/N`: `N` threads check the same key of a keyed limiter (every check a
//!   compare-and-swap on one shared word: the worst case for contention).
//! - `threads/disjoint-keys/N`: each of `N` threads checks its own 1,000 keys round-robin
//!   (pre-populated), so threads share the map but no cell.
//! - `threads/direct/N`: `N` threads check one direct limiter (nanolimit, governor and
//!   `ratelimit`; all on one word).
//!
//! Every check is admitted (a quota of 10^9 per second, burst 10^9). Each iteration is one
//! check on every thread: the threads (scoped, started together by a barrier) each run the
//! same number of checks, and the time is the wall time until the last one finishes. Criterion
//! reports it as elements per second: the aggregate checks per second. Scaling is the ratio of
//! `N` threads' throughput to one thread's, in the same run.
//!
//! The thread counts come from `NANOLIMIT_BENCH_THREADS` (comma-separated; default `1,2`), so
//! that the same bench runs on bigger machines:
//!
//! `NANOLIMIT_BENCH_THREADS=1,2,4,8 cargo bench --bench threads`

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use nanolimit::{DirectLimiter, KeyedLimiter, Quota};

const BILLION: u32 = 1_000_000_000;
const KEYS_PER_THREAD: u64 = 1_000;

fn thread_counts() -> Vec<usize> {
    let spec = std::env::var("NANOLIMIT_BENCH_THREADS").unwrap_or_else(|_| "1,2".into());
    spec.split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("NANOLIMIT_BENCH_THREADS: thread counts, like 1,2,4")
        })
        .collect()
}

/// Runs `per_thread(thread_index, iters)` on `threads` threads started together; returns the
/// wall time from the start until the last thread is done.
fn parallel(threads: usize, iters: u64, per_thread: impl Fn(usize, u64) + Sync) -> Duration {
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        for index in 0..threads {
            let barrier = &barrier;
            let per_thread = &per_thread;
            scope.spawn(move || {
                barrier.wait();
                per_thread(index, iters);
            });
        }
        barrier.wait();
        let start = Instant::now();
        // The scope joins every thread before returning.
        start
    })
    .elapsed()
}

/// Key `i` of thread `thread`'s set.
fn key_of(thread: usize, i: u64) -> u64 {
    thread as u64 * KEYS_PER_THREAD + i
}

fn main() {
    let quota = Quota::per_second(u64::from(BILLION)).expect("valid quota");
    let governor_quota = governor::Quota::per_second(NonZeroU32::new(BILLION).expect("> 0"));
    let counts = thread_counts();
    let max_threads = counts.iter().copied().max().unwrap_or(1);
    let mut criterion = Criterion::default().configure_from_args();

    let nanolimit = KeyedLimiter::<u64>::gcra(quota);
    let governor = governor::DefaultKeyedRateLimiter::<u64>::keyed(governor_quota);
    for thread in 0..max_threads {
        for i in 0..KEYS_PER_THREAD {
            let key = key_of(thread, i);
            assert!(nanolimit.check_key(&key).expect("no max_keys").is_allowed());
            assert!(governor.check_key(&key).is_ok());
        }
    }

    let mut group = criterion.benchmark_group("threads/one-key");
    for &threads in &counts {
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_function(BenchmarkId::new("nanolimit-gcra", threads), |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters, |_, iters| {
                    for _ in 0..iters {
                        assert!(black_box(&nanolimit)
                            .check_key(&0)
                            .is_ok_and(|d| d.is_allowed()));
                    }
                })
            })
        });
        group.bench_function(BenchmarkId::new("governor", threads), |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters, |_, iters| {
                    for _ in 0..iters {
                        assert!(black_box(&governor).check_key(&0).is_ok());
                    }
                })
            })
        });
    }
    group.finish();

    let mut group = criterion.benchmark_group("threads/disjoint-keys");
    for &threads in &counts {
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_function(BenchmarkId::new("nanolimit-gcra", threads), |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters, |thread, iters| {
                    for i in 0..iters {
                        let key = key_of(thread, i % KEYS_PER_THREAD);
                        assert!(black_box(&nanolimit)
                            .check_key(&key)
                            .is_ok_and(|d| d.is_allowed()));
                    }
                })
            })
        });
        group.bench_function(BenchmarkId::new("governor", threads), |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters, |thread, iters| {
                    for i in 0..iters {
                        let key = key_of(thread, i % KEYS_PER_THREAD);
                        assert!(black_box(&governor).check_key(&key).is_ok());
                    }
                })
            })
        });
    }
    group.finish();
    // Nothing was inserted or evicted during the runs: the scenario was the one named.
    assert_eq!(nanolimit.len() as u64, max_threads as u64 * KEYS_PER_THREAD);
    assert_eq!(governor.len() as u64, max_threads as u64 * KEYS_PER_THREAD);

    let direct = DirectLimiter::gcra(quota);
    let governor = governor::RateLimiter::direct(governor_quota);
    let ratelimit = ratelimit::Ratelimiter::builder(u64::from(BILLION))
        .max_tokens(u64::from(BILLION))
        .initial_available(u64::from(BILLION))
        .build()
        .expect("valid ratelimit");
    let mut group = criterion.benchmark_group("threads/direct");
    for &threads in &counts {
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_function(BenchmarkId::new("nanolimit-gcra", threads), |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters, |_, iters| {
                    for _ in 0..iters {
                        assert!(black_box(&direct).check().is_allowed());
                    }
                })
            })
        });
        group.bench_function(BenchmarkId::new("governor", threads), |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters, |_, iters| {
                    for _ in 0..iters {
                        assert!(black_box(&governor).check().is_ok());
                    }
                })
            })
        });
        group.bench_function(BenchmarkId::new("ratelimit", threads), |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters, |_, iters| {
                    for _ in 0..iters {
                        assert!(black_box(&ratelimit).try_wait().is_ok());
                    }
                })
            })
        });
    }
    group.finish();
    criterion.final_summary();
}
