//! The Envoy door's bytes. The first input byte picks the case:
//!
//! - `0` arbitrary bytes through gatehouse's `CheckRequest` decoder: never a
//!   panic; whatever envoy-types decodes, gatehouse decodes to the same
//!   kept fields; a decoded request is decided, the answer decodes as an
//!   envoy-types `CheckResponse`, and a request `grpc::check_input` refuses
//!   is answered 400, never allowed.
//! - `1` an envoy-types `CheckRequest` built from the input, encoded with
//!   prost, decodes in gatehouse to the fields it keeps.
//! - `2` `wire::encode_allow` for arbitrary identity headers and claims
//!   decodes with prost to exactly the `CheckResponse` built with
//!   envoy-types (see `a_written_allow_decodes_as_rendered` in src/grpc).
#![no_main]

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arbitrary::{Arbitrary, Unstructured};
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{
    HeaderMap as PbHeaderMap, HeaderValue as PbHeader, HeaderValueOption,
};
use envoy_types::pb::envoy::service::auth::v3 as pb;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::google::protobuf::{ListValue, Struct, Value as PbValue, value::Kind};
use gatehouse::internals::grpc::{self as wire, AuthzService};
use gatehouse::internals::{Identity, RenderedHeaders};
use gatehouse_fuzz::{door_config_yaml, json_object, runtime};
use http::{HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => decode_and_decide(rest),
        1 => {
            if let Ok(req) = Described::arbitrary_take_rest(Unstructured::new(rest)) {
                round_trip(req);
            }
        }
        _ => {
            let _ = allow_round_trip(&mut Unstructured::new(rest));
        }
    }
});

fn service() -> &'static AuthzService {
    static SERVICE: OnceLock<AuthzService> = OnceLock::new();
    SERVICE.get_or_init(|| AuthzService::new(gatehouse_fuzz::app_state(&door_config_yaml("auto"))))
}

fn decode_and_decide(bytes: &[u8]) {
    let ours = wire::CheckRequest::decode(bytes);
    if let Ok(theirs) = pb::CheckRequest::decode(bytes) {
        let ours = ours
            .as_ref()
            .expect("gatehouse refuses a CheckRequest envoy-types decodes");
        assert_same(&theirs, ours);
    }
    let Ok(request) = ours else {
        return;
    };
    let input = gatehouse::internals::grpc::check_input(request.clone());
    if let Ok(input) = &input {
        assert!(!input.method.is_empty() && !input.path.is_empty());
        assert!(input.headers.keys().all(|k| !k.as_str().starts_with(':')));
    }
    let answer = runtime().block_on(service().decide(request));
    let response = pb::CheckResponse::decode(answer).expect("the answer is a CheckResponse");
    let status = response.status.expect("every answer carries a status");
    match response.http_response {
        Some(HttpResponse::OkResponse(_)) => {
            assert_eq!(status.code, 0, "an allow with a failing status");
            let input = input.expect("allowed a request check_input refuses");
            let target = input.path.split(['?', '#']).next().unwrap_or_default();
            assert!(
                gatehouse::internals::normalize_path(target).is_ok(),
                "allowed a path that does not normalize: {:?}",
                input.path
            );
        }
        Some(HttpResponse::DeniedResponse(denied)) => {
            assert_ne!(status.code, 0, "a denial with status OK");
            let http_status = denied.status.expect("a denial has an HTTP status").code;
            if input.is_err() {
                assert_eq!(http_status, 400, "a refused description is a 400");
            }
            assert!([400, 401, 403, 503].contains(&http_status), "{http_status}");
        }
        Some(HttpResponse::ErrorResponse(_)) | None => {
            panic!("an answer without an allow or a denial")
        }
    }
}

/// The fields gatehouse keeps equal those envoy-types decoded.
fn assert_same(theirs: &pb::CheckRequest, ours: &wire::CheckRequest) {
    assert_eq!(theirs.attributes.is_some(), ours.attributes.is_some());
    let (Some(ta), Some(oa)) = (&theirs.attributes, &ours.attributes) else {
        return;
    };
    assert_eq!(ta.request.is_some(), oa.request.is_some());
    let (Some(tr), Some(or)) = (&ta.request, &oa.request) else {
        return;
    };
    assert_eq!(tr.http.is_some(), or.http.is_some());
    let (Some(th), Some(oh)) = (&tr.http, &or.http) else {
        return;
    };
    assert_eq!(th.id.as_bytes(), &oh.id[..]);
    assert_eq!(th.method.as_bytes(), &oh.method[..]);
    assert_eq!(th.path.as_bytes(), &oh.path[..]);
    assert_eq!(th.host.as_bytes(), &oh.host[..]);
    // A protobuf map keeps the last entry of a repeated key.
    let our_map: HashMap<&[u8], &[u8]> = oh
        .headers
        .iter()
        .map(|e| (&e.key[..], &e.value[..]))
        .collect();
    let their_map: HashMap<&[u8], &[u8]> = th
        .headers
        .iter()
        .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
        .collect();
    assert_eq!(their_map, our_map);
    assert_eq!(th.header_map.is_some(), oh.header_map.is_some());
    if let (Some(tm), Some(om)) = (&th.header_map, &oh.header_map) {
        assert_eq!(tm.headers.len(), om.headers.len());
        for (t, o) in tm.headers.iter().zip(&om.headers) {
            assert_eq!(t.key.as_bytes(), &o.key[..]);
            assert_eq!(t.value.as_bytes(), &o.value[..]);
            assert_eq!(t.raw_value, &o.raw_value[..]);
        }
    }
}

/// An Envoy request: what gatehouse reads and what it must skip.
#[derive(Debug, Arbitrary)]
struct Described {
    id: String,
    method: String,
    path: String,
    host: String,
    headers: Vec<(String, String)>,
    header_map: Option<Vec<(String, String, Vec<u8>)>>,
    // Skipped by gatehouse.
    scheme: String,
    query: String,
    body: String,
    raw_body: Vec<u8>,
    size: i64,
    principal: Option<String>,
    extensions: Vec<(String, String)>,
    sni: Option<String>,
    request_time: Option<(i64, i32)>,
    with_request: bool,
    with_http: bool,
}

fn round_trip(d: Described) {
    let http = pb::attribute_context::HttpRequest {
        id: d.id,
        method: d.method,
        headers: d.headers.into_iter().collect(),
        path: d.path,
        host: d.host,
        scheme: d.scheme,
        query: d.query,
        size: d.size,
        body: d.body,
        raw_body: d.raw_body,
        header_map: d.header_map.map(|list| PbHeaderMap {
            headers: list
                .into_iter()
                .map(|(key, value, raw_value)| PbHeader {
                    key,
                    value,
                    raw_value,
                })
                .collect(),
        }),
        ..Default::default()
    };
    let request = pb::attribute_context::Request {
        time: d.request_time.map(
            |(seconds, nanos)| envoy_types::pb::google::protobuf::Timestamp { seconds, nanos },
        ),
        http: d.with_http.then_some(http),
    };
    let full = pb::CheckRequest {
        attributes: Some(pb::AttributeContext {
            source: d.principal.map(|principal| pb::attribute_context::Peer {
                principal,
                ..Default::default()
            }),
            request: d.with_request.then_some(request),
            context_extensions: d.extensions.into_iter().collect(),
            tls_session: d.sni.map(|sni| pb::attribute_context::TlsSession { sni }),
            ..Default::default()
        }),
    };
    let bytes = full.encode_to_vec();
    let ours = wire::CheckRequest::decode(bytes.as_slice())
        .expect("gatehouse decodes what envoy-types encodes");
    assert_same(&full, &ours);
    // Whatever it holds, it is judged without a panic.
    let _ = gatehouse::internals::grpc::check_input(ours);
}

/// Header names an identity header can have: `x-` and a token.
fn header_name(u: &mut Unstructured<'_>) -> arbitrary::Result<HeaderName> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-_";
    let raw: Vec<u8> = u.arbitrary()?;
    let mut name = b"x-".to_vec();
    name.extend(
        raw.iter()
            .take(40)
            .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()]),
    );
    Ok(HeaderName::from_bytes(&name).expect("x- and token characters"))
}

/// Any header value bytes: visible ASCII, space, tab and obs-text.
fn header_value(u: &mut Unstructured<'_>) -> arbitrary::Result<HeaderValue> {
    let raw: Vec<u8> = u.arbitrary()?;
    let cleaned: Vec<u8> = raw
        .into_iter()
        .map(|b| {
            if (b < 0x20 && b != b'\t') || b == 0x7f {
                b' '
            } else {
                b
            }
        })
        .collect();
    Ok(HeaderValue::from_bytes(&cleaned).expect("no control characters"))
}

fn allow_round_trip(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let n_set = u.int_in_range(0..=6)?;
    let mut set = Vec::with_capacity(n_set);
    for _ in 0..n_set {
        set.push((header_name(u)?, header_value(u)?));
    }
    let n_remove = u.int_in_range(0..=6)?;
    let mut remove = Vec::with_capacity(n_remove);
    for _ in 0..n_remove {
        remove.push(header_name(u)?);
    }
    let identity = if u.arbitrary()? {
        let provider: String = u.arbitrary()?;
        let mut claims = json_object(u, 4)?;
        if u.arbitrary()? {
            let sub: String = u.arbitrary()?;
            claims.insert("sub".into(), sub.into());
        }
        Some(Identity {
            provider: provider.as_str().into(),
            claims: Arc::new(claims),
        })
    } else {
        None
    };
    let headers = RenderedHeaders {
        set,
        remove,
        remove_list: None,
    };
    let written = wire::encode_allow(&headers, identity.as_ref());
    let decoded = pb::CheckResponse::decode(written).expect("an allow decodes");
    assert_eq!(decoded, render(&headers, identity.as_ref()));
    Ok(())
}

/// The allow built with envoy-types: the reference the written bytes must
/// decode to.
fn render(headers: &RenderedHeaders, identity: Option<&Identity>) -> pb::CheckResponse {
    let set = headers
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
    let dynamic_metadata = identity.map(|id| {
        let mut fields = HashMap::new();
        fields.insert("provider".to_owned(), string_value(&id.provider));
        if let Some(sub) = id.claims.get("sub").and_then(serde_json::Value::as_str) {
            fields.insert("sub".to_owned(), string_value(sub));
            // The subject's rate-limit key: the first 16 bytes of its
            // SHA-256, as hex.
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, sub.as_bytes());
            let key: String = digest.as_ref()[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            fields.insert("rate_limit_key".to_owned(), string_value(&key));
        }
        fields.insert(
            "claims".to_owned(),
            PbValue {
                kind: Some(Kind::StructValue(json_struct(&id.claims))),
            },
        );
        Struct { fields }
    });
    pb::CheckResponse {
        status: Some(envoy_types::pb::google::rpc::Status::default()),
        dynamic_metadata,
        http_response: Some(HttpResponse::OkResponse(pb::OkHttpResponse {
            headers: set,
            headers_to_remove: headers
                .remove
                .iter()
                .map(|n| n.as_str().to_owned())
                .collect(),
            ..Default::default()
        })),
    }
}

fn string_value(s: &str) -> PbValue {
    PbValue {
        kind: Some(Kind::StringValue(s.to_owned())),
    }
}

/// JSON as `google.protobuf.Struct`, numbers as doubles.
fn json_struct(map: &serde_json::Map<String, serde_json::Value>) -> Struct {
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
