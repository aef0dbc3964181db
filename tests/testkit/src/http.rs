//! A minimal HTTP/1.1 reader and writer on blocking std streams, enough for the test servers and
//! proxies here and for pushing test images: one request per connection (`Connection: close`),
//! bodies by `Content-Length`, `chunked` or end of stream.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A request or response head and its body.
#[derive(Debug, Clone, Default)]
pub struct Message {
    /// Request: `GET /v2/ HTTP/1.1`; response: `HTTP/1.1 200 OK`.
    pub start: String,
    /// Header names as sent, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Message {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Request method.
    pub fn method(&self) -> &str {
        self.start.split(' ').next().unwrap_or("")
    }

    /// Request target (path and query, or an absolute URL for a proxy, or host:port for CONNECT).
    pub fn target(&self) -> &str {
        self.start.split(' ').nth(1).unwrap_or("")
    }

    /// Response status code.
    pub fn status(&self) -> u16 {
        self.start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// Sets (replaces) a header.
    pub fn set_header(&mut self, name: &str, value: &str) {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.to_string()));
    }

    /// Writes the message with a `Content-Length` for its body (unless `head_only_length` is
    /// given: a response to HEAD announces the length of a body it does not send).
    pub fn write_to(&self, w: &mut impl Write, head_only_length: Option<usize>) -> io::Result<()> {
        let mut out = format!("{}\r\n", self.start);
        for (k, v) in &self.headers {
            if k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding") {
                continue;
            }
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        let len = head_only_length.unwrap_or(self.body.len());
        out.push_str(&format!("Content-Length: {len}\r\n\r\n"));
        w.write_all(out.as_bytes())?;
        if head_only_length.is_none() {
            w.write_all(&self.body)?;
        }
        w.flush()
    }
}

/// Reads one message. `is_response_to_head`: the body of a response to HEAD is empty whatever
/// its Content-Length says. Returns `Ok(None)` on a clean end of stream before any byte.
pub fn read_message(r: &mut impl BufRead, is_response_to_head: bool) -> io::Result<Option<Message>> {
    let mut start = String::new();
    if r.read_line(&mut start)? == 0 {
        return Ok(None);
    }
    let mut m = Message {
        start: start.trim_end().to_string(),
        ..Default::default()
    };
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "end of stream in headers",
            ));
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            m.headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let is_response = m.start.starts_with("HTTP/");
    let no_body = is_response_to_head
        || (is_response && matches!(m.status(), 100..=199 | 204 | 304))
        || m.method() == "CONNECT";
    if no_body {
        return Ok(Some(m));
    }
    if m.header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                let mut trailer = String::new();
                while r.read_line(&mut trailer)? > 2 {
                    trailer.clear();
                }
                break;
            }
            let at = m.body.len();
            m.body.resize(at + size, 0);
            r.read_exact(&mut m.body[at..])?;
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf)?;
        }
    } else if let Some(len) = m.header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        m.body.resize(len, 0);
        r.read_exact(&mut m.body)?;
    } else if is_response {
        r.read_to_end(&mut m.body)?;
    }
    Ok(Some(m))
}

/// Sends one request to `addr` (`Connection: close`) and reads the response.
pub fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Message> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut m = Message {
        start: format!("{method} {target} HTTP/1.1"),
        headers: vec![
            ("Host".into(), addr.to_string()),
            ("Connection".into(), "close".into()),
        ],
        body: body.to_vec(),
    };
    for (k, v) in headers {
        m.set_header(k, v);
    }
    m.write_to(&mut s, None)?;
    let mut r = BufReader::new(s);
    read_message(&mut r, method == "HEAD")?
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no response"))
}

/// A response with a status line, headers and body.
pub fn response(status: u16, reason: &str, headers: &[(&str, &str)], body: &[u8]) -> Message {
    Message {
        start: format!("HTTP/1.1 {status} {reason}"),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([("Connection".to_string(), "close".to_string())])
            .collect(),
        body: body.to_vec(),
    }
}
