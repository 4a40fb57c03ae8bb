//! Every `Quota` constructor and `with_burst`, on any numbers: either a valid quota whose
//! getters give back what went in (and what the docs derive from it), or a typed error whose
//! cause really is violated. Never a panic.

#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use nanolimit::{Algorithm, Gcra, Quota, QuotaError, TokenBucket};
use nanolimit_fuzz::{Num, LIFETIME_NS};

#[derive(Arbitrary, Debug)]
enum Period {
    /// Any whole number of nanoseconds, biased to boundaries.
    Nanos(Num),
    /// Any `Duration` at all, up to `Duration::MAX`.
    Any(Duration),
}

#[derive(Arbitrary, Debug)]
enum Constructor {
    New(Period),
    PerSecond,
    PerMinute,
    PerHour,
    PerDay,
}

#[derive(Arbitrary, Debug)]
struct Input {
    rate: Num,
    constructor: Constructor,
    burst: Option<Num>,
}

/// The causes that `rate` per `period` with `burst` violates (all of them, in no order).
fn violations(rate: u64, period: Duration, burst: u64) -> Vec<QuotaError> {
    let mut found = Vec::new();
    if period > Quota::MAX_PERIOD {
        found.push(QuotaError::PeriodTooLong);
    }
    let period_ns = period.as_nanos();
    if rate == 0 {
        found.push(QuotaError::ZeroRate);
    }
    if period_ns == 0 {
        found.push(QuotaError::ZeroPeriod);
    }
    if burst == 0 {
        found.push(QuotaError::ZeroBurst);
    }
    if u128::from(rate) > period_ns {
        found.push(QuotaError::RateTooHigh);
    }
    if burst > Quota::MAX_BURST {
        found.push(QuotaError::BurstTooLarge);
    }
    found
}

/// `ns` as a `Duration`, saturating like the crate's getters.
fn saturating_duration(ns: u128) -> Duration {
    let secs = u64::try_from(ns / 1_000_000_000);
    match secs {
        Ok(secs) => Duration::new(secs, (ns % 1_000_000_000) as u32),
        Err(_) => Duration::MAX,
    }
}

fn check_valid(quota: &Quota, rate: u64, period: Duration, burst: u64) {
    assert_eq!(quota.rate(), rate);
    assert_eq!(quota.period(), period);
    assert_eq!(quota.burst(), burst);
    let (p, r, b) = (period.as_nanos(), u128::from(rate), u128::from(burst));
    assert_eq!(quota.emission_interval().as_nanos(), p / r);
    assert_eq!(
        quota.refill_time(),
        saturating_duration((b * p).div_ceil(r))
    );

    // D = ceil(T), lowered only as far as burst * D <= 2^61 needs.
    let d = u128::from(quota.ticks_per_token());
    assert!(d >= 1);
    assert_eq!(d, p.div_ceil(r).min(u128::from(LIFETIME_NS) / b));
    assert!(b * d <= u128::from(LIFETIME_NS));
    // One tick is T / D: the resolution is that, rounded up to whole nanoseconds.
    assert_eq!(quota.resolution().as_nanos(), p.div_ceil(r * d));
    assert!(quota.resolution() >= Duration::from_nanos(1));

    // Rebuilding from the getters gives the same quota.
    assert_eq!(quota.with_burst(burst), Ok(*quota));

    // A full bucket admits its whole burst at any time, and the states stay below 2^63.
    for now in [0, 1, LIFETIME_NS, u64::MAX] {
        let g = Gcra::check(Gcra::initial(quota), now, burst, quota).expect("burst fits");
        let t =
            TokenBucket::check(TokenBucket::initial(quota), now, burst, quota).expect("burst fits");
        assert!(g.decision.is_allowed());
        assert_eq!(g.decision, t.decision);
        assert!(g.next.is_some_and(|s| s < 1 << 63));
        assert!(t.next.is_some_and(|s| s < 1 << 63));
    }
}

fuzz_target!(|input: Input| {
    let rate = input.rate.0;
    let (period, built) = match input.constructor {
        Constructor::New(period) => {
            let period = match period {
                Period::Nanos(Num(ns)) => Duration::from_nanos(ns),
                Period::Any(d) => d,
            };
            (period, Quota::new(rate, period))
        }
        Constructor::PerSecond => (Duration::from_secs(1), Quota::per_second(rate)),
        Constructor::PerMinute => (Duration::from_secs(60), Quota::per_minute(rate)),
        Constructor::PerHour => (Duration::from_secs(3_600), Quota::per_hour(rate)),
        Constructor::PerDay => (Duration::from_secs(86_400), Quota::per_day(rate)),
    };

    // The constructors take burst = rate.
    let base_faults = violations(rate, period, rate);
    let quota = match built {
        Ok(quota) => {
            assert!(base_faults.is_empty(), "accepted despite {base_faults:?}");
            check_valid(&quota, rate, period, rate);
            quota
        }
        Err(e) => {
            assert!(
                base_faults.contains(&e),
                "{e:?} is not among {base_faults:?}"
            );
            assert!(!e.to_string().is_empty());
            return;
        }
    };

    if let Some(Num(burst)) = input.burst {
        let faults = violations(rate, period, burst);
        match quota.with_burst(burst) {
            Ok(q) => {
                assert!(
                    faults.is_empty(),
                    "burst {burst} accepted despite {faults:?}"
                );
                check_valid(&q, rate, period, burst);
            }
            Err(e) => {
                assert!(faults.contains(&e), "{e:?} is not among {faults:?}");
                assert!(matches!(
                    e,
                    QuotaError::ZeroBurst | QuotaError::BurstTooLarge
                ));
            }
        }
    }
});
