//! One connection's protocol state without the socket: bytes in, replies out. The server
//! feeds it what it reads; the fuzz target feeds it arbitrary splits of arbitrary bytes.

use super::commands::{execute, Deferred, Session, State};
use super::resp::{parse_request, Args, Reply};
use super::stats::Stats;

/// What [`Connection::step`] did.
#[derive(Debug)]
pub enum Step {
    /// One request was answered (its reply appended to the output).
    Answered,
    /// One request is for the store (`--store`): answer it with
    /// [`answer`](super::commands::answer) before the next step.
    Deferred(Deferred),
    /// No whole request is buffered: read more.
    NeedMore,
    /// Write the output, then close: the client sent `QUIT`, or bytes that are not a
    /// request (the output ends with the error reply).
    Close,
}

/// A connection's buffered input and session.
pub struct Connection {
    session: Session,
    input: Vec<u8>,
    /// Bytes of `input` already answered.
    start: usize,
    args: Args,
}

impl Connection {
    /// A new connection's state.
    pub fn new(state: &State) -> Self {
        Self {
            session: state.session(),
            input: Vec::new(),
            start: 0,
            args: Args::new(),
        }
    }

    /// Drops the answered bytes, then gives the buffer to append what was read to.
    pub fn input(&mut self) -> &mut Vec<u8> {
        self.input.drain(..self.start);
        self.start = 0;
        &mut self.input
    }

    /// Bytes buffered and not yet answered (at most `max_request` of one partial request, plus
    /// what the last read brought).
    pub fn buffered(&self) -> usize {
        self.input.len() - self.start
    }

    /// The protocol the connection speaks.
    pub fn protocol(&self) -> super::resp::Protocol {
        self.session.protocol()
    }

    /// Answers the next whole request buffered, if any, appending to `out`.
    pub fn step(&mut self, state: &State, out: &mut Vec<u8>) -> Step {
        let pending = &self.input[self.start..];
        match parse_request(pending, &state.limits, &mut self.args) {
            Ok(Some(n)) => {
                let deferred = execute(state, &mut self.session, pending, &self.args, out);
                self.start += n;
                if let Some(d) = deferred {
                    Step::Deferred(d)
                } else if self.session.is_closing() {
                    Step::Close
                } else {
                    Step::Answered
                }
            }
            Ok(None) => Step::NeedMore,
            Err(e) => {
                Stats::bump(&state.stats.errors);
                tracing::debug!(error = %e, "protocol error; closing");
                Reply::new(out, self.session.protocol()).error(&format!("ERR {e}"));
                Step::Close
            }
        }
    }
}
