//! Decisions per second through one local Redis: nanolimit's Redis limiter (GCRA and token
//! bucket, exact integer script) beside a straightforward GCRA Lua script of the kind users
//! write (floating-point milliseconds from `TIME`), in the same run, over the same client
//! connection type (one multiplexed connection: concurrent calls are pipelined on it).
//!
//! ```text
//! cargo run --release --features redis --example redis_throughput [-- SECONDS [REDIS_URL]]
//! ```
//!
//! Without a URL it starts its own `redis-server` on a free loopback port (persistence off)
//! and stops it at the end.

#[path = "../tests/redis_support/mod.rs"]
mod redis_support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nanolimit::store::redis::{RedisConnection, RedisLimiter};
use nanolimit::Quota;
use redis::aio::ConnectionManager;
use redis::Script;

/// The kind of GCRA script found in blog posts and gems: the state is a float TAT in
/// milliseconds, time is `TIME` as float milliseconds.
const NAIVE_GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return { 0, math.ceil(allow_at - now) }
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now))
return { 1, math.floor((now - allow_at) / interval) }
"#;

const KEYS: usize = 1_000;

#[derive(Clone, Copy, Debug)]
enum Contender {
    Gcra,
    TokenBucket,
    Naive,
}

async fn run(contender: Contender, url: &str, tasks: usize, seconds: f64) -> (f64, u64, u64, f64) {
    // A quota that admits most requests: every admission is a write.
    let quota = Quota::per_second(1_000_000).unwrap();
    let connection = RedisConnection::open(url).unwrap();
    let gcra = Arc::new(
        RedisLimiter::builder(connection.clone(), quota)
            .prefix("bench:")
            // Throughput, not failure handling: a loaded machine must not fail the run.
            .timeout(Duration::from_secs(2))
            .build(),
    );
    let bucket = Arc::new(
        RedisLimiter::builder(connection, quota)
            .prefix("bench:")
            // Throughput, not failure handling: a loaded machine must not fail the run.
            .timeout(Duration::from_secs(2))
            .token_bucket()
            .build(),
    );
    let naive_conn = ConnectionManager::new(redis::Client::open(url).unwrap())
        .await
        .unwrap();
    let naive = Arc::new(Script::new(NAIVE_GCRA));
    let mut stats = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut stats)
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let allowed = Arc::new(AtomicU64::new(0));
    let total = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let (gcra, bucket, naive, mut naive_conn) = (
                gcra.clone(),
                bucket.clone(),
                naive.clone(),
                naive_conn.clone(),
            );
            let (stop, allowed, total) = (stop.clone(), allowed.clone(), total.clone());
            tokio::spawn(async move {
                let (mut n, mut ok) = (0u64, 0u64);
                // Relaxed: a flag polled between calls; nothing else is published with it.
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("k{}", (task * 7919 + n as usize) % KEYS);
                    let admitted = match contender {
                        Contender::Gcra => gcra.check(&key).await.unwrap().is_allowed(),
                        Contender::TokenBucket => bucket.check(&key).await.unwrap().is_allowed(),
                        Contender::Naive => {
                            let reply: (i64, i64) = naive
                                .key(format!("naive:{key}"))
                                .arg(0.001) // ms per token: 10^6 per second
                                .arg(1_000_000)
                                .invoke_async(&mut naive_conn)
                                .await
                                .unwrap();
                            reply.0 == 1
                        }
                    };
                    n += 1;
                    ok += u64::from(admitted);
                }
                // Relaxed: totals, read after every task has been joined.
                total.fetch_add(n, Ordering::Relaxed);
                allowed.fetch_add(ok, Ordering::Relaxed);
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    // Relaxed: see the loop.
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        handle.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut stats)
        .await
        .unwrap();
    let usec_per_call = info
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_evalsha:"))
        .and_then(|line| {
            line.split(',')
                .find_map(|f| f.strip_prefix("usec_per_call="))
        })
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    // Relaxed: all writers have been joined.
    let total = total.load(Ordering::Relaxed);
    (
        total as f64 / elapsed,
        total,
        allowed.load(Ordering::Relaxed),
        usec_per_call,
    )
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: f64 = args.next().map_or(3.0, |s| s.parse().expect("SECONDS"));
    let (_server, url) = match args.next() {
        Some(url) => (None, url),
        None => {
            let server = redis_support::RedisServer::start();
            let url = server.url();
            (Some(server), url)
        }
    };
    println!("Redis at {url}, {seconds} s per measurement, {KEYS} keys, quota 10^6/s");
    println!(
        "{:<34} {:>5} {:>14} {:>10} {:>16}",
        "script", "tasks", "decisions/s", "allowed", "Redis µs/call"
    );
    for tasks in [1, 16] {
        for contender in [Contender::Gcra, Contender::TokenBucket, Contender::Naive] {
            let (rate, total, allowed, usec) = run(contender, &url, tasks, seconds).await;
            let name = match contender {
                Contender::Gcra => "nanolimit GCRA (exact integers)",
                Contender::TokenBucket => "nanolimit token bucket (exact)",
                Contender::Naive => "naive GCRA (float ms)",
            };
            println!(
                "{name:<34} {tasks:>5} {rate:>14.0} {:>9.1}% {usec:>16.2}",
                100.0 * allowed as f64 / total as f64
            );
        }
    }
}
