//! `berth start [-a] [-i] CONTAINER...`.

use super::create::container_path;
use super::run::{attach_and_start, Session};
use super::{print, status, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth start [OPTIONS] CONTAINER [CONTAINER...]",
    after_help = "Examples:\n  berth start web\n  berth start -ai shell"
)]
pub struct Args {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long)]
    attach: bool,
    /// Attach container's STDIN
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    if a.attach || a.interactive {
        if a.containers.len() > 1 {
            anyhow::bail!("you cannot start and attach multiple containers at once");
        }
        let name = &a.containers[0];
        let c = ctx.client.get_json(&container_path(name, "/json"))?;
        let id = c["Id"].as_str().unwrap_or(name).to_owned();
        let cfg = &c["Config"];
        let tty = cfg["Tty"].as_bool().unwrap_or(false);
        let session = Session {
            id: &id,
            tty,
            stdin: a.interactive && cfg["OpenStdin"].as_bool().unwrap_or(false),
            stdout: true,
            stderr: true,
            detach_keys: a.detach_keys.as_deref(),
            sig_proxy: true,
            auto_remove: c["HostConfig"]["AutoRemove"].as_bool().unwrap_or(false),
        };
        let start = || -> anyhow::Result<()> {
            ctx.client.post(&container_path(&id, "/start"))?;
            Ok(())
        };
        let code = attach_and_start(ctx, &session, Some(&start))?;
        if code != 0 {
            return Err(status(code, ""));
        }
        return Ok(0);
    }
    let mut failed = Vec::new();
    for c in &a.containers {
        match ctx.client.post(&container_path(c, "/start")) {
            Ok(_) => print(&format!("{c}\n")),
            Err(e) => {
                eprintln!("{e:#}");
                failed.push(c.as_str());
            }
        }
    }
    if !failed.is_empty() {
        return Err(status(
            1,
            format!("Error: failed to start containers: {}", failed.join(", ")),
        ));
    }
    Ok(0)
}
