//! The overlay snapshotter.
//!
//! # On-disk layout
//! ```text
//! <root>/                        (<data-root>/snapshots)
//!   <id>/info.json               the snapshot's record: {key/name, kind, parent} (crate::record)
//!   <id>/fs                      the snapshot's own files: a layer's diff, or a container's upper dir
//!   <id>/work                    overlay workdir (active snapshots only)
//! ```
//! `<id>` is a short decimal number so that overlay option strings (`lowerdir=/…/12/fs:/…/7/fs`)
//! stay short.
//!
//! # Permissions
//! `<root>` and every `<id>` are 0700 (tightened when opened, for roots an older berth made): the
//! files of images and containers — a container's setuid binaries among them — are not reachable
//! by other host users. `<id>/fs` keeps the mode the layer gives the root directory (it is the
//! container's `/`); overlay reads and writes these directories with the mounter's credentials,
//! so the container still sees all of its files.
//!
//! # Crash consistency
//! A snapshot's `info.json` is written atomically (`write_atomic`: temp → fsync → rename → fsync
//! dir). Creation is directories first, the record last; removal is the record first (deleted,
//! directory fsynced), directories last; a commit replaces the record. So after a crash a
//! directory may exist without a record, never the reverse; [`Overlay::new`] deletes such orphan
//! directories. Each change writes one snapshot's record: O(1) in the number of snapshots. The
//! in-memory index is taken under a mutex only for lookups and reservations, never across I/O.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use berth_types::{ErrorKind, Mount};
use serde::{Deserialize, Serialize};

use crate::{record, Snapshotter};

/// Errors of the snapshotter.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A filesystem operation failed.
    #[error("failed to {op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        err: io::Error,
    },
    /// No snapshot with this key or name.
    #[error("snapshot {0} does not exist")]
    NotFound(String),
    /// The key or name is taken.
    #[error("snapshot {0} already exists")]
    AlreadyExists(String),
    /// The snapshot is in the wrong state for the operation.
    #[error("snapshot {key}: {reason}")]
    InvalidState {
        /// The key or name.
        key: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The snapshot still has children.
    #[error("cannot remove snapshot {0}: it has children")]
    HasChildren(String),
    /// A snapshot record (or an older berth's `metadata.json`) cannot be parsed.
    #[error("corrupt snapshot metadata {path}: {err}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parse error.
        err: serde_json::Error,
    },
}

impl SnapshotError {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SnapshotError::NotFound(_) => ErrorKind::NotFound,
            SnapshotError::AlreadyExists(_) | SnapshotError::HasChildren(_) => ErrorKind::Conflict,
            SnapshotError::InvalidState { .. } => ErrorKind::InvalidState,
            SnapshotError::Io { .. } | SnapshotError::Corrupt { .. } => ErrorKind::Internal,
        }
    }
}

pub(crate) fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SnapshotError + 'a {
    move |err| SnapshotError::Io {
        op,
        path: path.to_path_buf(),
        err,
    }
}

/// What a snapshot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Writable; can be committed.
    Active,
    /// Read-only view of a parent.
    View,
    /// Immutable; can be a parent.
    Committed,
}

/// A snapshot's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// The numeric directory id.
    pub id: u64,
    /// Active, view or committed.
    pub kind: Kind,
    /// The committed parent, if any.
    pub parent: Option<String>,
    /// Recorded without fsyncs ([`Overlay::prepare_volatile`]): the snapshot is not expected to
    /// survive a host crash.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub volatile: bool,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    snapshots: BTreeMap<String, Info>,
    /// Children per committed snapshot: `remove` asks without walking every snapshot.
    children: HashMap<String, usize>,
    /// Snapshots being created: key → id (reserved; their record is not written yet).
    pending: HashMap<String, u64>,
}

impl State {
    fn insert(&mut self, key: String, info: Info) {
        if let Some(p) = &info.parent {
            *self.children.entry(p.clone()).or_default() += 1;
        }
        self.snapshots.insert(key, info);
    }

    fn take(&mut self, key: &str) -> Option<Info> {
        let info = self.snapshots.remove(key)?;
        if let Some(p) = &info.parent {
            if let Some(n) = self.children.get_mut(p) {
                *n -= 1;
                if *n == 0 {
                    self.children.remove(p);
                }
            }
        }
        Some(info)
    }
}

/// Overlay snapshotter rooted at a directory. `Send + Sync`.
#[derive(Debug)]
pub struct Overlay {
    root: PathBuf,
    state: Mutex<State>,
    /// Where removed snapshot directories go to be deleted off the caller's path (the daemon's);
    /// without one, [`Snapshotter::remove`] deletes in place.
    trash: std::sync::OnceLock<std::sync::Arc<berth_sys::trash::Trash>>,
}

impl Overlay {
    /// Opens (creating if needed) the snapshotter at `root`, converts an older berth's
    /// `metadata.json` into per-snapshot records, and deletes orphan directories left by a crash.
    pub fn new(root: impl AsRef<Path>) -> Result<Overlay, SnapshotError> {
        let root = root.as_ref().to_path_buf();
        berth_sys::fs::create_private_dir(&root).map_err(io_err("create", &root))?;
        let o = Overlay::open_readonly(&root)?;
        record::migrate_legacy(&root, &o.lock().snapshots)?;
        let _ = fs::remove_file(root.join("metadata.json.tmp"));
        for p in o.orphan_dirs()? {
            fs::remove_dir_all(&p).map_err(io_err("remove orphan", &p))?;
        }
        o.tighten()?;
        Ok(o)
    }

    /// Sets every snapshot directory (`<root>/<id>`) to 0700, for data roots an older berth made
    /// wider; the `fs` directory inside keeps its mode, it is the container's `/`.
    pub fn tighten(&self) -> Result<(), SnapshotError> {
        let ids: Vec<u64> = self.lock().snapshots.values().map(|i| i.id).collect();
        for id in ids {
            let p = self.id_dir(id);
            let wide = fs::metadata(&p).is_ok_and(|m| m.mode() & 0o7777 != 0o700);
            if wide {
                berth_sys::fs::create_private_dir(&p).map_err(io_err("set permissions of", &p))?;
            }
        }
        Ok(())
    }

    /// Opens the snapshotter without changing anything on disk (`berthd check`).
    pub fn open_readonly(root: impl AsRef<Path>) -> Result<Overlay, SnapshotError> {
        let root = root.as_ref().to_path_buf();
        fs::metadata(&root).map_err(io_err("open", &root))?;
        let loaded = record::load(&root)?;
        let mut state = State {
            next_id: loaded.max_id + 1,
            ..State::default()
        };
        for (k, i) in loaded.snapshots {
            state.insert(k, i);
        }
        Ok(Overlay {
            root,
            state: Mutex::new(state),
            trash: std::sync::OnceLock::new(),
        })
    }

    /// From now on, removed snapshot directories are renamed into `trash` (on the same
    /// filesystem) and deleted there in the background.
    pub fn use_trash(&self, trash: std::sync::Arc<berth_sys::trash::Trash>) {
        let _ = self.trash.set(trash);
    }

    /// Snapshot directories no record names (left by a crash between mkdir and the record).
    pub fn orphan_dirs(&self) -> Result<Vec<PathBuf>, SnapshotError> {
        // A directory being created right now is not an orphan.
        let ids: HashSet<u64> = {
            let state = self.lock();
            state
                .snapshots
                .values()
                .map(|i| i.id)
                .chain(state.pending.values().copied())
                .collect()
        };
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(io_err("read", &self.root))? {
            let entry = entry.map_err(io_err("read", &self.root))?;
            let Some(id) = entry.file_name().to_str().and_then(|n| n.parse::<u64>().ok()) else {
                continue;
            };
            if !ids.contains(&id) {
                out.push(entry.path());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Snapshots whose directory is missing (the record names them, the disk does not).
    pub fn missing_dirs(&self) -> Vec<String> {
        let all: Vec<(String, u64)> = self
            .lock()
            .snapshots
            .iter()
            .map(|(k, i)| (k.clone(), i.id))
            .collect();
        all.into_iter()
            .filter(|(_, id)| !self.id_dir(*id).join("fs").is_dir())
            .map(|(k, _)| k)
            .collect()
    }

    /// The snapshotter's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/<id>` of a snapshot.
    pub fn dir(&self, key: &str) -> Result<PathBuf, SnapshotError> {
        Ok(self.id_dir(self.stat(key)?.id))
    }

    /// The directory that holds the snapshot's own files (`<root>/<id>/fs`): where a layer is
    /// applied into an active snapshot, or a committed layer's diff.
    pub fn upper_dir(&self, key: &str) -> Result<PathBuf, SnapshotError> {
        Ok(self.dir(key)?.join("fs"))
    }

    /// The `fs` dirs of the committed snapshots under `key`, nearest first: the overlay's
    /// `lowerdir` stack of an active snapshot, for `docker diff`.
    pub fn lower_dirs(&self, key: &str) -> Result<Vec<PathBuf>, SnapshotError> {
        let state = self.lock();
        let info = state
            .snapshots
            .get(key)
            .ok_or_else(|| SnapshotError::NotFound(key.to_string()))?;
        Ok(self
            .lower_dirs_of(&state, info.parent.as_ref())
            .into_iter()
            .map(PathBuf::from)
            .collect())
    }

    fn id_dir(&self, id: u64) -> PathBuf {
        self.root.join(id.to_string())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// [`Snapshotter::prepare`] for state that dies with the host anyway (the rw and init layers
    /// of a `--rm` container): its record (and that of the snapshot it is committed to) is
    /// written and removed without fsyncs, under its own file name, so that a record a power loss
    /// left empty or torn reads as no record — an orphan directory the next start removes —
    /// instead of a corrupt store.
    pub fn prepare_volatile(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError> {
        self.create(key, parent, Kind::Active, true)
    }

    fn create(
        &self,
        key: &str,
        parent: Option<&str>,
        kind: Kind,
        volatile: bool,
    ) -> Result<Vec<Mount>, SnapshotError> {
        // Reserve the key and an id under the lock; the directories and the record are written
        // outside it, so creates (and every lookup) of other snapshots do not wait on this I/O.
        let id = {
            let mut state = self.lock();
            if state.snapshots.contains_key(key) || state.pending.contains_key(key) {
                return Err(SnapshotError::AlreadyExists(key.to_string()));
            }
            if let Some(p) = parent {
                match state.snapshots.get(p) {
                    None => return Err(SnapshotError::NotFound(p.to_string())),
                    Some(i) if i.kind != Kind::Committed => {
                        return Err(SnapshotError::InvalidState {
                            key: p.to_string(),
                            reason: "parent is not committed",
                        })
                    }
                    Some(_) => {}
                }
                // Counted now: the parent cannot be removed while its child is being made.
                *state.children.entry(p.to_string()).or_default() += 1;
            }
            let id = state.next_id.max(1);
            state.next_id = id + 1;
            state.pending.insert(key.to_string(), id);
            id
        };
        let info = Info {
            id,
            kind,
            parent: parent.map(str::to_string),
            volatile,
        };
        let dir = self.id_dir(id);
        let made = (|| {
            berth_sys::fs::create_private_dir(&dir).map_err(io_err("create", &dir))?;
            let mut b = fs::DirBuilder::new();
            b.recursive(true);
            let fs_dir = dir.join("fs");
            b.mode(0o755).create(&fs_dir).map_err(io_err("create", &fs_dir))?;
            if kind == Kind::Active {
                let work = dir.join("work");
                b.mode(0o700).create(&work).map_err(io_err("create", &work))?;
            }
            record::write(&dir, key, &info)
        })();
        let mut state = self.lock();
        state.pending.remove(key);
        if let Some(p) = parent {
            // Re-counted by insert below (or released on failure).
            let n = state.children.get_mut(p).expect("counted at reservation");
            *n -= 1;
            if *n == 0 {
                state.children.remove(p);
            }
        }
        if let Err(e) = made {
            drop(state);
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        state.insert(key.to_string(), info);
        Ok(self.mounts_of(&state, key))
    }

    /// The committed ancestors' `fs` dirs, nearest first.
    fn lower_dirs_of<'s>(&self, state: &'s State, mut parent: Option<&'s String>) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(p) = parent {
            let Some(info) = state.snapshots.get(p) else { break };
            out.push(self.id_dir(info.id).join("fs").to_string_lossy().into_owned());
            parent = info.parent.as_ref();
        }
        out
    }

    fn mounts_of(&self, state: &State, key: &str) -> Vec<Mount> {
        let info = &state.snapshots[key];
        let dir = self.id_dir(info.id);
        let lowers = self.lower_dirs_of(state, info.parent.as_ref());
        let fs_dir = dir.join("fs").to_string_lossy().into_owned();
        match info.kind {
            Kind::Active if lowers.is_empty() => vec![Mount::bind(fs_dir, false)],
            Kind::Active => vec![Mount {
                kind: "overlay".into(),
                source: "overlay".into(),
                options: vec![
                    format!("lowerdir={}", lowers.join(":")),
                    format!("upperdir={fs_dir}"),
                    format!("workdir={}", dir.join("work").to_string_lossy()),
                ],
            }],
            Kind::View | Kind::Committed => match lowers.len() {
                0 => vec![Mount::bind(fs_dir, true)],
                1 => vec![Mount::bind(lowers[0].clone(), true)],
                _ => vec![Mount {
                    kind: "overlay".into(),
                    source: "overlay".into(),
                    options: vec![format!("lowerdir={}", lowers.join(":"))],
                }],
            },
        }
    }
}

impl Snapshotter for Overlay {
    fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError> {
        self.create(key, parent, Kind::Active, false)
    }

    fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError> {
        self.create(key, parent, Kind::View, false)
    }

    fn mounts(&self, key: &str) -> Result<Vec<Mount>, SnapshotError> {
        let state = self.lock();
        match state.snapshots.get(key) {
            None => Err(SnapshotError::NotFound(key.to_string())),
            Some(i) if i.kind == Kind::Committed => Err(SnapshotError::InvalidState {
                key: key.to_string(),
                reason: "committed snapshots have no mounts",
            }),
            Some(_) => Ok(self.mounts_of(&state, key)),
        }
    }

    fn commit(&self, name: &str, key: &str) -> Result<(), SnapshotError> {
        // Under the lock: commits are rare (one per layer) and the rename of the key must be
        // atomic for lookups.
        let mut state = self.lock();
        let info = match state.snapshots.get(key) {
            None => return Err(SnapshotError::NotFound(key.to_string())),
            Some(i) if i.kind != Kind::Active => {
                return Err(SnapshotError::InvalidState {
                    key: key.to_string(),
                    reason: "only active snapshots can be committed",
                })
            }
            Some(i) => i.clone(),
        };
        if state.snapshots.contains_key(name) || state.pending.contains_key(name) {
            return Err(SnapshotError::AlreadyExists(name.to_string()));
        }
        let committed = Info {
            kind: Kind::Committed,
            ..info.clone()
        };
        let dir = self.id_dir(info.id);
        record::write(&dir, name, &committed)?;
        state.take(key);
        state.insert(name.to_string(), committed);
        drop(state);
        let _ = fs::remove_dir_all(dir.join("work"));
        Ok(())
    }

    fn remove(&self, key: &str) -> Result<(), SnapshotError> {
        // Out of the index first (so nothing new can use it), then the record, then the files.
        let info = {
            let mut state = self.lock();
            if !state.snapshots.contains_key(key) {
                return Err(SnapshotError::NotFound(key.to_string()));
            }
            if state.children.contains_key(key) {
                return Err(SnapshotError::HasChildren(key.to_string()));
            }
            state.take(key).expect("present")
        };
        let dir = self.id_dir(info.id);
        if let Err(e) = record::delete(&dir, info.volatile) {
            self.lock().insert(key.to_string(), info);
            return Err(e);
        }
        match self.trash.get() {
            Some(t) => t.put(&dir).map_err(io_err("remove", &dir)),
            None => fs::remove_dir_all(&dir).map_err(io_err("remove", &dir)),
        }
    }

    fn usage(&self, key: &str) -> Result<u64, SnapshotError> {
        let dir = self.upper_dir(key)?;
        let mut seen = std::collections::HashSet::new();
        disk_usage(&dir, &mut seen).map_err(io_err("measure", &dir))
    }

    fn stat(&self, key: &str) -> Result<Info, SnapshotError> {
        self.lock()
            .snapshots
            .get(key)
            .cloned()
            .ok_or_else(|| SnapshotError::NotFound(key.to_string()))
    }

    fn list(&self) -> Result<Vec<(String, Info)>, SnapshotError> {
        Ok(self
            .lock()
            .snapshots
            .iter()
            .map(|(k, i)| (k.clone(), i.clone()))
            .collect())
    }
}

/// Sum of the sizes of every non-directory under `dir`, hard links counted once (docker's
/// `directory.Size`).
fn disk_usage(dir: &Path, seen: &mut std::collections::HashSet<(u64, u64)>) -> io::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let md = entry.metadata()?;
        if md.is_dir() {
            total += disk_usage(&entry.path(), seen)?;
        } else if md.nlink() <= 1 || seen.insert((md.dev(), md.ino())) {
            total += md.len();
        }
    }
    Ok(total)
}

#[cfg(test)]
mod conformance {
    use super::*;

    fn sn() -> (tempfile::TempDir, Overlay) {
        let d = tempfile::tempdir().unwrap();
        let o = Overlay::new(d.path().join("snapshots")).unwrap();
        (d, o)
    }

    /// A container's files (its setuid binaries among them) are not reachable by other host users:
    /// the root and every snapshot directory are 0700, also when an older berth made them wider.
    #[test]
    fn snapshot_directories_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let (d, sn) = sn();
        sn.prepare("ctr", None).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
        let dir = sn.dir("ctr").unwrap();
        assert_eq!(mode(sn.root()), 0o700);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("work")), 0o700);
        assert_eq!(mode(&dir.join("fs")), 0o755, "the container's / keeps its mode");
        drop(sn);
        for p in [d.path().join("snapshots"), dir.clone()] {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let sn = Overlay::new(d.path().join("snapshots")).unwrap();
        assert_eq!(mode(sn.root()), 0o700);
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn layer_chain_then_container() {
        let (_d, sn) = sn();
        let m = sn.prepare("x1", None).unwrap();
        assert_eq!(
            m,
            vec![Mount::bind(sn.upper_dir("x1").unwrap().to_string_lossy(), false)]
        );
        fs::write(sn.upper_dir("x1").unwrap().join("a"), b"1").unwrap();
        sn.commit("l1", "x1").unwrap();
        assert_eq!(sn.stat("x1").unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(sn.stat("l1").unwrap().kind, Kind::Committed);
        assert!(!sn.dir("l1").unwrap().join("work").exists());
        sn.prepare("x2", Some("l1")).unwrap();
        sn.commit("l2", "x2").unwrap();

        let m = sn.prepare("ctr", Some("l2")).unwrap();
        let (l1, l2, c) = (
            sn.dir("l1").unwrap(),
            sn.dir("l2").unwrap(),
            sn.dir("ctr").unwrap(),
        );
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].kind, "overlay");
        assert_eq!(
            m[0].options,
            vec![
                format!("lowerdir={}/fs:{}/fs", l2.display(), l1.display()),
                format!("upperdir={}/fs", c.display()),
                format!("workdir={}/work", c.display()),
            ]
        );
        assert!(c.join("work").is_dir());
        assert_eq!(sn.mounts("ctr").unwrap(), m);
        // Short numeric ids keep option strings short.
        assert!(c.file_name().unwrap().to_str().unwrap().parse::<u64>().is_ok());

        fs::write(sn.upper_dir("ctr").unwrap().join("f"), vec![0u8; 1000]).unwrap();
        assert_eq!(sn.usage("ctr").unwrap(), 1000);
        assert_eq!(sn.remove("l2").unwrap_err().kind(), ErrorKind::Conflict);
        sn.remove("ctr").unwrap();
        assert!(!c.exists());
        sn.remove("l2").unwrap();
        sn.remove("l1").unwrap();
        assert!(sn.list().unwrap().is_empty());
    }

    #[test]
    fn views() {
        let (_d, sn) = sn();
        sn.prepare("x1", None).unwrap();
        sn.commit("l1", "x1").unwrap();
        let m = sn.view("v1", Some("l1")).unwrap();
        assert_eq!(
            m,
            vec![Mount::bind(sn.upper_dir("l1").unwrap().to_string_lossy(), true)]
        );
        sn.prepare("x2", Some("l1")).unwrap();
        sn.commit("l2", "x2").unwrap();
        let m = sn.view("v2", Some("l2")).unwrap();
        assert_eq!(m[0].kind, "overlay");
        assert_eq!(m[0].options.len(), 1);
        assert!(m[0].options[0].starts_with("lowerdir="));
        assert_eq!(
            sn.commit("nope", "v2").unwrap_err().kind(),
            ErrorKind::InvalidState
        );
    }

    #[test]
    fn errors() {
        let (_d, sn) = sn();
        assert_eq!(
            sn.prepare("a", Some("missing")).unwrap_err().kind(),
            ErrorKind::NotFound
        );
        sn.prepare("a", None).unwrap();
        assert_eq!(sn.prepare("a", None).unwrap_err().kind(), ErrorKind::Conflict);
        assert_eq!(
            sn.prepare("b", Some("a")).unwrap_err().kind(),
            ErrorKind::InvalidState
        );
        sn.prepare("b", None).unwrap();
        sn.commit("c", "b").unwrap();
        assert_eq!(sn.commit("c", "a").unwrap_err().kind(), ErrorKind::Conflict);
        assert_eq!(sn.mounts("c").unwrap_err().kind(), ErrorKind::InvalidState);
        assert_eq!(
            sn.remove("zz").unwrap_err().to_string(),
            "snapshot zz does not exist"
        );
    }

    #[test]
    fn survives_reopen_and_cleans_orphans() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("snapshots");
        {
            let sn = Overlay::new(&root).unwrap();
            sn.prepare("x", None).unwrap();
            sn.commit("l", "x").unwrap();
            sn.prepare("ctr", Some("l")).unwrap();
        }
        fs::create_dir_all(root.join("999/fs")).unwrap(); // a crash between mkdir and metadata
        let sn = Overlay::new(&root).unwrap();
        assert!(!root.join("999").exists());
        assert_eq!(sn.stat("ctr").unwrap().parent.as_deref(), Some("l"));
        let m = sn.mounts("ctr").unwrap();
        assert_eq!(m[0].kind, "overlay");
        // Ids are not reused.
        sn.prepare("new", None).unwrap();
        assert_ne!(sn.stat("new").unwrap().id, sn.stat("ctr").unwrap().id);
    }

    /// A `--rm` container's layers are recorded without fsyncs under their own record name; a
    /// record a power loss left empty reads as none (an orphan directory the next open removes),
    /// never as a corrupt store that stops the daemon.
    #[test]
    fn a_torn_volatile_record_reads_as_an_orphan_not_a_corrupt_store() {
        let (d, sn) = sn();
        let root = sn.root().to_path_buf();
        sn.prepare("x", None).unwrap();
        sn.commit("l", "x").unwrap();
        sn.prepare_volatile("init-prepare", Some("l")).unwrap();
        sn.commit("init", "init-prepare").unwrap();
        let init = sn.dir("init").unwrap();
        assert!(
            sn.stat("init").unwrap().volatile,
            "a commit keeps the snapshot volatile"
        );
        assert!(init.join(record::VOLATILE_RECORD).is_file());
        assert!(!init.join(record::RECORD).exists());
        sn.prepare_volatile("ctr", Some("init")).unwrap();
        let ctr = sn.dir("ctr").unwrap();
        drop(sn);

        let sn = Overlay::new(&root).unwrap();
        assert!(
            sn.stat("ctr").unwrap().volatile,
            "an intact volatile record loads"
        );
        assert_eq!(sn.stat("ctr").unwrap().parent.as_deref(), Some("init"));
        drop(sn);

        // What ext4 can leave of a renamed, never-fsynced new file after a power loss.
        fs::write(ctr.join(record::VOLATILE_RECORD), b"").unwrap();
        let sn = Overlay::new(&root).unwrap();
        assert_eq!(sn.stat("ctr").unwrap_err().kind(), ErrorKind::NotFound);
        assert!(!ctr.exists(), "the orphan directory is removed");
        sn.remove("init").unwrap();
        assert!(!init.exists());
        assert_eq!(sn.list().unwrap().len(), 1);
        drop(d);
    }

    /// The defect: one `metadata.json` naming every snapshot was rewritten and fsynced on every
    /// create and remove (O(n) per container). Now each change writes its own record only.
    #[test]
    fn a_snapshot_change_rewrites_no_other_snapshot_record() {
        use std::os::unix::fs::MetadataExt;
        let (_d, sn) = sn();
        sn.prepare("x", None).unwrap();
        sn.commit("l", "x").unwrap();
        for i in 0..200 {
            sn.prepare(&format!("c{i}"), Some("l")).unwrap();
        }
        let stamp = |k: &str| {
            let m = fs::metadata(sn.dir(k).unwrap().join(record::RECORD)).unwrap();
            (m.ino(), m.mtime_nsec(), m.mtime())
        };
        let before: Vec<_> = (0..200).map(|i| stamp(&format!("c{i}"))).collect();
        sn.prepare("new", Some("l")).unwrap();
        sn.remove("c7").unwrap();
        let after: Vec<_> = (0..200)
            .filter(|i| *i != 7)
            .map(|i| stamp(&format!("c{i}")))
            .collect();
        let mut expect = before.clone();
        expect.remove(7);
        assert_eq!(after, expect);
        assert!(!sn.root().join(record::LEGACY).exists());
        assert_eq!(sn.remove("l").unwrap_err().kind(), ErrorKind::Conflict);
    }

    #[test]
    fn an_older_data_root_with_metadata_json_is_converted() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("snapshots");
        for id in [1, 2] {
            fs::create_dir_all(root.join(format!("{id}/fs"))).unwrap();
        }
        fs::create_dir_all(root.join("2/work")).unwrap();
        fs::create_dir_all(root.join("3/fs")).unwrap(); // an orphan of the old layout
        fs::write(
            root.join(record::LEGACY),
            r#"{"next_id":4,"snapshots":{"l":{"id":1,"kind":"committed","parent":null},"ctr":{"id":2,"kind":"active","parent":"l"}}}"#,
        )
        .unwrap();
        // berthd check reads it as it is, changing nothing.
        let ro = Overlay::open_readonly(&root).unwrap();
        assert_eq!(ro.stat("ctr").unwrap().id, 2);
        assert_eq!(ro.orphan_dirs().unwrap(), vec![root.join("3")]);
        assert!(root.join(record::LEGACY).exists());
        drop(ro);
        let sn = Overlay::new(&root).unwrap();
        assert!(!root.join(record::LEGACY).exists());
        assert!(!root.join("3").exists());
        assert!(root.join("2").join(record::RECORD).exists());
        drop(sn);
        let sn = Overlay::new(&root).unwrap();
        assert_eq!(sn.stat("ctr").unwrap().parent.as_deref(), Some("l"));
        assert_eq!(sn.stat("l").unwrap().kind, Kind::Committed);
        assert_eq!(sn.mounts("ctr").unwrap()[0].kind, "overlay");
        assert!(sn.prepare("next", None).unwrap().len() == 1);
        assert!(sn.stat("next").unwrap().id >= 3);
    }

    #[test]
    fn concurrent_creates_and_removes_stay_consistent_across_reopen() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("snapshots");
        let sn = std::sync::Arc::new(Overlay::new(&root).unwrap());
        sn.prepare("x", None).unwrap();
        sn.commit("l", "x").unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let sn = sn.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let k = format!("t{t}-{i}");
                        sn.prepare(&k, Some("l")).unwrap();
                        if i % 2 == 0 {
                            sn.remove(&k).unwrap();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(sn.list().unwrap().len(), 1 + 4 * 25);
        assert!(sn.orphan_dirs().unwrap().is_empty());
        drop(sn);
        let sn = Overlay::new(&root).unwrap();
        assert_eq!(sn.list().unwrap().len(), 1 + 4 * 25);
        let ids: HashSet<u64> = sn.list().unwrap().iter().map(|(_, i)| i.id).collect();
        assert_eq!(ids.len(), 1 + 4 * 25);
    }
}
