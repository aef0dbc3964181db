//! `berth attach CONTAINER`: attach the local streams to a running container.

use super::create::container_path;
use super::run::{attach_and_start, Session};
use super::{status, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth attach [OPTIONS] CONTAINER",
    after_help = "Examples:\n  berth attach web\n  berth attach --no-stdin web"
)]
pub struct Args {
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long = "sig-proxy", default_value = "true", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    sig_proxy: bool,
    container: String,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let c = ctx.client.get_json(&container_path(&a.container, "/json"))?;
    if !c["State"]["Running"].as_bool().unwrap_or(false) {
        anyhow::bail!("You cannot attach to a stopped container, start it first");
    }
    if c["State"]["Paused"].as_bool().unwrap_or(false) {
        anyhow::bail!("You cannot attach to a paused container, unpause it first");
    }
    if c["State"]["Restarting"].as_bool().unwrap_or(false) {
        anyhow::bail!("You cannot attach to a restarting container, wait until it is running");
    }
    let id = c["Id"].as_str().unwrap_or(&a.container).to_owned();
    let session = Session {
        id: &id,
        tty: c["Config"]["Tty"].as_bool().unwrap_or(false),
        stdin: !a.no_stdin && c["Config"]["OpenStdin"].as_bool().unwrap_or(false),
        stdout: true,
        stderr: true,
        detach_keys: a.detach_keys.as_deref(),
        sig_proxy: a.sig_proxy,
        auto_remove: false,
    };
    let code = attach_and_start(ctx, &session, None)?;
    if code != 0 {
        return Err(status(code, ""));
    }
    Ok(0)
}
