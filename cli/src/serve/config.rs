//! The service's settings: defaults, the `[server]` section of a TOML file, then flags.
//!
//! ```toml
//! [server]
//! resp = "127.0.0.1:6380"       # the Redis-protocol listener
//! http = "127.0.0.1:8080"       # the HTTP listener, or "off"
//! policies = "policies.toml"    # the policy file (default: one built-in policy)
//! max_keys = 1000000            # keys per CL.THROTTLE quota, and per policy without its own
//! max_quotas = 64               # distinct CL.THROTTLE quotas
//! max_connections = 10000
//! idle_timeout = "300s"         # "0s": none
//! output_limit = 1048576        # bytes of replies buffered before they must be written
//! max_bulk = 524288             # request limits (see `resp::Limits`)
//! max_args = 1024
//! max_inline = 65536
//! max_request = 1048576
//! log_level = "info"            # error, warn, info, debug, trace
//! store = "redis://127.0.0.1:6379"  # decide in a shared Redis (default: in memory)
//! store_prefix = "nanolimit:"   # the start of every Redis key written
//! store_timeout = "50ms"        # the longest wait for one decision from Redis
//! store_failure = "error"       # when Redis fails: error, closed, open or fallback
//! ```

use core::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nanolimit::policy::parse_period;
use serde::Deserialize;

use super::resp::Limits;
use super::store::{parse_failure_policy, StoreConfig};
use super::throttle::SharedClock;

/// Everything the server needs to start.
#[derive(Clone)]
pub struct ServeConfig {
    /// Where the Redis protocol is served.
    pub resp: SocketAddr,
    /// Where HTTP is served (`None`: not at all).
    pub http: Option<SocketAddr>,
    /// The policy file; `None`: the built-in `default` policy.
    pub policies: Option<PathBuf>,
    /// Keys per `CL.THROTTLE` quota, and per policy that sets no `max_keys` of its own.
    pub max_keys: usize,
    /// Distinct `CL.THROTTLE` quotas.
    pub max_quotas: usize,
    /// Open connections (RESP and HTTP each); more are refused.
    pub max_connections: usize,
    /// A connection silent this long is closed (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Replies buffered for one connection before they must be written out; a client that
    /// does not read them for `idle_timeout` is disconnected.
    pub output_limit: usize,
    /// Request limits.
    pub limits: Limits,
    /// The `tracing` level filter.
    pub log_level: String,
    /// The limiters' clock (`None`: the monotonic clock). Tests pass a manual clock.
    pub clock: Option<SharedClock>,
    /// Decide in this Redis instead of in memory (`None`: in memory).
    pub store: Option<StoreConfig>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            resp: SocketAddr::from(([127, 0, 0, 1], 6380)),
            http: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
            policies: None,
            max_keys: 1_000_000,
            max_quotas: 64,
            max_connections: 10_000,
            idle_timeout: Some(Duration::from_secs(300)),
            output_limit: 1024 * 1024,
            limits: Limits::default(),
            log_level: "info".to_owned(),
            clock: None,
            store: None,
        }
    }
}

impl fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeConfig")
            .field("resp", &self.resp)
            .field("http", &self.http)
            .field("policies", &self.policies)
            .field("max_keys", &self.max_keys)
            .field("max_quotas", &self.max_quotas)
            .field("max_connections", &self.max_connections)
            .field("idle_timeout", &self.idle_timeout)
            .field("limits", &self.limits)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// The file: only a `[server]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    server: Section,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Section {
    resp: Option<String>,
    http: Option<String>,
    policies: Option<PathBuf>,
    max_keys: Option<usize>,
    max_quotas: Option<usize>,
    max_connections: Option<usize>,
    idle_timeout: Option<String>,
    output_limit: Option<usize>,
    max_bulk: Option<usize>,
    max_args: Option<usize>,
    max_inline: Option<usize>,
    max_request: Option<usize>,
    log_level: Option<String>,
    store: Option<String>,
    store_prefix: Option<String>,
    store_timeout: Option<String>,
    store_failure: Option<String>,
}

/// A listen address: `host:port`; for HTTP also `off`.
pub fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("'{text}' is not an address such as 127.0.0.1:6380 or [::1]:6380"))
}

/// An optional HTTP address: `off` disables HTTP.
pub fn parse_http(text: &str) -> Result<Option<SocketAddr>, String> {
    if text.eq_ignore_ascii_case("off") {
        Ok(None)
    } else {
        parse_addr(text).map(Some)
    }
}

/// An idle timeout such as `300s` or `5m`; `0s` means none.
pub fn parse_timeout(text: &str) -> Result<Option<Duration>, String> {
    if text
        .trim_start_matches('0')
        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
        .is_empty()
        && text.starts_with('0')
    {
        return Ok(None);
    }
    parse_period(text)
        .map(Some)
        .map_err(|e| format!("'{text}' is not a duration: {e}"))
}

impl ServeConfig {
    /// Applies the `[server]` section of `path` over `self`. Relative `policies` paths are
    /// relative to the file's folder.
    pub fn load_file(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        self.apply_toml(&text, path.parent())
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Applies a `[server]` section given as text.
    pub fn apply_toml(&mut self, text: &str, base: Option<&Path>) -> Result<(), String> {
        let file: File = toml::from_str(text).map_err(|e| one_line(&e.to_string()))?;
        let s = file.server;
        if let Some(a) = s.resp {
            self.resp = parse_addr(&a).map_err(|e| format!("resp: {e}"))?;
        }
        if let Some(a) = s.http {
            self.http = parse_http(&a).map_err(|e| format!("http: {e}"))?;
        }
        if let Some(p) = s.policies {
            self.policies = Some(match base {
                Some(dir) if p.is_relative() => dir.join(p),
                _ => p,
            });
        }
        let positive = |name: &str, v: Option<usize>, into: &mut usize| -> Result<(), String> {
            match v {
                Some(0) => Err(format!("{name} must be at least 1")),
                Some(v) => {
                    *into = v;
                    Ok(())
                }
                None => Ok(()),
            }
        };
        positive("max_keys", s.max_keys, &mut self.max_keys)?;
        positive("max_quotas", s.max_quotas, &mut self.max_quotas)?;
        positive(
            "max_connections",
            s.max_connections,
            &mut self.max_connections,
        )?;
        positive("output_limit", s.output_limit, &mut self.output_limit)?;
        positive("max_bulk", s.max_bulk, &mut self.limits.max_bulk)?;
        positive("max_args", s.max_args, &mut self.limits.max_args)?;
        positive("max_inline", s.max_inline, &mut self.limits.max_inline)?;
        positive("max_request", s.max_request, &mut self.limits.max_request)?;
        if let Some(t) = s.idle_timeout {
            self.idle_timeout = parse_timeout(&t).map_err(|e| format!("idle_timeout: {e}"))?;
        }
        if let Some(l) = s.log_level {
            self.log_level = l;
        }
        if let Some(url) = s.store {
            self.store = Some(StoreConfig::new(url));
        }
        let store_option = |name: &str, set: bool| match (&self.store, set) {
            (None, true) => Err(format!("{name} needs store = \"redis://...\"")),
            _ => Ok(()),
        };
        store_option("store_prefix", s.store_prefix.is_some())?;
        store_option("store_timeout", s.store_timeout.is_some())?;
        store_option("store_failure", s.store_failure.is_some())?;
        if let Some(store) = &mut self.store {
            if let Some(p) = s.store_prefix {
                store.prefix = p;
            }
            if let Some(t) = s.store_timeout {
                store.timeout =
                    parse_store_timeout(&t).map_err(|e| format!("store_timeout: {e}"))?;
            }
            if let Some(f) = s.store_failure {
                store.on_failure =
                    parse_failure_policy(&f).map_err(|e| format!("store_failure: {e}"))?;
            }
        }
        Ok(())
    }
}

/// The store's timeout: a duration above zero, such as `50ms` or `1s`.
pub fn parse_store_timeout(text: &str) -> Result<Duration, String> {
    match parse_timeout(text)? {
        Some(t) => Ok(t),
        None => Err(format!("'{text}' is zero: a call to Redis needs some time")),
    }
}

fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_overrides_defaults() {
        let mut c = ServeConfig::default();
        c.apply_toml(
            "[server]\nresp = \"127.0.0.1:0\"\nhttp = \"off\"\npolicies = \"p.toml\"\nmax_keys = 10\nidle_timeout = \"0s\"\nmax_bulk = 99\n",
            Some(Path::new("/etc/nl")),
        )
        .unwrap();
        assert_eq!(c.resp, SocketAddr::from(([127, 0, 0, 1], 0)));
        assert_eq!(c.http, None);
        assert_eq!(c.policies, Some(PathBuf::from("/etc/nl/p.toml")));
        assert_eq!(c.max_keys, 10);
        assert_eq!(c.idle_timeout, None);
        assert_eq!(c.limits.max_bulk, 99);
        assert_eq!(c.max_quotas, 64);
        assert_eq!(c.store, None);
        c.apply_toml(
            "[server]\nstore = \"redis://127.0.0.1:6379\"\nstore_prefix = \"rl:\"\nstore_timeout = \"1s\"\nstore_failure = \"fallback\"\n",
            None,
        )
        .unwrap();
        let store = c.store.unwrap();
        assert_eq!(store.url, "redis://127.0.0.1:6379");
        assert_eq!(store.prefix, "rl:");
        assert_eq!(store.timeout, Duration::from_secs(1));
        assert_eq!(
            store.on_failure,
            nanolimit::store::redis::FailurePolicy::Fallback
        );
    }

    #[test]
    fn mistakes_are_named() {
        let mut c = ServeConfig::default();
        let err = |c: &mut ServeConfig, t: &str| c.apply_toml(t, None).unwrap_err();
        assert!(err(&mut c, "[server]\nmax_keys = 0\n").contains("max_keys must be at least 1"));
        assert!(err(&mut c, "[server]\nresp = \"nowhere\"\n").starts_with("resp: 'nowhere'"));
        assert!(err(&mut c, "[server]\nbrust = 1\n").contains("unknown field"));
        assert!(err(&mut c, "[server]\nidle_timeout = \"1.5s\"\n").starts_with("idle_timeout:"));
        assert_eq!(
            err(&mut c, "[server]\nstore_failure = \"open\"\n"),
            "store_failure needs store = \"redis://...\""
        );
        assert!(err(
            &mut c,
            "[server]\nstore = \"redis://h\"\nstore_failure = \"maybe\"\n"
        )
        .starts_with("store_failure: 'maybe' is not a failure policy"));
        assert!(err(
            &mut c,
            "[server]\nstore = \"redis://h\"\nstore_timeout = \"0s\"\n"
        )
        .starts_with("store_timeout: '0s' is zero"));
        assert_eq!(parse_timeout("90s"), Ok(Some(Duration::from_secs(90))));
        assert_eq!(parse_timeout("0ms"), Ok(None));
    }
}
