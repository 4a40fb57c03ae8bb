//! HTTP middleware (feature `http`; the tower layer with feature `tower`): from a request's
//! parts and the peer address to a [`Request`](crate::policy::Request), the
//! [`PolicyManager`](crate::policy::PolicyManager)'s [`Verdict`](crate::policy::Verdict),
//! and the response: `429 Too Many Requests` with a short body, and the rate-limit headers.
//!
//! Data flows one way: http -> policy -> limiter. This module only fills in the request (the
//! client key becomes its client address, which policies with `key = "ip"` use) and renders
//! the answer; every decision is the manager's.
//!
//! - [`HttpLimiter`]: the framework-agnostic core ([`HttpLimiter::check`]).
//! - [`ClientIp`]: the client's address behind trusted proxies, grouped (IPv6 by /64).
//! - [`headers`]: `RateLimit-Policy`, `RateLimit`, `Retry-After`, `X-RateLimit-*`, as pure
//!   functions of decisions.
#![cfg_attr(
    feature = "tower",
    doc = "- [`RateLimitLayer`] / [`RateLimitService`] (feature `tower`)."
)]
#![cfg_attr(
    not(feature = "tower"),
    doc = "- `RateLimitLayer` / `RateLimitService` (feature `tower`)."
)]

mod cidr;
mod client;
pub mod forwarded;
pub mod headers;
mod limiter;
#[cfg(feature = "tower")]
mod tower;

#[cfg(feature = "tower")]
pub use self::tower::{RateLimitLayer, RateLimitService, ResponseFuture};
pub use cidr::{normalize, Cidr, CidrError};
pub use client::{AddrSource, ClientAddr, ClientIp, ProxyHeader, X_FORWARDED_FOR};
pub use headers::HeaderOptions;
pub use limiter::{
    BodyFormat, ClientKey, HttpDecision, HttpLimiter, HttpLimiterBuilder, KeyFn, MissingKey, PeerFn,
};
