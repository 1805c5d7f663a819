//! Cold verification cost against a plain jsonwebtoken decode of the same
//! token with the same key (goal: within 1.15×). Timing-sensitive, so
//! ignored by default: `cargo test --release --lib verify::perf_tests -- --ignored`.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::tokens::{TestKey, claims, hs_token, provider, secret_provider};
use gatehouse::config::KeySource;
use gatehouse::telemetry::Metrics;
use gatehouse::verify::Verifier;

const ISS: &str = "https://auth.example.test";

fn time<F: FnMut()>(n: u32, mut f: F) -> Duration {
    for _ in 0..n / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed() / n
}

#[test]
#[ignore = "timing"]
fn cold_verify_close_to_plain_decode() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret = b"perf-secret-perf-secret-perf-secret";
    for alg in ["EdDSA", "ES256", "RS256", "HS256"] {
        let (spec, token, dk, jalg) = if alg == "HS256" {
            (
                secret_provider("s", Some(ISS), secret),
                hs_token(alg, secret, &claims(ISS, "api", "u", 3600)),
                jsonwebtoken::DecodingKey::from_secret(secret),
                jsonwebtoken::Algorithm::HS256,
            )
        } else {
            let k = TestKey::generate(alg, "k1");
            let file = dir.path().join(format!("{alg}.json"));
            std::fs::write(&file, common::tokens::jwks(&[&k]).to_string()).unwrap();
            let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(k.public_jwk()).unwrap();
            (
                provider("f", Some(ISS), KeySource::File(file.display().to_string())),
                k.token(&claims(ISS, "api", "u", 3600)),
                jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
                alg.parse().unwrap(),
            )
        };
        let v = Verifier::new(&[spec], Arc::new(Metrics::new())).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jalg);
        validation.set_audience(&["api"]);
        validation.set_issuer(&[ISS]);
        let n = if alg == "HS256" { 20_000 } else { 2_000 };
        let ours = time(n, || {
            rt.block_on(v.verify(&token)).unwrap();
        });
        let plain = time(n, || {
            jsonwebtoken::decode::<serde_json::Value>(&token, &dk, &validation).unwrap();
        });
        let ratio = ours.as_secs_f64() / plain.as_secs_f64();
        println!("{alg}: gatehouse {ours:?}, jsonwebtoken {plain:?}, ratio {ratio:.3}");
        assert!(
            ratio < 1.15,
            "{alg}: cold verify is {ratio:.3}x a plain decode"
        );
    }
}
