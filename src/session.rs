//! Better Auth sessions: cookie signature check, then lookup through
//! `get-session` or Postgres, cached for `cache_ttl` (SPEC §7).

use http::HeaderMap;

use crate::config::{ConfigError, SessionSpec};
use crate::error::{AuthError, SessionKind};
use crate::extract::SourceKind;
use crate::identity::Identity;

/// The configured session store.
#[derive(Debug)]
pub struct SessionStore {
    _spec: SessionSpec,
}

impl SessionStore {
    pub fn new(spec: &SessionSpec) -> Result<Self, ConfigError> {
        Ok(Self {
            _spec: spec.clone(),
        })
    }

    /// Resolves a session token to the session's user.
    pub async fn lookup(
        &self,
        token: &str,
        source: SourceKind,
        headers: &HeaderMap,
    ) -> Result<Identity, AuthError> {
        let _ = (token, source, headers);
        Err(AuthError::Session(SessionKind::NotConfigured))
    }
}
