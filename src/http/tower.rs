//! The tower [`Layer`] and [`Service`] (feature `tower`): works with axum's
//! `Router::layer`/`route_layer` and with plain hyper services.
//!
//! The service holds the [`HttpLimiter`] (one `Arc`), so cloning it is cheap and every clone
//! enforces the same limits. It never buffers or waits: each request is decided on the spot;
//! a refusal is answered by the service itself without calling the inner service, and an
//! allowed request's response gets the rate-limit headers.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use ::http::header::{HeaderName, HeaderValue};
use ::http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::limiter::{HttpDecision, HttpLimiter};
use crate::clock::{Clock, DefaultClock};

/// Wraps services in a [`RateLimitService`] sharing one [`HttpLimiter`].
///
/// ```
/// use nanolimit::http::{HttpLimiter, RateLimitLayer};
/// use nanolimit::policy::{KeySelector, PolicyManager, PolicySpec};
/// use nanolimit::Quota;
///
/// let spec = PolicySpec::new("api", Quota::per_minute(100)?, KeySelector::parse("ip")?);
/// let layer = RateLimitLayer::new(HttpLimiter::new(PolicyManager::new(vec![spec])?));
/// // axum: Router::new().route(..).layer(layer)
/// # let _ = layer;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RateLimitLayer<C: Clock = DefaultClock> {
    limiter: HttpLimiter<C>,
}

impl<C: Clock> RateLimitLayer<C> {
    /// A layer over `limiter`.
    pub fn new(limiter: HttpLimiter<C>) -> Self {
        Self { limiter }
    }

    /// The limiter shared by every service of this layer.
    pub fn limiter(&self) -> &HttpLimiter<C> {
        &self.limiter
    }
}

impl<C: Clock> Clone for RateLimitLayer<C> {
    fn clone(&self) -> Self {
        Self {
            limiter: self.limiter.clone(),
        }
    }
}

impl<C: Clock> core::fmt::Debug for RateLimitLayer<C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limiter", &self.limiter)
            .finish()
    }
}

impl<S, C: Clock> Layer<S> for RateLimitLayer<C> {
    type Service = RateLimitService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            limiter: self.limiter.clone(),
        }
    }
}

/// Decides each request with the shared [`HttpLimiter`]; see [`RateLimitLayer`].
///
/// The inner service's response body must be buildable from a `String` (axum's `Body`,
/// `http_body_util::Full<Bytes>`, `String` all are): that is how refusals are answered in the
/// same response type.
pub struct RateLimitService<S, C: Clock = DefaultClock> {
    inner: S,
    limiter: HttpLimiter<C>,
}

impl<S: Clone, C: Clock> Clone for RateLimitService<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            limiter: self.limiter.clone(),
        }
    }
}

impl<S: core::fmt::Debug, C: Clock> core::fmt::Debug for RateLimitService<S, C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RateLimitService")
            .field("inner", &self.inner)
            .field("limiter", &self.limiter)
            .finish()
    }
}

impl<S, C: Clock> RateLimitService<S, C> {
    /// The limiter.
    pub fn limiter(&self) -> &HttpLimiter<C> {
        &self.limiter
    }
}

impl<S, C, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimitService<S, C>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    C: Clock,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // A refused request leaves the inner service's readiness unused: still reserved for
        // the next call, as the `Service` contract allows.
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let (parts, body) = req.into_parts();
        match self.limiter.check_parts(&parts) {
            HttpDecision::Allow(headers) => ResponseFuture {
                state: State::Inner {
                    future: self.inner.call(Request::from_parts(parts, body)),
                    headers,
                },
            },
            HttpDecision::Refuse(response) => ResponseFuture {
                state: State::Refused {
                    response: Some(response.map(ResBody::from)),
                },
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`RateLimitService`]: the inner service's response with the rate-limit
    /// headers added, or the refusal, ready at once.
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Inner {
            #[pin]
            future: F,
            headers: Vec<(HeaderName, HeaderValue)>,
        },
        Refused {
            response: Option<Response<B>>,
        },
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future, headers } => {
                let mut response = match future.poll(cx) {
                    Poll::Ready(Ok(r)) => r,
                    other => return other,
                };
                let map = response.headers_mut();
                for (name, value) in core::mem::take(headers) {
                    map.append(name, value);
                }
                Poll::Ready(Ok(response))
            }
            StateProj::Refused { response } => match response.take() {
                Some(r) => Poll::Ready(Ok(r)),
                // Polled again after completion: a contract violation; stay pending.
                None => Poll::Pending,
            },
        }
    }
}
