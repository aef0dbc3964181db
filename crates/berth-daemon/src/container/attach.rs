//! Attaching a client stream (an upgraded HTTP connection) to a container's hub: the client's
//! own bounded queue, so a slow client gets back-pressure rather than gaps (see `hub`).
//!
//! The receiver for output is taken when the request arrives, before the `101` goes out, so no
//! output produced after the client's `start` can be missed. Stdin written before the container
//! runs waits in the entry's queue and is delivered at start.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

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
    /// `detachKeys` (docker's `ctrl-p,ctrl-q` syntax); `None` = the default ctrl-p ctrl-q.
    pub detach_keys: Option<String>,
}

/// An attach that has been accepted and subscribed, waiting for its connection.
pub struct PendingAttach {
    daemon: Arc<Daemon>,
    entry: Arc<Entry>,
    rx: mpsc::Receiver<Output>,
    opts: AttachOptions,
    tty: bool,
    keys: Vec<u8>,
}

impl Daemon {
    /// Checks that `key` can be attached to and subscribes to its output.
    pub fn attach(self: &Arc<Self>, key: &str, opts: AttachOptions) -> Result<PendingAttach> {
        let entry = self.find(key)?;
        entry.status().can(Op::Attach, &entry.id)?;
        let keys = parse_detach_keys(
            opts.detach_keys
                .as_deref()
                .filter(|k| !k.is_empty())
                .unwrap_or(berth_types::keys::DEFAULT),
        )?;
        let rx = entry.output.subscribe();
        let tty = entry.with(|d| d.config.tty.unwrap_or(false));
        self.events
            .emit("container", "attach", &entry.id, self.container_attrs(&entry));
        Ok(PendingAttach {
            daemon: self.clone(),
            entry,
            rx,
            opts,
            tty,
            keys,
        })
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
        let PendingAttach {
            daemon,
            entry,
            mut rx,
            opts,
            tty,
            keys,
        } = self;
        let (mut rd, mut wr) = tokio::io::split(io);
        let open_stdin = entry.with(|d| d.config.open_stdin.unwrap_or(false));
        let stdin_once = entry.with(|d| d.config.stdin_once.unwrap_or(false));
        let stdin_tx = entry.stdin_tx.clone();
        let want_stdin = opts.stdin && open_stdin;
        // Client → container. A half-close is not a detach: output keeps flowing. The detach
        // sequence ends this attach and leaves the container running.
        let detached = Arc::new(tokio::sync::Notify::new());
        let detach = detached.clone();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            let mut matched = 0usize;
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        // With StdinOnce the first client to close its stdin closes the
                        // container's. A terminal has no EOF to pass on: its stdin stays open
                        // for the next attach (a client detaching client-side just closes).
                        if want_stdin && stdin_once && !tty {
                            let _ = stdin_tx.send(None);
                        }
                        break;
                    }
                    Ok(n) if want_stdin => {
                        let mut out = Vec::with_capacity(n);
                        for &b in &buf[..n] {
                            if !keys.is_empty() && b == keys[matched] {
                                matched += 1;
                                if matched == keys.len() {
                                    if !out.is_empty() {
                                        let _ = stdin_tx.send(Some(Bytes::from(out)));
                                    }
                                    detach.notify_one();
                                    return;
                                }
                                continue;
                            }
                            // A partial match that fails is ordinary input.
                            out.extend_from_slice(&keys[..matched]);
                            matched = 0;
                            out.push(b);
                        }
                        if !out.is_empty() {
                            let _ = stdin_tx.send(Some(Bytes::from(out)));
                        }
                    }
                    Ok(_) => {}
                }
            }
        });
        loop {
            let next = tokio::select! {
                r = rx.recv() => r,
                _ = detached.notified() => {
                    daemon.events.emit("container", "detach", &entry.id, daemon.container_attrs(&entry));
                    break;
                }
            };
            let (stream, data) = match next {
                Some(Output::Stdout(b)) => (1u8, b),
                Some(Output::Stderr(b)) => (2u8, b),
                Some(Output::Exit) | None => break,
            };
            if (stream == 1 && !opts.stdout) || (stream == 2 && !opts.stderr) {
                continue;
            }
            let res = if tty {
                wr.write_all(&data).await
            } else {
                wr.write_all(&frame(stream, &data)).await
            };
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
            return Err(crate::Error::conflict(format!(
                "Container {} is not running",
                entry.id
            )));
        }
        // A container without a terminal has nothing to resize: no error, as dockerd.
        if !entry.with(|d| d.config.tty.unwrap_or(false)) {
            return Ok(());
        }
        let resp = crate::shim::call(
            &self.shim_socket(&entry.id),
            &berth_shim_proto::Request::Resize { height, width },
        )
        .await?;
        match resp.error {
            Some(e) => Err(crate::Error::internal(format!(
                "cannot resize container {}: {e}",
                entry.id
            ))),
            None => Ok(()),
        }
    }
}

/// Parses a detach-key list, as a 400 naming the keys when it is not valid.
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>> {
    berth_types::keys::parse(s)
        .map_err(|_| crate::Error::invalid(format!("Invalid detach keys ({s}) provided")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_detach_keys_are_a_400() {
        assert_eq!(
            parse_detach_keys("ctrl-pp").unwrap_err().to_string(),
            "Invalid detach keys (ctrl-pp) provided"
        );
    }

    #[test]
    fn frames_have_docker_headers() {
        assert_eq!(
            frame(2, b"err\n"),
            b"\x02\x00\x00\x00\x00\x00\x00\x04err\n".to_vec()
        );
    }
}
