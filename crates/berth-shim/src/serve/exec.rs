//! Exec processes in the poll loop: each has its own pidfd, its own stdio (pipes or a pty
//! master) and at most one connection, the one its `Exec` request came on. Its output goes only
//! to that connection (never to the container's log); when the connection drops, the process
//! keeps running and its output is read and discarded. On exit its output is drained (up to
//! [`DRAIN`]), then the connection gets one `Exit` frame and is closed.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use berth_shim_proto::{ExecProcess, ExitStatus, FrameKind, Response};

use super::{queue_frame, Shim, Status, DRAIN};
use crate::create::Stdio;

pub(super) struct Exec {
    /// The shim's key for it (connections refer to it by this).
    pub key: u64,
    pub id: String,
    pub pid: i32,
    pub pidfd: Option<OwnedFd>,
    pub out: Option<OwnedFd>,
    pub err: Option<OwnedFd>,
    /// The stdin pipe or (tty with `stdin`) a dup of the pty master.
    pub stdin: Option<OwnedFd>,
    pub pty: Option<OwnedFd>,
    pub stdin_buf: Vec<u8>,
    pub stdin_eof: bool,
    /// Set once reaped.
    pub exit_code: Option<i32>,
    pub drain_until: Option<Instant>,
    /// Exit frame sent; removed at the end of the loop iteration.
    pub done: bool,
}

impl Shim {
    pub(super) fn start_exec(&mut self, i: usize, p: ExecProcess) -> Response {
        let err = |m: String| Response {
            error: Some(m),
            ..Default::default()
        };
        match self.status {
            Status::Running => {}
            Status::Paused => return err("cannot exec in a paused container".into()),
            Status::Created | Status::Exited(_) => return err("container is not running".into()),
        }
        if self.pidfd.is_none() {
            return err("container is not running".into());
        }
        berth_sys::times::mark("shim-exec");
        let started = crate::exec::spawn(&self.cfg, &self.bundle, self.pid, &p, self.seccomp_seen.as_ref());
        berth_sys::times::mark("shim-exec-started");
        let exec_pid = started.as_ref().map(|s| s.pid).unwrap_or(0);
        self.watch_strays(exec_pid);
        let started = match started {
            Ok(s) => s,
            Err(f) => {
                self.conns[i].closing = true;
                return Response {
                    error: Some(f.message),
                    exit_code: f.exit_code,
                    ..Default::default()
                };
            }
        };
        if started.seccomp.is_some() {
            self.seccomp_seen = started.seccomp;
        }
        self.next_exec += 1;
        let key = self.next_exec;
        let (out, errfd, stdin, pty) = match started.stdio {
            Stdio::Pipes {
                stdin,
                stdout,
                stderr,
            } => (Some(stdout), Some(stderr), stdin, None),
            Stdio::Pty(m) => {
                let dup = rustix::io::fcntl_dupfd_cloexec(&m, 3).ok();
                let stdin = if p.stdin {
                    rustix::io::fcntl_dupfd_cloexec(&m, 3).ok()
                } else {
                    None
                };
                (Some(m), None, stdin, dup)
            }
        };
        self.execs.push(Exec {
            key,
            id: p.exec_id,
            pid: started.pid,
            pidfd: Some(started.pidfd),
            out,
            err: errfd,
            stdin,
            pty,
            stdin_buf: Vec::new(),
            stdin_eof: false,
            exit_code: None,
            drain_until: None,
            done: false,
        });
        let c = &mut self.conns[i];
        c.exec = Some(key);
        c.stdin = p.stdin;
        Response {
            pid: Some(started.pid),
            ..Default::default()
        }
    }

    /// Watches the children the shim did not start itself: the runtime's helper processes of an
    /// exec (its intermediate process, or a failed exec's init) are re-parented to the shim, a
    /// child subreaper, when the spawner exits. Each is reaped through its pidfd when it exits;
    /// left a zombie in the container's pid namespace, it would hold the container's init in
    /// its exit forever (`zap_pid_ns_processes` waits for every task of the namespace), so the
    /// container never stopped and `wait` hung (seen with 20 concurrent clients: an exec racing
    /// the container's exit).
    pub(super) fn watch_strays(&mut self, exec_pid: i32) {
        let me = std::process::id();
        // The shim is single-threaded: its children are its main thread's.
        let Ok(list) = std::fs::read_to_string(format!("/proc/{me}/task/{me}/children")) else {
            return;
        };
        for pid in list.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
            let known = pid == self.pid
                || pid == exec_pid
                || self.execs.iter().any(|e| e.pid == pid)
                || self.strays.iter().any(|(p, _)| *p == pid);
            if known {
                continue;
            }
            let Some(p) = rustix::process::Pid::from_raw(pid) else {
                continue;
            };
            if let Ok(fd) = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) {
                self.strays.push((pid, fd));
            }
        }
    }

    /// Reaps the watched strays that have exited.
    pub(super) fn reap_strays(&mut self) {
        self.strays.retain(|(_, fd)| super::reap_status(fd).is_none());
    }

    pub(super) fn resize_exec(&mut self, id: &str, height: u16, width: u16) -> Response {
        let err = |m: String| Response {
            error: Some(m),
            ..Default::default()
        };
        let Some(e) = self.execs.iter().find(|e| e.id == id && !e.done) else {
            return err(format!("no such exec: {id}"));
        };
        let Some(m) = &e.pty else {
            return err("exec has no tty".into());
        };
        let ws = rustix::termios::Winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        match rustix::termios::tcsetwinsize(m, ws) {
            Ok(()) => Response::default(),
            Err(e) => err(format!("resize: {e}")),
        }
    }

    /// The connection streaming exec `key`, if it is still there.
    fn exec_conn(&self, key: u64) -> Option<usize> {
        self.conns
            .iter()
            .position(|c| c.exec == Some(key) && !c.dead && !c.closing)
    }

    /// Whether exec `j`'s output must wait for its client to catch up.
    pub(super) fn exec_backpressure(&self, j: usize) -> bool {
        self.exec_conn(self.execs[j].key)
            .is_some_and(|i| self.conns[i].outbuf.len() > super::OUT_HIGH)
    }

    pub(super) fn exec_output(&mut self, j: usize, stderr: bool, buf: &mut [u8]) {
        let e = &mut self.execs[j];
        let fd = if stderr { &e.err } else { &e.out };
        let Some(fd) = fd else { return };
        let n = match rustix::io::read(fd, &mut *buf) {
            Ok(0) => 0,
            Ok(n) => n,
            Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => return,
            // EIO on a pty master: every slave is closed.
            Err(_) => 0,
        };
        if n == 0 {
            if stderr {
                e.err = None;
            } else {
                e.out = None;
                if e.pty.is_some() {
                    e.stdin = None;
                }
            }
            return;
        }
        let key = e.key;
        if let Some(i) = self.exec_conn(key) {
            queue_frame(
                &mut self.conns[i],
                if stderr {
                    FrameKind::Stderr
                } else {
                    FrameKind::Stdout
                },
                &buf[..n],
            );
            self.flush_conn(i);
        }
    }

    pub(super) fn exec_stdin_frame(&mut self, key: u64, payload: Vec<u8>) {
        let Some(e) = self.execs.iter_mut().find(|e| e.key == key) else {
            return;
        };
        if payload.is_empty() {
            e.stdin_eof = true;
            // With a tty, closing the master would hang up the terminal: EOF is ignored.
            if e.stdin_buf.is_empty() && e.pty.is_none() {
                e.stdin = None;
            }
        } else if e.stdin.is_some() {
            e.stdin_buf.extend_from_slice(&payload);
        }
    }

    pub(super) fn flush_exec_stdin(&mut self, j: usize) {
        let e = &mut self.execs[j];
        let Some(fd) = &e.stdin else {
            e.stdin_buf = Vec::new();
            return;
        };
        match rustix::io::write(fd, &e.stdin_buf) {
            Ok(n) => {
                e.stdin_buf.drain(..n);
            }
            Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => {
                e.stdin = None;
                e.stdin_buf = Vec::new();
            }
        }
        if e.stdin_buf.is_empty() {
            e.stdin_buf = Vec::new();
            if e.stdin_eof && e.pty.is_none() {
                e.stdin = None;
            }
        }
    }

    /// Exec `j`'s pidfd is readable: collect its status; the Exit frame follows once its output
    /// is drained.
    pub(super) fn reap_exec(&mut self, j: usize) {
        let e = &mut self.execs[j];
        let Some(pidfd) = e.pidfd.take() else { return };
        let Some(code) = super::reap_status(&pidfd) else {
            e.pidfd = Some(pidfd);
            return;
        };
        berth_sys::times::mark("shim-exec-reaped");
        e.exit_code = Some(code);
        e.drain_until = Some(Instant::now() + DRAIN);
        e.stdin = None;
        e.stdin_buf = Vec::new();
    }

    /// Sends the Exit frame of every exec that exited and whose output is drained.
    pub(super) fn finish_execs(&mut self) {
        let now = Instant::now();
        for j in 0..self.execs.len() {
            let e = &self.execs[j];
            let Some(code) = e.exit_code else { continue };
            if e.done || !(e.out.is_none() && e.err.is_none() || e.drain_until.is_some_and(|d| now >= d)) {
                continue;
            }
            let st = ExitStatus {
                exit_code: code,
                finished_at: crate::log::now_rfc3339(),
                oom_killed: false,
                error: None,
            };
            let body = serde_json::to_vec(&st).unwrap_or_default();
            if let Some(i) = self.exec_conn(e.key) {
                queue_frame(&mut self.conns[i], FrameKind::Exit, &body);
                self.conns[i].closing = true;
                self.flush_conn(i);
            }
            let e = &mut self.execs[j];
            e.done = true;
            e.out = None;
            e.err = None;
            e.pty = None;
        }
        self.execs.retain(|e| !e.done);
    }

    /// The init exited: every exec still running is killed (their exits are reported as usual).
    pub(super) fn kill_execs(&self) {
        for e in &self.execs {
            if let Some(fd) = &e.pidfd {
                let _ = berth_sys::process::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
            }
        }
    }

    /// The earliest drain deadline among exited execs.
    pub(super) fn exec_deadline(&self) -> Option<Instant> {
        self.execs
            .iter()
            .filter(|e| !e.done)
            .filter_map(|e| e.drain_until)
            .min()
    }
}
