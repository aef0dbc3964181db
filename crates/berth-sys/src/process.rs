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
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), sig, std::ptr::null::<libc::siginfo_t>(), 0u32)
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
        return Err(io::Error::other(format!("refusing to fork a process with {threads} threads")));
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
