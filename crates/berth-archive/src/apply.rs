//! Confined application of an (uncompressed) OCI layer tar into a directory.
//!
//! # Confinement
//! Every entry name is first cleaned lexically (`.` dropped, `..` popped; a name that climbs
//! above the root is refused). Then the entry's parent directory is opened with
//! `openat2(root_fd, parent, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: the kernel resolves every
//! symlink on the way — absolute ones, `..` chains, links created by earlier entries of the same
//! tar — as if `root` were `/`, so the parent fd is always inside the root. The entry itself is
//! then created with `*at` syscalls relative to that fd, never following a symlink in the last
//! component (`O_CREAT|O_EXCL|O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`, `linkat` without
//! `AT_SYMLINK_FOLLOW`). Hard-link targets are resolved the same way. Nothing can be created,
//! changed or removed outside the root.
//!
//! # Whiteouts
//! OCI whiteouts become overlay markers: `.wh.name` → a character device 0:0 named `name`;
//! `.wh..wh..opq` → xattr `trusted.overlay.opaque=y` on the directory. Other `.wh..wh.` entries
//! (AUFS bookkeeping) are skipped.
//!
//! # Digest
//! The whole stream — including the tar's end-of-archive padding — is hashed as it is read: the
//! result is the layer's diff ID.

use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path};

use berth_types::{Digest, ErrorKind};
use rustix::fs::{
    self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, XattrFlags,
};
use rustix::io::Errno;
use sha2::{Digest as _, Sha256};

/// Errors of layer application.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The tar stream cannot be read.
    #[error("failed to read layer tar: {0}")]
    Read(#[source] io::Error),
    /// The stream ended inside the archive (Go's `archive/tar` message, which docker shows).
    #[error("unexpected EOF")]
    Truncated,
    /// A block that should be a tar header is not one (Go's `archive/tar` message).
    #[error("archive/tar: invalid tar header")]
    InvalidHeader,
    /// An entry would land outside the root.
    #[error("invalid tar entry {path:?}: {reason}")]
    Breakout {
        /// The entry name as found in the tar.
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// An entry type berth does not unpack.
    #[error("unsupported tar entry {path:?} of type {kind:?}")]
    Unsupported {
        /// The entry name.
        path: String,
        /// The tar type byte.
        kind: u8,
    },
    /// `no_overwrite_dir_non_dir` forbade replacing a directory by a non-directory or back
    /// (docker's message).
    #[error("{0}")]
    Overwrite(String),
    /// A filesystem operation failed.
    #[error("failed to {op} {path:?} while applying layer")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The entry (relative to the root).
        path: String,
        /// The cause.
        #[source]
        err: io::Error,
    },
}

impl ApplyError {
    /// The class of this error: a bad tar is `InvalidArgument`, a host failure `Internal`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ApplyError::Read(_)
            | ApplyError::Truncated
            | ApplyError::InvalidHeader
            | ApplyError::Breakout { .. }
            | ApplyError::Unsupported { .. }
            | ApplyError::Overwrite(_) => ErrorKind::InvalidArgument,
            ApplyError::Io { .. } => ErrorKind::Internal,
        }
    }
}

fn fail<'a>(op: &'static str, path: &'a str) -> impl FnOnce(Errno) -> ApplyError + 'a {
    move |e| ApplyError::Io {
        op,
        path: path.to_string(),
        err: e.into(),
    }
}

/// What the reader under the tar parser did: failed itself, or reached its end.
#[derive(Debug, Clone, Copy, Default)]
struct SourceState {
    failed: bool,
    eof: bool,
}

/// The stream as the tar parser reads it, noting failures and the end, so a parse error can be
/// told from a read error.
struct Source<'a, R> {
    inner: R,
    state: &'a std::cell::Cell<SourceState>,
}

impl<R: Read> Read for Source<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = self.inner.read(buf);
        let mut st = self.state.get();
        match &r {
            Err(_) => st.failed = true,
            Ok(0) if !buf.is_empty() => st.eof = true,
            Ok(_) => {}
        }
        self.state.set(st);
        r
    }
}

/// Hashes (and counts) everything read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Unpacks the uncompressed layer tar `tar` into the directory `dir`, confined to it, converting
/// OCI whiteouts to overlay markers and keeping modes, owners, mtimes, xattrs, symlinks, hard
/// links and devices. Returns the diff ID (sha256 of the whole stream) and the unpacked size (the
/// sum of the entries' sizes).
pub fn apply_layer(dir: &Path, tar: impl Read) -> Result<(Digest, u64), ApplyError> {
    let root = rfs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail("open root", "/"))?;
    let mut reader = HashingReader {
        inner: tar,
        hasher: Sha256::new(),
    };
    let opts = UnpackOptions {
        whiteouts: true,
        ..Default::default()
    };
    let size = unpack(&root, &[], &mut reader, &opts)?;
    let sum: [u8; 32] = reader.hasher.finalize().into();
    Ok((Digest::from_sha256_bytes(&sum), size))
}

/// How [`unpack`] treats entries.
#[derive(Debug, Clone, Default)]
pub(crate) struct UnpackOptions {
    /// Turn OCI whiteouts into overlay markers (layers); otherwise `.wh.*` are plain files (cp).
    pub whiteouts: bool,
    /// Refuse to replace a directory by a non-directory or back (docker cp's
    /// `noOverwriteDirNonDir`).
    pub no_overwrite_dir_non_dir: bool,
    /// Who owns what is created.
    pub owners: Owners,
    /// Renames the archive's top-level entry (and refuses entries outside it), applied to entry
    /// names and hard-link targets after cleaning.
    pub rename: Option<Rename>,
}

/// Who owns the unpacked entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Owners {
    /// The tar's uid/gid (layers, `docker cp -a` into a container).
    #[default]
    FromTar,
    /// This uid/gid (docker cp into a container without `copyUIDGID`).
    Fixed(u32, u32),
    /// Whoever extracts (docker cp out of a container: `NoLchown`); works unprivileged.
    Extractor,
}

/// `docker cp`'s renaming of the copied entry (its `RebaseArchiveEntries`), made strict: every
/// entry must be the top-level entry `top` or below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rename {
    /// The archive's top-level name; `.` for an archive of a directory's contents (nothing is
    /// stripped then).
    pub top: String,
    /// What `top` becomes: one name, or none (its contents land in the root itself).
    pub to: Option<String>,
    /// The source is not a directory: nothing may be below `top`.
    pub single: bool,
}

impl Rename {
    fn apply(&self, comps: Vec<String>) -> Result<Vec<String>, &'static str> {
        let rest = if self.top == "." {
            comps
        } else {
            match comps.split_first() {
                Some((first, rest)) if *first == self.top => rest.to_vec(),
                _ => return Err("entry is outside the copied path"),
            }
        };
        if self.single && !rest.is_empty() {
            return Err("entry is below a copied file");
        }
        Ok(self.to.iter().cloned().chain(rest).collect())
    }
}

/// What an entry adds to its layer's size as dockerd counts it (`directory.Size` over the unpacked
/// layer: every non-directory's `lstat` size, hard links once): a file's length, a symlink's
/// target's length, nothing for directories, hard links, devices and fifos.
fn disk_size<R: Read>(entry: &tar::Entry<'_, R>) -> u64 {
    use tar::EntryType as T;
    match entry.header().entry_type() {
        T::Regular | T::Continuous => entry.size(),
        T::Symlink => entry.link_name_bytes().map(|l| l.len() as u64).unwrap_or(0),
        _ => 0,
    }
}

/// Unpacks `tar` under the directory `prefix` (components relative to `root`, already resolved
/// inside it), confined to `root`: names may not climb above `prefix`, and every path is resolved
/// by the kernel as if `root` were `/`. Reads the stream to its end. Returns the layer's size as
/// dockerd counts it ([`disk_size`] of each entry).
pub(crate) fn unpack(
    root: &OwnedFd,
    prefix: &[String],
    mut reader: impl Read,
    opts: &UnpackOptions,
) -> Result<u64, ApplyError> {
    let mut size = 0u64;
    let mut dir_times: Vec<(Vec<String>, i64)> = Vec::new();
    let source = std::cell::Cell::new(SourceState::default());
    {
        let mut archive = tar::Archive::new(Source {
            inner: &mut reader,
            state: &source,
        });
        let entries = archive.entries().map_err(ApplyError::Read);
        let applied = entries.and_then(|entries| {
            for entry in entries {
                let mut entry = entry.map_err(ApplyError::Read)?;
                size += disk_size(&entry);
                apply_entry(root, prefix, &mut entry, &mut dir_times, opts)?;
            }
            Ok(())
        });
        applied.map_err(|e| match (e, source.get()) {
            // The tar parser's own complaint (the stream itself read fine): say what Go's
            // archive/tar (and so docker) says.
            (
                ApplyError::Read(_),
                SourceState {
                    failed: false,
                    eof: true,
                },
            ) => ApplyError::Truncated,
            (
                ApplyError::Read(_),
                SourceState {
                    failed: false,
                    eof: false,
                },
            ) => ApplyError::InvalidHeader,
            (e, _) => e,
        })?;
    }
    // Consume the end-of-archive blocks and any padding after them too (they are hashed).
    io::copy(&mut reader, &mut io::sink()).map_err(ApplyError::Read)?;
    // Directory times last, deepest first, since creating entries inside changed them.
    for (comps, mtime) in dir_times.iter().rev() {
        let ts = timestamps(*mtime);
        match comps.split_last() {
            None => rfs::futimens(root, &ts).map_err(fail("set times of", "/"))?,
            Some((base, parent)) => {
                let p = open_dir_in_root(root, parent, false, base)?;
                rfs::utimensat(&p, base.as_str(), &ts, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(fail("set times of", base))?;
            }
        }
    }
    Ok(size)
}

fn timestamps(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Cleans an entry name lexically; refuses names that climb above the root.
fn clean(name: &Path) -> Result<Vec<String>, ApplyError> {
    let shown = || name.to_string_lossy().into_owned();
    let mut out: Vec<String> = Vec::new();
    for c in name.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if out.pop().is_none() {
                    return Err(ApplyError::Breakout {
                        path: shown(),
                        reason: "path escapes the root",
                    });
                }
            }
            Component::Normal(s) => match s.to_str() {
                Some(s) => out.push(s.to_string()),
                None => {
                    return Err(ApplyError::Breakout {
                        path: shown(),
                        reason: "name is not valid UTF-8",
                    })
                }
            },
        }
    }
    Ok(out)
}

fn openat2_dir(root: &OwnedFd, path: &str) -> Result<OwnedFd, Errno> {
    loop {
        match rfs::openat2(
            root,
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Err(Errno::AGAIN) | Err(Errno::INTR) => continue,
            r => return r,
        }
    }
}

/// Opens the directory `comps` (relative to the root, resolved in the root), creating missing
/// directories (mode 0755) when `create`.
fn open_dir_in_root(
    root: &OwnedFd,
    comps: &[String],
    create: bool,
    entry: &str,
) -> Result<OwnedFd, ApplyError> {
    let path = if comps.is_empty() {
        ".".to_string()
    } else {
        comps.join("/")
    };
    match openat2_dir(root, &path) {
        Ok(fd) => return Ok(fd),
        Err(Errno::NOENT) if create => {}
        Err(e) => return Err(fail("open parent directory of", entry)(e)),
    }
    let mut fd = openat2_dir(root, ".").map_err(fail("open root for", entry))?;
    for i in 0..comps.len() {
        let prefix = comps[..=i].join("/");
        fd = match openat2_dir(root, &prefix) {
            Ok(f) => f,
            Err(Errno::NOENT) => {
                match rfs::mkdirat(&fd, comps[i].as_str(), Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(fail("create parent directory of", entry)(e)),
                }
                openat2_dir(root, &prefix).map_err(fail("open parent directory of", entry))?
            }
            Err(e) => return Err(fail("open parent directory of", entry)(e)),
        };
    }
    Ok(fd)
}

/// Removes `name` in `dir`, recursively if it is a directory; never follows symlinks.
fn remove_all_at(dir: &impl AsFd, name: &str) -> Result<(), Errno> {
    let st = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let sub = rfs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut names = Vec::new();
        for e in rfs::Dir::read_from(&sub)? {
            let e = e?;
            let n = e.file_name().to_string_lossy().into_owned();
            if n != "." && n != ".." {
                names.push(n);
            }
        }
        for n in names {
            remove_all_at(&sub, &n)?;
        }
        rfs::unlinkat(dir, name, AtFlags::REMOVEDIR)
    } else {
        rfs::unlinkat(dir, name, AtFlags::empty())
    }
}

fn is_dir_at(dir: &impl AsFd, name: &str) -> bool {
    rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
        .unwrap_or(false)
}

fn apply_entry<R: Read>(
    root: &OwnedFd,
    prefix: &[String],
    entry: &mut tar::Entry<'_, R>,
    dir_times: &mut Vec<(Vec<String>, i64)>,
    opts: &UnpackOptions,
) -> Result<(), ApplyError> {
    let raw_path = entry.path().map_err(ApplyError::Read)?.into_owned();
    let shown = raw_path.to_string_lossy().into_owned();
    let header = entry.header().clone();
    let kind = header.entry_type();
    let mode = header.mode().map_err(ApplyError::Read)? & 0o7777;
    let (uid, gid) = match opts.owners {
        Owners::Fixed(u, g) => (u as u64, g as u64),
        Owners::FromTar => (
            entry_uid(entry).map_err(ApplyError::Read)?,
            entry_gid(entry).map_err(ApplyError::Read)?,
        ),
        Owners::Extractor => (0, 0), // unused: nothing is chowned
    };
    let mtime = match header.mtime() {
        Ok(m) => m as i64,
        Err(_) if fields_blank(&header.as_old().mtime) => 0,
        Err(e) => return Err(ApplyError::Read(e)),
    };
    match kind {
        tar::EntryType::XGlobalHeader
        | tar::EntryType::XHeader
        | tar::EntryType::GNULongName
        | tar::EntryType::GNULongLink => return Ok(()),
        _ => {}
    }
    let mut comps = prefix.to_vec();
    comps.extend(renamed(opts, clean(&raw_path)?, &shown)?);

    let Some((base, parent_comps)) = comps.split_last() else {
        // The root itself ("./"): take its metadata.
        if kind.is_dir() {
            if opts.owners != Owners::Extractor {
                rfs::fchown(
                    root,
                    Some(rfs::Uid::from_raw(uid as u32)),
                    Some(rfs::Gid::from_raw(gid as u32)),
                )
                .map_err(fail("chown", "/"))?;
            }
            rfs::fchmod(root, Mode::from_raw_mode(mode)).map_err(fail("chmod", "/"))?;
            dir_times.push((Vec::new(), mtime));
        }
        return Ok(());
    };
    let parent = open_dir_in_root(root, parent_comps, true, &shown)?;
    // (None, None) chowns nothing: the extractor keeps what it creates.
    let owner = match opts.owners {
        Owners::Extractor => (None, None),
        _ => (
            Some(rfs::Uid::from_raw(uid as u32)),
            Some(rfs::Gid::from_raw(gid as u32)),
        ),
    };

    // Whiteouts.
    if let Some(target) = base.strip_prefix(".wh.").filter(|_| opts.whiteouts) {
        if target == ".wh..opq" {
            rfs::fsetxattr(&parent, "trusted.overlay.opaque", b"y", XattrFlags::empty())
                .map_err(fail("mark opaque", &shown))?;
            return Ok(());
        }
        if target.starts_with(".wh.") {
            return Ok(()); // AUFS metadata (.wh..wh.plnk, .wh..wh.aufs)
        }
        if target.is_empty() || target == "." || target == ".." {
            return Err(ApplyError::Breakout {
                path: shown,
                reason: "invalid whiteout name",
            });
        }
        remove_all_at(&parent, target).map_err(fail("remove whited-out", &shown))?;
        rfs::mknodat(
            &parent,
            target,
            FileType::CharacterDevice,
            Mode::empty(),
            rfs::makedev(0, 0),
        )
        .map_err(fail("create whiteout", &shown))?;
        chown_at(&parent, target, owner).map_err(fail("chown", &shown))?;
        return Ok(());
    }

    if opts.no_overwrite_dir_non_dir {
        if let Ok(st) = rfs::statat(&parent, base.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
            let shown_dst = format!("/{}", comps.join("/"));
            if is_dir && !kind.is_dir() {
                return Err(ApplyError::Overwrite(format!(
                    "cannot overwrite directory {shown_dst:?} with non-directory {shown:?}"
                )));
            }
            if !is_dir && kind.is_dir() {
                return Err(ApplyError::Overwrite(format!(
                    "cannot overwrite non-directory {shown_dst:?} with directory {shown:?}"
                )));
            }
        }
    }
    // Whatever is there is replaced, except a directory by a directory.
    if !(kind.is_dir() && is_dir_at(&parent, base)) {
        remove_all_at(&parent, base).map_err(fail("replace", &shown))?;
    }

    let xattrs = pax_xattrs(entry)?;
    let base = base.as_str();
    match kind {
        tar::EntryType::Directory => {
            match rfs::mkdirat(&parent, base, Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(fail("create directory", &shown)(e)),
            }
            let fd = rfs::openat(
                &parent,
                base,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(fail("open directory", &shown))?;
            finish_fd(&fd, owner, mode, &xattrs, None, &shown)?;
            dir_times.push((comps.clone(), mtime));
        }
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            let fd = rfs::openat(
                &parent,
                base,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .map_err(fail("create file", &shown))?;
            let mut file = std::fs::File::from(fd);
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = entry.read(&mut buf).map_err(ApplyError::Read)?;
                if n == 0 {
                    break;
                }
                io::Write::write_all(&mut file, &buf[..n]).map_err(|err| ApplyError::Io {
                    op: "write",
                    path: shown.clone(),
                    err,
                })?;
            }
            finish_fd(&file, owner, mode, &xattrs, Some(mtime), &shown)?;
        }
        tar::EntryType::Symlink => {
            let target = entry
                .link_name()
                .map_err(ApplyError::Read)?
                .unwrap_or_default()
                .into_owned();
            rfs::symlinkat(target.as_path(), &parent, base).map_err(fail("create symlink", &shown))?;
            chown_at(&parent, base, owner).map_err(fail("chown", &shown))?;
            rfs::utimensat(&parent, base, &timestamps(mtime), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(fail("set times of", &shown))?;
        }
        tar::EntryType::Link => {
            let target = entry
                .link_name()
                .map_err(ApplyError::Read)?
                .unwrap_or_default()
                .into_owned();
            let mut tcomps = prefix.to_vec();
            let cleaned = clean(&target).map_err(|_| ApplyError::Breakout {
                path: shown.clone(),
                reason: "hard link target escapes the root",
            })?;
            tcomps.extend(renamed(opts, cleaned, &shown)?);
            let Some((tbase, tparent)) = tcomps.split_last() else {
                return Err(ApplyError::Breakout {
                    path: shown,
                    reason: "hard link to the root",
                });
            };
            let tdir = open_dir_in_root(root, tparent, false, &shown)?;
            rfs::linkat(&tdir, tbase.as_str(), &parent, base, AtFlags::empty())
                .map_err(fail("create hard link", &shown))?;
        }
        tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
            let ft = match kind {
                tar::EntryType::Char => FileType::CharacterDevice,
                tar::EntryType::Block => FileType::BlockDevice,
                _ => FileType::Fifo,
            };
            let major = header.device_major().ok().flatten().unwrap_or(0);
            let minor = header.device_minor().ok().flatten().unwrap_or(0);
            rfs::mknodat(
                &parent,
                base,
                ft,
                Mode::from_raw_mode(0o600),
                rfs::makedev(major, minor),
            )
            .map_err(fail("create device", &shown))?;
            chown_at(&parent, base, owner).map_err(fail("chown", &shown))?;
            rfs::chmodat(&parent, base, Mode::from_raw_mode(mode), AtFlags::empty())
                .map_err(fail("chmod", &shown))?;
            rfs::utimensat(&parent, base, &timestamps(mtime), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(fail("set times of", &shown))?;
        }
        other => {
            return Err(ApplyError::Unsupported {
                path: shown,
                kind: other.as_byte(),
            })
        }
    }
    Ok(())
}

/// `comps` after the options' [`Rename`], if any.
fn renamed(opts: &UnpackOptions, comps: Vec<String>, shown: &str) -> Result<Vec<String>, ApplyError> {
    match &opts.rename {
        None => Ok(comps),
        Some(r) => r.apply(comps).map_err(|reason| ApplyError::Breakout {
            path: shown.to_string(),
            reason,
        }),
    }
}

/// The owner from the PAX `uid` record if present (large ids), else the header's.
/// An empty numeric field (all NUL or spaces) reads as 0, as Go's archive/tar does.
fn fields_blank(raw: &[u8]) -> bool {
    raw.iter().all(|b| *b == 0 || *b == b' ')
}

fn entry_uid<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<u64> {
    if let Some(v) = pax_number(entry, "uid") {
        return Ok(v);
    }
    let h = entry.header();
    h.uid().or_else(|e| {
        if fields_blank(&h.as_old().uid) {
            Ok(0)
        } else {
            Err(e)
        }
    })
}

fn entry_gid<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<u64> {
    if let Some(v) = pax_number(entry, "gid") {
        return Ok(v);
    }
    let h = entry.header();
    h.gid().or_else(|e| {
        if fields_blank(&h.as_old().gid) {
            Ok(0)
        } else {
            Err(e)
        }
    })
}

fn pax_number<R: Read>(entry: &mut tar::Entry<'_, R>, key: &str) -> Option<u64> {
    let exts = entry.pax_extensions().ok()??;
    for ext in exts.flatten() {
        if ext.key() == Ok(key) {
            return ext.value().ok()?.parse().ok();
        }
    }
    None
}

/// Chowns `base` in `dir` without following it; `(None, None)` (the extractor's) chowns nothing.
fn chown_at(dir: &impl AsFd, base: &str, owner: (Option<rfs::Uid>, Option<rfs::Gid>)) -> Result<(), Errno> {
    if owner == (None, None) {
        return Ok(());
    }
    rfs::chownat(dir, base, owner.0, owner.1, AtFlags::SYMLINK_NOFOLLOW)
}

/// Owner, then mode (chown clears set-id bits), xattrs, times — on an open fd.
fn finish_fd(
    fd: &impl AsFd,
    owner: (Option<rfs::Uid>, Option<rfs::Gid>),
    mode: u32,
    xattrs: &[(String, Vec<u8>)],
    mtime: Option<i64>,
    shown: &str,
) -> Result<(), ApplyError> {
    if owner != (None, None) {
        rfs::fchown(fd, owner.0, owner.1).map_err(fail("chown", shown))?;
    }
    rfs::fchmod(fd, Mode::from_raw_mode(mode)).map_err(fail("chmod", shown))?;
    for (name, value) in xattrs {
        match rfs::fsetxattr(fd, name.as_str(), value, XattrFlags::empty()) {
            Ok(()) | Err(Errno::NOTSUP) => {}
            // An unprivileged extractor cannot set trusted.* or security.* (docker skips them).
            Err(Errno::PERM) if owner == (None, None) => {}
            Err(e) => return Err(fail("set xattr on", shown)(e)),
        }
    }
    if let Some(m) = mtime {
        rfs::futimens(fd, &timestamps(m)).map_err(fail("set times of", shown))?;
    }
    Ok(())
}

/// `SCHILY.xattr.*` PAX records, minus overlay's own attributes (a tar must not forge whiteouts).
fn pax_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Vec<(String, Vec<u8>)>, ApplyError> {
    let mut out = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(ApplyError::Read)? {
        for ext in exts {
            let ext = ext.map_err(ApplyError::Read)?;
            let Ok(key) = ext.key() else { continue };
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                if !name.starts_with("trusted.overlay.") {
                    out.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
    }
    Ok(out)
}

/// Unpacks an ordinary tar (no whiteout interpretation, owners from the tar) into the directory
/// `dir`, with the same confinement as [`apply_layer`]: nothing lands outside `dir`. For reading
/// archives that are not layers (`docker load`).
pub fn extract_tar(dir: &Path, tar: impl Read) -> Result<(), ApplyError> {
    let root = rfs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail("open root", "/"))?;
    unpack(&root, &[], tar, &UnpackOptions::default())?;
    Ok(())
}

/// Opens the file `path` under `root` for reading, resolving every symlink and `..` as if `root`
/// were `/` (`openat2` `RESOLVE_IN_ROOT`): an archive's `"../../etc/shadow"` or a symlink to the
/// host's `/etc` still opens something inside `root`.
pub fn open_in_root(root: &Path, path: &str) -> io::Result<std::fs::File> {
    let dir = rfs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    loop {
        match rfs::openat2(
            &dir,
            path,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Err(Errno::AGAIN) | Err(Errno::INTR) => continue,
            r => return Ok(std::fs::File::from(r?)),
        }
    }
}
