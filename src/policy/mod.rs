//! Named policies: a quota, a key selector and a match rule each, applied to requests by the
//! [`PolicyManager`] all or nothing.
//!
//! Integrations (replay, HTTP middleware, the service) fill in a [`Request`] and get a
//! [`Verdict`] of [`Decision`](crate::Decision)s. The TOML file format is behind the `serde`
//! feature (`load_policies`, `parse_policies`; schema in `docs/config.md`); counters and
//! tracing events behind `metrics`.

#[cfg(feature = "serde")]
mod config;
mod duration;
mod key;
mod limiter;
mod manager;
mod matcher;
#[cfg(feature = "metrics")]
mod metrics;
mod request;
mod spec;

#[cfg(feature = "serde")]
pub use config::{load_policies, parse_policies, ConfigError, ConfigErrorKind};
pub use duration::{parse_period, PeriodError};
pub use key::{KeyError, KeyPart, KeySelector};
pub use manager::{ManagerError, PolicyManager, PolicyOutcome, PolicyResult, Verdict};
pub use matcher::Matcher;
pub use request::Request;
pub use spec::{AlgorithmKind, PolicySpec, UnknownAlgorithm};
