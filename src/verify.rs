//! Token verification: header policy, provider and key choice, signature,
//! and registered claims.
//!
//! The token is parsed by hand (size cap, three base64url parts, JSON
//! objects). The provider is chosen by `iss` (then by `alg` family when two
//! providers share an issuer), the key by `kid` inside that provider, and
//! the algorithm must be one the key admits. `none` and any `crit` are
//! refused; `jku`/`x5u`/`jwk`/`x5c` are ignored: nothing in a token header
//! is ever fetched or trusted.
//!
//! Keys come from [`crate::jwks`]; this module never touches the network
//! itself, it only asks a remote key set to refetch (rate-limited there).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::config::{Alg, ConfigError, KeySource, ProviderSpec};
use crate::error::{AuthError, InvalidKind, MalformedKind};
use crate::identity::Identity;
use crate::jwks::fetch::{HttpSource, RemoteKeys, Source, http_client};
use crate::jwks::{AlgPolicy, Key, KeySet, parse_jwks};
use crate::telemetry::{KeyAge, Metrics};

/// Largest token accepted (the cap applies to the token itself).
pub(crate) const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Which key verified a token, so cached results can be dropped when the
/// key leaves its set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRef {
    /// Index of the provider in the verifier.
    pub provider: usize,
    /// Process-unique id of the key.
    pub key_id: u64,
}

/// A verified token.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The provider and the verified payload.
    pub identity: Identity,
    /// `exp` in Unix seconds, when present.
    pub exp: Option<u64>,
    /// The key that verified it (see [`Verifier::key_present`]).
    pub key: KeyRef,
    /// The identity headers rendered for this token on its first allow,
    /// shared by every later hit of the verified-token cache.
    pub headers: std::sync::OnceLock<Arc<crate::identity::RenderedHeaders>>,
    /// The revocation list this token was last found clear against, so a
    /// cache hit skips the lookups while the list is unchanged.
    pub revocations: crate::revocation::Cleared,
}

/// A refusal from [`Verifier::verify_traced`]: the error, and the provider
/// the token was tried against once one was chosen by its `iss` (`None` when
/// the token never reached a provider: malformed, refused header, unknown
/// issuer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The refusal, with its usual wire code and reason.
    pub error: AuthError,
    /// The provider whose keys or claim rules refused the token.
    pub provider: Option<Arc<str>>,
}

impl Rejection {
    fn before_provider(error: AuthError) -> Self {
        Self {
            error,
            provider: None,
        }
    }
}

/// What a provider expects of a token, as `gatehouse verify` explains a
/// denial: public facts only (no key material, no secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// The provider's configured name.
    pub provider: String,
    /// The configured (or discovered) issuer; `None` for issuerless setups.
    pub issuer: Option<String>,
    /// Accepted audiences (empty: `aud` is not checked).
    pub audiences: Vec<String>,
    /// Algorithms a token may use: the configured list, else what the
    /// loaded keys admit.
    pub algorithms: Vec<Alg>,
    /// The `kid`s of the keys currently held.
    pub kids: Vec<String>,
    /// Keys are loaded (always true for file and secret providers).
    pub keys_loaded: bool,
}

/// A provider's state as readiness and check-config report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderStatus {
    /// The provider's configured name.
    pub name: String,
    /// The configured (or discovered) issuer; `None` for issuerless setups.
    pub issuer: Option<String>,
    /// Keys fetched over the network (readiness waits for these).
    pub remote: bool,
    /// Keys are loaded (always true for file and secret providers).
    pub loaded: bool,
    /// Number of usable keys currently held.
    pub keys: usize,
    /// Time since the last successful fetch (remote providers).
    pub age: Option<Duration>,
}

/// Where a provider's keys live.
#[derive(Debug)]
enum Keys {
    /// Loaded once (file, secret).
    Fixed(Arc<KeySet>),
    /// Fetched and refreshed.
    Remote(Arc<RemoteKeys>),
}

/// One provider, compiled.
#[derive(Debug)]
struct Provider {
    /// Name shared with every identity it vouches for.
    name: Arc<str>,
    /// The validated configuration (issuer, audiences, claim rules).
    spec: ProviderSpec,
    /// HMAC secret provider: only HS* tokens go here.
    is_secret: bool,
    /// Its key set, fixed or refreshed.
    keys: Keys,
}

impl Provider {
    fn issuer(&self) -> Option<Arc<str>> {
        if let Some(i) = &self.spec.issuer {
            return Some(Arc::from(i.as_str()));
        }
        match &self.keys {
            Keys::Remote(r) => r.discovered_issuer().map(|s| Arc::from(s.as_str())),
            Keys::Fixed(_) => None,
        }
    }

    fn issuer_is(&self, iss: &str) -> bool {
        match (&self.spec.issuer, &self.keys) {
            (Some(i), _) => i == iss,
            (None, Keys::Remote(r)) => r.discovered_issuer().is_some_and(|d| d.as_str() == iss),
            (None, Keys::Fixed(_)) => false,
        }
    }

    /// Secret or file provider without issuer (the only kind that may take
    /// tokens whose `iss` names no provider).
    fn issuerless(&self) -> bool {
        self.spec.issuer.is_none() && matches!(self.keys, Keys::Fixed(_))
    }

    fn family_fits(&self, alg: Alg) -> bool {
        alg.is_hmac() == self.is_secret
    }

    fn expectation(&self) -> Expectation {
        let set = match &self.keys {
            Keys::Fixed(set) => Some(set.clone()),
            Keys::Remote(r) => r.current(),
        };
        let algorithms = match &self.spec.algorithms {
            Some(list) => list.clone(),
            None => {
                let mut algs: Vec<Alg> = Vec::new();
                for key in set.iter().flat_map(|s| s.keys()) {
                    for a in &key.algs {
                        if !algs.contains(a) {
                            algs.push(*a);
                        }
                    }
                }
                algs
            }
        };
        let mut kids: Vec<String> = Vec::new();
        for kid in set
            .iter()
            .flat_map(|s| s.keys())
            .filter_map(|k| k.kid.clone())
        {
            if !kids.contains(&kid) {
                kids.push(kid);
            }
        }
        Expectation {
            provider: self.spec.name.clone(),
            issuer: self.issuer().map(|s| s.to_string()),
            audiences: self.spec.audiences.clone(),
            algorithms,
            kids,
            keys_loaded: set.is_some(),
        }
    }

    fn alg_allowed(&self, alg: Alg) -> bool {
        self.spec
            .algorithms
            .as_ref()
            .is_none_or(|list| list.contains(&alg))
    }
}

/// All providers and their keys.
#[derive(Debug)]
pub struct Verifier {
    /// In configuration order; [`KeyRef::provider`] indexes this.
    providers: Vec<Provider>,
    /// `start` spawns the background tasks only once.
    started: AtomicBool,
}

/// The parsed parts of a compact JWS.
struct Parsed<'t> {
    /// The header `alg`, already known to be one gatehouse verifies.
    alg: Alg,
    /// The header `kid`, when present.
    kid: Option<String>,
    /// The payload object.
    claims: Map<String, Value>,
    /// `header.payload`, the signed bytes.
    message: &'t str,
    /// The third part as sent.
    signature_b64: &'t str,
    /// The third part decoded (never empty).
    signature: Vec<u8>,
}

fn b64_json(part: &str) -> Result<Map<String, Value>, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::Malformed(MalformedKind::BadBase64))?;
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed(MalformedKind::BadJson))?;
    match value {
        Value::Object(m) => Ok(m),
        _ => Err(AuthError::Malformed(MalformedKind::NotAnObject)),
    }
}

/// Parses a compact JWS and applies the header rules.
fn parse_token(token: &str) -> Result<Parsed<'_>, AuthError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::Malformed(MalformedKind::TooLarge));
    }
    let mut parts = token.splitn(4, '.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed(MalformedKind::NotThreeParts));
    };
    let header = b64_json(h)?;
    let claims = b64_json(p)?;
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| AuthError::Malformed(MalformedKind::BadBase64))?;
    let alg = match header.get("alg") {
        Some(Value::String(a)) if a.eq_ignore_ascii_case("none") => {
            return Err(AuthError::Invalid(InvalidKind::AlgNone));
        }
        Some(Value::String(a)) => Alg::parse(a).ok_or(AuthError::Invalid(InvalidKind::WrongAlg))?,
        _ => return Err(AuthError::Invalid(InvalidKind::WrongAlg)),
    };
    // No extension is understood, so any `crit` (even a malformed one) is refused.
    if header.contains_key("crit") {
        return Err(AuthError::Invalid(InvalidKind::UnknownCrit));
    }
    if signature.is_empty() {
        return Err(AuthError::Invalid(InvalidKind::EmptySignature));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(AuthError::Invalid(InvalidKind::UnknownKid)),
    };
    let message_len = h.len() + 1 + p.len();
    let message = token.get(..message_len).unwrap_or_default();
    Ok(Parsed {
        alg,
        kid,
        claims,
        message,
        signature_b64: s,
        signature,
    })
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A numeric date claim as whole seconds; `Err` when present but not a number.
fn time_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else if let Some(f) = n.as_f64().filter(|f| f.is_finite()) {
                // Fractional seconds are allowed (RFC 7519 NumericDate).
                Ok(Some(
                    f.floor().clamp(i64::MIN as f64, i64::MAX as f64) as i64
                ))
            } else {
                Ok(Some(i64::MAX))
            }
        }
        Some(_) => Err(AuthError::Invalid(InvalidKind::BadTimeClaim)),
    }
}

/// Registered-claim checks for `spec`, at Unix time `now`.
fn check_claims(
    spec: &ProviderSpec,
    claims: &Map<String, Value>,
    now: i64,
) -> Result<(), AuthError> {
    for name in &spec.require {
        if claims.get(name).is_none_or(Value::is_null) {
            return Err(AuthError::Invalid(InvalidKind::MissingClaim));
        }
    }
    let leeway = i64::try_from(spec.leeway.as_secs()).unwrap_or(i64::MAX);
    let exp = time_claim(claims, "exp")?;
    let nbf = time_claim(claims, "nbf")?;
    let iat = time_claim(claims, "iat")?;
    if let Some(exp) = exp
        && now > exp.saturating_add(leeway)
    {
        return Err(AuthError::Expired);
    }
    if let Some(nbf) = nbf
        && nbf > now.saturating_add(leeway)
    {
        return Err(AuthError::Invalid(InvalidKind::NotYetValid));
    }
    if let Some(iat) = iat
        && iat > now.saturating_add(leeway)
    {
        return Err(AuthError::Invalid(InvalidKind::IssuedInFuture));
    }
    if let Some(issuer) = &spec.issuer
        && claims.get("iss").and_then(Value::as_str) != Some(issuer.as_str())
    {
        return Err(AuthError::Invalid(InvalidKind::WrongIssuer));
    }
    if !spec.audiences.is_empty() {
        let fits = |a: &str| spec.audiences.iter().any(|c| c == a);
        let ok = match claims.get("aud") {
            Some(Value::String(a)) => fits(a),
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(fits),
            _ => false,
        };
        if !ok {
            return Err(AuthError::Invalid(InvalidKind::WrongAudience));
        }
    }
    if let Some(max) = spec.max_lifetime {
        let (Some(exp), Some(iat)) = (exp, iat) else {
            return Err(AuthError::Invalid(InvalidKind::MissingClaim));
        };
        let max = i64::try_from(max.as_secs()).unwrap_or(i64::MAX);
        if exp.saturating_sub(iat) > max {
            return Err(AuthError::Invalid(InvalidKind::LifetimeTooLong));
        }
    }
    Ok(())
}

/// Picks the key for a token inside one set: by kid, or the single key
/// fitting `alg` when the token has no kid.
fn pick_key(
    set: &KeySet,
    kid: Option<&str>,
    alg: Alg,
    secret: bool,
) -> Result<Arc<Key>, AuthError> {
    if secret || kid.is_none() {
        // A secret provider holds one key; kid carries no meaning there.
        let mut fitting = set.keys().iter().filter(|k| k.fits(alg));
        return match (fitting.next(), fitting.next()) {
            (Some(k), None) => Ok(k.clone()),
            (None, _) if secret => Err(AuthError::Invalid(InvalidKind::WrongAlg)),
            _ => Err(AuthError::Invalid(InvalidKind::NoKid)),
        };
    }
    let kid = kid.unwrap_or_default();
    let mut any = false;
    for k in set.by_kid(kid) {
        any = true;
        if k.fits(alg) {
            return Ok(k.clone());
        }
    }
    if any {
        Err(AuthError::Invalid(InvalidKind::WrongAlg))
    } else {
        Err(AuthError::Invalid(InvalidKind::UnknownKid))
    }
}

impl Verifier {
    /// Builds providers: reads key files and secrets, prepares fetchers.
    /// Does not touch the network; see [`Verifier::start`].
    pub fn new(specs: &[ProviderSpec], metrics: Arc<Metrics>) -> Result<Self, ConfigError> {
        let mut client = None;
        let mut providers = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let policy = AlgPolicy {
                allowed: spec.algorithms.clone(),
            };
            let (keys, is_secret) = match &spec.keys {
                KeySource::Secret(secret) => {
                    if secret.0.is_empty() {
                        return Err(ConfigError::new(
                            format!("providers[{i}].secret_env"),
                            "the secret is empty",
                        ));
                    }
                    let key = Key::secret(&secret.0, spec.algorithms.as_deref());
                    if key.algs.is_empty() {
                        return Err(ConfigError::new(
                            format!("providers[{i}].algorithms"),
                            "a secret provider needs at least one of HS256, HS384, HS512",
                        ));
                    }
                    (Keys::Fixed(Arc::new(KeySet::new(vec![key]))), true)
                }
                KeySource::File(path) => {
                    let key = format!("providers[{i}].jwks_file");
                    let meta = std::fs::metadata(path)
                        .map_err(|e| ConfigError::new(&key, format!("cannot read {path}: {e}")))?;
                    if meta.len() > crate::jwks::MAX_JWKS_BYTES as u64 {
                        return Err(ConfigError::new(
                            &key,
                            format!("{path} is larger than 1 MiB"),
                        ));
                    }
                    let doc = std::fs::read(path)
                        .map_err(|e| ConfigError::new(&key, format!("cannot read {path}: {e}")))?;
                    let set = parse_jwks(&doc, &policy)
                        .map_err(|e| ConfigError::new(&key, format!("{path}: {e}")))?;
                    (Keys::Fixed(Arc::new(set)), false)
                }
                KeySource::JwksUri(url) | KeySource::Discovery(url) => {
                    let c = match &client {
                        Some(c) => reqwest::Client::clone(c),
                        None => {
                            let c = http_client().map_err(|e| {
                                ConfigError::new(format!("providers[{i}]"), e.to_string())
                            })?;
                            client = Some(c.clone());
                            c
                        }
                    };
                    let source: Arc<dyn Source> = match &spec.keys {
                        KeySource::Discovery(_) => Arc::new(HttpSource::discovery(c, url)),
                        _ => Arc::new(HttpSource::jwks_uri(c, url)),
                    };
                    let remote = RemoteKeys::new(
                        &spec.name,
                        source,
                        policy,
                        spec.refresh_interval,
                        spec.unknown_kid_refetch_interval,
                        &metrics,
                    );
                    (Keys::Remote(Arc::new(remote)), false)
                }
            };
            providers.push(Provider {
                name: Arc::from(spec.name.as_str()),
                spec: spec.clone(),
                is_secret,
                keys,
            });
        }
        Ok(Self {
            providers,
            started: AtomicBool::new(false),
        })
    }

    /// Replaces where remote provider `index` fetches its keys from (tests,
    /// embedding). Must be called before [`Verifier::start`]; returns false
    /// when `index` is not a remote provider or the verifier already started.
    pub fn set_source(&mut self, index: usize, source: Arc<dyn Source>) -> bool {
        if self.started.load(Ordering::Acquire) {
            return false;
        }
        match self.providers.get_mut(index).map(|p| &mut p.keys) {
            Some(Keys::Remote(remote)) => match Arc::get_mut(remote) {
                Some(r) => {
                    r.set_source(source);
                    true
                }
                None => false,
            },
            _ => false,
        }
    }

    /// Spawns the background fetch/refresh task of every remote provider;
    /// they stop when `shutdown` is cancelled. Must run inside a Tokio
    /// runtime; a second call does nothing.
    pub fn start(&self, shutdown: CancellationToken) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        for p in &self.providers {
            if let Keys::Remote(remote) = &p.keys {
                tokio::spawn(remote.clone().run(shutdown.child_token()));
            }
        }
    }

    /// True when every remote provider has loaded keys at least once.
    pub fn is_ready(&self) -> bool {
        self.providers.iter().all(|p| match &p.keys {
            Keys::Remote(r) => r.is_loaded(),
            Keys::Fixed(_) => true,
        })
    }

    /// Waits until ready or `timeout`; returns readiness.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.is_ready() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Per-provider state, in configuration order.
    pub fn provider_status(&self) -> Vec<ProviderStatus> {
        self.providers
            .iter()
            .map(|p| {
                let (remote, loaded, keys, age) = match &p.keys {
                    Keys::Fixed(set) => (false, true, set.len(), None),
                    Keys::Remote(r) => (
                        true,
                        r.is_loaded(),
                        r.current().map_or(0, |s| s.len()),
                        r.age(),
                    ),
                };
                ProviderStatus {
                    name: p.spec.name.clone(),
                    issuer: p.issuer().map(|s| s.to_string()),
                    remote,
                    loaded,
                    keys,
                    age,
                }
            })
            .collect()
    }

    /// Names of providers without an issuer (check-config lists them).
    pub fn issuerless_providers(&self) -> Vec<String> {
        self.providers
            .iter()
            .filter(|p| p.issuerless())
            .map(|p| p.spec.name.clone())
            .collect()
    }

    /// How old each remote provider's keys are now (those never loaded are
    /// left out), in configuration order: `/metrics` reports these.
    pub fn key_ages(&self) -> Vec<KeyAge> {
        self.providers
            .iter()
            .filter_map(|p| match &p.keys {
                Keys::Remote(r) => Some(KeyAge {
                    provider: p.name.clone(),
                    age: r.age()?,
                }),
                Keys::Fixed(_) => None,
            })
            .collect()
    }

    /// Verifies a compact JWS.
    pub async fn verify(&self, token: &str) -> Result<Verified, AuthError> {
        self.verify_traced(token).await.map_err(|r| r.error)
    }

    /// The providers a token with this `iss` is tried against, in order:
    /// those with that issuer, else the issuerless ones.
    fn candidates(&self, iss: Option<&str>) -> Vec<usize> {
        let by_issuer: Vec<usize> = match iss {
            Some(iss) => (0..self.providers.len())
                .filter(|&i| self.providers.get(i).is_some_and(|p| p.issuer_is(iss)))
                .collect(),
            None => Vec::new(),
        };
        if by_issuer.is_empty() {
            (0..self.providers.len())
                .filter(|&i| self.providers.get(i).is_some_and(Provider::issuerless))
                .collect()
        } else {
            by_issuer
        }
    }

    /// [`Verifier::verify`], naming on refusal the provider the token was
    /// tried against (the one whose error is reported).
    pub async fn verify_traced(&self, token: &str) -> Result<Verified, Rejection> {
        let parsed = parse_token(token).map_err(Rejection::before_provider)?;
        let iss = match parsed.claims.get("iss") {
            None => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => {
                return Err(Rejection::before_provider(AuthError::Invalid(
                    InvalidKind::WrongIssuer,
                )));
            }
        };
        let candidates = self.candidates(iss);
        if candidates.is_empty() {
            return Err(Rejection::before_provider(AuthError::Invalid(
                InvalidKind::UnknownIssuer,
            )));
        }
        let mut first_err: Option<Rejection> = None;
        for index in candidates {
            let Some(provider) = self.providers.get(index) else {
                continue;
            };
            let tried = |error| Rejection {
                error,
                provider: Some(provider.name.clone()),
            };
            if !provider.family_fits(parsed.alg) {
                first_err.get_or_insert_with(|| tried(AuthError::Invalid(InvalidKind::WrongAlg)));
                continue;
            }
            match self.verify_with(provider, &parsed).await {
                Ok(key_id) => {
                    let exp = time_claim(&parsed.claims, "exp")
                        .ok()
                        .flatten()
                        .and_then(|e| u64::try_from(e).ok());
                    return Ok(Verified {
                        identity: Identity {
                            provider: provider.name.clone(),
                            claims: Arc::new(parsed.claims),
                        },
                        exp,
                        key: KeyRef {
                            provider: index,
                            key_id,
                        },
                        headers: Default::default(),
                        revocations: Default::default(),
                    });
                }
                Err(e) => {
                    first_err.get_or_insert_with(|| tried(e));
                }
            }
        }
        Err(first_err.unwrap_or_else(|| {
            Rejection::before_provider(AuthError::Invalid(InvalidKind::UnknownIssuer))
        }))
    }

    /// What every provider expects, in configuration order.
    pub fn expectations(&self) -> Vec<Expectation> {
        self.providers.iter().map(Provider::expectation).collect()
    }

    /// What the providers a token with this `iss` and header `alg` would be
    /// tried against expect (empty when no provider takes it). Only the
    /// providers of the token's algorithm family are listed when there are
    /// some.
    pub fn expectations_for(&self, iss: Option<&str>, alg: Option<&str>) -> Vec<Expectation> {
        let candidates: Vec<&Provider> = self
            .candidates(iss)
            .into_iter()
            .filter_map(|i| self.providers.get(i))
            .collect();
        let fitting: Vec<&Provider> = match alg.and_then(Alg::parse) {
            Some(alg) => candidates
                .iter()
                .copied()
                .filter(|p| p.family_fits(alg))
                .collect(),
            None => Vec::new(),
        };
        let chosen = if fitting.is_empty() {
            candidates
        } else {
            fitting
        };
        chosen.into_iter().map(Provider::expectation).collect()
    }

    /// Key choice, signature and claims inside one provider; returns the id
    /// of the key that verified.
    async fn verify_with(
        &self,
        provider: &Provider,
        parsed: &Parsed<'_>,
    ) -> Result<u64, AuthError> {
        if !provider.alg_allowed(parsed.alg) {
            return Err(AuthError::Invalid(InvalidKind::WrongAlg));
        }
        let kid = parsed.kid.as_deref();
        let key = match &provider.keys {
            Keys::Fixed(set) => pick_key(set, kid, parsed.alg, provider.is_secret)?,
            Keys::Remote(remote) => {
                let set = match remote.current() {
                    Some(set) => set,
                    None => {
                        remote.refetch_on_demand().await;
                        remote
                            .current()
                            .ok_or_else(|| AuthError::JwksUnavailable(provider.spec.name.clone()))?
                    }
                };
                match pick_key(&set, kid, parsed.alg, false) {
                    Err(AuthError::Invalid(InvalidKind::UnknownKid)) => {
                        remote.refetch_on_demand().await;
                        let set = remote.current().ok_or_else(|| {
                            AuthError::JwksUnavailable(provider.spec.name.clone())
                        })?;
                        pick_key(&set, kid, parsed.alg, false)?
                    }
                    other => other?,
                }
            }
        };
        if !key.verify(
            parsed.alg,
            parsed.message.as_bytes(),
            parsed.signature_b64,
            &parsed.signature,
        ) {
            return Err(AuthError::Invalid(InvalidKind::BadSignature));
        }
        check_claims(&provider.spec, &parsed.claims, unix_now())?;
        Ok(key.id)
    }

    /// False when the key that verified a cached token has left its set.
    pub fn key_present(&self, key: KeyRef) -> bool {
        match self.providers.get(key.provider).map(|p| &p.keys) {
            Some(Keys::Fixed(set)) => set.contains_id(key.key_id),
            Some(Keys::Remote(r)) => r.current().is_some_and(|s| s.contains_id(key.key_id)),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ProviderSpec {
        ProviderSpec {
            name: "p".into(),
            issuer: Some("https://issuer".into()),
            audiences: vec!["api".into()],
            keys: KeySource::Secret(crate::config::Secret(b"s".to_vec())),
            algorithms: None,
            refresh_interval: Duration::from_secs(300),
            unknown_kid_refetch_interval: Duration::from_secs(30),
            leeway: Duration::from_secs(60),
            require: vec!["exp".into()],
            max_lifetime: None,
            session_claim: None,
        }
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn claim_edges() {
        let s = spec();
        let now = 1_000_000;
        let base = |extra: Value| {
            let mut m = obj(serde_json::json!({"iss": "https://issuer", "aud": "api"}));
            m.extend(obj(extra));
            m
        };
        let ok = |v| check_claims(&s, &base(v), now);
        assert_eq!(ok(serde_json::json!({"exp": now - 60})), Ok(()));
        assert_eq!(
            ok(serde_json::json!({"exp": now - 61})),
            Err(AuthError::Expired)
        );
        assert_eq!(
            ok(serde_json::json!({"exp": now + 1, "nbf": now + 60})),
            Ok(())
        );
        assert_eq!(
            ok(serde_json::json!({"exp": now + 100, "nbf": now + 61})),
            Err(AuthError::Invalid(InvalidKind::NotYetValid))
        );
        assert_eq!(
            ok(serde_json::json!({"exp": now + 100, "iat": now + 61})),
            Err(AuthError::Invalid(InvalidKind::IssuedInFuture))
        );
        assert_eq!(
            ok(serde_json::json!({"exp": "soon"})),
            Err(AuthError::Invalid(InvalidKind::BadTimeClaim))
        );
        assert_eq!(
            ok(serde_json::json!({"exp": (now + 10) as f64 + 0.5})),
            Ok(())
        );
        assert_eq!(
            ok(serde_json::json!({})),
            Err(AuthError::Invalid(InvalidKind::MissingClaim))
        );
    }
}

#[cfg(test)]
mod algs_tests;

#[cfg(test)]
mod cache_tests;

#[cfg(test)]
mod perf_tests;

#[cfg(test)]
mod prop_tests;

#[cfg(test)]
mod rules_tests;
