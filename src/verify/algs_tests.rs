//! Every algorithm end to end through a served JWKS, and the header rules
//! of the verification rules: alg from the key, `none`, alg confusion, `crit`, and
//! `jku`/`x5u`/`jwk`/`x5c` never fetched.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::jwks_server::JwksServer;
use common::tokens::{
    TestKey, b64, claims, hs_sign, hs_token, jwks, jwks_provider, secret_provider,
};
use gatehouse::config::{Alg, ProviderSpec};
use gatehouse::error::{AuthError, InvalidKind};
use gatehouse::telemetry::Metrics;
use gatehouse::verify::Verifier;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const ISS: &str = "https://auth.example.test";

async fn ready(specs: &[ProviderSpec]) -> (Verifier, CancellationToken) {
    let v = Verifier::new(specs, Arc::new(Metrics::new())).unwrap();
    let stop = CancellationToken::new();
    v.start(stop.clone());
    assert!(v.wait_ready(Duration::from_secs(5)).await, "keys loaded");
    (v, stop)
}

fn invalid(kind: InvalidKind) -> AuthError {
    AuthError::Invalid(kind)
}

#[tokio::test]
async fn every_algorithm_verifies_through_served_jwks() {
    let algs = [
        "EdDSA", "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    ];
    let keys: Vec<TestKey> = algs
        .iter()
        .map(|a| TestKey::generate(a, &format!("kid-{a}")))
        .collect();
    let refs: Vec<&TestKey> = keys.iter().collect();
    let server = JwksServer::start(jwks(&refs)).await;
    let (v, _stop) = ready(&[jwks_provider("ba", ISS, &server.url("/api/auth/jwks"))]).await;
    for k in &keys {
        let t = k.token(&claims(ISS, "api", &format!("user-{}", k.alg), 300));
        let ok = v
            .verify(&t)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", k.alg));
        assert_eq!(&*ok.identity.provider, "ba");
        assert_eq!(ok.identity.sub(), Some(format!("user-{}", k.alg).as_str()));
        assert!(v.key_present(ok.key));
        // A signature from another key under the same kid must fail.
        let other = TestKey::generate(&k.alg, &k.kid);
        let forged = other.token(&claims(ISS, "api", "x", 300));
        assert_eq!(
            v.verify(&forged).await.unwrap_err(),
            invalid(InvalidKind::BadSignature),
            "{}",
            k.alg
        );
    }
    assert_eq!(server.hits_on("/api/auth/jwks"), 1);
}

#[tokio::test]
async fn hmac_algorithms_through_secret_provider() {
    let secret = b"a-long-enough-shared-secret-for-tests";
    let (v, _stop) = ready(&[secret_provider("secret", Some(ISS), secret)]).await;
    for alg in ["HS256", "HS384", "HS512"] {
        let t = hs_token(alg, secret, &claims(ISS, "api", "u", 300));
        let ok = v.verify(&t).await.unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(&*ok.identity.provider, "secret");
        let bad = hs_token(alg, b"wrong secret", &claims(ISS, "api", "u", 300));
        assert_eq!(
            v.verify(&bad).await.unwrap_err(),
            invalid(InvalidKind::BadSignature)
        );
    }
    // An allow-list narrows a secret provider (BETTER_AUTH_SECRET: HS256 only).
    let mut only256 = secret_provider("secret", Some(ISS), secret);
    only256.algorithms = Some(vec![Alg::HS256]);
    let (v, _stop) = ready(&[only256]).await;
    assert!(
        v.verify(&hs_token("HS256", secret, &claims(ISS, "a", "u", 60)))
            .await
            .is_ok()
    );
    assert_eq!(
        v.verify(&hs_token("HS512", secret, &claims(ISS, "a", "u", 60)))
            .await
            .unwrap_err(),
        invalid(InvalidKind::WrongAlg)
    );
}

#[tokio::test]
async fn alg_none_is_refused() {
    let k = TestKey::generate("EdDSA", "k1");
    let server = JwksServer::start(jwks(&[&k])).await;
    let (v, _stop) = ready(&[
        jwks_provider("ba", ISS, &server.url("/jwks")),
        secret_provider("s", None, b"secret"),
    ])
    .await;
    let c = claims(ISS, "api", "u", 300);
    for alg in ["none", "None", "NONE"] {
        let unsigned = format!(
            "{}.{}.",
            b64(json!({"alg": alg, "kid": "k1"}).to_string().as_bytes()),
            b64(c.to_string().as_bytes())
        );
        assert_eq!(
            v.verify(&unsigned).await.unwrap_err(),
            invalid(InvalidKind::AlgNone)
        );
        // Even with some signature bytes attached.
        let with_sig = format!("{unsigned}{}", b64(b"sig"));
        assert_eq!(
            v.verify(&with_sig).await.unwrap_err(),
            invalid(InvalidKind::AlgNone)
        );
    }
    // A real alg with an empty signature.
    let t = k.token(&c);
    let stripped = &t[..=t.rfind('.').unwrap()];
    assert_eq!(
        v.verify(stripped).await.unwrap_err(),
        invalid(InvalidKind::EmptySignature)
    );
    // Unknown alg names.
    let odd = k.sign(&json!({"alg": "ES999", "kid": "k1"}), &c);
    assert_eq!(
        v.verify(&odd).await.unwrap_err(),
        invalid(InvalidKind::WrongAlg)
    );
    let numeric = k.sign(&json!({"alg": 5, "kid": "k1"}), &c);
    assert_eq!(
        v.verify(&numeric).await.unwrap_err(),
        invalid(InvalidKind::WrongAlg)
    );
}

#[tokio::test]
async fn hs256_with_rsa_public_key_as_secret_is_refused() {
    let rsa = TestKey::generate("RS256", "rsa-1");
    let server = JwksServer::start(jwks(&[&rsa])).await;
    let (v, _stop) = ready(&[jwks_provider("ba", ISS, &server.url("/jwks"))]).await;
    let c = claims(ISS, "api", "attacker", 300);
    for pem in [
        rsa.public_pem(),
        rsa.public_jwk()["n"].as_str().unwrap().as_bytes().to_vec(),
    ] {
        let t = hs_sign("HS256", &pem, &json!({"alg": "HS256", "kid": "rsa-1"}), &c);
        let err = v.verify(&t).await.unwrap_err();
        assert_eq!(err, invalid(InvalidKind::WrongAlg));
        assert_eq!(err.code().as_str(), "token_invalid");
    }
    // The genuine token still works, so the refusal is about the alg.
    assert!(v.verify(&rsa.token(&c)).await.is_ok());
}

#[tokio::test]
async fn algorithm_comes_from_the_key() {
    let rsa = TestKey::generate("RS256", "rsa");
    let ed = TestKey::generate("EdDSA", "ed");
    let server = JwksServer::start(jwks(&[&rsa, &ed])).await;
    let (v, _stop) = ready(&[jwks_provider("ba", ISS, &server.url("/jwks"))]).await;
    let c = claims(ISS, "api", "u", 300);
    // JWK says RS256; a valid RS384 / PS256 signature by the same key is refused.
    for alg in ["RS384", "PS256"] {
        let t = rsa.sign_as(alg, &json!({"alg": alg, "kid": "rsa"}), &c);
        assert_eq!(
            v.verify(&t).await.unwrap_err(),
            invalid(InvalidKind::WrongAlg),
            "{alg}"
        );
    }
    // ES256 claimed on an Ed25519 key.
    let t = ed.sign(&json!({"alg": "ES256", "kid": "ed"}), &c);
    assert_eq!(
        v.verify(&t).await.unwrap_err(),
        invalid(InvalidKind::WrongAlg)
    );
    // HS256 on the Ed25519 kid, keyed with its public x.
    let x = ed.public_jwk()["x"].as_str().unwrap().to_owned();
    let t = hs_sign(
        "HS256",
        x.as_bytes(),
        &json!({"alg": "HS256", "kid": "ed"}),
        &c,
    );
    assert!(v.verify(&t).await.is_err());
    assert!(v.verify(&ed.token(&c)).await.is_ok());
}

#[tokio::test]
async fn jwk_without_alg_gets_it_from_type_and_provider() {
    let ed = TestKey::generate("EdDSA", "ed");
    let es = TestKey::generate("ES384", "es");
    let rsa = TestKey::generate("RS256", "rsa");
    let doc = json!({"keys": [
        ed.public_jwk_without_alg(),
        es.public_jwk_without_alg(),
        rsa.public_jwk_without_alg(),
    ]});
    let server = JwksServer::start(doc).await;
    let c = claims(ISS, "api", "u", 300);
    let (v, _stop) = ready(&[jwks_provider("ba", ISS, &server.url("/jwks"))]).await;
    assert!(v.verify(&ed.token(&c)).await.is_ok());
    assert!(v.verify(&es.token(&c)).await.is_ok());
    assert!(
        v.verify(&rsa.token(&c)).await.is_ok(),
        "RS256 is the RSA default"
    );
    let ps = rsa.sign_as("PS256", &json!({"alg": "PS256", "kid": "rsa"}), &c);
    assert_eq!(
        v.verify(&ps).await.unwrap_err(),
        invalid(InvalidKind::WrongAlg)
    );

    // Configured RSA algorithms replace the default.
    let mut spec = jwks_provider("ba", ISS, &server.url("/jwks"));
    spec.algorithms = Some(vec![Alg::PS256, Alg::EdDSA]);
    let (v, _stop) = ready(&[spec]).await;
    assert!(v.verify(&ps).await.is_ok());
    assert_eq!(
        v.verify(&rsa.token(&c)).await.unwrap_err(),
        invalid(InvalidKind::WrongAlg)
    );
    assert!(v.verify(&ed.token(&c)).await.is_ok());
    // ES384 is not in the allow-list.
    assert_eq!(
        v.verify(&es.token(&c)).await.unwrap_err(),
        invalid(InvalidKind::WrongAlg)
    );
}

#[tokio::test]
async fn crit_is_refused() {
    let k = TestKey::generate("EdDSA", "k1");
    let server = JwksServer::start(jwks(&[&k])).await;
    let (v, _stop) = ready(&[jwks_provider("ba", ISS, &server.url("/jwks"))]).await;
    let c = claims(ISS, "api", "u", 300);
    for crit in [
        json!(["exp"]),
        json!(["b64"]),
        json!([]),
        json!("exp"),
        json!(null),
    ] {
        let t = k.sign(
            &json!({"alg": "EdDSA", "kid": "k1", "crit": crit, "exp": 1}),
            &c,
        );
        assert_eq!(
            v.verify(&t).await.unwrap_err(),
            invalid(InvalidKind::UnknownCrit),
            "{crit}"
        );
    }
    assert!(v.verify(&k.token(&c)).await.is_ok());
}

#[tokio::test]
async fn header_key_urls_and_embedded_keys_are_never_used() {
    let good = TestKey::generate("ES256", "good");
    let server = JwksServer::start(jwks(&[&good])).await;
    let attacker_key = TestKey::generate("ES256", "evil");
    let attacker = JwksServer::start(jwks(&[&attacker_key])).await;
    let (v, _stop) = ready(&[jwks_provider("ba", ISS, &server.url("/jwks"))]).await;
    let c = claims(ISS, "api", "admin", 300);
    let hostile = |kid: &str| {
        json!({
            "alg": "ES256",
            "kid": kid,
            "jku": attacker.url("/jwks"),
            "x5u": attacker.url("/cert.pem"),
            "jwk": attacker_key.public_jwk(),
            "x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"],
        })
    };
    // The attacker's own key, embedded and linked, under its own kid.
    let t = attacker_key.sign(&hostile("evil"), &c);
    assert_eq!(
        v.verify(&t).await.unwrap_err(),
        invalid(InvalidKind::UnknownKid)
    );
    // Under the legitimate kid.
    let t = attacker_key.sign(&hostile("good"), &c);
    assert_eq!(
        v.verify(&t).await.unwrap_err(),
        invalid(InvalidKind::BadSignature)
    );
    // Without kid: the header key must not be chosen either.
    let mut h = hostile("x");
    h.as_object_mut().unwrap().remove("kid");
    let t = attacker_key.sign(&h, &c);
    assert_eq!(
        v.verify(&t).await.unwrap_err(),
        invalid(InvalidKind::BadSignature)
    );
    // A genuine token carrying those headers is judged on its real key alone.
    let t = good.sign(&hostile("good"), &c);
    assert!(v.verify(&t).await.is_ok());
    attacker.assert_untouched();
}
