//! Reading directory trees without following symlinks: every directory is opened relative to its
//! parent's fd with `O_NOFOLLOW`, so a symlink swapped in by a running container is never
//! followed to the host. Shared by the tar writer and the snapshotter's diff.

use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{self as rfs, Mode, OFlags};
use rustix::io::Errno;

/// Opens the directory `name` in `parent`, never following a symlink.
pub fn open_dir(parent: &impl AsFd, name: &str) -> Result<OwnedFd, Errno> {
    rfs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// The names in a directory, sorted (tar order is stable: the same tree gives the same bytes).
pub fn dir_names(dir: &impl AsFd) -> Result<Vec<String>, Errno> {
    let mut names = Vec::new();
    for e in rfs::Dir::read_from(dir)? {
        let e = e?;
        let n = e.file_name().to_string_lossy().into_owned();
        if n != "." && n != ".." {
            names.push(n);
        }
    }
    names.sort();
    Ok(names)
}

/// The xattrs of an open file, as (name, value), minus overlay's and SELinux's.
pub(crate) fn read_xattrs(fd: &impl AsFd) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(n) = rfs::flistxattr_query(fd) else {
        return out;
    };
    if n == 0 {
        return out;
    }
    let mut names = vec![0u8; n + 256];
    let Ok(n) = rfs::flistxattr(fd, &mut names[..]) else {
        return out;
    };
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        if name.starts_with("trusted.overlay.") || name == "security.selinux" {
            continue;
        }
        let Ok(len) = rfs::fgetxattr_query(fd, name) else {
            continue;
        };
        let mut value = vec![0u8; len];
        if let Ok(len) = rfs::fgetxattr(fd, name, &mut value[..]) {
            value.truncate(len);
            out.push((name.to_string(), value));
        }
    }
    out
}

/// True if the open directory carries `trusted.overlay.opaque=y`.
pub fn is_opaque(fd: &impl AsFd) -> bool {
    let mut v = [0u8; 4];
    matches!(rfs::fgetxattr(fd, "trusted.overlay.opaque", &mut v[..]), Ok(1) if v[0] == b'y')
}
