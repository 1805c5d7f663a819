//! Redis for the tests: the machine's shared one (127.0.0.1:6379, each
//! test under a key prefix of its own), or a `redis-server` of the test's
//! own on a free port, without persistence, that it can stop and start
//! again on the same port (stopped by PID).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::ports::{free_addr, wait_for_port};
use super::procs::Proc;

/// How to get Redis when it is missing.
pub const REDIS_HINT: &str =
    "install Redis 7 (apt-get install redis-server) and run it at 127.0.0.1:6379";

/// The machine's Redis.
pub const SHARED_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A key prefix no other test (or run) uses.
pub fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("gh-test-{test}-{}-{nanos}:", std::process::id())
}

/// A synchronous connection to `url` (panics with the install hint).
pub fn connect(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        .unwrap_or_else(|e| panic!("cannot reach Redis at {url}: {e}. {REDIS_HINT}"))
}

/// Every key under `prefix`.
pub fn keys_under(url: &str, prefix: &str) -> Vec<String> {
    let mut conn = connect(url);
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query(&mut conn)
            .expect("SCAN");
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

/// Deletes every key under `prefix`.
pub fn clean(url: &str, prefix: &str) {
    let keys = keys_under(url, prefix);
    if !keys.is_empty() {
        let mut conn = connect(url);
        let _: i64 = redis::cmd("DEL").arg(keys).query(&mut conn).expect("DEL");
    }
}

fn redis_server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("REDIS_SERVER_BIN") {
        return PathBuf::from(p);
    }
    for dir in ["/usr/bin", "/usr/local/bin", "/usr/sbin"] {
        let p = PathBuf::from(dir).join("redis-server");
        if p.is_file() {
            return p;
        }
    }
    panic!("redis-server not found (or set REDIS_SERVER_BIN). {REDIS_HINT}");
}

/// A `redis-server` of the test's own.
pub struct RedisServer {
    pub addr: SocketAddr,
    proc: Option<Proc>,
}

impl RedisServer {
    /// Starts one on a free loopback port.
    pub fn start() -> RedisServer {
        let mut r = RedisServer {
            addr: free_addr(),
            proc: None,
        };
        r.restart();
        r
    }

    /// `redis://ADDR`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Stops it (SIGTERM by PID; it keeps nothing).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal("KILL");
            let _ = p.wait_exit(Duration::from_secs(5));
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        let mut cmd = Command::new(redis_server_bin());
        cmd.arg("--port")
            .arg(self.addr.port().to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no");
        let proc = Proc::spawn("redis-server", cmd);
        assert!(
            wait_for_port(self.addr, Duration::from_secs(10)),
            "redis-server did not listen on {}:\n{}",
            self.addr,
            proc.log_text()
        );
        self.proc = Some(proc);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
