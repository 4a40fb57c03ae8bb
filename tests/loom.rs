//! Loom models of [`Cell`]: every interleaving (up to `LOOM_MAX_PREEMPTIONS` preemptions) of
//! a few threads checking one cell, for both algorithms.
//!
//! Each model asserts, for every execution loom explores:
//! - linearizability: the decisions and the final state are those of some sequential order of
//!   the same calls (each thread's calls in program order), replayed with the pure
//!   [`Algorithm::check`];
//! - the rate bound: over every window `[a, b]` of the times the admissions were judged at,
//!   the admitted cost is at most `burst + (b - a) / T` (whole-nanosecond `T`: exact);
//! - whatever exact outcome the model pins down (with the clock frozen, the bucket is drained
//!   down to less than the smallest cost it refused).
//!
//! Not covered: loom's `compare_exchange_weak` never fails spuriously, so the models only
//! take the retry path on real contention (a spurious failure would retry the same way, on
//! the value it returned).
//!
//! Built only with `RUSTFLAGS="--cfg nanolimit_loom"`, which switches the crate's atomics to
//! loom's (see `src/sync.rs`); run by `scripts/test.sh`:
//!
//! ```text
//! RUSTFLAGS="--cfg nanolimit_loom" LOOM_MAX_PREEMPTIONS=3 \
//!     cargo test --release -p nanolimit --test loom
//! ```
#![cfg(nanolimit_loom)]

use std::time::Duration;

// Loom's atomic, for the shared clock of `advancing_clock`: a std atomic would be invisible to
// loom, which could then not explore the stale reads that a Relaxed load may return.
use loom::sync::atomic::{AtomicU64, Ordering};
// Loom's Arc and threads: loom schedules only the threads it spawns, and checks that every Arc
// is released by the end of each execution.
use loom::sync::Arc;
use loom::thread;
use nanolimit::{Algorithm, Cell, Decision, Gcra, Quota, TokenBucket};

/// Emission interval of every model's quota, in nanoseconds: whole, so one tick is one
/// nanosecond and the rate bound is exact.
const T: u64 = 1_000;

/// `burst` admissions per `burst * T`: one per microsecond.
fn quota(burst: u64) -> Quota {
    let quota = Quota::new(1, Duration::from_nanos(T))
        .and_then(|q| q.with_burst(burst))
        .expect("valid quota");
    assert_eq!(quota.ticks_per_token(), T, "one tick per nanosecond");
    quota
}

/// Where a call takes its time from.
#[derive(Clone, Copy, Debug)]
enum When {
    /// A fixed time, returned on every attempt of the call.
    At(u64),
    /// The model's shared clock, read afresh on every attempt.
    Clock,
}

/// One `Cell::check` call of a model thread.
#[derive(Clone, Copy, Debug)]
struct Call {
    cost: u64,
    when: When,
}

fn at(cost: u64, time: u64) -> Call {
    Call {
        cost,
        when: When::At(time),
    }
}

fn on_clock(cost: u64) -> Call {
    Call {
        cost,
        when: When::Clock,
    }
}

/// A completed call: its cost, the time it was judged at (its last read of the clock) and
/// the decision.
#[derive(Clone, Copy, Debug)]
struct Record {
    cost: u64,
    at: u64,
    decision: Decision,
}

/// A model: the quota, each thread's calls, and the times the main thread stores into the
/// shared clock (which starts at 0) while they run.
#[derive(Clone, Debug)]
struct Model {
    quota: Quota,
    threads: Vec<Vec<Call>>,
    clock_steps: Vec<u64>,
}

/// What the caller learns from one execution, for its own exact assertions.
struct Outcome<'a> {
    quota: Quota,
    records: Vec<&'a Record>,
}

impl Outcome<'_> {
    fn admitted_cost(&self) -> u64 {
        self.records
            .iter()
            .filter(|r| r.decision.is_allowed())
            .map(|r| r.cost)
            .sum()
    }

    fn smallest_refused_cost(&self) -> Option<u64> {
        self.records
            .iter()
            .filter(|r| r.decision.is_denied())
            .map(|r| r.cost)
            .min()
    }

    /// With the clock frozen, credit only goes down, so a refusal of cost `c` leaves the final
    /// credit below `c`: the bucket is drained to less than the smallest refused cost.
    fn assert_drained(&self) {
        let admitted = self.admitted_cost();
        let burst = self.quota.burst();
        assert!(admitted <= burst, "admitted {admitted} > burst {burst}");
        if let Some(smallest) = self.smallest_refused_cost() {
            assert!(
                burst - admitted < smallest,
                "refused a cost of {smallest} with {} left",
                burst - admitted
            );
        }
    }
}

fn call<A: Algorithm>(cell: &Cell, quota: &Quota, clock: &AtomicU64, call: Call) -> Record {
    let mut judged = 0;
    let decision = cell
        .check::<A>(quota, call.cost, || {
            let time = match call.when {
                When::At(time) => time,
                // Relaxed: as `ManualClock` reads its time; loom may return any value not older
                // than one this thread has already seen or that happens-before this read.
                When::Clock => clock.load(Ordering::Relaxed),
            };
            // The last time handed out is the one the returned decision was made at.
            judged = time;
            time
        })
        .expect("every model cost fits the burst");
    Record {
        cost: call.cost,
        at: judged,
        decision,
    }
}

/// Runs `model` under loom with algorithm `A`, checks linearizability and the rate bound on
/// every execution, then hands the outcome to `exact` for the model's own assertions.
///
/// `monotone`: the model's times come from one clock that only moves forwards, so the cell's
/// Acquire/Release pairing must make every admission judged no earlier than the admission whose
/// state it replaced; the sequential order found must then have nondecreasing admission times.
fn explore<A: Algorithm>(model: Model, monotone: bool, exact: fn(&Outcome<'_>)) {
    // Runs the closure once per interleaving, up to LOOM_MAX_PREEMPTIONS preemptions: all
    // state (cell, clock) is created inside it, fresh for each execution.
    loom::model(move || {
        let quota = model.quota;
        let cell = Arc::new(Cell::new(A::initial(&quota)));
        let clock = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = model
            .threads
            .iter()
            .cloned()
            .map(|calls| {
                let cell = Arc::clone(&cell);
                let clock = Arc::clone(&clock);
                thread::spawn(move || {
                    calls
                        .into_iter()
                        .map(|c| call::<A>(&cell, &quota, &clock, c))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for &step in &model.clock_steps {
            // Relaxed: the time is a single value and publishes nothing else (as in
            // `ManualClock::set`); the single writer keeps it monotonic.
            clock.store(step, Ordering::Relaxed);
        }
        let histories: Vec<Vec<Record>> = handles
            .into_iter()
            .map(|h| h.join().expect("model thread panicked"))
            .collect();
        let final_state = cell.load();

        let found = linearize::<A>(&quota, &histories, final_state, monotone);
        assert!(
            found,
            "{}: no sequential order explains {histories:#?} with final state {final_state:#x}",
            A::NAME
        );
        let outcome = Outcome {
            quota,
            records: histories.iter().flatten().collect(),
        };
        assert_rate_bound(&outcome);
        exact(&outcome);
    });
}

/// Whether some interleaving of the histories (each in program order), replayed sequentially
/// from the initial state with `A::check`, yields exactly the recorded decisions and ends in
/// `final_state`. Exhaustive: the models have at most four calls.
fn linearize<A: Algorithm>(
    quota: &Quota,
    histories: &[Vec<Record>],
    final_state: u64,
    monotone: bool,
) -> bool {
    fn search<A: Algorithm>(
        quota: &Quota,
        histories: &[Vec<Record>],
        next: &mut [usize],
        state: u64,
        last_admission: u64,
        final_state: u64,
        monotone: bool,
    ) -> bool {
        if next.iter().zip(histories).all(|(&i, h)| i == h.len()) {
            return state == final_state;
        }
        for thread in 0..histories.len() {
            let Some(record) = histories[thread].get(next[thread]) else {
                continue;
            };
            let transition =
                A::check(state, record.at, record.cost, quota).expect("cost fits the burst");
            if transition.decision != record.decision {
                continue;
            }
            let allowed = record.decision.is_allowed();
            if monotone && allowed && record.at < last_admission {
                continue;
            }
            next[thread] += 1;
            let found = search::<A>(
                quota,
                histories,
                next,
                transition.next.unwrap_or(state),
                if allowed { record.at } else { last_admission },
                final_state,
                monotone,
            );
            next[thread] -= 1;
            if found {
                return true;
            }
        }
        false
    }
    let mut next = vec![0; histories.len()];
    search::<A>(
        quota,
        histories,
        &mut next,
        A::initial(quota),
        0,
        final_state,
        monotone,
    )
}

/// Over every window `[a, b]` spanned by two admissions' times, the cost admitted at times in
/// the window is at most `burst + (b - a) / T`.
fn assert_rate_bound(outcome: &Outcome<'_>) {
    let mut admitted: Vec<(u64, u64)> = outcome
        .records
        .iter()
        .filter(|r| r.decision.is_allowed())
        .map(|r| (r.at, r.cost))
        .collect();
    admitted.sort_unstable();
    for (i, &(a, _)) in admitted.iter().enumerate() {
        for &(b, _) in &admitted[i..] {
            let in_window: u64 = admitted
                .iter()
                .filter(|&&(t, _)| a <= t && t <= b)
                .map(|&(_, cost)| cost)
                .sum();
            let bound = outcome.quota.burst() + (b - a) / T;
            assert!(
                in_window <= bound,
                "admitted {in_window} in [{a}, {b}] ns, bound {bound}: {admitted:?}"
            );
        }
    }
}

/// Three threads ask for one unit each at the same instant; the bucket holds two.
fn frozen_three_threads<A: Algorithm>() {
    let model = Model {
        quota: quota(2),
        threads: vec![vec![at(1, 0)], vec![at(1, 0)], vec![at(1, 0)]],
        clock_steps: vec![],
    };
    explore::<A>(model, true, |outcome| {
        assert_eq!(outcome.admitted_cost(), 2, "exactly the burst");
        outcome.assert_drained();
    });
}

/// Mixed costs at one instant: 3 then 2 + 2 against a bucket of 4. Depending on the order,
/// 3 or 4 units go through; either way the leftover is below every refused cost.
fn frozen_mixed_costs<A: Algorithm>() {
    let model = Model {
        quota: quota(4),
        threads: vec![vec![at(3, 5 * T)], vec![at(2, 5 * T), at(2, 5 * T)]],
        clock_steps: vec![],
    };
    explore::<A>(model, true, |outcome| {
        assert!((3..=4).contains(&outcome.admitted_cost()));
        outcome.assert_drained();
    });
}

/// Stale time: one thread judges at `T`, the other at 0, older than the first thread's
/// updates it may see. Only one interval of refill separates them, so at most `burst + 1`
/// units go through out of four asked; every sequential order of these calls admits 2 or 3.
fn stale_time<A: Algorithm>() {
    let model = Model {
        quota: quota(2),
        threads: vec![vec![at(1, T), at(1, T)], vec![at(1, 0), at(1, 0)]],
        clock_steps: vec![],
    };
    explore::<A>(model, false, |outcome| {
        assert!((2..=3).contains(&outcome.admitted_cost()));
    });
}

/// Stale time with three threads and mixed costs: the newest time comes first in some orders
/// and last in others.
fn stale_three_threads<A: Algorithm>() {
    let model = Model {
        quota: quota(2),
        threads: vec![vec![at(2, 2 * T)], vec![at(1, 0)], vec![at(2, T)]],
        clock_steps: vec![],
    };
    explore::<A>(model, false, |outcome| {
        // 5 asked: a sequential order admits the 1 at 0 and one of the 2s (3), or only the
        // first 2 admitted, which leaves too little for the other two calls (2).
        assert!((2..=3).contains(&outcome.admitted_cost()));
    });
}

/// The clock advances (0, then `T`, then `2T`) while two threads check on it: each attempt
/// reads the shared clock, which may be stale (loom explores every value a Relaxed load may
/// return). With a burst of 3, a unit judged at 0 right after a unit judged at `T` would still
/// be admitted; only the cell's Acquire load and Acquire/Release CAS rule that out (the clock
/// read of the thread that wrote a state happens-before the clock read of any thread that
/// acquires it). The `monotone` search rejects such orders: weakening any of those three
/// orderings to Relaxed makes this model fail.
fn advancing_clock<A: Algorithm>() {
    let model = Model {
        quota: quota(3),
        threads: vec![vec![on_clock(1)], vec![on_clock(1), on_clock(2)]],
        clock_steps: vec![T, 2 * T],
    };
    explore::<A>(model, true, |outcome| {
        // 4 asked of a bucket of 3 that refills one per `T`: at least 2 (1 + 1, then the 2
        // refused at the same instant), at most all 4.
        let admitted = outcome.admitted_cost();
        assert!((2..=4).contains(&admitted), "admitted {admitted}");
    });
}

#[test]
fn gcra_frozen_three_threads() {
    frozen_three_threads::<Gcra>();
}

#[test]
fn token_bucket_frozen_three_threads() {
    frozen_three_threads::<TokenBucket>();
}

#[test]
fn gcra_frozen_mixed_costs() {
    frozen_mixed_costs::<Gcra>();
}

#[test]
fn token_bucket_frozen_mixed_costs() {
    frozen_mixed_costs::<TokenBucket>();
}

#[test]
fn gcra_stale_time() {
    stale_time::<Gcra>();
}

#[test]
fn token_bucket_stale_time() {
    stale_time::<TokenBucket>();
}

#[test]
fn gcra_stale_three_threads() {
    stale_three_threads::<Gcra>();
}

#[test]
fn token_bucket_stale_three_threads() {
    stale_three_threads::<TokenBucket>();
}

#[test]
fn gcra_advancing_clock() {
    advancing_clock::<Gcra>();
}

#[test]
fn token_bucket_advancing_clock() {
    advancing_clock::<TokenBucket>();
}
