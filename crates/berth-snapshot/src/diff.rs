//! What a container changed: `docker diff` from an overlay upper dir against its lower layers. (The
//! upper dir as an OCI layer tar, for `docker commit`, is `berth_archive::write_layer_tar`.)
//!
//! # Reading an upper dir
//! - a character device 0:0 is a **whiteout**: the lower path is deleted;
//! - a directory with `trusted.overlay.opaque=y` hides everything below it in the lowers;
//! - anything else is there because it was created (no such path in the lower view: *Added*) or
//!   copied up (the path exists below: *Modified*) — directories too, since creating `/tmp/x`
//!   copies `/tmp` up.
//!
//! The lower view is overlay's: layers are searched top first, per path component; a whiteout or a
//! non-directory on the way hides the layers below, and so does an opaque directory.
//!
//! Not handled: overlay `redirect_dir` and `metacopy` (both off by default; berth does not turn
//! them on). With `redirect_dir=on` a renamed lower directory would show as Added, not as a move.

use std::cmp::Ordering;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use serde::{Serialize, Serializer};

use berth_archive::walk::{dir_names, is_opaque, open_dir};
use berth_archive::ArchiveError;

/// What happened to a path (docker's numbering: `/containers/{id}/changes` sends the number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ChangeKind {
    /// `C`: the path existed in the image and was changed (or, for a directory, something in it).
    Modified = 0,
    /// `A`: the path did not exist in the image.
    Added = 1,
    /// `D`: the path existed in the image and was removed.
    Deleted = 2,
}

impl ChangeKind {
    /// `C`, `A` or `D`, as `docker diff` prints.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Modified => 'C',
            ChangeKind::Added => 'A',
            ChangeKind::Deleted => 'D',
        }
    }
}

impl Serialize for ChangeKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(*self as u8)
    }
}

/// One changed path; serialises as docker's `{"Path":"/tmp","Kind":0}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Change {
    /// Absolute path inside the container.
    pub path: String,
    /// What happened to it.
    pub kind: ChangeKind,
}

fn io_err<'a>(op: &'static str, path: &'a str) -> impl FnOnce(io::Error) -> ArchiveError + 'a {
    move |err| ArchiveError::Io {
        op,
        path: path.to_string(),
        err,
    }
}

fn open_root(dir: &Path) -> Result<OwnedFd, ArchiveError> {
    rfs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err("open", &dir.to_string_lossy())(e.into()))
}

/// The changes recorded in the overlay upper dir `upper` over the layers `lowers` (their `fs`
/// dirs, nearest first, as `Overlay::lower_dirs` returns them), sorted by path component by
/// component (`/a`, `/a/b`, `/a.txt`), as docker's walk yields them.
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>, ArchiveError> {
    let root = open_root(upper)?;
    let mut out = Vec::new();
    walk(&root, &mut Vec::new(), lowers, true, &mut out)?;
    out.sort_by(|a, b| cmp_paths(&a.path, &b.path));
    Ok(out)
}

fn cmp_paths(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

fn walk(
    dir: &OwnedFd,
    comps: &mut Vec<String>,
    lowers: &[PathBuf],
    lower_visible: bool,
    out: &mut Vec<Change>,
) -> Result<(), ArchiveError> {
    let shown = || format!("/{}", comps.join("/"));
    for name in dir_names(dir).map_err(|e| io_err("read directory", &shown())(e.into()))? {
        comps.push(name.clone());
        let path = format!("/{}", comps.join("/"));
        let st = match rfs::statat(dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => {
                comps.pop();
                continue;
            }
            Err(e) => return Err(io_err("stat", &path)(e.into())),
        };
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft == FileType::CharacterDevice && st.st_rdev == 0 {
            out.push(Change {
                path,
                kind: ChangeKind::Deleted,
            });
            comps.pop();
            continue;
        }
        let in_lower = lower_visible && lower_lookup(lowers, comps).is_some();
        let kind = if in_lower {
            ChangeKind::Modified
        } else {
            ChangeKind::Added
        };
        out.push(Change {
            path: path.clone(),
            kind,
        });
        if ft == FileType::Directory {
            let sub = match open_dir(dir, &name) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::NOENT) => {
                    comps.pop();
                    continue;
                }
                Err(e) => return Err(io_err("open", &path)(e.into())),
            };
            let opaque = is_opaque(&sub);
            if opaque && in_lower {
                // Everything the lowers had here is gone, unless the upper has it again.
                let here: std::collections::HashSet<String> = dir_names(&sub)
                    .map_err(|e| io_err("read directory", &path)(e.into()))?
                    .into_iter()
                    .collect();
                for child in lower_children(lowers, comps) {
                    if !here.contains(&child) {
                        out.push(Change {
                            path: format!("{path}/{child}"),
                            kind: ChangeKind::Deleted,
                        });
                    }
                }
            }
            walk(&sub, comps, lowers, in_lower && !opaque, out)?;
        }
        comps.pop();
    }
    Ok(())
}

fn is_whiteout(md: &std::fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

fn path_opaque(p: &Path) -> bool {
    std::fs::File::open(p).map(|f| is_opaque(&f)).unwrap_or(false)
}

/// The metadata of `comps` in the merged view of `lowers` (nearest first), or `None` if it does
/// not exist there. Lowers are committed (immutable) layers; each component is checked to be a
/// real directory before descending, so no symlink is followed.
pub(crate) fn lower_lookup(lowers: &[PathBuf], comps: &[String]) -> Option<std::fs::Metadata> {
    'layers: for layer in lowers {
        let mut p = layer.clone();
        let mut opaque_above = false;
        for (i, c) in comps.iter().enumerate() {
            p.push(c);
            let md = match std::fs::symlink_metadata(&p) {
                Ok(md) => md,
                Err(_) if opaque_above => return None,
                Err(_) => continue 'layers,
            };
            if is_whiteout(&md) {
                return None;
            }
            if i + 1 == comps.len() {
                return Some(md);
            }
            if !md.is_dir() {
                return None;
            }
            opaque_above |= path_opaque(&p);
        }
        return None; // comps empty: the root, not a change
    }
    None
}

/// The names in directory `comps` of the merged lower view.
fn lower_children(lowers: &[PathBuf], comps: &[String]) -> Vec<String> {
    let mut names = std::collections::BTreeSet::new();
    for layer in lowers {
        let p = comps.iter().fold(layer.clone(), |p, c| p.join(c));
        if let Ok(rd) = std::fs::read_dir(&p) {
            for e in rd.flatten() {
                names.insert(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    names
        .into_iter()
        .filter(|n| {
            let mut c = comps.to_vec();
            c.push(n.clone());
            lower_lookup(lowers, &c).is_some()
        })
        .collect()
}
