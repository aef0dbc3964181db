//! The client's end of `docker cp CONTAINER:SRC DEST`: where the archive the daemon sent is
//! extracted, with docker's rules (its `CopyTo`), and the same confinement as the daemon's end.
//!
//! # Destination rules (docker's `PrepareArchiveCopy`)
//! `DEST` is followed if it is a symlink (at most 10 times). Then:
//! - `DEST` is an existing directory: the archive is extracted into it (`cp c:/etc d` makes
//!   `d/etc`; `cp c:/etc/. d` copies the contents of `/etc` into `d`);
//! - `DEST` exists and is not a directory: a file replaces it; a directory is refused
//!   (`cannot copy directory`);
//! - `DEST` does not exist (its parent must): a directory source becomes the new directory
//!   `DEST`, a file source the file `DEST`; `DEST` ending in `/` with a file source is refused
//!   (`no such directory`).
//!
//! # Confinement
//! The root of the extraction is `DEST` itself whenever it is (or becomes) a directory, and the
//! parent of `DEST` only when a single file is written there. Entries are renamed strictly: in
//! an archive of `SRC`, every entry must be `basename(SRC)` or below it (a stray entry is
//! refused, where docker would write it beside `DEST`), and a file source may carry nothing below
//! its one entry. Names are cleaned, parents resolved in the root, hard links resolved in the
//! root — so an archive with `../../etc/passwd` names, absolute paths, hard links to host files
//! or symlinks to follow cannot write outside the destination, nor link a host file into it.
//! Files are owned by the user who runs the copy (docker's `NoLchown`).

use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::Path;

use berth_types::ErrorKind;
use rustix::fs::{self as rfs, Mode, OFlags};

use crate::apply::{unpack, Owners, Rename, UnpackOptions};
use crate::ApplyError;

/// What the archive holds, as the daemon described it.
#[derive(Debug, Clone, Copy)]
pub struct CopySource<'a> {
    /// The container path the archive was requested for (after `-L` resolution).
    pub path: &'a str,
    /// Whether that path is a directory (from the archive's path-stat header).
    pub is_dir: bool,
    /// With `-L` on a symlink: the name the copy takes (the link's own), since the archive is
    /// named after the link's target. See [`follow_link`].
    pub rebase_name: Option<&'a str>,
}

/// Errors of [`copy_to`]; the messages are docker's where docker has one.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A directory onto an existing non-directory.
    #[error("cannot copy directory")]
    CannotCopyDir,
    /// A file source onto a missing path that ends in `/`.
    #[error("no such directory")]
    DirNotExists,
    /// The destination's parent is not a directory.
    #[error("not a directory")]
    NotADirectory,
    /// The destination is a symlink loop or chain longer than 10.
    #[error("too many symlinks in {0}")]
    TooManySymlinks(String),
    /// A filesystem operation on the destination failed.
    #[error("{op} {path}: {err}")]
    Io {
        /// What was being done (Go's verbs: `lstat`, `stat`, `open`, `mkdir`).
        op: &'static str,
        /// The path.
        path: String,
        /// The cause.
        #[source]
        err: io::Error,
    },
    /// The archive was refused or could not be extracted.
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

impl CopyError {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CopyError::Io { err, .. } if err.kind() == io::ErrorKind::NotFound => ErrorKind::NotFound,
            CopyError::Io { .. } => ErrorKind::Internal,
            CopyError::Apply(e) => e.kind(),
            _ => ErrorKind::InvalidArgument,
        }
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CopyError + 'a {
    move |err| CopyError::Io {
        op,
        path: path.to_string_lossy().into_owned(),
        err,
    }
}

/// Go's `filepath.Clean` for absolute or relative slash paths.
fn clean(path: &str) -> String {
    let abs = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !abs {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    match (abs, out.is_empty()) {
        (true, _) => format!("/{}", out.join("/")),
        (false, true) => ".".to_string(),
        (false, false) => out.join("/"),
    }
}

/// Whether `path` names a directory's contents (`.` or ending in `/.`).
fn specifies_current_dir(path: &str) -> bool {
    path == "." || path.ends_with("/.")
}

/// Docker's `SplitPathDirEntry`: the cleaned parent and last component (`.` kept for `dir/.`).
fn split_dir_entry(path: &str) -> (String, String) {
    let mut p = clean(path);
    if specifies_current_dir(path) {
        p.push_str("/.");
    }
    match p.rsplit_once('/') {
        Some(("", "")) => ("/".into(), "/".into()),
        Some(("", base)) => ("/".into(), base.into()),
        Some((dir, base)) => (dir.into(), base.into()),
        None => (".".into(), p),
    }
}

/// Go's `filepath.Base`.
fn base(path: &str) -> String {
    let t = path.trim_end_matches('/');
    if t.is_empty() {
        return if path.is_empty() { ".".into() } else { "/".into() };
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

/// `cp -L` on a symlink (docker's `GetRebaseName`): given the requested path and the link's
/// target (as the daemon's path stat reports it), returns the path to request instead and the
/// name the copy must take, if it differs from the target's.
pub fn follow_link(path: &str, link_target: &str) -> (String, Option<String>) {
    let mut resolved = if link_target.starts_with('/') {
        clean(link_target)
    } else {
        clean(&format!("{}/{link_target}", split_dir_entry(path).0))
    };
    if specifies_current_dir(path) && !specifies_current_dir(&resolved) {
        resolved.push_str("/.");
    }
    if path.ends_with('/') && !resolved.ends_with('/') {
        resolved.push('/');
    }
    let rebase = (base(path) != base(&resolved)).then(|| base(path));
    (resolved, rebase)
}

/// The destination after following symlinks (docker's `CopyInfoDestinationPath`): the path, and
/// whether it exists as a directory (`Some(true)`), as something else (`Some(false)`) or not.
fn destination(dest: &str) -> Result<(String, Option<bool>), CopyError> {
    let mut path = dest.to_string();
    for _ in 0..=10 {
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&path).map_err(io_err("readlink", Path::new(&path)))?;
                let target = target.to_string_lossy();
                path = if target.starts_with('/') {
                    target.into_owned()
                } else {
                    clean(&format!("{}/{target}", split_dir_entry(&path).0))
                };
            }
            Ok(m) => return Ok((path, Some(m.is_dir()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let parent = split_dir_entry(&path).0;
                let m = std::fs::metadata(&parent).map_err(io_err("stat", Path::new(&parent)))?;
                if !m.is_dir() {
                    return Err(CopyError::NotADirectory);
                }
                return Ok((path, None));
            }
            Err(e) => return Err(io_err("lstat", Path::new(&path))(e)),
        }
    }
    Err(CopyError::TooManySymlinks(dest.to_string()))
}

fn open_dir(path: &Path, nofollow: bool) -> Result<OwnedFd, CopyError> {
    let mut flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    if nofollow {
        flags |= OFlags::NOFOLLOW;
    }
    rfs::open(path, flags, Mode::empty()).map_err(|e| io_err("open", path)(e.into()))
}

/// Extracts `tar`, the daemon's archive of `src`, at the local path `dest` with docker cp's rules
/// (see the module documentation), never writing outside the destination.
pub fn copy_to(tar: impl Read, src: &CopySource<'_>, dest: &str) -> Result<(), CopyError> {
    let (dest_path, exists) = destination(dest)?;
    let (dest_dir, dest_base) = split_dir_entry(&dest_path);
    // The archive's top-level name; our daemon names the root of `/` and `dir/.` `./`.
    let top = match split_dir_entry(src.path).1.as_str() {
        "/" => ".".to_string(),
        b => b.to_string(),
    };
    let copy_name = src.rebase_name.map(str::to_string).unwrap_or_else(|| top.clone());
    let (root, rename) = match exists {
        Some(true) => {
            // Into the directory: `top` keeps its name (or the link's, for -L); `dir/.` spills
            // its contents.
            let to = (top != ".").then_some(copy_name);
            let rename = Rename {
                top,
                to,
                single: !src.is_dir,
            };
            (open_dir(Path::new(&dest_path), false)?, rename)
        }
        Some(false) if src.is_dir => return Err(CopyError::CannotCopyDir),
        None if src.is_dir => {
            // The directory becomes `dest`: made here, then the extraction's root.
            let parent = open_dir(Path::new(&dest_dir), false)?;
            rfs::mkdirat(&parent, dest_base.as_str(), Mode::from_raw_mode(0o755))
                .map_err(|e| io_err("mkdir", Path::new(&dest_path))(e.into()))?;
            let root = rfs::openat(
                &parent,
                dest_base.as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io_err("open", Path::new(&dest_path))(e.into()))?;
            let rename = Rename {
                top,
                to: None,
                single: false,
            };
            (root, rename)
        }
        None if dest_path.ends_with('/') || specifies_current_dir(&dest_path) => {
            return Err(CopyError::DirNotExists)
        }
        // A file replaces `dest` or becomes it: the one entry, renamed, in dest's directory.
        _ => {
            let rename = Rename {
                top,
                to: Some(dest_base),
                single: true,
            };
            (open_dir(Path::new(&dest_dir), false)?, rename)
        }
    };
    let opts = UnpackOptions {
        whiteouts: false,
        no_overwrite_dir_non_dir: true,
        owners: Owners::Extractor,
        rename: Some(rename),
    };
    unpack(&root, &[], tar, &opts)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_like_docker() {
        assert_eq!(split_dir_entry("/etc/hosts"), ("/etc".into(), "hosts".into()));
        assert_eq!(split_dir_entry("/etc/"), ("/".into(), "etc".into()));
        assert_eq!(split_dir_entry("/etc/."), ("/etc".into(), ".".into()));
        assert_eq!(split_dir_entry("/"), ("/".into(), "/".into()));
        assert_eq!(split_dir_entry("out"), (".".into(), "out".into()));
        assert_eq!(split_dir_entry("a/b/../c"), ("a".into(), "c".into()));
        assert_eq!(clean("../a/./b/.."), "../a");
        assert_eq!(base("/a/b/"), "b");
        assert_eq!(base("/"), "/");
    }

    #[test]
    fn follow_link_rebases_like_docker() {
        // /link -> /target/file: request the target, name the copy `link`.
        assert_eq!(
            follow_link("/etc/link", "/target/file"),
            ("/target/file".into(), Some("link".into()))
        );
        // A relative target resolves against the link's directory.
        assert_eq!(
            follow_link("/etc/link", "../data/x"),
            ("/data/x".into(), Some("link".into()))
        );
        // `link/.` keeps meaning "the contents".
        assert_eq!(follow_link("/d/link/.", "/real"), ("/real/.".into(), None));
        assert_eq!(follow_link("/d/same", "/x/same"), ("/x/same".into(), None));
    }

    #[test]
    fn missing_parent_is_reported_like_go() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("no/such/file");
        let e = copy_to(
            &[0u8; 1024][..],
            &CopySource {
                path: "/f",
                is_dir: false,
                rebase_name: None,
            },
            dest.to_str().unwrap(),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("stat "), "{e}");
        assert!(!d.path().join("no").exists());
    }
}
