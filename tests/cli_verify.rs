//! `gatehouse verify` and `gatehouse demo --once` end to end through the
//! real binary: tokens signed by the demo issuer, keys from a JWKS file.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use gatehouse::demo::{ALICE, BOB, DemoIssuer};
use serde_json::{Value, json};

const ISSUER: &str = "https://issuer.test";

struct Setup {
    issuer: DemoIssuer,
    _jwks: tempfile::NamedTempFile,
    config: tempfile::NamedTempFile,
}

fn setup() -> Setup {
    let issuer = DemoIssuer::new().unwrap();
    let mut jwks = tempfile::NamedTempFile::new().unwrap();
    jwks.write_all(issuer.jwks_json().as_bytes()).unwrap();
    let yaml = format!(
        "providers:
  - name: files
    issuer: {ISSUER}
    audiences: [{ISSUER}]
    jwks_file: {}
rules:
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
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.arg("verify")
        .arg("--config")
        .arg(s.config.path())
        .args(extra)
        .arg(token)
        .env_clear()
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
