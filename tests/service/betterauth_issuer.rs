//! The Better Auth issuer used by the conformance tests behaves as docs/better-auth.md describes it
//! says a real Better Auth 1.7 server does: cookie name and `TOKEN.SIG`
//! signature, JWT header and claims, JWKS shape, get-session shape, and
//! `null` after sign-out.
#![allow(clippy::unwrap_used)]

use crate::common;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::betterauth::{BetterAuth, BetterAuthOpts, cookie_value};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

fn decode_part(part: &str) -> Value {
    let bytes = URL_SAFE_NO_PAD.decode(part).expect("base64url part");
    serde_json::from_slice(&bytes).expect("JSON part")
}

#[test]
fn issuer_matches_better_auth_token_and_cookie_shapes() {
    let ba = BetterAuth::start(BetterAuthOpts::default());
    let signed_up = ba.sign_up("ann@example.com", "correct-horse-9", "Ann Example");
    assert!(!signed_up.user_id.is_empty());

    // Sign in: the cookie is better-auth.session_token=<url-encoded TOKEN.SIG>.
    let cookie = ba.sign_in("ann@example.com", "correct-horse-9");
    assert!(cookie.starts_with("better-auth.session_token="), "{cookie}");
    let value = cookie_value(&cookie);
    let (token, sig) = value.split_once('.').expect("TOKEN.SIG");
    assert_eq!(token.len(), 32, "session token length: {token}");
    let mut mac = Hmac::<Sha256>::new_from_slice(ba.secret.as_bytes()).unwrap();
    mac.update(token.as_bytes());
    assert_eq!(sig, STANDARD.encode(mac.finalize().into_bytes()));

    // get-session: {session, user} with the fields Better Auth documents.
    let res = ba.get_session(&cookie);
    assert_eq!(res.status, 200);
    let body = res.json();
    let session = &body["session"];
    let user = &body["user"];
    assert_eq!(session["token"], token);
    assert_eq!(session["userId"], signed_up.user_id.as_str());
    assert!(session["id"].is_string());
    assert!(session["expiresAt"].is_string());
    assert_eq!(user["id"], signed_up.user_id.as_str());
    assert_eq!(user["email"], "ann@example.com");
    assert_eq!(user["name"], "Ann Example");
    assert_eq!(user["emailVerified"], false);
    // The jwt() plugin also hands out a JWT on get-session.
    let header_jwt = res.header("set-auth-jwt").expect("set-auth-jwt header");
    assert_eq!(header_jwt.split('.').count(), 3);

    // As a bearer, the raw TOKEN and the signed value both work.
    for bearer in [token.to_owned(), value.clone()] {
        let auth = format!("Bearer {bearer}");
        let res = ba.call(
            "GET",
            "/api/auth/get-session",
            &[("authorization", &auth)],
            None,
        );
        assert_eq!(res.json()["user"]["id"], signed_up.user_id.as_str());
    }

    // The JWT: header {alg, kid} without typ; payload user + sub/iss/aud/iat/exp.
    let jwt = ba.jwt(&cookie);
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header = decode_part(parts[0]);
    let header = header.as_object().unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert!(header["kid"].is_string());
    assert!(!header.contains_key("typ"), "typ present: {header:?}");
    let claims = decode_part(parts[1]);
    assert_eq!(claims["sub"], signed_up.user_id.as_str());
    assert_eq!(claims["iss"], ba.url.as_str());
    assert_eq!(claims["aud"], ba.url.as_str());
    assert_eq!(claims["email"], "ann@example.com");
    assert_eq!(claims["name"], "Ann Example");
    let iat = claims["iat"].as_u64().unwrap();
    let exp = claims["exp"].as_u64().unwrap();
    assert_eq!(exp - iat, 15 * 60);
    assert!(claims.get("nbf").is_none());
    assert!(claims.get("jti").is_none());

    // JWKS: the JWT's kid, an Ed25519 key, no `use`, no Cache-Control.
    let res = ba.call("GET", "/api/auth/jwks", &[], None);
    assert_eq!(res.status, 200);
    assert!(res.header("cache-control").is_none());
    let jwks = res.json();
    let keys = jwks["keys"].as_array().unwrap();
    let key = keys
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the JWT's kid is published");
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert!(key.get("use").is_none());

    // After sign-out get-session answers 200 null.
    ba.sign_out(&cookie);
    let res = ba.get_session(&cookie);
    assert_eq!(res.status, 200);
    assert_eq!(res.body.trim(), "null");
}

#[test]
fn issuer_signs_with_every_configured_algorithm() {
    for (alg, kty) in [
        ("ES256", "EC"),
        ("ES512", "EC"),
        ("RS256", "RSA"),
        ("PS256", "RSA"),
    ] {
        let ba = BetterAuth::start(BetterAuthOpts {
            alg: alg.to_owned(),
            ..BetterAuthOpts::default()
        });
        let user = ba.sign_up("bo@example.com", "correct-horse-9", "Bo");
        let jwt = ba.jwt(&user.cookie);
        let header = decode_part(jwt.split('.').next().unwrap());
        assert_eq!(header["alg"], alg);
        let jwks = ba.jwks();
        let key = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == header["kid"])
            .expect("kid published")
            .clone();
        assert_eq!(key["kty"], kty, "{alg}: {key}");
    }
}

#[test]
fn issuer_rotates_keys_and_keeps_the_old_one_published() {
    let ba = BetterAuth::start(BetterAuthOpts {
        rotation: Some(std::time::Duration::from_secs(2)),
        grace: Some(std::time::Duration::from_secs(60)),
        ..BetterAuthOpts::default()
    });
    let user = ba.sign_up("rot@example.com", "correct-horse-9", "Rot");
    let kid_of = |jwt: &str| decode_part(jwt.split('.').next().unwrap())["kid"].clone();
    let first = kid_of(&ba.jwt(&user.cookie));
    std::thread::sleep(std::time::Duration::from_secs(3));
    let second = kid_of(&ba.jwt(&user.cookie));
    assert_ne!(first, second, "no new key after the rotation interval");
    let jwks = ba.jwks();
    let kids: Vec<&Value> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["kid"])
        .collect();
    assert!(
        kids.contains(&&first),
        "old key dropped during grace: {kids:?}"
    );
    assert!(kids.contains(&&second), "new key not published: {kids:?}");
}
