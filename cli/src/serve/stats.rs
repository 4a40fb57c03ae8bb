//! Counters for `INFO` (all `Relaxed`: statistics, read without ordering against anything).

use std::sync::atomic::{AtomicU64, Ordering};

/// What the server has done since it started.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections refused at the connection limit.
    pub rejected: AtomicU64,
    /// Connections open now.
    pub connected: AtomicU64,
    /// Commands executed.
    pub commands: AtomicU64,
    /// `CL.THROTTLE` calls allowed / limited.
    pub throttle_allowed: AtomicU64,
    /// `CL.THROTTLE` calls limited.
    pub throttle_limited: AtomicU64,
    /// `NL.CHECK` calls (and HTTP checks) allowed.
    pub policy_allowed: AtomicU64,
    /// `NL.CHECK` calls (and HTTP checks) denied.
    pub policy_denied: AtomicU64,
    /// Error replies.
    pub errors: AtomicU64,
    /// Policy reloads that succeeded.
    pub reloads: AtomicU64,
    /// Policy reloads refused (the old policies kept).
    pub reload_failures: AtomicU64,
    /// `--store`: decisions made by the failure policy because Redis did not answer.
    pub store_degraded: AtomicU64,
}

impl Stats {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        // Relaxed: a statistic.
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        // Relaxed: a statistic.
        counter.load(Ordering::Relaxed)
    }
}
