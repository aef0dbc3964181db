//! Pause and resume through the container's freezer cgroup, without libcontainer: on cgroup v1
//! (and hybrid hosts) `freezer/<path>/freezer.state` ← `FROZEN`/`THAWED`, on v2
//! `<path>/cgroup.freeze` ← `1`/`0`. Freezing is asynchronous in both: the kernel reports
//! `FREEZING` (v1) or `frozen 0` in `cgroup.events` (v2) until every task is stopped, so the shim
//! waits for the final state, as runc does — on v2 with `poll(POLLPRI)` on `cgroup.events`, on v1
//! (which has no notification) by re-reading the state with a short back-off.

use std::io;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use berth_runtime::CgroupDirs;

/// How long freezing may take before the shim gives up and thaws again.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Freezes (`true`) or thaws every task of the cgroup and waits until the kernel says so.
pub fn set_frozen(cgroup: Option<&CgroupDirs>, frozen: bool) -> io::Result<()> {
    let Some(cg) = cgroup else {
        return Err(io::Error::other("the container has no cgroup"));
    };
    let v1 = cg.v1("freezer").join("freezer.state");
    if v1.exists() {
        return set_v1(&v1, frozen);
    }
    let dir = cg.v2();
    if dir.join("cgroup.freeze").exists() {
        return set_v2(&dir, frozen);
    }
    Err(io::Error::other(format!("no freezer cgroup for /{}", cg.rel())))
}

fn set_v1(state: &std::path::Path, frozen: bool) -> io::Result<()> {
    let want = if frozen { "FROZEN" } else { "THAWED" };
    let start = Instant::now();
    let mut backoff = Duration::from_micros(100);
    loop {
        std::fs::write(state, want)?;
        if std::fs::read_to_string(state)?.trim() == want {
            return Ok(());
        }
        if start.elapsed() > TIMEOUT {
            if frozen {
                let _ = std::fs::write(state, "THAWED");
            }
            return Err(io::Error::other(format!(
                "{} did not become {want} in {TIMEOUT:?}",
                state.display()
            )));
        }
        // v1 offers no event for "frozen"; a task in an uninterruptible sleep keeps the cgroup
        // FREEZING. Re-writing the state also catches tasks forked meanwhile (runc does the same).
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_millis(10));
    }
}

fn set_v2(dir: &std::path::Path, frozen: bool) -> io::Result<()> {
    std::fs::write(dir.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
    let want = if frozen { "frozen 1" } else { "frozen 0" };
    let events = std::fs::File::open(dir.join("cgroup.events"))?;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let mut buf = [0u8; 512];
        let n = rustix::io::pread(&events, &mut buf, 0)?;
        if String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l.trim() == want)
        {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            if frozen {
                let _ = std::fs::write(dir.join("cgroup.freeze"), "0");
            }
            return Err(io::Error::other(format!(
                "{} did not report {want} in {TIMEOUT:?}",
                dir.display()
            )));
        }
        // cgroup.events signals a change with POLLPRI.
        let mut fds = [rustix::event::PollFd::from_borrowed_fd(
            events.as_fd(),
            rustix::event::PollFlags::PRI,
        )];
        let ts = rustix::fs::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: left.subsec_nanos() as i64,
        };
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}
