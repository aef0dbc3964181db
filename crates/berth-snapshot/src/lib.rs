//! Snapshots of filesystems, described as [`Mount`]s, and what a container changed in one
//! ([`changes`]). The tars that fill snapshots and are made from them go through `berth-archive`
//! (confined apply with whiteouts, the commit layer of an upper dir).
//!
//! # Vocabulary (containerd's)
//! - A **key** names an *active* snapshot (writable, being prepared) or a *view* (read-only).
//! - A **name** names a *committed* snapshot: immutable, usable as a parent.
//! - A **parent** is the committed snapshot a new snapshot starts from; committed snapshots form a
//!   chain, the image's layers, bottom first.
//!
//! # Lifecycle
//! Unpacking an image is "prepare on top of the previous layer, apply the layer's tar into the
//! active snapshot's directory, commit under the layer's chain ID"; a container's root filesystem
//! is one more active snapshot on top of the last layer. The snapshotter never mounts: it returns
//! the mounts and the shim performs them.
//!
//! ```no_run
//! use berth_archive::apply_layer;
//! use berth_snapshot::{Overlay, Snapshotter};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sn = Overlay::new("/var/lib/berth/snapshots")?;
//!
//! // Apply layer 1: an active snapshot with no parent, the tar unpacked into it, committed.
//! sn.prepare("extract-1", None)?;
//! let (diff_id_1, _size) = apply_layer(&sn.upper_dir("extract-1")?, std::fs::File::open("layer1.tar")?)?;
//! let chain_1 = diff_id_1.to_string(); // chainID(1) = diffID(1)
//! sn.commit(&chain_1, "extract-1")?;
//!
//! // Apply layer 2 on top of layer 1.
//! sn.prepare("extract-2", Some(&chain_1))?;
//! let (_diff_id_2, _) = apply_layer(&sn.upper_dir("extract-2")?, std::fs::File::open("layer2.tar")?)?;
//! let chain_2 = "sha256:…"; // sha256(chain_1 + " " + diff_id_2)
//! sn.commit(chain_2, "extract-2")?;
//!
//! // Prepare a container: one overlay mount, lowerdir = layer 2 : layer 1, a fresh upper/work.
//! let mounts = sn.prepare("3f2a…container-id", Some(chain_2))?;
//! assert_eq!(mounts[0].kind, "overlay");
//! // … the shim mounts them, runs the container, unmounts …
//! println!("rw layer uses {} bytes", sn.usage("3f2a…container-id")?);
//! sn.remove("3f2a…container-id")?;
//! # Ok(()) }
//! ```

mod diff;
mod init;
mod overlay;
mod record;

pub use diff::{changes, Change, ChangeKind};
pub use init::{write_init_layer, InitEntry, InitKind};
pub use overlay::{Info, Kind, Overlay, SnapshotError};

use berth_types::Mount;

/// A store of snapshots. See the crate documentation for the lifecycle. All methods are blocking.
pub trait Snapshotter: Send + Sync {
    /// Creates an active (writable) snapshot `key` on top of the committed snapshot `parent` and
    /// returns the mounts that yield its filesystem.
    fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError>;
    /// Creates a read-only view `key` of the committed snapshot `parent`.
    fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError>;
    /// The mounts of an active snapshot or view, again (e.g. for a container restart).
    fn mounts(&self, key: &str) -> Result<Vec<Mount>, SnapshotError>;
    /// Turns the active snapshot `key` into the committed snapshot `name`.
    fn commit(&self, name: &str, key: &str) -> Result<(), SnapshotError>;
    /// Removes a snapshot that has no children. Its directory must no longer be mounted.
    fn remove(&self, key: &str) -> Result<(), SnapshotError>;
    /// Bytes used by the snapshot's own directory (the diff or the container's rw layer).
    fn usage(&self, key: &str) -> Result<u64, SnapshotError>;
    /// The snapshot's metadata.
    fn stat(&self, key: &str) -> Result<Info, SnapshotError>;
    /// Every snapshot, by key or name.
    fn list(&self) -> Result<Vec<(String, Info)>, SnapshotError>;
}
