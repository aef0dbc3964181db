//! `berth pull [-a] [-q] [--platform P] NAME[:TAG|@DIGEST]`: `POST /images/create?fromImage=…`
//! with the registry's stored credentials, showing docker's progress.

use berth_types::Reference;

use crate::client::Query;

use super::{status, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth pull [OPTIONS] NAME[:TAG|@DIGEST]",
    after_help = "Examples:\n  berth pull busybox\n  berth pull 127.0.0.1:5000/team/app:1.2\n  berth pull -a 127.0.0.1:5000/team/app"
)]
pub struct Args {
    /// Download all tagged images in the repository
    #[arg(short = 'a', long = "all-tags")]
    all_tags: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    platform: Option<String>,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Skip image verification (accepted, as docker's default)
    #[arg(long = "disable-content-trust", default_value_t = true, hide = true)]
    _disable_content_trust: bool,
    image: String,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let named =
        Reference::parse_named(&a.image).map_err(|e| status(1, format!("invalid reference format: {e}")))?;
    if a.all_tags && (named.tag().is_some() || named.digest().is_some()) {
        return Err(status(1, "tag can't be used with --all-tags/-a"));
    }
    let shown = pull_image(ctx, &a.image, a.all_tags, a.platform.as_deref(), a.quiet, false)?;
    println!("{shown}");
    Ok(0)
}

/// Pulls one reference (or every tag of its repository) and returns what docker prints at the
/// end: the full reference. Progress goes to stdout, or stderr with `to_stderr` (as `run` does).
pub fn pull_image(
    ctx: &Ctx,
    image: &str,
    all_tags: bool,
    platform: Option<&str>,
    quiet: bool,
    to_stderr: bool,
) -> anyhow::Result<String> {
    let named =
        Reference::parse_named(image).map_err(|e| status(1, format!("invalid reference format: {e}")))?;
    let full = if all_tags {
        named.clone()
    } else {
        Reference::parse(image).map_err(|e| status(1, format!("invalid reference format: {e}")))?
    };
    let mut q = Query::new();
    q.add("fromImage", named.name());
    if let Some(p) = platform {
        q.add("platform", p);
    }
    if !all_tags {
        match (full.digest(), full.tag()) {
            (Some(d), _) => q.add("tag", d),
            (None, Some(t)) => q.add("tag", t),
            (None, None) => q.add("tag", "latest"),
        };
    }
    let auth = crate::auth::header_for_domain(named.domain())?;
    let mut resp = ctx.client.call_with(
        "POST",
        &format!("/images/create{}", q.encode()),
        crate::client::Body::Empty,
        &[("X-Registry-Auth", &auth)],
    )?;
    if quiet {
        crate::progress::display(resp.reader(), &mut std::io::sink(), false, &mut |_| {})?;
    } else if to_stderr {
        let tty = crate::stream::stderr_is_tty();
        crate::progress::display(resp.reader(), &mut std::io::stderr().lock(), tty, &mut |_| {})?;
    } else {
        let tty = crate::stream::stdout_is_tty();
        crate::progress::display(resp.reader(), &mut std::io::stdout().lock(), tty, &mut |_| {})?;
    }
    Ok(full.to_string())
}
