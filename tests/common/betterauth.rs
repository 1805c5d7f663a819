//! A real Better Auth server (`tests/betterauth/server.mjs`, npm
//! `better-auth` 1.7 with the `jwt()` and `bearer()` plugins) on a free
//! loopback port, and the calls a test makes against it through Better
//! Auth's own HTTP API: sign up, sign in, fetch a JWT, sign out.
//!
//! Also a throwaway Postgres database per test (`TestDb`) on the shared
//! server at 127.0.0.1:5432, dropped when the test ends. This module does
//! not install Node packages: `npm ci --prefix tests/betterauth` does.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::httpc::{HttpResponse, parse_response};
use super::ports::free_port;
use super::procs::Proc;

/// The secret every test issuer signs cookies with unless told otherwise.
pub const DEFAULT_SECRET: &str = "gatehouse-test-secret-0123456789abcdefghij";

/// How to start the issuer.
#[derive(Debug, Clone)]
pub struct BetterAuthOpts {
    /// `jwt()` key algorithm: EdDSA, ES256, ES512, RS256, PS256.
    pub alg: String,
    /// `BETTER_AUTH_SECRET`: signs session cookies.
    pub secret: String,
    /// Key rotation interval; `None` keeps one key forever.
    pub rotation: Option<Duration>,
    /// How long a rotated-out key stays in the JWKS.
    pub grace: Option<Duration>,
    /// Postgres URL; `None` uses Better Auth's memory adapter.
    pub database_url: Option<String>,
    /// Include the `bearer()` plugin (session token as `Authorization: Bearer`).
    pub bearer_plugin: bool,
}

impl Default for BetterAuthOpts {
    fn default() -> Self {
        Self {
            alg: "EdDSA".to_owned(),
            secret: DEFAULT_SECRET.to_owned(),
            rotation: None,
            grace: None,
            database_url: None,
            bearer_plugin: true,
        }
    }
}

/// A running Better Auth server.
pub struct BetterAuth {
    /// Base URL, also the JWT issuer and audience (`http://127.0.0.1:PORT`).
    pub url: String,
    pub addr: SocketAddr,
    pub secret: String,
    pub proc: Proc,
}

/// A signed-up user.
#[derive(Debug, Clone)]
pub struct SignedUp {
    pub user_id: String,
    /// `better-auth.session_token=<url-encoded TOKEN.SIG>`: a `cookie` header value.
    pub cookie: String,
}

/// The Node project directory.
pub fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/betterauth")
}

impl BetterAuth {
    /// Starts the server and waits for its ready line.
    pub fn start(opts: BetterAuthOpts) -> BetterAuth {
        let dir = project_dir();
        assert!(
            dir.join("node_modules/better-auth").is_dir(),
            "Better Auth is not installed: run `npm ci --prefix tests/betterauth`"
        );
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let url = format!("http://{addr}");
        let mut cmd = Command::new("node");
        cmd.arg(dir.join("server.mjs"))
            .current_dir(&dir)
            .env("PORT", port.to_string())
            .env("BETTER_AUTH_URL", &url)
            .env("BETTER_AUTH_SECRET", &opts.secret)
            .env("JWT_ALG", &opts.alg)
            .env_remove("DATABASE_URL")
            .env_remove("JWT_ROTATION_SECONDS")
            .env_remove("JWT_GRACE_SECONDS")
            .env(
                "BEARER_PLUGIN",
                if opts.bearer_plugin { "on" } else { "off" },
            );
        if let Some(r) = opts.rotation {
            cmd.env("JWT_ROTATION_SECONDS", r.as_secs().max(1).to_string());
        }
        if let Some(g) = opts.grace {
            cmd.env("JWT_GRACE_SECONDS", g.as_secs().max(1).to_string());
        }
        if let Some(db) = &opts.database_url {
            cmd.env("DATABASE_URL", db);
        }
        let mut proc = Proc::spawn("better-auth", cmd);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if proc.log_text().contains("better-auth ready") {
                break;
            }
            assert!(
                proc.is_running(),
                "Better Auth exited early:\n{}",
                proc.log_text()
            );
            assert!(
                Instant::now() < deadline,
                "Better Auth did not become ready:\n{}",
                proc.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        BetterAuth {
            url,
            addr,
            secret: opts.secret,
            proc,
        }
    }

    /// Sends one request with an optional JSON body; `Origin` is always the
    /// base URL (Better Auth checks it on POSTs).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> HttpResponse {
        let mut all: Vec<(&str, &str)> = vec![("origin", self.url.as_str())];
        all.extend_from_slice(headers);
        let body = body.map(|b| b.to_string());
        request_with_body(self.addr, method, path, &all, body.as_deref())
            .unwrap_or_else(|| panic!("{method} {path}: no answer from Better Auth"))
    }

    /// Signs up through `POST /api/auth/sign-up/email`.
    pub fn sign_up(&self, email: &str, password: &str, name: &str) -> SignedUp {
        let body = serde_json::json!({"email": email, "password": password, "name": name});
        let res = self.call("POST", "/api/auth/sign-up/email", &[], Some(&body));
        assert_eq!(res.status, 200, "sign-up failed: {}", res.body);
        let user_id = res.json()["user"]["id"]
            .as_str()
            .expect("user.id in sign-up answer")
            .to_owned();
        SignedUp {
            user_id,
            cookie: session_cookie(&res),
        }
    }

    /// Signs in through `POST /api/auth/sign-in/email`; returns the `cookie` header value.
    pub fn sign_in(&self, email: &str, password: &str) -> String {
        let body = serde_json::json!({"email": email, "password": password});
        let res = self.call("POST", "/api/auth/sign-in/email", &[], Some(&body));
        assert_eq!(res.status, 200, "sign-in failed: {}", res.body);
        session_cookie(&res)
    }

    /// A JWT for the session from `GET /api/auth/token`.
    pub fn jwt(&self, cookie: &str) -> String {
        let res = self.call("GET", "/api/auth/token", &[("cookie", cookie)], None);
        assert_eq!(res.status, 200, "token failed: {}", res.body);
        res.json()["token"]
            .as_str()
            .expect("token in /api/auth/token answer")
            .to_owned()
    }

    /// `GET /api/auth/get-session` with the cookie.
    pub fn get_session(&self, cookie: &str) -> HttpResponse {
        self.call("GET", "/api/auth/get-session", &[("cookie", cookie)], None)
    }

    /// `GET /api/auth/jwks` as JSON.
    pub fn jwks(&self) -> serde_json::Value {
        let res = self.call("GET", "/api/auth/jwks", &[], None);
        assert_eq!(res.status, 200, "jwks failed: {}", res.body);
        res.json()
    }

    /// Signs out through `POST /api/auth/sign-out` (revokes the session).
    pub fn sign_out(&self, cookie: &str) {
        let body = serde_json::json!({});
        let res = self.call(
            "POST",
            "/api/auth/sign-out",
            &[("cookie", cookie)],
            Some(&body),
        );
        assert_eq!(res.status, 200, "sign-out failed: {}", res.body);
    }

    /// How many `get-session` requests the server has answered.
    pub fn get_session_calls(&self) -> u64 {
        let res = request_with_body(self.addr, "GET", "/__stats", &[], None)
            .expect("stats from Better Auth");
        res.json()["getSession"].as_u64().expect("getSession count")
    }

    /// Stops the server (SIGTERM, waits for exit).
    pub fn stop(&mut self) {
        self.proc.signal("TERM");
        if self.proc.wait_exit(Duration::from_secs(5)).is_none() {
            let _ = self.proc.child.kill();
            let _ = self.proc.child.wait();
        }
    }
}

/// The `better-auth.session_token=…` pair from a response's `set-cookie`.
pub fn session_cookie(res: &HttpResponse) -> String {
    res.headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .filter_map(|(_, v)| v.split(';').next())
        .find(|pair| pair.starts_with("better-auth.session_token="))
        .unwrap_or_else(|| panic!("no session cookie in {:?}", res.headers))
        .to_owned()
}

/// The cookie's value, URL-decoded: `TOKEN.SIG`.
pub fn cookie_value(cookie: &str) -> String {
    let raw = cookie.split_once('=').map_or(cookie, |(_, v)| v).to_owned();
    percent_encoding::percent_decode_str(&raw)
        .decode_utf8()
        .expect("cookie is UTF-8")
        .into_owned()
}

/// One HTTP/1.1 request with an optional JSON body, one connection.
pub fn request_with_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Option<HttpResponse> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .ok()?;
    let body = body.unwrap_or("");
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str("content-type: application/json\r\n");
    }
    req.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    parse_response(&raw)
}

/// A database of its own on the shared Postgres (trust auth, user
/// `postgres`), dropped on drop.
pub struct TestDb {
    pub name: String,
    /// `postgres://postgres@127.0.0.1:5432/<name>`.
    pub url: String,
}

impl TestDb {
    pub fn create() -> TestDb {
        let name = format!("gh_{}_{}", std::process::id(), free_port());
        psql("test", &format!("CREATE DATABASE {name}"));
        TestDb {
            url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
            name,
        }
    }

    /// Runs SQL in this database.
    pub fn exec(&self, sql: &str) {
        psql(&self.name, sql);
    }

    /// The same database behind another host:port (a proxy in front of Postgres).
    pub fn url_via(&self, addr: SocketAddr) -> String {
        format!("postgres://postgres@{addr}/{}", self.name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "test",
                "-q",
                "-c",
            ])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

fn psql(db: &str, sql: &str) {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", db, "-q", "-v"])
        .arg("ON_ERROR_STOP=1")
        .arg("-c")
        .arg(sql)
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
