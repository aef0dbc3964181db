//! `berth kill [-s SIG] CONTAINER...`.

use super::create::container_path;
use super::{for_each, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth kill [OPTIONS] CONTAINER [CONTAINER...]",
    after_help = "Examples:\n  berth kill web\n  berth kill -s HUP web"
)]
pub struct Args {
    /// Signal to send to the container
    #[arg(short = 's', long, default_value = "")]
    signal: String,
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let mut q = crate::client::Query::new();
    if !a.signal.is_empty() {
        q.add("signal", a.signal.as_str());
    }
    let q = q.encode();
    for_each(&a.containers, |c| {
        ctx.client
            .post(&container_path(c, &format!("/kill{q}")))
            .map(|_| ())
    })
}
