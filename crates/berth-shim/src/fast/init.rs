//! The fast path's create: the creator's part (cgroups, namespaces, fork) and the container's
//! init (filesystem, stdio, the start handshake, confinement, exec). See the module doc.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use berth_runtime::CgroupDirs;
use berth_shim_proto::ShimConfig;
use oci_spec::runtime::{LinuxCapabilities, LinuxNamespaceType, Process, Spec};
use rustix::pipe::PipeFlags;

use super::rootfs::{self, Result};
use crate::create::{ContainerSide, Failure};
use crate::seccomp::Filter;

const CLONE_NEWNS: i32 = libc::CLONE_NEWNS;

/// The container's cgroups, made (with the spec's limits) before the rootfs is ready: the
/// creator makes them on a second thread while it mounts the rootfs.
pub(crate) struct Cgroups {
    dirs: CgroupDirs,
    made: super::cgroup::Created,
}

impl Cgroups {
    /// Makes the cgroups `spec` names, after removing what a previous run whose shim was killed
    /// left there (libcontainer's forced delete of its stale state does the same).
    pub(crate) fn make(spec: &Spec) -> std::result::Result<Cgroups, Failure> {
        let linux = spec
            .linux()
            .as_ref()
            .ok_or_else(|| Failure::new("config.json has no linux section"))?;
        let cgroup_path = crate::create::cgroups_path(spec);
        let dirs = CgroupDirs::new(&cgroup_path).map_err(|e| Failure::new(e.to_string()))?;
        if !dirs.existing().is_empty() && !super::cgroup::kill_and_remove(&dirs) {
            return Err(Failure::new(format!(
                "cgroup {cgroup_path} of a previous run is still busy"
            )));
        }
        match super::cgroup::create(&dirs, linux.resources().as_ref()) {
            Ok(made) => {
                berth_sys::times::mark("cgroups-made");
                Ok(Cgroups { dirs, made })
            }
            Err(e) => {
                super::cgroup::kill_and_remove(&dirs);
                Err(Failure::new(e))
            }
        }
    }

    /// Removes them again (the start failed before the init ran in them).
    pub(crate) fn remove(self) {
        super::cgroup::kill_and_remove(&self.dirs);
    }
}

/// Creates the container from `spec` (user and terminal already patched in) on the mounted
/// `rootfs`, in the cgroups made for it. The init is left blocked on `start_r`. Returns the
/// init's pid.
pub(crate) fn create(
    cfg: &ShimConfig,
    bundle: &Path,
    spec: &Spec,
    rootfs: &Path,
    side: ContainerSide,
    start_r: OwnedFd,
    cgroups: Cgroups,
) -> std::result::Result<i32, Failure> {
    let res = fork_init(cfg, bundle, spec, rootfs, side, start_r, &cgroups.made);
    if res.is_err() {
        cgroups.remove();
    }
    res
}

fn fork_init(
    cfg: &ShimConfig,
    bundle: &Path,
    spec: &Spec,
    rootfs: &Path,
    side: ContainerSide,
    start_r: OwnedFd,
    cg: &super::cgroup::Created,
) -> std::result::Result<i32, Failure> {
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| Failure::new("no linux section"))?;
    let mut flags = CLONE_NEWNS | libc::CLONE_NEWPID;
    let mut new_net = false;
    for ns in linux.namespaces().iter().flatten() {
        match (ns.typ(), ns.path()) {
            (LinuxNamespaceType::Ipc, _) => flags |= libc::CLONE_NEWIPC,
            (LinuxNamespaceType::Uts, _) => flags |= libc::CLONE_NEWUTS,
            (LinuxNamespaceType::Network, None) => {
                flags |= libc::CLONE_NEWNET;
                new_net = true;
            }
            (LinuxNamespaceType::Network, Some(p)) => {
                let f = std::fs::File::open(p)
                    .map_err(|e| Failure::new(format!("open network namespace {}: {e}", p.display())))?;
                rustix::thread::move_into_link_name_space(
                    f.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .map_err(|e| Failure::new(format!("join network namespace {}: {e}", p.display())))?;
            }
            _ => {}
        }
    }
    berth_sys::process::unshare(flags).map_err(|e| Failure::new(format!("unshare namespaces: {e}")))?;
    berth_sys::times::mark("unshared");
    let console = match &side {
        ContainerSide::Console(path) => Some(
            connect_short(path).map_err(|e| Failure::new(format!("connect to the console socket: {e}")))?,
        ),
        ContainerSide::Pipes { .. } => None,
    };
    let filter = linux
        .seccomp()
        .clone()
        .map(|p| crate::seccomp::filter(cfg, bundle, p));
    let (ok_r, ok_w) =
        rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(|e| Failure::new(format!("pipe: {e}")))?;
    let join = super::cgroup::Join::new(&cg.1).map_err(Failure::new)?;
    berth_sys::times::mark("fork-init");
    let child = join.fork().map_err(|e| Failure::new(format!("fork: {e}")))?;
    let berth_sys::process::Fork::Parent(pid) = child else {
        berth_sys::times::mark("init");
        drop(ok_r);
        let mut ok_w = std::fs::File::from(ok_w);
        let setup = Setup {
            cfg,
            spec,
            rootfs,
            side: &side,
            console,
            binds: &cg.0,
            cgroups: &join,
            new_net,
            filter,
        };
        let msg = match init_main(&setup, &mut ok_w, start_r) {
            Ok(never) => match never {},
            Err(e) => e,
        };
        let _ = writeln!(ok_w, "{}", msg.replace('\n', " "));
        std::process::exit(1);
    };
    drop(ok_w);
    drop(start_r);
    drop(side);
    let mut line = String::new();
    let _ = BufReader::new(std::fs::File::from(ok_r)).read_line(&mut line);
    let line = line.trim_end();
    berth_sys::times::mark("init-ok");
    if line == "ok" {
        return Ok(pid);
    }
    let _ = berth_sys::process::kill(pid, libc::SIGKILL);
    let _ = rustix::process::waitpid(
        rustix::process::Pid::from_raw(pid),
        rustix::process::WaitOptions::empty(),
    );
    Err(Failure::new(if line.is_empty() {
        "the container's init died during setup".to_string()
    } else {
        line.to_string()
    }))
}

/// Connects to the Unix socket at `path` through `/proc/self/fd/<dir>/` (`sun_path` is short).
pub(crate) fn connect_short(path: &Path) -> std::io::Result<UnixStream> {
    let dir = std::fs::File::open(path.parent().unwrap_or(Path::new("/")))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    UnixStream::connect(format!("/proc/self/fd/{}/{name}", dir.as_raw_fd()))
}

/// Sends `fd` over `s` (SCM_RIGHTS), as runtimes send a pty master to a console socket.
pub(crate) fn send_fd(s: &UnixStream, fd: &OwnedFd) -> Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let fds = [fd.as_fd()];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut anc = SendAncillaryBuffer::new(&mut space);
    anc.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(s, &[std::io::IoSlice::new(b"pty")], &mut anc, SendFlags::empty())
        .map(drop)
        .map_err(|e| format!("send the pty master: {e}"))
}

struct Setup<'a> {
    cfg: &'a ShimConfig,
    spec: &'a Spec,
    rootfs: &'a Path,
    side: &'a ContainerSide,
    console: Option<UnixStream>,
    binds: &'a [(String, PathBuf)],
    cgroups: &'a super::cgroup::Join,
    new_net: bool,
    filter: Option<Filter>,
}

enum Never {}

/// The init: pid 1 of the new pid namespace. Returns only on failure.
fn init_main(s: &Setup, ok: &mut std::fs::File, start_r: OwnedFd) -> Result<Never> {
    let spec = s.spec;
    let linux = spec.linux().as_ref().ok_or("no linux section")?;
    let process = spec.process().as_ref().ok_or("no process")?;
    // First of all, into the container's cgroups (its devices rules govern the mknods below).
    s.cgroups.enter()?;
    berth_sys::times::mark("init-in-cgroups");
    rustix::process::setsid().map_err(|e| format!("setsid: {e}"))?;
    if s.new_net && s.cfg.loopback_up {
        berth_sys::loopback::set_link_up("lo").map_err(|e| format!("bring up lo in the container: {e}"))?;
    }
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        rustix::system::sethostname(h.as_bytes()).map_err(|e| format!("set hostname: {e}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        rustix::system::setdomainname(d.as_bytes()).map_err(|e| format!("set domainname: {e}"))?;
    }
    use rustix::mount::MountPropagationFlags as P;
    // (`shared` goes to libcontainer: see `accepts`.)
    let prop = match linux.rootfs_propagation().as_deref() {
        Some("private" | "rprivate") => P::PRIVATE | P::REC,
        _ => P::DOWNSTREAM | P::REC,
    };
    rustix::mount::mount_change("/", prop).map_err(|e| format!("set the propagation of /: {e}"))?;
    make_parent_private(s.rootfs)?;
    rustix::mount::mount_bind_recursive(s.rootfs, s.rootfs).map_err(|e| format!("bind the rootfs: {e}"))?;
    if let ContainerSide::Pipes {
        stdin,
        stdout,
        stderr,
    } = s.side
    {
        rootfs::dup_stdio(stdin, stdout, stderr)?;
    }
    berth_sys::times::mark("init-bound");
    let shared = Some(Path::new(&s.cfg.shared_dir)).filter(|d| !d.as_os_str().is_empty());
    let sources = rootfs::Sources {
        cgroup_binds: s.binds,
        shared,
    };
    rootfs::mount_all(spec, s.rootfs, &sources)?;
    berth_sys::times::mark("init-mounted");
    rootfs::setup_dev(s.rootfs, linux.devices().as_deref().unwrap_or_default())?;
    let masked = rootfs::mask_dirs(
        s.rootfs,
        linux.masked_paths().as_deref().unwrap_or_default(),
        shared,
    )?;
    rootfs::pivot(s.rootfs)?;
    berth_sys::times::mark("init-pivoted");
    if let Some(c) = &s.console {
        let master = rootfs::pty(true, None)?;
        send_fd(c, &master)?;
    }
    for (k, v) in linux.sysctl().iter().flatten() {
        let p = Path::new("/proc/sys").join(k.replace('.', "/"));
        std::fs::write(&p, v).map_err(|e| format!("sysctl {k}={v}: {e}"))?;
    }
    let root_ro = spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false);
    rootfs::finish(
        &masked,
        linux.readonly_paths().as_deref().unwrap_or_default(),
        root_ro,
    )?;
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| format!("set oom_score_adj: {e}"))?;
    }
    berth_sys::times::mark("init-ready");
    ok.write_all(b"ok\n").map_err(|e| format!("report: {e}"))?;
    // Wait for start: one byte. EOF means the shim is gone: exit without running anything.
    let mut b = [0u8; 1];
    let n = std::fs::File::from(start_r).read(&mut b).unwrap_or(0);
    if n == 0 {
        std::process::exit(0);
    }
    berth_sys::times::mark("init-started");
    let caps = process.capabilities().clone().unwrap_or_default();
    let e = confine_and_exec(process, s.filter.as_ref(), &caps);
    // The user's stderr is the container's: say why, as runc would, and fail like docker.
    let _ = writeln!(std::io::stderr(), "berth: {e}");
    std::process::exit(127);
}

/// Makes the mount holding `rootfs` (the rootfs mount itself when it is one) private, as
/// libcontainer does: `pivot_root` refuses a shared new root or parent, and a `shared` root
/// propagation made it shared.
fn make_parent_private(rootfs: &Path) -> Result<()> {
    let best = holding_mount(rootfs)?;
    rustix::mount::mount_change(&best, rustix::mount::MountPropagationFlags::PRIVATE)
        .map_err(|e| format!("make {} private: {e}", best.display()))
}

/// The mount point of the mount that holds `path`. The shim mounts the rootfs itself, so it is
/// a mount (another device than its parent's) and no list of all mounts is read.
fn holding_mount(path: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).ok();
    let own = dev(path);
    if own.is_some() && own != path.parent().and_then(dev) {
        return Ok(path.to_path_buf());
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| format!("read mountinfo: {e}"))?;
    let mut best = PathBuf::from("/");
    for line in info.lines() {
        if let Some(mp) = line.split(' ').nth(4) {
            let mp = Path::new(mp);
            if path.starts_with(mp) && mp.components().count() > best.components().count() {
                best = mp.to_path_buf();
            }
        }
    }
    Ok(best)
}

/// Applies the process's confinement (rlimits, no_new_privs, seccomp, user and groups,
/// capabilities), changes to its cwd and execs it. Returns only on failure. Seccomp goes
/// before the user and capability changes (loading it without no_new_privs needs
/// CAP_SYS_ADMIN), as runc does.
pub(crate) fn confine_and_exec(
    process: &Process,
    filter: Option<&Filter>,
    caps: &LinuxCapabilities,
) -> String {
    match confine(process, filter, caps) {
        Err(e) => e,
        Ok(()) => exec(process),
    }
}

fn confine(process: &Process, filter: Option<&Filter>, caps: &LinuxCapabilities) -> Result<()> {
    let syscall = libcontainer::syscall::syscall::create_syscall();
    for r in process.rlimits().iter().flatten() {
        syscall
            .set_rlimit(r)
            .map_err(|e| format!("set rlimit {:?}: {e}", r.typ()))?;
    }
    if process.no_new_privileges() == Some(true) {
        rustix::thread::set_no_new_privs(true).map_err(|e| format!("set no_new_privs: {e}"))?;
    }
    berth_sys::times::mark("c-rlimits");
    if let Some(f) = filter {
        match f {
            Filter::Program(p) => {
                berth_sys::process::seccomp_set_mode_filter(p).map_err(|e| format!("seccomp: {e}"))?
            }
            Filter::Profile(p) => {
                libcontainer::seccomp::initialize_seccomp(p).map_err(|e| format!("seccomp: {e}"))?;
            }
        }
    }
    berth_sys::times::mark("c-seccomp");
    let user = process.user();
    rustix::thread::set_keep_capabilities(true).map_err(|e| format!("keep capabilities: {e}"))?;
    let groups: Vec<rustix::process::Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| rustix::process::Gid::from_raw(*g))
        .collect();
    rustix::thread::set_thread_groups(&groups).map_err(|e| format!("setgroups: {e}"))?;
    let gid = rustix::process::Gid::from_raw(user.gid());
    rustix::thread::set_thread_res_gid(gid, gid, gid).map_err(|e| format!("setgid {}: {e}", user.gid()))?;
    let uid = rustix::process::Uid::from_raw(user.uid());
    rustix::thread::set_thread_res_uid(uid, uid, uid).map_err(|e| format!("setuid {}: {e}", user.uid()))?;
    // setuid to a non-root user cleared the effective set (keepcaps kept the permitted one):
    // restore it so the bounding set can be dropped (CAP_SETPCAP), then set exactly the spec's.
    libcontainer::capabilities::reset_effective(syscall.as_ref())
        .map_err(|e| format!("reset capabilities: {e}"))?;
    berth_sys::times::mark("c-user");
    let caps = crate::seccomp::full_sets(caps);
    libcontainer::capabilities::drop_privileges(&caps, syscall.as_ref())
        .map_err(|e| format!("drop capabilities: {e}"))?;
    Ok(())
}

/// `execve` of `arg0` (looked up in `env`'s `PATH` when it has no `/`, as runc's `LookPath`)
/// with `args` and `env` exactly in their order, as runc passes them (std's `Command` would sort
/// the environment and turn a bare `NAME` into `NAME=`). Returns only on failure: the first error
/// other than "not there" met on the way, else the last.
fn execve_in_order(arg0: &str, args: &[String], env: &[String]) -> std::io::Error {
    use std::ffi::CString;
    let cstr = |s: &str| CString::new(s).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL));
    let (argv, envp) = match (
        args.iter()
            .map(|a| cstr(a))
            .collect::<std::result::Result<Vec<_>, _>>(),
        env.iter()
            .map(|e| cstr(e))
            .collect::<std::result::Result<Vec<_>, _>>(),
    ) {
        (Ok(a), Ok(e)) => (a, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    let try_exec = |path: &str| -> std::io::Error {
        let Ok(p) = CString::new(path) else {
            return std::io::Error::from_raw_os_error(libc::ENOENT);
        };
        // SAFETY: the path, argv and envp are NUL-terminated strings in NULL-terminated arrays
        // that outlive the call; execve returns only on failure.
        unsafe { libc::execve(p.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
        std::io::Error::last_os_error()
    };
    if arg0.contains('/') {
        return try_exec(arg0);
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("");
    let mut denied = None;
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let e = try_exec(&format!("{}/{arg0}", dir.trim_end_matches('/')));
        match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => {}
            Some(libc::EACCES) => denied = Some(e),
            _ => return e,
        }
    }
    denied.unwrap_or_else(|| std::io::Error::from_raw_os_error(libc::ENOENT))
}

/// cwd, then `execve` with the process's args and env (PATH looked up in that env).
fn exec(process: &Process) -> String {
    let cwd = process.cwd();
    if let Err(e) = rustix::process::chdir(cwd) {
        // runc's words, with Go's lower-case error text.
        let go = berth_types::go_io_error(&std::io::Error::from(e));
        return format!(
            "chdir to cwd ({:?}) set in config.json failed: {go}",
            cwd.display().to_string()
        );
    }
    let args = process.args().clone().unwrap_or_default();
    let Some(arg0) = args.first() else {
        return "no command specified".into();
    };
    berth_sys::times::mark("init-exec");
    if let Err(e) = berth_sys::process::cloexec_from(3) {
        return format!("close fds: {e}");
    }
    let e = execve_in_order(arg0, &args, process.env().as_deref().unwrap_or_default());
    format!("exec {arg0}: {e}")
}
