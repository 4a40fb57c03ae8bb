//! Typed errors. Each variant is one distinct cause; none of them is a denial.

use core::fmt;

/// Why a [`Quota`](crate::Quota) could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QuotaError {
    /// The rate was 0: a quota must admit at least one request per period.
    ZeroRate,
    /// The period was zero.
    ZeroPeriod,
    /// The burst (bucket capacity) was 0: no request could ever be admitted.
    ZeroBurst,
    /// The period is longer than [`Quota::MAX_PERIOD`](crate::Quota::MAX_PERIOD) (365 days).
    PeriodTooLong,
    /// More than one admission per nanosecond (10^9 per second): the emission interval
    /// would be shorter than the clock's resolution. Rejected rather than rounded.
    RateTooHigh,
    /// The burst is larger than [`Quota::MAX_BURST`](crate::Quota::MAX_BURST).
    BurstTooLarge,
}

impl fmt::Display for QuotaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ZeroRate => "rate must be at least 1 per period",
            Self::ZeroPeriod => "period must be longer than zero",
            Self::ZeroBurst => "burst must be at least 1",
            Self::PeriodTooLong => "period must be at most 365 days",
            Self::RateTooHigh => "rate must be at most one per nanosecond (10^9 per second)",
            Self::BurstTooLarge => "burst must be at most 2^56",
        })
    }
}

impl std::error::Error for QuotaError {}

/// A request costs more than the bucket can ever hold: it can never be admitted, whatever the
/// wait. Distinct from a denial, which only means "not now". The state is left unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InsufficientCapacity {
    /// The cost that was asked for.
    pub cost: u64,
    /// The bucket's capacity (the quota's burst).
    pub burst: u64,
}

impl fmt::Display for InsufficientCapacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a cost of {} can never be admitted by a bucket of capacity {}",
            self.cost, self.burst
        )
    }
}

impl std::error::Error for InsufficientCapacity {}
