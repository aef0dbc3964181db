//! `berth cp`: copy files between a container and the host through the archive endpoints
//! (`GET`/`HEAD`/`PUT /containers/ID/archive?path=`), renaming the top-level entry the way
//! `docker cp` does when the destination does not exist.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context};

use crate::client::{Body, Query};

use super::create::container_path;
use super::Ctx;

#[derive(clap::Args)]
#[command(
    override_usage = "berth cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n       berth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
    after_help = "Examples:\n  berth cp web:/etc/hostname ./hostname\n  berth cp ./config.json web:/etc/app/"
)]
pub struct Args {
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long)]
    archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    follow_link: bool,
    /// Suppress progress output during copy
    #[arg(short = 'q', long)]
    quiet: bool,
    src: String,
    dest: String,
}

/// `name:path` with a name that is not a path (`./a:b` is a local file).
fn split_container(arg: &str) -> Option<(&str, &str)> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return None;
    }
    let (c, p) = arg.split_once(':')?;
    if c.is_empty() || c.contains('/') {
        return None;
    }
    Some((c, p))
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Whether `path` exists in the container and is a directory (`HEAD …/archive`).
fn stat_container(ctx: &Ctx, c: &str, path: &str) -> anyhow::Result<Option<bool>> {
    let mut q = Query::new();
    q.add("path", path);
    let resp = ctx.client.request(
        "HEAD",
        &container_path(c, &format!("/archive{}", q.encode())),
        Body::Empty,
    )?;
    if resp.status == 404 {
        return Ok(None);
    }
    if resp.status >= 400 {
        return Err(resp.into_error().into());
    }
    let stat = resp
        .header("x-docker-container-path-stat")
        .map(base64_decode)
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_slice(&stat).unwrap_or_default();
    let mode = v["mode"].as_u64().unwrap_or(0);
    Ok(Some(mode & (1 << 31) != 0))
}

/// Replaces the first component of `p` with `to`.
fn rebase(p: &Path, to: &str) -> PathBuf {
    let mut comps = p.components().filter(|c| !matches!(c, Component::CurDir));
    let mut out = PathBuf::from(to);
    comps.next();
    for c in comps {
        out.push(c);
    }
    out
}

fn from_container(ctx: &Ctx, c: &str, src: &str, dest: &str) -> anyhow::Result<()> {
    let mut q = Query::new();
    q.add("path", src);
    let mut resp = ctx.client.call(
        "GET",
        &container_path(c, &format!("/archive{}", q.encode())),
        Body::Empty,
    )?;
    if dest == "-" {
        let mut o = std::io::stdout().lock();
        std::io::copy(resp.reader(), &mut o)?;
        return Ok(o.flush()?);
    }
    let dest_path = Path::new(dest);
    let (root, rename) = if dest_path.is_dir() {
        (dest_path.to_path_buf(), None)
    } else {
        if dest.ends_with('/') {
            bail!("destination directory \"{dest}\" does not exist");
        }
        let parent = dest_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = dest_path
            .file_name()
            .context("invalid destination")?
            .to_string_lossy()
            .into_owned();
        (parent.to_path_buf(), Some(name))
    };
    let mut ar = tar::Archive::new(resp.reader());
    ar.set_preserve_permissions(true);
    for entry in ar.entries()? {
        let mut entry = entry?;
        let p = entry.path()?.into_owned();
        if p.components()
            .any(|c| matches!(c, Component::ParentDir | Component::RootDir))
        {
            bail!("invalid path in archive: {}", p.display());
        }
        let rel = match &rename {
            Some(n) => rebase(&p, n),
            None => p,
        };
        let target = root.join(&rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        entry
            .unpack(&target)
            .with_context(|| format!("failed to write {}", target.display()))?;
    }
    Ok(())
}

fn to_container(
    ctx: &Ctx,
    src: &str,
    c: &str,
    dest: &str,
    archive: bool,
    follow_link: bool,
) -> anyhow::Result<()> {
    let (upload_to, body) = if src == "-" {
        let mut buf = Vec::new();
        std::io::copy(&mut std::io::stdin().lock(), &mut buf)?;
        (dest.to_owned(), buf)
    } else {
        let src_path = Path::new(src);
        let meta = std::fs::symlink_metadata(src_path)
            .map_err(|e| anyhow::anyhow!("lstat {src}: {}", crate::format::go_io_error(&e)))?;
        let (dir, name) = match stat_container(ctx, c, dest)? {
            Some(true) => (
                dest.to_owned(),
                src_path
                    .file_name()
                    .context("invalid source path")?
                    .to_string_lossy()
                    .into_owned(),
            ),
            Some(false) if meta.is_dir() => bail!("cannot copy a directory to a file"),
            _ => {
                if dest.ends_with('/') {
                    bail!("Error response from daemon: Could not find the file {dest} in container {c}");
                }
                let d = Path::new(dest);
                let parent = d
                    .parent()
                    .map(|p| p.to_string_lossy().into_owned())
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "/".into());
                (
                    parent,
                    d.file_name()
                        .context("invalid destination")?
                        .to_string_lossy()
                        .into_owned(),
                )
            }
        };
        let mut b = tar::Builder::new(Vec::new());
        b.follow_symlinks(follow_link);
        if meta.is_dir() {
            b.append_dir_all(&name, src_path)?;
        } else {
            b.append_path_with_name(src_path, &name)?;
        }
        (dir, b.into_inner()?)
    };
    let mut q = Query::new();
    q.add("noOverwriteDirNonDir", "true").add("path", upload_to);
    if archive {
        q.add("copyUIDGID", "true");
    }
    let mut r = &body[..];
    ctx.client.call(
        "PUT",
        &container_path(c, &format!("/archive{}", q.encode())),
        Body::Stream(&mut r, "application/x-tar"),
    )?;
    Ok(())
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let _ = a.quiet;
    match (split_container(&a.src), split_container(&a.dest)) {
        (Some((c, src)), None) => from_container(ctx, c, src, &a.dest)?,
        (None, Some((c, dest))) => to_container(ctx, &a.src, c, dest, a.archive, a.follow_link)?,
        (Some(_), Some(_)) => bail!("copying between containers is not supported"),
        (None, None) => bail!("must specify at least one container source"),
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths_and_base64() {
        assert_eq!(split_container("web:/etc"), Some(("web", "/etc")));
        assert_eq!(split_container("./a:b"), None);
        assert_eq!(split_container("/tmp/x"), None);
        assert_eq!(base64_decode("eyJtb2RlIjoxfQ=="), br#"{"mode":1}"#);
        assert_eq!(rebase(Path::new("hostname/a"), "h2"), PathBuf::from("h2/a"));
    }
}
