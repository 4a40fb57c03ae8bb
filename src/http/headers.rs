//! Rate-limit response headers, as pure functions of decisions: the IETF draft's
//! `RateLimit-Policy` and `RateLimit` fields, `Retry-After`, and the older
//! `X-RateLimit-Limit/-Remaining/-Reset`.
//!
//! Nothing here reads a clock or a limiter: every value comes from a
//! [`Decision`] and a [`Quota`], so any server (the tower layer, a
//! hand-written one, the `nanolimit serve` HTTP endpoint) renders the same headers.
//!
//! Mapping of a quota to the draft's fields (`q` units per window `w` seconds): `q` is the
//! burst (the most a client can spend at once) and `w` the time a drained bucket takes to
//! refill, in whole seconds rounded up (at least 1). With the default burst (equal to the
//! rate) that is the quota as written: 100 per minute is `q=100;w=60`. `r` is the
//! decision's `remaining`, `t` its `reset_after` in whole seconds rounded up.

use ::http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};

use crate::decision::Decision;
use crate::policy::{PolicyManager, PolicyResult, PolicySpec, Verdict};
use crate::quota::Quota;
use crate::Clock;

/// `RateLimit-Policy` (IETF draft): one item per policy, `"name";q=<units>;w=<seconds>`.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` (IETF draft): one item per policy, `"name";r=<remaining>;t=<seconds>`.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// `X-RateLimit-Limit`: the burst of the most constrained policy.
pub const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining`: its remaining units.
pub const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// `X-RateLimit-Reset`: seconds (rounded up) until its bucket is full again.
pub const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// Which rate-limit headers are sent, and when.
///
/// The default sends the draft fields (`RateLimit-Policy`, `RateLimit`) on every response
/// and `Retry-After` on denials; the `X-RateLimit-*` fields are off.
///
/// ```
/// use nanolimit::http::HeaderOptions;
///
/// let opts = HeaderOptions::new().legacy(true).on_allowed(false);
/// assert!(opts.sends_legacy());
/// assert!(!opts.sends_on_allowed());
/// assert!(!HeaderOptions::none().sends_draft());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderOptions {
    draft: bool,
    legacy: bool,
    retry_after: bool,
    on_allowed: bool,
}

impl Default for HeaderOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderOptions {
    /// The default: draft fields on every response, `Retry-After` on denials, no `X-` fields.
    pub const fn new() -> Self {
        Self {
            draft: true,
            legacy: false,
            retry_after: true,
            on_allowed: true,
        }
    }

    /// No header at all. Each can then be turned on, for refusals only until
    /// [`on_allowed(true)`](Self::on_allowed) adds them to admitted responses too.
    pub const fn none() -> Self {
        Self {
            draft: false,
            legacy: false,
            retry_after: false,
            on_allowed: false,
        }
    }

    /// Sends `RateLimit-Policy` and `RateLimit`.
    pub const fn draft(mut self, on: bool) -> Self {
        self.draft = on;
        self
    }

    /// Sends `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`.
    pub const fn legacy(mut self, on: bool) -> Self {
        self.legacy = on;
        self
    }

    /// Sends `Retry-After` on denials.
    pub const fn retry_after(mut self, on: bool) -> Self {
        self.retry_after = on;
        self
    }

    /// Sends the draft and `X-` fields on allowed responses too (not only on denials).
    pub const fn on_allowed(mut self, on: bool) -> Self {
        self.on_allowed = on;
        self
    }

    /// Whether the draft fields are sent.
    pub const fn sends_draft(&self) -> bool {
        self.draft
    }

    /// Whether the `X-RateLimit-*` fields are sent.
    pub const fn sends_legacy(&self) -> bool {
        self.legacy
    }

    /// Whether `Retry-After` is sent on denials.
    pub const fn sends_retry_after(&self) -> bool {
        self.retry_after
    }

    /// Whether headers are sent on allowed responses.
    pub const fn sends_on_allowed(&self) -> bool {
        self.on_allowed
    }
}

/// Writes `name` as a Structured Field string (RFC 8941 `sf-string`): in double quotes, with
/// `"` and `\` escaped by a backslash. Characters a `sf-string` cannot hold (controls,
/// non-ASCII) and `%` itself are percent-encoded byte by byte (`%XX`, upper case), so two
/// different names never render alike.
///
/// ```
/// use nanolimit::http::headers::sf_string;
///
/// assert_eq!(sf_string("api"), r#""api""#);
/// assert_eq!(sf_string(r#"a"b\c"#), r#""a\"b\\c""#);
/// assert_eq!(sf_string("é 5%"), r#""%C3%A9 5%25""#);
/// ```
pub fn sf_string(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    push_sf_string(&mut out, name);
    out
}

fn push_sf_string(out: &mut String, name: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('"');
    for &b in name.as_bytes() {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            b'%' => out.push_str("%25"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
    }
    out.push('"');
}

/// The window of a quota in the draft's terms: the time a drained bucket takes to refill, in
/// whole seconds rounded up, at least 1.
pub fn window_secs(quota: &Quota) -> u64 {
    let ns = quota.refill_time().as_nanos();
    u64::try_from(ns.div_ceil(1_000_000_000))
        .unwrap_or(u64::MAX)
        .max(1)
}

/// One `RateLimit-Policy` item: `"name";q=<burst>;w=<window_secs>`.
///
/// ```
/// use nanolimit::http::headers::policy_item;
/// use nanolimit::Quota;
///
/// assert_eq!(policy_item("api", &Quota::per_minute(100)?), r#""api";q=100;w=60"#);
/// // 100 per minute, at most 20 at once: 20 units refill in 12 s.
/// assert_eq!(policy_item("api", &Quota::per_minute(100)?.with_burst(20)?), r#""api";q=20;w=12"#);
/// # Ok::<(), nanolimit::QuotaError>(())
/// ```
pub fn policy_item(name: &str, quota: &Quota) -> String {
    let mut out = String::new();
    push_policy_item(&mut out, name, quota);
    out
}

fn push_policy_item(out: &mut String, name: &str, quota: &Quota) {
    use core::fmt::Write;
    push_sf_string(out, name);
    // Writing to a String cannot fail.
    let _ = write!(out, ";q={};w={}", quota.burst(), window_secs(quota));
}

/// One `RateLimit` item: `"name";r=<remaining>;t=<reset_after_secs>`.
///
/// ```
/// use nanolimit::http::headers::ratelimit_item;
/// use nanolimit::{DirectLimiter, ManualClock, Quota};
///
/// let limiter = DirectLimiter::gcra_with_clock(Quota::per_minute(60)?, ManualClock::new(0));
/// // One unit spent; it comes back in 1 s.
/// assert_eq!(ratelimit_item("api", &limiter.check()), r#""api";r=59;t=1"#);
/// # Ok::<(), nanolimit::QuotaError>(())
/// ```
pub fn ratelimit_item(name: &str, decision: &Decision) -> String {
    let mut out = String::new();
    push_ratelimit_item(&mut out, name, decision);
    out
}

fn push_ratelimit_item(out: &mut String, name: &str, decision: &Decision) {
    use core::fmt::Write;
    push_sf_string(out, name);
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        ";r={};t={}",
        decision.remaining(),
        decision.reset_after_secs()
    );
}

/// The headers for one response, from each policy's spec and result, in order.
///
/// `denied` is whether the response refuses the request. `Retry-After` (denials only) is
/// the longest `retry_after` of the denying decisions, in whole seconds rounded up: at least
/// 1, and a client that waits that long is admitted by every one of them (if nothing else
/// takes their quota meanwhile). A denial that no wait can cure (`NeverFits`) or that is
/// not a decision (`AtCapacity`) gets no `Retry-After`. The `X-` fields describe the policy
/// with the fewest units remaining (on a tie, the longest reset). Pass enforcing policies
/// only: the caller decides what clients may see ([`verdict_headers`] leaves shadow
/// policies out).
///
/// ```
/// use nanolimit::http::headers::rate_limit_headers;
/// use nanolimit::http::HeaderOptions;
/// use nanolimit::policy::{KeySelector, PolicyManager, PolicySpec};
/// use nanolimit::{ManualClock, Quota};
///
/// let spec = PolicySpec::new("api", Quota::per_minute(2)?, KeySelector::global());
/// let manager = PolicyManager::with_clock(vec![spec.clone()], ManualClock::new(0)).unwrap();
/// let api = manager.index_of("api").unwrap();
/// manager.check_policy(api, "", 2);
/// let result = manager.check_policy(api, "", 1).unwrap();
/// let headers = rate_limit_headers([(&spec, &result)], true, &HeaderOptions::new());
/// let text: Vec<String> = headers.iter().map(|(n, v)| format!("{n}: {}", v.to_str().unwrap())).collect();
/// assert_eq!(text, [
///     r#"ratelimit-policy: "api";q=2;w=60"#,
///     r#"ratelimit: "api";r=0;t=60"#,
///     "retry-after: 30",
/// ]);
/// # Ok::<(), nanolimit::QuotaError>(())
/// ```
pub fn rate_limit_headers<'a, I>(
    items: I,
    denied: bool,
    options: &HeaderOptions,
) -> Vec<(HeaderName, HeaderValue)>
where
    I: IntoIterator<Item = (&'a PolicySpec, &'a PolicyResult)>,
{
    let mut out = Vec::new();
    let describe = denied || options.on_allowed;
    let mut policies = String::new();
    let mut states = String::new();
    let mut retry_secs: Option<u64> = None;
    // The most constrained decision: fewest remaining, then longest reset.
    let mut tightest: Option<Decision> = None;
    for (spec, result) in items {
        if options.draft && describe {
            if !policies.is_empty() {
                policies.push_str(", ");
            }
            push_policy_item(&mut policies, spec.name(), spec.quota());
        }
        let PolicyResult::Decided(decision) = result else {
            continue;
        };
        if options.draft && describe {
            if !states.is_empty() {
                states.push_str(", ");
            }
            push_ratelimit_item(&mut states, spec.name(), decision);
        }
        if decision.is_denied() {
            let secs = decision.retry_after_secs();
            retry_secs = Some(retry_secs.map_or(secs, |s| s.max(secs)));
        }
        let tighter = tightest.is_none_or(|t| {
            (
                decision.remaining(),
                core::cmp::Reverse(decision.reset_after()),
            ) < (t.remaining(), core::cmp::Reverse(t.reset_after()))
        });
        if tighter {
            tightest = Some(*decision);
        }
    }
    if !policies.is_empty() {
        out.push((RATELIMIT_POLICY, text_value(policies)));
    }
    if !states.is_empty() {
        out.push((RATELIMIT, text_value(states)));
    }
    if options.legacy && describe {
        if let Some(d) = tightest {
            out.push((X_RATELIMIT_LIMIT, HeaderValue::from(d.limit())));
            out.push((X_RATELIMIT_REMAINING, HeaderValue::from(d.remaining())));
            out.push((X_RATELIMIT_RESET, HeaderValue::from(d.reset_after_secs())));
        }
    }
    if denied && options.retry_after {
        if let Some(secs) = retry_secs {
            out.push((RETRY_AFTER, HeaderValue::from(secs)));
        }
    }
    out
}

/// [`rate_limit_headers`] for a manager's [`Verdict`]: its enforcing policies, in
/// configuration order (shadow policies are left out); denied iff the verdict is.
pub fn verdict_headers<C: Clock>(
    verdict: &Verdict,
    manager: &PolicyManager<C>,
    options: &HeaderOptions,
) -> Vec<(HeaderName, HeaderValue)> {
    let items = verdict
        .outcomes()
        .iter()
        .filter(|o| !o.is_shadow())
        .filter_map(|o| manager.policy(o.index()).map(|spec| (spec, o.result())));
    rate_limit_headers(items, !verdict.is_allowed(), options)
}

/// Appends `headers` to `map` (after any values already there).
pub fn append_headers(
    map: &mut HeaderMap,
    headers: impl IntoIterator<Item = (HeaderName, HeaderValue)>,
) {
    for (name, value) in headers {
        map.append(name, value);
    }
}

/// A header value from text made of visible ASCII and spaces only (the items above).
fn text_value(text: String) -> HeaderValue {
    // The items hold only quoted, escaped sf-strings, digits and separators: always valid.
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::KeySelector;
    use crate::{DirectLimiter, ManualClock};
    use std::time::Duration;

    fn spec(name: &str, quota: Quota) -> PolicySpec {
        PolicySpec::new(name, quota, KeySelector::global())
    }

    fn render(h: &[(HeaderName, HeaderValue)]) -> Vec<String> {
        h.iter()
            .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
            .collect()
    }

    /// Fault pinned: a policy name with a quote or backslash broke the Structured Field (the
    /// header would no longer parse) or two names rendered alike.
    #[test]
    fn names_are_escaped_and_distinct() {
        assert_eq!(sf_string("a\"b"), "\"a\\\"b\"");
        assert_eq!(sf_string("\\"), "\"\\\\\"");
        assert_eq!(sf_string("\n"), "\"%0A\"");
        assert_ne!(sf_string("%0A"), sf_string("\n"));
        assert_eq!(sf_string(""), "\"\"");
        // Every rendering is a valid header value.
        for name in ["a\"b", "\u{7f}", "\r\n", "ünï", "%"] {
            assert!(HeaderValue::try_from(sf_string(name)).is_ok(), "{name:?}");
        }
    }

    /// Fault pinned: a sub-second refill rendered `w=0`, and a refill of 1.5 s `w=1`
    /// (windows are whole seconds, rounded up, at least 1).
    #[test]
    fn windows_round_up() {
        assert_eq!(window_secs(&Quota::per_second(1000).unwrap()), 1);
        let q = Quota::new(2, Duration::from_secs(3))
            .unwrap()
            .with_burst(1)
            .unwrap();
        assert_eq!(window_secs(&q), 2);
        assert_eq!(window_secs(&Quota::per_day(10).unwrap()), 86_400);
    }

    /// Fault pinned: a limited client was told `Retry-After: 0` (the exact wait, 250 ms,
    /// truncated); it must be 1, and after 1 s the request is admitted.
    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        let clock = ManualClock::new(0);
        let q = Quota::per_second(4).unwrap();
        let limiter = DirectLimiter::gcra_with_clock(q, clock.clone());
        for _ in 0..4 {
            assert!(limiter.check().is_allowed());
        }
        let denied = limiter.check();
        let s = spec("s", q);
        let r = PolicyResult::Decided(denied);
        let h = rate_limit_headers([(&s, &r)], true, &HeaderOptions::new());
        assert_eq!(
            render(&h),
            [
                "ratelimit-policy: \"s\";q=4;w=1",
                "ratelimit: \"s\";r=0;t=1",
                "retry-after: 1"
            ]
        );
        clock.advance(Duration::from_secs(1));
        assert!(limiter.check().is_allowed());
    }

    /// Several policies: the draft fields list each; `Retry-After` is the longest wait of the
    /// denying ones; the `X-` fields describe the tightest.
    #[test]
    fn several_policies() {
        let clock = ManualClock::new(0);
        let qa = Quota::per_minute(10).unwrap();
        let qb = Quota::per_hour(2).unwrap();
        let a = DirectLimiter::gcra_with_clock(qa, clock.clone());
        let b = DirectLimiter::gcra_with_clock(qb, clock.clone());
        a.check();
        b.check_n(2).unwrap();
        let (sa, sb) = (spec("a", qa), spec("b", qb));
        let (ra, rb) = (
            PolicyResult::Decided(a.peek()),
            PolicyResult::Decided(b.peek()),
        );
        let opts = HeaderOptions::new().legacy(true);
        let h = rate_limit_headers([(&sa, &ra), (&sb, &rb)], true, &opts);
        assert_eq!(
            render(&h),
            [
                "ratelimit-policy: \"a\";q=10;w=60, \"b\";q=2;w=3600",
                "ratelimit: \"a\";r=9;t=6, \"b\";r=0;t=3600",
                "x-ratelimit-limit: 2",
                "x-ratelimit-remaining: 0",
                "x-ratelimit-reset: 3600",
                "retry-after: 1800",
            ]
        );
        // Allowed, with `on_allowed(false)`: nothing at all.
        let h = rate_limit_headers([(&sa, &ra)], false, &opts.on_allowed(false));
        assert!(h.is_empty());
        // Allowed, by default: the draft fields only (no Retry-After).
        let h = rate_limit_headers([(&sa, &ra)], false, &HeaderOptions::new());
        assert_eq!(
            render(&h),
            [
                "ratelimit-policy: \"a\";q=10;w=60",
                "ratelimit: \"a\";r=9;t=6"
            ]
        );
    }

    /// A request that can never fit gets the policy described but no `Retry-After`: no wait
    /// would help, and a number would be a lie.
    #[test]
    fn never_fits_gets_no_retry_after() {
        let s = spec("s", Quota::per_second(1).unwrap());
        let r = PolicyResult::NeverFits { cost: 5, burst: 1 };
        let h = rate_limit_headers([(&s, &r)], true, &HeaderOptions::new());
        assert_eq!(render(&h), ["ratelimit-policy: \"s\";q=1;w=1"]);
    }
}
