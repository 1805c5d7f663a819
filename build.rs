//! Build information baked into the binary, and the project's own protos.
//!
//! Emits `GATEHOUSE_GIT_SHA` (short sha of HEAD, or `unknown` outside a git
//! checkout such as a container build context) for `env!` in the crate. A
//! `GATEHOUSE_GIT_SHA` set in the build environment wins, so image builds can
//! pass the commit in.
//!
//! Compiles `proto/gatehouse/admin/v1/admin.proto` (the admin API) with
//! `protox`, a protobuf compiler in Rust, into a descriptor set that
//! `tonic-prost-build` turns into the server and client code: no system
//! `protoc` is needed. Envoy's protos come compiled from `envoy-types`.

use std::path::PathBuf;
use std::process::Command;

/// The project's own protos, relative to `proto/`.
const PROTOS: &[&str] = &["gatehouse/admin/v1/admin.proto"];

fn main() {
    compile_protos();
    println!("cargo:rerun-if-env-changed=GATEHOUSE_GIT_SHA");
    let from_env = std::env::var("GATEHOUSE_GIT_SHA")
        .ok()
        .filter(|value| !value.trim().is_empty());
    let sha = match from_env {
        Some(sha) => sha,
        None => {
            watch_head();
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned())
        }
    };
    println!("cargo:rustc-env=GATEHOUSE_GIT_SHA={sha}");
}

/// Parses [`PROTOS`] and generates their prost messages and tonic service
/// code into `OUT_DIR`; a proto that does not compile fails the build with
/// protox's message (file, line and column).
fn compile_protos() {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed=proto/{proto}");
    }
    let fds = match protox::compile(PROTOS, ["proto"]) {
        Ok(fds) => fds,
        Err(e) => panic!("cannot compile proto/: {e:?}"),
    };
    if let Err(e) = tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)
    {
        panic!("cannot generate code for proto/: {e}");
    }
}

/// Re-run when HEAD moves: watch HEAD, the branch it points at and
/// packed-refs, in the real git directory (a worktree's `.git` is a file).
/// Only existing paths are watched: a missing one would re-run every build.
fn watch_head() {
    let Some(git_dir) = git(&["rev-parse", "--git-dir"]).map(PathBuf::from) else {
        return;
    };
    let common_dir = git(&["rev-parse", "--git-common-dir"])
        .map(PathBuf::from)
        .unwrap_or_else(|| git_dir.clone());
    let mut watched = vec![git_dir.join("HEAD"), common_dir.join("packed-refs")];
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(common_dir.join(reference));
    }
    for path in watched.iter().filter(|path| path.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// One line of `git` output, or `None` when git is missing or fails.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}
