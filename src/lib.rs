//! gatehouse: external authorization for Envoy (`ext_authz`), nginx
//! (`auth_request`), Traefik (ForwardAuth) and Caddy (`forward_auth`).
//!
//! The crate is a binary first: [`main`] is the whole command line. The
//! modules below are private; what the fuzz targets, benchmarks and load
//! examples need is re-exported from the hidden [`internals`] module, which
//! is not a stable API.
//!
//! # Layout
//!
//! Every request walks the same line, whichever door it came through:
//!
//! - `grpc` / `http`: the doors. Build a `decision::CheckInput`, render a
//!   `decision::Decision` (`grpc::wire`: the bytes of Envoy's `Check`).
//! - `policy`: path normalization and the compiled rule set.
//! - `extract`: token sources → one credential.
//! - `token_cache`, `verify`, `jwks`: verified-token cache, signature and
//!   claims checks, key sets and their refresh.
//! - `session`: Better Auth opaque sessions and its tables.
//! - `ratelimit`: per-caller rate limits (GCRA in Redis, per-replica fallback).
//! - `identity`: claims → identity headers to set and to remove.
//! - `decision`: the `Authorizer` tying it together.
//! - `error`: the error table (docs/errors.md), the one status mapping.
//! - `config`: file, env and flags → compiled config.
//! - `state`: what both doors share (the hot-swapped authorizer, draining).
//! - `store`: the shared Redis connection (deadline, circuit breaker).
//! - `revocation`: the revocation list, held in memory and following its
//!   Redis stream; `admin`: the admin gRPC API and `gatehouse revoke`.
//! - `server`: listeners, shutdown drain, SIGHUP reload.
//! - `tls`: TLS and mTLS on both listeners, re-read on reload.
//! - `telemetry`: logs, fingerprints, metrics.
//! - `trail`: the last decisions' request descriptions (`/debug/decisions`).
//! - `cli`, `demo`: the command line and the built-in issuer.
//! - `doctor`: `gatehouse doctor`, which probes the proxy in front.
//! - `proxy_config`: the proxy configurations `gatehouse proxy-config` prints.

// Everything not re-exported is crate-private, so the compiler sees (and
// refuses) what nothing uses.
#![deny(unreachable_pub, dead_code)]

mod admin;
mod cli;
mod config;
mod decision;
mod demo;
mod doctor;
mod error;
mod extract;
mod grpc;
mod http;
mod identity;
mod jwks;
mod policy;
mod proxy_config;
mod ratelimit;
mod revocation;
mod server;
mod session;
mod state;
mod store;
mod telemetry;
mod tls;
mod token_cache;
mod trail;
mod verify;

pub use cli::main;

/// Entry points for the fuzz targets (`fuzz/`), the criterion benchmarks,
/// the load examples and the end-to-end tests that need the exact message
/// of an error. Not a stable API: it changes with the code it exposes.
#[doc(hidden)]
pub mod internals {
    pub use crate::cli::render_check_config;
    pub use crate::config::load::{Env, LoadOptions, parse_yaml};
    pub use crate::config::raw::{Access, RawMatch, RawRule};
    pub use crate::config::{Alg, Config, ConfigError, KeySource, ProviderSpec, Secret};
    pub use crate::decision::{Authorizer, CheckInput, Decision, Door, Shared, unix_now};
    pub use crate::demo::{ALICE, BOB, DemoIssuer};
    pub use crate::error::{AuthError, BadRequestKind, ForbiddenKind};
    pub use crate::extract::{Credential, Extractor, MAX_TOKEN_BYTES};
    pub use crate::identity::{Identity, RenderedHeaders};
    pub use crate::jwks::{AlgPolicy, JwksError, MAX_JWKS_BYTES, parse_jwks};
    pub use crate::policy::{RuleSet, normalize_path};
    pub use crate::revocation::Revocations;

    /// The admin API's messages, client and server (`gatehouse.admin.v1`).
    pub use crate::admin::pb as admin_api;
    pub use crate::state::AppState;
    pub use crate::telemetry::{Metrics, fingerprint};
    pub use crate::verify::{Verified, Verifier};

    /// The Envoy door: the service, its wire codec and the reference
    /// encoder the hand-written one is measured against.
    pub mod grpc {
        pub use crate::grpc::wire::{CheckRequest, WholeWrites, encode_allow};
        pub use crate::grpc::{AuthzService, allow_message, check_input, encode, json_struct};
    }

    /// The HTTP door's router.
    pub mod http {
        pub use crate::http::router;
    }
}

// Unit tests name the crate as the integration tests do, and share their
// harness (ports, tokens, a JWKS server, Better Auth, PKI).
#[cfg(test)]
extern crate self as gatehouse;

#[cfg(test)]
#[path = "../tests/common/mod.rs"]
mod common;
