//! `--decisions` agrees with the exact reference model (`nanolimit-model`) on hand-written
//! JSONL traces: every verdict, every policy's key, answer, remaining, retry-after and
//! reset-after.

mod common;

use common::{
    model_replay, nanolimit, parse_decision, scratch, text, ModelKey, ModelPolicy, ModelRequest,
};

const S: u64 = 1_000_000_000;

/// Runs replay on `trace` with `policies` and returns the decision lines.
fn decisions(name: &str, policies: &str, trace: &str) -> Vec<String> {
    let config = scratch(&format!("{name}.toml"));
    let out = scratch(&format!("{name}.decisions.jsonl"));
    std::fs::write(&config, policies).unwrap();
    let run = nanolimit(
        &[
            "replay",
            "--config",
            config.to_str().unwrap(),
            "--decisions",
            out.to_str().unwrap(),
            "-",
        ],
        trace.as_bytes(),
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let lines = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(config);
    let _ = std::fs::remove_file(out);
    lines.lines().map(str::to_owned).collect()
}

/// The trace's requests, read independently of the command (t in seconds, exact decimals).
fn requests(trace: &str) -> Vec<(u64, ModelRequest)> {
    trace
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            // The number's own text (a `Value` would round it through an f64).
            let t = l.split_once(r#""t":"#).unwrap().1.trim_start();
            let t = &t[..t.find([',', '}', ' ']).unwrap()];
            let (int, frac) = t.split_once('.').unwrap_or((t, ""));
            let frac = format!("{frac:0<9}");
            let t_ns = int.parse::<u64>().unwrap() * S + frac[..9].parse::<u64>().unwrap();
            let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
            let headers = v["headers"]
                .as_object()
                .map(|h| {
                    h.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            let req = ModelRequest {
                t_ns,
                ip: s("ip"),
                method: s("method"),
                path: s("path"),
                headers,
                cost: v["cost"].as_u64().unwrap_or(1),
            };
            (i as u64 + 1, req)
        })
        .collect()
}

fn compare(
    name: &str,
    policies_toml: &str,
    model: &mut [ModelPolicy],
    trace: &str,
) -> (usize, usize) {
    let got = decisions(name, policies_toml, trace);
    let reqs = requests(trace);
    let only: Vec<ModelRequest> = reqs.iter().map(|(_, r)| r.clone()).collect();
    let expected = model_replay(model, &only);
    assert_eq!(got.len(), expected.len());
    let mut denied = 0;
    for ((line, (allowed, outcomes)), got) in reqs.iter().map(|(l, _)| l).zip(expected).zip(&got) {
        let (got_line, got_allowed, got_outcomes) = parse_decision(got);
        assert_eq!(got_line, *line);
        assert_eq!(got_allowed, allowed, "line {line}: {got}");
        assert_eq!(got_outcomes, outcomes, "line {line}: {got}");
        denied += usize::from(!allowed);
    }
    (got.len(), denied)
}

#[test]
fn one_policy_with_fractional_and_out_of_order_times() {
    let policies = r#"
[[policy]]
name = "per-ip"
rate = 2
period = "1s"
key = "ip"
"#;
    let trace = r#"{"t": 100, "ip": "a"}
{"t": 100.1, "ip": "a"}
{"t": 100.2, "ip": "a"}
{"t": 100.25, "ip": "b"}
{"t": 99, "ip": "a"}
{"t": 100.7, "ip": "a"}
{"t": 100.7, "ip": "a"}
{"t": 101.2, "ip": "a", "cost": 2}
{"t": 103, "ip": "a", "cost": 3}

{"t": 103.000000001, "ip": "a", "cost": 2}
{"t": 104.5, "ip": "a"}
"#;
    let mut model = vec![ModelPolicy::new("per-ip", 2, S, 2, ModelKey::Ip)];
    assert_eq!(compare("one", policies, &mut model, trace), (11, 5));
}

#[test]
fn several_policies_all_or_nothing_shadow_and_costs() {
    let policies = r#"
[[policy]]
name = "per-ip"
algorithm = "gcra"
rate = 5
period = "1s"
burst = 3
key = "ip"

[[policy]]
name = "api-keys"
algorithm = "token-bucket"
rate = 2
period = "1s"
burst = 4
key = "header:x-api-key"
cost = 2
[policy.match]
path_prefix = "/api/"
methods = ["GET", "POST"]

[[policy]]
name = "site"
algorithm = "token-bucket"
rate = 8
period = "1s"
key = "global"

[[policy]]
name = "watch"
rate = 1
period = "2s"
key = "ip+path"
shadow = true
"#;
    let trace = r#"{"t": 0, "ip": "a", "method": "GET", "path": "/api/x", "headers": {"x-api-key": "k1"}}
{"t": 0.1, "ip": "a", "method": "GET", "path": "/api/x", "headers": {"X-Api-Key": "k1"}}
{"t": 0.2, "ip": "a", "method": "GET", "path": "/api/x", "headers": {"x-api-key": "k1"}}
{"t": 0.2, "ip": "b", "method": "POST", "path": "/api/y", "headers": {"x-api-key": "k1"}}
{"t": 0.3, "ip": "b", "method": "DELETE", "path": "/api/y", "headers": {"x-api-key": "k1"}}
{"t": 0.3, "ip": "c", "method": "GET", "path": "/"}
{"t": 0.4, "ip": "c", "method": "GET", "path": "/"}
{"t": 0.4, "ip": "d", "method": "GET", "path": "/"}
{"t": 0.45, "ip": "e", "method": "GET", "path": "/"}
{"t": 0.5, "ip": "e", "method": "GET", "path": "/api/z", "cost": 3}
{"t": 0.6, "ip": "e", "method": "GET", "path": "/api/z"}
{"t": 1.5, "ip": "a", "method": "GET", "path": "/api/x", "headers": {"x-api-key": "k1"}}
{"t": 1.6, "ip": "a", "method": "GET", "path": "/api/x", "headers": {"x-api-key": "k2"}}
{"t": 1.0, "ip": "f", "method": "GET", "path": "/"}
{"t": 2.5, "ip": "f", "method": "GET", "path": "/", "cost": 4}
{"t": 9, "ip": "f", "method": "GET", "path": "/"}
"#;
    let mut api = ModelPolicy::new("api-keys", 2, S, 4, ModelKey::Header("x-api-key"));
    api.prefix = Some("/api/");
    api.methods = &["GET", "POST"];
    api.cost = 2;
    let mut watch = ModelPolicy::new("watch", 1, 2 * S, 1, ModelKey::IpPath);
    watch.shadow = true;
    let mut model = vec![
        ModelPolicy::new("per-ip", 5, S, 3, ModelKey::Ip),
        api,
        ModelPolicy::new("site", 8, S, 8, ModelKey::Global),
        watch,
    ];
    assert_eq!(compare("several", policies, &mut model, trace), (16, 4));
}

/// Regression (review of issue 4, fault 2): `t` went through an f64, which at Unix-epoch
/// times cannot hold nanoseconds: 1700000000.999999999 was read as 1700000001 and admitted
/// one nanosecond early. Times here are Unix-epoch seconds with nine decimals.
#[test]
fn nanosecond_times_at_unix_epoch_scale() {
    let policies = r#"
[[policy]]
name = "one"
rate = 1
period = "1s"
burst = 1
key = "ip"

[[policy]]
name = "pair"
algorithm = "token-bucket"
rate = 4
period = "1s"
burst = 2
key = "global"
"#;
    let trace = r#"{"t": 1700000000.0, "ip": "a"}
{"t": 1700000000.999999999, "ip": "a"}
{"t": 1700000001.000000000, "ip": "a"}
{"t": 1700000001.000000001, "ip": "b"}
{"t": 1700000001.249999999, "ip": "c"}
{"t": 1700000001.250000001, "ip": "d"}
{"t": 1700000001.500000001, "ip": "d"}
{"t": 1700000002.000000000, "ip": "a"}
{"t": 1700000002.999999999, "ip": "b"}
{"t": 18446744073.709551614, "ip": "e"}
{"t": 18446744073.709551615, "ip": "e"}
"#;
    let mut model = vec![
        ModelPolicy::new("one", 1, S, 1, ModelKey::Ip),
        ModelPolicy::new("pair", 4, S, 2, ModelKey::Global),
    ];
    let got = decisions("epoch-ns", policies, trace);
    assert!(
        got[1].starts_with(r#"{"line":2,"allowed":false"#)
            && got[1].contains(r#""retry_after_ns":1,"#),
        "{}",
        got[1]
    );
    let (lines, denied) = compare("epoch-ns", policies, &mut model, trace);
    assert_eq!(lines, 11);
    assert!(denied >= 3, "{denied}");
}
