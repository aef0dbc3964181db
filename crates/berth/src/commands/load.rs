//! `berth load [-i FILE]`: `POST /images/load` with the tar streamed chunked.

use std::io::Read;

use crate::client::Body;

use super::{display_json_messages, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth load [OPTIONS]",
    after_help = "Examples:\n  berth load -i busybox.tar\n  berth load < busybox.tar"
)]
pub struct Args {
    /// Read from tar archive file, instead of STDIN
    #[arg(short = 'i', long)]
    input: Option<String>,
    /// Suppress the load output
    #[arg(short = 'q', long)]
    quiet: bool,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let mut src: Box<dyn Read> = match &a.input {
        Some(p) => Box::new(
            std::fs::File::open(p)
                .map_err(|e| anyhow::anyhow!("open {p}: {}", crate::format::go_io_error(&e)))?,
        ),
        None => {
            if crate::stream::stdin_is_tty() {
                anyhow::bail!("requested load from stdin, but stdin is empty");
            }
            Box::new(std::io::stdin().lock())
        }
    };
    let quiet = a.quiet || !crate::stream::stdout_is_tty();
    let path = format!("/images/load?quiet={}", if quiet { 1 } else { 0 });
    let mut resp = ctx
        .client
        .call("POST", &path, Body::Stream(&mut *src, "application/x-tar"))?;
    display_json_messages(resp.reader(), &mut std::io::stdout().lock())?;
    Ok(0)
}
