//! Credential extraction: the configured token sources → one [`Credential`].
//!
//! Sources are tried in order (`Authorization: Bearer`, other headers,
//! cookies, query). One credential per request (SPEC §6): two
//! `Authorization` values, or a bearer JWT with a different JWT in a
//! configured cookie, is `token_malformed`. A value that looks like a JWT
//! (three base64url parts) is a [`Credential::Jwt`]; anything else is an
//! opaque [`Credential::Session`] token (Better Auth).
//!
//! This module does not verify anything; it only finds and classifies.

use http::HeaderMap;

use crate::config::TokenSource;
use crate::error::AuthError;

/// Where a credential was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Bearer,
    Header,
    Cookie,
    Query,
}

/// A credential as presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Jwt {
        token: String,
        source: SourceKind,
    },
    /// A Better Auth session token (`TOKEN` or signed `TOKEN.SIG`), URL-decoded.
    Session {
        token: String,
        source: SourceKind,
    },
}

/// Compiled token sources.
#[derive(Debug, Clone)]
pub struct Extractor {
    sources: Vec<TokenSource>,
}

impl Extractor {
    pub fn new(sources: &[TokenSource]) -> Self {
        Self {
            sources: sources.to_vec(),
        }
    }

    /// Finds the request's credential. `Ok(None)`: none presented.
    pub fn extract(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Option<Credential>, AuthError> {
        let _ = (headers, query, &self.sources);
        Ok(None)
    }
}
