//! Volumes of the `local` driver.
//!
//! # On disk
//! ```text
//! <data-root>/volumes/            0700
//!   <name>/                       0700
//!     _data/                      0755 root (or the mode and owner of the image directory
//!                                 copied up into it); what containers see
//! ```
//! A volume with driver options (`-o type=tmpfs -o device=tmpfs -o o=size=1m`, or
//! `type=none,o=bind,device=/path`) gets that filesystem mounted on `_data` while a container
//! uses it ([`VolumeStore::mount`] / [`VolumeStore::unmount`], counted in memory); an unused one
//! is not mounted, as with dockerd.
//!
//! # Records
//! One row per volume in berth-meta's `volumes` table (labels, options, created, anonymous).
//! Which containers use a volume is not stored here: it is in the containers' records, and the
//! daemon answers "in use" from them.
//!
//! # Crash consistency (docs/design/volumes.md)
//! - create: directories first (`volume.create.dirs-made`), then the record. A crash between
//!   leaves a directory without a record, which [`VolumeStore::check`] reports and removes when
//!   empty (an empty `_data` is all a create can leave).
//! - remove: the record is marked `removing` first (`volume.rm.marked-removing`), then the files
//!   go (`volume.rm.files-removed`), then the record. A crash leaves a `removing` record, which
//!   [`VolumeStore::check`] finishes; nobody sees it meanwhile (lists skip it).

mod copyup;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use berth_meta::{Db, MetaError, VolumeRow};
use berth_types::ErrorKind;
use serde::Serialize;

pub use copyup::copy_up;

/// The only driver.
pub const LOCAL: &str = "local";

/// Errors of the volume store (docker's messages).
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("get {name}: no such volume")]
    NotFound { name: String },
    #[error("create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path")]
    InvalidName { name: String },
    #[error("create {name}: volume name is too short, names should be at least two alphanumeric characters")]
    NameTooShort { name: String },
    #[error("create {name}: invalid option key: {key:?}")]
    InvalidOption { name: String, key: String },
    #[error("create {name}: error looking up volume plugin {driver}: plugin \"{driver}\" not found")]
    UnknownDriver { name: String, driver: String },
    #[error("error while mounting volume '{path}': {err}")]
    Mount {
        path: String,
        #[source]
        err: berth_sys::mount::MountError,
    },
    #[error("failed to {op} {path}: {err}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        err: std::io::Error,
    },
    #[error("copying the image's content into the volume: {0}")]
    CopyUp(String),
    #[error(transparent)]
    Meta(#[from] MetaError),
}

impl VolumeError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            VolumeError::NotFound { .. } | VolumeError::UnknownDriver { .. } => ErrorKind::NotFound,
            VolumeError::InvalidName { .. }
            | VolumeError::NameTooShort { .. }
            | VolumeError::InvalidOption { .. } => ErrorKind::InvalidArgument,
            VolumeError::Meta(e) => e.kind(),
            VolumeError::Mount { .. } | VolumeError::Io { .. } | VolumeError::CopyUp(_) => {
                ErrorKind::Internal
            }
        }
    }
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> VolumeError + 'a {
    move |err| VolumeError::Io {
        op,
        path: path.display().to_string(),
        err,
    }
}

/// A volume as the Engine API shows it (`GET /volumes/{name}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    pub created_at: String,
    pub driver: String,
    /// `null` when empty.
    pub labels: Option<BTreeMap<String, String>>,
    pub mountpoint: String,
    pub name: String,
    /// `null` when empty.
    pub options: Option<BTreeMap<String, String>>,
    pub scope: String,
    #[serde(skip)]
    pub anonymous: bool,
}

impl Volume {
    fn from_row(root: &Path, r: &VolumeRow) -> Volume {
        let map = |s: &str| {
            serde_json::from_str::<BTreeMap<String, String>>(s)
                .ok()
                .filter(|m| !m.is_empty())
        };
        Volume {
            created_at: r.created.clone(),
            driver: r.driver.clone(),
            labels: map(&r.labels),
            mountpoint: root.join(&r.name).join("_data").display().to_string(),
            name: r.name.clone(),
            options: map(&r.options),
            scope: "local".into(),
            anonymous: r.anonymous,
        }
    }

    /// Driver options were given (prune and `system df` leave such volumes alone, as dockerd).
    pub fn has_options(&self) -> bool {
        self.options.is_some()
    }
}

/// What [`VolumeStore::create`] is asked for.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Generated (64 hex) when `None` or empty.
    pub name: Option<String>,
    /// `local` when empty.
    pub driver: String,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    pub anonymous: bool,
}

/// docker's local volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn validate_name(name: &str) -> Result<(), VolumeError> {
    let mut chars = name.chars();
    let ok_first = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_rest = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok_first || !ok_rest {
        return Err(VolumeError::InvalidName { name: name.into() });
    }
    if name.len() < 2 {
        return Err(VolumeError::NameTooShort { name: name.into() });
    }
    Ok(())
}

/// The local driver's volumes under `<data-root>/volumes`.
pub struct VolumeStore {
    root: PathBuf,
    db: Db,
    /// Users of each mounted driver-option volume.
    mounted: Mutex<HashMap<String, usize>>,
}

/// One problem [`VolumeStore::check`] found (and repaired, when asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub message: String,
    /// Safe to fix automatically.
    pub repairable: bool,
    /// It was fixed.
    pub repaired: bool,
}

impl Finding {
    fn new(message: String, repairable: bool, repaired: bool) -> Self {
        Finding {
            message,
            repairable,
            repaired,
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl VolumeStore {
    /// Opens the store rooted at `<data_root>/volumes` (created 0700).
    pub fn open(data_root: &Path, db: Db) -> Result<Self, VolumeError> {
        let root = data_root.join("volumes");
        berth_sys::fs::create_private_dir(&root).map_err(io("create", &root))?;
        Ok(VolumeStore {
            root,
            db,
            mounted: Mutex::new(HashMap::new()),
        })
    }

    /// Opens the store without creating anything (`berthd check` without `--repair`).
    pub fn open_readonly(data_root: &Path, db: Db) -> Self {
        VolumeStore {
            root: data_root.join("volumes"),
            db,
            mounted: Mutex::new(HashMap::new()),
        }
    }

    /// The store's directory (`<data-root>/volumes`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Creates a volume, or returns the existing one of that name unchanged (docker's idempotent
    /// create). The bool says whether it was made now.
    pub fn create(&self, opts: CreateOptions) -> Result<(Volume, bool), VolumeError> {
        let name = match opts.name.filter(|n| !n.is_empty()) {
            Some(n) => n,
            None => random_name(),
        };
        validate_name(&name)?;
        if !opts.driver.is_empty() && opts.driver != LOCAL {
            return Err(VolumeError::UnknownDriver {
                name,
                driver: opts.driver,
            });
        }
        if let Some(key) = opts
            .options
            .keys()
            .find(|k| !matches!(k.as_str(), "type" | "device" | "o"))
        {
            return Err(VolumeError::InvalidOption {
                name,
                key: key.clone(),
            });
        }
        if let Some(row) = self.db.volume(&name)? {
            if !row.removing {
                return Ok((Volume::from_row(&self.root, &row), false));
            }
            // A removal a crash interrupted: finish it, then create anew.
            self.remove_files(&name)?;
            self.db.delete_volume(&name)?;
        }
        let dir = self.dir(&name);
        let data = dir.join("_data");
        berth_sys::fs::create_private_dir(&dir).map_err(io("create", &dir))?;
        match std::fs::create_dir(&data) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io("create", &data)(e)),
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755))
            .map_err(io("chmod", &data))?;
        sync_dir(&self.root);
        berth_sys::failpoint::hit("volume.create.dirs-made");
        let row = VolumeRow {
            name: name.clone(),
            driver: LOCAL.into(),
            created: berth_types::time::rfc3339_nano(
                berth_types::time::now_nanos() / 1_000_000_000 * 1_000_000_000,
            ),
            labels: serde_json::to_string(&opts.labels).unwrap_or_else(|_| "{}".into()),
            options: serde_json::to_string(&opts.options).unwrap_or_else(|_| "{}".into()),
            anonymous: opts.anonymous,
            removing: false,
        };
        if !self.db.insert_volume(&row)? {
            // Created concurrently under the same name: that one wins.
            let row = self.db.volume(&name)?.ok_or(VolumeError::NotFound { name })?;
            return Ok((Volume::from_row(&self.root, &row), false));
        }
        Ok((Volume::from_row(&self.root, &row), true))
    }

    /// One volume.
    pub fn get(&self, name: &str) -> Result<Volume, VolumeError> {
        match self.db.volume(name)? {
            Some(r) if !r.removing => Ok(Volume::from_row(&self.root, &r)),
            _ => Err(VolumeError::NotFound { name: name.into() }),
        }
    }

    /// Every volume, by name.
    pub fn list(&self) -> Result<Vec<Volume>, VolumeError> {
        Ok(self
            .db
            .volumes()?
            .iter()
            .filter(|r| !r.removing)
            .map(|r| Volume::from_row(&self.root, r))
            .collect())
    }

    /// Removes a volume: record marked first, then its files, then the record. The caller has
    /// checked that no container uses it.
    pub fn remove(&self, name: &str) -> Result<(), VolumeError> {
        self.get(name)?;
        self.db.mark_volume_removing(name)?;
        berth_sys::failpoint::hit("volume.rm.marked-removing");
        self.remove_files(name)?;
        berth_sys::failpoint::hit("volume.rm.files-removed");
        self.db.delete_volume(name)?;
        Ok(())
    }

    fn remove_files(&self, name: &str) -> Result<(), VolumeError> {
        let dir = self.dir(name);
        let data = dir.join("_data");
        self.mounted.lock().unwrap().remove(name);
        berth_sys::mount::unmount(&data).map_err(|err| VolumeError::Mount {
            path: data.display().to_string(),
            err,
        })?;
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", &dir)(e)),
            _ => {
                sync_dir(&self.root);
                Ok(())
            }
        }
    }

    /// Makes the volume ready for a container and returns the host path to bind (its `_data`).
    /// A volume with driver options gets its filesystem mounted there by its first user.
    pub fn mount(&self, name: &str) -> Result<PathBuf, VolumeError> {
        let v = self.get(name)?;
        let data = PathBuf::from(&v.mountpoint);
        let Some(opts) = v.options else {
            return Ok(data);
        };
        let mut mounted = self.mounted.lock().unwrap();
        let users = mounted.entry(name.to_string()).or_insert(0);
        if *users == 0 && !is_mount_point(&data) {
            let m = local_mount(&opts);
            berth_sys::mount::mount_all(&[m], &data).map_err(|err| VolumeError::Mount {
                path: data.display().to_string(),
                err,
            })?;
        }
        *users += 1;
        Ok(data)
    }

    /// A container stopped using the volume; the last user of a driver-option volume unmounts it.
    pub fn unmount(&self, name: &str) -> Result<(), VolumeError> {
        let mut mounted = self.mounted.lock().unwrap();
        let Some(users) = mounted.get_mut(name) else {
            return Ok(());
        };
        *users = users.saturating_sub(1);
        if *users == 0 {
            mounted.remove(name);
            let data = self.dir(name).join("_data");
            berth_sys::mount::unmount(&data).map_err(|err| VolumeError::Mount {
                path: data.display().to_string(),
                err,
            })?;
        }
        Ok(())
    }

    /// Bytes under the volume's `_data` (what prune reclaims, `system df` shows).
    pub fn size(&self, name: &str) -> u64 {
        dir_size(&self.dir(name).join("_data"))
    }

    /// Records and directories agree: finishes interrupted removals, reports (and with `repair`
    /// removes, when empty) directories without a record, and recreates a missing `_data` of a
    /// record (reported: its data was lost outside berth).
    pub fn check(&self, repair: bool) -> Result<Vec<Finding>, VolumeError> {
        let mut out = Vec::new();
        let rows = self.db.volumes()?;
        for r in &rows {
            let data = self.dir(&r.name).join("_data");
            if r.removing {
                if repair {
                    self.remove_files(&r.name)?;
                    self.db.delete_volume(&r.name)?;
                }
                out.push(Finding::new(
                    format!("volume {}: removal was interrupted", r.name),
                    true,
                    repair,
                ));
            } else if !data.is_dir() {
                out.push(Finding::new(
                    format!("volume {}: recorded but {} is missing", r.name, data.display()),
                    true,
                    repair,
                ));
                if repair {
                    berth_sys::fs::create_private_dir(&self.dir(&r.name)).map_err(io("create", &data))?;
                    std::fs::create_dir_all(&data).map_err(io("create", &data))?;
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755))
                        .map_err(io("chmod", &data))?;
                }
            }
        }
        let rd = match std::fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io("read", &self.root)(e)),
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if rows.iter().any(|r| r.name == name) {
                continue;
            }
            let dir = e.path();
            let empty = std::fs::read_dir(dir.join("_data"))
                .map(|mut d| d.next().is_none())
                .unwrap_or(true)
                && std::fs::read_dir(&dir)
                    .map(|d| d.flatten().all(|x| x.file_name() == "_data"))
                    .unwrap_or(false);
            if empty {
                if repair {
                    std::fs::remove_dir_all(&dir).map_err(io("remove", &dir))?;
                }
                out.push(Finding::new(
                    format!(
                        "volume directory {} has no record (an interrupted create)",
                        dir.display()
                    ),
                    true,
                    repair,
                ));
            } else {
                out.push(Finding::new(
                    format!(
                        "volume directory {} has no record and holds data: left in place",
                        dir.display()
                    ),
                    false,
                    false,
                ));
            }
        }
        Ok(out)
    }
}

/// The mount of a local volume's driver options (`type`, `device`, `o`), as dockerd's local driver
/// passes them to mount(2); `o=bind` makes a bind mount of `device`.
fn local_mount(opts: &BTreeMap<String, String>) -> berth_types::Mount {
    let o: Vec<String> = opts
        .get("o")
        .map(|o| o.split(',').filter(|s| !s.is_empty()).map(String::from).collect())
        .unwrap_or_default();
    let mut kind = opts.get("type").cloned().unwrap_or_default();
    if kind.is_empty() || kind == "none" || o.iter().any(|x| x == "bind" || x == "rbind") {
        kind = if o.iter().any(|x| x == "bind" || x == "rbind") {
            "bind".into()
        } else {
            kind
        };
    }
    berth_types::Mount {
        kind,
        source: opts.get("device").cloned().unwrap_or_default(),
        options: o,
    }
}

fn is_mount_point(path: &Path) -> bool {
    berth_sys::mount::mounts_under(path)
        .map(|m| m.iter().any(|p| p == path))
        .unwrap_or(false)
}

/// 64 hex characters, as dockerd names anonymous volumes.
fn random_name() -> String {
    let mut b = [0u8; 32];
    rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).expect("getrandom");
    berth_types::id::to_hex(&b)
}

fn sync_dir(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

/// Bytes of the regular files below `dir` (not following symlinks, staying on its filesystem).
pub fn dir_size(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(top) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    let dev = top.dev();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() && md.dev() == dev {
                stack.push(e.path());
            } else if md.is_file() {
                total += md.size();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests;
