//! The hot path of the keyed limiter allocates nothing: a check on a key already present,
//! looked up by a borrowed form (`&str` for `String` keys), with either algorithm.
//!
//! A counting global allocator counts allocations made by the measuring thread only (a
//! thread-local switch and a thread-local count), so tests running in parallel, and the
//! harness's own threads, cannot disturb the count.
#![cfg(not(nanolimit_loom))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use nanolimit::{Algorithm, Gcra, KeyedLimiter, ManualClock, Quota, TokenBucket};

struct Counting;

thread_local! {
    /// Whether this thread is counting, and what it counted: both per thread, so that tests
    /// running in parallel (one of which allocates on purpose) do not add to each other.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the allocator may run while thread-locals are being torn down.
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: every method forwards to `System` with the same arguments; counting has no effect
// on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by this thread while running `f`.
fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get) - before
}

fn existing_string_keys_do_not_allocate<A: Algorithm>() {
    let clock = ManualClock::default();
    let limiter: KeyedLimiter<String, A, ManualClock> =
        KeyedLimiter::builder(Quota::per_second(1_000).unwrap())
            .algorithm::<A>()
            .clock(clock.clone())
            .build();
    let keys: Vec<String> = (0..64).map(|i| format!("client-{i}")).collect();
    // Insert every key first (this allocates: the key is copied into the map), and warm up
    // the thread's epoch-reclamation state.
    for key in &keys {
        assert!(limiter.check_key(key.as_str()).unwrap().is_allowed());
    }
    let allocations = allocations_during(|| {
        for round in 0..1_000u64 {
            clock.set(round * 1_000_000);
            for key in &keys {
                let decision = limiter.check_key(key.as_str()).unwrap();
                assert!(decision.is_allowed());
                let peek = limiter.peek_key(key.as_str());
                assert!(peek.remaining() < 1_000);
                assert!(limiter.check_key_n(key.as_str(), 2).is_ok());
            }
        }
    });
    assert_eq!(allocations, 0, "{}: the hot path allocated", A::NAME);
    assert_eq!(limiter.len(), keys.len());
}

#[test]
fn gcra_check_on_existing_key_allocates_nothing() {
    existing_string_keys_do_not_allocate::<Gcra>();
}

#[test]
fn token_bucket_check_on_existing_key_allocates_nothing() {
    existing_string_keys_do_not_allocate::<TokenBucket>();
}

#[test]
fn denials_and_integer_keys_allocate_nothing() {
    let limiter = KeyedLimiter::builder(Quota::per_hour(1).unwrap())
        .clock(ManualClock::default())
        .build();
    for key in 0..100u64 {
        limiter.check_key(&key).unwrap();
    }
    let allocations = allocations_during(|| {
        for _ in 0..100 {
            for key in 0..100u64 {
                assert!(limiter.check_key(&key).unwrap().is_denied());
            }
        }
    });
    assert_eq!(allocations, 0);
}

/// The counter works: a new key does allocate (its entry and its copied key).
#[test]
fn a_new_key_is_counted() {
    let limiter: KeyedLimiter<String, Gcra, ManualClock> =
        KeyedLimiter::builder(Quota::per_second(1).unwrap())
            .clock(ManualClock::default())
            .build();
    limiter.check_key("warm-up").unwrap();
    let allocations = allocations_during(|| {
        limiter.check_key("new").unwrap();
    });
    assert!(allocations >= 2, "{allocations}");
}
