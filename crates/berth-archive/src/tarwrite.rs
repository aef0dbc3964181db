//! Writing a directory tree as a tar stream, without ever following a symlink: every directory is
//! opened relative to its parent's fd with `O_NOFOLLOW`, every file is opened the same way and
//! described from `fstat` of the open fd. The tree may belong to a running container, so a
//! symlink swapped in mid-walk is read as a symlink, never followed to the host.
//!
//! Entries carry numeric uid/gid (no user names), mode, mtime (seconds), device numbers and
//! xattrs (PAX `SCHILY.xattr.*`, minus `trusted.overlay.*` and `security.selinux`); names or
//! link targets longer than 100 bytes and ids that do not fit the header go in PAX records.
//! A file seen again through another hard link (same device and inode, in this tree) becomes a
//! hard-link entry to the first name. Sockets are skipped. A regular file that changes size
//! while it is read is cut or zero-padded to the size its header announced.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::walk::{dir_names, is_opaque, open_dir, read_xattrs};
use crate::ArchiveError;

/// What the tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// A plain tree (export, cp): everything as it is.
    Plain,
    /// An overlay upper dir: whiteouts (char 0:0) become `.wh.<name>`, opaque directories get a
    /// `.wh..wh..opq` entry.
    OverlayUpper,
}

pub(crate) struct TarWriter<'w> {
    b: tar::Builder<&'w mut dyn Write>,
    flavor: Flavor,
    links: HashMap<(u64, u64), String>,
    /// Directories on another device than this one (mount points) are written, not entered.
    root_dev: Option<u64>,
    pub(crate) entries: u64,
}

/// Exactly `left` bytes: the file's, then zeros if it shrank.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = match self.inner.read(&mut buf[..max])? {
            0 => {
                buf[..max].fill(0);
                max
            }
            n => n,
        };
        self.left -= n as u64;
        Ok(n)
    }
}

fn header(st: &rfs::Stat, kind: tar::EntryType) -> (tar::Header, Vec<(String, Vec<u8>)>) {
    let mut pax = Vec::new();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    for (id, key) in [(st.st_uid, "uid"), (st.st_gid, "gid")] {
        let v = if id > 0o7_777_777 {
            pax.push((key.to_string(), id.to_string().into_bytes()));
            0
        } else {
            id as u64
        };
        if key == "uid" {
            h.set_uid(v);
        } else {
            h.set_gid(v);
        }
    }
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    (h, pax)
}

impl<'w> TarWriter<'w> {
    pub(crate) fn new(w: &'w mut dyn Write, flavor: Flavor) -> Self {
        TarWriter {
            b: tar::Builder::new(w),
            flavor,
            links: HashMap::new(),
            root_dev: None,
            entries: 0,
        }
    }

    /// Do not descend into directories on another device than `dir` (mount points).
    pub(crate) fn stay_on_device_of(&mut self, dir: &impl AsFd) -> io::Result<()> {
        self.root_dev = Some(rfs::fstat(dir)?.st_dev);
        Ok(())
    }

    /// Writes the end-of-archive blocks and flushes.
    pub(crate) fn finish(self) -> io::Result<()> {
        let w = self.b.into_inner()?;
        w.flush()
    }

    fn emit(
        &mut self,
        mut h: tar::Header,
        mut pax: Vec<(String, Vec<u8>)>,
        name: &str,
        link: Option<&[u8]>,
        xattrs: Vec<(String, Vec<u8>)>,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        {
            let old = h.as_old_mut();
            let nb = name.as_bytes();
            if nb.len() > old.name.len() {
                pax.push(("path".into(), nb.to_vec()));
            }
            let n = nb.len().min(old.name.len());
            old.name[..n].copy_from_slice(&nb[..n]);
            if let Some(link) = link {
                if link.len() > old.linkname.len() {
                    pax.push(("linkpath".into(), link.to_vec()));
                }
                let n = link.len().min(old.linkname.len());
                old.linkname[..n].copy_from_slice(&link[..n]);
            }
        }
        for (k, v) in xattrs {
            pax.push((format!("SCHILY.xattr.{k}"), v));
        }
        if !pax.is_empty() {
            self.b
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
        }
        h.set_cksum();
        self.entries += 1;
        self.b.append(&h, data)
    }

    /// Writes the children of the open directory `dir`, named `<prefix><child>` (prefix empty or
    /// ending in `/`), recursively.
    pub(crate) fn add_children(&mut self, dir: &OwnedFd, prefix: &str) -> io::Result<()> {
        for name in dir_names(dir)? {
            self.add(dir, &name, &format!("{prefix}{name}"))?;
        }
        Ok(())
    }

    /// Writes `base` (in the open directory `parent`) as entry `name`, and its tree if it is a
    /// directory. A name that vanished meanwhile is skipped.
    pub(crate) fn add(&mut self, parent: &OwnedFd, base: &str, name: &str) -> io::Result<()> {
        let st = match rfs::statat(parent, base, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft == FileType::Directory {
            let fd = match open_dir(parent, base) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            let st = rfs::fstat(&fd)?;
            let (h, pax) = header(&st, tar::EntryType::Directory);
            let dname = if name.ends_with('/') {
                name.to_string()
            } else {
                format!("{name}/")
            };
            self.emit(h, pax, &dname, None, read_xattrs(&fd), &mut io::empty())?;
            if self.flavor == Flavor::OverlayUpper && is_opaque(&fd) {
                let mut h = header(&st, tar::EntryType::Regular).0;
                h.set_mode(0o644);
                self.emit(
                    h,
                    Vec::new(),
                    &format!("{dname}.wh..wh..opq"),
                    None,
                    Vec::new(),
                    &mut io::empty(),
                )?;
            }
            if self.root_dev.is_none_or(|d| d == st.st_dev) {
                self.add_children(&fd, &dname)?;
            }
            return Ok(());
        }
        if ft == FileType::Socket {
            return Ok(());
        }
        if ft == FileType::CharacterDevice && self.flavor == Flavor::OverlayUpper && st.st_rdev == 0 {
            let (mut h, pax) = header(&st, tar::EntryType::Regular);
            h.set_mode(0o644);
            let wname = match name.rsplit_once('/') {
                Some((dir, b)) => format!("{dir}/.wh.{b}"),
                None => format!(".wh.{name}"),
            };
            return self.emit(h, pax, &wname, None, Vec::new(), &mut io::empty());
        }
        if st.st_nlink > 1 {
            let key = (st.st_dev as u64, st.st_ino as u64);
            if let Some(first) = self.links.get(&key).cloned() {
                let (h, pax) = header(&st, tar::EntryType::Link);
                return self.emit(h, pax, name, Some(first.as_bytes()), Vec::new(), &mut io::empty());
            }
            self.links.insert(key, name.to_string());
        }
        match ft {
            FileType::RegularFile => {
                let fd = match rfs::openat(
                    parent,
                    base,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(fd) => fd,
                    Err(Errno::NOENT) => return Ok(()),
                    Err(e) => return Err(e.into()),
                };
                let st = rfs::fstat(&fd)?;
                if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                    return Ok(()); // swapped for something else meanwhile
                }
                let (mut h, pax) = header(&st, tar::EntryType::Regular);
                let size = st.st_size.max(0) as u64;
                h.set_size(size);
                let xattrs = read_xattrs(&fd);
                let mut data = Exact {
                    inner: std::fs::File::from(fd),
                    left: size,
                };
                self.emit(h, pax, name, None, xattrs, &mut data)
            }
            FileType::Symlink => {
                let target = match rfs::readlinkat(parent, base, Vec::new()) {
                    Ok(t) => t,
                    Err(Errno::NOENT) => return Ok(()),
                    Err(e) => return Err(e.into()),
                };
                let (h, pax) = header(&st, tar::EntryType::Symlink);
                self.emit(
                    h,
                    pax,
                    name,
                    Some(target.as_bytes()),
                    Vec::new(),
                    &mut io::empty(),
                )
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                let kind = match ft {
                    FileType::CharacterDevice => tar::EntryType::Char,
                    FileType::BlockDevice => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                };
                let (mut h, pax) = header(&st, kind);
                if ft != FileType::Fifo {
                    h.set_device_major(rfs::major(st.st_rdev))?;
                    h.set_device_minor(rfs::minor(st.st_rdev))?;
                }
                self.emit(h, pax, name, None, Vec::new(), &mut io::empty())
            }
            _ => Ok(()),
        }
    }
}

/// Writes the overlay upper dir `upper` as an OCI layer tar: its files as they are (numeric
/// owners, modes, mtimes, xattrs without `trusted.overlay.*`, hard links within the dir), each
/// whiteout as an empty `.wh.<name>`, each opaque directory followed by `<dir>/.wh..wh..opq`.
/// Returns the number of entries written (0: the container changed nothing).
pub fn write_layer_tar(upper: &Path, w: &mut dyn Write) -> Result<u64, ArchiveError> {
    let root = crate::container::open_root(upper)?;
    let mut tw = TarWriter::new(w, Flavor::OverlayUpper);
    tw.add_children(&root, "").map_err(ArchiveError::Write)?;
    let n = tw.entries;
    tw.finish().map_err(ArchiveError::Write)?;
    Ok(n)
}
