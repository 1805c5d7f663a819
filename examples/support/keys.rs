//! Signing keys for the benchmark tools: generated with aws-lc-rs, published
//! as a JWKS, and used to mint compact JWS tokens shaped like Better Auth's
//! (`{"alg","kid"}` header, the user object plus `sub`/`iss`/`aud`/`iat`/`exp`).
//!
//! Shared by `benches/core.rs` and the load-test examples through `#[path]`.
//! It mints tokens only; verifying them is what gatehouse (and the baselines
//! it is compared with) are measured doing.

#![allow(dead_code)]

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RSA_PSS_SHA256, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// The algorithms the benchmarks cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchAlg {
    EdDSA,
    RS256,
    PS256,
    ES256,
    HS256,
}

impl BenchAlg {
    pub const ALL: [BenchAlg; 5] = [
        BenchAlg::EdDSA,
        BenchAlg::RS256,
        BenchAlg::PS256,
        BenchAlg::ES256,
        BenchAlg::HS256,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            BenchAlg::EdDSA => "EdDSA",
            BenchAlg::RS256 => "RS256",
            BenchAlg::PS256 => "PS256",
            BenchAlg::ES256 => "ES256",
            BenchAlg::HS256 => "HS256",
        }
    }

    pub fn parse(s: &str) -> Option<BenchAlg> {
        BenchAlg::ALL.into_iter().find(|a| a.name() == s)
    }

    /// The same algorithm in jsonwebtoken's terms, for the raw-library baseline.
    pub const fn jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            BenchAlg::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            BenchAlg::RS256 => jsonwebtoken::Algorithm::RS256,
            BenchAlg::PS256 => jsonwebtoken::Algorithm::PS256,
            BenchAlg::ES256 => jsonwebtoken::Algorithm::ES256,
            BenchAlg::HS256 => jsonwebtoken::Algorithm::HS256,
        }
    }
}

/// The private half, per algorithm family.
enum Private {
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Hmac(Vec<u8>),
}

/// A key that signs tokens and describes its public half.
pub struct SigningKey {
    pub alg: BenchAlg,
    pub kid: String,
    private: Private,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Errors while creating or loading keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key generation failed")]
    Generate,
    #[error("key rejected: {0}")]
    Rejected(String),
    #[error("signing failed")]
    Sign,
}

impl SigningKey {
    /// A fresh key (RSA keys are 2048-bit).
    pub fn generate(alg: BenchAlg, kid: &str) -> Result<Self, KeyError> {
        let private = match alg {
            BenchAlg::EdDSA => {
                Private::Ed(Ed25519KeyPair::generate().map_err(|_| KeyError::Generate)?)
            }
            BenchAlg::RS256 | BenchAlg::PS256 => Private::Rsa(
                RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?,
            ),
            BenchAlg::ES256 => Private::Ec(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| KeyError::Generate)?,
            ),
            BenchAlg::HS256 => {
                let mut secret = vec![0u8; 32];
                aws_lc_rs::rand::fill(&mut secret).map_err(|_| KeyError::Generate)?;
                Private::Hmac(secret)
            }
        };
        Ok(Self {
            alg,
            kid: kid.to_owned(),
            private,
            rng: SystemRandom::new(),
        })
    }

    /// An Ed25519 key from PKCS#8 bytes (so several token files share one JWKS).
    pub fn ed25519_from_pkcs8(kid: &str, pkcs8: &[u8]) -> Result<Self, KeyError> {
        let pair =
            Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| KeyError::Rejected(e.to_string()))?;
        Ok(Self {
            alg: BenchAlg::EdDSA,
            kid: kid.to_owned(),
            private: Private::Ed(pair),
            rng: SystemRandom::new(),
        })
    }

    /// A new Ed25519 key and its PKCS#8 document, to be saved for later runs.
    pub fn ed25519_generate_pkcs8(kid: &str) -> Result<(Self, Vec<u8>), KeyError> {
        let doc =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::Generate)?;
        let bytes = doc.as_ref().to_vec();
        Ok((Self::ed25519_from_pkcs8(kid, &bytes)?, bytes))
    }

    /// An HMAC key from a known secret.
    pub fn hmac(kid: &str, secret: &[u8]) -> Self {
        Self {
            alg: BenchAlg::HS256,
            kid: kid.to_owned(),
            private: Private::Hmac(secret.to_vec()),
            rng: SystemRandom::new(),
        }
    }

    /// The HMAC secret, for HS256 keys.
    pub fn secret(&self) -> Option<&[u8]> {
        match &self.private {
            Private::Hmac(s) => Some(s),
            _ => None,
        }
    }

    /// The public JWK (`None` for HMAC, which has no public half).
    pub fn public_jwk(&self) -> Option<Value> {
        let alg = self.alg.name();
        let kid = &self.kid;
        match &self.private {
            Private::Ed(pair) => Some(json!({
                "kty": "OKP", "crv": "Ed25519", "alg": alg, "kid": kid,
                "x": b64(pair.public_key().as_ref()),
            })),
            Private::Rsa(pair) => {
                let public = pair.public_key();
                Some(json!({
                    "kty": "RSA", "alg": alg, "kid": kid,
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                }))
            }
            Private::Ec(pair) => {
                // Uncompressed point: 0x04 || x || y.
                let point = pair.public_key().as_ref();
                let (x, y) = point.get(1..)?.split_at(32);
                Some(json!({
                    "kty": "EC", "crv": "P-256", "alg": alg, "kid": kid,
                    "x": b64(x), "y": b64(y),
                }))
            }
            Private::Hmac(_) => None,
        }
    }

    /// The key as jsonwebtoken wants it, for the raw-library baseline.
    pub fn decoding_key(&self) -> Result<jsonwebtoken::DecodingKey, KeyError> {
        match &self.private {
            Private::Hmac(secret) => Ok(jsonwebtoken::DecodingKey::from_secret(secret)),
            _ => {
                let jwk: jsonwebtoken::jwk::Jwk =
                    serde_json::from_value(self.public_jwk().ok_or(KeyError::Generate)?)
                        .map_err(|e| KeyError::Rejected(e.to_string()))?;
                jsonwebtoken::DecodingKey::from_jwk(&jwk)
                    .map_err(|e| KeyError::Rejected(e.to_string()))
            }
        }
    }

    /// Signs `claims` into a compact JWS with header `{"alg","kid"}`.
    pub fn sign(&self, claims: &Value) -> Result<String, KeyError> {
        let header = json!({ "alg": self.alg.name(), "kid": self.kid });
        let mut token = String::with_capacity(512);
        URL_SAFE_NO_PAD.encode_string(header.to_string(), &mut token);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims.to_string(), &mut token);
        let signature = self.sign_bytes(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }

    fn sign_bytes(&self, input: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.private {
            Private::Ed(pair) => Ok(pair.sign(input).as_ref().to_vec()),
            Private::Rsa(pair) => {
                let padding: &'static dyn aws_lc_rs::signature::RsaEncoding = match self.alg {
                    BenchAlg::PS256 => &RSA_PSS_SHA256,
                    _ => &RSA_PKCS1_SHA256,
                };
                let mut out = vec![0u8; pair.public_modulus_len()];
                pair.sign(padding, &self.rng, input, &mut out)
                    .map_err(|_| KeyError::Sign)?;
                Ok(out)
            }
            Private::Ec(pair) => Ok(pair
                .sign(&self.rng, input)
                .map_err(|_| KeyError::Sign)?
                .as_ref()
                .to_vec()),
            Private::Hmac(secret) => {
                let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
                Ok(aws_lc_rs::hmac::sign(&key, input).as_ref().to_vec())
            }
        }
    }
}

/// A JWKS document holding the public halves of `keys`.
pub fn jwks(keys: &[&SigningKey]) -> Value {
    let keys: Vec<Value> = keys.iter().filter_map(|k| k.public_jwk()).collect();
    json!({ "keys": keys })
}

/// Claims shaped like a Better Auth `jwt()` token for user number `n`.
pub fn better_auth_claims(n: u64, issuer: &str, audience: &str, now: u64, ttl: u64) -> Value {
    let id = format!("user{n:08}");
    json!({
        "id": id,
        "name": format!("Bench User {n}"),
        "email": format!("{id}@bench.example"),
        "emailVerified": true,
        "image": null,
        "createdAt": "2025-01-01T00:00:00.000Z",
        "updatedAt": "2025-01-01T00:00:00.000Z",
        "sub": id,
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + ttl,
    })
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
