//! End-to-end tests: gatehouse behind real Envoy (gRPC and HTTP modes),
//! nginx, Caddy and Traefik, with a real Better Auth, each asserting what
//! the upstream received, the conformance cases replayed through them, and
//! a revocation shared through Redis.
//! One binary, so the crate is linked once.

#[path = "../common/mod.rs"]
mod common;

mod betterauth;
mod conformance_jwt;
mod conformance_session;
mod doctor;
mod envoy;
mod envoy_algs;
mod envoy_mtls;
mod lifecycle_envoy;
mod nginx;
mod nginx_conf;
mod proxies;
mod ratelimit;
mod revocation;
