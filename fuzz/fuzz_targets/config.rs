//! Arbitrary bytes as a policy file (`nanolimit::policy`, feature `serde`): either policies
//! that keep the file's rules, or an error whose position (file, line, column) is inside the
//! input. Never a panic.

#![no_main]

use std::collections::HashSet;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nanolimit::policy::{load_policies, parse_policies, ConfigError, ConfigErrorKind};

const FILE: &str = "fuzz.toml";

/// The 1-based position `(line, column)` is within `text`: an existing line, and a column
/// from 1 to one past the line's last character.
fn assert_inside(text: &str, e: &ConfigError) {
    let lines: Vec<&str> = text.split('\n').collect();
    assert!(
        e.line >= 1 && e.line <= lines.len(),
        "line {} outside 1..={} for {e:?}",
        e.line,
        lines.len()
    );
    let chars = lines[e.line - 1].chars().count();
    assert!(
        e.column >= 1 && e.column <= chars + 1,
        "column {} outside 1..={} on line {} for {e:?}",
        e.column,
        chars + 1,
        e.line
    );
}

fn check_text(text: &str) {
    match parse_policies(text, FILE) {
        Ok(specs) => {
            assert!(!specs.is_empty(), "Ok with no policies");
            let mut names = HashSet::new();
            for spec in &specs {
                assert!(!spec.name().is_empty(), "an empty name was accepted");
                assert!(
                    names.insert(spec.name()),
                    "duplicate name {:?}",
                    spec.name()
                );
                let cost = spec.cost_multiplier();
                assert!(
                    cost >= 1 && cost <= spec.quota().burst(),
                    "cost {cost} out of range"
                );
                assert!(spec.key_limit() != Some(0), "max_keys = 0 was accepted");
            }
        }
        Err(e) => {
            assert_eq!(e.file, FILE);
            assert_ne!(e.kind, ConfigErrorKind::NotUtf8, "text is UTF-8");
            assert!(!matches!(e.kind, ConfigErrorKind::Io(_)), "no I/O here");
            assert_inside(text, &e);
            // The message renders (on one line for the parser's own messages).
            let shown = e.to_string();
            assert!(shown.contains(FILE), "{shown:?}");
            if let ConfigErrorKind::Syntax(_) = e.kind {
                assert!(!e.kind.to_string().contains('\n'), "{shown:?}");
            }
        }
    }
}

/// Bytes that are not UTF-8 go through the file loader, the only path that sees them.
fn check_file(bytes: &[u8]) {
    static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();
    let path = PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("nanolimit-fuzz-config-{}.toml", std::process::id()))
    });
    std::fs::write(path, bytes).expect("temp file");
    let e = load_policies(path).expect_err("not UTF-8 must be refused");
    assert_eq!(e.kind, ConfigErrorKind::NotUtf8, "{e:?}");
    let valid =
        std::str::from_utf8(&bytes[..std::str::from_utf8(bytes).unwrap_err().valid_up_to()])
            .expect("valid prefix");
    // The position is the first invalid byte's: inside the valid prefix plus one column.
    assert_inside(valid, &e);
    let last = valid.rsplit('\n').next().unwrap_or("");
    assert_eq!(e.line, valid.split('\n').count());
    assert_eq!(e.column, last.chars().count() + 1);
}

fuzz_target!(|data: &[u8]| {
    match std::str::from_utf8(data) {
        Ok(text) => check_text(text),
        Err(_) => {
            check_file(data);
            // And what a lossy reading of it says, through the text entry point.
            check_text(&String::from_utf8_lossy(data));
        }
    }
});
