//! The manager: applies every matching policy to a request, all or nothing.

use core::fmt;
use std::sync::Arc;

use crate::clock::{Clock, DefaultClock};
use crate::decision::Decision;

use super::limiter::{PolicyLimiter, Refused};
use super::request::Request;
use super::spec::PolicySpec;

/// Why a set of policies was refused as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManagerError {
    /// Two policies share a name.
    DuplicateName(String),
}

impl fmt::Display for ManagerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DuplicateName(n) => write!(f, "duplicate policy name '{n}'"),
        }
    }
}

impl std::error::Error for ManagerError {}

/// One policy's answer to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyResult {
    /// The limiter decided. For an enforcing policy whose request was denied by another
    /// policy, this is what it would have answered alone (a peek: nothing was taken).
    Decided(Decision),
    /// The request's cost exceeds the policy's burst: it can never succeed. Nothing changed.
    NeverFits {
        /// The cost asked for (the request's cost times the policy's).
        cost: u64,
        /// The policy's burst.
        burst: u64,
    },
    /// The policy's keyed limiter tracks its maximum of keys and none is idle.
    AtCapacity,
}

/// One matching policy's part of a [`Verdict`].
#[derive(Clone, Debug)]
pub struct PolicyOutcome {
    index: usize,
    key: String,
    result: PolicyResult,
    consumed: bool,
    shadow: bool,
    /// Whether the manager stored this request's key to make sure of room (see
    /// `check_all_or_nothing`).
    reserved: bool,
}

impl PolicyOutcome {
    /// The policy's index in [`PolicyManager::policies`].
    pub fn index(&self) -> usize {
        self.index
    }

    /// The key the request used in this policy (`""` for a global policy).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// What the policy answered.
    pub fn result(&self) -> &PolicyResult {
        &self.result
    }

    /// The decision, if the limiter made one.
    pub fn decision(&self) -> Option<&Decision> {
        match &self.result {
            PolicyResult::Decided(d) => Some(d),
            _ => None,
        }
    }

    /// This policy's own answer (a shadow policy's too, although it never denies the request).
    pub fn is_allowed(&self) -> bool {
        matches!(&self.result, PolicyResult::Decided(d) if d.is_allowed())
    }

    /// Whether this request took quota from this policy.
    pub fn consumed(&self) -> bool {
        self.consumed
    }

    /// Whether the policy is in shadow mode.
    pub fn is_shadow(&self) -> bool {
        self.shadow
    }
}

/// The manager's answer: allowed iff every matching enforcing policy allowed. Reusable:
/// [`PolicyManager::check_into`] overwrites it without allocating once its buffers have grown.
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    allowed: bool,
    len: usize,
    outcomes: Vec<PolicyOutcome>,
}

impl Verdict {
    /// An empty verdict, to pass to [`PolicyManager::check_into`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the request is allowed.
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// One outcome per matching policy, in configuration order.
    pub fn outcomes(&self) -> &[PolicyOutcome] {
        &self.outcomes[..self.len]
    }

    fn push(&mut self, index: usize, shadow: bool) -> &mut PolicyOutcome {
        if self.len == self.outcomes.len() {
            self.outcomes.push(PolicyOutcome {
                index: 0,
                key: String::new(),
                result: PolicyResult::AtCapacity,
                consumed: false,
                shadow: false,
                reserved: false,
            });
        }
        let slot = &mut self.outcomes[self.len];
        self.len += 1;
        slot.index = index;
        slot.shadow = shadow;
        slot.consumed = false;
        slot.reserved = false;
        slot
    }
}

struct Policy<C: Clock> {
    spec: PolicySpec,
    limiter: PolicyLimiter<C>,
    #[cfg(feature = "metrics")]
    metrics: super::metrics::PolicyMetrics,
}

/// Named policies over one shared clock.
///
/// A request is checked against every policy that matches it; it is allowed only if every
/// enforcing (non-shadow) policy allows it, and a request denied by one policy takes nothing
/// from the others. Shadow policies decide as if they were alone and are reported, but never
/// deny. See `docs/design.md`, "Policies and the manager", for what concurrent callers see.
///
/// ```
/// use nanolimit::policy::{KeySelector, PolicyManager, PolicySpec, Request};
/// use nanolimit::{ManualClock, Quota};
///
/// let per_ip = PolicySpec::new("per-ip", Quota::per_second(2).unwrap(), KeySelector::parse("ip").unwrap());
/// let manager = PolicyManager::with_clock(vec![per_ip], ManualClock::new(0)).unwrap();
/// let req = Request::new("10.0.0.1", "GET", "/");
/// assert!(manager.check(&req).is_allowed());
/// assert!(manager.check(&req).is_allowed());
/// assert!(!manager.check(&req).is_allowed());
/// manager.clock().advance(std::time::Duration::from_millis(500));
/// assert!(manager.check(&req).is_allowed());
/// ```
pub struct PolicyManager<C: Clock = DefaultClock> {
    policies: Vec<Policy<C>>,
    clock: Arc<C>,
}

impl PolicyManager<DefaultClock> {
    /// The policies over the default monotonic clock.
    pub fn new(specs: Vec<PolicySpec>) -> Result<Self, ManagerError> {
        Self::with_clock(specs, DefaultClock::default())
    }
}

impl<C: Clock> PolicyManager<C> {
    /// The policies over `clock`. Fails, building nothing, if two share a name.
    pub fn with_clock(specs: Vec<PolicySpec>, clock: C) -> Result<Self, ManagerError> {
        for (i, spec) in specs.iter().enumerate() {
            if specs[..i].iter().any(|s| s.name() == spec.name()) {
                return Err(ManagerError::DuplicateName(spec.name().to_owned()));
            }
        }
        let clock = Arc::new(clock);
        let policies = specs
            .into_iter()
            .map(|spec| Policy {
                limiter: PolicyLimiter::new(
                    spec.algorithm_kind(),
                    spec.key().is_global(),
                    *spec.quota(),
                    spec.key_limit(),
                    Arc::clone(&clock),
                ),
                #[cfg(feature = "metrics")]
                metrics: super::metrics::PolicyMetrics::new(spec.name()),
                spec,
            })
            .collect();
        Ok(Self { policies, clock })
    }

    /// The shared clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The policies, in configuration order.
    pub fn policies(&self) -> impl ExactSizeIterator<Item = &PolicySpec> {
        self.policies.iter().map(|p| &p.spec)
    }

    /// The policy at `index`.
    pub fn policy(&self, index: usize) -> Option<&PolicySpec> {
        self.policies.get(index).map(|p| &p.spec)
    }

    /// Keys tracked by the policy at `index` (1 for a global policy; 0 for no such policy).
    pub fn keys_tracked(&self, index: usize) -> usize {
        self.policies.get(index).map_or(0, |p| p.limiter.keys())
    }

    /// The index of the policy named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.policies.iter().position(|p| p.spec.name() == name)
    }

    /// Checks the policy at `index` alone, for an explicit `key`, as a service does when the
    /// caller names the policy and the key (`NL.CHECK`): the policy's match rule and key
    /// selector are not consulted (a global policy ignores `key`), `cost` is multiplied by the
    /// policy's `cost`, and a shadow policy decides like any other. `None` for no such policy.
    ///
    /// ```
    /// use nanolimit::policy::{KeySelector, PolicyManager, PolicyResult, PolicySpec};
    /// use nanolimit::{ManualClock, Quota};
    ///
    /// let spec = PolicySpec::new("api", Quota::per_second(2).unwrap(), KeySelector::parse("ip").unwrap());
    /// let manager = PolicyManager::with_clock(vec![spec], ManualClock::new(0)).unwrap();
    /// let api = manager.index_of("api").unwrap();
    /// let first = manager.check_policy(api, "alice", 2).unwrap();
    /// assert!(matches!(first, PolicyResult::Decided(d) if d.remaining() == 0));
    /// assert!(matches!(manager.check_policy(api, "alice", 1), Some(PolicyResult::Decided(d)) if d.is_denied()));
    /// assert!(matches!(manager.check_policy(api, "alice", 3), Some(PolicyResult::NeverFits { cost: 3, burst: 2 })));
    /// assert!(manager.check_policy(1, "alice", 1).is_none());
    /// ```
    pub fn check_policy(&self, index: usize, key: &str, cost: u64) -> Option<PolicyResult> {
        let policy = self.policies.get(index)?;
        let cost = cost.saturating_mul(policy.spec.cost_multiplier());
        let burst = policy.spec.quota().burst();
        let result = if cost > burst {
            PolicyResult::NeverFits { cost, burst }
        } else {
            to_result(policy.limiter.check(key, cost))
        };
        #[cfg(feature = "metrics")]
        policy.metrics.record(
            &policy.spec,
            &PolicyOutcome {
                index,
                key: key.to_owned(),
                result,
                consumed: is_allowed(&result) && cost > 0,
                shadow: policy.spec.is_shadow(),
                reserved: false,
            },
        );
        Some(result)
    }

    /// What [`check_policy`](Self::check_policy) would answer now, changing nothing and
    /// recording nothing. `None` for no such policy.
    pub fn peek_policy(&self, index: usize, key: &str, cost: u64) -> Option<PolicyResult> {
        let policy = self.policies.get(index)?;
        let cost = cost.saturating_mul(policy.spec.cost_multiplier());
        let burst = policy.spec.quota().burst();
        Some(if cost > burst {
            PolicyResult::NeverFits { cost, burst }
        } else {
            to_result(policy.limiter.peek(key, cost))
        })
    }

    /// Forgets `key` in the policy at `index`: its next request starts with a full bucket.
    /// Whether the key was tracked (always `false` for a global policy or no such policy).
    pub fn forget_key(&self, index: usize, key: &str) -> bool {
        self.policies
            .get(index)
            .is_some_and(|p| p.limiter.remove(key))
    }

    /// Takes `tokens` from `key`'s bucket in the policy at `index` if it holds them, without
    /// counting a request in the metrics: for carrying a key's state over from an earlier
    /// manager when a service reloads its policies. Whether they were taken.
    pub fn seed_key(&self, index: usize, key: &str, tokens: u64) -> bool {
        self.policies
            .get(index)
            .is_some_and(|p| matches!(p.limiter.check(key, tokens), Ok(d) if d.is_allowed()))
    }

    /// Checks `req` against every matching policy.
    pub fn check(&self, req: &Request<'_>) -> Verdict {
        let mut verdict = Verdict::new();
        self.check_into(req, &mut verdict);
        verdict
    }

    /// As [`check`](Self::check), writing into a reused `verdict`.
    ///
    /// Enforcing policies, in order: a cost above a policy's burst denies at once; if exactly
    /// one enforcing policy matches, it is checked directly; otherwise all are peeked, and only
    /// if every one would admit are they checked, one by one. Shadow policies are checked
    /// independently.
    pub fn check_into(&self, req: &Request<'_>, verdict: &mut Verdict) {
        verdict.len = 0;
        let mut enforcing = 0usize;
        let mut refused = false;
        for (index, policy) in self.policies.iter().enumerate() {
            if !policy.spec.matcher().matches(req) {
                continue;
            }
            let shadow = policy.spec.is_shadow();
            let cost = req.cost().saturating_mul(policy.spec.cost_multiplier());
            let burst = policy.spec.quota().burst();
            let slot = verdict.push(index, shadow);
            policy.spec.key().write_key(req, &mut slot.key);
            if cost > burst {
                slot.result = PolicyResult::NeverFits { cost, burst };
                refused |= !shadow;
                continue;
            }
            if shadow {
                slot.result = to_result(policy.limiter.check(&slot.key, cost));
                slot.consumed = is_allowed(&slot.result) && cost > 0;
            } else {
                enforcing += 1;
                // Provisional: the peek below or the check replaces it.
                slot.result = PolicyResult::AtCapacity;
            }
        }
        verdict.allowed = if enforcing == 1 && !refused {
            self.check_single(req, verdict)
        } else {
            self.check_all_or_nothing(req, verdict, refused)
        };
        #[cfg(feature = "metrics")]
        self.record(verdict);
    }

    /// The one enforcing policy decides alone: one check, exact under any concurrency.
    fn check_single(&self, req: &Request<'_>, verdict: &mut Verdict) -> bool {
        let mut allowed = true;
        for slot in &mut verdict.outcomes[..verdict.len] {
            if slot.shadow {
                continue;
            }
            let policy = &self.policies[slot.index];
            let cost = req.cost().saturating_mul(policy.spec.cost_multiplier());
            slot.result = to_result(policy.limiter.check(&slot.key, cost));
            slot.consumed = is_allowed(&slot.result) && cost > 0;
            allowed = is_allowed(&slot.result);
        }
        allowed
    }

    /// Peek every enforcing policy; check them only if all would admit.
    fn check_all_or_nothing(
        &self,
        req: &Request<'_>,
        verdict: &mut Verdict,
        refused: bool,
    ) -> bool {
        let mut all_admit = !refused;
        for slot in &mut verdict.outcomes[..verdict.len] {
            if slot.shadow || matches!(slot.result, PolicyResult::NeverFits { .. }) {
                continue;
            }
            let policy = &self.policies[slot.index];
            let cost = req.cost().saturating_mul(policy.spec.cost_multiplier());
            slot.result = to_result(policy.limiter.peek(&slot.key, cost));
            all_admit &= is_allowed(&slot.result);
        }
        if !all_admit {
            return false;
        }
        // A peek of a new key sees a full bucket, whatever the key limit: a policy that has
        // reached its `max_keys` could still refuse the key at capacity after earlier policies
        // took their quota. So, before anything is consumed, every such policy stores the
        // request's key (a full bucket, nothing taken) or refuses it; on a refusal the keys
        // stored for this request are evicted again (they are idle) and the request is denied.
        // Below its limit a policy always finds room for one key, so this only runs at the
        // limit. Alone, this makes the checks below exact.
        let mut capacity_refused = false;
        for slot in &mut verdict.outcomes[..verdict.len] {
            slot.reserved = false;
            if slot.shadow || capacity_refused {
                continue;
            }
            let policy = &self.policies[slot.index];
            if !policy.limiter.may_refuse_new_key() {
                continue;
            }
            match policy.limiter.reserve(&slot.key) {
                Ok(stored) => slot.reserved = stored,
                Err(e) => {
                    slot.result = to_result(Err(e));
                    capacity_refused = true;
                }
            }
        }
        if capacity_refused {
            for slot in &mut verdict.outcomes[..verdict.len] {
                if slot.reserved {
                    self.policies[slot.index].limiter.unreserve(&slot.key);
                    slot.reserved = false;
                }
            }
            return false;
        }
        // Every enforcing policy would admit, and has room for the key: take the quota, in
        // order. Alone, each check admits as its peek did; a concurrent caller can empty a
        // bucket (or fill a key limit) in between, and then the request is denied and the
        // policies already checked keep what they took (the race documented in
        // docs/design.md).
        let mut allowed = true;
        for slot in &mut verdict.outcomes[..verdict.len] {
            if slot.shadow {
                continue;
            }
            let policy = &self.policies[slot.index];
            let cost = req.cost().saturating_mul(policy.spec.cost_multiplier());
            if allowed {
                slot.result = to_result(policy.limiter.check(&slot.key, cost));
                slot.consumed = is_allowed(&slot.result) && cost > 0;
                allowed = is_allowed(&slot.result);
            } else {
                slot.result = to_result(policy.limiter.peek(&slot.key, cost));
            }
        }
        allowed
    }

    #[cfg(feature = "metrics")]
    fn record(&self, verdict: &Verdict) {
        for slot in verdict.outcomes() {
            let policy = &self.policies[slot.index];
            policy.metrics.record(&policy.spec, slot);
        }
    }

    /// Sets each policy's keys-tracked gauge (call it from a timer; with the `metrics`
    /// feature off it does nothing).
    pub fn publish_gauges(&self) {
        #[cfg(feature = "metrics")]
        for p in &self.policies {
            p.metrics.keys(p.limiter.keys());
        }
    }
}

impl<C: Clock> fmt::Debug for PolicyManager<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyManager")
            .field("policies", &self.policies().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[inline]
fn to_result(r: Result<Decision, Refused>) -> PolicyResult {
    match r {
        Ok(d) => PolicyResult::Decided(d),
        Err(Refused::AtCapacity(_)) => PolicyResult::AtCapacity,
        Err(Refused::NeverFits) => PolicyResult::NeverFits { cost: 0, burst: 0 },
    }
}

#[inline]
fn is_allowed(r: &PolicyResult) -> bool {
    matches!(r, PolicyResult::Decided(d) if d.is_allowed())
}
