//! A real Better Auth server (`tests/betterauth/server.mjs`, npm
//! `better-auth` 1.7 with the `jwt()` and `bearer()` plugins, and on
//! request `admin()`, `organization()` and a `sid` claim in its JWTs) on a
//! free loopback port, and the calls a test makes against it through Better
//! Auth's own HTTP API: sign up, sign in, fetch a JWT, sign out; ban and
//! unban; create an organization, invite and accept, set the active one.
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
    /// JWTs carry `sid`, the id of their session
    /// (`jwt({ jwt: { definePayload: ({user, session}) => ({...user, sid: session.id}) } })`).
    pub sid_claim: bool,
    /// Include the `admin()` plugin (`/api/auth/admin/*`, ban columns on "user").
    pub admin_plugin: bool,
    /// Emails that sign up with `"user".role = 'admin'`.
    pub admin_emails: Vec<String>,
    /// Include the `organization()` plugin (`/api/auth/organization/*`).
    pub organization_plugin: bool,
    /// `baseURL` (JWT issuer and audience, trusted origin) when it is not the
    /// server's own address: a second server on the same database and
    /// secret then signs with the same key for the same issuer.
    pub base_url: Option<String>,
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
            sid_claim: false,
            admin_plugin: false,
            admin_emails: Vec::new(),
            organization_plugin: false,
            base_url: None,
        }
    }
}

/// A running Better Auth server.
pub struct BetterAuth {
    /// Base URL, also the JWT issuer and audience (`http://127.0.0.1:PORT`,
    /// or [`BetterAuthOpts::base_url`]).
    pub url: String,
    /// Where the server listens.
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
        let url = opts
            .base_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let on = |b: bool| if b { "on" } else { "off" };
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
            .env("BEARER_PLUGIN", on(opts.bearer_plugin))
            .env("SID_CLAIM", on(opts.sid_claim))
            .env("ADMIN_PLUGIN", on(opts.admin_plugin))
            .env("ADMIN_EMAILS", opts.admin_emails.join(","))
            .env("ORG_PLUGIN", on(opts.organization_plugin));
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

    /// The session behind a cookie (`GET /api/auth/get-session`): its
    /// `session` and `user` objects; panics when there is none.
    pub fn session(&self, cookie: &str) -> serde_json::Value {
        let res = self.get_session(cookie);
        assert_eq!(res.status, 200, "get-session failed: {}", res.body);
        let v = res.json();
        assert!(
            v["session"].is_object(),
            "no session for {cookie}: {}",
            res.body
        );
        v
    }

    /// The id of the session behind a cookie (`"session".id`; the `sid`
    /// of its JWTs with [`BetterAuthOpts::sid_claim`]).
    pub fn session_id(&self, cookie: &str) -> String {
        self.session(cookie)["session"]["id"]
            .as_str()
            .expect("session.id")
            .to_owned()
    }

    /// `POST /api/auth/<path>` as the session behind `cookie`; asserts 200
    /// and returns the JSON answer.
    pub fn post_as(&self, cookie: &str, path: &str, body: &serde_json::Value) -> serde_json::Value {
        let full = format!("/api/auth/{path}");
        let res = self.call("POST", &full, &[("cookie", cookie)], Some(body));
        assert_eq!(res.status, 200, "POST {full} {body} failed: {}", res.body);
        if res.body.trim().is_empty() {
            serde_json::Value::Null
        } else {
            res.json()
        }
    }

    /// Bans `user_id` through `POST /api/auth/admin/ban-user` as an admin
    /// (a session whose user has role `admin`, see
    /// [`BetterAuthOpts::admin_emails`]); `expires_in` sets `banExpiresIn`
    /// (whole seconds), `None` bans for good. Better Auth also deletes every
    /// session of the user.
    pub fn ban(&self, admin_cookie: &str, user_id: &str, expires_in: Option<Duration>) {
        let mut body = serde_json::json!({"userId": user_id, "banReason": "test ban"});
        if let Some(d) = expires_in {
            body["banExpiresIn"] = d.as_secs().max(1).into();
        }
        let res = self.post_as(admin_cookie, "admin/ban-user", &body);
        assert_eq!(res["user"]["banned"], true, "{res}");
    }

    /// Lifts a ban through `POST /api/auth/admin/unban-user`.
    pub fn unban(&self, admin_cookie: &str, user_id: &str) {
        let res = self.post_as(
            admin_cookie,
            "admin/unban-user",
            &serde_json::json!({"userId": user_id}),
        );
        assert_eq!(res["user"]["banned"], false, "{res}");
    }

    /// Creates an organization through `POST /api/auth/organization/create`
    /// (the creator becomes its `owner` and it becomes the session's active
    /// organization); returns its id.
    pub fn create_org(&self, cookie: &str, name: &str, slug: &str) -> String {
        let res = self.post_as(
            cookie,
            "organization/create",
            &serde_json::json!({"name": name, "slug": slug}),
        );
        res["id"].as_str().expect("organization id").to_owned()
    }

    /// Invites `email` to `org_id` with `roles` through
    /// `POST /api/auth/organization/invite-member` as `inviter_cookie`;
    /// returns the invitation id.
    pub fn invite(
        &self,
        inviter_cookie: &str,
        org_id: &str,
        email: &str,
        roles: &[&str],
    ) -> String {
        let res = self.post_as(
            inviter_cookie,
            "organization/invite-member",
            &serde_json::json!({"email": email, "role": roles, "organizationId": org_id}),
        );
        res["id"].as_str().expect("invitation id").to_owned()
    }

    /// Accepts an invitation through
    /// `POST /api/auth/organization/accept-invitation` as its recipient
    /// (the organization becomes the session's active one); returns the
    /// new member row (`id`, `organizationId`, `userId`, `role`).
    pub fn accept_invitation(&self, cookie: &str, invitation_id: &str) -> serde_json::Value {
        let res = self.post_as(
            cookie,
            "organization/accept-invitation",
            &serde_json::json!({"invitationId": invitation_id}),
        );
        res["member"].clone()
    }

    /// Makes the user behind `member_cookie` (email `member_email`) a member
    /// of `org_id` with `roles`, the way Better Auth offers it over HTTP
    /// (its `addMember` is server-only): an invitation from
    /// `inviter_cookie`, accepted by the member. Returns `"member".role` as
    /// stored: the roles joined with `,` (e.g. `admin,member`).
    pub fn add_member(
        &self,
        inviter_cookie: &str,
        org_id: &str,
        member_cookie: &str,
        member_email: &str,
        roles: &[&str],
    ) -> String {
        let invitation = self.invite(inviter_cookie, org_id, member_email, roles);
        let member = self.accept_invitation(member_cookie, &invitation);
        assert_eq!(member["organizationId"], org_id, "{member}");
        member["role"].as_str().expect("member.role").to_owned()
    }

    /// Removes a member (by user email) through
    /// `POST /api/auth/organization/remove-member`.
    pub fn remove_member(&self, cookie: &str, org_id: &str, member_email: &str) {
        self.post_as(
            cookie,
            "organization/remove-member",
            &serde_json::json!({"memberIdOrEmail": member_email, "organizationId": org_id}),
        );
    }

    /// Sets the session's active organization through
    /// `POST /api/auth/organization/set-active` (`None` unsets it).
    pub fn set_active_org(&self, cookie: &str, org_id: Option<&str>) {
        self.post_as(
            cookie,
            "organization/set-active",
            &serde_json::json!({ "organizationId": org_id }),
        );
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

/// The decoded JSON payload of a JWT (no verification).
pub fn jwt_payload(token: &str) -> serde_json::Value {
    use base64::Engine;
    let part = token.split('.').nth(1).expect("JWT payload part");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("JWT payload is base64url");
    serde_json::from_slice(&bytes).expect("JWT payload is JSON")
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
