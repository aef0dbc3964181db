//! The container's filesystem, as the fast path's init sets it up in its new mount namespace:
//! the spec's mounts (targets resolved inside the rootfs with `openat2(RESOLVE_IN_ROOT)`, so a
//! symlink in the image cannot point a mount outside it), `/dev`, `pivot_root`, masked and
//! read-only paths, a read-only root.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::mount::{MountFlags, MountPropagationFlags};

/// A mount option: a flag to set or clear, a propagation change, or filesystem data.
pub(crate) enum Opt {
    Set(u64),
    Clear(u64),
    Propagation(MountPropagationFlags),
    Data,
}

const MS_RDONLY: u64 = libc::MS_RDONLY;
const MS_BIND: u64 = libc::MS_BIND;
const MS_REC: u64 = libc::MS_REC;

/// What `opt` means to mount(2); `None` for an option the fast path does not implement (the
/// container then goes to libcontainer).
pub(crate) fn option(opt: &str) -> Option<Opt> {
    use MountPropagationFlags as P;
    Some(match opt {
        "ro" => Opt::Set(MS_RDONLY),
        "rw" => Opt::Clear(MS_RDONLY),
        "nosuid" => Opt::Set(libc::MS_NOSUID),
        "suid" => Opt::Clear(libc::MS_NOSUID),
        "nodev" => Opt::Set(libc::MS_NODEV),
        "dev" => Opt::Clear(libc::MS_NODEV),
        "noexec" => Opt::Set(libc::MS_NOEXEC),
        "exec" => Opt::Clear(libc::MS_NOEXEC),
        "sync" => Opt::Set(libc::MS_SYNCHRONOUS),
        "async" => Opt::Clear(libc::MS_SYNCHRONOUS),
        "dirsync" => Opt::Set(libc::MS_DIRSYNC),
        "noatime" => Opt::Set(libc::MS_NOATIME),
        "atime" => Opt::Clear(libc::MS_NOATIME),
        "nodiratime" => Opt::Set(libc::MS_NODIRATIME),
        "diratime" => Opt::Clear(libc::MS_NODIRATIME),
        "relatime" => Opt::Set(libc::MS_RELATIME),
        "norelatime" => Opt::Clear(libc::MS_RELATIME),
        "strictatime" => Opt::Set(libc::MS_STRICTATIME),
        "nostrictatime" => Opt::Clear(libc::MS_STRICTATIME),
        "bind" => Opt::Set(MS_BIND),
        "rbind" => Opt::Set(MS_BIND | MS_REC),
        "private" => Opt::Propagation(P::PRIVATE),
        "rprivate" => Opt::Propagation(P::PRIVATE | P::REC),
        "shared" => Opt::Propagation(P::SHARED),
        "rshared" => Opt::Propagation(P::SHARED | P::REC),
        "slave" => Opt::Propagation(P::DOWNSTREAM),
        "rslave" => Opt::Propagation(P::DOWNSTREAM | P::REC),
        "unbindable" => Opt::Propagation(P::UNBINDABLE),
        "runbindable" => Opt::Propagation(P::UNBINDABLE | P::REC),
        // Options that are neither flags nor plain data to the kernel (idmap, tmpcopyup, ...).
        o if o.starts_with("idmap")
            || o.starts_with("ridmap")
            || o == "tmpcopyup"
            || o.starts_with("rro")
            || o.starts_with("rrw")
            || o.starts_with("rnosuid")
            || o.starts_with("rnodev")
            || o.starts_with("rnoexec")
            || o.starts_with("ratime")
            || o.starts_with("rnoatime")
            || o.starts_with("rrelatime")
            || o.starts_with("rstrictatime")
            || o.starts_with("rnosymfollow")
            || o.starts_with("nosymfollow")
            || o == "remount"
            || o == "mand"
            || o == "nomand"
            || o == "loud"
            || o == "silent" =>
        {
            return None
        }
        _ => Opt::Data,
    })
}

/// Filesystem types the fast path mounts itself.
pub(crate) fn supported_type(t: &str) -> bool {
    matches!(
        t,
        "proc" | "tmpfs" | "devpts" | "sysfs" | "mqueue" | "cgroup" | "bind" | "none" | ""
    )
}

pub(crate) type Result<T> = std::result::Result<T, String>;

fn err(what: impl std::fmt::Display, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

/// Flags, propagation and data of a mount's options.
fn parse(opts: &[String]) -> (u64, Vec<MountPropagationFlags>, String) {
    let mut flags = 0u64;
    let mut props = Vec::new();
    let mut data = Vec::new();
    for o in opts {
        match option(o) {
            Some(Opt::Set(f)) => flags |= f,
            Some(Opt::Clear(f)) => flags &= !f,
            Some(Opt::Propagation(p)) => props.push(p),
            Some(Opt::Data) => data.push(o.as_str()),
            None => {}
        }
    }
    (flags, props, data.join(","))
}

fn flags(bits: u64) -> MountFlags {
    MountFlags::from_bits_retain(bits as _)
}

fn mount(source: &str, target: &Path, fstype: &str, bits: u64, data: &str) -> std::io::Result<()> {
    let data = CString::new(data).map_err(std::io::Error::other)?;
    let data = if data.as_bytes().is_empty() {
        None
    } else {
        Some(data.as_c_str())
    };
    rustix::mount::mount(source, target, fstype, flags(bits), data).map_err(Into::into)
}

pub(crate) fn remount_bind(target: &Path, bits: u64) -> std::io::Result<()> {
    rustix::mount::mount_remount(target, flags(bits | MS_BIND), "").map_err(Into::into)
}

/// Opens (creating it and its parents, as directories, if missing) `rel` inside `root`, never
/// leaving it: a directory unless `file`. Returns an `O_PATH` fd to mount onto through
/// `/proc/self/fd/<fd>`.
pub(crate) fn open_in_root(root: &OwnedFd, rel: &Path, file: bool) -> Result<OwnedFd> {
    let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let open = |p: &Path| rustix::fs::openat2(root, p, OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), how);
    if let Ok(fd) = open(rel) {
        return Ok(fd);
    }
    let mut cur = PathBuf::new();
    let comps: Vec<_> = rel
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    for (i, c) in comps.iter().enumerate() {
        let parent = open(if cur.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &cur
        })
        .map_err(|e| err(format!("open {}", cur.display()), e))?;
        cur.push(c);
        if open(&cur).is_ok() {
            continue;
        }
        let last = i + 1 == comps.len();
        // A dir fd for the *at calls (O_PATH fds work for mkdirat/openat on Linux).
        let res = if last && file {
            rustix::fs::openat(
                &parent,
                c.as_os_str(),
                OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                Mode::from_raw_mode(0o755),
            )
            .map(drop)
        } else {
            rustix::fs::mkdirat(&parent, c.as_os_str(), Mode::from_raw_mode(0o755))
        };
        match res {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(err(format!("create {}", cur.display()), e)),
        }
    }
    open(rel).map_err(|e| err(format!("open {}", rel.display()), e))
}

fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn rel(dest: &Path) -> &Path {
    dest.strip_prefix("/").unwrap_or(dest)
}

/// What the spec's mounts draw on besides the spec: the host directories of the container's v1
/// cgroups (`(name, dir)`) for the emulated `/sys/fs/cgroup`, and the shared read-only
/// directories (`ShimConfig::shared_dir`; `None`: a tmpfs per mount).
pub(crate) struct Sources<'a> {
    pub(crate) cgroup_binds: &'a [(String, PathBuf)],
    pub(crate) shared: Option<&'a Path>,
}

/// Mounts the spec's mounts under `rootfs` (before `pivot_root`).
pub(crate) fn mount_all(spec: &Spec, rootfs: &Path, src: &Sources) -> Result<()> {
    let root: OwnedFd = std::fs::File::open(rootfs)
        .map_err(|e| err(format!("open {}", rootfs.display()), e))?
        .into();
    for m in spec.mounts().iter().flatten() {
        mount_one(&root, m, src)?;
    }
    Ok(())
}

fn mount_one(root: &OwnedFd, m: &Mount, src: &Sources) -> Result<()> {
    let dest = m.destination();
    let typ = m.typ().as_deref().unwrap_or("");
    let opts = m.options().clone().unwrap_or_default();
    let (bits, props, data) = parse(&opts);
    let source = m
        .source()
        .as_ref()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| typ.to_string());
    let what = |e| err(format!("mount {} on {}", source, dest.display()), e);
    if bits & MS_BIND != 0 || typ == "bind" {
        let is_file = std::fs::metadata(&source).map(|md| !md.is_dir()).map_err(what)?;
        let target = open_in_root(root, rel(dest), is_file)?;
        let t = fd_path(&target);
        let rec = bits & MS_REC;
        mount(&source, &t, "", MS_BIND | rec, "").map_err(what)?;
        let rest = bits & !(MS_BIND | MS_REC);
        if rest != 0 {
            // The mount at the fd's path is the one just made: reopen to address it.
            let target = open_in_root(root, rel(dest), is_file)?;
            remount_bind(&fd_path(&target), rest).map_err(what)?;
        }
        let target = open_in_root(root, rel(dest), is_file)?;
        for p in props {
            rustix::mount::mount_change(fd_path(&target), p).map_err(|e| what(e.into()))?;
        }
        return Ok(());
    }
    if typ == "cgroup" {
        return mount_cgroup_v1(root, dest, bits, src);
    }
    let target = open_in_root(root, rel(dest), false)?;
    // Read-only as a mount attribute over a read-write superblock, as libcontainer's
    // fsopen/fsmount flow (and runc) leave it.
    mount(&source, &fd_path(&target), typ, bits & !MS_RDONLY, &data).map_err(what)?;
    if bits & MS_RDONLY != 0 {
        let target = open_in_root(root, rel(dest), false)?;
        remount_bind(&fd_path(&target), bits & !(MS_BIND | MS_REC)).map_err(what)?;
    }
    if !props.is_empty() {
        let target = open_in_root(root, rel(dest), false)?;
        for p in props {
            rustix::mount::mount_change(fd_path(&target), p).map_err(|e| what(e.into()))?;
        }
    }
    Ok(())
}

/// `/sys/fs/cgroup` on a v1/hybrid host without a cgroup namespace, as libcontainer (and runc)
/// emulate it: a directory holding a bind of the container's own cgroup directory of each v1
/// hierarchy, plus the comount symlinks (`cpu` → `cpu,cpuacct`), all with the mount's flags
/// (`ro` unless privileged: a container must not raise its own limits or make cgroups).
///
/// Read-only, the directory is a bind of the shared skeleton (`<shared>/cgroup`, made here once
/// and never changed after) instead of a tmpfs: one superblock fewer per container. Read-write
/// (privileged) it is a tmpfs of its own, which the container may change.
fn mount_cgroup_v1(root: &OwnedFd, dest: &Path, bits: u64, src: &Sources) -> Result<()> {
    let attrs = bits & !(MS_BIND | MS_REC);
    let ro = bits & MS_RDONLY != 0;
    let target = open_in_root(root, rel(dest), false)?;
    let what = |e| err(format!("mount the cgroup directory on {}", dest.display()), e);
    match src.shared.filter(|_| ro) {
        Some(shared) => {
            let skel = shared.join("cgroup");
            cgroup_skeleton(&skel, src.cgroup_binds)?;
            mount(&skel.to_string_lossy(), &fd_path(&target), "", MS_BIND, "").map_err(what)?;
        }
        None => {
            mount(
                "tmpfs",
                &fd_path(&target),
                "tmpfs",
                libc::MS_NOEXEC | libc::MS_NOSUID | libc::MS_NODEV,
                "mode=755",
            )
            .map_err(what)?;
            let d = open_in_root(root, rel(dest), false)?;
            for (name, _) in src.cgroup_binds {
                // Comounted hierarchies (`cpu,cpuacct`) get a link per controller.
                for link in comount_links(name) {
                    let _ = rustix::fs::symlinkat(name.as_str(), &d, link);
                }
            }
        }
    }
    for (name, dir) in src.cgroup_binds {
        let sub = rel(dest).join(name);
        let t = open_in_root(root, &sub, false)?;
        let what = |e| err(format!("bind {} on {}", dir.display(), sub.display()), e);
        mount(&dir.to_string_lossy(), &fd_path(&t), "", MS_BIND | MS_REC, "").map_err(what)?;
        if ro {
            let t = open_in_root(root, &sub, false)?;
            remount_bind(&fd_path(&t), attrs | MS_REC).map_err(what)?;
        }
    }
    if ro {
        let t = open_in_root(root, rel(dest), false)?;
        remount_bind(&fd_path(&t), attrs).map_err(what)?;
    }
    Ok(())
}

/// Makes the shared directory `p` (and `<shared>` above it) if missing, 0755 whatever the umask
/// it is made under: any user in a container traverses `/sys/fs/cgroup` (its bind) to read its
/// cgroup files, as under a 0755 tmpfs. One `stat` when it is there already, as on every start
/// but the first.
fn shared_dir(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::symlink_metadata(p).is_ok() {
        return Ok(());
    }
    if let Some(parent) = p.parent() {
        shared_dir(parent)?;
    }
    match std::fs::create_dir(p) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)),
    }
}

/// The controllers of a comounted hierarchy (`cpu,cpuacct` → `cpu`, `cpuacct`), each of which
/// gets a symlink to it; none for a single controller.
fn comount_links(name: &str) -> Vec<&str> {
    if !name.contains(',') {
        return Vec::new();
    }
    name.split(',').map(|c| c.trim_start_matches("name=")).collect()
}

/// Makes sure `skel` has an empty directory per hierarchy and the comount links. Idempotent and
/// safe against a concurrent shim doing the same: entries are only ever added, never changed or
/// removed — each is the mount point of a running container's hierarchy bind, and removing a
/// directory detaches the mounts on it in every mount namespace.
fn cgroup_skeleton(skel: &Path, binds: &[(String, PathBuf)]) -> Result<()> {
    let what = |e| err(format!("make {}", skel.display()), e);
    shared_dir(skel).map_err(what)?;
    for (name, _) in binds {
        shared_dir(&skel.join(name)).map_err(what)?;
        for link in comount_links(name) {
            let l = skel.join(link);
            if std::fs::symlink_metadata(&l).is_err() {
                match std::os::unix::fs::symlink(name, &l) {
                    Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(what(e)),
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// The devices every container gets on a fresh `/dev` (runc's and libcontainer's defaults).
fn default_devices() -> Vec<(&'static str, u64, u64)> {
    vec![
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
}

/// Creates `/dev`'s nodes (defaults, then the spec's devices) and symlinks under `rootfs`.
pub(crate) fn setup_dev(rootfs: &Path, devices: &[LinuxDevice]) -> Result<()> {
    let root: OwnedFd = std::fs::File::open(rootfs)
        .map_err(|e| err("open rootfs", e))?
        .into();
    let dev = open_in_root(&root, Path::new("dev"), false)?;
    // mknodat needs a real directory fd, not O_PATH.
    let dev: OwnedFd = rustix::fs::openat(
        &dev,
        ".",
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err("open /dev", e))?;
    let old = rustix::process::umask(Mode::empty());
    let mut res = Ok(());
    for (name, major, minor) in default_devices() {
        res = res.and_then(|_| {
            mknod(
                &dev,
                name,
                rustix::fs::FileType::CharacterDevice,
                0o666,
                major,
                minor,
                0,
                0,
            )
        });
    }
    for d in devices {
        let Ok(name) = d.path().strip_prefix("/dev") else {
            res = res.and(Err(format!("device {} is not under /dev", d.path().display())));
            continue;
        };
        let ft = match d.typ() {
            LinuxDeviceType::B => rustix::fs::FileType::BlockDevice,
            LinuxDeviceType::C | LinuxDeviceType::U => rustix::fs::FileType::CharacterDevice,
            LinuxDeviceType::P => rustix::fs::FileType::Fifo,
            LinuxDeviceType::A => continue,
        };
        res = res.and_then(|_| {
            if let Some(parent) = name.parent().filter(|p| !p.as_os_str().is_empty()) {
                open_in_root(&root, &Path::new("dev").join(parent), false)?;
            }
            mknod(
                &dev,
                name.to_str().unwrap_or_default(),
                ft,
                d.file_mode().unwrap_or(0o666),
                d.major() as u64,
                d.minor() as u64,
                d.uid().unwrap_or(0),
                d.gid().unwrap_or(0),
            )
        });
    }
    rustix::process::umask(old);
    res?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (to, name) in links {
        match rustix::fs::symlinkat(to, &dev, name) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(err(format!("symlink /dev/{name}"), e)),
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn mknod(
    dev: &OwnedFd,
    name: &str,
    ft: rustix::fs::FileType,
    mode: u32,
    major: u64,
    minor: u64,
    uid: u32,
    gid: u32,
) -> Result<()> {
    let devno = rustix::fs::makedev(major as u32, minor as u32);
    match rustix::fs::mknodat(dev, name, ft, Mode::from_raw_mode(mode & 0o7777), devno) {
        Ok(()) => {}
        Err(rustix::io::Errno::EXIST) => return Ok(()),
        Err(e) => return Err(err(format!("mknod /dev/{name}"), e)),
    }
    rustix::fs::chownat(
        dev,
        name,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| err(format!("chown /dev/{name}"), e))
}

/// `pivot_root` into `rootfs` and detach the old root.
pub(crate) fn pivot(rootfs: &Path) -> Result<()> {
    rustix::process::chdir(rootfs).map_err(|e| err("chdir rootfs", e))?;
    rustix::process::pivot_root(".", ".").map_err(|e| err("pivot_root", e))?;
    // The old root is stacked under the new one: never let its unmount propagate to the host.
    rustix::mount::mount_change(
        ".",
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )
    .map_err(|e| err("make the old root a slave", e))?;
    rustix::mount::unmount(".", rustix::mount::UnmountFlags::DETACH)
        .map_err(|e| err("detach the old root", e))?;
    rustix::process::chdir("/").map_err(|e| err("chdir /", e))
}

/// Flags a bind remount must keep (the kernel refuses to clear locked ones, and docker keeps
/// them): those of the mount at `p`.
pub(crate) fn current_flags(p: &Path) -> u64 {
    use rustix::fs::StatVfsMountFlags as F;
    let Ok(st) = rustix::fs::statvfs(p) else { return 0 };
    let f = st.f_flag;
    let mut bits = 0;
    for (s, m) in [
        (F::NOSUID, libc::MS_NOSUID),
        (F::NODEV, libc::MS_NODEV),
        (F::NOEXEC, libc::MS_NOEXEC),
        (F::NOATIME, libc::MS_NOATIME),
        (F::NODIRATIME, libc::MS_NODIRATIME),
        (F::RELATIME, libc::MS_RELATIME),
    ] {
        if f.contains(s) {
            bits |= m;
        }
    }
    bits
}

/// Before `pivot_root`: the masked paths that are directories in the container get a read-only
/// bind of the shared empty directory (`<shared>/empty`) instead of a tmpfs each (as runc
/// mounts): the same empty, read-only view, without a superblock per mask per container.
/// Returns the masked paths left for [`finish`] (files, or all of them without `shared`).
pub(crate) fn mask_dirs(rootfs: &Path, masked: &[String], shared: Option<&Path>) -> Result<Vec<String>> {
    let Some(shared) = shared else {
        return Ok(masked.to_vec());
    };
    let root: OwnedFd = std::fs::File::open(rootfs)
        .map_err(|e| err(format!("open {}", rootfs.display()), e))?
        .into();
    let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let open = |p: &str| {
        rustix::fs::openat2(
            &root,
            rel(Path::new(p)),
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            how,
        )
    };
    let empty = shared.join("empty");
    let mut left = Vec::new();
    let mut made = false;
    for p in masked {
        let what = |e: &dyn std::fmt::Display| err(format!("mask {p}"), e);
        let target = match open(p) {
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => return Err(what(&e)),
            Ok(fd) => fd,
        };
        let st = rustix::fs::fstat(&target).map_err(|e| what(&e))?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Directory {
            left.push(p.clone());
            continue;
        }
        if !made {
            shared_dir(&empty).map_err(|e| err(format!("make {}", empty.display()), e))?;
            made = true;
        }
        mount(&empty.to_string_lossy(), &fd_path(&target), "", MS_BIND, "").map_err(|e| what(&e))?;
        // The mount at the path is the one just made: reopen to address it.
        let fd = open(p).map_err(|e| what(&e))?;
        let t = fd_path(&fd);
        remount_bind(&t, MS_RDONLY | current_flags(&t)).map_err(|e| what(&e))?;
    }
    Ok(left)
}

/// After `pivot_root`: masked paths (a read-only tmpfs over a directory, `/dev/null` over
/// anything else), read-only paths (bind onto themselves, read-only), a read-only root.
pub(crate) fn finish(masked: &[String], readonly: &[String], root_ro: bool) -> Result<()> {
    for p in readonly {
        let path = Path::new(p);
        match mount(p, path, "", MS_BIND | MS_REC, "") {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(err(format!("bind {p} read-only"), e)),
        }
        remount_bind(path, MS_RDONLY | MS_REC | current_flags(path))
            .map_err(|e| err(format!("remount {p} read-only"), e))?;
    }
    for p in masked {
        let path = Path::new(p);
        let res = match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => Err(e),
            Ok(md) if md.is_dir() => mount("tmpfs", path, "tmpfs", MS_RDONLY, ""),
            Ok(_) => mount("/dev/null", path, "", MS_BIND, ""),
        };
        res.map_err(|e| err(format!("mask {p}"), e))?;
    }
    if root_ro {
        remount_bind(Path::new("/"), MS_RDONLY | current_flags(Path::new("/")))
            .map_err(|e| err("remount / read-only", e))?;
    }
    Ok(())
}

/// A pty for the process: the master (sent to the shim), the slave made the controlling
/// terminal and stdio, and bound over `/dev/console` (when `console`).
pub(crate) fn pty(console: bool, size: Option<(u16, u16)>) -> Result<OwnedFd> {
    use rustix::pty::OpenptFlags;
    let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
        .map_err(|e| err("open /dev/ptmx", e))?;
    rustix::pty::unlockpt(&master).map_err(|e| err("unlockpt", e))?;
    let name = rustix::pty::ptsname(&master, Vec::new()).map_err(|e| err("ptsname", e))?;
    let name = PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(
        name.as_bytes(),
    ));
    let slave: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&name)
        .map_err(|e| err(format!("open {}", name.display()), e))?
        .into();
    if let Some((rows, cols)) = size {
        let ws = rustix::termios::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let _ = rustix::termios::tcsetwinsize(&slave, ws);
    }
    if console {
        let root: OwnedFd = std::fs::File::open("/").map_err(|e| err("open /", e))?.into();
        let t = open_in_root(&root, Path::new("dev/console"), true)?;
        mount(&name.to_string_lossy(), &fd_path(&t), "", MS_BIND, "")
            .map_err(|e| err("bind /dev/console", e))?;
    }
    rustix::process::ioctl_tiocsctty(&slave).map_err(|e| err("set the controlling terminal", e))?;
    dup_stdio(&slave, &slave, &slave)?;
    Ok(master)
}

/// Makes `i`, `o`, `e` the process's fds 0, 1, 2.
pub(crate) fn dup_stdio(i: &impl AsFd, o: &impl AsFd, e: &impl AsFd) -> Result<()> {
    rustix::stdio::dup2_stdin(i).map_err(|x| err("dup stdin", x))?;
    rustix::stdio::dup2_stdout(o).map_err(|x| err("dup stdout", x))?;
    rustix::stdio::dup2_stderr(e).map_err(|x| err("dup stderr", x))?;
    Ok(())
}
