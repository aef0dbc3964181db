//! The listening socket (mode 0660 and group `berth` when that group exists, else 0600), the pid
//! file, and the readiness notification for `berth`'s auto-start.
//!
//! # No window at a wider mode
//! `bind(2)` creates the socket file with `0777 & ~umask`, and a client that connects before a
//! later `chmod` keeps its connection. So the socket is never bound at its final path: it is bound
//! in a fresh private directory (0700, made next to the final path so it is on the same
//! filesystem), given its group and mode there — only root can reach it meanwhile, and root may
//! connect whatever the mode — and then renamed into place with `RENAME_NOREPLACE`. The final
//! path only ever names a socket that already has its final mode and group. (Changing the umask
//! around `bind` would also work, but the umask is process-wide and other threads create files.)

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rustix::fs::{self as rfs, Mode, OFlags, RenameFlags, CWD};

/// Binds `path`, replacing a stale socket but refusing to steal a live one.
pub fn bind(path: &Path, group: &str) -> anyhow::Result<tokio::net::UnixListener> {
    let l = bind_std(path, group_id(group))?;
    l.set_nonblocking(true)?;
    Ok(tokio::net::UnixListener::from_std(l)?)
}

/// [`bind`] without tokio: `gid` `Some` gives 0660 and that group, `None` 0600.
fn bind_std(path: &Path, gid: Option<u32>) -> anyhow::Result<std::os::unix::net::UnixListener> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("invalid socket path {}", path.display()))?;
    std::fs::create_dir_all(dir)?;
    if std::fs::symlink_metadata(path).is_ok() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("another daemon is already listening on {}", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
    }
    let (staging, staging_fd) = private_dir_beside(dir, &name.to_string_lossy())?;
    let res = (|| {
        // Through the directory's fd: the path stays short whatever the final path's length.
        let l = std::os::unix::net::UnixListener::bind(format!("/proc/self/fd/{}/s", staging_fd.as_raw_fd()))
            .with_context(|| format!("cannot listen on {}", path.display()))?;
        let mode = match gid {
            Some(gid) => {
                rfs::chownat(
                    &staging_fd,
                    "s",
                    None,
                    Some(rfs::Gid::from_raw(gid)),
                    rfs::AtFlags::SYMLINK_NOFOLLOW,
                )?;
                0o660
            }
            None => 0o600,
        };
        rfs::chmodat(&staging_fd, "s", Mode::from_raw_mode(mode), rfs::AtFlags::empty())?;
        match rfs::renameat_with(&staging_fd, "s", CWD, path, RenameFlags::NOREPLACE) {
            Ok(()) => Ok(l),
            Err(rustix::io::Errno::EXIST) => {
                bail!("another daemon is already listening on {}", path.display())
            }
            Err(e) => Err(e).with_context(|| format!("cannot listen on {}", path.display())),
        }
    })();
    let _ = rfs::unlinkat(&staging_fd, "s", rfs::AtFlags::empty());
    let _ = std::fs::remove_dir(&staging);
    res
}

/// Makes a new directory `.<name>.<random>` in `dir`, mode 0700, and opens it (never following a
/// symlink someone planted under that name: `mkdir` fails on any existing entry).
fn private_dir_beside(dir: &Path, name: &str) -> anyhow::Result<(PathBuf, OwnedFd)> {
    loop {
        let mut r = [0u8; 6];
        rustix::rand::getrandom(&mut r, rustix::rand::GetRandomFlags::empty())?;
        let p = dir.join(format!(".{name}.{}", berth_types::id::to_hex(&r)));
        match rfs::mkdir(&p, Mode::from_raw_mode(0o700)) {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST) => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", p.display())),
        }
        let fd = rfs::open(
            &p,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        return Ok((p, fd));
    }
}

/// The gid of group `name`, through NSS (`getgrnam`: /etc/group, LDAP, systemd's dynamic groups…).
fn group_id(name: &str) -> Option<u32> {
    nix::unistd::Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    /// Every event the directory saw while `f` ran: (name, flags).
    fn watch_dir(dir: &Path, f: impl FnOnce()) -> Vec<(String, rfs::inotify::ReadFlags)> {
        use rfs::inotify::{self, CreateFlags, WatchFlags};
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).unwrap();
        inotify::add_watch(&fd, dir, WatchFlags::ALL_EVENTS).unwrap();
        f();
        let mut buf = [std::mem::MaybeUninit::uninit(); 8192];
        let mut r = inotify::Reader::new(&fd, &mut buf);
        let mut out = Vec::new();
        while let Ok(ev) = r.next() {
            let name = ev
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push((name, ev.events()));
        }
        out
    }

    /// The socket only ever appears at its path by a rename, already 0660 and in its group: it
    /// is never created there (bind) and then chmod-ed, which left a window at the umask's mode.
    #[test]
    fn socket_appears_with_its_final_mode_and_group() {
        if !is_root() {
            eprintln!("skipped: requires root");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("berth.sock");
        let gid = 65534;
        let mut listener = None;
        let events = watch_dir(d.path(), || listener = Some(bind_std(&path, Some(gid)).unwrap()));
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o660);
        assert_eq!(meta.gid(), gid);
        use rfs::inotify::ReadFlags;
        for (name, flags) in &events {
            if name == "berth.sock" {
                assert!(
                    !flags.intersects(ReadFlags::CREATE | ReadFlags::ATTRIB),
                    "the socket was created or changed at its final path: {flags:?}"
                );
            }
        }
        assert!(
            events
                .iter()
                .any(|(n, f)| n == "berth.sock" && f.contains(ReadFlags::MOVED_TO)),
            "{events:?}"
        );
        // Nothing left beside it, and it answers.
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("berth.sock")]);
        std::os::unix::net::UnixStream::connect(&path).unwrap();
        drop(listener);
    }

    #[test]
    fn without_the_group_the_socket_is_owner_only() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("berth.sock");
        let _l = bind_std(&path, group_id("no-such-group-berth-test")).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);
    }

    #[test]
    fn groups_are_looked_up_through_nss() {
        assert_eq!(group_id("root"), Some(0));
        assert_eq!(group_id("no-such-group-berth-test"), None);
    }

    #[test]
    fn a_live_socket_is_never_stolen_and_a_stale_one_is_replaced() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("berth.sock");
        let live = bind_std(&path, None).unwrap();
        let err = bind_std(&path, None).unwrap_err();
        assert!(
            err.to_string().contains("another daemon is already listening"),
            "{err}"
        );
        drop(live); // the file stays: a stale socket
        assert!(path.exists());
        let _l = bind_std(&path, None).unwrap();
        std::os::unix::net::UnixStream::connect(&path).unwrap();
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn long_socket_paths_bind_through_the_short_staging_path() {
        let d = tempfile::tempdir().unwrap();
        // 100 bytes, near sun_path's 108: a staging path beside it would not fit.
        let n = 100 - d.path().as_os_str().len() - "/".len() - "/b.sock".len();
        let deep = d.path().join("x".repeat(n));
        std::fs::create_dir_all(&deep).unwrap();
        let path = deep.join("b.sock");
        assert_eq!(path.as_os_str().len(), 100);
        let _l = bind_std(&path, None).unwrap();
        std::os::unix::net::UnixStream::connect(&path).unwrap();
    }
}
