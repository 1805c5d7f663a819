//! The command line: `serve`, `check-config`, `verify`, `demo` (SPEC §1).

use std::process::ExitCode;

/// Entry point of the binary.
pub fn main() -> ExitCode {
    ExitCode::SUCCESS
}
