//! The nginx configuration (being written).

use super::Wiring;

pub(super) fn render(w: &Wiring) -> String {
    format!("# {}\n", w.command)
}
