//! The shim's single-threaded poll loop: daemon connections, container output, container
//! stdin, and the init's pidfd.
//!
//! Back-pressure instead of unbounded buffers: while any attached connection has more than
//! [`OUT_HIGH`] bytes queued, the container's output is not read (the container blocks, as it
//! does under Docker with a slow attach); while the container's stdin has more than
//! [`IN_HIGH`] queued, stdin-carrying connections are not read. Exec processes (`exec.rs`) are
//! watched in the same loop, each with its own pidfd, stdio and connection.

mod exec;

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth_runtime::CgroupDirs;
use berth_shim_proto::{parse_header, ExitStatus, FrameKind, Request, Response, ShimConfig, MAX_FRAME};
use rustix::event::{PollFd, PollFlags};

use crate::create::{Created, Stdio};
use crate::log::ContainerLog;

const OUT_HIGH: usize = 256 * 1024;
const IN_HIGH: usize = 256 * 1024;
const CHUNK: usize = 16 * 1024;
/// How long output is drained after the init exits, and how long attach clients get to take
/// their last frames — counted from the last progress (output read or bytes sent to a client),
/// so a slow but reading client gets everything, and a stalled one holds the exit up by at most
/// this long.
const DRAIN: Duration = Duration::from_secs(2);
/// How long the poll loop waits idle before it lets its code pages go.
const QUIET: Duration = Duration::from_secs(1);

/// `__WALL`: the init is a "clone" child (libcontainer clones it with no exit signal), which
/// waitid only reports with this flag.
const WALL: u32 = 0x4000_0000;

struct Conn {
    stream: UnixStream,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    attached: bool,
    stdin: bool,
    /// Close once `outbuf` is flushed.
    closing: bool,
    /// The exec this connection streams (its `Exec` request came on it).
    exec: Option<u64>,
    dead: bool,
}

enum Status {
    Created,
    Running,
    /// Running, with every task frozen by the cgroup freezer.
    Paused,
    Exited(ExitStatus),
}

struct Shim {
    cfg: ShimConfig,
    bundle: PathBuf,
    pid: i32,
    pidfd: Option<OwnedFd>,
    listener: UnixListener,
    /// stdout pipe or pty master.
    out: Option<OwnedFd>,
    err: Option<OwnedFd>,
    /// Where stdin goes: the stdin pipe or (tty) the pty master.
    stdin: Option<OwnedFd>,
    pty: bool,
    stdin_buf: Vec<u8>,
    stdin_eof: bool,
    conns: Vec<Conn>,
    log: ContainerLog,
    status: Status,
    /// The container's cgroup directories (`None` if the spec named no cgroup below the root).
    cgroup: Option<CgroupDirs>,
    /// The fast path's start pipe, until `Start` (see `crate::fast`).
    start: Option<OwnedFd>,
    /// Exit code collected from the init, recorded once output is drained.
    pending_exit: Option<i32>,
    /// Set once the exit has been recorded; the loop ends when clients have their last frames.
    finish_by: Option<Instant>,
    /// The container (cgroup, rootfs mount, socket) has been released.
    released: bool,
    execs: Vec<exec::Exec>,
    next_exec: u64,
    /// Children the shim did not start (an exec's runtime helpers), reaped when they exit.
    strays: Vec<(i32, OwnedFd)>,
    /// What the first exec learned of the container's seccomp filter (crate::exec).
    seccomp_seen: Option<crate::exec::SeccompSeen>,
    /// Last time container output was read or bytes were sent to a client (extends [`DRAIN`]).
    last_progress: Instant,
}

#[derive(Clone, Copy)]
enum Token {
    Listener,
    Pidfd,
    Out,
    Err,
    Stdin,
    Conn(usize),
    ExecPidfd(usize),
    ExecOut(usize),
    ExecErr(usize),
    ExecStdin(usize),
    Stray,
}

pub fn serve(cfg: ShimConfig, bundle: PathBuf, c: Created) {
    let (out, err, stdin, pty) = match c.stdio {
        Stdio::Pipes {
            stdin,
            stdout,
            stderr,
        } => (Some(stdout), Some(stderr), stdin, false),
        Stdio::Pty(m) => {
            let dup = rustix::io::fcntl_dupfd_cloexec(&m, 3).ok();
            (Some(m), None, if cfg.open_stdin { dup } else { None }, true)
        }
    };
    let log = ContainerLog::open(&cfg.log_path, &cfg.log);
    berth_sys::times::mark("log-opened");
    let mut shim = Shim {
        cfg,
        bundle,
        pid: c.pid,
        pidfd: Some(c.pidfd),
        listener: c.listener,
        out,
        err,
        stdin,
        pty,
        stdin_buf: Vec::new(),
        stdin_eof: false,
        conns: Vec::new(),
        log,
        status: Status::Created,
        cgroup: CgroupDirs::new(&c.cgroup_path).ok(),
        start: c.start,
        pending_exit: None,
        finish_by: None,
        released: false,
        execs: Vec::new(),
        next_exec: 0,
        strays: Vec::new(),
        seccomp_seen: None,
        last_progress: Instant::now(),
    };
    shim.run();
    shim.teardown();
}

impl Shim {
    fn exited(&self) -> bool {
        matches!(self.status, Status::Exited(_))
    }

    fn run(&mut self) {
        let mut buf = vec![0u8; CHUNK];
        let mut reaped_at: Option<Instant> = None;
        // Whether the code pages mapped since the last quiet second were let go (see below).
        let mut code_released = false;
        loop {
            let exit_deadline = reaped_at;
            // After the init exited: once output is drained (or the drain deadline passed),
            // record the exit and tell the attached clients; then wait for them to take it.
            let progress_by = self.last_progress + DRAIN;
            let exit_deadline = exit_deadline.map(|d| d.max(progress_by));
            let finish_by = self.finish_by.map(|d| d.max(progress_by));
            if self.pidfd.is_none() && !self.exited() {
                let drained = self.out.is_none() && self.err.is_none();
                if drained || exit_deadline.is_some_and(|d| Instant::now() >= d) {
                    self.record_exit();
                    // Once the exit is recorded, the shim waits only for its clients to take it
                    // (`finish_by`, computed from here on): without this turn it polled for the
                    // rest of the drain deadline, ~2 s, before it saw there was nothing to wait for.
                    continue;
                }
            }
            self.finish_execs();
            self.conns
                .retain(|c| !(c.dead || c.closing && c.outbuf.is_empty()));
            if let Some(by) = finish_by {
                let flushed =
                    self.execs.is_empty() && self.conns.iter().all(|c| c.outbuf.is_empty() || c.dead);
                if flushed || Instant::now() >= by {
                    return;
                }
            }
            let backpressure = self.conns.iter().any(|c| c.attached && c.outbuf.len() > OUT_HIGH);
            let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(6 + self.conns.len());
            let mut toks: Vec<Token> = Vec::with_capacity(6 + self.conns.len());
            // `fds` borrows the shim's fds only until `poll` returns; events are copied out.
            let (listener, pidfd, out, err, stdin) =
                (&self.listener, &self.pidfd, &self.out, &self.err, &self.stdin);
            add(
                &mut fds,
                &mut toks,
                listener.as_fd(),
                PollFlags::IN,
                Token::Listener,
            );
            if let Some(p) = pidfd {
                add(&mut fds, &mut toks, p.as_fd(), PollFlags::IN, Token::Pidfd);
            }
            if !backpressure {
                if let Some(o) = out {
                    add(&mut fds, &mut toks, o.as_fd(), PollFlags::IN, Token::Out);
                }
                if let Some(e) = err {
                    add(&mut fds, &mut toks, e.as_fd(), PollFlags::IN, Token::Err);
                }
            }
            if let Some(s) = stdin {
                if !self.stdin_buf.is_empty() {
                    add(&mut fds, &mut toks, s.as_fd(), PollFlags::OUT, Token::Stdin);
                }
            }
            let exec_bp: Vec<bool> = (0..self.execs.len()).map(|j| self.exec_backpressure(j)).collect();
            for (j, e) in self.execs.iter().enumerate() {
                if let Some(p) = &e.pidfd {
                    add(&mut fds, &mut toks, p.as_fd(), PollFlags::IN, Token::ExecPidfd(j));
                }
                if !exec_bp[j] {
                    if let Some(o) = &e.out {
                        add(&mut fds, &mut toks, o.as_fd(), PollFlags::IN, Token::ExecOut(j));
                    }
                    if let Some(o) = &e.err {
                        add(&mut fds, &mut toks, o.as_fd(), PollFlags::IN, Token::ExecErr(j));
                    }
                }
                if let (Some(s), false) = (&e.stdin, e.stdin_buf.is_empty()) {
                    add(
                        &mut fds,
                        &mut toks,
                        s.as_fd(),
                        PollFlags::OUT,
                        Token::ExecStdin(j),
                    );
                }
            }
            for (_, fd) in &self.strays {
                add(&mut fds, &mut toks, fd.as_fd(), PollFlags::IN, Token::Stray);
            }
            let stdin_full = self.stdin_buf.len() > IN_HIGH;
            let exec_stdin_full = |key: u64| {
                self.execs
                    .iter()
                    .any(|e| e.key == key && e.stdin_buf.len() > IN_HIGH)
            };
            for (i, c) in self.conns.iter().enumerate() {
                let mut ev = PollFlags::empty();
                let full = match c.exec {
                    Some(key) => exec_stdin_full(key),
                    None => stdin_full,
                };
                if !(c.closing || full && c.stdin) {
                    ev |= PollFlags::IN;
                }
                if !c.outbuf.is_empty() {
                    ev |= PollFlags::OUT;
                }
                add(&mut fds, &mut toks, c.stream.as_fd(), ev, Token::Conn(i));
            }
            // A compression under way runs a step per turn of the loop.
            let busy = self.log.busy().then(Instant::now);
            let deadline = [exit_deadline, finish_by, self.exec_deadline(), busy]
                .into_iter()
                .flatten()
                .min();
            // A shim spends its life waiting. After a quiet second it unmaps the code its start
            // and its last requests ran (berth_sys::heap::release_code_pages): the page cache
            // keeps those pages, and the page tables that mapped them (~30 kB a shim) are freed.
            // It also hands back the heap pages its start used and freed (~12 kB), the pages of its
            // read buffer and idle connections' and the log's emptied buffers.
            let quiet_by = (deadline.is_none() && !code_released).then(|| Instant::now() + QUIET);
            let timeout = deadline.or(quiet_by).map(|d| {
                let left = d.saturating_duration_since(Instant::now());
                rustix::fs::Timespec {
                    tv_sec: left.as_secs() as i64,
                    tv_nsec: left.subsec_nanos() as i64,
                }
            });
            match rustix::event::poll(&mut fds, timeout.as_ref()) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    eprintln!("berth-shim: poll: {e}");
                    return;
                }
            }
            let ready: Vec<(Token, PollFlags)> = fds
                .iter()
                .zip(toks.iter())
                .filter(|(f, _)| !f.revents().is_empty())
                .map(|(f, t)| (*t, f.revents()))
                .collect();
            drop(fds);
            if !ready.is_empty() {
                code_released = false;
            } else if quiet_by.is_some_and(|q| Instant::now() >= q) {
                berth_sys::heap::release_code_pages();
                berth_sys::heap::discard(&mut buf);
                for c in &mut self.conns {
                    if c.inbuf.is_empty() {
                        c.inbuf = Vec::new();
                    }
                    if c.outbuf.is_empty() {
                        c.outbuf = Vec::new();
                    }
                }
                self.log.release_buffer();
                berth_sys::heap::release_free_memory();
                code_released = true;
            }
            if self.log.busy() {
                self.log.step();
            }
            for (tok, rev) in ready {
                match tok {
                    Token::Listener => self.accept(),
                    Token::Pidfd => {
                        self.reap();
                        reaped_at = Some(Instant::now() + DRAIN);
                    }
                    Token::Out => self.read_output(false, &mut buf),
                    Token::Err => self.read_output(true, &mut buf),
                    Token::Stdin => self.flush_stdin(),
                    Token::ExecPidfd(j) => self.reap_exec(j),
                    Token::ExecOut(j) => self.exec_output(j, false, &mut buf),
                    Token::ExecErr(j) => self.exec_output(j, true, &mut buf),
                    Token::ExecStdin(j) => self.flush_exec_stdin(j),
                    Token::Stray => self.reap_strays(),
                    Token::Conn(i) => {
                        if rev.intersects(PollFlags::OUT) {
                            self.flush_conn(i);
                        }
                        if rev.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) {
                            self.read_conn(i, &mut buf);
                        }
                    }
                }
            }
            self.conns
                .retain(|c| !(c.dead || c.closing && c.outbuf.is_empty()));
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    // Only our daemon's uid; anyone else's connection is dropped (closed) here.
                    if !crate::peer::is_own_uid(&stream) || stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    self.conns.push(Conn {
                        stream,
                        inbuf: Vec::new(),
                        outbuf: Vec::new(),
                        attached: false,
                        stdin: false,
                        closing: false,
                        dead: false,
                        exec: None,
                    });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("berth-shim: accept: {e}");
                    return;
                }
            }
        }
    }

    /// The init exited: collect its status. The exit is recorded once output is drained.
    fn reap(&mut self) {
        berth_sys::times::mark("reap");
        let Some(pidfd) = self.pidfd.take() else { return };
        let Some(code) = reap_status(&pidfd) else {
            // Spurious wakeup: keep watching.
            self.pidfd = Some(pidfd);
            return;
        };
        self.pending_exit = Some(code);
        // Processes exec'd into the container do not outlive it.
        self.kill_execs();
    }

    fn record_exit(&mut self) {
        self.log.flush();
        let st = ExitStatus {
            exit_code: self.pending_exit.unwrap_or(128),
            finished_at: crate::log::now_rfc3339(),
            oom_killed: self.oom_killed(),
            error: None,
        };
        crate::write_exit_file(&self.cfg.exit_file, &st, !self.cfg.volatile);
        berth_sys::times::mark("exit-file");
        // Release the container before anyone hears of the exit: whoever acts on it (a policy
        // restart, `start`, `rm`) must find the cgroup, the rootfs mount and the socket path free,
        // not racing this shim's teardown.
        self.release_container();
        berth_sys::times::mark("released");
        let body = serde_json::to_vec(&st).unwrap_or_default();
        for c in self.conns.iter_mut().filter(|c| c.attached) {
            queue_frame(c, FrameKind::Exit, &body);
            c.closing = true;
        }
        for c in 0..self.conns.len() {
            self.flush_conn(c);
        }
        self.status = Status::Exited(st);
        // Stop accepting stdin; the process is gone.
        self.stdin = None;
        self.out = None;
        self.err = None;
        self.finish_by = Some(Instant::now() + DRAIN);
    }

    /// The memory cgroup's OOM-kill counter (v1 `memory.oom_control`, v2 `memory.events`).
    fn oom_killed(&self) -> bool {
        let Some(cg) = &self.cgroup else {
            return false;
        };
        for f in [
            cg.v1("memory").join("memory.oom_control"),
            cg.v2().join("memory.events"),
        ] {
            if let Ok(s) = std::fs::read_to_string(&f) {
                return s
                    .lines()
                    .any(|l| l.strip_prefix("oom_kill ").is_some_and(|n| n.trim() != "0"));
            }
        }
        false
    }

    fn read_output(&mut self, stderr: bool, buf: &mut [u8]) {
        let fd = if stderr { &self.err } else { &self.out };
        let Some(fd) = fd else { return };
        let n = match rustix::io::read(fd, &mut *buf) {
            Ok(0) => None,
            Ok(n) => Some(n),
            Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => return,
            // EIO on a pty master: every slave is closed.
            Err(_) => None,
        };
        let Some(n) = n else {
            if stderr {
                self.err = None;
            } else {
                self.out = None;
                if self.pty {
                    self.stdin = None;
                }
            }
            return;
        };
        self.last_progress = Instant::now();
        let data = &buf[..n];
        self.log.write(stderr, data);
        let kind = if stderr {
            FrameKind::Stderr
        } else {
            FrameKind::Stdout
        };
        for i in 0..self.conns.len() {
            if self.conns[i].attached && !self.conns[i].closing {
                queue_frame(&mut self.conns[i], kind, data);
                self.flush_conn(i);
            }
        }
    }

    fn flush_stdin(&mut self) {
        let Some(fd) = &self.stdin else {
            self.stdin_buf.clear();
            return;
        };
        match rustix::io::write(fd, &self.stdin_buf) {
            Ok(n) => {
                self.stdin_buf.drain(..n);
            }
            Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => {
                // The reader is gone (EPIPE): nobody will read stdin again.
                self.stdin = None;
                self.stdin_buf = Vec::new();
            }
        }
        if self.stdin_buf.is_empty() {
            self.stdin_buf = Vec::new();
            if self.stdin_eof && !self.pty {
                self.stdin = None;
            }
        }
    }

    fn flush_conn(&mut self, i: usize) {
        let c = &mut self.conns[i];
        while !c.outbuf.is_empty() && !c.dead {
            match c.stream.write(&c.outbuf) {
                Ok(0) => c.dead = true,
                Ok(n) => {
                    c.outbuf.drain(..n);
                    self.last_progress = Instant::now();
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // EPIPE / ECONNRESET: that client went away.
                Err(_) => c.dead = true,
            }
        }
        if c.outbuf.is_empty() && c.outbuf.capacity() > CHUNK {
            c.outbuf = Vec::new();
        }
    }

    fn read_conn(&mut self, i: usize, buf: &mut [u8]) {
        match self.conns[i].stream.read(buf) {
            Ok(0) => {
                let c = &mut self.conns[i];
                c.dead = true;
                return;
            }
            Ok(n) => self.conns[i].inbuf.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => return,
            Err(_) => {
                self.conns[i].dead = true;
                return;
            }
        }
        // Handle every complete frame.
        loop {
            let c = &mut self.conns[i];
            if c.inbuf.len() < 5 {
                break;
            }
            let h = [c.inbuf[0], c.inbuf[1], c.inbuf[2], c.inbuf[3], c.inbuf[4]];
            let (kind, len) = match parse_header(h) {
                Ok(x) => x,
                Err(e) => {
                    eprintln!("berth-shim: bad frame from client: {e}");
                    c.dead = true;
                    return;
                }
            };
            debug_assert!(len <= MAX_FRAME);
            if c.inbuf.len() < 5 + len {
                break;
            }
            let payload: Vec<u8> = c.inbuf[5..5 + len].to_vec();
            c.inbuf.drain(..5 + len);
            if c.inbuf.is_empty() && c.inbuf.capacity() > CHUNK {
                c.inbuf = Vec::new();
            }
            match kind {
                FrameKind::Request => self.handle_request(i, &payload),
                FrameKind::Stdin => self.handle_stdin(i, payload),
                _ => {
                    eprintln!("berth-shim: unexpected {kind:?} frame from client");
                    self.conns[i].dead = true;
                    return;
                }
            }
        }
        self.flush_conn(i);
    }

    fn handle_stdin(&mut self, i: usize, payload: Vec<u8>) {
        if !self.conns[i].stdin {
            return;
        }
        if let Some(key) = self.conns[i].exec {
            if payload.is_empty() {
                self.conns[i].stdin = false;
            }
            self.exec_stdin_frame(key, payload);
            return;
        }
        if payload.is_empty() {
            // EOF from this writer. A pty has no half-close: EOF there changes nothing, and the
            // connection (the daemon's, shared by every attached client) keeps its stdin.
            if self.pty {
                return;
            }
            self.conns[i].stdin = false;
            if self.cfg.stdin_once {
                self.stdin_eof = true;
                if self.stdin_buf.is_empty() && !self.pty {
                    self.stdin = None;
                }
            }
            return;
        }
        if self.stdin.is_some() {
            self.stdin_buf.extend_from_slice(&payload);
            self.flush_stdin();
        }
    }

    fn handle_request(&mut self, i: usize, body: &[u8]) {
        let resp = match serde_json::from_slice::<Request>(body) {
            Err(e) => Response {
                error: Some(format!("invalid request: {e}")),
                ..Default::default()
            },
            Ok(req) => self.request(i, req),
        };
        let body = serde_json::to_vec(&resp).unwrap_or_default();
        let attached_after_exit = self.conns[i].attached && self.exited();
        queue_frame(&mut self.conns[i], FrameKind::Response, &body);
        if attached_after_exit {
            // Attached after the fact: hand over the exit status at once.
            if let Status::Exited(st) = &self.status {
                let b = serde_json::to_vec(st).unwrap_or_default();
                queue_frame(&mut self.conns[i], FrameKind::Exit, &b);
            }
            self.conns[i].closing = true;
        }
    }

    fn request(&mut self, i: usize, req: Request) -> Response {
        let err = |m: &str| Response {
            error: Some(m.to_string()),
            ..Default::default()
        };
        match req {
            Request::Attach { stdin } => {
                let c = &mut self.conns[i];
                c.attached = true;
                c.stdin = stdin && self.cfg.open_stdin;
                Response::default()
            }
            Request::Start => match self.status {
                Status::Created => match match self.start.take().inspect(|_| berth_sys::times::mark("start"))
                {
                    Some(fd) => crate::fast::start(fd),
                    None => crate::runtime::start(&self.cfg, &self.bundle),
                } {
                    Ok(()) => {
                        self.status = Status::Running;
                        Response {
                            pid: Some(self.pid),
                            ..Default::default()
                        }
                    }
                    Err(e) => err(&format!("failed to start container: {e}")),
                },
                Status::Running | Status::Paused => err("container is already running"),
                Status::Exited(_) => err("container has exited"),
            },
            Request::Kill { signal, all } => {
                if self.exited() || self.pidfd.is_none() {
                    return err("container is not running");
                }
                let res = if all {
                    self.kill_all(signal)
                } else {
                    self.kill_init(signal)
                };
                // A frozen task gets SIGKILL only once thawed (runc thaws after it, too).
                if res.is_ok() && signal == libc::SIGKILL && matches!(self.status, Status::Paused) {
                    match crate::freeze::set_frozen(self.cgroup.as_ref(), false) {
                        Ok(()) => self.status = Status::Running,
                        Err(e) => eprintln!("berth-shim: thaw after SIGKILL: {e}"),
                    }
                }
                match res {
                    Ok(()) => Response::default(),
                    Err(e) => err(&format!("failed to send signal {signal}: {e}")),
                }
            }
            Request::Resize { height, width } => {
                let master = if self.pty { self.out.as_ref() } else { None };
                let Some(m) = master else {
                    return err("container has no tty");
                };
                let ws = rustix::termios::Winsize {
                    ws_row: height,
                    ws_col: width,
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                match rustix::termios::tcsetwinsize(m, ws) {
                    Ok(()) => Response::default(),
                    Err(e) => err(&format!("resize: {e}")),
                }
            }
            Request::State => {
                let (status, exit) = match &self.status {
                    Status::Created => ("created", None),
                    Status::Running => ("running", None),
                    Status::Paused => ("paused", None),
                    Status::Exited(st) => ("exited", Some(st.clone())),
                };
                Response {
                    pid: Some(self.pid),
                    status: Some(status.into()),
                    exit,
                    ..Default::default()
                }
            }
            Request::Exec { process } => self.start_exec(i, process),
            Request::ResizeExec {
                exec_id,
                height,
                width,
            } => self.resize_exec(&exec_id, height, width),
            Request::Pause => match self.status {
                Status::Running if self.pidfd.is_some() => {
                    match crate::freeze::set_frozen(self.cgroup.as_ref(), true) {
                        Ok(()) => {
                            self.status = Status::Paused;
                            Response::default()
                        }
                        Err(e) => err(&format!("failed to pause container: {e}")),
                    }
                }
                Status::Paused => err("container is already paused"),
                _ => err("container is not running"),
            },
            Request::Resume => match self.status {
                Status::Paused => match crate::freeze::set_frozen(self.cgroup.as_ref(), false) {
                    Ok(()) => {
                        self.status = Status::Running;
                        Response::default()
                    }
                    Err(e) => err(&format!("failed to resume container: {e}")),
                },
                _ => err("container is not paused"),
            },
        }
    }

    fn kill_init(&self, signal: i32) -> std::io::Result<()> {
        // Through the pidfd: no risk of signalling a recycled pid.
        match &self.pidfd {
            Some(fd) => {
                let r = berth_sys::process::pidfd_send_signal(fd.as_fd(), signal);
                if r.is_err() {
                    berth_sys::process::kill(self.pid, signal)
                } else {
                    r
                }
            }
            None => Err(std::io::Error::from_raw_os_error(libc::ESRCH)),
        }
    }

    /// Every process of the container, from its cgroup (init first).
    fn kill_all(&self, signal: i32) -> std::io::Result<()> {
        self.kill_init(signal)?;
        let Some(cg) = &self.cgroup else {
            return Ok(());
        };
        let v1 = ["pids", "memory", "freezer", "cpu", "devices"].map(|c| cg.v1(c));
        for dir in v1.into_iter().chain([cg.v2()]) {
            if let Ok(s) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                for pid in s.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    if pid != self.pid {
                        let _ = berth_sys::process::kill(pid, signal);
                    }
                }
                break;
            }
        }
        Ok(())
    }

    /// After the loop: delete the container (cgroup), unmount the rootfs, remove the socket.
    fn teardown(&mut self) {
        // Requests that arrived as the loop ended get their answer ("container is not running"),
        // not a reset connection.
        self.accept();
        let mut buf = vec![0u8; CHUNK];
        for i in 0..self.conns.len() {
            if !self.conns[i].dead {
                self.read_conn(i, &mut buf);
                self.flush_conn(i);
            }
        }
        for c in self.conns.drain(..) {
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
        }
        self.release_container();
    }

    /// Removes the cgroup and runtime state, unmounts the rootfs and unlinks the socket (new
    /// connections are refused; open ones keep working). Runs once.
    fn release_container(&mut self) {
        if self.released {
            return;
        }
        self.released = true;
        crate::runtime::release(&self.cfg, &self.bundle, self.cgroup.as_ref());
        berth_sys::times::mark("cgroup-released");
        crate::create::cleanup_rootfs(&self.bundle);
        berth_sys::times::mark("unmounted");
        let _ = std::fs::remove_file(&self.cfg.socket);
        let _ = std::fs::remove_dir(self.bundle.join("runtime"));
    }
}

/// Reaps the process behind a readable pidfd: its exit code (status, or 128 + signal), or `None`
/// when it has not exited after all (a spurious wakeup).
pub(super) fn reap_status(pidfd: &OwnedFd) -> Option<i32> {
    let opts = rustix::process::WaitIdOptions::from_bits_retain(
        rustix::process::WaitIdOptions::EXITED.bits() | rustix::process::WaitIdOptions::NOHANG.bits() | WALL,
    );
    match rustix::process::waitid(rustix::process::WaitId::PidFd(pidfd.as_fd()), opts) {
        Ok(Some(st)) => Some(match (st.exit_status(), st.terminating_signal()) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            _ => 128,
        }),
        Ok(None) => None,
        Err(e) => {
            eprintln!("berth-shim: waitid: {e}");
            Some(128)
        }
    }
}

fn add<'a>(fds: &mut Vec<PollFd<'a>>, toks: &mut Vec<Token>, fd: BorrowedFd<'a>, ev: PollFlags, t: Token) {
    fds.push(PollFd::from_borrowed_fd(fd, ev));
    toks.push(t);
}

fn queue_frame(c: &mut Conn, kind: FrameKind, payload: &[u8]) {
    if c.dead {
        return;
    }
    c.outbuf
        .extend_from_slice(&berth_shim_proto::header(kind, payload.len()));
    c.outbuf.extend_from_slice(payload);
}
