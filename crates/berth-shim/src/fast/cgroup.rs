//! The container's cgroups on a v1/hybrid host, as the fast path creates them: the same
//! directory `<rel>` in every v1 hierarchy and in the unified one, the resources berth sets
//! (memory, cpu, cpuset, pids, devices) written as libcontainer's v1 manager writes them.

use std::path::{Path, PathBuf};

use berth_runtime::CgroupDirs;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources};

use super::rootfs::Result;

/// The v1 hierarchies mounted under `/sys/fs/cgroup` (`(name, mount point)`, `name` as the
/// directory is called: `cpu`, `cpu,cpuacct`, `systemd`), by name. Found once per shim (`accepts`
/// and `create` both ask; the host's hierarchies do not change under a container).
pub(crate) fn hierarchies() -> &'static [(String, PathBuf)] {
    static HIERARCHIES: std::sync::OnceLock<Vec<(String, PathBuf)>> = std::sync::OnceLock::new();
    HIERARCHIES.get_or_init(|| {
        let root = Path::new(berth_runtime::CGROUP_ROOT);
        let mut v = from_directory(root).unwrap_or_else(|| from_mountinfo(root));
        v.sort();
        v
    })
}

const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;

fn fs_type(p: &Path) -> Option<i64> {
    // `f_type`'s width differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    rustix::fs::statfs(p).ok().map(|s| s.f_type as i64)
}

/// The hierarchies as the directories of `root` that are cgroup v1 file systems: a few `statfs`
/// calls, where `/proc/self/mountinfo` lists every mount of the host (a pinned network namespace
/// per container on a bridge). `None` when `root` is itself a v1 hierarchy (then every directory
/// in it would look like one).
fn from_directory(root: &Path) -> Option<Vec<(String, PathBuf)>> {
    if fs_type(root)? == CGROUP_SUPER_MAGIC {
        return None;
    }
    let mut v = Vec::new();
    for e in std::fs::read_dir(root).ok()?.flatten() {
        // Symbolic links (`cpu` -> `cpu,cpuacct`) name a hierarchy already listed.
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let p = e.path();
        if fs_type(&p) == Some(CGROUP_SUPER_MAGIC) {
            if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
                v.push((name.to_string(), p.clone()));
            }
        }
    }
    Some(v)
}

fn from_mountinfo(root: &Path) -> Vec<(String, PathBuf)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v = Vec::new();
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut r = right.split(' ');
        if r.next() != Some("cgroup") {
            continue;
        }
        let Some(mp) = left.split(' ').nth(4) else {
            continue;
        };
        let mp = PathBuf::from(mp);
        if mp.parent() != Some(root) {
            continue;
        }
        if let Some(name) = mp.file_name().and_then(|n| n.to_str()) {
            v.push((name.to_string(), mp.clone()));
        }
    }
    v
}

/// Turns the OOM killer off in the v1 memory cgroup of `cgroup_path` when `spec` asks for it
/// (libcontainer 0.7 reads `memory.disableOOMKiller` from nowhere: it always writes 0).
pub(crate) fn oom_killer_off_if_asked(spec: &oci_spec::runtime::Spec, cgroup_path: &str) -> Result<()> {
    let asked = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.disable_oom_killer())
        == Some(true);
    if !asked {
        return Ok(());
    }
    let dirs = CgroupDirs::new(cgroup_path).map_err(|e| e.to_string())?;
    match hierarchies()
        .iter()
        .find(|(n, _)| n.split(',').any(|c| c == "memory"))
    {
        Some((_, mp)) => write(&mp.join(dirs.rel()), "memory.oom_control", "1"),
        None => Err("no v1 memory hierarchy: the OOM killer cannot be turned off".into()),
    }
}

/// Whether the fast path implements every resource in `r`.
pub(crate) fn supported(r: &LinuxResources) -> std::result::Result<(), String> {
    let unsupported = r.block_io().is_some()
        || r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty())
        || r.network().is_some()
        || r.rdma().is_some()
        || r.unified().as_ref().is_some_and(|u| !u.is_empty());
    if unsupported {
        return Err("resources other than memory, cpu, pids and devices".into());
    }
    if let Some(m) = r.memory() {
        if m.kernel().is_some()
            || m.kernel_tcp().is_some()
            || m.use_hierarchy().is_some()
            || m.check_before_update().is_some()
        {
            return Err("memory options other than limit, swap, reservation, swappiness, OOM killer".into());
        }
    }
    if let Some(c) = r.cpu() {
        if c.realtime_period().is_some()
            || c.realtime_runtime().is_some()
            || c.idle().is_some()
            || c.burst().is_some()
        {
            return Err("realtime or idle cpu settings".into());
        }
    }
    Ok(())
}

fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    std::fs::write(dir.join(file), value)
        .map_err(|e| format!("write {value:?} to {}/{file}: {e}", dir.display()))
}

/// Writes `rules` in order, each `(file, rule)` by its own `write(2)`, as the devices cgroup takes
/// one rule per write; a run of rules for the same file goes through one open descriptor. Opening
/// a cgroup file costs a path walk through kernfs: ~23 rules opened one by one took ~0.3 ms of a
/// start here, through one descriptor each ~0.05 ms.
fn write_rules(dir: &Path, rules: &[(&str, String)]) -> Result<()> {
    use std::io::Write;
    let mut open: Option<(&str, std::fs::File)> = None;
    for (file, rule) in rules {
        if open.as_ref().is_none_or(|(f, _)| f != file) {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join(file))
                .map_err(|e| format!("open {}/{file}: {e}", dir.display()))?;
            open = Some((file, f));
        }
        let Some((_, f)) = open.as_mut() else {
            continue;
        };
        // One write per rule (a rule is far below a page, so write_all issues one): the kernel
        // parses each write as a single rule.
        f.write_all(rule.as_bytes())
            .map_err(|e| format!("write {rule:?} to {}/{file}: {e}", dir.display()))?;
    }
    Ok(())
}

/// Creates `dir` and its missing parents; a new cpuset directory gets its parent's cpus and
/// mems (a v1 cpuset cgroup without them takes no task).
///
/// A cpuset parent that berth makes itself (the daemon's `berth`, a `--cgroup-parent` that did
/// not exist) also gets `cgroup.clone_children`, so the kernel copies its cpus and mems into each
/// new container's cpuset at `mkdir`. Writing them instead makes the kernel rebuild its
/// scheduling domains, a walk over every cpuset on the host: 0.2 ms back to back and 1.2 ms after
/// a short idle with 1000 containers running, 0.05 / 0.45 ms with the flag
/// (docs/design/performance.md, "cpuset writes"). A parent berth did not make is left as it is.
///
/// A parent that went away between its `mkdir` and the child's (someone removed it while it was
/// still empty: another runtime's or a test's cleanup of a shared parent) is made again, a few
/// times at most.
fn create_dir(dir: &Path, cpuset: bool, leaf: bool) -> Result<()> {
    const TRIES: usize = 5;
    for attempt in 1..=TRIES {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            create_dir(parent, cpuset, false)?;
        }
        match std::fs::create_dir(dir) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < TRIES => continue,
            Err(e) => return Err(format!("create {}: {e}", dir.display())),
        }
    }
    if cpuset {
        inherit_cpuset(dir)?;
        if !leaf {
            // Only a shortcut: without it each container's cpus and mems are written.
            let _ = write(dir, "cgroup.clone_children", "1");
        }
    }
    Ok(())
}

/// Gives the cpuset directory `dir` its parent's cpus and mems, unless the kernel copied them
/// (`cgroup.clone_children` on the parent). A parent that has none yet was made a moment ago by
/// a concurrent creator that has not filled it in: it is filled first (the same values, so the
/// racers agree), else `dir` would take no task (ENOSPC).
fn inherit_cpuset(dir: &Path) -> Result<()> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let filled = |d: &Path| {
            std::fs::read_to_string(d.join(f))
                .map(|v| !v.trim().is_empty())
                .unwrap_or(false)
        };
        if filled(dir) {
            continue;
        }
        let read = || std::fs::read_to_string(parent.join(f)).unwrap_or_default();
        let mut v = read();
        if v.trim().is_empty() && parent.join("cpuset.cpus").exists() {
            inherit_cpuset(parent)?;
            v = read();
        }
        write(dir, f, v.trim())?;
    }
    Ok(())
}

/// A device rule as the devices cgroup takes it: `c 1:3 rwm`, `a *:* rwm`.
pub(crate) fn device_rule(d: &LinuxDeviceCgroup) -> String {
    let t = d
        .typ()
        .map(|t| t.as_str().to_string())
        .unwrap_or_else(|| "a".into());
    let n = |x: Option<i64>| x.map(|x| x.to_string()).unwrap_or_else(|| "*".into());
    format!(
        "{t} {}:{} {}",
        n(d.major()),
        n(d.minor()),
        d.access().as_deref().unwrap_or("rwm")
    )
}

/// The container's cgroup directories, created with `r` applied: the v1 ones `(name, dir)` (for
/// `/sys/fs/cgroup`) and every directory the init is to join (v1 and unified).
pub(crate) type Created = (Vec<(String, PathBuf)>, Vec<PathBuf>);

/// Creates the container's cgroups and applies `r`; the init joins them ([`Join`]).
pub(crate) fn create(dirs: &CgroupDirs, r: Option<&LinuxResources>) -> Result<Created> {
    let mut binds = Vec::new();
    for (name, mp) in hierarchies() {
        let dir = mp.join(dirs.rel());
        create_dir(&dir, name.split(',').any(|c| c == "cpuset"), true)?;
        binds.push((name.clone(), dir));
    }
    let v1 = |c: &str| {
        binds
            .iter()
            .find(|(n, _)| n.split(',').any(|x| x == c))
            .map(|(_, d)| d.clone())
    };
    if let Some(r) = r {
        if let Some(d) = v1("devices") {
            // What libcontainer (and runc) always allow after the spec's rules: the default
            // nodes, mknod of any device, /dev/console, /dev/pts/*, /dev/ptmx, /dev/net/tun.
            const ALWAYS: [&str; 12] = [
                "c 1:3 rwm",
                "c 1:5 rwm",
                "c 1:7 rwm",
                "c 5:0 rwm",
                "c 1:9 rwm",
                "c 1:8 rwm",
                "c *:* m",
                "b *:* m",
                "c 5:1 rwm",
                "c 136:* rwm",
                "c 5:2 rwm",
                "c 10:200 rwm",
            ];
            let spec = r.devices().iter().flatten().map(|rule| {
                let file = if rule.allow() {
                    "devices.allow"
                } else {
                    "devices.deny"
                };
                (file, device_rule(rule))
            });
            let rules: Vec<(&str, String)> = spec
                .chain(ALWAYS.iter().map(|r| ("devices.allow", r.to_string())))
                .collect();
            write_rules(&d, &rules)?;
        }
        if let (Some(m), Some(d)) = (r.memory(), v1("memory")) {
            if let Some(l) = m.limit() {
                write(&d, "memory.limit_in_bytes", &l.to_string())?;
            }
            if let Some(s) = m.swap() {
                if d.join("memory.memsw.limit_in_bytes").exists() {
                    write(&d, "memory.memsw.limit_in_bytes", &s.to_string())?;
                }
            }
            if let Some(s) = m.reservation() {
                write(&d, "memory.soft_limit_in_bytes", &s.to_string())?;
            }
            if let Some(s) = m.swappiness() {
                write(&d, "memory.swappiness", &s.to_string())?;
            }
            if m.disable_oom_killer() == Some(true) {
                write(&d, "memory.oom_control", "1")?;
            }
        }
        if let Some(c) = r.cpu() {
            if let Some(d) = v1("cpu") {
                if let Some(s) = c.shares() {
                    write(&d, "cpu.shares", &s.to_string())?;
                }
                if let Some(p) = c.period() {
                    write(&d, "cpu.cfs_period_us", &p.to_string())?;
                }
                if let Some(q) = c.quota() {
                    write(&d, "cpu.cfs_quota_us", &q.to_string())?;
                }
            }
            if let Some(d) = v1("cpuset") {
                if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
                    write(&d, "cpuset.cpus", cpus)?;
                }
                if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
                    write(&d, "cpuset.mems", mems)?;
                }
            }
        }
        if let (Some(p), Some(d)) = (r.pids(), v1("pids")) {
            let v = if p.limit() > 0 {
                p.limit().to_string()
            } else {
                "max".into()
            };
            write(&d, "pids.max", &v)?;
        }
    }
    let unified = Path::new(berth_runtime::CGROUP_ROOT).join("unified");
    let mut all: Vec<PathBuf> = binds.iter().map(|(_, d)| d.clone()).collect();
    if unified.join("cgroup.procs").exists() {
        let d = unified.join(dirs.rel());
        create_dir(&d, false, true)?;
        all.push(d);
    }
    Ok((binds, all))
}

/// How a process joins the container's cgroups without waiting for an RCU grace period.
///
/// Writing a pid to `cgroup.procs` takes the kernel's global cgroup threadgroup lock for writing,
/// and the first writer after a quiet spell waits for a grace period: 6-24 ms on this 2-core VM,
/// for every container start and exec. Two ways in take no such lock: a thread that writes `0`
/// to a v1 hierarchy's `tasks` moves only itself (the caller is single-threaded, so the whole
/// process moves), and a child forked with `CLONE_INTO_CGROUP` is born in the unified
/// directory. Where the kernel lacks `CLONE_INTO_CGROUP` the child writes `cgroup.procs` instead.
pub(crate) struct Join {
    v1: Vec<PathBuf>,
    unified: Option<(PathBuf, std::os::fd::OwnedFd)>,
    /// Set by [`Join::fork`] when the child must join the unified directory itself.
    unified_by_write: std::cell::Cell<bool>,
}

impl Join {
    /// Splits `dirs` (as [`create`] or `CgroupDirs::existing` list them) into the v1 directories
    /// and the unified one, which is opened here for the fork.
    pub(crate) fn new(dirs: &[PathBuf]) -> Result<Join> {
        let unified_root = Path::new(berth_runtime::CGROUP_ROOT).join("unified");
        let mut v1 = Vec::new();
        let mut unified = None;
        for d in dirs {
            if d.starts_with(&unified_root) {
                if unified.is_none() {
                    let fd = rustix::fs::open(
                        d,
                        rustix::fs::OFlags::PATH
                            | rustix::fs::OFlags::DIRECTORY
                            | rustix::fs::OFlags::CLOEXEC,
                        rustix::fs::Mode::empty(),
                    )
                    .map_err(|e| format!("open {}: {e}", d.display()))?;
                    unified = Some((d.clone(), fd));
                }
            } else if !v1.contains(d) {
                v1.push(d.clone());
            }
        }
        Ok(Join {
            v1,
            unified,
            unified_by_write: std::cell::Cell::new(false),
        })
    }

    /// Forks (the caller must be single-threaded); the child starts in the unified directory.
    /// Where `clone3` cannot place it (an old kernel, or a hierarchy that refuses it), a plain
    /// fork follows and the child joins by `cgroup.procs`, which reports its own error if the
    /// directory really cannot take the process.
    pub(crate) fn fork(&self) -> std::io::Result<berth_sys::process::Fork> {
        use std::os::fd::AsFd;
        if let Some((_, fd)) = &self.unified {
            match berth_sys::process::fork_into_cgroup(fd.as_fd()) {
                Ok(f) => return Ok(f),
                Err(_) => self.unified_by_write.set(true),
            }
        }
        berth_sys::process::fork()
    }

    /// In the child of [`Join::fork`]: moves the (single-threaded) calling process into each v1
    /// directory, and into the unified one where the fork could not place it.
    pub(crate) fn enter(&self) -> Result<()> {
        self.enter_v1()?;
        self.enter_unified()
    }

    /// Moves the (single-threaded) calling process into each v1 directory.
    pub(crate) fn enter_v1(&self) -> Result<()> {
        for d in &self.v1 {
            write(d, "tasks", "0")?;
        }
        Ok(())
    }

    /// In the child of [`Join::fork`]: joins the unified directory where the fork could not.
    pub(crate) fn enter_unified(&self) -> Result<()> {
        if let Some((d, _)) = self.unified.as_ref().filter(|_| self.unified_by_write.get()) {
            write(d, "cgroup.procs", "0")?;
        }
        Ok(())
    }
}

/// Kills whatever is left in the container's cgroups (SIGKILL to each task, after freezing is
/// not needed: the pid namespace is gone when the init is) and removes them. True when none is
/// left.
pub(crate) fn kill_and_remove(dirs: &CgroupDirs) -> bool {
    // Up to 5 s: a killed init's exit unmounts its overlay, and an ordinary overlay's unmount
    // syncs the whole file system of its upper layer, which takes long on a busy disk.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < until {
        if dirs.remove_tree() {
            return true;
        }
        for d in dirs.tree() {
            let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ = berth_sys::process::kill(pid, libc::SIGKILL);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    dirs.remove_tree()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hierarchies found from `/sys/fs/cgroup`'s directories are the ones mountinfo lists.
    #[test]
    fn hierarchies_from_the_directory_are_those_mountinfo_lists() {
        let root = Path::new(berth_runtime::CGROUP_ROOT);
        let mut want = from_mountinfo(root);
        want.sort();
        let mut got = from_directory(root).unwrap_or_else(|| want.clone());
        got.sort();
        assert_eq!(got, want);
    }

    /// The v1 cpuset hierarchy's mount point, when there is one and the test runs as root
    /// (otherwise says why it skips).
    fn cpuset_root() -> Option<&'static Path> {
        let Some((_, root)) = hierarchies()
            .iter()
            .find(|(n, _)| n.split(',').any(|c| c == "cpuset"))
        else {
            eprintln!("skipped: no v1 cpuset hierarchy");
            return None;
        };
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: requires root");
            return None;
        }
        Some(root)
    }

    /// The state a concurrent creator leaves for a moment: the parent made, its cpus and mems
    /// not yet written. A child made then must still take tasks.
    #[test]
    fn a_cpuset_child_of_a_parent_not_yet_filled_in_gets_cpus_and_mems() {
        let Some(root) = cpuset_root() else {
            return;
        };
        let parent = root.join(format!("berth-unit-cpuset-{}", std::process::id()));
        let child = parent.join("c");
        std::fs::create_dir(&parent).unwrap();
        let made = create_dir(&child, true, true);
        let cpus = std::fs::read_to_string(child.join("cpuset.cpus")).unwrap_or_default();
        let mems = std::fs::read_to_string(child.join("cpuset.mems")).unwrap_or_default();
        let clone = std::fs::read_to_string(parent.join("cgroup.clone_children"));
        let _ = std::fs::remove_dir(&child);
        let _ = std::fs::remove_dir(&parent);
        made.unwrap();
        assert!(!cpus.trim().is_empty(), "child has no cpus");
        assert!(!mems.trim().is_empty(), "child has no mems");
        // A parent berth did not make keeps its settings.
        assert_eq!(clone.unwrap().trim(), "0");
    }

    /// A cpuset parent berth makes copies its cpus and mems into each container's cpuset at
    /// `mkdir` (`cgroup.clone_children`), and those are the parent's.
    #[test]
    fn a_cpuset_parent_berth_makes_clones_its_cpus_and_mems_into_children() {
        let Some(root) = cpuset_root() else {
            return;
        };
        let top = root.join(format!("berth-unit-clone-{}", std::process::id()));
        let parent = top.join("p");
        let (a, b) = (parent.join("a"), parent.join("b"));
        let read = |d: &Path, f: &str| std::fs::read_to_string(d.join(f)).unwrap_or_default();
        let made = create_dir(&a, true, true).and_then(|()| create_dir(&b, true, true));
        let got = [&top, &parent, &a, &b].map(|d| {
            (
                read(d, "cgroup.clone_children"),
                read(d, "cpuset.cpus"),
                read(d, "cpuset.mems"),
            )
        });
        for d in [&a, &b, &parent, &top] {
            let _ = std::fs::remove_dir(d);
        }
        made.unwrap();
        let want = (read(root, "cpuset.cpus"), read(root, "cpuset.mems"));
        assert!(!want.0.trim().is_empty() && !want.1.trim().is_empty());
        for (i, (clone, cpus, mems)) in got.iter().enumerate() {
            assert_eq!((cpus, mems), (&want.0, &want.1), "directory {i}");
            assert_eq!(clone.trim(), "1", "directory {i}: clone_children");
        }
    }

    /// A shared parent that another party removes as soon as it is empty (a test's cleanup,
    /// another runtime's) does not fail a child's creation: the parent is made again. The racer
    /// removes the parent once per creation, in the window between the parent's `mkdir` and the
    /// child's.
    #[test]
    fn a_parent_removed_between_its_mkdir_and_the_childs_is_made_again() {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let tmp = tempfile::tempdir().unwrap();
        let parent = tmp.path().join("p");
        let (round, done) = (AtomicUsize::new(0), AtomicBool::new(false));
        let removed = AtomicUsize::new(0);
        let failures = std::thread::scope(|s| {
            s.spawn(|| {
                let mut last = 0;
                while !done.load(Ordering::Acquire) {
                    let r = round.load(Ordering::Acquire);
                    if r != last && std::fs::remove_dir(&parent).is_ok() {
                        removed.fetch_add(1, Ordering::Relaxed);
                        last = r;
                    }
                }
            });
            let mut failures = Vec::new();
            for i in 1..=2000 {
                let child = parent.join(format!("c{i}"));
                round.store(i, Ordering::Release);
                match create_dir(&child, false, true) {
                    Ok(()) => assert!(child.is_dir(), "{} missing", child.display()),
                    Err(e) => failures.push(e),
                }
                let _ = std::fs::remove_dir(&child);
                let _ = std::fs::remove_dir(&parent);
            }
            done.store(true, Ordering::Release);
            failures
        });
        assert!(
            failures.is_empty(),
            "{} failed: {:?}",
            failures.len(),
            failures.first()
        );
        assert!(
            removed.load(Ordering::Relaxed) > 0,
            "the racer never removed the parent"
        );
    }
}
