//! `berth network create|ls|inspect|rm|prune` over `/networks`, as the docker CLI does them.

use std::collections::BTreeMap;

use serde_json::json;

use crate::client::{filters_json, path_escape, Body, Query};
use crate::format::truncate_id;
use crate::json::Val;

use super::{print, render_list, Ctx};

#[derive(clap::Subcommand)]
#[command(defer = true)]
pub enum NetworkCmd {
    /// Create a network
    Create(CreateArgs),
    /// List networks
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
    /// Connect a container to a network
    Connect(ConnectArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
}

#[derive(clap::Args)]
#[command(override_usage = "berth network connect [OPTIONS] NETWORK CONTAINER")]
pub struct ConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long)]
    alias: Vec<String>,
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long)]
    ip: Option<String>,
    network: String,
    container: String,
}

#[derive(clap::Args)]
#[command(override_usage = "berth network disconnect [OPTIONS] NETWORK CONTAINER")]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short = 'f', long)]
    force: bool,
    network: String,
    container: String,
}

#[derive(clap::Args)]
#[command(
    override_usage = "berth network create [OPTIONS] NETWORK",
    after_help = "Examples:\n  berth network create --subnet 10.123.0.0/24 backend\n  berth network create --internal isolated"
)]
pub struct CreateArgs {
    /// Driver to manage the Network
    #[arg(short = 'd', long, default_value = "bridge")]
    driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long)]
    subnet: Vec<String>,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long)]
    gateway: Vec<String>,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range")]
    ip_range: Vec<String>,
    /// Restrict external access to the network
    #[arg(long)]
    internal: bool,
    /// Enable manual container attachment
    #[arg(long)]
    attachable: bool,
    /// Set metadata on a network
    #[arg(long)]
    label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    opt: Vec<String>,
    name: String,
}

#[derive(clap::Args)]
#[command(override_usage = "berth network ls [OPTIONS]")]
pub struct LsArgs {
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Only display network IDs
    #[arg(short = 'q', long)]
    quiet: bool,
}

#[derive(clap::Args)]
#[command(override_usage = "berth network inspect [OPTIONS] NETWORK [NETWORK...]")]
pub struct InspectArgs {
    #[arg(short = 'f', long)]
    format: Option<String>,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(clap::Args)]
#[command(override_usage = "berth network rm NETWORK [NETWORK...]")]
pub struct RmArgs {
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(clap::Args)]
#[command(override_usage = "berth network prune [OPTIONS]")]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    filter: Vec<String>,
}

fn kv(list: &[String]) -> BTreeMap<String, String> {
    list.iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

pub fn run(ctx: &Ctx, cmd: NetworkCmd) -> anyhow::Result<i32> {
    match cmd {
        NetworkCmd::Create(a) => create(ctx, a),
        NetworkCmd::Ls(a) => ls(ctx, a),
        NetworkCmd::Inspect(a) => super::inspect::run_network(ctx, &a.names, a.format.as_deref()),
        NetworkCmd::Rm(a) => rm(ctx, a),
        NetworkCmd::Prune(a) => prune(ctx, a),
        NetworkCmd::Connect(a) => {
            let ipam = match &a.ip {
                Some(ip) => json!({"IPv4Address": ip}),
                None => json!({}),
            };
            let body = json!({"Container": a.container, "EndpointConfig": {"IPAMConfig": ipam, "Aliases": a.alias, "DriverOpts": {}}});
            ctx.client.call(
                "POST",
                &format!("/networks/{}/connect", path_escape(&a.network)),
                Body::json(&body),
            )?;
            Ok(0)
        }
        NetworkCmd::Disconnect(a) => {
            let body = json!({"Container": a.container, "Force": a.force});
            ctx.client.call(
                "POST",
                &format!("/networks/{}/disconnect", path_escape(&a.network)),
                Body::json(&body),
            )?;
            Ok(0)
        }
    }
}

fn create(ctx: &Ctx, a: CreateArgs) -> anyhow::Result<i32> {
    let mut config = Vec::new();
    for (i, s) in a.subnet.iter().enumerate() {
        let mut c = json!({"Subnet": s});
        if let Some(g) = a.gateway.get(i) {
            c["Gateway"] = json!(g);
        }
        if let Some(r) = a.ip_range.get(i) {
            c["IPRange"] = json!(r);
        }
        config.push(c);
    }
    if a.subnet.is_empty() && (!a.gateway.is_empty() || !a.ip_range.is_empty()) {
        anyhow::bail!(
            "Error response from daemon: every ip-range or gateway must have a corresponding subnet"
        );
    }
    let body = json!({
        "Name": a.name, "CheckDuplicate": true, "Driver": a.driver, "Scope": "",
        "IPAM": {"Driver": "default", "Options": {}, "Config": config},
        "Internal": a.internal, "Attachable": a.attachable, "Ingress": false, "ConfigOnly": false,
        "ConfigFrom": null, "Options": kv(&a.opt), "Labels": kv(&a.label),
    });
    let v = ctx
        .client
        .call("POST", "/networks/create", Body::json(&body))?
        .json()?;
    print(&format!("{}\n", v["Id"].as_str().unwrap_or("")));
    Ok(0)
}

fn header() -> Val {
    let h = |k: &str, v: &str| (k.to_owned(), Val::str(v));
    Val::Obj(vec![
        h("CreatedAt", "CREATED"),
        h("Driver", "DRIVER"),
        h("ID", "NETWORK ID"),
        h("IPv6", "IPV6"),
        h("Internal", "INTERNAL"),
        h("Labels", "LABELS"),
        h("Name", "NAME"),
        h("Scope", "SCOPE"),
    ])
}

fn ls(ctx: &Ctx, a: LsArgs) -> anyhow::Result<i32> {
    let mut q = Query::new();
    if let Some(f) = filters_json(&a.filter)? {
        q.add("filters", f);
    }
    let list = ctx.client.get_json(&format!("/networks{}", q.encode()))?;
    let mut nets: Vec<serde_json::Value> = list.as_array().cloned().unwrap_or_default();
    nets.sort_by(|x, y| x["Name"].as_str().cmp(&y["Name"].as_str()));
    let mut rows = Vec::new();
    for n in &nets {
        let s = |k: &str| n[k].as_str().unwrap_or("").to_string();
        let id = if a.no_trunc {
            s("Id")
        } else {
            truncate_id(&s("Id"))
        };
        let labels: Vec<String> = n["Labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect()
            })
            .unwrap_or_default();
        rows.push(Val::obj(vec![
            ("CreatedAt", Val::str(s("Created"))),
            ("Driver", Val::str(s("Driver"))),
            ("ID", Val::str(id)),
            (
                "IPv6",
                Val::str(n["EnableIPv6"].as_bool().unwrap_or(false).to_string()),
            ),
            (
                "Internal",
                Val::str(n["Internal"].as_bool().unwrap_or(false).to_string()),
            ),
            ("Labels", Val::str(labels.join(","))),
            ("Name", Val::str(s("Name"))),
            ("Scope", Val::str(s("Scope"))),
        ]));
    }
    let format = match (&a.format, a.quiet) {
        (_, true) => "{{.ID}}".to_string(),
        (Some(f), false) if !f.is_empty() => f.clone(),
        _ => "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}".to_string(),
    };
    print(&render_list(&format, &rows, &header())?);
    Ok(0)
}

fn rm(ctx: &Ctx, a: RmArgs) -> anyhow::Result<i32> {
    let mut code = 0;
    for n in &a.names {
        let r = ctx
            .client
            .get_json(&format!("/networks/{}", path_escape(n)))
            .and_then(|_| {
                ctx.client
                    .call("DELETE", &format!("/networks/{}", path_escape(n)), Body::Empty)
            });
        match r {
            Ok(_) => print(&format!("{n}\n")),
            Err(e) => {
                eprintln!("{e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

fn prune(ctx: &Ctx, a: PruneArgs) -> anyhow::Result<i32> {
    if !a.force
        && !super::prune::confirm(
            "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue?",
        )
    {
        return Ok(0);
    }
    let mut q = Query::new();
    if let Some(f) = filters_json(&a.filter)? {
        q.add("filters", f);
    }
    let v = ctx
        .client
        .call("POST", &format!("/networks/prune{}", q.encode()), Body::Empty)?
        .json()?;
    let deleted: Vec<&str> = v["NetworksDeleted"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    if !deleted.is_empty() {
        print(&format!("Deleted Networks:\n{}\n", deleted.join("\n")));
    }
    Ok(0)
}
