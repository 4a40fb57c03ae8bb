//! Redis killed mid-run and restarted: each failure policy decides as documented while it is
//! down, no call hangs past its timeout, and the same limiters use Redis again once it is
//! back, without being rebuilt. Also: a Redis that stops answering times out.
#![cfg(feature = "redis")]

mod redis_support;

use std::time::{Duration, Instant};

use nanolimit::store::redis::{
    DecisionSource, FailurePolicy, RedisConnection, RedisLimitError, RedisLimiter,
};
use nanolimit::Quota;
use redis_support::{raw, runtime, RedisServer};

// Long enough for a loaded CI machine to answer a live Redis; a dead one fails at once.
const TIMEOUT: Duration = Duration::from_secs(1);

fn limiter(connection: &RedisConnection, policy: FailurePolicy) -> RedisLimiter {
    // 3 per hour: nothing refills during the test.
    RedisLimiter::builder(connection.clone(), Quota::per_hour(3).unwrap())
        .prefix(format!("{policy:?}:"))
        .timeout(TIMEOUT)
        .on_failure(policy)
        .build()
}

/// A check that must return within its timeout (plus scheduling slack), whatever Redis does.
async fn timed<T>(call: impl std::future::Future<Output = T>) -> T {
    let start = Instant::now();
    let result = call.await;
    assert!(
        start.elapsed() < TIMEOUT + Duration::from_millis(500),
        "a call took {:?}",
        start.elapsed()
    );
    result
}

#[test]
fn each_policy_behaves_as_documented_and_recovers() {
    let mut server = RedisServer::start();
    runtime().block_on(async {
        let connection = RedisConnection::open(&server.url()).unwrap();
        let error = limiter(&connection, FailurePolicy::Error);
        let closed = limiter(&connection, FailurePolicy::FailClosed);
        let open = limiter(&connection, FailurePolicy::FailOpen);
        let fallback = limiter(&connection, FailurePolicy::Fallback);
        let all = [&error, &closed, &open, &fallback];

        for limiter in all {
            let outcome = limiter.check("k").await.unwrap();
            assert_eq!(outcome.source(), DecisionSource::Redis);
            assert!(outcome.failure().is_none());
            assert_eq!(outcome.decision().remaining(), 2);
        }

        server.kill();

        for _ in 0..3 {
            let failure = timed(error.check("k")).await.unwrap_err();
            assert!(failure.is_unavailability(), "{failure}");
            assert!(matches!(
                failure,
                RedisLimitError::Unavailable(_) | RedisLimitError::Timeout(_)
            ));

            let denied = timed(closed.check("k")).await.unwrap();
            assert_eq!(denied.source(), DecisionSource::FailedClosed);
            assert!(denied.is_denied() && denied.failure().unwrap().is_unavailability());
            assert_eq!(denied.decision().remaining(), 0);
            // As from an empty bucket: one interval (20 minutes) to earn one unit.
            assert_eq!(denied.decision().retry_after(), Duration::from_secs(1_200));
            assert_eq!(denied.decision().reset_after(), Duration::from_secs(3_600));

            let admitted = timed(open.check("k")).await.unwrap();
            assert_eq!(admitted.source(), DecisionSource::FailedOpen);
            assert!(admitted.is_allowed());
            assert_eq!(admitted.decision().remaining(), 2);
            let peeked = timed(open.peek("k")).await.unwrap();
            assert!(peeked.is_allowed());
            assert_eq!(peeked.decision().remaining(), 3);
        }

        // The fallback is a fresh local bucket of the same quota: 3 units, then denials.
        for remaining in [2, 1, 0] {
            let outcome = timed(fallback.check("k")).await.unwrap();
            assert_eq!(outcome.source(), DecisionSource::Fallback);
            assert!(outcome.is_allowed());
            assert_eq!(outcome.decision().remaining(), remaining);
        }
        let denied = timed(fallback.check("k")).await.unwrap();
        assert_eq!(denied.source(), DecisionSource::Fallback);
        assert!(denied.is_denied());
        let peeked = timed(fallback.peek("other")).await.unwrap();
        assert_eq!(peeked.source(), DecisionSource::Fallback);
        assert_eq!(peeked.decision().remaining(), 3);
        // A cost above the burst is an error under every policy, down or not.
        assert!(matches!(
            fallback.check_n("k", 4).await,
            Err(RedisLimitError::InsufficientCapacity(_))
        ));

        server.restart();

        // The connection comes back by itself (reconnection backs off at most 1 s apart).
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match error.peek("k").await {
                Ok(outcome) => {
                    assert_eq!(outcome.source(), DecisionSource::Redis);
                    break;
                }
                Err(failure) => assert!(failure.is_unavailability(), "{failure}"),
            }
            assert!(Instant::now() < deadline, "the limiter did not reconnect");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The restarted Redis persisted nothing: every bucket is full again, and every
        // policy is back to Redis's decisions.
        for limiter in all {
            let outcome = limiter.check("k").await.unwrap();
            assert_eq!(outcome.source(), DecisionSource::Redis, "{limiter:?}");
            assert_eq!(outcome.decision().remaining(), 2);
        }
    });
}

#[test]
fn a_silent_redis_times_out() {
    let server = RedisServer::start();
    runtime().block_on(async {
        let connection = RedisConnection::open(&server.url()).unwrap();
        let error = limiter(&connection, FailurePolicy::Error);
        let closed = limiter(&connection, FailurePolicy::FailClosed);
        assert!(error.check("k").await.unwrap().is_from_redis());
        // Every client is paused for 3 s: commands are accepted and not answered.
        let mut raw = raw(&server).await;
        let _: () = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(3000)
            .arg("ALL")
            .query_async(&mut raw)
            .await
            .unwrap();
        let failure = timed(error.check("k")).await.unwrap_err();
        assert!(
            matches!(failure, RedisLimitError::Timeout(t) if t == TIMEOUT),
            "{failure}"
        );
        let denied = timed(closed.check("k")).await.unwrap();
        assert_eq!(denied.source(), DecisionSource::FailedClosed);
        assert!(matches!(
            denied.failure(),
            Some(RedisLimitError::Timeout(_))
        ));
    });
}

#[test]
fn a_key_holding_foreign_data_is_an_error_under_every_policy() {
    let server = RedisServer::start();
    runtime().block_on(async {
        let connection = RedisConnection::open(&server.url()).unwrap();
        let open = limiter(&connection, FailurePolicy::FailOpen);
        let mut raw = raw(&server).await;
        let _: () = redis::cmd("SET")
            .arg(open.redis_key("text"))
            .arg("hello")
            .query_async(&mut raw)
            .await
            .unwrap();
        let _: () = redis::cmd("LPUSH")
            .arg(open.redis_key("list"))
            .arg("x")
            .query_async(&mut raw)
            .await
            .unwrap();
        for key in ["text", "list"] {
            let failure = open.check(key).await.unwrap_err();
            assert!(
                matches!(failure, RedisLimitError::BadState { .. }),
                "{failure}"
            );
        }
    });
}
