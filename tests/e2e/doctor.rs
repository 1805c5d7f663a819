//! `gatehouse doctor` against real proxies in front of gatehouse (with the
//! decision trail on) and the echo upstream: the configurations
//! `gatehouse proxy-config` prints pass every check; nginx as its own
//! documentation shows, nginx answering with `return`, Caddy as its
//! documentation shows and an Envoy that appends identity headers are
//! each judged, and the test asserts what doctor printed and its exit
//! code. The outputs shown in docs/doctor.md come from these runs.

use crate::common;

use std::net::SocketAddr;
use std::process::Command;

use common::envoy::hs256;
use common::stack::{Outcome, Stack};
use common::{Caddy, Envoy, Nginx, Traefik, free_addr, gatehouse_bin};
use serde_json::{Value, json};

const SECRET: &str = "doctor-e2e-secret-0123456789abcdef";
const PROTECTED: &str = "/api/alice/notes";
const PUBLIC: &str = "/public/page";

fn gatehouse_config() -> String {
    "providers:
  - name: test
    secret_env: GH_DOCTOR_SECRET
identity_headers:
  x-user-id: sub
  x-user-email: email
  x-user-name: name
  x-user-role: role
rules:
  - match: { path_prefix: /public }
    access: public
  - match: { path_prefix: /admin }
    claims: { role: admin }
  - match: { path: \"/api/{user_id}/**\" }
    path_claims: { user_id: sub }
default_access: authenticated
http:
  decision_trail: true
"
    .to_owned()
}

fn alice() -> String {
    let now = common::tokens::now();
    hs256(
        SECRET,
        &json!({ "sub": "alice", "iat": now - 5, "exp": now + 600 }),
    )
}

/// gatehouse with the trail on, and the echo upstream.
fn start() -> Stack {
    start_with(&gatehouse_config())
}

fn start_with(config_text: &str) -> Stack {
    Stack::start(config_text, "GH_DOCTOR_SECRET", SECRET)
}

impl Stack {
    /// `gatehouse doctor` through the proxy at `proxy`, with every option:
    /// the token, the config, the trail and the echo upstream.
    fn doctor(&self, proxy: SocketAddr, extra: &[&str]) -> Outcome {
        let url = format!("http://{proxy}");
        let gatehouse = format!("http://{}", self.gatehouse.http_addr);
        let token = alice();
        let mut args = vec![
            "doctor",
            &url,
            "--protected",
            PROTECTED,
            "--public",
            PUBLIC,
            "--token",
            &token,
            "--config",
            self.config_path(),
            "--gatehouse",
            &gatehouse,
            "--echo-upstream",
        ];
        args.extend_from_slice(extra);
        let out = run(&args);
        println!("$ gatehouse {}\n{}", args.join(" "), out.stdout);
        assert!(
            !out.stdout.contains(&token),
            "doctor printed the token:\n{}",
            out.stdout
        );
        out
    }
}

impl Outcome {
    /// The report line of `check` (its status, name and detail).
    fn line(&self, check: &str) -> &str {
        let prefix = format!(" {check}: ");
        self.stdout
            .lines()
            .find(|l| l.contains(&prefix) && !l.trim_start().starts_with("fix:"))
            .unwrap_or_else(|| panic!("no `{check}` line in:\n{}", self.stdout))
    }

    /// The status word of `check`'s line.
    fn status(&self, check: &str) -> &str {
        self.line(check)
            .split_whitespace()
            .next()
            .unwrap_or_default()
    }

    /// The `fix:` line that follows `check`'s line.
    fn fix(&self, check: &str) -> &str {
        let line = self.line(check);
        let mut lines = self.stdout.lines().skip_while(|l| *l != line).skip(1);
        lines
            .next()
            .filter(|l| l.trim_start().starts_with("fix:"))
            .unwrap_or_else(|| panic!("`{check}` has no fix line in:\n{}", self.stdout))
    }

    fn failed(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with("FAIL"))
            .collect()
    }
}

fn run(args: &[&str]) -> Outcome {
    let mut cmd = Command::new(gatehouse_bin());
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("BETTER_AUTH_") || k.starts_with("GATEHOUSE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("GH_DOCTOR_SECRET", SECRET);
    let out = cmd.output().expect("run gatehouse");
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every check ran and passed: nothing failed or was skipped.
fn assert_all_pass(name: &str, out: &Outcome) {
    assert_eq!(
        out.code, 0,
        "{name}: doctor failed:\n{}{}",
        out.stdout, out.stderr
    );
    assert!(out.failed().is_empty(), "{name}:\n{}", out.stdout);
    for check in [
        "public",
        "protected",
        "spoof.x-original-uri",
        "spoof.x-original-uri+method",
        "spoof.x-forwarded-uri",
        "spoof.x-forwarded-uri+method",
        "spoof.x-original-method",
        "spoof.x-forwarded-method",
        "spoof.x-forwarded-host",
        "spoof.preflight-original",
        "spoof.preflight-forwarded",
        "duplicate-authorization",
        "path.dot-segments",
        "path.encoded-slash",
        "path.encoded-dots",
        "path.semicolon",
        "path.double-slash",
        "path.case",
        "token",
        "identity.protected",
        "identity.public",
        "trail.asked",
        "trail.method",
        "trail.path",
        "trail.host",
    ] {
        assert_eq!(out.status(check), "ok", "{name}: {check}:\n{}", out.stdout);
    }
    assert!(
        out.stdout.ends_with("25 ok, 0 FAIL, 0 skipped\n"),
        "{name}:\n{}",
        out.stdout
    );
}

#[test]
fn doctor_passes_nginx_with_the_printed_configuration() {
    let s = start();
    let listen = free_addr();
    let nginx = Nginx::start_conf(&s.proxy_config("nginx", listen), listen);
    let out = s.doctor(nginx.addr, &[]);
    assert_all_pass("nginx", &out);
    assert!(out.stdout.starts_with(&format!(
        "gatehouse doctor: http://{} (proxy: nginx)\n",
        nginx.addr
    )));
}

#[test]
fn doctor_passes_caddy_with_the_printed_configuration() {
    let s = start();
    let listen = free_addr();
    let caddy = Caddy::start(&s.proxy_config("caddy", listen), listen);
    assert_all_pass("caddy", &s.doctor(caddy.addr, &[]));
}

#[test]
fn doctor_passes_traefik_with_the_printed_configuration() {
    let s = start();
    let listen = free_addr();
    let traefik = Traefik::start(&s.proxy_config("traefik", listen), listen);
    assert_all_pass("traefik", &s.doctor(traefik.addr, &["--proxy", "traefik"]));
}

#[test]
fn doctor_passes_envoy_grpc_with_the_printed_configuration() {
    let s = start();
    let listen = free_addr();
    let envoy = Envoy::start_text(&s.proxy_config("envoy", listen), listen, free_addr());
    let out = s.doctor(envoy.addr, &[]);
    assert_all_pass("envoy", &out);
    assert!(out.stdout.contains("(proxy: envoy)"), "{}", out.stdout);
}

#[test]
fn doctor_passes_envoy_http_with_the_printed_configuration() {
    let s = start();
    let listen = free_addr();
    let envoy = Envoy::start_text(&s.proxy_config("envoy-http", listen), listen, free_addr());
    let out = s.doctor(envoy.addr, &[]);
    assert_all_pass("envoy-http", &out);
    assert!(out.stdout.contains("(proxy: envoy-http)"), "{}", out.stdout);
}

/// nginx as its own `auth_request` documentation shows it: only
/// `X-Original-URI` is set. gatehouse refuses every description as
/// incomplete (nginx shows its own 500), and a client that adds
/// `X-Original-Method` chooses the method gatehouse judges.
#[test]
fn doctor_names_x_original_method_for_nginx_as_documented() {
    let s = start();
    let listen = free_addr();
    let conf = common::nginx::documented_conf(listen, s.gatehouse.http_addr, s.app.addr);
    let nginx = Nginx::start_conf(&conf, listen);
    let out = s.doctor(nginx.addr, &[]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    // The preflight disguise gets through: the client said OPTIONS.
    assert_eq!(out.status("spoof.preflight-original"), "FAIL");
    assert!(
        out.line("spoof.preflight-original")
            .contains("was let through (200)")
    );
    let fix = "nginx: add `proxy_set_header X-Original-Method $request_method;` to the location that calls /auth";
    assert!(
        out.fix("spoof.preflight-original").contains(fix),
        "{}",
        out.stdout
    );
    // Without the client's X-Original-Method nginx fails (gatehouse
    // refuses the incomplete description); with it gatehouse judges.
    assert_eq!(out.status("protected"), "FAIL");
    assert!(out.line("protected").contains("500"), "{}", out.stdout);
    assert_eq!(out.status("spoof.x-original-method"), "FAIL");
    assert!(
        out.line("spoof.x-original-method")
            .contains("the proxy does not set X-Original-Method itself"),
        "{}",
        out.stdout
    );
    assert!(out.fix("spoof.x-original-method").contains(fix));
    // The trail shows both: no method from nginx, the client's OPTIONS.
    assert_eq!(out.status("trail.method"), "FAIL");
    let method = out.line("trail.method");
    assert!(
        method.contains("without X-Original-Method (missing_method)"),
        "{method}"
    );
    assert!(out.fix("trail.method").contains(fix));
    assert!(
        out.stdout
            .contains("gatehouse judged OPTIONS, the client's X-Original-Method"),
        "{}",
        out.stdout
    );
    // And the host is the client's X-Forwarded-Host.
    assert_eq!(out.status("trail.host"), "FAIL");
    assert!(
        out.line("trail.host")
            .contains("the client's X-Forwarded-Host")
    );
    assert!(
        out.fix("trail.host")
            .contains("proxy_set_header X-Forwarded-Host $host;")
    );
}

/// The printed nginx configuration plus a location for the protected
/// path that answers with `return`: nginx runs `return` before
/// `auth_request`, so gatehouse is never asked.
#[test]
fn doctor_finds_the_nginx_return_trap_with_the_trail() {
    let s = start();
    let listen = free_addr();
    let printed = s.proxy_config("nginx", listen);
    let anchor = "        location / {\n";
    assert!(printed.contains(anchor));
    let conf = printed.replacen(
        anchor,
        &format!(
            "        location = {PROTECTED} {{\n            return 200 \"notes\\n\";\n        }}\n\n{anchor}"
        ),
        1,
    );
    let nginx = Nginx::start_conf(&conf, listen);
    let out = s.doctor(nginx.addr, &[]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert_eq!(out.status("protected"), "FAIL");
    assert!(
        out.line("protected")
            .contains("answered 200 without a credential")
    );
    assert_eq!(out.status("trail.asked"), "FAIL");
    let asked = out.line("trail.asked");
    assert!(
        asked.contains(&format!(
            "gatehouse was never asked about GET {PROTECTED}, which the proxy answered 200"
        )),
        "{asked}"
    );
    assert!(
        out.fix("trail.asked").contains("`return`"),
        "{}",
        out.stdout
    );
    // The public path still goes through gatehouse, which is how doctor
    // knows its request ids reach the trail.
    assert_eq!(out.status("public"), "ok");
    // Without the trail, doctor still sees the protected path served, but
    // cannot say why.
    let without = run(&[
        "doctor",
        &format!("http://{}", nginx.addr),
        "--protected",
        PROTECTED,
        "--public",
        PUBLIC,
    ]);
    assert_eq!(without.code, 1);
    assert_eq!(without.status("protected"), "FAIL");
    assert!(without.line("trail").starts_with("skipped"));
    assert!(without.line("trail").contains("no --gatehouse URL"));
}

/// Caddy as its `forward_auth` documentation shows it: the client's
/// headers are not stripped, so a client's `X-Original-URI` or
/// `X-Original-Method` reaches gatehouse next to Caddy's own
/// `X-Forwarded-*`. Nothing gets through: gatehouse refuses two
/// descriptions as ambiguous (400), and Caddy 2.11's `copy_headers`
/// replaces the client's identity headers. Doctor says `ok` for each, with
/// gatehouse's refusal as the reason, and exits 0.
#[test]
fn doctor_accepts_caddy_as_documented_because_gatehouse_refuses_the_spoofs() {
    let s = start();
    let listen = free_addr();
    let conf = common::caddy::documented_conf(
        listen,
        s.gatehouse.http_addr,
        s.app.addr,
        &["X-User-Id", "X-User-Email", "X-User-Name", "X-User-Role"],
    );
    let caddy = Caddy::start(&conf, listen);
    let out = s.doctor(caddy.addr, &[]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    for check in [
        "spoof.x-original-uri",
        "spoof.x-original-uri+method",
        "spoof.x-original-method",
        "spoof.preflight-original",
    ] {
        assert_eq!(out.status(check), "ok", "{check}: {}", out.stdout);
        assert!(
            out.line(check)
                .contains("refused by gatehouse: 400 bad_request"),
            "{check}: {}",
            out.stdout
        );
    }
    assert_eq!(out.status("identity.protected"), "ok");
    assert_eq!(out.status("identity.public"), "ok");
    assert_eq!(out.status("trail.method"), "ok");
}

/// Envoy's HTTP mode appending gatehouse's identity headers to the
/// client's (`allowed_upstream_headers_to_append`, and no removal of the
/// client's copies before the check): only the echo upstream shows it.
#[test]
fn doctor_finds_envoy_appending_identity_headers_with_the_echo_upstream() {
    let s = start();
    let listen = free_addr();
    let printed = s.proxy_config("envoy-http", listen);
    assert!(printed.contains("allowed_upstream_headers:"));
    let appending = without_filter(
        &printed.replace(
            "allowed_upstream_headers:",
            "allowed_upstream_headers_to_append:",
        ),
        "envoy.filters.http.header_mutation",
    );
    let envoy = Envoy::start_text(&appending, listen, free_addr());
    let out = s.doctor(envoy.addr, &[]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert_eq!(
        out.failed().len(),
        1,
        "only the echo sees it:\n{}",
        out.stdout
    );
    assert_eq!(out.status("identity.protected"), "FAIL");
    let line = out.line("identity.protected");
    assert!(line.contains("x-user-id"), "{line}");
    assert!(line.contains("gatehouse-doctor-forged"), "{line}");
    assert!(line.contains("alice"), "{line}");
    assert!(line.contains("appended to gatehouse's"), "{line}");
    assert!(
        out.fix("identity.protected")
            .contains("instead of `allowed_upstream_headers_to_append`"),
        "{}",
        out.stdout
    );
    // Without --echo-upstream nothing shows it.
    let token = alice();
    let blind = run(&[
        "doctor",
        &format!("http://{}", envoy.addr),
        "--protected",
        PROTECTED,
        "--public",
        PUBLIC,
        "--token",
        &token,
    ]);
    assert_eq!(blind.code, 0, "{}", blind.stdout);
    assert!(blind.line("identity").starts_with("skipped"));
}

/// `yaml` without the HTTP filter named `name` (its whole list item).
fn without_filter(yaml: &str, name: &str) -> String {
    let lines: Vec<&str> = yaml.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == format!("- name: {name}"))
        .unwrap_or_else(|| panic!("no filter {name}"));
    let indent = lines[start].len() - lines[start].trim_start().len();
    let end = (start + 1..lines.len())
        .find(|&i| {
            let l = lines[i];
            let ind = l.len() - l.trim_start().len();
            !l.trim().is_empty() && ind <= indent
        })
        .unwrap_or(lines.len());
    let mut out: Vec<&str> = lines[..start].to_vec();
    out.extend_from_slice(&lines[end..]);
    out.join("\n") + "\n"
}

/// The trail off (its default): doctor skips the trail checks and says
/// how to turn it on; the JSON report carries the same.
#[test]
fn doctor_skips_the_trail_when_it_is_off_and_reports_json() {
    let config =
        gatehouse_config().replace("  decision_trail: true\n", "  request_headers: auto\n");
    let s = start_with(&config);
    let listen = free_addr();
    let nginx = Nginx::start_conf(&s.proxy_config("nginx", listen), listen);
    let (status, _) = common::http_get(s.gatehouse.http_addr, "/debug/decisions?request_id=x", &[])
        .expect("gatehouse answers");
    assert_eq!(status, 404, "the trail is off by default");
    let out = s.doctor(nginx.addr, &["--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    let report: Value = serde_json::from_str(&out.stdout).expect("one JSON object");
    assert_eq!(report["exit_code"], 0);
    assert_eq!(report["proxy"], "nginx");
    assert_eq!(report["fail"], 0);
    let checks = report["checks"].as_array().expect("checks");
    let trail = checks
        .iter()
        .find(|c| c["id"] == "trail")
        .expect("a trail check");
    assert_eq!(trail["status"], "skipped");
    assert!(
        trail["detail"]
            .as_str()
            .is_some_and(|d| d.contains("http.decision_trail: true")),
        "{trail}"
    );
    let protected = checks
        .iter()
        .find(|c| c["id"] == "protected")
        .expect("protected");
    assert_eq!(protected["status"], "ok");
    assert_eq!(protected["fix"], Value::Null);
}
