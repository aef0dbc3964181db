//! Daemon configuration: dockerd's flags merged over `daemon.json`.

use serde::Deserialize;
use std::path::PathBuf;

/// Everything `Daemon::new` needs. Every root is a parameter so two daemons run side by side.
#[derive(Debug, Clone)]
pub struct Config {
    /// Persistent state (`--data-root`, default /var/lib/berth).
    pub data_root: PathBuf,
    /// Runtime state: sockets, shim sockets (`--exec-root`, default /run/berth).
    pub exec_root: PathBuf,
    /// Parent of every container's cgroup (`--cgroup-parent`, default `berth`).
    pub cgroup_parent: String,
    /// The `berth-shim` binary; default: next to the running executable.
    pub shim_path: PathBuf,
    /// Registries: mirrors (reported by `info`), insecure registries, proxies, certs.d.
    pub registry: RegistrySettings,
    /// Debug logging.
    pub debug: bool,
}

/// The subset of daemon.json berthd reads; unknown keys are accepted and ignored, as dockerd's
/// reload would reject but its start tolerates for forward compatibility.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FileConfig {
    pub data_root: Option<PathBuf>,
    pub exec_root: Option<PathBuf>,
    pub hosts: Option<Vec<String>>,
    pub group: Option<String>,
    pub pidfile: Option<PathBuf>,
    pub cgroup_parent: Option<String>,
    pub debug: Option<bool>,
    #[serde(default)]
    pub registry_mirrors: Vec<String>,
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    #[serde(default)]
    pub proxies: Proxies,
}

/// daemon.json `proxies` (dockerd 23+): for registry traffic, over the environment's
/// `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY`.
#[derive(Debug, Default, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct Proxies {
    pub http_proxy: Option<String>,
    pub https_proxy: Option<String>,
    pub no_proxy: Option<String>,
}

/// How berthd reaches registries.
#[derive(Debug, Default, Clone)]
pub struct RegistrySettings {
    /// `registry-mirrors`: Docker Hub pulls try these first, in order.
    pub mirrors: Vec<String>,
    /// `insecure-registries`: `host[:port]` or CIDR, spoken to over plain http when https fails.
    pub insecure: Vec<String>,
    pub proxies: Proxies,
    /// `<config-dir>/certs.d/<host[:port]>/`: CAs, client certificates and `hosts.toml`; the
    /// config dir is the directory of `--config-file` (default `/etc/berth`).
    pub certs_dir: std::path::PathBuf,
}

impl FileConfig {
    /// Reads daemon.json; a missing file is an empty config, a malformed one is an error.
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| format!("unable to configure the daemon with file {}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("unable to read {}: {e}", path.display())),
        }
    }
}
