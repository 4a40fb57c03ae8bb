//! The semantics contract (`shared/guide/architecture.md`), pinned by table tests with exact
//! expectations: a [`DirectLimiter`] on a [`ManualClock`], and the pure algorithms.
//!
//! Every test is written once, generic over the algorithm, and runs for both (see `for_both!`
//! at the end): `gcra::<name>` and `token_bucket::<name>`.

use std::time::Duration;

use nanolimit::{Algorithm, Cell, Clock, DirectLimiter, InsufficientCapacity, ManualClock, Quota};

const MS: u64 = 1_000_000;
const SECOND: u64 = 1_000_000_000;
const HOUR: u64 = 3_600 * SECOND;
const YEAR: u64 = 365 * 86_400 * SECOND;
const LIFETIME: u64 = 1 << 61;

fn ns(n: u64) -> Duration {
    Duration::from_nanos(n)
}

/// A limiter with algorithm `A` on a manual clock reading `start`, and the clock.
fn new_limiter<A: Algorithm>(
    quota: Quota,
    start: u64,
) -> (DirectLimiter<A, ManualClock>, ManualClock) {
    let clock = ManualClock::new(start);
    (DirectLimiter::with_clock(quota, clock.clone()), clock)
}

/// `rate` per `period_ns` with a bucket of `burst`.
fn quota(rate: u64, period_ns: u64, burst: u64) -> Quota {
    Quota::new(rate, Duration::from_nanos(period_ns))
        .and_then(|q| q.with_burst(burst))
        .unwrap()
}

/// A bucket drained at t = 0 is full again after exactly its refill time, not a nanosecond
/// earlier (also when `T` is not a whole number of nanoseconds), and a bucket drained at any
/// other time is full exactly one refill time later when `T` is whole.
fn drained_bucket_is_exactly_full_after_exactly_the_refill_time<A: Algorithm>() {
    let cases = [
        (quota(10, SECOND, 5), 0),
        (quota(10, SECOND, 5), 123_456_789),
        (quota(3, SECOND, 3), 0),
        (quota(3, SECOND, 5), 0),
        (quota(7, 60 * SECOND, 2), 0),
        (quota(SECOND, SECOND, 1_000), 0),
        (quota(SECOND, SECOND, 1_000), 999),
        (quota(1, HOUR, 24), 5 * HOUR),
    ];
    for (quota, start) in cases {
        let burst = quota.burst();
        let refill = quota.refill_time();
        let refill_ns = u64::try_from(refill.as_nanos()).unwrap();
        let (limiter, clock) = new_limiter::<A>(quota, start);
        let drained = limiter.check_n(burst).unwrap();
        assert!(drained.is_allowed(), "{quota:?}");
        assert_eq!(drained.remaining(), 0);
        assert_eq!(drained.reset_after(), refill, "{quota:?}");

        clock.set(start + refill_ns - 1);
        let almost = limiter.peek_n(burst).unwrap();
        assert!(almost.is_denied(), "{quota:?}");
        assert_eq!(almost.remaining(), burst - 1);
        assert_eq!(almost.retry_after(), ns(1));
        assert_eq!(almost.reset_after(), ns(1));

        clock.set(start + refill_ns);
        let full = limiter.peek_n(burst).unwrap();
        assert!(full.is_allowed(), "{quota:?}");
        assert_eq!(full.remaining(), burst);
        assert_eq!(full.reset_after(), Duration::ZERO);
        assert!(limiter.check_n(burst).unwrap().is_allowed());
    }
}

/// A bucket left idle for a year and 2^40 ns comes back exactly full, not stale: the token
/// bucket's timestamp does not wrap, and no idle time is lost to rounding.
fn idle_for_a_year_and_2_pow_40_ns_is_exactly_full<A: Algorithm>() {
    let idle = YEAR + (1 << 40);
    let cases = [
        quota(10, SECOND, 5),
        quota(3, SECOND, 3),
        quota(1, HOUR, 1),
        quota(SECOND, SECOND, 1 << 40),
        quota(1, 1, 1 << 40),
        quota(1, YEAR, 1),
    ];
    for quota in cases {
        let burst = quota.burst();
        for start in [0, 777, 1 << 60] {
            let (limiter, clock) = new_limiter::<A>(quota, start);
            assert!(limiter.check_n(burst).unwrap().is_allowed());
            assert!(limiter.check().is_denied());
            clock.set(start + idle);
            let full = limiter.peek();
            assert_eq!(full.remaining(), burst, "{quota:?} from {start}");
            assert_eq!(full.reset_after(), Duration::ZERO);
            let drained = limiter.check_n(burst).unwrap();
            assert!(drained.is_allowed(), "{quota:?} from {start}");
            assert_eq!(drained.remaining(), 0);
            // And again, from a time that is not a multiple of anything in particular.
            clock.set(start + 2 * idle + 12_345);
            assert_eq!(limiter.peek().remaining(), burst, "{quota:?} from {start}");
        }
    }
}

/// One per hour with a burst of one, drained at t = 0 and checked every millisecond: every
/// check is denied, with `retry_after` counting down exactly, until exactly t = 3600 s, when
/// one is admitted. A thousand checks a second round nothing away.
fn one_per_hour_checked_every_millisecond_refills_exactly_on_the_hour<A: Algorithm>() {
    let (limiter, clock) = new_limiter::<A>(Quota::per_hour(1).unwrap(), 0);
    assert!(limiter.check().is_allowed());
    for t in (MS..HOUR).step_by(MS as usize) {
        clock.set(t);
        let denied = limiter.check();
        assert!(denied.is_denied(), "admitted at {t} ns");
        assert_eq!(denied.retry_after(), ns(HOUR - t));
        assert_eq!(denied.reset_after(), ns(HOUR - t));
    }
    clock.set(HOUR - 1);
    assert_eq!(limiter.check().retry_after(), ns(1));
    clock.set(HOUR);
    let admitted = limiter.check();
    assert!(admitted.is_allowed());
    assert_eq!(admitted.reset_after(), ns(HOUR));
    assert_eq!(limiter.check().retry_after(), ns(HOUR));
}

/// A cost equal to the burst is admitted from a full bucket; one more is an error, not a
/// denial, and leaves the state bit-identical.
fn cost_of_burst_is_admitted_and_burst_plus_one_is_an_error<A: Algorithm>() {
    for (quota, now) in [
        (quota(10, SECOND, 5), 0),
        (quota(3, SECOND, 3), 42),
        (quota(1, 1, 1 << 40), 1 << 50),
        (quota(1, YEAR, 1_000_000), YEAR),
    ] {
        let burst = quota.burst();
        let full = A::initial(&quota);
        let error = InsufficientCapacity {
            cost: burst + 1,
            burst,
        };
        assert_eq!(A::check(full, now, burst + 1, &quota), Err(error));
        assert_eq!(A::peek(full, now, burst + 1, &quota), Err(error));
        assert_eq!(
            A::check(full, now, u64::MAX, &quota).unwrap_err().cost,
            u64::MAX
        );

        let cell = Cell::new(full);
        assert_eq!(cell.check::<A>(&quota, burst + 1, || now), Err(error));
        assert_eq!(cell.load(), full, "an error wrote the cell");
        let admitted = cell.check::<A>(&quota, burst, || now).unwrap();
        assert!(admitted.is_allowed());
        assert_eq!(admitted.remaining(), 0);
        let drained = cell.load();
        assert_ne!(drained, full);
        assert_eq!(cell.check::<A>(&quota, burst + 1, || now), Err(error));
        assert_eq!(cell.load(), drained, "an error wrote the cell");
    }
}

/// Three per second: after draining at t = 0, the k-th next request fits at exactly
/// `ceil(k * 10^9 / 3)` ns (333,333,334, 666,666,667, 1,000,000,000, ...) and not one
/// nanosecond earlier, for a thousand seconds: the fraction is never rounded into the state.
fn three_per_second_refills_at_exactly_ceil_of_each_third<A: Algorithm>() {
    let (limiter, clock) = new_limiter::<A>(Quota::per_second(3).unwrap(), 0);
    assert!(limiter.check_n(3).unwrap().is_allowed());
    let fourth = limiter.check();
    assert!(fourth.is_denied());
    assert_eq!(fourth.retry_after(), ns(333_333_334));
    assert_eq!(fourth.reset_after(), ns(SECOND));
    for k in 1..=3_000u64 {
        let at = (k * SECOND).div_ceil(3);
        clock.set(at - 1);
        let early = limiter.check();
        assert!(early.is_denied(), "admitted at {} ns", at - 1);
        assert_eq!(early.retry_after(), ns(1));
        clock.set(at);
        let admitted = limiter.check();
        assert!(admitted.is_allowed(), "denied at {at} ns");
        assert_eq!(admitted.remaining(), 0);
        // Empty again: full after three more intervals, from the exact k-th instant.
        assert_eq!(
            admitted.reset_after(),
            ns(((k + 3) * SECOND).div_ceil(3) - at)
        );
    }
}

/// A clock set backwards gains nothing: no credit for the backward interval, no panic, and the
/// stored time is not moved back, so going forward again gives what a trace without the
/// backward step gives.
fn stale_time_gains_no_credit<A: Algorithm>() {
    // 10 per second (T = 100 ms), burst 2, drained at 1 s: full again at 1.2 s.
    let q = quota(10, SECOND, 2);
    let (limiter, clock) = new_limiter::<A>(q, SECOND);
    let (reference, reference_clock) = new_limiter::<A>(q, SECOND);
    assert!(limiter.check_n(2).unwrap().is_allowed());
    assert!(reference.check_n(2).unwrap().is_allowed());

    // Half a second back: denied, judged at its own time (the next token is 600 ms away).
    clock.set(500 * MS);
    let stale = limiter.check();
    assert!(stale.is_denied());
    assert_eq!(stale.retry_after(), ns(600 * MS));
    assert_eq!(stale.reset_after(), ns(700 * MS));
    clock.set(0);
    assert!(limiter.check().is_denied());

    // Forward again: exactly as if the stale requests had never happened.
    for t in [
        SECOND,
        1_050 * MS,
        1_100 * MS - 1,
        1_100 * MS,
        1_150 * MS,
        2 * SECOND,
    ] {
        clock.set(t);
        reference_clock.set(t);
        assert_eq!(limiter.check(), reference.check(), "at {t} ns");
    }
}

/// A stale request that the bucket can afford is charged as if it came at the stored time:
/// the bucket's time does not move back, and later decisions are those of a trace in which
/// the request arrived at the stored time.
fn stale_admission_is_charged_at_the_stored_time<A: Algorithm>() {
    // 10 per second (T = 100 ms), burst 5.
    let q = quota(10, SECOND, 5);
    let (limiter, clock) = new_limiter::<A>(q, SECOND);
    let (reference, reference_clock) = new_limiter::<A>(q, SECOND);
    assert_eq!(limiter.check().remaining(), 4);
    assert_eq!(reference.check().remaining(), 4);

    // 100 ms back: 200 ms of debt are seen from there (two tokens short of full), so after
    // this request two remain at that time.
    clock.set(900 * MS);
    let stale = limiter.check();
    assert!(stale.is_allowed());
    assert_eq!(stale.remaining(), 2);
    assert_eq!(stale.reset_after(), ns(300 * MS));
    // The reference gets the same request at the stored time, 1 s.
    assert_eq!(reference.check().remaining(), 3);

    for t in [
        SECOND,
        1_050 * MS,
        1_100 * MS,
        1_200 * MS - 1,
        1_200 * MS,
        5 * SECOND,
    ] {
        clock.set(t);
        reference_clock.set(t);
        assert_eq!(limiter.peek(), reference.peek(), "at {t} ns");
    }
    assert_eq!(limiter.check_n(5).unwrap(), reference.check_n(5).unwrap());
}

/// Going back from far ahead (even from `u64::MAX`) to 0 and forward again: no credit, no
/// panic, no wrap.
fn clock_set_back_to_zero_and_forward_again<A: Algorithm>() {
    let q = quota(1, SECOND, 1);
    let (limiter, clock) = new_limiter::<A>(q, 10 * SECOND);
    assert!(limiter.check().is_allowed());
    clock.set(0);
    let stale = limiter.check();
    assert!(stale.is_denied());
    assert_eq!(stale.retry_after(), ns(11 * SECOND));
    clock.set(10 * SECOND + 500 * MS);
    assert_eq!(limiter.check().retry_after(), ns(500 * MS));
    clock.set(11 * SECOND);
    assert!(limiter.check().is_allowed());

    let (limiter, clock) = new_limiter::<A>(q, u64::MAX);
    assert!(limiter.check().is_allowed());
    clock.set(0);
    let stale = limiter.check();
    assert!(stale.is_denied());
    assert_eq!(stale.retry_after(), ns(LIFETIME + SECOND));
    clock.set(u64::MAX);
    assert!(limiter.check().is_denied());
}

/// At 10^9 per second, one admission per nanosecond: a drained bucket admits exactly one
/// more each nanosecond.
fn one_per_nanosecond<A: Algorithm>() {
    let (limiter, clock) = new_limiter::<A>(quota(SECOND, SECOND, 1), 0);
    for t in 0..1_000 {
        clock.set(t);
        assert!(limiter.check().is_allowed(), "denied at {t}");
        let denied = limiter.check();
        assert!(denied.is_denied());
        assert_eq!(denied.retry_after(), ns(1));
        assert_eq!(denied.reset_after(), ns(1));
    }

    let (limiter, clock) = new_limiter::<A>(Quota::per_second(SECOND).unwrap(), 0);
    assert!(limiter.check_n(SECOND).unwrap().is_allowed());
    assert_eq!(limiter.check().retry_after(), ns(1));
    clock.set(5);
    assert!(limiter.check_n(5).unwrap().is_allowed());
    assert!(limiter.check().is_denied());
    clock.set(SECOND + 5);
    assert_eq!(limiter.peek().remaining(), SECOND);
}

/// One per 365 days with a burst of 10^6 (a tick of 13.7 µs): after draining, each token
/// refills after exactly 365 days, not a nanosecond earlier, for the whole 73-year lifetime.
fn one_per_365_days_with_a_burst_of_a_million<A: Algorithm>() {
    let q = Quota::new(1, Quota::MAX_PERIOD)
        .unwrap()
        .with_burst(1_000_000)
        .unwrap();
    assert_eq!(q.ticks_per_token(), (1 << 61) / 1_000_000);
    let (limiter, clock) = new_limiter::<A>(q, 0);
    let drained = limiter.check_n(1_000_000).unwrap();
    assert!(drained.is_allowed());
    assert_eq!(drained.reset_after(), ns(YEAR) * 1_000_000);
    assert_eq!(drained.reset_after_secs(), 365 * 86_400 * 1_000_000);
    assert_eq!(limiter.check().retry_after(), ns(YEAR));
    for year in 1..=73 {
        clock.set(year * YEAR - 1);
        let early = limiter.check();
        assert!(
            early.is_denied(),
            "admitted a nanosecond before year {year}"
        );
        assert_eq!(early.retry_after(), ns(1));
        clock.set(year * YEAR);
        let admitted = limiter.check();
        assert!(admitted.is_allowed(), "denied in year {year}");
        assert_eq!(admitted.remaining(), 0);
        assert_eq!(limiter.check().retry_after(), ns(YEAR));
    }
}

/// At and beyond 2^61 ns (the documented lifetime) time stands still: later times read as
/// 2^61, nothing refills, and denials still report a positive `retry_after` (>= 1 s rendered).
fn time_stands_still_at_and_beyond_2_pow_61<A: Algorithm>() {
    let (limiter, clock) = new_limiter::<A>(quota(1, SECOND, 2), LIFETIME - 2 * SECOND);
    assert!(limiter.check_n(2).unwrap().is_allowed());
    clock.set(LIFETIME - SECOND);
    assert!(limiter.check().is_allowed());
    clock.set(LIFETIME);
    assert!(limiter.check().is_allowed());
    for t in [
        LIFETIME,
        LIFETIME + 1,
        LIFETIME + 5 * SECOND,
        1 << 62,
        u64::MAX,
    ] {
        clock.set(t);
        let denied = limiter.check();
        assert!(denied.is_denied(), "admitted at {t}");
        assert_eq!(denied.retry_after(), ns(SECOND));
        assert_eq!(denied.retry_after_secs(), 1);
        assert_eq!(denied.reset_after(), ns(2 * SECOND));
        assert_eq!(denied.remaining(), 0);
    }

    // A new bucket first seen beyond the lifetime is full, then stays drained.
    let (limiter, clock) = new_limiter::<A>(quota(1, SECOND, 2), u64::MAX);
    assert!(limiter.check_n(2).unwrap().is_allowed());
    let denied = limiter.check();
    assert_eq!(denied.retry_after(), ns(SECOND));
    clock.set(LIFETIME + 1);
    assert_eq!(limiter.check(), denied);

    // A sub-second quota beyond the lifetime still says "retry in 1 s" when rendered.
    let (limiter, _clock) = new_limiter::<A>(quota(SECOND, SECOND, 1), u64::MAX);
    assert!(limiter.check().is_allowed());
    let denied = limiter.check();
    assert_eq!(denied.retry_after(), ns(1));
    assert_eq!(denied.retry_after_secs(), 1);
}

/// A denial writes nothing: the cell's word is bit-identical after any number of denials, at
/// any time, for any cost; so is it after a peek and after a cost of zero.
fn denial_never_writes<A: Algorithm>() {
    let q = quota(3, SECOND, 4);
    let cell = Cell::new(A::initial(&q));
    assert!(cell.check::<A>(&q, 4, || 7 * SECOND).unwrap().is_allowed());
    let drained = cell.load();
    for (now, cost) in [
        (7 * SECOND, 1),
        (7 * SECOND + 333_333_333, 1),
        (7 * SECOND + 333_333_334, 2),
        (8 * SECOND, 4),
        (0, 1),
        (SECOND, 3),
    ] {
        let decision = cell.check::<A>(&q, cost, || now).unwrap();
        assert!(decision.is_denied(), "({now}, {cost})");
        assert_eq!(
            cell.load(),
            drained,
            "a denial wrote the cell at ({now}, {cost})"
        );
        assert_eq!(cell.peek::<A>(&q, cost, || now).unwrap(), decision);
        assert_eq!(cell.load(), drained);
        assert!(A::check(drained, now, cost, &q).unwrap().next.is_none());
    }
    for now in [0, 7 * SECOND, 100 * SECOND, u64::MAX] {
        let zero = cell.check::<A>(&q, 0, || now).unwrap();
        assert!(zero.is_allowed());
        assert_eq!(cell.load(), drained, "a cost of zero wrote the cell");
        assert!(cell.peek::<A>(&q, 4, || now).is_ok());
        assert_eq!(cell.load(), drained, "a peek wrote the cell");
    }
}

/// The whole-second renderings round up: a denial is never told 0 seconds, an exact number
/// of seconds is not rounded further, and an admission's `retry_after_secs` is 0.
fn whole_seconds_round_up_and_a_denial_is_never_told_zero<A: Algorithm>() {
    // (quota, cost drained at t = 0, retry_after, retry_after_secs, reset_after_secs)
    let cases = [
        (quota(SECOND, SECOND, 1), 1, ns(1), 1, 1),
        (Quota::per_second(2).unwrap(), 2, ns(500 * MS), 1, 1),
        (Quota::per_second(3).unwrap(), 3, ns(333_333_334), 1, 1),
        (Quota::per_minute(1).unwrap(), 1, ns(60 * SECOND), 60, 60),
        (quota(2, 3 * SECOND, 2), 2, ns(1_500 * MS), 2, 3),
        (
            Quota::per_hour(10).unwrap(),
            10,
            ns(360 * SECOND),
            360,
            3_600,
        ),
    ];
    for (q, drain, retry, retry_secs, reset_secs) in cases {
        let (limiter, _clock) = new_limiter::<A>(q, 0);
        let full = limiter.peek();
        assert_eq!((full.retry_after_secs(), full.reset_after_secs()), (0, 0));
        let admitted = limiter.check_n(drain).unwrap();
        assert!(admitted.is_allowed());
        assert_eq!(admitted.retry_after(), Duration::ZERO);
        assert_eq!(admitted.retry_after_secs(), 0);
        assert_eq!(admitted.reset_after_secs(), reset_secs, "{q:?}");
        let denied = limiter.check();
        assert!(denied.is_denied());
        assert_eq!(denied.retry_after(), retry, "{q:?}");
        assert_eq!(denied.retry_after_secs(), retry_secs, "{q:?}");
        assert_eq!(denied.reset_after_secs(), reset_secs, "{q:?}");
    }
}

/// A client that waits exactly `retry_after` is admitted, and one that waits a nanosecond
/// less is not: `retry_after` is the first whole nanosecond at which the request fits.
fn waiting_exactly_retry_after_is_admitted<A: Algorithm>() {
    let quotas = [
        quota(3, SECOND, 3),
        quota(7, 60 * SECOND, 5),
        quota(10, SECOND, 4),
        quota(SECOND, SECOND, 3),
        quota(999_999_937, SECOND, 1_000),
        quota(1, YEAR, 1_000_000),
        quota(1, YEAR, 1 << 40),
    ];
    for q in quotas {
        let burst = q.burst();
        let interval = u64::try_from(q.emission_interval().as_nanos()).unwrap();
        for start in [0, 123_456_789, (1 << 40) + 7] {
            let (limiter, clock) = new_limiter::<A>(q, start);
            assert!(limiter.check_n(burst).unwrap().is_allowed());
            // Costs that vary, and times that are not aligned to anything.
            for i in 0..50u64 {
                let cost = 1 + (i * 7) % burst.min(5);
                clock.advance(ns(i * 7_919 % (interval + 1)));
                let denied = limiter.check_n(cost).unwrap();
                if denied.is_allowed() {
                    continue;
                }
                let wait = denied.retry_after();
                assert!(wait > Duration::ZERO);
                if clock.now() as u128 + wait.as_nanos() > LIFETIME as u128 {
                    // Beyond the lifetime time stands still: see the test for that.
                    break;
                }
                if wait > ns(1) {
                    clock.advance(wait - ns(1));
                    let early = limiter.peek_n(cost).unwrap();
                    assert!(early.is_denied(), "{q:?}: admitted 1 ns before retry_after");
                    assert_eq!(early.retry_after(), ns(1));
                    clock.advance(ns(1));
                } else {
                    clock.advance(wait);
                }
                assert!(
                    limiter.check_n(cost).unwrap().is_allowed(),
                    "{q:?}: denied after waiting retry_after"
                );
            }
        }
    }
}

/// Runs each test for both algorithms: `gcra::name` and `token_bucket::name`.
macro_rules! for_both {
    ($($name:ident),* $(,)?) => {
        mod gcra {
            $(#[test] fn $name() { super::$name::<nanolimit::Gcra>(); })*
        }
        mod token_bucket {
            $(#[test] fn $name() { super::$name::<nanolimit::TokenBucket>(); })*
        }
    };
}

for_both!(
    drained_bucket_is_exactly_full_after_exactly_the_refill_time,
    idle_for_a_year_and_2_pow_40_ns_is_exactly_full,
    one_per_hour_checked_every_millisecond_refills_exactly_on_the_hour,
    cost_of_burst_is_admitted_and_burst_plus_one_is_an_error,
    three_per_second_refills_at_exactly_ceil_of_each_third,
    stale_time_gains_no_credit,
    stale_admission_is_charged_at_the_stored_time,
    clock_set_back_to_zero_and_forward_again,
    one_per_nanosecond,
    one_per_365_days_with_a_burst_of_a_million,
    time_stands_still_at_and_beyond_2_pow_61,
    denial_never_writes,
    whole_seconds_round_up_and_a_denial_is_never_told_zero,
    waiting_exactly_retry_after_is_admitted,
);
