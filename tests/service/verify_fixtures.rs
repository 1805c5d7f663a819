//! The token fixtures produce tokens the reference library accepts.
#![allow(clippy::unwrap_used)]
use crate::common;

use common::tokens::{TestKey, claims, hs_token};

#[test]
fn fixtures_produce_valid_jws() {
    for alg in ["EdDSA", "ES256", "ES384", "RS256", "PS512"] {
        let k = TestKey::generate(alg, "k1");
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(k.public_jwk()).unwrap();
        let dk = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        let t = k.token(&claims("iss", "aud", "u1", 60));
        let mut v = jsonwebtoken::Validation::new(alg.parse().unwrap());
        v.set_audience(&["aud"]);
        jsonwebtoken::decode::<serde_json::Value>(&t, &dk, &v).unwrap();
    }
    let t = hs_token("HS256", b"secret", &claims("iss", "aud", "u1", 60));
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_audience(&["aud"]);
    jsonwebtoken::decode::<serde_json::Value>(
        &t,
        &jsonwebtoken::DecodingKey::from_secret(b"secret"),
        &v,
    )
    .unwrap();
}
