//! The Envoy configurations (being written).

use super::Wiring;

pub(super) fn render_grpc(w: &Wiring) -> String {
    format!("# {}\n", w.command)
}

pub(super) fn render_http(w: &Wiring) -> String {
    format!("# {}\n", w.command)
}
