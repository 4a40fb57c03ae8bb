//! The Redis limiter against the in-memory one: the same traces (explicit times) give
//! identical decisions (allowed, remaining, retry_after, reset_after: `Decision` equality
//! compares them all), for both algorithms and quotas over the whole supported range; and
//! the Lua port applied to arbitrary raw states equals the pure algorithm.
#![cfg(feature = "redis")]

mod redis_support;

use std::time::Duration;

use nanolimit::store::redis::{RedisConnection, RedisLimitError, RedisLimiter};
use nanolimit::{
    Decision, Gcra, InsufficientCapacity, KeyedLimiter, ManualClock, Quota, TokenBucket,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use redis::AsyncCommands;
use redis_support::{raw, RedisServer};

const SECOND: u64 = 1_000_000_000;
const YEAR: u64 = 365 * 86_400 * SECOND;
const MAX_NANOS: u64 = 1 << 61;

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
            .unwrap_or_else(|e| panic!("{self:?} should be valid: {e}"))
    }
}

/// The extremes named (10^9 per second, one per 365 days, bursts of 2^20 and more, thirds),
/// and random quotas over the supported range.
fn any_spec() -> impl Strategy<Value = Spec> {
    let named = prop_oneof![
        Just((SECOND, SECOND, 1)),
        Just((SECOND, SECOND, SECOND)),
        Just((1_000_000, SECOND, 1 << 20)),
        Just((1, YEAR, 1)),
        Just((1, YEAR, 1_000_000)),
        Just((1, YEAR, 1 << 56)),
        Just((3, SECOND, 3)),
        Just((7, 60 * SECOND, 2)),
        Just((1, 1, 1 << 56)),
        Just((999_999_937, SECOND, (1 << 20) + 3)),
    ];
    let period = prop_oneof![Just(1u64), 1..=1_000u64, Just(SECOND), Just(YEAR), 1..=YEAR];
    let random = (period, any::<u64>(), 0..5u8, any::<u64>()).prop_map(|(period, x, kind, y)| {
        let rate = 1 + x % period;
        let burst = match kind {
            0 => 1,
            1 => rate.min(1 << 56),
            2 => 1 + y % 1_000_000,
            3 => 1 + y % (1 << 56),
            _ => (1 << 20) + y % 1_000,
        };
        (rate, period, burst)
    });
    prop_oneof![1 => named, 2 => random].prop_map(|(rate, period, burst)| Spec {
        rate,
        period,
        burst,
    })
}

/// How a step picks its time from the previous one and the in-memory limiter's last decision.
#[derive(Clone, Copy, Debug)]
enum Step {
    Same,
    Nanos(u64),
    Intervals(u64),
    /// The last decision's retry instant (or the next interval), -1, 0 or +1 ns.
    Retry(u8),
    /// The last decision's reset instant, -1, 0 or +1 ns.
    Reset(u8),
    Jump(u32, u64),
    Lifetime(u64),
    Back(u64),
    Max,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Same),
        6 => any::<u64>().prop_map(Step::Nanos),
        12 => any::<u64>().prop_map(Step::Intervals),
        10 => any::<u8>().prop_map(Step::Retry),
        4 => any::<u8>().prop_map(Step::Reset),
        2 => (0..=62u32, any::<u64>()).prop_map(|(b, x)| Step::Jump(b, x)),
        1 => any::<u64>().prop_map(Step::Lifetime),
        2 => any::<u64>().prop_map(Step::Back),
        1 => Just(Step::Max),
    ]
}

/// Cost: 0, 1, anything up to the burst, the burst, just above it.
fn cost() -> impl Strategy<Value = (u8, u64)> {
    (0..10u8, any::<u64>())
}

fn resolve_cost((kind, x): (u8, u64), burst: u64) -> u64 {
    match kind {
        0 => 0,
        1..=4 => 1,
        5 | 6 => 1 + x % burst,
        7 => burst,
        8 => burst.saturating_sub(x % 3).max(1),
        _ => burst + 1,
    }
}

fn resolve_time(step: Step, t: u64, last: Option<&Decision>, spec: Spec) -> u64 {
    let interval = spec.period.div_ceil(spec.rate);
    let near = |d: Duration, delta: u8| {
        let at = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        t.saturating_add(at)
            .saturating_add(u64::from(delta % 3))
            .saturating_sub(1)
    };
    match step {
        Step::Same => t,
        Step::Nanos(x) => t.saturating_add(x % 1_001),
        Step::Intervals(x) => t.saturating_add(x % interval.saturating_mul(2)),
        Step::Retry(delta) => match last {
            Some(d) if d.is_denied() => near(d.retry_after(), delta),
            _ => t.saturating_add(interval),
        },
        Step::Reset(delta) => match last {
            Some(d) => near(d.reset_after(), delta),
            None => t,
        },
        Step::Jump(bits, x) => t.saturating_add(x % (1 << bits)),
        Step::Lifetime(x) => MAX_NANOS - 2 + x % 5,
        Step::Back(x) => t.saturating_sub(x % interval.saturating_mul(2)),
        Step::Max => u64::MAX,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs one trace through both limiters of algorithm `A` and asserts equality at every step.
async fn run_trace<A: nanolimit::store::redis::RedisAlgorithm>(
    connection: &RedisConnection,
    case: u64,
    spec: Spec,
    steps: &[(Step, (u8, u64), bool)],
) -> Result<(), TestCaseError> {
    let quota = spec.quota();
    let clock = ManualClock::default();
    let memory: KeyedLimiter<String, A, ManualClock> = KeyedLimiter::builder(quota)
        .algorithm::<A>()
        .clock(clock.clone())
        .amortized_eviction(false)
        .build();
    let redis = RedisLimiter::builder(connection.clone(), quota)
        .algorithm::<A>()
        .prefix(format!("diff:{case}:"))
        .timeout(Duration::from_secs(10))
        // Trace time does not follow Redis's clock: keep keys for the test's duration.
        .expiry_slack(Duration::from_secs(3_600))
        .build();
    let mut t = 0;
    let mut last: Option<Decision> = None;
    for (i, &(step, cost, peek)) in steps.iter().enumerate() {
        t = resolve_time(step, t, last.as_ref(), spec);
        let n = resolve_cost(cost, spec.burst);
        clock.set(t);
        let expected = if peek {
            memory.peek_key_n("k", n)
        } else {
            memory.check_key_n("k", n).map_err(|e| match e {
                nanolimit::KeyedError::InsufficientCapacity(e) => e,
                other => panic!("unexpected {other}"),
            })
        };
        let got = if peek {
            redis.peek_n_at("k", n, t).await
        } else {
            redis.check_n_at("k", n, t).await
        };
        match (expected, got) {
            (Ok(expected), Ok(got)) => {
                prop_assert!(got.is_from_redis());
                let got = *got.decision();
                let context = format!("step {i}: {spec:?} t={t} n={n} peek={peek}");
                prop_assert_eq!(got.is_allowed(), expected.is_allowed(), "{}", context);
                prop_assert_eq!(got.remaining(), expected.remaining(), "{}", context);
                prop_assert_eq!(got.retry_after(), expected.retry_after(), "{}", context);
                prop_assert_eq!(got.reset_after(), expected.reset_after(), "{}", context);
                prop_assert_eq!(got, expected, "{}", context);
                last = Some(expected);
            }
            (
                Err(InsufficientCapacity { cost, burst }),
                Err(RedisLimitError::InsufficientCapacity(e)),
            ) => {
                prop_assert_eq!((cost, burst), (e.cost, e.burst));
            }
            (expected, got) => {
                prop_assert!(
                    false,
                    "step {i}: {spec:?} t={t} n={n}: memory {expected:?}, redis {got:?}"
                );
            }
        }
    }
    Ok(())
}

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn differential<A: nanolimit::store::redis::RedisAlgorithm>(salt: u64) {
    let server = RedisServer::start();
    let rt = runtime();
    let connection = rt.block_on(async { RedisConnection::open(&server.url()).unwrap() });
    let mut runner = TestRunner::new(Config {
        cases: cases(48),
        failure_persistence: None,
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicU64::new(salt);
    let strategy = (
        any_spec(),
        prop::collection::vec((step(), cost(), prop::bool::weighted(0.2)), 20..80),
    );
    runner
        .run(&strategy, |(spec, steps)| {
            // Relaxed: a counter that only makes each case's keys distinct.
            let case = case.fetch_add(2, std::sync::atomic::Ordering::Relaxed);
            rt.block_on(run_trace::<A>(&connection, case, spec, &steps))
        })
        .unwrap();
}

#[test]
fn gcra_traces_decide_as_in_memory() {
    differential::<Gcra>(0);
}

#[test]
fn token_bucket_traces_decide_as_in_memory() {
    differential::<TokenBucket>(1);
}

/// The script applied to any stored `u64` (including states no algorithm writes, and the top
/// bit set) at any time writes what the pure algorithm computes and decides as it does.
fn arbitrary_states<A: nanolimit::store::redis::RedisAlgorithm>(prefix: &str) {
    let server = RedisServer::start();
    let rt = runtime();
    let (connection, raw) = rt.block_on(async {
        (
            RedisConnection::open(&server.url()).unwrap(),
            raw(&server).await,
        )
    });
    let mut runner = TestRunner::new(Config {
        cases: cases(64),
        failure_persistence: None,
        ..Config::default()
    });
    let state = prop_oneof![any::<u64>(), 0..(1u64 << 62), Just(u64::MAX), Just(0u64)];
    let now = prop_oneof![any::<u64>(), 0..(1u64 << 61), Just(MAX_NANOS)];
    let strategy = (any_spec(), prop::collection::vec((state, now, cost()), 10));
    runner
        .run(&strategy, |(spec, probes)| {
            let mut raw = raw.clone();
            rt.block_on(async {
                let quota = spec.quota();
                let limiter = RedisLimiter::builder(connection.clone(), quota)
                    .algorithm::<A>()
                    .prefix(prefix)
                    .timeout(Duration::from_secs(10))
                    // The state is read back below, however soon its bucket is full.
                    .expiry_slack(Duration::from_secs(3_600))
                    .build();
                let key = limiter.redis_key("k");
                for (state, now, cost) in probes {
                    let n = resolve_cost(cost, spec.burst).min(spec.burst);
                    let _: () = raw.set(&key, state.to_string()).await.unwrap();
                    let peeked = limiter.peek_n_at("k", n, now).await.unwrap();
                    prop_assert_eq!(*peeked.decision(), A::peek(state, now, n, &quota).unwrap());
                    let got = limiter.check_n_at("k", n, now).await.unwrap();
                    let expected = A::check(state, now, n, &quota).unwrap();
                    prop_assert_eq!(*got.decision(), expected.decision);
                    let stored: String = raw.get(&key).await.unwrap();
                    let want = expected.next.unwrap_or(state);
                    prop_assert_eq!(
                        stored,
                        want.to_string(),
                        "{:?} state={} now={} n={}",
                        spec,
                        state,
                        now,
                        n
                    );
                }
                Ok(())
            })
        })
        .unwrap();
}

#[test]
fn gcra_script_equals_the_pure_algorithm_on_any_state() {
    arbitrary_states::<Gcra>("any-gcra:");
}

#[test]
fn token_bucket_script_equals_the_pure_algorithm_on_any_state() {
    arbitrary_states::<TokenBucket>("any-tb:");
}

/// A few exact values through Redis's own clock (no explicit time).
#[test]
fn redis_time_is_used_by_default() {
    let server = RedisServer::start();
    runtime().block_on(async {
        let connection = RedisConnection::open(&server.url()).unwrap();
        let quota = Quota::per_hour(3).unwrap();
        let limiter = RedisLimiter::builder(connection, quota)
            .timeout(Duration::from_secs(5))
            .build();
        for remaining in [2, 1, 0] {
            let outcome = limiter.check("alice").await.unwrap();
            assert!(outcome.is_allowed() && outcome.is_from_redis());
            assert_eq!(outcome.decision().remaining(), remaining);
        }
        let denied = limiter.check("alice").await.unwrap();
        assert!(denied.is_denied());
        // About 20 minutes (one interval) minus the time the four calls took.
        let retry = denied.decision().retry_after();
        assert!(retry <= Duration::from_secs(1_200) && retry > Duration::from_secs(1_190));
        assert_eq!(denied.decision().retry_after_secs(), 1_200);
        // Other keys are independent; peeks change nothing.
        assert_eq!(limiter.peek("bob").await.unwrap().decision().remaining(), 3);
        assert_eq!(limiter.peek("bob").await.unwrap().decision().remaining(), 3);
        // A cost above the burst is an error, not a denial, and Redis is not asked.
        assert!(matches!(
            limiter.check_n("bob", 4).await,
            Err(RedisLimitError::InsufficientCapacity(
                InsufficientCapacity { cost: 4, burst: 3 }
            ))
        ));
    });
}
