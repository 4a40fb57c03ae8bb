//! Which requests a policy applies to.

use super::request::Request;

/// A policy's `[policy.match]`: a path prefix and a set of methods, both optional. The
/// default matches every request.
///
/// ```
/// use nanolimit::policy::{Matcher, Request};
///
/// let m = Matcher::new().path_prefix("/api/").methods(["get", "POST"]);
/// assert!(m.matches(&Request::new("", "GET", "/api/x")));
/// assert!(!m.matches(&Request::new("", "DELETE", "/api/x")));
/// assert!(!m.matches(&Request::new("", "GET", "/static/x")));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Matcher {
    path_prefix: Option<String>,
    /// Upper case; empty means any method.
    methods: Vec<String>,
}

impl Matcher {
    /// Matches every request.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only paths starting with `prefix` (byte-wise, case-sensitive).
    pub fn path_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.path_prefix = Some(prefix.into());
        self
    }

    /// Only these methods (compared case-insensitively).
    pub fn methods<I, S>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.methods = methods
            .into_iter()
            .map(|m| m.as_ref().to_ascii_uppercase())
            .collect();
        self
    }

    /// The path prefix, if any.
    pub fn prefix(&self) -> Option<&str> {
        self.path_prefix.as_deref()
    }

    /// The methods (upper case); empty means any.
    pub fn method_list(&self) -> &[String] {
        &self.methods
    }

    /// Whether the policy applies to `req`.
    #[inline]
    pub fn matches(&self, req: &Request<'_>) -> bool {
        if let Some(prefix) = &self.path_prefix {
            if !req.path().starts_with(prefix.as_str()) {
                return false;
            }
        }
        self.methods.is_empty()
            || self
                .methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(req.method()))
    }
}
