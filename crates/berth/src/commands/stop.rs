//! `berth stop [-t N] CONTAINER...`.

use super::create::container_path;
use super::{for_each, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth stop [OPTIONS] CONTAINER [CONTAINER...]",
    after_help = "Examples:\n  berth stop web\n  berth stop -t 1 web db"
)]
pub struct Args {
    /// Signal to send to the container
    #[arg(short = 's', long)]
    signal: Option<String>,
    /// Seconds to wait before killing the container
    #[arg(short = 't', long = "timeout", alias = "time", allow_hyphen_values = true)]
    timeout: Option<i64>,
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let mut q = crate::client::Query::new();
    if let Some(t) = a.timeout {
        q.add("t", t.to_string());
    }
    if let Some(s) = &a.signal {
        q.add("signal", s.as_str());
    }
    let q = q.encode();
    for_each(&a.containers, |c| {
        ctx.client
            .post(&container_path(c, &format!("/stop{q}")))
            .map(|_| ())
    })
}
