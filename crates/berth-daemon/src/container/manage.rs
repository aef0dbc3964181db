//! Running-container management: `pause`/`unpause`, `top`, `stats`, `update`, and restart
//! policies with docker's backoff.

use std::sync::Arc;
use std::time::Duration;

use berth_api::models::RestartPolicyNameEnum;
use berth_shim_proto::Request;
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::cgroups::{network_stats, Cgroup};
use crate::container::{Entry, Status};
use crate::error::{Error, Result};
use crate::{shim, Daemon};

impl Daemon {
    pub(crate) fn cgroup(&self, entry: &Entry) -> Cgroup {
        let parent = entry
            .with(|d| d.host_config.cgroup_parent.clone())
            .filter(|p| !p.is_empty());
        Cgroup::new(parent.as_deref().unwrap_or(&self.config.cgroup_parent), &entry.id)
    }

    /// `docker pause`: freezes every process of the container.
    pub async fn pause(self: &Arc<Self>, key: &str) -> Result<()> {
        let entry = self.find(key)?;
        let _op = entry.op.lock().await;
        match entry.status() {
            Status::Running => {}
            Status::Paused => {
                return Err(Error::conflict(format!(
                    "Container {} is already paused",
                    entry.id
                )))
            }
            _ => return Err(Error::NotRunning { id: entry.id.clone() }),
        }
        let resp = shim::call(&self.shim_socket(&entry.id), &Request::Pause).await?;
        if let Some(e) = resp.error {
            return Err(Error::internal(format!(
                "cannot pause container {}: {e}",
                entry.id
            )));
        }
        entry.update(|d| d.state.status = Status::Paused);
        self.persist(&entry)?;
        self.events
            .emit("container", "pause", &entry.id, self.container_attrs(&entry));
        Ok(())
    }

    /// `docker unpause`.
    pub async fn unpause(self: &Arc<Self>, key: &str) -> Result<()> {
        let entry = self.find(key)?;
        let _op = entry.op.lock().await;
        if entry.status() != Status::Paused {
            return Err(Error::conflict(format!("Container {} is not paused", entry.id)));
        }
        let resp = shim::call(&self.shim_socket(&entry.id), &Request::Resume).await?;
        if let Some(e) = resp.error {
            return Err(Error::internal(format!(
                "cannot unpause container {}: {e}",
                entry.id
            )));
        }
        entry.update(|d| d.state.status = Status::Running);
        self.persist(&entry)?;
        self.events
            .emit("container", "unpause", &entry.id, self.container_attrs(&entry));
        Ok(())
    }

    /// `docker top`: the host's `ps` (default `-ef`) limited to the container's processes.
    pub async fn top(self: &Arc<Self>, key: &str, ps_args: &str) -> Result<serde_json::Value> {
        let entry = self.find(key)?;
        if !entry.status().is_running() {
            return Err(Error::NotRunning { id: entry.id.clone() });
        }
        let pids: std::collections::HashSet<i32> = self.cgroup(&entry).pids().into_iter().collect();
        let args: Vec<&str> = if ps_args.trim().is_empty() {
            vec!["-ef"]
        } else {
            ps_args.split_whitespace().collect()
        };
        let out = tokio::process::Command::new("ps")
            .args(&args)
            .output()
            .await
            .map_err(|e| Error::io("error running ps", e))?;
        if !out.status.success() {
            return Err(Error::internal(format!(
                "ps: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        parse_ps(&String::from_utf8_lossy(&out.stdout), &pids)
    }

    /// `docker stats`: one sample (`stream=false`, with a second sample a second later for CPU
    /// deltas, as dockerd does) or a sample every second until the client leaves.
    pub fn stats(self: &Arc<Self>, key: &str, stream: bool, one_shot: bool) -> Result<mpsc::Receiver<Bytes>> {
        let entry = self.find(key)?;
        let daemon = self.clone();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let cg = daemon.cgroup(&entry);
            let mut pre = serde_json::json!({"cpu_usage": {"total_usage": 0}, "system_cpu_usage": 0});
            let mut pre_read = berth_types::time::rfc3339_nano(0);
            let mut first = !one_shot;
            loop {
                let running = entry.status().is_running();
                let mut s = if running {
                    cg.stats()
                } else {
                    serde_json::json!({"cpu_stats": {}, "memory_stats": {}, "pids_stats": {}, "blkio_stats": {}})
                };
                let now = berth_types::time::rfc3339_nano(berth_types::time::now_nanos());
                let cpu = s["cpu_stats"].clone();
                s["read"] = serde_json::json!(now);
                s["preread"] = serde_json::json!(pre_read);
                s["precpu_stats"] = pre.clone();
                s["name"] = serde_json::json!(format!("/{}", entry.name()));
                s["id"] = serde_json::json!(entry.id);
                let pid = entry.with(|d| d.state.pid);
                if running && pid > 0 {
                    s["networks"] = network_stats(pid);
                }
                pre = cpu;
                pre_read = now;
                if first {
                    // The first sample only primes the CPU delta.
                    first = false;
                    tokio::select! {
                        _ = tx.closed() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
                let mut b = serde_json::to_vec(&s).unwrap_or_default();
                b.push(b'\n');
                if tx.send(Bytes::from(b)).await.is_err() || !stream || !running {
                    return;
                }
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
        Ok(rx)
    }

    /// `docker update`: new limits on the record and, when running, on its cgroup.
    pub async fn update(
        self: &Arc<Self>,
        key: &str,
        body: berth_api::models::HostConfig,
    ) -> Result<Vec<String>> {
        let entry = self.find(key)?;
        let _op = entry.op.lock().await;
        let mut body = body;
        // What `docker update` cannot change is refused (dockerd has no flag for most of it),
        // and the rest is checked as at create; a kernel without a file for it warns.
        let refuse = |what: &str| Error::invalid(format!("{what} cannot be changed by berth's update"));
        if body.cpu_realtime_period.unwrap_or(0) != 0 || body.cpu_realtime_runtime.unwrap_or(0) != 0 {
            return Err(crate::container::create::no_realtime());
        }
        if body.kernel_memory_tcp.unwrap_or(0) != 0 {
            return Err(refuse("KernelMemoryTCP"));
        }
        if body.memory_swappiness.is_some_and(|s| s != -1) || body.oom_kill_disable.unwrap_or(false) {
            return Err(refuse("--memory-swappiness or --oom-kill-disable"));
        }
        let per_device = [
            &body.blkio_weight_device.as_ref().map(Vec::len),
            &body.blkio_device_read_bps.as_ref().map(Vec::len),
            &body.blkio_device_write_bps.as_ref().map(Vec::len),
            &body.blkio_device_read_iops.as_ref().map(Vec::len),
            &body.blkio_device_write_iops.as_ref().map(Vec::len),
        ];
        if per_device.iter().any(|n| n.unwrap_or(0) > 0) {
            return Err(refuse("Per-device block I/O settings"));
        }
        let warnings = crate::container::create::check_update(&mut body)?;
        // dockerd's rules between `--cpus` and the CFS period/quota, in the request and against
        // what the container already has (a restart would otherwise undo one with the other).
        let (nano, period, quota) = (
            body.nano_cpus.unwrap_or(0),
            body.cpu_period.unwrap_or(0),
            body.cpu_quota.unwrap_or(0),
        );
        let (had_nano, had_period, had_quota) = entry.with(|d| {
            let h = &d.host_config;
            (
                h.nano_cpus.unwrap_or(0),
                h.cpu_period.unwrap_or(0),
                h.cpu_quota.unwrap_or(0),
            )
        });
        let conflict = |what: &str| {
            Error::invalid(format!(
                "Cannot update container {}: Conflicting options: {what}",
                entry.id
            ))
        };
        if nano > 0 && (period > 0 || quota > 0) {
            return Err(conflict("Nano CPUs and CPU Period/Quota cannot both be set"));
        }
        if nano > 0 && had_period > 0 {
            return Err(conflict(
                "Nano CPUs cannot be updated as CPU Period has already been set",
            ));
        }
        if nano > 0 && had_quota > 0 {
            return Err(conflict(
                "Nano CPUs cannot be updated as CPU Quota has already been set",
            ));
        }
        if period > 0 && had_nano > 0 {
            return Err(conflict(
                "CPU Period cannot be updated as NanoCPUs has already been set",
            ));
        }
        if quota > 0 && had_nano > 0 {
            return Err(conflict(
                "CPU Quota cannot be updated as NanoCPUs has already been set",
            ));
        }
        // As dockerd (20.10's `UpdateContainer`): a new memory limit without a swap limit keeps
        // the recorded one (a limit set at create is twice the memory) and may not exceed it, so
        // a container made without limits (swap 0) needs `--memory-swap` with its first
        // `--memory`.
        let mut memory_swap = body.memory_swap.unwrap_or(0);
        let memory = body.memory.unwrap_or(0);
        if memory > 0 && memory_swap == 0 {
            let had = entry.with(|d| d.host_config.memory_swap.unwrap_or(0));
            if memory > had {
                return Err(Error::invalid(format!(
                    "Cannot update container {}: Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time",
                    entry.id
                )));
            }
            memory_swap = had;
        }
        let limits = crate::cgroups::Limits {
            memory,
            memory_swap,
            memory_reservation: body.memory_reservation.unwrap_or(0),
            nano_cpus: body.nano_cpus.unwrap_or(0),
            cpu_shares: body.cpu_shares.unwrap_or(0),
            cpu_period: body.cpu_period.unwrap_or(0),
            cpu_quota: body.cpu_quota.unwrap_or(0),
            cpuset_cpus: body.cpuset_cpus.clone().unwrap_or_default(),
            cpuset_mems: body.cpuset_mems.clone().unwrap_or_default(),
            blkio_weight: body.blkio_weight.unwrap_or(0),
            // An update to "unlimited" (0 or -1) is recorded as 0, as dockerd records it.
            pids: body.pids_limit.map(|p| p.max(0)),
        };
        if limits.memory != 0 && limits.memory < 6 * 1024 * 1024 {
            return Err(Error::invalid("Minimum memory limit allowed is 6MB"));
        }
        if let Some(p) = body.restart_policy.as_ref() {
            if entry.with(|d| d.host_config.auto_remove.unwrap_or(false))
                && !matches!(
                    p.name,
                    None | Some(RestartPolicyNameEnum::NO | RestartPolicyNameEnum::EMPTY)
                )
            {
                return Err(Error::invalid(
                    "Restart policy cannot be updated because AutoRemove is enabled for the container",
                ));
            }
        }
        if entry.status().is_running() {
            self.cgroup(&entry)
                .update(&limits)
                .map_err(|e| Error::io(format!("Cannot update container {}", entry.id), e))?;
        }
        entry.update(|d| {
            let h = &mut d.host_config;
            if limits.memory != 0 {
                h.memory = Some(limits.memory);
            }
            if limits.memory_swap != 0 {
                h.memory_swap = Some(limits.memory_swap);
            }
            if limits.nano_cpus != 0 {
                h.nano_cpus = Some(limits.nano_cpus);
            }
            if limits.cpu_shares != 0 {
                h.cpu_shares = Some(limits.cpu_shares);
            }
            if limits.pids.is_some() {
                h.pids_limit = limits.pids;
            }
            if limits.memory_reservation != 0 {
                h.memory_reservation = Some(limits.memory_reservation);
            }
            if limits.cpu_period != 0 {
                h.cpu_period = Some(limits.cpu_period);
            }
            if limits.cpu_quota != 0 {
                h.cpu_quota = Some(limits.cpu_quota);
            }
            if !limits.cpuset_cpus.is_empty() {
                h.cpuset_cpus = Some(limits.cpuset_cpus.clone());
            }
            if !limits.cpuset_mems.is_empty() {
                h.cpuset_mems = Some(limits.cpuset_mems.clone());
            }
            if limits.blkio_weight != 0 {
                h.blkio_weight = Some(limits.blkio_weight);
            }
            if body.restart_policy.is_some() {
                h.restart_policy = body.restart_policy.clone();
            }
        });
        self.persist(&entry)?;
        self.events
            .emit("container", "update", &entry.id, self.container_attrs(&entry));
        Ok(warnings)
    }

    /// Whether the restart policy restarts the container after an exit with `code`.
    pub(crate) fn should_restart(&self, entry: &Entry, code: i64) -> bool {
        entry.with(|d| {
            if d.manually_stopped || d.host_config.auto_remove.unwrap_or(false) {
                return false;
            }
            let Some(p) = d.host_config.restart_policy.as_ref() else {
                return false;
            };
            match p.name {
                Some(RestartPolicyNameEnum::ALWAYS | RestartPolicyNameEnum::UNLESS_STOPPED) => true,
                Some(RestartPolicyNameEnum::ON_FAILURE) => {
                    let max = p.maximum_retry_count.unwrap_or(0);
                    code != 0 && (max == 0 || d.restart_count < max)
                }
                _ => false,
            }
        })
    }

    /// Restarts after the policy's backoff, unless someone stopped or removed it meanwhile.
    pub(crate) fn schedule_restart(self: &Arc<Self>, entry: Arc<Entry>) {
        let ran_for = entry.with(|d| (d.state.finished_at - d.state.started_at).max(0));
        let delay = {
            let mut d = entry.restart_delay.lock().unwrap();
            *d = if ran_for >= 10_000_000_000 || d.is_zero() {
                Duration::from_millis(100)
            } else {
                (*d * 2).min(Duration::from_secs(60))
            };
            *d
        };
        entry.update(|d| {
            d.state.status = Status::Restarting;
            d.restart_count += 1;
        });
        let _ = self.persist(&entry);
        let daemon = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _op = entry.op.lock().await;
            if entry.status() != Status::Restarting || entry.life.borrow().removed {
                return;
            }
            if let Err(e) = daemon.start_locked(&entry).await {
                eprintln!("berthd: restarting {} failed: {e}", entry.id);
                entry.update(|d| d.state.status = Status::Exited);
                let _ = daemon.persist(&entry);
            } else {
                daemon
                    .events
                    .emit("container", "restart", &entry.id, daemon.container_attrs(&entry));
            }
        });
    }

    /// At daemon start: containers whose policy says they should be up but are not.
    pub(crate) fn start_policy_containers(self: &Arc<Self>) {
        for entry in self.all() {
            let wanted = entry.with(|d| {
                let policy = d.host_config.restart_policy.as_ref().and_then(|p| p.name);
                matches!(d.state.status, Status::Exited | Status::Restarting)
                    && !d.host_config.auto_remove.unwrap_or(false)
                    && match policy {
                        Some(RestartPolicyNameEnum::ALWAYS) => true,
                        Some(RestartPolicyNameEnum::UNLESS_STOPPED) => !d.manually_stopped,
                        _ => false,
                    }
            });
            if wanted {
                entry.update(|d| d.manually_stopped = false);
                let daemon = self.clone();
                tokio::spawn(async move {
                    let _op = entry.op.lock().await;
                    if !entry.status().is_running() {
                        if let Err(e) = daemon.start_locked(&entry).await {
                            eprintln!("berthd: starting {} for its restart policy failed: {e}", entry.id);
                        }
                    }
                });
            }
        }
    }
}

/// Keeps the header and the rows of `ps` output whose PID column is one of `pids`.
fn parse_ps(out: &str, pids: &std::collections::HashSet<i32>) -> Result<serde_json::Value> {
    let mut lines = out.lines();
    let header = lines.next().unwrap_or_default();
    let titles: Vec<&str> = header.split_whitespace().collect();
    let pid_col = titles
        .iter()
        .position(|t| *t == "PID")
        .ok_or_else(|| Error::internal("Couldn't find PID field in ps output".to_string()))?;
    let mut procs = Vec::new();
    for l in lines {
        let fields: Vec<&str> = l.split_whitespace().collect();
        if fields.len() < titles.len() {
            continue;
        }
        let Ok(pid) = fields[pid_col].parse::<i32>() else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        // The last column (the command) may contain spaces.
        let mut row: Vec<String> = fields[..titles.len() - 1].iter().map(|s| s.to_string()).collect();
        row.push(fields[titles.len() - 1..].join(" "));
        procs.push(row);
    }
    Ok(serde_json::json!({"Titles": titles, "Processes": procs}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_output_is_filtered_by_pid() {
        let out = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:01 /sbin/init\nroot 42 1 0 10:01 ? 00:00:00 sleep 60\n";
        let pids = [42].into_iter().collect();
        let v = parse_ps(out, &pids).unwrap();
        assert_eq!(v["Titles"][7], "CMD");
        assert_eq!(v["Processes"].as_array().unwrap().len(), 1);
        assert_eq!(v["Processes"][0][7], "sleep 60");
    }
}
