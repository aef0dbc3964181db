//! Start-up reconciliation and `berthd check`: one pass over a data root that finds what a crash
//! (or damage from outside) left, and, with `repair`, fixes what is safe to fix.
//!
//! Order matters: leaked mounts first (nothing under a mount can be deleted), then container
//! records against their directories (finishing interrupted removals, marking records whose
//! files are gone `dead`), then the image stores (whose container snapshots are judged against
//! the container rows settled just before). What each finding means and why its repair is safe
//! is in `docs/design/crash-consistency.md`.

use std::collections::{HashMap, HashSet};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use berth_image::{CheckOptions, Finding, ImageService};
use berth_meta::Db;

use crate::container::{Doc, Status};
use crate::error::{Error, Result};

/// `<data-root>/berthd.lock`: held (flock, exclusive) by the daemon for its whole life and by
/// `berthd check`, so neither runs on a data root the other is using.
pub struct DataRootLock {
    _file: std::fs::File,
}

impl DataRootLock {
    /// Takes the lock, or fails with a message naming the data root when another process has it.
    pub fn acquire(data_root: &Path) -> Result<Self> {
        let path = data_root.join("berthd.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
        match rustix::fs::flock(file.as_fd(), rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(DataRootLock { _file: file }),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(Error::conflict(format!(
                "the data root {} is in use by a running berthd; stop it first",
                data_root.display()
            ))),
            Err(e) => Err(Error::io(format!("cannot lock {}", path.display()), e.into())),
        }
    }
}

/// Checks (and with `repair`, reconciles) the container records, their directories, the mounts
/// under the data root and the image stores. The caller holds the [`DataRootLock`].
pub fn check(data_root: &Path, db: &Db, images: &ImageService, opts: CheckOptions) -> Result<Vec<Finding>> {
    let mut out = Vec::new();
    let containers_dir = data_root.join("containers");
    let rows = db.list_containers()?;
    let mut docs: HashMap<String, Option<Doc>> = HashMap::new();
    for row in &rows {
        match serde_json::from_str::<Doc>(&row.doc) {
            Ok(d) => {
                docs.insert(row.id.clone(), Some(d));
            }
            Err(e) => {
                out.push(Finding::damage(format!(
                    "the record of container {} is unreadable: {e}",
                    row.id
                )));
                docs.insert(row.id.clone(), None);
            }
        }
    }

    // Mounts: a running container's rootfs (mounted by its shim) is the only mount berth keeps
    // under the data root; anything else is left by an interrupted cp/export/commit or a dead shim.
    let running_rootfs: HashSet<PathBuf> = docs
        .iter()
        .filter(|(_, d)| d.as_ref().is_some_and(|d| d.state.status.is_running()))
        .map(|(id, _)| containers_dir.join(id).join("rootfs"))
        .collect();
    let mounts =
        berth_sys::mount::mounts_under(data_root).map_err(|e| Error::io("cannot read the mount table", e))?;
    for m in mounts {
        if m == data_root || running_rootfs.contains(&m) {
            continue;
        }
        out.push(Finding::orphan(
            format!("{} is mounted but no running container uses it", m.display()),
            opts.repair,
            || berth_sys::mount::unmount(&m).map_err(|e| e.to_string()),
        ));
    }

    // Records → files.
    let mut ids: Vec<&String> = docs.keys().collect();
    ids.sort();
    for id in ids {
        let Some(doc) = &docs[id] else { continue };
        let bundle = containers_dir.join(id);
        if doc.state.status == Status::Removing {
            out.push(Finding::orphan(
                format!("container {id} was being removed when berthd stopped"),
                opts.repair,
                || finish_removal(db, images, id, &bundle),
            ));
            continue;
        }
        if doc.state.status == Status::Dead {
            continue;
        }
        let missing = if !bundle.is_dir() {
            Some(format!(
                "the directory {} of container {id} is missing",
                bundle.display()
            ))
        } else {
            match images.rootfs_dir(id) {
                Ok(_) => None,
                Err(e) if e.kind() == berth_types::ErrorKind::NotFound => {
                    Some(format!("the rw layer of container {id} is missing"))
                }
                Err(e) => return Err(e.into()),
            }
        };
        if let Some(message) = missing {
            if doc.host_config.auto_remove.unwrap_or(false) {
                // A `--rm` container is removed once it stops anyway; its layers' records are
                // volatile, so a power loss may have taken them (crash-consistency.md).
                out.push(Finding::orphan(
                    format!("{message}; removing the --rm container"),
                    opts.repair,
                    || finish_removal(db, images, id, &bundle),
                ));
                continue;
            }
            // The container cannot run again; `dead` keeps its record for inspect and `rm`.
            out.push(Finding::orphan(
                format!("{message}; marking it dead"),
                opts.repair,
                || mark_dead(db, doc, &message),
            ));
            continue;
        }
        for name in dir_names(&bundle)? {
            if berth_sys::fs::is_atomic_temp(&name) {
                let p = bundle.join(&name);
                out.push(Finding::orphan(
                    format!("interrupted write {} in container {id}", p.display()),
                    opts.repair,
                    || std::fs::remove_file(&p).map_err(|e| e.to_string()),
                ));
            }
        }
    }

    // Files → records.
    for name in dir_names(&containers_dir)? {
        if docs.contains_key(&name) {
            continue;
        }
        let dir = containers_dir.join(&name);
        out.push(Finding::orphan(
            format!("container directory {} belongs to no container", dir.display()),
            opts.repair,
            || {
                berth_sys::mount::unmount(&dir.join("rootfs")).map_err(|e| e.to_string())?;
                std::fs::remove_dir_all(&dir).map_err(|e| e.to_string())
            },
        ));
    }

    // IPAM leases: an address is held only while its container runs (teardown releases it
    // before the exit is recorded), so a lease of a missing or stopped container is a leak.
    for lease in db.all_leases()? {
        let running = docs
            .get(&lease.container)
            .is_some_and(|d| d.as_ref().is_some_and(|d| d.state.status.is_running()));
        if running {
            continue;
        }
        out.push(Finding::orphan(
            format!(
                "address {} on network {} is leased to {}, which is not running",
                lease.address, lease.network, lease.container
            ),
            opts.repair,
            || {
                db.release_lease(&lease.network, &lease.container)
                    .map(drop)
                    .map_err(|e| e.to_string())
            },
        ));
    }

    out.extend(images.check(opts)?);
    Ok(out)
}

/// Completes a removal a crash interrupted: the record says `removing`, so nothing may run.
fn finish_removal(
    db: &Db,
    images: &ImageService,
    id: &str,
    bundle: &Path,
) -> std::result::Result<(), String> {
    berth_sys::mount::unmount(&bundle.join("rootfs")).map_err(|e| e.to_string())?;
    match images.remove_rootfs(id) {
        Ok(()) => {}
        Err(e) if e.kind() == berth_types::ErrorKind::NotFound => {}
        Err(e) => return Err(e.to_string()),
    }
    match std::fs::remove_dir_all(bundle) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.to_string()),
    }
    db.delete_container(id).map_err(|e| e.to_string())
}

fn mark_dead(db: &Db, doc: &Doc, why: &str) -> std::result::Result<(), String> {
    let mut d = doc.clone();
    d.state.status = Status::Dead;
    d.state.pid = 0;
    d.state.error = why.to_string();
    let json = serde_json::to_string(&d).map_err(|e| e.to_string())?;
    db.update_container_doc(&d.id, &json).map_err(|e| e.to_string())
}

fn dir_names(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            for e in rd {
                let e = e.map_err(|e| Error::io(format!("cannot read {}", dir.display()), e))?;
                out.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("cannot read {}", dir.display()), e)),
    }
    out.sort();
    Ok(out)
}

/// `berthd check --data-root DIR [--exec-root DIR] [--repair]`: opens the stores without
/// changing them (unless repairing), refuses while a daemon holds the data root, re-hashes
/// every blob, and (given the exec root) looks for network namespaces pinned there for
/// containers that are not running.
pub fn check_offline(data_root: &Path, exec_root: Option<&Path>, repair: bool) -> Result<Vec<Finding>> {
    if !data_root.join("berth.db").exists() {
        return Err(Error::NotADataRoot {
            path: data_root.to_path_buf(),
        });
    }
    let _lock = DataRootLock::acquire(data_root)?;
    let db = Db::open(data_root.join("berth.db"))?;
    let images = ImageService::open_readonly(data_root, db.clone())?;
    let mut out = check(
        data_root,
        &db,
        &images,
        CheckOptions {
            verify_blobs: true,
            repair,
        },
    )?;
    // What a crash left in the trash (a running daemon deletes it in the background).
    let trash = data_root.join("trash");
    let pending = berth_sys::trash::Trash::pending(&trash)
        .map_err(|e| Error::io(format!("cannot read {}", trash.display()), e))?;
    if !pending.is_empty() {
        out.push(Finding::orphan(
            format!(
                "{} removed directories still in {}",
                pending.len(),
                trash.display()
            ),
            repair,
            || berth_sys::trash::purge(&trash).map_err(|e| e.to_string()),
        ));
    }
    // Pinned network namespaces: one per running container on a bridge network (its shim
    // outlives berthd); any other is left by a crash between teardown steps.
    let live: HashSet<String> = db
        .list_containers()?
        .iter()
        .filter(|row| serde_json::from_str::<Doc>(&row.doc).is_ok_and(|d| d.state.status.is_running()))
        .map(|row| row.id.clone())
        .collect();
    let leaked = exec_root
        .map(|e| crate::network::leaked_netns(e, &live))
        .unwrap_or_default();
    for p in leaked {
        out.push(Finding::orphan(
            format!(
                "network namespace {} belongs to no running container",
                p.display()
            ),
            repair,
            || berth_sys::netns::remove(&p).map_err(|e| e.to_string()),
        ));
    }
    let volumes = berth_volume::VolumeStore::open_readonly(data_root, db.clone());
    out.extend(volumes.check(repair)?.into_iter().map(|f| Finding {
        message: f.message,
        repairable: f.repairable,
        repaired: f.repaired,
    }));
    Ok(out)
}
