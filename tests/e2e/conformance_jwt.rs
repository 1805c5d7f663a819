//! Conformance against a real Better Auth 1.7 server (`tests/betterauth`),
//! JWT side, through the real doors: `BETTER_AUTH_URL=<server> gatehouse
//! serve` with no config file lets Better Auth's own JWTs (from
//! `/api/auth/token`) through nginx and Envoy as the user, for every
//! algorithm the `jwt()` plugin can be configured with; tokens of another
//! Better Auth instance are refused; rotated keys are picked up without a
//! restart; `BETTER_AUTH_SECRET` accepts HS256 tokens minted the way the
//! seeds' FastAPI guides mint them; a session token is never verified as a
//! JWT.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::betterauth::{BetterAuth, BetterAuthOpts, cookie_value};
use common::conform::{
    Door, Doors, assert_allowed_as, assert_denied, eventually, identity, jwt_header,
    start_impostor, with_header,
};
use common::envoy::{hs256, write_config};
use serde_json::json;

const PASSWORD: &str = "correct-horse-9";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn issuer(alg: &str) -> BetterAuth {
    BetterAuth::start(BetterAuthOpts {
        alg: alg.to_owned(),
        ..BetterAuthOpts::default()
    })
}

/// Zero config (only `BETTER_AUTH_URL`), one algorithm, the given doors.
fn zero_config_allows(alg: &str, doors: &[Door]) {
    let ba = issuer(alg);
    let email = format!("{}@example.com", alg.to_ascii_lowercase());
    let name = format!("User {alg}");
    let user = ba.sign_up(&email, PASSWORD, &name);
    let jwt = ba.jwt(&user.cookie);
    assert_eq!(
        jwt_header(&jwt)["alg"],
        alg,
        "Better Auth signed with another alg"
    );

    let stack = Doors::start(
        None,
        &[("BETTER_AUTH_URL", ba.url.as_str())],
        doors.contains(&Door::Nginx),
        doors.contains(&Door::Envoy),
    );
    for &door in doors {
        let res = stack.get_bearer(door, "/app/data", &jwt);
        assert_allowed_as(&res, door, &user.user_id, &email, &name);
        // No credential: refused, and client-sent identity never passes.
        let res = stack.get(door, "/app/data", &[("x-user-id", "mallory")]);
        assert_denied(&res, door, 401, "token_missing");
        // A flipped signature byte is refused.
        let mut bad = jwt.clone().into_bytes();
        let i = bad.len() - 3;
        bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
        let res = stack.get_bearer(door, "/app/data", &String::from_utf8(bad).unwrap());
        assert_denied(&res, door, 401, "token_invalid");
    }
    assert_eq!(stack.app.hits(), doors.len(), "{}", stack.log());
}

#[test]
fn zero_config_es256_through_envoy() {
    zero_config_allows("ES256", &[Door::Envoy]);
}

#[test]
fn zero_config_es512_through_nginx() {
    zero_config_allows("ES512", &[Door::Nginx]);
}

#[test]
fn zero_config_rs256_through_envoy() {
    zero_config_allows("RS256", &[Door::Envoy]);
}

#[test]
fn zero_config_ps256_through_nginx() {
    zero_config_allows("PS256", &[Door::Nginx]);
}

/// EdDSA (the plugin's default) through both doors, plus everything that
/// must be refused with the same zero-config gatehouse: another Better Auth
/// instance's tokens, an impostor's tokens claiming our issuer, and a
/// session token presented as a bearer credential.
#[test]
fn zero_config_eddsa_both_doors_and_foreign_tokens_refused() {
    let ours = issuer("EdDSA");
    let user = ours.sign_up("ann@example.com", PASSWORD, "Ann Example");
    let jwt = ours.jwt(&user.cookie);
    let our_kid = jwt_header(&jwt)["kid"].clone();

    // Another Better Auth instance: other keys, other issuer URL.
    let other = issuer("EdDSA");
    let stranger = other.sign_up("ann@example.com", PASSWORD, "Ann Example");
    let other_jwt = other.jwt(&stranger.cookie);
    // An instance with its own key that claims our URL as issuer/audience.
    let impostor = start_impostor(&ours.url, "impostor-secret-0123456789abcdefghijkl");
    let mallory = impostor.sign_up("ann@example.com", PASSWORD, "Ann Example");
    let forged_iss = impostor.jwt(&mallory.cookie);
    let forged_header = jwt_header(&forged_iss);
    assert_ne!(forged_header["kid"], our_kid);
    // The impostor's token relabelled with our kid: signature check fails.
    let relabelled = with_header(&forged_iss, &json!({"alg": "EdDSA", "kid": our_kid}));

    let stack = Doors::start(None, &[("BETTER_AUTH_URL", ours.url.as_str())], true, true);
    for door in stack.doors() {
        let res = stack.get_bearer(door, "/app", &jwt);
        assert_allowed_as(&res, door, &user.user_id, "ann@example.com", "Ann Example");
        // Client-sent identity headers are replaced, not appended.
        let auth = format!("Bearer {jwt}");
        let res = stack.get(
            door,
            "/app",
            &[("authorization", &auth), ("x-user-id", "mallory")],
        );
        assert_eq!(
            identity(&res, "x-user-id").as_deref(),
            Some(user.user_id.as_str())
        );

        for (what, token) in [
            ("other instance", &other_jwt),
            ("impostor claiming our issuer", &forged_iss),
            ("impostor relabelled with our kid", &relabelled),
        ] {
            let res = stack.get_bearer(door, "/app", token);
            assert_eq!(res.status, 401, "{door:?} {what}: {}", res.body);
            assert_denied(&res, door, 401, "token_invalid");
        }

        // A session token is never verified as a JWT: with BETTER_AUTH_URL
        // alone it is looked up as a session, signed or raw, and its user
        // is the identity.
        let signed = cookie_value(&user.cookie);
        let raw = signed.split_once('.').unwrap().0.to_owned();
        for value in [&signed, &raw] {
            let res = stack.get_bearer(door, "/app", value);
            assert_allowed_as(&res, door, &user.user_id, "ann@example.com", "Ann Example");
        }
    }
    assert_eq!(stack.app.hits(), 8, "{}", stack.log());
}

/// Better Auth's key rotation: a token signed with the new key is allowed
/// without restarting gatehouse (unknown kid → JWKS refetch), and a token
/// signed with the old key still is while Better Auth publishes it. The
/// unknown-kid cooldown is set to 1 s here (default 30 s) so the test does
/// not wait half a minute after gatehouse's first fetch. Once Better Auth
/// stops publishing the old key (its expiry plus the grace period) and
/// gatehouse has refetched, tokens signed with it are refused, including
/// ones it had verified and cached before.
#[test]
fn rotated_keys_are_picked_up_without_restart() {
    const GRACE_SECS: u64 = 12;
    let ba = BetterAuth::start(BetterAuthOpts {
        rotation: Some(Duration::from_secs(2)),
        grace: Some(Duration::from_secs(GRACE_SECS)),
        ..BetterAuthOpts::default()
    });
    let ann = ba.sign_up("ann@example.com", PASSWORD, "Ann");
    let bo = ba.sign_up("bo@example.com", PASSWORD, "Bo");
    let old_ann = ba.jwt(&ann.cookie);
    let old_bo = ba.jwt(&bo.cookie);
    let old_kid = jwt_header(&old_ann)["kid"].clone();
    assert_eq!(jwt_header(&old_bo)["kid"], old_kid);

    let config = write_config(&format!(
        "providers:
  - name: better-auth
    issuer: {url}
    audiences: [{url}]
    jwks_uri: {url}/api/auth/jwks
    unknown_kid_refetch_interval: 1s
",
        url = ba.url
    ));
    let stack = Doors::start(Some(&config), &[], true, false);
    let door = Door::Nginx;
    assert_allowed_as(
        &stack.get_bearer(door, "/app", &old_ann),
        door,
        &ann.user_id,
        "ann@example.com",
        "Ann",
    );

    std::thread::sleep(Duration::from_secs(3));
    let new_ann = ba.jwt(&ann.cookie);
    let new_kid = jwt_header(&new_ann)["kid"].clone();
    assert_ne!(new_kid, old_kid, "Better Auth did not rotate");
    let published: Vec<serde_json::Value> = ba.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert!(published.contains(&old_kid) && published.contains(&new_kid));

    assert_allowed_as(
        &stack.get_bearer(door, "/app", &new_ann),
        door,
        &ann.user_id,
        "ann@example.com",
        "Ann",
    );
    // Never presented before, so verified now, against the old key.
    assert_allowed_as(
        &stack.get_bearer(door, "/app", &old_bo),
        door,
        &bo.user_id,
        "bo@example.com",
        "Bo",
    );
    assert_eq!(stack.app.hits(), 3, "{}", stack.log());

    // Grace over: Better Auth drops the old key. The next new kid makes
    // gatehouse refetch; the old key's tokens are refused from then on.
    let kids = || -> Vec<serde_json::Value> {
        ba.jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].clone())
            .collect()
    };
    assert!(
        eventually(Duration::from_secs(GRACE_SECS + 10), || !kids()
            .contains(&old_kid)),
        "Better Auth still publishes the old key"
    );
    let newest = ba.jwt(&bo.cookie);
    let newest_kid = jwt_header(&newest)["kid"].clone();
    assert!(newest_kid != old_kid && newest_kid != new_kid);
    assert_allowed_as(
        &stack.get_bearer(door, "/app", &newest),
        door,
        &bo.user_id,
        "bo@example.com",
        "Bo",
    );
    for old in [&old_ann, &old_bo] {
        assert_denied(
            &stack.get_bearer(door, "/app", old),
            door,
            401,
            "token_invalid",
        );
    }
    assert_eq!(stack.app.hits(), 4, "{}", stack.log());
}

/// `BETTER_AUTH_SECRET` (+ `BETTER_AUTH_URL`): HS256 tokens with iss/aud =
/// the Better Auth URL, as a backend would mint them with the shared secret.
#[test]
fn hs256_secret_mode() {
    let ba = issuer("EdDSA");
    let user = ba.sign_up("cy@example.com", PASSWORD, "Cy Example");
    let eddsa = ba.jwt(&user.cookie);
    let stack = Doors::start(
        None,
        &[
            ("BETTER_AUTH_URL", ba.url.as_str()),
            ("BETTER_AUTH_SECRET", ba.secret.as_str()),
        ],
        true,
        false,
    );
    let door = Door::Nginx;
    let claims = |iss: &str| {
        json!({
            "sub": user.user_id, "email": "cy@example.com", "name": "Cy Example",
            "iss": iss, "aud": iss, "iat": now(), "exp": now() + 900,
        })
    };
    let good = hs256(&ba.secret, &claims(&ba.url));
    assert_allowed_as(
        &stack.get_bearer(door, "/app", &good),
        door,
        &user.user_id,
        "cy@example.com",
        "Cy Example",
    );
    // Better Auth's own EdDSA tokens still work next to the secret.
    assert_allowed_as(
        &stack.get_bearer(door, "/app", &eddsa),
        door,
        &user.user_id,
        "cy@example.com",
        "Cy Example",
    );

    let other_secret = hs256("another-secret-0123456789abcdefghijklmn", &claims(&ba.url));
    assert_denied(
        &stack.get_bearer(door, "/app", &other_secret),
        door,
        401,
        "token_invalid",
    );
    let wrong_iss = hs256(&ba.secret, &claims("http://127.0.0.1:1"));
    assert_denied(
        &stack.get_bearer(door, "/app", &wrong_iss),
        door,
        401,
        "token_invalid",
    );
    let mut wrong_aud = claims(&ba.url);
    wrong_aud["aud"] = json!("https://elsewhere.example");
    let wrong_aud = hs256(&ba.secret, &wrong_aud);
    assert_denied(
        &stack.get_bearer(door, "/app", &wrong_aud),
        door,
        401,
        "token_invalid",
    );
    assert_eq!(stack.app.hits(), 2, "{}", stack.log());
}
