//! Lookups inside a container's root filesystem, confined to it: `-u` resolution against the
//! container's `/etc/passwd` and `/etc/group`, and the "can this be exec'd" check that gives
//! docker's 127/126 messages before the process is started.
//!
//! Every path is resolved with `openat2(RESOLVE_IN_ROOT)`, so `..` and absolute symlinks inside
//! the image can never lead outside `rootfs`.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};

use crate::Error;

/// Why the container's command cannot be executed, with docker's exact message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// Exit code 127: the command does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Exit code 126: it exists but cannot be executed.
    #[error("{0}")]
    CannotExecute(String),
}

impl ExecError {
    /// The exit code docker reports for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            ExecError::NotFound(_) => 127,
            ExecError::CannotExecute(_) => 126,
        }
    }
}

fn open_root(rootfs: &Path) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

fn open_in_root(root: &OwnedFd, path: &str, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat2(
        root,
        path,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT,
    )
}

/// Reads a small file of the container (`/etc/passwd`); `None` when it does not exist.
fn read_in_root(root: &OwnedFd, path: &str) -> std::io::Result<Option<String>> {
    match open_in_root(root, path, OFlags::RDONLY) {
        Ok(fd) => {
            let mut s = String::new();
            std::fs::File::from(fd).read_to_string(&mut s)?;
            Ok(Some(s))
        }
        Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A process's user as dockerd and runc set it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    /// The supplementary groups: the primary group first (dockerd since 20.10.18, the fix for
    /// CVE-2022-36109), then the groups listing the user as a member (only when `-u` names no
    /// group), then `--group-add`'s, each gid once.
    pub additional_gids: Vec<u32>,
    /// The home directory of the uid's `/etc/passwd` entry, `/` without one: runc's `HOME` when
    /// the process's environment has none.
    pub home: String,
}

/// Resolves docker's `-u` (`name`, `uid`, `uid:gid`, `name:group`, empty = root) against the
/// container's `/etc/passwd` and `/etc/group`, read confined to `rootfs`, with `group_add`
/// (docker's `--group-add`: group names from the same `/etc/group`, or numeric gids).
pub fn resolve_user(rootfs: &Path, user: &str, group_add: &[String]) -> Result<ExecUser, Error> {
    let io = |err| Error::Io {
        err,
        path: rootfs.to_path_buf(),
        op: "read user database in",
    };
    let root = open_root(rootfs).map_err(io)?;
    let passwd = read_in_root(&root, "/etc/passwd")
        .map_err(io)?
        .unwrap_or_default();
    let group = read_in_root(&root, "/etc/group").map_err(io)?.unwrap_or_default();
    let mut u = resolve_user_in(&passwd, &group, user)?;
    for g in additional_groups(&group, group_add)? {
        if !u.additional_gids.contains(&g) {
            u.additional_gids.push(g);
        }
    }
    Ok(u)
}

/// `--group-add` values as gids: a group of `group` (an `/etc/group` file) matched by name or gid
/// (the first match), else a number; anything else is runc's error.
fn additional_groups(group: &str, names: &[String]) -> Result<Vec<u32>, Error> {
    let entries: Vec<(&str, &str)> = group
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3 && f[2].parse::<u32>().is_ok()).then(|| (f[0], f[2]))
        })
        .collect();
    names
        .iter()
        .map(|n| {
            let gid = entries
                .iter()
                .find(|(name, gid)| name == n || gid == n)
                .map(|(_, gid)| *gid)
                .unwrap_or(n);
            gid.parse::<u32>().map_err(|_| {
                Error::User(format!(
                    "Unable to find group {n}: no matching entries in group file"
                ))
            })
        })
        .collect()
}

/// libcontainer's `GetExecUser` for `user` as dockerd calls it, with dockerd's primary group in
/// front of the supplementary ones; runc's `HOME` default.
fn resolve_user_in(passwd: &str, group: &str, user: &str) -> Result<ExecUser, Error> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g).filter(|g| !g.is_empty())),
        None => (user, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    // name:x:uid:gid:gecos:home:shell
    let entries: Vec<(&str, Option<u32>, Option<u32>, &str)> = passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4).then(|| {
                (
                    f[0],
                    f[2].parse::<u32>().ok(),
                    f[3].parse::<u32>().ok(),
                    f.get(5).copied().unwrap_or(""),
                )
            })
        })
        .collect();
    let numeric = u.parse::<u32>().ok();
    let found = entries.iter().find(|(name, uid, _, _)| match numeric {
        Some(n) => *uid == Some(n),
        None => *name == u,
    });
    let (name, uid, mut gid) = match (found, numeric) {
        (Some(f), _) => (Some(f.0), f.1.unwrap_or(0), f.2.unwrap_or(0)),
        (None, Some(n)) => (None, n, 0),
        (None, None) => {
            return Err(Error::User(format!(
                "unable to find user {u}: no matching entries in passwd file"
            )))
        }
    };
    // runc looks the home up again by the uid it was given.
    let home = entries
        .iter()
        .find(|(_, id, _, _)| *id == Some(uid))
        .map(|e| e.3.to_string())
        .unwrap_or_else(|| "/".into());
    // name:x:gid:member,member
    let groups: Vec<(&str, Option<u32>, Vec<&str>)> = group
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3).then(|| {
                let members = f
                    .get(3)
                    .map(|m| m.split(',').map(str::trim).filter(|m| !m.is_empty()).collect())
                    .unwrap_or_default();
                (f[0], f[2].parse::<u32>().ok(), members)
            })
        })
        .collect();
    let mut member_of = Vec::new();
    match g {
        // An explicit group replaces the primary one; no supplementary groups come from the file.
        Some(g) => {
            gid = match g.parse::<u32>() {
                Ok(n) => groups
                    .iter()
                    .find(|(_, id, _)| *id == Some(n))
                    .and_then(|(_, id, _)| *id)
                    .unwrap_or(n),
                Err(_) => groups
                    .iter()
                    .find(|(n, _, _)| *n == g)
                    .and_then(|(_, id, _)| *id)
                    .ok_or_else(|| {
                        Error::User(format!(
                            "unable to find group {g}: no matching entries in group file"
                        ))
                    })?,
            };
        }
        None => {
            if let Some(name) = name {
                for (_, id, members) in &groups {
                    if let Some(id) = id {
                        if members.contains(&name) {
                            member_of.push(*id);
                        }
                    }
                }
            }
        }
    }
    let mut additional_gids = vec![gid];
    for id in member_of {
        if !additional_gids.contains(&id) {
            additional_gids.push(id);
        }
    }
    Ok(ExecUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

/// Sets `HOME` in `env` as runc does when it is missing or empty: to the user's home.
pub fn default_home(env: &mut Vec<String>, home: &str) {
    let set = env
        .iter()
        .any(|e| e.strip_prefix("HOME=").is_some_and(|v| !v.is_empty()));
    if !set {
        env.retain(|e| !e.starts_with("HOME="));
        env.push(format!("HOME={home}"));
    }
}

enum Probe {
    Missing,
    Dir,
    NotExecutable,
    Executable,
}

fn probe(root: &OwnedFd, path: &str) -> Probe {
    let fd = match open_in_root(root, path, OFlags::PATH) {
        Ok(fd) => fd,
        Err(_) => return Probe::Missing,
    };
    match rustix::fs::fstat(&fd) {
        Ok(st) => {
            let ft = FileType::from_raw_mode(st.st_mode);
            if ft == FileType::Directory {
                Probe::Dir
            } else if ft == FileType::RegularFile && st.st_mode & 0o111 != 0 {
                Probe::Executable
            } else {
                Probe::NotExecutable
            }
        }
        Err(_) => Probe::Missing,
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Makes the working directory `cwd` inside `rootfs` when it is missing, as dockerd does
/// (`SetupWorkingDirectory`: each missing directory 0755, owned by root, symlinks on the way
/// followed inside the root); an existing non-directory on the way is dockerd's error,
/// `Cannot mkdir: /etc/passwd is not a directory`.
pub fn make_workdir(rootfs: &Path, cwd: &str) -> Result<(), String> {
    if cwd.split('/').all(|c| c.is_empty() || c == ".") {
        return Ok(());
    }
    let root = open_root(rootfs).map_err(|e| format!("open the container's root: {e}"))?;
    let mut path = cwd.to_string();
    // A symlink to a missing directory sends the walk to its target (as dockerd's
    // FollowSymlinkInScope), at most 40 times (the kernel's own limit).
    for _ in 0..40 {
        match workdir_step(&root, &path).map_err(|e| match e {
            None => format!("Cannot mkdir: {cwd} is not a directory"),
            Some(e) => format!("Cannot mkdir: {cwd}: {e}"),
        })? {
            None => return Ok(()),
            Some(next) => path = next,
        }
    }
    Err(format!("Cannot mkdir: {cwd}: too many levels of symbolic links"))
}

/// One walk of [`make_workdir`] down `path`, making what is missing: `Ok(None)` when done,
/// `Ok(Some(path))` to walk again through a symlink's target, `Err(None)` for a non-directory
/// on the way.
fn workdir_step(root: &OwnedFd, path: &str) -> Result<Option<String>, Option<rustix::io::Errno>> {
    use rustix::io::Errno;
    let dir_flags = OFlags::PATH | OFlags::DIRECTORY;
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    let mut so_far = String::from("/");
    for (i, c) in comps.iter().enumerate() {
        let parent = so_far.clone();
        so_far = join(&so_far, c);
        match open_in_root(root, &so_far, dir_flags) {
            Ok(_) => continue,
            Err(Errno::NOTDIR) => return Err(None),
            Err(Errno::NOENT) => {}
            Err(e) => return Err(Some(e)),
        }
        let at = open_in_root(root, &parent, dir_flags).map_err(Some)?;
        match rustix::fs::mkdirat(&at, *c, Mode::from_raw_mode(0o755)) {
            // The umask may have narrowed the mode.
            Ok(()) => rustix::fs::chmodat(&at, *c, Mode::from_raw_mode(0o755), rustix::fs::AtFlags::empty())
                .map_err(Some)?,
            Err(Errno::EXIST) => {
                let st = rustix::fs::statat(&at, *c, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).map_err(Some)?;
                if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
                    return Err(None);
                }
                let target = rustix::fs::readlinkat(&at, *c, Vec::new()).map_err(Some)?;
                let target = target.to_string_lossy();
                let mut next = if target.starts_with('/') {
                    target.into_owned()
                } else {
                    join(&parent, &target)
                };
                for rest in &comps[i + 1..] {
                    next = join(&next, rest);
                }
                return Ok(Some(next));
            }
            Err(e) => return Err(Some(e)),
        }
    }
    Ok(None)
}

/// Checks, confined to `rootfs`, that `args0` can be executed the way runc would look it up:
/// a name without `/` is searched in `path_env` (the container's `PATH`), one with `/` is taken
/// as is (relative to `cwd`). Errors carry docker's messages so the CLI can map exit codes.
pub fn check_executable(rootfs: &Path, args0: &str, path_env: &str, cwd: &str) -> Result<(), ExecError> {
    let cwd = if cwd.is_empty() { "/" } else { cwd };
    let root = open_root(rootfs).map_err(|e| ExecError::NotFound(format!("exec: \"{args0}\": {e}")))?;
    if args0.is_empty() {
        return Err(ExecError::NotFound(
            "exec: \"\": executable file not found in $PATH".into(),
        ));
    }
    if args0.contains('/') {
        let full = if args0.starts_with('/') {
            args0.to_string()
        } else {
            join(cwd, args0)
        };
        return match probe(&root, &full) {
            Probe::Executable => Ok(()),
            Probe::Missing => Err(ExecError::NotFound(format!(
                "exec: \"{args0}\": stat {args0}: no such file or directory"
            ))),
            // execve(2) refuses a directory with EACCES, which is what runc reports.
            Probe::Dir | Probe::NotExecutable => Err(ExecError::CannotExecute(format!(
                "exec: \"{args0}\": permission denied"
            ))),
        };
    }
    for dir in path_env.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let dir = if dir.starts_with('/') {
            dir.to_string()
        } else {
            join(cwd, dir)
        };
        if let Probe::Executable = probe(&root, &join(&dir, args0)) {
            return Ok(());
        }
    }
    Err(ExecError::NotFound(format!(
        "exec: \"{args0}\": executable file not found in $PATH"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\nwww:x:33:33::/var/www:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:root\nwww-data:x:33:www\nstaff:x:50:www,nobody\n";

    #[test]
    fn resolves_names_ids_and_groups() {
        let r =
            |u: &str| resolve_user_in(PASSWD, GROUP, u).map(|e| (e.uid, e.gid, e.additional_gids, e.home));
        let s = |h: &str| h.to_string();
        // The primary group first, then the groups listing the user.
        assert_eq!(r("").unwrap(), (0, 0, vec![0, 10], s("/root")));
        assert_eq!(r("www").unwrap(), (33, 33, vec![33, 50], s("/var/www")));
        // A uid without an entry: group 0, home /.
        assert_eq!(r("1000").unwrap(), (1000, 0, vec![0], s("/")));
        assert_eq!(r("1000:7").unwrap(), (1000, 7, vec![7], s("/")));
        // An explicit group: no supplementary groups from the file.
        assert_eq!(r("nobody:staff").unwrap(), (65534, 50, vec![50], s("/home")));
        assert_eq!(r("www:0").unwrap(), (33, 0, vec![0], s("/var/www")));
        // A numeric user's home comes from its uid's entry.
        assert_eq!(r("33").unwrap(), (33, 33, vec![33, 50], s("/var/www")));
        assert_eq!(
            resolve_user_in(PASSWD, GROUP, "bob").unwrap_err().to_string(),
            "unable to find user bob: no matching entries in passwd file"
        );
        assert!(resolve_user_in(PASSWD, GROUP, "www:nogroup").is_err());
        let e = resolve_user_in("", "", "5:6").unwrap();
        assert_eq!((e.uid, e.gid, e.additional_gids, e.home), (5, 6, vec![6], s("/")));
    }

    #[test]
    fn home_is_set_when_missing_or_empty() {
        let mut env = vec!["PATH=/bin".to_string()];
        default_home(&mut env, "/root");
        assert_eq!(env, ["PATH=/bin", "HOME=/root"]);
        let mut env = vec!["HOME=".to_string(), "A=1".to_string()];
        default_home(&mut env, "/");
        assert_eq!(env, ["A=1", "HOME=/"]);
        let mut env = vec!["HOME=/x".to_string()];
        default_home(&mut env, "/root");
        assert_eq!(env, ["HOME=/x"]);
    }

    #[test]
    fn a_missing_workdir_is_made_inside_the_root_and_a_file_in_the_way_is_dockers_error() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(d.path().join("etc/passwd"), "").unwrap();
        make_workdir(d.path(), "/app/src/").unwrap();
        let md = std::fs::metadata(d.path().join("app/src")).unwrap();
        assert!(md.is_dir());
        assert_eq!(md.permissions().mode() & 0o7777, 0o755);
        make_workdir(d.path(), "/app/src").unwrap(); // already there
        make_workdir(d.path(), "/").unwrap();
        assert_eq!(
            make_workdir(d.path(), "/etc/passwd").unwrap_err(),
            "Cannot mkdir: /etc/passwd is not a directory"
        );
        assert_eq!(
            make_workdir(d.path(), "/etc/passwd/x").unwrap_err(),
            "Cannot mkdir: /etc/passwd/x is not a directory"
        );
        // An absolute symlink on the way resolves inside the root, never to the host's.
        let host = tempfile::tempdir().unwrap();
        symlink(host.path(), d.path().join("out")).unwrap();
        make_workdir(d.path(), "/out/made").unwrap();
        assert!(!host.path().join("made").exists());
        let inside = d.path().join(host.path().strip_prefix("/").unwrap());
        assert!(
            inside.join("made").is_dir(),
            "the link's target is made inside the root"
        );
        // A relative one too.
        symlink("app/src", d.path().join("rel")).unwrap();
        make_workdir(d.path(), "/rel/deeper").unwrap();
        assert!(d.path().join("app/src/deeper").is_dir());
    }

    #[test]
    fn reads_confined_to_rootfs() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        // An absolute symlink must resolve inside the rootfs, never to the host's /etc/passwd.
        std::fs::write(d.path().join("mypasswd"), "alice:x:42:43::/:/bin/sh\n").unwrap();
        symlink("/mypasswd", d.path().join("etc/passwd")).unwrap();
        let u = resolve_user(d.path(), "alice", &[]).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids, u.home.as_str()),
            (42, 43, vec![43], "/")
        );
        assert!(resolve_user(d.path(), "root", &[]).is_err());
    }

    #[test]
    fn group_add_takes_names_and_numbers() {
        let add = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            additional_groups(GROUP, &add(&["staff", "1234", "wheel", "33"])).unwrap(),
            vec![50, 1234, 10, 33]
        );
        assert_eq!(
            additional_groups(GROUP, &add(&["nosuch"]))
                .unwrap_err()
                .to_string(),
            "Unable to find group nosuch: no matching entries in group file"
        );
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(d.path().join("etc/passwd"), PASSWD).unwrap();
        std::fs::write(d.path().join("etc/group"), GROUP).unwrap();
        // The user's own groups first, each gid once.
        let u = resolve_user(d.path(), "www", &add(&["staff", "7"])).unwrap();
        assert_eq!((u.uid, u.gid, u.additional_gids), (33, 33, vec![33, 50, 7]));
    }

    #[test]
    fn exec_checks_give_docker_messages() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(bin.join("busybox"), "").unwrap();
        std::fs::set_permissions(bin.join("busybox"), std::fs::Permissions::from_mode(0o755)).unwrap();
        symlink("/bin/busybox", bin.join("echo")).unwrap();
        std::fs::write(d.path().join("etc/passwd"), "").unwrap();
        let r = d.path();
        assert_eq!(check_executable(r, "echo", "/usr/bin:/bin", "/"), Ok(()));
        assert_eq!(check_executable(r, "/bin/echo", "", "/"), Ok(()));
        let e = check_executable(r, "nope", "/usr/bin:/bin", "/").unwrap_err();
        assert_eq!(
            (e.to_string().as_str(), e.exit_code()),
            ("exec: \"nope\": executable file not found in $PATH", 127)
        );
        let e = check_executable(r, "/x", "/bin", "/").unwrap_err();
        assert_eq!(e.to_string(), "exec: \"/x\": stat /x: no such file or directory");
        let e = check_executable(r, "/etc/passwd", "/bin", "/").unwrap_err();
        assert_eq!(
            (e.to_string().as_str(), e.exit_code()),
            ("exec: \"/etc/passwd\": permission denied", 126)
        );
        let e = check_executable(r, "/etc", "/bin", "/").unwrap_err();
        assert_eq!(
            (e.to_string().as_str(), e.exit_code()),
            ("exec: \"/etc\": permission denied", 126)
        );
        assert_eq!(check_executable(r, "./echo", "", "/bin"), Ok(()));
    }
}
