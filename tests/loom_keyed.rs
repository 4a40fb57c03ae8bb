//! Loom models of the keyed limiter's eviction protocol: checkers racing a sweeper on one key.
//!
//! Loom cannot see inside papaya, so the map is a stand-in: one key whose slot is a loom
//! atomic index into a few cells made up front (see `OneKey`). Everything else is the crate's own code: the checker's loop
//! (`protocol::check_slot`), the sweeper's step (`protocol::evict`, which retires by CAS and
//! then unmaps by identity), the same `Slot` trait the papaya-backed limiter implements.
//!
//! Each model asserts, for every execution loom explores:
//! - no admission is lost: after the threads finish, the key's live cell accounts for every
//!   admission made at the model's time (a final check at that time is denied when the
//!   admissions used the whole burst);
//! - nothing is admitted beyond the bound (`burst + elapsed / T`, exact with whole-ns `T`);
//! - an evicted key that comes back starts full;
//! - a checker that moves to a fresh cell reads a time no older than the one at which the old
//!   cell was found idle (the Release/Acquire pairing of the retiring CAS).
//!
//! Built only with `RUSTFLAGS="--cfg nanolimit_loom"`; run by `scripts/test.sh`:
//!
//! ```text
//! RUSTFLAGS="--cfg nanolimit_loom" LOOM_MAX_PREEMPTIONS=3 \
//!     cargo test --release -p nanolimit --test loom_keyed
//! ```
#![cfg(nanolimit_loom)]

use std::marker::PhantomData;
use std::time::Duration;

use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;
use nanolimit::protocol::{self, InsertSlot, Slot};
use nanolimit::{Algorithm, Cell, Gcra, Quota, TokenBucket};

/// Emission interval in nanoseconds: whole, so the bound is exact.
const T: u64 = 1_000;

fn quota(burst: u64) -> Quota {
    Quota::new(1, Duration::from_nanos(T))
        .and_then(|q| q.with_burst(burst))
        .expect("valid quota")
}

/// The stand-in map: one key, at most one cell.
///
/// Like papaya, lookups are plain Acquire loads that synchronize only with the writes they
/// observe (an insertion or a removal), never with other lookups: a mutex around lookups
/// would order a sweeper's lookup before a checker's and hide a missing Release in the
/// protocol. Writers (insert, discard) are serialized by a mutex, as papaya serializes
/// writers to one slot by CAS. Cells come from a small arena made up front; inserting one
/// publishes its index.
struct OneKey<A> {
    /// Index of the key's cell in `arena`, or `EMPTY`.
    slot: AtomicUsize,
    /// Serializes insert and discard; holds the next unused arena index.
    writers: Mutex<usize>,
    arena: Vec<Arc<Cell>>,
    quota: Quota,
    algorithm: PhantomData<A>,
}

const EMPTY: usize = usize::MAX;
/// More fresh cells than any model inserts.
const ARENA: usize = 4;

impl<A: Algorithm> OneKey<A> {
    fn new(quota: Quota, state: Option<u64>) -> Self {
        let arena: Vec<_> = (0..ARENA)
            .map(|i| {
                let initial = match (i, state) {
                    (0, Some(state)) => state,
                    _ => A::initial(&quota),
                };
                Arc::new(Cell::new(initial))
            })
            .collect();
        let (slot, next) = match state {
            Some(_) => (0, 1),
            None => (EMPTY, 0),
        };
        Self {
            slot: AtomicUsize::new(slot),
            writers: Mutex::new(next),
            arena,
            quota,
            algorithm: PhantomData,
        }
    }

    /// A checker: the real protocol loop, reading time from `now`.
    fn check(&self, cost: u64, now: impl FnMut() -> u64) -> bool {
        match protocol::check_slot::<A, _>(self, &self.quota, cost, now) {
            Ok(Ok(decision)) => decision.is_allowed(),
            Ok(Err(error)) => panic!("cost fits the burst: {error}"),
            Err(never) => match never {},
        }
    }

    /// The sweeper's step for this key (what `evict_idle` does for each entry).
    fn sweep(&self, now: u64) -> bool {
        match self.find() {
            Some(cell) => protocol::evict::<A, _>(self, &cell, &self.quota, now),
            None => false,
        }
    }

    /// After the threads: the key's cell is never a retired one left behind.
    fn assert_no_retired_cell_left(&self) {
        if let Some(cell) = self.find() {
            assert!(!protocol::is_retired(&cell), "a retired cell stayed mapped");
        }
    }
}

impl<A: Algorithm> Slot for OneKey<A> {
    type Handle = Arc<Cell>;

    fn find(&self) -> Option<Arc<Cell>> {
        // Acquire: pairs with the Release of the insert or discard that wrote the slot.
        let index = self.slot.load(Ordering::Acquire);
        (index != EMPTY).then(|| self.arena[index].clone())
    }

    fn discard(&self, retired: &Arc<Cell>) {
        let _writer = self.writers.lock().unwrap();
        // Relaxed: writers are serialized by the mutex.
        let index = self.slot.load(Ordering::Relaxed);
        if index != EMPTY && Arc::ptr_eq(&self.arena[index], retired) {
            // Release: a lookup that misses the key happens after this removal.
            self.slot.store(EMPTY, Ordering::Release);
        }
    }
}

impl<A: Algorithm> InsertSlot for OneKey<A> {
    type Refused = std::convert::Infallible;

    fn insert(&self) -> Result<Arc<Cell>, Self::Refused> {
        let mut next = self.writers.lock().unwrap();
        // Relaxed: writers are serialized by the mutex.
        let index = self.slot.load(Ordering::Relaxed);
        if index != EMPTY {
            return Ok(self.arena[index].clone());
        }
        let index = *next;
        assert!(
            index < ARENA,
            "the model inserted more cells than its arena holds"
        );
        *next += 1;
        // Release: publishes the new cell to lookups.
        self.slot.store(index, Ordering::Release);
        Ok(self.arena[index].clone())
    }
}

/// The state after one admission of `cost` at `time` on a full bucket.
fn used<A: Algorithm>(quota: &Quota, cost: u64, time: u64) -> u64 {
    let transition = A::check(A::initial(quota), time, cost, quota).unwrap();
    assert!(transition.decision.is_allowed());
    transition.next.unwrap()
}

/// A checker and a sweeper on a key that has just refilled (burst 1, used at 0, now `T`).
/// The checker is always admitted (the bucket is full either way) and its admission always
/// lands on the live cell: a final check at `T` is denied.
fn check_vs_evict<A: Algorithm>() {
    loom::model(|| {
        let quota = quota(1);
        let map = Arc::new(OneKey::<A>::new(quota, Some(used::<A>(&quota, 1, 0))));
        let checker = {
            let map = map.clone();
            thread::spawn(move || map.check(1, || T))
        };
        let sweeper = {
            let map = map.clone();
            thread::spawn(move || map.sweep(T))
        };
        assert!(checker.join().unwrap(), "a full bucket admits");
        let _evicted = sweeper.join().unwrap();
        map.assert_no_retired_cell_left();
        assert!(!map.check(1, || T), "the admission at T was lost");
    });
}

#[test]
fn check_vs_evict_loses_nothing_gcra() {
    check_vs_evict::<Gcra>();
}

#[test]
fn check_vs_evict_loses_nothing_token_bucket() {
    check_vs_evict::<TokenBucket>();
}

/// Two checkers and a sweeper on a key that is absent (or idle): exactly `burst` admissions
/// at one instant, however the inserts, retirements and retries interleave.
fn two_checkers_and_a_sweeper<A: Algorithm>(present: bool) {
    loom::model(move || {
        let quota = quota(1);
        let state = present.then(|| A::initial(&quota));
        let map = Arc::new(OneKey::<A>::new(quota, state));
        let checkers: Vec<_> = (0..2)
            .map(|_| {
                let map = map.clone();
                thread::spawn(move || map.check(1, || T))
            })
            .collect();
        let sweeper = {
            let map = map.clone();
            thread::spawn(move || map.sweep(T))
        };
        let admitted = checkers
            .into_iter()
            .map(|checker| checker.join().unwrap())
            .filter(|&admitted| admitted)
            .count();
        sweeper.join().unwrap();
        assert_eq!(admitted, 1, "burst 1 at one instant: exactly one admission");
        map.assert_no_retired_cell_left();
        assert!(!map.check(1, || T), "an admission was lost");
    });
}

#[test]
fn two_checkers_and_a_sweeper_on_an_absent_key_gcra() {
    two_checkers_and_a_sweeper::<Gcra>(false);
}

#[test]
fn two_checkers_and_a_sweeper_on_an_idle_key_token_bucket() {
    two_checkers_and_a_sweeper::<TokenBucket>(true);
}

/// A key evicted while a checker asks for the whole burst: the checker is admitted whether it
/// lands on the old cell or on the fresh one (an evicted key comes back full), and afterwards
/// the bucket is empty.
fn evicted_key_comes_back_full<A: Algorithm>() {
    loom::model(|| {
        let quota = quota(2);
        // Used at 0 (one of two tokens), full again at T.
        let map = Arc::new(OneKey::<A>::new(quota, Some(used::<A>(&quota, 1, 0))));
        let sweeper = {
            let map = map.clone();
            thread::spawn(move || map.sweep(T))
        };
        let checker = {
            let map = map.clone();
            thread::spawn(move || map.check(2, || T))
        };
        let evicted = sweeper.join().unwrap();
        assert!(checker.join().unwrap(), "the whole burst, on a full bucket");
        map.assert_no_retired_cell_left();
        assert!(!map.check(1, || T), "an admission was lost");
        if evicted {
            // And once gone, the key comes back full: after the burst refills, a fresh cell.
            assert!(map.sweep(3 * T));
            assert!(map.find().is_none());
            assert!(map.check(2, || 3 * T), "an evicted key starts full");
        }
    });
}

#[test]
fn evicted_key_comes_back_full_gcra() {
    evicted_key_comes_back_full::<Gcra>();
}

#[test]
fn evicted_key_comes_back_full_token_bucket() {
    evicted_key_comes_back_full::<TokenBucket>();
}

/// Time through a shared clock read with Relaxed loads, moved from `T/2` to `T` by a third
/// thread. The key (burst 1) was used at 0, so it is idle only from `T` on. A checker that
/// finds the cell retired, or finds the key gone, must read a time no older than the
/// sweeper's: were it to judge a fresh cell at `T/2`, it would be admitted where the old cell
/// denies (over the window [0, T/2], two admissions where the bound allows 1 + 0.5).
fn fresh_cell_is_never_judged_before_the_eviction<A: Algorithm>() {
    let mut builder = loom::model::Builder::new();
    // Three threads and a mutex: keep the model within a few seconds.
    builder.preemption_bound = Some(
        builder
            .preemption_bound
            .map_or(2, |bound: usize| bound.min(2)),
    );
    builder.check(|| {
        let quota = quota(1);
        let map = Arc::new(OneKey::<A>::new(quota, Some(used::<A>(&quota, 1, 0))));
        let clock = Arc::new(AtomicU64::new(T / 2));
        let mover = {
            let clock = clock.clone();
            // Relaxed: the clock carries no other data (like `ManualClock`).
            thread::spawn(move || clock.store(T, Ordering::Relaxed))
        };
        let sweeper = {
            let (map, clock) = (map.clone(), clock.clone());
            // Relaxed: as above; the sweeper reads its time before the retiring CAS.
            thread::spawn(move || map.sweep(clock.load(Ordering::Relaxed)))
        };
        let checker = {
            let (map, clock) = (map.clone(), clock.clone());
            thread::spawn(move || {
                let mut last = 0;
                let admitted = map.check(1, || {
                    // Relaxed: as above; read once per attempt, after the cell's load.
                    last = clock.load(Ordering::Relaxed);
                    last
                });
                (admitted, last)
            })
        };
        mover.join().unwrap();
        let evicted = sweeper.join().unwrap();
        let (admitted, time) = checker.join().unwrap();
        if admitted {
            assert_eq!(time, T, "admitted at {time}: a fresh cell judged too early");
        }
        if evicted && !admitted {
            // The checker ran entirely before the sweep, at T/2, on the old cell.
            assert_eq!(time, T / 2);
        }
        map.assert_no_retired_cell_left();
    });
}

#[test]
fn fresh_cell_is_never_judged_before_the_eviction_gcra() {
    fresh_cell_is_never_judged_before_the_eviction::<Gcra>();
}

#[test]
fn fresh_cell_is_never_judged_before_the_eviction_token_bucket() {
    fresh_cell_is_never_judged_before_the_eviction::<TokenBucket>();
}

/// An explicit removal racing a checker: the key's next cell, if any, is live, and its state
/// holds at most the checker's admission (either forgotten with the old cell, or on the new
/// one; never on a cell that is gone while the key keeps a stale one).
#[test]
fn remove_vs_check() {
    loom::model(|| {
        let quota = quota(1);
        let map = Arc::new(OneKey::<Gcra>::new(quota, Some(Gcra::initial(&quota))));
        let remover = {
            let map = map.clone();
            thread::spawn(move || protocol::remove(&*map))
        };
        let checker = {
            let map = map.clone();
            thread::spawn(move || map.check(1, || T))
        };
        assert!(remover.join().unwrap(), "the key was live");
        assert!(checker.join().unwrap());
        map.assert_no_retired_cell_left();
    });
}
