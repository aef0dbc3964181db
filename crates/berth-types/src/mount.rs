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
