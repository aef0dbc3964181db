//! `berth commit CONTAINER [REPOSITORY[:TAG]]`: `POST /commit`.

use crate::client::{Body, Query};

use super::{split_ref, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
    after_help = "Examples:\n  berth commit -m 'add file' web web:v2"
)]
pub struct Args {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short = 'a', long)]
    author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change")]
    change: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long)]
    message: Option<String>,
    /// Pause container during commit
    #[arg(short = 'p', long, default_value = "true", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pause: bool,
    container: String,
    reference: Option<String>,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let mut q = Query::new();
    q.add("container", a.container.as_str());
    if let Some(r) = &a.reference {
        let (repo, tag) = split_ref(r);
        q.add("repo", repo).add("tag", tag);
    }
    if let Some(m) = &a.message {
        q.add("comment", m.as_str());
    }
    if let Some(au) = &a.author {
        q.add("author", au.as_str());
    }
    for c in &a.change {
        q.add("changes", c.as_str());
    }
    if !a.pause {
        q.add("pause", "0");
    }
    let v = ctx
        .client
        .call(
            "POST",
            &format!("/commit{}", q.encode()),
            Body::json(&serde_json::json!({})),
        )?
        .json()?;
    println!("{}", v["Id"].as_str().unwrap_or(""));
    Ok(0)
}
