//! The pieces the conformance tests combine: a `gatehouse serve` with an
//! echo upstream behind one or both real doors (nginx `auth_request`,
//! Envoy `ext_authz`), requests through a chosen door, and assertions on
//! what reached the upstream or what the client was told.
//!
//! Also a second Better Auth server that claims someone else's base URL as
//! its issuer (its own keys, its own secret), for forged-issuer tokens.
//! Nothing here verifies tokens itself: every decision comes from the
//! running gatehouse.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::betterauth::{BetterAuth, project_dir};
use super::envoy::upstream_header;
use super::ports::free_port;
use super::procs::Proc;
use super::{EchoUpstream, Envoy, Gatehouse, HttpResponse, Nginx, http_request};

/// Which front door a request goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    Nginx,
    Envoy,
}

/// gatehouse, the echo upstream and the doors in front of it.
pub struct Doors {
    // Field order: the doors stop before gatehouse and the upstream.
    pub nginx: Option<Nginx>,
    pub envoy: Option<Envoy>,
    pub app: EchoUpstream,
    pub gatehouse: Gatehouse,
}

impl Doors {
    /// Starts `gatehouse serve` (config file optional, `env` on top), waits
    /// until it is ready, then the requested doors.
    pub fn start(
        config: Option<&Path>,
        env: &[(&str, &str)],
        with_nginx: bool,
        with_envoy: bool,
    ) -> Doors {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let gatehouse = Gatehouse::start(config, &env);
        assert!(
            gatehouse.wait_ready(Duration::from_secs(20)),
            "gatehouse never became ready:\n{}",
            gatehouse.proc.log_text()
        );
        let app = EchoUpstream::start();
        let nginx = with_nginx.then(|| Nginx::start(gatehouse.http_addr, app.addr));
        let envoy = with_envoy.then(|| Envoy::start(gatehouse.grpc_addr, app.addr));
        Doors {
            nginx,
            envoy,
            app,
            gatehouse,
        }
    }

    /// The doors that are running.
    pub fn doors(&self) -> Vec<Door> {
        let mut v = Vec::new();
        if self.nginx.is_some() {
            v.push(Door::Nginx);
        }
        if self.envoy.is_some() {
            v.push(Door::Envoy);
        }
        v
    }

    /// `GET path` through `door`.
    pub fn get(&self, door: Door, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        let addr = match door {
            Door::Nginx => self.nginx.as_ref().expect("nginx is running").addr,
            Door::Envoy => self.envoy.as_ref().expect("envoy is running").addr,
        };
        http_request(addr, "GET", path, headers).unwrap_or_else(|| {
            panic!(
                "{door:?} did not answer {path}:\n{}",
                self.gatehouse.proc.log_text()
            )
        })
    }

    /// `GET path` through `door` with `Authorization: Bearer <token>`.
    pub fn get_bearer(&self, door: Door, path: &str, token: &str) -> HttpResponse {
        let auth = format!("Bearer {token}");
        self.get(door, path, &[("authorization", auth.as_str())])
    }

    /// `GET path` through `door` carrying only a `cookie` header.
    pub fn get_cookie(&self, door: Door, path: &str, cookie: &str) -> HttpResponse {
        self.get(door, path, &[("cookie", cookie)])
    }

    /// gatehouse's log (for failure messages).
    pub fn log(&self) -> String {
        self.gatehouse.proc.log_text()
    }
}

/// The single value of an identity header that reached the upstream.
pub fn identity(res: &HttpResponse, name: &str) -> Option<String> {
    let v = upstream_header(res, name);
    assert!(v.len() <= 1, "{name} arrived {} times: {v:?}", v.len());
    v.into_iter().next()
}

/// The request reached the upstream as this user.
#[track_caller]
pub fn assert_allowed_as(res: &HttpResponse, door: Door, id: &str, email: &str, name: &str) {
    assert_eq!(res.status, 200, "{door:?}: not allowed: {}", res.body);
    assert_eq!(identity(res, "x-user-id").as_deref(), Some(id), "{door:?}");
    assert_eq!(
        identity(res, "x-user-email").as_deref(),
        Some(email),
        "{door:?}"
    );
    assert_eq!(
        identity(res, "x-user-name").as_deref(),
        Some(name),
        "{door:?}"
    );
}

/// The client was refused with `status` and the `error` code (docs/errors.md).
#[track_caller]
pub fn assert_denied(res: &HttpResponse, door: Door, status: u16, code: &str) {
    assert_eq!(
        res.status, status,
        "{door:?}: expected {status} {code}, got: {}",
        res.body
    );
    assert_eq!(res.json()["error"], code, "{door:?}: {}", res.body);
    if status == 401 {
        assert!(
            res.header("www-authenticate")
                .is_some_and(|v| v.starts_with("Bearer")),
            "{door:?}: 401 without a Bearer challenge: {:?}",
            res.headers
        );
    }
}

/// Repeats `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A Better Auth server of its own (own keys, own secret, memory adapter)
/// whose `baseURL` — and so its JWTs' `iss` and `aud` — is `claimed_url`,
/// someone else's address. Its HTTP API is reached on its real port; the
/// returned value's `url` is the claimed one (Better Auth checks `Origin`
/// against it).
pub fn start_impostor(claimed_url: &str, secret: &str) -> BetterAuth {
    let dir = project_dir();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("server.mjs"))
        .current_dir(&dir)
        .env("PORT", port.to_string())
        .env("BETTER_AUTH_URL", claimed_url)
        .env("BETTER_AUTH_SECRET", secret)
        .env("JWT_ALG", "EdDSA")
        .env_remove("DATABASE_URL")
        .env_remove("JWT_ROTATION_SECONDS")
        .env_remove("JWT_GRACE_SECONDS")
        .env("BEARER_PLUGIN", "on");
    let mut proc = Proc::spawn("better-auth-impostor", cmd);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !proc.log_text().contains("better-auth ready") {
        assert!(
            proc.is_running() && Instant::now() < deadline,
            "impostor Better Auth did not start:\n{}",
            proc.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    BetterAuth {
        url: claimed_url.to_owned(),
        addr,
        secret: secret.to_owned(),
        proc,
    }
}

/// The decoded JSON header of a JWT.
pub fn jwt_header(token: &str) -> serde_json::Value {
    use base64::Engine;
    let part = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The same token with its header replaced (payload and signature kept).
pub fn with_header(token: &str, header: &serde_json::Value) -> String {
    use base64::Engine;
    let (_, rest) = token.split_once('.').unwrap();
    let h = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header.to_string());
    format!("{h}.{rest}")
}

/// A `better-auth.session_token=` cookie header for a decoded `TOKEN.SIG`,
/// URL-encoded as Better Auth sends it.
pub fn cookie_for(value: &str) -> String {
    let encoded = value
        .replace('%', "%25")
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    format!("better-auth.session_token={encoded}")
}

/// The signed value with one signature character changed (still base64).
pub fn forge_signature(value: &str) -> String {
    let (token, sig) = value.split_once('.').unwrap();
    let mut chars: Vec<char> = sig.chars().collect();
    chars[0] = if chars[0] == 'A' { 'B' } else { 'A' };
    format!("{token}.{}", chars.into_iter().collect::<String>())
}
