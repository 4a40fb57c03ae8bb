//! The HTTP side: `POST /v1/check`, `GET /healthz`, `GET /metrics`.
//!
//! Every error is JSON `{"error": "..."}` with its status: 400 (not JSON, a missing or
//! unknown field), 404 (unknown policy or path), 405 (wrong method, with `Allow`), 413 (a
//! body over 64 KiB), 422 (a cost of 0, or above the policy's burst), 503 (the policy is at
//! its `max_keys`, or `--store`'s Redis failed under the `error` failure policy).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use nanolimit::http::headers::rate_limit_headers;
use nanolimit::http::HeaderOptions;
use nanolimit::policy::PolicyResult;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};

use super::commands::State;
use super::config::ServeConfig;
use super::policies::PolicyError;
use super::stats::Stats;

/// The largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// The body of `POST /v1/check`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckBody {
    policy: String,
    key: String,
    #[serde(default = "one")]
    cost: u64,
}

fn one() -> u64 {
    1
}

/// Accepts HTTP connections until shutdown, then lets each finish its request in flight.
pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    config: ServeConfig,
    mut shutdown: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    let slots = Arc::new(Semaphore::new(config.max_connections));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        let Ok((stream, _peer)) = accepted else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            Stats::bump(&state.stats.rejected);
            continue;
        };
        let state = Arc::clone(&state);
        let mut shutdown = shutdown.clone();
        let done = done.clone();
        let idle = config.idle_timeout;
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(route(req, &state).await) }
            });
            let mut builder = http1::Builder::new();
            builder.timer(TokioTimer::new());
            if let Some(t) = idle {
                builder.header_read_timeout(t);
            }
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = shutdown.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(permit);
            drop(done);
        });
    }
}

type Reply = Response<Full<Bytes>>;

async fn route(req: Request<Incoming>, state: &State) -> Reply {
    let method = req.method().clone();
    match req.uri().path() {
        "/v1/check" if method == Method::POST => check(req, state).await,
        "/v1/check" => not_allowed("POST"),
        "/healthz" if method == Method::GET || method == Method::HEAD => {
            json(StatusCode::OK, r#"{"status":"ok"}"#.to_owned())
        }
        "/healthz" => not_allowed("GET, HEAD"),
        "/metrics" if method == Method::GET => {
            state.policies.publish_gauges();
            let text = super::server::prometheus().render();
            let mut r = Response::new(Full::new(Bytes::from(text)));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        "/metrics" => not_allowed("GET"),
        _ => error(
            StatusCode::NOT_FOUND,
            "no such endpoint (try POST /v1/check)",
        ),
    }
}

async fn check(req: Request<Incoming>, state: &State) -> Reply {
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body is larger than {MAX_BODY} bytes"),
            )
        }
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the body: {e}"),
            )
        }
    };
    let body: CheckBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}")),
    };
    if body.cost == 0 {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "cost must be at least 1");
    }
    let decided = match &state.store {
        None => state
            .policies
            .decide_raw(&body.policy, &body.key, body.cost, false),
        Some(store) => {
            store
                .named_policy(
                    &state.stats,
                    &state.policies,
                    &body.policy,
                    &body.key,
                    body.cost,
                    false,
                )
                .await
        }
    };
    let (generation, index, result) = match decided {
        Ok(r) => r,
        Err(e @ PolicyError::Store(_)) => {
            return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
        }
        Err(e) => return error(StatusCode::NOT_FOUND, &e.to_string()),
    };
    let decision = match result {
        PolicyResult::Decided(d) => d,
        PolicyResult::NeverFits { cost, burst } => {
            let e = PolicyError::NeverFits { cost, burst };
            return error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string());
        }
        PolicyResult::AtCapacity => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                &PolicyError::AtCapacity.to_string(),
            )
        }
    };
    let allowed = decision.is_allowed();
    Stats::bump(if allowed {
        &state.stats.policy_allowed
    } else {
        &state.stats.policy_denied
    });
    let ms = |d: std::time::Duration| d.as_nanos().div_ceil(1_000_000);
    let text = serde_json::json!({
        "allowed": allowed,
        "policy": body.policy,
        "key": body.key,
        "limit": decision.limit(),
        "remaining": decision.remaining(),
        "retry_after_ms": u64::try_from(ms(decision.retry_after())).unwrap_or(u64::MAX),
        "reset_after_ms": u64::try_from(ms(decision.reset_after())).unwrap_or(u64::MAX),
    })
    .to_string();
    let mut r = json(StatusCode::OK, text);
    if let Some(spec) = generation.spec(index) {
        let options = HeaderOptions::new().on_allowed(true);
        for (name, value) in rate_limit_headers([(spec, &result)], !allowed, &options) {
            r.headers_mut().append(name, value);
        }
    }
    r
}

fn json(status: StatusCode, text: String) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error(status: StatusCode, message: &str) -> Reply {
    json(status, serde_json::json!({ "error": message }).to_string())
}

fn not_allowed(allow: &'static str) -> Reply {
    let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}
