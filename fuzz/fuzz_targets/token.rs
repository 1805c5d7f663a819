//! Tokens and the headers they arrive in, against a verifier holding a
//! fixed HMAC secret with issuer and audience, a second secret without
//! issuer, and a fixed Ed25519 key file. The first input byte picks the case:
//!
//! - `0` the rest is a token for `Verifier::verify`;
//! - `1` the rest is header lines (`name: value`; a line starting with `?`
//!   is the query) for `Extractor::extract`, and a JWT it finds is verified;
//! - `2` the target signs the rest itself: the next byte picks the key
//!   (`0` Ed25519, `1`/`2`/`3` HS256/384/512 of the issuer's secret, `4`
//!   HS256 of the issuerless one), then header bytes, a NUL, payload bytes.
//!
//! Never a panic. A token that verifies is genuine: its signature part is
//! canonical base64url and recomputes (HMAC) or checks (Ed25519, with
//! aws-lc-rs directly) over its first two parts with the provider's key and
//! the header's `alg`; its claims are the payload, unexpired, from the
//! provider's issuer and for its audience. A fuzzer cannot forge a
//! signature, so every `Ok` outside case 2 comes from a seed token.
//! Extraction finds at most one credential: visible ASCII, at most 16 KiB,
//! a JWT exactly when it has two dots, never when `Authorization` is sent
//! twice.
#![no_main]

use std::sync::OnceLock;

use gatehouse::internals::AuthError;
use gatehouse::internals::Authorizer;
use gatehouse::internals::Verified;
use gatehouse::internals::{Credential, Extractor, MAX_TOKEN_BYTES};
use gatehouse_fuzz::{
    AUDIENCE, BARE_SECRET, ED_ISSUER, ISSUER, SECRET, b64, ed_verifies, header_lines, hmac,
    runtime, sign_raw, token_config_yaml, unb64,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

struct World {
    authz: Authorizer,
    extractor: Extractor,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let authz = gatehouse_fuzz::authorizer(&token_config_yaml());
        let extractor = Extractor::new(&authz.config().token_sources);
        World { authz, extractor }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            judge(&String::from_utf8_lossy(rest));
        }
        1 => extract(rest),
        _ => signed(rest),
    }
});

fn judge(token: &str) -> Option<Verified> {
    let verified = runtime()
        .block_on(world().authz.verifier().verify(token))
        .ok()?;
    assert_genuine(token, &verified);
    Some(verified)
}

/// A verified token's signature recomputes with its provider's key, and its
/// claims are what the provider accepts.
fn assert_genuine(token: &str, verified: &Verified) {
    let parts: Vec<&str> = token.split('.').collect();
    let [h, p, s] = parts[..] else {
        panic!("verified a token without three parts: {token:?}");
    };
    let header: Value =
        serde_json::from_slice(&unb64(h).expect("verified header is base64url")).expect("JSON");
    let alg = header["alg"]
        .as_str()
        .expect("verified header names its alg");
    assert!(header.get("crit").is_none(), "verified a token with crit");
    let signature = unb64(s).expect("verified signature is base64url");
    assert_eq!(b64(&signature), s, "verified a non-canonical signature");
    let message = format!("{h}.{p}");
    let provider = &*verified.identity.provider;
    let (issuer, audience) = match provider {
        "fuzz-secret" => {
            let want = hmac(alg, SECRET, message.as_bytes()).expect("an HS alg");
            assert_eq!(signature, want, "HMAC does not recompute: {token:?}");
            (Some(ISSUER), Some(AUDIENCE))
        }
        "fuzz-bare" => {
            assert_eq!(alg, "HS256", "fuzz-bare allows HS256 only");
            let want = hmac(alg, BARE_SECRET, message.as_bytes()).expect("an HS alg");
            assert_eq!(signature, want, "HMAC does not recompute: {token:?}");
            (None, None)
        }
        "fuzz-ed" => {
            assert_eq!(alg, "EdDSA");
            assert!(
                ed_verifies(message.as_bytes(), &signature),
                "Ed25519 signature does not check: {token:?}"
            );
            (Some(ED_ISSUER), Some(AUDIENCE))
        }
        other => panic!("verified by an unknown provider {other:?}"),
    };
    let payload: Value =
        serde_json::from_slice(&unb64(p).expect("verified payload is base64url")).expect("JSON");
    let claims = &*verified.identity.claims;
    assert_eq!(
        &Value::Object(claims.clone()),
        &payload,
        "claims are not the payload"
    );
    let now = gatehouse::internals::unix_now() as f64;
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .expect("exp is required");
    assert!(exp + 60.0 >= now.floor() - 1.0, "expired token verified");
    for name in ["nbf", "iat"] {
        if let Some(t) = claims.get(name) {
            let t = t.as_f64().expect("time claims are numbers");
            assert!(t <= now + 61.0, "{name} in the future verified");
        }
    }
    if let Some(issuer) = issuer {
        assert_eq!(claims.get("iss").and_then(Value::as_str), Some(issuer));
    }
    if let Some(audience) = audience {
        let fits = match claims.get("aud") {
            Some(Value::String(a)) => a == audience,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
            _ => false,
        };
        assert!(fits, "wrong audience verified");
    }
}

fn extract(block: &[u8]) {
    let mut headers = HeaderMap::new();
    let mut query = None;
    for line in block.split(|&b| b == b'\n') {
        if let Some(q) = line.strip_prefix(b"?") {
            query = std::str::from_utf8(q).ok();
        }
    }
    for (name, value) in header_lines(block) {
        if name.starts_with(b"?") {
            continue;
        }
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    let authorizations = headers.get_all(http::header::AUTHORIZATION).iter().count();
    match world().extractor.extract(&headers, query) {
        Ok(Some(credential)) => {
            assert!(
                authorizations < 2,
                "two Authorization headers, one credential"
            );
            let token = credential.token();
            assert!(!token.is_empty() && token.len() <= MAX_TOKEN_BYTES);
            assert!(token.bytes().all(|b| b.is_ascii_graphic()), "{token:?}");
            let dots = token.bytes().filter(|&b| b == b'.').count();
            assert_eq!(matches!(credential, Credential::Jwt { .. }), dots == 2);
            if matches!(credential, Credential::Jwt { .. }) {
                judge(token);
            }
        }
        Ok(None) => assert!(authorizations < 2, "two Authorization headers, no error"),
        Err(e) => assert!(matches!(e, AuthError::Malformed(_)), "{e:?}"),
    }
}

fn signed(rest: &[u8]) {
    let Some((&key, rest)) = rest.split_first() else {
        return;
    };
    let (alg, secret) = match key % 5 {
        0 => ("EdDSA", &[][..]),
        1 => ("HS256", SECRET),
        2 => ("HS384", SECRET),
        3 => ("HS512", SECRET),
        _ => ("HS256", BARE_SECRET),
    };
    let (header, payload) = match rest.iter().position(|&b| b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (&rest[..0], rest),
    };
    let token = sign_raw(alg, secret, header, payload);
    if let Some(verified) = judge(&token) {
        // Signed with `alg`: only a header naming that alg verifies, and
        // only with the provider holding that key.
        let header: Value = serde_json::from_slice(header).expect("verified header is JSON");
        assert_eq!(header["alg"].as_str(), Some(alg), "alg confusion");
        let provider = &*verified.identity.provider;
        let expected = match (alg, secret == BARE_SECRET) {
            ("EdDSA", _) => "fuzz-ed",
            (_, true) => "fuzz-bare",
            (_, false) => "fuzz-secret",
        };
        assert_eq!(provider, expected);
    }
}
