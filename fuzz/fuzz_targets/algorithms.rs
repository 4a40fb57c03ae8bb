//! GCRA, the token bucket and the exact reference model (`nanolimit-model`, the semantics
//! contract in `u128` arithmetic), in lockstep: the algorithms through their pure
//! `Algorithm::check` / `peek`, on an arbitrary quota and an arbitrary sequence of checks (any
//! cost), peeks, and moves of time (forwards by any amount, backwards, or to any absolute time,
//! including beyond the 2^61 ns lifetime, where the model clamps). After every step:
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
//! - no over-admission (below);
//! - the answers agree with the model's within the documented bound (further below).
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
//! The model. Every check and every peek (and, after every step including moves of time, a peek
//! of the whole burst, which is `is_full`) is also put to the model, with the rules of
//! `tests/model.rs` (`D` = `quota.ticks_per_token()`, one tick = `T / D`; "stale" = a time
//! before the model's last admission):
//!
//! - a cost above the burst is an error on both sides, and nothing else is;
//! - where a tick is one nanosecond (`T` a whole number of ns and `D = T`) and the time is not
//!   stale: the decision, `remaining`, `retry_after` and `reset_after` equal the model's
//!   exactly;
//! - elsewhere: an admission the model refuses only when the model's shortfall is under one
//!   tick; a denial the model admits only for a stale time (judged at its own time, where the
//!   model judges at its stored time), so a stale time never admits what the model refuses
//!   beyond the tick tolerance; `remaining` within one of the model's (for a stale time, at
//!   most one more), and then only within a tick of a whole token; the instants named by
//!   `retry_after` and `reset_after` within `(exact - 1 tick, ceil(exact)]` of the model's
//!   (counted from the model's stored time for a stale request), or `Duration::MAX` only
//!   where the model's wait is at least that long.
//!
//! After a check the model follows the algorithms' decision (`Bucket::follow`, as
//! `tests/model.rs` does), so a difference allowed above never accumulates; a peek is compared
//! with the model's view of the same request, in which nothing is consumed either.
//!
//! Nothing may panic.

#![no_main]

use std::cmp::Ordering;
use std::fmt;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use nanolimit::{Algorithm, Cell, Decision, Gcra, Quota, TokenBucket};
use nanolimit_fuzz::{Num, LIFETIME_NS, MAX_PERIOD_NS};
use nanolimit_model as model;

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
struct Scale {
    rate: u128,
    period: u128,
    burst: u128,
    ticks_per_token: u128,
}

impl Scale {
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
    fn record(&mut self, scale: &Scale, now: u64, cost: u64) {
        if cost == 0 {
            return;
        }
        let first = *self.first.get_or_insert(now);
        self.total += u128::from(cost);
        let (d, burst) = (scale.ticks_per_token as i128, scale.burst as i128);
        let total = self.total as i128;
        // Exact, in ticks.
        let tick_bound = burst * d + scale.ticks(now) - scale.ticks(first);
        assert!(
            total * d <= tick_bound,
            "over-admission: {total} tokens ({} ticks) > {tick_bound} ticks, first admission \
             at {first} ns, now {now} ns",
            total * d
        );
        // In tokens: floor((t - s) / T) = floor((t - s) * rate / period), plus the tolerance.
        let elapsed = i128::from(now.min(LIFETIME_NS)) - i128::from(first.min(LIFETIME_NS));
        let refilled = (elapsed * scale.rate as i128).div_euclid(scale.period as i128);
        let tolerance = i128::from(!scale.exact());
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

/// What a failed comparison with the model names: the operation, its time and cost, the quota.
struct Step<'a> {
    op: &'static str,
    now: u64,
    cost: u64,
    quota: &'a Quota,
}

impl fmt::Display for Step<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            op,
            now,
            cost,
            quota,
        } = self;
        write!(f, "{op} of {cost} at {now} ns, {quota:?}")
    }
}

/// The exact reference model (`nanolimit-model`), stepped in lockstep with the algorithms and
/// held to the documented bound: the rules of `tests/model.rs`, step by step.
struct Reference {
    bucket: model::Bucket,
    /// `D`.
    ticks_per_token: u128,
    /// `P`, in ns.
    period: u128,
    /// `r`.
    rate: u128,
    /// A tick is one nanosecond (`T` whole and `D = T`): the answers are the model's, exactly.
    whole: bool,
}

impl Reference {
    fn new(quota: &Quota, scale: &Scale) -> Self {
        let period = u64::try_from(scale.period).expect("periods fit in u64 ns");
        let spec = model::Quota::new(quota.rate(), period, quota.burst()).expect("positive");
        Self {
            bucket: model::Bucket::new(spec),
            ticks_per_token: scale.ticks_per_token,
            period: scale.period,
            rate: scale.rate,
            whole: scale.exact(),
        }
    }

    /// A check whose result the algorithms agreed on. Once the decision is shown within the
    /// bound, the model follows it (`Bucket::follow`, as `tests/model.rs` does), so that a
    /// difference of one tick never accumulates.
    fn check(&mut self, now: u64, cost: u64, result: &Result<Decision, u64>, step: &Step) {
        let Some((decision, stale)) = self.decide(now, cost, result, step) else {
            return;
        };
        let followed = self
            .bucket
            .follow(now, cost, decision.is_allowed())
            .expect("the cost fits");
        self.compare(&decision, &followed, stale, step);
    }

    /// A peek whose result the algorithms agreed on: compared with the model's view of the same
    /// request, in which nothing is consumed either (its `remaining` and `reset_after` are those
    /// of the credit before the request).
    fn peek(&self, now: u64, cost: u64, result: &Result<Decision, u64>, step: &Step) {
        let Some((decision, stale)) = self.decide(now, cost, result, step) else {
            return;
        };
        let contract = self.bucket.peek(now, cost).expect("the cost fits");
        let view = model::Outcome {
            allowed: decision.is_allowed(),
            after: contract.available,
            ..contract
        };
        self.compare(&decision, &view, stale, step);
    }

    /// The same error as the model, or a decision that differs from the model's only within
    /// the bound: admitted early by less than one tick (the implementation floors time to
    /// ticks), or denied where the model admits only for a stale time (judged at its own
    /// time, where the model judges at its stored one). Exact where a tick is a nanosecond and
    /// time did not go back. Returns the decision and whether the time was stale.
    fn decide(
        &self,
        now: u64,
        cost: u64,
        result: &Result<Decision, u64>,
        step: &Step,
    ) -> Option<(Decision, bool)> {
        let contract = match (result, self.bucket.peek(now, cost)) {
            (Err(_), Err(e)) => {
                assert_eq!(e.cost, cost, "{step}");
                return None;
            }
            (Ok(_), Ok(contract)) => contract,
            (Err(_), Ok(_)) => panic!("the model accepts a cost the algorithms refuse: {step}"),
            (Ok(_), Err(_)) => panic!("the model refuses a cost the algorithms accept: {step}"),
        };
        let decision = *result.as_ref().expect("matched above");
        let stale = contract.at < contract.updated;
        let allowed = decision.is_allowed();
        if allowed != contract.allowed {
            if allowed {
                assert!(
                    contract.shortfall() * self.ticks_per_token < self.period,
                    "admitted {} units (over one tick) before the model: {step}",
                    contract.shortfall()
                );
            } else {
                assert!(
                    stale,
                    "denied what the model admits, on forward time: {step}"
                );
            }
        }
        if self.whole && !stale {
            assert_eq!(allowed, contract.allowed, "decision: {step}");
        }
        Some((decision, stale))
    }

    fn compare(&self, decision: &Decision, outcome: &model::Outcome, stale: bool, step: &Step) {
        if self.whole && !stale {
            Self::assert_exact(decision, outcome, step);
        } else {
            self.assert_within_one_tick(decision, outcome, stale, step);
        }
    }

    /// A tick is one nanosecond: `remaining`, `retry_after` and `reset_after` are the model's
    /// (whose durations are then whole nanoseconds).
    fn assert_exact(decision: &Decision, outcome: &model::Outcome, step: &Step) {
        assert_eq!(
            u128::from(decision.remaining()),
            outcome.remaining(),
            "remaining: {step}"
        );
        let retry = outcome.retry_after();
        assert_eq!(retry.cmp_ns(retry.floor()), Ordering::Equal, "{step}");
        assert_eq!(
            decision.retry_after(),
            retry.to_duration_ceil(),
            "retry_after: {step}"
        );
        let reset = outcome.reset_after();
        assert_eq!(reset.cmp_ns(reset.floor()), Ordering::Equal, "{step}");
        assert_eq!(
            decision.reset_after(),
            reset.to_duration_ceil(),
            "reset_after: {step}"
        );
    }

    /// Elsewhere (a tick that is not one nanosecond, or a stale time): `remaining` within one,
    /// and only next to a whole token (for a stale time, at most one more than the model's);
    /// the retry and reset instants in `(exact - 1 tick, ceil(exact)]`, where the model counts
    /// from its stored time for a stale request.
    fn assert_within_one_tick(
        &self,
        decision: &Decision,
        outcome: &model::Outcome,
        stale: bool,
        step: &Step,
    ) {
        let (d, period, rate) = (self.ticks_per_token, self.period, self.rate);

        let ours = u128::from(decision.remaining());
        let exact = outcome.remaining();
        if stale {
            assert!(ours <= exact + 1, "remaining {ours} vs {exact}: {step}");
        } else {
            assert!(
                ours.abs_diff(exact) <= 1,
                "remaining {ours} vs {exact}: {step}"
            );
        }
        if ours > exact || (!stale && ours < exact) {
            let boundary = ours.max(exact) * period;
            assert!(
                outcome.after.abs_diff(boundary) * d < period,
                "remaining {ours} vs {exact} away from a token boundary: {step}"
            );
        }

        let base = u128::from(outcome.at.max(outcome.updated));
        let now = u128::from(outcome.at);
        if decision.is_denied() {
            let shortfall = outcome.shortfall();
            let exact = base + outcome.quota.refill_time(shortfall).ceil();
            if decision.retry_after() == Duration::MAX {
                assert!(
                    exact >= now + Duration::MAX.as_nanos(),
                    "retry_after saturated: {step}"
                );
                return;
            }
            let named = now + decision.retry_after().as_nanos();
            assert!(named > now, "retry_after of zero for a denial: {step}");
            assert!(named <= exact, "retry at {named}, model at {exact}: {step}");
            if shortfall > 0 {
                // exact - one tick < named, in units of 1 / (r * D) ns.
                assert!(
                    named * rate * d + period > base * rate * d + shortfall * d,
                    "retry at {named}, over a tick before the model's: {step}"
                );
            }
        } else {
            assert_eq!(decision.retry_after(), Duration::ZERO, "{step}");
        }

        let missing = outcome.quota.capacity() - outcome.after;
        let exact = base + outcome.quota.refill_time(missing).ceil();
        if decision.reset_after() == Duration::MAX {
            assert!(
                exact >= now + Duration::MAX.as_nanos(),
                "reset_after saturated: {step}"
            );
            return;
        }
        let named = now + decision.reset_after().as_nanos();
        assert!(named <= exact, "full at {named}, model at {exact}: {step}");
        if missing > 0 {
            assert!(
                named * rate * d + period > base * rate * d + missing * d,
                "full at {named}, over a tick before the model's: {step}"
            );
        } else {
            assert_eq!(decision.reset_after(), Duration::ZERO, "{step}");
        }
    }
}

/// After every step (and before the first): `is_full` agrees between the algorithms, and a
/// peek of the whole burst agrees with the model's, so that every move of time is compared.
fn check_state(
    gcra: &Bucket<Gcra>,
    bucket: &Bucket<TokenBucket>,
    reference: &Reference,
    now: u64,
    quota: &Quota,
) {
    let full = gcra.is_full(now, quota);
    assert_eq!(full, bucket.is_full(now, quota), "is_full at {now}");
    let burst = quota.burst();
    let whole_burst = Gcra::peek(gcra.state, now, burst, quota).map_err(|e| e.cost);
    let step = Step {
        op: "is_full (a peek of the burst)",
        now,
        cost: burst,
        quota,
    };
    reference.peek(now, burst, &whole_burst, &step);
}

fuzz_target!(|input: Input| {
    let Some(quota) = quota(&input.quota) else {
        return;
    };
    let scale = Scale::new(&quota);
    let mut gcra = Bucket::<Gcra>::new(&quota);
    let mut bucket = Bucket::<TokenBucket>::new(&quota);
    let mut reference = Reference::new(&quota, &scale);
    let mut admitted = Admitted::default();
    let mut now = input.start.0;

    check_state(&gcra, &bucket, &reference, now, &quota);
    for op in input.ops.iter().take(MAX_OPS) {
        match op {
            Op::Forward(delta) => now = now.saturating_add(scale.delta(delta)),
            Op::Back(delta) => now = now.saturating_sub(scale.delta(delta)),
            Op::Set(Num(t)) => now = *t,
            Op::Peek(cost) => {
                let cost = scale.cost(cost);
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
                let step = Step {
                    op: "peek",
                    now,
                    cost,
                    quota: &quota,
                };
                reference.peek(now, cost, &g, &step);
            }
            Op::Check(cost) => {
                let cost = scale.cost(cost);
                let before = (gcra.state, bucket.state);
                let g = gcra.check(now, cost, &quota);
                let t = bucket.check(now, cost, &quota);
                assert_eq!(g, t, "check of {cost} at {now}");
                if let Ok(d) = g {
                    check_decision(&d, &quota);
                    if d.is_allowed() {
                        admitted.record(&scale, now, cost);
                    } else {
                        check_retry_after::<Gcra>(before.0, now, cost, &quota, &d);
                        check_retry_after::<TokenBucket>(before.1, now, cost, &quota, &d);
                    }
                    check_reset_after::<Gcra>(gcra.state, now, &quota, &d);
                    check_reset_after::<TokenBucket>(bucket.state, now, &quota, &d);
                }
                let step = Step {
                    op: "check",
                    now,
                    cost,
                    quota: &quota,
                };
                reference.check(now, cost, &g, &step);
            }
        }
        check_state(&gcra, &bucket, &reference, now, &quota);
    }
});
