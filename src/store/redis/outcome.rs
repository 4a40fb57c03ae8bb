//! What a Redis-backed check answers, and what it answers when Redis cannot.

use super::error::RedisLimitError;
use super::script::Op;
use crate::algorithm::capacity_in_ticks;
use crate::decision::Decision;
use crate::quota::Quota;

/// What to do when Redis times out or cannot be reached.
///
/// Only [`RedisLimitError::Timeout`] and [`RedisLimitError::Unavailable`] are covered; a cost
/// above the burst or a key holding foreign data is an error under every policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Return the error (the default): the caller decides.
    #[default]
    Error,
    /// Deny the request, as an empty bucket would ([`DecisionSource::FailedClosed`]).
    FailClosed,
    /// Admit the request, as a full bucket would ([`DecisionSource::FailedOpen`]).
    FailOpen,
    /// Decide with a local in-memory [`KeyedLimiter`](crate::KeyedLimiter) of the same quota
    /// and algorithm ([`DecisionSource::Fallback`]). Each process then enforces the quota on
    /// its own: with `n` processes, up to `n` times the quota is admitted during the outage.
    /// When Redis answers again it is used again; the local buckets are not merged into it.
    Fallback,
}

/// Who made a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecisionSource {
    /// Redis: the shared, exact decision.
    Redis,
    /// Redis failed and the policy denied the request.
    FailedClosed,
    /// Redis failed and the policy admitted the request.
    FailedOpen,
    /// Redis failed and the local fallback limiter decided.
    Fallback,
}

/// A decision of the Redis limiter, and whether Redis made it.
///
/// ```
/// # use nanolimit::store::redis::{DecisionSource, RedisDecision};
/// fn respond(outcome: &RedisDecision) -> u16 {
///     if outcome.source() != DecisionSource::Redis {
///         // degraded: log outcome.failure(), count it, ...
///     }
///     if outcome.is_allowed() { 200 } else { 429 }
/// }
/// ```
#[derive(Debug)]
pub struct RedisDecision {
    decision: Decision,
    source: DecisionSource,
    failure: Option<Box<RedisLimitError>>,
}

impl RedisDecision {
    pub(crate) fn from_redis(decision: Decision) -> Self {
        Self {
            decision,
            source: DecisionSource::Redis,
            failure: None,
        }
    }

    pub(crate) fn degraded(
        decision: Decision,
        source: DecisionSource,
        failure: RedisLimitError,
    ) -> Self {
        Self {
            decision,
            source,
            failure: Some(Box::new(failure)),
        }
    }

    /// The decision (allowed or not, remaining, retry and reset times).
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// Who decided: Redis, or the failure policy.
    pub fn source(&self) -> DecisionSource {
        self.source
    }

    /// Why Redis did not decide, when it did not.
    pub fn failure(&self) -> Option<&RedisLimitError> {
        self.failure.as_deref()
    }

    /// Redis made the decision (no failure policy was applied).
    pub fn is_from_redis(&self) -> bool {
        self.source == DecisionSource::Redis
    }

    /// Shorthand for `decision().is_allowed()`.
    pub fn is_allowed(&self) -> bool {
        self.decision.is_allowed()
    }

    /// Shorthand for `decision().is_denied()`.
    pub fn is_denied(&self) -> bool {
        self.decision.is_denied()
    }
}

/// Fail closed: denied as by an empty bucket. `remaining` 0, `retry_after` the time to earn
/// `cost` (`cost * T`), `reset_after` the time to fill the bucket (`burst * T`).
pub(crate) fn closed(quota: &Quota, cost: u64) -> Decision {
    let need = cost * quota.scale().ticks_per_token;
    let capacity = capacity_in_ticks(quota);
    Decision::new(false, quota.burst(), quota.scale(), 0, 0, need, capacity)
}

/// Fail open: admitted as by a full bucket. For a check, `remaining` is `burst - cost` and
/// `reset_after` the time to earn `cost` back; for a peek, `remaining` is `burst`.
pub(crate) fn open(quota: &Quota, cost: u64, op: Op) -> Decision {
    let need = match op {
        Op::Check => cost * quota.scale().ticks_per_token,
        Op::Peek => 0,
    };
    let capacity = capacity_in_ticks(quota);
    Decision::new(
        true,
        quota.burst(),
        quota.scale(),
        0,
        capacity - need,
        0,
        need,
    )
}
