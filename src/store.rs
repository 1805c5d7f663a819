//! The shared store: one Redis connection for the request path, with a
//! deadline on every command and a circuit breaker in front of it.
//!
//! Replicas keep what must agree across them (rate-limit counters, the
//! revocation stream) in Redis. The request path must never wait on a sick
//! Redis longer than `redis.timeout` (25 ms by default, well inside Envoy's
//! 200 ms `ext_authz` budget), and must stop asking one that keeps failing:
//! after `redis.breaker_failures` consecutive failures the breaker opens,
//! calls fail at once, and after a jittered `redis.breaker_cooldown` one
//! probe is let through; its success closes the breaker.
//!
//! The connection is made lazily and re-made in the background by the
//! `redis` crate's connection manager, so a Redis that is down at start is
//! not an error: readiness never depends on it. Long blocking reads (the
//! revocation stream) take their own connection from [`Store::client`].
//!
//! What the store holds is decided by its users (`ratelimit`,
//! `revocation`); this module owns the connection, the deadline, the
//! breaker and the `gatehouse_store_*` metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::StoreSpec;
use crate::telemetry::Metrics;

/// Why a store call failed. Messages name Redis and never the URL (it may
/// hold a password).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The breaker is open: Redis failed repeatedly and is not asked until
    /// the cooldown ends.
    #[error("Redis is unavailable (circuit open after repeated failures)")]
    Open,
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// More requests wait for Redis than a replica queues; answered as if
    /// Redis were unavailable instead of waiting without bound.
    #[error("too many requests are waiting for Redis")]
    Overloaded,
}

impl StoreError {
    /// A fixed label for metrics and logs.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Open => "circuit_open",
            Self::Timeout(_) => "timeout",
            Self::Redis(_) => "redis",
            Self::Overloaded => "overloaded",
        }
    }
}

/// The shared store of one process (kept across reloads).
pub struct Store {
    client: redis::Client,
    conn: ConnectionManager,
    spec: StoreSpec,
    breaker: Breaker,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("url_env", &self.spec.url_env)
            .field("timeout", &self.spec.timeout)
            .field("open", &self.breaker.is_open())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Prepares the connection without making it (no network here). Fails
    /// only on a URL the client cannot use; the message names the variable.
    pub fn new(spec: &StoreSpec, metrics: Arc<Metrics>) -> Result<Store, String> {
        let url = std::str::from_utf8(&spec.url.0)
            .map_err(|_| format!("{} is not valid UTF-8", spec.url_env))?;
        let client = redis::Client::open(url)
            .map_err(|e| format!("{} is not a usable Redis URL: {:?}", spec.url_env, e.kind()))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(spec.timeout))
            .set_connection_timeout(Some(spec.connect_timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| format!("Redis client for {}: {:?}", spec.url_env, e.kind()))?;
        metrics.store_degraded.set(0);
        Ok(Store {
            client,
            conn,
            breaker: Breaker::new(spec.breaker_failures, spec.breaker_cooldown),
            spec: spec.clone(),
            metrics,
        })
    }

    /// The prefix of every key gatehouse writes.
    pub fn key_prefix(&self) -> &str {
        &self.spec.key_prefix
    }

    /// The client, for connections of their own (blocking stream reads).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The per-command deadline.
    pub fn timeout(&self) -> Duration {
        self.spec.timeout
    }

    /// The deadline of one connection attempt.
    pub fn connect_timeout(&self) -> Duration {
        self.spec.connect_timeout
    }

    /// The variable the URL came from, for messages.
    pub fn url_env(&self) -> &str {
        &self.spec.url_env
    }

    /// True while the breaker is open (calls fail without asking Redis).
    pub fn is_degraded(&self) -> bool {
        self.breaker.is_open()
    }

    /// Runs one request-path operation: through the breaker, under the
    /// deadline, timed into `gatehouse_store_duration_seconds{op}` and,
    /// when it fails, counted into `gatehouse_store_errors_total{op,kind}`.
    pub async fn call<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        self.call_within(op, self.spec.timeout, f).await
    }

    /// [`Store::call`] with its own deadline (admin writes, start-up loads).
    pub async fn call_within<T, F, Fut>(
        &self,
        op: &'static str,
        deadline: Duration,
        f: F,
    ) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if !self.breaker.admit() {
            self.metrics.count_store_error(op, StoreError::Open.kind());
            return Err(StoreError::Open);
        }
        let started = Instant::now();
        let result = match tokio::time::timeout(deadline, f(self.conn.clone())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(StoreError::Redis(e)),
            Err(_) => Err(StoreError::Timeout(deadline)),
        };
        self.metrics
            .observe_store(op, started.elapsed().as_secs_f64());
        match &result {
            Ok(_) => {
                if self.breaker.success() {
                    tracing::info!(store.op = op, "Redis answers again: circuit closed");
                }
            }
            Err(e) => {
                self.metrics.count_store_error(op, e.kind());
                if self.breaker.failure() {
                    tracing::warn!(
                        store.op = op,
                        store.error = %e,
                        cooldown_ms = self.spec.breaker_cooldown.as_millis() as u64,
                        "Redis keeps failing: circuit open, not asking it until the cooldown ends"
                    );
                }
            }
        }
        self.metrics
            .store_degraded
            .set(i64::from(self.breaker.is_open()));
        result
    }
}

/// Consecutive-failure circuit breaker with a jittered cooldown and a
/// single half-open probe. Lock-free: a few atomics read on every call.
#[derive(Debug)]
struct Breaker {
    threshold: u32,
    cooldown: Duration,
    /// Consecutive failures since the last success.
    failures: AtomicU32,
    /// While open: when the next probe may go, in ms since `epoch`; 0 = closed.
    open_until_ms: AtomicU64,
    /// A probe is in flight (half-open): others keep failing fast.
    probing: AtomicBool,
    epoch: Instant,
}

impl Breaker {
    fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            failures: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        // Starts at 1 so that 0 keeps meaning "closed".
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    fn is_open(&self) -> bool {
        self.open_until_ms.load(Ordering::Acquire) != 0
    }

    /// May a call go to Redis now? Closed: yes. Open: only one probe, once
    /// the cooldown has passed.
    fn admit(&self) -> bool {
        let until = self.open_until_ms.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        if self.now_ms() < until {
            return false;
        }
        self.probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Records a success; returns true when it closed an open breaker.
    fn success(&self) -> bool {
        self.failures.store(0, Ordering::Release);
        self.probing.store(false, Ordering::Release);
        self.open_until_ms.swap(0, Ordering::AcqRel) != 0
    }

    /// Records a failure; returns true when it opened the breaker.
    fn failure(&self) -> bool {
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        let was_probe = self.probing.swap(false, Ordering::AcqRel);
        if failures < self.threshold && !was_probe {
            return false;
        }
        let until = self.now_ms() + jittered(self.cooldown).as_millis() as u64;
        let before = self.open_until_ms.swap(until, Ordering::AcqRel);
        before == 0
    }
}

/// `d` moved by up to a quarter either way, so replicas that saw the same
/// outage do not all probe at the same instant.
pub(crate) fn jittered(d: Duration) -> Duration {
    let quarter = d / 4;
    let spread = quarter.as_millis() as u64 * 2;
    if spread == 0 {
        return d;
    }
    let offset = rand::random_range(0..=spread);
    (d - quarter) + Duration::from_millis(offset)
}

#[cfg(test)]
mod tests;
