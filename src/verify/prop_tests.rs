//! Property tests: random, mutated and wrongly signed tokens, and random
//! JWKS documents, never panic the verifier, and no token generated here
//! ever verifies: each is refused, whatever it holds.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::sync::{Arc, OnceLock};

use common::tokens::{TestKey, claims, hs_token, jwks, provider, secret_provider};
use gatehouse::config::KeySource;
use gatehouse::jwks::{AlgPolicy, parse_jwks};
use gatehouse::telemetry::Metrics;
use gatehouse::verify::Verifier;
use proptest::prelude::*;
use serde_json::{Value, json};

const ISS: &str = "https://auth.example.test";
const SECRET: &[u8] = b"fuzz-secret-fuzz-secret";

struct World {
    rt: tokio::runtime::Runtime,
    verifier: Verifier,
    tokens: Vec<String>,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let keys: Vec<TestKey> = ["EdDSA", "ES256", "ES512", "RS256", "PS256"]
            .iter()
            .map(|a| TestKey::generate(a, &format!("kid-{a}")))
            .collect();
        let refs: Vec<&TestKey> = keys.iter().collect();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jwks.json");
        std::fs::write(&file, jwks(&refs).to_string()).unwrap();
        let specs = [
            provider(
                "file",
                Some(ISS),
                KeySource::File(file.display().to_string()),
            ),
            secret_provider("secret", Some(ISS), SECRET),
        ];
        let verifier = Verifier::new(&specs, Arc::new(Metrics::new())).unwrap();
        let c = claims(ISS, "api", "user", 3600);
        let mut tokens: Vec<String> = keys.iter().map(|k| k.token(&c)).collect();
        tokens.push(hs_token("HS256", SECRET, &c));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for t in &tokens {
            assert!(
                rt.block_on(verifier.verify(t)).is_ok(),
                "baseline token verifies"
            );
        }
        World {
            rt,
            verifier,
            tokens,
            _dir: dir,
        }
    })
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-zA-Z0-9_+/=-]{0,40}".prop_map(Value::String),
        prop_oneof![
            Just("OKP"),
            Just("EC"),
            Just("RSA"),
            Just("oct"),
            Just("Ed25519"),
            Just("P-256"),
            Just("P-521"),
            Just("ES512"),
            Just("RS256"),
            Just("sig"),
            Just("enc"),
            Just("AQAB")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("kty"),
                        Just("crv"),
                        Just("x"),
                        Just("y"),
                        Just("n"),
                        Just("e"),
                        Just("alg"),
                        Just("kid"),
                        Just("use"),
                        Just("key_ops"),
                        Just("keys")
                    ],
                    inner
                ),
                0..8
            )
            .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_strings_never_verify(s in "[ -~]{0,300}") {
        let w = world();
        prop_assert!(w.rt.block_on(w.verifier.verify(&s)).is_err());
    }

    #[test]
    fn random_three_part_tokens_never_verify(
        h in prop::collection::vec(any::<u8>(), 0..64),
        p in prop::collection::vec(any::<u8>(), 0..64),
        s in prop::collection::vec(any::<u8>(), 0..80),
    ) {
        use base64::Engine;
        let e = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let t = format!("{}.{}.{}", e(&h), e(&p), e(&s));
        let w = world();
        prop_assert!(w.rt.block_on(w.verifier.verify(&t)).is_err());
    }

    #[test]
    fn mutated_tokens_never_verify(
        which in 0usize..6,
        pos in any::<prop::sample::Index>(),
        replacement in prop::sample::select(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ".chars().collect::<Vec<_>>()
        ),
        truncate in any::<bool>(),
    ) {
        let w = world();
        let original = &w.tokens[which % w.tokens.len()];
        let mut chars: Vec<char> = original.chars().collect();
        let i = pos.index(chars.len());
        if truncate {
            chars.truncate(i);
        } else {
            chars[i] = replacement;
        }
        let mutated: String = chars.into_iter().collect();
        prop_assume!(&mutated != original);
        let r = w.rt.block_on(w.verifier.verify(&mutated));
        prop_assert!(r.is_err(), "mutated token verified: {}", mutated);
    }

    #[test]
    fn random_jwks_documents_never_panic(doc in arb_json()) {
        let policy = AlgPolicy { allowed: None };
        let _ = parse_jwks(doc.to_string().as_bytes(), &policy);
        let wrapped = json!({"keys": [doc]});
        let _ = parse_jwks(wrapped.to_string().as_bytes(), &policy);
        // The same document as a provider's key file, then a token against it.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jwks.json");
        std::fs::write(&file, wrapped.to_string()).unwrap();
        let spec = provider("f", Some(ISS), KeySource::File(file.display().to_string()));
        if let Ok(v) = Verifier::new(&[spec], Arc::new(Metrics::new())) {
            let w = world();
            for t in &w.tokens {
                prop_assert!(w.rt.block_on(v.verify(t)).is_err());
            }
        }
    }

    #[test]
    fn random_claims_through_a_valid_signature(claims_doc in arb_json(), header_extra in arb_json()) {
        // Properly signed, arbitrary content: judged and refused. The claims
        // never name the issuer (no string arb_json makes has a ':'), and
        // both providers require it.
        let w = world();
        let mut header = json!({"alg": "HS256"});
        if let Value::Object(extra) = header_extra {
            for (k, v) in extra {
                header[k] = v;
            }
        }
        let t = common::tokens::hs_sign("HS256", SECRET, &header, &claims_doc);
        let r = w.rt.block_on(w.verifier.verify(&t));
        prop_assert!(r.is_err(), "a token without issuer verified: {}", t);
    }

    #[test]
    fn signed_tokens_with_one_defect_never_verify(
        extra_claims in prop::collection::vec(("[a-z_]{1,8}", arb_json()), 0..6),
        extra_header in prop::collection::vec(("[a-z_]{1,8}", arb_json()), 0..4),
        defect in 0usize..9,
    ) {
        // A valid token with the provider's own secret, random extra claims
        // and header members, and exactly one defect: refused every time.
        let w = world();
        let mut c = claims(ISS, "api", "user", 3600);
        for (k, v) in extra_claims {
            if !["iss", "exp", "nbf", "iat"].contains(&k.as_str()) {
                c[k] = v;
            }
        }
        let mut header = json!({"alg": "HS256"});
        for (k, v) in extra_header {
            if !["alg", "crit"].contains(&k.as_str()) {
                header[k] = v;
            }
        }
        let now = common::tokens::now() as i64;
        match defect {
            0 => c["exp"] = json!(now - 3600),
            1 => c["iss"] = json!("https://other.example.test"),
            2 => c["nbf"] = json!(now + 3600),
            3 => c["iat"] = json!(now + 3600),
            4 => {
                c.as_object_mut().unwrap().remove("exp");
            }
            // The header names another HMAC than the one that signed.
            5 => header["alg"] = json!("HS384"),
            6 => header["crit"] = json!(["exp"]),
            7 => c["exp"] = json!("tomorrow"),
            _ => header["alg"] = json!("none"),
        }
        let t = common::tokens::hs_sign("HS256", SECRET, &header, &c);
        let r = w.rt.block_on(w.verifier.verify(&t));
        prop_assert!(r.is_err(), "defect {} verified: {}", defect, t);
    }
}
