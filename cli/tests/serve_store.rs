//! `nanolimit serve --store redis://...` against a real redis-server started by the test:
//! CL.THROTTLE, NL.CHECK/NL.PEEK and POST /v1/check decided in Redis, one limit shared by
//! several servers (in-process and two real `serve` processes), and each failure policy when
//! Redis is unreachable.
//!
//! Time here is Redis's own clock, so the quotas are slow (one per hour): nothing refills
//! while a test runs, and every figure is exact.

#[path = "../../tests/redis_support/mod.rs"]
mod redis_support;
mod serve_support;

use std::io::{Read, Write};
use std::time::Duration;

use nanolimit::store::redis::FailurePolicy;
use nanolimit_cli::serve::store::StoreConfig;
use redis_support::RedisServer;
use serve_support::{throttle, ServeProcess, TestServer};

fn with_store(url: &str, on_failure: FailurePolicy) -> TestServer {
    let mut store = StoreConfig::new(url);
    store.on_failure = on_failure;
    store.timeout = Duration::from_millis(500);
    TestServer::start(move |c| c.store = Some(store))
}

#[test]
fn cl_throttle_is_decided_in_redis_with_exact_replies() {
    let redis = RedisServer::start();
    let server = with_store(&redis.url(), FailurePolicy::Error);
    let mut con = server.redis();
    // max_burst 2 (limit 3), 1 per hour.
    let q = ["user", "2", "1", "3600"];
    assert_eq!(throttle(&mut con, &q).unwrap(), [0, 3, 2, -1, 3600]);
    assert_eq!(throttle(&mut con, &q).unwrap(), [0, 3, 1, -1, 7200]);
    assert_eq!(throttle(&mut con, &q).unwrap(), [0, 3, 0, -1, 10800]);
    assert_eq!(throttle(&mut con, &q).unwrap(), [1, 3, 0, 3600, 10800]);
    assert_eq!(
        throttle(&mut con, &["user", "2", "1", "3600", "0"]).unwrap(),
        [0, 3, 0, -1, 10800],
        "quantity 0 only looks"
    );
    // The bucket lives in Redis under the quota-namespaced key.
    assert_eq!(redis.keys(), ["nanolimit:cl:gcra:1/3600000000000/3:user"]);
    // A key that is not UTF-8 cannot be a Redis key of the store: an error, nothing stored.
    let mut tcp = server.tcp();
    tcp.write_all(
        b"*5\r\n$11\r\nCL.THROTTLE\r\n$2\r\n\xff\xfe\r\n$1\r\n2\r\n$1\r\n1\r\n$4\r\n3600\r\n",
    )
    .unwrap();
    let mut reply = [0u8; 64];
    let n = tcp.read(&mut reply).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&reply[..n]),
        "-ERR invalid key: not UTF-8 (keys kept in Redis must be text)\r\n"
    );
    assert_eq!(redis.keys().len(), 1);
}

#[test]
fn named_policies_over_resp_and_http_are_decided_in_redis() {
    let redis = RedisServer::start();
    let dir = std::env::temp_dir().join(format!("nanolimit-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policies.toml");
    std::fs::write(
        &path,
        "[[policy]]\nname = \"api\"\nalgorithm = \"token-bucket\"\nrate = 4\nperiod = \"1h\"\nkey = \"ip\"\ncost = 2\n\n\
         [[policy]]\nname = \"site\"\nrate = 1\nperiod = \"1h\"\nkey = \"global\"\n",
    )
    .unwrap();
    let mut store = StoreConfig::new(redis.url());
    store.timeout = Duration::from_millis(500);
    let server = TestServer::start(|c| {
        c.store = Some(store);
        c.policies = Some(path.clone());
    });
    let mut con = server.redis();
    let check = |con: &mut redis::Connection, args: &[&str]| -> redis::RedisResult<Vec<i64>> {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(con)
    };
    // api: burst 4, cost multiplier 2; one token per 900 s. The replies count in
    // milliseconds of Redis's clock, which runs meanwhile: `ms` compares the whole reply,
    // allowing its times to be up to a second short of the figure at the first call (the
    // arithmetic itself is exact: tests/redis_differential.rs, with explicit times).
    let ms = |reply: Vec<i64>, expected: [i64; 5]| {
        let close =
            |got: i64, want: i64| want <= 0 && got == want || (want - 1000 < got && got <= want);
        assert_eq!(reply[..3], expected[..3], "{reply:?}");
        assert!(
            close(reply[3], expected[3]) && close(reply[4], expected[4]),
            "{reply:?} vs {expected:?}"
        );
    };
    ms(
        check(&mut con, &["NL.PEEK", "api", "a"]).unwrap(),
        [1, 4, 4, -1, 0],
    );
    ms(
        check(&mut con, &["NL.CHECK", "api", "a"]).unwrap(),
        [1, 4, 2, -1, 1_800_000],
    );
    ms(
        check(&mut con, &["NL.CHECK", "api", "a"]).unwrap(),
        [1, 4, 0, -1, 3_600_000],
    );
    ms(
        check(&mut con, &["NL.CHECK", "api", "a"]).unwrap(),
        [0, 4, 0, 1_800_000, 3_600_000],
    );
    let err = check(&mut con, &["NL.CHECK", "api", "a", "3"]).unwrap_err();
    assert!(
        err.to_string()
            .contains("a cost of 6 is more than the policy's burst of 4"),
        "{err}"
    );
    // The HTTP side shares the same buckets: denied, as the last NL.CHECK.
    let response = ureq::post(&server.http_url("/v1/check"))
        .send_json(ureq::json!({"policy": "api", "key": "a"}));
    let body: serde_json::Value = match response {
        Ok(r) => r.into_json().unwrap(),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(body["allowed"], false);
    assert_eq!(body["remaining"], 0);
    let retry = body["retry_after_ms"].as_i64().unwrap();
    assert!(1_799_000 < retry && retry <= 1_800_000, "{body}");
    // A global policy has one bucket whatever the key.
    assert_eq!(check(&mut con, &["NL.CHECK", "site", "x"]).unwrap()[0], 1);
    assert_eq!(check(&mut con, &["NL.CHECK", "site", "y"]).unwrap()[0], 0);
    assert_eq!(
        redis.keys(),
        [
            "nanolimit:policy:api:token-bucket:4/3600000000000/4:a",
            "nanolimit:policy:site:gcra:1/3600000000000/1:",
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn two_servers_on_one_redis_share_one_limit() {
    let redis = RedisServer::start();
    let a = with_store(&redis.url(), FailurePolicy::Error);
    let b = with_store(&redis.url(), FailurePolicy::Error);
    let (mut ca, mut cb) = (a.redis(), b.redis());
    let q = ["shared", "3", "1", "3600"];
    let mut remaining = Vec::new();
    for i in 0..10 {
        let con = if i % 2 == 0 { &mut ca } else { &mut cb };
        let reply = throttle(con, &q).unwrap();
        remaining.push((reply[0], reply[2]));
    }
    // Burst 4 across both servers, one chain of remaining values.
    assert_eq!(
        remaining,
        [
            (0, 3),
            (0, 2),
            (0, 1),
            (0, 0),
            (1, 0),
            (1, 0),
            (1, 0),
            (1, 0),
            (1, 0),
            (1, 0)
        ]
    );
}

#[test]
fn an_unreachable_redis_follows_the_failure_policy() {
    // A port with nothing on it: every call fails to connect.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("redis://{}/", l.local_addr().unwrap())
    };
    let q = ["k", "2", "1", "3600"];
    let error = with_store(&dead, FailurePolicy::Error);
    let err = throttle(&mut error.redis(), &q).unwrap_err();
    assert!(err.to_string().contains("store unavailable"), "{err}");
    let status = ureq::post(&error.http_url("/v1/check"))
        .send_json(ureq::json!({"policy": "default", "key": "k"}));
    assert!(
        matches!(status, Err(ureq::Error::Status(503, _))),
        "{status:?}"
    );

    let open = with_store(&dead, FailurePolicy::FailOpen);
    assert_eq!(throttle(&mut open.redis(), &q).unwrap()[0], 0, "allowed");
    let closed = with_store(&dead, FailurePolicy::FailClosed);
    assert_eq!(throttle(&mut closed.redis(), &q).unwrap()[0], 1, "limited");
    let fallback = with_store(&dead, FailurePolicy::Fallback);
    let mut con = fallback.redis();
    let local: Vec<i64> = (0..4).map(|_| throttle(&mut con, &q).unwrap()[0]).collect();
    assert_eq!(local, [0, 0, 0, 1], "a local bucket of the same quota");
    let info: String = redis::cmd("INFO").arg("limiter").query(&mut con).unwrap();
    assert!(
        info.contains("store:redis\r\nstore_degraded:4\r\n"),
        "{info}"
    );
}

/// A real `nanolimit serve --store` process.
fn serve_process(store: &str) -> ServeProcess {
    let served = ServeProcess::start(&["--http", "off", "--store", store, "--store-timeout", "1s"]);
    assert!(
        served.line.ends_with(&format!("store: Redis at {store}\n")),
        "{}",
        served.line
    );
    served
}

/// Two processes, two client threads each, 50 calls per thread on one key of 1 per hour
/// with a burst of 10: exactly 10 admitted in all (`burst + d/T` with `d/T` < 1).
#[test]
fn two_serve_processes_hammering_one_key_admit_exactly_the_burst() {
    let redis = RedisServer::start();
    let servers = [serve_process(&redis.url()), serve_process(&redis.url())];
    let admitted: i64 = std::thread::scope(|scope| {
        let threads: Vec<_> = servers
            .iter()
            .flat_map(|s| [s.resp, s.resp])
            .map(|addr| {
                scope.spawn(move || {
                    let mut con = redis::Client::open(format!("redis://{addr}/"))
                        .unwrap()
                        .get_connection()
                        .unwrap();
                    (0..50)
                        .map(|_| {
                            let r = throttle(&mut con, &["hot", "9", "1", "3600"]).unwrap();
                            1 - r[0]
                        })
                        .sum::<i64>()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).sum()
    });
    assert_eq!(admitted, 10);
}

/// A pipeline mixing store requests with others: the store's are decided together, and
/// every reply still comes back in request order.
#[test]
fn pipelined_store_requests_reply_in_order() {
    let redis = RedisServer::start();
    let server = with_store(&redis.url(), FailurePolicy::Error);
    let reply = serve_support::exchange_until_close(
        server.tcp(),
        b"PING\r\nCL.THROTTLE a 1 1 3600\r\nCL.THROTTLE b 1 1 3600 2\r\nECHO x\r\n\
          CL.THROTTLE b 1 1 3600\r\nCL.THROTTLE c 1 1 3600 3\r\nQUIT\r\n",
    );
    assert_eq!(
        reply,
        "+PONG\r\n\
         *5\r\n:0\r\n:2\r\n:1\r\n:-1\r\n:3600\r\n\
         *5\r\n:0\r\n:2\r\n:0\r\n:-1\r\n:7200\r\n\
         $1\r\nx\r\n\
         *5\r\n:1\r\n:2\r\n:0\r\n:3600\r\n:7200\r\n\
         -ERR invalid quantity: 3 is more than the limit 2 (max_burst + 1) and can never be admitted\r\n\
         +OK\r\n"
    );
}
