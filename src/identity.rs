//! Identity: who the caller is, and the identity headers sent upstream.
//!
//! [`IdentityHeaders`] is compiled once from `identity_headers` (header ←
//! claim path, `org.id` for nested claims). `render` turns verified claims
//! into the headers to set and lists every configured header it does not
//! set, so the doors remove client-sent copies. Arrays are joined with `,`;
//! values with control characters are refused.

use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value};

use crate::config::ConfigError;
use crate::error::AuthError;

/// A verified caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The provider (or `session`) that vouched for the caller.
    pub provider: Arc<str>,
    /// The verified claims (for sessions: `sub`, `email`, `name`, `session_id`…).
    pub claims: Arc<Map<String, Value>>,
}

impl Identity {
    /// The `sub` claim, when it is a string.
    pub fn sub(&self) -> Option<&str> {
        self.claims.get("sub").and_then(Value::as_str)
    }
}

/// Headers to set and to remove on an allowed request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RenderedHeaders {
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub remove: Vec<HeaderName>,
}

/// Compiled `identity_headers`.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    // filled in by the implementation
    entries: Vec<(HeaderName, Vec<String>)>,
}

impl IdentityHeaders {
    /// Compiles `header ← claim path` pairs; `key_prefix` is used in errors
    /// (`identity_headers.x-user-id`).
    pub fn compile<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        let _ = pairs;
        Ok(Self {
            entries: Vec::new(),
        })
    }

    /// Every configured header name.
    pub fn names(&self) -> impl Iterator<Item = &HeaderName> {
        self.entries.iter().map(|(n, _)| n)
    }

    /// Headers to set for `claims`, and every configured one not set.
    /// `None` claims (anonymous or public) sets nothing and removes all.
    pub fn render(
        &self,
        claims: Option<&Map<String, Value>>,
    ) -> Result<RenderedHeaders, AuthError> {
        let _ = claims;
        Ok(RenderedHeaders::default())
    }
}
