//! Rate limits per caller, shared by every replica through Redis.
//!
//! A rule lists named policies (`rate_limit: [per-user]`); each policy says
//! what counts as one caller (claims of the verified identity, or the
//! client address the proxy described) and how many requests it may make
//! (`rate`, `burst`). The limit is GCRA: one timestamp per caller, the
//! "theoretical arrival time", kept in Redis and moved by a Lua script that
//! reads Redis's own clock, so replicas with skewed clocks agree. All the
//! policies of a request are judged together: the request is admitted
//! only when every policy has room, and only then spends from each. A
//! batcher sends the requests that arrive while a script call is at Redis
//! together in the next one, so a busy replica pays one round trip per
//! batch rather than per request, and a quiet one adds no wait.
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
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;
use tokio::sync::{mpsc, oneshot};

/// GCRA for a batch of requests, in one round trip.
///
/// ARGV[1] is the number of requests; then, per request, its number of
/// policies N followed by N pairs of emission interval and burst tolerance
/// (interval × burst), in microseconds. KEYS holds the requests' keys in
/// the same order. Requests are judged one after another, so two of the
/// same caller in one batch see each other. A request is admitted only
/// when every one of its policies has room, and only then spends from
/// each. Per request the reply holds four numbers: `1, 0, 0, 0` when
/// admitted, or `0, i, retry, reset` for its first policy `i` (1-based)
/// that refused: microseconds until one more request fits, and until the
/// quota is whole.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
local k = 1
local a = 2
for _ = 1, tonumber(ARGV[1]) do
  local n = tonumber(ARGV[a])
  a = a + 1
  local tats = {}
  local refused = nil
  for i = 0, n - 1 do
    local interval = tonumber(ARGV[a + 2 * i])
    local tolerance = tonumber(ARGV[a + 2 * i + 1])
    local tat = tonumber(redis.call('GET', KEYS[k + i]) or now)
    if tat < now then tat = now end
    local new_tat = tat + interval
    if new_tat - tolerance > now then
      refused = {i + 1, new_tat - tolerance - now, tat - now}
      break
    end
    tats[i + 1] = new_tat
  end
  if refused then
    out[#out + 1] = 0
    out[#out + 1] = refused[1]
    out[#out + 1] = refused[2]
    out[#out + 1] = refused[3]
  else
    for i = 0, n - 1 do
      local ttl = math.ceil((tats[i + 1] - now) / 1000)
      if ttl < 1 then ttl = 1 end
      redis.call('SET', KEYS[k + i], tats[i + 1], 'PX', ttl)
    end
    out[#out + 1] = 1
    out[#out + 1] = 0
    out[#out + 1] = 0
    out[#out + 1] = 0
  end
  k = k + n
  a = a + 2 * n
end
return out
"#;

/// Requests judged in one script call at most.
const MAX_BATCH: usize = 128;

/// Requests waiting for the batcher at most; beyond, a check is answered
/// as if Redis were unavailable rather than queued without bound.
const QUEUE: usize = 4096;

/// One request's keys for the batcher, and where its verdict goes.
struct Job {
    /// Per policy: its Redis key, emission interval and tolerance (µs).
    keys: Vec<(String, u64, u64)>,
    reply: oneshot::Sender<Result<Verdict, StoreError>>,
}

/// What the script said about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Admitted,
    /// `policy` is the index in the request's own list.
    Refused {
        policy: usize,
        retry_us: i64,
        reset_us: i64,
    },
}

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
    /// The batcher's queue, started on the first check that needs Redis
    /// (a runtime is needed to spawn it); it stops with this limiter.
    batcher: std::sync::OnceLock<mpsc::Sender<Job>>,
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
            batcher: std::sync::OnceLock::new(),
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

    /// Hands the request to the batcher and waits for its verdict.
    async fn check_shared(
        &self,
        store: &Arc<Store>,
        applied: &[(&Arc<RatePolicy>, &Local, KeyDigest)],
    ) -> Result<Result<(), AuthError>, StoreError> {
        let keys = applied
            .iter()
            .map(|(policy, _, digest)| {
                let interval = micros(policy.emission_interval()).max(1);
                (
                    redis_key(store.key_prefix(), policy, digest),
                    interval,
                    interval.saturating_mul(policy.burst),
                )
            })
            .collect();
        let queue = self.batcher.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(drive(store.clone(), rx));
            tx
        });
        let (reply, verdict) = oneshot::channel();
        if queue.try_send(Job { keys, reply }).is_err() {
            let e = StoreError::Overloaded;
            self.metrics.count_store_error("rate_limit", e.kind());
            return Err(e);
        }
        match verdict.await {
            Ok(Ok(Verdict::Admitted)) => Ok(Ok(())),
            Ok(Ok(Verdict::Refused {
                policy,
                retry_us,
                reset_us,
            })) => match applied.get(policy) {
                Some((policy, _, _)) => Ok(Err(denial(
                    policy,
                    micros_to_secs(retry_us),
                    micros_to_secs(reset_us),
                ))),
                None => Err(unexpected_reply()),
            },
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::Overloaded),
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

/// The batcher: judges every request queued while the previous batch was
/// at Redis in one script call, so a quiet replica sends each request at
/// once and a busy one sends a round trip per batch, not per request.
async fn drive(store: Arc<Store>, mut queue: mpsc::Receiver<Job>) {
    let script = redis::Script::new(GCRA);
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let verdicts = judge(&store, &script, &batch).await;
        for (i, job) in batch.drain(..).enumerate() {
            let verdict = match &verdicts {
                Ok(all) => all.get(i).copied().ok_or_else(unexpected_reply),
                Err(e) => Err(e.clone()),
            };
            // A caller that stopped waiting has nothing to be told.
            let _ = job.reply.send(verdict);
        }
    }
}

/// One script call for a batch; one verdict per job.
async fn judge(
    store: &Store,
    script: &redis::Script,
    batch: &[Job],
) -> Result<Vec<Verdict>, StoreError> {
    let mut invocation = script.prepare_invoke();
    invocation.arg(batch.len());
    for job in batch {
        invocation.arg(job.keys.len());
        for (key, interval, tolerance) in &job.keys {
            invocation.key(key).arg(*interval).arg(*tolerance);
        }
    }
    let reply: Vec<i64> = store
        .call("rate_limit", |mut conn| async move {
            invocation.invoke_async(&mut conn).await
        })
        .await?;
    if reply.len() != batch.len() * 4 {
        return Err(unexpected_reply());
    }
    reply
        .chunks_exact(4)
        .map(|v| match *v {
            [1, _, _, _] => Ok(Verdict::Admitted),
            [0, index, retry_us, reset_us] => Ok(Verdict::Refused {
                policy: usize::try_from(index - 1).map_err(|_| unexpected_reply())?,
                retry_us,
                reset_us,
            }),
            _ => Err(unexpected_reply()),
        })
        .collect()
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
