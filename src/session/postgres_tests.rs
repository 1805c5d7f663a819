//! Sessions read straight from Better Auth's own Postgres tables
//! (`session.postgres`), created by Better Auth's migration in a database
//! of the test's own on the shared server at 127.0.0.1:5432.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::betterauth::{BetterAuth, BetterAuthOpts, TestDb, cookie_value};
use common::tcp_proxy::TcpProxy;
use gatehouse::config::{Secret, SessionBackend, SessionSpec};
use gatehouse::error::{AuthError, SessionKind};
use gatehouse::extract::SourceKind;
use gatehouse::session::SessionStore;
use http::HeaderMap;

const PG: &str = "127.0.0.1:5432";

fn store(url: &str, ttl: Duration, max_connections: usize, secret: &str) -> SessionStore {
    SessionStore::new(&SessionSpec {
        backend: SessionBackend::Postgres {
            url: Secret(url.as_bytes().to_vec()),
            max_connections,
        },
        cache_ttl: ttl,
        cache_max_entries: 1000,
        secret: Some(Secret(secret.as_bytes().to_vec())),
        check_banned: true,
    })
    .unwrap()
}

fn issuer(db: &TestDb) -> BetterAuth {
    BetterAuth::start(BetterAuthOpts {
        database_url: Some(db.url.clone()),
        ..BetterAuthOpts::default()
    })
}

fn raw_token(value: &str) -> &str {
    value.split_once('.').unwrap().0
}

/// Rows of `sql` (one text column) run with psql in `db`.
fn psql_rows(db: &str, sql: &str) -> Vec<String> {
    let out = std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            db,
            "-tA",
            "-c",
            sql,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn valid_expired_and_signed_out_sessions() {
    let db = TestDb::create();
    let ba = issuer(&db);
    let ann = ba.sign_up("ann@example.com", "correct-horse-9", "Ann Example");
    let bo_user = ba.sign_up("bo@example.com", "correct-horse-9", "Bo");
    let ann_value = cookie_value(&ann.cookie);
    let bo_value = cookie_value(&bo_user.cookie);
    // cache_ttl 0: every lookup reads the tables.
    let store = store(&db.url, Duration::ZERO, 4, &ba.secret);

    let id = store
        .lookup(&ann_value, SourceKind::Cookie, &HeaderMap::new())
        .await
        .unwrap();
    assert_eq!(&*id.provider, "session");
    assert_eq!(id.sub(), Some(ann.user_id.as_str()));
    assert_eq!(id.claims["email"], "ann@example.com");
    assert_eq!(id.claims["name"], "Ann Example");
    assert_eq!(id.claims["email_verified"], false);
    let session_id = psql_rows(
        &db.name,
        &format!(
            "SELECT id FROM \"session\" WHERE token = '{}'",
            raw_token(&ann_value)
        ),
    );
    assert_eq!(id.claims["session_id"], session_id[0].as_str());
    // The session's "createdAt" is its iat (revocations before a time).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let iat = id.claims["iat"].as_u64().expect("iat from createdAt");
    assert!(iat <= now && iat + 600 > now, "{iat} vs {now}");

    // Expired: "expiresAt" in the past.
    db.exec(&format!(
        "UPDATE \"session\" SET \"expiresAt\" = now() - interval '1 minute' WHERE token = '{}'",
        raw_token(&ann_value)
    ));
    let err = store
        .lookup(&ann_value, SourceKind::Cookie, &HeaderMap::new())
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::Session(SessionKind::Expired));

    // Deleted: signed out through Better Auth.
    store
        .lookup(&bo_value, SourceKind::Bearer, &HeaderMap::new())
        .await
        .unwrap();
    ba.sign_out(&bo_user.cookie);
    let err = store
        .lookup(&bo_value, SourceKind::Bearer, &HeaderMap::new())
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::Session(SessionKind::Unknown));
    assert_eq!(err.http_status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_going_away_is_503_and_recovery_is_automatic() {
    let db = TestDb::create();
    let ba = issuer(&db);
    let user = ba.sign_up("cy@example.com", "correct-horse-9", "Cy");
    let value = cookie_value(&user.cookie);
    let proxy = TcpProxy::start(PG.parse::<SocketAddr>().unwrap());
    let store = store(&db.url_via(proxy.addr), Duration::ZERO, 2, &ba.secret);

    store
        .lookup(&value, SourceKind::Cookie, &HeaderMap::new())
        .await
        .unwrap();

    proxy.cut();
    for _ in 0..3 {
        let err = store
            .lookup(&value, SourceKind::Cookie, &HeaderMap::new())
            .await
            .unwrap_err();
        assert_eq!(err, AuthError::SessionUnavailable);
        assert_eq!(err.http_status(), 503);
    }

    proxy.restore();
    let back = Instant::now();
    let id = loop {
        match store
            .lookup(&value, SourceKind::Cookie, &HeaderMap::new())
            .await
        {
            Ok(id) => break id,
            Err(e) => {
                assert_eq!(e, AuthError::SessionUnavailable);
                assert!(
                    back.elapsed() < Duration::from_secs(10),
                    "no recovery after Postgres came back"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(id.sub(), Some(user.user_id.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pool_is_bounded() {
    let db = TestDb::create();
    let ba = issuer(&db);
    let mut values = Vec::new();
    for i in 0..20 {
        let u = ba.sign_up(&format!("u{i}@example.com"), "correct-horse-9", "U");
        values.push(cookie_value(&u.cookie));
    }
    let store = Arc::new(store(&db.url, Duration::ZERO, 2, &ba.secret));
    let mut tasks = Vec::new();
    for _ in 0..5 {
        for v in &values {
            let store = store.clone();
            let v = v.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .lookup(&v, SourceKind::Cookie, &HeaderMap::new())
                    .await
            }));
        }
    }
    let count_sql = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND application_name = 'gatehouse'",
        db.name
    );
    let mut peak = 0;
    while !tasks.iter().all(|t| t.is_finished()) {
        let n: usize = psql_rows("test", &count_sql)[0].parse().unwrap();
        peak = peak.max(n);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let after: usize = psql_rows("test", &count_sql)[0].parse().unwrap();
    assert!(peak <= 2, "peak connections {peak}");
    assert!((1..=2).contains(&after), "pooled connections {after}");
    // Concurrent lookups of one token share a query; distinct ones do not.
    assert!((20..=100).contains(&store.backend_calls()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_lookups_of_one_token_make_one_query() {
    let db = TestDb::create();
    let ba = issuer(&db);
    let user = ba.sign_up("gus@example.com", "correct-horse-9", "Gus");
    let value = cookie_value(&user.cookie);
    let store = Arc::new(store(&db.url, Duration::from_secs(30), 4, &ba.secret));
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
        assert_eq!(t.await.unwrap().unwrap().sub(), Some(user.user_id.as_str()));
    }
    assert_eq!(store.backend_calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_query_is_prepared_once_per_connection() {
    let db = TestDb::create();
    let ba = issuer(&db);
    let mut values = Vec::new();
    for i in 0..3 {
        let u = ba.sign_up(&format!("p{i}@example.com"), "correct-horse-9", "P");
        values.push(cookie_value(&u.cookie));
    }
    let proxy = TcpProxy::start_postgres(PG.parse::<SocketAddr>().unwrap());
    // One connection, no cache: every lookup runs the query on it.
    let store = store(&db.url_via(proxy.addr), Duration::ZERO, 1, &ba.secret);
    for _ in 0..10 {
        for v in &values {
            store
                .lookup(v, SourceKind::Cookie, &HeaderMap::new())
                .await
                .unwrap();
        }
    }
    assert_eq!(store.backend_calls(), 30);
    assert_eq!(proxy.forwarded(), 1, "one pooled connection");
    assert_eq!(proxy.parses(), 1, "statement prepared more than once");
}
