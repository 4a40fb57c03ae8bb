//! Lock-free rate limiting for the hot path: GCRA and a token bucket, each keeping its whole
//! state in one `AtomicU64`, exact to the tick and never rounding cumulatively.
//!
//! ```
//! use nanolimit::{DirectLimiter, Quota};
//!
//! // 100 requests per minute, at most 20 at once.
//! let limiter = DirectLimiter::gcra(Quota::per_minute(100)?.with_burst(20)?);
//! let decision = limiter.check();
//! if decision.is_allowed() {
//!     // serve the request; decision.remaining() more may follow right away
//! } else {
//!     // refuse it: Retry-After = decision.retry_after_secs() (never 0 while limited)
//! }
//! # Ok::<(), nanolimit::QuotaError>(())
//! ```
//!
//! Layers, bottom up (see `docs/design.md`):
//! - [`Quota`]: validated configuration, with typed [`QuotaError`]s.
//! - [`Clock`]: time as `u64` nanoseconds ([`MonotonicClock`], [`ManualClock`], ...).
//! - [`algorithm`]: pure transitions on a `u64` ([`Gcra`], [`TokenBucket`]).
//! - [`Cell`]: one `AtomicU64` and the compare-and-swap loop that applies an algorithm.
//! - [`DirectLimiter`]: one cell, a quota and a clock.
//! - [`KeyedLimiter`]: one cell per key in a lock-free map, with idle-key eviction and a
//!   memory bound.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod algorithm;
mod cell;
mod clock;
mod decision;
mod error;
#[cfg(feature = "http")]
pub mod http;
mod limiter;
pub mod policy;
mod quota;
#[cfg(feature = "redis")]
pub mod store;
mod sync;
mod ticks;

pub use algorithm::{Algorithm, Gcra, TokenBucket, Transition};
pub use cell::Cell;
pub use clock::{Clock, DefaultClock, ManualClock, StdClock, LIFETIME};
#[cfg(feature = "quanta")]
pub use clock::{CoarseClock, MonotonicClock};
pub use decision::Decision;
pub use error::{InsufficientCapacity, QuotaError};
/// The keyed limiter's eviction protocol, public only for the loom models
/// (`--cfg nanolimit_loom`, `tests/loom_keyed.rs`).
#[cfg(nanolimit_loom)]
#[doc(hidden)]
pub use limiter::protocol;
pub use limiter::DirectLimiter;
pub use limiter::{
    AtCapacity, CapacityPolicy, DefaultKeyHasher, KeyedBuilder, KeyedError, KeyedLimiter,
    KeyedStats, SweeperHandle, DEFAULT_RECLAIM_INTERVAL, MAX_PREALLOCATED_KEYS,
};
pub use quota::Quota;

// The README's example is compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
