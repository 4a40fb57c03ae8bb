//! The framework-agnostic core: request parts and the peer address in, a decision out
//! (headers for an allowed response, or the whole refusal).

use core::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ::http::header::{HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use ::http::request::Parts;
use ::http::{Response, StatusCode};

use super::client::ClientIp;
use super::headers::{verdict_headers, HeaderOptions};
use crate::clock::{Clock, DefaultClock};
use crate::policy::{KeyPart, PolicyManager, PolicyResult, Request, Verdict};

/// A user function that names the client: it gets the request and the resolved client
/// address (if the peer is known) and returns the key, or `None` when the request has none.
pub type KeyFn = dyn Fn(&Parts, Option<IpAddr>) -> Option<String> + Send + Sync;

/// A user function that finds the connection's peer address in a request.
pub type PeerFn = dyn Fn(&Parts) -> Option<SocketAddr> + Send + Sync;

/// What identifies the client. The key becomes the [`Request`]'s client address, so
/// policies with `key = "ip"` limit per this key (other key parts, such as `header:<name>`
/// or `path`, work as usual).
#[derive(Clone, Default)]
pub enum ClientKey {
    /// The client's address, found and grouped by [`ClientIp`] (default).
    #[default]
    Ip,
    /// The value of a header, such as an API key (the whole value, as sent). Missing, empty,
    /// or not visible ASCII: no key.
    Header(HeaderName),
    /// The request's path (without the query): one bucket per route.
    Route,
    /// A function of the request and the resolved client address (for example an
    /// authenticated user id from the request's extensions, or axum's `MatchedPath`).
    Custom(Arc<KeyFn>),
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip => f.write_str("Ip"),
            Self::Header(h) => f.debug_tuple("Header").field(h).finish(),
            Self::Route => f.write_str("Route"),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// What happens to a request that has no key (no peer address known, no such header, the
/// function said `None`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MissingKey {
    /// All such requests share one bucket, keyed `""` (default): leaving the key out is no
    /// way around the limit.
    #[default]
    Shared,
    /// Passed through without consulting any policy.
    Allow,
    /// Refused with this status (for a missing API key, `401 Unauthorized`), with no
    /// rate-limit headers.
    Deny(StatusCode),
}

/// The body of a refusal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BodyFormat {
    /// Plain text, unless the client's `Accept` names `application/problem+json` (default).
    #[default]
    Negotiate,
    /// Always plain text (`text/plain; charset=utf-8`).
    Text,
    /// Always `application/problem+json` (RFC 9457).
    ProblemJson,
    /// No body.
    Empty,
}

/// What the core decided about one request.
#[derive(Debug)]
pub enum HttpDecision {
    /// Serve the request, and add these headers to its response.
    Allow(Vec<(HeaderName, HeaderValue)>),
    /// Answer with this response instead (`429`, `503` or the [`MissingKey::Deny`] status).
    /// Map its body into your framework's type with `response.map(Into::into)`.
    Refuse(Response<String>),
}

impl HttpDecision {
    /// Whether the request may be served.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow(_))
    }
}

struct Inner<C: Clock> {
    manager: PolicyManager<C>,
    clients: ClientIp,
    key: ClientKey,
    missing: MissingKey,
    headers: HeaderOptions,
    body: BodyFormat,
    peer: Option<Arc<PeerFn>>,
    /// The header names the policies key by (lower case), so only those are handed over.
    policy_headers: Vec<String>,
}

/// The HTTP front of a [`PolicyManager`]: client keys, decisions, headers and refusals.
/// Cheap to clone (one `Arc`): every clone shares the manager, hence the limits.
///
/// ```
/// use nanolimit::http::{HttpDecision, HttpLimiter};
/// use nanolimit::policy::{KeySelector, PolicyManager, PolicySpec};
/// use nanolimit::{ManualClock, Quota};
///
/// let spec = PolicySpec::new("api", Quota::per_minute(1)?, KeySelector::parse("ip")?);
/// let limiter = HttpLimiter::new(PolicyManager::with_clock(vec![spec], ManualClock::new(0))?);
/// let (parts, ()) = http::Request::get("/x").body(())?.into_parts();
/// let peer = Some("192.0.2.1:5000".parse()?);
/// assert!(limiter.check(&parts, peer).is_allowed());
/// let HttpDecision::Refuse(response) = limiter.check(&parts, peer) else { panic!() };
/// assert_eq!(response.status(), 429);
/// assert_eq!(response.headers()["retry-after"], "60");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct HttpLimiter<C: Clock = DefaultClock> {
    inner: Arc<Inner<C>>,
}

impl<C: Clock> Clone for HttpLimiter<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C: Clock> fmt::Debug for HttpLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpLimiter")
            .field("manager", &self.inner.manager)
            .field("clients", &self.inner.clients)
            .field("key", &self.inner.key)
            .field("missing", &self.inner.missing)
            .field("headers", &self.inner.headers)
            .field("body", &self.inner.body)
            .finish_non_exhaustive()
    }
}

impl<C: Clock> HttpLimiter<C> {
    /// The defaults: the peer address as the key (IPv6 by /64, no trusted proxy), a shared
    /// bucket for requests without one, the default headers, a negotiated body.
    pub fn new(manager: PolicyManager<C>) -> Self {
        Self::builder(manager).build()
    }

    /// Starts a configuration.
    pub fn builder(manager: PolicyManager<C>) -> HttpLimiterBuilder<C> {
        HttpLimiterBuilder {
            manager,
            clients: ClientIp::new(),
            key: ClientKey::Ip,
            missing: MissingKey::Shared,
            headers: HeaderOptions::new(),
            body: BodyFormat::Negotiate,
            peer: None,
        }
    }

    /// The policies.
    pub fn manager(&self) -> &PolicyManager<C> {
        &self.inner.manager
    }

    /// The peer address of a request: the configured function's answer, else a
    /// [`SocketAddr`] in the request's extensions.
    pub fn peer_of(&self, parts: &Parts) -> Option<SocketAddr> {
        match &self.inner.peer {
            Some(f) => f(parts),
            None => parts.extensions.get::<SocketAddr>().copied(),
        }
    }

    /// Decides a request whose peer is found by [`peer_of`](Self::peer_of).
    pub fn check_parts(&self, parts: &Parts) -> HttpDecision {
        self.check(parts, self.peer_of(parts))
    }

    /// Decides a request from `peer` (`None` when unknown).
    pub fn check(&self, parts: &Parts, peer: Option<SocketAddr>) -> HttpDecision {
        let inner = &*self.inner;
        let client_ip = peer.map(|p| inner.clients.resolve(p.ip(), &parts.headers).ip());
        let key = match &inner.key {
            ClientKey::Ip => client_ip.map(|ip| inner.clients.key(ip)),
            ClientKey::Header(name) => parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
            ClientKey::Route => Some(parts.uri.path().to_owned()),
            ClientKey::Custom(f) => f(parts, client_ip),
        };
        let key = match (key, inner.missing) {
            (Some(k), _) => k,
            (None, MissingKey::Shared) => String::new(),
            (None, MissingKey::Allow) => return HttpDecision::Allow(Vec::new()),
            (None, MissingKey::Deny(status)) => {
                return HttpDecision::Refuse(refusal(
                    parts,
                    inner.body,
                    status,
                    "the request carries no rate-limit key",
                    Vec::new(),
                ))
            }
        };
        let mut headers: Vec<(&str, &str)> = Vec::new();
        for name in &inner.policy_headers {
            for v in parts.headers.get_all(name.as_str()) {
                if let Ok(v) = v.to_str() {
                    headers.push((name.as_str(), v));
                }
            }
        }
        let request =
            Request::new(&key, parts.method.as_str(), parts.uri.path()).with_headers(&headers);
        let verdict = inner.manager.check(&request);
        let rendered = verdict_headers(&verdict, &inner.manager, &inner.headers);
        if verdict.is_allowed() {
            return HttpDecision::Allow(rendered);
        }
        let (status, detail) = denial_reason(&verdict);
        HttpDecision::Refuse(refusal(parts, inner.body, status, &detail, rendered))
    }
}

/// The status and a sentence for a denied verdict.
fn denial_reason(verdict: &Verdict) -> (StatusCode, String) {
    let enforcing = || verdict.outcomes().iter().filter(|o| !o.is_shadow());
    if enforcing().any(|o| matches!(o.result(), PolicyResult::AtCapacity)) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the rate limiter is tracking as many clients as it may".to_owned(),
        );
    }
    let wait = enforcing()
        .filter_map(|o| o.decision())
        .filter(|d| d.is_denied())
        .map(|d| d.retry_after_secs())
        .max();
    let detail = match wait {
        Some(s) => format!("rate limit exceeded; retry in {s} s"),
        None => "the request costs more than the rate limit ever allows".to_owned(),
    };
    (StatusCode::TOO_MANY_REQUESTS, detail)
}

fn refusal(
    parts: &Parts,
    format: BodyFormat,
    status: StatusCode,
    detail: &str,
    headers: Vec<(HeaderName, HeaderValue)>,
) -> Response<String> {
    let json = match format {
        BodyFormat::Negotiate => parts.headers.get_all(ACCEPT).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains("application/problem+json"))
        }),
        BodyFormat::ProblemJson => true,
        BodyFormat::Text | BodyFormat::Empty => false,
    };
    let title = status.canonical_reason().unwrap_or("Error");
    let (body, content_type) = if format == BodyFormat::Empty {
        (String::new(), None)
    } else if json {
        let body = format!(
            "{{\"type\":\"about:blank\",\"title\":\"{title}\",\"status\":{},\"detail\":\"{detail}\"}}",
            status.as_u16()
        );
        (body, Some("application/problem+json"))
    } else {
        (
            format!("{title}: {detail}\n"),
            Some("text/plain; charset=utf-8"),
        )
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let map = response.headers_mut();
    if let Some(ct) = content_type {
        map.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    for (name, value) in headers {
        map.append(name, value);
    }
    response
}

/// Configures an [`HttpLimiter`]; every option has a default (see [`HttpLimiter::new`]).
pub struct HttpLimiterBuilder<C: Clock = DefaultClock> {
    manager: PolicyManager<C>,
    clients: ClientIp,
    key: ClientKey,
    missing: MissingKey,
    headers: HeaderOptions,
    body: BodyFormat,
    peer: Option<Arc<PeerFn>>,
}

impl<C: Clock> fmt::Debug for HttpLimiterBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpLimiterBuilder")
            .field("clients", &self.clients)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl<C: Clock> HttpLimiterBuilder<C> {
    /// How the client's address is found (trusted proxies, header, IPv6 grouping).
    pub fn client_ip(mut self, clients: ClientIp) -> Self {
        self.clients = clients;
        self
    }

    /// What identifies the client (default: its address).
    pub fn key(mut self, key: ClientKey) -> Self {
        self.key = key;
        self
    }

    /// A function as the key (shorthand for [`ClientKey::Custom`]).
    pub fn key_fn<F>(self, f: F) -> Self
    where
        F: Fn(&Parts, Option<IpAddr>) -> Option<String> + Send + Sync + 'static,
    {
        self.key(ClientKey::Custom(Arc::new(f)))
    }

    /// What to do with a request without a key (default: a shared bucket).
    pub fn missing_key(mut self, rule: MissingKey) -> Self {
        self.missing = rule;
        self
    }

    /// Which rate-limit headers to send.
    pub fn headers(mut self, options: HeaderOptions) -> Self {
        self.headers = options;
        self
    }

    /// The body of refusals.
    pub fn body(mut self, format: BodyFormat) -> Self {
        self.body = format;
        self
    }

    /// How to find the peer address in a request (default: a [`SocketAddr`] extension). With
    /// axum: `|p| p.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)`.
    pub fn peer_addr<F>(mut self, f: F) -> Self
    where
        F: Fn(&Parts) -> Option<SocketAddr> + Send + Sync + 'static,
    {
        self.peer = Some(Arc::new(f));
        self
    }

    /// The limiter.
    pub fn build(self) -> HttpLimiter<C> {
        let mut policy_headers: Vec<String> = Vec::new();
        for spec in self.manager.policies() {
            for part in spec.key().parts() {
                if let KeyPart::Header(name) = part {
                    if !policy_headers.contains(name) {
                        policy_headers.push(name.clone());
                    }
                }
            }
        }
        HttpLimiter {
            inner: Arc::new(Inner {
                manager: self.manager,
                clients: self.clients,
                key: self.key,
                missing: self.missing,
                headers: self.headers,
                body: self.body,
                peer: self.peer,
                policy_headers,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{KeySelector, PolicySpec};
    use crate::{ManualClock, Quota};

    fn manager(key: &str, quota: Quota) -> PolicyManager<ManualClock> {
        let spec = PolicySpec::new("api", quota, KeySelector::parse(key).unwrap());
        PolicyManager::with_clock(vec![spec], ManualClock::new(0)).unwrap()
    }

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut b = ::http::Request::get("/a/b?q=1");
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn peer(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    /// The client key resolved here is the `ip` the policies see: a spoofed header from an
    /// untrusted peer does not move the request to another bucket.
    #[test]
    fn client_key_feeds_ip_policies() {
        let l = HttpLimiter::new(manager("ip", Quota::per_hour(1).unwrap()));
        assert!(l.check(&parts(&[]), peer("192.0.2.1:1")).is_allowed());
        let spoof = parts(&[("x-forwarded-for", "1.2.3.4")]);
        assert!(!l.check(&spoof, peer("192.0.2.1:2")).is_allowed());
        assert!(l.check(&spoof, peer("192.0.2.2:1")).is_allowed());
    }

    #[test]
    fn api_key_with_missing_key_rules() {
        let m = || manager("ip", Quota::per_hour(1).unwrap());
        let key = ClientKey::Header(HeaderName::from_static("x-api-key"));
        let deny = HttpLimiter::builder(m())
            .key(key.clone())
            .missing_key(MissingKey::Deny(StatusCode::UNAUTHORIZED))
            .build();
        let HttpDecision::Refuse(r) = deny.check(&parts(&[]), peer("192.0.2.1:1")) else {
            panic!("no key must be refused")
        };
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.headers().get("retry-after").is_none());
        let k1 = parts(&[("x-api-key", "k1")]);
        assert!(deny.check(&k1, peer("192.0.2.1:1")).is_allowed());
        // Same key from another address: the same bucket.
        assert!(!deny.check(&k1, peer("192.0.2.9:1")).is_allowed());

        let allow = HttpLimiter::builder(m())
            .key(key.clone())
            .missing_key(MissingKey::Allow)
            .build();
        for _ in 0..3 {
            assert!(allow.check(&parts(&[]), None).is_allowed());
        }
        let shared = HttpLimiter::builder(m()).key(key).build();
        assert!(shared.check(&parts(&[]), None).is_allowed());
        assert!(!shared
            .check(&parts(&[("x-api-key", "")]), None)
            .is_allowed());
    }

    #[test]
    fn route_and_custom_keys() {
        let l = HttpLimiter::builder(manager("ip", Quota::per_hour(1).unwrap()))
            .key(ClientKey::Route)
            .build();
        assert!(l.check(&parts(&[]), None).is_allowed());
        assert!(!l.check(&parts(&[]), peer("192.0.2.3:1")).is_allowed());
        let l = HttpLimiter::builder(manager("ip", Quota::per_hour(1).unwrap()))
            .key_fn(|p, ip| Some(format!("{}@{}", p.method, ip?)))
            .missing_key(MissingKey::Deny(StatusCode::FORBIDDEN))
            .build();
        assert!(l.check(&parts(&[]), peer("192.0.2.3:1")).is_allowed());
        assert!(!l.check(&parts(&[]), peer("192.0.2.3:1")).is_allowed());
        let HttpDecision::Refuse(r) = l.check(&parts(&[]), None) else {
            panic!()
        };
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }

    /// Policies keyed by a header get it through the request (only the headers they name).
    #[test]
    fn header_policies_see_their_header() {
        let l = HttpLimiter::new(manager("header:x-tenant", Quota::per_hour(1).unwrap()));
        assert!(l.check(&parts(&[("x-tenant", "a")]), None).is_allowed());
        assert!(l.check(&parts(&[("x-tenant", "b")]), None).is_allowed());
        assert!(!l.check(&parts(&[("X-Tenant", "a")]), None).is_allowed());
    }

    #[test]
    fn bodies() {
        let l = HttpLimiter::new(manager("ip", Quota::per_hour(1).unwrap()));
        let p = peer("192.0.2.1:1");
        l.check(&parts(&[]), p);
        let HttpDecision::Refuse(r) = l.check(&parts(&[]), p) else {
            panic!()
        };
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
        assert_eq!(
            r.body(),
            "Too Many Requests: rate limit exceeded; retry in 3600 s\n"
        );
        let HttpDecision::Refuse(r) =
            l.check(&parts(&[("accept", "application/problem+json, */*")]), p)
        else {
            panic!()
        };
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        assert_eq!(
            r.body(),
            r#"{"type":"about:blank","title":"Too Many Requests","status":429,"detail":"rate limit exceeded; retry in 3600 s"}"#
        );
        assert_eq!(r.headers()["retry-after"], "3600");
    }

    /// A policy at its key limit refuses with 503, not 429: waiting is not the cure.
    #[test]
    fn at_capacity_is_503() {
        let spec = PolicySpec::new(
            "api",
            Quota::per_hour(1).unwrap(),
            KeySelector::parse("ip").unwrap(),
        )
        .max_keys(1);
        let m = PolicyManager::with_clock(vec![spec], ManualClock::new(0)).unwrap();
        let l = HttpLimiter::new(m);
        assert!(l.check(&parts(&[]), peer("192.0.2.1:1")).is_allowed());
        let HttpDecision::Refuse(r) = l.check(&parts(&[]), peer("192.0.2.2:1")) else {
            panic!()
        };
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
