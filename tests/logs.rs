//! Logs of the real binary: one decision event per request with request
//! id, door, route, provider, result, reason, latency and token
//! fingerprint; JSON lines or text per `GATEHOUSE_LOG_FORMAT`; and a full
//! run at debug level whose whole log holds no token, signature, secret or
//! session id.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use common::envoy::write_config;
use common::jwks_server::JwksServer;
use common::tokens::{TestKey, claims, hmac, hs_token, jwks};
use common::{Gatehouse, http_request};
use gatehouse::telemetry::fingerprint;
use serde_json::{Value, json};

const SECRET: &str = "log-scan-better-auth-secret-0123456789";
const SESSION_TOKEN: &str = "sessTOKENq7Wc0ffee4Z9xYlogscan";
const SESSION_ID: &str = "sessIDk3Vd9Tn2logscan";

fn yaml(good: &JwksServer, down: Option<&JwksServer>) -> String {
    let down = down.map_or(String::new(), |d| {
        format!(
            "  - name: down
    issuer: https://down.test
    audiences: [https://down.test]
    jwks_uri: {}
",
            d.url("/jwks")
        )
    });
    format!(
        "providers:
  - name: keys
    issuer: https://good.test
    audiences: [https://good.test]
    jwks_uri: {jwks}
{down}  - name: secret
    issuer: https://hs.test
    audiences: [https://hs.test]
    secret_env: BETTER_AUTH_SECRET
token_sources:
  - header: authorization
  - cookie: better-auth.session_token
rules:
  - match: {{ path_prefix: /admin }}
    claims: {{ role: admin }}
default_access: authenticated
session:
  introspect_url: {session}
  cache_ttl: 1s
",
        jwks = good.url("/jwks"),
        session = good.url("/api/auth/get-session"),
    )
}

fn env(format: &str) -> HashMap<String, String> {
    [
        ("BETTER_AUTH_SECRET", SECRET),
        ("GATEHOUSE_LOG", "debug"),
        ("GATEHOUSE_LOG_FORMAT", format),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// `/auth` for GET `path` with `headers`; returns the status.
fn auth(g: &Gatehouse, path: &str, headers: &[(&str, &str)]) -> u16 {
    let mut all = vec![("x-original-method", "GET"), ("x-original-uri", path)];
    all.extend_from_slice(headers);
    http_request(g.http_addr, "GET", "/auth", &all)
        .expect("answer from /auth")
        .status
}

/// Waits until `pred` holds for the log text.
fn wait_log(g: &Gatehouse, what: &str, pred: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !pred(&g.proc.log_text()) {
        assert!(
            Instant::now() < deadline,
            "log never showed {what}:\n{}",
            g.proc.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Decision events from a JSON log.
fn decisions(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .filter(|v| v["message"] == "decision")
        .collect()
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

/// The session cookie value Better Auth sets: `TOKEN.base64(HMAC(secret, TOKEN))`.
fn signed_session() -> String {
    let sig = hmac("HS256", SECRET.as_bytes(), SESSION_TOKEN.as_bytes());
    format!(
        "{SESSION_TOKEN}.{}",
        base64::engine::general_purpose::STANDARD.encode(sig)
    )
}

fn session_doc() -> Value {
    let expires = humantime::format_rfc3339(SystemTime::now() + Duration::from_secs(3600));
    json!({
        "session": {"id": SESSION_ID, "token": SESSION_TOKEN, "userId": "u-sess", "expiresAt": expires.to_string()},
        "user": {"id": "u-sess", "email": "s@example.test", "name": "Sess User", "emailVerified": true}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_run_at_debug_leaks_no_token_secret_or_session_id() {
    let key = TestKey::generate("EdDSA", "k1");
    let good = JwksServer::start(jwks(&[&key])).await;
    good.set_doc_at("/api/auth/get-session", session_doc());
    let down = JwksServer::start(json!({})).await;
    down.set_status(500);
    let config = write_config(&yaml(&good, Some(&down)));
    let g = tokio::task::block_in_place(|| Gatehouse::start(Some(&config), &env("json")));

    let good_token = key.token(&claims(
        "https://good.test",
        "https://good.test",
        "alice",
        300,
    ));
    let expired = key.token(&claims(
        "https://good.test",
        "https://good.test",
        "bob",
        -600,
    ));
    let tampered = {
        let (head, sig) = good_token.rsplit_once('.').unwrap();
        let flipped = if sig.starts_with('A') { "B" } else { "A" };
        format!("{head}.{flipped}{}", &sig[1..])
    };
    let hs = hs_token(
        "HS256",
        SECRET.as_bytes(),
        &claims("https://hs.test", "https://hs.test", "carol", 300),
    );
    let hs_wrong = hs_token(
        "HS256",
        b"not-the-secret-at-all-0123456789",
        &claims("https://hs.test", "https://hs.test", "carol", 300),
    );
    let down_token = key.token(&claims(
        "https://down.test",
        "https://down.test",
        "dan",
        300,
    ));
    let cookie = format!("better-auth.session_token={}", signed_session());
    let forged_cookie = format!("better-auth.session_token={SESSION_TOKEN}.AAAA");

    let run = |g: &Gatehouse| {
        // The good provider's keys load in the background.
        let deadline = Instant::now() + Duration::from_secs(10);
        while auth(g, "/api/x", &[("authorization", &bearer(&good_token))]) != 200 {
            assert!(Instant::now() < deadline, "{}", g.proc.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(
            auth(
                g,
                "/api/x",
                &[
                    ("authorization", &bearer(&good_token)),
                    ("x-request-id", "rid-allow-1")
                ]
            ),
            200
        );
        assert_eq!(auth(g, "/api/x", &[]), 401);
        assert_eq!(
            auth(g, "/admin/x", &[("authorization", &bearer(&good_token))]),
            403
        );
        assert_eq!(
            auth(g, "/api/x", &[("authorization", &bearer(&expired))]),
            401
        );
        assert_eq!(
            auth(g, "/api/x", &[("authorization", &bearer(&tampered))]),
            401
        );
        assert_eq!(auth(g, "/api/x", &[("authorization", &bearer(&hs))]), 200);
        assert_eq!(
            auth(g, "/api/x", &[("authorization", &bearer(&hs_wrong))]),
            401
        );
        assert_eq!(auth(g, "/api/x", &[("cookie", &cookie)]), 200);
        assert_eq!(auth(g, "/api/x", &[("cookie", &forged_cookie)]), 401);
        assert_eq!(
            auth(g, "/api/x", &[("authorization", &bearer(SESSION_TOKEN))]),
            200
        );
    };
    tokio::task::block_in_place(|| {
        run(&g);
        assert_eq!(
            auth(&g, "/api/x", &[("authorization", &bearer(&down_token))]),
            503
        );
        wait_log(&g, "a JWKS fetch failure", |l| {
            l.contains("JWKS fetch failed")
        });

        // Reload without the unreachable provider, then run again.
        std::fs::write(&config, yaml(&good, None)).unwrap();
        g.proc.signal("HUP");
        wait_log(&g, "the reload", |l| l.contains("configuration reloaded"));
        run(&g);
    });

    let log = g.proc.log_text();
    let events = decisions(&log);
    assert!(
        log.contains("\"level\":\"DEBUG\""),
        "the scan must cover debug events:\n{log}"
    );
    assert!(
        events.len() >= 20,
        "{} decision events:\n{log}",
        events.len()
    );

    // Nothing secret, at any level, from any crate.
    let mut forbidden: Vec<(&str, String)> = vec![
        ("secret", SECRET.to_owned()),
        ("session token", SESSION_TOKEN.to_owned()),
        ("session id", SESSION_ID.to_owned()),
        ("signed session cookie", signed_session()),
    ];
    for (name, t) in [
        ("good token", &good_token),
        ("expired token", &expired),
        ("tampered token", &tampered),
        ("HS256 token", &hs),
        ("wrong-secret token", &hs_wrong),
        ("down-provider token", &down_token),
    ] {
        forbidden.push((name, t.clone()));
        let sig = t.rsplit('.').next().unwrap().to_owned();
        forbidden.push((name, sig));
    }
    for (name, value) in &forbidden {
        assert!(
            !log.contains(value.as_str()),
            "the log holds the {name}:\n{log}"
        );
    }

    // The decision events carry what is needed to follow a request.
    let allow = events
        .iter()
        .find(|e| e["authz.request_id"] == "rid-allow-1")
        .unwrap_or_else(|| panic!("no event with the sent request id:\n{log}"));
    assert_eq!(allow["authz.door"], "http");
    assert_eq!(allow["authz.result"], "allow");
    assert_eq!(allow["authz.reason"], "authenticated");
    assert_eq!(allow["authz.provider"], "keys");
    assert_eq!(allow["authz.token"], fingerprint(&good_token).as_str());
    assert!(allow["authz.latency_us"].is_u64());
    assert!(allow["authz.route"].is_i64());
    for e in &events {
        let id = e["authz.request_id"].as_str().unwrap_or("");
        assert!(!id.is_empty(), "decision without a request id: {e}");
    }
    assert!(
        events.iter().any(|e| e["authz.request_id"]
            .as_str()
            .is_some_and(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()))),
        "no generated request id:\n{log}"
    );
    let reasons: Vec<&str> = events
        .iter()
        .filter_map(|e| e["authz.reason"].as_str())
        .collect();
    for want in [
        "token_missing",
        "claim_mismatch",
        "expired",
        "bad_signature",
        "bad_cookie_signature",
        "jwks_unavailable",
    ] {
        assert!(reasons.contains(&want), "no {want} decision: {reasons:?}");
    }
    let session = events
        .iter()
        .find(|e| e["authz.provider"] == "session")
        .unwrap_or_else(|| panic!("no session decision:\n{log}"));
    assert_eq!(session["authz.result"], "allow");
    assert!(!session["authz.token"].as_str().unwrap_or("").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_format_writes_the_decision_as_key_value_text() {
    let key = TestKey::generate("EdDSA", "k1");
    let good = JwksServer::start(jwks(&[&key])).await;
    let config = write_config(&yaml(&good, None));
    let mut e = env("text");
    e.insert("GATEHOUSE_LOG".into(), "info".into());
    let g = tokio::task::block_in_place(|| Gatehouse::start(Some(&config), &e));
    let token = key.token(&claims(
        "https://good.test",
        "https://good.test",
        "alice",
        300,
    ));
    let fp = fingerprint(&token);
    tokio::task::block_in_place(|| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while auth(
            &g,
            "/api/x",
            &[
                ("authorization", &bearer(&token)),
                ("x-request-id", "rid-text-7"),
            ],
        ) != 200
        {
            assert!(Instant::now() < deadline, "{}", g.proc.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
        wait_log(&g, "the decision", |l| l.contains("rid-text-7"));
    });
    let log = g.proc.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("rid-text-7") && l.contains("authz.result=\"allow\""))
        .unwrap_or_else(|| panic!("no text decision line:\n{log}"));
    assert!(!line.trim_start().starts_with('{'), "{line}");
    for want in [
        "decision",
        "authz.door=\"http\"",
        "authz.provider=\"keys\"",
        "authz.reason=\"authenticated\"",
        "authz.latency_us=",
        "authz.route=",
    ] {
        assert!(line.contains(want), "{want} missing: {line}");
    }
    assert!(line.contains(&fp), "fingerprint missing: {line}");
    assert!(!log.contains(&token));
    assert!(log.lines().all(|l| !l.trim_start().starts_with('{')));
}
