//! The revocation list on its own: selectors, matching, expiry, how long
//! entries are kept; then the stream against a real Redis (127.0.0.1:6379,
//! a key prefix of the test's own): what a write leaves there, and a
//! follower that loads, follows and catches up.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{
    Entry, Horizons, Revocations, Selector, Snapshot, StreamId, check_new, parse_time, stream,
};
use crate::config::{Config, Env, LoadOptions, Secret, StoreSpec};
use crate::error::{AuthError, RevokedKind};
use crate::extract::{Credential, SourceKind};
use crate::identity::Identity;
use crate::store::Store;
use crate::telemetry::Metrics;

fn claims(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn entry(id: &str, selector: Selector, expires_at: i64) -> Entry {
    Entry {
        id: id.to_owned(),
        selector,
        created_at: 0,
        expires_at,
        reason: String::new(),
    }
}

fn sub(s: &str) -> Selector {
    Selector::Sub {
        sub: s.to_owned(),
        before: None,
    }
}

fn snapshot(entries: &[Entry]) -> Snapshot {
    Snapshot::build(entries.iter())
}

#[test]
fn a_subject_entry_matches_every_token_of_that_subject_only() {
    let s = snapshot(&[entry("1-0", sub("alice"), i64::MAX)]);
    let alice = claims(json!({"sub": "alice", "iat": 100}));
    let bob = claims(json!({"sub": "bob", "iat": 100}));
    assert_eq!(s.matches(&alice, "sid", None), Some(RevokedKind::Subject));
    assert_eq!(s.matches(&bob, "sid", None), None);
    assert_eq!(s.matches(&claims(json!({"sub": 7})), "sid", None), None);
}

#[test]
fn before_matches_tokens_issued_earlier_or_without_iat() {
    let before = Selector::Sub {
        sub: "alice".into(),
        before: Some(1000),
    };
    let s = snapshot(&[entry("1-0", before, i64::MAX)]);
    let at = |iat: Value| claims(json!({"sub": "alice", "iat": iat}));
    assert_eq!(
        s.matches(&at(json!(999)), "sid", None),
        Some(RevokedKind::SubjectBefore)
    );
    assert_eq!(
        s.matches(&at(json!(999.9)), "sid", None),
        Some(RevokedKind::SubjectBefore)
    );
    assert_eq!(s.matches(&at(json!(1000)), "sid", None), None);
    assert_eq!(s.matches(&at(json!(5000)), "sid", None), None);
    assert_eq!(
        s.matches(&claims(json!({"sub": "alice"})), "sid", None),
        Some(RevokedKind::SubjectBefore),
        "no iat counts as issued before"
    );
}

#[test]
fn the_latest_before_and_an_all_entry_win_when_merged() {
    let b = |t| Selector::Sub {
        sub: "alice".into(),
        before: Some(t),
    };
    let s = snapshot(&[
        entry("1-0", b(1000), i64::MAX),
        entry("2-0", b(2000), i64::MAX),
    ]);
    let at = |iat: i64| claims(json!({"sub": "alice", "iat": iat}));
    assert_eq!(
        s.matches(&at(1500), "sid", None),
        Some(RevokedKind::SubjectBefore)
    );
    assert_eq!(s.matches(&at(2000), "sid", None), None);
    let s = snapshot(&[
        entry("1-0", b(1000), i64::MAX),
        entry("2-0", sub("alice"), i64::MAX),
    ]);
    assert_eq!(
        s.matches(&at(9999), "sid", None),
        Some(RevokedKind::Subject)
    );
}

#[test]
fn jti_sid_and_session_entries_match_their_own_credential() {
    let token = "abcdefghijklmnopqrstuvwxyz012345";
    let s = snapshot(&[
        entry("1-0", Selector::Jti("j-1".into()), i64::MAX),
        entry("2-0", Selector::Sid("s-1".into()), i64::MAX),
        entry("3-0", Selector::session_token(token).unwrap(), i64::MAX),
    ]);
    let none = claims(json!({"sub": "u"}));
    assert_eq!(
        s.matches(&claims(json!({"sub": "u", "jti": "j-1"})), "sid", None),
        Some(RevokedKind::TokenId)
    );
    assert_eq!(
        s.matches(&claims(json!({"sub": "u", "jti": "j-2"})), "sid", None),
        None
    );
    // The session id is read from the claim the caller names.
    assert_eq!(
        s.matches(&claims(json!({"sub": "u", "sid": "s-1"})), "sid", None),
        Some(RevokedKind::Session)
    );
    assert_eq!(
        s.matches(
            &claims(json!({"sub": "u", "sid": "s-1"})),
            "session_id",
            None
        ),
        None
    );
    assert_eq!(
        s.matches(&claims(json!({"session_id": "s-1"})), "session_id", None),
        Some(RevokedKind::Session)
    );
    // A session token matches raw and signed alike; other tokens do not.
    assert_eq!(
        s.matches(&none, "session_id", Some(token)),
        Some(RevokedKind::Session)
    );
    assert_eq!(
        s.matches(&none, "session_id", Some(&format!("{token}.c2lnbmF0dXJl"))),
        Some(RevokedKind::Session)
    );
    assert_eq!(s.matches(&none, "session_id", Some("another-token")), None);
}

#[test]
fn a_session_token_is_kept_as_its_hash_whatever_form_it_was_pasted_in() {
    let raw = "abcdefghijklmnopqrstuvwxyz012345";
    let a = Selector::session_token(raw).unwrap();
    let b = Selector::session_token(&format!("{raw}.c2ln%2Bc2ln%3D")).unwrap();
    let c = Selector::session_token(&format!("  {raw}.sig=\n")).unwrap();
    assert_eq!(a, b);
    assert_eq!(a, c);
    let value = a.value();
    assert_eq!(value.len(), 64);
    assert!(!value.contains(raw));
    assert_eq!(Selector::parse("session", &value, None), Some(a));
    assert!(Selector::session_token("").is_none());
    assert!(Selector::session_token(".sig").is_none());
}

#[test]
fn the_stream_form_round_trips_and_odd_entries_are_refused() {
    for s in [
        sub("alice"),
        Selector::Sub {
            sub: "bob".into(),
            before: Some(42),
        },
        Selector::Jti("j".into()),
        Selector::Sid("s".into()),
        Selector::session_token("tok").unwrap(),
    ] {
        assert_eq!(
            Selector::parse(s.kind(), &s.value(), s.before()).as_ref(),
            Some(&s)
        );
    }
    assert_eq!(Selector::parse("user", "alice", None), None);
    assert_eq!(Selector::parse("sub", "", None), None);
    assert_eq!(
        Selector::parse("jti", "j", Some(1)),
        None,
        "before is for sub"
    );
    assert_eq!(Selector::parse("session", "not-hex", None), None);
    assert_eq!(Selector::parse("sub", &"x".repeat(1025), None), None);
}

#[test]
fn new_entries_with_a_far_future_before_or_an_empty_value_are_refused() {
    let now = 1_000_000;
    let before = |t| Selector::Sub {
        sub: "a".into(),
        before: Some(t),
    };
    assert!(check_new(&before(now - 3600), now).is_ok());
    assert!(check_new(&before(now + 30), now).is_ok(), "clock skew");
    let e = check_new(&before(now + 3600), now).unwrap_err();
    assert!(e.contains("future"), "{e}");
    assert!(check_new(&Selector::Jti(String::new()), now).is_err());
    assert!(check_new(&Selector::Sid("x".repeat(2000)), now).is_err());
}

#[test]
fn times_are_unix_seconds_or_rfc3339() {
    assert_eq!(parse_time("1700000000"), Ok(1_700_000_000));
    assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000));
    assert_eq!(parse_time("2023-11-14T22:13:20.5Z"), Ok(1_700_000_000));
    assert_eq!(parse_time("2023-11-15T00:13:20+02:00"), Ok(1_700_000_000));
    assert_eq!(parse_time("2023-11-14T20:13:20-02:00"), Ok(1_700_000_000));
    for bad in [
        "",
        "yesterday",
        "2023-13-01T00:00:00Z",
        "2023-11-14T22:13:20+2",
    ] {
        assert!(parse_time(bad).is_err(), "{bad}");
    }
}

fn config(yaml: &str, env: Env) -> Config {
    Config::from_yaml(
        yaml,
        &LoadOptions {
            env,
            ..LoadOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn entries_are_kept_as_long_as_a_credential_they_match_can_be_valid() {
    let env = Env::default()
        .with("S1", "secret-one")
        .with("S2", "secret-two");
    let bounded = config(
        "providers:
  - { name: a, secret_env: S1, max_lifetime: 15m, leeway: 30s }
  - { name: b, secret_env: S2, max_lifetime: 1h, leeway: 0s }
revocation: { retention: 2d }
",
        env.clone(),
    );
    let h = Horizons::for_config(&bounded);
    let now = 1_000_000;
    // The longest lifetime plus leeway on iat and exp.
    assert_eq!(h.expires_at(&sub("x"), now), now + 3600);
    assert_eq!(h.expires_at(&Selector::Jti("j".into()), now), now + 3600);
    // Sessions are bounded only by the retention.
    assert_eq!(
        h.expires_at(&Selector::session_token("t").unwrap(), now),
        now + 2 * 86400
    );
    // A before in the past counts from it; a near-future one from itself.
    let before = |t| Selector::Sub {
        sub: "x".into(),
        before: Some(t),
    };
    assert_eq!(h.expires_at(&before(now - 600), now), now - 600 + 3600);
    assert_eq!(h.expires_at(&before(now + 30), now), now + 30 + 3600);
    assert!(h.window() >= 2 * 86400);

    let unbounded = config(
        "providers:
  - { name: a, secret_env: S1, max_lifetime: 15m }
  - { name: b, secret_env: S2 }
revocation: { retention: 3h }
",
        env.clone(),
    );
    let h = Horizons::for_config(&unbounded);
    assert_eq!(h.expires_at(&sub("x"), now), now + 3 * 3600);

    let with_sessions = config(
        "providers:
  - { name: a, secret_env: S1, max_lifetime: 15m, leeway: 0s }
session: { introspect_url: http://127.0.0.1:3000/api/auth/get-session }
revocation: { retention: 5h }
",
        env,
    );
    let h = Horizons::for_config(&with_sessions);
    assert_eq!(h.expires_at(&Selector::Jti("j".into()), now), now + 900);
    assert_eq!(h.expires_at(&sub("x"), now), now + 5 * 3600);
    assert_eq!(
        h.expires_at(&Selector::Sid("s".into()), now),
        now + 5 * 3600
    );
}

fn jwt_identity(provider: &str, v: Value) -> Identity {
    Identity {
        provider: Arc::from(provider),
        claims: Arc::new(claims(v)),
    }
}

fn jwt() -> Credential {
    Credential::Jwt {
        token: "h.p.s".into(),
        source: SourceKind::Bearer,
    }
}

#[test]
fn the_list_applies_expires_and_answers_token_revoked() {
    let list = Revocations::offline(Arc::new(Metrics::new()));
    let alice = jwt_identity("idp", json!({"sub": "alice", "iat": 5, "sid": "s9"}));
    assert!(list.check(&alice, &jwt(), &[]).is_ok());
    let now = 1000;
    let applied = list.apply(
        vec![
            entry("5-0", sub("alice"), now + 10),
            entry("6-0", Selector::Jti("gone".into()), now - 1),
            entry("bad id", sub("mallory"), now + 10),
        ],
        now,
    );
    assert_eq!(applied, 1, "expired entries and bad ids are skipped");
    assert_eq!(list.len(), 1);
    assert_eq!(list.last_id(), None, "applied as written: not read yet");
    assert!(matches!(
        list.check(&alice, &jwt(), &[]),
        Err(AuthError::Revoked(RevokedKind::Subject))
    ));
    assert_eq!(
        list.apply(vec![entry("5-0", sub("alice"), now + 10)], now),
        0,
        "an id seen is not applied twice"
    );
    list.prune(now + 9);
    assert_eq!(list.len(), 1);
    list.prune(now + 10);
    assert_eq!(list.len(), 0);
    assert!(list.check(&alice, &jwt(), &[]).is_ok());
}

#[test]
fn the_follower_resumes_after_the_last_id_read_whatever_it_held() {
    let list = Revocations::offline(Arc::new(Metrics::new()));
    let id = |ms| StreamId { ms, seq: 0 };
    // Read: one live entry, then an expired one and one that did not parse.
    list.apply_read(vec![entry("5-0", sub("a"), 100)], Some(id(5)), 0);
    list.apply_read(vec![entry("6-0", sub("b"), 0)], Some(id(7)), 1);
    assert_eq!(list.len(), 1);
    assert_eq!(list.last_id(), Some(id(7)), "past what was skipped");
    // Written here and applied at once: the cursor stays, so entries other
    // writers appended just before are still read.
    list.apply(vec![entry("9-0", sub("c"), 100)], 1);
    assert_eq!(list.len(), 2);
    assert_eq!(list.last_id(), Some(id(7)));
    // Expiry empties the list, not the cursor.
    list.prune(100);
    assert_eq!(list.len(), 0);
    assert_eq!(list.last_id(), Some(id(7)));
    assert_eq!(list.apply_read(vec![], Some(id(3)), 1), 0);
    assert_eq!(list.last_id(), Some(id(7)), "never moves back");
}

#[test]
fn a_bound_session_is_read_from_the_providers_session_claim() {
    let list = Revocations::offline(Arc::new(Metrics::new()));
    list.apply(vec![entry("1-0", Selector::Sid("s1".into()), i64::MAX)], 0);
    let bound = [(Arc::from("ba"), "session".to_owned())];
    let by_claim = jwt_identity("ba", json!({"sub": "u", "session": "s1"}));
    let by_sid = jwt_identity("other", json!({"sub": "u", "sid": "s1"}));
    let wrong_claim = jwt_identity("ba", json!({"sub": "u", "sid": "s1"}));
    assert!(list.check(&by_claim, &jwt(), &bound).is_err());
    assert!(
        list.check(&by_sid, &jwt(), &bound).is_err(),
        "sid by default"
    );
    assert!(list.check(&wrong_claim, &jwt(), &bound).is_ok());
    let session = Credential::Session {
        token: "tok.sig".into(),
        source: SourceKind::Cookie,
    };
    let from_store = jwt_identity("session", json!({"sub": "u", "session_id": "s1"}));
    assert!(matches!(
        list.check(&from_store, &session, &bound),
        Err(AuthError::Revoked(RevokedKind::Session))
    ));
}

#[test]
fn the_gauges_count_what_is_held_by_kind() {
    let metrics = Arc::new(Metrics::new());
    let list = Revocations::offline(metrics.clone());
    list.insert("sub", (0..3).map(|i| format!("user{i}")), i64::MAX);
    list.insert("session", ["not-hex".to_owned()], i64::MAX);
    list.apply(vec![entry("9-0", Selector::Jti("j".into()), i64::MAX)], 0);
    let text = metrics.encode(&[]);
    assert!(
        text.contains("gatehouse_revocations{kind=\"sub\"} 3\n"),
        "{text}"
    );
    assert!(
        text.contains("gatehouse_revocations{kind=\"jti\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("gatehouse_revocations{kind=\"session\"} 0\n"),
        "{text}"
    );
    assert!(
        text.contains("gatehouse_revocation_following 0\n"),
        "{text}"
    );
}

#[test]
fn a_session_revocation_finds_cached_sessions_by_subject_id_and_token() {
    let identity = jwt_identity("session", json!({"sub": "u1", "session_id": "s1"}));
    let token = crate::session::token_sha256("tok.sig");
    assert!(sub("u1").matches_session(&identity, &token));
    assert!(!sub("u2").matches_session(&identity, &token));
    assert!(Selector::Sid("s1".into()).matches_session(&identity, &token));
    assert!(
        Selector::session_token("tok")
            .unwrap()
            .matches_session(&identity, &token)
    );
    assert!(!Selector::Jti("s1".into()).matches_session(&identity, &token));
    let before = |t| Selector::Sub {
        sub: "u1".into(),
        before: Some(t),
    };
    assert!(
        before(1).matches_session(&identity, &token),
        "creation unknown"
    );
    let created = jwt_identity("session", json!({"sub": "u1", "iat": 1000}));
    assert!(before(1001).matches_session(&created, &token));
    assert!(!before(1000).matches_session(&created, &token));
}

// Against a real Redis.

fn store(prefix: &str) -> Arc<Store> {
    let spec = StoreSpec {
        url: Secret(b"redis://127.0.0.1:6379".to_vec()),
        url_env: "REDIS_URL".to_owned(),
        timeout: Duration::from_millis(250),
        connect_timeout: Duration::from_millis(500),
        breaker_failures: 5,
        breaker_cooldown: Duration::from_secs(1),
        key_prefix: prefix.to_owned(),
    };
    Arc::new(Store::new(&spec, Arc::new(Metrics::new())).unwrap())
}

fn prefix(test: &str) -> String {
    format!(
        "gatehouse-unit-{test}-{}-{}:",
        std::process::id(),
        super::now()
    )
}

async fn redis_cmd<T: redis::FromRedisValue>(store: &Store, cmd: redis::Cmd) -> T {
    store
        .call_within("test", Duration::from_secs(2), |mut c| async move {
            cmd.query_async(&mut c).await
        })
        .await
        .expect("is Redis running at 127.0.0.1:6379? (apt-get install redis-server)")
}

fn horizons(retention: &str) -> Horizons {
    Horizons::for_config(&config(
        &format!("default_access: public\nrevocation: {{ retention: {retention} }}\n"),
        Env::default(),
    ))
}

#[tokio::test]
async fn a_write_carries_its_fields_and_expiry_and_the_key_expires_with_it() {
    let prefix = prefix("write");
    let store = store(&prefix);
    let now = super::now();
    let e = stream::append(
        &store,
        Selector::Sub {
            sub: "alice".into(),
            before: Some(now - 5),
        },
        "  stolen laptop ",
        &horizons("1h"),
        now,
    )
    .await
    .expect("is Redis running at 127.0.0.1:6379? (apt-get install redis-server)");
    assert_eq!(e.expires_at, now - 5 + 3600);
    assert_eq!(e.reason, "stolen laptop");
    let key = format!("{prefix}revocations");
    let fields: Vec<(String, Vec<(String, String)>)> = redis_cmd(
        &store,
        redis::cmd("XRANGE").arg(&key).arg("-").arg("+").clone(),
    )
    .await;
    assert_eq!(fields.len(), 1);
    assert_eq!(fields[0].0, e.id);
    let map: std::collections::HashMap<_, _> = fields[0].1.iter().cloned().collect();
    assert_eq!(map["kind"], "sub");
    assert_eq!(map["value"], "alice");
    assert_eq!(map["before"], (now - 5).to_string());
    assert_eq!(map["expires"], e.expires_at.to_string());
    assert_eq!(map["reason"], "stolen laptop");
    let ttl: i64 = redis_cmd(&store, redis::cmd("PTTL").arg(&key).clone()).await;
    assert!(ttl > 3_500_000 && ttl <= 3_601_000, "{ttl}");
    // A longer-lived entry raises the key's expiry; a shorter one does not lower it.
    stream::append(&store, sub("bob"), "", &horizons("2h"), now)
        .await
        .unwrap();
    stream::append(&store, sub("carol"), "", &horizons("1m"), now)
        .await
        .unwrap();
    let ttl: i64 = redis_cmd(&store, redis::cmd("PTTL").arg(&key).clone()).await;
    assert!(ttl > 7_100_000, "{ttl}");
    let all = stream::read_all(&store, now).await.unwrap();
    assert_eq!(all.len(), 3);
    let _: i64 = redis_cmd(&store, redis::cmd("DEL").arg(&key).clone()).await;
}

#[tokio::test]
async fn writes_trim_what_can_no_longer_matter() {
    let prefix = prefix("trim");
    let store = store(&prefix);
    let key = format!("{prefix}revocations");
    let h = horizons("1s");
    let then = super::now() - 3600;
    // Written "an hour ago" by the clock in the entry: already expired.
    for i in 0..5 {
        let _: String = redis_cmd(
            &store,
            redis::cmd("XADD")
                .arg(&key)
                .arg(format!("{}-{i}", then * 1000))
                .arg("kind")
                .arg("sub")
                .arg("value")
                .arg("old")
                .arg("at")
                .arg(then)
                .arg("expires")
                .arg(then + 1)
                .clone(),
        )
        .await;
    }
    stream::append(&store, sub("new"), "", &h, super::now())
        .await
        .unwrap();
    let len: i64 = redis_cmd(&store, redis::cmd("XLEN").arg(&key).clone()).await;
    assert_eq!(len, 1, "entries older than the window are trimmed on write");
    let _: i64 = redis_cmd(&store, redis::cmd("DEL").arg(&key).clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_loads_follows_and_resumes_after_its_last_id() {
    let prefix = prefix("follow");
    let writer = store(&prefix);
    let h = horizons("1h");
    let now = super::now();
    let first = stream::append(&writer, sub("early"), "", &h, now)
        .await
        .expect("is Redis running at 127.0.0.1:6379? (apt-get install redis-server)");
    let list = Revocations::new(store(&prefix), Arc::new(Metrics::new()));
    list.start();
    assert!(list.wait_synced(Duration::from_secs(5)).await);
    assert_eq!(list.len(), 1, "loaded at start");
    assert!(list.is_following());
    let second = stream::append(&writer, Selector::Jti("j1".into()), "", &h, now)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    while list.len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "applied within a second"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        list.last_id().map(|id| id.to_string()),
        Some(second.id.clone())
    );
    let listed: Vec<String> = list.list(0).into_iter().map(|e| e.id).collect();
    assert_eq!(listed, vec![second.id, first.id], "newest first");
    list.stop();
    let key = format!("{prefix}revocations");
    let _: i64 = redis_cmd(&writer, redis::cmd("DEL").arg(&key).clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_evicts_the_cached_sessions_it_matches() {
    use crate::common::jwks_server::JwksServer;
    use crate::config::{SessionBackend, SessionSpec};
    use crate::session::SessionStore;
    let stub = JwksServer::start(json!({
        "session": {"id": "sess-1", "token": "t", "userId": "erin",
                    "expiresAt": "2099-01-01T00:00:00.000Z"},
        "user": {"id": "erin", "email": "erin@example.com", "name": "Erin"},
    }))
    .await;
    let store = SessionStore::new(&SessionSpec {
        backend: SessionBackend::Introspect(stub.url("/api/auth/get-session")),
        cache_ttl: Duration::from_secs(60),
        cache_max_entries: 100,
        secret: None,
        check_banned: false,
    })
    .unwrap();
    let lookup = |token: &'static str| {
        let store = &store;
        async move {
            store
                .lookup(token, SourceKind::Cookie, &http::HeaderMap::new())
                .await
                .unwrap();
            store.backend_calls()
        }
    };
    assert_eq!(lookup("token-a").await, 1);
    assert_eq!(lookup("token-a").await, 1, "cached");
    assert_eq!(store.forget(&[sub("someone-else")]).await, 0);
    assert_eq!(lookup("token-a").await, 1, "still cached");
    let by_token = Selector::session_token("token-a.sig").unwrap();
    assert_eq!(store.forget(&[by_token]).await, 1);
    assert_eq!(lookup("token-a").await, 2, "asked again");
    assert_eq!(lookup("token-b").await, 3);
    assert_eq!(store.forget(&[Selector::Sid("sess-1".into())]).await, 2);
    assert_eq!(lookup("token-b").await, 4);
    assert_eq!(store.forget(&[sub("erin")]).await, 1);
    store.forget_all();
    assert_eq!(lookup("token-b").await, 5);
}

#[test]
fn a_cached_token_found_clear_is_checked_again_once_the_list_changes() {
    use crate::verify::{KeyRef, Verified};
    let list = Revocations::offline(Arc::new(Metrics::new()));
    let verified = Verified {
        identity: jwt_identity("idp", json!({"sub": "alice", "iat": 5})),
        exp: None,
        key: KeyRef {
            provider: 0,
            key_id: 0,
        },
        headers: Default::default(),
        revocations: Default::default(),
    };
    list.insert("sub", ["bob".to_owned()], i64::MAX);
    assert!(list.check_cached(&verified, &jwt(), &[]).is_ok());
    assert!(
        list.check_cached(&verified, &jwt(), &[]).is_ok(),
        "memoized"
    );
    list.insert("sub", ["alice".to_owned()], i64::MAX);
    assert!(matches!(
        list.check_cached(&verified, &jwt(), &[]),
        Err(AuthError::Revoked(RevokedKind::Subject))
    ));
    assert!(
        list.check_cached(&verified, &jwt(), &[]).is_err(),
        "a revoked token is never memoized as clear"
    );
    // Expiry changes the list too: the token is clear again.
    list.prune(i64::MAX);
    assert!(list.check_cached(&verified, &jwt(), &[]).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_rebuilt_with_older_ids_is_read_again_from_the_start() {
    let prefix = prefix("rebuilt");
    let writer = store(&prefix);
    let key = format!("{prefix}revocations");
    let far = super::now() + 3600;
    // An entry from a Redis whose clock was far ahead.
    let _: String = redis_cmd(
        &writer,
        redis::cmd("XADD")
            .arg(&key)
            .arg("99999999999999-0")
            .arg("kind")
            .arg("sub")
            .arg("value")
            .arg("ahead")
            .arg("at")
            .arg(super::now())
            .arg("expires")
            .arg(far)
            .clone(),
    )
    .await;
    let list = Revocations::new(store(&prefix), Arc::new(Metrics::new()));
    list.start();
    assert!(list.wait_synced(Duration::from_secs(5)).await);
    assert_eq!(list.len(), 1);
    // The stream is rebuilt by a Redis with a sane clock: older ids.
    let _: i64 = redis_cmd(&writer, redis::cmd("DEL").arg(&key).clone()).await;
    stream::append(&writer, sub("behind"), "", &horizons("1h"), super::now())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    while list.len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the entry with an older id was never read"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    list.stop();
    let _: i64 = redis_cmd(&writer, redis::cmd("DEL").arg(&key).clone()).await;
}
