//! The trust boundary through every real proxy: nginx, Caddy, Traefik and
//! Envoy (gRPC and HTTP mode) run the configuration `gatehouse
//! proxy-config` prints, in front of gatehouse and an echo upstream, and a
//! hostile client tries to choose what gatehouse judges or who the upstream
//! thinks it is. Every case asserts what the upstream received, not only
//! the status.
//!
//! Also here: nginx configured as its own documentation shows (only
//! `X-Original-URI`), the `proxy-config` command's errors, and the check
//! that the files under `deploy/` are exactly what `proxy-config` prints.

use crate::common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::envoy::{hs256, upstream_header};
use common::stack::Stack;
use common::{
    Caddy, EchoUpstream, Envoy, HttpResponse, Nginx, Traefik, free_addr, gatehouse_bin,
    http_request,
};
use serde_json::json;

const SECRET: &str = "trust-boundary-secret-0123456789abcdef";

/// Identity headers of the test configuration; tokens below carry `sub`
/// only (and `role` for the admin), so the others must arrive empty or not
/// at all, never as the client's copy.
const IDENTITY: [&str; 4] = ["x-user-id", "x-user-email", "x-user-name", "x-user-role"];

fn gatehouse_config() -> String {
    "providers:
  - name: test
    secret_env: GH_TB_SECRET
token_sources:
  - header: authorization
  - cookie: better-auth.session_token
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
"
    .to_owned()
}

fn token(sub: &str, role: Option<&str>) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut claims = json!({ "sub": sub, "iat": now - 5, "exp": now + 600 });
    if let Some(role) = role {
        claims["role"] = json!(role);
    }
    format!("Bearer {}", hs256(SECRET, &claims))
}

/// gatehouse with the test configuration, and the echo upstream.
fn stack() -> Stack {
    Stack::start(&gatehouse_config(), "GH_TB_SECRET", SECRET)
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn run_gatehouse(args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(gatehouse_bin());
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("BETTER_AUTH_") || k.starts_with("GATEHOUSE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("GH_TB_SECRET", SECRET);
    cmd.output().expect("run gatehouse")
}

/// One client request through the proxy at `addr`.
fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    // A proxy may still be loading its configuration for a moment.
    for _ in 0..50 {
        if let Some(r) = http_request(addr, method, path, headers) {
            return r;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no answer from the proxy at {addr} for {method} {path}");
}

/// The spoof battery: everything a hostile client tries, with what the
/// upstream must (not) have received. `name` labels failures.
fn battery(name: &str, addr: SocketAddr, app: &EchoUpstream) {
    let alice = token("alice", None);
    let bob_admin = token("bob", Some("admin"));

    // A protected path without a credential: refused by gatehouse, with
    // its JSON body and challenge, and the upstream is never reached.
    let hits = app.hits();
    let r = send(addr, "GET", "/api/alice/notes", &[]);
    assert_eq!(r.status, 401, "{name}: {r:?}");
    assert_eq!(r.json()["error"], "token_missing", "{name}");
    assert_eq!(
        r.header("x-gatehouse-error"),
        Some("token_missing"),
        "{name}"
    );
    assert!(
        r.header("www-authenticate")
            .is_some_and(|c| c.starts_with("Bearer realm=\"gatehouse\"")),
        "{name}: {r:?}"
    );
    assert_eq!(
        app.hits(),
        hits,
        "{name}: a refused request reached the upstream"
    );

    // A client-sent description pointing at a public path never moves the
    // decision: refused, never allowed, and the upstream is not reached.
    let spoofs: &[&[(&str, &str)]] = &[
        &[("x-original-uri", "/public/x")],
        &[
            ("x-original-uri", "/public/x"),
            ("x-original-method", "GET"),
        ],
        &[("x-original-method", "OPTIONS")],
        &[("x-forwarded-uri", "/public/x")],
        &[
            ("x-forwarded-uri", "/public/x"),
            ("x-forwarded-method", "GET"),
        ],
        &[("x-forwarded-method", "OPTIONS")],
        &[("x-forwarded-host", "public.example")],
        &[
            ("x-forwarded-uri", "/public/x"),
            ("x-original-uri", "/public/x"),
        ],
        // The CORS preflight disguise: a GET dressed as a preflight.
        &[
            ("x-original-method", "OPTIONS"),
            ("access-control-request-method", "GET"),
        ],
        &[
            ("x-forwarded-method", "OPTIONS"),
            ("access-control-request-method", "GET"),
        ],
    ];
    for spoof in spoofs {
        let r = send(addr, "GET", "/api/alice/notes", spoof);
        assert!(
            matches!(r.status, 400 | 401),
            "{name}: {spoof:?} got {} {}",
            r.status,
            r.body
        );
        assert_eq!(app.hits(), hits, "{name}: {spoof:?} reached the upstream");
    }

    // A non-admin token cannot reach /admin by describing another path.
    for spoof in [
        ("x-original-uri", "/api/alice/notes"),
        ("x-forwarded-uri", "/api/alice/notes"),
        ("x-original-uri", "/public/x"),
        ("x-forwarded-uri", "/public/x"),
    ] {
        let r = send(
            addr,
            "GET",
            "/admin/panel",
            &[("authorization", &alice), spoof],
        );
        assert!(matches!(r.status, 400 | 403), "{name}: {spoof:?}: {r:?}");
        assert_eq!(app.hits(), hits, "{name}: {spoof:?} reached /admin");
    }

    // Client copies of every identity header: on a protected path with a
    // token that lacks most claims, the upstream sees gatehouse's values
    // only (the `sub`), never the client's.
    let mut forged: Vec<(&str, &str)> = IDENTITY.iter().map(|h| (*h, "mallory")).collect();
    forged.push(("authorization", &alice));
    let r = send(addr, "GET", "/api/alice/notes?x=1", &forged);
    assert_eq!(r.status, 200, "{name}: {r:?}");
    assert_eq!(r.json()["path"], "/api/alice/notes?x=1", "{name}");
    assert_eq!(upstream_header(&r, "x-user-id"), ["alice"], "{name}");
    assert_no_forgery(name, &r);

    // The same on a public path, with and without a credential.
    let r = send(addr, "GET", "/public/page", &forged[..IDENTITY.len()]);
    assert_eq!(r.status, 200, "{name}: {r:?}");
    assert_eq!(r.json()["path"], "/public/page", "{name}");
    assert_no_forgery(name, &r);
    assert!(
        upstream_header(&r, "x-user-id")
            .iter()
            .all(String::is_empty),
        "{name}"
    );
    let r = send(addr, "GET", "/public/page", &forged);
    assert_eq!(r.status, 200, "{name}: {r:?}");
    assert_no_forgery(name, &r);

    // A claim the token has reaches the upstream; rules still bite.
    let mut admin_forged: Vec<(&str, &str)> = IDENTITY.iter().map(|h| (*h, "mallory")).collect();
    admin_forged.push(("authorization", &bob_admin));
    let r = send(addr, "GET", "/admin/panel", &admin_forged);
    assert_eq!(r.status, 200, "{name}: {r:?}");
    assert_eq!(upstream_header(&r, "x-user-id"), ["bob"], "{name}");
    assert_eq!(upstream_header(&r, "x-user-role"), ["admin"], "{name}");
    assert_no_forgery(name, &r);
    let hits = app.hits();
    let r = send(addr, "GET", "/api/bob/notes", &[("authorization", &alice)]);
    assert_eq!(r.status, 403, "{name}: {r:?}");
    assert_eq!(r.json()["error"], "forbidden", "{name}");
    assert_eq!(r.header("x-gatehouse-error"), Some("forbidden"), "{name}");
    assert_eq!(app.hits(), hits, "{name}");

    // Path tricks: whatever the proxy does with them, a protected path is
    // never served without a credential.
    for path in [
        "/public/../api/alice/notes",
        "/public/%2e%2e/api/alice/notes",
        "/public/%2E%2E/api/alice/notes",
        "/public%2F..%2Fapi/alice/notes",
        "/public/..%2Fapi/alice/notes",
        "/public;/../api/alice/notes",
        "/api/alice/notes;public",
        "/public/x/..;/../api/alice/notes",
        "//api/alice/notes",
    ] {
        let before = app.hits();
        let r = send(addr, "GET", path, &[]);
        if r.status == 200 {
            // Allowed only if the upstream was handed a public path.
            let seen = r.json()["path"].as_str().unwrap_or_default().to_owned();
            assert!(
                seen.starts_with("/public") && !seen.contains("..") && !seen.contains("%2"),
                "{name}: {path} reached the upstream as {seen}"
            );
        } else {
            assert!(
                matches!(r.status, 400 | 401 | 403 | 404),
                "{name}: {path}: {r:?}"
            );
            assert_eq!(app.hits(), before, "{name}: {path} reached the upstream");
        }
    }

    // A request gatehouse refuses as ambiguous reaches the client as 400
    // with gatehouse's JSON body, not as the proxy's own error page.
    let r = send(
        addr,
        "GET",
        "/api/alice/a%2Fb",
        &[("authorization", &alice)],
    );
    assert_eq!(r.status, 400, "{name}: {r:?}");
}

/// No header of [`IDENTITY`] carries the client's forged value.
fn assert_no_forgery(name: &str, r: &HttpResponse) {
    for h in IDENTITY {
        let values = upstream_header(r, h);
        assert!(
            !values.iter().any(|v| v.contains("mallory")),
            "{name}: the client's {h} reached the upstream: {values:?}"
        );
        assert!(values.len() <= 1, "{name}: {h} arrived twice: {values:?}");
    }
}

#[test]
fn nginx_with_the_printed_configuration_holds_the_boundary() {
    let s = stack();
    let listen = free_addr();
    let nginx = Nginx::start_conf(&s.proxy_config("nginx", listen), listen);
    battery("nginx", nginx.addr, &s.app);
    // A 400 is restored by the printed error pages, with gatehouse's body.
    let r = send(
        nginx.addr,
        "GET",
        "/api/alice/a%2Fb",
        &[("authorization", &token("alice", None))],
    );
    assert_eq!(r.json()["error"], "bad_request", "{r:?}");
    assert!(
        r.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("encoded slash"))
    );
}

#[test]
fn caddy_with_the_printed_configuration_holds_the_boundary() {
    let s = stack();
    let listen = free_addr();
    let caddy = Caddy::start(&s.proxy_config("caddy", listen), listen);
    battery("caddy", caddy.addr, &s.app);
}

#[test]
fn traefik_with_the_printed_configuration_holds_the_boundary() {
    let s = stack();
    let listen = free_addr();
    let traefik = Traefik::start(&s.proxy_config("traefik", listen), listen);
    battery("traefik", traefik.addr, &s.app);
}

#[test]
fn envoy_grpc_with_the_printed_configuration_holds_the_boundary() {
    let s = stack();
    let listen = free_addr();
    let envoy = Envoy::start_text(&s.proxy_config("envoy", listen), listen, free_addr());
    battery("envoy", envoy.addr, &s.app);
}

#[test]
fn envoy_http_with_the_printed_configuration_holds_the_boundary() {
    let s = stack();
    let listen = free_addr();
    let envoy = Envoy::start_text(&s.proxy_config("envoy-http", listen), listen, free_addr());
    battery("envoy-http", envoy.addr, &s.app);
}

/// Caddy as its own `forward_auth` documentation shows it: no header is
/// stripped, so a client's `X-Original-URI` reaches gatehouse beside
/// Caddy's own `X-Forwarded-*`. gatehouse refuses that as ambiguous
/// instead of judging the client's path, and Caddy 2.11's `copy_headers`
/// replaces the client's identity headers.
#[test]
fn caddy_as_documented_is_refused_as_ambiguous_not_bypassed() {
    let s = stack();
    let listen = free_addr();
    let conf = common::caddy::documented_conf(
        listen,
        s.gatehouse.http_addr,
        s.app.addr,
        &["X-User-Id", "X-User-Email", "X-User-Role"],
    );
    let caddy = Caddy::start(&conf, listen);
    for spoof in [
        ("x-original-uri", "/public/x"),
        ("x-original-method", "OPTIONS"),
    ] {
        let r = send(caddy.addr, "GET", "/api/alice/notes", &[spoof]);
        assert_eq!(r.status, 400, "{spoof:?}: {r:?}");
        assert_eq!(r.json()["error"], "bad_request");
        assert!(
            r.json()["message"]
                .as_str()
                .is_some_and(|m| m.contains("described twice"))
        );
    }
    let r = send(
        caddy.addr,
        "GET",
        "/api/alice/notes",
        &[
            ("x-original-method", "OPTIONS"),
            ("access-control-request-method", "GET"),
        ],
    );
    assert_eq!(r.status, 400, "the preflight disguise: {r:?}");
    assert_eq!(s.app.hits(), 0, "a spoofed request reached the upstream");

    let alice = token("alice", None);
    let r = send(
        caddy.addr,
        "GET",
        "/api/alice/notes",
        &[
            ("authorization", &alice),
            ("x-user-id", "mallory"),
            ("x-user-role", "admin"),
        ],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(upstream_header(&r, "x-user-id"), ["alice"]);
    assert!(
        !upstream_header(&r, "x-user-role")
            .iter()
            .any(|v| v == "admin"),
        "the client's role reached the upstream"
    );
}

/// The battery checks its own checks: the printed nginx configuration
/// with one identity header left out, or with the client's description
/// passed on, must fail it.
#[test]
fn the_battery_fails_a_configuration_with_a_hole() {
    let s = stack();
    for (hole, needle) in [
        (
            "X-User-Role is not replaced",
            "proxy_set_header X-User-Role",
        ),
        (
            "the method is left to the client",
            "proxy_set_header X-Original-Method $request_method;",
        ),
    ] {
        let listen = free_addr();
        let printed = s.proxy_config("nginx", listen);
        let holed: String = printed
            .lines()
            .filter(|l| !l.trim_start().starts_with(needle))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_ne!(
            printed, holed,
            "{needle} is not in the printed configuration"
        );
        let nginx = Nginx::start_conf(&holed, listen);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            battery("nginx with a hole", nginx.addr, &s.app)
        }));
        assert!(caught.is_err(), "the battery passed although {hole}");
    }
}

/// nginx as its own `auth_request` documentation shows it: only
/// `X-Original-URI` is set. gatehouse answers every request with a 400
/// that names the missing header and the line to add (nginx shows its own
/// 500), and logs the same. The method is then the client's to choose:
/// only the proxy can close that, which is what the printed configuration
/// (and `gatehouse doctor`) is for.
#[test]
fn nginx_as_documented_gets_a_clear_400_and_leaves_the_method_to_the_client() {
    let s = stack();
    let listen = free_addr();
    let conf = common::nginx::documented_conf(listen, s.gatehouse.http_addr, s.app.addr);
    let nginx = Nginx::start_conf(&conf, listen);
    let alice = token("alice", None);
    let r = send(
        nginx.addr,
        "GET",
        "/api/alice/notes",
        &[("authorization", &alice)],
    );
    assert_eq!(
        r.status, 500,
        "nginx turns gatehouse's 400 into its own 500: {r:?}"
    );
    assert_eq!(s.app.hits(), 0);
    let log = s.gatehouse.proc.log_text();
    assert!(
        log.contains("missing_method")
            && log.contains("proxy_set_header X-Original-Method $request_method;"),
        "the log names the missing header and its line:\n{log}"
    );

    // What gatehouse answered nginx, asked directly the same way.
    let r = http_request(
        s.gatehouse.http_addr,
        "GET",
        "/auth",
        &[
            ("x-original-uri", "/api/alice/notes"),
            ("authorization", &alice),
        ],
    )
    .expect("gatehouse answers");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "bad_request");
    let message = r.json()["message"].as_str().unwrap_or_default().to_owned();
    assert!(
        message.contains("X-Original-Method")
            && message.contains("proxy_set_header X-Original-Method $request_method;")
            && !message.contains("path"),
        "{message}"
    );
    let metrics = http_request(s.gatehouse.http_addr, "GET", "/metrics", &[]).expect("metrics");
    assert_eq!(
        common::metrics::decisions(&metrics.body, "http", "deny", "missing_method"),
        2.0,
        "nginx's request and the direct one, each under its own reason:\n{}",
        metrics.body
    );

    // Here the client supplies the method: the preflight disguise passes
    // with no credential. Recorded, not endorsed: only the proxy can close
    // it, and the printed configuration does (see the battery above).
    let r = send(
        nginx.addr,
        "GET",
        "/api/alice/notes",
        &[
            ("x-original-method", "OPTIONS"),
            ("access-control-request-method", "GET"),
        ],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.json()["method"],
        "GET",
        "the upstream got a GET without a token"
    );
}

#[test]
fn proxy_config_refuses_unknown_targets_and_bad_input_with_64() {
    let out = run_gatehouse(&["proxy-config", "haproxy"]);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nginx, caddy, traefik, envoy or envoy-http"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "providers: []\nrulez: []\n").expect("write");
    let out = run_gatehouse(&["proxy-config", "nginx", "--config", path_str(&bad)]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rulez"));
    assert!(out.stdout.is_empty());

    let good = dir.path().join("good.yaml");
    std::fs::write(&good, gatehouse_config()).expect("write");
    let out = run_gatehouse(&[
        "proxy-config",
        "caddy",
        "--config",
        path_str(&good),
        "--upstream",
        "127.0.0.1:3000",
    ]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--upstream"));
    assert!(out.stdout.is_empty());
}

/// The files under `deploy/` are exactly what `proxy-config` prints for
/// the command written in their header.
#[test]
fn deploy_files_are_the_printed_configurations() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = [
        "deploy/nginx/nginx.conf",
        "deploy/caddy/Caddyfile",
        "deploy/traefik/dynamic.yaml",
        "deploy/envoy/envoy.yaml",
        "deploy/envoy/envoy-http.yaml",
    ];
    for file in files {
        let text =
            std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let command = text
            .lines()
            .find_map(|l| l.split_once("Generated by: gatehouse ").map(|(_, c)| c))
            .unwrap_or_else(|| panic!("{file} does not say which command printed it"));
        let args: Vec<&str> = command.split_whitespace().collect();
        let mut cmd = Command::new(gatehouse_bin());
        cmd.args(&args).current_dir(root);
        for (k, _) in std::env::vars() {
            if k.starts_with("BETTER_AUTH_") || k.starts_with("GATEHOUSE_") {
                cmd.env_remove(k);
            }
        }
        let out = cmd.output().expect("run gatehouse");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{file}: `gatehouse {command}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stdout == text.as_bytes(),
            "{file} differs from `gatehouse {command}`: regenerate it with\n  \
             cargo run -- {command} > {file}"
        );
    }
}
