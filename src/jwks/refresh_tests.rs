//! JWKS fetching against a real local server: unknown-kid refetch limits,
//! single-flight, rotation, removed keys, stale keys, never-loaded
//! providers, discovery, and hostile documents (docs/configuration.md, providers).
#![allow(clippy::unwrap_used)]

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::jwks_server::JwksServer;
use common::metrics;
use common::tokens::{TestKey, claims, jwks, jwks_provider, provider};
use gatehouse::config::{KeySource, ProviderSpec};
use gatehouse::error::{AuthError, InvalidKind};
use gatehouse::telemetry::Metrics;
use gatehouse::verify::Verifier;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const ISS: &str = "https://auth.example.test";

fn quick(url: &str) -> ProviderSpec {
    let mut s = jwks_provider("ba", ISS, url);
    s.unknown_kid_refetch_interval = Duration::from_millis(400);
    s
}

async fn started(specs: &[ProviderSpec]) -> (Arc<Verifier>, CancellationToken, Arc<Metrics>) {
    let m = Arc::new(Metrics::new());
    let v = Arc::new(Verifier::new(specs, m.clone()).unwrap());
    let stop = CancellationToken::new();
    v.start(stop.clone());
    (v, stop, m)
}

#[tokio::test]
async fn flood_of_random_kids_costs_at_most_one_refetch() {
    let k = TestKey::generate("EdDSA", "k1");
    let server = JwksServer::start(jwks(&[&k])).await;
    let (v, _stop, _) = started(&[quick(&server.url("/jwks"))]).await;
    assert!(v.wait_ready(Duration::from_secs(5)).await);
    assert_eq!(server.hits(), 1);
    let attacker = TestKey::generate("EdDSA", "x");
    let c = claims(ISS, "api", "u", 300);
    // Within the cooldown of the initial fetch: no refetch at all.
    for i in 0..100 {
        let t = attacker.sign(&json!({"alg": "EdDSA", "kid": format!("rand-{i}")}), &c);
        assert_eq!(
            v.verify(&t).await.unwrap_err(),
            AuthError::Invalid(InvalidKind::UnknownKid)
        );
    }
    assert_eq!(server.hits(), 1);
    // After the cooldown: the first unknown kid refetches once, the rest are free.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..100 {
        let t = attacker.sign(&json!({"alg": "EdDSA", "kid": format!("more-{i}")}), &c);
        assert_eq!(
            v.verify(&t).await.unwrap_err(),
            AuthError::Invalid(InvalidKind::UnknownKid)
        );
    }
    assert_eq!(server.hits(), 2);
    assert!(v.verify(&k.token(&c)).await.is_ok());
}

#[tokio::test]
async fn concurrent_unknown_kids_share_one_fetch() {
    let k = TestKey::generate("EdDSA", "k1");
    let server = JwksServer::start(jwks(&[&k])).await;
    let (v, _stop, _) = started(&[quick(&server.url("/jwks"))]).await;
    assert!(v.wait_ready(Duration::from_secs(5)).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let k2 = TestKey::generate("EdDSA", "k2");
    server.set_doc(jwks(&[&k, &k2]));
    server.set_delay(Duration::from_millis(300));
    let c = claims(ISS, "api", "u", 300);
    let token = k2.token(&c);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let v = v.clone();
        let t = token.clone();
        tasks.push(tokio::spawn(async move { v.verify(&t).await }));
    }
    for t in tasks {
        assert!(t.await.unwrap().is_ok(), "every waiter sees the new key");
    }
    assert_eq!(server.hits(), 2, "initial fetch + one shared refetch");
}

#[tokio::test]
async fn rotation_and_removed_keys() {
    let old = TestKey::generate("ES256", "old");
    let keep = TestKey::generate("EdDSA", "keep");
    let server = JwksServer::start(jwks(&[&old, &keep])).await;
    let (v, _stop, _) = started(&[quick(&server.url("/jwks"))]).await;
    assert!(v.wait_ready(Duration::from_secs(5)).await);
    let c = claims(ISS, "api", "u", 300);
    let by_old = v.verify(&old.token(&c)).await.unwrap();
    let by_keep = v.verify(&keep.token(&c)).await.unwrap();
    assert!(v.key_present(by_old.key));

    // Rotate: "new" added, "old" removed. The new kid is picked up by an
    // unknown-kid refetch once the cooldown has passed.
    let new = TestKey::generate("ES256", "new");
    server.set_doc(jwks(&[&keep, &new]));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let by_new = v.verify(&new.token(&c)).await.unwrap();
    assert_eq!(server.hits(), 2);
    assert!(v.key_present(by_new.key));
    assert!(
        !v.key_present(by_old.key),
        "removed key stops counting at once"
    );
    assert!(
        v.key_present(by_keep.key),
        "unchanged key keeps its identity"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        v.verify(&old.token(&c)).await.unwrap_err(),
        AuthError::Invalid(InvalidKind::UnknownKid)
    );
    // Same kid, new material: a different key as far as the cache is concerned.
    let swapped = TestKey::generate("EdDSA", "keep");
    server.set_doc(jwks(&[&swapped, &new]));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = v.verify(&TestKey::generate("EdDSA", "zzz").token(&c)).await;
    assert_eq!(server.hits(), 4);
    assert!(!v.key_present(by_keep.key));
    assert!(v.key_present(by_new.key));
}

#[tokio::test]
async fn failing_server_keeps_last_good_keys() {
    let k = TestKey::generate("EdDSA", "k1");
    let server = JwksServer::start(jwks(&[&k])).await;
    let (v, _stop, m) = started(&[quick(&server.url("/jwks"))]).await;
    assert!(v.wait_ready(Duration::from_secs(5)).await);
    let c = claims(ISS, "api", "u", 300);
    let ok = v.verify(&k.token(&c)).await.unwrap();
    server.set_status(500);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let other = TestKey::generate("EdDSA", "k2");
    assert!(v.verify(&other.token(&c)).await.is_err());
    assert_eq!(server.hits(), 2, "the refetch happened and failed");
    assert!(
        v.verify(&k.token(&c)).await.is_ok(),
        "stale keys still verify"
    );
    assert!(v.key_present(ok.key));
    assert!(v.is_ready());
    let text = m.encode(&v.key_ages());
    let fetches = |result| {
        metrics::value(
            &text,
            "gatehouse_jwks_fetches_total",
            &[("provider", "ba"), ("result", result)],
        )
    };
    assert_eq!(fetches("failure"), Some(1.0), "{text}");
    assert_eq!(fetches("success"), Some(1.0), "{text}");
    // The keys in use are those of the first fetch, over 500 ms ago: the
    // failed refetch did not make them younger.
    let age = metrics::value(&text, "gatehouse_jwks_age_seconds", &[("provider", "ba")]);
    assert!(age.is_some_and(|a| (0.5..5.0).contains(&a)), "{text}");
}

#[tokio::test]
async fn never_loaded_provider_is_unavailable() {
    let k = TestKey::generate("EdDSA", "k1");
    let server = JwksServer::start(jwks(&[&k])).await;
    server.set_status(503);
    let (v, _stop, _) = started(&[quick(&server.url("/jwks"))]).await;
    assert!(!v.wait_ready(Duration::from_millis(300)).await);
    let c = claims(ISS, "api", "u", 300);
    let err = v.verify(&k.token(&c)).await.unwrap_err();
    assert_eq!(err, AuthError::JwksUnavailable("ba".into()));
    assert_eq!(err.http_status(), 503);
    // Once the server recovers, a token triggers the (rate-limited) fetch.
    server.set_status(200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(v.verify(&k.token(&c)).await.is_ok());
    assert!(v.is_ready());
    let status = v.provider_status();
    assert!(status[0].loaded && status[0].remote && status[0].keys == 1);
}

#[tokio::test]
async fn token_for_unstarted_provider_fetches_on_demand() {
    let k = TestKey::generate("EdDSA", "k1");
    let server = JwksServer::start(jwks(&[&k])).await;
    let v = Verifier::new(&[quick(&server.url("/jwks"))], Arc::new(Metrics::new())).unwrap();
    assert!(!v.is_ready());
    assert!(
        v.verify(&k.token(&claims(ISS, "api", "u", 60)))
            .await
            .is_ok()
    );
    assert_eq!(server.hits(), 1);
}

async fn unusable(body: Vec<u8>, delay: Duration) {
    let k = TestKey::generate("EdDSA", "k1");
    let server = JwksServer::start(jwks(&[&k])).await;
    server.set_body(body);
    server.set_delay(delay);
    let m = Arc::new(Metrics::new());
    let v = Verifier::new(&[quick(&server.url("/jwks"))], m.clone()).unwrap();
    let err = v
        .verify(&k.token(&claims(ISS, "api", "u", 60)))
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::JwksUnavailable("ba".into()));
    assert_eq!(server.hits(), 1);
    let text = m.encode(&v.key_ages());
    let fetches = |result| {
        metrics::value(
            &text,
            "gatehouse_jwks_fetches_total",
            &[("provider", "ba"), ("result", result)],
        )
    };
    assert_eq!(fetches("failure"), Some(1.0), "{text}");
    assert_eq!(fetches("success"), Some(0.0), "{text}");
    // Never loaded: no key age to report.
    assert!(!text.contains("gatehouse_jwks_age_seconds{"), "{text}");
}

#[tokio::test]
async fn garbage_jwks_is_a_failed_fetch() {
    unusable(b"\x00\xffnot json at all".to_vec(), Duration::ZERO).await;
    unusable(b"{\"keys\": 5}".to_vec(), Duration::ZERO).await;
    unusable(b"[]".to_vec(), Duration::ZERO).await;
    let k = TestKey::generate("EdDSA", "enc");
    let mut jwk = k.public_jwk();
    jwk["use"] = json!("enc");
    let junk = json!({"keys": [jwk, {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "!!"}, {"kty": "XYZ"}, 7]});
    unusable(junk.to_string().into_bytes(), Duration::ZERO).await;
}

#[tokio::test]
async fn oversized_jwks_is_a_failed_fetch() {
    let pad = "x".repeat(1024 * 1024 + 10);
    unusable(
        format!("{{\"keys\":[],\"pad\":\"{pad}\"}}").into_bytes(),
        Duration::ZERO,
    )
    .await;
}

#[tokio::test]
async fn slow_jwks_times_out() {
    let started = std::time::Instant::now();
    unusable(jwks(&[]).to_string().into_bytes(), Duration::from_secs(7)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(7),
        "{took:?}"
    );
}

#[tokio::test]
async fn unusable_keys_are_skipped_not_fatal() {
    let good = TestKey::generate("ES384", "good");
    let enc = TestKey::generate("EdDSA", "enc");
    let mut enc_jwk = enc.public_jwk();
    enc_jwk["use"] = json!("enc");
    let mut mismatched = TestKey::generate("EdDSA", "mismatch").public_jwk();
    mismatched["alg"] = json!("ES256");
    let doc = json!({"keys": [
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"},
        enc_jwk,
        mismatched,
        {"kty": "RSA", "n": "@@", "e": "AQAB", "kid": "bad-rsa"},
        good.public_jwk(),
    ]});
    let server = JwksServer::start(doc).await;
    let (v, _stop, _) = started(&[quick(&server.url("/jwks"))]).await;
    assert!(v.wait_ready(Duration::from_secs(5)).await);
    assert_eq!(v.provider_status()[0].keys, 1);
    let c = claims(ISS, "api", "u", 60);
    assert!(v.verify(&good.token(&c)).await.is_ok());
    assert!(v.verify(&enc.token(&c)).await.is_err());
    let hs = common::tokens::hs_sign(
        "HS256",
        b"secret",
        &json!({"alg": "HS256", "kid": "hmac"}),
        &c,
    );
    assert!(
        v.verify(&hs).await.is_err(),
        "an oct key in a JWKS is never used"
    );
}

#[tokio::test]
async fn oidc_discovery_finds_jwks_and_issuer() {
    let k = TestKey::generate("RS256", "k1");
    let server = JwksServer::start(json!({})).await;
    let issuer = server.url("");
    server.set_doc_at(
        "/.well-known/openid-configuration",
        json!({"issuer": issuer, "jwks_uri": server.url("/keys")}),
    );
    server.set_doc_at("/keys", jwks(&[&k]));
    let spec = provider("oidc", None, KeySource::Discovery(issuer.clone()));
    let (v, _stop, _) = started(&[spec]).await;
    assert!(v.wait_ready(Duration::from_secs(5)).await);
    assert_eq!(server.hits_on("/.well-known/openid-configuration"), 1);
    assert_eq!(server.hits_on("/keys"), 1);
    let ok = v
        .verify(&k.token(&claims(&issuer, "api", "u", 60)))
        .await
        .unwrap();
    assert_eq!(&*ok.identity.provider, "oidc");
    assert_eq!(
        v.provider_status()[0].issuer.as_deref(),
        Some(issuer.as_str())
    );
    assert!(v.issuerless_providers().is_empty());
    assert_eq!(
        v.verify(&k.token(&claims("https://other.test", "api", "u", 60)))
            .await
            .unwrap_err(),
        AuthError::Invalid(InvalidKind::UnknownIssuer)
    );
}

#[tokio::test]
async fn cache_control_of_the_response_sets_the_next_refresh() {
    let k = TestKey::generate("EdDSA", "k1");
    let plain = JwksServer::start(jwks(&[&k])).await;
    let cached = JwksServer::start(jwks(&[&k])).await;
    cached.set_cache_control(Some("public, max-age=1"));
    let spec = |url: String| {
        let mut s = jwks_provider("ba", ISS, &url);
        s.refresh_interval = Duration::from_millis(500);
        s
    };
    let (_v1, _s1, _) = started(&[spec(plain.url("/jwks"))]).await;
    let (_v2, _s2, _) = started(&[spec(cached.url("/jwks"))]).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    // refresh_interval (0.5 s) without Cache-Control; max-age=1 is raised to 30 s.
    assert!(plain.hits() >= 2, "{}", plain.hits());
    assert_eq!(cached.hits(), 1);
}
