//! Baseline Envoy `ext_authz` v3 servers for the benchmarks.
//!
//! ```text
//! noop_authz --addr 127.0.0.1:9101                       # always OK: the transport limit
//! noop_authz --addr 127.0.0.1:9104 --identity-answer     # always OK, with identity attached
//! noop_authz --addr 127.0.0.1:9101 --http 127.0.0.1:9103  # … and 200 to every HTTP request
//! noop_authz --addr 127.0.0.1:9102 --verify-jwks jwks.json \
//!     --issuer URL --audience AUD                         # verifies every EdDSA token, no cache
//! ```
//!
//! The first mode answers OK to every `Check`, measuring what gRPC and
//! Envoy's filter cost with no decision at all. The second verifies the
//! bearer token with a plain `jsonwebtoken::decode` on every call (no cache,
//! no rules, no identity headers beyond `x-user-id`): the ceiling for a
//! verifier that cannot skip the signature check. Neither is a product; they
//! exist to put gatehouse's numbers next to something.
//!
//! `--identity-answer` is the first mode answering what an authorizer that
//! names the caller must answer (docs/grpc-api.md): the same OK, but setting
//! `x-user-id`, `x-user-email` and `x-user-name` and carrying dynamic
//! metadata with `provider`, `sub` and the claims of a benchmark token, the
//! shape of gatehouse's allow for those tokens. Envoy's work in applying
//! an answer grows with it, so this is the transport limit for any
//! authorizer that forwards identity, where the bare OK is the limit for one
//! that does not. The answer is fixed, built once and cloned per call.
//!
//! `--http` adds the same no-op for nginx's `auth_request`: every request
//! gets an empty 200, served by the same stack as gatehouse's HTTP door
//! (axum on hyper), so the difference to gatehouse is the decision.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use axum::serve::ListenerExt;
use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, HeaderValue,
    HeaderValueOption, HttpResponse, OkHttpResponse,
};
use envoy_types::ext_authz::v3::{CheckRequestExt, CheckResponseExt};
use futures_util::TryStreamExt;
use tonic::{Request, Response, Status};

#[path = "support/keys.rs"]
mod keys;

/// How each `Check` is answered.
enum Mode {
    /// OK, always.
    Noop,
    /// OK, always, with identity headers and metadata.
    Identity(Box<CheckResponse>),
    /// OK only when the bearer token verifies against the key.
    Verify {
        key: Box<jsonwebtoken::DecodingKey>,
        /// Algorithms, issuer and audience, built once.
        validation: Box<jsonwebtoken::Validation>,
    },
}

struct Server {
    mode: Arc<Mode>,
}

#[tonic::async_trait]
impl Authorization for Server {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let request = request.into_inner();
        let response = match &*self.mode {
            Mode::Noop => CheckResponse::with_status(Status::ok("ok")),
            Mode::Identity(answer) => (**answer).clone(),
            Mode::Verify { key, validation } => verify(&request, key, validation),
        };
        Ok(Response::new(response))
    }
}

fn bearer(request: &CheckRequest) -> Option<String> {
    if let Some(v) = request
        .get_client_headers()
        .and_then(|h| h.get("authorization"))
    {
        return Some(v.clone());
    }
    // Envoy with `encode_raw_headers` sends `header_map` with byte values.
    let http = request
        .attributes
        .as_ref()?
        .request
        .as_ref()?
        .http
        .as_ref()?;
    let header = http
        .header_map
        .as_ref()?
        .headers
        .iter()
        .find(|h| h.key.eq_ignore_ascii_case("authorization"))?;
    if header.raw_value.is_empty() {
        Some(header.value.clone())
    } else {
        String::from_utf8(header.raw_value.clone()).ok()
    }
}

fn verify(
    request: &CheckRequest,
    key: &jsonwebtoken::DecodingKey,
    validation: &jsonwebtoken::Validation,
) -> CheckResponse {
    let Some(value) = bearer(request) else {
        return CheckResponse::with_status(Status::unauthenticated("token_missing"));
    };
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .unwrap_or(&value);
    match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, key, validation)
    {
        Ok(data) => {
            let sub = data
                .claims
                .get("sub")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned();
            let mut response = CheckResponse::with_status(Status::ok("ok"));
            response.http_response = Some(HttpResponse::OkResponse(OkHttpResponse {
                headers: vec![HeaderValueOption {
                    header: Some(HeaderValue {
                        key: "x-user-id".into(),
                        value: sub,
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }));
            response
        }
        Err(_) => CheckResponse::with_status(Status::unauthenticated("token_invalid")),
    }
}

/// Parsed command line.
struct Args {
    addr: SocketAddr,
    jwks: Option<String>,
    http: Option<SocketAddr>,
    issuer: String,
    audience: String,
    identity_answer: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut addr = None;
    let mut jwks = None;
    let mut http = None;
    let mut issuer = "http://127.0.0.1:3000".to_owned();
    let mut audience = "http://127.0.0.1:3000".to_owned();
    let mut identity_answer = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--identity-answer" {
            identity_answer = true;
            continue;
        }
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => addr = Some(value()?.parse().map_err(|e| format!("--addr: {e}"))?),
            "--verify-jwks" => jwks = Some(value()?),
            "--http" => http = Some(value()?.parse().map_err(|e| format!("--http: {e}"))?),
            "--issuer" => issuer = value()?,
            "--audience" => audience = value()?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        addr: addr.ok_or("--addr is required")?,
        jwks,
        http,
        issuer,
        audience,
        identity_answer,
    })
}

/// The allow gatehouse sends for benchmark token number 42, built as
/// gatehouse builds it.
fn identity_answer(args: &Args) -> CheckResponse {
    use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
    let claims = match keys::better_auth_claims(42, &args.issuer, &args.audience, keys::now(), 7200)
    {
        serde_json::Value::Object(claims) => claims,
        _ => serde_json::Map::new(),
    };
    let text = |claim: &str| {
        claims
            .get(claim)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
    };
    let string = |s: &str| Value {
        kind: Some(Kind::StringValue(s.to_owned())),
    };
    let header = |key: &str, value: &str| HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            value: value.to_owned(),
            ..Default::default()
        }),
        append_action: 2, // OVERWRITE_IF_EXISTS_OR_ADD
        ..Default::default()
    };
    let mut answer = CheckResponse::with_status(Status::ok(""));
    answer.http_response = Some(HttpResponse::OkResponse(OkHttpResponse {
        headers: vec![
            header("x-user-id", text("sub")),
            header("x-user-email", text("email")),
            header("x-user-name", text("name")),
        ],
        ..Default::default()
    }));
    let mut fields = std::collections::HashMap::new();
    fields.insert("provider".to_owned(), string("better-auth"));
    fields.insert("sub".to_owned(), string(text("sub")));
    fields.insert(
        "claims".to_owned(),
        Value {
            kind: Some(Kind::StructValue(gatehouse::internals::grpc::json_struct(
                &claims,
            ))),
        },
    );
    answer.dynamic_metadata = Some(Struct { fields });
    answer
}

fn build_mode(args: &Args) -> Result<Mode, Box<dyn std::error::Error>> {
    let Some(path) = &args.jwks else {
        return Ok(if args.identity_answer {
            Mode::Identity(Box::new(identity_answer(args)))
        } else {
            Mode::Noop
        });
    };
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let jwk = set.keys.first().ok_or("the JWKS has no keys")?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk)?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_issuer(&[&args.issuer]);
    validation.set_audience(&[&args.audience]);
    validation.set_required_spec_claims(&["exp"]);
    Ok(Mode::Verify {
        key: Box::new(key),
        validation: Box::new(validation),
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("noop_authz: {e}");
            return ExitCode::from(64);
        }
    };
    let mode = match build_mode(&args) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            eprintln!("noop_authz: {e}");
            return ExitCode::from(64);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("noop_authz: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served: Result<(), Box<dyn std::error::Error>> = runtime.block_on(async {
        let kind = match &*mode {
            Mode::Noop => "noop",
            Mode::Identity(_) => "noop, identity answer",
            Mode::Verify { .. } => "verify",
        };
        eprintln!("noop_authz ({kind}) listening on {}", args.addr);
        if let Some(addr) = args.http {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            eprintln!("noop_authz (http) listening on {addr}");
            let router = axum::Router::new().fallback(|| async { http::StatusCode::OK });
            // As gatehouse's HTTP listener: no Nagle delay on answers.
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router).await {
                    eprintln!("noop_authz (http): {e}");
                }
            });
        }
        // Connections as gatehouse's: an answer leaves in one write (see
        // gatehouse::internals::grpc::WholeWrites); no difference for a bare OK.
        let incoming = tonic::transport::server::TcpIncoming::bind(args.addr)?
            .with_nodelay(Some(true))
            .map_ok(gatehouse::internals::grpc::WholeWrites);
        tonic::transport::Server::builder()
            .add_service(AuthorizationServer::new(Server { mode }))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok(())
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("noop_authz: {e}");
            ExitCode::FAILURE
        }
    }
}
