use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use berth_image::ImageService;
use berth_meta::{ContainerRow, Db};

use crate::config::Config;
use crate::container::{Doc, Entry};
use crate::error::{Error, Result};
use crate::events::Events;

/// The daemon: every service, sharing one database and one event bus.
pub struct Daemon {
    pub config: Config,
    pub db: Db,
    pub images: Arc<ImageService>,
    /// Volumes of the local driver.
    pub volumes: Arc<berth_volume::VolumeStore>,
    pub events: Events,
    pub(crate) containers: RwLock<Containers>,
    pub(crate) execs: crate::container::Execs,
    /// A stable identity for `info` (`ID`), kept in the data root.
    pub(crate) engine_id: String,
    /// A container prune is running (docker allows one at a time).
    pub(crate) pruning: std::sync::atomic::AtomicBool,
    /// Registries: pulls and pushes.
    pub(crate) registry: berth_registry::Registry,
    /// Blobs being downloaded, shared by the pulls that need them.
    pub(crate) downloads: crate::distribution::Downloads,
    /// The default bridge and berth's nftables table.
    pub(crate) networks: Option<crate::network::Networks>,
    /// Removed container and snapshot directories, deleted off the request's path.
    pub(crate) trash: Arc<berth_sys::trash::Trash>,
    /// Exited containers' empty cgroups, removed once exits pause (crate::cgroups::Reaper).
    pub(crate) reaper: crate::cgroups::Reaper,
    /// The network namespace pins' directory is a private mount of its own
    /// (`berth_sys::netns::prepare_dir`), which shims drop from their mount namespaces.
    pub(crate) netns_dir_mounted: bool,
    /// Starts the shims (crate::shim::Spawner).
    pub(crate) spawner: crate::shim::Spawner,
    /// Held for the daemon's life: no second daemon and no `berthd check` on this data root.
    _lock: crate::check::DataRootLock,
}

#[derive(Default)]
pub(crate) struct Containers {
    /// Ordered, so that an ID prefix is a range lookup, not a walk of every container.
    pub by_id: BTreeMap<String, Arc<Entry>>,
    pub by_name: HashMap<String, String>,
}

impl Daemon {
    /// Opens (or creates) the state under `config.data_root`, loads every container record and
    /// reconnects to the shims of running containers.
    pub async fn new(config: Config) -> Result<Arc<Self>> {
        crate::perms::prepare(&config).map_err(|e| {
            Error::io(
                format!("cannot secure the data root {}", config.data_root.display()),
                e,
            )
        })?;
        let lock = crate::check::DataRootLock::acquire(&config.data_root)?;
        crate::build::sweep(&config.data_root);
        let db_path = config.data_root.join("berth.db");
        let data_root = config.data_root.clone();
        let (db, images, volumes, trash) = tokio::task::spawn_blocking(move || -> Result<_> {
            let db = Db::open(&db_path)?;
            let images = ImageService::open_unchecked(&data_root, db.clone())?;
            let volumes = berth_volume::VolumeStore::open(&data_root, db.clone())?;
            // Start-up reconciliation: what a crash left is found, repaired where safe, and logged.
            let opts = berth_image::CheckOptions {
                verify_blobs: false,
                repair: true,
            };
            for f in crate::check::check(&data_root, &db, &images, opts)? {
                eprintln!("berthd: reconcile: {f}");
            }
            for f in volumes.check(true)? {
                eprintln!("berthd: reconcile: {f}");
            }
            let trash_dir = data_root.join("trash");
            let trash = berth_sys::trash::Trash::open(&trash_dir)
                .map_err(|e| Error::io(format!("cannot open {}", trash_dir.display()), e))?;
            let trash = Arc::new(trash);
            images.use_trash(trash.clone());
            Ok((db, images, volumes, trash))
        })
        .await??;
        let engine_id = engine_id(&config.data_root)?;
        install_init(&config.data_root)?;
        let registry = crate::distribution::registry(&config.registry)?;
        let net_cfg = config.network.clone();
        let net_db = db.clone();
        let networks =
            tokio::task::spawn_blocking(move || crate::network::Networks::init(&net_cfg, &net_db)).await??;
        // Before any container's descriptors are open (restore opens them in `load`).
        let spawner = crate::shim::Spawner::new(&config.shim_path);
        let netns_dir = config.exec_root.join("netns");
        let netns_dir_mounted = match berth_sys::netns::prepare_dir(&netns_dir) {
            Ok(true) => true,
            Ok(false) => {
                eprintln!(
                    "berthd: {} holds network namespace pins of an earlier layout: each shim keeps copies of them",
                    netns_dir.display()
                );
                false
            }
            Err(e) => {
                eprintln!(
                    "berthd: cannot make {} a mount of its own: {e}",
                    netns_dir.display()
                );
                false
            }
        };
        let daemon = Arc::new(Daemon {
            config,
            db,
            images: Arc::new(images),
            volumes: Arc::new(volumes),
            events: Events::default(),
            containers: RwLock::new(Containers::default()),
            execs: Default::default(),
            engine_id,
            pruning: Default::default(),
            registry,
            downloads: Default::default(),
            networks: Some(networks),
            trash,
            reaper: crate::cgroups::Reaper::start()
                .map_err(|e| Error::io("cannot start the cgroup reaper".to_string(), e))?,
            netns_dir_mounted,
            spawner,
            _lock: lock,
        });
        daemon.load().await?;
        crate::docker_user::keep(&daemon);
        Ok(daemon)
    }

    async fn load(self: &Arc<Self>) -> Result<()> {
        let rows = self.db.list_containers()?;
        let mut restore = Vec::new();
        {
            let mut c = self.containers.write().unwrap();
            for row in rows {
                let doc: Doc = match serde_json::from_str(&row.doc) {
                    Ok(d) => d,
                    Err(e) => {
                        eprintln!("berthd: skipping container {}: unreadable record: {e}", row.id);
                        continue;
                    }
                };
                let entry = Entry::new(doc);
                if entry.status().is_running() {
                    restore.push(entry.clone());
                }
                c.by_name.insert(row.name.clone(), row.id.clone());
                c.by_id.insert(row.id, entry);
            }
        }
        // Reattached concurrently (each is a few round trips to its shim), a bounded number at a
        // time, so that a restart with a thousand running containers stays well under a second.
        let slots = Arc::new(tokio::sync::Semaphore::new(32));
        let mut reattach = tokio::task::JoinSet::new();
        for entry in restore {
            // Driver-option volumes are still mounted for it: count it as a user again.
            for m in entry.with(|d| d.mounts.clone()) {
                if m.kind == berth_types::MountType::Volume {
                    let _ = self.volumes.mount(&m.name);
                }
            }
            let daemon = self.clone();
            let slots = slots.clone();
            reattach.spawn(async move {
                let _slot = slots.acquire_owned().await;
                daemon.restore(entry).await;
            });
        }
        while reattach.join_next().await.is_some() {}
        // Empty cgroups of containers that exited before a crash, which the reaper never got to.
        // Those with a cgroup parent of their own (`--cgroup-parent`) are looked at one by one;
        // `rmdir` refuses a cgroup that still has a process in it.
        let mut running = std::collections::HashSet::new();
        let mut own_parent = Vec::new();
        for e in self.containers.read().unwrap().by_id.values() {
            if e.status().is_running() {
                running.insert(e.id.clone());
            } else if e.with(|d| {
                d.host_config
                    .cgroup_parent
                    .as_deref()
                    .is_some_and(|p| !p.is_empty())
            }) {
                own_parent.extend(self.cgroup(e).dirs().cloned());
            }
        }
        let shm_swept = self.sweep_shm(&running);
        if shm_swept > 0 {
            eprintln!(
                "berthd: reconcile: unmounted the /dev/shm of {shm_swept} containers that no longer run"
            );
        }
        let parent = self.config.cgroup_parent.clone();
        let swept = tokio::task::spawn_blocking(move || {
            let own = own_parent
                .iter()
                .filter(|d| !d.existing().is_empty() && d.remove_tree())
                .count();
            own + crate::cgroups::Reaper::sweep(&parent, &running)
        })
        .await?;
        if swept > 0 {
            eprintln!("berthd: reconcile: removed the empty cgroups of {swept} exited containers");
        }
        let daemon = self.clone();
        tokio::task::spawn_blocking(move || daemon.net_reconcile()).await?;
        // Running containers on user networks get their DNS server back.
        let entries: Vec<_> = self.containers.read().unwrap().by_id.values().cloned().collect();
        for e in entries.iter().filter(|e| e.status().is_running()) {
            if let Some(st) = e
                .with(|d| d.net.clone())
                .filter(|n| n.network != crate::network::DEFAULT)
            {
                if let Err(err) = self.dns_start(&e.id, &st) {
                    eprintln!("berthd: embedded DNS of {}: {err}", e.id);
                }
            }
        }
        self.start_policy_containers();
        Ok(())
    }

    /// Finds a container by full ID, name (with or without `/`) or unique ID prefix.
    pub fn find(&self, key: &str) -> Result<Arc<Entry>> {
        let c = self.containers.read().unwrap();
        if let Some(e) = c.by_id.get(key) {
            return Ok(e.clone());
        }
        let name = key.strip_prefix('/').unwrap_or(key);
        if let Some(id) = c.by_name.get(name) {
            return Ok(c.by_id[id].clone());
        }
        if berth_types::id::is_hex_prefix(key) {
            let mut found = c
                .by_id
                .range::<str, _>((std::ops::Bound::Included(key), std::ops::Bound::Unbounded))
                .take_while(|(id, _)| id.starts_with(key));
            if let Some((_, e)) = found.next() {
                if found.next().is_some() {
                    return Err(Error::invalid(format!(
                        "Multiple IDs found with provided prefix: {key}"
                    )));
                }
                return Ok(e.clone());
            }
        }
        Err(Error::not_found("container", key))
    }

    /// Every container, oldest first.
    pub fn all(&self) -> Vec<Arc<Entry>> {
        let mut v: Vec<_> = self.containers.read().unwrap().by_id.values().cloned().collect();
        v.sort_by_key(|e| e.with(|d| d.created));
        v
    }

    /// The built-in `--init` binary, as written to the data root at start.
    pub(crate) fn init_path(&self) -> PathBuf {
        self.config.data_root.join("bin").join("berth-init")
    }

    pub(crate) fn bundle(&self, id: &str) -> PathBuf {
        self.config.data_root.join("containers").join(id)
    }

    /// Shim socket path, kept short so it fits `sun_path` under any exec root.
    pub(crate) fn shim_socket(&self, id: &str) -> PathBuf {
        self.config
            .exec_root
            .join("shims")
            .join(format!("{}.sock", &id[..24]))
    }

    /// Writes the record to the database (one transaction).
    pub(crate) fn persist(&self, entry: &Entry) -> Result<()> {
        let doc = entry.with(serde_json::to_string)?;
        self.db.update_container_doc(&entry.id, &doc)?;
        Ok(())
    }

    /// Records a new container. A record without a name gets a generated one here, chosen and
    /// reserved under the table's write lock in a bounded number of lookups (container::names).
    pub(crate) fn insert(&self, entry: Arc<Entry>) -> Result<()> {
        let mut c = self.containers.write().unwrap();
        if entry.with(|d| d.name.is_empty()) {
            let name = crate::container::names::WORDS.pick(
                |n| c.by_name.contains_key(n),
                &entry.id,
                crate::container::names::random_u64,
            );
            entry.update(|d| d.name = name);
        }
        let (name, row) = entry.with(|doc| -> Result<_> {
            Ok((
                doc.name.clone(),
                ContainerRow {
                    id: doc.id.clone(),
                    name: doc.name.clone(),
                    image_id: doc.image_id.clone(),
                    doc: serde_json::to_string(doc)?,
                },
            ))
        })?;
        if let Some(other) = c.by_name.get(&name) {
            return Err(name_conflict(&name, other));
        }
        self.db.insert_container(&row)?;
        c.by_name.insert(name, row.id.clone());
        c.by_id.insert(row.id, entry);
        Ok(())
    }

    pub(crate) fn forget(&self, entry: &Entry) -> Result<()> {
        self.db.delete_container(&entry.id)?;
        self.drop_execs(&entry.id);
        let mut c = self.containers.write().unwrap();
        c.by_id.remove(&entry.id);
        let name = entry.name();
        if c.by_name.get(&name) == Some(&entry.id) {
            c.by_name.remove(&name);
        }
        drop(c);
        self.trim_soon();
        Ok(())
    }

    /// Hands the heap memory freed by removals back to the kernel once removals have paused for
    /// a second: the allocator keeps freed pages otherwise, and RSS would stay at its high-water
    /// mark after a thousand containers go. (Trimming a second after the *first* removal of a
    /// burst, as before, left most of a bulk `rm -f`'s frees to come after the last trim.)
    fn trim_soon(&self) {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        // Process-wide, as the heap is.
        static SCHEDULED: AtomicBool = AtomicBool::new(false);
        static LAST: AtomicU64 = AtomicU64::new(0);
        let quiet = std::time::Duration::from_secs(1);
        static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let now = || EPOCH.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64;
        LAST.store(now(), Ordering::Release);
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if SCHEDULED.swap(true, Ordering::AcqRel) {
            return;
        }
        let db = self.db.clone();
        rt.spawn(async move {
            loop {
                tokio::time::sleep(quiet).await;
                let since = now().saturating_sub(LAST.load(Ordering::Acquire));
                if since >= quiet.as_nanos() as u64 {
                    break;
                }
            }
            SCHEDULED.store(false, Ordering::Release);
            let _ = tokio::task::spawn_blocking(move || {
                // SQLite's page cache first, so that the trim below finds its pages free.
                let _ = db.release_memory();
                berth_sys::heap::release_free_memory();
                // And the code only the burst ran (bulk removal, its cleanup) stops counting.
                berth_sys::heap::release_code_pages();
            })
            .await;
        });
    }

    /// `docker rename`: the name (in the row and in the record) changes in one transaction.
    pub fn rename(&self, key: &str, new_name: &str) -> Result<()> {
        let entry = self.find(key)?;
        let new_name = new_name.strip_prefix('/').unwrap_or(new_name);
        if !berth_types::id::valid_container_name(new_name) {
            return Err(Error::invalid(format!(
                "Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let old = entry.name();
        if old == new_name {
            return Err(Error::invalid(
                "Renaming a container with the same name as its current name",
            ));
        }
        {
            let mut c = self.containers.write().unwrap();
            if let Some(other) = c.by_name.get(new_name) {
                // dockerd's rename says where the conflict came from.
                return Err(Error::conflict(format!(
                    "Error when allocating new name: {}",
                    name_conflict(new_name, other)
                )));
            }
            let mut doc = entry.doc();
            doc.name = new_name.to_string();
            let json = serde_json::to_string(&doc)?;
            self.db.rename_container(&entry.id, new_name, &json)?;
            berth_sys::failpoint::hit("container.rename.committed");
            entry.update(|d| d.name = new_name.to_string());
            c.by_name.remove(&old);
            c.by_name.insert(new_name.to_string(), entry.id.clone());
        }
        let mut attrs = self.container_attrs(&entry);
        attrs.insert("oldName".into(), format!("/{old}"));
        self.events.emit("container", "rename", &entry.id, attrs);
        Ok(())
    }

    /// Event attributes of a container: image, name and its labels.
    pub(crate) fn container_attrs(&self, entry: &Entry) -> BTreeMap<String, String> {
        entry.with(|d| {
            let mut a: BTreeMap<String, String> =
                d.config.labels.clone().unwrap_or_default().into_iter().collect();
            a.insert("image".into(), d.config.image.clone().unwrap_or_default());
            a.insert("name".into(), d.name.clone());
            a
        })
    }

    /// What a clean daemon stop does: containers keep running under their shims (live restore);
    /// the cgroup parent is removed when no container is left in it.
    pub fn shutdown(&self) {
        // Exited containers' cgroups go first, so that an empty parent can go too.
        self.reaper.close();
        crate::cgroups::Cgroup::remove_parent(&self.config.cgroup_parent);
        // What was removed is deleted before the daemon exits (a crash leaves it to the next start).
        self.trash.close();
        // Endpoints still being torn down in the background finish first.
        self.net_wait_all_teardowns();
        // berth's accept rules in Docker's DOCKER-USER chain go with the daemon.
        if let Some(n) = &self.networks {
            if let Err(e) = n.release_docker_user() {
                eprintln!("berthd: removing berth's DOCKER-USER rules: {e}");
            }
        }
        // The shareable /dev/shm mounts' parent, unless running containers still use it.
        berth_sys::mount::release_shared_dir(&self.shm_dir());
        // The pins' mount, unless running containers still have pins in it.
        if self.netns_dir_mounted {
            berth_sys::netns::release_dir(&self.netns_dir());
        }
    }

    /// Whether any container uses the image (for rmi), and whether one of those runs.
    pub fn is_running(&self, container_id: &str) -> bool {
        self.containers
            .read()
            .unwrap()
            .by_id
            .get(container_id)
            .map(|e| e.status().is_running())
            .unwrap_or(false)
    }
}

pub(crate) fn name_conflict(name: &str, other_id: &str) -> Error {
    Error::conflict(format!(
        "Conflict. The container name \"/{name}\" is already in use by container \"{other_id}\". You have to remove (or rename) that container to be able to reuse that name."
    ))
}

/// 64 random hex characters.
pub(crate) fn random_id() -> String {
    let mut b = [0u8; 32];
    rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).expect("getrandom");
    berth_types::id::to_hex(&b)
}

fn engine_id(root: &std::path::Path) -> Result<String> {
    let p = root.join("engine-id");
    if let Ok(s) = std::fs::read_to_string(&p) {
        return Ok(s.trim().to_string());
    }
    let id = random_id();
    berth_sys::fs::write_atomic(&p, id.as_bytes(), crate::perms::PRIVATE_FILE)
        .map_err(|e| Error::io(format!("cannot write {}", p.display()), e))?;
    Ok(id)
}

/// Writes the built-in init (`--init`) where containers bind-mount it from (atomically, so a
/// running container's mount never sees a half-written file). 0755: any user in a container runs
/// it through the bind mount (the 0700 `bin/` above it is not on the container's path).
fn install_init(root: &std::path::Path) -> Result<()> {
    let dir = root.join("bin");
    let path = dir.join("berth-init");
    if std::fs::read(&path)
        .map(|b| b == berth_runtime::INIT_BINARY)
        .unwrap_or(false)
    {
        return Ok(());
    }
    berth_sys::fs::write_atomic(&path, berth_runtime::INIT_BINARY, 0o755)
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    Ok(())
}
