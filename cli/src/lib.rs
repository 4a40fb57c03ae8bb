//! The parts of the `nanolimit` command that other crates use: the input formats of
//! `nanolimit replay`, shared with the fuzz targets (`fuzz/fuzz_targets/logs.rs`). The
//! command itself is `src/main.rs`; this library is not published.

pub mod logs;
pub mod serve;
