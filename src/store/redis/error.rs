//! Why a Redis-backed check could not be answered.

use core::fmt;
use core::time::Duration;

use crate::error::InsufficientCapacity;

/// A check that the Redis limiter could not decide. A denial is not an error.
///
/// [`Timeout`](Self::Timeout) and [`Unavailable`](Self::Unavailable) are the failures the
/// [`FailurePolicy`](super::FailurePolicy) covers; with any policy other than
/// [`FailurePolicy::Error`](super::FailurePolicy::Error) they become decisions flagged with
/// their [`DecisionSource`](super::DecisionSource) instead. The other variants are returned
/// whatever the policy: retrying cannot help them.
#[derive(Debug)]
#[non_exhaustive]
pub enum RedisLimitError {
    /// The connection could not be set up: a malformed URL, or no tokio runtime.
    Config(String),
    /// The cost exceeds the burst: it can never be admitted. Redis was not asked.
    InsufficientCapacity(InsufficientCapacity),
    /// Redis did not answer within the configured timeout. A check that timed out may or may
    /// not have been applied by Redis.
    Timeout(Duration),
    /// Redis could not be reached or refused the command (connection refused or dropped,
    /// loading, read-only replica, out of memory, ...).
    Unavailable(::redis::RedisError),
    /// The key holds something that is not a rate-limit state written by this library (or a
    /// value of another Redis type): another application uses the same key name.
    BadState {
        /// The Redis key.
        key: String,
        /// What Redis or the script reported.
        detail: String,
    },
    /// The script's reply does not match what the library computes from the same state and
    /// time: a different script was loaded under the same name, or a bug. Nothing to retry.
    Mismatch {
        /// The Redis key.
        key: String,
        /// What differed.
        detail: String,
    },
}

impl RedisLimitError {
    /// A failure the [`FailurePolicy`](super::FailurePolicy) applies to: Redis did not
    /// answer in time or could not be reached.
    pub fn is_unavailability(&self) -> bool {
        matches!(self, Self::Timeout(_) | Self::Unavailable(_))
    }
}

impl fmt::Display for RedisLimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(detail) => f.write_str(detail),
            Self::InsufficientCapacity(error) => error.fmt(f),
            Self::Timeout(after) => write!(f, "Redis did not answer within {after:?}"),
            Self::Unavailable(error) => write!(f, "Redis is unavailable: {error}"),
            Self::BadState { key, detail } => {
                write!(f, "Redis key {key:?} holds no rate-limit state: {detail}")
            }
            Self::Mismatch { key, detail } => write!(
                f,
                "the Redis script's answer for key {key:?} differs from the library's: {detail}"
            ),
        }
    }
}

impl std::error::Error for RedisLimitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::InsufficientCapacity(error) => Some(error),
            Self::Unavailable(error) => Some(error),
            _ => None,
        }
    }
}

impl From<InsufficientCapacity> for RedisLimitError {
    fn from(error: InsufficientCapacity) -> Self {
        Self::InsufficientCapacity(error)
    }
}
