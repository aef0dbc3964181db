//! `berth push [-a] [-q] NAME[:TAG]`: `POST /images/{name}/push?tag=…` with the registry's stored
//! credentials, showing docker's progress.

use berth_types::Reference;

use crate::client::{path_escape, Body, Query};

use super::{status, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth push [OPTIONS] NAME[:TAG]",
    after_help = "Examples:\n  berth push 127.0.0.1:5000/team/app:1.2\n  berth push -a 127.0.0.1:5000/team/app"
)]
pub struct Args {
    /// Push all tags of an image to the repository
    #[arg(short = 'a', long = "all-tags")]
    all_tags: bool,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Skip image signing (accepted, as docker's default)
    #[arg(long = "disable-content-trust", default_value_t = true, hide = true)]
    _disable_content_trust: bool,
    image: String,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let named =
        Reference::parse_named(&a.image).map_err(|e| status(1, format!("invalid reference format: {e}")))?;
    if named.digest().is_some() {
        return Err(status(1, "cannot push a digest reference"));
    }
    if a.all_tags && named.tag().is_some() {
        return Err(status(1, "tag can't be used with --all-tags/-a"));
    }
    let mut q = Query::new();
    if !a.all_tags {
        q.add("tag", named.tag().unwrap_or("latest"));
    }
    let auth = crate::auth::header_for_domain(named.domain())?;
    let name = named.familiar_name();
    let mut resp = ctx.client.call_with(
        "POST",
        &format!("/images/{}/push{}", path_escape(&name), q.encode()),
        Body::Empty,
        &[("X-Registry-Auth", &auth)],
    )?;
    if a.quiet {
        crate::progress::display(resp.reader(), &mut std::io::sink(), false, &mut |_| {})?;
        println!(
            "{}",
            if a.all_tags {
                name
            } else {
                format!("{name}:{}", named.tag().unwrap_or("latest"))
            }
        );
    } else {
        let tty = crate::stream::stdout_is_tty();
        crate::progress::display(resp.reader(), &mut std::io::stdout().lock(), tty, &mut |_| {})?;
    }
    Ok(0)
}
