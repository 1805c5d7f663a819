//! Shared harness for the integration tests: free loopback ports, child
//! processes that are killed on drop, token fixtures, a counting JWKS
//! server, a reader of `/metrics` samples, an echo upstream, and launchers
//! for the real peers (Envoy, nginx, Caddy, Traefik, Better Auth, a
//! private Redis).
#![allow(dead_code, unused_imports, unreachable_pub)]

pub mod betterauth;
pub mod caddy;
pub mod conform;
pub mod envoy;
pub mod httpc;
pub mod jwks_server;
pub mod metrics;
pub mod nginx;
pub mod pki;
pub mod ports;
pub mod procs;
pub mod redis_server;
pub mod stack;
pub mod tcp_proxy;
pub mod tokens;
pub mod traefik;
pub mod upstream;

pub use caddy::Caddy;
pub use envoy::Envoy;
pub use httpc::{HttpResponse, http_get, http_request};
pub use nginx::Nginx;
pub use ports::{free_addr, free_port, wait_for_port};
pub use procs::{Gatehouse, Proc, gatehouse_bin};
pub use traefik::Traefik;
pub use upstream::EchoUpstream;
