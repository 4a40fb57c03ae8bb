//! Counters and gauges through the `metrics` facade, and `tracing` events for denials
//! (feature `metrics`). Handles are registered once per policy, so recording a decision is an
//! atomic add with no lookup.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `nanolimit_policy_allowed_total` | counter | `policy` |
//! | `nanolimit_policy_denied_total` | counter | `policy` |
//! | `nanolimit_policy_shadow_denied_total` | counter | `policy` |
//! | `nanolimit_policy_errors_total` | counter | `policy` (cost above burst, at max keys) |
//! | `nanolimit_policy_keys` | gauge | `policy` (set by `PolicyManager::publish_gauges`) |

use metrics::{counter, gauge, Counter, Gauge};

use super::manager::{PolicyOutcome, PolicyResult};
use super::spec::PolicySpec;

pub(crate) struct PolicyMetrics {
    allowed: Counter,
    denied: Counter,
    shadow_denied: Counter,
    errors: Counter,
    keys: Gauge,
}

impl PolicyMetrics {
    pub(crate) fn new(name: &str) -> Self {
        let label = name.to_owned();
        Self {
            allowed: counter!("nanolimit_policy_allowed_total", "policy" => label.clone()),
            denied: counter!("nanolimit_policy_denied_total", "policy" => label.clone()),
            shadow_denied: counter!("nanolimit_policy_shadow_denied_total", "policy" => label.clone()),
            errors: counter!("nanolimit_policy_errors_total", "policy" => label.clone()),
            keys: gauge!("nanolimit_policy_keys", "policy" => label),
        }
    }

    pub(crate) fn record(&self, spec: &PolicySpec, outcome: &PolicyOutcome) {
        let error = !matches!(outcome.result(), PolicyResult::Decided(_));
        if error {
            self.errors.increment(1);
        }
        if outcome.is_allowed() {
            self.allowed.increment(1);
        } else if outcome.is_shadow() {
            self.shadow_denied.increment(1);
            tracing::debug!(
                policy = spec.name(),
                key = outcome.key(),
                error,
                "shadow policy would deny"
            );
        } else {
            self.denied.increment(1);
            tracing::debug!(
                policy = spec.name(),
                key = outcome.key(),
                error,
                "request denied"
            );
        }
    }

    pub(crate) fn keys(&self, n: usize) {
        self.keys.set(n as f64);
    }
}
