//! Git build contexts (`remote=git://…`, `https://…/repo.git#ref:dir`, `git@…`), as moby's
//! `builder/remotecontext/git`: the repository is fetched with the `git` binary into a private
//! directory under `<data-root>/build/` (swept at start like an unpacked context), shallow
//! where the transport allows, the ref checked out (a branch or tag by name, else what was
//! fetched: a commit), the subdirectory resolved inside the checkout, and that directory sent
//! on as the context tar. The clone is removed before the build starts.

use std::io::Seek;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Docker's `IsGitURL`: an http(s) URL matching `.git(#.+)?$` (any character before `git`,
/// as the regular expression has it), or a `git://`, `git@` or `github.com/` prefix.
pub fn is_git_url(url: &str) -> bool {
    let is_http = url.starts_with("http://") || url.starts_with("https://");
    if is_http {
        let git_end = |s: &str| s.len() >= 4 && s.ends_with("git");
        if git_end(url) {
            return true;
        }
        for (i, _) in url.match_indices('#') {
            if i + 1 < url.len() && git_end(&url[..i]) {
                return true;
            }
        }
    }
    url.starts_with("git://") || url.starts_with("git@") || url.starts_with("github.com/")
}

/// A git context's parts: the remote, the ref (`master` when not given) and the subdirectory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRepo {
    pub remote: String,
    pub git_ref: String,
    pub subdir: String,
}

/// moby's `parseRemoteURL`: `https://` is added to what is no URL or git transport; the
/// fragment is `ref[:subdir]`; a ref starting with `-` is refused.
pub fn parse_remote_url(url: &str) -> Result<GitRepo, String> {
    let transport = url.starts_with("http://")
        || url.starts_with("https://")
        || url.starts_with("git://")
        || url.starts_with("git@");
    let url = if transport {
        url.to_string()
    } else {
        format!("https://{url}")
    };
    let (remote, fragment) = match url.split_once('#') {
        Some((r, f)) => (r.to_string(), f),
        None => (url.clone(), ""),
    };
    let (r, dir) = fragment.split_once(':').unwrap_or((fragment, ""));
    let git_ref = if r.is_empty() { "master" } else { r }.to_string();
    if git_ref.starts_with('-') {
        return Err(format!("invalid refspec: {git_ref}"));
    }
    Ok(GitRepo {
        remote,
        git_ref,
        subdir: dir.to_string(),
    })
}

/// Removes the clone when dropped (success or failure).
struct Clone(PathBuf);

impl Drop for Clone {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `git --work-tree D --git-dir D/.git args…`, never prompting; its combined output on failure.
fn git(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("git")
        .arg("--work-tree")
        .arg(dir)
        .arg("--git-dir")
        .arg(dir.join(".git"))
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "unable to find 'git': git not installed on PATH".to_string(),
            _ => format!("running git: {e}"),
        })?;
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Err(text.trim_end().to_string())
}

/// Fetches the repository into a new directory under `base` and returns the context as a tar
/// (an unlinked temporary file, rewound); the checkout is gone when this returns.
pub fn context_tar(base: &Path, url: &str) -> Result<std::fs::File, String> {
    let repo = parse_remote_url(url)?;
    let dir = base.join(format!("git-{}", crate::daemon::random_id()));
    berth_sys::fs::create_private_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let clone = Clone(dir);
    let root = clone.0.as_path();
    git(root, &["init", "-q"]).map_err(|o| format!("failed to init repo at {}: {o}", root.display()))?;
    git(root, &["remote", "add", "origin", &repo.remote])
        .map_err(|o| format!("failed to add remote origin: {o}"))?;
    // Shallow first; a dumb http server cannot serve a shallow fetch, so it gets a full one.
    let shallow = git(
        root,
        &["fetch", "-q", "--depth", "1", "origin", "--", &repo.git_ref],
    );
    if let Err(first) = shallow {
        let http = repo.remote.starts_with("http://") || repo.remote.starts_with("https://");
        if !http {
            return Err(format!("error fetching: {first}"));
        }
        git(root, &["fetch", "-q", "origin", "--", &repo.git_ref])
            .map_err(|o| format!("error fetching: {o}"))?;
    }
    if let Err(o) = git(root, &["checkout", "-q", &repo.git_ref]) {
        git(root, &["checkout", "-q", "FETCH_HEAD"])
            .map_err(|_| format!("error checking out {}: {o}", repo.git_ref))?;
    }
    let sub = Command::new("git")
        .args(["submodule", "update", "--init", "--recursive", "--depth=1"])
        .current_dir(root)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running git: {e}"))?;
    if !sub.status.success() {
        return Err(format!(
            "error initializing submodules: {}",
            String::from_utf8_lossy(&sub.stderr).trim_end()
        ));
    }
    let ctx = if repo.subdir.is_empty() {
        root.to_path_buf()
    } else {
        subdir_in(root, &repo.subdir)?
    };
    let tar_path = base.join(format!("git-{}.tar", crate::daemon::random_id()));
    let mut file = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&tar_path)
        .map_err(|e| format!("creating the context tar: {e}"))?;
    let _ = std::fs::remove_file(&tar_path);
    berth_archive::export_tar(&ctx, &mut file).map_err(|e| format!("archiving the git context: {e}"))?;
    file.rewind()
        .map_err(|e| format!("archiving the git context: {e}"))?;
    Ok(file)
}

/// The `:dir` of the fragment, resolved inside the checkout (symlinks followed in its scope,
/// as moby's `FollowSymlinkInScope`), which must be a directory.
fn subdir_in(root: &Path, subdir: &str) -> Result<PathBuf, String> {
    let f = berth_archive::open_in_root(root, subdir)
        .map_err(|e| format!("error setting git context, {subdir:?} not within git root: {e}"))?;
    let real = std::fs::read_link(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&f)))
        .map_err(|e| format!("error setting git context: {e}"))?;
    if !real.starts_with(root) {
        return Err(format!(
            "error setting git context, {subdir:?} not within git root"
        ));
    }
    let md = f
        .metadata()
        .map_err(|e| format!("error setting git context: {e}"))?;
    if !md.is_dir() {
        return Err(format!(
            "error setting git context, not a directory: {}",
            real.display()
        ));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_urls_as_dockers_is_git_url() {
        for u in [
            "git://example.com/r",
            "git@github.com:o/r.git",
            "github.com/o/r",
            "https://example.com/r.git",
            "https://example.com/r.git#main:dir",
            "http://example.com/foogit",
        ] {
            assert!(is_git_url(u), "{u}");
        }
        for u in [
            "https://example.com/ctx.tar",
            "https://example.com/r.git#",
            "https://example.com/gi",
            "example.com/r.git",
        ] {
            assert!(!is_git_url(u), "{u}");
        }
    }

    #[test]
    fn fragments_give_ref_and_subdir_with_master_by_default() {
        let r = parse_remote_url("git://127.0.0.1/r.git#dev:sub/dir").unwrap();
        assert_eq!(
            (r.remote.as_str(), r.git_ref.as_str(), r.subdir.as_str()),
            ("git://127.0.0.1/r.git", "dev", "sub/dir")
        );
        let r = parse_remote_url("github.com/o/r#:docs").unwrap();
        assert_eq!(
            (r.remote.as_str(), r.git_ref.as_str(), r.subdir.as_str()),
            ("https://github.com/o/r", "master", "docs")
        );
        let r = parse_remote_url("git@host:o/r.git#v1").unwrap();
        assert_eq!(
            (r.remote.as_str(), r.git_ref.as_str()),
            ("git@host:o/r.git", "v1")
        );
        assert_eq!(
            parse_remote_url("git://h/r#--upload-pack=x").unwrap_err(),
            "invalid refspec: --upload-pack=x"
        );
    }
}
