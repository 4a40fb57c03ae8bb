//! Property tests: [`Gcra`] and [`TokenBucket`] against each other and against the exact
//! reference model (`nanolimit-model`, the contract of `shared/guide/architecture.md` in `u128`
//! arithmetic).
//!
//! Random quotas (including the extremes: 1 ns periods, one admission per nanosecond, one per
//! 365 days, bursts up to 2^56), random costs (0, 1, the burst, the burst + 1, anything) and
//! random times (small steps, steps onto the model's exact boundaries, huge jumps, the 2^61 ns
//! lifetime, `u64::MAX`, and backwards) drive both algorithms and the model in lockstep.
//!
//! What is asserted (`D` = `quota.ticks_per_token()`, one tick = `T / D` = `P / (r * D)` ns):
//!
//! - GCRA and the token bucket return identical `Result<Transition>`s, step by step.
//! - A peek returns what a check would decide, and writes nothing.
//! - When `T` is a whole number of nanoseconds and `D = T` (a tick is one nanosecond),
//!   forward traces give exactly the model's decisions, `remaining`, `retry_after` and
//!   `reset_after` (the model's durations are then whole nanoseconds).
//! - Otherwise, the implementation converts the time to ticks with a floor, so it may admit up
//!   to one tick early, and never later:
//!   - it admits whatever the model admits (on forward time), and admits what the model denies
//!     only when the model's shortfall is under one tick (`shortfall * D < P`);
//!   - its `remaining` differs by at most one, and only when the model's credit is within one
//!     tick of a whole token;
//!   - the instant it names (now + `retry_after`, now + `reset_after`) is never later than the
//!     model's exact instant rounded up to the nanosecond, and earlier than the exact instant
//!     by less than one tick: `exact - tick < named <= ceil(exact)`.
//!
//!   After a difference the model is made to follow the implementation's decision
//!   ([`Bucket::follow`]), and the bounds keep holding: the error never accumulates.
//! - Stale time (a `now` earlier than the bucket's last update): the implementation judges the
//!   request at its own time against the current state, so it may deny what the model admits,
//!   but admits only what the model admits (within the one-tick tolerance), reports at most one
//!   unit more `remaining`, and names retry and reset instants within the same bounds of the
//!   model's (the model measures from its stored time, where it judges a stale request).
//! - Over every window `[t_i, t_j]` of a forward trace, the admitted cost is at most
//!   `burst + (t_j - t_i) / T` exactly when the tick is one nanosecond, and below
//!   `burst + (t_j - t_i + 1 tick) / T` otherwise.
//! - Every state written is below 2^63, and no input (any state, time or cost) panics.

use std::time::Duration;

use nanolimit::{
    Algorithm, Cell, Decision, Gcra, InsufficientCapacity, Quota, TokenBucket, Transition,
};
use nanolimit_model::{self as model, Bucket, Outcome};
use proptest::prelude::*;

const SECOND: u64 = 1_000_000_000;
const YEAR: u64 = 365 * 86_400 * SECOND;
const MAX_NANOS: u64 = model::MAX_NANOS;
const MAX_BURST: u64 = Quota::MAX_BURST;
const TOP_BIT: u64 = 1 << 63;

/// A quota's three numbers, kept so the model and the implementation get the same ones.
#[derive(Clone, Copy, Debug)]
struct Spec {
    rate: u64,
    period: u64,
    burst: u64,
}

impl Spec {
    fn quota(self) -> Quota {
        Quota::new(self.rate, Duration::from_nanos(self.period))
            .and_then(|q| q.with_burst(self.burst))
            .unwrap_or_else(|e| panic!("{self:?} should be a valid quota: {e}"))
    }

    fn model(self) -> model::Quota {
        model::Quota::new(self.rate, self.period, self.burst).expect("positive")
    }

    /// `ceil(T)` in nanoseconds.
    fn interval_ceil(self) -> u64 {
        self.period.div_ceil(self.rate)
    }
}

/// Quotas over the whole supported range, with the extremes named.
fn any_spec() -> impl Strategy<Value = Spec> {
    let period = prop_oneof![
        Just(1u64),
        1..=1_000u64,
        Just(SECOND),
        Just(60 * SECOND),
        Just(3_600 * SECOND),
        Just(86_400 * SECOND),
        Just(YEAR),
        1..=YEAR,
    ];
    let random = (period, 0..6u8, any::<u64>(), 0..6u8, any::<u64>()).prop_map(
        |(period, rate_kind, x, burst_kind, y)| {
            let rate = match rate_kind {
                0 => 1,
                1 => period,
                2 => 1 + x % period,
                3 => 1 + x % period.min(1_000),
                4 => (period / (1 + x % 1_000)).max(1),
                _ => period.min(3),
            };
            let burst = match burst_kind {
                0 => 1,
                1 => rate,
                2 => 1 + y % 1_000_000,
                3 => 1 + y % MAX_BURST,
                4 => MAX_BURST,
                _ => 1 + y % 10,
            };
            Spec {
                rate,
                period,
                burst,
            }
        },
    );
    let named = prop_oneof![
        // One admission per nanosecond.
        Just(Spec {
            rate: SECOND,
            period: SECOND,
            burst: 1
        }),
        Just(Spec {
            rate: SECOND,
            period: SECOND,
            burst: SECOND
        }),
        // One per 365 days (tick of one nanosecond, then of 13.7 µs, then of ~15 s).
        Just(Spec {
            rate: 1,
            period: YEAR,
            burst: 1
        }),
        Just(Spec {
            rate: 1,
            period: YEAR,
            burst: 1_000_000
        }),
        Just(Spec {
            rate: 1,
            period: YEAR,
            burst: MAX_BURST
        }),
        // A third of a second; a seventh of a minute.
        Just(Spec {
            rate: 3,
            period: SECOND,
            burst: 3
        }),
        Just(Spec {
            rate: 7,
            period: 60 * SECOND,
            burst: 2
        }),
        Just(Spec {
            rate: 1,
            period: 1,
            burst: MAX_BURST
        }),
    ];
    prop_oneof![3 => random, 1 => named]
}

/// Quotas whose emission interval is a whole number `k` of nanoseconds with `burst * k`
/// within 2^61, so that one tick is one nanosecond.
fn whole_spec() -> impl Strategy<Value = Spec> {
    let interval = prop_oneof![Just(1u64), 1..=10u64, 1..=SECOND, 1..=YEAR];
    (interval, any::<u64>(), 0..4u8, any::<u64>()).prop_map(|(k, x, burst_kind, y)| {
        let rate = 1 + x % (YEAR / k).min(MAX_BURST);
        let max_burst = ((1u64 << 61) / k).min(MAX_BURST);
        let burst = match burst_kind {
            0 => 1,
            1 => 1 + y % 10,
            2 => rate.min(max_burst),
            _ => 1 + y % max_burst,
        };
        Spec {
            rate,
            period: rate * k,
            burst,
        }
    })
}

/// How a step picks its cost.
#[derive(Clone, Copy, Debug)]
enum CostKind {
    Zero,
    One,
    Small(u64),
    Burst,
    AboveBurst,
    UpToBurst(u64),
    Max,
}

impl CostKind {
    fn resolve(self, burst: u64) -> u64 {
        match self {
            Self::Zero => 0,
            Self::One => 1,
            Self::Small(x) => (1 + x % 3).min(burst),
            Self::Burst => burst,
            Self::AboveBurst => burst + 1,
            Self::UpToBurst(x) => x % (burst + 1),
            Self::Max => u64::MAX,
        }
    }
}

fn cost_kind() -> impl Strategy<Value = CostKind> {
    prop_oneof![
        1 => Just(CostKind::Zero),
        6 => Just(CostKind::One),
        3 => any::<u64>().prop_map(CostKind::Small),
        2 => Just(CostKind::Burst),
        1 => Just(CostKind::AboveBurst),
        3 => any::<u64>().prop_map(CostKind::UpToBurst),
        1 => Just(CostKind::Max),
    ]
}

/// How a step picks its time, from the previous step's time `t`.
#[derive(Clone, Copy, Debug)]
enum TimeKind {
    /// The same instant again.
    Same,
    /// Up to a thousand nanoseconds later.
    Nanos(u64),
    /// Up to two emission intervals later.
    Intervals(u64),
    /// Up to a full refill later.
    Refill(u64),
    /// The model's exact retry instant for this request, rounded up, plus -1, 0 or 1 ns.
    Retry(u8),
    /// The model's exact instant of a full bucket, rounded up, plus -1, 0 or 1 ns.
    Reset(u8),
    /// Up to `2^bits` ns later (`bits <= 62`).
    Jump(u32, u64),
    /// Within a few nanoseconds of the 2^61 ns lifetime.
    Lifetime(u64),
    /// `u64::MAX`.
    Max,
    /// Up to two emission intervals earlier.
    Back(u64),
    /// Anywhere between 0 and `t`.
    BackFar(u64),
}

impl TimeKind {
    fn resolve(self, t: u64, outcome: Option<&Outcome>, spec: Spec) -> u64 {
        let interval = spec.interval_ceil();
        let offset = |at: u128, delta: u8| -> u64 {
            let at = u64::try_from(at).unwrap_or(u64::MAX);
            at.saturating_add(u64::from(delta % 3)).saturating_sub(1)
        };
        match self {
            Self::Same => t,
            Self::Nanos(x) => t.saturating_add(x % 1_001),
            Self::Intervals(x) => t.saturating_add(x % interval.saturating_mul(2)),
            Self::Refill(x) => {
                t.saturating_add(x % interval.saturating_mul(spec.burst).saturating_add(1))
            }
            Self::Retry(delta) => match outcome {
                Some(o) if !o.allowed => {
                    offset(u128::from(t) + o.retry_after().ceil(), delta).max(t)
                }
                _ => t.saturating_add(interval),
            },
            Self::Reset(delta) => match outcome {
                Some(o) => offset(u128::from(t) + o.reset_after().ceil(), delta).max(t),
                None => t,
            },
            Self::Jump(bits, x) => t.saturating_add(x % (1 << bits)),
            Self::Lifetime(x) => (MAX_NANOS - 2 + x % 5).max(t),
            Self::Max => u64::MAX,
            Self::Back(x) => t.saturating_sub(x % interval.saturating_mul(2)),
            Self::BackFar(x) => x % t.saturating_add(1),
        }
    }
}

fn forward_time() -> impl Strategy<Value = TimeKind> {
    prop_oneof![
        // The lifetime and `u64::MAX` are where a forward trace ends up and stays, so they
        // are rare: about half the traces reach them, mostly late.
        40 => Just(TimeKind::Same),
        60 => any::<u64>().prop_map(TimeKind::Nanos),
        120 => any::<u64>().prop_map(TimeKind::Intervals),
        40 => any::<u64>().prop_map(TimeKind::Refill),
        100 => any::<u8>().prop_map(TimeKind::Retry),
        40 => any::<u8>().prop_map(TimeKind::Reset),
        20 => (0..=62u32, any::<u64>()).prop_map(|(bits, x)| TimeKind::Jump(bits, x)),
        1 => any::<u64>().prop_map(TimeKind::Lifetime),
        1 => Just(TimeKind::Max),
    ]
}

fn any_time() -> impl Strategy<Value = TimeKind> {
    prop_oneof![
        5 => forward_time(),
        2 => any::<u64>().prop_map(TimeKind::Back),
        1 => any::<u64>().prop_map(TimeKind::BackFar),
        // Garbage: the lifetime and beyond are frequent here, and left again by going back.
        1 => any::<u64>().prop_map(TimeKind::Lifetime),
        1 => Just(TimeKind::Max),
    ]
}

fn trace(
    time: impl Strategy<Value = TimeKind>,
) -> impl Strategy<Value = Vec<(TimeKind, CostKind)>> {
    prop::collection::vec((time, cost_kind()), 50..200)
}

/// Both algorithms and the model, stepped together.
struct Lockstep {
    spec: Spec,
    quota: Quota,
    model: Bucket,
    gcra: u64,
    token_bucket: u64,
    /// `D`.
    ticks_per_token: u128,
    /// `g`: the token bucket's tokens field is `g + 1` bits, `2^g` the smallest power of two
    /// above the capacity `burst * D`.
    token_bucket_unit_bits: u32,
    /// A tick is exactly one nanosecond: `T` is whole and `D = T`.
    whole: bool,
    /// The previous request's time (as given, not clamped).
    last_now: u64,
    /// Admissions on forward time, as `(time clamped to the lifetime, cost)`.
    admitted: Vec<(u64, u64)>,
    /// Whether every step so far moved time forwards (or stood still).
    forward: bool,
    /// Steps on which the implementation and the model decided differently.
    differences: u64,
}

impl Lockstep {
    fn new(spec: Spec) -> Self {
        let quota = spec.quota();
        let ticks_per_token = quota.ticks_per_token();
        Self {
            spec,
            quota,
            model: Bucket::new(spec.model()),
            gcra: Gcra::initial(&quota),
            token_bucket: TokenBucket::initial(&quota),
            ticks_per_token: u128::from(ticks_per_token),
            token_bucket_unit_bits: u64::BITS - (spec.burst * ticks_per_token).leading_zeros(),
            whole: spec.period.is_multiple_of(spec.rate)
                && ticks_per_token == spec.period / spec.rate,
            last_now: 0,
            admitted: Vec::new(),
            forward: true,
            differences: 0,
        }
    }

    fn run(&mut self, steps: &[(TimeKind, CostKind)]) {
        for &(time, cost) in steps {
            let cost = cost.resolve(self.spec.burst);
            let outcome = self.model.peek(self.last_now, cost).ok();
            let now = time.resolve(self.last_now, outcome.as_ref(), self.spec);
            self.step(now, cost);
        }
        if self.forward {
            self.check_windows();
        }
    }

    fn step(&mut self, now: u64, cost: u64) {
        let quota = &self.quota;
        if now < self.last_now {
            self.forward = false;
        }
        self.last_now = now;

        let gcra = Gcra::check(self.gcra, now, cost, quota);
        let token_bucket = TokenBucket::check(self.token_bucket, now, cost, quota);
        let ctx = || format!("{:?}, now {now}, cost {cost}", self.spec);
        assert_eq!(
            gcra.map(|t| t.decision),
            token_bucket.map(|t| t.decision),
            "GCRA and token bucket differ: {}",
            ctx()
        );
        assert_eq!(
            gcra.map(|t| t.next.is_some()),
            token_bucket.map(|t| t.next.is_some()),
            "{}",
            ctx()
        );
        check_peek::<Gcra>(self.gcra, now, cost, quota, &gcra);
        check_peek::<TokenBucket>(self.token_bucket, now, cost, quota, &token_bucket);

        let contract = self.model.peek(now, cost);
        let transition = match gcra {
            Err(e) => {
                assert_eq!(
                    e,
                    InsufficientCapacity {
                        cost,
                        burst: self.spec.burst
                    }
                );
                assert!(contract.is_err(), "model admits a cost the limiter refuses");
                return;
            }
            Ok(transition) => transition,
        };
        let contract = contract.expect("the model refuses a cost the limiter accepts");
        let decision = transition.decision;
        check_decision_renderings(&decision);

        for next in [transition.next, token_bucket.unwrap().next]
            .into_iter()
            .flatten()
        {
            assert!(
                next < TOP_BIT,
                "a state with the top bit: {next:#x}, {}",
                ctx()
            );
        }
        // The stored time never moves backwards: GCRA's theoretical arrival time only grows,
        // and the token bucket's stamp (the bits above its tokens field, docs/design.md) never
        // decreases.
        if let Some(next) = transition.next {
            assert!(next > self.gcra, "GCRA moved back: {}", ctx());
            self.gcra = next;
        }
        if let Some(next) = token_bucket.unwrap().next {
            let stamp = |state: u64| state >> (self.token_bucket_unit_bits + 1);
            assert!(
                stamp(next) >= stamp(self.token_bucket),
                "token bucket stamped back: {}",
                ctx()
            );
            self.token_bucket = next;
        }
        assert_eq!(transition.next.is_some(), decision.is_allowed() && cost > 0);

        let stale = contract.at < contract.updated;
        let allowed = decision.is_allowed();
        let d = self.ticks_per_token;
        let period = u128::from(self.spec.period);
        if allowed != contract.allowed {
            self.differences += 1;
            if allowed {
                // Admitted early: by less than one tick.
                assert!(
                    contract.shortfall() * d < period,
                    "admitted {} units (over one tick) before the model: {}",
                    contract.shortfall(),
                    ctx()
                );
            } else {
                // Denied what the model admits: only a stale request, judged at its own time.
                assert!(
                    stale,
                    "denied what the model admits, on forward time: {}",
                    ctx()
                );
            }
        }
        if self.whole && !stale {
            assert_eq!(allowed, contract.allowed, "{}", ctx());
        }
        let followed = self
            .model
            .follow(now, cost, allowed)
            .expect("checked above");
        if allowed && cost > 0 && !stale {
            self.admitted.push((followed.at, cost));
        }

        if self.whole && !stale {
            self.assert_exact(&decision, &followed, &ctx());
        } else {
            self.assert_within_one_tick(&decision, &followed, stale, &ctx());
        }
    }

    /// A tick is a nanosecond: everything equals the model.
    fn assert_exact(&self, decision: &Decision, followed: &Outcome, ctx: &str) {
        assert_eq!(
            u128::from(decision.remaining()),
            followed.remaining(),
            "remaining: {ctx}"
        );
        let retry = followed.retry_after();
        assert_eq!(retry.cmp_ns(retry.floor()), std::cmp::Ordering::Equal);
        assert_eq!(
            decision.retry_after(),
            retry.to_duration_ceil(),
            "retry: {ctx}"
        );
        let reset = followed.reset_after();
        assert_eq!(reset.cmp_ns(reset.floor()), std::cmp::Ordering::Equal);
        assert_eq!(
            decision.reset_after(),
            reset.to_duration_ceil(),
            "reset: {ctx}"
        );
    }

    /// The documented bound for a tick that is not one nanosecond, and for stale time.
    fn assert_within_one_tick(
        &self,
        decision: &Decision,
        followed: &Outcome,
        stale: bool,
        ctx: &str,
    ) {
        let d = self.ticks_per_token;
        let period = u128::from(self.spec.period);
        let rate = u128::from(self.spec.rate);

        // remaining: within one, and then only next to a whole token.
        let ours = u128::from(decision.remaining());
        let exact = followed.remaining();
        if stale {
            assert!(ours <= exact + 1, "remaining {ours} vs {exact}: {ctx}");
        } else {
            assert!(
                ours.abs_diff(exact) <= 1,
                "remaining {ours} vs {exact}: {ctx}"
            );
        }
        if ours > exact || (!stale && ours < exact) {
            let boundary = ours.max(exact) * period;
            assert!(
                followed.after.abs_diff(boundary) * d < period,
                "remaining {ours} vs {exact} away from a token boundary: {ctx}"
            );
        }

        // The model judges a stale request at its stored time, so its instants count from
        // there; on forward time, from the request's time.
        let base = u128::from(followed.at.max(followed.updated));
        let now = u128::from(followed.at);
        if decision.is_denied() {
            let shortfall = followed.shortfall();
            let exact = base + followed.quota.refill_time(shortfall).ceil();
            if decision.retry_after() == Duration::MAX {
                // Saturated, as reset_after below.
                assert!(exact >= now + Duration::MAX.as_nanos(), "{ctx}");
                return;
            }
            let named = now + decision.retry_after().as_nanos();
            assert!(named > now, "retry_after of zero for a denial: {ctx}");
            assert!(named <= exact, "retry at {named}, model at {exact}: {ctx}");
            if shortfall > 0 {
                // exact instant - one tick < named, in units of 1 / (r * D) ns.
                assert!(
                    named * rate * d + period > base * rate * d + shortfall * d,
                    "retry at {named}, over a tick before the model's: {ctx}"
                );
            }
        } else {
            assert_eq!(decision.retry_after(), Duration::ZERO);
        }

        let missing = followed.quota.capacity() - followed.after;
        let exact = base + followed.quota.refill_time(missing).ceil();
        if decision.reset_after() == Duration::MAX {
            // Saturated: refilling takes over 2^64 seconds (a huge burst at one per year).
            assert!(exact >= now + Duration::MAX.as_nanos(), "{ctx}");
            return;
        }
        let named = now + decision.reset_after().as_nanos();
        assert!(named <= exact, "full at {named}, model at {exact}: {ctx}");
        if missing > 0 {
            assert!(
                named * rate * d + period > base * rate * d + missing * d,
                "full at {named}, over a tick before the model's: {ctx}"
            );
        } else {
            assert_eq!(decision.reset_after(), Duration::ZERO, "{ctx}");
        }
    }

    /// Over every window of admissions, at most `burst + d / T` (+ one tick unless whole).
    fn check_windows(&self) {
        let d = self.ticks_per_token;
        let period = u128::from(self.spec.period);
        let rate = u128::from(self.spec.rate);
        let burst = u128::from(self.spec.burst);
        for (i, &(start, _)) in self.admitted.iter().enumerate() {
            let mut total = 0u128;
            for &(end, cost) in &self.admitted[i..] {
                total += u128::from(cost);
                if total <= burst {
                    continue;
                }
                let span = u128::from(end - start);
                let over = (total - burst) * period;
                if self.whole {
                    assert!(
                        over <= span * rate,
                        "{total} admitted in {span} ns: {:?}",
                        self.spec
                    );
                } else {
                    assert!(
                        over * d < span * rate * d + period,
                        "{total} admitted in {span} ns: {:?}",
                        self.spec
                    );
                }
            }
        }
    }
}

/// A peek decides as the check does, and neither a peek nor a denial writes the cell.
fn check_peek<A: Algorithm>(
    state: u64,
    now: u64,
    cost: u64,
    quota: &Quota,
    check: &Result<Transition, InsufficientCapacity>,
) {
    let peek = A::peek(state, now, cost, quota);
    let cell = Cell::new(state);
    assert_eq!(cell.peek::<A>(quota, cost, || now), peek);
    assert_eq!(cell.load(), state, "a peek wrote the cell");
    match (peek, check) {
        (Err(p), Err(c)) => assert_eq!(p, *c),
        (Ok(peek), Ok(check)) => {
            assert_eq!(peek.is_allowed(), check.decision.is_allowed());
            if check.decision.is_denied() || cost == 0 {
                assert_eq!(peek, check.decision);
            } else {
                assert_eq!(peek.remaining(), check.decision.remaining() + cost);
                assert_eq!(peek.retry_after(), Duration::ZERO);
            }
        }
        (peek, check) => panic!("peek {peek:?} but check {check:?}"),
    }
    if let Ok(t) = check {
        if t.next.is_none() {
            let cell = Cell::new(state);
            assert_eq!(cell.check::<A>(quota, cost, || now), Ok(t.decision));
            assert_eq!(cell.load(), state, "a denial wrote the cell");
        }
    }
}

/// The whole-second renderings round up, and a denial is never told 0.
fn check_decision_renderings(decision: &Decision) {
    // Saturating, as durations beyond u64::MAX seconds are (see `reset_after`).
    let ceil =
        |d: Duration| u64::try_from(d.as_nanos().div_ceil(1_000_000_000)).unwrap_or(u64::MAX);
    assert_eq!(decision.retry_after_secs(), ceil(decision.retry_after()));
    assert_eq!(decision.reset_after_secs(), ceil(decision.reset_after()));
    if decision.is_denied() {
        assert!(decision.retry_after() > Duration::ZERO);
        assert!(decision.retry_after_secs() >= 1);
        assert!(decision.reset_after() >= decision.retry_after());
    }
    assert!(decision.remaining() <= decision.limit());
}

proptest! {
    #![proptest_config(ProptestConfig {
        // 256 by default; `PROPTEST_CASES=100000` for a long run.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256),
        // tests/model.proptest-regressions: failures found, replayed first on every run.
        failure_persistence: Some(Box::new(
            prop::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    /// Forward time, any quota: exact where a tick is a nanosecond, within a tick elsewhere.
    #[test]
    fn forward_traces_meet_the_model(spec in any_spec(), steps in trace(forward_time())) {
        let mut lockstep = Lockstep::new(spec);
        lockstep.run(&steps);
        prop_assert!(lockstep.forward);
        if lockstep.whole {
            prop_assert_eq!(lockstep.differences, 0);
        }
    }

    /// Forward time, quotas whose tick is one nanosecond: exactly the model.
    #[test]
    fn whole_nanosecond_quotas_are_exact(spec in whole_spec(), steps in trace(forward_time())) {
        let mut lockstep = Lockstep::new(spec);
        prop_assert!(lockstep.whole, "{:?}", spec);
        lockstep.run(&steps);
        prop_assert_eq!(lockstep.differences, 0);
    }

    /// Time that also goes backwards, and garbage costs and times.
    #[test]
    fn stale_and_garbage_traces_stay_within_the_bound(
        spec in any_spec(),
        steps in trace(any_time()),
    ) {
        Lockstep::new(spec).run(&steps);
    }

    /// No state, time or cost panics, and a state below 2^63 never becomes one above.
    #[test]
    fn no_input_panics(
        spec in any_spec(),
        inputs in prop::collection::vec((any::<u64>(), any::<u64>(), any::<u64>(), 0..4u8), 64),
    ) {
        let quota = spec.quota();
        for (state, now, cost, kind) in inputs {
            let state = match kind {
                0 => state,
                1 => state & (TOP_BIT - 1),
                2 => state | TOP_BIT,
                _ => state % 1_000,
            };
            let cost = if kind == 3 { cost % (spec.burst + 2) } else { cost };
            no_panic::<Gcra>(state, now, cost, &quota)?;
            no_panic::<TokenBucket>(state, now, cost, &quota)?;
        }
    }
}

fn no_panic<A: Algorithm>(
    state: u64,
    now: u64,
    cost: u64,
    quota: &Quota,
) -> Result<(), TestCaseError> {
    let check = A::check(state, now, cost, quota);
    let peek = A::peek(state, now, cost, quota);
    prop_assert_eq!(check.is_err(), cost > quota.burst());
    prop_assert_eq!(peek.is_err(), cost > quota.burst());
    if let (Ok(check), Ok(peek)) = (check, peek) {
        prop_assert_eq!(check.decision.is_allowed(), peek.is_allowed());
        for decision in [check.decision, peek] {
            let _ = (
                decision.remaining(),
                decision.retry_after_secs(),
                decision.reset_after_secs(),
            );
            if decision.is_denied() {
                prop_assert!(decision.retry_after_secs() >= 1);
            }
        }
        if let Some(next) = check.next {
            if state < TOP_BIT {
                prop_assert!(next < TOP_BIT, "{} -> {:#x}", state, next);
            }
        }
    }
    Ok(())
}

/// The documented rounding, pinned on one instance: at 3 per second (`T` = 333,333,333.3 ns,
/// `D` = 333,333,334 ticks of 0.999999998 ns), a request at 0.2 s reads as tick 200,000,000.4,
/// floored; the next token then comes 0.4 tick early, so the implementation admits at
/// 0.2 s + 333,333,333 ns, a third of a nanosecond before the exact model.
#[test]
fn early_admission_within_one_tick() {
    let spec = Spec {
        rate: 3,
        period: SECOND,
        burst: 1,
    };
    let quota = spec.quota();
    let first = 200_000_000;
    let early = first + 333_333_333;
    for (state, next) in [
        (Gcra::initial(&quota), Gcra::check as CheckFn),
        (TokenBucket::initial(&quota), TokenBucket::check as CheckFn),
    ] {
        let state = next(state, first, 1, &quota).unwrap().next.unwrap();
        let denied = next(state, early - 1, 1, &quota).unwrap();
        assert!(denied.decision.is_denied());
        assert_eq!(denied.decision.retry_after(), Duration::from_nanos(1));
        assert!(next(state, early, 1, &quota).unwrap().decision.is_allowed());
    }
    let mut model = Bucket::new(spec.model());
    model.check(first, 1).unwrap();
    let exact = model.peek(early, 1).unwrap();
    assert!(!exact.allowed);
    // Short by a third of a nanosecond's refill, under one tick.
    assert_eq!(exact.shortfall(), 1);
    assert!(exact.shortfall() * u128::from(quota.ticks_per_token()) < u128::from(SECOND));
    assert!(model.peek(early + 1, 1).unwrap().allowed);
}

type CheckFn = fn(u64, u64, u64, &Quota) -> Result<Transition, InsufficientCapacity>;
