//! Loading: the YAML file, the environment and the command-line flags
//! layered into one [`RawConfig`], then validated and compiled into a
//! [`Config`].
//!
//! Precedence is flag > env > file > default (docs/configuration.md). The
//! environment is an explicit [`Env`] snapshot rather than the process
//! environment, so the same load can be repeated on SIGHUP and tests never
//! mutate global state.
//! Every error names the key it is about; errors about a flag or an env var
//! name the flag or the variable.
//!
//! This module does not read key files' contents, fetch anything or open
//! connections: it checks that what the config names exists and is well
//! formed, and leaves the rest to `verify`, `jwks` and `session`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{
    Access, RawAdmin, RawConfig, RawHttp, RawLog, RawPolicy, RawPostgres, RawProvider,
    RawRateLimits, RawRedis, RawRevocation, RawSession, RawTls, RawTokenCache, RawTokenSource,
    RequestHeaders,
};
use super::{
    AdminSpec, Alg, Config, ConfigError, KeyPart, KeySource, LogFormat, ProviderSpec,
    RateLimitSpec, RatePolicy, Secret, SessionBackend, SessionSpec, StoreSpec, TlsSpec,
    TokenSource,
};
use crate::identity::IdentityHeaders;
use crate::policy::RuleSet;

/// Env var naming the config file when `--config` is not given.
pub(crate) const ENV_CONFIG: &str = "GATEHOUSE_CONFIG";
/// Env var for the gRPC listener address.
pub(crate) const ENV_GRPC_ADDR: &str = "GATEHOUSE_GRPC_ADDR";
/// Env var for the HTTP listener address.
pub(crate) const ENV_HTTP_ADDR: &str = "GATEHOUSE_HTTP_ADDR";
/// Env var for the tracing filter.
pub(crate) const ENV_LOG: &str = "GATEHOUSE_LOG";
/// Env var for the log format (`text` or `json`).
pub(crate) const ENV_LOG_FORMAT: &str = "GATEHOUSE_LOG_FORMAT";
/// Better Auth base URL: adds the `better-auth` JWKS provider.
pub(crate) const ENV_BETTER_AUTH_URL: &str = "BETTER_AUTH_URL";
/// Better Auth secret: adds the `better-auth-secret` HS256 provider and
/// signs session cookies.
pub(crate) const ENV_BETTER_AUTH_SECRET: &str = "BETTER_AUTH_SECRET";

/// Name of the provider `BETTER_AUTH_URL` adds.
pub(crate) const BETTER_AUTH_PROVIDER: &str = "better-auth";
/// Name of the provider `BETTER_AUTH_SECRET` adds.
pub(crate) const BETTER_AUTH_SECRET_PROVIDER: &str = "better-auth-secret";

pub(crate) const DEFAULT_GRPC_ADDR: &str = "0.0.0.0:9001";
pub(crate) const DEFAULT_HTTP_ADDR: &str = "0.0.0.0:8080";
pub(crate) const DEFAULT_LOG: &str = "info";
pub(crate) const DEFAULT_SESSION_COOKIE: &str = "better-auth.session_token";
/// The name Better Auth gives its session cookie over https.
pub(crate) const DEFAULT_SECURE_SESSION_COOKIE: &str = "__Secure-better-auth.session_token";
/// Where `BETTER_AUTH_URL` alone looks sessions up.
pub(crate) const BETTER_AUTH_GET_SESSION: &str = "/api/auth/get-session";
pub(crate) const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(300);
pub(crate) const DEFAULT_UNKNOWN_KID_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
pub(crate) const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
pub(crate) const DEFAULT_SESSION_CACHE_TTL: Duration = Duration::from_secs(30);
pub(crate) const DEFAULT_SESSION_CACHE_MAX_ENTRIES: u64 = 100_000;
pub(crate) const DEFAULT_POSTGRES_MAX_CONNECTIONS: usize = 8;
pub(crate) const DEFAULT_SHUTDOWN_DELAY: Duration = Duration::from_secs(5);
pub(crate) const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
pub(crate) const DEFAULT_TOKEN_CACHE_MAX_MEMORY: &str = "64MiB";
pub(crate) const DEFAULT_REDIS_URL_ENV: &str = "REDIS_URL";
pub(crate) const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(25);
pub(crate) const DEFAULT_REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
pub(crate) const DEFAULT_BREAKER_FAILURES: u32 = 5;
pub(crate) const DEFAULT_BREAKER_COOLDOWN: Duration = Duration::from_secs(2);
pub(crate) const DEFAULT_KEY_PREFIX: &str = "gatehouse:";
pub(crate) const DEFAULT_REVOCATION_RETENTION: Duration = Duration::from_secs(24 * 3600);
pub(crate) const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:9002";

/// A snapshot of environment variables.
///
/// Values may be secrets, so `Debug` prints variable names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Env {
    /// Variable name → value, as captured.
    vars: HashMap<String, String>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.vars.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Env").field("names", &names).finish()
    }
}

impl Env {
    /// Captures the process environment (variables that are not valid
    /// UTF-8 are skipped).
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// Returns `self` with `name` set to `value`.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// The value of `name` when it is set and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Env {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self {
            vars: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

/// Everything a load reads besides the file itself.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--config`; falls back to `GATEHOUSE_CONFIG`, then to no file.
    pub config_path: Option<PathBuf>,
    /// `--grpc-addr`.
    pub grpc_addr: Option<String>,
    /// `--http-addr`.
    pub http_addr: Option<String>,
    /// The environment to read `GATEHOUSE_*` and `BETTER_AUTH_*` from.
    pub env: Env,
}

impl LoadOptions {
    /// Options with no flags, reading the process environment.
    pub fn from_process() -> Self {
        Self {
            env: Env::from_process(),
            ..Self::default()
        }
    }

    /// The config file to read: the flag, else `GATEHOUSE_CONFIG`.
    pub fn effective_path(&self) -> Option<PathBuf> {
        self.config_path
            .clone()
            .or_else(|| self.env.get(ENV_CONFIG).map(PathBuf::from))
    }
}

impl Config {
    /// Reads the file (if any), layers env and flags, validates and compiles.
    pub fn load(opts: &LoadOptions) -> Result<Config, ConfigError> {
        let text = match opts.effective_path() {
            Some(path) => std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::new("config", format!("cannot read {}: {e}", path.display()))
            })?,
            None => String::new(),
        };
        Config::from_yaml(&text, opts)
    }

    /// Like [`Config::load`] with `text` as the file's contents
    /// (`opts.config_path` is not read).
    pub fn from_yaml(text: &str, opts: &LoadOptions) -> Result<Config, ConfigError> {
        let raw = parse_yaml(text)?;
        let raw = layer(raw, opts)?;
        Config::compile(raw, &opts.env)
    }

    /// Validates and compiles an already layered config. `env` is only read
    /// for the variables the config names (`secret_env`, `url_env`,
    /// `BETTER_AUTH_SECRET` for session cookies).
    pub fn compile(raw: RawConfig, env: &Env) -> Result<Config, ConfigError> {
        compile(raw, env)
    }

    /// The effective config as YAML, secrets redacted (they are never part
    /// of [`Config::effective`]).
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(&self.effective)
            .unwrap_or_else(|e| format!("# cannot render the effective config: {e}\n"))
    }

    /// Providers without an issuer: they accept tokens whatever their `iss`.
    pub fn issuerless_providers(&self) -> impl Iterator<Item = &ProviderSpec> {
        self.providers.iter().filter(|p| p.issuer.is_none())
    }
}

/// Parses the YAML text of a config file. Empty text (or a YAML `null`)
/// is an empty config. Errors name the offending key.
pub fn parse_yaml(text: &str) -> Result<RawConfig, ConfigError> {
    if text.trim().is_empty() {
        return Ok(RawConfig::default());
    }
    match serde_yaml_ng::from_str::<Option<RawConfig>>(text) {
        Ok(raw) => Ok(raw.unwrap_or_default()),
        Err(e) => Err(yaml_error(&e.to_string())),
    }
}

/// Turns serde_yaml_ng's `path: message at line L column C` into a
/// [`ConfigError`] whose key is the path (plus the unknown field's name
/// when that is the complaint).
fn yaml_error(text: &str) -> ConfigError {
    let (path, message) = match text.split_once(": ") {
        Some((p, m)) if !p.is_empty() && !p.contains(' ') => (p.to_owned(), m.to_owned()),
        _ => (String::new(), text.to_owned()),
    };
    let field = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name.to_owned())
        // An empty key (`'': 1`) names nothing: the path names the place.
        .filter(|name| !name.is_empty());
    let key = match (path.as_str(), field) {
        ("" | ".", Some(f)) => f,
        ("" | ".", None) => "config".to_owned(),
        (p, Some(f)) => format!("{p}.{f}"),
        (p, None) => p.to_owned(),
    };
    ConfigError::new(key, message)
}

/// Applies env and flags on top of the file (flag > env > file).
pub(crate) fn layer(mut raw: RawConfig, opts: &LoadOptions) -> Result<RawConfig, ConfigError> {
    let env = &opts.env;
    raw.grpc_addr = pick_addr(
        raw.grpc_addr,
        opts.grpc_addr.as_deref(),
        "--grpc-addr",
        env,
        ENV_GRPC_ADDR,
    )?;
    raw.http_addr = pick_addr(
        raw.http_addr,
        opts.http_addr.as_deref(),
        "--http-addr",
        env,
        ENV_HTTP_ADDR,
    )?;

    if let Some(level) = env.get(ENV_LOG) {
        raw.log.get_or_insert_with(RawLog::default).level = Some(level.to_owned());
    }
    if let Some(format) = env.get(ENV_LOG_FORMAT) {
        parse_log_format(format).map_err(|m| ConfigError::new(ENV_LOG_FORMAT, m))?;
        raw.log.get_or_insert_with(RawLog::default).format = Some(format.to_owned());
    }

    let url = match env.get(ENV_BETTER_AUTH_URL) {
        Some(u) => {
            let trimmed = u.trim().trim_end_matches('/').to_owned();
            check_http_url(&trimmed).map_err(|m| ConfigError::new(ENV_BETTER_AUTH_URL, m))?;
            Some(trimmed)
        }
        None => None,
    };
    if let Some(url) = &url {
        upsert_provider(
            &mut raw.providers,
            RawProvider {
                name: BETTER_AUTH_PROVIDER.to_owned(),
                issuer: Some(url.clone()),
                audiences: vec![url.clone()],
                jwks_uri: Some(format!("{url}/api/auth/jwks")),
                ..RawProvider::default()
            },
        );
    }
    // One variable protects browsers too: their session cookie is looked up
    // where Better Auth answers it, unless the file chose a session store.
    if let Some(url) = &url
        && raw.session.is_none()
    {
        raw.session = Some(RawSession {
            introspect_url: Some(format!("{url}{BETTER_AUTH_GET_SESSION}")),
            ..RawSession::default()
        });
    }
    if env.get(ENV_BETTER_AUTH_SECRET).is_some() {
        upsert_provider(
            &mut raw.providers,
            RawProvider {
                name: BETTER_AUTH_SECRET_PROVIDER.to_owned(),
                issuer: url.clone(),
                audiences: url.iter().cloned().collect(),
                secret_env: Some(ENV_BETTER_AUTH_SECRET.to_owned()),
                algorithms: Some(vec![Alg::HS256.as_str().to_owned()]),
                ..RawProvider::default()
            },
        );
    }
    Ok(raw)
}

/// flag > env > file for one listener address; flag and env values are
/// checked here so their errors name the flag or the variable.
fn pick_addr(
    file: Option<String>,
    flag: Option<&str>,
    flag_name: &str,
    env: &Env,
    env_name: &str,
) -> Result<Option<String>, ConfigError> {
    if let Some(v) = flag {
        parse_addr(v).map_err(|m| ConfigError::new(flag_name, m))?;
        return Ok(Some(v.to_owned()));
    }
    if let Some(v) = env.get(env_name) {
        parse_addr(v).map_err(|m| ConfigError::new(env_name, m))?;
        return Ok(Some(v.to_owned()));
    }
    Ok(file)
}

/// An env provider overrides a file provider of the same name, in place:
/// the env decides where the keys come from and whom tokens are for
/// (issuer, audiences, key source); tuning the file sets (refresh and
/// refetch intervals, leeway, required claims, lifetime, an algorithm
/// allow-list) is kept. Otherwise the env provider is appended.
fn upsert_provider(providers: &mut Vec<RawProvider>, p: RawProvider) {
    match providers.iter_mut().find(|q| q.name == p.name) {
        Some(slot) => {
            slot.issuer = p.issuer;
            slot.audiences = p.audiences;
            slot.jwks_uri = p.jwks_uri;
            slot.discovery = p.discovery;
            slot.jwks_file = p.jwks_file;
            slot.secret_env = p.secret_env;
            slot.secret = p.secret;
            if slot.algorithms.is_none() {
                slot.algorithms = p.algorithms;
            }
        }
        None => providers.push(p),
    }
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.trim()
        .parse::<SocketAddr>()
        .map_err(|_| format!("{s:?} is not a socket address (expected IP:PORT, e.g. 0.0.0.0:8080)"))
}

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("{s:?} is not a log format (expected text or json)")),
    }
}

/// An absolute `http://` or `https://` URL with a host.
fn check_http_url(s: &str) -> Result<(), String> {
    let uri: http::Uri = s
        .parse()
        .map_err(|e| format!("{s:?} is not a valid URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => return Err(format!("{s:?}: scheme {other:?} is not http or https")),
        None => return Err(format!("{s:?} is not an absolute http(s) URL")),
    }
    match uri.host() {
        Some(h) if !h.is_empty() => Ok(()),
        _ => Err(format!("{s:?} has no host")),
    }
}

/// Parses a memory size: a plain byte count, or a number with a unit
/// (`B`, `KB`/`MB`/`GB` = powers of 1000, `KiB`/`MiB`/`GiB` = powers of
/// 1024; case-insensitive, optional space).
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 64MiB, 500MB, 1048576)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use B, KB, MB, GB, KiB, MiB or GiB)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

fn compile(raw: RawConfig, env: &Env) -> Result<Config, ConfigError> {
    let mut eff = raw;

    let grpc_addr = eff
        .grpc_addr
        .get_or_insert_with(|| DEFAULT_GRPC_ADDR.to_owned());
    let grpc_addr = parse_addr(grpc_addr).map_err(|m| ConfigError::new("grpc_addr", m))?;
    let http_addr = eff
        .http_addr
        .get_or_insert_with(|| DEFAULT_HTTP_ADDR.to_owned());
    let http_addr = parse_addr(http_addr).map_err(|m| ConfigError::new("http_addr", m))?;

    // Providers.
    let mut providers = Vec::with_capacity(eff.providers.len());
    for (i, p) in eff.providers.iter_mut().enumerate() {
        let key = format!("providers[{i}]");
        let spec = compile_provider(p, &key, env)?;
        if providers.iter().any(|q: &ProviderSpec| q.name == spec.name) {
            return Err(ConfigError::new(
                format!("{key}.name"),
                format!("duplicate provider name {:?}", spec.name),
            ));
        }
        providers.push(spec);
    }

    // Token sources.
    let raw_sources = eff.token_sources.get_or_insert_with(|| {
        vec![
            RawTokenSource::Header("authorization".to_owned()),
            RawTokenSource::Cookie(DEFAULT_SESSION_COOKIE.to_owned()),
            RawTokenSource::Cookie(DEFAULT_SECURE_SESSION_COOKIE.to_owned()),
        ]
    });
    if raw_sources.is_empty() {
        return Err(ConfigError::new(
            "token_sources",
            "at least one token source is needed",
        ));
    }
    let mut token_sources = Vec::with_capacity(raw_sources.len());
    for (i, s) in raw_sources.iter().enumerate() {
        token_sources.push(compile_token_source(s, &format!("token_sources[{i}]"))?);
    }

    // Identity headers.
    let identity_map = eff.identity_headers.get_or_insert_with(|| {
        BTreeMap::from([
            ("x-user-id".to_owned(), "sub".to_owned()),
            ("x-user-email".to_owned(), "email".to_owned()),
            ("x-user-name".to_owned(), "name".to_owned()),
        ])
    });
    let identity_headers =
        IdentityHeaders::compile(identity_map.iter().map(|(h, c)| (h.as_str(), c.as_str())))?;

    // Rules. A rule without `access` is printed with the one it gets.
    for rule in &mut eff.rules {
        rule.access.get_or_insert(Access::Authenticated);
    }
    let default_access = *eff.default_access.get_or_insert(Access::Authenticated);
    let allow_cors_preflight = *eff.allow_cors_preflight.get_or_insert(true);
    let mut rules = RuleSet::compile(&eff.rules, default_access, allow_cors_preflight)?;

    // Shared store, rate limits, revocations, admin API.
    let redis = compile_redis(eff.redis.get_or_insert_with(RawRedis::default), env)?;
    let rate_limits = compile_rate_limits(
        eff.rate_limits.get_or_insert_with(RawRateLimits::default),
        redis.as_ref(),
    )?;
    let names: Vec<&str> = rate_limits.policies.iter().map(|p| &*p.name).collect();
    rules.bind_rate_limits(&names)?;
    let revocation_retention = *eff
        .revocation
        .get_or_insert_with(RawRevocation::default)
        .retention
        .get_or_insert(DEFAULT_REVOCATION_RETENTION);
    if revocation_retention.is_zero() {
        return Err(ConfigError::new(
            "revocation.retention",
            "must be longer than zero",
        ));
    }
    let admin = compile_admin(eff.admin.get_or_insert_with(RawAdmin::default))?;

    // Session.
    let session = match eff.session.as_mut() {
        Some(s) => Some(compile_session(s, env)?),
        None => None,
    };

    // What only Better Auth's tables can answer needs them.
    let postgres = matches!(
        session.as_ref().map(|s| &s.backend),
        Some(SessionBackend::Postgres { .. })
    );
    if !postgres {
        let why = "needs session.postgres: only Better Auth's tables can answer it \
                   (the get-session endpoint cannot)";
        if let Some(i) = providers.iter().position(|p| p.session_claim.is_some()) {
            return Err(ConfigError::new(
                format!("providers[{i}].session_claim"),
                why,
            ));
        }
        if let Some(i) = eff.rules.iter().position(|r| r.organization.is_some()) {
            return Err(ConfigError::new(format!("rules[{i}].organization"), why));
        }
    }

    let everything_public = default_access == Access::Public
        && eff.rules.iter().all(|r| r.access == Some(Access::Public));
    if providers.is_empty() && session.is_none() && !everything_public {
        return Err(ConfigError::new(
            "providers",
            "at least one provider is needed (or set BETTER_AUTH_URL / BETTER_AUTH_SECRET) \
             unless every rule and default_access are public",
        ));
    }

    // The HTTP door.
    let http = eff.http.get_or_insert_with(RawHttp::default);
    let request_headers = *http.request_headers.get_or_insert(RequestHeaders::Auto);
    let trail = crate::trail::TrailSettings::compile(
        *http.decision_trail.get_or_insert(false),
        http.admin_networks.get_or_insert_with(Vec::new),
    )?;

    // Token cache.
    let cache = eff.token_cache.get_or_insert_with(RawTokenCache::default);
    let enabled = *cache.enabled.get_or_insert(true);
    let max_memory = cache
        .max_memory
        .get_or_insert_with(|| DEFAULT_TOKEN_CACHE_MAX_MEMORY.to_owned());
    let max_bytes =
        parse_size(max_memory).map_err(|m| ConfigError::new("token_cache.max_memory", m))?;
    let token_cache_max_bytes = if enabled { max_bytes } else { 0 };

    let shutdown_delay = *eff.shutdown_delay.get_or_insert(DEFAULT_SHUTDOWN_DELAY);
    let shutdown_grace = *eff.shutdown_grace.get_or_insert(DEFAULT_SHUTDOWN_GRACE);

    // TLS.
    let tls = match &eff.tls {
        Some(t) => Some(compile_tls(t, "tls")?),
        None => None,
    };

    // Logging.
    let log = eff.log.get_or_insert_with(RawLog::default);
    let log_filter = log
        .level
        .get_or_insert_with(|| DEFAULT_LOG.to_owned())
        .clone();
    if log_filter.trim().is_empty() {
        return Err(ConfigError::new("log.level", "must not be empty"));
    }
    let log_format = parse_log_format(log.format.get_or_insert_with(|| "text".to_owned()))
        .map_err(|m| ConfigError::new("log.format", m))?;

    Ok(Config {
        effective: eff,
        grpc_addr,
        http_addr,
        providers,
        token_sources,
        identity_headers,
        rules,
        default_access,
        allow_cors_preflight,
        session,
        request_headers,
        trail,
        token_cache_max_bytes,
        shutdown_delay,
        shutdown_grace,
        tls,
        log_filter,
        log_format,
        redis,
        rate_limits,
        revocation_retention,
        admin,
    })
}

/// `redis`: defaults filled in; `None` when the URL variable is unset.
fn compile_redis(r: &mut RawRedis, env: &Env) -> Result<Option<StoreSpec>, ConfigError> {
    let url_env = r
        .url_env
        .get_or_insert_with(|| DEFAULT_REDIS_URL_ENV.to_owned())
        .clone();
    let timeout = *r.timeout.get_or_insert(DEFAULT_REDIS_TIMEOUT);
    let connect_timeout = *r
        .connect_timeout
        .get_or_insert(DEFAULT_REDIS_CONNECT_TIMEOUT);
    let breaker_failures = *r.breaker_failures.get_or_insert(DEFAULT_BREAKER_FAILURES);
    let breaker_cooldown = *r.breaker_cooldown.get_or_insert(DEFAULT_BREAKER_COOLDOWN);
    let key_prefix = r
        .key_prefix
        .get_or_insert_with(|| DEFAULT_KEY_PREFIX.to_owned())
        .clone();
    for (key, d) in [
        ("redis.timeout", timeout),
        ("redis.connect_timeout", connect_timeout),
        ("redis.breaker_cooldown", breaker_cooldown),
    ] {
        if d.is_zero() {
            return Err(ConfigError::new(key, "must be longer than zero"));
        }
    }
    if breaker_failures == 0 {
        return Err(ConfigError::new(
            "redis.breaker_failures",
            "must be at least 1",
        ));
    }
    let Some(url) = env.get(&url_env) else {
        return Ok(None);
    };
    let scheme_ok = ["redis://", "rediss://", "redis+unix://", "unix://"]
        .iter()
        .any(|s| url.starts_with(s));
    if !scheme_ok {
        return Err(ConfigError::new(
            "redis.url_env",
            format!("{url_env} must be a redis:// or rediss:// URL"),
        ));
    }
    Ok(Some(StoreSpec {
        url: Secret(url.as_bytes().to_vec()),
        url_env,
        timeout,
        connect_timeout,
        breaker_failures,
        breaker_cooldown,
        key_prefix,
    }))
}

/// `rate_limits`: policies sorted by name, burst defaulted to the count.
fn compile_rate_limits(
    r: &mut RawRateLimits,
    redis: Option<&StoreSpec>,
) -> Result<RateLimitSpec, ConfigError> {
    let on_store_error = *r.on_store_error.get_or_insert_default();
    let mut policies = Vec::with_capacity(r.policies.len());
    for (name, p) in &mut r.policies {
        policies.push(compile_policy(name, p)?);
    }
    if !policies.is_empty() && redis.is_none() {
        return Err(ConfigError::new(
            "rate_limits",
            "rate limits are shared through Redis: set REDIS_URL (or the variable \
             redis.url_env names) to a redis:// or rediss:// URL",
        ));
    }
    Ok(RateLimitSpec {
        on_store_error,
        policies,
    })
}

fn compile_policy(name: &str, p: &mut RawPolicy) -> Result<RatePolicy, ConfigError> {
    let key = |k: &str| format!("rate_limits.policies.{name}.{k}");
    let valid_name = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid_name {
        return Err(ConfigError::new(
            format!("rate_limits.policies.{name}"),
            "a policy name is letters, digits, '-' and '_'",
        ));
    }
    if p.key.is_empty() {
        return Err(ConfigError::new(
            key("key"),
            "names what counts as one caller, e.g. [sub] or [client_ip]",
        ));
    }
    let mut parts = Vec::with_capacity(p.key.len());
    for (i, part) in p.key.iter().enumerate() {
        let part = match part.as_str() {
            "client_ip" => KeyPart::ClientIp,
            "api_key_id" => {
                return Err(ConfigError::new(
                    format!("{}[{i}]", key("key")),
                    "api_key_id needs API keys, which this version does not verify; \
                     use a claim such as sub",
                ));
            }
            "" => {
                return Err(ConfigError::new(
                    format!("{}[{i}]", key("key")),
                    "an empty key part; name a claim or client_ip",
                ));
            }
            claim => KeyPart::Claim(claim.to_owned()),
        };
        parts.push(part);
    }
    let (count, period) = parse_rate(&p.rate).map_err(|m| ConfigError::new(key("rate"), m))?;
    let burst = *p.burst.get_or_insert(count);
    if burst == 0 {
        return Err(ConfigError::new(key("burst"), "must be at least 1"));
    }
    Ok(RatePolicy {
        name: std::sync::Arc::from(name),
        key: parts,
        count,
        period,
        burst,
    })
}

/// `COUNT/PERIOD`: `600/1m`, `10/s`, `5000/1h`, `100/10s`.
pub(crate) fn parse_rate(s: &str) -> Result<(u64, Duration), String> {
    let usage = || format!("{s:?} is not COUNT/PERIOD, e.g. 600/1m, 10/s or 5000/1h");
    let (count, period) = s.trim().split_once('/').ok_or_else(usage)?;
    let count: u64 = count.trim().parse().map_err(|_| usage())?;
    if count == 0 || count > u64::from(u32::MAX) {
        return Err(format!("{s:?}: COUNT must be between 1 and {}", u32::MAX));
    }
    let period = period.trim();
    let unit_only = matches!(period, "ms" | "s" | "m" | "h" | "d");
    let period = if unit_only {
        format!("1{period}")
    } else {
        period.to_owned()
    };
    let period = humantime::parse_duration(&period).map_err(|_| usage())?;
    if period < Duration::from_millis(1) {
        return Err(format!("{s:?}: PERIOD must be at least 1ms"));
    }
    if period > Duration::from_secs(7 * 24 * 3600) {
        return Err(format!("{s:?}: PERIOD must be at most 7 days"));
    }
    if period.as_nanos() / u128::from(count) == 0 {
        return Err(format!("{s:?}: more than one request per nanosecond"));
    }
    Ok((count, period))
}

/// `admin`: loopback by default.
fn compile_admin(a: &mut RawAdmin) -> Result<AdminSpec, ConfigError> {
    let addr = a
        .addr
        .get_or_insert_with(|| DEFAULT_ADMIN_ADDR.to_owned())
        .clone();
    let addr = parse_addr(&addr).map_err(|m| ConfigError::new("admin.addr", m))?;
    let tls = match &a.tls {
        Some(t) => Some(compile_tls(t, "admin.tls")?),
        None => None,
    };
    Ok(AdminSpec { addr, tls })
}

fn compile_tls(t: &RawTls, key: &str) -> Result<TlsSpec, ConfigError> {
    check_file(&t.cert_file).map_err(|m| ConfigError::new(format!("{key}.cert_file"), m))?;
    check_file(&t.key_file).map_err(|m| ConfigError::new(format!("{key}.key_file"), m))?;
    if let Some(ca) = &t.client_ca_file {
        check_file(ca).map_err(|m| ConfigError::new(format!("{key}.client_ca_file"), m))?;
    }
    Ok(TlsSpec {
        cert_file: t.cert_file.clone(),
        key_file: t.key_file.clone(),
        client_ca_file: t.client_ca_file.clone(),
    })
}

/// Validates one provider and fills its defaults into `p` (the effective
/// config shows them).
fn compile_provider(
    p: &mut RawProvider,
    key: &str,
    env: &Env,
) -> Result<ProviderSpec, ConfigError> {
    let k = |field: &str| format!("{key}.{field}");
    if p.name.trim().is_empty() {
        return Err(ConfigError::new(k("name"), "must not be empty"));
    }
    let sources = [
        p.jwks_uri.is_some(),
        p.discovery.is_some(),
        p.jwks_file.is_some(),
        p.secret_env.is_some() || p.secret.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() != 1 {
        return Err(ConfigError::new(
            key,
            format!(
                "provider {:?} needs exactly one of jwks_uri, discovery, jwks_file, secret_env",
                p.name
            ),
        ));
    }
    let keys = if let Some(uri) = &p.jwks_uri {
        check_http_url(uri).map_err(|m| ConfigError::new(k("jwks_uri"), m))?;
        KeySource::JwksUri(uri.clone())
    } else if let Some(url) = &p.discovery {
        check_http_url(url).map_err(|m| ConfigError::new(k("discovery"), m))?;
        KeySource::Discovery(url.clone())
    } else if let Some(file) = &p.jwks_file {
        check_file(file).map_err(|m| ConfigError::new(k("jwks_file"), m))?;
        KeySource::File(file.clone())
    } else if let Some(var) = &p.secret_env {
        match env.get(var) {
            Some(value) => KeySource::Secret(Secret(value.as_bytes().to_vec())),
            None => {
                return Err(ConfigError::new(
                    k("secret_env"),
                    format!("environment variable {var} is not set or is empty"),
                ));
            }
        }
    } else if let Some(secret) = p.secret.as_ref().filter(|s| !s.is_empty()) {
        KeySource::Secret(Secret(secret.as_bytes().to_vec()))
    } else {
        return Err(ConfigError::new(k("secret_env"), "the secret is empty"));
    };

    if let Some(issuer) = &p.issuer {
        if issuer.trim().is_empty() {
            return Err(ConfigError::new(k("issuer"), "must not be empty"));
        }
    } else if matches!(keys, KeySource::JwksUri(_)) {
        return Err(ConfigError::new(
            k("issuer"),
            "a jwks_uri provider needs an issuer (tokens are matched to providers by iss)",
        ));
    }
    for (j, a) in p.audiences.iter().enumerate() {
        if a.trim().is_empty() {
            return Err(ConfigError::new(
                format!("{key}.audiences[{j}]"),
                "must not be empty",
            ));
        }
    }

    let is_secret = matches!(keys, KeySource::Secret(_));
    let algorithms = match &p.algorithms {
        None => None,
        Some(list) if list.is_empty() => {
            return Err(ConfigError::new(
                k("algorithms"),
                "must list at least one algorithm (or be left out)",
            ));
        }
        Some(list) => {
            let mut algs = Vec::with_capacity(list.len());
            for (j, name) in list.iter().enumerate() {
                let akey = format!("{key}.algorithms[{j}]");
                let alg = Alg::parse(name.trim()).ok_or_else(|| {
                    ConfigError::new(
                        &akey,
                        format!(
                            "unknown algorithm {name:?} (known: {})",
                            Alg::ALL.map(Alg::as_str).join(", ")
                        ),
                    )
                })?;
                if alg.is_hmac() && !is_secret {
                    return Err(ConfigError::new(
                        &akey,
                        format!(
                            "{} needs a secret_env provider, not a key set",
                            alg.as_str()
                        ),
                    ));
                }
                if !alg.is_hmac() && is_secret {
                    return Err(ConfigError::new(
                        &akey,
                        format!(
                            "a secret_env provider accepts HS256, HS384 or HS512, not {}",
                            alg.as_str()
                        ),
                    ));
                }
                if !algs.contains(&alg) {
                    algs.push(alg);
                }
            }
            Some(algs)
        }
    };

    let refresh_interval = *p.refresh_interval.get_or_insert(DEFAULT_REFRESH_INTERVAL);
    if refresh_interval.is_zero() {
        return Err(ConfigError::new(
            k("refresh_interval"),
            "must be more than 0s",
        ));
    }
    let unknown_kid_refetch_interval = *p
        .unknown_kid_refetch_interval
        .get_or_insert(DEFAULT_UNKNOWN_KID_REFETCH_INTERVAL);
    let leeway = *p.leeway.get_or_insert(DEFAULT_LEEWAY);
    let require = p
        .require
        .get_or_insert_with(|| vec!["exp".to_owned()])
        .clone();
    for (j, c) in require.iter().enumerate() {
        if c.trim().is_empty() {
            return Err(ConfigError::new(
                format!("{key}.require[{j}]"),
                "must not be empty",
            ));
        }
    }
    if let Some(max) = p.max_lifetime
        && max.is_zero()
    {
        return Err(ConfigError::new(k("max_lifetime"), "must be more than 0s"));
    }

    Ok(ProviderSpec {
        name: p.name.clone(),
        issuer: p.issuer.clone(),
        audiences: p.audiences.clone(),
        keys,
        algorithms,
        refresh_interval,
        unknown_kid_refetch_interval,
        leeway,
        require,
        max_lifetime: p.max_lifetime,
        session_claim: match &p.session_claim {
            Some(c) if c.trim().is_empty() || c.contains('.') => {
                return Err(ConfigError::new(
                    k("session_claim"),
                    format!("{c:?} is not a top-level claim name"),
                ));
            }
            other => other.clone(),
        },
    })
}

fn compile_token_source(s: &RawTokenSource, key: &str) -> Result<TokenSource, ConfigError> {
    match s {
        RawTokenSource::Header(h) => {
            let name = h.trim().to_ascii_lowercase();
            http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                ConfigError::new(
                    format!("{key}.header"),
                    format!("{h:?} is not a header name"),
                )
            })?;
            if name == "authorization" {
                Ok(TokenSource::Bearer)
            } else {
                Ok(TokenSource::Header(name))
            }
        }
        RawTokenSource::Cookie(c) => {
            let bad = c.is_empty()
                || c.chars()
                    .any(|ch| ch.is_ascii_control() || ch.is_whitespace() || "=;,\"".contains(ch));
            if bad {
                return Err(ConfigError::new(
                    format!("{key}.cookie"),
                    format!("{c:?} is not a cookie name"),
                ));
            }
            Ok(TokenSource::Cookie(c.clone()))
        }
        RawTokenSource::Query(q) => {
            if q.is_empty()
                || q.chars()
                    .any(|ch| ch.is_ascii_control() || "&=#? ".contains(ch))
            {
                return Err(ConfigError::new(
                    format!("{key}.query"),
                    format!("{q:?} is not a query parameter name"),
                ));
            }
            Ok(TokenSource::Query(q.clone()))
        }
    }
}

fn compile_session(s: &mut RawSession, env: &Env) -> Result<SessionSpec, ConfigError> {
    let backend = match (&s.introspect_url, &mut s.postgres) {
        (Some(url), None) => {
            check_http_url(url).map_err(|m| ConfigError::new("session.introspect_url", m))?;
            SessionBackend::Introspect(url.clone())
        }
        (None, Some(pg)) => compile_postgres(pg, env)?,
        _ => {
            return Err(ConfigError::new(
                "session",
                "needs exactly one of introspect_url, postgres",
            ));
        }
    };
    let cache_ttl = *s.cache_ttl.get_or_insert(DEFAULT_SESSION_CACHE_TTL);
    let cache_max_entries = *s
        .cache_max_entries
        .get_or_insert(DEFAULT_SESSION_CACHE_MAX_ENTRIES);
    let secret = match &s.secret_env {
        Some(var) => match env.get(var) {
            Some(v) => Some(Secret(v.as_bytes().to_vec())),
            None => {
                return Err(ConfigError::new(
                    "session.secret_env",
                    format!("environment variable {var} is not set or is empty"),
                ));
            }
        },
        None => env
            .get(ENV_BETTER_AUTH_SECRET)
            .map(|v| Secret(v.as_bytes().to_vec())),
    };
    let postgres = matches!(backend, SessionBackend::Postgres { .. });
    let check_banned = *s.check_banned.get_or_insert(postgres);
    if check_banned && !postgres {
        return Err(ConfigError::new(
            "session.check_banned",
            "bans are read from Better Auth's \"user\" table: it needs session.postgres",
        ));
    }
    Ok(SessionSpec {
        backend,
        cache_ttl,
        cache_max_entries,
        secret,
        check_banned,
    })
}

fn compile_postgres(pg: &mut RawPostgres, env: &Env) -> Result<SessionBackend, ConfigError> {
    let Some(var) = &pg.url_env else {
        return Err(ConfigError::new(
            "session.postgres.url_env",
            "names the environment variable holding the connection URL and is required",
        ));
    };
    let Some(url) = env.get(var) else {
        return Err(ConfigError::new(
            "session.postgres.url_env",
            format!("environment variable {var} is not set or is empty"),
        ));
    };
    let max_connections = *pg
        .max_connections
        .get_or_insert(DEFAULT_POSTGRES_MAX_CONNECTIONS);
    if max_connections == 0 {
        return Err(ConfigError::new(
            "session.postgres.max_connections",
            "must be at least 1",
        ));
    }
    Ok(SessionBackend::Postgres {
        url: Secret(url.as_bytes().to_vec()),
        max_connections,
    })
}

fn check_file(path: &str) -> Result<(), String> {
    match std::fs::metadata(Path::new(path)) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(format!("{path} is not a file")),
        Err(e) => Err(format!("cannot read {path}: {e}")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("64 mib"), Ok(64 << 20));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("64XB").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
        assert!(parse_size("18446744073709551615GiB").is_err());
    }

    #[test]
    fn urls() {
        assert!(check_http_url("https://a.example/x").is_ok());
        assert!(check_http_url("http://127.0.0.1:3000").is_ok());
        assert!(check_http_url("ftp://a.example").is_err());
        assert!(check_http_url("a.example/x").is_err());
        assert!(check_http_url("not a url").is_err());
    }

    #[test]
    fn yaml_error_keys() {
        let e = yaml_error(
            "providers[0]: unknown field `jwks_url`, expected one of `name` at line 3 column 5",
        );
        assert_eq!(e.key, "providers[0].jwks_url");
        let e = yaml_error("unknown field `provider`, expected one of `x`");
        assert_eq!(e.key, "provider");
        let e = yaml_error("rules[1].access: unknown variant `everyone`");
        assert_eq!(e.key, "rules[1].access");
    }

    #[test]
    fn env_debug_hides_values() {
        let env = Env::default().with("BETTER_AUTH_SECRET", "hunter2hunter2");
        let shown = format!("{env:?}");
        assert!(shown.contains("BETTER_AUTH_SECRET"));
        assert!(!shown.contains("hunter2"));
    }
}
