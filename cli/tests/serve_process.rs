//! The real `nanolimit serve` binary: it prints where it listens, SIGHUP reloads the policy
//! file (a bad file is refused and the old policies kept), SIGTERM (or SIGINT) stops it with
//! status 0 after answering what it had received.

mod serve_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command};
use std::time::Duration;

use serve_support::ServeProcess;

fn serve(args: &[&str]) -> ServeProcess {
    ServeProcess::start(args)
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Sends `bytes`, then QUIT, and reads everything until the server closes.
fn request(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    s.write_all(b"QUIT\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// NL.PEEK's limit for `policy` (the second integer of the reply).
fn limit(addr: SocketAddr, policy: &str) -> String {
    let text = request(addr, format!("NL.PEEK {policy} k\r\n").as_bytes());
    match text.split("\r\n").nth(2) {
        Some(l) if text.starts_with('*') => l.trim_start_matches(':').to_owned(),
        _ => text,
    }
}

fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn defaults_print_where_it_listens_and_serve_the_built_in_policy() {
    let mut served = serve(&[]);
    assert_eq!(limit(served.resp, "default"), "10");
    // Fault pinned: without a policy file nothing caught SIGHUP, whose default action
    // ended the server. It now logs that there is nothing to reload and keeps serving; the
    // SIGTERM after it finds the server alive and ends it with status 0, where a server
    // killed by SIGHUP would report that signal instead.
    signal(&served.child, "HUP");
    assert_eq!(limit(served.resp, "default"), "10");
    let mut http = TcpStream::connect(served.http.unwrap()).unwrap();
    http.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    http.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with(r#"{"status":"ok"}"#), "{text}");
    signal(&served.child, "TERM");
    assert_eq!(served.child.wait().unwrap().code(), Some(0));
}

/// Ctrl-C in a terminal: SIGINT shuts down as gracefully as SIGTERM, with status 0.
#[test]
fn sigint_exits_cleanly() {
    let mut served = serve(&[]);
    assert_eq!(limit(served.resp, "default"), "10");
    signal(&served.child, "INT");
    assert_eq!(served.child.wait().unwrap().code(), Some(0));
    assert!(TcpStream::connect(served.resp).is_err());
}

#[test]
fn sighup_reloads_and_sigterm_exits_cleanly() {
    let dir = std::env::temp_dir().join(format!("nanolimit-serve-proc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policies.toml");
    let policy = |rate: &str| {
        format!("[[policy]]\nname = \"api\"\nrate = {rate}\nperiod = \"1h\"\nkey = \"ip\"\n")
    };
    std::fs::write(&path, policy("5")).unwrap();
    let mut served = serve(&["--policies", path.to_str().unwrap()]);
    assert_eq!(limit(served.resp, "api"), "5");

    std::fs::write(&path, policy("7")).unwrap();
    signal(&served.child, "HUP");
    assert!(wait_until(|| limit(served.resp, "api") == "7"), "reloaded");

    std::fs::write(&path, policy("0")).unwrap();
    signal(&served.child, "HUP");
    assert!(wait_until(|| {
        let info = request(served.resp, b"INFO limiter\r\n");
        info.contains("policy_reload_failures:1")
    }));
    assert_eq!(
        limit(served.resp, "api"),
        "7",
        "the bad file changed nothing"
    );

    // An open, idle connection at SIGTERM is closed (EOF), and nothing new is accepted;
    // requests in flight at shutdown: `graceful_shutdown_finishes_in_flight_requests`.
    let mut open = TcpStream::connect(served.resp).unwrap();
    open.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    open.write_all(b"PING\r\n").unwrap();
    let mut pong = [0u8; 7];
    open.read_exact(&mut pong).unwrap();
    signal(&served.child, "TERM");
    let status = served.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let mut rest = Vec::new();
    assert_eq!(open.read_to_end(&mut rest).unwrap(), 0);
    assert!(TcpStream::connect(served.resp).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
