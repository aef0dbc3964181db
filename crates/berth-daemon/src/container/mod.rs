//! Containers: the persisted record ([`Doc`]), the lifecycle state machine ([`Status`]), and the
//! live side of a container ([`Entry`]): its output hub, its stdin queue and its exit notifications.
//!
//! Files of a container, under `<data-root>/containers/<id>/` (the OCI bundle):
//! ```text
//! config.json        OCI runtime spec, rewritten at every start
//! shim.json          berth_shim_proto::ShimConfig
//! hostname hosts resolv.conf
//! <id>-json.log      json-file log, written by the shim (rotated: <id>-json.log.1 …, .gz)
//! local-logs/        the local driver's container.log (and its rotations)
//! exit.json          how the last run ended, written by the shim
//! rootfs/            mount point of the container's overlay (mounted by the shim while it runs)
//! ```

mod attach;
pub(crate) mod create;
mod exec;
mod fs;
mod health;
pub(crate) mod hub;
mod inspect;
mod list;
mod logs;
mod manage;
pub(crate) mod mounts;
pub(crate) mod names;
pub(crate) mod namespaces;
mod remove;
pub(crate) mod security;
mod start;
mod stop;

pub use attach::{AttachOptions, PendingAttach};
pub use create::CreateOptions;
pub use exec::{ExecEntry, ExecStartOptions, Execs, PendingExec};
pub use list::ListOptions;
pub use logs::LogsOptions;
pub use stop::{parse_signal, WaitCondition};

use berth_api::models::{ContainerConfig, HostConfig};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};

use crate::error::{Error, Result};

/// Lifecycle states, as the API names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

/// Operations whose legality depends on the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Start,
    Stop,
    Attach,
    Remove,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// A process exists for this container.
    pub fn is_running(self) -> bool {
        matches!(self, Status::Running | Status::Paused | Status::Restarting)
    }

    /// Whether `op` is legal now; the error says why not, as docker does.
    pub fn can(self, op: Op, id: &str) -> Result<()> {
        match (op, self) {
            (Op::Start, s) if s.is_running() => Err(Error::NotModified),
            (Op::Start, Status::Removing | Status::Dead) => {
                Err(Error::conflict(format!("cannot start container {id}: container is marked for removal")))
            }
            (Op::Stop, s) if !s.is_running() => Err(Error::NotModified),
            // Attaching to a stopped container is allowed (`start -a` attaches first); docker's
            // "start it first" check lives in the `attach` command of the client.
            (Op::Attach, Status::Paused) => {
                Err(Error::conflict("You cannot attach to a paused container, unpause it first"))
            }
            (Op::Attach, Status::Dead | Status::Removing) => {
                Err(Error::conflict(format!("cannot attach to container {id}: container is marked for removal")))
            }
            (Op::Remove, s) if s.is_running() => Err(Error::conflict(format!(
                "You cannot remove a running container {id}. Stop the container before attempting removal or force remove"
            ))),
            _ => Ok(()),
        }
    }
}

/// Runtime state, persisted with the record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    pub pid: i64,
    pub exit_code: i64,
    pub error: String,
    pub started_at: i64,
    pub finished_at: i64,
    pub oom_killed: bool,
}

/// The persisted record of a container (the `doc` column of berth-meta's containers table).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Doc {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    /// Nanoseconds since the epoch.
    pub created: i64,
    /// `sha256:…` of the image.
    pub image_id: String,
    pub path: String,
    pub args: Vec<String>,
    /// The merged config (image defaults applied), as inspect shows it.
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    pub state: State,
    pub restart_count: i64,
    /// Stopped by the user (`stop`/`kill`), so `unless-stopped` and `always` (until the daemon
    /// restarts) leave it down.
    #[serde(default)]
    pub manually_stopped: bool,
    /// Health check state, when the container has a check.
    #[serde(default)]
    pub health: Option<health::Health>,
    /// Binds, volumes and tmpfs mounts, resolved at create (inspect's `Mounts`).
    #[serde(default)]
    pub mounts: Vec<berth_types::MountPoint>,
    /// The network endpoint while the container runs (what teardown undoes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<crate::network::NetState>,
    /// `--network-alias`es on a user network (names the embedded DNS answers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// `--ip` on its network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_ip: Option<String>,
    /// Networks joined with `network connect` (beyond the one it was created on), with the
    /// endpoint each has while the container runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connected: Vec<crate::connect::Connected>,
    /// `--link`s (`HostConfig.Links`, and an endpoint's `Links` on a user network).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<crate::links::Link>,
    /// Disconnected (`network disconnect`) from the network it was created on: it starts with
    /// a namespace of its own and only its connected networks, until `network connect` again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub detached: bool,
}

/// One output chunk or the end of a run, as relayed to attached clients ([`hub::Hub`]).
#[derive(Debug, Clone)]
pub enum Output {
    Stdout(Bytes),
    Stderr(Bytes),
    /// The process exited; no more output for this run.
    Exit,
}

/// Exit notifications for `wait`: a counter of finished runs, the last code, and removal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Life {
    pub exits: u64,
    pub exit_code: i64,
    pub removed: bool,
}

/// A live container: its record plus the channels that outlive a single request.
pub struct Entry {
    pub id: String,
    doc: Mutex<Doc>,
    /// Serialises lifecycle operations (start, stop, remove, …) on this container.
    pub(crate) op: tokio::sync::Mutex<()>,
    /// Relays the running container's output to attached clients, with back-pressure.
    pub(crate) output: hub::Hub,
    pub(crate) stdin_tx: mpsc::UnboundedSender<Option<Bytes>>,
    pub(crate) stdin_rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Option<Bytes>>>>,
    pub(crate) life: watch::Sender<Life>,
    /// Delay before the next policy restart (docker's backoff: 100 ms doubling to 1 min, reset
    /// after 10 s of running).
    pub(crate) restart_delay: Mutex<std::time::Duration>,
}

impl Entry {
    pub(crate) fn new(doc: Doc) -> Arc<Self> {
        let (stdin_tx, stdin_rx) = mpsc::unbounded_channel();
        let life = Life {
            exits: 0,
            exit_code: doc.state.exit_code,
            removed: false,
        };
        Arc::new(Entry {
            id: doc.id.clone(),
            doc: Mutex::new(doc),
            op: tokio::sync::Mutex::new(()),
            output: hub::Hub::default(),
            stdin_tx,
            stdin_rx: Arc::new(tokio::sync::Mutex::new(stdin_rx)),
            life: watch::channel(life).0,
            restart_delay: Mutex::new(std::time::Duration::ZERO),
        })
    }

    /// A snapshot of the record.
    pub fn doc(&self) -> Doc {
        self.doc.lock().unwrap().clone()
    }

    /// Reads part of the record without cloning all of it.
    pub fn with<R>(&self, f: impl FnOnce(&Doc) -> R) -> R {
        f(&self.doc.lock().unwrap())
    }

    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut Doc) -> R) -> R {
        f(&mut self.doc.lock().unwrap())
    }

    pub fn status(&self) -> Status {
        self.with(|d| d.state.status)
    }

    pub fn name(&self) -> String {
        self.with(|d| d.name.clone())
    }
}
