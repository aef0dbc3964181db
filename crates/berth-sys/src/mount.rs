//! Performing [`berth_types::Mount`]s: the shim turns the snapshotter's description of a root
//! filesystem into real mounts with [`mount_all`] and takes them down with [`unmount`].
//!
//! - `bind`/`rbind`: `mount(MS_BIND[|MS_REC])`, then a read-only remount when `ro` is asked
//!   (a bind ignores `MS_RDONLY` on the first call).
//! - `overlay`: one `mount(2)` while its option string fits a page; beyond that (many layers),
//!   the new mount API — `fsopen("overlay")`, one `fsconfig("lowerdir+", dir)` per layer,
//!   `upperdir`, `workdir`, `fsmount`, `move_mount` — which has no length limit.
//! - anything else (`tmpfs`, …): `mount(2)` with the flag options turned into flags and the rest
//!   passed as data.
//!
//! Everything here goes through rustix's safe wrappers, except the `unshare` of
//! [`private_namespace`].
//!
//! [`private_namespace`] gives a shim a mount namespace of its own, so that the rootfs it mounts
//! stays out of the host's mount table: with every running container's rootfs in the host's
//! table, each new mount namespace (one per container start) copied all of them, and every
//! reader of `/proc/self/mountinfo` (libcontainer's cgroup discovery, at each create) parsed them,
//! so a start cost more with every container running (docs/design/performance.md).

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};

use berth_types::Mount;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MountPropagationFlags, MoveMountFlags,
    UnmountFlags,
};

/// Errors from mounting and unmounting.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("failed to mount {kind} {source_path} on {target}: {err}")]
    Mount {
        kind: String,
        source_path: String,
        target: PathBuf,
        #[source]
        err: io::Error,
    },
    #[error("failed to unmount {target}: {err}")]
    Unmount {
        target: PathBuf,
        #[source]
        err: io::Error,
    },
    #[error("invalid mount option {0:?}")]
    InvalidOption(String),
}

/// Largest option string `mount(2)` accepts (one page, including the NUL).
const PAGE: usize = 4096;

/// Mounts `mounts` in order at `target`.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<(), MountError> {
    for m in mounts {
        mount_one(m, target).map_err(|err| match err {
            Step::Io(err) => MountError::Mount {
                kind: m.kind.clone(),
                source_path: m.source.clone(),
                target: target.to_path_buf(),
                err,
            },
            Step::Option(o) => MountError::InvalidOption(o),
        })?;
    }
    Ok(())
}

enum Step {
    Io(io::Error),
    Option(String),
}

impl From<rustix::io::Errno> for Step {
    fn from(e: rustix::io::Errno) -> Self {
        Step::Io(e.into())
    }
}

/// Flag options; `None` for options that are data.
fn flag(opt: &str) -> Option<(MountFlags, bool)> {
    Some(match opt {
        "ro" => (MountFlags::RDONLY, true),
        "rw" => (MountFlags::RDONLY, false),
        "nosuid" => (MountFlags::NOSUID, true),
        "suid" => (MountFlags::NOSUID, false),
        "nodev" => (MountFlags::NODEV, true),
        "dev" => (MountFlags::NODEV, false),
        "noexec" => (MountFlags::NOEXEC, true),
        "exec" => (MountFlags::NOEXEC, false),
        "noatime" => (MountFlags::NOATIME, true),
        "nodiratime" => (MountFlags::NODIRATIME, true),
        "relatime" => (MountFlags::RELATIME, true),
        "strictatime" => (MountFlags::STRICTATIME, true),
        "sync" => (MountFlags::SYNCHRONOUS, true),
        "dirsync" => (MountFlags::DIRSYNC, true),
        "bind" => (MountFlags::BIND, true),
        "rbind" => (MountFlags::BIND | MountFlags::REC, true),
        _ => return None,
    })
}

fn propagation(opt: &str) -> Option<MountPropagationFlags> {
    use MountPropagationFlags as P;
    Some(match opt {
        "private" => P::PRIVATE,
        "rprivate" => P::PRIVATE | P::REC,
        "shared" => P::SHARED,
        "rshared" => P::SHARED | P::REC,
        "slave" => P::DOWNSTREAM,
        "rslave" => P::DOWNSTREAM | P::REC,
        "unbindable" => P::UNBINDABLE,
        "runbindable" => P::UNBINDABLE | P::REC,
        _ => return None,
    })
}

fn split_options(options: &[String]) -> (MountFlags, Option<MountPropagationFlags>, Vec<&str>) {
    let mut flags = MountFlags::empty();
    let mut prop = None;
    let mut data = Vec::new();
    for o in options {
        if let Some((f, set)) = flag(o) {
            if set {
                flags |= f;
            } else {
                flags &= !f;
            }
        } else if let Some(p) = propagation(o) {
            prop = Some(p);
        } else {
            data.push(o.as_str());
        }
    }
    (flags, prop, data)
}

fn mount_one(m: &Mount, target: &Path) -> Result<(), Step> {
    let (flags, prop, data) = split_options(&m.options);
    if m.kind == "bind" || flags.contains(MountFlags::BIND) {
        let rec = m.options.iter().any(|o| o == "rbind");
        if rec {
            rustix::mount::mount_bind_recursive(m.source.as_str(), target)?;
        } else {
            rustix::mount::mount_bind(m.source.as_str(), target)?;
        }
        let extra = flags & !(MountFlags::BIND | MountFlags::REC);
        if !extra.is_empty() {
            rustix::mount::mount_remount(target, MountFlags::BIND | extra, "")?;
        }
    } else if m.kind == "overlay" && data.iter().map(|d| d.len() + 1).sum::<usize>() >= PAGE {
        mount_overlay_fsconfig(&data, flags, target)?;
    } else {
        let joined = data.join(",");
        let cdata = CString::new(joined).map_err(|_| Step::Option("NUL in options".into()))?;
        let d = if data.is_empty() {
            None
        } else {
            Some(cdata.as_c_str())
        };
        rustix::mount::mount(m.source.as_str(), target, m.kind.as_str(), flags, d)?;
    }
    if let Some(p) = prop {
        rustix::mount::mount_change(target, p)?;
    }
    Ok(())
}

/// Overlay through the new mount API: each lower layer is its own `lowerdir+` call, so the
/// layer count is not bounded by the one-page option string of `mount(2)`.
fn mount_overlay_fsconfig(data: &[&str], flags: MountFlags, target: &Path) -> Result<(), Step> {
    let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    rustix::mount::fsconfig_set_string(&fs, "source", "overlay")?;
    for opt in data {
        match opt.split_once('=') {
            Some(("lowerdir", dirs)) => {
                for dir in dirs.split(':').filter(|d| !d.is_empty()) {
                    rustix::mount::fsconfig_set_string(&fs, "lowerdir+", dir)?;
                }
            }
            Some((k, v)) => rustix::mount::fsconfig_set_string(&fs, k, v)?,
            None => rustix::mount::fsconfig_set_flag(&fs, *opt)?,
        }
    }
    rustix::mount::fsconfig_create(&fs)?;
    let mut attrs = MountAttrFlags::empty();
    for (f, a) in [
        (MountFlags::RDONLY, MountAttrFlags::MOUNT_ATTR_RDONLY),
        (MountFlags::NOSUID, MountAttrFlags::MOUNT_ATTR_NOSUID),
        (MountFlags::NODEV, MountAttrFlags::MOUNT_ATTR_NODEV),
        (MountFlags::NOEXEC, MountAttrFlags::MOUNT_ATTR_NOEXEC),
    ] {
        if flags.contains(f) {
            attrs |= a;
        }
    }
    let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)?;
    rustix::mount::move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?;
    Ok(())
}

/// Moves the calling process, which must be single-threaded, into a new mount namespace whose
/// mounts are slaves of the ones it came from. Mounts made in the host's namespace afterwards
/// still reach it; mounts made in it never reach the host.
pub fn private_namespace() -> io::Result<()> {
    // SAFETY: only `NEWNS` is unshared (not `FILES`), so no file descriptor table changes under
    // another thread; the kernel refuses `CLONE_NEWNS` (EINVAL) in a process with other threads.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }?;
    rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::DOWNSTREAM | rustix::mount::MountPropagationFlags::REC,
    )?;
    Ok(())
}

/// Unmounts everything stacked at `target` (a lazy detach when a mount is busy). Not being a
/// mount point is not an error.
pub fn unmount(target: &Path) -> Result<(), MountError> {
    // Bounded: every successful round removes one mount from the stack.
    for _ in 0..64 {
        match rustix::mount::unmount(target, UnmountFlags::NOFOLLOW) {
            Ok(()) => continue,
            Err(rustix::io::Errno::BUSY) => {
                rustix::mount::unmount(target, UnmountFlags::DETACH | UnmountFlags::NOFOLLOW).map_err(
                    |e| MountError::Unmount {
                        target: target.to_path_buf(),
                        err: e.into(),
                    },
                )?;
            }
            Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => return Ok(()),
            Err(e) => {
                return Err(MountError::Unmount {
                    target: target.to_path_buf(),
                    err: e.into(),
                })
            }
        }
    }
    Ok(())
}

/// Makes `dir` (created `0700` if missing) a *shared* bind mount of itself, in a peer group of
/// its own, unless it is a mount point already (then only its propagation is set again: a crash
/// between the bind and the change leaves a private one). What is mounted below it afterwards
/// reaches the mount namespaces copied from this one since (shims are slaves of the host's),
/// and so does its unmount: a shareable container's `/dev/shm` is mounted there, and gone from
/// every copy when it is unmounted here. Callers serialize their calls.
pub fn shared_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let dir = &std::fs::canonicalize(dir)?;
    let made = if mounts_under(dir)?.iter().any(|p| p == dir) {
        false
    } else {
        rustix::mount::mount_bind(dir, dir)?;
        true
    };
    // A new bind goes private first: a bind of a directory on a shared mount (`/run` under
    // systemd) would otherwise stay in that mount's peer group, and every mount below it would
    // appear there too. An existing one is only made shared (a no-op when it is): making it
    // private would cut off the slaves it already has.
    let res = if made {
        rustix::mount::mount_change(dir, MountPropagationFlags::PRIVATE)
    } else {
        Ok(())
    }
    .and_then(|()| rustix::mount::mount_change(dir, MountPropagationFlags::SHARED));
    if let Err(e) = res {
        if made {
            let _ = rustix::mount::unmount(dir, UnmountFlags::DETACH);
        }
        return Err(e.into());
    }
    Ok(())
}

/// Unmounts the mount [`shared_dir`] made, once nothing is mounted below it.
pub fn release_shared_dir(dir: &Path) {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return;
    };
    if let Ok(under) = mounts_under(&dir) {
        if under.len() == 1 && under[0] == dir {
            let _ = rustix::mount::unmount(&dir, UnmountFlags::empty());
        }
    }
}

/// Mounts a container's `/dev/shm` tmpfs of `size` bytes at `target` (made `0700`): `nosuid`,
/// `nodev`, `noexec`, its root `1777`, as dockerd mounts a shareable container's.
pub fn mount_shm(target: &Path, size: i64) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(target) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let data = CString::new(format!("mode=1777,size={size}")).map_err(io::Error::other)?;
    rustix::mount::mount(
        "shm",
        target,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        data.as_c_str(),
    )?;
    Ok(())
}

/// Unmounts what [`mount_shm`] mounted at `target` (lazily when busy) and removes the
/// directory. A missing `target` is not an error.
pub fn unmount_shm(target: &Path) -> io::Result<()> {
    if !target.exists() {
        return Ok(());
    }
    unmount(target).map_err(|e| io::Error::other(e.to_string()))?;
    match std::fs::remove_dir(target) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Mount points at or below `root` in this process's mount namespace, deepest first (the order
/// to unmount them in). Reads `/proc/self/mountinfo`.
pub fn mounts_under(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mut out: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mountinfo(p)))
        .filter(|p| p.starts_with(root))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out.dedup();
    Ok(out)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
pub fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(super::unescape_mountinfo("/a\\040b/c"), "/a b/c");
        assert_eq!(super::unescape_mountinfo("/plain"), "/plain");
        assert_eq!(super::unescape_mountinfo("/end\\"), "/end\\");
    }

    #[test]
    fn proc_is_a_mount_under_root() {
        let m = super::mounts_under(std::path::Path::new("/")).unwrap();
        assert!(m.iter().any(|p| p == std::path::Path::new("/proc")), "{m:?}");
        assert_eq!(m.last().map(|p| p.as_path()), Some(std::path::Path::new("/")));
    }

    use super::*;

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    fn mounted(p: &Path) -> bool {
        let s = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let p = p.to_str().unwrap();
        s.lines().any(|l| l.split(' ').nth(4) == Some(p))
    }

    #[test]
    fn options_split_into_flags_and_data() {
        let opts: Vec<String> = ["ro", "nosuid", "rprivate", "lowerdir=/a:/b", "size=1k"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (f, p, d) = split_options(&opts);
        assert_eq!(f, MountFlags::RDONLY | MountFlags::NOSUID);
        assert_eq!(
            p,
            Some(MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)
        );
        assert_eq!(d, vec!["lowerdir=/a:/b", "size=1k"]);
    }

    #[test]
    fn bind_ro_and_overlay_with_many_layers() {
        if !is_root() {
            eprintln!("skipped: requires root");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        let tgt = d.path().join("tgt");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::create_dir_all(&tgt).unwrap();
        std::fs::write(src.join("f"), "x").unwrap();
        mount_all(&[Mount::bind(src.to_str().unwrap(), true)], &tgt).unwrap();
        let guard = scopeguard(&tgt);
        assert_eq!(std::fs::read_to_string(tgt.join("f")).unwrap(), "x");
        assert!(std::fs::write(tgt.join("g"), "y").is_err(), "read-only bind");
        unmount(&tgt).unwrap();
        assert!(!mounted(&tgt));

        // 120 layers with long names: the option string exceeds a page.
        let mut lowers = Vec::new();
        for i in 0..120 {
            let l = d.path().join(format!("layer-with-a-rather-long-name-{i:04}"));
            std::fs::create_dir_all(&l).unwrap();
            std::fs::write(l.join(format!("f{i}")), format!("{i}")).unwrap();
            lowers.push(l.to_str().unwrap().to_string());
        }
        let (up, work) = (d.path().join("upper"), d.path().join("work"));
        std::fs::create_dir_all(&up).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        let m = Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            options: vec![
                format!("lowerdir={}", lowers.join(":")),
                format!("upperdir={}", up.display()),
                format!("workdir={}", work.display()),
            ],
        };
        assert!(m.options[0].len() > PAGE);
        mount_all(&[m], &tgt).unwrap();
        assert_eq!(std::fs::read_to_string(tgt.join("f0")).unwrap(), "0");
        assert_eq!(std::fs::read_to_string(tgt.join("f119")).unwrap(), "119");
        std::fs::write(tgt.join("new"), "n").unwrap();
        assert!(up.join("new").exists());
        unmount(&tgt).unwrap();
        assert!(!mounted(&tgt));
        drop(guard);
    }

    /// Unmounts on drop so a failing assertion leaves no mount behind.
    struct Guard(PathBuf);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = unmount(&self.0);
        }
    }
    fn scopeguard(p: &Path) -> Guard {
        Guard(p.to_path_buf())
    }
}
