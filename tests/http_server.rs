//! The tower layer behind a real axum server (and a plain hyper one) on a loopback port,
//! hit by a real HTTP client (hyper-util's). Time is a `ManualClock`: every header value is
//! exact.
#![cfg(all(feature = "tower", not(nanolimit_loom)))]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use nanolimit::http::{
    BodyFormat, ClientIp, HeaderOptions, HttpLimiter, HttpLimiterBuilder, ProxyHeader,
    RateLimitLayer, RateLimitService,
};
use nanolimit::policy::{KeySelector, Matcher, PolicyManager, PolicyResult, PolicySpec};
use nanolimit::{ManualClock, Quota};

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A limiter over one `ip` policy named "api" (index 0), on a manual clock at 0, reading the
/// peer from axum's `ConnectInfo`; the other options are left to the caller.
fn builder(quota: Quota) -> (HttpLimiterBuilder<ManualClock>, ManualClock) {
    let clock = ManualClock::new(0);
    let spec = PolicySpec::new("api", quota, KeySelector::parse("ip").unwrap());
    let manager = PolicyManager::with_clock(vec![spec], clock.clone()).unwrap();
    let builder = HttpLimiter::builder(manager)
        .peer_addr(|p| p.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0));
    (builder, clock)
}

/// [`builder`] with these headers, as a layer.
fn layer(quota: Quota, headers: HeaderOptions) -> (RateLimitLayer<ManualClock>, ManualClock) {
    let (builder, clock) = builder(quota);
    (RateLimitLayer::new(builder.headers(headers).build()), clock)
}

/// Serves `app` on 127.0.0.1:0 with connection info; returns its base URL.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    format!("http://{addr}")
}

/// Serves `GET /` answering "ok" behind `layer`; returns the URL of `/`.
async fn serve_root(layer: RateLimitLayer<ManualClock>) -> String {
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(layer);
    format!("{}/", serve(app).await)
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

async fn fetch(client: &HttpClient, url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = Request::get(url);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let resp = client
        .request(req.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

/// Two routers built from clones of one layer, on two ports, 60 requests at once over many
/// connections: exactly the burst is admitted, because every clone shares one limiter.
/// Fault pinned: state held inside the service, so each clone (axum clones per connection)
/// had its own budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_across_clones_and_concurrent_connections() {
    let (layer, _clock) = layer(Quota::per_hour(10).unwrap(), HeaderOptions::new());
    let a = serve_root(layer.clone()).await;
    let b = serve_root(layer).await;
    let mut tasks = Vec::new();
    for i in 0..60 {
        // A client per task: separate connection pools, so many connections.
        let url = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            fetch(&client(), &url, &[]).await.status
        }));
    }
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((ok, limited), (10, 50));
}

/// Every header value, exactly, through a request's life: allowed, allowed, limited, and
/// admitted again after waiting exactly `Retry-After` seconds.
#[tokio::test]
async fn header_values_are_exact_and_retry_after_is_honest() {
    let (layer, clock) = layer(
        Quota::per_minute(2).unwrap(),
        HeaderOptions::new().legacy(true),
    );
    let url = serve_root(layer).await;
    let c = client();

    let r = fetch(&c, &url, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, "ok");
    assert_eq!(r.header("ratelimit-policy"), Some(r#""api";q=2;w=60"#));
    assert_eq!(r.header("ratelimit"), Some(r#""api";r=1;t=30"#));
    assert_eq!(r.header("x-ratelimit-limit"), Some("2"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("1"));
    assert_eq!(r.header("x-ratelimit-reset"), Some("30"));
    assert_eq!(r.header("retry-after"), None);

    clock.advance(Duration::from_secs(10));
    let r = fetch(&c, &url, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    // 20 s of the first unit's 30 s are left, plus the second's 30 s.
    assert_eq!(r.header("ratelimit"), Some(r#""api";r=0;t=50"#));

    let r = fetch(&c, &url, &[]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header("retry-after"), Some("20"));
    assert_eq!(r.header("ratelimit"), Some(r#""api";r=0;t=50"#));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(
        r.body,
        "Too Many Requests: rate limit exceeded; retry in 20 s\n"
    );

    // One nanosecond short of the wait: still limited, and still told at least 1 s.
    clock.advance(Duration::from_secs(20) - Duration::from_nanos(1));
    let r = fetch(&c, &url, &[]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header("retry-after"), Some("1"));
    clock.advance(Duration::from_nanos(1));
    assert_eq!(fetch(&c, &url, &[]).await.status, StatusCode::OK);
}

/// Fault pinned: a sub-second wait rendered as `Retry-After: 0`. With 4 per second the wait
/// is 250 ms: the header says 1, and after 1 s the client is admitted.
#[tokio::test]
async fn retry_after_is_never_zero_while_limited() {
    let (layer, clock) = layer(Quota::per_second(4).unwrap(), HeaderOptions::new());
    let url = serve_root(layer).await;
    let c = client();
    for _ in 0..4 {
        assert_eq!(fetch(&c, &url, &[]).await.status, StatusCode::OK);
    }
    let r = fetch(&c, &url, &[]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let secs: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert_eq!(secs, 1);
    clock.advance(Duration::from_secs(secs));
    assert_eq!(fetch(&c, &url, &[]).await.status, StatusCode::OK);
}

/// `route_layer` limits one route only; a client asking for problem details gets them; with
/// `on_allowed(false)` allowed responses carry no rate-limit header.
#[tokio::test]
async fn route_layer_problem_json_and_header_options() {
    let (layer, _clock) = layer(
        Quota::per_hour(1).unwrap(),
        HeaderOptions::new().on_allowed(false),
    );
    let app = Router::new()
        .route("/limited", get(|| async { "limited" }))
        .route_layer(layer)
        .route("/free", get(|| async { "free" }));
    let url = serve(app).await;
    let c = client();
    let r = fetch(&c, &format!("{url}/limited"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("ratelimit"), None);
    let json = [("accept", "application/problem+json")];
    let r = fetch(&c, &format!("{url}/limited"), &json).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(
        r.body,
        r#"{"type":"about:blank","title":"Too Many Requests","status":429,"detail":"rate limit exceeded; retry in 3600 s"}"#
    );
    assert_eq!(r.header("retry-after"), Some("3600"));
    assert_eq!(r.header("ratelimit"), Some(r#""api";r=0;t=3600"#));
    for _ in 0..3 {
        assert_eq!(
            fetch(&c, &format!("{url}/free"), &[]).await.status,
            StatusCode::OK
        );
    }
}

/// A spoofed `X-Forwarded-For` from a client that is not a trusted proxy changes nothing:
/// over the real socket, the key stays the peer's.
#[tokio::test]
async fn spoofed_forwarded_for_over_the_wire() {
    let (layer, _clock) = layer(Quota::per_hour(1).unwrap(), HeaderOptions::new());
    let url = serve_root(layer).await;
    let c = client();
    assert_eq!(
        fetch(&c, &url, &[("x-forwarded-for", "1.1.1.1")])
            .await
            .status,
        StatusCode::OK
    );
    let r = fetch(&c, &url, &[("x-forwarded-for", "2.2.2.2")]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

/// A hand-written tower service answering "hello", in a `Full<Bytes>` body; it counts its
/// calls (clones share the count).
#[derive(Clone, Default)]
struct Hello {
    calls: Arc<AtomicUsize>,
}

impl Hello {
    fn calls(&self) -> usize {
        // Relaxed: read on the task that made the calls, after they returned.
        self.calls.load(Ordering::Relaxed)
    }
}

impl<B> tower_service::Service<Request<B>> for Hello {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<B>) -> Self::Future {
        // Relaxed: a plain counter; nothing else is published through it.
        self.calls.fetch_add(1, Ordering::Relaxed);
        std::future::ready(Ok(Response::new(Full::from("hello"))))
    }
}

/// Inserts the connection's peer address as a `SocketAddr` extension (where the limiter
/// looks by default), as a plain hyper server would.
#[derive(Clone)]
struct WithPeer<S> {
    inner: S,
    peer: SocketAddr,
}

impl<S, B> tower_service::Service<Request<B>> for WithPeer<S>
where
    S: tower_service::Service<Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        req.extensions_mut().insert(self.peer);
        Box::pin(self.inner.call(req))
    }
}

/// The same service under plain hyper (no axum): limits, headers and the refusal body.
#[tokio::test]
async fn plain_hyper_server() {
    use tower_layer::Layer;
    let clock = ManualClock::new(0);
    let spec = PolicySpec::new(
        "per-ip",
        Quota::per_minute(1).unwrap(),
        KeySelector::parse("ip").unwrap(),
    )
    .matching(Matcher::new().path_prefix("/"));
    let manager = PolicyManager::with_clock(vec![spec], clock).unwrap();
    let layer = RateLimitLayer::new(
        HttpLimiter::builder(manager)
            .body(BodyFormat::ProblemJson)
            .build(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, peer) = listener.accept().await.unwrap();
            let svc = WithPeer {
                inner: layer.layer(Hello::default()),
                peer,
            };
            tokio::spawn(async move {
                let svc = hyper_util::service::TowerToHyperService::new(svc);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let c = client();
    let url = format!("http://{addr}/");
    let r = fetch(&c, &url, &[]).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "hello"));
    assert_eq!(r.header("ratelimit"), Some(r#""per-ip";r=0;t=60"#));
    let r = fetch(&c, &url, &[]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header("retry-after"), Some("60"));
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
}

/// Calls `svc` once, as a server would (`poll_ready`, then `call`), for a request from
/// 192.0.2.1; returns the status.
async fn call_once(svc: &mut RateLimitService<Hello, ManualClock>) -> StatusCode {
    use tower_service::Service;
    std::future::poll_fn(|cx| Service::<Request<()>>::poll_ready(svc, cx))
        .await
        .unwrap();
    let peer: SocketAddr = "192.0.2.1:5000".parse().unwrap();
    let mut req = Request::get("/").body(()).unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    svc.call(req).await.unwrap().status()
}

/// A refused request is answered by the layer alone: the inner service's call count does not
/// move on a denial, and moves by exactly one on each admission.
#[tokio::test]
async fn refusals_never_call_the_inner_service() {
    use tower_layer::Layer;
    let (layer, clock) = layer(Quota::per_minute(1).unwrap(), HeaderOptions::new());
    let hello = Hello::default();
    let mut svc = layer.layer(hello.clone());
    assert_eq!(call_once(&mut svc).await, StatusCode::OK);
    assert_eq!(hello.calls(), 1);
    for _ in 0..2 {
        assert_eq!(call_once(&mut svc).await, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(hello.calls(), 1);
    }
    clock.advance(Duration::from_secs(60));
    assert_eq!(call_once(&mut svc).await, StatusCode::OK);
    assert_eq!(hello.calls(), 2);
}

/// The rate-limit headers of a reply, `name: value`, in a fixed order (every value of each).
fn limit_headers(r: &Reply) -> Vec<String> {
    let names = [
        "ratelimit-policy",
        "ratelimit",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "retry-after",
    ];
    let mut out = Vec::new();
    for name in names {
        for v in r.headers.get_all(name) {
            out.push(format!("{name}: {}", v.to_str().unwrap()));
        }
    }
    out
}

/// Each `HeaderOptions` switch, over the wire: the exact rate-limit headers of an allowed
/// response and of the denial after it (1 per hour, so every value is the same).
#[tokio::test]
async fn header_options_select_exactly_their_headers() {
    const P: &str = r#"ratelimit-policy: "api";q=1;w=3600"#;
    const S: &str = r#"ratelimit: "api";r=0;t=3600"#;
    const L: [&str; 3] = [
        "x-ratelimit-limit: 1",
        "x-ratelimit-remaining: 0",
        "x-ratelimit-reset: 3600",
    ];
    const R: &str = "retry-after: 3600";
    let h = HeaderOptions::new();
    let none = HeaderOptions::none();
    let cases: [(HeaderOptions, &[&str], &[&str]); 9] = [
        (h, &[P, S], &[P, S, R]),
        (h.draft(false), &[], &[R]),
        (h.retry_after(false), &[P, S], &[P, S]),
        (none, &[], &[]),
        (
            h.legacy(true),
            &[P, S, L[0], L[1], L[2]],
            &[P, S, L[0], L[1], L[2], R],
        ),
        (
            h.legacy(true).on_allowed(false),
            &[],
            &[P, S, L[0], L[1], L[2], R],
        ),
        (h.draft(false).legacy(true), &L, &[L[0], L[1], L[2], R]),
        // `none()` has `on_allowed` off too: a switch turned on alone shows on refusals only.
        (none.legacy(true), &[], &L),
        (none.legacy(true).on_allowed(true), &L, &L),
    ];
    let c = client();
    for (options, allowed, denied) in cases {
        let url = serve_root(layer(Quota::per_hour(1).unwrap(), options).0).await;
        let r = fetch(&c, &url, &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{options:?}");
        assert_eq!(limit_headers(&r), allowed, "{options:?}");
        let r = fetch(&c, &url, &[]).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{options:?}");
        assert_eq!(limit_headers(&r), denied, "{options:?}");
    }
}

/// `Text`, `ProblemJson` and `Empty` refusals, over the wire: exact bytes and content type,
/// whatever the client's `Accept` asks for.
#[tokio::test]
async fn body_formats_give_exact_refusals() {
    let text = "Too Many Requests: rate limit exceeded; retry in 3600 s\n";
    let json = r#"{"type":"about:blank","title":"Too Many Requests","status":429,"detail":"rate limit exceeded; retry in 3600 s"}"#;
    let cases = [
        (
            BodyFormat::Text,
            "application/problem+json",
            Some("text/plain; charset=utf-8"),
            text,
        ),
        (
            BodyFormat::ProblemJson,
            "text/plain",
            Some("application/problem+json"),
            json,
        ),
        (BodyFormat::Empty, "application/problem+json", None, ""),
    ];
    let c = client();
    for (format, accept, content_type, body) in cases {
        let (b, _clock) = builder(Quota::per_hour(1).unwrap());
        let url = serve_root(RateLimitLayer::new(b.body(format).build())).await;
        assert_eq!(fetch(&c, &url, &[]).await.status, StatusCode::OK);
        let r = fetch(&c, &url, &[("accept", accept)]).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{format:?}");
        assert_eq!(r.header("content-type"), content_type, "{format:?}");
        assert_eq!(r.body, body, "{format:?}");
        assert_eq!(r.header("content-length"), Some(&*body.len().to_string()));
        assert_eq!(r.header("retry-after"), Some("3600"), "{format:?}");
    }
}

/// Serves `/` with this client-address rule; returns its URL and the limiter (to read the
/// buckets by key).
async fn behind_proxies(quota: Quota, clients: ClientIp) -> (String, HttpLimiter<ManualClock>) {
    let limiter = builder(quota).0.client_ip(clients).build();
    (
        serve_root(RateLimitLayer::new(limiter.clone())).await,
        limiter,
    )
}

/// Units left in `key`'s bucket of the "api" policy (a full bucket for an unknown key).
fn remaining(limiter: &HttpLimiter<ManualClock>, key: &str) -> u64 {
    match limiter.manager().peek_policy(0, key, 0) {
        Some(PolicyResult::Decided(d)) => d.remaining(),
        other => panic!("{other:?}"),
    }
}

/// The test client connects from 127.0.0.1, trusted here (with 10.0.0.0/8): the key is the
/// rightmost untrusted `X-Forwarded-For` entry, whatever the client wrote to its left.
#[tokio::test]
async fn trusted_proxy_keys_by_the_rightmost_untrusted_entry() {
    let clients = ClientIp::new()
        .trust_proxies(["127.0.0.1", "10.0.0.0/8"])
        .unwrap();
    let (url, limiter) = behind_proxies(Quota::per_hour(2).unwrap(), clients).await;
    let c = client();
    let status = |xff: &'static str| {
        let (c, url) = (&c, &url);
        async move { fetch(c, url, &[("x-forwarded-for", xff)]).await.status }
    };
    assert_eq!(status("6.6.6.6, 203.0.113.7").await, StatusCode::OK);
    // A trusted hop of the other range, right of the client, is skipped.
    assert_eq!(
        status("7.7.7.7, 203.0.113.7, 10.1.2.3").await,
        StatusCode::OK
    );
    assert_eq!(
        status("8.8.8.8, 203.0.113.7").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(remaining(&limiter, "203.0.113.7"), 0);
    // Only that client was keyed: not the spoofed entries, not the proxy.
    assert_eq!(limiter.manager().keys_tracked(0), 1);
    // Another rightmost client has its own bucket.
    assert_eq!(status("203.0.113.7, 203.0.113.8").await, StatusCode::OK);
    assert_eq!(remaining(&limiter, "203.0.113.8"), 1);
    assert_eq!(limiter.manager().keys_tracked(0), 2);
}

/// With `Forwarded` configured and the peer trusted, a well-formed header keys its client;
/// a malformed one (unterminated quote, two `for=` in one element, a pair without `=`)
/// falls back to the peer, as does `X-Forwarded-For`, which is then not read.
#[tokio::test]
async fn malformed_forwarded_from_a_trusted_proxy_keys_the_peer() {
    let clients = ClientIp::new()
        .trust_proxies(["127.0.0.1"])
        .unwrap()
        .header(ProxyHeader::Forwarded);
    let (url, limiter) = behind_proxies(Quota::per_hour(1).unwrap(), clients).await;
    let c = client();
    let r = fetch(&c, &url, &[("forwarded", "for=203.0.113.7")]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(remaining(&limiter, "203.0.113.7"), 0);
    // The peer's bucket is fresh: admitted, and the peer's unit is the one spent.
    let r = fetch(&c, &url, &[("forwarded", "for=\"203.0.113.8")]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(remaining(&limiter, "127.0.0.1"), 0);
    for (name, value) in [
        ("forwarded", "for=203.0.113.9;for=203.0.113.10"),
        ("forwarded", "for"),
        ("x-forwarded-for", "203.0.113.11"),
    ] {
        let r = fetch(&c, &url, &[(name, value)]).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{name}: {value}");
    }
    assert_eq!(limiter.manager().keys_tracked(0), 2);
}

/// Trusted proxies configured, but not the peer (127.0.0.1): its `X-Forwarded-For` is
/// ignored, and every request spends the peer's bucket.
#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let clients = ClientIp::new().trust_proxies(["10.0.0.0/8"]).unwrap();
    let (url, limiter) = behind_proxies(Quota::per_hour(1).unwrap(), clients).await;
    let c = client();
    let r = fetch(&c, &url, &[("x-forwarded-for", "203.0.113.7")]).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = fetch(&c, &url, &[("x-forwarded-for", "203.0.113.8")]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(remaining(&limiter, "127.0.0.1"), 0);
    assert_eq!(limiter.manager().keys_tracked(0), 1);
}
