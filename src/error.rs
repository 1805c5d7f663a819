//! The authorization errors: the table of codes, statuses and messages, in exactly one place.
//!
//! Each [`AuthError`] has a coarse wire code ([`ErrorCode`], what clients and
//! proxies see) and a fine reason (`reason()`, what logs and metrics see).
//! The mapping to HTTP status, gRPC code, `WWW-Authenticate` and JSON body
//! lives here and nowhere else; the doors only render it.
//!
//! Messages never contain the token or any part of it.

use std::fmt;

use http::header::{CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, StatusCode};

/// The wire error codes (docs/errors.md lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// No credential where one is required (401, no `error` attribute in the challenge).
    TokenMissing,
    /// Not a well-formed JWT, too large, bad base64, bad JSON, two credentials.
    TokenMalformed,
    /// `exp` passed beyond the leeway.
    TokenExpired,
    /// Signature, key, algorithm, issuer, audience or time claims rejected.
    TokenInvalid,
    /// Revoked, expired or unknown Better Auth session.
    SessionInvalid,
    /// Authenticated, but a rule (claims, path_claims) refused.
    Forbidden,
    /// No keys could ever be fetched for the token's provider.
    JwksUnavailable,
    /// The session store could not be reached.
    SessionUnavailable,
    /// The proxy sent a path that cannot be matched safely.
    BadRequest,
    /// The credential, its subject or its session was revoked.
    TokenRevoked,
    /// A rate-limit policy refused the caller for now.
    RateLimited,
    /// The rate-limit store is down and `on_store_error: deny`.
    RateLimitUnavailable,
}

impl ErrorCode {
    /// The `error` string of the JSON body.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TokenMissing => "token_missing",
            Self::TokenMalformed => "token_malformed",
            Self::TokenExpired => "token_expired",
            Self::TokenInvalid => "token_invalid",
            Self::SessionInvalid => "session_invalid",
            Self::Forbidden => "forbidden",
            Self::JwksUnavailable => "jwks_unavailable",
            Self::SessionUnavailable => "session_unavailable",
            Self::BadRequest => "bad_request",
            Self::TokenRevoked => "token_revoked",
            Self::RateLimited => "rate_limited",
            Self::RateLimitUnavailable => "rate_limit_unavailable",
        }
    }

    /// The HTTP status the client sees.
    pub const fn http_status(self) -> u16 {
        match self {
            Self::TokenMissing
            | Self::TokenMalformed
            | Self::TokenExpired
            | Self::TokenInvalid
            | Self::SessionInvalid
            | Self::TokenRevoked => 401,
            Self::Forbidden => 403,
            Self::JwksUnavailable | Self::SessionUnavailable | Self::RateLimitUnavailable => 503,
            Self::BadRequest => 400,
            Self::RateLimited => 429,
        }
    }

    /// The gRPC status code placed in `CheckResponse.status`
    /// (numeric values of `google.rpc.Code`).
    pub const fn grpc_code(self) -> i32 {
        match self {
            // UNAUTHENTICATED
            Self::TokenMissing
            | Self::TokenMalformed
            | Self::TokenExpired
            | Self::TokenInvalid
            | Self::SessionInvalid
            | Self::TokenRevoked => 16,
            // PERMISSION_DENIED
            Self::Forbidden => 7,
            // UNAVAILABLE
            Self::JwksUnavailable | Self::SessionUnavailable | Self::RateLimitUnavailable => 14,
            // INVALID_ARGUMENT
            Self::BadRequest => 3,
            // RESOURCE_EXHAUSTED
            Self::RateLimited => 8,
        }
    }

    /// A short human description for the JSON body and `error_description`.
    pub const fn message(self) -> &'static str {
        match self {
            Self::TokenMissing => "authentication required",
            Self::TokenMalformed => "the token is malformed",
            Self::TokenExpired => "the token has expired",
            Self::TokenInvalid => "the token is not valid",
            Self::SessionInvalid => "the session is not valid",
            Self::Forbidden => "access to this resource is forbidden",
            Self::JwksUnavailable => "signing keys are unavailable",
            Self::SessionUnavailable => "the session store is unavailable",
            Self::BadRequest => "the request cannot be authorized safely",
            Self::TokenRevoked => "the credential has been revoked",
            Self::RateLimited => "too many requests: retry after the time Retry-After gives",
            Self::RateLimitUnavailable => "the rate-limit store is unavailable",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a token was not well formed (→ `token_malformed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MalformedKind {
    #[error("token is larger than 16 KiB")]
    TooLarge,
    #[error("token does not have three dot-separated parts")]
    NotThreeParts,
    #[error("token part is not valid base64url")]
    BadBase64,
    #[error("token header or payload is not valid JSON")]
    BadJson,
    #[error("token header or payload is not a JSON object")]
    NotAnObject,
    #[error("more than one credential in the request")]
    MultipleCredentials,
    #[error("credential contains characters a token cannot have")]
    BadCharacters,
}

/// Why a token was rejected (→ `token_invalid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidKind {
    #[error("signature does not verify")]
    BadSignature,
    #[error("no key with this kid")]
    UnknownKid,
    #[error("no single key fits a token without kid")]
    NoKid,
    #[error("algorithm not allowed for this key or provider")]
    WrongAlg,
    #[error("alg none is refused")]
    AlgNone,
    #[error("empty signature")]
    EmptySignature,
    #[error("unknown critical header")]
    UnknownCrit,
    #[error("no provider for this issuer")]
    UnknownIssuer,
    #[error("issuer does not match")]
    WrongIssuer,
    #[error("audience does not match")]
    WrongAudience,
    #[error("token is not valid yet (nbf)")]
    NotYetValid,
    #[error("token issued in the future (iat)")]
    IssuedInFuture,
    #[error("a required claim is missing")]
    MissingClaim,
    #[error("a time claim is not a number")]
    BadTimeClaim,
    #[error("token lifetime exceeds max_lifetime")]
    LifetimeTooLong,
}

/// Why a session was refused (→ `session_invalid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionKind {
    #[error("the session cookie signature does not verify")]
    BadCookieSignature,
    #[error("no such session")]
    Unknown,
    #[error("the session has expired")]
    Expired,
    #[error("sessions are not configured")]
    NotConfigured,
}

/// Why a rule refused an authenticated caller (→ `forbidden`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ForbiddenKind {
    #[error("a required claim does not match")]
    ClaimMismatch,
    #[error("a path segment does not match its claim")]
    PathClaimMismatch,
    #[error("a claim value cannot be sent as a header")]
    BadHeaderValue,
    #[error("the user is banned")]
    UserBanned,
    #[error("the caller is not a member of the organization")]
    NotAMember,
    #[error("the caller's role in the organization is not allowed")]
    OrganizationRole,
}

/// What a revocation matched (→ `token_revoked`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RevokedKind {
    #[error("every token of this subject was revoked")]
    Subject,
    #[error("this subject's tokens issued before a time were revoked")]
    SubjectBefore,
    #[error("this token (jti) was revoked")]
    TokenId,
    #[error("this session was revoked")]
    Session,
}

/// A rate-limit refusal: which policy, and when to come back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitDenial {
    /// The policy's name.
    pub policy: std::sync::Arc<str>,
    /// Requests the policy admits at once (its burst).
    pub quota: u64,
    /// The policy's period, in seconds (at least 1).
    pub window_secs: u64,
    /// Whole seconds until one more request would be admitted (at least 1).
    pub retry_after_secs: u64,
    /// Whole seconds until the full quota is back.
    pub reset_secs: u64,
}

/// The header family a proxy used (or should have used) to describe the
/// original request to the HTTP door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `X-Original-Method` / `X-Original-URI` (nginx).
    Original,
    /// `X-Forwarded-Method` / `X-Forwarded-Uri` (Traefik, Caddy, Envoy's HTTP mode).
    Forwarded,
    /// Neither family arrived, so the proxy's kind is unknown.
    Unknown,
}

/// Why the request cannot be authorized safely (→ `bad_request`): the
/// proxy's description of it is missing or ambiguous, or its path cannot be
/// matched the way the upstream will route it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadRequestKind {
    /// Envoy sent a `CheckRequest` without HTTP attributes, method or path.
    #[error("missing request attributes")]
    MissingAttributes,
    /// Both header families arrived, or one description header twice: one
    /// of them was sent by the client.
    #[error("the request is described by both header families, or one header twice")]
    AmbiguousRequest,
    #[error("the proxy did not send the original method")]
    MissingMethod(Family),
    #[error("the proxy did not send the original URI")]
    MissingUri(Family),
    #[error("path is not absolute")]
    NotAbsolute,
    #[error("path contains an encoded slash or backslash")]
    EncodedSeparator,
    #[error("path contains an encoded dot segment")]
    EncodedDotSegment,
    #[error("path contains a ';' parameter")]
    MatrixParameter,
    #[error("path contains NUL or a control character")]
    ControlCharacter,
    #[error("path has invalid percent-encoding")]
    BadPercentEncoding,
    #[error("path climbs above the root")]
    AboveRoot,
}

/// A refusal, with its coarse code and its fine reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credential")]
    Missing,
    #[error("{0}")]
    Malformed(MalformedKind),
    #[error("token expired")]
    Expired,
    #[error("{0}")]
    Invalid(InvalidKind),
    #[error("{0}")]
    Session(SessionKind),
    #[error("{0}")]
    Forbidden(ForbiddenKind),
    /// No keys were ever loaded for this provider (its name is safe to log).
    #[error("no keys could be loaded for provider {0}")]
    JwksUnavailable(String),
    #[error("session store unavailable")]
    SessionUnavailable,
    #[error("{0}")]
    BadRequest(BadRequestKind),
    #[error("{0}")]
    Revoked(RevokedKind),
    #[error("rate limit {} exceeded", .0.policy)]
    RateLimited(Box<RateLimitDenial>),
    #[error("rate-limit store unavailable")]
    RateLimitUnavailable,
}

impl AuthError {
    /// The wire code.
    pub const fn code(&self) -> ErrorCode {
        match self {
            Self::Missing => ErrorCode::TokenMissing,
            Self::Malformed(_) => ErrorCode::TokenMalformed,
            Self::Expired => ErrorCode::TokenExpired,
            Self::Invalid(_) => ErrorCode::TokenInvalid,
            Self::Session(_) => ErrorCode::SessionInvalid,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::JwksUnavailable(_) => ErrorCode::JwksUnavailable,
            Self::SessionUnavailable => ErrorCode::SessionUnavailable,
            Self::BadRequest(_) => ErrorCode::BadRequest,
            Self::Revoked(_) => ErrorCode::TokenRevoked,
            Self::RateLimited(_) => ErrorCode::RateLimited,
            Self::RateLimitUnavailable => ErrorCode::RateLimitUnavailable,
        }
    }

    /// The fine reason for logs and metric labels: a fixed, low-cardinality string.
    pub const fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "token_missing",
            Self::Malformed(k) => match k {
                MalformedKind::TooLarge => "too_large",
                MalformedKind::NotThreeParts => "not_three_parts",
                MalformedKind::BadBase64 => "bad_base64",
                MalformedKind::BadJson => "bad_json",
                MalformedKind::NotAnObject => "not_an_object",
                MalformedKind::MultipleCredentials => "multiple_credentials",
                MalformedKind::BadCharacters => "bad_characters",
            },
            Self::Expired => "expired",
            Self::Invalid(k) => match k {
                InvalidKind::BadSignature => "bad_signature",
                InvalidKind::UnknownKid => "unknown_kid",
                InvalidKind::NoKid => "no_kid",
                InvalidKind::WrongAlg => "wrong_alg",
                InvalidKind::AlgNone => "alg_none",
                InvalidKind::EmptySignature => "empty_signature",
                InvalidKind::UnknownCrit => "unknown_crit",
                InvalidKind::UnknownIssuer => "unknown_issuer",
                InvalidKind::WrongIssuer => "wrong_issuer",
                InvalidKind::WrongAudience => "wrong_audience",
                InvalidKind::NotYetValid => "not_yet_valid",
                InvalidKind::IssuedInFuture => "issued_in_future",
                InvalidKind::MissingClaim => "missing_claim",
                InvalidKind::BadTimeClaim => "bad_time_claim",
                InvalidKind::LifetimeTooLong => "lifetime_too_long",
            },
            Self::Session(k) => match k {
                SessionKind::BadCookieSignature => "bad_cookie_signature",
                SessionKind::Unknown => "unknown_session",
                SessionKind::Expired => "session_expired",
                SessionKind::NotConfigured => "sessions_not_configured",
            },
            Self::Forbidden(k) => match k {
                ForbiddenKind::ClaimMismatch => "claim_mismatch",
                ForbiddenKind::PathClaimMismatch => "path_claim_mismatch",
                ForbiddenKind::BadHeaderValue => "bad_header_value",
                ForbiddenKind::UserBanned => "user_banned",
                ForbiddenKind::NotAMember => "not_a_member",
                ForbiddenKind::OrganizationRole => "organization_role",
            },
            Self::JwksUnavailable(_) => "jwks_unavailable",
            Self::SessionUnavailable => "session_unavailable",
            Self::BadRequest(k) => match k {
                BadRequestKind::MissingAttributes => "missing_attributes",
                BadRequestKind::AmbiguousRequest => "ambiguous_request",
                BadRequestKind::MissingMethod(_) => "missing_method",
                BadRequestKind::MissingUri(_) => "missing_uri",
                BadRequestKind::NotAbsolute => "not_absolute",
                BadRequestKind::EncodedSeparator => "encoded_separator",
                BadRequestKind::EncodedDotSegment => "encoded_dot_segment",
                BadRequestKind::MatrixParameter => "matrix_parameter",
                BadRequestKind::ControlCharacter => "control_character",
                BadRequestKind::BadPercentEncoding => "bad_percent_encoding",
                BadRequestKind::AboveRoot => "above_root",
            },
            Self::Revoked(k) => match k {
                RevokedKind::Subject => "revoked_subject",
                RevokedKind::SubjectBefore => "revoked_subject_before",
                RevokedKind::TokenId => "revoked_jti",
                RevokedKind::Session => "revoked_session",
            },
            Self::RateLimited(_) => "rate_limited",
            Self::RateLimitUnavailable => "rate_limit_unavailable",
        }
    }

    /// HTTP status.
    pub const fn http_status(&self) -> u16 {
        self.code().http_status()
    }

    /// gRPC code for `CheckResponse.status`.
    pub const fn grpc_code(&self) -> i32 {
        self.code().grpc_code()
    }

    /// The `WWW-Authenticate` value for 401 answers (RFC 6750), else `None`.
    /// `token_missing` carries no `error` attribute.
    pub fn www_authenticate(&self) -> Option<String> {
        match self.code() {
            ErrorCode::TokenMissing => Some("Bearer realm=\"gatehouse\"".to_owned()),
            code if code.http_status() == 401 => Some(format!(
                "Bearer realm=\"gatehouse\", error=\"invalid_token\", error_description=\"{}\"",
                code.message()
            )),
            _ => None,
        }
    }

    /// The human message of the JSON body: the code's, or for a request
    /// gatehouse cannot judge safely, what is wrong and the proxy line that
    /// fixes it.
    pub const fn message(&self) -> &'static str {
        match self {
            Self::BadRequest(kind) => bad_request_message(*kind),
            Self::Session(SessionKind::NotConfigured) => {
                "the credential is a session token, but no session lookup is configured: \
                 set BETTER_AUTH_URL, or configure session (introspect_url or postgres)"
            }
            Self::Forbidden(ForbiddenKind::UserBanned) => "the user is banned",
            other => other.code().message(),
        }
    }

    /// The JSON body `{"error": "...", "message": "..."}`.
    pub fn body(&self) -> String {
        // Both strings are fixed ASCII without quotes or backslashes.
        format!(
            "{{\"error\":\"{}\",\"message\":\"{}\"}}",
            self.code().as_str(),
            self.message()
        )
    }

    /// The refusal as every door sends it.
    pub fn deny_response(&self) -> DenyResponse {
        let mut headers = Vec::with_capacity(5);
        headers.push((CONTENT_TYPE, HeaderValue::from_static("application/json")));
        headers.push((CACHE_CONTROL, HeaderValue::from_static("no-store")));
        headers.push((ERROR_HEADER, HeaderValue::from_static(self.code().as_str())));
        headers.push((MESSAGE_HEADER, HeaderValue::from_static(self.message())));
        if let Some(challenge) = self.www_authenticate()
            && let Ok(value) = HeaderValue::from_str(&challenge)
        {
            headers.push((WWW_AUTHENTICATE, value));
        }
        if let Self::RateLimited(d) = self {
            headers.extend(d.headers());
        }
        DenyResponse {
            status: StatusCode::from_u16(self.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            grpc_code: self.grpc_code(),
            headers,
            body: self.body(),
        }
    }
}

impl RateLimitDenial {
    /// `Retry-After`, and the IETF `RateLimit` / `RateLimit-Policy` fields
    /// (`"per-user";r=0;t=12` and `"per-user";q=100;w=60`).
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::with_capacity(3);
        let name = sanitize_policy_name(&self.policy);
        for (header, value) in [
            (RETRY_AFTER, self.retry_after_secs.max(1).to_string()),
            (
                RATELIMIT_HEADER,
                format!("\"{name}\";r=0;t={}", self.reset_secs.max(1)),
            ),
            (
                RATELIMIT_POLICY_HEADER,
                format!("\"{name}\";q={};w={}", self.quota, self.window_secs.max(1)),
            ),
        ] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                out.push((header, value));
            }
        }
        out
    }
}

/// A policy name as a structured-field string: config names are letters,
/// digits, `-` and `_` already; anything else is dropped.
fn sanitize_policy_name(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

pub(crate) const RETRY_AFTER: HeaderName = http::header::RETRY_AFTER;

/// The IETF rate-limit fields (draft-ietf-httpapi-ratelimit-headers).
pub(crate) const RATELIMIT_HEADER: HeaderName = HeaderName::from_static("ratelimit");
pub(crate) const RATELIMIT_POLICY_HEADER: HeaderName = HeaderName::from_static("ratelimit-policy");

/// Response header naming the error code of a deny, for proxies that
/// render their own error page (nginx reads it with `auth_request_set`).
pub(crate) const ERROR_HEADER: HeaderName = HeaderName::from_static("x-gatehouse-error");

/// Response header carrying the message of a deny, so a proxy that
/// rebuilds the body (nginx) sends the same text gatehouse would.
pub(crate) const MESSAGE_HEADER: HeaderName = HeaderName::from_static("x-gatehouse-message");

/// A refusal, rendered once for both doors: the HTTP door sends it as its
/// response, the Envoy door as a `DeniedHttpResponse` with `grpc_code` as
/// the `CheckResponse` status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyResponse {
    pub status: StatusCode,
    /// `google.rpc.Code` of the `CheckResponse`.
    pub grpc_code: i32,
    /// `content-type`, `cache-control`, `x-gatehouse-error`,
    /// `x-gatehouse-message`, and `www-authenticate` on a 401.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `{"error": "...", "message": "..."}`.
    pub body: String,
}

/// What a `bad_request` says: the problem and, where the proxy's
/// configuration is at fault, the line that fixes it. No message contains
/// a double quote or a backslash, so each is a JSON string as it stands.
const fn bad_request_message(kind: BadRequestKind) -> &'static str {
    use BadRequestKind as B;
    match kind {
        B::MissingAttributes => "Envoy sent no HTTP method or path for the request to authorize",
        B::AmbiguousRequest => {
            "the request is described twice (X-Original-* and X-Forwarded-* headers, \
             or one of them repeated), so one description came from the client: \
             make the proxy set its own and drop the client's, or pin \
             http.request_headers to the family your proxy sets \
             (gatehouse proxy-config prints a safe configuration)"
        }
        B::MissingMethod(Family::Original) => {
            "the proxy sent X-Original-URI without X-Original-Method: add \
             `proxy_set_header X-Original-Method $request_method;` to the \
             nginx location that calls /auth"
        }
        B::MissingMethod(Family::Forwarded) => {
            "the proxy sent X-Forwarded-Uri without X-Forwarded-Method: \
             Traefik and Caddy set it themselves; for Envoy's HTTP mode add \
             `x-forwarded-method: %REQ(:METHOD)%` to headers_to_add \
             (gatehouse proxy-config envoy-http prints the configuration)"
        }
        B::MissingMethod(Family::Unknown) => {
            "the proxy did not send the original method: nginx needs \
             `proxy_set_header X-Original-Method $request_method;` in the \
             location that calls /auth; Traefik, Caddy and Envoy's HTTP mode \
             send X-Forwarded-Method (gatehouse proxy-config prints a working \
             configuration)"
        }
        B::MissingUri(Family::Original) => {
            "the proxy sent X-Original-Method without X-Original-URI: add \
             `proxy_set_header X-Original-URI $request_uri;` to the nginx \
             location that calls /auth"
        }
        B::MissingUri(Family::Forwarded) => {
            "the proxy sent X-Forwarded-Method without X-Forwarded-Uri: \
             Traefik and Caddy set it themselves; for Envoy's HTTP mode add \
             `x-forwarded-uri: %REQ(:PATH)%` to headers_to_add \
             (gatehouse proxy-config envoy-http prints the configuration)"
        }
        B::MissingUri(Family::Unknown) => {
            "the proxy did not send the original URI: nginx needs \
             `proxy_set_header X-Original-URI $request_uri;` in the location \
             that calls /auth; Traefik, Caddy and Envoy's HTTP mode send \
             X-Forwarded-Uri (gatehouse proxy-config prints a working \
             configuration)"
        }
        B::NotAbsolute => "the request path is not absolute and cannot be authorized safely",
        B::EncodedSeparator => {
            "the request path contains an encoded slash or backslash and cannot be \
             authorized safely"
        }
        B::EncodedDotSegment => {
            "the request path contains an encoded dot segment and cannot be authorized safely"
        }
        B::MatrixParameter => {
            "the request path contains a ';' parameter and cannot be authorized safely"
        }
        B::ControlCharacter => {
            "the request contains a control character or bytes that are not text \
             and cannot be authorized safely"
        }
        B::BadPercentEncoding => {
            "the request path has invalid percent-encoding and cannot be authorized safely"
        }
        B::AboveRoot => "the request path climbs above the root and cannot be authorized safely",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_error() -> Vec<AuthError> {
        use BadRequestKind as B;
        use ForbiddenKind as F;
        use InvalidKind as I;
        use MalformedKind as M;
        use SessionKind as S;
        let mut all = vec![
            AuthError::Missing,
            AuthError::Expired,
            AuthError::JwksUnavailable("p".into()),
            AuthError::SessionUnavailable,
        ];
        for m in [
            M::TooLarge,
            M::NotThreeParts,
            M::BadBase64,
            M::BadJson,
            M::NotAnObject,
            M::MultipleCredentials,
            M::BadCharacters,
        ] {
            all.push(AuthError::Malformed(m));
        }
        for i in [
            I::BadSignature,
            I::UnknownKid,
            I::NoKid,
            I::WrongAlg,
            I::AlgNone,
            I::EmptySignature,
            I::UnknownCrit,
            I::UnknownIssuer,
            I::WrongIssuer,
            I::WrongAudience,
            I::NotYetValid,
            I::IssuedInFuture,
            I::MissingClaim,
            I::BadTimeClaim,
            I::LifetimeTooLong,
        ] {
            all.push(AuthError::Invalid(i));
        }
        for s in [
            S::BadCookieSignature,
            S::Unknown,
            S::Expired,
            S::NotConfigured,
        ] {
            all.push(AuthError::Session(s));
        }
        for f in [
            F::ClaimMismatch,
            F::PathClaimMismatch,
            F::BadHeaderValue,
            F::UserBanned,
            F::NotAMember,
            F::OrganizationRole,
        ] {
            all.push(AuthError::Forbidden(f));
        }
        for b in [
            B::MissingAttributes,
            B::AmbiguousRequest,
            B::MissingMethod(Family::Original),
            B::MissingMethod(Family::Forwarded),
            B::MissingMethod(Family::Unknown),
            B::MissingUri(Family::Original),
            B::MissingUri(Family::Forwarded),
            B::MissingUri(Family::Unknown),
            B::NotAbsolute,
            B::EncodedSeparator,
            B::EncodedDotSegment,
            B::MatrixParameter,
            B::ControlCharacter,
            B::BadPercentEncoding,
            B::AboveRoot,
        ] {
            all.push(AuthError::BadRequest(b));
        }
        all
    }

    #[test]
    fn every_variant_formats_and_maps() {
        for e in every_error() {
            assert!(!e.to_string().is_empty());
            assert!(!e.reason().is_empty());
            let body: serde_json::Value = serde_json::from_str(&e.body()).expect("body is JSON");
            assert_eq!(body["error"], e.code().as_str());
            assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
            assert_eq!(body["message"], e.message());
            let status = e.http_status();
            assert!(matches!(status, 400 | 401 | 403 | 503));
            assert_eq!(e.www_authenticate().is_some(), status == 401);
        }
    }

    #[test]
    fn every_deny_carries_the_same_headers_on_both_doors() {
        for e in every_error() {
            let deny = e.deny_response();
            assert_eq!(deny.status.as_u16(), e.http_status());
            assert_eq!(deny.grpc_code, e.grpc_code());
            assert_eq!(deny.body, e.body());
            let get = |name: &str| {
                deny.headers
                    .iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, v)| v.to_str().expect("ASCII"))
                    .collect::<Vec<_>>()
            };
            assert_eq!(get("content-type"), ["application/json"]);
            assert_eq!(get("cache-control"), ["no-store"]);
            assert_eq!(get("x-gatehouse-error"), [e.code().as_str()]);
            assert_eq!(get("x-gatehouse-message"), [e.message()]);
            // Proxies paste the message into a JSON string as it stands.
            assert!(!e.message().contains(['"', '\\']), "{}", e.message());
            assert_eq!(
                get("www-authenticate").len(),
                usize::from(e.http_status() == 401)
            );
        }
    }

    #[test]
    fn a_missing_description_names_the_header_and_the_fix() {
        use BadRequestKind as B;
        let msg = |k| AuthError::BadRequest(k).message();
        assert!(
            msg(B::MissingMethod(Family::Original))
                .contains("proxy_set_header X-Original-Method $request_method;")
        );
        assert!(
            msg(B::MissingUri(Family::Original))
                .contains("proxy_set_header X-Original-URI $request_uri;")
        );
        assert!(msg(B::MissingMethod(Family::Forwarded)).contains("X-Forwarded-Method"));
        assert!(msg(B::MissingUri(Family::Forwarded)).contains("X-Forwarded-Uri"));
        assert!(!msg(B::MissingMethod(Family::Unknown)).contains("path"));
        assert_eq!(
            AuthError::BadRequest(B::MissingMethod(Family::Unknown)).reason(),
            "missing_method"
        );
        assert_eq!(
            AuthError::BadRequest(B::AmbiguousRequest).reason(),
            "ambiguous_request"
        );
    }

    #[test]
    fn table_matches_spec() {
        assert_eq!(AuthError::Missing.http_status(), 401);
        assert_eq!(
            AuthError::Forbidden(ForbiddenKind::ClaimMismatch).http_status(),
            403
        );
        assert_eq!(AuthError::JwksUnavailable("x".into()).http_status(), 503);
        assert_eq!(AuthError::SessionUnavailable.http_status(), 503);
        assert_eq!(
            AuthError::BadRequest(BadRequestKind::MatrixParameter).http_status(),
            400
        );
        assert_eq!(AuthError::Missing.grpc_code(), 16);
        assert_eq!(
            AuthError::Forbidden(ForbiddenKind::ClaimMismatch).grpc_code(),
            7
        );
        assert_eq!(AuthError::SessionUnavailable.grpc_code(), 14);
    }

    #[test]
    fn missing_token_challenge_has_no_error_attribute() {
        let c = AuthError::Missing
            .www_authenticate()
            .expect("401 has a challenge");
        assert_eq!(c, "Bearer realm=\"gatehouse\"");
        let c = AuthError::Expired
            .www_authenticate()
            .expect("401 has a challenge");
        assert!(c.contains("error=\"invalid_token\""));
        assert!(c.contains("error_description="));
    }
}
