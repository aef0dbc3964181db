//! `berth`: a docker-compatible command line that speaks only the Docker Engine API.
#![recursion_limit = "256"]

mod auth;
mod autostart;
mod client;
mod commands;
mod format;
mod json;
mod progress;
mod stream;
mod template;

use clap::{Parser, Subcommand};

use commands::*;

#[derive(Parser)]
#[command(
    name = "berth",
    about = "A self-sufficient runtime for containers",
    override_usage = "berth [OPTIONS] COMMAND",
    disable_help_subcommand = true,
    disable_version_flag = true,
    after_help = "Run 'berth COMMAND --help' for more information on a command."
)]
struct Cli {
    /// Daemon socket to connect to (unix:///path)
    #[arg(short = 'H', long = "host", value_name = "HOST")]
    host: Option<String>,
    /// Enable debug mode
    #[arg(short = 'D', long = "debug")]
    debug: bool,
    /// Set the logging level ("debug", "info", "warn", "error", "fatal")
    #[arg(short = 'l', long = "log-level", value_name = "LEVEL")]
    log_level: Option<String>,
    /// Print version information and quit
    #[arg(short = 'v', long = "version")]
    version: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

// Each command's arguments are built only when it runs (or its help shows): building all
// of them took most of the CLI's start-up.
#[derive(Subcommand)]
#[command(defer = true)]
enum Cmd {
    /// Show the Docker-compatible version information
    Version(version::Args),
    /// Build an image from a Dockerfile
    Build(build::Args),
    /// Display system-wide information
    Info(info::Args),
    /// Import the contents from a tarball to create a filesystem image
    Import(import::Args),
    /// List images
    Images(images::Args),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(tag::Args),
    /// Remove one or more images
    Rmi(rmi::Args),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCmd),
    /// Create a new container
    Create(create::Args),
    /// Create and run a new container from an image
    Run(run::Args),
    /// Start one or more stopped containers
    Start(start::Args),
    /// List containers
    Ps(ps::Args),
    /// Stop one or more running containers
    Stop(stop::Args),
    /// Kill one or more running containers
    Kill(kill::Args),
    /// Remove one or more containers
    Rm(rm::Args),
    /// Fetch the logs of a container
    Logs(logs::Args),
    /// Block until one or more containers stop, then print their exit codes
    Wait(wait::Args),
    /// Return low-level information on objects
    Inspect(inspect::Args),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCmd),
    /// List port mappings or a specific mapping for the container
    Port(port::Args),
    /// Rename a container
    Rename(rename::Args),
    /// Restart one or more containers
    Restart(restart::Args),
    /// Pause all processes within one or more containers
    Pause(pause::Args),
    /// Unpause all processes within one or more containers
    Unpause(unpause::Args),
    /// Attach local standard input, output, and error streams to a running container
    Attach(attach::Args),
    /// Execute a command in a running container
    Exec(exec::Args),
    /// Display the running processes of a container
    Top(top::Args),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(diff::Args),
    /// Copy files/folders between a container and the local filesystem
    Cp(cp::Args),
    /// Export a container's filesystem as a tar archive
    Export(export::Args),
    /// Create a new image from a container's changes
    Commit(commit::Args),
    /// Get real time events from the server
    Events(events::Args),
    /// Update configuration of one or more containers
    Update(update::Args),
    /// Display a live stream of container(s) resource usage statistics
    Stats(stats::Args),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(save::Args),
    /// Load an image from a tar archive or STDIN
    Load(load::Args),
    /// Download an image from a registry
    Pull(pull::Args),
    /// Upload an image to a registry
    Push(push::Args),
    /// Log in to a registry
    Login(login::Args),
    /// Log out from a registry
    Logout(login::LogoutArgs),
    /// Search registries for images
    Search(search::Args),
    /// Show the history of an image
    History(history::Args),
    /// Manage networks
    #[command(subcommand)]
    Network(network::NetworkCmd),
    /// Manage Docker
    #[command(subcommand)]
    System(SystemCmd),
    /// Manage volumes
    #[command(subcommand)]
    Volume(volume::Cmd),
    #[command(name = autostart::LAUNCH_ARG, hide = true)]
    Launch { berthd: String },
}

#[derive(Subcommand)]
#[command(defer = true)]
enum ImageCmd {
    /// List images
    #[command(name = "ls", visible_alias = "list")]
    Ls(images::Args),
    /// Remove one or more images
    Rm(rmi::Args),
    /// Display detailed information on one or more images
    Inspect(inspect::ImageArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(import::Args),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(tag::Args),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(save::Args),
    /// Load an image from a tar archive or STDIN
    Load(load::Args),
    /// Download an image from a registry
    Pull(pull::Args),
    /// Upload an image to a registry
    Push(push::Args),
    /// Show the history of an image
    History(history::Args),
    /// Remove unused images
    Prune(prune::ImageArgs),
    /// Build an image from a Dockerfile
    Build(build::Args),
}

#[derive(Subcommand)]
#[command(defer = true)]
enum SystemCmd {
    /// Show docker disk usage
    Df(df::Args),
    /// Remove unused data
    Prune(prune::SystemArgs),
    /// Display system-wide information
    Info(info::Args),
    /// Get real time events from the server
    Events(events::Args),
}

#[derive(Subcommand)]
#[command(defer = true)]
enum ContainerCmd {
    /// List containers
    #[command(name = "ls", visible_aliases = ["list", "ps"])]
    Ls(ps::Args),
    /// Create a new container
    Create(create::Args),
    /// Create and run a new container from an image
    Run(run::Args),
    /// Start one or more stopped containers
    Start(start::Args),
    /// Stop one or more running containers
    Stop(stop::Args),
    /// Kill one or more running containers
    Kill(kill::Args),
    /// Remove one or more containers
    Rm(rm::Args),
    /// Fetch the logs of a container
    Logs(logs::Args),
    /// Block until one or more containers stop, then print their exit codes
    Wait(wait::Args),
    /// Display detailed information on one or more containers
    Inspect(inspect::ContainerArgs),
    /// List port mappings or a specific mapping for the container
    Port(port::Args),
    /// Rename a container
    Rename(rename::Args),
    /// Restart one or more containers
    Restart(restart::Args),
    /// Pause all processes within one or more containers
    Pause(pause::Args),
    /// Unpause all processes within one or more containers
    Unpause(unpause::Args),
    /// Attach local standard input, output, and error streams to a running container
    Attach(attach::Args),
    /// Execute a command in a running container
    Exec(exec::Args),
    /// Display the running processes of a container
    Top(top::Args),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(diff::Args),
    /// Export a container's filesystem as a tar archive
    Export(export::Args),
    /// Create a new image from a container's changes
    Commit(commit::Args),
    /// Update configuration of one or more containers
    Update(update::Args),
    /// Display a live stream of container(s) resource usage statistics
    Stats(stats::Args),
    /// Remove all stopped containers
    Prune(prune::ContainerArgs),
}

fn dispatch(ctx: &Ctx, cmd: Cmd) -> anyhow::Result<i32> {
    match cmd {
        Cmd::Version(a) => version::run(ctx, a),
        Cmd::Build(a) | Cmd::Image(ImageCmd::Build(a)) => build::run(ctx, a),
        Cmd::Info(a) => info::run(ctx, a),
        Cmd::Import(a) | Cmd::Image(ImageCmd::Import(a)) => import::run(ctx, a),
        Cmd::Images(a) | Cmd::Image(ImageCmd::Ls(a)) => images::run(ctx, a),
        Cmd::Tag(a) | Cmd::Image(ImageCmd::Tag(a)) => tag::run(ctx, a),
        Cmd::Rmi(a) | Cmd::Image(ImageCmd::Rm(a)) => rmi::run(ctx, a),
        Cmd::Image(ImageCmd::Inspect(a)) => inspect::run_image(ctx, a),
        Cmd::Create(a) | Cmd::Container(ContainerCmd::Create(a)) => create::run(ctx, a),
        Cmd::Run(a) | Cmd::Container(ContainerCmd::Run(a)) => run::run(ctx, a),
        Cmd::Start(a) | Cmd::Container(ContainerCmd::Start(a)) => start::run(ctx, a),
        Cmd::Ps(a) | Cmd::Container(ContainerCmd::Ls(a)) => ps::run(ctx, a),
        Cmd::Stop(a) | Cmd::Container(ContainerCmd::Stop(a)) => stop::run(ctx, a),
        Cmd::Kill(a) | Cmd::Container(ContainerCmd::Kill(a)) => kill::run(ctx, a),
        Cmd::Rm(a) | Cmd::Container(ContainerCmd::Rm(a)) => rm::run(ctx, a),
        Cmd::Logs(a) | Cmd::Container(ContainerCmd::Logs(a)) => logs::run(ctx, a),
        Cmd::Wait(a) | Cmd::Container(ContainerCmd::Wait(a)) => wait::run(ctx, a),
        Cmd::Inspect(a) => inspect::run(ctx, a),
        Cmd::Container(ContainerCmd::Inspect(a)) => inspect::run_container(ctx, a),
        Cmd::Rename(a) | Cmd::Container(ContainerCmd::Rename(a)) => rename::run(ctx, a),
        Cmd::Port(a) | Cmd::Container(ContainerCmd::Port(a)) => port::run(ctx, a),
        Cmd::Restart(a) | Cmd::Container(ContainerCmd::Restart(a)) => restart::run(ctx, a),
        Cmd::Pause(a) | Cmd::Container(ContainerCmd::Pause(a)) => pause::run(ctx, a),
        Cmd::Unpause(a) | Cmd::Container(ContainerCmd::Unpause(a)) => unpause::run(ctx, a),
        Cmd::Attach(a) | Cmd::Container(ContainerCmd::Attach(a)) => attach::run(ctx, a),
        Cmd::Exec(a) | Cmd::Container(ContainerCmd::Exec(a)) => exec::run(ctx, a),
        Cmd::Top(a) | Cmd::Container(ContainerCmd::Top(a)) => top::run(ctx, a),
        Cmd::Cp(a) => cp::run(ctx, a),
        Cmd::Diff(a) | Cmd::Container(ContainerCmd::Diff(a)) => diff::run(ctx, a),
        Cmd::Export(a) | Cmd::Container(ContainerCmd::Export(a)) => export::run(ctx, a),
        Cmd::Commit(a) | Cmd::Container(ContainerCmd::Commit(a)) => commit::run(ctx, a),
        Cmd::Events(a) => events::run(ctx, a),
        Cmd::Update(a) | Cmd::Container(ContainerCmd::Update(a)) => update::run(ctx, a),
        Cmd::Stats(a) | Cmd::Container(ContainerCmd::Stats(a)) => stats::run(ctx, a),
        Cmd::Save(a) | Cmd::Image(ImageCmd::Save(a)) => save::run(ctx, a),
        Cmd::Load(a) | Cmd::Image(ImageCmd::Load(a)) => load::run(ctx, a),
        Cmd::Pull(a) | Cmd::Image(ImageCmd::Pull(a)) => pull::run(ctx, a),
        Cmd::Push(a) | Cmd::Image(ImageCmd::Push(a)) => push::run(ctx, a),
        Cmd::Login(a) => login::run(ctx, a),
        Cmd::Logout(a) => login::logout(ctx, a),
        Cmd::Search(a) => search::run(ctx, a),
        Cmd::History(a) | Cmd::Image(ImageCmd::History(a)) => history::run(ctx, a),
        Cmd::Image(ImageCmd::Prune(a)) => prune::run_image(ctx, a),
        Cmd::Container(ContainerCmd::Prune(a)) => prune::run_container(ctx, a),
        Cmd::Network(c) => network::run(ctx, c),
        Cmd::System(SystemCmd::Df(a)) => df::run(ctx, a),
        Cmd::System(SystemCmd::Prune(a)) => prune::run_system(ctx, a),
        Cmd::System(SystemCmd::Info(a)) => info::run(ctx, a),
        Cmd::System(SystemCmd::Events(a)) => events::run(ctx, a),
        Cmd::Volume(c) => volume::run(ctx, c),
        Cmd::Launch { berthd } => autostart::launch(&berthd),
    }
}

fn main() {
    berth_sys::times::init();
    berth_sys::times::mark("cli-main");
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = e.print();
                    std::process::exit(0)
                }
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                | ErrorKind::MissingSubcommand
                | ErrorKind::MissingRequiredArgument => {
                    let _ = e.print();
                    std::process::exit(1)
                }
                _ => {
                    let _ = e.print();
                    std::process::exit(125)
                }
            }
        }
    };
    let _ = (cli.debug, cli.log_level);
    if cli.version {
        println!("berth version {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    let Some(cmd) = cli.cmd else {
        use clap::CommandFactory;
        let _ = Cli::command().print_help();
        return;
    };
    let code = match client::Client::from_host(cli.host.as_deref()) {
        Ok(client) => {
            let ctx = Ctx { client };
            match dispatch(&ctx, cmd) {
                Ok(code) => code,
                Err(e) => report(e),
            }
        }
        Err(e) => report(e),
    };
    std::process::exit(code)
}

/// Prints an error as docker does and picks the exit status.
fn report(e: anyhow::Error) -> i32 {
    if let Some(s) = e.downcast_ref::<StatusError>() {
        if !s.msg.is_empty() {
            eprintln!("{}", s.msg);
        }
        return s.code;
    }
    eprintln!("{e:#}");
    1
}
