//! Multi-thread stress tests: many threads hammer one [`DirectLimiter`] on a [`ManualClock`],
//! and every decision is checked against one exact sequential history.
//!
//! No sleeps and no timing assertions: the clock only moves when a test moves it, and each
//! decision reports enough (what remains, when the bucket is full again) to place it exactly
//! in the chain of states the cell went through.
//!
//! - `*_frozen_clock`: the clock never moves, so exactly `burst` units go through in total,
//!   and the admissions form a single chain `burst -> ... -> 0` of remaining credit (no two
//!   admissions consumed from the same state, none was lost).
//! - `*_advancing_clock`: one thread advances the clock in steps while the others check; every
//!   admission is placed in the chain of the bucket's full-again times, and over every window
//!   `[a, b]` of admission times the admitted cost is at most `burst + (b - a) / T`.
#![cfg(not(nanolimit_loom))]

use std::cell::Cell as StdCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::Duration;

use nanolimit::{Algorithm, Clock, Decision, DirectLimiter, Gcra, ManualClock, Quota, TokenBucket};

/// Threads checking concurrently (more than the cores on purpose: preemption mid-CAS-loop is
/// part of what is being tested).
const THREADS: usize = 4;

/// Request costs, cycled through by each thread from a different starting point.
const COSTS: [u64; 3] = [1, 2, 3];

fn cost(thread: usize, call: usize) -> u64 {
    COSTS[(thread + call) % COSTS.len()]
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).expect("fits in u64")
}

// ---------------------------------------------------------------------------------------------
// Frozen clock
// ---------------------------------------------------------------------------------------------

/// Large, so that the threads race for credit for a long while (tens of thousands of
/// admissions per round), not only for the last few units.
const FROZEN_BURST: u64 = 100_000;
/// Calls per thread with cycling costs (2 units each on average): together well over the burst.
const FROZEN_CALLS: usize = 40_000;
/// Fresh limiters, one after the other.
const FROZEN_ROUNDS: usize = 4;

/// Each round, every thread makes `FROZEN_CALLS` calls of cost 1, 2, 3, 1, ... and then calls
/// of cost 1 until one is refused. The clock never moves, so credit only goes down: once any
/// thread is refused a cost of 1 the bucket is empty for good, and the total admitted is
/// exactly the burst.
fn frozen_clock<A: Algorithm>() {
    // T = 1 ms: every credit is a whole number of tokens, so `remaining()` is exact.
    let quota = Quota::per_second(1_000)
        .and_then(|q| q.with_burst(FROZEN_BURST))
        .expect("valid quota");
    let pool = pool(THREADS);
    for round in 0..FROZEN_ROUNDS {
        let limiter = DirectLimiter::<A, _>::with_clock(quota, ManualClock::new(123_456_789));
        // All threads start together, so their calls overlap from the first one.
        let start = Barrier::new(THREADS);
        // broadcast: the closure runs once on each of the pool's THREADS threads, concurrently.
        let histories: Vec<Vec<(u64, Decision)>> = pool.broadcast(|ctx| {
            let mut history = Vec::with_capacity(FROZEN_CALLS + 1);
            start.wait();
            for call in 0..FROZEN_CALLS {
                let cost = cost(ctx.index(), call);
                history.push((cost, limiter.check_n(cost).expect("cost fits the burst")));
            }
            loop {
                let decision = limiter.check();
                history.push((1, decision));
                if decision.is_denied() {
                    return history;
                }
            }
        });
        check_frozen_round::<A>(round, &histories);
        let after = limiter.peek();
        assert!(after.is_denied());
        assert_eq!(after.remaining(), 0);
    }
}

fn check_frozen_round<A: Algorithm>(round: usize, histories: &[Vec<(u64, Decision)>]) {
    let name = A::NAME;
    let mut admissions: Vec<(u64, u64)> = Vec::new(); // (remaining after, cost)
    let mut denials: Vec<(u64, u64)> = Vec::new(); // (remaining seen, cost)
    for &(cost, decision) in histories.iter().flatten() {
        if decision.is_allowed() {
            admissions.push((decision.remaining(), cost));
        } else {
            denials.push((decision.remaining(), cost));
        }
    }

    let admitted: u64 = admissions.iter().map(|&(_, cost)| cost).sum();
    assert_eq!(
        admitted, FROZEN_BURST,
        "{name}, round {round}: exactly the burst"
    );

    // One chain of states: sorted by what they left, each admission started from exactly what
    // the previous one left, from a full bucket down to an empty one.
    admissions.sort_unstable_by(|a, b| b.cmp(a));
    let mut credit = FROZEN_BURST;
    for &(remaining, cost) in &admissions {
        assert_eq!(
            remaining + cost,
            credit,
            "{name}, round {round}: an admission of {cost} left {remaining}, \
             not from the state {credit}"
        );
        credit = remaining;
    }
    assert_eq!(credit, 0);

    // Every refusal saw a state of the chain holding less than it asked.
    let states: HashSet<u64> = admissions.iter().map(|&(remaining, _)| remaining).collect();
    assert!(denials.len() >= THREADS, "each thread ends on a refusal");
    for &(seen, cost) in &denials {
        assert!(
            seen < cost,
            "{name}, round {round}: refused {cost} with {seen} left"
        );
        assert!(
            states.contains(&seen),
            "{name}, round {round}: refused on a state {seen} that never was"
        );
    }
}

#[test]
fn gcra_frozen_clock() {
    frozen_clock::<Gcra>();
}

#[test]
fn token_bucket_frozen_clock() {
    frozen_clock::<TokenBucket>();
}

// ---------------------------------------------------------------------------------------------
// Advancing clock
// ---------------------------------------------------------------------------------------------

/// Emission interval, whole nanoseconds: one tick per nanosecond, so every bound is exact.
const T: u64 = 1_000;
/// Checks per checking thread, per round.
const CHECKS: usize = 20_000;
/// The clock moves by `STEP` each time the checkers (together) have made `PACE` more checks,
/// and a checker waits while the checks run more than `LAG` steps ahead of the clock. So,
/// however the threads are scheduled, the clock never falls far behind, the checkers mostly
/// run freely (and race for the credit each step brings), and demand (2 units per check on
/// average) is twice the refill.
const STEP: u64 = 32 * T;
const PACE: usize = 32;
const LAG: usize = 8;
/// Holds the refill of `LAG` steps, so that none is lost while the clock catches up.
const ADVANCING_BURST: u64 = 400;
/// Fresh limiters, one after the other.
const ADVANCING_ROUNDS: usize = 3;

// Some check is refused, deterministically (see the end of `advancing_round`): the most a
// round can admit (the burst, and the refill of the most steps it can take) is less than its
// checks ask for (6 units per 3 checks: costs 1, 2, 3 in turn).
const _: () = assert!(
    ADVANCING_BURST + (THREADS * CHECKS / PACE) as u64 * STEP / T
        < (THREADS * (CHECKS / 3) * 6) as u64
);

thread_local! {
    /// The last time this thread read from a `RecordingClock`.
    static JUDGED_AT: StdCell<u64> = const { StdCell::new(0) };
}

/// A shared `ManualClock` that also remembers, per thread, the last time it handed out. The
/// cell reads the clock once per attempt and decides on the last one, so right after `check`
/// returns, `JUDGED_AT` is exactly the time the decision was made at.
struct RecordingClock(ManualClock);

impl Clock for RecordingClock {
    fn now(&self) -> u64 {
        let time = self.0.now();
        JUDGED_AT.with(|judged| judged.set(time));
        time
    }
}

/// One check of a checking thread: cost, time judged at, decision.
#[derive(Clone, Copy, Debug)]
struct Record {
    cost: u64,
    at: u64,
    decision: Decision,
}

impl Record {
    /// When the bucket is full again after this decision: for an admission, the bucket's
    /// theoretical arrival time after it; for a refusal, the one it saw.
    fn full_at(&self) -> u64 {
        self.at + nanos(self.decision.reset_after())
    }
}

fn advancing_clock<A: Algorithm>() {
    let quota = Quota::new(1, Duration::from_nanos(T))
        .and_then(|q| q.with_burst(ADVANCING_BURST))
        .expect("valid quota");
    assert_eq!(quota.ticks_per_token(), T, "one tick per nanosecond");
    let pool = pool(THREADS + 1);
    for round in 0..ADVANCING_ROUNDS {
        advancing_round::<A>(&pool, quota, round);
    }
}

/// Thread 0 advances the clock in steps while threads `1..=THREADS` check; then every
/// decision is placed in one sequential history and every window is held to the bound.
fn advancing_round<A: Algorithm>(pool: &rayon::ThreadPool, quota: Quota, round: usize) {
    let name = A::NAME;
    let clock = ManualClock::new(0);
    let limiter = DirectLimiter::<A, _>::with_clock(quota, RecordingClock(clock.clone()));
    let checks = AtomicUsize::new(0);
    let steps = AtomicUsize::new(0);
    let finished = AtomicUsize::new(0);
    // All start together, so that the checks overlap from the first one.
    let start = Barrier::new(THREADS + 1);

    let histories: Vec<Vec<Record>> = pool.broadcast(|ctx| {
        start.wait();
        if ctx.index() == 0 {
            let mut taken = 0;
            // Relaxed: a termination signal; the results come back through broadcast's join.
            while finished.load(Ordering::Relaxed) < THREADS {
                // Relaxed: a count that only paces the clock.
                if checks.load(Ordering::Relaxed) >= (taken + 1) * PACE {
                    clock.advance(Duration::from_nanos(STEP));
                    taken += 1;
                    // Release: pairs with the checkers' Acquire, so that a checker let go by
                    // this step also reads the time it set.
                    steps.store(taken, Ordering::Release);
                } else {
                    std::thread::yield_now();
                }
            }
            return Vec::new();
        }
        let mut history = Vec::with_capacity(CHECKS);
        for call in 0..CHECKS {
            if call % PACE == 0 && call > 0 {
                // Counted in batches, to keep this shared counter out of the race on the cell.
                // Relaxed: a count that only paces the clock.
                checks.fetch_add(PACE, Ordering::Relaxed);
                // Acquire: see the clock thread's Release. Relaxed (`checks`): as above.
                while checks.load(Ordering::Relaxed) >= (steps.load(Ordering::Acquire) + LAG) * PACE
                {
                    std::thread::yield_now();
                }
            }
            let cost = cost(ctx.index(), call);
            let decision = limiter.check_n(cost).expect("cost fits the burst");
            let at = JUDGED_AT.with(StdCell::get);
            history.push(Record { cost, at, decision });
        }
        // Relaxed: as for the clock thread's load.
        finished.fetch_add(1, Ordering::Relaxed);
        history
    });

    let records: Vec<Record> = histories.into_iter().flatten().collect();
    assert_eq!(records.len(), THREADS * CHECKS);
    // Each checker counted all its batches but the last; the last to count then waited until
    // the clock was less than LAG steps behind.
    let counted = THREADS * (CHECKS.div_ceil(PACE) - 1);
    assert!(
        // Relaxed: read after broadcast's join.
        steps.load(Ordering::Relaxed) > counted - LAG,
        "{name}, round {round}: the clock kept up"
    );
    let (mut admissions, denials): (Vec<Record>, Vec<Record>) =
        records.iter().partition(|r| r.decision.is_allowed());

    // The admissions, in the order of the bucket's full-again times, form one sequential
    // history from the initial (full) state: each starts from the state the previous one
    // left, which is the model's `TAT' = max(TAT, t) + cost * T`. Their times never go
    // backwards along it: the cell's Acquire/Release makes each writer's clock read happen
    // before the clock read of whoever acquires its state.
    admissions.sort_unstable_by_key(Record::full_at);
    let capacity = quota.burst() * T;
    let mut tat = 0;
    let mut last_at = 0;
    for admission in &admissions {
        let expected = tat.max(admission.at) + admission.cost * T;
        assert_eq!(
            admission.full_at(),
            expected,
            "{name}, round {round}: {admission:?} did not follow the state {tat}"
        );
        assert!(expected - admission.at <= capacity, "{name}: over capacity");
        assert!(
            admission.at >= last_at,
            "{name}, round {round}: {admission:?} judged before the admission it follows \
             ({last_at})"
        );
        tat = expected;
        last_at = admission.at;
    }

    // Every refusal saw one of those states, no earlier than it was written, and was short of
    // room in it.
    let written_at: HashMap<u64, u64> = admissions.iter().map(|r| (r.full_at(), r.at)).collect();
    assert!(!denials.is_empty(), "demand exceeded the rate");
    for denial in &denials {
        let seen = denial.full_at();
        let Some(&written) = written_at.get(&seen) else {
            panic!("{name}, round {round}: {denial:?} saw a state that never was");
        };
        assert!(
            denial.at >= written,
            "{name}, round {round}: {denial:?} judged before its state was written ({written})"
        );
        assert!(
            seen - denial.at + denial.cost * T > capacity,
            "{name}, round {round}: {denial:?} refused with room"
        );
    }

    // The limiter ends in the last state of the chain.
    let now = clock.now();
    assert_eq!(now + nanos(limiter.peek().reset_after()), tat.max(now));

    // The rate bound over every window [a, b] of admission times: the cost admitted at times
    // in it is at most burst + (b - a) / T. Per distinct time, the cost admitted then; a
    // window's cost is a difference of prefix sums.
    let mut per_time: Vec<(u64, u64)> = Vec::new(); // (time, cost admitted at it)
    admissions.sort_by_key(|r| r.at);
    for admission in &admissions {
        match per_time.last_mut() {
            Some((at, cost)) if *at == admission.at => *cost += admission.cost,
            _ => per_time.push((admission.at, admission.cost)),
        }
    }
    let mut prefix = vec![0u64];
    for &(_, cost) in &per_time {
        prefix.push(prefix.last().copied().unwrap_or(0) + cost);
    }
    let mut tightest = u64::MAX;
    for (i, &(a, _)) in per_time.iter().enumerate() {
        for (j, &(b, _)) in per_time.iter().enumerate().skip(i) {
            let admitted = prefix[j + 1] - prefix[i];
            let bound = quota.burst() + (b - a) / T;
            assert!(
                admitted <= bound,
                "{name}, round {round}: {admitted} admitted in [{a}, {b}] ns, bound {bound}"
            );
            tightest = tightest.min(bound - admitted);
        }
    }
    // The bound is nearly reached, so the check above had something to bite on.
    // Deterministically: the round cannot admit all it asks for (the const assertion above),
    // so some check of cost `c <= 3` is refused, judged no earlier than the admission that
    // left the state it saw (asserted above), with less than `c` units of credit. The window
    // from the start of that admission's busy period (its bucket last judged full) to its time
    // then admitted `burst + (t - a) / T` units, rounded down, minus less than `c`.
    assert!(
        tightest < 3,
        "{name}, round {round}: slack of {tightest} in every window"
    );
}

#[test]
fn gcra_advancing_clock() {
    advancing_clock::<Gcra>();
}

#[test]
fn token_bucket_advancing_clock() {
    advancing_clock::<TokenBucket>();
}
