//! `berth import`: stream a tarball to `POST /images/create?fromSrc=-`.

use std::io::Read;

use crate::client::{Body, Query};

use super::{display_json_messages, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
    after_help = "Examples:\n  berth import rootfs.tar busybox:latest\n  cat rootfs.tar | berth import -c 'CMD [\"sh\"]' - myimage"
)]
pub struct Args {
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change", value_name = "LINE")]
    change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short = 'm', long = "message")]
    message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    platform: Option<String>,
    /// A file, or - for stdin
    file: String,
    /// Repository and optional tag for the new image
    reference: Option<String>,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let mut q = Query::new();
    // A URL is fetched by the daemon (docker's `import http://…`); anything else is streamed.
    let url = a.file.starts_with("http://") || a.file.starts_with("https://");
    q.add("fromSrc", if url { a.file.as_str() } else { "-" });
    if let Some(r) = &a.reference {
        q.add("repo", r.as_str());
    }
    for c in &a.change {
        q.add("changes", c.as_str());
    }
    if let Some(m) = &a.message {
        q.add("message", m.as_str());
    }
    if let Some(p) = &a.platform {
        q.add("platform", p.as_str());
    }
    let mut src: Box<dyn Read> = if url {
        Box::new(std::io::empty())
    } else if a.file == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(&a.file)
                .map_err(|e| anyhow::anyhow!("open {}: {}", a.file, crate::format::go_io_error(&e)))?,
        )
    };
    let mut resp = ctx.client.call(
        "POST",
        &format!("/images/create{}", q.encode()),
        Body::Stream(&mut *src, "text/plain"),
    )?;
    let mut out = std::io::stdout().lock();
    display_json_messages(resp.reader(), &mut out)?;
    Ok(0)
}
