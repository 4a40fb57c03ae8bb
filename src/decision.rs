//! The outcome of one check: allowed or denied, and what to tell the caller.

use core::time::Duration;

use crate::quota::duration_from_nanos;
use crate::ticks::{Ratio, TickScale, MAX_NANOS};

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// The answer to one request: allowed or denied, the limit, what remains, and when to retry.
///
/// A decision is cheap to produce; the durations are derived from it only when asked for.
///
/// ```
/// use nanolimit::{DirectLimiter, ManualClock, Quota};
/// use std::time::Duration;
///
/// let clock = ManualClock::default();
/// let limiter = DirectLimiter::gcra_with_clock(Quota::per_second(2)?, clock.clone());
/// assert_eq!(limiter.check().remaining(), 1);
/// assert!(limiter.check().is_allowed());
/// let denied = limiter.check();
/// assert!(denied.is_denied());
/// assert_eq!(denied.retry_after(), Duration::from_millis(500));
/// assert_eq!(denied.retry_after_secs(), 1); // rounded up, never 0 while limited
/// assert_eq!(denied.reset_after(), Duration::from_secs(1));
/// # Ok::<(), nanolimit::QuotaError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    allowed: bool,
    limit: u64,
    ticks_per_token: u64,
    /// Ticks of credit left after the decision.
    available: u64,
    /// The time the decision was made at, in nanoseconds (clamped to the lifetime).
    now: u64,
    /// Denials: the tick at which the same request would fit.
    retry_tick: u64,
    /// The tick at which the bucket is full again.
    full_tick: u64,
    /// Ticks per nanosecond, to turn ticks back into time.
    ratio: Ratio,
}

impl Decision {
    /// Built by the algorithms, which work in ticks.
    #[inline]
    pub(crate) fn new(
        allowed: bool,
        limit: u64,
        scale: &TickScale,
        now: u64,
        available: u64,
        retry_tick: u64,
        full_tick: u64,
    ) -> Self {
        Self {
            allowed,
            limit,
            ticks_per_token: scale.ticks_per_token,
            available,
            now: now.min(MAX_NANOS),
            retry_tick,
            full_tick,
            ratio: scale.ratio,
        }
    }

    /// The request was admitted (and, for a check, its cost consumed).
    #[inline]
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// The request was refused; nothing was consumed.
    #[inline]
    pub fn is_denied(&self) -> bool {
        !self.allowed
    }

    /// The bucket capacity (the quota's burst).
    #[inline]
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Whole units still available after this decision (for a peek: available now).
    #[inline]
    pub fn remaining(&self) -> u64 {
        self.available / self.ticks_per_token
    }

    /// For a denial, the exact time until the same request would be admitted, if nothing else
    /// is admitted meanwhile; never zero. For an allowed request, zero.
    pub fn retry_after(&self) -> Duration {
        if self.allowed {
            Duration::ZERO
        } else {
            self.until(self.retry_tick)
        }
    }

    /// Time until the bucket is full again (zero if it is full now).
    pub fn reset_after(&self) -> Duration {
        self.until(self.full_tick)
    }

    /// [`retry_after`](Self::retry_after) in whole seconds, rounded up: at least 1 for a
    /// denial, so a client that waits this long is admitted. 0 for an allowed request.
    pub fn retry_after_secs(&self) -> u64 {
        ceil_secs(self.retry_after())
    }

    /// [`reset_after`](Self::reset_after) in whole seconds, rounded up.
    pub fn reset_after_secs(&self) -> u64 {
        ceil_secs(self.reset_after())
    }

    fn until(&self, tick: u64) -> Duration {
        let at = self.ratio.nanos_at(tick);
        duration_from_nanos(at.saturating_sub(u128::from(self.now)))
    }
}

fn ceil_secs(d: Duration) -> u64 {
    let ns = d.as_nanos().div_ceil(NANOS_PER_SECOND);
    u64::try_from(ns).unwrap_or(u64::MAX)
}
