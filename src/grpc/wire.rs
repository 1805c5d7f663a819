//! The bytes of the Envoy door: what gatehouse reads of a `CheckRequest`
//! and how an answer already encoded goes back out.
//!
//! [`CheckRequest`] is a subset of `envoy.service.auth.v3.CheckRequest`
//! with the same field numbers: only `attributes.request.http`'s id,
//! method, path, host, `headers` and `header_map`. Every other field (peer
//! addresses, certificates, context extensions, metadata, body) is skipped
//! on the wire without being built. Text fields are kept as [`Bytes`]
//! slices of the received frame, so decoding copies no header; they are
//! checked where they are used (header names and values by `http`,
//! method/path/host as UTF-8).
//!
//! Answers are full `envoy.service.auth.v3.CheckResponse` messages.
//! Denials are built with `envoy-types` and encoded by the caller; an allow
//! is written by [`encode_allow`] straight from the identity headers and
//! the claims' JSON, without building the intermediate `Struct` of the
//! claims. [`AuthzCodec`] writes those bytes as they are, so a cached
//! token's allow is encoded once, not once per request.
//! [`AuthorizationServer`] is the tonic service for
//! `envoy.service.auth.v3.Authorization/Check` over this codec.
//!
//! [`WholeWrites`] wraps each accepted connection so that an answer goes
//! out in one write. When the socket takes vectored writes, the HTTP/2
//! layer sends a DATA payload over 256 bytes from its own buffer and must
//! flush before it can queue the next frame: an allow (about 500 bytes with
//! its claims) would take two writes, the second only for the 10-byte
//! trailers, and the proxy two reads. Without vectored writes, payloads up
//! to 1 KiB are copied into the frame buffer, and an answer, or a batch of
//! answers under load, leaves in a single write.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{Body, StdError};
use tonic::server::NamedService;
use tonic::transport::server::Connected;

use crate::identity::{Identity, RenderedHeaders};
use crate::ratelimit::subject_key;

/// `envoy.service.auth.v3.CheckRequest`, the fields gatehouse reads.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CheckRequest {
    #[prost(message, optional, tag = "1")]
    pub attributes: Option<AttributeContext>,
}

/// `envoy.service.auth.v3.AttributeContext` (`source`, field 1, and
/// `request`, field 4).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeContext {
    #[prost(message, optional, tag = "1")]
    pub source: Option<Peer>,
    #[prost(message, optional, tag = "4")]
    pub request: Option<Request>,
}

/// `AttributeContext.Peer` (only `address`, field 1): the downstream client.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Peer {
    #[prost(message, optional, tag = "1")]
    pub address: Option<Address>,
}

/// `envoy.config.core.v3.Address` (only `socket_address`, field 1).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Address {
    #[prost(message, optional, tag = "1")]
    pub socket_address: Option<SocketAddress>,
}

/// `envoy.config.core.v3.SocketAddress` (only `address`, field 2).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SocketAddress {
    #[prost(bytes = "bytes", tag = "2")]
    pub address: Bytes,
}

/// `AttributeContext.Request` (only `http`, field 2).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Request {
    #[prost(message, optional, tag = "2")]
    pub http: Option<HttpRequest>,
}

/// `AttributeContext.HttpRequest`: id, method, headers, path, host and the
/// raw header list.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HttpRequest {
    #[prost(bytes = "bytes", tag = "1")]
    pub id: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub method: Bytes,
    /// `map<string, string> headers`: on the wire a map is a list of
    /// key/value entries, read here in the order sent.
    #[prost(message, repeated, tag = "3")]
    pub headers: Vec<MapEntry>,
    #[prost(bytes = "bytes", tag = "4")]
    pub path: Bytes,
    #[prost(bytes = "bytes", tag = "5")]
    pub host: Bytes,
    /// What Envoy sends instead of `headers` with `encode_raw_headers`.
    #[prost(message, optional, tag = "13")]
    pub header_map: Option<HeaderMap>,
}

/// One entry of a `map<string, string>`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MapEntry {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
}

/// `envoy.config.core.v3.HeaderMap`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HeaderMap {
    #[prost(message, repeated, tag = "1")]
    pub headers: Vec<HeaderValue>,
}

/// `envoy.config.core.v3.HeaderValue`: `value` (text) or `raw_value` (bytes).
#[derive(Clone, PartialEq, prost::Message)]
pub struct HeaderValue {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
    #[prost(bytes = "bytes", tag = "3")]
    pub raw_value: Bytes,
}

/// Decodes [`CheckRequest`]s and writes encoded `CheckResponse`s as is.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AuthzCodec;

impl Codec for AuthzCodec {
    type Encode = Bytes;
    type Decode = CheckRequest;
    type Encoder = EncodedWriter;
    type Decoder = RequestReader;

    fn encoder(&mut self) -> Self::Encoder {
        EncodedWriter
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestReader
    }
}

/// Copies an encoded message into the frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EncodedWriter;

impl Encoder for EncodedWriter {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

/// Decodes a [`CheckRequest`] from the frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestReader;

impl Decoder for RequestReader {
    type Item = CheckRequest;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<CheckRequest>, tonic::Status> {
        <CheckRequest as prost::Message>::decode(src)
            .map(Some)
            .map_err(|_| tonic::Status::invalid_argument("malformed CheckRequest"))
    }
}

/// What answers one `Check`: a request in, an encoded `CheckResponse` out.
pub trait Check: Send + Sync + 'static {
    fn check(&self, request: CheckRequest) -> impl Future<Output = Bytes> + Send;
}

/// The fully-qualified name of the authorization service.
pub(crate) const SERVICE_NAME: &str = "envoy.service.auth.v3.Authorization";

/// The tonic service for `envoy.service.auth.v3.Authorization`.
#[derive(Debug)]
pub struct AuthorizationServer<T> {
    inner: Arc<T>,
}

impl<T> AuthorizationServer<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }
}

impl<T> Clone for AuthorizationServer<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<T> NamedService for AuthorizationServer<T> {
    const NAME: &'static str = SERVICE_NAME;
}

type BoxFuture<O> = Pin<Box<dyn Future<Output = O> + Send + 'static>>;

/// The unary `Check` method over [`AuthzCodec`].
struct CheckMethod<T>(Arc<T>);

impl<T: Check> tower::Service<tonic::Request<CheckRequest>> for CheckMethod<T> {
    type Response = tonic::Response<Bytes>;
    type Error = tonic::Status;
    type Future = BoxFuture<Result<tonic::Response<Bytes>, tonic::Status>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), tonic::Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: tonic::Request<CheckRequest>) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move {
            let answer = inner.check(request.into_inner()).await;
            Ok(tonic::Response::new(answer))
        })
    }
}

impl<T, B> tower::Service<http::Request<B>> for AuthorizationServer<T>
where
    T: Check,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() == "/envoy.service.auth.v3.Authorization/Check" {
            let method = CheckMethod(self.inner.clone());
            Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(AuthzCodec);
                Ok(grpc.unary(method, request).await)
            })
        } else {
            Box::pin(async move { Ok(tonic::Status::unimplemented("").into_http()) })
        }
    }
}

// Field numbers of the messages an allow is made of (envoy.service.auth.v3,
// envoy.config.core.v3, google.rpc and google.protobuf).
const RESPONSE_STATUS: u32 = 1;
const RESPONSE_OK: u32 = 3;
const RESPONSE_METADATA: u32 = 4;
const OK_HEADERS: u32 = 2;
const OK_HEADERS_TO_REMOVE: u32 = 5;
const OPTION_HEADER: u32 = 1;
const OPTION_APPEND_ACTION: u32 = 3;
const HEADER_KEY: u32 = 1;
const HEADER_VALUE: u32 = 2;
const HEADER_RAW_VALUE: u32 = 3;
const STRUCT_FIELDS: u32 = 1;
const ENTRY_KEY: u32 = 1;
const ENTRY_VALUE: u32 = 2;
const VALUE_NULL: u32 = 1;
const VALUE_NUMBER: u32 = 2;
const VALUE_STRING: u32 = 3;
const VALUE_BOOL: u32 = 4;
const VALUE_STRUCT: u32 = 5;
const VALUE_LIST: u32 = 6;
const LIST_VALUES: u32 = 1;

/// The dynamic-metadata entry keying the caller for a rate-limit service.
pub(crate) const RATE_LIMIT_KEY: &str = "rate_limit_key";

/// `HeaderValueOption.append_action`: `OVERWRITE_IF_EXISTS_OR_ADD`.
const OVERWRITE_IF_EXISTS_OR_ADD: u64 = 2;

/// The encoded `CheckResponse` allowing a request: status OK, an
/// `OkHttpResponse` that sets each header of `headers.set` (overwriting)
/// and removes each of `headers.remove`, and, with an identity, dynamic
/// metadata with `provider`, `sub` and `rate_limit_key` (when the claim is
/// a string) and `claims`.
pub fn encode_allow(headers: &RenderedHeaders, identity: Option<&Identity>) -> Bytes {
    let (set, remove) = (&headers.set, &headers.remove);
    let ok_len = ok_response_len(set, remove);
    let rate_limit_key = identity.and_then(Identity::sub).map(subject_key);
    let metadata_len = identity.map(|id| metadata_len(id, rate_limit_key.as_deref()));
    let mut len = field_len(RESPONSE_STATUS, 0) + field_len(RESPONSE_OK, ok_len);
    if let Some(m) = metadata_len {
        len += field_len(RESPONSE_METADATA, m);
    }
    let mut buf = Vec::with_capacity(len);
    // google.rpc.Status with code OK: every field default, so empty.
    open(&mut buf, RESPONSE_STATUS, 0);
    open(&mut buf, RESPONSE_OK, ok_len);
    for (name, value) in set {
        let value_tag = value_tag(value);
        let header_len = header_len(name, value_tag, value);
        open(&mut buf, OK_HEADERS, option_len(header_len));
        open(&mut buf, OPTION_HEADER, header_len);
        bytes_field(&mut buf, HEADER_KEY, name.as_str().as_bytes());
        bytes_field(&mut buf, value_tag, value.as_bytes());
        varint_field(&mut buf, OPTION_APPEND_ACTION, OVERWRITE_IF_EXISTS_OR_ADD);
    }
    for name in remove {
        bytes_field(&mut buf, OK_HEADERS_TO_REMOVE, name.as_str().as_bytes());
    }
    if let (Some(id), Some(m)) = (identity, metadata_len) {
        open(&mut buf, RESPONSE_METADATA, m);
        string_entry(&mut buf, "provider", &id.provider);
        if let Some(sub) = id.sub() {
            string_entry(&mut buf, "sub", sub);
        }
        if let Some(key) = &rate_limit_key {
            string_entry(&mut buf, RATE_LIMIT_KEY, key);
        }
        let claims = &*id.claims;
        let claims_len = struct_len(claims);
        open(
            &mut buf,
            STRUCT_FIELDS,
            entry_len("claims", field_len(VALUE_STRUCT, claims_len)),
        );
        bytes_field(&mut buf, ENTRY_KEY, b"claims");
        open(&mut buf, ENTRY_VALUE, field_len(VALUE_STRUCT, claims_len));
        open(&mut buf, VALUE_STRUCT, claims_len);
        write_struct(&mut buf, claims);
    }
    debug_assert_eq!(buf.len(), len, "allow length computed ahead");
    Bytes::from(buf)
}

/// The length of a length-delimited field whose payload is `len` bytes.
fn field_len(tag: u32, len: usize) -> usize {
    prost::encoding::key_len(tag) + prost::encoding::encoded_len_varint(len as u64) + len
}

/// Starts a length-delimited field of `len` bytes.
fn open(buf: &mut Vec<u8>, tag: u32, len: usize) {
    prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, buf);
    prost::encoding::encode_varint(len as u64, buf);
}

fn bytes_field(buf: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    open(buf, tag, bytes.len());
    buf.extend_from_slice(bytes);
}

fn varint_field(buf: &mut Vec<u8>, tag: u32, value: u64) {
    prost::encoding::encode_key(tag, prost::encoding::WireType::Varint, buf);
    prost::encoding::encode_varint(value, buf);
}

fn varint_field_len(tag: u32, value: u64) -> usize {
    prost::encoding::key_len(tag) + prost::encoding::encoded_len_varint(value)
}

/// `HeaderValue.value` for text, `raw_value` for other bytes.
fn value_tag(value: &http::HeaderValue) -> u32 {
    match std::str::from_utf8(value.as_bytes()) {
        Ok(_) => HEADER_VALUE,
        Err(_) => HEADER_RAW_VALUE,
    }
}

fn header_len(name: &http::HeaderName, value_tag: u32, value: &http::HeaderValue) -> usize {
    field_len(HEADER_KEY, name.as_str().len()) + field_len(value_tag, value.len())
}

fn option_len(header_len: usize) -> usize {
    field_len(OPTION_HEADER, header_len)
        + varint_field_len(OPTION_APPEND_ACTION, OVERWRITE_IF_EXISTS_OR_ADD)
}

fn ok_response_len(
    set: &[(http::HeaderName, http::HeaderValue)],
    remove: &[http::HeaderName],
) -> usize {
    let set_len: usize = set
        .iter()
        .map(|(name, value)| {
            field_len(
                OK_HEADERS,
                option_len(header_len(name, value_tag(value), value)),
            )
        })
        .sum();
    let remove_len: usize = remove
        .iter()
        .map(|name| field_len(OK_HEADERS_TO_REMOVE, name.as_str().len()))
        .sum();
    set_len + remove_len
}

fn metadata_len(id: &Identity, rate_limit_key: Option<&str>) -> usize {
    let mut len = field_len(STRUCT_FIELDS, string_entry_len("provider", &id.provider));
    if let Some(sub) = id.sub() {
        len += field_len(STRUCT_FIELDS, string_entry_len("sub", sub));
    }
    if let Some(key) = rate_limit_key {
        len += field_len(STRUCT_FIELDS, string_entry_len(RATE_LIMIT_KEY, key));
    }
    let claims_value = field_len(VALUE_STRUCT, struct_len(&id.claims));
    len + field_len(STRUCT_FIELDS, entry_len("claims", claims_value))
}

/// A `Struct.fields` map entry's payload: the key and a `Value` of
/// `value_len` bytes.
fn entry_len(key: &str, value_len: usize) -> usize {
    field_len(ENTRY_KEY, key.len()) + field_len(ENTRY_VALUE, value_len)
}

fn string_entry_len(key: &str, value: &str) -> usize {
    entry_len(key, field_len(VALUE_STRING, value.len()))
}

/// A `Struct.fields` entry whose value is a string.
fn string_entry(buf: &mut Vec<u8>, key: &str, value: &str) {
    open(buf, STRUCT_FIELDS, string_entry_len(key, value));
    bytes_field(buf, ENTRY_KEY, key.as_bytes());
    open(buf, ENTRY_VALUE, field_len(VALUE_STRING, value.len()));
    bytes_field(buf, VALUE_STRING, value.as_bytes());
}

fn struct_len(map: &serde_json::Map<String, serde_json::Value>) -> usize {
    map.iter()
        .map(|(k, v)| field_len(STRUCT_FIELDS, entry_len(k, value_len(v))))
        .sum()
}

fn list_len(items: &[serde_json::Value]) -> usize {
    items
        .iter()
        .map(|v| field_len(LIST_VALUES, value_len(v)))
        .sum()
}

/// The encoded length of a `google.protobuf.Value` holding `v`.
fn value_len(v: &serde_json::Value) -> usize {
    use serde_json::Value as J;
    match v {
        J::Null => varint_field_len(VALUE_NULL, 0),
        J::Bool(b) => varint_field_len(VALUE_BOOL, u64::from(*b)),
        J::Number(_) => prost::encoding::key_len(VALUE_NUMBER) + 8,
        J::String(s) => field_len(VALUE_STRING, s.len()),
        J::Array(a) => field_len(VALUE_LIST, list_len(a)),
        J::Object(o) => field_len(VALUE_STRUCT, struct_len(o)),
    }
}

fn write_struct(buf: &mut Vec<u8>, map: &serde_json::Map<String, serde_json::Value>) {
    for (key, value) in map {
        let len = value_len(value);
        open(buf, STRUCT_FIELDS, entry_len(key, len));
        bytes_field(buf, ENTRY_KEY, key.as_bytes());
        open(buf, ENTRY_VALUE, len);
        write_value(buf, value);
    }
}

/// The fields of a `google.protobuf.Value` holding `v` (JSON numbers are
/// doubles there, as in every JSON-to-Struct mapping).
fn write_value(buf: &mut Vec<u8>, v: &serde_json::Value) {
    use serde_json::Value as J;
    match v {
        J::Null => varint_field(buf, VALUE_NULL, 0),
        J::Bool(b) => varint_field(buf, VALUE_BOOL, u64::from(*b)),
        J::Number(n) => {
            prost::encoding::encode_key(VALUE_NUMBER, prost::encoding::WireType::SixtyFourBit, buf);
            buf.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_le_bytes());
        }
        J::String(s) => bytes_field(buf, VALUE_STRING, s.as_bytes()),
        J::Array(items) => {
            open(buf, VALUE_LIST, list_len(items));
            for item in items {
                open(buf, LIST_VALUES, value_len(item));
                write_value(buf, item);
            }
        }
        J::Object(o) => {
            open(buf, VALUE_STRUCT, struct_len(o));
            write_struct(buf, o);
        }
    }
}

/// A connection of the Envoy door that reports no vectored writes, so the
/// HTTP/2 layer copies an answer's frames into one buffer and sends them
/// with one write (see the module docs).
#[derive(Debug)]
pub struct WholeWrites<T>(pub T);

impl<T: AsyncRead + Unpin> AsyncRead for WholeWrites<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WholeWrites<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}

impl<T: Connected> Connected for WholeWrites<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.connect_info()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::{
        HeaderMap as PbHeaderMap, HeaderValue as PbHeader, HeaderValueOption,
    };
    use envoy_types::pb::envoy::service::auth::v3 as pb;
    use prost::Message;

    #[test]
    fn reads_what_envoy_sends_and_skips_the_rest() {
        let full = pb::CheckRequest {
            attributes: Some(pb::AttributeContext {
                source: Some(pb::attribute_context::Peer {
                    principal: "spiffe://x".into(),
                    ..Default::default()
                }),
                context_extensions: [("k".to_owned(), "v".to_owned())].into(),
                request: Some(pb::attribute_context::Request {
                    http: Some(pb::attribute_context::HttpRequest {
                        id: "rid".into(),
                        method: "POST".into(),
                        headers: [("a".to_owned(), "1".to_owned())].into(),
                        path: "/p?q".into(),
                        host: "h".into(),
                        scheme: "https".into(),
                        body: "ignored".into(),
                        header_map: Some(PbHeaderMap {
                            headers: vec![PbHeader {
                                key: "b".into(),
                                value: String::new(),
                                raw_value: vec![0xff, b'x'],
                            }],
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        };
        let bytes = full.encode_to_vec();
        let lean = CheckRequest::decode(bytes.as_slice()).unwrap();
        let http = lean.attributes.unwrap().request.unwrap().http.unwrap();
        assert_eq!(&http.id[..], b"rid");
        assert_eq!(&http.method[..], b"POST");
        assert_eq!(&http.path[..], b"/p?q");
        assert_eq!(&http.host[..], b"h");
        assert_eq!(http.headers.len(), 1);
        assert_eq!(
            (&http.headers[0].key[..], &http.headers[0].value[..]),
            (&b"a"[..], &b"1"[..])
        );
        let list = http.header_map.unwrap().headers;
        assert_eq!(&list[0].key[..], b"b");
        assert_eq!(&list[0].raw_value[..], &[0xff, b'x']);
    }

    /// Counts the writes that reach the socket.
    struct CountWrites {
        tcp: tokio::net::TcpStream,
        writes: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl CountWrites {
        fn count<T>(&self, done: &Poll<std::io::Result<T>>) {
            if matches!(done, Poll::Ready(Ok(_))) {
                self.writes
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    }

    impl AsyncRead for CountWrites {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.tcp).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for CountWrites {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let done = Pin::new(&mut self.tcp).poll_write(cx, buf);
            self.count(&done);
            done
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let done = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
            self.count(&done);
            done
        }

        fn is_write_vectored(&self) -> bool {
            self.tcp.is_write_vectored()
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.tcp).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.tcp).poll_shutdown(cx)
        }
    }

    impl Connected for CountWrites {
        type ConnectInfo = ();
        fn connect_info(&self) {}
    }

    /// Answers every `Check` with an allow of about 600 bytes, the size of
    /// a real one with claims.
    struct LargeAllow(Bytes);

    impl Check for LargeAllow {
        async fn check(&self, _request: CheckRequest) -> Bytes {
            self.0.clone()
        }
    }

    #[tokio::test]
    async fn an_answer_over_256_bytes_leaves_in_one_write() {
        let header = |i: usize| HeaderValueOption {
            header: Some(PbHeader {
                key: format!("x-claim-{i}"),
                value: "v".repeat(50),
                raw_value: Vec::new(),
            }),
            ..Default::default()
        };
        let answer = pb::CheckResponse {
            status: Some(envoy_types::pb::google::rpc::Status::default()),
            http_response: Some(pb::check_response::HttpResponse::OkResponse(
                pb::OkHttpResponse {
                    headers: (0..10).map(header).collect(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        };
        let encoded = Bytes::from(answer.encode_to_vec());
        assert!(encoded.len() > 512, "{}", encoded.len());

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = writes.clone();
        let incoming = futures_util::stream::unfold(listener, move |listener| {
            let writes = counter.clone();
            async move {
                let accepted = listener.accept().await.map(|(tcp, _)| {
                    tcp.set_nodelay(true).unwrap();
                    WholeWrites(CountWrites { tcp, writes })
                });
                Some((accepted, listener))
            }
        });
        let server = tonic::transport::Server::builder()
            .add_service(AuthorizationServer::new(LargeAllow(encoded.clone())))
            .serve_with_incoming(incoming);
        let server = tokio::spawn(server);

        let mut client =
            pb::authorization_client::AuthorizationClient::connect(format!("http://{addr}"))
                .await
                .unwrap();
        // The first call also settles the connection (SETTINGS, acks).
        let first = client.check(pb::CheckRequest::default()).await.unwrap();
        assert_eq!(first.into_inner(), answer);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        for _ in 0..5 {
            let before = writes.load(std::sync::atomic::Ordering::SeqCst);
            let got = client.check(pb::CheckRequest::default()).await.unwrap();
            assert_eq!(got.into_inner(), answer);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let after = writes.load(std::sync::atomic::Ordering::SeqCst);
            assert_eq!(after - before, 1, "writes for one answer");
        }
        server.abort();
    }

    #[test]
    fn garbage_is_an_error_not_a_request() {
        assert!(CheckRequest::decode(&[0x0a, 0x05, 0x01][..]).is_err());
    }
}
