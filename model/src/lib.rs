//! The exact reference model of nanolimit's semantics contract.
//!
//! This crate is the contract of `shared/guide/architecture.md` ("The semantics contract")
//! written down as directly as possible, in exact integer arithmetic, with no dependency on
//! `nanolimit` itself: property tests and fuzz targets drive an implementation and this model
//! side by side and compare what they answer.
//!
//! Units. A quota admits `rate` (`r`) units of cost per `period` (`P`, in nanoseconds) with a
//! bucket capacity of `burst` (`b`). The model counts tokens in units of `1/P` token, so that
//! the refill is exactly `r` units per nanosecond and every quantity is an integer:
//!
//! - a full bucket holds `b * P` units, a request of cost `n` needs `n * P`;
//! - after `e` nanoseconds the bucket has gained `e * r` units (up to full);
//! - a duration is a fraction `x / r` nanoseconds ([`Nanos`]), never rounded by the model.
//!
//! Everything is `u128`: with `u64` inputs no product overflows, and the one sum that could
//! (an idle credit added to the stored one) saturates before it is capped at full.
//!
//! The rules, at time `t` for a request of cost `n`:
//!
//! - `t` is first clamped to [`MAX_NANOS`] (2^61 ns, the implementation's documented
//!   lifetime: later times read as 2^61, so a bucket stops refilling instead of wrapping);
//! - `n > b` is an error ([`CostTooHigh`]) and changes nothing;
//! - `n == 0` is admitted and changes nothing;
//! - `available(t) = min(b * P, available(t0) + max(0, t - t0) * r)`: time that goes
//!   backwards counts as no time passing;
//! - the request is admitted iff `available(t) >= n * P`; then `available -= n * P` and
//!   `t0 = max(t0, t)` (the stored time never moves backwards); a denial changes nothing;
//! - `remaining = floor(available after the decision / P)`;
//! - `retry_after = (n * P - available(t)) / r` ns for a denial (0 when admitted);
//! - `reset_after = (b * P - available after the decision) / r` ns.
//!
//! ```
//! use nanolimit_model::{Bucket, Quota};
//!
//! // 3 per second, burst 3: the emission interval is 333,333,333.3.. ns, exactly.
//! let quota = Quota::new(3, 1_000_000_000, 3).unwrap();
//! let mut bucket = Bucket::new(quota);
//! assert!(bucket.check(0, 3).unwrap().allowed);
//! let denied = bucket.check(0, 1).unwrap();
//! assert!(!denied.allowed);
//! assert_eq!(denied.retry_after().ceil(), 333_333_334);
//! assert_eq!(denied.reset_after().ceil(), 1_000_000_000);
//! assert!(!bucket.check(333_333_333, 1).unwrap().allowed);
//! assert!(bucket.check(333_333_334, 1).unwrap().allowed);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use core::cmp::Ordering;
use core::fmt;
use core::time::Duration;

/// The implementation's documented lifetime: times beyond 2^61 ns (about 73 years) since the
/// clock's origin read as 2^61 ns.
pub const MAX_NANOS: u64 = 1 << 61;

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// A quota: `rate` admissions per `period_ns` nanoseconds, with a bucket of `burst`.
///
/// The model accepts any positive `u64` values; the limits of the implementation (periods up
/// to 365 days, at most one admission per nanosecond, bursts up to 2^56) are not its concern.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    rate: u64,
    period_ns: u64,
    burst: u64,
}

impl Quota {
    /// A quota, or `None` if any of the three is zero.
    pub fn new(rate: u64, period_ns: u64, burst: u64) -> Option<Self> {
        if rate == 0 || period_ns == 0 || burst == 0 {
            return None;
        }
        Some(Self {
            rate,
            period_ns,
            burst,
        })
    }

    /// `r`: admissions per period, and so units of `1/P` token gained per nanosecond.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// `P`: the period in nanoseconds, and so the number of units in one token.
    pub fn period_ns(&self) -> u64 {
        self.period_ns
    }

    /// `b`: the bucket capacity in tokens.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// A full bucket, in units of `1/P` token: `b * P`.
    pub fn capacity(&self) -> u128 {
        u128::from(self.burst) * u128::from(self.period_ns)
    }

    /// A cost of `n` tokens in units of `1/P` token: `n * P`.
    pub fn units(&self, n: u64) -> u128 {
        u128::from(n) * u128::from(self.period_ns)
    }

    /// The time it takes to refill `units` units of `1/P` token: `units / r` ns, exactly.
    pub fn refill_time(&self, units: u128) -> Nanos {
        Nanos {
            num: units,
            den: self.rate,
        }
    }

    /// The emission interval `T = P / r` ns, exactly.
    pub fn emission_interval(&self) -> Nanos {
        self.refill_time(u128::from(self.period_ns))
    }
}

/// A cost larger than the burst: it could never be admitted. Distinct from a denial.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CostTooHigh {
    /// The cost that was asked for.
    pub cost: u64,
    /// The quota's burst.
    pub burst: u64,
}

impl fmt::Display for CostTooHigh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a cost of {} exceeds the burst of {}",
            self.cost, self.burst
        )
    }
}

impl std::error::Error for CostTooHigh {}

/// An exact non-negative duration of `num / den` nanoseconds (`den` is the quota's rate).
///
/// Comparisons are exact across different denominators.
#[derive(Clone, Copy, Debug)]
pub struct Nanos {
    num: u128,
    den: u64,
}

impl Nanos {
    /// Zero nanoseconds.
    pub const ZERO: Self = Self { num: 0, den: 1 };

    /// `num / den` ns. `den` must not be zero.
    ///
    /// # Panics
    /// If `den` is zero.
    pub fn new(num: u128, den: u64) -> Self {
        assert!(den != 0, "a duration's denominator must not be zero");
        Self { num, den }
    }

    /// The numerator.
    pub fn numer(&self) -> u128 {
        self.num
    }

    /// The denominator.
    pub fn denom(&self) -> u64 {
        self.den
    }

    /// Whether the duration is zero.
    pub fn is_zero(&self) -> bool {
        self.num == 0
    }

    /// The whole nanoseconds, rounded down.
    pub fn floor(&self) -> u128 {
        self.num / u128::from(self.den)
    }

    /// The whole nanoseconds, rounded up: the first whole nanosecond at or after this instant.
    pub fn ceil(&self) -> u128 {
        self.num.div_ceil(u128::from(self.den))
    }

    /// The whole seconds, rounded up (as a `Retry-After` header renders a wait).
    pub fn ceil_secs(&self) -> u128 {
        self.ceil().div_ceil(NANOS_PER_SECOND)
    }

    /// [`ceil`](Self::ceil) as a `Duration`, saturating at `Duration::MAX`.
    pub fn to_duration_ceil(&self) -> Duration {
        let ns = self.ceil();
        match u64::try_from(ns / NANOS_PER_SECOND) {
            Ok(secs) => Duration::new(secs, (ns % NANOS_PER_SECOND) as u32),
            Err(_) => Duration::MAX,
        }
    }

    /// Compares `self` with a whole number of nanoseconds, exactly.
    pub fn cmp_ns(&self, ns: u128) -> Ordering {
        // num / den vs ns, i.e. num vs ns * den; ns * den may not fit, then ns is larger.
        match ns.checked_mul(u128::from(self.den)) {
            Some(scaled) => self.num.cmp(&scaled),
            None => Ordering::Less,
        }
    }
}

impl PartialEq for Nanos {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Nanos {}

impl PartialOrd for Nanos {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Nanos {
    fn cmp(&self, other: &Self) -> Ordering {
        // a/b vs c/d: compare the whole parts, then the remainders a%b/b vs c%d/d, whose
        // cross products are below 2^128 (each factor below 2^64).
        let (b, d) = (u128::from(self.den), u128::from(other.den));
        let (qa, qc) = (self.num / b, other.num / d);
        qa.cmp(&qc)
            .then_with(|| ((self.num % b) * d).cmp(&((other.num % d) * b)))
    }
}

/// The state of one bucket: what it held when it was last changed, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// Units of `1/P` token available at `updated`, at most `b * P`.
    pub available: u128,
    /// The time of the last change, in ns (clamped to [`MAX_NANOS`]); never moves backwards.
    pub updated: u64,
}

/// What the model answers to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the request was admitted.
    pub allowed: bool,
    /// The time the request was judged at: its `now`, clamped to [`MAX_NANOS`].
    pub at: u64,
    /// The state's time when the request was judged (before any update).
    pub updated: u64,
    /// Units available at `at`, before the decision: `available(at)`.
    pub available: u128,
    /// Units the request needs: `n * P`.
    pub needed: u128,
    /// Units available after the decision (`available - needed` if admitted).
    pub after: u128,
    /// The quota the request was judged against.
    pub quota: Quota,
}

impl Outcome {
    /// Whole tokens left after the decision: `floor(after / P)`.
    pub fn remaining(&self) -> u128 {
        self.after / u128::from(self.quota.period_ns)
    }

    /// Whole tokens available before the decision (what a peek reports): `floor(available / P)`.
    pub fn remaining_before(&self) -> u128 {
        self.available / u128::from(self.quota.period_ns)
    }

    /// Units by which the request exceeds what is available: `max(0, needed - available)`.
    /// Zero if and only if the contract admits the request.
    pub fn shortfall(&self) -> u128 {
        self.needed.saturating_sub(self.available)
    }

    /// Units left over if the request is admitted: `max(0, available - needed)`.
    pub fn surplus(&self) -> u128 {
        self.available.saturating_sub(self.needed)
    }

    /// The exact time from `at` until the request would be admitted,
    /// `(n * P - available) / r` ns; zero for an admitted request (or one the contract
    /// would admit, see [`Bucket::follow`]).
    pub fn retry_after(&self) -> Nanos {
        if self.allowed {
            Nanos::ZERO
        } else {
            self.quota.refill_time(self.shortfall())
        }
    }

    /// The exact time from `at` until the bucket is full again: `(b * P - after) / r` ns.
    pub fn reset_after(&self) -> Nanos {
        self.quota.refill_time(self.quota.capacity() - self.after)
    }
}

/// One bucket of the exact model: a quota and a [`State`]. A new bucket is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bucket {
    quota: Quota,
    state: State,
}

impl Bucket {
    /// A full bucket, as of time 0.
    pub fn new(quota: Quota) -> Self {
        Self {
            quota,
            state: State {
                available: quota.capacity(),
                updated: 0,
            },
        }
    }

    /// A bucket in a given state. `state.available` is capped at the capacity and
    /// `state.updated` clamped to [`MAX_NANOS`].
    pub fn with_state(quota: Quota, state: State) -> Self {
        Self {
            quota,
            state: State {
                available: state.available.min(quota.capacity()),
                updated: state.updated.min(MAX_NANOS),
            },
        }
    }

    /// The quota.
    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Units available at `now` (clamped to [`MAX_NANOS`]): the stored units plus `r` per
    /// nanosecond since the stored time (none if `now` is earlier), capped at full.
    pub fn available_at(&self, now: u64) -> u128 {
        let elapsed = now.min(MAX_NANOS).saturating_sub(self.state.updated);
        let gained = u128::from(elapsed) * u128::from(self.quota.rate);
        self.state
            .available
            .saturating_add(gained)
            .min(self.quota.capacity())
    }

    /// What [`check`](Self::check) would answer, without changing anything.
    pub fn peek(&self, now: u64, cost: u64) -> Result<Outcome, CostTooHigh> {
        if cost > self.quota.burst {
            return Err(CostTooHigh {
                cost,
                burst: self.quota.burst,
            });
        }
        let available = self.available_at(now);
        let needed = self.quota.units(cost);
        let allowed = available >= needed;
        Ok(Outcome {
            allowed,
            at: now.min(MAX_NANOS),
            updated: self.state.updated,
            available,
            needed,
            after: if allowed {
                available - needed
            } else {
                available
            },
            quota: self.quota,
        })
    }

    /// A request of `cost` at `now`, decided by the contract: admitted iff `cost` tokens are
    /// available, and then consumed. A denial, a zero cost or an error changes nothing.
    pub fn check(&mut self, now: u64, cost: u64) -> Result<Outcome, CostTooHigh> {
        let outcome = self.peek(now, cost)?;
        self.commit(&outcome);
        Ok(outcome)
    }

    /// A request of `cost` at `now` whose decision is imposed (`allowed`), for following an
    /// implementation whose documented rounding may decide differently near a boundary.
    ///
    /// An imposed admission consumes `cost` tokens, saturating at an empty bucket (an
    /// implementation that admits up to one tick early leaves the model at most one tick
    /// above where the implementation is). The outcome's fields other than `allowed` and
    /// `after` are the contract's own view of the request (`shortfall` tells how far the
    /// contract was from admitting it); its [`retry_after`](Outcome::retry_after) is the
    /// contract's for an imposed denial, and zero for an imposed admission.
    pub fn follow(&mut self, now: u64, cost: u64, allowed: bool) -> Result<Outcome, CostTooHigh> {
        let mut outcome = self.peek(now, cost)?;
        outcome.allowed = allowed;
        outcome.after = if allowed {
            outcome.available.saturating_sub(outcome.needed)
        } else {
            outcome.available
        };
        self.commit(&outcome);
        Ok(outcome)
    }

    /// Stores an admission (a denial or a zero cost stores nothing).
    fn commit(&mut self, outcome: &Outcome) {
        if outcome.allowed && outcome.needed > 0 {
            // The units left as of max(updated, at): for a stale `at`, available(at) is the
            // stored credit, which is also the credit at `updated`.
            self.state = State {
                available: outcome.after,
                updated: self.state.updated.max(outcome.at),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn quota(rate: u64, period_ns: u64, burst: u64) -> Quota {
        Quota::new(rate, period_ns, burst).unwrap()
    }

    #[test]
    fn zero_parameters_are_rejected() {
        assert_eq!(Quota::new(0, 1, 1), None);
        assert_eq!(Quota::new(1, 0, 1), None);
        assert_eq!(Quota::new(1, 1, 0), None);
    }

    #[test]
    fn a_new_bucket_is_full_and_drains() {
        let mut bucket = Bucket::new(quota(10, SECOND, 5));
        let first = bucket.check(0, 5).unwrap();
        assert!(first.allowed);
        assert_eq!(first.remaining(), 0);
        assert_eq!(first.reset_after().ceil(), 500_000_000);
        let denied = bucket.check(0, 1).unwrap();
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after(), Nanos::new(100_000_000, 1));
    }

    #[test]
    fn cost_above_burst_is_an_error_and_changes_nothing() {
        let mut bucket = Bucket::new(quota(1, SECOND, 2));
        let before = bucket;
        assert_eq!(bucket.check(7, 3), Err(CostTooHigh { cost: 3, burst: 2 }));
        assert_eq!(bucket, before);
    }

    #[test]
    fn zero_cost_is_admitted_and_changes_nothing() {
        let mut bucket = Bucket::new(quota(1, SECOND, 1));
        bucket.check(5, 1).unwrap();
        let before = bucket;
        let outcome = bucket.check(SECOND, 0).unwrap();
        assert!(outcome.allowed);
        assert_eq!(bucket, before);
    }

    #[test]
    fn fractional_interval_is_exact() {
        let mut bucket = Bucket::new(quota(3, SECOND, 3));
        bucket.check(0, 3).unwrap();
        for k in 1..=30u64 {
            let boundary = (u128::from(k) * u128::from(SECOND)).div_ceil(3) as u64;
            assert!(!bucket.check(boundary - 1, 1).unwrap().allowed);
            assert!(bucket.check(boundary, 1).unwrap().allowed);
        }
    }

    #[test]
    fn backwards_time_gains_nothing_and_is_not_stored() {
        let mut bucket = Bucket::new(quota(1, SECOND, 2));
        bucket.check(10 * SECOND, 1).unwrap();
        let stale = bucket.check(SECOND, 1).unwrap();
        assert!(stale.allowed);
        assert_eq!(stale.available, u128::from(SECOND));
        assert_eq!(bucket.state().updated, 10 * SECOND);
        assert_eq!(bucket.state().available, 0);
        let denied = bucket.check(SECOND, 1).unwrap();
        assert_eq!(denied.retry_after().ceil(), u128::from(SECOND));
    }

    #[test]
    fn time_stands_still_beyond_the_lifetime() {
        let mut bucket = Bucket::new(quota(1, SECOND, 1));
        bucket.check(MAX_NANOS, 1).unwrap();
        let denied = bucket.check(u64::MAX, 1).unwrap();
        assert!(!denied.allowed);
        assert_eq!(denied.at, MAX_NANOS);
        assert_eq!(denied.retry_after().ceil(), u128::from(SECOND));
    }

    #[test]
    fn follow_imposes_the_decision_and_saturates() {
        let mut bucket = Bucket::new(quota(1, SECOND, 1));
        bucket.check(0, 1).unwrap();
        let forced = bucket.follow(SECOND - 1, 1, true).unwrap();
        assert_eq!(forced.shortfall(), 1);
        assert_eq!(forced.after, 0);
        assert_eq!(bucket.state().updated, SECOND - 1);
        let refused = bucket.follow(10 * SECOND, 1, false).unwrap();
        assert_eq!(refused.surplus(), 0);
        assert_eq!(bucket.state().updated, SECOND - 1);
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let q = quota(u64::MAX, u64::MAX, u64::MAX);
        let mut bucket = Bucket::new(q);
        let outcome = bucket.check(0, u64::MAX).unwrap();
        assert!(outcome.allowed);
        assert_eq!(outcome.after, 0);
        assert_eq!(outcome.reset_after().ceil(), u128::from(u64::MAX));
        let refill = u128::from(MAX_NANOS) * u128::from(u64::MAX);
        assert_eq!(bucket.available_at(u64::MAX), refill);
        let denied = bucket.check(u64::MAX, u64::MAX).unwrap();
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after(), q.refill_time(q.capacity() - refill));
    }

    #[test]
    fn nanos_compare_exactly() {
        let third = Nanos::new(1, 3);
        assert!(third < Nanos::new(1, 2));
        assert_eq!(Nanos::new(2, 6), third);
        assert_eq!(third.ceil(), 1);
        assert_eq!(third.floor(), 0);
        assert_eq!(Nanos::new(10, 5).cmp_ns(2), Ordering::Equal);
        assert_eq!(Nanos::new(u128::MAX, 1).cmp_ns(u128::MAX), Ordering::Equal);
        assert_eq!(Nanos::new(1, u64::MAX).cmp_ns(u128::MAX), Ordering::Less);
        assert_eq!(Nanos::new(1_500_000_000, 1).ceil_secs(), 2);
        assert_eq!(Nanos::new(u128::MAX, 1).to_duration_ceil(), Duration::MAX);
    }
}
