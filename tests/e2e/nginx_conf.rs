//! The shipped `deploy/nginx/nginx.conf` under a real nginx, in front of a
//! scripted authorizer that answers exactly as gatehouse's `/auth` does for
//! each outcome (same statuses, challenges, `x-gatehouse-error` codes and
//! bodies from the real error table). This isolates the config's own
//! mechanics: what nginx sends to the authorizer, how identity headers
//! replace client copies, how every deny status reaches the client, and
//! that nothing reaches the application without an allow.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Response;
use common::{EchoUpstream, HttpResponse, Nginx, http_request};
use gatehouse::internals::{AuthError, BadRequestKind, ForbiddenKind};

/// What the scripted authorizer saw of each auth subrequest.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// The deny gatehouse itself would send.
fn deny(e: &AuthError) -> Response<Body> {
    let deny = e.deny_response();
    let mut b = Response::builder().status(deny.status);
    for (name, value) in deny.headers {
        b = b.header(name, value);
    }
    b.body(Body::from(deny.body)).unwrap()
}

/// Decides by the bearer token's literal value.
async fn decide(State(log): State<Log>, req: Request) -> Response<Body> {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    log.lock().unwrap().push(Seen {
        method: req.method().as_str().to_owned(),
        path: req.uri().to_string(),
        headers,
    });
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let public = req
        .headers()
        .get("x-original-uri")
        .is_some_and(|v| v.as_bytes().starts_with(b"/public"));
    if public {
        // A public rule: every identity header answered empty.
        return Response::builder()
            .header("x-user-id", "")
            .header("x-user-email", "")
            .header("x-user-name", "")
            .body(Body::empty())
            .unwrap();
    }
    match auth {
        "Bearer alice" => Response::builder()
            .header("x-user-id", "alice")
            .header("x-user-email", "alice@example.test")
            .header("x-user-name", "Alice")
            .body(Body::empty())
            .unwrap(),
        "Bearer anonymous" => Response::new(Body::empty()),
        "Bearer expired" => deny(&AuthError::Expired),
        "Bearer other-user" => deny(&AuthError::Forbidden(ForbiddenKind::PathClaimMismatch)),
        "Bearer keys-down" => deny(&AuthError::JwksUnavailable("better-auth".into())),
        "Bearer odd-path" => deny(&AuthError::BadRequest(BadRequestKind::EncodedSeparator)),
        _ => deny(&AuthError::Missing),
    }
}

/// A scripted authorizer on a free port; stops with the test process.
struct Authorizer {
    addr: SocketAddr,
    log: Log,
}

impl Authorizer {
    fn start() -> Authorizer {
        let log: Log = Arc::default();
        let state = log.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let app = Router::new().route("/auth", axum::routing::any(decide));
                let _ = axum::serve(listener, app.with_state(state)).await;
            });
        });
        Authorizer {
            addr: rx.recv().unwrap(),
            log,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }
}

struct Stack {
    authz: Authorizer,
    app: EchoUpstream,
    nginx: Nginx,
}

fn stack() -> Stack {
    let authz = Authorizer::start();
    let app = EchoUpstream::start();
    let nginx = Nginx::start(authz.addr, app.addr);
    Stack { authz, app, nginx }
}

fn get(s: &Stack, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    http_request(s.nginx.addr, "GET", path, headers)
        .unwrap_or_else(|| panic!("nginx did not answer:\n{}", s.nginx.error_log()))
}

fn all_values<'a>(r: &'a HttpResponse, name: &str) -> Vec<&'a str> {
    r.headers
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

const SPOOF: [(&str, &str); 3] = [
    ("x-user-id", "mallory"),
    ("x-user-email", "mallory@evil.test"),
    ("x-user-name", "Mallory"),
];

#[test]
fn nginx_describes_the_original_request_without_its_body() {
    let s = stack();
    let r = http_request(
        s.nginx.addr,
        "POST",
        "/api/items?sort=desc&x=%2e",
        &[
            ("authorization", "Bearer alice"),
            ("cookie", "a=b"),
            // A client describing another request: nginx must not pass it on.
            ("x-original-uri", "/public/x"),
            ("x-original-method", "OPTIONS"),
            ("x-forwarded-uri", "/public/x"),
            ("x-forwarded-method", "GET"),
            ("x-forwarded-host", "evil.test"),
        ],
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = s.authz.seen();
    assert_eq!(seen.len(), 1);
    let sub = &seen[0];
    assert_eq!(sub.path, "/auth");
    // The subrequest itself is a GET; the original method travels in a header.
    assert_eq!(sub.method, "GET");
    assert_eq!(sub.header("x-original-method"), Some("POST"));
    assert_eq!(
        sub.header("x-original-uri"),
        Some("/api/items?sort=desc&x=%2e")
    );
    assert!(
        sub.header("x-forwarded-host")
            .is_some_and(|h| h != "evil.test")
    );
    assert_eq!(sub.header("x-forwarded-uri"), None);
    assert_eq!(sub.header("x-forwarded-method"), None);
    let originals = sub
        .headers
        .iter()
        .filter(|(k, _)| k.starts_with("x-original-"))
        .count();
    assert_eq!(
        originals, 2,
        "nginx's own description only: {:?}",
        sub.headers
    );
    assert!(sub.header("x-request-id").is_some_and(|v| v.len() >= 16));
    // The client's credentials ride along; its body does not.
    assert_eq!(sub.header("authorization"), Some("Bearer alice"));
    assert_eq!(sub.header("cookie"), Some("a=b"));
    assert!(sub.header("content-length").is_none_or(|v| v == "0"));
    // The application sees the original request, method and target intact.
    let echoed = r.json();
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["path"], "/api/items?sort=desc&x=%2e");
}

#[test]
fn identity_headers_replace_client_copies() {
    let s = stack();
    let mut headers = vec![("authorization", "Bearer alice")];
    headers.extend(SPOOF);
    let r = get(&s, "/profile", &headers);
    assert_eq!(r.status, 200, "{}", r.body);
    let h = &r.json()["headers"];
    assert_eq!(h["x-user-id"], serde_json::json!(["alice"]));
    assert_eq!(h["x-user-email"], serde_json::json!(["alice@example.test"]));
    assert_eq!(h["x-user-name"], serde_json::json!(["Alice"]));
}

#[test]
fn anonymous_and_public_requests_carry_no_identity() {
    let s = stack();
    let mut headers = vec![("authorization", "Bearer anonymous")];
    headers.extend(SPOOF);
    let r = get(&s, "/feed", &headers);
    assert_eq!(r.status, 200, "{}", r.body);
    let h = &r.json()["headers"];
    for (name, _) in SPOOF {
        assert!(h.get(name).is_none(), "{name} leaked: {h}");
    }
    let asked = s.authz.seen().len();
    let r = get(&s, "/public/page", &SPOOF);
    assert_eq!(r.status, 200, "{}", r.body);
    let h = &r.json()["headers"];
    for (name, _) in SPOOF {
        assert!(h.get(name).is_none(), "{name} leaked on a public path: {h}");
    }
    assert_eq!(
        s.authz.seen().len(),
        asked + 1,
        "a public path is public by gatehouse's rules, so gatehouse is asked"
    );
}

#[test]
fn unauthenticated_gets_json_401_with_one_challenge() {
    let s = stack();
    let r = get(&s, "/profile", &SPOOF);
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let expected: serde_json::Value = serde_json::from_str(&AuthError::Missing.body()).unwrap();
    assert_eq!(r.json(), expected);
    assert_eq!(
        all_values(&r, "www-authenticate"),
        vec!["Bearer realm=\"gatehouse\""]
    );
    assert_eq!(r.header("x-gatehouse-error"), Some("token_missing"));

    let r = get(&s, "/profile", &[("authorization", "Bearer expired")]);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "token_expired");
    assert_eq!(r.json()["message"], "the token has expired");
    let challenges = all_values(&r, "www-authenticate");
    assert_eq!(challenges.len(), 1, "{challenges:?}");
    assert!(challenges[0].contains("error=\"invalid_token\""));
    assert_eq!(s.app.hits(), 0, "a denied request reached the application");
}

#[test]
fn forbidden_gets_json_403() {
    let s = stack();
    let r = get(
        &s,
        "/api/bob/notes",
        &[("authorization", "Bearer other-user")],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["error"], "forbidden");
    assert!(r.header("www-authenticate").is_none());
    assert_eq!(s.app.hits(), 0);
}

#[test]
fn statuses_nginx_cannot_pass_are_restored() {
    let s = stack();
    let r = get(&s, "/x", &[("authorization", "Bearer keys-down")]);
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["error"], "jwks_unavailable");
    assert_eq!(r.json()["message"], "signing keys are unavailable");
    let r = get(&s, "/x", &[("authorization", "Bearer odd-path")]);
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"], "bad_request");
    assert_eq!(s.app.hits(), 0);
}

#[test]
fn authorizer_down_fails_closed() {
    let app = EchoUpstream::start();
    // Nothing listens on this address, and nothing can start to.
    let refusing = common::ports::closed_port();
    let nginx = Nginx::start(SocketAddr::from(([127, 0, 0, 1], refusing.port)), app.addr);
    let r = http_request(
        nginx.addr,
        "GET",
        "/x",
        &[("authorization", "Bearer alice")],
    )
    .unwrap();
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["error"], "authorizer_unavailable");
    assert_eq!(app.hits(), 0);
    let r = http_request(nginx.addr, "GET", "/nginx-healthz", &[]).unwrap();
    assert_eq!(r.status, 200);
}
