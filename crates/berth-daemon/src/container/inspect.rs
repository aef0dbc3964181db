//! `GET /containers/{id}/json`: every key docker has, so templates and SDKs find what they index.

use std::collections::HashMap;
use std::sync::Arc;

use berth_api::models::{
    ContainerInspectResponse, ContainerState, ContainerStateStatusEnum, DriverData, EndpointSettings,
    NetworkSettings,
};
use berth_types::time::rfc3339_nano;

use crate::container::{Doc, Status};
use crate::error::Result;
use crate::Daemon;

impl Daemon {
    /// The inspect document: the typed response plus what the 1.49 models cannot carry
    /// (`State.Health` in docker's shape).
    pub fn inspect_container(self: &Arc<Self>, key: &str, size: bool) -> Result<serde_json::Value> {
        let doc = self.find(key)?.doc();
        let mut v = serde_json::to_value(self.inspect_typed(&doc, size))?;
        if let Some(h) = doc.health.as_ref() {
            v["State"]["Health"] = h.to_json();
        }
        if let Some(h) = v.get_mut("HostConfig").and_then(|h| h.as_object_mut()) {
            fill_host_config(h, &doc);
        }
        if let Some(c) = v.get_mut("Config").and_then(|c| c.as_object_mut()) {
            fill_nulls(c, &["Entrypoint", "OnBuild", "Volumes", "Env", "Cmd"]);
        }
        if let Some(n) = v.get_mut("NetworkSettings").and_then(|n| n.as_object_mut()) {
            fill_nulls(n, &["SecondaryIPAddresses", "SecondaryIPv6Addresses"]);
            for ep in n
                .get_mut("Networks")
                .and_then(|n| n.as_object_mut())
                .into_iter()
                .flat_map(|m| m.values_mut())
            {
                if let Some(ep) = ep.as_object_mut() {
                    fill_nulls(ep, &["IPAMConfig", "Links", "Aliases", "DriverOpts"]);
                }
            }
        }
        if let Some(o) = v.as_object_mut() {
            fill_nulls(o, &["ExecIDs"]);
        }
        Ok(v)
    }

    fn inspect_typed(self: &Arc<Self>, doc: &Doc, size: bool) -> ContainerInspectResponse {
        let bundle = self.bundle(&doc.id);
        let path = |f: &str| Some(bundle.join(f).to_string_lossy().into_owned());
        let rw = if size {
            self.images.rw_size(&doc.id).ok().map(|s| s as i64)
        } else {
            None
        };
        let mut graph = HashMap::new();
        graph.insert(
            "MergedDir".to_string(),
            bundle.join("rootfs").to_string_lossy().into_owned(),
        );
        if let Ok(rw) = self.images.rootfs_dir(&doc.id) {
            let s = |p: std::path::PathBuf| p.to_string_lossy().into_owned();
            graph.insert("UpperDir".to_string(), s(rw.join("fs")));
            graph.insert("WorkDir".to_string(), s(rw.join("work")));
        }
        if let Ok(lowers) = self.images.rootfs_lower_dirs(&doc.id) {
            let lowers: Vec<_> = lowers.iter().map(|p| p.to_string_lossy()).collect();
            if !lowers.is_empty() {
                graph.insert("LowerDir".to_string(), lowers.join(":"));
            }
        }
        ContainerInspectResponse {
            id: Some(doc.id.clone()),
            created: Some(rfc3339_nano(doc.created)),
            path: Some(doc.path.clone()),
            args: Some(doc.args.clone()),
            state: Some(state(doc)),
            image: Some(doc.image_id.clone()),
            resolv_conf_path: path("resolv.conf"),
            hostname_path: path("hostname"),
            hosts_path: path("hosts"),
            // Docker shows only the json-file path; the local driver's files are private.
            log_path: match crate::container::logs::config::of_doc(doc).driver {
                berth_shim_proto::LogDriver::JsonFile => path(&format!("{}-json.log", doc.id)),
                _ => Some(String::new()),
            },
            name: Some(format!("/{}", doc.name)),
            restart_count: Some(doc.restart_count),
            driver: Some("overlay2".into()),
            platform: Some("linux".into()),
            image_manifest_descriptor: None,
            mount_label: Some(String::new()),
            process_label: Some(String::new()),
            app_armor_profile: Some(String::new()),
            exec_ids: Some(self.exec_ids(&doc.id)).filter(|v| !v.is_empty()),
            host_config: Some(berth_api::models::HostConfig {
                // Containers created before the runtime was recorded.
                runtime: Some(
                    doc.host_config
                        .runtime
                        .clone()
                        .unwrap_or_else(|| crate::RUNTIME.into()),
                ),
                // As dockerd: the default bridge's links with today's names (`/db:/web/db`).
                links: self.inspect_links(doc),
                ..doc.host_config.clone()
            }),
            graph_driver: Some(DriverData {
                name: "overlay2".into(),
                data: graph,
            }),
            size_rw: rw,
            size_root_fs: None,
            mounts: Some(crate::container::mounts::api_mounts(&doc.mounts)),
            config: Some(doc.config.clone()),
            network_settings: Some(network_settings(doc)),
        }
    }
}

/// Keys dockerd always shows, `null` where nothing is set; templates (`inspect -f
/// '{{.Config.Entrypoint}}'`) and SDKs index them, and a missing key is an error there.
fn fill_nulls(o: &mut serde_json::Map<String, serde_json::Value>, keys: &[&str]) {
    for k in keys {
        o.entry(*k).or_insert(serde_json::Value::Null);
    }
}

/// `HostConfig` as dockerd shows it: every key, zero-valued where the client set nothing, and the
/// values dockerd fills in at create (`ShmSize`, `CgroupnsMode`, the masked and read-only paths
/// the container gets). berth records only what a client sent; the rest is filled here, from what
/// the start applies (`container::start`), so old records show the same.
fn fill_host_config(h: &mut serde_json::Map<String, serde_json::Value>, doc: &Doc) {
    use serde_json::{json, Value};
    let privileged = doc.host_config.privileged.unwrap_or(false);
    let unconfined = doc
        .host_config
        .security_opt
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|o| o == "systempaths=unconfined" || o == "systempaths:unconfined");
    let paths = |default: &[&str]| match (privileged, unconfined) {
        (true, _) => Value::Null,
        (false, true) => json!([]),
        (false, false) => json!(default),
    };
    // What the start uses when the record has no size or a zero one.
    if h.get("ShmSize").and_then(Value::as_i64).unwrap_or(0) <= 0 {
        h.insert("ShmSize".into(), json!(berth_runtime::DEFAULT_SHM_SIZE));
    }
    let restart = h.entry("RestartPolicy").or_insert_with(|| json!({}));
    if let Some(r) = restart.as_object_mut() {
        r.entry("Name").or_insert(json!(""));
        r.entry("MaximumRetryCount").or_insert(json!(0));
    }
    let computed = [
        ("MaskedPaths", paths(berth_runtime::DEFAULT_MASKED_PATHS)),
        ("ReadonlyPaths", paths(berth_runtime::DEFAULT_READONLY_PATHS)),
        // berth keeps containers in the host's cgroup namespace unless asked (`--cgroupns`).
        ("CgroupnsMode", json!("host")),
        ("IpcMode", json!("private")),
    ];
    for (k, v) in computed {
        h.entry(k).or_insert(v);
    }
    const ZERO: &[&str] = &[
        "OomScoreAdj",
        "CpuShares",
        "Memory",
        "NanoCpus",
        "BlkioWeight",
        "CpuPeriod",
        "CpuQuota",
        "CpuRealtimePeriod",
        "CpuRealtimeRuntime",
        "KernelMemory",
        "KernelMemoryTCP",
        "MemoryReservation",
        "MemorySwap",
        "CpuCount",
        "CpuPercent",
        "IOMaximumIOps",
        "IOMaximumBandwidth",
    ];
    const EMPTY: &[&str] = &[
        "ContainerIDFile",
        "VolumeDriver",
        "Cgroup",
        "PidMode",
        "UTSMode",
        "UsernsMode",
        "Isolation",
        "CgroupParent",
        "CpusetCpus",
        "CpusetMems",
        "NetworkMode",
    ];
    const FALSE: &[&str] = &[
        "AutoRemove",
        "Privileged",
        "PublishAllPorts",
        "ReadonlyRootfs",
        "OomKillDisable",
    ];
    const NULL: &[&str] = &[
        "Binds",
        "PortBindings",
        "VolumesFrom",
        "CapAdd",
        "CapDrop",
        "Dns",
        "DnsOptions",
        "DnsSearch",
        "ExtraHosts",
        "GroupAdd",
        "Links",
        "SecurityOpt",
        "BlkioWeightDevice",
        "BlkioDeviceReadBps",
        "BlkioDeviceWriteBps",
        "BlkioDeviceReadIOps",
        "BlkioDeviceWriteIOps",
        "Devices",
        "DeviceCgroupRules",
        "DeviceRequests",
        "MemorySwappiness",
        "PidsLimit",
        "Ulimits",
    ];
    for k in ZERO {
        h.entry(*k).or_insert(json!(0));
    }
    for k in EMPTY {
        h.entry(*k).or_insert(json!(""));
    }
    for k in FALSE {
        h.entry(*k).or_insert(json!(false));
    }
    fill_nulls(h, NULL);
    h.entry("ConsoleSize").or_insert(json!([0, 0]));
    h.entry("LogConfig")
        .or_insert_with(|| json!({"Type": "json-file", "Config": {}}));
}

pub(crate) fn state(doc: &Doc) -> ContainerState {
    let s = &doc.state;
    let status = match s.status {
        Status::Created => ContainerStateStatusEnum::CREATED,
        Status::Running => ContainerStateStatusEnum::RUNNING,
        Status::Paused => ContainerStateStatusEnum::PAUSED,
        Status::Restarting => ContainerStateStatusEnum::RESTARTING,
        Status::Removing => ContainerStateStatusEnum::REMOVING,
        Status::Exited => ContainerStateStatusEnum::EXITED,
        Status::Dead => ContainerStateStatusEnum::DEAD,
    };
    ContainerState {
        status: Some(status),
        running: Some(s.status.is_running()),
        paused: Some(s.status == Status::Paused),
        restarting: Some(s.status == Status::Restarting),
        oom_killed: Some(s.oom_killed),
        dead: Some(s.status == Status::Dead),
        pid: Some(s.pid),
        exit_code: Some(s.exit_code),
        error: Some(s.error.clone()),
        started_at: Some(rfc3339_nano(s.started_at)),
        finished_at: Some(rfc3339_nano(s.finished_at)),
        health: None,
    }
}

/// The network a container is really attached to, as docker names it. There is no bridge yet:
/// the default mode (and `bridge`) gives a private network namespace with only loopback, which is
/// what docker calls `none`, so that is what inspect and ps report rather than an invented bridge
/// endpoint. `container:` shares another container's namespace and has no network of its own.
pub(crate) fn network_name(mode: &str) -> Option<&'static str> {
    match mode {
        "host" => Some("host"),
        "none" => Some("none"),
        m if m.starts_with("container:") => None,
        _ => Some("bridge"),
    }
}

/// `NetworkSettings.Networks`: the one network the container is attached to, as docker shows
/// `--network none` and `host` (there are no network objects yet, so no network or endpoint IDs).
pub(crate) fn endpoints(doc: &Doc) -> HashMap<String, EndpointSettings> {
    let mode = doc.host_config.network_mode.clone().unwrap_or_default();
    let Some(name) = network_name(&mode) else {
        return HashMap::new();
    };
    let mut m = HashMap::new();
    if doc.detached {
        connected_endpoints(doc, &mut m);
        return m;
    }
    let user_net = crate::network::has_endpoint(&mode) && !crate::network::on_default_bridge(&mode);
    let name = match &doc.net {
        Some(n) => n.network.clone(),
        None if user_net => mode.clone(),
        None => name.to_string(),
    };
    let net = doc.net.clone().unwrap_or_default();
    let aliases = user_net.then(|| {
        let mut a = doc.aliases.clone();
        a.push(doc.id[..12].to_string());
        a
    });
    m.insert(
        name.to_string(),
        EndpointSettings {
            // `--ip`, as requested.
            ipam_config: doc.requested_ip.clone().filter(|ip| !ip.is_empty()).map(|ip| {
                berth_api::models::EndpointIpamConfig {
                    ipv4_address: Some(ip),
                    ipv6_address: None,
                    link_local_ips: None,
                }
            }),
            // A user network's links: aliases only this container resolves.
            links: Some(
                doc.links
                    .iter()
                    .filter(|l| l.id.is_empty())
                    .map(|l| format!("{}:{}", l.name, l.alias))
                    .collect::<Vec<_>>(),
            )
            .filter(|v| !v.is_empty()),
            mac_address: Some(net.mac),
            aliases,
            driver_opts: None,
            gw_priority: Some(0),
            network_id: Some(net.network_id),
            endpoint_id: Some(net.endpoint_id),
            gateway: Some(net.gateway),
            ip_address: Some(net.ip),
            ip_prefix_len: Some(net.prefix as i64),
            ipv6_gateway: Some(String::new()),
            global_ipv6_address: Some(String::new()),
            global_ipv6_prefix_len: Some(0),
            dns_names: None,
        },
    );
    connected_endpoints(doc, &mut m);
    m
}

/// The endpoints of networks joined with `network connect`.
fn connected_endpoints(doc: &Doc, m: &mut HashMap<String, EndpointSettings>) {
    for c in &doc.connected {
        let st = c.state.clone().unwrap_or_default();
        let mut aliases = c.aliases.clone();
        if c.network != crate::network::DEFAULT {
            aliases.push(doc.id[..12].to_string());
        }
        m.insert(
            c.network.clone(),
            EndpointSettings {
                ipam_config: Some(berth_api::models::EndpointIpamConfig {
                    ipv4_address: c.ipv4.clone(),
                    ipv6_address: None,
                    link_local_ips: None,
                }),
                links: None,
                mac_address: Some(st.mac),
                aliases: Some(aliases),
                driver_opts: None,
                gw_priority: Some(0),
                network_id: Some(c.network_id.clone()),
                endpoint_id: Some(st.endpoint_id),
                gateway: Some(st.gateway),
                ip_address: Some(st.ip),
                ip_prefix_len: Some(st.prefix as i64),
                ipv6_gateway: Some(String::new()),
                global_ipv6_address: Some(String::new()),
                global_ipv6_prefix_len: Some(0),
                dns_names: None,
            },
        );
    }
}

fn network_settings(doc: &Doc) -> NetworkSettings {
    let sandbox = match &doc.net {
        Some(n) => n.netns.to_string_lossy().into_owned(),
        None if doc.state.status.is_running() && doc.host_config.network_mode.as_deref() != Some("host") => {
            format!("/proc/{}/ns/net", doc.state.pid)
        }
        None => String::new(),
    };
    // The top-level address fields mirror the default bridge's endpoint only.
    let net = doc
        .net
        .clone()
        .filter(|n| n.network == crate::network::DEFAULT)
        .unwrap_or_default();
    NetworkSettings {
        bridge: Some(String::new()),
        sandbox_id: Some(String::new()),
        hairpin_mode: Some(false),
        link_local_ipv6_address: Some(String::new()),
        link_local_ipv6_prefix_len: Some(0),
        ports: Some(ports(doc)),
        sandbox_key: Some(sandbox),
        secondary_ip_addresses: None,
        secondary_ipv6_addresses: None,
        endpoint_id: Some(net.endpoint_id),
        gateway: Some(net.gateway),
        global_ipv6_address: Some(String::new()),
        global_ipv6_prefix_len: Some(0),
        ip_address: Some(net.ip),
        ip_prefix_len: Some(net.prefix as i64),
        ipv6_gateway: Some(String::new()),
        mac_address: Some(net.mac),
        networks: Some(endpoints(doc)),
    }
}

/// `NetworkSettings.Ports`: every exposed port, with its host bindings while running (`null`
/// for an exposed port that is not published), as docker fills it.
pub(crate) fn ports(doc: &Doc) -> HashMap<String, Option<Vec<berth_api::models::PortBinding>>> {
    let mut m = HashMap::new();
    let Some(net) = &doc.net else {
        return m;
    };
    for key in doc.config.exposed_ports.clone().unwrap_or_default() {
        let key = if key.contains('/') {
            key
        } else {
            format!("{key}/tcp")
        };
        m.insert(key, None);
    }
    for p in &net.ports {
        let key = format!("{}/{}", p.container_port, p.proto);
        let ip = if p.host_ip.is_empty() {
            "0.0.0.0".to_string()
        } else {
            p.host_ip.clone()
        };
        m.entry(key)
            .or_insert(None)
            .get_or_insert_with(Vec::new)
            .push(berth_api::models::PortBinding {
                host_ip: Some(ip),
                host_port: Some(p.host_port.to_string()),
            });
    }
    m
}
