//! `gatehouse verify` and `gatehouse demo --once` end to end through the
//! real binary: tokens signed by the demo issuer, keys from a JWKS file.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use gatehouse::internals::{ALICE, BOB, DemoIssuer};
use serde_json::{Value, json};

const ISSUER: &str = "https://issuer.test";

struct Setup {
    issuer: DemoIssuer,
    _jwks: tempfile::NamedTempFile,
    config: tempfile::NamedTempFile,
}

fn setup() -> Setup {
    setup_with(ISSUER, "")
}

/// A `files` provider for `iss` (audience `iss` too), followed by the
/// `extra` providers' YAML.
fn setup_with(iss: &str, extra: &str) -> Setup {
    let issuer = DemoIssuer::new().unwrap();
    let mut jwks = tempfile::NamedTempFile::new().unwrap();
    jwks.write_all(issuer.jwks_json().as_bytes()).unwrap();
    let yaml = format!(
        "providers:
  - name: files
    issuer: {iss}
    audiences: [{iss}]
    jwks_file: {}
{extra}rules:
  - match: {{ path: \"/api/{{user_id}}/**\" }}
    path_claims: {{ user_id: sub }}
  - match: {{ path_prefix: /admin }}
    claims: {{ role: admin }}
",
        jwks.path().display()
    );
    let mut config = tempfile::NamedTempFile::new().unwrap();
    config.write_all(yaml.as_bytes()).unwrap();
    Setup {
        issuer,
        _jwks: jwks,
        config,
    }
}

fn verify(s: &Setup, extra: &[&str], token: &str, stdin: Option<&str>) -> (Output, Value) {
    verify_env(s.config.path(), extra, token, stdin, &[])
}

fn verify_env(
    config: &Path,
    extra: &[&str],
    token: &str,
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> (Output, Value) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.arg("verify")
        .arg("--config")
        .arg(config)
        .args(extra)
        .arg(token)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, v)
}

#[test]
fn verify_allows_a_good_token() {
    let s = setup();
    let token = s.issuer.user_token(ISSUER, &ALICE, 600);
    let (out, v) = verify(&s, &["--path", "/api/alice/profile"], &token, None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{v} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["status"], 200);
    assert_eq!(v["error"], Value::Null);
    assert_eq!(v["provider"], "files");
    assert_eq!(v["claims"]["sub"], "alice");
    assert_eq!(v["headers"]["x-user-id"], "alice");
    assert_eq!(v["headers"]["x-user-email"], "alice@example.com");
    // The output never echoes the token.
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&token));
}

#[test]
fn verify_reads_the_token_from_stdin() {
    let s = setup();
    let token = s.issuer.user_token(ISSUER, &ALICE, 600);
    let (out, v) = verify(&s, &[], "-", Some(&format!("  {token}\n")));
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["decision"], "allow");
}

#[test]
fn verify_denies_with_codes() {
    let s = setup();
    let alice = s.issuer.user_token(ISSUER, &ALICE, 600);
    let (out, v) = verify(&s, &["--path", "/api/bob/profile"], &alice, None);
    assert_eq!(out.status.code(), Some(1), "{v}");
    assert_eq!(
        (
            v["decision"].clone(),
            v["status"].clone(),
            v["error"].clone()
        ),
        (json!("deny"), json!(403), json!("forbidden"))
    );

    let bob = s.issuer.user_token(ISSUER, &BOB, 600);
    let (out, v) = verify(&s, &["--path", "/admin/x", "--method", "POST"], &bob, None);
    assert_eq!(out.status.code(), Some(0), "{v}");

    let expired = s.issuer.user_token(ISSUER, &ALICE, -600);
    let (out, v) = verify(&s, &[], &expired, None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(v["status"], 401);
    assert_eq!(v["error"], "token_expired");

    let other = DemoIssuer::new().unwrap().user_token(ISSUER, &ALICE, 600);
    let (out, v) = verify(&s, &[], &other, None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(v["error"], "token_invalid");
    assert!(v["claims"].as_object().unwrap().is_empty());

    let (out, v) = verify(&s, &[], "not-a-jwt", None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(v["decision"], "deny");
}

#[test]
fn verify_shows_the_token_issuer_next_to_every_configured_one() {
    let s = setup_with("http://localhost:3000", "");
    let token = s.issuer.user_token("http://127.0.0.1:3000", &ALICE, 600);
    let (out, v) = verify(&s, &[], &token, None);
    assert_eq!(out.status.code(), Some(1), "{v}");
    assert_eq!(v["error"], "token_invalid");
    assert_eq!(v["reason"], "unknown_issuer");
    assert_eq!(v["provider"], Value::Null);
    assert_eq!(
        v["token"],
        json!({
            "iss": "http://127.0.0.1:3000",
            "aud": "http://127.0.0.1:3000",
            "kid": s.issuer.kid(),
            "alg": "EdDSA",
        })
    );
    // No provider takes this issuer: every provider's expectations are shown.
    assert_eq!(v["expected"], Value::Null, "{v}");
    assert_eq!(
        v["providers"],
        json!([{
            "provider": "files",
            "issuer": "http://localhost:3000",
            "audiences": ["http://localhost:3000"],
            "algorithms": ["EdDSA"],
            "kids": [s.issuer.kid()],
            "keys_loaded": true,
        }]),
        "{v}"
    );
}

#[test]
fn verify_shows_the_audiences_a_wrong_audience_missed() {
    let s = setup();
    let now = gatehouse::internals::unix_now();
    let token = s.issuer.sign(&json!({
        "iss": ISSUER,
        "aud": ["https://other.test", "https://third.test"],
        "sub": "alice",
        "iat": now,
        "exp": now + 600,
    }));
    let (out, v) = verify(&s, &[], &token, None);
    assert_eq!(out.status.code(), Some(1), "{v}");
    assert_eq!(v["reason"], "wrong_audience");
    assert_eq!(
        v["token"]["aud"],
        json!(["https://other.test", "https://third.test"])
    );
    assert_eq!(v["expected"]["provider"], "files");
    assert_eq!(v["expected"]["issuer"], ISSUER);
    assert_eq!(v["expected"]["audiences"], json!([ISSUER]));
    assert!(v.get("providers").is_none(), "{v}");
    // Unverified claims are not echoed as claims.
    assert!(v["claims"].as_object().unwrap().is_empty());

    // An allow names the provider that verified the token.
    let good = s.issuer.user_token(ISSUER, &ALICE, 600);
    let (out, v) = verify(&s, &[], &good, None);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["expected"]["provider"], "files");
    assert_eq!(v["token"]["iss"], ISSUER);
}

#[test]
fn verify_explanations_print_nothing_secret() {
    const SECRET: &str = "cli-verify-secret-never-printed-0123456789";
    let s = setup_with(
        ISSUER,
        "  - name: shared
    issuer: https://hs.test
    audiences: [https://hs.test]
    secret_env: TEST_HS_SECRET
",
    );
    let env = [("TEST_HS_SECRET", SECRET)];
    let claims = common::tokens::claims("https://hs.test", "https://hs.test", "carol", 600);
    let good = common::tokens::hs_token("HS256", SECRET.as_bytes(), &claims);
    let forged = common::tokens::hs_token("HS256", b"another-secret-entirely-0123456789", &claims);
    let stranger = s.issuer.user_token("https://nobody.test", &ALICE, 600);
    let wrong_family = s.issuer.user_token("https://hs.test", &ALICE, 600);
    let cases = [
        (&good, 0, "authenticated"),
        (&forged, 1, "bad_signature"),
        (&stranger, 1, "unknown_issuer"),
        (&wrong_family, 1, "wrong_alg"),
    ];
    for (token, code, reason) in cases {
        let (out, v) = verify_env(s.config.path(), &[], token, None, &env);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{v} {stderr}");
        assert_eq!(v["reason"], reason, "{v}");
        let signature = token.rsplit('.').next().unwrap();
        for (name, value) in [
            ("secret", SECRET),
            ("token", token.as_str()),
            ("signature", signature),
        ] {
            assert!(!stdout.contains(value), "stdout holds the {name}: {stdout}");
            assert!(!stderr.contains(value), "stderr holds the {name}: {stderr}");
        }
        let facts = v["token"].as_object().unwrap();
        let mut keys: Vec<&str> = facts.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["alg", "aud", "iss", "kid"], "{v}");
    }
    let (_, v) = verify_env(s.config.path(), &[], &forged, None, &env);
    assert_eq!(v["token"]["alg"], "HS256");
    assert_eq!(v["token"]["kid"], Value::Null);
    assert_eq!(v["expected"]["provider"], "shared");
    assert_eq!(
        v["expected"]["algorithms"],
        json!(["HS256", "HS384", "HS512"])
    );
    assert_eq!(v["expected"]["kids"], json!([]));
    // An EdDSA token with the secret provider's issuer goes to that
    // provider and fails there on its algorithm.
    let (_, v) = verify_env(s.config.path(), &[], &wrong_family, None, &env);
    assert_eq!(v["expected"]["provider"], "shared", "{v}");
    assert_eq!(v["token"]["alg"], "EdDSA");
}

#[test]
fn verify_tolerates_garbage_tokens() {
    let s = setup();
    for garbage in [
        "not-a-jwt",
        "a.b.c",
        "e30.e30.",
        "W10.bnVsbA.x",
        "..",
        "eyJhbGciOjF9.e30.sig",
    ] {
        let (out, v) = verify(&s, &[], garbage, None);
        assert_eq!(out.status.code(), Some(1), "{garbage}: {v}");
        assert_eq!(v["decision"], "deny", "{garbage}: {v}");
        assert_eq!(
            v["token"],
            json!({"iss": null, "aud": null, "kid": null, "alg": null}),
            "{garbage}: {v}"
        );
        assert_eq!(v["expected"], Value::Null, "{garbage}: {v}");
        assert_eq!(v["providers"][0]["provider"], "files", "{garbage}: {v}");
    }
}

#[test]
fn demo_once_decides_every_case_as_expected() {
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["demo", "--once"])
        .env_clear()
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("sample token for alice"));
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert!(stdout.contains(" 403 forbidden"), "{stdout}");
    assert!(stdout.contains(" 401 token_expired"), "{stdout}");
}

/// Kills the child on drop so a failed assertion leaves nothing running.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn demo_serves_and_its_live_checks_pass() {
    use std::io::BufRead;
    let http = format!("127.0.0.1:{}", free_port());
    let grpc = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["demo", "--http-addr", &http, "--grpc-addr", &grpc])
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _running = Running(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        match rx.recv_timeout(std::time::Duration::from_millis(200)) {
            Ok(line) => {
                let done = line.contains("gatehouse demo is running");
                seen.push(line);
                if done {
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let all = seen.join("\n");
    assert!(
        all.contains(&format!("curl -i http://{http}/auth")),
        "{all}"
    );
    assert!(all.contains("live check against"), "{all}");
    assert!(all.contains("gatehouse demo is running"), "{all}");
    assert!(!all.contains("FAIL"), "{all}");
}
