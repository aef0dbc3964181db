//! `berth rm [-f] [-v] CONTAINER...`.

use crate::client::{Body, Query};

use super::create::container_path;
use super::{is_not_found, print, status, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth rm [OPTIONS] CONTAINER [CONTAINER...]",
    after_help = "Examples:\n  berth rm web\n  berth rm -f $(berth ps -aq)"
)]
pub struct Args {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short = 'f', long)]
    force: bool,
    /// Remove the specified link
    #[arg(short = 'l', long)]
    link: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short = 'v', long)]
    volumes: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let mut q = Query::new();
    q.flag("force", a.force).flag("link", a.link).flag("v", a.volumes);
    let q = q.encode();
    let mut errs = Vec::new();
    for c in &a.containers {
        let name = c.trim_matches('/');
        match ctx
            .client
            .call("DELETE", &format!("{}{q}", container_path(name, "")), Body::Empty)
        {
            Ok(_) => print(&format!("{c}\n")),
            Err(e) if a.force && is_not_found(&e) => eprintln!("{e:#}"),
            Err(e) => errs.push(format!("{e:#}")),
        }
    }
    if errs.is_empty() {
        Ok(0)
    } else {
        Err(status(1, errs.join("\n")))
    }
}
