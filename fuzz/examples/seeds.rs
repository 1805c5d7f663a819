//! Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/):
//! real `CheckRequest`s encoded with prost, tokens signed with the fuzz
//! keys, JWKS documents, tricky paths, header sets and configurations.
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example seeds -- \
//!         fuzz/corpus [../shared/external-vectors]
//!
//! Seeds are small and named for what they hold; running it again writes
//! the same files (Ed25519 and HMAC signatures are deterministic).

use std::path::{Path, PathBuf};

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3 as pb;
use gatehouse_fuzz::{
    AUDIENCE, BARE_SECRET, ED_ISSUER, ED_KID, FAR_EXP, ISSUER, PAST_IAT, SECRET, b64,
    door_config_yaml, ed_token, good_claims, jwks_doc, secret_token, sign_raw,
};
use prost::Message;
use serde_json::{Value, json};

struct Out(PathBuf);

impl Out {
    fn put(&self, target: &str, name: &str, bytes: impl AsRef<[u8]>) {
        let dir = self.0.join(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        std::fs::write(dir.join(name), bytes).expect("seed written");
    }
}

fn with_mode(mode: u8, rest: impl AsRef<[u8]>) -> Vec<u8> {
    let mut v = vec![mode];
    v.extend_from_slice(rest.as_ref());
    v
}

fn main() {
    let mut args = std::env::args().skip(1);
    let out = Out(PathBuf::from(
        args.next().unwrap_or_else(|| "fuzz/corpus".into()),
    ));
    let vectors = args.next().map(PathBuf::from);
    positive_controls();
    check_request(&out);
    token(&out, vectors.as_deref());
    path_rules(&out);
    jwks(&out, vectors.as_deref());
    http_description(&out);
    config_yaml(&out);
}

/// The seed tokens verify with the targets' configurations, so the
/// targets start from accepted tokens, not only refused ones.
fn positive_controls() {
    let authz = gatehouse_fuzz::authorizer(&gatehouse_fuzz::token_config_yaml());
    for token in [secret_token("u1"), ed_token("u1")] {
        let verified = gatehouse_fuzz::runtime().block_on(authz.verifier().verify(&token));
        assert!(verified.is_ok(), "seed token refused: {verified:?}");
    }
    let door = gatehouse_fuzz::authorizer(&door_config_yaml("auto"));
    let verified = gatehouse_fuzz::runtime().block_on(door.verifier().verify(&secret_token("u1")));
    assert!(
        verified.is_ok(),
        "seed token refused by the doors: {verified:?}"
    );
}

fn http_request(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    raw: Option<&[(&str, &[u8])]>,
) -> pb::CheckRequest {
    pb::CheckRequest {
        attributes: Some(pb::AttributeContext {
            request: Some(pb::attribute_context::Request {
                http: Some(pb::attribute_context::HttpRequest {
                    id: "14523395733206893186".into(),
                    method: method.into(),
                    path: path.into(),
                    host: "app.example.com".into(),
                    scheme: "https".into(),
                    protocol: "HTTP/1.1".into(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                    header_map: raw.map(|list| HeaderMap {
                        headers: list
                            .iter()
                            .map(|(k, v)| HeaderValue {
                                key: (*k).to_owned(),
                                value: String::new(),
                                raw_value: v.to_vec(),
                            })
                            .collect(),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

fn check_request(out: &Out) {
    let t = "check_request";
    let bearer = format!("Bearer {}", secret_token("u1"));
    let seeds: Vec<(&str, pb::CheckRequest)> = vec![
        ("empty", pb::CheckRequest::default()),
        (
            "headers-map-bearer",
            http_request(
                "GET",
                "/api/users/u1/profile?tab=1",
                &[
                    (":authority", "app.example.com"),
                    ("authorization", &bearer),
                    ("x-request-id", "r-1"),
                    ("user-agent", "curl/8"),
                ],
                None,
            ),
        ),
        (
            "raw-header-map",
            http_request(
                "",
                "",
                &[],
                Some(&[
                    (":method", b"POST"),
                    (":path", b"/admin/x"),
                    (":authority", b"a.example.com"),
                    ("authorization", bearer.as_bytes()),
                    ("cookie", b"a=1"),
                    ("cookie", b"better-auth.session_token=tok.sig"),
                ]),
            ),
        ),
        (
            "raw-non-utf8",
            http_request(
                "GET",
                "/public/x",
                &[],
                Some(&[("x-bytes", &[0xff, b'x', 0x80])]),
            ),
        ),
        (
            "public-healthz",
            http_request("GET", "/healthz", &[("host", "h")], None),
        ),
        (
            "dot-segments",
            http_request("GET", "/public/../admin/%2e%2e/x", &[], None),
        ),
    ];
    for (name, request) in &seeds {
        out.put(
            t,
            &format!("raw-{name}"),
            with_mode(b'0', request.encode_to_vec()),
        );
    }
    // Fields gatehouse skips: peers, certificates, extensions, metadata, body.
    let mut full = http_request("GET", "/api/catalog/1", &[("authorization", &bearer)], None);
    if let Some(a) = full.attributes.as_mut() {
        a.source = Some(pb::attribute_context::Peer {
            principal: "spiffe://cluster.local/ns/app/sa/web".into(),
            certificate: "-----BEGIN CERTIFICATE-----".into(),
            ..Default::default()
        });
        a.context_extensions = [("route".to_owned(), "catalog".to_owned())].into();
        a.tls_session = Some(pb::attribute_context::TlsSession {
            sni: "app.example.com".into(),
        });
        if let Some(h) = a.request.as_mut().and_then(|r| r.http.as_mut()) {
            h.body = "{\"q\":1}".into();
            h.raw_body = vec![0, 1, 2, 3];
            h.size = 7;
        }
    }
    out.put(
        t,
        "raw-skipped-fields",
        with_mode(b'0', full.encode_to_vec()),
    );
    out.put(t, "built-small", b"1abcdefghijklmnopqrstuvwxyz0123456789");
    out.put(t, "allow-small", b"2\x03x-user-id\x02u1\x01\x01{}");
}

fn token(out: &Out, vectors: Option<&Path>) {
    let t = "token";
    let hs = |alg: &str, secret: &[u8], header: Value, claims: Value| {
        sign_raw(
            alg,
            secret,
            header.to_string().as_bytes(),
            claims.to_string().as_bytes(),
        )
    };
    let good = good_claims(ISSUER, "u1");
    let mut expired = good.clone();
    expired["exp"] = json!(PAST_IAT + 60);
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!(["other", "more"]);
    let bare = json!({"sub": "u2", "exp": FAR_EXP, "iat": PAST_IAT});
    let tokens = [
        ("hs256", secret_token("u1")),
        ("eddsa", ed_token("u1")),
        (
            "hs384",
            hs("HS384", SECRET, json!({"alg": "HS384"}), good.clone()),
        ),
        (
            "hs512-kid",
            hs(
                "HS512",
                SECRET,
                json!({"alg": "HS512", "kid": "x"}),
                good.clone(),
            ),
        ),
        (
            "bare-hs256",
            hs("HS256", BARE_SECRET, json!({"alg": "HS256"}), bare.clone()),
        ),
        (
            "expired",
            hs("HS256", SECRET, json!({"alg": "HS256"}), expired),
        ),
        (
            "wrong-aud",
            hs("HS256", SECRET, json!({"alg": "HS256"}), wrong_aud),
        ),
        (
            "alg-none",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none"}"#),
                b64(good.to_string().as_bytes())
            ),
        ),
        (
            "crit",
            hs(
                "HS256",
                SECRET,
                json!({"alg": "HS256", "crit": ["exp"]}),
                good.clone(),
            ),
        ),
        (
            "kid-number",
            hs(
                "HS256",
                SECRET,
                json!({"alg": "HS256", "kid": 7}),
                good.clone(),
            ),
        ),
        (
            "jku-ignored",
            hs(
                "HS256",
                SECRET,
                json!({"alg": "HS256", "jku": "https://evil.test/jwks"}),
                good.clone(),
            ),
        ),
        ("four-parts", format!("{}.x", secret_token("u1"))),
    ];
    for (name, token) in &tokens {
        out.put(t, &format!("verify-{name}"), with_mode(b'0', token));
    }
    // Tokens from public vectors (other keys: they never verify here).
    if let Some(dir) = vectors {
        let mut n = 0;
        if let Ok(text) =
            std::fs::read_to_string(dir.join("wycheproof/json_web_signature_test.json"))
            && let Ok(doc) = serde_json::from_str::<Value>(&text)
        {
            for group in doc["testGroups"].as_array().into_iter().flatten() {
                for test in group["tests"].as_array().into_iter().flatten().step_by(9) {
                    if let Some(jws) = test["jws"].as_str().filter(|j| j.len() < 2048) {
                        out.put(t, &format!("wycheproof-{n:02}"), with_mode(b'0', jws));
                        n += 1;
                    }
                }
            }
        }
        if let Ok(text) = std::fs::read_to_string(dir.join("rfc8037/curve25519_jws.json"))
            && let Ok(doc) = serde_json::from_str::<Value>(&text)
            && let Some(jws) = doc["output"]["compact"].as_str()
        {
            out.put(t, "rfc8037-eddsa", with_mode(b'0', jws));
        }
    }
    let headers = [
        (
            "bearer",
            format!("authorization: Bearer {}\n", secret_token("u1")),
        ),
        (
            "bearer-twice",
            format!(
                "authorization: Bearer {}\nauthorization: Bearer x.y.z\n",
                secret_token("u1")
            ),
        ),
        ("api-header", format!("x-api-token: {}\n", ed_token("u1"))),
        (
            "cookie-and-query",
            format!(
                "cookie: a=1; better-auth.session_token=\"{}\"\n?access_token={}&x=1\n",
                secret_token("u1"),
                secret_token("u1")
            ),
        ),
        (
            "session-cookie",
            "cookie: __Secure-better-auth.session_token=abc%2Edef\n".to_owned(),
        ),
        ("basic", "authorization: Basic dXNlcjpwdw==\n".to_owned()),
    ];
    for (name, block) in &headers {
        out.put(t, &format!("extract-{name}"), with_mode(b'1', block));
    }
    let signed = [
        ("hs256", b'1', json!({"alg": "HS256"}), good.clone()),
        (
            "eddsa",
            b'0',
            json!({"alg": "EdDSA", "kid": ED_KID}),
            good_claims(ED_ISSUER, "u1"),
        ),
        ("hs512", b'3', json!({"alg": "HS512"}), good.clone()),
        ("bare", b'4', json!({"alg": "HS256"}), bare),
        ("alg-mismatch", b'1', json!({"alg": "HS384"}), good.clone()),
        (
            "fractional-times",
            b'2',
            json!({"alg": "HS384"}),
            json!({"iss": ISSUER, "aud": [AUDIENCE], "exp": 4.1e9, "nbf": 1.5, "iat": -1}),
        ),
    ];
    for (name, key, header, claims) in &signed {
        let mut v = vec![b'2', *key];
        v.extend_from_slice(header.to_string().as_bytes());
        v.push(0);
        v.extend_from_slice(claims.to_string().as_bytes());
        out.put(t, &format!("signed-{name}"), v);
    }
}

fn path_rules(out: &Out) {
    let t = "path_rules";
    let cases: &[(&str, u8, &str, &str, &str, &str)] = &[
        ("api-user", 0, "GET", "", "", "/api/u1/profile"),
        ("api-encoded", 0, "post", "", "", "/api/%75%31/x%2fy"),
        ("admin-dots", 0, "GET", "", "", "/public/../%61dmin/./x/"),
        ("above-root", 0, "GET", "", "", "/a/../../etc/passwd"),
        ("encoded-dot", 0, "GET", "", "", "/x/%2e%2E/y"),
        ("matrix", 0, "GET", "", "", "/admin;jsessionid=1"),
        ("backslash", 0, "GET", "", "", "/admin\\x"),
        ("nul", 0, "GET", "", "", "/a%00b"),
        ("double-escape", 0, "GET", "", "", "/%252e%252e/admin"),
        (
            "docs-host",
            0,
            "GET",
            "WWW.Example.COM.:8443",
            "",
            "/docs/a/b/intro%20page",
        ),
        ("docs-v6", 0, "GET", "[::1]:80", "", "/docs/x"),
        (
            "orgs",
            0,
            "DELETE",
            "api.example.com",
            "",
            "/orgs/o%201/teams/t~1",
        ),
        ("preflight", 1, "OPTIONS", "", "", "/admin/users"),
        ("preflight-api", 1, "OPTIONS", "", "", "/api/u1"),
        ("x-any", 0, "GET", "", "", "//x//s//y?q=1#f"),
        ("unicode", 0, "GET", "", "", "/é/ü/%C3%A9"),
        ("template", 0, "GET", "", "/a/{p}/**/b/*", "/a/1/m/b/c"),
        ("template-unicode", 0, "GET", "", "/é/{x}/a?b", "/"),
        ("template-escape", 0, "GET", "", "/%41/{x}", "/A/1"),
    ];
    for (name, flags, method, host, template, path) in cases {
        out.put(
            t,
            name,
            format!("{}{method}\n{host}\n{template}\n{path}", char::from(*flags)),
        );
    }
}

fn jwks(out: &Out, vectors: Option<&Path>) {
    let t = "jwks";
    out.put(t, "fuzz-ed25519", with_mode(b'0', jwks_doc()));
    out.put(
        t,
        "rfc8037-okp",
        with_mode(
            b'0',
            r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#,
        ),
    );
    out.put(
        t,
        "mixed-unusable",
        with_mode(
            b'2',
            r#"{"keys":[{"kty":"oct","k":"AAAA"},{"kty":"OKP","crv":"Ed25519","x":"AA","use":"enc"},"x",null,{"kty":"RSA","n":"AQAB","e":"AQAB","key_ops":["sign"]}]}"#,
        ),
    );
    out.put(t, "not-json", with_mode(b'0', "{\"keys\": [}"));
    out.put(t, "no-keys", with_mode(b'0', "{\"key\": []}"));
    out.put(t, "built", b"\x01\x00abcdefghijklmnopqrstuvwxyz0123456789");
    let Some(dir) = vectors else {
        return;
    };
    let mut n = 0;
    let mut put_doc = |doc: &Value, flags: u8| {
        let text = doc.to_string();
        if text.len() < 8192 {
            // Every other one with an allow-list, so both kinds get used.
            let flags = if n % 2 == 0 { flags } else { flags | 4 };
            out.put(t, &format!("vector-{n:02}"), with_mode(flags, text));
            n += 1;
        }
    };
    if let Ok(text) = std::fs::read_to_string(dir.join("envoy/envoy_jwt_authn_test_common.json"))
        && let Ok(doc) = serde_json::from_str::<Value>(&text)
        && let Some(sets) = doc["jwks"].as_object()
    {
        for set in sets.values() {
            put_doc(set, b'0');
        }
    }
    if let Ok(text) =
        std::fs::read_to_string(dir.join("jwt_verify_lib/jwt_verify_lib_test_constants.json"))
        && let Ok(doc) = serde_json::from_str::<Value>(&text)
        && let Some(files) = doc["constants"].as_object()
    {
        for consts in files.values().filter_map(Value::as_object) {
            for c in consts.values() {
                if let Some(raw) = c["value"].as_str()
                    && let Ok(v) = serde_json::from_str::<Value>(raw)
                    && v.get("keys").is_some()
                {
                    put_doc(&v, b'0');
                }
            }
        }
    }
    if let Ok(text) = std::fs::read_to_string(dir.join("wycheproof/json_web_key_test.json"))
        && let Ok(doc) = serde_json::from_str::<Value>(&text)
    {
        for group in doc["testGroups"].as_array().into_iter().flatten() {
            if let Some(public) = group.get("public").filter(|p| p.get("keys").is_some()) {
                put_doc(public, b'0');
            }
        }
    }
}

fn http_description(out: &Out) {
    let t = "http_description";
    let token = secret_token("u1");
    let cases: Vec<(&str, u8, String)> = vec![
        (
            "nginx",
            0,
            "x-original-method: GET\nx-original-uri: /api/users/u1/x?y=1\nhost: gatehouse:8080\nx-forwarded-host: app.example.com\nx-request-id: r-1\n".into(),
        ),
        (
            "traefik",
            0,
            "x-forwarded-method: POST\nx-forwarded-uri: /public/form\nx-forwarded-proto: https\nx-forwarded-host: app.example.com\n".into(),
        ),
        (
            "both-families",
            0,
            "x-forwarded-method: GET\nx-forwarded-uri: /api/me\nx-original-uri: /public\n".into(),
        ),
        (
            "pinned-original",
            1,
            "x-original-method: OPTIONS\nx-original-uri: /public\nx-forwarded-method: GET\nx-forwarded-uri: /api/me\n".into(),
        ),
        (
            "pinned-forwarded-token",
            2 | 4,
            "x-original-method: OPTIONS\nx-original-uri: /public\nx-forwarded-method: GET\nx-forwarded-uri: /api/users/u1/x\n".into(),
        ),
        (
            "repeated-uri",
            0,
            "x-original-method: GET\nx-original-uri: /a\nx-original-uri: /b\n".into(),
        ),
        (
            "admin-token",
            0,
            format!("x-original-method: GET\nx-original-uri: /admin/x\nhost: a.example.com\nauthorization: Bearer {token}\n"),
        ),
        (
            "preflight",
            0,
            "x-original-method: OPTIONS\nx-original-uri: /admin\naccess-control-request-method: DELETE\n".into(),
        ),
        (
            "catalog-optional",
            0,
            "x-forwarded-method: HEAD\nx-forwarded-uri: /api/catalog/%2e/1\ncookie: better-auth.session_token=abc\n".into(),
        ),
        (
            "obs-text",
            0,
            "x-original-method: G\u{e9}T\nx-original-uri: /public/\u{e9}\n".into(),
        ),
        (
            "empty-method",
            0,
            "x-original-method: \nx-original-uri: /public\n".into(),
        ),
    ];
    for (name, flags, block) in &cases {
        out.put(t, name, with_mode(*flags, block));
    }
}

fn config_yaml(out: &Out) {
    let t = "config_yaml";
    for (name, path) in [
        ("deploy-base", "deploy/kubernetes/base/gatehouse.yaml"),
        (
            "deploy-better-auth",
            "deploy/kubernetes/overlays/better-auth/gatehouse.yaml",
        ),
    ] {
        if let Ok(text) = std::fs::read_to_string(path) {
            out.put(t, name, text);
        }
    }
    out.put(t, "door", door_config_yaml("auto"));
    out.put(t, "empty", "");
    out.put(
        t,
        "everything",
        r#"grpc_addr: 127.0.0.1:9001
http_addr: "[::1]:8080"
providers:
  - name: idp
    discovery: https://idp.example.com
    algorithms: [RS256, PS384]
    refresh_interval: 1m 30s
    unknown_kid_refetch_interval: 10s
    leeway: 0s
    require: [exp, sub, "https://example.com/roles"]
    max_lifetime: 1h
  - name: hs
    issuer: https://issuer.fuzz.test
    audiences: [api, "1"]
    secret_env: FUZZ_SECRET
    session_claim: sid
token_sources:
  - header: authorization
  - header: X-Api-Token
  - cookie: better-auth.session_token
  - query: access_token
identity_headers:
  x-user-id: sub
  X-Org: org.id
rules:
  - match: { path: "/orgs/{org}/**", methods: [get, POST], hosts: ["*.example.com", "[::1]"] }
    organization: { param: org, roles: [owner, " admin "] }
  - match: { path_prefix: "/%61pi" }
    claims: { "https://example.com/roles": [admin, 1, 2.5, true], org.role: x }
    access: authenticated
default_access: optional
allow_cors_preflight: false
session:
  postgres:
    url_env: FUZZ_DATABASE_URL
  cache_ttl: 5s
  cache_max_entries: 10
  check_banned: true
http: { request_headers: forwarded }
token_cache: { max_memory: 1MiB }
shutdown_delay: 0s
shutdown_grace: 1s
log: { level: "gatehouse=debug,info", format: text }
"#,
    );
    out.put(t, "typo", "providers: []\nrulez: []\n");
    out.put(
        t,
        "anchors",
        "rules:\n  - &r { match: { path: /a }, access: public }\n  - *r\n",
    );
}
