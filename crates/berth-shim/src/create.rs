//! Creating the container: rootfs mount, `-u` resolution, the exec check, stdio, and
//! libcontainer's create, which leaves the init process waiting for `start`.
//!
//! The libcontainer part runs in a forked child of the shim (the "creator"), never in the shim
//! itself:
//! - every fd open at clone time is inherited by the container's init and stays open until it
//!   execs (libcontainer only marks them close-on-exec). The creator closes the daemon's Ready
//!   pipe first, so the daemon sees EOF right after the Ready line, not at `start`;
//! - libcontainer `chdir`s, marks the process non-dumpable and leaves its code and heap resident;
//!   all of that dies with the creator, and the shim that watches the container stays small;
//! - the shim is a child subreaper: when the creator exits, the init (cloned with
//!   `CLONE_PARENT`, so the creator's child) is re-parented to the shim, which reaps it.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use berth_shim_proto::ShimConfig;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;
use oci_spec::runtime::Spec;
use rustix::pipe::PipeFlags;
use serde::{Deserialize, Serialize};

/// A creation failure: docker's message and, for exec failures, 127/126.
#[derive(Debug, Serialize, Deserialize)]
pub struct Failure {
    pub message: String,
    pub exit_code: Option<i32>,
    /// dockerd's own check (`berth_shim_proto::Ready::bare`).
    pub bare: bool,
}

impl Failure {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            exit_code: None,
            bare: false,
        }
    }

    /// A failure dockerd finds itself, reported bare (`berth_shim_proto::Ready::bare`).
    fn bare(message: impl ToString) -> Self {
        Failure {
            bare: true,
            ..Failure::new(message.to_string())
        }
    }
}

/// The container's stdio as the shim holds it.
pub enum Stdio {
    /// Pipes: the write end of the container's stdin (None = /dev/null), read ends of stdout/stderr.
    Pipes {
        stdin: Option<OwnedFd>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    /// The pty master (stdin and output both).
    Pty(OwnedFd),
}

/// A created, not yet started container, as the shim holds it.
pub struct Created {
    pub pid: i32,
    /// Readable when the init exits.
    pub pidfd: OwnedFd,
    pub stdio: Stdio,
    pub listener: UnixListener,
    /// Cgroup path from the spec (`/parent/id`), for kill-all and the OOM counter.
    pub cgroup_path: String,
    /// The fast path's start pipe (write end): one byte starts the container. `None` when
    /// libcontainer created it (started through its notify socket).
    pub start: Option<OwnedFd>,
}

/// What the creator reports back: one JSON line.
#[derive(Serialize, Deserialize)]
struct Report {
    pid: Option<i32>,
    cgroup_path: String,
    failure: Option<Failure>,
    /// Created by the fast path (`crate::fast`), not libcontainer.
    #[serde(default)]
    fast: bool,
}

fn rootfs_dir(bundle: &Path) -> PathBuf {
    bundle.join("rootfs")
}

/// Unmounts the rootfs (best effort; failures go to the runtime log).
pub fn cleanup_rootfs(bundle: &Path) {
    if let Err(e) = berth_sys::mount::unmount(&rootfs_dir(bundle)) {
        eprintln!("berth-shim: {e}");
    }
}

/// The container's ends of its stdio, handed to libcontainer in the creator.
pub(crate) enum ContainerSide {
    Pipes {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    Console(PathBuf),
}

/// The shim's ends of a process's pipes: stdin (when kept open), stdout, stderr.
pub(crate) type OurPipes = (Option<OwnedFd>, OwnedFd, OwnedFd);

impl ContainerSide {
    /// Stdio for a process the runtime is about to create (the container's init or an exec):
    /// with a tty, a console socket `<bundle>/<console_name>` on which the runtime sends the pty
    /// master; otherwise pipes (stdin from /dev/null unless `stdin`). Returns the shim's pipe
    /// ends, the process's side, and the console listener.
    pub(crate) fn new(
        bundle: &Path,
        console_name: &str,
        tty: bool,
        stdin: bool,
    ) -> Result<(Option<OurPipes>, ContainerSide, Option<UnixListener>), Failure> {
        let pipe =
            || rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(|e| Failure::new(format!("pipe: {e}")));
        if tty {
            let console = bundle.join(console_name);
            let _ = std::fs::remove_file(&console);
            let l = bind_short(bundle, console_name)
                .map_err(|e| Failure::new(format!("listen on {}: {e}", console.display())))?;
            return Ok((None, ContainerSide::Console(console), Some(l)));
        }
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (in_r, in_w) = if stdin {
            let (r, w) = pipe()?;
            (r, Some(w))
        } else {
            let null =
                std::fs::File::open("/dev/null").map_err(|e| Failure::new(format!("open /dev/null: {e}")))?;
            (OwnedFd::from(null), None)
        };
        Ok((
            Some((in_w, out_r, err_r)),
            ContainerSide::Pipes {
                stdin: in_r,
                stdout: out_w,
                stderr: err_w,
            },
            None,
        ))
    }

    /// Hands the process's side to libcontainer.
    pub(crate) fn apply(self, builder: ContainerBuilder) -> ContainerBuilder {
        match self {
            ContainerSide::Console(path) => builder.with_console_socket(Some(path)),
            ContainerSide::Pipes {
                stdin,
                stdout,
                stderr,
            } => builder.with_stdin(stdin).with_stdout(stdout).with_stderr(stderr),
        }
    }
}

/// Creates the container; `ready` (the daemon's pipe) is closed in the creator before the
/// container's init is cloned.
pub fn create(cfg: &ShimConfig, bundle: &Path, ready: &mut Option<OwnedFd>) -> Result<Created, Failure> {
    if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        eprintln!("berth-shim: set child subreaper: {e}");
    }
    // The daemon's socket; listening before create keeps failure cleanup simple. A socket
    // another shim still serves is never taken over (its container would be lost to the daemon).
    if std::os::unix::net::UnixStream::connect(&cfg.socket).is_ok() {
        return Err(Failure::new(format!(
            "another berth-shim is serving container {} on {}",
            cfg.id, cfg.socket
        )));
    }
    let _ = std::fs::remove_file(&cfg.socket);
    let listener = UnixListener::bind(&cfg.socket)
        .map_err(|e| Failure::new(format!("listen on {}: {e}", cfg.socket)))?;
    // A previous run whose shim was killed (or a machine that crashed with a persistent exec
    // root) left the runtime's state: clear it, or the runtime refuses with "exists".
    crate::runtime::delete(cfg, bundle);
    listener
        .set_nonblocking(true)
        .map_err(|e| Failure::new(e.to_string()))?;
    let res = create_listening(cfg, bundle, ready, listener);
    if res.is_err() {
        let _ = std::fs::remove_file(&cfg.socket);
    }
    res
}

fn create_listening(
    cfg: &ShimConfig,
    bundle: &Path,
    ready: &mut Option<OwnedFd>,
    listener: UnixListener,
) -> Result<Created, Failure> {
    let pipe = || rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(|e| Failure::new(format!("pipe: {e}")));
    let console = bundle.join("console.sock");
    let (ours, theirs, console_listener) =
        ContainerSide::new(bundle, "console.sock", cfg.tty, cfg.open_stdin)?;
    let (report_r, report_w) = pipe()?;
    let (start_r, start_w) = pipe()?;

    let child = berth_sys::process::fork().map_err(|e| Failure::new(format!("fork: {e}")))?;
    let berth_sys::process::Fork::Parent(creator) = child else {
        // The creator. Nothing of the shim's may leak into the container's init.
        berth_sys::times::mark("creator");
        drop(ready.take());
        drop(listener);
        drop(ours);
        drop(console_listener);
        drop(report_r);
        drop(start_w);
        let report = match creator_main(cfg, bundle, theirs, start_r) {
            Ok((pid, cgroup_path, fast)) => Report {
                pid: Some(pid),
                cgroup_path,
                failure: None,
                fast,
            },
            Err(f) => Report {
                pid: None,
                cgroup_path: String::new(),
                failure: Some(f),
                fast: false,
            },
        };
        let mut line = serde_json::to_vec(&report).unwrap_or_default();
        line.push(b'\n');
        let _ = std::fs::File::from(report_w).write_all(&line);
        // Straight out: the shim waits for this exit, and the atexit handlers and library
        // destructors of the shim's image have nothing to do here.
        // SAFETY: `_exit` ends the process without returning; nothing is left to run.
        unsafe { libc::_exit(0) }
    };
    drop(theirs);
    drop(report_w);
    drop(start_r);
    // One line, not EOF: the init holds a copy of the write end until it execs.
    let mut line = String::new();
    let read = BufReader::new(std::fs::File::from(report_r)).read_line(&mut line);
    berth_sys::times::mark("shim-report");
    let _ = rustix::process::waitpid(
        rustix::process::Pid::from_raw(creator),
        rustix::process::WaitOptions::empty(),
    );
    berth_sys::times::mark("shim-reaped-creator");
    let _ = std::fs::remove_file(&console);
    let report: Report = match read.ok().and_then(|_| serde_json::from_str(&line).ok()) {
        Some(r) => r,
        None => {
            crate::runtime::delete(cfg, bundle);
            cleanup_rootfs(bundle);
            return Err(Failure::new(
                "the runtime process died while creating the container",
            ));
        }
    };
    if let Some(f) = report.failure {
        return Err(f);
    }
    let pid = report
        .pid
        .ok_or_else(|| Failure::new("runtime reported no pid"))?;
    let fast = report.fast;
    match watch(cfg, pid, ours, console_listener) {
        Ok((pidfd, stdio)) => Ok(Created {
            pid,
            pidfd,
            stdio,
            listener,
            cgroup_path: report.cgroup_path,
            start: fast.then_some(start_w),
        }),
        Err(f) => {
            if fast {
                let _ = berth_sys::process::kill(pid, libc::SIGKILL);
                if let Ok(d) = berth_runtime::CgroupDirs::new(&report.cgroup_path) {
                    reap_all();
                    crate::fast::cgroup::kill_and_remove(&d);
                }
            }
            crate::runtime::delete(cfg, bundle);
            reap_all();
            cleanup_rootfs(bundle);
            Err(f)
        }
    }
}

/// The shim's hold on the created container: a pidfd, and its stdio.
fn watch(
    cfg: &ShimConfig,
    pid: i32,
    ours: Option<(Option<OwnedFd>, OwnedFd, OwnedFd)>,
    console: Option<UnixListener>,
) -> Result<(OwnedFd, Stdio), Failure> {
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(pid).ok_or_else(|| Failure::new("invalid pid"))?,
        rustix::process::PidfdFlags::empty(),
    )
    .map_err(|e| Failure::new(format!("pidfd_open {pid}: {e}")))?;
    let stdio = match (console, ours) {
        (Some(l), _) => {
            let master = receive_pty(&l).map_err(|e| Failure::new(format!("receive pty master: {e}")))?;
            if let Some((h, w)) = cfg.console_size {
                let ws = rustix::termios::Winsize {
                    ws_row: h,
                    ws_col: w,
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                if let Err(e) = rustix::termios::tcsetwinsize(&master, ws) {
                    eprintln!("berth-shim: set console size: {e}");
                }
            }
            Stdio::Pty(master)
        }
        (None, Some((stdin, stdout, stderr))) => Stdio::Pipes {
            stdin,
            stdout,
            stderr,
        },
        (None, None) => return Err(Failure::new("no stdio")),
    };
    let fds: Vec<&OwnedFd> = match &stdio {
        Stdio::Pipes {
            stdin,
            stdout,
            stderr,
        } => [Some(stdout), Some(stderr), stdin.as_ref()]
            .into_iter()
            .flatten()
            .collect(),
        Stdio::Pty(m) => vec![m],
    };
    for fd in fds {
        let _ = rustix::io::ioctl_fionbio(fd, true);
    }
    Ok((pidfd, stdio))
}

/// The creator process: mount, resolve, check, create. Returns the init's pid and cgroup path.
fn creator_main(
    cfg: &ShimConfig,
    bundle: &Path,
    side: ContainerSide,
    start_r: OwnedFd,
) -> Result<(i32, String, bool), Failure> {
    // Rust ignores SIGPIPE before main; an ignored disposition would survive into the container.
    if let Err(e) = berth_sys::process::set_sigpipe_ignored(false) {
        eprintln!("berth-shim: reset SIGPIPE: {e}");
    }
    let rootfs = rootfs_dir(bundle);
    std::fs::create_dir_all(&rootfs)
        .map_err(|e| Failure::new(format!("create {}: {e}", rootfs.display())))?;
    let config_path = bundle.join("config.json");
    let raw = std::fs::read(&config_path)
        .map_err(|e| Failure::new(format!("read {}: {e}", config_path.display())))?;
    let spec: Spec = serde_json::from_slice(&raw)
        .map_err(|e| Failure::new(format!("parse {}: {e}", config_path.display())))?;
    berth_sys::times::mark("spec-parsed");
    // berth's own path makes the cgroups itself: on a second thread, while this one mounts the
    // rootfs and checks the user and the executable in it (the two take about as long; the
    // thread is joined before anything unshares or forks).
    let fast = match crate::fast::accepts(&spec) {
        Ok(()) => true,
        Err(why) => {
            eprintln!("berth-shim: create {} with libcontainer: {why}", cfg.id);
            false
        }
    };
    let (mounted, cgroups) = std::thread::scope(|s| {
        let cgroups = fast.then(|| s.spawn(|| crate::fast::Cgroups::make(&spec)));
        let mounted = mount_and_check(cfg, &rootfs, &spec);
        let cgroups = cgroups.map(|t| {
            t.join()
                .unwrap_or_else(|_| Err(Failure::new("the cgroup thread panicked")))
        });
        (mounted, cgroups)
    });
    // A failure on either side undoes what the other made.
    let ready = match (mounted, cgroups.transpose()) {
        (Ok(user), Ok(cgroups)) => Ok((user, cgroups)),
        (Err(e), cgroups) => {
            if let Ok(Some(c)) = cgroups {
                c.remove();
            }
            Err(e)
        }
        (Ok(_), Err(e)) => Err(e),
    };
    let res = ready.and_then(|(user, cgroups)| {
        create_mounted(cfg, bundle, &rootfs, side, start_r, raw, spec, user, cgroups)
    });
    if res.is_err() {
        cleanup_rootfs(bundle);
    }
    res
}

/// Mounts the rootfs, resolves `-u` inside the container's own /etc and checks the command's
/// executable; returns the process's user.
fn mount_and_check(cfg: &ShimConfig, rootfs: &Path, spec: &Spec) -> Result<berth_runtime::ExecUser, Failure> {
    if !cfg.rootfs.is_empty() {
        berth_sys::mount::mount_all(&cfg.rootfs, rootfs).map_err(|e| Failure::new(e.to_string()))?;
    }
    berth_sys::times::mark("rootfs-mounted");
    let user = berth_runtime::resolve_user(rootfs, &cfg.user, &cfg.group_add).map_err(Failure::bare)?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Failure::new("config.json has no process"))?;
    let args = process.args().clone().unwrap_or_default();
    let env = process.env().clone().unwrap_or_default();
    let cwd = process.cwd().to_string_lossy().into_owned();
    // Under `--init` the command is docker-init's child: check that (the init itself is
    // bind-mounted by the runtime, not in the rootfs yet).
    let cmd = match args.as_slice() {
        [init, sep, rest @ ..] if init == berth_runtime::INIT_PATH_IN_CONTAINER && sep == "--" => rest,
        all => all,
    };
    let arg0 = cmd.first().map(String::as_str).unwrap_or("");
    berth_runtime::make_workdir(rootfs, &cwd).map_err(Failure::bare)?;
    berth_runtime::check_executable(rootfs, arg0, env_path(&env), &cwd).map_err(|e| Failure {
        message: e.to_string(),
        exit_code: Some(e.exit_code()),
        bare: false,
    })?;
    berth_sys::times::mark("user-checked");
    Ok(user)
}

/// The spec's `linux.cgroupsPath` as a string (empty when it has none).
pub(crate) fn cgroups_path(spec: &Spec) -> String {
    spec.linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub(crate) fn env_path(env: &[String]) -> &str {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("")
}

#[allow(clippy::too_many_arguments)]
fn create_mounted(
    cfg: &ShimConfig,
    bundle: &Path,
    rootfs: &Path,
    side: ContainerSide,
    start_r: OwnedFd,
    raw: Vec<u8>,
    mut spec: Spec,
    exec_user: berth_runtime::ExecUser,
    cgroups: Option<crate::fast::Cgroups>,
) -> Result<(i32, String, bool), Failure> {
    let config_path = bundle.join("config.json");
    let process = spec
        .process_mut()
        .as_mut()
        .ok_or_else(|| Failure::new("config.json has no process"))?;
    let user = process.user_mut();
    user.set_uid(exec_user.uid);
    user.set_gid(exec_user.gid);
    user.set_additional_gids(Some(exec_user.additional_gids));
    // runc's HOME: the user's, unless the environment has one.
    let mut env = process.env().clone().unwrap_or_default();
    berth_runtime::default_home(&mut env, &exec_user.home);
    process.set_env(Some(env));
    // shim.json decides whether there is a tty (the shim holds the stdio).
    process.set_terminal(Some(cfg.tty));
    if let Some(root) = spec.root_mut() {
        root.set_path(rootfs.to_path_buf());
    }
    // berth's own create path for what it implements (no second spec, no runtime state; exec
    // resolves the user again instead of reading it back from config.json), in the cgroups
    // made while the rootfs was mounted; without them (the spec needs libcontainer) the rest.
    if let Some(cgroups) = cgroups {
        let cgroup_path = cgroups_path(&spec);
        let pid = crate::fast::create(cfg, bundle, &spec, rootfs, side, start_r, cgroups)?;
        return Ok((pid, cgroup_path, true));
    }
    drop(start_r);
    let body = serde_json::to_vec(&spec).map_err(|e| Failure::new(e.to_string()))?;
    if body != raw {
        // The spec holds the env: owner-only, as the daemon wrote it.
        berth_sys::fs::write_atomic(&config_path, &body, 0o600)
            .map_err(|e| Failure::new(format!("write {}: {e}", config_path.display())))?;
    }
    // Seccomp is installed from the shared cache by our executor, not compiled by libcontainer
    // for every container (see seccomp.rs). libcontainer gets its own copy of the spec, without
    // the profile and with the two capabilities the executor needs; config.json stays the
    // container's true spec, which exec reads.
    let mut lc_bundle = bundle.to_path_buf();
    let mut executor = None;
    let profile = spec.linux_mut().as_mut().and_then(|l| l.seccomp_mut().take());
    if let Some(profile) = profile {
        let process = spec
            .process_mut()
            .as_mut()
            .ok_or_else(|| Failure::new("config.json has no process"))?;
        let caps = process.capabilities().clone().unwrap_or_default();
        process.set_capabilities(Some(crate::seccomp::late_seccomp_caps(&caps)));
        executor = Some(crate::seccomp::ConfinedExecutor::new(
            Some(crate::seccomp::filter(cfg, bundle, profile)),
            &caps,
        ));
        lc_bundle = bundle.join("runtime-spec");
        berth_sys::fs::create_private_dir(&lc_bundle)
            .map_err(|e| Failure::new(format!("create {}: {e}", lc_bundle.display())))?;
        let lc_body = serde_json::to_vec(&spec).map_err(|e| Failure::new(e.to_string()))?;
        berth_sys::fs::write_atomic(&lc_bundle.join("config.json"), &lc_body, 0o600)
            .map_err(|e| Failure::new(format!("write {}: {e}", lc_bundle.display())))?;
    }
    let cgroup_path = cgroups_path(&spec);

    let runtime_root = crate::runtime::root(cfg, bundle);
    berth_sys::fs::create_private_dir(&runtime_root)
        .map_err(|e| Failure::new(format!("create {}: {e}", runtime_root.display())))?;
    let log_offset = std::fs::metadata(&cfg.runtime_log).map(|m| m.len()).unwrap_or(0);
    let lc = |e: libcontainer::error::LibcontainerError| {
        Failure::new(with_logged_cause(e.to_string(), &cfg.runtime_log, log_offset))
    };
    let mut builder = ContainerBuilder::new(cfg.id.clone(), SyscallType::default())
        .with_root_path(&runtime_root)
        .map_err(lc)?;
    builder = side.apply(builder);
    if let Some(e) = executor {
        builder = builder.with_executor(e);
    }
    let container = builder
        .as_init(&lc_bundle)
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(lc)?;
    // From here a failure must delete the container again.
    let mut guard = DeleteOnDrop(Some(container));
    let pid = guard
        .0
        .as_ref()
        .and_then(|c| c.pid())
        .map(|p| p.as_raw())
        .ok_or_else(|| Failure::new("runtime reported no pid"))?;
    if cfg.loopback_up {
        loopback_up(pid).map_err(|e| Failure::new(format!("bring up lo in the container: {e}")))?;
    }
    readonly_cgroups_v1(pid, &spec)
        .map_err(|e| Failure::new(format!("make the container's cgroups read-only: {e}")))?;
    crate::fast::cgroup::oom_killer_off_if_asked(&spec, &cgroup_path).map_err(Failure::new)?;
    guard.0 = None;
    Ok((pid, cgroup_path, false))
}

/// libcontainer (0.7) emulates `/sys/fs/cgroup` on a v1 host as runc does, a tmpfs holding a
/// bind of each hierarchy, but leaves all of it read-write even when the spec's cgroup mount
/// says `ro`: a container could raise its own limits or make cgroups. This remounts them
/// read-only in the container's mount namespace, from a child that enters it, before the
/// container starts (the fast path mounts them read-only in the first place).
fn readonly_cgroups_v1(pid: i32, spec: &Spec) -> std::io::Result<()> {
    let ro =
        spec.mounts().iter().flatten().find(|m| {
            m.typ().as_deref() == Some("cgroup") && m.options().iter().flatten().any(|o| o == "ro")
        });
    let Some(dest) = ro.map(|m| m.destination().clone()) else {
        return Ok(());
    };
    if crate::fast::cgroup::hierarchies().is_empty() {
        // No v1 hierarchy (v2): one cgroup2 mount, which libcontainer makes with the spec's flags.
        return Ok(());
    }
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/mnt"))?;
    // Read from here: the container's /proc shows only its own pid namespace, not the child's.
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))?;
    match berth_sys::process::fork()? {
        berth_sys::process::Fork::Child => {
            let code = match remount_read_only_under(&ns, &info, &dest) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("berth-shim: remount {} read-only: {e}", dest.display());
                    1
                }
            };
            // SAFETY: `_exit` ends the process without returning; nothing is left to run.
            unsafe { libc::_exit(code) }
        }
        berth_sys::process::Fork::Parent(child) => {
            let status = rustix::process::waitpid(
                rustix::process::Pid::from_raw(child),
                rustix::process::WaitOptions::empty(),
            )?;
            match status.and_then(|(_, st)| st.exit_status()) {
                Some(0) => Ok(()),
                _ => Err(std::io::Error::other(
                    "the child remounting them failed (runtime log)",
                )),
            }
        }
    }
}

/// In the mount namespace behind `ns` (whose root becomes ours), with `info` its init's
/// mountinfo: every mount at or below `dest` read-only, nosuid, nodev, noexec, keeping its other
/// flags (atime).
fn remount_read_only_under(ns: &std::fs::File, info: &str, dest: &Path) -> std::io::Result<()> {
    use crate::fast::rootfs::{current_flags, remount_bind};
    berth_sys::process::setns(ns.as_fd(), libc::CLONE_NEWNS)?;
    for mp in info.lines().filter_map(|l| l.split(' ').nth(4)).map(Path::new) {
        if mp.starts_with(dest) {
            let bits = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
            remount_bind(mp, bits | current_flags(mp))?;
        }
    }
    Ok(())
}

/// Deletes a container whose creation did not complete.
struct DeleteOnDrop(Option<Container>);

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            if let Err(e) = c.delete(true) {
                eprintln!("berth-shim: delete after failed create: {e}");
            }
            reap_all();
        }
    }
}

/// Reaps any exited children (after a forced delete).
fn reap_all() {
    use rustix::process::{waitid, WaitId, WaitIdOptions};
    // __WALL: an init not (yet) re-parented to us is a clone child without an exit signal.
    let opts = WaitIdOptions::from_bits_retain(
        WaitIdOptions::EXITED.bits() | WaitIdOptions::NOHANG.bits() | 0x4000_0000,
    );
    while let Ok(Some(_)) = waitid(WaitId::All, opts) {}
}

/// Binds a Unix socket `name` in `dir` through `/proc/self/fd/<dirfd>/`, so a long bundle path
/// cannot overflow `sun_path` (108 bytes).
pub(crate) fn bind_short(dir: &Path, name: &str) -> std::io::Result<UnixListener> {
    use std::os::fd::AsRawFd;
    let d = std::fs::File::open(dir)?;
    UnixListener::bind(format!("/proc/self/fd/{}/{name}", d.as_raw_fd()))
}

/// Accepts libcontainer's connection on the console socket and takes the pty master it sends.
pub(crate) fn receive_pty(l: &UnixListener) -> std::io::Result<OwnedFd> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let (conn, _) = l.accept()?;
    let mut name = [0u8; 64];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut anc = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [std::io::IoSliceMut::new(&mut name)];
    rustix::net::recvmsg(conn.as_fd(), &mut iov, &mut anc, RecvFlags::CMSG_CLOEXEC)?;
    for msg in anc.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
            if let Some(fd) = fds.next() {
                return Ok(fd);
            }
        }
    }
    Err(std::io::Error::other("no fd in the console socket message"))
}

/// `ip link set lo up` inside the container's (new) network namespace.
fn loopback_up(pid: i32) -> std::io::Result<()> {
    use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};
    let own = std::fs::File::open("/proc/self/ns/net")?;
    let theirs = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
    move_into_link_name_space(theirs.as_fd(), Some(LinkNameSpaceType::Network))?;
    let res = berth_sys::loopback::set_link_up("lo");
    // The creator exits right after; a failure to return only matters for the error path.
    move_into_link_name_space(own.as_fd(), Some(LinkNameSpaceType::Network))?;
    res
}

/// libcontainer's errors stop at "failed syscall"; the cause (which call, which errno) went to the
/// runtime log through `tracing` (see `trace.rs`), first from the container's init, then from the
/// builder that saw it fail. Appends the first error logged by this start so the user sees it.
pub(crate) fn with_logged_cause(message: String, runtime_log: &str, log_offset: u64) -> String {
    let log = std::fs::read(runtime_log).unwrap_or_default();
    let log = String::from_utf8_lossy(log.get(log_offset as usize..).unwrap_or_default());
    match log.lines().find(|l| l.starts_with("ERROR ")) {
        Some(line) => format!("{message}: {}", line.trim_start_matches("ERROR ").trim()),
        None => message,
    }
}
