//! The `metrics` feature: per-policy counters and the keys gauge, seen through a recorder
//! written here (a map of atomics), with exact counts.

#![cfg(feature = "metrics")]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use nanolimit::policy::{KeySelector, PolicyManager, PolicySpec, Request};
use nanolimit::{ManualClock, Quota};

#[derive(Default)]
struct Atomics(Mutex<BTreeMap<String, Arc<AtomicU64>>>);

impl Atomics {
    fn handle(&self, key: &Key) -> Arc<AtomicU64> {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        Arc::clone(self.0.lock().unwrap().entry(name).or_default())
    }

    fn get(&self, name: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .get(name)
            .map_or(u64::MAX, |a| a.load(Ordering::Relaxed))
    }
}

impl Recorder for Atomics {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.handle(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.handle(key))
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[test]
fn counters_per_policy_and_the_keys_gauge() {
    let recorder = Atomics::default();
    let ip = KeySelector::parse("ip").unwrap();
    let manager = metrics::with_local_recorder(&recorder, || {
        PolicyManager::with_clock(
            vec![
                PolicySpec::new("strict", Quota::per_second(2).unwrap(), ip.clone()),
                PolicySpec::new("watch", Quota::per_second(1).unwrap(), ip.clone()).shadow(true),
            ],
            ManualClock::new(0),
        )
        .unwrap()
    });
    for client in ["a", "a", "a", "b"] {
        manager.check(&Request::new(client, "GET", "/"));
    }
    manager.check(&Request::new("c", "GET", "/").with_cost(3));
    manager.publish_gauges();
    let get = |name: &str, policy: &str| recorder.get(&format!("{name}{{policy={policy}}}"));
    assert_eq!(get("nanolimit_policy_allowed_total", "strict"), 3);
    assert_eq!(get("nanolimit_policy_denied_total", "strict"), 2);
    assert_eq!(get("nanolimit_policy_errors_total", "strict"), 1);
    assert_eq!(get("nanolimit_policy_shadow_denied_total", "strict"), 0);
    assert_eq!(get("nanolimit_policy_allowed_total", "watch"), 2);
    assert_eq!(get("nanolimit_policy_shadow_denied_total", "watch"), 3);
    assert_eq!(get("nanolimit_policy_denied_total", "watch"), 0);
    assert_eq!(get("nanolimit_policy_errors_total", "watch"), 1);
    // Keys a and b in both (c's cost never fit: no bucket was created).
    assert_eq!(f64::from_bits(get("nanolimit_policy_keys", "strict")), 2.0);
    assert_eq!(f64::from_bits(get("nanolimit_policy_keys", "watch")), 2.0);
}
