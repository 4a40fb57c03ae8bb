//! Inputs shared by the fuzz targets: numbers that land on the boundaries that matter far
//! more often than uniformly random bytes would.

use arbitrary::{Arbitrary, Result, Unstructured};

/// Nanoseconds in 365 days: `Quota::MAX_PERIOD`.
pub const MAX_PERIOD_NS: u64 = 365 * 86_400 * 1_000_000_000;
/// A limiter reads later times as this: 2^61 ns, its lifetime.
pub const LIFETIME_NS: u64 = nanolimit::LIFETIME.as_nanos() as u64;

/// Values at which some rule of the crate changes: limits of a quota, of ticks, of `u64`.
const BOUNDARIES: [u64; 16] = [
    0,
    1,
    1_000,
    1_000_000,
    1_000_000_000,
    60 * 1_000_000_000,
    3_600 * 1_000_000_000,
    86_400 * 1_000_000_000,
    MAX_PERIOD_NS,
    1 << 32,
    1 << 40,
    1 << 52,
    LIFETIME_NS,
    1 << 62,
    1 << 63,
    u64::MAX,
];

/// A `u64` drawn uniformly, small, or within 128 of a boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Num(pub u64);

impl<'a> Arbitrary<'a> for Num {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(Self(match u.int_in_range(0..=3u8)? {
            0 => u.arbitrary::<u64>()?,
            1 => u64::from(u.arbitrary::<u8>()?),
            2 => u64::from(u.arbitrary::<u32>()?),
            _ => {
                let base = *u.choose(&BOUNDARIES)?;
                base.saturating_add_signed(i64::from(u.arbitrary::<i8>()?))
            }
        }))
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (1, Some(9))
    }
}
