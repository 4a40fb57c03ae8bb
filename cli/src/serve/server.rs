//! The listeners: a tokio task accepting Redis-protocol connections (and, in [`super::http`],
//! HTTP ones), the connection limit, idle timeouts, write batching, and graceful shutdown.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::future::join_all;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use nanolimit::policy::{load_policies, KeySelector, PolicySpec};
use nanolimit::{DefaultClock, Quota};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};

use super::commands::{answer, Deferred, State};
use super::config::ServeConfig;
use super::conn::{Connection, Step};
use super::policies::Policies;
use super::resp::Protocol;
use super::stats::Stats;
use super::store::RedisStore;
use super::throttle::{SharedClock, Throttle};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// Store requests of one connection decided at once, at most (bounds the memory a long
/// pipeline of them takes).
const MAX_DEFERRED: usize = 256;

/// The built-in policy used when no policy file is given: `default`, 10 per second with a
/// burst of 10, keyed by the key the caller names.
pub fn default_policies() -> Vec<PolicySpec> {
    let quota = Quota::per_second(10).unwrap_or_else(|_| unreachable!("10/s is a valid quota"));
    let key = KeySelector::parse("ip").unwrap_or_else(|_| unreachable!("`ip` is a selector"));
    vec![PolicySpec::new("default", quota, key)]
}

/// The Prometheus recorder, installed once per process (before any policy registers its
/// counters, so that they are recorded).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder was installed first; /metrics is then empty.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics shows nothing");
        }
        handle
    })
}

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    /// The policy file is wrong.
    Policies(String),
    /// A listener could not be bound.
    Bind(SocketAddr, io::Error),
    /// The `--store` URL is wrong.
    Store(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Policies(e) => f.write_str(e),
            Self::Bind(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
            Self::Store(e) => write!(f, "--store: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A started server.
pub struct Running {
    /// The Redis-protocol address actually bound (port 0 resolved).
    pub resp: SocketAddr,
    /// The HTTP address actually bound.
    pub http: Option<SocketAddr>,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
    /// Dropped by every task; `recv` returns `None` once all have ended.
    done: mpsc::Receiver<()>,
    config: ServeConfig,
}

impl Running {
    /// The shared state (stats, policies).
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &ServeConfig {
        &self.config
    }

    /// A receiver that sees `true` once shutdown starts.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Stops accepting, lets every connection finish the requests it has received, and
    /// waits (at most `grace`) for them to close.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.shutdown.send(true);
        let all_done = async { while self.done.recv().await.is_some() {} };
        if tokio::time::timeout(grace, all_done).await.is_err() {
            tracing::warn!("connections still open after the grace period; closing anyway");
        }
    }
}

/// Binds the listeners and starts serving on the current tokio runtime.
pub async fn start(config: ServeConfig) -> Result<Running, StartError> {
    let _ = prometheus();
    let clock: SharedClock = match &config.clock {
        Some(c) => Arc::clone(c),
        None => Arc::new(DefaultClock::default()),
    };
    let specs = match &config.policies {
        Some(path) => load_policies(path).map_err(|e| StartError::Policies(e.to_string()))?,
        None => default_policies(),
    };
    let policies = Policies::new(specs, Arc::clone(&clock), config.max_keys)
        .map_err(|e| StartError::Policies(e.to_string()))?;
    let throttle = Throttle::new(clock, config.max_keys, config.max_quotas);
    let mut state = State::new(throttle, policies, config.limits, config.max_connections);
    if let Some(store) = &config.store {
        state.store = Some(
            RedisStore::open(store.clone(), config.max_quotas)
                .map_err(|e| StartError::Store(e.to_string()))?,
        );
    }
    let state = Arc::new(state);
    let (shutdown, _) = watch::channel(false);
    let (done_tx, done) = mpsc::channel::<()>(1);

    let listener = TcpListener::bind(config.resp)
        .await
        .map_err(|e| StartError::Bind(config.resp, e))?;
    let resp = listener
        .local_addr()
        .map_err(|e| StartError::Bind(config.resp, e))?;
    let http = match config.http {
        Some(addr) => {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|e| StartError::Bind(addr, e))?;
            let bound = l.local_addr().map_err(|e| StartError::Bind(addr, e))?;
            tokio::spawn(super::http::serve(
                l,
                Arc::clone(&state),
                config.clone(),
                shutdown.subscribe(),
                done_tx.clone(),
            ));
            Some(bound)
        }
        None => None,
    };
    tokio::spawn(accept_loop(
        listener,
        Arc::clone(&state),
        config.clone(),
        shutdown.subscribe(),
        done_tx,
    ));
    Ok(Running {
        resp,
        http,
        state,
        shutdown,
        done,
        config,
    })
}

async fn accept_loop(
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
        let (mut stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            Stats::bump(&state.stats.rejected);
            tracing::warn!(%peer, "connection refused: max_connections reached");
            let _ = stream
                .write_all(b"-ERR max number of clients reached\r\n")
                .await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let config = config.clone();
        let shutdown = shutdown.clone();
        let done = done.clone();
        tokio::spawn(async move {
            Stats::bump(&state.stats.connections);
            Stats::bump(&state.stats.connected);
            tracing::debug!(%peer, "connected");
            if let Err(e) = connection(stream, &state, &config, shutdown).await {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            // Relaxed: a statistic.
            state
                .stats
                .connected
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            drop(permit);
            drop(done);
        });
    }
    // The listener closes before this loop reports done: parameters drop in reverse order,
    // so `done` would otherwise go first, and `shutdown` could return with the port still
    // accepting.
    drop(listener);
    drop(done);
}

/// Serves one connection: read, answer every whole request received, write the replies in
/// one batch, repeat.
async fn connection(
    mut stream: TcpStream,
    state: &State,
    config: &ServeConfig,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let mut conn = Connection::new(state);
    let mut out: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    // `--store`: the store's requests in a row, decided concurrently (pipelined on the one
    // Redis connection); replies to the requests after them wait in `later` meanwhile.
    let mut deferred: Vec<Deferred> = Vec::new();
    let mut later: Vec<u8> = Vec::new();
    loop {
        loop {
            let target = if deferred.is_empty() {
                &mut out
            } else {
                &mut later
            };
            let step = conn.step(state, target);
            if !deferred.is_empty() && !matches!(step, Step::Deferred(_)) {
                answer_all(state, conn.protocol(), &mut deferred, &mut out).await;
                out.append(&mut later);
            }
            match step {
                Step::Answered if out.len() >= config.output_limit => {
                    write(&mut stream, &out, config).await?;
                    out.clear();
                }
                Step::Answered => {}
                Step::Deferred(d) => {
                    deferred.push(d);
                    if deferred.len() >= MAX_DEFERRED {
                        answer_all(state, conn.protocol(), &mut deferred, &mut out).await;
                    }
                }
                Step::NeedMore => break,
                Step::Close => return write(&mut stream, &out, config).await,
            }
        }
        if !out.is_empty() {
            write(&mut stream, &out, config).await?;
            out.clear();
        }
        if *shutdown.borrow() {
            return Ok(());
        }
        let input = conn.input();
        input.reserve(READ_CHUNK);
        let read = async {
            match config.idle_timeout {
                Some(t) => tokio::time::timeout(t, stream.read_buf(input))
                    .await
                    .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "idle"))),
                None => stream.read_buf(input).await,
            }
        };
        let n = tokio::select! {
            n = read => n?,
            _ = shutdown.changed() => return Ok(()),
        };
        if n == 0 {
            return Ok(());
        }
    }
}

/// Decides `deferred` in the store, all at once, and appends their replies in order.
async fn answer_all(
    state: &State,
    protocol: Protocol,
    deferred: &mut Vec<Deferred>,
    out: &mut Vec<u8>,
) {
    let Some(store) = &state.store else {
        deferred.clear();
        return;
    };
    let replies = join_all(deferred.drain(..).map(|d| async move {
        let mut reply = Vec::new();
        answer(state, store, protocol, d, &mut reply).await;
        reply
    }))
    .await;
    for reply in replies {
        out.extend_from_slice(&reply);
    }
}

/// Writes `out`, giving up after the idle timeout (a client that stopped reading).
async fn write(stream: &mut TcpStream, out: &[u8], config: &ServeConfig) -> io::Result<()> {
    match config.idle_timeout {
        Some(t) => tokio::time::timeout(t, stream.write_all(out))
            .await
            .unwrap_or_else(|_| {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "client not reading",
                ))
            }),
        None => stream.write_all(out).await,
    }
}
