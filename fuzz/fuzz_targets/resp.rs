//! Arbitrary bytes, split at arbitrary read boundaries, into the service's RESP parser and
//! command dispatch (`nanolimit-cli`'s `serve::conn`). Never a panic; the bytes buffered for
//! a connection never exceed the request limit plus one read; and the replies (and whether
//! the connection closes) are the same however the bytes were split.

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use nanolimit::ManualClock;
use nanolimit_cli::serve::commands::State;
use nanolimit_cli::serve::conn::{Connection, Step};
use nanolimit_cli::serve::policies::Policies;
use nanolimit_cli::serve::resp::Limits;
use nanolimit_cli::serve::server::default_policies;
use nanolimit_cli::serve::throttle::{SharedClock, Throttle};

/// Small limits, so that inputs reach them.
const LIMITS: Limits = Limits {
    max_bulk: 64,
    max_args: 8,
    max_inline: 128,
    max_request: 256,
};

fn state() -> State {
    let clock: SharedClock = Arc::new(ManualClock::new(0));
    let throttle = Throttle::new(Arc::clone(&clock), 16, 4);
    let policies = Policies::new(default_policies(), clock, 16).expect("one policy");
    State::new(throttle, policies, LIMITS, 1)
}

/// Feeds `chunks` in order; the replies, and whether the connection was closed.
fn run(chunks: &[&[u8]]) -> (Vec<u8>, bool) {
    let state = state();
    let mut conn = Connection::new(&state);
    let mut out = Vec::new();
    for chunk in chunks {
        conn.input().extend_from_slice(chunk);
        assert!(conn.buffered() <= LIMITS.max_request + chunk.len());
        loop {
            match conn.step(&state, &mut out) {
                Step::Answered => {}
                Step::Deferred(d) => panic!("no store, yet {d:?} was deferred"),
                Step::NeedMore => break,
                Step::Close => return (normalize(out), true),
            }
            assert!(conn.buffered() <= LIMITS.max_request + chunk.len());
        }
        assert!(
            conn.buffered() <= LIMITS.max_request,
            "a partial request within the limit"
        );
    }
    (normalize(out), false)
}

/// INFO reports the uptime and process id, which differ between runs: blank them.
fn normalize(out: Vec<u8>) -> Vec<u8> {
    let mut text = out;
    for field in [&b"uptime_in_seconds:"[..], b"process_id:"] {
        let mut i = 0;
        while let Some(at) = text[i..].windows(field.len()).position(|w| w == field) {
            let from = i + at + field.len();
            let to = from
                + text[from..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
            text.drain(from..to);
            i = from;
        }
    }
    text
}

fuzz_target!(|data: &[u8]| {
    // The first byte: how many cut points (0-7) follow as one byte each.
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let cuts = usize::from(head % 8).min(rest.len());
    let (cut_bytes, input) = rest.split_at(cuts);
    let mut points: Vec<usize> = cut_bytes
        .iter()
        .map(|&c| usize::from(c) * input.len() / 256)
        .collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut from = 0;
    for p in points {
        chunks.push(&input[from..p]);
        from = p;
    }
    chunks.push(&input[from..]);
    let whole = run(&[input]);
    let split = run(&chunks);
    assert_eq!(whole, split, "the same replies whatever the split");
});
