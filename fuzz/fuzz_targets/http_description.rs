//! The HTTP door's description of the original request, through the public
//! router (`http::router` and `tower::ServiceExt::oneshot` on `/auth`).
//! The first input byte: bits 0-1 pick `http.request_headers` (auto,
//! original, forwarded), bit 2 adds a valid bearer token for `sub` `u1`;
//! the rest is header lines (`name: value`, any bytes but `\n`).
//!
//! With both the `X-Original-*` and the `X-Forwarded-*` method/URI family
//! present in auto mode the answer is 400, saying the request is described
//! twice. A
//! description a plain model of the rules cannot read (a missing, empty,
//! repeated or non-text method or URI, a repeated host or request id, a
//! path that does not normalize) is a 400, never an allow. An allow for a
//! rule that needs a caller names the only caller the fuzzer can be (`u1`);
//! it carries every identity header and `cache-control: no-store`. Every
//! denial carries its error code in the header and in the JSON body.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use gatehouse::internals::Access;
use gatehouse::internals::AppState;
use gatehouse_fuzz::{door_config_yaml, header_lines, runtime, secret_token};
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Auto,
    Original,
    Forwarded,
}

struct Door {
    state: Arc<AppState>,
    router: Router,
}

fn door(mode: Mode) -> &'static Door {
    static DOORS: OnceLock<[Door; 3]> = OnceLock::new();
    let doors = DOORS.get_or_init(|| {
        ["auto", "original", "forwarded"].map(|m| {
            let state = gatehouse_fuzz::app_state(&door_config_yaml(m));
            let router = gatehouse::internals::http::router(state.clone());
            Door { state, router }
        })
    });
    &doors[mode as usize]
}

fn token() -> &'static str {
    static T: OnceLock<String> = OnceLock::new();
    T.get_or_init(|| secret_token("u1"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mode = match flags % 4 {
        1 => Mode::Original,
        2 => Mode::Forwarded,
        _ => Mode::Auto,
    };
    let mut request = Request::builder().method("GET").uri("/auth");
    let mut sent = HeaderMap::new();
    for (name, value) in header_lines(rest) {
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            sent.append(name, value);
        }
    }
    if flags & 4 != 0 {
        let bearer = HeaderValue::from_str(&format!("Bearer {}", token())).expect("token text");
        sent.append(http::header::AUTHORIZATION, bearer);
    }
    for (name, value) in &sent {
        request = request.header(name, value);
    }
    let Ok(request) = request.body(Body::empty()) else {
        return;
    };
    let door = door(mode);
    let (status, headers, body) = runtime().block_on(async {
        let response = door
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.expect("a body");
        (parts.status.as_u16(), parts.headers, body)
    });

    let original = has_family(&sent, "x-original-method", "x-original-uri");
    let forwarded = has_family(&sent, "x-forwarded-method", "x-forwarded-uri");
    if mode == Mode::Auto && original && forwarded {
        assert_eq!(status, 400, "both families in auto mode");
        assert_eq!(headers["x-gatehouse-error"], "bad_request");
        let message = headers["x-gatehouse-message"].to_str().unwrap_or_default();
        assert!(message.contains("described twice"), "{message}");
    }

    if status != 200 {
        let code = headers
            .get("x-gatehouse-error")
            .expect("a denial names its error")
            .to_str()
            .expect("an error code is text");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("a JSON denial");
        assert_eq!(json["error"].as_str(), Some(code));
    }

    let Some((method, target, host)) = describe(&sent, mode) else {
        assert_eq!(status, 400, "an unreadable description was not refused");
        return;
    };
    let raw_path = target.split('?').next().unwrap_or_default();
    let Ok(path) = gatehouse::internals::normalize_path(raw_path) else {
        assert_eq!(
            status, 400,
            "a path that does not normalize was not refused"
        );
        return;
    };
    assert_ne!(status, 400, "a readable description was refused");
    if status == 200 {
        assert_eq!(headers["cache-control"], "no-store");
        for name in ["x-user-id", "x-user-email", "x-user-role"] {
            assert!(headers.contains_key(name), "allow without {name}");
        }
        let authz = door.state.authorizer();
        let preflight = method.eq_ignore_ascii_case("OPTIONS")
            && sent.contains_key("access-control-request-method");
        let (rule, _) = authz
            .config()
            .rules
            .find(&method, host.as_deref(), &path, preflight);
        if rule.access == Access::Authenticated {
            assert_eq!(headers["x-user-id"], "u1", "allowed an unknown caller");
        }
    }
});

fn has_family(headers: &HeaderMap, method: &str, uri: &str) -> bool {
    headers.contains_key(method) || headers.contains_key(uri)
}

/// The one value of `name` as trimmed text: `Ok(None)` when absent, `Err`
/// when repeated or not text.
fn one<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, ()> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(());
    }
    first.to_str().map(|v| Some(v.trim())).map_err(|_| ())
}

/// The model: method, target and host as the proxy described them, or
/// `None` when the description cannot be read.
fn describe(headers: &HeaderMap, mode: Mode) -> Option<(String, String, Option<String>)> {
    let original = has_family(headers, "x-original-method", "x-original-uri");
    let forwarded = has_family(headers, "x-forwarded-method", "x-forwarded-uri");
    let use_original = match mode {
        Mode::Original => true,
        Mode::Forwarded => false,
        Mode::Auto if original && forwarded => return None,
        Mode::Auto => !forwarded,
    };
    let (method_name, uri_name) = if use_original {
        ("x-original-method", "x-original-uri")
    } else {
        ("x-forwarded-method", "x-forwarded-uri")
    };
    let method = one(headers, method_name).ok()?.filter(|m| !m.is_empty())?;
    let target = one(headers, uri_name).ok()?.filter(|u| !u.is_empty())?;
    let host = match one(headers, "x-forwarded-host").ok()? {
        Some(h) => Some(h),
        None => one(headers, "host").ok()?,
    }
    .filter(|h| !h.is_empty());
    one(headers, "x-request-id").ok()?;
    Some((
        method.to_owned(),
        target.to_owned(),
        host.map(str::to_owned),
    ))
}
