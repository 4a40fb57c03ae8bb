//! The tower layer behind a real axum server (and a plain hyper one) on a loopback port,
//! hit by a real HTTP client (hyper-util's). Time is a `ManualClock`: every header value is
//! exact.
#![cfg(all(feature = "tower", not(nanolimit_loom)))]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
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
use nanolimit::http::{BodyFormat, HeaderOptions, HttpLimiter, RateLimitLayer};
use nanolimit::policy::{KeySelector, Matcher, PolicyManager, PolicySpec};
use nanolimit::{ManualClock, Quota};

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A layer over one `ip` policy named "api", on a manual clock at 0, reading the peer from
/// axum's `ConnectInfo`.
fn layer(quota: Quota, headers: HeaderOptions) -> (RateLimitLayer<ManualClock>, ManualClock) {
    let clock = ManualClock::new(0);
    let spec = PolicySpec::new("api", quota, KeySelector::parse("ip").unwrap());
    let manager = PolicyManager::with_clock(vec![spec], clock.clone()).unwrap();
    let limiter = HttpLimiter::builder(manager)
        .headers(headers)
        .peer_addr(|p| p.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0))
        .build();
    (RateLimitLayer::new(limiter), clock)
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
    let a = serve(
        Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(layer.clone()),
    )
    .await;
    let b = serve(
        Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(layer),
    )
    .await;
    let mut tasks = Vec::new();
    for i in 0..60 {
        // A client per task: separate connection pools, so many connections.
        let url = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            fetch(&client(), &format!("{url}/"), &[]).await.status
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
    let url = serve(
        Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(layer),
    )
    .await;
    let url = format!("{url}/");
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
    let url = serve(
        Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(layer),
    )
    .await;
    let url = format!("{url}/");
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
    let url = serve(
        Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(layer),
    )
    .await;
    let url = format!("{url}/");
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

/// A hand-written tower service answering "hello", in a `Full<Bytes>` body.
#[derive(Clone)]
struct Hello;

impl tower_service::Service<Request<hyper::body::Incoming>> for Hello {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<hyper::body::Incoming>) -> Self::Future {
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
                inner: layer.layer(Hello),
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
