//! Small HTTP middlemen for tests: a fault-injecting reverse proxy in front of a registry
//! (corrupts or truncates the response for one path), a forward proxy (CONNECT tunnels and
//! absolute-form requests) that logs what it carried, and a static file server.

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::http::{read_message, response, Message};
use crate::server::Server;

/// What the fault proxy does to a matching response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Flip one byte in the middle of the body (the length stays right).
    Corrupt,
    /// Announce the full length, send only the first half, close.
    Truncate,
    /// Send the body with one extra byte appended (and a matching Content-Length).
    Extend,
    /// Answer the first `n` matching requests (any method) with this status and no body, then
    /// pass them through.
    FailFirst(u32, u16),
}

/// A reverse proxy in front of `upstream` that applies a fault to successful GETs whose path
/// contains a needle. Every other request passes untouched; `Host` is kept, so the registry's
/// Location headers point back at the proxy.
pub struct FaultProxy {
    server: Server,
    hits: Arc<Mutex<u32>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl FaultProxy {
    pub fn start(upstream: SocketAddr, needle: &str, fault: Fault) -> FaultProxy {
        let hits = Arc::new(Mutex::new(0));
        let log = Arc::new(Mutex::new(vec![]));
        let needle = needle.to_string();
        let server = {
            let (hits, log) = (hits.clone(), log.clone());
            Server::start(move |conn| {
                let _ = fault_one(conn, upstream, &needle, fault, &hits, &log);
            })
        };
        FaultProxy { server, hits, log }
    }

    /// A proxy that only forwards (and logs): no fault.
    pub fn passthrough(upstream: SocketAddr) -> FaultProxy {
        FaultProxy::start(upstream, "\u{0}never", Fault::Corrupt)
    }

    /// Every request it saw, as `METHOD target`.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// How many responses it damaged.
    pub fn hits(&self) -> u32 {
        *self.hits.lock().unwrap()
    }
}

fn fault_one(
    conn: TcpStream,
    upstream: SocketAddr,
    needle: &str,
    fault: Fault,
    hits: &Mutex<u32>,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    let Some(mut req) = read_message(&mut r, false)? else {
        return Ok(());
    };
    log.lock()
        .unwrap()
        .push(format!("{} {}", req.method(), req.target()));
    if let Fault::FailFirst(n, status) = fault {
        if req.target().contains(needle) {
            let mut h = hits.lock().unwrap();
            if *h < n {
                *h += 1;
                drop(h);
                return response(status, "Injected", &[("Retry-After", "0")], b"").write_to(&mut w, None);
            }
        }
    }
    req.set_header("Connection", "close");
    let mut up = TcpStream::connect(upstream)?;
    req.write_to(&mut up, None)?;
    let is_head = req.method() == "HEAD";
    let mut resp = read_message(&mut BufReader::new(up), is_head)?
        .ok_or_else(|| std::io::Error::other("no response upstream"))?;
    resp.set_header("Connection", "close");
    if is_head {
        let len = resp
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        return resp.write_to(&mut w, Some(len));
    }
    if !matches!(fault, Fault::FailFirst(..))
        && req.method() == "GET"
        && req.target().contains(needle)
        && resp.status() == 200
        && !resp.body.is_empty()
    {
        *hits.lock().unwrap() += 1;
        match fault {
            Fault::Corrupt => {
                let mid = resp.body.len() / 2;
                resp.body[mid] ^= 0xff;
            }
            Fault::Extend => resp.body.push(b'!'),
            Fault::FailFirst(..) => unreachable!("handled before forwarding"),
            Fault::Truncate => {
                let full = resp.body.len();
                let mut head = format!("{}\r\n", resp.start);
                for (k, v) in &resp.headers {
                    if !k.eq_ignore_ascii_case("content-length")
                        && !k.eq_ignore_ascii_case("transfer-encoding")
                    {
                        head.push_str(&format!("{k}: {v}\r\n"));
                    }
                }
                head.push_str(&format!("Content-Length: {full}\r\n\r\n"));
                w.write_all(head.as_bytes())?;
                w.write_all(&resp.body[..full / 2])?;
                w.flush()?;
                return w.shutdown(std::net::Shutdown::Both);
            }
        }
    }
    resp.write_to(&mut w, None)
}

/// A forward proxy: `CONNECT host:port` tunnels and absolute-form `GET http://…` requests, each
/// logged (`CONNECT 10.0.0.2:5000`, `GET http://…`).
pub struct ForwardProxy {
    server: Server,
    log: Arc<Mutex<Vec<String>>>,
}

impl ForwardProxy {
    pub fn start() -> ForwardProxy {
        let log = Arc::new(Mutex::new(vec![]));
        let server = {
            let log = log.clone();
            Server::start(move |conn| {
                let _ = forward_one(conn, &log);
            })
        };
        ForwardProxy { server, log }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// What it carried, in order.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16384];
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
    let _ = to.shutdown(std::net::Shutdown::Write);
}

fn forward_one(conn: TcpStream, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn.try_clone()?);
    while let Some(mut req) = read_message(&mut r, false)? {
        log.lock()
            .unwrap()
            .push(format!("{} {}", req.method(), req.target()));
        if req.method() == "CONNECT" {
            let up = match TcpStream::connect(req.target()) {
                Ok(up) => up,
                Err(_) => return response(502, "Bad Gateway", &[], b"").write_to(&mut w, None),
            };
            w.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
            // Anything the client sent after the CONNECT head is still in the BufReader.
            let buffered = r.buffer().to_vec();
            let mut up_w = up.try_clone()?;
            up_w.write_all(&buffered)?;
            let up_r = up.try_clone()?;
            let t = std::thread::spawn(move || pipe(up_r, w));
            pipe(conn, up);
            let _ = t.join();
            return Ok(());
        }
        let target = req.target().to_string();
        let Some(rest) = target.strip_prefix("http://") else {
            return response(400, "Bad Request", &[], b"not a proxy request").write_to(&mut w, None);
        };
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        req.start = format!("{} {} HTTP/1.1", req.method(), path);
        req.set_header("Connection", "close");
        req.headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("proxy-authorization"));
        let mut up = TcpStream::connect(host)?;
        req.write_to(&mut up, None)?;
        let is_head = req.method() == "HEAD";
        let mut resp: Message = read_message(&mut BufReader::new(up), is_head)?
            .ok_or_else(|| std::io::Error::other("no response upstream"))?;
        resp.set_header("Connection", "keep-alive");
        let len = resp
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        resp.write_to(&mut w, is_head.then_some(len))?;
    }
    Ok(())
}

/// Serves fixed bodies at fixed paths (GET and HEAD), with `Last-Modified`, and counts requests.
pub struct FileServer {
    server: Server,
    count: Arc<Mutex<u32>>,
}

impl FileServer {
    /// `files`: (path, body, Last-Modified value or None).
    pub fn start(files: Vec<(String, Vec<u8>, Option<String>)>) -> FileServer {
        let count = Arc::new(Mutex::new(0));
        let server = {
            let count = count.clone();
            Server::start(move |conn| {
                let Ok(mut w) = conn.try_clone() else { return };
                let mut r = BufReader::new(conn);
                let Ok(Some(req)) = read_message(&mut r, false) else {
                    return;
                };
                *count.lock().unwrap() += 1;
                let path = req.target().split('?').next().unwrap_or("");
                let resp = match files.iter().find(|(p, _, _)| p == path) {
                    Some((_, body, lm)) => {
                        let mut h = vec![("Content-Type", "application/octet-stream")];
                        if let Some(lm) = lm {
                            h.push(("Last-Modified", lm));
                        }
                        response(200, "OK", &h, body)
                    }
                    None => response(404, "Not Found", &[], b"404 page not found\n"),
                };
                let head = (req.method() == "HEAD").then_some(resp.body.len());
                let _ = resp.write_to(&mut w, head);
            })
        };
        FileServer { server, count }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn requests(&self) -> u32 {
        *self.count.lock().unwrap()
    }
}
