//! `GET /containers/{id}/logs`: the container's log files (see [`read`]), filtered, optionally
//! followed; and the log configuration ([`config`]).
//!
//! Following: the history is read first; then, each time the output hub says output was
//! written, the [`read::Cursor`] reads on from where it was, across rotations. The run's end is
//! taken from the exit counter *before* each read: the shim has written every record before the
//! daemon learns of the exit, so the read that follows an exit is the last, and `-f` ends with
//! the container (also when it exited while the follower was still catching up, and at once for
//! a container that is not running).

pub(crate) mod config;
pub(crate) mod read;

use std::sync::Arc;

use berth_shim_proto::logfile::{Record, Stream};
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::container::attach::frame;
use crate::error::{Error, Result};
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
    /// `--details`: each line after the record's attributes and a space, as dockerd writes
    /// them; berth's log drivers record no attributes, so the prefix is the space alone.
    pub details: bool,
}

/// Renders records for one client.
struct Sink {
    tx: mpsc::Sender<Bytes>,
    opts: LogsOptions,
    tty: bool,
}

impl Sink {
    /// Sends `r` if the options want it; `false` once the client is gone.
    fn emit(&mut self, r: Record) -> bool {
        match render(&r, &self.opts, self.tty) {
            Some(chunk) => self.tx.blocking_send(chunk).is_ok(),
            None => !self.tx.is_closed(),
        }
    }
}

impl Daemon {
    /// Streams log records into `tx` as API chunks (framed unless the container has a TTY).
    pub fn logs(self: &Arc<Self>, key: &str, opts: LogsOptions) -> Result<mpsc::Receiver<Bytes>> {
        let entry = self.find(key)?;
        let (tty, cfg) = entry.with(|d| (d.config.tty.unwrap_or(false), config::of_doc(d)));
        let Some(path) = config::log_path(&self.bundle(&entry.id), &entry.id, cfg.driver) else {
            return Err(Error::NotImplemented(
                "configured logging driver does not support reading".into(),
            ));
        };
        let set = read::LogSet {
            path,
            driver: cfg.driver,
            max_file: cfg.max_file,
        };
        let mut written = entry.output.written();
        let mut life = entry.life.subscribe();
        let exits = life.borrow_and_update().exits;
        let running = entry.status().is_running();
        let (tx, out) = mpsc::channel(64);
        let follow = opts.follow && running;
        let (tail, since) = (opts.tail, opts.since);
        let mut sink = Sink { tx, opts, tty };
        tokio::spawn(async move {
            let first = tokio::task::spawn_blocking(move || {
                let cursor = read::history(&set, tail, since, &mut |r| sink.emit(r));
                (cursor, sink)
            })
            .await;
            let Ok((Ok(Some(mut cursor)), mut sink)) = first else {
                return;
            };
            if !follow {
                return;
            }
            loop {
                // Seen before reading: a write or an exit during the read wakes the next turn.
                written.borrow_and_update();
                let ended = {
                    let l = life.borrow_and_update();
                    l.exits != exits || l.removed
                };
                let turn = tokio::task::spawn_blocking(move || {
                    let go = cursor.follow(&mut |r| sink.emit(r));
                    (cursor, sink, go)
                })
                .await;
                let Ok((c, s, go)) = turn else { return };
                (cursor, sink) = (c, s);
                if !go || ended {
                    return;
                }
                tokio::select! {
                    r = written.changed() => if r.is_err() { return },
                    r = life.changed() => if r.is_err() { return },
                    _ = sink.tx.closed() => return,
                }
            }
        });
        Ok(out)
    }
}

fn render(r: &Record, opts: &LogsOptions, tty: bool) -> Option<Bytes> {
    let stream = match r.stream {
        Stream::Stdout if opts.stdout => 1u8,
        Stream::Stderr if opts.stderr => 2u8,
        _ => return None,
    };
    if opts.since != 0 && r.time < opts.since {
        return None;
    }
    if opts.until != 0 && r.time > opts.until {
        return None;
    }
    let mut payload = Vec::with_capacity(r.line.len() + 32);
    if opts.timestamps {
        payload.extend_from_slice(berth_types::time::rfc3339_nano_fixed(r.time).as_bytes());
        payload.push(b' ');
    }
    if opts.details {
        payload.push(b' ');
    }
    payload.extend_from_slice(&r.line);
    Some(if tty {
        Bytes::from(payload)
    } else {
        Bytes::from(frame(stream, &payload))
    })
}
