//! Docker's default seccomp profile, as data.
//!
//! The profile is an allow-list: every syscall not named here fails with `EPERM`
//! (`SCMP_ACT_ERRNO`, `defaultErrnoRet = 1`). On top of the unconditional list come
//! - argument filters: `personality` only with the personas Docker allows, `socket` with any
//!   family but `AF_VSOCK`, and `clone` without namespace flags unless the container holds
//!   `CAP_SYS_ADMIN` (`clone3` then answers `ENOSYS` so libc falls back to `clone`);
//! - capability groups: a syscall that needs a capability is allowed only when the container's
//!   bounding set holds it (`CAP_SYS_ADMIN` → `mount`, `setns`, …; `CAP_SYS_PTRACE` → `kcmp`, …).
//!
//! Names unknown to the host's libseccomp are skipped by the runtime (with a warning), so the
//! table may name syscalls newer than the library, as Docker's profile does.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder, LinuxSeccompOperator,
    LinuxSyscall,
};

/// Syscalls every container may call.
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "getxattrat",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listmount",
    "listxattr",
    "listxattrat",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "mseal",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "removexattrat",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "setxattrat",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statmount",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "uretprobe",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
    // Allowed since kernel 4.8 made ptrace safe under seccomp (the kernel here is newer).
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
];

/// Architecture-specific syscalls.
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
const ARCH_ALLOWED: &[&str] = &["arch_prctl", "modify_ldt"];
#[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
const ARCH_ALLOWED: &[&str] = &[
    "arm_fadvise64_64",
    "arm_sync_file_range",
    "sync_file_range2",
    "breakpoint",
    "cacheflush",
    "set_tls",
];
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm"
)))]
const ARCH_ALLOWED: &[&str] = &[];

/// Syscalls allowed only when the container holds a capability.
const BY_CAPABILITY: &[(&str, &[&str])] = &[
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    ("CAP_SYS_PTRACE", &["kcmp", "pidfd_getfd", "process_madvise"]),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// Personas `personality(2)` may switch to: PER_LINUX, UNAME26, PER_LINUX32, UNAME26|PER_LINUX32,
/// and the query value.
const PERSONAS: &[u64] = &[0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff];

/// CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |
/// CLONE_NEWCGROUP: the flags `clone` may not carry without CAP_SYS_ADMIN.
const CLONE_NS_FLAGS: u64 = 0x7E02_0000;

const AF_VSOCK: u64 = 40;
const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

fn architectures() -> Vec<Arch> {
    if cfg!(target_arch = "x86_64") {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    } else if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else {
        vec![Arch::ScmpArchNative]
    }
}

fn rule(
    names: &[&str],
    action: LinuxSeccompAction,
    errno: Option<u32>,
    args: Vec<LinuxSeccompArg>,
) -> LinuxSyscall {
    let mut s = LinuxSyscall::default();
    s.set_names(names.iter().map(|n| n.to_string()).collect());
    s.set_action(action);
    s.set_errno_ret(errno);
    if !args.is_empty() {
        s.set_args(Some(args));
    }
    s
}

fn arg(index: usize, value: u64, value_two: Option<u64>, op: LinuxSeccompOperator) -> LinuxSeccompArg {
    let b = LinuxSeccompArgBuilder::default().index(index).value(value).op(op);
    let b = match value_two {
        Some(v) => b.value_two(v),
        None => b,
    };
    b.build().expect("every field of a seccomp argument is set")
}

/// Docker's default profile for a container whose capability set is `caps` (`CAP_…` names).
pub fn default_profile(caps: &[String]) -> LinuxSeccomp {
    use LinuxSeccompAction::{ScmpActAllow as Allow, ScmpActErrno as Errno};
    let has = |c: &str| caps.iter().any(|x| x == c);
    let mut syscalls = vec![rule(ALLOWED, Allow, None, vec![])];
    if !ARCH_ALLOWED.is_empty() {
        syscalls.push(rule(ARCH_ALLOWED, Allow, None, vec![]));
    }
    for p in PERSONAS {
        syscalls.push(rule(
            &["personality"],
            Allow,
            None,
            vec![arg(0, *p, None, LinuxSeccompOperator::ScmpCmpEq)],
        ));
    }
    syscalls.push(rule(
        &["socket"],
        Allow,
        None,
        vec![arg(0, AF_VSOCK, None, LinuxSeccompOperator::ScmpCmpNe)],
    ));
    for (cap, names) in BY_CAPABILITY {
        if has(cap) {
            syscalls.push(rule(names, Allow, None, vec![]));
        }
    }
    if !has("CAP_SYS_ADMIN") {
        // s390 passes the flags in the second argument; every other arch in the first.
        let idx = if cfg!(target_arch = "s390x") { 1 } else { 0 };
        syscalls.push(rule(
            &["clone"],
            Allow,
            None,
            vec![arg(
                idx,
                CLONE_NS_FLAGS,
                Some(0),
                LinuxSeccompOperator::ScmpCmpMaskedEq,
            )],
        ));
        syscalls.push(rule(&["clone3"], Errno, Some(ENOSYS), vec![]));
    }
    let mut s = LinuxSeccomp::default();
    s.set_default_action(Errno);
    s.set_default_errno_ret(Some(EPERM));
    s.set_architectures(Some(architectures()));
    s.set_syscalls(Some(syscalls));
    s
}

/// A seccomp profile in Docker's JSON format (`--security-opt seccomp=profile.json`: the
/// client sends the file's content), as dockerd reads it.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerProfile {
    default_action: LinuxSeccompAction,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<Arch>,
    #[serde(default)]
    arch_map: Vec<ArchMap>,
    #[serde(default)]
    syscalls: Vec<DockerSyscall>,
    #[serde(default)]
    flags: Vec<oci_spec::runtime::LinuxSeccompFilterFlag>,
    #[serde(default)]
    listener_path: Option<std::path::PathBuf>,
    #[serde(default)]
    listener_metadata: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: Arch,
    #[serde(default)]
    sub_architectures: Vec<Arch>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerSyscall {
    #[serde(default)]
    name: String,
    #[serde(default)]
    names: Vec<String>,
    action: LinuxSeccompAction,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Vec<DockerArg>,
    #[serde(default)]
    includes: Condition,
    #[serde(default)]
    excludes: Condition,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerArg {
    index: usize,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: LinuxSeccompOperator,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Condition {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    min_kernel: String,
}

/// This machine's architecture as seccomp names it.
fn native_arch() -> Arch {
    if cfg!(target_arch = "aarch64") {
        Arch::ScmpArchAarch64
    } else {
        Arch::ScmpArchX86_64
    }
}

/// `"4.8"` → `(4, 8)`; `None` when it does not parse.
fn kernel_version(v: &str) -> Option<(u32, u32)> {
    let mut it = v.split(['.', '-']);
    let major = it.next()?.parse().ok()?;
    let minor = it.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

fn running_kernel() -> (u32, u32) {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .and_then(|r| kernel_version(r.trim()))
        .unwrap_or((0, 0))
}

/// The OCI profile for Docker's JSON `profile`, for a container whose capability set is
/// `caps`: dockerd's reading (architectures from `architectures` or the native entry of
/// `archMap`; a rule kept only when its `includes` hold and its `excludes` do not — capabilities,
/// architectures, minimum kernel; `name` or `names`). Errors say what is wrong with the profile.
pub fn from_docker_profile(profile: &str, caps: &[String]) -> Result<LinuxSeccomp, String> {
    let p: DockerProfile =
        serde_json::from_str(profile).map_err(|e| format!("decoding seccomp profile failed: {e}"))?;
    if !p.architectures.is_empty() && !p.arch_map.is_empty() {
        return Err("both 'architectures' and 'archMap' are specified in the seccomp profile, use either 'architectures' or 'archMap'".into());
    }
    let native = native_arch();
    // Conditions name architectures as Go does (moby compares them with GOARCH's names).
    let native_name = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    if p.default_action == LinuxSeccompAction::ScmpActNotify
        || p.syscalls
            .iter()
            .any(|c| c.action == LinuxSeccompAction::ScmpActNotify)
        || p.listener_path.is_some()
    {
        return Err("seccomp notify (SCMP_ACT_NOTIFY, listenerPath) is not supported by berth".into());
    }
    let mut arches = p.architectures;
    for m in p.arch_map.into_iter().filter(|m| m.architecture == native) {
        arches.push(m.architecture);
        arches.extend(m.sub_architectures);
    }
    let kernel = running_kernel();
    let at_least = |min: &str| kernel_version(min).is_some_and(|m| kernel >= m);
    let has_arch = |list: &[String]| list.iter().any(|a| a == native_name);
    let mut syscalls = Vec::new();
    for c in p.syscalls {
        if !c.name.is_empty() && !c.names.is_empty() {
            return Err(
                "'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'"
                    .into(),
            );
        }
        let names = if c.name.is_empty() { c.names } else { vec![c.name] };
        let ex = &c.excludes;
        if has_arch(&ex.arches)
            || ex.caps.iter().any(|x| caps.contains(x))
            || (!ex.min_kernel.is_empty() && at_least(&ex.min_kernel))
        {
            continue;
        }
        let inc = &c.includes;
        if (!inc.arches.is_empty() && !has_arch(&inc.arches))
            || !inc.caps.iter().all(|x| caps.contains(x))
            || (!inc.min_kernel.is_empty() && !at_least(&inc.min_kernel))
        {
            continue;
        }
        let args = c
            .args
            .iter()
            .map(|a| arg(a.index, a.value, (a.value_two != 0).then_some(a.value_two), a.op))
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        syscalls.push(rule(&names, c.action, c.errno_ret, args));
    }
    let mut s = LinuxSeccomp::default();
    s.set_default_action(p.default_action);
    s.set_default_errno_ret(p.default_errno_ret);
    s.set_architectures((!arches.is_empty()).then_some(arches));
    s.set_flags((!p.flags.is_empty()).then_some(p.flags));
    s.set_listener_path(p.listener_path);
    s.set_listener_metadata(p.listener_metadata);
    s.set_syscalls(Some(syscalls));
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(p: &LinuxSeccomp, name: &str) -> bool {
        p.syscalls().as_ref().unwrap().iter().any(|s| {
            s.action() == LinuxSeccompAction::ScmpActAllow
                && s.args().is_none()
                && s.names().iter().any(|n| n == name)
        })
    }

    #[test]
    fn default_profile_denies_mount_and_allows_read() {
        let p = default_profile(&["CAP_CHOWN".into()]);
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(EPERM));
        assert!(allowed(&p, "read"));
        assert!(!allowed(&p, "mount"));
        assert!(
            !allowed(&p, "clone"),
            "clone is only allowed with an argument filter"
        );
    }

    #[test]
    fn sys_admin_unlocks_mount_and_clone() {
        let p = default_profile(&["CAP_SYS_ADMIN".into()]);
        assert!(allowed(&p, "mount"));
        assert!(allowed(&p, "clone"));
        assert!(allowed(&p, "setns"));
    }

    /// Every syscall name the profile's rules list, in order.
    fn rule_names(p: &LinuxSeccomp) -> Vec<String> {
        p.syscalls()
            .iter()
            .flatten()
            .flat_map(|s| s.names().clone())
            .collect()
    }

    /// A profile in Docker's format: architectures from the native `archMap` entry, rules kept
    /// by their capability, architecture and kernel conditions, `name` or `names`.
    #[test]
    fn docker_profile_is_read_as_dockerd_reads_it() {
        let json = r#"{
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
            "archMap": [
                {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
            ],
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"name": "mkdir", "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["kill"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_KILL"]}},
                {"names": ["bpf"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.0"}},
                {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
                {"names": ["swapcontext"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["ppc64le"]}},
                {"names": ["sync"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["amd64", "arm64"]}},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]}
            ]
        }"#;
        let p = from_docker_profile(json, &["CAP_KILL".into()]).unwrap();
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(1));
        if cfg!(target_arch = "x86_64") {
            assert_eq!(
                p.architectures().as_deref(),
                Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
            );
        }
        let names = rule_names(&p);
        // (Arch conditions name Go's architectures: amd64 here, arm64 on aarch64.)
        let arch_rule = if cfg!(target_arch = "x86_64") {
            vec!["arch_prctl"]
        } else {
            vec![]
        };
        let want: Vec<&str> = ["read", "write", "mkdir"]
            .into_iter()
            .chain(arch_rule)
            .chain(["personality"])
            .collect();
        assert_eq!(names, want);
        let mkdir = &p.syscalls().as_ref().unwrap()[1];
        assert_eq!(
            (mkdir.action(), mkdir.errno_ret()),
            (LinuxSeccompAction::ScmpActErrno, Some(13))
        );
        let personality = p.syscalls().as_ref().unwrap().last().unwrap();
        let a = &personality.args().as_ref().unwrap()[0];
        assert_eq!(
            (a.index(), a.value(), a.value_two(), a.op()),
            (0, 8, None, LinuxSeccompOperator::ScmpCmpEq)
        );
        // With CAP_SYS_ADMIN and without CAP_KILL the conditional rules flip.
        let p = from_docker_profile(json, &["CAP_SYS_ADMIN".into()]).unwrap();
        let names = rule_names(&p);
        assert!(
            names.contains(&"mount".to_string()) && names.contains(&"kill".to_string()),
            "{names:?}"
        );
    }

    #[test]
    fn bad_docker_profiles_say_what_is_wrong() {
        let e = from_docker_profile("{not json", &[]).unwrap_err();
        assert!(e.starts_with("decoding seccomp profile failed"), "{e}");
        let both = r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ERRNO"}]}"#;
        assert!(from_docker_profile(both, &[])
            .unwrap_err()
            .contains("use either 'name' or 'names'"));
        let arches = r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"], "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}"#;
        assert!(from_docker_profile(arches, &[])
            .unwrap_err()
            .contains("'architectures' or 'archMap'"));
        let action = r#"{"defaultAction": "SCMP_ACT_SOMETHING"}"#;
        assert!(from_docker_profile(action, &[]).is_err());
        let notify = r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}"#;
        assert!(from_docker_profile(notify, &[]).unwrap_err().contains("notify"));
    }
}
