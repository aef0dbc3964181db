//! Network objects: the built-in `bridge`, `host` and `none`, and user-defined bridge networks
//! (`docker network create/ls/inspect/rm/prune`), recorded in berth-meta and set up as bridges
//! at create and at daemon start.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use berth_network::{ipam, BridgeNet, Subnet};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::Daemon;

/// A user-defined network's record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetDoc {
    pub id: String,
    pub name: String,
    pub created: String,
    pub driver: String,
    /// The Linux bridge (`br-<id[..12]>` or `com.docker.network.bridge.name`).
    pub bridge: String,
    pub subnet: String,
    pub gateway: String,
    /// Whether the creator gave the gateway (inspect shows it only then).
    pub gateway_given: bool,
    pub ip_range: Option<String>,
    pub internal: bool,
    pub attachable: bool,
    pub labels: HashMap<String, String>,
    pub options: HashMap<String, String>,
    /// `IPAM.Options` as sent: `{}` from the CLI, `null` from docker-py.
    pub ipam_options: Option<HashMap<String, String>>,
}

impl NetDoc {
    pub fn bridge_net(&self, mtu: u32) -> Result<BridgeNet> {
        let subnet: Subnet = self
            .subnet
            .parse()
            .map_err(|e: ipam::IpamError| Error::internal(e.to_string()))?;
        let opts = BridgeOptions::of_record(&self.name, &self.options);
        Ok(BridgeNet {
            bridge: self.bridge.clone(),
            subnet,
            gateway: self.gateway.parse().map_err(|_| Error::internal("bad gateway"))?,
            mtu: opts.mtu.unwrap_or(mtu),
            internal: self.internal,
            icc: opts.icc,
            masquerade: opts.masquerade,
            host_binding: opts.host_binding.filter(|ip| !ip.is_unspecified()),
        })
    }
}

/// The bridge driver's options (`network create -o`) berth applies. Other
/// `com.docker.network.*` options are refused rather than recorded and ignored; options
/// outside that namespace are kept as given (dockerd keeps them too).
#[derive(Debug, PartialEq)]
pub(crate) struct BridgeOptions {
    pub mtu: Option<u32>,
    pub icc: bool,
    pub masquerade: bool,
    pub host_binding: Option<Ipv4Addr>,
}

impl Default for BridgeOptions {
    /// The bridge driver's defaults: the daemon's MTU, traffic between containers and
    /// masquerading on, ports on every address.
    fn default() -> Self {
        BridgeOptions {
            mtu: None,
            icc: true,
            masquerade: true,
            host_binding: None,
        }
    }
}

impl BridgeOptions {
    /// The options of a recorded network: checked at its create, except for a network made by
    /// an older berthd, whose options that do not check out are left out (and said so), so that
    /// it still comes up.
    fn of_record(name: &str, options: &HashMap<String, String>) -> BridgeOptions {
        match BridgeOptions::of(options) {
            Ok(o) => o,
            Err(e) => {
                // Said once per network and daemon, not at every start on it.
                static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
                let mut said = SAID.lock().unwrap_or_else(|p| p.into_inner());
                if !said.iter().any(|n| n == name) {
                    said.push(name.to_string());
                    eprintln!("berthd: network {name}: {e}; its other options apply");
                }
                let mut o = BridgeOptions::default();
                for (k, v) in options {
                    if let Ok(one) = BridgeOptions::of(&HashMap::from([(k.clone(), v.clone())])) {
                        o.mtu = one.mtu.or(o.mtu);
                        o.host_binding = one.host_binding.or(o.host_binding);
                        o.icc &= one.icc;
                        o.masquerade &= one.masquerade;
                    }
                }
                o
            }
        }
    }

    pub(crate) fn of(options: &HashMap<String, String>) -> Result<BridgeOptions> {
        let mut o = BridgeOptions::default();
        let bool_of = |k: &str, v: &str| {
            berth_api::parse_go_bool(v).map_err(|e| Error::invalid(format!("failed to parse {k} value: {e}")))
        };
        for (k, v) in options {
            match k.as_str() {
                "com.docker.network.bridge.name" => {}
                "com.docker.network.driver.mtu" => {
                    let mtu: u32 = v
                        .parse()
                        .ok()
                        .filter(|m| (68..=65535).contains(m))
                        .ok_or_else(|| Error::invalid(format!("invalid MTU number: {v}")))?;
                    o.mtu = Some(mtu);
                }
                "com.docker.network.bridge.enable_icc" => o.icc = bool_of(k, v)?,
                "com.docker.network.bridge.enable_ip_masquerade" => o.masquerade = bool_of(k, v)?,
                "com.docker.network.bridge.host_binding_ipv4" => {
                    o.host_binding = Some(v.parse().map_err(|_| {
                        Error::invalid(format!("invalid IP address for {k}: {v:?}"))
                    })?);
                }
                k if k.starts_with("com.docker.network.") => {
                    return Err(Error::invalid(format!(
                        "network option {k} is not supported by berth's bridge driver (it applies com.docker.network.bridge.name, com.docker.network.driver.mtu, com.docker.network.bridge.enable_icc, com.docker.network.bridge.enable_ip_masquerade and com.docker.network.bridge.host_binding_ipv4)"
                    )))
                }
                _ => {}
            }
        }
        Ok(o)
    }
}

/// Whether bridged frames meet the `ip` family's rules (br_netfilter, `bridge-nf-call-iptables`).
fn bridged_traffic_filtered() -> bool {
    std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables").is_ok_and(|v| v.trim() == "1")
}

/// What `POST /networks/create` carries.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateRequest {
    pub name: String,
    pub driver: Option<String>,
    #[serde(rename = "IPAM")]
    pub ipam: Option<IpamRequest>,
    pub internal: Option<bool>,
    pub attachable: Option<bool>,
    pub options: Option<HashMap<String, String>>,
    pub labels: Option<HashMap<String, String>>,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamRequest {
    pub driver: Option<String>,
    pub config: Option<Vec<PoolRequest>>,
    pub options: Option<HashMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PoolRequest {
    pub subnet: Option<String>,
    #[serde(rename = "IPRange")]
    pub ip_range: Option<String>,
    pub gateway: Option<String>,
}

const BUILTIN: [&str; 3] = ["bridge", "host", "none"];

/// The ID of the built-in `host` or `none` network.
pub(crate) fn builtin_id(name: &str) -> String {
    sha_hex(&format!("berth-builtin:{name}"))
}

fn sha_hex(s: &str) -> String {
    use sha2::Digest;
    berth_types::id::to_hex(&sha2::Sha256::digest(s.as_bytes()))
}

impl Daemon {
    fn nets(&self) -> Result<&crate::network::Networks> {
        self.networks
            .as_ref()
            .ok_or_else(|| Error::internal("networking is not available on this daemon"))
    }

    /// A user network by name, full ID or unique ID prefix.
    pub(crate) fn user_network(&self, key: &str) -> Option<NetDoc> {
        let nets = self.networks.as_ref()?;
        let user = nets.user.read().unwrap();
        if let Some(n) = user.iter().find(|n| n.name == key || n.id == key) {
            return Some(n.clone());
        }
        let mut m = user.iter().filter(|n| !key.is_empty() && n.id.starts_with(key));
        match (m.next(), m.next()) {
            (Some(n), None) => Some(n.clone()),
            _ => None,
        }
    }

    /// `POST /networks/create`.
    pub fn create_network(&self, req: CreateRequest) -> Result<String> {
        let nets = self.nets()?;
        let name = req.name.trim().to_string();
        if name.is_empty() {
            return Err(Error::invalid("network name cannot be empty"));
        }
        if BUILTIN.contains(&name.as_str()) {
            return Err(Error::Forbidden(format!(
                "operation is not permitted on predefined {name} network "
            )));
        }
        if self.user_network(&name).is_some_and(|n| n.name == name) {
            return Err(Error::conflict(format!(
                "network with name {name} already exists"
            )));
        }
        let driver = req
            .driver
            .clone()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "bridge".into());
        if driver != "bridge" {
            return Err(Error::Missing(format!("plugin \"{driver}\" not found")));
        }
        if req.enable_ipv6 == Some(true) {
            return Err(Error::NotImplemented(
                "berth's networks are IPv4 only: create the network without IPv6 (EnableIPv6)".into(),
            ));
        }
        let ipam = req.ipam.clone().unwrap_or_default();
        let pool = ipam
            .config
            .clone()
            .unwrap_or_default()
            .into_iter()
            .next()
            .unwrap_or_default();
        let mut taken: Vec<Subnet> = vec![nets.default.subnet];
        taken.extend(
            nets.user
                .read()
                .unwrap()
                .iter()
                .filter_map(|n| n.subnet.parse::<Subnet>().ok()),
        );
        let subnet = match pool.subnet.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => {
                let (sn, _) = ipam::parse_cidr(s)
                    .map_err(|_| Error::invalid(format!("Invalid subnet {s} : invalid CIDR address: {s}")))?;
                if taken.iter().any(|t| t.overlaps(&sn)) {
                    return Err(Error::Forbidden(
                        "Pool overlaps with other one on this address space".into(),
                    ));
                }
                sn
            }
            None => {
                let mut routes = berth_network::link::host_route_subnets();
                routes.extend(taken.iter().copied());
                let pools = if self.config.network.pools.is_empty() {
                    ipam::docker_default_pools()
                } else {
                    self.config
                        .network
                        .pools
                        .iter()
                        .filter_map(|p| p.base.parse::<Subnet>().ok().map(|b| (b, p.size)))
                        .flat_map(|(b, size)| {
                            let n = 1u32 << (size.saturating_sub(b.prefix)).min(16);
                            (0..n).map(move |i| {
                                Subnet::new(
                                    Ipv4Addr::from(u32::from(b.addr) + (i << (32 - size as u32))),
                                    size,
                                )
                            })
                        })
                        .collect()
                };
                ipam::first_free_pool(&pools, &routes).map_err(|e| Error::Forbidden(e.to_string()))?
            }
        };
        let gateway = match pool.gateway.as_deref().filter(|g| !g.is_empty()) {
            Some(g) => {
                let ip: Ipv4Addr = g
                    .parse()
                    .map_err(|_| Error::invalid(format!("invalid gateway address: {g}")))?;
                if !subnet.contains(ip) {
                    return Err(Error::Forbidden(format!("no matching subnet for gateway {g}")));
                }
                ip
            }
            None => subnet.first_host(),
        };
        let ip_range = match pool.ip_range.as_deref().filter(|r| !r.is_empty()) {
            Some(r) => {
                let (rn, _) =
                    ipam::parse_cidr(r).map_err(|_| Error::invalid(format!("invalid CIDR address: {r}")))?;
                if !subnet.contains(rn.addr) || rn.prefix < subnet.prefix {
                    return Err(Error::Forbidden(format!("no matching subnet for range {r}")));
                }
                Some(rn.to_string())
            }
            None => None,
        };
        let created = berth_types::time::rfc3339_nano(berth_types::time::now_nanos());
        let id = sha_hex(&format!("{name}:{created}:{}", std::process::id()));
        let options = req.options.clone().unwrap_or_default();
        let opts = BridgeOptions::of(&options)?;
        // Containers on one bridge reach each other without routing: only br_netfilter hands
        // those frames to the table's rules. Without it, enable_icc=false would do nothing.
        if !opts.icc && !bridged_traffic_filtered() {
            return Err(Error::invalid(
                "com.docker.network.bridge.enable_icc=false needs br_netfilter with net.bridge.bridge-nf-call-iptables=1 on this host, which berthd does not change: load br_netfilter and set the sysctl first",
            ));
        }
        let bridge = options
            .get("com.docker.network.bridge.name")
            .cloned()
            .unwrap_or_else(|| format!("br-{}", &id[..12]));
        if bridge.len() > 15 {
            return Err(Error::invalid(format!(
                "bridge name {bridge} is longer than 15 characters"
            )));
        }
        let doc = NetDoc {
            id: id.clone(),
            name: name.clone(),
            created,
            driver,
            bridge,
            subnet: subnet.to_string(),
            gateway: gateway.to_string(),
            gateway_given: pool.gateway.as_deref().is_some_and(|g| !g.is_empty()),
            ip_range,
            internal: req.internal.unwrap_or(false),
            attachable: req.attachable.unwrap_or(false),
            labels: req.labels.clone().unwrap_or_default(),
            options,
            ipam_options: ipam.options.clone(),
        };
        // The record first, then the bridge and the rules: a crash in between leaves a record
        // whose bridge the next start sets up (bridges are made from records, never the reverse).
        let bnet = doc.bridge_net(self.config.network.mtu)?;
        let row = berth_meta::NetworkRow {
            id: id.clone(),
            name: name.clone(),
            doc: serde_json::to_string(&doc)?,
        };
        if !self.db.insert_network(&row)? {
            return Err(Error::conflict(format!(
                "network with name {name} already exists"
            )));
        }
        berth_sys::failpoint::hit("network.create.committed");
        let set_up = || -> Result<()> {
            berth_network::setup_bridge(&bnet)?;
            let mut user = nets.user.write().unwrap();
            user.push(doc.clone());
            if let Err(e) = self.apply_all_rules(&user) {
                user.pop();
                return Err(e);
            }
            Ok(())
        };
        if let Err(e) = set_up() {
            let _ = berth_network::remove_bridge(&bnet.bridge);
            let _ = self.db.delete_network(&id);
            return Err(e);
        }
        self.emit_network("create", &id, &name, None);
        Ok(id)
    }

    pub(crate) fn apply_all_rules(&self, user: &[NetDoc]) -> Result<()> {
        let nets = self.nets()?;
        let mut all = vec![nets.default.rule_net()];
        for n in user {
            all.push(n.bridge_net(self.config.network.mtu)?.rule_net());
        }
        berth_network::apply_rules(&nets.table, &all)?;
        nets.sync_docker_user(&nets.bridges(user))?;
        Ok(())
    }

    pub(crate) fn emit_network(&self, action: &str, id: &str, name: &str, container: Option<&str>) {
        let mut attrs = BTreeMap::new();
        if let Some(c) = container {
            attrs.insert("container".to_string(), c.to_string());
        }
        attrs.insert("name".to_string(), name.to_string());
        // The driver's name, as dockerd's network events carry it.
        let driver = match name {
            "none" => "null",
            "host" => "host",
            _ => "bridge",
        };
        attrs.insert("type".to_string(), driver.to_string());
        self.events.emit("network", action, id, attrs);
    }

    /// Containers with an endpoint on network `id` now: (container id, name, state).
    fn endpoints_on(&self, network_id: &str) -> Vec<(String, String, crate::network::NetState)> {
        let c = self.containers.read().unwrap();
        let mut v: Vec<_> = c
            .by_id
            .values()
            .filter_map(|e| {
                e.with(|d| {
                    d.net
                        .iter()
                        .chain(d.connected.iter().filter_map(|c| c.state.as_ref()))
                        .find(|n| n.network_id == network_id)
                        .map(|n| (d.id.clone(), d.name.clone(), n.clone()))
                })
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Containers configured for network `name` (running or not).
    fn users_of(&self, name: &str, id: &str) -> Vec<String> {
        let c = self.containers.read().unwrap();
        c.by_id
            .values()
            .filter(|e| {
                e.with(|d| {
                    let m = d.host_config.network_mode.clone().unwrap_or_default();
                    ((m == name || m == id) && !d.detached) || d.connected.iter().any(|c| c.network_id == id)
                })
            })
            .map(|e| e.id.clone())
            .collect()
    }

    /// `DELETE /networks/{id}`.
    pub fn remove_network(&self, key: &str) -> Result<()> {
        // A veth still being deleted in the background would outlive its bridge's record.
        self.net_wait_all_teardowns();
        if BUILTIN.contains(&key) {
            return Err(Error::Forbidden(format!(
                "{key} is a pre-defined network and cannot be removed"
            )));
        }
        let nets = self.nets()?;
        let n = self
            .user_network(key)
            .ok_or_else(|| Error::Missing(format!("network {key} not found")))?;
        if !self.endpoints_on(&n.id).is_empty() {
            return Err(Error::Forbidden(format!(
                "error while removing network: network {} id {} has active endpoints",
                n.name, n.id
            )));
        }
        // The rules and the bridge first, then the record: a crash in between leaves a record
        // whose bridge the next start sets up again, never a bridge no record names.
        let mut user = nets.user.write().unwrap();
        user.retain(|u| u.id != n.id);
        let r1 = self.apply_all_rules(&user);
        drop(user);
        let r2 = berth_network::remove_bridge(&n.bridge);
        berth_sys::failpoint::hit("network.rm.bridge-removed");
        self.db.delete_network(&n.id)?;
        self.emit_network("destroy", &n.id, &n.name, None);
        r1?;
        r2?;
        Ok(())
    }

    /// `POST /networks/prune`: every user network no container is configured for.
    pub fn prune_networks(&self, filters: &BTreeMap<String, Vec<String>>) -> Result<Vec<String>> {
        let nets = self.nets()?;
        let all: Vec<NetDoc> = nets.user.read().unwrap().clone();
        let mut removed = Vec::new();
        for n in all {
            if !label_filters_match(&n.labels, filters) || !self.users_of(&n.name, &n.id).is_empty() {
                continue;
            }
            if self.remove_network(&n.id).is_ok() {
                removed.push(n.name);
            }
        }
        self.emit_prune("network", 0);
        Ok(removed)
    }

    /// `GET /networks`: built-ins and user networks (`Containers` always `{}` here).
    pub fn list_networks(&self, filters: &BTreeMap<String, Vec<String>>) -> Result<Vec<Value>> {
        for k in filters.keys() {
            if !["dangling", "driver", "id", "label", "name", "scope", "type"].contains(&k.as_str()) {
                return Err(Error::invalid(format!("Invalid filter '{k}'")));
            }
        }
        if let Some(t) = filters
            .get("type")
            .into_iter()
            .flatten()
            .find(|t| !matches!(t.as_str(), "builtin" | "custom"))
        {
            return Err(Error::invalid(format!("invalid filter: 'type'='{t}'")));
        }
        let mut out = Vec::new();
        for name in BUILTIN {
            out.push(self.builtin_json(name, false)?);
        }
        let user: Vec<NetDoc> = self.nets()?.user.read().unwrap().clone();
        for n in &user {
            out.push(self.user_json(n, false));
        }
        out.retain(|v| {
            let get = |k: &str| v[k].as_str().unwrap_or("").to_string();
            let builtin = BUILTIN.contains(&get("Name").as_str());
            let labels: HashMap<String, String> =
                serde_json::from_value(v["Labels"].clone()).unwrap_or_default();
            filters.iter().all(|(k, vals)| match k.as_str() {
                "name" => vals.iter().any(|x| get("Name").contains(x.as_str())),
                "id" => vals.iter().any(|x| get("Id").starts_with(x.as_str())),
                "driver" => vals.iter().any(|x| *x == get("Driver")),
                "scope" => vals.iter().any(|x| *x == get("Scope")),
                "type" => vals
                    .iter()
                    .any(|x| (x == "builtin") == builtin && (x == "builtin" || x == "custom")),
                "label" => {
                    label_filters_match(&labels, &BTreeMap::from([("label".to_string(), vals.clone())]))
                }
                "dangling" => {
                    let want = vals.iter().any(|x| x == "true" || x == "1");
                    let used = builtin || !self.users_of(&get("Name"), &get("Id")).is_empty();
                    want != used
                }
                _ => true,
            })
        });
        Ok(out)
    }

    /// `GET /networks/{id}`.
    pub fn inspect_network(&self, key: &str) -> Result<Value> {
        let nets = self.nets()?;
        if BUILTIN.contains(&key)
            || key == nets.default_id
            || (key.len() >= 12 && nets.default_id.starts_with(key))
        {
            let name = if BUILTIN.contains(&key) { key } else { "bridge" };
            return self.builtin_json(name, true);
        }
        for b in ["host", "none"] {
            if builtin_id(b).starts_with(key) && key.len() >= 12 {
                return self.builtin_json(b, true);
            }
        }
        let n = self
            .user_network(key)
            .ok_or_else(|| Error::Missing(format!("network {key} not found")))?;
        Ok(self.user_json(&n, true))
    }

    fn containers_json(&self, network_id: &str) -> Value {
        let mut m = serde_json::Map::new();
        for (id, name, st) in self.endpoints_on(network_id) {
            m.insert(
                id,
                json!({"Name": name, "EndpointID": st.endpoint_id, "MacAddress": st.mac,
                       "IPv4Address": format!("{}/{}", st.ip, st.prefix), "IPv6Address": ""}),
            );
        }
        Value::Object(m)
    }

    /// The running containers in `host` or `none` mode, as dockerd lists them on those networks:
    /// an endpoint each (its ID derived from the container's and the network's), no addresses.
    fn builtin_members_json(&self, mode: &str, network_id: &str) -> Value {
        let c = self.containers.read().unwrap();
        let mut m = serde_json::Map::new();
        for e in c.by_id.values() {
            e.with(|d| {
                let on = d.host_config.network_mode.as_deref() == Some(mode) && !d.detached;
                if on && d.state.status.is_running() {
                    m.insert(
                        d.id.clone(),
                        json!({"Name": d.name, "EndpointID": sha_hex(&format!("{}:{network_id}", d.id)),
                               "MacAddress": "", "IPv4Address": "", "IPv6Address": ""}),
                    );
                }
            });
        }
        Value::Object(m)
    }

    fn builtin_json(&self, name: &str, with_containers: bool) -> Result<Value> {
        let nets = self.nets()?;
        let (id, driver) = match name {
            "bridge" => (nets.default_id.clone(), "bridge"),
            // dockerd's `none` network is its `null` driver's.
            "none" => (builtin_id("none"), "null"),
            other => (builtin_id(other), other),
        };
        let created = berth_types::time::rfc3339_nano(0);
        let (ipam_cfg, options) = if name == "bridge" {
            let d = &nets.default;
            (
                json!([{"Subnet": d.subnet.to_string(), "Gateway": d.gateway.to_string()}]),
                json!({
                    "com.docker.network.bridge.default_bridge": "true",
                    "com.docker.network.bridge.enable_icc": "true",
                    "com.docker.network.bridge.enable_ip_masquerade": "true",
                    "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                    "com.docker.network.bridge.name": d.bridge,
                    "com.docker.network.driver.mtu": d.mtu.to_string(),
                }),
            )
        } else {
            (json!([]), json!({}))
        };
        let containers = match (with_containers, name) {
            (false, _) => json!({}),
            (true, "bridge") => self.containers_json(&id),
            (true, mode) => self.builtin_members_json(mode, &id),
        };
        Ok(json!({
            "Name": name, "Id": id, "Created": created, "Scope": "local", "Driver": driver,
            "EnableIPv6": false,
            "IPAM": {"Driver": "default", "Options": null, "Config": ipam_cfg},
            "Internal": false, "Attachable": false, "Ingress": false,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": false,
            "Containers": containers, "Options": options, "Labels": {},
        }))
    }

    fn user_json(&self, n: &NetDoc, with_containers: bool) -> Value {
        let mut cfg = json!({"Subnet": n.subnet});
        if n.gateway_given {
            cfg["Gateway"] = json!(n.gateway);
        }
        if let Some(r) = &n.ip_range {
            cfg["IPRange"] = json!(r);
        }
        json!({
            "Name": n.name, "Id": n.id, "Created": n.created, "Scope": "local", "Driver": n.driver,
            "EnableIPv6": false,
            "IPAM": {"Driver": "default", "Options": n.ipam_options, "Config": [cfg]},
            "Internal": n.internal, "Attachable": n.attachable, "Ingress": false,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": false,
            "Containers": if with_containers { self.containers_json(&n.id) } else { json!({}) },
            "Options": n.options, "Labels": n.labels,
        })
    }
}

/// `label=k`, `label=k=v` (all must match) and `label!=…` (none may).
fn label_filters_match(labels: &HashMap<String, String>, filters: &BTreeMap<String, Vec<String>>) -> bool {
    let has = |f: &str| match f.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(f),
    };
    filters.get("label").is_none_or(|v| v.iter().all(|f| has(f)))
        && filters.get("label!").is_none_or(|v| !v.iter().any(|f| has(f)))
}

/// The user networks recorded in the database.
pub(crate) fn load_user_networks(db: &berth_meta::Db) -> Result<Vec<NetDoc>> {
    let mut v = Vec::new();
    for row in db.networks()? {
        match serde_json::from_str::<NetDoc>(&row.doc) {
            Ok(d) => v.push(d),
            Err(e) => eprintln!("berthd: skipping network {}: unreadable record: {e}", row.name),
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn bridge_options_check_at_create_and_records_of_older_daemons_still_come_up() {
        let o = BridgeOptions::of(&opts(&[
            ("com.docker.network.driver.mtu", "1400"),
            ("com.docker.network.bridge.enable_icc", "false"),
            ("com.docker.network.bridge.enable_ip_masquerade", "0"),
            ("vendor.option", "kept"),
        ]))
        .unwrap();
        assert_eq!(
            o,
            BridgeOptions {
                mtu: Some(1400),
                icc: false,
                masquerade: false,
                host_binding: None,
            }
        );
        let o = BridgeOptions::of(&opts(&[(
            "com.docker.network.bridge.host_binding_ipv4",
            "127.0.0.1",
        )]))
        .unwrap();
        assert_eq!(o.host_binding, Some(Ipv4Addr::LOCALHOST));
        for bad in [
            ("com.docker.network.driver.mtu", "67"),
            ("com.docker.network.bridge.enable_icc", "no"),
            ("com.docker.network.bridge.host_binding_ipv4", "localhost"),
            ("com.docker.network.bridge.inhibit_ipv4", "true"),
        ] {
            assert!(BridgeOptions::of(&opts(&[bad])).is_err(), "{bad:?}");
        }
        // A record with an option refused today keeps the options that check out.
        let o = BridgeOptions::of_record(
            "old",
            &opts(&[
                ("com.docker.network.bridge.inhibit_ipv4", "true"),
                ("com.docker.network.bridge.enable_icc", "false"),
            ]),
        );
        assert_eq!(
            o,
            BridgeOptions {
                mtu: None,
                icc: false,
                masquerade: true,
                host_binding: None,
            }
        );
    }
}
