//! The manager: matching, keys, cost, shadow mode and the all-or-nothing rule, with exact
//! numbers on a manual clock.

use std::time::Duration;

use nanolimit::policy::{
    AlgorithmKind, KeySelector, Matcher, PolicyManager, PolicyResult, PolicySpec, Request, Verdict,
};
use nanolimit::{ManualClock, Quota};

fn key(s: &str) -> KeySelector {
    KeySelector::parse(s).unwrap()
}

fn per_second(rate: u64) -> Quota {
    Quota::per_second(rate).unwrap()
}

fn get(ip: &'static str, path: &'static str) -> Request<'static> {
    Request::new(ip, "GET", path)
}

fn manager(specs: Vec<PolicySpec>) -> PolicyManager<ManualClock> {
    PolicyManager::with_clock(specs, ManualClock::new(0)).unwrap()
}

fn remaining(v: &Verdict, i: usize) -> u64 {
    v.outcomes()[i].decision().unwrap().remaining()
}

#[test]
fn a_denial_by_one_policy_takes_nothing_from_the_others() {
    // "wide" has room for 10; "narrow" for 2. The third request is denied by "narrow" and must
    // not use up "wide": after 3 requests "wide" has 8 left, not 7.
    let m = manager(vec![
        PolicySpec::new("wide", per_second(10), key("ip")),
        PolicySpec::new("narrow", per_second(2), key("ip")),
    ]);
    let req = get("a", "/");
    for left in [1, 0] {
        let v = m.check(&req);
        assert!(v.is_allowed());
        assert_eq!(remaining(&v, 1), left);
        assert!(v.outcomes().iter().all(|o| o.consumed()));
    }
    let v = m.check(&req);
    assert!(!v.is_allowed());
    assert!(v.outcomes()[0].is_allowed(), "wide alone would admit");
    assert!(!v.outcomes()[0].consumed());
    assert!(!v.outcomes()[1].is_allowed());
    assert_eq!(remaining(&v, 0), 8, "wide still holds 8");
    assert_eq!(
        v.outcomes()[1].decision().unwrap().retry_after(),
        Duration::from_millis(500)
    );
    // 500 ms refill narrow by one and wide by five (to its burst of 10): the next request
    // takes one from each.
    m.clock().advance(Duration::from_millis(500));
    let v = m.check(&req);
    assert!(v.is_allowed());
    assert_eq!((remaining(&v, 0), remaining(&v, 1)), (9, 0));
}

#[test]
fn a_denial_by_the_first_policy_leaves_the_later_ones_untouched() {
    let m = manager(vec![
        PolicySpec::new("narrow", per_second(1), key("ip")),
        PolicySpec::new("wide", per_second(5), key("global")),
    ]);
    assert!(m.check(&get("a", "/")).is_allowed());
    for _ in 0..3 {
        assert!(!m.check(&get("a", "/")).is_allowed());
    }
    // Another client: wide has lost only the one admitted request.
    let v = m.check(&get("b", "/"));
    assert!(v.is_allowed());
    assert_eq!(remaining(&v, 1), 3);
}

#[test]
fn matching_by_prefix_and_method() {
    let m = manager(vec![PolicySpec::new("api", per_second(1), key("ip"))
        .matching(Matcher::new().path_prefix("/api/").methods(["POST"]))]);
    let post = Request::new("a", "POST", "/api/x");
    let get = Request::new("a", "GET", "/api/x");
    let other = Request::new("a", "POST", "/static/x");
    assert!(m.check(&post).is_allowed());
    assert!(!m.check(&post).is_allowed());
    for req in [get, other] {
        let v = m.check(&req);
        assert!(v.is_allowed(), "no policy matches: allowed");
        assert!(v.outcomes().is_empty());
    }
}

#[test]
fn keys_separate_buckets() {
    let m = manager(vec![PolicySpec::new("p", per_second(1), key("ip+path"))]);
    assert!(m.check(&get("a", "/x")).is_allowed());
    assert!(m.check(&get("a", "/y")).is_allowed());
    assert!(m.check(&get("b", "/x")).is_allowed());
    let v = m.check(&get("a", "/x"));
    assert!(!v.is_allowed());
    assert_eq!(v.outcomes()[0].key(), "a /x");
    assert_eq!(m.keys_tracked(0), 3);
}

#[test]
fn header_keys_and_missing_headers() {
    let m = manager(vec![PolicySpec::new(
        "k",
        per_second(1),
        key("header:x-api-key"),
    )]);
    let h1 = [("X-API-KEY", "one")];
    let h2 = [("x-api-key", "two")];
    assert!(m
        .check(&Request::new("a", "GET", "/").with_headers(&h1))
        .is_allowed());
    assert!(m
        .check(&Request::new("a", "GET", "/").with_headers(&h2))
        .is_allowed());
    assert!(!m
        .check(&Request::new("b", "GET", "/").with_headers(&h1))
        .is_allowed());
    // No header: one shared bucket.
    assert!(m.check(&Request::new("c", "GET", "/")).is_allowed());
    assert!(!m.check(&Request::new("d", "GET", "/")).is_allowed());
}

#[test]
fn cost_is_the_request_cost_times_the_policy_cost() {
    let m = manager(vec![
        PolicySpec::new("p", per_second(10), key("global")).cost(3)
    ]);
    let v = m.check(&get("a", "/").with_cost(2));
    assert!(v.is_allowed());
    assert_eq!(remaining(&v, 0), 4);
    let v = m.check(&get("a", "/").with_cost(1));
    assert_eq!(remaining(&v, 0), 1);
    assert!(!m.check(&get("a", "/")).is_allowed());
}

#[test]
fn a_cost_above_the_burst_can_never_succeed_and_changes_nothing() {
    let m = manager(vec![
        PolicySpec::new("big", per_second(100), key("ip")),
        PolicySpec::new("small", per_second(5), key("ip")),
    ]);
    let v = m.check(&get("a", "/").with_cost(6));
    assert!(!v.is_allowed());
    assert_eq!(
        *v.outcomes()[1].result(),
        PolicyResult::NeverFits { cost: 6, burst: 5 }
    );
    assert!(v.outcomes()[0].is_allowed(), "big alone would admit");
    assert!(!v.outcomes()[0].consumed());
    let v = m.check(&get("a", "/").with_cost(5));
    assert!(v.is_allowed());
    assert_eq!((remaining(&v, 0), remaining(&v, 1)), (95, 0));
}

#[test]
fn shadow_policies_decide_alone_and_never_deny() {
    let m = manager(vec![
        PolicySpec::new("enforce", per_second(3), key("ip")),
        PolicySpec::new("shadow", per_second(1), key("ip")).shadow(true),
    ]);
    let v = m.check(&get("a", "/"));
    assert!(v.is_allowed());
    assert!(v.outcomes()[1].is_allowed() && v.outcomes()[1].is_shadow());
    for _ in 0..2 {
        let v = m.check(&get("a", "/"));
        assert!(v.is_allowed(), "shadow never denies");
        assert!(!v.outcomes()[1].is_allowed(), "but reports that it would");
    }
    let v = m.check(&get("a", "/"));
    assert!(!v.is_allowed(), "enforce is empty");
    // A shadow policy alone never denies either, even a cost that never fits.
    let m = manager(vec![
        PolicySpec::new("s", per_second(1), key("ip")).shadow(true)
    ]);
    let v = m.check(&get("a", "/").with_cost(2));
    assert!(v.is_allowed());
    assert!(matches!(
        v.outcomes()[0].result(),
        PolicyResult::NeverFits { .. }
    ));
}

#[test]
fn both_algorithms_and_global_policies_agree() {
    for algorithm in [AlgorithmKind::Gcra, AlgorithmKind::TokenBucket] {
        for sel in ["global", "ip"] {
            let m = manager(vec![PolicySpec::new(
                "p",
                Quota::per_minute(60).unwrap().with_burst(3).unwrap(),
                key(sel),
            )
            .algorithm(algorithm)]);
            let admitted: Vec<bool> = (0..5)
                .map(|_| m.check(&get("a", "/")).is_allowed())
                .collect();
            assert_eq!(
                admitted,
                [true, true, true, false, false],
                "{algorithm} {sel}"
            );
            m.clock().advance(Duration::from_secs(2));
            let v = m.check(&get("a", "/"));
            assert!(v.is_allowed());
            assert_eq!(remaining(&v, 0), 1);
            assert_eq!(
                v.outcomes()[0].decision().unwrap().reset_after(),
                Duration::from_secs(2)
            );
        }
    }
}

#[test]
fn duplicate_names_are_refused() {
    let r = PolicyManager::with_clock(
        vec![
            PolicySpec::new("p", per_second(1), key("ip")),
            PolicySpec::new("p", per_second(2), key("ip")),
        ],
        ManualClock::new(0),
    );
    assert_eq!(
        r.unwrap_err(),
        nanolimit::policy::ManagerError::DuplicateName("p".into())
    );
}

#[test]
fn a_reused_verdict_is_overwritten() {
    let m = manager(vec![
        PolicySpec::new("all", per_second(5), key("ip")),
        PolicySpec::new("api", per_second(5), key("ip"))
            .matching(Matcher::new().path_prefix("/api")),
    ]);
    let mut v = Verdict::new();
    m.check_into(&get("a", "/api/x"), &mut v);
    assert_eq!(v.outcomes().len(), 2);
    m.check_into(&get("a", "/"), &mut v);
    assert_eq!(v.outcomes().len(), 1);
    assert_eq!(v.outcomes()[0].index(), 0);
    assert_eq!(remaining(&v, 0), 3);
}

#[test]
fn a_cost_of_zero_asks_without_taking() {
    let m = manager(vec![
        PolicySpec::new("a", per_second(1), key("ip")),
        PolicySpec::new("b", per_second(1), key("global")),
    ]);
    for _ in 0..3 {
        let v = m.check(&get("x", "/").with_cost(0));
        assert!(v.is_allowed());
        assert!(v.outcomes().iter().all(|o| o.is_allowed() && !o.consumed()));
    }
    assert!(m.check(&get("x", "/")).is_allowed());
    assert!(!m.check(&get("x", "/")).is_allowed());
}

#[test]
fn a_full_key_limit_refuses_new_keys() {
    let m = manager(vec![
        PolicySpec::new("bounded", per_second(1), key("ip")).max_keys(2),
        PolicySpec::new("watch", per_second(1), key("ip"))
            .max_keys(1)
            .shadow(true),
    ]);
    assert!(m.check(&get("a", "/")).is_allowed());
    assert!(m.check(&get("b", "/")).is_allowed());
    let v = m.check(&get("c", "/"));
    assert!(!v.is_allowed(), "two busy keys fill the limit");
    assert_eq!(*v.outcomes()[0].result(), PolicyResult::AtCapacity);
    assert_eq!(*v.outcomes()[1].result(), PolicyResult::AtCapacity);
    assert_eq!(m.keys_tracked(0), 2);
}

/// Regression (review of issue 4, fault 1): a peek of a new key saw a full bucket whatever the
/// key limit, so every peek passed, policy `a` consumed, and then `b` (at its `max_keys`)
/// refused the key at capacity: `a` lost quota to a denied request.
#[test]
fn a_refusal_at_capacity_takes_nothing_from_the_other_policies() {
    let hourly = |burst| Quota::per_hour(1).unwrap().with_burst(burst).unwrap();
    let m = manager(vec![
        PolicySpec::new("a", hourly(2), key("ip")),
        PolicySpec::new("b", hourly(5), key("path")).max_keys(1),
    ]);
    assert!(m.check(&get("x", "/p1")).is_allowed());
    for _ in 0..2 {
        let v = m.check(&get("y", "/p2"));
        assert!(!v.is_allowed());
        assert_eq!(*v.outcomes()[1].result(), PolicyResult::AtCapacity);
        assert!(!v.outcomes()[0].consumed());
        assert_eq!(remaining(&v, 0), 2, "a's bucket for y is untouched");
    }
    // /p1 is tracked by b: y is admitted, with a's whole bucket.
    let v = m.check(&get("y", "/p1"));
    assert!(v.is_allowed(), "{v:?}");
    assert_eq!(remaining(&v, 0), 1);
    assert_eq!(m.keys_tracked(0), 2);
    assert_eq!(m.keys_tracked(1), 1);
}

/// Regression (fault 1, two key limits): the key stored in the first bounded policy to make
/// sure of room is evicted again when the second refuses, so the first keeps no trace of it.
#[test]
fn a_refusal_at_capacity_gives_back_the_room_taken_in_other_bounded_policies() {
    let m = manager(vec![
        PolicySpec::new("a", per_second(1), key("ip")).max_keys(1),
        PolicySpec::new(
            "b",
            Quota::per_hour(1).unwrap().with_burst(5).unwrap(),
            key("path"),
        )
        .max_keys(1),
    ]);
    assert!(m.check(&get("x", "/p1")).is_allowed());
    m.clock().advance(Duration::from_secs(1)); // x is idle in a; /p1 is busy in b
    let v = m.check(&get("y", "/p2"));
    assert!(!v.is_allowed());
    assert_eq!(*v.outcomes()[1].result(), PolicyResult::AtCapacity);
    assert!(v.outcomes()[0].is_allowed() && !v.outcomes()[0].consumed());
    assert_eq!(
        m.keys_tracked(0),
        0,
        "y was stored in a for room, then evicted"
    );
    assert_eq!(m.keys_tracked(1), 1);
    // A new ip on a tracked path is admitted by both.
    assert!(m.check(&get("w", "/p1")).is_allowed());
}

/// `check_policy` (the service's NL.CHECK): one policy by index, an explicit key, the policy's
/// cost multiplier, its match rule ignored; `peek_policy` changes nothing; `forget_key` resets.
#[test]
fn one_policy_checked_by_name_with_an_explicit_key() {
    let m = manager(vec![
        PolicySpec::new("ips", per_second(4), key("ip"))
            .cost(2)
            .matching(Matcher::new().path_prefix("/never/")),
        PolicySpec::new("all", per_second(1), KeySelector::global()),
    ]);
    let ips = m.index_of("ips").unwrap();
    assert_eq!(m.index_of("all"), Some(1));
    assert_eq!(m.index_of("none"), None);
    let decided = |r: Option<PolicyResult>| match r {
        Some(PolicyResult::Decided(d)) => (d.is_allowed(), d.remaining()),
        other => panic!("{other:?}"),
    };
    assert_eq!(decided(m.peek_policy(ips, "k", 1)), (true, 4));
    assert_eq!(m.keys_tracked(ips), 0, "a peek stores nothing");
    assert_eq!(decided(m.check_policy(ips, "k", 1)), (true, 2));
    assert_eq!(decided(m.check_policy(ips, "other", 2)), (true, 0));
    assert_eq!(decided(m.check_policy(ips, "k", 1)), (true, 0));
    assert_eq!(decided(m.check_policy(ips, "k", 1)), (false, 0));
    assert_eq!(
        m.check_policy(ips, "k", 3),
        Some(PolicyResult::NeverFits { cost: 6, burst: 4 })
    );
    m.clock().advance(Duration::from_millis(500));
    assert_eq!(decided(m.peek_policy(ips, "k", 1)), (true, 2));
    assert!(m.forget_key(ips, "k"));
    assert!(!m.forget_key(ips, "k"));
    assert_eq!(decided(m.peek_policy(ips, "k", 1)), (true, 4));
    // A global policy ignores the key.
    assert_eq!(decided(m.check_policy(1, "a", 1)), (true, 0));
    assert_eq!(decided(m.check_policy(1, "b", 1)), (false, 0));
    assert!(!m.forget_key(1, "a"));
    assert!(m.check_policy(2, "k", 1).is_none());
    assert!(m.peek_policy(2, "k", 1).is_none());
    // seed_key takes raw tokens (no multiplier), all or nothing.
    assert!(m.seed_key(ips, "s", 3));
    assert_eq!(decided(m.peek_policy(ips, "s", 0)), (true, 1));
    assert!(!m.seed_key(ips, "s", 2));
    assert_eq!(decided(m.peek_policy(ips, "s", 0)), (true, 1));
    assert!(!m.seed_key(2, "s", 1));
}
