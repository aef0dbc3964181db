//! The daemon's side of the shim protocol (see `berth_shim_proto` for the life of a shim):
//! spawning a shim, talking to it, and the monitor task that relays a running container's output
//! to the hub and records its exit.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
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
    go: Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
    ready: Box<dyn tokio::io::AsyncRead + Unpin + Send>,
}

/// The daemon's spawner (`berth_sys::spawn`): `berth-shim --spawner`, started while the daemon
/// holds few descriptors, starts the shims, so a start does not copy and close the daemon's
/// socket and pidfd of every running container. Restarted once if it has gone; when it cannot
/// run at all, shims are started directly.
pub(crate) struct Spawner {
    shim_path: std::path::PathBuf,
    client: std::sync::Mutex<Option<berth_sys::spawn::Client>>,
    /// `BERTH_SPAWNER=off` in berthd's environment: every shim is started directly (to compare).
    off: bool,
}

impl Spawner {
    /// Starts the spawner now, while the daemon's descriptor table is small (a failure is
    /// retried at the first start).
    pub(crate) fn new(shim_path: &Path) -> Self {
        let s = Spawner {
            shim_path: shim_path.to_path_buf(),
            client: std::sync::Mutex::new(None),
            off: std::env::var("BERTH_SPAWNER").is_ok_and(|v| v == "off"),
        };
        if s.off {
            return s;
        }
        match s.start() {
            Ok(c) => *s.client.lock().unwrap() = Some(c),
            Err(e) => {
                eprintln!("berthd: cannot start the shim spawner ({e}); trying again at the first start")
            }
        }
        s
    }

    fn start(&self) -> io::Result<berth_sys::spawn::Client> {
        let (client, mut child) = berth_sys::spawn::Client::start(&self.shim_path, &["--spawner"])?;
        // Reaped when it exits (at the daemon's exit, or if it fails).
        std::thread::Builder::new()
            .name("berth-spawner-wait".into())
            .spawn(move || {
                let _ = child.wait();
            })?;
        Ok(client)
    }

    /// Has the spawner start `berth-shim --bundle <bundle>` on these pipe ends (without waiting
    /// for it: the shim loads while the daemon writes its files). `Ok(false)`: no spawner could
    /// run (start the shim directly).
    fn spawn(&self, bundle: &Path, stdin: BorrowedFd<'_>, stdout: BorrowedFd<'_>) -> io::Result<bool> {
        if self.off {
            return Ok(false);
        }
        let args = [std::ffi::OsStr::new("--bundle"), bundle.as_os_str()];
        let mut env = vec![(proto::WAIT_ENV, "1")];
        if let Some(t) = shim_tunables() {
            env.push(("GLIBC_TUNABLES", t));
        }
        let req = berth_sys::spawn::Request {
            program: &self.shim_path,
            args: &args,
            env: &env,
            stdin,
            stdout,
        };
        let mut g = self.client.lock().unwrap();
        for attempt in 0..2 {
            if g.is_none() {
                match self.start() {
                    Ok(c) => *g = Some(c),
                    Err(e) => {
                        eprintln!("berthd: cannot start the shim spawner ({e}); starting the shim directly");
                        return Ok(false);
                    }
                }
            }
            match g.as_ref().expect("set above").spawn(&req) {
                Ok(()) => return Ok(true),
                // The spawner has gone: once more with a new one.
                Err(e)
                    if attempt == 0
                        && matches!(
                            e.kind(),
                            io::ErrorKind::BrokenPipe
                                | io::ErrorKind::ConnectionReset
                                | io::ErrorKind::NotConnected
                        ) =>
                {
                    eprintln!("berthd: the shim spawner has gone ({e}); starting a new one");
                    *g = None;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }
}

/// Starts `berth-shim --bundle <bundle>` in its own process group, waiting for [`Spawned::go`]:
/// through the spawner, or directly when it cannot run.
pub(crate) fn spawn_waiting(spawner: &Spawner, bundle: &Path) -> Result<Spawned> {
    use rustix::pipe::{pipe_with, PipeFlags};
    let failed =
        |e: io::Error| Error::shim(format!("failed to start shim {}", spawner.shim_path.display()), e);
    let (go_r, go_w) = pipe_with(PipeFlags::CLOEXEC).map_err(|e| failed(e.into()))?;
    let (ready_r, ready_w) = pipe_with(PipeFlags::CLOEXEC).map_err(|e| failed(e.into()))?;
    if !spawner
        .spawn(bundle, go_r.as_fd(), ready_w.as_fd())
        .map_err(failed)?
    {
        return spawn_directly(&spawner.shim_path, bundle);
    }
    // The shim holds the other ends now: EOF on `ready` means it exited.
    drop((go_r, ready_w));
    let go = tokio::net::unix::pipe::Sender::from_owned_fd(go_w).map_err(failed)?;
    let ready = tokio::net::unix::pipe::Receiver::from_owned_fd(ready_r).map_err(failed)?;
    Ok(Spawned {
        go: Box::new(go),
        ready: Box::new(ready),
    })
}

/// A shim's `GLIBC_TUNABLES`: malloc without its per-thread cache, so an idle shim's heap trims
/// down (berth_sys::heap::child_tunables_without_thread_cache); the daemon's own setting otherwise.
fn shim_tunables() -> Option<&'static str> {
    static T: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    T.get_or_init(berth_sys::heap::child_tunables_without_thread_cache)
        .as_deref()
}

/// The shim as the daemon's own child (no spawner): it inherits, and closes at its `execve`,
/// every descriptor the daemon holds.
fn spawn_directly(shim_path: &Path, bundle: &Path) -> Result<Spawned> {
    let mut cmd = tokio::process::Command::new(shim_path);
    if let Some(t) = shim_tunables() {
        cmd.env("GLIBC_TUNABLES", t);
    }
    let mut child = cmd
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
    Ok(Spawned {
        go: Box::new(go),
        ready: Box::new(ready),
    })
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

async fn read_ready(stdout: Box<dyn tokio::io::AsyncRead + Unpin + Send>) -> Result<Ready> {
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .await
        .map_err(|e| Error::shim("failed to read from shim", e))?;
    if line.trim().is_empty() {
        return Err(Error::internal(
            "shim exited before reporting; see runtime.log in the container directory (and the daemon's log, if it could not be started)",
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
        let left = self.net_release(entry).await;
        // So does a shareable /dev/shm: the next start mounts a new one at the same place.
        self.release_own_shm_of(entry);
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
        if let Some((net_id, net)) = left {
            self.emit_network("disconnect", &net_id, &net, Some(&entry.id));
        }
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
