//! `berth export [-o FILE] CONTAINER`: the container filesystem as a tar stream.

use std::io::Write;

use crate::client::Body;

use super::create::container_path;
use super::Ctx;

#[derive(clap::Args)]
#[command(
    override_usage = "berth export [OPTIONS] CONTAINER",
    after_help = "Examples:\n  berth export -o web.tar web\n  berth export web > web.tar"
)]
pub struct Args {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    output: Option<String>,
    container: String,
}

/// Copies a response body to `-o FILE` or to stdout (refusing a terminal, as docker does).
pub fn save_to(resp: &mut crate::client::Response, output: Option<&str>) -> anyhow::Result<()> {
    match output {
        Some(path) => {
            let mut f = std::fs::File::create(path).map_err(|e| {
                anyhow::anyhow!("failed to export container: {}", crate::format::go_io_error(&e))
            })?;
            std::io::copy(resp.reader(), &mut f)?;
            f.flush()?;
        }
        None => {
            let mut o = std::io::stdout().lock();
            std::io::copy(resp.reader(), &mut o)?;
            o.flush()?;
        }
    }
    Ok(())
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    if a.output.is_none() && crate::stream::stdout_is_tty() {
        anyhow::bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let mut resp = ctx
        .client
        .call("GET", &container_path(&a.container, "/export"), Body::Empty)?;
    save_to(&mut resp, a.output.as_deref())?;
    Ok(0)
}
