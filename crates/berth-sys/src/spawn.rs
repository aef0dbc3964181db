//! A spawner: a small helper process that starts programs on behalf of a process holding many
//! file descriptors.
//!
//! A process started by the daemon copies its whole descriptor table at the fork and closes it at
//! the `execve` (close-on-exec): with a socket and a pidfd per running container, that is two
//! passes over thousands of descriptors on every container start, 0.8–0.9 ms at 1000 containers
//! on the reference machine (docs/design/performance.md, "The spawner"). The spawner is started
//! while the daemon holds few descriptors and keeps only its socket, so what it starts costs the
//! same whatever the number of containers.
//!
//! Protocol, over a `SOCK_SEQPACKET` pair, one message per start and no reply (the caller does
//! not wait for the spawner to wake up and `execve`: the program loads while the caller goes
//! on): the request is the program, its arguments and `KEY=VALUE` environment entries to add,
//! each NUL-terminated, the arguments ended by an empty field; its stdin and stdout travel as
//! `SCM_RIGHTS`. A start that fails is reported on the spawner's stderr, and the caller sees EOF
//! on the pipe it gave as stdout. The started process gets its own process group, `/dev/null`
//! as stderr, an empty signal mask and default signal dispositions (as `std::process` gives),
//! the spawner's environment plus the request's. The spawner reaps what it started (a
//! `signalfd` for `SIGCHLD`) and exits at EOF, when the daemon is gone; what it started lives on.

use std::ffi::OsStr;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage,
    SendFlags,
};

/// A request larger than this is refused (paths and a few arguments fit many times over).
const MAX_REQUEST: usize = 16 * 1024;

/// A request: what to run, with which stdin and stdout.
pub struct Request<'a> {
    pub program: &'a Path,
    pub args: &'a [&'a OsStr],
    pub env: &'a [(&'a str, &'a str)],
    pub stdin: BorrowedFd<'a>,
    pub stdout: BorrowedFd<'a>,
}

/// The daemon's end: a running spawner.
pub struct Client {
    sock: OwnedFd,
}

impl Client {
    /// Starts `program args…` as a spawner (it serves [`serve`] on its stdin), reaped by the
    /// caller through the returned child.
    pub fn start(program: &Path, args: &[&str]) -> io::Result<(Client, std::process::Child)> {
        let (ours, theirs) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::SEQPACKET,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()?;
        Ok((Client { sock: ours }, child))
    }

    /// Sends `req` to the spawner. An error means it has gone (`BrokenPipe`) or the request is
    /// unusable; whether the start itself succeeded shows on the request's stdout.
    pub fn spawn(&self, req: &Request<'_>) -> io::Result<()> {
        let mut msg = Vec::new();
        msg.extend_from_slice(req.program.as_os_str().as_bytes());
        msg.push(0);
        for a in req.args {
            msg.extend_from_slice(a.as_bytes());
            msg.push(0);
        }
        msg.push(0);
        for (k, v) in req.env {
            msg.extend_from_slice(format!("{k}={v}").as_bytes());
            msg.push(0);
        }
        if msg.len() > MAX_REQUEST {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "spawn request too long",
            ));
        }
        let fds = [req.stdin, req.stdout];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
        let mut anc = SendAncillaryBuffer::new(&mut space);
        anc.push(SendAncillaryMessage::ScmRights(&fds));
        rustix::net::sendmsg(
            &self.sock,
            &[io::IoSlice::new(&msg)],
            &mut anc,
            SendFlags::NOSIGNAL,
        )?;
        Ok(())
    }
}

/// The spawner's loop on `sock` (its stdin); returns at EOF. Call it single-threaded, from a
/// process that is only the spawner: it blocks `SIGCHLD` for its `signalfd`.
pub fn serve(sock: BorrowedFd<'_>) -> io::Result<()> {
    // Nothing the starter left open without close-on-exec (a readiness pipe) stays open here.
    if sock.as_raw_fd() <= 2 {
        // SAFETY: close_range takes integers; the descriptors above 2 are not owned by anything
        // in this process, which has run no code of its own yet but its start.
        unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    }
    let sigchld = ChildSignals::new()?;
    let mut buf = vec![0u8; MAX_REQUEST];
    loop {
        let mut fds = [
            rustix::event::PollFd::new(&sock, rustix::event::PollFlags::IN),
            rustix::event::PollFd::new(&sigchld.fd, rustix::event::PollFlags::IN),
        ];
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let (req_ready, child_ready) = (!fds[0].revents().is_empty(), !fds[1].revents().is_empty());
        if child_ready {
            sigchld.drain();
            reap();
        }
        if !req_ready {
            continue;
        }
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
        let mut anc = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        let got = match rustix::net::recvmsg(sock, &mut iov, &mut anc, RecvFlags::CMSG_CLOEXEC) {
            Ok(r) => r,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut passed: Vec<OwnedFd> = Vec::new();
        for m in anc.drain() {
            if let RecvAncillaryMessage::ScmRights(fds) = m {
                passed.extend(fds);
            }
        }
        if got.bytes == 0 && passed.is_empty() {
            return Ok(());
        }
        if let Err(e) = start(&buf[..got.bytes], passed) {
            let program = buf[..got.bytes].split(|b| *b == 0).next().unwrap_or_default();
            eprintln!(
                "berth spawner: cannot start {}: {e}",
                String::from_utf8_lossy(program)
            );
        }
        // No reaping here: each `wait` walks all of the spawner's children (every running
        // shim), so it waits for the `SIGCHLD` that says one exited (the signalfd above keeps
        // it until read). Reaping after every start cost ~0.6 ms a start at 3000 containers.
    }
}

/// Starts what one request names.
fn start(msg: &[u8], fds: Vec<OwnedFd>) -> io::Result<u32> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("bad spawn request: {what}"));
    let mut fds = fds.into_iter();
    let (Some(stdin), Some(stdout), None) = (fds.next(), fds.next(), fds.next()) else {
        return Err(bad("it must pass exactly stdin and stdout"));
    };
    let mut fields = msg
        .strip_suffix(&[0])
        .ok_or_else(|| bad("unterminated"))?
        .split(|b| *b == 0);
    let program = fields
        .next()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| bad("no program"))?;
    let mut cmd = Command::new(OsStr::from_bytes(program));
    for a in fields.by_ref() {
        if a.is_empty() {
            break;
        }
        cmd.arg(OsStr::from_bytes(a));
    }
    for e in fields {
        let (k, v) = std::str::from_utf8(e)
            .ok()
            .and_then(|s| s.split_once('='))
            .ok_or_else(|| bad("environment entry"))?;
        cmd.env(k, v);
    }
    let child = cmd
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    // Reaped by `reap` once it exits; a `Child` dropped neither kills nor waits.
    Ok(child.id())
}

/// Reaps every child that has exited (any child: each has a process group of its own, which
/// `waitpid(0)` would not look at).
fn reap() {
    loop {
        match rustix::process::wait(rustix::process::WaitOptions::NOHANG) {
            Ok(Some(_)) => continue,
            _ => return,
        }
    }
}

/// `SIGCHLD`, blocked and read from a `signalfd`. `std::process` gives what it starts an empty
/// signal mask, so the block does not reach them.
struct ChildSignals {
    fd: OwnedFd,
}

impl ChildSignals {
    fn new() -> io::Result<Self> {
        // SAFETY: `set` is a local sigset_t initialised by sigemptyset before any other use;
        // sigprocmask and signalfd only read it. The process is single-threaded (the spawner).
        unsafe {
            let mut set = MaybeUninit::<libc::sigset_t>::uninit();
            libc::sigemptyset(set.as_mut_ptr());
            libc::sigaddset(set.as_mut_ptr(), libc::SIGCHLD);
            if libc::sigprocmask(libc::SIG_BLOCK, set.as_ptr(), std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = libc::signalfd(-1, set.as_ptr(), libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(ChildSignals {
                fd: OwnedFd::from_raw_fd(fd),
            })
        }
    }

    fn drain(&self) {
        let mut b = [0u8; 128 * 8];
        while matches!(rustix::io::read(&self.fd, &mut b), Ok(n) if n > 0) {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// One request as the loop decodes it (the loop itself, with the socket, runs in
    /// `berth-shim --spawner`, tested in that crate).
    #[test]
    fn a_request_starts_the_program_with_its_args_env_and_stdio() {
        let (r, w) = rustix::pipe::pipe().unwrap();
        let (in_r, _in_w) = rustix::pipe::pipe().unwrap();
        let msg = b"/bin/sh\0-c\0echo \"$1 $BERTH_SPAWN_TEST\"\0sh\0hello\0\0BERTH_SPAWN_TEST=world\0";
        let pid = start(msg, vec![in_r, w]).unwrap();
        let mut out = String::new();
        std::fs::File::from(r).read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello world\n");
        let st = rustix::process::waitpid(
            Some(rustix::process::Pid::from_raw(pid as i32).unwrap()),
            rustix::process::WaitOptions::empty(),
        )
        .unwrap();
        assert!(st.is_some());
    }

    #[test]
    fn malformed_requests_are_refused() {
        let pipes = || {
            let (a, b) = rustix::pipe::pipe().unwrap();
            vec![a, b]
        };
        assert!(start(b"/bin/true\0\0", vec![]).is_err(), "no fds");
        assert!(start(b"/bin/true", pipes()).is_err(), "unterminated");
        assert!(start(b"\0\0", pipes()).is_err(), "no program");
        assert!(
            start(b"/bin/true\0\0NOEQUALS\0", pipes()).is_err(),
            "env without ="
        );
        assert!(
            start(b"/nonexistent/prog\0\0", pipes()).is_err(),
            "missing program"
        );
    }
}
