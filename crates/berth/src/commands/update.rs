//! `berth update`: change resource limits / restart policy of containers.

use serde_json::{json, Map, Value};

use crate::client::Body;

use super::create::{container_path, ram_in_bytes};
use super::{print, status, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth update [OPTIONS] CONTAINER [CONTAINER...]",
    after_help = "Examples:\n  berth update --memory 128m --cpus 1 web"
)]
pub struct Args {
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    cpu_shares: Option<i64>,
    /// Number of CPUs
    #[arg(long)]
    cpus: Option<f64>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period")]
    cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
    /// Memory limit
    #[arg(short = 'm', long)]
    memory: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation")]
    memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    restart: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let mut b = Map::new();
    if let Some(v) = a.cpu_shares {
        b.insert("CpuShares".into(), json!(v));
    }
    if let Some(c) = a.cpus {
        b.insert("NanoCpus".into(), json!((c * 1e9).round() as i64));
    }
    if let Some(m) = &a.memory {
        b.insert("Memory".into(), json!(ram_in_bytes(m)?));
    }
    if let Some(v) = a.cpu_period {
        b.insert("CpuPeriod".into(), json!(v));
    }
    if let Some(v) = a.cpu_quota {
        b.insert("CpuQuota".into(), json!(v));
    }
    if let Some(v) = &a.cpuset_cpus {
        b.insert("CpusetCpus".into(), json!(v));
    }
    if let Some(v) = &a.cpuset_mems {
        b.insert("CpusetMems".into(), json!(v));
    }
    if let Some(v) = a.blkio_weight {
        b.insert("BlkioWeight".into(), json!(v));
    }
    if let Some(m) = &a.memory_reservation {
        b.insert("MemoryReservation".into(), json!(ram_in_bytes(m)?));
    }
    if let Some(m) = &a.memory_swap {
        b.insert(
            "MemorySwap".into(),
            json!(if m == "-1" { -1 } else { ram_in_bytes(m)? }),
        );
    }
    if let Some(p) = a.pids_limit {
        b.insert("PidsLimit".into(), json!(p));
    }
    if let Some(r) = &a.restart {
        let (name, n) = r.split_once(':').unwrap_or((r, "0"));
        b.insert(
            "RestartPolicy".into(),
            json!({"Name": name, "MaximumRetryCount": n.parse::<i64>().unwrap_or(0)}),
        );
    }
    if b.is_empty() {
        anyhow::bail!("you must provide one or more flags when using this command");
    }
    let body = Value::Object(b);
    let mut errs = Vec::new();
    for c in &a.containers {
        match ctx
            .client
            .call("POST", &container_path(c, "/update"), Body::json(&body))
            .and_then(|r| r.json())
        {
            Ok(v) => {
                for w in v["Warnings"].as_array().map(Vec::as_slice).unwrap_or_default() {
                    eprintln!("{}", w.as_str().unwrap_or(""));
                }
                print(&format!("{c}\n"));
            }
            Err(e) => errs.push(format!("{e:#}")),
        }
    }
    if errs.is_empty() {
        Ok(0)
    } else {
        Err(status(1, errs.join("\n")))
    }
}
