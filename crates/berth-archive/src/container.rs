//! The filesystem side of `docker export` and `docker cp` (the Engine API's
//! `GET /containers/{id}/export` and `HEAD|GET|PUT /containers/{id}/archive`), on a container's
//! root filesystem as mounted at `merged`.
//!
//! # Confinement
//! Every path the client names is resolved with `openat2(merged_fd, …, RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS)`: `..` stops at the container's `/`, and absolute symlinks (an
//! `/etc -> /host-etc` planted in the container) resolve inside the container, never on the host.
//! Trees are read with `O_NOFOLLOW` fds only (see `tarwrite`), and `put` unpacks with the confined
//! writer of layer apply, rooted at `merged`, so no entry, symlink chain or hard link of the tar
//! can land outside the container.
//!
//! # Path resolution (docker's `ResolvePath`)
//! The path is taken as absolute in the container and cleaned lexically. Its parent is resolved
//! following symlinks; its last component is not (stat and get describe a symlink itself), except
//! when the path ends in `/` or `/.`, which resolve it too. `put` always resolves the last
//! component (you may extract into a symlink to a directory).
//!
//! # Errors
//! Messages are docker's. A missing path is `Could not find the file <path> in container <name>`:
//! the container name is the one given to [`ContainerFs::new`] (pass what the client typed, as
//! docker does).

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;

use berth_types::ErrorKind;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::apply::{unpack, Owners, UnpackOptions};
use crate::tarwrite::{Flavor, TarWriter};
use crate::ApplyError;

/// Errors of diff, export and the archive (cp) calls.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The path does not exist in the container (docker's message).
    #[error("Could not find the file {path} in container {container}")]
    NotFound {
        /// The path as the client gave it.
        path: String,
        /// The container name or ID as the client gave it.
        container: String,
    },
    /// `put` into something that is not a directory.
    #[error("extraction point is not a directory")]
    NotADirectory,
    /// The tar to extract was refused or failed to apply.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The tar to extract is not a whole archive: dockerd's words from its untar process.
    #[error("Error processing tar file(exit status 1): {0}")]
    Extract(#[source] ApplyError),
    /// A filesystem operation failed.
    #[error("failed to {op} {path}: {err}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path (in the container, or on the host for roots).
        path: String,
        /// The cause.
        #[source]
        err: io::Error,
    },
    /// Writing the output stream failed (the client went away, or the disk is full).
    #[error("failed to write archive: {0}")]
    Write(#[source] io::Error),
}

impl ArchiveError {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ArchiveError::NotFound { .. } => ErrorKind::NotFound,
            ArchiveError::NotADirectory => ErrorKind::InvalidArgument,
            ArchiveError::Apply(e) | ArchiveError::Extract(e) => e.kind(),
            ArchiveError::Io { .. } | ArchiveError::Write(_) => ErrorKind::Internal,
        }
    }
}

pub(crate) fn open_root(merged: &Path) -> Result<OwnedFd, ArchiveError> {
    rfs::open(
        merged,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ArchiveError::Io {
        op: "open container root",
        path: merged.to_string_lossy().into_owned(),
        err: e.into(),
    })
}

/// `docker export`: writes the whole tree at `merged` as a tar stream — every file with numeric
/// uid/gid, mode, mtime and xattrs; symlinks; devices and fifos; hard links as links when both
/// names are in the tree. Sockets are skipped, and so are the contents of other filesystems
/// mounted below `merged`. Streams; nothing is held in memory.
pub fn export_tar(merged: &Path, w: &mut dyn Write) -> Result<(), ArchiveError> {
    let root = open_root(merged)?;
    let mut tw = TarWriter::new(w, Flavor::Plain);
    tw.stay_on_device_of(&root).map_err(ArchiveError::Write)?;
    tw.add_children(&root, "").map_err(ArchiveError::Write)?;
    tw.finish().map_err(ArchiveError::Write)
}

/// A path's description for `HEAD /containers/{id}/archive` (docker's `container.PathStat`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathStat {
    /// The last component of the requested path (`/` for the root).
    pub name: String,
    /// Size in bytes (of the symlink itself for a symlink).
    pub size: i64,
    /// Go `os.FileMode`: permission bits plus type bits (dir `1<<31`, symlink `1<<27`, …).
    pub mode: u32,
    /// Modification time, RFC 3339 with nanoseconds (Go's `time.Time` JSON).
    pub mtime: String,
    /// For a symlink, its target resolved in the container (absolute); else empty.
    pub link_target: String,
}

/// Go `os.FileMode` type bits.
pub mod go_mode {
    /// `os.ModeDir`
    pub const DIR: u32 = 1 << 31;
    /// `os.ModeSymlink`
    pub const SYMLINK: u32 = 1 << 27;
    /// `os.ModeDevice`
    pub const DEVICE: u32 = 1 << 26;
    /// `os.ModeNamedPipe`
    pub const NAMED_PIPE: u32 = 1 << 25;
    /// `os.ModeSocket`
    pub const SOCKET: u32 = 1 << 24;
    /// `os.ModeSetuid`
    pub const SETUID: u32 = 1 << 23;
    /// `os.ModeSetgid`
    pub const SETGID: u32 = 1 << 22;
    /// `os.ModeCharDevice`
    pub const CHAR_DEVICE: u32 = 1 << 21;
    /// `os.ModeSticky`
    pub const STICKY: u32 = 1 << 20;
}

fn go_file_mode(st_mode: u32) -> u32 {
    let mut m = st_mode & 0o777;
    match FileType::from_raw_mode(st_mode) {
        FileType::Directory => m |= go_mode::DIR,
        FileType::Symlink => m |= go_mode::SYMLINK,
        FileType::BlockDevice => m |= go_mode::DEVICE,
        FileType::CharacterDevice => m |= go_mode::DEVICE | go_mode::CHAR_DEVICE,
        FileType::Fifo => m |= go_mode::NAMED_PIPE,
        FileType::Socket => m |= go_mode::SOCKET,
        _ => {}
    }
    if st_mode & 0o4000 != 0 {
        m |= go_mode::SETUID;
    }
    if st_mode & 0o2000 != 0 {
        m |= go_mode::SETGID;
    }
    if st_mode & 0o1000 != 0 {
        m |= go_mode::STICKY;
    }
    m
}

impl PathStat {
    /// The JSON docker puts, base64-encoded, in `X-Docker-Container-Path-Stat`:
    /// `{"name":…,"size":…,"mode":…,"mtime":…,"linkTarget":…}`.
    pub fn to_header_json(&self) -> String {
        serde_json::to_string(self).expect("path stat serialises")
    }

    /// The header value itself: [`PathStat::to_header_json`], standard base64.
    pub fn to_header_value(&self) -> String {
        base64(self.to_header_json().as_bytes())
    }

    /// Reads the header value back (the client's side); `None` if it is not one.
    pub fn from_header_value(value: &str) -> Option<PathStat> {
        serde_json::from_slice(&base64_decode(value.trim())?).ok()
    }

    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & go_mode::DIR != 0
    }

    /// True for a symlink.
    pub fn is_symlink(&self) -> bool {
        self.mode & go_mode::SYMLINK != 0
    }
}

/// Standard or URL-safe base64, padded or not; `None` on any other character.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().take_while(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Options of [`ContainerFs::put`] (the query of `PUT /containers/{id}/archive`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PutOptions {
    /// `noOverwriteDirNonDir`: refuse to replace a directory by a non-directory or back.
    pub no_overwrite_dir_non_dir: bool,
    /// `copyUIDGID`: keep the tar's owners. Without it every entry is owned by root (0:0), the
    /// container's root user, as docker does.
    pub copy_uid_gid: bool,
}

/// The lexically cleaned components of `path` taken as absolute in the container, whether it
/// ends in `/` (or `/.`, `/..`: a directory is meant) and whether it ends in `/.` (its contents).
fn split_path(path: &str) -> (Vec<String>, bool, bool) {
    let mut comps: Vec<String> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                comps.pop();
            }
            c => comps.push(c.to_string()),
        }
    }
    let dot = path == "." || path.ends_with("/.");
    let dir = dot || path.ends_with('/') || path == ".." || path.ends_with("/..");
    (comps, dir, dot)
}

/// A container's root filesystem, mounted at `merged`, for `docker cp`.
#[derive(Debug, Clone, Copy)]
pub struct ContainerFs<'a> {
    merged: &'a Path,
    container: &'a str,
}

/// A resolved path: the fd of its directory and the name in it (`None`: the directory itself).
struct Resolved {
    dir: OwnedFd,
    base: Option<String>,
    st: rfs::Stat,
}

impl<'a> ContainerFs<'a> {
    /// `merged`: where the container's root filesystem is mounted; `container`: the name or ID the
    /// client used (for error messages).
    pub fn new(merged: &'a Path, container: &'a str) -> Self {
        ContainerFs { merged, container }
    }

    fn not_found(&self, path: &str) -> ArchiveError {
        ArchiveError::NotFound {
            path: path.to_string(),
            container: self.container.to_string(),
        }
    }

    fn open_in_root(&self, root: &OwnedFd, path: &str, shown: &str) -> Result<OwnedFd, ArchiveError> {
        let p = if path.is_empty() { "." } else { path };
        loop {
            match rfs::openat2(
                root,
                p,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            ) {
                Ok(fd) => return Ok(fd),
                Err(Errno::AGAIN) | Err(Errno::INTR) => continue,
                Err(Errno::NOENT) | Err(Errno::NOTDIR) | Err(Errno::LOOP) => {
                    return Err(self.not_found(shown))
                }
                Err(e) => {
                    return Err(ArchiveError::Io {
                        op: "open",
                        path: shown.to_string(),
                        err: e.into(),
                    })
                }
            }
        }
    }

    fn resolve(&self, root: &OwnedFd, path: &str) -> Result<Resolved, ArchiveError> {
        let (comps, dir, _) = split_path(path);
        let stat_err = |e: Errno| ArchiveError::Io {
            op: "stat",
            path: path.to_string(),
            err: e.into(),
        };
        if dir || comps.is_empty() {
            let fd = self.open_in_root(root, &comps.join("/"), path)?;
            let st = rfs::fstat(&fd).map_err(stat_err)?;
            return Ok(Resolved {
                dir: fd,
                base: None,
                st,
            });
        }
        let (base, parent) = comps.split_last().expect("non-empty");
        let fd = self.open_in_root(root, &parent.join("/"), path)?;
        let st = match rfs::statat(&fd, base.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Err(self.not_found(path)),
            Err(e) => return Err(stat_err(e)),
        };
        Ok(Resolved {
            dir: fd,
            base: Some(base.clone()),
            st,
        })
    }

    /// The absolute in-container path of an fd opened inside `root`.
    fn path_in_root(&self, root: &OwnedFd, fd: &OwnedFd) -> Result<Vec<String>, ArchiveError> {
        let link = |fd: &OwnedFd| {
            rfs::readlink(
                format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(fd)),
                Vec::new(),
            )
            .map(|p| p.to_string_lossy().into_owned())
            .map_err(|e| ArchiveError::Io {
                op: "locate",
                path: self.merged.to_string_lossy().into_owned(),
                err: e.into(),
            })
        };
        let (r, p) = (link(root)?, link(fd)?);
        let rel = if r == "/" {
            Some(p.as_str())
        } else {
            p.strip_prefix(r.as_str())
                .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        match rel {
            Some(rel) => Ok(rel
                .split('/')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect()),
            None => Err(ArchiveError::Io {
                op: "locate",
                path: p,
                err: io::Error::other("directory is not inside the container root"),
            }),
        }
    }

    fn stat_of(&self, root: &OwnedFd, path: &str, r: &Resolved) -> Result<PathStat, ArchiveError> {
        let (comps, _, _) = split_path(path);
        let name = comps.last().cloned().unwrap_or_else(|| "/".to_string());
        let mut link_target = String::new();
        if FileType::from_raw_mode(r.st.st_mode) == FileType::Symlink {
            // Follow it in the container: the target's absolute path there, if it resolves.
            let base = r.base.as_deref().expect("a symlink has a name");
            link_target = match self.follow(root, &r.dir, base) {
                Some(t) => t,
                None => {
                    // Dangling: docker reports the lexical target, made absolute.
                    let t = rfs::readlinkat(&r.dir, base, Vec::new())
                        .map(|t| t.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let parent = &comps[..comps.len().saturating_sub(1)];
                    let joined = if t.starts_with('/') {
                        t
                    } else {
                        format!("/{}/{t}", parent.join("/"))
                    };
                    format!("/{}", split_path(&joined).0.join("/"))
                }
            };
        }
        Ok(PathStat {
            name,
            size: r.st.st_size,
            mode: go_file_mode(r.st.st_mode),
            mtime: berth_types::time::rfc3339_nano(r.st.st_mtime * 1_000_000_000 + r.st.st_mtime_nsec as i64),
            link_target,
        })
    }

    /// The in-container path a symlink resolves to, if its target exists.
    fn follow(&self, root: &OwnedFd, dir: &OwnedFd, base: &str) -> Option<String> {
        let dir_comps = self.path_in_root(root, dir).ok()?;
        let mut p = dir_comps;
        p.push(base.to_string());
        let fd = rfs::openat2(
            root,
            p.join("/"),
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
        .ok()?;
        let comps = self.path_in_root(root, &fd).ok()?;
        Some(format!("/{}", comps.join("/")))
    }

    /// `HEAD /containers/{id}/archive?path=…`: describes `path` (a symlink itself, not its target).
    pub fn stat(&self, path: &str) -> Result<PathStat, ArchiveError> {
        let root = open_root(self.merged)?;
        let r = self.resolve(&root, path)?;
        self.stat_of(&root, path, &r)
    }

    /// `GET /containers/{id}/archive?path=…`: writes a tar of `path` to `w` and returns its stat
    /// (for the header). A file or symlink is one entry named by its last component; a directory
    /// is `<name>/` and its tree below `<name>/…`; a path ending in `/.` gives `./` and the
    /// directory's tree below `./…` (its contents, for `docker cp ctr:/dir/. dest`).
    pub fn get(&self, path: &str, w: &mut dyn Write) -> Result<PathStat, ArchiveError> {
        let root = open_root(self.merged)?;
        let r = self.resolve(&root, path)?;
        let stat = self.stat_of(&root, path, &r)?;
        let (_, _, dot) = split_path(path);
        let mut tw = TarWriter::new(w, Flavor::Plain);
        match &r.base {
            Some(base) => tw.add(&r.dir, base, &stat.name).map_err(ArchiveError::Write)?,
            None => {
                let name = if dot || stat.name == "/" {
                    "."
                } else {
                    stat.name.as_str()
                };
                tw.add(&r.dir, ".", &format!("{name}/"))
                    .map_err(ArchiveError::Write)?;
            }
        }
        tw.finish().map_err(ArchiveError::Write)?;
        Ok(stat)
    }

    /// `PUT /containers/{id}/archive?path=…`: extracts the tar `r` into the directory `path`
    /// (symlinks resolved in the container, the last one too). `path` must exist and be a
    /// directory. Entries may not climb above `path`; whiteout names are plain files here.
    pub fn put(&self, path: &str, r: &mut dyn Read, opts: PutOptions) -> Result<(), ArchiveError> {
        let root = open_root(self.merged)?;
        let (comps, _, _) = split_path(path);
        let dest = match rfs::openat2(
            &root,
            if comps.is_empty() {
                ".".to_string()
            } else {
                comps.join("/")
            },
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) | Err(Errno::NOTDIR) | Err(Errno::LOOP) => return Err(self.not_found(path)),
            Err(e) => {
                return Err(ArchiveError::Io {
                    op: "open",
                    path: path.to_string(),
                    err: e.into(),
                })
            }
        };
        let st = rfs::fstat(&dest).map_err(|e| ArchiveError::Io {
            op: "stat",
            path: path.to_string(),
            err: e.into(),
        })?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return Err(ArchiveError::NotADirectory);
        }
        let prefix = self.path_in_root(&root, &dest)?;
        let uopts = UnpackOptions {
            whiteouts: false,
            no_overwrite_dir_non_dir: opts.no_overwrite_dir_non_dir,
            owners: if opts.copy_uid_gid {
                Owners::FromTar
            } else {
                Owners::Fixed(0, 0)
            },
            ..Default::default()
        };
        unpack(&root, &prefix, r, &uopts).map_err(|e| match e {
            ApplyError::Truncated | ApplyError::InvalidHeader | ApplyError::Read(_) => {
                ArchiveError::Extract(e)
            }
            e => ArchiveError::Apply(e),
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(br#"{"mode":1}"#), "eyJtb2RlIjoxfQ==");
        for data in [&b""[..], b"f", b"fo", b"foo", b"foobar", br#"{"mode":1}"#] {
            assert_eq!(base64_decode(&base64(data)).as_deref(), Some(data));
        }
        assert_eq!(base64_decode("a*b"), None);
    }

    #[test]
    fn path_stat_header_round_trips() {
        let st = PathStat {
            name: "etc".into(),
            size: 4096,
            mode: go_mode::DIR | 0o755,
            mtime: "2024-01-01T00:00:00Z".into(),
            link_target: String::new(),
        };
        assert_eq!(PathStat::from_header_value(&st.to_header_value()), Some(st));
        assert_eq!(PathStat::from_header_value("not json"), None);
    }

    #[test]
    fn paths_are_cleaned_in_the_container() {
        assert_eq!(split_path("/etc/../../x"), (vec!["x".to_string()], false, false));
        assert_eq!(split_path("etc/"), (vec!["etc".to_string()], true, false));
        assert_eq!(split_path("/etc/."), (vec!["etc".to_string()], true, true));
        assert_eq!(split_path("/"), (vec![], true, false));
    }

    #[test]
    fn go_modes() {
        assert_eq!(go_file_mode(0o040755), go_mode::DIR | 0o755);
        assert_eq!(go_file_mode(0o120777), go_mode::SYMLINK | 0o777);
        assert_eq!(go_file_mode(0o104755), go_mode::SETUID | 0o755);
        assert_eq!(
            go_file_mode(0o020620),
            go_mode::DEVICE | go_mode::CHAR_DEVICE | 0o620
        );
    }
}
