//! Revocations: the list every replica enforces, shared through a Redis
//! Stream (docs/rate-limits-and-revocation.md).
//!
//! An entry names what it revokes ([`Selector`]: a subject, optionally only
//! its tokens issued before a time; a `jti`; a session id; a Better Auth
//! session token, kept only as its SHA-256) and when it stops mattering
//! (`expires_at`: once no credential it matches can still be valid, see
//! [`Horizons`]).
//!
//! [`Revocations`] holds the unexpired entries in memory and publishes them
//! as an immutable [`Snapshot`] behind an `ArcSwap`: a request's check is
//! one atomic load and at most four hash probes, never a Redis call, so it
//! runs on every request, verified-token cache hits included. Each batch
//! read from the stream (and each expiry) rebuilds the snapshot; requests
//! never wait for that.
//!
//! `stream` owns the Redis side: appending (the writers: the admin API and
//! `gatehouse revoke`), loading at start and following with a blocking
//! read on a dedicated connection. This module does not decide what a
//! revoked request is answered (the error table does: 401 `token_revoked`).

pub(crate) mod stream;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde_json::{Map, Value};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::{AuthError, RevokedKind};
use crate::extract::Credential;
use crate::identity::Identity;
use crate::session::token_sha256;
use crate::store::Store;
use crate::telemetry::Metrics;
use crate::verify::Verified;

/// Longest subject, jti or session id accepted.
pub(crate) const MAX_VALUE_LEN: usize = 1024;

/// Longest reason kept with an entry.
pub(crate) const MAX_REASON_LEN: usize = 256;

/// How far in the future `--before` may lie (clock skew between the
/// writer and the issuer); further is refused.
pub(crate) const BEFORE_SKEW: i64 = 60;

/// How often expired entries are dropped from memory.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// What a revocation matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selector {
    /// Every credential of subject `sub`; with `before`, only those whose
    /// `iat` is before it (Unix seconds; no `iat` counts as before).
    Sub { sub: String, before: Option<i64> },
    /// One token by its `jti` claim.
    Jti(String),
    /// A session by id: a Better Auth session (`session_id`) and the tokens
    /// bound to it (the provider's `session_claim`, else `sid`).
    Sid(String),
    /// A Better Auth session by the SHA-256 of its token.
    Session([u8; 32]),
}

impl Selector {
    /// The kind as written to the stream and printed.
    pub(crate) const fn kind(&self) -> &'static str {
        match self {
            Selector::Sub { .. } => "sub",
            Selector::Jti(_) => "jti",
            Selector::Sid(_) => "sid",
            Selector::Session(_) => "session",
        }
    }

    /// The value as written to the stream: the subject, jti or session id,
    /// or the session token's SHA-256 in lowercase hex.
    pub(crate) fn value(&self) -> String {
        match self {
            Selector::Sub { sub: v, .. } | Selector::Jti(v) | Selector::Sid(v) => v.clone(),
            Selector::Session(hash) => hex(hash),
        }
    }

    /// `before` of a subject entry.
    pub(crate) const fn before(&self) -> Option<i64> {
        match self {
            Selector::Sub { before, .. } => *before,
            _ => None,
        }
    }

    /// Builds a selector from the stream's (or the API's) kind and value;
    /// `None` for an unknown kind or an unusable value.
    pub(crate) fn parse(kind: &str, value: &str, before: Option<i64>) -> Option<Selector> {
        if value.is_empty() || value.len() > MAX_VALUE_LEN {
            return None;
        }
        let selector = match kind {
            "sub" => Selector::Sub {
                sub: value.to_owned(),
                before,
            },
            "jti" => Selector::Jti(value.to_owned()),
            "sid" => Selector::Sid(value.to_owned()),
            "session" => Selector::Session(unhex(value)?),
            _ => return None,
        };
        if before.is_some() && !matches!(selector, Selector::Sub { .. }) {
            return None;
        }
        Some(selector)
    }

    /// A session selector from a session token as a user may paste it:
    /// the raw token, the cookie value `TOKEN.SIG`, URL-encoded or not.
    pub(crate) fn session_token(presented: &str) -> Option<Selector> {
        let decoded = percent_encoding::percent_decode_str(presented.trim()).decode_utf8_lossy();
        let raw = decoded.split('.').next().unwrap_or("");
        if raw.is_empty() || raw.len() > MAX_VALUE_LEN {
            return None;
        }
        Some(Selector::Session(token_sha256(raw)))
    }

    /// Whether this revokes a cached Better Auth session: its subject
    /// (with `before`, when it was created earlier, or its creation is not
    /// known), its id, or its token (`token` is [`token_sha256`] of it).
    pub(crate) fn matches_session(&self, identity: &Identity, token: &[u8; 32]) -> bool {
        match self {
            Selector::Sub { sub, before } => {
                identity.sub() == Some(sub.as_str())
                    && before.is_none_or(|b| {
                        identity
                            .claims
                            .get("iat")
                            .and_then(unix_seconds)
                            .is_none_or(|iat| iat < b)
                    })
            }
            Selector::Sid(sid) => {
                identity.claims.get("session_id").and_then(Value::as_str) == Some(sid.as_str())
            }
            Selector::Session(hash) => hash == token,
            Selector::Jti(_) => false,
        }
    }
}

/// One revocation, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The stream entry id (`<ms>-<seq>`).
    pub(crate) id: String,
    pub(crate) selector: Selector,
    /// Unix seconds, by the writer's clock.
    pub(crate) created_at: i64,
    /// Unix seconds: no credential it matches can be valid after this.
    pub(crate) expires_at: i64,
    pub(crate) reason: String,
}

impl Entry {
    /// The entry as `gatehouse revoke` prints it (one JSON object).
    pub(crate) fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), Value::from(self.id.clone()));
        m.insert("kind".into(), Value::from(self.selector.kind()));
        m.insert("value".into(), Value::from(self.selector.value()));
        if let Some(before) = self.selector.before() {
            m.insert("issued_before".into(), Value::from(rfc3339(before)));
        }
        m.insert("created_at".into(), Value::from(rfc3339(self.created_at)));
        m.insert("expires_at".into(), Value::from(rfc3339(self.expires_at)));
        if !self.reason.is_empty() {
            m.insert("reason".into(), Value::from(self.reason.clone()));
        }
        Value::Object(m)
    }
}

/// How long entries must be kept, from the configuration: a token is
/// valid at most its provider's `max_lifetime` (plus leeway on both `iat`
/// and `exp`) after it was issued; sessions and tokens of providers
/// without `max_lifetime` are bounded only by `revocation.retention`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Horizons {
    /// Seconds a token can outlive its revocation.
    jwt: i64,
    /// Seconds a session can, when sessions are looked up.
    session: Option<i64>,
    retention: i64,
}

impl Horizons {
    pub(crate) fn for_config(config: &Config) -> Horizons {
        let retention = secs(config.revocation_retention);
        let bounded: Option<Vec<i64>> = config
            .providers
            .iter()
            .map(|p| {
                p.max_lifetime
                    .map(|max| secs(max).saturating_add(secs(p.leeway).saturating_mul(2)))
            })
            .collect();
        let jwt = match bounded {
            Some(all) if !all.is_empty() => all.into_iter().max().unwrap_or(retention),
            _ => retention,
        };
        Horizons {
            jwt,
            session: config.session.as_ref().map(|_| retention),
            retention,
        }
    }

    /// Seconds after which no credential matched by `selector` and valid
    /// at its anchor (now, or `before`) can still be valid.
    fn horizon(&self, selector: &Selector) -> i64 {
        match selector {
            Selector::Jti(_) => self.jwt,
            Selector::Sub { .. } | Selector::Sid(_) => self.jwt.max(self.session.unwrap_or(0)),
            Selector::Session(_) => self.session.unwrap_or(self.retention),
        }
    }

    /// When an entry for `selector` written at `now` stops mattering.
    pub(crate) fn expires_at(&self, selector: &Selector, now: i64) -> i64 {
        let anchor = selector.before().map_or(now, |b| b.min(now + BEFORE_SKEW));
        anchor.saturating_add(self.horizon(selector))
    }

    /// The longest any entry written now can matter: entries created
    /// earlier than this are past their expiry and may be trimmed.
    pub(crate) fn window(&self) -> i64 {
        self.jwt
            .max(self.session.unwrap_or(0))
            .max(self.retention)
            .saturating_add(BEFORE_SKEW)
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// A subject's revocations, merged.
#[derive(Debug, Clone, Copy, Default)]
struct SubRule {
    /// Every credential of the subject.
    all: bool,
    /// Credentials issued before this (the latest such entry).
    before: Option<i64>,
}

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The list as requests see it: immutable, replaced whole.
#[derive(Debug, Default)]
struct Snapshot {
    subs: FastMap<Arc<str>, SubRule>,
    jtis: FastMap<Arc<str>, ()>,
    sids: FastMap<Arc<str>, ()>,
    sessions: FastMap<[u8; 32], ()>,
    len: usize,
}

impl Snapshot {
    fn build<'a>(entries: impl Iterator<Item = &'a Entry>) -> Snapshot {
        let mut s = Snapshot::default();
        for e in entries {
            s.len += 1;
            match &e.selector {
                Selector::Sub { sub, before } => {
                    let rule = s.subs.entry(Arc::from(sub.as_str())).or_default();
                    match before {
                        None => rule.all = true,
                        Some(b) => rule.before = Some(rule.before.map_or(*b, |x| x.max(*b))),
                    }
                }
                Selector::Jti(v) => {
                    s.jtis.insert(Arc::from(v.as_str()), ());
                }
                Selector::Sid(v) => {
                    s.sids.insert(Arc::from(v.as_str()), ());
                }
                Selector::Session(h) => {
                    s.sessions.insert(*h, ());
                }
            }
        }
        s
    }

    /// What revokes a credential with these claims, if anything. `sid_claim`
    /// names the claim holding its session id; `session_token` is the
    /// presented Better Auth session token, for session credentials.
    fn matches(
        &self,
        claims: &Map<String, Value>,
        sid_claim: &str,
        session_token: Option<&str>,
    ) -> Option<RevokedKind> {
        if !self.subs.is_empty()
            && let Some(rule) = claims
                .get("sub")
                .and_then(Value::as_str)
                .and_then(|sub| self.subs.get(sub))
        {
            if rule.all {
                return Some(RevokedKind::Subject);
            }
            if let Some(before) = rule.before
                && claims
                    .get("iat")
                    .and_then(unix_seconds)
                    .is_none_or(|iat| iat < before)
            {
                return Some(RevokedKind::SubjectBefore);
            }
        }
        if !self.jtis.is_empty()
            && claims
                .get("jti")
                .and_then(Value::as_str)
                .is_some_and(|jti| self.jtis.contains_key(jti))
        {
            return Some(RevokedKind::TokenId);
        }
        if !self.sids.is_empty()
            && claims
                .get(sid_claim)
                .and_then(Value::as_str)
                .is_some_and(|sid| self.sids.contains_key(sid))
        {
            return Some(RevokedKind::Session);
        }
        if !self.sessions.is_empty()
            && let Some(token) = session_token
            && self.sessions.contains_key(&token_sha256(token))
        {
            return Some(RevokedKind::Session);
        }
        None
    }
}

/// A time claim as whole Unix seconds (fractions dropped).
fn unix_seconds(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().map(|f| f.floor() as i64))
}

/// The unexpired entries by stream id: what the snapshot is built from.
#[derive(Debug, Default)]
struct Master {
    entries: BTreeMap<StreamId, Entry>,
    /// The earliest `expires_at` among them (`i64::MAX` when none).
    next_expiry: i64,
    /// The last stream id the follower has read, applied or not (expired,
    /// unparsable): where it resumes. Entries this replica applies as it
    /// writes them do not move it, since entries other writers appended
    /// just before may not have been read yet.
    cursor: Option<StreamId>,
}

/// A stream id, ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct StreamId {
    pub(crate) ms: u64,
    pub(crate) seq: u64,
}

impl StreamId {
    pub(crate) fn parse(id: &str) -> Option<StreamId> {
        let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
        Some(StreamId {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// The generation of the revocation list a verified token was last found
/// clear against (0: never checked). Kept with the verified-token cache
/// entry: while the list has not changed since, a hit needs no lookup.
#[derive(Debug, Default)]
pub struct Cleared(AtomicU64);

impl Clone for Cleared {
    fn clone(&self) -> Self {
        Cleared(AtomicU64::new(self.0.load(Ordering::Relaxed)))
    }
}

/// The revocation list of one process, kept across configuration
/// generations: loaded from and following the shared stream when a store
/// is configured.
pub struct Revocations {
    /// What requests check; replaced whole on every change.
    current: ArcSwap<Snapshot>,
    /// Bumped after every replacement of `current` (starts at 1), so a
    /// token found clear at generation G needs no lookup while it is G.
    generation: AtomicU64,
    /// The entries the snapshot is built from (follower and pruner only).
    master: Mutex<Master>,
    /// `None`: nothing to follow (benchmarks, tests).
    store: Option<Arc<Store>>,
    /// `{prefix}revocations`.
    key: String,
    metrics: Arc<Metrics>,
    /// Whether the follower is reading the stream right now.
    following: AtomicBool,
    /// Becomes true once the stream has been loaded once.
    synced: watch::Sender<bool>,
    /// Newly applied entries, for the session caches to evict.
    added: broadcast::Sender<Arc<[Selector]>>,
    stop: CancellationToken,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("key", &self.key)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl Revocations {
    /// A list that follows `store`'s stream once [`Revocations::start`] is
    /// called.
    pub(crate) fn new(store: Arc<Store>, metrics: Arc<Metrics>) -> Arc<Revocations> {
        let key = stream::key(store.key_prefix());
        Self::build(Some(store), key, metrics)
    }

    /// A list held in memory only, filled with [`Revocations::insert`]
    /// (benchmarks).
    pub fn offline(metrics: Arc<Metrics>) -> Arc<Revocations> {
        Self::build(None, String::new(), metrics)
    }

    fn build(store: Option<Arc<Store>>, key: String, metrics: Arc<Metrics>) -> Arc<Revocations> {
        let (added, _) = broadcast::channel(64);
        let r = Arc::new(Revocations {
            current: ArcSwap::from_pointee(Snapshot::default()),
            generation: AtomicU64::new(1),
            master: Mutex::new(Master {
                entries: BTreeMap::new(),
                next_expiry: i64::MAX,
                cursor: None,
            }),
            store,
            key,
            metrics,
            following: AtomicBool::new(false),
            synced: watch::Sender::new(false),
            added,
            stop: CancellationToken::new(),
        });
        r.publish_counts(&r.current.load());
        r
    }

    /// Adds revocations of `kind` (`sub`, `jti`, `sid`, `session` with
    /// hex SHA-256 values) expiring at `expires_at`, as if read from the
    /// stream (benchmarks); values that do not parse are skipped.
    pub fn insert(&self, kind: &str, values: impl IntoIterator<Item = String>, expires_at: i64) {
        let mut next = self
            .master_lock()
            .entries
            .keys()
            .next_back()
            .copied()
            .unwrap_or_default();
        let entries = values
            .into_iter()
            .filter_map(|value| {
                next.seq += 1;
                Some(Entry {
                    id: next.to_string(),
                    selector: Selector::parse(kind, &value, None)?,
                    created_at: 0,
                    expires_at,
                    reason: String::new(),
                })
            })
            .collect();
        self.apply(entries, now());
    }

    /// Starts following the stream and dropping expired entries, until
    /// [`Revocations::stop`]. Does nothing without a store.
    pub(crate) fn start(self: &Arc<Self>) {
        let Some(store) = &self.store else {
            return;
        };
        tokio::spawn(stream::follow(self.clone(), store.clone()));
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PRUNE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = this.stop.cancelled() => break,
                    _ = tick.tick() => this.prune(now()),
                }
            }
        });
    }

    /// Stops the follower and the pruner.
    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }

    /// Waits until the stream has been loaded once, at most `timeout`;
    /// returns whether it was.
    pub(crate) async fn wait_synced(&self, timeout: Duration) -> bool {
        let mut rx = self.synced.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|s| *s))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Whether the follower is reading the stream right now.
    pub(crate) fn is_following(&self) -> bool {
        self.following.load(Ordering::Acquire)
    }

    /// The store writes go to.
    pub(crate) fn store(&self) -> Option<&Arc<Store>> {
        self.store.as_ref()
    }

    /// Entries in memory.
    pub(crate) fn len(&self) -> usize {
        self.current.load().len
    }

    /// Newly applied revocations, for caches that must forget what they match.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<[Selector]>> {
        self.added.subscribe()
    }

    /// The unexpired entries, newest first, at most `limit` (0: all).
    pub(crate) fn list(&self, limit: usize) -> Vec<Entry> {
        let master = self.master_lock();
        let take = if limit == 0 { usize::MAX } else { limit };
        master.entries.values().rev().take(take).cloned().collect()
    }

    /// The request-path check: `Err(token_revoked)` when a revocation
    /// matches the identified caller. `session_claims` are the providers
    /// whose tokens are bound to a session, with the claim naming it.
    pub(crate) fn check(
        &self,
        identity: &Identity,
        credential: &Credential,
        session_claims: &[(Arc<str>, String)],
    ) -> Result<(), AuthError> {
        let snapshot = self.current.load();
        if snapshot.len == 0 {
            return Ok(());
        }
        let (sid_claim, session_token) = match credential {
            Credential::Session { token, .. } => ("session_id", Some(token.as_str())),
            Credential::Jwt { .. } => (
                session_claims
                    .iter()
                    .find(|(provider, _)| **provider == *identity.provider)
                    .map_or("sid", |(_, claim)| claim.as_str()),
                None,
            ),
        };
        match snapshot.matches(&identity.claims, sid_claim, session_token) {
            Some(kind) => Err(AuthError::Revoked(kind)),
            None => Ok(()),
        }
    }

    /// [`Revocations::check`] for a token from the verified-token cache:
    /// no lookup while the list is the one it was last found clear against.
    pub(crate) fn check_cached(
        &self,
        verified: &Verified,
        credential: &Credential,
        session_claims: &[(Arc<str>, String)],
    ) -> Result<(), AuthError> {
        // The generation is read before the snapshot the check loads: the
        // snapshot is at least as new, so recording this generation as
        // clear never skips a revocation.
        let generation = self.generation.load(Ordering::Acquire);
        if verified.revocations.0.load(Ordering::Relaxed) == generation {
            return Ok(());
        }
        self.check(&verified.identity, credential, session_claims)?;
        verified.revocations.0.store(generation, Ordering::Relaxed);
        Ok(())
    }

    /// Applies entries read from the stream (or loaded at start); entries
    /// already expired at `now` are skipped. Returns how many were new.
    pub(crate) fn apply(&self, entries: Vec<Entry>, now: i64) -> usize {
        let mut fresh = Vec::new();
        {
            let mut master = self.master_lock();
            for e in entries {
                let Some(id) = StreamId::parse(&e.id) else {
                    continue;
                };
                if e.expires_at <= now || master.entries.contains_key(&id) {
                    continue;
                }
                master.next_expiry = master.next_expiry.min(e.expires_at);
                fresh.push(e.selector.clone());
                master.entries.insert(id, e);
            }
            if fresh.is_empty() {
                return 0;
            }
            self.rebuild(&master);
        }
        let n = fresh.len();
        let _ = self.added.send(Arc::from(fresh));
        n
    }

    /// [`Revocations::apply`] for what the follower read, up to and
    /// including stream id `through` (the last id of the read, whether its
    /// entry parsed or not): the follower resumes after it.
    pub(crate) fn apply_read(
        &self,
        entries: Vec<Entry>,
        through: Option<StreamId>,
        now: i64,
    ) -> usize {
        let n = self.apply(entries, now);
        if let Some(through) = through {
            let mut master = self.master_lock();
            master.cursor = Some(master.cursor.map_or(through, |c| c.max(through)));
        }
        n
    }

    /// Drops entries that expired by `now`.
    pub(crate) fn prune(&self, now: i64) {
        let mut master = self.master_lock();
        if master.next_expiry > now {
            return;
        }
        master.entries.retain(|_, e| e.expires_at > now);
        master.next_expiry = master
            .entries
            .values()
            .map(|e| e.expires_at)
            .min()
            .unwrap_or(i64::MAX);
        self.rebuild(&master);
    }

    /// Reads the stream from the start again (it was rebuilt behind the
    /// cursor); entries already held are recognized by id.
    pub(crate) fn reset_cursor(&self) {
        self.master_lock().cursor = None;
    }

    /// The last stream id read, where the follower resumes (`None`:
    /// nothing read yet, so from the start).
    pub(crate) fn last_id(&self) -> Option<StreamId> {
        self.master_lock().cursor
    }

    fn rebuild(&self, master: &Master) {
        let snapshot = Snapshot::build(master.entries.values());
        self.publish_counts(&snapshot);
        self.current.store(Arc::new(snapshot));
        self.generation.fetch_add(1, Ordering::Release);
    }

    fn publish_counts(&self, s: &Snapshot) {
        let befores = s.subs.values().filter(|r| r.before.is_some()).count();
        let alls = s.subs.values().filter(|r| r.all).count();
        for (kind, n) in [
            ("sub", alls),
            ("sub_before", befores),
            ("jti", s.jtis.len()),
            ("sid", s.sids.len()),
            ("session", s.sessions.len()),
        ] {
            self.metrics.set_revocations(kind, n);
        }
    }

    fn master_lock(&self) -> std::sync::MutexGuard<'_, Master> {
        // A panic while holding it cannot leave the map half-updated in a
        // way that matters: the snapshot is rebuilt from it whole.
        self.master.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_following(&self, on: bool) {
        self.following.store(on, Ordering::Release);
        self.metrics.set_revocation_following(on);
    }

    fn mark_synced(&self) {
        self.metrics.revocation_synced_now();
        self.synced.send_replace(true);
    }
}

/// Refuses a new revocation that cannot be what was meant: an empty or
/// oversized value, or a `before` further in the future than clock skew
/// explains. The message names the field.
pub(crate) fn check_new(selector: &Selector, now: i64) -> Result<(), String> {
    if let Selector::Sub { sub: v, .. } | Selector::Jti(v) | Selector::Sid(v) = selector
        && (v.is_empty() || v.len() > MAX_VALUE_LEN)
    {
        return Err(format!(
            "the {} must be 1 to {MAX_VALUE_LEN} bytes long",
            selector.kind()
        ));
    }
    if let Some(before) = selector.before()
        && before > now.saturating_add(BEFORE_SKEW)
    {
        return Err(format!(
            "before ({}) is in the future; to revoke every token of the subject, leave it out",
            rfc3339(before)
        ));
    }
    Ok(())
}

/// Records a revocation in `store`, kept as long as `config` says a
/// credential it matches can stay valid.
pub(crate) async fn record(
    store: &Store,
    config: &Config,
    selector: Selector,
    reason: &str,
) -> Result<Entry, crate::store::StoreError> {
    stream::append(
        store,
        selector,
        reason,
        &Horizons::for_config(config),
        now(),
    )
    .await
}

/// Evicts newly revoked sessions from one configuration generation's
/// session caches until `stop` (the generation's end). A receiver that fell
/// behind forgets nothing in particular: it evicts every cached session.
pub(crate) async fn evict_sessions(
    sessions: Arc<crate::session::SessionStore>,
    mut added: broadcast::Receiver<Arc<[Selector]>>,
    stop: CancellationToken,
) {
    loop {
        let batch = tokio::select! {
            () = stop.cancelled() => return,
            r = added.recv() => r,
        };
        match batch {
            Ok(revoked) => {
                let n = sessions.forget(&revoked).await;
                if n > 0 {
                    tracing::debug!(
                        session.evicted = n,
                        "revoked sessions evicted from the cache"
                    );
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => sessions.forget_all(),
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Unix seconds now.
pub(crate) fn now() -> i64 {
    i64::try_from(crate::decision::unix_now()).unwrap_or(i64::MAX)
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// 64 hex digits → 32 bytes.
fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, slot) in out.iter_mut().enumerate() {
        let pair = s.get(i * 2..i * 2 + 2)?;
        *slot = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// Unix seconds as RFC 3339 (UTC).
pub(crate) fn rfc3339(unix: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(unix).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A time as `--before` takes it: Unix seconds, or RFC 3339 (`Z` or a
/// `±HH:MM` offset).
pub(crate) fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    let bad = || format!("{s:?} is neither Unix seconds nor an RFC 3339 time");
    let (base, offset) = match s
        .len()
        .checked_sub(6)
        .and_then(|i| s.get(i..).map(|t| (i, t)))
    {
        Some((i, tail))
            if (tail.starts_with('+') || tail.starts_with('-')) && tail.get(3..4) == Some(":") =>
        {
            let sign = if tail.starts_with('-') { -1 } else { 1 };
            let h: i64 = tail
                .get(1..3)
                .and_then(|x| x.parse().ok())
                .ok_or_else(bad)?;
            let m: i64 = tail
                .get(4..6)
                .and_then(|x| x.parse().ok())
                .ok_or_else(bad)?;
            (
                format!("{}Z", s.get(..i).unwrap_or("")),
                sign * (h * 3600 + m * 60),
            )
        }
        _ => (s.to_owned(), 0),
    };
    let t = humantime::parse_rfc3339_weak(&base).map_err(|_| bad())?;
    let unix = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| bad())?
        .as_secs();
    Ok(i64::try_from(unix).map_err(|_| bad())? - offset)
}

#[cfg(test)]
mod tests;
