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
    /// The default bridge, address pools, DNS servers and berth's nftables table.
    pub network: NetworkConfig,
}

/// dockerd's network settings (`bridge`, `bip`, `default-address-pools`, `mtu`, `dns`, …).
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// The default bridge's Linux name (`bridge`, default `berth0`).
    pub bridge: String,
    /// The default bridge's gateway address and prefix (`bip`, e.g. `10.200.0.1/24`); without
    /// it the bridge keeps the address it has, else gets the first free subnet of the pools.
    pub bip: Option<String>,
    /// `default-address-pools` bases (`[{"base":"10.10.0.0/16","size":24}]`); Docker's
    /// defaults when empty.
    pub pools: Vec<AddressPool>,
    /// `mtu` of the default bridge (1500).
    pub mtu: u32,
    /// `dns`: the servers containers (and the embedded DNS's forwarding) use instead of the
    /// host's resolv.conf.
    pub dns: Vec<String>,
    /// berth's own nftables table (`table ip berth`; `nft-table`, so two daemons can coexist).
    pub nft_table: String,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            bridge: "berth0".into(),
            bip: None,
            pools: vec![],
            mtu: 1500,
            dns: vec![],
            nft_table: "berth".into(),
        }
    }
}

/// One `default-address-pools` entry.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct AddressPool {
    pub base: String,
    pub size: u8,
}

/// The subset of daemon.json berthd reads. Other keys (dockerd's options berthd does not apply,
/// or typos) do not stop the daemon, but are named at start ([`FileConfig::unapplied`]) rather
/// than ignored without a word (dockerd refuses to start on a key it does not know).
#[derive(Debug, Default, Clone, Deserialize, serde::Serialize)]
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
    pub bridge: Option<String>,
    pub bip: Option<String>,
    #[serde(default)]
    pub default_address_pools: Vec<AddressPool>,
    pub mtu: Option<u32>,
    #[serde(default)]
    pub dns: Vec<String>,
    pub nft_table: Option<String>,
    /// `cgroup-favordynmods`: remount cgroup2 with `favordynmods` at start (see
    /// `berth_daemon::dynmods`).
    pub cgroup_favordynmods: Option<bool>,
    /// The file's top-level keys berthd does not apply.
    #[serde(skip)]
    pub unapplied: Vec<String>,
}

/// daemon.json `proxies` (dockerd 23+): for registry traffic, over the environment's
/// `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY`.
#[derive(Debug, Default, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
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
    /// Reads daemon.json's content, noting the keys berthd does not apply.
    pub fn parse(b: &[u8]) -> Result<Self, serde_json::Error> {
        let mut c: FileConfig = serde_json::from_slice(b)?;
        let given: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(b)?;
        let known = serde_json::to_value(FileConfig::default())?;
        c.unapplied = given
            .keys()
            .filter(|k| known.get(k.as_str()).is_none())
            .cloned()
            .collect();
        Ok(c)
    }

    /// Reads daemon.json; a missing file is an empty config, a malformed one is an error.
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        match std::fs::read(path) {
            Ok(b) => Self::parse(&b)
                .map_err(|e| format!("unable to configure the daemon with file {}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("unable to read {}: {e}", path.display())),
        }
    }
}

#[cfg(test)]
mod file_tests {
    use super::*;

    /// Keys berthd reads are applied; any other is named, not dropped without a word.
    #[test]
    fn daemon_json_keys_berthd_does_not_apply_are_named() {
        let c = FileConfig::parse(
            br#"{"mtu": 1400, "registry-mirrors": ["https://m.example"], "live-restore": true, "log-driver": "local"}"#,
        )
        .unwrap();
        assert_eq!(c.mtu, Some(1400));
        assert_eq!(c.registry_mirrors, ["https://m.example"]);
        let mut un = c.unapplied.clone();
        un.sort();
        assert_eq!(un, ["live-restore", "log-driver"]);
        assert!(FileConfig::parse(b"{}").unwrap().unapplied.is_empty());
        assert!(FileConfig::parse(br#"{"mtu": "x"}"#).is_err());
    }
}
