//! `gatehouse proxy-config`: the proxy configuration that wires one
//! gatehouse configuration, printed rather than assembled by hand
//! (docs/proxies.md).
//!
//! Every target gets the same four things from one [`Wiring`]:
//! - the auth call to gatehouse (HTTP `/auth`, or gRPC `Check` for Envoy);
//! - the request description (method, URI, host) always set by the proxy
//!   and never passed on from the client, in the header family the
//!   gatehouse configuration expects;
//! - every configured identity header copied from the answer, with the
//!   client's own copy removed or replaced, on every route;
//! - the deny mapping, so 400/503 reach the client with their status and
//!   JSON body (nginx turns them into 500 unless told otherwise).
//!
//! This module only writes text. It reads the compiled [`Config`] and
//! never starts a server; the e2e tests run its output in front of real
//! proxies, and `deploy/` holds its output for the shipped configurations.

mod caddy;
mod envoy;
mod nginx;
mod traefik;

use std::fmt;

use http::HeaderName;

use crate::config::{Config, RequestHeaders, TokenSource};

/// The proxies gatehouse prints configurations for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Nginx,
    Caddy,
    Traefik,
    /// Envoy's `ext_authz` over gRPC.
    Envoy,
    /// Envoy's `ext_authz` over HTTP (`http_service`).
    EnvoyHttp,
}

impl Target {
    pub(crate) const ALL: [Target; 5] = [
        Target::Nginx,
        Target::Caddy,
        Target::Traefik,
        Target::Envoy,
        Target::EnvoyHttp,
    ];

    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Target::Nginx => "nginx",
            Target::Caddy => "caddy",
            Target::Traefik => "traefik",
            Target::Envoy => "envoy",
            Target::EnvoyHttp => "envoy-http",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Target, ProxyConfigError> {
        Target::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| ProxyConfigError::UnknownTarget(s.to_owned()))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why no configuration could be printed (the CLI exits 64).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProxyConfigError {
    #[error("unknown target {0:?}: choose nginx, caddy, traefik, envoy or envoy-http")]
    UnknownTarget(String),
    #[error("{flag}: {message}")]
    BadFlag { flag: &'static str, message: String },
    /// The gatehouse configuration asks for something this proxy cannot do.
    #[error("{0}")]
    Unsupported(String),
}

/// The command-line flags, as given.
#[derive(Debug, Clone, Default)]
pub(crate) struct Flags {
    /// `--config FILE`, echoed in the header of the output.
    pub config: Option<String>,
    /// `--authz-url`: where the proxy reaches gatehouse.
    pub authz_url: Option<String>,
    /// `--upstream`: the protected application.
    pub upstream: Option<String>,
    /// `--listen`: the proxy's own address.
    pub listen: Option<String>,
}

/// Where the protected application listens when `--upstream` is not given.
pub(crate) const DEFAULT_UPSTREAM: &str = "http://127.0.0.1:3000";
/// Where the proxy listens when `--listen` is not given.
pub(crate) const DEFAULT_LISTEN: &str = "0.0.0.0:8000";

/// A host and port, with the scheme used to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub tls: bool,
    /// A DNS name, an IPv4 address, or an IPv6 address in brackets.
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// `host:port`.
    pub(crate) fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// `http://host:port` or `https://host:port`.
    pub(crate) fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.authority())
    }

    /// The host without IPv6 brackets (for socket addresses in YAML).
    pub(crate) fn bare_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }

    /// True when the host is an IP address, not a name to resolve.
    pub(crate) fn is_ip(&self) -> bool {
        self.bare_host().parse::<std::net::IpAddr>().is_ok()
    }
}

/// One identity header, as the proxies name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdentityHeader {
    /// Lower case, as gatehouse answers it (`x-user-id`).
    pub name: HeaderName,
    /// Conventional capitalisation (`X-User-Id`), for proxies whose
    /// configurations are read by people.
    pub display: String,
}

/// Everything a target needs, resolved once from the configuration and
/// the flags.
#[derive(Debug, Clone)]
pub(crate) struct Wiring {
    /// The command line that prints this configuration again.
    pub command: String,
    /// gatehouse's HTTP listener (`/auth`), or its gRPC listener for
    /// [`Target::Envoy`].
    pub authz: Endpoint,
    pub upstream: Endpoint,
    pub listen: Endpoint,
    /// The family the proxy sets (never `Auto` here).
    pub family: RequestHeaders,
    /// Every configured identity header, sorted by name.
    pub identity_headers: Vec<IdentityHeader>,
    /// Request headers gatehouse reads a credential or a CORS preflight
    /// from, for proxies that pass an explicit allow-list to `/auth`
    /// (display case: `Authorization`, `Cookie`, …).
    pub credential_headers: Vec<String>,
}

impl Wiring {
    /// `(method header, URI header)` of [`Wiring::family`], display case.
    pub(crate) fn family_headers(&self) -> (&'static str, &'static str) {
        match self.family {
            RequestHeaders::Original => ("X-Original-Method", "X-Original-URI"),
            _ => ("X-Forwarded-Method", "X-Forwarded-Uri"),
        }
    }

    /// The request-description headers of the other family: a client's
    /// copy of any of them must never reach `/auth`.
    pub(crate) fn other_family_headers(&self) -> (&'static str, &'static str) {
        match self.family {
            RequestHeaders::Original => ("X-Forwarded-Method", "X-Forwarded-Uri"),
            _ => ("X-Original-Method", "X-Original-URI"),
        }
    }
}

/// Prints the configuration of `target` for `config`.
pub(crate) fn render(
    target: Target,
    config: &Config,
    flags: &Flags,
) -> Result<String, ProxyConfigError> {
    let wiring = wiring(target, config, flags)?;
    Ok(match target {
        Target::Nginx => nginx::render(&wiring),
        Target::Caddy => caddy::render(&wiring),
        Target::Traefik => traefik::render(&wiring),
        Target::Envoy => envoy::render_grpc(&wiring),
        Target::EnvoyHttp => envoy::render_http(&wiring),
    })
}

/// Resolves flags and configuration into a [`Wiring`].
pub(crate) fn wiring(
    target: Target,
    config: &Config,
    flags: &Flags,
) -> Result<Wiring, ProxyConfigError> {
    let authz = match &flags.authz_url {
        Some(url) => parse_endpoint(url, "--authz-url", target != Target::Envoy)?,
        None => {
            let addr = if target == Target::Envoy {
                config.grpc_addr
            } else {
                config.http_addr
            };
            Endpoint {
                tls: config.tls.is_some(),
                host: loopback_for(addr.ip()),
                port: addr.port(),
            }
        }
    };
    let upstream = parse_endpoint(
        flags.upstream.as_deref().unwrap_or(DEFAULT_UPSTREAM),
        "--upstream",
        true,
    )?;
    let listen = parse_listen(flags.listen.as_deref().unwrap_or(DEFAULT_LISTEN))?;
    let family = match (target, config.request_headers) {
        (Target::Traefik, RequestHeaders::Original) => {
            return Err(ProxyConfigError::Unsupported(
                "http.request_headers is `original`, but Traefik describes the request with \
                 X-Forwarded-Method and X-Forwarded-Uri only: set http.request_headers to \
                 `forwarded` or `auto`"
                    .to_owned(),
            ));
        }
        (Target::Nginx, RequestHeaders::Auto) => RequestHeaders::Original,
        (_, RequestHeaders::Auto) => RequestHeaders::Forwarded,
        (_, pinned) => pinned,
    };
    let identity_headers = config
        .identity_headers
        .names()
        .map(|name| IdentityHeader {
            display: display_case(name.as_str()),
            name: name.clone(),
        })
        .collect();
    let mut credential_headers: Vec<String> = Vec::new();
    let mut push = |h: String| {
        if !credential_headers
            .iter()
            .any(|c| c.eq_ignore_ascii_case(&h))
        {
            credential_headers.push(h);
        }
    };
    for source in &config.token_sources {
        match source {
            TokenSource::Bearer => push("Authorization".to_owned()),
            TokenSource::Header(name) => push(display_case(name)),
            TokenSource::Cookie(_) => push("Cookie".to_owned()),
            TokenSource::Query(_) => {}
        }
    }
    if config.allow_cors_preflight {
        push("Access-Control-Request-Method".to_owned());
    }
    Ok(Wiring {
        command: command_line(target, flags),
        authz,
        upstream,
        listen,
        family,
        identity_headers,
        credential_headers,
    })
}

/// `gatehouse proxy-config TARGET` with the flags that were given.
fn command_line(target: Target, flags: &Flags) -> String {
    let mut cmd = format!("gatehouse proxy-config {target}");
    for (flag, value) in [
        ("--config", &flags.config),
        ("--authz-url", &flags.authz_url),
        ("--upstream", &flags.upstream),
        ("--listen", &flags.listen),
    ] {
        if let Some(v) = value {
            cmd.push_str(&format!(" {flag} {v}"));
        }
    }
    cmd
}

/// A listener address read as the address to connect to: the unspecified
/// address becomes loopback.
fn loopback_for(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// `http://host:port`, `https://host:port` or, where `bare_ok`, `host:port`.
fn parse_endpoint(
    text: &str,
    flag: &'static str,
    scheme_needed: bool,
) -> Result<Endpoint, ProxyConfigError> {
    let bad = |message: String| ProxyConfigError::BadFlag { flag, message };
    let (tls, rest) = if let Some(r) = text.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = text.strip_prefix("http://") {
        (false, r)
    } else if scheme_needed {
        return Err(bad(format!(
            "{text:?} is not a URL: write http://HOST:PORT or https://HOST:PORT"
        )));
    } else {
        (false, text)
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') || rest.contains('?') || rest.contains('#') {
        return Err(bad(format!(
            "{text:?} has a path: give only the scheme, host and port"
        )));
    }
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = split_host_port(rest).map_err(bad)?;
    let port = match port {
        Some(p) => p,
        None if scheme_needed || text.contains("://") => default_port,
        None => return Err(bad(format!("{text:?} has no port: write HOST:PORT"))),
    };
    Ok(Endpoint { tls, host, port })
}

/// `--listen`: an IP address and a port.
fn parse_listen(text: &str) -> Result<Endpoint, ProxyConfigError> {
    let addr: std::net::SocketAddr = text.parse().map_err(|_| ProxyConfigError::BadFlag {
        flag: "--listen",
        message: format!("{text:?} is not an address: write IP:PORT, e.g. 0.0.0.0:8000"),
    })?;
    let host = match addr.ip() {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
    };
    Ok(Endpoint {
        tls: false,
        host,
        port: addr.port(),
    })
}

fn split_host_port(text: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{text:?}: an IPv6 address needs its closing bracket"))?;
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{v6:?} is not an IPv6 address"));
        }
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(format!("{text:?} is not HOST:PORT")),
        };
        (format!("[{v6}]"), port)
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (text.to_owned(), None),
        }
    };
    let valid_host = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
    if !valid_host {
        return Err(format!("{host:?} is not a host name or address"));
    }
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{p:?} is not a port"))?,
        ),
        None => None,
    };
    Ok((host, port))
}

/// `x-user-id` → `X-User-Id`.
pub(crate) fn display_case(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        let raw = crate::config::load::parse_yaml(yaml).unwrap();
        Config::compile(raw, &crate::config::Env::default()).unwrap()
    }

    const BASE: &str = "providers:\n  - name: p\n    issuer: https://i.example\n    jwks_uri: https://i.example/jwks\n";

    #[test]
    fn targets_parse_and_unknown_ones_name_the_choices() {
        for t in Target::ALL {
            assert_eq!(Target::parse(t.as_str()).unwrap(), t);
        }
        let err = Target::parse("haproxy").unwrap_err().to_string();
        assert!(
            err.contains("nginx, caddy, traefik, envoy or envoy-http"),
            "{err}"
        );
    }

    #[test]
    fn endpoints_default_to_the_listeners_read_as_loopback() {
        let cfg = config(BASE);
        let w = wiring(Target::Nginx, &cfg, &Flags::default()).unwrap();
        assert_eq!(w.authz.url(), "http://127.0.0.1:8080");
        assert_eq!(w.upstream.url(), "http://127.0.0.1:3000");
        assert_eq!(w.listen.authority(), "0.0.0.0:8000");
        let w = wiring(Target::Envoy, &cfg, &Flags::default()).unwrap();
        assert_eq!(w.authz.authority(), "127.0.0.1:9001");
    }

    #[test]
    fn flags_are_checked_and_name_themselves() {
        let cfg = config(BASE);
        let try_flags = |f: Flags| wiring(Target::Nginx, &cfg, &f).map(|w| w.authz);
        let ok = try_flags(Flags {
            authz_url: Some("http://gatehouse.auth.svc.cluster.local:8080/".into()),
            ..Flags::default()
        })
        .unwrap();
        assert_eq!(ok.host, "gatehouse.auth.svc.cluster.local");
        for (flags, flag) in [
            (
                Flags {
                    authz_url: Some("http://127.0.0.1:8080/auth".into()),
                    ..Flags::default()
                },
                "--authz-url",
            ),
            (
                Flags {
                    upstream: Some("127.0.0.1:3000".into()),
                    ..Flags::default()
                },
                "--upstream",
            ),
            (
                Flags {
                    listen: Some("localhost:80".into()),
                    ..Flags::default()
                },
                "--listen",
            ),
            (
                Flags {
                    upstream: Some("http://127.0.0.1:99999".into()),
                    ..Flags::default()
                },
                "--upstream",
            ),
        ] {
            let err = try_flags(flags).unwrap_err().to_string();
            assert!(err.starts_with(flag), "{err}");
        }
    }

    #[test]
    fn the_family_follows_the_config_and_the_proxy() {
        let auto = config(BASE);
        let fam = |t, c: &Config| wiring(t, c, &Flags::default()).map(|w| w.family);
        assert_eq!(fam(Target::Nginx, &auto).unwrap(), RequestHeaders::Original);
        for t in [Target::Caddy, Target::Traefik, Target::EnvoyHttp] {
            assert_eq!(fam(t, &auto).unwrap(), RequestHeaders::Forwarded);
        }
        let fwd = config(&format!("{BASE}http: {{ request_headers: forwarded }}\n"));
        assert_eq!(fam(Target::Nginx, &fwd).unwrap(), RequestHeaders::Forwarded);
        let orig = config(&format!("{BASE}http: {{ request_headers: original }}\n"));
        assert_eq!(fam(Target::Caddy, &orig).unwrap(), RequestHeaders::Original);
        assert!(matches!(
            fam(Target::Traefik, &orig),
            Err(ProxyConfigError::Unsupported(_))
        ));
    }

    #[test]
    fn credential_headers_follow_the_token_sources() {
        let cfg = config(&format!(
            "{BASE}token_sources:\n  - header: authorization\n  - header: x-api-token\n  \
             - cookie: a\n  - cookie: b\n  - query: t\n"
        ));
        let w = wiring(Target::Traefik, &cfg, &Flags::default()).unwrap();
        assert_eq!(
            w.credential_headers,
            [
                "Authorization",
                "X-Api-Token",
                "Cookie",
                "Access-Control-Request-Method"
            ]
        );
    }

    #[test]
    fn every_target_names_every_identity_header_and_the_command() {
        let cfg = config(&format!(
            "{BASE}identity_headers:\n  x-user-id: sub\n  x-user-role: role\n  x-tenant: org.id\n"
        ));
        let flags = Flags {
            config: Some("gh.yaml".into()),
            ..Flags::default()
        };
        for t in Target::ALL {
            let out = render(t, &cfg, &flags).unwrap();
            assert!(
                out.contains(&format!("gatehouse proxy-config {t} --config gh.yaml")),
                "{t}: no command line"
            );
            if t == Target::Envoy {
                continue; // gRPC: the answer itself sets and removes them
            }
            for h in ["x-user-id", "x-user-role", "x-tenant"] {
                assert!(
                    out.to_ascii_lowercase().contains(h),
                    "{t} does not mention {h}"
                );
            }
        }
    }

    #[test]
    fn display_case_capitalises_each_part() {
        assert_eq!(display_case("x-user-id"), "X-User-Id");
        assert_eq!(display_case("authorization"), "Authorization");
    }
}
