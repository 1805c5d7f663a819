//! Credential extraction: the configured token sources → one [`Credential`].
//!
//! Sources are tried in order (`Authorization: Bearer`, other headers,
//! cookies, query). One credential per request: two
//! `Authorization` values, one cookie sent twice with different values, or
//! two different JWTs (say a bearer token and a configured cookie) is
//! `token_malformed`; between a JWT and a session token the first source in
//! `token_sources` order wins. A value with exactly two dots is a
//! [`Credential::Jwt`] candidate; anything else is an opaque
//! [`Credential::Session`] token (Better Auth: `TOKEN` or signed
//! `TOKEN.SIG`). Values over 16 KiB or with characters outside visible
//! ASCII are refused.
//!
//! This module does not verify anything; it only finds and classifies.

use std::borrow::Cow;

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};

use crate::config::TokenSource;
use crate::error::{AuthError, MalformedKind};

/// The largest credential accepted.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

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

impl Credential {
    /// The token text.
    pub fn token(&self) -> &str {
        match self {
            Credential::Jwt { token, .. } | Credential::Session { token, .. } => token,
        }
    }

    /// Where it came from.
    pub fn source(&self) -> SourceKind {
        match self {
            Credential::Jwt { source, .. } | Credential::Session { source, .. } => *source,
        }
    }

    fn is_jwt(&self) -> bool {
        matches!(self, Credential::Jwt { .. })
    }

    fn classify(token: String, source: SourceKind) -> Credential {
        if token.bytes().filter(|&b| b == b'.').count() == 2 {
            Credential::Jwt { token, source }
        } else {
            Credential::Session { token, source }
        }
    }
}

/// One compiled token source.
#[derive(Debug, Clone)]
enum Source {
    Bearer,
    /// Lower-cased header name.
    Header(String),
    /// Cookie name and its `__Secure-` variant (Better Auth over https).
    Cookie {
        name: String,
        secure: String,
    },
    Query(String),
}

/// Compiled token sources.
#[derive(Debug, Clone)]
pub struct Extractor {
    /// In `token_sources` order.
    sources: Vec<Source>,
}

impl Extractor {
    pub fn new(sources: &[TokenSource]) -> Self {
        Self {
            sources: sources
                .iter()
                .map(|s| match s {
                    TokenSource::Bearer => Source::Bearer,
                    TokenSource::Header(h) if h.eq_ignore_ascii_case("authorization") => {
                        Source::Bearer
                    }
                    TokenSource::Header(h) => Source::Header(h.to_ascii_lowercase()),
                    TokenSource::Cookie(c) => Source::Cookie {
                        name: c.clone(),
                        secure: format!("__Secure-{c}"),
                    },
                    TokenSource::Query(q) => Source::Query(q.clone()),
                })
                .collect(),
        }
    }

    /// Finds the request's credential. `Ok(None)`: none presented.
    pub fn extract(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Option<Credential>, AuthError> {
        // The credential used, and (when that is a session) the first JWT
        // seen, so any other JWT in the request can be refused without
        // copying tokens around.
        let mut chosen: Option<Credential> = None;
        let mut other_jwt: Option<Credential> = None;
        for source in &self.sources {
            let found = match source {
                Source::Bearer => bearer(headers)?.map(|t| (t, SourceKind::Bearer)),
                Source::Header(name) => header(headers, name)?.map(|t| (t, SourceKind::Header)),
                Source::Cookie { name, secure } => {
                    cookie(headers, name, secure)?.map(|t| (t, SourceKind::Cookie))
                }
                Source::Query(name) => query
                    .map(|q| query_param(q, name))
                    .transpose()?
                    .flatten()
                    .map(|t| (t, SourceKind::Query)),
            };
            let Some((token, kind)) = found else { continue };
            let credential = Credential::classify(token, kind);
            if credential.is_jwt() {
                let seen = match (&chosen, &other_jwt) {
                    (Some(c), _) if c.is_jwt() => Some(c.token()),
                    (_, Some(j)) => Some(j.token()),
                    _ => None,
                };
                match seen {
                    Some(t) if t != credential.token() => {
                        return Err(AuthError::Malformed(MalformedKind::MultipleCredentials));
                    }
                    Some(_) => continue,
                    None => {}
                }
            }
            if chosen.is_none() {
                chosen = Some(credential);
            } else if credential.is_jwt() {
                other_jwt = Some(credential);
            }
        }
        Ok(chosen)
    }
}

/// `Authorization: Bearer <t>`. Another scheme is no credential.
fn bearer(headers: &HeaderMap) -> Result<Option<String>, AuthError> {
    let Some(value) = single(headers, AUTHORIZATION.as_str())? else {
        return Ok(None);
    };
    let value = trim_bytes(value);
    let (scheme, rest) = match value.iter().position(|&b| b == b' ' || b == b'\t') {
        Some(at) => (&value[..at], trim_bytes(&value[at..])),
        None => (value, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Ok(None);
    }
    if rest.is_empty() {
        return Err(AuthError::Malformed(MalformedKind::NotThreeParts));
    }
    if rest.contains(&b',') {
        // Proxies fold repeated headers into one value joined by commas.
        return Err(AuthError::Malformed(MalformedKind::MultipleCredentials));
    }
    Ok(Some(visible(rest)?))
}

/// A raw-token header.
fn header(headers: &HeaderMap, name: &str) -> Result<Option<String>, AuthError> {
    let Some(value) = single(headers, name)? else {
        return Ok(None);
    };
    let value = trim_bytes(value);
    if value.is_empty() {
        return Ok(None);
    }
    Ok(Some(visible(value)?))
}

/// The value of header `name` when sent once; two values are two credentials.
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a [u8]>, AuthError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::Malformed(MalformedKind::MultipleCredentials));
    }
    Ok(Some(first.as_bytes()))
}

/// Cookie `name` (or `__Secure-name`) across every `cookie` header,
/// URL-decoded. The same cookie with two different values is refused.
fn cookie(headers: &HeaderMap, name: &str, secure: &str) -> Result<Option<String>, AuthError> {
    let mut found: Option<String> = None;
    for value in headers.get_all(COOKIE) {
        for pair in value.as_bytes().split(|&b| b == b';') {
            let pair = trim_bytes(pair);
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            let key = trim_bytes(&pair[..eq]);
            if key != name.as_bytes() && key != secure.as_bytes() {
                continue;
            }
            let mut raw = trim_bytes(&pair[eq + 1..]);
            if raw.len() >= 2 && raw.first() == Some(&b'"') && raw.last() == Some(&b'"') {
                raw = &raw[1..raw.len() - 1];
            }
            if raw.is_empty() {
                continue;
            }
            let decoded = url_decode(raw)?;
            keep_single(&mut found, decoded)?;
        }
    }
    Ok(found)
}

/// Query parameter `name`, URL-decoded; present twice with different values
/// is refused.
fn query_param(query: &str, name: &str) -> Result<Option<String>, AuthError> {
    let mut found: Option<String> = None;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != name && url_decode(key.as_bytes()).ok().as_deref() != Some(name) {
            continue;
        }
        if value.is_empty() {
            continue;
        }
        let decoded = url_decode(value.as_bytes())?;
        keep_single(&mut found, decoded)?;
    }
    Ok(found)
}

/// Keeps the first value seen; the same value again is harmless, a
/// different one is a second credential.
fn keep_single(found: &mut Option<String>, value: String) -> Result<(), AuthError> {
    match found {
        Some(prev) if *prev != value => {
            Err(AuthError::Malformed(MalformedKind::MultipleCredentials))
        }
        Some(_) => Ok(()),
        None => {
            *found = Some(value);
            Ok(())
        }
    }
}

fn url_decode(raw: &[u8]) -> Result<String, AuthError> {
    let decoded: Cow<'_, [u8]> = percent_encoding::percent_decode(raw).into();
    visible(&decoded)
}

/// Bytes as a string of visible ASCII, else `BadCharacters`.
fn visible(bytes: &[u8]) -> Result<String, AuthError> {
    if bytes.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::Malformed(MalformedKind::TooLarge));
    }
    // No early exit: the whole-slice fold vectorizes, and tokens are short.
    let visible_ascii = bytes
        .iter()
        .fold(true, |ok, &b| ok & (b.wrapping_sub(0x21) < 0x5e));
    if !visible_ascii {
        return Err(AuthError::Malformed(MalformedKind::BadCharacters));
    }
    // Visible ASCII is valid UTF-8, so this never fails.
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| AuthError::Malformed(MalformedKind::BadCharacters))
}

fn trim_bytes(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    bytes.get(start..end).unwrap_or_default()
}

#[cfg(test)]
mod tests;
