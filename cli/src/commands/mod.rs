//! One module per subcommand. Each exposes its clap `Args` and a `run` that returns what to
//! print, or a [`CliError`](crate::CliError).

pub mod quota;
pub mod replay;
pub mod serve;
