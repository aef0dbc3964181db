//! The two runtime operations the monitor needs after create, without keeping libcontainer's
//! state in memory: `start` is libcontainer's own start handshake (a connection to the init's
//! notify socket carrying "start container"), `delete` loads the container from its state dir
//! and deletes it (kill leftovers, remove the cgroup and the state), once, at exit.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use berth_runtime::CgroupDirs;
use berth_shim_proto::ShimConfig;
use libcontainer::container::Container;
use libcontainer::notify_socket::NOTIFY_FILE;

/// Where libcontainer keeps its state: `ShimConfig::runtime_root` (under the exec root, so a
/// reboot empties it together with the processes it describes), or `<bundle>/runtime`.
pub fn root(cfg: &ShimConfig, bundle: &Path) -> PathBuf {
    if cfg.runtime_root.is_empty() {
        bundle.join("runtime")
    } else {
        PathBuf::from(&cfg.runtime_root)
    }
}

/// libcontainer's state directory of the container.
pub fn state_dir(cfg: &ShimConfig, bundle: &Path) -> PathBuf {
    root(cfg, bundle).join(&cfg.id)
}

/// Lets the created init exec the user's process.
pub fn start(cfg: &ShimConfig, bundle: &Path) -> std::io::Result<()> {
    // Through /proc/self/fd so a long bundle path cannot overflow sun_path.
    let dir = std::fs::File::open(state_dir(cfg, bundle))?;
    let mut s = UnixStream::connect(format!("/proc/self/fd/{}/{NOTIFY_FILE}", dir.as_raw_fd()))?;
    s.write_all(b"start container")?;
    // The init reads to EOF: closing the stream completes the handshake.
    Ok(())
}

/// Removes the container's cgroup and runtime state. The fast path removes the cgroup
/// directories directly, with any a privileged container made below them (the init is reaped
/// and its pid namespace is gone, so they are empty);
/// if any is still busy, libcontainer's delete (which kills leftovers and retries) takes over.
///
/// With `keep_empty_cgroup` (set by the daemon, which removes them once exits pause), empty
/// cgroups of a fast-path container stay for the daemon; busy ones are dealt with here as before.
pub fn release(cfg: &ShimConfig, bundle: &Path, cgroup: Option<&CgroupDirs>) {
    if cfg.keep_empty_cgroup
        && cgroup.is_some_and(CgroupDirs::is_empty)
        && crate::fast::exec::is_fast(&state_dir(cfg, bundle))
    {
        let _ = std::fs::remove_dir_all(state_dir(cfg, bundle));
        return;
    }
    if cgroup.is_some_and(CgroupDirs::remove_tree) {
        let _ = std::fs::remove_dir_all(state_dir(cfg, bundle));
        return;
    }
    // A fast-path container has no libcontainer state to delete it from: kill what is left in
    // its cgroups and remove them.
    if let Some(c) = cgroup.filter(|_| crate::fast::exec::is_fast(&state_dir(cfg, bundle))) {
        if !crate::fast::cgroup::kill_and_remove(c) {
            eprintln!("berth-shim: cgroup {} is still busy", c.rel());
        }
        return;
    }
    delete(cfg, bundle);
}

/// Removes the container's cgroup and runtime state (best effort, errors to the runtime log).
/// Also what clears a previous run's state that a killed shim left behind (libcontainer's forced
/// delete kills any process still in the container's cgroup first).
pub fn delete(cfg: &ShimConfig, bundle: &Path) {
    let dir = state_dir(cfg, bundle);
    if !dir.exists() {
        return;
    }
    let id = &cfg.id;
    match Container::load(dir.clone()) {
        Ok(mut c) => {
            if let Err(e) = c.delete(true) {
                eprintln!("berth-shim: delete container {id}: {e}");
            }
        }
        Err(e) => eprintln!("berth-shim: load container {id}: {e}"),
    }
    if dir.exists() {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            eprintln!("berth-shim: remove {}: {e}", dir.display());
        }
    }
}
