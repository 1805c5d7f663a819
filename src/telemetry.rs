//! Telemetry: logging setup, token fingerprints and every metric, declared
//! in one place ([`Metrics`]).
//!
//! Logs never carry a token, secret or session id whole: [`fingerprint`]
//! gives a short, stable, non-reversible tag to correlate requests.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use sha2::{Digest, Sha256};

use crate::config::LogFormat;

/// A short tag for a credential: the first 12 hex digits of its SHA-256.
pub fn fingerprint(secret: &str) -> String {
    let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
    Fingerprint::of_digest(&digest).to_string()
}

/// A credential's log tag, formatted only when a log event is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint([u8; 6]);

impl Fingerprint {
    /// The tag of a credential whose SHA-256 is `digest`.
    pub fn of_digest(digest: &[u8; 32]) -> Fingerprint {
        let mut head = [0u8; 6];
        head.copy_from_slice(&digest[..6]);
        Fingerprint(head)
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Installs the global tracing subscriber. `filter` is an env-filter
/// expression (`info`, `gatehouse=debug`); a bad one falls back to `info`.
pub(crate) fn init_logging(filter: &str, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, never in files or log collectors.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // A second init (tests, SIGHUP) is harmless: the first subscriber stays.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub door: &'static str,
    pub result: &'static str,
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FetchLabels {
    pub provider: String,
    pub result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ProviderLabels {
    pub provider: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    pub result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StoreOpLabels {
    pub op: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StoreErrorLabels {
    pub op: &'static str,
    pub kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RevocationKindLabels {
    pub kind: &'static str,
}

/// A remote provider's key age at the moment of a scrape: now minus its
/// last successful fetch.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyAge {
    pub provider: Arc<str>,
    pub age: Duration,
}

/// A provider's two fetch counters, resolved once so a fetch increments an
/// atomic; they keep counting (unexported) after [`Metrics::forget_provider`].
#[derive(Debug, Clone, Default)]
pub struct FetchCounters {
    pub success: Counter,
    pub failure: Counter,
}

/// Every metric gatehouse exports (docs/metrics.md).
///
/// One `Metrics` lives as long as the process and is shared by every
/// configuration generation (SIGHUP keeps it), so counters keep counting
/// across reloads. `gatehouse_jwks_age_seconds` is not stored here: it is
/// derived from the answering generation's keys at each scrape
/// ([`Metrics::encode`]).
pub struct Metrics {
    registry: Registry,
    pub decisions: Family<DecisionLabels, Counter>,
    pub verify_duration: Histogram,
    pub jwks_fetches: Family<FetchLabels, Counter>,
    pub token_cache: Family<CacheLabels, Counter>,
    /// The hot series, resolved once so a request increments an atomic
    /// instead of hashing labels: token cache hit and miss.
    pub token_cache_hit: Counter,
    pub token_cache_miss: Counter,
    /// Authenticated allows of the two listening doors (grpc, http),
    /// created at zero. The `cli` door (`gatehouse verify`) gets its
    /// series only when it decides, so a server never shows one.
    allowed: [Counter; 2],
    /// 1 while the shared store's circuit breaker is open.
    pub store_degraded: Gauge,
    /// Rate-limit checks counted per replica because Redis was unavailable.
    pub rate_limit_local: Counter,
    store_errors: Family<StoreErrorLabels, Counter>,
    store_duration: Family<StoreOpLabels, Histogram, fn() -> Histogram>,
    /// Revocations held in memory, by kind.
    revocations: Family<RevocationKindLabels, Gauge>,
    /// 1 while the revocation stream is being followed.
    revocation_following: Gauge,
    /// When the revocation stream last answered, in Unix milliseconds (0:
    /// never); its age is computed at each scrape.
    revocation_synced_ms: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gatehouse");
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "decisions",
            "Authorization decisions by door, result and reason",
            decisions.clone(),
        );
        let verify_duration = Histogram::new([
            0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5,
            0.005, 0.01, 0.05, 0.25, 1.0,
        ]);
        registry.register_with_unit(
            "verify_duration",
            "Time to reach a decision",
            Unit::Seconds,
            verify_duration.clone(),
        );
        let jwks_fetches = Family::<FetchLabels, Counter>::default();
        registry.register(
            "jwks_fetches",
            "JWKS fetches by provider and result",
            jwks_fetches.clone(),
        );
        let token_cache = Family::<CacheLabels, Counter>::default();
        registry.register(
            "token_cache",
            "Verified-token cache lookups by result (hit, miss)",
            token_cache.clone(),
        );
        let token_cache_hit = token_cache
            .get_or_create(&CacheLabels { result: "hit" })
            .clone();
        let token_cache_miss = token_cache
            .get_or_create(&CacheLabels { result: "miss" })
            .clone();
        let allowed = ["grpc", "http"].map(|door| {
            decisions
                .get_or_create(&DecisionLabels {
                    door,
                    result: "allow",
                    reason: "authenticated",
                })
                .clone()
        });
        let store_degraded = Gauge::default();
        registry.register(
            "store_degraded",
            "1 while the shared store (Redis) is not asked after repeated failures",
            store_degraded.clone(),
        );
        let store_errors = Family::<StoreErrorLabels, Counter>::default();
        registry.register(
            "store_errors",
            "Failed shared-store (Redis) operations by operation and kind",
            store_errors.clone(),
        );
        let store_duration =
            Family::<StoreOpLabels, Histogram, fn() -> Histogram>::new_with_constructor(|| {
                Histogram::new([
                    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
                ])
            });
        registry.register_with_unit(
            "store_duration",
            "Shared-store (Redis) operation latency by operation",
            Unit::Seconds,
            store_duration.clone(),
        );
        let rate_limit_local = Counter::default();
        registry.register(
            "rate_limit_local",
            "Rate-limit checks counted in this replica's memory because Redis was unavailable",
            rate_limit_local.clone(),
        );
        let revocations = Family::<RevocationKindLabels, Gauge>::default();
        registry.register(
            "revocations",
            "Revocations held in memory and enforced, by kind",
            revocations.clone(),
        );
        let revocation_following = Gauge::default();
        registry.register(
            "revocation_following",
            "1 while the revocation stream in Redis is being followed",
            revocation_following.clone(),
        );
        Self {
            rate_limit_local,
            revocations,
            revocation_following,
            revocation_synced_ms: AtomicU64::new(0),
            store_degraded,
            store_errors,
            store_duration,
            registry,
            decisions,
            verify_duration,
            jwks_fetches,
            token_cache,
            token_cache_hit,
            token_cache_miss,
            allowed,
        }
    }

    /// Counts one decision in `gatehouse_decisions_total`.
    pub fn count_decision(&self, door: &'static str, result: &'static str, reason: &'static str) {
        let hot = match (result, reason, door) {
            ("allow", "authenticated", "grpc") => self.allowed.first(),
            ("allow", "authenticated", "http") => self.allowed.get(1),
            _ => None,
        };
        match hot {
            Some(counter) => {
                counter.inc();
            }
            None => {
                self.decisions
                    .get_or_create(&DecisionLabels {
                        door,
                        result,
                        reason,
                    })
                    .inc();
            }
        }
    }

    /// Counts one failed store operation.
    pub(crate) fn count_store_error(&self, op: &'static str, kind: &'static str) {
        self.store_errors
            .get_or_create(&StoreErrorLabels { op, kind })
            .inc();
    }

    /// Records one store operation's latency.
    pub(crate) fn observe_store(&self, op: &'static str, seconds: f64) {
        self.store_duration
            .get_or_create(&StoreOpLabels { op })
            .observe(seconds);
    }

    /// Sets the number of revocations of `kind` held in memory.
    pub(crate) fn set_revocations(&self, kind: &'static str, n: usize) {
        self.revocations
            .get_or_create(&RevocationKindLabels { kind })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Whether the revocation stream is being followed.
    pub(crate) fn set_revocation_following(&self, on: bool) {
        self.revocation_following.set(i64::from(on));
    }

    /// The revocation stream answered just now.
    pub(crate) fn revocation_synced_now(&self) {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.revocation_synced_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// A remote provider's fetch counters (`success`, `failure`), created
    /// at zero so the first failure already shows as an increase.
    pub fn fetch_counters(&self, provider: &str) -> FetchCounters {
        let counter = |result| {
            self.jwks_fetches
                .get_or_create(&FetchLabels {
                    provider: provider.to_owned(),
                    result,
                })
                .clone()
        };
        FetchCounters {
            success: counter("success"),
            failure: counter("failure"),
        }
    }

    /// Stops exporting a provider's fetch counters (it left the
    /// configuration, or a reload that added it failed).
    pub fn forget_provider(&self, provider: &str) {
        for result in ["success", "failure"] {
            self.jwks_fetches.remove(&FetchLabels {
                provider: provider.to_owned(),
                result,
            });
        }
    }

    /// Prometheus text exposition. `key_ages` are the answering
    /// generation's remote providers with keys and their age now; they
    /// become `gatehouse_jwks_age_seconds`, so the gauge keeps growing
    /// while refreshes fail or stall, and names exactly the providers of
    /// the running configuration.
    pub fn encode(&self, key_ages: &[KeyAge]) -> String {
        let ages = Family::<ProviderLabels, Gauge<f64, AtomicU64>>::default();
        for k in key_ages {
            ages.get_or_create(&ProviderLabels {
                provider: k.provider.to_string(),
            })
            .set(k.age.as_secs_f64());
        }
        let mut scrape = Registry::with_prefix("gatehouse");
        scrape.register_with_unit(
            "jwks_age",
            "Seconds since the provider's current keys were fetched, at scrape time",
            Unit::Seconds,
            ages,
        );
        let synced_ms = self
            .revocation_synced_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        if synced_ms > 0 {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            let age = Gauge::<f64, AtomicU64>::default();
            age.set(now_ms.saturating_sub(synced_ms) as f64 / 1000.0);
            scrape.register_with_unit(
                "revocation_sync_age",
                "Seconds since the revocation stream in Redis last answered, at scrape time",
                Unit::Seconds,
                age,
            );
        }
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &scrape);
        let _ = prometheus_client::encoding::text::encode_eof(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_listening_doors_are_created_at_zero() {
        let m = Metrics::new();
        let text = m.encode(&[]);
        for door in ["grpc", "http"] {
            let line = format!(
                "gatehouse_decisions_total{{door=\"{door}\",result=\"allow\",reason=\"authenticated\"}} 0\n"
            );
            assert!(text.contains(&line), "{text}");
        }
        assert!(!text.contains("door=\"cli\""), "{text}");
        m.count_decision("cli", "allow", "authenticated");
        assert!(m.encode(&[]).contains(
            "gatehouse_decisions_total{door=\"cli\",result=\"allow\",reason=\"authenticated\"} 1\n"
        ));
    }

    #[test]
    fn key_ages_are_the_age_gauge_of_that_scrape_only() {
        let m = Metrics::new();
        let age = |provider: &str, secs: f64| KeyAge {
            provider: Arc::from(provider),
            age: Duration::from_secs_f64(secs),
        };
        let text = m.encode(&[age("a", 12.5), age("b", 3.0)]);
        assert!(
            text.contains("gatehouse_jwks_age_seconds{provider=\"a\"} 12.5\n"),
            "{text}"
        );
        assert!(
            text.contains("gatehouse_jwks_age_seconds{provider=\"b\"} 3.0\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(text.matches("# EOF").count(), 1);
        let text = m.encode(&[age("b", 4.0)]);
        assert!(!text.contains("provider=\"a\""), "{text}");
        assert!(
            text.contains("gatehouse_jwks_age_seconds{provider=\"b\"} 4.0\n"),
            "{text}"
        );
    }

    #[test]
    fn fetch_counters_start_at_zero_and_a_forgotten_provider_is_not_exported() {
        let m = Metrics::new();
        let c = m.fetch_counters("p");
        let text = m.encode(&[]);
        assert!(
            text.contains("gatehouse_jwks_fetches_total{provider=\"p\",result=\"failure\"} 0\n"),
            "{text}"
        );
        c.success.inc();
        assert!(
            m.encode(&[])
                .contains("gatehouse_jwks_fetches_total{provider=\"p\",result=\"success\"} 1\n")
        );
        m.forget_provider("p");
        c.failure.inc();
        assert!(!m.encode(&[]).contains("provider=\"p\""));
    }
}
