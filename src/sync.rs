//! The atomics of the cell, the keyed limiter and its counters.
//!
//! They import `AtomicU64` and `Ordering` from here, so that the loom models
//! (`RUSTFLAGS="--cfg nanolimit_loom"`) swap in loom's checked atomics for this crate alone,
//! without turning loom on inside any dependency.
//!
//! One exception: `ManualClock` (`src/clock.rs`) uses std's `AtomicU64` directly, under
//! either cfg. It is no part of what the models check: its time is one value that publishes
//! nothing (every access is `Relaxed`), and the models never read a `Clock`; they hand times
//! to the cell, or read a loom atomic of their own (`tests/loom.rs`, `tests/loom_keyed.rs`).

#[cfg(nanolimit_loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};

#[cfg(not(nanolimit_loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
