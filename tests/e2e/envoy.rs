//! Through a real Envoy running `deploy/envoy/envoy.yaml` (gRPC) and
//! `deploy/envoy/envoy-http.yaml` (HTTP): gatehouse's answers reach the
//! client and the upstream as they should.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::envoy::{
    TEST_SECRET, gatehouse_env, gatehouse_yaml, hs256, upstream_header, user_claims, write_config,
};
use common::{EchoUpstream, Envoy, Gatehouse};

struct Stack {
    upstream: EchoUpstream,
    gatehouse: Gatehouse,
    envoy: Envoy,
}

fn stack() -> Stack {
    let upstream = EchoUpstream::start();
    let config = write_config(&gatehouse_yaml(""));
    let gatehouse = Gatehouse::start(Some(&config), &gatehouse_env());
    assert!(
        gatehouse.wait_ready(Duration::from_secs(10)),
        "{}",
        gatehouse.proc.log_text()
    );
    let envoy = Envoy::start(gatehouse.grpc_addr, upstream.addr);
    Stack {
        upstream,
        gatehouse,
        envoy,
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn hs256_token_reaches_upstream_as_the_user_and_smuggled_identity_is_replaced() {
    let s = stack();
    let token = hs256(TEST_SECRET, &user_claims("alice", 300));
    let auth = bearer(&token);
    let resp = s.envoy.request(
        "GET",
        "/api/things?x=1",
        &[
            ("authorization", &auth),
            ("x-user-id", "mallory"),
            ("x-user-name", "Mallory"),
        ],
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-echo"), Some("1"));
    assert_eq!(upstream_header(&resp, "x-user-id"), ["alice"]);
    assert_eq!(
        upstream_header(&resp, "x-user-email"),
        ["alice@example.com"]
    );
    assert_eq!(upstream_header(&resp, "x-user-name"), ["User alice"]);
}

#[test]
fn client_identity_headers_never_reach_upstream_on_public_routes() {
    let s = stack();
    // Every route is checked; /public is public in gatehouse's rules, and
    // its answer still removes the client's identity headers.
    for path in ["/public", "/public?next=/api"] {
        let resp = s.envoy.request(
            "GET",
            path,
            &[("x-user-id", "mallory"), ("x-user-email", "m@evil")],
        );
        assert_eq!(resp.status, 200, "{path}: {}", resp.body);
        assert!(
            upstream_header(&resp, "x-user-id").is_empty(),
            "{path}: {}",
            resp.body
        );
        assert!(
            upstream_header(&resp, "x-user-email").is_empty(),
            "{path}: {}",
            resp.body
        );
    }
}

#[test]
fn missing_expired_and_tampered_tokens_get_401_with_json_and_challenge() {
    let s = stack();
    let expired = bearer(&hs256(TEST_SECRET, &user_claims("bob", -3600)));
    let good = hs256(TEST_SECRET, &user_claims("bob", 300));
    let mut tampered = good.clone();
    // Change a character inside the signature (the last one carries
    // padding bits, so changing it could make the base64 itself invalid).
    let at = tampered.len() - 10;
    let c = tampered.as_bytes()[at];
    tampered.replace_range(at..=at, if c == b'A' { "B" } else { "A" });
    let tampered = bearer(&tampered);
    let wrong_secret = bearer(&hs256(
        "another-secret-entirely-000000000",
        &user_claims("bob", 300),
    ));
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case<'_>; 4] = [
        ("missing", vec![], "token_missing"),
        (
            "expired",
            vec![("authorization", &expired)],
            "token_expired",
        ),
        (
            "tampered",
            vec![("authorization", &tampered)],
            "token_invalid",
        ),
        (
            "wrong secret",
            vec![("authorization", &wrong_secret)],
            "token_invalid",
        ),
    ];
    for (name, headers, code) in cases {
        let resp = s.envoy.request("GET", "/api/things", &headers);
        assert_eq!(resp.status, 401, "{name}: {}", resp.body);
        assert_eq!(resp.json()["error"], code, "{name}");
        assert_eq!(
            resp.header("content-type"),
            Some("application/json"),
            "{name}"
        );
        let challenge = resp.header("www-authenticate").unwrap_or("");
        assert!(
            challenge.starts_with("Bearer realm=\"gatehouse\""),
            "{name}: {challenge}"
        );
        assert!(resp.body.find(&good[..20]).is_none());
    }
    assert_eq!(
        s.upstream.hits(),
        0,
        "a denied request reached the upstream"
    );
}

#[test]
fn rule_violation_is_403() {
    let s = stack();
    let user = bearer(&hs256(TEST_SECRET, &user_claims("carol", 300)));
    let resp = s
        .envoy
        .request("GET", "/admin/panel", &[("authorization", &user)]);
    assert_eq!(resp.status, 403, "{}", resp.body);
    assert_eq!(resp.json()["error"], "forbidden");
    assert!(resp.header("www-authenticate").is_none());

    let mut claims = user_claims("dave", 300);
    claims["role"] = "admin".into();
    let admin = bearer(&hs256(TEST_SECRET, &claims));
    let resp = s
        .envoy
        .request("GET", "/admin/panel", &[("authorization", &admin)]);
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(upstream_header(&resp, "x-user-id"), ["dave"]);
}

#[test]
fn envoy_fails_closed_when_gatehouse_is_gone() {
    let mut s = stack();
    let auth = bearer(&hs256(TEST_SECRET, &user_claims("erin", 300)));
    assert_eq!(
        s.envoy
            .request("GET", "/api", &[("authorization", &auth)])
            .status,
        200
    );
    let before = s.upstream.hits();
    s.gatehouse.proc.signal("KILL");
    s.gatehouse.proc.wait_exit(Duration::from_secs(5));
    for _ in 0..5 {
        let resp = s.envoy.request("GET", "/api", &[("authorization", &auth)]);
        assert_eq!(resp.status, 503, "{}", resp.body);
        assert_eq!(resp.json()["error"], "authorizer_unavailable");
    }
    assert_eq!(
        s.upstream.hits(),
        before,
        "a request passed without gatehouse"
    );
}

#[test]
fn two_hundred_concurrent_requests_are_all_answered_correctly() {
    let s = stack();
    let addr = s.envoy.addr;
    let handles: Vec<_> = (0..200)
        .map(|i| {
            std::thread::spawn(move || {
                let sub = format!("user{i}");
                if i % 5 == 0 {
                    let r = common::http_request(addr, "GET", "/api/x", &[]).expect("answer");
                    assert_eq!(r.status, 401, "request {i}");
                } else {
                    let auth = bearer(&hs256(TEST_SECRET, &user_claims(&sub, 300)));
                    let r =
                        common::http_request(addr, "GET", "/api/x", &[("authorization", &auth)])
                            .expect("answer");
                    assert_eq!(r.status, 200, "request {i}: {}", r.body);
                    assert_eq!(upstream_header(&r, "x-user-id"), [sub]);
                }
            })
        })
        .collect();
    let failed = handles.into_iter().filter_map(|h| h.join().err()).count();
    let (_, stats) = common::http_get(
        s.envoy.admin,
        "/stats?filter=ext_authz|gatehouse.upstream_rq|gatehouse.upstream_cx",
        &[],
    )
    .unwrap_or_default();
    assert_eq!(
        failed,
        0,
        "failed requests; envoy stats:\n{stats}\n{}",
        s.gatehouse
            .proc
            .log_text()
            .lines()
            .filter(|l| !l.contains("decision"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(s.upstream.hits(), 160);
    drop(s.gatehouse);
}

/// The same, with Envoy asking gatehouse's `/auth` (`envoy-http.yaml`,
/// printed for the identity headers configured here).
fn stack_http() -> Stack {
    let upstream = EchoUpstream::start();
    let config = write_config(&gatehouse_yaml(
        "identity_headers:\n  x-user-id: sub\n  x-user-email: email\n  x-user-name: name\n  x-user-role: role\n",
    ));
    let gatehouse = Gatehouse::start(Some(&config), &gatehouse_env());
    assert!(
        gatehouse.wait_ready(Duration::from_secs(10)),
        "{}",
        gatehouse.proc.log_text()
    );
    let envoy = Envoy::start_file("envoy-http.yaml", &[], gatehouse.http_addr, upstream.addr);
    assert!(
        envoy.wait_gatehouse_health(Duration::from_secs(15), |h| h == "healthy"),
        "gatehouse never healthy in envoy: {}",
        envoy.gatehouse_health()
    );
    Stack {
        upstream,
        gatehouse,
        envoy,
    }
}

#[test]
fn http_mode_passes_the_user_and_never_a_client_identity_header() {
    let s = stack_http();
    let auth = bearer(&hs256(TEST_SECRET, &user_claims("alice", 300)));
    let smuggled = [
        ("x-user-id", "mallory"),
        ("x-user-name", "Mallory"),
        ("x-user-role", "admin"),
    ];
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend(smuggled);
    let resp = s.envoy.request("GET", "/api/things?x=1", &headers);
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(upstream_header(&resp, "x-user-id"), ["alice"]);
    assert_eq!(upstream_header(&resp, "x-user-name"), ["User alice"]);
    // alice has no role: gatehouse answers it empty and Envoy removes it.
    assert!(
        upstream_header(&resp, "x-user-role").is_empty(),
        "{}",
        resp.body
    );
    assert!(!resp.body.contains("mallory") && !resp.body.contains("Mallory"));

    // A public path: every identity header is answered empty, so none of
    // the client's reaches the upstream.
    let resp = s.envoy.request("GET", "/public", &smuggled);
    assert_eq!(resp.status, 200, "{}", resp.body);
    for (name, _) in smuggled {
        assert!(
            upstream_header(&resp, name).is_empty(),
            "{name}: {}",
            resp.body
        );
    }
}

#[test]
fn http_mode_judges_the_routed_request_not_the_clients_description() {
    let s = stack_http();
    let spoofs: [&[(&str, &str)]; 4] = [
        &[
            ("x-forwarded-uri", "/public"),
            ("x-forwarded-method", "GET"),
        ],
        &[("x-original-uri", "/public"), ("x-original-method", "GET")],
        &[("x-forwarded-host", "public.example")],
        &[
            ("x-forwarded-method", "OPTIONS"),
            ("access-control-request-method", "GET"),
        ],
    ];
    for headers in spoofs {
        let resp = s.envoy.request("GET", "/api/things", headers);
        assert_eq!(resp.status, 401, "{headers:?}: {}", resp.body);
        assert_eq!(resp.json()["error"], "token_missing", "{headers:?}");
    }
    assert_eq!(
        s.upstream.hits(),
        0,
        "a spoofed request reached the upstream"
    );
}

#[test]
fn http_mode_denials_keep_status_json_and_headers_and_fail_closed() {
    let mut s = stack_http();
    let resp = s.envoy.request("GET", "/api/things", &[]);
    assert_eq!(resp.status, 401, "{}", resp.body);
    assert_eq!(resp.json()["error"], "token_missing");
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    assert_eq!(resp.header("x-gatehouse-error"), Some("token_missing"));
    assert!(
        resp.header("www-authenticate")
            .is_some_and(|c| c.starts_with("Bearer realm=\"gatehouse\"")),
        "{resp:?}"
    );

    let user = bearer(&hs256(TEST_SECRET, &user_claims("carol", 300)));
    let resp = s
        .envoy
        .request("GET", "/admin/panel", &[("authorization", &user)]);
    assert_eq!(resp.status, 403, "{}", resp.body);
    assert_eq!(resp.json()["error"], "forbidden");

    let resp = s
        .envoy
        .request("GET", "/api;x", &[("authorization", &user)]);
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(resp.json()["error"], "bad_request");
    assert_eq!(resp.header("x-gatehouse-error"), Some("bad_request"));
    assert_eq!(
        s.upstream.hits(),
        0,
        "a denied request reached the upstream"
    );

    s.gatehouse.proc.signal("KILL");
    s.gatehouse.proc.wait_exit(Duration::from_secs(5));
    let resp = s.envoy.request("GET", "/api", &[("authorization", &user)]);
    assert_eq!(resp.status, 503, "{}", resp.body);
    assert_eq!(resp.json()["error"], "authorizer_unavailable");
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(s.upstream.hits(), 0, "a request passed without gatehouse");
}
