//! TLS and mTLS on both listeners of the real binary: HTTPS `/healthz` and
//! `/auth`, gRPC `Check` and health over TLS, clients without (or with a
//! foreign) certificate refused under mTLS, and a rotated certificate
//! picked up on SIGHUP while a broken one is refused.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::Gatehouse;
use common::envoy::{TEST_SECRET, gatehouse_env, gatehouse_yaml, hs256, user_claims, write_config};
use common::pki::{Issued, Pki, grpc_channel, https_client, presented_cert, tls_yaml};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

struct Tls {
    pki: Pki,
    gatehouse: Gatehouse,
}

/// gatehouse with a server certificate (serial 1) and, with `mtls`, the
/// same CA as client CA.
async fn start(mtls: bool) -> Tls {
    let pki = Pki::new("gatehouse test CA");
    let (ca, cert, key) = pki.write_server(&pki.server(1));
    let yaml = gatehouse_yaml(&tls_yaml(&cert, &key, mtls.then_some(ca.as_path())));
    let gatehouse = Gatehouse::start(Some(&write_config(&yaml)), &gatehouse_env());
    let tls = Tls { pki, gatehouse };
    let client = tls.client(true);
    let url = tls.url("/readyz");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(r) = client.get(&url).send().await
            && r.status() == 200
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ready over TLS:\n{}",
            tls.gatehouse.proc.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tls
}

impl Tls {
    fn url(&self, path: &str) -> String {
        format!(
            "https://localhost:{}{path}",
            self.gatehouse.http_addr.port()
        )
    }

    fn client_cert(&self) -> Issued {
        self.pki.client(100)
    }

    /// An HTTPS client; `with_cert` presents a client certificate from the CA.
    fn client(&self, with_cert: bool) -> reqwest::Client {
        let id = with_cert.then(|| self.client_cert());
        https_client(&self.pki.ca_pem, id.as_ref())
    }
}

fn check(token: &str) -> CheckRequest {
    let headers: HashMap<String, String> =
        [("authorization".to_owned(), format!("Bearer {token}"))].into();
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    path: "/api/things".into(),
                    host: "app.example".into(),
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// gRPC `Check` with a valid token: returns the status code (0 = allow).
async fn grpc_check(channel: tonic::transport::Channel) -> Result<i32, tonic::Status> {
    let token = hs256(TEST_SECRET, &user_claims("alice", 300));
    let resp = AuthorizationClient::new(channel)
        .check(check(&token))
        .await?
        .into_inner();
    Ok(resp.status.map(|s| s.code).unwrap_or(-1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_door_answers_healthz_and_auth_over_tls() {
    let t = start(false).await;
    let client = t.client(false);
    let r = client.get(t.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    let token = hs256(TEST_SECRET, &user_claims("alice", 300));
    let r = client
        .get(t.url("/auth"))
        .header("authorization", format!("Bearer {token}"))
        .header("x-original-uri", "/api/things")
        .header("x-original-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-user-id"], "alice");
    assert_eq!(r.version(), reqwest::Version::HTTP_11);

    let r = client
        .get(t.url("/auth"))
        .header("x-original-uri", "/api/things")
        .header("x-original-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Plain HTTP on the TLS port gets no HTTP answer.
    assert!(common::http_get(t.gatehouse.http_addr, "/healthz", &[]).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_door_answers_check_and_health_over_tls() {
    let t = start(false).await;
    let channel = grpc_channel(t.gatehouse.grpc_addr, &t.pki.ca_pem, None)
        .await
        .unwrap();
    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);
    assert_eq!(grpc_check(channel).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_refuses_clients_without_a_certificate_from_the_ca() {
    let t = start(true).await;

    // HTTP door: no certificate → refused; the CA's client cert → served.
    let err = t.client(false).get(t.url("/healthz")).send().await;
    assert!(err.is_err(), "served without a client certificate: {err:?}");
    let r = t.client(true).get(t.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // A certificate from another CA is refused too.
    let other = Pki::new("someone else");
    let foreign = other.client(7);
    let err = https_client(&t.pki.ca_pem, Some(&foreign))
        .get(t.url("/healthz"))
        .send()
        .await;
    assert!(err.is_err(), "served a foreign client certificate: {err:?}");

    // gRPC door: the handshake (or the first call right after it) fails
    // without a certificate; with one, Check allows.
    let addr = t.gatehouse.grpc_addr;
    let refused = match grpc_channel(addr, &t.pki.ca_pem, None).await {
        Err(_) => true,
        Ok(ch) => grpc_check(ch).await.is_err(),
    };
    assert!(refused, "gRPC served without a client certificate");
    let id = t.client_cert();
    let ch = grpc_channel(addr, &t.pki.ca_pem, Some(&id)).await.unwrap();
    assert_eq!(grpc_check(ch).await.unwrap(), 0);

    // Refused handshakes did not stop the accept loops.
    let r = t.client(true).get(t.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(t.gatehouse.proc.log_text().contains("listening"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tls_client_does_not_block_other_connections() {
    let t = start(false).await;
    // Connections that never start a handshake.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(
            tokio::net::TcpStream::connect(t.gatehouse.http_addr)
                .await
                .unwrap(),
        );
    }
    let r = tokio::time::timeout(
        Duration::from_secs(3),
        t.client(false).get(t.url("/healthz")).send(),
    )
    .await
    .expect("blocked by idle clients")
    .unwrap();
    assert_eq!(r.status(), 200);
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rereads_a_rotated_certificate_and_keeps_the_old_one_on_a_bad_file() {
    let t = start(true).await;
    let before = presented_cert(t.gatehouse.http_addr, &t.pki.ca_pem).await;

    // Rotate: new key and serial in the same files, then SIGHUP.
    let rotated = t.pki.server(2);
    assert_ne!(before, rotated.der);
    t.pki.write("server.pem", &rotated.cert_pem);
    t.pki.write("server.key", &rotated.key_pem);
    t.gatehouse.proc.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let http = presented_cert(t.gatehouse.http_addr, &t.pki.ca_pem).await;
        let grpc = presented_cert(t.gatehouse.grpc_addr, &t.pki.ca_pem).await;
        if http == rotated.der && grpc == rotated.der {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rotated certificate not served:\n{}",
            t.gatehouse.proc.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A broken key file: the reload is refused, naming the key, and the
    // rotated certificate stays in use.
    t.pki.write("server.key", "not a key\n");
    t.gatehouse.proc.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !t.gatehouse.proc.log_text().contains("tls.key_file") {
        assert!(
            Instant::now() < deadline,
            "bad key not reported:\n{}",
            t.gatehouse.proc.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let now = presented_cert(t.gatehouse.http_addr, &t.pki.ca_pem).await;
    assert_eq!(now, rotated.der);
    let r = t.client(true).get(t.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
