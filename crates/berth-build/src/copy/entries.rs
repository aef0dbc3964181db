//! COPY/ADD's sources as entries: resolving paths and globs in the context, directory trees,
//! archives (detected, decompressed, read as entries), `--chown`/`--chmod`, the content
//! checksum that is the step's cache key, and the tar the entries are written as.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::ignore::clean;
use crate::Error;

pub(super) enum Body {
    Dir,
    File(PathBuf),
    Bytes(Vec<u8>),
    Symlink(String),
}

/// One file to write, relative to the destination root (`/`).
pub(super) struct Entry {
    pub(super) path: String,
    pub(super) body: Body,
    pub(super) mode: u32,
    pub(super) mtime: u64,
}

/// An archive ADD unpacks (plain or compressed tar), with its destination directory.
pub(super) struct Archive {
    pub(super) dest: String,
    pub(super) bytes: Vec<u8>,
}

pub(super) fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

pub(super) fn not_found(cmd: &str, src: &str) -> Error {
    Error::NotFound(format!(
        "{} failed: file not found in build context or excluded by .dockerignore: stat {src}: file does not exist",
        cmd.to_ascii_uppercase()
    ))
}

/// Resolves `rel` inside `root`, following symlinks only inside it.
pub(super) fn resolve_in(root: &Path, rel: &str, cmd: &str, shown: &str) -> Result<PathBuf, Error> {
    let cleaned = clean(&format!("/{rel}"));
    let cleaned = if cleaned == "." { String::new() } else { cleaned };
    let canon_root = root
        .canonicalize()
        .map_err(|e| Error::Io(format!("context: {e}")))?;
    let p = canon_root.join(&cleaned);
    let real = p.canonicalize().map_err(|_| not_found(cmd, shown))?;
    if !real.starts_with(&canon_root) {
        return Err(Error::Invalid(format!(
            "Forbidden path outside the build context: {shown} ()"
        )));
    }
    Ok(real)
}

pub(super) fn mode_of(md: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    md.permissions().mode() & 0o7777
}

pub(super) fn mtime_of(md: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    md.mtime().max(0) as u64
}

/// Adds `src` (a file, dir or symlink in the context) to `out` as `dest`; a directory's tree
/// goes below `dest`.
pub(super) fn add_tree(src: &Path, dest: &str, out: &mut Vec<Entry>, top: bool) -> Result<(), Error> {
    let md = if top {
        std::fs::metadata(src)
    } else {
        std::fs::symlink_metadata(src)
    }
    .map_err(|e| Error::Io(format!("{}: {e}", src.display())))?;
    let ft = md.file_type();
    if ft.is_symlink() {
        let t = std::fs::read_link(src).map_err(|e| Error::Io(e.to_string()))?;
        out.push(Entry {
            path: dest.to_string(),
            body: Body::Symlink(t.to_string_lossy().into_owned()),
            mode: 0o777,
            mtime: mtime_of(&md),
        });
    } else if ft.is_dir() {
        out.push(Entry {
            path: dest.to_string(),
            body: Body::Dir,
            mode: mode_of(&md),
            mtime: mtime_of(&md),
        });
        let mut names: Vec<_> = std::fs::read_dir(src)
            .map_err(|e| Error::Io(e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        names.sort();
        for n in names {
            let n = n.to_string_lossy().into_owned();
            add_tree(&src.join(&n), &join(dest, &n), out, false)?;
        }
    } else if ft.is_file() {
        out.push(Entry {
            path: dest.to_string(),
            body: Body::File(src.to_path_buf()),
            mode: mode_of(&md),
            mtime: mtime_of(&md),
        });
    }
    Ok(())
}

pub(super) fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{}/{b}", a.trim_end_matches('/'))
    }
}

pub(super) fn base_name(p: &str) -> String {
    p.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_string()
}

/// Expands a glob over the context's relative paths (component-wise, as filepath.Match).
pub(super) fn glob_context(root: &Path, pattern: &str) -> Vec<String> {
    let pat = clean(pattern);
    let parts: Vec<&str> = pat.split('/').collect();
    let mut found = vec![String::new()];
    for part in parts {
        let mut next = Vec::new();
        for base in &found {
            let dir = root.join(base);
            if has_glob(part) {
                let Ok(rd) = std::fs::read_dir(&dir) else { continue };
                let mut names: Vec<String> = rd
                    .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                    .filter(|n| crate::shell::glob_match(part, n))
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|n| join(base, &n)));
            } else if dir.join(part).symlink_metadata().is_ok() {
                next.push(join(base, part));
            }
        }
        found = next;
    }
    found
}

/// Is this a tar archive (maybe compressed) ADD should unpack?
pub(super) fn archive_kind(bytes: &[u8]) -> bool {
    matches!(
        bytes,
        [0x1f, 0x8b, ..]
            | [b'B', b'Z', b'h', ..]
            | [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..]
            | [0x28, 0xb5, 0x2f, 0xfd, ..]
    ) || (bytes.len() > 262 && &bytes[257..262] == b"ustar")
}

pub(super) fn decompress(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let r: Box<dyn Read + '_> = match bytes {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(bytes)),
        [b'B', b'Z', b'h', ..] => Box::new(bzip2::read::MultiBzDecoder::new(bytes)),
        [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Box::new(xz2::read::XzDecoder::new_multi_decoder(bytes)),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => {
            Box::new(zstd::stream::read::Decoder::new(bytes).map_err(|e| Error::Io(e.to_string()))?)
        }
        _ => Box::new(bytes),
    };
    let mut r = r;
    r.read_to_end(&mut out)
        .map_err(|e| Error::Io(format!("unpacking archive: {e}")))?;
    Ok(out)
}

/// Parses `--chmod` (octal).
pub(super) fn parse_chmod(s: &str) -> Result<u32, Error> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| Error::Invalid(format!("invalid chmod parameter: {s}")))
}

/// Looks a name up in a passwd/group file text.
pub(super) fn lookup_id(text: &str, name: &str) -> Option<u32> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[0] == name).then(|| f[2].parse().ok()).flatten()
    })
}

/// Resolves `--chown=user[:group]` in the root `root` (names through /etc/passwd, /etc/group).
pub(super) fn resolve_chown(spec: &str, root: Option<&Path>) -> Result<(u32, u32), Error> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let read = |f: &str| -> String {
        root.and_then(|r| crate::copy::read_in_root(r, f))
            .unwrap_or_default()
    };
    let uid = match u.parse::<u32>() {
        Ok(n) => n,
        Err(_) => lookup_id(&read("etc/passwd"), u)
            .ok_or_else(|| Error::Invalid(format!("unable to convert uid/gid chown string to host mapping: can't find uid for user {u}: no such user: {u}")))?,
    };
    let gid = match g {
        None => match u.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                let p = read("etc/passwd");
                p.lines()
                    .find_map(|l| {
                        let f: Vec<&str> = l.split(':').collect();
                        (f.len() > 3 && f[0] == u).then(|| f[3].parse().ok()).flatten()
                    })
                    .unwrap_or(uid)
            }
        },
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup_id(&read("etc/group"), g)
                .ok_or_else(|| Error::Invalid(format!("unable to convert uid/gid chown string to host mapping: can't find gid for group {g}: no such group: {g}")))?,
        },
    };
    Ok((uid, gid))
}

/// Reads a small file inside a root without following symlinks out of it.
pub(crate) fn read_in_root(root: &Path, rel: &str) -> Option<String> {
    let p = root.join(rel);
    let real = p.canonicalize().ok()?;
    if !real.starts_with(root.canonicalize().ok()?) {
        return None;
    }
    std::fs::read_to_string(real).ok()
}

/// Builds the tar of `entries` (with `dirs` to create first), relative to `base` (a directory
/// prefix stripped from every path), owned by `owner`.
pub(super) fn write_tar(
    w: &mut dyn Write,
    dirs: &[String],
    entries: &[Entry],
    base: &str,
    owner: (u32, u32),
    dir_owner: (u32, u32),
) -> Result<(), Error> {
    let io = |e: std::io::Error| Error::Io(format!("writing layer: {e}"));
    let mut tb = tar::Builder::new(w);
    let rel = |p: &str| -> String {
        let p = p.trim_start_matches('/');
        let b = base.trim_start_matches('/');
        if b.is_empty() {
            p.to_string()
        } else {
            p.strip_prefix(b).unwrap_or(p).trim_start_matches('/').to_string()
        }
    };
    for d in dirs {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_uid(dir_owner.0 as u64);
        h.set_gid(dir_owner.1 as u64);
        h.set_size(0);
        h.set_mtime(0);
        let name = format!("{}/", rel(d));
        tb.append_data(&mut h, name, std::io::empty()).map_err(io)?;
    }
    for e in entries {
        let name = rel(&e.path);
        let mut h = tar::Header::new_gnu();
        h.set_mode(e.mode);
        h.set_uid(owner.0 as u64);
        h.set_gid(owner.1 as u64);
        h.set_mtime(e.mtime);
        match &e.body {
            Body::Dir => {
                if name.is_empty() {
                    continue;
                }
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                tb.append_data(&mut h, format!("{name}/"), std::io::empty())
                    .map_err(io)?;
            }
            Body::Symlink(t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                tb.append_link(&mut h, &name, t).map_err(io)?;
            }
            Body::File(p) => {
                let f = std::fs::File::open(p).map_err(io)?;
                let len = f.metadata().map_err(io)?.len();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(len);
                tb.append_data(&mut h, &name, f).map_err(io)?;
            }
            Body::Bytes(b) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(b.len() as u64);
                tb.append_data(&mut h, &name, &b[..]).map_err(io)?;
            }
        }
    }
    tb.finish().map_err(io)?;
    Ok(())
}

/// The cache key of the entries: path, mode, owner spec and content (no mtimes).
pub(super) fn checksum(entries: &[Entry], archives: &[Archive], extra: &str) -> Result<String, Error> {
    let mut h = Sha256::new();
    h.update(extra.as_bytes());
    for e in entries {
        h.update(e.path.as_bytes());
        h.update([0]);
        h.update(e.mode.to_be_bytes());
        match &e.body {
            Body::Dir => h.update(b"d"),
            Body::Symlink(t) => {
                h.update(b"l");
                h.update(t.as_bytes());
            }
            Body::Bytes(b) => {
                h.update(b"f");
                h.update(b);
            }
            Body::File(p) => {
                h.update(b"f");
                let mut f = std::fs::File::open(p).map_err(|e| Error::Io(e.to_string()))?;
                std::io::copy(&mut f, &mut h).map_err(|e| Error::Io(e.to_string()))?;
            }
        }
        h.update([0]);
    }
    for a in archives {
        h.update(a.dest.as_bytes());
        h.update(&a.bytes);
    }
    Ok(format!("{:x}", h.finalize()))
}

/// A tar entry of a source archive as a COPY entry at `path`: directories, symlinks and
/// regular files; None for other kinds (devices, hard links), which COPY skips.
pub(super) fn entry_of<R: Read>(ent: &mut tar::Entry<'_, R>, path: String) -> Result<Option<Entry>, Error> {
    let io = |e: std::io::Error| Error::Io(format!("reading source: {e}"));
    let h = ent.header();
    let mode = h.mode().unwrap_or(0o644) & 0o7777;
    let mtime = h.mtime().unwrap_or(0);
    let body = match h.entry_type() {
        tar::EntryType::Directory => Body::Dir,
        tar::EntryType::Symlink => Body::Symlink(
            ent.link_name()
                .map_err(io)?
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ),
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            let mut b = Vec::new();
            ent.read_to_end(&mut b).map_err(io)?;
            Body::Bytes(b)
        }
        _ => return Ok(None),
    };
    Ok(Some(Entry {
        path,
        body,
        mode,
        mtime,
    }))
}

/// Entries from a tar stream (`--from`: what a container's path holds), re-rooted at `dest`.
/// The tar's first entry is the source itself (`name` or `name/`); with `contents`, a
/// directory's entries go below `dest` directly.
pub(super) fn entries_from_tar(
    bytes: &[u8],
    dest: &str,
    into_dir: bool,
    out: &mut Vec<Entry>,
) -> Result<(), Error> {
    let mut ar = tar::Archive::new(bytes);
    let io = |e: std::io::Error| Error::Io(format!("reading source: {e}"));
    let mut top: Option<(String, bool)> = None;
    for ent in ar.entries().map_err(io)? {
        let mut ent = ent.map_err(io)?;
        let path = ent
            .path()
            .map_err(io)?
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        let h = ent.header();
        let is_dir = h.entry_type().is_dir();
        let (first, rest) = match path.split_once('/') {
            Some((a, b)) => (a.to_string(), b.to_string()),
            None => (path.clone(), String::new()),
        };
        if top.is_none() {
            top = Some((first.clone(), is_dir));
        }
        let (_, top_dir) = top.clone().unwrap_or_default();
        let target = if top_dir {
            if rest.is_empty() {
                dest.to_string()
            } else {
                join(dest, &rest)
            }
        } else if into_dir {
            join(dest, &first)
        } else {
            dest.to_string()
        };
        if let Some(e) = entry_of(&mut ent, target)? {
            out.push(e);
        }
    }
    Ok(())
}

/// Entries from a tar of a directory's contents (`./…`), keeping what the wildcard `pattern`
/// matches at the top: a matched file goes into `dest` (a directory) or becomes it; a matched
/// directory's contents go into `dest`.
pub(super) fn entries_from_glob_tar(
    bytes: &[u8],
    pattern: &str,
    dest: &str,
    into_dir: bool,
    out: &mut Vec<Entry>,
) -> Result<(), Error> {
    let mut ar = tar::Archive::new(bytes);
    let io = |e: std::io::Error| Error::Io(format!("reading source: {e}"));
    let mut matched = 0;
    for ent in ar.entries().map_err(io)? {
        let mut ent = ent.map_err(io)?;
        let path = ent.path().map_err(io)?.to_string_lossy().into_owned();
        let path = path.trim_start_matches("./").trim_end_matches('/').to_string();
        if path.is_empty() || path == "." {
            continue;
        }
        let (first, below) = match path.split_once('/') {
            Some((a, b)) => (a.to_string(), b.to_string()),
            None => (path.clone(), String::new()),
        };
        if !crate::shell::glob_match(pattern, &first) {
            continue;
        }
        let h = ent.header();
        let is_dir = h.entry_type().is_dir();
        let target = if !below.is_empty() {
            join(dest, &below)
        } else if is_dir || !into_dir {
            dest.to_string()
        } else {
            join(dest, &first)
        };
        if below.is_empty() {
            matched += 1;
        }
        if let Some(e) = entry_of(&mut ent, target)? {
            out.push(e);
        }
    }
    if matched == 0 {
        return Err(Error::NotFound(
            "COPY failed: no source files were specified".into(),
        ));
    }
    Ok(())
}

pub(super) fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

pub(super) fn parent(p: &str) -> String {
    let t = p.trim_end_matches('/');
    match t.rfind('/') {
        Some(0) | None => "/".into(),
        Some(i) => t[..i].to_string(),
    }
}
