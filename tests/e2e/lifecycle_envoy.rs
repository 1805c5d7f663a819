//! The lifecycle under load through a real Envoy: SIGTERM drains without a
//! failed check before the exit, SIGHUP swaps rules without a failed
//! request, and a broken file on SIGHUP keeps the running configuration.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::envoy::{
    TEST_SECRET, gatehouse_env, gatehouse_yaml, hs256, upstream_header, user_claims, write_config,
};
use common::{EchoUpstream, Envoy, Gatehouse};

/// One request's outcome under load.
#[derive(Debug, Clone)]
struct Outcome {
    /// When the request was sent.
    started: Instant,
    /// When its answer arrived.
    at: Instant,
    path: &'static str,
    status: u16,
    /// `x-user-id` as the upstream saw it.
    user: Vec<String>,
    /// For a failure: the answer's body and headers.
    detail: String,
}

/// Runs `threads` loops of requests through `envoy` until `stop`.
fn load(
    envoy: std::net::SocketAddr,
    threads: usize,
    stop: Arc<AtomicBool>,
    results: Arc<Mutex<Vec<Outcome>>>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..threads)
        .map(|i| {
            let (stop, results) = (stop.clone(), results.clone());
            std::thread::spawn(move || {
                let auth = format!("Bearer {}", hs256(TEST_SECRET, &user_claims("loader", 600)));
                let mut n = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let (path, headers): (&'static str, Vec<(&str, &str)>) =
                        if (i + n).is_multiple_of(2) {
                            ("/api/items", vec![("authorization", &auth)])
                        } else {
                            ("/public", vec![])
                        };
                    let started = Instant::now();
                    let outcome = match common::http_request(envoy, "GET", path, &headers) {
                        Some(r) => Outcome {
                            started,
                            at: Instant::now(),
                            path,
                            status: r.status,
                            user: if r.status == 200 {
                                upstream_header(&r, "x-user-id")
                            } else {
                                Vec::new()
                            },
                            detail: if r.status == 200 {
                                String::new()
                            } else {
                                format!("{:?} {}", r.headers, r.body)
                            },
                        },
                        None => Outcome {
                            started,
                            at: Instant::now(),
                            path,
                            status: 0,
                            user: Vec::new(),
                            detail: "no answer".to_owned(),
                        },
                    };
                    results.lock().unwrap().push(outcome);
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        })
        .collect()
}

fn start(extra: &str) -> (EchoUpstream, Gatehouse, Envoy, std::path::PathBuf) {
    let upstream = EchoUpstream::start();
    let config = write_config(&gatehouse_yaml(extra));
    let gatehouse = Gatehouse::start(Some(&config), &gatehouse_env());
    assert!(
        gatehouse.wait_ready(Duration::from_secs(10)),
        "{}",
        gatehouse.proc.log_text()
    );
    let envoy = Envoy::start(gatehouse.grpc_addr, upstream.addr);
    assert!(
        envoy.wait_gatehouse_health(Duration::from_secs(10), |h| h == "healthy"),
        "Envoy never saw gatehouse healthy: {}",
        envoy.gatehouse_health()
    );
    (upstream, gatehouse, envoy, config)
}

#[test]
fn sigterm_under_load_goes_unhealthy_keeps_answering_and_exits_zero() {
    let delay = Duration::from_secs(4);
    let (_upstream, mut gatehouse, envoy, _config) =
        start("shutdown_delay: 4s\nshutdown_grace: 5s\n");
    let stop = Arc::new(AtomicBool::new(false));
    let results = Arc::new(Mutex::new(Vec::new()));
    let threads = load(envoy.addr, 4, stop.clone(), results.clone());
    std::thread::sleep(Duration::from_millis(800));

    gatehouse.proc.signal("TERM");
    let term = Instant::now();
    // Readiness flips at once.
    let mut readyz = 0;
    while term.elapsed() < Duration::from_millis(500) {
        if let Some((s, _)) = common::http_get(gatehouse.http_addr, "/readyz", &[]) {
            readyz = s;
            if s == 503 {
                break;
            }
        }
    }
    assert_eq!(readyz, 503, "/readyz still ready after SIGTERM");
    // Envoy's active gRPC health check sees NOT_SERVING well within the delay.
    assert!(
        envoy.wait_gatehouse_health(Duration::from_millis(2500), |h| h
            .contains("failed_active_hc")),
        "Envoy did not see gatehouse go unhealthy: {}",
        envoy.gatehouse_health()
    );
    // Load keeps running through (almost) the whole delay.
    while term.elapsed() < delay - Duration::from_millis(600) {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let code = gatehouse.proc.wait_exit(Duration::from_secs(15));
    let exited = term.elapsed();
    assert_eq!(code, Some(0), "{}", gatehouse.proc.log_text());
    assert!(
        exited >= delay,
        "exited after {exited:?}, before the shutdown delay"
    );

    let results = results.lock().unwrap();
    let after_term = results.iter().filter(|o| o.at > term).count();
    assert!(
        after_term > 20,
        "too little load during the drain: {after_term}"
    );
    let failed: Vec<_> = results
        .iter()
        .filter(|o| o.status != 200 || (o.path == "/api/items" && o.user != ["loader"]))
        .collect();
    assert!(failed.is_empty(), "failed during the drain: {failed:?}");
}

#[test]
fn second_sigterm_skips_the_delay() {
    let (_upstream, mut gatehouse, _envoy, _config) =
        start("shutdown_delay: 30s\nshutdown_grace: 5s\n");
    gatehouse.proc.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    assert!(gatehouse.proc.is_running(), "exited before the delay");
    gatehouse.proc.signal("TERM");
    assert_eq!(gatehouse.proc.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn sighup_changes_a_rule_without_failed_requests() {
    let (_upstream, gatehouse, envoy, config) = start("");
    let stop = Arc::new(AtomicBool::new(false));
    let results = Arc::new(Mutex::new(Vec::new()));
    let threads = load(envoy.addr, 4, stop.clone(), results.clone());
    std::thread::sleep(Duration::from_millis(600));

    // /public becomes authenticated.
    let text = gatehouse_yaml("").replace("access: public", "access: authenticated");
    std::fs::write(&config, text).unwrap();
    gatehouse.proc.signal("HUP");
    let hup = Instant::now();
    let mut switched = false;
    while hup.elapsed() < Duration::from_secs(10) {
        if envoy.request("GET", "/public", &[]).status == 401 {
            switched = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        switched,
        "the new rule never applied:\n{}",
        gatehouse.proc.log_text()
    );
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let results = results.lock().unwrap();
    for o in results.iter() {
        match o.path {
            "/api/items" => assert!(
                o.status == 200 && o.user == ["loader"],
                "authenticated request failed during reload: {o:?}"
            ),
            _ => assert!(
                o.status == 200 || o.status == 401,
                "public request failed during reload: {o:?}"
            ),
        }
    }
    // Once the new rule answered, no request sent after that saw the old one
    // (requests already in flight at the swap may still carry either).
    let first_401 = results
        .iter()
        .filter(|o| o.path == "/public" && o.status == 401)
        .map(|o| o.at)
        .min()
        .expect("some /public request saw the new rule");
    assert!(
        results
            .iter()
            .all(|o| !(o.path == "/public" && o.started > first_401 && o.status == 200)),
        "old and new rules alternated"
    );
    assert!(
        results
            .iter()
            .any(|o| o.path == "/public" && o.status == 200)
    );
}

#[test]
fn broken_file_on_sighup_keeps_the_running_configuration() {
    let (_upstream, gatehouse, envoy, config) = start("");
    std::fs::write(
        &config,
        gatehouse_yaml("").replace("access: public", "access: sometimes"),
    )
    .unwrap();
    gatehouse.proc.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gatehouse.proc.log_text().contains("reload failed") {
        assert!(
            Instant::now() < deadline,
            "no reload error logged:\n{}",
            gatehouse.proc.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = gatehouse.proc.log_text();
    assert!(
        log.contains("rules[0]"),
        "the key at fault is not named:\n{log}"
    );
    assert_eq!(envoy.request("GET", "/public", &[]).status, 200);
    let auth = format!("Bearer {}", hs256(TEST_SECRET, &user_claims("u", 60)));
    let resp = envoy.request("GET", "/api", &[("authorization", &auth)]);
    assert_eq!(resp.status, 200);
    assert_eq!(
        common::http_get(gatehouse.http_addr, "/readyz", &[])
            .unwrap()
            .0,
        200
    );
}

/// Three replicas behind the printed Envoy configuration, under load: one
/// is sent SIGTERM, another is killed outright. Health checks, outlier
/// detection and the check's retry policy keep every request answered,
/// and answers never stall for long while traffic moves to the survivor.
#[test]
fn replicas_that_go_away_cost_no_request() {
    let app = EchoUpstream::start();
    let config = write_config(&gatehouse_yaml("shutdown_delay: 2s\nshutdown_grace: 2s\n"));
    let nodes: Vec<Gatehouse> = (0..3)
        .map(|_| {
            let g = Gatehouse::start(Some(&config), &gatehouse_env());
            assert!(
                g.wait_ready(Duration::from_secs(20)),
                "{}",
                g.proc.log_text()
            );
            g
        })
        .collect();
    let listen = common::free_addr();
    let out = std::process::Command::new(common::gatehouse_bin())
        .args(["proxy-config", "envoy", "--config"])
        .arg(&config)
        .args([
            "--authz-url",
            &nodes[0].grpc_addr.to_string(),
            "--upstream",
            &format!("http://{}", app.addr),
            "--listen",
            &listen.to_string(),
        ])
        .env("GH_TEST_SECRET", TEST_SECRET)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    // The printed cluster names one address; give it all three.
    let endpoint = |port: u16| {
        format!(
            "              - endpoint:\n                  address:\n                    \
             socket_address: {{ address: 127.0.0.1, port_value: {port} }}\n"
        )
    };
    let first = endpoint(nodes[0].grpc_addr.port());
    assert!(printed.contains(&first), "{printed}");
    let all: String = nodes.iter().map(|g| endpoint(g.grpc_addr.port())).collect();
    let yaml = printed.replacen(&first, &all, 1);
    let envoy = Envoy::start_text(&yaml, listen, common::free_addr());
    let (_, clusters) = common::http_get(envoy.admin, "/clusters", &[]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while common::http_get(envoy.admin, "/clusters", &[])
        .map(|(_, b)| b.matches("::health_flags::healthy").count())
        .unwrap_or(0)
        < 4
    {
        // Three gatehouse addresses and the upstream.
        assert!(Instant::now() < deadline, "not all healthy:\n{clusters}");
        std::thread::sleep(Duration::from_millis(100));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let results = Arc::new(Mutex::new(Vec::new()));
    let t0 = Instant::now();
    let workers = load(envoy.addr, 4, stop.clone(), results.clone());
    std::thread::sleep(Duration::from_secs(1));
    nodes[1].proc.signal("TERM");
    std::thread::sleep(Duration::from_millis(1500));
    nodes[2].proc.signal("KILL");
    let killed_at = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    let results = results.lock().unwrap().clone();
    let failed: Vec<&Outcome> = results.iter().filter(|o| o.status != 200).collect();
    let stats = common::http_get(envoy.admin, "/stats?filter=cluster.gatehouse.(upstream_rq_retry|upstream_cx_connect_fail|upstream_rq_pending_failure|outlier|upstream_rq_rx_reset|upstream_cx_destroy|upstream_rq_total|upstream_rq_timeout|lb_healthy_panic|health_check)", &[])
        .map(|(_, b)| b)
        .unwrap_or_default();
    let when: Vec<String> = failed
        .iter()
        .take(20)
        .map(|o| {
            format!(
                "{:+.3}s {} {}",
                o.started.duration_since(t0).as_secs_f64(),
                o.status,
                o.detail
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed (TERM at +1s, KILL at +2.5s), at {when:?}, e.g. {:?}\nstats:\n{stats}\nenvoy:\n{}",
        failed.len(),
        results.len(),
        failed.first(),
        envoy.proc.log_text()
    );
    assert!(results.len() > 200, "too little load: {}", results.len());
    let slowest = results
        .iter()
        .map(|o| o.at.duration_since(o.started))
        .max()
        .unwrap();
    assert!(
        slowest < Duration::from_secs(2),
        "a request took {slowest:?}"
    );
    let after_kill = results.iter().filter(|o| o.started > killed_at).count();
    assert!(
        after_kill > 100,
        "traffic did not continue on the survivor: {after_kill}"
    );
    assert!(
        results
            .iter()
            .filter(|o| o.path == "/api/items")
            .all(|o| o.user == ["loader"]),
        "every allowed request carried the caller"
    );
}
