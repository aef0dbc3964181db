//! The daemon's side of the shim protocol (see `berth_shim_proto` for the life of a shim):
//! spawning a shim, talking to it, and the monitor task that relays a running container's output
//! to the hub and records its exit.

use std::io;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use berth_shim_proto::{self as proto, ExitStatus, FrameKind, Ready, Request, Response};
use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::container::{Entry, Output, Status};
use crate::error::{Error, Result};
use crate::Daemon;

/// A shim started ahead of its bundle files: it loads while the daemon writes them, and
/// does nothing until [`Spawned::go`]. Dropped without `go`, it exits (EOF on its stdin).
pub(crate) struct Spawned {
    go: tokio::process::ChildStdin,
    ready: tokio::process::ChildStdout,
}

/// Starts `berth-shim --bundle <bundle>` in its own process group, waiting for [`Spawned::go`].
pub(crate) fn spawn_waiting(shim_path: &Path, bundle: &Path) -> Result<Spawned> {
    let mut child = tokio::process::Command::new(shim_path)
        .arg("--bundle")
        .arg(bundle)
        .env(proto::WAIT_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| Error::shim(format!("failed to start shim {}", shim_path.display()), e))?;
    let go = child.stdin.take().expect("piped stdin");
    let ready = child.stdout.take().expect("piped stdout");
    // The shim lives on after it reports; reap it whenever it exits.
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    Ok(Spawned { go, ready })
}

impl Spawned {
    /// Lets the shim read its bundle and create the container; waits for its `Ready` line.
    pub(crate) async fn go(self) -> Result<Ready> {
        let Spawned { mut go, ready } = self;
        go.write_all(b"g")
            .await
            .map_err(|e| Error::shim("failed to start shim", e))?;
        drop(go);
        read_ready(ready).await
    }
}

async fn read_ready(stdout: tokio::process::ChildStdout) -> Result<Ready> {
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .await
        .map_err(|e| Error::shim("failed to read from shim", e))?;
    if line.trim().is_empty() {
        return Err(Error::internal(
            "shim exited before reporting; see runtime.log in the container directory",
        ));
    }
    serde_json::from_str(line.trim()).map_err(|e| {
        Error::shim(
            "bad ready line from shim",
            io::Error::new(io::ErrorKind::InvalidData, e),
        )
    })
}

pub(crate) async fn write_frame(
    w: &mut (impl AsyncWriteExt + Unpin),
    kind: FrameKind,
    payload: &[u8],
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(5 + payload.len());
    buf.extend_from_slice(&proto::header(kind, payload.len()));
    buf.extend_from_slice(payload);
    w.write_all(&buf).await
}

pub(crate) async fn read_frame(
    r: &mut (impl AsyncReadExt + Unpin),
) -> std::io::Result<Option<(FrameKind, Vec<u8>)>> {
    let mut h = [0u8; 5];
    match r.read_exact(&mut h).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let (kind, len) = proto::parse_header(h)?;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(Some((kind, payload)))
}

/// Sends one request on a connection and reads the response.
pub(crate) async fn request(stream: &mut UnixStream, req: &Request) -> std::io::Result<Response> {
    let body = serde_json::to_vec(req).map_err(std::io::Error::other)?;
    write_frame(stream, FrameKind::Request, &body).await?;
    match read_frame(stream).await? {
        Some((FrameKind::Response, body)) => serde_json::from_slice(&body).map_err(std::io::Error::other),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "shim sent no response",
        )),
    }
}

/// One request on a fresh connection.
pub(crate) async fn call(socket: &Path, req: &Request) -> Result<Response> {
    let mut s = UnixStream::connect(socket)
        .await
        .map_err(|e| Error::shim(format!("cannot reach shim at {}", socket.display()), e))?;
    let resp = request(&mut s, req)
        .await
        .map_err(|e| Error::shim("shim request failed", e))?;
    Ok(resp)
}

/// The pid of the shim answering on `socket` (the kernel's `SO_PEERCRED`), for reaching the
/// rootfs it mounted in its own mount namespace (`/proc/<pid>/root/<bundle>/rootfs`).
pub(crate) async fn pid(socket: &Path) -> Result<i32> {
    let mut s = UnixStream::connect(socket)
        .await
        .map_err(|e| Error::shim(format!("cannot reach shim at {}", socket.display()), e))?;
    let pid = s
        .peer_cred()
        .map_err(|e| Error::shim("cannot read the shim's credentials", e))?
        .pid()
        .ok_or_else(|| Error::shim("the shim has no pid", io::Error::other("no SO_PEERCRED pid")))?;
    request(&mut s, &Request::State)
        .await
        .map_err(|e| Error::shim("shim request failed", e))?;
    Ok(pid)
}

/// Opens the attach stream the monitor relays (the daemon holds one per running container).
pub(crate) async fn attach(socket: &Path, stdin: bool) -> Result<UnixStream> {
    let mut s = UnixStream::connect(socket)
        .await
        .map_err(|e| Error::shim(format!("cannot reach shim at {}", socket.display()), e))?;
    let resp = request(&mut s, &Request::Attach { stdin })
        .await
        .map_err(|e| Error::shim("attach to shim failed", e))?;
    if let Some(e) = resp.error {
        return Err(Error::shim("attach to shim failed", io::Error::other(e)));
    }
    Ok(s)
}

/// Relays a run's output to the hub, feeds it stdin, and records the exit when it comes.
pub(crate) fn monitor(daemon: Arc<Daemon>, entry: Arc<Entry>, stream: UnixStream) {
    tokio::spawn(async move {
        let (mut rd, mut wr) = stream.into_split();
        let stdin_rx = entry.stdin_rx.clone();
        let feeder = tokio::spawn(async move {
            let mut rx = stdin_rx.lock().await;
            while let Some(chunk) = rx.recv().await {
                let payload = chunk.unwrap_or_default();
                if write_frame(&mut wr, FrameKind::Stdin, &payload).await.is_err() {
                    break;
                }
            }
        });
        let mut status: Option<ExitStatus> = None;
        // The shim writes the exit file before it sends the last frames: from then on a client
        // that takes nothing may be cut off (see container::hub).
        let exit_file = daemon.bundle(&entry.id).join("exit.json");
        let run_over = || exit_file.exists();
        loop {
            match read_frame(&mut rd).await {
                Ok(Some((FrameKind::Stdout, b))) => {
                    entry
                        .output
                        .publish(Output::Stdout(Bytes::from(b)), run_over)
                        .await;
                }
                Ok(Some((FrameKind::Stderr, b))) => {
                    entry
                        .output
                        .publish(Output::Stderr(Bytes::from(b)), run_over)
                        .await;
                }
                Ok(Some((FrameKind::Exit, b))) => {
                    status = serde_json::from_slice(&b).ok();
                    break;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        feeder.abort();
        let _ = feeder.await;
        let status = match status {
            Some(s) => s,
            None => read_exit_file(&daemon.bundle(&entry.id))
                .await
                .unwrap_or_else(|| ExitStatus {
                    exit_code: 255,
                    finished_at: berth_types::time::rfc3339_nano(berth_types::time::now_nanos()),
                    oom_killed: false,
                    error: Some("container monitor (berth-shim) exited without reporting a status".into()),
                }),
        };
        daemon.handle_exit(&entry, status).await;
    });
}

pub(crate) async fn read_exit_file(bundle: &Path) -> Option<ExitStatus> {
    let b = tokio::fs::read(bundle.join("exit.json")).await.ok()?;
    serde_json::from_slice(&b).ok()
}

impl Daemon {
    /// Records an exit: state, database, `die` event, waiters, and `--rm`.
    pub(crate) async fn handle_exit(self: &Arc<Self>, entry: &Arc<Entry>, status: ExitStatus) {
        berth_sys::times::mark("d-exit");
        // Queued before the state says exited: a start that follows takes them back first.
        if let Some(dirs) = self.cgroup(entry).dirs() {
            self.reaper.put(&entry.id, dirs.clone());
        }
        let finished = berth_types::time::parse_rfc3339(&status.finished_at)
            .unwrap_or_else(berth_types::time::now_nanos);
        // The network goes before the state says exited: whoever sees the exit may start the
        // container again, and its endpoint must be free by then.
        self.net_release(entry).await;
        entry.update(|d| {
            d.state.status = Status::Exited;
            d.state.pid = 0;
            d.state.exit_code = status.exit_code as i64;
            d.state.finished_at = finished;
            d.state.oom_killed = status.oom_killed;
            d.state.error = status.error.clone().unwrap_or_default();
        });
        berth_sys::failpoint::hit("container.exit.before-record");
        if let Err(e) = self.persist(entry) {
            eprintln!("berthd: failed to record exit of {}: {e}", entry.id);
        }
        entry.output.end_run();
        let mut attrs = self.container_attrs(entry);
        attrs.insert("exitCode".into(), status.exit_code.to_string());
        self.events.emit("container", "die", &entry.id, attrs);
        self.release_mounts(entry).await;
        entry.life.send_modify(|l| {
            l.exits += 1;
            l.exit_code = status.exit_code as i64;
        });
        berth_sys::times::mark("d-exit-recorded");
        self.after_exit(entry.clone());
    }

    /// What follows an exit: removal for `--rm`, or a restart the policy asks for.
    fn after_exit(self: &Arc<Self>, entry: Arc<Entry>) {
        let auto_remove = entry.with(|d| d.host_config.auto_remove.unwrap_or(false));
        let code = entry.with(|d| d.state.exit_code);
        if !auto_remove && self.should_restart(&entry, code) {
            self.schedule_restart(entry);
            return;
        }
        if auto_remove {
            let daemon = self.clone();
            tokio::spawn(async move {
                if let Err(e) = daemon.remove_entry(&entry, false, true).await {
                    if e.kind() != berth_types::ErrorKind::NotFound {
                        eprintln!("berthd: failed to auto-remove {}: {e}", entry.id);
                    }
                }
            });
        }
    }

    /// A shim killed on its own leaves its container running, unwatched: kill what is left in
    /// its cgroup, so the record (exited) and the machine agree and a restart runs one copy.
    pub(crate) fn kill_orphans(&self, entry: &Entry) {
        for pid in self.cgroup(entry).pids() {
            let _ = berth_sys::process::kill(pid, 9);
        }
    }

    /// Reconnects to the shim of a container recorded as running, or records its exit if the shim
    /// is gone (the container ended while no daemon was watching, the shim was killed, or the
    /// machine rebooted). A shim that never got `Start` (the daemon stopped mid-start) is told to
    /// start now: the record already says running.
    pub(crate) async fn restore(self: &Arc<Self>, entry: Arc<Entry>) {
        let socket = self.shim_socket(&entry.id);
        let open_stdin = entry.with(|d| d.config.open_stdin.unwrap_or(false));
        match attach(&socket, open_stdin).await {
            Ok(stream) => {
                let state = call(&socket, &Request::State).await.ok();
                let recorded = entry.with(|d| d.state.pid);
                if let Some(pid) = state.as_ref().and_then(|s| s.pid) {
                    entry.update(|d| d.state.pid = pid as i64);
                }
                // The record is rewritten (one transaction, an fsync) only when it changed: a
                // restart with a thousand running containers must not cost a thousand fsyncs.
                let mut changed = entry.with(|d| d.state.pid) != recorded;
                monitor(self.clone(), entry.clone(), stream);
                if state.and_then(|s| s.status).as_deref() == Some("created") {
                    match call(&socket, &Request::Start).await {
                        Ok(r) if r.error.is_none() => {
                            changed = true;
                            self.start_health(&entry);
                        }
                        Ok(r) => eprintln!(
                            "berthd: finishing the start of {}: {}",
                            entry.id,
                            r.error.unwrap_or_default()
                        ),
                        Err(e) => eprintln!("berthd: finishing the start of {}: {e}", entry.id),
                    }
                }
                if changed {
                    if let Err(e) = self.persist(&entry) {
                        eprintln!("berthd: failed to record restored container {}: {e}", entry.id);
                    }
                }
            }
            Err(_) => {
                let bundle = self.bundle(&entry.id);
                self.kill_orphans(&entry);
                let never_started = entry.with(|d| d.state.pid == 0);
                let status = read_exit_file(&bundle).await.unwrap_or_else(|| ExitStatus {
                    exit_code: if never_started { 128 } else { 255 },
                    finished_at: berth_types::time::rfc3339_nano(berth_types::time::now_nanos()),
                    oom_killed: false,
                    error: Some(if never_started {
                        "berthd stopped while starting the container".into()
                    } else {
                        "container monitor (berth-shim) is gone and left no exit status".into()
                    }),
                });
                let _ = berth_sys::mount::unmount(&bundle.join("rootfs"));
                let _ = tokio::fs::remove_file(&socket).await;
                self.handle_exit(&entry, status).await;
            }
        }
    }
}
