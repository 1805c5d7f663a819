//! The verified-token cache: a hot token costs a lookup, not a signature
//! check. Keyed by SHA-256 of the token, entries live until the token's
//! `exp`, memory is bounded.

use std::sync::Arc;

use crate::verify::Verified;

/// Bounded cache of verified tokens.
#[derive(Debug)]
pub struct TokenCache {
    _max_bytes: u64,
}

impl TokenCache {
    /// `max_bytes == 0` disables caching.
    pub fn new(max_bytes: u64) -> Self {
        Self {
            _max_bytes: max_bytes,
        }
    }

    /// A cached, unexpired verification of `token`.
    pub fn get(&self, token: &str, now: u64) -> Option<Arc<Verified>> {
        let _ = (token, now);
        None
    }

    pub fn insert(&self, token: &str, verified: Arc<Verified>) {
        let _ = (token, verified);
    }

    /// Drops an entry (its key left the set).
    pub fn invalidate(&self, token: &str) {
        let _ = token;
    }
}
