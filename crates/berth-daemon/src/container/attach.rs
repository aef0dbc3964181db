//! Attaching a client stream (an upgraded HTTP connection) to a container's hub.
//!
//! The receiver for output is taken when the request arrives, before the `101` goes out, so no
//! output produced after the client's `start` can be missed. Stdin written before the container
//! runs waits in the entry's queue and is delivered at start.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::broadcast;

use crate::container::{Entry, Op, Output};
use crate::error::Result;
use crate::Daemon;

#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    pub stream: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub logs: bool,
}

/// An attach that has been accepted and subscribed, waiting for its connection.
pub struct PendingAttach {
    daemon: Arc<Daemon>,
    entry: Arc<Entry>,
    rx: broadcast::Receiver<Output>,
    opts: AttachOptions,
    tty: bool,
}

impl Daemon {
    /// Checks that `key` can be attached to and subscribes to its output.
    pub fn attach(self: &Arc<Self>, key: &str, opts: AttachOptions) -> Result<PendingAttach> {
        let entry = self.find(key)?;
        entry.status().can(Op::Attach, &entry.id)?;
        let rx = entry.output.subscribe();
        let tty = entry.with(|d| d.config.tty.unwrap_or(false));
        self.events.emit("container", "attach", &entry.id, self.container_attrs(&entry));
        Ok(PendingAttach { daemon: self.clone(), entry, rx, opts, tty })
    }

    /// Whether the container was created with a TTY (raw streams) or not (multiplexed frames).
    pub fn is_tty(&self, key: &str) -> Result<bool> {
        Ok(self.find(key)?.with(|d| d.config.tty.unwrap_or(false)))
    }
}

/// Frames a chunk as docker's stdcopy does: `[stream][0,0,0][len u32 BE][payload]`.
pub fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + payload.len());
    v.push(stream);
    v.extend_from_slice(&[0, 0, 0]);
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

impl PendingAttach {
    /// Runs the attach over `io` until the container's run ends (or the client goes away).
    pub async fn run<T>(self, io: T)
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let PendingAttach { daemon: _daemon, entry, mut rx, opts, tty } = self;
        let (mut rd, mut wr) = tokio::io::split(io);
        let open_stdin = entry.with(|d| d.config.open_stdin.unwrap_or(false));
        let stdin_once = entry.with(|d| d.config.stdin_once.unwrap_or(false));
        let stdin_tx = entry.stdin_tx.clone();
        let want_stdin = opts.stdin && open_stdin;
        // Client → container. A half-close is not a detach: output keeps flowing.
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        if want_stdin && stdin_once {
                            let _ = stdin_tx.send(None);
                        }
                        break;
                    }
                    Ok(n) => {
                        if want_stdin {
                            let _ = stdin_tx.send(Some(Bytes::copy_from_slice(&buf[..n])));
                        }
                    }
                }
            }
        });
        loop {
            let (stream, data) = match rx.recv().await {
                Ok(Output::Stdout(b)) => (1u8, b),
                Ok(Output::Stderr(b)) => (2u8, b),
                Ok(Output::Exit) => break,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            };
            if (stream == 1 && !opts.stdout) || (stream == 2 && !opts.stderr) {
                continue;
            }
            let res = if tty { wr.write_all(&data).await } else { wr.write_all(&frame(stream, &data)).await };
            if res.is_err() {
                break;
            }
        }
        let _ = wr.flush().await;
        let _ = wr.shutdown().await;
        reader.abort();
    }
}

impl Daemon {
    /// `POST /containers/{id}/resize`: the pty's window size.
    pub async fn resize(self: &Arc<Self>, key: &str, height: u16, width: u16) -> Result<()> {
        let entry = self.find(key)?;
        if !entry.status().is_running() {
            return Err(crate::Error::conflict(format!("Container {} is not running", entry.id)));
        }
        let resp = crate::shim::call(&self.shim_socket(&entry.id), &berth_shim_proto::Request::Resize { height, width })
            .await?;
        match resp.error {
            Some(e) => Err(crate::Error::internal(format!("cannot resize container {}: {e}", entry.id))),
            None => Ok(()),
        }
    }
}
