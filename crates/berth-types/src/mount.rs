use serde::{Deserialize, Serialize};

/// One filesystem mount, described but not performed (containerd's `mount.Mount`).
///
/// Snapshotters return a `Vec<Mount>` that, mounted in order at a target directory, yields the
/// requested filesystem; the shim performs them. For overlay, `options` carries `lowerdir=…`,
/// `upperdir=…`, `workdir=…`; a lowerdir list too long for one mount(2) option page is split by the
/// mounting side (fsconfig `lowerdir+`), so describers never need to care about the 4 KiB limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Filesystem type: `overlay`, `bind`, `tmpfs`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// Mount source (`overlay`, a host path for binds, …).
    pub source: String,
    /// Mount options, as `mount -o` takes them (`ro`, `rbind`, `lowerdir=/a:/b`, …).
    pub options: Vec<String>,
}

impl Mount {
    /// A read-only bind mount of `path` (a single-layer image viewed without an upper dir).
    pub fn bind(path: impl Into<String>, read_only: bool) -> Self {
        let mut options = vec!["rbind".to_string()];
        if read_only {
            options.push("ro".to_string());
        }
        Mount {
            kind: "bind".into(),
            source: path.into(),
            options,
        }
    }
}

/// What a container mount is: docker's `mount.Type` for the kinds berth supports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    /// A host path bind-mounted into the container.
    #[default]
    Bind,
    /// A volume's `_data` directory (named or anonymous), bind-mounted into the container.
    Volume,
    /// A fresh tmpfs.
    Tmpfs,
}

impl MountType {
    /// Docker's name: `bind`, `volume`, `tmpfs`.
    pub fn as_str(&self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Volume => "volume",
            MountType::Tmpfs => "tmpfs",
        }
    }
}

/// One mount of a container: the daemon resolves `-v`/`--mount`/`--tmpfs`/`--volumes-from`/image
/// `VOLUME`s into these at create (kept in the container's record, shown by inspect's `Mounts`),
/// and the runtime turns each into an OCI spec mount (a bind is `rbind` + its propagation, `ro`
/// remounted read-only; a tmpfs gets its `options`, e.g. `size=1m`, `mode=1777`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MountPoint {
    #[serde(rename = "type")]
    pub kind: MountType,
    /// Host path (a bind's source, a volume's `_data`); empty for tmpfs.
    pub source: String,
    /// Absolute path in the container.
    pub target: String,
    pub read_only: bool,
    /// Bind propagation (`rprivate` when empty): `private`, `rprivate`, `shared`, `rshared`,
    /// `slave`, `rslave`.
    pub propagation: String,
    /// Extra mount options (tmpfs `size=…`, `mode=…`, `noexec`, …).
    pub options: Vec<String>,
    /// The volume's name (volume mounts only).
    pub name: String,
    /// The volume driver (`local`; volume mounts only).
    pub driver: String,
    /// The mode as given (`ro`, `rw`, `z`, … — inspect's `Mode`).
    pub mode: String,
    /// Copy the image's content at `target` into an empty volume at its first mount.
    pub copy_up: bool,
    /// From `--volumes-from` (not this container's own volume: `rm -v` leaves it).
    pub inherited: bool,
}

impl MountPoint {
    /// A plain bind mount (`rbind`, `rprivate`).
    pub fn bind(source: impl Into<String>, target: impl Into<String>, read_only: bool) -> Self {
        MountPoint {
            kind: MountType::Bind,
            source: source.into(),
            target: target.into(),
            read_only,
            ..Default::default()
        }
    }

    /// The bind propagation in effect (`rprivate` unless set).
    pub fn propagation(&self) -> &str {
        if self.propagation.is_empty() {
            "rprivate"
        } else {
            &self.propagation
        }
    }
}
