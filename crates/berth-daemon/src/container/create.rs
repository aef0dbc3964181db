//! `POST /containers/create`: validate, merge the image's defaults, prepare the rootfs snapshot,
//! write the bundle's small files, record the container.

use std::collections::HashMap;
use std::sync::Arc;

use berth_api::models::{ContainerConfig, ContainerCreateBody, HostConfig};

use crate::container::{Doc, Entry, State};
use crate::daemon::random_id;
use crate::error::{blocking, Error, Result};
use crate::Daemon;

/// What a create request carries: the optional `?name=` and the JSON body.
#[derive(Debug, Default)]
pub struct CreateOptions {
    pub name: Option<String>,
    pub body: ContainerCreateBody,
}

/// The `PATH` a container's processes get when its environment has none (dockerd's
/// `DefaultPathEnv`): added to the process's environment, not to `Config.Env`, as dockerd does.
pub(crate) const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Daemon {
    /// Creates a container; returns its ID and warnings.
    pub async fn create(self: &Arc<Self>, opts: CreateOptions) -> Result<(String, Vec<String>)> {
        berth_sys::times::mark("d-create");
        let body = opts.body;
        let name = match opts.name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let n = n.strip_prefix('/').unwrap_or(&n).to_string();
                if !berth_types::id::valid_container_name(&n) {
                    return Err(Error::invalid(format!(
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
                if let Some(other) = self.containers.read().unwrap().by_name.get(&n) {
                    return Err(crate::daemon::name_conflict(&n, other));
                }
                Some(n)
            }
            // Chosen when the record is inserted, under the table's lock (container::names).
            None => None,
        };
        let image_ref = body.image.clone().unwrap_or_default();
        if image_ref.is_empty() {
            return Err(Error::invalid(
                "Config cannot be empty in order to create a container",
            ));
        }
        let mut host = body.host_config.clone().unwrap_or_default();
        let warnings = validate_host_config(&mut host)?;
        self.check_namespace_modes(&mut host, body.hostname.as_deref().is_some_and(|h| !h.is_empty()))?;
        let mode = host.network_mode.clone().unwrap_or_default();
        if crate::network::has_endpoint(&mode)
            && !crate::network::on_default_bridge(&mode)
            && self.user_network(&mode).is_none()
        {
            // 400, not 404: clients answer a 404 from create by pulling the image.
            return Err(Error::invalid(format!("network {mode} not found")));
        }
        let wants_ip = body
            .networking_config
            .as_ref()
            .and_then(|n| n.endpoints_config.as_ref())
            .is_some_and(|e| {
                e.values().any(|x| {
                    x.ipam_config
                        .as_ref()
                        .and_then(|i| i.ipv4_address.as_deref())
                        .is_some_and(|s| !s.is_empty())
                })
            });
        if wants_ip && (!crate::network::has_endpoint(&mode) || crate::network::on_default_bridge(&mode)) {
            return Err(Error::invalid(
                "user specified IP address is supported on user defined networks only",
            ));
        }
        // Links are checked before anything is made: a missing one creates nothing.
        let endpoint_links: Vec<String> = body
            .networking_config
            .as_ref()
            .and_then(|n| n.endpoints_config.as_ref())
            .and_then(|e| e.get(&mode).or_else(|| e.values().next()))
            .and_then(|e| e.links.clone())
            .unwrap_or_default();
        let links = self.resolve_links(&host, &endpoint_links)?;

        let images = self.images.clone();
        let lookup = image_ref.clone();
        let image = blocking(move || {
            let missing = |e: berth_image::Error| match e.kind() {
                berth_types::ErrorKind::NotFound => Error::not_found("image", with_tag(&lookup)),
                _ => e.into(),
            };
            match images.resolve(&lookup) {
                // A built-in image (hello-world) never needs a registry: installed on first use.
                Err(e) if e.kind() == berth_types::ErrorKind::NotFound => {
                    match images.install_builtin(&lookup) {
                        Ok(Some(_)) => images.resolve(&lookup).map_err(missing),
                        _ => Err(missing(e)),
                    }
                }
                r => r.map_err(missing),
            }
        })
        .await?;
        berth_sys::times::mark("d-image-resolved");

        let id = random_id();
        let mut config = merge_config(&body, &image.config, &id)?;
        if config.healthcheck.is_none() {
            // The image's HEALTHCHECK (a built image's), unless the request sets one.
            config.healthcheck = self
                .images
                .config_file(&image.id)
                .ok()
                .and_then(|c| c.config.healthcheck)
                .and_then(|h| serde_json::to_value(h).ok())
                .and_then(|v| serde_json::from_value(v).ok());
        }
        let (path, args) = command(&config)?;
        // Every mount is parsed and checked before anything is made.
        let plan = crate::container::mounts::plan(self, &host, &config)?;

        let images = self.images.clone();
        let (image_id, cid) = (image.id.clone(), id.clone());
        // The init layer also holds the mount point of `--init`'s binary.
        let init = host.init.unwrap_or(false);
        // The container's own mount points (volumes, binds, tmpfs) are not made here: the runtime
        // makes a missing one at start, in the rw layer, as runc does under dockerd (`diff` then
        // shows `A /data`, and a container never started, like a build step's, shows nothing).
        let mut extra = Vec::new();
        if init {
            extra.push(berth_image::InitEntry {
                path: berth_runtime::INIT_PATH_IN_CONTAINER.into(),
                kind: berth_image::InitKind::File,
                replace: false,
            });
        }
        // A `--rm` container's files and layers die with the host anyway: written without fsyncs
        // (docs/design/crash-consistency.md, "Volatile state").
        let durable = !host.auto_remove.unwrap_or(false);
        blocking(move || {
            let r = if durable {
                images.prepare_rootfs(&image_id, &cid, &extra)
            } else {
                images.prepare_volatile_rootfs(&image_id, &cid, &extra)
            };
            r.map(|_| ()).map_err(Into::into)
        })
        .await?;
        berth_sys::failpoint::hit("container.create.snapshot-prepared");
        berth_sys::times::mark("d-rootfs-prepared");

        let bundle = self.bundle(&id);
        let hostname = config.hostname.clone().unwrap_or_default();
        // `--add-host NAME:host-gateway`: the default bridge's gateway, the host as containers
        // reach it (dockerd's default `host-gateway-ip`).
        let host_gateway = self
            .networks
            .as_ref()
            .map(|n| n.default.gateway.to_string())
            .unwrap_or_default();
        let dns = &self.config.network.dns;
        if let Err(e) = write_bundle_files(&bundle, &hostname, &host, dns, &host_gateway, durable) {
            let images = self.images.clone();
            let cid = id.clone();
            let _ = blocking(move || images.remove_rootfs(&cid).map_err(Into::into)).await;
            let _ = std::fs::remove_dir_all(&bundle);
            return Err(e);
        }
        berth_sys::failpoint::hit("container.create.bundle-written");
        berth_sys::times::mark("d-bundle-written");
        // Volumes and `-v` directories last: a failure before leaves none behind.
        let mounts = match self.realize_mounts(plan).await {
            Ok(m) => m,
            Err(e) => {
                let images = self.images.clone();
                let cid = id.clone();
                let _ = blocking(move || images.remove_rootfs(&cid).map_err(Into::into)).await;
                let _ = std::fs::remove_dir_all(&bundle);
                return Err(e);
            }
        };

        let doc = Doc {
            id: id.clone(),
            name: name.unwrap_or_default(),
            created: berth_types::time::now_nanos(),
            image_id: image.id.clone(),
            path,
            args,
            config,
            host_config: host,
            state: State::default(),
            restart_count: 0,
            manually_stopped: false,
            health: None,
            mounts,
            net: None,
            aliases: body
                .networking_config
                .as_ref()
                .and_then(|n| n.endpoints_config.as_ref())
                .and_then(|e| e.get(&mode).or_else(|| e.values().next()))
                .and_then(|e| e.aliases.clone())
                .unwrap_or_default(),
            requested_ip: body
                .networking_config
                .as_ref()
                .and_then(|n| n.endpoints_config.as_ref())
                .and_then(|e| e.get(&mode).or_else(|| e.values().next()))
                .and_then(|e| e.ipam_config.as_ref())
                .and_then(|i| i.ipv4_address.clone())
                .filter(|s| !s.is_empty()),
            connected: vec![],
            links,
            detached: false,
        };
        let entry = Entry::new(doc);
        if let Err(e) = self.insert(entry.clone()) {
            self.remove_anonymous_volumes(&entry.with(|d| d.mounts.clone()))
                .await;
            let images = self.images.clone();
            let cid = id.clone();
            let _ = blocking(move || images.remove_rootfs(&cid).map_err(Into::into)).await;
            let _ = std::fs::remove_dir_all(&bundle);
            return Err(e);
        }
        berth_sys::failpoint::hit("container.create.committed");
        berth_sys::times::mark("d-inserted");
        self.events
            .emit("container", "create", &id, self.container_attrs(&entry));
        Ok((id, warnings))
    }
}

/// `busybox` → `busybox:latest`, leaving tagged and digested references alone.
pub(crate) fn with_tag(r: &str) -> String {
    let last = r.rsplit('/').next().unwrap_or(r);
    if r.contains('@') || last.contains(':') {
        r.to_string()
    } else {
        format!("{r}:latest")
    }
}

/// Checks and completes `host`; returns dockerd's warnings (settings this host cannot apply,
/// discarded as dockerd discards them).
fn validate_host_config(host: &mut HostConfig) -> Result<Vec<String>> {
    let mode = host.network_mode.clone().unwrap_or_default();
    let mode = if mode.is_empty() {
        "default".to_string()
    } else {
        mode
    };
    // User networks are checked by the caller, which knows them.
    host.network_mode = Some(mode);
    // Kept as given (inspect shows it); start and the cgroup readers clean it the same way.
    if let Some(parent) = &host.cgroup_parent {
        berth_runtime::cgroup_parent(parent).map_err(Error::Spec)?;
    }
    crate::network::validate_ports(host)?;
    crate::container::security::parse(&host.security_opt.clone().unwrap_or_default())?;
    // Not silently dropped: what berth cannot do yet is refused with a reason.
    // Devices are checked now (dockerd checks them at start): a bad one creates nothing.
    let devices = crate::container::start::device_mappings(host);
    let rules = host.device_cgroup_rules.clone().unwrap_or_default();
    berth_runtime::check_devices(&devices, &rules).map_err(Error::Spec)?;
    for h in host.extra_hosts.clone().unwrap_or_default() {
        // NAME:IP (an IPv6 address keeps its colons: the name ends at the first one).
        match h.split_once(':') {
            Some((n, ip))
                if !n.is_empty() && (ip == "host-gateway" || ip.parse::<std::net::IpAddr>().is_ok()) => {}
            Some((_, ip)) if !ip.is_empty() => {
                return Err(Error::invalid(format!("invalid IP address in add-host: {ip:?}")))
            }
            _ => return Err(Error::invalid(format!("bad format for add-host: {h:?}"))),
        }
    }
    berth_runtime::check_capabilities(
        host.cap_add.as_deref().unwrap_or_default(),
        host.cap_drop.as_deref().unwrap_or_default(),
    )
    .map_err(Error::invalid)?;
    host.log_config = Some(crate::container::logs::config::verify(host.log_config.take())?);
    // As dockerd, the runtime is recorded at create (its default when none is asked for).
    match host.runtime.as_deref().unwrap_or_default() {
        "" | crate::RUNTIME => host.runtime = Some(crate::RUNTIME.to_string()),
        other => return Err(Error::invalid(format!("Unknown runtime specified {other}"))),
    }
    if let Some(n) = host.nano_cpus.filter(|n| *n != 0) {
        check_nano_cpus(n)?;
        if host.cpu_quota.unwrap_or(0) != 0 || host.cpu_period.unwrap_or(0) != 0 {
            return Err(Error::invalid(
                "Conflicting options: Nano CPUs and CPU Period cannot both be set",
            ));
        }
    }
    let mut warnings = validate_resources(host)?;
    adapt_resources(host, &mut warnings);
    if let Some(p) = host.restart_policy.as_ref() {
        use berth_api::models::RestartPolicyNameEnum as R;
        if host.auto_remove.unwrap_or(false)
            && matches!(p.name, Some(R::ALWAYS | R::UNLESS_STOPPED | R::ON_FAILURE))
        {
            return Err(Error::invalid(
                "Conflicting options: AutoRemove and restart policy",
            ));
        }
    }
    Ok(warnings)
}

/// The resource and isolation settings past memory and CPUs, with dockerd's messages: what
/// berth applies is checked; what this host or berth cannot give is refused, never dropped.
/// What dockerd fills in at create (not at update): no pids limit recorded as none, and a swap
/// limit for a memory limit that has none.
fn adapt_resources(host: &mut HostConfig, warnings: &mut Vec<String>) {
    // dockerd: 0 and -1 both mean no limit, recorded as none (`null`).
    if host.pids_limit.is_some_and(|p| p <= 0) {
        host.pids_limit = None;
    }
    if let Some(m) = host.memory.filter(|m| *m > 0) {
        if host.memory_swap.unwrap_or(0) == 0 {
            host.memory_swap = Some(2 * m);
        }
        if host.memory_swap != Some(-1) && !swap_limit_supported() {
            warnings.push("Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.".into());
            host.memory_swap = Some(-1);
        }
    }
}

/// Whether the kernel limits a cgroup's swap: v1's `memory.memsw.*` (swap accounting on), or a
/// pure cgroup v2 host with the memory controller (`memory.swap.max`).
fn swap_limit_supported() -> bool {
    let root = std::path::Path::new(berth_runtime::CGROUP_ROOT);
    crate::cgroups::v1_file("memory", "memory.memsw.limit_in_bytes")
        || std::fs::read_to_string(root.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"))
}

fn validate_resources(host: &mut HostConfig) -> Result<Vec<String>> {
    // Create and update alike, as dockerd's `verifyPlatformContainerResources`.
    if let Some(m) = host.memory.filter(|m| *m != 0) {
        if m < 6 * 1024 * 1024 {
            return Err(Error::invalid("Minimum memory limit allowed is 6MB"));
        }
        if let Some(s) = host.memory_swap.filter(|s| *s > 0) {
            if s < m {
                return Err(Error::invalid(
                    "Minimum memoryswap limit should be larger than memory limit, see usage",
                ));
            }
        }
    }
    use berth_api::models::HostConfigIsolationEnum as Isolation;
    let mut warnings = Vec::new();
    let v1 = crate::cgroups::v1_file;
    // (Only looked up for what is asked: a plain create stats nothing.)
    if host.blkio_weight.unwrap_or(0) != 0 && !v1("blkio", "blkio.weight") {
        warnings.push(
            "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."
                .into(),
        );
        host.blkio_weight = Some(0);
    }
    if host.blkio_weight_device.as_ref().is_some_and(|d| !d.is_empty()) && !v1("blkio", "blkio.weight_device")
    {
        warnings.push("Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded.".into());
        host.blkio_weight_device = None;
    }
    if host.memory_swappiness.is_some_and(|s| s != -1) && !v1("memory", "memory.swappiness") {
        warnings.push("Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded.".into());
        host.memory_swappiness = None;
    }
    if host.oom_kill_disable.unwrap_or(false) && !v1("memory", "memory.oom_control") {
        warnings.push("Your kernel does not support OomKillDisable. OomKillDisable discarded.".into());
        host.oom_kill_disable = Some(false);
    }
    if host.oom_kill_disable.unwrap_or(false) && host.memory.unwrap_or(0) == 0 {
        warnings.push(
            "OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.".into(),
        );
    }
    // As dockerd: a memory limit without a swap limit allows as much swap again (memory and swap
    // together twice the limit), recorded so inspect and the cgroup say the same; where the kernel
    // does not account swap, swap is left unlimited, with dockerd's warning.
    if let Some(p) = host.cpu_period.filter(|p| *p != 0) {
        if !(1000..=1_000_000).contains(&p) {
            return Err(Error::invalid(
                "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
            ));
        }
    }
    if host.cpu_quota.is_some_and(|q| q > 0 && q < 1000) {
        return Err(Error::invalid(
            "CPU cfs quota can not be less than 1ms (i.e. 1000)",
        ));
    }
    if let Some(o) = host.oom_score_adj.filter(|o| !(-1000..=1000).contains(o)) {
        return Err(Error::invalid(format!(
            "Invalid value {o}, range for oom score adj is [-1000, 1000]"
        )));
    }
    let weight_ok = |w: u64| (10..=1000).contains(&w);
    if let Some(w) = host.blkio_weight.filter(|w| *w != 0) {
        if !weight_ok(w as u64) {
            return Err(Error::invalid("Range of blkio weight is from 10 to 1000"));
        }
    }
    for d in host.blkio_weight_device.iter().flatten() {
        let w = d.weight.unwrap_or(0) as u64;
        if w != 0 && !weight_ok(w) {
            return Err(Error::invalid("Range of blkio weight is from 10 to 1000"));
        }
    }
    for blkio in crate::container::start::blkio(host).devices() {
        berth_runtime::block_device(&blkio.path).map_err(Error::Spec)?;
    }
    if let Some(s) = host.memory_swappiness.filter(|s| *s != -1) {
        if !(0..=100).contains(&s) {
            return Err(Error::invalid(format!(
                "Invalid value: {s}, valid memory swappiness range is 0-100"
            )));
        }
    }
    check_cpuset(
        host.cpuset_cpus.as_deref(),
        "/sys/devices/system/cpu/online",
        "CPUs",
        "cpus",
    )?;
    check_cpuset(
        host.cpuset_mems.as_deref(),
        "/sys/devices/system/node/online",
        "memory nodes",
        "mems",
    )?;
    if host.cpu_realtime_period.unwrap_or(0) != 0 || host.cpu_realtime_runtime.unwrap_or(0) != 0 {
        return Err(no_realtime());
    }
    if host.kernel_memory_tcp.unwrap_or(0) != 0 {
        return Err(Error::invalid(
            "KernelMemoryTCP is not supported: the kernel's TCP memory accounting is not limited per container",
        ));
    }
    if let Some(r) = host.device_requests.as_ref().and_then(|r| r.first()) {
        let caps = r.capabilities.clone().unwrap_or_default();
        return Err(Error::invalid(format!(
            "could not select device driver {:?} with capabilities: {caps:?}",
            r.driver.clone().unwrap_or_default()
        )));
    }
    match host.userns_mode.as_deref().unwrap_or_default() {
        "" | "host" => {}
        m => return Err(Error::invalid(format!("invalid USER mode: {m}"))),
    }
    if matches!(host.isolation, Some(Isolation::PROCESS | Isolation::HYPERV)) {
        let i = host.isolation.map(|i| i.to_string()).unwrap_or_default();
        return Err(Error::invalid(format!(
            "invalid isolation ({i}): linux only supports 'default'"
        )));
    }
    if host.storage_opt.as_ref().is_some_and(|o| !o.is_empty()) {
        return Err(Error::invalid(
            "--storage-opt is supported only for overlay over xfs with 'pquota' mount option",
        ));
    }
    Ok(warnings)
}

/// Why `--cpu-rt-period`/`--cpu-rt-runtime` are refused: a kernel without real-time group
/// scheduling (dockerd's message), or berthd giving its cgroup parent no real-time budget for
/// containers to draw from (dockerd's `--cpu-rt-runtime` daemon option, which berthd lacks).
pub(crate) fn no_realtime() -> Error {
    if crate::cgroups::v1_file("cpu", "cpu.rt_runtime_us") {
        Error::invalid(
            "real-time CPU settings (--cpu-rt-period, --cpu-rt-runtime) are not supported by berth yet: berthd gives its cgroup parent no real-time budget (dockerd's --cpu-rt-runtime daemon option)",
        )
    } else {
        Error::invalid("Your kernel does not support CPU real-time scheduler")
    }
}

/// `docker update`'s settings checked as at create (blkio weight, cpuset mems); what this
/// kernel has no file for is discarded with dockerd's warning.
pub(crate) fn check_update(host: &mut HostConfig) -> Result<Vec<String>> {
    if let Some(n) = host.nano_cpus.filter(|n| *n != 0) {
        check_nano_cpus(n)?;
    }
    validate_resources(host)
}

/// `--cpus` within what the machine has, in dockerd's words (create and update).
fn check_nano_cpus(n: i64) -> Result<()> {
    let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as i64;
    if n < 10_000_000 || n > ncpu * 1_000_000_000 {
        return Err(Error::invalid(format!(
            "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
        )));
    }
    Ok(())
}

/// `--cpuset-cpus`/`--cpuset-mems` (`list`) against what the machine has online (`online`, a
/// sysfs list file), with dockerd's messages (`Requested CPUs are not available - …`, `Invalid
/// value … for cpuset cpus`).
fn check_cpuset(list: Option<&str>, online: &str, what: &str, key: &str) -> Result<()> {
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        return Ok(());
    };
    let available = std::fs::read_to_string(online).unwrap_or_else(|_| "0".into());
    let have = parse_list(available.trim());
    match parse_list_checked(list) {
        Some(want) if want.iter().all(|n| have.contains(n)) => Ok(()),
        Some(_) => Err(Error::invalid(format!(
            "Requested {what} are not available - requested {list}, available: {}",
            available.trim()
        ))),
        None => Err(Error::invalid(format!("Invalid value {list} for cpuset {key}"))),
    }
}

/// `0-2,4` → `{0, 1, 2, 4}` (what does not parse is left out).
fn parse_list(s: &str) -> std::collections::BTreeSet<u32> {
    parse_list_checked(s).unwrap_or_default()
}

/// `0-2,4` → `{0, 1, 2, 4}`; `None` when any part does not parse.
fn parse_list_checked(s: &str) -> Option<std::collections::BTreeSet<u32>> {
    let mut out = std::collections::BTreeSet::new();
    for part in s.split(',').map(str::trim) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if a > b || b - a > 4096 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => {
                out.insert(part.parse().ok()?);
            }
        }
    }
    Some(out)
}

/// The container's config with the image's defaults filled in, as docker stores it.
fn merge_config(
    body: &ContainerCreateBody,
    image: &berth_image::ImageConfig,
    id: &str,
) -> Result<ContainerConfig> {
    // As dockerd: a stop signal that names no signal is refused at create (`Invalid signal: X`).
    if let Some(sig) = body.stop_signal.as_deref().filter(|s| !s.is_empty()) {
        crate::container::stop::parse_signal(sig)?;
    }
    // dockerd's create check: a working directory must be absolute.
    if let Some(w) = body
        .working_dir
        .as_deref()
        .filter(|w| !w.is_empty() && !w.starts_with('/'))
    {
        return Err(Error::invalid(format!(
            "the working directory '{w}' is invalid, it needs to be an absolute path"
        )));
    }
    let user_env = body.env.clone().unwrap_or_default();
    if let Some(e) = user_env
        .iter()
        .find(|e| e.split('=').next().unwrap_or("").is_empty())
    {
        return Err(Error::invalid(format!("invalid environment variable: {e}")));
    }
    let env = merge_env(&user_env, &image.env);
    // dockerd's merge: an entrypoint in the request (even `[""]`, the CLI's `--entrypoint ''`)
    // keeps the image's Cmd and Entrypoint out; `[""]` then means none at all.
    // An empty list (`"Entrypoint": []`) also keeps the image's Entrypoint out, not its Cmd.
    let given_cmd = body.cmd.clone().filter(|c| !c.is_empty());
    let (entrypoint, cmd) = match &body.entrypoint {
        Some(ep) if !ep.is_empty() => (Some(ep.clone()), given_cmd),
        ep => (
            if ep.is_some() {
                None
            } else {
                image.entrypoint.clone()
            },
            given_cmd.or_else(|| image.cmd.clone()),
        ),
    };
    let entrypoint = entrypoint.filter(|e| e.as_slice() != [""]);
    let mut labels: HashMap<String, String> = image.labels.clone().into_iter().collect();
    labels.extend(body.labels.clone().unwrap_or_default());
    let mut exposed: Vec<String> = image.exposed_ports.clone();
    for p in body.exposed_ports.clone().unwrap_or_default() {
        if !exposed.contains(&p) {
            exposed.push(p);
        }
    }
    let mut volumes: Vec<String> = image.volumes.clone();
    for v in body.volumes.clone().unwrap_or_default() {
        if !volumes.contains(&v) {
            volumes.push(v);
        }
    }
    let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    Ok(ContainerConfig {
        hostname: Some(non_empty(&body.hostname).unwrap_or_else(|| id[..12].to_string())),
        domainname: Some(body.domainname.clone().unwrap_or_default()),
        user: Some(non_empty(&body.user).unwrap_or_else(|| image.user.clone())),
        attach_stdin: Some(body.attach_stdin.unwrap_or(false)),
        attach_stdout: Some(body.attach_stdout.unwrap_or(false)),
        attach_stderr: Some(body.attach_stderr.unwrap_or(false)),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        tty: Some(body.tty.unwrap_or(false)),
        open_stdin: Some(body.open_stdin.unwrap_or(false)),
        stdin_once: Some(body.stdin_once.unwrap_or(false)),
        // dockerd: `null` when neither the image nor the request has a variable.
        env: (!env.is_empty()).then_some(env),
        cmd,
        healthcheck: body.healthcheck.clone(),
        args_escaped: None,
        image: body.image.clone(),
        volumes: (!volumes.is_empty()).then_some(volumes),
        working_dir: Some(non_empty(&body.working_dir).unwrap_or_else(|| image.working_dir.clone())),
        entrypoint,
        network_disabled: body.network_disabled,
        mac_address: match non_empty(&body.mac_address) {
            Some(m) if berth_network::ipam::parse_mac(&m).is_none() => {
                return Err(Error::invalid(format!("{m} is not a valid mac address")))
            }
            m => m,
        },
        on_build: None,
        labels: Some(labels),
        stop_signal: non_empty(&body.stop_signal).or_else(|| image.stop_signal.clone()),
        stop_timeout: body.stop_timeout,
        shell: body.shell.clone(),
    })
}

/// `Config.Env` as dockerd's create merges it: the request's variables in their order, then the
/// image's whose names the request does not use (a bare `NAME` counts as using it).
fn merge_env(user: &[String], image: &[String]) -> Vec<String> {
    if user.is_empty() {
        return image.to_vec();
    }
    let key = |e: &str| e.split('=').next().unwrap_or("").to_string();
    let used: std::collections::HashSet<String> = user.iter().map(|e| key(e)).collect();
    let mut env = user.to_vec();
    env.extend(image.iter().filter(|e| !used.contains(&key(e))).cloned());
    env
}

/// dockerd's `ReplaceOrAppendEnvValues`: each `NAME=value` of `overrides` replaces the variable of
/// `defaults` with that name in place or is appended; a bare `NAME` removes it from `defaults`.
pub(crate) fn replace_or_append_env(mut defaults: Vec<String>, overrides: &[String]) -> Vec<String> {
    let key = |e: &str| e.split('=').next().unwrap_or("").to_string();
    let at: HashMap<String, usize> = defaults.iter().enumerate().map(|(i, e)| (key(e), i)).collect();
    let mut removed = vec![false; defaults.len()];
    for v in overrides {
        match v.split_once('=') {
            None => {
                if let Some(&i) = at.get(v.as_str()) {
                    removed[i] = true;
                }
            }
            Some((k, _)) => match at.get(k) {
                Some(&i) => {
                    defaults[i] = v.clone();
                    removed[i] = false;
                }
                None => defaults.push(v.clone()),
            },
        }
    }
    let mut i = 0;
    defaults.retain(|_| {
        let keep = !removed.get(i).copied().unwrap_or(false);
        i += 1;
        keep
    });
    defaults
}

/// A process's environment as dockerd gives it (`CreateDaemonEnvironment`): the default `PATH`,
/// `HOSTNAME`, `TERM=xterm` with a tty and the links' variables, then the container's own
/// (`Config.Env`) over them. runc adds `HOME` when the result has none.
pub(crate) fn daemon_environment(
    tty: bool,
    hostname: &str,
    linked: &[String],
    env: &[String],
) -> Vec<String> {
    let mut defaults = vec![DEFAULT_PATH.to_string(), format!("HOSTNAME={hostname}")];
    if tty {
        defaults.push("TERM=xterm".into());
    }
    defaults.extend(linked.iter().cloned());
    replace_or_append_env(defaults, env)
}

/// Path and args: entrypoint + cmd.
fn command(c: &ContainerConfig) -> Result<(String, Vec<String>)> {
    let mut all: Vec<String> = c.entrypoint.clone().unwrap_or_default();
    all.extend(c.cmd.clone().unwrap_or_default());
    if all.is_empty() {
        return Err(Error::invalid("No command specified"));
    }
    let path = all.remove(0);
    Ok((path, all))
}

/// The hosts file before any address: localhost lines (the host's file on `--network host`)
/// and `--add-host`s, as docker writes them. A start adds links and the container's address.
pub(crate) fn hosts_content(host: &HostConfig, host_gateway: &str) -> String {
    let mut hosts = if host.network_mode.as_deref() == Some("host") {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n".to_string()
    };
    // --add-host NAME:IP, as docker appends them.
    for h in host.extra_hosts.clone().unwrap_or_default() {
        if let Some((name, ip)) = h.split_once(':') {
            let ip = if ip == "host-gateway" { host_gateway } else { ip };
            hosts.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    hosts
}

fn write_bundle_files(
    bundle: &std::path::Path,
    hostname: &str,
    host: &HostConfig,
    daemon_dns: &[String],
    host_gateway: &str,
    durable: bool,
) -> Result<()> {
    // Private bundle (see perms.rs); the three files below are bind-mounted into the container,
    // so any user there must be able to read them.
    let cannot = |what: &str, e| Error::io(format!("cannot {what} in {}", bundle.display()), e);
    berth_sys::fs::create_private_dir(bundle).map_err(|e| cannot("create the bundle", e))?;
    if durable {
        // The bundle's name in the containers directory outlives a power loss (the record that
        // follows refers to it); its three files need not: start rewrites any that a power
        // loss emptied ([`restore_bundle_files`]), so they are written without fsyncs.
        if let Some(parent) = bundle.parent() {
            std::fs::File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(|e| cannot("sync the containers directory", e))?;
        }
    }
    std::fs::create_dir_all(bundle.join("rootfs")).map_err(|e| cannot("create rootfs", e))?;
    let files = bundle_files(hostname, host, daemon_dns, host_gateway);
    let visible = crate::perms::CONTAINER_VISIBLE_FILE;
    let files: Vec<(&str, &[u8], u32)> = files
        .iter()
        .map(|(n, body)| (*n, body.as_bytes(), visible))
        .collect();
    berth_sys::fs::write_atomic_all(bundle, &files, false)
        .map_err(|e| cannot("write hostname, hosts and resolv.conf", e))
}

/// At start: writes again each of `hostname`, `hosts`, `resolv.conf` that is missing or empty —
/// what a power loss can leave of files create wrote without fsyncs. A file the container
/// changed (it is bind-mounted in) is kept.
pub(crate) fn restore_bundle_files(
    bundle: &std::path::Path,
    hostname: &str,
    host: &HostConfig,
    daemon_dns: &[String],
    host_gateway: &str,
) -> Result<()> {
    let torn = |name: &str| std::fs::metadata(bundle.join(name)).map_or(true, |m| m.len() == 0);
    if !["hostname", "hosts", "resolv.conf"].iter().any(|n| torn(n)) {
        return Ok(());
    }
    for (name, body) in bundle_files(hostname, host, daemon_dns, host_gateway) {
        if torn(name) {
            let path = bundle.join(name);
            berth_sys::fs::write_atomic_as(
                &path,
                body.as_bytes(),
                crate::perms::CONTAINER_VISIBLE_FILE,
                false,
            )
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
        }
    }
    Ok(())
}

/// The bundle's `hostname`, `hosts` and `resolv.conf` for a container of `host`.
fn bundle_files(
    hostname: &str,
    host: &HostConfig,
    daemon_dns: &[String],
    host_gateway: &str,
) -> [(&'static str, String); 3] {
    let network = host.network_mode.clone().unwrap_or_default();
    let hostname = format!("{hostname}\n");
    let hosts = hosts_content(host, host_gateway);
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut resolv = if network == "host" {
        host_resolv
    } else {
        container_resolv_conf(&host_resolv)
    };
    // --dns, else the daemon's `dns`, else the host's servers.
    let dns = host
        .dns
        .as_deref()
        .filter(|d| !d.is_empty())
        .unwrap_or(daemon_dns);
    resolv = apply_dns_options(
        &resolv,
        if network == "host" {
            host.dns.as_deref().unwrap_or_default()
        } else {
            dns
        },
        host.dns_search.as_deref().unwrap_or_default(),
        host.dns_options.as_deref().unwrap_or_default(),
    );
    [("hostname", hostname), ("hosts", hosts), ("resolv.conf", resolv)]
}

/// `--dns`, `--dns-search`, `--dns-option`: as libnetwork, any of them makes the file anew from
/// the given values and the base file's others (its last `search` and `options` lines, its
/// nameservers): `search`, then the nameservers, then `options`; a search list of `.` writes no
/// `search` line. Without any, the base file is kept as it is.
fn apply_dns_options(resolv: &str, dns: &[String], search: &[String], options: &[String]) -> String {
    if dns.is_empty() && search.is_empty() && options.is_empty() {
        return resolv.to_string();
    }
    let fields = |key: &str| -> Vec<String> {
        resolv
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some(key)).then(|| f.map(str::to_string).collect::<Vec<_>>())
            })
            .next_back()
            .unwrap_or_default()
    };
    let nameservers: Vec<String> = resolv
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some("nameserver"))
                .then(|| f.next())
                .flatten()
                .filter(|a| a.parse::<std::net::IpAddr>().is_ok())
                .map(str::to_string)
        })
        .collect();
    let pick = |given: &[String], base: Vec<String>| {
        if given.is_empty() {
            base
        } else {
            given.to_vec()
        }
    };
    let search = pick(search, fields("search"));
    let dns = pick(dns, nameservers);
    let options = pick(options, fields("options"));
    let mut out = String::new();
    let search = search.join(" ");
    if !search.is_empty() && search.trim() != "." {
        out.push_str(&format!("search {search}\n"));
    }
    for d in &dns {
        out.push_str(&format!("nameserver {d}\n"));
    }
    let options = options.join(" ");
    if !options.trim().is_empty() {
        out.push_str(&format!("options {options}\n"));
    }
    out
}

/// The host's resolv.conf without loopback nameservers (unreachable from a private netns); docker's
/// public fallbacks when none remain.
fn container_resolv_conf(host: &str) -> String {
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let t = line.trim();
        if let Some(addr) = t.strip_prefix("nameserver") {
            let addr = addr.trim();
            if addr.starts_with("127.") || addr == "::1" {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_default_to_latest() {
        assert_eq!(with_tag("busybox"), "busybox:latest");
        assert_eq!(with_tag("x:v9"), "x:v9");
        assert_eq!(with_tag("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(with_tag("x@sha256:abc"), "x@sha256:abc");
    }

    #[test]
    fn dns_flags_replace_lines() {
        let r = apply_dns_options(
            "search lan\nnameserver 10.0.0.1\n",
            &["192.0.2.53".into()],
            &[],
            &["ndots:2".into()],
        );
        assert_eq!(r, "search lan\nnameserver 192.0.2.53\noptions ndots:2\n");
        // The file is made anew: search first, comments and other lines gone, the last search
        // line of the base; `.` as the search list writes none.
        let base = "# generated\nnameserver 10.0.0.1\nsearch a\nsearch b c\noptions rotate\n";
        assert_eq!(
            apply_dns_options(base, &[], &["x.y".into()], &[]),
            "search x.y\nnameserver 10.0.0.1\noptions rotate\n"
        );
        assert_eq!(
            apply_dns_options(base, &["192.0.2.1".into()], &[], &[]),
            "search b c\nnameserver 192.0.2.1\noptions rotate\n"
        );
        assert_eq!(
            apply_dns_options(base, &[], &[".".into()], &[]),
            "nameserver 10.0.0.1\noptions rotate\n"
        );
        assert_eq!(apply_dns_options(base, &[], &[], &[]), base);
    }

    #[test]
    fn loopback_nameservers_are_dropped() {
        let r = container_resolv_conf("search lan\nnameserver 127.0.0.53\n");
        assert_eq!(r, "search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        let r = container_resolv_conf("nameserver 10.0.0.1\n");
        assert_eq!(r, "nameserver 10.0.0.1\n");
    }

    #[test]
    fn entrypoint_resets_image_cmd() {
        let image = berth_image::ImageConfig {
            cmd: Some(vec!["sh".into()]),
            env: vec!["PATH=/bin".into(), "A=1".into()],
            ..Default::default()
        };
        let body = ContainerCreateBody {
            entrypoint: Some(vec!["echo".into()]),
            env: Some(vec!["A=2".into()]),
            ..Default::default()
        };
        let c = merge_config(&body, &image, &"a".repeat(64)).unwrap();
        assert_eq!(c.cmd, None);
        // dockerd's order: the request's variables, then the image's it does not name.
        assert_eq!(c.env.unwrap(), vec!["A=2".to_string(), "PATH=/bin".to_string()]);
        assert_eq!(c.hostname.unwrap(), "aaaaaaaaaaaa");
        let body = ContainerCreateBody::default();
        let c = merge_config(&body, &image, &"a".repeat(64)).unwrap();
        assert_eq!(command(&c).unwrap(), ("sh".to_string(), vec![]));
        // `--entrypoint ''`: no entrypoint at all, and not the image's Cmd either.
        let image = berth_image::ImageConfig {
            entrypoint: Some(vec!["/ep".into()]),
            cmd: Some(vec!["sh".into()]),
            ..Default::default()
        };
        let reset = |cmd: Option<Vec<String>>| ContainerCreateBody {
            entrypoint: Some(vec!["".into()]),
            cmd,
            ..Default::default()
        };
        let c = merge_config(
            &reset(Some(vec!["echo".into(), "hi".into()])),
            &image,
            &"a".repeat(64),
        )
        .unwrap();
        assert_eq!(c.entrypoint, None);
        assert_eq!(command(&c).unwrap(), ("echo".to_string(), vec!["hi".to_string()]));
        let c = merge_config(&reset(None), &image, &"a".repeat(64)).unwrap();
        assert_eq!(command(&c).unwrap_err().to_string(), "No command specified");
        // `"Entrypoint": []` keeps the image's Entrypoint out but takes its Cmd.
        let body = ContainerCreateBody {
            entrypoint: Some(vec![]),
            ..Default::default()
        };
        let c = merge_config(&body, &image, &"a".repeat(64)).unwrap();
        assert_eq!(command(&c).unwrap(), ("sh".to_string(), vec![]));
    }

    #[test]
    fn process_environment_is_dockerds() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        // Defaults first, replaced in place; new variables after; a bare name unsets a default
        // and is not passed on.
        assert_eq!(
            daemon_environment(false, "h", &[], &s(&["A=1", "B", "PATH=/x", "HOSTNAME"])),
            s(&["PATH=/x", "A=1"])
        );
        assert_eq!(
            daemon_environment(true, "h", &s(&["L_NAME=/a/l"]), &s(&["TERM=vt100"])),
            s(&[
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOSTNAME=h",
                "TERM=vt100",
                "L_NAME=/a/l"
            ])
        );
        // An exec's own variables go over the container's.
        assert_eq!(
            replace_or_append_env(s(&["PATH=/p", "HOSTNAME=h", "Z=1"]), &s(&["Z", "Y=2"])),
            s(&["PATH=/p", "HOSTNAME=h", "Y=2"])
        );
    }
}
