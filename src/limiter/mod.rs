//! The front doors: one bucket ([`DirectLimiter`]) and one bucket per key ([`KeyedLimiter`]).

mod direct;
mod keyed;

pub use direct::DirectLimiter;
#[cfg(nanolimit_loom)]
pub use keyed::protocol;
pub use keyed::{
    AtCapacity, CapacityPolicy, DefaultKeyHasher, KeyedBuilder, KeyedError, KeyedLimiter,
    KeyedStats, SweeperHandle, DEFAULT_RECLAIM_INTERVAL, MAX_PREALLOCATED_KEYS,
};
