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
  - name: keys
    issuer: {ISSUER}
    audiences: [{ISSUER}]
    jwks_uri: {}
  - name: secret
    issuer: {ISSUER}
    audiences: [{ISSUER}]
    secret_env: GH_ALGS_SECRET
",
        jwks_server.url("/api/auth/jwks")
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
