//! `POST /containers/{id}/start`: write the bundle, spawn the shim, attach the monitor, exec.

use std::path::PathBuf;
use std::sync::Arc;

use berth_api::models::HostConfig;

use crate::container::security::{self, Seccomp};
use berth_runtime::{ContainerSpec, DeviceMapping, MountPoint, NetworkMode, Ulimit};
use berth_shim_proto::{Request, ShimConfig};

use crate::container::{Doc, Entry, Op, Status};
use crate::error::{blocking, Error, Result};
use crate::{shim, Daemon};

impl Daemon {
    /// Starts a created or exited container. `NotModified` if it already runs.
    pub async fn start(self: &Arc<Self>, key: &str) -> Result<()> {
        let entry = self.find(key)?;
        let _op = entry.op.lock().await;
        entry.status().can(Op::Start, &entry.id)?;
        self.start_locked(&entry).await
    }

    /// Starts `entry` (its op lock held). As dockerd, a `--rm` container whose start failed is
    /// removed, whatever failed (a bad device, a mount, the runtime): `docker run --rm` waits for
    /// that removal.
    pub(crate) async fn start_locked(self: &Arc<Self>, entry: &Arc<Entry>) -> Result<()> {
        let r = self.try_start(entry).await;
        if r.is_err() && entry.with(|d| d.host_config.auto_remove.unwrap_or(false)) {
            let daemon = self.clone();
            let entry = entry.clone();
            tokio::spawn(async move {
                let _ = daemon.remove_entry(&entry, false, true).await;
            });
        }
        r
    }

    async fn try_start(self: &Arc<Self>, entry: &Arc<Entry>) -> Result<()> {
        berth_sys::times::mark("d-start");
        let doc = entry.doc();
        let id = doc.id.clone();
        let bundle = self.bundle(&id);
        let images = self.images.clone();
        let cid = id.clone();
        let mut rootfs = blocking(move || images.rootfs_mounts(&cid).map_err(Into::into)).await?;
        if doc.host_config.auto_remove.unwrap_or(false) {
            volatile(&mut rootfs);
        }
        berth_sys::times::mark("d-rootfs-listed");
        let socket = self.shim_socket(&id);
        // One shim per container: a live one means this container is already started (a crash
        // of the daemon mid-start is settled by restore, not by a second shim).
        if shim::call(&socket, &Request::State).await.is_ok() {
            return Err(Error::conflict(format!(
                "cannot start container {id}: its monitor (berth-shim) is still running"
            )));
        }
        // The shim loads (exec and dynamic linking, 1.2-1.7 ms on the reference machine) while the
        // bundle is written; it waits for `go`, and exits without doing anything when this start
        // fails first (or the daemon dies): EOF on its stdin.
        // The cgroups of its last run, if they still wait for the reaper, go before new ones.
        self.reaper.take(&id);
        let spawned = shim::spawn_waiting(&self.spawner, &bundle);
        berth_sys::times::mark("d-shim-spawned");
        // The volumes are mounted (and copied up) now; a failure from here until the shim runs
        // releases them.
        let mounts = self.setup_mounts(entry).await?;
        // Links, and the containers whose namespaces this one joins, before the network
        // (dockerd fails the start the same way): each must run. A failure is recorded as a
        // failed start (exit 128; `--rm` removes the container).
        let (links, mut namespaces) = match self
            .link_context(&doc)
            .and_then(|l| Ok((l, self.namespaces(&doc)?)))
        {
            Ok(x) => x,
            Err(e) => {
                let before = entry.with(|d| (d.state.status, d.state.started_at));
                let _ = self.start_failed(entry, before, e.to_string(), None).await;
                return Err(e);
            }
        };
        if let Some(dir) = &namespaces.own_shm {
            let size = doc
                .host_config
                .shm_size
                .filter(|s| *s > 0)
                .unwrap_or(berth_runtime::DEFAULT_SHM_SIZE);
            if let Err(e) = self.mount_own_shm(dir, size) {
                let before = entry.with(|d| (d.state.status, d.state.started_at));
                let _ = self.start_failed(entry, before, e.to_string(), None).await;
                return Err(e);
            }
        }
        berth_sys::times::mark("d-mounts-set-up");
        // The network first: the spec names the namespace, and hosts needs the address.
        let mut network = match self.network_mode(&doc) {
            Ok(n) => n,
            Err(e) => {
                let before = entry.with(|d| (d.state.status, d.state.started_at));
                let _ = self.start_failed(entry, before, e.to_string(), None).await;
                return Err(e);
            }
        };
        let mode = doc.host_config.network_mode.clone().unwrap_or_default();
        let mut net_state = None;
        if crate::network::has_endpoint(&mode) {
            let daemon = self.clone();
            let d = doc.clone();
            let st = match blocking(move || daemon.net_setup(&d)).await {
                Ok(st) => st,
                // Recorded as a failed start (exit 128, the reason; `--rm` removes it), as dockerd
                // records a port it cannot bind.
                Err(e) => {
                    let before = entry.with(|d| (d.state.status, d.state.started_at));
                    let kind = e.kind();
                    let failed = self.start_failed(entry, before, e.to_string(), None).await;
                    return Err(match kind {
                        berth_types::ErrorKind::Internal => failed,
                        _ => e,
                    });
                }
            };
            network = NetworkMode::Path(st.netns.clone());
            if !st.ip.is_empty() {
                self.emit_network("connect", &st.network_id, &st.network, Some(&id));
            }
            self.extras_up(entry, &st).await;
            net_state = Some(st);
        } else if matches!(mode.as_str(), "none" | "host") {
            // dockerd joins these to its built-in networks, with the same events.
            self.emit_network("connect", &crate::networks::builtin_id(&mode), &mode, Some(&id));
        }
        namespaces.network = network;
        if let Err(e) = namespaces.joining_network() {
            let before = entry.with(|d| (d.state.status, d.state.started_at));
            let _ = self.start_failed(entry, before, e.to_string(), None).await;
            return Err(e);
        }
        self.emit_volume_mounts(entry, &mounts);
        let joined = namespaces.joined.clone();
        let mut written = self.write_start_files(
            &doc,
            &bundle,
            namespaces,
            rootfs,
            mounts,
            net_state.as_ref().map(|st| (st, &links)),
        );
        if let (Ok(_), Some(st)) = (&written, &net_state) {
            if st.network != crate::network::DEFAULT {
                if let Err(e) = self.dns_start(&id, st) {
                    written = Err(e);
                }
            }
        }
        let shim_cfg = match written {
            Ok(c) => c,
            Err(e) => {
                self.release_own_shm_of(entry);
                self.release_mounts(entry).await;
                if let Some(st) = &net_state {
                    self.dns_stop(&id);
                    self.extras_down(entry).await;
                    self.net_undo(&id, st).await;
                }
                return Err(e);
            }
        };
        berth_sys::failpoint::hit("container.start.files-written");
        berth_sys::times::mark("d-files-written");

        // The record says running before the shim exists: whatever happens from here, a new
        // daemon finds the container recorded as running and settles it (reattach to the shim,
        // finish the start, or record the exit) instead of leaving an untracked process.
        let before = entry.with(|d| (d.state.status, d.state.started_at));
        entry.update(|d| {
            d.net = net_state.clone();
            d.state.status = Status::Running;
            d.state.pid = 0;
            d.state.started_at = berth_types::time::now_nanos();
            d.state.finished_at = 0;
            d.state.exit_code = 0;
            d.state.error.clear();
            d.state.oom_killed = false;
            d.manually_stopped = false;
        });
        self.persist(entry)?;
        berth_sys::failpoint::hit("container.start.marked-running");
        berth_sys::times::mark("d-persisted");

        let ready = match async { spawned?.go().await }.await {
            Ok(r) => r,
            Err(e) => return Err(self.start_failed(entry, before, e.to_string(), None).await),
        };
        let pid = match (ready.pid, ready.error) {
            (_, Some(err)) => {
                let failed = self
                    .start_failed(entry, before, err.clone(), ready.exit_code)
                    .await;
                // dockerd's own checks read bare, without the runtime's wrapper.
                return Err(if ready.bare { Error::Internal(err) } else { failed });
            }
            (Some(pid), None) => pid,
            (None, None) => {
                return Err(self
                    .start_failed(entry, before, "shim reported no pid".into(), None)
                    .await)
            }
        };
        if let Err(kind) = crate::container::namespaces::Namespaces::check_joined(&joined, pid) {
            // Its init has not run anything yet (it waits for Start).
            let _ = shim::call(&socket, &Request::Kill { signal: 9, all: true }).await;
            let why = format!("the container whose {kind} namespace this one joins exited while it started");
            return Err(self.start_failed(entry, before, why, None).await);
        }
        berth_sys::failpoint::hit("container.start.shim-ready");
        berth_sys::times::mark("d-shim-ready");
        let stream = match shim::attach(&socket, shim_cfg.open_stdin).await {
            Ok(s) => s,
            Err(e) => {
                let _ = shim::call(&socket, &Request::Kill { signal: 9, all: true }).await;
                return Err(self.start_failed(entry, before, e.to_string(), None).await);
            }
        };
        entry.update(|d| d.state.pid = pid as i64);
        // The monitor is attached before the exec: it may see the exit as soon as Start is sent.
        shim::monitor(self.clone(), entry.clone(), stream);
        berth_sys::failpoint::hit("container.start.before-exec");
        berth_sys::times::mark("d-attached");
        let resp = shim::call(&socket, &Request::Start).await?;
        if let Some(err) = resp.error {
            // The monitor records the exit when the shim gives up; report the failure here.
            return Err(Error::Start {
                reason: err,
                code: resp.exit_code,
            });
        }
        self.start_health(entry);
        self.persist(entry)?;
        berth_sys::failpoint::hit("container.start.committed");
        berth_sys::times::mark("d-started");
        self.events
            .emit("container", "start", &id, self.container_attrs(entry));
        Ok(())
    }

    /// The bundle files of a start: config.json (the OCI spec), shim.json, and the container's
    /// address in hosts.
    fn write_start_files(
        &self,
        doc: &Doc,
        bundle: &std::path::Path,
        namespaces: crate::container::namespaces::Namespaces,
        rootfs: Vec<berth_types::Mount>,
        mounts: Vec<MountPoint>,
        net: Option<(&crate::network::NetState, &crate::links::LinkContext)>,
    ) -> Result<ShimConfig> {
        let id = doc.id.clone();
        let network = namespaces.network.clone();
        // A `--rm` container's files die with the host: written without fsyncs.
        let durable = !doc.host_config.auto_remove.unwrap_or(false);
        let host_gateway = self
            .networks
            .as_ref()
            .map(|n| n.default.gateway.to_string())
            .unwrap_or_default();
        crate::container::create::restore_bundle_files(
            bundle,
            &doc.config.hostname.clone().unwrap_or_default(),
            &doc.host_config,
            &self.config.network.dns,
            &host_gateway,
        )?;
        let socket = self.shim_socket(&id);
        let linked = net.map(|(_, l)| l.env.as_slice()).unwrap_or_default();
        let mut spec = container_spec(doc, bundle, &self.config.cgroup_parent, namespaces, linked);
        spec.init_path = self.init_path();
        spec.mounts.extend(mounts);
        let oci = berth_runtime::build_spec(&spec).map_err(Error::Spec)?;
        let log = crate::container::logs::config::of_doc(doc);
        let log_path = crate::container::logs::config::log_path(bundle, &id, log.driver);
        let shim_cfg = ShimConfig {
            version: berth_shim_proto::VERSION,
            id: id.clone(),
            rootfs,
            socket: socket.to_string_lossy().into_owned(),
            log_path: log_path
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            exit_file: bundle.join("exit.json").to_string_lossy().into_owned(),
            runtime_log: bundle.join("runtime.log").to_string_lossy().into_owned(),
            tty: doc.config.tty.unwrap_or(false),
            open_stdin: doc.config.open_stdin.unwrap_or(false),
            stdin_once: doc.config.stdin_once.unwrap_or(false),
            user: doc.config.user.clone().unwrap_or_default(),
            group_add: doc.host_config.group_add.clone().unwrap_or_default(),
            console_size: console_size(doc),
            loopback_up: matches!(network, NetworkMode::None),
            seccomp_cache: self
                .config
                .data_root
                .join("seccomp")
                .to_string_lossy()
                .into_owned(),
            runtime_root: self
                .config
                .exec_root
                .join("runtime")
                .to_string_lossy()
                .into_owned(),
            log,
            host_mount_ns: doc.mounts.iter().any(|m| {
                m.kind == berth_types::MountType::Bind && matches!(m.propagation(), "shared" | "rshared")
            }),
            volatile: !durable,
            shared_dir: self
                .config
                .exec_root
                .join("shared")
                .to_string_lossy()
                .into_owned(),
            keep_empty_cgroup: true,
            netns_dir: if self.netns_dir_mounted {
                self.netns_dir().to_string_lossy().into_owned()
            } else {
                String::new()
            },
        };
        let oci_json = serde_json::to_vec(&oci)?;
        let shim_json = serde_json::to_vec(&shim_cfg)?;
        let _ = std::fs::remove_file(bundle.join("exit.json"));
        // The spec holds the env: owner-only (perms.rs). Both are this start's input, written
        // again by every start and read by the shim it spawns: atomic, but not fsynced (after a
        // host crash no shim runs and the next start rewrites them).
        for (name, json) in [("config.json", &oci_json), ("shim.json", &shim_json)] {
            let path = bundle.join(name);
            berth_sys::fs::write_atomic_as(&path, json, crate::perms::PRIVATE_FILE, false)
                .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
        }
        if let Some((st, links)) = net {
            let hostname = doc.config.hostname.clone().unwrap_or_default();
            let host_gateway = self
                .networks
                .as_ref()
                .map(|n| n.default.gateway.to_string())
                .unwrap_or_default();
            let base = crate::container::create::hosts_content(&doc.host_config, &host_gateway);
            crate::network::write_hosts(bundle, &base, &links.hosts, &st.ip, &hostname, durable)?;
            if st.network != crate::network::DEFAULT {
                let h = &doc.host_config;
                let resolv = crate::dns::resolv_conf(
                    h.dns_search.as_deref().unwrap_or_default(),
                    h.dns_options.as_deref().unwrap_or_default(),
                );
                let path = bundle.join("resolv.conf");
                berth_sys::fs::write_atomic_as(
                    &path,
                    resolv.as_bytes(),
                    crate::perms::CONTAINER_VISIBLE_FILE,
                    durable,
                )
                .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
            }
        }
        Ok(shim_cfg)
    }

    /// Records a start that never ran the process: docker keeps the container `created` with the
    /// exit code (127/126/128) and the message, wakes waiters, and honours `--rm`.
    async fn start_failed(
        self: &Arc<Self>,
        entry: &Arc<Entry>,
        before: (Status, i64),
        err: String,
        code: Option<i32>,
    ) -> Error {
        let code = code.unwrap_or(128) as i64;
        self.release_own_shm_of(entry);
        self.release_mounts(entry).await;
        if let Some((net_id, net)) = self.net_release(entry).await {
            self.emit_network("disconnect", &net_id, &net, Some(&entry.id));
        }
        entry.update(|d| {
            (d.state.status, d.state.started_at) = before;
            d.state.pid = 0;
            d.state.exit_code = code;
            d.state.error = err.clone();
            d.state.finished_at = berth_types::time::now_nanos();
        });
        let _ = self.persist(entry);
        let mut attrs = self.container_attrs(entry);
        attrs.insert("exitCode".into(), code.to_string());
        self.events.emit("container", "die", &entry.id, attrs);
        entry.life.send_modify(|l| {
            l.exits += 1;
            l.exit_code = code;
        });
        Error::Start {
            reason: err,
            code: Some(code as i32),
        }
    }

    fn network_mode(&self, doc: &Doc) -> Result<NetworkMode> {
        let mode = doc.host_config.network_mode.clone().unwrap_or_default();
        Ok(match mode.as_str() {
            "host" => NetworkMode::Host,
            m if m.starts_with("container:") => {
                let other = self.find(&m["container:".len()..])?;
                let pid = other.with(|d| d.state.pid);
                if !other.status().is_running() || pid == 0 {
                    return Err(Error::conflict(format!(
                        "cannot join network of a non running container: {}",
                        other.id
                    )));
                }
                NetworkMode::Path(PathBuf::from(format!("/proc/{pid}/ns/net")))
            }
            // Bridge networking is a later addition; until then every other mode gets a private
            // network namespace with loopback.
            _ => NetworkMode::None,
        })
    }
}

fn console_size(doc: &Doc) -> Option<(u16, u16)> {
    let cs = doc.host_config.console_size.clone()?;
    match cs.as_slice() {
        [h, w] if *h > 0 && *w > 0 => Some((*h as u16, *w as u16)),
        _ => None,
    }
}

/// The runtime's view of a container.
fn container_spec(
    doc: &Doc,
    bundle: &std::path::Path,
    cgroup_parent: &str,
    ns: crate::container::namespaces::Namespaces,
    linked: &[String],
) -> ContainerSpec {
    let c = &doc.config;
    let h = &doc.host_config;
    let tty = c.tty.unwrap_or(false);
    let hostname = c.hostname.clone().unwrap_or_default();
    let env = crate::container::create::daemon_environment(
        tty,
        &hostname,
        linked,
        &c.env.clone().unwrap_or_default(),
    );
    let mut args = vec![doc.path.clone()];
    args.extend(doc.args.iter().cloned());
    // Checked at create; a record from before that check keeps the options that check out.
    let security = security::parse_recorded(&h.security_opt.clone().unwrap_or_default());
    let bind =
        |file: &str, dest: &str| MountPoint::bind(bundle.join(file).display().to_string(), dest, false);
    ContainerSpec {
        id: doc.id.clone(),
        rootfs: bundle.join("rootfs"),
        args,
        env,
        cwd: c
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into()),
        tty,
        hostname,
        domainname: c.domainname.clone().unwrap_or_default(),
        network: ns.network,
        pid: ns.pid,
        ipc: ns.ipc,
        uts: ns.uts,
        shm: ns.shm,
        cgroupns: h.cgroupns_mode == Some(berth_api::models::HostConfigCgroupnsModeEnum::PRIVATE),
        readonly_rootfs: h.readonly_rootfs.unwrap_or(false),
        privileged: h.privileged.unwrap_or(false),
        cap_add: h.cap_add.clone().unwrap_or_default(),
        cap_drop: h.cap_drop.clone().unwrap_or_default(),
        memory: h.memory.unwrap_or(0),
        memory_swap: h.memory_swap.unwrap_or(0),
        memory_reservation: h.memory_reservation.unwrap_or(0),
        nano_cpus: h.nano_cpus.unwrap_or(0),
        cpu_shares: h.cpu_shares.unwrap_or(0),
        cpu_quota: h.cpu_quota.unwrap_or(0),
        cpu_period: h.cpu_period.unwrap_or(0),
        cpuset_cpus: h.cpuset_cpus.clone().unwrap_or_default(),
        cpuset_mems: h.cpuset_mems.clone().unwrap_or_default(),
        // Checked at create; a record from before that check keeps what this host can apply.
        memory_swappiness: h
            .memory_swappiness
            .filter(|s| (0..=100).contains(s) && crate::cgroups::v1_file("memory", "memory.swappiness"))
            .map(|s| s as u64),
        oom_kill_disable: h.oom_kill_disable.unwrap_or(false)
            && crate::cgroups::v1_file("memory", "memory.oom_control"),
        blkio: {
            let mut b = blkio(h);
            for list in [
                &mut b.weight_device,
                &mut b.read_bps,
                &mut b.write_bps,
                &mut b.read_iops,
                &mut b.write_iops,
            ] {
                list.retain(|d| berth_runtime::block_device(&d.path).is_ok());
            }
            b
        },
        pids_limit: h.pids_limit.filter(|p| *p != 0),
        ulimits: h
            .ulimits
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|u| Ulimit {
                name: u.name.unwrap_or_default(),
                soft: u.soft.unwrap_or(0),
                hard: u.hard.unwrap_or(0),
            })
            .collect(),
        cgroup_parent: h
            .cgroup_parent
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| cgroup_parent.to_string()),
        mounts: vec![
            bind("resolv.conf", "/etc/resolv.conf"),
            bind("hostname", "/etc/hostname"),
            bind("hosts", "/etc/hosts"),
        ],
        devices: device_mappings(h),
        device_cgroup_rules: h.device_cgroup_rules.clone().unwrap_or_default(),
        shm_size: h
            .shm_size
            .filter(|s| *s > 0)
            .unwrap_or(berth_runtime::DEFAULT_SHM_SIZE),
        seccomp_unconfined: security.seccomp == Seccomp::Unconfined,
        seccomp_profile: match security.seccomp {
            Seccomp::Profile(json) => Some(json),
            _ => None,
        },
        no_new_privileges: security.no_new_privileges,
        masked_paths: match security.unconfined_paths {
            true => Some(Vec::new()),
            false => h.masked_paths.clone(),
        },
        readonly_paths: match security.unconfined_paths {
            true => Some(Vec::new()),
            false => h.readonly_paths.clone(),
        },
        oom_score_adj: h.oom_score_adj.filter(|o| *o != 0).map(|o| o as i32),
        sysctls: h.sysctls.clone().unwrap_or_default().into_iter().collect(),
        init: h.init.unwrap_or(false),
        init_path: PathBuf::new(),
    }
}

/// `HostConfig`'s block I/O settings in the runtime's terms.
pub(crate) fn blkio(h: &HostConfig) -> berth_runtime::Blkio {
    let throttle = |v: &Option<Vec<berth_api::models::ThrottleDevice>>| {
        v.iter()
            .flatten()
            .map(|d| berth_runtime::BlkioDevice {
                path: d.path.clone().unwrap_or_default(),
                value: d.rate.unwrap_or(0).max(0) as u64,
            })
            .collect()
    };
    berth_runtime::Blkio {
        weight: h.blkio_weight.unwrap_or(0),
        weight_device: h
            .blkio_weight_device
            .iter()
            .flatten()
            .map(|d| berth_runtime::BlkioDevice {
                path: d.path.clone().unwrap_or_default(),
                value: d.weight.unwrap_or(0) as u64,
            })
            .collect(),
        read_bps: throttle(&h.blkio_device_read_bps),
        write_bps: throttle(&h.blkio_device_write_bps),
        read_iops: throttle(&h.blkio_device_read_iops),
        write_iops: throttle(&h.blkio_device_write_iops),
    }
}

/// `HostConfig.Devices` in the runtime's terms.
pub(crate) fn device_mappings(h: &HostConfig) -> Vec<DeviceMapping> {
    h.devices
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|d| DeviceMapping {
            path_on_host: d.path_on_host.unwrap_or_default(),
            path_in_container: d.path_in_container.unwrap_or_default(),
            cgroup_permissions: d.cgroup_permissions.unwrap_or_default(),
        })
        .collect()
}

/// A `--rm` container's rw layer dies with it, so its overlay is mounted `volatile`: no sync of
/// the upper layer's whole filesystem when it is unmounted (the overlay's `sync_fs` flushes every
/// dirty inode of the data root's filesystem, which a busy host makes the slowest step of a
/// `run --rm`), and `fsync` in the container skips the disk. The marker overlay leaves in its
/// work dir (which refuses a later mount) is cleared first: a volatile layer is only mounted
/// again after a clean unmount (a stop, then a start), never after a crash, since berth removes
/// `--rm` containers that did not stop cleanly.
fn volatile(rootfs: &mut [berth_types::Mount]) {
    for m in rootfs.iter_mut().filter(|m| m.kind == "overlay") {
        let Some(work) = m.options.iter().find_map(|o| o.strip_prefix("workdir=")) else {
            continue;
        };
        let _ = std::fs::remove_dir_all(std::path::Path::new(work).join("work/incompat"));
        m.options.push("volatile".into());
    }
}
