//! A real nginx running `deploy/nginx/nginx.conf` in the foreground, from a
//! scratch prefix, on free loopback ports. Only the three addresses of the
//! shipped file are substituted, so the tests exercise the config users copy.
//!
//! The binary comes from `NGINX_BIN`, else `/usr/sbin/nginx`, else `nginx`
//! on `PATH`. A missing nginx fails the test with install instructions:
//! these tests are never skipped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::ports::{free_addr, wait_for_port};
use super::procs::Proc;

/// The addresses written in the shipped config, replaced by the tests.
pub const CONF_LISTEN: &str = "127.0.0.1:8000";
pub const CONF_GATEHOUSE: &str = "127.0.0.1:8080";
pub const CONF_APP: &str = "127.0.0.1:8081";

/// Path of the shipped config.
pub fn shipped_conf() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx/nginx.conf")
}

/// The nginx binary to run.
pub fn nginx_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("NGINX_BIN") {
        let p = PathBuf::from(p);
        assert!(p.exists(), "NGINX_BIN={} does not exist", p.display());
        return p;
    }
    let sbin = PathBuf::from("/usr/sbin/nginx");
    if sbin.exists() {
        return sbin;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("nginx");
            if candidate.exists() {
                return candidate;
            }
        }
    }
    panic!(
        "nginx is required for these tests and was not found (NGINX_BIN, /usr/sbin/nginx, PATH): \
         install it with `sudo apt-get install -y nginx` (or set NGINX_BIN)"
    );
}

/// The shipped config with only the addresses replaced.
pub fn render_conf(listen: SocketAddr, gatehouse: SocketAddr, app: SocketAddr) -> String {
    let text = std::fs::read_to_string(shipped_conf()).expect("read deploy/nginx/nginx.conf");
    for needle in [CONF_LISTEN, CONF_GATEHOUSE, CONF_APP] {
        assert!(
            text.contains(needle),
            "deploy/nginx/nginx.conf no longer mentions {needle}"
        );
    }
    text.replace(CONF_LISTEN, &listen.to_string())
        .replace(CONF_GATEHOUSE, &gatehouse.to_string())
        .replace(CONF_APP, &app.to_string())
}

/// nginx as its own `auth_request` documentation shows it, in front of
/// `app`, asking gatehouse's HTTP listener at `gatehouse`: only
/// `X-Original-URI` is set on the auth subrequest.
pub fn documented_conf(listen: SocketAddr, gatehouse: SocketAddr, app: SocketAddr) -> String {
    format!(
        "pid logs/nginx.pid;
error_log logs/error.log warn;
events {{}}
http {{
    client_body_temp_path temp/client_body;
    proxy_temp_path temp/proxy;
    access_log off;
    server {{
        listen {listen};
        location / {{
            auth_request /auth;
            proxy_pass http://{app};
        }}
        location = /auth {{
            internal;
            proxy_pass http://{gatehouse};
            proxy_pass_request_body off;
            proxy_set_header Content-Length \"\";
            proxy_set_header X-Original-URI $request_uri;
        }}
    }}
}}
"
    )
}

/// A running nginx; stopped (by PID) and its prefix removed on drop.
pub struct Nginx {
    /// Where clients connect.
    pub addr: SocketAddr,
    // Field order: the process stops before its prefix is deleted.
    pub proc: Proc,
    pub prefix: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx in front of `app`, asking the gatehouse at `gatehouse`.
    pub fn start(gatehouse: SocketAddr, app: SocketAddr) -> Nginx {
        let addr = free_addr();
        Self::start_conf(&render_conf(addr, gatehouse, app), addr)
    }

    /// Starts nginx on the complete configuration `conf`, which listens on
    /// `addr` (for example `gatehouse proxy-config nginx` output).
    pub fn start_conf(conf_text: &str, addr: SocketAddr) -> Nginx {
        let bin = nginx_bin();
        let prefix = tempfile::Builder::new()
            .prefix("gatehouse-nginx-")
            .tempdir()
            .expect("nginx prefix dir");
        // nginx's workers drop to `nobody` when started as root; they must be
        // able to reach the temp directories under the prefix.
        set_mode(prefix.path(), 0o755);
        std::fs::create_dir_all(prefix.path().join("logs")).expect("logs dir");
        std::fs::create_dir_all(prefix.path().join("temp")).expect("temp dir");
        let conf = prefix.path().join("nginx.conf");
        std::fs::write(&conf, conf_text).expect("write nginx.conf");

        let mut cmd = Command::new(&bin);
        cmd.arg("-p")
            .arg(format!("{}/", prefix.path().display()))
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg("stderr")
            .arg("-g")
            .arg("daemon off;");
        let mut proc = Proc::spawn("nginx", cmd);
        if !wait_for_port(addr, Duration::from_secs(15)) {
            let code = proc.wait_exit(Duration::from_millis(10));
            panic!(
                "nginx ({}) did not start listening on {addr} (exit {code:?}):\n{}\n{}",
                bin.display(),
                proc.log_text(),
                std::fs::read_to_string(prefix.path().join("logs/error.log")).unwrap_or_default()
            );
        }
        Nginx { addr, proc, prefix }
    }

    /// nginx's error log so far (for assertion messages).
    pub fn error_log(&self) -> String {
        let mut s = self.proc.log_text();
        s.push_str(
            &std::fs::read_to_string(self.prefix.path().join("logs/error.log")).unwrap_or_default(),
        );
        s
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod prefix");
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) {}
