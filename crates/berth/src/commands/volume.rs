//! `berth volume create|ls|inspect|rm|prune`: the `/volumes` endpoints, with docker's flags,
//! tables and `--format`.

use crate::client::{filters_json, path_escape, Body, Query};
use crate::json::Val;

use super::{print, render_list, status, Ctx};

#[derive(clap::Subcommand)]
#[command(defer = true)]
pub enum Cmd {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(name = "ls", visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// Remove one or more volumes
    #[command(name = "rm", visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove unused local volumes
    Prune(PruneArgs),
}

#[derive(clap::Args)]
#[command(
    override_usage = "berth volume create [OPTIONS] [VOLUME]",
    after_help = "Examples:\n  berth volume create data\n  berth volume create --label env=test -o type=tmpfs -o device=tmpfs -o o=size=1m scratch"
)]
pub struct CreateArgs {
    /// Specify volume driver name
    #[arg(short = 'd', long, default_value = "local")]
    driver: String,
    /// Set metadata for a volume
    #[arg(long)]
    label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    opt: Vec<String>,
    /// Specify volume name
    #[arg(long = "name", hide = true)]
    name_flag: Option<String>,
    name: Option<String>,
}

#[derive(clap::Args)]
#[command(
    override_usage = "berth volume ls [OPTIONS]",
    after_help = "Examples:\n  berth volume ls\n  berth volume ls -q -f dangling=true\n  berth volume ls --format '{{.Name}} {{.Mountpoint}}'"
)]
pub struct LsArgs {
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json' or a Go template)
    #[arg(long)]
    format: Option<String>,
    /// Only display volume names
    #[arg(short = 'q', long)]
    quiet: bool,
}

#[derive(clap::Args)]
#[command(
    override_usage = "berth volume inspect [OPTIONS] VOLUME [VOLUME...]",
    after_help = "Examples:\n  berth volume inspect data\n  berth volume inspect -f '{{.Mountpoint}}' data"
)]
pub struct InspectArgs {
    /// Format output using a custom template ('json' or a Go template)
    #[arg(short = 'f', long)]
    format: Option<String>,
    #[arg(required = true, value_name = "VOLUME")]
    names: Vec<String>,
}

#[derive(clap::Args)]
#[command(
    override_usage = "berth volume rm [OPTIONS] VOLUME [VOLUME...]",
    after_help = "Examples:\n  berth volume rm data"
)]
pub struct RmArgs {
    /// Force the removal of one or more volumes
    #[arg(short = 'f', long)]
    force: bool,
    #[arg(required = true, value_name = "VOLUME")]
    names: Vec<String>,
}

#[derive(clap::Args)]
#[command(
    override_usage = "berth volume prune [OPTIONS]",
    after_help = "Examples:\n  berth volume prune -f\n  berth volume prune -a -f --filter label=env=test"
)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short = 'a', long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    force: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long = "filter")]
    filter: Vec<String>,
}

pub fn run(ctx: &Ctx, cmd: Cmd) -> anyhow::Result<i32> {
    match cmd {
        Cmd::Create(a) => create(ctx, a),
        Cmd::Ls(a) => ls(ctx, a),
        Cmd::Inspect(a) => super::inspect::run_volume(ctx, a.names, a.format),
        Cmd::Rm(a) => rm(ctx, a),
        Cmd::Prune(a) => prune(ctx, a),
    }
}

fn kv_map(items: &[String], what: &str) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let mut m = serde_json::Map::new();
    for i in items {
        let (k, v) = match i.split_once('=') {
            Some((k, v)) => (k, v),
            None if what == "label" => (i.as_str(), ""),
            None => {
                return Err(status(
                    125,
                    format!(
                        "invalid argument \"{i}\" for \"-o, --opt\" flag: invalid key value pair format: {i}"
                    ),
                ))
            }
        };
        m.insert(k.to_owned(), serde_json::Value::String(v.to_owned()));
    }
    Ok(m)
}

fn create(ctx: &Ctx, a: CreateArgs) -> anyhow::Result<i32> {
    let name = match (a.name_flag, a.name) {
        (Some(f), Some(p)) if f != p => {
            return Err(status(
                1,
                "conflicting options: either specify --name or provide positional arg, not both",
            ))
        }
        (f, p) => p.or(f),
    };
    let mut body = serde_json::Map::new();
    body.insert("Driver".into(), a.driver.into());
    let opts = kv_map(&a.opt, "opt")?;
    if !opts.is_empty() {
        body.insert("DriverOpts".into(), opts.into());
    }
    let labels = kv_map(&a.label, "label")?;
    if !labels.is_empty() {
        body.insert("Labels".into(), labels.into());
    }
    if let Some(n) = name {
        body.insert("Name".into(), n.into());
    }
    let v = ctx
        .client
        .call(
            "POST",
            "/volumes/create",
            Body::json(&serde_json::Value::Object(body)),
        )?
        .json()?;
    print(&format!("{}\n", v["Name"].as_str().unwrap_or("")));
    Ok(0)
}

fn header() -> Val {
    let h = |k: &str, v: &str| (k.to_owned(), Val::str(v));
    Val::Obj(vec![
        h("Driver", "DRIVER"),
        h("Labels", "LABELS"),
        h("Links", "LINKS"),
        h("Mountpoint", "MOUNTPOINT"),
        h("Name", "VOLUME NAME"),
        h("Scope", "SCOPE"),
        h("Size", "SIZE"),
    ])
}

fn labels_text(v: &serde_json::Value) -> String {
    let mut pairs: Vec<String> = v
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    pairs.sort();
    pairs.join(",")
}

fn ls(ctx: &Ctx, a: LsArgs) -> anyhow::Result<i32> {
    let mut q = Query::new();
    if let Some(f) = filters_json(&a.filter)? {
        q.add("filters", f);
    }
    let r = ctx.client.get_json(&format!("/volumes{}", q.encode()))?;
    let mut vols: Vec<&serde_json::Value> = r["Volumes"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    vols.sort_by(|x, y| x["Name"].as_str().cmp(&y["Name"].as_str()));
    let s = |v: &serde_json::Value, k: &str| Val::str(v[k].as_str().unwrap_or("").to_owned());
    let rows: Vec<Val> = vols
        .iter()
        .map(|v| {
            Val::obj(vec![
                ("Driver", s(v, "Driver")),
                ("Labels", Val::str(labels_text(&v["Labels"]))),
                ("Links", Val::str("N/A")),
                ("Mountpoint", s(v, "Mountpoint")),
                ("Name", s(v, "Name")),
                ("Scope", s(v, "Scope")),
                ("Size", Val::str("N/A")),
            ])
        })
        .collect();
    let format = match (&a.format, a.quiet) {
        (Some(f), _) if !f.is_empty() && f != "table" => f.clone(),
        (_, true) => "{{.Name}}".to_owned(),
        _ => "table {{.Driver}}\t{{.Name}}".to_owned(),
    };
    print(&render_list(&format, &rows, &header())?);
    Ok(0)
}

fn rm(ctx: &Ctx, a: RmArgs) -> anyhow::Result<i32> {
    let mut q = Query::new();
    q.flag("force", a.force);
    let mut errs = Vec::new();
    for n in &a.names {
        match ctx.client.call(
            "DELETE",
            &format!("/volumes/{}{}", path_escape(n), q.encode()),
            Body::Empty,
        ) {
            Ok(_) => print(&format!("{n}\n")),
            Err(e) => errs.push(format!("{e:#}")),
        }
    }
    if errs.is_empty() {
        Ok(0)
    } else {
        Err(status(1, errs.join("\n")))
    }
}

fn prune(ctx: &Ctx, a: PruneArgs) -> anyhow::Result<i32> {
    let warning = if a.all {
        "WARNING! This will remove all local volumes not used by at least one container."
    } else {
        "WARNING! This will remove anonymous local volumes not used by at least one container."
    };
    if !a.force && !super::prune::confirm(&format!("{warning}\nAre you sure you want to continue?")) {
        return Ok(0);
    }
    let mut filters = a.filter.clone();
    filters.push(format!("all={}", a.all));
    let r = ctx
        .client
        .post(&format!("/volumes/prune{}", super::prune::query(&filters)?))?
        .json()?;
    let mut out = super::prune::named(&r, "VolumesDeleted", "Deleted Volumes");
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&super::prune::total(r["SpaceReclaimed"].as_u64().unwrap_or(0)));
    print(&out);
    Ok(0)
}
