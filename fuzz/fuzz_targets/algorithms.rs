//! GCRA and the token bucket, through their pure `Algorithm::check` / `peek`, on an arbitrary
//! quota and an arbitrary sequence of checks (any cost), peeks, and moves of time (forwards by
//! any amount, backwards, or not at all). After every step:
//!
//! - both algorithms return identical results (decisions or errors);
//! - a cost above the burst is an error, and only that; a denial or a zero cost stores nothing;
//! - a peek equals itself, matches what a check would decide, and changes no state (also
//!   through a `Cell`);
//! - every stored state is below 2^63;
//! - `is_full` agrees between the algorithms and with "a peek of the whole burst is admitted";
//! - `remaining` never exceeds the burst; a denial's `retry_after` is never zero and is exactly
//!   the first nanosecond at which the same request is admitted; `reset_after` is exactly the
//!   first nanosecond at which the bucket is full;
//! - no over-admission (below).
//!
//! The admission bound. Let `s` be the time of the first admission and `t` that of the latest.
//! GCRA's theoretical arrival time only grows, by at least each admitted cost, and an admission
//! at `t` needs it to stay within `burst` of `t`: so the total admitted, in ticks, is at most
//! `burst * D + ticks(t) - ticks(s)`. This is asserted exactly, in ticks. Time that went
//! backwards counts as no time: `t - s` is never more than the forward moves between the two,
//! so this implies `admitted <= burst + elapsed / T` for the forward portions of time.
//!
//! In tokens: `ticks(t) = floor(t * D / T)`, computed once per decision, so the difference of
//! two readings can exceed the exact `(t - s) * D / T` by up to one tick (under 1/D of a
//! token). The bound in whole tokens is therefore `burst + floor((t - s) / T)`, plus one
//! token of tolerance exactly when a tick is not one nanosecond, that is when `T` is not a whole
//! number of nanoseconds (or when `D` was lowered below `T` for a huge burst); when a tick is
//! one nanosecond the conversion is the identity and the bound is exact.
//!
//! Nothing may panic.

#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use nanolimit::{Algorithm, Cell, Decision, Gcra, Quota, TokenBucket};
use nanolimit_fuzz::{Num, LIFETIME_NS, MAX_PERIOD_NS};

/// The longest sequence of operations run per input: enough for any pattern, cheap per run.
const MAX_OPS: usize = 512;

#[derive(Arbitrary, Debug)]
struct QuotaInput {
    rate: Num,
    period_ns: Num,
    burst: Option<Num>,
}

#[derive(Arbitrary, Debug)]
enum Cost {
    /// The most common case.
    One,
    Small(u8),
    /// Exactly the burst, or just above it (an error).
    Burst,
    AboveBurst(Num),
    Any(Num),
}

#[derive(Arbitrary, Debug)]
enum Delta {
    Nanos(Num),
    /// A whole number of emission intervals, nudged by a few nanoseconds: lands next to the
    /// instants at which answers change.
    Intervals {
        count: u16,
        nudge: i8,
    },
}

#[derive(Arbitrary, Debug)]
enum Op {
    Check(Cost),
    Peek(Cost),
    Forward(Delta),
    Back(Delta),
    /// Jump to an absolute time, forwards or backwards.
    Set(Num),
}

#[derive(Arbitrary, Debug)]
struct Input {
    quota: QuotaInput,
    start: Num,
    ops: Vec<Op>,
}

/// A valid quota derived from any numbers, or `None` if the rate is too large to be its own
/// burst (the constructors refuse that; the quota target covers it).
fn quota(input: &QuotaInput) -> Option<Quota> {
    let period_ns = 1 + input.period_ns.0 % MAX_PERIOD_NS;
    let rate = 1 + input.rate.0 % period_ns;
    let quota = Quota::new(rate, Duration::from_nanos(period_ns)).ok()?;
    match input.burst {
        None => Some(quota),
        Some(Num(b)) => Some(
            quota
                .with_burst(1 + b % Quota::MAX_BURST)
                .expect("burst in range"),
        ),
    }
}

/// The quota's numbers, widened, and its exact tick conversion.
struct Model {
    rate: u128,
    period: u128,
    burst: u128,
    ticks_per_token: u128,
}

impl Model {
    fn new(quota: &Quota) -> Self {
        Self {
            rate: u128::from(quota.rate()),
            period: quota.period().as_nanos(),
            burst: u128::from(quota.burst()),
            ticks_per_token: u128::from(quota.ticks_per_token()),
        }
    }

    /// `floor(t * D / T)` for `t` clamped to the lifetime: the ticks a decision sees.
    fn ticks(&self, now: u64) -> i128 {
        let t = u128::from(now.min(LIFETIME_NS));
        (t * self.ticks_per_token * self.rate / self.period) as i128
    }

    /// A tick is exactly one nanosecond: the conversion is the identity.
    fn exact(&self) -> bool {
        self.ticks_per_token * self.rate == self.period
    }

    fn cost(&self, cost: &Cost) -> u64 {
        let burst = self.burst as u64;
        match cost {
            Cost::One => 1,
            Cost::Small(n) => u64::from(*n),
            Cost::Burst => burst,
            Cost::AboveBurst(Num(n)) => burst.saturating_add(1).saturating_add(*n % 4),
            Cost::Any(Num(n)) => *n,
        }
    }

    fn delta(&self, delta: &Delta) -> u64 {
        match delta {
            Delta::Nanos(Num(n)) => *n,
            Delta::Intervals { count, nudge } => {
                let ns = u128::from(*count) * self.period / self.rate;
                u64::try_from(ns)
                    .unwrap_or(u64::MAX)
                    .saturating_add_signed(i64::from(*nudge))
            }
        }
    }
}

/// Admissions so far, for the over-admission bound.
#[derive(Default)]
struct Admitted {
    /// The time of the first admission of a non-zero cost.
    first: Option<u64>,
    /// The total cost admitted.
    total: u128,
}

impl Admitted {
    fn record(&mut self, model: &Model, now: u64, cost: u64) {
        if cost == 0 {
            return;
        }
        let first = *self.first.get_or_insert(now);
        self.total += u128::from(cost);
        let (d, burst) = (model.ticks_per_token as i128, model.burst as i128);
        let total = self.total as i128;
        // Exact, in ticks.
        let tick_bound = burst * d + model.ticks(now) - model.ticks(first);
        assert!(
            total * d <= tick_bound,
            "over-admission: {total} tokens ({} ticks) > {tick_bound} ticks, first admission \
             at {first} ns, now {now} ns",
            total * d
        );
        // In tokens: floor((t - s) / T) = floor((t - s) * rate / period), plus the tolerance.
        let elapsed = i128::from(now.min(LIFETIME_NS)) - i128::from(first.min(LIFETIME_NS));
        let refilled = (elapsed * model.rate as i128).div_euclid(model.period as i128);
        let tolerance = i128::from(!model.exact());
        assert!(
            total <= burst + refilled + tolerance,
            "over-admission: {total} tokens > burst {burst} + {refilled} refilled \
             + {tolerance}, first admission at {first} ns, now {now} ns"
        );
    }
}

/// What every decision promises, whatever produced it.
fn check_decision(decision: &Decision, quota: &Quota) {
    assert_eq!(decision.limit(), quota.burst());
    assert!(decision.remaining() <= quota.burst());
    if decision.is_allowed() {
        assert_eq!(decision.retry_after(), Duration::ZERO);
        assert_eq!(decision.retry_after_secs(), 0);
    } else {
        assert!(decision.retry_after() > Duration::ZERO, "{decision:?}");
        assert!(decision.retry_after_secs() >= 1);
    }
}

/// A denial's `retry_after` is exactly the first nanosecond at which the same request is
/// admitted (nothing else admitted meanwhile), where that lies within the lifetime.
fn check_retry_after<A: Algorithm>(state: u64, now: u64, cost: u64, quota: &Quota, d: &Decision) {
    let now = now.min(LIFETIME_NS);
    let Ok(wait) = u64::try_from(d.retry_after().as_nanos()) else {
        return;
    };
    let Some(at) = now.checked_add(wait).filter(|&at| at <= LIFETIME_NS) else {
        return;
    };
    let admits = |t| {
        A::peek(state, t, cost, quota)
            .expect("cost fits")
            .is_allowed()
    };
    assert!(
        admits(at),
        "{}: denied at now + retry_after = {at}",
        A::NAME
    );
    assert!(
        !admits(at - 1),
        "{}: admitted before retry_after, at {}",
        A::NAME,
        at - 1
    );
}

/// `reset_after` of a decision is exactly the first nanosecond at which `state` (the state
/// after that decision) is full, where that lies within the lifetime.
fn check_reset_after<A: Algorithm>(state: u64, now: u64, quota: &Quota, d: &Decision) {
    let now = now.min(LIFETIME_NS);
    let Ok(wait) = u64::try_from(d.reset_after().as_nanos()) else {
        return;
    };
    let Some(at) = now.checked_add(wait).filter(|&at| at <= LIFETIME_NS) else {
        return;
    };
    let remaining = |t| A::peek(state, t, 1, quota).expect("1 fits").remaining();
    assert_eq!(
        remaining(at),
        quota.burst(),
        "{}: not full at {at}",
        A::NAME
    );
    if wait > 0 {
        assert!(
            remaining(at - 1) < quota.burst(),
            "{}: full before reset_after",
            A::NAME
        );
    }
}

/// One algorithm's state, stepped alongside the other's.
struct Bucket<A: Algorithm> {
    state: u64,
    algorithm: core::marker::PhantomData<A>,
}

impl<A: Algorithm> Bucket<A> {
    fn new(quota: &Quota) -> Self {
        Self {
            state: A::initial(quota),
            algorithm: core::marker::PhantomData,
        }
    }

    /// Whether the bucket is full at `now`, checked against a peek of the whole burst.
    fn is_full(&self, now: u64, quota: &Quota) -> bool {
        let full = A::is_full(self.state, now, quota);
        let whole_burst = A::peek(self.state, now, quota.burst(), quota).expect("burst fits");
        assert_eq!(
            full,
            whole_burst.is_allowed(),
            "{}: is_full at {now}",
            A::NAME
        );
        full
    }

    /// A peek, checked against itself, against a check, and through a `Cell`.
    fn peek(&self, now: u64, cost: u64, quota: &Quota) -> Result<Decision, u64> {
        let peeked = A::peek(self.state, now, cost, quota);
        assert_eq!(
            A::peek(self.state, now, cost, quota),
            peeked,
            "peek is pure"
        );
        let cell = Cell::new(self.state);
        assert_eq!(cell.peek::<A>(quota, cost, || now), peeked);
        assert_eq!(cell.load(), self.state, "a peek through a cell changed it");
        let checked = A::check(self.state, now, cost, quota);
        match (&peeked, &checked) {
            (Ok(p), Ok(c)) => {
                assert_eq!(
                    p.is_allowed(),
                    c.decision.is_allowed(),
                    "peek and check differ"
                );
                if c.decision.is_denied() {
                    assert_eq!(*p, c.decision, "a denied check is a peek");
                }
            }
            (Err(p), Err(c)) => assert_eq!(p, c),
            _ => panic!("{}: peek {peeked:?} but check {checked:?}", A::NAME),
        }
        peeked.map_err(|e| e.cost)
    }

    fn check(&mut self, now: u64, cost: u64, quota: &Quota) -> Result<Decision, u64> {
        let transition = match A::check(self.state, now, cost, quota) {
            Ok(t) => t,
            Err(e) => {
                assert_eq!((e.cost, e.burst), (cost, quota.burst()));
                assert!(cost > quota.burst(), "{}: error for cost {cost}", A::NAME);
                return Err(cost);
            }
        };
        assert!(
            cost <= quota.burst(),
            "{}: no error for cost {cost}",
            A::NAME
        );
        let decision = transition.decision;
        if cost == 0 {
            assert!(decision.is_allowed(), "{}: a zero cost was denied", A::NAME);
        }
        match transition.next {
            Some(next) => {
                assert!(
                    decision.is_allowed() && cost > 0,
                    "{}: stored {next}",
                    A::NAME
                );
                assert!(
                    next < 1 << 63,
                    "{}: state {next:#x} uses the top bit",
                    A::NAME
                );
                self.state = next;
            }
            None => assert!(
                decision.is_denied() || cost == 0,
                "{}: admitted cost {cost} but stored nothing",
                A::NAME
            ),
        }
        Ok(decision)
    }
}

fuzz_target!(|input: Input| {
    let Some(quota) = quota(&input.quota) else {
        return;
    };
    let model = Model::new(&quota);
    let mut gcra = Bucket::<Gcra>::new(&quota);
    let mut bucket = Bucket::<TokenBucket>::new(&quota);
    let mut admitted = Admitted::default();
    let mut now = input.start.0;

    for op in input.ops.iter().take(MAX_OPS) {
        assert_eq!(
            gcra.is_full(now, &quota),
            bucket.is_full(now, &quota),
            "is_full at {now}"
        );
        match op {
            Op::Forward(delta) => now = now.saturating_add(model.delta(delta)),
            Op::Back(delta) => now = now.saturating_sub(model.delta(delta)),
            Op::Set(Num(t)) => now = *t,
            Op::Peek(cost) => {
                let cost = model.cost(cost);
                let g = gcra.peek(now, cost, &quota);
                let t = bucket.peek(now, cost, &quota);
                assert_eq!(g, t, "peek of {cost} at {now}");
                if let Ok(d) = g {
                    check_decision(&d, &quota);
                    if d.is_denied() {
                        check_retry_after::<Gcra>(gcra.state, now, cost, &quota, &d);
                        check_retry_after::<TokenBucket>(bucket.state, now, cost, &quota, &d);
                    }
                    check_reset_after::<Gcra>(gcra.state, now, &quota, &d);
                    check_reset_after::<TokenBucket>(bucket.state, now, &quota, &d);
                }
            }
            Op::Check(cost) => {
                let cost = model.cost(cost);
                let before = (gcra.state, bucket.state);
                let g = gcra.check(now, cost, &quota);
                let t = bucket.check(now, cost, &quota);
                assert_eq!(g, t, "check of {cost} at {now}");
                if let Ok(d) = g {
                    check_decision(&d, &quota);
                    if d.is_allowed() {
                        admitted.record(&model, now, cost);
                    } else {
                        check_retry_after::<Gcra>(before.0, now, cost, &quota, &d);
                        check_retry_after::<TokenBucket>(before.1, now, cost, &quota, &d);
                    }
                    check_reset_after::<Gcra>(gcra.state, now, &quota, &d);
                    check_reset_after::<TokenBucket>(bucket.state, now, &quota, &d);
                }
            }
        }
    }
});
