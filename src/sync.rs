//! The only module that names atomics.
//!
//! Everything else imports `AtomicU64` and `Ordering` from here, so that the loom models
//! (`RUSTFLAGS="--cfg nanolimit_loom"`) swap in loom's checked atomics for this crate alone,
//! without turning loom on inside any dependency.

#[cfg(nanolimit_loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};

#[cfg(not(nanolimit_loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
