//! `nanolimit replay --store redis://...` against a real redis-server started by the test:
//! the same summary and the same `--decisions`, byte for byte, as the in-memory replay (time
//! is the input's, passed to Redis explicitly), a fresh set of keys per run, and a clear
//! error with exit status 2, and no summary, when Redis cannot be used.

#[path = "../../tests/redis_support/mod.rs"]
mod redis_support;

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{nanolimit, repo, scratch, text};
use redis_support::RedisServer;

/// What one replay printed and decided.
struct Run {
    status: Option<i32>,
    stdout: String,
    stderr: String,
    decisions: String,
}

/// `nanolimit replay --decisions <tmp> <args...>`, reading `stdin`.
fn replay(name: &str, args: &[&str], stdin: &[u8]) -> Run {
    let out_path = scratch(&format!("replay-store-{name}.jsonl"));
    let _ = std::fs::remove_file(&out_path);
    let out_arg = out_path.to_str().unwrap().to_owned();
    let mut all = vec!["replay", "--decisions", &out_arg];
    all.extend_from_slice(args);
    let out = nanolimit(&all, stdin);
    let decisions = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    Run {
        status: out.status.code(),
        stdout: text(&out.stdout).to_owned(),
        stderr: text(&out.stderr).to_owned(),
        decisions,
    }
}

/// The same replay in memory and through `redis`: both succeed, print the same summary and
/// write the same decisions, byte for byte. Returns the in-memory run.
fn same_in_memory_and_in_redis(
    name: &str,
    redis: &RedisServer,
    args: &[&str],
    stdin: &[u8],
) -> Run {
    let memory = replay(&format!("{name}-memory"), args, stdin);
    assert_eq!(memory.status, Some(0), "{}", memory.stderr);
    let url = redis.url();
    let mut with_store = vec!["--store", url.as_str()];
    with_store.extend_from_slice(args);
    let stored = replay(&format!("{name}-redis"), &with_store, stdin);
    assert_eq!(stored.status, Some(0), "{}", stored.stderr);
    assert_eq!(stored.stderr, "");
    assert!(!memory.decisions.is_empty());
    assert_eq!(stored.stdout, memory.stdout, "the summaries differ");
    if stored.decisions != memory.decisions {
        let first = stored
            .decisions
            .lines()
            .zip(memory.decisions.lines())
            .find(|(s, m)| s != m);
        panic!("the decisions differ; first difference (redis, memory): {first:#?}");
    }
    memory
}

fn pttl(redis: &RedisServer, key: &str) -> i64 {
    let mut con = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("PTTL").arg(key).query(&mut con).unwrap()
}

/// The run prefixes (`nanolimit-replay:<pid>-<ns>:`) among `keys`.
fn run_prefixes(keys: &[String]) -> Vec<String> {
    let mut prefixes: Vec<String> = keys
        .iter()
        .map(|k| {
            let rest = k
                .strip_prefix("nanolimit-replay:")
                .unwrap_or_else(|| panic!("{k} is not under the default prefix"));
            let run = rest.split(':').next().unwrap();
            format!("nanolimit-replay:{run}:")
        })
        .collect();
    prefixes.dedup();
    prefixes
}

#[test]
fn the_example_access_log_gives_the_same_summary_and_decisions_as_in_memory() {
    let redis = RedisServer::start();
    let policies = repo("examples/replay/policies.toml");
    let log = repo("examples/replay/access.log");
    let args = ["--config", policies.as_str(), log.as_str()];
    let memory = same_in_memory_and_in_redis("example", &redis, &args, b"");
    assert!(memory.stdout.contains("allowed: 47  denied: 11"));
    // A second run starts from full buckets again: a fresh prefix, so the same results (a
    // shared one would find the first run's buckets drained).
    same_in_memory_and_in_redis("example-again", &redis, &args, b"");
    let keys = redis.keys();
    let prefixes = run_prefixes(&keys);
    assert_eq!(prefixes.len(), 2, "{prefixes:?}");
    // Named as serve --store names a policy's keys; a global policy's bucket has the empty
    // key. Expiry: the bucket's refill time (by the replay's clock) plus an hour of slack.
    let p = &prefixes[0];
    for expected in [
        format!("{p}policy:per-ip:gcra:60/60000000000/20:198.51.100.7"),
        format!("{p}policy:login:token-bucket:5/600000000000/5:203.0.113.5"),
        format!("{p}policy:site:gcra:25/1000000000/25:"),
    ] {
        assert!(keys.contains(&expected), "{expected} not in {keys:#?}");
        let ttl = pttl(&redis, &expected);
        assert!(
            ttl > 3_500_000 && ttl <= 3_600_000 + 600_000,
            "{expected}: {ttl}"
        );
    }

    // --json, and --store-prefix: the same JSON, the keys under the prefix given.
    let url = redis.url();
    let json = ["--json", "--config", policies.as_str(), log.as_str()];
    let memory = replay("example-json-memory", &json, b"");
    let mut with_prefix = vec!["--store", url.as_str(), "--store-prefix", "audit-7:"];
    with_prefix.extend_from_slice(&json);
    let stored = replay("example-json-redis", &with_prefix, b"");
    assert_eq!(stored.status, Some(0), "{}", stored.stderr);
    assert_eq!(stored.stdout, memory.stdout);
    assert_eq!(stored.decisions, memory.decisions);
    assert!(redis
        .keys()
        .iter()
        .any(|k| k == "audit-7:policy:per-ip:gcra:60/60000000000/20:198.51.100.7"));
}

#[test]
fn a_real_log_with_out_of_order_lines_gives_the_same_results_as_in_memory() {
    let log = repo("../shared/data/access-2015.log");
    if !Path::new(&log).exists() {
        eprintln!("skipped: {log} is not there");
        return;
    }
    let redis = RedisServer::start();
    let policies = repo("examples/replay/policies.toml");
    let memory = same_in_memory_and_in_redis(
        "access-2015",
        &redis,
        &["--config", policies.as_str(), log.as_str()],
        b"",
    );
    assert!(memory.stdout.starts_with("10000 lines from 1 input"));
    assert!(memory.stdout.contains("earlier than the latest time seen"));
}

/// Two enforcing policies that match the same requests (GCRA per client, a token bucket per
/// API key), a policy with a cost multiplier, and a global shadow policy (token bucket).
/// Quotas of 3 a second: an emission interval of 333,333,333.3 ns, not a whole number.
const POLICIES: &str = r#"
[[policy]]
name = "per-ip"
algorithm = "gcra"
rate = 3
period = "1s"
key = "ip"

[[policy]]
name = "api-key"
algorithm = "token-bucket"
rate = 2
period = "1s"
burst = 4
key = "header:x-api-key"
[policy.match]
path_prefix = "/api/"

[[policy]]
name = "uploads"
algorithm = "gcra"
rate = 10
period = "1m"
burst = 6
cost = 2
key = "ip+path"
[policy.match]
methods = ["POST"]

[[policy]]
name = "everyone"
algorithm = "token-bucket"
rate = 5
period = "1s"
key = "global"
shadow = true
"#;

/// A hand-written trace: bursts at one instant, lines out of order (judged at the latest
/// time), costs above a burst (4 > per-ip's 3; 2 x 4 > uploads' 6), requests both enforcing
/// policies admit, one admits and the other denies (the one that admitted keeps its quota),
/// and the shadow policy running dry without denying anything.
const TRACE: &str = r#"{"t": 100.0, "ip": "a", "method": "GET", "path": "/api/x", "headers": {"x-api-key": "k1"}}
{"t": 100.0, "ip": "a", "method": "GET", "path": "/api/x", "headers": {"x-api-key": "k1"}}
{"t": 100.0, "ip": "b", "method": "GET", "path": "/api/y", "headers": {"x-api-key": "k1"}}
{"t": 100.0, "ip": "b", "method": "GET", "path": "/api/y", "headers": {"x-api-key": "k1"}}
{"t": 100.0, "ip": "b", "method": "GET", "path": "/api/y", "headers": {"x-api-key": "k1"}}
{"t": 100.1, "ip": "a", "method": "GET", "path": "/api/x", "headers": {"x-api-key": "k2"}}
{"t": 100.1, "ip": "a", "method": "GET", "path": "/api/x", "headers": {"x-api-key": "k2"}}
{"t": 99.5, "ip": "c", "method": "GET", "path": "/"}
{"t": 100.2, "ip": "c", "method": "GET", "path": "/", "cost": 4}
{"t": 100.2, "ip": "c", "method": "POST", "path": "/upload", "cost": 4}
{"t": 100.2, "ip": "c", "method": "POST", "path": "/upload", "cost": 3}
{"t": 100.3, "ip": "c", "method": "POST", "path": "/upload", "cost": 1}
{"t": 100.3, "ip": "c", "method": "POST", "path": "/api/upload", "headers": {"x-api-key": "k3"}, "cost": 2}
{"t": 100.333333333, "ip": "a", "method": "GET", "path": "/api/x", "headers": {"x-api-key": "k1"}}
{"t": 100.333333334, "ip": "a", "method": "GET", "path": "/api/x", "headers": {"x-api-key": "k1"}}
{"t": 100.0, "ip": "d", "method": "GET", "path": "/api/z", "headers": {"x-api-key": "k4"}}
{"t": 100.4, "ip": "d", "method": "GET", "path": "/api/z", "headers": {"x-api-key": "k4"}, "cost": 3}
{"t": 100.4, "ip": "d", "method": "GET", "path": "/api/z", "headers": {"x-api-key": "k4"}, "cost": 2}
{"t": 101.0, "ip": "d", "method": "GET", "path": "/api/z", "headers": {"x-api-key": "k4"}, "cost": 3}
{"t": 101.5, "ip": "b", "method": "GET", "path": "/api/y", "headers": {"x-api-key": "k1"}}
{"t": 101.5, "ip": "e", "method": "GET", "path": "/api/w"}
{"t": 101.5, "ip": "e", "method": "GET", "path": "/api/w"}
{"t": 101.5, "ip": "f", "method": "GET", "path": "/api/w"}
{"t": 101.5, "ip": "f", "method": "GET", "path": "/api/w"}
{"t": 101.4, "ip": "a", "method": "POST", "path": "/upload"}
{"t": 160.0, "ip": "c", "method": "POST", "path": "/upload", "cost": 3}
{"t": 160.0, "ip": "c", "method": "POST", "path": "/upload", "cost": 1}
{"t": 3700.0, "ip": "a", "method": "GET", "path": "/api/x", "headers": {"x-api-key": "k1"}, "cost": 3}
{"t": 3700.0, "ip": "a", "method": "GET", "path": "/api/x", "headers": {"x-api-key": "k1"}}
{"t": 0.0, "ip": "a", "method": "GET", "path": "/api/x", "headers": {"x-api-key": "k2"}}
"#;

/// A longer trace from a fixed pseudo-random sequence: a few clients and API keys, times
/// mostly stepping forward by up to 0.4 s, one line in eight earlier than the one before.
fn generated_trace(lines: usize) -> String {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut t_ms: u64 = 5_000;
    let mut out = String::new();
    for _ in 0..lines {
        let back = next(8) == 0;
        t_ms = if back {
            t_ms.saturating_sub(next(2_000))
        } else {
            t_ms + next(400)
        };
        let ip = ["a", "b", "c", "d", "e"][next(5) as usize];
        let (method, path) = [
            ("GET", "/api/items"),
            ("GET", "/"),
            ("POST", "/upload"),
            ("POST", "/api/upload"),
        ][next(4) as usize];
        let key = ["k1", "k2", "k3"][next(3) as usize];
        let cost = [1, 1, 1, 2, 3, 4][next(6) as usize];
        out.push_str(&format!(
            "{{\"t\": {}.{:03}, \"ip\": \"{ip}\", \"method\": \"{method}\", \"path\": \"{path}\", \
             \"headers\": {{\"x-api-key\": \"{key}\"}}, \"cost\": {cost}}}\n",
            t_ms / 1000,
            t_ms % 1000
        ));
    }
    out
}

#[test]
fn a_trace_of_every_case_gives_the_same_decisions_as_in_memory() {
    let redis = RedisServer::start();
    let config = scratch("replay-store-policies.toml");
    std::fs::write(&config, POLICIES).unwrap();
    let config = config.to_str().unwrap().to_owned();

    let memory = same_in_memory_and_in_redis(
        "trace",
        &redis,
        &["--json", "--config", &config, "-"],
        TRACE.as_bytes(),
    );
    // The trace covers what it says it covers (by the in-memory replay's own account).
    let summary: serde_json::Value = serde_json::from_str(&memory.stdout).unwrap();
    assert_eq!(summary["requests"], 30);
    assert!(summary["out_of_order"].as_u64().unwrap() >= 4);
    let policy = |name: &str| {
        summary["policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()
            .clone()
    };
    assert!(policy("per-ip")["errors"].as_u64().unwrap() >= 2);
    assert!(policy("uploads")["errors"].as_u64().unwrap() >= 1);
    assert!(policy("everyone")["shadow_denied"].as_u64().unwrap() >= 1);
    let lines: Vec<serde_json::Value> = memory
        .decisions
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let enforcing = |d: &serde_json::Value| -> Vec<bool> {
        d["policies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["shadow"].as_bool() != Some(true))
            .map(|p| p["allowed"].as_bool().unwrap())
            .collect()
    };
    assert!(
        lines.iter().any(|d| enforcing(d) == [true, true]),
        "both enforcing policies admit"
    );
    assert!(
        lines
            .iter()
            .any(|d| d["allowed"] == false && enforcing(d).contains(&true)),
        "one enforcing policy admits, another denies: nothing is taken"
    );

    let long = generated_trace(3_000);
    same_in_memory_and_in_redis(
        "generated",
        &redis,
        &["--config", &config, "-"],
        long.as_bytes(),
    );
}

/// A port with nothing listening on it.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

#[test]
fn an_unreachable_store_is_an_error_with_status_2_and_no_summary() {
    let port = closed_port();
    let url = format!("redis://127.0.0.1:{port}/");
    let out_path = scratch("replay-store-unreachable.jsonl");
    let _ = std::fs::remove_file(&out_path);
    let started = Instant::now();
    let out = nanolimit(
        &[
            "replay",
            "--store",
            &url,
            "--store-timeout",
            "300ms",
            "--decisions",
            out_path.to_str().unwrap(),
            "--config",
            &repo("examples/replay/policies.toml"),
            &repo("examples/replay/access.log"),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "", "no summary");
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("error: cannot use the Redis store at {url}: ")),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!out_path.exists(), "the decisions file is not even created");
    assert!(started.elapsed() < Duration::from_secs(10));

    // The store flags need --store.
    let out = nanolimit(
        &[
            "replay",
            "--store-prefix",
            "x:",
            "--config",
            &repo("examples/replay/policies.toml"),
            &repo("examples/replay/access.log"),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn redis_failing_during_a_replay_stops_it_with_status_2_and_no_summary() {
    let mut redis = RedisServer::start();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nanolimit"))
        .args([
            "replay",
            "--store",
            &redis.url(),
            "--store-timeout",
            "300ms",
        ])
        .args(["--config", &repo("examples/replay/policies.toml"), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let line = "10.0.0.1 - - [10/Oct/2024:13:55:36 +0000] \"GET / HTTP/1.1\" 200 1\n";
    stdin.write_all(line.as_bytes()).unwrap();
    stdin.flush().unwrap();
    // Line 1 is decided in Redis once its keys are there.
    let deadline = Instant::now() + Duration::from_secs(10);
    while redis.keys().is_empty() {
        assert!(Instant::now() < deadline, "line 1 was never decided");
        std::thread::sleep(Duration::from_millis(10));
    }
    redis.kill();
    stdin.write_all(line.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "", "no summary");
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: -:2: the Redis store failed: ")
            && stderr.trim_end().ends_with("; the replay stopped"),
        "{stderr}"
    );
}
