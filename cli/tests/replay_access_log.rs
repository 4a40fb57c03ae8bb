//! Replay of a real access log (`../shared/data/access-2015.log`, 10,000 lines of Combined
//! Log Format, not in time order) through the repository's example policies, checked against
//! an independent computation: the log parsed here by other code, and the policies evaluated
//! with the exact reference model.

mod common;

use common::{model_replay, nanolimit, repo, text, ModelKey, ModelPolicy, ModelRequest};

const S: u64 = 1_000_000_000;

/// The shared log, read where it lies (never copied into the repository).
fn log_path() -> String {
    repo("../shared/data/access-2015.log")
}

/// An independent reading of a Combined Log Format line: split on `[`, `]` and `"`.
fn read_line(line: &str) -> ModelRequest {
    let ip = line.split_whitespace().next().unwrap().to_owned();
    let stamp = line.split('[').nth(1).unwrap().split(']').next().unwrap();
    // dd/Mon/yyyy:HH:MM:SS +0000 (this log is all +0000, all May 2015).
    let (date, zone) = stamp.split_once(' ').unwrap();
    assert_eq!(zone, "+0000");
    let f: Vec<&str> = date.split([':', '/']).collect();
    assert_eq!((f[1], f[2]), ("May", "2015"));
    let day: u64 = f[0].parse().unwrap();
    // Days from 1970-01-01 to 2015-05-01: 45 years with 11 leap days, then Jan..Apr 2015.
    let days = 45 * 365 + 11 + (31 + 28 + 31 + 30) + day - 1;
    let secs = days * 86_400
        + f[3].parse::<u64>().unwrap() * 3600
        + f[4].parse::<u64>().unwrap() * 60
        + f[5].parse::<u64>().unwrap();
    let request = line.split('"').nth(1).unwrap();
    let mut parts = request.split_whitespace();
    let (method, path) = match (parts.next(), parts.next()) {
        (Some(m), Some(p)) => (m.to_owned(), p.to_owned()),
        _ => (String::new(), String::new()),
    };
    ModelRequest {
        t_ns: secs * S,
        ip,
        method,
        path,
        headers: Vec::new(),
        cost: 1,
    }
}

/// The example policies (examples/replay/policies.toml), by the model.
fn example_policies() -> Vec<ModelPolicy> {
    let mut login = ModelPolicy::new("login", 5, 600 * S, 5, ModelKey::Ip);
    login.prefix = Some("/login");
    login.methods = &["POST"];
    let mut site = ModelPolicy::new("site", 25, S, 25, ModelKey::Global);
    site.shadow = true;
    vec![
        ModelPolicy::new("per-ip", 60, 60 * S, 20, ModelKey::Ip),
        login,
        site,
    ]
}

#[test]
fn the_shared_access_log_matches_an_independent_computation() {
    let log = std::fs::read_to_string(log_path()).expect("../shared/data/access-2015.log");
    let requests: Vec<ModelRequest> = log.lines().map(read_line).collect();
    assert_eq!(requests.len(), 10_000);
    let mut policies = example_policies();
    let verdicts = model_replay(&mut policies, &requests);

    // Totals by the model.
    let allowed = verdicts.iter().filter(|(a, _)| *a).count() as u64;
    let mut per_policy = vec![(0u64, 0u64, 0u64, 0u64); policies.len()];
    for (_, outcomes) in &verdicts {
        for o in outcomes {
            let i = policies.iter().position(|p| p.name == o.name).unwrap();
            let t = &mut per_policy[i];
            t.0 += 1;
            match (o.allowed, o.shadow) {
                (true, _) => t.1 += 1,
                (false, false) => t.2 += 1,
                (false, true) => t.3 += 1,
            }
        }
    }
    let out_of_order = {
        let mut latest = 0;
        requests
            .iter()
            .filter(|r| {
                let early = r.t_ns < latest;
                latest = latest.max(r.t_ns);
                early
            })
            .count() as u64
    };

    let run = nanolimit(
        &[
            "replay",
            "--json",
            "--config",
            &repo("examples/replay/policies.toml"),
            &log_path(),
        ],
        b"",
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let s: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(s["lines"], 10_000);
    assert_eq!(s["requests"], 10_000);
    assert_eq!(s["malformed"], 0);
    assert_eq!(s["allowed"], allowed);
    assert_eq!(s["denied"], 10_000 - allowed);
    assert_eq!(s["out_of_order"], out_of_order);
    for (i, p) in policies.iter().enumerate() {
        let got = &s["policies"][i];
        assert_eq!(got["name"], p.name);
        let (matched, allowed, denied, shadow_denied) = per_policy[i];
        assert_eq!(got["matched"], matched, "{}", p.name);
        assert_eq!(got["allowed"], allowed, "{}", p.name);
        assert_eq!(got["denied"], denied, "{}", p.name);
        assert_eq!(got["shadow_denied"], shadow_denied, "{}", p.name);
        assert_eq!(got["distinct_keys"], p.buckets.len() as u64, "{}", p.name);
    }
    // The same figures, pinned (so that a change in the model or the log is noticed too).
    assert_eq!((allowed, out_of_order), (9_226, 9_448));
    assert_eq!(per_policy[0], (10_000, 9_226, 774, 0));
    assert_eq!(per_policy[1], (0, 0, 0, 0));
    assert_eq!(per_policy[2], (10_000, 4_427, 0, 5_573));
    assert_eq!(s["policies"][0]["distinct_keys"], 1_753);
    assert_eq!(s["policies"][0]["top_denied"][0]["key"], "10.0.4.138");
    assert_eq!(s["policies"][0]["top_denied"][0]["denied"], 182);
}
