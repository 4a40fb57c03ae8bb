//! GCRA, the generic cell rate algorithm (leaky bucket as a meter).
//!
//! State: the theoretical arrival time `TAT`, in ticks: the moment the bucket will be full
//! again. A new bucket has `TAT = 0` (full at any time). With capacity `C = burst * D` ticks,
//! a request of `n` tokens (`n * D` ticks) at tick `t` is admitted iff
//! `max(TAT, t) + n * D - t <= C`, and then `TAT' = max(TAT, t) + n * D`.
//!
//! Valid states stay below 2^63: `t < 2^62` and `TAT' - t <= C <= 2^61`.

use super::{capacity_in_ticks, cost_in_ticks, Algorithm, Transition};
use crate::decision::Decision;
use crate::error::InsufficientCapacity;
use crate::quota::Quota;

/// GCRA: the state is one theoretical arrival time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Gcra;

impl Algorithm for Gcra {
    const NAME: &'static str = "gcra";

    fn initial(_quota: &Quota) -> u64 {
        0
    }

    #[inline]
    fn check(
        tat: u64,
        now: u64,
        cost: u64,
        quota: &Quota,
    ) -> Result<Transition, InsufficientCapacity> {
        let need = cost_in_ticks(cost, quota)?;
        let capacity = capacity_in_ticks(quota);
        let t = quota.scale().ticks_at(now);
        // Ticks until the bucket is full: the credit already spent.
        let debt = tat.saturating_sub(t);
        if need == 0 || debt.saturating_add(need) > capacity {
            return Ok(Transition {
                decision: judge(tat, t, now, need, quota),
                next: None,
            });
        }
        // Admitted: debt + need <= capacity, so this stays below t + capacity < 2^63.
        let next = tat.max(t) + need;
        let decision = Decision::new(
            true,
            quota.burst(),
            quota.scale(),
            now,
            capacity - (next - t),
            0,
            next,
        );
        Ok(Transition {
            decision,
            next: Some(next),
        })
    }

    #[inline]
    fn peek(
        tat: u64,
        now: u64,
        cost: u64,
        quota: &Quota,
    ) -> Result<Decision, InsufficientCapacity> {
        let need = cost_in_ticks(cost, quota)?;
        Ok(judge(tat, quota.scale().ticks_at(now), now, need, quota))
    }

    /// Full iff no credit is spent: `TAT <= t`.
    #[inline]
    fn is_full(tat: u64, now: u64, quota: &Quota) -> bool {
        tat <= quota.scale().ticks_at(now)
    }
}

/// The decision for `need` ticks at tick `t` without changing the state.
#[inline]
fn judge(tat: u64, t: u64, now: u64, need: u64, quota: &Quota) -> Decision {
    let capacity = capacity_in_ticks(quota);
    let available = capacity.saturating_sub(tat.saturating_sub(t));
    let allowed = need <= available;
    // Denied means tat - t > capacity - need, so tat > capacity - need: no underflow.
    let retry_tick = if allowed { 0 } else { tat - (capacity - need) };
    Decision::new(
        allowed,
        quota.burst(),
        quota.scale(),
        now,
        available,
        retry_tick,
        tat,
    )
}
