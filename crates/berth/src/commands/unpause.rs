//! `berth unpause CONTAINER...`.

use super::create::container_path;
use super::{for_each, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth unpause CONTAINER [CONTAINER...]",
    after_help = "Examples:\n  berth unpause web"
)]
pub struct Args {
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    for_each(&a.containers, |c| {
        ctx.client.post(&container_path(c, "/unpause")).map(|_| ())
    })
}
