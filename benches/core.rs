//! Criterion benchmarks of the transport-neutral core: what one decision
//! costs with the network taken away.
//!
//! - `decision/cached`: `Authorizer::check` on a warm token, through the
//!   whole `CheckInput` path (path normalization, rule lookup, extraction,
//!   token cache, path claims, identity headers, metrics, the log event).
//! - `decision/uncached`: the same with the token cache turned off.
//! - `verify/<alg>/gatehouse` beside `verify/<alg>/jsonwebtoken`: a cold
//!   `Verifier::verify` (no token cache involved) and a bare
//!   `jsonwebtoken::decode` of the same token with the same issuer,
//!   audience and `exp` checks, measured in the same run.
//! - `rules/100/*`: `RuleSet::find` over 100 compiled rules on a normalized
//!   path, for the last rule, a mid rule and a miss.
//! - `revocation/{none,empty,100k}`: the warm decision over 1,000
//!   rotating cached tokens without a revocation list (no Redis), with an
//!   empty one, and with 100,000 revocations loaded (25,000 each of
//!   subjects, jtis, session ids and session tokens, none matching), in
//!   the same run. Goal: 100k ≥ 0.98× empty, since a check is a few hash
//!   probes, not a call. Because criterion measures one setup after the
//!   other, and a shared machine drifts in between, the same three setups
//!   are also timed paired: 61 rounds, each running 5,000 decisions of
//!   every setup in turn (order rotated), the ratio taken per round and its
//!   median kept, written to `target/criterion/revocation/paired.json`.
//! - `grpc_allow/hand` beside `grpc_allow/prost`: the Envoy door's allow for
//!   a token with Better Auth-shaped claims, written by `wire::encode_allow`
//!   and by building the envoy-types message and encoding it with prost.
//!   The door does this once per verified token; the figure says whether
//!   the hand-written encoder pays for itself.
//!
//! Keys are generated here with aws-lc-rs; the key-set providers read them
//! from a JWKS file written to a temporary directory. Nothing here touches
//! the network. Goals: cached decision < 2 µs; cold verify ≤ 1.15× the raw
//! library call; 100 rules < 1 µs.

#[path = "../examples/support/keys.rs"]
mod keys;

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse::internals::Metrics;
use gatehouse::internals::Verifier;
use gatehouse::internals::{Access, Config, Env, LoadOptions};
use gatehouse::internals::{Authorizer, CheckInput, Door, Revocations, Shared};
use gatehouse::internals::{RawMatch, RawRule};
use gatehouse::internals::{RuleSet, normalize_path};
use http::{HeaderMap, HeaderValue};
use keys::{BenchAlg, SigningKey};
use serde_json::{Map, Value};

const AUDIENCE: &str = "https://app.bench";
const HS256_SECRET: &str = "bench-hs256-secret-of-thirty-two-bytes";

fn issuer(alg: BenchAlg) -> String {
    format!("https://{}.bench", alg.name().to_lowercase())
}

/// Runs a future that normally completes without waiting (a cache hit, a
/// local signature check) by polling it once; anything that does wait is
/// finished on the runtime, so the result is always correct.
fn run_now<F: Future>(rt: &tokio::runtime::Runtime, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => rt.block_on(fut),
    }
}

/// One key per benchmarked algorithm, and the config that trusts them.
struct Fixture {
    keys: Vec<SigningKey>,
    _dir: tempfile::TempDir,
    config_path: std::path::PathBuf,
    env: Env,
    rt: tokio::runtime::Runtime,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys: Vec<SigningKey> = BenchAlg::ALL
            .into_iter()
            .map(|alg| match alg {
                BenchAlg::HS256 => SigningKey::hmac("bench-hs256", HS256_SECRET.as_bytes()),
                _ => SigningKey::generate(alg, &format!("bench-{}", alg.name().to_lowercase()))
                    .expect("key"),
            })
            .collect();
        let mut yaml = String::from("providers:\n");
        let mut env = Env::default();
        for key in &keys {
            let name = key.alg.name().to_lowercase();
            yaml.push_str(&format!(
                "  - name: {name}\n    issuer: {}\n    audiences: [{AUDIENCE}]\n",
                issuer(key.alg)
            ));
            match key.secret() {
                Some(_) => {
                    env = env.with("BENCH_HS256_SECRET", HS256_SECRET);
                    yaml.push_str("    secret_env: BENCH_HS256_SECRET\n");
                }
                None => {
                    let file = dir.path().join(format!("{name}.jwks.json"));
                    std::fs::write(&file, keys::jwks(&[key]).to_string()).expect("write jwks");
                    yaml.push_str(&format!("    jwks_file: {}\n", file.display()));
                }
            }
        }
        yaml.push_str(concat!(
            "rules:\n",
            "  - match: { path: /healthz }\n",
            "    access: public\n",
            "  - match: { path: \"/api/{user_id}/**\", methods: [GET, POST] }\n",
            "    path_claims: { user_id: sub }\n",
            "default_access: authenticated\n",
        ));
        let config_path = dir.path().join("gatehouse.yaml");
        std::fs::write(&config_path, &yaml).expect("write config");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Self {
            keys,
            _dir: dir,
            config_path,
            env,
            rt,
        }
    }

    fn key(&self, alg: BenchAlg) -> &SigningKey {
        self.keys.iter().find(|k| k.alg == alg).expect("key")
    }

    /// A Better Auth-shaped token for user 1, signed with `alg`'s key.
    fn token(&self, alg: BenchAlg) -> String {
        let claims = keys::better_auth_claims(1, &issuer(alg), AUDIENCE, keys::now(), 3600);
        self.key(alg).sign(&claims).expect("sign")
    }

    fn config(&self, extra_yaml: &str) -> Arc<Config> {
        let path = if extra_yaml.is_empty() {
            self.config_path.clone()
        } else {
            let base = std::fs::read_to_string(&self.config_path).expect("read config");
            let path = self
                .config_path
                .with_file_name(format!("gatehouse-{}.yaml", extra_yaml.len()));
            std::fs::write(&path, format!("{base}{extra_yaml}")).expect("write config");
            path
        };
        let opts = LoadOptions {
            config_path: Some(path),
            env: self.env.clone(),
            ..LoadOptions::default()
        };
        Arc::new(Config::load(&opts).expect("bench config loads"))
    }

    fn authorizer(&self, extra_yaml: &str) -> Authorizer {
        self.authorizer_with(extra_yaml, Shared::default())
    }

    fn authorizer_with(&self, extra_yaml: &str, shared: Shared) -> Authorizer {
        let authorizer =
            Authorizer::with_shared(self.config(extra_yaml), Arc::new(Metrics::new()), shared)
                .expect("authorizer");
        self.rt.block_on(async {
            authorizer.start();
            assert!(
                authorizer
                    .verifier()
                    .wait_ready(Duration::from_secs(5))
                    .await,
                "keys loaded"
            );
        });
        authorizer
    }
}

fn check_input(token: &str) -> CheckInput {
    check_input_at(token, "/api/user00000001/profile?tab=1")
}

fn check_input_at(token: &str, path: &str) -> CheckInput {
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    headers.insert("user-agent", HeaderValue::from_static("bench/1"));
    CheckInput {
        door: Door::Grpc,
        method: "GET".into(),
        path: path.into(),
        host: Some("app.bench".into()),
        headers,
        request_id: Some("bench-request".into()),
        client_ip: None,
    }
}

/// A benchmark only measures an answer that is right: a token that is not
/// allowed would time the deny path. Such a benchmark is skipped, loudly,
/// and shows as "not measured" in the results.
fn sane(name: &str, ok: bool, what: &dyn std::fmt::Debug) -> bool {
    if !ok {
        eprintln!("SKIPPED {name}: the benchmark token was not accepted: {what:?}");
    }
    ok
}

fn bench_decision(c: &mut Criterion, fx: &Fixture) {
    let token = fx.token(BenchAlg::EdDSA);
    let input = check_input(&token);
    let mut group = c.benchmark_group("decision");

    let warm = fx.authorizer("");
    let first = run_now(&fx.rt, warm.check(&input));
    if sane("decision/cached", first.is_allow(), &first) {
        group.bench_function("cached", |b| {
            b.iter(|| run_now(&fx.rt, warm.check(black_box(&input))))
        });
    }

    let cold = fx.authorizer("token_cache: { enabled: false }\n");
    let first = run_now(&fx.rt, cold.check(&input));
    if sane("decision/uncached_eddsa", first.is_allow(), &first) {
        group.bench_function("uncached_eddsa", |b| {
            b.iter(|| run_now(&fx.rt, cold.check(black_box(&input))))
        });
    }
    group.finish();
}

/// Tokens of users 1..=n, each with the path its rule allows.
fn rotating_inputs(fx: &Fixture, n: u64) -> Vec<CheckInput> {
    let key = fx.key(BenchAlg::EdDSA);
    (1..=n)
        .map(|i| {
            let claims =
                keys::better_auth_claims(i, &issuer(BenchAlg::EdDSA), AUDIENCE, keys::now(), 3600);
            let token = key.sign(&claims).expect("sign");
            check_input_at(&token, &format!("/api/user{i:08}/profile?tab=1"))
        })
        .collect()
}

fn bench_revocation(c: &mut Criterion, fx: &Fixture) {
    let inputs = rotating_inputs(fx, 1000);
    let empty = Revocations::offline(Arc::new(Metrics::new()));
    let loaded = Revocations::offline(Arc::new(Metrics::new()));
    let far = i64::MAX;
    loaded.insert("sub", (0..25_000).map(|i| format!("revoked-user{i}")), far);
    loaded.insert("jti", (0..25_000).map(|i| format!("jti-{i}")), far);
    loaded.insert("sid", (0..25_000).map(|i| format!("sid-{i}")), far);
    loaded.insert("session", (0..25_000u64).map(|i| format!("{i:064x}")), far);
    let with = |list: &Arc<Revocations>| Shared {
        store: None,
        revocations: Some(list.clone()),
    };
    let setups = [
        ("none", fx.authorizer("")),
        ("empty", fx.authorizer_with("", with(&empty))),
        ("100k", fx.authorizer_with("", with(&loaded))),
    ];
    // Warm: every token verified once and cached.
    for (name, authz) in &setups {
        let warm = inputs
            .iter()
            .all(|input| run_now(&fx.rt, authz.check(input)).is_allow());
        if !sane(&format!("revocation/{name}"), warm, &name) {
            return;
        }
    }
    paired_revocation(fx, &setups, &inputs);
    let mut group = c.benchmark_group("revocation");
    for (name, authz) in &setups {
        let mut i = 0usize;
        group.bench_function(*name, |b| {
            b.iter(|| {
                i = (i + 1) % inputs.len();
                run_now(&fx.rt, authz.check(black_box(&inputs[i])))
            })
        });
    }
    group.finish();
}

/// The revocation setups timed in alternation (see the file's docs).
fn paired_revocation(fx: &Fixture, setups: &[(&str, Authorizer)], inputs: &[CheckInput]) {
    const ROUNDS: usize = 61;
    const BLOCK: usize = 5000;
    let mut per_call: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); setups.len()];
    let mut i = 0usize;
    for round in 0..ROUNDS {
        for k in 0..setups.len() {
            let s = (k + round) % setups.len();
            let authz = &setups[s].1;
            let started = std::time::Instant::now();
            for _ in 0..BLOCK {
                i = (i + 1) % inputs.len();
                black_box(run_now(&fx.rt, authz.check(black_box(&inputs[i]))));
            }
            per_call[s].push(started.elapsed().as_nanos() as f64 / BLOCK as f64);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let index = |name: &str| setups.iter().position(|(n, _)| *n == name);
    let (Some(empty), Some(loaded)) = (index("empty"), index("100k")) else {
        return;
    };
    let ratios: Vec<f64> = per_call[empty]
        .iter()
        .zip(&per_call[loaded])
        .map(|(e, l)| e / l)
        .collect();
    let mut doc = serde_json::Map::new();
    for (s, (name, _)) in setups.iter().enumerate() {
        doc.insert(format!("{name}_ns"), median(per_call[s].clone()).into());
    }
    let ratio = median(ratios);
    doc.insert("ratio_100k_vs_empty".into(), ratio.into());
    doc.insert("rounds".into(), ROUNDS.into());
    doc.insert("block".into(), BLOCK.into());
    eprintln!(
        "revocation/paired: 100k vs empty throughput {ratio:.3}× (median of {ROUNDS} rounds)"
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/criterion/revocation");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|t| std::path::PathBuf::from(t).join("criterion/revocation"))
        .unwrap_or(dir);
    let _ = std::fs::create_dir_all(&target);
    let _ = std::fs::write(
        target.join("paired.json"),
        serde_json::Value::Object(doc).to_string(),
    );
}

fn bench_verify(c: &mut Criterion, fx: &Fixture) {
    let config = fx.config("");
    let verifier = Verifier::new(&config.providers, Arc::new(Metrics::new())).expect("verifier");
    let shutdown = tokio_util::sync::CancellationToken::new();
    fx.rt.block_on(async {
        verifier.start(shutdown.child_token());
        assert!(
            verifier.wait_ready(Duration::from_secs(5)).await,
            "keys loaded"
        );
    });
    for alg in BenchAlg::ALL {
        let token = fx.token(alg);
        let mut group = c.benchmark_group(format!("verify/{}", alg.name()));
        let first = run_now(&fx.rt, verifier.verify(&token));
        if sane(
            &format!("verify/{}/gatehouse", alg.name()),
            first.is_ok(),
            &first.map(|_| ()),
        ) {
            group.bench_function("gatehouse", |b| {
                b.iter(|| run_now(&fx.rt, verifier.verify(black_box(&token))))
            });
        }

        let key = fx.key(alg).decoding_key().expect("decoding key");
        let mut validation = jsonwebtoken::Validation::new(alg.jsonwebtoken());
        validation.set_issuer(&[issuer(alg)]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp"]);
        validation.leeway = 60;
        assert!(
            jsonwebtoken::decode::<Map<String, Value>>(&token, &key, &validation).is_ok(),
            "raw decode of the {} token",
            alg.name()
        );
        group.bench_function("jsonwebtoken", |b| {
            b.iter(|| {
                jsonwebtoken::decode::<Map<String, Value>>(black_box(&token), &key, &validation)
            })
        });
        group.finish();
    }
    shutdown.cancel();
}

/// 100 rules of the shapes real configs use: templates with parameters and
/// `**`, prefixes, method lists and hosts.
fn hundred_rules() -> Vec<RawRule> {
    (0..100)
        .map(|i| {
            let mut m = RawMatch::default();
            match i % 4 {
                0 => m.path = Some(format!("/api/v1/service{i}/{{id}}/**")),
                1 => m.path_prefix = Some(format!("/static/bundle{i}")),
                2 => {
                    m.path = Some(format!("/api/v2/tenant{i}/{{tenant}}/items/{{item}}"));
                    m.methods = vec!["GET".into(), "PUT".into()];
                }
                _ => {
                    m.path = Some(format!("/admin/area{i}/**"));
                    m.hosts = vec!["admin.bench".into()];
                }
            }
            RawRule {
                match_: m,
                access: Some(if i % 5 == 0 {
                    Access::Public
                } else {
                    Access::Authenticated
                }),
                ..RawRule::default()
            }
        })
        .collect()
}

fn bench_rules(c: &mut Criterion) {
    let rules = RuleSet::compile(&hundred_rules(), Access::Authenticated, true).expect("rules");
    let last = normalize_path("/admin/area99/settings/users").expect("path");
    let mid = normalize_path("/api/v2/tenant50/acme/items/42").expect("path");
    let miss = normalize_path("/nothing/matches/this/path").expect("path");
    assert_eq!(
        rules.find("GET", Some("admin.bench"), &last, false).0.index,
        Some(99)
    );
    assert_eq!(
        rules.find("GET", Some("app.bench"), &mid, false).0.index,
        Some(50)
    );
    assert_eq!(
        rules.find("GET", Some("app.bench"), &miss, false).0.index,
        None
    );

    let mut group = c.benchmark_group("rules/100");
    group.bench_function("last_rule", |b| {
        b.iter(|| {
            rules
                .find("GET", Some("admin.bench"), black_box(&last), false)
                .0
                .index
        })
    });
    group.bench_function("mid_rule", |b| {
        b.iter(|| {
            rules
                .find("GET", Some("app.bench"), black_box(&mid), false)
                .0
                .index
        })
    });
    group.bench_function("no_match", |b| {
        b.iter(|| {
            rules
                .find("GET", Some("app.bench"), black_box(&miss), false)
                .0
                .index
        })
    });
    group.bench_function("normalize_and_last_rule", |b| {
        b.iter(|| {
            let path = normalize_path(black_box("/admin/area99/./settings/%75sers")).expect("path");
            rules.find("GET", Some("admin.bench"), &path, false).0.index
        })
    });
    group.finish();
}

fn bench_allow_encoding(c: &mut Criterion, fx: &Fixture) {
    use gatehouse::internals::Decision;
    use prost::Message;
    let authz = fx.authorizer("");
    let decision = run_now(
        &fx.rt,
        authz.check(&check_input(&fx.token(BenchAlg::EdDSA))),
    );
    let Decision::Allow(allow) = &decision else {
        sane("grpc_allow", false, &decision);
        return;
    };
    // The same message either way (the bytes may differ: prost writes a
    // Struct's map in hash order).
    let hand = gatehouse::internals::grpc::encode(&decision);
    let reference = gatehouse::internals::grpc::allow_message(allow);
    let decoded = envoy_types::pb::envoy::service::auth::v3::CheckResponse::decode(hand);
    if !sane("grpc_allow", decoded.as_ref() == Ok(&reference), &decoded) {
        return;
    }
    let mut group = c.benchmark_group("grpc_allow");
    group.bench_function("hand", |b| {
        b.iter(|| gatehouse::internals::grpc::encode(black_box(&decision)))
    });
    group.bench_function("prost", |b| {
        b.iter(|| gatehouse::internals::grpc::allow_message(black_box(allow)).encode_to_vec())
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let fx = Fixture::new();
    bench_allow_encoding(c, &fx);
    bench_decision(c, &fx);
    bench_revocation(c, &fx);
    bench_verify(c, &fx);
    bench_rules(c);
}

criterion_group! {
    name = core;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(core);
