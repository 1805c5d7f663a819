//! A private `redis-server` on a free loopback port, for tests that must
//! stop and restart Redis (the shared one at 127.0.0.1:6379 is never
//! touched), and unique key prefixes for tests that share that one.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use super::ports::{free_addr, wait_for_port};
use super::procs::Proc;

pub const INSTALL_HINT: &str = "redis-server is required for this test: install it with \
     `apt-get install redis-server` (scripts/test does)";

/// The shared Redis every test may use (with its own key prefix).
pub const SHARED_URL: &str = "redis://127.0.0.1:6379";

/// A key prefix no other test run uses.
pub fn unique_prefix(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("gh-test:{tag}:{}:{nanos}:", std::process::id())
}

/// A `redis-server` without persistence; stopped by PID on drop.
pub struct RedisServer {
    pub addr: SocketAddr,
    proc: Option<Proc>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let addr = free_addr();
        let mut server = RedisServer { addr, proc: None };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Stops the server (SIGKILL: no goodbye to clients) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal("KILL");
            p.wait_exit(Duration::from_secs(5));
        }
    }

    /// Starts it (again) on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &self.addr.port().to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
        ]);
        if which("redis-server").is_none() {
            panic!("{INSTALL_HINT}");
        }
        let proc = Proc::spawn("redis", cmd);
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

fn which(bin: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join(bin))
        .find(|p| p.is_file())
}

/// Runs one Redis command with `redis-cli` and returns its output.
pub fn cli(url: &str, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-u")
        .arg(url)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("redis-cli: {e}; {INSTALL_HINT}"));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
