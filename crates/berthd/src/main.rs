//! `berthd`: dockerd's flags and daemon.json, the Unix socket, and the HTTP routes. Thin: every
//! route parses its request and calls a `berth_daemon::Daemon` method.

mod http;
mod routes;
mod socket;

use std::path::PathBuf;

use anyhow::{bail, Context};
use berth_daemon::{Config, Daemon, FileConfig};
use clap::Parser;

/// The berth daemon: serves the Docker Engine API on a Unix socket.
#[derive(Parser, Debug)]
#[command(
    name = "berthd",
    version,
    about,
    after_help = "Example:\n  berthd -H unix:///run/berth/berth.sock --data-root /var/lib/berth"
)]
struct Flags {
    /// Daemon socket to listen on (unix:///path or a path)
    #[arg(short = 'H', long = "host")]
    host: Vec<String>,
    /// Root directory of persistent state
    #[arg(long)]
    data_root: Option<PathBuf>,
    /// Root directory of runtime state (sockets)
    #[arg(long)]
    exec_root: Option<PathBuf>,
    /// daemon.json to read
    #[arg(long, default_value = "/etc/berth/daemon.json")]
    config_file: PathBuf,
    /// Group that may use the socket (when it exists)
    #[arg(short = 'G', long)]
    group: Option<String>,
    /// File to write the daemon's PID to
    #[arg(short = 'p', long)]
    pidfile: Option<PathBuf>,
    /// Parent cgroup of every container
    #[arg(long)]
    cgroup_parent: Option<String>,
    /// Remount the host's cgroup2 hierarchy with `favordynmods` (host-wide; makes container
    /// starts after a pause as fast as back-to-back ones; see docs/design/performance.md)
    #[arg(long)]
    cgroup_favordynmods: bool,
    /// Path of the berth-shim binary (default: next to berthd)
    #[arg(long)]
    shim: Option<PathBuf>,
    /// Debug output
    #[arg(short = 'D', long)]
    debug: bool,
    /// Linux bridge of the default network (default berth0)
    #[arg(short = 'b', long)]
    bridge: Option<String>,
    /// Address and prefix of the default bridge (e.g. 10.200.0.1/24)
    #[arg(long)]
    bip: Option<String>,
    /// Default address pool for networks: base=CIDR,size=N
    #[arg(long = "default-address-pool")]
    default_address_pool: Vec<String>,
    /// MTU of the default bridge
    #[arg(long)]
    mtu: Option<u32>,
    /// DNS server for containers
    #[arg(long)]
    dns: Vec<String>,
    /// berth's nftables table (ip family)
    #[arg(long)]
    nft_table: Option<String>,
    /// Print the crash-test failpoints compiled into this binary and exit
    #[arg(long, hide = true)]
    list_failpoints: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Check a data root offline, like fsck: every blob a record names exists and verifies,
    /// every snapshot belongs to an image or a container, container records and directories
    /// agree, no mount is leaked under the data root and no network namespace is pinned under
    /// the exec root for a container that is not running. Refuses while a daemon uses the data
    /// root. Exits 0 when clean, 1 with a list of findings, 2 when it cannot check.
    #[command(after_help = "Example:\n  berthd check --data-root /var/lib/berth\n  berthd check --repair")]
    Check {
        /// The data root to check
        #[arg(long, default_value = "/var/lib/berth")]
        data_root: PathBuf,
        /// The daemon's exec root, where containers' network namespaces are pinned (default
        /// /run/berth with the default data root; with another data root namespaces are checked
        /// only when this is given, as the two cannot be paired otherwise)
        #[arg(long)]
        exec_root: Option<PathBuf>,
        /// Fix what is safe to fix: remove orphans, finish interrupted removals, unmount leaks
        #[arg(long)]
        repair: bool,
    },
}

/// `--default-address-pool base=10.10.0.0/16,size=24`.
fn parse_pool(s: &str) -> anyhow::Result<berth_daemon::config::AddressPool> {
    let (mut base, mut size) = (None, None);
    for kv in s.split(',') {
        match kv.split_once('=') {
            Some(("base", v)) => base = Some(v.to_string()),
            Some(("size", v)) => size = Some(v.parse().context("invalid pool size")?),
            _ => anyhow::bail!("invalid default address pool: {s}"),
        }
    }
    Ok(berth_daemon::config::AddressPool {
        base: base.context("default address pool has no base")?,
        size: size.context("default address pool has no size")?,
    })
}

/// `berthd check`.
fn check(data_root: &std::path::Path, exec_root: Option<&std::path::Path>, repair: bool) -> i32 {
    let findings = match berth_daemon::check::check_offline(data_root, exec_root, repair) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("berthd check: {e}");
            return 2;
        }
    };
    for f in &findings {
        println!("{f}");
    }
    let open = findings.iter().filter(|f| !f.repaired).count();
    let repaired = findings.len() - open;
    match (open, repaired) {
        (0, 0) => println!("{}: no problems found", data_root.display()),
        (0, n) => println!("{}: {n} problem(s) repaired", data_root.display()),
        (n, 0) => println!("{}: {n} problem(s) found", data_root.display()),
        (n, r) => println!("{}: {r} problem(s) repaired, {n} remaining", data_root.display()),
    }
    i32::from(open > 0)
}

fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    if flags.command.is_none() && !flags.list_failpoints {
        // Before any thread: the daemon re-execs itself once without malloc's thread cache, so
        // memory freed when containers go can return to the system (berth_sys::heap).
        berth_sys::heap::without_thread_cache();
        // As dockerd: whatever umask berthd was started under, the directories and files it
        // and its shims make for containers (rootfs, bundle files, binds) get their usual
        // modes; private ones are created with explicit 0700/0600 anyway.
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    }
    berth_sys::times::init();
    if flags.list_failpoints {
        if !berth_sys::failpoint::enabled() {
            bail!("this berthd is built without failpoints (build with --features berth-sys/failpoints)");
        }
        for f in berth_sys::failpoint::DECLARED {
            println!("{f}");
        }
        return Ok(());
    }
    if let Some(Command::Check {
        data_root,
        exec_root,
        repair,
    }) = &flags.command
    {
        let exec_root = exec_root
            .clone()
            .or_else(|| (data_root == std::path::Path::new("/var/lib/berth")).then(|| "/run/berth".into()));
        std::process::exit(check(data_root, exec_root.as_deref(), *repair));
    }
    let file = FileConfig::load(&flags.config_file).map_err(anyhow::Error::msg)?;
    if !file.unapplied.is_empty() {
        eprintln!(
            "berthd: {}: berthd does not apply {} (dockerd options it lacks, or typos); they have no effect",
            flags.config_file.display(),
            file.unapplied.join(", ")
        );
    }
    let data_root = flags
        .data_root
        .or(file.data_root)
        .unwrap_or_else(|| "/var/lib/berth".into());
    let exec_root = flags
        .exec_root
        .or(file.exec_root)
        .unwrap_or_else(|| "/run/berth".into());
    let hosts = if !flags.host.is_empty() {
        flags.host
    } else {
        file.hosts
            .unwrap_or_else(|| vec![format!("unix://{}", exec_root.join("berth.sock").display())])
    };
    let group = flags.group.or(file.group).unwrap_or_else(|| "berth".into());
    let pidfile = flags
        .pidfile
        .or(file.pidfile)
        .unwrap_or_else(|| exec_root.join("berthd.pid"));
    let shim_path = match flags.shim {
        Some(p) => p,
        None => std::env::current_exe()?
            .parent()
            .context("berthd has no directory")?
            .join("berth-shim"),
    };
    let config = Config {
        data_root,
        exec_root: exec_root.clone(),
        cgroup_parent: flags
            .cgroup_parent
            .or(file.cgroup_parent)
            .unwrap_or_else(|| "berth".into()),
        shim_path,
        registry: berth_daemon::config::RegistrySettings {
            mirrors: file.registry_mirrors,
            insecure: file.insecure_registries,
            proxies: file.proxies,
            certs_dir: flags
                .config_file
                .parent()
                .map(|d| d.join("certs.d"))
                .unwrap_or_else(|| "/etc/berth/certs.d".into()),
        },
        debug: flags.debug || file.debug.unwrap_or(false),
        network: berth_daemon::config::NetworkConfig {
            bridge: flags.bridge.or(file.bridge).unwrap_or_else(|| "berth0".into()),
            bip: flags.bip.or(file.bip),
            pools: if flags.default_address_pool.is_empty() {
                file.default_address_pools
            } else {
                flags
                    .default_address_pool
                    .iter()
                    .map(|p| parse_pool(p))
                    .collect::<anyhow::Result<_>>()?
            },
            mtu: flags.mtu.or(file.mtu).unwrap_or(1500),
            dns: if flags.dns.is_empty() { file.dns } else { flags.dns },
            nft_table: flags
                .nft_table
                .or(file.nft_table)
                .unwrap_or_else(|| "berth".into()),
        },
    };
    // The daemon's own parent obeys the rule of a container's: it stays under the cgroup root.
    berth_runtime::cgroup_parent(&config.cgroup_parent).map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::create_dir_all(&exec_root).with_context(|| format!("cannot create {}", exec_root.display()))?;
    let _pid = socket::PidFile::create(&pidfile)?;
    if flags.cgroup_favordynmods || file.cgroup_favordynmods.unwrap_or(false) {
        use berth_daemon::dynmods::{favor_dynmods, Outcome};
        match favor_dynmods().context("cannot remount cgroup2 with favordynmods")? {
            Outcome::Set(p) => eprintln!(
                "berthd: remounted {} with favordynmods (cgroup-favordynmods)",
                p.display()
            ),
            Outcome::AlreadySet(p) => eprintln!("berthd: {} already has favordynmods", p.display()),
            Outcome::NoCgroup2 => {
                eprintln!("berthd: cgroup-favordynmods: no cgroup2 hierarchy is mounted; nothing to set")
            }
        }
    }

    // Two malloc arenas instead of glibc's 8 per core: blocking threads come and go, and memory
    // freed in one arena is not reused by another's allocations (bench/RESULTS.md, scale).
    berth_sys::heap::limit_arenas(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut listeners = Vec::new();
        for h in &hosts {
            let path = match h.strip_prefix("unix://") {
                Some(p) => PathBuf::from(p),
                None if h.starts_with('/') => PathBuf::from(h),
                None => bail!("unsupported host {h}: berthd listens on unix sockets only"),
            };
            listeners.push((socket::bind(&path, &group)?, path));
        }
        let daemon = Daemon::new(config).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        socket::notify_ready();
        // Start-up code (restore, network set-up, SQLite's schema checks) runs once; its pages
        // need not stay mapped (berth_sys::heap::release_code_pages).
        berth_sys::heap::release_code_pages();
        let mut tasks = Vec::new();
        for (l, path) in listeners {
            let d = daemon.clone();
            let handler = move |req| routes::handle(d.clone(), req);
            tasks.push(tokio::spawn(http::serve(l, path, handler)));
        }
        let daemon = daemon.clone();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        // Containers keep running under their shims (live restore); only the sockets go.
        daemon.shutdown();
        for h in &hosts {
            let p = h.strip_prefix("unix://").unwrap_or(h);
            let _ = std::fs::remove_file(p);
        }
        Ok(())
    })
}
