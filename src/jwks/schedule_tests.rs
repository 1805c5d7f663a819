//! Refresh timing with paused Tokio time (docs/configuration.md, providers): refresh_interval after
//! a success, Cache-Control max-age clamped to [30 s, 24 h], exponential
//! backoff from 1 s capped at min(refresh_interval, 30 s), last good keys
//! kept while failing.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::tokens::{TestKey, claims, jwks, jwks_provider};
use gatehouse::jwks::fetch::{FetchError, FetchFuture, Fetched, Source};
use gatehouse::telemetry::Metrics;
use gatehouse::verify::Verifier;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const ISS: &str = "https://auth.example.test";

/// A scripted answer: Ok(max-age seconds) serves the document, Err fails.
type Step = Result<Option<u64>, ()>;

#[derive(Debug)]
struct Scripted {
    doc: Vec<u8>,
    steps: Mutex<VecDeque<Step>>,
    /// Answer once the script runs out.
    fallback: Step,
    calls: Mutex<Vec<Instant>>,
}

impl Source for Scripted {
    fn fetch(&self) -> FetchFuture<'_> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(Instant::now());
            let step = self
                .steps
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(self.fallback);
            match step {
                Ok(max_age) => Ok(Fetched {
                    body: self.doc.clone(),
                    max_age: max_age.map(Duration::from_secs),
                    issuer: None,
                }),
                Err(()) => Err(FetchError::Status(500)),
            }
        })
    }

    fn describe(&self) -> String {
        "scripted".into()
    }
}

struct Run {
    verifier: Arc<Verifier>,
    source: Arc<Scripted>,
    start: Instant,
    _stop: CancellationToken,
}

impl Run {
    fn offsets(&self) -> Vec<u64> {
        self.source
            .calls
            .lock()
            .unwrap()
            .iter()
            .map(|t| t.duration_since(self.start).as_secs())
            .collect()
    }
}

fn run(key: &TestKey, refresh: u64, steps: Vec<Step>, fallback: Step) -> Run {
    let mut spec = jwks_provider("ba", ISS, "http://127.0.0.1:9/unused");
    spec.refresh_interval = Duration::from_secs(refresh);
    let mut v = Verifier::new(&[spec], Arc::new(Metrics::new())).unwrap();
    let source = Arc::new(Scripted {
        doc: jwks(&[key]).to_string().into_bytes(),
        steps: Mutex::new(steps.into()),
        fallback,
        calls: Mutex::new(Vec::new()),
    });
    assert!(v.set_source(0, source.clone()));
    let stop = CancellationToken::new();
    let start = Instant::now();
    v.start(stop.clone());
    Run {
        verifier: Arc::new(v),
        source,
        start,
        _stop: stop,
    }
}

#[tokio::test(start_paused = true)]
async fn refresh_interval_without_cache_control() {
    let k = TestKey::generate("EdDSA", "k1");
    let r = run(&k, 300, vec![], Ok(None));
    tokio::time::sleep(Duration::from_secs(301)).await;
    assert_eq!(r.offsets(), [0, 300]);
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(r.offsets(), [0, 300, 600]);
}

#[tokio::test(start_paused = true)]
async fn max_age_is_clamped() {
    let k = TestKey::generate("EdDSA", "k1");
    // 5 s → 30 s; 120 s as is; 10 days → 24 h.
    let r = run(
        &k,
        300,
        vec![Ok(Some(5)), Ok(Some(120)), Ok(Some(864_000))],
        Ok(None),
    );
    tokio::time::sleep(Duration::from_secs(30 + 120 + 86_400 + 1)).await;
    assert_eq!(r.offsets(), [0, 30, 150, 150 + 86_400]);
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_and_keep_last_good_keys() {
    let k = TestKey::generate("EdDSA", "k1");
    let steps = vec![Err(()); 8];
    let r = run(&k, 600, steps, Ok(None));
    // 1, 2, 4, 8, 16, then capped at 30.
    tokio::time::sleep(Duration::from_secs(100)).await;
    assert!(!r.verifier.is_ready(), "eight failures so far");
    tokio::time::sleep(Duration::from_secs(100)).await;
    let offs = r.offsets();
    assert_eq!(&offs[..9], [0, 1, 3, 7, 15, 31, 61, 91, 121]);
    // The 9th call succeeded; the next is a full refresh_interval later.
    assert_eq!(offs.len(), 9);
    assert!(r.verifier.is_ready());

    // Now failing again after a success: keys stay.
    r.source.steps.lock().unwrap().extend(vec![Err(()); 100]);
    tokio::time::sleep(Duration::from_secs(700)).await;
    assert!(r.verifier.is_ready());
    let ok = r
        .verifier
        .verify(&k.token(&claims(ISS, "api", "u", 300)))
        .await;
    assert!(ok.is_ok(), "stale keys still verify: {ok:?}");
}

#[tokio::test(start_paused = true)]
async fn backoff_is_capped_by_short_refresh_interval() {
    let k = TestKey::generate("EdDSA", "k1");
    let r = run(&k, 5, vec![Err(()); 6], Ok(None));
    tokio::time::sleep(Duration::from_secs(30)).await;
    // 1, 2, 4, then capped at 5; success at 22, then every 5 s.
    assert_eq!(&r.offsets()[..8], [0, 1, 3, 7, 12, 17, 22, 27]);
}

#[tokio::test(start_paused = true)]
async fn unknown_kid_refetch_counts_background_fetches() {
    let k = TestKey::generate("EdDSA", "k1");
    let r = run(&k, 3600, vec![], Ok(None));
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(r.offsets(), [0]);
    let stranger = TestKey::generate("EdDSA", "k9");
    let c = claims(ISS, "api", "u", 300);
    // 10 s after the background fetch: inside the 30 s cooldown.
    assert!(r.verifier.verify(&stranger.token(&c)).await.is_err());
    assert_eq!(r.offsets(), [0]);
    tokio::time::sleep(Duration::from_secs(21)).await;
    for _ in 0..20 {
        assert!(r.verifier.verify(&stranger.token(&c)).await.is_err());
    }
    assert_eq!(r.offsets(), [0, 31]);
}
