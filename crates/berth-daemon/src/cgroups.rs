//! A container's cgroup as the daemon reads and adjusts it: processes (`top`), usage (`stats`)
//! and limits (`update`), on cgroup v1, v2 and the hybrid layout (v1 controllers under
//! `/sys/fs/cgroup/<controller>`, cgroup2 at `/sys/fs/cgroup/unified`). The runtime creates the
//! cgroup at `/<cgroup-parent>/<id>` in every hierarchy; its directories come from
//! [`berth_runtime::CgroupDirs`] here as in the shim, so a parent that could leave the hierarchy
//! (`..`) names no cgroup at all.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use berth_runtime::CgroupDirs;

/// Where one container's cgroup lives.
#[derive(Debug, Clone)]
pub struct Cgroup {
    /// `None` for a parent that is not valid (such a container cannot have been started).
    dirs: Option<CgroupDirs>,
}

impl Cgroup {
    pub fn new(parent: &str, id: &str) -> Self {
        Cgroup {
            dirs: CgroupDirs::for_container(parent, "berth", id).ok(),
        }
    }

    /// The directories, if the parent is valid.
    pub fn dirs(&self) -> Option<&CgroupDirs> {
        self.dirs.as_ref()
    }

    /// The directory of `controller` (v1) or the unified directory (v2).
    fn dir(&self, controller: &str) -> Option<PathBuf> {
        Some(self.dirs.as_ref()?.dir(controller))
    }

    fn read(&self, controller: &str, file: &str) -> Option<String> {
        self.dirs.as_ref()?.read(controller, file)
    }

    fn read_u64(&self, controller: &str, file: &str) -> Option<u64> {
        self.read(controller, file)?.parse().ok()
    }

    fn write(&self, controller: &str, file: &str, value: &str) -> std::io::Result<()> {
        let dir = self
            .dir(controller)
            .ok_or_else(|| std::io::Error::other("invalid cgroup parent"))?;
        std::fs::write(dir.join(file), value)
    }

    /// Every process of the container.
    pub fn pids(&self) -> Vec<i32> {
        let s = self
            .read("pids", "cgroup.procs")
            .or_else(|| self.read("memory", "cgroup.procs"))
            .unwrap_or_default();
        s.lines().filter_map(|l| l.trim().parse().ok()).collect()
    }

    /// Usage numbers in the shape of docker's stats JSON (`cpu_stats`, `memory_stats`,
    /// `pids_stats`, `blkio_stats`).
    pub fn stats(&self) -> serde_json::Value {
        use serde_json::json;
        let kv = |text: Option<String>| -> serde_json::Map<String, serde_json::Value> {
            text.unwrap_or_default()
                .lines()
                .filter_map(|l| {
                    let mut it = l.split_whitespace();
                    Some((it.next()?.to_string(), json!(it.next()?.parse::<u64>().ok()?)))
                })
                .collect()
        };
        let (cpu_total, cpu_user, cpu_kernel, percpu, memory, mem_limit, mem_stats, io, ios, max_usage);
        if self.dirs.as_ref().is_some_and(CgroupDirs::is_unified) {
            let cpu = kv(self.read("", "cpu.stat"));
            let us = |k: &str| cpu.get(k).and_then(|v| v.as_u64()).unwrap_or(0) * 1000;
            cpu_total = us("usage_usec");
            cpu_user = us("user_usec");
            cpu_kernel = us("system_usec");
            percpu = None;
            memory = self.read_u64("", "memory.current").unwrap_or(0);
            mem_limit = self.read_u64("", "memory.max").unwrap_or(host_memory());
            mem_stats = kv(self.read("", "memory.stat"));
            let stat = self.read("", "io.stat");
            io = io_v2(stat.as_deref(), ("rbytes", "wbytes"));
            ios = io_v2(stat.as_deref(), ("rios", "wios"));
            // cgroup v2 keeps no peak in this kernel's files dockerd reads; dockerd leaves it out.
            max_usage = None;
        } else {
            cpu_total = self.read_u64("cpuacct", "cpuacct.usage").unwrap_or(0);
            let ticks = kv(self.read("cpuacct", "cpuacct.stat"));
            let hz = 100u64; // USER_HZ
            let t = |k: &str| ticks.get(k).and_then(|v| v.as_u64()).unwrap_or(0) * 1_000_000_000 / hz;
            cpu_user = t("user");
            cpu_kernel = t("system");
            percpu = self.read("cpuacct", "cpuacct.usage_percpu").map(|s| {
                s.split_whitespace()
                    .filter_map(|v| v.parse::<u64>().ok())
                    .collect::<Vec<_>>()
            });
            memory = self.read_u64("memory", "memory.usage_in_bytes").unwrap_or(0);
            mem_limit = self
                .read_u64("memory", "memory.limit_in_bytes")
                .unwrap_or(u64::MAX)
                .min(host_memory());
            mem_stats = kv(self.read("memory", "memory.stat"));
            io = io_v1(self.read("blkio", "blkio.throttle.io_service_bytes_recursive"));
            ios = io_v1(self.read("blkio", "blkio.throttle.io_serviced_recursive"));
            max_usage = self.read_u64("memory", "memory.max_usage_in_bytes");
        }
        let pids_limit = self.read("pids", "pids.max").and_then(|s| s.parse::<u64>().ok());
        let mut cpu_usage = json!({
            "total_usage": cpu_total,
            "usage_in_kernelmode": cpu_kernel,
            "usage_in_usermode": cpu_user,
        });
        if let Some(p) = percpu {
            cpu_usage["percpu_usage"] = json!(p);
        }
        let unified = self.dirs.as_ref().is_some_and(CgroupDirs::is_unified);
        // The CFQ/BFQ lists: empty on v1 where the scheduler's files are absent, as dockerd
        // shows them; v2 has no such counters (dockerd: null).
        let sched = if unified { json!(null) } else { json!([]) };
        let mut memory_stats = json!({"usage": memory, "limit": mem_limit, "stats": mem_stats});
        if let Some(m) = max_usage {
            memory_stats["max_usage"] = json!(m);
        }
        json!({
            "pids_stats": {"current": self.pids().len(), "limit": pids_limit},
            "num_procs": 0,
            "storage_stats": {},
            "blkio_stats": {
                "io_service_bytes_recursive": io,
                "io_serviced_recursive": ios,
                "io_queue_recursive": sched,
                "io_service_time_recursive": sched,
                "io_wait_time_recursive": sched,
                "io_merged_recursive": sched,
                "io_time_recursive": sched,
                "sectors_recursive": sched,
            },
            "cpu_stats": {
                "cpu_usage": cpu_usage,
                "system_cpu_usage": system_cpu_usage(),
                "online_cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
                "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
            },
            "memory_stats": memory_stats,
        })
    }

    /// Applies new limits to a running container (`docker update`); 0 / empty / `None` leaves
    /// a value as it is.
    pub fn update(&self, l: &Limits) -> std::io::Result<()> {
        if self.dirs.as_ref().is_some_and(CgroupDirs::is_unified) {
            if l.memory > 0 {
                self.write("", "memory.max", &l.memory.to_string())?;
            }
            if l.memory_swap > 0 && l.memory > 0 {
                self.write(
                    "",
                    "memory.swap.max",
                    &(l.memory_swap - l.memory).max(0).to_string(),
                )?;
            }
            if l.memory_reservation > 0 {
                self.write("", "memory.low", &l.memory_reservation.to_string())?;
            }
            if l.nano_cpus > 0 {
                self.write("", "cpu.max", &format!("{} 100000", l.nano_cpus / 10_000))?;
            }
            if l.cpu_quota != 0 || l.cpu_period > 0 {
                let cur = self.read("", "cpu.max").unwrap_or_default();
                let mut f = cur.split_whitespace();
                let (q, p) = (
                    f.next().unwrap_or("max").to_string(),
                    f.next().unwrap_or("100000").to_string(),
                );
                let q = match l.cpu_quota {
                    0 => q,
                    x if x < 0 => "max".into(),
                    x => x.to_string(),
                };
                let p = if l.cpu_period > 0 {
                    l.cpu_period.to_string()
                } else {
                    p
                };
                self.write("", "cpu.max", &format!("{q} {p}"))?;
            }
            if l.cpu_shares > 0 {
                let weight = 1 + ((l.cpu_shares - 2) * 9999) / 262142;
                self.write("", "cpu.weight", &weight.clamp(1, 10000).to_string())?;
            }
            if !l.cpuset_cpus.is_empty() {
                self.write("", "cpuset.cpus", &l.cpuset_cpus)?;
            }
            if !l.cpuset_mems.is_empty() {
                self.write("", "cpuset.mems", &l.cpuset_mems)?;
            }
            if l.blkio_weight > 0 {
                self.write("", "io.bfq.weight", &l.blkio_weight.to_string())?;
            }
            if let Some(p) = l.pids {
                self.write(
                    "",
                    "pids.max",
                    &if p <= 0 { "max".to_string() } else { p.to_string() },
                )?;
            }
        } else {
            if l.memory > 0 {
                // Raising memory above memsw fails: order the writes like runc does.
                let swap = if l.memory_swap > 0 { l.memory_swap } else { -1 };
                let cur: i64 = self
                    .read("memory", "memory.limit_in_bytes")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let has_memsw = self
                    .dir("memory")
                    .is_some_and(|d| d.join("memory.memsw.limit_in_bytes").exists());
                if l.memory > cur && has_memsw {
                    self.write("memory", "memory.memsw.limit_in_bytes", &swap.to_string())?;
                    self.write("memory", "memory.limit_in_bytes", &l.memory.to_string())?;
                } else {
                    self.write("memory", "memory.limit_in_bytes", &l.memory.to_string())?;
                    if has_memsw {
                        self.write("memory", "memory.memsw.limit_in_bytes", &swap.to_string())?;
                    }
                }
            }
            if l.memory_reservation > 0 {
                self.write(
                    "memory",
                    "memory.soft_limit_in_bytes",
                    &l.memory_reservation.to_string(),
                )?;
            }
            if l.nano_cpus > 0 {
                self.write("cpu", "cpu.cfs_period_us", "100000")?;
                self.write("cpu", "cpu.cfs_quota_us", &(l.nano_cpus / 10_000).to_string())?;
            }
            if l.cpu_period > 0 {
                self.write("cpu", "cpu.cfs_period_us", &l.cpu_period.to_string())?;
            }
            if l.cpu_quota != 0 {
                self.write("cpu", "cpu.cfs_quota_us", &l.cpu_quota.to_string())?;
            }
            if l.cpu_shares > 0 {
                self.write("cpu", "cpu.shares", &l.cpu_shares.to_string())?;
            }
            if !l.cpuset_cpus.is_empty() {
                self.write("cpuset", "cpuset.cpus", &l.cpuset_cpus)?;
            }
            if !l.cpuset_mems.is_empty() {
                self.write("cpuset", "cpuset.mems", &l.cpuset_mems)?;
            }
            if l.blkio_weight > 0 {
                self.write("blkio", "blkio.weight", &l.blkio_weight.to_string())?;
            }
            if let Some(p) = l.pids {
                self.write(
                    "pids",
                    "pids.max",
                    &if p <= 0 { "max".to_string() } else { p.to_string() },
                )?;
            }
        }
        Ok(())
    }

    /// Removes the (empty) parent cgroup dirs the runtime created for `parent`, best effort.
    pub fn remove_parent(parent: &str) {
        if let Ok(dirs) = CgroupDirs::new(parent) {
            dirs.remove();
        }
    }
}

/// Whether the v1 hierarchy `ctrl` has `file`: what the kernel offers there, as dockerd's
/// sysinfo finds it (cgroup v2 has the controllers' own files).
pub fn v1_file(ctrl: &str, file: &str) -> bool {
    std::path::Path::new(berth_runtime::CGROUP_ROOT)
        .join(ctrl)
        .join(file)
        .exists()
}

/// What `docker update` changes; 0, empty or `None` leaves a setting as it is.
#[derive(Debug, Default, Clone)]
pub struct Limits {
    pub memory: i64,
    pub memory_swap: i64,
    pub memory_reservation: i64,
    pub nano_cpus: i64,
    pub cpu_shares: i64,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    pub blkio_weight: u16,
    pub pids: Option<i64>,
}

/// Removes exited containers' empty cgroups once container exits pause.
///
/// Removing a v1 memory cgroup makes the kernel reparent the cgroup's entries in every
/// superblock's dentry and inode lists and its deferred shrinker counts
/// (`memcg_reparent_list_lrus`, `reparent_shrinker_deferred`), under the global cgroup mutex:
/// work that grows with the number of file systems on the host, ~7 per running container. With
/// 1000 containers running, that work from one `run --rm` overlapped the next one's start (its
/// cgroup `mkdir` waits for the mutex; on 2 cores the work also takes a CPU), and a `run --rm`
/// took ~25% longer (bench/RESULTS.md; docs/design/performance.md, "Removing memory cgroups").
/// So a shim leaves its container's empty cgroups in place (`ShimConfig::keep_empty_cgroup`)
/// and the daemon queues them here, at the exit: this thread removes them once no exit came for
/// [`REAP_QUIET`], or at once while more than [`REAP_MAX_PENDING`] wait and containers are
/// also starting (each empty memory cgroup still holds its kernel memory, and starts that go on
/// while exits go on would make the queue grow without end). Without starts, a burst of exits
/// (`rm -f` of a thousand) leaves its cgroups until it is over: they held that memory a moment
/// before, and their removal, done alongside, made the burst ~1.7x as long
/// (docs/design/performance.md, "Removing memory cgroups"). A start of the same container
/// takes its entry back and removes the directories first ([`Reaper::take`]); a clean stop
/// removes all pending; a crash leaves empty directories that the next start's
/// [`Reaper::sweep`] removes.
#[derive(Debug)]
pub struct Reaper {
    shared: Arc<(Mutex<Pending>, Condvar)>,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Debug, Default)]
struct Pending {
    queue: VecDeque<(String, CgroupDirs)>,
    /// The container whose cgroups the thread is removing right now.
    removing: Option<String>,
    last_put: Option<Instant>,
    /// When a container last started ([`Reaper::take`]).
    last_start: Option<Instant>,
    closed: bool,
}

/// How long exits must pause before the queued cgroups are removed.
pub const REAP_QUIET: Duration = Duration::from_millis(200);
/// How many exited containers' cgroups may wait while containers start; beyond, the oldest go
/// at once.
pub const REAP_MAX_PENDING: usize = 32;

impl Reaper {
    pub fn start() -> std::io::Result<Reaper> {
        Self::start_with(REAP_QUIET, REAP_MAX_PENDING)
    }

    pub fn start_with(quiet: Duration, max_pending: usize) -> std::io::Result<Reaper> {
        let shared = Arc::new((Mutex::new(Pending::default()), Condvar::new()));
        let s = shared.clone();
        let worker = std::thread::Builder::new()
            .name("berth-cgroups".into())
            .spawn(move || reap(&s, quiet, max_pending))?;
        Ok(Reaper {
            shared,
            worker: Mutex::new(Some(worker)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.shared.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues the cgroups of container `id`, which just exited. Removed here and now once the
    /// reaper is closed.
    pub fn put(&self, id: &str, dirs: CgroupDirs) {
        let mut p = self.lock();
        if p.closed {
            drop(p);
            remove(id, &dirs);
            return;
        }
        p.queue.retain(|(i, _)| i != id);
        p.queue.push_back((id.to_string(), dirs));
        p.last_put = Some(Instant::now());
        self.shared.1.notify_all();
    }

    /// Before container `id` starts again: removes its queued cgroups now (waiting for the
    /// thread if it is removing them), so that the new start makes fresh ones and no later
    /// removal reaches them.
    pub fn take(&self, id: &str) {
        let mut p = self.lock();
        p.last_start = Some(Instant::now());
        // The cap applies again.
        self.shared.1.notify_all();
        while p.removing.as_deref() == Some(id) {
            p = self.shared.1.wait(p).unwrap_or_else(|e| e.into_inner());
        }
        let Some(pos) = p.queue.iter().position(|(i, _)| i == id) else {
            return;
        };
        let (id, dirs) = p.queue.remove(pos).expect("position is in the queue");
        drop(p);
        remove(&id, &dirs);
    }

    /// How many containers' cgroups wait for removal.
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.lock().queue.len()
    }

    /// Removes everything queued and stops the thread (a clean daemon stop).
    pub fn close(&self) {
        {
            let mut p = self.lock();
            p.closed = true;
            self.shared.1.notify_all();
        }
        if let Some(w) = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = w.join();
        }
    }

    /// At start-up: removes the empty cgroups under `parent` (the daemon's cgroup parent, or its
    /// default) of every container not in `running`, left by a crash before the reaper got to
    /// them. A cgroup with processes in it is never removed (`rmdir` refuses it).
    pub fn sweep(parent: &str, running: &std::collections::HashSet<String>) -> usize {
        Self::sweep_with(|id| CgroupDirs::for_container(parent, "berth", id).ok(), running)
    }

    /// [`Reaper::sweep`] with the directories of a container id from `dirs_of`.
    fn sweep_with(
        dirs_of: impl Fn(&str) -> Option<CgroupDirs>,
        running: &std::collections::HashSet<String>,
    ) -> usize {
        let Some(probe) = dirs_of("probe") else {
            return 0;
        };
        let mut ids = std::collections::BTreeSet::new();
        for d in probe.existing_parents() {
            if let Ok(rd) = std::fs::read_dir(d) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        if let Some(n) = e.file_name().to_str() {
                            ids.insert(n.to_string());
                        }
                    }
                }
            }
        }
        let mut removed = 0;
        for id in ids
            .iter()
            .filter(|i| berth_types::id::is_full_id(i) && !running.contains(*i))
        {
            if let Some(dirs) = dirs_of(id) {
                if dirs.remove_tree() {
                    removed += 1;
                }
            }
        }
        removed
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.close();
    }
}

fn remove(id: &str, dirs: &CgroupDirs) {
    if !dirs.remove_tree() {
        eprintln!("berthd: cgroups of {id} are still busy; left in place");
    }
}

fn reap(shared: &(Mutex<Pending>, Condvar), quiet: Duration, max_pending: usize) {
    let (lock, cv) = shared;
    let mut p = lock.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if p.queue.is_empty() {
            if p.closed {
                return;
            }
            p = cv.wait(p).unwrap_or_else(|e| e.into_inner());
            continue;
        }
        let starting = p.last_start.is_some_and(|t| t.elapsed() < quiet);
        if !p.closed && (p.queue.len() <= max_pending || !starting) {
            let since = p.last_put.map_or(quiet, |t| t.elapsed());
            if since < quiet {
                p = cv
                    .wait_timeout(p, quiet - since)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                continue;
            }
        }
        let (id, dirs) = p.queue.pop_front().expect("not empty");
        p.removing = Some(id.clone());
        drop(p);
        berth_sys::failpoint::hit("container.reap.before-remove");
        remove(&id, &dirs);
        p = lock.lock().unwrap_or_else(|e| e.into_inner());
        p.removing = None;
        cv.notify_all();
    }
}

fn io_v1(text: Option<String>) -> Vec<serde_json::Value> {
    text.unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (maj, min) = f.first()?.split_once(':')?;
            (f.len() == 3).then(|| {
                serde_json::json!({"major": maj.parse::<u64>().ok(), "minor": min.parse::<u64>().ok(), "op": f[1].to_lowercase(), "value": f[2].parse::<u64>().unwrap_or(0)})
            })
        })
        .collect()
}

/// `io.stat`'s `read`/`write` counts under the keys `keys` names (`rbytes`/`wbytes` for bytes,
/// `rios`/`wios` for operations).
fn io_v2(text: Option<&str>, keys: (&str, &str)) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for l in text.unwrap_or_default().lines() {
        let mut it = l.split_whitespace();
        let Some((maj, min)) = it.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        for kv in it {
            if let Some((k, v)) = kv.split_once('=') {
                let op = match k {
                    k if k == keys.0 => "read",
                    k if k == keys.1 => "write",
                    _ => continue,
                };
                out.push(serde_json::json!({"major": maj.parse::<u64>().ok(), "minor": min.parse::<u64>().ok(), "op": op, "value": v.parse::<u64>().unwrap_or(0)}));
            }
        }
    }
    out
}

/// Host CPU time in nanoseconds from /proc/stat, as docker reports `system_cpu_usage`.
fn system_cpu_usage() -> u64 {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = s
        .lines()
        .next()
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(8)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    ticks * 1_000_000_000 / 100
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(u64::MAX)
}

/// `eth0`-style interface counters of a process's network namespace (`networks` in stats);
/// loopback is left out, as docker does.
pub fn network_stats(pid: i64) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    let s = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    for l in s.lines().skip(2) {
        let Some((name, rest)) = l.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let v: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        if v.len() >= 12 {
            m.insert(
                name.to_string(),
                serde_json::json!({"rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2], "rx_dropped": v[3],
                    "tx_bytes": v[8], "tx_packets": v[9], "tx_errors": v[10], "tx_dropped": v[11]}),
            );
        }
    }
    serde_json::Value::Object(m)
}

#[cfg(test)]
mod tests {
    mod reaper {
        use super::super::*;
        use std::collections::HashSet;

        const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
        const C: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

        /// A container's cgroup in two "hierarchies" under a scratch root.
        fn cgroup(root: &std::path::Path, id: &str) -> CgroupDirs {
            for h in ["memory", "pids"] {
                std::fs::create_dir_all(root.join(h).join("p").join(id)).unwrap();
            }
            CgroupDirs::under(root, &format!("/p/{id}")).unwrap()
        }

        fn gone(d: &CgroupDirs) -> bool {
            d.existing().is_empty()
        }

        fn eventually(what: &str, f: impl Fn() -> bool) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !f() {
                assert!(Instant::now() < deadline, "timed out: {what}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }

        #[test]
        fn queued_cgroups_stay_while_exits_come_and_go_once_they_pause() {
            let t = tempfile::tempdir().unwrap();
            let r = Reaper::start_with(Duration::from_millis(300), 32).unwrap();
            let a = cgroup(t.path(), A);
            r.put(A, a.clone());
            assert!(!gone(&a), "removed before exits paused");
            assert_eq!(r.pending(), 1);
            eventually("a removed", || gone(&a));
            assert_eq!(r.pending(), 0);
        }

        #[test]
        fn a_start_takes_its_cgroups_back_and_no_later_removal_reaches_the_new_ones() {
            let t = tempfile::tempdir().unwrap();
            let r = Reaper::start_with(Duration::from_millis(100), 32).unwrap();
            let a = cgroup(t.path(), A);
            r.put(A, a.clone());
            r.take(A);
            assert!(gone(&a), "take removes at once");
            // The new run's cgroups.
            let a = cgroup(t.path(), A);
            std::thread::sleep(Duration::from_millis(400));
            assert!(!gone(&a), "the reaper removed a started container's cgroups");
            r.take(B); // nothing queued: a no-op
        }

        #[test]
        fn beyond_the_cap_while_containers_start_the_oldest_go_at_once_and_close_removes_the_rest() {
            let t = tempfile::tempdir().unwrap();
            let r = Reaper::start_with(Duration::from_secs(3600), 2).unwrap();
            let (a, b, c) = (cgroup(t.path(), A), cgroup(t.path(), B), cgroup(t.path(), C));
            r.put(A, a.clone());
            r.put(B, b.clone());
            r.put(C, c.clone());
            // A burst of exits alone waits for its end, whatever its size.
            std::thread::sleep(Duration::from_millis(200));
            assert!(
                !gone(&a) && !gone(&b) && !gone(&c),
                "removed during a burst of exits"
            );
            assert_eq!(r.pending(), 3);
            // A container starts: the cap applies.
            r.take("dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd");
            eventually("the oldest removed", || gone(&a));
            assert!(!gone(&b) && !gone(&c));
            r.close();
            assert!(gone(&b) && gone(&c));
            // Closed: a put removes in place.
            let a = cgroup(t.path(), A);
            r.put(A, a.clone());
            assert!(gone(&a));
        }

        #[test]
        fn the_sweep_removes_empty_cgroups_of_containers_not_running_and_nothing_else() {
            let t = tempfile::tempdir().unwrap();
            let (a, b) = (cgroup(t.path(), A), cgroup(t.path(), B));
            // Not a container's: left alone.
            std::fs::create_dir_all(t.path().join("memory/p/other")).unwrap();
            let running: HashSet<String> = [B.to_string()].into();
            let n = Reaper::sweep_with(
                |id| CgroupDirs::under(t.path(), &format!("/p/{id}")).ok(),
                &running,
            );
            assert_eq!(n, 1);
            assert!(gone(&a));
            assert!(!gone(&b));
            assert!(t.path().join("memory/p/other").is_dir());
        }
    }

    use super::*;

    #[test]
    fn a_container_cgroup_is_under_its_parent() {
        let c = Cgroup::new("/nested//deeper/", "abc");
        let d = c.dir("memory").unwrap();
        assert!(d.starts_with(berth_runtime::CGROUP_ROOT), "{}", d.display());
        assert!(d.ends_with("nested/deeper/abc"), "{}", d.display());
        assert!(Cgroup::new("", "abc").dir("pids").unwrap().ends_with("berth/abc"));
    }

    /// A record with a parent that climbs out of the hierarchy (written before create validated
    /// it) names no directory: nothing is read from, or written to, outside the cgroup root.
    #[test]
    fn an_escaping_parent_names_no_cgroup() {
        let c = Cgroup::new("../../../etc", "abc");
        assert_eq!(c.dir("memory"), None);
        assert_eq!(c.read("memory", "memory.usage_in_bytes"), None);
        assert!(c.write("memory", "memory.limit_in_bytes", "1").is_err());
        assert!(c.pids().is_empty());
    }
}
