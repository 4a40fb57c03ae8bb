//! What the replay's outputs (the summary's counts and `--decisions`) read from a verdict,
//! whoever decided it: the in-memory [`PolicyManager`](nanolimit::policy::PolicyManager)'s
//! [`Verdict`], or the Redis store's [`StoreVerdict`](crate::replay_store::StoreVerdict).

use nanolimit::policy::{PolicyOutcome, PolicyResult, Verdict};
use nanolimit::Decision;

/// A request's verdict: allowed or not, and one outcome per matching policy.
pub trait VerdictView {
    /// One policy's part.
    type Outcome: OutcomeView;

    /// Whether the request is allowed.
    fn is_allowed(&self) -> bool;

    /// One outcome per matching policy, in configuration order.
    fn outcomes(&self) -> &[Self::Outcome];
}

/// One matching policy's part of a verdict.
pub trait OutcomeView {
    /// The policy's index in the policy file.
    fn index(&self) -> usize;

    /// The key the request used in this policy (`""` for a global policy).
    fn key(&self) -> &str;

    /// What the policy answered.
    fn result(&self) -> &PolicyResult;

    /// Whether the policy is in shadow mode.
    fn is_shadow(&self) -> bool;

    /// This policy's own answer.
    fn is_allowed(&self) -> bool {
        matches!(self.result(), PolicyResult::Decided(d) if d.is_allowed())
    }

    /// The decision, if the policy made one.
    fn decision(&self) -> Option<&Decision> {
        match self.result() {
            PolicyResult::Decided(d) => Some(d),
            _ => None,
        }
    }
}

impl VerdictView for Verdict {
    type Outcome = PolicyOutcome;

    #[inline]
    fn is_allowed(&self) -> bool {
        Verdict::is_allowed(self)
    }

    #[inline]
    fn outcomes(&self) -> &[PolicyOutcome] {
        Verdict::outcomes(self)
    }
}

impl OutcomeView for PolicyOutcome {
    #[inline]
    fn index(&self) -> usize {
        PolicyOutcome::index(self)
    }

    #[inline]
    fn key(&self) -> &str {
        PolicyOutcome::key(self)
    }

    #[inline]
    fn result(&self) -> &PolicyResult {
        PolicyOutcome::result(self)
    }

    #[inline]
    fn is_shadow(&self) -> bool {
        PolicyOutcome::is_shadow(self)
    }
}
