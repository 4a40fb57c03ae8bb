//! Command dispatch: one parsed request in, its reply appended to the output buffer.
//!
//! No I/O happens here, so the server, the tests and the fuzz target drive it alike.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::policies::{Policies, PolicyDecision, PolicyError};
use super::resp::{Args, Limits, Protocol, Reply};
use super::stats::Stats;
use super::store::RedisStore;
use super::throttle::{Throttle, ThrottleError, ThrottleLimiter, ThrottleParams, ThrottleReply};

/// What every connection shares.
pub struct State {
    /// The `CL.THROTTLE` store.
    pub throttle: Throttle,
    /// The named policies.
    pub policies: Policies,
    /// Counters.
    pub stats: Stats,
    /// The request limits (reported by `INFO`).
    pub limits: Limits,
    /// The connection limit (reported by `INFO`).
    pub max_connections: usize,
    /// `--store`: decisions are made in Redis instead of `throttle` and `policies`' buckets
    /// (the policies still name the quotas).
    pub store: Option<RedisStore>,
    started: Instant,
    next_client_id: AtomicU64,
}

impl State {
    /// The shared state.
    pub fn new(
        throttle: Throttle,
        policies: Policies,
        limits: Limits,
        max_connections: usize,
    ) -> Self {
        Self {
            throttle,
            policies,
            stats: Stats::default(),
            limits,
            max_connections,
            store: None,
            started: Instant::now(),
            next_client_id: AtomicU64::new(1),
        }
    }

    /// A new connection's session, with the next client id.
    pub fn session(&self) -> Session {
        // Relaxed: ids only need to be unique, which the read-modify-write guarantees.
        let id = self.next_client_id.fetch_add(1, Ordering::Relaxed);
        Session {
            id,
            protocol: Protocol::Resp2,
            name: None,
            cached: None,
            closing: false,
        }
    }
}

/// One connection's state.
pub struct Session {
    id: u64,
    protocol: Protocol,
    name: Option<Vec<u8>>,
    /// The last quota's limiter: a client usually sends the same quota every time.
    cached: Option<(ThrottleParams, Arc<ThrottleLimiter>)>,
    closing: bool,
}

impl Session {
    /// Whether the connection should close after the replies so far are written (`QUIT`).
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// The protocol the connection speaks.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The client id (`CLIENT ID`).
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// The commands, for `COMMAND`, `COMMAND COUNT` and `COMMAND INFO`: name, arity (negative:
/// at least), flags.
const COMMANDS: &[(&str, i64, &[&str])] = &[
    ("cl.throttle", -5, &["write", "fast"]),
    ("nl.check", -3, &["write", "fast"]),
    ("nl.peek", 3, &["readonly", "fast"]),
    ("ping", -1, &["fast"]),
    ("echo", 2, &["fast"]),
    ("hello", -1, &["fast", "no-auth"]),
    ("quit", -1, &["fast", "no-auth"]),
    ("client", -2, &[]),
    ("command", -1, &[]),
    ("config", -2, &[]),
    ("info", -1, &[]),
    ("select", 2, &["fast"]),
];

/// A decision to be made in the Redis store (`--store`), which the caller awaits and then
/// answers with [`answer`]. Everything in it is validated.
#[derive(Debug)]
pub enum Deferred {
    /// `CL.THROTTLE`.
    Throttle {
        /// The quota.
        params: ThrottleParams,
        /// The key.
        key: Vec<u8>,
        /// `quantity`, at most the limit.
        quantity: u64,
    },
    /// `NL.CHECK` or `NL.PEEK`.
    Policy {
        /// The policy's name.
        name: String,
        /// The key.
        key: String,
        /// The cost (1 for a peek).
        cost: u64,
        /// `NL.PEEK`.
        peek: bool,
    },
}

/// Makes a deferred decision in the store and appends its reply to `out`.
pub async fn answer(
    state: &State,
    store: &RedisStore,
    protocol: Protocol,
    deferred: Deferred,
    out: &mut Vec<u8>,
) {
    let before = out.len();
    let mut reply = Reply::new(out, protocol);
    match deferred {
        Deferred::Throttle {
            params,
            key,
            quantity,
        } => {
            let result = store.throttle(&state.stats, params, &key, quantity).await;
            throttle_reply(&state.stats, &mut reply, result);
        }
        Deferred::Policy {
            name,
            key,
            cost,
            peek,
        } => {
            let result = store
                .named_policy(&state.stats, &state.policies, &name, &key, cost, peek)
                .await
                .and_then(|(generation, index, result)| match generation.spec(index) {
                    Some(spec) => PolicyDecision::of(spec, result),
                    None => Err(PolicyError::Unknown(name)),
                });
            policy_reply(&state.stats, &mut reply, peek, result);
        }
    }
    if out.get(before) == Some(&b'-') {
        Stats::bump(&state.stats.errors);
    }
}

/// Executes one request (`args`, ranges into `buf`) for `session`, appending its reply to
/// `out`, or returns the decision to make in the store. An empty request (an empty inline
/// line) has no reply.
pub fn execute(
    state: &State,
    session: &mut Session,
    buf: &[u8],
    args: &Args,
    out: &mut Vec<u8>,
) -> Option<Deferred> {
    if args.is_empty() {
        return None;
    }
    Stats::bump(&state.stats.commands);
    let before = out.len();
    let mut argv: [&[u8]; 8] = [&[]; 8];
    let n = args.len();
    for (i, slot) in argv.iter_mut().enumerate().take(n) {
        *slot = args.get(buf, i).unwrap_or(&[]);
    }
    let mut cmd = Command {
        state,
        session,
        argv: &argv[..n.min(8)],
        argc: n,
        out,
        deferred: None,
    };
    cmd.run();
    let deferred = cmd.deferred;
    if out.get(before) == Some(&b'-') {
        Stats::bump(&state.stats.errors);
    }
    deferred
}

struct Command<'a> {
    state: &'a State,
    session: &'a mut Session,
    /// The first 8 arguments (no command takes more).
    argv: &'a [&'a [u8]],
    /// How many arguments there really were.
    argc: usize,
    out: &'a mut Vec<u8>,
    /// Set instead of a reply when the decision is the store's.
    deferred: Option<Deferred>,
}

impl Command<'_> {
    fn reply(&mut self) -> Reply<'_> {
        Reply::new(self.out, self.session.protocol)
    }

    fn is(&self, i: usize, name: &str) -> bool {
        self.argv
            .get(i)
            .is_some_and(|a| a.eq_ignore_ascii_case(name.as_bytes()))
    }

    fn arity_error(&mut self) {
        let name = String::from_utf8_lossy(self.argv[0]).to_lowercase();
        self.reply().error(&format!(
            "ERR wrong number of arguments for '{name}' command"
        ));
    }

    fn run(&mut self) {
        let name = self.argv[0];
        let Some(&(command, arity, _)) = COMMANDS
            .iter()
            .find(|(n, _, _)| name.eq_ignore_ascii_case(n.as_bytes()))
        else {
            let shown: String = String::from_utf8_lossy(&name[..name.len().min(128)]).into();
            let mut message = format!("ERR unknown command '{shown}', with args beginning with: ");
            for a in self.argv.iter().skip(1) {
                message.push_str(&format!(
                    "'{}' ",
                    String::from_utf8_lossy(&a[..a.len().min(64)])
                ));
            }
            self.reply().error(message.trim_end());
            return;
        };
        let fits = if arity >= 0 {
            self.argc as i64 == arity
        } else {
            self.argc as i64 >= -arity
        };
        if !fits {
            return self.arity_error();
        }
        match command {
            "cl.throttle" => self.throttle(),
            "nl.check" => self.policy(false),
            "nl.peek" => self.policy(true),
            "ping" => self.ping(),
            "echo" => {
                let msg = self.argv[1];
                self.reply().bulk(msg);
            }
            "hello" => self.hello(),
            "quit" => {
                self.session.closing = true;
                self.reply().simple("OK");
            }
            "client" => self.client(),
            "command" => self.command(),
            "config" => self.config(),
            "info" => self.info(),
            "select" => {
                if self.argv[1] == b"0" {
                    self.reply().simple("OK");
                } else {
                    self.reply()
                        .error("ERR DB index is out of range (nanolimit has only database 0)");
                }
            }
            _ => unreachable!("every name in COMMANDS is dispatched"),
        }
    }

    fn ping(&mut self) {
        match self.argc {
            1 => self.reply().simple("PONG"),
            2 => {
                let msg = self.argv[1];
                self.reply().bulk(msg);
            }
            _ => self.arity_error(),
        }
    }

    /// `CL.THROTTLE key max_burst count period [quantity]`.
    fn throttle(&mut self) {
        if self.argc > 6 {
            return self.arity_error();
        }
        let parsed = (|| {
            let params = ThrottleParams {
                max_burst: number(self.argv[2], "max_burst", 0)?,
                count: number(self.argv[3], "count", 1)?,
                period_secs: number(self.argv[4], "period", 1)?,
            };
            let quantity = match self.argv.get(5) {
                Some(q) => number(q, "quantity", 0)?,
                None => 1,
            };
            if quantity > params.limit() {
                return Err(ThrottleError::QuantityAboveLimit {
                    quantity,
                    limit: params.limit(),
                });
            }
            Ok((params, quantity))
        })();
        let (params, quantity) = match parsed {
            Ok(p) => p,
            Err(e) => return self.reply().error(&e.to_string()),
        };
        if self.state.store.is_some() {
            self.deferred = Some(Deferred::Throttle {
                params,
                key: self.argv[1].to_vec(),
                quantity,
            });
            return;
        }
        let result = (|| {
            let limiter = match &self.session.cached {
                Some((p, l)) if *p == params => Arc::clone(l),
                _ => {
                    let l = self.state.throttle.limiter(params)?;
                    self.session.cached = Some((params, Arc::clone(&l)));
                    l
                }
            };
            Throttle::throttle(&limiter, &params, self.argv[1], quantity)
        })();
        let stats = &self.state.stats;
        throttle_reply(
            stats,
            &mut Reply::new(self.out, self.session.protocol),
            result,
        );
    }

    /// `NL.CHECK policy key [cost]` and `NL.PEEK policy key`: allowed (1/0), limit,
    /// remaining, retry-after ms (-1 when allowed), reset-after ms.
    fn policy(&mut self, peek: bool) {
        if !peek && self.argc > 4 {
            return self.arity_error();
        }
        let (Ok(name), Ok(key)) = (
            std::str::from_utf8(self.argv[1]),
            std::str::from_utf8(self.argv[2]),
        ) else {
            return self.reply().error("ERR invalid policy or key: not UTF-8");
        };
        let cost = match self.argv.get(3) {
            Some(c) => match number(c, "cost", 1) {
                Ok(c) => c,
                Err(e) => return self.reply().error(&e.to_string()),
            },
            None => 1,
        };
        if self.state.store.is_some() {
            self.deferred = Some(Deferred::Policy {
                name: name.to_owned(),
                key: key.to_owned(),
                cost,
                peek,
            });
            return;
        }
        let policies = &self.state.policies;
        let result = if peek {
            policies.peek(name, key)
        } else {
            policies.check(name, key, cost)
        };
        let stats = &self.state.stats;
        policy_reply(
            stats,
            &mut Reply::new(self.out, self.session.protocol),
            peek,
            result,
        );
    }

    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`. There is no authentication:
    /// credentials are accepted and ignored (serve on loopback or a private network).
    fn hello(&mut self) {
        let mut protocol = self.session.protocol;
        let mut i = 1;
        if let Some(v) = self.argv.get(1) {
            protocol = match *v {
                b"2" => Protocol::Resp2,
                b"3" => Protocol::Resp3,
                _ => {
                    return self
                        .reply()
                        .error("NOPROTO unsupported protocol version (2 and 3 are)")
                }
            };
            i = 2;
        }
        let mut name = None;
        while i < self.argc {
            if self.is(i, "auth") && i + 2 < self.argc.min(self.argv.len()) {
                i += 3;
            } else if self.is(i, "setname") && i + 1 < self.argc.min(self.argv.len()) {
                name = Some(self.argv[i + 1].to_vec());
                i += 2;
            } else {
                return self.reply().error("ERR syntax error in HELLO");
            }
        }
        self.session.protocol = protocol;
        if name.is_some() {
            self.session.name = name;
        }
        let id = i64::try_from(self.session.id).unwrap_or(i64::MAX);
        let proto = if protocol == Protocol::Resp3 { 3 } else { 2 };
        let mut r = self.reply();
        r.map(7);
        r.bulk(b"server");
        r.bulk(b"nanolimit");
        r.bulk(b"version");
        r.bulk(env!("CARGO_PKG_VERSION").as_bytes());
        r.bulk(b"proto");
        r.int(proto);
        r.bulk(b"id");
        r.int(id);
        r.bulk(b"mode");
        r.bulk(b"standalone");
        r.bulk(b"role");
        r.bulk(b"master");
        r.bulk(b"modules");
        r.array(0);
    }

    /// `CLIENT SETNAME|GETNAME|SETINFO|ID`.
    fn client(&mut self) {
        if self.is(1, "setname") && self.argc == 3 {
            let name = self.argv[2];
            if name.iter().any(|&b| b <= b' ' || b > b'~') {
                return self.reply().error(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            self.session.name = (!name.is_empty()).then(|| name.to_vec());
            self.reply().simple("OK");
        } else if self.is(1, "getname") && self.argc == 2 {
            match self.session.name.clone() {
                Some(n) => self.reply().bulk(&n),
                None => self.reply().null(),
            }
        } else if self.is(1, "setinfo") && self.argc == 4 {
            self.reply().simple("OK");
        } else if self.is(1, "id") && self.argc == 2 {
            let id = i64::try_from(self.session.id).unwrap_or(i64::MAX);
            self.reply().int(id);
        } else {
            self.reply().error(
                "ERR unknown subcommand or wrong number of arguments for 'client' (SETNAME, GETNAME, SETINFO, ID)",
            );
        }
    }

    /// `COMMAND`, `COMMAND COUNT`, `COMMAND INFO name..`, `COMMAND DOCS [name..]` (no docs:
    /// an empty map, which redis-cli accepts).
    fn command(&mut self) {
        if self.argc == 1 {
            self.reply().array(COMMANDS.len());
            for entry in COMMANDS {
                self.command_entry(entry);
            }
        } else if self.is(1, "count") && self.argc == 2 {
            self.reply().int(COMMANDS.len() as i64);
        } else if self.is(1, "docs") {
            self.reply().map(0);
        } else if self.is(1, "info") {
            let names: Vec<Vec<u8>> = self.argv[2..]
                .iter()
                .map(|a| a.to_ascii_lowercase())
                .collect();
            let count = self.argc - 2;
            self.reply().array(count);
            for i in 0..count {
                match names
                    .get(i)
                    .and_then(|n| COMMANDS.iter().find(|c| c.0.as_bytes() == n))
                {
                    Some(entry) => self.command_entry(entry),
                    None => self.reply().null(),
                }
            }
        } else {
            self.reply()
                .error("ERR unknown subcommand for 'command' (COUNT, DOCS, INFO)");
        }
    }

    fn command_entry(&mut self, &(name, arity, flags): &(&str, i64, &[&str])) {
        let mut r = self.reply();
        r.array(6);
        r.bulk(name.as_bytes());
        r.int(arity);
        r.array(flags.len());
        for f in flags {
            r.simple(f);
        }
        // First key, last key, step: CL.THROTTLE and NL.* name a key (NL.* at position 2).
        let key = match name {
            "cl.throttle" => 1,
            "nl.check" | "nl.peek" => 2,
            _ => 0,
        };
        r.int(key);
        r.int(key);
        r.int(i64::from(key > 0));
    }

    /// `CONFIG GET save|appendonly` answer as a server without persistence does (what
    /// redis-benchmark asks on start); anything else is empty.
    fn config(&mut self) {
        if !self.is(1, "get") || self.argc != 3 {
            return self.reply().error("ERR nanolimit supports only CONFIG GET");
        }
        let param = self.argv[2].to_ascii_lowercase();
        let value: Option<&[u8]> = match param.as_slice() {
            b"save" => Some(b""),
            b"appendonly" => Some(b"no"),
            _ => None,
        };
        let mut r = self.reply();
        match value {
            Some(v) => {
                r.map(1);
                r.bulk(&param);
                r.bulk(v);
            }
            None => r.map(0),
        }
    }

    /// `INFO [section]`: server, clients, stats and limiter sections.
    fn info(&mut self) {
        let s = self.state;
        let st = &s.stats;
        let g = Stats::get;
        let text = format!(
            "# Server\r\nredis_version:7.2.0\r\nnanolimit_version:{}\r\nredis_mode:standalone\r\nprocess_id:{}\r\nuptime_in_seconds:{}\r\n\r\n\
             # Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\n\r\n\
             # Stats\r\ntotal_connections_received:{}\r\nrejected_connections:{}\r\ntotal_commands_processed:{}\r\nerror_replies:{}\r\n\r\n\
             # Limiter\r\nthrottle_allowed:{}\r\nthrottle_limited:{}\r\nthrottle_quotas:{}\r\nthrottle_max_quotas:{}\r\nthrottle_keys:{}\r\nthrottle_max_keys_per_quota:{}\r\n\
             policies:{}\r\npolicy_allowed:{}\r\npolicy_denied:{}\r\npolicy_keys:{}\r\npolicy_reloads:{}\r\npolicy_reload_failures:{}\r\n\
             store:{}\r\nstore_degraded:{}\r\n",
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
            s.started.elapsed().as_secs(),
            g(&st.connected),
            s.max_connections,
            g(&st.connections),
            g(&st.rejected),
            g(&st.commands),
            g(&st.errors),
            g(&st.throttle_allowed),
            g(&st.throttle_limited),
            s.throttle.quotas(),
            s.throttle.max_quotas(),
            s.throttle.keys(),
            s.throttle.max_keys(),
            s.policies.names().join(","),
            g(&st.policy_allowed),
            g(&st.policy_denied),
            s.policies.keys(),
            g(&st.reloads),
            g(&st.reload_failures),
            if s.store.is_some() { "redis" } else { "memory" },
            g(&st.store_degraded),
        );
        let text = match self.argv.get(1) {
            None => text,
            Some(section) => {
                let want = format!("# {}", String::from_utf8_lossy(section).to_lowercase());
                text.split("\r\n\r\n")
                    .filter(|part| part.to_lowercase().starts_with(&want))
                    .collect::<Vec<_>>()
                    .join("\r\n\r\n")
            }
        };
        self.reply().bulk(text.as_bytes());
    }
}

/// The `CL.THROTTLE` reply (five integers) or error, counted.
fn throttle_reply(stats: &Stats, r: &mut Reply<'_>, result: Result<ThrottleReply, ThrottleError>) {
    match result {
        Ok(reply) => {
            Stats::bump(if reply[0] == 0 {
                &stats.throttle_allowed
            } else {
                &stats.throttle_limited
            });
            r.array(5);
            for v in reply {
                r.int(v);
            }
        }
        Err(e) => r.error(&e.to_string()),
    }
}

/// The `NL.CHECK`/`NL.PEEK` reply: allowed (1/0), limit, remaining, retry-after ms (-1 when
/// allowed), reset-after ms; or the error. Checks (not peeks) are counted.
fn policy_reply(
    stats: &Stats,
    r: &mut Reply<'_>,
    peek: bool,
    result: Result<PolicyDecision, PolicyError>,
) {
    match result {
        Ok(d) => {
            let allowed = d.decision.is_allowed();
            if !peek {
                Stats::bump(if allowed {
                    &stats.policy_allowed
                } else {
                    &stats.policy_denied
                });
            }
            let ms = |t: std::time::Duration| {
                i64::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(i64::MAX)
            };
            let big = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            r.array(5);
            r.int(i64::from(allowed));
            r.int(big(d.limit));
            r.int(big(d.decision.remaining()));
            r.int(if allowed {
                -1
            } else {
                ms(d.decision.retry_after())
            });
            r.int(ms(d.decision.reset_after()));
        }
        Err(e) => r.error(&format!("ERR {e}")),
    }
}

/// An argument that must be a decimal integer of at least `min`.
fn number(arg: &[u8], name: &'static str, min: u64) -> Result<u64, ThrottleError> {
    // The common case, without going through `str` and `i128` (19 digits fit a u64).
    if !arg.is_empty() && arg.len() <= 19 && arg.iter().all(u8::is_ascii_digit) {
        let value = arg.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        if value >= min {
            return Ok(value);
        }
    }
    let bad = |reason: String| ThrottleError::BadArgument { name, reason };
    let text = std::str::from_utf8(arg).map_err(|_| bad("not an integer".into()))?;
    let value: i128 = text
        .parse()
        .map_err(|_| bad(format!("'{}' is not an integer", text.escape_debug())))?;
    if value < i128::from(min) {
        return Err(bad(format!("must be at least {min}, not {value}")));
    }
    u64::try_from(value).map_err(|_| bad(format!("{value} is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_the_same_on_the_fast_and_the_general_path() {
        let ok = |t: &str| number(t.as_bytes(), "count", 1).unwrap();
        let err = |t: &str| number(t.as_bytes(), "count", 1).unwrap_err().to_string();
        assert_eq!(ok("1"), 1);
        assert_eq!(ok("0007"), 7);
        assert_eq!(ok("9999999999999999999"), 9_999_999_999_999_999_999);
        assert_eq!(ok("18446744073709551615"), u64::MAX);
        assert_eq!(ok("+5"), 5);
        assert_eq!(err("0"), "ERR invalid count: must be at least 1, not 0");
        assert_eq!(err("-3"), "ERR invalid count: must be at least 1, not -3");
        assert_eq!(
            err("18446744073709551616"),
            "ERR invalid count: 18446744073709551616 is too large"
        );
        assert_eq!(err(""), "ERR invalid count: '' is not an integer");
        assert_eq!(err("1x"), "ERR invalid count: '1x' is not an integer");
        assert_eq!(number(b"0", "quantity", 0).unwrap(), 0);
    }
}
