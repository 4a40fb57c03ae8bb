//! The TOML policy file: every error names file, line, column and cause; a good file gives
//! exactly the policies it says.

#![cfg(feature = "serde")]

use std::time::Duration;

use nanolimit::policy::{parse_policies, AlgorithmKind, ConfigErrorKind, KeyError, PeriodError};
use nanolimit::QuotaError;

fn err(text: &str) -> (usize, usize, ConfigErrorKind, String) {
    let e = parse_policies(text, "p.toml").expect_err("the file is refused");
    let shown = e.to_string();
    (e.line, e.column, e.kind, shown)
}

const GOOD: &str = r#"
[[policy]]
name = "api"                 # unique
algorithm = "gcra"
rate = 100
period = "1m"
burst = 20
key = "ip"
cost = 1
shadow = false
[policy.match]
path_prefix = "/api/"
methods = ["GET", "post"]

[[policy]]
name = "keys"
algorithm = "token-bucket"
rate = 3
period = "250ms"
key = "header:X-Api-Key+path"
cost = 2
shadow = true
max_keys = 1000
"#;

#[test]
fn a_good_file_gives_its_policies() {
    let specs = parse_policies(GOOD, "p.toml").unwrap();
    assert_eq!(specs.len(), 2);
    let api = &specs[0];
    assert_eq!(api.name(), "api");
    assert_eq!(api.algorithm_kind(), AlgorithmKind::Gcra);
    assert_eq!(api.quota().rate(), 100);
    assert_eq!(api.quota().period(), Duration::from_secs(60));
    assert_eq!(api.quota().burst(), 20);
    assert_eq!(api.key().to_string(), "ip");
    assert_eq!(api.cost_multiplier(), 1);
    assert!(!api.is_shadow());
    assert_eq!(api.matcher().prefix(), Some("/api/"));
    assert_eq!(api.matcher().method_list(), ["GET", "POST"]);
    let keys = &specs[1];
    assert_eq!(keys.algorithm_kind(), AlgorithmKind::TokenBucket);
    assert_eq!(keys.quota().period(), Duration::from_millis(250));
    assert_eq!(keys.quota().burst(), 3, "burst defaults to the rate");
    assert_eq!(keys.key().to_string(), "header:x-api-key+path");
    assert_eq!(keys.cost_multiplier(), 2);
    assert!(keys.is_shadow());
    assert_eq!(keys.key_limit(), Some(1000));
    assert_eq!(api.key_limit(), None);
    assert_eq!(keys.matcher().prefix(), None);
}

/// Regression (review of issue 4, fault 6): an empty file, or one of comments only, loaded as
/// no policies, and replay then reported every request allowed.
#[test]
fn a_file_without_policies_is_an_error() {
    for text in ["", "\n", "# policies to come\n\n# none yet\n"] {
        let (line, col, kind, shown) = err(text);
        assert_eq!((line, col, kind), (1, 1, ConfigErrorKind::NoPolicies));
        assert_eq!(shown, "no [[policy]] in p.toml");
    }
}

/// Regression (fault 5): a policy whose cost is above its burst can never admit anything; it
/// loaded, and denied every request it matched.
#[test]
fn a_cost_above_the_burst_is_an_error_at_the_cost() {
    let (l, c, k, shown) = err(&format!(
        "{HEAD}rate = 10\nperiod = \"1s\"\nburst = 3\nkey = \"ip\"\ncost = 4\n"
    ));
    assert_eq!(
        (l, c, k),
        (7, 8, ConfigErrorKind::CostAboveBurst { cost: 4, burst: 3 })
    );
    assert_eq!(
        shown,
        "p.toml:7:8: cost 4 is above the burst 3: no request could ever be admitted"
    );
    // Burst defaults to the rate.
    let (_, _, k, _) = err(&format!(
        "{HEAD}rate = 2\nperiod = \"1s\"\nkey = \"ip\"\ncost = 3\n"
    ));
    assert_eq!(k, ConfigErrorKind::CostAboveBurst { cost: 3, burst: 2 });
    assert!(parse_policies(
        &format!("{HEAD}rate = 2\nperiod = \"1s\"\nkey = \"ip\"\ncost = 2\n"),
        "p.toml"
    )
    .is_ok());
}

/// Regression (fault 11): `methods = []` loaded as "any method" though it reads as "none".
#[test]
fn empty_methods_are_an_error() {
    let (l, c, k, _) = err(&format!(
        "{HEAD}rate = 1\nperiod = \"1s\"\nkey = \"ip\"\n[policy.match]\nmethods = []\n"
    ));
    assert_eq!((l, c, k), (7, 11, ConfigErrorKind::EmptyMethods));
}

/// Regression (fault 11): a repeated key part was accepted.
#[test]
fn a_repeated_key_part_is_an_error() {
    let (l, c, k, _) = err(&format!(
        "{HEAD}rate = 1\nperiod = \"1s\"\nkey = \"ip+ip\"\n"
    ));
    assert_eq!(
        (l, c, k),
        (
            5,
            7,
            ConfigErrorKind::BadKey(KeyError::RepeatedPart("ip".into()))
        )
    );
}

/// Regression (fault 11): toml's message for some syntax errors spans two lines.
#[test]
fn a_syntax_error_is_one_line() {
    let (l, c, _, shown) = err("[[policy]]\nname = \"a\"\nrate = = 1\n");
    assert_eq!((l, c), (3, 8));
    assert!(!shown.contains('\n'), "{shown}");
    assert!(shown.starts_with("p.toml:3:8: "), "{shown}");
}

/// Regression (fault 9): a file that is not UTF-8 was "cannot read: stream did not contain
/// valid UTF-8", with no position.
#[test]
fn a_non_utf8_file_names_the_first_invalid_byte() {
    let path = std::env::temp_dir().join(format!("nanolimit-nonutf8-{}.toml", std::process::id()));
    std::fs::write(&path, b"[[policy]]\nname = \"a\xff\xfe\"\nrate = 1\n").unwrap();
    let e = nanolimit::policy::load_policies(&path).unwrap_err();
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        (e.line, e.column, e.kind),
        (2, 10, ConfigErrorKind::NotUtf8)
    );
}

const HEAD: &str = "[[policy]]\nname = \"a\"\n";

#[test]
fn unknown_algorithm() {
    let text = format!("{HEAD}algorithm = \"leaky\"\nrate = 1\nperiod = \"1s\"\nkey = \"ip\"\n");
    let (line, col, kind, shown) = err(&text);
    assert_eq!((line, col), (3, 13));
    assert!(matches!(kind, ConfigErrorKind::UnknownAlgorithm(_)));
    assert_eq!(
        shown,
        "p.toml:3:13: unknown algorithm 'leaky' (expected \"gcra\" or \"token-bucket\")"
    );
}

#[test]
fn rate_zero_and_negative() {
    let (line, col, kind, _) = err(&format!("{HEAD}rate = 0\nperiod = \"1s\"\nkey = \"ip\"\n"));
    assert_eq!((line, col, kind), (3, 8, ConfigErrorKind::BadRate(0)));
    let (_, _, kind, _) = err(&format!("{HEAD}rate = -5\nperiod = \"1s\"\nkey = \"ip\"\n"));
    assert_eq!(kind, ConfigErrorKind::BadRate(-5));
}

#[test]
fn bad_durations() {
    for (period, kind) in [
        ("1.5s", PeriodError::Malformed("1.5s".into())),
        ("10", PeriodError::Malformed("10".into())),
        ("1w", PeriodError::Malformed("1w".into())),
        ("0s", PeriodError::OutOfRange("0s".into())),
        ("366d", PeriodError::OutOfRange("366d".into())),
    ] {
        let text = format!("{HEAD}rate = 1\nperiod = \"{period}\"\nkey = \"ip\"\n");
        let (line, col, k, _) = err(&text);
        assert_eq!((line, col), (4, 10), "{period}");
        assert_eq!(k, ConfigErrorKind::BadDuration(kind));
    }
}

#[test]
fn duplicate_name_points_at_the_second() {
    let one = "[[policy]]\nname = \"a\"\nrate = 1\nperiod = \"1s\"\nkey = \"ip\"\n";
    let text = format!("{one}\n{one}");
    let (line, col, kind, shown) = err(&text);
    assert_eq!((line, col), (8, 8));
    assert_eq!(kind, ConfigErrorKind::DuplicateName("a".into()));
    assert_eq!(shown, "p.toml:8:8: duplicate policy name 'a'");
}

#[test]
fn unknown_fields_anywhere() {
    let (line, col, kind, shown) = err(&format!(
        "{HEAD}rate = 1\nperiod = \"1s\"\nkey = \"ip\"\nbrust = 3\n"
    ));
    assert_eq!(line, 6, "{shown}");
    assert_eq!(col, 1, "{shown}");
    assert!(
        matches!(&kind, ConfigErrorKind::Syntax(m) if m.contains("unknown field `brust`")),
        "{shown}"
    );
    let (line, _, kind, shown) = err(&format!(
        "{HEAD}rate = 1\nperiod = \"1s\"\nkey = \"ip\"\n[policy.match]\nprefix = \"/\"\n"
    ));
    assert_eq!(line, 7, "{shown}");
    assert!(matches!(&kind, ConfigErrorKind::Syntax(m) if m.contains("unknown field `prefix`")));
    let (line, col, kind, _) = err("polcy = 1\n");
    assert_eq!((line, col), (1, 1));
    assert!(matches!(&kind, ConfigErrorKind::Syntax(m) if m.contains("unknown field `polcy`")));
}

#[test]
fn missing_fields_and_wrong_types() {
    let (_, _, kind, shown) = err(&format!("{HEAD}period = \"1s\"\nkey = \"ip\"\n"));
    assert!(
        matches!(&kind, ConfigErrorKind::Syntax(m) if m.contains("missing field `rate`")),
        "{shown}"
    );
    let (line, col, kind, _) = err(&format!(
        "{HEAD}rate = \"ten\"\nperiod = \"1s\"\nkey = \"ip\"\n"
    ));
    assert_eq!((line, col), (3, 8));
    assert!(matches!(kind, ConfigErrorKind::Syntax(_)));
    let (line, col, kind, _) = err("[[policy]\n");
    assert_eq!((line, col), (1, 9), "at the lone `]`");
    assert!(matches!(kind, ConfigErrorKind::Syntax(_)));
}

#[test]
fn burst_cost_key_and_quota_range() {
    let base = format!("{HEAD}rate = 1\nperiod = \"1s\"\n");
    let (l, c, k, _) = err(&format!("{base}key = \"ip\"\nburst = 0\n"));
    assert_eq!((l, c, k), (6, 9, ConfigErrorKind::BadBurst(0)));
    let (l, c, k, _) = err(&format!("{base}key = \"ip\"\nmax_keys = -1\n"));
    assert_eq!((l, c, k), (6, 12, ConfigErrorKind::BadMaxKeys(-1)));
    let (l, c, k, _) = err(&format!("{base}key = \"ip\"\ncost = 0\n"));
    assert_eq!((l, c, k), (6, 8, ConfigErrorKind::BadCost(0)));
    let (l, c, k, _) = err(&format!("{base}key = \"ip+host\"\n"));
    assert_eq!(
        (l, c, k),
        (
            5,
            7,
            ConfigErrorKind::BadKey(KeyError::UnknownPart("host".into()))
        )
    );
    let (l, c, k, _) = err(&format!(
        "{HEAD}rate = 2000\nperiod = \"1us\"\nkey = \"ip\"\n"
    ));
    assert_eq!(
        (l, c, k),
        (3, 8, ConfigErrorKind::Quota(QuotaError::RateTooHigh))
    );
    let (_, _, k, _) = err(&format!("{HEAD}name = \"\"\n"));
    assert!(
        matches!(k, ConfigErrorKind::Syntax(_)),
        "a repeated key is a TOML error"
    );
    let (l, c, k, _) = err("[[policy]]\nname = \"\"\nrate = 1\nperiod = \"1s\"\nkey = \"ip\"\n");
    assert_eq!((l, c, k), (2, 8, ConfigErrorKind::EmptyName));
}

#[test]
fn columns_count_characters() {
    let text = "[[policy]]\nname = \"é\"\nrate = 1\nperiod = \"1s\"\nkey = \"ip\"\n[[policy]]\nname = \"é\"\nrate = 1\nperiod = \"1s\"\nkey = \"ip\"\n";
    let (line, col, _, _) = err(text);
    assert_eq!((line, col), (7, 8));
}

#[test]
fn load_names_the_missing_file() {
    let e = nanolimit::policy::load_policies("/nonexistent/p.toml").unwrap_err();
    assert_eq!(e.file, "/nonexistent/p.toml");
    assert_eq!((e.line, e.column), (0, 0));
    assert!(matches!(e.kind, ConfigErrorKind::Io(_)));
    assert!(e
        .to_string()
        .starts_with("/nonexistent/p.toml: cannot read: "));
}

mod never_panics {
    use nanolimit::policy::parse_policies;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Any text: a result, never a panic; an error always has a position inside the text.
        #[test]
        fn on_any_text(text in "\\PC{0,200}") {
            if let Err(e) = parse_policies(&text, "f") {
                prop_assert!(e.line >= 1 && e.line <= text.lines().count().max(1) + 1);
                prop_assert!(e.column >= 1);
            }
        }

        /// The good file with one byte range replaced by arbitrary text.
        #[test]
        fn on_a_damaged_good_file(start in 0usize..400, len in 0usize..20, junk in "\\PC{0,12}") {
            let good = super::GOOD;
            let start = start.min(good.len());
            let end = (start + len).min(good.len());
            if good.is_char_boundary(start) && good.is_char_boundary(end) {
                let text = format!("{}{}{}", &good[..start], junk, &good[end..]);
                let _ = parse_policies(&text, "f");
            }
        }
    }
}
