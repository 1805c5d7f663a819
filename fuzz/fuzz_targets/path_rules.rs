//! Paths through `policy::normalize_path`, `RuleSet::find` and
//! `Rule::authorize`. The input is a flags byte (bit 0: CORS preflight)
//! then four lines: method, host (empty: none), an extra rule's path
//! template (empty: none), and the request path (the rest).
//!
//! A normalized path is canonical and safe: absolute, no `.`/`..` or empty
//! segments, no `;`, `\`, `?`, `#`, no encoded `/`, `\`, `.` or NUL, only
//! printable ASCII, and normalizing it again returns it unchanged. A
//! refusal is always `bad_request`. Matching never panics and picks the
//! same rule as a plain model of the fixed rules; a rule's captures satisfy
//! its `path_claims`, a different `sub` does not. A template that compiles
//! matches the paths made from it.
#![no_main]

use std::sync::OnceLock;

use gatehouse::internals::Access;
use gatehouse::internals::RawRule;
use gatehouse::internals::{AuthError, ForbiddenKind};
use gatehouse::internals::{RuleSet, normalize_path};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

/// The fixed rules; `expected_rule` is their model.
fn rules() -> &'static RuleSet {
    static SET: OnceLock<RuleSet> = OnceLock::new();
    SET.get_or_init(|| {
        let raw: Vec<RawRule> = serde_json::from_value(json!([
            {"match": {"path": "/healthz"}, "access": "public"},
            {"match": {"path": "/api/{user_id}/**", "methods": ["GET", "post", "OPTIONS"]},
             "path_claims": {"user_id": "sub"}},
            {"match": {"path": "/docs/**/{page}", "hosts": ["*.example.com"]}},
            {"match": {"path_prefix": "/admin"}, "claims": {"role": "admin"}},
            {"match": {"path": "/x/*/y"}, "access": "optional"},
            {"match": {"path": "/orgs/{org}/teams/{team}", "hosts": ["api.example.com"]},
             "path_claims": {"org": "org_id", "team": "team_id"}},
        ]))
        .expect("fixed rules");
        RuleSet::compile(&raw, Access::Authenticated, true).expect("fixed rules compile")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let preflight = flags & 1 == 1;
    let text = String::from_utf8_lossy(rest);
    let mut lines = text.splitn(4, '\n');
    let method = lines.next().unwrap_or_default();
    let host = lines.next().filter(|h| !h.is_empty());
    let template = lines.next().unwrap_or_default();
    let raw_path = lines.next().unwrap_or_default();

    let path = match normalize_path(raw_path) {
        Ok(path) => path,
        Err(e) => {
            assert!(matches!(e, AuthError::BadRequest(_)), "{e:?}");
            // The same text as one line is judged too, so short seeds count.
            if let Ok(path) = normalize_path(&text) {
                assert_safe(&path);
            }
            return;
        }
    };
    assert_safe(&path);
    check_fixed_rules(method, host, &path, preflight);
    if !template.is_empty() {
        check_template(template, method, host);
    }
});

fn assert_safe(out: &str) {
    assert!(out.starts_with('/'), "{out:?}");
    assert!(!out.contains("//"), "{out:?}");
    assert!(!out.contains([';', '\\', '?', '#']), "{out:?}");
    assert!(out.bytes().all(|b| (0x21..0x7f).contains(&b)), "{out:?}");
    let upper = out.to_ascii_uppercase();
    for bad in ["%2F", "%5C", "%00", "%2E"] {
        assert!(!upper.contains(bad), "{out:?} contains {bad}");
    }
    for segment in out.split('/').skip(1) {
        assert!(segment != "." && segment != "..", "{out:?}");
    }
    // Escapes are well formed and upper-case.
    let bytes = out.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).expect("a full escape");
            assert!(
                hex.iter()
                    .all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(h)),
                "{out:?}"
            );
        }
    }
    assert_eq!(normalize_path(out).as_deref(), Ok(out), "not idempotent");
}

/// `example.com:8443` → `example.com`; `[::1]:80` → `[::1]`; a trailing
/// dot goes too.
fn host_name(host: &str) -> String {
    let name = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    name.to_ascii_lowercase()
}

/// The fixed rules as plain code: the index of the first that matches.
fn expected_rule(method: &str, host: Option<&str>, segs: &[&str]) -> Option<usize> {
    let m = method.to_ascii_uppercase();
    let host = host.map(host_name);
    let nonempty = |s: &&str| !s.is_empty();
    let r0 = segs == ["healthz"];
    let r1 = segs.len() >= 2
        && segs[0] == "api"
        && nonempty(&segs[1])
        && ["GET", "POST", "OPTIONS"].contains(&m.as_str());
    let r2 = segs.len() >= 2
        && segs[0] == "docs"
        && segs.last().is_some_and(nonempty)
        && host
            .as_deref()
            .is_some_and(|h| h.len() > ".example.com".len() && h.ends_with(".example.com"));
    let r3 = segs.first() == Some(&"admin");
    let r4 = segs.len() == 3 && segs[0] == "x" && nonempty(&segs[1]) && segs[2] == "y";
    let r5 = segs.len() == 4
        && segs[0] == "orgs"
        && nonempty(&segs[1])
        && segs[2] == "teams"
        && nonempty(&segs[3])
        && host.as_deref() == Some("api.example.com");
    [r0, r1, r2, r3, r4, r5].iter().position(|&m| m)
}

fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn check_fixed_rules(method: &str, host: Option<&str>, path: &str, preflight: bool) {
    let set = rules();
    let trimmed = path.trim_matches('/');
    let segs: Vec<&str> = if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    };
    let (rule, caps) = set.find(method, host, path, preflight);
    let expected = expected_rule(method, host, &segs);
    let lists_options = expected == Some(1);
    if preflight && !lists_options {
        assert_eq!(rule.index, None, "preflight answered by a rule");
        assert_eq!(rule.access, Access::Public, "preflight not public");
        assert!(caps.pairs.is_empty());
        return;
    }
    assert_eq!(rule.index, expected, "{method} {host:?} {path}");
    let mut claims = serde_json::Map::new();
    claims.insert("role".into(), "admin".into());
    match expected {
        Some(1) => {
            let user = decode(segs[1]);
            assert_eq!(caps.get("user_id"), Some(user.as_str()));
            claims.insert("sub".into(), Value::from(user.clone()));
            assert_eq!(rule.authorize(&claims, &caps), Ok(()));
            claims.insert("sub".into(), Value::from(format!("{user}-other")));
            assert_eq!(
                rule.authorize(&claims, &caps),
                Err(AuthError::Forbidden(ForbiddenKind::PathClaimMismatch))
            );
        }
        Some(2) => {
            let page = decode(segs.last().copied().unwrap_or_default());
            assert_eq!(caps.get("page"), Some(page.as_str()));
            assert_eq!(rule.authorize(&claims, &caps), Ok(()));
        }
        Some(3) => {
            assert_eq!(rule.authorize(&claims, &caps), Ok(()));
            claims.insert("role".into(), json!(["user", "admin"]));
            assert_eq!(rule.authorize(&claims, &caps), Ok(()));
            claims.insert("role".into(), "user".into());
            assert_eq!(
                rule.authorize(&claims, &caps),
                Err(AuthError::Forbidden(ForbiddenKind::ClaimMismatch))
            );
        }
        Some(5) => {
            claims.insert("org_id".into(), Value::from(decode(segs[1])));
            claims.insert("team_id".into(), Value::from(decode(segs[3])));
            assert_eq!(rule.authorize(&claims, &caps), Ok(()));
        }
        Some(_) | None => {
            if rule.index.is_none() {
                assert!(caps.pairs.is_empty());
            }
            assert_eq!(rule.authorize(&claims, &caps), Ok(()));
        }
    }
}

/// Escapes what would end the path or change its segments when a template
/// literal is used as request text.
fn literal_as_path(segment: &str) -> String {
    segment.replace('?', "%3F").replace('#', "%23")
}

fn check_template(template: &str, method: &str, host: Option<&str>) {
    let raw: Vec<RawRule> = match serde_json::from_value(json!([{"match": {"path": template}}])) {
        Ok(raw) => raw,
        Err(_) => return,
    };
    let Ok(set) = RuleSet::compile(&raw, Access::Authenticated, false) else {
        return;
    };
    // Two instances: `**` as nothing and as two segments.
    for middle in ["", "m1/m2"] {
        let mut path = String::new();
        for segment in template.split('/').filter(|s| !s.is_empty()) {
            path.push('/');
            match segment {
                "**" => path.push_str(middle),
                "*" => path.push('s'),
                s if s.starts_with('{') && s.ends_with('}') => path.push('v'),
                s => path.push_str(&literal_as_path(s)),
            }
        }
        if path.is_empty() {
            path.push('/');
        }
        let Ok(normalized) = normalize_path(&path) else {
            panic!("template {template:?} compiles but its instance {path:?} does not normalize");
        };
        let (rule, _) = set.find(method, host, &normalized, false);
        assert_eq!(
            rule.index,
            Some(0),
            "template {template:?} does not match its instance {normalized:?}"
        );
    }
}
