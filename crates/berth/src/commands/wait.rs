//! `berth wait CONTAINER...`: prints each exit code.

use crate::client::Body;

use super::create::container_path;
use super::{print, status, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth wait CONTAINER [CONTAINER...]",
    after_help = "Examples:\n  berth wait web"
)]
pub struct Args {
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let mut errs = Vec::new();
    for c in &a.containers {
        match ctx
            .client
            .call("POST", &container_path(c, "/wait"), Body::Empty)
            .and_then(|r| r.json())
        {
            Ok(v) => {
                if let Some(m) = v
                    .get("Error")
                    .and_then(|e| e.get("Message"))
                    .and_then(|m| m.as_str())
                {
                    errs.push(m.to_owned());
                } else {
                    print(&format!("{}\n", v["StatusCode"].as_i64().unwrap_or(-1)));
                }
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
