//! `berth tag SOURCE TARGET`: `POST /images/SOURCE/tag?repo=&tag=`.

use crate::client::{path_escape, Query};

use super::{split_ref, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
    after_help = "Examples:\n  berth tag busybox:latest mybox:v1"
)]
pub struct Args {
    source: String,
    target: String,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let (repo, tag) = split_ref(&a.target);
    let mut q = Query::new();
    q.add("repo", repo).add("tag", tag);
    ctx.client
        .post(&format!("/images/{}/tag{}", path_escape(&a.source), q.encode()))?;
    Ok(0)
}
