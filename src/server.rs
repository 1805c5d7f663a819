//! Running the service: both listeners,
//! SIGTERM drain and SIGHUP reload (docs/operations.md).
//!
//! [`serve`] binds the configured addresses, installs the signal handlers
//! and calls [`run`], which takes already-bound listeners and a [`Shutdown`]
//! handle so tests can bind `127.0.0.1:0` and stop the server themselves.
//! Both listeners answer (liveness) before any key is loaded; readiness
//! waits for the keys.
//!
//! Shutdown: the first SIGTERM/SIGINT makes `/readyz` and gRPC health
//! not-ready at once while both listeners keep accepting and answering for
//! `shutdown_delay`; then they stop accepting and in-flight requests get
//! `shutdown_grace` to finish. A second signal skips the rest of the delay.
//!
//! Reload: SIGHUP rebuilds the configuration with the [`Reloader`], builds a
//! new [`Authorizer`], waits (bounded) for its remote keys and only then
//! swaps it in; any failure keeps the running generation.
//!
//! TLS: with a `tls` block at start, both listeners serve TLS (mTLS with a
//! client CA) through [`crate::tls`]; SIGHUP re-reads the certificate, key
//! and CA files for new connections. Turning TLS on or off takes a restart.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::serve::ListenerExt;
use futures_util::TryStreamExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::server::TcpIncoming;

use crate::config::{Config, ConfigError};
use crate::decision::{Authorizer, Shared};
use crate::grpc::wire::WholeWrites;
use crate::grpc::{AuthzService, HealthPublisher};
use crate::state::AppState;
use crate::telemetry::Metrics;
use crate::tls::{Door, TlsAcceptors, TlsListener};

/// Rebuilds the configuration from the same file, env and flags (SIGHUP).
pub(crate) type Reloader = Arc<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;

/// What `gatehouse serve` (and `demo`) hand to the server.
pub(crate) struct ServeOptions {
    pub config: Config,
    /// `None`: SIGHUP only logs that there is nothing to reload.
    pub reload: Option<Reloader>,
    pub demo_jwks: Option<String>,
}

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// How long a reload waits for a new generation's remote keys before giving up.
pub(crate) const RELOAD_KEY_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTP/2 PING interval on the gRPC listener: keeps Envoy's pooled
/// connections alive through idle NATs and notices dead peers.
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// How long an unanswered HTTP/2 PING may take before the connection is closed.
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks a running server to shut down; cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct Shutdown {
    /// Cancelled at the first signal: go not-ready, start the delay.
    drain: CancellationToken,
    /// Cancelled at the second signal: skip what is left of the delay.
    hurry: CancellationToken,
}

impl Shutdown {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// One SIGTERM/SIGINT: the first starts the drain, the next skips the delay.
    pub(crate) fn signal(&self) {
        if self.drain.is_cancelled() {
            self.hurry.cancel();
        } else {
            self.drain.cancel();
        }
    }
}

/// Why a reload kept the running configuration.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReloadError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("keys for the new configuration did not load within {0:?}")]
    KeysNotLoaded(Duration),
}

impl ReloadError {
    /// The config key at fault, when there is one.
    pub(crate) fn key(&self) -> Option<&str> {
        match self {
            ReloadError::Config(e) => Some(&e.key),
            _ => None,
        }
    }
}

/// Runs both listeners until SIGTERM/SIGINT, then drains.
pub(crate) async fn serve(opts: ServeOptions) -> Result<(), ServeError> {
    let config = opts.config;
    let tls = match &config.tls {
        Some(spec) => Some(Arc::new(
            TlsAcceptors::load(spec).map_err(ConfigError::from)?,
        )),
        None => None,
    };
    let grpc = bind(config.grpc_addr).await?;
    let http = bind(config.http_addr).await?;
    let metrics = Arc::new(Metrics::new());
    let shared = Shared::for_config(&config, &metrics)?;
    match &shared.store {
        Some(store) => tracing::info!(
            redis.url_env = store.url_env(),
            redis.timeout_ms = store.timeout().as_millis() as u64,
            "shared store: Redis (connected on first use)"
        ),
        None => tracing::info!("shared store: none (no Redis URL configured)"),
    }
    let admin = config.admin.clone();
    let authz = Authorizer::with_shared(Arc::new(config), metrics, shared.clone())?;
    authz.start();
    let state = AppState::new(authz, opts.demo_jwks);
    state.tls.store(tls);
    // Revocations followed and the admin API, when Redis is configured.
    let background = crate::admin::start_background(&shared, &admin, state.clone()).await?;
    let shutdown = Shutdown::new();
    spawn_signal_handlers(state.clone(), shutdown.clone(), opts.reload)?;
    let result = run(grpc, http, state, shutdown).await;
    background.stop();
    result
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// SIGTERM/SIGINT → [`Shutdown::signal`]; SIGHUP → [`reload`].
fn spawn_signal_handlers(
    state: Arc<AppState>,
    shutdown: Shutdown,
    reloader: Option<Reloader>,
) -> Result<(), ServeError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let serial = Arc::new(tokio::sync::Mutex::new(()));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => {
                    tracing::info!(signal = "SIGTERM", "shutdown requested");
                    shutdown.signal();
                }
                _ = int.recv() => {
                    tracing::info!(signal = "SIGINT", "shutdown requested");
                    shutdown.signal();
                }
                _ = hup.recv() => {
                    let Some(reloader) = reloader.clone() else {
                        tracing::warn!("SIGHUP: nothing to reload");
                        continue;
                    };
                    // Off the signal loop, so a SIGTERM during a slow key
                    // fetch is still handled at once; one reload at a time.
                    let (state, serial) = (state.clone(), serial.clone());
                    tokio::spawn(async move {
                        let _one = serial.lock().await;
                        match reload(&state, &reloader).await {
                            Ok(()) => tracing::info!("configuration reloaded"),
                            Err(e) => tracing::error!(
                                config.key = e.key().unwrap_or(""),
                                error = %e,
                                "reload failed; keeping the running configuration"
                            ),
                        }
                    });
                }
            }
        }
    });
    Ok(())
}

/// Rebuilds the configuration and swaps it in once its keys are loaded.
/// On any error the running generation stays.
///
/// The metrics outlive generations; afterwards only the running
/// configuration's remote providers have `gatehouse_jwks_fetches_total`
/// series (a removed provider's, or those of a provider the failed
/// configuration added, are dropped).
pub(crate) async fn reload(state: &AppState, reloader: &Reloader) -> Result<(), ReloadError> {
    let config = reloader()?;
    let current = state.authorizer();
    let before = remote_providers(current.config());
    let after = remote_providers(&config);
    let result = swap_in(state, config, &current).await;
    let gone = match &result {
        Ok(()) => before.difference(&after),
        Err(_) => after.difference(&before),
    };
    for name in gone {
        current.metrics().forget_provider(name);
    }
    result
}

/// Names of the providers whose keys are fetched over the network.
fn remote_providers(config: &Config) -> HashSet<String> {
    config
        .providers
        .iter()
        .filter(|p| p.keys.is_remote())
        .map(|p| p.name.clone())
        .collect()
}

/// Builds the generation for `config` and swaps it in for `current` once
/// its keys are loaded.
async fn swap_in(
    state: &AppState,
    config: Config,
    current: &Authorizer,
) -> Result<(), ReloadError> {
    if config.grpc_addr != current.config().grpc_addr
        || config.http_addr != current.config().http_addr
    {
        tracing::warn!("listener addresses changed; they take effect at the next restart");
    }
    // Certificates are read before anything is swapped: a bad file keeps
    // the whole running generation.
    let serving_tls = state.tls.load().is_some();
    let next_tls = match &config.tls {
        Some(spec) if serving_tls => Some(Arc::new(
            TlsAcceptors::load(spec).map_err(ConfigError::from)?,
        )),
        _ => None,
    };
    if config.tls.is_some() != serving_tls {
        tracing::warn!("turning TLS on or off takes effect at the next restart");
    }
    if config
        .redis
        .as_ref()
        .map(|r| (&r.url.0, r.timeout, &r.key_prefix))
        != current
            .config()
            .redis
            .as_ref()
            .map(|r| (&r.url.0, r.timeout, &r.key_prefix))
    {
        tracing::warn!("redis settings changed; they take effect at the next restart");
    }
    let next = Authorizer::with_shared(
        Arc::new(config),
        current.metrics().clone(),
        current.shared().clone(),
    )?;
    next.start();
    if !next.verifier().wait_ready(RELOAD_KEY_TIMEOUT).await {
        next.stop();
        return Err(ReloadError::KeysNotLoaded(RELOAD_KEY_TIMEOUT));
    }
    let old = state.authz.swap(Arc::new(next));
    old.stop();
    if let Some(tls) = next_tls {
        state.tls.store(Some(tls));
        tracing::info!("TLS certificates re-read");
    }
    Ok(())
}

/// Serves gRPC on `grpc` and HTTP on `http` until `shutdown` has been
/// signalled and the drain is over.
pub(crate) async fn run(
    grpc: TcpListener,
    http: TcpListener,
    state: Arc<AppState>,
    shutdown: Shutdown,
) -> Result<(), ServeError> {
    let stop_accepting = CancellationToken::new();
    let stop_health = CancellationToken::new();
    let tracker = TaskTracker::new();

    let (health, health_service) = HealthPublisher::new(state.clone());
    health.publish().await;
    tracker.spawn(health.clone().run(stop_health.clone()));

    // A `tls` block not loaded yet (callers of `run` other than `serve`).
    if state.tls.load().is_none()
        && let Some(spec) = &state.authorizer().config().tls
    {
        let acceptors = TlsAcceptors::load(spec).map_err(ConfigError::from)?;
        state.tls.store(Some(Arc::new(acceptors)));
    }
    let tls = state.tls.load().as_ref().map(|t| t.mtls);

    let grpc_addr = grpc.local_addr()?;
    let grpc_builder = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
        .add_service(health_service)
        .add_service(AuthzService::new(state.clone()).into_server());
    let grpc_task = if tls.is_some() {
        let ready = crate::tls::spawn_accept_loop(
            grpc,
            state.tls.clone(),
            Door::Grpc,
            stop_accepting.clone(),
        );
        let incoming = crate::tls::incoming(ready).map_ok(WholeWrites);
        let server = grpc_builder
            .serve_with_incoming_shutdown(incoming, stop_accepting.clone().cancelled_owned());
        tracker.spawn(ending(server, stop_accepting.clone()))
    } else {
        let incoming = TcpIncoming::from(grpc)
            .with_nodelay(Some(true))
            .map_ok(WholeWrites);
        let server = grpc_builder
            .serve_with_incoming_shutdown(incoming, stop_accepting.clone().cancelled_owned());
        tracker.spawn(ending(server, stop_accepting.clone()))
    };

    let http_addr = http.local_addr()?;
    // The peer's address: `/debug/decisions` answers loopback and the
    // admin networks only.
    let router =
        crate::http::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let http_task = if tls.is_some() {
        let ready = crate::tls::spawn_accept_loop(
            http,
            state.tls.clone(),
            Door::Http,
            stop_accepting.clone(),
        );
        // Tapped (doing nothing) for axum's peer-address support, which
        // covers tapped listeners of any kind.
        let listener = TlsListener::new(ready, http_addr).tap_io(|_| {});
        let server = axum::serve(listener, router)
            .with_graceful_shutdown(stop_accepting.clone().cancelled_owned())
            .into_future();
        tracker.spawn(ending(server, stop_accepting.clone()))
    } else {
        let http = http.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let server = axum::serve(http, router)
            .with_graceful_shutdown(stop_accepting.clone().cancelled_owned())
            .into_future();
        tracker.spawn(ending(server, stop_accepting.clone()))
    };
    tracker.close();
    let tls_mode = match tls {
        None => "off",
        Some(false) => "tls",
        Some(true) => "mtls",
    };
    tracing::info!(grpc = %grpc_addr, http = %http_addr, tls = tls_mode, "listening");

    let (grpc_abort, http_abort) = (grpc_task.abort_handle(), http_task.abort_handle());
    tokio::select! {
        () = shutdown.drain.cancelled() => {}
        // A listener ended on its own (accept error): drain what is left at once.
        () = stop_accepting.cancelled() => shutdown.hurry.cancel(),
    }
    state.draining.store(true, Ordering::SeqCst);
    health.publish().await;
    let (delay, grace) = {
        let authz = state.authorizer();
        (authz.config().shutdown_delay, authz.config().shutdown_grace)
    };
    tracing::info!(
        delay_ms = delay.as_millis() as u64,
        "draining: not ready, still answering"
    );
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        () = shutdown.hurry.cancelled() => {
            tracing::info!("second signal: skipping the rest of the shutdown delay");
        }
    }
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        "no longer accepting; finishing in-flight requests"
    );
    stop_accepting.cancel();
    let finished = tokio::time::timeout(grace, async {
        let grpc = grpc_task.await;
        let http = http_task.await;
        (grpc, http)
    })
    .await;
    stop_health.cancel();
    state.authorizer().stop();
    match finished {
        Ok((grpc, http)) => {
            if let Ok(Err(e)) = grpc {
                tracing::error!(error = %e, "gRPC listener failed");
            }
            if let Ok(Err(e)) = http {
                tracing::error!(error = %e, "HTTP listener failed");
            }
        }
        Err(_) => {
            tracing::warn!("shutdown grace elapsed with requests still in flight");
            grpc_abort.abort();
            http_abort.abort();
        }
    }
    tracker.wait().await;
    tracing::info!("stopped");
    Ok(())
}

/// Runs a listener future and, when it ends for any reason, tells the
/// others to stop accepting too.
async fn ending<F: std::future::Future>(fut: F, done: CancellationToken) -> F::Output {
    let out = fut.await;
    done.cancel();
    out
}
