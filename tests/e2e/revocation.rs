//! A revocation through real proxies: two replicas sharing Redis, one
//! behind Envoy (gRPC `ext_authz`), one behind nginx (`auth_request`, the
//! shipped configuration). A token both have cached is refused through
//! both within a second of `gatehouse revoke`, with the `token_revoked`
//! body, and never reaches the upstream again; other callers pass.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::envoy::{
    TEST_SECRET, gatehouse_env, gatehouse_yaml, hs256, user_claims, write_config,
};
use crate::common::redis_server::{self, SHARED_REDIS_URL, unique_prefix};
use crate::common::{
    EchoUpstream, Envoy, Gatehouse, HttpResponse, Nginx, gatehouse_bin, http_request,
};

#[test]
fn a_cached_token_revoked_is_refused_through_envoy_and_nginx() {
    let prefix = unique_prefix("e2e");
    let config = write_config(&gatehouse_yaml(&format!(
        "shutdown_delay: 0s\nredis:\n  key_prefix: \"{prefix}\"\nadmin:\n  addr: 127.0.0.1:0\n"
    )));
    let mut env = gatehouse_env();
    env.insert("REDIS_URL".into(), SHARED_REDIS_URL.into());
    let upstream = EchoUpstream::start();
    let behind_envoy = Gatehouse::start(Some(&config), &env);
    let behind_nginx = Gatehouse::start(Some(&config), &env);
    for g in [&behind_envoy, &behind_nginx] {
        assert!(
            g.wait_ready(Duration::from_secs(10)),
            "{}",
            g.proc.log_text()
        );
    }
    let envoy = Envoy::start(behind_envoy.grpc_addr, upstream.addr);
    let nginx = Nginx::start(behind_nginx.http_addr, upstream.addr);
    let alice = format!("Bearer {}", hs256(TEST_SECRET, &user_claims("alice", 300)));
    let bob = format!("Bearer {}", hs256(TEST_SECRET, &user_claims("bob", 300)));
    let through_envoy =
        |auth: &str| envoy.request("GET", "/api/things", &[("authorization", auth)]);
    let through_nginx = |auth: &str| {
        http_request(nginx.addr, "GET", "/api/things", &[("authorization", auth)])
            .unwrap_or_else(|| panic!("nginx did not answer:\n{}", nginx.error_log()))
    };
    // Allowed, and so cached, by both replicas.
    for _ in 0..2 {
        assert_eq!(through_envoy(&alice).status, 200);
        assert_eq!(through_nginx(&alice).status, 200);
    }

    let out = Command::new(gatehouse_bin())
        .args(["revoke", "--sub", "alice", "--config"])
        .arg(&config)
        .env_remove("GATEHOUSE_CONFIG")
        .envs(&env)
        .stdin(Stdio::null())
        .output()
        .expect("run gatehouse revoke");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hits = upstream.hits();
    let revoked = |r: &HttpResponse| {
        r.status == 401
            && serde_json::from_str::<serde_json::Value>(&r.body)
                .is_ok_and(|b| b["error"] == "token_revoked")
    };
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let (e, n) = (through_envoy(&alice), through_nginx(&alice));
        if revoked(&e) && revoked(&n) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still allowed a second after the revocation: Envoy {} {}, nginx {} {}",
            e.status,
            e.body,
            n.status,
            n.body
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        upstream.hits(),
        hits,
        "a revoked caller reached the upstream"
    );
    assert_eq!(through_envoy(&bob).status, 200);
    assert_eq!(through_nginx(&bob).status, 200);
    redis_server::clean(SHARED_REDIS_URL, &prefix);
}
