//! The front doors: one bucket ([`DirectLimiter`]).

mod direct;

pub use direct::DirectLimiter;
