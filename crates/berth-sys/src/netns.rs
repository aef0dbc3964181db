//! Network namespaces kept alive by a bind mount (`<exec-root>/netns/<id>`, as `ip netns` keeps
//! them under /run/netns), and work done inside one from a short-lived thread, so no thread of
//! the daemon's pools ever changes namespace.
//!
//! The pins live on a private bind mount of their directory onto itself ([`prepare_dir`]): a
//! shim's mount namespace, copied from the host's, drops all of them in one detach
//! ([`keep_only`]) instead of holding a copy of every other container's pin, and a pin made
//! later never propagates into the namespaces of shims already running.

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::mount::{mount_bind, unmount, UnmountFlags};
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType, UnshareFlags};

/// Creates a new network namespace and pins it at `path` (a new empty file, bind-mounted over
/// with the namespace). On error nothing is left at `path`.
pub fn create(path: &Path) -> io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    let target = path.to_path_buf();
    let pinned = std::thread::spawn(move || -> io::Result<()> {
        // SAFETY: CLONE_NEWNET touches only this thread's network namespace; it does not unshare
        // the file table or the filesystem context that other threads rely on, which is what
        // makes `unshare_unsafe` unsafe. The thread exits right after pinning the namespace.
        unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNET) }?;
        mount_bind("/proc/thread-self/ns/net", &target)?;
        Ok(())
    })
    .join()
    .map_err(|_| io::Error::other("network namespace thread panicked"))?;
    if let Err(e) = pinned {
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(())
}

/// Makes `dir` (created if missing) a private bind mount of itself, so that the pins made in
/// it can be dropped from a copied mount namespace at once. True when `dir` is such a mount
/// (made now or by an earlier daemon); false, leaving it as it is, when pins of an earlier
/// layout are already mounted in it without one (they would be hidden under the new mount).
pub fn prepare_dir(dir: &Path) -> io::Result<bool> {
    std::fs::create_dir_all(dir)?;
    // As mountinfo names it (a symlink in the path would never match, and bind again each time).
    let dir = &std::fs::canonicalize(dir)?;
    let under = crate::mount::mounts_under(dir)?;
    if under.iter().any(|p| p == dir) {
        return Ok(true);
    }
    if !under.is_empty() {
        return Ok(false);
    }
    mount_bind(dir, dir)?;
    if let Err(e) = rustix::mount::mount_change(dir, rustix::mount::MountPropagationFlags::PRIVATE) {
        let _ = unmount(dir, UnmountFlags::DETACH);
        return Err(e.into());
    }
    Ok(true)
}

/// Unmounts the mount [`prepare_dir`] made once no pin is left in it (a clean daemon stop;
/// running containers keep theirs, and it, for the next daemon).
pub fn release_dir(dir: &Path) {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return;
    };
    let Ok(under) = crate::mount::mounts_under(&dir) else {
        return;
    };
    if under.len() == 1 && under[0] == dir {
        let _ = unmount(&dir, UnmountFlags::empty());
    }
}

/// In a mount namespace of its own, copied from the host's (a shim's): detaches the pin
/// directory's mount with every pin in it, then pins the namespace of container `id` again on
/// its file (now the plain file under the detached mount), so that only its own pin stays
/// reachable at the same path. A `dir` that is no mount point of its own is left as it is.
pub fn keep_only(dir: &Path, id: &str) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let own = dir.join(id);
    let pinned = match std::fs::File::open(&own) {
        Ok(f) if rustix::fs::fstatfs(&f).is_ok_and(|s| s.f_type == NSFS_MAGIC) => Some(f),
        Ok(_) => None,
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    match unmount(dir, UnmountFlags::DETACH) {
        Ok(()) => {}
        // Not a mount point: an earlier layout, nothing to drop.
        Err(rustix::io::Errno::INVAL) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    if let Some(f) = pinned {
        mount_bind(format!("/proc/self/fd/{}", f.as_raw_fd()).as_str(), &own)?;
    }
    Ok(())
}

/// `statfs` type of the namespace file system (`NSFS_MAGIC`, linux/magic.h).
const NSFS_MAGIC: libc::c_long = 0x6e73_6673;

/// Unpins and removes a namespace made by [`create`]; a missing path is not an error. The
/// namespace (and the veth ends inside it) goes away once no process is left in it.
pub fn remove(path: &Path) -> io::Result<()> {
    match unmount(path, UnmountFlags::DETACH) {
        Ok(()) => {}
        Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(e.into()),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Runs `f` on a fresh thread that has joined the network namespace at `path` (sockets made by
/// `f` stay bound to that namespace after the thread ends).
pub fn run_in<T: Send + 'static>(path: &Path, f: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
    let ns: OwnedFd = std::fs::File::open(path)?.into();
    std::thread::spawn(move || -> io::Result<T> {
        {
            use std::os::fd::AsFd;
            move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network))?;
        }
        Ok(f())
    })
    .join()
    .map_err(|_| io::Error::other("network namespace thread panicked"))?
}

/// Writes a sysctl under /proc/sys (`net/ipv4/ip_forward`), skipping the write when the value
/// is already set.
pub fn sysctl(name: &str, value: &str) -> io::Result<()> {
    let path = Path::new("/proc/sys").join(name);
    if std::fs::read_to_string(&path)
        .map(|v| v.trim() == value)
        .unwrap_or(false)
    {
        return Ok(());
    }
    std::fs::write(&path, value)
}
