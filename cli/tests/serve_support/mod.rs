//! A server started in-process on ephemeral loopback ports, on a manual clock; the real
//! `nanolimit serve` binary as a child process; and small clients for them (the `redis`
//! crate, raw TCP, `ureq`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nanolimit::ManualClock;
use nanolimit_cli::serve::{start, Running, ServeConfig};

pub struct TestServer {
    pub clock: ManualClock,
    runtime: tokio::runtime::Runtime,
    running: Option<Running>,
}

impl TestServer {
    /// A server on 127.0.0.1:0 (both listeners), on a manual clock at 0, after `tweak`.
    pub fn start(tweak: impl FnOnce(&mut ServeConfig)) -> Self {
        let clock = ManualClock::new(0);
        let mut config = ServeConfig {
            resp: "127.0.0.1:0".parse().unwrap(),
            http: Some("127.0.0.1:0".parse().unwrap()),
            clock: Some(Arc::new(clock.clone())),
            ..ServeConfig::default()
        };
        tweak(&mut config);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let running = runtime.block_on(start(config)).expect("the server starts");
        Self {
            clock,
            runtime,
            running: Some(running),
        }
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    pub fn resp_url(&self) -> String {
        format!("redis://{}/", self.running().resp)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running().http.unwrap())
    }

    pub fn redis(&self) -> redis::Connection {
        redis::Client::open(self.resp_url())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    pub fn tcp(&self) -> TcpStream {
        let s = TcpStream::connect(self.running().resp).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Stops the server gracefully.
    pub fn shutdown(&mut self) {
        if let Some(r) = self.running.take() {
            self.runtime.block_on(r.shutdown(Duration::from_secs(5)));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Sends `bytes` and reads until the server closes the connection.
pub fn exchange_until_close(mut s: TcpStream, bytes: &[u8]) -> String {
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends `bytes` and reads exactly `n` bytes of reply.
pub fn exchange(s: &mut TcpStream, bytes: &[u8], n: usize) -> String {
    s.write_all(bytes).unwrap();
    let mut out = vec![0; n];
    s.read_exact(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

pub fn throttle(con: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<Vec<i64>> {
    let mut cmd = redis::cmd("CL.THROTTLE");
    for a in args {
        cmd.arg(*a);
    }
    cmd.query(con)
}

/// `nanolimit serve` as a child process on ephemeral loopback ports; killed on drop.
pub struct ServeProcess {
    pub child: Child,
    pub resp: SocketAddr,
    /// `None` with `--http off`.
    pub http: Option<SocketAddr>,
    /// The line it printed on start.
    pub line: String,
}

impl ServeProcess {
    /// Starts `nanolimit serve --resp 127.0.0.1:0 --http 127.0.0.1:0 ARGS` (without the
    /// `--http` when `args` has its own) and reads where it listens from its first line.
    pub fn start(args: &[&str]) -> Self {
        let http: &[&str] = if args.contains(&"--http") {
            &[]
        } else {
            &["--http", "127.0.0.1:0"]
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_nanolimit"))
            .args(["serve", "--resp", "127.0.0.1:0"])
            .args(http)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "nanolimit serve: Redis protocol on ADDR, HTTP on http://ADDR, policies: ..."
        let after = |marker: &str| -> Option<SocketAddr> {
            let rest = &line[line.find(marker)? + marker.len()..];
            rest[..rest.find(',')?].parse().ok()
        };
        Self {
            resp: after("Redis protocol on ").unwrap_or_else(|| panic!("{line}")),
            http: after("HTTP on http://"),
            line,
            child,
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
