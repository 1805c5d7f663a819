//! Configuration: the YAML file, env and flags layered into one validated,
//! compiled [`Config`].
//!
//! Precedence is flag > env > file > default (docs/configuration.md).
//! Everything a request needs is compiled here once (rules, header names,
//! algorithms, durations), so the request path only looks things up. Every
//! error names the key it is about (`rules[2].match.path: …`) and makes the
//! CLI exit 64.
//!
//! This module does not fetch keys or open connections; see `jwks` and
//! `session` for that.

pub(crate) mod load;
pub(crate) mod raw;

use std::net::SocketAddr;
use std::time::Duration;

pub(crate) use load::{Env, LoadOptions};
pub(crate) use raw::{Access, OnStoreError, RawConfig, RequestHeaders};

/// A configuration error, carrying the key path it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// Dotted/indexed path of the offending key, e.g. `providers[0].jwks_uri`.
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Signature algorithms gatehouse verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Alg {
    EdDSA,
    ES256,
    ES384,
    ES512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    HS256,
    HS384,
    HS512,
}

impl Alg {
    pub const ALL: [Alg; 13] = [
        Alg::EdDSA,
        Alg::ES256,
        Alg::ES384,
        Alg::ES512,
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
        Alg::HS256,
        Alg::HS384,
        Alg::HS512,
    ];

    /// The JOSE name (`"EdDSA"`, `"RS256"`…).
    pub const fn as_str(self) -> &'static str {
        match self {
            Alg::EdDSA => "EdDSA",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::ES512 => "ES512",
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::HS256 => "HS256",
            Alg::HS384 => "HS384",
            Alg::HS512 => "HS512",
        }
    }

    /// Parses a JOSE name exactly (case-sensitive, as RFC 7518 names are).
    pub fn parse(s: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// HMAC algorithms (only a secret provider accepts these).
    pub const fn is_hmac(self) -> bool {
        matches!(self, Alg::HS256 | Alg::HS384 | Alg::HS512)
    }

    pub const fn is_rsa(self) -> bool {
        matches!(
            self,
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512
        )
    }
}

/// Where a provider's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A JWKS URL, fetched at start and refreshed in the background.
    JwksUri(String),
    /// An OIDC issuer: `<url>/.well-known/openid-configuration` names `jwks_uri`
    /// (and the issuer, when the provider sets none).
    Discovery(String),
    /// A JWKS document on disk, read at load (and on SIGHUP).
    File(String),
    /// An HMAC secret (from `secret_env`, or `BETTER_AUTH_SECRET`).
    Secret(Secret),
}

impl KeySource {
    /// True for sources fetched over the network (readiness waits for them).
    pub const fn is_remote(&self) -> bool {
        matches!(self, KeySource::JwksUri(_) | KeySource::Discovery(_))
    }
}

/// A secret value that never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A validated provider.
#[derive(Debug, Clone)]
pub struct ProviderSpec {
    pub name: String,
    /// Required `iss`; `None` for a discovery provider (the document names
    /// it) and for a secret or file provider that takes any `iss`.
    pub issuer: Option<String>,
    /// Any one must match `aud`; empty means `aud` is not checked.
    pub audiences: Vec<String>,
    pub keys: KeySource,
    /// Allow-list; `None` means whatever the keys fit.
    pub algorithms: Option<Vec<Alg>>,
    pub refresh_interval: Duration,
    pub unknown_kid_refetch_interval: Duration,
    pub leeway: Duration,
    /// Claims that must be present (default `["exp"]`).
    pub require: Vec<String>,
    pub max_lifetime: Option<Duration>,
    /// The claim naming the Better Auth session a token is bound to.
    pub session_claim: Option<String>,
}

/// A validated token source (`token_sources`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer <t>`, scheme case-insensitive.
    Bearer,
    /// Any other header, raw value. Name lower-cased.
    Header(String),
    Cookie(String),
    Query(String),
}

/// Where sessions are looked up.
#[derive(Debug, Clone)]
pub enum SessionBackend {
    Introspect(String),
    /// Connection URL read from the env var named in the file.
    Postgres {
        url: Secret,
        max_connections: usize,
    },
}

/// Validated `session` block.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    pub backend: SessionBackend,
    pub cache_ttl: Duration,
    pub cache_max_entries: u64,
    /// Cookie-signing secret; when known, unsigned or forged cookies are
    /// refused before any lookup.
    pub secret: Option<Secret>,
    /// Refuse users Better Auth's admin plugin has banned.
    pub check_banned: bool,
}

/// Validated TLS settings.
#[derive(Debug, Clone)]
pub struct TlsSpec {
    pub cert_file: String,
    pub key_file: String,
    pub client_ca_file: Option<String>,
}

/// The shared store (`redis`), present when its URL variable is set.
#[derive(Debug, Clone)]
pub struct StoreSpec {
    pub url: Secret,
    /// The variable the URL came from, for messages.
    pub url_env: String,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub breaker_failures: u32,
    pub breaker_cooldown: Duration,
    pub key_prefix: String,
}

/// What identifies one caller to a rate-limit policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    /// A claim of the verified identity (`sub`, `org_id`, any claim).
    Claim(String),
    /// The client address, as the proxy described it.
    ClientIp,
}

/// One compiled rate-limit policy (GCRA).
#[derive(Debug, Clone)]
pub struct RatePolicy {
    pub name: std::sync::Arc<str>,
    pub key: Vec<KeyPart>,
    /// Requests per `period` sustained.
    pub count: u64,
    pub period: Duration,
    /// Requests admitted at once.
    pub burst: u64,
}

impl RatePolicy {
    /// Time one request costs: `period / count`.
    pub fn emission_interval(&self) -> Duration {
        self.period / u32::try_from(self.count).unwrap_or(u32::MAX)
    }
}

/// `rate_limits`, compiled.
#[derive(Debug, Clone, Default)]
pub struct RateLimitSpec {
    pub on_store_error: OnStoreError,
    /// In name order; rules refer to them by index.
    pub policies: Vec<RatePolicy>,
}

/// `admin`, compiled.
#[derive(Debug, Clone)]
pub struct AdminSpec {
    pub addr: SocketAddr,
    pub tls: Option<TlsSpec>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The compiled configuration every other module reads.
#[derive(Debug, Clone)]
pub struct Config {
    /// The effective layered config, as `check-config` prints it (secrets redacted).
    pub effective: RawConfig,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub providers: Vec<ProviderSpec>,
    pub token_sources: Vec<TokenSource>,
    pub identity_headers: crate::identity::IdentityHeaders,
    pub rules: crate::policy::RuleSet,
    pub default_access: Access,
    pub allow_cors_preflight: bool,
    pub session: Option<SessionSpec>,
    /// The header family the HTTP door reads the original request from.
    pub request_headers: RequestHeaders,
    /// `http.decision_trail` and `http.admin_networks`: whether the doors
    /// keep the last decisions for `/debug/decisions`, and who may read them.
    pub(crate) trail: crate::trail::TrailSettings,
    /// 0 disables the verified-token cache.
    pub token_cache_max_bytes: u64,
    pub shutdown_delay: Duration,
    pub shutdown_grace: Duration,
    pub tls: Option<TlsSpec>,
    pub log_filter: String,
    pub log_format: LogFormat,
    /// `None`: no shared store (the URL variable is unset).
    pub redis: Option<StoreSpec>,
    pub rate_limits: RateLimitSpec,
    /// How long a revocation is kept when no `max_lifetime` bounds it.
    pub revocation_retention: Duration,
    pub admin: AdminSpec,
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod rules_tests;
