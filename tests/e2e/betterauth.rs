//! End to end through both of gatehouse's doors against a real Better Auth
//! 1.7 (`tests/betterauth`), mostly on a Postgres database of the test's
//! own: the HTTP door's `/auth` asked the way nginx asks it
//! (`X-Original-Method`, `X-Original-URI`, the client's credential), and
//! the gRPC door behind a real Envoy running `deploy/envoy/envoy.yaml` in
//! front of an echo upstream, whose answer says what the application
//! received.
//!
//! Covered: zero-config sessions (only `BETTER_AUTH_URL`), a session
//! credential with no session lookup configured, JWTs bound to their
//! session (`session_claim: sid`), banned users, organization membership
//! and roles, and Postgres going away and coming back.
//!
//! Every change is made through Better Auth's own HTTP API (sign-out,
//! `admin/ban-user`, `admin/unban-user`, `organization/create`,
//! `invite-member` + `accept-invitation`, `set-active`, `remove-member`)
//! except two written with SQL: a ban that leaves the user's sessions in
//! place (Better Auth's `ban-user` deletes every session of the user) and
//! an expired session (Better Auth's last 7 days).
#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::betterauth::{BetterAuth, BetterAuthOpts, SignedUp, TestDb, cookie_value, jwt_payload};
use common::conform::{cookie_for, eventually, forge_signature, jwt_header};
use common::envoy::{upstream_header, write_config};
use common::tcp_proxy::TcpProxy;
use common::{
    EchoUpstream, Envoy, Gatehouse, HttpResponse, free_addr, gatehouse_bin, http_request,
};

const PASSWORD: &str = "correct-horse-9";
/// gatehouse's `session.cache_ttl` in the tests with a config file.
const CACHE_TTL: Duration = Duration::from_secs(1);
/// How long a change made in Better Auth may take to reach every answer:
/// `cache_ttl`, and slack for a machine shared with other tests.
const SETTLE: Duration = Duration::from_secs(6);
/// The shared Postgres.
const PG: &str = "127.0.0.1:5432";
/// Better Auth's session cookie on HTTPS.
const SECURE_COOKIE: &str = "__Secure-better-auth.session_token";

/// Which of gatehouse's doors a request goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    /// `GET /auth` on the HTTP listener, as nginx's `auth_request` asks.
    Http,
    /// A request to Envoy, which asks the gRPC listener (ext_authz).
    Envoy,
}

const DOORS: [Door; 2] = [Door::Http, Door::Envoy];

/// gatehouse, the echo upstream and Envoy in front of it.
struct Stack {
    // Field order: Envoy stops first, gatehouse last.
    envoy: Envoy,
    app: EchoUpstream,
    gatehouse: Gatehouse,
}

/// A credential as a client presents it.
#[derive(Debug, Clone)]
enum Cred {
    /// A whole `cookie` header value (`name=value`).
    Cookie(String),
    /// `Authorization: Bearer <token>`: a JWT or a session token.
    Bearer(String),
}

impl Cred {
    fn header(&self) -> (&'static str, String) {
        match self {
            Cred::Cookie(c) => ("cookie", c.clone()),
            Cred::Bearer(t) => ("authorization", format!("Bearer {t}")),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Cred::Cookie(_) => "cookie",
            Cred::Bearer(_) => "bearer",
        }
    }
}

impl Stack {
    /// `gatehouse serve` with the config text (none: zero config) and
    /// `env`, ready, then the echo upstream and Envoy.
    fn start(config: Option<&str>, env: &[(&str, &str)]) -> Stack {
        let path = config.map(write_config);
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let gatehouse = Gatehouse::start(path.as_deref(), &env);
        assert!(
            gatehouse.wait_ready(Duration::from_secs(20)),
            "gatehouse never became ready:\n{}",
            gatehouse.proc.log_text()
        );
        let app = EchoUpstream::start();
        let envoy = Envoy::start(gatehouse.grpc_addr, app.addr);
        Stack {
            envoy,
            app,
            gatehouse,
        }
    }

    /// `GET path` through `door` with the client's `headers`.
    fn get(&self, door: Door, path: &str, headers: &[(&str, &str)]) -> Answer {
        let before = self.app.hits();
        let res = match door {
            Door::Http => {
                let mut all = vec![("x-original-method", "GET"), ("x-original-uri", path)];
                all.extend_from_slice(headers);
                http_request(self.gatehouse.http_addr, "GET", "/auth", &all)
            }
            Door::Envoy => http_request(self.envoy.addr, "GET", path, headers),
        }
        .unwrap_or_else(|| panic!("{door:?} did not answer GET {path}:\n{}", self.log()));
        let reached = self.app.hits() - before;
        if door == Door::Http {
            assert_eq!(reached, 0, "the HTTP door has no upstream");
        }
        Answer {
            door,
            path: path.to_owned(),
            res,
            reached,
        }
    }

    /// `GET path` through `door` with one credential.
    fn ask(&self, door: Door, path: &str, cred: &Cred) -> Answer {
        let (name, value) = cred.header();
        self.get(door, path, &[(name, value.as_str())])
    }

    fn cookie(&self, door: Door, path: &str, cookie: &str) -> Answer {
        self.ask(door, path, &Cred::Cookie(cookie.to_owned()))
    }

    fn bearer(&self, door: Door, path: &str, token: &str) -> Answer {
        self.ask(door, path, &Cred::Bearer(token.to_owned()))
    }

    /// Waits up to `timeout` for `f`; panics with gatehouse's log otherwise.
    #[track_caller]
    fn settle(&self, timeout: Duration, what: &str, f: impl FnMut() -> bool) {
        assert!(
            eventually(timeout, f),
            "{what}: not so after {timeout:?}:\n{}",
            self.log()
        );
    }

    /// The HTTP door's status for `path` with `cred` (for [`Stack::settle`]).
    fn status(&self, path: &str, cred: &Cred) -> u16 {
        self.ask(Door::Http, path, cred).res.status
    }

    fn log(&self) -> String {
        self.gatehouse.proc.log_text()
    }

    /// gatehouse's `/metrics` text.
    fn metrics(&self) -> String {
        let res =
            http_request(self.gatehouse.http_addr, "GET", "/metrics", &[]).expect("metrics answer");
        assert_eq!(res.status, 200);
        res.body
    }
}

/// One answer, as the client (and, through Envoy, the upstream) saw it.
struct Answer {
    door: Door,
    path: String,
    res: HttpResponse,
    /// Requests the upstream received for it.
    reached: usize,
}

impl Answer {
    /// The identity header `name` as the application gets it: from the
    /// HTTP door's answer (empty means none), or as it reached the
    /// upstream through Envoy. Present at most once.
    fn identity(&self, name: &str) -> Option<String> {
        let values: Vec<String> = match self.door {
            Door::Http => self
                .res
                .headers
                .iter()
                .filter(|(k, v)| k == name && !v.is_empty())
                .map(|(_, v)| v.clone())
                .collect(),
            Door::Envoy => upstream_header(&self.res, name),
        };
        assert!(
            values.len() <= 1,
            "{}: {name} arrived {} times: {values:?}",
            self.what(),
            values.len()
        );
        values.into_iter().next()
    }

    fn what(&self) -> String {
        format!("{:?} GET {}", self.door, self.path)
    }

    /// Allowed as `user_id`: 200 and, through Envoy, the request reached the
    /// upstream once carrying `x-user-id`.
    #[track_caller]
    fn allowed_as(&self, user_id: &str) -> &Answer {
        assert_eq!(
            self.res.status,
            200,
            "{}: not allowed: {} {:?}",
            self.what(),
            self.res.body,
            self.res.headers
        );
        if self.door == Door::Envoy {
            assert_eq!(self.reached, 1, "{}: upstream hits", self.what());
            assert_eq!(self.res.header("x-echo"), Some("1"), "{}", self.what());
        }
        self.has("x-user-id", Some(user_id))
    }

    /// The application got identity header `name` with `value` (`None`: not at all).
    #[track_caller]
    fn has(&self, name: &str, value: Option<&str>) -> &Answer {
        assert_eq!(
            self.identity(name).as_deref(),
            value,
            "{}: {name}; answer {} {:?}",
            self.what(),
            self.res.body,
            self.res.headers
        );
        self
    }

    /// Refused with `status` and the JSON `error` code; the upstream saw nothing.
    #[track_caller]
    fn denied(&self, status: u16, code: &str) -> &Answer {
        assert_eq!(
            self.res.status,
            status,
            "{}: expected {status} {code}, got {} {:?}",
            self.what(),
            self.res.body,
            self.res.headers
        );
        assert_eq!(
            self.res.json()["error"],
            code,
            "{}: {}",
            self.what(),
            self.res.body
        );
        assert_eq!(
            self.res.header("content-type"),
            Some("application/json"),
            "{}",
            self.what()
        );
        if status == 401 {
            assert!(
                self.res
                    .header("www-authenticate")
                    .is_some_and(|v| v.starts_with("Bearer")),
                "{}: 401 without a Bearer challenge: {:?}",
                self.what(),
                self.res.headers
            );
        }
        assert_eq!(
            self.reached,
            0,
            "{}: a refused request reached the upstream",
            self.what()
        );
        self
    }

    /// The JSON `message` of a refusal.
    fn message(&self) -> String {
        self.res.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// A `providers:` block trusting the Better Auth at `url` by its JWKS,
/// optionally binding its JWTs to sessions with `session_claim`.
fn provider_yaml(url: &str, session_claim: Option<&str>) -> String {
    let mut y = format!(
        "providers:
  - name: better-auth
    issuer: {url}
    audiences: [{url}]
    jwks_uri: {url}/api/auth/jwks
"
    );
    if let Some(c) = session_claim {
        y.push_str(&format!("    session_claim: {c}\n"));
    }
    y
}

/// A `session:` block reading Better Auth's tables at `$DATABASE_URL`.
fn postgres_session_yaml() -> String {
    format!(
        "session:
  postgres: {{ url_env: DATABASE_URL }}
  cache_ttl: {}s
",
        CACHE_TTL.as_secs()
    )
}

/// Better Auth on the test's own database, with `tweak` applied.
fn better_auth(db: &TestDb, tweak: impl FnOnce(&mut BetterAuthOpts)) -> BetterAuth {
    let mut opts = BetterAuthOpts {
        database_url: Some(db.url.clone()),
        ..BetterAuthOpts::default()
    };
    tweak(&mut opts);
    BetterAuth::start(opts)
}

/// The same cookie under Better Auth's HTTPS name.
fn secure_cookie(cookie: &str) -> String {
    let (_, value) = cookie.split_once('=').unwrap();
    format!("{SECURE_COOKIE}={value}")
}

/// One column of one row, as text.
fn sql_value(db: &TestDb, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            &db.name,
            "-tA",
            "-c",
            sql,
        ])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Runs `gatehouse <args>` with only `env`; returns (exit code, stdout, stderr).
fn gatehouse_cli(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = Command::new(gatehouse_bin())
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run gatehouse");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------------------
// Zero config: only BETTER_AUTH_URL.
// ---------------------------------------------------------------------------

/// With only `BETTER_AUTH_URL` (no config file, no secret) a browser's
/// session cookie — under either of Better Auth's cookie names — and a
/// session bearer token are looked up through `get-session`. A session
/// signed out before gatehouse saw it is refused at once; one it has seen
/// is refused once the default `cache_ttl` (30s) has passed: this test
/// waits for that rather than configuring a shorter one, so it checks the
/// zero-config default itself.
#[test]
fn zero_config_looks_up_session_cookies_and_tokens_through_get_session() {
    let ba = BetterAuth::start(BetterAuthOpts::default());
    let ann = ba.sign_up("ann@example.com", PASSWORD, "Ann Example");
    let bo = ba.sign_up("bo@example.com", PASSWORD, "Bo Example");
    let ann_jwt = ba.jwt(&ann.cookie);
    let s = Stack::start(None, &[("BETTER_AUTH_URL", ba.url.as_str())]);

    let ann_secure = secure_cookie(&ann.cookie);
    let ann_token = cookie_value(&ann.cookie);
    for door in DOORS {
        // A browser request: the session cookie and nothing else.
        s.cookie(door, "/dashboard", &ann.cookie)
            .allowed_as(&ann.user_id)
            .has("x-user-email", Some("ann@example.com"))
            .has("x-user-name", Some("Ann Example"));
        // The same session under the name Better Auth gives it on HTTPS.
        s.cookie(door, "/dashboard", &ann_secure)
            .allowed_as(&ann.user_id)
            .has("x-user-email", Some("ann@example.com"));
        // The session token as a bearer token (Better Auth's bearer plugin).
        s.bearer(door, "/dashboard", &ann_token)
            .allowed_as(&ann.user_id);
        // JWTs keep working next to sessions.
        s.bearer(door, "/dashboard", &ann_jwt)
            .allowed_as(&ann.user_id)
            .has("x-user-name", Some("Ann Example"));
        s.cookie(door, "/dashboard", &bo.cookie)
            .allowed_as(&bo.user_id);
    }
    assert!(
        ba.get_session_calls() >= 1,
        "gatehouse never asked get-session"
    );

    // A value that names no session is refused under the HTTPS name too.
    for door in DOORS {
        s.cookie(
            door,
            "/dashboard",
            &format!("{SECURE_COOKIE}=not-a-session-token"),
        )
        .denied(401, "session_invalid");
    }

    // Signed out before gatehouse ever saw it: refused at once, under
    // both names and as a bearer token.
    let bo_second = ba.sign_in("bo@example.com", PASSWORD);
    ba.sign_out(&bo_second);
    for door in DOORS {
        s.cookie(door, "/dashboard", &bo_second)
            .denied(401, "session_invalid");
        s.cookie(door, "/dashboard", &secure_cookie(&bo_second))
            .denied(401, "session_invalid");
        s.bearer(door, "/dashboard", &cookie_value(&bo_second))
            .denied(401, "session_invalid");
        // bo's other session is untouched.
        s.cookie(door, "/dashboard", &bo.cookie)
            .allowed_as(&bo.user_id);
    }

    // Signed out after gatehouse cached it: refused within the default
    // cache_ttl of 30 seconds. Each presented form is its own cache entry,
    // cached when first seen, so each is waited for.
    ba.sign_out(&ann.cookie);
    let signed_out = Instant::now();
    let forms = [
        Cred::Cookie(ann.cookie.clone()),
        Cred::Cookie(ann_secure.clone()),
        Cred::Bearer(ann_token.clone()),
    ];
    s.settle(
        Duration::from_secs(45),
        "ann's signed-out session refused",
        || forms.iter().all(|cred| s.status("/dashboard", cred) == 401),
    );
    let took = signed_out.elapsed();
    assert!(
        took <= Duration::from_secs(33),
        "a signed-out session was allowed for {took:?}; the default cache_ttl is 30s"
    );
    for door in DOORS {
        s.cookie(door, "/dashboard", &ann.cookie)
            .denied(401, "session_invalid");
        s.cookie(door, "/dashboard", &ann_secure)
            .denied(401, "session_invalid");
        s.bearer(door, "/dashboard", &ann_token)
            .denied(401, "session_invalid");
    }
}

/// With `BETTER_AUTH_SECRET` next to `BETTER_AUTH_URL` the cookie's
/// signature is checked first: a forged one never reaches `get-session`.
#[test]
fn zero_config_with_the_secret_refuses_forged_cookies_without_asking() {
    let ba = BetterAuth::start(BetterAuthOpts::default());
    let ann = ba.sign_up("ann@example.com", PASSWORD, "Ann Example");
    let s = Stack::start(
        None,
        &[
            ("BETTER_AUTH_URL", ba.url.as_str()),
            ("BETTER_AUTH_SECRET", ba.secret.as_str()),
        ],
    );
    for door in DOORS {
        s.cookie(door, "/dashboard", &ann.cookie)
            .allowed_as(&ann.user_id);
        s.cookie(door, "/dashboard", &secure_cookie(&ann.cookie))
            .allowed_as(&ann.user_id);
    }
    let calls = ba.get_session_calls();
    assert!(calls >= 1, "gatehouse never asked get-session");

    let forged = cookie_for(&forge_signature(&cookie_value(&ann.cookie)));
    let unsigned = cookie_for(cookie_value(&ann.cookie).split_once('.').unwrap().0);
    for door in DOORS {
        for cookie in [&forged, &secure_cookie(&forged), &unsigned] {
            s.cookie(door, "/dashboard", cookie)
                .denied(401, "session_invalid");
        }
    }
    assert_eq!(
        ba.get_session_calls(),
        calls,
        "a forged or unsigned cookie reached get-session"
    );
}

/// `check-config` with only `BETTER_AUTH_URL` prints the session lookup it
/// derives, and the default token sources that feed it.
#[test]
fn zero_config_check_config_shows_the_derived_session() {
    let (code, stdout, stderr) = gatehouse_cli(
        &["check-config"],
        &[("BETTER_AUTH_URL", "http://127.0.0.1:3000/")],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&stdout).unwrap();
    assert_eq!(
        v["session"]["introspect_url"].as_str(),
        Some("http://127.0.0.1:3000/api/auth/get-session"),
        "{stdout}"
    );
    let sources = serde_yaml_ng::to_string(&v["token_sources"]).unwrap();
    let auth = sources.find("authorization");
    let plain = sources.find("- cookie: better-auth.session_token");
    let secure = sources.find(&format!("cookie: {SECURE_COOKIE}"));
    assert!(
        auth.is_some() && plain.is_some() && secure.is_some() && auth < plain && plain < secure,
        "token_sources should be authorization, then both session cookies:\n{sources}"
    );
}

// ---------------------------------------------------------------------------
// A session credential with nowhere to look it up.
// ---------------------------------------------------------------------------

/// JWTs only (a JWKS provider, no `session`, no `BETTER_AUTH_URL`): a
/// session cookie or session bearer token is 401 `session_invalid`, and
/// the message says to configure `session`.
#[test]
fn a_session_credential_without_a_session_lookup_is_session_invalid_naming_session() {
    let ba = BetterAuth::start(BetterAuthOpts::default());
    let ann = ba.sign_up("ann@example.com", PASSWORD, "Ann Example");
    let ann_jwt = ba.jwt(&ann.cookie);
    let s = Stack::start(Some(&provider_yaml(&ba.url, None)), &[]);

    let creds = [
        Cred::Cookie(ann.cookie.clone()),
        Cred::Cookie(secure_cookie(&ann.cookie)),
        Cred::Bearer(cookie_value(&ann.cookie)),
    ];
    for door in DOORS {
        s.bearer(door, "/dashboard", &ann_jwt)
            .allowed_as(&ann.user_id);
        for cred in &creds {
            let a = s.ask(door, "/dashboard", cred);
            a.denied(401, "session_invalid");
            let message = a.message();
            assert!(
                message.contains("session"),
                "{:?} {}: the message should say to configure session: {message:?}",
                door,
                cred.kind()
            );
        }
    }
    assert_eq!(
        ba.get_session_calls(),
        0,
        "nothing is configured to ask Better Auth"
    );
}

// ---------------------------------------------------------------------------
// JWTs bound to their session.
// ---------------------------------------------------------------------------

/// `session_claim: sid`: Better Auth's JWT (with `definePayload` adding
/// `sid: session.id`) is good while its session row lives and has not
/// expired; signed out or expired, it is 401 `session_invalid`, and other
/// sessions of the same user are unaffected. The same issuer's JWT without
/// `sid` — minted by a second Better Auth process on the same database,
/// secret and base URL, without `definePayload` — is 401 `token_invalid`.
#[test]
fn sid_bound_jwts_live_and_die_with_their_session() {
    let db = TestDb::create();
    let ba = better_auth(&db, |o| o.sid_claim = true);
    // The signing key is made on first use; make it before the second
    // server starts so both sign with it.
    let keys = ba.jwks();
    assert_eq!(keys["keys"].as_array().map(Vec::len), Some(1), "{keys}");

    let ann = ba.sign_up("ann@example.com", PASSWORD, "Ann Example");
    let bo = ba.sign_up("bo@example.com", PASSWORD, "Bo Example");
    let ann_jwt = ba.jwt(&ann.cookie);
    let bo_jwt = ba.jwt(&bo.cookie);
    let ann_sid = ba.session_id(&ann.cookie);
    assert_eq!(jwt_payload(&ann_jwt)["sid"], ann_sid.as_str());
    assert_eq!(jwt_payload(&ann_jwt)["sub"], ann.user_id.as_str());
    // A second session of ann's, and its own JWT.
    let ann_phone = ba.sign_in("ann@example.com", PASSWORD);
    let ann_phone_jwt = ba.jwt(&ann_phone);
    assert_ne!(jwt_payload(&ann_phone_jwt)["sid"], ann_sid.as_str());

    // Same database, secret and issuer, no definePayload: no sid.
    let plain = better_auth(&db, |o| o.base_url = Some(ba.url.clone()));
    let ann_plain_cookie = plain.sign_in("ann@example.com", PASSWORD);
    let ann_plain_jwt = plain.jwt(&ann_plain_cookie);
    let payload = jwt_payload(&ann_plain_jwt);
    assert!(payload.get("sid").is_none(), "{payload}");
    assert_eq!(payload["iss"], ba.url.as_str());
    assert_eq!(payload["sub"], ann.user_id.as_str());
    assert_eq!(
        jwt_header(&ann_plain_jwt)["kid"],
        jwt_header(&ann_jwt)["kid"]
    );

    let config = format!(
        "{}{}",
        provider_yaml(&ba.url, Some("sid")),
        postgres_session_yaml()
    );
    let s = Stack::start(
        Some(&config),
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("BETTER_AUTH_SECRET", ba.secret.as_str()),
        ],
    );

    for door in DOORS {
        s.bearer(door, "/dashboard", &ann_jwt)
            .allowed_as(&ann.user_id)
            .has("x-user-email", Some("ann@example.com"));
        s.bearer(door, "/dashboard", &ann_phone_jwt)
            .allowed_as(&ann.user_id);
        s.bearer(door, "/dashboard", &bo_jwt)
            .allowed_as(&bo.user_id);
        // Verified signature, right issuer, but not bound to a session.
        s.bearer(door, "/dashboard", &ann_plain_jwt)
            .denied(401, "token_invalid");
    }

    // Signed out: its JWT is refused within cache_ttl; the other session's
    // JWT keeps working.
    ba.sign_out(&ann.cookie);
    assert_eq!(
        sql_value(
            &db,
            &format!("SELECT count(*) FROM \"session\" WHERE id = '{ann_sid}'")
        ),
        "0",
        "Better Auth's sign-out deletes the session row"
    );
    let signed_out = Instant::now();
    let ann_cred = Cred::Bearer(ann_jwt.clone());
    s.settle(SETTLE, "a signed-out session's JWT refused", || {
        s.status("/dashboard", &ann_cred) == 401
    });
    assert!(signed_out.elapsed() <= CACHE_TTL + Duration::from_secs(3));
    for door in DOORS {
        s.bearer(door, "/dashboard", &ann_jwt)
            .denied(401, "session_invalid");
        s.bearer(door, "/dashboard", &ann_phone_jwt)
            .allowed_as(&ann.user_id);
    }

    // Expired ("expiresAt" in the past) while the row is still there.
    let bo_sid = jwt_payload(&bo_jwt)["sid"].as_str().unwrap().to_owned();
    db.exec(&format!(
        "UPDATE \"session\" SET \"expiresAt\" = now() - interval '1 minute' WHERE id = '{bo_sid}'"
    ));
    let bo_cred = Cred::Bearer(bo_jwt.clone());
    s.settle(SETTLE, "an expired session's JWT refused", || {
        s.status("/dashboard", &bo_cred) == 401
    });
    for door in DOORS {
        s.bearer(door, "/dashboard", &bo_jwt)
            .denied(401, "session_invalid");
        s.bearer(door, "/dashboard", &ann_plain_jwt)
            .denied(401, "token_invalid");
    }
}

// ---------------------------------------------------------------------------
// Bans.
// ---------------------------------------------------------------------------

/// With `session.postgres` (`check_banned` on by default) a banned user is
/// 403 `forbidden` (reason `user_banned`) for JWTs and sessions alike, and
/// let in again without a restart once unbanned or once the ban expires.
///
/// Better Auth's `admin/ban-user` deletes every session of the user, so
/// over HTTP only the JWT outlives the ban; a ban that leaves the sessions
/// in place is written with SQL to show sessions are refused too.
#[test]
fn banned_users_are_refused_until_unbanned_or_the_ban_expires() {
    let db = TestDb::create();
    let ba = better_auth(&db, |o| {
        o.admin_plugin = true;
        o.admin_emails = vec!["root@example.com".to_owned()];
    });
    let root = ba.sign_up("root@example.com", PASSWORD, "Root");
    assert_eq!(ba.session(&root.cookie)["user"]["role"], "admin");
    let eve = ba.sign_up("eve@example.com", PASSWORD, "Eve Example");
    let eve_jwt = ba.jwt(&eve.cookie);
    assert_eq!(
        sql_value(
            &db,
            &format!("SELECT banned FROM \"user\" WHERE id = '{}'", eve.user_id)
        ),
        "f"
    );

    let config = format!(
        "{}{}",
        provider_yaml(&ba.url, None),
        postgres_session_yaml()
    );
    let s = Stack::start(
        Some(&config),
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("BETTER_AUTH_SECRET", ba.secret.as_str()),
        ],
    );
    let jwt = Cred::Bearer(eve_jwt.clone());
    for door in DOORS {
        s.bearer(door, "/dashboard", &eve_jwt)
            .allowed_as(&eve.user_id);
        s.cookie(door, "/dashboard", &eve.cookie)
            .allowed_as(&eve.user_id);
    }

    // 1. Banned in the table, sessions kept: JWT and session both 403.
    db.exec(&format!(
        "UPDATE \"user\" SET banned = true, \"banReason\" = 'spam', \"banExpires\" = NULL \
         WHERE id = '{}'",
        eve.user_id
    ));
    s.settle(SETTLE, "a banned user's JWT refused", || {
        s.status("/dashboard", &jwt) == 403
    });
    for door in DOORS {
        s.bearer(door, "/dashboard", &eve_jwt)
            .denied(403, "forbidden");
        s.cookie(door, "/dashboard", &eve.cookie)
            .denied(403, "forbidden");
        // Nobody else is affected.
        s.cookie(door, "/dashboard", &root.cookie)
            .allowed_as(&root.user_id);
    }
    // Each refusal counted once: through Envoy the JWT and the session; over
    // HTTP those two and the settling request that first saw the ban.
    let metrics = s.metrics();
    for (door, refused) in [("grpc", 2.0), ("http", 3.0)] {
        assert_eq!(
            common::metrics::decisions(&metrics, door, "deny", "user_banned"),
            refused,
            "user_banned decisions for {door}:\n{metrics}"
        );
    }
    assert!(s.log().contains("user_banned"), "{}", s.log());

    // Unbanned through Better Auth: let in again, no restart.
    ba.unban(&root.cookie, &eve.user_id);
    s.settle(SETTLE, "an unbanned user's JWT allowed", || {
        s.status("/dashboard", &jwt) == 200
    });
    for door in DOORS {
        s.bearer(door, "/dashboard", &eve_jwt)
            .allowed_as(&eve.user_id);
        s.cookie(door, "/dashboard", &eve.cookie)
            .allowed_as(&eve.user_id);
    }

    // 2. Banned through Better Auth: it deletes eve's sessions and refuses
    // her sign-in; her unexpired JWT is 403.
    ba.ban(&root.cookie, &eve.user_id, None);
    assert_eq!(
        sql_value(
            &db,
            &format!(
                "SELECT count(*) FROM \"session\" WHERE \"userId\" = '{}'",
                eve.user_id
            )
        ),
        "0",
        "Better Auth's ban-user deletes the user's sessions"
    );
    let body = serde_json::json!({"email": "eve@example.com", "password": PASSWORD});
    let refused = ba.call("POST", "/api/auth/sign-in/email", &[], Some(&body));
    assert_eq!(refused.status, 403, "{}", refused.body);
    // The ban and the cookie's session are cached apart, each for cache_ttl
    // from when it was last fetched: wait for both.
    let eve_cookie = Cred::Cookie(eve.cookie.clone());
    s.settle(
        SETTLE,
        "a banned user's JWT and deleted session refused",
        || s.status("/dashboard", &jwt) == 403 && s.status("/dashboard", &eve_cookie) == 401,
    );
    for door in DOORS {
        s.bearer(door, "/dashboard", &eve_jwt)
            .denied(403, "forbidden");
        s.cookie(door, "/dashboard", &eve.cookie)
            .denied(401, "session_invalid");
    }
    ba.unban(&root.cookie, &eve.user_id);
    s.settle(SETTLE, "an unbanned user's JWT allowed", || {
        s.status("/dashboard", &jwt) == 200
    });
    let eve_again = ba.sign_in("eve@example.com", PASSWORD);
    for door in DOORS {
        s.bearer(door, "/dashboard", &eve_jwt)
            .allowed_as(&eve.user_id);
        s.cookie(door, "/dashboard", &eve_again)
            .allowed_as(&eve.user_id);
    }

    // 3. A ban that expires ("banExpires"): refused until then, let in
    // after it without anyone unbanning.
    let ban_for = Duration::from_secs(8);
    let banned_at = Instant::now();
    ba.ban(&root.cookie, &eve.user_id, Some(ban_for));
    s.settle(SETTLE, "a temporarily banned user's JWT refused", || {
        s.status("/dashboard", &jwt) == 403
    });
    for door in DOORS {
        s.bearer(door, "/dashboard", &eve_jwt)
            .denied(403, "forbidden");
    }
    assert!(
        banned_at.elapsed() < ban_for,
        "the machine is too slow to see the ban before it expires"
    );
    s.settle(ban_for + SETTLE, "an expired ban lifted", || {
        s.status("/dashboard", &jwt) == 200
    });
    assert!(
        banned_at.elapsed() >= ban_for - Duration::from_millis(500),
        "let in {:?} into a ban of {ban_for:?}",
        banned_at.elapsed()
    );
    for door in DOORS {
        s.bearer(door, "/dashboard", &eve_jwt)
            .allowed_as(&eve.user_id);
    }
}

// ---------------------------------------------------------------------------
// Organizations.
// ---------------------------------------------------------------------------

/// Who asks for which path, and the organization and role the
/// application gets when admitted (`None`: 403).
type OrgCase<'a> = (&'a SignedUp, String, Option<(&'a str, &'a str)>);

/// The organization config of the tests: four rules over
/// `/orgs/{org_id}/…` and the organization claims as identity headers.
fn organization_yaml(url: &str) -> String {
    format!(
        "{}{}identity_headers:
  x-user-id: sub
  x-org-id: org_id
  x-org-role: org_role
  x-active-org: active_organization_id
rules:
  - match: {{ path: \"/orgs/{{org_id}}/admin/**\" }}
    organization: {{ param: org_id, roles: [owner, admin] }}
  - match: {{ path: \"/orgs/{{org_id}}/billing/**\" }}
    organization: {{ param: org_id, roles: [owner] }}
  - match: {{ path: \"/orgs/{{org_id}}/staff/**\" }}
    organization: {{ param: org_id, roles: [member] }}
  - match: {{ path: \"/orgs/{{org_id}}/**\" }}
    organization: {{ param: org_id }}
default_access: authenticated
",
        provider_yaml(url, None),
        postgres_session_yaml()
    )
}

/// Membership in the organization a path names, with a role from the
/// rule's list (`"member".role` may hold several, comma-separated), for
/// session cookies and JWTs through both doors; the application receives
/// the organization and role, and the session's active organization.
/// Membership, roles and the active organization are all made through
/// Better Auth's organization plugin over HTTP.
#[test]
fn organization_rules_admit_members_by_role_and_pass_the_organization_on() {
    let db = TestDb::create();
    let ba = better_auth(&db, |o| o.organization_plugin = true);
    let olive = ba.sign_up("olive@example.com", PASSWORD, "Olive Owner");
    let adam = ba.sign_up("adam@example.com", PASSWORD, "Adam Admin");
    let mia = ba.sign_up("mia@example.com", PASSWORD, "Mia Member");
    let otto = ba.sign_up("otto@example.com", PASSWORD, "Otto Outsider");
    let acme = ba.create_org(&olive.cookie, "Acme", "acme");
    let adam_role = ba.add_member(
        &olive.cookie,
        &acme,
        &adam.cookie,
        "adam@example.com",
        &["admin", "member"],
    );
    assert_eq!(adam_role, "admin,member");
    let mia_role = ba.add_member(
        &olive.cookie,
        &acme,
        &mia.cookie,
        "mia@example.com",
        &["member"],
    );
    assert_eq!(mia_role, "member");
    let globex = ba.create_org(&otto.cookie, "Globex", "globex");
    assert_eq!(
        sql_value(
            &db,
            &format!(
                "SELECT role FROM \"member\" WHERE \"organizationId\" = '{acme}' AND \"userId\" = '{}'",
                adam.user_id
            )
        ),
        "admin,member"
    );

    let s = Stack::start(
        Some(&organization_yaml(&ba.url)),
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("BETTER_AUTH_SECRET", ba.secret.as_str()),
        ],
    );
    let creds = |u: &SignedUp| {
        [
            Cred::Cookie(u.cookie.clone()),
            Cred::Bearer(ba.jwt(&u.cookie)),
        ]
    };

    // (who, path, the organization and role the application gets when admitted)
    let admin = |org: &str| format!("/orgs/{org}/admin/settings");
    let billing = |org: &str| format!("/orgs/{org}/billing/invoices");
    let staff = |org: &str| format!("/orgs/{org}/staff/rota");
    let projects = |org: &str| format!("/orgs/{org}/projects/1");
    let cases: Vec<OrgCase<'_>> = vec![
        (&olive, admin(&acme), Some((acme.as_str(), "owner"))),
        (&olive, billing(&acme), Some((acme.as_str(), "owner"))),
        (&olive, staff(&acme), None),
        (&olive, projects(&acme), Some((acme.as_str(), "owner"))),
        (&adam, admin(&acme), Some((acme.as_str(), "admin,member"))),
        (&adam, billing(&acme), None),
        (&adam, staff(&acme), Some((acme.as_str(), "admin,member"))),
        (
            &adam,
            projects(&acme),
            Some((acme.as_str(), "admin,member")),
        ),
        (&mia, admin(&acme), None),
        (&mia, billing(&acme), None),
        (&mia, staff(&acme), Some((acme.as_str(), "member"))),
        (&mia, projects(&acme), Some((acme.as_str(), "member"))),
        (&otto, projects(&acme), None),
        (&otto, admin(&globex), Some((globex.as_str(), "owner"))),
        (&mia, projects(&globex), None),
        (&olive, projects("no-such-org"), None),
    ];
    for (who, path, admitted) in &cases {
        for cred in creds(who) {
            for door in DOORS {
                let a = s.ask(door, path, &cred);
                match admitted {
                    Some((org, role)) => {
                        a.allowed_as(&who.user_id)
                            .has("x-org-id", Some(org))
                            .has("x-org-role", Some(role));
                    }
                    None => {
                        a.denied(403, "forbidden");
                    }
                }
            }
        }
    }

    // Outside organization routes there is no organization; a session's
    // active organization comes along (Better Auth made acme olive's when
    // she created it), a JWT has none. The client's own copies of these
    // headers never reach the application.
    let spoof = [
        ("x-org-id", "evil-org"),
        ("x-org-role", "owner"),
        ("x-active-org", "evil-org"),
    ];
    for door in DOORS {
        for cred in creds(&olive) {
            let (name, value) = cred.header();
            let mut headers = vec![(name, value.as_str())];
            headers.extend(spoof);
            let a = s.get(door, "/dashboard", &headers);
            a.allowed_as(&olive.user_id)
                .has("x-org-id", None)
                .has("x-org-role", None);
            match cred {
                Cred::Cookie(_) => a.has("x-active-org", Some(&acme)),
                Cred::Bearer(_) => a.has("x-active-org", None),
            };
        }
        let (name, value) = Cred::Cookie(mia.cookie.clone()).header();
        let mut headers = vec![(name, value.as_str())];
        headers.extend(spoof);
        s.get(door, &projects(&acme), &headers)
            .allowed_as(&mia.user_id)
            .has("x-org-id", Some(&acme))
            .has("x-org-role", Some("member"))
            .has("x-active-org", Some(&acme));
        s.get(door, &admin(&acme), &headers)
            .denied(403, "forbidden");
    }

    // The active organization follows Better Auth: a new organization
    // becomes active, set-active switches back, and unsets it.
    let olive_cookie = Cred::Cookie(olive.cookie.clone());
    let active = |s: &Stack| {
        s.ask(Door::Http, "/dashboard", &olive_cookie)
            .identity("x-active-org")
    };
    let initech = ba.create_org(&olive.cookie, "Initech", "initech");
    s.settle(SETTLE, "a new organization active", || {
        active(&s).as_deref() == Some(initech.as_str())
    });
    ba.set_active_org(&olive.cookie, Some(&acme));
    s.settle(SETTLE, "set-active to acme seen", || {
        active(&s).as_deref() == Some(acme.as_str())
    });
    for door in DOORS {
        s.ask(door, "/dashboard", &olive_cookie)
            .allowed_as(&olive.user_id)
            .has("x-active-org", Some(&acme));
        s.ask(door, &projects(&initech), &olive_cookie)
            .allowed_as(&olive.user_id)
            .has("x-org-id", Some(&initech))
            .has("x-org-role", Some("owner"));
    }
    ba.set_active_org(&olive.cookie, None);
    s.settle(SETTLE, "active organization unset", || active(&s).is_none());

    // Removed from the organization: refused there.
    ba.remove_member(&olive.cookie, &acme, "mia@example.com");
    let mia_creds = creds(&mia);
    s.settle(SETTLE, "a removed member refused", || {
        s.status(&projects(&acme), &mia_creds[0]) == 403
    });
    for cred in &mia_creds {
        for door in DOORS {
            s.ask(door, &projects(&acme), cred).denied(403, "forbidden");
            s.ask(door, &staff(&acme), cred).denied(403, "forbidden");
            s.ask(door, "/dashboard", cred).allowed_as(&mia.user_id);
        }
    }
}

/// Organization rules need Better Auth's tables: with the introspection
/// backend `check-config` and `serve` refuse the config (exit 64) and name
/// the rule; the same rules with `session.postgres` are accepted.
#[test]
fn organization_rules_with_introspection_are_refused_naming_the_rule() {
    let rules = "rules:
  - match: { path: /public }
    access: public
  - match: { path: \"/orgs/{org_id}/**\" }
    organization: { param: org_id, roles: [owner] }
";
    let introspect = write_config(&format!(
        "session:\n  introspect_url: http://127.0.0.1:3000/api/auth/get-session\n{rules}"
    ));
    let introspect = introspect.to_str().unwrap();
    let (code, stdout, stderr) = gatehouse_cli(&["check-config", "--config", introspect], &[]);
    assert_eq!(code, Some(64), "{stdout}{stderr}");
    assert!(stderr.contains("rules[1].organization"), "{stderr}");

    let (grpc, http) = (free_addr(), free_addr());
    let mut serve = Command::new(gatehouse_bin())
        .args(["serve", "--config", introspect])
        .env_clear()
        .env("GATEHOUSE_GRPC_ADDR", grpc.to_string())
        .env("GATEHOUSE_HTTP_ADDR", http.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gatehouse serve");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = serve.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = serve.kill();
            let _ = serve.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut e) = serve.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(64),
        "serve with organization rules on introspection: {stderr}"
    );
    assert!(stderr.contains("rules[1].organization"), "{stderr}");
    assert!(
        std::net::TcpStream::connect_timeout(&http, Duration::from_millis(200)).is_err(),
        "serve listened anyway"
    );

    let postgres = write_config(&format!(
        "session:\n  postgres: {{ url_env: DATABASE_URL }}\n{rules}"
    ));
    let (code, stdout, stderr) = gatehouse_cli(
        &["check-config", "--config", postgres.to_str().unwrap()],
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")],
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("organization"), "{stdout}");
}

// ---------------------------------------------------------------------------
// Postgres going away.
// ---------------------------------------------------------------------------

/// Postgres unreachable (a proxy in front of it cut): sessions and
/// sid-bound JWTs are 503 `session_unavailable`, never allowed and never
/// 401; when it is back they are allowed again without a restart.
#[test]
fn postgres_going_away_is_503_session_unavailable_until_it_is_back() {
    let db = TestDb::create();
    let ba = better_auth(&db, |o| o.sid_claim = true);
    let ann = ba.sign_up("ann@example.com", PASSWORD, "Ann Example");
    let bo = ba.sign_up("bo@example.com", PASSWORD, "Bo Example");
    let ann_jwt = ba.jwt(&ann.cookie);
    let bo_jwt = ba.jwt(&bo.cookie);
    let proxy = TcpProxy::start(PG.parse::<SocketAddr>().unwrap());
    let config = format!(
        "{}{}",
        provider_yaml(&ba.url, Some("sid")),
        postgres_session_yaml()
    );
    let s = Stack::start(
        Some(&config),
        &[
            ("DATABASE_URL", db.url_via(proxy.addr).as_str()),
            ("BETTER_AUTH_SECRET", ba.secret.as_str()),
        ],
    );
    for door in DOORS {
        s.cookie(door, "/dashboard", &ann.cookie)
            .allowed_as(&ann.user_id);
        s.bearer(door, "/dashboard", &ann_jwt)
            .allowed_as(&ann.user_id);
    }

    proxy.cut();
    // What was looked up before may be answered from the cache for cache_ttl.
    std::thread::sleep(CACHE_TTL + Duration::from_millis(500));
    for door in DOORS {
        s.cookie(door, "/dashboard", &ann.cookie)
            .denied(503, "session_unavailable");
        s.bearer(door, "/dashboard", &ann_jwt)
            .denied(503, "session_unavailable");
        // Never seen before: no cache to fall back on.
        s.cookie(door, "/dashboard", &bo.cookie)
            .denied(503, "session_unavailable");
        s.bearer(door, "/dashboard", &bo_jwt)
            .denied(503, "session_unavailable");
    }

    proxy.restore();
    let ann_cred = Cred::Cookie(ann.cookie.clone());
    s.settle(
        Duration::from_secs(15),
        "sessions allowed once Postgres is back",
        || s.status("/dashboard", &ann_cred) == 200,
    );
    for door in DOORS {
        s.cookie(door, "/dashboard", &ann.cookie)
            .allowed_as(&ann.user_id);
        s.bearer(door, "/dashboard", &ann_jwt)
            .allowed_as(&ann.user_id);
        s.cookie(door, "/dashboard", &bo.cookie)
            .allowed_as(&bo.user_id);
        s.bearer(door, "/dashboard", &bo_jwt)
            .allowed_as(&bo.user_id);
    }
}
