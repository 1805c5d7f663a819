//! Sessions by introspection against a real Better Auth server:
//! `session.introspect_url` pointing at `/api/auth/get-session`.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::betterauth::{BetterAuth, BetterAuthOpts, cookie_value};
use gatehouse::config::{Secret, SessionBackend, SessionSpec};
use gatehouse::error::{AuthError, SessionKind};
use gatehouse::extract::SourceKind;
use gatehouse::session::SessionStore;
use http::HeaderMap;

fn store(ba: &BetterAuth, ttl: Duration, secret: Option<&str>) -> SessionStore {
    SessionStore::new(&SessionSpec {
        backend: SessionBackend::Introspect(format!("{}/api/auth/get-session", ba.url)),
        cache_ttl: ttl,
        cache_max_entries: 1000,
        secret: secret.map(|s| Secret(s.as_bytes().to_vec())),
        check_banned: false,
    })
    .unwrap()
}

/// Flips the first character of the signature (still valid base64).
fn forge(value: &str) -> String {
    let (token, sig) = value.split_once('.').unwrap();
    let mut sig: Vec<char> = sig.chars().collect();
    sig[0] = if sig[0] == 'A' { 'B' } else { 'A' };
    format!("{token}.{}", sig.into_iter().collect::<String>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cookie_only_request_gets_the_users_identity() {
    let ba = BetterAuth::start(BetterAuthOpts::default());
    let user = ba.sign_up("ann@example.com", "correct-horse-9", "Ann Example");
    let cookie = ba.sign_in("ann@example.com", "correct-horse-9");
    let value = cookie_value(&cookie);
    let store = store(&ba, Duration::from_secs(30), Some(&ba.secret));

    let id = store
        .lookup(&value, SourceKind::Cookie, &HeaderMap::new())
        .await
        .unwrap();
    assert_eq!(&*id.provider, "session");
    assert_eq!(id.sub(), Some(user.user_id.as_str()));
    assert_eq!(id.claims["email"], "ann@example.com");
    assert_eq!(id.claims["name"], "Ann Example");
    assert_eq!(id.claims["email_verified"], false);
    assert!(id.claims["session_id"].is_string());
    assert!(
        id.claims["iat"].is_u64(),
        "createdAt as iat: {:?}",
        id.claims
    );

    // As a bearer: the raw token and the signed value.
    let (raw, _) = value.split_once('.').unwrap();
    for bearer in [raw, value.as_str()] {
        let id = store
            .lookup(bearer, SourceKind::Bearer, &HeaderMap::new())
            .await
            .unwrap();
        assert_eq!(id.sub(), Some(user.user_id.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signed_out_session_is_refused_within_cache_ttl() {
    let ba = BetterAuth::start(BetterAuthOpts::default());
    ba.sign_up("bo@example.com", "correct-horse-9", "Bo");
    let cookie = ba.sign_in("bo@example.com", "correct-horse-9");
    let value = cookie_value(&cookie);
    let ttl = Duration::from_secs(2);
    let store = store(&ba, ttl, Some(&ba.secret));

    store
        .lookup(&value, SourceKind::Cookie, &HeaderMap::new())
        .await
        .unwrap();
    ba.sign_out(&cookie);
    let signed_out = Instant::now();
    let refused = loop {
        match store
            .lookup(&value, SourceKind::Cookie, &HeaderMap::new())
            .await
        {
            Ok(_) => {
                assert!(
                    signed_out.elapsed() < ttl + Duration::from_millis(500),
                    "still allowed after cache_ttl"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => break e,
        }
    };
    assert_eq!(refused, AuthError::Session(SessionKind::Unknown));
    assert!(signed_out.elapsed() <= ttl + Duration::from_millis(500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_cookie_is_refused_without_asking_better_auth() {
    let ba = BetterAuth::start(BetterAuthOpts::default());
    let user = ba.sign_up("cy@example.com", "correct-horse-9", "Cy");
    let value = cookie_value(&user.cookie);
    let store = store(&ba, Duration::from_secs(30), Some(&ba.secret));
    let before = ba.get_session_calls();

    let forged = forge(&value);
    let (raw, _) = value.split_once('.').unwrap();
    for (presented, source) in [
        (forged.as_str(), SourceKind::Cookie),
        (forged.as_str(), SourceKind::Bearer),
        (raw, SourceKind::Cookie),
    ] {
        let err = store
            .lookup(presented, source, &HeaderMap::new())
            .await
            .unwrap_err();
        assert_eq!(err, AuthError::Session(SessionKind::BadCookieSignature));
    }
    assert_eq!(ba.get_session_calls(), before, "Better Auth was asked");
    assert_eq!(store.backend_calls(), 0);

    // The genuine cookie does reach Better Auth (the counter counts).
    store
        .lookup(&value, SourceKind::Cookie, &HeaderMap::new())
        .await
        .unwrap();
    assert_eq!(ba.get_session_calls(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_secret_better_auth_judges_the_signature() {
    let ba = BetterAuth::start(BetterAuthOpts::default());
    let user = ba.sign_up("di@example.com", "correct-horse-9", "Di");
    let value = cookie_value(&user.cookie);
    let store = store(&ba, Duration::from_secs(30), None);
    let err = store
        .lookup(&forge(&value), SourceKind::Cookie, &HeaderMap::new())
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::Session(SessionKind::Unknown));
    let id = store
        .lookup(&value, SourceKind::Cookie, &HeaderMap::new())
        .await
        .unwrap();
    assert_eq!(id.sub(), Some(user.user_id.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn session_server_down_is_unavailable() {
    let mut ba = BetterAuth::start(BetterAuthOpts::default());
    let first = ba.sign_up("ed@example.com", "correct-horse-9", "Ed");
    let second = ba.sign_up("fay@example.com", "correct-horse-9", "Fay");
    let store = store(&ba, Duration::from_secs(30), Some(&ba.secret));
    let first_value = cookie_value(&first.cookie);
    store
        .lookup(&first_value, SourceKind::Cookie, &HeaderMap::new())
        .await
        .unwrap();

    ba.stop();
    let err = store
        .lookup(
            &cookie_value(&second.cookie),
            SourceKind::Cookie,
            &HeaderMap::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::SessionUnavailable);
    assert_eq!(err.http_status(), 503);
    // An answer already cached keeps working while the server is down.
    let id = store
        .lookup(&first_value, SourceKind::Cookie, &HeaderMap::new())
        .await
        .unwrap();
    assert_eq!(id.sub(), Some(first.user_id.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_lookups_of_one_token_make_one_call() {
    let ba = BetterAuth::start(BetterAuthOpts::default());
    let user = ba.sign_up("gus@example.com", "correct-horse-9", "Gus");
    let value = cookie_value(&user.cookie);
    let store = Arc::new(store(&ba, Duration::from_secs(30), Some(&ba.secret)));
    let before = ba.get_session_calls();

    let mut tasks = Vec::new();
    for _ in 0..100 {
        let store = store.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            store
                .lookup(&value, SourceKind::Cookie, &HeaderMap::new())
                .await
        }));
    }
    for t in tasks {
        let id = t.await.unwrap().unwrap();
        assert_eq!(id.sub(), Some(user.user_id.as_str()));
    }
    assert_eq!(store.backend_calls(), 1);
    assert_eq!(ba.get_session_calls(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn raw_bearer_works_without_the_bearer_plugin_when_the_secret_is_known() {
    let ba = BetterAuth::start(BetterAuthOpts {
        bearer_plugin: false,
        ..BetterAuthOpts::default()
    });
    let user = ba.sign_up("hal@example.com", "correct-horse-9", "Hal");
    let value = cookie_value(&user.cookie);
    let (raw, _) = value.split_once('.').unwrap();

    // Better Auth alone ignores the bearer here.
    let auth = format!("Bearer {raw}");
    let res = ba.call(
        "GET",
        "/api/auth/get-session",
        &[("authorization", &auth)],
        None,
    );
    assert_eq!(res.body.trim(), "null");
    let blind = store(&ba, Duration::from_secs(30), None);
    let err = blind
        .lookup(raw, SourceKind::Bearer, &HeaderMap::new())
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::Session(SessionKind::Unknown));

    // Knowing the secret, gatehouse forwards the signed cookie instead.
    let store = store(&ba, Duration::from_secs(30), Some(&ba.secret));
    for bearer in [raw, value.as_str()] {
        let id = store
            .lookup(bearer, SourceKind::Bearer, &HeaderMap::new())
            .await
            .unwrap();
        assert_eq!(id.sub(), Some(user.user_id.as_str()));
    }
    // Both forms of the same session share one cached answer.
    assert_eq!(store.backend_calls(), 1);
}
