//! One bucket, one thread: the cost of a check, nanolimit (GCRA and token bucket), governor and
//! the `ratelimit` crate (a token bucket) side by side in each group, in one run.
//!
//! - `direct/always-allow`: a quota so generous (10^9 per second, burst 10^9) that every check
//!   is admitted: the full path, clock read and a successful compare-and-swap.
//! - `direct/mostly-deny`: burst 1 at one per hour, drained before measuring: every check is a
//!   denial, which reads the clock and the state and stores nothing.
//!
//! Each contender runs on its default clock (`/quanta`: both read the TSC through quanta) and
//! on a cached clock refreshed every millisecond by a background thread (`/coarse`:
//! `nanolimit::CoarseClock`, `/upkeep`: governor's `QuantaUpkeepClock`). quanta allows one
//! upkeep thread per process, so one `CoarseClock` is created and shared by reference. Both
//! upkeep clocks can run at once here only because governor 0.10 links quanta 0.12 and nanolimit
//! quanta 0.13, two crates with separate globals. `ratelimit` runs on its default clock
//! (`/std`: `std::time::Instant`) and on nanolimit's `CoarseClock` (`/coarse`), through its
//! `Clock` trait.
//!
//! Before and after each measurement the limiter is checked once more to prove that the
//! scenario is the one named (allowed, or denied).
//!
//! `cargo bench --bench direct` (shorter: `-- --warm-up-time 1 --measurement-time 3`).

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use governor::clock::QuantaUpkeepClock;
use nanolimit::{Clock, CoarseClock, DirectLimiter, Quota};

/// How often the cached clocks are refreshed.
const UPKEEP_INTERVAL: Duration = Duration::from_millis(1);

/// The cached clocks, one per process each, shared by every limiter that uses them.
struct CachedClocks {
    nanolimit: CoarseClock,
    governor: QuantaUpkeepClock,
}

/// nanolimit's cached clock, as a `ratelimit` clock.
struct RatelimitCoarse<'a>(&'a CoarseClock);

impl ratelimit::Clock for RatelimitCoarse<'_> {
    #[inline]
    fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.0.now())
    }
}

/// A scenario: the quotas of the three libraries, and the outcome every measured check must
/// have.
struct Scenario {
    group: &'static str,
    nanolimit: Quota,
    governor: governor::Quota,
    /// `ratelimit`: tokens per period, the period, and the burst.
    ratelimit: (u64, Duration, u64),
    allowed: bool,
}

impl Scenario {
    /// A `ratelimit` limiter that starts full, like the others.
    fn ratelimit<C: ratelimit::Clock>(&self, clock: C) -> ratelimit::Ratelimiter<C> {
        let (rate, period, burst) = self.ratelimit;
        ratelimit::Builder::with_clock(rate, clock)
            .period(period)
            .max_tokens(burst)
            .initial_available(burst)
            .build()
            .expect("valid ratelimit")
    }
}

/// Measures `check` (which reports whether it was admitted) after draining `drain` checks,
/// asserting the scenario's outcome before and after.
fn contender(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    scenario: &Scenario,
    drain: u32,
    check: impl Fn() -> bool,
) {
    for _ in 0..drain {
        assert!(check(), "{id}: the bucket should admit its burst");
    }
    assert_eq!(check(), scenario.allowed, "{id}: wrong scenario before");
    group.bench_function(id, |b| b.iter(&check));
    assert_eq!(check(), scenario.allowed, "{id}: wrong scenario after");
}

fn run(c: &mut Criterion, scenario: &Scenario, clocks: &CachedClocks) {
    let mut group = c.benchmark_group(scenario.group);
    // The denial scenario starts by taking the single token.
    let drain = u32::from(!scenario.allowed);
    let quota = scenario.nanolimit;

    let limiter = DirectLimiter::gcra(quota);
    contender(&mut group, "nanolimit-gcra/quanta", scenario, drain, || {
        black_box(&limiter).check().is_allowed()
    });
    let limiter = DirectLimiter::token_bucket(quota);
    contender(
        &mut group,
        "nanolimit-token-bucket/quanta",
        scenario,
        drain,
        || black_box(&limiter).check().is_allowed(),
    );
    let limiter = governor::RateLimiter::direct(scenario.governor);
    contender(&mut group, "governor/quanta", scenario, drain, || {
        black_box(&limiter).check().is_ok()
    });
    let limiter = scenario.ratelimit(ratelimit::StdClock::new());
    contender(&mut group, "ratelimit/std", scenario, drain, || {
        black_box(&limiter).try_wait().is_ok()
    });

    let limiter = DirectLimiter::gcra_with_clock(quota, &clocks.nanolimit);
    contender(&mut group, "nanolimit-gcra/coarse", scenario, drain, || {
        black_box(&limiter).check().is_allowed()
    });
    let limiter = DirectLimiter::token_bucket_with_clock(quota, &clocks.nanolimit);
    contender(
        &mut group,
        "nanolimit-token-bucket/coarse",
        scenario,
        drain,
        || black_box(&limiter).check().is_allowed(),
    );
    let limiter =
        governor::RateLimiter::direct_with_clock(scenario.governor, clocks.governor.clone());
    contender(&mut group, "governor/upkeep", scenario, drain, || {
        black_box(&limiter).check().is_ok()
    });
    let limiter = scenario.ratelimit(RatelimitCoarse(&clocks.nanolimit));
    contender(&mut group, "ratelimit/coarse", scenario, drain, || {
        black_box(&limiter).try_wait().is_ok()
    });

    group.finish();
}

fn main() {
    let clocks = CachedClocks {
        nanolimit: CoarseClock::start(UPKEEP_INTERVAL).expect("the only nanolimit upkeep thread"),
        governor: QuantaUpkeepClock::from_interval(UPKEEP_INTERVAL)
            .expect("the only governor upkeep thread"),
    };
    let billion = 1_000_000_000;
    let scenarios = [
        Scenario {
            group: "direct/always-allow",
            nanolimit: Quota::per_second(billion).expect("valid quota"),
            governor: governor::Quota::per_second(NonZeroU32::new(billion as u32).expect("> 0")),
            ratelimit: (billion, Duration::from_secs(1), billion),
            allowed: true,
        },
        Scenario {
            group: "direct/mostly-deny",
            nanolimit: Quota::per_hour(1)
                .and_then(|q| q.with_burst(1))
                .expect("valid quota"),
            governor: governor::Quota::per_hour(NonZeroU32::MIN),
            ratelimit: (1, Duration::from_secs(3600), 1),
            allowed: false,
        },
    ];

    let mut criterion = Criterion::default().configure_from_args();
    for scenario in &scenarios {
        run(&mut criterion, scenario, &clocks);
    }
    criterion.final_summary();
}
