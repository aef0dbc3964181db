//! A container's cgroup as the daemon reads and adjusts it: processes (`top`), usage (`stats`)
//! and limits (`update`), on cgroup v1, v2 and the hybrid layout (v1 controllers under
//! `/sys/fs/cgroup/<controller>`, cgroup2 at `/sys/fs/cgroup/unified`). The runtime creates the
//! cgroup at `/<cgroup-parent>/<id>` in every hierarchy; its directories come from
//! [`berth_runtime::CgroupDirs`] here as in the shim, so a parent that could leave the hierarchy
//! (`..`) names no cgroup at all.

use std::path::PathBuf;

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
        let (cpu_total, cpu_user, cpu_kernel, percpu, memory, mem_limit, mem_stats, io);
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
            io = io_v2(self.read("", "io.stat"));
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
        json!({
            "pids_stats": {"current": self.pids().len(), "limit": pids_limit},
            "blkio_stats": {"io_service_bytes_recursive": io},
            "cpu_stats": {
                "cpu_usage": cpu_usage,
                "system_cpu_usage": system_cpu_usage(),
                "online_cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
                "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
            },
            "memory_stats": {"usage": memory, "limit": mem_limit, "stats": mem_stats},
        })
    }

    /// Applies new limits to a running container (`docker update`); 0 / `None` leaves a value.
    pub fn update(
        &self,
        memory: i64,
        memory_swap: i64,
        nano_cpus: i64,
        cpu_shares: i64,
        pids: Option<i64>,
    ) -> std::io::Result<()> {
        if self.dirs.as_ref().is_some_and(CgroupDirs::is_unified) {
            if memory > 0 {
                self.write("", "memory.max", &memory.to_string())?;
            }
            if memory_swap > 0 && memory > 0 {
                self.write("", "memory.swap.max", &(memory_swap - memory).max(0).to_string())?;
            }
            if nano_cpus > 0 {
                self.write("", "cpu.max", &format!("{} 100000", nano_cpus / 10_000))?;
            }
            if cpu_shares > 0 {
                let weight = 1 + ((cpu_shares - 2) * 9999) / 262142;
                self.write("", "cpu.weight", &weight.clamp(1, 10000).to_string())?;
            }
            if let Some(p) = pids {
                self.write(
                    "",
                    "pids.max",
                    &if p <= 0 { "max".to_string() } else { p.to_string() },
                )?;
            }
        } else {
            if memory > 0 {
                // Raising memory above memsw fails: order the writes like runc does.
                let swap = if memory_swap > 0 { memory_swap } else { -1 };
                let cur: i64 = self
                    .read("memory", "memory.limit_in_bytes")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let has_memsw = self
                    .dir("memory")
                    .is_some_and(|d| d.join("memory.memsw.limit_in_bytes").exists());
                if memory > cur && has_memsw {
                    self.write("memory", "memory.memsw.limit_in_bytes", &swap.to_string())?;
                    self.write("memory", "memory.limit_in_bytes", &memory.to_string())?;
                } else {
                    self.write("memory", "memory.limit_in_bytes", &memory.to_string())?;
                    if has_memsw {
                        self.write("memory", "memory.memsw.limit_in_bytes", &swap.to_string())?;
                    }
                }
            }
            if nano_cpus > 0 {
                self.write("cpu", "cpu.cfs_period_us", "100000")?;
                self.write("cpu", "cpu.cfs_quota_us", &(nano_cpus / 10_000).to_string())?;
            }
            if cpu_shares > 0 {
                self.write("cpu", "cpu.shares", &cpu_shares.to_string())?;
            }
            if let Some(p) = pids {
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

fn io_v2(text: Option<String>) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for l in text.unwrap_or_default().lines() {
        let mut it = l.split_whitespace();
        let Some((maj, min)) = it.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        for kv in it {
            if let Some((k, v)) = kv.split_once('=') {
                let op = match k {
                    "rbytes" => "read",
                    "wbytes" => "write",
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
