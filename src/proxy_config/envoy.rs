//! The Envoy configurations: a complete static bootstrap for Envoy 1.40
//! whose `ext_authz` filter asks gatehouse about every request, over gRPC
//! (`envoy`) or over HTTP (`envoy-http`).
//!
//! gRPC needs no header lists: Envoy sends the request's own attributes
//! and applies gatehouse's answer as it is (identity headers overwritten
//! or removed, denials with their status, headers and body).
//!
//! HTTP mode needs every list spelled out, and has traps this file avoids
//! (checked against Envoy 1.40):
//! - `path_prefix` appends the client's path (`/auth/api/me`), so the
//!   check goes to `path_override: /auth`;
//! - the request description is added with `headers_to_add`, whose values
//!   are formatter strings and which replace a client copy of the same
//!   header;
//! - `allowed_headers` (top level; the `authorization_request` one is
//!   deprecated) passes only the credential headers, so a client's
//!   `X-Original-*` / `X-Forwarded-*` never reach gatehouse;
//! - `allowed_upstream_headers` lists every identity header: an allow sets
//!   each of them on the upstream request (an empty answer replaces the
//!   client's copy with an empty value), and Envoy's HTTP client then
//!   removes the ones named in `x-envoy-auth-headers-to-remove`; a
//!   `header_mutation` filter in front removes the client's copies
//!   anyway, so a list that outlives a header in gatehouse's configuration
//!   cannot pass the client's value on;
//! - a 5xx answer is an error to Envoy, not a denial: the client gets
//!   `status_on_error` and the answer's body is dropped.
//!
//! Both modes turn the body-less reply Envoy sends when it has no answer
//! (gatehouse down, slow, or a 5xx in HTTP mode) into the JSON shape of a
//! denial, with a CEL filter on `ext_authz_error` so gatehouse's own
//! denials are never rewritten.

use std::fmt::Write as _;

use super::{Endpoint, Wiring};
use crate::config::RequestHeaders;

/// Where every printed file puts Envoy's admin interface (loopback only).
const ADMIN_PORT: u16 = 9901;

/// How long Envoy waits for a decision before answering 503.
const CHECK_TIMEOUT: &str = "1s";

/// The CA bundle an https upstream is verified against.
const SYSTEM_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The CA gatehouse's certificate is verified against (as in envoy-mtls.yaml).
const GATEHOUSE_CA: &str = "/etc/envoy/tls/ca.crt";

/// Response headers of a denial that reach the client in HTTP mode.
const DENY_HEADERS: [&str; 8] = [
    "content-type",
    "cache-control",
    "www-authenticate",
    "x-gatehouse-error",
    "x-gatehouse-message",
    "retry-after",
    "ratelimit",
    "ratelimit-policy",
];

/// The Check call's retry policy (`GrpcService.retry_policy` and
/// `HttpService.retry_policy`): failures named in `retry_on` are retried on
/// another replica, quickly. Envoy turns this policy into a route retry
/// policy whose per-try timeout is the back-off's `max_interval`, so that
/// is [`CHECK_TIMEOUT`]: a lower one abandons and retries every check
/// slower than it (a key refetch, a session lookup), and fails it once the
/// retries are spent.
fn retry_policy(retry_on: &str) -> String {
    format!(
        r#"                          retry_on: {retry_on}
                          num_retries: 3
                          # Envoy also takes the back-off ceiling as the
                          # time each try may take, so it is the whole
                          # check timeout: a slow answer is waited for,
                          # and only a try that fails at once is retried.
                          retry_back_off: {{ base_interval: 0.005s, max_interval: {CHECK_TIMEOUT} }}
                          retry_host_predicate:
                            - name: envoy.retry_host_predicates.previous_hosts
                              typed_config:
                                "@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate
                          host_selection_retry_max_attempts: 20"#
    )
}

/// What the gRPC check retries: connection failures, resets, and a replica
/// that answers `UNAVAILABLE` or `CANCELLED` (draining, shutting down).
const RETRY_ON_GRPC: &str = "connect-failure,refused-stream,reset,unavailable,cancelled";

/// What the HTTP check retries: only failures to get an answer (a 5xx from
/// gatehouse is an answer, and is not retried).
const RETRY_ON_HTTP: &str = "connect-failure,refused-stream,reset";

/// Passive ejection of a replica that fails between health checks, and
/// panic routing only when no replica is healthy.
const OUTLIER: &str = r#"      # A replica that stops answering (killed, wedged, resetting) leaves
      # the rotation on its own failures, before its next health check.
      # Envoy's panic mode (routing to every address, healthy or not) starts
      # only when no address is healthy: one survivor of three takes all
      # the checks instead of sharing them with the dead.
      common_lb_config:
        healthy_panic_threshold: { value: 1 }
      # Retries of checks are cheap and brief; Envoy's default of three
      # retries in flight per cluster would refuse most of them at the
      # moment a replica dies under load.
      circuit_breakers:
        thresholds:
          - max_retries: 1024
      outlier_detection:
        consecutive_5xx: 3
        consecutive_gateway_failure: 2
        consecutive_local_origin_failure: 2
        split_external_local_origin_errors: true
        interval: 1s
        base_ejection_time: 5s
        max_ejection_percent: 67
"#;

/// The body Envoy sends when it has no answer from gatehouse.
const UNAVAILABLE_BODY: &str =
    r#"{"error":"authorizer_unavailable","message":"the authorization service is unavailable"}"#;

pub(super) fn render_grpc(w: &Wiring) -> String {
    let retry = retry_policy(RETRY_ON_GRPC);
    let filter = format!(
        r#"                  - name: envoy.filters.http.ext_authz
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
                      transport_api_version: V3
                      grpc_service:
                        envoy_grpc: {{ cluster_name: gatehouse }}
                        # A decision is a cache lookup or one signature
                        # check; a starved node still answers well within
                        # this, and clients are not held for long.
                        timeout: {CHECK_TIMEOUT}
                        # A replica that went away mid-check (killed,
                        # restarted, connection reset) costs a retry on
                        # another replica, not a failed request. Checks
                        # have no side effects worth fearing: a retried
                        # check spends rate-limit quota at most once more.
                        # Least-request balancing favours a dead replica
                        # (it holds no requests), so a retry may draw
                        # hosts many times to find one not yet tried.
                        retry_policy:
{retry}
                      # Fail closed: no answer (gatehouse down, slow or
                      # erroring) refuses the request with 503.
                      failure_mode_allow: false
                      status_on_error: {{ code: 503 }}
                      # Headers go as raw bytes in a list (header_map):
                      # repeated headers stay apart and non-UTF-8 bytes
                      # arrive as sent.
                      encode_raw_headers: true
                      # Every client header is sent (the gRPC default):
                      # gatehouse reads the method, path and host from the
                      # request attributes, never from a header, and picks
                      # the credential out of the headers itself. Bodies
                      # are not buffered: decisions use headers only.
"#
    );
    let cluster = format!(
        r#"    # gatehouse's gRPC listener. gRPC needs HTTP/2; Envoy multiplexes
    # every check of a worker over one connection per gatehouse address.
    - name: gatehouse
      type: {kind}
      connect_timeout: 0.25s
      lb_policy: LEAST_REQUEST
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config:
            http2_protocol_options:
              max_concurrent_streams: 1024
              connection_keepalive:
                interval: 30s
                timeout: 5s
      # grpc.health.v1: gatehouse answers NOT_SERVING until its keys are
      # loaded and from SIGTERM on, while it still answers checks for its
      # shutdown_delay (5s by default). Checking every second with a
      # threshold of 1 moves traffic to other addresses well within that.
      # With every address unhealthy, Envoy's panic mode still sends checks
      # to them rather than failing every request.
      health_checks:
        - timeout: 1s
          interval: 1s
          no_traffic_interval: 1s
          unhealthy_threshold: 1
          healthy_threshold: 1
          grpc_health_check:
            service_name: envoy.service.auth.v3.Authorization
{OUTLIER}{dns_note}{tls}      load_assignment:
        cluster_name: gatehouse
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    socket_address: {addr}
"#,
        kind = cluster_type(&w.authz),
        dns_note = dns_note(&w.authz),
        tls = gatehouse_tls(&w.authz, true),
        addr = socket(&w.authz),
    );
    let header = format!(
        r#"# Envoy 1.40 in front of an application, asking gatehouse about every
# request with the ext_authz filter over gRPC (envoy.service.auth.v3).
#
# Generated by: {command}
# Regenerate it after changing gatehouse's listeners or TLS rather than
# editing it by hand.
#
#   client ──▶ Envoy {listen} ──▶ application {upstream}
#                  │
#                  └─ ext_authz (gRPC) ──▶ gatehouse {authz}
#
# Check and run it:
#   envoy --mode validate -c envoy.yaml
#   envoy -c envoy.yaml
#
# What it guarantees:
# - gatehouse judges the request Envoy routes: the path is made canonical
#   before any filter runs, and gatehouse takes the method, path and host
#   from the attributes Envoy sends, never from a client header.
# - The application receives the identity headers
#     {identity}
#   only as gatehouse answered them: every allow overwrites those it has a
#   value for and removes the others, on every route, public ones included.
# - Denials keep gatehouse's status, WWW-Authenticate and JSON body. Without
#   an answer the request is refused with 503 and a JSON body of Envoy's
#   (authorizer_unavailable). Nothing passes unchecked.
"#,
        command = w.command,
        listen = w.listen.authority(),
        upstream = w.upstream.url(),
        authz = w.authz.authority(),
        identity = identity_list(w),
    );
    assemble(w, &header, &filter, &cluster)
}

pub(super) fn render_http(w: &Wiring) -> String {
    let (method_header, uri_header) = w.family_headers();
    let (other_method, other_uri) = w.other_family_headers();
    let family = match w.family {
        RequestHeaders::Original => "X-Original-*",
        _ => "X-Forwarded-*",
    };
    let mut allowed = String::new();
    for h in &w.credential_headers {
        let _ = writeln!(
            allowed,
            "                          - {{ exact: {} }}",
            h.to_ascii_lowercase()
        );
    }
    let _ = writeln!(
        allowed,
        "                          - {{ exact: x-request-id }}"
    );
    // Without identity headers the list is left out: unset, it copies
    // nothing (Envoy refuses an empty one).
    let mut upstream_headers = String::new();
    if !w.identity_headers.is_empty() {
        for line in [
            "# On 200, every identity header of the answer is set",
            "# on the upstream request, replacing the client's",
            "# copy; those gatehouse answers empty are then",
            "# removed (Envoy honours the answer's",
            "# x-envoy-auth-headers-to-remove).",
            "allowed_upstream_headers:",
            "  patterns:",
        ] {
            let _ = writeln!(upstream_headers, "{:26}{line}", "");
        }
    }
    for h in &w.identity_headers {
        let _ = writeln!(
            upstream_headers,
            "                              - {{ exact: {} }}",
            h.name
        );
    }
    // The client's copies go before the check, whatever the answer: the
    // upstream sees only values gatehouse answered, even for a header
    // listed here that gatehouse's configuration no longer has.
    let mut strip = String::new();
    if !w.identity_headers.is_empty() {
        for line in [
            "# The client's own identity headers are removed before",
            "# the check, so the application only ever sees values",
            "# gatehouse answered (even for a header listed here that",
            "# gatehouse's configuration no longer has).",
            "- name: envoy.filters.http.header_mutation",
            "  typed_config:",
            "    \"@type\": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            "    mutations:",
            "      request_mutations:",
        ] {
            let _ = writeln!(strip, "{:18}{line}", "");
        }
        for h in &w.identity_headers {
            let _ = writeln!(strip, "{:26}- remove: {}", "", h.name);
        }
    }
    let mut client_headers = String::new();
    for h in DENY_HEADERS {
        let _ = writeln!(
            client_headers,
            "                              - {{ exact: {h} }}"
        );
    }
    let retry = retry_policy(RETRY_ON_HTTP);
    let filter = format!(
        r#"{strip}                  - name: envoy.filters.http.ext_authz
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
                      transport_api_version: V3
                      http_service:
                        server_uri:
                          uri: "{authz_url}/auth"
                          cluster: gatehouse
                          # A decision is a cache lookup or one signature
                          # check; clients are not held for long.
                          timeout: {CHECK_TIMEOUT}
                        # A replica that went away mid-check costs a retry
                        # on another replica, not a failed request.
                        retry_policy:
{retry}
                        # Every check goes to /auth. (path_prefix would
                        # append the client's path: /auth/api/me.)
                        path_override: /auth
                        authorization_request:
                          # The request Envoy routes, described with the
                          # {family} headers. Envoy sets them itself,
                          # replacing any copy the client sent.
                          headers_to_add:
                            - {{ key: {method_header}, value: "%REQ(:METHOD)%" }}
                            - {{ key: {uri_header}, value: "%REQ(:PATH)%" }}
                            - {{ key: X-Forwarded-Host, value: "%REQ(:AUTHORITY)%" }}
                            # The client address (client_ip rate limits):
                            # Envoy's own view of it, never the client's.
                            - {{ key: X-Forwarded-For, value: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%" }}
                        authorization_response:
{upstream_headers}                          # On a denial, gatehouse's status, JSON body and
                          # these headers reach the client.
                          allowed_client_headers:
                            patterns:
{client_headers}                      # The client headers /auth receives: the ones gatehouse
                      # reads a credential (or a CORS preflight) from. Envoy
                      # adds Host, Method, Path, Content-Length and
                      # Authorization itself. Anything else, such as a
                      # client's {other_method} / {other_uri}, stays out.
                      allowed_headers:
                        patterns:
{allowed}                      # Fail closed: no answer (gatehouse down or slow) or a
                      # 5xx answer refuses the request with 503.
                      failure_mode_allow: false
                      status_on_error: {{ code: 503 }}
                      # Headers go unsanitised, repeated ones kept apart.
                      encode_raw_headers: true
"#,
        authz_url = w.authz.url(),
    );
    let cluster = format!(
        r#"    # gatehouse's HTTP listener.
    - name: gatehouse
      type: {kind}
      connect_timeout: 0.25s
      lb_policy: LEAST_REQUEST
      # /readyz answers 503 until gatehouse's keys are loaded and from
      # SIGTERM on, while /auth still answers for its shutdown_delay (5s by
      # default). Checking every second with a threshold of 1 moves traffic
      # to other addresses well within that. With every address unhealthy,
      # Envoy's panic mode still sends checks to them.
      health_checks:
        - timeout: 1s
          interval: 1s
          no_traffic_interval: 1s
          unhealthy_threshold: 1
          healthy_threshold: 1
          http_health_check:
            path: /readyz
{OUTLIER}{dns_note}{tls}      load_assignment:
        cluster_name: gatehouse
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    socket_address: {addr}
"#,
        kind = cluster_type(&w.authz),
        dns_note = dns_note(&w.authz),
        tls = gatehouse_tls(&w.authz, false),
        addr = socket(&w.authz),
    );
    let header = format!(
        r#"# Envoy 1.40 in front of an application, asking gatehouse's /auth about
# every request with the ext_authz filter over HTTP (http_service).
# Envoy's gRPC mode (`gatehouse proxy-config envoy`) needs no header lists;
# use this one where only HTTP reaches gatehouse.
#
# Generated by: {command}
# Regenerate it after changing gatehouse's identity_headers, token_sources
# or http.request_headers rather than editing it by hand.
#
#   client ──▶ Envoy {listen} ──▶ application {upstream}
#                  │
#                  └─ ext_authz (HTTP) ──▶ gatehouse {authz}/auth
#
# Check and run it:
#   envoy --mode validate -c envoy-http.yaml
#   envoy -c envoy-http.yaml
#
# What it guarantees:
# - gatehouse judges the request Envoy routes: the path is made canonical
#   before any filter runs, Envoy sets {method_header}, {uri_header} and
#   X-Forwarded-Host itself, and a client's own description headers never
#   reach /auth.
# - The application receives the identity headers
#     {identity}
#   only as gatehouse answered them: the client's copies are removed before
#   the check, and an allow sets those gatehouse has a value for, on every
#   route, public ones included.
# - Denials (401 with WWW-Authenticate, 403, 400) keep gatehouse's status
#   and JSON body. Envoy treats a 5xx answer like no answer: the request
#   is refused with 503 and a JSON body of Envoy's (authorizer_unavailable)
#   in place of gatehouse's. Nothing passes unchecked.
"#,
        command = w.command,
        listen = w.listen.authority(),
        upstream = w.upstream.url(),
        authz = w.authz.url(),
        identity = identity_list(w),
    );
    assemble(w, &header, &filter, &cluster)
}

/// The parts both modes share around the filter and the gatehouse cluster.
fn assemble(w: &Wiring, header: &str, filter: &str, gatehouse_cluster: &str) -> String {
    format!(
        r#"{header}
admin:
  address:
    socket_address: {{ address: 127.0.0.1, port_value: {ADMIN_PORT} }}

static_resources:
  listeners:
    - name: ingress
      address:
        socket_address: {listen}
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: ingress
                # The path is made canonical before any filter sees it, so
                # gatehouse matches its rules on the path the application
                # routes; encoded slashes are refused outright. gatehouse
                # still answers 400 to paths it cannot match safely.
                normalize_path: true
                merge_slashes: true
                path_with_escaped_slashes_action: REJECT_REQUEST
                # Every request has an x-request-id: the client's when it
                # sent one (so the client, and `gatehouse doctor`, can find
                # the request in gatehouse's log and decision trail), else
                # one Envoy makes up.
                generate_request_id: true
                preserve_external_request_id: true
                # Envoy is the edge: X-Forwarded-For comes from the peer.
                use_remote_address: true
                # When ext_authz has no answer it refuses with
                # status_on_error and no body; give that reply the JSON
                # shape of gatehouse's denials. Denials themselves
                # (ext_authz_denied) keep gatehouse's own body.
                local_reply_config:
                  mappers:
                    - filter:
                        extension_filter:
                          name: envoy.access_loggers.extension_filters.cel
                          typed_config:
                            "@type": type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter
                            expression: "response.code_details == 'ext_authz_error'"
                      headers_to_add:
                        - header: {{ key: cache-control, value: no-store }}
                          append_action: OVERWRITE_IF_EXISTS_OR_ADD
                      body:
                        inline_string: '{UNAVAILABLE_BODY}'
                      body_format_override:
                        text_format: "%LOCAL_REPLY_BODY%"
                        content_type: application/json
                route_config:
                  name: app
                  virtual_hosts:
                    - name: app
                      domains: ["*"]
                      routes:
                        # Every path is checked. Paths anyone may reach are
                        # `access: public` in gatehouse's rules, so their
                        # answer still strips client identity headers.
                        - match: {{ prefix: / }}
                          route: {{ cluster: upstream }}
                http_filters:
{filter}                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router

  clusters:
{gatehouse_cluster}
    # The protected application.
    - name: upstream
      type: {upstream_kind}
      connect_timeout: 1s
{upstream_tls}      load_assignment:
        cluster_name: upstream
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    socket_address: {upstream}
"#,
        listen = socket(&w.listen),
        upstream_kind = cluster_type(&w.upstream),
        upstream_tls = upstream_tls(&w.upstream),
        upstream = socket(&w.upstream),
    )
}

/// `{ address: 127.0.0.1, port_value: 9001 }`: one line, so a port can be
/// found and replaced as `port_value: 9001 `.
fn socket(e: &Endpoint) -> String {
    let host = e.bare_host();
    if host.contains(':') {
        format!("{{ address: \"{host}\", port_value: {} }}", e.port)
    } else {
        format!("{{ address: {host}, port_value: {} }}", e.port)
    }
}

/// An address is used as it is; a name is resolved, and re-resolved.
fn cluster_type(e: &Endpoint) -> &'static str {
    if e.is_ip() { "STATIC" } else { "STRICT_DNS" }
}

/// For a name: Envoy checks each address the name resolves to.
fn dns_note(e: &Endpoint) -> &'static str {
    if e.is_ip() {
        ""
    } else {
        "      # STRICT_DNS checks every address the name resolves to: in\n      \
         # Kubernetes, a headless Service gives one per gatehouse pod.\n"
    }
}

/// TLS to gatehouse, verified against a CA the operator provides.
fn gatehouse_tls(e: &Endpoint, h2: bool) -> String {
    if !e.tls {
        return String::new();
    }
    let alpn = if h2 {
        "            alpn_protocols: [h2]\n"
    } else {
        ""
    };
    let comment = "      # gatehouse serves TLS. Put the CA that signed its certificate at\n      \
                   # the trusted_ca path (Envoy refuses to start without it); for\n      \
                   # mutual TLS add tls_certificates as in envoy-mtls.yaml.\n";
    tls_socket(e, comment, alpn, GATEHOUSE_CA)
}

/// TLS to an https upstream, verified against the system CA bundle.
fn upstream_tls(e: &Endpoint) -> String {
    if !e.tls {
        return String::new();
    }
    let comment = "      # The application serves TLS, verified against the system CA\n      \
                   # bundle (change trusted_ca for a private CA).\n";
    tls_socket(e, comment, "", SYSTEM_CA)
}

fn tls_socket(e: &Endpoint, comment: &str, alpn: &str, ca: &str) -> String {
    let host = e.bare_host();
    let (sni, san_type) = if e.is_ip() {
        (String::new(), "IP_ADDRESS")
    } else {
        (format!("          sni: {host}\n"), "DNS")
    };
    format!(
        "{comment}      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
{sni}          common_tls_context:
{alpn}            validation_context:
              trusted_ca: {{ filename: {ca} }}
              match_typed_subject_alt_names:
                - san_type: {san_type}
                  matcher: {{ exact: \"{host}\" }}
"
    )
}

/// `x-user-id, x-user-email and x-user-name`, for the header comment.
fn identity_list(w: &Wiring) -> String {
    let names: Vec<&str> = w.identity_headers.iter().map(|h| h.name.as_str()).collect();
    match names.as_slice() {
        [] => "(none are configured)".to_owned(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_yaml_ng::Value;

    use super::super::{Flags, Target, wiring};
    use super::*;
    use crate::config::Config;
    use crate::error::{AuthError, BadRequestKind};

    fn config(yaml: &str) -> Config {
        let raw = crate::config::load::parse_yaml(yaml).unwrap();
        Config::compile(raw, &crate::config::Env::default()).unwrap()
    }

    const BASE: &str = "providers:\n  - name: p\n    issuer: https://i.example\n    jwks_uri: https://i.example/jwks\nidentity_headers:\n  x-user-id: sub\n  x-user-role: role\n";

    fn print(target: Target, extra: &str, flags: Flags) -> String {
        super::super::render(target, &config(&format!("{BASE}{extra}")), &flags).unwrap()
    }

    fn yaml(text: &str) -> Value {
        serde_yaml_ng::from_str(text).unwrap()
    }

    /// The value at `path` (keys, or indexes into lists).
    fn at<'v>(v: &'v Value, path: &str) -> &'v Value {
        path.split('.')
            .fold(v, |v, key| match key.parse::<usize>() {
                Ok(i) => &v[i],
                Err(_) => &v[key],
            })
    }

    fn filters(doc: &Value) -> Vec<&Value> {
        at(
            doc,
            "static_resources.listeners.0.filter_chains.0.filters.0.typed_config.http_filters",
        )
        .as_sequence()
        .unwrap()
        .iter()
        .collect()
    }

    fn filter<'v>(doc: &'v Value, name: &str) -> &'v Value {
        &filters(doc)
            .into_iter()
            .find(|f| f["name"] == name)
            .unwrap()["typed_config"]
    }

    fn ext_authz(doc: &Value) -> &Value {
        filter(doc, "envoy.filters.http.ext_authz")
    }

    fn cluster<'v>(doc: &'v Value, name: &str) -> &'v Value {
        at(doc, "static_resources.clusters")
            .as_sequence()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
    }

    fn exacts(list: &Value) -> Vec<String> {
        list["patterns"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| p["exact"].as_str().unwrap().to_owned())
            .collect()
    }

    fn address(c: &Value) -> (String, u64) {
        let a = at(
            c,
            "load_assignment.endpoints.0.lb_endpoints.0.endpoint.address.socket_address",
        );
        (
            a["address"].as_str().unwrap().to_owned(),
            a["port_value"].as_u64().unwrap(),
        )
    }

    #[test]
    fn grpc_fails_closed_on_the_grpc_listener_with_health_checks() {
        let text = print(Target::Envoy, "", Flags::default());
        let doc = yaml(&text);
        let f = ext_authz(&doc);
        assert_eq!(at(f, "grpc_service.envoy_grpc.cluster_name"), "gatehouse");
        assert_eq!(f["failure_mode_allow"], false);
        assert_eq!(at(f, "status_on_error.code"), 503);
        assert_eq!(f["encode_raw_headers"], true);
        assert!(f.get("http_service").is_none());
        let g = cluster(&doc, "gatehouse");
        assert_eq!(g["type"], "STATIC");
        assert_eq!(address(g), ("127.0.0.1".to_owned(), 9001));
        assert_eq!(
            at(g, "health_checks.0.grpc_health_check.service_name"),
            "envoy.service.auth.v3.Authorization"
        );
        assert!(
            at(g, "typed_extension_protocol_options")
                .as_mapping()
                .is_some()
        );
        assert_eq!(address(cluster(&doc, "upstream")).1, 3000);
        // The test harness finds ports as `port_value: N `.
        for port in [9001, 3000, 8000, ADMIN_PORT] {
            assert!(text.contains(&format!("port_value: {port} }}")), "{port}");
        }
    }

    /// Envoy gives each try of the Check call the back-off's `max_interval`
    /// as its timeout: below the check timeout, slow checks are abandoned.
    #[test]
    fn each_try_of_the_check_may_take_the_whole_check_timeout() {
        for (t, service, timeout) in [
            (Target::Envoy, "grpc_service", "grpc_service.timeout"),
            (
                Target::EnvoyHttp,
                "http_service",
                "http_service.server_uri.timeout",
            ),
        ] {
            let doc = yaml(&print(t, "", Flags::default()));
            let f = ext_authz(&doc);
            assert_eq!(at(f, timeout), CHECK_TIMEOUT, "{t}");
            let policy = at(f, &format!("{service}.retry_policy"));
            assert_eq!(
                at(policy, "retry_back_off.max_interval"),
                CHECK_TIMEOUT,
                "{t}"
            );
            assert_eq!(at(policy, "num_retries"), 3, "{t}");
        }
    }

    #[test]
    fn every_path_is_checked_and_none_switches_the_filter_off() {
        for t in [Target::Envoy, Target::EnvoyHttp] {
            let text = print(t, "", Flags::default());
            assert!(!text.contains("ExtAuthzPerRoute"), "{t}");
            let doc = yaml(&text);
            let routes = at(
                &doc,
                "static_resources.listeners.0.filter_chains.0.filters.0.typed_config.route_config.virtual_hosts.0.routes",
            );
            assert_eq!(routes.as_sequence().unwrap().len(), 1, "{t}");
            assert_eq!(at(routes, "0.match.prefix"), "/", "{t}");
            let hcm = at(
                &doc,
                "static_resources.listeners.0.filter_chains.0.filters.0.typed_config",
            );
            assert_eq!(hcm["normalize_path"], true);
            assert_eq!(hcm["path_with_escaped_slashes_action"], "REJECT_REQUEST");
            // The client's request id reaches gatehouse's decision trail.
            assert_eq!(hcm["generate_request_id"], true, "{t}");
            assert_eq!(hcm["preserve_external_request_id"], true, "{t}");
        }
    }

    #[test]
    fn names_are_resolved_and_addresses_are_not() {
        let flags = Flags {
            authz_url: Some("gatehouse.auth.svc.cluster.local:9001".into()),
            upstream: Some("http://app.default.svc:8080".into()),
            listen: Some("[::]:8443".into()),
            ..Flags::default()
        };
        let doc = yaml(&print(Target::Envoy, "", flags));
        let g = cluster(&doc, "gatehouse");
        assert_eq!(g["type"], "STRICT_DNS");
        assert_eq!(
            address(g),
            ("gatehouse.auth.svc.cluster.local".to_owned(), 9001)
        );
        assert_eq!(cluster(&doc, "upstream")["type"], "STRICT_DNS");
        let listen = at(&doc, "static_resources.listeners.0.address.socket_address");
        assert_eq!(listen["address"], "::");
        assert_eq!(listen["port_value"], 8443);
    }

    #[test]
    fn tls_to_gatehouse_verifies_its_name_against_a_ca() {
        let flags = Flags {
            authz_url: Some("https://gatehouse.auth.svc:9001".into()),
            ..Flags::default()
        };
        for t in [Target::Envoy, Target::EnvoyHttp] {
            let doc = yaml(&print(t, "", flags.clone()));
            let tls = at(cluster(&doc, "gatehouse"), "transport_socket.typed_config");
            assert_eq!(tls["sni"], "gatehouse.auth.svc", "{t}");
            let v = at(tls, "common_tls_context.validation_context");
            assert_eq!(at(v, "trusted_ca.filename"), GATEHOUSE_CA);
            assert_eq!(
                at(v, "match_typed_subject_alt_names.0.matcher.exact"),
                "gatehouse.auth.svc"
            );
            let h2 = at(tls, "common_tls_context.alpn_protocols.0");
            assert_eq!(h2.as_str(), (t == Target::Envoy).then_some("h2"), "{t}");
            assert!(cluster(&doc, "upstream").get("transport_socket").is_none());
        }
    }

    #[test]
    fn http_mode_asks_auth_itself_and_describes_the_request() {
        let doc = yaml(&print(Target::EnvoyHttp, "", Flags::default()));
        let f = ext_authz(&doc);
        let svc = &f["http_service"];
        assert_eq!(svc["path_override"], "/auth");
        assert!(svc.get("path_prefix").is_none());
        assert_eq!(at(svc, "server_uri.cluster"), "gatehouse");
        assert_eq!(
            address(cluster(&doc, "gatehouse")),
            ("127.0.0.1".into(), 8080)
        );
        let added: Vec<(String, String)> = at(svc, "authorization_request.headers_to_add")
            .as_sequence()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["key"].as_str().unwrap().to_owned(),
                    h["value"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            added,
            [
                ("X-Forwarded-Method".into(), "%REQ(:METHOD)%".into()),
                ("X-Forwarded-Uri".into(), "%REQ(:PATH)%".into()),
                ("X-Forwarded-Host".into(), "%REQ(:AUTHORITY)%".into()),
                (
                    "X-Forwarded-For".into(),
                    "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%".into()
                ),
            ]
        );
        assert_eq!(f["failure_mode_allow"], false);
        assert_eq!(at(f, "status_on_error.code"), 503);
        assert_eq!(
            at(
                cluster(&doc, "gatehouse"),
                "health_checks.0.http_health_check.path"
            ),
            "/readyz"
        );

        let orig = yaml(&print(
            Target::EnvoyHttp,
            "http: { request_headers: original }\n",
            Flags::default(),
        ));
        let keys: Vec<&str> = at(
            ext_authz(&orig),
            "http_service.authorization_request.headers_to_add",
        )
        .as_sequence()
        .unwrap()
        .iter()
        .map(|h| h["key"].as_str().unwrap())
        .collect();
        assert_eq!(
            keys,
            [
                "X-Original-Method",
                "X-Original-URI",
                "X-Forwarded-Host",
                "X-Forwarded-For"
            ]
        );
    }

    #[test]
    fn http_mode_sends_only_credential_headers_to_auth() {
        let doc = yaml(&print(
            Target::EnvoyHttp,
            "token_sources:\n  - header: authorization\n  - header: x-api-token\n  - cookie: s\n",
            Flags::default(),
        ));
        let f = ext_authz(&doc);
        assert_eq!(
            exacts(&f["allowed_headers"]),
            [
                "authorization",
                "x-api-token",
                "cookie",
                "access-control-request-method",
                "x-request-id"
            ]
        );
        // The deprecated per-request list is not used.
        assert!(
            at(f, "http_service.authorization_request")
                .get("allowed_headers")
                .is_none()
        );
    }

    #[test]
    fn http_mode_copies_every_identity_header_and_every_deny_header() {
        let doc = yaml(&print(Target::EnvoyHttp, "", Flags::default()));
        let resp = at(ext_authz(&doc), "http_service.authorization_response");
        assert_eq!(
            exacts(&resp["allowed_upstream_headers"]),
            ["x-user-id", "x-user-role"]
        );
        // Whatever a denial carries reaches the client.
        let client = exacts(&resp["allowed_client_headers"]);
        let limited = AuthError::RateLimited(Box::new(crate::error::RateLimitDenial {
            policy: "p".into(),
            quota: 1,
            window_secs: 1,
            retry_after_secs: 1,
            reset_secs: 1,
        }));
        for e in [
            AuthError::Missing,
            AuthError::BadRequest(BadRequestKind::MatrixParameter),
            limited,
        ] {
            for (name, _) in e.deny_response().headers {
                assert!(client.iter().any(|c| c == name.as_str()), "{name}");
            }
        }
        assert!(resp.get("allowed_client_headers_on_success").is_none());
    }

    #[test]
    fn http_mode_removes_client_identity_headers_before_the_check() {
        let doc = yaml(&print(Target::EnvoyHttp, "", Flags::default()));
        let names: Vec<&str> = filters(&doc)
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "envoy.filters.http.header_mutation",
                "envoy.filters.http.ext_authz",
                "envoy.filters.http.router"
            ]
        );
        let removed: Vec<&str> = at(
            filter(&doc, "envoy.filters.http.header_mutation"),
            "mutations.request_mutations",
        )
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| m["remove"].as_str().unwrap())
        .collect();
        assert_eq!(removed, ["x-user-id", "x-user-role"]);
        // gRPC: gatehouse's answer names every header to remove itself.
        let grpc = yaml(&print(Target::Envoy, "", Flags::default()));
        assert_eq!(filters(&grpc).len(), 2);
    }

    #[test]
    fn no_answer_gets_a_json_body_and_denials_keep_theirs() {
        for t in [Target::Envoy, Target::EnvoyHttp] {
            let doc = yaml(&print(t, "", Flags::default()));
            let mapper = at(
                &doc,
                "static_resources.listeners.0.filter_chains.0.filters.0.typed_config.local_reply_config.mappers.0",
            );
            assert_eq!(
                at(mapper, "filter.extension_filter.typed_config.expression"),
                "response.code_details == 'ext_authz_error'"
            );
            let body: serde_json::Value =
                serde_json::from_str(at(mapper, "body.inline_string").as_str().unwrap()).unwrap();
            assert_eq!(body["error"], "authorizer_unavailable");
            assert_eq!(
                at(mapper, "body_format_override.content_type"),
                "application/json"
            );
        }
    }

    #[test]
    fn the_header_names_the_command_and_the_wiring() {
        let flags = Flags {
            config: Some("gh.yaml".into()),
            upstream: Some("http://127.0.0.1:8081".into()),
            ..Flags::default()
        };
        let w = wiring(Target::EnvoyHttp, &config(BASE), &flags).unwrap();
        let text = render_http(&w);
        assert!(text.contains(
            "# Generated by: gatehouse proxy-config envoy-http --config gh.yaml --upstream http://127.0.0.1:8081\n"
        ));
        assert!(text.contains("x-user-id and x-user-role"));
    }

    /// `deploy/envoy/envoy.yaml` and `envoy-http.yaml` are this module's
    /// output for the Kubernetes example configuration.
    #[test]
    fn deploy_files_are_the_printed_configurations() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let cfg_path = "deploy/kubernetes/base/gatehouse.yaml";
        let cfg = config(&std::fs::read_to_string(root.join(cfg_path)).unwrap());
        for (target, file) in [
            (Target::Envoy, "envoy.yaml"),
            (Target::EnvoyHttp, "envoy-http.yaml"),
        ] {
            let flags = Flags {
                config: Some(cfg_path.into()),
                authz_url: None,
                upstream: Some("http://127.0.0.1:8081".into()),
                listen: Some("127.0.0.1:10000".into()),
            };
            let printed = super::super::render(target, &cfg, &flags).unwrap();
            let shipped = std::fs::read_to_string(root.join("deploy/envoy").join(file)).unwrap();
            assert!(
                printed == shipped,
                "deploy/envoy/{file} is not what `gatehouse proxy-config {target} --config \
                 {cfg_path} --upstream http://127.0.0.1:8081 --listen 127.0.0.1:10000` prints: \
                 regenerate it"
            );
        }
    }
}
