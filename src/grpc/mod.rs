//! The Envoy door: `envoy.service.auth.v3.Authorization/Check` (the
//! `ext_authz` filter, Istio's CUSTOM provider) and `grpc.health.v1.Health`.
//!
//! [`AuthzService`] turns a `CheckRequest` (decoded by [`wire`], which keeps
//! only what a decision reads) into a [`CheckInput`] (method, path, host and
//! headers from `attributes.request.http`, merging the `headers` map and the
//! `header_map` list that Envoy sends with `encode_raw_headers`), asks the
//! current [`crate::decision::Authorizer`], and renders the [`Decision`]: an
//! `OkHttpResponse` that overwrites every identity header it has a value for
//! and removes every other configured one, or a `DeniedHttpResponse` with
//! the status, challenge and JSON body of the one mapping in
//! [`crate::error`]. A deny is always an OK gRPC call carrying a deny
//! `CheckResponse`; a request without HTTP attributes is denied with
//! `bad_request`, never allowed. The allow for a token served from the
//! verified-token cache is encoded once and kept by this door
//! ([`answers`]), reused by every later hit of the same verification.
//!
//! [`HealthPublisher`] keeps the gRPC health status in step with
//! [`AppState::is_ready`] for the empty service name and for the
//! authorization service.
//!
//! With `http.decision_trail` on, every decision is also recorded in the
//! shared [`crate::trail`], so a gRPC deployment can be checked by
//! `gatehouse doctor` too.
//!
//! This module does not bind sockets or handle signals (see
//! [`crate::server`]), and does not decide anything itself.

mod answers;
pub(crate) mod wire;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue as PbHeader, HeaderValueOption};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::protobuf::{ListValue, Struct, Value as PbValue, value::Kind};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use http::{HeaderMap, HeaderName, HeaderValue};
use prost::Message;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::decision::{Allow, CheckInput, Decision, Door};
use crate::error::{AuthError, BadRequestKind};
use crate::state::AppState;
use crate::trail::{Asked, Verdict};

pub(crate) use wire::{AuthorizationServer, CheckRequest};

/// The fully-qualified name of the authorization service, as health checks name it.
pub(crate) const AUTHORIZATION_SERVICE: &str = wire::SERVICE_NAME;

/// The ext_authz v3 `Authorization` service.
#[derive(Debug, Clone)]
pub struct AuthzService {
    /// Shared with the HTTP door; read once per request (hot-swapped on SIGHUP).
    state: Arc<AppState>,
    /// The allows encoded for cached tokens, reused while their
    /// verification lives. Sized at start from `token_cache.max_memory`.
    answers: Arc<answers::Answers>,
}

impl AuthzService {
    pub fn new(state: Arc<AppState>) -> Self {
        let budget = state.authorizer().config().token_cache_max_bytes;
        let answers = Arc::new(answers::Answers::new(crate::token_cache::budget(budget).1));
        Self { state, answers }
    }

    /// The encoded `CheckResponse` for a decision: a cached token's allow
    /// comes from the door's memory after its first encoding.
    fn answer(&self, decision: &Decision) -> Bytes {
        match decision {
            Decision::Allow(Allow {
                token: Some(token), ..
            }) => self.answers.get_or_encode(token, || encode(decision)),
            _ => encode(decision),
        }
    }

    /// The tonic service, ready for `Server::add_service`.
    pub fn into_server(self) -> AuthorizationServer<Self> {
        AuthorizationServer::new(self)
    }

    /// Decides one `CheckRequest` and returns the encoded `CheckResponse`
    /// (what the gRPC method does, without tonic).
    pub async fn decide(&self, request: CheckRequest) -> Bytes {
        let authz = self.state.authorizer();
        let trail = authz.config().trail.enabled;
        match check_input(request) {
            Ok(input) => {
                let traced = authz.check_traced(&input).await;
                if trail {
                    let asked = Asked::of(&input, None);
                    self.state
                        .trail
                        .record(asked, traced.rule, Verdict::of(&traced));
                }
                self.answer(&traced.decision)
            }
            Err(err) => {
                if trail {
                    let asked = Asked::unusable(Door::Grpc, None, None);
                    self.state.trail.record(asked, None, Verdict::Deny(&err));
                }
                authz
                    .metrics()
                    .count_decision(Door::Grpc.as_str(), "deny", err.reason());
                tracing::info!(
                    authz.door = Door::Grpc.as_str(),
                    authz.result = "deny",
                    authz.reason = err.reason(),
                    authz.status = err.http_status(),
                    "decision"
                );
                encode(&Decision::Deny(err))
            }
        }
    }
}

impl wire::Check for AuthzService {
    async fn check(&self, request: CheckRequest) -> Bytes {
        self.decide(request).await
    }
}

/// Builds the transport-neutral input from Envoy's attributes.
///
/// Header names are lower-cased; pseudo-headers (`:path`…) only fill in a
/// method, path or host that the attributes left empty. A header that is not
/// valid HTTP, and a method, path or host that is not UTF-8, is refused as a
/// whole (`bad_request`) rather than dropped, so a credential can never
/// silently disappear.
pub fn check_input(request: CheckRequest) -> Result<CheckInput, AuthError> {
    let missing = AuthError::BadRequest(BadRequestKind::MissingAttributes);
    let attributes = request.attributes.ok_or_else(|| missing.clone())?;
    let client_ip = attributes
        .source
        .and_then(|p| p.address)
        .and_then(|a| a.socket_address)
        .and_then(|s| std::str::from_utf8(&s.address).ok()?.parse().ok());
    let http = attributes
        .request
        .and_then(|r| r.http)
        .ok_or_else(|| missing.clone())?;

    let raw_list = http.header_map.map(|m| m.headers).unwrap_or_default();
    let mut headers = HeaderMap::with_capacity(http.headers.len() + raw_list.len());
    let mut pseudo = Pseudo::default();
    for h in raw_list {
        let value = if h.raw_value.is_empty() {
            h.value
        } else {
            h.raw_value
        };
        add_header(&mut headers, &mut pseudo, &h.key, value, true)?;
    }
    let from_list = !headers.is_empty() || pseudo.any();
    for entry in http.headers {
        // With `encode_raw_headers` Envoy sends the list; the map is then a
        // second view of the same headers and must not double them.
        add_header(
            &mut headers,
            &mut pseudo,
            &entry.key,
            entry.value,
            !from_list,
        )?;
    }

    let method = text(http.method)?.or(pseudo.method);
    let path = text(http.path)?.or(pseudo.path);
    let host = text(http.host)?.or(pseudo.authority);
    let (Some(method), Some(path)) = (method, path) else {
        return Err(missing);
    };
    let request_id = match headers.get("x-request-id").and_then(|v| v.to_str().ok()) {
        Some(id) => Some(id.to_owned()),
        None => text(http.id)?,
    };
    Ok(CheckInput {
        door: Door::Grpc,
        method,
        path,
        host,
        headers,
        request_id,
        client_ip,
    })
}

/// Pseudo-headers seen in the header list or map.
#[derive(Default)]
struct Pseudo {
    method: Option<String>,
    path: Option<String>,
    authority: Option<String>,
}

impl Pseudo {
    fn any(&self) -> bool {
        self.method.is_some() || self.path.is_some() || self.authority.is_some()
    }
}

fn add_header(
    headers: &mut HeaderMap,
    pseudo: &mut Pseudo,
    key: &[u8],
    value: Bytes,
    always: bool,
) -> Result<(), AuthError> {
    let bad = || AuthError::BadRequest(BadRequestKind::ControlCharacter);
    if let Some(name) = key.strip_prefix(b":") {
        let slot = if name.eq_ignore_ascii_case(b"method") {
            &mut pseudo.method
        } else if name.eq_ignore_ascii_case(b"path") {
            &mut pseudo.path
        } else if name.eq_ignore_ascii_case(b"authority") {
            &mut pseudo.authority
        } else {
            return Ok(());
        };
        if slot.is_none() {
            *slot = text(value)?;
        }
        return Ok(());
    }
    // `from_bytes` lower-cases and refuses what is not a token.
    let name = HeaderName::from_bytes(key).map_err(|_| bad())?;
    if !always && headers.contains_key(&name) {
        return Ok(());
    }
    // Shares the received frame's bytes; refuses CR, LF, NUL and the like.
    let value = HeaderValue::from_maybe_shared(value).map_err(|_| bad())?;
    headers.append(name, value);
    Ok(())
}

/// A text field: `None` when empty, `bad_request` when not UTF-8.
fn text(bytes: Bytes) -> Result<Option<String>, AuthError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    String::from_utf8(Vec::from(bytes))
        .map(Some)
        .map_err(|_| AuthError::BadRequest(BadRequestKind::ControlCharacter))
}

/// The encoded `CheckResponse` for a decision, written afresh.
pub fn encode(decision: &Decision) -> Bytes {
    match decision {
        Decision::Allow(allow) => wire::encode_allow(&allow.headers, allow.identity.as_ref()),
        Decision::Deny(err) => Bytes::from(deny(err).encode_to_vec()),
    }
}

/// The allow as an envoy-types message, built field by field: the
/// reference that [`wire::encode_allow`]'s bytes are checked against in
/// tests and measured against in the benchmarks (benches/core.rs).
pub fn allow_message(allow: &Allow) -> CheckResponse {
    let headers = allow
        .headers
        .set
        .iter()
        .map(|(name, value)| {
            let bytes = value.as_bytes();
            let header = match std::str::from_utf8(bytes) {
                Ok(s) => PbHeader {
                    key: name.as_str().to_owned(),
                    value: s.to_owned(),
                    raw_value: Vec::new(),
                },
                Err(_) => PbHeader {
                    key: name.as_str().to_owned(),
                    value: String::new(),
                    raw_value: bytes.to_vec(),
                },
            };
            #[allow(deprecated)]
            HeaderValueOption {
                header: Some(header),
                append: None,
                append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
                keep_empty_value: false,
            }
        })
        .collect();
    let headers_to_remove = allow
        .headers
        .remove
        .iter()
        .map(|n| n.as_str().to_owned())
        .collect();
    let dynamic_metadata = allow.identity.as_ref().map(|id| {
        let mut fields = std::collections::HashMap::with_capacity(4);
        fields.insert("provider".to_owned(), string_value(&id.provider));
        if let Some(sub) = id.sub() {
            fields.insert("sub".to_owned(), string_value(sub));
            fields.insert(
                wire::RATE_LIMIT_KEY.to_owned(),
                string_value(&crate::ratelimit::subject_key(sub)),
            );
        }
        fields.insert(
            "claims".to_owned(),
            PbValue {
                kind: Some(Kind::StructValue(json_struct(&id.claims))),
            },
        );
        Struct { fields }
    });
    CheckResponse {
        status: Some(RpcStatus {
            code: 0,
            message: String::new(),
            details: Vec::new(),
        }),
        dynamic_metadata,
        http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
            headers,
            headers_to_remove,
            ..Default::default()
        })),
    }
}

fn string_value(s: &str) -> PbValue {
    PbValue {
        kind: Some(Kind::StringValue(s.to_owned())),
    }
}

/// The deny response for `err`: the one rendering of a refusal (status,
/// headers, JSON body), with its gRPC code as the `CheckResponse` status.
pub(crate) fn deny(err: &AuthError) -> CheckResponse {
    let deny = err.deny_response();
    let headers = deny
        .headers
        .iter()
        .map(|(name, value)| {
            #[allow(deprecated)]
            HeaderValueOption {
                header: Some(PbHeader {
                    key: name.as_str().to_owned(),
                    // Every deny header is ASCII (built from fixed text).
                    value: value.to_str().unwrap_or_default().to_owned(),
                    raw_value: Vec::new(),
                }),
                append: None,
                append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
                keep_empty_value: false,
            }
        })
        .collect();
    CheckResponse {
        status: Some(RpcStatus {
            code: deny.grpc_code,
            message: err.code().as_str().to_owned(),
            details: Vec::new(),
        }),
        dynamic_metadata: None,
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: i32::from(deny.status.as_u16()),
            }),
            headers,
            body: deny.body,
        })),
    }
}

/// A JSON object as a `google.protobuf.Struct`.
pub fn json_struct(map: &serde_json::Map<String, serde_json::Value>) -> Struct {
    Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), json_value(v)))
            .collect(),
    }
}

fn json_value(v: &serde_json::Value) -> PbValue {
    use serde_json::Value as J;
    let kind = match v {
        J::Null => Kind::NullValue(0),
        J::Bool(b) => Kind::BoolValue(*b),
        J::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        J::String(s) => Kind::StringValue(s.clone()),
        J::Array(a) => Kind::ListValue(ListValue {
            values: a.iter().map(json_value).collect(),
        }),
        J::Object(o) => Kind::StructValue(json_struct(o)),
    };
    PbValue { kind: Some(kind) }
}

/// Keeps `grpc.health.v1.Health` in step with readiness.
#[derive(Clone)]
pub(crate) struct HealthPublisher {
    /// The reporter behind the tonic-health service.
    reporter: HealthReporter,
    /// Readiness source (keys loaded, not draining).
    state: Arc<AppState>,
}

impl std::fmt::Debug for HealthPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthPublisher").finish_non_exhaustive()
    }
}

/// How often readiness is re-read (SIGTERM also publishes at once).
const HEALTH_POLL: Duration = Duration::from_millis(100);

impl HealthPublisher {
    /// Creates the health service (initially NOT_SERVING) and its publisher.
    pub(crate) fn new(
        state: Arc<AppState>,
    ) -> (
        Self,
        tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
    ) {
        let (reporter, service) = tonic_health::server::health_reporter();
        (Self { reporter, state }, service)
    }

    /// Publishes the current status once; returns whether it is SERVING.
    pub(crate) async fn publish(&self) -> bool {
        let ready = self.state.is_ready();
        let status = if ready {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.reporter.set_service_status("", status).await;
        self.reporter
            .set_service_status(AUTHORIZATION_SERVICE, status)
            .await;
        ready
    }

    /// Publishes until `stop` is cancelled, whenever readiness changes (so `Watch` streams see changes, not repeats).
    pub(crate) async fn run(self, stop: CancellationToken) {
        let mut last = None;
        loop {
            let ready = self.state.is_ready();
            if last != Some(ready) {
                last = Some(self.publish().await);
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(HEALTH_POLL) => {}
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::HeaderMap as PbHeaderMap;
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
    use envoy_types::pb::envoy::service::auth::v3::{
        AttributeContext, CheckRequest as PbCheckRequest,
    };

    /// The answer [`encode`] writes, built as an envoy-types message: the
    /// reference the written bytes are checked against.
    fn render(decision: &Decision) -> CheckResponse {
        match decision {
            Decision::Allow(allow) => allow_message(allow),
            Decision::Deny(err) => deny(err),
        }
    }

    /// What gatehouse decodes when Envoy sends `http`.
    fn request(http: HttpRequest) -> CheckRequest {
        let full = PbCheckRequest {
            attributes: Some(AttributeContext {
                request: Some(Request {
                    http: Some(http),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        };
        CheckRequest::decode(full.encode_to_vec().as_slice()).unwrap()
    }

    fn raw(key: &str, value: &[u8]) -> PbHeader {
        PbHeader {
            key: key.into(),
            value: String::new(),
            raw_value: value.to_vec(),
        }
    }

    #[test]
    fn header_map_raw_values_and_pseudo_headers_fill_the_input() {
        let http = HttpRequest {
            id: "envoy-id".into(),
            header_map: Some(PbHeaderMap {
                headers: vec![
                    raw(":method", b"POST"),
                    raw(":path", b"/a?b=c"),
                    raw(":authority", b"app.example"),
                    raw("Authorization", b"Bearer abc"),
                    raw("cookie", b"a=1"),
                    raw("cookie", b"b=2"),
                ],
            }),
            // The map is a second view of the same headers: not doubled.
            headers: [("authorization".to_owned(), "Bearer abc".to_owned())].into(),
            ..Default::default()
        };
        let input = check_input(request(http)).unwrap();
        assert_eq!(input.method, "POST");
        assert_eq!(input.path, "/a?b=c");
        assert_eq!(input.host.as_deref(), Some("app.example"));
        assert_eq!(input.door, Door::Grpc);
        let auth: Vec<_> = input.headers.get_all("authorization").iter().collect();
        assert_eq!(auth, ["Bearer abc"]);
        assert_eq!(input.headers.get_all("cookie").iter().count(), 2);
        assert_eq!(input.request_id.as_deref(), Some("envoy-id"));
    }

    #[test]
    fn headers_map_alone_and_request_id_header() {
        let http = HttpRequest {
            method: "GET".into(),
            path: "/".into(),
            headers: [
                ("X-Request-Id".to_owned(), "rid".to_owned()),
                ("Authorization".to_owned(), "Bearer t".to_owned()),
            ]
            .into(),
            ..Default::default()
        };
        let input = check_input(request(http)).unwrap();
        assert_eq!(input.request_id.as_deref(), Some("rid"));
        assert_eq!(input.headers["authorization"], "Bearer t");
        assert_eq!(input.host, None);
    }

    #[test]
    fn unusable_requests_are_bad_requests() {
        let missing = AuthError::BadRequest(BadRequestKind::MissingAttributes);
        assert_eq!(check_input(CheckRequest::default()).unwrap_err(), missing);
        let no_path = HttpRequest {
            method: "GET".into(),
            ..Default::default()
        };
        assert_eq!(check_input(request(no_path)).unwrap_err(), missing);
        let bad_value = HttpRequest {
            method: "GET".into(),
            path: "/".into(),
            header_map: Some(PbHeaderMap {
                headers: vec![raw("authorization", b"Bearer a\r\nb")],
            }),
            ..Default::default()
        };
        assert_eq!(
            check_input(request(bad_value)).unwrap_err().http_status(),
            400
        );
    }

    #[test]
    fn deny_carries_status_challenge_body_and_code() {
        let resp = deny(&AuthError::Expired);
        assert_eq!(resp.status.as_ref().unwrap().code, 16);
        let Some(HttpResponse::DeniedResponse(d)) = resp.http_response else {
            panic!("not a denial");
        };
        assert_eq!(d.status.unwrap().code, 401);
        let keys: Vec<_> = d
            .headers
            .iter()
            .map(|h| h.header.as_ref().unwrap().key.as_str())
            .collect();
        assert_eq!(
            keys,
            [
                "content-type",
                "cache-control",
                "x-gatehouse-error",
                "x-gatehouse-message",
                "www-authenticate"
            ]
        );
        assert!(d.body.contains("token_expired"));
        let forbidden = deny(&AuthError::Forbidden(
            crate::error::ForbiddenKind::ClaimMismatch,
        ));
        assert_eq!(forbidden.status.unwrap().code, 7);
    }

    #[test]
    fn allow_overwrites_set_headers_removes_the_rest_and_carries_metadata() {
        use crate::identity::{Identity, RenderedHeaders};
        let claims: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
            r#"{"sub":"u1","email":"a@b.c","roles":["x","y"],"n":3,"o":{"k":true}}"#,
        )
        .unwrap();
        let allow = Allow {
            headers: Arc::new(RenderedHeaders {
                set: vec![(
                    HeaderName::from_static("x-user-id"),
                    HeaderValue::from_static("u1"),
                )],
                remove: vec![HeaderName::from_static("x-user-name")],
                remove_list: None,
            }),
            identity: Some(Identity {
                provider: "p".into(),
                claims: Arc::new(claims),
            }),
            token: None,
        };
        let resp = CheckResponse::decode(encode(&Decision::Allow(allow))).unwrap();
        assert_eq!(resp.status.as_ref().unwrap().code, 0);
        let Some(HttpResponse::OkResponse(ok)) = &resp.http_response else {
            panic!("not an allow");
        };
        assert_eq!(ok.headers.len(), 1);
        assert_eq!(
            ok.headers[0].append_action,
            HeaderAppendAction::OverwriteIfExistsOrAdd as i32
        );
        assert_eq!(ok.headers[0].header.as_ref().unwrap().value, "u1");
        assert_eq!(ok.headers_to_remove, ["x-user-name"]);
        let md = resp.dynamic_metadata.unwrap();
        assert_eq!(
            md.fields["provider"].kind,
            Some(Kind::StringValue("p".into()))
        );
        assert_eq!(md.fields["sub"].kind, Some(Kind::StringValue("u1".into())));
        let Some(Kind::StructValue(claims)) = &md.fields["claims"].kind else {
            panic!("claims not a struct");
        };
        assert_eq!(claims.fields["n"].kind, Some(Kind::NumberValue(3.0)));
        assert!(matches!(
            claims.fields["roles"].kind,
            Some(Kind::ListValue(_))
        ));
        assert!(matches!(
            claims.fields["o"].kind,
            Some(Kind::StructValue(_))
        ));
    }

    #[test]
    fn a_cached_tokens_allow_decodes_as_rendered_and_a_deny_as_denied() {
        use crate::identity::{Identity, RenderedHeaders};
        let identity = Identity {
            provider: "p".into(),
            claims: Arc::new(serde_json::from_str(r#"{"sub":"u1"}"#).unwrap()),
        };
        let headers = RenderedHeaders {
            set: vec![(
                HeaderName::from_static("x-user-id"),
                HeaderValue::from_static("u1"),
            )],
            remove: Vec::new(),
            remove_list: None,
        };
        let allow = Decision::Allow(Allow {
            headers: Arc::new(headers),
            identity: Some(identity),
            token: None,
        });
        assert_eq!(
            CheckResponse::decode(encode(&allow)).unwrap(),
            render(&allow)
        );
        let denied = encode(&Decision::Deny(AuthError::Expired));
        assert_eq!(
            CheckResponse::decode(denied).unwrap(),
            deny(&AuthError::Expired)
        );
    }

    fn json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            ".{0,40}".prop_map(serde_json::Value::from),
            // Long enough for two-byte length prefixes.
            "[a-z]{100,300}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                prop::collection::btree_map(".{0,12}", inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// The allow written without building the message decodes to exactly
        /// the message `render` builds, for any claims and headers.
        #[test]
        fn a_written_allow_decodes_as_rendered(
            claims in proptest::collection::btree_map(".{0,12}", json(), 0..10),
            sub in proptest::option::of(".{0,20}"),
            provider in ".{0,20}",
            set in proptest::collection::vec(
                ("x-[a-z]{1,20}", proptest::collection::vec(
                    proptest::prop_oneof![0x20u8..0x7f, 0x80u8..=0xff], 0..200)),
                0..5,
            ),
            remove in proptest::collection::vec("x-[a-z]{1,20}", 0..5),
            with_identity: bool,
        ) {
            use crate::identity::{Identity, RenderedHeaders};
            let mut claims: serde_json::Map<String, serde_json::Value> =
                claims.into_iter().collect();
            if let Some(sub) = sub {
                claims.insert("sub".into(), sub.into());
            }
            let allow = Decision::Allow(Allow {
                headers: Arc::new(RenderedHeaders {
                    set: set
                        .iter()
                        .map(|(n, v)| {
                            (
                                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                                HeaderValue::from_bytes(v).unwrap(),
                            )
                        })
                        .collect(),
                    remove: remove
                        .iter()
                        .map(|n| HeaderName::from_bytes(n.as_bytes()).unwrap())
                        .collect(),
                    remove_list: None,
                }),
                identity: with_identity.then(|| Identity {
                    provider: provider.as_str().into(),
                    claims: Arc::new(claims),
                }),
                token: None,
            });
            let written = encode(&allow);
            proptest::prop_assert_eq!(
                CheckResponse::decode(written.clone()).unwrap(),
                render(&allow)
            );
        }
    }

    #[test]
    fn text_fields_must_be_utf8() {
        let http = HttpRequest {
            method: "GET".into(),
            header_map: Some(PbHeaderMap {
                headers: vec![raw(":path", &[b'/', 0xff])],
            }),
            ..Default::default()
        };
        assert_eq!(check_input(request(http)).unwrap_err().http_status(), 400);
    }
}

#[cfg(test)]
mod door_tests;
