//! Revocation across replicas, against a real Redis and real `gatehouse
//! serve` processes: a revocation by subject, subject-before-a-time, jti,
//! session id and session token reaches every replica within a second,
//! including tokens already in its verified-token cache, on both doors
//! (HTTP `/auth` and gRPC `Check`), and survives a replica restart; with
//! Redis down the last list holds and `revoke` fails naming Redis; after
//! Redis comes back a new revocation reaches everyone and a replica that
//! was cut off catches up from its last id; a thousand short-lived
//! revocations leave nothing behind in Redis.
//!
//! The shared Redis at 127.0.0.1:6379 serves the tests that do not stop
//! it, each under a key prefix of its own; the others start their own
//! `redis-server` on a free port.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::envoy::{TEST_SECRET, hs256, write_config};
use crate::common::jwks_server::JwksServer;
use crate::common::metrics;
use crate::common::redis_server::{self, RedisServer, SHARED_REDIS_URL, keys_under, unique_prefix};
use crate::common::tcp_proxy::TcpProxy;
use crate::common::{Gatehouse, gatehouse_bin, http_request};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use gatehouse::internals::admin_api;
use serde_json::{Value, json};

/// A revocation must be in force everywhere this soon after `revoke` returned.
const PROPAGATION: Duration = Duration::from_secs(1);

/// The session the get-session stub vouches for, whatever the token.
const SESSION_ID: &str = "sess-1";
const SESSION_USER: &str = "erin";

/// One replica's config: an HS256 provider, bearer tokens or the Better
/// Auth session cookie (looked up at `session_url`), Redis under `prefix`,
/// the admin API on a port of its own choosing (read from the log).
fn config(prefix: &str, session_url: &str, extra: &str) -> PathBuf {
    write_config(&format!(
        "providers:
  - name: test
    secret_env: GH_TEST_SECRET
token_sources:
  - header: authorization
  - cookie: better-auth.session_token
session:
  introspect_url: {session_url}
  cache_ttl: 60s
default_access: authenticated
shutdown_delay: 0s
redis:
  key_prefix: \"{prefix}\"
  timeout: 250ms
admin:
  addr: 127.0.0.1:0
{extra}"
    ))
}

fn env(redis_url: &str) -> HashMap<String, String> {
    [
        ("GH_TEST_SECRET".to_owned(), TEST_SECRET.to_owned()),
        ("REDIS_URL".to_owned(), redis_url.to_owned()),
    ]
    .into()
}

/// A get-session stub: every token is session `sess-1` of user `erin`.
fn session_stub(rt: &tokio::runtime::Runtime) -> JwksServer {
    rt.block_on(JwksServer::start(json!({
        "session": {
            "id": SESSION_ID,
            "token": "ignored",
            "userId": SESSION_USER,
            "expiresAt": "2099-01-01T00:00:00.000Z",
        },
        "user": {"id": SESSION_USER, "email": "erin@example.com", "name": "Erin"},
    })))
}

/// Several replicas sharing one Redis under one prefix.
struct Fleet {
    redis_url: String,
    prefix: String,
    session_url: String,
    extra: String,
    replicas: Vec<Replica>,
}

struct Replica {
    gatehouse: Gatehouse,
    admin: SocketAddr,
    config: PathBuf,
    redis_url: String,
}

impl Fleet {
    fn start(n: usize, redis_url: &str, prefix: &str, session_url: &str, extra: &str) -> Fleet {
        let mut fleet = Fleet {
            redis_url: redis_url.to_owned(),
            prefix: prefix.to_owned(),
            session_url: session_url.to_owned(),
            extra: extra.to_owned(),
            replicas: Vec::new(),
        };
        for _ in 0..n {
            fleet.add(redis_url);
        }
        fleet
    }

    /// Adds a replica that reaches Redis at `redis_url`.
    fn add(&mut self, redis_url: &str) {
        let config = config(&self.prefix, &self.session_url, &self.extra);
        let gatehouse = Gatehouse::start(Some(&config), &env(redis_url));
        let admin = admin_addr(&gatehouse);
        self.replicas.push(Replica {
            gatehouse,
            admin,
            config,
            redis_url: redis_url.to_owned(),
        });
    }

    /// Stops replica `i` and starts it again on the same addresses.
    fn restart(&mut self, i: usize) {
        let r = &mut self.replicas[i];
        r.gatehouse.proc.signal("TERM");
        assert!(
            r.gatehouse
                .proc
                .wait_exit(Duration::from_secs(15))
                .is_some()
        );
        let (grpc, http) = (r.gatehouse.grpc_addr, r.gatehouse.http_addr);
        r.gatehouse = Gatehouse::start_with_addrs(Some(&r.config), &env(&r.redis_url), grpc, http);
        r.admin = admin_addr(&r.gatehouse);
    }

    fn logs(&self) -> String {
        self.replicas
            .iter()
            .map(|r| r.gatehouse.proc.log_text())
            .collect::<Vec<_>>()
            .join("\n----\n")
    }
}

/// Where the replica's admin API listens, from its log.
fn admin_addr(g: &Gatehouse) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = g.proc.log_text();
        if let Some(addr) = log
            .lines()
            .find(|l| l.contains("admin API listening"))
            .and_then(|l| l.split("admin=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.trim_matches('"').parse().ok())
        {
            return addr;
        }
        assert!(Instant::now() < deadline, "admin API not listening:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A credential as a request carries it.
#[derive(Clone)]
enum Cred {
    Bearer(String),
    Cookie(String),
}

impl Cred {
    fn header(&self) -> (&'static str, String) {
        match self {
            Cred::Bearer(t) => ("authorization", format!("Bearer {t}")),
            Cred::Cookie(t) => ("cookie", format!("better-auth.session_token={t}")),
        }
    }
}

fn token(claims: Value) -> Cred {
    Cred::Bearer(hs256(TEST_SECRET, &claims))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A token for `sub` issued `age` seconds ago, valid five more minutes.
fn user_token(sub: &str, age: i64, extra: Value) -> Cred {
    let mut claims = json!({"sub": sub, "iat": now() - age, "exp": now() + 300});
    if let (Value::Object(c), Value::Object(e)) = (&mut claims, extra) {
        c.extend(e);
    }
    token(claims)
}

/// The HTTP door's answer: status and `x-gatehouse-error`.
fn http_answer(g: &Gatehouse, cred: &Cred) -> (u16, String) {
    let (name, value) = cred.header();
    let res = http_request(
        g.http_addr,
        "GET",
        "/auth",
        &[
            ("x-original-method", "GET"),
            ("x-original-uri", "/api/things"),
            (name, &value),
        ],
    )
    .expect("answer from /auth");
    let code = res.header("x-gatehouse-error").unwrap_or("").to_owned();
    (res.status, code)
}

/// The gRPC door's answer: the `CheckResponse` status code and message
/// (the error code on a deny).
fn grpc_answer(g: &Gatehouse, cred: &Cred) -> (i32, String) {
    let (name, value) = cred.header();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let channel = tonic::transport::Channel::from_shared(format!("http://{}", g.grpc_addr))
            .expect("uri")
            .connect()
            .await
            .expect("gRPC connect");
        let request = CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(Request {
                    http: Some(HttpRequest {
                        method: "GET".into(),
                        path: "/api/things".into(),
                        host: "app.example".into(),
                        headers: [(name.to_owned(), value)].into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        };
        let status = AuthorizationClient::new(channel)
            .check(request)
            .await
            .expect("Check answered")
            .into_inner()
            .status
            .expect("status");
        (status.code, status.message)
    })
}

/// Allowed on both doors of replica `g`.
fn assert_allowed(g: &Gatehouse, cred: &Cred, what: &str) {
    assert_eq!(http_answer(g, cred).0, 200, "{what} over HTTP");
    assert_eq!(grpc_answer(g, cred).0, 0, "{what} over gRPC");
}

/// Denied `token_revoked` on both doors of every replica within `within`.
fn assert_revoked_everywhere(fleet: &Fleet, cred: &Cred, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    for (i, r) in fleet.replicas.iter().enumerate() {
        let g = &r.gatehouse;
        loop {
            let http = http_answer(g, cred);
            let grpc = grpc_answer(g, cred);
            if http == (401, "token_revoked".to_owned()) && grpc == (16, "token_revoked".to_owned())
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: replica {i} still answers HTTP {http:?} / gRPC {grpc:?} {within:?} \
                 after the revocation\n{}",
                fleet.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Runs `gatehouse revoke ARGS` with the replica's config and env.
fn revoke(config: &Path, redis_url: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(gatehouse_bin());
    cmd.arg("revoke").arg("--config").arg(config).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("BETTER_AUTH_") || k.starts_with("GATEHOUSE_") || k == "REDIS_URL" {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env(redis_url));
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run gatehouse revoke");
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        pipe.write_all(text.as_bytes()).expect("stdin");
    }
    child.wait_with_output().expect("revoke output")
}

/// `revoke` succeeded and printed the entry it recorded.
fn revoked(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "revoke failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn admin_revoke(
    admin: SocketAddr,
    selector: admin_api::revoke_request::Selector,
    before: Option<i64>,
) -> Result<admin_api::Revocation, tonic::Status> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut client = admin_api::admin_client::AdminClient::connect(format!("http://{admin}"))
            .await
            .expect("admin API connect");
        client
            .revoke(admin_api::RevokeRequest {
                selector: Some(selector),
                issued_before: before,
                reason: "test".into(),
            })
            .await
            .map(|r| r.into_inner().revocation.expect("entry"))
    })
}

fn scrape(g: &Gatehouse) -> String {
    http_request(g.http_addr, "GET", "/metrics", &[])
        .expect("metrics")
        .body
}

#[test]
fn every_kind_of_revocation_reaches_every_replica_cached_tokens_included() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let stub = session_stub(&rt);
    let prefix = unique_prefix("kinds");
    let mut fleet = Fleet::start(
        3,
        SHARED_REDIS_URL,
        &prefix,
        &stub.url("/api/auth/get-session"),
        "",
    );
    let alice = user_token("alice", 10, json!({}));
    let bob_old = user_token("bob", 600, json!({}));
    let bob_new = user_token("bob", 0, json!({}));
    let carol = user_token("carol", 10, json!({"jti": "carol-token-1"}));
    let carol_other = user_token("carol", 10, json!({"jti": "carol-token-2"}));
    let dave = user_token("dave", 10, json!({"sid": SESSION_ID}));
    let session_a = Cred::Cookie("sessiontokenaaaaaaaaaaaaaaaaaaaa".into());
    let session_b = Cred::Cookie("sessiontokenbbbbbbbbbbbbbbbbbbbb".into());
    let all = [
        &alice,
        &bob_old,
        &bob_new,
        &carol,
        &carol_other,
        &dave,
        &session_a,
        &session_b,
    ];
    // Every credential allowed, and so cached, on every replica.
    for r in &fleet.replicas {
        for cred in all {
            assert_allowed(&r.gatehouse, cred, "before any revocation");
        }
    }
    let (cfg, url) = (fleet.replicas[0].config.clone(), fleet.redis_url.clone());

    // By subject, through the command writing to Redis.
    let e = revoked(&revoke(
        &cfg,
        &url,
        &["--sub", "alice", "--reason", "incident 7"],
        None,
    ));
    assert_eq!(e["kind"], "sub");
    assert_eq!(e["value"], "alice");
    assert_eq!(e["reason"], "incident 7");
    assert_revoked_everywhere(&fleet, &alice, PROPAGATION, "--sub alice");

    // By subject before a time: the old token goes, the new one stays.
    let before = (now() - 300).to_string();
    let e = revoked(&revoke(
        &cfg,
        &url,
        &["--sub", "bob", "--before", &before],
        None,
    ));
    assert!(e["issued_before"].is_string(), "{e}");
    assert_revoked_everywhere(&fleet, &bob_old, PROPAGATION, "--sub bob --before");

    // By jti, through another replica's admin API.
    use admin_api::revoke_request::Selector as S;
    let entry = admin_revoke(
        fleet.replicas[1].admin,
        S::Jti("carol-token-1".into()),
        None,
    )
    .expect("admin Revoke");
    assert_eq!(entry.value, "carol-token-1");
    assert_revoked_everywhere(&fleet, &carol, PROPAGATION, "jti via the admin API");

    // By session token, read from stdin: the session cookie carrying it
    // goes; another token of the same session stays.
    let e = revoked(&revoke(
        &cfg,
        &url,
        &["--session", "-"],
        Some("sessiontokenaaaaaaaaaaaaaaaaaaaa.c2lnbmF0dXJl\n"),
    ));
    assert_eq!(e["kind"], "session");
    assert!(
        !e.to_string().contains("sessiontokenaaaa"),
        "the token itself is never recorded: {e}"
    );
    assert_revoked_everywhere(&fleet, &session_a, PROPAGATION, "--session");

    for r in &fleet.replicas {
        for cred in [&bob_new, &carol_other, &dave, &session_b] {
            assert_allowed(&r.gatehouse, cred, "not revoked");
        }
    }

    // By session id: the session (any of its tokens) and the JWT bound to it.
    revoked(&revoke(&cfg, &url, &["--sid", SESSION_ID], None));
    assert_revoked_everywhere(&fleet, &session_b, PROPAGATION, "--sid (session)");
    assert_revoked_everywhere(&fleet, &dave, PROPAGATION, "--sid (bound JWT)");

    // Every replica enforces the same five entries, and lists them.
    for r in &fleet.replicas {
        let text = scrape(&r.gatehouse);
        let held: f64 = metrics::samples(&text)
            .iter()
            .filter(|s| s.name == "gatehouse_revocations")
            .map(|s| s.value)
            .sum();
        assert_eq!(held, 5.0, "{text}");
        assert_eq!(
            metrics::value(&text, "gatehouse_revocation_following", &[]),
            Some(1.0)
        );
    }
    let listed = revoke(&cfg, &url, &["--list"], None);
    assert_eq!(listed.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&listed.stdout).lines().count(), 5);

    // A restarted replica loads the list before it answers.
    fleet.restart(2);
    let restarted = &fleet.replicas[2].gatehouse;
    for cred in [&alice, &bob_old, &carol, &dave, &session_a, &session_b] {
        assert_eq!(
            http_answer(restarted, cred),
            (401, "token_revoked".to_owned()),
            "after a restart\n{}",
            restarted.proc.log_text()
        );
    }
    assert_allowed(restarted, &bob_new, "after a restart");
    redis_server::clean(SHARED_REDIS_URL, &prefix);
}

#[test]
fn with_redis_down_the_list_holds_writes_fail_and_a_cut_off_replica_catches_up() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let stub = session_stub(&rt);
    let mut redis = RedisServer::start();
    // Replica 1 reaches Redis through a proxy the test can cut.
    let proxy = TcpProxy::start(redis.addr);
    let prefix = unique_prefix("down");
    let mut fleet = Fleet::start(
        1,
        &redis.url(),
        &prefix,
        &stub.url("/api/auth/get-session"),
        "",
    );
    fleet.add(&format!("redis://{}", proxy.addr));
    let alice = user_token("alice", 10, json!({}));
    let bob = user_token("bob", 10, json!({}));
    let carol = user_token("carol", 10, json!({}));
    let dave = user_token("dave", 10, json!({}));
    for r in &fleet.replicas {
        for cred in [&alice, &bob, &carol, &dave] {
            assert_allowed(&r.gatehouse, cred, "before");
        }
    }
    let cfg = fleet.replicas[0].config.clone();
    revoked(&revoke(&cfg, &redis.url(), &["--sub", "alice"], None));
    assert_revoked_everywhere(&fleet, &alice, PROPAGATION, "--sub alice");

    // Redis stops: the list held keeps applying, nothing else changes.
    redis.stop();
    std::thread::sleep(Duration::from_millis(300));
    for r in &fleet.replicas {
        assert_eq!(http_answer(&r.gatehouse, &alice).1, "token_revoked");
        assert_eq!(grpc_answer(&r.gatehouse, &alice).1, "token_revoked");
        assert_allowed(&r.gatehouse, &bob, "with Redis down");
        assert_eq!(
            http_request(r.gatehouse.http_addr, "GET", "/readyz", &[])
                .expect("readyz")
                .status,
            200,
            "readiness never depends on Redis"
        );
    }
    // Writes fail, naming Redis: the command (exit 1) and the admin API.
    let out = revoke(&cfg, &redis.url(), &["--sub", "bob"], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Redis") && stderr.contains("REDIS_URL"),
        "{stderr}"
    );
    use admin_api::revoke_request::Selector as S;
    let refused = admin_revoke(fleet.replicas[0].admin, S::Sub("bob".into()), None)
        .expect_err("the admin API refuses while Redis is down");
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    assert!(refused.message().contains("Redis"), "{}", refused.message());
    let via_admin = revoke(
        &cfg,
        &redis.url(),
        &[
            "--sub",
            "bob",
            "--admin",
            &format!("http://{}", fleet.replicas[0].admin),
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&via_admin.stderr);
    assert_eq!(via_admin.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Redis"), "{stderr}");
    let text = scrape(&fleet.replicas[0].gatehouse);
    assert_eq!(
        metrics::value(&text, "gatehouse_revocation_following", &[]),
        Some(0.0),
        "{text}"
    );

    // Redis is back (empty: it kept nothing): a new revocation reaches everyone.
    redis.restart();
    revoked(&revoke(&cfg, &redis.url(), &["--sub", "bob"], None));
    assert_revoked_everywhere(
        &fleet,
        &bob,
        Duration::from_secs(8),
        "after Redis came back",
    );
    assert_revoked_everywhere(&fleet, &alice, PROPAGATION, "the old list still holds");

    // Replica 1 is cut off; what is written meanwhile reaches it when it
    // reconnects, from its last id.
    proxy.cut();
    std::thread::sleep(Duration::from_millis(300));
    revoked(&revoke(&cfg, &redis.url(), &["--sub", "carol"], None));
    revoked(&revoke(&cfg, &redis.url(), &["--sub", "dave"], None));
    let cut_off = &fleet.replicas[1].gatehouse;
    std::thread::sleep(Duration::from_millis(500));
    assert_allowed(cut_off, &carol, "not seen while cut off");
    assert_eq!(
        http_answer(&fleet.replicas[0].gatehouse, &carol),
        (401, "token_revoked".to_owned())
    );
    proxy.restore();
    assert_revoked_everywhere(&fleet, &carol, Duration::from_secs(8), "caught up");
    assert_revoked_everywhere(&fleet, &dave, PROPAGATION, "caught up");
    let text = scrape(cut_off);
    assert_eq!(
        metrics::value(&text, "gatehouse_revocation_following", &[]),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn a_thousand_short_lived_revocations_leave_nothing_behind() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let stub = session_stub(&rt);
    let prefix = unique_prefix("short");
    let fleet = Fleet::start(
        2,
        SHARED_REDIS_URL,
        &prefix,
        &stub.url("/api/auth/get-session"),
        "revocation:\n  retention: 2s\n",
    );
    let admin = fleet.replicas[0].admin;
    rt.block_on(async {
        let mut client = admin_api::admin_client::AdminClient::connect(format!("http://{admin}"))
            .await
            .expect("admin API connect");
        use admin_api::revoke_request::Selector as S;
        for i in 0..1000 {
            let selector = match i % 4 {
                0 => S::Sub(format!("user{i}")),
                1 => S::Jti(format!("jti{i}")),
                2 => S::Sid(format!("sid{i}")),
                _ => S::SessionToken(format!("token{i}")),
            };
            client
                .revoke(admin_api::RevokeRequest {
                    selector: Some(selector),
                    issued_before: None,
                    reason: String::new(),
                })
                .await
                .unwrap_or_else(|e| panic!("revocation {i}: {e}"));
        }
    });
    let held = |g: &Gatehouse| -> f64 {
        metrics::samples(&scrape(g))
            .iter()
            .filter(|s| s.name == "gatehouse_revocations")
            .map(|s| s.value)
            .sum()
    };
    // Once they can no longer matter: gone from memory and from Redis.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = keys_under(SHARED_REDIS_URL, &prefix);
        let in_memory: Vec<f64> = fleet.replicas.iter().map(|r| held(&r.gatehouse)).collect();
        if left.is_empty() && in_memory.iter().all(|n| *n == 0.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: keys {left:?}, held in memory {in_memory:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn usage_errors_exit_64_and_a_missing_redis_is_named() {
    let prefix = unique_prefix("usage");
    let cfg = config(&prefix, "http://127.0.0.1:9/s", "");
    for args in [
        &["--sub", "a", "--jti", "b"][..],
        &[][..],
        &["--jti", "j", "--before", "1"][..],
        &["--sub", "a", "--before", "next tuesday"][..],
        &["--sub", "a", "--before", &(now() + 86400).to_string()][..],
    ] {
        let out = revoke(&cfg, SHARED_REDIS_URL, args, None);
        assert_eq!(
            out.status.code(),
            Some(64),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // No Redis configured: a usage error that says what to set.
    let mut cmd = Command::new(gatehouse_bin());
    cmd.args(["revoke", "--config"])
        .arg(&cfg)
        .args(["--sub", "a"])
        .env_remove("REDIS_URL")
        .env("GH_TEST_SECRET", TEST_SECRET);
    let out = cmd.output().expect("run revoke");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("REDIS_URL"), "{stderr}");
    // Nothing listens: the admin API cannot be reached, exit 1.
    let refusing = crate::common::ports::closed_port();
    let out = revoke(
        &cfg,
        SHARED_REDIS_URL,
        &[
            "--sub",
            "a",
            "--admin",
            &format!("http://127.0.0.1:{}", refusing.port),
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("admin API"), "{stderr}");
    assert!(keys_under(SHARED_REDIS_URL, &prefix).is_empty());
}

#[test]
fn the_admin_api_under_mtls_takes_only_clients_with_a_certificate() {
    use crate::common::pki::Pki;
    let pki = Pki::new("admin");
    let (ca, cert, key) = pki.write_server(&pki.server(1));
    let client = pki.client(2);
    let client_cert = pki.write("client.pem", &client.cert_pem);
    let client_key = pki.write("client.key", &client.key_pem);
    let prefix = unique_prefix("mtls");
    let config = write_config(&format!(
        "providers:
  - name: test
    secret_env: GH_TEST_SECRET
default_access: authenticated
shutdown_delay: 0s
redis:
  key_prefix: \"{prefix}\"
admin:
  addr: 127.0.0.1:0
  tls:
    cert_file: {}
    key_file: {}
    client_ca_file: {}
",
        cert.display(),
        key.display(),
        ca.display()
    ));
    let g = Gatehouse::start(Some(&config), &env(SHARED_REDIS_URL));
    let admin = admin_addr(&g);
    assert!(
        g.proc.log_text().contains("tls=\"mtls\""),
        "{}",
        g.proc.log_text()
    );
    let url = format!("https://localhost:{}", admin.port());
    let ca_arg = ca.display().to_string();
    let (cert_arg, key_arg) = (
        client_cert.display().to_string(),
        client_key.display().to_string(),
    );
    let with_cert = revoke(
        &config,
        SHARED_REDIS_URL,
        &[
            "--sub",
            "mallory",
            "--admin",
            &url,
            "--admin-ca",
            &ca_arg,
            "--admin-cert",
            &cert_arg,
            "--admin-key",
            &key_arg,
        ],
        None,
    );
    assert_eq!(revoked(&with_cert)["value"], "mallory");
    let mallory = user_token("mallory", 10, json!({}));
    assert_eq!(http_answer(&g, &mallory), (401, "token_revoked".to_owned()));

    let without = revoke(
        &config,
        SHARED_REDIS_URL,
        &["--sub", "trudy", "--admin", &url, "--admin-ca", &ca_arg],
        None,
    );
    let stderr = String::from_utf8_lossy(&without.stderr);
    assert_eq!(without.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("admin API"), "{stderr}");
    let listed = revoke(&config, SHARED_REDIS_URL, &["--list"], None);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(
        text.lines().count(),
        1,
        "only the authenticated write: {text}"
    );
    redis_server::clean(SHARED_REDIS_URL, &prefix);
}
