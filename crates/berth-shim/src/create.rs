//! Creating the container: rootfs mount, `-u` resolution, the exec check, stdio, and
//! libcontainer's create, which leaves the init process waiting for `start`.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use berth_shim_proto::ShimConfig;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;
use oci_spec::runtime::Spec;
use rustix::pipe::PipeFlags;

/// A creation failure: docker's message and, for exec failures, 127/126.
pub struct Failure {
    pub message: String,
    pub exit_code: Option<i32>,
}

impl Failure {
    fn new(message: impl Into<String>) -> Self {
        Failure { message: message.into(), exit_code: None }
    }
}

/// The container's stdio as the shim holds it.
pub enum Stdio {
    /// Pipes: the write end of the container's stdin (None = /dev/null), read ends of stdout/stderr.
    Pipes { stdin: Option<OwnedFd>, stdout: OwnedFd, stderr: OwnedFd },
    /// The pty master (stdin and output both).
    Pty(OwnedFd),
}

/// A created, not yet started container. Everything here is a plain fd or value, so that it
/// survives the shim re-executing itself into its small monitor image (see `main.rs`).
pub struct Created {
    pub pid: i32,
    /// Readable when the init exits.
    pub pidfd: OwnedFd,
    pub stdio: Stdio,
    pub listener: UnixListener,
    /// Cgroup path from the spec (`/parent/id`), for kill-all and the OOM counter.
    pub cgroup_path: String,
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

pub fn create(cfg: &ShimConfig, bundle: &Path) -> Result<Created, Failure> {
    if let Err(e) = berth_sys::process::set_sigpipe_ignored(false) {
        eprintln!("berth-shim: reset SIGPIPE: {e}");
    }
    if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        eprintln!("berth-shim: set child subreaper: {e}");
    }
    let rootfs = rootfs_dir(bundle);
    std::fs::create_dir_all(&rootfs).map_err(|e| Failure::new(format!("create {}: {e}", rootfs.display())))?;
    if !cfg.rootfs.is_empty() {
        berth_sys::mount::mount_all(&cfg.rootfs, &rootfs).map_err(|e| Failure::new(e.to_string()))?;
    }
    match create_mounted(cfg, bundle, &rootfs) {
        Ok(c) => Ok(c),
        Err(f) => {
            let _ = std::fs::remove_file(&cfg.socket);
            cleanup_rootfs(bundle);
            Err(f)
        }
    }
}

fn env_path(env: &[String]) -> &str {
    env.iter().rev().find_map(|e| e.strip_prefix("PATH=")).unwrap_or("")
}

fn create_mounted(cfg: &ShimConfig, bundle: &Path, rootfs: &Path) -> Result<Created, Failure> {
    let config_path = bundle.join("config.json");
    let raw = std::fs::read(&config_path).map_err(|e| Failure::new(format!("read {}: {e}", config_path.display())))?;
    let mut spec: Spec =
        serde_json::from_slice(&raw).map_err(|e| Failure::new(format!("parse {}: {e}", config_path.display())))?;
    drop(raw);

    // -u, resolved inside the container's own /etc.
    let (uid, gid, extra) = berth_runtime::resolve_user(rootfs, &cfg.user).map_err(|e| Failure::new(e.to_string()))?;
    let process = spec.process_mut().as_mut().ok_or_else(|| Failure::new("config.json has no process"))?;
    let user = process.user_mut();
    let changed = user.uid() != uid || user.gid() != gid || user.additional_gids().as_deref().unwrap_or(&[]) != extra;
    user.set_uid(uid);
    user.set_gid(gid);
    user.set_additional_gids(if extra.is_empty() { None } else { Some(extra) });

    let args = process.args().clone().unwrap_or_default();
    let env = process.env().clone().unwrap_or_default();
    let cwd = process.cwd().to_string_lossy().into_owned();
    let arg0 = args.first().map(String::as_str).unwrap_or("");
    berth_runtime::check_executable(rootfs, arg0, env_path(&env), &cwd)
        .map_err(|e| Failure { message: e.to_string(), exit_code: Some(e.exit_code()) })?;
    let tty = process.terminal().unwrap_or(false);
    if let Some(root) = spec.root_mut() {
        root.set_path(rootfs.to_path_buf());
    }
    if changed || spec.root().as_ref().map(|r| r.path() != rootfs).unwrap_or(true) {
        let body = serde_json::to_vec(&spec).map_err(|e| Failure::new(e.to_string()))?;
        std::fs::File::create(&config_path)
            .and_then(|mut f| f.write_all(&body))
            .map_err(|e| Failure::new(format!("write {}: {e}", config_path.display())))?;
    }
    let cgroup_path = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    drop(spec);
    if tty != cfg.tty {
        eprintln!("berth-shim: config.json terminal={tty} but shim.json tty={}; following config.json", cfg.tty);
    }

    // The daemon's socket; listening before create keeps failure cleanup simple.
    let _ = std::fs::remove_file(&cfg.socket);
    let listener = UnixListener::bind(&cfg.socket).map_err(|e| Failure::new(format!("listen on {}: {e}", cfg.socket)))?;
    listener.set_nonblocking(true).map_err(|e| Failure::new(e.to_string()))?;

    let runtime_root = bundle.join("runtime");
    std::fs::create_dir_all(&runtime_root).map_err(|e| Failure::new(format!("create {}: {e}", runtime_root.display())))?;
    let fail = |e: libcontainer::error::LibcontainerError| {
        let _ = std::fs::remove_file(&cfg.socket);
        Failure::new(e.to_string())
    };
    let mut builder = ContainerBuilder::new(cfg.id.clone(), SyscallType::default())
        .with_root_path(&runtime_root)
        .map_err(fail)?;
    let console = bundle.join("console.sock");
    let mut console_listener = None;
    let mut ours: Option<(Option<OwnedFd>, OwnedFd, OwnedFd)> = None;
    if tty {
        let _ = std::fs::remove_file(&console);
        let l = bind_short(bundle, "console.sock").map_err(|e| Failure::new(format!("listen on {}: {e}", console.display())))?;
        console_listener = Some(l);
        builder = builder.with_console_socket(Some(&console));
    } else {
        let pipe = || rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(|e| Failure::new(format!("pipe: {e}")));
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let stdin_w = if cfg.open_stdin {
            let (in_r, in_w) = pipe()?;
            builder = builder.with_stdin(in_r);
            Some(in_w)
        } else {
            let null = std::fs::File::open("/dev/null").map_err(|e| Failure::new(format!("open /dev/null: {e}")))?;
            builder = builder.with_stdin(OwnedFd::from(null));
            None
        };
        builder = builder.with_stdout(out_w).with_stderr(err_w);
        ours = Some((stdin_w, out_r, err_r));
    }
    let built = builder.as_init(bundle).with_systemd(false).with_detach(true).build();
    // libcontainer chdirs; everything below uses absolute paths, but stay predictable.
    let _ = std::env::set_current_dir(bundle);
    let container = match built {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&console);
            return Err(fail(e));
        }
    };
    // The init has been cloned: from now on the shim itself ignores SIGPIPE (a client going away
    // is an EPIPE, not a death) while the container keeps the default.
    if let Err(e) = berth_sys::process::set_sigpipe_ignored(true) {
        eprintln!("berth-shim: ignore SIGPIPE: {e}");
    }
    let mut created = CreatedParts { container: Some(container), socket: cfg.socket.clone(), console: console.clone() };
    let pid = created.container.as_ref().and_then(|c| c.pid()).map(|p| p.as_raw()).ok_or_else(|| Failure::new("runtime reported no pid"))?;
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(pid).ok_or_else(|| Failure::new("invalid pid"))?,
        rustix::process::PidfdFlags::empty(),
    )
    .map_err(|e| Failure::new(format!("pidfd_open {pid}: {e}")))?;

    let stdio = match (console_listener, ours) {
        (Some(l), _) => {
            let master = receive_pty(&l).map_err(|e| Failure::new(format!("receive pty master: {e}")))?;
            let _ = std::fs::remove_file(&console);
            if let Some((h, w)) = cfg.console_size {
                let ws = rustix::termios::Winsize { ws_row: h, ws_col: w, ws_xpixel: 0, ws_ypixel: 0 };
                if let Err(e) = rustix::termios::tcsetwinsize(&master, ws) {
                    eprintln!("berth-shim: set console size: {e}");
                }
            }
            Stdio::Pty(master)
        }
        (None, Some((stdin, stdout, stderr))) => Stdio::Pipes { stdin, stdout, stderr },
        (None, None) => return Err(Failure::new("no stdio")),
    };
    for fd in stdio_fds(&stdio) {
        let _ = rustix::io::ioctl_fionbio(fd, true);
    }

    if cfg.loopback_up {
        loopback_up(pid).map_err(|e| Failure::new(format!("bring up lo in the container: {e}")))?;
    }
    // Success: the container stays; from here on the monitor owns its lifecycle.
    created.container = None;
    Ok(Created { pid, pidfd, stdio, listener, cgroup_path })
}

/// Binds a Unix socket `name` in `dir` through `/proc/self/fd/<dirfd>/`, so a long bundle path
/// cannot overflow `sun_path` (108 bytes).
fn bind_short(dir: &Path, name: &str) -> std::io::Result<UnixListener> {
    let d = std::fs::File::open(dir)?;
    use std::os::fd::AsRawFd;
    UnixListener::bind(format!("/proc/self/fd/{}/{name}", d.as_raw_fd()))
}

/// Undoes a half-finished create when a step after libcontainer's create fails.
struct CreatedParts {
    container: Option<Container>,
    socket: String,
    console: PathBuf,
}

impl Drop for CreatedParts {
    fn drop(&mut self) {
        if let Some(mut c) = self.container.take() {
            if let Err(e) = c.delete(true) {
                eprintln!("berth-shim: delete after failed create: {e}");
            }
            reap_all();
            let _ = std::fs::remove_file(&self.socket);
            let _ = std::fs::remove_file(&self.console);
        }
    }
}

/// Reaps any exited children (after a forced delete).
fn reap_all() {
    use rustix::process::{waitid, WaitId, WaitIdOptions};
    // __WALL: the init is a clone child without an exit signal.
    let opts = WaitIdOptions::from_bits_retain(WaitIdOptions::EXITED.bits() | WaitIdOptions::NOHANG.bits() | 0x4000_0000);
    while let Ok(Some(_)) = waitid(WaitId::All, opts) {}
}

fn stdio_fds(s: &Stdio) -> Vec<&OwnedFd> {
    match s {
        Stdio::Pipes { stdin, stdout, stderr } => {
            let mut v = vec![stdout, stderr];
            v.extend(stdin.iter());
            v
        }
        Stdio::Pty(m) => vec![m],
    }
}

/// Accepts libcontainer's connection on the console socket and takes the pty master it sends.
fn receive_pty(l: &UnixListener) -> std::io::Result<OwnedFd> {
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
    move_into_link_name_space(own.as_fd(), Some(LinkNameSpaceType::Network))
        .expect("returning to the shim's own network namespace cannot fail");
    res
}
