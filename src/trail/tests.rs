//! The decision trail: admin networks, the bound, what an entry holds (and
//! never holds), and `/debug/decisions` through the HTTP door's router and
//! the gRPC door.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use gatehouse::config::{Config, Env, LoadOptions};
use gatehouse::decision::Authorizer;
use gatehouse::state::AppState;
use gatehouse::telemetry::Metrics;
use gatehouse::trail::{Asked, CAPACITY, Cidr, Trail, TrailSettings, Verdict};
use http::Request;
use serde_json::{Value, json};
use tower::ServiceExt;

const SECRET: &str = "trail-test-secret-0123456789abcdef";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn admin_networks_parse_and_contain() {
    let net = Cidr::parse("10.1.0.0/16").unwrap();
    assert!(net.contains(ip("10.1.200.3")));
    assert!(!net.contains(ip("10.2.0.1")));
    assert!(!net.contains(ip("::1")));
    let one = Cidr::parse(" 192.0.2.7 ").unwrap();
    assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
    let all = Cidr::parse("0.0.0.0/0").unwrap();
    assert!(all.contains(ip("203.0.113.9")));
    let v6 = Cidr::parse("fd00::/8").unwrap();
    assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
    for bad in [
        "",
        "10.0.0.0/33",
        "fd00::/129",
        "10.0.0.0/x",
        "host.example/8",
        "10.0.0/8",
    ] {
        assert!(Cidr::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn loopback_and_admin_networks_may_read_others_may_not() {
    let none = TrailSettings::compile(true, &[]).unwrap();
    for peer in ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"] {
        assert!(none.admits(ip(peer)), "{peer}");
    }
    for peer in [
        "10.0.0.5",
        "192.168.1.1",
        "::ffff:10.0.0.5",
        "2001:db8::1",
        "0.0.0.0",
    ] {
        assert!(!none.admits(ip(peer)), "{peer}");
    }
    let some =
        TrailSettings::compile(true, &["10.0.0.0/8".into(), "2001:db8::/32".into()]).unwrap();
    for peer in ["10.0.0.5", "::ffff:10.0.0.5", "2001:db8::1", "127.0.0.1"] {
        assert!(some.admits(ip(peer)), "{peer}");
    }
    assert!(!some.admits(ip("192.168.1.1")));
}

#[test]
fn config_keys_default_off_and_name_a_bad_network() {
    let opts = LoadOptions {
        env: Env::default().with("S", SECRET),
        ..LoadOptions::default()
    };
    let base = "providers:\n  - name: t\n    secret_env: S\n";
    let c = Config::from_yaml(base, &opts).unwrap();
    assert_eq!(c.trail, TrailSettings::default());
    assert!(!c.trail.enabled);
    let shown = gatehouse::cli::render_check_config(&c);
    assert!(shown.contains("decision_trail: false"), "{shown}");
    assert!(shown.contains("admin_networks: []"), "{shown}");
    let on =
        format!("{base}http:\n  decision_trail: true\n  admin_networks: [10.0.0.0/8, 192.0.2.1]\n");
    let c = Config::from_yaml(&on, &opts).unwrap();
    assert!(c.trail.enabled);
    assert_eq!(c.trail.admin_networks.len(), 2);
    let bad = format!("{base}http:\n  admin_networks: [10.0.0.0/8, 10.0.0.0/40]\n");
    let e = Config::from_yaml(&bad, &opts).unwrap_err();
    assert_eq!(e.key, "http.admin_networks[1]");
    assert!(e.message.contains("prefix"), "{e}");
}

fn asked(id: &str) -> Asked<'_> {
    Asked {
        door: gatehouse::decision::Door::Http,
        family: Some("original"),
        request_id: Some(id),
        method: Some("GET"),
        target: Some("/a?access_token=secret-in-query"),
        host: Some("app.example"),
    }
}

#[test]
fn the_trail_keeps_the_last_thousand_decisions() {
    let trail = Trail::default();
    let extra = 5;
    let ids: Vec<String> = (0..CAPACITY + extra).map(|i| format!("r-{i}")).collect();
    for id in &ids {
        trail.record(asked(id), Some(0), Verdict::Allow("public"));
    }
    let first = trail.lookup("r-0");
    assert_eq!(first["decisions"], json!([]), "the oldest is gone");
    assert_eq!(first["recorded"], (CAPACITY + extra) as u64);
    assert_eq!(first["kept"], CAPACITY);
    assert_eq!(
        trail.lookup(&format!("r-{}", extra - 1))["decisions"],
        json!([])
    );
    let kept = trail.lookup(&format!("r-{extra}"));
    assert_eq!(kept["decisions"].as_array().unwrap().len(), 1);
    let last = trail.lookup(&format!("r-{}", CAPACITY + extra - 1));
    let d = &last["decisions"][0];
    assert_eq!(d["path"], "/a", "the query is never kept");
    assert_eq!(d["method"], "GET");
    assert_eq!(d["host"], "app.example");
    assert_eq!(d["family"], "original");
    assert_eq!(d["rule"], 0);
    assert_eq!(d["result"], "allow");
    assert_eq!(d["status"], 200);
    assert_eq!(d["error"], Value::Null);
    assert_eq!(d["reason"], "public");
    assert!(d["time"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn one_request_id_may_hold_several_decisions_and_long_values_are_cut() {
    let trail = Trail::default();
    let long_id = "é".repeat(100);
    trail.record(asked(&long_id), None, Verdict::Allow("anonymous"));
    let deny = gatehouse::error::AuthError::Missing;
    trail.record(asked(&long_id), None, Verdict::Deny(&deny));
    let found = trail.lookup(&long_id);
    let decisions = found["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), 2);
    assert!(found["request_id"].as_str().unwrap().len() <= 128);
    assert_eq!(decisions[1]["result"], "deny");
    assert_eq!(decisions[1]["status"], 401);
    assert_eq!(decisions[1]["error"], "token_missing");
    assert_eq!(decisions[0]["rule"], Value::Null);
}

/// A state whose rules make `/public` public and everything else need a
/// token from the `t` provider, with the trail as `http` says.
fn state(http: &str) -> Arc<AppState> {
    let opts = LoadOptions {
        env: Env::default().with("S", SECRET),
        ..LoadOptions::default()
    };
    let yaml = format!(
        "providers:\n  - name: t\n    secret_env: S\n\
         identity_headers: {{ x-user-id: sub, x-user-email: email }}\n\
         rules:\n  - match: {{ path_prefix: /public }}\n    access: public\n\
         {http}"
    );
    let config = Config::from_yaml(&yaml, &opts).unwrap();
    let authz = Authorizer::new(Arc::new(config), Arc::new(Metrics::new())).unwrap();
    AppState::new(authz, None)
}

async fn call(state: &Arc<AppState>, req: Request<Body>) -> (u16, String) {
    let resp = gatehouse::http::router(state.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

fn auth(headers: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::builder().method("GET").uri("/auth");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::empty()).unwrap()
}

fn decisions(id: &str, peer: Option<&str>) -> Request<Body> {
    let mut req = Request::builder()
        .uri(format!("/debug/decisions?request_id={id}"))
        .body(Body::empty())
        .unwrap();
    if let Some(peer) = peer {
        let addr = SocketAddr::new(ip(peer), 40000);
        req.extensions_mut().insert(ConnectInfo(addr));
    }
    req
}

#[tokio::test]
async fn the_trail_is_off_by_default() {
    let st = state("");
    let (status, _) = call(
        &st,
        auth(&[
            ("x-original-method", "GET"),
            ("x-original-uri", "/x"),
            ("x-request-id", "r1"),
        ]),
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = call(&st, decisions("r1", Some("127.0.0.1"))).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("http.decision_trail"), "{body}");
    assert_eq!(
        st.trail.lookup("r1")["recorded"],
        0,
        "nothing is recorded while off"
    );
}

#[tokio::test]
async fn remote_peers_are_refused_unless_in_an_admin_network() {
    let st = state("http: { decision_trail: true }\n");
    for peer in [Some("203.0.113.5"), Some("::ffff:203.0.113.5"), None] {
        let (status, body) = call(&st, decisions("r1", peer)).await;
        assert_eq!(status, 403, "{peer:?}: {body}");
        assert!(body.contains("admin_networks"), "{body}");
    }
    let (status, _) = call(&st, decisions("r1", Some("::1"))).await;
    assert_eq!(status, 200);
    let admin = state("http: { decision_trail: true, admin_networks: [203.0.113.0/24] }\n");
    let (status, _) = call(&admin, decisions("r1", Some("203.0.113.5"))).await;
    assert_eq!(status, 200);
    let (status, _) = call(&admin, decisions("r1", Some("198.51.100.1"))).await;
    assert_eq!(status, 403);
    let (status, body) = call(&admin, decisions("", Some("127.0.0.1"))).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn the_trail_holds_what_was_asked_and_no_credential() {
    let st = state("http: { decision_trail: true }\n");
    let claims =
        json!({"sub": "alice", "email": "alice@example.com", "exp": common::tokens::now() + 600});
    let token = common::envoy::hs256(SECRET, &claims);
    let bearer = format!("Bearer {token}");
    let cookie = "better-auth.session_token=cookie-value-0123456789";
    let (status, _) = call(
        &st,
        auth(&[
            ("x-forwarded-method", "POST"),
            ("x-forwarded-uri", "/api/notes?access_token=query-secret"),
            ("x-forwarded-host", "app.example"),
            ("x-request-id", "with-token"),
            ("authorization", &bearer),
            ("cookie", cookie),
            ("x-user-id", "mallory-forged"),
        ]),
    )
    .await;
    assert_eq!(status, 200);
    // An unusable description is recorded with its reason.
    let (status, _) = call(
        &st,
        auth(&[
            ("x-original-uri", "/api/notes"),
            ("x-request-id", "no-method"),
            ("authorization", &bearer),
        ]),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = call(
        &st,
        auth(&[
            ("x-original-uri", "/public"),
            ("x-forwarded-uri", "/api/notes"),
            ("x-forwarded-method", "GET"),
            ("x-request-id", "both"),
        ]),
    )
    .await;
    assert_eq!(status, 400);

    let (status, body) = call(&st, decisions("with-token", Some("127.0.0.1"))).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let d = &v["decisions"][0];
    assert_eq!(
        (
            d["door"].as_str(),
            d["family"].as_str(),
            d["method"].as_str(),
            d["path"].as_str(),
            d["host"].as_str()
        ),
        (
            Some("http"),
            Some("forwarded"),
            Some("POST"),
            Some("/api/notes"),
            Some("app.example")
        )
    );
    assert_eq!(
        (d["result"].as_str(), d["reason"].as_str()),
        (Some("allow"), Some("authenticated"))
    );
    assert_eq!(d["rule"], Value::Null, "default_access decided");
    let (_, missing) = call(&st, decisions("no-method", Some("127.0.0.1"))).await;
    let m: Value = serde_json::from_str(&missing).unwrap();
    let d = &m["decisions"][0];
    assert_eq!(
        (
            d["family"].as_str(),
            d["error"].as_str(),
            d["reason"].as_str()
        ),
        (
            Some("original"),
            Some("bad_request"),
            Some("missing_method")
        )
    );
    assert_eq!(d["method"], Value::Null);
    let (_, both) = call(&st, decisions("both", Some("127.0.0.1"))).await;
    let b: Value = serde_json::from_str(&both).unwrap();
    assert_eq!(b["decisions"][0]["family"], "both");
    assert_eq!(b["decisions"][0]["reason"], "ambiguous_request");

    // No credential, cookie or identity header value, whole or in part.
    for body in [&body, &missing, &both] {
        for secret in [
            token.as_str(),
            "cookie-value",
            "query-secret",
            "mallory",
            "alice",
            SECRET,
        ] {
            assert!(
                !body.contains(secret),
                "{secret} leaked into the trail: {body}"
            );
        }
        for part in token.split('.') {
            assert!(!body.contains(part), "part of the token leaked: {body}");
        }
    }
}

#[tokio::test]
async fn the_grpc_door_records_too() {
    use envoy_types::pb::envoy::service::auth::v3::{
        AttributeContext, CheckRequest as PbCheck, attribute_context,
    };
    use prost::Message;
    let st = state("http: { decision_trail: true }\n");
    let service = gatehouse::grpc::AuthzService::new(st.clone());
    let request = PbCheck {
        attributes: Some(AttributeContext {
            request: Some(attribute_context::Request {
                http: Some(attribute_context::HttpRequest {
                    method: "DELETE".into(),
                    path: "/public/x?y=1".into(),
                    host: "grpc.example".into(),
                    headers: [
                        ("x-request-id".to_owned(), "grpc-1".to_owned()),
                        ("authorization".to_owned(), "Bearer grpc-secret".to_owned()),
                    ]
                    .into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    let bytes = request.encode_to_vec();
    let decoded = gatehouse::grpc::CheckRequest::decode(bytes.as_slice()).unwrap();
    let _ = service.decide(decoded).await;
    let found = st.trail.lookup("grpc-1");
    let d = &found["decisions"][0];
    assert_eq!(
        (
            d["door"].as_str(),
            d["method"].as_str(),
            d["path"].as_str(),
            d["host"].as_str()
        ),
        (
            Some("grpc"),
            Some("DELETE"),
            Some("/public/x"),
            Some("grpc.example")
        )
    );
    assert_eq!(
        (d["rule"].as_u64(), d["reason"].as_str()),
        (Some(0), Some("public"))
    );
    assert_eq!(d["family"], Value::Null);
    assert!(!found.to_string().contains("grpc-secret"));
}
