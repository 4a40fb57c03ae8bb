//! The algorithms: pure transitions on a `u64` state.
//!
//! An algorithm is a function `(state, now, cost, quota) -> (new state, decision)`: no atomics,
//! no clock, no allocation. The cell applies it with a compare-and-swap loop; the tests hold it
//! against an exact model; a Redis script can port it line by line.
//!
//! Both algorithms implement the same model, in ticks (see [`Quota::resolution`]):
//! a bucket of `burst` tokens that refills one token per emission interval `T`, starts full, and
//! admits a request of cost `n` iff it holds `n` tokens. They differ only in how the state is
//! written down, and they decide identically for every quota and every sequence of requests.
//!
//! Shared rules:
//! - `cost > burst` is [`InsufficientCapacity`]: it could never succeed. State unchanged.
//! - `cost == 0` is allowed and changes nothing.
//! - A denial, an error or a peek returns no new state.
//! - Time is never credited backwards: a `now` earlier than the state's time gains nothing,
//!   and a new state is never stamped earlier than the one it replaces. A stale `now` is judged
//!   at its own time against the current state (see `docs/design.md`, "Stale time").
//! - Every valid state is below 2^63; the top bit is reserved for the containers.
//! - Any `u64` state and any `now` are accepted: arithmetic saturates and never wraps.

use crate::decision::Decision;
use crate::error::InsufficientCapacity;
use crate::quota::Quota;

pub mod gcra;
pub mod token_bucket;

pub use gcra::Gcra;
pub use token_bucket::TokenBucket;

/// The result of applying an algorithm to a state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// What to tell the caller.
    pub decision: Decision,
    /// The state to store, or `None` when nothing changes (denials, zero cost).
    pub next: Option<u64>,
}

/// A rate-limiting algorithm over a packed `u64` state.
pub trait Algorithm: Copy + Default + core::fmt::Debug + Send + Sync + 'static {
    /// A short name, as used in configuration: `"gcra"` or `"token-bucket"`.
    const NAME: &'static str;

    /// The state of a bucket that has never been used: full.
    fn initial(quota: &Quota) -> u64;

    /// A request of `cost` units at `now` (nanoseconds since the clock's origin).
    fn check(
        state: u64,
        now: u64,
        cost: u64,
        quota: &Quota,
    ) -> Result<Transition, InsufficientCapacity>;

    /// What [`check`](Self::check) would decide, without consuming anything.
    fn peek(
        state: u64,
        now: u64,
        cost: u64,
        quota: &Quota,
    ) -> Result<Decision, InsufficientCapacity>;

    /// Whether the bucket holds its whole burst at `now`. A full bucket decides, at `now` and
    /// at every later time, exactly as a new one ([`initial`](Self::initial)) would: this is
    /// what lets the keyed limiter forget an idle key. Full at `now` implies full at any later
    /// time; a `now` older than the state's last admission never finds it full, so a stale
    /// `now` errs on the side of keeping the key.
    ///
    /// The default asks [`peek`](Self::peek) whether the whole burst would be admitted.
    #[inline]
    fn is_full(state: u64, now: u64, quota: &Quota) -> bool {
        Self::peek(state, now, quota.burst(), quota).is_ok_and(|decision| decision.is_allowed())
    }
}

/// `cost` in ticks, or the error if it exceeds the burst. Cannot overflow: `burst * D <= 2^61`.
#[inline]
pub(crate) fn cost_in_ticks(cost: u64, quota: &Quota) -> Result<u64, InsufficientCapacity> {
    if cost > quota.burst() {
        return Err(InsufficientCapacity {
            cost,
            burst: quota.burst(),
        });
    }
    Ok(cost * quota.scale().ticks_per_token)
}

/// The bucket capacity in ticks.
#[inline]
pub(crate) fn capacity_in_ticks(quota: &Quota) -> u64 {
    quota.burst() * quota.scale().ticks_per_token
}
