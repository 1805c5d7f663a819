//! Credential extraction (docs/configuration.md token_sources; one credential per
//! request): sources in order, classification, and refusals.

#![allow(clippy::unwrap_used)]

use gatehouse::config::TokenSource;
use gatehouse::error::{AuthError, MalformedKind};
use gatehouse::extract::{Credential, Extractor, MAX_TOKEN_BYTES, SourceKind};
use http::{HeaderMap, HeaderName, HeaderValue};

const JWT: &str = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1MSJ9.c2ln";
const OTHER_JWT: &str = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1MiJ9.c2ln";
const SESSION: &str = "Xk3pQ9vLm2Rt8sWz4yBn6cJd1fHg7aKe";
/// A signed Better Auth cookie value (`TOKEN.SIG`), URL-encoded as sent.
const SIGNED_COOKIE: &str = "Xk3pQ9vLm2Rt8sWz4yBn6cJd1fHg7aKe.ab%2Bcd%2Fef%3D";
const SIGNED_DECODED: &str = "Xk3pQ9vLm2Rt8sWz4yBn6cJd1fHg7aKe.ab+cd/ef=";
const COOKIE: &str = "better-auth.session_token";

fn default_sources() -> Extractor {
    Extractor::new(&[TokenSource::Bearer, TokenSource::Cookie(COOKIE.into())])
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_bytes(v.as_bytes()).unwrap(),
        );
    }
    map
}

fn jwt(token: &str, source: SourceKind) -> Result<Option<Credential>, AuthError> {
    Ok(Some(Credential::Jwt {
        token: token.into(),
        source,
    }))
}

fn session(token: &str, source: SourceKind) -> Result<Option<Credential>, AuthError> {
    Ok(Some(Credential::Session {
        token: token.into(),
        source,
    }))
}

fn malformed(kind: MalformedKind) -> Result<Option<Credential>, AuthError> {
    Err(AuthError::Malformed(kind))
}

#[test]
fn nothing_presented() {
    let ex = default_sources();
    assert_eq!(ex.extract(&HeaderMap::new(), None), Ok(None));
    assert_eq!(
        ex.extract(&headers(&[("cookie", "theme=dark")]), None),
        Ok(None)
    );
}

#[test]
fn bearer_jwt_and_scheme_case() {
    let ex = default_sources();
    for value in [
        format!("Bearer {JWT}"),
        format!("bearer {JWT}"),
        format!("BEARER   {JWT}  "),
    ] {
        assert_eq!(
            ex.extract(&headers(&[("authorization", &value)]), None),
            jwt(JWT, SourceKind::Bearer),
            "{value}"
        );
    }
}

#[test]
fn bearer_session_token() {
    let ex = default_sources();
    let h = headers(&[("authorization", &format!("Bearer {SESSION}"))]);
    assert_eq!(ex.extract(&h, None), session(SESSION, SourceKind::Bearer));
}

#[test]
fn other_scheme_is_no_credential() {
    let ex = default_sources();
    let h = headers(&[("authorization", "Basic dXNlcjpwYXNz")]);
    assert_eq!(ex.extract(&h, None), Ok(None));
    // ... so a cookie behind it is used.
    let h = headers(&[
        ("authorization", "Basic dXNlcjpwYXNz"),
        ("cookie", &format!("{COOKIE}={SESSION}")),
    ]);
    assert_eq!(ex.extract(&h, None), session(SESSION, SourceKind::Cookie));
}

#[test]
fn empty_bearer_is_malformed() {
    let ex = default_sources();
    for value in ["Bearer", "Bearer ", "bearer    "] {
        let h = headers(&[("authorization", value)]);
        assert_eq!(
            ex.extract(&h, None),
            malformed(MalformedKind::NotThreeParts),
            "{value:?}"
        );
    }
}

#[test]
fn two_authorization_headers_are_malformed() {
    let ex = default_sources();
    let h = headers(&[
        ("authorization", &format!("Bearer {JWT}")),
        ("authorization", &format!("Bearer {JWT}")),
    ]);
    assert_eq!(
        ex.extract(&h, None),
        malformed(MalformedKind::MultipleCredentials)
    );
    // Folded into one value by a proxy.
    let h = headers(&[(
        "authorization",
        &format!("Bearer {JWT}, Bearer {OTHER_JWT}"),
    )]);
    assert_eq!(
        ex.extract(&h, None),
        malformed(MalformedKind::MultipleCredentials)
    );
}

#[test]
fn bad_characters_are_malformed() {
    let ex = default_sources();
    let h = headers(&[("authorization", "Bearer abc def")]);
    assert_eq!(
        ex.extract(&h, None),
        malformed(MalformedKind::BadCharacters)
    );
    let h = headers(&[("authorization", "Bearer tok\u{e9}n")]);
    assert_eq!(
        ex.extract(&h, None),
        malformed(MalformedKind::BadCharacters)
    );
    let h = headers(&[("cookie", &format!("{COOKIE}=a%00b"))]);
    assert_eq!(
        ex.extract(&h, None),
        malformed(MalformedKind::BadCharacters)
    );
    let h = headers(&[("cookie", &format!("{COOKIE}=a%20b"))]);
    assert_eq!(
        ex.extract(&h, None),
        malformed(MalformedKind::BadCharacters)
    );
}

#[test]
fn oversized_tokens_are_malformed() {
    let ex = default_sources();
    let big = "a".repeat(MAX_TOKEN_BYTES + 1);
    let h = headers(&[("authorization", &format!("Bearer {big}"))]);
    assert_eq!(ex.extract(&h, None), malformed(MalformedKind::TooLarge));
    let h = headers(&[("cookie", &format!("{COOKIE}={big}"))]);
    assert_eq!(ex.extract(&h, None), malformed(MalformedKind::TooLarge));
    let fits = "a".repeat(MAX_TOKEN_BYTES);
    let h = headers(&[("authorization", &format!("Bearer {fits}"))]);
    assert_eq!(ex.extract(&h, None), session(&fits, SourceKind::Bearer));
}

#[test]
fn session_cookie_is_url_decoded() {
    let ex = default_sources();
    let h = headers(&[("cookie", &format!("a=1; {COOKIE}={SIGNED_COOKIE}; b=2"))]);
    assert_eq!(
        ex.extract(&h, None),
        session(SIGNED_DECODED, SourceKind::Cookie)
    );
}

#[test]
fn secure_prefixed_cookie_is_found() {
    let ex = default_sources();
    let h = headers(&[("cookie", &format!("__Secure-{COOKIE}={SIGNED_COOKIE}"))]);
    assert_eq!(
        ex.extract(&h, None),
        session(SIGNED_DECODED, SourceKind::Cookie)
    );
    // Other prefixes or near names are not the cookie.
    let h = headers(&[(
        "cookie",
        &format!("x{COOKIE}={SESSION}; {COOKIE}x={SESSION}"),
    )]);
    assert_eq!(ex.extract(&h, None), Ok(None));
}

#[test]
fn cookies_split_across_headers() {
    let ex = default_sources();
    let h = headers(&[
        ("cookie", "theme=dark"),
        ("cookie", &format!("{COOKIE}={SESSION}")),
    ]);
    assert_eq!(ex.extract(&h, None), session(SESSION, SourceKind::Cookie));
}

#[test]
fn same_cookie_twice() {
    let ex = default_sources();
    let h = headers(&[
        ("cookie", &format!("{COOKIE}={SESSION}")),
        ("cookie", &format!("__Secure-{COOKIE}={SESSION}")),
    ]);
    assert_eq!(ex.extract(&h, None), session(SESSION, SourceKind::Cookie));
    let h = headers(&[("cookie", &format!("{COOKIE}={SESSION}; {COOKIE}=other"))]);
    assert_eq!(
        ex.extract(&h, None),
        malformed(MalformedKind::MultipleCredentials)
    );
}

#[test]
fn cleared_cookie_and_quoted_cookie() {
    let ex = default_sources();
    let h = headers(&[("cookie", &format!("{COOKIE}="))]);
    assert_eq!(ex.extract(&h, None), Ok(None));
    let h = headers(&[("cookie", &format!("{COOKIE}=\"{SESSION}\""))]);
    assert_eq!(ex.extract(&h, None), session(SESSION, SourceKind::Cookie));
}

#[test]
fn jwt_in_cookie() {
    let ex = default_sources();
    let h = headers(&[("cookie", &format!("{COOKIE}={JWT}"))]);
    assert_eq!(ex.extract(&h, None), jwt(JWT, SourceKind::Cookie));
}

#[test]
fn bearer_jwt_with_different_cookie_jwt_is_malformed() {
    let ex = default_sources();
    let h = headers(&[
        ("authorization", &format!("Bearer {JWT}")),
        ("cookie", &format!("{COOKIE}={OTHER_JWT}")),
    ]);
    assert_eq!(
        ex.extract(&h, None),
        malformed(MalformedKind::MultipleCredentials)
    );
}

#[test]
fn bearer_jwt_with_same_cookie_jwt_is_fine() {
    let ex = default_sources();
    let h = headers(&[
        ("authorization", &format!("Bearer {JWT}")),
        ("cookie", &format!("{COOKIE}={JWT}")),
    ]);
    assert_eq!(ex.extract(&h, None), jwt(JWT, SourceKind::Bearer));
}

#[test]
fn header_and_session_cookie_first_source_wins() {
    let h = headers(&[
        ("authorization", &format!("Bearer {JWT}")),
        ("cookie", &format!("{COOKIE}={SIGNED_COOKIE}")),
    ]);
    assert_eq!(
        default_sources().extract(&h, None),
        jwt(JWT, SourceKind::Bearer)
    );
    let cookie_first = Extractor::new(&[TokenSource::Cookie(COOKIE.into()), TokenSource::Bearer]);
    assert_eq!(
        cookie_first.extract(&h, None),
        session(SIGNED_DECODED, SourceKind::Cookie)
    );
}

#[test]
fn raw_header_source() {
    let ex = Extractor::new(&[TokenSource::Header("X-Api-Token".into())]);
    let h = headers(&[("x-api-token", JWT)]);
    assert_eq!(ex.extract(&h, None), jwt(JWT, SourceKind::Header));
    let h = headers(&[("x-api-token", SESSION), ("x-api-token", SESSION)]);
    assert_eq!(
        ex.extract(&h, None),
        malformed(MalformedKind::MultipleCredentials)
    );
    // The raw header is not bearer-parsed.
    let h = headers(&[("x-api-token", &format!("Bearer {JWT}"))]);
    assert_eq!(
        ex.extract(&h, None),
        malformed(MalformedKind::BadCharacters)
    );
    // Authorization is not consulted unless configured.
    let h = headers(&[("authorization", &format!("Bearer {JWT}"))]);
    assert_eq!(ex.extract(&h, None), Ok(None));
}

#[test]
fn query_only_when_configured() {
    let q = format!("a=1&access_token={JWT}&b=2");
    assert_eq!(
        default_sources().extract(&HeaderMap::new(), Some(&q)),
        Ok(None)
    );
    let ex = Extractor::new(&[
        TokenSource::Bearer,
        TokenSource::Query("access_token".into()),
    ]);
    assert_eq!(
        ex.extract(&HeaderMap::new(), Some(&q)),
        jwt(JWT, SourceKind::Query)
    );
    assert_eq!(ex.extract(&HeaderMap::new(), None), Ok(None));
    assert_eq!(
        ex.extract(&HeaderMap::new(), Some("access_token=a%2Bb%3D")),
        session("a+b=", SourceKind::Query)
    );
    assert_eq!(
        ex.extract(&HeaderMap::new(), Some("access_token=a&access_token=b")),
        malformed(MalformedKind::MultipleCredentials)
    );
    // A header JWT and a different query JWT are two credentials.
    let h = headers(&[("authorization", &format!("Bearer {OTHER_JWT}"))]);
    assert_eq!(
        ex.extract(&h, Some(&q)),
        malformed(MalformedKind::MultipleCredentials)
    );
}

#[test]
fn classification_by_dots() {
    let ex = default_sources();
    for (value, is_jwt) in [
        ("a.b.c", true),
        ("..", true),
        ("a.b", false),
        ("abc", false),
        ("a.b.c.d", false),
    ] {
        let h = headers(&[("authorization", &format!("Bearer {value}"))]);
        let got = ex.extract(&h, None).unwrap().unwrap();
        assert_eq!(matches!(got, Credential::Jwt { .. }), is_jwt, "{value}");
        assert_eq!(got.token(), value);
        assert_eq!(got.source(), SourceKind::Bearer);
    }
}
