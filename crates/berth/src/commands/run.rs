//! `berth run`: create (pulling if needed), attach, wait, start — in docker's order.
//!
//! The order matters: the attach hijack is established first, then `wait` is sent on its own
//! connection (its headers come back at once, the body only when the container exits), and only
//! then `start`. The exit status is the wait `StatusCode`.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use crate::client::{Body, Query};
use crate::stream::{self, RawTerminal, Target};

use super::create::{
    build_body, container_path, create_container, report_error, to_status_error, ContainerOpts,
};
use super::{status, Ctx};

#[derive(clap::Args)]
#[command(
    disable_help_flag = true,
    override_usage = "berth run [OPTIONS] IMAGE [COMMAND] [ARG...]",
    after_help = "Examples:\n  berth run --rm busybox echo hello\n  berth run -it --rm busybox sh\n  berth run -d --name web -p 8080:80 busybox httpd -f"
)]
pub struct Args {
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    /// Proxy received signals to the process
    #[arg(long = "sig-proxy", default_value = "true", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    sig_proxy: bool,
    #[command(flatten)]
    opts: ContainerOpts,
    /// IMAGE [COMMAND] [ARG...]
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE"
    )]
    argv: Vec<String>,
}

/// How to attach to a container for `run` and `start -a`.
pub struct Session<'a> {
    pub id: &'a str,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub detach_keys: Option<&'a str>,
    pub sig_proxy: bool,
    pub auto_remove: bool,
}

/// Sends `POST /containers/ID/wait` and returns a receiver for the exit status once the headers
/// are back (the body arrives when the container exits).
pub fn wait_exit(ctx: &Ctx, id: &str, removed: bool) -> anyhow::Result<mpsc::Receiver<i32>> {
    let cond = if removed { "removed" } else { "next-exit" };
    let mut resp = ctx.client.call(
        "POST",
        &container_path(id, &format!("/wait?condition={cond}")),
        Body::Empty,
    )?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut body = Vec::new();
        let code = match std::io::Read::read_to_end(resp.reader(), &mut body) {
            Ok(_) => match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(v) => {
                    if let Some(m) = v
                        .get("Error")
                        .and_then(|e| e.get("Message"))
                        .and_then(|m| m.as_str())
                    {
                        eprintln!("Error waiting for container: {m}");
                        125
                    } else {
                        v.get("StatusCode").and_then(|c| c.as_i64()).unwrap_or(125) as i32
                    }
                }
                Err(e) => {
                    eprintln!("Error waiting for container: {e}");
                    125
                }
            },
            Err(e) => {
                eprintln!("Error waiting for container: {e}");
                125
            }
        };
        let _ = tx.send(code);
    });
    Ok(rx)
}

/// Attaches, waits, runs `start` (if given), pumps the streams and returns the exit status.
pub fn attach_and_start(
    ctx: &Ctx,
    s: &Session<'_>,
    start: Option<&dyn Fn() -> anyhow::Result<()>>,
) -> anyhow::Result<i32> {
    if s.tty && s.stdin && !stream::stdin_is_tty() {
        anyhow::bail!("the input device is not a TTY");
    }
    let resize_tty = s.tty && stream::stdout_is_tty();
    // Block the proxied signals before any thread exists, so every thread inherits the mask.
    stream::spawn_signal_handler(
        &ctx.client,
        Target::Container(s.id.to_owned()),
        resize_tty,
        s.sig_proxy,
    );

    let mut q = Query::new();
    q.flag("stream", true)
        .flag("stdin", s.stdin)
        .flag("stdout", s.stdout)
        .flag("stderr", s.stderr);
    if let Some(k) = s.detach_keys {
        q.add("detachKeys", k);
    }
    let (sock, leftover) = ctx.client.hijack(
        "POST",
        &container_path(s.id, &format!("/attach{}", q.encode())),
        Body::Empty,
    )?;
    let status_rx = wait_exit(ctx, s.id, s.auto_remove)?;

    let raw = if s.tty && s.stdin && stream::stdin_is_tty() {
        RawTerminal::enable()
    } else {
        None
    };
    let detached = Arc::new(AtomicBool::new(false));
    if s.stdin {
        let keys = if s.tty {
            stream::parse_detach_keys(s.detach_keys.unwrap_or("ctrl-p,ctrl-q"))?
        } else {
            Vec::new()
        };
        stream::spawn_stdin_copy(sock.try_clone()?, keys, detached.clone());
    } else {
        let _ = sock.shutdown(std::net::Shutdown::Write);
    }

    if let Some(start) = start {
        if let Err(e) = start() {
            let _ = sock.shutdown(std::net::Shutdown::Both);
            drop(raw);
            if s.auto_remove {
                let _ = status_rx.recv();
            }
            return Err(e);
        }
    }
    if resize_tty {
        stream::resize(&ctx.client, &Target::Container(s.id.to_owned()));
    }

    let reader = std::io::Read::chain(&leftover[..], &sock);
    let res = if s.tty {
        stream::copy_raw(reader, &mut std::io::stdout().lock())
    } else {
        stream::demux(
            reader,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )
    };
    drop(raw);
    berth_sys::times::mark("cli-output-ended");
    let _ = std::io::stdout().flush();
    if detached.load(Ordering::SeqCst) {
        return Ok(0);
    }
    if let Err(e) = res {
        if e.kind() == std::io::ErrorKind::Other {
            eprintln!("{e}");
        }
    }
    let code = status_rx.recv().unwrap_or(125);
    berth_sys::times::mark("cli-exit-status");
    Ok(code)
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    super::reject_flag_as_positional(&a.argv[0], "run")?;
    let o = &a.opts;
    let console = if o.tty && stream::stdout_is_tty() {
        stream::term_size().unwrap_or((0, 0))
    } else {
        (0, 0)
    };
    let body = build_body(o, &a.argv, a.detach, console).map_err(|e| report_error(e, "run"))?;
    if !a.detach && o.tty && body["AttachStdin"] == serde_json::json!(true) && !stream::stdin_is_tty() {
        return Err(status(1, "the input device is not a TTY"));
    }
    berth_sys::times::mark("cli-create");
    let id = create_container(ctx, o, &body).map_err(|e| to_status_error(e, "run"))?;
    berth_sys::times::mark("cli-created");
    let start = || -> anyhow::Result<()> {
        ctx.client.post(&container_path(&id, "/start"))?;
        berth_sys::times::mark("cli-started");
        Ok(())
    };
    if a.detach {
        start().map_err(|e| to_status_error(e, "run"))?;
        println!("{id}");
        return Ok(0);
    }
    let session = Session {
        id: &id,
        tty: o.tty,
        stdin: body["AttachStdin"].as_bool().unwrap_or(false),
        stdout: body["AttachStdout"].as_bool().unwrap_or(false),
        stderr: body["AttachStderr"].as_bool().unwrap_or(false),
        detach_keys: a.detach_keys.as_deref(),
        sig_proxy: a.sig_proxy,
        auto_remove: o.rm,
    };
    let code = attach_and_start(ctx, &session, Some(&start)).map_err(|e| to_status_error(e, "run"))?;
    if code != 0 {
        return Err(status(code, ""));
    }
    Ok(0)
}
