//! `berth rmi IMAGE...`: `DELETE /images/NAME`, printing `Untagged:`/`Deleted:` lines.

use crate::client::{path_escape, Body, Query};

use super::{print, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth rmi [OPTIONS] IMAGE [IMAGE...]",
    after_help = "Examples:\n  berth rmi busybox:latest\n  berth rmi -f 5fe03c18a944"
)]
pub struct Args {
    /// Force removal of the image
    #[arg(short = 'f', long)]
    force: bool,
    /// Do not delete untagged parents
    #[arg(long = "no-prune")]
    no_prune: bool,
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let mut q = Query::new();
    q.flag("force", a.force).flag("noprune", a.no_prune);
    let mut errs = Vec::new();
    for img in &a.images {
        let r = ctx
            .client
            .call(
                "DELETE",
                &format!("/images/{}{}", path_escape(img), q.encode()),
                Body::Empty,
            )
            .and_then(|r| r.json());
        match r {
            Ok(serde_json::Value::Array(items)) => {
                let mut out = String::new();
                for it in items {
                    if let Some(u) = it.get("Untagged").and_then(|v| v.as_str()) {
                        out.push_str(&format!("Untagged: {u}\n"));
                    }
                    if let Some(d) = it.get("Deleted").and_then(|v| v.as_str()) {
                        out.push_str(&format!("Deleted: {d}\n"));
                    }
                }
                print(&out);
            }
            Ok(_) => {}
            Err(e) => errs.push(format!("{e:#}")),
        }
    }
    if errs.is_empty() {
        Ok(0)
    } else {
        Err(super::status(1, errs.join("\n")))
    }
}
