//! The keyed limiter's errors: distinct from a denial, one variant per cause.

use core::fmt;

use crate::error::InsufficientCapacity;

/// A new key could not be tracked: the limiter already holds `max_keys` keys, none of them
/// idle, and its [`CapacityPolicy`](crate::CapacityPolicy) is `Refuse`.
///
/// This is not a denial of the key (which has no bucket yet) but a refusal by the limiter as a
/// whole: a server would typically answer 503 rather than 429, and count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AtCapacity {
    /// The bound that was reached.
    pub max_keys: usize,
}

impl fmt::Display for AtCapacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the limiter already tracks its maximum of {} keys and none is idle",
            self.max_keys
        )
    }
}

impl std::error::Error for AtCapacity {}

/// Why a keyed check of cost `n` was neither admitted nor denied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyedError {
    /// The cost exceeds the burst: it could never be admitted. Nothing was stored.
    InsufficientCapacity(InsufficientCapacity),
    /// The key is new and the limiter is full (see [`AtCapacity`]).
    AtCapacity(AtCapacity),
}

impl fmt::Display for KeyedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InsufficientCapacity(error) => error.fmt(f),
            Self::AtCapacity(error) => error.fmt(f),
        }
    }
}

// No `source`: `Display` already shows the inner error, and a report would print it twice.
impl std::error::Error for KeyedError {}

impl From<InsufficientCapacity> for KeyedError {
    fn from(error: InsufficientCapacity) -> Self {
        Self::InsufficientCapacity(error)
    }
}

impl From<AtCapacity> for KeyedError {
    fn from(error: AtCapacity) -> Self {
        Self::AtCapacity(error)
    }
}
