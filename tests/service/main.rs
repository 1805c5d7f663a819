//! The gatehouse binary on its own, without a proxy in front: the command
//! line, logs, metrics, TLS, revocations across replicas on Redis, and
//! checks of the test harness itself (token fixtures, the Better Auth
//! issuer). One binary, so the crate is linked
//! once.

#[path = "../common/mod.rs"]
mod common;

mod betterauth_issuer;
mod cli;
mod cli_verify;
mod harness_smoke;
mod logs;
mod metrics;
mod revocation;
mod tls;
mod verify_fixtures;
