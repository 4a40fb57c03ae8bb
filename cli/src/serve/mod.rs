//! `nanolimit serve`: a rate-limit service that speaks the Redis protocol and HTTP.
//!
//! Layout, each a small module with one job:
//! - [`resp`]: the wire format (incremental request parser with limits, reply writer);
//! - [`commands`]: dispatch of one request to its reply (no I/O);
//! - [`conn`]: one connection's buffered input and session, without the socket;
//! - [`throttle`]: the `CL.THROTTLE` store (a keyed limiter per quota);
//! - [`store`]: `--store redis://`: the same decisions made in a shared Redis;
//! - [`policies`]: named policies for `NL.CHECK`/`NL.PEEK`/HTTP, and the reload rule;
//! - [`config`]: the `[server]` section and its defaults;
//! - [`server`]: the tokio listeners, connections, limits and shutdown;
//! - [`http`]: the HTTP endpoints;
//! - [`reload`]: re-reading the policy file.

pub mod commands;
pub mod config;
pub mod conn;
pub mod http;
pub mod policies;
pub mod reload;
pub mod resp;
pub mod server;
pub mod stats;
pub mod store;
pub mod throttle;

pub use config::ServeConfig;
pub use server::{start, Running, StartError};
