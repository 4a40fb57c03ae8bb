//! The named policies behind `NL.CHECK`, `NL.PEEK` and `POST /v1/check`, and what a reload
//! does to the keys they track.
//!
//! Reload rule: a policy that keeps its name keeps each key's *used fraction* of the burst.
//! A key that had used `u` of an old burst `b` starts under the new burst `b'` with
//! `ceil(u * b' / b)` used (rounded in the limiter's favour); with an unchanged quota that is
//! the same whole number of tokens. The carry-over happens the first time the key is asked
//! about after the reload (the old bucket is then forgotten, so it is carried once), for as
//! long as any old bucket could still be partly used: the old policies' longest refill time.
//! Reloads chain: a key that no request touched between two reloads is carried through both
//! (from the generation it was last used in), for as long as that generation's buckets could
//! still be partly used. A global policy's single bucket is carried over at the reload itself. Policies that are
//! new start full; removed ones are dropped.

use core::fmt;
use std::sync::{Arc, RwLock};

use nanolimit::policy::{PolicyManager, PolicyResult, PolicySpec};
use nanolimit::{Clock, Decision};

use super::throttle::SharedClock;

/// The policies of one configuration, and what they inherit from the one before.
pub struct Generation {
    manager: Arc<PolicyManager<SharedClock>>,
    previous: Option<Previous>,
}

struct Previous {
    /// The generation replaced, with what it may still inherit from the ones before it.
    generation: Arc<Generation>,
    /// For each new policy, the index of the old policy of the same name.
    old_index: Vec<Option<usize>>,
    /// Clock time after which every bucket of this chain of generations has refilled:
    /// nothing left to carry.
    until_ns: u64,
}

/// Why a policy check decided nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyError {
    /// No policy of that name.
    Unknown(String),
    /// The cost (times the policy's `cost`) is more than the policy's burst.
    NeverFits {
        /// The cost asked for, in tokens.
        cost: u64,
        /// The burst.
        burst: u64,
    },
    /// The policy tracks its `max_keys` and none is idle.
    AtCapacity,
    /// `--store`: Redis failed and the failure policy is `error`, or Redis holds something
    /// else under the key.
    Store(String),
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(name) => write!(f, "unknown policy '{name}'"),
            Self::NeverFits { cost, burst } => write!(
                f,
                "a cost of {cost} is more than the policy's burst of {burst} and can never be admitted"
            ),
            Self::AtCapacity => {
                f.write_str("the policy tracks its maximum number of keys and none is idle")
            }
            Self::Store(detail) => write!(f, "store unavailable: {detail}"),
        }
    }
}

impl std::error::Error for PolicyError {}

/// A decision of one named policy.
#[derive(Clone, Copy, Debug)]
pub struct PolicyDecision {
    /// The decision.
    pub decision: Decision,
    /// The policy's burst (reported as the limit).
    pub limit: u64,
    /// The policy's window: the time in which it refills from empty, in whole seconds
    /// (rounded up), for the `RateLimit-Policy` header.
    pub window_secs: u64,
}

impl PolicyDecision {
    /// A policy's `result`, with the limit and window of its `spec`.
    pub fn of(spec: &PolicySpec, result: PolicyResult) -> Result<Self, PolicyError> {
        let window = spec
            .quota()
            .refill_time()
            .as_nanos()
            .div_ceil(1_000_000_000);
        match result {
            PolicyResult::Decided(decision) => Ok(Self {
                decision,
                limit: spec.quota().burst(),
                window_secs: u64::try_from(window).unwrap_or(u64::MAX),
            }),
            PolicyResult::NeverFits { cost, burst } => Err(PolicyError::NeverFits { cost, burst }),
            PolicyResult::AtCapacity => Err(PolicyError::AtCapacity),
        }
    }
}

/// The current policies; swapped whole by a reload.
pub struct Policies {
    current: RwLock<Arc<Generation>>,
    clock: SharedClock,
    default_max_keys: usize,
}

impl Policies {
    /// The policies of `specs` over `clock`; policies without their own `max_keys` get
    /// `default_max_keys`.
    pub fn new(
        specs: Vec<PolicySpec>,
        clock: SharedClock,
        default_max_keys: usize,
    ) -> Result<Self, nanolimit::policy::ManagerError> {
        let manager = Self::build(specs, &clock, default_max_keys)?;
        Ok(Self {
            current: RwLock::new(Arc::new(Generation {
                manager: Arc::new(manager),
                previous: None,
            })),
            clock,
            default_max_keys,
        })
    }

    fn build(
        specs: Vec<PolicySpec>,
        clock: &SharedClock,
        default_max_keys: usize,
    ) -> Result<PolicyManager<SharedClock>, nanolimit::policy::ManagerError> {
        let specs = specs
            .into_iter()
            .map(|s| match s.key_limit() {
                Some(_) => s,
                None => s.max_keys(default_max_keys),
            })
            .collect();
        PolicyManager::with_clock(specs, Arc::clone(clock))
    }

    /// The current generation.
    pub fn current(&self) -> Arc<Generation> {
        // A poisoned lock still holds a whole `Arc` (a swap is one assignment).
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Replaces the policies with `specs`, carrying state over by the reload rule.
    pub fn replace(&self, specs: Vec<PolicySpec>) -> Result<(), nanolimit::policy::ManagerError> {
        let manager = Self::build(specs, &self.clock, self.default_max_keys)?;
        let now = self.clock.now();
        let old = self.current();
        // The generation replaced keeps its own inheritance while that can still carry
        // something, so that a key untouched since an earlier reload is not reset by this one.
        let old = match &old.previous {
            Some(p) if now >= p.until_ns => Arc::new(Generation {
                manager: Arc::clone(&old.manager),
                previous: None,
            }),
            _ => old,
        };
        let old_manager = Arc::clone(&old.manager);
        let longest = old_manager
            .policies()
            .map(|p| u64::try_from(p.quota().refill_time().as_nanos()).unwrap_or(u64::MAX))
            .max()
            .unwrap_or(0);
        let until_ns = old
            .previous
            .as_ref()
            .map_or(0, |p| p.until_ns)
            .max(now.saturating_add(longest));
        let old_index: Vec<Option<usize>> = manager
            .policies()
            .map(|p| old_manager.index_of(p.name()))
            .collect();
        // Global policies: one bucket each, carried over now.
        for (index, spec) in manager.policies().enumerate() {
            if let (true, Some(old_policy)) = (spec.key().is_global(), old_index[index]) {
                carry(&old_manager, old_policy, &manager, index, "");
            }
        }
        let generation = Generation {
            manager: Arc::new(manager),
            previous: Some(Previous {
                generation: old,
                old_index,
                until_ns,
            }),
        };
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(generation);
        Ok(())
    }

    /// The policy names, in file order.
    pub fn names(&self) -> Vec<String> {
        let g = self.current();
        g.manager.policies().map(|p| p.name().to_owned()).collect()
    }

    /// Keys tracked over all policies.
    pub fn keys(&self) -> usize {
        let g = self.current();
        let count = g.manager.policies().len();
        (0..count).map(|i| g.manager.keys_tracked(i)).sum()
    }

    /// Sets the policies' keys gauges.
    pub fn publish_gauges(&self) {
        self.current().manager.publish_gauges();
    }

    /// `NL.CHECK`: takes `cost` from `key`'s bucket in policy `name` if it holds it.
    pub fn check(&self, name: &str, key: &str, cost: u64) -> Result<PolicyDecision, PolicyError> {
        self.decide(name, key, cost, false)
    }

    /// `NL.PEEK`: what a check of cost 1 would decide now, taking nothing.
    pub fn peek(&self, name: &str, key: &str) -> Result<PolicyDecision, PolicyError> {
        self.decide(name, key, 1, true)
    }

    fn decide(
        &self,
        name: &str,
        key: &str,
        cost: u64,
        peek: bool,
    ) -> Result<PolicyDecision, PolicyError> {
        let (g, index, result) = self.decide_raw(name, key, cost, peek)?;
        let spec = g
            .spec(index)
            .ok_or_else(|| PolicyError::Unknown(name.to_owned()))?;
        PolicyDecision::of(spec, result)
    }

    /// The generation in force and the index in it of the policy `name`.
    pub fn find(&self, name: &str) -> Result<(Arc<Generation>, usize), PolicyError> {
        let g = self.current();
        let index = g
            .manager
            .index_of(name)
            .ok_or_else(|| PolicyError::Unknown(name.to_owned()))?;
        Ok((g, index))
    }

    /// A check (or a peek) of policy `name` for `key`: the generation that answered, the
    /// policy's index in it and its result (for callers that render it with the spec).
    pub fn decide_raw(
        &self,
        name: &str,
        key: &str,
        cost: u64,
        peek: bool,
    ) -> Result<(Arc<Generation>, usize, PolicyResult), PolicyError> {
        let (g, index) = self.find(name)?;
        g.inherit(index, key, self.clock.now());
        let result = if peek {
            g.manager.peek_policy(index, key, cost)
        } else {
            g.manager.check_policy(index, key, cost)
        };
        let result = result.ok_or_else(|| PolicyError::Unknown(name.to_owned()))?;
        Ok((g, index, result))
    }
}

impl Generation {
    /// The policy at `index`.
    pub fn spec(&self, index: usize) -> Option<&PolicySpec> {
        self.manager.policy(index)
    }

    /// Carries `key`'s state in policy `index` over from the previous generations, once.
    fn inherit(&self, index: usize, key: &str, now: u64) {
        let Some(prev) = &self.previous else {
            return;
        };
        if now >= prev.until_ns {
            return;
        }
        let Some(Some(old)) = prev.old_index.get(index) else {
            return;
        };
        if self
            .manager
            .policy(index)
            .is_some_and(|p| p.key().is_global())
        {
            return;
        }
        // First into the generation replaced, from the ones before it (if still due).
        prev.generation.inherit(*old, key, now);
        carry(&prev.generation.manager, *old, &self.manager, index, key);
    }
}

/// Moves `key`'s used fraction from policy `old` of `from` to policy `new` of `to`.
fn carry(
    from: &PolicyManager<SharedClock>,
    old: usize,
    to: &PolicyManager<SharedClock>,
    new: usize,
    key: &str,
) {
    let (Some(old_spec), Some(new_spec)) = (from.policy(old), to.policy(new)) else {
        return;
    };
    let old_burst = old_spec.quota().burst();
    let new_burst = new_spec.quota().burst();
    // A peek of cost 0 reports what the bucket holds, whatever it holds.
    let Some(PolicyResult::Decided(d)) = from.peek_policy(old, key, 0) else {
        return;
    };
    let used = old_burst.saturating_sub(d.remaining());
    if used == 0 {
        return;
    }
    // Forgetting the old bucket first makes the carry happen once, even when two
    // connections ask about the key at once (the loser sees a full old bucket).
    if !old_spec.key().is_global() && !from.forget_key(old, key) {
        return;
    }
    let scaled = (u128::from(used) * u128::from(new_burst)).div_ceil(u128::from(old_burst));
    let scaled = u64::try_from(scaled).unwrap_or(u64::MAX).min(new_burst);
    to.seed_key(new, key, scaled);
}
