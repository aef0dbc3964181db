//! Consistency of the image stores: what start-up reconciliation repairs and `berthd check`
//! reports.
//!
//! The invariant (see `docs/design/crash-consistency.md`): every row names files that exist and
//! verify; every file is named by a row. A crash can only break the second half, because creating
//! writes files before the row and removing drops the row before the files. So everything found
//! unreferenced is an orphan that is safe to delete, while a row whose file is missing or corrupt
//! is damage from outside (a disk error, a hand edit) that is reported and never "repaired" by
//! deleting more.

use std::collections::{HashMap, HashSet};

use berth_snapshot::{Kind, Snapshotter};
use berth_types::Digest;

use crate::{Error, ImageService};

/// One inconsistency: what is wrong, and whether it was (or, without `repair`, can be) fixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What is wrong, naming the object (`blob sha256:… of layer sha256:… is corrupt: …`).
    pub message: String,
    /// Safe to fix automatically (an orphan to delete, an interrupted operation to finish).
    pub repairable: bool,
    /// It was fixed (only with `repair`).
    pub repaired: bool,
}

impl Finding {
    /// A finding that cannot be fixed automatically.
    pub fn damage(message: String) -> Self {
        Finding {
            message,
            repairable: false,
            repaired: false,
        }
    }

    /// A finding `repair` can fix: runs `fix` when `repair` is set and records the outcome.
    pub fn orphan(message: String, repair: bool, fix: impl FnOnce() -> Result<(), String>) -> Self {
        let mut f = Finding {
            message,
            repairable: true,
            repaired: false,
        };
        if repair {
            match fix() {
                Ok(()) => f.repaired = true,
                Err(e) => f.message = format!("{} (repair failed: {e})", f.message),
            }
        }
        f
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match (self.repairable, self.repaired) {
            (_, true) => "repaired",
            (true, false) => "repairable",
            (false, false) => "needs attention",
        };
        write!(f, "{} [{state}]", self.message)
    }
}

/// What [`ImageService::check`] does.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// Re-hash every referenced blob (slow; `berthd check` does, start-up does not).
    pub verify_blobs: bool,
    /// Delete orphans.
    pub repair: bool,
}

impl ImageService {
    /// Checks images, layers, snapshots and blobs against each other; with `repair`, deletes what
    /// nothing references. Container snapshots are judged against the container rows, so the
    /// caller settles the container records first.
    pub fn check(&self, opts: CheckOptions) -> Result<Vec<Finding>, Error> {
        let _g = self.lock();
        let repair = opts.repair;
        let mut out = Vec::new();

        for leftover in self.content.ingest_leftovers()? {
            out.push(Finding::orphan(
                format!(
                    "interrupted write {} left in the content store",
                    leftover.display()
                ),
                repair,
                || remove_path(&leftover),
            ));
        }

        // Rows → files.
        let images = self.db.images()?;
        let layers = self.db.layers()?;
        let mut wanted: HashMap<String, String> = HashMap::new();
        for img in &images {
            wanted.insert(img.id.clone(), format!("config of image {}", img.id));
        }
        for l in &layers {
            wanted
                .entry(l.diff_id.clone())
                .or_insert_with(|| format!("layer {}", l.chain_id));
        }
        let mut names: Vec<&String> = wanted.keys().collect();
        names.sort();
        for name in names {
            let what = &wanted[name];
            let Ok(d) = Digest::parse(name) else {
                out.push(Finding::damage(format!("{what} names an invalid digest {name}")));
                continue;
            };
            if !self.content.exists(&d) {
                out.push(Finding::damage(format!("blob {name} ({what}) is missing")));
            } else if opts.verify_blobs {
                if let Some(actual) = self.content.verify(&d)? {
                    out.push(Finding::damage(format!(
                        "blob {name} ({what}) is corrupt: its content hashes to {actual}"
                    )));
                }
            }
        }
        let snaps: HashMap<String, berth_snapshot::Info> = self.snapshots.list()?.into_iter().collect();
        for l in &layers {
            match snaps.get(&l.snapshot_key) {
                Some(i) if i.kind == Kind::Committed => {}
                Some(_) => out.push(Finding::damage(format!(
                    "snapshot {} of layer {} is not committed",
                    l.snapshot_key, l.chain_id
                ))),
                None => out.push(Finding::damage(format!(
                    "snapshot {} of layer {} is missing",
                    l.snapshot_key, l.chain_id
                ))),
            }
        }
        for key in self.snapshots.missing_dirs() {
            out.push(Finding::damage(format!(
                "the directory of snapshot {key} is missing"
            )));
        }

        // Files → rows.
        for dir in self.snapshots.orphan_dirs()? {
            out.push(Finding::orphan(
                format!("snapshot directory {} belongs to no snapshot", dir.display()),
                repair,
                || remove_path(&dir),
            ));
        }
        let layer_keys: HashSet<&str> = layers.iter().map(|l| l.snapshot_key.as_str()).collect();
        let containers: HashSet<String> = self.db.list_containers()?.into_iter().map(|c| c.id).collect();
        // A snapshot is in use when a row names it or a snapshot in use sits on it.
        let mut used: HashSet<String> = HashSet::new();
        for (key, info) in &snaps {
            let named = match info.kind {
                // A shared init layer is kept while the layer it sits on is.
                Kind::Committed if crate::is_shared_init_key(key) => {
                    info.parent.as_deref().is_none_or(|p| layer_keys.contains(p))
                }
                Kind::Committed => layer_keys.contains(key.as_str()),
                Kind::Active | Kind::View => containers.contains(key),
            };
            if named {
                let mut k = Some(key.clone());
                while let Some(cur) = k {
                    if !used.insert(cur.clone()) {
                        break;
                    }
                    k = snaps.get(&cur).and_then(|i| i.parent.clone());
                }
            }
        }
        // Orphans, children before parents.
        let mut orphans: Vec<&String> = snaps.keys().filter(|k| !used.contains(*k)).collect();
        let depth = |k: &String| {
            let mut n = 0;
            let mut p = snaps.get(k).and_then(|i| i.parent.as_ref());
            while let Some(q) = p {
                n += 1;
                p = snaps.get(q).and_then(|i| i.parent.as_ref());
            }
            n
        };
        orphans.sort_by_key(|k| std::cmp::Reverse(depth(k)));
        for key in orphans {
            let what = match snaps[key].kind {
                Kind::Committed => "committed snapshot",
                Kind::Active => "active snapshot",
                Kind::View => "view snapshot",
            };
            out.push(Finding::orphan(
                format!("{what} {key} belongs to no layer or container"),
                repair,
                || self.snapshots.remove(key).map_err(|e| e.to_string()),
            ));
        }
        for blob in self.content.list()? {
            if !wanted.contains_key(&blob.to_string()) {
                out.push(Finding::orphan(
                    format!("blob {blob} is referenced by no image or layer"),
                    repair,
                    || self.content.delete(&blob).map_err(|e| e.to_string()),
                ));
            }
        }
        Ok(out)
    }
}

fn remove_path(p: &std::path::Path) -> Result<(), String> {
    let r = if p.is_dir() {
        std::fs::remove_dir_all(p)
    } else {
        std::fs::remove_file(p)
    };
    r.map_err(|e| e.to_string())
}
