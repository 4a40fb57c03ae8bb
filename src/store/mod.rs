//! Stores that keep buckets outside the process. The in-memory stores are the limiters
//! themselves ([`DirectLimiter`](crate::DirectLimiter), [`KeyedLimiter`](crate::KeyedLimiter)).
//!
//! - [`redis`] (feature `redis`): buckets in Redis, shared by many processes and machines.

#[cfg(feature = "redis")]
pub mod redis;
