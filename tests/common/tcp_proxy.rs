//! A loopback TCP proxy a test can cut and restore, to make a shared
//! backend (Postgres, Better Auth) "go away" and "come back" without
//! touching the real server. While cut, new connections are closed at once
//! and open ones are shut down.
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
}

impl TcpProxy {
    pub fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let state = Arc::new(State {
            target,
            up: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
            forwarded: AtomicUsize::new(0),
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
                pipe(&client, &server);
                pipe(&server, &client);
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

fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
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
