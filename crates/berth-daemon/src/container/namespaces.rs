//! `--pid`, `--ipc` and `--uts`: which namespaces a container shares, and what its `/dev/shm`
//! is, with dockerd's modes, records and messages.
//!
//! - PID: `""` (a namespace of its own), `host`, `container:NAME`.
//! - IPC: `private` (the default, recorded for `""`), `none` (no `/dev/shm`), `shareable` (a
//!   `/dev/shm` tmpfs the daemon mounts under `<exec-root>/shm/<id>`, which other containers
//!   may join), `host` (the host's namespace and `/dev/shm`), `container:NAME` (a running
//!   shareable or host-IPC container's namespace and `/dev/shm`).
//! - UTS: `""` or `host` (no hostname is set then; a `--hostname` with it is refused).
//!
//! `container:NAME` is recorded as `container:<ID>` at create, where the container must exist
//! (dockerd: `No such container: NAME`, 400); it must run when this one starts (`failed to
//! join PID namespace: container ID is not running`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_api::models::HostConfig;
use berth_runtime::{Namespace, NetworkMode, Shm};

use crate::container::{Doc, Entry};
use crate::error::{Error, Result};
use crate::Daemon;

/// The namespaces and `/dev/shm` of one start.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Namespaces {
    /// Set by the start once the network is set up.
    pub network: NetworkMode,
    pub pid: Namespace,
    pub ipc: Namespace,
    pub uts: Namespace,
    pub shm: Shm,
    /// A `shareable` container's own `/dev/shm`, which the daemon mounts before the start.
    pub own_shm: Option<PathBuf>,
    /// The namespaces joined (`pid`, `ipc`, `net`) and their inode when resolved: the start
    /// checks the new container is in those very ones (its donor may have exited meanwhile and
    /// its pid been reused).
    pub joined: Vec<(&'static str, u64)>,
}

/// The inode of the namespace at `path` (`/proc/<pid>/ns/<kind>`).
pub(crate) fn ns_inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

impl Namespaces {
    /// Records a namespace joined through `path` under `kind`.
    fn joining(&mut self, kind: &'static str, path: &Path) -> Result<()> {
        let ino = ns_inode(path).ok_or_else(|| {
            Error::internal(format!(
                "the {kind} namespace to join ({}) is gone",
                path.display()
            ))
        })?;
        self.joined.push((kind, ino));
        Ok(())
    }

    /// A `--network container:` join (its namespace resolved by the network set-up).
    pub(crate) fn joining_network(&mut self) -> Result<()> {
        if let NetworkMode::Path(p) = &self.network {
            if p.starts_with("/proc/") {
                let p = p.clone();
                self.joining("net", &p)?;
            }
        }
        Ok(())
    }

    /// Whether the container whose init is `pid` is in every namespace it was to join; the
    /// first one it is not in otherwise.
    pub(crate) fn check_joined(
        joined: &[(&'static str, u64)],
        pid: i32,
    ) -> std::result::Result<(), &'static str> {
        for (kind, ino) in joined {
            if ns_inode(Path::new(&format!("/proc/{pid}/ns/{kind}"))) != Some(*ino) {
                return Err(kind);
            }
        }
        Ok(())
    }
}

impl Daemon {
    /// The directory under which shareable containers' `/dev/shm` tmpfs are mounted.
    pub(crate) fn shm_dir(&self) -> PathBuf {
        self.config.exec_root.join("shm")
    }

    /// At create: checks the modes, records `container:NAME` as `container:<ID>` and an empty
    /// IPC mode as `private`, as dockerd does.
    pub(crate) fn check_namespace_modes(&self, host: &mut HostConfig, hostname_given: bool) -> Result<()> {
        let donor = |key: &str| -> Result<String> {
            self.find(key)
                .map(|e| e.id.clone())
                .map_err(|_| Error::invalid(format!("No such container: {key}")))
        };
        let pid = host.pid_mode.clone().unwrap_or_default();
        match pid.as_str() {
            "" | "host" => {}
            m => match m.strip_prefix("container:") {
                Some(key) if !key.is_empty() => host.pid_mode = Some(format!("container:{}", donor(key)?)),
                _ => return Err(Error::invalid(format!("invalid PID mode: {m}"))),
            },
        }
        let ipc = host.ipc_mode.clone().unwrap_or_default();
        match ipc.as_str() {
            "" => host.ipc_mode = Some("private".into()),
            "private" | "shareable" | "none" | "host" => {}
            m => match m.strip_prefix("container:") {
                Some(key) if !key.is_empty() => host.ipc_mode = Some(format!("container:{}", donor(key)?)),
                _ => return Err(Error::invalid(format!("invalid IPC mode: {m}"))),
            },
        }
        match host.uts_mode.as_deref().unwrap_or_default() {
            "" => {}
            "host" if hostname_given => {
                return Err(Error::invalid("conflicting options: hostname and the UTS mode"))
            }
            "host" => {}
            m => return Err(Error::invalid(format!("invalid UTS mode: {m}"))),
        }
        Ok(())
    }

    /// At start: the namespaces to make or join and the `/dev/shm` to mount, from the modes
    /// recorded at create.
    pub(crate) fn namespaces(&self, doc: &Doc) -> Result<Namespaces> {
        let h = &doc.host_config;
        let mut ns = Namespaces::default();
        let pid = h.pid_mode.clone().unwrap_or_default();
        ns.pid = match pid.as_str() {
            "host" => Namespace::Host,
            m if m.starts_with("container:") => {
                let key = &m["container:".len()..];
                let (_, init) = self
                    .running_donor(key)
                    .map_err(|e| with_context(e, "failed to join PID namespace"))?;
                let path = PathBuf::from(format!("/proc/{init}/ns/pid"));
                ns.joining("pid", &path)?;
                Namespace::Join(path)
            }
            // Checked at create: anything else is a record from before that check, whose mode
            // was never applied.
            _ => Namespace::Private,
        };
        let user_shm = doc
            .mounts
            .iter()
            .any(|m| Path::new(&m.target) == Path::new("/dev/shm"));
        let ipc = h.ipc_mode.clone().unwrap_or_default();
        (ns.ipc, ns.shm) = match ipc.as_str() {
            "" | "private" => (Namespace::Private, Shm::Private),
            "none" => (Namespace::Private, Shm::Absent),
            "shareable" if user_shm => (Namespace::Private, Shm::Private),
            "shareable" => {
                let dir = self.shm_dir().join(&doc.id);
                ns.own_shm = Some(dir.clone());
                (Namespace::Private, Shm::Bind(dir))
            }
            "host" => (Namespace::Host, Shm::Bind(host_shm()?)),
            m if m.starts_with("container:") => {
                let key = &m["container:".len()..];
                let join = |e| with_context(e, "failed to join IPC namespace");
                let (donor, init) = self.running_donor(key).map_err(join)?;
                let shm = self.shared_shm(&donor, 0).map_err(join)?;
                let path = PathBuf::from(format!("/proc/{init}/ns/ipc"));
                ns.joining("ipc", &path)?;
                (Namespace::Join(path), Shm::Bind(shm))
            }
            _ => (Namespace::Private, Shm::Private),
        };
        ns.uts = match h.uts_mode.as_deref().unwrap_or_default() {
            "host" => Namespace::Host,
            _ => Namespace::Private,
        };
        Ok(ns)
    }

    /// The running container `key` and its init's pid.
    fn running_donor(&self, key: &str) -> Result<(Arc<Entry>, i64)> {
        let donor = self
            .find(key)
            .map_err(|_| Error::invalid(format!("No such container: {key}")))?;
        let pid = donor.with(|d| d.state.pid);
        if !donor.status().is_running() || pid <= 0 {
            return Err(Error::internal(format!("container {} is not running", donor.id)));
        }
        Ok((donor, pid))
    }

    /// The `/dev/shm` a container joining `donor`'s IPC namespace binds: the donor's shareable
    /// tmpfs, the host's for a host-IPC donor, or its own donor's (a chain, followed a few
    /// steps at most).
    fn shared_shm(&self, donor: &Arc<Entry>, depth: usize) -> Result<PathBuf> {
        let non_shareable = || {
            Error::invalid(format!(
                "container {}: non-shareable IPC (hint: use IpcMode:shareable for the donor container)",
                donor.id
            ))
        };
        let mode = donor.with(|d| d.host_config.ipc_mode.clone().unwrap_or_default());
        match mode.as_str() {
            "shareable" => {
                let dir = self.shm_dir().join(&donor.id);
                // Made (and mounted) at its start, removed when it stops.
                if dir.is_dir() {
                    Ok(dir)
                } else {
                    Err(non_shareable())
                }
            }
            "host" => host_shm(),
            m if m.starts_with("container:") && depth < 8 => {
                let next = self.find(&m["container:".len()..]).map_err(|_| non_shareable())?;
                self.shared_shm(&next, depth + 1)
            }
            _ => Err(non_shareable()),
        }
    }

    /// Mounts a shareable container's `/dev/shm` at `dir` (`<exec-root>/shm/<id>`), under a
    /// shared mount so that shims started later see it and lose it with its unmount here.
    pub(crate) fn mount_own_shm(&self, dir: &Path, size: i64) -> Result<()> {
        // Two first shareable starts at once must not both bind the directory.
        static SHARED_DIR: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = SHARED_DIR.lock().unwrap_or_else(|e| e.into_inner());
        let shm_dir = self.shm_dir();
        berth_sys::mount::shared_dir(&shm_dir)
            .map_err(|e| Error::io(format!("cannot make {} a shared mount", shm_dir.display()), e))?;
        berth_sys::mount::mount_shm(dir, size)
            .map_err(|e| Error::io(format!("mounting shm tmpfs at {}", dir.display()), e))?;
        berth_sys::failpoint::hit("container.shm.mounted");
        Ok(())
    }

    /// Unmounts a shareable container's `/dev/shm` (at its exit or a failed start); nothing to
    /// do for any other container.
    pub(crate) fn release_own_shm(&self, id: &str) {
        let dir = self.shm_dir().join(id);
        if let Err(e) = berth_sys::mount::unmount_shm(&dir) {
            eprintln!("berthd: unmounting {}: {e}", dir.display());
        }
    }

    /// [`Self::release_own_shm`] for a shareable container (a stat for the others: nothing).
    pub(crate) fn release_own_shm_of(&self, entry: &Entry) {
        if entry.with(|d| d.host_config.ipc_mode.as_deref() == Some("shareable")) {
            self.release_own_shm(&entry.id);
        }
    }

    /// At daemon start: the `/dev/shm` mounts of containers that no longer run (a crash
    /// between the mount and the start, or an exit the daemon missed) go.
    pub(crate) fn sweep_shm(&self, running: &std::collections::HashSet<String>) -> usize {
        let Ok(rd) = std::fs::read_dir(self.shm_dir()) else {
            return 0;
        };
        let mut swept = 0;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !running.contains(&name) {
                self.release_own_shm(&name);
                swept += 1;
            }
        }
        swept
    }
}

/// The host's `/dev/shm`, which `--ipc host` binds.
fn host_shm() -> Result<PathBuf> {
    let p = PathBuf::from("/dev/shm");
    if p.is_dir() {
        Ok(p)
    } else {
        Err(Error::internal(
            "/dev/shm is not mounted, but must be for --ipc=host",
        ))
    }
}

/// `failed to join PID namespace: <why>`, keeping the error's kind.
fn with_context(e: Error, what: &str) -> Error {
    let msg = format!("{what}: {e}");
    match e.kind() {
        berth_types::ErrorKind::InvalidArgument => Error::invalid(msg),
        _ => Error::internal(msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process is in the namespaces it was to join only when their inodes match.
    #[test]
    fn joined_namespaces_are_checked_by_inode() {
        let me = std::process::id() as i32;
        let pid = ns_inode(Path::new("/proc/self/ns/pid")).unwrap();
        let ipc = ns_inode(Path::new("/proc/self/ns/ipc")).unwrap();
        assert_eq!(
            Namespaces::check_joined(&[("pid", pid), ("ipc", ipc)], me),
            Ok(())
        );
        assert_eq!(
            Namespaces::check_joined(&[("pid", pid), ("ipc", ipc + 1)], me),
            Err("ipc")
        );
        // A process that is gone is in none.
        assert_eq!(Namespaces::check_joined(&[("pid", pid)], i32::MAX), Err("pid"));
    }
}
