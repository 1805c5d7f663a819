//! The fix for each finding, in the proxy's own terms: the missing
//! `proxy_set_header` line for nginx, the `header_up` for Caddy, the
//! `authRequestHeaders` / `authResponseHeaders` lists for Traefik, Envoy's
//! `headers_to_add` and `allowed_headers`, and always the command that
//! prints a configuration without the mistake.
//!
//! When doctor does not know the proxy, a fix names the line for each.

use crate::proxy_config::Target;

/// The request-description headers a client may try to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Described {
    OriginalMethod,
    OriginalUri,
    ForwardedMethod,
    ForwardedUri,
    ForwardedHost,
}

impl Described {
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Described::OriginalMethod => "X-Original-Method",
            Described::OriginalUri => "X-Original-URI",
            Described::ForwardedMethod => "X-Forwarded-Method",
            Described::ForwardedUri => "X-Forwarded-Uri",
            Described::ForwardedHost => "X-Forwarded-Host",
        }
    }

    const fn is_original(self) -> bool {
        matches!(self, Described::OriginalMethod | Described::OriginalUri)
    }

    /// nginx's variable for the value the proxy should send.
    const fn nginx_value(self) -> &'static str {
        match self {
            Described::OriginalMethod | Described::ForwardedMethod => "$request_method",
            Described::OriginalUri | Described::ForwardedUri => "$request_uri",
            Described::ForwardedHost => "$host",
        }
    }

    /// Envoy's command operator for the value.
    const fn envoy_value(self) -> &'static str {
        match self {
            Described::OriginalMethod | Described::ForwardedMethod => "%REQ(:METHOD)%",
            Described::OriginalUri | Described::ForwardedUri => "%REQ(:PATH)%",
            Described::ForwardedHost => "%REQ(:AUTHORITY)%",
        }
    }
}

/// "regenerate it with `gatehouse proxy-config nginx`".
pub(crate) fn regenerate(proxy: Option<Target>) -> String {
    match proxy {
        Some(t) => format!("or regenerate the configuration with `gatehouse proxy-config {t}`"),
        None => "or regenerate the configuration with `gatehouse proxy-config \
                 nginx|caddy|traefik|envoy|envoy-http`"
            .to_owned(),
    }
}

fn join(parts: &[String], proxy: Option<Target>) -> String {
    let mut out = parts.join("; ");
    out.push_str("; ");
    out.push_str(&regenerate(proxy));
    out
}

fn nginx_sets(h: Described) -> String {
    if h.is_original() {
        format!(
            "nginx: add `proxy_set_header {} {};` to the location that calls /auth",
            h.name(),
            h.nginx_value()
        )
    } else if h == Described::ForwardedHost {
        "nginx: add `proxy_set_header X-Forwarded-Host $host;` to the location that calls /auth"
            .to_owned()
    } else {
        format!(
            "nginx: add `proxy_set_header {} \"\";` to the location that calls /auth \
             (nginx describes the request with X-Original-*, so the client's {} must be blanked)",
            h.name(),
            h.name()
        )
    }
}

fn caddy_sets(h: Described) -> String {
    if h.is_original() {
        format!(
            "Caddy: add `header_up -{}` inside forward_auth (Caddy describes the request \
             with X-Forwarded-*, so the client's {} must be dropped)",
            h.name(),
            h.name()
        )
    } else {
        format!(
            "Caddy: forward_auth writes {} itself unless the client is a trusted proxy: \
             remove the client's network from `trusted_proxies`",
            h.name()
        )
    }
}

fn traefik_sets(h: Described) -> String {
    if h.is_original() {
        format!(
            "Traefik: take {} out of the forwardAuth middleware's `authRequestHeaders` \
             (list only Authorization, Cookie, Access-Control-Request-Method and X-Request-Id)",
            h.name()
        )
    } else {
        format!(
            "Traefik: set `trustForwardHeader: false` on the forwardAuth middleware and keep \
             the client's network out of `forwardedHeaders.trustedIPs`, so Traefik writes {} itself",
            h.name()
        )
    }
}

fn envoy_http_sets(h: Described) -> String {
    if h.is_original() {
        format!(
            "Envoy (HTTP ext_authz): keep {} out of `allowed_headers` and describe the \
             request with `headers_to_add` (X-Forwarded-Method, X-Forwarded-Uri, X-Forwarded-Host)",
            h.name()
        )
    } else {
        format!(
            "Envoy (HTTP ext_authz): add `- {{ key: {}, value: \"{}\" }}` to \
             authorization_request.headers_to_add, which replaces the client's copy",
            h.name(),
            h.envoy_value()
        )
    }
}

/// gatehouse judged description headers the client sent.
pub(crate) fn client_described(proxy: Option<Target>, headers: &[Described]) -> String {
    let mut parts: Vec<String> = Vec::new();
    for &h in headers {
        let these = match proxy {
            Some(Target::Nginx) => vec![nginx_sets(h)],
            Some(Target::Caddy) => vec![caddy_sets(h)],
            Some(Target::Traefik) => vec![traefik_sets(h)],
            Some(Target::EnvoyHttp) => vec![envoy_http_sets(h)],
            Some(Target::Envoy) => vec![
                "Envoy (gRPC ext_authz): gatehouse reads the method, path and host from \
                 Envoy's attributes, not from headers; check that the listener really uses \
                 the gRPC ext_authz filter"
                    .to_owned(),
            ],
            None => vec![
                nginx_sets(h),
                caddy_sets(h),
                traefik_sets(h),
                envoy_http_sets(h),
            ],
        };
        for part in these {
            if !parts.contains(&part) {
                parts.push(part);
            }
        }
    }
    join(&parts, proxy)
}

/// A client's copy of identity header `name` reached the upstream.
pub(crate) fn identity_header(proxy: Option<Target>, name: &str, appended: bool) -> String {
    let var = format!("$gatehouse_{}", name.replace('-', "_"));
    let upstream_var = format!("$upstream_http_{}", name.replace('-', "_"));
    let nginx = format!(
        "nginx: `auth_request_set {var} {upstream_var};` and `proxy_set_header {name} {var};` \
         in every proxied location (an empty value removes the client's copy)"
    );
    let caddy = format!(
        "Caddy: `request_header -{name}` before forward_auth (in one `route` block) and \
         `copy_headers {name}` inside it"
    );
    let traefik = format!(
        "Traefik: list {name} in the forwardAuth middleware's `authResponseHeaders`, so Traefik \
         deletes the client's copy and sets gatehouse's"
    );
    let envoy_http = if appended {
        format!(
            "Envoy (HTTP ext_authz): list {name} under `allowed_upstream_headers` (which replaces) \
             instead of `allowed_upstream_headers_to_append`, and remove the client's copy before \
             the check (header_mutation `remove: {name}`)"
        )
    } else {
        format!(
            "Envoy (HTTP ext_authz): list {name} under `allowed_upstream_headers`, and remove the \
             client's copy before the check (header_mutation `remove: {name}`)"
        )
    };
    let envoy = format!(
        "Envoy (gRPC ext_authz): gatehouse overwrites {name} and removes it when empty; a \
         filter or route after ext_authz (`request_headers_to_add` with APPEND) must not add it back"
    );
    let parts = match proxy {
        Some(Target::Nginx) => vec![nginx],
        Some(Target::Caddy) => vec![caddy],
        Some(Target::Traefik) => vec![traefik],
        Some(Target::EnvoyHttp) => vec![envoy_http],
        Some(Target::Envoy) => vec![envoy],
        None => vec![nginx, caddy, traefik, envoy_http],
    };
    join(&parts, proxy)
}

/// The proxy answered without asking gatehouse.
pub(crate) fn never_asked(proxy: Option<Target>) -> String {
    let nginx = "nginx: a `return` (or a `rewrite … last` to one) in the location runs before \
                 auth_request, so nginx answers without asking: proxy the path instead, or put \
                 what `return` answers in a location of its own with `auth_request off;` if it \
                 is meant to be public"
        .to_owned();
    let caddy = "Caddy: a `respond` or a handler ordered before forward_auth answers first: put \
                 forward_auth first in one `route` block"
        .to_owned();
    let traefik = "Traefik: the router that serves this path does not list the gatehouse \
                   middleware under `middlewares`"
        .to_owned();
    let envoy = "Envoy: the route disables ext_authz (`typed_per_filter_config` with \
                 `disabled: true`) or a `direct_response` answers before it"
        .to_owned();
    let parts = match proxy {
        Some(Target::Nginx) => vec![nginx],
        Some(Target::Caddy) => vec![caddy],
        Some(Target::Traefik) => vec![traefik],
        Some(Target::Envoy | Target::EnvoyHttp) => vec![envoy],
        None => vec![nginx, caddy, traefik, envoy],
    };
    join(&parts, proxy)
}

/// gatehouse refused, but the client got the proxy's own page instead.
pub(crate) fn lost_refusal(proxy: Option<Target>) -> String {
    let nginx = "nginx: auth_request turns any answer but 2xx/401/403 into its own 500; map \
                 them back with `error_page 401 = @gatehouse_401;`, `error_page 403 = \
                 @gatehouse_403;` and `error_page 500 = @gatehouse_failed;` and locations that \
                 rebuild gatehouse's JSON from `$upstream_http_x_gatehouse_error`"
        .to_owned();
    let envoy = "Envoy (HTTP ext_authz): list content-type, www-authenticate and \
                 x-gatehouse-error under `allowed_client_headers`"
        .to_owned();
    let other = "pass gatehouse's denial (status, JSON body, x-gatehouse-error) on to the client"
        .to_owned();
    let parts = match proxy {
        Some(Target::Nginx) => vec![nginx],
        Some(Target::EnvoyHttp) => vec![envoy],
        Some(_) => vec![other],
        None => vec![nginx, envoy],
    };
    join(&parts, proxy)
}

/// The protected path was served without a credential.
pub(crate) fn protected_served(proxy: Option<Target>) -> String {
    format!(
        "if gatehouse allowed it, its rules make the path public: give it a rule with \
         `access: authenticated` (or `default_access: authenticated`); if the proxy never \
         asked (run doctor with --gatehouse to tell), put the auth check on this route; {}",
        regenerate(proxy)
    )
}

/// The public path was not answered.
pub(crate) fn public_refused(by_gatehouse: bool) -> String {
    if by_gatehouse {
        "gatehouse's rules do not make this path public: add a rule `- match: { path_prefix: \
         <path> }` with `access: public`, or pass a path that is public with --public"
            .to_owned()
    } else {
        "the proxy did not pass it on: when gatehouse refuses how the proxy describes requests \
         (nginx then answers 500), the protected path fails the same way (see `protected` and the \
         trail checks); otherwise check that the application serves this path, or pass one that \
         is public with --public"
            .to_owned()
    }
}

/// A path trick reached the upstream as a protected path.
pub(crate) fn path_trick(proxy: Option<Target>) -> String {
    let nginx = "nginx: pass the path gatehouse judged to the application unchanged: \
                 `proxy_set_header X-Original-URI $request_uri;` for gatehouse and `proxy_pass` \
                 without a URI part (so nginx forwards the request line as received)"
        .to_owned();
    let envoy = "Envoy: `normalize_path: true`, `merge_slashes: true` and \
                 `path_with_escaped_slashes_action: REJECT_REQUEST` on the \
                 http_connection_manager, so the filter and the route see one path"
        .to_owned();
    let other =
        "make the proxy send gatehouse the same path it forwards to the application".to_owned();
    let parts = match proxy {
        Some(Target::Nginx) => vec![nginx],
        Some(Target::Envoy | Target::EnvoyHttp) => vec![envoy],
        Some(_) => vec![other],
        None => vec![nginx, envoy],
    };
    join(&parts, proxy)
}

/// Doctor's request ids do not reach gatehouse.
pub(crate) fn request_id(proxy: Option<Target>) -> String {
    let nginx = "nginx: `map $http_x_request_id $gatehouse_request_id { \"\" $request_id; \
                 default $http_x_request_id; }` and `proxy_set_header X-Request-Id \
                 $gatehouse_request_id;`"
        .to_owned();
    let traefik = "Traefik: list X-Request-Id in `authRequestHeaders`".to_owned();
    let envoy = "Envoy: `preserve_external_request_id: true` on the http_connection_manager \
                 (and, for HTTP ext_authz, x-request-id in `allowed_headers`)"
        .to_owned();
    let caddy = "Caddy: forward_auth passes the client's X-Request-Id unless a `header_up` \
                 replaces it"
        .to_owned();
    let parts = match proxy {
        Some(Target::Nginx) => vec![nginx],
        Some(Target::Traefik) => vec![traefik],
        Some(Target::Caddy) => vec![caddy],
        Some(Target::Envoy | Target::EnvoyHttp) => vec![envoy],
        None => vec![nginx, traefik, envoy],
    };
    join(&parts, proxy)
}
