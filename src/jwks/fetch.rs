//! Fetching JWKS over HTTP(S) and keeping them fresh in the background.
//!
//! [`HttpSource`] fetches a `jwks_uri` (or follows OIDC discovery to one)
//! with rustls, a 5 s timeout, a 1 MiB body limit and no redirect to another
//! scheme. [`RemoteKeys`] holds a provider's current keys and decides when
//! to fetch: at start, then on a schedule (Cache-Control `max-age` clamped to
//! [30 s, 24 h], else `refresh_interval`; failures back off from 1 s up to
//! min(`refresh_interval`, 30 s) and keep the last good keys); on an unknown
//! kid or never-loaded keys at most once per `unknown_kid_refetch_interval`,
//! with concurrent misses sharing one fetch.
//!
//! All timing uses `tokio::time`. This module does not judge tokens; it
//! only supplies keys.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{AlgPolicy, JwksError, KeySet, MAX_JWKS_BYTES, parse_jwks};
use crate::telemetry::{FetchCounters, Metrics};

/// Fetch timeout.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Shortest refresh a `max-age` can ask for.
pub(crate) const MIN_MAX_AGE: Duration = Duration::from_secs(30);
/// Longest refresh a `max-age` can ask for.
pub(crate) const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// First retry delay after a failed fetch.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Upper bound of the retry delay (also bounded by `refresh_interval`).
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The request failed; the text is the whole cause chain (DNS,
    /// connect, TLS, timeout, body), never the URL.
    #[error("{0}")]
    Http(String),
    #[error("unexpected HTTP status {}", status_text(*.0))]
    Status(u16),
    #[error("response is larger than 1 MiB")]
    TooLarge,
    #[error("discovery document is unusable: {0}")]
    Discovery(String),
    #[error("{0}")]
    Jwks(#[from] JwksError),
}

/// `500 Internal Server Error`, or just the number for a status without a
/// canonical reason.
fn status_text(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("{status} {reason}"),
        None => status.to_string(),
    }
}

/// An error and its causes, outermost first, joined by `": "` (e.g. `error
/// sending request: client error (Connect): tcp connect error: Connection
/// refused (os error 111)`). A cause whose text its parent already repeats
/// is not written twice.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// A reqwest failure as [`FetchError::Http`], its URL left out.
fn request_error(e: reqwest::Error) -> FetchError {
    FetchError::Http(error_chain(&e.without_url()))
}

/// A fetched document: the JWKS bytes and what the response said about them.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    /// Raw JWKS document.
    pub body: Vec<u8>,
    /// `Cache-Control: max-age` of the JWKS response, unclamped.
    pub max_age: Option<Duration>,
    /// The `issuer` named by OIDC discovery, when discovery was used.
    pub issuer: Option<String>,
}

/// The future a [`Source`] returns.
pub(crate) type FetchFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Fetched, FetchError>> + Send + 'a>>;

/// Where a provider's remote JWKS comes from. The HTTP implementation is
/// [`HttpSource`]; tests may supply their own.
pub trait Source: Send + Sync + fmt::Debug {
    fn fetch(&self) -> FetchFuture<'_>;
    /// The URL, for logs (never contains secrets).
    fn describe(&self) -> String;
}

/// What an [`HttpSource`] fetches.
#[derive(Debug, Clone)]
enum Target {
    Jwks(String),
    Discovery(String),
}

/// JWKS over HTTP(S) with reqwest and rustls.
#[derive(Debug, Clone)]
pub(crate) struct HttpSource {
    /// Shared client carrying the timeout and redirect policy.
    client: reqwest::Client,
    /// The JWKS URL or the discovery base URL.
    target: Target,
}

/// A client with the fetch limits: 5 s timeout, redirects only within the
/// same scheme (at most 5), no cookies.
pub(crate) fn http_client() -> Result<reqwest::Client, FetchError> {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let same_scheme = attempt
            .previous()
            .first()
            .is_some_and(|first| first.scheme() == attempt.url().scheme());
        if attempt.previous().len() > 5 || !same_scheme {
            attempt.stop()
        } else {
            attempt.follow()
        }
    });
    reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .redirect(policy)
        .build()
        .map_err(|e| FetchError::Http(error_chain(&e)))
}

/// Parses `max-age` out of a Cache-Control value; `no-store`/`no-cache`
/// count as no max-age.
pub(crate) fn parse_max_age(value: &str) -> Option<Duration> {
    let mut max_age = None;
    for directive in value.split(',') {
        let d = directive.trim();
        let lower = d.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return None;
        }
        if let Some(rest) = lower.strip_prefix("max-age=") {
            max_age = rest
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    max_age
}

async fn get_limited(
    client: &reqwest::Client,
    url: &str,
) -> Result<(Vec<u8>, Option<Duration>), FetchError> {
    let mut resp = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(request_error)?;
    let status = resp.status();
    if !status.is_success() {
        return Err(FetchError::Status(status.as_u16()));
    }
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
    {
        return Err(FetchError::TooLarge);
    }
    let max_age = resp
        .headers()
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_max_age);
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(request_error)? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, max_age))
}

impl HttpSource {
    /// Fetches this JWKS URL.
    pub(crate) fn jwks_uri(client: reqwest::Client, url: &str) -> HttpSource {
        HttpSource {
            client,
            target: Target::Jwks(url.to_owned()),
        }
    }

    /// Follows `<issuer>/.well-known/openid-configuration` to `jwks_uri`.
    pub(crate) fn discovery(client: reqwest::Client, issuer_url: &str) -> HttpSource {
        HttpSource {
            client,
            target: Target::Discovery(issuer_url.to_owned()),
        }
    }

    async fn run(&self) -> Result<Fetched, FetchError> {
        match &self.target {
            Target::Jwks(url) => {
                let (body, max_age) = get_limited(&self.client, url).await?;
                Ok(Fetched {
                    body,
                    max_age,
                    issuer: None,
                })
            }
            Target::Discovery(base) => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    base.trim_end_matches('/')
                );
                let (doc, _) = get_limited(&self.client, &url).await?;
                let doc: Value = serde_json::from_slice(&doc)
                    .map_err(|e| FetchError::Discovery(format!("not JSON: {e}")))?;
                let jwks_uri = doc
                    .get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| FetchError::Discovery("no jwks_uri".to_owned()))?;
                if !(jwks_uri.starts_with("https://") || jwks_uri.starts_with("http://")) {
                    return Err(FetchError::Discovery("jwks_uri is not http(s)".to_owned()));
                }
                let issuer = doc.get("issuer").and_then(Value::as_str).map(str::to_owned);
                let (body, max_age) = get_limited(&self.client, jwks_uri).await?;
                Ok(Fetched {
                    body,
                    max_age,
                    issuer,
                })
            }
        }
    }
}

/// A URL fit for logs: user info and query removed (they may carry secrets).
pub(crate) fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            if u.query().is_some() {
                u.set_query(Some("redacted"));
            }
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "<unparsable url>".to_owned(),
    }
}

impl Source for HttpSource {
    fn fetch(&self) -> FetchFuture<'_> {
        Box::pin(self.run())
    }

    fn describe(&self) -> String {
        match &self.target {
            Target::Jwks(url) | Target::Discovery(url) => redact_url(url),
        }
    }
}

/// The delay before the next scheduled refresh after a success.
pub(crate) fn next_refresh(max_age: Option<Duration>, refresh_interval: Duration) -> Duration {
    match max_age {
        Some(age) => age.clamp(MIN_MAX_AGE, MAX_MAX_AGE),
        None => refresh_interval,
    }
}

/// The delay before retry number `failures` (1 for the first failure).
pub(crate) fn backoff(failures: u32, refresh_interval: Duration) -> Duration {
    let cap = refresh_interval.min(MAX_BACKOFF);
    let exp = failures.saturating_sub(1).min(20);
    FIRST_BACKOFF.saturating_mul(1u32 << exp).min(cap)
}

/// Timestamps of fetch attempts.
#[derive(Debug, Default)]
struct Times {
    /// When the last fetch (successful or not) finished.
    last_attempt: Option<Instant>,
    /// When keys were last loaded.
    last_success: Option<Instant>,
}

/// A remote provider's keys and fetch state.
#[derive(Debug)]
pub(crate) struct RemoteKeys {
    /// Provider name, for logs and metric labels.
    name: String,
    /// Where the document comes from.
    source: Arc<dyn Source>,
    /// Decides which algorithms each fetched key admits.
    policy: AlgPolicy,
    /// Scheduled refresh period without Cache-Control.
    refresh_interval: Duration,
    /// Minimum spacing of on-demand fetches (unknown kid, never loaded).
    cooldown: Duration,
    /// Last good keys; `None` until the first successful fetch.
    keys: ArcSwapOption<KeySet>,
    /// Issuer from discovery, for a provider configured without one.
    discovered_issuer: ArcSwapOption<String>,
    /// Completed fetch attempts; a waiter that sees it move knows a fetch
    /// happened while it queued.
    generation: AtomicU64,
    times: Mutex<Times>,
    /// Single-flight: at most one fetch per provider at a time.
    flight: tokio::sync::Mutex<()>,
    /// This provider's `gatehouse_jwks_fetches_total` series. The key age
    /// is not recorded here: scrapes derive it from [`RemoteKeys::age`].
    fetches: FetchCounters,
}

impl RemoteKeys {
    pub(crate) fn new(
        name: &str,
        source: Arc<dyn Source>,
        policy: AlgPolicy,
        refresh_interval: Duration,
        cooldown: Duration,
        metrics: &Metrics,
    ) -> RemoteKeys {
        RemoteKeys {
            name: name.to_owned(),
            source,
            policy,
            refresh_interval,
            cooldown,
            keys: ArcSwapOption::empty(),
            discovered_issuer: ArcSwapOption::empty(),
            generation: AtomicU64::new(0),
            times: Mutex::new(Times::default()),
            flight: tokio::sync::Mutex::new(()),
            fetches: metrics.fetch_counters(name),
        }
    }

    /// Replaces the source (before the background task starts).
    pub(crate) fn set_source(&mut self, source: Arc<dyn Source>) {
        self.source = source;
    }

    /// The current keys, if any were ever loaded.
    pub(crate) fn current(&self) -> Option<Arc<KeySet>> {
        self.keys.load_full()
    }

    /// True once keys were loaded.
    pub(crate) fn is_loaded(&self) -> bool {
        self.keys.load().is_some()
    }

    /// Issuer learned from discovery.
    pub(crate) fn discovered_issuer(&self) -> Option<Arc<String>> {
        self.discovered_issuer.load_full()
    }

    /// Time since the last successful fetch; `None` until keys are loaded.
    pub(crate) fn age(&self) -> Option<Duration> {
        self.lock_times().last_success.map(|t| t.elapsed())
    }

    fn lock_times(&self) -> std::sync::MutexGuard<'_, Times> {
        self.times.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One fetch; the caller holds `flight`. Returns the response's
    /// `max-age` on success.
    async fn fetch_locked(&self) -> Result<Option<Duration>, FetchError> {
        let result = match self.source.fetch().await {
            Ok(fetched) => parse_jwks(&fetched.body, &self.policy)
                .map(|set| (set, fetched))
                .map_err(FetchError::from),
            Err(e) => Err(e),
        };
        let now = Instant::now();
        let outcome = match result {
            Ok((mut set, fetched)) => {
                if let Some(old) = self.keys.load_full() {
                    set.carry_ids_from(&old);
                }
                self.keys.store(Some(Arc::new(set)));
                if let Some(iss) = fetched.issuer {
                    self.discovered_issuer.store(Some(Arc::new(iss)));
                }
                self.lock_times().last_success = Some(now);
                Ok(fetched.max_age)
            }
            Err(e) => {
                tracing::warn!(
                    provider = %self.name,
                    url = %self.source.describe(),
                    error = %e,
                    stale_keys_kept = self.is_loaded(),
                    "JWKS fetch failed"
                );
                Err(e)
            }
        };
        self.lock_times().last_attempt = Some(now);
        self.generation.fetch_add(1, Ordering::AcqRel);
        match outcome {
            Ok(_) => self.fetches.success.inc(),
            Err(_) => self.fetches.failure.inc(),
        };
        outcome
    }

    /// A fetch on demand (unknown kid, keys never loaded): skipped when
    /// keys were fetched less than the cooldown ago; concurrent callers
    /// share one fetch.
    pub(crate) async fn refetch_on_demand(&self) {
        let seen = self.generation.load(Ordering::Acquire);
        let _flight = self.flight.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            return;
        }
        let recent = self
            .lock_times()
            .last_attempt
            .is_some_and(|t| t.elapsed() < self.cooldown);
        if recent {
            return;
        }
        let _ = self.fetch_locked().await;
    }

    /// The background task: fetch now, then on the refresh schedule,
    /// until `shutdown`.
    pub(crate) async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut failures: u32 = 0;
        loop {
            let result = {
                let _flight = tokio::select! {
                    g = self.flight.lock() => g,
                    () = shutdown.cancelled() => return,
                };
                tokio::select! {
                    r = self.fetch_locked() => r,
                    () = shutdown.cancelled() => return,
                }
            };
            let delay = match result {
                Ok(max_age) => {
                    failures = 0;
                    next_refresh(max_age, self.refresh_interval)
                }
                Err(_) => {
                    failures = failures.saturating_add(1);
                    backoff(failures, self.refresh_interval)
                }
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_parsing() {
        assert_eq!(parse_max_age("max-age=300"), Some(Duration::from_secs(300)));
        assert_eq!(
            parse_max_age("public, Max-Age=60, must-revalidate"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_max_age("no-store, max-age=60"), None);
        assert_eq!(parse_max_age("max-age=abc"), None);
        assert_eq!(parse_max_age("public"), None);
    }

    #[test]
    fn logged_urls_carry_no_credentials() {
        assert_eq!(
            redact_url("https://user:pw@idp.test/jwks?token=abc#x"),
            "https://idp.test/jwks?redacted"
        );
        assert_eq!(redact_url("https://idp.test/jwks"), "https://idp.test/jwks");
        assert_eq!(redact_url("not a url"), "<unparsable url>");
    }

    #[test]
    fn error_chains_name_every_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let outer = std::io::Error::other(io);
        // `other` repeats its source's text: it is written once.
        assert_eq!(error_chain(&outer), "refused");
        let status = FetchError::Status(500).to_string();
        assert_eq!(status, "unexpected HTTP status 500 Internal Server Error");
        assert_eq!(
            FetchError::Status(599).to_string(),
            "unexpected HTTP status 599"
        );
    }

    #[test]
    fn refresh_clamps_max_age() {
        let ri = Duration::from_secs(600);
        assert_eq!(next_refresh(None, ri), ri);
        assert_eq!(next_refresh(Some(Duration::from_secs(1)), ri), MIN_MAX_AGE);
        assert_eq!(
            next_refresh(Some(Duration::from_secs(90)), ri),
            Duration::from_secs(90)
        );
        assert_eq!(
            next_refresh(Some(Duration::from_secs(10 * 86_400)), ri),
            MAX_MAX_AGE
        );
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let ri = Duration::from_secs(600);
        let secs: Vec<u64> = (1..=8).map(|n| backoff(n, ri).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff(5, Duration::from_secs(5)), Duration::from_secs(5));
        assert_eq!(backoff(u32::MAX, ri), MAX_BACKOFF);
    }
}
