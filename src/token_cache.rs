//! The verified-token cache: a hot token costs a lookup, not a signature
//! check. Keyed by SHA-256 of the token (the token itself is never kept),
//! entries live until the token's `exp`, memory is bounded by an estimate
//! of each entry's size (claims included).
//!
//! The cache does not know about keys: the caller checks
//! [`crate::verify::Verifier::key_present`] on a hit, so a removed key stops
//! counting at once. Tokens without `exp` are not cached.
//!
//! Built on `quick_cache`: a lookup is one probe of a sharded hash table
//! with no bookkeeping queue, which is what a per-request cache needs. It
//! has no timers, so an entry past its `exp` is refused and dropped when it
//! is next looked up, and until then counts against the bound like any
//! other entry (eviction prefers entries that are not being hit).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use quick_cache::Weighter;
use quick_cache::sync::Cache;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::verify::Verified;

/// SHA-256 of a token: the cache key, and the source of the token's log
/// fingerprint, so a request hashes its token once.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenKey([u8; 32]);

impl TokenKey {
    /// Hashes `token`.
    pub fn of(token: &str) -> TokenKey {
        TokenKey(Sha256::digest(token.as_bytes()).into())
    }

    /// The short log tag of the token (same as [`crate::telemetry::fingerprint`]).
    pub fn fingerprint(&self) -> crate::telemetry::Fingerprint {
        crate::telemetry::Fingerprint::of_digest(&self.0)
    }
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenKey({})", self.fingerprint())
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How `token_cache.max_memory` is shared between the verified tokens
/// and the Envoy door's encoded answers for them (a quarter): together
/// they stay within the configured bound.
pub(crate) fn budget(max_bytes: u64) -> (u64, u64) {
    let answers = max_bytes / 4;
    (max_bytes - answers, answers)
}

/// A cached verification and its weight, computed once at insertion.
#[derive(Clone)]
struct Entry {
    verified: Arc<Verified>,
    weight: u32,
}

/// Reads an entry's stored weight (the cache asks while evicting).
#[derive(Clone)]
struct EntryWeight;

impl Weighter<TokenKey, Entry> for EntryWeight {
    fn weight(&self, _key: &TokenKey, entry: &Entry) -> u64 {
        u64::from(entry.weight)
    }
}

/// Rough heap size of a JSON value.
/// Heap an allocation of `len` bytes really takes (allocator rounding).
fn alloc(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        len.div_ceil(16) * 16 + 16
    }
}

/// Bytes a JSON value holds beyond its own 32-byte slot.
fn json_weight(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        Value::String(s) => alloc(s.len()),
        Value::Array(a) => alloc(a.len() * 32) + a.iter().map(json_weight).sum::<usize>(),
        Value::Object(m) => map_weight(m),
    }
}

/// An ordered JSON object: per entry a 64-byte bucket, its index slot and
/// the key's allocation, plus the values; capacity slack included.
fn map_weight(m: &serde_json::Map<String, Value>) -> usize {
    let entries: usize = m
        .iter()
        .map(|(k, v)| 64 + 16 + alloc(k.len()) + json_weight(v))
        .sum();
    64 + entries + entries / 4
}

/// What a Better Auth-shaped token weighs, for sizing the table up front.
const TYPICAL_WEIGHT: u64 = 2048;

/// Estimated bytes one cached entry keeps alive: the cache's own node and
/// bookkeeping, the shared `Verified` and its claims. Calibrated against
/// RSS growth with Better Auth-shaped tokens, so `max_memory` bounds the
/// process's memory, not just the claims.
fn weigh(value: &Verified) -> u32 {
    let claims = &value.identity.claims;
    // 320: node and bookkeeping; 256: the rendered identity headers. (The
    // Envoy door weighs its encoded answers itself.)
    let total = 576 + alloc(value.identity.provider.len()) + map_weight(claims);
    u32::try_from(total).unwrap_or(u32::MAX)
}

pub(crate) struct TokenCache {
    /// `None` when disabled (`max_bytes == 0`).
    inner: Option<Cache<TokenKey, Entry, EntryWeight>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("enabled", &self.inner.is_some())
            .finish()
    }
}

impl TokenCache {
    /// `max_bytes == 0` disables caching.
    pub(crate) fn new(max_bytes: u64) -> Self {
        let inner = (max_bytes > 0).then(|| {
            // Sized for entries of a typical weight; the bound is the bytes.
            let items = usize::try_from(max_bytes / TYPICAL_WEIGHT)
                .unwrap_or(usize::MAX)
                .clamp(64, 1 << 20);
            Cache::with_weighter(items, max_bytes, EntryWeight)
        });
        Self { inner }
    }

    /// A cached, unexpired verification of `token` (`now` in Unix seconds).
    pub(crate) fn get(&self, key: &TokenKey, now: u64) -> Option<Arc<Verified>> {
        let cache = self.inner.as_ref()?;
        let hit = cache.get(key)?;
        match hit.verified.exp {
            Some(exp) if exp > now => Some(hit.verified),
            _ => {
                cache.remove(key);
                None
            }
        }
    }

    /// Caches a verification until its `exp`; tokens without `exp` are not cached.
    pub(crate) fn insert(&self, key: TokenKey, verified: Arc<Verified>) {
        let Some(cache) = &self.inner else {
            return;
        };
        match verified.exp {
            Some(exp) if exp > unix_now() => {
                let weight = weigh(&verified);
                cache.insert(key, Entry { verified, weight });
            }
            _ => {}
        }
    }

    /// Drops an entry (its key left the set).
    pub(crate) fn invalidate(&self, key: &TokenKey) {
        if let Some(cache) = &self.inner {
            cache.remove(key);
        }
    }

    /// Entries currently held (approximate; for tests and metrics).
    #[cfg(test)]
    pub(crate) fn entry_count(&self) -> u64 {
        self.inner.as_ref().map_or(0, |c| c.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::verify::KeyRef;

    fn verified(exp: Option<u64>, big: usize) -> Arc<Verified> {
        let mut claims = serde_json::Map::new();
        claims.insert("sub".into(), Value::String("u".repeat(big)));
        Arc::new(Verified {
            identity: Identity {
                provider: Arc::from("p"),
                claims: Arc::new(claims),
            },
            exp,
            key: KeyRef {
                provider: 0,
                key_id: 1,
            },
            headers: Default::default(),
            revocations: Default::default(),
        })
    }

    #[test]
    fn hit_until_exp_then_miss() {
        let c = TokenCache::new(1 << 20);
        let now = unix_now();
        c.insert(TokenKey::of("a.b.c"), verified(Some(now + 100), 1));
        assert!(c.get(&TokenKey::of("a.b.c"), now).is_some());
        assert!(c.get(&TokenKey::of("a.b.x"), now).is_none());
        assert!(
            c.get(&TokenKey::of("a.b.c"), now + 100).is_none(),
            "exp reached"
        );
        c.invalidate(&TokenKey::of("a.b.c"));
        assert!(c.get(&TokenKey::of("a.b.c"), now).is_none());
    }

    #[test]
    fn disabled_and_no_exp_are_not_cached() {
        let now = unix_now();
        let off = TokenCache::new(0);
        off.insert(TokenKey::of("t"), verified(Some(now + 100), 1));
        assert!(off.get(&TokenKey::of("t"), now).is_none());
        let c = TokenCache::new(1 << 20);
        c.insert(TokenKey::of("t"), verified(None, 1));
        assert!(c.get(&TokenKey::of("t"), now).is_none());
        c.insert(
            TokenKey::of("old"),
            verified(Some(now.saturating_sub(1)), 1),
        );
        assert!(
            c.get(&TokenKey::of("old"), now.saturating_sub(10))
                .is_none()
        );
    }

    #[test]
    fn bounded_by_bytes() {
        let c = TokenCache::new(64 * 1024);
        let now = unix_now();
        for i in 0..1000 {
            c.insert(
                TokenKey::of(&format!("tok{i}")),
                verified(Some(now + 100), 1000),
            );
        }
        // Each entry weighs over 1 KiB, so at most ~64 fit.
        assert!(c.entry_count() <= 64, "{}", c.entry_count());
        assert!(c.entry_count() > 0);
    }
}
