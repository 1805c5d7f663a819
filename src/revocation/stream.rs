//! The Redis side of revocations: one stream, `{prefix}revocations`.
//!
//! **Writing** ([`append`]): one atomic `MULTI` of `XADD` (with an exact
//! `MINID` trim of entries created longer ago than any entry can matter,
//! [`Horizons::window`]) and `PEXPIRE … NX` / `PEXPIRE … GT`, which keep the
//! key's time to live at the latest expiry written. Redis therefore never
//! holds more than the entries that can still matter, and once the last of
//! them has expired the key itself is gone: nothing is left behind.
//!
//! Each entry's fields: `kind` (`sub`, `jti`, `sid`, `session`), `value`
//! (for `session` the hex SHA-256 of the token, never the token), `before`
//! (Unix seconds, subject entries only), `at` and `expires` (Unix seconds),
//! and `reason` when one was given.
//!
//! **Following** ([`follow`]): on a dedicated connection (never the
//! shared one, which a blocking read would hold up), load with `XRANGE`
//! from the last id applied (exclusive; everything at the first start),
//! then `XREAD BLOCK` from the last id seen, for as long as the connection
//! lives. On any error: drop the connection, back off (jittered, doubling
//! up to [`MAX_BACKOFF`]) and start again from the last id, so a
//! reconnecting replica catches up exactly. The list held keeps applying
//! meanwhile. Entries that do not parse are skipped with a warning.

use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::streams::{StreamId as RedisStreamId, StreamRangeReply, StreamReadReply};

use super::{Entry, Horizons, MAX_REASON_LEN, Revocations, Selector, StreamId};
use crate::store::{Store, StoreError};
use std::sync::Arc;

/// How long one blocking read waits for new entries before asking again.
const BLOCK: Duration = Duration::from_millis(1000);

/// A blocking read that has not answered this long after `BLOCK` is dead.
const READ_SLACK: Duration = Duration::from_secs(2);

/// Entries per `XRANGE` page and per `XREAD`.
const PAGE: usize = 1000;

/// First wait after a failure; doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The deadline of one write or one page of a listing (a cold connection
/// included).
pub(crate) const WRITE_DEADLINE: Duration = Duration::from_secs(3);

/// The stream's key.
pub(crate) fn key(prefix: &str) -> String {
    format!("{prefix}revocations")
}

/// Appends a revocation; returns the entry as recorded. The error names
/// Redis (the store's messages do).
pub(crate) async fn append(
    store: &Store,
    selector: Selector,
    reason: &str,
    horizons: &Horizons,
    now: i64,
) -> Result<Entry, StoreError> {
    let reason = truncate(reason.trim(), MAX_REASON_LEN).to_owned();
    let expires_at = horizons.expires_at(&selector, now);
    let key = key(store.key_prefix());
    let min_id = u64::try_from(now.saturating_sub(horizons.window()))
        .unwrap_or(0)
        .saturating_mul(1000);
    let ttl_ms = u64::try_from(expires_at.saturating_sub(now))
        .unwrap_or(0)
        .saturating_add(1)
        .saturating_mul(1000);
    let mut xadd = redis::cmd("XADD");
    xadd.arg(&key)
        .arg("MINID")
        .arg(min_id)
        .arg("*")
        .arg("kind")
        .arg(selector.kind())
        .arg("value")
        .arg(selector.value());
    if let Some(before) = selector.before() {
        xadd.arg("before").arg(before);
    }
    xadd.arg("at").arg(now).arg("expires").arg(expires_at);
    if !reason.is_empty() {
        xadd.arg("reason").arg(&reason);
    }
    let mut pipe = redis::pipe();
    pipe.atomic()
        .add_command(xadd)
        .cmd("PEXPIRE")
        .arg(&key)
        .arg(ttl_ms)
        .arg("NX")
        .ignore()
        .cmd("PEXPIRE")
        .arg(&key)
        .arg(ttl_ms)
        .arg("GT")
        .ignore();
    let (id,): (String,) = store
        .call_within("revocation_write", WRITE_DEADLINE, |mut conn| async move {
            pipe.query_async(&mut conn).await
        })
        .await?;
    Ok(Entry {
        id,
        selector,
        created_at: now,
        expires_at,
        reason,
    })
}

/// Every entry in the stream that has not expired at `now`, oldest first
/// (`gatehouse revoke --list` without a running replica).
pub(crate) async fn read_all(store: &Store, now: i64) -> Result<Vec<Entry>, StoreError> {
    let key = key(store.key_prefix());
    let mut out = Vec::new();
    let mut after: Option<StreamId> = None;
    loop {
        let start = after.map_or_else(|| "-".to_owned(), |id| format!("({id}"));
        let key = key.clone();
        let page: StreamRangeReply = store
            .call_within("revocation_read", WRITE_DEADLINE, |mut conn| async move {
                redis::cmd("XRANGE")
                    .arg(&key)
                    .arg(start)
                    .arg("+")
                    .arg("COUNT")
                    .arg(PAGE)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let full = page.ids.len() >= PAGE;
        after = page
            .ids
            .last()
            .and_then(|e| StreamId::parse(&e.id))
            .or(after);
        out.extend(
            parse_entries(page.ids)
                .into_iter()
                .filter(|e| e.expires_at > now),
        );
        if !full {
            return Ok(out);
        }
    }
}

/// Why following stopped for a while.
#[derive(Debug, thiserror::Error)]
enum FollowError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
}

impl FollowError {
    fn kind(&self) -> &'static str {
        match self {
            FollowError::Redis(e) if e.is_timeout() => "timeout",
            FollowError::Redis(_) => "redis",
        }
    }
}

/// Follows the stream until the list is stopped (see the module docs).
pub(super) async fn follow(list: Arc<Revocations>, store: Arc<Store>) {
    let mut backoff = MIN_BACKOFF;
    let mut failing = false;
    loop {
        let outcome = tokio::select! {
            () = list.stop.cancelled() => return,
            r = follow_once(&list, &store, &mut backoff, &mut failing) => r,
        };
        list.set_following(false);
        let Err(e) = outcome;
        list.metrics
            .count_store_error("revocation_follow", e.kind());
        if !failing {
            tracing::warn!(
                error = %e,
                revocation.last_id = %list.last_id().unwrap_or_default(),
                revocation.entries = list.len(),
                "cannot follow the revocation stream in Redis; the list held keeps applying, retrying"
            );
            failing = true;
        }
        let wait = crate::store::jittered(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
        tokio::select! {
            () = list.stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// One connection's life: catch up, then block-read until an error.
async fn follow_once(
    list: &Revocations,
    store: &Store,
    backoff: &mut Duration,
    failing: &mut bool,
) -> Result<std::convert::Infallible, FollowError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(store.connect_timeout()))
        .set_response_timeout(Some(BLOCK + READ_SLACK));
    let mut conn = store
        .client()
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let key = &list.key;
    // Catch up from the last id applied (everything, the first time).
    loop {
        let start = list
            .last_id()
            .map_or_else(|| "-".to_owned(), |id| format!("({id}"));
        let page: StreamRangeReply = redis::cmd("XRANGE")
            .arg(key)
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(PAGE)
            .query_async(&mut conn)
            .await?;
        let full = page.ids.len() >= PAGE;
        let through = last_raw_id(&page.ids);
        list.apply_read(parse_entries(page.ids), through, super::now());
        if !full {
            break;
        }
    }
    list.set_following(true);
    list.mark_synced();
    *backoff = MIN_BACKOFF;
    if std::mem::take(failing) {
        tracing::info!(
            revocation.last_id = %list.last_id().unwrap_or_default(),
            revocation.entries = list.len(),
            "following the revocation stream again"
        );
    }
    loop {
        let from = list.last_id().unwrap_or_default().to_string();
        let reply: Option<StreamReadReply> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(PAGE)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(key)
            .arg(from)
            .query_async(&mut conn)
            .await?;
        let ids = reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .collect::<Vec<_>>();
        if !ids.is_empty() {
            let through = last_raw_id(&ids);
            let n = list.apply_read(parse_entries(ids), through, super::now());
            tracing::debug!(revocation.applied = n, "revocations applied");
            continue;
        }
        // Nothing new for a whole block: make sure the stream was not
        // rebuilt behind the cursor (a Redis whose clock is behind the old
        // one's gives new entries older ids, which a read after the cursor
        // never returns). Its newest entry is never older than the cursor
        // otherwise: trimming removes the oldest, expiry removes the key.
        let newest: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await?;
        if let (Some(newest), Some(cursor)) = (last_raw_id(&newest.ids), list.last_id())
            && newest < cursor
        {
            tracing::warn!(
                revocation.last_id = %cursor,
                revocation.newest_id = %newest,
                "the revocation stream was rebuilt with older ids; reading it from the start"
            );
            list.reset_cursor();
        }
        list.metrics.revocation_synced_now();
    }
}

/// The id of the last entry of a read, parsable or not.
fn last_raw_id(ids: &[RedisStreamId]) -> Option<StreamId> {
    ids.last().and_then(|e| StreamId::parse(&e.id))
}

/// Stream entries → revocation entries; what does not parse is skipped.
fn parse_entries(ids: Vec<RedisStreamId>) -> Vec<Entry> {
    ids.into_iter()
        .filter_map(|raw| {
            let entry = parse_entry(&raw);
            if entry.is_none() {
                tracing::warn!(
                    revocation.id = %raw.id,
                    "skipping a revocation stream entry that does not parse"
                );
            }
            entry
        })
        .collect()
}

fn parse_entry(raw: &RedisStreamId) -> Option<Entry> {
    let kind: String = raw.get("kind")?;
    let value: String = raw.get("value")?;
    let before = match raw.get::<String>("before") {
        Some(b) => Some(b.parse().ok()?),
        None => None,
    };
    let created_at = raw.get::<String>("at")?.parse().ok()?;
    let expires_at = raw.get::<String>("expires")?.parse().ok()?;
    Some(Entry {
        id: raw.id.clone(),
        selector: Selector::parse(&kind, &value, before)?,
        created_at,
        expires_at,
        reason: raw.get("reason").unwrap_or_default(),
    })
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}
