//! The HTTP side: `POST /v1/check`, `GET /healthz`, `GET /metrics`.
//!
//! Every error this module writes is JSON `{"error": "..."}` with its status: 400 (not
//! JSON, a missing or unknown field), 404 (unknown policy or path), 405 (wrong method, with
//! `Allow`), 408 (the body did not arrive within the idle timeout), 413 (a body over
//! [`MAX_BODY`], declared or sent), 422 (a cost of 0, or above the policy's burst), 503 (the
//! policy is at its `max_keys`, or `--store`'s Redis failed under the `error` failure
//! policy). A 408 or 413 is the last response on its connection (`Connection: close`): the
//! rest of the body is never parsed. hyper itself answers a request it cannot parse (400,
//! 414, 431) with an empty body.
//!
//! A slow client cannot hold a connection slot: the request head must arrive within the
//! idle timeout (hyper's `header_read_timeout`), and so must the whole body of a check.
//! After its last response a connection lingers (see [`lingering_close`]) for at most the
//! idle timeout or [`LINGER`], whichever is shorter.

use std::convert::Infallible;
use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use nanolimit::http::headers::rate_limit_headers;
use nanolimit::http::HeaderOptions;
use nanolimit::policy::PolicyResult;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};

use super::commands::State;
use super::config::ServeConfig;
use super::policies::PolicyError;
use super::stats::Stats;

/// The largest request body accepted: a check body is a few short fields. The RESP
/// `max_request` limit does not apply to HTTP.
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
            // Boxed: `poll_without_shutdown` needs an `Unpin` future.
            let service = service_fn(move |req| {
                let state = Arc::clone(&state);
                Box::pin(async move { Ok::<_, Infallible>(route(req, &state, idle).await) })
            });
            let mut builder = http1::Builder::new();
            builder.timer(TokioTimer::new());
            if let Some(t) = idle {
                builder.header_read_timeout(t);
            }
            let mut conn = builder.serve_connection(TokioIo::new(stream), service);
            let mut stopping = false;
            let ended = tokio::select! {
                r = poll_fn(|cx| conn.poll_without_shutdown(cx)) => r,
                _ = shutdown.changed() => {
                    stopping = true;
                    std::pin::Pin::new(&mut conn).graceful_shutdown();
                    poll_fn(|cx| conn.poll_without_shutdown(cx)).await
                }
            };
            // On an error (a timeout, a malformed request, a reset) the socket is dropped.
            if ended.is_ok() {
                let stream = conn.into_parts().io.into_inner();
                let linger = match (stopping, idle) {
                    (true, _) => Duration::ZERO,
                    (false, Some(t)) => t.min(LINGER),
                    (false, None) => LINGER,
                };
                lingering_close(stream, linger, &mut shutdown).await;
            }
            drop(permit);
            drop(done);
        });
    }
    // The listener closes before `done` reports this loop finished.
    drop(listener);
    drop(done);
}

/// The longest a connection is kept after its last response to read what the client still
/// sends (at most the idle timeout).
const LINGER: Duration = Duration::from_secs(1);

/// The most bytes read and discarded then.
const LINGER_BYTES: usize = 1024 * 1024;

/// Closes `stream` after its last response: half-closes it, then reads and discards what the
/// client still sends until it closes its side, for at most `linger` and [`LINGER_BYTES`], or
/// until shutdown. A socket closed with input unread is reset, and a client still sending a
/// body refused with 413 would see a broken pipe instead of the reply.
async fn lingering_close(
    mut stream: TcpStream,
    linger: Duration,
    shutdown: &mut watch::Receiver<bool>,
) {
    if stream.shutdown().await.is_err() || linger.is_zero() {
        return;
    }
    let drain = async {
        let mut sink = [0u8; 8192];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    tokio::select! {
        _ = tokio::time::timeout(linger, drain) => {}
        _ = shutdown.changed() => {}
    }
}

type Reply = Response<Full<Bytes>>;

/// Answers one request; `idle` bounds the time its body may take to arrive.
async fn route(req: Request<Incoming>, state: &State, idle: Option<Duration>) -> Reply {
    let method = req.method().clone();
    match req.uri().path() {
        "/v1/check" if method == Method::POST => check(req, state, idle).await,
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

/// Reads a body of at most [`MAX_BODY`] bytes that arrives within `deadline` (`None`: no
/// limit in time). The error is the reply to send.
async fn read_body(body: Incoming, deadline: Option<Duration>) -> Result<Bytes, Reply> {
    let too_large = || {
        closing(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body is larger than {MAX_BODY} bytes"),
        ))
    };
    // hyper sets the lower bound from `Content-Length` (0 when chunked): a body declared too
    // large is refused before a byte of it is read. `Limited` enforces the limit on the rest.
    if body.size_hint().lower() > MAX_BODY as u64 {
        return Err(too_large());
    }
    let collect = Limited::new(body, MAX_BODY).collect();
    let collected = match deadline {
        None => collect.await,
        Some(t) => match tokio::time::timeout(t, collect).await {
            Ok(r) => r,
            Err(_elapsed) => {
                return Err(closing(error(
                    StatusCode::REQUEST_TIMEOUT,
                    &format!("the body did not arrive within the idle timeout ({t:?})"),
                )))
            }
        },
    };
    match collected {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            &format!("cannot read the body: {e}"),
        )),
    }
}

async fn check(req: Request<Incoming>, state: &State, idle: Option<Duration>) -> Reply {
    let body = match read_body(req.into_body(), idle).await {
        Ok(b) => b,
        Err(reply) => return reply,
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

/// Marks `r` as the last response on its connection: the request's body was left unread.
fn closing(mut r: Reply) -> Reply {
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    r
}

fn not_allowed(allow: &'static str) -> Reply {
    let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}
