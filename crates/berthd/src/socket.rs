//! The listening socket (mode 0660 and group `berth` when that group exists, else 0600), the pid
//! file, and the readiness notification for `berth`'s auto-start.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// Binds `path`, replacing a stale socket but refusing to steal a live one.
pub fn bind(path: &Path, group: &str) -> anyhow::Result<tokio::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("another daemon is already listening on {}", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
    }
    let l = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    match group_id(group) {
        Some(gid) => {
            rustix::fs::chown(path, None, Some(rustix::fs::Gid::from_raw(gid)))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
        }
        None => std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?,
    }
    Ok(l)
}

/// The gid of `name` from /etc/group.
fn group_id(name: &str) -> Option<u32> {
    let s = std::fs::read_to_string("/etc/group").ok()?;
    s.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then(|| f.nth(1)?.parse().ok())?
    })
}

/// Tells a waiting `berth` CLI that the daemon listens: writes `ready\n` to the pipe named by
/// `BERTH_READY_FD` and closes it.
pub fn notify_ready() {
    if let Some(fd) = std::env::var("BERTH_READY_FD")
        .ok()
        .and_then(|s| s.parse::<i32>().ok())
    {
        berth_sys::fd::write_and_close_inherited(fd, b"ready\n");
    }
}

/// The pid file: refuses to start when another live daemon holds it; removed on drop.
pub struct PidFile(PathBuf);

impl PidFile {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        if let Ok(s) = std::fs::read_to_string(path) {
            if let Ok(pid) = s.trim().parse::<i32>() {
                if pid != std::process::id() as i32 && Path::new(&format!("/proc/{pid}")).exists() {
                    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                    if comm.trim() == "berthd" {
                        bail!(
                            "pid file found, ensure berthd is not running or delete {}",
                            path.display()
                        );
                    }
                }
            }
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, format!("{}\n", std::process::id()))?;
        Ok(PidFile(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
