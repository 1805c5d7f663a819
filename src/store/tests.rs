//! The breaker on its own, and the store against a real Redis and against
//! an address where nothing answers.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use super::{Breaker, Store, StoreError};
use crate::config::{Secret, StoreSpec};
use crate::telemetry::Metrics;

fn spec(url: &str, failures: u32, cooldown: Duration) -> StoreSpec {
    StoreSpec {
        url: Secret(url.as_bytes().to_vec()),
        url_env: "REDIS_URL".to_owned(),
        timeout: Duration::from_millis(25),
        connect_timeout: Duration::from_millis(200),
        breaker_failures: failures,
        breaker_cooldown: cooldown,
        key_prefix: "gatehouse-test:".to_owned(),
    }
}

#[test]
fn the_breaker_opens_after_the_threshold_and_lets_one_probe_through() {
    let b = Breaker::new(3, Duration::from_millis(40));
    assert!(b.admit());
    assert!(!b.failure());
    assert!(!b.failure());
    assert!(!b.is_open());
    assert!(b.failure(), "the third failure opens it");
    assert!(b.is_open());
    assert!(!b.admit(), "open: no call goes");
    std::thread::sleep(Duration::from_millis(60));
    assert!(b.admit(), "after the cooldown one probe goes");
    assert!(!b.admit(), "and only one");
    assert!(!b.failure(), "a failed probe keeps it open");
    assert!(b.is_open());
    assert!(!b.admit());
    std::thread::sleep(Duration::from_millis(60));
    assert!(b.admit());
    assert!(b.success(), "a successful probe closes it");
    assert!(!b.is_open());
    assert!(b.admit());
}

#[test]
fn a_success_resets_the_count() {
    let b = Breaker::new(2, Duration::from_secs(1));
    assert!(!b.failure());
    assert!(!b.success());
    assert!(!b.failure(), "the count restarted");
    assert!(b.failure());
}

#[test]
fn the_cooldown_is_jittered_within_a_quarter() {
    let d = Duration::from_millis(2000);
    let seen: Vec<Duration> = (0..200).map(|_| super::jittered(d)).collect();
    assert!(seen.iter().all(|j| *j >= Duration::from_millis(1500)));
    assert!(seen.iter().all(|j| *j <= Duration::from_millis(2500)));
    assert!(seen.iter().any(|j| *j != seen[0]), "not jittered");
}

#[tokio::test]
async fn commands_reach_a_real_redis() {
    let metrics = Arc::new(Metrics::new());
    let store = Store::new(
        &spec("redis://127.0.0.1:6379", 5, Duration::from_secs(1)),
        metrics.clone(),
    )
    .unwrap();
    let key = format!("{}ping:{}", store.key_prefix(), std::process::id());
    let got: String = store
        .call("test", |mut c| async move {
            redis::cmd("SET")
                .arg(&key)
                .arg("pong")
                .arg("PX")
                .arg(5000)
                .query_async::<()>(&mut c)
                .await?;
            redis::cmd("GET").arg(&key).query_async(&mut c).await
        })
        .await
        .expect("is Redis running at 127.0.0.1:6379? (redis-server)");
    assert_eq!(got, "pong");
    assert!(!store.is_degraded());
    let text = metrics.encode(&[]);
    assert!(
        text.contains("gatehouse_store_duration_seconds_count{op=\"test\"} 1"),
        "{text}"
    );
    assert!(text.contains("gatehouse_store_degraded 0"), "{text}");
}

#[tokio::test]
async fn a_dead_redis_fails_fast_and_opens_the_breaker() {
    // A bound listener that never accepts answers nothing: connects hang
    // in the backlog or are refused, either way within the deadline.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", silent.local_addr().unwrap());
    let metrics = Arc::new(Metrics::new());
    let store = Store::new(&spec(&url, 2, Duration::from_secs(30)), metrics.clone()).unwrap();
    for _ in 0..2 {
        let started = std::time::Instant::now();
        let err = store
            .call("test", |mut c| async move {
                redis::cmd("PING").query_async::<String>(&mut c).await
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Timeout(_) | StoreError::Redis(_)),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_millis(500), "{err}");
    }
    assert!(store.is_degraded());
    let err = store
        .call("test", |mut c| async move {
            redis::cmd("PING").query_async::<String>(&mut c).await
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Open), "{err}");
    assert!(err.to_string().contains("Redis"), "{err}");
    let text = metrics.encode(&[]);
    assert!(text.contains("gatehouse_store_degraded 1"), "{text}");
    assert!(
        text.contains("gatehouse_store_errors_total{op=\"test\",kind=\"circuit_open\"} 1"),
        "{text}"
    );
}
