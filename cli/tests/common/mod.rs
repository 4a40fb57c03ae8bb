//! Helpers of the replay tests: running the binary, and policies evaluated independently of
//! the library with the exact reference model (`nanolimit-model`).

#![allow(dead_code)]

use std::collections::HashMap;
use std::process::{Command, Output, Stdio};

use nanolimit_model::{Bucket, Quota};

/// Runs `nanolimit` with `args`, feeding `stdin`.
pub fn nanolimit(args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_nanolimit"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the nanolimit binary runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

pub fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("UTF-8")
}

/// Where the repository (the workspace root) is.
pub fn repo(path: &str) -> String {
    format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))
}

/// A unique scratch path under the target directory.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    dir.join(format!("{name}-{}", std::process::id()))
}

/// How the model picks a key (written the way the library documents it: parts joined by a
/// space, `\` and space escaped in each when there are several).
#[derive(Clone, Debug)]
pub enum ModelKey {
    Global,
    Ip,
    IpPath,
    Header(&'static str),
}

/// One request as the model sees it.
#[derive(Clone, Debug, Default)]
pub struct ModelRequest {
    pub t_ns: u64,
    pub ip: String,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub cost: u64,
}

/// One policy, by the model.
pub struct ModelPolicy {
    pub name: &'static str,
    pub quota: Quota,
    pub key: ModelKey,
    pub prefix: Option<&'static str>,
    pub methods: &'static [&'static str],
    pub shadow: bool,
    pub cost: u64,
    pub buckets: HashMap<String, Bucket>,
}

impl ModelPolicy {
    pub fn new(name: &'static str, rate: u64, period_ns: u64, burst: u64, key: ModelKey) -> Self {
        Self {
            name,
            quota: Quota::new(rate, period_ns, burst).unwrap(),
            key,
            prefix: None,
            methods: &[],
            shadow: false,
            cost: 1,
            buckets: HashMap::new(),
        }
    }

    fn matches(&self, r: &ModelRequest) -> bool {
        self.prefix.is_none_or(|p| r.path.starts_with(p))
            && (self.methods.is_empty()
                || self
                    .methods
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(&r.method)))
    }

    fn key_of(&self, r: &ModelRequest) -> String {
        match self.key {
            ModelKey::Global => String::new(),
            ModelKey::Ip => r.ip.clone(),
            ModelKey::IpPath => {
                // Parts joined by a space, each with `\` and space escaped by a `\`.
                let esc = |v: &str| v.replace('\\', "\\\\").replace(' ', "\\ ");
                format!("{} {}", esc(&r.ip), esc(&r.path))
            }
            ModelKey::Header(h) => r
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(h))
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
        }
    }
}

/// One policy's outcome, by the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelOutcome {
    pub name: String,
    pub key: String,
    pub allowed: bool,
    pub remaining: u128,
    pub retry_after_ns: Option<u128>,
    pub reset_after_ns: Option<u128>,
    pub shadow: bool,
}

fn exact(n: nanolimit_model::Nanos) -> u128 {
    assert_eq!(
        n.floor(),
        n.ceil(),
        "the test quotas have whole-ns intervals"
    );
    n.floor()
}

/// The model's verdict: every matching enforcing policy must admit (all peeked first, then all
/// checked); a cost above a burst never fits; shadow policies check alone and never deny.
pub fn model_step(
    policies: &mut [ModelPolicy],
    now: u64,
    r: &ModelRequest,
) -> (bool, Vec<ModelOutcome>) {
    let mut out = Vec::new();
    let mut plan = Vec::new(); // (policy index, key, cost) of enforcing policies that fit
    let mut refused = false;
    for (i, p) in policies.iter_mut().enumerate() {
        if !p.matches(r) {
            continue;
        }
        let key = p.key_of(r);
        let cost = r.cost * p.cost;
        let never = ModelOutcome {
            name: p.name.into(),
            key: key.clone(),
            allowed: false,
            remaining: 0,
            retry_after_ns: None,
            reset_after_ns: None,
            shadow: p.shadow,
        };
        if cost > p.quota.burst() {
            refused |= !p.shadow;
            out.push(never);
            continue;
        }
        let quota = p.quota;
        let bucket = p
            .buckets
            .entry(key.clone())
            .or_insert_with(|| Bucket::new(quota));
        if p.shadow {
            let o = bucket.check(now, cost).unwrap();
            out.push(outcome(p.name, key, &o, true));
        } else {
            let o = bucket.peek(now, cost).unwrap();
            refused |= !o.allowed;
            plan.push((out.len(), i, key.clone(), cost));
            // If the request is denied elsewhere, nothing is taken here: the bucket as it is.
            let mut unchanged = outcome(p.name, key, &o, false);
            unchanged.remaining = o.remaining_before();
            unchanged.reset_after_ns =
                Some(exact(quota.refill_time(quota.capacity() - o.available)));
            out.push(unchanged);
        }
    }
    if !refused {
        for (slot, i, key, cost) in plan {
            let bucket = policies[i].buckets.get_mut(&key).unwrap();
            let o = bucket.check(now, cost).unwrap();
            assert!(o.allowed, "sequential: a check admits as its peek did");
            out[slot] = outcome(policies[i].name, key, &o, false);
        }
    }
    (!refused, out)
}

fn outcome(name: &str, key: String, o: &nanolimit_model::Outcome, shadow: bool) -> ModelOutcome {
    ModelOutcome {
        name: name.into(),
        key,
        allowed: o.allowed,
        remaining: o.remaining(),
        retry_after_ns: (!o.allowed).then(|| exact(o.retry_after())),
        reset_after_ns: Some(exact(o.reset_after())),
        shadow,
    }
}

/// Replays requests through the model with replay's clock rule: time relative to the first
/// request, and never backwards.
pub fn model_replay(
    policies: &mut [ModelPolicy],
    requests: &[ModelRequest],
) -> Vec<(bool, Vec<ModelOutcome>)> {
    let origin = requests.first().map_or(0, |r| r.t_ns);
    let mut latest = 0;
    requests
        .iter()
        .map(|r| {
            latest = latest.max(r.t_ns.saturating_sub(origin));
            model_step(policies, latest, r)
        })
        .collect()
}

/// Parses one `--decisions` line into (line, allowed, outcomes).
pub fn parse_decision(line: &str) -> (u64, bool, Vec<ModelOutcome>) {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let n = |v: &serde_json::Value| v.as_u64().map(u128::from);
    let outcomes = v["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| ModelOutcome {
            name: p["name"].as_str().unwrap().into(),
            key: p["key"].as_str().unwrap().into(),
            allowed: p["allowed"].as_bool().unwrap(),
            remaining: n(&p["remaining"]).unwrap(),
            retry_after_ns: n(&p["retry_after_ns"]),
            reset_after_ns: n(&p["reset_after_ns"]),
            shadow: p["shadow"].as_bool().unwrap_or(false),
        })
        .collect();
    (
        v["line"].as_u64().unwrap(),
        v["allowed"].as_bool().unwrap(),
        outcomes,
    )
}
