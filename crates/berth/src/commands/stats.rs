//! `berth stats`: resource usage per container, redrawn every second (or one sample with
//! `--no-stream`).

use serde_json::Value;

use crate::client::Query;
use crate::format::{bytes_size, human_size};
use crate::json::Val;

use super::create::container_path;
use super::{print, render_list, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth stats [OPTIONS] [CONTAINER...]",
    after_help = "Examples:\n  berth stats --no-stream\n  berth stats --no-stream web"
)]
pub struct Args {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    all: bool,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json' or a Go template)
    #[arg(long)]
    format: Option<String>,
    /// Disable streaming stats and only pull the first result
    #[arg(long = "no-stream")]
    no_stream: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    containers: Vec<String>,
}

fn header() -> Val {
    let h = |k: &str, v: &str| (k.to_owned(), Val::str(v));
    Val::Obj(vec![
        h("BlockIO", "BLOCK I/O"),
        h("CPUPerc", "CPU %"),
        h("Container", "CONTAINER"),
        h("ID", "CONTAINER ID"),
        h("MemPerc", "MEM %"),
        h("MemUsage", "MEM USAGE / LIMIT"),
        h("Name", "NAME"),
        h("NetIO", "NET I/O"),
        h("PIDs", "PIDS"),
    ])
}

/// One stats row from a `GET /containers/ID/stats?stream=0` sample, computed as docker does.
pub fn row(container: &str, s: &Value, trunc: bool) -> Val {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let cpu_delta =
        f(&s["cpu_stats"]["cpu_usage"]["total_usage"]) - f(&s["precpu_stats"]["cpu_usage"]["total_usage"]);
    let sys_delta = f(&s["cpu_stats"]["system_cpu_usage"]) - f(&s["precpu_stats"]["system_cpu_usage"]);
    let mut online = f(&s["cpu_stats"]["online_cpus"]);
    if online == 0.0 {
        online = s["cpu_stats"]["cpu_usage"]["percpu_usage"]
            .as_array()
            .map(|a| a.len() as f64)
            .unwrap_or(0.0);
    }
    let cpu = if sys_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / sys_delta * online * 100.0
    } else {
        0.0
    };
    let mem = &s["memory_stats"];
    let usage = f(&mem["usage"]);
    let v1 = mem["stats"].get("total_inactive_file").map(f);
    let mem_used = match v1 {
        Some(v) if v < usage => usage - v,
        _ => match mem["stats"].get("inactive_file").map(f) {
            Some(v) if v < usage => usage - v,
            _ => usage,
        },
    };
    let limit = f(&mem["limit"]);
    let mem_pct = if limit != 0.0 {
        mem_used / limit * 100.0
    } else {
        0.0
    };
    let (mut rx, mut tx) = (0.0, 0.0);
    if let Some(nets) = s["networks"].as_object() {
        for n in nets.values() {
            rx += f(&n["rx_bytes"]);
            tx += f(&n["tx_bytes"]);
        }
    }
    let (mut rd, mut wr) = (0.0, 0.0);
    for e in s["blkio_stats"]["io_service_bytes_recursive"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        match e["op"].as_str().map(str::to_ascii_lowercase).as_deref() {
            Some("read") => rd += f(&e["value"]),
            Some("write") => wr += f(&e["value"]),
            _ => {}
        }
    }
    let id = s["id"].as_str().unwrap_or("");
    let id = if trunc {
        crate::format::truncate_id(id)
    } else {
        id.to_owned()
    };
    let name = s["name"].as_str().unwrap_or("").trim_start_matches('/');
    let hs = |x: f64| human_size(x as i64);
    Val::obj(vec![
        ("BlockIO", Val::str(format!("{} / {}", hs(rd), hs(wr)))),
        ("CPUPerc", Val::str(format!("{cpu:.2}%"))),
        ("Container", Val::str(container)),
        ("ID", Val::str(id)),
        ("MemPerc", Val::str(format!("{mem_pct:.2}%"))),
        (
            "MemUsage",
            Val::str(format!("{} / {}", bytes_size(mem_used), bytes_size(limit))),
        ),
        ("Name", Val::str(name)),
        ("NetIO", Val::str(format!("{} / {}", hs(rx), hs(tx)))),
        (
            "PIDs",
            Val::str(format!("{}", s["pids_stats"]["current"].as_u64().unwrap_or(0))),
        ),
    ])
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let format = match a.format.as_deref() {
        Some(f) if !f.is_empty() && f != "table" => f.to_owned(),
        _ => "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}".to_owned(),
    };
    loop {
        let names: Vec<String> = if a.containers.is_empty() {
            let mut q = Query::new();
            q.flag("all", a.all);
            let list = ctx.client.get_json(&format!("/containers/json{}", q.encode()))?;
            list.as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(|c| c["Id"].as_str().map(str::to_owned))
                .collect()
        } else {
            a.containers.clone()
        };
        // One sample per container, taken in parallel (each takes a second to measure CPU).
        let samples: Vec<anyhow::Result<serde_json::Value>> = std::thread::scope(|s| {
            let handles: Vec<_> = names
                .iter()
                .map(|n| {
                    let client = ctx.client.clone();
                    s.spawn(move || client.get_json(&container_path(n, "/stats?stream=0")))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("stats thread failed")))
                })
                .collect()
        });
        let mut rows = Vec::new();
        let mut errs = Vec::new();
        for (n, r) in names.iter().zip(samples) {
            match r {
                Ok(s) => rows.push(row(n, &s, !a.no_trunc)),
                Err(e) => errs.push(format!("{e:#}")),
            }
        }
        if a.no_stream {
            print(&render_list(&format, &rows, &header())?);
            if !errs.is_empty() {
                return Err(super::status(1, errs.join("\n")));
            }
            return Ok(0);
        }
        // Live: redraw in place every sample, like docker, until interrupted.
        print(&format!(
            "\x1b[2J\x1b[H{}",
            render_list(&format, &rows, &header())?
        ));
        if !errs.is_empty() && rows.is_empty() && !a.containers.is_empty() {
            return Err(super::status(1, errs.join("\n")));
        }
    }
}
