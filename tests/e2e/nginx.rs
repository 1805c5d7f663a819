//! End to end through a real nginx: client → nginx (`deploy/nginx/nginx.conf`,
//! only ports substituted) → `gatehouse serve` (the built binary) → an echo
//! upstream that shows what it received. Tokens are EdDSA, signed by a key
//! whose JWKS a local server publishes, as Better Auth's `jwt()` plugin does.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::metrics;
use common::{EchoUpstream, Gatehouse, HttpResponse, Nginx, free_addr, http_get, http_request};
use serde_json::{Value, json};

const ISSUER: &str = "https://auth.example.test";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An Ed25519 issuer: signs tokens, publishes its JWKS.
struct Issuer {
    key: Ed25519KeyPair,
    kid: &'static str,
}

impl Issuer {
    fn new(kid: &'static str) -> Issuer {
        Issuer {
            key: Ed25519KeyPair::generate().unwrap(),
            kid,
        }
    }

    fn jwks(&self) -> String {
        json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": self.kid,
            "x": b64(self.key.public_key().as_ref()),
        }]})
        .to_string()
    }

    fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "EdDSA", "kid": self.kid});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self.key.sign(input.as_bytes());
        format!("{input}.{}", b64(sig.as_ref()))
    }

    /// A Better Auth-shaped token for `sub`, valid for `ttl` seconds.
    fn token(&self, sub: &str, ttl: i64) -> String {
        let iat = now() - 5;
        self.sign(&json!({
            "iss": ISSUER, "aud": ISSUER, "sub": sub,
            "email": format!("{sub}@example.test"), "name": format!("User {sub}"),
            "iat": iat, "exp": iat + ttl,
        }))
    }
}

/// A JWKS server on a fixed address (so it can start after gatehouse),
/// answering every request with the same document and counting hits.
struct JwksOn {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
}

impl JwksOn {
    fn start(addr: SocketAddr, doc: String) -> JwksOn {
        let listener = TcpListener::bind(addr).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(AtomicUsize::new(0));
        let (s, h) = (stop.clone(), hits.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                h.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                    doc.len(),
                    doc
                );
            }
        });
        JwksOn { addr, stop, hits }
    }

    fn url(&self) -> String {
        format!("http://{}/api/auth/jwks", self.addr)
    }
}

impl Drop for JwksOn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn write_config(jwks_url: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gatehouse.yaml");
    let yaml = format!(
        r#"providers:
  - name: better-auth
    issuer: {ISSUER}
    audiences: [{ISSUER}]
    jwks_uri: {jwks_url}
rules:
  - match: {{ path_prefix: /open }}
    access: public
  - match: {{ path_prefix: /public }}
    access: public
  - match: {{ path: "/api/{{user_id}}/**" }}
    access: authenticated
    path_claims: {{ user_id: sub }}
default_access: authenticated
"#
    );
    std::fs::write(&path, yaml).unwrap();
    (dir, path)
}

/// Everything running: JWKS, gatehouse, echo upstream, nginx.
struct Stack {
    issuer: Issuer,
    app: EchoUpstream,
    nginx: Nginx,
    gatehouse: Gatehouse,
    _jwks: JwksOn,
    _config: tempfile::TempDir,
}

fn stack() -> Stack {
    let issuer = Issuer::new("k1");
    let jwks = JwksOn::start(free_addr(), issuer.jwks());
    let (config_dir, config) = write_config(&jwks.url());
    let gatehouse = Gatehouse::start(Some(&config), &HashMap::new());
    assert!(
        gatehouse.wait_ready(Duration::from_secs(20)),
        "gatehouse never became ready:\n{}",
        gatehouse.proc.log_text()
    );
    let app = EchoUpstream::start();
    let nginx = Nginx::start(gatehouse.http_addr, app.addr);
    Stack {
        issuer,
        app,
        nginx,
        gatehouse,
        _jwks: jwks,
        _config: config_dir,
    }
}

impl Stack {
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        http_request(self.nginx.addr, "GET", path, headers).unwrap_or_else(|| {
            panic!(
                "nginx did not answer {path}:\n{}\n{}",
                self.nginx.error_log(),
                self.gatehouse.proc.log_text()
            )
        })
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

const SPOOF: [(&str, &str); 3] = [
    ("x-user-id", "mallory"),
    ("x-user-email", "mallory@evil.test"),
    ("x-user-name", "Mallory"),
];

fn assert_no_identity(r: &HttpResponse) {
    let h = &r.json()["headers"];
    for (name, _) in SPOOF {
        assert!(h.get(name).is_none(), "{name} reached the upstream: {h}");
    }
}

#[test]
fn identity_headers_reach_the_upstream_and_spoofed_ones_do_not() {
    let s = stack();
    let auth = bearer(&s.issuer.token("alice", 900));
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend(SPOOF);
    let r = s.get("/api/alice/notes?page=2", &headers);
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    assert_eq!(j["path"], "/api/alice/notes?page=2");
    assert_eq!(j["headers"]["x-user-id"], json!(["alice"]));
    assert_eq!(j["headers"]["x-user-email"], json!(["alice@example.test"]));
    assert_eq!(j["headers"]["x-user-name"], json!(["User alice"]));

    // Public in gatehouse's rules: no token needed, spoofed identity removed.
    let r = s.get("/open/readme", &SPOOF);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_no_identity(&r);
    // Another public rule: same.
    let r = s.get("/public/logo.svg", &SPOOF);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_no_identity(&r);
    // A public path ignores even a valid credential.
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend(SPOOF);
    let r = s.get("/open/readme", &headers);
    assert_eq!(r.status, 200);
    assert_no_identity(&r);
}

#[test]
fn bad_or_missing_tokens_get_401_and_never_reach_the_upstream() {
    let s = stack();
    let other = Issuer::new("k1");
    let cases = [
        (None, "token_missing"),
        (Some("x.y.z".to_owned()), "token_malformed"),
        // Not a JWT: a session token, and no session lookup is configured.
        (Some("not-a-jwt".to_owned()), "session_invalid"),
        (Some(s.issuer.token("alice", -600)), "token_expired"),
        // Same kid, another key: the signature does not verify.
        (Some(other.token("alice", 900)), "token_invalid"),
    ];
    for (token, code) in cases {
        let auth = token.as_deref().map(bearer);
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        let r = s.get("/api/alice/notes", &headers);
        assert_eq!(r.status, 401, "{code}: {}", r.body);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.json()["error"], code);
        let challenges: Vec<&str> = r
            .headers
            .iter()
            .filter(|(k, _)| k == "www-authenticate")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(challenges.len(), 1, "{code}: {challenges:?}");
        assert!(challenges[0].starts_with("Bearer realm=\"gatehouse\""));
        assert_eq!(
            challenges[0].contains("error=\"invalid_token\""),
            code != "token_missing",
            "{code}: {}",
            challenges[0]
        );
    }
    assert_eq!(
        s.app.hits(),
        0,
        "a request with a bad token reached the upstream"
    );
}

#[test]
fn user_isolation_is_enforced_also_with_percent_encoding() {
    let s = stack();
    let auth = bearer(&s.issuer.token("alice", 900));
    let h = [("authorization", auth.as_str())];
    for path in ["/api/bob/notes", "/api/b%6Fb/notes", "/api/%62%6f%62/notes"] {
        let r = s.get(path, &h);
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        assert_eq!(r.json()["error"], "forbidden");
    }
    assert_eq!(s.app.hits(), 0);
    // Encoding an unreserved character does not change whose path it is.
    let r = s.get("/api/%61lice/notes", &h);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["headers"]["x-user-id"], json!(["alice"]));
    // An encoded slash is ambiguous: refused, with its real status.
    let r = s.get("/api/alice%2F..%2Fbob/notes", &h);
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"], "bad_request");
}

#[test]
fn health_and_readiness_wait_for_a_late_jwks_server() {
    let issuer = Issuer::new("late");
    let jwks_addr = free_addr();
    let (_dir, config) = write_config(&format!("http://{jwks_addr}/api/auth/jwks"));
    let gatehouse = Gatehouse::start(Some(&config), &HashMap::new());
    let app = EchoUpstream::start();
    let nginx = Nginx::start(gatehouse.http_addr, app.addr);

    assert_eq!(
        http_get(gatehouse.http_addr, "/healthz", &[]).unwrap().0,
        200
    );
    assert_eq!(
        http_get(gatehouse.http_addr, "/readyz", &[]).unwrap().0,
        503
    );
    let auth = bearer(&issuer.token("alice", 900));
    let r = http_request(
        nginx.addr,
        "GET",
        "/api/alice/x",
        &[("authorization", &auth)],
    )
    .unwrap();
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["error"], "jwks_unavailable");
    assert_eq!(app.hits(), 0);

    let jwks = JwksOn::start(jwks_addr, issuer.jwks());
    assert!(
        gatehouse.wait_ready(Duration::from_secs(40)),
        "not ready after the JWKS server came up:\n{}",
        gatehouse.proc.log_text()
    );
    assert!(jwks.hits.load(Ordering::SeqCst) >= 1);
    let before = scrape(&gatehouse);
    let r = http_request(
        nginx.addr,
        "GET",
        "/api/alice/x",
        &[("authorization", &auth)],
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["headers"]["x-user-id"], json!(["alice"]));
    assert_eq!(
        http_get(gatehouse.http_addr, "/healthz", &[]).unwrap().0,
        200
    );
    let after = scrape(&gatehouse);
    // The 503 while the keys were missing, then the one allow, each counted once.
    assert_eq!(
        metrics::decisions(&after, "http", "deny", "jwks_unavailable"),
        1.0,
        "{after}"
    );
    let delta = |f: &dyn Fn(&str) -> f64| f(&after) - f(&before);
    assert_eq!(
        delta(&|t| metrics::decisions(t, "http", "allow", "authenticated")),
        1.0,
        "{after}"
    );
    assert_eq!(
        delta(&|t| metrics::count(t, "gatehouse_token_cache_total", &[("result", "miss")])),
        1.0
    );
    assert_eq!(
        delta(&|t| metrics::count(t, "gatehouse_verify_duration_seconds_count", &[])),
        1.0
    );
    let fetches = |result| {
        metrics::count(
            &after,
            "gatehouse_jwks_fetches_total",
            &[("provider", "better-auth"), ("result", result)],
        )
    };
    assert!(
        fetches("failure") >= 1.0,
        "the server was down at start:\n{after}"
    );
    assert!(fetches("success") >= 1.0, "{after}");
    let age = metrics::value(
        &after,
        "gatehouse_jwks_age_seconds",
        &[("provider", "better-auth")],
    );
    assert!(age.is_some_and(|a| (0.0..40.0).contains(&a)), "{after}");
}

/// gatehouse's `/metrics` text.
fn scrape(gatehouse: &Gatehouse) -> String {
    let (status, text) = http_get(gatehouse.http_addr, "/metrics", &[]).unwrap();
    assert_eq!(status, 200);
    text
}

#[test]
fn two_hundred_concurrent_requests_are_all_answered_correctly() {
    let s = Arc::new(stack());
    let users = ["alice", "bob", "carol", "dave"];
    let tokens: Arc<Vec<String>> = Arc::new(users.iter().map(|u| s.issuer.token(u, 900)).collect());
    let started = Instant::now();
    let threads: Vec<_> = (0..200)
        .map(|i| {
            let (s, tokens) = (s.clone(), tokens.clone());
            std::thread::spawn(move || {
                let u = i % users.len();
                let auth = bearer(&tokens[u]);
                match i % 4 {
                    // Own path → 200 as that user.
                    0 | 1 => {
                        let path = format!("/api/{}/item/{i}", users[u]);
                        let r = s.get(&path, &[("authorization", &auth), ("x-user-id", "mallory")]);
                        assert_eq!(r.status, 200, "{path}: {}", r.body);
                        assert_eq!(r.json()["headers"]["x-user-id"], json!([users[u]]));
                        assert_eq!(r.json()["path"], path);
                        true
                    }
                    // Someone else's path → 403.
                    2 => {
                        let other = users[(u + 1) % users.len()];
                        let r = s.get(
                            &format!("/api/{other}/item/{i}"),
                            &[("authorization", &auth)],
                        );
                        assert_eq!(r.status, 403, "{}", r.body);
                        false
                    }
                    // Garbage → 401.
                    _ => {
                        let r = s.get("/api/alice/x", &[("authorization", "Bearer a.b.c")]);
                        assert_eq!(r.status, 401, "{}", r.body);
                        false
                    }
                }
            })
        })
        .collect();
    let mut allowed = 0;
    for t in threads {
        if t.join().expect("a concurrent request failed") {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 100);
    assert_eq!(
        s.app.hits(),
        allowed,
        "only allowed requests reach the upstream"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}
