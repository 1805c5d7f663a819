//! Shared harness for the integration tests: free loopback ports, child
//! processes that are killed on drop, token fixtures, a counting JWKS
//! server, an echo upstream, and launchers for the real peers (Envoy,
//! nginx, Better Auth).
#![allow(dead_code, unused_imports)]
pub mod jwks_server;
pub mod tokens;
