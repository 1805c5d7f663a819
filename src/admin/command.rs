//! `gatehouse revoke`: records a revocation, or lists them
//! (docs/rate-limits-and-revocation.md).
//!
//! Two ways to the same stream, chosen by one flag:
//! - without `--admin`, it writes to Redis directly, with the same
//!   configuration as `serve` (`--config`, `REDIS_URL` or the variable
//!   `redis.url_env` names), so it works wherever the replicas' Redis can
//!   be reached, with no replica running; how long the entry is kept comes
//!   from that configuration;
//! - with `--admin URL`, it is a client of a running replica's admin API
//!   (`--admin-ca`, `--admin-cert`, `--admin-key` for TLS and mTLS), for
//!   hosts that can reach a replica but hold no Redis credentials. A
//!   session token is hashed here and only its SHA-256 is sent.
//!
//! Prints what was recorded as one JSON object (a list as one JSON object
//! per line, newest first) and exits 0; 1 when Redis or the admin API
//! cannot be reached or refuses, with a message naming it; 64 on a usage
//! or configuration error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgGroup, Args};

use super::pb;
use crate::cli::{EXIT_FAILURE, EXIT_USAGE};
use crate::config::{Config, Env, LoadOptions};
use crate::revocation::{self, Entry, Selector};
use crate::store::Store;
use crate::telemetry::Metrics;

/// How long the admin API may take to connect and answer.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("what")
        .required(true)
        .args(["sub", "jti", "sid", "session", "list"])
))]
pub(crate) struct RevokeArgs {
    /// Revoke every token and session of this subject (`sub`).
    #[arg(long, value_name = "SUBJECT")]
    sub: Option<String>,
    /// With --sub: only the credentials issued before TIME (RFC 3339 or
    /// Unix seconds): tokens by `iat`, sessions by creation; without
    /// either, a credential counts as issued before.
    #[arg(long, value_name = "TIME", requires = "sub", conflicts_with_all = ["jti", "sid", "session", "list"])]
    before: Option<String>,
    /// Revoke one token by its `jti` claim.
    #[arg(long, value_name = "JTI")]
    jti: Option<String>,
    /// Revoke one session by id: the Better Auth session and the tokens
    /// bound to it (the provider's `session_claim`, else `sid`).
    #[arg(long, value_name = "SESSION_ID")]
    sid: Option<String>,
    /// Revoke one Better Auth session by its token (`TOKEN` or the cookie
    /// value); `-` reads it from stdin. Only its SHA-256 is recorded.
    #[arg(long, value_name = "TOKEN|-")]
    session: Option<String>,
    /// List the revocations in force instead, newest first.
    #[arg(long)]
    list: bool,
    /// Why (kept with the entry, at most 256 bytes).
    #[arg(long, value_name = "TEXT", conflicts_with = "list")]
    reason: Option<String>,
    /// Config file (YAML); default $GATEHOUSE_CONFIG, else none.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// A replica's admin API (http://HOST:PORT, https:// for TLS) instead
    /// of writing to Redis directly.
    #[arg(long, value_name = "URL")]
    admin: Option<String>,
    /// CA certificate (PEM) the admin API's certificate must chain to.
    #[arg(long, value_name = "FILE", requires = "admin")]
    admin_ca: Option<PathBuf>,
    /// Client certificate (PEM) for an admin API that requires mTLS.
    #[arg(long, value_name = "FILE", requires_all = ["admin", "admin_key"])]
    admin_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "admin_cert")]
    admin_key: Option<PathBuf>,
}

/// Why the command failed, and so its exit code.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// A usage or configuration error: exit 64.
    #[error("{0}")]
    Usage(String),
    /// Redis or the admin API could not be reached or refused: exit 1.
    #[error("{0}")]
    Unavailable(String),
}

/// Runs `gatehouse revoke`.
pub(crate) fn run(args: RevokeArgs, env: Env) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gatehouse: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let result = rt.block_on(async {
        if args.list {
            return list(&args, env).await;
        }
        let selector = selector(&args)?;
        revocation::check_new(&selector, revocation::now()).map_err(Failure::Usage)?;
        let reason = args.reason.as_deref().unwrap_or("");
        match &args.admin {
            Some(url) => revoke_via_admin(&args, url, selector, reason).await,
            None => revoke_in_redis(&args, env, selector, reason).await,
        }
        .map(|e| vec![e])
    });
    match result {
        Ok(entries) => {
            let now = revocation::now();
            if !args.list && entries.iter().any(|e| e.expires_at <= now) {
                eprintln!(
                    "gatehouse: revoke: note: recorded, but already expired: no credential it \
                     matches can still be valid"
                );
            }
            let mut out = String::new();
            for e in &entries {
                out.push_str(&e.to_json().to_string());
                out.push('\n');
            }
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(out.as_bytes())
                .and_then(|()| stdout.flush())
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::from(EXIT_FAILURE),
            }
        }
        Err(Failure::Usage(m)) => {
            eprintln!("gatehouse: revoke: {m}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(Failure::Unavailable(m)) => {
            eprintln!("gatehouse: revoke: {m}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// The one selector the flags name (clap made sure there is one).
fn selector(args: &RevokeArgs) -> Result<Selector, Failure> {
    if let Some(sub) = &args.sub {
        let before = match &args.before {
            Some(t) => Some(
                revocation::parse_time(t).map_err(|m| Failure::Usage(format!("--before: {m}")))?,
            ),
            None => None,
        };
        return Ok(Selector::Sub {
            sub: sub.clone(),
            before,
        });
    }
    if let Some(jti) = &args.jti {
        return Ok(Selector::Jti(jti.clone()));
    }
    if let Some(sid) = &args.sid {
        return Ok(Selector::Sid(sid.clone()));
    }
    if let Some(session) = &args.session {
        let token = crate::cli::read_token(session).map_err(Failure::Usage)?;
        return Selector::session_token(&token)
            .ok_or_else(|| Failure::Usage("--session: not a session token".into()));
    }
    Err(Failure::Usage(
        "name one of --sub, --jti, --sid, --session or --list".into(),
    ))
}

/// The configuration and its store, for writing to Redis directly.
fn direct(args: &RevokeArgs, env: Env) -> Result<(Config, Store), Failure> {
    let config = Config::load(&LoadOptions {
        config_path: args.config.clone(),
        grpc_addr: None,
        http_addr: None,
        env,
    })
    .map_err(|e| Failure::Usage(format!("config error: {e}")))?;
    let Some(spec) = &config.redis else {
        let var = config
            .effective
            .redis
            .as_ref()
            .and_then(|r| r.url_env.clone())
            .unwrap_or_else(|| "REDIS_URL".to_owned());
        return Err(Failure::Usage(format!(
            "revocations are kept in Redis and {var} is not set: set it (as for `gatehouse serve`), \
             or name a running replica's admin API with --admin URL"
        )));
    };
    let store = Store::new(spec, Arc::new(Metrics::new())).map_err(Failure::Usage)?;
    Ok((config, store))
}

async fn revoke_in_redis(
    args: &RevokeArgs,
    env: Env,
    selector: Selector,
    reason: &str,
) -> Result<Entry, Failure> {
    let (config, store) = direct(args, env)?;
    revocation::record(&store, &config, selector, reason)
        .await
        .map_err(|e| {
            Failure::Unavailable(format!(
                "cannot record the revocation in Redis ({}): {e}",
                store.url_env()
            ))
        })
}

async fn list(args: &RevokeArgs, env: Env) -> Result<Vec<Entry>, Failure> {
    if let Some(url) = &args.admin {
        let mut client = admin_client(args, url).await?;
        let answer = client
            .list_revocations(pb::ListRevocationsRequest { limit: 0 })
            .await
            .map_err(|s| status_failure(url, &s))?
            .into_inner();
        if !answer.following {
            eprintln!(
                "gatehouse: revoke: note: the replica is not following Redis right now; \
                 this is the list it last knew"
            );
        }
        return Ok(answer
            .revocations
            .into_iter()
            .filter_map(super::from_pb)
            .collect());
    }
    let (_, store) = direct(args, env)?;
    let mut entries = revocation::stream::read_all(&store, revocation::now())
        .await
        .map_err(|e| {
            Failure::Unavailable(format!(
                "cannot read the revocations from Redis ({}): {e}",
                store.url_env()
            ))
        })?;
    entries.reverse();
    Ok(entries)
}

async fn revoke_via_admin(
    args: &RevokeArgs,
    url: &str,
    selector: Selector,
    reason: &str,
) -> Result<Entry, Failure> {
    use pb::revoke_request::Selector as S;
    let (issued_before, selector_pb) = match &selector {
        Selector::Sub { sub, before } => (*before, S::Sub(sub.clone())),
        Selector::Jti(v) => (None, S::Jti(v.clone())),
        Selector::Sid(v) => (None, S::Sid(v.clone())),
        Selector::Session(hash) => (None, S::SessionSha256(revocation::hex(hash))),
    };
    let mut client = admin_client(args, url).await?;
    let answer = client
        .revoke(pb::RevokeRequest {
            selector: Some(selector_pb),
            issued_before,
            reason: reason.to_owned(),
        })
        .await
        .map_err(|s| status_failure(url, &s))?
        .into_inner();
    answer
        .revocation
        .and_then(super::from_pb)
        .ok_or_else(|| Failure::Unavailable(format!("the admin API at {url} answered no entry")))
}

/// A refusal from the admin API: its own message (which names Redis when
/// Redis is the trouble); invalid arguments are usage errors.
fn status_failure(url: &str, s: &tonic::Status) -> Failure {
    let m = format!("the admin API at {url} refused: {}", s.message());
    match s.code() {
        tonic::Code::InvalidArgument => Failure::Usage(m),
        tonic::Code::Unavailable if s.message().is_empty() => Failure::Unavailable(format!(
            "cannot reach the admin API at {url} (is `gatehouse serve` running there with \
             REDIS_URL set? it opens admin.addr only then)"
        )),
        _ => Failure::Unavailable(m),
    }
}

async fn admin_client(
    args: &RevokeArgs,
    url: &str,
) -> Result<pb::admin_client::AdminClient<tonic::transport::Channel>, Failure> {
    use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
    let read = |p: &PathBuf, flag: &str| {
        std::fs::read_to_string(p)
            .map_err(|e| Failure::Usage(format!("{flag}: cannot read {}: {e}", p.display())))
    };
    let mut endpoint = Channel::from_shared(url.to_owned())
        .map_err(|e| Failure::Usage(format!("--admin: not a URL: {e}")))?
        .connect_timeout(ADMIN_TIMEOUT)
        .timeout(ADMIN_TIMEOUT);
    if url.starts_with("https://") || args.admin_ca.is_some() {
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = &args.admin_ca {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca, "--admin-ca")?));
        }
        if let (Some(cert), Some(key)) = (&args.admin_cert, &args.admin_key) {
            tls = tls.identity(Identity::from_pem(
                read(cert, "--admin-cert")?,
                read(key, "--admin-key")?,
            ));
        }
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| Failure::Usage(format!("--admin: TLS settings: {e}")))?;
    }
    let channel = endpoint.connect().await.map_err(|e| {
        Failure::Unavailable(format!(
            "cannot reach the admin API at {url}: {e} (is `gatehouse serve` running there with \
             REDIS_URL set? it opens admin.addr only then)"
        ))
    })?;
    Ok(pb::admin_client::AdminClient::new(channel))
}
