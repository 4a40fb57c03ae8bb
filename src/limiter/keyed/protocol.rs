//! The eviction protocol: how a cell leaves a map without losing a concurrent admission.
//!
//! A key whose bucket is full decides exactly as a key never seen, so its cell can be dropped.
//! The danger is a checker that found the cell just before it was dropped: if its admission
//! lands on a cell that is no longer in the map, the admission is forgotten and the key gets a
//! fresh, full bucket on its next request. The protocol closes that window with one reserved
//! state, [`RETIRED`], written into the cell's own word:
//!
//! - **Sweeper** ([`retire_if_idle`]): loads the state, tests it full at a `now` read *before*
//!   the load, and CASes it from that exact value to `RETIRED`. Only then does it unmap the cell.
//! - **Checker** ([`check`]): the usual load / decide / CAS loop, except that a state of
//!   `RETIRED` (seen by the load or returned by a failed CAS) ends the loop without deciding.
//!   [`check_slot`] then unmaps that retired cell if it is still mapped (by identity) and starts
//!   over on the key's current cell, inserting a new full one if there is none.
//!
//! Why nothing is lost: every admission is a successful CAS on the word, and both sides CAS on
//! the same word. If an admission is ordered before the retiring CAS, the retiring CAS fails
//! (the word changed) and the key is kept. If it would be ordered after, it would have to CAS
//! from `RETIRED`, which no checker ever does. So a retired cell carries no admission its
//! sweeper did not see, and what it saw was a full bucket: the fresh cell that replaces it is
//! the same state. `RETIRED` is terminal: nothing is ever written over it.
//!
//! Time: the retiring CAS is `Release` and checkers load with `Acquire`, so a checker that sees
//! `RETIRED` reads its clock (for the fresh cell) after the sweeper read its own: on a clock
//! that is monotonic across threads, the fresh cell is never judged at a time before the one
//! at which the old cell was found full. A checker that instead misses the key altogether
//! (already unmapped) is ordered after the removal by the map (papaya: a read happens-after
//! the write it observes), and so after the retiring CAS too.
//!
//! This module is the protocol and nothing else, so that the loom models
//! (`tests/loom_keyed.rs`) run this very code over a small stand-in map: it is public only
//! under `--cfg nanolimit_loom`.

use core::ops::Deref;

use crate::algorithm::Algorithm;
use crate::cell::Cell;
use crate::decision::Decision;
use crate::error::InsufficientCapacity;
use crate::quota::Quota;
use crate::sync::Ordering;

/// The state of a retired cell. Every state an algorithm writes is below 2^63 (the top bit is
/// reserved for containers), so no admission can produce it; once written it never changes.
pub const RETIRED: u64 = u64::MAX;

/// The checker's side on one cell: [`Cell::check`], except that a retired cell is reported as
/// `None` instead of being judged. `now` is called after each load of the state, once per
/// attempt, as in `Cell::check`.
#[inline]
pub fn check<A: Algorithm>(
    cell: &Cell,
    quota: &Quota,
    cost: u64,
    mut now: impl FnMut() -> u64,
) -> Option<Result<Decision, InsufficientCapacity>> {
    let word = cell.word();
    // Acquire: pairs with the Release of the CAS that wrote this state (an admission or the
    // retiring CAS), so the clock read below happens after the writer's clock read.
    let mut current = word.load(Ordering::Acquire);
    loop {
        if current == RETIRED {
            return None;
        }
        let transition = match A::check(current, now(), cost, quota) {
            Ok(transition) => transition,
            Err(error) => return Some(Err(error)),
        };
        let Some(next) = transition.next else {
            return Some(Ok(transition.decision));
        };
        debug_assert!(next < RETIRED >> 1, "algorithms write states below 2^63");
        // Success, Release: publishes this state and its time to the next Acquire load.
        // Failure, Acquire: as for the first load; retry on what we saw, which may be RETIRED.
        match word.compare_exchange_weak(current, next, Ordering::Release, Ordering::Acquire) {
            Ok(_) => return Some(Ok(transition.decision)),
            Err(actual) => current = actual,
        }
    }
}

/// The sweeper's side on one cell: retires it iff its bucket is full at `now`. Returns whether
/// this call retired it. `now` must have been read before this call, so that it happens
/// before the retiring CAS (see the module docs, "Time"). A stale `now` only keeps more keys.
#[inline]
pub fn retire_if_idle<A: Algorithm>(cell: &Cell, quota: &Quota, now: u64) -> bool {
    let word = cell.word();
    // Relaxed: the value is all we use, and the CAS below only succeeds if the word still
    // holds it; no other data is read on the strength of this load.
    let current = word.load(Ordering::Relaxed);
    if current == RETIRED || !A::is_full(current, now, quota) {
        return false;
    }
    // Success, Release: pairs with the checkers' Acquire loads, so one that sees RETIRED reads
    // its clock after our `now`. Failure, Relaxed: an admission (or another sweeper) got in
    // first, and the key is simply kept.
    word.compare_exchange(current, RETIRED, Ordering::Release, Ordering::Relaxed)
        .is_ok()
}

/// Retires a cell whatever its state (an explicit removal: the key is reset). Returns `false`
/// if it was already retired. Admissions ordered before this swap are forgotten with the key,
/// as asked; any later attempt sees `RETIRED` and moves to the key's next cell.
#[inline]
pub fn retire(cell: &Cell) -> bool {
    // Release: a removal reads no clock, so there is no time to publish; kept so that a
    // checker's Acquire of RETIRED is ordered after everything the remover did before (cheap:
    // the swap is a locked read-modify-write either way on x86).
    cell.word().swap(RETIRED, Ordering::Release) != RETIRED
}

/// Whether the cell has been retired.
#[cfg(any(test, nanolimit_loom))]
pub fn is_retired(cell: &Cell) -> bool {
    // Relaxed: a snapshot for a yes/no answer; RETIRED is terminal, so `true` stays true.
    cell.word().load(Ordering::Relaxed) == RETIRED
}

/// One key's view of a map of cells: what the protocol needs to look a key up and to unmap a
/// retired cell.
///
/// The keyed limiter implements it on papaya; the loom models on a small stand-in map (an
/// atomic index into a few cells).
pub trait Slot {
    /// A reference to a mapped cell (kept alive by the map's guard, or counted).
    type Handle: Deref<Target = Cell>;

    /// The key's current cell, if it has one.
    fn find(&self) -> Option<Self::Handle>;

    /// Unmaps `retired` if it is still the key's cell, compared by identity (never by key
    /// alone: a fresh cell inserted since must stay). Called only on retired cells.
    fn discard(&self, retired: &Self::Handle);
}

/// A [`Slot`] that can also create the key's cell (the checker's side needs this; the
/// sweeper's does not).
pub trait InsertSlot: Slot {
    /// Why no cell could be created for the key (the limiter's capacity bound).
    type Refused;

    /// Maps a new full cell ([`Algorithm::initial`]) to the key unless it already has one, and
    /// returns the key's cell either way.
    fn insert(&self) -> Result<Self::Handle, Self::Refused>;
}

/// The checker's side on a map: find (or insert) the key's cell and check it; on a retired
/// cell, discard it and start over. Terminates unless sweepers retire every fresh cell before
/// its first check, forever.
#[inline]
pub fn check_slot<A: Algorithm, S: InsertSlot>(
    slot: &S,
    quota: &Quota,
    cost: u64,
    mut now: impl FnMut() -> u64,
) -> Result<Result<Decision, InsufficientCapacity>, S::Refused> {
    let mut found = slot.find();
    loop {
        let cell = match found {
            Some(cell) => cell,
            None => slot.insert()?,
        };
        match check::<A>(&cell, quota, cost, &mut now) {
            Some(result) => return Ok(result),
            None => {
                slot.discard(&cell);
                found = slot.find();
            }
        }
    }
}

/// A non-consuming look at a key: its cell's verdict, or a new full bucket's if it has no
/// live cell (a retired cell was full). Never inserts.
#[inline]
pub fn peek_slot<A: Algorithm, S: Slot>(
    slot: &S,
    quota: &Quota,
    cost: u64,
    now: impl FnOnce() -> u64,
) -> Result<Decision, InsufficientCapacity> {
    let state = slot
        .find()
        // Acquire: as in `check`; the clock is read after this load.
        .map(|cell| cell.word().load(Ordering::Acquire))
        .filter(|&state| state != RETIRED)
        .unwrap_or_else(|| A::initial(quota));
    A::peek(state, now(), cost, quota)
}

/// The sweeper's step for one mapped cell: retire it if idle at `now`, then unmap it.
/// Returns whether this call retired it.
#[inline]
pub fn evict<A: Algorithm, S: Slot>(slot: &S, cell: &S::Handle, quota: &Quota, now: u64) -> bool {
    if !retire_if_idle::<A>(cell, quota, now) {
        return false;
    }
    slot.discard(cell);
    true
}

/// An explicit removal: retire the key's cell whatever its state, then unmap it. Returns
/// whether the key had a live cell.
#[inline]
pub fn remove<S: Slot>(slot: &S) -> bool {
    let Some(cell) = slot.find() else {
        return false;
    };
    let was_live = retire(&cell);
    slot.discard(&cell);
    was_live
}

#[cfg(all(test, not(nanolimit_loom)))]
mod tests {
    use super::*;
    use crate::algorithm::{Gcra, TokenBucket};
    use core::time::Duration;

    /// The algorithms' fast `is_full` agrees with its definition (the whole burst would be
    /// admitted), along a walk of checks at varied times, including stale ones.
    fn is_full_matches_its_definition<A: Algorithm>() {
        for (rate, period_ns, burst) in [(3, 1_000_000_000, 3), (1, 1_000, 5), (7, 60, 2)] {
            let quota = Quota::new(rate, Duration::from_nanos(period_ns))
                .and_then(|q| q.with_burst(burst))
                .unwrap();
            let mut state = A::initial(&quota);
            let mut now = 0u64;
            let mut seed = 0x1234_5678_u64;
            for _ in 0..2_000 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                // Mostly forwards, sometimes backwards (a stale time).
                now = if seed.is_multiple_of(7) {
                    now.saturating_sub(seed % period_ns)
                } else {
                    now + seed % (period_ns / 2 + 1)
                };
                for t in [now, now + 1, now.saturating_sub(1)] {
                    let full = A::peek(state, t, burst, &quota).unwrap().is_allowed();
                    assert_eq!(A::is_full(state, t, &quota), full, "{} at {t}", A::NAME);
                }
                let cost = 1 + seed % burst;
                if let Some(next) = A::check(state, now, cost, &quota).unwrap().next {
                    state = next;
                }
            }
        }
    }

    #[test]
    fn gcra_is_full_matches_its_definition() {
        is_full_matches_its_definition::<Gcra>();
    }

    #[test]
    fn token_bucket_is_full_matches_its_definition() {
        is_full_matches_its_definition::<TokenBucket>();
    }

    #[test]
    fn a_retired_cell_is_never_judged_and_stays_retired() {
        let quota = Quota::per_second(2).unwrap();
        let cell = Cell::new(Gcra::initial(&quota));
        assert!(retire_if_idle::<Gcra>(&cell, &quota, 0));
        assert!(is_retired(&cell));
        assert!(check::<Gcra>(&cell, &quota, 1, || 0).is_none());
        assert!(!retire_if_idle::<Gcra>(&cell, &quota, u64::MAX));
        assert!(!retire(&cell));
        // A busy cell is not retired by a sweep.
        let busy = Cell::new(Gcra::initial(&quota));
        assert!(check::<Gcra>(&busy, &quota, 1, || 5)
            .unwrap()
            .unwrap()
            .is_allowed());
        assert!(!retire_if_idle::<Gcra>(&busy, &quota, 5));
        assert!(retire_if_idle::<Gcra>(&busy, &quota, 5 + 500_000_000));
    }
}
