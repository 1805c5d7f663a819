//! A loopback TCP proxy a test can cut and restore, to make a shared
//! backend (Postgres, Better Auth) "go away" and "come back" without
//! touching the real server. While cut, new connections are closed at once
//! and open ones are shut down.
//!
//! Started with [`TcpProxy::start_postgres`], it also reads the frontend
//! side of the PostgreSQL wire protocol and counts `Parse` messages (one
//! per statement the client prepares).
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running proxy to `target`.
pub struct TcpProxy {
    pub addr: SocketAddr,
    state: Arc<State>,
}

struct State {
    target: SocketAddr,
    up: AtomicBool,
    stop: AtomicBool,
    /// Client-side streams of open connections, to shut down on cut.
    open: Mutex<Vec<TcpStream>>,
    /// Connections forwarded so far.
    forwarded: AtomicUsize,
    /// Count PostgreSQL `Parse` messages on the client side.
    postgres: bool,
    parses: Arc<AtomicUsize>,
}

impl TcpProxy {
    pub fn start(target: SocketAddr) -> TcpProxy {
        Self::start_inner(target, false)
    }

    /// A proxy in front of Postgres that counts prepared statements.
    pub fn start_postgres(target: SocketAddr) -> TcpProxy {
        Self::start_inner(target, true)
    }

    fn start_inner(target: SocketAddr, postgres: bool) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let state = Arc::new(State {
            target,
            up: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
            forwarded: AtomicUsize::new(0),
            postgres,
            parses: Arc::new(AtomicUsize::new(0)),
        });
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                if !st.up.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect_timeout(&st.target, Duration::from_secs(5))
                else {
                    continue;
                };
                st.forwarded.fetch_add(1, Ordering::SeqCst);
                if let Ok(c) = client.try_clone() {
                    st.open.lock().unwrap().push(c);
                }
                if let Ok(s) = server.try_clone() {
                    st.open.lock().unwrap().push(s);
                }
                let counter = st.postgres.then(|| st.parses.clone());
                pipe(&client, &server, counter);
                pipe(&server, &client, None);
            }
        });
        TcpProxy { addr, state }
    }

    /// Closes every open connection and refuses new ones.
    pub fn cut(&self) {
        self.state.up.store(false, Ordering::SeqCst);
        for s in self.state.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.state.up.store(true, Ordering::SeqCst);
    }

    /// PostgreSQL `Parse` messages seen (only for [`TcpProxy::start_postgres`]).
    pub fn parses(&self) -> usize {
        self.state.parses.load(Ordering::SeqCst)
    }

    /// Connections forwarded so far.
    pub fn forwarded(&self) -> usize {
        self.state.forwarded.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.state.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn pipe(from: &TcpStream, to: &TcpStream, parses: Option<Arc<AtomicUsize>>) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        let mut frames = FrontendFrames::default();
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Some(parses) = &parses {
                        let seen = frames.feed(&buf[..n]);
                        parses.fetch_add(seen, Ordering::SeqCst);
                    }
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

/// Splits the client side of a PostgreSQL connection into messages: first
/// the untyped startup message (`len:i32`, no TLS request since the client
/// uses NoTls), then `type:u8 len:i32 body`. Counts `Parse` (`P`).
#[derive(Default)]
struct FrontendFrames {
    started: bool,
    pending: Vec<u8>,
}

impl FrontendFrames {
    fn feed(&mut self, data: &[u8]) -> usize {
        self.pending.extend_from_slice(data);
        let mut parses = 0;
        loop {
            let header = if self.started { 5 } else { 4 };
            if self.pending.len() < header {
                return parses;
            }
            let len_at = header - 4;
            let len = u32::from_be_bytes(self.pending[len_at..header].try_into().unwrap()) as usize;
            let total = len_at + len;
            if self.pending.len() < total {
                return parses;
            }
            if self.started && self.pending[0] == b'P' {
                parses += 1;
            }
            self.started = true;
            self.pending.drain(..total);
        }
    }
}
