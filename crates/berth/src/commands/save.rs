//! `berth save [-o FILE] IMAGE...`: `GET /images/get?names=…`.

use crate::client::{Body, Query};

use super::export::save_to;
use super::Ctx;

#[derive(clap::Args)]
#[command(
    override_usage = "berth save [OPTIONS] IMAGE [IMAGE...]",
    after_help = "Examples:\n  berth save -o busybox.tar busybox\n  berth save busybox > busybox.tar"
)]
pub struct Args {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    output: Option<String>,
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    if a.output.is_none() && crate::stream::stdout_is_tty() {
        anyhow::bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let mut q = Query::new();
    for i in &a.images {
        q.add("names", i.as_str());
    }
    let mut resp = ctx
        .client
        .call("GET", &format!("/images/get{}", q.encode()), Body::Empty)?;
    save_to(&mut resp, a.output.as_deref())?;
    Ok(0)
}
