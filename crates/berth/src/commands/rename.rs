//! `berth rename OLD NEW`.

use crate::client::Query;

use super::create::container_path;
use super::Ctx;

#[derive(clap::Args)]
#[command(
    override_usage = "berth rename CONTAINER NEW_NAME",
    after_help = "Examples:\n  berth rename web web-old"
)]
pub struct Args {
    container: String,
    new_name: String,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let new = a.new_name.trim();
    if new.is_empty() || a.container.trim().is_empty() {
        anyhow::bail!("Error: Neither old nor new names may be empty");
    }
    let mut q = Query::new();
    q.add("name", new);
    ctx.client
        .post(&container_path(&a.container, &format!("/rename{}", q.encode())))?;
    Ok(0)
}
