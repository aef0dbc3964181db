//! Tar in and out, confined to a root directory. Layer application (OCI whiteouts → overlay
//! markers), `docker export`, both ends of `docker cp` — the daemon's, on a container's root
//! filesystem, and the CLI's, on the user's destination — and the commit layer of an overlay
//! upper dir all go through here, so they share one set of rules:
//!
//! - **In** ([`apply_layer`], [`extract_tar`], [`ContainerFs::put`], [`copy_to`]): every entry
//!   name is cleaned lexically and refused if it climbs above the root; every parent directory is
//!   opened with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, so symlinks (absolute ones,
//!   `..` chains, links made by earlier entries) resolve as if the root were `/`; the entry itself
//!   is created with `*at` calls that never follow its last component; hard-link targets are
//!   resolved the same way. Nothing is created, changed or removed outside the root.
//! - **Out** ([`export_tar`], [`ContainerFs::get`], [`write_layer_tar`]): trees are read through
//!   `O_NOFOLLOW` fds only ([`walk`]), so a symlink swapped in by a running container is written
//!   as a symlink, never followed to the host.
//!
//! The crate has no `unsafe` (rustix wraps the syscalls) and depends only on `berth-types`, so
//! the CLI may link it (layer L1).

mod apply;
mod container;
mod copy;
pub mod dockerignore;
mod tarwrite;
pub mod walk;

pub use apply::{apply_layer, extract_tar, open_in_root, ApplyError};
pub use container::{export_tar, go_mode, ArchiveError, ContainerFs, PathStat, PutOptions};
pub use copy::{copy_to, follow_link, CopyError, CopySource};
pub use tarwrite::write_layer_tar;
