//! The Envoy door over real gRPC, in process: `server::run` on 127.0.0.1:0,
//! called with envoy-types' own client and tonic-health's client.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};
use gatehouse::config::raw::RawConfig;
use gatehouse::config::{Access, Config, LogFormat, TokenSource};
use gatehouse::decision::Authorizer;
use gatehouse::identity::IdentityHeaders;
use gatehouse::policy::RuleSet;
use gatehouse::server::{Shutdown, run};
use gatehouse::state::AppState;
use gatehouse::telemetry::Metrics;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

fn config(delay: Duration) -> Config {
    Config {
        effective: RawConfig::default(),
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        providers: Vec::new(),
        token_sources: vec![TokenSource::Bearer],
        identity_headers: IdentityHeaders::compile([
            ("x-user-id", "sub"),
            ("x-user-email", "email"),
            ("x-user-name", "name"),
        ])
        .unwrap(),
        rules: RuleSet::compile(&[], Access::Authenticated, true).unwrap(),
        default_access: Access::Authenticated,
        allow_cors_preflight: true,
        session: None,
        request_headers: Default::default(),
        trail: Default::default(),
        token_cache_max_bytes: 0,
        shutdown_delay: delay,
        shutdown_grace: Duration::from_secs(5),
        tls: None,
        log_filter: "info".into(),
        log_format: LogFormat::Text,
        redis: None,
        rate_limits: Default::default(),
        revocation_retention: Duration::from_secs(86400),
        admin: gatehouse::config::AdminSpec {
            addr: "127.0.0.1:0".parse().unwrap(),
            tls: None,
        },
    }
}

struct Server {
    grpc: std::net::SocketAddr,
    http: std::net::SocketAddr,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<()>,
    state: Arc<AppState>,
}

async fn start(delay: Duration) -> Server {
    let authz = Authorizer::new(Arc::new(config(delay)), Arc::new(Metrics::new())).unwrap();
    authz.start();
    let state = AppState::new(authz, None);
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (g, h) = (grpc.local_addr().unwrap(), http.local_addr().unwrap());
    let shutdown = Shutdown::new();
    let task = tokio::spawn({
        let (state, shutdown) = (state.clone(), shutdown.clone());
        async move { run(grpc, http, state, shutdown).await.unwrap() }
    });
    Server {
        grpc: g,
        http: h,
        shutdown,
        task,
        state,
    }
}

async fn channel(addr: std::net::SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn request(http: HttpRequest) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(http),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

fn get(path: &str, headers: &[(&str, &str)]) -> HttpRequest {
    HttpRequest {
        method: "GET".into(),
        path: path.into(),
        host: "app.example".into(),
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<HashMap<_, _>>(),
        ..Default::default()
    }
}

/// (HTTP status, gRPC code, headers, body) of a denial; panics on allow.
fn denied(resp: &CheckResponse) -> (i32, i32, HashMap<String, String>, serde_json::Value) {
    let code = resp.status.as_ref().expect("status").code;
    match resp.http_response.as_ref().expect("http_response") {
        HttpResponse::DeniedResponse(d) => {
            let headers = d
                .headers
                .iter()
                .map(|h| {
                    let h = h.header.as_ref().unwrap();
                    (h.key.clone(), h.value.clone())
                })
                .collect();
            let body = serde_json::from_str(&d.body).expect("JSON body");
            (d.status.as_ref().unwrap().code, code, headers, body)
        }
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[tokio::test]
async fn missing_attributes_are_denied_with_bad_request() {
    let server = start(Duration::ZERO).await;
    let mut client = AuthorizationClient::new(channel(server.grpc).await);
    let resp = client
        .check(CheckRequest { attributes: None })
        .await
        .expect("a deny is an OK gRPC call")
        .into_inner();
    let (status, code, headers, body) = denied(&resp);
    assert_eq!(status, 400);
    assert_eq!(code, 3, "INVALID_ARGUMENT");
    assert_eq!(body["error"], "bad_request");
    assert_eq!(headers["content-type"], "application/json");

    // HTTP attributes without a path are just as unusable.
    let resp = client
        .check(request(HttpRequest {
            method: "GET".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(denied(&resp).0, 400);
}

#[tokio::test]
async fn no_credential_is_401_with_challenge_and_json_body() {
    let server = start(Duration::ZERO).await;
    let mut client = AuthorizationClient::new(channel(server.grpc).await);
    let resp = client
        .check(request(get("/api/things", &[("x-request-id", "r-1")])))
        .await
        .unwrap()
        .into_inner();
    let (status, code, headers, body) = denied(&resp);
    assert_eq!(status, 401);
    assert_eq!(code, 16, "UNAUTHENTICATED");
    assert_eq!(body["error"], "token_missing");
    assert!(body["message"].is_string());
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"gatehouse\"");
    assert_eq!(headers["content-type"], "application/json");
    assert!(resp.dynamic_metadata.is_none());
}

#[tokio::test]
async fn header_map_raw_values_are_read() {
    let server = start(Duration::ZERO).await;
    let mut client = AuthorizationClient::new(channel(server.grpc).await);
    // What Envoy sends with encode_raw_headers: pseudo-headers and raw bytes
    // in header_map, the map empty.
    let http = HttpRequest {
        header_map: Some(HeaderMap {
            headers: vec![
                HeaderValue {
                    key: ":method".into(),
                    raw_value: b"GET".to_vec(),
                    ..Default::default()
                },
                HeaderValue {
                    key: ":path".into(),
                    raw_value: b"/api/things".to_vec(),
                    ..Default::default()
                },
                HeaderValue {
                    key: "Authorization".into(),
                    raw_value: b"Bearer not.a.valid-token".to_vec(),
                    ..Default::default()
                },
            ],
        }),
        ..Default::default()
    };
    let resp = client.check(request(http)).await.unwrap().into_inner();
    let (status, code, headers, body) = denied(&resp);
    assert_eq!(status, 401);
    assert_eq!(code, 16);
    // The credential in raw_value was found: this is not "missing".
    assert_ne!(body["error"], "token_missing", "{body}");
    assert!(headers["www-authenticate"].contains("error=\"invalid_token\""));

    // A header value that is not valid HTTP is refused, never dropped.
    let http = HttpRequest {
        method: "GET".into(),
        path: "/api/things".into(),
        header_map: Some(HeaderMap {
            headers: vec![HeaderValue {
                key: "authorization".into(),
                raw_value: b"Bearer a\nb".to_vec(),
                ..Default::default()
            }],
        }),
        ..Default::default()
    };
    let resp = client.check(request(http)).await.unwrap().into_inner();
    assert_eq!(denied(&resp).0, 400);
}

async fn health(client: &mut HealthClient<Channel>, service: &str) -> ServingStatus {
    let resp = client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner();
    ServingStatus::try_from(resp.status).unwrap()
}

#[tokio::test]
async fn health_goes_not_serving_at_once_while_checks_are_still_answered() {
    let server = start(Duration::from_secs(2)).await;
    let chan = channel(server.grpc).await;
    let mut hc = HealthClient::new(chan.clone());
    let mut authz = AuthorizationClient::new(chan);
    let service = "envoy.service.auth.v3.Authorization";
    assert_eq!(health(&mut hc, "").await, ServingStatus::Serving);
    assert_eq!(health(&mut hc, service).await, ServingStatus::Serving);
    let (status, _) = common_http_get(server.http, "/readyz").await;
    assert_eq!(status, 200);

    server.shutdown.signal();
    let t0 = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        server
            .state
            .draining
            .load(std::sync::atomic::Ordering::SeqCst)
    );
    assert_eq!(health(&mut hc, "").await, ServingStatus::NotServing);
    assert_eq!(health(&mut hc, service).await, ServingStatus::NotServing);
    let (status, _) = common_http_get(server.http, "/readyz").await;
    assert_eq!(status, 503);
    let (status, _) = common_http_get(server.http, "/healthz").await;
    assert_eq!(status, 200, "alive while draining");

    // Still answering checks for the whole delay, on the open connection
    // and on new ones.
    while t0.elapsed() < Duration::from_millis(1700) {
        let resp = authz
            .check(request(get("/x", &[])))
            .await
            .expect("answered while draining")
            .into_inner();
        assert_eq!(denied(&resp).0, 401);
        let mut fresh = AuthorizationClient::new(channel(server.grpc).await);
        fresh
            .check(request(get("/x", &[])))
            .await
            .expect("new connection accepted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .expect("server stops after the delay")
        .unwrap();
    assert!(
        t0.elapsed() >= Duration::from_secs(2),
        "stopped before the delay"
    );
    assert!(
        tokio::net::TcpStream::connect(server.grpc).await.is_err(),
        "listener closed after the drain"
    );
}

#[tokio::test]
async fn second_signal_skips_the_delay() {
    let server = start(Duration::from_secs(30)).await;
    server.shutdown.signal();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!server.task.is_finished(), "the delay is running");
    server.shutdown.signal();
    tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .expect("second signal ends the delay")
        .unwrap();
}

/// A one-shot HTTP/1.1 GET on the HTTP listener.
async fn common_http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    let status = buf
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, buf)
}

#[tokio::test]
async fn reload_swaps_on_success_and_keeps_the_running_generation_on_error() {
    use gatehouse::config::ConfigError;
    use gatehouse::server::{Reloader, reload};
    let server = start(Duration::ZERO).await;
    let before = server.state.authorizer();

    let broken: Reloader = Arc::new(|| Err(ConfigError::new("rules[3].access", "bad value")));
    let err = reload(&server.state, &broken).await.unwrap_err();
    assert_eq!(err.key(), Some("rules[3].access"));
    assert!(
        Arc::ptr_eq(&before, &server.state.authorizer()),
        "swapped on error"
    );

    let good: Reloader = Arc::new(|| Ok(config(Duration::from_secs(7))));
    reload(&server.state, &good).await.unwrap();
    let after = server.state.authorizer();
    assert!(!Arc::ptr_eq(&before, &after), "not swapped");
    assert_eq!(after.config().shutdown_delay, Duration::from_secs(7));
    // Metrics survive the swap.
    assert!(Arc::ptr_eq(before.metrics(), after.metrics()));
    // The new generation answers.
    let mut client = AuthorizationClient::new(channel(server.grpc).await);
    let resp = client
        .check(request(get("/x", &[])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(denied(&resp).0, 401);
}
