//! Bytes per key of nanolimit's keyed limiter and of governor's (0.10, `RateLimiter::keyed`:
//! a dashmap of `AtomicU64`), measured the same way.
//!
//! ```text
//! cargo run --release --example memory_per_key
//! cargo run --release --example memory_per_key -- 1000000            # one size
//! ```
//!
//! Each measurement runs in a fresh child process (this program re-executed with `child`),
//! so that one limiter's freed memory cannot be reused by the next. The child inserts `n`
//! distinct keys (one check each) and reports:
//! - heap: live bytes requested from the allocator (a counting global allocator), after minus
//!   before; what the data structures ask for;
//! - RSS: resident set size (`/proc/self/statm`), after minus before; what the process pays,
//!   including the allocator's per-allocation overhead (glibc rounds a 16-byte request up to
//!   a 32-byte chunk) and pages touched.
//!
//! Before measuring, each limiter runs its own cleanup once (see `settle`; `NO_SWEEP=1`
//! skips it).
//!
//! Keys: `u64` (an integer id, or an IPv4 address), and `String` (an API key of 24 bytes).
//! Sizes: powers of two and between, so that both tables are seen at low and high load.

use std::alloc::{GlobalAlloc, Layout, System};
use std::num::NonZeroU32;
use std::process::Command;
use std::sync::atomic::{AtomicI64, Ordering};

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
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // Relaxed: a statistic.
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Relaxed: a statistic.
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Relaxed: a statistic.
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn heap() -> i64 {
    LIVE.load(Ordering::Relaxed)
}

fn rss() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: i64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

const SIZES: [usize; 7] = [
    250_000, 500_000, 700_000, 1_000_000, 1_400_000, 2_000_000, 2_800_000,
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        let (which, keys, n) = (&args[2], &args[3], args[4].parse().unwrap());
        let (heap, rss) = measure(which, keys, n);
        println!("{heap} {rss}");
        return;
    }
    let sizes: Vec<usize> = match args.get(1) {
        Some(n) => vec![n.parse().expect("a number of keys")],
        None => SIZES.to_vec(),
    };
    println!("bytes per key (heap requested / RSS), one fresh process per cell");
    println!(
        "{:>10} {:>7} | {:>17} | {:>17} | heap ratio",
        "keys", "key", "nanolimit", "governor 0.10"
    );
    for keys in ["u64", "String"] {
        for &n in &sizes {
            let ours = child("nanolimit", keys, n);
            let theirs = child("governor", keys, n);
            println!(
                "{n:>10} {keys:>7} | {:>7.1} / {:>7.1} | {:>7.1} / {:>7.1} | {:.2}",
                ours.0,
                ours.1,
                theirs.0,
                theirs.1,
                ours.0 / theirs.0
            );
        }
    }
}

fn child(which: &str, keys: &str, n: usize) -> (f64, f64) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["child", which, keys, &n.to_string()])
        .output()
        .expect("re-run self");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut fields = text.split_whitespace().map(|f| f.parse::<f64>().unwrap());
    let (heap, rss) = (fields.next().unwrap(), fields.next().unwrap());
    (heap / n as f64, rss / n as f64)
}

/// A 24-byte API key for key number `i`.
fn api_key(i: usize) -> String {
    format!("key-{i:020}")
}

fn measure(which: &str, keys: &str, n: usize) -> (i64, i64) {
    // Build the key strings first, outside the measurement, as a server would have them.
    let strings: Vec<String> = if keys == "String" {
        (0..n).map(api_key).collect()
    } else {
        Vec::new()
    };
    let (heap0, rss0) = (heap(), rss());
    let (heap1, rss1, len) = match (which, keys) {
        ("nanolimit", "u64") => {
            let limiter = nanolimit::KeyedLimiter::<u64>::gcra(quota());
            for key in 0..n as u64 {
                assert!(limiter.check_key(&key).unwrap().is_allowed());
            }
            settle(|| limiter.evict_idle());
            let measured = (heap(), rss(), limiter.len());
            std::mem::forget(limiter);
            measured
        }
        ("nanolimit", _) => {
            let limiter = nanolimit::KeyedLimiter::<String>::gcra(quota());
            for key in &strings {
                assert!(limiter.check_key(key.as_str()).unwrap().is_allowed());
            }
            settle(|| limiter.evict_idle());
            let measured = (heap(), rss(), limiter.len());
            std::mem::forget(limiter);
            measured
        }
        ("governor", "u64") => {
            let limiter = governor::RateLimiter::<u64, _, _>::keyed(governor_quota());
            for key in 0..n as u64 {
                assert!(limiter.check_key(&key).is_ok());
            }
            settle(|| limiter.retain_recent());
            let measured = (heap(), rss(), limiter.len());
            std::mem::forget(limiter);
            measured
        }
        ("governor", _) => {
            let limiter = governor::RateLimiter::<String, _, _>::keyed(governor_quota());
            for key in &strings {
                // governor's `check_key` takes `&K`: the owned key is cloned only when new.
                assert!(limiter.check_key(key).is_ok());
            }
            settle(|| limiter.retain_recent());
            let measured = (heap(), rss(), limiter.len());
            std::mem::forget(limiter);
            measured
        }
        other => panic!("unknown {other:?}"),
    };
    assert_eq!(len, n);
    // The String keys' own text is counted for both (each limiter stores a copy of the key).
    (heap1 - heap0, rss1 - rss0)
}

/// Each limiter's own cleanup, run once after the inserts, as a server would run it
/// periodically: nanolimit's `evict_idle` (which also frees the tables papaya's resizes left
/// for deferred reclamation), governor's `retain_recent`. With the slow quota below, neither
/// removes a key. Set `NO_SWEEP=1` to measure right after the inserts instead.
fn settle<R>(sweep: impl FnOnce() -> R) {
    if std::env::var_os("NO_SWEEP").is_none() {
        sweep();
    }
}

/// A slow quota, so that no key goes idle (and is evicted) while the keys are inserted.
fn quota() -> nanolimit::Quota {
    nanolimit::Quota::per_hour(10).unwrap()
}

fn governor_quota() -> governor::Quota {
    governor::Quota::per_hour(NonZeroU32::new(10).unwrap())
}
