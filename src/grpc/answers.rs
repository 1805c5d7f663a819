//! The Envoy door's own memory of what it answered: the encoded
//! `CheckResponse` that allows a token served from the verified-token
//! cache, so every later request with that token is one copy of bytes.
//!
//! Reuse rule, in one place: an answer is reused only for an allow whose
//! decision handed over its [`CachedToken`] (the token's own identity
//! headers, nothing added for the request), and only while the cached
//! verification it was encoded from is the one the decision used. A token
//! verified again (its key rotated, its entry evicted) is a different
//! verification, so its old answer is never sent.
//!
//! Bounded by bytes like the verified-token cache, on `quick_cache`.

use std::sync::{Arc, Weak};

use bytes::Bytes;
use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::decision::CachedToken;
use crate::token_cache::TokenKey;
use crate::verify::Verified;

/// Bytes an entry keeps besides its answer: node, key and handle.
const ENTRY_OVERHEAD: u64 = 128;

/// A typical Better Auth-shaped allow, for sizing the table up front.
const TYPICAL_WEIGHT: u64 = 768;

/// One remembered answer.
#[derive(Clone)]
struct Slot {
    /// The verification it was encoded from; a different (or dropped) one
    /// makes the slot stale.
    verified: Weak<Verified>,
    answer: Bytes,
}

#[derive(Clone)]
struct SlotWeight;

impl Weighter<TokenKey, Slot> for SlotWeight {
    fn weight(&self, _key: &TokenKey, slot: &Slot) -> u64 {
        ENTRY_OVERHEAD + slot.answer.len() as u64
    }
}

/// Encoded allows by token; `None` inside when caching is off.
pub(crate) struct Answers {
    inner: Option<Cache<TokenKey, Slot, SlotWeight>>,
}

impl std::fmt::Debug for Answers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answers")
            .field("enabled", &self.inner.is_some())
            .finish()
    }
}

impl Answers {
    /// `max_bytes == 0` turns the memory off (every allow is encoded).
    pub(crate) fn new(max_bytes: u64) -> Self {
        let inner = (max_bytes > 0).then(|| {
            let items = usize::try_from(max_bytes / TYPICAL_WEIGHT)
                .unwrap_or(usize::MAX)
                .clamp(64, 1 << 20);
            Cache::with_weighter(items, max_bytes, SlotWeight)
        });
        Self { inner }
    }

    /// The answer remembered for `token`, or `encode()`'s, remembered.
    pub(crate) fn get_or_encode(
        &self,
        token: &CachedToken,
        encode: impl FnOnce() -> Bytes,
    ) -> Bytes {
        let Some(cache) = &self.inner else {
            return encode();
        };
        if let Some(slot) = cache.get(&token.key)
            && same_verification(&slot.verified, &token.verified)
        {
            return slot.answer;
        }
        let answer = encode();
        cache.insert(
            token.key,
            Slot {
                verified: Arc::downgrade(&token.verified),
                answer: answer.clone(),
            },
        );
        answer
    }
}

/// Whether `remembered` is `current`. A dropped verification never
/// matches: its address may since belong to another one.
fn same_verification(remembered: &Weak<Verified>, current: &Arc<Verified>) -> bool {
    remembered.strong_count() > 0 && std::ptr::eq(remembered.as_ptr(), Arc::as_ptr(current))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::verify::KeyRef;

    fn verified() -> Arc<Verified> {
        Arc::new(Verified {
            identity: Identity {
                provider: "p".into(),
                claims: Arc::new(serde_json::Map::new()),
            },
            exp: None,
            key: KeyRef {
                provider: 0,
                key_id: 0,
            },
            headers: Default::default(),
            revocations: Default::default(),
        })
    }

    #[test]
    fn an_answer_is_reused_only_for_the_same_verification() {
        let answers = Answers::new(1 << 20);
        let token = CachedToken {
            key: TokenKey::of("t"),
            verified: verified(),
        };
        let first = answers.get_or_encode(&token, || Bytes::from_static(b"one"));
        let again = answers.get_or_encode(&token, || Bytes::from_static(b"two"));
        assert_eq!(again, first);
        // The same token verified again (say its key rotated): a new answer.
        let reverified = CachedToken {
            key: token.key,
            verified: verified(),
        };
        let fresh = answers.get_or_encode(&reverified, || Bytes::from_static(b"three"));
        assert_eq!(&fresh[..], b"three");
    }

    #[test]
    fn a_dropped_verification_never_matches() {
        let weak = Arc::downgrade(&verified());
        assert!(!same_verification(&weak, &verified()));
    }

    #[test]
    fn off_means_encoded_every_time() {
        let answers = Answers::new(0);
        let token = CachedToken {
            key: TokenKey::of("t"),
            verified: verified(),
        };
        answers.get_or_encode(&token, || Bytes::from_static(b"one"));
        let again = answers.get_or_encode(&token, || Bytes::from_static(b"two"));
        assert_eq!(&again[..], b"two");
    }
}
