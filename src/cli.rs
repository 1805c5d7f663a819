//! The command line: `serve`, `check-config`, `verify`, `demo`,
//! `proxy-config`, `doctor`, `revoke` (README.md, "Command line";
//! docs/configuration.md).
//!
//! Parses arguments with clap, loads the config through
//! [`Config::load`], and maps every outcome to an exit code: 0 success
//! (and `--help`/`--version`), 1 a `verify` deny or a runtime failure, 64
//! (`EX_USAGE`) a config or usage error. Config errors are printed as
//! `gatehouse: config error: <key>: <message>` on stderr.
//!
//! This module does not decide anything itself: `verify` asks the real
//! [`Authorizer`], `serve` hands over to [`crate::server::serve`].

use std::ffi::OsString;
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value, json};

use crate::config::load::{ENV_GRPC_ADDR, ENV_HTTP_ADDR};
use crate::config::{Config, ConfigError, Env, KeySource, LoadOptions};
use crate::decision::{Allow, Authorizer, CheckInput, Decision, Door};
use crate::error::{AuthError, MalformedKind};
use crate::server::{Reloader, ServeError, ServeOptions};
use crate::telemetry::{Metrics, init_logging};
use crate::verify::{Expectation, Verifier};

/// Exit code for config and usage errors (`EX_USAGE`).
pub(crate) const EXIT_USAGE: u8 = 64;
/// Exit code for a `verify` deny and for runtime failures.
pub(crate) const EXIT_FAILURE: u8 = 1;

/// How long `verify` waits for keys before deciding anyway.
const VERIFY_KEY_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "External authorization for Envoy (ext_authz) and nginx (auth_request)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gRPC and HTTP listeners until SIGTERM/SIGINT.
    Serve(ConfigArgs),
    /// Validate and print the effective config (secrets redacted).
    CheckConfig(ConfigArgs),
    /// Decide once for TOKEN and print the decision as JSON (exit 0 allow, 1 deny).
    Verify(VerifyArgs),
    /// Run with a built-in issuer; prints sample tokens and commands.
    Demo(DemoArgs),
    /// Print the proxy configuration that wires this gatehouse config.
    ProxyConfig(ProxyConfigArgs),
    /// Probe a running proxy in front of gatehouse for wiring mistakes
    /// (exit 0 when every check passes, 1 otherwise).
    Doctor(DoctorArgs),
    /// Revoke a subject, token, or session on every replica (Redis), or list revocations.
    Revoke(crate::admin::command::RevokeArgs),
}

#[derive(Debug, Args)]
struct DoctorArgs {
    /// The proxy, as clients reach it: http://HOST[:PORT].
    #[arg(value_name = "URL")]
    url: String,
    /// A path that needs a credential (path and optional query).
    #[arg(long, value_name = "PATH")]
    protected: String,
    /// A path anyone may reach; the spoof checks point at it.
    #[arg(long, value_name = "PATH")]
    public: Option<String>,
    /// A valid credential for the protected path (a bearer token).
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
    /// gatehouse's config file, for its identity header names; default
    /// $GATEHOUSE_CONFIG, else gatehouse's defaults.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// text or json.
    #[arg(long, value_enum, default_value = "text")]
    format: crate::doctor::Format,
    /// The upstream echoes the headers it receives as JSON: check that no
    /// client-sent identity header reaches it.
    #[arg(long)]
    echo_upstream: bool,
    /// gatehouse's HTTP listener (http://HOST:PORT), to read the decision
    /// trail (`http.decision_trail: true`) and compare what it was asked.
    #[arg(long, value_name = "URL")]
    gatehouse: Option<String>,
    /// The proxy in front (nginx, caddy, traefik, envoy, envoy-http), for
    /// the fixes; guessed from its answers when not given.
    #[arg(long, value_name = "PROXY")]
    proxy: Option<String>,
}

#[derive(Debug, Args)]
struct ProxyConfigArgs {
    /// nginx, caddy, traefik, envoy (gRPC ext_authz) or envoy-http (HTTP ext_authz).
    #[arg(value_name = "TARGET")]
    target: String,
    /// Config file (YAML); default $GATEHOUSE_CONFIG, else none.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the proxy reaches gatehouse: http://HOST:PORT of the HTTP
    /// listener, or HOST:PORT of the gRPC listener for `envoy` (default: the
    /// configured listener, 0.0.0.0 read as 127.0.0.1).
    #[arg(long, value_name = "URL")]
    authz_url: Option<String>,
    /// The protected application.
    #[arg(long, value_name = "URL", default_value = crate::proxy_config::DEFAULT_UPSTREAM)]
    upstream: String,
    /// The proxy's own listening address.
    #[arg(long, value_name = "ADDR", default_value = crate::proxy_config::DEFAULT_LISTEN)]
    listen: String,
}

#[derive(Debug, Args)]
struct ConfigArgs {
    /// Config file (YAML); default $GATEHOUSE_CONFIG, else none.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// gRPC listener address (overrides $GATEHOUSE_GRPC_ADDR and the file).
    #[arg(long, value_name = "ADDR")]
    grpc_addr: Option<String>,
    /// HTTP listener address (overrides $GATEHOUSE_HTTP_ADDR and the file).
    #[arg(long, value_name = "ADDR")]
    http_addr: Option<String>,
}

impl ConfigArgs {
    fn load_options(&self, env: Env) -> LoadOptions {
        LoadOptions {
            config_path: self.config.clone(),
            grpc_addr: self.grpc_addr.clone(),
            http_addr: self.http_addr.clone(),
            env,
        }
    }
}

#[derive(Debug, Args)]
struct VerifyArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Request path the decision is for.
    #[arg(long, default_value = "/")]
    path: String,
    /// Request method the decision is for.
    #[arg(long, default_value = "GET")]
    method: String,
    /// The token, or `-` to read it from stdin.
    #[arg(value_name = "TOKEN|-")]
    token: String,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// HTTP listener (default 127.0.0.1:8080, or a free port when taken).
    #[arg(long, value_name = "ADDR")]
    http_addr: Option<String>,
    /// gRPC listener (default 127.0.0.1:9001, or a free port when taken).
    #[arg(long, value_name = "ADDR")]
    grpc_addr: Option<String>,
    /// Decide the demo requests in-process, print them and exit (no server).
    #[arg(long)]
    once: bool,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    run(std::env::args_os(), Env::from_process())
}

/// Runs the command line `args` (program name first) against `env`.
pub(crate) fn run(args: impl IntoIterator<Item = OsString>, env: Env) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            let _ = e.print();
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::from(EXIT_USAGE),
            };
        }
    };
    match cli.command {
        Command::Serve(args) => serve(args.load_options(env)),
        Command::CheckConfig(args) => check_config(&args.load_options(env)),
        Command::Verify(args) => verify(args, env),
        Command::Demo(args) => demo(args, &env),
        Command::ProxyConfig(args) => proxy_config(args, env),
        Command::Doctor(args) => doctor(args, &env),
        Command::Revoke(args) => crate::admin::command::run(args, env),
    }
}

fn usage(message: &str) -> ExitCode {
    eprintln!("gatehouse: doctor: {message}");
    ExitCode::from(EXIT_USAGE)
}

fn doctor(args: DoctorArgs, env: &Env) -> ExitCode {
    use crate::doctor::{Options, Origin, run};
    let origin = match Origin::parse(&args.url) {
        Ok(o) => o,
        Err(e) => return usage(&e.to_string()),
    };
    let gatehouse = match args.gatehouse.as_deref().map(Origin::parse).transpose() {
        Ok(g) => g,
        Err(e) => return usage(&format!("--gatehouse: {e}")),
    };
    let proxy = match args
        .proxy
        .as_deref()
        .map(crate::proxy_config::Target::parse)
        .transpose()
    {
        Ok(p) => p,
        Err(e) => return usage(&format!("--proxy: {e}")),
    };
    for (flag, path) in [
        ("--protected", Some(&args.protected)),
        ("--public", args.public.as_ref()),
    ] {
        if let Some(path) = path
            && (!path.starts_with('/') || path.bytes().any(|b| !b.is_ascii_graphic()))
        {
            return usage(&format!(
                "{flag} {path:?}: a path starts with / and has no spaces"
            ));
        }
    }
    let token = args.token.map(|t| {
        let t = t.trim();
        t.strip_prefix("Bearer ").unwrap_or(t).trim().to_owned()
    });
    if token
        .as_deref()
        .is_some_and(|t| t.is_empty() || t.bytes().any(|b| !b.is_ascii_graphic()))
    {
        return usage("--token: a bearer token is visible ASCII without spaces");
    }
    let config_path = args
        .config
        .or_else(|| env.get(crate::config::load::ENV_CONFIG).map(PathBuf::from));
    let raw = match config_path {
        Some(path) => {
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    return config_error(&ConfigError::new(
                        "config",
                        format!("cannot read {}: {e}", path.display()),
                    ));
                }
            };
            match crate::config::load::parse_yaml(&text) {
                Ok(raw) => Some(raw),
                Err(e) => return config_error(&e),
            }
        }
        None => None,
    };
    let opts = Options {
        origin,
        protected: args.protected,
        public: args.public,
        token,
        identity_headers: Options::identity_headers_of(raw.as_ref()),
        echo_upstream: args.echo_upstream,
        gatehouse,
        proxy,
    };
    let report = run(&opts);
    let written = write_stdout(&report.render(args.format));
    if written != ExitCode::SUCCESS {
        return written;
    }
    ExitCode::from(report.exit_code())
}

fn config_error(e: &ConfigError) -> ExitCode {
    eprintln!("gatehouse: config error: {e}");
    ExitCode::from(EXIT_USAGE)
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("gatehouse: cannot start the async runtime: {e}");
            ExitCode::from(EXIT_FAILURE)
        })
}

fn serve_error(e: &ServeError) -> ExitCode {
    match e {
        ServeError::Config(c) => config_error(c),
        other => {
            eprintln!("gatehouse: {other}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn serve(opts: LoadOptions) -> ExitCode {
    let config = match Config::load(&opts) {
        Ok(c) => c,
        Err(e) => return config_error(&e),
    };
    init_logging(&config.log_filter, config.log_format);
    let reload: Reloader = Arc::new(move || Config::load(&opts));
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = rt.block_on(crate::server::serve(ServeOptions {
        config,
        reload: Some(reload),
        demo_jwks: None,
    }));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => serve_error(&e),
    }
}

fn check_config(opts: &LoadOptions) -> ExitCode {
    let config = match Config::load(opts) {
        Ok(c) => c,
        Err(e) => return config_error(&e),
    };
    write_stdout(&render_check_config(&config))
}

/// What `check-config` prints: the effective config as YAML (secrets are
/// never part of it; `secret_env` and `url_env` show only variable names),
/// followed by notes as YAML comments.
pub fn render_check_config(config: &Config) -> String {
    let mut out = String::from("# gatehouse effective configuration (secrets redacted)\n");
    out.push_str(&config.to_yaml());
    for p in config.issuerless_providers() {
        let note = match p.keys {
            KeySource::Discovery(_) => format!(
                "# note: provider {:?} takes its issuer from the discovery document\n",
                p.name
            ),
            KeySource::Secret(_) | KeySource::File(_) | KeySource::JwksUri(_) => format!(
                "# note: provider {:?} has no issuer: accepts tokens without a matching iss: {} provider\n",
                p.name,
                if matches!(p.keys, KeySource::Secret(_)) {
                    "secret"
                } else {
                    "file"
                }
            ),
        };
        out.push_str(&note);
    }
    out
}

/// Writes the command's result; a closed stdout is a failure, not a panic.
fn write_stdout(text: &str) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(EXIT_FAILURE),
    }
}

pub(crate) fn read_token(arg: &str) -> Result<String, String> {
    if arg != "-" {
        return Ok(arg.trim().to_owned());
    }
    let mut buf = String::new();
    std::io::stdin()
        .read_to_string(&mut buf)
        .map_err(|e| format!("cannot read the token from stdin: {e}"))?;
    let token = buf.trim().to_owned();
    if token.is_empty() {
        return Err("no token on stdin".to_owned());
    }
    Ok(token)
}

fn verify(args: VerifyArgs, env: Env) -> ExitCode {
    let opts = args.config.load_options(env);
    let config = match Config::load(&opts) {
        Ok(c) => c,
        Err(e) => return config_error(&e),
    };
    // Logs go to stderr; quiet unless asked, so stdout is just the JSON.
    let filter = if opts.env.get(crate::config::load::ENV_LOG).is_some() {
        config.log_filter.clone()
    } else {
        "warn".to_owned()
    };
    init_logging(&filter, config.log_format);
    let token = match read_token(&args.token) {
        Ok(t) => t,
        Err(m) => {
            eprintln!("gatehouse: {m}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let authz = match Authorizer::new(Arc::new(config), Arc::new(Metrics::new())) {
        Ok(a) => a,
        Err(e) => return config_error(&e),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let (decision, ready) = rt.block_on(async {
        authz.start();
        let ready = authz.verifier().wait_ready(VERIFY_KEY_WAIT).await;
        let decision = match bearer_headers(&token) {
            Some(headers) => {
                authz
                    .check(&CheckInput {
                        door: Door::Cli,
                        method: args.method.clone(),
                        path: args.path.clone(),
                        host: None,
                        headers,
                        request_id: None,
                        client_ip: None,
                    })
                    .await
            }
            None => Decision::Deny(AuthError::Malformed(MalformedKind::BadCharacters)),
        };
        authz.stop();
        (decision, ready)
    });
    if !ready {
        eprintln!(
            "gatehouse: warning: keys were not loaded for every provider within {}s",
            VERIFY_KEY_WAIT.as_secs()
        );
    }
    let written = write_stdout(&format!(
        "{}\n",
        verify_json(&decision, &token, authz.verifier())
    ));
    if written != ExitCode::SUCCESS || !decision.is_allow() {
        return ExitCode::from(EXIT_FAILURE);
    }
    ExitCode::SUCCESS
}

fn bearer_headers(token: &str) -> Option<http::HeaderMap> {
    let value = http::HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, value);
    Some(headers)
}

/// The `verify` output: one JSON object.
pub(crate) fn decision_json(decision: &Decision) -> Value {
    match decision {
        Decision::Allow(allow) => {
            let mut headers = Map::new();
            for (name, value) in &allow.headers.set {
                headers.insert(
                    name.as_str().to_owned(),
                    Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned()),
                );
            }
            let (reason, provider, claims) = match &allow.identity {
                Some(id) => (
                    "authenticated",
                    Value::String(id.provider.to_string()),
                    Value::Object((*id.claims).clone()),
                ),
                None => ("anonymous", Value::Null, Value::Object(Map::new())),
            };
            json!({
                "decision": "allow",
                "status": 200,
                "error": null,
                "reason": reason,
                "provider": provider,
                "claims": claims,
                "headers": headers,
            })
        }
        Decision::Deny(e) => {
            let provider = match e {
                AuthError::JwksUnavailable(p) => Value::String(p.clone()),
                _ => Value::Null,
            };
            json!({
                "decision": "deny",
                "status": e.http_status(),
                "error": e.code().as_str(),
                "reason": e.reason(),
                "provider": provider,
                "claims": {},
                "headers": {},
            })
        }
    }
}

/// The full `verify` output: [`decision_json`] followed by what explains
/// it — `token` (the token's `iss`, `aud`, `kid` and `alg`, read without
/// verifying), `expected` (what the provider the token goes to expects) and,
/// when no provider takes the token, `providers` (what every provider
/// expects). Neither the token, its signature nor any key material or
/// secret is printed.
pub(crate) fn verify_json(decision: &Decision, token: &str, verifier: &Verifier) -> Value {
    let mut out = decision_json(decision);
    let facts = token_facts(token);
    let verified_by = match decision {
        Decision::Allow(Allow {
            identity: Some(id), ..
        }) => verifier
            .expectations()
            .into_iter()
            .find(|e| e.provider == *id.provider),
        _ => None,
    };
    let expected = verified_by.or_else(|| {
        verifier
            .expectations_for(
                facts.get("iss").and_then(Value::as_str),
                facts.get("alg").and_then(Value::as_str),
            )
            .into_iter()
            .next()
    });
    if let Value::Object(map) = &mut out {
        map.insert("token".to_owned(), facts);
        match &expected {
            Some(e) => {
                map.insert("expected".to_owned(), expectation_json(e));
            }
            None => {
                map.insert("expected".to_owned(), Value::Null);
                let all = verifier
                    .expectations()
                    .iter()
                    .map(expectation_json)
                    .collect();
                map.insert("providers".to_owned(), Value::Array(all));
            }
        }
    }
    out
}

fn expectation_json(e: &Expectation) -> Value {
    json!({
        "provider": e.provider,
        "issuer": e.issuer,
        "audiences": e.audiences,
        "algorithms": e.algorithms.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "kids": e.kids,
        "keys_loaded": e.keys_loaded,
    })
}

/// The token's `iss`, `aud` (a string or a list of strings), `kid` and
/// `alg`, decoded without verifying; each is null when absent, of another
/// type, or when the token is not a JWT at all. Nothing else of the token
/// (its other claims, its signature) is returned.
pub(crate) fn token_facts(token: &str) -> Value {
    fn part(p: Option<&str>) -> Map<String, Value> {
        use base64::Engine;
        p.and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p.trim_end_matches('='))
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default()
    }
    fn string(m: &Map<String, Value>, key: &str) -> Value {
        match m.get(key) {
            Some(Value::String(s)) => Value::String(s.clone()),
            _ => Value::Null,
        }
    }
    let mut parts = token.split('.');
    let header = part(parts.next());
    let payload = part(parts.next());
    let aud = match payload.get("aud") {
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(Value::Array(list)) if list.iter().all(Value::is_string) => Value::Array(list.clone()),
        _ => Value::Null,
    };
    json!({
        "iss": string(&payload, "iss"),
        "aud": aud,
        "kid": string(&header, "kid"),
        "alg": string(&header, "alg"),
    })
}

fn proxy_config(args: ProxyConfigArgs, env: Env) -> ExitCode {
    use crate::proxy_config::{DEFAULT_LISTEN, DEFAULT_UPSTREAM, Flags, Target};
    let target = match Target::parse(&args.target) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("gatehouse: proxy-config: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let opts = LoadOptions {
        config_path: args.config.clone(),
        grpc_addr: None,
        http_addr: None,
        env,
    };
    let config = match Config::load(&opts) {
        Ok(c) => c,
        Err(e) => return config_error(&e),
    };
    // Flags left at their defaults are not repeated in the output's header.
    let flags = Flags {
        config: args.config.map(|p| p.display().to_string()),
        authz_url: args.authz_url,
        upstream: Some(args.upstream).filter(|u| u != DEFAULT_UPSTREAM),
        listen: Some(args.listen).filter(|l| l != DEFAULT_LISTEN),
    };
    match crate::proxy_config::render(target, &config, &flags) {
        Ok(text) => write_stdout(&text),
        Err(e) => {
            eprintln!("gatehouse: proxy-config {target}: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn demo(args: DemoArgs, env: &Env) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    if args.once {
        return match rt.block_on(crate::demo::run_once()) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => {
                eprintln!("gatehouse: some demo decisions differ from what was expected");
                ExitCode::from(EXIT_FAILURE)
            }
            Err(e) => demo_error(&e),
        };
    }
    // flag > env > default; errors name whichever supplied the value.
    let source = |flag: &Option<String>, flag_name: &'static str, var: &'static str| match flag {
        Some(v) => (Some(v.clone()), flag_name),
        None => (env.get(var).map(str::to_owned), var),
    };
    let (http_value, http_key) = source(&args.http_addr, "--http-addr", ENV_HTTP_ADDR);
    let (grpc_value, grpc_key) = source(&args.grpc_addr, "--grpc-addr", ENV_GRPC_ADDR);
    let picked =
        crate::demo::pick_addr(http_value.as_deref(), http_key, crate::demo::DEMO_HTTP_ADDR)
            .and_then(|h| {
                crate::demo::pick_addr(grpc_value.as_deref(), grpc_key, crate::demo::DEMO_GRPC_ADDR)
                    .map(|g| (h, g))
            });
    let ((http_addr, http_note), (grpc_addr, grpc_note)): (
        (SocketAddr, Option<String>),
        (SocketAddr, Option<String>),
    ) = match picked {
        Ok(p) => p,
        Err(e) => return config_error(&e),
    };
    for note in [http_note, grpc_note].into_iter().flatten() {
        println!("note: {note}");
    }
    let filter = env.get(crate::config::load::ENV_LOG).unwrap_or("info");
    init_logging(filter, crate::config::LogFormat::Text);
    match rt.block_on(crate::demo::run(http_addr, grpc_addr)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => demo_error(&e),
    }
}

fn demo_error(e: &crate::demo::DemoError) -> ExitCode {
    match e {
        crate::demo::DemoError::Config(c) => config_error(c),
        crate::demo::DemoError::Serve(s) => serve_error(s),
        other => {
            eprintln!("gatehouse: demo: {other}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cli_shape_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn token_facts_read_header_and_payload_only() {
        use base64::Engine;
        let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let token = format!(
            "{}.{}.c2lnbmF0dXJl",
            b64(json!({"alg": "ES256", "kid": "k1", "typ": "JWT"})),
            b64(json!({"iss": "https://i", "aud": ["a", "b"], "sub": "u", "email": "e"})),
        );
        assert_eq!(
            token_facts(&token),
            json!({"iss": "https://i", "aud": ["a", "b"], "kid": "k1", "alg": "ES256"})
        );
        let odd = format!(
            "{}.{}",
            b64(json!({"alg": 1, "kid": null})),
            b64(json!({"iss": 2, "aud": ["a", 3]}))
        );
        let nulls = json!({"iss": null, "aud": null, "kid": null, "alg": null});
        assert_eq!(token_facts(&odd), nulls);
        for garbage in ["", ".", "x", "%%%.%%%.%%%", "W10.W10.x"] {
            assert_eq!(token_facts(garbage), nulls, "{garbage}");
        }
    }

    #[test]
    fn deny_json_has_every_field() {
        let v = decision_json(&Decision::Deny(AuthError::Expired));
        assert_eq!(v["decision"], "deny");
        assert_eq!(v["status"], 401);
        assert_eq!(v["error"], "token_expired");
        assert_eq!(v["reason"], "expired");
        assert!(v["provider"].is_null());
        assert!(v["claims"].as_object().unwrap().is_empty());
    }
}
