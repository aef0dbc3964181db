//! `berth-shim --bundle <dir>`: the per-container monitor.
//!
//! One shim per container, started by berthd in its own session. It mounts the rootfs, creates the
//! container with the embedded runtime (libcontainer) so that the container's init is the shim's
//! own child, reports [`Ready`] on stdout, then serves the daemon over a Unix socket from a
//! single-threaded poll loop until the container exits: attach streams, start, kill, resize,
//! state. It writes the json-file log, reaps the init, records the exit status on disk, removes
//! the cgroup, unmounts the rootfs and exits. The life of a shim is specified in
//! `berth_shim_proto`; `docs/design/shim.md` explains the choices.
//!
//! Files (all named by `<bundle>/shim.json`, except the first three):
//! ```text
//! <bundle>/config.json      OCI spec (from berth_runtime::build_spec), user patched in by the shim
//! <bundle>/rootfs/          mount point of the container's root filesystem
//! <bundle>/runtime/<id>/    libcontainer's state (removed on exit)
//! socket, log_path, exit_file, runtime_log
//! ```

mod create;
mod log;
mod runtime;
mod serve;

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use berth_shim_proto::{ExitStatus, Ready, ShimConfig};

fn main() {
    std::process::exit(run());
}

fn usage() -> i32 {
    eprintln!("usage: berth-shim --bundle <dir>");
    2
}

fn run() -> i32 {
    let args: Vec<String> = std::env::args().collect();
    let bundle = match args.as_slice() {
        [_, flag, dir, state] if flag == MONITOR_FLAG => return monitor(Path::new(dir), state),
        [_, flag, dir] if flag == "--bundle" => PathBuf::from(dir),
        [_, arg] if arg.starts_with("--bundle=") => PathBuf::from(&arg["--bundle=".len()..]),
        _ => return usage(),
    };
    let bundle = match std::path::absolute(&bundle) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("berth-shim: {}: {e}", bundle.display());
            return 1;
        }
    };
    // The Ready line goes to the daemon's pipe, which we hold on to as `ready`; from here on our
    // own stdout and stderr are the runtime log.
    let ready = rustix::io::fcntl_dupfd_cloexec(rustix::stdio::stdout(), 3).ok();
    let cfg: ShimConfig = match std::fs::read(bundle.join("shim.json"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("read {}/shim.json: {e}", bundle.display());
            send_ready(ready, &Ready { pid: None, error: Some(msg), exit_code: None });
            return 1;
        }
    };
    redirect_output(&cfg.runtime_log);

    match create::create(&cfg, &bundle) {
        Ok(created) => {
            let pid = created.pid;
            send_ready(ready, &Ready { pid: Some(pid), error: None, exit_code: None });
            let created = match exec_monitor(&bundle, created) {
                Ok(never) => match never {},
                Err((e, created)) => {
                    eprintln!("berth-shim: re-exec as monitor failed ({e}); serving in this image");
                    created
                }
            };
            serve::serve(cfg, bundle, created);
            0
        }
        Err(f) => {
            eprintln!("berth-shim: create {}: {}", cfg.id, f.message);
            let code = f.exit_code.unwrap_or(128);
            write_exit_file(
                &cfg.exit_file,
                &ExitStatus { exit_code: code, finished_at: log::now_rfc3339(), oom_killed: false, error: Some(f.message.clone()) },
            );
            send_ready(ready, &Ready { pid: None, error: Some(f.message), exit_code: f.exit_code });
            create::cleanup_rootfs(&bundle);
            1
        }
    }
}

/// Points fds 1 and 2 at the runtime log (append) so nothing of ours — nor the runtime's
/// diagnostics — reaches the daemon's pipe or a container's stdio.
fn redirect_output(runtime_log: &str) {
    let f = std::fs::OpenOptions::new().create(true).append(true).open(if runtime_log.is_empty() { "/dev/null" } else { runtime_log });
    let fd: OwnedFd = match f {
        Ok(f) => f.into(),
        Err(_) => match std::fs::OpenOptions::new().write(true).open("/dev/null") {
            Ok(f) => f.into(),
            Err(_) => return,
        },
    };
    let _ = rustix::stdio::dup2_stdout(&fd);
    let _ = rustix::stdio::dup2_stderr(&fd);
}

fn send_ready(ready: Option<OwnedFd>, msg: &Ready) {
    let Some(fd) = ready else { return };
    let mut line = serde_json::to_vec(msg).unwrap_or_default();
    line.push(b'\n');
    let mut f = std::fs::File::from(fd);
    if let Err(e) = f.write_all(&line) {
        eprintln!("berth-shim: write ready: {e}");
    }
    // Dropping `f` closes the daemon's pipe: it sees EOF after the one line.
}

/// Writes the exit status crash-safely: temp file → fsync → rename → fsync(dir).
pub fn write_exit_file(path: &str, st: &ExitStatus) {
    if path.is_empty() {
        return;
    }
    let path = Path::new(path);
    let tmp = path.with_extension("tmp");
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(st).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = rustix::fs::fsync(d.as_fd());
            }
        }
        Ok(())
    })();
    if let Err(e) = res {
        eprintln!("berth-shim: write exit file {}: {e}", path.display());
    }
}

/// `berth-shim --monitor <bundle> <state>`: the same binary re-executed after create.
const MONITOR_FLAG: &str = "--monitor";

/// What survives the re-exec: fd numbers and a few values.
#[derive(serde::Serialize, serde::Deserialize)]
struct MonitorState {
    pid: i32,
    pidfd: i32,
    listener: i32,
    /// stdout pipe, or the pty master when `pty`.
    out: i32,
    err: Option<i32>,
    stdin: Option<i32>,
    pty: bool,
    cgroup_path: String,
}

/// Replaces this process image with a fresh one of the same binary in monitor mode.
///
/// Creating a container touches a lot of libcontainer's code and heap; none of it is needed to
/// watch the container afterwards. `execve` keeps the pid — so the container's init stays our
/// child — and the fds we mark inheritable, and drops everything else, which is what keeps an
/// idle shim small. Returns only on failure, handing `created` back.
fn exec_monitor(bundle: &Path, created: create::Created) -> Result<std::convert::Infallible, (std::io::Error, create::Created)> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let raw = |fd: &OwnedFd| fd.as_raw_fd();
    let (out, err, stdin, pty) = match &created.stdio {
        create::Stdio::Pipes { stdin, stdout, stderr } => (raw(stdout), Some(raw(stderr)), stdin.as_ref().map(raw), false),
        create::Stdio::Pty(m) => (raw(m), None, None, true),
    };
    let state = MonitorState {
        pid: created.pid,
        pidfd: raw(&created.pidfd),
        listener: created.listener.as_raw_fd(),
        out,
        err,
        stdin,
        pty,
        cgroup_path: created.cgroup_path.clone(),
    };
    let json = match serde_json::to_string(&state) {
        Ok(j) => j,
        Err(e) => return Err((std::io::Error::other(e), created)),
    };
    let inheritable = {
        let mut pass = vec![created.pidfd.as_fd(), created.listener.as_fd()];
        match &created.stdio {
            create::Stdio::Pipes { stdin, stdout, stderr } => {
                pass.extend([stdout.as_fd(), stderr.as_fd()]);
                pass.extend(stdin.as_ref().map(|f| f.as_fd()));
            }
            create::Stdio::Pty(m) => pass.push(m.as_fd()),
        }
        pass.into_iter().try_for_each(|fd| rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty()))
    };
    if let Err(e) = inheritable {
        return Err((e.into(), created));
    }
    let e = std::process::Command::new("/proc/self/exe").arg0("berth-shim").arg(MONITOR_FLAG).arg(bundle).arg(json).exec();
    Err((e, created))
}

/// Monitor mode: rebuild the created container's handles from inherited fds and serve.
fn monitor(bundle: &Path, state: &str) -> i32 {
    let cfg: ShimConfig = match std::fs::read(bundle.join("shim.json")).ok().and_then(|b| serde_json::from_slice(&b).ok()) {
        Some(c) => c,
        None => {
            eprintln!("berth-shim: monitor: cannot read {}/shim.json", bundle.display());
            return 1;
        }
    };
    let st: MonitorState = match serde_json::from_str(state) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("berth-shim: monitor: bad state: {e}");
            return 1;
        }
    };
    let take = |fd: i32| berth_sys::process::take_inherited_fd(fd);
    let built = (|| -> std::io::Result<create::Created> {
        let pidfd = take(st.pidfd)?;
        let listener = std::os::unix::net::UnixListener::from(take(st.listener)?);
        let out = take(st.out)?;
        let stdio = if st.pty {
            create::Stdio::Pty(out)
        } else {
            let stderr = take(st.err.ok_or_else(|| std::io::Error::other("no stderr fd"))?)?;
            let stdin = st.stdin.map(take).transpose()?;
            create::Stdio::Pipes { stdin, stdout: out, stderr }
        };
        Ok(create::Created { pid: st.pid, pidfd, stdio, listener, cgroup_path: st.cgroup_path.clone() })
    })();
    match built {
        Ok(created) => {
            serve::serve(cfg, bundle.to_path_buf(), created);
            0
        }
        Err(e) => {
            eprintln!("berth-shim: monitor: inherited fds: {e}");
            let _ = berth_sys::process::kill(st.pid, 9);
            1
        }
    }
}
