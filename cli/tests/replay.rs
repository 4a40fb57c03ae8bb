//! `nanolimit replay`: the summary, JSON, malformed lines, `--strict`, exit codes.

mod common;

use common::{nanolimit, repo, scratch, text};

fn policies() -> String {
    repo("examples/replay/policies.toml")
}

#[test]
fn the_readme_example_prints_this_table() {
    let out = nanolimit(
        &[
            "replay",
            "--config",
            &policies(),
            &repo("examples/replay/access.log"),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    let expected = format!("\
58 lines from 1 input: 58 requests, 0 malformed
time span: 55s; largest jump forward: 5s at {}:4
1 line earlier than the latest time seen (judged at the latest time seen)
allowed: 47  denied: 11

policy  mode     algorithm     quota           key     matched  allowed  denied  shadow-denied  errors  keys-seen
per-ip  enforce  gcra          60/1m burst 20  ip           58       50       8              0       0          4
login   enforce  token-bucket  5/10m           ip            8        5       3              0       0          1
site    shadow   gcra          25/1s           global       58       58       0              0       0          1

top denied keys:
  per-ip         8  198.51.100.7
  login          3  203.0.113.5
", repo("examples/replay/access.log"));
    assert_eq!(text(&out.stdout), expected);
}

const TRACE: &str = r#"{"t": 0, "ip": "a", "method": "POST", "path": "/login"}
{"t": 0.5, "ip": "a", "method": "POST", "path": "/login", "cost": 4}
not json
{"t": -1, "ip": "a"}

{"ip": "no time"}
{"t": 1, "ip": "a", "cost": 0}
{"t": 1, "ip": "b", "method": "POST", "path": "/login", "cost": 6}
{"t": 2, "ip": "a", "headers": {"x": "y"}, "extra": true}
"#;

#[test]
fn malformed_lines_are_counted_and_the_first_five_reported() {
    let out = nanolimit(
        &["replay", "--json", "--config", &policies(), "-"],
        TRACE.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["lines"], 9);
    assert_eq!(s["requests"], 4);
    assert_eq!(s["malformed"], 4);
    let lines: Vec<u64> = s["malformed_examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [3, 4, 6, 7]);
    assert_eq!(
        s["malformed_examples"][1]["error"],
        "\"t\" must be a number of seconds from 0 to 18446744073.709551615 (2^64 ns), \
         without a sign"
    );
    assert_eq!(s["malformed_examples"][3]["error"], "\"cost\" must be >= 1");
    assert_eq!(s["malformed_examples"][0]["input"], "-");
    // Line 2 (cost 4) empties a's login bucket; line 8 (cost 6 > burst 5) can never succeed.
    assert_eq!(s["allowed"], 3);
    assert_eq!(s["denied"], 1);
    let login = &s["policies"][1];
    assert_eq!(login["name"], "login");
    assert_eq!(
        (login["matched"].as_u64(), login["denied"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(login["errors"], 1);
    assert_eq!(login["top_denied"][0]["key"], "b");
}

#[test]
fn the_table_quotes_malformed_lines() {
    let out = nanolimit(&["replay", "--config", &policies(), "-"], TRACE.as_bytes());
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(
            "9 lines from 1 input: 4 requests, 4 malformed\n  malformed: -:3: bad JSON: "
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("\n  malformed: -:7: \"cost\" must be >= 1\n"),
        "{stdout}"
    );
}

#[test]
fn strict_stops_at_the_first_malformed_line_with_status_1() {
    let out = nanolimit(
        &["replay", "--strict", "--config", &policies(), "-"],
        TRACE.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    let err = text(&out.stderr);
    assert!(err.starts_with("error: -:3: bad JSON: "), "{err}");
    assert_eq!(err.lines().count(), 1);
}

#[test]
fn configuration_errors_exit_2_with_file_line_and_column() {
    let path = scratch("bad.toml");
    std::fs::write(
        &path,
        "[[policy]]\nname = \"a\"\nrate = 1\nperiod = \"1 minute\"\nkey = \"ip\"\n",
    )
    .unwrap();
    let out = nanolimit(&["replay", "--config", path.to_str().unwrap(), "-"], b"");
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: {}:4:10: bad duration '1 minute': expected a whole number and a unit (ns, us, ms, s, m, h, d), such as 250ms or 1m\n",
            path.display()
        )
    );
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn usage_errors_exit_2() {
    let missing_input = nanolimit(
        &["replay", "--config", &policies(), "/nonexistent/log"],
        b"",
    );
    assert_eq!(missing_input.status.code(), Some(2));
    assert!(text(&missing_input.stderr).starts_with("error: cannot open /nonexistent/log: "));
    let missing_config = nanolimit(&["replay", "--config", "/nonexistent/p.toml", "-"], b"");
    assert_eq!(missing_config.status.code(), Some(2));
    assert!(text(&missing_config.stderr).starts_with("error: /nonexistent/p.toml: cannot read: "));
    let no_input = nanolimit(&["replay", "--config", &policies()], b"");
    assert_eq!(no_input.status.code(), Some(2));
    let bad_format = nanolimit(
        &["replay", "--format", "xml", "--config", &policies(), "-"],
        b"",
    );
    assert_eq!(bad_format.status.code(), Some(2));
    // One line, the possible values after a space (not an escaped newline).
    assert_eq!(
        text(&bad_format.stderr),
        "error: invalid value 'xml' for '--format <FORMAT>' [possible values: auto, clf, jsonl]\n"
    );
}

#[test]
fn a_forced_format_and_an_empty_input() {
    let out = nanolimit(
        &[
            "replay",
            "--json",
            "--format",
            "clf",
            "--config",
            &policies(),
            "-",
        ],
        b"{\"t\": 1}\n",
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (s["requests"].as_u64(), s["malformed"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(s["malformed_examples"][0]["error"], "no [timestamp]");
    let out = nanolimit(&["replay", "--json", "--config", &policies(), "-"], b"");
    assert_eq!(out.status.code(), Some(0));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (s["lines"].as_u64(), s["requests"].as_u64()),
        (Some(0), Some(0))
    );
}

#[test]
fn several_inputs_share_one_clock_and_one_set_of_buckets() {
    // The same 58-line sample twice: the second copy starts where the first left off in time
    // (its times are earlier, so no time passes) and finds the buckets as the first left them.
    let log = repo("examples/replay/access.log");
    let out = nanolimit(
        &["replay", "--json", "--config", &policies(), &log, &log],
        b"",
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["requests"], 116);
    assert_eq!(s["out_of_order"], 1 + 57);
    // Second copy, all at t = 55 s: the two readers (20 requests) are well within their
    // buckets; the scraper's has refilled to its burst of 20 (20 of 30 admitted); the login
    // bucket of 203.0.113.5 is still empty (0 of 8). 47 + 40.
    assert_eq!(s["allowed"], 87);
}
