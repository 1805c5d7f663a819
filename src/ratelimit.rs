//! Rate limits per caller, shared by every replica through Redis.
//!
//! A rule lists named policies (`rate_limit: [per-user]`); each policy says
//! what counts as one caller (claims of the verified identity, or the
//! client address the proxy described) and how many requests it may make
//! (`rate`, `burst`). The limit is GCRA: one timestamp per caller, the
//! "theoretical arrival time", kept in Redis and moved by a Lua script that
//! reads Redis's own clock, so replicas with skewed clocks agree. All the
//! policies of a request go to Redis in one script call, which admits the
//! request only when every policy has room, and only then spends from each.
//!
//! Keys are SHA-256 digests of the policy name and the caller's key parts,
//! so no claim value reaches Redis, and every key expires once its caller's
//! quota is whole again.
//!
//! When Redis cannot answer (error, deadline, open circuit breaker),
//! `on_store_error` decides: `local` applies the same policies per replica
//! in memory (so N replicas admit up to N times the limit during the
//! outage), `allow` skips limiting, `deny` refuses with 503
//! `rate_limit_unavailable`.
//!
//! This module does not decide who the caller is or whether the rule
//! passed: the authorizer calls it last, so 401s and 403s cost no quota.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter as Governor};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::{KeyPart, OnStoreError, RateLimitSpec, RatePolicy};
use crate::error::{AuthError, RateLimitDenial};
use crate::store::Store;
use crate::telemetry::Metrics;

/// GCRA over every key of one request, in one round trip.
///
/// KEYS: one per policy. ARGV: per policy, its emission interval and its
/// burst tolerance (interval × burst), in microseconds. Returns
/// `{1, reset...}` when admitted (each key's time until its quota is
/// whole), or `{0, retry, reset, index}` for the first policy that
/// refused: microseconds until one more request fits, until the quota is
/// whole, and the policy's 1-based position.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tats = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  if new_tat - tolerance > now then
    return {0, new_tat - tolerance - now, tat - now, i}
  end
  tats[i] = new_tat
end
local out = {1}
for i, key in ipairs(KEYS) do
  local ttl = math.ceil((tats[i] - now) / 1000)
  if ttl < 1 then ttl = 1 end
  redis.call('SET', key, tats[i], 'PX', ttl)
  out[i + 1] = tats[i] - now
end
return out
"#;

/// The verified caller and the request, as much as key parts need.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller<'a> {
    /// Claims of the verified identity; `None` when anonymous.
    pub claims: Option<&'a serde_json::Map<String, Value>>,
    pub client_ip: Option<IpAddr>,
}

/// A per-replica limiter for one policy (the fallback while Redis is away).
type Local = Governor<[u8; 16], DefaultKeyedStateStore<[u8; 16]>, DefaultClock>;

/// The rate limiter of one configuration generation.
pub(crate) struct RateLimiter {
    policies: Vec<Arc<RatePolicy>>,
    on_store_error: OnStoreError,
    store: Option<Arc<Store>>,
    /// Script text and its SHA-1: EVALSHA, with EVAL when Redis lost it.
    script: redis::Script,
    /// One per policy, same order.
    local: Vec<Local>,
    metrics: Arc<Metrics>,
    /// When the local limiters last forgot idle callers, in ms since `epoch`.
    last_sweep_ms: AtomicU64,
    epoch: Instant,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("policies", &self.policies.len())
            .field("on_store_error", &self.on_store_error)
            .finish_non_exhaustive()
    }
}

/// How often idle callers are dropped from the local limiters.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// A digest key part: SHA-256 of the policy and the caller's parts,
/// truncated to 128 bits.
type KeyDigest = [u8; 16];

impl RateLimiter {
    pub(crate) fn new(
        spec: &RateLimitSpec,
        store: Option<Arc<Store>>,
        metrics: Arc<Metrics>,
    ) -> RateLimiter {
        let local = spec.policies.iter().map(local_limiter).collect();
        RateLimiter {
            policies: spec.policies.iter().cloned().map(Arc::new).collect(),
            on_store_error: spec.on_store_error,
            store,
            script: redis::Script::new(GCRA),
            local,
            metrics,
            last_sweep_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Spends one request from every policy in `indices` for `caller`, or
    /// refuses with the first policy that has no room. Policies whose key
    /// cannot be formed for this caller (a claim it lacks) do not apply.
    pub(crate) async fn check(
        &self,
        indices: &[usize],
        caller: Caller<'_>,
    ) -> Result<(), AuthError> {
        let mut applied: Vec<(&Arc<RatePolicy>, &Local, KeyDigest)> =
            Vec::with_capacity(indices.len());
        for &i in indices {
            let (Some(policy), Some(local)) = (self.policies.get(i), self.local.get(i)) else {
                continue;
            };
            if let Some(digest) = key_digest(policy, caller) {
                applied.push((policy, local, digest));
            }
        }
        if applied.is_empty() {
            return Ok(());
        }
        let Some(store) = &self.store else {
            return self.check_locally(&applied);
        };
        match self.check_shared(store, &applied).await {
            Ok(verdict) => verdict,
            Err(e) => match self.on_store_error {
                OnStoreError::Local => {
                    tracing::debug!(error = %e, "rate limits: Redis unavailable, limiting per replica");
                    self.check_locally(&applied)
                }
                OnStoreError::Allow => Ok(()),
                OnStoreError::Deny => Err(AuthError::RateLimitUnavailable),
            },
        }
    }

    /// One script call for every applied policy.
    async fn check_shared(
        &self,
        store: &Store,
        applied: &[(&Arc<RatePolicy>, &Local, KeyDigest)],
    ) -> Result<Result<(), AuthError>, crate::store::StoreError> {
        let mut invocation = self.script.prepare_invoke();
        for (policy, _, digest) in applied {
            let interval = micros(policy.emission_interval()).max(1);
            invocation
                .key(redis_key(store.key_prefix(), policy, digest))
                .arg(interval)
                .arg(interval.saturating_mul(policy.burst));
        }
        let reply: Vec<i64> = store
            .call("rate_limit", |mut conn| async move {
                invocation.invoke_async(&mut conn).await
            })
            .await?;
        match reply.as_slice() {
            [1, ..] => Ok(Ok(())),
            [0, retry, reset, index] => {
                let policy = usize::try_from(*index - 1)
                    .ok()
                    .and_then(|i| applied.get(i))
                    .map(|(p, _, _)| *p);
                match policy {
                    Some(policy) => Ok(Err(denial(
                        policy,
                        micros_to_secs(*retry),
                        micros_to_secs(*reset),
                    ))),
                    None => Err(unexpected_reply()),
                }
            }
            _ => Err(unexpected_reply()),
        }
    }

    /// The same policies, counted in this replica's memory.
    fn check_locally(
        &self,
        applied: &[(&Arc<RatePolicy>, &Local, KeyDigest)],
    ) -> Result<(), AuthError> {
        self.metrics.rate_limit_local.inc();
        self.sweep();
        // Check every policy before spending from any, as the script does.
        for (policy, local, digest) in applied {
            if let Err(not_until) = local.check_key(digest) {
                // `check_key` spent nothing on refusal; earlier policies
                // already spent one, which the local fallback tolerates.
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let retry = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                let reset = policy
                    .emission_interval()
                    .saturating_mul(u32::try_from(policy.burst).unwrap_or(u32::MAX));
                return Err(denial(policy, retry.max(1), reset.as_secs().max(1)));
            }
        }
        Ok(())
    }

    /// Forgets callers whose local quota is whole again, now and then.
    fn sweep(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < SWEEP_EVERY.as_millis() as u64 {
            return;
        }
        if self
            .last_sweep_ms
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            for local in &self.local {
                local.retain_recent();
                local.shrink_to_fit();
            }
        }
    }
}

fn unexpected_reply() -> crate::store::StoreError {
    crate::store::StoreError::Redis(redis::RedisError::from((
        redis::ErrorKind::Client,
        "unexpected reply from the rate-limit script",
    )))
}

fn denial(policy: &RatePolicy, retry_after_secs: u64, reset_secs: u64) -> AuthError {
    AuthError::RateLimited(Box::new(RateLimitDenial {
        policy: policy.name.clone(),
        quota: policy.burst,
        window_secs: policy.period.as_secs().max(1),
        retry_after_secs: retry_after_secs.max(1),
        reset_secs: reset_secs.max(1),
    }))
}

fn local_limiter(policy: &RatePolicy) -> Local {
    let burst =
        NonZeroU32::new(u32::try_from(policy.burst).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
    let period = policy.emission_interval().max(Duration::from_nanos(1));
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst);
    Governor::keyed(quota)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Whole seconds, rounded up.
fn micros_to_secs(us: i64) -> u64 {
    let us = u64::try_from(us).unwrap_or(0);
    us.div_ceil(1_000_000)
}

/// The Redis key of one caller under one policy.
fn redis_key(prefix: &str, policy: &RatePolicy, digest: &KeyDigest) -> String {
    let mut key = String::with_capacity(prefix.len() + policy.name.len() + 36);
    key.push_str(prefix);
    key.push_str("rl:");
    key.push_str(&policy.name);
    key.push(':');
    push_hex(&mut key, digest);
    key
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
}

/// The caller's key under `policy`, or `None` when a claim it names is
/// missing. A missing client address is one shared "unknown" caller, so a
/// proxy that does not describe it cannot lift the limit.
fn key_digest(policy: &RatePolicy, caller: Caller<'_>) -> Option<KeyDigest> {
    let mut h = Sha256::new();
    h.update(policy.name.as_bytes());
    for part in &policy.key {
        // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        let mut feed = |tag: u8, bytes: &[u8]| {
            h.update([tag]);
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        };
        match part {
            KeyPart::Claim(name) => {
                let value = caller.claims?.get(name)?;
                match value {
                    Value::String(s) => feed(b's', s.as_bytes()),
                    Value::Null => return None,
                    other => feed(b'j', other.to_string().as_bytes()),
                }
            }
            KeyPart::ClientIp => match caller.client_ip {
                Some(IpAddr::V4(v4)) => feed(b'4', &v4.octets()),
                Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                    Some(v4) => feed(b'4', &v4.octets()),
                    None => feed(b'6', &v6.octets()),
                },
                None => feed(b'?', b""),
            },
        }
    }
    let digest: [u8; 32] = h.finalize().into();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    Some(out)
}

/// The key Envoy users can give their own rate-limit service: a digest of
/// the verified subject, stable while its tokens rotate (32 hex digits).
pub(crate) fn subject_key(sub: &str) -> String {
    let digest: [u8; 32] = Sha256::digest(sub.as_bytes()).into();
    let mut out = String::with_capacity(32);
    push_hex(&mut out, &digest[..16]);
    out
}

#[cfg(test)]
mod tests;
