//! `nanolimit serve` in-process on a manual clock: every command with exact replies,
//! pipelining, errors, malformed and oversized input, limits, HTTP, reload and shutdown.

mod serve_support;

use std::io::{Read, Write};
use std::time::Duration;

use redis::Value;
use serve_support::{exchange, exchange_until_close, throttle, TestServer};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The redis-cell contract: limited, limit (max_burst + 1), remaining, retry-after (-1 when
/// allowed), reset-after; seconds rounded up.
#[test]
fn cl_throttle_replies_exactly() {
    let server = TestServer::start(|_| {});
    let mut con = server.redis();
    // max_burst 2 (limit 3), 1 per 10 s.
    let q = ["2", "1", "10"];
    let call = |con: &mut redis::Connection, extra: &[&str]| {
        let mut args = vec!["user"];
        args.extend(q);
        args.extend(extra);
        throttle(con, &args).unwrap()
    };
    assert_eq!(call(&mut con, &[]), [0, 3, 2, -1, 10]);
    assert_eq!(call(&mut con, &[]), [0, 3, 1, -1, 20]);
    assert_eq!(call(&mut con, &[]), [0, 3, 0, -1, 30]);
    assert_eq!(call(&mut con, &[]), [1, 3, 0, 10, 30]);
    server.clock.advance(secs(5));
    assert_eq!(call(&mut con, &[]), [1, 3, 0, 5, 25]);
    server.clock.advance(secs(5));
    assert_eq!(call(&mut con, &[]), [0, 3, 0, -1, 30]);
    server.clock.advance(secs(30));
    assert_eq!(call(&mut con, &["3"]), [0, 3, 0, -1, 30]);
    assert_eq!(
        call(&mut con, &["0"]),
        [0, 3, 0, -1, 30],
        "quantity 0 only looks"
    );
    assert_eq!(call(&mut con, &["2"]), [1, 3, 0, 20, 30]);
    // Rounding up: 3 per second is one per 333.3 ms; a client told 1 s is admitted then.
    assert_eq!(
        throttle(&mut con, &["r", "0", "3", "1"]).unwrap(),
        [0, 1, 0, -1, 1]
    );
    assert_eq!(
        throttle(&mut con, &["r", "0", "3", "1"]).unwrap(),
        [1, 1, 0, 1, 1]
    );
    server.clock.advance(Duration::from_nanos(333_333_333));
    assert_eq!(
        throttle(&mut con, &["r", "0", "3", "1"]).unwrap(),
        [1, 1, 0, 1, 1]
    );
    server.clock.advance(Duration::from_nanos(1));
    assert_eq!(
        throttle(&mut con, &["r", "0", "3", "1"]).unwrap(),
        [0, 1, 0, -1, 1]
    );
}

#[test]
fn cl_throttle_errors_name_the_argument_and_change_nothing() {
    let server = TestServer::start(|_| {});
    let mut con = server.redis();
    let err = |con: &mut redis::Connection, args: &[&str]| {
        let e = throttle(con, args).unwrap_err();
        format!("{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or(""))
    };
    assert_eq!(
        err(&mut con, &["k", "x", "1", "1"]),
        "ERR invalid max_burst: 'x' is not an integer"
    );
    assert_eq!(
        err(&mut con, &["k", "-1", "1", "1"]),
        "ERR invalid max_burst: must be at least 0, not -1"
    );
    assert_eq!(
        err(&mut con, &["k", "1", "0", "1"]),
        "ERR invalid count: must be at least 1, not 0"
    );
    assert_eq!(
        err(&mut con, &["k", "1", "1", "0"]),
        "ERR invalid period: must be at least 1, not 0"
    );
    assert_eq!(
        err(&mut con, &["k", "1", "1", "1.5"]),
        "ERR invalid period: '1.5' is not an integer"
    );
    assert_eq!(
        err(&mut con, &["k", "1", "1", "31536001"]),
        "ERR invalid period: period must be at most 365 days"
    );
    assert_eq!(
        err(&mut con, &["k", "1", "1", "1", "-2"]),
        "ERR invalid quantity: must be at least 0, not -2"
    );
    assert_eq!(
        err(&mut con, &["k", "1", "1", "1", "3"]),
        "ERR invalid quantity: 3 is more than the limit 2 (max_burst + 1) and can never be admitted"
    );
    assert_eq!(
        err(&mut con, &["k", "1", "1"]),
        "ERR wrong number of arguments for 'cl.throttle' command"
    );
    assert_eq!(
        err(&mut con, &["k", "1", "1", "1", "1", "1"]),
        "ERR wrong number of arguments for 'cl.throttle' command"
    );
    // None of those touched "k": its bucket is full.
    assert_eq!(
        throttle(&mut con, &["k", "1", "1", "1"]).unwrap(),
        [0, 2, 1, -1, 1]
    );
    let info: String = redis::cmd("INFO").arg("limiter").query(&mut con).unwrap();
    assert!(info.contains("throttle_quotas:1\r\n"), "{info}");
    assert!(info.contains("throttle_keys:1\r\n"), "{info}");
}

/// The same key under different parameters: each quota has its own bucket.
#[test]
fn a_key_is_namespaced_by_its_quota() {
    let server = TestServer::start(|_| {});
    let mut con = server.redis();
    assert_eq!(
        throttle(&mut con, &["k", "0", "1", "60"]).unwrap(),
        [0, 1, 0, -1, 60]
    );
    assert_eq!(
        throttle(&mut con, &["k", "0", "1", "60"]).unwrap(),
        [1, 1, 0, 60, 60]
    );
    assert_eq!(
        throttle(&mut con, &["k", "1", "1", "60"]).unwrap(),
        [0, 2, 1, -1, 60]
    );
    assert_eq!(
        throttle(&mut con, &["k", "0", "1", "60"]).unwrap(),
        [1, 1, 0, 60, 60]
    );
}

#[test]
fn keys_and_quotas_are_bounded() {
    let server = TestServer::start(|c| {
        c.max_keys = 2;
        c.max_quotas = 1;
    });
    let mut con = server.redis();
    assert_eq!(throttle(&mut con, &["a", "0", "1", "60"]).unwrap()[0], 0);
    assert_eq!(throttle(&mut con, &["b", "0", "1", "60"]).unwrap()[0], 0);
    let e = throttle(&mut con, &["c", "0", "1", "60"]).unwrap_err();
    assert_eq!(
        e.detail(),
        Some("at capacity: 2 keys are tracked for this quota and none is idle")
    );
    let e = throttle(&mut con, &["a", "0", "2", "60"]).unwrap_err();
    assert_eq!(
        e.detail(),
        Some("too many distinct quotas: at most 1 (max_burst, count, period) combinations are tracked")
    );
    // Once "a" has refilled it is idle and makes room.
    server.clock.advance(secs(60));
    assert_eq!(
        throttle(&mut con, &["c", "0", "1", "60"]).unwrap(),
        [0, 1, 0, -1, 60]
    );
}

fn policy_cmd(con: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<Vec<i64>> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(con)
}

/// NL.CHECK and NL.PEEK against the built-in `default` policy (10 per second): allowed,
/// limit, remaining, retry-after ms (-1 when allowed), reset-after ms.
#[test]
fn nl_check_and_peek() {
    let server = TestServer::start(|_| {});
    let mut con = server.redis();
    assert_eq!(
        policy_cmd(&mut con, &["NL.PEEK", "default", "k"]).unwrap(),
        [1, 10, 10, -1, 0]
    );
    assert_eq!(
        policy_cmd(&mut con, &["NL.CHECK", "default", "k"]).unwrap(),
        [1, 10, 9, -1, 100]
    );
    assert_eq!(
        policy_cmd(&mut con, &["NL.CHECK", "default", "k", "9"]).unwrap(),
        [1, 10, 0, -1, 1000]
    );
    assert_eq!(
        policy_cmd(&mut con, &["NL.CHECK", "default", "k"]).unwrap(),
        [0, 10, 0, 100, 1000]
    );
    server.clock.advance(Duration::from_millis(150));
    assert_eq!(
        policy_cmd(&mut con, &["NL.PEEK", "default", "k"]).unwrap(),
        [1, 10, 1, -1, 850]
    );
    let err = |con: &mut redis::Connection, args: &[&str]| {
        policy_cmd(con, args)
            .unwrap_err()
            .detail()
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(
        err(&mut con, &["NL.CHECK", "nope", "k"]),
        "unknown policy 'nope'"
    );
    assert_eq!(
        err(&mut con, &["NL.CHECK", "default", "k", "11"]),
        "a cost of 11 is more than the policy's burst of 10 and can never be admitted"
    );
    assert_eq!(
        err(&mut con, &["NL.CHECK", "default", "k", "0"]),
        "invalid cost: must be at least 1, not 0"
    );
    assert_eq!(
        err(&mut con, &["NL.PEEK", "default"]),
        "wrong number of arguments for 'nl.peek' command"
    );
    assert_eq!(
        policy_cmd(&mut con, &["NL.PEEK", "default", "k"]).unwrap(),
        [1, 10, 1, -1, 850]
    );
}

#[test]
fn connection_commands() {
    let server = TestServer::start(|_| {});
    let mut con = server.redis();
    let q = |con: &mut redis::Connection, args: &[&str]| -> Value {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(con).unwrap_or_else(|e| {
            let (code, detail) = (e.code().unwrap_or("?"), e.detail().unwrap_or(""));
            Value::SimpleString(format!("error: {code} {detail}"))
        })
    };
    assert_eq!(q(&mut con, &["PING"]), Value::SimpleString("PONG".into()));
    assert_eq!(
        q(&mut con, &["PING", "hi"]),
        Value::BulkString(b"hi".to_vec())
    );
    assert_eq!(
        q(&mut con, &["ECHO", "a b"]),
        Value::BulkString(b"a b".to_vec())
    );
    assert_eq!(q(&mut con, &["SELECT", "0"]), Value::Okay);
    assert_eq!(
        q(&mut con, &["SELECT", "1"]),
        Value::SimpleString(
            "error: ERR DB index is out of range (nanolimit has only database 0)".into()
        )
    );
    assert_eq!(q(&mut con, &["CLIENT", "SETNAME", "me"]), Value::Okay);
    assert_eq!(
        q(&mut con, &["CLIENT", "GETNAME"]),
        Value::BulkString(b"me".to_vec())
    );
    assert_eq!(
        q(&mut con, &["CLIENT", "SETINFO", "LIB-NAME", "x"]),
        Value::Okay
    );
    assert!(matches!(q(&mut con, &["CLIENT", "ID"]), Value::Int(id) if id >= 1));
    assert_eq!(q(&mut con, &["COMMAND", "COUNT"]), Value::Int(12));
    assert_eq!(q(&mut con, &["COMMAND", "DOCS"]), Value::Array(vec![]));
    let Value::Array(info) = q(&mut con, &["COMMAND", "INFO", "cl.throttle", "nope"]) else {
        panic!()
    };
    assert_eq!(info[1], Value::Nil);
    let Value::Array(entry) = &info[0] else {
        panic!()
    };
    assert_eq!(entry[0], Value::BulkString(b"cl.throttle".to_vec()));
    assert_eq!(entry[1], Value::Int(-5));
    let Value::Array(all) = q(&mut con, &["COMMAND"]) else {
        panic!()
    };
    assert_eq!(all.len(), 12);
    assert_eq!(
        q(&mut con, &["CONFIG", "GET", "appendonly"]),
        Value::Array(vec![
            Value::BulkString(b"appendonly".to_vec()),
            Value::BulkString(b"no".to_vec())
        ])
    );
    let Value::BulkString(info) = q(&mut con, &["INFO"]) else {
        panic!()
    };
    let info = String::from_utf8(info).unwrap();
    for field in [
        "# Server",
        "redis_version:",
        "connected_clients:1",
        "# Limiter",
        "policies:default",
    ] {
        assert!(info.contains(field), "{field} in {info}");
    }
    let Value::BulkString(server_only) = q(&mut con, &["INFO", "server"]) else {
        panic!()
    };
    assert!(!String::from_utf8(server_only)
        .unwrap()
        .contains("# Limiter"));
    assert_eq!(
        q(&mut con, &["FLUSHALL", "now"]),
        Value::SimpleString(
            "error: ERR unknown command 'FLUSHALL', with args beginning with: 'now'".into()
        )
    );

    // RESP3 after HELLO 3: a map reply, null as `_`.
    let mut raw = server.tcp();
    let hello = exchange(&mut raw, b"HELLO 3 SETNAME x\r\n", 3);
    assert_eq!(hello, "%7\r");
    let mut rest = vec![0; 4096];
    let n = raw.read(&mut rest).unwrap();
    let rest = String::from_utf8_lossy(&rest[..n]);
    assert!(rest.contains("$5\r\nproto\r\n:3\r\n"), "{rest}");
    assert_eq!(
        exchange(&mut raw, b"CLIENT SETNAME \"\"\r\nCLIENT GETNAME\r\n", 8),
        "+OK\r\n_\r\n"
    );
    assert_eq!(
        exchange(&mut raw, b"HELLO 4\r\n", 51),
        "-NOPROTO unsupported protocol version (2 and 3 are)"
    );
    let quit = exchange_until_close(raw, b"\r\nQUIT\r\nPING\r\n");
    assert_eq!(
        quit, "\r\n+OK\r\n",
        "QUIT answers, then closes without reading on"
    );
}

/// Many requests in one write: replies in order, in one batch.
#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = TestServer::start(|_| {});
    let mut con = server.redis();
    let mut pipe = redis::pipe();
    for _ in 0..4 {
        pipe.cmd("CL.THROTTLE").arg("p").arg(2).arg(1).arg(60);
    }
    pipe.cmd("PING");
    let (a, b, c, d, pong): (Vec<i64>, Vec<i64>, Vec<i64>, Vec<i64>, String) =
        pipe.query(&mut con).unwrap();
    assert_eq!(
        (a, b, c, d),
        (
            vec![0, 3, 2, -1, 60],
            vec![0, 3, 1, -1, 120],
            vec![0, 3, 0, -1, 180],
            vec![1, 3, 0, 60, 180]
        )
    );
    assert_eq!(pong, "PONG");

    // 1,000 requests in one write, some split across the write boundary.
    let mut raw = server.tcp();
    let mut bytes = Vec::new();
    for i in 0..1000 {
        bytes.extend_from_slice(
            format!("*2\r\n$4\r\nECHO\r\n${}\r\n{i}\r\n", i.to_string().len()).as_bytes(),
        );
    }
    let expected: String = (0..1000)
        .map(|i| format!("${}\r\n{i}\r\n", i.to_string().len()))
        .collect();
    let (first, second) = bytes.split_at(bytes.len() / 2 + 3);
    raw.write_all(first).unwrap();
    raw.flush().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let got = exchange(&mut raw, second, expected.len());
    assert_eq!(got, expected);
}

#[test]
fn malformed_and_oversized_input_gets_an_error_then_close() {
    let server = TestServer::start(|c| {
        c.limits.max_bulk = 16;
        c.limits.max_args = 8;
        c.limits.max_inline = 32;
        c.limits.max_request = 128;
    });
    let cases: [(&[u8], &str); 6] = [
        (
            b"PING\r\n*1\r\n:1\r\n",
            "+PONG\r\n-ERR Protocol error: expected '$', got ':'\r\n",
        ),
        (
            b"*1\r\n$17\r\n",
            "-ERR Protocol error: a bulk string of 17 bytes is longer than the limit of 16\r\n",
        ),
        (
            b"*9\r\n",
            "-ERR Protocol error: 9 arguments is more than the limit of 8\r\n",
        ),
        (b"*1\r\n$x\r\n", "-ERR Protocol error: invalid length\r\n"),
        (b"*1\r\n$1\r\nab", "-ERR Protocol error: expected CRLF\r\n"),
        (
            &[b'a'; 40],
            "-ERR Protocol error: an inline request longer than the limit of 32 bytes\r\n",
        ),
    ];
    for (input, reply) in cases {
        assert_eq!(
            exchange_until_close(server.tcp(), input),
            reply,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    // Eight bulk strings of 16 bytes are each within limits, but not together.
    let mut big = b"*8\r\n".to_vec();
    for _ in 0..8 {
        big.extend_from_slice(b"$16\r\n0123456789abcdef\r\n");
    }
    assert_eq!(
        exchange_until_close(server.tcp(), &big),
        "-ERR Protocol error: a request longer than the limit of 128 bytes\r\n"
    );
    // The server is still fine.
    assert_eq!(exchange(&mut server.tcp(), b"PING\r\n", 7), "+PONG\r\n");
}

#[test]
fn connection_limit_and_idle_timeout() {
    let server = TestServer::start(|c| {
        c.max_connections = 1;
        c.idle_timeout = Some(Duration::from_millis(300));
    });
    let mut first = server.tcp();
    assert_eq!(exchange(&mut first, b"PING\r\n", 7), "+PONG\r\n");
    assert_eq!(
        exchange_until_close(server.tcp(), b""),
        "-ERR max number of clients reached\r\n"
    );
    // The first connection says nothing: the server closes it.
    let mut rest = Vec::new();
    assert_eq!(first.read_to_end(&mut rest).unwrap(), 0);
    // Its slot is free again (the slot is released as its task ends: retry briefly).
    let mut ok = false;
    for _ in 0..100 {
        let mut s = server.tcp();
        let _ = s.write_all(b"PING\r\n");
        let mut buf = [0u8; 7];
        if s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n" {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(ok);
}

/// The same limits on the HTTP side: past `max_connections` a connection is closed at once,
/// and a keep-alive connection that sends no request within the idle timeout is closed.
#[test]
fn http_connection_limit_and_idle_timeout() {
    let server = TestServer::start(|c| {
        c.max_connections = 1;
        c.idle_timeout = Some(Duration::from_millis(300));
    });
    let addr = server.running().http.unwrap();
    let connect = || {
        let s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    };
    let mut first = connect();
    first
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut reply = [0u8; 1024];
    let n = first.read(&mut reply).unwrap();
    assert!(reply[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
    // The only slot is taken: a second connection is closed without a reply.
    let mut second = connect();
    let _ = second.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut rest = Vec::new();
    assert_eq!(second.read_to_end(&mut rest).unwrap_or(0), 0);
    // The first connection, kept alive, sends nothing more: the server closes it (well
    // before the 10 s read timeout, which would fail the read).
    assert_eq!(first.read_to_end(&mut rest).unwrap(), 0);
}

/// A client that sends without reading: replies pile up to the output limit, then the server
/// waits at most the idle timeout for the client to read and closes the connection.
#[test]
fn a_client_that_stops_reading_is_disconnected() {
    let server = TestServer::start(|c| {
        c.output_limit = 4096;
        c.idle_timeout = Some(Duration::from_millis(300));
    });
    let mut s = server.tcp();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let chunk = b"INFO\r\n".repeat(1000);
    let mut failed = false;
    for _ in 0..10_000 {
        if s.write_all(&chunk).is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed, "the server closed the connection");
    assert_eq!(exchange(&mut server.tcp(), b"PING\r\n", 7), "+PONG\r\n");
}

fn post(server: &TestServer, body: &str) -> (u16, String, Vec<(String, String)>) {
    let r = match ureq::post(&server.http_url("/v1/check"))
        .set("content-type", "application/json")
        .send_string(body)
    {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    let headers = ["ratelimit-policy", "ratelimit", "retry-after", "allow"]
        .iter()
        .filter_map(|h| r.header(h).map(|v| (h.to_string(), v.to_owned())))
        .collect();
    (r.status(), headers_then_body(r), headers)
}

fn headers_then_body(r: ureq::Response) -> String {
    r.into_string().unwrap()
}

#[test]
fn http_check_and_errors() {
    let server = TestServer::start(|_| {});
    let (status, body, headers) = post(&server, r#"{"policy":"default","key":"a","cost":9}"#);
    assert_eq!(status, 200);
    assert_eq!(
        body,
        r#"{"allowed":true,"key":"a","limit":10,"policy":"default","remaining":1,"reset_after_ms":900,"retry_after_ms":0}"#
    );
    assert_eq!(
        headers,
        [
            (
                "ratelimit-policy".to_owned(),
                r#""default";q=10;w=1"#.to_owned()
            ),
            ("ratelimit".to_owned(), r#""default";r=1;t=1"#.to_owned()),
        ]
    );
    let (status, body, headers) = post(&server, r#"{"policy":"default","key":"a","cost":2}"#);
    assert_eq!(status, 200);
    assert_eq!(
        body,
        r#"{"allowed":false,"key":"a","limit":10,"policy":"default","remaining":1,"reset_after_ms":900,"retry_after_ms":100}"#
    );
    assert_eq!(headers[2], ("retry-after".to_owned(), "1".to_owned()));

    let err = |body: &str| {
        let (status, text, _) = post(&server, body);
        (status, text)
    };
    assert_eq!(
        err(r#"{"policy":"nope","key":"a"}"#),
        (404, r#"{"error":"unknown policy 'nope'"}"#.into())
    );
    assert_eq!(
        err(r#"{"policy":"default","key":"a","cost":0}"#),
        (422, r#"{"error":"cost must be at least 1"}"#.into())
    );
    assert_eq!(
        err(r#"{"policy":"default","key":"a","cost":11}"#),
        (422, r#"{"error":"a cost of 11 is more than the policy's burst of 10 and can never be admitted"}"#.into())
    );
    let (status, text) = err("{not json");
    assert_eq!(status, 400);
    assert!(text.starts_with(r#"{"error":"invalid JSON: "#), "{text}");
    let (status, text) = err(r#"{"policy":"default"}"#);
    assert_eq!(
        (status, text.contains("missing field `key`")),
        (400, true),
        "{text}"
    );
    let (status, _) = err(&format!(
        r#"{{"policy":"default","key":"{}"}}"#,
        "k".repeat(70_000)
    ));
    assert_eq!(status, 413);

    let get = |path: &str| match ureq::get(&server.http_url(path)).call() {
        Ok(r) | Err(ureq::Error::Status(_, r)) => (
            r.status(),
            r.header("allow").map(str::to_owned),
            r.into_string().unwrap(),
        ),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(get("/healthz"), (200, None, r#"{"status":"ok"}"#.into()));
    assert_eq!(
        get("/v1/check"),
        (
            405,
            Some("POST".into()),
            r#"{"error":"method not allowed"}"#.into()
        )
    );
    assert_eq!(get("/nope").0, 404);
    let (status, _, metrics) = get("/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("nanolimit_policy_allowed_total{policy=\"default\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("nanolimit_policy_keys{policy=\"default\"} 1"),
        "{metrics}"
    );
}

fn write_policies(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("nanolimit-serve-{tag}-{}", std::process::id()))
}

/// The reload rule: each key keeps the fraction of the burst it had used (rounded up); a bad
/// file changes nothing.
#[test]
fn reload_carries_the_used_fraction_over() {
    let dir = temp_dir("reload");
    let path = write_policies(
        &dir,
        "p.toml",
        "[[policy]]\nname = \"api\"\nrate = 10\nperiod = \"1h\"\nkey = \"ip\"\n\n[[policy]]\nname = \"same\"\nrate = 5\nperiod = \"1h\"\nkey = \"ip\"\n\n[[policy]]\nname = \"all\"\nrate = 4\nperiod = \"1h\"\nkey = \"global\"\n",
    );
    let server = TestServer::start(|c| c.policies = Some(path.clone()));
    let mut con = server.redis();
    let check = |con: &mut redis::Connection, p: &str, k: &str, cost: &str| {
        policy_cmd(con, &["NL.CHECK", p, k, cost]).unwrap()
    };
    let peek = |con: &mut redis::Connection, p: &str, k: &str| {
        policy_cmd(con, &["NL.PEEK", p, k]).unwrap()
    };
    assert_eq!(check(&mut con, "api", "k", "4")[2], 6);
    assert_eq!(check(&mut con, "api", "j", "1")[2], 9);
    assert_eq!(check(&mut con, "same", "k", "2")[2], 3);
    assert_eq!(check(&mut con, "all", "x", "1")[2], 3);

    // A file with an error: refused, old policies kept.
    write_policies(
        &dir,
        "p.toml",
        "[[policy]]\nname = \"api\"\nrate = 0\nperiod = \"1h\"\nkey = \"ip\"\n",
    );
    let state = server.running().state();
    let e = nanolimit_cli::serve::reload::reload(state, &path).unwrap_err();
    assert!(e.contains("rate must be an integer >= 1, not 0"), "{e}");
    assert_eq!(peek(&mut con, "api", "k")[2], 6);

    // api doubles its burst: 4 of 10 used becomes 8 of 20; 1 of 10 becomes 2 of 20.
    write_policies(
        &dir,
        "p.toml",
        "[[policy]]\nname = \"api\"\nrate = 20\nperiod = \"1h\"\nkey = \"ip\"\n\n[[policy]]\nname = \"same\"\nrate = 5\nperiod = \"1h\"\nkey = \"ip\"\n\n[[policy]]\nname = \"all\"\nrate = 3\nperiod = \"1h\"\nkey = \"global\"\n\n[[policy]]\nname = \"new\"\nrate = 1\nperiod = \"1h\"\nkey = \"ip\"\n",
    );
    assert_eq!(nanolimit_cli::serve::reload::reload(state, &path), Ok(4));
    assert_eq!(peek(&mut con, "api", "k"), [1, 20, 12, -1, 1_440_000]);
    assert_eq!(peek(&mut con, "api", "k")[2], 12, "carried once");
    assert_eq!(check(&mut con, "api", "j", "1")[2], 17);
    assert_eq!(
        peek(&mut con, "same", "k")[2],
        3,
        "an unchanged quota keeps its tokens"
    );
    // 1 of 4 used becomes ceil(1 * 3 / 4) = 1 of 3.
    assert_eq!(peek(&mut con, "all", "x")[2], 2);
    assert_eq!(peek(&mut con, "new", "k")[2], 1);
    let e = policy_cmd(&mut con, &["NL.PEEK", "nothing", "k"]).unwrap_err();
    assert_eq!(e.detail(), Some("unknown policy 'nothing'"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Fault pinned: each generation of policies remembered only the one it replaced, so a key
/// used before a reload and not touched until a second reload came back full after it (a
/// client could double its quota by waiting for two reloads). Now the key is carried through
/// every generation in between.
#[test]
fn chained_reloads_carry_a_key_untouched_in_between() {
    let dir = temp_dir("chained-reload");
    let policy = |rate: u32| {
        format!("[[policy]]\nname = \"api\"\nrate = {rate}\nperiod = \"1h\"\nkey = \"ip\"\n")
    };
    let path = write_policies(&dir, "p.toml", &policy(10));
    let server = TestServer::start(|c| c.policies = Some(path.clone()));
    let mut con = server.redis();
    let state = server.running().state();
    let reload = |rate: u32| {
        write_policies(&dir, "p.toml", &policy(rate));
        assert_eq!(nanolimit_cli::serve::reload::reload(state, &path), Ok(1));
    };
    // 6 of 10 used by `a`; `b` untouched.
    assert_eq!(
        policy_cmd(&mut con, &["NL.CHECK", "api", "a", "6"]).unwrap()[2],
        4
    );
    reload(20); // `a` would be 12 of 20 used, but nobody asks.
    reload(5); // 6 of 10 is 3 of 5 used, carried through the generation of 20.
    assert_eq!(
        policy_cmd(&mut con, &["NL.PEEK", "api", "a"]).unwrap()[2],
        2
    );
    assert_eq!(
        policy_cmd(&mut con, &["NL.PEEK", "api", "a"]).unwrap()[2],
        2,
        "once"
    );
    assert_eq!(
        policy_cmd(&mut con, &["NL.PEEK", "api", "b"]).unwrap()[2],
        5
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Shutdown: requests already received are answered; then connections close and no new one
/// is accepted.
#[test]
fn graceful_shutdown_finishes_in_flight_requests() {
    let mut server = TestServer::start(|_| {});
    let addr = server.running().resp;
    let mut con = server.tcp();
    assert_eq!(exchange(&mut con, b"PING\r\n", 7), "+PONG\r\n");
    con.write_all(b"PING\r\nPING\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    server.shutdown();
    let mut rest = Vec::new();
    con.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"+PONG\r\n+PONG\r\n");
    assert!(std::net::TcpStream::connect(addr).is_err());
}

/// A raw connection to the HTTP listener; a read that waits 10 s fails the test.
fn http_tcp(server: &TestServer) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(server.running().http.unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Splits a whole HTTP/1.1 response into its status line, `connection` header and body.
fn status_connection_body(reply: &str) -> (&str, Option<&str>, &str) {
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((reply, ""));
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    let connection = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("connection")
            .then_some(value.trim())
    });
    (status, connection, body)
}

/// Fault pinned: only the request head had a read timeout, so a client that declared a body
/// and never sent it held its connection slot forever; `max_connections` such clients left
/// the service unable to answer even `/healthz`. Now the body must arrive within the idle
/// timeout too: 408, the connection closes, and the slot is free again.
#[test]
fn a_stalled_http_body_gets_408_and_frees_its_slot() {
    let server = TestServer::start(|c| {
        c.max_connections = 1;
        c.idle_timeout = Some(Duration::from_millis(300));
    });
    // Read to the server's close: a connection left open fails the 10 s read timeout.
    let reply = exchange_until_close(
        http_tcp(&server),
        b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
    );
    assert_eq!(
        status_connection_body(&reply),
        (
            "HTTP/1.1 408 Request Timeout",
            Some("close"),
            r#"{"error":"the body did not arrive within the idle timeout (300ms)"}"#
        ),
        "{reply}"
    );
    // The only slot is free again (released as the connection's task ends: retry briefly).
    let mut ok = false;
    for _ in 0..100 {
        let mut s = http_tcp(&server);
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut reply = Vec::new();
        let _ = s.read_to_end(&mut reply);
        if reply.starts_with(b"HTTP/1.1 200 OK\r\n") {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(ok);
}

/// A body declared larger than 64 KiB is refused from its `Content-Length` alone, before any
/// of it is sent (no idle timeout here: waiting for the body would fail the read timeout).
#[test]
fn a_declared_oversized_http_body_gets_413_at_once() {
    let server = TestServer::start(|c| c.idle_timeout = None);
    let reply = exchange_until_close(
        http_tcp(&server),
        b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",
    );
    assert_eq!(
        status_connection_body(&reply),
        (
            "HTTP/1.1 413 Payload Too Large",
            Some("close"),
            r#"{"error":"the body is larger than 65536 bytes"}"#
        ),
        "{reply}"
    );
}

/// A chunked body has no length to check in advance: it is refused with 413 once the chunks
/// pass 64 KiB. A chunked body within the limit is answered as usual.
#[test]
fn a_chunked_http_body_over_the_limit_gets_413() {
    let server = TestServer::start(|c| c.idle_timeout = None);
    // 32768 + 32769 bytes: one past the limit, and the last byte sent is the one that
    // crosses it, so the server has read everything when it answers and closes.
    let mut request =
        b"POST /v1/check HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    request.extend_from_slice(b"8000\r\n");
    request.extend_from_slice(&[b' '; 0x8000]);
    request.extend_from_slice(b"\r\n8001\r\n");
    request.extend_from_slice(&[b' '; 0x8001]);
    let reply = exchange_until_close(http_tcp(&server), &request);
    assert_eq!(
        status_connection_body(&reply),
        (
            "HTTP/1.1 413 Payload Too Large",
            Some("close"),
            r#"{"error":"the body is larger than 65536 bytes"}"#
        ),
        "{reply}"
    );

    let body = r#"{"policy":"default","key":"a"}"#;
    let request = format!(
        "POST /v1/check HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let reply = exchange_until_close(http_tcp(&server), request.as_bytes());
    let (status, _, text) = status_connection_body(&reply);
    assert_eq!(status, "HTTP/1.1 200 OK", "{reply}");
    assert!(text.starts_with(r#"{"allowed":true,"#), "{reply}");
}

/// A client that sends the body the server refused from its `Content-Length` is not reset:
/// the server reads and discards it for a while before it closes. (Closed at once, a client
/// still writing its body got a broken pipe and never read the 413.) Here the client writes
/// the body only after reading the reply, so the server's close always comes first.
#[test]
fn a_refused_body_sent_anyway_does_not_reset_the_connection() {
    let server = TestServer::start(|c| c.idle_timeout = None);
    let mut s = http_tcp(&server);
    s.write_all(b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n")
        .unwrap();
    let expected = "HTTP/1.1 413 Payload Too Large\r\n";
    let mut reply = vec![0; expected.len()];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(String::from_utf8_lossy(&reply), expected);
    // The server has answered and closed its side; it still reads what comes (a write to a
    // closed socket is answered by a reset, and the write after that fails).
    for _ in 0..10 {
        s.write_all(&[b' '; 30_000]).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        rest.ends_with(r#"{"error":"the body is larger than 65536 bytes"}"#),
        "{rest}"
    );
}
