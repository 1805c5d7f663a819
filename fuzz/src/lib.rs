//! What the gatehouse fuzz targets share: fixed keys and secrets (so seed
//! tokens stay valid from one run to the next), the configurations the
//! targets decide with, a runtime, and small independent helpers (base64url,
//! HMAC, Ed25519, JSON from fuzz input) used as oracles.
//!
//! Everything of gatehouse is reached through its public API
//! (`gatehouse::…`); nothing here reimplements what gatehouse does, except
//! where a target needs a second opinion to compare against.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use arbitrary::Unstructured;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse::internals::AppState;
use gatehouse::internals::Authorizer;
use gatehouse::internals::Metrics;
use gatehouse::internals::{Config, Env, LoadOptions};
use serde_json::{Map, Value, json};

/// `iss` of the HMAC provider (`fuzz-secret`).
pub const ISSUER: &str = "https://issuer.fuzz.test";
/// `iss` of the Ed25519 key-file provider (`fuzz-ed`).
pub const ED_ISSUER: &str = "https://ed.fuzz.test";
/// The audience every provider with an issuer requires.
pub const AUDIENCE: &str = "api";
/// The HMAC secret of `fuzz-secret` (env `FUZZ_SECRET`).
pub const SECRET: &[u8] = b"gatehouse-fuzz-secret-0123456789";
/// The HMAC secret of `fuzz-bare`, a provider without issuer (env `FUZZ_BARE_SECRET`).
pub const BARE_SECRET: &[u8] = b"gatehouse-fuzz-bare-secret-98765";
/// Seed of the fixed Ed25519 key of `fuzz-ed`.
pub const ED_SEED: [u8; 32] = *b"gatehouse fuzz ed25519 key seed!";
/// The kid of the Ed25519 key in its JWKS.
pub const ED_KID: &str = "fuzz-ed";
/// `exp` of every seed token: 2100-01-01.
pub const FAR_EXP: i64 = 4_102_444_800;
/// `iat` of every seed token: 2024-01-01.
pub const PAST_IAT: i64 = 1_704_067_200;

/// The environment the fuzz configurations read their secrets from.
pub fn env() -> Env {
    Env::default()
        .with(
            "FUZZ_SECRET",
            std::str::from_utf8(SECRET).unwrap_or_default(),
        )
        .with(
            "FUZZ_BARE_SECRET",
            std::str::from_utf8(BARE_SECRET).unwrap_or_default(),
        )
        .with(
            "FUZZ_DATABASE_URL",
            "postgres://gatehouse:pw@127.0.0.1:1/betterauth",
        )
        .with(
            "BETTER_AUTH_SECRET_FOR_FUZZ",
            "better-auth-fuzz-secret-0123456789",
        )
}

/// One current-thread runtime per process.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// The fixed Ed25519 key.
pub fn ed_key() -> &'static Ed25519KeyPair {
    static KEY: OnceLock<Ed25519KeyPair> = OnceLock::new();
    KEY.get_or_init(|| Ed25519KeyPair::from_seed_unchecked(&ED_SEED).expect("ed25519 seed"))
}

/// The public half of [`ed_key`].
pub fn ed_public() -> &'static [u8] {
    ed_key().public_key().as_ref()
}

/// An independent Ed25519 check with aws-lc-rs.
pub fn ed_verifies(message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, ed_public())
        .verify(message, signature)
        .is_ok()
}

/// HMAC with `alg` (HS256/384/512); `None` for any other name.
pub fn hmac(alg: &str, secret: &[u8], message: &[u8]) -> Option<Vec<u8>> {
    let algorithm = match alg {
        "HS256" => aws_lc_rs::hmac::HMAC_SHA256,
        "HS384" => aws_lc_rs::hmac::HMAC_SHA384,
        "HS512" => aws_lc_rs::hmac::HMAC_SHA512,
        _ => return None,
    };
    let key = aws_lc_rs::hmac::Key::new(algorithm, secret);
    Some(aws_lc_rs::hmac::sign(&key, message).as_ref().to_vec())
}

/// The JWKS document holding the fixed Ed25519 key.
pub fn jwks_doc() -> String {
    json!({"keys": [{
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64(ed_public()),
        "kid": ED_KID,
        "use": "sig",
        "alg": "EdDSA",
    }]})
    .to_string()
}

/// [`jwks_doc`] on disk, written once per process (the same bytes every time).
pub fn jwks_file() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        // One shared file with the same bytes for every process; written
        // aside and renamed, so a concurrent reader never sees half of it.
        let dir = std::env::temp_dir().join("gatehouse-fuzz");
        std::fs::create_dir_all(&dir).expect("fuzz temp dir");
        let path = dir.join("ed25519-jwks.json");
        let aside = dir.join(format!("jwks.{}.tmp", std::process::id()));
        std::fs::write(&aside, jwks_doc()).expect("fuzz jwks file");
        std::fs::rename(&aside, &path).expect("fuzz jwks file in place");
        path
    })
}

/// A compact JWS over exactly these header and payload bytes, signed with
/// the fixed Ed25519 key (`EdDSA`) or an HMAC secret (`HS*`).
pub fn sign_raw(alg: &str, secret: &[u8], header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let signature = match alg {
        "EdDSA" => ed_key().sign(input.as_bytes()).as_ref().to_vec(),
        other => hmac(other, secret, input.as_bytes()).unwrap_or_default(),
    };
    format!("{input}.{}", b64(&signature))
}

/// Claims every provider with an issuer accepts until 2100.
pub fn good_claims(iss: &str, sub: &str) -> Value {
    json!({
        "iss": iss,
        "aud": AUDIENCE,
        "sub": sub,
        "iat": PAST_IAT,
        "exp": FAR_EXP,
        "email": format!("{sub}@example.test"),
        "name": format!("User {sub}"),
        "role": "admin",
    })
}

/// A token of `fuzz-secret` (HS256) for `sub`, valid until 2100.
pub fn secret_token(sub: &str) -> String {
    let header = json!({"alg": "HS256", "typ": "JWT"}).to_string();
    let claims = good_claims(ISSUER, sub).to_string();
    sign_raw("HS256", SECRET, header.as_bytes(), claims.as_bytes())
}

/// A token of `fuzz-ed` (EdDSA) for `sub`, valid until 2100.
pub fn ed_token(sub: &str) -> String {
    let header = json!({"alg": "EdDSA", "kid": ED_KID}).to_string();
    let claims = good_claims(ED_ISSUER, sub).to_string();
    sign_raw("EdDSA", &[], header.as_bytes(), claims.as_bytes())
}

/// The verification configuration of the `token` target: an HMAC provider
/// with issuer and audience, the same without issuer, and the Ed25519 key
/// file.
pub fn token_config_yaml() -> String {
    format!(
        r#"
providers:
  - name: fuzz-secret
    issuer: {ISSUER}
    audiences: [{AUDIENCE}]
    secret_env: FUZZ_SECRET
  - name: fuzz-bare
    secret_env: FUZZ_BARE_SECRET
    algorithms: [HS256]
  - name: fuzz-ed
    issuer: {ED_ISSUER}
    audiences: [{AUDIENCE}]
    jwks_file: {}
token_sources:
  - header: authorization
  - header: x-api-token
  - cookie: better-auth.session_token
  - query: access_token
"#,
        jwks_file().display()
    )
}

/// The configuration both doors are fuzzed with: one HMAC provider, public,
/// optional and claim-checked rules, and the given `http.request_headers`.
pub fn door_config_yaml(request_headers: &str) -> String {
    format!(
        r#"
providers:
  - name: fuzz-secret
    issuer: {ISSUER}
    audiences: [{AUDIENCE}]
    secret_env: FUZZ_SECRET
    algorithms: [HS256]
token_sources:
  - header: authorization
  - cookie: better-auth.session_token
  - query: access_token
identity_headers:
  x-user-id: sub
  x-user-email: email
  x-user-role: role
rules:
  - match: {{ path: /healthz }}
    access: public
  - match: {{ path_prefix: /public }}
    access: public
  - match: {{ path: "/api/catalog/**", methods: [GET, HEAD] }}
    access: optional
  - match: {{ path: "/api/users/{{user_id}}/**" }}
    path_claims: {{ user_id: sub }}
  - match: {{ path_prefix: /admin, hosts: ["*.example.com"] }}
    claims: {{ role: admin }}
default_access: authenticated
http:
  request_headers: {request_headers}
"#
    )
}

/// A compiled configuration from YAML text and [`env`].
pub fn config(yaml: &str) -> Config {
    let opts = LoadOptions {
        env: env(),
        ..LoadOptions::default()
    };
    Config::from_yaml(yaml, &opts).expect("the fuzz configuration compiles")
}

pub fn authorizer(yaml: &str) -> Authorizer {
    Authorizer::new(Arc::new(config(yaml)), Arc::new(Metrics::new()))
        .expect("the fuzz authorizer builds")
}

pub fn app_state(yaml: &str) -> Arc<AppState> {
    AppState::new(authorizer(yaml), None)
}

/// Header lines `name: value` (or `name:value`), one per `\n`; a line
/// without `:` is skipped. Values keep their bytes (a single space after
/// the colon is dropped), so they may hold anything but `\n`.
pub fn header_lines(block: &[u8]) -> Vec<(&[u8], &[u8])> {
    block
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            // A leading ':' is part of the name (pseudo-headers).
            let colon = if colon == 0 {
                1 + line.get(1..)?.iter().position(|&b| b == b':')?
            } else {
                colon
            };
            let (name, value) = (&line[..colon], &line[colon + 1..]);
            let value = value.strip_prefix(b" ").unwrap_or(value);
            Some((name, value))
        })
        .collect()
}

/// A JSON value from fuzz input, at most `depth` levels deep.
pub fn json_value(u: &mut Unstructured<'_>, depth: u32) -> arbitrary::Result<Value> {
    let kind = if depth == 0 {
        u.int_in_range(0..=5)?
    } else {
        u.int_in_range(0..=7)?
    };
    Ok(match kind {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::from(u.arbitrary::<i64>()?),
        3 => serde_json::Number::from_f64(u.arbitrary::<f64>()?).map_or(Value::Null, Value::Number),
        4 => Value::from(u.arbitrary::<u64>()?),
        5 => Value::String(u.arbitrary()?),
        6 => {
            let n = u.int_in_range(0..=4)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(json_value(u, depth - 1)?);
            }
            Value::Array(items)
        }
        _ => Value::Object(json_object(u, depth - 1)?),
    })
}

/// A JSON object from fuzz input.
pub fn json_object(u: &mut Unstructured<'_>, depth: u32) -> arbitrary::Result<Map<String, Value>> {
    let n = u.int_in_range(0..=5)?;
    let mut map = Map::new();
    for _ in 0..n {
        let key: String = u.arbitrary()?;
        map.insert(key, json_value(u, depth)?);
    }
    Ok(map)
}
