//! A load generator for Envoy's `ext_authz` v3 `Check`, speaking gRPC
//! directly to an authorizer (gatehouse or a baseline) with no proxy.
//!
//! ```text
//! check_load --addr 127.0.0.1:9001 --tokens tokens.txt [--connections 4] \
//!     [--concurrency 64] [--duration 10] [--warmup 2] [--rate 0] [--once] \
//!     [--path /api/items] [--method GET] [--host app.bench]
//! ```
//!
//! Each call carries the next token from the file (rotating, one per line)
//! as `Authorization: Bearer …` in `attributes.request.http.headers`, as
//! Envoy sends it. `--once` sends every token exactly once and stops (used
//! to fill a cache with distinct tokens); `--rate` paces the total call rate
//! (0 = as fast as the server answers). It prints one line:
//! `calls=… ok=… denied=… errors=… secs=… rps=… p50_us=… p99_us=…`.
//! It only measures; it does not judge the answers beyond OK / not OK.
//!
//! The generator must cost less per call than the servers it drives, or it
//! measures itself. So requests are encoded from a few shared byte slices
//! (no per-call strings or maps) and only `CheckResponse.status.code` is
//! decoded; every other field of the answer is skipped on the wire. Both
//! message subsets below keep Envoy's field numbers.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tonic::transport::{Channel, Endpoint};

/// `envoy.service.auth.v3.CheckRequest`, as far as a load run fills it in.
#[derive(Clone, PartialEq, prost::Message)]
struct CheckRequest {
    #[prost(message, optional, tag = "1")]
    attributes: Option<AttributeContext>,
}

/// `AttributeContext` (`request`, field 4).
#[derive(Clone, PartialEq, prost::Message)]
struct AttributeContext {
    #[prost(message, optional, tag = "4")]
    request: Option<Request>,
}

/// `AttributeContext.Request` (`http`, field 2).
#[derive(Clone, PartialEq, prost::Message)]
struct Request {
    #[prost(message, optional, tag = "2")]
    http: Option<HttpRequest>,
}

/// `AttributeContext.HttpRequest`: method, the `headers` map (a map is a
/// repeated key/value entry on the wire), path, host, scheme, protocol.
#[derive(Clone, PartialEq, prost::Message)]
struct HttpRequest {
    #[prost(bytes = "bytes", tag = "2")]
    method: Bytes,
    #[prost(message, repeated, tag = "3")]
    headers: Vec<HeaderEntry>,
    #[prost(bytes = "bytes", tag = "4")]
    path: Bytes,
    #[prost(bytes = "bytes", tag = "5")]
    host: Bytes,
    #[prost(bytes = "bytes", tag = "6")]
    scheme: Bytes,
    #[prost(bytes = "bytes", tag = "10")]
    protocol: Bytes,
}

/// One entry of `HttpRequest.headers`.
#[derive(Clone, PartialEq, prost::Message)]
struct HeaderEntry {
    #[prost(bytes = "bytes", tag = "1")]
    key: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    value: Bytes,
}

/// `CheckResponse`, only `status` (field 1).
#[derive(Clone, PartialEq, prost::Message)]
struct CheckResponse {
    #[prost(message, optional, tag = "1")]
    status: Option<RpcStatus>,
}

/// `google.rpc.Status`, only `code`.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
}

/// Encodes [`CheckRequest`] and decodes [`CheckResponse`].
type LoadCodec = tonic_prost::ProstCodec<CheckRequest, CheckResponse>;

const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

/// Parsed command line.
#[derive(Clone)]
struct Args {
    addr: String,
    tokens: String,
    connections: usize,
    concurrency: usize,
    duration: Duration,
    warmup: Duration,
    /// Total calls per second; 0 means unpaced.
    rate: f64,
    once: bool,
    path: String,
    method: String,
    host: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: String::new(),
        tokens: String::new(),
        connections: 4,
        concurrency: 64,
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(2),
        rate: 0.0,
        once: false,
        path: "/api/items".into(),
        method: "GET".into(),
        host: "app.bench".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--once" {
            args.once = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let secs = |v: &str| -> Result<Duration, String> {
            v.parse::<f64>()
                .map(Duration::from_secs_f64)
                .map_err(|e| format!("{flag}: {e}"))
        };
        match flag.as_str() {
            "--addr" => args.addr = value,
            "--tokens" => args.tokens = value,
            "--connections" => {
                args.connections = value.parse().map_err(|e| format!("{flag}: {e}"))?
            }
            "--concurrency" => {
                args.concurrency = value.parse().map_err(|e| format!("{flag}: {e}"))?
            }
            "--duration" => args.duration = secs(&value)?,
            "--warmup" => args.warmup = secs(&value)?,
            "--rate" => args.rate = value.parse().map_err(|e| format!("{flag}: {e}"))?,
            "--path" => args.path = value,
            "--method" => args.method = value,
            "--host" => args.host = value,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.addr.is_empty() || args.tokens.is_empty() {
        return Err("--addr and --tokens are required".into());
    }
    args.connections = args.connections.max(1);
    args.concurrency = args.concurrency.max(1);
    Ok(args)
}

/// What one worker saw.
#[derive(Default)]
struct Tally {
    ok: u64,
    denied: u64,
    errors: u64,
    /// Latency of every recorded call, in microseconds.
    latencies_us: Vec<u32>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.denied += other.denied;
        self.errors += other.errors;
        self.latencies_us.extend(other.latencies_us);
    }
}

/// Shared by all workers of one phase.
struct Shared {
    args: Args,
    /// `Bearer <token>` values.
    tokens: Vec<Bytes>,
    /// The request's fixed parts, shared by every call.
    fixed: Fixed,
    /// The next token to send (wraps around unless `--once`).
    next: AtomicUsize,
}

/// Method, path and host as sent in both the fields and the pseudo-headers.
struct Fixed {
    method: Bytes,
    path: Bytes,
    host: Bytes,
}

fn entry(key: &'static str, value: &Bytes) -> HeaderEntry {
    HeaderEntry {
        key: Bytes::from_static(key.as_bytes()),
        value: value.clone(),
    }
}

fn check_request(fixed: &Fixed, authorization: &Bytes) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: fixed.method.clone(),
                    headers: vec![
                        entry("authorization", authorization),
                        entry(":authority", &fixed.host),
                        entry(":path", &fixed.path),
                        entry(":method", &fixed.method),
                    ],
                    path: fixed.path.clone(),
                    host: fixed.host.clone(),
                    scheme: Bytes::from_static(b"http"),
                    protocol: Bytes::from_static(b"HTTP/1.1"),
                }),
            }),
        }),
    }
}

async fn worker(
    shared: Arc<Shared>,
    channel: Channel,
    until: Option<Instant>,
    record: bool,
) -> Tally {
    let mut tally = Tally::default();
    let mut client = tonic::client::Grpc::new(channel);
    let path = http::uri::PathAndQuery::from_static(CHECK_PATH);
    let mut pacer = (shared.args.rate > 0.0).then(|| {
        let per_worker = shared.args.rate / shared.args.concurrency as f64;
        let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / per_worker));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    loop {
        if until.is_some_and(|u| Instant::now() >= u) {
            break;
        }
        let n = shared.next.fetch_add(1, Ordering::Relaxed);
        if shared.args.once && n >= shared.tokens.len() {
            break;
        }
        let Some(token) = shared.tokens.get(n % shared.tokens.len()) else {
            break;
        };
        if let Some(p) = pacer.as_mut() {
            p.tick().await;
        }
        let request = check_request(&shared.fixed, token);
        let started = Instant::now();
        let answer = match client.ready().await {
            Ok(()) => {
                client
                    .unary(tonic::Request::new(request), path.clone(), LoadCodec::new())
                    .await
            }
            Err(e) => Err(tonic::Status::unavailable(e.to_string())),
        };
        let took = started.elapsed();
        match answer {
            Ok(r) => match r.into_inner().status {
                Some(s) if s.code == 0 => tally.ok += 1,
                _ => tally.denied += 1,
            },
            Err(_) => tally.errors += 1,
        }
        if record {
            tally
                .latencies_us
                .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
        }
    }
    tally
}

async fn phase(
    shared: &Arc<Shared>,
    channels: &[Channel],
    length: Option<Duration>,
    record: bool,
) -> (Tally, Duration) {
    let started = Instant::now();
    let until = length.map(|l| started + l);
    let mut tasks = Vec::with_capacity(shared.args.concurrency);
    for i in 0..shared.args.concurrency {
        let channel = channels[i % channels.len()].clone();
        tasks.push(tokio::spawn(worker(shared.clone(), channel, until, record)));
    }
    let mut total = Tally::default();
    for t in tasks {
        if let Ok(tally) = t.await {
            total.merge(tally);
        }
    }
    (total, started.elapsed())
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len() - 1))
        .copied()
        .unwrap_or(0)
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let tokens: Vec<Bytes> = std::fs::read_to_string(&args.tokens)?
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| Bytes::from(format!("Bearer {l}")))
        .collect();
    if tokens.is_empty() {
        return Err(format!("{}: no tokens", args.tokens).into());
    }
    let mut channels = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let endpoint = Endpoint::from_shared(format!("http://{}", args.addr))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5));
        channels.push(endpoint.connect().await?);
    }
    let once = args.once;
    let (duration, warmup) = (args.duration, args.warmup);
    let fixed = Fixed {
        method: Bytes::from(args.method.clone()),
        path: Bytes::from(args.path.clone()),
        host: Bytes::from(args.host.clone()),
    };
    let shared = Arc::new(Shared {
        args,
        tokens,
        fixed,
        next: AtomicUsize::new(0),
    });
    if !once && !warmup.is_zero() {
        phase(&shared, &channels, Some(warmup), false).await;
    }
    let (mut tally, took) = phase(&shared, &channels, (!once).then_some(duration), true).await;
    tally.latencies_us.sort_unstable();
    let calls = tally.ok + tally.denied + tally.errors;
    let secs = took.as_secs_f64();
    println!(
        "calls={calls} ok={} denied={} errors={} secs={secs:.3} rps={:.0} p50_us={} p99_us={}",
        tally.ok,
        tally.denied,
        tally.errors,
        calls as f64 / secs.max(1e-9),
        percentile(&tally.latencies_us, 50.0),
        percentile(&tally.latencies_us, 99.0),
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("check_load: {e}");
            return ExitCode::from(64);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("check_load: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("check_load: {e}");
            ExitCode::FAILURE
        }
    }
}
