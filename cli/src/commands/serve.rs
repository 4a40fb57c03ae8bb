//! `nanolimit serve`: the rate-limit service (Redis protocol and HTTP). The server itself is
//! in the library target (`nanolimit_cli::serve`); this is its flags and its process life:
//! logs, signals, exit status.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use nanolimit_cli::serve::config::{parse_addr, parse_http, parse_store_timeout, parse_timeout};
use nanolimit_cli::serve::store::{parse_failure_policy, StoreConfig};
use nanolimit_cli::serve::{reload, start, ServeConfig};
use tracing_subscriber::EnvFilter;

use crate::CliError;

/// How long in-flight connections get to finish after SIGINT/SIGTERM.
const GRACE: Duration = Duration::from_secs(10);

/// Arguments of `nanolimit serve`. Flags override the `[server]` section of `--config`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// A TOML file with a `[server]` section (keys as the flags, with `_`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The policy file for NL.CHECK, NL.PEEK and POST /v1/check [default: a built-in
    /// policy named `default`, 10 per second]. SIGHUP re-reads it.
    #[arg(long, value_name = "FILE")]
    pub policies: Option<PathBuf>,

    /// Where to serve the Redis protocol [default: 127.0.0.1:6380].
    #[arg(long, value_name = "ADDR", value_parser = parse_addr)]
    pub resp: Option<SocketAddr>,

    /// Where to serve HTTP, or `off` [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,

    /// Keys tracked per CL.THROTTLE quota, and per policy without its own max_keys
    /// [default: 1000000].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_keys: Option<u64>,

    /// Open connections per listener [default: 10000].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,

    /// Close connections silent this long; `0s` never [default: 300s].
    #[arg(long, value_name = "DURATION")]
    pub idle_timeout: Option<String>,

    /// Log filter: error, warn, info, debug, trace, or a tracing directive [default: info].
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Decide in this Redis (`redis://host:port[/db]`) instead of in memory, so that every
    /// `serve` pointed at it enforces one limit per key.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,

    /// With --store: the start of every Redis key written [default: nanolimit:].
    #[arg(long, value_name = "PREFIX", requires = "store")]
    pub store_prefix: Option<String>,

    /// With --store: the longest wait for one decision from Redis [default: 50ms].
    #[arg(long, value_name = "DURATION", requires = "store")]
    pub store_timeout: Option<String>,

    /// With --store: what to answer when Redis fails: `error` (an error reply), `closed`
    /// (deny), `open` (allow) or `fallback` (decide in memory) [default: error].
    #[arg(long, value_name = "POLICY", requires = "store")]
    pub store_failure: Option<String>,
}

/// Runs the server until SIGINT or SIGTERM, then shuts down gracefully (exit status 0).
pub fn run(args: &ServeArgs) -> Result<String, CliError> {
    let config = configure(args)?;
    let filter = EnvFilter::try_new(&config.log_level)
        .map_err(|e| CliError::Usage(format!("invalid log level '{}': {e}", config.log_level)))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Input(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(serve(config))
}

fn configure(args: &ServeArgs) -> Result<ServeConfig, CliError> {
    let mut config = ServeConfig::default();
    if let Some(path) = &args.config {
        config.load_file(path).map_err(CliError::Usage)?;
    }
    if let Some(p) = &args.policies {
        config.policies = Some(p.clone());
    }
    if let Some(a) = args.resp {
        config.resp = a;
    }
    if let Some(a) = &args.http {
        config.http = parse_http(a).map_err(|e| CliError::Usage(format!("--http: {e}")))?;
    }
    let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    if let Some(n) = args.max_keys {
        config.max_keys = size(n);
    }
    if let Some(n) = args.max_connections {
        config.max_connections = size(n);
    }
    if let Some(t) = &args.idle_timeout {
        config.idle_timeout =
            parse_timeout(t).map_err(|e| CliError::Usage(format!("--idle-timeout: {e}")))?;
    }
    if let Some(l) = &args.log_level {
        config.log_level = l.clone();
    }
    if let Some(url) = &args.store {
        config.store = Some(StoreConfig::new(url.clone()));
    }
    if let Some(store) = &mut config.store {
        if let Some(p) = &args.store_prefix {
            store.prefix = p.clone();
        }
        if let Some(t) = &args.store_timeout {
            store.timeout = parse_store_timeout(t)
                .map_err(|e| CliError::Usage(format!("--store-timeout: {e}")))?;
        }
        if let Some(f) = &args.store_failure {
            store.on_failure = parse_failure_policy(f)
                .map_err(|e| CliError::Usage(format!("--store-failure: {e}")))?;
        }
    }
    Ok(config)
}

async fn serve(config: ServeConfig) -> Result<String, CliError> {
    let running = start(config)
        .await
        .map_err(|e| CliError::Usage(e.to_string()))?;
    // Before the address is printed: whoever reads it may send SIGHUP at once.
    #[cfg(unix)]
    tokio::spawn(reload::on_sighup(
        Arc::clone(running.state()),
        running.config().policies.clone(),
        running.shutdown_signal(),
    ));
    let policies = match &running.config().policies {
        Some(p) => p.display().to_string(),
        None => "built-in `default` (10/s)".to_owned(),
    };
    let http = running
        .http
        .map_or("HTTP off".to_owned(), |a| format!("HTTP on http://{a}"));
    let store = match &running.config().store {
        Some(s) => format!("Redis at {}", s.url),
        None => "memory".to_owned(),
    };
    println!(
        "nanolimit serve: Redis protocol on {}, {http}, policies: {policies}, store: {store}",
        running.resp
    );
    let _ = std::io::stdout().flush();
    tracing::info!(resp = %running.resp, http = ?running.http, store = %store, "listening");
    wait_for_stop().await;
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    running.shutdown(GRACE).await;
    tracing::info!("stopped");
    Ok(String::new())
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
