//! `berth-shim --bundle <dir>`: the per-container monitor. (`berth-shim --spawner`: the daemon's
//! helper that starts shims, `berth_sys::spawn`.)
//!
//! One shim per container, started by berthd in its own session. It mounts the rootfs, creates the
//! container with the embedded runtime (libcontainer, in a short-lived forked creator; the init
//! ends up the shim's child), reports [`Ready`] on stdout, then serves the daemon over a Unix socket from a
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

mod bpf;
mod create;
mod exec;
mod fast;
mod freeze;
mod log;
mod peer;
mod runtime;
mod seccomp;
mod serve;
mod trace;

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use berth_shim_proto::{ExitStatus, Ready, ShimConfig};

fn main() {
    std::process::exit(run());
}

fn usage() -> i32 {
    eprintln!("usage: berth-shim --bundle <dir> | berth-shim --spawner");
    2
}

fn run() -> i32 {
    let args: Vec<String> = std::env::args().collect();
    // (Before anything opens a file: the spawner closes every descriptor above its socket's.)
    if matches!(args.as_slice(), [_, flag] if flag == "--spawner") {
        // The daemon's spawner (berth_sys::spawn): starts shims until the daemon is gone.
        return match berth_sys::spawn::serve(rustix::stdio::stdin()) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("berth-shim --spawner: {e}");
                1
            }
        };
    }
    berth_sys::times::init();
    berth_sys::times::mark("shim-main");
    let bundle = match args.as_slice() {
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
    let mut ready = rustix::io::fcntl_dupfd_cloexec(rustix::stdio::stdout(), 3).ok();
    // Started ahead of its bundle files: wait for the daemon's go (EOF: the start failed).
    if std::env::var_os(berth_shim_proto::WAIT_ENV).is_some() {
        // Read straight from fd 0: std's `stdin()` would keep an 8 kB buffer for the shim's life.
        let mut b = [0u8; 1];
        let got = loop {
            match rustix::io::read(rustix::stdio::stdin(), &mut b) {
                Err(rustix::io::Errno::INTR) => continue,
                r => break r,
            }
        };
        if !matches!(got, Ok(1)) {
            return 0;
        }
        // Nothing we start may hold the daemon's pipe.
        if let Ok(null) = std::fs::File::open("/dev/null") {
            let _ = rustix::stdio::dup2_stdin(&null);
        }
        berth_sys::times::mark("shim-go");
    }
    let cfg: ShimConfig = match std::fs::read(bundle.join("shim.json"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("read {}/shim.json: {e}", bundle.display());
            send_ready(
                ready,
                &Ready {
                    pid: None,
                    error: Some(msg),
                    exit_code: None,
                    bare: false,
                },
            );
            return 1;
        }
    };
    redirect_output(&cfg.runtime_log);
    trace::init(&cfg.runtime_log);
    // The rootfs is mounted in the shim's own mount namespace, not in the host's (see
    // berth_sys::mount::private_namespace); the daemon reaches it through /proc/<shim>/root.
    // The shim is still single-threaded here, as the unshare requires.
    if !cfg.host_mount_ns {
        match berth_sys::mount::private_namespace() {
            Err(e) => {
                eprintln!("berth-shim: no private mount namespace ({e}): the rootfs is mounted in the host's")
            }
            // The copy holds every bridged container's namespace pin; only this one's is kept.
            Ok(()) if !cfg.netns_dir.is_empty() => {
                if let Err(e) = berth_sys::netns::keep_only(Path::new(&cfg.netns_dir), &cfg.id) {
                    eprintln!("berth-shim: dropping the other containers' network namespace pins: {e}");
                }
            }
            Ok(()) => {}
        }
    }

    berth_sys::times::mark("shim-create");
    match create::create(&cfg, &bundle, &mut ready) {
        Ok(created) => {
            let pid = created.pid;
            berth_sys::times::mark("shim-created");
            send_ready(
                ready,
                &Ready {
                    pid: Some(pid),
                    error: None,
                    exit_code: None,
                    bare: false,
                },
            );
            serve::serve(cfg, bundle, created);
            0
        }
        Err(f) => {
            eprintln!("berth-shim: create {}: {}", cfg.id, f.message);
            let code = f.exit_code.unwrap_or(128);
            write_exit_file(
                &cfg.exit_file,
                &ExitStatus {
                    exit_code: code,
                    finished_at: log::now_rfc3339(),
                    oom_killed: false,
                    error: Some(f.message.clone()),
                },
                !cfg.volatile,
            );
            send_ready(
                ready,
                &Ready {
                    pid: None,
                    error: Some(f.message),
                    exit_code: f.exit_code,
                    bare: f.bare,
                },
            );
            1
        }
    }
}

/// Points fds 1 and 2 at the runtime log (append) so nothing of ours — nor the runtime's
/// diagnostics — reaches the daemon's pipe or a container's stdio.
fn redirect_output(runtime_log: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(if runtime_log.is_empty() {
            "/dev/null"
        } else {
            runtime_log
        });
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

/// Writes the exit status crash-safely (temp file → fsync → rename → fsync(dir); the fsyncs are
/// skipped when `durable` is false), owner-only.
pub fn write_exit_file(path: &str, st: &ExitStatus, durable: bool) {
    if path.is_empty() {
        return;
    }
    let path = Path::new(path);
    let res = serde_json::to_vec(st)
        .map_err(std::io::Error::other)
        .and_then(|body| berth_sys::fs::write_atomic_as(path, &body, 0o600, durable));
    if let Err(e) = res {
        eprintln!("berth-shim: write exit file {}: {e}", path.display());
    }
}
