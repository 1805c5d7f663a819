//! Better Auth sessions (docs/better-auth.md): the cookie signature check,
//! then a lookup through Better Auth's `get-session` endpoint or straight in
//! its Postgres `"session"`/`"user"` tables, cached for `cache_ttl`.
//!
//! Order of work for one session credential:
//! 1. Split `TOKEN.SIG`. When the secret is known, SIG must be the padded
//!    standard base64 of HMAC-SHA256(secret, TOKEN) (constant-time
//!    compare), and a cookie must be signed; otherwise the request is
//!    refused before any lookup.
//! 2. The cache, keyed by SHA-256 of the presented value (never the value
//!    itself): positive answers and "unknown"/"expired" answers are kept
//!    for `cache_ttl`; "store unreachable" is never kept. Concurrent
//!    lookups of one token share a single backend call.
//! 3. The backend: introspection forwards the signed cookie when the secret
//!    is known (a raw bearer token is signed here, so the app needs no
//!    bearer plugin), else the credential the way it came (cookie or
//!    bearer); Postgres runs one prepared query per pooled connection.
//!
//! This module does not decide whether a credential is a JWT or a session
//! token (the extractor does), and never logs a token or a session id.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use hmac::{Hmac, Mac};
use http::HeaderMap;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::config::{ConfigError, Secret, SessionBackend, SessionSpec};
use crate::error::{AuthError, ForbiddenKind, MalformedKind, SessionKind};
use crate::extract::SourceKind;
use crate::identity::Identity;
use crate::revocation::Selector;

/// Timeout for one introspection request or one Postgres query.
const BACKEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest session credential looked up (Better Auth's are 32 + 1 + 44).
const MAX_TOKEN_LEN: usize = 1024;

/// The provider name session identities carry.
const PROVIDER: &str = "session";

/// The one query the Postgres backend runs (prepared once per connection).
///
/// Columns that only some Better Auth plugins add are read through
/// `to_jsonb(row)`, which yields NULL where the column does not exist, so
/// one query fits every schema.
const SESSION_QUERY: &str = "SELECT s.id, s.\"userId\", s.\"expiresAt\", u.email, u.name, \
     u.\"emailVerified\", u.image, to_jsonb(s) ->> 'activeOrganizationId', \
     (to_jsonb(s) ->> 'createdAt')::timestamptz \
     FROM \"session\" s JOIN \"user\" u ON u.id = s.\"userId\" WHERE s.token = $1";

/// A session by id, for tokens bound to one (`session_claim`).
const SESSION_BY_ID_QUERY: &str = "SELECT \"userId\", \"expiresAt\" FROM \"session\" WHERE id = $1";

/// A user's ban (admin plugin columns; NULL and false without the plugin).
const BAN_QUERY: &str = "SELECT coalesce((to_jsonb(u) ->> 'banned')::boolean, false), \
     (to_jsonb(u) ->> 'banExpires')::timestamptz FROM \"user\" u WHERE u.id = $1";

/// A user's roles in an organization (comma-separated), or NULL.
const MEMBER_QUERY: &str = "SELECT string_agg(role, ',') FROM \"member\" \
     WHERE \"organizationId\" = $1 AND \"userId\" = $2";

/// Characters `encodeURIComponent` leaves alone, so a forwarded cookie
/// looks exactly like the one Better Auth set.
const COOKIE_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// The configured session store.
#[derive(Debug)]
pub(crate) struct SessionStore {
    /// Cookie-signing secret; `None` leaves signature checks to the backend.
    secret: Option<Secret>,
    backend: Backend,
    /// Answers by SHA-256 of (source class, presented value).
    cache: moka::future::Cache<[u8; 32], Cached>,
    /// Backend calls made (introspection requests or Postgres queries), for
    /// tests and benchmarks that assert the cache and single-flight.
    backend_calls: AtomicU64,
    /// What only Better Auth's tables answer (`session.postgres`).
    tables: Option<Tables>,
}

/// Lookups beside the session token's, each cached for `cache_ttl`,
/// bounded by `cache_max_entries` and single-flight per key.
#[derive(Debug)]
struct Tables {
    /// Session id → its row (tokens bound with `session_claim`).
    sessions: Timed<SessionRow>,
    /// User id → ban; `None` when bans are not checked.
    bans: Option<Timed<Ban>>,
    /// `user id NUL organization id` → roles held, if a member.
    members: Timed<Option<Arc<str>>>,
}

/// A session row looked up by id.
#[derive(Debug, Clone)]
enum SessionRow {
    Live {
        user_id: String,
        expires_at: SystemTime,
    },
    Gone,
}

/// A user's ban as the admin plugin records it.
#[derive(Debug, Clone, Copy)]
struct Ban {
    banned: bool,
    /// `None`: for good (or not banned).
    until: Option<SystemTime>,
}

impl Ban {
    fn applies(&self, now: SystemTime) -> bool {
        self.banned && self.until.is_none_or(|until| until > now)
    }
}

#[derive(Debug)]
enum Backend {
    Introspect {
        url: String,
        /// `better-auth.session_token`, or `__Secure-…` for an https store.
        cookie_name: &'static str,
        client: reqwest::Client,
    },
    Postgres {
        /// Bounded pool (`max_connections`); recycled connections keep
        /// their prepared statement.
        pool: Pool,
    },
}

/// A cached answer.
#[derive(Debug, Clone)]
enum Cached {
    Valid {
        identity: Identity,
        /// The session's own expiry: a cached answer never outlives it.
        expires_at: SystemTime,
        /// [`token_sha256`] of the session token, so that a revocation of
        /// it can find this entry (the key hashes the presented form).
        token: [u8; 32],
    },
    Refused(SessionKind),
}

/// The store could not answer (not cached).
#[derive(Debug, thiserror::Error)]
enum Unavailable {
    #[error("session introspection failed: {0}")]
    Http(String),
    #[error("session introspection answered status {0}")]
    Status(u16),
    #[error("session introspection answer is not understood: {0}")]
    Answer(&'static str),
    #[error("session database unavailable: {0}")]
    Postgres(String),
    #[error("session backend timed out")]
    Timeout,
}

/// How the credential reached us, as far as the backend cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carrier {
    Cookie,
    Bearer,
}

impl SessionStore {
    /// Builds the store; touches no network (connections are made on use).
    pub(crate) fn new(spec: &SessionSpec) -> Result<Self, ConfigError> {
        let backend = match &spec.backend {
            SessionBackend::Introspect(url) => {
                let parsed = reqwest::Url::parse(url).map_err(|e| {
                    ConfigError::new("session.introspect_url", format!("not a URL: {e}"))
                })?;
                let cookie_name = if parsed.scheme() == "https" {
                    "__Secure-better-auth.session_token"
                } else {
                    "better-auth.session_token"
                };
                let client = reqwest::Client::builder()
                    .timeout(BACKEND_TIMEOUT)
                    .connect_timeout(BACKEND_TIMEOUT)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| {
                        ConfigError::new(
                            "session.introspect_url",
                            format!("HTTP client setup failed: {e}"),
                        )
                    })?;
                Backend::Introspect {
                    url: url.clone(),
                    cookie_name,
                    client,
                }
            }
            SessionBackend::Postgres {
                url,
                max_connections,
            } => Backend::Postgres {
                pool: build_pool(url, *max_connections)?,
            },
        };
        let cache = moka::future::Cache::builder()
            .max_capacity(spec.cache_max_entries)
            .time_to_live(spec.cache_ttl)
            .build();
        let tables = matches!(backend, Backend::Postgres { .. }).then(|| Tables {
            sessions: Timed::new(spec),
            bans: spec.check_banned.then(|| Timed::new(spec)),
            members: Timed::new(spec),
        });
        Ok(Self {
            secret: spec.secret.clone(),
            backend,
            cache,
            backend_calls: AtomicU64::new(0),
            tables,
        })
    }

    /// A token bound to session `sid` is valid only while that session
    /// row exists, belongs to `sub` and has not expired (Better Auth
    /// deletes the row on sign-out, revocation and ban).
    pub(crate) async fn check_bound_session(
        &self,
        sid: &str,
        sub: Option<&str>,
    ) -> Result<(), AuthError> {
        let Some((tables, pool)) = self.tables() else {
            return Err(AuthError::SessionUnavailable);
        };
        let fetch = async {
            self.backend_calls.fetch_add(1, Ordering::Relaxed);
            query_session_by_id(pool, sid).await
        };
        let row = tables
            .sessions
            .get_or_fetch(sid, fetch)
            .await
            .map_err(|e| unavailable(&e, "session lookup by id"))?;
        match row {
            SessionRow::Live {
                user_id,
                expires_at,
            } => {
                if sub.is_some_and(|s| s != user_id) {
                    return Err(AuthError::Session(SessionKind::Unknown));
                }
                if expires_at <= SystemTime::now() {
                    return Err(AuthError::Session(SessionKind::Expired));
                }
                Ok(())
            }
            SessionRow::Gone => Err(AuthError::Session(SessionKind::Unknown)),
        }
    }

    /// Refuses a user Better Auth's admin plugin has banned, until the ban
    /// expires. Nothing to check when bans are off or not readable.
    pub(crate) async fn check_ban(&self, user_id: &str) -> Result<(), AuthError> {
        let Some((tables, pool)) = self.tables() else {
            return Ok(());
        };
        let Some(bans) = &tables.bans else {
            return Ok(());
        };
        let fetch = async {
            self.backend_calls.fetch_add(1, Ordering::Relaxed);
            query_ban(pool, user_id).await
        };
        let ban = bans
            .get_or_fetch(user_id, fetch)
            .await
            .map_err(|e| unavailable(&e, "ban lookup"))?;
        if ban.applies(SystemTime::now()) {
            return Err(AuthError::Forbidden(ForbiddenKind::UserBanned));
        }
        Ok(())
    }

    /// The roles `user_id` holds in organization `org_id` (comma-separated,
    /// as Better Auth stores them), or `None` for a non-member.
    pub(crate) async fn membership(
        &self,
        user_id: &str,
        org_id: &str,
    ) -> Result<Option<Arc<str>>, AuthError> {
        let Some((tables, pool)) = self.tables() else {
            return Err(AuthError::SessionUnavailable);
        };
        let key = format!("{user_id}\0{org_id}");
        let fetch = async {
            self.backend_calls.fetch_add(1, Ordering::Relaxed);
            query_member(pool, org_id, user_id).await
        };
        tables
            .members
            .get_or_fetch(key.as_str(), fetch)
            .await
            .map_err(|e| unavailable(&e, "organization membership lookup"))
    }

    fn tables(&self) -> Option<(&Tables, &Pool)> {
        match (&self.tables, &self.backend) {
            (Some(tables), Backend::Postgres { pool }) => Some((tables, pool)),
            _ => None,
        }
    }

    /// Resolves a session token to the session's user.
    ///
    /// `token` is the URL-decoded credential (`TOKEN` or `TOKEN.SIG`);
    /// `source` says where it was found (a cookie must be signed when the
    /// secret is known).
    pub(crate) async fn lookup(
        &self,
        token: &str,
        source: SourceKind,
        headers: &HeaderMap,
    ) -> Result<Identity, AuthError> {
        let _ = headers;
        if token.is_empty()
            || token.len() > MAX_TOKEN_LEN
            || !token
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b';' && b != b',')
        {
            return Err(AuthError::Malformed(MalformedKind::BadCharacters));
        }
        let carrier = match source {
            SourceKind::Cookie => Carrier::Cookie,
            SourceKind::Bearer | SourceKind::Header | SourceKind::Query => Carrier::Bearer,
        };
        let raw_token = self.check_signature(token, carrier)?;

        // With the secret known, a raw bearer token is signed here and
        // forwarded as the cookie Better Auth itself would have set, so the
        // app needs no bearer plugin; the presented value was checked above.
        let (forward_carrier, forward) = match &self.secret {
            Some(secret) if raw_token.len() == token.len() => {
                (Carrier::Cookie, Cow::Owned(sign(secret, raw_token)))
            }
            Some(_) => (Carrier::Cookie, Cow::Borrowed(token)),
            None => (carrier, Cow::Borrowed(token)),
        };
        let key = cache_key(forward_carrier, &forward);
        let answer = self
            .cache
            .try_get_with(key, self.ask_backend(&forward, raw_token, forward_carrier))
            .await;
        match answer {
            Ok(Cached::Valid {
                identity,
                expires_at,
                ..
            }) => {
                if expires_at <= SystemTime::now() {
                    Err(AuthError::Session(SessionKind::Expired))
                } else {
                    Ok(identity)
                }
            }
            Ok(Cached::Refused(kind)) => Err(AuthError::Session(kind)),
            Err(e) => {
                tracing::warn!(
                    session.token = %crate::telemetry::fingerprint(raw_token),
                    error = %e,
                    "session store unavailable"
                );
                Err(AuthError::SessionUnavailable)
            }
        }
    }

    /// Forgets the cached answers that `revoked` matches (sessions of a
    /// revoked subject or id, a revoked session token) and the revoked
    /// session ids' rows, so nothing revoked is served from memory. The
    /// request path checks revocations anyway; this keeps the caches from
    /// holding what can no longer be used.
    pub(crate) async fn forget(&self, revoked: &[Selector]) -> usize {
        let doomed: Vec<Arc<[u8; 32]>> = self
            .cache
            .iter()
            .filter(|(_, cached)| match cached {
                Cached::Valid {
                    identity, token, ..
                } => revoked.iter().any(|r| r.matches_session(identity, token)),
                Cached::Refused(_) => false,
            })
            .map(|(key, _)| key)
            .collect();
        for key in &doomed {
            self.cache.invalidate(&**key).await;
        }
        if let Some(tables) = &self.tables {
            for r in revoked {
                if let Selector::Sid(sid) = r {
                    tables.sessions.inner.remove(sid.as_str());
                }
            }
        }
        doomed.len()
    }

    /// Forgets every cached session answer (revocations arrived faster than
    /// they could be matched one by one).
    pub(crate) fn forget_all(&self) {
        self.cache.invalidate_all();
        if let Some(tables) = &self.tables {
            tables.sessions.inner.clear();
        }
    }

    /// Backend calls made so far (cache misses that reached the store).
    #[cfg(test)]
    pub(crate) fn backend_calls(&self) -> u64 {
        self.backend_calls.load(Ordering::Relaxed)
    }

    /// Checks `TOKEN.SIG` when the secret is known; returns TOKEN.
    fn check_signature<'t>(&self, value: &'t str, carrier: Carrier) -> Result<&'t str, AuthError> {
        let bad = AuthError::Session(SessionKind::BadCookieSignature);
        match (value.split_once('.'), &self.secret) {
            (Some((token, sig)), Some(secret)) => {
                if token.is_empty() || !signature_matches(secret, token, sig) {
                    return Err(bad);
                }
                Ok(token)
            }
            // An unsigned cookie is never what Better Auth set.
            (None, Some(_)) if carrier == Carrier::Cookie => Err(bad),
            (Some((token, _)), None) => Ok(token),
            (None, _) => Ok(value),
        }
    }

    async fn ask_backend(
        &self,
        presented: &str,
        raw_token: &str,
        carrier: Carrier,
    ) -> Result<Cached, Unavailable> {
        self.backend_calls.fetch_add(1, Ordering::Relaxed);
        match &self.backend {
            Backend::Introspect {
                url,
                cookie_name,
                client,
            } => introspect(client, url, cookie_name, presented, carrier).await,
            Backend::Postgres { pool } => query_postgres(pool, raw_token).await,
        }
    }
}

/// A lookup cache bounded and timed like the session cache, on
/// `quick_cache`: a hit is one probe (these run on every request), an
/// answer older than `cache_ttl` is fetched again, and concurrent misses
/// of one key share a single fetch.
#[derive(Debug)]
struct Timed<V: Clone> {
    inner: quick_cache::sync::Cache<String, (Instant, V)>,
    ttl: Duration,
}

impl<V: Clone> Timed<V> {
    fn new(spec: &SessionSpec) -> Self {
        let capacity = usize::try_from(spec.cache_max_entries).unwrap_or(usize::MAX);
        Self {
            inner: quick_cache::sync::Cache::new(capacity.max(1)),
            ttl: spec.cache_ttl,
        }
    }

    /// The answer for `key`, fetched when missing or older than the TTL.
    async fn get_or_fetch<E>(
        &self,
        key: &str,
        fetch: impl Future<Output = Result<V, E>>,
    ) -> Result<V, E> {
        if let Some((at, value)) = self.inner.get(key) {
            if at.elapsed() < self.ttl {
                return Ok(value);
            }
            self.inner.remove(key);
        }
        let fetched = self
            .inner
            .get_or_insert_async(key, async { Ok((Instant::now(), fetch.await?)) })
            .await?;
        Ok(fetched.1)
    }
}

/// Logs why the store could not answer; the request gets a 503.
fn unavailable(e: &Unavailable, what: &str) -> AuthError {
    tracing::warn!(error = %e, "session store unavailable during {what}");
    AuthError::SessionUnavailable
}

/// Runs one prepared query with the backend timeout.
async fn query_one(
    pool: &Pool,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Option<tokio_postgres::Row>, Unavailable> {
    let work = async {
        let client = pool
            .get()
            .await
            .map_err(|e| Unavailable::Postgres(e.to_string()))?;
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(|e| Unavailable::Postgres(e.to_string()))?;
        client
            .query_opt(&statement, params)
            .await
            .map_err(|e| Unavailable::Postgres(e.to_string()))
    };
    tokio::time::timeout(BACKEND_TIMEOUT, work)
        .await
        .map_err(|_| Unavailable::Timeout)?
}

fn column(e: tokio_postgres::Error) -> Unavailable {
    Unavailable::Postgres(e.to_string())
}

async fn query_session_by_id(pool: &Pool, sid: &str) -> Result<SessionRow, Unavailable> {
    let Some(row) = query_one(pool, SESSION_BY_ID_QUERY, &[&sid]).await? else {
        return Ok(SessionRow::Gone);
    };
    Ok(SessionRow::Live {
        user_id: row.try_get(0).map_err(column)?,
        expires_at: row.try_get(1).map_err(column)?,
    })
}

async fn query_ban(pool: &Pool, user_id: &str) -> Result<Ban, Unavailable> {
    let Some(row) = query_one(pool, BAN_QUERY, &[&user_id]).await? else {
        // No such user: nothing to be banned.
        return Ok(Ban {
            banned: false,
            until: None,
        });
    };
    Ok(Ban {
        banned: row.try_get(0).map_err(column)?,
        until: row.try_get(1).map_err(column)?,
    })
}

async fn query_member(
    pool: &Pool,
    org_id: &str,
    user_id: &str,
) -> Result<Option<Arc<str>>, Unavailable> {
    let Some(row) = query_one(pool, MEMBER_QUERY, &[&org_id, &user_id]).await? else {
        return Ok(None);
    };
    let roles: Option<String> = row.try_get(0).map_err(column)?;
    Ok(roles.map(Arc::from))
}

/// The cache key: SHA-256 over the source class and the presented value,
/// so a cookie and a bearer that the store might judge differently never
/// share an answer.
fn cache_key(carrier: Carrier, value: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([match carrier {
        Carrier::Cookie => b'c',
        Carrier::Bearer => b'b',
    }]);
    h.update(value.as_bytes());
    h.finalize().into()
}

/// `TOKEN.SIG` as Better Auth signs its session cookie.
fn sign(secret: &Secret, token: &str) -> String {
    let sig = match Hmac::<Sha256>::new_from_slice(&secret.0) {
        Ok(mut mac) => {
            mac.update(token.as_bytes());
            STANDARD.encode(mac.finalize().into_bytes())
        }
        // HMAC takes keys of any length; this arm is never taken.
        Err(_) => String::new(),
    };
    format!("{token}.{sig}")
}

/// SIG == base64(HMAC-SHA256(secret, TOKEN)), compared in constant time.
fn signature_matches(secret: &Secret, token: &str, sig: &str) -> bool {
    let Ok(sig) = STANDARD.decode(sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&secret.0) else {
        return false;
    };
    mac.update(token.as_bytes());
    mac.verify_slice(&sig).is_ok()
}

fn build_pool(url: &Secret, max_connections: usize) -> Result<Pool, ConfigError> {
    let key = "session.postgres";
    let url = std::str::from_utf8(&url.0)
        .map_err(|_| ConfigError::new(key, "connection URL is not UTF-8"))?;
    let mut pg: tokio_postgres::Config = url
        .parse()
        .map_err(|_| ConfigError::new(key, "connection URL does not parse"))?;
    pg.connect_timeout(BACKEND_TIMEOUT);
    if pg.get_application_name().is_none() {
        pg.application_name("gatehouse");
    }
    let manager = Manager::from_config(
        pg,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_connections.max(1))
        .wait_timeout(Some(BACKEND_TIMEOUT))
        .create_timeout(Some(BACKEND_TIMEOUT))
        .recycle_timeout(Some(BACKEND_TIMEOUT))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| ConfigError::new(key, format!("connection pool setup failed: {e}")))
}

async fn introspect(
    client: &reqwest::Client,
    url: &str,
    cookie_name: &str,
    presented: &str,
    carrier: Carrier,
) -> Result<Cached, Unavailable> {
    let request = client.get(url).header("accept", "application/json");
    let request = match carrier {
        Carrier::Cookie => request.header(
            "cookie",
            format!(
                "{cookie_name}={}",
                utf8_percent_encode(presented, COOKIE_VALUE)
            ),
        ),
        Carrier::Bearer => request.header("authorization", format!("Bearer {presented}")),
    };
    let response = request.send().await.map_err(|e| {
        if e.is_timeout() {
            Unavailable::Timeout
        } else {
            Unavailable::Http(e.without_url().to_string())
        }
    })?;
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        return Err(Unavailable::Status(status.as_u16()));
    }
    let body: Value = response
        .json()
        .await
        .map_err(|_| Unavailable::Answer("body is not JSON"))?;
    if body.is_null() {
        return Ok(Cached::Refused(SessionKind::Unknown));
    }
    let session = body
        .get("session")
        .and_then(Value::as_object)
        .ok_or(Unavailable::Answer("no session object"))?;
    let user = body
        .get("user")
        .and_then(Value::as_object)
        .ok_or(Unavailable::Answer("no user object"))?;
    let expires_at = session
        .get("expiresAt")
        .and_then(Value::as_str)
        .and_then(|s| humantime::parse_rfc3339(s).ok())
        .ok_or(Unavailable::Answer("session.expiresAt is not a timestamp"))?;
    let session_id = session
        .get("id")
        .and_then(Value::as_str)
        .ok_or(Unavailable::Answer("session.id missing"))?;
    let user_id = user
        .get("id")
        .and_then(Value::as_str)
        .ok_or(Unavailable::Answer("user.id missing"))?;
    let fields = UserFields {
        token: presented,
        user_id,
        session_id,
        email: user.get("email").and_then(Value::as_str),
        name: user.get("name").and_then(Value::as_str),
        email_verified: user.get("emailVerified").and_then(Value::as_bool),
        image: user.get("image").and_then(Value::as_str),
        active_organization: session.get("activeOrganizationId").and_then(Value::as_str),
        created_at: session
            .get("createdAt")
            .and_then(Value::as_str)
            .and_then(|s| humantime::parse_rfc3339(s).ok()),
    };
    Ok(answer(fields, expires_at))
}

async fn query_postgres(pool: &Pool, token: &str) -> Result<Cached, Unavailable> {
    let Some(row) = query_one(pool, SESSION_QUERY, &[&token]).await? else {
        return Ok(Cached::Refused(SessionKind::Unknown));
    };
    let session_id: String = row.try_get(0).map_err(column)?;
    let user_id: String = row.try_get(1).map_err(column)?;
    let expires_at: SystemTime = row.try_get(2).map_err(column)?;
    let email: Option<String> = row.try_get(3).map_err(column)?;
    let name: Option<String> = row.try_get(4).map_err(column)?;
    let email_verified: Option<bool> = row.try_get(5).map_err(column)?;
    let image: Option<String> = row.try_get(6).map_err(column)?;
    let active_organization: Option<String> = row.try_get(7).map_err(column)?;
    let created_at: Option<SystemTime> = row.try_get(8).map_err(column)?;
    let fields = UserFields {
        token,
        user_id: &user_id,
        session_id: &session_id,
        email: email.as_deref(),
        name: name.as_deref(),
        email_verified,
        image: image.as_deref(),
        active_organization: active_organization.as_deref(),
        created_at,
    };
    Ok(answer(fields, expires_at))
}

/// SHA-256 of a session token as presented (`TOKEN`, or the cookie value
/// `TOKEN.SIG`): of TOKEN alone, so both forms hash alike. What a
/// revocation of a session stores instead of the token.
pub(crate) fn token_sha256(presented: &str) -> [u8; 32] {
    let token = presented.split('.').next().unwrap_or(presented);
    Sha256::digest(token.as_bytes()).into()
}

/// What both backends read about a session and its user.
struct UserFields<'a> {
    /// The session token as presented to the backend.
    token: &'a str,
    user_id: &'a str,
    session_id: &'a str,
    email: Option<&'a str>,
    name: Option<&'a str>,
    email_verified: Option<bool>,
    image: Option<&'a str>,
    /// The organization plugin's `activeOrganizationId`.
    active_organization: Option<&'a str>,
    /// When the session was created (`createdAt`), when known.
    created_at: Option<SystemTime>,
}

/// A found session: valid with the user's identity, or expired.
fn answer(fields: UserFields<'_>, expires_at: SystemTime) -> Cached {
    if expires_at <= SystemTime::now() {
        return Cached::Refused(SessionKind::Expired);
    }
    let mut claims = Map::new();
    claims.insert("sub".into(), Value::from(fields.user_id));
    if let Some(email) = fields.email {
        claims.insert("email".into(), Value::from(email));
    }
    if let Some(name) = fields.name {
        claims.insert("name".into(), Value::from(name));
    }
    if let Some(v) = fields.email_verified {
        claims.insert("email_verified".into(), Value::from(v));
    }
    if let Some(image) = fields.image {
        claims.insert("image".into(), Value::from(image));
    }
    claims.insert("session_id".into(), Value::from(fields.session_id));
    if let Some(org) = fields.active_organization {
        claims.insert("active_organization_id".into(), Value::from(org));
    }
    // The session's creation as `iat`, so a revocation of the user's
    // credentials issued before a time takes exactly the older sessions.
    if let Some(iat) = fields
        .created_at
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
    {
        claims.insert("iat".into(), Value::from(iat.as_secs()));
    }
    Cached::Valid {
        identity: Identity {
            provider: Arc::from(PROVIDER),
            claims: Arc::new(claims),
        },
        expires_at,
        token: token_sha256(fields.token),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec(secret: Option<&str>) -> SessionSpec {
        SessionSpec {
            // A closed port: any backend call fails as unavailable.
            backend: SessionBackend::Introspect("http://127.0.0.1:9/api/auth/get-session".into()),
            cache_ttl: Duration::from_secs(30),
            cache_max_entries: 100,
            secret: secret.map(|s| Secret(s.as_bytes().to_vec())),
            check_banned: false,
        }
    }

    fn sign(secret: &str, token: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(token.as_bytes());
        format!("{token}.{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    const TOKEN: &str = "21dYm7tSAvfngLPBXYLa9hbUltYx5a0s";

    #[tokio::test]
    async fn forged_signature_is_refused_before_lookup() {
        let store = SessionStore::new(&spec(Some("s3cret"))).unwrap();
        let forged = sign("other", TOKEN);
        let err = store
            .lookup(&forged, SourceKind::Cookie, &HeaderMap::new())
            .await
            .unwrap_err();
        assert_eq!(err, AuthError::Session(SessionKind::BadCookieSignature));
        let err = store
            .lookup(
                &format!("{TOKEN}.bm90LWJhc2U2NA"),
                SourceKind::Bearer,
                &HeaderMap::new(),
            )
            .await
            .unwrap_err();
        assert_eq!(err, AuthError::Session(SessionKind::BadCookieSignature));
        assert_eq!(store.backend_calls(), 0);
    }

    #[tokio::test]
    async fn unsigned_cookie_is_refused_but_raw_bearer_is_looked_up() {
        let store = SessionStore::new(&spec(Some("s3cret"))).unwrap();
        let err = store
            .lookup(TOKEN, SourceKind::Cookie, &HeaderMap::new())
            .await
            .unwrap_err();
        assert_eq!(err, AuthError::Session(SessionKind::BadCookieSignature));
        assert_eq!(store.backend_calls(), 0);
        // The raw token as a bearer passes the signature step and reaches
        // the (unreachable) store.
        let err = store
            .lookup(TOKEN, SourceKind::Bearer, &HeaderMap::new())
            .await
            .unwrap_err();
        assert_eq!(err, AuthError::SessionUnavailable);
        assert_eq!(store.backend_calls(), 1);
    }

    #[tokio::test]
    async fn good_signature_reaches_the_store_and_unavailable_is_not_cached() {
        let store = SessionStore::new(&spec(Some("s3cret"))).unwrap();
        let signed = sign("s3cret", TOKEN);
        for expected_calls in 1..=2 {
            let err = store
                .lookup(&signed, SourceKind::Cookie, &HeaderMap::new())
                .await
                .unwrap_err();
            assert_eq!(err, AuthError::SessionUnavailable);
            assert_eq!(store.backend_calls(), expected_calls);
        }
    }

    #[tokio::test]
    async fn values_that_cannot_be_forwarded_are_malformed() {
        let store = SessionStore::new(&spec(None)).unwrap();
        for bad in [
            "",
            "a b",
            "a;b=c",
            "a\r\nx: y",
            &"x".repeat(MAX_TOKEN_LEN + 1),
        ] {
            let err = store
                .lookup(bad, SourceKind::Bearer, &HeaderMap::new())
                .await
                .unwrap_err();
            assert_eq!(err, AuthError::Malformed(MalformedKind::BadCharacters));
        }
        assert_eq!(store.backend_calls(), 0);
    }

    #[test]
    fn signature_check_is_exact() {
        let secret = Secret(b"s3cret".to_vec());
        let signed = sign("s3cret", TOKEN);
        let (token, sig) = signed.split_once('.').unwrap();
        assert!(signature_matches(&secret, token, sig));
        assert!(!signature_matches(
            &secret,
            token,
            sig.trim_end_matches('=')
        ));
        assert!(!signature_matches(&secret, "other-token", sig));
        assert!(!signature_matches(&Secret(b"x".to_vec()), token, sig));
    }

    #[test]
    fn expired_sessions_are_refused_and_identity_has_the_user() {
        let fields = |_: ()| UserFields {
            token: "t1.sig",
            user_id: "u1",
            session_id: "s1",
            email: Some("a@example.com"),
            name: Some("Ann"),
            email_verified: Some(false),
            image: None,
            active_organization: Some("org1"),
            created_at: Some(std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        };
        let past = SystemTime::now() - Duration::from_secs(1);
        assert!(matches!(
            answer(fields(()), past),
            Cached::Refused(SessionKind::Expired)
        ));
        let future = SystemTime::now() + Duration::from_secs(60);
        let Cached::Valid { identity, .. } = answer(fields(()), future) else {
            panic!("valid session refused");
        };
        assert_eq!(&*identity.provider, "session");
        assert_eq!(identity.sub(), Some("u1"));
        assert_eq!(identity.claims["email"], "a@example.com");
        assert_eq!(identity.claims["name"], "Ann");
        assert_eq!(identity.claims["email_verified"], false);
        assert_eq!(identity.claims["session_id"], "s1");
        assert_eq!(identity.claims["iat"], 1_700_000_000);
        assert!(!identity.claims.contains_key("image"));
    }
}

#[cfg(test)]
mod introspect_tests;

#[cfg(test)]
mod postgres_tests;
