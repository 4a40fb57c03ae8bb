//! The Redis limiter under concurrency (never more than `burst + d / T` admitted), and its
//! key expiry (a key expires when its bucket is full again, and not before).
#![cfg(feature = "redis")]

mod redis_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use nanolimit::store::redis::{RedisAlgorithm, RedisConnection, RedisLimiter};
use nanolimit::{Gcra, Quota, TokenBucket};
use redis::AsyncCommands;
use redis_support::{raw, runtime, RedisServer};

const TASKS: usize = 8;

fn limiter<A: RedisAlgorithm>(
    connection: &RedisConnection,
    quota: Quota,
    prefix: &str,
) -> RedisLimiter<A> {
    RedisLimiter::builder(connection.clone(), quota)
        .algorithm::<A>()
        .prefix(prefix)
        .timeout(Duration::from_secs(5))
        .build()
}

/// At one frozen instant, tasks racing on one key get exactly the burst, and the admitted
/// decisions form one chain of `remaining` from `burst - 1` down to 0: nothing is admitted
/// twice from the same credit.
async fn frozen_instant<A: RedisAlgorithm>(connection: &RedisConnection, prefix: &str) {
    let burst = 100;
    let quota = Quota::per_second(10).unwrap().with_burst(burst).unwrap();
    let limiter = Arc::new(limiter::<A>(connection, quota, prefix));
    let now = 5 * 1_000_000_000;
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let limiter = Arc::clone(&limiter);
            tokio::spawn(async move {
                let mut remaining = Vec::new();
                for _ in 0..25 {
                    let outcome = limiter.check_n_at("hot", 1, now).await.unwrap();
                    if outcome.is_allowed() {
                        remaining.push(outcome.decision().remaining());
                    }
                }
                remaining
            })
        })
        .collect();
    let mut remaining = Vec::new();
    for task in tasks {
        remaining.extend(task.await.unwrap());
    }
    remaining.sort_unstable();
    assert_eq!(remaining, (0..burst).collect::<Vec<_>>());
}

#[test]
fn frozen_instant_admits_exactly_the_burst() {
    let server = RedisServer::start();
    runtime().block_on(async {
        let connection = RedisConnection::open(&server.url()).unwrap();
        frozen_instant::<Gcra>(&connection, "frozen-gcra:").await;
        frozen_instant::<TokenBucket>(&connection, "frozen-tb:").await;
    });
}

/// Redis's `TIME` in nanoseconds since the Unix epoch (microsecond resolution, as the
/// script reads it).
async fn redis_time(raw: &mut redis::aio::MultiplexedConnection) -> u64 {
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(raw).await.unwrap();
    secs * 1_000_000_000 + micros * 1_000
}

/// Tasks hammering three keys on Redis's own clock: per key, the admitted count lies between
/// the burst and `burst + d / T`, `d` the Redis time from before the first check to after the
/// last.
async fn hammer<A: RedisAlgorithm>(
    connection: &RedisConnection,
    raw: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
) {
    // T = 0.5 ms, a whole number of nanoseconds: one tick is one nanosecond.
    let (burst, interval_ns) = (20, 500_000u64);
    let quota = Quota::per_second(2_000).unwrap().with_burst(burst).unwrap();
    let limiter = Arc::new(limiter::<A>(connection, quota, prefix));
    let keys = ["a", "b", "c"];
    let start = redis_time(raw).await;
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let limiter = Arc::clone(&limiter);
            tokio::spawn(async move {
                let mut admitted = [0u64; 3];
                for i in 0..300 {
                    let k = (task + i) % 3;
                    if limiter.check(keys[k]).await.unwrap().is_allowed() {
                        admitted[k] += 1;
                    }
                }
                admitted
            })
        })
        .collect();
    let mut admitted = [0u64; 3];
    for task in tasks {
        for (total, n) in admitted.iter_mut().zip(task.await.unwrap()) {
            *total += n;
        }
    }
    let end = redis_time(raw).await;
    let bound = burst + (end - start) / interval_ns;
    for (key, n) in keys.iter().zip(admitted) {
        assert!(
            (burst..=bound).contains(&n),
            "{prefix}{key}: {n} admitted in {} ns, bound {bound}",
            end - start
        );
    }
}

#[test]
fn concurrent_tasks_never_exceed_the_rate_bound() {
    let server = RedisServer::start();
    runtime().block_on(async {
        let connection = RedisConnection::open(&server.url()).unwrap();
        let mut raw = raw(&server).await;
        hammer::<Gcra>(&connection, &mut raw, "hammer-gcra:").await;
        hammer::<TokenBucket>(&connection, &mut raw, "hammer-tb:").await;
    });
}

/// The expiry is the time until the bucket is full, rounded up to the millisecond; a denial,
/// a peek and a zero cost write nothing; an expired key comes back as a full bucket.
async fn expiry<A: RedisAlgorithm>(server: &RedisServer, prefix: &str) {
    let connection = RedisConnection::open(&server.url()).unwrap();
    let mut raw = raw(server).await;
    // T = 100 ms: half the bucket refills in 500 ms.
    let slow = limiter::<A>(&connection, Quota::per_second(10).unwrap(), prefix);
    let key = slow.redis_key("k");

    assert!(slow.peek("k").await.unwrap().is_allowed());
    assert!(slow.check_n("k", 0).await.unwrap().is_allowed());
    let exists: bool = raw.exists(&key).await.unwrap();
    assert!(!exists, "a peek or a zero cost must not write");

    let before = Instant::now();
    let outcome = slow.check_n("k", 5).await.unwrap();
    let pttl: i64 = raw.pttl(&key).await.unwrap();
    let elapsed = i64::try_from(before.elapsed().as_millis()).unwrap() + 1;
    let reset = outcome.decision().reset_after();
    assert_eq!(reset, Duration::from_millis(500)); // whole microseconds from TIME: exact
    let expected = i64::try_from(reset.as_nanos().div_ceil(1_000_000)).unwrap();
    assert!(
        pttl <= expected && pttl >= expected - elapsed,
        "PTTL {pttl} ms, expected {expected} ms (within {elapsed} ms)"
    );

    // A denial leaves the expiry alone.
    let expire_at: i64 = redis::cmd("PEXPIRETIME")
        .arg(&key)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(slow.check_n("k", 10).await.unwrap().is_denied());
    let again: i64 = redis::cmd("PEXPIRETIME")
        .arg(&key)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(again, expire_at);

    // A fast bucket (T = 1 ms) emptied: gone after 10 ms, then full again.
    let fast = limiter::<A>(
        &connection,
        Quota::per_second(1_000).unwrap().with_burst(10).unwrap(),
        prefix,
    );
    let fast_key = fast.redis_key("k");
    let before = Instant::now();
    let emptied = fast.check_n("k", 10).await.unwrap();
    let pttl: i64 = raw.pttl(&fast_key).await.unwrap();
    let elapsed = i64::try_from(before.elapsed().as_millis()).unwrap() + 1;
    assert_eq!(emptied.decision().remaining(), 0);
    assert_eq!(emptied.decision().reset_after(), Duration::from_millis(10));
    // -2: already expired, which a slow machine may see.
    assert!(
        (10 - elapsed..=10).contains(&pttl) || (pttl == -2 && elapsed >= 10),
        "PTTL {pttl} ms after {elapsed} ms"
    );
    tokio::time::sleep(Duration::from_millis(30)).await;
    let exists: bool = raw.exists(&fast_key).await.unwrap();
    assert!(!exists, "the key must expire once its bucket is full");
    assert_eq!(fast.check("k").await.unwrap().decision().remaining(), 9);
}

#[test]
fn keys_expire_when_their_bucket_is_full() {
    let server = RedisServer::start();
    runtime().block_on(async {
        expiry::<Gcra>(&server, "ttl-gcra:").await;
        expiry::<TokenBucket>(&server, "ttl-tb:").await;
    });
}

/// An explicit expiry slack is added to every expiry.
#[test]
fn expiry_slack_is_added() {
    let server = RedisServer::start();
    runtime().block_on(async {
        let connection = RedisConnection::open(&server.url()).unwrap();
        let mut raw = raw(&server).await;
        let limiter = RedisLimiter::builder(connection, Quota::per_second(10).unwrap())
            .expiry_slack(Duration::from_secs(60))
            .build();
        // At an explicit time: 1 unit = 100 ms until full, exactly.
        let outcome = limiter.check_n_at("k", 1, 7).await.unwrap();
        assert_eq!(outcome.decision().reset_after(), Duration::from_millis(100));
        let pttl: i64 = raw.pttl(limiter.redis_key("k")).await.unwrap();
        assert!((59_000..=60_100).contains(&pttl), "PTTL {pttl}");
    });
}
