//! Route rules: which access a request needs and which claims it must carry.
//!
//! Rules are compiled once ([`RuleSet::compile`]): path templates become
//! segment matchers, methods and hosts are validated and case-folded, claim
//! checks are split into their paths. [`RuleSet::find`] splits the path once
//! and walks the rules in order, first match wins, without allocating per
//! rule; captures are only built for the winning rule.
//!
//! Paths are made safe first by [`normalize_path`] (docs/rules.md): the query is
//! cut, unreserved percent-escapes decoded, other escapes upper-cased,
//! duplicate slashes merged, dot segments resolved, and anything still
//! ambiguous (encoded separators, encoded dot segments, `;` parameters,
//! control characters, broken escapes) refused with `bad_request`. The
//! normalized path is the only path a rule ever sees.
//!
//! This module does not look at credentials; it only says which access a
//! route needs and checks claims it is handed.

use serde_json::{Map, Value};

use crate::config::{Access, ConfigError, raw::RawRule};
use crate::error::{AuthError, BadRequestKind, ForbiddenKind};
use crate::identity::claim_at;

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Position in `rules` (`None` for the default rule and the synthetic
    /// CORS-preflight rule).
    pub index: Option<usize>,
    pub access: Access,
    /// Which paths this rule covers.
    path: PathMatcher,
    /// Upper-cased method names; empty means every method.
    methods: Vec<String>,
    /// Whether `OPTIONS` is named explicitly, which takes CORS preflights
    /// away from the built-in public answer.
    lists_options: bool,
    /// Host patterns; empty means every host.
    hosts: Vec<HostPattern>,
    /// Parameter names of the template, in capture order.
    params: Vec<String>,
    /// `claims`: every check must pass.
    claims: Vec<ClaimCheck>,
    /// `path_claims`: captured parameter → claim path.
    path_claims: Vec<(String, String)>,
    /// `organization`: membership in the organization a parameter names.
    pub organization: Option<OrganizationCheck>,
    /// `rate_limit`: the policies' names as written, then their indices in
    /// `rate_limits.policies` ([`RuleSet::bind_rate_limits`]).
    rate_limit_names: Vec<String>,
    pub rate_limit: Vec<usize>,
}

/// A rule's `organization` requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationCheck {
    /// The path parameter holding the organization id.
    pub param: String,
    /// Any one of these roles; empty means any member.
    pub roles: Vec<String>,
}

impl OrganizationCheck {
    /// Whether a member whose `role` column holds `held` (several roles
    /// separated by commas) satisfies the rule.
    pub fn admits(&self, held: &str) -> bool {
        self.roles.is_empty()
            || held
                .split(',')
                .map(str::trim)
                .any(|r| self.roles.iter().any(|want| want == r))
    }
}

/// Path parameters captured by a template (`{user_id}` → value), decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captures {
    pub pairs: Vec<(String, String)>,
}

impl Captures {
    /// The decoded value captured for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The compiled rule list plus the default.
#[derive(Debug, Clone)]
pub struct RuleSet {
    /// The configured rules, in order.
    rules: Vec<Rule>,
    /// Applies when no rule matches.
    default: Rule,
    /// Answers CORS preflights without a credential; `None` when
    /// `allow_cors_preflight` is off.
    preflight: Option<Rule>,
}

/// One segment of a compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    /// Must equal this normalized segment exactly.
    Literal(String),
    /// `{name}`: any one non-empty segment, captured.
    Param,
    /// `*`: any one non-empty segment.
    Any,
}

/// How a rule matches paths.
#[derive(Debug, Clone)]
enum PathMatcher {
    /// No `path` or `path_prefix`: every path.
    All,
    /// `path` template. `tail` is `Some` when the template has a `**`:
    /// `head` then any number of segments then `tail`.
    Template {
        head: Vec<Seg>,
        tail: Option<Vec<Seg>>,
    },
    /// `path_prefix`, on segment boundaries.
    Prefix(Vec<String>),
}

/// A host pattern, lower-cased.
#[derive(Debug, Clone)]
enum HostPattern {
    Exact(String),
    /// `*.example.com` is stored as `.example.com`: subdomains only.
    Suffix(String),
}

/// One `claims` entry.
#[derive(Debug, Clone)]
struct ClaimCheck {
    /// Claim path (`role`, `org.role`).
    claim: String,
    /// Any one of these must equal the claim (or be contained in it).
    allowed: Vec<Value>,
}

impl RuleSet {
    /// Compiles `rules`; errors name `rules[i].…`.
    pub fn compile(
        rules: &[RawRule],
        default_access: Access,
        allow_cors_preflight: bool,
    ) -> Result<RuleSet, ConfigError> {
        let compiled = rules
            .iter()
            .enumerate()
            .map(|(i, raw)| compile_rule(i, raw))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RuleSet {
            rules: compiled,
            default: Rule::bare(None, default_access),
            preflight: allow_cors_preflight.then(|| Rule::bare(None, Access::Public)),
        })
    }

    /// Resolves every rule's `rate_limit` names against the policies
    /// (sorted by name); an unknown name is an error naming the rule.
    pub(crate) fn bind_rate_limits(&mut self, policies: &[&str]) -> Result<(), ConfigError> {
        for rule in &mut self.rules {
            let index = rule.index.unwrap_or_default();
            let mut bound = Vec::with_capacity(rule.rate_limit_names.len());
            for (j, name) in rule.rate_limit_names.iter().enumerate() {
                let Some(at) = policies.iter().position(|p| p == name) else {
                    let known = if policies.is_empty() {
                        "none is defined: add it under rate_limits.policies".to_owned()
                    } else {
                        format!("defined: {}", policies.join(", "))
                    };
                    return Err(ConfigError::new(
                        format!("rules[{index}].rate_limit[{j}]"),
                        format!("unknown rate-limit policy {name:?} ({known})"),
                    ));
                };
                if !bound.contains(&at) {
                    bound.push(at);
                }
            }
            rule.rate_limit = bound;
        }
        Ok(())
    }

    /// Number of configured rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when no rules are configured (everything gets the default).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule matching; the default rule when none does.
    /// `path` must come from [`normalize_path`]. `cors_preflight` is true for
    /// `OPTIONS` with `Access-Control-Request-Method`: it gets a public
    /// answer unless the matching rule names `OPTIONS` itself.
    pub fn find(
        &self,
        method: &str,
        host: Option<&str>,
        path: &str,
        cors_preflight: bool,
    ) -> (&Rule, Captures) {
        // Paths are split onto the stack; only unusually deep ones allocate.
        let mut stack = [""; INLINE_SEGMENTS];
        let heap: Vec<&str>;
        let segments: &[&str] = match split_segments(path, &mut stack) {
            Some(n) => stack.get(..n).unwrap_or_default(),
            None => {
                heap = segment_iter(path).collect();
                &heap
            }
        };
        let host = host.map(strip_port);
        let found = self
            .rules
            .iter()
            .find(|r| r.matches(method, host, segments));
        if cors_preflight
            && let Some(preflight) = &self.preflight
            && !found.is_some_and(|r| r.lists_options)
        {
            return (preflight, Captures::default());
        }
        match found {
            Some(rule) => {
                let captures = rule.capture(segments);
                (rule, captures)
            }
            None => (&self.default, Captures::default()),
        }
    }
}

impl Rule {
    fn bare(index: Option<usize>, access: Access) -> Rule {
        Rule {
            index,
            access,
            path: PathMatcher::All,
            methods: Vec::new(),
            lists_options: false,
            hosts: Vec::new(),
            params: Vec::new(),
            claims: Vec::new(),
            path_claims: Vec::new(),
            organization: None,
            rate_limit_names: Vec::new(),
            rate_limit: Vec::new(),
        }
    }

    fn matches(&self, method: &str, host: Option<&str>, segments: &[&str]) -> bool {
        // The path is the most selective test, so it goes first.
        let path_ok = match &self.path {
            PathMatcher::All => true,
            PathMatcher::Prefix(prefix) => {
                prefix.len() <= segments.len() && prefix.iter().zip(segments).all(|(p, s)| p == s)
            }
            PathMatcher::Template { head, tail } => template_match(head, tail.as_deref(), segments),
        };
        if !path_ok {
            return false;
        }
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
        {
            return false;
        }
        if self.hosts.is_empty() {
            return true;
        }
        host.is_some_and(|host| self.hosts.iter().any(|p| p.matches(host)))
    }

    /// Captures for a path this rule is known to match.
    fn capture(&self, segments: &[&str]) -> Captures {
        if self.params.is_empty() {
            return Captures::default();
        }
        let PathMatcher::Template { head, tail } = &self.path else {
            return Captures::default();
        };
        let mut values: Vec<&str> = Vec::with_capacity(self.params.len());
        for (seg, value) in head.iter().zip(segments) {
            if *seg == Seg::Param {
                values.push(value);
            }
        }
        if let Some(tail) = tail {
            let start = segments.len().saturating_sub(tail.len());
            for (seg, value) in tail.iter().zip(segments.get(start..).unwrap_or_default()) {
                if *seg == Seg::Param {
                    values.push(value);
                }
            }
        }
        Captures {
            pairs: self
                .params
                .iter()
                .zip(values)
                .map(|(n, v)| (n.clone(), decode_segment(v)))
                .collect(),
        }
    }

    /// Checks `claims` and `path_claims` → `Forbidden` on failure.
    pub fn authorize(
        &self,
        claims: &Map<String, Value>,
        captures: &Captures,
    ) -> Result<(), AuthError> {
        for check in &self.claims {
            let ok = claim_at(claims, &check.claim)
                .is_some_and(|have| check.allowed.iter().any(|want| claim_satisfies(have, want)));
            if !ok {
                return Err(AuthError::Forbidden(ForbiddenKind::ClaimMismatch));
            }
        }
        for (param, claim) in &self.path_claims {
            let captured = captures.get(param);
            let have = claim_at(claims, claim);
            let ok = match (captured, have) {
                (Some(c), Some(Value::String(s))) => c == s,
                (Some(c), Some(Value::Number(n))) => c == n.to_string(),
                _ => false,
            };
            if !ok {
                return Err(AuthError::Forbidden(ForbiddenKind::PathClaimMismatch));
            }
        }
        Ok(())
    }
}

impl HostPattern {
    fn matches(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host);
        match self {
            HostPattern::Exact(h) => h.eq_ignore_ascii_case(host),
            HostPattern::Suffix(suffix) => {
                host.len() > suffix.len()
                    && host
                        .get(host.len() - suffix.len()..)
                        .is_some_and(|end| end.eq_ignore_ascii_case(suffix))
            }
        }
    }
}

/// `have` (the claim) satisfies `want` (one configured value): equal, or an
/// array claim containing it.
fn claim_satisfies(have: &Value, want: &Value) -> bool {
    match have {
        Value::Array(items) if !want.is_array() => items.iter().any(|i| json_eq(i, want)),
        _ => json_eq(have, want),
    }
}

/// JSON equality with numbers compared by value (`1` equals `1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                x.as_f64() == y.as_f64()
            }
        }
        _ => a == b,
    }
}

fn template_match(head: &[Seg], tail: Option<&[Seg]>, segments: &[&str]) -> bool {
    match tail {
        None => head.len() == segments.len() && segs_match(head, segments),
        Some(tail) => {
            let fixed = head.len() + tail.len();
            fixed <= segments.len()
                && segs_match(head, &segments[..head.len()])
                && segs_match(tail, &segments[segments.len() - tail.len()..])
        }
    }
}

fn segs_match(pattern: &[Seg], segments: &[&str]) -> bool {
    pattern.iter().zip(segments).all(|(p, s)| match p {
        Seg::Literal(l) => l == s,
        Seg::Param | Seg::Any => !s.is_empty(),
    })
}

/// Paths up to this many segments are matched without allocating.
const INLINE_SEGMENTS: usize = 32;

/// The segments of a normalized path. The root has none, and a trailing
/// slash adds none, so `/admin/` is matched as `/admin`.
fn segment_iter(path: &str) -> impl Iterator<Item = &str> {
    let trimmed = path.trim_matches('/');
    trimmed.split('/').filter(move |_| !trimmed.is_empty())
}

/// Splits `path` into `out`; the count, or `None` when it does not fit.
fn split_segments<'a>(path: &'a str, out: &mut [&'a str]) -> Option<usize> {
    let mut n = 0;
    for segment in segment_iter(path) {
        *out.get_mut(n)? = segment;
        n += 1;
    }
    Some(n)
}

/// `example.com:8443` → `example.com`; `[::1]:80` → `[::1]`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn compile_rule(i: usize, raw: &RawRule) -> Result<Rule, ConfigError> {
    let key = |suffix: &str| format!("rules[{i}].{suffix}");
    let m = &raw.match_;
    let mut params = Vec::new();
    let path = match (&m.path, &m.path_prefix) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                key("match"),
                "set either path or path_prefix, not both",
            ));
        }
        (Some(t), None) => {
            compile_template(t, &mut params).map_err(|e| ConfigError::new(key("match.path"), e))?
        }
        (None, Some(p)) => PathMatcher::Prefix(
            compile_prefix(p).map_err(|e| ConfigError::new(key("match.path_prefix"), e))?,
        ),
        (None, None) => PathMatcher::All,
    };

    let mut methods = Vec::with_capacity(m.methods.len());
    for (j, method) in m.methods.iter().enumerate() {
        if method.is_empty() || !method.bytes().all(is_tchar) {
            return Err(ConfigError::new(
                key(&format!("match.methods[{j}]")),
                format!("{method:?} is not an HTTP method name"),
            ));
        }
        methods.push(method.to_ascii_uppercase());
    }
    let lists_options = methods.iter().any(|m| m == "OPTIONS");

    let mut hosts = Vec::with_capacity(m.hosts.len());
    for (j, host) in m.hosts.iter().enumerate() {
        hosts.push(
            compile_host(host)
                .map_err(|e| ConfigError::new(key(&format!("match.hosts[{j}]")), e))?,
        );
    }

    let mut claims = Vec::with_capacity(raw.claims.len());
    for (name, want) in &raw.claims {
        let k = || key(&format!("claims.{name}"));
        validate_claim_path(name).map_err(|e| ConfigError::new(k(), e))?;
        let allowed = match want {
            Value::Array(items) if items.is_empty() => {
                return Err(ConfigError::new(k(), "an empty list can never match"));
            }
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        if allowed.iter().any(|v| v.is_null() || v.is_object()) {
            return Err(ConfigError::new(
                k(),
                "required values must be strings, numbers or booleans",
            ));
        }
        claims.push(ClaimCheck {
            claim: name.clone(),
            allowed,
        });
    }

    let mut path_claims = Vec::with_capacity(raw.path_claims.len());
    for (param, claim) in &raw.path_claims {
        let k = key(&format!("path_claims.{param}"));
        if !params.iter().any(|p| p == param) {
            return Err(ConfigError::new(
                k,
                format!("the path template has no parameter {{{param}}}"),
            ));
        }
        validate_claim_path(claim).map_err(|e| ConfigError::new(k, e))?;
        path_claims.push((param.clone(), claim.clone()));
    }

    let organization = match &raw.organization {
        None => None,
        Some(org) => {
            if !params.contains(&org.param) {
                return Err(ConfigError::new(
                    key("organization.param"),
                    format!("the path template has no parameter {{{}}}", org.param),
                ));
            }
            for (j, role) in org.roles.iter().enumerate() {
                if role.trim().is_empty() || role.contains(',') {
                    return Err(ConfigError::new(
                        key(&format!("organization.roles[{j}]")),
                        format!("{role:?} is not a role name"),
                    ));
                }
            }
            Some(OrganizationCheck {
                param: org.param.clone(),
                roles: org.roles.iter().map(|r| r.trim().to_owned()).collect(),
            })
        }
    };

    let has_checks = !claims.is_empty() || !path_claims.is_empty();
    let access = raw.access.unwrap_or(Access::Authenticated);
    if access == Access::Public && has_checks {
        return Err(ConfigError::new(
            key("access"),
            "a public rule cannot require claims or path_claims",
        ));
    }
    if access != Access::Authenticated && organization.is_some() {
        return Err(ConfigError::new(
            key("access"),
            "an organization rule needs a caller: use access: authenticated",
        ));
    }

    Ok(Rule {
        index: Some(i),
        access,
        path,
        methods,
        lists_options,
        hosts,
        params,
        claims,
        path_claims,
        organization,
        rate_limit_names: raw.rate_limit.clone(),
        rate_limit: Vec::new(),
    })
}

fn validate_claim_path(claim: &str) -> Result<(), String> {
    if claim.is_empty() || claim.split('.').any(str::is_empty) {
        return Err(format!("{claim:?} is not a claim name"));
    }
    Ok(())
}

fn compile_template(template: &str, params: &mut Vec<String>) -> Result<PathMatcher, String> {
    if !template.starts_with('/') {
        return Err(format!("{template:?} must start with '/'"));
    }
    let mut head = Vec::new();
    let mut tail: Option<Vec<Seg>> = None;
    for raw in template.split('/').filter(|s| !s.is_empty()) {
        let seg = if raw == "**" {
            if tail.is_some() {
                return Err("a template may contain '**' only once".to_owned());
            }
            tail = Some(Vec::new());
            continue;
        } else if raw == "*" {
            Seg::Any
        } else if let Some(name) = raw.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(format!("{{{name}}} is not a valid parameter name"));
            }
            if params.iter().any(|p| p == name) {
                return Err(format!("parameter {{{name}}} appears twice"));
            }
            params.push(name.to_owned());
            Seg::Param
        } else {
            Seg::Literal(canonical_literal(raw)?)
        };
        match &mut tail {
            Some(t) => t.push(seg),
            None => head.push(seg),
        }
    }
    Ok(PathMatcher::Template { head, tail })
}

fn compile_prefix(prefix: &str) -> Result<Vec<String>, String> {
    if !prefix.starts_with('/') {
        return Err(format!("{prefix:?} must start with '/'"));
    }
    prefix
        .split('/')
        .filter(|s| !s.is_empty())
        .map(canonical_literal)
        .collect()
}

/// A literal template segment in the form [`normalize_path`] produces, so
/// matching is a plain string comparison.
fn canonical_literal(raw: &str) -> Result<String, String> {
    if raw.contains(['{', '}', '*']) {
        return Err(format!(
            "{raw:?}: '{{name}}', '*' and '**' must be whole segments"
        ));
    }
    let mut out = String::with_capacity(raw.len());
    let dot = push_segment(&mut out, raw).map_err(|e| format!("{raw:?}: {e}"))?;
    if dot != DotKind::None {
        return Err(format!("{raw:?}: dot segments cannot be matched"));
    }
    Ok(out)
}

fn compile_host(host: &str) -> Result<HostPattern, String> {
    let lower = host.trim_end_matches('.').to_ascii_lowercase();
    let (pattern, name) = match lower.strip_prefix("*.") {
        Some(rest) => (HostPattern::Suffix(format!(".{rest}")), rest.to_owned()),
        None => (HostPattern::Exact(lower.clone()), lower.clone()),
    };
    // A ':' belongs to IPv6 literals only; ports are never part of a pattern.
    let valid = !name.is_empty()
        && (name.starts_with('[') || !name.contains(':'))
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'[' | b']' | b':')
        });
    if !valid {
        return Err(format!(
            "{host:?} is not a host name (use example.com or *.example.com, no port)"
        ));
    }
    Ok(pattern)
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Percent-decodes a normalized segment for comparison with claims.
fn decode_segment(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// Makes a request target safe to match: cuts the query, decodes unreserved
/// escapes, resolves `.`/`..`, refuses ambiguity (docs/rules.md).
pub fn normalize_path(raw: &str) -> Result<String, AuthError> {
    let end = raw.find(['?', '#']).unwrap_or(raw.len());
    let raw = &raw[..end];
    let Some(rest) = raw.strip_prefix('/') else {
        return Err(AuthError::BadRequest(BadRequestKind::NotAbsolute));
    };
    // Each kept segment's end offset in `out`, so `..` can pop it.
    let mut out = String::with_capacity(raw.len());
    let mut ends: Vec<usize> = Vec::with_capacity(8);
    let mut trailing_slash = false;
    for segment in rest.split('/') {
        let start = out.len();
        out.push('/');
        let dot = push_segment(&mut out, segment).map_err(AuthError::BadRequest)?;
        match dot {
            DotKind::None if out.len() == start + 1 => {
                // Empty segment: duplicate or trailing slash.
                out.truncate(start);
                trailing_slash = true;
            }
            DotKind::None => {
                ends.push(out.len());
                trailing_slash = false;
            }
            DotKind::Current => {
                out.truncate(start);
                trailing_slash = true;
            }
            DotKind::Parent => {
                out.truncate(start);
                if ends.pop().is_none() {
                    return Err(AuthError::BadRequest(BadRequestKind::AboveRoot));
                }
                let keep = ends.last().copied().unwrap_or(0);
                out.truncate(keep);
                trailing_slash = true;
            }
        }
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(out)
}

/// Whether a segment was a dot segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DotKind {
    None,
    Current,
    Parent,
}

/// Appends the normalized form of one raw segment to `out`: unreserved
/// escapes decoded, other escapes upper-cased, characters outside `pchar`
/// escaped. Refuses what cannot be matched safely.
fn push_segment(out: &mut String, segment: &str) -> Result<DotKind, BadRequestKind> {
    let start = out.len();
    let bytes = segment.as_bytes();
    let mut escaped = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_value);
                let lo = bytes.get(i + 2).copied().and_then(hex_value);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(BadRequestKind::BadPercentEncoding);
                };
                let decoded = hi << 4 | lo;
                escaped = true;
                match decoded {
                    b'/' | b'\\' => return Err(BadRequestKind::EncodedSeparator),
                    0x00..=0x1f | 0x7f => return Err(BadRequestKind::ControlCharacter),
                    d if is_unreserved(d) => out.push(char::from(d)),
                    d => push_escape(out, d),
                }
                i += 3;
            }
            0x00..=0x1f | 0x7f => return Err(BadRequestKind::ControlCharacter),
            b'\\' => return Err(BadRequestKind::EncodedSeparator),
            b';' => return Err(BadRequestKind::MatrixParameter),
            b if is_unreserved(b) || is_sub_delim(b) || b == b':' || b == b'@' => {
                out.push(char::from(b));
                i += 1;
            }
            b => {
                push_escape(out, b);
                i += 1;
            }
        }
    }
    let written = &out[start..];
    let dot = match written {
        "." => DotKind::Current,
        ".." => DotKind::Parent,
        _ => DotKind::None,
    };
    if escaped && dot != DotKind::None {
        return Err(BadRequestKind::EncodedDotSegment);
    }
    Ok(dot)
}

fn push_escape(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0x0f)]));
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(b: u8) -> bool {
    // `;` is a sub-delim too, but it is refused before this is asked.
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'='
    )
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod prop_tests;
