//! `gatehouse doctor`: probes a running proxy in front of gatehouse for the
//! wiring mistakes that let clients past it (docs/doctor.md).
//!
//! Doctor is a client. It sends requests through the proxy as a hostile
//! client would, and judges the answers:
//! - without a credential, the protected path must be refused, by gatehouse
//!   (its `x-gatehouse-error`, its JSON body or its challenge, not any
//!   401), and stay refused when the client adds a request description
//!   pointing at the public path, the `OPTIONS` preflight disguise, a
//!   second `Authorization`, or a path trick; the public path must pass;
//! - with `--token`, the protected path must pass; with `--echo-upstream`,
//!   no client-sent identity header may reach the upstream;
//! - with `--gatehouse` and `http.decision_trail: true`, what gatehouse was
//!   asked ([`asked`]) must be what the client sent: asked at all, about
//!   the client's method, path and host.
//!
//! Every FAIL names its fix in the proxy's terms ([`fixes`]); the report
//! ([`report`]) is text or JSON, and the exit code is 0 when nothing
//! failed. Probes go out byte for byte through [`probe`].
//!
//! Doctor never changes anything, and reads no gatehouse state but the
//! trail. It does not start proxies; the e2e tests do that.

mod asked;
mod fixes;
mod probe;
mod report;

use crate::policy::normalize_path;
use crate::proxy_config::Target;

use asked::{Found, TrailReader, host_only};
use fixes::Described;
pub(crate) use probe::Origin;
use probe::{Answer, ProbeError, Refusal, Request};
pub(crate) use report::Format;
use report::{Check, Report};

/// The value doctor puts in every client-sent identity header.
const FORGED: &str = "gatehouse-doctor-forged";
/// The host the client claims in `X-Forwarded-Host`.
const SPOOFED_HOST: &str = "gatehouse-doctor.invalid";
/// The path the path tricks climb out of when no public path is given.
const DUMMY_PREFIX: &str = "/gatehouse-doctor";
/// Identity headers when no `--config` names them (gatehouse's defaults).
const DEFAULT_IDENTITY: [&str; 3] = ["x-user-email", "x-user-id", "x-user-name"];

/// What to probe, from the command line.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// The proxy.
    pub(crate) origin: Origin,
    /// A path that needs a credential (path and optional query).
    pub(crate) protected: String,
    /// A path anyone may reach.
    pub(crate) public: Option<String>,
    /// A valid credential for the protected path (a bearer token).
    pub(crate) token: Option<String>,
    /// Identity header names (lower-case), from `--config` or the defaults.
    pub(crate) identity_headers: Vec<String>,
    /// The upstream echoes what it receives as JSON.
    pub(crate) echo_upstream: bool,
    /// gatehouse's HTTP listener, for the decision trail.
    pub(crate) gatehouse: Option<Origin>,
    /// The proxy, when the operator says; otherwise doctor guesses.
    pub(crate) proxy: Option<Target>,
}

impl Options {
    /// The identity headers of a gatehouse config file (as `check-config`
    /// would print them), or gatehouse's defaults.
    pub(crate) fn identity_headers_of(raw: Option<&crate::config::RawConfig>) -> Vec<String> {
        match raw.and_then(|r| r.identity_headers.as_ref()) {
            Some(map) => map.keys().map(|k| k.to_ascii_lowercase()).collect(),
            None => DEFAULT_IDENTITY.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// A header as sent: name and value.
type Header = (String, String);

/// Description headers a probe sends, with the value each points at.
type Spoofed = Vec<(Described, String)>;

/// What a probe is for, which decides how its answer is judged.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Public,
    Protected,
    /// Client-sent description headers (or a second `Authorization`).
    Spoof(Vec<Described>),
    /// Two `Authorization` headers.
    Duplicate,
    /// A path that resolves to the protected one.
    Trick,
    Token,
    /// Forged identity headers, with the token on the protected path or
    /// without it on the public path.
    Identity,
}

/// One request doctor sends, with the check it answers.
#[derive(Debug, Clone)]
struct Probe {
    check: String,
    kind: Kind,
    req: Request,
    request_id: String,
    /// A description header's value that points elsewhere (the public
    /// path, `OPTIONS`, a spoofed host), to recognize it in the trail.
    spoofed: Spoofed,
}

/// A probe and what came back.
#[derive(Debug)]
struct Sent {
    probe: Probe,
    answer: Result<Answer, ProbeError>,
    /// What gatehouse was asked, when the trail was read.
    found: Option<Found>,
}

/// The trail as doctor could read it.
#[derive(Debug)]
enum TrailState {
    /// No `--gatehouse`, or the trail could not be read: why.
    Unavailable(String),
    /// Read: decisions recorded before and after the probes.
    Read { before: u64, after: u64 },
}

/// Runs every check and returns the report.
pub(crate) fn run(opts: &Options) -> Report {
    let run_id = format!("{:08x}", rand::random::<u32>());
    let reader = opts.gatehouse.clone().map(TrailReader::new);
    // The trail before the probes: whether it can be read, and how many
    // decisions it had recorded.
    let before = reader
        .as_ref()
        .map(|r| r.lookup(&format!("gatehouse-doctor-{run_id}-start")));

    let mut sent: Vec<Sent> = Vec::new();
    for probe in probes(opts, &run_id) {
        let answer = probe::send(&opts.origin, &probe.req);
        if let Err(e @ ProbeError::Connect { .. }) = &answer {
            // Nothing can be judged without the proxy.
            return Report {
                url: opts.origin.to_string(),
                proxy: opts.proxy.map(Target::as_str),
                checks: vec![Check::fail(
                    "reach",
                    e.to_string(),
                    "check the URL: doctor needs the address clients use to reach the proxy",
                )],
            };
        }
        sent.push(Sent {
            probe,
            answer,
            found: None,
        });
    }

    let trail = match (&reader, before) {
        (Some(reader), Some(Ok(start))) => {
            for s in &mut sent {
                s.found = reader.lookup(&s.probe.request_id).ok();
            }
            let after = reader
                .lookup(&format!("gatehouse-doctor-{run_id}-end"))
                .map_or(start.recorded, |f| f.recorded);
            TrailState::Read {
                before: start.recorded,
                after,
            }
        }
        (Some(_), Some(Err(e))) => TrailState::Unavailable(e.to_string()),
        _ => TrailState::Unavailable(
            "no --gatehouse URL: pass gatehouse's HTTP listener (with `http.decision_trail: \
             true`) to compare what gatehouse was asked with what doctor sent"
                .to_owned(),
        ),
    };

    let proxy = opts.proxy.or_else(|| guess_proxy(&sent));
    let mut checks = judge(opts, proxy, &sent);
    checks.extend(judge_trail(opts, proxy, &sent, &trail));
    Report {
        url: opts.origin.to_string(),
        proxy: proxy.map(Target::as_str),
        checks,
    }
}

/// The proxy, from what it answered: nginx and Envoy name themselves in
/// `Server` (Envoy's gRPC door shows in the trail), Caddy in `Server` for
/// its own answers and in `Via` for proxied ones; Traefik says nothing.
fn guess_proxy(sent: &[Sent]) -> Option<Target> {
    let grpc = sent.iter().any(|s| {
        s.found
            .as_ref()
            .is_some_and(|f| f.decisions.iter().any(|d| d.door == "grpc"))
    });
    sent.iter()
        .filter_map(|s| s.answer.as_ref().ok())
        .flat_map(|a| [a.header("server"), a.header("via")])
        .flatten()
        .find_map(|value| {
            let v = value.to_ascii_lowercase();
            if v.starts_with("nginx") || v.starts_with("openresty") {
                Some(Target::Nginx)
            } else if v.starts_with("caddy") || v.ends_with(" caddy") {
                Some(Target::Caddy)
            } else if v.starts_with("envoy") || v.starts_with("istio-envoy") {
                Some(if grpc {
                    Target::Envoy
                } else {
                    Target::EnvoyHttp
                })
            } else {
                None
            }
        })
}

/// Splits `path?query` into the path and `?query` (or "").
fn split_query(target: &str) -> (&str, &str) {
    match target.find('?') {
        Some(i) => target.split_at(i),
        None => (target, ""),
    }
}

/// Every probe, in the order they are sent.
fn probes(opts: &Options, run_id: &str) -> Vec<Probe> {
    let mut n = 0;
    let mut make = |check: &str,
                    kind: Kind,
                    method: &'static str,
                    target: &str,
                    headers: Vec<Header>,
                    spoofed: Spoofed| {
        n += 1;
        let request_id = format!("gatehouse-doctor-{run_id}-{n:02}");
        let mut all = vec![("X-Request-Id".to_owned(), request_id.clone())];
        all.extend(headers);
        Probe {
            check: check.to_owned(),
            kind,
            req: Request {
                method,
                target: target.to_owned(),
                headers: all,
            },
            request_id,
            spoofed,
        }
    };
    let h = |name: &str, value: &str| (name.to_owned(), value.to_owned());
    let protected = opts.protected.as_str();
    let mut out = Vec::new();

    if let Some(public) = &opts.public {
        out.push(make(
            "public",
            Kind::Public,
            "GET",
            public,
            Vec::new(),
            Vec::new(),
        ));
    }
    out.push(make(
        "protected",
        Kind::Protected,
        "GET",
        protected,
        Vec::new(),
        Vec::new(),
    ));

    // Client-sent descriptions of another request.
    let mut spoofs: Vec<(&str, Spoofed, Vec<Header>)> = Vec::new();
    if let Some(public) = &opts.public {
        spoofs.push((
            "spoof.x-original-uri",
            vec![(Described::OriginalUri, public.clone())],
            Vec::new(),
        ));
        spoofs.push((
            "spoof.x-original-uri+method",
            vec![
                (Described::OriginalUri, public.clone()),
                (Described::OriginalMethod, "GET".to_owned()),
            ],
            Vec::new(),
        ));
        spoofs.push((
            "spoof.x-forwarded-uri",
            vec![(Described::ForwardedUri, public.clone())],
            Vec::new(),
        ));
        spoofs.push((
            "spoof.x-forwarded-uri+method",
            vec![
                (Described::ForwardedUri, public.clone()),
                (Described::ForwardedMethod, "GET".to_owned()),
            ],
            Vec::new(),
        ));
    }
    spoofs.push((
        "spoof.x-original-method",
        vec![(Described::OriginalMethod, "OPTIONS".to_owned())],
        Vec::new(),
    ));
    spoofs.push((
        "spoof.x-forwarded-method",
        vec![(Described::ForwardedMethod, "OPTIONS".to_owned())],
        Vec::new(),
    ));
    spoofs.push((
        "spoof.x-forwarded-host",
        vec![(Described::ForwardedHost, SPOOFED_HOST.to_owned())],
        Vec::new(),
    ));
    spoofs.push((
        "spoof.preflight-original",
        vec![(Described::OriginalMethod, "OPTIONS".to_owned())],
        vec![h("Access-Control-Request-Method", "GET")],
    ));
    spoofs.push((
        "spoof.preflight-forwarded",
        vec![(Described::ForwardedMethod, "OPTIONS".to_owned())],
        vec![h("Access-Control-Request-Method", "GET")],
    ));
    for (check, described, extra) in spoofs {
        let mut headers: Vec<(String, String)> =
            described.iter().map(|(d, v)| h(d.name(), v)).collect();
        headers.extend(extra);
        let kind = Kind::Spoof(described.iter().map(|(d, _)| *d).collect());
        out.push(make(check, kind, "GET", protected, headers, described));
    }

    // Two credentials: gatehouse refuses them; a proxy that keeps one
    // lets gatehouse and the application read different ones.
    let junk = "Bearer gatehouse-doctor.not-a.token";
    let first = opts
        .token
        .as_ref()
        .map_or_else(|| junk.to_owned(), |t| format!("Bearer {t}"));
    out.push(make(
        "duplicate-authorization",
        Kind::Duplicate,
        "GET",
        protected,
        vec![h("Authorization", &first), h("Authorization", junk)],
        Vec::new(),
    ));

    // Path tricks that resolve to the protected path.
    let (path, query) = split_query(protected);
    let prefix = opts
        .public
        .as_deref()
        .map(|p| split_query(p).0.trim_end_matches('/'))
        .filter(|p| !p.is_empty())
        .unwrap_or(DUMMY_PREFIX);
    let depth = prefix.split('/').filter(|s| !s.is_empty()).count();
    let climb = |step: &str| step.repeat(depth);
    let tricks = [
        (
            "path.dot-segments",
            format!("{prefix}{}{path}{query}", climb("/..")),
        ),
        (
            "path.encoded-slash",
            format!("{prefix}{}{path}{query}", "%2F..".repeat(depth)),
        ),
        (
            "path.encoded-dots",
            format!("{prefix}{}{path}{query}", climb("/%2e%2e")),
        ),
        (
            "path.semicolon",
            format!("{prefix};{}{path}{query}", climb("/..")),
        ),
        ("path.double-slash", format!("/{path}{query}")),
        ("path.case", format!("{}{query}", path.to_ascii_uppercase())),
    ];
    for (check, target) in tricks {
        if check == "path.case" && !path.bytes().any(|b| b.is_ascii_lowercase()) {
            continue;
        }
        out.push(make(
            check,
            Kind::Trick,
            "GET",
            &target,
            Vec::new(),
            Vec::new(),
        ));
    }

    if let Some(token) = &opts.token {
        let bearer = format!("Bearer {token}");
        out.push(make(
            "token",
            Kind::Token,
            "GET",
            protected,
            vec![h("Authorization", &bearer)],
            Vec::new(),
        ));
        if opts.echo_upstream {
            let mut headers: Vec<(String, String)> =
                opts.identity_headers.iter().map(|n| h(n, FORGED)).collect();
            headers.push(h("Authorization", &bearer));
            out.push(make(
                "identity.protected",
                Kind::Identity,
                "GET",
                protected,
                headers,
                Vec::new(),
            ));
        }
    }
    if let (Some(public), true) = (&opts.public, opts.echo_upstream) {
        let headers = opts.identity_headers.iter().map(|n| h(n, FORGED)).collect();
        out.push(make(
            "identity.public",
            Kind::Identity,
            "GET",
            public,
            headers,
            Vec::new(),
        ));
    }
    out
}

/// "GET /x with `A: b`, `C: d`".
fn request_text(req: &Request) -> String {
    let shown: Vec<String> = req
        .headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("x-request-id"))
        .map(|(k, v)| {
            if k.eq_ignore_ascii_case("authorization") && !v.contains("gatehouse-doctor") {
                format!("`{k}: Bearer <token>`")
            } else {
                format!("`{k}: {v}`")
            }
        })
        .collect();
    if shown.is_empty() {
        format!("{} {}", req.method, req.target)
    } else {
        format!("{} {} with {}", req.method, req.target, shown.join(", "))
    }
}

/// Whether an answer is gatehouse's refusal.
fn gatehouse_refused(a: &Answer) -> bool {
    matches!(a.refusal(), Some(Refusal::Gatehouse { .. }))
}

/// The answer to the probe for `check`, if it was sent and answered.
fn answer_of<'s>(sent: &'s [Sent], check: &str) -> Option<&'s Answer> {
    sent.iter()
        .find(|s| s.probe.check == check)
        .and_then(|s| s.answer.as_ref().ok())
}

/// The checks that need only the answers.
fn judge(opts: &Options, proxy: Option<Target>, sent: &[Sent]) -> Vec<Check> {
    let protected = answer_of(sent, "protected");
    let baseline = Baseline::of(protected);
    let mut checks = Vec::new();
    if opts.public.is_none() {
        checks.push(Check::skipped(
            "public",
            "no --public path: the checks that point a description at a public path need one",
        ));
        for id in [
            "spoof.x-original-uri",
            "spoof.x-original-uri+method",
            "spoof.x-forwarded-uri",
            "spoof.x-forwarded-uri+method",
        ] {
            checks.push(Check::skipped(id, "no --public path to point it at"));
        }
    }
    for s in sent {
        let id = s.probe.check.as_str();
        let what = request_text(&s.probe.req);
        let a = match &s.answer {
            Ok(a) => a,
            Err(e) => {
                checks.push(Check::fail(
                    id,
                    format!("{what}: {e}"),
                    "check that the proxy answers every request",
                ));
                continue;
            }
        };
        let check = match &s.probe.kind {
            Kind::Public => judge_public(id, &what, a),
            Kind::Protected => judge_protected(id, &what, a, proxy),
            Kind::Spoof(described) => {
                judge_spoof(id, &what, a, (baseline, protected), described, proxy)
            }
            Kind::Duplicate => judge_duplicate(id, &what, a, baseline, opts.token.is_some(), proxy),
            Kind::Trick => judge_trick(id, &what, a, baseline, opts, proxy),
            Kind::Token => judge_token(id, &what, a, &opts.protected, proxy),
            Kind::Identity => {
                let short = format!("{} {}", s.probe.req.method, s.probe.req.target);
                judge_identity(id, &short, a, opts, proxy)
            }
        };
        checks.push(check);
    }
    if opts.token.is_none() {
        checks.push(Check::skipped(
            "token",
            "no --token: the checks with a credential need a valid one for the protected path",
        ));
    }
    if !opts.echo_upstream {
        checks.push(Check::skipped(
            "identity",
            "no --echo-upstream: whether client-sent identity headers reach the application \
             can only be seen from an upstream that echoes the headers it receives",
        ));
    } else if opts.token.is_none() {
        checks.push(Check::skipped(
            "identity.protected",
            "no --token: an allowed request is needed",
        ));
    }
    if opts.echo_upstream && opts.public.is_none() {
        checks.push(Check::skipped("identity.public", "no --public path"));
    }
    checks
}

fn judge_public(id: &str, what: &str, a: &Answer) -> Check {
    if a.passed() {
        return Check::ok(
            id,
            format!("{what} answered {} without a credential", a.status),
        );
    }
    let by_gatehouse = gatehouse_refused(a);
    Check::fail(
        id,
        format!(
            "{what} answered {}: a public path must pass without a credential",
            a.describe()
        ),
        fixes::public_refused(by_gatehouse),
    )
}

fn judge_protected(id: &str, what: &str, a: &Answer, proxy: Option<Target>) -> Check {
    match a.refusal() {
        None => Check::fail(
            id,
            format!("{what} answered {} without a credential", a.status),
            fixes::protected_served(proxy),
        ),
        Some(Refusal::Gatehouse {
            challenge_only: false,
            ..
        }) => Check::ok(
            id,
            format!("{what}: refused by gatehouse: {}", a.describe()),
        ),
        Some(Refusal::Gatehouse { .. }) => Check::ok(
            id,
            format!(
                "{what}: refused by gatehouse: {} (the proxy passes gatehouse's challenge but not \
                 its JSON body or x-gatehouse-error)",
                a.describe()
            ),
        ),
        Some(Refusal::Other { .. }) => Check::fail(
            id,
            format!(
                "{what} answered {}: refused, but not by gatehouse (the proxy failed to ask, or \
                 gatehouse refused how the proxy described the request; --gatehouse shows which)",
                a.describe()
            ),
            fixes::lost_refusal(proxy),
        ),
    }
}

/// How the protected path without a credential was answered: the
/// baseline the other no-credential checks are read against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Baseline {
    /// Refused by gatehouse, as it must be.
    Refused,
    /// Served without a credential (`protected` fails): nothing more
    /// passing says anything.
    Served,
    /// Refused by something else, or not answered.
    Other,
}

impl Baseline {
    fn of(a: Option<&Answer>) -> Baseline {
        match a.map(Answer::refusal) {
            Some(None) => Baseline::Served,
            Some(Some(Refusal::Gatehouse { .. })) => Baseline::Refused,
            _ => Baseline::Other,
        }
    }
}

/// Why a no-credential check says nothing when the protected path
/// itself is served.
const SERVED_ANYWAY: &str =
    "the protected path is served without a credential anyway: see `protected`";

/// A client-sent description: refused by gatehouse as the baseline was,
/// never let through, and never what turns the proxy's failure into a
/// decision.
fn judge_spoof(
    id: &str,
    what: &str,
    a: &Answer,
    baseline: (Baseline, Option<&Answer>),
    described: &[Described],
    proxy: Option<Target>,
) -> Check {
    let names = described
        .iter()
        .map(|d| d.name())
        .collect::<Vec<_>>()
        .join(" and ");
    let fix = || fixes::client_described(proxy, described);
    match (a.refusal(), baseline.0) {
        (_, Baseline::Served) => Check::skipped(id, SERVED_ANYWAY),
        (None, _) => Check::fail(
            id,
            format!(
                "{what} was let through ({}): the client's {names} decided what gatehouse judged",
                a.status
            ),
            fix(),
        ),
        (Some(Refusal::Gatehouse { .. }), Baseline::Refused) => Check::ok(
            id,
            format!("{what}: refused by gatehouse: {}", a.describe()),
        ),
        (Some(Refusal::Gatehouse { .. }), Baseline::Other) => Check::fail(
            id,
            format!(
                "{what} was judged by gatehouse ({}), while without {names} the proxy answered \
                 {}: the proxy does not set {names} itself, so the client chooses what gatehouse \
                 judges",
                a.describe(),
                baseline
                    .1
                    .map_or_else(|| "nothing".to_owned(), Answer::describe),
            ),
            fix(),
        ),
        (Some(Refusal::Other { .. }), Baseline::Other) => Check::skipped(
            id,
            format!(
                "answered {}, as the protected path does without it: see `protected`",
                a.describe()
            ),
        ),
        (Some(Refusal::Other { .. }), Baseline::Refused) => Check::fail(
            id,
            format!(
                "{what} answered {} instead of gatehouse's refusal",
                a.describe()
            ),
            fixes::lost_refusal(proxy),
        ),
    }
}

/// Two `Authorization` headers must not pass: gatehouse refuses them, and
/// a proxy that keeps one lets gatehouse and the application read
/// different credentials. The proxy refusing them itself is fine.
fn judge_duplicate(
    id: &str,
    what: &str,
    a: &Answer,
    baseline: Baseline,
    with_token: bool,
    proxy: Option<Target>,
) -> Check {
    match (a.refusal(), baseline) {
        (None, Baseline::Served) if !with_token => Check::skipped(id, SERVED_ANYWAY),
        (None, _) => Check::fail(
            id,
            format!(
                "{what} was let through ({}){}: the proxy passed gatehouse one of the two, and \
                 the application may read the other",
                a.status,
                if with_token {
                    " although gatehouse refuses two credentials"
                } else {
                    ""
                }
            ),
            format!(
                "forward every Authorization value to gatehouse unchanged (never only the first or \
                 the last), or refuse such requests at the proxy; {}",
                fixes::regenerate(proxy)
            ),
        ),
        (Some(Refusal::Gatehouse { .. }), _) => Check::ok(
            id,
            format!("{what}: refused by gatehouse: {}", a.describe()),
        ),
        (Some(Refusal::Other { .. }), _) => Check::ok(
            id,
            format!("{what}: refused by the proxy: {}", a.describe()),
        ),
    }
}

/// A path trick must not serve the protected path. The proxy may refuse
/// it itself, or route it somewhere else (an echo upstream shows where).
fn judge_trick(
    id: &str,
    what: &str,
    a: &Answer,
    baseline: Baseline,
    opts: &Options,
    proxy: Option<Target>,
) -> Check {
    if baseline == Baseline::Served {
        return Check::skipped(id, SERVED_ANYWAY);
    }
    match a.refusal() {
        Some(Refusal::Gatehouse { .. }) => {
            return Check::ok(
                id,
                format!("{what}: refused by gatehouse: {}", a.describe()),
            );
        }
        Some(Refusal::Other { .. }) => {
            return Check::ok(id, format!("{what}: not served ({})", a.describe()));
        }
        None => {}
    }
    let protected = normalize_path(split_query(&opts.protected).0).ok();
    let seen = opts
        .echo_upstream
        .then(|| a.echo())
        .flatten()
        .and_then(|e| e.path);
    let Some(seen) = seen else {
        return Check::fail(
            id,
            format!("{what} answered {} without a credential", a.status),
            fixes::path_trick(proxy),
        );
    };
    let case_trick = id == "path.case";
    match normalize_path(&seen) {
        Err(_) => Check::fail(
            id,
            format!(
                "{what} answered {} and the upstream received {seen}, a path gatehouse refuses as \
                 ambiguous: the proxy asked about another one",
                a.status
            ),
            fixes::path_trick(proxy),
        ),
        Ok(norm)
            if protected
                .as_deref()
                .is_some_and(|p| p == norm || (case_trick && p.eq_ignore_ascii_case(&norm))) =>
        {
            Check::fail(
                id,
                format!(
                    "{what} answered {} and the upstream received {seen}: the protected path, \
                     without a credential",
                    a.status
                ),
                fixes::path_trick(proxy),
            )
        }
        Ok(_) => Check::ok(
            id,
            format!(
                "{what} answered {}, but the upstream received {seen}, not the protected path",
                a.status
            ),
        ),
    }
}

fn judge_token(id: &str, what: &str, a: &Answer, protected: &str, proxy: Option<Target>) -> Check {
    match a.refusal() {
        None => Check::ok(id, format!("{what} answered {}", a.status)),
        Some(Refusal::Gatehouse { .. }) => {
            let message = serde_json::from_str::<serde_json::Value>(&a.body)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
                .or_else(|| a.header("x-gatehouse-message").map(str::to_owned))
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            if a.header("x-gatehouse-error") == Some("rate_limited") {
                return Check::fail(
                    id,
                    format!(
                        "{what}: gatehouse refused it for its rate limit ({}{message})",
                        a.describe()
                    ),
                    "doctor's requests used up the token's rate limit: run doctor again after the \
                     Retry-After, or give the test caller a policy with more burst",
                );
            }
            Check::fail(
                id,
                format!(
                    "{what}: gatehouse refused the token ({}{message})",
                    a.describe()
                ),
                format!(
                    "pass a credential gatehouse accepts for {protected}: `gatehouse verify --path \
                     {} TOKEN` shows why this one is refused",
                    split_query(protected).0
                ),
            )
        }
        Some(Refusal::Other { .. }) => Check::fail(
            id,
            format!(
                "{what} answered {}: an allowed request must pass",
                a.describe()
            ),
            format!(
                "the proxy failed the allowed request (gatehouse unreachable, or refused how the \
                 proxy described it: --gatehouse shows which); {}",
                fixes::regenerate(proxy)
            ),
        ),
    }
}

/// No client-sent identity header may reach the upstream, appended to
/// gatehouse's or in its place.
fn judge_identity(
    id: &str,
    what: &str,
    a: &Answer,
    opts: &Options,
    proxy: Option<Target>,
) -> Check {
    if !a.passed() {
        return Check::skipped(
            id,
            format!(
                "{what} answered {}: nothing reached the upstream",
                a.describe()
            ),
        );
    }
    let Some(echo) = a.echo() else {
        return Check::skipped(
            id,
            "the upstream's answer is not an echo: --echo-upstream needs a JSON object with a \
             `headers` object of the headers it received (name to value, or to a list of values)",
        );
    };
    let mut leaked: Vec<(String, Vec<&str>)> = Vec::new();
    for name in &opts.identity_headers {
        let values = echo.values(name);
        if values.iter().any(|v| v.contains(FORGED)) {
            leaked.push((name.clone(), values));
        }
    }
    let Some((first, values)) = leaked.first() else {
        return Check::ok(
            id,
            format!(
                "the upstream received none of the client's {} ({what} answered {})",
                opts.identity_headers.join(", "),
                a.status
            ),
        );
    };
    let appended = values.iter().any(|v| !v.contains(FORGED) && !v.is_empty())
        || values.iter().any(|v| v.contains(',') && v.contains(FORGED));
    let list: Vec<String> = leaked
        .iter()
        .map(|(name, values)| format!("{name}: {values:?}"))
        .collect();
    Check::fail(
        id,
        format!(
            "the upstream received the client's identity headers ({}){}",
            list.join("; "),
            if appended {
                ", appended to gatehouse's"
            } else {
                ", passed on"
            }
        ),
        fixes::identity_header(proxy, first, appended),
    )
}

/// At most `max` findings, then how many more.
fn some_of(findings: &[String], max: usize) -> String {
    let mut out = findings
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if findings.len() > max {
        out.push_str(&format!("; and {} more", findings.len() - max));
    }
    out
}

/// Findings and their fixes, one check. Findings of one kind are told
/// once, with the first request that showed it and how many others did.
#[derive(Debug, Default)]
struct Findings {
    /// (what was found, the first request that showed it, how many more).
    found: Vec<(String, String, usize)>,
    fixes: Vec<String>,
}

impl Findings {
    fn add(&mut self, finding: String, example: String, fix: String) {
        match self.found.iter_mut().find(|(f, _, _)| *f == finding) {
            Some((_, first, more)) => {
                if *first != example {
                    *more += 1;
                }
            }
            None => self.found.push((finding, example, 0)),
        }
        if !self.fixes.contains(&fix) {
            self.fixes.push(fix);
        }
    }

    fn check(self, id: &str, ok: String) -> Check {
        if self.found.is_empty() {
            return Check::ok(id, ok);
        }
        let told: Vec<String> = self
            .found
            .iter()
            .map(|(finding, first, more)| match more {
                0 => format!("{finding}, for {first}"),
                n => format!("{finding}, for {first} and {n} more"),
            })
            .collect();
        Check::fail(id, some_of(&told, 3), self.fixes.join(" | "))
    }
}

/// The checks that compare what doctor sent with what gatehouse was asked.
fn judge_trail(
    opts: &Options,
    proxy: Option<Target>,
    sent: &[Sent],
    trail: &TrailState,
) -> Vec<Check> {
    let (before, after) = match trail {
        TrailState::Unavailable(why) => return vec![Check::skipped("trail", why.clone())],
        TrailState::Read { before, after } => (*before, *after),
    };
    let decided = |s: &Sent| s.found.as_ref().is_some_and(|f| !f.decisions.is_empty());
    let answered: Vec<&Sent> = sent.iter().filter(|s| s.answer.is_ok()).collect();
    let passed = |s: &Sent| s.answer.as_ref().is_ok_and(Answer::passed);
    if !sent.iter().any(decided) {
        if after == before {
            return vec![Check::fail(
                "trail.asked",
                format!(
                    "gatehouse was never asked: it recorded no decision while the proxy answered \
                     {} requests ({} of them with 2xx)",
                    answered.len(),
                    answered.iter().filter(|s| passed(s)).count()
                ),
                fixes::never_asked(proxy),
            )];
        }
        return vec![Check::skipped(
            "trail",
            format!(
                "gatehouse recorded {} decisions during the run, none under doctor's request \
                 ids: the proxy replaces X-Request-Id. To let doctor compare: {}",
                after.saturating_sub(before),
                fixes::request_id(proxy)
            ),
        )];
    }

    // Asked at all.
    // Requests the proxy let through without a decision, by request line.
    let mut never: Vec<(String, u16, usize)> = Vec::new();
    for s in sent {
        if !passed(s) || !s.found.as_ref().is_some_and(|f| f.decisions.is_empty()) {
            continue;
        }
        let line = format!("{} {}", s.probe.req.method, s.probe.req.target);
        let status = s.answer.as_ref().map_or(0, |a| a.status);
        match never
            .iter_mut()
            .find(|(l, st, _)| *l == line && *st == status)
        {
            Some((_, _, n)) => *n += 1,
            None => never.push((line, status, 1)),
        }
    }
    let never: Vec<String> = never
        .into_iter()
        .map(|(line, status, n)| match n {
            1 => format!("{line}, which the proxy answered {status}"),
            n => format!("{line}, which the proxy answered {status} ({n} requests)"),
        })
        .collect();
    let unrecorded = sent
        .iter()
        .filter(|s| {
            s.answer.as_ref().is_ok_and(gatehouse_refused)
                && s.found.as_ref().is_some_and(|f| f.decisions.is_empty())
        })
        .count();
    let asked = if never.is_empty() {
        Check::ok(
            "trail.asked",
            format!(
                "gatehouse decided every request the proxy let through ({} recorded under doctor's \
                 request ids)",
                sent.iter().filter(|s| decided(s)).count()
            ),
        )
    } else if unrecorded > 0 {
        Check::skipped(
            "trail.asked",
            format!(
                "{unrecorded} requests gatehouse refused are not in this trail either: another \
                 replica answered them. Point --gatehouse at the replica the proxy asks"
            ),
        )
    } else {
        Check::fail(
            "trail.asked",
            format!("gatehouse was never asked about {}", some_of(&never, 3)),
            fixes::never_asked(proxy),
        )
    };

    let mut method = Findings::default();
    let mut path = Findings::default();
    let mut host = Findings::default();
    for s in sent {
        let Some(found) = &s.found else { continue };
        let what = request_text(&s.probe.req);
        let spoofed = |kinds: &[Described], value: &str| {
            s.probe
                .spoofed
                .iter()
                .find(|(d, v)| kinds.contains(d) && split_query(v).0 == value)
                .map(|(d, _)| *d)
        };
        for d in &found.decisions {
            let family = d.family.as_deref().unwrap_or("original");
            match d.reason.as_str() {
                "missing_method" => {
                    let h = if family == "forwarded" {
                        Described::ForwardedMethod
                    } else {
                        Described::OriginalMethod
                    };
                    method.add(
                        format!("gatehouse was asked without {} (missing_method)", h.name()),
                        what.clone(),
                        fixes::client_described(proxy, &[h]),
                    );
                }
                "missing_uri" => {
                    let h = if family == "forwarded" {
                        Described::ForwardedUri
                    } else {
                        Described::OriginalUri
                    };
                    path.add(
                        format!("gatehouse was asked without {} (missing_uri)", h.name()),
                        what.clone(),
                        fixes::client_described(proxy, &[h]),
                    );
                }
                _ => {}
            }
            if let Some(m) = &d.method
                && m != s.probe.req.method
            {
                match spoofed(&[Described::OriginalMethod, Described::ForwardedMethod], m) {
                    Some(h) => method.add(
                        format!("gatehouse judged {m}, the client's {}", h.name()),
                        what.clone(),
                        fixes::client_described(proxy, &[h]),
                    ),
                    None => method.add(
                        format!("gatehouse judged {m}"),
                        what.clone(),
                        format!(
                            "describe the request with the method the proxy received; {}",
                            fixes::regenerate(proxy)
                        ),
                    ),
                }
            }
            if let Some(p) = &d.path {
                let sent_path = split_query(&s.probe.req.target).0;
                if s.probe.kind == Kind::Trick {
                    let echoed = s
                        .answer
                        .as_ref()
                        .ok()
                        .filter(|a| a.passed())
                        .and_then(Answer::echo)
                        .and_then(|e| e.path);
                    if let Some(up) = echoed
                        && normalize_path(p).ok() != normalize_path(&up).ok()
                    {
                        path.add(
                            format!("gatehouse judged {p}, while the upstream received {up}"),
                            what.clone(),
                            fixes::path_trick(proxy),
                        );
                    }
                } else if p != sent_path {
                    match spoofed(&[Described::OriginalUri, Described::ForwardedUri], p) {
                        Some(h) => path.add(
                            format!("gatehouse judged {p}, the client's {}", h.name()),
                            what.clone(),
                            fixes::client_described(proxy, &[h]),
                        ),
                        None => path.add(
                            format!("gatehouse was asked about {p}: the proxy rewrote the path before asking"),
                            what.clone(),
                            format!(
                                "ask gatehouse about the path the application receives (nginx `$request_uri`, \
                                 Envoy `%REQ(:PATH)%`); {}",
                                fixes::regenerate(proxy)
                            ),
                        ),
                    }
                }
            }
            if let Some(h) = &d.host {
                let judged = host_only(h);
                if spoofed(&[Described::ForwardedHost], &judged).is_some() {
                    host.add(
                        format!("gatehouse judged host {judged}, the client's X-Forwarded-Host"),
                        what.clone(),
                        fixes::client_described(proxy, &[Described::ForwardedHost]),
                    );
                } else if judged != opts.origin.host {
                    host.add(
                        format!(
                            "gatehouse was asked about host {judged}, not {}: rules with `hosts` \
                             would match the wrong name",
                            opts.origin.host
                        ),
                        what.clone(),
                        fixes::client_described(proxy, &[Described::ForwardedHost]),
                    );
                }
            }
        }
    }
    vec![
        asked,
        method.check(
            "trail.method",
            "gatehouse judged the method each request was sent with".to_owned(),
        ),
        path.check(
            "trail.path",
            "gatehouse judged the path each request was sent to".to_owned(),
        ),
        host.check(
            "trail.host",
            format!(
                "gatehouse judged the host the client asked for ({})",
                opts.origin.host
            ),
        ),
    ]
}

#[cfg(test)]
mod tests;
