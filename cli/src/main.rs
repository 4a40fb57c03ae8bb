//! `nanolimit`: inspect quotas and replay logs through policies (and, later, serve).
//!
//! Errors in what the user typed (or in a policy file) print one line on stderr and exit with
//! status 2, as does a failure of `replay --store`'s Redis; errors in the input of
//! `replay --strict`, and output that cannot be written, exit with status 1.

use std::fmt;
use std::io::Write;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
// The input parsers live in the library target (`src/lib.rs`), which the fuzz targets use too.
use nanolimit_cli::logs;

mod commands;
mod decisions;
mod render;
mod replay_store;
mod spec;
mod summary;
mod verdict;

/// Lock-free GCRA and token-bucket rate limiting: inspect quotas, replay logs through policies.
#[derive(Parser, Debug)]
#[command(name = "nanolimit", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
enum Command {
    /// Validate a quota and print what it means: emission interval, refill time, precision.
    Quota(commands::quota::QuotaArgs),
    /// Replay access logs (Common/Combined Log Format) or JSONL traces through a policy file
    /// and report what the policies would have allowed and denied.
    Replay(commands::replay::ReplayArgs),
    /// Serve rate limits over the Redis protocol (CL.THROTTLE, NL.CHECK) and HTTP
    /// (POST /v1/check), on loopback by default.
    Serve(commands::serve::ServeArgs),
}

/// A failure of a command.
#[derive(Debug)]
pub enum CliError {
    /// What the user typed is wrong (exit status 2, as for clap's own errors).
    Usage(String),
    /// The input is malformed (under `replay --strict`) or unreadable (exit status 1).
    Input(String),
    /// `replay --store`: Redis cannot be used, or failed during the replay, which then stops
    /// without a summary (exit status 2: nothing is decided without the store).
    Store(String),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) | Self::Store(_) => 2,
            Self::Input(_) => 1,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(message) | Self::Input(message) | Self::Store(message) => {
                f.write_str(message)
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(&e),
    };
    let result = match &cli.command {
        Command::Quota(args) => commands::quota::run(args),
        Command::Replay(args) => commands::replay::run(args),
        Command::Serve(args) => commands::serve::run(args),
    };
    match result {
        Ok(output) => {
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(output.as_bytes())
                .and_then(|()| stdout.flush())
            {
                Ok(()) => ExitCode::SUCCESS,
                // A reader that stopped early (`nanolimit quota 1/1s | head -1`) is not an
                // error of ours.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                // A full disk or a closed descriptor: the output is lost, so say so.
                Err(e) => {
                    eprintln!("error: cannot write the output: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Help and version go to stdout with status 0. A bad value prints clap's one-line
/// message alone (`error: invalid value '10/5x' for '<RATE/PERIOD>': ...`); other usage
/// errors (a missing argument, an unknown subcommand) print clap's message with the usage.
fn clap_error(e: &clap::Error) -> ExitCode {
    let code = u8::try_from(e.exit_code()).unwrap_or(2);
    match e.kind() {
        ErrorKind::ValueValidation | ErrorKind::InvalidValue => eprintln!("{}", one_line(e)),
        _ => {
            let _ = e.print();
        }
    }
    ExitCode::from(code)
}

/// Clap's message for a bad value without the "for more information" tail, on one line even
/// when the value itself contains a newline (regression: `quota $'1/1s\n'` printed only
/// `error: invalid value '1/1s`, losing the reason).
fn one_line(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let message = rendered
        .split("\n\nFor more information")
        .next()
        .unwrap_or("");
    // Clap's own line break before `[possible values: ...]` becomes a space; any other
    // newline is the value's and is shown escaped.
    message
        .trim_end()
        .replace("\n  [", " [")
        .replace('\n', "\\n")
}
