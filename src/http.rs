//! The HTTP door: nginx `auth_request`, Traefik ForwardAuth and Caddy
//! `forward_auth` ask `/auth`; the same listener serves `/healthz`,
//! `/readyz`, `/metrics` and, under `gatehouse demo`, the built-in issuer's
//! JWKS (SPEC §4, §5, §8, §9).
//!
//! `/auth` only translates: the proxy's description of the original request
//! (`X-Original-*` from nginx, `X-Forwarded-*` from Traefik and Caddy)
//! becomes a [`CheckInput`], and the [`Decision`] becomes a response — 200
//! with the identity headers, or the status, `WWW-Authenticate` and JSON
//! body of the SPEC §5 table plus an `x-gatehouse-error` header carrying the
//! error code, so a proxy that cannot forward the body (nginx) can still
//! render it. Whatever the proxy left out that a decision needs (the
//! original URI or method) is answered with 400 `bad_request`: this door
//! never allows by default.
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
use axum::extract::{Request, State};
use axum::routing::{any, get};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HOST, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

use crate::decision::{CheckInput, Decision, Door};
use crate::error::{AuthError, BadRequestKind};
use crate::server::AppState;

/// Response header naming the SPEC §5 error code of a deny, for proxies
/// that render their own error page (`auth_request_set $auth_error
/// $upstream_http_x_gatehouse_error`).
pub const ERROR_HEADER: HeaderName = HeaderName::from_static("x-gatehouse-error");

/// nginx: the method of the original request (the subrequest itself is a GET).
const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
/// nginx: the original request target (`$request_uri`: path and query).
const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
/// Traefik and Caddy: the original method.
const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
/// Traefik and Caddy: the original request target.
const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
/// Every proxy: the host the client asked for.
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
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
        .route("/api/auth/jwks", get(jwks))
        .route("/.well-known/jwks.json", get(jwks))
        .with_state(state)
}

/// `/auth`: one authorization decision for the request the proxy describes.
async fn auth(State(state): State<Arc<AppState>>, req: Request) -> Response<Body> {
    // Own the headers instead of cloning them: the body is never read.
    let (parts, _body) = req.into_parts();
    let input = match check_input(parts.headers) {
        Ok(input) => input,
        Err(e) => {
            state
                .authorizer()
                .metrics()
                .count_decision(Door::Http.as_str(), "deny", e.reason());
            tracing::warn!(
                authz.door = Door::Http.as_str(),
                authz.reason = e.reason(),
                "auth request without the original request's method or URI"
            );
            return deny(&e);
        }
    };
    match state.authorizer().check(&input).await {
        Decision::Allow(allow) => {
            let mut resp = Response::new(Body::empty());
            let headers = resp.headers_mut();
            headers.reserve(allow.headers.set.len() + 1);
            for (name, value) in &allow.headers.set {
                headers.insert(name.clone(), value.clone());
            }
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Decision::Deny(e) => deny(&e),
    }
}

/// Builds the transport-neutral input from the auth request's headers.
///
/// The credential headers (`authorization`, `cookie`, …) are the auth
/// request's own: nginx, Traefik and Caddy copy the client's headers onto
/// it. A header sent twice with different meanings is ambiguous and refused.
fn check_input(headers: HeaderMap) -> Result<CheckInput, AuthError> {
    let missing = AuthError::BadRequest(BadRequestKind::MissingAttributes);
    let method = first_of(&headers, &X_ORIGINAL_METHOD, &X_FORWARDED_METHOD)?
        .ok_or_else(|| missing.clone())?;
    let path = first_of(&headers, &X_ORIGINAL_URI, &X_FORWARDED_URI)?.ok_or(missing)?;
    if method.is_empty() || path.is_empty() {
        return Err(AuthError::BadRequest(BadRequestKind::MissingAttributes));
    }
    let host = first_of(&headers, &X_FORWARDED_HOST, &HOST)?.filter(|h| !h.is_empty());
    let request_id = single(&headers, &X_REQUEST_ID)?.filter(|r| !r.is_empty());
    let (method, path) = (method.to_owned(), path.to_owned());
    let (host, request_id) = (host.map(str::to_owned), request_id.map(str::to_owned));
    Ok(CheckInput {
        door: Door::Http,
        method,
        path,
        host,
        headers,
        request_id,
    })
}

/// The value of `preferred`, else of `fallback`; each must appear at most once.
fn first_of<'h>(
    headers: &'h HeaderMap,
    preferred: &HeaderName,
    fallback: &HeaderName,
) -> Result<Option<&'h str>, AuthError> {
    match single(headers, preferred)? {
        Some(v) => Ok(Some(v)),
        None => single(headers, fallback),
    }
}

/// A header that must not repeat, as visible ASCII text.
fn single<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<Option<&'h str>, AuthError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::BadRequest(BadRequestKind::MissingAttributes));
    }
    first
        .to_str()
        .map(|v| Some(v.trim()))
        .map_err(|_| AuthError::BadRequest(BadRequestKind::ControlCharacter))
}

/// The deny response: status, challenge, error code header and JSON body.
fn deny(e: &AuthError) -> Response<Body> {
    let mut resp = Response::new(Body::from(e.body()));
    *resp.status_mut() =
        StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(ERROR_HEADER, HeaderValue::from_static(e.code().as_str()));
    if let Some(challenge) = e.www_authenticate()
        && let Ok(v) = HeaderValue::from_str(&challenge)
    {
        headers.insert(WWW_AUTHENTICATE, v);
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

/// `/metrics`: every SPEC §9 series of the current configuration generation.
async fn metrics(State(state): State<Arc<AppState>>) -> Response<Body> {
    let body = state.authorizer().metrics().encode();
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

    #[test]
    fn nginx_headers_win_over_forwarded_ones() {
        let input = check_input(headers(&[
            ("x-original-method", "DELETE"),
            ("x-original-uri", "/a?b=c"),
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/other"),
            ("x-forwarded-host", "app.example.com"),
            ("host", "gatehouse:8080"),
            ("x-request-id", "r-1"),
        ]))
        .unwrap();
        assert_eq!(input.door, Door::Http);
        assert_eq!(input.method, "DELETE");
        assert_eq!(input.path, "/a?b=c");
        assert_eq!(input.host.as_deref(), Some("app.example.com"));
        assert_eq!(input.request_id.as_deref(), Some("r-1"));
    }

    #[test]
    fn forwarded_headers_are_used_alone_and_host_falls_back() {
        let input = check_input(headers(&[
            ("x-forwarded-method", "PUT"),
            ("x-forwarded-uri", "/x"),
            ("host", "app.test"),
        ]))
        .unwrap();
        assert_eq!(input.method, "PUT");
        assert_eq!(input.path, "/x");
        assert_eq!(input.host.as_deref(), Some("app.test"));
        assert_eq!(input.request_id, None);
    }

    #[test]
    fn missing_or_repeated_attributes_fail_closed() {
        for h in [
            headers(&[("x-original-method", "GET")]),
            headers(&[("x-original-uri", "/x")]),
            headers(&[("x-original-method", "GET"), ("x-original-uri", "")]),
            headers(&[
                ("x-original-method", "GET"),
                ("x-original-uri", "/a"),
                ("x-original-uri", "/b"),
            ]),
        ] {
            let err = check_input(h).unwrap_err();
            assert_eq!(err.http_status(), 400, "{err:?}");
        }
    }

    #[test]
    fn deny_carries_code_challenge_and_json() {
        let resp = deny(&AuthError::Expired);
        assert_eq!(resp.status(), 401);
        assert_eq!(resp.headers()[ERROR_HEADER], "token_expired");
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
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
