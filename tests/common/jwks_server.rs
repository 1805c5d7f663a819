//! A counting JWKS server on 127.0.0.1: serves a JSON document that tests
//! swap at runtime, counts hits per path, and can be told to fail (status),
//! to answer slowly (delay), to send a Cache-Control header, or to send a
//! raw body (garbage, oversized). Also serves as an "attacker" server whose
//! hit count must stay at zero. Dropping it stops it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Response, StatusCode, Uri, header};
use serde_json::Value;
use tokio::sync::oneshot;

/// What the server currently answers.
struct Behaviour {
    doc: Value,
    status: u16,
    cache_control: Option<String>,
    delay: Duration,
    body: Option<Vec<u8>>,
    /// Documents served on specific paths instead of `doc`.
    by_path: HashMap<String, Value>,
    hits: HashMap<String, usize>,
}

/// A running JWKS server. Stops on drop.
pub struct JwksServer {
    addr: SocketAddr,
    state: Arc<Mutex<Behaviour>>,
    stop: Option<oneshot::Sender<()>>,
}

async fn answer(State(state): State<Arc<Mutex<Behaviour>>>, uri: Uri) -> Response<Body> {
    let (status, cache_control, delay, body) = {
        let mut b = state.lock().expect("state lock");
        *b.hits.entry(uri.path().to_owned()).or_insert(0) += 1;
        let body = match (&b.body, b.by_path.get(uri.path())) {
            (_, Some(doc)) => doc.to_string().into_bytes(),
            (Some(raw), None) => raw.clone(),
            (None, None) => b.doc.to_string().into_bytes(),
        };
        (b.status, b.cache_control.clone(), b.delay, body)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut resp = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(cc) = cache_control {
        resp = resp.header(header::CACHE_CONTROL, cc);
    }
    resp.body(Body::from(body)).expect("response")
}

impl JwksServer {
    /// Starts serving `doc` (status 200) on a free loopback port.
    pub async fn start(doc: Value) -> JwksServer {
        let state = Arc::new(Mutex::new(Behaviour {
            doc,
            status: 200,
            cache_control: None,
            delay: Duration::ZERO,
            body: None,
            by_path: HashMap::new(),
            hits: HashMap::new(),
        }));
        let app = Router::new().fallback(answer).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        JwksServer {
            addr,
            state,
            stop: Some(tx),
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Total requests seen, all paths.
    pub fn hits(&self) -> usize {
        self.state.lock().expect("lock").hits.values().sum()
    }

    /// Requests seen on one path.
    pub fn hits_on(&self, path: &str) -> usize {
        self.state
            .lock()
            .expect("lock")
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Replaces the served JSON document (and clears any raw body).
    pub fn set_doc(&self, doc: Value) {
        let mut b = self.state.lock().expect("lock");
        b.doc = doc;
        b.body = None;
    }

    /// Serves `doc` on `path` only (e.g. an OIDC discovery document).
    pub fn set_doc_at(&self, path: &str, doc: Value) {
        self.state
            .lock()
            .expect("lock")
            .by_path
            .insert(path.to_owned(), doc);
    }

    pub fn set_status(&self, status: u16) {
        self.state.lock().expect("lock").status = status;
    }

    pub fn set_cache_control(&self, value: Option<&str>) {
        self.state.lock().expect("lock").cache_control = value.map(str::to_owned);
    }

    /// Delay before answering (tokio time, so paused-time tests see it too).
    pub fn set_delay(&self, delay: Duration) {
        self.state.lock().expect("lock").delay = delay;
    }

    /// Raw bytes served instead of the document (garbage, oversized).
    pub fn set_body(&self, body: Vec<u8>) {
        self.state.lock().expect("lock").body = Some(body);
    }

    /// Panics unless the server saw no request at all.
    pub fn assert_untouched(&self) {
        assert_eq!(self.hits(), 0, "server must never be contacted");
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
