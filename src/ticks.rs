//! Exact conversion between clock nanoseconds and a quota's ticks.
//!
//! A tick is `1/D` of the quota's emission interval `T = period / rate`, for an integer `D`
//! (ticks per token) chosen per quota. In ticks, `T` is exactly `D`, so every transition of
//! the algorithms is integer arithmetic with no rounding at all. The one rounding in the
//! whole crate is here: the clock's nanoseconds map to `floor(ns * D / T)` ticks, once per
//! decision, and the error of that floor (under one tick) is never stored or accumulated.
//!
//! `D = ceil(T / 1 ns)`, so a tick is at most one nanosecond and, when `T` is a whole number
//! of nanoseconds, exactly one: the conversion is then the identity. For slow quotas with a
//! huge burst, `D` is lowered so that a full bucket (`burst * D` ticks) fits in
//! [`MAX_CAPACITY_TICKS`]; the tick then grows (see [`Quota::resolution`](crate::Quota::resolution)).

/// Capacity bound in ticks: `burst * D <= 2^61`.
pub(crate) const MAX_CAPACITY_TICKS: u64 = 1 << 61;

/// Times beyond this many nanoseconds since the clock's origin are read as this value:
/// 2^61 ns, about 73 years, the documented lifetime of a limiter. There are fewer than two
/// ticks per nanosecond (`D / T = ceil(T) / T < 2`), so every time stays below 2^62 ticks
/// and a state (a time plus at most 2^61 ticks of capacity) below 2^63.
pub(crate) const MAX_NANOS: u64 = 1 << 61;

/// Ticks per nanosecond as an exact fraction: `D * rate / period_ns`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Ratio {
    pub(crate) num: u64,
    pub(crate) den: u64,
}

impl Ratio {
    /// The first nanosecond `t` at which the clock reads at least `tick` ticks:
    /// `ceil(tick * den / num)`. Not clamped: may lie beyond [`MAX_NANOS`].
    pub(crate) fn nanos_at(&self, tick: u64) -> u128 {
        (u128::from(tick) * u128::from(self.den)).div_ceil(u128::from(self.num))
    }
}

/// Everything needed to map nanoseconds to ticks, split for a fast exact floor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TickScale {
    /// `D`: ticks in one emission interval (one token).
    pub(crate) ticks_per_token: u64,
    pub(crate) ratio: Ratio,
    /// `num / den`, the whole part (0, 1 or 2).
    whole: u64,
    /// `num % den`.
    frac_num: u64,
    /// `floor(frac_num * 2^64 / den)`: lets the hot path replace a 128-bit division by a
    /// multiplication and one correction step.
    frac_mul: u64,
}

impl TickScale {
    /// `rate >= 1`, `1 <= period_ns`, `rate <= period_ns` (T >= 1 ns), `1 <= burst <= 2^56`.
    pub(crate) fn new(rate: u64, period_ns: u64, burst: u64) -> Self {
        let interval_ceil = period_ns.div_ceil(rate);
        let ticks_per_token = interval_ceil.min(MAX_CAPACITY_TICKS / burst);
        // num = D * rate <= (period_ns / rate + 1) * rate <= period_ns + rate < 2^56.
        let num = ticks_per_token * rate;
        let den = period_ns;
        let frac_num = num % den;
        Self {
            ticks_per_token,
            ratio: Ratio { num, den },
            whole: num / den,
            frac_num,
            frac_mul: ((u128::from(frac_num) << 64) / u128::from(den)) as u64,
        }
    }

    /// `floor(ns * num / den)`, exactly, with `ns` clamped to [`MAX_NANOS`].
    #[inline]
    pub(crate) fn ticks_at(&self, ns: u64) -> u64 {
        let ns = ns.min(MAX_NANOS);
        let whole = ns * self.whole;
        if self.frac_num == 0 {
            return whole;
        }
        // q is floor(exact) or floor(exact) - 1, because frac_mul undershoots by under 1/2^64
        // per nanosecond and ns < 2^64; one comparison decides which.
        let product = u128::from(ns) * u128::from(self.frac_num);
        let mut q = ((u128::from(ns) * u128::from(self.frac_mul)) >> 64) as u64;
        if u128::from(q + 1) * u128::from(self.ratio.den) <= product {
            q += 1;
        }
        whole + q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(scale: &TickScale, ns: u64) -> u64 {
        let Ratio { num, den } = scale.ratio;
        (u128::from(ns.min(MAX_NANOS)) * u128::from(num) / u128::from(den)) as u64
    }

    #[test]
    fn whole_nanosecond_interval_is_the_identity() {
        let scale = TickScale::new(100, 1_000_000_000, 10); // T = 10 ms
        assert_eq!(scale.ticks_per_token, 10_000_000);
        for ns in [0, 1, 999, 10_000_000, 123_456_789_012, MAX_NANOS, u64::MAX] {
            assert_eq!(scale.ticks_at(ns), ns.min(MAX_NANOS));
        }
    }

    #[test]
    fn fractional_interval_floors_exactly() {
        // 3 per second: T = 333_333_333.3 ns, D = 333_333_334 ticks.
        let scale = TickScale::new(3, 1_000_000_000, 3);
        assert_eq!(scale.ticks_per_token, 333_333_334);
        for ns in [
            0,
            1,
            2,
            333_333_333,
            333_333_334,
            1_000_000_000,
            7 << 40,
            MAX_NANOS,
        ] {
            assert_eq!(scale.ticks_at(ns), exact(&scale, ns), "ns = {ns}");
        }
        // One full period is exactly three intervals.
        assert_eq!(scale.ticks_at(1_000_000_000), 3 * 333_333_334);
    }

    #[test]
    fn nanos_at_inverts_ticks_at() {
        for (rate, period, burst) in [
            (3, 1_000_000_000, 3),
            (7, 60_000_000_000, 100),
            (999_999_937, 1_000_000_000, 1_000_000),
        ] {
            let scale = TickScale::new(rate, period, burst);
            for tick in [1, 2, 1000, 333_333_334, 1 << 40] {
                let t = scale.ratio.nanos_at(tick) as u64;
                assert!(scale.ticks_at(t) >= tick);
                assert!(scale.ticks_at(t - 1) < tick);
            }
        }
    }

    #[test]
    fn slow_rate_with_huge_burst_uses_coarser_ticks() {
        // 1 per 365 days, burst 10^6: D is capped so burst * D fits in 2^61.
        let year = 365 * 86_400 * 1_000_000_000u64;
        let scale = TickScale::new(1, year, 1_000_000);
        assert_eq!(scale.ticks_per_token, MAX_CAPACITY_TICKS / 1_000_000);
        assert!(scale.ticks_per_token * 1_000_000 <= MAX_CAPACITY_TICKS);
        assert_eq!(scale.ticks_at(year), scale.ticks_per_token);
    }
}
