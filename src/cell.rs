//! One `AtomicU64` and the compare-and-swap loop that applies an algorithm to it.
//!
//! This is the only place where state is shared between threads. Uncontended, a check is one
//! load, one clock read and one successful CAS; a denial stores nothing.

use crate::algorithm::Algorithm;
use crate::decision::Decision;
use crate::error::InsufficientCapacity;
use crate::quota::Quota;
use crate::sync::{AtomicU64, Ordering};

/// A packed rate-limit state that many threads update in place.
#[derive(Debug)]
pub struct Cell {
    state: AtomicU64,
}

impl Cell {
    /// A cell holding `state` (for a new bucket, [`Algorithm::initial`]).
    pub fn new(state: u64) -> Self {
        Self {
            state: AtomicU64::new(state),
        }
    }

    /// Applies a request of `cost` with algorithm `A`. `now` is called after each load of the
    /// state, once per attempt, so that the time judged is never older than the time the
    /// state was written with (for a clock that is monotonic across threads).
    #[inline]
    pub fn check<A: Algorithm>(
        &self,
        quota: &Quota,
        cost: u64,
        mut now: impl FnMut() -> u64,
    ) -> Result<Decision, InsufficientCapacity> {
        // Acquire: pairs with the Release of the CAS that wrote this state, so the clock read
        // below happens after the writer's clock read. That orders clocks read through memory
        // (ManualClock, CoarseClock); a TSC read is not ordered with loads, so a stale time of
        // a few nanoseconds stays possible there, which only errs towards denial.
        let mut current = self.state.load(Ordering::Acquire);
        loop {
            let transition = A::check(current, now(), cost, quota)?;
            let Some(next) = transition.next else {
                return Ok(transition.decision);
            };
            // Success, Release: publishes this state (and the time it was judged at) to the
            // next Acquire load. Failure, Acquire: as for the first load; retry on what we saw.
            match self.state.compare_exchange_weak(
                current,
                next,
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(transition.decision),
                Err(actual) => current = actual,
            }
        }
    }

    /// What [`check`](Self::check) would decide, without changing anything.
    #[inline]
    pub fn peek<A: Algorithm>(
        &self,
        quota: &Quota,
        cost: u64,
        now: impl FnOnce() -> u64,
    ) -> Result<Decision, InsufficientCapacity> {
        // Acquire: as in `check`.
        let current = self.state.load(Ordering::Acquire);
        A::peek(current, now(), cost, quota)
    }

    /// The raw state.
    pub fn load(&self) -> u64 {
        // Acquire: as in `check`.
        self.state.load(Ordering::Acquire)
    }

    /// The atomic word itself, for the keyed limiter's retirement protocol
    /// (`limiter/keyed/protocol.rs`), which adds a reserved state on top of `check`.
    pub(crate) fn word(&self) -> &AtomicU64 {
        &self.state
    }
}
