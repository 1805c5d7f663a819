//! The verified-token cache with real verifications: hits until `exp`,
//! keyed by the exact token, and a hit whose key left the set no longer
//! counts (a removed key's tokens are verified again).
#![allow(clippy::unwrap_used)]

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::jwks_server::JwksServer;
use common::tokens::{TestKey, claims, jwks, jwks_provider, now};
use gatehouse::telemetry::Metrics;
use gatehouse::token_cache::{TokenCache, TokenKey};
use gatehouse::verify::Verifier;
use tokio_util::sync::CancellationToken;

const ISS: &str = "https://auth.example.test";

#[tokio::test]
async fn cached_verification_follows_its_key() {
    let k = TestKey::generate("EdDSA", "k1");
    let server = JwksServer::start(jwks(&[&k])).await;
    let mut spec = jwks_provider("ba", ISS, &server.url("/jwks"));
    spec.unknown_kid_refetch_interval = Duration::from_millis(300);
    let v = Verifier::new(&[spec], Arc::new(Metrics::new())).unwrap();
    let stop = CancellationToken::new();
    v.start(stop.clone());
    assert!(v.wait_ready(Duration::from_secs(5)).await);

    let cache = TokenCache::new(1 << 20);
    let token = k.token(&claims(ISS, "api", "u", 120));
    assert!(cache.get(&TokenKey::of(&token), now()).is_none());
    let verified = Arc::new(v.verify(&token).await.unwrap());
    cache.insert(TokenKey::of(&token), verified.clone());
    let hit = cache.get(&TokenKey::of(&token), now()).unwrap();
    assert_eq!(hit.identity, verified.identity);
    assert!(v.key_present(hit.key));
    // A different token (even one character) is a miss.
    let mut other = token.clone();
    other.push('A');
    assert!(cache.get(&TokenKey::of(&other), now()).is_none());
    // Not past exp; an expired entry is dropped when it is looked up.
    assert!(
        cache
            .get(&TokenKey::of(&token), verified.exp.unwrap())
            .is_none()
    );
    assert!(cache.get(&TokenKey::of(&token), now()).is_none());
    cache.insert(TokenKey::of(&token), verified.clone());

    // Rotate the key away: the cached entry stops counting.
    let k2 = TestKey::generate("EdDSA", "k2");
    server.set_doc(jwks(&[&k2]));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        v.verify(&k2.token(&claims(ISS, "api", "u", 60)))
            .await
            .is_ok()
    );
    let hit = cache.get(&TokenKey::of(&token), now()).unwrap();
    assert!(!v.key_present(hit.key));
    cache.invalidate(&TokenKey::of(&token));
    assert!(cache.get(&TokenKey::of(&token), now()).is_none());
    assert!(v.verify(&token).await.is_err());
}
