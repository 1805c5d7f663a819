//! Doctor's HTTP/1.1 client: one request per connection, written byte for
//! byte as doctor means it, and the answer read back whole.
//!
//! A general client would not do: `reqwest` (through `url`) resolves
//! `/public/../x` and `%2e%2e` before sending and merges repeated headers,
//! which are exactly the requests doctor must send unchanged. So the
//! request line and headers are written by hand (`Connection: close`, no
//! body) and the answer is read to the end of the connection, with a size
//! cap and a timeout, then parsed: status, headers, body (chunked or not).
//!
//! Also here: reading an answer the way doctor judges it ([`Answer::refusal`]:
//! was it gatehouse that refused?) and the echo upstream's JSON.
//!
//! Plain `http://` only; this module does not speak TLS.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde_json::Value;

/// How long one probe may take to connect, and then to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read; doctor needs the head and a small JSON body.
const MAX_ANSWER: usize = 1 << 20;

/// Why a probe got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProbeError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("connection to {addr} failed: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr} answered something that is not HTTP/1.x")]
    NotHttp { addr: String },
}

/// Why a URL given to doctor is unusable (a usage error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OriginError {
    #[error("{0:?} is not a URL")]
    NotAUrl(String),
    #[error("{0:?}: doctor speaks plain HTTP; give the proxy's http:// address")]
    NotHttp(String),
    #[error("{0:?} has a path: give the origin only (paths go in --protected and --public)")]
    HasPath(String),
}

/// Where requests go: `http://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    /// `host:port`, to connect to.
    addr: String,
    /// The `Host` header: the URL's authority as written.
    pub(crate) authority: String,
    /// The host name alone (no port), lower-cased, for comparing.
    pub(crate) host: String,
}

impl Origin {
    pub(crate) fn parse(url: &str) -> Result<Origin, OriginError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|_| OriginError::NotAUrl(url.to_owned()))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(_) => return Err(OriginError::NotHttp(url.to_owned())),
            None => return Err(OriginError::NotAUrl(url.to_owned())),
        }
        let Some(authority) = uri.authority() else {
            return Err(OriginError::NotAUrl(url.to_owned()));
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(OriginError::HasPath(url.to_owned()));
        }
        let host = authority.host().to_ascii_lowercase();
        let port = authority.port_u16().unwrap_or(80);
        // `host()` keeps the brackets of an IPv6 literal, as connect wants.
        Ok(Origin {
            addr: format!("{host}:{port}"),
            authority: authority.as_str().to_owned(),
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        })
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}", self.authority)
    }
}

/// One request as doctor sends it.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) method: &'static str,
    /// Path and query, sent as is.
    pub(crate) target: String,
    /// Sent in this order; a name may repeat.
    pub(crate) headers: Vec<(String, String)>,
}

/// An answer: status, lower-cased header names in order, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

/// Who refused a request, as far as the answer shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// 400, 401, 403 or 429 carrying gatehouse's `x-gatehouse-error`, its
    /// JSON body (`{"error", "message"}`, which nginx's printed error pages
    /// rebuild), or, for 401, its `Bearer realm="gatehouse"` challenge.
    Gatehouse {
        status: u16,
        /// The error code, when the answer names it.
        code: Option<String>,
        /// Only the challenge showed it was gatehouse: the proxy dropped
        /// gatehouse's body and headers (nginx without its error pages).
        challenge_only: bool,
    },
    /// Not a 2xx, and nothing in it is gatehouse's.
    Other { status: u16 },
}

impl Answer {
    /// First value of a header (name lower-case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// 2xx: the request got through.
    pub(crate) fn passed(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Who refused it; `None` when it passed.
    pub(crate) fn refusal(&self) -> Option<Refusal> {
        if self.passed() {
            return None;
        }
        let status = self.status;
        if !matches!(status, 400 | 401 | 403 | 429) {
            return Some(Refusal::Other { status });
        }
        let header = self
            .header("x-gatehouse-error")
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        let body = serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| {
                let code = v.get("error")?.as_str()?.to_owned();
                v.get("message")?.as_str()?;
                Some(code)
            });
        let challenge = status == 401
            && self
                .header("www-authenticate")
                .is_some_and(|c| c.contains("realm=\"gatehouse\""));
        match (header.or(body), challenge) {
            (Some(code), _) => Some(Refusal::Gatehouse {
                status,
                code: Some(code),
                challenge_only: false,
            }),
            (None, true) => Some(Refusal::Gatehouse {
                status,
                code: None,
                challenge_only: true,
            }),
            (None, false) => Some(Refusal::Other { status }),
        }
    }

    /// A short account: `401 token_missing`, `200`, `500 (not gatehouse)`.
    pub(crate) fn describe(&self) -> String {
        match self.refusal() {
            None => format!("{}", self.status),
            Some(Refusal::Gatehouse {
                status,
                code: Some(code),
                ..
            }) => format!("{status} {code}"),
            Some(Refusal::Gatehouse { status, .. }) => {
                format!("{status} with gatehouse's challenge but not its JSON body")
            }
            Some(Refusal::Other { status }) => {
                let server = self
                    .header("server")
                    .map(|s| format!(" from {s}"))
                    .unwrap_or_default();
                format!("{status}{server}, not gatehouse's answer")
            }
        }
    }

    /// What an echo upstream says it received: the path and every value of
    /// each header (names lower-cased). `None` when the body is not an
    /// echo: a JSON object with a `headers` object whose values are
    /// strings or lists of strings.
    pub(crate) fn echo(&self) -> Option<Echo> {
        let v: Value = serde_json::from_str(&self.body).ok()?;
        let map = v.get("headers")?.as_object()?;
        let mut headers = Vec::new();
        for (name, values) in map {
            let name = name.to_ascii_lowercase();
            match values {
                Value::String(s) => headers.push((name, s.clone())),
                Value::Array(list) => {
                    for item in list {
                        headers.push((name.clone(), item.as_str()?.to_owned()));
                    }
                }
                _ => return None,
            }
        }
        Some(Echo {
            path: v.get("path").and_then(Value::as_str).map(str::to_owned),
            headers,
        })
    }
}

/// What the upstream received, from its echo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Echo {
    pub(crate) path: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
}

impl Echo {
    /// Every value the upstream received for `name` (lower-case).
    pub(crate) fn values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Sends `req` to `origin` and reads the whole answer.
pub(crate) fn send(origin: &Origin, req: &Request) -> Result<Answer, ProbeError> {
    let addr = &origin.addr;
    let connect_err = |source| ProbeError::Connect {
        addr: addr.clone(),
        source,
    };
    let io_err = |source| ProbeError::Io {
        addr: addr.clone(),
        source,
    };
    let sockets = addr.to_socket_addrs().map_err(connect_err)?;
    let mut last = None;
    let mut stream = None;
    for socket in sockets {
        match TcpStream::connect_timeout(&socket, TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let mut stream = match (stream, last) {
        (Some(s), _) => s,
        (None, Some(e)) => return Err(connect_err(e)),
        (None, None) => {
            return Err(connect_err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the name has no address",
            )));
        }
    };
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io_err)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io_err)?;
    stream
        .write_all(request_bytes(origin, req).as_bytes())
        .map_err(io_err)?;
    // Read until the connection closes or the answer is complete (a
    // proxy may keep the connection open despite `Connection: close`).
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    while raw.len() < MAX_ANSWER && !complete(&raw) {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(e)),
        }
    }
    parse_answer(&raw).ok_or_else(|| ProbeError::NotHttp { addr: addr.clone() })
}

/// Whether `raw` holds a whole answer whose end its headers announce
/// (`Content-Length`, or the last chunk); an answer without either ends
/// when the connection closes.
pub(crate) fn complete(raw: &[u8]) -> bool {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(raw.get(..split).unwrap_or_default()).to_ascii_lowercase();
    let body = raw.get(split + 4..).unwrap_or_default();
    let header = |name: &str| {
        head.split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_owned())
    };
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        return body.ends_with(b"0\r\n\r\n");
    }
    match header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(n) => body.len() >= n,
        None => false,
    }
}

/// The request as written on the wire.
pub(crate) fn request_bytes(origin: &Origin, req: &Request) -> String {
    let mut out = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: gatehouse-doctor/{}\r\nAccept: */*\r\nConnection: close\r\n",
        req.method,
        req.target,
        origin.authority,
        env!("CARGO_PKG_VERSION"),
    );
    for (name, value) in &req.headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out
}

/// Parses an HTTP/1.x answer read to the end of the connection.
pub(crate) fn parse_answer(raw: &[u8]) -> Option<Answer> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(raw.get(..split)?);
    let rest = raw.get(split + 4..)?;
    let mut lines = head.split("\r\n");
    let mut status_line = lines.next()?.split_whitespace();
    if !status_line.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status: u16 = status_line.next()?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        let length = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok());
        match length {
            Some(n) => rest.get(..n.min(rest.len())).unwrap_or(rest).to_vec(),
            None => rest.to_vec(),
        }
    };
    Some(Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// The body of a chunked answer; stops at the last chunk or where the
/// data ends.
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = data.windows(2).position(|w| w == b"\r\n") {
        let line = String::from_utf8_lossy(data.get(..pos).unwrap_or_default());
        let Ok(size) = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
        else {
            break;
        };
        if size == 0 {
            break;
        }
        let start = pos + 2;
        let end = start.saturating_add(size).min(data.len());
        out.extend_from_slice(data.get(start..end).unwrap_or_default());
        data = data
            .get(end.saturating_add(2).min(data.len())..)
            .unwrap_or_default();
    }
    out
}
