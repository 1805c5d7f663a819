//! Property tests: random and mutated paths, headers and cookies through
//! `normalize_path`, `RuleSet::find` and `Extractor::extract`. Nothing may
//! panic, and every path `normalize_path` accepts is already safe: no dot
//! segments, no empty segments, no `;`, no encoded separators or NUL, and
//! normalizing it again changes nothing.

#![allow(clippy::unwrap_used)]

use gatehouse::config::raw::RawRule;
use gatehouse::config::{Access, TokenSource};
use gatehouse::error::AuthError;
use gatehouse::extract::{Credential, Extractor, MAX_TOKEN_BYTES};
use gatehouse::policy::{RuleSet, normalize_path};
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;

/// Pieces hostile paths are made of.
fn path_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/".to_owned()),
        Just("//".to_owned()),
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just("/../".to_owned()),
        Just("/./".to_owned()),
        Just("%2e".to_owned()),
        Just("%2E".to_owned()),
        Just("%2f".to_owned()),
        Just("%2F".to_owned()),
        Just("%5c".to_owned()),
        Just("\\".to_owned()),
        Just(";".to_owned()),
        Just("%3b".to_owned()),
        Just("%00".to_owned()),
        Just("%".to_owned()),
        Just("%2".to_owned()),
        Just("%25".to_owned()),
        Just("%75".to_owned()),
        Just("?".to_owned()),
        Just("#".to_owned()),
        Just("api".to_owned()),
        Just("u1".to_owned()),
        Just("{x}".to_owned()),
        Just("*".to_owned()),
        Just("é".to_owned()),
        "[a-zA-Z0-9._~-]{1,4}",
        any::<char>().prop_map(String::from),
    ]
}

fn hostile_path() -> impl Strategy<Value = String> {
    prop::collection::vec(path_piece(), 0..16).prop_map(|parts| {
        let mut p = String::from("/");
        for part in parts {
            p.push_str(&part);
        }
        p
    })
}

fn rule_set() -> &'static RuleSet {
    static SET: std::sync::OnceLock<RuleSet> = std::sync::OnceLock::new();
    SET.get_or_init(compile_rules)
}

fn compile_rules() -> RuleSet {
    let yaml = r#"
- match: { path: /healthz }
  access: public
- match: { path: "/api/{user_id}/**", methods: [GET, POST, OPTIONS] }
  path_claims: { user_id: sub }
- match: { path: "/docs/**/{page}", hosts: ["*.example.com"] }
- match: { path_prefix: /admin }
  claims: { role: admin }
- match: { path: "/x/*/y" }
  access: optional
"#;
    let raw: Vec<RawRule> = serde_yaml_ng::from_str(yaml).unwrap();
    RuleSet::compile(&raw, Access::Authenticated, true).unwrap()
}

fn assert_safe(out: &str) {
    assert!(out.starts_with('/'), "{out:?}");
    assert!(!out.contains("//"), "{out:?}");
    assert!(!out.contains(';'), "{out:?}");
    assert!(!out.contains('\\'), "{out:?}");
    assert!(!out.contains(['?', '#']), "{out:?}");
    assert!(out.bytes().all(|b| (0x20..0x7f).contains(&b)), "{out:?}");
    let upper = out.to_ascii_uppercase();
    for bad in ["%2F", "%5C", "%00", "%2E"] {
        assert!(!upper.contains(bad), "{out:?} contains {bad}");
    }
    for segment in out.split('/').skip(1) {
        assert!(segment != "." && segment != "..", "{out:?}");
    }
    // Canonical: a second pass is the identity.
    assert_eq!(normalize_path(out).as_deref(), Ok(out));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn hostile_paths_normalize_safely(raw in hostile_path()) {
        if let Ok(out) = normalize_path(&raw) {
            assert_safe(&out);
        }
    }

    #[test]
    fn arbitrary_strings_never_panic(
        raw in prop_oneof![any::<String>(), any::<String>().prop_map(|s| format!("/{s}"))],
    ) {
        match normalize_path(&raw) {
            Ok(out) => assert_safe(&out),
            Err(e) => prop_assert!(matches!(e, AuthError::BadRequest(_))),
        }
    }

    #[test]
    fn dot_segments_resolve_like_a_stack(
        segments in prop::collection::vec(
            prop_oneof![Just(".".to_owned()), Just("..".to_owned()), Just(String::new()), "[a-z]{1,3}"],
            0..12,
        ),
    ) {
        let raw = format!("/{}", segments.join("/"));
        let mut stack: Vec<&str> = Vec::new();
        let mut above_root = false;
        for s in &segments {
            match s.as_str() {
                "" | "." => {}
                ".." => above_root |= stack.pop().is_none(),
                other => stack.push(other),
            }
        }
        let got = normalize_path(&raw);
        if above_root {
            prop_assert_eq!(
                got,
                Err(AuthError::BadRequest(gatehouse::error::BadRequestKind::AboveRoot))
            );
        } else {
            let got = got.unwrap();
            let trailing = segments.last().is_some_and(|s| matches!(s.as_str(), "" | "." | ".."));
            let mut want = format!("/{}", stack.join("/"));
            if trailing && !stack.is_empty() {
                want.push('/');
            }
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn find_never_panics(
        raw in hostile_path(),
        method in "[A-Za-z]{0,8}",
        host in proptest::option::of("[a-zA-Z0-9.:\\[\\]-]{0,20}"),
        preflight in any::<bool>(),
    ) {
        let set = rule_set();
        if let Ok(path) = normalize_path(&raw) {
            let (rule, caps) = set.find(&method, host.as_deref(), &path, preflight);
            if rule.index.is_none() {
                prop_assert!(caps.pairs.is_empty());
            }
            let claims = serde_json::Map::new();
            let _ = rule.authorize(&claims, &caps);
        }
    }
}

/// Pieces hostile header values are made of.
fn header_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Bearer ".to_owned()),
        Just("bearer".to_owned()),
        Just("Basic ".to_owned()),
        Just("a.b.c".to_owned()),
        Just(".".to_owned()),
        Just(",".to_owned()),
        Just(";".to_owned()),
        Just("=".to_owned()),
        Just(" ".to_owned()),
        Just("\"".to_owned()),
        Just("%".to_owned()),
        Just("%2B".to_owned()),
        Just("%00".to_owned()),
        Just("%zz".to_owned()),
        Just("better-auth.session_token".to_owned()),
        Just("__Secure-".to_owned()),
        "[a-zA-Z0-9+/=_-]{1,12}",
        (0x20u8..0x7f).prop_map(|b| char::from(b).to_string()),
        Just("é".to_owned()),
    ]
}

fn header_value() -> impl Strategy<Value = String> {
    prop::collection::vec(header_piece(), 0..10).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn extract_never_panics(
        auth in prop::collection::vec(header_value(), 0..3),
        cookies in prop::collection::vec(header_value(), 0..3),
        raw_header in proptest::option::of(header_value()),
        query in proptest::option::of(header_value()),
        big in any::<bool>(),
    ) {
        let ex = Extractor::new(&[
            TokenSource::Bearer,
            TokenSource::Header("x-api-token".into()),
            TokenSource::Cookie("better-auth.session_token".into()),
            TokenSource::Query("access_token".into()),
        ]);
        let mut headers = HeaderMap::new();
        for v in &auth {
            if let Ok(v) = HeaderValue::from_bytes(v.as_bytes()) {
                headers.append(http::header::AUTHORIZATION, v);
            }
        }
        for v in &cookies {
            if let Ok(v) = HeaderValue::from_bytes(v.as_bytes()) {
                headers.append(http::header::COOKIE, v);
            }
        }
        if let Some(v) = raw_header.as_ref().and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok()) {
            headers.append(HeaderName::from_static("x-api-token"), v);
        }
        if big {
            let v = format!("better-auth.session_token={}", "a".repeat(MAX_TOKEN_BYTES + 1));
            headers.append(http::header::COOKIE, HeaderValue::from_str(&v).unwrap());
        }
        match ex.extract(&headers, query.as_deref()) {
            Ok(Some(c)) => {
                let token = c.token();
                prop_assert!(!token.is_empty() && token.len() <= MAX_TOKEN_BYTES);
                prop_assert!(token.bytes().all(|b| b.is_ascii_graphic()));
                let dots = token.bytes().filter(|&b| b == b'.').count();
                prop_assert_eq!(matches!(c, Credential::Jwt { .. }), dots == 2);
            }
            Ok(None) => prop_assert!(!big),
            Err(e) => prop_assert!(matches!(e, AuthError::Malformed(_))),
        }
    }
}
