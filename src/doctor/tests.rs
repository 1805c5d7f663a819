//! Doctor without real proxies: URLs, the bytes it sends, how it reads
//! answers (gatehouse's refusal or not, an echo, the trail), the probes it
//! builds, how each check judges an answer, the report, a whole run
//! against a stand-in proxy that never asks, and the command's usage
//! errors. The real proxies are in tests/e2e/doctor.rs.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::ExitCode;

use super::asked::{Decision, Found, TrailError, host_only, parse};
use super::probe::{Answer, Origin, OriginError, Refusal, Request, parse_answer, request_bytes};
use super::report::{Check, Format, Report, Status};
use super::*;

fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Answer {
    Answer {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        body: body.to_owned(),
    }
}

fn refused_401() -> Answer {
    answer(
        401,
        &[("x-gatehouse-error", "token_missing")],
        r#"{"error":"token_missing","message":"authentication required"}"#,
    )
}

fn opts() -> Options {
    Options {
        origin: Origin::parse("http://127.0.0.1:8000").unwrap(),
        protected: "/api/me?x=1".to_owned(),
        public: Some("/public/page".to_owned()),
        token: Some("tok".to_owned()),
        identity_headers: vec!["x-user-id".to_owned(), "x-user-role".to_owned()],
        echo_upstream: true,
        gatehouse: None,
        proxy: None,
    }
}

#[test]
fn origins_are_plain_http_without_a_path() {
    let o = Origin::parse("http://Proxy.Example:8443").unwrap();
    assert_eq!(o.authority, "Proxy.Example:8443");
    assert_eq!(o.host, "proxy.example");
    assert_eq!(o.to_string(), "http://Proxy.Example:8443");
    assert_eq!(Origin::parse("http://h/").unwrap().authority, "h");
    assert_eq!(Origin::parse("http://[::1]:9000").unwrap().host, "::1");
    assert!(matches!(
        Origin::parse("https://h"),
        Err(OriginError::NotHttp(_))
    ));
    assert!(matches!(
        Origin::parse("http://h/app"),
        Err(OriginError::HasPath(_))
    ));
    assert!(matches!(
        Origin::parse("http://h/?a=1"),
        Err(OriginError::HasPath(_))
    ));
    for bad in ["h:80", "not a url", "/path"] {
        assert!(Origin::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn requests_go_out_byte_for_byte() {
    let o = Origin::parse("http://app.test:81").unwrap();
    let req = Request {
        method: "GET",
        target: "/public/../a%2Fb;x//c".to_owned(),
        headers: vec![
            ("Authorization".to_owned(), "Bearer a".to_owned()),
            ("Authorization".to_owned(), "Bearer b".to_owned()),
        ],
    };
    let bytes = request_bytes(&o, &req);
    assert!(bytes.starts_with("GET /public/../a%2Fb;x//c HTTP/1.1\r\nHost: app.test:81\r\n"));
    assert!(bytes.contains("Connection: close\r\n"));
    assert!(bytes.ends_with("Authorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n"));
}

#[test]
fn answers_are_parsed_with_or_without_chunks() {
    let a = parse_answer(
        b"HTTP/1.1 401 Unauthorized\r\nX-Gatehouse-Error: token_missing\r\nContent-Length: 4\r\n\r\nbodyEXTRA",
    )
    .unwrap();
    assert_eq!(a.status, 401);
    assert_eq!(a.header("x-gatehouse-error"), Some("token_missing"));
    assert_eq!(a.body, "body");
    let chunked = parse_answer(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(chunked.body, "abcde");
    let to_close = parse_answer(b"HTTP/1.0 200 OK\r\n\r\nall of it").unwrap();
    assert_eq!(to_close.body, "all of it");
    for junk in [
        &b""[..],
        b"SSH-2.0-x\r\n\r\n",
        b"HTTP/1.1 abc\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n",
    ] {
        assert!(parse_answer(junk).is_none(), "{junk:?}");
    }
}

#[test]
fn an_answer_is_complete_when_its_headers_say_so() {
    use super::probe::complete;
    assert!(!complete(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n"));
    assert!(!complete(
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbod"
    ));
    assert!(complete(
        b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nbody"
    ));
    assert!(complete(
        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
    ));
    assert!(!complete(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
    ));
    assert!(complete(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    ));
    assert!(!complete(b"HTTP/1.0 200 OK\r\n\r\nuntil close"));
}

/// A server that answers with a length and keeps the connection open:
/// doctor does not wait for it to close.
#[test]
fn a_kept_open_connection_does_not_hold_doctor() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let keep = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = stream.read(&mut buf).unwrap();
        stream
            .write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\nno")
            .unwrap();
        std::thread::sleep(std::time::Duration::from_secs(3));
    });
    let started = std::time::Instant::now();
    let origin = Origin::parse(&format!("http://{addr}")).unwrap();
    let req = Request {
        method: "GET",
        target: "/".into(),
        headers: Vec::new(),
    };
    let a = super::probe::send(&origin, &req).unwrap();
    assert_eq!((a.status, a.body.as_str()), (401, "no"));
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    keep.join().unwrap();
}

#[test]
fn only_gatehouse_refusals_count() {
    // x-gatehouse-error, or gatehouse's JSON (nginx's printed pages rebuild it).
    assert_eq!(
        refused_401().refusal(),
        Some(Refusal::Gatehouse {
            status: 401,
            code: Some("token_missing".into()),
            challenge_only: false
        })
    );
    let json_only = answer(403, &[], r#"{"error":"forbidden","message":"no"}"#);
    assert!(matches!(
        json_only.refusal(),
        Some(Refusal::Gatehouse { status: 403, code: Some(c), .. }) if c == "forbidden"
    ));
    // nginx without error pages: only the challenge is left.
    let challenge = answer(
        401,
        &[("www-authenticate", "Bearer realm=\"gatehouse\"")],
        "<html>401</html>",
    );
    assert!(matches!(
        challenge.refusal(),
        Some(Refusal::Gatehouse {
            challenge_only: true,
            code: None,
            ..
        })
    ));
    assert!(
        challenge
            .describe()
            .contains("challenge but not its JSON body")
    );
    // The application's own 401, a proxy's 500, a 404: not gatehouse.
    for (status, headers, body) in [
        (
            401,
            vec![("www-authenticate", "Basic realm=\"app\"")],
            "login",
        ),
        (401, vec![], r#"{"error":"nope"}"#),
        (500, vec![("x-gatehouse-error", "bad_request")], ""),
        (404, vec![], ""),
    ] {
        let a = answer(status, &headers, body);
        assert_eq!(a.refusal(), Some(Refusal::Other { status }), "{a:?}");
    }
    let limited = answer(429, &[("x-gatehouse-error", "rate_limited")], "");
    assert!(matches!(
        limited.refusal(),
        Some(Refusal::Gatehouse { status: 429, .. })
    ));
    let served = answer(204, &[], "");
    assert!(served.passed() && served.refusal().is_none());
    let from = answer(500, &[("server", "nginx")], "");
    assert_eq!(from.describe(), "500 from nginx, not gatehouse's answer");
}

#[test]
fn echoes_are_read_as_json_header_maps() {
    let a = answer(
        200,
        &[],
        r#"{"path":"/a?b","headers":{"X-User-Id":["forged","alice"],"x-one":"v"}}"#,
    );
    let echo = a.echo().unwrap();
    assert_eq!(echo.path.as_deref(), Some("/a?b"));
    assert_eq!(echo.values("x-user-id"), ["forged", "alice"]);
    assert_eq!(echo.values("x-one"), ["v"]);
    assert!(echo.values("x-none").is_empty());
    for not_echo in [
        "<html>",
        r#"{"headers":5}"#,
        r#"{"headers":{"a":[1]}}"#,
        "[]",
    ] {
        assert!(answer(200, &[], not_echo).echo().is_none(), "{not_echo}");
    }
}

#[test]
fn the_trail_answer_is_read_or_says_why_not() {
    let found = parse(&answer(
        200,
        &[],
        r#"{"recorded":7,"decisions":[{"door":"http","family":"original","method":"GET","path":"/a","host":"h","error":null,"reason":"public"}]}"#,
    ))
    .unwrap();
    assert_eq!(found.recorded, 7);
    assert_eq!(found.decisions[0].method.as_deref(), Some("GET"));
    assert_eq!(found.decisions[0].error, None);
    assert!(matches!(parse(&answer(404, &[], "")), Err(TrailError::Off)));
    assert!(matches!(
        parse(&answer(403, &[], "")),
        Err(TrailError::Refused)
    ));
    assert!(matches!(
        parse(&answer(200, &[], "x")),
        Err(TrailError::Unexpected(_))
    ));
    assert!(
        TrailError::Off
            .to_string()
            .contains("http.decision_trail: true")
    );
    assert!(
        TrailError::Refused
            .to_string()
            .contains("http.admin_networks")
    );
    for (value, host) in [
        ("App.Example:8080", "app.example"),
        ("app.example", "app.example"),
        ("[::1]:80", "::1"),
        ("::1", "::1"),
    ] {
        assert_eq!(host_only(value), host, "{value}");
    }
}

fn probe_of<'p>(probes: &'p [Probe], check: &str) -> &'p Probe {
    probes
        .iter()
        .find(|p| p.check == check)
        .unwrap_or_else(|| panic!("no probe {check}"))
}

#[test]
fn probes_climb_from_the_public_path_to_the_protected_one() {
    let probes = probes(&opts(), "run");
    let target = |c: &str| probe_of(&probes, c).req.target.clone();
    assert_eq!(target("path.dot-segments"), "/public/page/../../api/me?x=1");
    assert_eq!(
        target("path.encoded-slash"),
        "/public/page%2F..%2F../api/me?x=1"
    );
    assert_eq!(
        target("path.encoded-dots"),
        "/public/page/%2e%2e/%2e%2e/api/me?x=1"
    );
    assert_eq!(target("path.semicolon"), "/public/page;/../../api/me?x=1");
    assert_eq!(target("path.double-slash"), "//api/me?x=1");
    assert_eq!(target("path.case"), "/API/ME?x=1");
    // Resolved, the plain tricks are the protected path; the encoded ones
    // are what gatehouse refuses as ambiguous.
    for check in ["path.dot-segments", "path.double-slash"] {
        assert_eq!(
            normalize_path(&target(check)).unwrap(),
            "/api/me",
            "{check}"
        );
    }
    for check in ["path.encoded-slash", "path.encoded-dots", "path.semicolon"] {
        assert!(normalize_path(&target(check)).is_err(), "{check}");
    }
    // Every probe has its own request id, sent first.
    let ids: std::collections::HashSet<&str> =
        probes.iter().map(|p| p.request_id.as_str()).collect();
    assert_eq!(ids.len(), probes.len());
    assert!(
        probes
            .iter()
            .all(|p| p.req.headers[0] == ("X-Request-Id".to_owned(), p.request_id.clone()))
    );
    // Two Authorization headers, the token first.
    let dup = &probe_of(&probes, "duplicate-authorization").req.headers;
    let auth: Vec<&str> = dup
        .iter()
        .filter(|(k, _)| k == "Authorization")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(auth, ["Bearer tok", "Bearer gatehouse-doctor.not-a.token"]);
    // Forged identity headers on both identity probes.
    let id = &probe_of(&probes, "identity.protected").req.headers;
    assert!(id.contains(&("x-user-role".to_owned(), FORGED.to_owned())));
    assert_eq!(
        probe_of(&probes, "identity.public").req.target,
        "/public/page"
    );
}

#[test]
fn without_public_path_token_or_echo_fewer_probes_go_out() {
    let mut o = opts();
    o.public = None;
    o.token = None;
    o.echo_upstream = false;
    o.protected = "/1/23".to_owned();
    let probes = probes(&o, "run");
    let checks: Vec<&str> = probes.iter().map(|p| p.check.as_str()).collect();
    for absent in [
        "public",
        "spoof.x-original-uri",
        "token",
        "identity.protected",
        "identity.public",
        "path.case",
    ] {
        assert!(!checks.contains(&absent), "{absent}");
    }
    assert_eq!(
        probe_of(&probes, "path.dot-segments").req.target,
        "/gatehouse-doctor/../1/23"
    );
    assert!(checks.contains(&"spoof.preflight-original"));
    // What was not sent is reported as skipped, with why.
    let report = judge(&o, None, &[]);
    for id in [
        "public",
        "spoof.x-original-uri",
        "spoof.x-forwarded-uri+method",
        "token",
        "identity",
    ] {
        assert_eq!(find(&report, id).status, Status::Skipped, "{id}");
    }
}

fn sent(check: &str, a: Answer) -> Sent {
    let probes = probes(&opts(), "run");
    Sent {
        probe: probe_of(&probes, check).clone(),
        answer: Ok(a),
        found: None,
    }
}

fn judged(sent: &[Sent], proxy: Option<Target>) -> Vec<Check> {
    judge(&opts(), proxy, sent)
}

fn find<'c>(checks: &'c [Check], id: &str) -> &'c Check {
    checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no check {id}: {checks:#?}"))
}

#[test]
fn a_spoof_that_passes_fails_with_the_proxy_line() {
    let checks = judged(
        &[
            sent("protected", refused_401()),
            sent("spoof.preflight-original", answer(200, &[], "")),
            sent(
                "spoof.x-forwarded-uri",
                answer(400, &[("x-gatehouse-error", "bad_request")], ""),
            ),
        ],
        Some(Target::Nginx),
    );
    assert_eq!(find(&checks, "protected").status, Status::Ok);
    let spoof = find(&checks, "spoof.preflight-original");
    assert_eq!(spoof.status, Status::Fail);
    assert!(spoof.detail.contains("was let through (200)"));
    let fix = spoof.fix.as_deref().unwrap();
    assert!(
        fix.contains("proxy_set_header X-Original-Method $request_method;"),
        "{fix}"
    );
    assert!(fix.contains("gatehouse proxy-config nginx"), "{fix}");
    assert_eq!(find(&checks, "spoof.x-forwarded-uri").status, Status::Ok);
}

#[test]
fn a_spoof_that_completes_a_failing_description_names_the_header() {
    let nginx_500 = answer(500, &[("server", "nginx")], "<html>");
    let checks = judged(
        &[
            sent("protected", nginx_500.clone()),
            sent(
                "spoof.x-original-method",
                answer(
                    401,
                    &[("www-authenticate", "Bearer realm=\"gatehouse\"")],
                    "",
                ),
            ),
            sent("spoof.x-forwarded-host", nginx_500),
        ],
        Some(Target::Nginx),
    );
    let protected = find(&checks, "protected");
    assert_eq!(protected.status, Status::Fail);
    assert!(
        protected
            .fix
            .as_deref()
            .unwrap()
            .contains("error_page 401 = @gatehouse_401;")
    );
    let spoof = find(&checks, "spoof.x-original-method");
    assert_eq!(spoof.status, Status::Fail);
    assert!(
        spoof
            .detail
            .contains("the proxy does not set X-Original-Method itself"),
        "{}",
        spoof.detail
    );
    assert_eq!(
        find(&checks, "spoof.x-forwarded-host").status,
        Status::Skipped
    );
}

#[test]
fn when_the_protected_path_is_served_the_other_checks_say_nothing() {
    let checks = judged(
        &[
            sent("protected", answer(200, &[], "secret")),
            sent("spoof.x-original-uri", answer(200, &[], "")),
            sent("path.dot-segments", answer(200, &[], "")),
            sent("duplicate-authorization", answer(200, &[], "")),
        ],
        None,
    );
    assert_eq!(find(&checks, "protected").status, Status::Fail);
    assert_eq!(
        find(&checks, "spoof.x-original-uri").status,
        Status::Skipped
    );
    assert_eq!(find(&checks, "path.dot-segments").status, Status::Skipped);
    // With a token, two credentials passing is its own finding.
    assert_eq!(
        find(&checks, "duplicate-authorization").status,
        Status::Fail
    );
}

#[test]
fn path_tricks_fail_when_served_unless_the_echo_shows_another_path() {
    let echo = |path: &str| answer(200, &[], &format!(r#"{{"path":"{path}","headers":{{}}}}"#));
    let checks = judged(
        &[
            sent("protected", refused_401()),
            sent("path.dot-segments", echo("/api/me")),
            sent("path.double-slash", echo("/public/page")),
            sent("path.encoded-slash", echo("/public/page%2F..%2F../api/me")),
            sent("path.case", echo("/API/ME")),
            sent("path.semicolon", answer(404, &[], "")),
            sent(
                "path.encoded-dots",
                answer(400, &[("x-gatehouse-error", "bad_request")], ""),
            ),
        ],
        Some(Target::EnvoyHttp),
    );
    let dot = find(&checks, "path.dot-segments");
    assert_eq!(dot.status, Status::Fail);
    assert!(
        dot.detail
            .contains("the protected path, without a credential")
    );
    assert!(dot.fix.as_deref().unwrap().contains("merge_slashes: true"));
    assert_eq!(find(&checks, "path.double-slash").status, Status::Ok);
    assert_eq!(find(&checks, "path.encoded-slash").status, Status::Fail);
    assert_eq!(find(&checks, "path.case").status, Status::Fail);
    assert_eq!(find(&checks, "path.semicolon").status, Status::Ok);
    assert_eq!(find(&checks, "path.encoded-dots").status, Status::Ok);
}

#[test]
fn client_identity_headers_are_found_appended_or_passed() {
    let echo = |headers: &str| answer(200, &[], &format!(r#"{{"path":"/","headers":{headers}}}"#));
    let checks = judged(
        &[
            sent(
                "identity.protected",
                echo(r#"{"x-user-id":["gatehouse-doctor-forged","alice"]}"#),
            ),
            sent(
                "identity.public",
                echo(r#"{"x-user-role":"gatehouse-doctor-forged"}"#),
            ),
        ],
        Some(Target::Traefik),
    );
    let protected = find(&checks, "identity.protected");
    assert_eq!(protected.status, Status::Fail);
    assert!(
        protected.detail.contains("appended to gatehouse's"),
        "{}",
        protected.detail
    );
    let public = find(&checks, "identity.public");
    assert!(public.detail.contains("passed on"), "{}", public.detail);
    assert!(
        public
            .fix
            .as_deref()
            .unwrap()
            .contains("authResponseHeaders")
    );
    let clean = judged(
        &[sent("identity.public", echo(r#"{"x-user-id":[""]}"#))],
        None,
    );
    assert_eq!(find(&clean, "identity.public").status, Status::Ok);
    let not_echo = judged(&[sent("identity.public", answer(200, &[], "<html>"))], None);
    assert_eq!(find(&not_echo, "identity.public").status, Status::Skipped);
}

#[test]
fn a_refused_token_says_why() {
    let checks = judged(
        &[sent(
            "token",
            answer(
                401,
                &[("x-gatehouse-error", "token_expired")],
                r#"{"error":"token_expired","message":"the token has expired"}"#,
            ),
        )],
        None,
    );
    let token = find(&checks, "token");
    assert_eq!(token.status, Status::Fail);
    assert!(token.detail.contains("the token has expired"));
    assert!(
        token
            .fix
            .as_deref()
            .unwrap()
            .contains("gatehouse verify --path /api/me")
    );
}

fn decision(
    method: Option<&str>,
    path: Option<&str>,
    host: Option<&str>,
    reason: &str,
) -> Decision {
    Decision {
        door: "http".into(),
        family: Some("original".into()),
        method: method.map(Into::into),
        path: path.map(Into::into),
        host: host.map(Into::into),
        error: None,
        reason: reason.into(),
    }
}

fn with_trail(mut s: Sent, decisions: Vec<Decision>) -> Sent {
    s.found = Some(Found {
        decisions,
        recorded: 0,
    });
    s
}

#[test]
fn the_trail_finds_an_unasked_proxy_and_client_descriptions() {
    let read = TrailState::Read {
        before: 10,
        after: 20,
    };
    let ok = |check: &str, a: Answer, path: &str| {
        with_trail(
            sent(check, a),
            vec![decision(
                Some("GET"),
                Some(path),
                Some("127.0.0.1"),
                "token_missing",
            )],
        )
    };
    let sent = vec![
        ok("public", answer(200, &[], ""), "/public/page"),
        with_trail(sent("protected", answer(200, &[], "")), vec![]),
        with_trail(
            sent("spoof.preflight-original", refused_401()),
            vec![decision(
                Some("OPTIONS"),
                Some("/api/me"),
                Some("127.0.0.1:8000"),
                "token_missing",
            )],
        ),
        with_trail(
            sent("spoof.x-original-uri", refused_401()),
            vec![decision(
                Some("GET"),
                Some("/public/page"),
                None,
                "token_missing",
            )],
        ),
        with_trail(
            sent("spoof.x-forwarded-host", refused_401()),
            vec![decision(
                Some("GET"),
                Some("/api/me"),
                Some("gatehouse-doctor.invalid"),
                "token_missing",
            )],
        ),
        with_trail(
            sent("spoof.x-original-method", answer(500, &[], "")),
            vec![decision(None, Some("/api/me"), None, "missing_method")],
        ),
    ];
    let checks = judge_trail(&opts(), Some(Target::Nginx), &sent, &read);
    let asked = find(&checks, "trail.asked");
    assert_eq!(asked.status, Status::Fail);
    assert!(
        asked.detail.contains(
            "gatehouse was never asked about GET /api/me?x=1, which the proxy answered 200"
        ),
        "{}",
        asked.detail
    );
    assert!(asked.fix.as_deref().unwrap().contains("`return`"));
    let method = find(&checks, "trail.method");
    assert!(
        method
            .detail
            .contains("gatehouse judged OPTIONS, the client's X-Original-Method"),
        "{}",
        method.detail
    );
    assert!(
        method
            .detail
            .contains("without X-Original-Method (missing_method)"),
        "{}",
        method.detail
    );
    let path = find(&checks, "trail.path");
    assert!(
        path.detail
            .contains("gatehouse judged /public/page, the client's X-Original-URI"),
        "{}",
        path.detail
    );
    assert!(
        path.fix
            .as_deref()
            .unwrap()
            .contains("proxy_set_header X-Original-URI $request_uri;")
    );
    let host = find(&checks, "trail.host");
    assert!(
        host.detail.contains("the client's X-Forwarded-Host"),
        "{}",
        host.detail
    );
}

#[test]
fn without_decisions_under_its_ids_doctor_tells_never_asked_from_replaced_ids() {
    let none = vec![with_trail(sent("protected", answer(200, &[], "")), vec![])];
    let quiet = judge_trail(
        &opts(),
        None,
        &none,
        &TrailState::Read {
            before: 5,
            after: 5,
        },
    );
    assert_eq!(quiet.len(), 1);
    assert_eq!(quiet[0].id, "trail.asked");
    assert_eq!(quiet[0].status, Status::Fail);
    assert!(quiet[0].detail.starts_with("gatehouse was never asked"));
    let busy = judge_trail(
        &opts(),
        Some(Target::Envoy),
        &none,
        &TrailState::Read {
            before: 5,
            after: 9,
        },
    );
    assert_eq!(busy[0].status, Status::Skipped);
    assert!(
        busy[0]
            .detail
            .contains("preserve_external_request_id: true"),
        "{}",
        busy[0].detail
    );
    let off = judge_trail(&opts(), None, &none, &TrailState::Unavailable("off".into()));
    assert_eq!(
        (off[0].id.as_str(), off[0].status),
        ("trail", Status::Skipped)
    );
}

#[test]
fn proxies_are_guessed_from_their_answers() {
    let guess =
        |headers: &[(&str, &str)]| guess_proxy(&[sent("protected", answer(401, headers, ""))]);
    assert_eq!(guess(&[("server", "nginx/1.22.1")]), Some(Target::Nginx));
    assert_eq!(guess(&[("via", "1.1 Caddy")]), Some(Target::Caddy));
    assert_eq!(guess(&[("server", "Caddy")]), Some(Target::Caddy));
    assert_eq!(guess(&[("server", "envoy")]), Some(Target::EnvoyHttp));
    assert_eq!(guess(&[("server", "gunicorn")]), None);
    let mut grpc = sent("protected", answer(401, &[("server", "envoy")], ""));
    grpc.found = Some(Found {
        decisions: vec![Decision {
            door: "grpc".into(),
            ..Decision::default()
        }],
        recorded: 1,
    });
    assert_eq!(guess_proxy(&[grpc]), Some(Target::Envoy));
}

#[test]
fn the_report_renders_text_and_json_and_exits_1_on_a_failure() {
    let report = Report {
        url: "http://p".into(),
        proxy: Some("nginx"),
        checks: vec![
            Check::ok("protected", "refused"),
            Check::fail("spoof.x", "let through", "add a line"),
            Check::skipped("trail", "no --gatehouse URL"),
        ],
    };
    assert_eq!(report.exit_code(), 1);
    let text = report.render(Format::Text);
    assert_eq!(
        text,
        "gatehouse doctor: http://p (proxy: nginx)\n\
         ok       protected: refused\n\
         FAIL     spoof.x: let through\n\
         \x20          fix: add a line\n\
         skipped  trail: no --gatehouse URL\n\
         1 ok, 1 FAIL, 1 skipped\n"
    );
    let json: serde_json::Value = serde_json::from_str(&report.render(Format::Json)).unwrap();
    assert_eq!(json["checks"][1]["status"], "fail");
    assert_eq!(json["checks"][1]["fix"], "add a line");
    assert_eq!(json["checks"][2]["fix"], serde_json::Value::Null);
    assert_eq!(
        (
            json["ok"].as_u64(),
            json["fail"].as_u64(),
            json["exit_code"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    let fine = Report {
        checks: vec![Check::ok("a", "b"), Check::skipped("c", "d")],
        ..report
    };
    assert_eq!(fine.exit_code(), 0);
}

/// A stand-in that answers every request with `reply` and counts them.
fn stand_in(
    reply: &'static str,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    (addr, hits)
}

#[test]
fn a_proxy_that_answers_everything_itself_fails_and_the_trail_says_never_asked() {
    let (proxy, hits) = stand_in(
        "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    );
    let (trail, _) = stand_in(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"recorded\":3,\"decisions\":[]}",
    );
    let mut o = opts();
    o.origin = Origin::parse(&format!("http://{proxy}")).unwrap();
    o.gatehouse = Some(Origin::parse(&format!("http://{trail}")).unwrap());
    let report = run(&o);
    assert_eq!(report.exit_code(), 1);
    assert_eq!(report.proxy, Some("nginx"));
    assert!(hits.load(std::sync::atomic::Ordering::SeqCst) >= 20);
    let text = report.to_text();
    assert!(
        text.contains("FAIL     protected: GET /api/me?x=1 answered 200 without a credential"),
        "{text}"
    );
    assert!(
        text.contains("FAIL     trail.asked: gatehouse was never asked: it recorded no decision"),
        "{text}"
    );
}

#[test]
fn an_unreachable_proxy_is_one_failure() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut o = opts();
    o.origin = Origin::parse(&format!("http://{closed}")).unwrap();
    let report = run(&o);
    assert_eq!(report.checks.len(), 1);
    assert_eq!(report.checks[0].id, "reach");
    assert_eq!(report.exit_code(), 1);
}

#[test]
fn usage_errors_exit_64() {
    let code = |args: &[&str]| {
        let args = std::iter::once("gatehouse")
            .chain(args.iter().copied())
            .map(Into::into);
        crate::cli::run(args, crate::config::Env::default())
    };
    let usage = ExitCode::from(64);
    for args in [
        &["doctor", "http://127.0.0.1:1"][..],
        &["doctor", "https://127.0.0.1:1", "--protected", "/a"],
        &["doctor", "http://127.0.0.1:1/app", "--protected", "/a"],
        &["doctor", "http://127.0.0.1:1", "--protected", "a"],
        &[
            "doctor",
            "http://127.0.0.1:1",
            "--protected",
            "/a",
            "--public",
            "/b c",
        ],
        &[
            "doctor",
            "http://127.0.0.1:1",
            "--protected",
            "/a",
            "--token",
            "a b",
        ],
        &[
            "doctor",
            "http://127.0.0.1:1",
            "--protected",
            "/a",
            "--proxy",
            "haproxy",
        ],
        &[
            "doctor",
            "http://127.0.0.1:1",
            "--protected",
            "/a",
            "--format",
            "yaml",
        ],
        &[
            "doctor",
            "http://127.0.0.1:1",
            "--protected",
            "/a",
            "--gatehouse",
            "gatehouse:8080",
        ],
        &[
            "doctor",
            "http://127.0.0.1:1",
            "--protected",
            "/a",
            "--config",
            "/nonexistent/gatehouse.yaml",
        ],
    ] {
        assert_eq!(code(args), usage, "{args:?}");
    }
}

#[test]
fn identity_headers_come_from_the_config_or_the_defaults() {
    let raw =
        crate::config::load::parse_yaml("identity_headers: { X-Tenant: org, x-user-id: sub }\n")
            .unwrap();
    assert_eq!(
        Options::identity_headers_of(Some(&raw)),
        ["x-tenant", "x-user-id"]
    );
    assert_eq!(
        Options::identity_headers_of(None),
        ["x-user-email", "x-user-id", "x-user-name"]
    );
}
