//! What gatehouse was asked: doctor's side of the decision trail.
//!
//! Every probe carries its own `X-Request-Id`; afterwards doctor reads
//! `GET /debug/decisions?request_id=…` from gatehouse's HTTP listener
//! (`--gatehouse`) and compares the request it sent with the description
//! the proxy gave gatehouse: was gatehouse asked at all (the nginx `return`
//! trap), about the method, path and host the client used, or about what
//! the client wrote in a description header?
//!
//! This module reads the trail and judges it; the probes are sent and the
//! report is assembled in [`super`].

use serde_json::Value;

use super::probe::{Answer, Origin, ProbeError, Request, send};

/// One decision as the trail shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Decision {
    pub(crate) door: String,
    pub(crate) family: Option<String>,
    pub(crate) method: Option<String>,
    pub(crate) path: Option<String>,
    pub(crate) host: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) reason: String,
}

impl Decision {
    fn from_json(v: &Value) -> Option<Decision> {
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        Some(Decision {
            door: text("door")?,
            family: text("family"),
            method: text("method"),
            path: text("path"),
            host: text("host"),
            error: text("error"),
            reason: text("reason").unwrap_or_default(),
        })
    }
}

/// What one lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) decisions: Vec<Decision>,
    /// Decisions gatehouse has recorded since it started.
    pub(crate) recorded: u64,
}

/// Why the trail cannot be read; each becomes a `skipped` with this text.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TrailError {
    #[error("cannot reach gatehouse's HTTP listener: {0}")]
    Unreachable(#[from] ProbeError),
    #[error(
        "the decision trail is off: set `http.decision_trail: true` in gatehouse's configuration \
         (and reload it) to compare what gatehouse was asked"
    )]
    Off,
    #[error(
        "gatehouse refused /debug/decisions to this address: run doctor on gatehouse's host \
         (or through `kubectl port-forward`), or add this address to `http.admin_networks`"
    )]
    Refused,
    #[error("/debug/decisions answered {0}, not the trail")]
    Unexpected(String),
}

/// gatehouse's HTTP listener, where the trail is read.
#[derive(Debug, Clone)]
pub(crate) struct TrailReader {
    origin: Origin,
}

impl TrailReader {
    pub(crate) fn new(origin: Origin) -> Self {
        Self { origin }
    }

    /// The decisions recorded under `request_id`.
    pub(crate) fn lookup(&self, request_id: &str) -> Result<Found, TrailError> {
        let req = Request {
            method: "GET",
            target: format!("/debug/decisions?request_id={}", encode(request_id)),
            headers: Vec::new(),
        };
        let answer = send(&self.origin, &req)?;
        parse(&answer)
    }
}

/// Reads an answer of `/debug/decisions`.
pub(crate) fn parse(answer: &Answer) -> Result<Found, TrailError> {
    match answer.status {
        200 => {}
        404 => return Err(TrailError::Off),
        403 => return Err(TrailError::Refused),
        other => return Err(TrailError::Unexpected(other.to_string())),
    }
    let v: Value = serde_json::from_str(&answer.body)
        .map_err(|_| TrailError::Unexpected("200 with a body that is not JSON".to_owned()))?;
    let decisions = v
        .get("decisions")
        .and_then(Value::as_array)
        .ok_or_else(|| TrailError::Unexpected("JSON without `decisions`".to_owned()))?
        .iter()
        .filter_map(Decision::from_json)
        .collect();
    let recorded = v.get("recorded").and_then(Value::as_u64).unwrap_or(0);
    Ok(Found {
        decisions,
        recorded,
    })
}

/// Percent-encodes a request id for the query (doctor's ids need none,
/// but an id is an id).
fn encode(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The host part of a `Host`-style value, lower-cased: no port, no
/// IPv6 brackets.
pub(crate) fn host_only(value: &str) -> String {
    let v = value.trim().to_ascii_lowercase();
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default().to_owned();
    }
    match v.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            h.to_owned()
        }
        _ => v,
    }
}
