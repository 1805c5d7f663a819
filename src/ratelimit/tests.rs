//! GCRA against a real Redis (shared quota, hashed and expiring keys, one
//! script call for several policies) and the three `on_store_error`
//! behaviours against a Redis that does not answer.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{Caller, RateLimiter, key_digest, subject_key};
use crate::config::{KeyPart, OnStoreError, RateLimitSpec, RatePolicy, Secret, StoreSpec};
use crate::error::AuthError;
use crate::store::Store;
use crate::telemetry::Metrics;

fn unique_prefix(tag: &str) -> String {
    format!(
        "gh-test:{tag}:{}:{}:",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn store(url: &str, prefix: &str, metrics: &Arc<Metrics>) -> Arc<Store> {
    let spec = StoreSpec {
        url: Secret(url.as_bytes().to_vec()),
        url_env: "REDIS_URL".to_owned(),
        timeout: Duration::from_millis(200),
        connect_timeout: Duration::from_millis(200),
        breaker_failures: 3,
        breaker_cooldown: Duration::from_secs(30),
        key_prefix: prefix.to_owned(),
    };
    Arc::new(Store::new(&spec, metrics.clone()).unwrap())
}

fn policy(name: &str, key: Vec<KeyPart>, count: u64, period: Duration, burst: u64) -> RatePolicy {
    RatePolicy {
        name: Arc::from(name),
        key,
        count,
        period,
        burst,
    }
}

fn limiter(
    policies: Vec<RatePolicy>,
    on_store_error: OnStoreError,
    store: Option<Arc<Store>>,
    metrics: &Arc<Metrics>,
) -> RateLimiter {
    let spec = RateLimitSpec {
        on_store_error,
        policies,
    };
    RateLimiter::new(&spec, store, metrics.clone())
}

fn claims(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn caller(c: &Map<String, Value>) -> Caller<'_> {
    Caller {
        claims: Some(c),
        client_ip: None,
    }
}

const REDIS: &str = "redis://127.0.0.1:6379";

fn retry_after(e: &AuthError) -> u64 {
    match e {
        AuthError::RateLimited(d) => d.retry_after_secs,
        other => panic!("expected rate_limited, got {other:?}"),
    }
}

#[tokio::test]
async fn two_replicas_share_one_burst() {
    let metrics = Arc::new(Metrics::new());
    let prefix = unique_prefix("share");
    let per_user = || {
        policy(
            "per-user",
            vec![KeyPart::Claim("sub".into())],
            60,
            Duration::from_secs(60),
            5,
        )
    };
    // Two generations with their own connections: two replicas.
    let a = limiter(
        vec![per_user()],
        OnStoreError::Deny,
        Some(store(REDIS, &prefix, &metrics)),
        &metrics,
    );
    let b = limiter(
        vec![per_user()],
        OnStoreError::Deny,
        Some(store(REDIS, &prefix, &metrics)),
        &metrics,
    );
    let alice = claims(json!({"sub": "alice"}));
    let mut admitted = 0;
    let mut refusals = Vec::new();
    for i in 0..12 {
        let replica = if i % 2 == 0 { &a } else { &b };
        match replica.check(&[0], caller(&alice)).await {
            Ok(()) => admitted += 1,
            Err(e) => refusals.push(e),
        }
    }
    assert_eq!(admitted, 5, "exactly the burst, across both replicas");
    assert_eq!(refusals.len(), 7);
    for e in &refusals {
        assert_eq!(e.http_status(), 429);
        // One request per second sustained: the next one fits within 1s.
        assert_eq!(retry_after(e), 1, "{e:?}");
    }
    // Another caller has its own quota.
    let bob = claims(json!({"sub": "bob"}));
    assert!(a.check(&[0], caller(&bob)).await.is_ok());
    assert_eq!(
        metrics.rate_limit_local.get(),
        0,
        "Redis answered every time"
    );
}

#[tokio::test]
async fn keys_are_digests_and_expire() {
    let metrics = Arc::new(Metrics::new());
    let prefix = unique_prefix("keys");
    let store = store(REDIS, &prefix, &metrics);
    let l = limiter(
        vec![policy(
            "per-user",
            vec![KeyPart::Claim("email".into())],
            10,
            Duration::from_secs(1),
            10,
        )],
        OnStoreError::Deny,
        Some(store.clone()),
        &metrics,
    );
    let c = claims(json!({"email": "carol@example.com"}));
    l.check(&[0], caller(&c)).await.unwrap();
    let pattern = format!("{prefix}*");
    let keys: Vec<String> = store
        .call("test", |mut conn| async move {
            redis::cmd("KEYS")
                .arg(&pattern)
                .query_async(&mut conn)
                .await
        })
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let key = keys[0].clone();
    assert!(
        !key.contains("carol"),
        "the claim value reached Redis: {key}"
    );
    assert!(key.starts_with(&format!("{prefix}rl:per-user:")), "{key}");
    let ttl: i64 = store
        .call("test", |mut conn| async move {
            redis::cmd("PTTL").arg(&key).query_async(&mut conn).await
        })
        .await
        .unwrap();
    // One request of ten per second: whole again after 100 ms.
    assert!((1..=100).contains(&ttl), "PTTL {ttl}");
}

#[tokio::test]
async fn a_refusing_policy_spends_nothing_from_the_others() {
    let metrics = Arc::new(Metrics::new());
    let prefix = unique_prefix("multi");
    let l = limiter(
        vec![
            policy(
                "per-org",
                vec![KeyPart::Claim("org".into())],
                100,
                Duration::from_secs(60),
                100,
            ),
            policy(
                "per-user",
                vec![KeyPart::Claim("sub".into())],
                1,
                Duration::from_secs(60),
                2,
            ),
        ],
        OnStoreError::Deny,
        Some(store(REDIS, &prefix, &metrics)),
        &metrics,
    );
    let dave = claims(json!({"sub": "dave", "org": "acme"}));
    let erin = claims(json!({"sub": "erin", "org": "acme"}));
    assert!(l.check(&[0, 1], caller(&dave)).await.is_ok());
    assert!(l.check(&[0, 1], caller(&dave)).await.is_ok());
    for _ in 0..20 {
        let e = l.check(&[0, 1], caller(&dave)).await.unwrap_err();
        match &e {
            AuthError::RateLimited(d) => {
                assert_eq!(&*d.policy, "per-user");
                assert_eq!(d.quota, 2);
                assert_eq!(d.window_secs, 60);
                assert!(d.retry_after_secs > 1 && d.retry_after_secs <= 60, "{d:?}");
            }
            other => panic!("{other:?}"),
        }
    }
    // Dave's 20 refusals spent nothing of acme's 100: 98 remain.
    let mut admitted = 0;
    for i in 0..120 {
        let who = claims(json!({"sub": format!("user{i}"), "org": "acme"}));
        if l.check(&[0, 1], caller(&who)).await.is_ok() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 98);
    assert!(l.check(&[0, 1], caller(&erin)).await.is_err());
}

#[tokio::test]
async fn a_policy_whose_claim_is_missing_does_not_apply() {
    let metrics = Arc::new(Metrics::new());
    let l = limiter(
        vec![policy(
            "per-tenant",
            vec![KeyPart::Claim("tenant".into())],
            1,
            Duration::from_secs(60),
            1,
        )],
        OnStoreError::Deny,
        Some(store(REDIS, &unique_prefix("missing"), &metrics)),
        &metrics,
    );
    let no_tenant = claims(json!({"sub": "frank"}));
    for _ in 0..5 {
        assert!(l.check(&[0], caller(&no_tenant)).await.is_ok());
    }
    let anonymous = Caller {
        claims: None,
        client_ip: None,
    };
    assert!(l.check(&[0], anonymous).await.is_ok());
}

#[test]
fn an_unknown_client_address_is_one_shared_caller() {
    let p = policy(
        "per-ip",
        vec![KeyPart::ClientIp],
        1,
        Duration::from_secs(1),
        1,
    );
    let none = Caller {
        claims: None,
        client_ip: None,
    };
    let v4: IpAddr = "192.0.2.7".parse().unwrap();
    let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
    let other: IpAddr = "192.0.2.8".parse().unwrap();
    let with = |ip| Caller {
        claims: None,
        client_ip: Some(ip),
    };
    assert!(
        key_digest(&p, none).is_some(),
        "no bypass without an address"
    );
    assert_eq!(key_digest(&p, none), key_digest(&p, none));
    assert_eq!(key_digest(&p, with(v4)), key_digest(&p, with(mapped)));
    assert_ne!(key_digest(&p, with(v4)), key_digest(&p, with(other)));
    assert_ne!(key_digest(&p, with(v4)), key_digest(&p, none));
}

#[test]
fn key_parts_cannot_run_into_each_other() {
    let p = policy(
        "two",
        vec![KeyPart::Claim("a".into()), KeyPart::Claim("b".into())],
        1,
        Duration::from_secs(1),
        1,
    );
    let x = claims(json!({"a": "ab", "b": "c"}));
    let y = claims(json!({"a": "a", "b": "bc"}));
    assert_ne!(key_digest(&p, caller(&x)), key_digest(&p, caller(&y)));
    // A number and the string of its digits are different callers.
    let p1 = policy(
        "n",
        vec![KeyPart::Claim("a".into())],
        1,
        Duration::from_secs(1),
        1,
    );
    let n = claims(json!({"a": 7}));
    let s = claims(json!({"a": "7"}));
    assert_ne!(key_digest(&p1, caller(&n)), key_digest(&p1, caller(&s)));
}

#[test]
fn the_subject_key_is_a_stable_digest() {
    let k = subject_key("alice");
    assert_eq!(k.len(), 32);
    assert_eq!(k, subject_key("alice"));
    assert_ne!(k, subject_key("alice2"));
    assert!(!k.contains("alice"));
}

/// A Redis that never answers: a listener that never accepts.
fn dead_redis() -> (std::net::TcpListener, String) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", l.local_addr().unwrap());
    (l, url)
}

#[tokio::test]
async fn without_redis_local_limits_per_replica() {
    let (_keep, url) = dead_redis();
    let metrics = Arc::new(Metrics::new());
    let l = limiter(
        vec![policy(
            "per-user",
            vec![KeyPart::Claim("sub".into())],
            1,
            Duration::from_secs(60),
            3,
        )],
        OnStoreError::Local,
        Some(store(&url, "gh-dead:", &metrics)),
        &metrics,
    );
    let g = claims(json!({"sub": "grace"}));
    let started = std::time::Instant::now();
    let mut admitted = 0;
    let mut last = None;
    for _ in 0..10 {
        match l.check(&[0], caller(&g)).await {
            Ok(()) => admitted += 1,
            Err(e) => last = Some(e),
        }
    }
    assert_eq!(admitted, 3, "the same burst, counted locally");
    let e = last.unwrap();
    assert!(retry_after(&e) > 1, "{e:?}");
    assert_eq!(metrics.rate_limit_local.get(), 10);
    // Three slow calls open the breaker; the rest fail at once.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn without_redis_allow_skips_and_deny_refuses_with_503() {
    let (_keep, url) = dead_redis();
    let metrics = Arc::new(Metrics::new());
    let tight = || {
        vec![policy(
            "tight",
            vec![KeyPart::Claim("sub".into())],
            1,
            Duration::from_secs(60),
            1,
        )]
    };
    let h = claims(json!({"sub": "heidi"}));
    let allow = limiter(
        tight(),
        OnStoreError::Allow,
        Some(store(&url, "gh-dead:", &metrics)),
        &metrics,
    );
    for _ in 0..5 {
        assert!(allow.check(&[0], caller(&h)).await.is_ok());
    }
    let deny = limiter(
        tight(),
        OnStoreError::Deny,
        Some(store(&url, "gh-dead:", &metrics)),
        &metrics,
    );
    let e = deny.check(&[0], caller(&h)).await.unwrap_err();
    assert_eq!(e, AuthError::RateLimitUnavailable);
    assert_eq!(e.http_status(), 503);
    assert_eq!(e.code().as_str(), "rate_limit_unavailable");
}

#[test]
fn the_denial_carries_retry_after_and_the_ietf_fields() {
    let e = super::denial(
        &policy("per-user", vec![], 600, Duration::from_secs(60), 100),
        3,
        12,
    );
    let deny = e.deny_response();
    assert_eq!(deny.status.as_u16(), 429);
    assert_eq!(deny.grpc_code, 8, "RESOURCE_EXHAUSTED");
    let get = |n: &str| {
        deny.headers
            .iter()
            .find(|(k, _)| k.as_str() == n)
            .map(|(_, v)| v.to_str().unwrap().to_owned())
    };
    assert_eq!(get("retry-after").as_deref(), Some("3"));
    assert_eq!(get("ratelimit").as_deref(), Some("\"per-user\";r=0;t=12"));
    assert_eq!(
        get("ratelimit-policy").as_deref(),
        Some("\"per-user\";q=100;w=60")
    );
    assert_eq!(get("x-gatehouse-error").as_deref(), Some("rate_limited"));
    assert!(deny.body.contains("\"error\":\"rate_limited\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_checks_batched_together_still_admit_exactly_the_burst() {
    let metrics = Arc::new(Metrics::new());
    let l = Arc::new(limiter(
        vec![policy(
            "per-user",
            vec![KeyPart::Claim("sub".into())],
            1,
            Duration::from_secs(3600),
            50,
        )],
        OnStoreError::Deny,
        Some(store(REDIS, &unique_prefix("batch"), &metrics)),
        &metrics,
    ));
    // 400 checks of 4 callers at once: batches mix callers and repeat
    // them; each caller still gets exactly its 50.
    let tasks: Vec<_> = (0..400)
        .map(|i| {
            let l = l.clone();
            tokio::spawn(async move {
                let c = claims(json!({ "sub": format!("caller{}", i % 4) }));
                (i % 4, l.check(&[0], caller(&c)).await.is_ok())
            })
        })
        .collect();
    let mut admitted = [0usize; 4];
    for t in tasks {
        let (who, ok) = t.await.unwrap();
        if ok {
            admitted[who] += 1;
        }
    }
    assert_eq!(admitted, [50, 50, 50, 50]);
    let text = metrics.encode(&[]);
    let calls = text
        .lines()
        .find(|l| l.starts_with("gatehouse_store_duration_seconds_count{op=\"rate_limit\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap();
    assert!(
        calls < 400.0,
        "no batching: {calls} script calls for 400 checks"
    );
}
