//! The decision trail: what gatehouse was asked, for the last
//! [`CAPACITY`] decisions of both doors, so `gatehouse doctor` (or an
//! operator) can compare what a client sent with what the proxy described
//! (docs/http-api.md, "/debug/decisions"; docs/doctor.md).
//!
//! An entry holds the request description only: door, header family,
//! method, path (without its query, which may carry a credential), host,
//! the rule that matched, and the outcome. Never a header value: no
//! credential, cookie or identity header is ever copied here. Entries are
//! found by the request id the proxy sent (`x-request-id`).
//!
//! The trail is off unless `http.decision_trail: true`; the doors then skip
//! it with one boolean test. [`TrailSettings`] also owns who may read it:
//! loopback, and the CIDRs of `http.admin_networks`.
//!
//! This module does not serve HTTP (the HTTP door does) and does not decide
//! anything.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::config::ConfigError;
use crate::decision::{CheckInput, Decision, Door, Traced};
use crate::error::AuthError;

/// How many decisions the trail keeps; the oldest goes first.
pub(crate) const CAPACITY: usize = 1000;

/// The longest request id kept (as the decision log cuts it).
const MAX_REQUEST_ID: usize = 128;
/// The longest method kept.
const MAX_METHOD: usize = 32;
/// The longest path kept (without the query).
const MAX_PATH: usize = 1024;
/// The longest host kept.
const MAX_HOST: usize = 255;

/// `http.decision_trail` and `http.admin_networks`, compiled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TrailSettings {
    /// Whether the doors record their decisions.
    pub(crate) enabled: bool,
    /// Who may read `/debug/decisions` besides loopback.
    pub(crate) admin_networks: Vec<Cidr>,
}

impl TrailSettings {
    /// Validates the raw keys; an error names `http.admin_networks[i]`.
    pub(crate) fn compile(enabled: bool, networks: &[String]) -> Result<Self, ConfigError> {
        let admin_networks = networks
            .iter()
            .enumerate()
            .map(|(i, n)| {
                Cidr::parse(n).map_err(|m| ConfigError::new(format!("http.admin_networks[{i}]"), m))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            enabled,
            admin_networks,
        })
    }

    /// Whether a peer at `peer` may read the trail: loopback, or inside one
    /// of the admin networks. An IPv4 address seen as IPv6
    /// (`::ffff:10.0.0.1`) counts as the IPv4 address.
    pub(crate) fn admits(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        peer.is_loopback() || self.admin_networks.iter().any(|n| n.contains(peer))
    }
}

/// One network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `fd00::/8`, or one address (`192.0.2.7`, a /32).
    pub(crate) fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| {
            format!("{text:?} is not an IP network (ADDRESS/PREFIX, e.g. 10.0.0.0/8)")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { addr, prefix })
    }

    /// Whether `ip` is inside this network.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// What a door was asked, borrowed for [`Trail::record`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Asked<'a> {
    pub(crate) door: Door,
    /// The HTTP door's header family (`original`, `forwarded`, `both`);
    /// `None` for the gRPC door and when no description arrived.
    pub(crate) family: Option<&'static str>,
    pub(crate) request_id: Option<&'a str>,
    pub(crate) method: Option<&'a str>,
    /// Path and query as described; the query is cut before it is kept.
    pub(crate) target: Option<&'a str>,
    pub(crate) host: Option<&'a str>,
}

impl<'a> Asked<'a> {
    /// The description a door built.
    pub(crate) fn of(input: &'a CheckInput, family: Option<&'static str>) -> Self {
        Self {
            door: input.door,
            family,
            request_id: input.request_id.as_deref(),
            method: Some(&input.method),
            target: Some(&input.path),
            host: input.host.as_deref(),
        }
    }

    /// A description the door could not use: only the request id is known.
    pub(crate) fn unusable(
        door: Door,
        family: Option<&'static str>,
        request_id: Option<&'a str>,
    ) -> Self {
        Self {
            door,
            family,
            request_id,
            method: None,
            target: None,
            host: None,
        }
    }
}

/// How a decision ended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Verdict<'a> {
    /// Allowed: `authenticated`, `anonymous` or `public`.
    Allow(&'static str),
    Deny(&'a AuthError),
}

impl<'a> Verdict<'a> {
    /// How a traced decision ended.
    pub(crate) fn of(traced: &'a Traced) -> Verdict<'a> {
        match &traced.decision {
            Decision::Allow(_) => Verdict::Allow(traced.reason),
            Decision::Deny(e) => Verdict::Deny(e),
        }
    }
}

/// One recorded decision.
#[derive(Debug, Clone)]
struct Entry {
    time: SystemTime,
    request_id: Option<Box<str>>,
    door: Door,
    family: Option<&'static str>,
    method: Option<Box<str>>,
    path: Option<Box<str>>,
    host: Option<Box<str>>,
    /// Index in `rules`; `None` when `default_access` applied or no rule
    /// could be looked up.
    rule: Option<usize>,
    status: u16,
    error: Option<&'static str>,
    reason: &'static str,
}

impl Entry {
    fn to_json(&self) -> Value {
        json!({
            "time": humantime::format_rfc3339_millis(self.time).to_string(),
            "door": self.door.as_str(),
            "family": self.family,
            "method": self.method.as_deref(),
            "path": self.path.as_deref(),
            "host": self.host.as_deref(),
            "rule": self.rule,
            "result": if self.error.is_some() { "deny" } else { "allow" },
            "status": self.status,
            "error": self.error,
            "reason": self.reason,
        })
    }
}

/// The ring and how many decisions it has seen.
#[derive(Debug, Default)]
struct Ring {
    entries: VecDeque<Entry>,
    /// Every decision recorded since start, including those dropped.
    recorded: u64,
}

/// The last [`CAPACITY`] decisions, shared by both doors.
#[derive(Debug, Default)]
pub(crate) struct Trail {
    ring: Mutex<Ring>,
}

impl Trail {
    /// Keeps one decision, dropping the oldest beyond [`CAPACITY`].
    pub(crate) fn record(&self, asked: Asked<'_>, rule: Option<usize>, verdict: Verdict<'_>) {
        let (status, error, reason) = match verdict {
            Verdict::Allow(reason) => (200, None, reason),
            Verdict::Deny(e) => (e.http_status(), Some(e.code().as_str()), e.reason()),
        };
        let path = asked
            .target
            .map(|t| t.split_once('?').map_or(t, |(p, _)| p));
        let entry = Entry {
            time: SystemTime::now(),
            request_id: asked.request_id.map(|r| cut(r, MAX_REQUEST_ID)),
            door: asked.door,
            family: asked.family,
            method: asked.method.map(|m| cut(m, MAX_METHOD)),
            path: path.map(|p| cut(p, MAX_PATH)),
            host: asked.host.map(|h| cut(h, MAX_HOST)),
            rule,
            status,
            error,
            reason,
        };
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.entries.len() >= CAPACITY {
            ring.entries.pop_front();
        }
        ring.entries.push_back(entry);
        ring.recorded += 1;
    }

    /// The decisions recorded for `request_id`, oldest first, as the JSON
    /// `/debug/decisions` answers.
    pub(crate) fn lookup(&self, request_id: &str) -> Value {
        let wanted = cut(request_id, MAX_REQUEST_ID);
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        let decisions: Vec<Value> = ring
            .entries
            .iter()
            .filter(|e| e.request_id.as_deref() == Some(&*wanted))
            .map(Entry::to_json)
            .collect();
        json!({
            "request_id": &*wanted,
            "recorded": ring.recorded,
            "kept": ring.entries.len(),
            "capacity": CAPACITY,
            "decisions": decisions,
        })
    }
}

/// `text`, cut to at most `max` bytes on a character boundary.
fn cut(text: &str, max: usize) -> Box<str> {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Box::from(text.get(..end).unwrap_or(""))
}

#[cfg(test)]
mod tests;
