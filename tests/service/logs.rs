//! Logs of the real binary: one decision event per request with request
//! id, door, route, provider, result, reason, latency and token
//! fingerprint; JSON lines or text per `GATEHOUSE_LOG_FORMAT`; and a full
//! run at debug level whose whole log holds no token, signature, secret or
//! session id.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use common::envoy::write_config;
use common::jwks_server::JwksServer;
use common::tokens::{TestKey, claims, hmac, hs_token, jwks};
use common::{Gatehouse, http_request};
use gatehouse::internals::fingerprint;
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

/// Decision events from a JSON log, by request id.
fn decision_by_id(log: &str, id: &str) -> Value {
    decisions(log)
        .into_iter()
        .find(|e| e["authz.request_id"] == id)
        .unwrap_or_else(|| panic!("no decision event {id}:\n{log}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denials_after_a_provider_was_chosen_name_it() {
    let key = TestKey::generate("EdDSA", "k1");
    let good = JwksServer::start(jwks(&[&key])).await;
    let config = write_config(&yaml(&good, None));
    let mut e = env("json");
    e.insert("GATEHOUSE_LOG".into(), "info".into());
    let g = tokio::task::block_in_place(|| Gatehouse::start(Some(&config), &e));

    let iss = "https://good.test";
    let good_token = key.token(&claims(iss, iss, "alice", 300));
    let tampered = {
        let (head, sig) = good_token.rsplit_once('.').unwrap();
        let flipped = if sig.starts_with('A') { "B" } else { "A" };
        format!("{head}.{flipped}{}", &sig[1..])
    };
    let stranger_key = TestKey::generate("EdDSA", "k-not-published");
    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("rid-sig", tampered, "bad_signature", "keys"),
        (
            "rid-kid",
            stranger_key.token(&claims(iss, iss, "alice", 300)),
            "unknown_kid",
            "keys",
        ),
        (
            "rid-aud",
            key.token(&claims(iss, "https://elsewhere.test", "alice", 300)),
            "wrong_audience",
            "keys",
        ),
        (
            "rid-exp",
            key.token(&claims(iss, iss, "alice", -600)),
            "expired",
            "keys",
        ),
        (
            "rid-alg",
            hs_token("HS256", SECRET.as_bytes(), &claims(iss, iss, "alice", 300)),
            "wrong_alg",
            "keys",
        ),
        (
            "rid-hs",
            hs_token(
                "HS256",
                b"not-the-secret-at-all-0123456789",
                &claims("https://hs.test", "https://hs.test", "carol", 300),
            ),
            "bad_signature",
            "secret",
        ),
        // An `iss` that is not a string reaches no provider.
        (
            "rid-iss",
            key.token(&json!({"iss": 42, "aud": iss, "sub": "alice", "exp": 4_000_000_000u64})),
            "wrong_issuer",
            "",
        ),
    ];
    tokio::task::block_in_place(|| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while auth(&g, "/api/x", &[("authorization", &bearer(&good_token))]) != 200 {
            assert!(Instant::now() < deadline, "{}", g.proc.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
        for (id, token, _, _) in &cases {
            let status = auth(
                &g,
                "/api/x",
                &[("authorization", &bearer(token)), ("x-request-id", id)],
            );
            assert_eq!(status, 401, "{id}");
        }
        wait_log(&g, "every decision", |l| l.contains("rid-iss"));
    });
    let log = g.proc.log_text();
    for (id, _, reason, provider) in &cases {
        let event = decision_by_id(&log, id);
        assert_eq!(event["authz.reason"], *reason, "{id}: {event}");
        assert_eq!(event["authz.provider"], *provider, "{id}: {event}");
        assert_eq!(event["authz.result"], "deny", "{id}: {event}");
    }
}

/// `JWKS fetch failed` events from a JSON log, by provider.
fn fetch_failure(log: &str, provider: &str) -> Option<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message"] == "JWKS fetch failed" && v["provider"] == provider)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_key_fetches_log_their_cause() {
    // Held for the whole test, so nothing else can start listening there.
    let refusing = common::ports::closed_port();
    let closed_port = refusing.port;
    let failing = JwksServer::start(json!({})).await;
    failing.set_status(500);
    let garbage = JwksServer::start(json!({})).await;
    garbage.set_body(b"<html>keys are elsewhere</html>".to_vec());
    let config = write_config(&format!(
        "providers:
  - name: closed
    issuer: https://closed.test
    jwks_uri: http://127.0.0.1:{closed_port}/jwks
  - name: failing
    issuer: https://failing.test
    jwks_uri: {failing}
  - name: garbage
    issuer: https://garbage.test
    jwks_uri: {garbage}
default_access: authenticated
",
        failing = failing.url("/jwks?token=query-secret"),
        garbage = garbage.url("/jwks"),
    ));
    let mut e = env("json");
    e.insert("GATEHOUSE_LOG".into(), "info".into());
    let g = tokio::task::block_in_place(|| Gatehouse::start(Some(&config), &e));
    tokio::task::block_in_place(|| {
        wait_log(&g, "a failure of every provider", |l| {
            ["closed", "failing", "garbage"]
                .iter()
                .all(|p| fetch_failure(l, p).is_some())
        });
    });
    let log = g.proc.log_text();
    let error = |p: &str| {
        fetch_failure(&log, p).unwrap()["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };

    let closed = error("closed");
    assert!(
        closed.starts_with("error sending request: ")
            && closed.contains("tcp connect error")
            && closed.contains("Connection refused"),
        "the connect cause is missing: {closed}"
    );
    assert!(!closed.contains("127.0.0.1"), "{closed}");

    let failing = error("failing");
    assert!(
        failing.contains("500") && failing.contains("Internal Server Error"),
        "the status is missing: {failing}"
    );
    assert!(!log.contains("query-secret"), "{log}");

    let garbage = error("garbage");
    assert!(
        garbage.contains("not valid JSON") && garbage.contains("line 1 column"),
        "the JSON problem is missing: {garbage}"
    );
    assert!(!garbage.contains("keys are elsewhere"), "{garbage}");
}
