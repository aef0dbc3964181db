//! The on-disk records of the overlay snapshotter: one `<root>/<id>/info.json` per snapshot
//! (`{key, kind, parent}`), written last when a snapshot is created and deleted first when it is
//! removed; so creating, committing or removing one snapshot writes one small file, whatever the
//! number of snapshots (the single `metadata.json` of every snapshot it replaces was rewritten
//! and fsynced in full on every change: O(n) per container create and remove).
//!
//! A data root from an older berth still has `metadata.json`: [`migrate_legacy`] writes every
//! snapshot's `info.json` from it, then deletes it (a crash in between redoes it from the start:
//! `metadata.json` stays authoritative while it exists).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::overlay::{io_err, Info, Kind, SnapshotError};

/// The record file's name in a snapshot's directory.
pub(crate) const RECORD: &str = "info.json";
/// The record's name for a volatile snapshot (written without fsyncs; unreadable = absent).
pub(crate) const VOLATILE_RECORD: &str = "info.volatile.json";
/// The single metadata file of older berth versions.
pub(crate) const LEGACY: &str = "metadata.json";

#[derive(Serialize, Deserialize)]
struct Record {
    key: String,
    kind: Kind,
    parent: Option<String>,
}

#[derive(Deserialize)]
struct Legacy {
    snapshots: BTreeMap<String, Info>,
}

/// What the directory holds: every recorded snapshot (a numeric directory without a record is an
/// orphan, left by a crash between mkdir and the record, or during a removal).
pub(crate) struct Loaded {
    pub snapshots: BTreeMap<String, Info>,
    /// The largest numeric directory name seen (recorded or not).
    pub max_id: u64,
}

/// Reads the records under `root` (or the legacy `metadata.json` when it is still there).
pub(crate) fn load(root: &Path) -> Result<Loaded, SnapshotError> {
    let legacy = read_legacy(root)?;
    let mut out = Loaded {
        snapshots: BTreeMap::new(),
        max_id: 0,
    };
    for entry in fs::read_dir(root).map_err(io_err("read", root))? {
        let entry = entry.map_err(io_err("read", root))?;
        let Some(id) = entry.file_name().to_str().and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        out.max_id = out.max_id.max(id);
        if legacy.is_some() {
            continue;
        }
        let path = entry.path().join(RECORD);
        let (r, volatile) = match fs::read(&path) {
            Ok(bytes) => {
                let r: Record = serde_json::from_slice(&bytes).map_err(|err| SnapshotError::Corrupt {
                    path: path.clone(),
                    err,
                })?;
                (r, false)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // A volatile record a power loss left empty or torn is no record: the directory
                // is an orphan (see Overlay::prepare_volatile).
                let path = entry.path().join(VOLATILE_RECORD);
                match fs::read(&path) {
                    Ok(bytes) => match serde_json::from_slice::<Record>(&bytes) {
                        Ok(r) => (r, true),
                        Err(_) => continue,
                    },
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err("read", &path)(e)),
                }
            }
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let info = Info {
            id,
            kind: r.kind,
            parent: r.parent,
            volatile,
        };
        out.snapshots.insert(r.key, info);
    }
    if let Some(l) = legacy {
        out.snapshots = l;
    }
    Ok(out)
}

fn read_legacy(root: &Path) -> Result<Option<BTreeMap<String, Info>>, SnapshotError> {
    let meta = root.join(LEGACY);
    match fs::read(&meta) {
        Ok(bytes) => {
            let l: Legacy =
                serde_json::from_slice(&bytes).map_err(|err| SnapshotError::Corrupt { path: meta, err })?;
            Ok(Some(l.snapshots))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", &meta)(e)),
    }
}

/// Converts an older data root: a record per snapshot, then `metadata.json` goes. Returns whether
/// there was anything to convert.
pub(crate) fn migrate_legacy(root: &Path, snapshots: &BTreeMap<String, Info>) -> Result<bool, SnapshotError> {
    let meta = root.join(LEGACY);
    if !meta.exists() {
        return Ok(false);
    }
    for (key, info) in snapshots {
        let dir = root.join(info.id.to_string());
        if dir.is_dir() {
            write(&dir, key, info)?;
        }
    }
    fs::remove_file(&meta).map_err(io_err("remove", &meta))?;
    let _ = fs::remove_file(root.join("metadata.json.tmp"));
    sync_dir(root)?;
    Ok(true)
}

/// Writes (or replaces) the record in the snapshot directory `dir`, crash-safely.
pub(crate) fn write(dir: &Path, key: &str, info: &Info) -> Result<(), SnapshotError> {
    let r = Record {
        key: key.to_string(),
        kind: info.kind,
        parent: info.parent.clone(),
    };
    let bytes = serde_json::to_vec(&r).expect("snapshot record serialises");
    let path = dir.join(if info.volatile { VOLATILE_RECORD } else { RECORD });
    berth_sys::fs::write_atomic_as(&path, &bytes, 0o600, !info.volatile).map_err(io_err("write", &path))
}

/// Deletes the record (durably unless `volatile`): from here on the directory is an orphan.
pub(crate) fn delete(dir: &Path, volatile: bool) -> Result<(), SnapshotError> {
    let path = dir.join(if volatile { VOLATILE_RECORD } else { RECORD });
    match fs::remove_file(&path) {
        Ok(()) if volatile => Ok(()),
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", &path)(e)),
    }
}

fn sync_dir(dir: &Path) -> Result<(), SnapshotError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync", dir))
}
