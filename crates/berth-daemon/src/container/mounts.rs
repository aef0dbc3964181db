//! A container's mounts: `HostConfig.Binds` (`-v`), `Mounts` (`--mount`), `Tmpfs`,
//! `VolumesFrom` and the config's `Volumes` (image `VOLUME`s and `-v /path`) resolved at create
//! into [`MountPoint`]s, the one mount currency the record keeps and the runtime consumes.
//!
//! Resolution follows dockerd's `registerMountPoints`: `--volumes-from` first, then binds
//! (which override an inherited mount on the same target), then `--mount` (a duplicate target
//! is an error), tmpfs, and last an anonymous volume for every declared volume path nothing
//! else covers. [`plan`] only parses and validates (nothing is created, so bad input changes
//! nothing); [`Daemon::realize_mounts`] then creates the volumes and missing `-v` directories.
//!
//! At start each volume is mounted by the store (driver options) and, when it is empty and
//! `copy_up` is set, gets the image's content at its target ([`Daemon::setup_mounts`]); at exit
//! [`Daemon::release_mounts`] lets it go. Volume events follow dockerd: `create` at container
//! create (even for an existing volume), `mount` at start, `unmount` at exit, `destroy` on
//! removal.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use berth_api::models::{ContainerConfig, HostConfig, Mount as ApiMount, MountTypeEnum};
use berth_types::{MountPoint, MountType};

use crate::container::Entry;
use crate::error::{blocking, Error, Result};
use crate::Daemon;

/// Serialises copy-ups (see [`Daemon::setup_mounts`]).
static COPY_UP: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A volume a planned mount needs created (or found).
#[derive(Debug, Clone, Default)]
pub(crate) struct NeededVolume {
    /// Empty: anonymous, named at realize time.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
}

/// What [`plan`] found: the mounts (volume sources not yet known), the volumes to make for
/// them (same index as their mount), and the bind directories `-v` creates.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub mounts: Vec<MountPoint>,
    pub volumes: Vec<(usize, NeededVolume)>,
    pub mkdirs: Vec<String>,
}

fn invalid_spec(spec: &str) -> Error {
    Error::invalid(format!("invalid volume specification: '{spec}'"))
}

fn check_target(kind: &str, target: &str) -> Result<()> {
    if target.is_empty() {
        return Err(Error::invalid(format!(
            "invalid mount config for type \"{kind}\": field Target must not be empty"
        )));
    }
    if !target.starts_with('/') {
        return Err(Error::invalid(format!(
            "invalid mount config for type \"{kind}\": invalid mount path: '{target}' mount path must be absolute"
        )));
    }
    if clean(target) == "/" {
        return Err(Error::invalid(format!(
            "invalid mount config for type \"{kind}\": invalid specification: destination can't be '/'"
        )));
    }
    Ok(())
}

/// Lexically cleaned absolute path (`/a//b/../c/` → `/a/c`).
pub(crate) fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// dockerd's `ensureShared`/`ensureSharedOrSlave` at start: a bind whose propagation is
/// `shared`/`rshared` needs a source on a shared mount, one that is `slave`/`rslave` a source on
/// a shared or slave mount; otherwise propagation could not work as asked, and dockerd refuses.
fn check_bind_propagation(mounts: &[MountPoint]) -> Result<()> {
    let mut info: Option<String> = None;
    for m in mounts.iter().filter(|m| m.kind == MountType::Bind) {
        let p = m.propagation();
        let (shared_only, any) = (matches!(p, "shared" | "rshared"), matches!(p, "slave" | "rslave"));
        if !shared_only && !any {
            continue;
        }
        if info.is_none() {
            info = Some(
                std::fs::read_to_string("/proc/self/mountinfo")
                    .map_err(|e| Error::internal(format!("read /proc/self/mountinfo: {e}")))?,
            );
        }
        let src = std::fs::canonicalize(&m.source).unwrap_or_else(|_| std::path::PathBuf::from(&m.source));
        let Some((mount_point, optional)) = mount_of(info.as_deref().unwrap_or_default(), &src) else {
            continue;
        };
        let shared = optional.iter().any(|o| o.starts_with("shared:"));
        let slave = optional.iter().any(|o| o.starts_with("master:"));
        if shared_only && !shared {
            return Err(Error::internal(format!(
                "path {} is mounted on {mount_point} but it is not a shared mount",
                m.source
            )));
        }
        if any && !shared && !slave {
            return Err(Error::internal(format!(
                "path {} is mounted on {mount_point} but it is not a shared or slave mount",
                m.source
            )));
        }
    }
    Ok(())
}

/// The mount (its mount point and optional fields, from a `mountinfo` text) under which `path`
/// lies: the last-mounted of the longest matching mount points.
fn mount_of(mountinfo: &str, path: &std::path::Path) -> Option<(String, Vec<String>)> {
    let mut best: Option<(String, Vec<String>)> = None;
    for line in mountinfo.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        if f.len() < 7 || sep < 6 {
            continue;
        }
        let mp = berth_sys::mount::unescape_mountinfo(f[4]);
        if !path.starts_with(&mp) {
            continue;
        }
        if best.as_ref().is_none_or(|(b, _)| mp.len() >= b.len()) {
            best = Some((mp, f[6..sep].iter().map(|s| s.to_string()).collect()));
        }
    }
    best
}

const PROPAGATIONS: &[&str] = &["private", "rprivate", "shared", "rshared", "slave", "rslave"];

/// One `-v` / `Binds` entry.
fn parse_bind(spec: &str, plan: &mut Plan) -> Result<MountPoint> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [d] => ("", *d, ""),
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => return Err(invalid_spec(spec)),
    };
    if dst.is_empty() {
        return Err(invalid_spec(spec));
    }
    let kind = if src.starts_with('/') { "bind" } else { "volume" };
    check_target(kind, dst)
        .map_err(|e| Error::invalid(format!("invalid volume specification: '{spec}': {e}")))?;
    let mut read_only = false;
    let mut propagation = String::new();
    let mut copy_up = true;
    for m in mode.split(',').filter(|m| !m.is_empty()) {
        match m {
            "ro" => read_only = true,
            "rw" => read_only = false,
            "z" | "Z" | "consistent" | "cached" | "delegated" => {}
            "nocopy" if kind == "volume" => copy_up = false,
            p if PROPAGATIONS.contains(&p) && kind == "bind" => propagation = p.to_string(),
            _ => return Err(Error::invalid(format!("invalid mode: {mode}"))),
        }
    }
    let mut mp = MountPoint {
        target: clean(dst),
        read_only,
        propagation,
        mode: mode.to_string(),
        ..Default::default()
    };
    if kind == "bind" {
        mp.kind = MountType::Bind;
        mp.source = clean(src);
        if !Path::new(src).exists() {
            plan.mkdirs.push(mp.source.clone());
        }
    } else {
        mp.kind = MountType::Volume;
        mp.driver = berth_volume::LOCAL.into();
        mp.copy_up = copy_up;
        if src.is_empty() {
            mp.mode = String::new();
        } else {
            berth_volume::validate_name(src).map_err(|e| Error::invalid(e.to_string()))?;
            mp.name = src.to_string();
            if mode.is_empty() {
                // dockerd 20.10 reports the SELinux default for a named `-v` without a mode.
                mp.mode = "z".into();
            }
        }
    }
    Ok(mp)
}

/// One `--mount` / `Mounts` entry.
fn parse_mount(m: &ApiMount) -> Result<(MountPoint, Option<NeededVolume>)> {
    let target = m.target.clone().unwrap_or_default();
    let source = m.source.clone().unwrap_or_default();
    let typ = m.typ.unwrap_or(MountTypeEnum::EMPTY);
    let kind = serde_json::to_value(typ)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    let bad = |what: String| Error::invalid(format!("invalid mount config for type \"{kind}\": {what}"));
    check_target(&kind, &target).or_else(|e| match typ {
        MountTypeEnum::BIND | MountTypeEnum::VOLUME | MountTypeEnum::TMPFS => Err(e),
        _ => Ok(()),
    })?;
    let read_only = m.read_only.unwrap_or(false);
    let mut mp = MountPoint {
        target: clean(&target),
        read_only,
        ..Default::default()
    };
    match typ {
        MountTypeEnum::BIND => {
            if m.volume_options.is_some() {
                return Err(bad("field VolumeOptions must not be specified".into()));
            }
            if m.tmpfs_options.is_some() {
                return Err(bad("field TmpfsOptions must not be specified".into()));
            }
            if source.is_empty() {
                return Err(bad("field Source must not be empty".into()));
            }
            if !source.starts_with('/') {
                return Err(bad(format!(
                    "invalid mount path: '{source}' mount path must be absolute"
                )));
            }
            if !Path::new(&source).exists() {
                return Err(bad(format!("bind source path does not exist: {source}")));
            }
            mp.kind = MountType::Bind;
            mp.source = clean(&source);
            if let Some(p) = m.bind_options.as_ref().and_then(|b| b.propagation) {
                let p = serde_json::to_value(p)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                mp.propagation = p;
            }
            Ok((mp, None))
        }
        MountTypeEnum::VOLUME => {
            if m.bind_options.is_some() {
                return Err(bad("field BindOptions must not be specified".into()));
            }
            if m.tmpfs_options.is_some() {
                return Err(bad("field TmpfsOptions must not be specified".into()));
            }
            let vo = m.volume_options.clone().unwrap_or_default();
            let driver = vo
                .driver_config
                .as_ref()
                .and_then(|d| d.name.clone())
                .unwrap_or_default();
            if !driver.is_empty() && driver != berth_volume::LOCAL {
                // 400, not dockerd's 404: the docker CLI answers a 404 from create by pulling.
                return Err(Error::invalid(format!(
                    "error looking up volume plugin {driver}: plugin \"{driver}\" not found"
                )));
            }
            if !source.is_empty() {
                berth_volume::validate_name(&source).map_err(|e| Error::invalid(e.to_string()))?;
            }
            mp.kind = MountType::Volume;
            mp.name = source.clone();
            mp.driver = berth_volume::LOCAL.into();
            mp.copy_up = !vo.no_copy.unwrap_or(false);
            let need = NeededVolume {
                name: source,
                labels: vo.labels.unwrap_or_default().into_iter().collect(),
                options: vo
                    .driver_config
                    .and_then(|d| d.options)
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
            };
            Ok((mp, Some(need)))
        }
        MountTypeEnum::TMPFS => {
            if !source.is_empty() {
                return Err(bad("field Source must not be specified".into()));
            }
            if m.bind_options.is_some() || m.volume_options.is_some() {
                return Err(bad("field BindOptions must not be specified".into()));
            }
            mp.kind = MountType::Tmpfs;
            if let Some(t) = &m.tmpfs_options {
                if let Some(size) = t.size_bytes.filter(|s| *s > 0) {
                    mp.options.push(format!("size={}", tmpfs_size(size)));
                }
                if let Some(mode) = t.mode.filter(|m| *m != 0) {
                    mp.options.push(format!("mode={:o}", mode & 0o7777));
                }
            }
            Ok((mp, None))
        }
        _ => Err(Error::invalid(format!("mount type unknown: \"{kind}\""))),
    }
}

/// dockerd writes a tmpfs size in the largest whole unit (`1m`, `512k`, or bytes).
fn tmpfs_size(bytes: i64) -> String {
    for (unit, n) in [("g", 1i64 << 30), ("m", 1 << 20), ("k", 1 << 10)] {
        if bytes % n == 0 {
            return format!("{}{unit}", bytes / n);
        }
    }
    bytes.to_string()
}

/// One `--tmpfs PATH[:OPTIONS]` (`HostConfig.Tmpfs`).
fn parse_tmpfs(path: &str, opts: &str) -> Result<MountPoint> {
    // dockerd's words for `--tmpfs` (no "invalid mount config" prefix, which is `--mount`'s).
    if !path.starts_with('/') {
        return Err(Error::invalid(format!(
            "invalid mount path: '{path}' mount path must be absolute"
        )));
    }
    check_target("tmpfs", path)?;
    let mut mp = MountPoint {
        kind: MountType::Tmpfs,
        target: clean(path),
        ..Default::default()
    };
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => mp.read_only = true,
            "rw" => mp.read_only = false,
            o => mp.options.push(o.to_string()),
        }
    }
    Ok(mp)
}

/// Parses and validates every mount of a create request; creates nothing.
pub(crate) fn plan(daemon: &Daemon, host: &HostConfig, config: &ContainerConfig) -> Result<Plan> {
    let mut plan = Plan::default();
    let mut by_target: HashMap<String, usize> = HashMap::new();
    let mut push =
        |plan: &mut Plan, mp: MountPoint, need: Option<NeededVolume>, replace: bool| -> Result<()> {
            if let Some(&i) = by_target.get(&mp.target) {
                if !replace {
                    return Err(Error::invalid(format!("Duplicate mount point: {}", mp.target)));
                }
                plan.volumes.retain(|(j, _)| *j != i);
                if let Some(n) = need {
                    plan.volumes.push((i, n));
                }
                plan.mounts[i] = mp;
                return Ok(());
            }
            by_target.insert(mp.target.clone(), plan.mounts.len());
            if let Some(n) = need {
                plan.volumes.push((plan.mounts.len(), n));
            }
            plan.mounts.push(mp);
            Ok(())
        };
    // --volumes-from: the other container's mounts, same targets (tmpfs are its own).
    for spec in host.volumes_from.clone().unwrap_or_default() {
        let (name, mode) = match spec.rsplit_once(':') {
            Some((n, m)) if matches!(m, "ro" | "rw" | "z" | "Z") || m.contains(',') => (n, Some(m)),
            Some(_) => return Err(Error::invalid(format!("invalid mode for volumes-from: {spec}"))),
            None => (spec.as_str(), None),
        };
        // 400, not 404: the docker CLI answers a 404 from create by pulling the image.
        let other = daemon
            .find(name)
            .map_err(|_| Error::invalid(format!("No such container: {name}")))?;
        for mut mp in other.with(|d| d.mounts.clone()) {
            if mp.kind == MountType::Tmpfs {
                continue;
            }
            match mode {
                Some(m) if m.split(',').any(|x| x == "ro") => mp.read_only = true,
                Some(m) if m.split(',').any(|x| x == "rw") => mp.read_only = false,
                _ => {}
            }
            mp.inherited = true;
            mp.copy_up = false;
            push(&mut plan, mp, None, true)?;
        }
    }
    let from_volumes_from = |plan: &Plan, t: &str| plan.mounts.iter().any(|m| m.target == t && m.inherited);
    for spec in host.binds.clone().unwrap_or_default() {
        let mp = parse_bind(&spec, &mut plan)?;
        let need = (mp.kind == MountType::Volume).then(|| NeededVolume {
            name: mp.name.clone(),
            ..Default::default()
        });
        let replace = from_volumes_from(&plan, &mp.target);
        push(&mut plan, mp, need, replace)?;
    }
    for m in host.mounts.clone().unwrap_or_default() {
        let (mp, need) = parse_mount(&m)?;
        let replace = from_volumes_from(&plan, &mp.target);
        push(&mut plan, mp, need, replace)?;
    }
    let mut tmpfs: Vec<(String, String)> = host.tmpfs.clone().unwrap_or_default().into_iter().collect();
    tmpfs.sort();
    for (path, opts) in tmpfs {
        let mp = parse_tmpfs(&path, &opts)?;
        push(&mut plan, mp, None, false)?;
    }
    // Declared volumes (image VOLUME, -v /path, docker-py's bind targets) nothing else covers.
    for path in config.volumes.clone().unwrap_or_default() {
        let target = clean(&path);
        if plan.mounts.iter().any(|m| m.target == target) {
            continue;
        }
        check_target("volume", &path)?;
        let mp = MountPoint {
            kind: MountType::Volume,
            target,
            driver: berth_volume::LOCAL.into(),
            copy_up: true,
            ..Default::default()
        };
        push(&mut plan, mp, Some(NeededVolume::default()), false)?;
    }
    Ok(plan)
}

/// Volume event attributes.
fn attrs(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

impl Daemon {
    /// Creates what a [`Plan`] needs (volumes, `-v` directories) and returns the final mounts.
    /// Volumes made here for this container are anonymous unless named.
    pub(crate) async fn realize_mounts(self: &Arc<Self>, plan: Plan) -> Result<Vec<MountPoint>> {
        let Plan {
            mut mounts,
            volumes,
            mkdirs,
        } = plan;
        for dir in mkdirs {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::io(format!("error while creating mount source path '{dir}'"), e))?;
        }
        for (i, need) in volumes {
            let store = self.volumes.clone();
            let opts = berth_volume::CreateOptions {
                name: Some(need.name.clone()).filter(|n| !n.is_empty()),
                driver: String::new(),
                labels: need.labels,
                options: need.options,
                anonymous: need.name.is_empty(),
            };
            let (v, _) = blocking(move || store.create(opts).map_err(Error::from)).await?;
            self.events.emit(
                "volume",
                "create",
                &v.name,
                attrs(&[("driver", v.driver.clone())]),
            );
            let mp = &mut mounts[i];
            mp.name = v.name.clone();
            mp.source = v.mountpoint.clone();
        }
        Ok(mounts)
    }

    /// At start: mount each volume (driver options), copy the image's content into empty ones.
    /// Returns the mounts with current sources; the start emits their `volume mount` events
    /// ([`Daemon::emit_volume_mounts`]) once its network is up, in dockerd's order.
    pub(crate) async fn setup_mounts(self: &Arc<Self>, entry: &Arc<Entry>) -> Result<Vec<MountPoint>> {
        let mut mounts = entry.with(|d| d.mounts.clone());
        check_bind_propagation(&mounts)?;
        let mut copy: Vec<(String, String)> = Vec::new();
        for mp in mounts.iter_mut().filter(|m| m.kind == MountType::Volume) {
            let store = self.volumes.clone();
            let name = mp.name.clone();
            let data = match blocking(move || store.mount(&name).map_err(Error::from)).await {
                Ok(d) => d,
                Err(e) => {
                    self.release_mounts(entry).await;
                    return Err(e);
                }
            };
            mp.source = data.display().to_string();
            if mp.copy_up && dir_is_empty(&data) {
                copy.push((mp.target.clone(), mp.source.clone()));
            }
        }
        if !copy.is_empty() {
            if let Err(e) = self.copy_up(entry, copy).await {
                self.release_mounts(entry).await;
                return Err(e);
            }
        }
        Ok(mounts)
    }

    /// `volume mount` for each volume of a start, after its network's `connect` (dockerd mounts
    /// volumes while it writes the spec, after the network).
    pub(crate) fn emit_volume_mounts(&self, entry: &Entry, mounts: &[MountPoint]) {
        for mp in mounts.iter().filter(|m| m.kind == MountType::Volume) {
            self.events.emit(
                "volume",
                "mount",
                &mp.name,
                attrs(&[
                    ("container", entry.id.clone()),
                    ("destination", mp.target.clone()),
                    ("driver", mp.driver.clone()),
                    ("propagation", String::new()),
                    ("read/write", (!mp.read_only).to_string()),
                ]),
            );
        }
    }

    /// Copies image content into empty volumes: mounts the container's root at its bundle's
    /// `rootfs` for the copy (the shim mounts it again to run).
    async fn copy_up(self: &Arc<Self>, entry: &Arc<Entry>, copy: Vec<(String, String)>) -> Result<()> {
        let images = self.images.clone();
        let id = entry.id.clone();
        let merged = self.bundle(&id).join("rootfs");
        blocking(move || {
            // Most volumes land where the image has nothing (or an empty 0755 root directory):
            // then there is nothing to copy and no need to mount the root for it.
            let lowers = images.rootfs_lower_dirs(&id)?;
            let copy: Vec<(String, String)> = copy
                .into_iter()
                .filter(|(target, _)| lowers.iter().any(|l| may_have_content(l, target)))
                .collect();
            if copy.is_empty() {
                return Ok(());
            }
            // One copy-up at a time: two containers starting on one empty volume must not both
            // fill it (the second finds it no longer empty and copies nothing).
            let _one = COPY_UP.lock().unwrap_or_else(|p| p.into_inner());
            let m = images.rootfs_mounts(&id)?;
            std::fs::create_dir_all(&merged)
                .map_err(|e| Error::io(format!("cannot create {}", merged.display()), e))?;
            berth_sys::mount::mount_all(&m, &merged).map_err(Error::Mount)?;
            let mut r = Ok(());
            for (target, data) in copy {
                if let Err(e) = berth_volume::copy_up(&merged, &target, Path::new(&data)) {
                    r = Err(Error::from(e));
                    break;
                }
            }
            if let Err(e) = berth_sys::mount::unmount(&merged) {
                eprintln!("berthd: unmount {}: {e}", merged.display());
            }
            r
        })
        .await
    }

    /// At exit (or a failed start): the container no longer uses its volumes.
    pub(crate) async fn release_mounts(self: &Arc<Self>, entry: &Arc<Entry>) {
        let mounts = entry.with(|d| d.mounts.clone());
        for mp in mounts.into_iter().filter(|m| m.kind == MountType::Volume) {
            let store = self.volumes.clone();
            let name = mp.name.clone();
            if let Err(e) = blocking(move || store.unmount(&name).map_err(Error::from)).await {
                eprintln!("berthd: releasing volume {}: {e}", mp.name);
            }
            self.events.emit(
                "volume",
                "unmount",
                &mp.name,
                attrs(&[("container", entry.id.clone()), ("driver", mp.driver.clone())]),
            );
        }
    }

    /// After a container's removal with `-v` (or `--rm`): its anonymous volumes go, unless
    /// another container uses them; named ones always stay.
    pub(crate) async fn remove_anonymous_volumes(self: &Arc<Self>, mounts: &[MountPoint]) {
        for mp in mounts
            .iter()
            .filter(|m| m.kind == MountType::Volume && !m.inherited)
        {
            let anonymous = self.volumes.get(&mp.name).map(|v| v.anonymous).unwrap_or(false);
            if !anonymous || !self.volume_users(&mp.name).is_empty() {
                continue;
            }
            let store = self.volumes.clone();
            let name = mp.name.clone();
            match blocking(move || store.remove(&name).map_err(Error::from)).await {
                Ok(()) => self.events.emit(
                    "volume",
                    "destroy",
                    &mp.name,
                    attrs(&[("driver", mp.driver.clone())]),
                ),
                Err(e) => eprintln!("berthd: removing anonymous volume {}: {e}", mp.name),
            }
        }
    }

    /// The IDs of the containers whose record uses the volume `name`.
    pub(crate) fn volume_users(&self, name: &str) -> Vec<String> {
        let c = self.containers.read().unwrap();
        let mut ids: Vec<String> = c
            .by_id
            .values()
            .filter(|e| {
                e.with(|d| {
                    d.mounts
                        .iter()
                        .any(|m| m.kind == MountType::Volume && m.name == name)
                })
            })
            .map(|e| e.id.clone())
            .collect();
        ids.sort();
        ids
    }
}

/// Inspect's and `ps`'s `Mounts`, as dockerd shows them: `Name`/`Driver` only for volumes,
/// `Propagation` `rprivate` (or the one asked) for binds and empty otherwise, tmpfs without source.
pub(crate) fn api_mounts(mounts: &[MountPoint]) -> Vec<berth_api::models::MountPoint> {
    use berth_api::models::{MountPoint as Api, MountPointTypeEnum as T};
    mounts
        .iter()
        .map(|m| {
            let volume = m.kind == MountType::Volume;
            Api {
                typ: Some(match m.kind {
                    MountType::Bind => T::BIND,
                    MountType::Volume => T::VOLUME,
                    MountType::Tmpfs => T::TMPFS,
                }),
                name: volume.then(|| m.name.clone()),
                source: Some(m.source.clone()),
                destination: Some(m.target.clone()),
                driver: volume.then(|| m.driver.clone()),
                mode: Some(m.mode.clone()),
                rw: Some(!m.read_only),
                propagation: Some(if m.kind == MountType::Bind {
                    m.propagation().to_string()
                } else {
                    String::new()
                }),
            }
        })
        .collect()
}

/// Whether a layer may hold something for a copy-up at `target`: content, a directory whose owner
/// or mode is not root's 0755, or anything unusual on the way (a symlink, a file, a whiteout) —
/// conservative, a `true` only costs the mount that finds out.
fn may_have_content(layer: &Path, target: &str) -> bool {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut p = layer.to_path_buf();
    for c in target.split('/').filter(|c| !c.is_empty()) {
        p.push(c);
        match std::fs::symlink_metadata(&p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
            Err(_) => return true,
            Ok(md) if !md.is_dir() => return true,
            Ok(_) => {}
        }
    }
    match std::fs::symlink_metadata(&p) {
        Ok(md) => {
            md.uid() != 0
                || md.gid() != 0
                || md.permissions().mode() & 0o7777 != 0o755
                || !dir_is_empty(&p)
                || rustix::fs::getxattr(&p, "trusted.overlay.opaque", &mut [0u8; 4]).is_ok()
        }
        Err(_) => true,
    }
}

fn dir_is_empty(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mount_under_a_path_is_the_longest_last_one() {
        let info = "22 1 0:20 / / rw,relatime - ext4 /dev/vda rw\n\
                    30 22 0:30 / /tmp/a\\040b rw shared:5 - tmpfs none rw\n\
                    31 22 0:31 / /tmp/a rw master:3 - tmpfs none rw\n";
        let get = |p: &str| mount_of(info, std::path::Path::new(p));
        assert_eq!(
            get("/tmp/a b/x"),
            Some(("/tmp/a b".to_string(), vec!["shared:5".to_string()]))
        );
        assert_eq!(
            get("/tmp/a/x"),
            Some(("/tmp/a".to_string(), vec!["master:3".to_string()]))
        );
        assert_eq!(get("/tmp/ab"), Some(("/".to_string(), vec![])));
        assert_eq!(get("/etc"), Some(("/".to_string(), vec![])));
    }

    #[test]
    fn bind_specs_parse_like_docker() {
        let mut plan = Plan::default();
        let m = parse_bind("/srv/x:/b:ro", &mut plan).unwrap();
        assert_eq!(
            (m.kind, m.read_only, m.mode.as_str()),
            (MountType::Bind, true, "ro")
        );
        assert_eq!(plan.mkdirs, vec!["/srv/x".to_string()]);
        let m = parse_bind("v1:/data", &mut plan).unwrap();
        assert_eq!(
            (m.kind, m.name.as_str(), m.mode.as_str(), m.copy_up),
            (MountType::Volume, "v1", "z", true)
        );
        let m = parse_bind("v1:/data:nocopy", &mut plan).unwrap();
        assert!(!m.copy_up);
        let m = parse_bind("/tmp:/t:rshared", &mut plan).unwrap();
        assert_eq!(m.propagation(), "rshared");
        assert_eq!(
            parse_bind("a:b:c:d", &mut plan).unwrap_err().to_string(),
            "invalid volume specification: 'a:b:c:d'"
        );
        assert_eq!(
            parse_bind("/tmp:rel", &mut plan).unwrap_err().to_string(),
            "invalid volume specification: '/tmp:rel': invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute"
        );
        assert!(parse_bind("/tmp:/", &mut plan)
            .unwrap_err()
            .to_string()
            .ends_with("destination can't be '/'"));
        assert_eq!(
            parse_bind("/tmp:/x:bogus", &mut plan).unwrap_err().to_string(),
            "invalid mode: bogus"
        );
        assert!(parse_bind("a/b:/x", &mut plan)
            .unwrap_err()
            .to_string()
            .contains("includes invalid characters for a local volume name"));
    }

    #[test]
    fn tmpfs_sizes_and_modes() {
        assert_eq!(tmpfs_size(1 << 20), "1m");
        assert_eq!(tmpfs_size(1000), "1000");
        let m = parse_tmpfs("/run", "size=64k,ro").unwrap();
        assert!(m.read_only);
        assert_eq!(m.options, vec!["size=64k".to_string()]);
    }

    #[test]
    fn paths_are_cleaned() {
        assert_eq!(clean("/a//b/../c/"), "/a/c");
        assert_eq!(clean("/.."), "/");
    }
}
