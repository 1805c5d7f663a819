//! The real `gatehouse` binary: exit codes (0, 64), config error messages
//! naming the key, and secrets never printed by `check-config`.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Output};

fn gatehouse(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run gatehouse")
}

fn config_file(yaml: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(yaml.as_bytes()).unwrap();
    f
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn check_config_zero_config_better_auth_exits_0() {
    let out = gatehouse(
        &["check-config"],
        &[("BETTER_AUTH_URL", "http://127.0.0.1:3000/")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("name: better-auth"), "{stdout}");
    assert!(
        stdout.contains("jwks_uri: http://127.0.0.1:3000/api/auth/jwks"),
        "{stdout}"
    );
    // The printed config parses back as YAML.
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&stdout).unwrap();
    assert!(v.get("providers").is_some());
}

#[test]
fn check_config_never_prints_secrets() {
    let secret = "Zq9-this-is-the-hmac-secret-7731";
    let pg_url = "postgres://gate:pw-4481@db.internal:5432/auth";
    let f = config_file(
        "session:\n  postgres: { url_env: DATABASE_URL }\nproviders:\n  - name: api\n    secret_env: API_SECRET\n",
    );
    let path = f.path().to_str().unwrap();
    let out = gatehouse(
        &["check-config", "--config", path],
        &[
            ("BETTER_AUTH_SECRET", secret),
            ("API_SECRET", "another-secret-value-9911"),
            ("DATABASE_URL", pg_url),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!all.contains(secret), "{all}");
    assert!(!all.contains("another-secret-value-9911"), "{all}");
    assert!(!all.contains("pw-4481"), "{all}");
    assert!(!all.contains("db.internal"), "{all}");
    // Only the variable names are shown.
    assert!(all.contains("secret_env: API_SECRET"), "{all}");
    assert!(all.contains("secret_env: BETTER_AUTH_SECRET"), "{all}");
    assert!(all.contains("url_env: DATABASE_URL"), "{all}");
    // Issuer-less providers are named.
    assert!(
        all.contains(
            "\"api\" has no issuer: accepts tokens without a matching iss: secret provider"
        ),
        "{all}"
    );
}

#[test]
fn check_config_bad_key_exits_64_naming_it() {
    let f = config_file("providers:\n  - name: x\n    issuer: i\n    jwks_url: https://a\n");
    let out = gatehouse(
        &["check-config", "--config", f.path().to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(64));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("gatehouse: config error: providers[0].jwks_url: "),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn check_config_reads_gatehouse_config_env() {
    let f = config_file("default_access: public\nhttp_addr: 127.0.0.1:7777\n");
    let out = gatehouse(
        &["check-config"],
        &[("GATEHOUSE_CONFIG", f.path().to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("http_addr: 127.0.0.1:7777"));
    // The flag wins over the env var.
    let out = gatehouse(
        &["check-config", "--http-addr", "127.0.0.1:8888"],
        &[
            ("GATEHOUSE_CONFIG", f.path().to_str().unwrap()),
            ("GATEHOUSE_HTTP_ADDR", "127.0.0.1:9999"),
        ],
    );
    assert!(text(&out.stdout).contains("http_addr: 127.0.0.1:8888"));
}

#[test]
fn no_providers_exits_64() {
    let out = gatehouse(&["check-config"], &[]);
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).starts_with("gatehouse: config error: providers: "));
}

#[test]
fn usage_errors_exit_64_help_and_version_exit_0() {
    assert_eq!(gatehouse(&["--bogus"], &[]).status.code(), Some(64));
    assert_eq!(
        gatehouse(&["check-config", "--bogus"], &[]).status.code(),
        Some(64)
    );
    assert_eq!(gatehouse(&["frobnicate"], &[]).status.code(), Some(64));
    assert_eq!(gatehouse(&[], &[]).status.code(), Some(64));
    assert_eq!(gatehouse(&["verify"], &[]).status.code(), Some(64));
    let help = gatehouse(&["--help"], &[]);
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help.stdout).contains("check-config"));
    let version = gatehouse(&["--version"], &[]);
    assert_eq!(version.status.code(), Some(0));
    assert!(text(&version.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn verify_on_bad_config_exits_64() {
    let f = config_file(
        "providers: [ {name: x, algorithms: [HS256], issuer: i, jwks_uri: https://a} ]\n",
    );
    let out = gatehouse(
        &["verify", "--config", f.path().to_str().unwrap(), "a.b.c"],
        &[],
    );
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out.stderr).starts_with("gatehouse: config error: providers[0].algorithms[0]: "),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn serve_on_bad_config_exits_64() {
    let out = gatehouse(
        &["serve", "--http-addr", "not-an-address"],
        &[("BETTER_AUTH_URL", "http://127.0.0.1:3000")],
    );
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).starts_with("gatehouse: config error: --http-addr: "));
}

#[test]
fn demo_bad_address_exits_64_naming_its_source() {
    let out = gatehouse(&["demo", "--http-addr", "nope"], &[]);
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).starts_with("gatehouse: config error: --http-addr: "));
    let out = gatehouse(&["demo"], &[("GATEHOUSE_GRPC_ADDR", "bad")]);
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).starts_with("gatehouse: config error: GATEHOUSE_GRPC_ADDR: "));
}

#[test]
fn a_relative_rule_path_exits_64_naming_the_rule() {
    let yaml = "providers:\n  - name: idp\n    issuer: https://idp.example\n    jwks_uri: https://idp.example/jwks\nrules:\n  - match: { path: /ok }\n  - match: { path: no-leading-slash }\n";
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(yaml.as_bytes()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["check-config", "--config"])
        .arg(f.path())
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("gatehouse: config error: rules[1]"),
        "{stderr}"
    );
}
