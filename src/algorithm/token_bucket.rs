//! The token bucket: tokens and a timestamp, both fixed point, in one word.
//!
//! ```text
//!  63  62                    g+1 g                       0
//! +---+-----------------------+--------------------------+
//! | 0 |  stamp (62 - g bits)  |  tokens + G  (g+1 bits)  |
//! +---+-----------------------+--------------------------+
//! ```
//!
//! - Tokens are counted in ticks (`D` ticks per token): fixed point with a fraction of one tick.
//! - `G = 2^g` is the smallest power of two above the capacity `C = burst * D` ticks.
//! - The timestamp is fixed point too: `stamp` counts whole units of `G` ticks, so it covers the
//!   limiter's whole lifetime (2^62 ticks) and never wraps, however long a bucket stays idle.
//!   The part of the update time below one unit is folded into the tokens field, which holds
//!   the credit at the start of the unit, `epoch = stamp * G`, offset by `G`: the credit can be
//!   up to `G` ticks below zero at the epoch and still be exact at the update time.
//!
//! Credit at tick `t`: `min(C, tokens - G + (t - epoch))`; a request of `n` tokens is admitted
//! iff the credit covers `n * D` ticks. On admission the bucket is re-stamped at `max(t, epoch)`,
//! so its time never moves backwards. A new bucket is full: stamp 0, tokens `C + G`.

use super::{capacity_in_ticks, cost_in_ticks, Algorithm, Transition};
use crate::decision::Decision;
use crate::error::InsufficientCapacity;
use crate::quota::Quota;

/// The token bucket: the state is a token count and the time it was counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TokenBucket;

/// The field layout for one quota.
#[derive(Clone, Copy)]
struct Layout {
    capacity: u64,
    /// `g`: the timestamp unit is `2^g` ticks, and the tokens field is `g + 1` bits wide.
    unit_bits: u32,
}

impl Layout {
    #[inline]
    fn of(quota: &Quota) -> Self {
        let capacity = capacity_in_ticks(quota);
        // 2^g > capacity; capacity <= 2^61, so g <= 62.
        Self {
            capacity,
            unit_bits: u64::BITS - capacity.leading_zeros(),
        }
    }

    #[inline]
    fn unit(self) -> i128 {
        1 << self.unit_bits
    }

    /// `(epoch, credit at epoch)` in ticks. Total for every `u64`: the stamp field holds at most
    /// `63 - g` bits, so the epoch stays below 2^63.
    #[inline]
    fn decode(self, state: u64) -> (i128, i128) {
        let tokens = state & ((1 << (self.unit_bits + 1)) - 1);
        let stamp = state >> (self.unit_bits + 1);
        (
            i128::from(stamp) << self.unit_bits,
            i128::from(tokens) - self.unit(),
        )
    }

    /// Stores `credit` (ticks, after the request) as of tick `at`, re-stamped at `at`'s unit.
    #[inline]
    fn encode(self, at: u64, credit: i128) -> u64 {
        let stamp = at >> self.unit_bits;
        let into_unit = i128::from(at) - (i128::from(stamp) << self.unit_bits);
        // credit in [0, C] and into_unit in [0, G): the field value is in (0, C + G] < 2G.
        let field = credit - into_unit + self.unit();
        (stamp << (self.unit_bits + 1)) | field as u64
    }

    /// Credit at tick `t`: never above the capacity; may be below zero for a stale `t`.
    #[inline]
    fn credit_at(self, epoch: i128, credit_at_epoch: i128, t: u64) -> i128 {
        (credit_at_epoch + (i128::from(t) - epoch)).min(i128::from(self.capacity))
    }
}

impl Algorithm for TokenBucket {
    const NAME: &'static str = "token-bucket";

    fn initial(quota: &Quota) -> u64 {
        let layout = Layout::of(quota);
        layout.encode(0, i128::from(layout.capacity))
    }

    #[inline]
    fn check(
        state: u64,
        now: u64,
        cost: u64,
        quota: &Quota,
    ) -> Result<Transition, InsufficientCapacity> {
        let need = cost_in_ticks(cost, quota)?;
        let layout = Layout::of(quota);
        let t = quota.scale().ticks_at(now);
        let (epoch, credit_at_epoch) = layout.decode(state);
        let credit = layout.credit_at(epoch, credit_at_epoch, t);
        if need == 0 || credit < i128::from(need) {
            return Ok(Transition {
                decision: judge(layout, epoch, credit_at_epoch, credit, now, need, quota),
                next: None,
            });
        }
        let left = credit - i128::from(need);
        let next = if i128::from(t) >= epoch {
            layout.encode(t, left)
        } else {
            // A stale time: charge the credit held at the epoch, keep the stamp.
            layout.encode(epoch as u64, credit_at_epoch - i128::from(need))
        };
        let full_tick = to_tick(i128::from(t) + (i128::from(layout.capacity) - left));
        let decision = Decision::new(
            true,
            quota.burst(),
            quota.scale(),
            now,
            left as u64,
            0,
            full_tick,
        );
        Ok(Transition {
            decision,
            next: Some(next),
        })
    }

    #[inline]
    fn peek(
        state: u64,
        now: u64,
        cost: u64,
        quota: &Quota,
    ) -> Result<Decision, InsufficientCapacity> {
        let need = cost_in_ticks(cost, quota)?;
        let layout = Layout::of(quota);
        let t = quota.scale().ticks_at(now);
        let (epoch, credit_at_epoch) = layout.decode(state);
        let credit = layout.credit_at(epoch, credit_at_epoch, t);
        Ok(judge(
            layout,
            epoch,
            credit_at_epoch,
            credit,
            now,
            need,
            quota,
        ))
    }

    /// Full iff the credit at `now` has reached the capacity.
    #[inline]
    fn is_full(state: u64, now: u64, quota: &Quota) -> bool {
        let layout = Layout::of(quota);
        let (epoch, credit_at_epoch) = layout.decode(state);
        let t = quota.scale().ticks_at(now);
        layout.credit_at(epoch, credit_at_epoch, t) >= i128::from(layout.capacity)
    }
}

/// The decision for `need` ticks with `credit` in hand, without changing the state.
#[inline]
fn judge(
    layout: Layout,
    epoch: i128,
    credit_at_epoch: i128,
    credit: i128,
    now: u64,
    need: u64,
    quota: &Quota,
) -> Decision {
    // A stale time can leave the credit below zero: nothing is available then.
    let available = credit.max(0) as u64;
    let allowed = need <= available;
    // The credit reaches `x` ticks at epoch + x - credit_at_epoch (capacity permitting).
    let retry_tick = if allowed {
        0
    } else {
        to_tick(epoch + i128::from(need) - credit_at_epoch)
    };
    let full_tick = to_tick(epoch + i128::from(layout.capacity) - credit_at_epoch);
    Decision::new(
        allowed,
        quota.burst(),
        quota.scale(),
        now,
        available,
        retry_tick,
        full_tick,
    )
}

/// A tick as `u64`, saturating (only out-of-range for states no algorithm writes).
#[inline]
fn to_tick(tick: i128) -> u64 {
    tick.clamp(0, i128::from(u64::MAX)) as u64
}
