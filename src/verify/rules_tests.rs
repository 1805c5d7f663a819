//! Token shape, provider and key choice, and registered claims (docs/configuration.md, providers).
#![allow(clippy::unwrap_used)]

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::jwks_server::JwksServer;
use common::tokens::{
    TestKey, b64, claims, hs_token, jwks, jwks_provider, now, provider, secret_provider,
};
use gatehouse::config::{KeySource, ProviderSpec};
use gatehouse::error::{AuthError, InvalidKind, MalformedKind};
use gatehouse::telemetry::Metrics;
use gatehouse::verify::Verifier;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const ISS: &str = "https://auth.example.test";

async fn ready(specs: &[ProviderSpec]) -> (Verifier, CancellationToken) {
    let v = Verifier::new(specs, Arc::new(Metrics::new())).unwrap();
    let stop = CancellationToken::new();
    v.start(stop.clone());
    assert!(v.wait_ready(Duration::from_secs(5)).await);
    (v, stop)
}

fn invalid(kind: InvalidKind) -> AuthError {
    AuthError::Invalid(kind)
}

fn malformed(kind: MalformedKind) -> AuthError {
    AuthError::Malformed(kind)
}

async fn one_key() -> (TestKey, JwksServer, Verifier, CancellationToken) {
    let k = TestKey::generate("EdDSA", "k1");
    let server = JwksServer::start(jwks(&[&k])).await;
    let (v, stop) = ready(&[jwks_provider("ba", ISS, &server.url("/jwks"))]).await;
    (k, server, v, stop)
}

#[tokio::test]
async fn token_shape() {
    let (k, _server, v, _stop) = one_key().await;
    let good = k.token(&claims(ISS, "api", "u", 300));
    assert!(v.verify(&good).await.is_ok());

    // 16 KiB cap on the token itself.
    let mut big = claims(ISS, "api", "u", 300);
    big["pad"] = json!("x".repeat(12 * 1024));
    let t = k.token(&big);
    assert!(t.len() > 16 * 1024);
    assert_eq!(
        v.verify(&t).await.unwrap_err(),
        malformed(MalformedKind::TooLarge)
    );
    // Just under the cap is fine.
    let mut fits = claims(ISS, "api", "u", 300);
    fits["pad"] = json!("x".repeat(11 * 1024));
    let t = k.token(&fits);
    assert!(t.len() <= 16 * 1024);
    assert!(v.verify(&t).await.is_ok());

    let parts: Vec<&str> = good.split('.').collect();
    for bad in [
        parts[..2].join("."),
        format!("{good}.x"),
        String::new(),
        "abc".to_owned(),
    ] {
        assert_eq!(
            v.verify(&bad).await.unwrap_err(),
            malformed(MalformedKind::NotThreeParts)
        );
    }
    let b64_cases = [
        format!("{}!.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}=.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}+", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}", parts[0].replace('e', "+"), parts[1], parts[2]),
    ];
    for bad in b64_cases {
        let err = v.verify(&bad).await.unwrap_err();
        assert!(
            err == malformed(MalformedKind::BadBase64) || err == malformed(MalformedKind::BadJson),
            "{err:?}"
        );
        assert_eq!(err.code().as_str(), "token_malformed");
    }
    let padded = format!("{}.{}.{}==", parts[0], parts[1], parts[2]);
    assert_eq!(
        v.verify(&padded).await.unwrap_err(),
        malformed(MalformedKind::BadBase64)
    );
    let sig = b64(b"sig");
    let enc = |s: &str| b64(s.as_bytes());
    let hdr = enc(r#"{"alg":"EdDSA","kid":"k1"}"#);
    for (h, p, want) in [
        (enc("[1,2]"), enc("{}"), MalformedKind::NotAnObject),
        (
            hdr.clone(),
            enc("\"just a string\""),
            MalformedKind::NotAnObject,
        ),
        (hdr.clone(), enc("42"), MalformedKind::NotAnObject),
        (hdr.clone(), enc("{not json"), MalformedKind::BadJson),
        (enc("{\"alg\":"), enc("{}"), MalformedKind::BadJson),
    ] {
        assert_eq!(
            v.verify(&format!("{h}.{p}.{sig}")).await.unwrap_err(),
            malformed(want)
        );
    }
}

#[tokio::test]
async fn time_claims_with_leeway() {
    let (k, _server, v, _stop) = one_key().await;
    let n = now() as i64;
    let with = |patch: Value| {
        let mut c = claims(ISS, "api", "u", 300);
        for (key, val) in patch.as_object().unwrap() {
            if val.is_null() {
                c.as_object_mut().unwrap().remove(key);
            } else {
                c[key] = val.clone();
            }
        }
        k.token(&c)
    };
    // exp: within the 60 s leeway passes, beyond fails as expired.
    assert!(v.verify(&with(json!({"exp": n - 30}))).await.is_ok());
    assert_eq!(
        v.verify(&with(json!({"exp": n - 90}))).await.unwrap_err(),
        AuthError::Expired
    );
    assert_eq!(
        v.verify(&with(json!({"exp": n - 90})))
            .await
            .unwrap_err()
            .code()
            .as_str(),
        "token_expired"
    );
    // nbf
    assert!(v.verify(&with(json!({"nbf": n + 30}))).await.is_ok());
    assert_eq!(
        v.verify(&with(json!({"nbf": n + 90}))).await.unwrap_err(),
        invalid(InvalidKind::NotYetValid)
    );
    // iat
    assert!(v.verify(&with(json!({"iat": n + 30}))).await.is_ok());
    assert_eq!(
        v.verify(&with(json!({"iat": n + 90}))).await.unwrap_err(),
        invalid(InvalidKind::IssuedInFuture)
    );
    // exp is required by default; non-numeric time claims are refused.
    assert_eq!(
        v.verify(&with(json!({"exp": null}))).await.unwrap_err(),
        invalid(InvalidKind::MissingClaim)
    );
    for bad in [
        json!({"exp": "never"}),
        json!({"nbf": true}),
        json!({"iat": [1]}),
    ] {
        assert_eq!(
            v.verify(&with(bad)).await.unwrap_err(),
            invalid(InvalidKind::BadTimeClaim)
        );
    }
}

#[tokio::test]
async fn zero_leeway_and_required_claims_and_lifetime() {
    let k = TestKey::generate("ES256", "k1");
    let server = JwksServer::start(jwks(&[&k])).await;
    let mut spec = jwks_provider("ba", ISS, &server.url("/jwks"));
    spec.leeway = Duration::ZERO;
    spec.require = vec!["exp".into(), "sub".into()];
    spec.max_lifetime = Some(Duration::from_secs(3600));
    let (v, _stop) = ready(&[spec]).await;
    let n = now() as i64;
    let mut c = claims(ISS, "api", "u", 300);
    assert!(v.verify(&k.token(&c)).await.is_ok());
    c["exp"] = json!(n - 5);
    assert_eq!(
        v.verify(&k.token(&c)).await.unwrap_err(),
        AuthError::Expired
    );
    let mut c = claims(ISS, "api", "u", 300);
    c.as_object_mut().unwrap().remove("sub");
    assert_eq!(
        v.verify(&k.token(&c)).await.unwrap_err(),
        invalid(InvalidKind::MissingClaim)
    );
    let c = claims(ISS, "api", "u", 7200);
    assert_eq!(
        v.verify(&k.token(&c)).await.unwrap_err(),
        invalid(InvalidKind::LifetimeTooLong)
    );
}

#[tokio::test]
async fn issuer_and_audience() {
    let k = TestKey::generate("EdDSA", "k1");
    let server = JwksServer::start(jwks(&[&k])).await;
    let mut spec = jwks_provider("ba", ISS, &server.url("/jwks"));
    spec.audiences = vec!["api".into(), "admin".into()];
    let (v, _stop) = ready(&[spec]).await;
    let tok = |iss: &str, aud: Value| {
        let mut c = claims(iss, "x", "u", 300);
        c["aud"] = aud;
        k.token(&c)
    };
    assert!(v.verify(&tok(ISS, json!("api"))).await.is_ok());
    assert!(v.verify(&tok(ISS, json!("admin"))).await.is_ok());
    assert!(v.verify(&tok(ISS, json!(["other", "admin"]))).await.is_ok());
    for aud in [
        json!("other"),
        json!(["a", "b"]),
        json!([]),
        json!(null),
        json!(7),
    ] {
        assert_eq!(
            v.verify(&tok(ISS, aud.clone())).await.unwrap_err(),
            invalid(InvalidKind::WrongAudience),
            "{aud}"
        );
    }
    let mut no_aud = claims(ISS, "x", "u", 300);
    no_aud.as_object_mut().unwrap().remove("aud");
    assert_eq!(
        v.verify(&k.token(&no_aud)).await.unwrap_err(),
        invalid(InvalidKind::WrongAudience)
    );
    // iss must match exactly (no trailing slash, no case folding).
    for iss in [
        format!("{ISS}/"),
        ISS.to_uppercase(),
        "https://evil.test".into(),
    ] {
        assert_eq!(
            v.verify(&tok(&iss, json!("api"))).await.unwrap_err(),
            invalid(InvalidKind::UnknownIssuer)
        );
    }
    let mut no_iss = claims(ISS, "api", "u", 300);
    no_iss.as_object_mut().unwrap().remove("iss");
    assert_eq!(
        v.verify(&k.token(&no_iss)).await.unwrap_err(),
        invalid(InvalidKind::UnknownIssuer)
    );
}

#[tokio::test]
async fn equal_kids_in_two_providers_never_mix() {
    let a = TestKey::generate("EdDSA", "shared");
    let b = TestKey::generate("EdDSA", "shared");
    let sa = JwksServer::start(jwks(&[&a])).await;
    let sb = JwksServer::start(jwks(&[&b])).await;
    let (v, _stop) = ready(&[
        jwks_provider("a", "https://a.test", &sa.url("/jwks")),
        jwks_provider("b", "https://b.test", &sb.url("/jwks")),
    ])
    .await;
    let ok_a = v
        .verify(&a.token(&claims("https://a.test", "x", "u", 60)))
        .await
        .unwrap();
    assert_eq!(&*ok_a.identity.provider, "a");
    let ok_b = v
        .verify(&b.token(&claims("https://b.test", "x", "u", 60)))
        .await
        .unwrap();
    assert_eq!(&*ok_b.identity.provider, "b");
    assert_eq!(ok_b.key.provider, 1);
    // b's key claiming a's issuer: a's "shared" key is used, and fails.
    assert_eq!(
        v.verify(&b.token(&claims("https://a.test", "x", "u", 60)))
            .await
            .unwrap_err(),
        invalid(InvalidKind::BadSignature)
    );
    assert_eq!(
        v.verify(&a.token(&claims("https://b.test", "x", "u", 60)))
            .await
            .unwrap_err(),
        invalid(InvalidKind::BadSignature)
    );
}

#[tokio::test]
async fn token_without_kid_needs_exactly_one_fitting_key() {
    let ed = TestKey::generate("EdDSA", "ed");
    let es1 = TestKey::generate("ES256", "es1");
    let es2 = TestKey::generate("ES256", "es2");
    let server = JwksServer::start(jwks(&[&ed, &es1, &es2])).await;
    let (v, _stop) = ready(&[jwks_provider("ba", ISS, &server.url("/jwks"))]).await;
    let c = claims(ISS, "api", "u", 60);
    let t = ed.sign(&json!({"alg": "EdDSA"}), &c);
    assert!(v.verify(&t).await.is_ok(), "one EdDSA key fits");
    let t = es1.sign(&json!({"alg": "ES256"}), &c);
    assert_eq!(v.verify(&t).await.unwrap_err(), invalid(InvalidKind::NoKid));
    assert!(v.verify(&es1.token(&c)).await.is_ok());
}

#[tokio::test]
async fn shared_issuer_alg_family_picks_provider_and_issuerless_fallback() {
    let ed = TestKey::generate("EdDSA", "k1");
    let server = JwksServer::start(jwks(&[&ed])).await;
    let secret = b"better-auth-secret-value";
    let mut hs = secret_provider("ba-secret", Some(ISS), secret);
    hs.algorithms = Some(vec![gatehouse::config::Alg::HS256]);
    let (v, _stop) = ready(&[jwks_provider("ba-jwks", ISS, &server.url("/jwks")), hs]).await;
    let c = claims(ISS, "api", "u", 60);
    assert_eq!(
        &*v.verify(&ed.token(&c)).await.unwrap().identity.provider,
        "ba-jwks"
    );
    assert_eq!(
        &*v.verify(&hs_token("HS256", secret, &c))
            .await
            .unwrap()
            .identity
            .provider,
        "ba-secret"
    );
    assert!(v.issuerless_providers().is_empty());

    // A token whose iss names no provider goes only to issuerless providers.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks(&[&ed]).to_string()).unwrap();
    let (v, _stop) = ready(&[
        provider("file", None, KeySource::File(file.display().to_string())),
        secret_provider("plain", None, secret),
        jwks_provider("ba", ISS, &server.url("/jwks")),
    ])
    .await;
    assert_eq!(
        v.issuerless_providers(),
        vec!["file".to_owned(), "plain".to_owned()]
    );
    let other = claims("https://anything.test", "api", "u", 60);
    assert_eq!(
        &*v.verify(&ed.token(&other)).await.unwrap().identity.provider,
        "file"
    );
    assert_eq!(
        &*v.verify(&hs_token("HS384", secret, &other))
            .await
            .unwrap()
            .identity
            .provider,
        "plain"
    );
    // Issuer-bound providers never get a stranger's token.
    let (v, _stop) = ready(&[jwks_provider("ba", ISS, &server.url("/jwks"))]).await;
    assert_eq!(
        v.verify(&ed.token(&other)).await.unwrap_err(),
        invalid(InvalidKind::UnknownIssuer)
    );
}

#[tokio::test]
async fn jwks_file_is_read_at_load() {
    let ed = TestKey::generate("EdDSA", "k1");
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    std::fs::write(&good, jwks(&[&ed]).to_string()).unwrap();
    let m = Arc::new(Metrics::new());
    let spec =
        |p: &std::path::Path| provider("f", Some(ISS), KeySource::File(p.display().to_string()));
    let v = Verifier::new(&[spec(&good)], m.clone()).unwrap();
    assert!(v.is_ready());
    assert!(
        v.verify(&ed.token(&claims(ISS, "a", "u", 60)))
            .await
            .is_ok()
    );

    let missing = dir.path().join("missing.json");
    let err = Verifier::new(
        &[secret_provider("s", None, b"x"), spec(&missing)],
        m.clone(),
    )
    .unwrap_err();
    assert_eq!(err.key, "providers[1].jwks_file");
    let garbage = dir.path().join("garbage.json");
    std::fs::write(
        &garbage,
        b"{\"keys\": [{\"kty\": \"oct\", \"k\": \"AAAA\"}]}",
    )
    .unwrap();
    let err = Verifier::new(&[spec(&garbage)], m.clone()).unwrap_err();
    assert_eq!(err.key, "providers[0].jwks_file");
    std::fs::write(&garbage, b"not json").unwrap();
    assert_eq!(
        Verifier::new(&[spec(&garbage)], m).unwrap_err().key,
        "providers[0].jwks_file"
    );
}
