//! Identity headers (docs/configuration.md identity_headers): compile-time checks and
//! rendering of claims into headers to set and to remove.

#![allow(clippy::unwrap_used)]

use gatehouse::error::{AuthError, ForbiddenKind};
use gatehouse::identity::{IdentityHeaders, RenderedHeaders, claim_at};
use http::HeaderName;
use serde_json::{Map, Value, json};

fn claims(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("claims must be an object"),
    }
}

fn compile(pairs: &[(&str, &str)]) -> IdentityHeaders {
    IdentityHeaders::compile(pairs.iter().copied()).unwrap()
}

fn set_of(r: &RenderedHeaders) -> Vec<(String, Vec<u8>)> {
    r.set
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect()
}

fn removed(r: &RenderedHeaders) -> Vec<&str> {
    r.remove.iter().map(HeaderName::as_str).collect()
}

#[test]
fn names_are_lower_cased_in_order() {
    let h = compile(&[("X-User-Id", "sub"), ("X-User-Email", "email")]);
    let names: Vec<&str> = h.names().map(HeaderName::as_str).collect();
    assert_eq!(names, ["x-user-id", "x-user-email"]);
}

#[test]
fn invalid_and_reserved_names_are_config_errors() {
    for name in [
        "Host",
        "content-length",
        "Transfer-Encoding",
        "connection",
        "authorization",
        "Cookie",
        ":authority",
        ":path",
        "x user",
        "",
        "x-ü",
    ] {
        let err = IdentityHeaders::compile([(name, "sub")]).unwrap_err();
        assert_eq!(err.key, format!("identity_headers.{name}"));
    }
}

#[test]
fn bad_claim_paths_and_duplicates_are_config_errors() {
    let err = IdentityHeaders::compile([("x-a", "")]).unwrap_err();
    assert_eq!(err.key, "identity_headers.x-a");
    let err = IdentityHeaders::compile([("x-a", "org..id")]).unwrap_err();
    assert_eq!(err.key, "identity_headers.x-a");
    let err = IdentityHeaders::compile([("x-a", "sub"), ("X-A", "email")]).unwrap_err();
    assert_eq!(err.key, "identity_headers.X-A");
}

#[test]
fn renders_scalars_arrays_and_nested() {
    let h = compile(&[
        ("x-user-id", "sub"),
        ("x-user-level", "level"),
        ("x-user-ratio", "ratio"),
        ("x-user-verified", "email_verified"),
        ("x-user-roles", "roles"),
        ("x-org-id", "org.id"),
        ("x-mixed", "mixed"),
    ]);
    let c = claims(json!({
        "sub": "u1",
        "level": 3,
        "ratio": 0.5,
        "email_verified": true,
        "roles": ["admin", "user"],
        "org": {"id": "o7"},
        "mixed": ["a", 1, false],
    }));
    let r = h.render(Some(&c)).unwrap();
    assert_eq!(
        set_of(&r),
        [
            ("x-user-id".to_owned(), b"u1".to_vec()),
            ("x-user-level".to_owned(), b"3".to_vec()),
            ("x-user-ratio".to_owned(), b"0.5".to_vec()),
            ("x-user-verified".to_owned(), b"true".to_vec()),
            ("x-user-roles".to_owned(), b"admin,user".to_vec()),
            ("x-org-id".to_owned(), b"o7".to_vec()),
            ("x-mixed".to_owned(), b"a,1,false".to_vec()),
        ]
    );
    assert!(r.remove.is_empty());
}

#[test]
fn unrenderable_values_are_removed() {
    let h = compile(&[
        ("x-user-id", "sub"),
        ("x-null", "n"),
        ("x-object", "obj"),
        ("x-missing", "nope"),
        ("x-nested-array", "nested"),
        ("x-empty", "empty"),
        ("x-empty-array", "none"),
        ("x-deep", "obj.inner.missing"),
    ]);
    let c = claims(json!({
        "sub": "u1",
        "n": null,
        "obj": {"inner": {}},
        "nested": [["a"]],
        "empty": "",
        "none": [],
    }));
    let r = h.render(Some(&c)).unwrap();
    assert_eq!(set_of(&r), [("x-user-id".to_owned(), b"u1".to_vec())]);
    assert_eq!(
        removed(&r),
        [
            "x-null",
            "x-object",
            "x-missing",
            "x-nested-array",
            "x-empty",
            "x-empty-array",
            "x-deep"
        ]
    );
}

#[test]
fn anonymous_removes_everything() {
    let h = compile(&[("x-user-id", "sub"), ("x-user-email", "email")]);
    let r = h.render(None).unwrap();
    assert!(r.set.is_empty());
    assert_eq!(removed(&r), ["x-user-id", "x-user-email"]);
}

#[test]
fn control_characters_are_refused() {
    let h = compile(&[("x-user-name", "name")]);
    for bad in [
        "a\r\nx-admin: 1",
        "a\nb",
        "a\0b",
        "a\tb",
        "a\u{1b}b",
        "a\u{7f}b",
    ] {
        let c = claims(json!({ "name": bad }));
        assert_eq!(
            h.render(Some(&c)),
            Err(AuthError::Forbidden(ForbiddenKind::BadHeaderValue)),
            "{bad:?}"
        );
    }
    let c = claims(json!({ "name": ["ok", "x\ny"] }));
    assert_eq!(
        h.render(Some(&c)),
        Err(AuthError::Forbidden(ForbiddenKind::BadHeaderValue))
    );
}

#[test]
fn non_ascii_utf8_is_sent_as_is() {
    let h = compile(&[("x-user-name", "name")]);
    let c = claims(json!({ "name": "Zoë Ñandú 名前" }));
    let r = h.render(Some(&c)).unwrap();
    assert_eq!(
        set_of(&r),
        [(
            "x-user-name".to_owned(),
            "Zoë Ñandú 名前".as_bytes().to_vec()
        )]
    );
}

#[test]
fn claim_lookup_prefers_literal_keys() {
    let c = claims(json!({
        "https://example.com/roles": ["a"],
        "org": {"id": 1, "meta": {"tier": "gold"}},
        "org.id": "literal",
    }));
    assert_eq!(
        claim_at(&c, "https://example.com/roles"),
        Some(&json!(["a"]))
    );
    assert_eq!(claim_at(&c, "org.id"), Some(&json!("literal")));
    assert_eq!(claim_at(&c, "org.meta.tier"), Some(&json!("gold")));
    assert_eq!(claim_at(&c, "org.meta.tier.x"), None);
    assert_eq!(claim_at(&c, "missing"), None);
}

#[test]
fn joined_claims_go_over_the_callers_own_headers() {
    let h = IdentityHeaders::compile([
        ("x-user-id", "sub"),
        ("x-org-id", "org_id"),
        ("x-org-role", "org_role"),
        ("x-user-email", "email"),
    ])
    .unwrap();
    let claims: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(r#"{"sub":"u1","org_id":"forged"}"#).unwrap();
    let base = h.render(Some(&claims)).unwrap();
    let joined = h
        .render_over(&base, &[("org_id", "o1"), ("org_role", "admin,member")])
        .unwrap();
    let set: Vec<(&str, &str)> = joined
        .set
        .iter()
        .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
        .collect();
    assert!(set.contains(&("x-user-id", "u1")));
    assert!(
        set.contains(&("x-org-id", "o1")),
        "the joined value wins: {set:?}"
    );
    assert!(set.contains(&("x-org-role", "admin,member")));
    assert_eq!(joined.set.len(), 3);
    let removed: Vec<&str> = joined.remove.iter().map(|n| n.as_str()).collect();
    assert_eq!(removed, ["x-user-email"]);
    assert_eq!(joined.remove_list.as_ref().unwrap(), "x-user-email");
    assert!(h.render_over(&base, &[("org_id", "a\nb")]).is_err());
}
