//! Requests: RESP arrays of bulk strings (what client libraries send) and inline commands
//! (what a person types into `telnet`).
//!
//! The parser is incremental and zero-copy: [`parse_request`] looks at the bytes received so
//! far and either finds one whole request (its arguments are ranges into the buffer, copied
//! nowhere) or says that more bytes are needed. It keeps no state between calls, so however
//! the bytes are split across reads, the same requests come out. Every length is checked
//! against [`Limits`] before anything is waited for, so a connection's buffer never holds more
//! than [`Limits::max_request`] bytes of one request.

use core::fmt;
use core::ops::Range;

/// Bounds on what one request may hold; a request over any of them is refused with a
/// [`ParseError`] (and the connection closed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest bulk string (one argument), in bytes.
    pub max_bulk: usize,
    /// The most arguments in one request.
    pub max_args: usize,
    /// The longest inline command line, in bytes (without its line end).
    pub max_inline: usize,
    /// The most bytes one whole request may take on the wire.
    pub max_request: usize,
}

impl Default for Limits {
    /// 512 KiB per argument, 1,024 arguments, 64 KiB per inline line, 1 MiB per request:
    /// far above what a rate-limit command needs, far below what could hurt the server.
    fn default() -> Self {
        Self {
            max_bulk: 512 * 1024,
            max_args: 1024,
            max_inline: 64 * 1024,
            max_request: 1024 * 1024,
        }
    }
}

/// Why the bytes received are not a request. Each is answered with an error reply, after
/// which the connection is closed (its framing can no longer be trusted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// A byte where a RESP type marker was expected inside an array (`$` expected).
    ExpectedBulk(u8),
    /// A length that is not a decimal integer, or is negative where that has no meaning.
    BadLength,
    /// A line that does not end with `\r\n` where RESP requires it.
    MissingCrlf,
    /// More arguments than [`Limits::max_args`].
    TooManyArgs {
        /// The count the client announced.
        count: u64,
        /// The limit.
        max: usize,
    },
    /// A bulk string longer than [`Limits::max_bulk`].
    BulkTooLong {
        /// The length the client announced.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// An inline line longer than [`Limits::max_inline`].
    InlineTooLong {
        /// The limit.
        max: usize,
    },
    /// A request longer on the wire than [`Limits::max_request`].
    RequestTooLong {
        /// The limit.
        max: usize,
    },
    /// An inline command with an unbalanced quote.
    UnbalancedQuotes,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ExpectedBulk(b) => write!(
                f,
                "Protocol error: expected '$', got '{}'",
                char::from(*b).escape_default()
            ),
            Self::BadLength => f.write_str("Protocol error: invalid length"),
            Self::MissingCrlf => f.write_str("Protocol error: expected CRLF"),
            Self::TooManyArgs { count, max } => write!(
                f,
                "Protocol error: {count} arguments is more than the limit of {max}"
            ),
            Self::BulkTooLong { len, max } => write!(
                f,
                "Protocol error: a bulk string of {len} bytes is longer than the limit of {max}"
            ),
            Self::InlineTooLong { max } => write!(
                f,
                "Protocol error: an inline request longer than the limit of {max} bytes"
            ),
            Self::RequestTooLong { max } => write!(
                f,
                "Protocol error: a request longer than the limit of {max} bytes"
            ),
            Self::UnbalancedQuotes => f.write_str("Protocol error: unbalanced quotes in request"),
        }
    }
}

impl std::error::Error for ParseError {}

/// One request's arguments: byte ranges into the buffer it was parsed from. Reuse one across
/// requests so that parsing allocates nothing once it has grown.
#[derive(Clone, Debug, Default)]
pub struct Args {
    ranges: Vec<Range<usize>>,
    /// Inline arguments with quotes or escapes are unescaped into here (ranges then point
    /// into `owned`, flagged by `inline_owned`).
    owned: Vec<u8>,
    inline_owned: bool,
}

impl Args {
    /// Empty arguments.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many arguments (the command name included).
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether there are none (an empty inline line).
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Argument `i` (0 is the command name), read from `buf`, the buffer given to
    /// [`parse_request`].
    pub fn get<'b>(&'b self, buf: &'b [u8], i: usize) -> Option<&'b [u8]> {
        let range = self.ranges.get(i)?.clone();
        if self.inline_owned {
            self.owned.get(range)
        } else {
            buf.get(range)
        }
    }

    fn clear(&mut self) {
        self.ranges.clear();
        self.owned.clear();
        self.inline_owned = false;
    }
}

/// Looks for one whole request at the start of `buf`. `Ok(Some(n))`: the request takes the
/// first `n` bytes and its arguments are in `args`; `Ok(None)`: more bytes are needed (and
/// `buf` is within the limits so far); `Err`: the bytes can never become a valid request.
///
/// ```
/// use nanolimit_cli::serve::resp::{parse_request, Args, Limits};
///
/// let buf = b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\nPING\r\n";
/// let mut args = Args::new();
/// assert_eq!(parse_request(buf, &Limits::default(), &mut args), Ok(Some(22)));
/// assert_eq!(args.get(buf, 1), Some(&b"hi"[..]));
/// assert_eq!(parse_request(&buf[..21], &Limits::default(), &mut args), Ok(None));
/// ```
pub fn parse_request(
    buf: &[u8],
    limits: &Limits,
    args: &mut Args,
) -> Result<Option<usize>, ParseError> {
    args.clear();
    // Only the first `max_request` bytes are looked at: every decision then depends on bytes
    // that every split of the input shows alike, so a request is parsed (or refused) the same
    // way however it arrives.
    let view = &buf[..buf.len().min(limits.max_request)];
    let result = match view.first() {
        None => return Ok(None),
        Some(b'*') => parse_array(view, limits, args),
        Some(_) => parse_inline(view, limits, args),
    };
    match result {
        Ok(None) if buf.len() > limits.max_request => Err(ParseError::RequestTooLong {
            max: limits.max_request,
        }),
        other => other,
    }
}

/// `*<n>\r\n` then `n` times `$<len>\r\n<bytes>\r\n`.
fn parse_array(buf: &[u8], limits: &Limits, args: &mut Args) -> Result<Option<usize>, ParseError> {
    let Some((count, mut pos)) = read_length(buf, 1)? else {
        return Ok(None);
    };
    // `*-1` (a null array) and `*0` are no request: skipped, as Redis does.
    let count = match count {
        Length::Null => 0,
        Length::Value(n) => n,
    };
    if count > limits.max_args as u64 {
        return Err(ParseError::TooManyArgs {
            count,
            max: limits.max_args,
        });
    }
    for _ in 0..count {
        let Some(&marker) = buf.get(pos) else {
            return Ok(None);
        };
        if marker != b'$' {
            return Err(ParseError::ExpectedBulk(marker));
        }
        let Some((len, start)) = read_length(buf, pos + 1)? else {
            return Ok(None);
        };
        let Length::Value(len) = len else {
            return Err(ParseError::BadLength);
        };
        if len > limits.max_bulk as u64 {
            return Err(ParseError::BulkTooLong {
                len,
                max: limits.max_bulk,
            });
        }
        // Fits in usize: at most `max_bulk`.
        let end = start + len as usize;
        if end > limits.max_request {
            return Err(ParseError::RequestTooLong {
                max: limits.max_request,
            });
        }
        // What has arrived of the line end must be a prefix of it.
        let tail = buf
            .get(end.min(buf.len())..(end + 2).min(buf.len()))
            .unwrap_or(&[]);
        if !b"\r\n".starts_with(tail) {
            return Err(ParseError::MissingCrlf);
        }
        if tail.len() < 2 {
            return Ok(None);
        }
        args.ranges.push(start..end);
        pos = end + 2;
    }
    Ok(Some(pos))
}

enum Length {
    Null,
    Value(u64),
}

/// A decimal length from `from` up to `\r\n`: the length and the position after the line
/// end, or `None` if the line is not complete yet. `-1` is [`Length::Null`].
fn read_length(buf: &[u8], from: usize) -> Result<Option<(Length, usize)>, ParseError> {
    // A length line is short: 20 digits at most; anything longer is malformed.
    const MAX_DIGITS: usize = 20;
    let rest = buf.get(from..).unwrap_or(&[]);
    let line_end = rest.iter().position(|&b| b == b'\r');
    // The bytes before the line end are judged first, whether or not it has arrived: a
    // split that ends before it must give the same answer as the whole line.
    let digits = &rest[..line_end.unwrap_or(rest.len())];
    if digits.len() > MAX_DIGITS + 1 || digits.iter().any(|&b| !b.is_ascii_digit() && b != b'-') {
        return Err(ParseError::BadLength);
    }
    let Some(cr) = line_end else {
        return Ok(None);
    };
    match rest.get(cr + 1) {
        None => return Ok(None),
        Some(b'\n') => {}
        Some(_) => return Err(ParseError::MissingCrlf),
    }
    let after = from + cr + 2;
    if digits == b"-1" {
        return Ok(Some((Length::Null, after)));
    }
    if digits.is_empty() || digits.len() > MAX_DIGITS || !digits.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::BadLength);
    }
    let mut n: u64 = 0;
    for &d in digits {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or(ParseError::BadLength)?;
    }
    Ok(Some((Length::Value(n), after)))
}

/// A line of words separated by spaces or tabs, ended by `\n` (or `\r\n`). Words may be
/// quoted with `"..."` (with `\n`, `\r`, `\t`, `\\`, `\"` and `\xHH` escapes) or `'...'`.
fn parse_inline(buf: &[u8], limits: &Limits, args: &mut Args) -> Result<Option<usize>, ParseError> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        // The line may still end with `\r\n`: its `\r` is not part of the line.
        if buf.len() > limits.max_inline.saturating_add(1) {
            return Err(ParseError::InlineTooLong {
                max: limits.max_inline,
            });
        }
        return Ok(None);
    };
    let mut line = &buf[..nl];
    if let Some(stripped) = line.strip_suffix(b"\r") {
        line = stripped;
    }
    if line.len() > limits.max_inline {
        return Err(ParseError::InlineTooLong {
            max: limits.max_inline,
        });
    }
    if line.iter().any(|&b| b == b'"' || b == b'\'') {
        split_quoted(line, limits, args)?;
    } else {
        let mut start = None;
        for (i, &b) in line.iter().enumerate() {
            let blank = b == b' ' || b == b'\t';
            match (start, blank) {
                (None, false) => start = Some(i),
                (Some(s), true) => {
                    args.ranges.push(s..i);
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            args.ranges.push(s..line.len());
        }
    }
    if args.ranges.len() > limits.max_args {
        return Err(ParseError::TooManyArgs {
            count: args.ranges.len() as u64,
            max: limits.max_args,
        });
    }
    Ok(Some(nl + 1))
}

/// Splits a line with quotes, unescaping into `args.owned`.
fn split_quoted(line: &[u8], limits: &Limits, args: &mut Args) -> Result<(), ParseError> {
    args.inline_owned = true;
    let mut i = 0;
    while i < line.len() {
        while i < line.len() && (line[i] == b' ' || line[i] == b'\t') {
            i += 1;
        }
        if i == line.len() {
            break;
        }
        let start = args.owned.len();
        let mut quote: Option<u8> = None;
        loop {
            let Some(&b) = line.get(i) else {
                if quote.is_some() {
                    return Err(ParseError::UnbalancedQuotes);
                }
                break;
            };
            match quote {
                None if b == b' ' || b == b'\t' => break,
                None if b == b'"' || b == b'\'' => {
                    quote = Some(b);
                    i += 1;
                }
                None => {
                    args.owned.push(b);
                    i += 1;
                }
                Some(q) if b == q => {
                    // A closing quote must end the word.
                    i += 1;
                    if line.get(i).is_some_and(|&n| n != b' ' && n != b'\t') {
                        return Err(ParseError::UnbalancedQuotes);
                    }
                    break;
                }
                Some(b'"') if b == b'\\' => {
                    let (byte, used) = unescape(&line[i + 1..]);
                    args.owned.push(byte);
                    i += 1 + used;
                }
                Some(_) => {
                    args.owned.push(b);
                    i += 1;
                }
            }
        }
        args.ranges.push(start..args.owned.len());
        if args.ranges.len() > limits.max_args {
            return Err(ParseError::TooManyArgs {
                count: args.ranges.len() as u64,
                max: limits.max_args,
            });
        }
    }
    Ok(())
}

/// The byte an escape after `\` stands for, and how many bytes after the `\` it used.
fn unescape(rest: &[u8]) -> (u8, usize) {
    let hex = |b: u8| char::from(b).to_digit(16);
    match rest {
        [b'x', h, l, ..] if hex(*h).is_some() && hex(*l).is_some() => {
            let v = hex(*h).unwrap_or(0) * 16 + hex(*l).unwrap_or(0);
            (v as u8, 3)
        }
        [b'n', ..] => (b'\n', 1),
        [b'r', ..] => (b'\r', 1),
        [b't', ..] => (b'\t', 1),
        [b'a', ..] => (7, 1),
        [b'b', ..] => (8, 1),
        [c, ..] => (*c, 1),
        [] => (b'\\', 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes used and the arguments, or `None` for "need more".
    type Parsed = Option<(usize, Vec<Vec<u8>>)>;

    fn parse(buf: &[u8]) -> Result<Parsed, ParseError> {
        let mut args = Args::new();
        let n = parse_request(buf, &Limits::default(), &mut args)?;
        Ok(n.map(|n| {
            let v = (0..args.len())
                .map(|i| args.get(buf, i).unwrap().to_vec())
                .collect();
            (n, v)
        }))
    }

    fn words(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    /// Fault pinned (found by the `resp` fuzz target): a length line with a bad byte and a
    /// `\r` not followed by `\n` was refused as "invalid length" when it arrived cut before
    /// the `\r`, but as "expected CRLF" when it arrived whole: the reply depended on how the
    /// bytes were split. The length's bytes are now judged first in both cases.
    #[test]
    fn a_bad_length_line_is_refused_alike_however_it_is_split() {
        let buf = b"*1\r\n$4x\n\r$";
        for cut in 7..=buf.len() {
            assert_eq!(
                parse(&buf[..cut]),
                Err(ParseError::BadLength),
                "cut at {cut}"
            );
        }
        assert_eq!(parse(b"*1\r\n$4\r$"), Err(ParseError::MissingCrlf));
        assert_eq!(parse(b"*1x\r$"), Err(ParseError::BadLength));
    }

    #[test]
    fn arrays_of_bulk_strings() {
        let buf = b"*3\r\n$3\r\nSET\r\n$0\r\n\r\n$3\r\na\r\n\r\n";
        assert_eq!(
            parse(buf),
            Ok(Some((buf.len(), words(&["SET", "", "a\r\n"]))))
        );
        for cut in 0..buf.len() {
            assert_eq!(parse(&buf[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(parse(b"*0\r\n"), Ok(Some((4, vec![]))));
        assert_eq!(parse(b"*-1\r\n"), Ok(Some((5, vec![]))));
    }

    #[test]
    fn inline_commands() {
        assert_eq!(
            parse(b"PING  hello\tthere\r\nx"),
            Ok(Some((19, words(&["PING", "hello", "there"]))))
        );
        assert_eq!(parse(b"\r\n"), Ok(Some((2, vec![]))));
        assert_eq!(
            parse(b"ECHO \"a b\\x41\\n\" 'c d'\n"),
            Ok(Some((23, words(&["ECHO", "a bA\n", "c d"]))))
        );
        assert_eq!(parse(b"ECHO \"a\n"), Err(ParseError::UnbalancedQuotes));
        assert_eq!(parse(b"ECHO \"a\"b\n"), Err(ParseError::UnbalancedQuotes));
        assert_eq!(parse(b"PING"), Ok(None));
    }

    #[test]
    fn malformed_frames_are_typed_errors() {
        assert_eq!(parse(b"*1\r\n:1\r\n"), Err(ParseError::ExpectedBulk(b':')));
        assert_eq!(parse(b"*x\r\n"), Err(ParseError::BadLength));
        assert_eq!(parse(b"*1\r\n$-1\r\n"), Err(ParseError::BadLength));
        assert_eq!(
            parse(b"*1\r\n$99999999999999999999999\r\n"),
            Err(ParseError::BadLength)
        );
        assert_eq!(parse(b"*1\r\n$1\r\nab\r\n"), Err(ParseError::MissingCrlf));
        assert_eq!(parse(b"*1\rx"), Err(ParseError::MissingCrlf));
    }

    #[test]
    fn limits_are_checked_before_waiting() {
        let limits = Limits {
            max_bulk: 4,
            max_args: 2,
            max_inline: 8,
            max_request: 32,
        };
        let mut args = Args::new();
        let mut p = |b: &[u8]| parse_request(b, &limits, &mut args);
        assert_eq!(
            p(b"*3\r\n"),
            Err(ParseError::TooManyArgs { count: 3, max: 2 })
        );
        assert_eq!(
            p(b"*1\r\n$5\r\n"),
            Err(ParseError::BulkTooLong { len: 5, max: 4 })
        );
        assert_eq!(p(b"12345678\r"), Ok(None));
        assert_eq!(p(b"12345678\r\n"), Ok(Some(10)));
        assert_eq!(p(b"1234567890"), Err(ParseError::InlineTooLong { max: 8 }));
        assert_eq!(
            p(b"a b c\n"),
            Err(ParseError::TooManyArgs { count: 3, max: 2 })
        );
        assert_eq!(p(b"*2\r\n$4\r\nabcd\r\n$4\r\nabcd\r\n"), Ok(Some(24)));
        assert_eq!(p(b"*2\r\n$4\r\nabcd\r\n$4\r\nabcd\r"), Ok(None));
        let long = [
            b'*', b'1', b'\r', b'\n', b'$', b'0', b'\r', b'\n', b'\r', b'\n',
        ];
        assert_eq!(p(&long), Ok(Some(10)));
    }
}
