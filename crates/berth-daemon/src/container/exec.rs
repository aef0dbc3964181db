//! `docker exec`: exec instances (create → start → inspect), relayed to the container's shim.
//!
//! An exec's output goes only to the client that started it (never the container's log). Its
//! exit code is recorded before the hijacked stream closes, so the client's follow-up inspect
//! sees `Running: false` and the code.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use berth_api::models::ExecConfig;
use berth_shim_proto::{ExecProcess, ExitStatus, FrameKind, Request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::container::attach::frame;
use crate::container::Status;
use crate::error::{Error, Result};
use crate::{shim, Daemon};

/// One exec instance.
pub struct ExecEntry {
    pub id: String,
    pub container_id: String,
    pub config: ExecConfig,
    state: Mutex<ExecState>,
    done: watch::Sender<bool>,
}

#[derive(Debug, Clone, Default)]
struct ExecState {
    started: bool,
    running: bool,
    exit_code: Option<i64>,
    pid: i64,
}

/// Options of `POST /exec/{id}/start`.
#[derive(Debug, Clone, Default)]
pub struct ExecStartOptions {
    pub detach: bool,
    /// The start body's `Tty`: whether the stream is raw (true) or multiplexed. As in dockerd it
    /// decides only the framing; whether the process gets a terminal is the create config's `Tty`.
    pub tty: bool,
    pub console_size: Option<(u16, u16)>,
}

/// An exec start accepted and waiting for its hijacked connection.
pub struct PendingExec {
    daemon: Arc<Daemon>,
    exec: Arc<ExecEntry>,
    process: ExecProcess,
    /// Raw stream (the start body's `Tty`), else stdcopy frames.
    raw: bool,
    /// `AttachStdout` / `AttachStderr`: streams not attached are dropped, as dockerd does.
    stdout: bool,
    stderr: bool,
}

/// The exec table; entries are kept while their container exists (docker keeps them for inspect).
#[derive(Default)]
pub struct Execs(Mutex<HashMap<String, Arc<ExecEntry>>>);

impl Daemon {
    /// `POST /containers/{id}/exec`.
    pub fn exec_create(self: &Arc<Self>, key: &str, config: ExecConfig) -> Result<String> {
        let entry = self.find(key)?;
        exec_allowed(&entry, key)?;
        if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(Error::invalid("No exec command specified"));
        }
        let id = crate::daemon::random_id();
        let exec = Arc::new(ExecEntry {
            id: id.clone(),
            container_id: entry.id.clone(),
            config: config.clone(),
            state: Mutex::new(ExecState::default()),
            done: watch::channel(false).0,
        });
        self.execs.0.lock().unwrap().insert(id.clone(), exec);
        let mut attrs = self.container_attrs(&entry);
        attrs.insert("execID".into(), id.clone());
        let action = exec_action("exec_create", &config.cmd.unwrap_or_default());
        self.events.emit("container", &action, &entry.id, attrs);
        Ok(id)
    }

    fn find_exec(&self, id: &str) -> Result<Arc<ExecEntry>> {
        self.execs
            .0
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found("exec instance", id))
    }

    /// Forgets the execs of a removed container.
    pub(crate) fn drop_execs(&self, container_id: &str) {
        self.execs
            .0
            .lock()
            .unwrap()
            .retain(|_, e| e.container_id != container_id);
    }

    /// IDs of a container's exec instances (inspect's `ExecIDs`).
    pub(crate) fn exec_ids(&self, container_id: &str) -> Vec<String> {
        self.execs
            .0
            .lock()
            .unwrap()
            .values()
            .filter(|e| e.container_id == container_id)
            .map(|e| e.id.clone())
            .collect()
    }

    /// `POST /exec/{id}/start`: validates and marks the exec started; the caller then runs the
    /// returned [`PendingExec`] on the hijacked connection (or detached).
    pub fn exec_start(self: &Arc<Self>, id: &str, opts: ExecStartOptions) -> Result<PendingExec> {
        let exec = self.find_exec(id)?;
        let entry = self.find(&exec.container_id)?;
        {
            let mut st = exec.state.lock().unwrap();
            if st.running {
                return Err(Error::conflict(format!(
                    "Error: Exec command {id} is already running"
                )));
            }
            if st.started {
                return Err(Error::conflict(format!(
                    "Error: Exec command {id} has already run"
                )));
            }
            exec_allowed(&entry, &entry.id)?;
            st.started = true;
            st.running = true;
        }
        let c = &exec.config;
        let doc = entry.doc();
        // As dockerd's exec: the container's environment as its start made it (with the links'
        // variables; a linked container stopped since gives none) and the exec's over it.
        let tty = c.tty.unwrap_or(false);
        let linked = self.link_context(&doc).map(|l| l.env).unwrap_or_default();
        let env = crate::container::create::replace_or_append_env(
            crate::container::create::daemon_environment(
                tty,
                &doc.config.hostname.clone().unwrap_or_default(),
                &linked,
                &doc.config.env.clone().unwrap_or_default(),
            ),
            &c.env.clone().unwrap_or_default(),
        );
        let console_size = opts.console_size.or(match c.console_size.as_deref() {
            Some([h, w]) if *h > 0 && *w > 0 => Some((*h as u16, *w as u16)),
            _ => None,
        });
        let process = ExecProcess {
            exec_id: exec.id.clone(),
            args: c.cmd.clone().unwrap_or_default(),
            env,
            cwd: c
                .working_dir
                .clone()
                .filter(|w| !w.is_empty())
                .or(doc.config.working_dir.clone())
                .unwrap_or_default(),
            user: c
                .user
                .clone()
                .filter(|u| !u.is_empty())
                .or(doc.config.user.clone())
                .unwrap_or_default(),
            tty,
            stdin: c.attach_stdin.unwrap_or(false),
            privileged: c.privileged.unwrap_or(false),
            console_size,
        };
        let mut attrs = self.container_attrs(&entry);
        attrs.insert("execID".into(), exec.id.clone());
        self.events.emit(
            "container",
            &exec_action("exec_start", &process.args),
            &entry.id,
            attrs,
        );
        Ok(PendingExec {
            daemon: self.clone(),
            raw: opts.tty,
            stdout: c.attach_stdout.unwrap_or(false),
            stderr: c.attach_stderr.unwrap_or(false),
            exec,
            process,
        })
    }

    /// `GET /exec/{id}/json`.
    pub fn exec_inspect(&self, id: &str) -> Result<serde_json::Value> {
        let exec = self.find_exec(id)?;
        let st = exec.state.lock().unwrap().clone();
        let c = &exec.config;
        let mut args = c.cmd.clone().unwrap_or_default();
        let entrypoint = if args.is_empty() {
            String::new()
        } else {
            args.remove(0)
        };
        let mut process = serde_json::json!({
            "tty": c.tty.unwrap_or(false),
            "entrypoint": entrypoint,
            "arguments": args,
            "privileged": c.privileged.unwrap_or(false),
        });
        // dockerd leaves `user` out when the exec names none (omitempty).
        if let Some(u) = c.user.clone().filter(|u| !u.is_empty()) {
            process["user"] = serde_json::Value::String(u);
        }
        Ok(serde_json::json!({
            "ID": exec.id,
            "Running": st.running,
            "ExitCode": st.exit_code,
            "ProcessConfig": process,
            "OpenStdin": c.attach_stdin.unwrap_or(false),
            "OpenStderr": c.attach_stderr.unwrap_or(false),
            "OpenStdout": c.attach_stdout.unwrap_or(false),
            "CanRemove": false,
            "ContainerID": exec.container_id,
            "DetachKeys": c.detach_keys.clone().unwrap_or_default(),
            "Pid": st.pid,
        }))
    }

    /// `POST /exec/{id}/resize`.
    pub async fn exec_resize(self: &Arc<Self>, id: &str, height: u16, width: u16) -> Result<()> {
        let exec = self.find_exec(id)?;
        // As dockerd over containerd: the process of an exec that has exited is gone (404); one
        // without a terminal has nothing to resize, and that is no error.
        let (started, running) = {
            let st = exec.state.lock().unwrap();
            (st.started, st.running)
        };
        if started && !running {
            return Err(Error::Missing(format!(
                "exec {id} has exited: no process to resize"
            )));
        }
        if running && !exec.config.tty.unwrap_or(false) {
            return Ok(());
        }
        let req = Request::ResizeExec {
            exec_id: exec.id.clone(),
            height,
            width,
        };
        let resp = shim::call(&self.shim_socket(&exec.container_id), &req).await?;
        match resp.error {
            Some(e) => Err(Error::internal(format!("cannot resize exec {id}: {e}"))),
            None => Ok(()),
        }
    }

    /// Runs a command in a container and returns its exit code and combined output (health
    /// checks).
    pub(crate) async fn exec_capture(
        self: &Arc<Self>,
        key: &str,
        cmd: Vec<String>,
    ) -> Result<(i64, Vec<u8>)> {
        let config = ExecConfig {
            cmd: Some(cmd),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let id = self.exec_create(key, config)?;
        let pending = self.exec_start(&id, ExecStartOptions::default())?;
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let run = tokio::spawn(pending.run(client));
        let mut out = Vec::new();
        let _ = server.read_to_end(&mut out).await;
        let _ = run.await;
        let code = self.find_exec(&id)?.state.lock().unwrap().exit_code.unwrap_or(-1);
        self.execs.0.lock().unwrap().remove(&id);
        // Strip stdcopy framing.
        let mut plain = Vec::new();
        let mut rest = &out[..];
        while rest.len() >= 8 {
            let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
            let end = (8 + len).min(rest.len());
            plain.extend_from_slice(&rest[8..end]);
            rest = &rest[end..];
        }
        Ok((code, plain))
    }
}

/// Exec needs a running, unpaused container (docker's messages otherwise).
/// `name`: the container as the client named it (dockerd's create message), or its ID (start's).
fn exec_allowed(entry: &crate::container::Entry, name: &str) -> Result<()> {
    match entry.status() {
        Status::Running => Ok(()),
        Status::Paused => Err(Error::conflict(format!(
            "Container {name} is paused, unpause the container before exec"
        ))),
        _ => Err(Error::NotRunning { id: entry.id.clone() }),
    }
}

impl ExecEntry {
    fn finish(&self, code: i64) {
        {
            let mut st = self.state.lock().unwrap();
            st.running = false;
            st.exit_code = Some(code);
        }
        let _ = self.done.send(true);
    }
}

impl PendingExec {
    /// Runs the exec, relaying it over `io` (a hijacked connection, or a sink when detached).
    pub async fn run<T>(self, io: T)
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let PendingExec {
            daemon,
            exec,
            process,
            raw,
            stdout,
            stderr,
        } = self;
        let want_stdin = process.stdin;
        let (mut rd, mut wr) = tokio::io::split(io);
        // runc's spec check: a relative working directory is refused before anything runs.
        if !process.cwd.is_empty() && !process.cwd.starts_with('/') {
            let msg = "OCI runtime exec failed: exec failed: Cwd must be an absolute path: unknown\r\n";
            refuse(&mut wr, raw, msg).await;
            exec.finish(126);
            daemon.exec_died(&exec, 126);
            let _ = wr.shutdown().await;
            return;
        }
        let socket = daemon.shim_socket(&exec.container_id);
        berth_sys::times::mark("d-exec-run");
        let started = async {
            let mut s = tokio::net::UnixStream::connect(&socket).await?;
            let resp = shim::request(
                &mut s,
                &Request::Exec {
                    process: process.clone(),
                },
            )
            .await?;
            Ok::<_, std::io::Error>((s, resp))
        }
        .await;
        let (stream, resp) = match started {
            Ok(x) => x,
            Err(e) => {
                let msg = format!("OCI runtime exec failed: cannot reach the container's monitor: {e}\r\n");
                refuse(&mut wr, raw, &msg).await;
                exec.finish(126);
                let _ = wr.shutdown().await;
                return;
            }
        };
        if let Some(err) = resp.error {
            let code = resp.exit_code.unwrap_or(126) as i64;
            let msg = format!(
                "OCI runtime exec failed: exec failed: unable to start container process: {err}: unknown\r\n"
            );
            refuse(&mut wr, raw, &msg).await;
            exec.finish(code);
            daemon.exec_died(&exec, code);
            let _ = wr.shutdown().await;
            return;
        }
        berth_sys::times::mark("d-exec-started");
        exec.state.lock().unwrap().pid = resp.pid.unwrap_or(0) as i64;
        let (mut srd, mut swr) = stream.into_split();
        // Client → exec stdin; a half-close is EOF on the exec's stdin.
        let feeder = tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        if want_stdin {
                            let _ = shim::write_frame(&mut swr, FrameKind::Stdin, &[]).await;
                        }
                        break;
                    }
                    Ok(n) if want_stdin => {
                        if shim::write_frame(&mut swr, FrameKind::Stdin, &buf[..n])
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                    Ok(_) => {}
                }
            }
            // Keep the write half open until the exec ends (dropping it would look like EOF).
            std::future::pending::<()>().await;
        });
        let mut code = -1i64;
        let mut client_gone = false;
        loop {
            match shim::read_frame(&mut srd).await {
                Ok(Some((kind @ (FrameKind::Stdout | FrameKind::Stderr), b))) => {
                    let (stream, attached) = match kind {
                        FrameKind::Stdout => (1, stdout),
                        _ => (2, stderr),
                    };
                    if client_gone || !attached {
                        continue;
                    }
                    let r = if raw {
                        wr.write_all(&b).await
                    } else {
                        wr.write_all(&frame(stream, &b)).await
                    };
                    client_gone = r.is_err();
                }
                Ok(Some((FrameKind::Exit, b))) => {
                    berth_sys::times::mark("d-exec-exit");
                    if let Ok(st) = serde_json::from_slice::<ExitStatus>(&b) {
                        code = st.exit_code as i64;
                    }
                    break;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        // Record the exit before the client sees the stream end.
        exec.finish(code);
        daemon.exec_died(&exec, code);
        feeder.abort();
        let _ = wr.flush().await;
        let _ = wr.shutdown().await;
    }
}

impl Daemon {
    fn exec_died(&self, exec: &ExecEntry, code: i64) {
        if let Ok(entry) = self.find(&exec.container_id) {
            let mut attrs = self.container_attrs(&entry);
            attrs.insert("execID".into(), exec.id.clone());
            attrs.insert("exitCode".into(), code.to_string());
            self.events.emit("container", "exec_die", &entry.id, attrs);
        }
    }
}

/// Writes an exec start error to the client on stdout, as dockerd does (docker/cli#2025): raw
/// with a tty, else as a stdout frame.
async fn refuse<W: AsyncWrite + Unpin>(wr: &mut W, raw: bool, msg: &str) {
    let bytes = if raw {
        msg.as_bytes().to_vec()
    } else {
        frame(1, msg.as_bytes())
    };
    let _ = wr.write_all(&bytes).await;
}

/// An exec event's action as dockerd spells it: the command's first word, a space, the rest
/// joined by spaces (`exec_create: true ` for `true`).
fn exec_action(kind: &str, cmd: &[String]) -> String {
    let (first, rest) = cmd
        .split_first()
        .map(|(f, r)| (f.as_str(), r))
        .unwrap_or(("", &[]));
    format!("{kind}: {first} {}", rest.join(" "))
}
