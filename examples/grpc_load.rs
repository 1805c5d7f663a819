//! gRPC load generator for the Envoy door: drives
//! `envoy.service.auth.v3.Authorization/Check` directly, with rotating
//! tokens, and prints calls/s, latency percentiles and answers by status.
//!
//! ```text
//! # against a running gatehouse (HS256 provider with this secret):
//! cargo run --release --example grpc_load -- load --addr 127.0.0.1:9001 \
//!     --secret "$BETTER_AUTH_SECRET" --distinct 10000 --duration 10s
//! # tokens made elsewhere (EdDSA, RS256…), one per line:
//! cargo run --release --example grpc_load -- load --tokens tokens.txt
//! # the baseline: a no-op Check server that allows everything
//! cargo run --release --example grpc_load -- noop --addr 127.0.0.1:9101
//! ```
//!
//! It measures the gRPC door alone; Envoy in front is measured with wrk.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use clap::{Parser, Subcommand};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse, OkHttpResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use hmac::Mac;
use tonic::transport::Channel;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Drive Check calls at a server.
    Load(LoadArgs),
    /// Serve a Check that always allows (the transport ceiling).
    Noop {
        #[arg(long, default_value = "127.0.0.1:9101")]
        addr: std::net::SocketAddr,
    },
}

#[derive(Parser)]
struct LoadArgs {
    #[arg(long, default_value = "127.0.0.1:9001")]
    addr: std::net::SocketAddr,
    /// Sign HS256 tokens with this secret (`sub` user0…userN).
    #[arg(long)]
    secret: Option<String>,
    /// Issuer/audience to put in generated tokens.
    #[arg(long)]
    iss: Option<String>,
    /// Read tokens from this file, one per line (overrides --secret).
    #[arg(long)]
    tokens: Option<std::path::PathBuf>,
    /// Number of distinct generated tokens, used in rotation.
    #[arg(long, default_value_t = 10_000)]
    distinct: usize,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// HTTP/2 connections the calls are spread over.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Untimed warm-up first (fills the token cache).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    #[arg(long, default_value = "/api/items")]
    path: String,
}

fn hs256(secret: &[u8], claims: &serde_json::Value) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let input = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(&mac.finalize().into_bytes()))
}

fn tokens(args: &LoadArgs) -> Vec<String> {
    if let Some(path) = &args.tokens {
        let text = std::fs::read_to_string(path).expect("read --tokens file");
        return text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
    }
    let Some(secret) = &args.secret else {
        return Vec::new();
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    (0..args.distinct.max(1))
        .map(|i| {
            let mut claims = serde_json::json!({
                "sub": format!("user{i}"),
                "email": format!("user{i}@example.com"),
                "iat": now,
                "exp": now + 3600,
            });
            if let Some(iss) = &args.iss {
                claims["iss"] = iss.as_str().into();
                claims["aud"] = iss.as_str().into();
            }
            hs256(secret.as_bytes(), &claims)
        })
        .collect()
}

fn request(path: &str, token: Option<&str>) -> CheckRequest {
    let mut headers = std::collections::HashMap::new();
    if let Some(t) = token {
        headers.insert("authorization".to_owned(), format!("Bearer {t}"));
    }
    headers.insert("x-request-id".to_owned(), "load".to_owned());
    CheckRequest {
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
    }
}

async fn load(args: LoadArgs) {
    let tokens = Arc::new(tokens(&args));
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        let ch = Channel::from_shared(format!("http://{}", args.addr))
            .expect("address")
            .tcp_nodelay(true)
            .connect()
            .await
            .expect("connect");
        channels.push(ch);
    }
    for (phase, length) in [("warm-up", args.warmup), ("measure", args.duration)] {
        let until = Instant::now() + length;
        let started = Instant::now();
        let workers: Vec<_> = (0..args.concurrency.max(1))
            .map(|w| {
                let mut client = AuthorizationClient::new(channels[w % channels.len()].clone());
                let tokens = tokens.clone();
                let path = args.path.clone();
                tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut codes: BTreeMap<i32, u64> = BTreeMap::new();
                    let mut i = w;
                    while Instant::now() < until {
                        let token = (!tokens.is_empty()).then(|| tokens[i % tokens.len()].as_str());
                        i += 97;
                        let t0 = Instant::now();
                        let code = match client.check(request(&path, token)).await {
                            Ok(r) => r.into_inner().status.map_or(-1, |s| s.code),
                            Err(_) => -2,
                        };
                        lat.push(t0.elapsed());
                        *codes.entry(code).or_default() += 1;
                    }
                    (lat, codes)
                })
            })
            .collect();
        let mut lat = Vec::new();
        let mut codes: BTreeMap<i32, u64> = BTreeMap::new();
        for w in workers {
            let (l, c) = w.await.expect("worker");
            lat.extend(l);
            for (k, v) in c {
                *codes.entry(k).or_default() += v;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        lat.sort_unstable();
        let pct = |p: f64| {
            lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1e6)
        };
        println!(
            "{phase}: {} calls in {secs:.2}s = {:.0} calls/s; p50 {:.0}µs p99 {:.0}µs max {:.0}µs; \
             grpc codes (0 ok, 16 unauthenticated, -2 transport error): {codes:?}",
            lat.len(),
            lat.len() as f64 / secs,
            pct(0.50),
            pct(0.99),
            pct(1.0),
        );
    }
}

/// A Check that always allows: the ceiling of this transport.
struct Noop;

#[tonic::async_trait]
impl Authorization for Noop {
    async fn check(
        &self,
        _request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        Ok(tonic::Response::new(CheckResponse {
            status: Some(RpcStatus::default()),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse::default())),
            dynamic_metadata: None,
        }))
    }
}

fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        match cli.cmd {
            Cmd::Load(args) => load(args).await,
            Cmd::Noop { addr } => {
                println!("no-op Check server on {addr}");
                tonic::transport::Server::builder()
                    .tcp_nodelay(true)
                    .add_service(AuthorizationServer::new(Noop))
                    .serve(addr)
                    .await
                    .expect("serve");
            }
        }
    });
}
