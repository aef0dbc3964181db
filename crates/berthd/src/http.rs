//! HTTP plumbing: the accept loop (which hands each request to a handler it is given), response
//! helpers with dockerd's headers, streaming bodies, query parsing, and the bridge from a streamed
//! request body to a blocking reader. The routes use these helpers; nothing here knows a route.

use std::convert::Infallible;
use std::future::Future;
use std::io::Read;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use berth_daemon::Error;
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;
use tokio::sync::mpsc;

pub type Body = BoxBody<Bytes, std::io::Error>;

/// Accepts connections forever; each is served with keep-alive and upgrades (hijack), and every
/// request on it is answered by `handler` (the routes: this module knows nothing of them).
pub async fn serve<H, F>(listener: UnixListener, path: PathBuf, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                eprintln!("berthd: accept on {} failed: {e}", path.display());
                continue;
            }
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            // A second descriptor of the socket, for the lingering close below.
            let linger = std::os::fd::AsFd::as_fd(&stream).try_clone_to_owned().ok();
            let upgraded = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let seen = upgraded.clone();
            let svc = hyper::service::service_fn(move |req| {
                let answer = handler(req);
                let seen = seen.clone();
                async move {
                    let r = answer.await;
                    if r.status() == StatusCode::SWITCHING_PROTOCOLS {
                        seen.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok::<_, Infallible>(r)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await;
            // (A hijacked connection lives on in its handler.)
            if let Some(fd) = linger.filter(|_| !upgraded.load(std::sync::atomic::Ordering::Relaxed)) {
                linger_close(fd).await;
            }
        });
    }
}

/// Closes a served connection as Go's server does (`closeWriteAndWait`): the response is all
/// written, so the write side is shut, and what the client still sends is read and dropped until
/// it closes (bounded: 64 MiB, 5 s). hyper drops a connection whose request body was not read
/// (an error answered before an upload was taken: `import` with a bad `--change`, `load` of a
/// file that is no archive, `cp` to a missing directory); a client still writing that body then
/// fails with a broken pipe instead of reading the daemon's error.
async fn linger_close(fd: std::os::fd::OwnedFd) {
    let std = std::os::unix::net::UnixStream::from(fd);
    if std.shutdown(std::net::Shutdown::Write).is_err() || std.set_nonblocking(true).is_err() {
        return;
    }
    let Ok(mut s) = tokio::net::UnixStream::from_std(std) else {
        return;
    };
    let drain = async {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 << 10];
        let mut left: usize = 64 << 20;
        while left > 0 {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
}

/// Adds the headers dockerd puts on every response.
pub fn with_headers(mut r: Response<Body>) -> Response<Body> {
    let h = r.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(berth_api::API_VERSION));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert(
        "Server",
        HeaderValue::from_static(concat!("Berth/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    r
}

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

pub fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// A JSON body ending in `\n`, with `Content-Type: application/json` exactly.
pub fn json<T: serde::Serialize>(status: StatusCode, v: &T) -> Response<Body> {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    let mut r = Response::new(full(b));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// `{"message": …}` with the status of the error's kind (304 has no body).
pub fn error(e: &Error) -> Response<Body> {
    let status =
        StatusCode::from_u16(berth_api::status_for(e.kind())).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status == StatusCode::NOT_MODIFIED {
        return empty(status);
    }
    json(
        status,
        &berth_api::ErrorBody {
            message: e.to_string(),
        },
    )
}

pub fn message(status: StatusCode, msg: impl Into<String>) -> Response<Body> {
    json(status, &berth_api::ErrorBody { message: msg.into() })
}

/// A body fed by a channel: each message is sent as it arrives (chunked).
pub struct ChannelBody(pub mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// A streaming response; `content_type` is omitted when `None` (as dockerd does for logs).
pub fn stream(rx: mpsc::Receiver<Bytes>, content_type: Option<&'static str>) -> Response<Body> {
    let mut r = Response::new(ChannelBody(rx).boxed());
    if let Some(ct) = content_type {
        r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    r
}

/// The `101` answer to a hijack request.
pub fn upgraded() -> Response<Body> {
    let mut r = empty(StatusCode::SWITCHING_PROTOCOLS);
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.docker.raw-stream"),
    );
    h.insert("Connection", HeaderValue::from_static("Upgrade"));
    h.insert("Upgrade", HeaderValue::from_static("tcp"));
    r
}

/// Reads a whole (small) request body.
pub async fn read_body(body: Incoming) -> Result<Bytes, Error> {
    body.collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| Error::invalid(format!("failed to read request body: {e}")))
}

/// Parses a JSON request body; an empty body gives the default.
pub fn parse_json<T: serde::de::DeserializeOwned + Default>(b: &[u8]) -> Result<T, Error> {
    if b.iter().all(|c| c.is_ascii_whitespace()) {
        return Ok(T::default());
    }
    serde_json::from_slice(b).map_err(|e| Error::invalid(format!("invalid JSON: {e}")))
}

/// A blocking `Read` over a streamed request body, for store code running on a blocking thread.
pub struct BodyReader {
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
    cur: Bytes,
}

impl BodyReader {
    pub fn new(mut body: Incoming) -> Self {
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => {
                        if let Ok(data) = f.into_data() {
                            if tx.send(Ok(data)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(std::io::Error::other(e))).await;
                        return;
                    }
                }
            }
        });
        BodyReader {
            rx,
            cur: Bytes::new(),
        }
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// Query parameters, percent-decoded; keys may repeat.
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(q: Option<&str>) -> Self {
        let mut v = Vec::new();
        for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, val) = pair.split_once('=').unwrap_or((pair, ""));
            v.push((decode(k), decode(val)));
        }
        Query(v)
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
    pub fn all(&self, k: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .collect()
    }
    pub fn bool(&self, k: &str) -> bool {
        self.get(k).map(berth_api::bool_value).unwrap_or(false)
    }
    pub fn int(&self, k: &str) -> Result<Option<i64>, Error> {
        match self.get(k).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| Error::invalid(format!("invalid value for {k}: {v}"))),
        }
    }
    pub fn filters(&self) -> Result<std::collections::BTreeMap<String, Vec<String>>, Error> {
        berth_api::parse_filters(self.get("filters").unwrap_or("")).map_err(Error::invalid)
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The accept loop serves whatever handler it is given (here not the routes), with
    /// keep-alive: two requests on one connection, each answered by the handler.
    #[tokio::test]
    async fn serve_answers_every_request_with_the_handler_it_is_given() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let handler = |req: Request<Incoming>| async move {
            with_headers(message(
                StatusCode::IM_A_TEAPOT,
                format!("you asked for {}", req.uri().path()),
            ))
        };
        let server = tokio::spawn(serve(listener, path.clone(), handler));
        let mut c = tokio::net::UnixStream::connect(&path).await.unwrap();
        let mut seen = String::new();
        for p in ["/one", "/two"] {
            c.write_all(format!("GET {p} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let want = format!(r#"{{"message":"you asked for {p}"}}"#);
            while !seen.contains(&want) {
                let mut buf = vec![0u8; 4096];
                let read = tokio::time::timeout(std::time::Duration::from_secs(10), c.read(&mut buf));
                let n = read.await.expect("an answer within 10 s").unwrap();
                assert!(n > 0, "connection closed after: {seen}");
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
        server.abort();
        assert_eq!(seen.matches("HTTP/1.1 418").count(), 2, "{seen}");
        assert!(seen.contains("api-version: 1.41"), "{seen}");
    }

    #[test]
    fn queries_decode_and_repeat() {
        let q = Query::parse(Some(
            "t=bt%3A1&t=bt%3A2&changes=CMD+%5B%22cat%22%5D&force=True&x=%",
        ));
        assert_eq!(q.all("t"), vec!["bt:1", "bt:2"]);
        assert_eq!(q.get("changes"), Some("CMD [\"cat\"]"));
        assert!(q.bool("force"));
        assert!(!q.bool("missing"));
        assert_eq!(q.get("x"), Some("%"));
    }
}
