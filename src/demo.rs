//! `gatehouse demo`: a built-in issuer so the service can be tried with no
//! config and no other process.
//!
//! [`DemoIssuer`] holds an ephemeral Ed25519 key (it lives as long as the
//! process), publishes it as a JWKS and signs sample tokens. The demo
//! config protects a small example API: `/healthz` and `/public/**` are
//! public, `/api/{user_id}/**` belongs to the user whose `sub` matches,
//! `/admin/**` needs `role: admin`, everything else needs any valid token.
//!
//! `gatehouse demo` serves that config (the HTTP listener publishes the
//! JWKS at `/api/auth/jwks`), prints sample tokens and copy-paste commands,
//! and checks the running service the same way the commands would.
//! `gatehouse demo --once` runs the same checks in-process against a JWKS
//! file and exits, for CI.
//!
//! This module does not verify anything itself: every decision it prints
//! comes from the real [`Authorizer`].

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::config::raw::{RawConfig, RawMatch, RawProvider, RawRule};
use crate::config::{Access, Config, ConfigError, Env};
use crate::decision::{Authorizer, CheckInput, Decision, Door, unix_now};
use crate::server::{ServeError, ServeOptions};
use crate::telemetry::Metrics;

/// Listener defaults of the demo (loopback only).
pub(crate) const DEMO_HTTP_ADDR: &str = "127.0.0.1:8080";
pub(crate) const DEMO_GRPC_ADDR: &str = "127.0.0.1:9001";
/// The demo provider's name.
pub(crate) const DEMO_PROVIDER: &str = "demo";

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot generate the demo signing key")]
    KeyGeneration,
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Serve(#[from] ServeError),
}

/// An ephemeral Ed25519 issuer.
pub struct DemoIssuer {
    /// The signing key; never leaves the process.
    key: Ed25519KeyPair,
    /// RFC 7638 thumbprint of the public key, so the kid is stable for the key.
    kid: String,
}

impl std::fmt::Debug for DemoIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoIssuer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl DemoIssuer {
    /// Generates a fresh key.
    pub fn new() -> Result<Self, DemoError> {
        let key = Ed25519KeyPair::generate().map_err(|_| DemoError::KeyGeneration)?;
        let x = URL_SAFE_NO_PAD.encode(key.public_key().as_ref());
        // RFC 7638: SHA-256 over the required members in lexicographic order.
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        Ok(Self { key, kid })
    }

    /// The key id every token carries.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWKS document (`{"keys":[{OKP/Ed25519, kid, alg: EdDSA}]}`).
    pub fn jwks_json(&self) -> String {
        let x = URL_SAFE_NO_PAD.encode(self.key.public_key().as_ref());
        json!({
            "keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "x": x,
                "kid": self.kid,
                "alg": "EdDSA",
            }]
        })
        .to_string()
    }

    /// Signs `claims` as a compact JWS with header `{"alg":"EdDSA","kid":…}`.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({ "alg": "EdDSA", "kid": self.kid });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self.key.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    /// A Better Auth-shaped token for `user`, issued now and expiring after
    /// `ttl_secs` (negative: already expired).
    pub fn user_token(&self, issuer: &str, user: &DemoUser, ttl_secs: i64) -> String {
        let now = unix_now() as i64;
        let mut claims = Map::new();
        claims.insert("sub".into(), json!(user.id));
        claims.insert("email".into(), json!(user.email));
        claims.insert("name".into(), json!(user.name));
        if let Some(role) = user.role {
            claims.insert("role".into(), json!(role));
        }
        claims.insert("iss".into(), json!(issuer));
        claims.insert("aud".into(), json!(issuer));
        // An expired token was issued an hour before it expired.
        let (iat, exp) = if ttl_secs < 0 {
            (now + ttl_secs - 3600, now + ttl_secs)
        } else {
            (now, now + ttl_secs)
        };
        claims.insert("iat".into(), json!(iat));
        claims.insert("exp".into(), json!(exp));
        self.sign(&Value::Object(claims))
    }

    /// The demo config as written (before compilation), with keys fetched
    /// from `http://<http_addr>/api/auth/jwks`.
    pub fn raw_config(&self, http_addr: SocketAddr, grpc_addr: SocketAddr) -> RawConfig {
        let issuer = issuer_for(http_addr);
        RawConfig {
            grpc_addr: Some(grpc_addr.to_string()),
            http_addr: Some(http_addr.to_string()),
            providers: vec![RawProvider {
                name: DEMO_PROVIDER.to_owned(),
                issuer: Some(issuer.clone()),
                audiences: vec![issuer.clone()],
                jwks_uri: Some(format!("{issuer}/api/auth/jwks")),
                algorithms: Some(vec!["EdDSA".to_owned()]),
                ..RawProvider::default()
            }],
            rules: vec![
                rule("/healthz", Some(Access::Public)),
                rule("/public/**", Some(Access::Public)),
                RawRule {
                    path_claims: BTreeMap::from([("user_id".to_owned(), "sub".to_owned())]),
                    ..rule("/api/{user_id}/**", Some(Access::Authenticated))
                },
                RawRule {
                    claims: BTreeMap::from([("role".to_owned(), json!("admin"))]),
                    ..rule("/admin/**", Some(Access::Authenticated))
                },
            ],
            default_access: Some(Access::Authenticated),
            ..RawConfig::default()
        }
    }

    /// The compiled demo config (see [`DemoIssuer::raw_config`]). The
    /// process environment is not consulted: the demo is self-contained.
    pub fn config(
        &self,
        http_addr: SocketAddr,
        grpc_addr: SocketAddr,
    ) -> Result<Config, ConfigError> {
        Config::compile(self.raw_config(http_addr, grpc_addr), &Env::default())
    }
}

/// `http://<addr>`: the demo issuer's `iss`.
pub(crate) fn issuer_for(http_addr: SocketAddr) -> String {
    format!("http://{http_addr}")
}

fn rule(path: &str, access: Option<Access>) -> RawRule {
    RawRule {
        match_: RawMatch {
            path: Some(path.to_owned()),
            ..RawMatch::default()
        },
        access,
        ..RawRule::default()
    }
}

/// A sample user.
#[derive(Debug, Clone, Copy)]
pub struct DemoUser {
    pub id: &'static str,
    pub email: &'static str,
    pub name: &'static str,
    pub role: Option<&'static str>,
}

pub const ALICE: DemoUser = DemoUser {
    id: "alice",
    email: "alice@example.com",
    name: "Alice",
    role: None,
};

pub const BOB: DemoUser = DemoUser {
    id: "bob",
    email: "bob@example.com",
    name: "Bob",
    role: Some("admin"),
};

/// The three sample tokens.
#[derive(Debug, Clone)]
pub(crate) struct SampleTokens {
    pub alice: String,
    pub bob: String,
    pub expired: String,
}

impl SampleTokens {
    pub(crate) fn new(issuer: &DemoIssuer, http_addr: SocketAddr) -> Self {
        let iss = issuer_for(http_addr);
        Self {
            alice: issuer.user_token(&iss, &ALICE, 3600),
            bob: issuer.user_token(&iss, &BOB, 3600),
            expired: issuer.user_token(&iss, &ALICE, -600),
        }
    }
}

/// One demonstrated request and the status it should get.
#[derive(Debug, Clone)]
pub(crate) struct DemoCase {
    pub label: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    pub token: Option<String>,
    pub expect: u16,
}

/// The requests the demo shows: allow, 403 and 401.
pub(crate) fn cases(tokens: &SampleTokens) -> Vec<DemoCase> {
    let case = |label, method, path, token: Option<&String>, expect| DemoCase {
        label,
        method,
        path,
        token: token.cloned(),
        expect,
    };
    vec![
        case(
            "alice reads her own profile",
            "GET",
            "/api/alice/profile",
            Some(&tokens.alice),
            200,
        ),
        case(
            "alice reads bob's profile",
            "GET",
            "/api/bob/profile",
            Some(&tokens.alice),
            403,
        ),
        case("no token", "GET", "/api/alice/profile", None, 401),
        case(
            "expired token",
            "GET",
            "/api/alice/profile",
            Some(&tokens.expired),
            401,
        ),
        case(
            "alice on an admin page",
            "GET",
            "/admin/settings",
            Some(&tokens.alice),
            403,
        ),
        case(
            "bob (role admin) on an admin page",
            "GET",
            "/admin/settings",
            Some(&tokens.bob),
            200,
        ),
        case("anyone on a public page", "GET", "/public/hello", None, 200),
    ]
}

/// The outcome of one case.
#[derive(Debug, Clone)]
pub(crate) struct CaseResult {
    pub status: u16,
    /// The error code (docs/errors.md), `None` when allowed.
    pub error: Option<String>,
}

fn print_result(case: &DemoCase, got: &Result<CaseResult, String>) -> bool {
    match got {
        Ok(r) => {
            let ok = r.status == case.expect;
            println!(
                "  {} {:>3} {:<16} {} {:<20} {}",
                if ok { "ok  " } else { "FAIL" },
                r.status,
                r.error.as_deref().unwrap_or("allow"),
                case.method,
                case.path,
                case.label,
            );
            ok
        }
        Err(e) => {
            println!("  FAIL {} {} {}: {e}", case.method, case.path, case.label);
            false
        }
    }
}

fn input_for(case: &DemoCase) -> CheckInput {
    let mut headers = http::HeaderMap::new();
    if let Some(t) = &case.token
        && let Ok(v) = http::HeaderValue::from_str(&format!("Bearer {t}"))
    {
        headers.insert(http::header::AUTHORIZATION, v);
    }
    CheckInput {
        door: Door::Cli,
        method: case.method.to_owned(),
        path: case.path.to_owned(),
        host: None,
        headers,
        request_id: None,
        client_ip: None,
    }
}

fn result_of(decision: &Decision) -> CaseResult {
    match decision {
        Decision::Allow(_) => CaseResult {
            status: 200,
            error: None,
        },
        Decision::Deny(e) => CaseResult {
            status: e.http_status(),
            error: Some(e.code().as_str().to_owned()),
        },
    }
}

/// A JWKS written to a temporary file, removed on drop.
struct TempJwks {
    path: PathBuf,
}

impl TempJwks {
    fn write(jwks: &str) -> Result<Self, DemoError> {
        let path = std::env::temp_dir().join(format!(
            "gatehouse-demo-{}-{}.jwks.json",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::write(&path, jwks).map_err(|source| DemoError::Io {
            context: format!("cannot write {}", path.display()),
            source,
        })?;
        Ok(Self { path })
    }
}

impl Drop for TempJwks {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `gatehouse demo --once`: prints the sample tokens, decides every demo
/// case in-process (keys from a JWKS file) and returns whether every case
/// got its expected status.
pub(crate) async fn run_once() -> Result<bool, DemoError> {
    let issuer = DemoIssuer::new()?;
    let http_addr = parse_default(DEMO_HTTP_ADDR);
    let grpc_addr = parse_default(DEMO_GRPC_ADDR);
    let tokens = SampleTokens::new(&issuer, http_addr);
    let file = TempJwks::write(&issuer.jwks_json())?;
    let mut raw = issuer.raw_config(http_addr, grpc_addr);
    for p in &mut raw.providers {
        p.jwks_uri = None;
        p.jwks_file = Some(file.path.to_string_lossy().into_owned());
    }
    let config = Config::compile(raw, &Env::default())?;
    let authz = Authorizer::new(Arc::new(config), Arc::new(Metrics::new()))?;
    authz.start();
    authz.verifier().wait_ready(Duration::from_secs(5)).await;

    println!("gatehouse demo --once: issuer {}", issuer_for(http_addr));
    println!("sample token for alice:\n{}\n", tokens.alice);
    println!("in-process decisions:");
    let mut all_ok = true;
    for case in cases(&tokens) {
        let decision = authz.check(&input_for(&case)).await;
        all_ok &= print_result(&case, &Ok(result_of(&decision)));
    }
    authz.stop();
    Ok(all_ok)
}

fn parse_default(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// Chooses a demo listener address: an explicit one (flag or env) is used
/// as given; the default falls back to a free loopback port when taken.
/// Returns the address and a note to print when it fell back.
pub(crate) fn pick_addr(
    explicit: Option<&str>,
    key: &str,
    default: &str,
) -> Result<(SocketAddr, Option<String>), ConfigError> {
    if let Some(s) = explicit {
        let addr: SocketAddr = s
            .trim()
            .parse()
            .map_err(|_| ConfigError::new(key, format!("{s:?} is not a socket address")))?;
        return Ok((addr, None));
    }
    let addr = parse_default(default);
    if TcpListener::bind(addr).is_ok() {
        return Ok((addr, None));
    }
    let free = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .and_then(|l| l.local_addr())
        .map_err(|e| ConfigError::new(key, format!("no free loopback port: {e}")))?;
    Ok((
        free,
        Some(format!("{default} is taken; using {free} instead")),
    ))
}

/// `gatehouse demo`: serves the demo config with its JWKS on the HTTP
/// listener, prints tokens and commands, checks the live service, then
/// runs until SIGTERM/SIGINT.
pub(crate) async fn run(http_addr: SocketAddr, grpc_addr: SocketAddr) -> Result<(), DemoError> {
    let issuer = DemoIssuer::new()?;
    let config = issuer.config(http_addr, grpc_addr)?;
    let tokens = SampleTokens::new(&issuer, http_addr);
    print_intro(http_addr, grpc_addr, &tokens);

    let server = tokio::spawn(crate::server::serve(ServeOptions {
        config,
        reload: None,
        demo_jwks: Some(issuer.jwks_json()),
    }));

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| DemoError::Io {
            context: "cannot build the HTTP client".to_owned(),
            source: std::io::Error::other(e),
        })?;
    let base = format!("http://{http_addr}");
    if wait_ready(&client, &base, &server).await {
        println!("live check against {base}/auth (the running service):");
        for case in cases(&tokens) {
            let got = live_check(&client, &base, &case).await;
            print_result(&case, &got);
        }
        println!("\ngatehouse demo is running; Ctrl-C to stop.");
    } else if !server.is_finished() {
        println!("the service did not become ready within 10s; it keeps running.");
    }

    match server.await {
        Ok(result) => Ok(result?),
        Err(e) => Err(DemoError::Io {
            context: "the server task failed".to_owned(),
            source: std::io::Error::other(e),
        }),
    }
}

async fn wait_ready(
    client: &reqwest::Client,
    base: &str,
    server: &tokio::task::JoinHandle<Result<(), ServeError>>,
) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline && !server.is_finished() {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn live_check(
    client: &reqwest::Client,
    base: &str,
    case: &DemoCase,
) -> Result<CaseResult, String> {
    let mut req = client
        .get(format!("{base}/auth"))
        .header("x-original-uri", case.path)
        .header("x-original-method", case.method);
    if let Some(t) = &case.token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let error = if status == 200 {
        None
    } else {
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        Some(
            body.get("error")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned(),
        )
    };
    Ok(CaseResult { status, error })
}

fn print_intro(http_addr: SocketAddr, grpc_addr: SocketAddr, tokens: &SampleTokens) {
    let base = format!("http://{http_addr}");
    println!("gatehouse demo");
    println!("  issuer:  {base}   (ephemeral Ed25519 key, JWKS at {base}/api/auth/jwks)");
    println!("  HTTP:    {base}/auth   (nginx auth_request / forward auth)");
    println!("  gRPC:    {grpc_addr}   (Envoy ext_authz v3)");
    println!(
        "  rules:   /healthz, /public/** public; /api/{{user_id}}/** only for sub=user_id; \
         /admin/** needs role=admin; anything else needs a valid token\n"
    );
    println!("sample tokens (valid for 1 hour; paste into your shell):");
    println!("ALICE='{}'", tokens.alice);
    println!("BOB='{}'      # role: admin", tokens.bob);
    println!("EXPIRED='{}'\n", tokens.expired);
    let curl = |method: &str, path: &str, token: Option<&str>| {
        let auth = token
            .map(|t| format!(" -H \"Authorization: Bearer ${t}\""))
            .unwrap_or_default();
        format!(
            "curl -i {base}/auth -H 'X-Original-Method: {method}' -H 'X-Original-URI: {path}'{auth}"
        )
    };
    println!("# 200, alice on her own profile (identity in X-User-Id/-Email/-Name):");
    println!("{}", curl("GET", "/api/alice/profile", Some("ALICE")));
    println!("# 403 forbidden, alice on bob's profile:");
    println!("{}", curl("GET", "/api/bob/profile", Some("ALICE")));
    println!("# 401 token_missing, no token:");
    println!("{}", curl("GET", "/api/alice/profile", None));
    println!("# 401 token_expired:");
    println!("{}", curl("GET", "/api/alice/profile", Some("EXPIRED")));
    println!("# 200, bob (admin) on an admin page:");
    println!("{}", curl("GET", "/admin/settings", Some("BOB")));
    println!(
        "# Envoy's Check over gRPC (needs Envoy's protos, e.g. from envoyproxy/data-plane-api):"
    );
    println!(
        "grpcurl -plaintext -import-path ./api -proto envoy/service/auth/v3/external_auth.proto \\\n  \
         -d \"{{\\\"attributes\\\":{{\\\"request\\\":{{\\\"http\\\":{{\\\"method\\\":\\\"GET\\\",\\\"path\\\":\\\"/api/alice/profile\\\",\\\"headers\\\":{{\\\"authorization\\\":\\\"Bearer $ALICE\\\"}}}}}}}}}}\" \\\n  \
         {grpc_addr} envoy.service.auth.v3.Authorization/Check\n"
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn token_shape() {
        let issuer = DemoIssuer::new().unwrap();
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let t = issuer.user_token(&issuer_for(addr), &ALICE, 60);
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, json!({"alg": "EdDSA", "kid": issuer.kid()}));
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["iss"], "http://127.0.0.1:8080");
        assert_eq!(claims["aud"], "http://127.0.0.1:8080");
        // The signature verifies with the published key.
        let jwks: Value = serde_json::from_str(&issuer.jwks_json()).unwrap();
        let x = URL_SAFE_NO_PAD
            .decode(jwks["keys"][0]["x"].as_str().unwrap())
            .unwrap();
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let pk = aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, x);
        pk.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
        assert_eq!(jwks["keys"][0]["kid"], issuer.kid());
        assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    }

    #[test]
    fn expired_token_is_expired() {
        let issuer = DemoIssuer::new().unwrap();
        let t = issuer.user_token("http://x", &ALICE, -600);
        let payload = t.split('.').nth(1).unwrap();
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert!(claims["exp"].as_i64().unwrap() < unix_now() as i64);
        assert!(claims["iat"].as_i64().unwrap() < claims["exp"].as_i64().unwrap());
    }

    #[test]
    fn demo_config_compiles() {
        let issuer = DemoIssuer::new().unwrap();
        let http: SocketAddr = "127.0.0.1:18080".parse().unwrap();
        let grpc: SocketAddr = "127.0.0.1:19001".parse().unwrap();
        let config = issuer.config(http, grpc).unwrap();
        assert_eq!(config.http_addr, http);
        let p = &config.providers[0];
        assert_eq!(p.name, "demo");
        assert_eq!(p.issuer.as_deref(), Some("http://127.0.0.1:18080"));
        assert_eq!(
            p.keys,
            crate::config::KeySource::JwksUri("http://127.0.0.1:18080/api/auth/jwks".into())
        );
    }
}
