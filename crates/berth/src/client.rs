//! A small blocking HTTP/1.1 client for the Engine API over a Unix socket.
//!
//! One connection per request (no keep-alive). Responses may be sized (`Content-Length`),
//! chunked, or delimited by the server closing; request bodies may be sized or chunked.
//! [`Client::hijack`] upgrades a connection (`Connection: Upgrade`, `Upgrade: tcp` → `101`) and
//! hands back the raw bidirectional socket, as `attach` and `exec start` need.

use std::cell::Cell;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

/// API version prefix used on every path.
pub const API_PREFIX: &str = "/v1.41";
/// Where berthd listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/berth/berth.sock";

/// A non-2xx answer from the daemon. Displays as docker does: `Error response from daemon: <msg>`.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error response from daemon: {}", self.message)
    }
}
impl std::error::Error for ApiError {}

/// The daemon cannot be reached at all.
#[derive(Debug)]
pub struct ConnectError(pub String);
impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Cannot connect to the berth daemon at {}. Is the berth daemon running?",
            self.0
        )
    }
}
impl std::error::Error for ConnectError {}

/// A request body.
pub enum Body<'a> {
    Empty,
    Json(Vec<u8>),
    /// Streamed with `Transfer-Encoding: chunked` and the given content type.
    Stream(&'a mut dyn Read, &'a str),
}

impl Body<'_> {
    pub fn json(v: &serde_json::Value) -> Body<'static> {
        Body::Json(serde_json::to_vec(v).expect("serializing a Value cannot fail"))
    }
}

#[derive(Clone)]
pub struct Client {
    path: PathBuf,
    /// `unix:///path` as shown in connection errors.
    display: String,
    /// True when no -H / env was given: berthd may be auto-started.
    is_default: bool,
    autostart_tried: Cell<bool>,
}

impl Client {
    /// Resolves the host from `-H`, `$BERTH_HOST`, `$DOCKER_HOST`, else the default socket.
    pub fn from_host(host: Option<&str>) -> anyhow::Result<Client> {
        let env = |k: &str| std::env::var(k).ok().filter(|s| !s.is_empty());
        let given = host
            .map(str::to_owned)
            .or_else(|| env("BERTH_HOST"))
            .or_else(|| env("DOCKER_HOST"));
        let is_default = given.is_none();
        let host = given.unwrap_or_else(|| format!("unix://{DEFAULT_SOCKET}"));
        let path = if let Some(p) = host.strip_prefix("unix://") {
            p.to_owned()
        } else if host.starts_with('/') {
            host.clone()
        } else {
            anyhow::bail!("unsupported host {host:?}: only unix:///path sockets are supported");
        };
        Ok(Client {
            display: format!("unix://{path}"),
            path: PathBuf::from(path),
            is_default,
            autostart_tried: Cell::new(false),
        })
    }

    fn connect(&self) -> anyhow::Result<UnixStream> {
        match UnixStream::connect(&self.path) {
            Ok(s) => Ok(s),
            Err(e) if self.is_default && !self.autostart_tried.get() && is_not_listening(&e) => {
                self.autostart_tried.set(true);
                if !rustix::process::geteuid().is_root() {
                    return Err(ConnectError(self.display.clone()).into());
                }
                crate::autostart::start_berthd()?;
                UnixStream::connect(&self.path).map_err(|_| ConnectError(self.display.clone()).into())
            }
            Err(_) => Err(ConnectError(self.display.clone()).into()),
        }
    }

    /// Sends a request and returns the response whatever its status.
    pub fn request(&self, method: &str, path: &str, body: Body<'_>) -> anyhow::Result<Response> {
        self.request_with(method, path, body, &[])
    }

    /// [`Client::request`] with extra headers (`X-Registry-Auth`).
    pub fn request_with(
        &self,
        method: &str,
        path: &str,
        body: Body<'_>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Response> {
        let mut sock = self.connect()?;
        if let Err(e) = write_request(&mut sock, method, path, body, headers) {
            // The daemon may answer (an error) before reading a streamed body and close its end:
            // its answer is what the user needs, not the broken pipe.
            if !matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) {
                return Err(e.into());
            }
        }
        let mut rd = BufReader::with_capacity(64 * 1024, sock);
        let (status, headers) = read_head(&mut rd)?;
        Ok(Response::new(status, headers, rd, method == "HEAD"))
    }

    /// Like [`request`](Self::request) but turns a status ≥ 400 into an [`ApiError`].
    pub fn call(&self, method: &str, path: &str, body: Body<'_>) -> anyhow::Result<Response> {
        let resp = self.request(method, path, body)?;
        if resp.status >= 400 {
            return Err(resp.into_error().into());
        }
        Ok(resp)
    }

    /// [`Client::call`] with extra headers.
    pub fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Body<'_>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Response> {
        let resp = self.request_with(method, path, body, headers)?;
        if resp.status >= 400 {
            return Err(resp.into_error().into());
        }
        Ok(resp)
    }

    pub fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        self.call("GET", path, Body::Empty)?.json()
    }

    pub fn post(&self, path: &str) -> anyhow::Result<Response> {
        self.call("POST", path, Body::Empty)
    }

    /// Upgrades the connection to a raw stream. Returns the socket and any bytes the server sent
    /// right after the `101` head.
    pub fn hijack(&self, method: &str, path: &str, body: Body<'_>) -> anyhow::Result<(UnixStream, Vec<u8>)> {
        let mut sock = self.connect()?;
        write_request(
            &mut sock,
            method,
            path,
            body,
            &[("Connection", "Upgrade"), ("Upgrade", "tcp")],
        )?;
        let mut rd = BufReader::new(sock.try_clone()?);
        let (status, headers) = read_head(&mut rd)?;
        if status >= 400 {
            return Err(Response::new(status, headers, rd, false).into_error().into());
        }
        if status != 101 && status != 200 {
            anyhow::bail!("unable to upgrade to tcp, received {status}");
        }
        let leftover = rd.buffer().to_vec();
        Ok((sock, leftover))
    }
}

fn is_not_listening(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
    )
}

fn write_request(
    sock: &mut UnixStream,
    method: &str,
    path: &str,
    body: Body<'_>,
    extra: &[(&str, &str)],
) -> io::Result<()> {
    let mut head = format!(
        "{method} {API_PREFIX}{path} HTTP/1.1\r\nHost: api.moby.localhost\r\nUser-Agent: berth/{} (linux)\r\n",
        env!("CARGO_PKG_VERSION")
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    match body {
        Body::Empty => {
            if method == "POST" || method == "PUT" {
                head.push_str("Content-Length: 0\r\n");
            }
            if extra.iter().any(|(k, _)| *k == "Upgrade") {
                head.push_str("Content-Type: text/plain\r\n");
            }
            head.push_str("\r\n");
            sock.write_all(head.as_bytes())
        }
        Body::Json(b) => {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                b.len()
            ));
            let mut all = head.into_bytes();
            all.extend_from_slice(&b);
            sock.write_all(&all)
        }
        Body::Stream(r, ctype) => {
            head.push_str(&format!(
                "Content-Type: {ctype}\r\nTransfer-Encoding: chunked\r\n\r\n"
            ));
            sock.write_all(head.as_bytes())?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match r.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                let mut chunk = format!("{n:x}\r\n").into_bytes();
                chunk.extend_from_slice(&buf[..n]);
                chunk.extend_from_slice(b"\r\n");
                sock.write_all(&chunk)?;
            }
            sock.write_all(b"0\r\n\r\n")
        }
    }
}

fn read_line<R: BufRead>(rd: &mut R) -> io::Result<String> {
    let mut line = String::new();
    if rd.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed by the daemon",
        ));
    }
    while line.ends_with('\n') || line.ends_with('\r') {
        line.pop();
    }
    Ok(line)
}

fn read_head<R: BufRead>(rd: &mut R) -> anyhow::Result<(u16, Vec<(String, String)>)> {
    let status_line = read_line(rd)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("malformed HTTP status line {status_line:?}"))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(rd)?;
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    Ok((status, headers))
}

enum Framing {
    Length(u64),
    Chunked { left: u64, done: bool },
    Eof,
}

/// A response whose body is read lazily (it may be an endless stream).
pub struct Response {
    pub status: u16,
    headers: Vec<(String, String)>,
    body: BodyReader<BufReader<UnixStream>>,
}

impl Response {
    fn new(status: u16, headers: Vec<(String, String)>, rd: BufReader<UnixStream>, head: bool) -> Response {
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        let framing = if head || status == 204 || status == 304 || status == 101 {
            Framing::Length(0)
        } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            Framing::Chunked { left: 0, done: false }
        } else if let Some(n) = get("content-length").and_then(|v| v.parse().ok()) {
            Framing::Length(n)
        } else {
            Framing::Eof
        };
        Response {
            status,
            body: BodyReader { inner: rd, framing },
            headers,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn bytes(mut self) -> anyhow::Result<Vec<u8>> {
        let mut v = Vec::new();
        self.body.read_to_end(&mut v)?;
        Ok(v)
    }

    pub fn json(self) -> anyhow::Result<serde_json::Value> {
        self.json_as()
    }

    /// The body parsed as `T` (a typed or slimmed view, cheaper than a whole [`serde_json::Value`]).
    pub fn json_as<T: serde::de::DeserializeOwned>(self) -> anyhow::Result<T> {
        let b = self.bytes()?;
        Ok(serde_json::from_slice(&b)?)
    }

    /// The body as a reader (for streams: logs, events, JSON messages).
    pub fn reader(&mut self) -> &mut dyn BufRead {
        &mut self.body
    }

    /// Turns an error response into an [`ApiError`], reading `{"message": …}` as docker does
    /// (only when the Content-Type is exactly `application/json`).
    pub fn into_error(self) -> ApiError {
        let status = self.status;
        let is_json = self.header("content-type") == Some("application/json");
        let body = self.bytes().unwrap_or_default();
        let text = String::from_utf8_lossy(&body).trim().to_owned();
        let message = if is_json {
            serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
                .unwrap_or(text)
        } else if text.is_empty() {
            format!("{} {}", status, reason(status))
        } else {
            text
        };
        ApiError { status, message }
    }
}

fn reason(s: u16) -> &'static str {
    match s {
        400 => "Bad Request",
        404 => "Not Found",
        409 => "Conflict",
        500 => "Internal Server Error",
        _ => "",
    }
}

/// Reads a sized, chunked or close-delimited body.
struct BodyReader<R> {
    inner: R,
    framing: Framing,
}

impl<R: BufRead> Read for BodyReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = {
            let buf = self.fill_buf()?;
            let n = buf.len().min(out.len());
            out[..n].copy_from_slice(&buf[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for BodyReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self.framing {
            Framing::Length(0) => Ok(&[]),
            Framing::Length(n) => {
                let buf = self.inner.fill_buf()?;
                let m = (buf.len() as u64).min(n) as usize;
                Ok(&buf[..m])
            }
            Framing::Eof => self.inner.fill_buf(),
            Framing::Chunked { left, done } => {
                if done {
                    return Ok(&[]);
                }
                let mut left = left;
                if left == 0 {
                    let line = read_line(&mut self.inner)?;
                    let size = line.split(';').next().unwrap_or("").trim();
                    left = u64::from_str_radix(size, 16).map_err(|_| {
                        io::Error::new(io::ErrorKind::InvalidData, format!("bad chunk size {line:?}"))
                    })?;
                    if left == 0 {
                        // Trailers end with an empty line; tolerate a server that just closes.
                        while let Ok(l) = read_line(&mut self.inner) {
                            if l.is_empty() {
                                break;
                            }
                        }
                        self.framing = Framing::Chunked { left: 0, done: true };
                        return Ok(&[]);
                    }
                    self.framing = Framing::Chunked { left, done: false };
                }
                let buf = self.inner.fill_buf()?;
                if buf.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "truncated chunked body",
                    ));
                }
                let m = (buf.len() as u64).min(left) as usize;
                Ok(&buf[..m])
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.inner.consume(n);
        match &mut self.framing {
            Framing::Length(l) => *l -= n as u64,
            Framing::Chunked { left, done } => {
                if n == 0 || *done {
                    return;
                }
                *left -= n as u64;
                if *left == 0 {
                    // The CRLF after each chunk's data.
                    let _ = read_line(&mut self.inner);
                }
            }
            Framing::Eof => {}
        }
    }
}

/// A query string encoded as Go's `url.Values.Encode` does: keys sorted, values in order.
#[derive(Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn new() -> Query {
        Query(Vec::new())
    }
    pub fn add(&mut self, k: &str, v: impl Into<String>) -> &mut Self {
        self.0.push((k.to_owned(), v.into()));
        self
    }
    pub fn flag(&mut self, k: &str, on: bool) -> &mut Self {
        if on {
            self.add(k, "1");
        }
        self
    }
    /// `""` or `?a=1&b=2`.
    pub fn encode(&self) -> String {
        let mut v: Vec<&(String, String)> = self.0.iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        let s: Vec<String> = v
            .iter()
            .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
            .collect();
        if s.is_empty() {
            String::new()
        } else {
            format!("?{}", s.join("&"))
        }
    }
}

/// Go's `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's `url.PathEscape` for one path segment (a container or image name).
pub fn path_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b':'
            | b'@'
            | b'&'
            | b'='
            | b'+'
            | b'$'
            | b'/' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Encodes docker's legacy filter JSON `{"k":{"v":true}}` from `key=value` arguments.
pub fn filters_json(args: &[String]) -> anyhow::Result<Option<String>> {
    if args.is_empty() {
        return Ok(None);
    }
    let mut m: std::collections::BTreeMap<String, std::collections::BTreeMap<String, bool>> =
        Default::default();
    for a in args {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value)"))?;
        m.entry(k.trim().to_lowercase())
            .or_default()
            .insert(v.trim().to_owned(), true);
    }
    Ok(Some(serde_json::to_string(&m)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(framing: Framing, raw: &[u8]) -> Vec<u8> {
        let mut r = BodyReader {
            inner: BufReader::with_capacity(3, raw),
            framing,
        };
        let mut v = Vec::new();
        r.read_to_end(&mut v).unwrap();
        v
    }

    #[test]
    fn chunked_body_is_decoded_across_small_reads() {
        let raw = b"1e\r\n{\"Error\":null,\"StatusCode\":0}\n\r\n3;x=y\r\nabc\r\n0\r\n\r\n";
        assert_eq!(
            body(Framing::Chunked { left: 0, done: false }, raw),
            b"{\"Error\":null,\"StatusCode\":0}\nabc"
        );
    }

    #[test]
    fn sized_body_stops_at_content_length() {
        assert_eq!(body(Framing::Length(4), b"abcdefgh"), b"abcd");
        assert_eq!(body(Framing::Eof, b"abcdefgh"), b"abcdefgh");
    }

    #[test]
    fn query_is_sorted_and_escaped_like_go() {
        let mut q = Query::new();
        q.add("stream", "1")
            .add("stdout", "1")
            .add("stderr", "1")
            .add("repo", "imp1:v1")
            .add("changes", "CMD [\"a b\"]");
        assert_eq!(
            q.encode(),
            "?changes=CMD+%5B%22a+b%22%5D&repo=imp1%3Av1&stderr=1&stdout=1&stream=1"
        );
        assert_eq!(Query::new().encode(), "");
    }

    #[test]
    fn filters_use_the_legacy_map_form() {
        let f = filters_json(&["status=exited".into(), "name=a".into()])
            .unwrap()
            .unwrap();
        assert_eq!(f, r#"{"name":{"a":true},"status":{"exited":true}}"#);
    }
}
