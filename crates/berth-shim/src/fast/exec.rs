//! The fast path's exec, run by the shim's forked spawner: join the init's cgroups and
//! namespaces, fork the process (the pid namespace applies to children), which joins the mount
//! namespace, sets up its stdio, applies the confinement and execs.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use berth_runtime::CgroupDirs;
use oci_spec::runtime::{LinuxCapabilities, Process};
use rustix::pipe::PipeFlags;

use super::init::{confine_and_exec, connect_short, send_fd};
use super::rootfs;
use crate::create::{ContainerSide, Failure};
use crate::seccomp::Filter;

/// Starts `process` in the container of `init_pid` (cgroup `cgroup_path`); returns its pid once
/// it has exec'd.
pub(crate) fn spawn(
    init_pid: i32,
    cgroup_path: &str,
    process: &Process,
    filter: Option<&Filter>,
    caps: &LinuxCapabilities,
    side: ContainerSide,
    winsize: Option<(u16, u16)>,
) -> Result<i32, Failure> {
    let f = |m: String| Failure::new(format!("exec failed: {m}"));
    // The spawner joins the v1 hierarchies; the process is born in the unified one.
    let dirs = CgroupDirs::new(cgroup_path)
        .map(|d| d.existing())
        .unwrap_or_default();
    let join = super::cgroup::Join::new(&dirs).map_err(f)?;
    join.enter_v1().map_err(f)?;
    berth_sys::times::mark("exec-v1-joined");
    let open = |n: &str| {
        std::fs::File::open(format!("/proc/{init_pid}/ns/{n}"))
            .map(OwnedFd::from)
            .map_err(|e| f(format!("open the container's {n} namespace: {e}")))
    };
    let mnt = open("mnt")?;
    for (n, t) in [
        ("ipc", libc::CLONE_NEWIPC),
        ("uts", libc::CLONE_NEWUTS),
        ("net", libc::CLONE_NEWNET),
        ("pid", libc::CLONE_NEWPID),
    ] {
        let fd = open(n)?;
        berth_sys::process::setns(fd.as_fd(), t)
            .map_err(|e| f(format!("join the container's {n} namespace: {e}")))?;
    }
    let console = match &side {
        ContainerSide::Console(p) => {
            Some(connect_short(p).map_err(|e| f(format!("connect to the console socket: {e}")))?)
        }
        ContainerSide::Pipes { .. } => None,
    };
    berth_sys::times::mark("exec-ns-joined");
    let (err_r, err_w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(|e| f(format!("pipe: {e}")))?;
    let child = join.fork().map_err(|e| f(format!("fork: {e}")))?;
    let berth_sys::process::Fork::Parent(pid) = child else {
        drop(err_r);
        berth_sys::times::mark("exec-child");
        let msg = (|| {
            join.enter_unified()?;
            berth_sys::times::mark("exec-child-unified");
            berth_sys::process::setns(mnt.as_fd(), libc::CLONE_NEWNS)
                .map_err(|e| format!("join the container's mount namespace: {e}"))?;
            berth_sys::times::mark("exec-child-mnt");
            rustix::process::setsid().map_err(|e| format!("setsid: {e}"))?;
            match (&side, &console) {
                (_, Some(c)) => {
                    let master = rootfs::pty(false, winsize)?;
                    send_fd(c, &master)?;
                }
                (
                    ContainerSide::Pipes {
                        stdin,
                        stdout,
                        stderr,
                    },
                    None,
                ) => rootfs::dup_stdio(stdin, stdout, stderr)?,
                _ => return Err("no stdio".to_string()),
            }
            if let Some(adj) = process.oom_score_adj() {
                let _ = std::fs::write("/proc/self/oom_score_adj", adj.to_string());
            }
            Ok::<_, String>(confine_and_exec(process, filter, caps))
        })();
        let msg = msg.unwrap_or_else(|e| e);
        let _ = std::io::Write::write_all(&mut std::fs::File::from(err_w), msg.as_bytes());
        std::process::exit(127);
    };
    drop(err_w);
    drop(side);
    drop(console);
    // EOF with nothing written: the process exec'd (the pipe is close-on-exec).
    let mut msg = String::new();
    let _ = std::fs::File::from(err_r).read_to_string(&mut msg);
    if msg.is_empty() {
        return Ok(pid);
    }
    let _ = rustix::process::waitpid(
        rustix::process::Pid::from_raw(pid),
        rustix::process::WaitOptions::empty(),
    );
    // The process's own words (runc's), which the daemon puts after "unable to start container
    // process: " as dockerd does; no second "exec failed".
    Err(Failure::new(msg))
}

/// Whether the container was created by the fast path: libcontainer's state is absent.
pub(crate) fn is_fast(state_dir: &Path) -> bool {
    !state_dir.join("state.json").exists()
}
