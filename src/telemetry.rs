//! Telemetry: logging setup, token fingerprints and every metric, declared
//! in one place ([`Metrics`]).
//!
//! Logs never carry a token, secret or session id whole: [`fingerprint`]
//! gives a short, stable, non-reversible tag to correlate requests.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
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
pub fn init_logging(filter: &str, format: LogFormat) {
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
pub struct ProviderLabels {
    pub provider: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    pub result: &'static str,
}

/// Every metric gatehouse exports (SPEC §9 names).
pub struct Metrics {
    registry: Registry,
    pub decisions: Family<DecisionLabels, Counter>,
    pub verify_duration: Histogram,
    pub jwks_fetches: Family<FetchLabels, Counter>,
    /// Seconds since the provider's keys were last fetched successfully.
    pub jwks_age: Family<ProviderLabels, Gauge<f64, AtomicU64>>,
    pub token_cache: Family<CacheLabels, Counter>,
    /// The hot series, resolved once so a request increments an atomic
    /// instead of hashing labels: token cache hit and miss.
    pub token_cache_hit: Counter,
    pub token_cache_miss: Counter,
    /// Authenticated allows per door (grpc, http, cli).
    allowed: [Counter; 3],
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
            prometheus_client::registry::Unit::Seconds,
            verify_duration.clone(),
        );
        let jwks_fetches = Family::<FetchLabels, Counter>::default();
        registry.register(
            "jwks_fetches",
            "JWKS fetches by provider and result",
            jwks_fetches.clone(),
        );
        let jwks_age = Family::<ProviderLabels, Gauge<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "jwks_age",
            "Age of the provider's current keys",
            prometheus_client::registry::Unit::Seconds,
            jwks_age.clone(),
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
        let allowed = ["grpc", "http", "cli"].map(|door| {
            decisions
                .get_or_create(&DecisionLabels {
                    door,
                    result: "allow",
                    reason: "authenticated",
                })
                .clone()
        });
        Self {
            registry,
            decisions,
            verify_duration,
            jwks_fetches,
            jwks_age,
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
            ("allow", "authenticated", "cli") => self.allowed.get(2),
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

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
