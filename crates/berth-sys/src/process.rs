//! Signals for a process supervisor (the shim): sending any signal number, and the SIGPIPE
//! disposition, which a supervisor must ignore for itself but must not pass on to the container
//! (an ignored disposition survives `execve`).

use std::io;

/// Sends signal `sig` (any number, including real-time signals) to `pid`; a negative `pid`
/// addresses a process group, as in kill(2).
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    let r = unsafe { libc::kill(pid, sig) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets SIGPIPE to be ignored (`true`) or to its default action (`false`).
///
/// Rust's runtime ignores SIGPIPE before `main`; a process that forks a container must restore
/// the default first so the container's processes die of SIGPIPE as they would under Docker, and
/// may ignore it again afterwards for itself.
pub fn set_sigpipe_ignored(ignore: bool) -> io::Result<()> {
    let handler = if ignore { libc::SIG_IGN } else { libc::SIG_DFL };
    // SAFETY: installing SIG_IGN or SIG_DFL runs no code of ours in signal context; signal(2)
    // with these constants has no memory-safety preconditions.
    let r = unsafe { libc::signal(libc::SIGPIPE, handler) };
    if r == libc::SIG_ERR {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Sends signal `sig` (any number) to the process behind `pidfd`, which cannot be a recycled pid.
pub fn pidfd_send_signal(pidfd: std::os::fd::BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: pidfd_send_signal(2) with a valid fd, a signal number, a NULL siginfo (the kernel
    // fills one in as for kill(2)) and no flags; no memory of ours is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Which side of a [`fork`] this is.
pub enum Fork {
    Child,
    Parent(i32),
}

/// Forks the calling process, which must be single-threaded (checked: fails otherwise).
pub fn fork() -> io::Result<Fork> {
    let threads = std::fs::read_dir("/proc/thread-self/..")?.count();
    if threads != 1 {
        return Err(io::Error::other(format!(
            "refusing to fork a process with {threads} threads"
        )));
    }
    // SAFETY: the process has exactly one thread (checked above), so the child is a complete
    // copy: no lock can be held by a thread that does not exist in the child, and the child may
    // run arbitrary code, as in a single-threaded C program.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid)),
    }
}

/// Forks the calling process, which must be single-threaded, with the child born in the cgroup v2
/// directory `cgroup` (`clone3` with `CLONE_INTO_CGROUP`). Unlike writing a pid to
/// `cgroup.procs`, this takes the kernel's cgroup threadgroup lock only for reading, so it never
/// waits for an RCU grace period (several ms after a quiet spell). Fails with
/// `ErrorKind::Unsupported` where the kernel has no `clone3` or no `CLONE_INTO_CGROUP`.
pub fn fork_into_cgroup(cgroup: std::os::fd::BorrowedFd<'_>) -> io::Result<Fork> {
    use std::os::fd::AsRawFd;
    /// `struct clone_args` up to `cgroup` (CLONE_ARGS_SIZE_VER2, Linux 5.7).
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let threads = std::fs::read_dir("/proc/thread-self/..")?.count();
    if threads != 1 {
        return Err(io::Error::other(format!(
            "refusing to fork a process with {threads} threads"
        )));
    }
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: as for `fork` (one thread, checked above): clone3 without CLONE_VM and without a
    // new stack duplicates the process as fork(2) does, the child continuing on its copy of this
    // stack. `args` lives across the call and its size is passed with it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match r {
        -1 => {
            let e = io::Error::last_os_error();
            Err(match e.raw_os_error() {
                Some(libc::ENOSYS | libc::E2BIG) => io::Error::new(io::ErrorKind::Unsupported, e),
                _ => e,
            })
        }
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid as i32)),
    }
}

/// Installs a seccomp filter (a classic BPF program, as `seccomp_export_bpf` writes it: 8-byte
/// `sock_filter` instructions in native byte order) on the calling thread. Needs `CAP_SYS_ADMIN`
/// or `no_new_privs`.
pub fn seccomp_set_mode_filter(program: &[u8]) -> io::Result<()> {
    const INSN: usize = std::mem::size_of::<libc::sock_filter>();
    if program.is_empty() || !program.len().is_multiple_of(INSN) || program.len() / INSN > u16::MAX as usize {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a BPF program"));
    }
    // Copy into properly aligned instructions (the byte slice has no alignment guarantee).
    let insns: Vec<libc::sock_filter> = program
        .chunks_exact(INSN)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let prog = libc::sock_fprog {
        len: insns.len() as u16,
        filter: insns.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `insns`, which outlives the call; the kernel copies and verifies
    // the program (rejecting an invalid one with EINVAL) and keeps no pointer into our memory.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            1, /* SECCOMP_SET_MODE_FILTER */
            0u32,
            &prog as *const libc::sock_fprog,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// unshare(2) with raw `CLONE_*` flags (the caller must be single-threaded for `CLONE_NEWNS`
/// and friends to take effect as a process-wide change; `CLONE_NEWPID` applies to children).
pub fn unshare(flags: i32) -> io::Result<()> {
    // SAFETY: unshare(2) takes an integer and touches no memory of ours.
    let r = unsafe { libc::unshare(flags) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Marks every fd from `first` up close-on-exec (`close_range(first, ~0, CLOSE_RANGE_CLOEXEC)`),
/// so nothing but stdio reaches a container's process across `execve`.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC only sets a flag on our own fds; it closes
    // nothing and passes no memory.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            4u32, /* CLOSE_RANGE_CLOEXEC */
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// setns(2): joins the namespace behind `fd` (`nstype` a `CLONE_NEW*` flag, or 0 for any).
/// For a pid namespace, only children forked afterwards are in it.
pub fn setns(fd: std::os::fd::BorrowedFd<'_>, nstype: i32) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: setns(2) takes an fd we borrow for the call and an integer; no memory is passed.
    let r = unsafe { libc::setns(fd.as_raw_fd(), nstype) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
