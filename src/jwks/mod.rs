//! Key sets per provider: parsing JWKS documents into verification keys,
//! and keeping them fresh.
//!
//! `fetch` owns the network side (background refresh, Cache-Control,
//! backoff, single-flight, unknown-kid refetch with cooldown). This module
//! owns the keys themselves: which algorithms each key admits, decided from
//! the key (`kty`/`crv`/`alg`), never from a token.

pub mod fetch;
