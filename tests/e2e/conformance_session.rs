//! Conformance against a real Better Auth 1.7 server (`tests/betterauth`),
//! session side, through the real doors: a browser-style request carrying
//! only Better Auth's `better-auth.session_token` cookie is allowed as the
//! session's user, by introspection (`session.introspect_url` →
//! `/api/auth/get-session`) through nginx and Envoy, and straight from
//! Better Auth's Postgres tables (`session.postgres`) through nginx. Signed
//! out, expired and forged sessions are refused; a session store that is
//! down is 503 for sessions while JWTs keep working; JWTs are never looked
//! up as sessions.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::{Duration, Instant};

use common::betterauth::{BetterAuth, BetterAuthOpts, TestDb, cookie_value};
use common::conform::{
    Door, Doors, assert_allowed_as, assert_denied, cookie_for, eventually, forge_signature,
};
use common::envoy::write_config;

const PASSWORD: &str = "correct-horse-9";
/// gatehouse's `session.cache_ttl` in these tests.
const CACHE_TTL: Duration = Duration::from_secs(2);

#[test]
fn introspected_sessions_through_nginx_and_envoy() {
    let mut ba = BetterAuth::start(BetterAuthOpts::default());
    let ann = ba.sign_up("ann@example.com", PASSWORD, "Ann Example");
    let bo = ba.sign_up("bo@example.com", PASSWORD, "Bo Example");
    let cy = ba.sign_up("cy@example.com", PASSWORD, "Cy Example");
    let dee = ba.sign_up("dee@example.com", PASSWORD, "Dee Example");
    let ann_jwt = ba.jwt(&ann.cookie);
    let dee_jwt = ba.jwt(&dee.cookie);

    let config = write_config(&format!(
        "session:
  introspect_url: {}/api/auth/get-session
  cache_ttl: {}s
",
        ba.url,
        CACHE_TTL.as_secs()
    ));
    let stack = Doors::start(
        Some(&config),
        &[
            ("BETTER_AUTH_URL", ba.url.as_str()),
            ("BETTER_AUTH_SECRET", ba.secret.as_str()),
        ],
        true,
        true,
    );

    // Cookie only, as a browser sends it: allowed as the session's user.
    for door in stack.doors() {
        let res = stack.get_cookie(door, "/dashboard", &ann.cookie);
        assert_allowed_as(&res, door, &ann.user_id, "ann@example.com", "Ann Example");
    }
    let calls = ba.get_session_calls();
    assert!(calls >= 1, "gatehouse never asked get-session");

    // A JWT is never looked up as a session: as a bearer token, or in the
    // session cookie (it is verified as the JWT it is).
    let jwt_cookie = format!("better-auth.session_token={ann_jwt}");
    for door in stack.doors() {
        let res = stack.get_bearer(door, "/dashboard", &ann_jwt);
        assert_allowed_as(&res, door, &ann.user_id, "ann@example.com", "Ann Example");
        let res = stack.get_cookie(door, "/dashboard", &jwt_cookie);
        assert_allowed_as(&res, door, &ann.user_id, "ann@example.com", "Ann Example");
    }
    assert_eq!(
        ba.get_session_calls(),
        calls,
        "a JWT was looked up as a session"
    );

    // Forged or unsigned cookies are refused without asking Better Auth.
    let value = cookie_value(&bo.cookie);
    let forged = cookie_for(&forge_signature(&value));
    let unsigned = cookie_for(value.split_once('.').unwrap().0);
    for door in stack.doors() {
        for (what, cookie) in [("forged", &forged), ("unsigned", &unsigned)] {
            let res = stack.get_cookie(door, "/dashboard", cookie);
            assert_eq!(res.status, 401, "{door:?} {what}: {}", res.body);
            assert_denied(&res, door, 401, "session_invalid");
        }
    }
    assert_eq!(
        ba.get_session_calls(),
        calls,
        "a forged cookie reached get-session"
    );

    // Signed out: refused within cache_ttl.
    let res = stack.get_cookie(Door::Nginx, "/dashboard", &bo.cookie);
    assert_allowed_as(
        &res,
        Door::Nginx,
        &bo.user_id,
        "bo@example.com",
        "Bo Example",
    );
    ba.sign_out(&bo.cookie);
    let signed_out = Instant::now();
    assert!(
        eventually(CACHE_TTL + Duration::from_secs(3), || {
            stack
                .get_cookie(Door::Nginx, "/dashboard", &bo.cookie)
                .status
                == 401
        }),
        "signed-out session still allowed:\n{}",
        stack.log()
    );
    let took = signed_out.elapsed();
    assert!(
        took <= CACHE_TTL + Duration::from_millis(1500),
        "refused only after {took:?}"
    );
    for door in stack.doors() {
        let res = stack.get_cookie(door, "/dashboard", &bo.cookie);
        assert_denied(&res, door, 401, "session_invalid");
    }

    // Better Auth down: sessions that need it are 503, JWTs verified
    // against the keys already loaded keep working (dee's token was never
    // presented before, so nothing is served from a cache).
    ba.stop();
    for door in stack.doors() {
        let res = stack.get_cookie(door, "/dashboard", &cy.cookie);
        assert_denied(&res, door, 503, "session_unavailable");
        let res = stack.get_bearer(door, "/dashboard", &dee_jwt);
        assert_allowed_as(&res, door, &dee.user_id, "dee@example.com", "Dee Example");
    }
}

#[test]
fn postgres_sessions_through_nginx() {
    let db = TestDb::create();
    let ba = BetterAuth::start(BetterAuthOpts {
        database_url: Some(db.url.clone()),
        ..BetterAuthOpts::default()
    });
    let ann = ba.sign_up("ann@example.com", PASSWORD, "Ann Example");
    let bo = ba.sign_up("bo@example.com", PASSWORD, "Bo Example");
    let cy = ba.sign_up("cy@example.com", PASSWORD, "Cy Example");
    let ann_jwt = ba.jwt(&ann.cookie);

    let config = write_config(&format!(
        "session:
  postgres: {{ url_env: DATABASE_URL }}
  cache_ttl: {}s
",
        CACHE_TTL.as_secs()
    ));
    let stack = Doors::start(
        Some(&config),
        &[
            ("BETTER_AUTH_URL", ba.url.as_str()),
            ("BETTER_AUTH_SECRET", ba.secret.as_str()),
            ("DATABASE_URL", db.url.as_str()),
        ],
        true,
        false,
    );
    let door = Door::Nginx;

    // Valid sessions, and a JWT next to them.
    let res = stack.get_cookie(door, "/dashboard", &ann.cookie);
    assert_allowed_as(&res, door, &ann.user_id, "ann@example.com", "Ann Example");
    let res = stack.get_cookie(door, "/dashboard", &bo.cookie);
    assert_allowed_as(&res, door, &bo.user_id, "bo@example.com", "Bo Example");
    let res = stack.get_bearer(door, "/dashboard", &ann_jwt);
    assert_allowed_as(&res, door, &ann.user_id, "ann@example.com", "Ann Example");

    // Forged cookie: refused.
    let forged = cookie_for(&forge_signature(&cookie_value(&ann.cookie)));
    assert_denied(
        &stack.get_cookie(door, "/dashboard", &forged),
        door,
        401,
        "session_invalid",
    );

    // Deleted by sign-out: refused within cache_ttl.
    ba.sign_out(&bo.cookie);
    let signed_out = Instant::now();
    let mut allowed_while_cached = 0;
    assert!(
        eventually(CACHE_TTL + Duration::from_secs(3), || {
            let status = stack.get_cookie(door, "/dashboard", &bo.cookie).status;
            allowed_while_cached += usize::from(status == 200);
            status == 401
        }),
        "deleted session still allowed:\n{}",
        stack.log()
    );
    assert!(signed_out.elapsed() <= CACHE_TTL + Duration::from_millis(1500));
    assert_denied(
        &stack.get_cookie(door, "/dashboard", &bo.cookie),
        door,
        401,
        "session_invalid",
    );

    // Expired ("expiresAt" in the past), never seen before: refused.
    let cy_token = cookie_value(&cy.cookie)
        .split_once('.')
        .unwrap()
        .0
        .to_owned();
    db.exec(&format!(
        "UPDATE \"session\" SET \"expiresAt\" = now() - interval '1 minute' WHERE token = '{cy_token}'"
    ));
    assert_denied(
        &stack.get_cookie(door, "/dashboard", &cy.cookie),
        door,
        401,
        "session_invalid",
    );

    // The Postgres backend never asks Better Auth.
    assert_eq!(ba.get_session_calls(), 0);
    assert_eq!(
        stack.app.hits(),
        3 + allowed_while_cached,
        "{}",
        stack.log()
    );
}
