//! Token fixtures: signing keys for every algorithm gatehouse verifies,
//! their public JWKs, and tokens signed with any header (so hostile headers
//! can be crafted). Keys are generated fresh with aws-lc-rs; nothing here is
//! used by the product itself.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gatehouse::internals::{KeySource, ProviderSpec, Secret};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair, RsaEncoding, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// base64url without padding, as JOSE wants.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Current Unix time in seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

enum Material {
    Ed(Ed25519KeyPair),
    Ec {
        pair: EcdsaKeyPair,
        crv: &'static str,
        coord: usize,
    },
    Rsa(RsaKeyPair),
}

/// A private signing key with its JOSE algorithm and kid.
pub struct TestKey {
    pub alg: String,
    pub kid: String,
    material: Material,
}

fn ec_alg(alg: &str) -> Option<(&'static EcdsaSigningAlgorithm, &'static str, usize)> {
    match alg {
        "ES256" => Some((&signature::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32)),
        "ES384" => Some((&signature::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48)),
        "ES512" => Some((&signature::ECDSA_P521_SHA512_FIXED_SIGNING, "P-521", 66)),
        _ => None,
    }
}

fn rsa_padding(alg: &str) -> &'static dyn RsaEncoding {
    match alg {
        "RS256" => &signature::RSA_PKCS1_SHA256,
        "RS384" => &signature::RSA_PKCS1_SHA384,
        "RS512" => &signature::RSA_PKCS1_SHA512,
        "PS256" => &signature::RSA_PSS_SHA256,
        "PS384" => &signature::RSA_PSS_SHA384,
        "PS512" => &signature::RSA_PSS_SHA512,
        other => panic!("not an RSA alg: {other}"),
    }
}

impl TestKey {
    /// A fresh key for `alg` (EdDSA, ES256/384/512, RS*/PS*; RSA is 2048 bit).
    pub fn generate(alg: &str, kid: &str) -> TestKey {
        let material = if alg == "EdDSA" {
            Material::Ed(Ed25519KeyPair::generate().expect("ed25519 keygen"))
        } else if let Some((sig_alg, crv, coord)) = ec_alg(alg) {
            Material::Ec {
                pair: EcdsaKeyPair::generate(sig_alg).expect("ec keygen"),
                crv,
                coord,
            }
        } else if alg.starts_with("RS") || alg.starts_with("PS") {
            Material::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa keygen"))
        } else {
            panic!("unsupported test alg {alg}");
        };
        TestKey {
            alg: alg.to_owned(),
            kid: kid.to_owned(),
            material,
        }
    }

    /// The public JWK with `kty`, `kid`, `alg`, `use` and the key members.
    pub fn public_jwk(&self) -> Value {
        let mut jwk = self.public_jwk_without_alg();
        jwk["alg"] = json!(self.alg);
        jwk
    }

    /// The public JWK without an `alg` member (the verifier must derive it).
    pub fn public_jwk_without_alg(&self) -> Value {
        match &self.material {
            Material::Ed(pair) => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": b64(pair.public_key().as_ref()),
                "kid": self.kid,
                "use": "sig",
            }),
            Material::Ec { pair, crv, coord } => {
                let point = pair.public_key().as_ref();
                assert_eq!(point[0], 4, "uncompressed point");
                let (x, y) = point[1..].split_at(*coord);
                json!({
                    "kty": "EC",
                    "crv": crv,
                    "x": b64(x),
                    "y": b64(y),
                    "kid": self.kid,
                    "use": "sig",
                })
            }
            Material::Rsa(pair) => {
                let comps = signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                json!({
                    "kty": "RSA",
                    "n": b64(&comps.n),
                    "e": b64(&comps.e),
                    "kid": self.kid,
                    "use": "sig",
                })
            }
        }
    }

    /// The RSA public key as a SubjectPublicKeyInfo PEM (alg-confusion tests).
    pub fn public_pem(&self) -> Vec<u8> {
        let Material::Rsa(pair) = &self.material else {
            panic!("public_pem is for RSA keys");
        };
        let der = pair.public_key().as_der().expect("spki der");
        let body = STANDARD.encode(der.as_ref());
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for chunk in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk).expect("ascii"));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem.into_bytes()
    }

    /// Raw signature over `input` with this key, using `self.alg`.
    pub fn raw_sign(&self, input: &[u8]) -> Vec<u8> {
        self.raw_sign_as(&self.alg, input)
    }

    /// Raw signature with another algorithm of the same family (an RSA key
    /// signing PS384 while its JWK says RS256, say).
    pub fn raw_sign_as(&self, alg: &str, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.material {
            Material::Ed(pair) => pair.sign(input).as_ref().to_vec(),
            Material::Ec { pair, .. } => pair.sign(&rng, input).expect("ec sign").as_ref().to_vec(),
            Material::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(rsa_padding(alg), &rng, input, &mut sig)
                    .expect("rsa sign");
                sig
            }
        }
    }

    /// A compact JWS with exactly this header and these claims.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self.raw_sign(input.as_bytes());
        format!("{input}.{}", b64(&sig))
    }

    /// A compact JWS signed with `alg` (same key family) under this header.
    pub fn sign_as(&self, alg: &str, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self.raw_sign_as(alg, input.as_bytes());
        format!("{input}.{}", b64(&sig))
    }

    /// A token as Better Auth issues it: header `{alg, kid}`, no `typ`.
    pub fn token(&self, claims: &Value) -> String {
        self.sign(&json!({"alg": self.alg, "kid": self.kid}), claims)
    }
}

/// A JWKS document holding the public keys (with `alg`).
pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>()})
}

/// HMAC over `input` with `alg` (HS256/384/512).
pub fn hmac(alg: &str, secret: &[u8], input: &[u8]) -> Vec<u8> {
    let algorithm = match alg {
        "HS256" => aws_lc_rs::hmac::HMAC_SHA256,
        "HS384" => aws_lc_rs::hmac::HMAC_SHA384,
        "HS512" => aws_lc_rs::hmac::HMAC_SHA512,
        other => panic!("not an HMAC alg: {other}"),
    };
    let key = aws_lc_rs::hmac::Key::new(algorithm, secret);
    aws_lc_rs::hmac::sign(&key, input).as_ref().to_vec()
}

/// An HMAC-signed token with any header.
pub fn hs_sign(alg: &str, secret: &[u8], header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = hmac(alg, secret, input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

/// An HMAC-signed token with header `{alg}` (no kid, as secret setups issue).
pub fn hs_token(alg: &str, secret: &[u8], claims: &Value) -> String {
    hs_sign(alg, secret, &json!({"alg": alg}), claims)
}

/// Typical claims: `iat` now, `exp` now + `ttl_secs`, plus email and name.
pub fn claims(iss: &str, aud: &str, sub: &str, ttl_secs: i64) -> Value {
    let now = now() as i64;
    json!({
        "iss": iss,
        "aud": aud,
        "sub": sub,
        "iat": now,
        "exp": now + ttl_secs,
        "email": format!("{sub}@example.test"),
        "name": format!("User {sub}"),
    })
}

/// A provider with the documented defaults (RS256 for RSA keys without
/// alg, 60 s leeway, `exp` required, 30 s unknown-kid cooldown).
pub fn provider(name: &str, issuer: Option<&str>, keys: KeySource) -> ProviderSpec {
    ProviderSpec {
        name: name.to_owned(),
        issuer: issuer.map(str::to_owned),
        audiences: Vec::new(),
        keys,
        algorithms: None,
        refresh_interval: Duration::from_secs(300),
        unknown_kid_refetch_interval: Duration::from_secs(30),
        leeway: Duration::from_secs(60),
        require: vec!["exp".to_owned()],
        max_lifetime: None,
        session_claim: None,
    }
}

/// A JWKS-URL provider.
pub fn jwks_provider(name: &str, issuer: &str, url: &str) -> ProviderSpec {
    provider(name, Some(issuer), KeySource::JwksUri(url.to_owned()))
}

/// An HMAC secret provider.
pub fn secret_provider(name: &str, issuer: Option<&str>, secret: &[u8]) -> ProviderSpec {
    provider(name, issuer, KeySource::Secret(Secret(secret.to_vec())))
}
