//! `berth image prune`, `berth container prune` and `berth system prune`, with docker's prompts,
//! requests and output (`Deleted Images:` / `untagged: …` / `deleted: …`, `Total reclaimed space:`).
//! `system prune` is, as in docker's CLI, the container, network, [volume,] image and build-cache
//! prunes one after the other.

use std::io::BufRead;

use crate::client::{filters_json, Query};
use crate::format::human_size_prec;

use super::{print, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth image prune [OPTIONS]",
    after_help = "Examples:\n  berth image prune -f\n  berth image prune -a -f --filter until=24h\n  berth image prune -f --filter label=stage=test"
)]
pub struct ImageArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short = 'a', long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    filter: Vec<String>,
}

#[derive(clap::Args)]
#[command(
    override_usage = "berth container prune [OPTIONS]",
    after_help = "Examples:\n  berth container prune -f\n  berth container prune -f --filter until=1h --filter label=tmp"
)]
pub struct ContainerArgs {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    filter: Vec<String>,
}

#[derive(clap::Args)]
#[command(
    override_usage = "berth system prune [OPTIONS]",
    after_help = "Examples:\n  berth system prune -f\n  berth system prune -a -f --filter label=stage=test"
)]
pub struct SystemArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short = 'a', long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    force: bool,
    /// Prune anonymous volumes
    #[arg(long)]
    volumes: bool,
    /// Provide filter values (e.g. "label=<key>=<value>")
    #[arg(long = "filter")]
    filter: Vec<String>,
}

/// docker's `prompt.Confirm`: the message and ` [y/N] ` on stdout, then one line of stdin; only
/// `y`/`Y` proceeds.
pub(super) fn confirm(message: &str) -> bool {
    print(&format!("{message} [y/N] "));
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    line.trim().eq_ignore_ascii_case("y")
}

/// go-units `HumanSize` (four significant digits), as `Total reclaimed space:` prints it.
pub(super) fn total(bytes: u64) -> String {
    format!("Total reclaimed space: {}\n", human_size_prec(bytes as f64, 4))
}

pub(super) fn query(filters: &[String]) -> anyhow::Result<String> {
    let mut q = Query::new();
    if let Some(f) = filters_json(filters)? {
        q.add("filters", f);
    }
    Ok(q.encode())
}

/// `POST /images/prune`; returns the bytes reclaimed and docker's `Deleted Images:` text.
fn prune_images(ctx: &Ctx, all: bool, filters: &[String]) -> anyhow::Result<(u64, String)> {
    let mut f = filters.to_vec();
    f.push(format!("dangling={}", !all));
    let r = ctx.client.post(&format!("/images/prune{}", query(&f)?))?.json()?;
    let items = r["ImagesDeleted"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if items.is_empty() {
        return Ok((0, String::new()));
    }
    let mut out = String::from("Deleted Images:\n");
    for it in items {
        match (it["Untagged"].as_str(), it["Deleted"].as_str()) {
            (Some(u), _) if !u.is_empty() => out.push_str(&format!("untagged: {u}\n")),
            (_, d) => out.push_str(&format!("deleted: {}\n", d.unwrap_or(""))),
        }
    }
    Ok((r["SpaceReclaimed"].as_u64().unwrap_or(0), out))
}

/// `POST /containers/prune`; returns the bytes reclaimed and docker's `Deleted Containers:` text.
fn prune_containers(ctx: &Ctx, filters: &[String]) -> anyhow::Result<(u64, String)> {
    let r = ctx
        .client
        .post(&format!("/containers/prune{}", query(filters)?))?
        .json()?;
    let ids = r["ContainersDeleted"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if ids.is_empty() {
        return Ok((0, String::new()));
    }
    let mut out = String::from("Deleted Containers:\n");
    for id in ids {
        out.push_str(id.as_str().unwrap_or(""));
        out.push('\n');
    }
    Ok((r["SpaceReclaimed"].as_u64().unwrap_or(0), out))
}

/// The `list_key` entries of a prune answer under `heading`, as docker prints them.
pub(super) fn named(r: &serde_json::Value, list_key: &str, heading: &str) -> String {
    let names = r[list_key].as_array().map(Vec::as_slice).unwrap_or_default();
    if names.is_empty() {
        return String::new();
    }
    let mut out = format!("{heading}:\n");
    for n in names {
        out.push_str(n.as_str().unwrap_or(""));
        out.push('\n');
    }
    out
}

/// Prints a prune's text the way docker's `fmt.Fprintln(out, output)` does (an extra newline).
fn print_section(out: &str) {
    if !out.is_empty() {
        print(&format!("{out}\n"));
    }
}

pub fn run_image(ctx: &Ctx, a: ImageArgs) -> anyhow::Result<i32> {
    let warning = if a.all {
        "WARNING! This will remove all images without at least one container associated to them.\nAre you sure you want to continue?"
    } else {
        "WARNING! This will remove all dangling images.\nAre you sure you want to continue?"
    };
    if !a.force && !confirm(warning) {
        return Ok(0);
    }
    let (space, out) = prune_images(ctx, a.all, &a.filter)?;
    print_section(&out);
    print(&total(space));
    Ok(0)
}

pub fn run_container(ctx: &Ctx, a: ContainerArgs) -> anyhow::Result<i32> {
    if !a.force
        && !confirm("WARNING! This will remove all stopped containers.\nAre you sure you want to continue?")
    {
        return Ok(0);
    }
    let (space, out) = prune_containers(ctx, &a.filter)?;
    print_section(&out);
    print(&total(space));
    Ok(0)
}

/// docker's `system prune` confirmation text.
fn system_warning(a: &SystemArgs) -> String {
    let mut warnings = vec![
        "all stopped containers",
        "all networks not used by at least one container",
    ];
    if a.volumes {
        warnings.push("all anonymous volumes not used by at least one container");
    }
    warnings.push(if a.all {
        "all images without at least one container associated to them"
    } else {
        "all dangling images"
    });
    warnings.push(if a.all {
        "all build cache"
    } else {
        "unused build cache"
    });
    let mut s = String::from("WARNING! This will remove:");
    for w in warnings {
        s.push_str(&format!("\n  - {w}"));
    }
    let mut filters: Vec<String> = a
        .filter
        .iter()
        .filter(|f| {
            let k = f.split('=').next().unwrap_or("");
            matches!(k, "label" | "label!" | "until")
        })
        .cloned()
        .collect();
    filters.sort();
    if filters.is_empty() {
        s.push('\n');
    } else {
        s.push_str("\n\n  Items to be pruned will be filtered with:");
        for f in filters {
            s.push_str(&format!("\n  - {f}"));
        }
        s.push('\n');
    }
    s.push_str("\nAre you sure you want to continue?");
    s
}

pub fn run_system(ctx: &Ctx, a: SystemArgs) -> anyhow::Result<i32> {
    if a.volumes && a.filter.iter().any(|f| f.split('=').next() == Some("until")) {
        return Err(super::status(
            1,
            "ERROR: The \"until\" filter is not supported with \"--volumes\"",
        ));
    }
    if !a.force && !confirm(&system_warning(&a)) {
        return Ok(0);
    }
    let mut space = 0;
    let (s, out) = prune_containers(ctx, &a.filter)?;
    space += s;
    print_section(&out);
    let r = ctx
        .client
        .post(&format!("/networks/prune{}", query(&a.filter)?))?
        .json()?;
    print_section(&named(&r, "NetworksDeleted", "Deleted Networks"));
    if a.volumes {
        // Anonymous volumes only, as the warning says (docker's CLI on API ≥ 1.42).
        let mut f = a.filter.clone();
        f.push("all=false".into());
        let r = ctx
            .client
            .post(&format!("/volumes/prune{}", query(&f)?))?
            .json()?;
        space += r["SpaceReclaimed"].as_u64().unwrap_or(0);
        print_section(&named(&r, "VolumesDeleted", "Deleted Volumes"));
    }
    let (s, out) = prune_images(ctx, a.all, &a.filter)?;
    space += s;
    print_section(&out);
    let mut q = Query::new();
    q.flag("all", a.all);
    q.add("filters", filters_json(&a.filter)?.unwrap_or_default());
    let r = ctx.client.post(&format!("/build/prune{}", q.encode()))?.json()?;
    space += r["SpaceReclaimed"].as_u64().unwrap_or(0);
    print_section(&named(&r, "CachesDeleted", "Deleted build cache objects"));
    print(&total(space));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_prune_warns_like_docker() {
        let a = SystemArgs {
            all: false,
            force: false,
            volumes: false,
            filter: vec![],
        };
        assert_eq!(
            system_warning(&a),
            "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n  - all dangling images\n  - unused build cache\n\nAre you sure you want to continue?"
        );
        let a = SystemArgs {
            all: true,
            force: false,
            volumes: true,
            filter: vec!["until=1h".into(), "label=a=b".into()],
        };
        assert_eq!(
            system_warning(&a),
            "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n  - all anonymous volumes not used by at least one container\n  - all images without at least one container associated to them\n  - all build cache\n\n  Items to be pruned will be filtered with:\n  - label=a=b\n  - until=1h\n\nAre you sure you want to continue?"
        );
        assert_eq!(total(1_234_567), "Total reclaimed space: 1.235MB\n");
        assert_eq!(total(0), "Total reclaimed space: 0B\n");
    }
}
