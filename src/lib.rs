//! gatehouse: external authorization for Envoy (`ext_authz`) and nginx
//! (`auth_request`).
//!
//! # Layout
//!
//! Every request walks the same line, whichever door it came through:
//!
//! - [`grpc`] / [`http`]: the doors. Build a [`decision::CheckInput`], render
//!   a [`decision::Decision`] ([`grpc::wire`]: the bytes of Envoy's `Check`).
//! - [`policy`]: path normalization and the compiled rule set.
//! - [`extract`]: token sources → one credential.
//! - [`token_cache`], [`verify`], [`jwks`]: verified-token cache, signature
//!   and claims checks, key sets and their refresh.
//! - [`session`]: Better Auth opaque sessions.
//! - [`identity`]: claims → identity headers to set and to remove.
//! - [`decision`]: the [`decision::Authorizer`] tying it together.
//! - [`error`]: the error table (docs/errors.md), the one status mapping.
//! - [`config`]: file, env and flags → compiled config.
//! - [`state`]: what both doors share (the hot-swapped authorizer, draining).
//! - [`server`]: listeners, shutdown drain, SIGHUP reload.
//! - [`tls`]: TLS and mTLS on both listeners, re-read on reload.
//! - [`telemetry`]: logs, fingerprints, metrics.
//! - [`cli`], [`demo`]: the command line and the built-in issuer.
//! - [`proxy_config`]: the proxy configurations `gatehouse proxy-config` prints.

pub mod cli;
pub mod config;
pub mod decision;
pub mod demo;
pub mod error;
pub mod extract;
pub mod grpc;
pub mod http;
pub mod identity;
pub mod jwks;
pub mod policy;
pub mod proxy_config;
pub mod server;
pub mod session;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod token_cache;
pub mod verify;
