//! The normalized request every integration fills in: replay, HTTP middleware, the service.
//!
//! Key selection ([`KeySelector`](super::KeySelector)) and matching
//! ([`Matcher`](super::Matcher)) look at this and nothing else.

/// One request, as the policies see it. Everything is borrowed from the caller, so building
/// one per request allocates nothing.
///
/// ```
/// use nanolimit::policy::Request;
///
/// let headers = [("X-Api-Key", "k1")];
/// let req = Request::new("10.0.0.7", "GET", "/api/users")
///     .with_headers(&headers)
///     .with_cost(2);
/// assert_eq!(req.header("x-api-key"), Some("k1"));
/// assert_eq!(req.cost(), 2);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Request<'a> {
    client: &'a str,
    method: &'a str,
    path: &'a str,
    headers: &'a [(&'a str, &'a str)],
    cost: u64,
}

impl<'a> Request<'a> {
    /// A request of cost 1 from `client` (its address, as text), with no headers.
    pub fn new(client: &'a str, method: &'a str, path: &'a str) -> Self {
        Self {
            client,
            method,
            path,
            headers: &[],
            cost: 1,
        }
    }

    /// The same request with these headers (names compare case-insensitively).
    pub fn with_headers(mut self, headers: &'a [(&'a str, &'a str)]) -> Self {
        self.headers = headers;
        self
    }

    /// The same request with its own cost (a policy multiplies it by the policy's `cost`). A
    /// cost of 0 asks without taking anything: each policy answers as a peek would.
    pub fn with_cost(mut self, cost: u64) -> Self {
        self.cost = cost;
        self
    }

    /// The client's address as text (`""` when unknown).
    pub fn client(&self) -> &'a str {
        self.client
    }

    /// The method, as sent (`GET`, `POST`, ...; `""` when unknown).
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The path (with any query string the integration chose to keep).
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// All headers, in the order given.
    pub fn headers(&self) -> &'a [(&'a str, &'a str)] {
        self.headers
    }

    /// The first header named `name`, compared ASCII case-insensitively.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, v)| v)
    }

    /// The request's own cost (default 1).
    pub fn cost(&self) -> u64 {
        self.cost
    }
}
