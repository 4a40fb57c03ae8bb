//! Stress: several threads checking many keys while a sweeper evicts idle keys (and amortized
//! sweeps run as keys are inserted), on a manual clock, for both algorithms.
//!
//! Time moves in phases: the main thread sets the clock, then workers and the sweeper run
//! against that one instant until the workers are done, and everyone meets at a barrier. So
//! every admission's time is known exactly, and each phase's result per key is that of the
//! exact model (all requests cost 1 at one instant: `min(requests, whole tokens available)`),
//! however the threads interleave and whatever the sweeper removed. From that:
//! - per key, the admissions equal the model's, phase by phase (none lost, none extra);
//! - per key, over every window of phases `[i, j]`, admitted <= `burst + (t_j - t_i) / T`
//!   (`T` a whole number of nanoseconds: exact);
//! - memory comes back: once every key is idle and swept the map is empty, and the heap
//!   (counted by a global allocator) gives back the entries.
#![cfg(not(nanolimit_loom))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::Duration;

use nanolimit::{Algorithm, Gcra, KeyedLimiter, ManualClock, Quota, TokenBucket};

/// Live heap bytes of the whole process.
struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: every method forwards to `System` with the same arguments; the counter has no
// effect on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // Relaxed: a statistic.
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Relaxed: a statistic.
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> i64 {
    LIVE.load(Ordering::Relaxed)
}

/// The heap measurement must not overlap another test of this binary.
static SERIAL: Mutex<()> = Mutex::new(());

/// One emission interval: 1 ms, a whole number of nanoseconds.
const T: u64 = 1_000_000;
const BURST: u64 = 3;
const KEYS: usize = 512;
const PHASES: usize = 120;
const WORKERS: usize = 3;
const REQUESTS_PER_PHASE: usize = 300;

/// splitmix64: a tiny deterministic generator.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The phase times: steps of 0, T/3, T, 2T or 5T (long enough for a key to go idle).
fn times() -> Vec<u64> {
    let mut t = 0;
    (0..PHASES)
        .map(|p| {
            t += [0, T / 3, T, 2 * T, 5 * T][(mix(p as u64) % 5) as usize];
            t
        })
        .collect()
}

/// A quarter of the keys is active in each phase; the others rest (and go idle).
fn active(phase: usize, key: usize) -> bool {
    mix((phase as u64) << 32 | key as u64).is_multiple_of(4)
}

/// `counts[phase][key] = (requests, admitted)`, summed over workers.
type Counts = Vec<Vec<(u64, u64)>>;

fn run<A: Algorithm>() -> Counts {
    let clock = ManualClock::default();
    let quota = Quota::new(1, Duration::from_nanos(T))
        .and_then(|q| q.with_burst(BURST))
        .unwrap();
    let limiter: KeyedLimiter<u32, A, ManualClock> = KeyedLimiter::builder(quota)
        .algorithm::<A>()
        .clock(clock.clone())
        .build();
    let times = times();
    let barrier = Barrier::new(WORKERS + 2);
    let done = AtomicUsize::new(0);
    let mut counts: Counts = vec![vec![(0, 0); KEYS]; PHASES];
    let sweeps = std::thread::scope(|s| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (limiter, barrier, done) = (&limiter, &barrier, &done);
                s.spawn(move || {
                    let mut mine: Counts = vec![vec![(0, 0); KEYS]; PHASES];
                    let mut seed = mix(w as u64 + 1_000);
                    for (phase, row) in mine.iter_mut().enumerate() {
                        barrier.wait();
                        let keys: Vec<usize> = (0..KEYS).filter(|&k| active(phase, k)).collect();
                        for _ in 0..REQUESTS_PER_PHASE {
                            seed = mix(seed);
                            let key = keys[(seed % keys.len() as u64) as usize];
                            let decision = limiter.check_key(&(key as u32)).unwrap();
                            row[key].0 += 1;
                            row[key].1 += u64::from(decision.is_allowed());
                        }
                        // Release: the sweeper stops sweeping this phase once all are done.
                        done.fetch_add(1, Ordering::Release);
                        barrier.wait();
                    }
                    mine
                })
            })
            .collect();
        let sweeper = {
            let (limiter, barrier, done) = (&limiter, &barrier, &done);
            s.spawn(move || {
                let mut evicted = 0;
                for phase in 0..PHASES {
                    barrier.wait();
                    // At least one sweep per phase, racing the workers' first checks.
                    loop {
                        evicted += limiter.evict_idle();
                        // Acquire: pairs with the workers' Release.
                        if done.load(Ordering::Acquire) >= WORKERS * (phase + 1) {
                            break;
                        }
                    }
                    barrier.wait();
                }
                evicted
            })
        };
        for &t in &times {
            clock.set(t);
            barrier.wait();
            barrier.wait();
        }
        for worker in workers {
            let mine = worker.join().unwrap();
            for (total, row) in counts.iter_mut().zip(mine) {
                for (sum, (requests, admitted)) in total.iter_mut().zip(row) {
                    sum.0 += requests;
                    sum.1 += admitted;
                }
            }
        }
        sweeper.join().unwrap()
    });
    assert!(
        sweeps > 0,
        "{}: the sweeper evicted keys while checks ran",
        A::NAME
    );
    assert!(limiter.stats().evicted >= sweeps as u64);
    // Memory returns: every key idle, one sweep, an empty map.
    clock.set(times[PHASES - 1] + BURST * T);
    limiter.evict_idle();
    assert_eq!(limiter.len(), 0, "{}", A::NAME);
    counts
}

/// The exact model, per key: GCRA in nanoseconds (T whole), all requests cost 1.
fn check_against_model(name: &str, counts: &Counts) {
    let times = times();
    for key in 0..KEYS {
        let mut tat = 0u64;
        let mut prefix = vec![0u64];
        for (phase, (&t, row)) in times.iter().zip(counts).enumerate() {
            let (requests, admitted) = row[key];
            let debt = tat.saturating_sub(t);
            let available = (BURST * T - debt) / T;
            let expected = requests.min(available);
            assert_eq!(
                admitted, expected,
                "{name}: key {key}, phase {phase} at {t} ns: {requests} asked, \
                 {admitted} admitted, the model admits {expected}"
            );
            tat = tat.max(t) + expected * T;
            prefix.push(prefix[phase] + admitted);
        }
        // The rate bound, over every window of phases.
        for i in 0..PHASES {
            for j in i..PHASES {
                let admitted = prefix[j + 1] - prefix[i];
                let bound = BURST + (times[j] - times[i]) / T;
                assert!(admitted <= bound, "{name}: key {key} over phases {i}..={j}");
            }
        }
    }
}

#[test]
fn concurrent_checks_and_sweeps_match_the_model_gcra() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let counts = run::<Gcra>();
    check_against_model("gcra", &counts);
}

#[test]
fn concurrent_checks_and_sweeps_match_the_model_token_bucket() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let counts = run::<TokenBucket>();
    check_against_model("token-bucket", &counts);
}

/// Heap returns after keys go idle and are swept: the entries (key and cell) are freed. The
/// map's table of slots is kept (papaya shrinks it only when later insertions resize it), so
/// what remains is bounded by the table, a few bytes per slot at the high-water mark.
#[test]
fn heap_returns_after_idle_keys_are_swept() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const N: usize = 50_000;
    let clock = ManualClock::default();
    let limiter: KeyedLimiter<String, Gcra, ManualClock> =
        KeyedLimiter::builder(Quota::per_second(1).unwrap())
            .clock(clock.clone())
            .amortized_eviction(false)
            .build();
    let keys: Vec<String> = (0..N).map(|i| format!("client-{i:032}")).collect();
    let before = live();
    for key in &keys {
        limiter.check_key(key.as_str()).unwrap();
    }
    let full = live() - before;
    // Each entry: a heap-allocated String key (39 bytes of text) and the papaya entry
    // holding the key's header and the cell (32 bytes).
    let entries = (N * (39 + 32)) as i64;
    assert!(full >= entries, "{full} bytes for {N} keys");
    clock.set(1_000_000_000);
    assert_eq!(limiter.evict_idle(), N);
    assert_eq!(limiter.len(), 0);
    // Deferred reclamation frees retired entries in batches; pinning the map a few more
    // times flushes this thread's last batch.
    for _ in 0..64 {
        limiter.peek_key("flush");
    }
    let after = live() - before;
    let freed = full - after;
    eprintln!(
        "{N} keys: {full} bytes live at peak, {after} after the sweep ({} bytes per key freed)",
        freed / N as i64
    );
    assert!(
        freed >= entries * 9 / 10,
        "only {freed} of {full} bytes came back after the sweep"
    );
    // What stays is the table: under 40 bytes per key of the high-water mark.
    assert!(
        after < (N * 40) as i64,
        "{after} bytes stay after the sweep"
    );
    drop(limiter);
    assert!(
        live() - before < 4_096,
        "dropping the limiter frees the rest"
    );
}
