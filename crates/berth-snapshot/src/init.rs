//! A container's **init layer**: the mount points the engine needs in the container's root
//! filesystem (`/etc/hosts`, `/proc`, …), in a committed snapshot of their own between the image's
//! layers and the container's rw layer, as dockerd's `<id>-init` layer.
//!
//! Without it the runtime creates missing mount targets in the rw layer, and `diff`, `commit` and
//! the rw size all show engine-made files as the container's changes. With it, the rw layer holds
//! exactly what the container did.
//!
//! The layer is written straight into the (unmounted) upper dir of a fresh active snapshot; what
//! the image already has is looked up in the merged view of its layers (overlay's rules, see
//! [`crate::diff`]). As in dockerd's `initlayer.Setup`:
//! - a path component that is not a directory in the image (a symlink, a file) is replaced by a
//!   real directory, so no mount is ever made through an image's symlink;
//! - a missing directory is created (0755, root); one the image has is copied up with its mode,
//!   owner and mtime only when something must be created inside it;
//! - a file or symlink entry always replaces what the image has there, unless that is a directory
//!   (then it is left alone, and the mount fails at start as it does in docker).
//!
//! Entries with `replace: false` instead leave the image's symlinks alone: if any component on the
//! way is not a directory the entry is skipped, and the runtime creates the target at start,
//! resolving the symlink inside the root (runc does so for `/sbin/docker-init` in a merged-`/usr`
//! image, where `/sbin` is a link to `usr/sbin`).

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::diff::lower_lookup;
use crate::SnapshotError;

/// What an init-layer path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitKind {
    /// A directory (a mount point for a filesystem).
    Dir,
    /// An empty file (a mount point for a bind-mounted file).
    File,
    /// A symlink to the target.
    Symlink(String),
}

/// One path of an init layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitEntry {
    /// Absolute path in the container, e.g. `/etc/hosts`.
    pub path: String,
    /// What to create there.
    pub kind: InitKind,
    /// Replace non-directories on the way (dockerd's rule), or skip the entry when there is one.
    pub replace: bool,
}

impl InitEntry {
    /// An entry with dockerd's replacing rule.
    pub fn new(path: &str, kind: InitKind) -> Self {
        InitEntry {
            path: path.to_string(),
            kind,
            replace: true,
        }
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SnapshotError + 'a {
    move |err| SnapshotError::Io {
        op,
        path: path.to_path_buf(),
        err,
    }
}

/// Writes `entries` into `upper`, the empty upper dir of an active snapshot whose committed
/// parents' `fs` dirs are `lowers` (nearest first). See the module doc for the rules.
pub fn write_init_layer(
    upper: &Path,
    lowers: &[PathBuf],
    entries: &[InitEntry],
) -> Result<(), SnapshotError> {
    for e in entries {
        let comps: Vec<String> = e
            .path
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(str::to_string)
            .collect();
        if comps.is_empty() || comps.iter().any(|c| c == "..") {
            continue;
        }
        if !parents(upper, lowers, &comps, e.replace)? {
            continue;
        }
        let here = upper.join(comps.join("/"));
        if fs::symlink_metadata(&here).is_ok() {
            continue; // an earlier entry made it
        }
        let below = lower_lookup(lowers, &comps);
        let below_is_dir = below.as_ref().is_some_and(|m| m.is_dir());
        match &e.kind {
            InitKind::Dir if below_is_dir => {}
            InitKind::Dir => {
                make_dir(&here, 0o755, None)?;
                if below.is_some() {
                    // It replaces a file or symlink of the image.
                    mark_opaque(&here)?;
                }
            }
            _ if below_is_dir => {}
            _ if below.is_some() && !e.replace => {}
            InitKind::File => {
                fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o755)
                    .open(&here)
                    .map_err(io_err("create", &here))?;
            }
            InitKind::Symlink(target) => {
                std::os::unix::fs::symlink(target, &here).map_err(io_err("create", &here))?;
            }
        }
    }
    Ok(())
}

/// Makes the parent directories of `comps` in `upper`; false if the entry is to be skipped.
fn parents(upper: &Path, lowers: &[PathBuf], comps: &[String], replace: bool) -> Result<bool, SnapshotError> {
    let mut here = upper.to_path_buf();
    for i in 0..comps.len() - 1 {
        here.push(&comps[i]);
        if let Ok(md) = fs::symlink_metadata(&here) {
            if md.is_dir() {
                continue;
            }
            return Ok(false); // an earlier entry made a non-directory here
        }
        match lower_lookup(lowers, &comps[..=i]) {
            Some(md) if md.is_dir() => make_dir(&here, md.mode() & 0o7777, Some(&md))?,
            Some(_) if !replace => return Ok(false),
            Some(_) => {
                make_dir(&here, 0o755, None)?;
                mark_opaque(&here)?;
            }
            None => make_dir(&here, 0o755, None)?,
        }
    }
    Ok(true)
}

/// Creates a directory; with `like`, copies up that directory's owner and mtime as overlay would.
fn make_dir(path: &Path, mode: u32, like: Option<&fs::Metadata>) -> Result<(), SnapshotError> {
    fs::DirBuilder::new()
        .mode(mode)
        .create(path)
        .map_err(io_err("create", path))?;
    // The umask may have narrowed the mode.
    rustix::fs::chmod(path, rustix::fs::Mode::from_raw_mode(mode))
        .map_err(|e| io_err("chmod", path)(e.into()))?;
    if let Some(md) = like {
        rustix::fs::chown(
            path,
            Some(rustix::fs::Uid::from_raw(md.uid())),
            Some(rustix::fs::Gid::from_raw(md.gid())),
        )
        .map_err(|e| io_err("chown", path)(e.into()))?;
        let t = rustix::fs::Timespec {
            tv_sec: md.mtime(),
            tv_nsec: md.mtime_nsec() as _,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            path,
            &rustix::fs::Timestamps {
                last_access: t,
                last_modification: t,
            },
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| io_err("set times of", path)(e.into()))?;
    }
    Ok(())
}

fn mark_opaque(path: &Path) -> Result<(), SnapshotError> {
    rustix::fs::setxattr(
        path,
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .map_err(|e| io_err("mark opaque", path)(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn entries() -> Vec<InitEntry> {
        vec![
            InitEntry::new("/proc", InitKind::Dir),
            InitEntry::new("/dev/pts", InitKind::Dir),
            InitEntry::new("/etc/hosts", InitKind::File),
            InitEntry::new("/etc/hostname", InitKind::File),
            InitEntry::new("/etc/mtab", InitKind::Symlink("/proc/mounts".into())),
            InitEntry {
                path: "/sbin/docker-init".into(),
                kind: InitKind::File,
                replace: false,
            },
        ]
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
                if e.file_type().unwrap().is_dir() {
                    walk(base, &p, out);
                }
            }
        }
        walk(dir, dir, &mut out);
        out.sort();
        out
    }

    #[test]
    fn existing_directories_are_kept_and_missing_targets_made() {
        let d = tempfile::tempdir().unwrap();
        let (lower, upper) = (d.path().join("lower"), d.path().join("upper"));
        fs::create_dir_all(lower.join("proc")).unwrap();
        fs::create_dir_all(lower.join("etc")).unwrap();
        fs::set_permissions(lower.join("etc"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::write(lower.join("etc/hosts"), "image's hosts\n").unwrap();
        fs::create_dir(&upper).unwrap();
        write_init_layer(&upper, &[lower], &entries()).unwrap();
        assert_eq!(
            names(&upper),
            [
                "dev",
                "dev/pts",
                "etc",
                "etc/hostname",
                "etc/hosts",
                "etc/mtab",
                "sbin",
                "sbin/docker-init"
            ]
        );
        // /etc is copied up with the image's mode; /proc, a directory already, is not touched.
        assert_eq!(fs::metadata(upper.join("etc")).unwrap().mode() & 0o7777, 0o750);
        assert_eq!(fs::read(upper.join("etc/hosts")).unwrap(), b"");
        assert_eq!(
            fs::read_link(upper.join("etc/mtab")).unwrap(),
            Path::new("/proc/mounts")
        );
    }

    #[test]
    fn image_symlinks_are_replaced_or_left_to_the_runtime() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: requires root (trusted.* xattrs)");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let (lower, upper) = (d.path().join("lower"), d.path().join("upper"));
        fs::create_dir_all(lower.join("usr/sbin")).unwrap();
        symlink("usr/sbin", lower.join("sbin")).unwrap();
        fs::create_dir_all(lower.join("elsewhere")).unwrap();
        symlink("/elsewhere", lower.join("etc")).unwrap();
        fs::create_dir(&upper).unwrap();
        write_init_layer(&upper, &[lower], &entries()).unwrap();
        // /etc, a symlink in the image, became a real (opaque) directory: no mount goes through it.
        let etc = upper.join("etc");
        assert!(fs::symlink_metadata(&etc).unwrap().is_dir());
        assert!(berth_archive::walk::is_opaque(&fs::File::open(&etc).unwrap()));
        assert!(etc.join("hosts").is_file());
        // /sbin → usr/sbin is the image's business: the runtime resolves it at start.
        assert!(fs::symlink_metadata(upper.join("sbin")).is_err());
    }
}
