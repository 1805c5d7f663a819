//! Rule errors come from the rule compiler and keep their key path through
//! `Config::load` and the `check-config` exit code.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::Command;

use gatehouse::config::{Config, Env, LoadOptions};

const PROVIDER: &str = "providers:
  - name: idp
    issuer: https://idp.example
    jwks_uri: https://idp.example/jwks
";

#[test]
fn a_relative_rule_path_is_refused_with_its_key() {
    let yaml = format!(
        "{PROVIDER}rules:\n  - match: {{ path: /ok }}\n  - match: {{ path: no-leading-slash }}\n"
    );
    let opts = LoadOptions {
        env: Env::default(),
        ..LoadOptions::default()
    };
    let e = Config::from_yaml(&yaml, &opts).unwrap_err();
    assert!(e.key.starts_with("rules[1]"), "{e}");

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

#[test]
fn path_claims_must_name_a_template_parameter() {
    let yaml = format!(
        "{PROVIDER}rules:\n  - match: {{ path: \"/api/{{user_id}}/**\" }}\n    path_claims: {{ account: sub }}\n"
    );
    let e = Config::from_yaml(&yaml, &LoadOptions::default()).unwrap_err();
    assert!(e.key.starts_with("rules[0]"), "{e}");
}
