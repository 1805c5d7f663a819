//! The HTTP door: nginx `auth_request`, Traefik ForwardAuth, Caddy
//! `forward_auth` and Envoy's HTTP-mode `ext_authz` ask `/auth`; the same
//! listener serves `/healthz`, `/readyz`, `/metrics`, the decision trail at
//! `/debug/decisions` (when on, to loopback and `http.admin_networks`
//! only) and, under `gatehouse demo`, the built-in issuer's JWKS
//! (docs/http-api.md).
//!
//! `/auth` only translates. The proxy's description of the original request
//! (one header family: `X-Original-*` from nginx, `X-Forwarded-*` from
//! Traefik, Caddy and Envoy's HTTP mode) becomes a [`CheckInput`]; every
//! header a proxy did not overwrite is the client's, so a second family, a
//! repeated header or a missing one is a 400 that says which header and
//! which proxy line, never a guess. The [`Decision`] becomes 200 with every
//! configured identity header (empty where the identity has no value, so a
//! proxy copying them replaces the client's copies), or the one deny
//! rendering of [`crate::error`], which carries `x-gatehouse-error` so a
//! proxy that cannot forward the body (nginx) can still render it.
//!
//! It deliberately does not bind sockets, terminate TLS or drain on
//! shutdown ([`crate::server`] does), and it holds no policy of its own.
//!
//! Built on axum rather than bare hyper: the door needs a handful of routes,
//! method-agnostic matching for `/auth`, automatic `HEAD` for the probes and
//! `oneshot` testing of the router as a plain `tower::Service`; axum gives
//! that for the cost of one route lookup, and the hot handler still works on
//! the raw `http::Request` so no header map is copied.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::routing::{any, get};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

use crate::config::RequestHeaders;
use crate::decision::{CheckInput, Decision, Door};
use crate::error::{AuthError, BadRequestKind, Family};
use crate::identity::RenderedHeaders;
use crate::state::AppState;
use crate::trail::{Asked, Verdict};

/// Lists the identity headers an allow leaves empty, so Envoy's HTTP mode
/// removes the client's copies from the upstream request.
pub(crate) const HEADERS_TO_REMOVE: HeaderName =
    HeaderName::from_static("x-envoy-auth-headers-to-remove");

/// nginx: the method of the original request (the subrequest itself is a GET).
const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
/// nginx: the original request target (`$request_uri`: path and query).
const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
/// Traefik, Caddy, Envoy's HTTP mode: the original method.
const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
/// Traefik, Caddy, Envoy's HTTP mode: the original request target.
const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
/// Every proxy: the host the client asked for.
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// The status a deny really has, when the proxy cannot carry it (nginx).
pub(crate) const STATUS_HEADER: HeaderName = HeaderName::from_static("x-gatehouse-status");
/// Every proxy appends the address it received the request from.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// Correlates the decision's log event with the proxy's access log.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Content type of `/metrics`: the OpenMetrics text that prometheus-client
/// writes (with its `# EOF` trailer), which Prometheus negotiates natively.
const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The HTTP listener's routes over the shared state.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/auth", any(auth))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/debug/decisions", get(decisions))
        .route("/api/auth/jwks", get(jwks))
        .route("/.well-known/jwks.json", get(jwks))
        .with_state(state)
}

/// `/auth`: one authorization decision for the request the proxy describes.
async fn auth(State(state): State<Arc<AppState>>, req: Request) -> Response<Body> {
    // Own the headers instead of cloning them: the body is never read.
    let (parts, _body) = req.into_parts();
    let authz = state.authorizer();
    let pinned = authz.config().request_headers;
    // The trail's extra reads happen only when it is on.
    let trail = authz
        .config()
        .trail
        .enabled
        .then(|| TrailNote::of(&parts.headers, pinned));
    let (input, family) = match check_input(parts.headers, pinned) {
        Ok(described) => described,
        Err(e) => {
            if let Some(note) = &trail {
                state.trail.record(note.asked(), None, Verdict::Deny(&e));
            }
            authz
                .metrics()
                .count_decision(Door::Http.as_str(), "deny", e.reason());
            tracing::warn!(
                authz.door = Door::Http.as_str(),
                authz.result = "deny",
                authz.reason = e.reason(),
                authz.status = e.http_status(),
                "the proxy's description of the request is unusable: {}",
                e.message()
            );
            return deny(&e);
        }
    };
    let traced = authz.check_traced(&input).await;
    if let Some(note) = &trail {
        let asked = Asked::of(&input, note.family);
        state.trail.record(asked, traced.rule, Verdict::of(&traced));
    }
    match traced.decision {
        Decision::Allow(allow) => allow_response(&allow.headers),
        // nginx's auth_request turns any status but 2xx, 401 and 403 into
        // its own 500: a 429 travels as a 403 marked with the real status,
        // which the printed nginx configuration restores.
        Decision::Deny(e) if family == Family::Original && e.http_status() == 429 => {
            let mut resp = deny(&e);
            *resp.status_mut() = StatusCode::FORBIDDEN;
            resp.headers_mut()
                .insert(STATUS_HEADER, HeaderValue::from_static("429"));
            resp
        }
        Decision::Deny(e) => deny(&e),
    }
}

/// What the decision trail keeps of an auth request whose description
/// turns out unusable: the family and the first value of each description
/// header, read before [`check_input`] takes the headers.
struct TrailNote {
    family: Option<&'static str>,
    request_id: Option<String>,
    method: Option<String>,
    target: Option<String>,
    host: Option<String>,
}

impl TrailNote {
    fn of(headers: &HeaderMap, pinned: RequestHeaders) -> Self {
        let family = family_name(headers, pinned);
        let first = |name: &HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (method, target) = match family {
            Some("original") => (first(&X_ORIGINAL_METHOD), first(&X_ORIGINAL_URI)),
            Some("forwarded") => (first(&X_FORWARDED_METHOD), first(&X_FORWARDED_URI)),
            _ => (None, None),
        };
        Self {
            family,
            request_id: first(&X_REQUEST_ID),
            method,
            target,
            host: first(&X_FORWARDED_HOST).or_else(|| first(&HOST)),
        }
    }

    fn asked(&self) -> Asked<'_> {
        Asked {
            door: Door::Http,
            family: self.family,
            request_id: self.request_id.as_deref(),
            method: self.method.as_deref(),
            target: self.target.as_deref(),
            host: self.host.as_deref(),
        }
    }
}

/// The header family an auth request used, as the decision trail names it:
/// the pinned one, else the one present (`both` when both are).
fn family_name(headers: &HeaderMap, pinned: RequestHeaders) -> Option<&'static str> {
    let original = described(headers, &X_ORIGINAL_METHOD, &X_ORIGINAL_URI);
    let forwarded = described(headers, &X_FORWARDED_METHOD, &X_FORWARDED_URI);
    match (pinned, original, forwarded) {
        (RequestHeaders::Original, ..) => Some("original"),
        (RequestHeaders::Forwarded, ..) => Some("forwarded"),
        (RequestHeaders::Auto, true, true) => Some("both"),
        (RequestHeaders::Auto, true, false) => Some("original"),
        (RequestHeaders::Auto, false, true) => Some("forwarded"),
        (RequestHeaders::Auto, false, false) => None,
    }
}

/// The query of `/debug/decisions`.
#[derive(Debug, serde::Deserialize)]
struct DecisionsQuery {
    request_id: Option<String>,
}

/// `/debug/decisions?request_id=ID`: what gatehouse was asked for that
/// request id. 404 while `http.decision_trail` is off; 403 to a peer that
/// is neither loopback nor in `http.admin_networks`.
async fn decisions(
    State(state): State<Arc<AppState>>,
    Query(query): Query<DecisionsQuery>,
    req: Request,
) -> Response<Body> {
    let authz = state.authorizer();
    let settings = &authz.config().trail;
    if !settings.enabled {
        return text(
            StatusCode::NOT_FOUND,
            "the decision trail is off (http.decision_trail: false)\n",
        );
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    if !peer.is_some_and(|p| settings.admits(p)) {
        return text(
            StatusCode::FORBIDDEN,
            "the decision trail answers loopback and http.admin_networks only\n",
        );
    }
    let Some(id) = query.request_id.filter(|id| !id.is_empty()) else {
        return text(
            StatusCode::BAD_REQUEST,
            "name the request: /debug/decisions?request_id=ID\n",
        );
    };
    let mut resp = Response::new(Body::from(state.trail.lookup(&id).to_string()));
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// 200 with every configured identity header: the claim's value, or empty
/// when the identity has none (so a proxy that copies the answer's headers
/// replaces the client's copy rather than passing it on), and the empty
/// ones named in `x-envoy-auth-headers-to-remove`.
fn allow_response(rendered: &RenderedHeaders) -> Response<Body> {
    let mut resp = Response::new(Body::empty());
    let headers = resp.headers_mut();
    headers.reserve(rendered.set.len() + rendered.remove.len() + 2);
    for (name, value) in &rendered.set {
        headers.insert(name.clone(), value.clone());
    }
    for name in &rendered.remove {
        headers.insert(name.clone(), HeaderValue::from_static(""));
    }
    if let Some(list) = &rendered.remove_list {
        headers.insert(HEADERS_TO_REMOVE, list.clone());
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Builds the transport-neutral input from the auth request's headers.
///
/// The method and target come from exactly one header family, never from
/// the auth request's own request line: `family` pins one (the other is
/// ignored entirely), `auto` takes the one present and refuses a request
/// that carries both, since the proxy set one and the client sent the
/// other. A missing, repeated or empty description header is a 400 that
/// names the header and the proxy line that adds it: this door never
/// guesses and never allows by default.
///
/// The credential headers (`authorization`, `cookie`, …) are the auth
/// request's own: nginx, Traefik and Caddy copy the client's headers onto it.
///
/// The client address is the last `X-Forwarded-For` entry: the one the
/// proxy in front appended, whatever the client sent before it.
fn check_input(
    headers: HeaderMap,
    family: RequestHeaders,
) -> Result<(CheckInput, Family), AuthError> {
    let original = described(&headers, &X_ORIGINAL_METHOD, &X_ORIGINAL_URI);
    let forwarded = described(&headers, &X_FORWARDED_METHOD, &X_FORWARDED_URI);
    let (family, method_name, uri_name) = match family {
        RequestHeaders::Original => (Family::Original, X_ORIGINAL_METHOD, X_ORIGINAL_URI),
        RequestHeaders::Forwarded => (Family::Forwarded, X_FORWARDED_METHOD, X_FORWARDED_URI),
        RequestHeaders::Auto => match (original, forwarded) {
            (true, true) => return Err(bad(BadRequestKind::AmbiguousRequest)),
            (true, false) => (Family::Original, X_ORIGINAL_METHOD, X_ORIGINAL_URI),
            (false, true) => (Family::Forwarded, X_FORWARDED_METHOD, X_FORWARDED_URI),
            (false, false) => (Family::Unknown, X_ORIGINAL_METHOD, X_ORIGINAL_URI),
        },
    };
    let method = single(&headers, &method_name)?.filter(|m| !m.is_empty());
    let path = single(&headers, &uri_name)?.filter(|p| !p.is_empty());
    let Some(method) = method else {
        return Err(bad(BadRequestKind::MissingMethod(family)));
    };
    let Some(path) = path else {
        return Err(bad(BadRequestKind::MissingUri(family)));
    };
    let host = match single(&headers, &X_FORWARDED_HOST)? {
        Some(h) => Some(h),
        None => single(&headers, &HOST)?,
    }
    .filter(|h| !h.is_empty());
    let request_id = single(&headers, &X_REQUEST_ID)?.filter(|r| !r.is_empty());
    let (method, path) = (method.to_owned(), path.to_owned());
    let (host, request_id) = (host.map(str::to_owned), request_id.map(str::to_owned));
    let client_ip = last_forwarded_for(&headers);
    let input = CheckInput {
        door: Door::Http,
        method,
        path,
        host,
        headers,
        request_id,
        client_ip,
    };
    Ok((input, family))
}

/// The last address of the last `X-Forwarded-For` header, if it parses.
fn last_forwarded_for(headers: &HeaderMap) -> Option<std::net::IpAddr> {
    let value = headers.get_all(&X_FORWARDED_FOR).iter().next_back()?;
    let last = value.to_str().ok()?.rsplit(',').next()?.trim();
    // `[v6]:port` and `v4:port` appear behind some proxies.
    if let Ok(addr) = last.parse::<std::net::SocketAddr>() {
        return Some(addr.ip());
    }
    last.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Whether any header of a family arrived.
fn described(headers: &HeaderMap, method: &HeaderName, uri: &HeaderName) -> bool {
    headers.contains_key(method) || headers.contains_key(uri)
}

fn bad(kind: BadRequestKind) -> AuthError {
    AuthError::BadRequest(kind)
}

/// A header that must not repeat, as visible ASCII text.
fn single<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<Option<&'h str>, AuthError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(bad(BadRequestKind::AmbiguousRequest));
    }
    first
        .to_str()
        .map(|v| Some(v.trim()))
        .map_err(|_| bad(BadRequestKind::ControlCharacter))
}

/// The deny response: the one rendering of a refusal, shared with the
/// Envoy door.
fn deny(e: &AuthError) -> Response<Body> {
    let deny = e.deny_response();
    let mut resp = Response::new(Body::from(deny.body));
    *resp.status_mut() = deny.status;
    let headers = resp.headers_mut();
    for (name, value) in deny.headers {
        headers.insert(name, value);
    }
    resp
}

/// `/healthz`: the process is up and serving.
async fn healthz() -> Response<Body> {
    text(StatusCode::OK, "ok\n")
}

/// `/readyz`: keys loaded for every remote provider and not draining.
async fn readyz(State(state): State<Arc<AppState>>) -> Response<Body> {
    if state.is_ready() {
        text(StatusCode::OK, "ready\n")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// `/metrics`: the process's counters, and the key ages of the answering
/// configuration generation measured now.
async fn metrics(State(state): State<Arc<AppState>>) -> Response<Body> {
    let authz = state.authorizer();
    let body = authz.metrics().encode(&authz.verifier().key_ages());
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE));
    resp
}

/// `/api/auth/jwks` and `/.well-known/jwks.json`: the demo issuer's keys.
async fn jwks(State(state): State<Arc<AppState>>) -> Response<Body> {
    let Some(doc) = &state.demo_jwks else {
        return text(StatusCode::NOT_FOUND, "not found\n");
    };
    let mut resp = Response::new(Body::from(doc.clone()));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::error::ERROR_HEADER;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    use http::header::WWW_AUTHENTICATE;

    const AUTO: RequestHeaders = RequestHeaders::Auto;

    fn reason(h: HeaderMap, family: RequestHeaders) -> &'static str {
        check_input(h, family).unwrap_err().reason()
    }

    #[test]
    fn original_family_alone_describes_the_request() {
        let input = check_input(
            headers(&[
                ("x-original-method", "DELETE"),
                ("x-original-uri", "/a?b=c"),
                ("x-forwarded-host", "app.example.com"),
                ("host", "gatehouse:8080"),
                ("x-request-id", "r-1"),
            ]),
            AUTO,
        )
        .unwrap()
        .0;
        assert_eq!(input.door, Door::Http);
        assert_eq!(input.method, "DELETE");
        assert_eq!(input.path, "/a?b=c");
        assert_eq!(input.host.as_deref(), Some("app.example.com"));
        assert_eq!(input.request_id.as_deref(), Some("r-1"));
    }

    #[test]
    fn forwarded_family_alone_describes_the_request_and_host_falls_back() {
        let input = check_input(
            headers(&[
                ("x-forwarded-method", "PUT"),
                ("x-forwarded-uri", "/x"),
                ("host", "app.test"),
            ]),
            AUTO,
        )
        .unwrap()
        .0;
        assert_eq!(input.method, "PUT");
        assert_eq!(input.path, "/x");
        assert_eq!(input.host.as_deref(), Some("app.test"));
        assert_eq!(input.request_id, None);
    }

    #[test]
    fn auto_refuses_both_families_even_partial_ones() {
        for extra in [
            ("x-forwarded-uri", "/public"),
            ("x-forwarded-method", "OPTIONS"),
        ] {
            let h = headers(&[
                ("x-original-method", "GET"),
                ("x-original-uri", "/api/me"),
                extra,
            ]);
            assert_eq!(reason(h, AUTO), "ambiguous_request");
        }
        // Caddy's own description plus a client-sent X-Original-URI.
        let h = headers(&[
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/api/me"),
            ("x-original-uri", "/public"),
        ]);
        assert_eq!(reason(h, AUTO), "ambiguous_request");
    }

    #[test]
    fn a_pinned_family_ignores_the_other_entirely() {
        let both = || {
            headers(&[
                ("x-original-method", "OPTIONS"),
                ("x-original-uri", "/public"),
                ("x-forwarded-method", "GET"),
                ("x-forwarded-uri", "/api/me"),
            ])
        };
        let fwd = check_input(both(), RequestHeaders::Forwarded).unwrap().0;
        assert_eq!((fwd.method.as_str(), fwd.path.as_str()), ("GET", "/api/me"));
        let orig = check_input(both(), RequestHeaders::Original).unwrap().0;
        assert_eq!(
            (orig.method.as_str(), orig.path.as_str()),
            ("OPTIONS", "/public")
        );
        // A pinned family never borrows a missing header from the other.
        let h = headers(&[("x-original-uri", "/a"), ("x-forwarded-method", "GET")]);
        assert_eq!(reason(h, RequestHeaders::Original), "missing_method");
    }

    #[test]
    fn a_missing_header_is_named_with_its_family() {
        let err = check_input(headers(&[("x-original-uri", "/x")]), AUTO).unwrap_err();
        assert_eq!(err.reason(), "missing_method");
        assert!(err.message().contains("X-Original-Method $request_method"));
        let err = check_input(headers(&[("x-original-method", "GET")]), AUTO).unwrap_err();
        assert_eq!(err.reason(), "missing_uri");
        assert!(err.message().contains("X-Original-URI $request_uri"));
        let err = check_input(headers(&[("x-forwarded-uri", "/x")]), AUTO).unwrap_err();
        assert_eq!(err.reason(), "missing_method");
        assert!(err.message().contains("X-Forwarded-Method"));
        let err = check_input(headers(&[("authorization", "Bearer x")]), AUTO).unwrap_err();
        assert_eq!(err.reason(), "missing_method");
        let err = check_input(HeaderMap::new(), RequestHeaders::Forwarded).unwrap_err();
        assert!(
            err.message().contains("X-Forwarded-Method"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn empty_or_repeated_descriptions_fail_closed() {
        let empty = headers(&[("x-original-method", "GET"), ("x-original-uri", "")]);
        assert_eq!(reason(empty, AUTO), "missing_uri");
        let twice = headers(&[
            ("x-original-method", "GET"),
            ("x-original-uri", "/a"),
            ("x-original-uri", "/b"),
        ]);
        assert_eq!(reason(twice, AUTO), "ambiguous_request");
        let hosts = headers(&[
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/a"),
            ("x-forwarded-host", "a"),
            ("x-forwarded-host", "b"),
        ]);
        assert_eq!(reason(hosts, AUTO), "ambiguous_request");
    }

    #[test]
    fn allow_answers_every_identity_header_and_names_the_empty_ones() {
        let rendered = crate::identity::IdentityHeaders::compile([
            ("x-user-id", "sub"),
            ("x-user-email", "email"),
            ("x-user-role", "role"),
        ])
        .unwrap();
        let claims: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"sub":"u1"}"#).unwrap();
        let resp = allow_response(&rendered.render(Some(&claims)).unwrap());
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-user-id"], "u1");
        assert_eq!(resp.headers()["x-user-email"], "");
        assert_eq!(resp.headers()["x-user-role"], "");
        assert_eq!(
            resp.headers()[HEADERS_TO_REMOVE],
            "x-user-email,x-user-role"
        );
        let public = allow_response(&rendered.render(None).unwrap());
        for name in ["x-user-id", "x-user-email", "x-user-role"] {
            assert_eq!(public.headers()[name], "", "{name}");
        }
        let full: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"sub":"u1","email":"e","role":"r"}"#).unwrap();
        let resp = allow_response(&rendered.render(Some(&full)).unwrap());
        assert!(resp.headers().get(HEADERS_TO_REMOVE).is_none());
    }

    #[test]
    fn deny_carries_code_challenge_and_json() {
        let resp = deny(&AuthError::Expired);
        assert_eq!(resp.status(), 401);
        assert_eq!(resp.headers()[ERROR_HEADER], "token_expired");
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(resp.headers()[CACHE_CONTROL], "no-store");
        assert!(
            resp.headers()[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .contains("invalid_token")
        );
        let resp = deny(&AuthError::SessionUnavailable);
        assert_eq!(resp.status(), 503);
        assert!(resp.headers().get(WWW_AUTHENTICATE).is_none());
    }
}

#[cfg(test)]
mod router_tests;
