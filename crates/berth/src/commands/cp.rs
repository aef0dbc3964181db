//! `berth cp`: copy files between a container and the host through the archive endpoints
//! (`GET`/`HEAD`/`PUT /containers/ID/archive?path=`). Out of a container, the archive is extracted
//! by `berth_archive::copy_to`: docker cp's destination rules, with the daemon's confinement.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use berth_archive::{CopySource, PathStat};

use crate::client::{Body, Query};

use super::create::container_path;
use super::Ctx;

const STAT_HEADER: &str = "x-docker-container-path-stat";

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

/// `HEAD …/archive`: the path's stat, or `None` when it does not exist.
fn stat_container(ctx: &Ctx, c: &str, path: &str) -> anyhow::Result<Option<PathStat>> {
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
    Ok(resp.header(STAT_HEADER).and_then(PathStat::from_header_value))
}

/// Copies out of the container: the daemon's archive is extracted by berth-archive with docker
/// cp's destination rules, confined to the destination (never the `tar` crate's `unpack`, which
/// resolves hard links against our working directory).
fn from_container(ctx: &Ctx, c: &str, src: &str, dest: &str, follow_link: bool) -> anyhow::Result<()> {
    let (mut path, mut rebase_name) = (src.to_string(), None);
    if follow_link {
        if let Some(st) = stat_container(ctx, c, src)?.filter(PathStat::is_symlink) {
            (path, rebase_name) = berth_archive::follow_link(src, &st.link_target);
        }
    }
    let mut q = Query::new();
    q.add("path", &path);
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
    let is_dir = resp
        .header(STAT_HEADER)
        .and_then(PathStat::from_header_value)
        .is_some_and(|st| st.is_dir());
    let source = CopySource {
        path: &path,
        is_dir,
        rebase_name: rebase_name.as_deref(),
    };
    berth_archive::copy_to(resp.reader(), &source, dest)?;
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
        let (dir, name) = match stat_container(ctx, c, dest)?.map(|st| st.is_dir()) {
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
        (Some((c, src)), None) => from_container(ctx, c, src, &a.dest, a.follow_link)?,
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
    fn container_paths() {
        assert_eq!(split_container("web:/etc"), Some(("web", "/etc")));
        assert_eq!(split_container("./a:b"), None);
        assert_eq!(split_container("/tmp/x"), None);
    }
}
