//! The daemon's side of networking: the default bridge at start, a container's endpoint at
//! start (lease → pinned namespace → veth → published ports), its teardown at exit (reverse
//! order, every error reported), and reconciliation at daemon start. The mechanics are
//! berth-network's; the leases are berth-meta's.

use std::collections::{BTreeSet, HashSet};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

use berth_network::{ipam, BridgeNet, Endpoint, PortRule, Subnet};
use serde::{Deserialize, Serialize};

use crate::config::NetworkConfig;
use crate::container::Doc;
use crate::error::{Error, Result};
use crate::Daemon;

/// The network name of the default bridge, as Docker calls it.
pub const DEFAULT: &str = "bridge";

/// The networks the daemon runs.
pub struct Networks {
    pub default: BridgeNet,
    /// The default bridge's network ID (stable for a bridge name and subnet).
    pub default_id: String,
    pub table: String,
    /// User-defined networks, as recorded.
    pub user: std::sync::RwLock<Vec<crate::networks::NetDoc>>,
    /// The embedded DNS servers, by container.
    pub(crate) dns: std::sync::Mutex<std::collections::HashMap<String, tokio::task::AbortHandle>>,
    /// Serialises address allocation (read the leases, pick, record).
    alloc: std::sync::Mutex<()>,
    /// Endpoint teardowns finishing in the background (`net_teardown.rs`).
    pub(crate) pending: crate::net_teardown::Pending,
    /// Serialises changes to berth's DOCKER-USER rules; true once berthd released them.
    pub(crate) docker_user: std::sync::Mutex<bool>,
}

/// A container's endpoint, kept in its record while it runs (what teardown undoes).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetState {
    pub netns: PathBuf,
    pub network: String,
    pub network_id: String,
    pub endpoint_id: String,
    pub host_veth: String,
    pub ip: String,
    pub prefix: u8,
    pub gateway: String,
    pub mac: String,
    #[serde(default)]
    pub ports: Vec<PortState>,
}

/// One published port: `host_ip` is empty for every address.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortState {
    pub host_ip: String,
    pub host_port: u16,
    pub proto: String,
    pub container_port: u16,
}

impl PortState {
    pub(crate) fn rule(&self, container_ip: Ipv4Addr) -> PortRule {
        PortRule {
            host_ip: self
                .host_ip
                .parse()
                .ok()
                .filter(|ip: &Ipv4Addr| !ip.is_unspecified()),
            host_port: self.host_port,
            proto: self.proto.clone(),
            container_ip,
            container_port: self.container_port,
        }
    }
}

fn sha_hex(s: &str) -> String {
    use sha2::Digest;
    berth_types::id::to_hex(&sha2::Sha256::digest(s.as_bytes()))
}

/// The subnet an existing bridge already routes (its address), from /proc/net/route.
fn existing_bridge_subnet(bridge: &str) -> Option<Subnet> {
    let text = std::fs::read_to_string("/proc/net/route").ok()?;
    text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.first() != Some(&bridge) || f.get(2) != Some(&"00000000") {
            return None;
        }
        let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
        let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
        Some(Subnet::new(
            Ipv4Addr::from(dest.to_le_bytes()),
            mask.count_ones() as u8,
        ))
    })
}

impl Networks {
    /// Sets up the default bridge and berth's table: `bip` if given, else the subnet the bridge
    /// already has, else the first pool subnet no host route overlaps.
    pub fn init(cfg: &NetworkConfig, db: &berth_meta::Db) -> Result<Self> {
        let (subnet, gateway) = match &cfg.bip {
            Some(bip) => ipam::parse_cidr(bip).map_err(|e| Error::invalid(e.to_string()))?,
            None => {
                let subnet = match existing_bridge_subnet(&cfg.bridge) {
                    Some(s) => s,
                    None => {
                        let pools: Vec<Subnet> = if cfg.pools.is_empty() {
                            ipam::docker_default_pools()
                        } else {
                            cfg.pools
                                .iter()
                                .filter_map(|p| {
                                    p.base
                                        .parse::<Subnet>()
                                        .ok()
                                        .map(|b| Subnet::new(b.addr, p.size.max(b.prefix)))
                                })
                                .collect()
                        };
                        ipam::first_free_pool(&pools, &berth_network::link::host_route_subnets())
                            .map_err(|e| Error::internal(e.to_string()))?
                    }
                };
                (subnet, subnet.first_host())
            }
        };
        let default = BridgeNet {
            bridge: cfg.bridge.clone(),
            subnet,
            gateway,
            mtu: cfg.mtu,
            internal: false,
            icc: true,
            masquerade: true,
            host_binding: None,
        };
        berth_network::setup_bridge(&default)?;
        let user = crate::networks::load_user_networks(db)?;
        let mut rules = vec![default.rule_net()];
        for n in &user {
            let b = n.bridge_net(cfg.mtu)?;
            if let Err(e) = berth_network::setup_bridge(&b) {
                eprintln!(
                    "berthd: network {}: cannot set up bridge {}: {e}",
                    n.name, n.bridge
                );
            }
            rules.push(b.rule_net());
        }
        berth_network::apply_rules(&cfg.nft_table, &rules)?;
        let bridges: Vec<String> = rules.iter().map(|r| r.bridge.clone()).collect();
        berth_network::sync_docker_user(&cfg.nft_table, &bridges)?;
        Ok(Networks {
            default_id: sha_hex(&format!("berth-bridge:{}:{}", cfg.bridge, subnet)),
            default,
            table: cfg.nft_table.clone(),
            user: std::sync::RwLock::new(user),
            dns: Default::default(),
            alloc: Default::default(),
            pending: Default::default(),
            docker_user: Default::default(),
        })
    }
}

/// Whether a network mode puts the container on the default bridge.
pub fn on_default_bridge(mode: &str) -> bool {
    matches!(mode, "" | "default" | "bridge")
}

/// Whether a network mode gives the container an endpoint of its own (a bridge network).
pub fn has_endpoint(mode: &str) -> bool {
    !matches!(mode, "host" | "none") && !mode.starts_with("container:")
}

/// `80/tcp` → (80, 80, "tcp"); `8000-8010/udp` → the range.
fn parse_port_key(key: &str) -> Result<(u16, u16, String)> {
    let (ports, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let bad = || Error::invalid(format!("invalid port specification: \"{key}\""));
    let (a, b) = match ports.split_once('-') {
        Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
        None => {
            let p = ports.parse().map_err(|_| bad())?;
            (p, p)
        }
    };
    if a == 0 || b < a || !matches!(proto, "tcp" | "udp" | "sctp") {
        return Err(bad());
    }
    Ok((a, b, proto.to_string()))
}

/// `HostPort`: empty (random), `8080`, or `8000-8010`.
fn parse_host_ports(s: &str, n: u16) -> Result<Option<(u16, u16)>> {
    if s.is_empty() {
        return Ok(None);
    }
    let bad = || Error::invalid(format!("invalid hostPort: {s}"));
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let p = s.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if b < a {
        return Err(bad());
    }
    // A host range for one container port picks the first free; for a range they pair up.
    if n > 1 && b - a + 1 != n {
        return Err(Error::invalid(format!(
            "invalid ranges specified for container and host Ports: {s}"
        )));
    }
    Ok(Some((a, b)))
}

/// `--ip` (`EndpointsConfig.<net>.IPAMConfig.IPv4Address`), recorded at create.
fn requested_ip(doc: &Doc, _mode: &str) -> Result<Option<Ipv4Addr>> {
    match doc.requested_ip.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| Error::invalid(format!("invalid IPv4 address: {s}"))),
        None => Ok(None),
    }
}

/// Checks `PortBindings` at create: port keys, protocols, host addresses and ports.
pub fn validate_ports(host: &berth_api::models::HostConfig) -> Result<()> {
    for (key, bindings) in host.port_bindings.clone().unwrap_or_default() {
        let (a, b, _) = parse_port_key(&key)?;
        for bind in bindings.unwrap_or_default() {
            let ip = bind.host_ip.unwrap_or_default();
            if !ip.is_empty() && ip.parse::<Ipv4Addr>().is_err() {
                return Err(Error::invalid(format!("invalid IP address: {ip}")));
            }
            parse_host_ports(bind.host_port.as_deref().unwrap_or(""), b - a + 1)?;
        }
    }
    Ok(())
}

/// The port bindings a container asks for, ranges expanded (host ports still 0 when random).
/// A requested binding: the port, and the host port range to choose from (`None`: random).
type Requested = (PortState, Option<(u16, u16)>);

pub fn requested_ports(doc: &Doc) -> Result<Vec<Requested>> {
    let mut out = Vec::new();
    let h = &doc.host_config;
    let mut bound = BTreeSet::new();
    for (key, bindings) in h.port_bindings.clone().unwrap_or_default() {
        let (a, b, proto) = parse_port_key(&key)?;
        for bind in bindings.unwrap_or_default() {
            let host_ip = bind.host_ip.unwrap_or_default();
            if !host_ip.is_empty() && host_ip.parse::<Ipv4Addr>().is_err() {
                return Err(Error::invalid(format!("invalid IP address: {host_ip}")));
            }
            let hp = parse_host_ports(bind.host_port.as_deref().unwrap_or(""), b - a + 1)?;
            for (i, cport) in (a..=b).enumerate() {
                let range = hp.map(|(ha, hb)| {
                    if b > a {
                        (ha + i as u16, ha + i as u16)
                    } else {
                        (ha, hb)
                    }
                });
                bound.insert((cport, proto.clone()));
                out.push((
                    PortState {
                        host_ip: host_ip.clone(),
                        host_port: 0,
                        proto: proto.clone(),
                        container_port: cport,
                    },
                    range,
                ));
            }
        }
    }
    if h.publish_all_ports.unwrap_or(false) {
        for key in doc.config.exposed_ports.clone().unwrap_or_default().iter() {
            let (a, b, proto) = parse_port_key(key)?;
            for cport in a..=b {
                if bound.insert((cport, proto.clone())) {
                    out.push((
                        PortState {
                            host_ip: String::new(),
                            host_port: 0,
                            proto: proto.clone(),
                            container_port: cport,
                        },
                        None,
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// Whether `ip:port/proto` can be bound on the host now (nothing else listens there).
fn host_port_free(ip: Ipv4Addr, port: u16, proto: &str) -> std::io::Result<()> {
    match proto {
        "udp" => UdpSocket::bind((ip, port)).map(|_| ()),
        _ => TcpListener::bind((ip, port)).map(|_| ()),
    }
}

/// A free ephemeral port from the kernel (`-p 80`, `-P`).
fn random_port(ip: Ipv4Addr, proto: &str) -> std::io::Result<u16> {
    match proto {
        "udp" => UdpSocket::bind((ip, 0))?.local_addr().map(|a| a.port()),
        _ => TcpListener::bind((ip, 0))?.local_addr().map(|a| a.port()),
    }
}

impl Daemon {
    pub(crate) fn netns_dir(&self) -> PathBuf {
        self.config.exec_root.join("netns")
    }

    /// Host ports held by running containers other than `except`.
    fn ports_in_use(&self, except: &str) -> HashSet<(String, u16, String)> {
        let c = self.containers.read().unwrap();
        c.by_id
            .values()
            .filter(|e| e.id != except)
            .filter_map(|e| e.with(|d| d.net.clone()))
            .flat_map(|n| n.ports.into_iter().map(|p| (p.host_ip, p.host_port, p.proto)))
            .collect()
    }

    /// Chooses the host ports (random ones, ranges) and checks none is taken.
    /// `default_ip`: the network's `host_binding_ipv4`, for ports published without an address.
    fn choose_ports(&self, doc: &Doc, default_ip: Option<Ipv4Addr>) -> Result<Vec<PortState>> {
        let used = self.ports_in_use(&doc.id);
        let taken = |ip: &str, port: u16, proto: &str| {
            used.iter()
                .any(|(i, p, pr)| *p == port && pr == proto && (i.is_empty() || ip.is_empty() || i == ip))
        };
        let mut out: Vec<PortState> = Vec::new();
        for (mut p, range) in requested_ports(doc)? {
            if let (true, Some(d)) = (p.host_ip.is_empty(), default_ip) {
                p.host_ip = d.to_string();
            }
            let ip: Ipv4Addr = p.host_ip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED);
            let shown = if p.host_ip.is_empty() {
                "0.0.0.0"
            } else {
                &p.host_ip
            };
            let mine =
                |port: u16, out: &[PortState]| out.iter().any(|o| o.host_port == port && o.proto == p.proto);
            match range {
                None => {
                    p.host_port = random_port(ip, &p.proto)
                        .map_err(|e| Error::internal(format!("cannot allocate a host port: {e}")))?;
                }
                Some((a, b)) => {
                    let mut last_err = None;
                    for port in a..=b {
                        if taken(&p.host_ip, port, &p.proto) || mine(port, &out) {
                            last_err = Some(format!(
                                "Bind for {shown}:{port} failed: port is already allocated"
                            ));
                            continue;
                        }
                        if let Err(e) = host_port_free(ip, port, &p.proto) {
                            last_err = Some(format!(
                                "Error starting userland proxy: listen {}4 {shown}:{port}: bind: {}",
                                p.proto,
                                berth_types::go_io_error(&e)
                            ));
                            continue;
                        }
                        p.host_port = port;
                        last_err = None;
                        break;
                    }
                    if let Some(e) = last_err {
                        return Err(Error::conflict(format!(
                            "driver failed programming external connectivity on endpoint {} ({}): {e}",
                            doc.name,
                            sha_hex(&doc.id)
                        )));
                    }
                }
            }
            out.push(p);
        }
        Ok(out)
    }

    /// Sets up a container's endpoint on the default bridge, undoing what was done on error.
    /// Blocking.
    pub(crate) fn net_setup(&self, doc: &Doc) -> Result<NetState> {
        // The previous run's veth name and namespace path may still be going.
        self.net_wait_teardown(&doc.id);
        if doc.detached {
            return self.net_setup_bare(doc);
        }
        self.net_setup_in(doc, true)
    }

    /// The namespace alone (`lo` up), for a container disconnected from the network it was
    /// created on: its connected networks join it. Blocking.
    fn net_setup_bare(&self, doc: &Doc) -> Result<NetState> {
        let mode = doc.host_config.network_mode.clone().unwrap_or_default();
        let st = NetState {
            netns: self.netns_dir().join(&doc.id),
            network: if on_default_bridge(&mode) {
                DEFAULT.to_string()
            } else {
                mode
            },
            ..Default::default()
        };
        std::fs::create_dir_all(self.netns_dir())
            .map_err(|e| Error::io("cannot create the netns directory", e))?;
        berth_sys::netns::create(&st.netns).map_err(|e| {
            Error::io(
                format!("cannot create the network namespace {}", st.netns.display()),
                e,
            )
        })?;
        if let Err(e) = berth_network::loopback_only(&st.netns) {
            let _ = berth_sys::netns::remove(&st.netns);
            return Err(e.into());
        }
        Ok(st)
    }

    /// Sets up the endpoint of the network a container was created on: in a new namespace
    /// (`create_ns`, a start) or in the one it has (`network connect` back to it). Blocking.
    pub(crate) fn net_setup_in(&self, doc: &Doc, create_ns: bool) -> Result<NetState> {
        let mode = doc.host_config.network_mode.clone().unwrap_or_default();
        // A dockerd started since the last check would drop this container's traffic.
        if let Some(n) = &self.networks {
            n.recheck_docker_user();
        }
        let (net, net_name, net_id, range) = self.resolve_net(&mode)?;
        let net = &net;
        let ports = self.choose_ports(doc, net.host_binding)?;
        // 1. The lease.
        let ip = self.lease_address(&net_id, net, range.as_ref(), &doc.id, requested_ip(doc, &mode)?)?;
        berth_sys::failpoint::hit("network.setup.leased");
        let state = NetState {
            netns: self.netns_dir().join(&doc.id),
            network: net_name,
            network_id: net_id,
            endpoint_id: sha_hex(&format!("{}:{}", doc.id, ip)),
            host_veth: format!("vb{}", &doc.id[..12]),
            ip: ip.to_string(),
            prefix: net.subnet.prefix,
            gateway: net.gateway.to_string(),
            // `--mac-address` (checked at create), else Docker's 02:42 + the address.
            mac: ipam::mac_string(
                &doc.config
                    .mac_address
                    .as_deref()
                    .and_then(ipam::parse_mac)
                    .unwrap_or_else(|| ipam::mac_for(ip)),
            ),
            ports,
        };
        if let Err(e) = self.net_build(net, &state, ip, create_ns) {
            let errs = if create_ns {
                self.net_teardown(&doc.id, &state)
            } else {
                self.endpoint_teardown(&doc.id, &state)
            };
            for err in errs {
                eprintln!("berthd: undoing the network of {}: {err}", doc.id);
            }
            return Err(e);
        }
        Ok(state)
    }

    /// The bridge network a mode or name means: (network, name, ID, `--ip-range`).
    pub(crate) fn resolve_net(&self, key: &str) -> Result<(BridgeNet, String, String, Option<Subnet>)> {
        let nets = self
            .networks
            .as_ref()
            .ok_or_else(|| Error::internal("bridge networking is not available on this daemon"))?;
        if on_default_bridge(key) {
            return Ok((
                nets.default.clone(),
                DEFAULT.to_string(),
                nets.default_id.clone(),
                None,
            ));
        }
        let n = self
            .user_network(key)
            .ok_or_else(|| Error::Missing(format!("network {key} not found")))?;
        let range = n.ip_range.as_deref().and_then(|r| r.parse::<Subnet>().ok());
        Ok((
            n.bridge_net(self.config.network.mtu)?,
            n.name.clone(),
            n.id.clone(),
            range,
        ))
    }

    /// Leases an address on a network: `requested` (`--ip`) if free and inside the subnet, else
    /// the lowest free one.
    pub(crate) fn lease_address(
        &self,
        net_id: &str,
        net: &BridgeNet,
        range: Option<&Subnet>,
        container: &str,
        requested: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr> {
        let nets = self.networks.as_ref().expect("resolved before");
        // An `--ip` still held by a container whose teardown finishes in the background is
        // free in a moment: wait for it rather than fail.
        if let Some(ip) = requested {
            let holder = self
                .db
                .all_leases()?
                .into_iter()
                .find(|l| l.network == net_id && l.address == ip.to_string())
                .map(|l| l.container);
            if let Some(h) = holder.filter(|h| nets.pending.contains(h)) {
                self.net_wait_teardown(&h);
            }
        }
        let _g = nets.alloc.lock().unwrap();
        let used: BTreeSet<Ipv4Addr> = self
            .db
            .leased_addresses(net_id)?
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        let ip = match requested {
            Some(ip) => {
                if !net.subnet.contains(ip) {
                    return Err(Error::invalid(format!(
                        "Invalid address {ip}: It does not belong to any of this network's subnets"
                    )));
                }
                if ip == net.gateway || ip == net.subnet.addr || ip == net.subnet.broadcast() {
                    return Err(Error::invalid(format!(
                        "no configured subnet or ip-range contain the IP address {ip}"
                    )));
                }
                if used.contains(&ip) {
                    return Err(Error::conflict("Address already in use".to_string()));
                }
                ip
            }
            None => ipam::next_free(&net.subnet, range, net.gateway, &used)
                .map_err(berth_network::NetError::from)?,
        };
        if !self.db.insert_lease(net_id, &ip.to_string(), container)? {
            return Err(Error::conflict("Address already in use".to_string()));
        }
        Ok(ip)
    }

    fn net_build(&self, net: &BridgeNet, st: &NetState, ip: Ipv4Addr, create_ns: bool) -> Result<()> {
        // The bridge was set up at daemon start (or network create); attach sets it up again
        // only if it has gone.
        let nets = self.networks.as_ref().expect("checked by net_setup");
        if create_ns {
            std::fs::create_dir_all(self.netns_dir())
                .map_err(|e| Error::io("cannot create the netns directory", e))?;
            berth_sys::netns::create(&st.netns).map_err(|e| {
                Error::io(
                    format!("cannot create the network namespace {}", st.netns.display()),
                    e,
                )
            })?;
            berth_sys::failpoint::hit("network.setup.netns-created");
        }
        berth_network::attach(
            net,
            &Endpoint {
                netns: &st.netns,
                host_veth: &st.host_veth,
                ifname: "eth0",
                ip,
                mac: ipam::parse_mac(&st.mac).unwrap_or_else(|| ipam::mac_for(ip)),
                default_route: true,
            },
        )?;
        berth_sys::failpoint::hit("network.setup.attached");
        let rules: Vec<PortRule> = st.ports.iter().map(|p| p.rule(ip)).collect();
        berth_network::add_ports(&nets.table, &rules)?;
        berth_sys::failpoint::hit("network.setup.ports-added");
        Ok(())
    }

    /// Undoes the endpoint of the network a container was created on while it keeps running
    /// in its namespace (`network disconnect`): ports, veth, then the lease. Blocking.
    pub(crate) fn endpoint_teardown(&self, id: &str, st: &NetState) -> Vec<Error> {
        let mut errs = self.endpoint_ports_down(st);
        if !st.host_veth.is_empty() {
            if let Err(e) = berth_network::detach(&st.host_veth) {
                errs.push(e.into());
            }
        }
        if !st.network_id.is_empty() {
            if let Err(e) = self.db.release_lease(&st.network_id, id) {
                errs.push(e.into());
            }
        }
        errs
    }

    /// At daemon start, after restore: what belongs to no running container goes (leases,
    /// pinned namespaces, port map elements); records of stopped containers lose their
    /// endpoint.
    pub(crate) fn net_reconcile(&self) {
        let Some(nets) = self.networks.as_ref() else {
            return;
        };
        let entries: Vec<_> = self.containers.read().unwrap().by_id.values().cloned().collect();
        let mut live_ids = HashSet::new();
        let mut live_ips = HashSet::new();
        // (network, container) of every endpoint a running container's record has.
        let mut live_leases = HashSet::new();
        for e in &entries {
            let running = e.status().is_running();
            match e.with(|d| d.net.clone()) {
                Some(st) if running => {
                    live_ids.insert(e.id.clone());
                    live_ips.insert(st.ip.clone());
                    if st.ip.is_empty() {
                        // Disconnected from its first network: a crash mid-disconnect may
                        // have left the veth.
                        let _ = berth_network::detach(&format!("vb{}", &e.id[..12]));
                    } else {
                        live_leases.insert((st.network_id.clone(), e.id.clone()));
                    }
                    for c in e.with(|d| d.connected.clone()) {
                        if let Some(x) = c.state {
                            live_leases.insert((x.network_id, e.id.clone()));
                        }
                    }
                }
                Some(st) => {
                    for c in e.with(|d| d.connected.clone()) {
                        if let Some(x) = c.state {
                            for err in self.extra_teardown(&e.id, &x) {
                                eprintln!("berthd: reconcile: network of {}: {err}", e.id);
                            }
                        }
                    }
                    for err in self.net_teardown(&e.id, &st) {
                        eprintln!("berthd: reconcile: network of {}: {err}", e.id);
                    }
                    e.update(|d| {
                        d.net = None;
                        d.connected.iter_mut().for_each(|c| c.state = None);
                    });
                    let _ = self.persist(e);
                }
                None => {}
            }
        }
        if let Ok(leases) = self.db.all_leases() {
            for l in leases.iter().filter(|l| !live_ids.contains(&l.container)) {
                // A crash during a background teardown can leave the veth: it goes before the
                // address (and the MAC derived from it) can be handed out again.
                if let Some(short) = l.container.get(..12) {
                    let _ = berth_network::detach(&format!("vb{short}"));
                }
                eprintln!(
                    "berthd: reconcile: releasing the lease of {} on {} held by {}",
                    l.address, l.network, l.container
                );
                let _ = self.db.release_leases(&l.container);
            }
            for l in leases.iter().filter(|l| {
                live_ids.contains(&l.container)
                    && !live_leases.contains(&(l.network.clone(), l.container.clone()))
            }) {
                eprintln!(
                    "berthd: reconcile: releasing the lease of {} on {} its container no longer has",
                    l.address, l.network
                );
                let _ = self.db.release_lease(&l.network, &l.container);
            }
        }
        if let Ok(dir) = std::fs::read_dir(self.netns_dir()) {
            for ent in dir.flatten() {
                let name = ent.file_name().to_string_lossy().into_owned();
                if !live_ids.contains(&name) {
                    if let Some(short) = name.get(..12) {
                        let _ = berth_network::detach(&format!("vb{short}"));
                    }
                    eprintln!("berthd: reconcile: removing the network namespace of {name}");
                    let _ = berth_sys::netns::remove(&ent.path());
                }
            }
        }
        if let Ok(ports) = berth_network::list_ports(&nets.table) {
            let stale: Vec<PortRule> = ports
                .into_iter()
                .filter(|p| !live_ips.contains(&p.container_ip.to_string()))
                .collect();
            if !stale.is_empty() {
                eprintln!(
                    "berthd: reconcile: removing {} published port(s) of containers no longer running",
                    stale.len()
                );
                let _ = berth_network::remove_ports(&nets.table, &stale);
            }
        }
    }
}

/// Writes a started container's hosts file: `base` (localhost, `--add-host`), its links'
/// lines, then its own line (`IP\thostname`), as docker's sandbox writes them at each start
/// (without fsyncs unless `durable`: a `--rm` container's files die with the host).
pub fn write_hosts(
    bundle: &Path,
    base: &str,
    links: &[String],
    ip: &str,
    hostname: &str,
    durable: bool,
) -> Result<()> {
    let path = bundle.join("hosts");
    let mut out = base.to_string();
    for l in links {
        out.push_str(l);
        out.push('\n');
    }
    if !ip.is_empty() {
        out.push_str(&format!("{ip}\t{hostname}\n"));
    }
    berth_sys::fs::write_atomic_as(
        &path,
        out.as_bytes(),
        crate::perms::CONTAINER_VISIBLE_FILE,
        durable,
    )
    .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

/// Leaked network state under an exec root, for `berthd check`: pinned namespaces.
pub fn leaked_netns(exec_root: &Path, live: &HashSet<String>) -> Vec<PathBuf> {
    std::fs::read_dir(exec_root.join("netns"))
        .map(|d| {
            d.flatten()
                .filter(|e| !live.contains(&e.file_name().to_string_lossy().into_owned()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_keys_and_host_ranges_parse_as_docker_reads_them() {
        assert_eq!(parse_port_key("80/tcp").unwrap(), (80, 80, "tcp".into()));
        assert_eq!(parse_port_key("80-90/udp").unwrap(), (80, 90, "udp".into()));
        assert!(parse_port_key("80/icmp").is_err());
        assert!(parse_port_key("x/tcp").is_err());
        assert_eq!(parse_host_ports("", 1).unwrap(), None);
        assert_eq!(parse_host_ports("8000-8010", 11).unwrap(), Some((8000, 8010)));
        assert!(parse_host_ports("8000-8001", 3).is_err());
        assert!(parse_host_ports("99999", 1).is_err());
    }
}
