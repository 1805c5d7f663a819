//! The config file as written: plain serde structs mirroring the keys
//! docs/configuration.md describes.
//!
//! Nothing here is validated beyond its YAML shape; [`super`] layers env and
//! flags on top and compiles the result. Unknown keys are errors, so a typo
//! is reported with its key path instead of being silently ignored.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// gRPC (Envoy ext_authz) listener, e.g. `0.0.0.0:9001`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_addr: Option<String>,
    /// HTTP (auth_request, health, metrics) listener, e.g. `0.0.0.0:8080`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_addr: Option<String>,
    #[serde(default)]
    pub providers: Vec<RawProvider>,
    /// `None` means the defaults (authorization header, then the Better Auth cookie).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sources: Option<Vec<RawTokenSource>>,
    /// `None` means the defaults (`x-user-id: sub`, `x-user-email: email`, `x-user-name: name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub rules: Vec<RawRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_access: Option<Access>,
    /// CORS preflight (`OPTIONS` with `Access-Control-Request-Method`) passes
    /// without a credential unless a rule names `OPTIONS` explicitly. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_cors_preflight: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<RawSession>,
    /// The HTTP door (`/auth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<RawHttp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_cache: Option<RawTokenCache>,
    /// SIGTERM: how long to keep answering while not ready (default 5s).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub shutdown_delay: Option<Duration>,
    /// SIGTERM: how long in-flight requests may take after the delay (default 20s).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub shutdown_grace: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<RawTls>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<RawLog>,
    /// The shared store (rate limits, revocations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RawRedis>,
    /// Named rate-limit policies that rules apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<RawRateLimits>,
    /// How long revocations are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<RawRevocation>,
    /// The admin gRPC API (revocations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<RawAdmin>,
}

/// One token issuer (`providers[]`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// OIDC issuer URL; `/.well-known/openid-configuration` is appended to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<String>,
    /// Name of the environment variable holding an HMAC secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    /// Inline HMAC secret: only set by the env layer (`BETTER_AUTH_SECRET`) and
    /// the demo; never printed.
    #[serde(skip)]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithms: Option<Vec<String>>,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub refresh_interval: Option<Duration>,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub unknown_kid_refetch_interval: Option<Duration>,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub leeway: Option<Duration>,
    /// Claims that must be present. `None` means `[exp]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require: Option<Vec<String>>,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_lifetime: Option<Duration>,
    /// A claim naming the Better Auth session the token was minted for
    /// (`sid`): the token is valid only while that session row lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_claim: Option<String>,
}

/// One place a credential may come from (`token_sources[]`).
///
/// Written as a one-key map (`- header: authorization`); serialized the
/// same way so `check-config` output can be fed back as a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawTokenSource {
    /// `authorization` means `Bearer <t>` (scheme case-insensitive); any
    /// other header carries the raw token.
    Header(String),
    Cookie(String),
    Query(String),
}

impl<'de> Deserialize<'de> for RawTokenSource {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TokenSourceVisitor)
    }
}

/// Reads the one-key map form, refusing unknown or repeated keys.
struct TokenSourceVisitor;

impl<'de> serde::de::Visitor<'de> for TokenSourceVisitor {
    type Value = RawTokenSource;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a map with exactly one of `header`, `cookie`, `query`")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error;
        let mut found: Option<RawTokenSource> = None;
        while let Some(key) = map.next_key::<String>()? {
            let make: fn(String) -> RawTokenSource = match key.as_str() {
                "header" => RawTokenSource::Header,
                "cookie" => RawTokenSource::Cookie,
                "query" => RawTokenSource::Query,
                _ => {
                    return Err(A::Error::unknown_field(
                        &key,
                        &["header", "cookie", "query"],
                    ));
                }
            };
            let value: String = map.next_value()?;
            if found.is_some() {
                return Err(A::Error::custom(
                    "a token source needs exactly one of header, cookie, query",
                ));
            }
            found = Some(make(value));
        }
        found.ok_or_else(|| A::Error::custom("a token source needs one of header, cookie, query"))
    }
}

impl Serialize for RawTokenSource {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (kind, name) = match self {
            RawTokenSource::Header(n) => ("header", n),
            RawTokenSource::Cookie(n) => ("cookie", n),
            RawTokenSource::Query(n) => ("query", n),
        };
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(kind, name)?;
        map.end()
    }
}

/// `public | optional | authenticated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Public,
    Optional,
    Authenticated,
}

/// One route rule (`rules[]`, docs/rules.md).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    #[serde(rename = "match", default)]
    pub match_: RawMatch,
    /// `None`: `authenticated`; the effective config always shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Access>,
    /// claim → required value (equality, or membership for array claims).
    /// A list value means any one of its items.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, serde_json::Value>,
    /// path parameter → claim that must equal it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub path_claims: BTreeMap<String, String>,
    /// Membership in the Better Auth organization a path parameter names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<RawOrganization>,
    /// Names of `rate_limits.policies` this rule applies, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_limit: Vec<String>,
}

/// `organization: { param: org_id, roles: [owner, admin] }`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawOrganization {
    /// The path parameter holding the organization id.
    pub param: String,
    /// Any one of these roles is required; empty: any member.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// The request side of a rule.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    /// A template: literal segments, `{name}` (one segment), `*` (one
    /// segment), `**` (any rest, including nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A prefix matched on segment boundaries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Exact host names (port ignored); `*.example.com` matches subdomains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

/// The HTTP door's settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    /// Which header family describes the original request (default `auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers: Option<RequestHeaders>,
    /// Keep the request descriptions of the last decisions for
    /// `GET /debug/decisions` (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_trail: Option<bool>,
    /// Networks (CIDR, or one address) besides loopback that may read
    /// `/debug/decisions` (default none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_networks: Option<Vec<String>>,
}

/// The header family `/auth` reads the original request from.
///
/// `original` is `X-Original-Method` + `X-Original-URI` (nginx);
/// `forwarded` is `X-Forwarded-Method` + `X-Forwarded-Uri` (Traefik, Caddy,
/// Envoy's HTTP mode). A pinned family ignores the other one entirely;
/// `auto` uses whichever is present and refuses a request that carries
/// both, since one of them came from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestHeaders {
    #[default]
    Auto,
    Original,
    Forwarded,
}

impl RequestHeaders {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Original => "original",
            Self::Forwarded => "forwarded",
        }
    }
}

/// Better Auth opaque sessions (`session`, docs/better-auth.md).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSession {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspect_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<RawPostgres>,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub cache_ttl: Option<Duration>,
    /// Env var with the cookie-signing secret (default `BETTER_AUTH_SECRET`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_max_entries: Option<u64>,
    /// Refuse banned Better Auth users (default true with `postgres`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_banned: Option<bool>,
}

/// Postgres session store.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPostgres {
    /// Env var holding the connection URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
}

/// Verified-token cache bounds.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokenCache {
    /// Upper bound on the memory the cache may hold, e.g. `64MiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory: Option<String>,
    /// `false` turns the cache off (every request verifies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// TLS for both listeners.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert_file: String,
    pub key_file: String,
    /// When set, clients must present a certificate signed by this CA (mTLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<String>,
}

/// Logging.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// The shared store.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    /// Env var holding the URL (default `REDIS_URL`); `rediss://` is TLS.
    /// Unset or empty: no shared store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
    /// Deadline of one command on the request path (default 25ms).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// Deadline of one connection attempt (default 1s).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub connect_timeout: Option<Duration>,
    /// Consecutive failures that open the circuit breaker (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker_failures: Option<u32>,
    /// How long an open breaker waits before probing again, jittered by up
    /// to a quarter either way (default 2s).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub breaker_cooldown: Option<Duration>,
    /// Prefix of every key gatehouse writes (default `gatehouse:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
}

/// `rate_limits`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimits {
    /// What a request meets while the store is unreachable (default `local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_store_error: Option<OnStoreError>,
    /// name → policy.
    #[serde(default)]
    pub policies: BTreeMap<String, RawPolicy>,
}

/// One rate-limit policy: `{ key: [sub], rate: 600/1m, burst: 100 }`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// What counts as one caller: claim names, `client_ip`, `api_key_id`.
    pub key: Vec<String>,
    /// Sustained rate: `COUNT/PERIOD`, e.g. `600/1m`, `10/s`, `5000/1h`.
    pub rate: String,
    /// Requests admitted at once above the sustained rate (default: the
    /// rate's COUNT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
}

/// What rate limiting does while the store cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnStoreError {
    /// The same policies, counted per replica in memory.
    #[default]
    Local,
    /// No limiting.
    Allow,
    /// 503 `rate_limit_unavailable`.
    Deny,
}

/// `revocation`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRevocation {
    /// How long an entry is kept when no provider bounds the lifetime of
    /// the tokens it matches (`max_lifetime`); default 24h.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub retention: Option<Duration>,
}

/// `admin`: the admin gRPC API.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Listener (default `127.0.0.1:9002`, loopback only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// TLS for the admin listener; with `client_ca_file`, mTLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<RawTls>,
}
