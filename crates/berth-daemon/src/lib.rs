//! berthd's services, wired by [`Daemon::new`]: containers (create → start → attach/wait/logs →
//! stop/kill → remove), images (through berth-image), events, and live restore of containers whose
//! shims outlived a previous daemon.
//!
//! The HTTP edge (the `berthd` binary) parses requests into typed options and calls the methods
//! here; nothing in this crate knows about HTTP.

pub mod build;
mod cgroups;
pub mod check;
pub mod config;
mod connect;
pub mod container;
mod daemon;
pub mod distribution;
mod dns;
mod docker_user;
pub mod dynmods;
pub mod error;
pub mod events;
mod images;
pub mod links;
mod net_teardown;
pub mod network;
pub mod networks;
mod perms;
mod shim;
mod storage;
mod system;
mod tidy;
mod volumes;

pub use cgroups::v1_file as cgroup_v1_file;
pub use config::{Config, FileConfig};

/// The name of berth's one runtime, as `HostConfig.Runtime`, `docker info`'s `DefaultRuntime` and
/// `Runtimes` show it: the runtime is berth's own (berth-shim with libcontainer embedded), not a
/// runc binary, so it is not called "runc". Clients treat the name as opaque.
pub const RUNTIME: &str = "berth";
pub use daemon::Daemon;
pub use error::{Error, Result};
pub use tidy::ContainersPruneReport;
pub use volumes::{VolumeCreate, VolumesPruneReport};
