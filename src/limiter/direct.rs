//! One bucket shared by every caller: a cache-padded cell, a quota and a clock.

use core::marker::PhantomData;

use crossbeam_utils::CachePadded;

use crate::algorithm::{Algorithm, Gcra, TokenBucket};
use crate::cell::Cell;
use crate::clock::{Clock, DefaultClock};
use crate::decision::Decision;
use crate::error::InsufficientCapacity;
use crate::quota::Quota;

/// A single rate limit shared by all callers (one bucket), safe to use from many threads.
///
/// Generic over the algorithm ([`Gcra`] or [`TokenBucket`], which decide identically) and the
/// clock ([`DefaultClock`], or a [`ManualClock`](crate::ManualClock) in tests).
///
/// ```
/// use nanolimit::{DirectLimiter, ManualClock, Quota};
/// use std::time::Duration;
///
/// let clock = ManualClock::default();
/// let limiter = DirectLimiter::gcra_with_clock(Quota::per_second(50)?.with_burst(5)?, clock.clone());
/// let admitted = (0..100).filter(|_| limiter.check().is_allowed()).count();
/// assert_eq!(admitted, 5); // the burst
/// clock.advance(Duration::from_millis(40)); // two emission intervals of 20 ms
/// assert_eq!(limiter.peek().remaining(), 2);
/// # Ok::<(), nanolimit::QuotaError>(())
/// ```
#[derive(Debug)]
pub struct DirectLimiter<A: Algorithm = Gcra, C: Clock = DefaultClock> {
    // Padded: every check writes this word, so it gets a cache line of its own and does not
    // slow down whatever the allocator puts next to the limiter.
    cell: CachePadded<Cell>,
    quota: Quota,
    clock: C,
    algorithm: PhantomData<A>,
}

impl DirectLimiter<Gcra, DefaultClock> {
    /// A GCRA limiter on the default clock.
    pub fn gcra(quota: Quota) -> Self {
        Self::with_clock(quota, DefaultClock::default())
    }
}

impl DirectLimiter<TokenBucket, DefaultClock> {
    /// A token-bucket limiter on the default clock.
    pub fn token_bucket(quota: Quota) -> Self {
        Self::with_clock(quota, DefaultClock::default())
    }
}

impl<C: Clock> DirectLimiter<Gcra, C> {
    /// A GCRA limiter on `clock`.
    pub fn gcra_with_clock(quota: Quota, clock: C) -> Self {
        Self::with_clock(quota, clock)
    }
}

impl<C: Clock> DirectLimiter<TokenBucket, C> {
    /// A token-bucket limiter on `clock`.
    pub fn token_bucket_with_clock(quota: Quota, clock: C) -> Self {
        Self::with_clock(quota, clock)
    }
}

impl<A: Algorithm, C: Clock> DirectLimiter<A, C> {
    /// A limiter with algorithm `A` on `clock`, starting with a full bucket.
    pub fn with_clock(quota: Quota, clock: C) -> Self {
        Self {
            cell: CachePadded::new(Cell::new(A::initial(&quota))),
            quota,
            clock,
            algorithm: PhantomData,
        }
    }

    /// One request of cost 1: admitted (and consumed) or denied (nothing changes).
    #[inline]
    pub fn check(&self) -> Decision {
        match self.check_n(1) {
            Ok(decision) => decision,
            // A quota's burst is at least 1, so a cost of 1 always fits.
            Err(_) => unreachable!("burst >= 1"),
        }
    }

    /// A request of cost `n`, all or nothing. `n > burst` can never succeed: that is an
    /// [`InsufficientCapacity`] error, not a denial, and changes nothing.
    ///
    /// ```
    /// # use nanolimit::{DirectLimiter, ManualClock, Quota};
    /// let limiter = DirectLimiter::gcra_with_clock(Quota::per_second(10)?, ManualClock::default());
    /// assert!(limiter.check_n(10).unwrap().is_allowed());
    /// assert!(limiter.check_n(1).unwrap().is_denied());
    /// assert!(limiter.check_n(11).is_err());
    /// # Ok::<(), nanolimit::QuotaError>(())
    /// ```
    #[inline]
    pub fn check_n(&self, n: u64) -> Result<Decision, InsufficientCapacity> {
        self.cell.check::<A>(&self.quota, n, || self.clock.now())
    }

    /// What `check()` would decide now, without consuming anything. `remaining()` is what is
    /// available now.
    pub fn peek(&self) -> Decision {
        match self.peek_n(1) {
            Ok(decision) => decision,
            Err(_) => unreachable!("burst >= 1"),
        }
    }

    /// What `check_n(n)` would decide now, without consuming anything.
    pub fn peek_n(&self, n: u64) -> Result<Decision, InsufficientCapacity> {
        self.cell.peek::<A>(&self.quota, n, || self.clock.now())
    }

    /// The quota this limiter enforces.
    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// The clock this limiter reads.
    pub fn clock(&self) -> &C {
        &self.clock
    }
}
