//! `berth exec`: `POST /containers/ID/exec`, then `POST /exec/ID/start` (hijacked), then the
//! exit code from `GET /exec/ID/json` — read before the hijacked socket is closed.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde_json::json;

use crate::client::{path_escape, Body};
use crate::stream::{self, RawTerminal, Target};

use super::create::container_path;
use super::{status, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth exec [OPTIONS] CONTAINER COMMAND [ARG...]",
    after_help = "Examples:\n  berth exec web ls /\n  berth exec -it web sh"
)]
pub struct Args {
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    env_file: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Give extended privileges to the command
    #[arg(long)]
    privileged: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    workdir: Option<String>,
    container: String,
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    cmd: Vec<String>,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    // No inspect first (docker's CLI does one): creating the exec answers "No such container"
    // and "is not running" with the same messages, one round trip sooner.
    let mut env = Vec::new();
    for f in &a.env_file {
        let text = std::fs::read_to_string(f)
            .map_err(|e| anyhow::anyhow!("open {f}: {}", crate::format::go_io_error(&e)))?;
        env.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    env.extend(a.env.iter().cloned());
    let attach_out = !a.detach;
    let attach_in = a.interactive && !a.detach;
    if a.tty && attach_in && !stream::stdin_is_tty() {
        anyhow::bail!("the input device is not a TTY");
    }
    let body = json!({
        "User": a.user.clone().unwrap_or_default(),
        "Privileged": a.privileged,
        "Tty": a.tty,
        "AttachStdin": attach_in,
        "AttachStderr": attach_out,
        "AttachStdout": attach_out,
        "Detach": a.detach,
        "DetachKeys": a.detach_keys.clone().unwrap_or_default(),
        "Env": if env.is_empty() { serde_json::Value::Null } else { json!(env) },
        "WorkingDir": a.workdir.clone().unwrap_or_default(),
        "Cmd": a.cmd,
    });
    let v = ctx
        .client
        .call("POST", &container_path(&a.container, "/exec"), Body::json(&body))?
        .json()?;
    berth_sys::times::mark("cli-exec-created");
    let id = v["Id"].as_str().unwrap_or_default().to_owned();
    if id.is_empty() {
        anyhow::bail!("exec ID empty");
    }
    let start = json!({"Detach": a.detach, "Tty": a.tty});
    if a.detach {
        ctx.client.call(
            "POST",
            &format!("/exec/{}/start", path_escape(&id)),
            Body::json(&start),
        )?;
        return Ok(0);
    }
    let resize_tty = a.tty && stream::stdout_is_tty();
    stream::spawn_signal_handler(&ctx.client, Target::Exec(id.clone()), resize_tty, false);
    let (sock, leftover) = ctx.client.hijack(
        "POST",
        &format!("/exec/{}/start", path_escape(&id)),
        Body::json(&start),
    )?;
    berth_sys::times::mark("cli-exec-hijacked");
    if resize_tty {
        stream::resize(&ctx.client, &Target::Exec(id.clone()));
    }
    let raw = if a.tty && attach_in && stream::stdin_is_tty() {
        RawTerminal::enable()
    } else {
        None
    };
    let detached = Arc::new(AtomicBool::new(false));
    if attach_in {
        let keys = if a.tty {
            stream::parse_detach_keys(a.detach_keys.as_deref().unwrap_or("ctrl-p,ctrl-q"))?
        } else {
            Vec::new()
        };
        stream::spawn_stdin_copy(sock.try_clone()?, keys, detached.clone());
    } else {
        let _ = sock.shutdown(std::net::Shutdown::Write);
    }
    let reader = std::io::Read::chain(&leftover[..], &sock);
    let res = if a.tty {
        stream::copy_raw(reader, &mut std::io::stdout().lock())
    } else {
        stream::demux(
            reader,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )
    };
    drop(raw);
    berth_sys::times::mark("cli-exec-output-ended");
    if let Err(e) = res {
        if e.kind() == std::io::ErrorKind::Other {
            eprintln!("{e}");
        }
    }
    if detached.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(0);
    }
    let info = ctx.client.get_json(&format!("/exec/{}/json", path_escape(&id)))?;
    drop(sock);
    berth_sys::times::mark("cli-exec-done");
    let code = info["ExitCode"].as_i64().unwrap_or(0) as i32;
    if code != 0 {
        return Err(status(code, ""));
    }
    Ok(0)
}
