//! Child processes that are stopped (by PID) when the test drops them, and
//! the gatehouse binary launched on free loopback ports.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::ports::{free_addr, wait_for_port};

/// A running child process; SIGTERM then SIGKILL on drop.
pub struct Proc {
    pub name: String,
    pub child: Child,
    /// Where stdout/stderr go, for failure messages.
    pub log: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr sent to a log file in a temp dir.
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        let dir = std::env::temp_dir().join("gatehouse-tests");
        std::fs::create_dir_all(&dir).expect("create log dir");
        let log = dir.join(format!(
            "{name}-{}-{}.log",
            std::process::id(),
            super::ports::free_port()
        ));
        let out = std::fs::File::create(&log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name: name.to_owned(),
            child,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log so far (for assertion messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal by PID (`TERM`, `HUP`, `INT`, `KILL`).
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status();
    }

    /// Waits for exit up to `timeout`; returns the exit code if it exited.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        None
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.is_running() {
            self.signal("TERM");
            if self.wait_exit(Duration::from_secs(3)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// A peer's binary: `$ENV_VAR` when set, else `.venv/bin/NAME` in the
/// crate root (where scripts/test installs it). Panics with `hint` (how to
/// install it) when there is neither: these tests never skip.
pub fn venv_tool(name: &str, env_var: &str, hint: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "{env_var}={} is not a file. {hint}",
            p.display()
        );
        return p;
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".venv/bin")
        .join(name);
    assert!(venv.is_file(), "{} not found. {hint}", venv.display());
    venv
}

/// Path of the gatehouse binary built for these tests.
pub fn gatehouse_bin() -> PathBuf {
    PathBuf::from(option_env!("CARGO_BIN_EXE_gatehouse").unwrap_or(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/debug/gatehouse"
    )))
}

/// A `gatehouse serve` on free loopback ports.
pub struct Gatehouse {
    pub proc: Proc,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
}

impl Gatehouse {
    /// Starts `gatehouse serve` with `config` (YAML file path, optional) and
    /// extra env; waits until the HTTP listener accepts connections. The
    /// process env is cleared of BETTER_AUTH_*, GATEHOUSE_* and REDIS_URL
    /// first.
    pub fn start(config: Option<&Path>, env: &HashMap<String, String>) -> Gatehouse {
        Self::start_with_addrs(config, env, free_addr(), free_addr())
    }

    pub fn start_with_addrs(
        config: Option<&Path>,
        env: &HashMap<String, String>,
        grpc_addr: SocketAddr,
        http_addr: SocketAddr,
    ) -> Gatehouse {
        let mut cmd = Command::new(gatehouse_bin());
        cmd.arg("serve");
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        for (k, _) in std::env::vars() {
            if k.starts_with("BETTER_AUTH_") || k.starts_with("GATEHOUSE_") || k == "REDIS_URL" {
                cmd.env_remove(k);
            }
        }
        cmd.env("GATEHOUSE_GRPC_ADDR", grpc_addr.to_string())
            .env("GATEHOUSE_HTTP_ADDR", http_addr.to_string())
            .env("GATEHOUSE_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut proc = Proc::spawn("gatehouse", cmd);
        if !wait_for_port(http_addr, Duration::from_secs(20)) {
            let code = proc.wait_exit(Duration::from_millis(10));
            panic!(
                "gatehouse did not start listening on {http_addr} (exit {code:?}):\n{}",
                proc.log_text()
            );
        }
        Gatehouse {
            proc,
            grpc_addr,
            http_addr,
        }
    }

    /// Waits until `/readyz` answers 200.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some((200, _)) = super::http_get(self.http_addr, "/readyz", &[]) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}
