//! The Redis protocol (RESP2 and RESP3) on the wire: requests in ([`parse`]), replies out
//! ([`reply`]).

pub mod parse;
pub mod reply;

pub use parse::{parse_request, Args, Limits, ParseError};
pub use reply::{Protocol, Reply};
