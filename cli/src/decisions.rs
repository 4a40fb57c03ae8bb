//! The `--decisions` output: one JSON object per request, written by hand (no allocation per
//! line once the buffer has grown).
//!
//! `{"line":N,"allowed":B,"policies":[{"name":S,"key":S,"allowed":B,"remaining":N,
//! "retry_after_ns":N|null,"reset_after_ns":N}]}`; a policy that could not decide (the cost
//! exceeds its burst, or it is at its maximum of keys) has `"remaining":0`,
//! `"retry_after_ns":null`, `"reset_after_ns":null` and an `"error"` naming why.

use std::io::Write;

use nanolimit::policy::PolicyResult;

use crate::verdict::{OutcomeView, VerdictView};

/// Appends the decision line for `verdict` to `out`.
pub fn write_decision(out: &mut Vec<u8>, line: u64, verdict: &impl VerdictView, names: &[String]) {
    let _ = write!(
        out,
        "{{\"line\":{line},\"allowed\":{},\"policies\":[",
        verdict.is_allowed()
    );
    for (i, o) in verdict.outcomes().iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        json_string(out, names.get(o.index()).map_or("", String::as_str));
        out.extend_from_slice(b",\"key\":");
        json_string(out, o.key());
        let _ = write!(out, ",\"allowed\":{}", o.is_allowed());
        match o.result() {
            PolicyResult::Decided(d) => {
                let _ = write!(out, ",\"remaining\":{},\"retry_after_ns\":", d.remaining());
                if d.is_allowed() {
                    out.extend_from_slice(b"null");
                } else {
                    let _ = write!(out, "{}", d.retry_after().as_nanos());
                }
                let _ = write!(out, ",\"reset_after_ns\":{}", d.reset_after().as_nanos());
            }
            PolicyResult::NeverFits { .. } => out.extend_from_slice(
                b",\"remaining\":0,\"retry_after_ns\":null,\"reset_after_ns\":null,\"error\":\"cost exceeds burst\"",
            ),
            _ => out.extend_from_slice(
                b",\"remaining\":0,\"retry_after_ns\":null,\"reset_after_ns\":null,\"error\":\"at capacity\"",
            ),
        }
        if o.is_shadow() {
            out.extend_from_slice(b",\"shadow\":true");
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}\n");
}

/// Appends `s` as a JSON string.
fn json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let mut b = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes() {
        let mut out = Vec::new();
        super::json_string(&mut out, "a\"b\\c\n\u{1}é");
        assert_eq!(String::from_utf8(out).unwrap(), r#""a\"b\\c\n\u0001é""#);
    }
}
