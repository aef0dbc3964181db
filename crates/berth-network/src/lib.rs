//! Container networking for berthd: bridges, veth pairs, addresses and routes (rtnetlink),
//! IPAM (pure; leases persisted by the daemon in berth-meta) and berth's own nftables table
//! (through libnftables, in process). No program is run per container.
//!
//! A container on a bridge network gets its own network namespace pinned at
//! `<exec-root>/netns/<id>` ([`berth_sys::netns`]); [`attach`] puts one end of a veth pair in it
//! as `eth0` with the leased address and a default route via the bridge, and the runtime is
//! handed the namespace path, so the shim knows nothing of networks.

pub mod dns;
pub mod ipam;
pub mod link;
pub mod rules;

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;

use berth_types::ErrorKind;

pub use ipam::{IpamError, Subnet};
pub use link::{LinkError, Netlink};
pub use rules::{PortRule, RuleNet};

/// Errors of network set-up and teardown.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Nft(#[from] berth_sys::nft::NftError),
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error("{op}: {source}")]
    Io {
        op: String,
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused one more port on the network's bridge (`EXFULL`).
    #[error(
        "the network's bridge {bridge} has no free port: a Linux bridge takes at most {max} \
         endpoints (the kernel's limit of 1024 ports). Remove containers from this network or \
         disconnect them, or put more containers on another network (berth network create)",
        max = BRIDGE_MAX_ENDPOINTS
    )]
    BridgeFull { bridge: String },
}

/// The most endpoints a Linux bridge takes: `BR_MAX_PORTS` (1024) less port number 0, which
/// the kernel never gives out.
pub const BRIDGE_MAX_ENDPOINTS: usize = 1023;

/// `EXFULL`: what adding a port to a full bridge fails with.
const EXFULL: i32 = 54;

impl NetError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            NetError::Ipam(IpamError::InvalidCidr(_) | IpamError::InvalidIp(_)) => ErrorKind::InvalidArgument,
            NetError::Ipam(_) | NetError::BridgeFull { .. } => ErrorKind::Conflict,
            _ => ErrorKind::Internal,
        }
    }

    fn io(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> NetError {
        let op = op.into();
        move |source| NetError::Io { op, source }
    }
}

pub type Result<T> = std::result::Result<T, NetError>;

/// A bridge network as the host sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeNet {
    /// The Linux bridge (`berth0`).
    pub bridge: String,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    pub mtu: u32,
    pub internal: bool,
    /// Traffic between the network's containers allowed (`enable_icc`, true by default).
    pub icc: bool,
    /// Outbound traffic masqueraded (`enable_ip_masquerade`, true by default).
    pub masquerade: bool,
    /// The host address a port published without one binds to (`host_binding_ipv4`; `None`:
    /// every address).
    pub host_binding: Option<Ipv4Addr>,
}

impl BridgeNet {
    pub fn rule_net(&self) -> RuleNet {
        RuleNet {
            bridge: self.bridge.clone(),
            subnet: self.subnet,
            internal: self.internal,
            icc: self.icc,
            masquerade: self.masquerade,
        }
    }
}

/// Creates (or adopts) the bridge with its gateway address, brings it up, and sets what
/// forwarding and published ports on loopback need: `ip_forward`, and `route_localnet` on the
/// bridge so 127.0.0.1 clients can be DNATed to it.
pub fn setup_bridge(net: &BridgeNet) -> Result<()> {
    let mut nl = Netlink::open()?;
    let index = nl.ensure_bridge(&net.bridge, net.mtu)?;
    nl.add_address(index, net.gateway, net.subnet.prefix)?;
    nl.set_up(index)?;
    if !net.internal {
        berth_sys::netns::sysctl("net/ipv4/ip_forward", "1")
            .map_err(NetError::io("enable net.ipv4.ip_forward"))?;
    }
    let key = format!("net/ipv4/conf/{}/route_localnet", net.bridge);
    berth_sys::netns::sysctl(&key, "1").map_err(NetError::io(format!("set {key}")))?;
    Ok(())
}

/// Deletes a bridge (user network removal); a missing one is fine.
pub fn remove_bridge(bridge: &str) -> Result<()> {
    Netlink::open()?.delete(bridge)?;
    Ok(())
}

/// Writes berth's whole table for these networks, atomically.
pub fn apply_rules(table: &str, nets: &[RuleNet]) -> Result<()> {
    berth_sys::nft::run(&rules::table_batch(table, nets))?;
    Ok(())
}

/// When Docker's `DOCKER-USER` chain exists (dockerd runs here: its FORWARD policy is DROP and
/// br_netfilter sends bridged frames through it), makes its berth rules accept traffic from and
/// to exactly `bridges` (none: removes them). Nothing else of Docker's is touched; no chain, no
/// change. The rules carry `comment "berth:TABLE"`, so daemons with their own tables keep apart.
/// Returns whether the chain exists. Rules already as wanted (each bridge's pair, ahead of every
/// rule of Docker's) are left alone: only a listing, so it is cheap to call again and again
/// (a dockerd that starts after berthd creates the chain without them).
pub fn sync_docker_user(table: &str, bridges: &[String]) -> Result<bool> {
    let mark = format!("berth:{table}");
    let listing = match berth_sys::nft::run_with_handles("list chain ip filter DOCKER-USER\n") {
        Ok(l) => l,
        Err(_) => return Ok(false),
    };
    let want: Vec<(&str, &str)> = bridges
        .iter()
        .flat_map(|b| [("iifname", b.as_str()), ("oifname", b.as_str())])
        .collect();
    if rules::docker_user_in_sync(&listing, &mark, &want) {
        return Ok(true);
    }
    let mut batch = String::new();
    for handle in rules::marked_handles(&listing, &mark) {
        batch.push_str(&format!("delete rule ip filter DOCKER-USER handle {handle}\n"));
    }
    for b in bridges {
        for dir in ["iifname", "oifname"] {
            batch.push_str(&format!(
                "insert rule ip filter DOCKER-USER {dir} \"{b}\" counter accept comment \"{mark}\"\n"
            ));
        }
    }
    if !batch.is_empty() {
        if let Err(e) = berth_sys::nft::run(&batch) {
            // The chain went between the listing and the change (a dockerd stopping and taking
            // its table with it): there is nothing to accept in.
            if berth_sys::nft::run("list chain ip filter DOCKER-USER\n").is_err() {
                return Ok(false);
            }
            return Err(e.into());
        }
    }
    Ok(true)
}

/// Removes berth's table (tests, and `berthd` tooling); a missing table is fine.
pub fn remove_table(table: &str) -> Result<()> {
    match berth_sys::nft::run(&format!("delete table ip {table}\n")) {
        Err(e) if e.0.contains("No such file") => Ok(()),
        r => r.map(|_| ()).map_err(Into::into),
    }
}

/// One container's endpoint on a bridge network.
#[derive(Debug, Clone)]
pub struct Endpoint<'a> {
    pub netns: &'a Path,
    /// The host end of the veth pair (≤ 15 characters).
    pub host_veth: &'a str,
    /// The interface name inside (`eth0`, `eth1`, …).
    pub ifname: &'a str,
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
    /// Whether to add the default route (a container's first network).
    pub default_route: bool,
}

/// Creates the veth pair with `eth0` inside the namespace, configures it (address, up, default
/// route) and brings `lo` up. On error the pair is deleted again. A bridge that has gone since
/// the daemon set it up (deleted by hand) is set up again first ([`setup_bridge`]); one that
/// exists is taken as it is, so a start costs one lookup, not the bridge's whole set-up.
///
/// Both ends get no IPv6 address before they come up (berth's networks are IPv4 only; `lo`
/// keeps `::1`). Otherwise every new interface sends IPv6 multicast (MLD reports, router and
/// neighbour solicitations), the bridge floods it to every port, and every container's stack
/// takes it in: a start's cost grew with the number of containers on the bridge
/// (docs/design/network.md, "A thousand containers on one bridge"). dockerd writes
/// `disable_ipv6` instead; that sysctl took ~0.35 ms per interface here, a netlink attribute
/// on a link that is still down costs next to nothing.
pub fn attach(net: &BridgeNet, ep: &Endpoint<'_>) -> Result<()> {
    let mut host = Netlink::open()?;
    let master = match host.index(&net.bridge)? {
        Some(i) => i,
        None => {
            setup_bridge(net)?;
            host.index(&net.bridge)?.ok_or_else(|| NetError::Io {
                op: format!("find bridge {}", net.bridge),
                source: std::io::Error::from_raw_os_error(19),
            })?
        }
    };
    let ns = std::fs::File::open(ep.netns).map_err(NetError::io(format!("open {}", ep.netns.display())))?;
    host.create_veth(ep.host_veth, master, net.mtu, ep.ifname, ep.mac, ns.as_raw_fd())
        .map_err(|e| match e.errno() {
            Some(EXFULL) => NetError::BridgeFull {
                bridge: net.bridge.clone(),
            },
            _ => e.into(),
        })?;
    let mut host_up = || -> Result<()> {
        let index = host.index(ep.host_veth)?.ok_or_else(|| NetError::Io {
            op: format!("find {}", ep.host_veth),
            source: std::io::Error::from_raw_os_error(19),
        })?;
        host.no_ipv6_addresses(index)?;
        host.set_up(index)?;
        Ok(())
    };
    let inside = || -> Result<()> {
        let mut nl = Netlink::open_in(ep.netns)?;
        if let Some(lo) = nl.index("lo")? {
            nl.set_up(lo)?;
        }
        let eth0 = nl.index(ep.ifname)?.ok_or_else(|| NetError::Io {
            op: format!("find {} in the container's namespace", ep.ifname),
            source: std::io::Error::from_raw_os_error(19),
        })?;
        nl.no_ipv6_addresses(eth0)?;
        nl.add_address(eth0, ep.ip, net.subnet.prefix)?;
        nl.set_up(eth0)?;
        if ep.default_route && !net.internal {
            nl.add_default_route(eth0, net.gateway)?;
        }
        Ok(())
    };
    if let Err(e) = host_up().and_then(|()| inside()) {
        let _ = Netlink::open().and_then(|mut h| h.delete(ep.host_veth));
        return Err(e);
    }
    Ok(())
}

/// Brings `lo` up in a namespace with no other network (`--network none`).
pub fn loopback_only(netns: &Path) -> Result<()> {
    let mut nl = Netlink::open_in(netns)?;
    if let Some(lo) = nl.index("lo")? {
        nl.set_up(lo)?;
    }
    Ok(())
}

/// Deletes the host end of a veth pair (its peer goes with it).
pub fn detach(host_veth: &str) -> Result<()> {
    Netlink::open()?.delete(host_veth)?;
    Ok(())
}

/// Adds published ports to the maps (one transaction: all or none).
pub fn add_ports(table: &str, ports: &[PortRule]) -> Result<()> {
    if ports.is_empty() {
        return Ok(());
    }
    berth_sys::nft::run(&rules::add_ports_batch(table, ports))?;
    Ok(())
}

/// Removes published ports; elements already gone are skipped, other failures reported.
pub fn remove_ports(table: &str, ports: &[PortRule]) -> Result<()> {
    let mut first = None;
    for cmd in rules::remove_port_cmds(table, ports) {
        if let Err(e) = berth_sys::nft::run(&cmd) {
            if !e.0.contains("No such file") && !e.0.contains("does not exist") && first.is_none() {
                first = Some(e);
            }
        }
    }
    match first {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// The map elements in the table now (for reconciliation): `(host_ip, proto, host_port,
/// container_ip)`.
pub fn list_ports(table: &str) -> Result<Vec<PortRule>> {
    let mut out = Vec::new();
    for (map, with_ip) in [("ports_any", false), ("ports_ip", true)] {
        let text = match berth_sys::nft::run(&format!("list map ip {table} {map}\n")) {
            Ok(t) => t,
            Err(e) if e.0.contains("No such file") => continue,
            Err(e) => return Err(e.into()),
        };
        out.extend(parse_elements(&text, with_ip));
    }
    Ok(out)
}

fn parse_elements(text: &str, with_ip: bool) -> Vec<PortRule> {
    let Some(start) = text.find("elements = {") else {
        return vec![];
    };
    let rest = &text[start + "elements = {".len()..];
    let body = &rest[..rest.find('}').unwrap_or(rest.len())];
    body.split(',')
        .filter_map(|e| {
            let (k, v) = e.split_once(':')?;
            let k: Vec<&str> = k.split('.').map(str::trim).collect();
            let v: Vec<&str> = v.split(" . ").map(str::trim).collect();
            let (host_ip, proto, port) = if with_ip {
                // "127.0.0.1 . tcp . 8080": the address itself has dots.
                let s = e.split_once(':')?.0;
                let parts: Vec<&str> = s.split(" . ").map(str::trim).collect();
                (
                    Some(parts.first()?.parse().ok()?),
                    parts.get(1)?.to_string(),
                    parts.get(2)?.parse().ok()?,
                )
            } else {
                (None, k.first()?.to_string(), k.get(1)?.parse().ok()?)
            };
            Some(PortRule {
                host_ip,
                host_port: port,
                proto,
                container_ip: v.first()?.parse().ok()?,
                container_port: v.get(1)?.parse().ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn listed_map_elements_parse_back_into_ports() {
        let any = "table ip berth {\n\tmap ports_any {\n\t\ttype inet_proto . inet_service : ipv4_addr . inet_service\n\t\telements = { tcp . 8080 : 10.1.0.2 . 80, udp . 53 : 10.1.0.3 . 53 }\n\t}\n}\n";
        let v = super::parse_elements(any, false);
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[1].proto.as_str(), v[1].host_port, v[1].container_port),
            ("udp", 53, 53)
        );
        let ip = "\t\telements = { 127.0.0.1 . tcp . 8081 : 10.1.0.2 . 80 }\n";
        let v = super::parse_elements(ip, true);
        assert_eq!(v[0].host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(
            v[0].container_ip,
            "10.1.0.2".parse::<std::net::Ipv4Addr>().unwrap()
        );
        assert_eq!(v[0].host_port, 8081);
    }
}
