//! The HTTP door's router, driven in-process with `tower::ServiceExt::oneshot`:
//! the forward-auth header conventions (nginx, Traefik, Caddy), fail-closed
//! handling of incomplete auth requests, the probes, metrics and the demo
//! JWKS routes.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use common::metrics;
use gatehouse::config::raw::RawRule;
use gatehouse::config::{
    Access, Config, KeySource, LogFormat, ProviderSpec, RawConfig, TokenSource,
};
use gatehouse::decision::Authorizer;
use gatehouse::identity::IdentityHeaders;
use gatehouse::policy::RuleSet;
use gatehouse::state::AppState;
use gatehouse::telemetry::Metrics;
use http::{Request, Response, StatusCode};
use tower::ServiceExt;

/// A configuration without providers: public rules allow, everything else
/// needs a credential that cannot verify.
fn config(rules_yaml: &str, default_access: Access) -> Config {
    let rules: Vec<RawRule> = serde_yaml_ng::from_str(rules_yaml).expect("rules yaml");
    Config {
        effective: RawConfig::default(),
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        providers: Vec::new(),
        token_sources: vec![
            TokenSource::Bearer,
            TokenSource::Cookie("better-auth.session_token".into()),
        ],
        identity_headers: IdentityHeaders::compile([
            ("x-user-id", "sub"),
            ("x-user-email", "email"),
            ("x-user-name", "name"),
        ])
        .unwrap(),
        rules: RuleSet::compile(&rules, default_access, true).unwrap(),
        default_access,
        allow_cors_preflight: true,
        session: None,
        request_headers: Default::default(),
        trail: Default::default(),
        token_cache_max_bytes: 1 << 20,
        shutdown_delay: Duration::from_secs(5),
        shutdown_grace: Duration::from_secs(20),
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

fn state(config: Config, demo_jwks: Option<String>) -> Arc<AppState> {
    let authz = Authorizer::new(Arc::new(config), Arc::new(Metrics::new())).unwrap();
    AppState::new(authz, demo_jwks)
}

fn default_state() -> Arc<AppState> {
    state(
        config(
            r#"
- match: { path_prefix: /public }
  access: public
- match: { path_prefix: /readonly, methods: [GET, HEAD] }
  access: public
"#,
            Access::Authenticated,
        ),
        None,
    )
}

async fn call(state: &Arc<AppState>, req: Request<Body>) -> (Response<Body>, String) {
    let resp = gatehouse::http::router(state.clone())
        .oneshot(req)
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    (
        Response::from_parts(parts, Body::empty()),
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

fn auth(headers: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::builder().method("GET").uri("/auth");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::empty()).unwrap()
}

fn assert_deny(resp: &Response<Body>, body: &str, status: u16, code: &str) {
    assert_eq!(resp.status().as_u16(), status, "{body}");
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.headers()["x-gatehouse-error"], code);
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["error"], code);
    assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(
        resp.headers().contains_key("www-authenticate"),
        status == 401,
        "challenge only on 401"
    );
}

#[tokio::test]
async fn traefik_and_caddy_forwarded_headers_describe_the_request() {
    let st = default_state();
    // Traefik: GET to the auth address, original request in X-Forwarded-*.
    let (resp, body) = call(
        &st,
        auth(&[
            ("x-forwarded-method", "GET"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "app.example.com"),
            ("x-forwarded-uri", "/public/page?q=1"),
            ("x-forwarded-for", "203.0.113.7"),
            ("x-user-id", "mallory"),
        ]),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK, "{body}");
    assert!(body.is_empty());
    assert_eq!(
        resp.headers()["x-user-id"],
        "",
        "a public allow answers every identity header empty, never the client's copy"
    );

    // The forwarded URI, not /auth, is what the rules see.
    let (resp, body) = call(
        &st,
        auth(&[
            ("x-forwarded-method", "GET"),
            ("x-forwarded-host", "app.example.com"),
            ("x-forwarded-uri", "/private"),
        ]),
    )
    .await;
    assert_deny(&resp, &body, 401, "token_missing");
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"gatehouse\""
    );

    // Caddy's forward_auth: same headers; the method counts.
    let (resp, body) = call(
        &st,
        auth(&[
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/readonly/doc"),
            ("host", "app.example.com"),
        ]),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK, "{body}");
    let (resp, body) = call(
        &st,
        auth(&[
            ("x-forwarded-method", "DELETE"),
            ("x-forwarded-uri", "/readonly/doc"),
            ("host", "app.example.com"),
        ]),
    )
    .await;
    assert_deny(&resp, &body, 401, "token_missing");
}

#[tokio::test]
async fn any_method_reaches_auth() {
    let st = default_state();
    for method in ["GET", "POST", "HEAD", "PUT", "OPTIONS"] {
        let req = Request::builder()
            .method(method)
            .uri("/auth")
            .header("x-original-method", "GET")
            .header("x-original-uri", "/public/x")
            .body(Body::empty())
            .unwrap();
        let (resp, _) = call(&st, req).await;
        assert_eq!(resp.status(), StatusCode::OK, "{method}");
    }
}

#[tokio::test]
async fn missing_original_request_is_a_bad_request() {
    let st = state(config("[]", Access::Public), None);
    // Even with everything public, an auth request that does not say what
    // it is about is refused.
    for headers in [
        vec![],
        vec![("x-original-method", "GET")],
        vec![("x-forwarded-method", "GET")],
        vec![("x-original-uri", "/x")],
        vec![
            ("x-original-method", "GET"),
            ("x-original-uri", "/a"),
            ("x-original-uri", "/b"),
        ],
    ] {
        let (resp, body) = call(&st, auth(&headers)).await;
        assert_deny(&resp, &body, 400, "bad_request");
    }
    let (resp, _) = call(
        &st,
        auth(&[("x-original-method", "GET"), ("x-original-uri", "/x")]),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

/// Serves one JWKS document on a free loopback port for the test's lifetime.
async fn jwks_server(doc: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || async move {
            ([(http::header::CONTENT_TYPE, "application/json")], doc)
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/jwks")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_each_decision_and_measure_key_age_at_scrape() {
    let uri = jwks_server(
        r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#,
    )
    .await;
    let mut cfg = config(
        "- match: { path_prefix: /public }\n  access: public\n",
        Access::Authenticated,
    );
    cfg.providers.push(ProviderSpec {
        name: "remote".into(),
        issuer: Some("https://issuer.test".into()),
        audiences: Vec::new(),
        keys: KeySource::JwksUri(uri),
        algorithms: None,
        refresh_interval: Duration::from_secs(300),
        unknown_kid_refetch_interval: Duration::from_secs(30),
        leeway: Duration::from_secs(60),
        require: vec!["exp".into()],
        max_lifetime: None,
        session_claim: None,
    });
    let st = state(cfg, None);
    let started = std::time::Instant::now();
    st.authorizer().start();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !st.is_ready() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(st.is_ready(), "keys never loaded");
    let scrape = || async {
        let (resp, body) = call(&st, Request::get("/metrics").body(Body::empty()).unwrap()).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let ct = resp.headers()["content-type"].to_str().unwrap();
        assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
        assert!(body.ends_with("# EOF\n"), "{body}");
        body
    };
    let before = scrape().await;
    // Well formed, names the provider's issuer and kid, signature all zeros.
    let token = "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.\
                 eyJpc3MiOiJodHRwczovL2lzc3Vlci50ZXN0Iiwic3ViIjoieCIsImV4cCI6NDEwMjQ0NDgwMH0.\
                 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let bearer = format!("Bearer {token}");
    for (uri, authz) in [
        ("/public/a", None),
        ("/private", None),
        ("/private", Some(bearer.as_str())),
    ] {
        let mut h = vec![("x-original-method", "GET"), ("x-original-uri", uri)];
        if let Some(a) = authz {
            h.push(("authorization", a));
        }
        call(&st, auth(&h)).await;
    }
    // The age is measured when scraped: it grows between scrapes with no fetch.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = scrape().await;
    let delta = |f: &dyn Fn(&str) -> f64| f(&after) - f(&before);
    for (result, reason) in [
        ("allow", "public"),
        ("deny", "token_missing"),
        ("deny", "bad_signature"),
    ] {
        assert_eq!(
            delta(&|t| metrics::decisions(t, "http", result, reason)),
            1.0,
            "{result}/{reason}:\n{after}"
        );
    }
    assert_eq!(
        delta(&|t| metrics::decisions(t, "http", "allow", "authenticated")),
        0.0
    );
    let cache = |result| {
        move |t: &str| metrics::count(t, "gatehouse_token_cache_total", &[("result", result)])
    };
    assert_eq!(delta(&cache("miss")), 1.0, "{after}");
    assert_eq!(delta(&cache("hit")), 0.0, "{after}");
    assert_eq!(
        delta(&|t| metrics::count(t, "gatehouse_verify_duration_seconds_count", &[])),
        3.0,
        "{after}"
    );
    let fetches = |result| {
        metrics::value(
            &after,
            "gatehouse_jwks_fetches_total",
            &[("provider", "remote"), ("result", result)],
        )
    };
    assert_eq!(fetches("success"), Some(1.0), "{after}");
    assert_eq!(fetches("failure"), Some(0.0), "{after}");
    let age = |t: &str| {
        metrics::value(t, "gatehouse_jwks_age_seconds", &[("provider", "remote")])
            .unwrap_or_else(|| panic!("no key age:\n{t}"))
    };
    assert!(
        age(&after) - age(&before) >= 0.3,
        "{} then {}",
        age(&before),
        age(&after)
    );
    assert!(age(&after) <= started.elapsed().as_secs_f64(), "{after}");
    assert!(!after.contains("door=\"cli\""), "{after}");
}

#[tokio::test]
async fn readiness_follows_draining_and_health_does_not() {
    let st = default_state();
    let get = |p: &str| Request::get(p).body(Body::empty()).unwrap();
    assert_eq!(call(&st, get("/readyz")).await.0.status(), StatusCode::OK);
    st.draining.store(true, Ordering::SeqCst);
    assert_eq!(
        call(&st, get("/readyz")).await.0.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(call(&st, get("/healthz")).await.0.status(), StatusCode::OK);
    // Draining still answers decisions (proxies move away on their own time).
    let (resp, _) = call(
        &st,
        auth(&[
            ("x-original-method", "GET"),
            ("x-original-uri", "/public/x"),
        ]),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn demo_jwks_is_served_only_in_demo() {
    let get = |p: &str| Request::get(p).body(Body::empty()).unwrap();
    let st = default_state();
    for p in ["/api/auth/jwks", "/.well-known/jwks.json"] {
        assert_eq!(call(&st, get(p)).await.0.status(), StatusCode::NOT_FOUND);
    }
    let doc = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AA","kid":"demo"}]}"#;
    let st = state(config("[]", Access::Authenticated), Some(doc.into()));
    for p in ["/api/auth/jwks", "/.well-known/jwks.json"] {
        let (resp, body) = call(&st, get(p)).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "application/json");
        assert_eq!(body, doc);
    }
}
