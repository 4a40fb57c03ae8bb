//! Regressions from the review of issue 4 (policies, the manager and `nanolimit replay`):
//! each test names the fault it pins.

mod common;

use common::{nanolimit, scratch, text};

/// Writes `contents` to a scratch file and returns its path.
fn file(name: &str, contents: &[u8]) -> String {
    let path = scratch(name);
    std::fs::write(&path, contents).unwrap();
    path.to_str().unwrap().to_owned()
}

fn replay(args: &[&str], stdin: &[u8]) -> (Option<i32>, String, String) {
    let mut all = vec!["replay"];
    all.extend_from_slice(args);
    let out = nanolimit(&all, stdin);
    (
        out.status.code(),
        text(&out.stdout).to_owned(),
        text(&out.stderr).to_owned(),
    )
}

const ONE_PER_SECOND: &[u8] =
    b"[[policy]]\nname = \"one\"\nrate = 1\nperiod = \"1s\"\nburst = 1\nkey = \"ip\"\n";

/// Fault 1, through the command: /tmp/r4's repro. Line 4 (ip y on the tracked path /p1) must
/// be allowed with a's whole bucket for y: the two requests b refused at capacity took nothing.
#[test]
fn a_refusal_at_capacity_takes_nothing_from_earlier_policies() {
    let config = file(
        "review-cap.toml",
        b"[[policy]]\nname = \"a\"\nrate = 1\nperiod = \"1h\"\nburst = 2\nkey = \"ip\"\n\n\
          [[policy]]\nname = \"b\"\nrate = 1\nperiod = \"1h\"\nburst = 5\nkey = \"path\"\nmax_keys = 1\n",
    );
    let out = scratch("review-cap.decisions.jsonl");
    let trace = br#"{"t": 0, "ip": "x", "path": "/p1"}
{"t": 0, "ip": "y", "path": "/p2"}
{"t": 0, "ip": "y", "path": "/p2"}
{"t": 0, "ip": "y", "path": "/p1"}
"#;
    let (code, _, err) = replay(
        &[
            "--config",
            &config,
            "--decisions",
            out.to_str().unwrap(),
            "-",
        ],
        trace,
    );
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(
        lines[1].contains(r#""error":"at capacity""#),
        "{}",
        lines[1]
    );
    assert!(
        lines[3].starts_with(r#"{"line":4,"allowed":true"#),
        "{}",
        lines[3]
    );
    assert!(
        lines[3].contains(r#"{"name":"a","key":"y","allowed":true,"remaining":1,"#),
        "{}",
        lines[3]
    );
}

/// Fault 2, through the command: 1700000000.999999999 s is 1 ns short of the next admission
/// on 1/1s burst 1 (an f64 read it as 1700000001 and admitted it); the largest time reads.
#[test]
fn t_keeps_its_nanoseconds_at_unix_epoch_times() {
    let config = file("review-prec.toml", ONE_PER_SECOND);
    let out = scratch("review-prec.decisions.jsonl");
    let trace =
        b"{\"t\":1700000000.0}\n{\"t\":1700000000.999999999}\n{\"t\":18446744073.709551615}\n";
    let (code, _, err) = replay(
        &[
            "--config",
            &config,
            "--decisions",
            out.to_str().unwrap(),
            "--strict",
            "-",
        ],
        trace,
    );
    assert_eq!(code, Some(0), "{err}");
    let lines = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = lines.lines().collect();
    assert!(
        lines[1].starts_with(r#"{"line":2,"allowed":false"#),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains(r#""retry_after_ns":1,"#), "{}", lines[1]);
    assert!(
        lines[2].starts_with(r#"{"line":3,"allowed":true"#),
        "{}",
        lines[2]
    );
}

/// Fault 3: `--decisions` naming an input truncated the input before it was read. Now a usage
/// error (exit 2), and the input is left as it was, whichever way it is named.
#[test]
fn decisions_over_an_input_is_refused_and_the_input_kept() {
    let config = file("review-same.toml", ONE_PER_SECOND);
    let trace = b"{\"t\":0,\"ip\":\"a\"}\n{\"t\":0,\"ip\":\"a\"}\n";
    let input = file("review-same.jsonl", trace);
    let input_path = std::path::Path::new(&input);
    let other_name = input_path
        .parent()
        .unwrap()
        .join(".")
        .join(input_path.file_name().unwrap());
    let other = other_name.to_str().unwrap();
    for out in [input.as_str(), other] {
        let (code, stdout, err) = replay(&["--config", &config, "--decisions", out, &input], b"");
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("would destroy the input"), "{err}");
        assert!(!err.trim_end().contains('\n'), "{err}");
        assert_eq!(stdout, "");
        assert_eq!(
            std::fs::read(&input).unwrap(),
            trace,
            "the input was not touched"
        );
    }
    // An input read from standard input, redirected from the same file.
    let out = nanolimit_with_stdin_file(&config, &input);
    assert_eq!(out.0, Some(2), "{}", out.1);
    assert_eq!(std::fs::read(&input).unwrap(), trace);
}

fn nanolimit_with_stdin_file(config: &str, input: &str) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nanolimit"))
        .args(["replay", "--config", config, "--decisions", input, "-"])
        .stdin(std::fs::File::open(input).unwrap())
        .output()
        .unwrap();
    (out.status.code(), text(&out.stderr).to_owned())
}

/// Fault 4: keys from the log were printed raw in the table: a newline forged a row, an
/// escape sequence colored the terminal. Escaped now; JSON was already escaped.
#[test]
fn keys_from_the_log_cannot_forge_rows_or_drive_the_terminal() {
    let config = file("review-inj.toml", ONE_PER_SECOND);
    let trace = br#"{"t":0,"ip":"evil\n  one  999  10.0.0.1"}
{"t":0,"ip":"evil\n  one  999  10.0.0.1"}
{"t":0,"ip":"\u001b[31mred"}
{"t":0,"ip":"\u001b[31mred"}
"#;
    let (code, table, err) = replay(&["--config", &config, "-"], trace);
    assert_eq!(code, Some(0), "{err}");
    assert!(!table.contains('\u{1b}'), "{table}");
    assert!(!table.contains("\n  one  999"), "{table}");
    assert!(table.contains(r"evil\n  one  999  10.0.0.1"), "{table}");
    assert!(table.contains(r"\u{1b}[31mred"), "{table}");
    let (_, json, _) = replay(&["--json", "--config", &config, "-"], trace);
    let s: serde_json::Value = serde_json::from_str(&json).unwrap();
    let keys: Vec<&str> = s["policies"][0]["top_denied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["\u{1b}[31mred", "evil\n  one  999  10.0.0.1"]);
}

/// Fault 6: an empty policy file (or comments only) loaded as no policies, and replay reported
/// every request allowed. A configuration error now (exit 2).
#[test]
fn a_policy_file_without_policies_is_a_configuration_error() {
    for (name, contents) in [
        ("review-empty.toml", &b""[..]),
        ("review-comments.toml", b"# todo\n"),
    ] {
        let config = file(name, contents);
        let input = file("review-empty.jsonl", b"{\"t\":0}\n");
        let (code, out, err) = replay(&["--config", &config, &input], b"");
        assert_eq!(code, Some(2));
        assert_eq!(err, format!("error: no [[policy]] in {config}\n"));
        assert_eq!(out, "");
    }
}

/// Fault 7: lines earlier than the first line were clamped to the first line's time and not
/// counted as out of order. Fault 8: the summary says they are judged at the latest time seen,
/// and shows the largest forward jump (one far-future line poisons the rest of a replay).
#[test]
fn lines_before_the_first_count_as_out_of_order_and_the_largest_jump_shows() {
    let config = file("review-order.toml", ONE_PER_SECOND);
    let (code, table, err) = replay(
        &["--config", &config, "-"],
        b"{\"t\":10}\n{\"t\":9}\n{\"t\":8}\n",
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        table.contains(
            "\n2 lines earlier than the latest time seen (judged at the latest time seen)\n"
        ),
        "{table}"
    );
    let far = b"{\"t\":0}\n{\"t\":1}\n{\"t\":86400}\n{\"t\":2}\n{\"t\":3}\n";
    let (_, table, _) = replay(&["--config", &config, "-"], far);
    assert!(
        table.contains("time span: 1d; largest jump forward: 23h 59m 59s at -:3\n"),
        "{table}"
    );
    let (_, json, _) = replay(&["--json", "--config", &config, "-"], far);
    let s: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(s["out_of_order"], 2);
    assert_eq!(s["largest_jump"]["ns"], 86_399_000_000_000u64);
    assert_eq!(s["largest_jump"]["line"], 3);
}

/// Fault 10: invalid UTF-8 was decoded lossily into keys (U+FFFD); a byte order mark broke
/// the first line of a log and JSONL auto-detection.
#[test]
fn invalid_utf8_is_malformed_and_a_byte_order_mark_is_skipped() {
    let config = file("review-utf8.toml", ONE_PER_SECOND);
    let (code, _, err) = replay(
        &["--json", "--config", &config, "-"],
        b"{\"t\":0,\"ip\":\"a\xff\"}\n{\"t\":0,\"ip\":\"b\"}\n",
    );
    assert_eq!(code, Some(0), "{err}");
    let (_, json, _) = replay(
        &["--json", "--config", &config, "-"],
        b"{\"t\":0,\"ip\":\"a\xff\"}\n{\"t\":0,\"ip\":\"b\"}\n",
    );
    let s: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (s["requests"].as_u64(), s["malformed"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        s["malformed_examples"][0]["error"],
        "not UTF-8 (invalid byte at column 15)"
    );
    let (code, _, _) = replay(
        &["--strict", "--config", &config, "-"],
        b"{\"t\":0,\"ip\":\"a\xff\"}\n",
    );
    assert_eq!(code, Some(1));
    for input in [
        &b"\xEF\xBB\xBF{\"t\":0,\"ip\":\"a\"}\n{\"t\":0,\"ip\":\"a\"}\n"[..],
        b"\xEF\xBB\xBF10.0.0.1 - - [17/May/2015:10:05:03 +0000] \"GET / HTTP/1.1\" 200 5\n[2001:db8::2] - - [17/May/2015:10:05:03 +0000] \"GET / HTTP/1.1\" 200 5\n",
    ] {
        let (_, json, _) = replay(&["--json", "--config", &config, "-"], input);
        let s: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            (s["requests"].as_u64(), s["malformed"].as_u64()),
            (Some(2), Some(0)),
            "{json}"
        );
    }
}
