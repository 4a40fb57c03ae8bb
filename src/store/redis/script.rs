//! The Lua script, its arguments for one quota, and the reading of its reply.
//!
//! The script (`bignum.lua` + `limiter.lua`) runs the transition inside Redis, atomically, on
//! exact integers. It returns the time it judged at and the state it found (and wrote); the
//! decision is then derived here by the library's own pure algorithm from that same state and
//! time, and the state the script wrote must equal the one the algorithm computes. So a
//! decision through Redis is, by construction, the one the in-memory limiter would make from
//! the same state at the same time.

use std::sync::LazyLock;

use ::redis::aio::ConnectionManager;
use ::redis::{RedisError, Script};

use super::error::RedisLimitError;
use crate::algorithm::{capacity_in_ticks, Algorithm};
use crate::decision::Decision;
use crate::quota::Quota;

/// The script's source: the exact-integer library, then the decision.
pub(crate) const SOURCE: &str = concat!(include_str!("bignum.lua"), include_str!("limiter.lua"));

/// Hashed once; `invoke_async` sends `EVALSHA` and, on `NOSCRIPT`, loads the script and
/// retries.
static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(SOURCE));

/// What the script is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// Consume the cost if it fits.
    Check,
    /// Only read the state and the time.
    Peek,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Self::Check => "check",
            Self::Peek => "peek",
        }
    }
}

/// The per-quota constants the script needs, rendered once as decimal strings: the script
/// parses them into exact integers and never sees a value as a float.
#[derive(Clone, Debug)]
pub(crate) struct QuotaArgs {
    ticks_per_token: u64,
    capacity: String,
    whole: String,
    frac: String,
    den: String,
    num: String,
    initial: String,
    unit_bits: String,
}

impl QuotaArgs {
    pub(crate) fn new<A: Algorithm>(quota: &Quota) -> Self {
        let scale = quota.scale();
        let (num, den) = (scale.ratio.num, scale.ratio.den);
        let capacity = capacity_in_ticks(quota);
        Self {
            ticks_per_token: scale.ticks_per_token,
            capacity: capacity.to_string(),
            whole: (num / den).to_string(),
            frac: (num % den).to_string(),
            den: den.to_string(),
            num: num.to_string(),
            initial: A::initial(quota).to_string(),
            // The token bucket's timestamp unit: the smallest power of two above the capacity
            // (src/algorithm/token_bucket.rs, `Layout`). GCRA ignores it.
            unit_bits: (u64::BITS - capacity.leading_zeros()).to_string(),
        }
    }
}

/// The script's answer, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    /// The time judged at, in nanoseconds since the epoch.
    pub(crate) now: u64,
    /// The state found (a missing key reads as the initial state).
    pub(crate) state: u64,
    /// The state written, if any.
    pub(crate) written: Option<u64>,
    /// The expiry set with it, in milliseconds.
    pub(crate) ttl_ms: Option<u64>,
}

/// One call of the script on `key`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn invoke<A: Algorithm>(
    mut conn: ConnectionManager,
    key: &str,
    op: Op,
    cost: u64,
    now: Option<u64>,
    args: &QuotaArgs,
    slack_ms: u64,
    epoch_unix_secs: u64,
) -> Result<Reply, RedisLimitError> {
    // Cannot overflow: the caller checked cost <= burst, and burst * D <= 2^61.
    let need = cost * args.ticks_per_token;
    let mut invocation = SCRIPT.key(key);
    invocation
        .arg(op.name())
        .arg(A::NAME)
        .arg(now.map(|now| now.to_string()).unwrap_or_default())
        .arg(need.to_string())
        .arg(&args.capacity)
        .arg(&args.whole)
        .arg(&args.frac)
        .arg(&args.den)
        .arg(&args.num)
        .arg(&args.initial)
        .arg(&args.unit_bits)
        .arg(slack_ms.to_string())
        .arg(epoch_unix_secs.to_string());
    let fields: Vec<String> = invocation
        .invoke_async(&mut conn)
        .await
        .map_err(|error| classify(key, error))?;
    parse_reply(key, &fields, epoch_unix_secs)
}

/// A server or connection error: the script's own complaints and wrong-type keys are about
/// the key's content; everything else is Redis being unavailable.
fn classify(key: &str, error: RedisError) -> RedisLimitError {
    let text = error.to_string();
    if text.contains("nanolimit:") || error.code() == Some("WRONGTYPE") {
        RedisLimitError::BadState {
            key: key.to_owned(),
            detail: text,
        }
    } else {
        RedisLimitError::Unavailable(error)
    }
}

/// Redis's `TIME` as the script reads it: nanoseconds since the epoch, 0 before it.
/// (`secs < 2^33` and `micros < 10^6` in any real reply; saturating otherwise.)
fn nanos_since_epoch(secs: u64, micros: u64, epoch_unix_secs: u64) -> u64 {
    match secs.checked_sub(epoch_unix_secs) {
        Some(secs) => secs
            .saturating_mul(1_000_000_000)
            .saturating_add(micros.saturating_mul(1_000)),
        None => 0,
    }
}

fn parse_reply(
    key: &str,
    fields: &[String],
    epoch_unix_secs: u64,
) -> Result<Reply, RedisLimitError> {
    let bad = |detail: String| RedisLimitError::Mismatch {
        key: key.to_owned(),
        detail,
    };
    let [now, secs, micros, state, written, ttl] = fields else {
        return Err(bad(format!("expected 6 fields, got {fields:?}")));
    };
    let number = |field: &str| {
        field
            .parse::<u64>()
            .map_err(|_| bad(format!("not a u64: {field:?}")))
    };
    let optional = |field: &str| {
        if field.is_empty() {
            Ok(None)
        } else {
            number(field).map(Some)
        }
    };
    let now = match optional(now)? {
        Some(now) => now,
        None => nanos_since_epoch(number(secs)?, number(micros)?, epoch_unix_secs),
    };
    Ok(Reply {
        now,
        state: number(state)?,
        written: optional(written)?,
        ttl_ms: optional(ttl)?,
    })
}

/// The decision, computed by the pure algorithm from the state and time the script used; for
/// a check, the state the script wrote must be the one the algorithm computes.
pub(crate) fn decide<A: Algorithm>(
    key: &str,
    reply: &Reply,
    op: Op,
    cost: u64,
    quota: &Quota,
) -> Result<Decision, RedisLimitError> {
    match op {
        Op::Peek => Ok(A::peek(reply.state, reply.now, cost, quota)?),
        Op::Check => {
            let transition = A::check(reply.state, reply.now, cost, quota)?;
            if transition.next != reply.written {
                return Err(RedisLimitError::Mismatch {
                    key: key.to_owned(),
                    detail: format!(
                        "from state {} at {} ns the script wrote {:?}, the library computes {:?}",
                        reply.state, reply.now, reply.written, transition.next
                    ),
                });
            }
            Ok(transition.decision)
        }
    }
}
