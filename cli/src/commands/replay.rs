//! `nanolimit replay --config <policies.toml> <input>...`: runs access logs or JSONL traces
//! through a set of policies and reports what they would have done.
//!
//! Time comes from the input through a [`ManualClock`] that only moves forward: a line earlier
//! than the latest time seen is judged at the latest time (no time passing), as the
//! semantics contract says of time that goes backwards.
//!
//! `--store redis://...` makes every decision in Redis instead, at that same time
//! ([`crate::replay_store`]).

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::PathBuf;

use clap::Args;
use nanolimit::policy::{load_policies, KeyPart, PolicyManager, Request, Verdict};
use nanolimit::{Clock, ManualClock};
use nanolimit_cli::serve::config::parse_store_timeout;

use crate::decisions::write_decision;
use crate::logs::{clf, jsonl, Format, Record};
use crate::replay_store::{self, ReplayStore, StoreVerdict};
use crate::summary::Tally;
use crate::CliError;

/// Arguments of `nanolimit replay`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The policy file (TOML; see docs/config.md).
    #[arg(long, value_name = "POLICIES.toml")]
    pub config: PathBuf,

    /// The input format; `auto` picks JSONL when the first non-blank line starts with `{`.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: Format,

    /// Write one JSON line per request (its line number, the verdict, each policy's decision).
    #[arg(long, value_name = "OUT.jsonl")]
    pub decisions: Option<PathBuf>,

    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Stop at the first malformed line (exit status 1).
    #[arg(long)]
    pub strict: bool,

    /// How many of the most denied keys to list per policy.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub top: usize,

    /// Decide in this Redis (`redis://host:port[/db]`) instead of in memory, with the same
    /// results; any failure of Redis stops the replay (exit status 2).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,

    /// With --store: the start of every Redis key written [default:
    /// nanolimit-replay:<pid>-<ns since the epoch>:, unique to the run].
    #[arg(long, value_name = "PREFIX", requires = "store")]
    pub store_prefix: Option<String>,

    /// With --store: the longest wait for one answer from Redis [default: 1s].
    #[arg(long, value_name = "DURATION", requires = "store")]
    pub store_timeout: Option<String>,

    /// Access logs (Common/Combined Log Format) or JSONL traces; `-` reads standard input.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<String>,
}

/// Replays every input in order and returns the summary to print.
pub fn run(args: &ReplayArgs) -> Result<String, CliError> {
    let specs = load_policies(&args.config).map_err(|e| CliError::Usage(e.to_string()))?;
    // Every input must open before anything is replayed.
    for input in args.inputs.iter().filter(|i| *i != "-") {
        File::open(input).map_err(|e| CliError::Usage(format!("cannot open {input}: {e}")))?;
    }
    let clock = ManualClock::new(0);
    let manager = PolicyManager::with_clock(specs, clock.clone())
        .map_err(|e| CliError::Usage(format!("{}: {e}", args.config.display())))?;
    if let Some(out) = &args.decisions {
        refuse_output_over_input(out, &args.inputs)?;
    }
    // Before the decisions file is created: a store that cannot be used changes nothing.
    let store = match &args.store {
        None => None,
        Some(url) => Some(open_store(args, url, &manager)?),
    };
    let mut decisions = match &args.decisions {
        None => None,
        Some(path) => Some(BufWriter::with_capacity(
            1 << 16,
            File::create(path)
                .map_err(|e| CliError::Usage(format!("cannot create {}: {e}", path.display())))?,
        )),
    };
    let mut replay = Replay {
        manager: &manager,
        clock,
        origin: None,
        latest: 0,
        tally: Tally::new(&manager, args.inputs.clone()),
        verdict: Verdict::new(),
        store,
        stored: StoreVerdict::default(),
        names: manager.policies().map(|p| p.name().to_owned()).collect(),
        out: Vec::with_capacity(256),
        strict: args.strict,
        // Only header keys read headers: without them, a CLF line's are not even collected.
        needs_headers: manager.policies().any(|p| {
            p.key()
                .parts()
                .iter()
                .any(|k| matches!(k, KeyPart::Header(_)))
        }),
    };
    for input in &args.inputs {
        let (reader, size): (Box<dyn Read>, Option<u64>) = if input == "-" {
            (Box::new(io::stdin().lock()), None)
        } else {
            let file = File::open(input)
                .map_err(|e| CliError::Usage(format!("cannot open {input}: {e}")))?;
            let size = file.metadata().ok().map(|m| m.len());
            (Box::new(file), size)
        };
        let reader = BufReader::with_capacity(1 << 16, reader);
        replay.input(input, reader, size, args.format, decisions.as_mut())?;
    }
    if let Some(mut w) = decisions {
        w.flush()
            .map_err(|e| CliError::Input(format!("cannot write decisions: {e}")))?;
    }
    let summary = replay.tally.summary(args.top);
    Ok(if args.json {
        summary.to_json()
    } else {
        summary.to_table()
    })
}

/// `--store`: the policies' limiters in Redis, Redis asked once.
fn open_store(
    args: &ReplayArgs,
    url: &str,
    manager: &PolicyManager<ManualClock>,
) -> Result<ReplayStore, CliError> {
    let timeout = match &args.store_timeout {
        None => replay_store::DEFAULT_TIMEOUT,
        Some(t) => {
            parse_store_timeout(t).map_err(|e| CliError::Usage(format!("--store-timeout: {e}")))?
        }
    };
    let prefix = args
        .store_prefix
        .clone()
        .unwrap_or_else(replay_store::default_prefix);
    ReplayStore::open(url, &prefix, timeout, manager).map_err(CliError::Store)
}

/// Refuses a `--decisions` path that is one of the inputs (creating it would truncate the
/// input before it is read): the same file by device and inode on Unix, by canonical path
/// elsewhere. `-` is compared through `/dev/stdin` where that exists.
fn refuse_output_over_input(out: &std::path::Path, inputs: &[String]) -> Result<(), CliError> {
    if std::fs::metadata(out).is_err() {
        return Ok(()); // a file that does not exist yet is no input
    }
    for input in inputs {
        let path = if input == "-" {
            "/dev/stdin"
        } else {
            input.as_str()
        };
        if same_file(out, std::path::Path::new(path)) {
            return Err(CliError::Usage(format!(
                "--decisions {} is the input {input}: writing it would destroy the input",
                out.display()
            )));
        }
    }
    Ok(())
}

#[cfg(unix)]
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

struct Replay<'m> {
    manager: &'m PolicyManager<ManualClock>,
    clock: ManualClock,
    /// The first request's time: the clock reads time since then.
    origin: Option<u64>,
    /// The latest time seen, as read from the input.
    latest: u64,
    tally: Tally,
    verdict: Verdict,
    names: Vec<String>,
    out: Vec<u8>,
    strict: bool,
    needs_headers: bool,
    /// `--store`: decisions are made in Redis, into `stored`, instead of by `manager`.
    store: Option<ReplayStore>,
    stored: StoreVerdict,
}

impl Replay<'_> {
    fn input(
        &mut self,
        name: &str,
        mut reader: impl BufRead,
        size: Option<u64>,
        format: Format,
        mut decisions: Option<&mut BufWriter<File>>,
    ) -> Result<(), CliError> {
        let mut progress = Progress::new(name, size);
        let mut buf = Vec::with_capacity(1024);
        let mut format = format;
        let mut number = 0u64;
        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| CliError::Input(format!("{name}: read error: {e}")))?;
            if n == 0 {
                break;
            }
            number += 1;
            self.tally.lines += 1;
            progress.advance(n as u64);
            // A UTF-8 byte order mark at the start of an input is not part of its first line.
            let bytes = match buf.strip_prefix(b"\xEF\xBB\xBF") {
                Some(rest) if number == 1 => rest,
                _ => &buf[..],
            };
            // Not UTF-8: malformed (a lossy decoding would make up keys).
            let line = match std::str::from_utf8(bytes) {
                Ok(line) => line,
                Err(e) => {
                    let e = format!("not UTF-8 (invalid byte at column {})", e.valid_up_to() + 1);
                    if self.strict {
                        return Err(CliError::Input(format!("{name}:{number}: {e}")));
                    }
                    self.tally.malformed(name, number, e);
                    continue;
                }
            };
            let line = line.trim_end_matches(['\n', '\r']);
            if line.trim().is_empty() {
                continue;
            }
            if format == Format::Auto {
                format = format.resolve(Some(line));
            }
            let parsed = match format {
                Format::Jsonl => jsonl::parse(line),
                _ => clf::parse(line, self.needs_headers),
            };
            let record = match parsed {
                Ok(r) => r,
                Err(e) => {
                    if self.strict {
                        return Err(CliError::Input(format!("{name}:{number}: {e}")));
                    }
                    self.tally.malformed(name, number, e.to_string());
                    continue;
                }
            };
            self.request(&record, name, number)?;
            if let Some(w) = decisions.as_deref_mut() {
                self.out.clear();
                if self.store.is_some() {
                    write_decision(&mut self.out, number, &self.stored, &self.names);
                } else {
                    write_decision(&mut self.out, number, &self.verdict, &self.names);
                }
                w.write_all(&self.out)
                    .map_err(|e| CliError::Input(format!("cannot write decisions: {e}")))?;
            }
        }
        progress.finish();
        Ok(())
    }

    /// Moves the clock (forward only) and checks the request; only the store can fail.
    #[inline]
    fn request(&mut self, record: &Record<'_>, input: &str, line: u64) -> Result<(), CliError> {
        // Times compare as read (ns since the epoch, or the trace's origin): a line earlier
        // than the first is out of order too. The clock reads time since the first request.
        let t = record.t_ns;
        let origin = *self.origin.get_or_insert(t);
        if self.tally.requests == 0 {
            self.latest = t;
        } else if t > self.latest {
            self.tally.jumped(t - self.latest, input, line);
            self.latest = t;
            self.clock.set(t - origin);
        } else if t < self.latest {
            self.tally.out_of_order += 1;
        }
        self.tally.span_ns = self.latest - origin;
        // Empty (no allocation) unless a policy keys on a header.
        let headers: Vec<(&str, &str)> = record
            .headers
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .collect();
        let req = Request::new(&record.ip, &record.method, &record.path)
            .with_headers(&headers)
            .with_cost(record.cost);
        match &self.store {
            None => {
                self.manager.check_into(&req, &mut self.verdict);
                self.tally.record(&self.verdict);
            }
            Some(store) => {
                store
                    .check_into(self.manager, &req, self.clock.now(), &mut self.stored)
                    .map_err(|e| {
                        CliError::Store(format!("{input}:{line}: {e}; the replay stopped"))
                    })?;
                self.tally.record(&self.stored);
            }
        }
        Ok(())
    }
}

/// A one-line progress bar on standard error, only when it is a terminal and the input is a
/// file of known size (over 16 MiB: smaller ones take well under a second).
struct Progress {
    name: String,
    size: Option<u64>,
    done: u64,
    next: u64,
}

impl Progress {
    /// Redrawn every 4 MiB: a few hundred times for a large log, never per line.
    const STEP: u64 = 4 << 20;

    fn new(name: &str, size: Option<u64>) -> Self {
        let size = size.filter(|&s| s > 4 * Self::STEP && io::stderr().is_terminal());
        Self {
            name: name.to_owned(),
            size,
            done: 0,
            next: Self::STEP,
        }
    }

    #[inline]
    fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        if self.done >= self.next {
            self.next += Self::STEP;
            if let Some(size) = self.size {
                let _ = write!(
                    io::stderr(),
                    "\r{}",
                    progress_line(&self.name, self.done, size)
                );
            }
        }
    }

    fn finish(&self) {
        if let Some(size) = self.size {
            let _ = writeln!(io::stderr(), "\r{}", progress_line(&self.name, size, size));
        }
    }
}

/// `name [#######.............]  35%  140/400 MiB`: `done` of `size` bytes, as a bar of 30
/// cells.
fn progress_line(name: &str, done: u64, size: u64) -> String {
    const CELLS: u64 = 30;
    const MIB: u64 = 1 << 20;
    let done = done.min(size);
    let share = |of: u64| u128::from(done) * u128::from(of) / u128::from(size.max(1));
    let filled = usize::try_from(share(CELLS)).unwrap_or(0);
    let bar = format!(
        "{}{}",
        "#".repeat(filled),
        ".".repeat(CELLS as usize - filled)
    );
    format!(
        "{name} [{bar}] {:>3}%  {}/{} MiB",
        share(100),
        done / MIB,
        size / MIB
    )
}

#[cfg(test)]
mod tests {
    use super::progress_line;

    #[test]
    fn progress_bar() {
        let mib = 1 << 20;
        assert_eq!(
            progress_line("access.log", 140 * mib, 400 * mib),
            "access.log [##########....................]  35%  140/400 MiB"
        );
        assert_eq!(
            progress_line("a", 400 * mib, 400 * mib),
            format!("a [{}] 100%  400/400 MiB", "#".repeat(30))
        );
        // Past the end (a file that grew) and huge sizes stay within the bar.
        assert_eq!(
            progress_line("a", u64::MAX, u64::MAX),
            format!(
                "a [{}] 100%  {}/{} MiB",
                "#".repeat(30),
                u64::MAX >> 20,
                u64::MAX >> 20
            )
        );
        assert!(progress_line("a", 5, 0).contains("[..............................]"));
    }
}
