//! Rule errors come from the rule compiler and keep their key path through
//! `Config::from_yaml` (the CLI's exit code for them: tests/service/cli.rs).
#![allow(clippy::unwrap_used)]

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
}

#[test]
fn path_claims_must_name_a_template_parameter() {
    let yaml = format!(
        "{PROVIDER}rules:\n  - match: {{ path: \"/api/{{user_id}}/**\" }}\n    path_claims: {{ account: sub }}\n"
    );
    let e = Config::from_yaml(&yaml, &LoadOptions::default()).unwrap_err();
    assert!(e.key.starts_with("rules[0]"), "{e}");
}
