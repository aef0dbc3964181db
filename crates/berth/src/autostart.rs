//! Starting berthd on demand when nothing answers on the default socket.
//!
//! berth spawns itself with the hidden `__launch-berthd` argument; that child calls `setsid`
//! (safe here: a freshly spawned process is never a process-group leader) and then execs berthd.
//! This keeps `unsafe` (a `pre_exec` hook) out of the CLI. berthd inherits the write end of a
//! pipe, named in `BERTH_READY_FD`, and writes `ready\n` to it once it is listening; berth waits
//! on the read end with a 30 s timeout.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use rustix::event::{poll, PollFd, PollFlags};

const LOG_DIR: &str = "/run/berth";
const LOG_FILE: &str = "/run/berth/berthd.log";
pub const LAUNCH_ARG: &str = "__launch-berthd";

/// `berthd` next to the running executable, else the first one on `$PATH`.
fn find_berthd() -> anyhow::Result<PathBuf> {
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let p = dir.join("berthd");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("berthd");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    bail!("cannot start the berth daemon: berthd not found next to berth or on PATH")
}

pub fn start_berthd() -> anyhow::Result<()> {
    let berthd = find_berthd()?;
    std::fs::create_dir_all(LOG_DIR).with_context(|| format!("failed to create {LOG_DIR}"))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(LOG_FILE)
        .with_context(|| format!("failed to open {LOG_FILE}"))?;
    // Without O_CLOEXEC on purpose: the write end must survive both execs.
    let (rd, wr): (OwnedFd, OwnedFd) = rustix::pipe::pipe().context("failed to create the readiness pipe")?;
    rustix::io::fcntl_setfd(&rd, rustix::io::FdFlags::CLOEXEC)?;
    let me = std::env::current_exe().context("cannot find the berth executable")?;
    let mut child = Command::new(me)
        .arg(LAUNCH_ARG)
        .arg(&berthd)
        .env("BERTH_READY_FD", wr.as_raw_fd().to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("failed to start {}", berthd.display()))?;
    drop(wr);
    // The launcher execs berthd and never returns; reap it lazily in a thread so it is no zombie.
    std::thread::spawn(move || child.wait());

    let mut file = std::fs::File::from(rd);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut got = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            bail!("timed out waiting for berthd to start (see {LOG_FILE})");
        }
        let ts = rustix::event::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: left.subsec_nanos() as i64,
        };
        let fd = file.as_fd();
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let mut buf = [0u8; 64];
        let n = file.read(&mut buf)?;
        if n == 0 {
            bail!("berthd exited before it was ready (see {LOG_FILE})");
        }
        got.extend_from_slice(&buf[..n]);
        if got.contains(&b'\n') {
            return Ok(());
        }
    }
}

/// The launcher half: runs in the spawned child, detaches and becomes berthd.
pub fn launch(berthd: &str) -> ! {
    let _ = rustix::process::setsid();
    let err = Command::new(berthd).exec();
    eprintln!("failed to exec {berthd}: {err}");
    std::process::exit(127)
}
