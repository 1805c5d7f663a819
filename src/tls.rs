//! TLS and mTLS on the two listeners (docs/configuration.md), with rustls
//! and the aws-lc-rs provider.
//!
//! [`TlsAcceptors::load`] reads the configured certificate chain, private
//! key and optional client CA (PEM) and builds one rustls server config per
//! listener: ALPN `h2` for gRPC, `http/1.1` for the HTTP door. With a client
//! CA, a client must present a certificate chaining to it or the handshake
//! fails. The acceptors live in [`crate::state::AppState`] and are swapped
//! on SIGHUP, so new connections use re-read files while open ones keep
//! theirs.
//!
//! [`spawn_accept_loop`] turns a TCP listener into a stream of finished TLS
//! connections: each handshake runs in its own task with a timeout, so a
//! slow or silent client never holds up other accepts, and a failed
//! handshake is logged (peer address and rustls' reason, nothing secret)
//! and dropped. This module does not decide whether a listener uses TLS;
//! the server does that once at start.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, TlsSpec};

/// How long a client may take to finish the TLS handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Finished connections waiting for the server to pick them up.
const READY_QUEUE: usize = 128;

/// Handshakes in progress at once per listener; connections beyond this
/// are closed at once, so a flood of stalled clients costs bounded memory.
pub(crate) const MAX_PENDING_HANDSHAKES: usize = 4096;

/// A TLS file that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct TlsError {
    /// The config key naming the file at fault (`tls.cert_file`, …).
    pub key: &'static str,
    pub message: String,
}

impl TlsError {
    fn new(key: &'static str, message: impl Into<String>) -> Self {
        Self {
            key,
            message: message.into(),
        }
    }
}

impl From<TlsError> for ConfigError {
    fn from(e: TlsError) -> Self {
        ConfigError::new(e.key, e.message)
    }
}

/// Which listener a connection arrived on (logs, ALPN choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Door {
    Grpc,
    Http,
}

impl Door {
    fn name(self) -> &'static str {
        match self {
            Door::Grpc => "grpc",
            Door::Http => "http",
        }
    }
}

/// One generation of server-side TLS settings for both listeners.
pub struct TlsAcceptors {
    /// ALPN `h2`: gRPC needs HTTP/2.
    grpc: TlsAcceptor,
    /// ALPN `http/1.1`: the HTTP door speaks HTTP/1.1 only.
    http: TlsAcceptor,
    /// Whether clients must present a certificate (for logs).
    pub mtls: bool,
}

impl std::fmt::Debug for TlsAcceptors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAcceptors")
            .field("mtls", &self.mtls)
            .finish_non_exhaustive()
    }
}

impl TlsAcceptors {
    /// Reads the files named by `spec` and builds both acceptors.
    pub fn load(spec: &TlsSpec) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certs = read_certs(&spec.cert_file, "tls.cert_file")?;
        let key = PrivateKeyDer::from_pem_file(&spec.key_file).map_err(|e| {
            TlsError::new(
                "tls.key_file",
                format!("no usable PEM private key in {}: {e}", spec.key_file),
            )
        })?;
        let verifier = match &spec.client_ca_file {
            Some(path) => Some(client_verifier(path, provider.clone())?),
            None => None,
        };
        let build = |alpn: &[u8]| -> Result<TlsAcceptor, TlsError> {
            let builder = ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsError::new("tls", e.to_string()))?;
            let builder = match &verifier {
                Some(v) => builder.with_client_cert_verifier(v.clone()),
                None => builder.with_no_client_auth(),
            };
            let mut config = builder
                .with_single_cert(certs.clone(), key.clone_key())
                .map_err(|e| {
                    TlsError::new(
                        "tls.key_file",
                        format!("certificate and key do not form a usable pair: {e}"),
                    )
                })?;
            config.alpn_protocols = vec![alpn.to_vec()];
            Ok(TlsAcceptor::from(Arc::new(config)))
        };
        Ok(Self {
            grpc: build(b"h2")?,
            http: build(b"http/1.1")?,
            mtls: verifier.is_some(),
        })
    }

    fn acceptor(&self, door: Door) -> TlsAcceptor {
        match door {
            Door::Grpc => self.grpc.clone(),
            Door::Http => self.http.clone(),
        }
    }
}

fn read_certs(path: &str, key: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            TlsError::new(
                key,
                format!("cannot read PEM certificates from {path}: {e}"),
            )
        })?;
    if certs.is_empty() {
        return Err(TlsError::new(
            key,
            format!("{path} holds no PEM certificate"),
        ));
    }
    Ok(certs)
}

fn client_verifier(
    path: &str,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    const KEY: &str = "tls.client_ca_file";
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certs(path, KEY)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::new(KEY, format!("bad CA certificate in {path}: {e}")))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| TlsError::new(KEY, format!("cannot use {path} as client CA: {e}")))
}

/// A finished TLS connection and its peer.
pub(crate) type Accepted = (TlsStream<TcpStream>, SocketAddr);

/// Accepts TCP connections on `listener` until `stop`, runs each TLS
/// handshake in its own task with the acceptors current at accept time,
/// and delivers the finished connections on the returned channel.
pub(crate) fn spawn_accept_loop(
    listener: TcpListener,
    acceptors: Arc<ArcSwapOption<TlsAcceptors>>,
    door: Door,
    stop: CancellationToken,
) -> mpsc::Receiver<Accepted> {
    let (tx, rx) = mpsc::channel(READY_QUEUE);
    let pending = Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => break,
                r = listener.accept() => r,
            };
            let (tcp, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep going.
                    tracing::warn!(door = door.name(), error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let Some(current) = acceptors.load_full() else {
                tracing::warn!(
                    door = door.name(),
                    "no TLS settings loaded; closing connection"
                );
                continue;
            };
            let Ok(permit) = pending.clone().try_acquire_owned() else {
                tracing::warn!(door = door.name(), peer = %peer, "too many TLS handshakes in progress; closing connection");
                continue;
            };
            let acceptor = current.acceptor(door);
            let tx = tx.clone();
            tokio::spawn(async move {
                let _permit = permit;
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send((tls, peer)).await;
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(door = door.name(), peer = %peer, error = %e, "TLS handshake failed");
                    }
                    Err(_) => {
                        tracing::debug!(door = door.name(), peer = %peer, "TLS handshake timed out");
                    }
                }
            });
        }
    });
    rx
}

/// The HTTP door's view of the accept loop, for `axum::serve`.
pub(crate) struct TlsListener {
    /// Finished handshakes from [`spawn_accept_loop`].
    ready: mpsc::Receiver<Accepted>,
    /// The bound TCP address (reported by `local_addr`).
    local: SocketAddr,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl TlsListener {
    pub(crate) fn new(ready: mpsc::Receiver<Accepted>, local: SocketAddr) -> Self {
        Self { ready, local }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop only ends when the server stops accepting,
            // and then axum no longer asks.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The gRPC door's view of the accept loop, for tonic's
/// `serve_with_incoming_shutdown`.
pub(crate) fn incoming(
    ready: mpsc::Receiver<Accepted>,
) -> impl futures_util::Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> + Send + 'static
{
    futures_util::stream::unfold(ready, |mut ready| async move {
        ready.recv().await.map(|(tls, _)| (Ok(tls), ready))
    })
}

#[cfg(test)]
mod tests;
