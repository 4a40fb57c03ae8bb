//! A validated quota: `rate` admissions per `period`, with a bucket of `burst`.

use core::time::Duration;

use crate::error::QuotaError;
use crate::ticks::TickScale;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// A validated rate limit: `rate` admissions per `period`, with a bucket capacity of `burst`
/// (by default equal to `rate`). The emission interval `T = period / rate` is kept as an exact
/// fraction: 3 per second is 333,333,333.3 ns, not 333,333,333.
///
/// Supported: periods from 1 ns to 365 days, at most one admission per nanosecond
/// (10^9 per second), bursts from 1 to 2^56. Anything outside is a [`QuotaError`].
///
/// ```
/// use nanolimit::Quota;
/// use std::time::Duration;
///
/// let quota = Quota::per_minute(100)?.with_burst(20)?;
/// assert_eq!(quota.rate(), 100);
/// assert_eq!(quota.burst(), 20);
/// assert_eq!(quota.emission_interval(), Duration::from_millis(600));
/// assert!(Quota::per_second(0).is_err());
/// # Ok::<(), nanolimit::QuotaError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    rate: u64,
    period_ns: u64,
    burst: u64,
    scale: TickScale,
}

impl Quota {
    /// The longest supported period: 365 days.
    pub const MAX_PERIOD: Duration = Duration::from_secs(365 * 86_400);
    /// The largest supported burst: 2^56 (about 7.2 * 10^16), above the largest supported rate
    /// per period (10^9 per second for 365 days), so the default burst (= rate) always fits.
    pub const MAX_BURST: u64 = 1 << 56;
    /// The highest supported rate, per second: one admission per nanosecond.
    pub const MAX_RATE_PER_SECOND: u64 = NANOS_PER_SECOND;

    /// `rate` admissions per `period`, burst = `rate`.
    ///
    /// ```
    /// use nanolimit::{Quota, QuotaError};
    /// use std::time::Duration;
    ///
    /// let q = Quota::new(90, Duration::from_secs(90))?;
    /// assert_eq!(q.emission_interval(), Duration::from_secs(1));
    /// assert_eq!(Quota::new(5, Duration::ZERO), Err(QuotaError::ZeroPeriod));
    /// # Ok::<(), QuotaError>(())
    /// ```
    pub fn new(rate: u64, period: Duration) -> Result<Self, QuotaError> {
        // The rate is judged first, as in `from_parts`, so the error does not depend on which
        // path a bad quota takes.
        if rate == 0 {
            return Err(QuotaError::ZeroRate);
        }
        if period > Self::MAX_PERIOD {
            return Err(QuotaError::PeriodTooLong);
        }
        // Cannot truncate: MAX_PERIOD is far below u64::MAX nanoseconds.
        Self::from_parts(rate, period.as_nanos() as u64, rate)
    }

    /// `rate` admissions per second.
    ///
    /// ```
    /// # use nanolimit::{Quota, QuotaError};
    /// assert_eq!(Quota::per_second(1_000_000_001), Err(QuotaError::RateTooHigh));
    /// assert_eq!(Quota::per_second(1_000_000_000)?.burst(), 1_000_000_000);
    /// # Ok::<(), QuotaError>(())
    /// ```
    pub fn per_second(rate: u64) -> Result<Self, QuotaError> {
        Self::new(rate, Duration::from_secs(1))
    }

    /// `rate` admissions per minute.
    pub fn per_minute(rate: u64) -> Result<Self, QuotaError> {
        Self::new(rate, Duration::from_secs(60))
    }

    /// `rate` admissions per hour.
    pub fn per_hour(rate: u64) -> Result<Self, QuotaError> {
        Self::new(rate, Duration::from_secs(3_600))
    }

    /// `rate` admissions per day.
    pub fn per_day(rate: u64) -> Result<Self, QuotaError> {
        Self::new(rate, Duration::from_secs(86_400))
    }

    /// The same rate with a bucket capacity of `burst`.
    ///
    /// ```
    /// # use nanolimit::{Quota, QuotaError};
    /// let q = Quota::per_second(10)?.with_burst(1)?;
    /// assert_eq!((q.rate(), q.burst()), (10, 1));
    /// assert_eq!(q.with_burst(0), Err(QuotaError::ZeroBurst));
    /// # Ok::<(), QuotaError>(())
    /// ```
    pub fn with_burst(self, burst: u64) -> Result<Self, QuotaError> {
        Self::from_parts(self.rate, self.period_ns, burst)
    }

    /// The one place where a quota is validated and its tick scale derived.
    fn from_parts(rate: u64, period_ns: u64, burst: u64) -> Result<Self, QuotaError> {
        if rate == 0 {
            return Err(QuotaError::ZeroRate);
        }
        if period_ns == 0 {
            return Err(QuotaError::ZeroPeriod);
        }
        if burst == 0 {
            return Err(QuotaError::ZeroBurst);
        }
        if rate > period_ns {
            return Err(QuotaError::RateTooHigh);
        }
        if burst > Self::MAX_BURST {
            return Err(QuotaError::BurstTooLarge);
        }
        Ok(Self {
            rate,
            period_ns,
            burst,
            scale: TickScale::new(rate, period_ns, burst),
        })
    }

    /// Admissions per period.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// The period over which `rate` admissions are allowed.
    pub fn period(&self) -> Duration {
        Duration::from_nanos(self.period_ns)
    }

    /// The bucket capacity: how many units may be admitted at once after an idle spell.
    #[inline]
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// The emission interval `T = period / rate`, rounded down to whole nanoseconds for
    /// display. The limiter itself uses the exact fraction.
    pub fn emission_interval(&self) -> Duration {
        Duration::from_nanos(self.period_ns / self.rate)
    }

    /// Time for an empty bucket to become full: `burst * T`, rounded up to whole nanoseconds.
    pub fn refill_time(&self) -> Duration {
        let ns =
            (u128::from(self.burst) * u128::from(self.period_ns)).div_ceil(u128::from(self.rate));
        duration_from_nanos(ns)
    }

    /// The length of one tick, the unit in which decisions are exact: `T / D`, at most 1 ns
    /// except for slow quotas with huge bursts (a 1-per-year quota with a burst of 10^6 has a
    /// tick of about 13.7 µs). A decision can differ from the exact model only for a request
    /// that arrives within one tick of the moment the model's answer changes.
    ///
    /// ```
    /// # use nanolimit::Quota;
    /// # use std::time::Duration;
    /// assert_eq!(Quota::per_second(100)?.resolution(), Duration::from_nanos(1));
    /// # Ok::<(), nanolimit::QuotaError>(())
    /// ```
    pub fn resolution(&self) -> Duration {
        duration_from_nanos(self.scale.ratio.nanos_at(1))
    }

    /// `D`: how many ticks make one token (one emission interval). The state of a bucket is
    /// kept in ticks, so this is the fixed-point denominator of every token count. It equals
    /// the emission interval in whole nanoseconds, rounded up, unless the burst is so large
    /// that `burst * D` would pass 2^61.
    ///
    /// ```
    /// # use nanolimit::Quota;
    /// assert_eq!(Quota::per_second(100)?.ticks_per_token(), 10_000_000);
    /// assert_eq!(Quota::per_second(3)?.ticks_per_token(), 333_333_334);
    /// # Ok::<(), nanolimit::QuotaError>(())
    /// ```
    #[inline]
    pub fn ticks_per_token(&self) -> u64 {
        self.scale.ticks_per_token
    }

    #[inline]
    pub(crate) fn scale(&self) -> &TickScale {
        &self.scale
    }
}

/// A `Duration` from a nanosecond count that may exceed `u64`.
pub(crate) fn duration_from_nanos(ns: u128) -> Duration {
    let secs = ns / u128::from(NANOS_PER_SECOND);
    let nanos = (ns % u128::from(NANOS_PER_SECOND)) as u32;
    match u64::try_from(secs) {
        Ok(secs) => Duration::new(secs, nanos),
        Err(_) => Duration::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_each_cause() {
        let sec = Duration::from_secs(1);
        assert_eq!(Quota::new(0, sec), Err(QuotaError::ZeroRate));
        assert_eq!(Quota::new(1, Duration::ZERO), Err(QuotaError::ZeroPeriod));
        assert_eq!(
            Quota::new(1, sec).unwrap().with_burst(0),
            Err(QuotaError::ZeroBurst)
        );
        assert_eq!(
            Quota::new(1, Quota::MAX_PERIOD + Duration::from_nanos(1)),
            Err(QuotaError::PeriodTooLong)
        );
        assert_eq!(Quota::new(1, Duration::MAX), Err(QuotaError::PeriodTooLong));
        assert_eq!(
            Quota::new(2, Duration::from_nanos(1)),
            Err(QuotaError::RateTooHigh)
        );
        assert_eq!(
            Quota::per_second(1)
                .unwrap()
                .with_burst(Quota::MAX_BURST + 1),
            Err(QuotaError::BurstTooLarge)
        );
        assert_eq!(Quota::new(0, Duration::ZERO), Err(QuotaError::ZeroRate));
        // Regression: a zero rate with a too-long period used to report the period.
        assert_eq!(Quota::new(0, Duration::MAX), Err(QuotaError::ZeroRate));
    }

    #[test]
    fn supported_extremes_are_accepted() {
        let slowest = Quota::new(1, Quota::MAX_PERIOD).unwrap();
        assert_eq!(slowest.emission_interval(), Quota::MAX_PERIOD);
        let fastest = Quota::per_second(Quota::MAX_RATE_PER_SECOND).unwrap();
        assert_eq!(fastest.emission_interval(), Duration::from_nanos(1));
        let shortest = Quota::new(1, Duration::from_nanos(1)).unwrap();
        assert_eq!(shortest.refill_time(), Duration::from_nanos(1));
        let huge = slowest.with_burst(1_000_000).unwrap();
        assert_eq!(huge.refill_time(), Quota::MAX_PERIOD * 1_000_000);
        assert!(fastest.with_burst(Quota::MAX_BURST).is_ok());
    }

    #[test]
    fn burst_defaults_to_rate() {
        assert_eq!(Quota::per_hour(3_600).unwrap().burst(), 3_600);
    }

    #[test]
    fn huge_durations_saturate() {
        assert_eq!(duration_from_nanos(u128::MAX), Duration::MAX);
        assert_eq!(
            duration_from_nanos(1_500_000_000),
            Duration::from_millis(1_500)
        );
    }
}
