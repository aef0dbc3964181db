//! `GET /containers/{id}/logs`: the json-file log the shim writes, filtered, optionally followed.
//!
//! Following subscribes to the container's output hub *before* reading the file; each output
//! chunk is only a wake-up to read the file on from the last offset, so nothing is missed or
//! duplicated, and no polling happens.

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::container::attach::frame;
use crate::error::Result;
use crate::Daemon;

#[derive(Debug, Clone, Default)]
pub struct LogsOptions {
    pub follow: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Unix nanoseconds; 0 = no bound.
    pub since: i64,
    pub until: i64,
    pub timestamps: bool,
    /// `None` = all.
    pub tail: Option<usize>,
}

#[derive(Deserialize)]
struct Line {
    log: String,
    stream: String,
    time: String,
}

impl Daemon {
    /// Streams log records into `tx` as API chunks (framed unless the container has a TTY).
    pub fn logs(self: &Arc<Self>, key: &str, opts: LogsOptions) -> Result<mpsc::Receiver<Bytes>> {
        let entry = self.find(key)?;
        let tty = entry.with(|d| d.config.tty.unwrap_or(false));
        let path = self.bundle(&entry.id).join(format!("{}-json.log", entry.id));
        let mut written = entry.output.written();
        let mut life = entry.life.subscribe();
        let exits = life.borrow_and_update().exits;
        let running = entry.status().is_running();
        let (tx, out) = mpsc::channel(64);
        tokio::spawn(async move {
            let mut file = tokio::fs::File::open(&path).await.ok();
            let mut pending = Vec::new();
            let mut first = true;
            loop {
                if let Some(f) = file.as_mut() {
                    let mut buf = Vec::new();
                    if f.read_to_end(&mut buf).await.is_ok() {
                        pending.extend_from_slice(&buf);
                    }
                } else if let Ok(f) = tokio::fs::File::open(&path).await {
                    file = Some(f);
                    continue;
                }
                // Only complete lines; keep a partial tail for the next read.
                let cut = pending
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map(|i| i + 1)
                    .unwrap_or(0);
                let complete: Vec<u8> = pending.drain(..cut).collect();
                let mut records: Vec<Line> = complete
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .filter_map(|l| serde_json::from_slice(l).ok())
                    .collect();
                if first {
                    if let Some(n) = opts.tail {
                        let skip = records.len().saturating_sub(n);
                        records.drain(..skip);
                    }
                    first = false;
                }
                for r in records {
                    if let Some(chunk) = render(&r, &opts, tty) {
                        if tx.send(chunk).await.is_err() {
                            return;
                        }
                    }
                }
                if !opts.follow || !running {
                    return;
                }
                let ended = life.borrow().exits != exits;
                if ended {
                    // One last read for what the shim wrote before the exit.
                    if let Some(f) = file.as_mut() {
                        let mut buf = Vec::new();
                        let _ = f.read_to_end(&mut buf).await;
                        pending.extend_from_slice(&buf);
                    }
                    let records: Vec<Line> = pending
                        .split(|&b| b == b'\n')
                        .filter(|l| !l.is_empty())
                        .filter_map(|l| serde_json::from_slice(l).ok())
                        .collect();
                    for r in records {
                        if let Some(chunk) = render(&r, &opts, tty) {
                            let _ = tx.send(chunk).await;
                        }
                    }
                    return;
                }
                tokio::select! {
                    _ = written.changed() => {}
                    _ = life.changed() => {}
                }
            }
        });
        Ok(out)
    }
}

fn render(r: &Line, opts: &LogsOptions, tty: bool) -> Option<Bytes> {
    let stream = match r.stream.as_str() {
        "stdout" if opts.stdout => 1u8,
        "stderr" if opts.stderr => 2u8,
        _ => return None,
    };
    if opts.since != 0 || opts.until != 0 || opts.timestamps {
        let t = berth_types::time::parse_rfc3339(&r.time).unwrap_or(0);
        if opts.since != 0 && t < opts.since {
            return None;
        }
        if opts.until != 0 && t > opts.until {
            return None;
        }
    }
    let mut payload = Vec::with_capacity(r.log.len() + 32);
    if opts.timestamps {
        let t = berth_types::time::parse_rfc3339(&r.time).unwrap_or(0);
        payload.extend_from_slice(berth_types::time::rfc3339_nano_fixed(t).as_bytes());
        payload.push(b' ');
    }
    payload.extend_from_slice(r.log.as_bytes());
    Some(if tty {
        Bytes::from(payload)
    } else {
        Bytes::from(frame(stream, &payload))
    })
}
