//! Network namespaces kept alive by a bind mount (`<exec-root>/netns/<id>`, as `ip netns` keeps
//! them under /run/netns), and work done inside one from a short-lived thread, so no thread of
//! the daemon's pools ever changes namespace.

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
