//! `berth info`: system-wide information in `docker info`'s layout.

use crate::json::Val;
use crate::template::render;

use super::{print, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth info [OPTIONS]",
    after_help = "Examples:\n  berth info\n  berth info --format '{{.Containers}}'"
)]
pub struct Args {
    /// Format output using a custom template ('json' or a Go template)
    #[arg(short = 'f', long)]
    format: Option<String>,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let body = ctx
        .client
        .call("GET", "/info", crate::client::Body::Empty)?
        .bytes()?;
    let v = Val::parse(&body).map_err(|e| anyhow::anyhow!("invalid info response: {e}"))?;
    if let Some(f) = &a.format {
        let f = if f == "json" { "{{json .}}" } else { f.as_str() };
        print(&format!("{}\n", render(f, &v)?));
        return Ok(0);
    }
    let g = |k: &str| v.get(k).map(Val::go_string).unwrap_or_default();
    let list = |x: Option<&Val>| match x {
        Some(Val::Arr(xs)) => xs.iter().map(Val::go_string).collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    let mut o = String::new();
    o.push_str("Client:\n Version:    ");
    o.push_str(env!("CARGO_PKG_VERSION"));
    o.push_str("\n Context:    default\n Debug Mode: false\n\nServer:\n");
    o.push_str(&format!(" Containers: {}\n", g("Containers")));
    o.push_str(&format!(
        "  Running: {}\n  Paused: {}\n  Stopped: {}\n",
        g("ContainersRunning"),
        g("ContainersPaused"),
        g("ContainersStopped")
    ));
    o.push_str(&format!(" Images: {}\n", g("Images")));
    o.push_str(&format!(" Server Version: {}\n", g("ServerVersion")));
    o.push_str(&format!(" Storage Driver: {}\n", g("Driver")));
    if let Some(Val::Arr(ds)) = v.get("DriverStatus") {
        for pair in ds {
            if let Val::Arr(p) = pair {
                if p.len() == 2 {
                    o.push_str(&format!("  {}: {}\n", p[0].go_string(), p[1].go_string()));
                }
            }
        }
    }
    o.push_str(&format!(" Logging Driver: {}\n", g("LoggingDriver")));
    o.push_str(&format!(" Cgroup Driver: {}\n", g("CgroupDriver")));
    if !g("CgroupVersion").is_empty() {
        o.push_str(&format!(" Cgroup Version: {}\n", g("CgroupVersion")));
    }
    o.push_str(" Plugins:\n");
    if let Some(p) = v.get("Plugins") {
        for (k, label) in [
            ("Volume", "Volume"),
            ("Network", "Network"),
            ("Authorization", "Authorization"),
            ("Log", "Log"),
        ] {
            let xs = list(p.get(k));
            if !xs.is_empty() || k == "Volume" || k == "Network" {
                o.push_str(&format!("  {label}: {}\n", xs.join(" ")));
            }
        }
    }
    let swarm = v
        .get("Swarm")
        .and_then(|s| s.get("LocalNodeState"))
        .map(Val::go_string)
        .unwrap_or_else(|| "inactive".into());
    o.push_str(&format!(" Swarm: {swarm}\n"));
    if let Some(Val::Obj(rt)) = v.get("Runtimes") {
        let mut names: Vec<&str> = rt.iter().map(|(k, _)| k.as_str()).collect();
        names.sort();
        o.push_str(&format!(" Runtimes: {}\n", names.join(" ")));
    }
    o.push_str(&format!(" Default Runtime: {}\n", g("DefaultRuntime")));
    o.push_str(&format!(" Init Binary: {}\n", g("InitBinary")));
    let commit = |k: &str| {
        v.get(k)
            .and_then(|c| c.get("ID"))
            .map(Val::go_string)
            .unwrap_or_default()
    };
    o.push_str(&format!(
        " containerd version: {}\n runc version: {}\n init version: {}\n",
        commit("ContainerdCommit"),
        commit("RuncCommit"),
        commit("InitCommit")
    ));
    let sec = list(v.get("SecurityOptions"));
    if !sec.is_empty() {
        o.push_str(" Security Options:\n");
        for s in sec {
            let mut name = String::new();
            let mut profile = None;
            for kv in s.split(',') {
                match kv.split_once('=') {
                    Some(("name", n)) => name = n.to_owned(),
                    Some(("profile", p)) => profile = Some(p.to_owned()),
                    _ => {}
                }
            }
            o.push_str(&format!("  {name}\n"));
            if let Some(p) = profile {
                o.push_str(&format!("   Profile: {p}\n"));
            }
        }
    }
    for (k, label) in [
        ("KernelVersion", "Kernel Version"),
        ("OperatingSystem", "Operating System"),
        ("OSType", "OSType"),
        ("Architecture", "Architecture"),
        ("NCPU", "CPUs"),
    ] {
        o.push_str(&format!(" {label}: {}\n", g(k)));
    }
    let mem: f64 = g("MemTotal").parse().unwrap_or(0.0);
    o.push_str(&format!(" Total Memory: {}\n", crate::format::bytes_size(mem)));
    o.push_str(&format!(
        " Name: {}\n ID: {}\n Docker Root Dir: {}\n",
        g("Name"),
        g("ID"),
        g("DockerRootDir")
    ));
    o.push_str(&format!(
        " Debug Mode: {}\n",
        v.get("Debug").is_some_and(Val::truthy)
    ));
    for (k, label) in [
        ("HttpProxy", "HTTP Proxy"),
        ("HttpsProxy", "HTTPS Proxy"),
        ("NoProxy", "No Proxy"),
    ] {
        if !g(k).is_empty() && g(k) != "<no value>" {
            o.push_str(&format!(" {label}: {}\n", g(k)));
        }
    }
    let labels = list(v.get("Labels"));
    if !labels.is_empty() {
        o.push_str(" Labels:\n");
        for l in labels {
            o.push_str(&format!("  {l}\n"));
        }
    }
    o.push_str(&format!(
        " Experimental: {}\n",
        v.get("ExperimentalBuild").is_some_and(Val::truthy)
    ));
    let insecure = list(
        v.get("RegistryConfig")
            .and_then(|r| r.get("InsecureRegistryCIDRs")),
    );
    if !insecure.is_empty() {
        o.push_str(" Insecure Registries:\n");
        for c in insecure {
            o.push_str(&format!("  {c}\n"));
        }
    }
    o.push_str(&format!(
        " Live Restore Enabled: {}\n\n",
        v.get("LiveRestoreEnabled").is_some_and(Val::truthy)
    ));
    print(&o);
    for w in list(v.get("Warnings")) {
        eprintln!("{w}");
    }
    Ok(0)
}
