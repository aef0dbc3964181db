//! `docker exec`: starting an extra process in the running container.
//!
//! Like create, the libcontainer part runs in a forked child of the shim (the "exec spawner"),
//! never in the long-lived shim: the child resolves `-u` and checks the executable against the
//! container's own root (`/proc/<init>/root`, which sees the container's mounts too), writes a
//! `process.json`, and runs libcontainer's tenant builder (setns into the init's namespaces, join
//! its cgroup, exec). The exec'd process is cloned with `CLONE_PARENT` from the spawner's side, so
//! when the spawner exits it is re-parented to the shim (a child subreaper), which watches it
//! with a pidfd in the poll loop.
//!
//! libcontainer 0.7's tenant builder rebuilds `linux` from namespaces and the cgroup path only:
//! the container's seccomp profile would be dropped. So the exec'd process is handed to
//! libcontainer with `CAP_SYS_ADMIN`/`CAP_SETPCAP` added, and a [`ConfinedExecutor`] — the
//! last code that runs before `execve` — installs the container's seccomp filter and then drops
//! the capabilities to exactly the exec's set (what runc's exec applies). The filter is compiled
//! once per container and cached (`seccomp.rs`): compiling it is most of an exec's cost.
//!
//! Most of `config.json` is the seccomp profile (6 of 9 kB for Docker's default), and a freshly
//! forked spawner parsing it paid ~0.4 ms, mostly in page faults of the parser's code and heap.
//! So the first exec of a shim tells it what it found ([`SeccompSeen`]: the cached program's
//! name, or no profile), and later execs parse `config.json` without the profile and read the
//! program by name. The shim lives for one start of the container, and `config.json` is written
//! before it starts, so what it learned holds for its whole life.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use berth_shim_proto::{ExecProcess, ShimConfig};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::syscall::syscall::SyscallType;
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities, Process, Spec, User};
use rustix::pipe::PipeFlags;
use serde::{Deserialize, Serialize};

use crate::create::{ContainerSide, Failure, Stdio};
use crate::seccomp::{late_seccomp_caps, ConfinedExecutor, Filter};

/// A started exec process, as the shim holds it.
pub struct Started {
    pub pid: i32,
    /// Readable when the process exits.
    pub pidfd: OwnedFd,
    pub stdio: Stdio,
    /// What this exec learned of the container's seccomp filter, for the next ones.
    pub seccomp: Option<SeccompSeen>,
}

/// The container's seccomp filter, as an exec found it in `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SeccompSeen {
    /// The container has no profile.
    NoProfile,
    /// The profile's compiled program, by its name in the cache.
    Program(String),
}

#[derive(Serialize, Deserialize)]
struct Report {
    pid: Option<i32>,
    failure: Option<Failure>,
    #[serde(default)]
    seccomp: Option<SeccompSeen>,
}

/// `config.json` without the seccomp profile: what an exec needs once the filter is known.
#[derive(Deserialize)]
struct SpecView {
    process: Option<Process>,
    linux: Option<LinuxView>,
}

#[derive(Deserialize)]
struct LinuxView {
    #[serde(rename = "cgroupsPath")]
    cgroups_path: Option<PathBuf>,
}

/// What the spawner reads of `config.json`.
struct Config {
    init: Process,
    cgroups_path: String,
    filter: Option<Filter>,
    seen: Option<SeccompSeen>,
}

/// Starts `p` in the container whose init is `init_pid`. Blocks until the process has exec'd
/// (or failed); on failure nothing is left behind.
/// `seen` is what an earlier exec of this shim learned of the container's seccomp filter.
pub fn spawn(
    cfg: &ShimConfig,
    bundle: &Path,
    init_pid: i32,
    p: &ExecProcess,
    seen: Option<&SeccompSeen>,
) -> Result<Started, Failure> {
    if p.args.is_empty() {
        return Err(Failure::new("no command specified"));
    }
    let pipe = || rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(|e| Failure::new(format!("pipe: {e}")));
    // A short, unique console socket name: the exec ID is 64 hex, its first 16 suffice here.
    let tag: String = p
        .exec_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect();
    let console_name = format!("exec-{tag}-{}.sock", std::process::id());
    let console = bundle.join(&console_name);
    let (ours, theirs, console_listener) = ContainerSide::new(bundle, &console_name, p.tty, p.stdin)?;
    let (report_r, report_w) = pipe()?;
    let res = (|| {
        let child = berth_sys::process::fork().map_err(|e| Failure::new(format!("fork: {e}")))?;
        let berth_sys::process::Fork::Parent(spawner) = child else {
            // The spawner: every fd of the shim it does not need is closed by libcontainer
            // before the exec (close_range), and the shim's listening sockets are CLOEXEC.
            drop(report_r);
            drop(ours);
            drop(console_listener);
            // Rust ignores SIGPIPE before main; an ignored disposition would survive into the process.
            let _ = berth_sys::process::set_sigpipe_ignored(false);
            berth_sys::times::mark("spawner");
            let (res, learned) = match read_config(cfg, bundle, p, seen) {
                Ok(mut config) => {
                    let learned = config.seen.take();
                    (
                        spawner_main(cfg, bundle, init_pid, p, config, theirs, &tag),
                        learned,
                    )
                }
                Err(f) => (Err(f), None),
            };
            let report = match res {
                Ok(pid) => Report {
                    pid: Some(pid),
                    failure: None,
                    seccomp: learned,
                },
                Err(f) => Report {
                    pid: None,
                    failure: Some(f),
                    seccomp: learned,
                },
            };
            berth_sys::times::mark("spawner-report");
            let mut line = serde_json::to_vec(&report).unwrap_or_default();
            line.push(b'\n');
            let _ = std::fs::File::from(report_w).write_all(&line);
            std::process::exit(0);
        };
        drop(theirs);
        drop(report_w);
        // One line, not EOF: the exec'd process may hold a copy of the write end until it execs.
        let mut line = String::new();
        let read = BufReader::new(std::fs::File::from(report_r)).read_line(&mut line);
        berth_sys::times::mark("shim-exec-report");
        let _ = rustix::process::waitpid(
            rustix::process::Pid::from_raw(spawner),
            rustix::process::WaitOptions::empty(),
        );
        berth_sys::times::mark("shim-spawner-reaped");
        let report: Report = read
            .ok()
            .and_then(|_| serde_json::from_str(&line).ok())
            .ok_or_else(|| Failure::new("the runtime process died while starting the exec"))?;
        if let Some(f) = report.failure {
            return Err(f);
        }
        let pid = report
            .pid
            .ok_or_else(|| Failure::new("runtime reported no pid"))?;
        let pidfd = rustix::process::pidfd_open(
            rustix::process::Pid::from_raw(pid).ok_or_else(|| Failure::new("invalid pid"))?,
            rustix::process::PidfdFlags::empty(),
        )
        .map_err(|e| Failure::new(format!("pidfd_open {pid}: {e}")))?;
        let stdio = match (console_listener, ours) {
            (Some(l), _) => {
                // The process sent its pty master before it exec'd: the connection is queued.
                l.set_nonblocking(true).map_err(|e| Failure::new(e.to_string()))?;
                let master = match crate::create::receive_pty(&l) {
                    Ok(m) => m,
                    Err(e) => {
                        let _ = berth_sys::process::pidfd_send_signal(
                            std::os::fd::AsFd::as_fd(&pidfd),
                            libc::SIGKILL,
                        );
                        return Err(Failure::new(format!("receive the exec's pty master: {e}")));
                    }
                };
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
        Ok(Started {
            pid,
            pidfd,
            stdio,
            seccomp: report.seccomp,
        })
    })();
    let _ = std::fs::remove_file(&console);
    res
}

/// Reads the bundle's `config.json`: without the seccomp profile when `seen` (or a privileged
/// exec, which runs unconfined) makes it unneeded, else all of it.
fn read_config(
    cfg: &ShimConfig,
    bundle: &Path,
    p: &ExecProcess,
    seen: Option<&SeccompSeen>,
) -> Result<Config, Failure> {
    let config_path = bundle.join("config.json");
    let raw = std::fs::read(&config_path)
        .map_err(|e| Failure::new(format!("read {}: {e}", config_path.display())))?;
    let parse_err = |e: serde_json::Error| Failure::new(format!("parse {}: {e}", config_path.display()));
    let no_process = || Failure::new("config.json has no process");
    // The filter without parsing the profile: none, or the program an earlier exec found.
    let known = match (p.privileged, seen) {
        (true, _) | (false, Some(SeccompSeen::NoProfile)) => Some(None),
        (false, Some(SeccompSeen::Program(name))) => {
            crate::seccomp::cached_program(cfg, bundle, name).map(|b| Some(Filter::Program(b)))
        }
        (false, None) => None,
    };
    if let Some(filter) = known {
        let view: SpecView = serde_json::from_slice(&raw).map_err(parse_err)?;
        return Ok(Config {
            init: view.process.ok_or_else(no_process)?,
            cgroups_path: view
                .linux
                .and_then(|l| l.cgroups_path)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            filter,
            seen: None,
        });
    }
    let spec: Spec = serde_json::from_slice(&raw).map_err(parse_err)?;
    let cgroups_path = crate::create::cgroups_path(&spec);
    let profile = spec.linux().as_ref().and_then(|l| l.seccomp().clone());
    let name = profile.as_ref().and_then(crate::seccomp::program_name);
    let filter = profile.map(|s| crate::seccomp::filter(cfg, bundle, s));
    let seen = match (&filter, name) {
        (None, _) => Some(SeccompSeen::NoProfile),
        (Some(Filter::Program(_)), Some(name)) => Some(SeccompSeen::Program(name)),
        // Left to libcontainer to compile: nothing to reuse.
        _ => None,
    };
    Ok(Config {
        init: spec.process().clone().ok_or_else(no_process)?,
        cgroups_path,
        filter,
        seen,
    })
}

/// The spawner process, with what it read of `config.json`: resolve, check, build the process,
/// run libcontainer's tenant builder.
fn spawner_main(
    cfg: &ShimConfig,
    bundle: &Path,
    init_pid: i32,
    p: &ExecProcess,
    config: Config,
    side: ContainerSide,
    tag: &str,
) -> Result<i32, Failure> {
    let Config {
        init,
        cgroups_path,
        filter,
        ..
    } = config;
    let init = &init;
    berth_sys::times::mark("spawner-spec");
    // The container's root as its processes see it, mounts included.
    let root = PathBuf::from(format!("/proc/{init_pid}/root"));

    // The exec's `-u` (the container's when it names none), resolved in the container's root at
    // exec time, as runc's exec does.
    let name = if p.user.is_empty() { &cfg.user } else { &p.user };
    let exec_user =
        berth_runtime::resolve_user(&root, name, &cfg.group_add).map_err(|e| Failure::new(e.to_string()))?;
    let fast = crate::fast::exec::is_fast(&crate::runtime::state_dir(cfg, bundle));
    let mut user = User::default();
    user.set_uid(exec_user.uid);
    user.set_gid(exec_user.gid);
    user.set_additional_gids(Some(exec_user.additional_gids));
    let mut env = p.env.clone();
    berth_runtime::default_home(&mut env, &exec_user.home);
    let cwd = if p.cwd.is_empty() {
        init.cwd().to_string_lossy().into_owned()
    } else {
        p.cwd.clone()
    };
    berth_sys::times::mark("spawner-user");
    berth_runtime::check_executable(&root, &p.args[0], crate::create::env_path(&p.env), &cwd).map_err(
        |e| Failure {
            message: e.to_string(),
            exit_code: Some(e.exit_code()),
            bare: false,
        },
    )?;

    // The exec's capabilities: the container's, or all the host grants (privileged).
    let caps: LinuxCapabilities = if p.privileged {
        let names = berth_runtime::capabilities(true, &[], &[]).map_err(|e| Failure::new(e.to_string()))?;
        let set: Capabilities = names
            .iter()
            .filter_map(|n| n.parse::<Capability>().ok())
            .collect();
        let mut c = LinuxCapabilities::default();
        c.set_bounding(Some(set.clone()))
            .set_effective(Some(set.clone()))
            .set_permitted(Some(set))
            .set_inheritable(None)
            .set_ambient(None);
        c
    } else {
        init.capabilities().clone().unwrap_or_else(|| {
            let mut c = LinuxCapabilities::default();
            c.set_bounding(None)
                .set_effective(None)
                .set_permitted(None)
                .set_inheritable(None)
                .set_ambient(None);
            c
        })
    };
    berth_sys::times::mark("spawner-checked");
    let mut process = Process::default();
    process
        .set_terminal(Some(p.tty))
        .set_args(Some(p.args.clone()))
        .set_env(Some(env))
        .set_cwd(PathBuf::from(&cwd))
        .set_user(user)
        .set_capabilities(Some(caps.clone()))
        .set_no_new_privileges(init.no_new_privileges())
        .set_rlimits(init.rlimits().clone())
        .set_oom_score_adj(init.oom_score_adj());

    if fast {
        let winsize = p.console_size.filter(|_| p.tty);
        return crate::fast::exec::spawn(
            init_pid,
            &cgroups_path,
            &process,
            filter.as_ref(),
            &caps,
            side,
            winsize,
        );
    }
    // With seccomp to install late (see the module doc), libcontainer leaves the process
    // CAP_SYS_ADMIN (to load the filter without no_new_privs) and CAP_SETPCAP (to shrink the
    // bounding set afterwards); the executor drops them.
    if filter.is_some() {
        process.set_capabilities(Some(late_seccomp_caps(&caps)));
    }
    process
        .set_apparmor_profile(None)
        .set_selinux_label(None)
        .set_console_size(None);
    let process_path = bundle.join(format!("exec-{tag}-{}.json", std::process::id()));
    // The process holds the exec's env: owner-only.
    berth_sys::fs::write_atomic(
        &process_path,
        &serde_json::to_vec(&process).map_err(|e| Failure::new(e.to_string()))?,
        0o600,
    )
    .map_err(|e| Failure::new(format!("write {}: {e}", process_path.display())))?;

    let log_offset = std::fs::metadata(&cfg.runtime_log).map(|m| m.len()).unwrap_or(0);
    let lc = |e: libcontainer::error::LibcontainerError| {
        Failure::new(crate::create::with_logged_cause(
            format!("exec failed: {e}"),
            &cfg.runtime_log,
            log_offset,
        ))
    };
    let res = (|| {
        // The shim starts the init through the notify socket without libcontainer, so its state
        // still says `created`; the tenant builder only joins a `running` container.
        let mut c = Container::load(crate::runtime::state_dir(cfg, bundle)).map_err(lc)?;
        if c.status() == ContainerStatus::Created {
            c.set_status(ContainerStatus::Running).save().map_err(lc)?;
        }
        let mut builder = ContainerBuilder::new(cfg.id.clone(), SyscallType::default())
            .with_root_path(crate::runtime::root(cfg, bundle))
            .map_err(lc)?
            .with_executor(
                ConfinedExecutor::new(filter, &caps).with_winsize(p.console_size.filter(|_| p.tty)),
            );
        builder = side.apply(builder);
        builder
            .as_tenant()
            .with_detach(true)
            .with_process(Some(&process_path))
            .build()
            .map_err(lc)
    })();
    let _ = std::fs::remove_file(&process_path);
    Ok(res?.as_raw())
}
