//! What `/metrics` of a running `gatehouse serve` tells an operator.
//!
//! Every series and label value that docs/operations.md mentions, that the
//! shipped PrometheusRule alerts on and that the Grafana dashboard queries
//! is emitted once the situation it describes has been provoked (a JWKS
//! server that is down, a session store that is down, each kind of
//! unusable request); the key age is measured when scraped and follows a
//! SIGHUP reload; a server shows no `cli` door.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::envoy::write_config;
use common::jwks_server::JwksServer;
use common::metrics::{self, Sample};
use common::tokens::{TestKey, claims, jwks};
use common::{Gatehouse, http_request};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use serde_json::Value;

const OPERATIONS: &str = "docs/operations.md";
const RULES: &str = "deploy/kubernetes/monitoring/prometheusrule.yaml";
const DASHBOARD: &str = "deploy/kubernetes/monitoring/gatehouse-dashboard.json";

/// Labels Prometheus adds when it scrapes (target and discovery labels):
/// queries may match them, `/metrics` never carries them.
const TARGET_LABELS: &[&str] = &[
    "job",
    "instance",
    "namespace",
    "pod",
    "container",
    "endpoint",
    "service",
];

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

// --------------------------------------------------------------- PromQL --

/// A vector selector: a metric name and its label matchers.
#[derive(Debug, Clone, PartialEq)]
struct Selector {
    name: String,
    matchers: Vec<Matcher>,
}

/// `label op "value"`; `op` is empty for a bare label name, as the docs
/// write label lists (`gatehouse_decisions_total{door,result,reason}`).
#[derive(Debug, Clone, PartialEq)]
struct Matcher {
    label: String,
    op: String,
    value: String,
}

/// Functions and aggregations the shipped queries may call: a name outside
/// this list followed by `(` is a typo.
const FUNCTIONS: &[&str] = &[
    "abs",
    "absent",
    "avg",
    "avg_over_time",
    "clamp_max",
    "clamp_min",
    "count",
    "delta",
    "histogram_quantile",
    "increase",
    "irate",
    "max",
    "max_over_time",
    "min",
    "min_over_time",
    "rate",
    "sum",
    "topk",
    "vector",
];

/// Keywords followed by a parenthesized list of label names.
const LABEL_LIST_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Binary operators and modifiers written as words.
const WORD_OPERATORS: &[&str] = &["and", "or", "unless", "bool", "offset"];

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Index of the string's closing quote (`chars[start]` is the opening one).
fn string_end(chars: &[char], start: usize) -> Result<usize, String> {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            c if c == quote => return Ok(i),
            _ => i += 1,
        }
    }
    Err(format!("unterminated string at {start}"))
}

/// Index of the `close` that ends what opens at `start`.
fn closing(chars: &[char], start: usize, close: char) -> Result<usize, String> {
    let open = chars[start];
    let mut depth = 0;
    let mut i = start;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => i = string_end(chars, i)?,
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    Err(format!("no `{close}` closes the `{open}` at {start}"))
}

/// The matchers between `{` at `start` and its `}`; returns them and the
/// index after the `}`.
fn matchers(chars: &[char], start: usize) -> Result<(Vec<Matcher>, usize), String> {
    let end = closing(chars, start, '}')?;
    let mut out = Vec::new();
    let mut i = start + 1;
    let skip_space = |mut i: usize| {
        while i < end && (chars[i].is_whitespace() || chars[i] == ',') {
            i += 1;
        }
        i
    };
    i = skip_space(i);
    while i < end {
        let from = i;
        while i < end && is_name_char(chars[i]) {
            i += 1;
        }
        let label: String = chars[from..i].iter().collect();
        if label.is_empty() {
            return Err(format!("bad label matcher at {from}"));
        }
        while i < end && chars[i].is_whitespace() {
            i += 1;
        }
        let op_from = i;
        while i < end && "=!~".contains(chars[i]) {
            i += 1;
        }
        let op: String = chars[op_from..i].iter().collect();
        let mut value = String::new();
        if !op.is_empty() {
            if !["=", "!=", "=~", "!~"].contains(&op.as_str()) {
                return Err(format!("bad matcher operator {op:?}"));
            }
            while i < end && chars[i].is_whitespace() {
                i += 1;
            }
            if i >= end || !matches!(chars[i], '"' | '\'' | '`') {
                return Err(format!("matcher {label}{op} has no quoted value"));
            }
            let close = string_end(chars, i)?;
            value = chars[i + 1..close].iter().collect();
            i = close + 1;
        }
        out.push(Matcher { label, op, value });
        i = skip_space(i);
    }
    Ok((out, end + 1))
}

/// The vector selectors of a PromQL expression. Refuses unbalanced
/// brackets, unknown functions and malformed matchers; it does not check
/// the rest of the grammar.
fn promql_selectors(expr: &str) -> Result<Vec<Selector>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut parens = 0i32;
    let mut i = 0;
    let next_non_space = |mut j: usize| {
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        j
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => i = string_end(&chars, i)? + 1,
            '(' => {
                parens += 1;
                i += 1;
            }
            ')' => {
                parens -= 1;
                if parens < 0 {
                    return Err(format!("unbalanced `)` at {i}"));
                }
                i += 1;
            }
            // A range or subquery: durations only (`5m`, `$__rate_interval`).
            '[' => i = closing(&chars, i, ']')? + 1,
            '{' => {
                let (m, end) = matchers(&chars, i)?;
                out.push(Selector {
                    name: String::new(),
                    matchers: m,
                });
                i = end;
            }
            '$' => {
                i += 1;
                while i < chars.len() && is_name_char(chars[i]) {
                    i += 1;
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let from = i;
                while i < chars.len() && is_name_char(chars[i]) {
                    i += 1;
                }
                let word: String = chars[from..i].iter().collect();
                let j = next_non_space(i);
                if LABEL_LIST_KEYWORDS.contains(&word.as_str()) {
                    if chars.get(j) == Some(&'(') {
                        i = closing(&chars, j, ')')? + 1;
                    }
                } else if WORD_OPERATORS.contains(&word.as_str())
                    || FUNCTIONS.contains(&word.as_str())
                {
                    // An aggregation may put `by (...)` before its `(`.
                } else if chars.get(j) == Some(&'(') {
                    return Err(format!("unknown function {word}"));
                } else {
                    let mut m = Vec::new();
                    if chars.get(j) == Some(&'{') {
                        let (found, end) = matchers(&chars, j)?;
                        m = found;
                        i = end;
                    }
                    out.push(Selector {
                        name: word,
                        matchers: m,
                    });
                }
            }
            _ => i += 1,
        }
    }
    if parens != 0 {
        return Err("unbalanced parentheses".to_owned());
    }
    Ok(out)
}

/// Every `gatehouse_…` series the Markdown text names, with the labels or
/// matchers written after it.
fn markdown_selectors(text: &str) -> Vec<Selector> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts = chars[i..].starts_with(&"gatehouse_".chars().collect::<Vec<_>>())
            && (i == 0 || !is_name_char(chars[i - 1]));
        if !starts {
            i += 1;
            continue;
        }
        let from = i;
        while i < chars.len() && is_name_char(chars[i]) {
            i += 1;
        }
        let name: String = chars[from..i].iter().collect();
        let mut m = Vec::new();
        if chars.get(i) == Some(&'{') {
            let (found, end) =
                matchers(&chars, i).unwrap_or_else(|e| panic!("{OPERATIONS}: {name}: {e}"));
            m = found;
            i = end;
        }
        out.push(Selector { name, matchers: m });
    }
    out
}

/// `a|b|c` as its alternatives, when the regex is nothing but that.
fn alternatives(regex: &str) -> Option<Vec<&str>> {
    let alts: Vec<&str> = regex.split('|').collect();
    alts.iter()
        .all(|a| {
            !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
        .then_some(alts)
}

/// Why `sel` finds nothing in the scrape (`None` when it finds what it
/// asks for): the name must be emitted (a histogram by its family name or
/// its `_bucket`/`_sum`/`_count` series), every label it names must be on
/// the series, and each value it asks for by `=` (or each alternative of
/// an `a|b` regex) must be on a series that also has the `=` values.
fn missing(sel: &Selector, scrape: &[Sample]) -> Option<String> {
    let series: Vec<&Sample> = scrape
        .iter()
        .filter(|s| {
            s.name == sel.name
                || ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| s.name == format!("{}{suffix}", sel.name))
        })
        .collect();
    if series.is_empty() {
        return Some(format!("no series {}", sel.name));
    }
    let checked: Vec<&Matcher> = sel
        .matchers
        .iter()
        .filter(|m| !TARGET_LABELS.contains(&m.label.as_str()) && !m.value.contains('$'))
        .collect();
    for m in &checked {
        if !series.iter().any(|s| s.labels.contains_key(&m.label)) {
            return Some(format!("{} has no label {}", sel.name, m.label));
        }
    }
    let fixed: Vec<&&Matcher> = checked.iter().filter(|m| m.op == "=").collect();
    let fits = |s: &Sample, extra: Option<(&str, &str)>| {
        fixed
            .iter()
            .all(|m| s.labels.get(&m.label) == Some(&m.value))
            && extra.is_none_or(|(k, v)| s.labels.get(k).map(String::as_str) == Some(v))
    };
    let mut wanted: Vec<Option<(&str, &str)>> = vec![None];
    for m in checked.iter().filter(|m| m.op == "=~") {
        if let Some(alts) = alternatives(&m.value) {
            wanted.extend(alts.into_iter().map(|a| Some((m.label.as_str(), a))));
        }
    }
    for extra in wanted {
        if !series.iter().any(|s| fits(s, extra)) {
            let values: Vec<String> = fixed
                .iter()
                .map(|m| format!("{}=\"{}\"", m.label, m.value))
                .chain(extra.map(|(k, v)| format!("{k}=\"{v}\"")))
                .collect();
            return Some(format!("no series {}{{{}}}", sel.name, values.join(",")));
        }
    }
    None
}

/// Panics listing every selector (from `source`) that the scrape lacks.
fn assert_emitted(source: &str, selectors: &[Selector], external: &[&str], scrape: &str) {
    let samples = metrics::samples(scrape);
    let problems: Vec<String> = selectors
        .iter()
        .filter(|s| !external.contains(&s.name.as_str()))
        .filter_map(|s| {
            if s.name.is_empty() {
                Some("a selector without a metric name".to_owned())
            } else if !s.name.starts_with("gatehouse_") {
                Some(format!("{} is not a gatehouse series", s.name))
            } else {
                missing(s, &samples)
            }
        })
        .collect();
    assert!(
        problems.is_empty(),
        "{source} asks /metrics for what it does not emit:\n  {}\n\n{scrape}",
        problems.join("\n  ")
    );
}

#[test]
fn the_promql_reader_finds_selectors_and_refuses_typos() {
    let sel = promql_selectors(
        r#"sum by (job, reason) (rate(gatehouse_decisions_total{result="deny",reason=~"a|b"}[5m]))
             / on (job) group_left sum by (job) (rate(gatehouse_decisions_total[$__rate_interval])) > 0.25
           and absent(up{job="gatehouse"} == 1) unless histogram_quantile(0.9, x_bucket)"#,
    )
    .unwrap();
    let names: Vec<&str> = sel.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "gatehouse_decisions_total",
            "gatehouse_decisions_total",
            "up",
            "x_bucket"
        ]
    );
    assert_eq!(
        sel[0].matchers[1],
        Matcher {
            label: "reason".into(),
            op: "=~".into(),
            value: "a|b".into()
        }
    );
    assert!(promql_selectors("rat(x[5m])").is_err());
    assert!(promql_selectors("sum(x").is_err());
    assert!(promql_selectors(r#"x{a="b}"#).is_err());
    let docs = markdown_selectors("see `gatehouse_a_total{door,result=\"x\"}` and gatehouse_b.");
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0].matchers[0].op, "");
    assert_eq!(docs[1].name, "gatehouse_b");

    let scrape = metrics::samples(
        "a_total{r=\"x\",k=\"1\"} 1\na_total{r=\"y\",k=\"2\"} 1\nh_bucket{le=\"1\"} 0\n# EOF\n",
    );
    let check = |expr: &str| missing(&promql_selectors(expr).unwrap()[0], &scrape);
    assert_eq!(check(r#"a_total{r="x",job="j"}"#), None);
    assert_eq!(check(r#"a_total{r=~"x|y"}"#), None);
    assert_eq!(check("h"), None);
    assert!(check(r#"a_total{r="z"}"#).is_some());
    assert!(
        check(r#"a_total{r="x",k="2"}"#).is_some(),
        "values of one series"
    );
    assert!(check(r#"a_total{r=~"x|z"}"#).is_some());
    assert!(check(r#"a_total{q!="x"}"#).is_some());
    assert!(check("b_total").is_some());
}

// ------------------------------------------------------- a running server --

/// A gatehouse with a provider whose JWKS loads, one whose JWKS server is
/// down, and a session store that is down.
struct Provoked {
    gatehouse: Gatehouse,
    key: TestKey,
    _jwks: JwksServer,
    _refusing: common::ports::ClosedPort,
}

const GOOD: &str = "https://good.test";
const DOWN: &str = "https://down.test";

async fn provoked_server() -> Provoked {
    let key = TestKey::generate("EdDSA", "k1");
    let server = JwksServer::start(jwks(&[&key])).await;
    let refusing = common::ports::closed_port();
    let closed = format!("127.0.0.1:{}", refusing.port);
    let config = write_config(&format!(
        "providers:
  - name: good
    issuer: {GOOD}
    audiences: [{GOOD}]
    jwks_uri: {good}
  - name: down
    issuer: {DOWN}
    audiences: [{DOWN}]
    jwks_uri: http://{closed}/jwks
session:
  introspect_url: http://{closed}/api/auth/get-session
rules:
  - match: {{ path_prefix: /public }}
    access: public
default_access: authenticated
",
        good = server.url("/jwks"),
    ));
    let gatehouse =
        tokio::task::block_in_place(|| Gatehouse::start(Some(&config), &Default::default()));
    Provoked {
        gatehouse,
        key,
        _jwks: server,
        _refusing: refusing,
    }
}

/// `/auth` with these headers (no description added); returns the status.
fn ask(g: &Gatehouse, headers: &[(&str, &str)]) -> u16 {
    http_request(g.http_addr, "GET", "/auth", headers)
        .expect("answer from /auth")
        .status
}

/// `/auth` for GET `uri`, described as nginx does.
fn ask_nginx(g: &Gatehouse, uri: &str, headers: &[(&str, &str)]) -> u16 {
    let mut all = vec![("x-original-method", "GET"), ("x-original-uri", uri)];
    all.extend_from_slice(headers);
    ask(g, &all)
}

fn scrape(g: &Gatehouse) -> String {
    let res = http_request(g.http_addr, "GET", "/metrics", &[]).expect("metrics answer");
    assert_eq!(res.status, 200);
    res.body
}

async fn grpc_check(g: &Gatehouse, http: Option<HttpRequest>) {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", g.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = AuthorizationClient::new(channel);
    let request = CheckRequest {
        attributes: http.map(|http| AttributeContext {
            request: Some(Request {
                http: Some(http),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    client.check(request).await.unwrap();
}

impl Provoked {
    /// Makes gatehouse meet every situation the alerts and the dashboard
    /// watch, then returns its `/metrics`.
    async fn provoke(&self) -> String {
        let g = &self.gatehouse;
        let good = format!(
            "Bearer {}",
            self.key.token(&claims(GOOD, GOOD, "alice", 300))
        );
        let down = format!("Bearer {}", self.key.token(&claims(DOWN, DOWN, "dan", 300)));
        tokio::task::block_in_place(|| {
            // The good provider's keys load in the background.
            let deadline = Instant::now() + Duration::from_secs(10);
            while ask_nginx(g, "/api", &[("authorization", &good)]) != 200 {
                assert!(Instant::now() < deadline, "{}", g.proc.log_text());
                std::thread::sleep(Duration::from_millis(50));
            }
            // A cache hit, and the ordinary denials.
            assert_eq!(ask_nginx(g, "/api", &[("authorization", &good)]), 200);
            assert_eq!(ask_nginx(g, "/public/x", &[]), 200);
            assert_eq!(ask_nginx(g, "/api", &[]), 401);
            assert_eq!(ask_nginx(g, "/api", &[("authorization", &down)]), 503);
            assert_eq!(
                ask_nginx(
                    g,
                    "/api",
                    &[("cookie", "better-auth.session_token=sess0token.sig")]
                ),
                503
            );
            // A proxy that describes requests badly, or clients that inject
            // the description.
            assert_eq!(ask(g, &[("x-original-uri", "/api")]), 400);
            assert_eq!(ask(g, &[("x-original-method", "GET")]), 400);
            assert_eq!(
                ask(
                    g,
                    &[
                        ("x-original-method", "GET"),
                        ("x-original-uri", "/api"),
                        ("x-forwarded-method", "GET"),
                        ("x-forwarded-uri", "/api"),
                    ]
                ),
                400
            );
            // Paths that cannot be matched safely.
            for uri in [
                "api",
                "/..",
                "/a%2Fb",
                "/%2e%2e/x",
                "/a;b",
                "/a%00",
                "/a%zz",
            ] {
                assert_eq!(ask_nginx(g, uri, &[]), 400, "{uri}");
            }
        });
        // Envoy: an allow, and a check without the request's attributes.
        let mut headers = std::collections::HashMap::new();
        headers.insert("authorization".to_owned(), good.clone());
        grpc_check(
            g,
            Some(HttpRequest {
                method: "GET".into(),
                path: "/api".into(),
                host: "app.test".into(),
                headers,
                ..Default::default()
            }),
        )
        .await;
        grpc_check(g, None).await;
        tokio::task::block_in_place(|| {
            // The down provider's first fetch has failed by now (connection
            // refused); wait for it rather than assume.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let text = scrape(g);
                let failed = metrics::count(
                    &text,
                    "gatehouse_jwks_fetches_total",
                    &[("provider", "down"), ("result", "failure")],
                );
                if failed >= 1.0 {
                    return text;
                }
                assert!(Instant::now() < deadline, "{text}");
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    }
}

/// The alert expressions of the PrometheusRule: alert name → expr.
fn rule_exprs() -> BTreeMap<String, String> {
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&repo_file(RULES)).unwrap();
    assert_eq!(doc["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(doc["kind"], "PrometheusRule");
    let mut out = BTreeMap::new();
    for group in doc["spec"]["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let name = rule["alert"].as_str().expect("every rule is an alert");
            assert!(rule["for"].as_str().is_some(), "{name} has no `for`");
            assert!(
                ["critical", "warning"]
                    .contains(&rule["labels"]["severity"].as_str().unwrap_or("")),
                "{name} has no severity"
            );
            for annotation in ["summary", "description"] {
                assert!(
                    rule["annotations"][annotation].as_str().is_some(),
                    "{name} has no {annotation}"
                );
            }
            let expr = rule["expr"].as_str().unwrap().to_owned();
            assert!(out.insert(name.to_owned(), expr).is_none(), "{name} twice");
        }
    }
    out
}

/// The alert expressions docs/operations.md shows in its `promql` block:
/// `# AlertName` then the expression.
fn documented_exprs(docs: &str) -> BTreeMap<String, String> {
    let block = docs
        .split("```promql\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/operations.md shows the alert expressions in a ```promql block");
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in block.lines() {
        if let Some(name) = line.strip_prefix("# ") {
            let name = name.split(':').next().unwrap_or(name).trim().to_owned();
            out.insert(name.clone(), String::new());
            current = Some(name);
        } else if !line.trim().is_empty() {
            let name = current.clone().expect("an expression under an alert name");
            let expr = out.entry(name).or_default();
            expr.push(' ');
            expr.push_str(line.trim());
        }
    }
    out
}

fn squeeze(expr: &str) -> String {
    expr.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_alerts_and_shipped_rules_ask_for_series_gatehouse_emits() {
    let p = provoked_server().await;
    let text = p.provoke().await;

    // The docs show exactly the shipped rules.
    let docs = repo_file(OPERATIONS);
    let rules = rule_exprs();
    let documented = documented_exprs(&docs);
    assert_eq!(
        documented.keys().collect::<Vec<_>>(),
        rules.keys().collect::<Vec<_>>(),
        "{OPERATIONS} and {RULES} name different alerts"
    );
    for (name, expr) in &rules {
        assert_eq!(
            squeeze(&documented[name]),
            squeeze(expr),
            "{name}: {OPERATIONS} and {RULES} differ"
        );
    }

    let mut from_rules = Vec::new();
    for (name, expr) in &rules {
        from_rules.extend(promql_selectors(expr).unwrap_or_else(|e| panic!("{name}: {e}")));
    }
    assert_emitted(RULES, &from_rules, &["up"], &text);
    let from_docs = markdown_selectors(&docs);
    assert!(
        from_docs.len() >= rules.len(),
        "{OPERATIONS} names too few series"
    );
    assert_emitted(OPERATIONS, &from_docs, &[], &text);
}

/// Every `expr` in the dashboard JSON, and the template variables' queries.
fn dashboard_queries(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    ("query" | "definition", Value::String(q)) if q.contains('(') => {
                        out.push(q.clone());
                    }
                    _ => dashboard_queries(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| dashboard_queries(i, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_queries_use_only_series_gatehouse_emits() {
    let dashboard: Value = serde_json::from_str(&repo_file(DASHBOARD)).unwrap();
    let mut queries = Vec::new();
    dashboard_queries(&dashboard, &mut queries);
    let exprs = queries.len();
    assert!(exprs >= 6, "{queries:?}");
    let mut selectors = Vec::new();
    for q in &queries {
        // `label_values(metric, label)` is Grafana's, not PromQL.
        let q = match q.strip_prefix("label_values(") {
            Some(rest) => rest.split(',').next().unwrap_or_default().to_owned(),
            None => q.clone(),
        };
        selectors.extend(promql_selectors(&q).unwrap_or_else(|e| panic!("{q}: {e}")));
    }
    let names: BTreeSet<&str> = selectors.iter().map(|s| s.name.as_str()).collect();
    for series in [
        "gatehouse_decisions_total",
        "gatehouse_verify_duration_seconds_bucket",
        "gatehouse_token_cache_total",
        "gatehouse_jwks_age_seconds",
        "gatehouse_jwks_fetches_total",
    ] {
        assert!(names.contains(series), "the dashboard shows no {series}");
    }
    let p = provoked_server().await;
    let text = p.provoke().await;
    assert_emitted(DASHBOARD, &selectors, &[], &text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_counts_its_two_doors_and_shows_no_cli_door() {
    let p = provoked_server().await;
    let g = &p.gatehouse;
    let before = tokio::task::block_in_place(|| scrape(g));
    for door in ["grpc", "http"] {
        assert_eq!(
            metrics::value(
                &before,
                "gatehouse_decisions_total",
                &[
                    ("door", door),
                    ("result", "allow"),
                    ("reason", "authenticated")
                ]
            ),
            Some(0.0),
            "{before}"
        );
    }
    let after = p.provoke().await;
    for text in [&before, &after] {
        let doors: BTreeSet<String> = metrics::samples(text)
            .into_iter()
            .filter_map(|s| s.labels.get("door").cloned())
            .collect();
        assert_eq!(
            doors,
            BTreeSet::from(["grpc".to_owned(), "http".to_owned()]),
            "{text}"
        );
    }
    // provoke(): one allow through Envoy; over HTTP the request that found
    // the keys loaded, then one more from the cache.
    assert_eq!(
        metrics::decisions(&after, "grpc", "allow", "authenticated"),
        1.0
    );
    assert_eq!(
        metrics::decisions(&after, "http", "allow", "authenticated"),
        2.0
    );
    assert_eq!(
        metrics::decisions(&after, "grpc", "deny", "missing_attributes"),
        1.0
    );
    assert_eq!(
        metrics::decisions(&after, "http", "deny", "jwks_unavailable"),
        1.0
    );
    assert_eq!(
        metrics::decisions(&after, "http", "deny", "session_unavailable"),
        1.0
    );
    assert_eq!(
        metrics::count(&after, "gatehouse_token_cache_total", &[("result", "hit")]),
        // The second HTTP allow and the Envoy one: the same token.
        2.0
    );
}

// ------------------------------------------------------------ key age --

fn age(text: &str, provider: &str) -> Option<f64> {
    metrics::value(
        text,
        "gatehouse_jwks_age_seconds",
        &[("provider", provider)],
    )
}

fn fetches(text: &str, provider: &str, result: &str) -> Option<f64> {
    metrics::value(
        text,
        "gatehouse_jwks_fetches_total",
        &[("provider", provider), ("result", result)],
    )
}

fn two_providers(first: (&str, &JwksServer), second: (&str, &JwksServer)) -> String {
    let provider = |(name, server): (&str, &JwksServer)| {
        format!(
            "  - name: {name}
    issuer: https://{name}.test
    jwks_uri: {}
",
            server.url("/jwks")
        )
    };
    format!(
        "providers:\n{}{}default_access: authenticated\n",
        provider(first),
        provider(second)
    )
}

fn rewrite(path: &PathBuf, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_age_is_measured_at_scrape_and_follows_a_reload() {
    let key = TestKey::generate("EdDSA", "k1");
    let (a, b, c) = (
        JwksServer::start(jwks(&[&key])).await,
        JwksServer::start(jwks(&[&key])).await,
        JwksServer::start(jwks(&[&key])).await,
    );
    let config = write_config(&two_providers(("a", &a), ("b", &b)));
    tokio::task::block_in_place(|| {
        let g = Gatehouse::start(Some(&config), &Default::default());
        assert!(
            g.wait_ready(Duration::from_secs(10)),
            "{}",
            g.proc.log_text()
        );

        // Healthy and idle: no fetch between two scrapes, yet the keys age.
        let first = scrape(&g);
        std::thread::sleep(Duration::from_millis(1100));
        let second = scrape(&g);
        assert_eq!((a.hits(), b.hits()), (1, 1), "no refetch in between");
        for p in ["a", "b"] {
            let (t1, t2) = (age(&first, p).unwrap(), age(&second, p).unwrap());
            assert!(t2 - t1 >= 1.0, "{p}: {t1} then {t2}");
            assert!(t2 < 5.0, "{p}: {t2}");
            assert_eq!(fetches(&second, p, "success"), Some(1.0));
            assert_eq!(fetches(&second, p, "failure"), Some(0.0));
        }

        // SIGHUP: `b` leaves, `c` arrives, `a` stays.
        rewrite(&config, &two_providers(("a", &a), ("c", &c)));
        g.proc.signal("HUP");
        let deadline = Instant::now() + Duration::from_secs(15);
        let reloaded = loop {
            let text = scrape(&g);
            if age(&text, "c").is_some() {
                break text;
            }
            assert!(Instant::now() < deadline, "{}", g.proc.log_text());
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(!reloaded.contains("provider=\"b\""), "{reloaded}");
        // `a` was fetched again by the new configuration: same series, a
        // second success, young keys.
        assert_eq!(fetches(&reloaded, "a", "success"), Some(2.0), "{reloaded}");
        assert!(age(&reloaded, "a").unwrap() < 1.0, "{reloaded}");
        assert_eq!(fetches(&reloaded, "c", "success"), Some(1.0), "{reloaded}");

        // A reload that cannot load its keys keeps the running configuration
        // and leaves no trace of the provider it would have added.
        let refusing = common::ports::closed_port();
        let closed = format!("127.0.0.1:{}", refusing.port);
        rewrite(
            &config,
            &format!(
                "{}  - name: never
    issuer: https://never.test
    jwks_uri: http://{closed}/jwks
",
                two_providers(("a", &a), ("c", &c)).replace("default_access: authenticated\n", "")
            ),
        );
        g.proc.signal("HUP");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !g.proc.log_text().contains("reload failed") {
            assert!(Instant::now() < deadline, "{}", g.proc.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
        let after = scrape(&g);
        assert!(!after.contains("provider=\"never\""), "{after}");
        for p in ["a", "c"] {
            assert!(age(&after, p).is_some(), "{after}");
        }
    });
}
