//! An upstream that echoes back, as JSON, the method, path and headers it
//! received, and counts its hits: it proves what the proxy let through.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, Response};

/// A running echo upstream on 127.0.0.1; stops on drop.
pub struct EchoUpstream {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

async fn echo(State(hits): State<Arc<AtomicUsize>>, req: Request<Body>) -> Response<Body> {
    hits.fetch_add(1, Ordering::SeqCst);
    let mut headers = serde_json::Map::new();
    for (name, value) in req.headers() {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            Some(serde_json::Value::Array(a)) => a.push(v.into()),
            _ => {
                headers.insert(
                    name.as_str().to_owned(),
                    serde_json::Value::Array(vec![v.into()]),
                );
            }
        }
    }
    let body = serde_json::json!({
        "method": req.method().as_str(),
        "path": req.uri().to_string(),
        "headers": headers,
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("x-echo", "1")
        .body(Body::from(body.to_string()))
        .expect("static response")
}

impl EchoUpstream {
    pub fn start() -> EchoUpstream {
        let hits = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let state = hits.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind echo upstream");
                addr_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                let app = Router::new().fallback(echo).with_state(state);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        let addr = addr_rx.recv().expect("echo upstream address");
        EchoUpstream {
            addr,
            hits,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    /// Requests that reached the upstream so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
