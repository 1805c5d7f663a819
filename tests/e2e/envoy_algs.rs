//! Through a real Envoy: tokens of every common algorithm, verified against
//! a JWKS URL (EdDSA, RS256, ES256, PS256) or a shared secret (HS256), reach
//! the upstream as the user.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::jwks_server::JwksServer;
use common::tokens::{TestKey, claims, hs_token, jwks};
use common::{EchoUpstream, Envoy, Gatehouse, envoy::upstream_header, envoy::write_config};

const ISSUER: &str = "https://issuer.example";
const SECRET: &str = "algs-e2e-shared-secret-0123456789";

/// The provider `keys`: tokens of [`ISSUER`] verified against `jwks_url`.
fn keys_provider(jwks_url: &str) -> String {
    format!(
        "  - name: keys
    issuer: {ISSUER}
    audiences: [{ISSUER}]
    jwks_uri: {jwks_url}
"
    )
}

#[test]
fn every_algorithm_reaches_upstream_with_identity_headers() {
    let algs = ["EdDSA", "RS256", "ES256", "PS256"];
    let keys: Vec<TestKey> = algs
        .iter()
        .map(|a| TestKey::generate(a, &format!("kid-{a}")))
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let jwks_server = rt.block_on(JwksServer::start(jwks(&keys.iter().collect::<Vec<_>>())));
    let config = write_config(&format!(
        "providers:
{}  - name: secret
    issuer: {ISSUER}
    audiences: [{ISSUER}]
    secret_env: GH_ALGS_SECRET
",
        keys_provider(&jwks_server.url("/api/auth/jwks"))
    ));
    let upstream = EchoUpstream::start();
    let env = [("GH_ALGS_SECRET".to_owned(), SECRET.to_owned())].into();
    let gatehouse = Gatehouse::start(Some(&config), &env);
    assert!(
        gatehouse.wait_ready(Duration::from_secs(10)),
        "{}",
        gatehouse.proc.log_text()
    );
    let envoy = Envoy::start(gatehouse.grpc_addr, upstream.addr);

    let mut cases: Vec<(String, String)> = keys
        .iter()
        .zip(algs)
        .map(|(k, a)| {
            (
                a.to_owned(),
                k.token(&claims(ISSUER, ISSUER, &format!("u-{a}"), 300)),
            )
        })
        .collect();
    cases.push((
        "HS256".to_owned(),
        hs_token(
            "HS256",
            SECRET.as_bytes(),
            &claims(ISSUER, ISSUER, "u-HS256", 300),
        ),
    ));
    for (alg, token) in cases {
        let auth = format!("Bearer {token}");
        let resp = envoy.request(
            "GET",
            "/api/me",
            &[("authorization", &auth), ("x-user-id", "mallory")],
        );
        assert_eq!(resp.status, 200, "{alg}: {}", resp.body);
        assert_eq!(
            upstream_header(&resp, "x-user-id"),
            [format!("u-{alg}")],
            "{alg}"
        );
        assert_eq!(
            upstream_header(&resp, "x-user-email"),
            [format!("u-{alg}@example.test")],
            "{alg}"
        );
    }
    drop(rt);
}

/// A check that takes a while (here: a token signed with a key the JWKS
/// server has just published, served slowly, so gatehouse refetches the
/// keys while Envoy waits) is answered, not abandoned and retried, through
/// both Envoy configurations `proxy-config` prints. Envoy derives the time
/// it gives each try of the Check call from the retry policy's back-off
/// ceiling, so that ceiling is what this test holds up.
#[test]
fn a_slow_check_within_the_timeout_is_answered_through_both_envoy_modes() {
    const JWKS_DELAY: Duration = Duration::from_millis(400);
    let old = TestKey::generate("EdDSA", "kid-old");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let jwks_server = rt.block_on(JwksServer::start(jwks(&[&old])));
    let config = write_config(&format!(
        "providers:
{}    unknown_kid_refetch_interval: 0s
",
        keys_provider(&jwks_server.url("/api/auth/jwks"))
    ));
    let upstream = EchoUpstream::start();
    let gatehouse = Gatehouse::start(Some(&config), &Default::default());
    assert!(
        gatehouse.wait_ready(Duration::from_secs(10)),
        "{}",
        gatehouse.proc.log_text()
    );
    let grpc = Envoy::start(gatehouse.grpc_addr, upstream.addr);
    let http = Envoy::start_file("envoy-http.yaml", &[], gatehouse.http_addr, upstream.addr);

    for (mode, envoy) in [("grpc", &grpc), ("http", &http)] {
        // Fast checks pass as ever.
        let fast = old.token(&claims(ISSUER, ISSUER, &format!("fast-{mode}"), 300));
        let resp = envoy.request(
            "GET",
            "/api/me",
            &[("authorization", &format!("Bearer {fast}"))],
        );
        assert_eq!(resp.status, 200, "{mode}: {}", resp.body);

        // A new key, published slowly: the check waits for the refetch.
        let new = TestKey::generate("EdDSA", &format!("kid-new-{mode}"));
        jwks_server.set_doc(jwks(&[&old, &new]));
        jwks_server.set_delay(JWKS_DELAY);
        let sub = format!("rotated-{mode}");
        let token = new.token(&claims(ISSUER, ISSUER, &sub, 300));
        let before = upstream.hits();
        let started = std::time::Instant::now();
        let resp = envoy.request(
            "GET",
            "/api/me",
            &[("authorization", &format!("Bearer {token}"))],
        );
        let took = started.elapsed();
        jwks_server.set_delay(Duration::ZERO);
        assert_eq!(
            resp.status,
            200,
            "{mode}: a check of {took:?} was not answered: {}\n{}",
            resp.body,
            gatehouse.proc.log_text()
        );
        assert!(
            took >= JWKS_DELAY,
            "{mode}: the check never waited ({took:?})"
        );
        assert_eq!(upstream.hits() - before, 1, "{mode}");
        assert_eq!(upstream_header(&resp, "x-user-id"), [sub], "{mode}");
    }
    drop(rt);
}
