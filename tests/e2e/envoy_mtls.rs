//! Envoy running `deploy/envoy/envoy-mtls.yaml` asks gatehouse over mutual
//! TLS: checks pass with Envoy's client certificate, while a client with
//! no certificate is refused by gatehouse.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::envoy::{
    TEST_SECRET, gatehouse_env, gatehouse_yaml, hs256, upstream_header, user_claims, write_config,
};
use common::pki::{Pki, https_client, tls_yaml};
use common::{EchoUpstream, Envoy, Gatehouse};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_checks_through_gatehouse_over_mtls() {
    let pki = Pki::new("gatehouse mTLS CA");
    let (ca, cert, key) = pki.write_server(&pki.server(1));
    let envoy_id = pki.client(2);
    let client_cert = pki.write("envoy-client.pem", &envoy_id.cert_pem);
    let client_key = pki.write("envoy-client.key", &envoy_id.key_pem);

    let upstream = EchoUpstream::start();
    let yaml = gatehouse_yaml(&tls_yaml(&cert, &key, Some(&ca)));
    let gatehouse = Gatehouse::start(Some(&write_config(&yaml)), &gatehouse_env());

    let (ca_s, cc_s, ck_s) = (
        ca.display().to_string(),
        client_cert.display().to_string(),
        client_key.display().to_string(),
    );
    let envoy = Envoy::start_file(
        "envoy-mtls.yaml",
        &[
            ("/etc/envoy/tls/ca.crt", &ca_s),
            ("/etc/envoy/tls/client.crt", &cc_s),
            ("/etc/envoy/tls/client.key", &ck_s),
        ],
        gatehouse.grpc_addr,
        upstream.addr,
    );
    // Envoy's gRPC health check reaches gatehouse over mTLS.
    assert!(
        envoy.wait_gatehouse_health(Duration::from_secs(15), |h| h == "healthy"),
        "gatehouse never healthy in envoy: {}\n{}\n{}",
        envoy.gatehouse_health(),
        envoy.proc.log_text(),
        gatehouse.proc.log_text()
    );

    let token = hs256(TEST_SECRET, &user_claims("alice", 300));
    let auth = format!("Bearer {token}");
    let ok = envoy.request("GET", "/api/things", &[("authorization", &auth)]);
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(upstream_header(&ok, "x-user-id"), ["alice"]);

    let denied = envoy.request("GET", "/api/things", &[]);
    assert_eq!(denied.status, 401, "{}", denied.body);
    assert!(
        denied
            .header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer")),
        "{denied:?}"
    );

    // A client without a certificate is refused on gatehouse's HTTP port.
    let url = format!("https://localhost:{}/healthz", gatehouse.http_addr.port());
    assert!(
        https_client(&pki.ca_pem, None)
            .get(&url)
            .send()
            .await
            .is_err()
    );
    let r = https_client(&pki.ca_pem, Some(&envoy_id))
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
