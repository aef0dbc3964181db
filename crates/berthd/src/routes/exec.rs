use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use berth_daemon::container::ExecStartOptions;
use berth_daemon::{Daemon, Error};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use crate::http::{self, Body, Query};

pub async fn create(d: &Arc<Daemon>, req: Request<Incoming>, id: &str) -> Result<Response<Body>, Error> {
    let body = http::read_body(req.into_body()).await?;
    let config: berth_api::models::ExecConfig = http::parse_json(&body)?;
    let exec_id = d.exec_create(id, config)?;
    Ok(http::json(
        StatusCode::CREATED,
        &serde_json::json!({ "Id": exec_id }),
    ))
}

#[derive(serde::Deserialize, Default)]
struct StartBody {
    #[serde(rename = "Detach", default)]
    detach: bool,
    #[serde(rename = "Tty", default)]
    tty: bool,
    #[serde(rename = "ConsoleSize", default)]
    console_size: Option<Vec<u16>>,
}

/// Reads the body first, then answers `101` (or `200` when detached) and runs the exec.
pub async fn start(d: &Arc<Daemon>, mut req: Request<Incoming>, id: &str) -> Result<Response<Body>, Error> {
    let on_upgrade = hyper::upgrade::on(&mut req);
    let body = http::read_body(req.into_body()).await?;
    let body: StartBody = http::parse_json(&body)?;
    let console_size = match body.console_size.as_deref() {
        Some([h, w]) if *h > 0 && *w > 0 => Some((*h, *w)),
        _ => None,
    };
    let pending = d.exec_start(
        id,
        ExecStartOptions {
            detach: body.detach,
            tty: body.tty,
            console_size,
        },
    )?;
    if body.detach {
        // Output goes nowhere; the exec runs to completion in the background.
        let (sink, mut drain) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut drain, &mut tokio::io::sink()).await;
        });
        tokio::spawn(pending.run(sink));
        return Ok(http::empty(StatusCode::OK));
    }
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(up) => match up.downcast::<TokioIo<UnixStream>>() {
                Ok(parts) => {
                    let stream = parts.io.into_inner();
                    pending.run(ReadAhead::new(parts.read_buf, stream)).await
                }
                Err(up) => pending.run(TokioIo::new(up)).await,
            },
            Err(e) => eprintln!("berthd: exec upgrade failed: {e}"),
        }
    });
    Ok(http::upgraded())
}

/// A client that writes before it reads (stdin first) has its first output held back by this
/// much at most.
const HEADERS_READ_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// The hijacked connection: what hyper had already read from the client, then the socket.
///
/// Its first write waits (at most [`HEADERS_READ_WAIT`]) until the client has read the `101`
/// response. docker-py reads the response head through a buffered reader and then switches to
/// the raw socket: output that arrived with the head sits in that buffer and is lost (its
/// `exec_run` returned nothing, or a tty's first bytes went missing). The kernel tells a Unix
/// socket's writer nothing when its peer reads, so the wait polls `SIOCOUTQ` every millisecond.
/// Only output waits: the process starts at once, and by the time it has written, the client has
/// nearly always read the head.
struct ReadAhead {
    buf: bytes::Bytes,
    io: UnixStream,
    /// Until when the first write may wait for the client to read the head; `None` once it has.
    head_by: Option<tokio::time::Instant>,
    nap: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl ReadAhead {
    fn new(buf: bytes::Bytes, io: UnixStream) -> Self {
        ReadAhead {
            buf,
            io,
            head_by: Some(tokio::time::Instant::now() + HEADERS_READ_WAIT),
            nap: None,
        }
    }

    /// Ready once the client has read what was written before the first write (or the wait is
    /// over).
    fn poll_head_read(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        use std::future::Future;
        use std::os::fd::AsFd;
        while let Some(by) = self.head_by {
            let unread = matches!(berth_sys::fd::unread_by_peer(self.io.as_fd()), Ok(n) if n > 0);
            if !unread || tokio::time::Instant::now() >= by {
                self.head_by = None;
                self.nap = None;
                break;
            }
            let nap = self
                .nap
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(std::time::Duration::from_millis(1))));
            std::task::ready!(nap.as_mut().poll(cx));
            self.nap = None;
        }
        Poll::Ready(())
    }
}

impl tokio::io::AsyncRead for ReadAhead {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.buf.is_empty() {
            let n = self.buf.len().min(out.remaining());
            let chunk = self.buf.split_to(n);
            out.put_slice(&chunk);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, out)
    }
}

impl tokio::io::AsyncWrite for ReadAhead {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<std::io::Result<usize>> {
        std::task::ready!(self.poll_head_read(cx));
        Pin::new(&mut self.io).poll_write(cx, b)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

pub fn inspect(d: &Arc<Daemon>, id: &str) -> Result<Response<Body>, Error> {
    Ok(http::json(StatusCode::OK, &d.exec_inspect(id)?))
}

pub async fn resize(d: &Arc<Daemon>, id: &str, q: &Query) -> Result<Response<Body>, Error> {
    let h = q.int("h")?.unwrap_or(0);
    let w = q.int("w")?.unwrap_or(0);
    d.exec_resize(id, h as u16, w as u16).await?;
    Ok(http::empty(StatusCode::OK))
}
