//! The transport-neutral brain: [`Authorizer::check`] turns a
//! [`CheckInput`] into a [`Decision`], whichever door the request came
//! through.
//!
//! The line every request walks: normalize the path → find the rule →
//! extract the credential → identity (token cache, verifier or session
//! store) → authorize against the rule → render identity headers. Metrics
//! and exactly one log event are written here, per decision. The doors
//! only build `CheckInput` and render `Decision`; the status mapping lives
//! in [`crate::error`].

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::config::{Access, Config, ConfigError};
use crate::error::{AuthError, ForbiddenKind, InvalidKind, SessionKind};
use crate::extract::{Credential, Extractor};
use crate::identity::{Identity, RenderedHeaders};
use crate::policy::{Captures, OrganizationCheck, Rule, normalize_path};
use crate::ratelimit::{Caller, RateLimiter};
use crate::revocation::Revocations;
use crate::session::SessionStore;
use crate::store::Store;
use crate::telemetry::{Fingerprint, Metrics};
use crate::token_cache::{TokenCache, TokenKey};
use crate::verify::{Verified, Verifier};

/// Which front door asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    Grpc,
    Http,
    Cli,
}

impl Door {
    pub const fn as_str(self) -> &'static str {
        match self {
            Door::Grpc => "grpc",
            Door::Http => "http",
            Door::Cli => "cli",
        }
    }
}

/// The original request, as a door saw it.
#[derive(Debug, Clone)]
pub struct CheckInput {
    pub door: Door,
    pub method: String,
    /// The request target as sent: path plus optional query.
    pub path: String,
    pub host: Option<String>,
    /// The original request's headers (names are case-insensitive).
    pub headers: HeaderMap,
    /// From `x-request-id` when the proxy sent one.
    pub request_id: Option<String>,
    /// The client's address as the proxy described it (Envoy's source
    /// peer; the last `X-Forwarded-For` entry, which the proxy added).
    pub client_ip: Option<std::net::IpAddr>,
}

/// An allowed request.
#[derive(Debug, Clone)]
pub struct Allow {
    /// Identity headers to set (overwrite) and to remove; shared with the
    /// verified-token cache entry when the token came from there.
    pub headers: Arc<RenderedHeaders>,
    /// `None` for public rules and anonymous optional access.
    pub identity: Option<Identity>,
    /// Set when this allow is exactly what the cached token alone allows
    /// (its own identity headers, nothing added for this request), so a
    /// door may reuse what it rendered for the same token before.
    pub token: Option<CachedToken>,
}

/// A token from the verified-token cache, as a door may remember it.
#[derive(Debug, Clone)]
pub struct CachedToken {
    /// The token's cache key (a hash; never the token).
    pub key: TokenKey,
    /// The verification the allow was decided with; a door's memory of
    /// this token is valid only for this very verification.
    pub verified: Arc<Verified>,
}

/// A decision and how it was reached, for the decision trail.
#[derive(Debug)]
pub(crate) struct Traced {
    pub(crate) decision: Decision,
    /// The index of the rule that matched; `None` for `default_access` or
    /// a path that could not be matched.
    pub(crate) rule: Option<usize>,
    /// The decision's fine reason (`authenticated`, `public`, `expired`…).
    pub(crate) reason: &'static str,
}

/// The answer.
#[derive(Debug, Clone)]
pub enum Decision {
    Allow(Allow),
    Deny(AuthError),
}

impl Decision {
    pub fn is_allow(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
}

/// What outlives configuration generations: the shared store and the
/// revocation list that follows it. `serve` makes one at start and hands
/// it to every generation; `verify`, `demo` and the benchmarks run without
/// it.
#[derive(Debug, Clone, Default)]
pub struct Shared {
    /// `None` when no Redis URL is configured.
    pub store: Option<Arc<Store>>,
    /// The revocations every request is checked against (after
    /// identification, cache hits included); `None` without a store.
    pub revocations: Option<Arc<Revocations>>,
}

impl Shared {
    /// Connects lazily to the store `config` names (nothing is sent yet).
    pub fn for_config(config: &Config, metrics: &Arc<Metrics>) -> Result<Shared, ConfigError> {
        let store = match &config.redis {
            Some(spec) => Some(Arc::new(
                Store::new(spec, metrics.clone())
                    .map_err(|m| ConfigError::new("redis.url_env", m))?,
            )),
            None => None,
        };
        let revocations = store
            .as_ref()
            .map(|s| Revocations::new(s.clone(), metrics.clone()));
        Ok(Shared { store, revocations })
    }
}

/// Everything one configuration generation needs to decide.
#[derive(Debug)]
pub struct Authorizer {
    config: Arc<Config>,
    extractor: Extractor,
    verifier: Verifier,
    token_cache: TokenCache,
    sessions: Option<Arc<SessionStore>>,
    /// Providers whose tokens are bound to a live session: name → claim.
    session_claims: Vec<(Arc<str>, String)>,
    /// Whether Better Auth's tables are read (bans, bound sessions,
    /// organizations): `session.postgres`.
    reads_tables: bool,
    metrics: Arc<Metrics>,
    shared: Shared,
    rate_limiter: RateLimiter,
    shutdown: CancellationToken,
}

impl Authorizer {
    /// Builds the authorizer for `config` without touching the network and
    /// without a shared store. Call [`Authorizer::start`] to begin fetching
    /// keys.
    pub fn new(config: Arc<Config>, metrics: Arc<Metrics>) -> Result<Self, ConfigError> {
        Self::with_shared(config, metrics, Shared::default())
    }

    /// [`Authorizer::new`] with the process's shared store.
    pub fn with_shared(
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        shared: Shared,
    ) -> Result<Self, ConfigError> {
        let verifier = Verifier::new(&config.providers, metrics.clone())?;
        let sessions = match &config.session {
            Some(spec) => Some(Arc::new(SessionStore::new(spec)?)),
            None => None,
        };
        let session_claims = config
            .providers
            .iter()
            .filter_map(|p| Some((Arc::from(p.name.as_str()), p.session_claim.clone()?)))
            .collect();
        let reads_tables = matches!(
            config.session.as_ref().map(|s| &s.backend),
            Some(crate::config::SessionBackend::Postgres { .. })
        );
        let rate_limiter =
            RateLimiter::new(&config.rate_limits, shared.store.clone(), metrics.clone());
        Ok(Self {
            rate_limiter,
            extractor: Extractor::new(&config.token_sources),
            token_cache: TokenCache::new(
                crate::token_cache::budget(config.token_cache_max_bytes).0,
            ),
            verifier,
            sessions,
            session_claims,
            reads_tables,
            metrics,
            config,
            shared,
            shutdown: CancellationToken::new(),
        })
    }

    /// What this generation shares with the next one.
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Starts background key refresh (stopped by [`Authorizer::stop`] or
    /// drop) and, with sessions and revocations, the eviction of revoked
    /// sessions from this generation's session caches.
    pub fn start(&self) {
        self.verifier.start(self.shutdown.child_token());
        if let (Some(sessions), Some(revocations)) = (&self.sessions, &self.shared.revocations) {
            tokio::spawn(crate::revocation::evict_sessions(
                sessions.clone(),
                revocations.subscribe(),
                self.shutdown.child_token(),
            ));
        }
    }

    /// Stops background tasks of this generation.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Keys loaded for every remote provider.
    pub fn is_ready(&self) -> bool {
        self.verifier.is_ready()
    }

    /// Decides, records metrics and writes one log event.
    pub async fn check(&self, input: &CheckInput) -> Decision {
        self.check_traced(input).await.decision
    }

    /// [`Authorizer::check`], also saying which rule matched and why, for
    /// the decision trail.
    pub(crate) async fn check_traced(&self, input: &CheckInput) -> Traced {
        let started = Instant::now();
        let outcome = self.decide(input).await;
        let elapsed = started.elapsed();
        self.metrics.verify_duration.observe(elapsed.as_secs_f64());
        let (decision, trace) = outcome;
        let (result, reason) = match &decision {
            Decision::Allow(a) if a.identity.is_some() => ("allow", "authenticated"),
            Decision::Allow(_) => ("allow", trace.anonymous_reason),
            Decision::Deny(e) => ("deny", e.reason()),
        };
        self.metrics
            .count_decision(input.door.as_str(), result, reason);
        let provider = match &decision {
            Decision::Allow(Allow {
                identity: Some(id), ..
            }) => &*id.provider,
            _ => trace.provider.as_deref().unwrap_or(""),
        };
        let status = match &decision {
            Decision::Allow(_) => 200,
            Decision::Deny(e) => e.http_status(),
        };
        // Exactly one event per decision; the request id and fingerprint
        // are formatted only when the event is written.
        tracing::info!(
            authz.request_id = %LogRequestId(input.request_id.as_deref()),
            authz.door = input.door.as_str(),
            authz.method = %input.method,
            authz.route = trace.route,
            authz.result = result,
            authz.reason = reason,
            authz.status = status,
            authz.provider = provider,
            authz.cached = trace.cached,
            authz.token = %OptionalFingerprint(trace.fingerprint),
            authz.latency_us = elapsed.as_micros() as u64,
            "decision"
        );
        Traced {
            decision,
            rule: usize::try_from(trace.route).ok(),
            reason,
        }
    }

    async fn decide(&self, input: &CheckInput) -> (Decision, Trace) {
        let mut trace = Trace::default();
        let decision = match self.decide_inner(input, &mut trace).await {
            Ok(allow) => Decision::Allow(allow),
            Err(e) => Decision::Deny(e),
        };
        (decision, trace)
    }

    async fn decide_inner(
        &self,
        input: &CheckInput,
        trace: &mut Trace,
    ) -> Result<Allow, AuthError> {
        let (raw_path, query) = match input.path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (input.path.as_str(), None),
        };
        let path = normalize_path(raw_path)?;
        let preflight = input.method.eq_ignore_ascii_case("OPTIONS")
            && input.headers.contains_key("access-control-request-method");
        let (rule, captures) =
            self.config
                .rules
                .find(&input.method, input.host.as_deref(), &path, preflight);
        trace.route = rule.index.map_or(-1, |i| i as i64);

        if rule.access == Access::Public {
            trace.anonymous_reason = "public";
            if !rule.rate_limit.is_empty() {
                self.limit(rule, None, input).await?;
            }
            return self.anonymous();
        }
        let credential = self.extractor.extract(&input.headers, query)?;
        let Some(credential) = credential else {
            return match rule.access {
                Access::Optional => {
                    trace.anonymous_reason = "anonymous";
                    if !rule.rate_limit.is_empty() {
                        self.limit(rule, None, input).await?;
                    }
                    self.anonymous()
                }
                _ => Err(AuthError::Missing),
            };
        };
        let (identity, cached) = self.identify(&credential, &input.headers, trace).await?;
        if let Some(revocations) = &self.shared.revocations {
            match &cached {
                Some(c) => {
                    revocations.check_cached(&c.verified, &credential, &self.session_claims)?
                }
                None => revocations.check(&identity, &credential, &self.session_claims)?,
            }
        }
        if self.reads_tables {
            // Boxed: rare next to a cached token's decision, which stays small.
            Box::pin(self.check_tables(&identity)).await?;
        }
        rule.authorize(&identity.claims, &captures)?;
        let render = || self.config.identity_headers.render(Some(&identity.claims));
        let headers = match &cached {
            // A cached token's headers are rendered once and shared.
            Some(c) => match c.verified.headers.get() {
                Some(h) => h.clone(),
                None => {
                    let h = Arc::new(render()?);
                    let _ = c.verified.headers.set(h.clone());
                    h
                }
            },
            None => Arc::new(render()?),
        };
        let (headers, token) = match &rule.organization {
            // The organization joins the identity for this request only: its
            // claims go over the token's own headers, and nothing rendered
            // for the token alone is reused as this request's answer.
            Some(check) => {
                let (org_id, roles) =
                    Box::pin(self.membership(check, &identity, &captures)).await?;
                let joined = [("org_id", org_id), ("org_role", &*roles)];
                let over = self
                    .config
                    .identity_headers
                    .render_over(&headers, &joined)?;
                (Arc::new(over), None)
            }
            None => (headers, cached),
        };
        if !rule.rate_limit.is_empty() {
            self.limit(rule, Some(&identity.claims), input).await?;
        }
        Ok(Allow {
            headers,
            identity: Some(identity),
            token,
        })
    }

    /// Spends from the rule's rate-limit policies: last, once everything
    /// else allowed the request, so refusals cost no quota. Callers test
    /// `rule.rate_limit.is_empty()` first: a rule without policies then
    /// does not even build this future (measured on the cached decision).
    async fn limit(
        &self,
        rule: &Rule,
        claims: Option<&serde_json::Map<String, Value>>,
        input: &CheckInput,
    ) -> Result<(), AuthError> {
        let caller = Caller {
            claims,
            client_ip: input.client_ip,
        };
        Box::pin(self.rate_limiter.check(&rule.rate_limit, caller)).await
    }

    /// What Better Auth's tables say about an identified caller: a token
    /// bound to a session needs that session alive, and a banned user is
    /// refused whatever the credential. Looked up on every request (cached
    /// for `session.cache_ttl`), cached verifications included.
    async fn check_tables(&self, identity: &Identity) -> Result<(), AuthError> {
        let Some(sessions) = &self.sessions else {
            return Ok(());
        };
        if let Some((_, claim)) = self
            .session_claims
            .iter()
            .find(|(provider, _)| **provider == *identity.provider)
        {
            let Some(sid) = identity.claims.get(claim).and_then(Value::as_str) else {
                return Err(AuthError::Invalid(InvalidKind::MissingClaim));
            };
            sessions.check_bound_session(sid, identity.sub()).await?;
        }
        if let Some(sub) = identity.sub() {
            sessions.check_ban(sub).await?;
        }
        Ok(())
    }

    /// Checks membership (and role) in the organization the path names;
    /// returns the organization id and the roles held there.
    async fn membership<'c>(
        &self,
        check: &OrganizationCheck,
        identity: &Identity,
        captures: &'c Captures,
    ) -> Result<(&'c str, Arc<str>), AuthError> {
        let (Some(sessions), Some(org_id), Some(sub)) =
            (&self.sessions, captures.get(&check.param), identity.sub())
        else {
            return Err(AuthError::Forbidden(ForbiddenKind::NotAMember));
        };
        let Some(roles) = sessions.membership(sub, org_id).await? else {
            return Err(AuthError::Forbidden(ForbiddenKind::NotAMember));
        };
        if !check.admits(&roles) {
            return Err(AuthError::Forbidden(ForbiddenKind::OrganizationRole));
        }
        Ok((org_id, roles))
    }

    fn anonymous(&self) -> Result<Allow, AuthError> {
        Ok(Allow {
            headers: Arc::new(self.config.identity_headers.render(None)?),
            identity: None,
            token: None,
        })
    }

    async fn identify(
        &self,
        credential: &Credential,
        headers: &HeaderMap,
        trace: &mut Trace,
    ) -> Result<(Identity, Option<CachedToken>), AuthError> {
        match credential {
            Credential::Jwt { token, .. } => {
                let key = TokenKey::of(token);
                trace.fingerprint = Some(key.fingerprint());
                let verified = self.identify_jwt(token, key, trace).await?;
                trace.provider = Some(verified.identity.provider.clone());
                Ok((
                    verified.identity.clone(),
                    Some(CachedToken { key, verified }),
                ))
            }
            Credential::Session { token, source } => {
                trace.fingerprint = Some(TokenKey::of(token).fingerprint());
                let Some(sessions) = &self.sessions else {
                    // A session token, and no session store to ask: say so.
                    return Err(AuthError::Session(SessionKind::NotConfigured));
                };
                trace.provider = Some(Arc::from("session"));
                // Boxed: the session path's future is large and rare next to
                // a cached token's, which stays small (and cheap to move).
                let lookup = Box::pin(sessions.lookup(token, *source, headers));
                Ok((lookup.await?, None))
            }
        }
    }

    async fn identify_jwt(
        &self,
        token: &str,
        key: TokenKey,
        trace: &mut Trace,
    ) -> Result<Arc<Verified>, AuthError> {
        let now = unix_now();
        if let Some(hit) = self.token_cache.get(&key, now) {
            if self.verifier.key_present(hit.key) {
                self.metrics.token_cache_hit.inc();
                trace.cached = true;
                return Ok(hit);
            }
            self.token_cache.invalidate(&key);
        }
        self.metrics.token_cache_miss.inc();
        // Boxed for the same reason: a miss may fetch keys over HTTP.
        let verified = match Box::pin(self.verifier.verify_traced(token)).await {
            Ok(v) => Arc::new(v),
            Err(rejection) => {
                // The log event names the provider whose keys or rules refused.
                trace.provider = rejection.provider;
                return Err(rejection.error);
            }
        };
        self.token_cache.insert(key, verified.clone());
        Ok(verified)
    }
}

impl Drop for Authorizer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// What the log event needs to know about how a decision was reached.
#[derive(Debug)]
struct Trace {
    route: i64,
    /// The provider that vouched, also for a denial after identification.
    provider: Option<Arc<str>>,
    /// The credential's log tag.
    fingerprint: Option<Fingerprint>,
    cached: bool,
    anonymous_reason: &'static str,
}

impl Default for Trace {
    fn default() -> Self {
        Self {
            route: -1,
            provider: None,
            fingerprint: None,
            cached: false,
            anonymous_reason: "anonymous",
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The longest client-sent request id logged as is; longer ones are cut.
const MAX_REQUEST_ID: usize = 128;

/// The request id for the decision's log event: the proxy's
/// `x-request-id` (cut to [`MAX_REQUEST_ID`] bytes), else a fresh random
/// 64-bit id in hex, so every event can be correlated.
fn log_request_id(sent: Option<&str>) -> std::borrow::Cow<'_, str> {
    match sent.filter(|s| !s.is_empty()) {
        Some(id) if id.len() <= MAX_REQUEST_ID => std::borrow::Cow::Borrowed(id),
        Some(id) => {
            let mut end = MAX_REQUEST_ID;
            while !id.is_char_boundary(end) {
                end -= 1;
            }
            std::borrow::Cow::Borrowed(id.get(..end).unwrap_or(""))
        }
        None => std::borrow::Cow::Owned(format!("{:016x}", rand::random::<u64>())),
    }
}

/// [`log_request_id`], computed only when the event is written.
struct LogRequestId<'a>(Option<&'a str>);

impl std::fmt::Display for LogRequestId<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&log_request_id(self.0))
    }
}

/// A fingerprint, or nothing when no credential was presented.
struct OptionalFingerprint(Option<Fingerprint>);

impl std::fmt::Display for OptionalFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(fp) => fp.fmt(f),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::log_request_id;

    #[test]
    fn request_id_is_kept_cut_or_generated() {
        assert_eq!(log_request_id(Some("abc-1")), "abc-1");
        let long = "é".repeat(100);
        let cut = log_request_id(Some(&long));
        assert!(cut.len() <= 128 && long.starts_with(&*cut) && !cut.is_empty());
        for missing in [None, Some("")] {
            let a = log_request_id(missing);
            let b = log_request_id(missing);
            assert_eq!(a.len(), 16);
            assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
            assert_ne!(a, b);
        }
    }
}
