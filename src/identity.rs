//! Identity: who the caller is, and the identity headers sent upstream.
//!
//! [`IdentityHeaders`] is compiled once from `identity_headers` (header ←
//! claim path, `org.id` for nested claims): names are lower-cased, validated
//! and turned into [`HeaderName`]s at load. `render` turns verified claims
//! into the headers to set and lists every configured header it does not
//! set, so the doors remove client-sent copies. Strings go as they are,
//! numbers and booleans as their JSON text, arrays of scalars joined with
//! `,`; null, objects, empty values and missing claims are not set. Values
//! with control characters are refused rather than sent.
//!
//! This module does not decide access; it only describes the caller.

use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value};

use crate::config::ConfigError;
use crate::error::{AuthError, ForbiddenKind};

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
    /// `remove` as one comma-separated value (`None` when empty), for the
    /// HTTP door's `x-envoy-auth-headers-to-remove`.
    pub remove_list: Option<HeaderValue>,
}

/// Compiled `identity_headers`.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    /// Header name → claim path, in configuration order.
    entries: Vec<(HeaderName, String)>,
}

/// Headers an identity header may never be: the proxies rely on them for
/// framing, routing or credentials.
const RESERVED: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

impl IdentityHeaders {
    /// Compiles `header ← claim path` pairs; errors name
    /// `identity_headers.<header>`.
    pub fn compile<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        let mut entries: Vec<(HeaderName, String)> = Vec::new();
        for (name, claim) in pairs {
            let key = format!("identity_headers.{name}");
            let lower = name.trim().to_ascii_lowercase();
            if lower.starts_with(':') {
                return Err(ConfigError::new(
                    key,
                    "pseudo-headers cannot carry identity",
                ));
            }
            if RESERVED.contains(&lower.as_str()) {
                return Err(ConfigError::new(
                    key,
                    format!("{lower} is reserved and cannot carry identity"),
                ));
            }
            let header = HeaderName::from_bytes(lower.as_bytes())
                .map_err(|_| ConfigError::new(key.clone(), "not a valid header name"))?;
            if entries.iter().any(|(h, _)| *h == header) {
                return Err(ConfigError::new(key, "header configured twice"));
            }
            if claim.is_empty() || claim.split('.').any(str::is_empty) {
                return Err(ConfigError::new(
                    key,
                    format!("{claim:?} is not a claim name"),
                ));
            }
            entries.push((header, claim.to_owned()));
        }
        Ok(Self { entries })
    }

    /// Every configured header name.
    pub fn names(&self) -> impl Iterator<Item = &HeaderName> {
        self.entries.iter().map(|(n, _)| n)
    }

    /// Headers to set for `claims`, and every configured one not set.
    /// `None` claims (anonymous or public) sets nothing and removes all.
    /// A claim value with control characters is `Forbidden(BadHeaderValue)`.
    pub fn render(
        &self,
        claims: Option<&Map<String, Value>>,
    ) -> Result<RenderedHeaders, AuthError> {
        let mut rendered = RenderedHeaders {
            set: Vec::with_capacity(self.entries.len()),
            remove: Vec::new(),
            remove_list: None,
        };
        for (header, claim) in &self.entries {
            let text = claims
                .and_then(|c| claim_at(c, claim))
                .and_then(header_text);
            match text {
                Some(text) if !text.is_empty() => {
                    if text.bytes().any(|b| b < 0x20 || b == 0x7f) {
                        return Err(AuthError::Forbidden(ForbiddenKind::BadHeaderValue));
                    }
                    let value = HeaderValue::from_bytes(text.as_bytes())
                        .map_err(|_| AuthError::Forbidden(ForbiddenKind::BadHeaderValue))?;
                    rendered.set.push((header.clone(), value));
                }
                _ => rendered.remove.push(header.clone()),
            }
        }
        if !rendered.remove.is_empty() {
            let names: Vec<&str> = rendered.remove.iter().map(HeaderName::as_str).collect();
            // Header names are tokens, so the joined list is a valid value.
            rendered.remove_list = HeaderValue::from_str(&names.join(",")).ok();
        }
        Ok(rendered)
    }
}

impl IdentityHeaders {
    /// `base` (what the caller's own claims render to) with every header
    /// whose claim is named in `joined` set from it: claims that join the
    /// identity for one request, such as the organization a path names.
    pub fn render_over(
        &self,
        base: &RenderedHeaders,
        joined: &[(&str, &str)],
    ) -> Result<RenderedHeaders, AuthError> {
        let mut set = base.set.clone();
        for (header, claim) in &self.entries {
            let Some((_, text)) = joined.iter().find(|(name, _)| name == claim) else {
                continue;
            };
            set.retain(|(h, _)| h != header);
            if text.is_empty() {
                continue;
            }
            if text.bytes().any(|b| b < 0x20 || b == 0x7f) {
                return Err(AuthError::Forbidden(ForbiddenKind::BadHeaderValue));
            }
            let value = HeaderValue::from_str(text)
                .map_err(|_| AuthError::Forbidden(ForbiddenKind::BadHeaderValue))?;
            set.push((header.clone(), value));
        }
        let remove: Vec<HeaderName> = self
            .names()
            .filter(|name| !set.iter().any(|(h, _)| h == *name))
            .cloned()
            .collect();
        let remove_list = (!remove.is_empty())
            .then(|| {
                let names: Vec<&str> = remove.iter().map(HeaderName::as_str).collect();
                HeaderValue::from_str(&names.join(",")).ok()
            })
            .flatten();
        Ok(RenderedHeaders {
            set,
            remove,
            remove_list,
        })
    }
}

/// The claim at `path`: the key itself when present (claim names such as
/// `https://example.com/roles` contain dots), else the dotted walk through
/// nested objects (`org.role`).
pub(crate) fn claim_at<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    let mut parts = path.split('.');
    let mut current = claims.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

/// A claim as header text; `None` for values that are not sent.
fn header_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => {
            let mut out = String::new();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match item {
                    Value::String(s) => out.push_str(s),
                    Value::Number(n) => out.push_str(&n.to_string()),
                    Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                    _ => return None,
                }
            }
            Some(out)
        }
        Value::Null | Value::Object(_) => None,
    }
}

#[cfg(test)]
mod tests;
