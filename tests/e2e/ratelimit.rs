//! Rate limits across replicas, against a real Redis: several `gatehouse
//! serve` processes share one quota through both doors and through nginx
//! running the printed configuration; refusals cost no quota; a Redis that
//! goes away leaves per-replica limiting without a 5xx or a readiness
//! change, and shared limiting comes back with it.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::envoy::{TEST_SECRET, hs256, user_claims};
use common::redis_server::{RedisServer, SHARED_REDIS_URL as SHARED_URL, unique_prefix};
use common::{
    EchoUpstream, Gatehouse, HttpResponse, Nginx, free_addr, gatehouse_bin, http_request,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse as PbHttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};

const BURST: usize = 5;

/// `/api/**` needs a caller and spends from `per-user` (burst 5, then one
/// request a minute); `/admin/**` needs `role: admin` and spends from the
/// same policy, so its 403s would show in the quota if they cost any.
fn config(prefix: &str, extra: &str) -> String {
    format!(
        "providers:
  - name: test
    secret_env: GH_TEST_SECRET
token_sources:
  - header: authorization
redis:
  key_prefix: \"{prefix}\"
  breaker_failures: 2
  breaker_cooldown: 300ms
admin:
  addr: 127.0.0.1:0
rate_limits:
  policies:
    per-user: {{ key: [sub], rate: 1/1m, burst: {BURST} }}
    per-ip: {{ key: [client_ip], rate: 1/1m, burst: 3 }}
rules:
  - match: {{ path_prefix: /public }}
    access: public
    rate_limit: [per-ip]
  - match: {{ path_prefix: /admin }}
    claims: {{ role: admin }}
    rate_limit: [per-user]
  - match: {{ path_prefix: /api }}
    rate_limit: [per-user]
default_access: authenticated
{extra}"
    )
}

struct Replicas {
    nodes: Vec<Gatehouse>,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

fn start(n: usize, redis_url: &str, yaml: &str) -> Replicas {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("gatehouse.yaml");
    std::fs::write(&config, yaml).expect("write config");
    let env: HashMap<String, String> = [
        ("GH_TEST_SECRET".to_owned(), TEST_SECRET.to_owned()),
        ("REDIS_URL".to_owned(), redis_url.to_owned()),
    ]
    .into();
    let nodes: Vec<Gatehouse> = (0..n)
        .map(|_| {
            let g = Gatehouse::start(Some(&config), &env);
            assert!(
                g.wait_ready(Duration::from_secs(20)),
                "not ready:\n{}",
                g.proc.log_text()
            );
            g
        })
        .collect();
    Replicas {
        nodes,
        config,
        _dir: dir,
    }
}

fn bearer(sub: &str, role: Option<&str>) -> String {
    let mut claims = user_claims(sub, 600);
    if let Some(role) = role {
        claims["role"] = role.into();
    }
    format!("Bearer {}", hs256(TEST_SECRET, &claims))
}

/// `/auth` as nginx asks it.
fn http_auth(g: &Gatehouse, path: &str, auth: Option<&str>, client_ip: &str) -> HttpResponse {
    let mut headers = vec![
        ("X-Original-Method", "GET"),
        ("X-Original-URI", path),
        ("X-Forwarded-For", client_ip),
    ];
    if let Some(a) = auth {
        headers.push(("Authorization", a));
    }
    http_request(g.http_addr, "GET", "/auth", &headers).expect("an answer from /auth")
}

/// The gRPC door: the HTTP status Envoy would send, and the denial's headers.
async fn grpc_auth(g: &Gatehouse, path: &str, auth: &str) -> (i32, u16, HashMap<String, String>) {
    let headers: HashMap<String, String> = [("authorization".to_owned(), auth.to_owned())].into();
    let request = CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    path: path.into(),
                    host: "app.example".into(),
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    let mut client = AuthorizationClient::connect(format!("http://{}", g.grpc_addr))
        .await
        .expect("connect to the gRPC door");
    let resp = client.check(request).await.expect("Check").into_inner();
    let code = resp.status.map(|s| s.code).unwrap_or(-1);
    match resp.http_response {
        Some(PbHttpResponse::DeniedResponse(d)) => {
            let status = d.status.map(|s| s.code).unwrap_or_default() as u16;
            let headers = d
                .headers
                .into_iter()
                .filter_map(|h| h.header)
                .map(|h| (h.key, h.value))
                .collect();
            (code, status, headers)
        }
        _ => (code, 200, HashMap::new()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_one_burst_through_both_doors() {
    let r = start(3, SHARED_URL, &config(&unique_prefix("share"), ""));
    let alice = bearer("alice", None);
    let mut statuses = Vec::new();
    for i in 0..12 {
        let g = &r.nodes[i % 3];
        if i % 2 == 0 {
            let resp = http_auth(g, "/api/things", Some(&alice), "192.0.2.1");
            statuses.push(resp.status);
            if resp.status != 200 {
                assert_eq!(
                    resp.status, 403,
                    "nginx's family gets 403 + the real status"
                );
                assert_eq!(resp.header("x-gatehouse-status"), Some("429"));
                assert_eq!(resp.header("x-gatehouse-error"), Some("rate_limited"));
                let retry: u64 = resp.header("retry-after").unwrap().parse().unwrap();
                assert!((1..=60).contains(&retry), "{retry}");
                assert!(resp.header("ratelimit-policy").unwrap().contains("q=5"));
                assert_eq!(resp.json()["error"], "rate_limited");
            }
        } else {
            let (code, status, headers) = grpc_auth(g, "/api/things", &alice).await;
            statuses.push(status);
            if status != 200 {
                assert_eq!(code, 8, "RESOURCE_EXHAUSTED");
                assert_eq!(status, 429);
                assert!(headers.contains_key("retry-after"), "{headers:?}");
                assert_eq!(
                    headers.get("x-gatehouse-error").map(String::as_str),
                    Some("rate_limited")
                );
            }
        }
    }
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(admitted, BURST, "{statuses:?}");
    assert!(
        statuses[..BURST].iter().all(|s| *s == 200),
        "the first {BURST} pass, then none: {statuses:?}"
    );
    // The Forwarded family (Traefik, Caddy, Envoy's HTTP mode) sees 429 as is.
    let resp = http_request(
        r.nodes[0].http_addr,
        "GET",
        "/auth",
        &[
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Uri", "/api/things"),
            ("Authorization", &alice),
        ],
    )
    .unwrap();
    assert_eq!(resp.status, 429);
    assert_eq!(resp.header("x-gatehouse-status"), None);
    assert!(resp.header("retry-after").is_some());
    assert!(
        resp.header("ratelimit")
            .unwrap()
            .starts_with("\"per-user\";r=0;t=")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_cost_no_quota() {
    let r = start(2, SHARED_URL, &config(&unique_prefix("refusals"), ""));
    let bob = bearer("bob", None);
    // 403: bob is no admin, on a rule that spends from per-user.
    for g in &r.nodes {
        for _ in 0..10 {
            let resp = http_auth(g, "/admin/panel", Some(&bob), "192.0.2.2");
            assert_eq!(resp.status, 403);
            assert_eq!(resp.header("x-gatehouse-error"), Some("forbidden"));
        }
    }
    // 401: a token that does not verify, and no token at all.
    let forged = format!(
        "Bearer {}",
        hs256("not-the-secret-at-all-0123456789", &user_claims("bob", 600))
    );
    for _ in 0..10 {
        assert_eq!(
            http_auth(&r.nodes[0], "/api/x", Some(&forged), "192.0.2.2").status,
            401
        );
        assert_eq!(
            http_auth(&r.nodes[1], "/api/x", None, "192.0.2.2").status,
            401
        );
    }
    // Bob's whole burst is still there.
    let admitted = (0..BURST + 3)
        .filter(|i| http_auth(&r.nodes[i % 2], "/api/x", Some(&bob), "192.0.2.2").status == 200)
        .count();
    assert_eq!(admitted, BURST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_callers_are_limited_by_the_address_the_proxy_added() {
    let r = start(2, SHARED_URL, &config(&unique_prefix("ip"), ""));
    // Each client claims a fresh address first; only the last entry, which
    // the proxy appended, counts.
    let statuses: Vec<u16> = (0..6)
        .map(|i| {
            let xff = format!("10.0.0.{i}, 198.51.100.9");
            http_auth(&r.nodes[i % 2], "/public/page", None, &xff).status
        })
        .collect();
    assert_eq!(
        statuses,
        [200, 200, 200, 403, 403, 403],
        "burst 3 per address"
    );
    assert_eq!(
        http_auth(&r.nodes[0], "/public/page", None, "198.51.100.10").status,
        200,
        "another address has its own quota"
    );
}

#[test]
fn nginx_restores_the_429_with_its_headers_and_the_upstream_sees_nothing() {
    let r = start(2, SHARED_URL, &config(&unique_prefix("nginx"), ""));
    let app = EchoUpstream::start();
    let listen = free_addr();
    let conf = proxy_config(&r.config, "nginx", r.nodes[0].http_addr, app.addr, listen);
    let nginx = Nginx::start_conf(&conf, listen);
    let carol = bearer("carol", None);
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..BURST + 2 {
        let resp = http_request(
            nginx.addr,
            "GET",
            "/api/things",
            &[("Authorization", &carol)],
        )
        .expect("an answer from nginx");
        statuses.push(resp.status);
        last = Some(resp);
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 429, 429],
        "nginx log:\n{}",
        nginx.error_log()
    );
    let last = last.unwrap();
    assert_eq!(last.header("x-gatehouse-error"), Some("rate_limited"));
    assert_eq!(last.header("content-type"), Some("application/json"));
    assert_eq!(last.json()["error"], "rate_limited");
    let retry: u64 = last.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(
        last.header("ratelimit")
            .unwrap()
            .starts_with("\"per-user\";")
    );
    assert_eq!(
        last.header("ratelimit-policy"),
        Some("\"per-user\";q=5;w=60")
    );
    assert_eq!(
        app.hits(),
        BURST,
        "refused requests never reach the upstream"
    );
    // A plain 403 stays a 403 without rate-limit headers.
    let resp = http_request(
        nginx.addr,
        "GET",
        "/admin/x",
        &[("Authorization", &bearer("dan", None))],
    )
    .unwrap();
    assert_eq!(resp.status, 403);
    assert_eq!(resp.header("retry-after"), None);
    assert_eq!(resp.json()["error"], "forbidden");
}

#[test]
fn without_redis_each_replica_limits_alone_then_sharing_resumes() {
    let mut redis = RedisServer::start();
    let r = start(2, &redis.url(), &config(&unique_prefix("outage"), ""));
    let erin = bearer("erin", None);
    let both = |who: &str, n: usize| -> Vec<u16> {
        (0..n)
            .map(|i| http_auth(&r.nodes[i % 2], "/api/x", Some(who), "192.0.2.3").status)
            .collect()
    };
    // Shared: one burst across both.
    let shared = both(&erin, 8);
    assert_eq!(
        shared.iter().filter(|s| **s == 200).count(),
        BURST,
        "{shared:?}"
    );

    redis.stop();
    let frank = bearer("frank", None);
    let outage = both(&frank, 20);
    assert!(
        outage.iter().all(|s| *s == 200 || *s == 403),
        "no 5xx while Redis is away: {outage:?}"
    );
    assert_eq!(
        outage.iter().filter(|s| **s == 200).count(),
        2 * BURST,
        "each replica admits one burst: {outage:?}"
    );
    for g in &r.nodes {
        assert_eq!(
            common::http_get(g.http_addr, "/readyz", &[]).map(|(s, _)| s),
            Some(200),
            "readiness never depends on Redis"
        );
    }
    let metrics = common::http_get(r.nodes[0].http_addr, "/metrics", &[])
        .unwrap()
        .1;
    assert!(metrics.contains("gatehouse_store_degraded 1"), "{metrics}");

    redis.restart();
    // Each breaker probes again after its jittered cooldown; a request
    // that spends quota is what probes, so keep asking both replicas.
    let grace = bearer("grace", None);
    let deadline = Instant::now() + Duration::from_secs(10);
    for round in 0.. {
        let back = r.nodes.iter().enumerate().all(|(i, g)| {
            let who = bearer(&format!("probe-{i}-{round}"), None);
            let _ = http_auth(g, "/api/probe", Some(&who), "192.0.2.4");
            common::http_get(g.http_addr, "/metrics", &[])
                .is_some_and(|(_, m)| m.contains("gatehouse_store_degraded 0"))
        });
        if back {
            break;
        }
        assert!(Instant::now() < deadline, "Redis never came back into use");
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = both(&grace, 8);
    assert_eq!(
        after.iter().filter(|s| **s == 200).count(),
        BURST,
        "shared again: {after:?}"
    );
}

/// `gatehouse proxy-config TARGET` for these replicas.
fn proxy_config(
    config: &Path,
    target: &str,
    authz: SocketAddr,
    app: SocketAddr,
    listen: SocketAddr,
) -> String {
    let out = std::process::Command::new(gatehouse_bin())
        .args(["proxy-config", target, "--config"])
        .arg(config)
        .args([
            "--authz-url",
            &format!("http://{authz}"),
            "--upstream",
            &format!("http://{app}"),
            "--listen",
            &listen.to_string(),
        ])
        .env("GH_TEST_SECRET", TEST_SECRET)
        .env("REDIS_URL", SHARED_URL)
        .output()
        .expect("run proxy-config");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// A refused request through each printed proxy configuration reaches the
/// client as a 429 with `Retry-After`, the IETF fields and gatehouse's
/// JSON body, and never reaches the upstream.
#[test]
fn every_printed_proxy_passes_the_429_on() {
    use common::stack::Stack;
    let prefix = unique_prefix("proxies");
    let config = config(&prefix, "");
    let stack = Stack::start_with_env(
        &config,
        &[("GH_TEST_SECRET", TEST_SECRET), ("REDIS_URL", SHARED_URL)],
    );
    for target in ["nginx", "caddy", "traefik", "envoy", "envoy-http"] {
        // Each proxy gets a caller of its own, so each starts a fresh burst.
        let who = bearer(&format!("caller-{target}"), None);
        let before = stack.app.hits();
        // The proxy runs until the end of this iteration.
        let (addr, _proxy) = stack.start_printed(target);
        let mut statuses = Vec::new();
        let mut last = None;
        for _ in 0..BURST + 2 {
            let resp = (0..50)
                .find_map(|_| {
                    let r = http_request(addr, "GET", "/api/things", &[("Authorization", &who)]);
                    if r.is_none() {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    r
                })
                .unwrap_or_else(|| panic!("{target}: no answer"));
            statuses.push(resp.status);
            last = Some(resp);
        }
        assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429], "{target}");
        let last = last.unwrap();
        assert_eq!(
            last.json()["error"],
            "rate_limited",
            "{target}: {}",
            last.body
        );
        let retry: u64 = last
            .header("retry-after")
            .unwrap_or_else(|| panic!("{target}: no Retry-After in {:?}", last.headers))
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry), "{target}: {retry}");
        assert_eq!(
            last.header("ratelimit-policy"),
            Some("\"per-user\";q=5;w=60"),
            "{target}: {:?}",
            last.headers
        );
        assert!(
            last.header("ratelimit")
                .is_some_and(|v| v.starts_with("\"per-user\";r=0;t=")),
            "{target}: {:?}",
            last.headers
        );
        assert_eq!(
            stack.app.hits() - before,
            BURST,
            "{target}: refused requests reached the upstream"
        );
    }
}

/// Anonymous callers are counted by the address each printed proxy saw,
/// never by an `X-Forwarded-For` the client sent: a client that claims a
/// new address on every request still gets one burst.
#[test]
fn every_printed_proxy_counts_the_address_it_saw_not_the_clients_claim() {
    use common::stack::Stack;
    let prefix = unique_prefix("client-ip");
    let config = format!(
        "providers:
  - name: test
    secret_env: GH_TEST_SECRET
redis:
  key_prefix: \"{prefix}\"
admin:
  addr: 127.0.0.1:0
rate_limits:
  policies:
    per-ip: {{ key: [client_ip], rate: 3/2s, burst: 3 }}
rules:
  - match: {{ path_prefix: /public }}
    access: public
    rate_limit: [per-ip]
default_access: authenticated
"
    );
    let stack = Stack::start_with_env(
        &config,
        &[("GH_TEST_SECRET", TEST_SECRET), ("REDIS_URL", SHARED_URL)],
    );
    for target in ["nginx", "caddy", "traefik", "envoy", "envoy-http"] {
        let (listen, _proxy) = stack.start_printed(target);
        // Every proxy reaches gatehouse from 127.0.0.1: let the previous
        // proxy's burst refill.
        std::thread::sleep(Duration::from_millis(2100));
        let before = stack.app.hits();
        let statuses: Vec<u16> = (0..6)
            .map(|i| {
                let claimed = format!("203.0.113.{i}");
                (0..50)
                    .find_map(|_| {
                        let r = http_request(
                            listen,
                            "GET",
                            "/public/page",
                            &[("X-Forwarded-For", &claimed), ("X-Real-IP", &claimed)],
                        );
                        if r.is_none() {
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        r
                    })
                    .unwrap_or_else(|| panic!("{target}: no answer"))
                    .status
            })
            .collect();
        assert_eq!(statuses, [200, 200, 200, 429, 429, 429], "{target}");
        assert_eq!(stack.app.hits() - before, 3, "{target}");
    }
}
