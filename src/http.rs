//! The HTTP door's listener surface: `/healthz` (alive) and `/readyz` (keys
//! loaded, not draining).
//!
//! This file deliberately holds only the probes; the nginx `auth_request`
//! endpoint (`/auth`) and `/metrics` are served by the full HTTP door.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::server::AppState;

/// The HTTP listener's routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { (StatusCode::OK, "ok\n") }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, &'static str) {
    if state.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
