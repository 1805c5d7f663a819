//! JWKS documents through `jwks::parse_jwks`. The first input byte: bit 0
//! picks raw bytes (0) or a document built from the input (1, JWKs with
//! plausible members and arbitrary key material); bits 1-2 pick the
//! provider's algorithm allow-list. The last 64 bytes of a built document's
//! input are a signature to try.
//!
//! Never a panic. A refusal names the right cause (too large, not JSON, no
//! `keys` array, no usable key). An accepted set is not empty; every key
//! admits at least one algorithm, never an HMAC one, only allowed ones,
//! and carries a kid the document gave it. Parsing is deterministic, and a
//! second parse of the same document keeps the first one's key ids. No key
//! verifies a signature the fuzzer made up, nor any algorithm it does not
//! admit.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use gatehouse::internals::Alg;
use gatehouse::internals::{AlgPolicy, JwksError, MAX_JWKS_BYTES, parse_jwks};
use gatehouse_fuzz::b64;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let allowed = match (flags >> 1) % 4 {
        0 => None,
        1 => Some(vec![Alg::EdDSA, Alg::ES256]),
        2 => Some(vec![Alg::RS256, Alg::PS256, Alg::PS512]),
        _ => Some(vec![Alg::ES512, Alg::HS256, Alg::RS384]),
    };
    let policy = AlgPolicy { allowed };
    if flags & 1 == 0 {
        check(rest, &policy, &[]);
    } else {
        let (input, signature) = rest.split_at(rest.len().saturating_sub(64));
        if let Ok(doc) = Document::arbitrary_take_rest(Unstructured::new(input)) {
            check(doc.render().to_string().as_bytes(), &policy, signature);
        }
    }
});

fn check(doc: &[u8], policy: &AlgPolicy, signature: &[u8]) {
    let parsed = parse_jwks(doc, policy);
    let value = serde_json::from_slice::<Value>(doc);
    let set = match parsed {
        Err(e) => {
            let want = if doc.len() > MAX_JWKS_BYTES {
                "too large"
            } else if value.is_err() {
                "not JSON"
            } else if !value
                .as_ref()
                .is_ok_and(|v| v.get("keys").is_some_and(Value::is_array))
            {
                "no keys array"
            } else {
                "no usable key"
            };
            let got = match e {
                JwksError::TooLarge => "too large",
                JwksError::BadJson(_) => "not JSON",
                JwksError::NoKeysArray => "no keys array",
                JwksError::NoUsableKey => "no usable key",
            };
            assert_eq!(got, want, "{e}");
            return;
        }
        Ok(set) => set,
    };
    let value = value.expect("an accepted document is JSON");
    let jwks = value["keys"]
        .as_array()
        .expect("an accepted document has keys");
    assert!(!set.is_empty() && set.len() <= jwks.len());
    let kids: Vec<&str> = jwks.iter().filter_map(|k| k["kid"].as_str()).collect();
    for key in set.keys() {
        assert!(!key.algs.is_empty(), "a key admitting nothing");
        for alg in &key.algs {
            assert!(!alg.is_hmac(), "a JWKS key admits {alg:?}");
            if let Some(list) = &policy.allowed {
                assert!(list.contains(alg), "{alg:?} is not allowed");
            }
        }
        if let Some(kid) = &key.kid {
            assert!(
                kids.contains(&kid.as_str()),
                "kid {kid:?} not in the document"
            );
            assert!(set.by_kid(kid).next().is_some());
            assert!(set.by_kid(kid).any(|k| k.id == key.id));
        }
        assert!(set.contains_id(key.id));
    }

    // Deterministic, and unchanged keys keep their ids.
    let mut again = parse_jwks(doc, policy).expect("the same document parses twice");
    assert_eq!(again.len(), set.len());
    for (a, b) in again.keys().iter().zip(set.keys()) {
        assert_eq!((&a.kid, &a.algs), (&b.kid, &b.algs));
    }
    again.carry_ids_from(&set);
    for key in again.keys() {
        assert!(set.contains_id(key.id), "an unchanged key got a new id");
    }

    // Made-up signatures never verify, and no key verifies an algorithm it
    // does not admit.
    let message = b"gatehouse fuzz message";
    let signature = if signature.is_empty() {
        &[0u8; 64][..]
    } else {
        signature
    };
    let signature_b64 = b64(signature);
    for key in set.keys().iter().take(3) {
        for alg in Alg::ALL {
            assert!(
                !key.verify(alg, message, &signature_b64, signature),
                "{alg:?} verified a made-up signature"
            );
        }
    }
}

/// A JWKS document with plausible members.
#[derive(Debug, Arbitrary)]
struct Document {
    keys: Vec<Jwk>,
    /// A non-object entry among the keys.
    junk: Option<u8>,
}

#[derive(Debug, Arbitrary)]
struct Jwk {
    kty: Pick,
    crv: Option<Pick>,
    x: Option<Vec<u8>>,
    y: Option<Vec<u8>>,
    n: Option<Vec<u8>>,
    e: Option<Vec<u8>>,
    alg: Option<Pick>,
    kid: Option<String>,
    use_: Option<Pick>,
    key_ops: Option<Vec<Pick>>,
    /// Pad `n` to a real modulus size (2048 or 4096 bit).
    n_size: Option<bool>,
    /// Pad `x`/`y` to the curve's coordinate size.
    coordinate_size: Option<u8>,
}

/// A member value: one of the names JOSE uses, or anything.
#[derive(Debug, Arbitrary)]
enum Pick {
    Known(u8),
    Other(String),
    Number(i64),
}

const NAMES: &[&str] = &[
    "OKP",
    "EC",
    "RSA",
    "oct",
    "Ed25519",
    "Ed448",
    "X25519",
    "P-256",
    "P-384",
    "P-521",
    "secp256k1",
    "EdDSA",
    "ES256",
    "ES384",
    "ES512",
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "HS256",
    "none",
    "sig",
    "enc",
    "verify",
    "sign",
    "encrypt",
];

impl Pick {
    fn value(&self) -> Value {
        match self {
            Pick::Known(i) => Value::from(NAMES[usize::from(*i) % NAMES.len()]),
            Pick::Other(s) => Value::from(s.as_str()),
            Pick::Number(n) => Value::from(*n),
        }
    }
}

fn sized(bytes: &[u8], len: usize) -> Vec<u8> {
    let mut out: Vec<u8> = bytes.iter().copied().cycle().take(len).collect();
    out.resize(len, 0x5a);
    out
}

impl Jwk {
    fn render(&self) -> Value {
        let mut jwk = serde_json::Map::new();
        jwk.insert("kty".into(), self.kty.value());
        if let Some(crv) = &self.crv {
            jwk.insert("crv".into(), crv.value());
        }
        let coordinate = self
            .coordinate_size
            .map(|c| [32, 48, 66, 31][usize::from(c) % 4]);
        for (name, member) in [("x", &self.x), ("y", &self.y)] {
            if let Some(bytes) = member {
                let bytes = match coordinate {
                    Some(len) => sized(bytes, len),
                    None => bytes.clone(),
                };
                jwk.insert(name.into(), Value::from(b64(&bytes)));
            }
        }
        if let Some(n) = &self.n {
            let n = match self.n_size {
                Some(big) => {
                    let mut n = sized(n, if big { 512 } else { 256 });
                    n[0] |= 0x80;
                    n
                }
                None => n.clone(),
            };
            jwk.insert("n".into(), Value::from(b64(&n)));
        }
        if let Some(e) = &self.e {
            jwk.insert("e".into(), Value::from(b64(e)));
        }
        if let Some(alg) = &self.alg {
            jwk.insert("alg".into(), alg.value());
        }
        if let Some(kid) = &self.kid {
            jwk.insert("kid".into(), Value::from(kid.as_str()));
        }
        if let Some(u) = &self.use_ {
            jwk.insert("use".into(), u.value());
        }
        if let Some(ops) = &self.key_ops {
            jwk.insert(
                "key_ops".into(),
                Value::Array(ops.iter().map(Pick::value).collect()),
            );
        }
        Value::Object(jwk)
    }
}

impl Document {
    fn render(&self) -> Value {
        let mut keys: Vec<Value> = self.keys.iter().take(8).map(Jwk::render).collect();
        if let Some(j) = self.junk {
            let junk = match j % 3 {
                0 => Value::Null,
                1 => json!("key"),
                _ => json!([1, 2]),
            };
            keys.insert(usize::from(j) % (keys.len() + 1), junk);
        }
        json!({ "keys": keys })
    }
}
