//! `berth login [-u USER] [-p PASS | --password-stdin] [SERVER]` and `berth logout [SERVER]`:
//! `POST /auth` checks the credentials through the daemon; the CLI keeps them in
//! `$DOCKER_CONFIG/config.json` (or its credential helper), as the docker CLI does. Logout sends
//! nothing to the daemon.

use std::io::{BufRead, Write};

use serde_json::json;

use crate::auth::{self, AuthConfig, DOCKER_HUB};
use crate::client::Body;

use super::{status, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth login [OPTIONS] [SERVER]",
    after_help = "Log in to a registry.\nIf no server is specified, the default is defined by the daemon.\n\nExamples:\n  berth login 127.0.0.1:5000\n  echo \"$PASS\" | berth login -u alice --password-stdin 127.0.0.1:5000"
)]
pub struct Args {
    /// Username
    #[arg(short = 'u', long)]
    username: Option<String>,
    /// Password
    #[arg(short = 'p', long)]
    password: Option<String>,
    /// Take the password from stdin
    #[arg(long = "password-stdin")]
    password_stdin: bool,
    server: Option<String>,
}

#[derive(clap::Args)]
#[command(
    override_usage = "berth logout [SERVER]",
    after_help = "Log out from a registry.\nIf no server is specified, the default is defined by the daemon.\n\nExamples:\n  berth logout 127.0.0.1:5000"
)]
pub struct LogoutArgs {
    server: Option<String>,
}

fn prompt(label: &str, echo: bool) -> anyhow::Result<String> {
    let mut err = std::io::stderr().lock();
    write!(err, "{label}")?;
    err.flush()?;
    let restore = if echo { None } else { crate::stream::disable_echo() };
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if restore.is_some() {
        drop(restore);
        writeln!(err)?;
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let server = auth::server_from_arg(a.server.as_deref());
    if a.password.is_some() && a.password_stdin {
        return Err(status(
            1,
            "--password and --password-stdin are mutually exclusive",
        ));
    }
    let mut password = a.password.clone().unwrap_or_default();
    if a.password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    if a.password_stdin {
        if a.username.is_none() {
            return Err(status(1, "Must provide --username with --password-stdin"));
        }
        let mut s = String::new();
        std::io::stdin().lock().read_to_string_lossy(&mut s)?;
        password = s.trim_end_matches(['\n', '\r']).to_string();
    }
    let stored = auth::get(&server)?;
    let mut username = a.username.clone().unwrap_or_default();
    if username.is_empty() {
        if !crate::stream::stdin_is_tty() {
            return Err(status(
                1,
                "Error: Cannot perform an interactive login from a non TTY device",
            ));
        }
        let hint = if stored.username.is_empty() {
            String::new()
        } else {
            format!(" ({})", stored.username)
        };
        username = prompt(&format!("Username{hint}: "), true)?;
        if username.is_empty() {
            username = stored.username.clone();
        }
    }
    if username.is_empty() {
        return Err(status(1, "Error: Non-null Username Required"));
    }
    if password.is_empty() {
        if !crate::stream::stdin_is_tty() {
            return Err(status(
                1,
                "Error: Cannot perform an interactive login from a non TTY device",
            ));
        }
        password = prompt("Password: ", false)?;
    }
    if password.is_empty() {
        return Err(status(1, "Error: Password Required"));
    }
    // What the daemon is told: docker sends the host, or Docker Hub's URL.
    let address = if server == DOCKER_HUB {
        DOCKER_HUB.to_string()
    } else {
        server.clone()
    };
    let body = json!({"username": username, "password": password, "serveraddress": address});
    let resp = ctx.client.call("POST", "/auth", Body::json(&body))?.json()?;
    let mut creds = AuthConfig {
        username,
        password,
        serveraddress: server.clone(),
        ..Default::default()
    };
    if let Some(t) = resp
        .get("IdentityToken")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
    {
        creds.password.clear();
        creds.identitytoken = t.to_string();
    }
    auth::store(&creds)?;
    eprintln!(
        "WARNING! Your password will be stored unencrypted in {}.\nConfigure a credential helper to remove this warning. See\nhttps://docs.docker.com/engine/reference/commandline/login/#credentials-store\n",
        auth::config_dir().join("config.json").display()
    );
    println!(
        "{}",
        resp.get("Status")
            .and_then(|s| s.as_str())
            .unwrap_or("Login Succeeded")
    );
    Ok(0)
}

pub fn logout(_ctx: &Ctx, a: LogoutArgs) -> anyhow::Result<i32> {
    let server = auth::server_from_arg(a.server.as_deref());
    if auth::erase(&server)? {
        println!("Removing login credentials for {}", shown(&server));
    } else {
        println!("Not logged in to {}", shown(&server));
    }
    Ok(0)
}

fn shown(server: &str) -> &str {
    if server == DOCKER_HUB {
        "https://index.docker.io/v1/"
    } else {
        server
    }
}

trait ReadLossy {
    fn read_to_string_lossy(&mut self, s: &mut String) -> std::io::Result<()>;
}

impl<R: std::io::Read> ReadLossy for R {
    fn read_to_string_lossy(&mut self, s: &mut String) -> std::io::Result<()> {
        let mut b = Vec::new();
        self.read_to_end(&mut b)?;
        s.push_str(&String::from_utf8_lossy(&b));
        Ok(())
    }
}
