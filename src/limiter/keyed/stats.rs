//! Counters cheap enough to keep on, and the sweep schedule.
//!
//! Nothing here is on the hot path of an existing key: the counters change when a key is
//! inserted or removed, when a new key meets a full limiter, and once per sweep.

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicU64, Ordering};

/// A snapshot of a keyed limiter's counters ([`KeyedLimiter::stats`](crate::KeyedLimiter::stats)).
///
/// Each field is read separately (relaxed), so a snapshot taken while other threads work is
/// only approximately consistent across fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyedStats {
    /// Keys tracked now (entries in the map).
    pub keys: usize,
    /// Idle keys removed by sweeps, since creation.
    pub evicted: u64,
    /// Keys removed explicitly ([`remove`](crate::KeyedLimiter::remove)), since creation.
    pub removed: u64,
    /// New keys refused because the limiter was full (policy
    /// [`Refuse`](crate::CapacityPolicy::Refuse)), since creation.
    pub refused_at_capacity: u64,
    /// New keys served without being tracked because the limiter was full (policy
    /// [`Untracked`](crate::CapacityPolicy::Untracked)), since creation.
    pub untracked_at_capacity: u64,
    /// Sweeps run (explicit, amortized, reclaiming or by a sweeper thread), since creation.
    pub sweeps: u64,
}

/// `last_sweep_ns` before the first sweep.
const NEVER: u64 = u64::MAX;

/// The live counters behind [`KeyedStats`], plus the sweep schedule.
#[derive(Debug)]
pub(super) struct Counters {
    /// Entries in the map plus insertions in flight: what `max_keys` bounds. Padded: every
    /// insertion and removal, on any thread, writes it.
    pub(super) occupancy: CachePadded<AtomicU64>,
    /// Padded apart from `occupancy`: under a flood at capacity every refusal writes here.
    pub(super) at_capacity: CachePadded<AtCapacityCounters>,
    pub(super) evicted: AtomicU64,
    pub(super) removed: AtomicU64,
    pub(super) sweeps: AtomicU64,
    /// The occupancy at which the next amortized sweep is due.
    pub(super) next_sweep_at: AtomicU64,
    /// The clock's time at the start of the last sweep, or `NEVER`.
    pub(super) last_sweep_ns: AtomicU64,
    /// `at_capacity.total()` when the last sweep ended.
    pub(super) at_capacity_at_last_sweep: AtomicU64,
    /// 1 while an automatic sweep runs: they take turns, and others never wait for one.
    pub(super) sweeping: AtomicU64,
}

#[derive(Debug)]
pub(super) struct AtCapacityCounters {
    pub(super) refused: AtomicU64,
    pub(super) untracked: AtomicU64,
}

impl AtCapacityCounters {
    fn total(&self) -> u64 {
        // Relaxed: statistics; no other data is published with them.
        let refused = self.refused.load(Ordering::Relaxed);
        // Relaxed: as above.
        refused.wrapping_add(self.untracked.load(Ordering::Relaxed))
    }
}

impl Counters {
    pub(super) fn new(first_sweep_at: u64) -> Self {
        Self {
            occupancy: CachePadded::new(AtomicU64::new(0)),
            at_capacity: CachePadded::new(AtCapacityCounters {
                refused: AtomicU64::new(0),
                untracked: AtomicU64::new(0),
            }),
            evicted: AtomicU64::new(0),
            removed: AtomicU64::new(0),
            sweeps: AtomicU64::new(0),
            next_sweep_at: AtomicU64::new(first_sweep_at),
            last_sweep_ns: AtomicU64::new(NEVER),
            at_capacity_at_last_sweep: AtomicU64::new(0),
            sweeping: AtomicU64::new(0),
        }
    }

    /// Claims a slot below `max` (or any slot when `max` is `u64::MAX`).
    #[inline]
    pub(super) fn reserve(&self, max: u64) -> bool {
        if max == u64::MAX {
            // Relaxed: a count; the map publishes the entry itself.
            self.occupancy.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        // Relaxed: as above; the CAS makes the bound exact, with no ordering needed.
        let mut current = self.occupancy.load(Ordering::Relaxed);
        loop {
            if current >= max {
                return false;
            }
            // Relaxed: as above.
            match self.occupancy.compare_exchange_weak(
                current,
                current + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    /// Gives back a slot (an entry removed, or an insertion that found the key present).
    #[inline]
    pub(super) fn release(&self, slots: u64) {
        if slots > 0 {
            // Relaxed: a count, as in `reserve`.
            self.occupancy.fetch_sub(slots, Ordering::Relaxed);
        }
    }

    pub(super) fn occupancy(&self) -> u64 {
        // Relaxed: a count, as in `reserve`.
        self.occupancy.load(Ordering::Relaxed)
    }

    /// An amortized sweep is due once the occupancy reaches the mark set by the last sweep.
    #[inline]
    pub(super) fn growth_sweep_due(&self) -> bool {
        // Relaxed: a heuristic threshold; a stale value only moves one sweep a little.
        self.occupancy() >= self.next_sweep_at.load(Ordering::Relaxed)
    }

    /// At capacity, a reclaiming sweep is due if none ran for `interval_ns`, or if at least
    /// `refusals` new keys met the full limiter since the last one.
    pub(super) fn reclaim_due(&self, now: u64, interval_ns: u64, refusals: u64) -> bool {
        // Relaxed: heuristics, as in `growth_sweep_due`.
        let last = self.last_sweep_ns.load(Ordering::Relaxed);
        if last == NEVER || now.saturating_sub(last) >= interval_ns {
            return true;
        }
        // Relaxed: as above.
        let since = self.at_capacity_at_last_sweep.load(Ordering::Relaxed);
        self.at_capacity.total().wrapping_sub(since) >= refusals
    }

    /// Takes the automatic sweep's turn, if free.
    pub(super) fn try_begin_sweep(&self) -> Option<SweepTurn<'_>> {
        // Acquire: pairs with the Release that ended the previous automatic turn, so automatic
        // sweeps never overlap. Explicit sweeps (`evict_idle`, the sweeper thread) do not take
        // the turn and may run beside one; the bookkeeping they all write is heuristic and
        // relaxed. Failure, Relaxed: someone else is sweeping; we move on.
        self.sweeping
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| SweepTurn { counters: self })
    }

    /// Bookkeeping at the end of any sweep that started at `now` and retired `evicted` keys.
    pub(super) fn sweep_done(&self, now: u64, evicted: u64, growth_floor: u64) {
        let left = self.occupancy();
        // Relaxed (all below): statistics and heuristics, each a value on its own.
        self.evicted.fetch_add(evicted, Ordering::Relaxed);
        self.sweeps.fetch_add(1, Ordering::Relaxed);
        self.next_sweep_at.store(
            left.saturating_add(left.max(growth_floor)),
            Ordering::Relaxed,
        );
        self.last_sweep_ns.store(now, Ordering::Relaxed);
        self.at_capacity_at_last_sweep
            .store(self.at_capacity.total(), Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self, keys: usize) -> KeyedStats {
        // Relaxed (all below): statistics.
        KeyedStats {
            keys,
            evicted: self.evicted.load(Ordering::Relaxed),
            removed: self.removed.load(Ordering::Relaxed),
            refused_at_capacity: self.at_capacity.refused.load(Ordering::Relaxed),
            untracked_at_capacity: self.at_capacity.untracked.load(Ordering::Relaxed),
            sweeps: self.sweeps.load(Ordering::Relaxed),
        }
    }
}

/// The automatic sweep's turn; handed back on drop (even if the sweep panicked).
pub(super) struct SweepTurn<'a> {
    counters: &'a Counters,
}

impl Drop for SweepTurn<'_> {
    fn drop(&mut self) {
        // Release: pairs with the Acquire in `try_begin_sweep`.
        self.counters.sweeping.store(0, Ordering::Release);
    }
}
