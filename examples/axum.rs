//! An axum server behind the rate-limit layer:
//!
//! ```sh
//! cargo run --example axum --features tower
//! curl -i http://127.0.0.1:3000/            # 5 per minute per client, then 429
//! curl -i -H 'accept: application/problem+json' http://127.0.0.1:3000/
//! curl -i http://127.0.0.1:3000/health      # not limited
//! ```
//!
//! `NANOLIMIT_ADDR` picks another address; `TRUSTED_PROXIES` (comma-separated ranges) makes
//! the server read `X-Forwarded-For` from those peers.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use nanolimit::http::{ClientIp, HeaderOptions, HttpLimiter, RateLimitLayer};
use nanolimit::policy::{KeySelector, PolicyManager, PolicySpec};
use nanolimit::Quota;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::var("NANOLIMIT_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let trusted = std::env::var("TRUSTED_PROXIES").unwrap_or_default();
    let clients =
        ClientIp::new().trust_proxies(trusted.split(',').filter(|s| !s.trim().is_empty()))?;

    let per_client = PolicySpec::new(
        "per-client",
        Quota::per_minute(5)?,
        KeySelector::parse("ip")?,
    );
    let limiter = HttpLimiter::builder(PolicyManager::new(vec![per_client])?)
        .client_ip(clients)
        .headers(HeaderOptions::new().legacy(true))
        .peer_addr(|parts| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0)
        })
        .build();

    let app = Router::new()
        .route("/", get(|| async { "hello\n" }))
        .route_layer(RateLimitLayer::new(limiter))
        .route("/health", get(|| async { "ok\n" }));

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
