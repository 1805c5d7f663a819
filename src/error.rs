//! The authorization errors: the SPEC §5 table, in exactly one place.
//!
//! Each [`AuthError`] has a coarse wire code ([`ErrorCode`], what clients and
//! proxies see) and a fine reason (`reason()`, what logs and metrics see).
//! The mapping to HTTP status, gRPC code, `WWW-Authenticate` and JSON body
//! lives here and nowhere else; the doors only render it.
//!
//! Messages never contain the token or any part of it.

use std::fmt;

/// The wire error codes of SPEC §5.
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
        }
    }

    /// The HTTP status the client sees.
    pub const fn http_status(self) -> u16 {
        match self {
            Self::TokenMissing
            | Self::TokenMalformed
            | Self::TokenExpired
            | Self::TokenInvalid
            | Self::SessionInvalid => 401,
            Self::Forbidden => 403,
            Self::JwksUnavailable | Self::SessionUnavailable => 503,
            Self::BadRequest => 400,
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
            | Self::SessionInvalid => 16,
            // PERMISSION_DENIED
            Self::Forbidden => 7,
            // UNAVAILABLE
            Self::JwksUnavailable | Self::SessionUnavailable => 14,
            // INVALID_ARGUMENT
            Self::BadRequest => 3,
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
            Self::BadRequest => "the request path cannot be authorized safely",
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
    #[error("the key that verified this token was removed")]
    KeyRemoved,
    #[error("a JWT was presented where only a session is accepted")]
    NotASession,
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
}

/// Why a request path cannot be matched safely (→ `bad_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadRequestKind {
    #[error("missing request attributes")]
    MissingAttributes,
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
                InvalidKind::KeyRemoved => "key_removed",
                InvalidKind::NotASession => "not_a_session",
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
            },
            Self::JwksUnavailable(_) => "jwks_unavailable",
            Self::SessionUnavailable => "session_unavailable",
            Self::BadRequest(k) => match k {
                BadRequestKind::MissingAttributes => "missing_attributes",
                BadRequestKind::NotAbsolute => "not_absolute",
                BadRequestKind::EncodedSeparator => "encoded_separator",
                BadRequestKind::EncodedDotSegment => "encoded_dot_segment",
                BadRequestKind::MatrixParameter => "matrix_parameter",
                BadRequestKind::ControlCharacter => "control_character",
                BadRequestKind::BadPercentEncoding => "bad_percent_encoding",
                BadRequestKind::AboveRoot => "above_root",
            },
        }
    }

    /// HTTP status (SPEC §5).
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

    /// The JSON body `{"error": "...", "message": "..."}`.
    pub fn body(&self) -> String {
        let code = self.code();
        // Both strings are fixed ASCII without quotes or backslashes.
        format!(
            "{{\"error\":\"{}\",\"message\":\"{}\"}}",
            code.as_str(),
            code.message()
        )
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
            I::KeyRemoved,
            I::NotASession,
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
        for f in [F::ClaimMismatch, F::PathClaimMismatch, F::BadHeaderValue] {
            all.push(AuthError::Forbidden(f));
        }
        for b in [
            B::MissingAttributes,
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
            let status = e.http_status();
            assert!(matches!(status, 400 | 401 | 403 | 503));
            assert_eq!(e.www_authenticate().is_some(), status == 401);
        }
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
