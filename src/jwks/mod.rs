//! Key sets per provider: parsing JWKS documents into verification keys,
//! and keeping them fresh.
//!
//! [`fetch`] owns the network side (background refresh, Cache-Control,
//! backoff, single-flight, unknown-kid refetch with cooldown). This module
//! owns the keys themselves: which algorithms each key admits, decided from
//! the key (`kty`/`crv`/`alg`) and the provider's allow-list, never from a
//! token. Keys are prepared once when a set is loaded, so verifying a token
//! does no key parsing beyond what the signature library itself does.
//!
//! Unusable keys (`use: enc`, unknown `kty`, bad encoding, an `alg` that
//! disagrees with the key type) are skipped; a document with no usable key
//! is an error, so a fetch of it counts as failed.

pub(crate) mod fetch;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::signature::{ECDSA_P521_SHA512_FIXED, ParsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use crate::config::Alg;

/// Largest JWKS document accepted (fetched or read from disk).
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Why a JWKS document yields no keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("document is larger than 1 MiB")]
    TooLarge,
    /// With serde_json's description (position and kind, never content).
    #[error("document is not valid JSON: {0}")]
    BadJson(String),
    #[error("document has no \"keys\" array")]
    NoKeysArray,
    #[error("document has no usable signature key")]
    NoUsableKey,
}

/// Process-unique key ids, so a cached verification can name its key.
static NEXT_KEY_ID: AtomicU64 = AtomicU64::new(1);

fn next_key_id() -> u64 {
    NEXT_KEY_ID.fetch_add(1, Ordering::Relaxed)
}

/// The prepared public (or secret) key material.
enum Material {
    /// Everything jsonwebtoken verifies (EdDSA, ES256/384, RSA, HMAC).
    Jwt(DecodingKey),
    /// ES512, verified with aws-lc-rs directly; parsed once here.
    P521(ParsedPublicKey),
}

/// One verification key with the algorithms it admits.
pub struct Key {
    /// Process-unique id; stays the same across refetches while the key
    /// (kid and material) is unchanged, so cached tokens keep counting.
    pub id: u64,
    /// The JWK `kid`, when the key has one.
    pub kid: Option<String>,
    /// Algorithms this key verifies: from its type, JWK `alg` and the
    /// provider allow-list. Never widened by a token.
    pub algs: Vec<Alg>,
    /// Canonical bytes of the key material, to recognise the same key in a
    /// later fetch.
    fingerprint: Vec<u8>,
    material: Material,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .field("kid", &self.kid)
            .field("algs", &self.algs)
            .finish_non_exhaustive()
    }
}

const fn jwt_alg(alg: Alg) -> Option<Algorithm> {
    Some(match alg {
        Alg::EdDSA => Algorithm::EdDSA,
        Alg::ES256 => Algorithm::ES256,
        Alg::ES384 => Algorithm::ES384,
        Alg::ES512 => return None,
        Alg::RS256 => Algorithm::RS256,
        Alg::RS384 => Algorithm::RS384,
        Alg::RS512 => Algorithm::RS512,
        Alg::PS256 => Algorithm::PS256,
        Alg::PS384 => Algorithm::PS384,
        Alg::PS512 => Algorithm::PS512,
        Alg::HS256 => Algorithm::HS256,
        Alg::HS384 => Algorithm::HS384,
        Alg::HS512 => Algorithm::HS512,
    })
}

impl Key {
    /// True when this key admits `alg`.
    pub fn fits(&self, alg: Alg) -> bool {
        self.algs.contains(&alg)
    }

    /// Checks `signature` (raw bytes; `signature_b64` is the same, encoded)
    /// over `message` with `alg`. False unless the key admits `alg`.
    pub fn verify(&self, alg: Alg, message: &[u8], signature_b64: &str, signature: &[u8]) -> bool {
        if !self.fits(alg) {
            return false;
        }
        match &self.material {
            Material::P521(key) => alg == Alg::ES512 && key.verify_sig(message, signature).is_ok(),
            Material::Jwt(key) => match jwt_alg(alg) {
                Some(a) => {
                    jsonwebtoken::crypto::verify(signature_b64, message, key, a).unwrap_or(false)
                }
                None => false,
            },
        }
    }

    /// An HMAC key admitting the HS algorithms in `allowed` (all three
    /// when `None`).
    pub fn secret(secret: &[u8], allowed: Option<&[Alg]>) -> Key {
        let algs = [Alg::HS256, Alg::HS384, Alg::HS512]
            .into_iter()
            .filter(|a| allowed.is_none_or(|list| list.contains(a)))
            .collect();
        Key {
            id: next_key_id(),
            kid: None,
            algs,
            fingerprint: Vec::new(),
            material: Material::Jwt(DecodingKey::from_secret(secret)),
        }
    }
}

/// A provider's current keys.
#[derive(Debug, Default)]
pub struct KeySet {
    /// Every usable key, in document order.
    keys: Vec<Arc<Key>>,
    /// kid → indexes into `keys` (a kid may name keys of several types).
    by_kid: HashMap<String, Vec<usize>>,
}

impl KeySet {
    /// A set of the given keys.
    pub fn new(keys: Vec<Key>) -> KeySet {
        let keys: Vec<Arc<Key>> = keys.into_iter().map(Arc::new).collect();
        let mut by_kid: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, k) in keys.iter().enumerate() {
            if let Some(kid) = &k.kid {
                by_kid.entry(kid.clone()).or_default().push(i);
            }
        }
        KeySet { keys, by_kid }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Keys carrying this kid (usually one).
    pub fn by_kid<'a>(&'a self, kid: &str) -> impl Iterator<Item = &'a Arc<Key>> + 'a {
        self.by_kid
            .get(kid)
            .into_iter()
            .flatten()
            .filter_map(|&i| self.keys.get(i))
    }

    /// Every key.
    pub fn keys(&self) -> &[Arc<Key>] {
        &self.keys
    }

    /// True when the key with this process-unique id is still in the set.
    pub fn contains_id(&self, id: u64) -> bool {
        self.keys.iter().any(|k| k.id == id)
    }

    /// Gives keys that are unchanged since `previous` their old id back,
    /// so cached verifications made with them keep counting.
    pub fn carry_ids_from(&mut self, previous: &KeySet) {
        for key in &mut self.keys {
            if let Some(old) = previous.keys.iter().find(|o| {
                o.kid == key.kid && o.fingerprint == key.fingerprint && o.algs == key.algs
            }) && let Some(k) = Arc::get_mut(key)
            {
                k.id = old.id;
            }
        }
    }
}

/// Which algorithms the provider's configuration allows, used to resolve
/// what a key admits.
#[derive(Debug, Clone)]
pub struct AlgPolicy {
    /// The provider's allow-list (`None`: whatever keys fit).
    pub allowed: Option<Vec<Alg>>,
}

impl AlgPolicy {
    fn allows(&self, alg: Alg) -> bool {
        self.allowed.as_ref().is_none_or(|l| l.contains(&alg))
    }

    /// RSA algorithms for an RSA JWK without `alg`: the configured RSA
    /// algorithms, RS256 when none are configured.
    fn rsa_default(&self) -> Vec<Alg> {
        match &self.allowed {
            Some(list) if list.iter().any(|a| a.is_rsa()) => {
                list.iter().copied().filter(|a| a.is_rsa()).collect()
            }
            _ => vec![Alg::RS256],
        }
    }
}

fn b64_field(jwk: &Value, name: &str) -> Option<Vec<u8>> {
    let s = jwk.get(name)?.as_str()?;
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

/// Parses one JWK; `None` when it is unusable for signature verification.
fn parse_jwk(jwk: &Value, policy: &AlgPolicy) -> Option<Key> {
    let obj = jwk.as_object()?;
    if let Some(u) = obj.get("use")
        && u.as_str() != Some("sig")
    {
        return None;
    }
    if let Some(ops) = obj.get("key_ops") {
        let ops = ops.as_array()?;
        if !ops.iter().any(|o| o.as_str() == Some("verify")) {
            return None;
        }
    }
    let kid = match obj.get("kid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return None,
    };
    let jwk_alg = match obj.get("alg") {
        None => None,
        Some(Value::String(s)) => Some(Alg::parse(s)?),
        Some(_) => return None,
    };
    let kty = obj.get("kty")?.as_str()?;
    let crv = obj.get("crv").and_then(Value::as_str);
    let (natural, fingerprint, material): (Vec<Alg>, Vec<u8>, Material) = match (kty, crv) {
        ("OKP", Some("Ed25519")) => {
            let x = b64_field(jwk, "x")?;
            if x.len() != 32 {
                return None;
            }
            let m = Material::Jwt(DecodingKey::from_ed_der(&x));
            (vec![Alg::EdDSA], x, m)
        }
        ("EC", Some(curve)) => {
            let (alg, coord) = match curve {
                "P-256" => (Alg::ES256, 32),
                "P-384" => (Alg::ES384, 48),
                "P-521" => (Alg::ES512, 66),
                _ => return None,
            };
            let x = b64_field(jwk, "x")?;
            let y = b64_field(jwk, "y")?;
            if x.len() != coord || y.len() != coord {
                return None;
            }
            let mut point = Vec::with_capacity(1 + 2 * coord);
            point.push(4u8);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let m = if alg == Alg::ES512 {
                Material::P521(ParsedPublicKey::new(&ECDSA_P521_SHA512_FIXED, &point).ok()?)
            } else {
                // Validate the point now, so a bad key is skipped at load.
                let check = match alg {
                    Alg::ES256 => &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
                    _ => &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED,
                };
                ParsedPublicKey::new(check, &point).ok()?;
                Material::Jwt(DecodingKey::from_ec_der(&point))
            };
            (vec![alg], point, m)
        }
        ("RSA", _) => {
            let n = b64_field(jwk, "n")?;
            let e = b64_field(jwk, "e")?;
            if n.is_empty() || e.is_empty() || n.len() < 256 || n.len() > 1025 {
                return None;
            }
            let algs = match jwk_alg {
                Some(a) => vec![a],
                None => policy.rsa_default(),
            };
            let mut fp = n.clone();
            fp.extend_from_slice(&e);
            let m = Material::Jwt(DecodingKey::from_rsa_raw_components(&n, &e));
            (algs, fp, m)
        }
        _ => return None,
    };
    // A JWK `alg` must agree with the key type; it then narrows the key.
    let mut algs: Vec<Alg> = match jwk_alg {
        Some(a) if natural.contains(&a) => vec![a],
        Some(_) => return None,
        None => natural,
    };
    algs.retain(|a| !a.is_hmac() && policy.allows(*a));
    if algs.is_empty() {
        return None;
    }
    Some(Key {
        id: next_key_id(),
        kid,
        algs,
        fingerprint,
        material,
    })
}

/// Parses a JWKS document, skipping unusable keys.
pub fn parse_jwks(doc: &[u8], policy: &AlgPolicy) -> Result<KeySet, JwksError> {
    if doc.len() > MAX_JWKS_BYTES {
        return Err(JwksError::TooLarge);
    }
    let value: Value =
        serde_json::from_slice(doc).map_err(|e| JwksError::BadJson(e.to_string()))?;
    let keys = value
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(JwksError::NoKeysArray)?;
    let parsed: Vec<Key> = keys.iter().filter_map(|k| parse_jwk(k, policy)).collect();
    if parsed.is_empty() {
        return Err(JwksError::NoUsableKey);
    }
    Ok(KeySet::new(parsed))
}

#[cfg(test)]
mod refresh_tests;

#[cfg(test)]
mod schedule_tests;
