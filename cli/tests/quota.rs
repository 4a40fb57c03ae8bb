//! Runs the built `nanolimit` binary: exact output for good quotas, one-line errors and exit
//! status 2 for bad ones.

use std::process::{Command, Output};

fn nanolimit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nanolimit"))
        .args(args)
        .output()
        .expect("the nanolimit binary runs")
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("output is UTF-8")
}

const LIFETIME: &str = "lifetime:          2^61 ns from the clock's origin \
                        (26687d 23h 56m 49.213693952s, about 73 years)\n";

#[test]
fn fractional_interval_is_shown_exactly() {
    let out = nanolimit(&["quota", "3/1s"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    let expected = [
        "rate:              3 per 1s (3 per second)\n",
        "period:            1s (1000000000 ns)\n",
        "burst:             3\n",
        "emission interval: ~333.333333ms (exactly 1/3 s)\n",
        "                   not a whole number of ns: emission_interval() rounds it down to \
         333333333 ns; the limiter keeps the exact fraction\n",
        "refill time:       1s (1000000000 ns): burst x emission interval, from empty to full\n",
        "ticks per token:   333333334 (one tick is 1/333333334 of the emission interval)\n",
        "resolution:        1ns (rounded up from one tick: ~0.999999998ns = \
         500000000/500000001 ns)\n",
        "                   a decision can differ from the exact model only within one tick \
         of the moment its answer changes\n",
        LIFETIME,
    ]
    .concat();
    assert_eq!(text(&out.stdout), expected);
}

#[test]
fn whole_interval_with_a_burst() {
    let out = nanolimit(&["quota", "100/1m", "--burst", "20"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let expected = [
        "rate:              100 per 1m (~1.666667 per second)\n",
        "period:            1m (60000000000 ns)\n",
        "burst:             20\n",
        "emission interval: 600ms (600000000 ns)\n",
        "refill time:       12s (12000000000 ns): burst x emission interval, from empty to full\n",
        "ticks per token:   600000000 (one tick is 1/600000000 of the emission interval)\n",
        "resolution:        1ns (one tick is exactly 1 ns: decisions match the exact model)\n",
        LIFETIME,
    ]
    .concat();
    assert_eq!(text(&out.stdout), expected);
}

#[test]
fn every_period_form_is_accepted() {
    for (quota, period) in [
        ("10/250ms", "period:            250ms (250000000 ns)\n"),
        ("10/90s", "period:            1m 30s (90000000000 ns)\n"),
        ("10/90", "period:            1m 30s (90000000000 ns)\n"),
        ("10/1h", "period:            1h (3600000000000 ns)\n"),
        ("10/1d", "period:            1d (86400000000000 ns)\n"),
        ("1/365d", "period:            365d (31536000000000000 ns)\n"),
    ] {
        let out = nanolimit(&["quota", quota]);
        assert_eq!(out.status.code(), Some(0), "{quota}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains(period),
            "{quota}: {}",
            text(&out.stdout)
        );
    }
}

#[test]
fn bad_input_is_one_line_and_exit_status_2() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["quota", "0/1s"],
            "error: invalid quota '0/1s': rate must be at least 1 per period",
        ),
        (
            &["quota", "abc"],
            "error: invalid value 'abc' for '<RATE/PERIOD>': 'abc' is not of the form \
             <RATE>/<PERIOD> (for example 100/1m)",
        ),
        (
            &["quota", "10/0s"],
            "error: invalid quota '10/0s': period must be longer than zero",
        ),
        (
            &["quota", "10/5x"],
            "error: invalid value '10/5x' for '<RATE/PERIOD>': period '5x' has an unknown \
             unit 'x' (use ns, us, ms, s, m, h or d)",
        ),
        (
            &["quota", "10/1s", "--burst", "0"],
            "error: invalid burst 0: burst must be at least 1",
        ),
        // Regression (review): a newline inside the value cut the message before the reason.
        (
            &["quota", "1/1s\n"],
            "error: invalid value '1/1s\\n' for '<RATE/PERIOD>': period '1s\\n' has an \
             unknown unit 's\\n' (use ns, us, ms, s, m, h or d)",
        ),
        (
            &["quota", "99999999999999999999/1s"],
            "error: invalid value '99999999999999999999/1s' for '<RATE/PERIOD>': rate \
             '99999999999999999999' is too large: at most one per nanosecond (10^9 per second)",
        ),
        (
            &["quota", "10/99999999999999999999d"],
            "error: invalid value '10/99999999999999999999d' for '<RATE/PERIOD>': period \
             '99999999999999999999d' is too long: at most 365 days",
        ),
        (
            &["quota", "10/1s", "--burst", "99999999999999999999"],
            "error: invalid value '99999999999999999999' for '--burst <N>': burst \
             '99999999999999999999' is too large: at most 2^56",
        ),
        (
            &["quota", "10/366d"],
            "error: invalid quota '10/366d': period must be at most 365 days",
        ),
        (
            &["quota", "2000000000/1s"],
            "error: invalid quota '2000000000/1s': rate must be at most one per nanosecond \
             (10^9 per second)",
        ),
        (
            &["quota", "10/1.5s"],
            "error: invalid value '10/1.5s' for '<RATE/PERIOD>': period '1.5s' must be a whole \
             number followed by a unit (ns, us, ms, s, m, h or d)",
        ),
        (
            &["quota", "10/1s", "--burst", "x"],
            "error: invalid value 'x' for '--burst <N>': burst 'x' is not a whole number",
        ),
    ];
    for (args, message) in cases {
        let out = nanolimit(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(text(&out.stdout), "", "{args:?}");
        assert_eq!(text(&out.stderr), format!("{message}\n"), "{args:?}");
    }
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let missing = nanolimit(&["quota"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).starts_with(
        "error: the following required arguments were not provided:\n  <RATE/PERIOD>\n"
    ));
    let unknown = nanolimit(&["frobnicate"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).starts_with("error: unrecognized subcommand 'frobnicate'"));
    let help = nanolimit(&["quota", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help.stdout).contains("Usage: nanolimit quota [OPTIONS] <RATE/PERIOD>"));
}

/// Fault pinned: output that could not be written (a full disk) was dropped silently with
/// status 0. It is now an error with status 1; a reader that stops early is still fine.
#[test]
fn output_that_cannot_be_written_is_an_error() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full exists on Linux");
    let out = Command::new(env!("CARGO_BIN_EXE_nanolimit"))
        .args(["quota", "3/1s"])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("error: cannot write the output: "),
        "{}",
        text(&out.stderr)
    );
    // A closed pipe: the reader is gone before (or after) the output; not an error.
    let mut child = Command::new(env!("CARGO_BIN_EXE_nanolimit"))
        .args(["quota", "3/1s"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
