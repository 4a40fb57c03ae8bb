//! Replies, written straight into a connection's output buffer in the protocol version the
//! connection chose (RESP2 by default, RESP3 after `HELLO 3`).

/// The protocol version of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Protocol {
    /// RESP2: maps are flat arrays, null is `$-1`.
    #[default]
    Resp2,
    /// RESP3: maps (`%`), null (`_`).
    Resp3,
}

/// A writer of replies into `out`.
pub struct Reply<'o> {
    out: &'o mut Vec<u8>,
    protocol: Protocol,
}

impl<'o> Reply<'o> {
    /// Replies appended to `out` in `protocol`.
    pub fn new(out: &'o mut Vec<u8>, protocol: Protocol) -> Self {
        Self { out, protocol }
    }

    /// `+OK`-style status line (`s` must not hold `\r` or `\n`).
    pub fn simple(&mut self, s: &str) {
        self.line(b'+', s.as_bytes());
    }

    /// An error reply `-<message>`; line ends in the message become spaces.
    pub fn error(&mut self, message: &str) {
        self.out.push(b'-');
        self.out.extend(
            message
                .bytes()
                .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
        self.out.extend_from_slice(b"\r\n");
    }

    /// An integer.
    pub fn int(&mut self, n: i64) {
        self.out.push(b':');
        if n < 0 {
            self.out.push(b'-');
        }
        self.decimal(n.unsigned_abs());
        self.out.extend_from_slice(b"\r\n");
    }

    /// A bulk string.
    pub fn bulk(&mut self, b: &[u8]) {
        self.header(b'$', b.len());
        self.out.extend_from_slice(b);
        self.out.extend_from_slice(b"\r\n");
    }

    /// Null.
    pub fn null(&mut self) {
        match self.protocol {
            Protocol::Resp2 => self.out.extend_from_slice(b"$-1\r\n"),
            Protocol::Resp3 => self.out.extend_from_slice(b"_\r\n"),
        }
    }

    /// The header of an array of `n` elements (the elements follow).
    pub fn array(&mut self, n: usize) {
        self.header(b'*', n);
    }

    /// The header of a map of `n` pairs: RESP3 `%n`, RESP2 an array of `2n` elements.
    pub fn map(&mut self, n: usize) {
        match self.protocol {
            Protocol::Resp2 => self.array(2 * n),
            Protocol::Resp3 => self.header(b'%', n),
        }
    }

    /// `<marker><n>\r\n`.
    fn header(&mut self, marker: u8, n: usize) {
        self.out.push(marker);
        self.decimal(n as u64);
        self.out.extend_from_slice(b"\r\n");
    }

    /// `n` in decimal. By hand rather than through `write!`: a `CL.THROTTLE` reply is six
    /// numbers, and the formatting machinery was a tenth of the server's time per command.
    fn decimal(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.out.extend_from_slice(&digits[at..]);
    }

    fn line(&mut self, marker: u8, s: &[u8]) {
        self.out.push(marker);
        self.out.extend_from_slice(s);
        self.out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_protocol_writes_its_own_shapes() {
        let mut out = Vec::new();
        let mut r = Reply::new(&mut out, Protocol::Resp2);
        r.simple("OK");
        r.error("ERR two\r\nlines");
        r.int(-1);
        r.bulk(b"a\r\n");
        r.null();
        r.map(1);
        r.int(0);
        r.int(i64::MIN);
        r.int(i64::MAX);
        r.array(10);
        assert_eq!(
            out,
            b"+OK\r\n-ERR two  lines\r\n:-1\r\n$3\r\na\r\n\r\n$-1\r\n*2\r\n\
              :0\r\n:-9223372036854775808\r\n:9223372036854775807\r\n*10\r\n"
        );
        let mut out = Vec::new();
        let mut r = Reply::new(&mut out, Protocol::Resp3);
        r.null();
        r.map(2);
        assert_eq!(out, b"_\r\n%2\r\n");
    }
}
