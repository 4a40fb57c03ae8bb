//! `nanolimit replay --store redis://...`: the replay's decisions made in Redis by the
//! library's [`RedisLimiter`](nanolimit::store::redis::RedisLimiter)s, with the same
//! summary and `--decisions` as in memory.
//!
//! One limiter per policy, its keys named as `serve --store` names them
//! (`<prefix>policy:<name>:<algorithm>:<rate>/<period ns>/<burst>:<key>`). Every call passes
//! the replay's own time (the manual clock's nanoseconds) as the explicit `now`, so Redis's
//! `TIME` is never read and the decisions are those of the in-memory manager from the same
//! states at the same times. The all-or-nothing rule is the manager's
//! (`PolicyManager::check_into`), step for step:
//!
//! 1. a cost above a policy's burst never fits (nothing is asked of Redis);
//! 2. one round trip (the calls pipelined on one connection): every shadow policy is
//!    checked; the only enforcing policy is checked, or, when there are several (or one
//!    never fits), every enforcing policy is peeked;
//! 3. only if every enforcing policy would admit, they are checked one by one, in order.
//!
//! Nothing fails open: any error of the store (Redis unreachable, a timeout, a key holding
//! something else) stops the replay.

use core::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use nanolimit::policy::{PolicyManager, PolicyResult, Request};
use nanolimit::store::redis::{RedisConnection, RedisLimitError, RedisLimiter};
use nanolimit::Clock;
use nanolimit_cli::serve::store::{policy_prefix, AnyLimiter};

use crate::verdict::{OutcomeView, VerdictView};

/// Added to every key's expiry, and the longest a replay through the store may run.
///
/// Redis expires a key by its own clock, `reset_after` (in the replay's time) after the
/// write, plus this. A replay runs at its own pace, not the log's: when it falls behind the
/// log by more than this, a key could expire while the replay's time says its bucket is not
/// yet full, and the decisions would differ from the in-memory replay's. Falling behind by
/// more than the whole run is impossible, so a replay that runs for longer stops instead.
pub const EXPIRY_SLACK: Duration = Duration::from_secs(3600);

/// The default `--store-timeout`: the longest wait for one answer from Redis.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// The default `--store-prefix`: `nanolimit-replay:<pid>-<ns since the Unix epoch>:`, unique
/// to the run, so that a replay starts from full buckets and never sees another's keys.
pub fn default_prefix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("nanolimit-replay:{}-{nanos}:", std::process::id())
}

/// Why the store decided nothing: the replay stops.
#[derive(Debug)]
pub enum StoreFailure {
    /// Redis failed (unreachable, too slow, a key holding something else, ...).
    Redis(RedisLimitError),
    /// The replay has run longer than [`EXPIRY_SLACK`].
    TooLong,
}

impl fmt::Display for StoreFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Redis(e) => write!(f, "the Redis store failed: {e}"),
            Self::TooLong => write!(
                f,
                "the replay has run for more than {}s, the slack added to its keys' expiry: keys \
                 may have expired by Redis's clock, so the decisions could differ from an \
                 in-memory replay's",
                EXPIRY_SLACK.as_secs()
            ),
        }
    }
}

/// One matching policy's part of a [`StoreVerdict`].
#[derive(Debug)]
pub struct StoreOutcome {
    index: usize,
    key: String,
    result: PolicyResult,
    shadow: bool,
    /// The request's cost times the policy's.
    cost: u64,
}

impl OutcomeView for StoreOutcome {
    fn index(&self) -> usize {
        self.index
    }

    fn key(&self) -> &str {
        &self.key
    }

    fn result(&self) -> &PolicyResult {
        &self.result
    }

    fn is_shadow(&self) -> bool {
        self.shadow
    }
}

/// The store's answer for one request, as the in-memory [`Verdict`](nanolimit::policy::Verdict)
/// gives it. Reused from request to request.
#[derive(Debug, Default)]
pub struct StoreVerdict {
    allowed: bool,
    len: usize,
    outcomes: Vec<StoreOutcome>,
}

impl StoreVerdict {
    fn push(&mut self, index: usize, shadow: bool, cost: u64) -> &mut StoreOutcome {
        if self.len == self.outcomes.len() {
            self.outcomes.push(StoreOutcome {
                index: 0,
                key: String::new(),
                result: PolicyResult::AtCapacity,
                shadow: false,
                cost: 0,
            });
        }
        let slot = &mut self.outcomes[self.len];
        self.len += 1;
        slot.index = index;
        slot.shadow = shadow;
        slot.cost = cost;
        slot
    }
}

impl VerdictView for StoreVerdict {
    type Outcome = StoreOutcome;

    fn is_allowed(&self) -> bool {
        self.allowed
    }

    fn outcomes(&self) -> &[StoreOutcome] {
        &self.outcomes[..self.len]
    }
}

/// The policies' limiters in Redis, and the runtime that drives them.
pub struct ReplayStore {
    runtime: tokio::runtime::Runtime,
    /// One per policy, in file order.
    limiters: Vec<AnyLimiter>,
    started: Instant,
}

impl ReplayStore {
    /// The limiters of `manager`'s policies in the Redis at `url`, their keys under `prefix`,
    /// each call bounded by `timeout`; Redis is asked once (a peek that writes nothing), so
    /// that a store that cannot be used fails here, before anything is replayed.
    pub fn open<C: Clock>(
        url: &str,
        prefix: &str,
        timeout: Duration,
        manager: &PolicyManager<C>,
    ) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))?;
        let connection = {
            let _inside = runtime.enter();
            RedisConnection::open(url)
                .map_err(|e| format!("cannot use the Redis store at {url}: {e}"))?
        };
        let limiters: Vec<AnyLimiter> = manager
            .policies()
            .map(|spec| {
                // The default failure policy, `Error`: nothing is decided without Redis.
                let builder = RedisLimiter::builder(connection.clone(), *spec.quota())
                    .prefix(policy_prefix(prefix, spec.name()))
                    .timeout(timeout)
                    .expiry_slack(EXPIRY_SLACK);
                AnyLimiter::new(builder, spec.algorithm_kind())
            })
            .collect();
        if let Some(first) = limiters.first() {
            runtime
                .block_on(first.decide("", 0, true, Some(0)))
                .map_err(|e| format!("cannot use the Redis store at {url}: {e}"))?;
        }
        Ok(Self {
            runtime,
            limiters,
            started: Instant::now(),
        })
    }

    /// Decides `req` at `now` (the replay's clock) into `verdict`, as
    /// `PolicyManager::check_into` does in memory; `manager` names the policies.
    pub fn check_into<C: Clock>(
        &self,
        manager: &PolicyManager<C>,
        req: &Request<'_>,
        now: u64,
        verdict: &mut StoreVerdict,
    ) -> Result<(), StoreFailure> {
        if self.started.elapsed() > EXPIRY_SLACK {
            return Err(StoreFailure::TooLong);
        }
        verdict.len = 0;
        let mut enforcing = 0usize;
        let mut refused = false;
        for (index, spec) in manager.policies().enumerate() {
            if !spec.matcher().matches(req) {
                continue;
            }
            let shadow = spec.is_shadow();
            let cost = req.cost().saturating_mul(spec.cost_multiplier());
            let burst = spec.quota().burst();
            let slot = verdict.push(index, shadow, cost);
            // `""` for a global policy: its one bucket, as serve --store keys it.
            spec.key().write_key(req, &mut slot.key);
            if cost > burst {
                slot.result = PolicyResult::NeverFits { cost, burst };
                refused |= !shadow;
                continue;
            }
            // Provisional: the answer from Redis replaces it.
            slot.result = PolicyResult::AtCapacity;
            enforcing += usize::from(!shadow);
        }
        // Round one, pipelined (each policy has its own keys, so the order does not matter):
        // shadow policies are checked; the only enforcing policy is checked, or every
        // enforcing policy is peeked.
        let single = enforcing == 1 && !refused;
        let limiters = &self.limiters;
        let pending = &verdict.outcomes[..verdict.len];
        let answers = self.runtime.block_on(join_all(
            pending
                .iter()
                .filter(|s| !matches!(s.result, PolicyResult::NeverFits { .. }))
                .map(|s| {
                    let peek = !s.shadow && !single;
                    limiters[s.index].decide(&s.key, s.cost, peek, Some(now))
                }),
        ));
        let mut answers = answers.into_iter();
        let mut all_admit = !refused;
        for slot in &mut verdict.outcomes[..verdict.len] {
            if matches!(slot.result, PolicyResult::NeverFits { .. }) {
                continue;
            }
            let answer = answers
                .next()
                .expect("one answer per pending policy")
                .map_err(StoreFailure::Redis)?;
            slot.result = PolicyResult::Decided(*answer.decision());
            if !slot.shadow {
                all_admit &= slot.is_allowed();
            }
        }
        if single || !all_admit {
            verdict.allowed = all_admit;
            return Ok(());
        }
        // Every enforcing policy would admit: take the quota, in order. Alone (the replay's
        // keys are its own), each check admits as its peek did; should one not, the request
        // is denied and the policies after it are peeked, as in memory.
        let mut allowed = true;
        for slot in &mut verdict.outcomes[..verdict.len] {
            if slot.shadow {
                continue;
            }
            let limiter = &limiters[slot.index];
            let answer = self
                .runtime
                .block_on(limiter.decide(&slot.key, slot.cost, !allowed, Some(now)))
                .map_err(StoreFailure::Redis)?;
            slot.result = PolicyResult::Decided(*answer.decision());
            allowed &= slot.is_allowed();
        }
        verdict.allowed = allowed;
        Ok(())
    }
}
