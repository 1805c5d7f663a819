//! The state both doors share: the current configuration generation
//! (swapped whole on SIGHUP), the draining flag, the listeners' TLS
//! settings, the decision trail and, under `gatehouse demo`, the built-in
//! issuer's JWKS.
//!
//! The doors read it; [`crate::server`] creates it, swaps the authorizer
//! and sets the flags. Nothing here imports either door or the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::{ArcSwap, ArcSwapOption};

use crate::decision::Authorizer;
use crate::tls::TlsAcceptors;
use crate::trail::Trail;

/// State shared by both doors.
pub struct AppState {
    /// The current configuration generation; swapped whole on reload.
    pub authz: ArcSwap<Authorizer>,
    /// Set at the first SIGTERM: readiness and gRPC health go false at once.
    pub draining: AtomicBool,
    /// `gatehouse demo` serves its built-in issuer's JWKS at `/api/auth/jwks`.
    pub demo_jwks: Option<String>,
    /// The listeners' TLS settings when serving TLS; swapped on reload so
    /// new connections use re-read certificates.
    pub tls: Arc<ArcSwapOption<TlsAcceptors>>,
    /// The last decisions of both doors, when `http.decision_trail` is on;
    /// kept across reloads.
    pub(crate) trail: Trail,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("draining", &self.draining.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(authz: Authorizer, demo_jwks: Option<String>) -> Arc<Self> {
        Arc::new(Self {
            authz: ArcSwap::from_pointee(authz),
            draining: AtomicBool::new(false),
            demo_jwks,
            tls: Arc::new(ArcSwapOption::empty()),
            trail: Trail::default(),
        })
    }

    /// The authorizer to use for one request.
    pub fn authorizer(&self) -> Arc<Authorizer> {
        self.authz.load_full()
    }

    /// Ready: keys loaded for every remote provider and not draining.
    pub fn is_ready(&self) -> bool {
        !self.draining.load(Ordering::Relaxed) && self.authz.load().is_ready()
    }
}
