//! The container's filesystem through the API: `diff` (changes), `export`, `cp` (archive
//! stat/get/put) and `commit`.
//!
//! These need the container's merged root. A running container has it mounted by its shim at
//! `<bundle>/rootfs`; otherwise the daemon mounts the same overlay there for the duration of the
//! call. Either way the container's operation lock is held, so no start, stop or removal
//! interleaves.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_image::{Change, CommitOptions, ContainerFs, ImageConfig, PathStat, PutOptions};
use berth_shim_proto::Request;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::container::Entry;
use crate::error::{blocking, Error, Result};
use crate::{shim, Daemon};

/// A `Write` that hands each chunk to an async body (blocking send; used on blocking threads).
pub struct ChannelWriter(pub mpsc::Sender<Bytes>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Daemon {
    /// Runs `job` on a blocking thread with the container's merged root, holding its op lock;
    /// with the container's binds and volumes visible at their targets when `with_mounts` (for `cp`, which must reach into them as docker's does). A
    /// running container's root is then its own view (`/proc/<pid>/root`, where its mounts
    /// already are); for a stopped one the daemon bind-mounts each source onto its target,
    /// the target resolved inside the root (a symlink planted by the container cannot send the
    /// mount outside it), and takes them down after the job.
    async fn on_root<T, F>(self: &Arc<Self>, entry: &Arc<Entry>, with_mounts: bool, job: F) -> Result<T>
    where
        F: FnOnce(&Path) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let _op = entry.op.lock().await;
        let mut merged: PathBuf = self.bundle(&entry.id).join("rootfs");
        let pid = entry.with(|d| d.state.pid);
        let running = entry.status().is_running();
        if running && with_mounts && pid > 0 {
            merged = PathBuf::from(format!("/proc/{pid}/root"));
        } else if running {
            // The shim mounted the rootfs in its own mount namespace: reach it from there.
            let shim = crate::shim::pid(&self.shim_socket(&entry.id)).await?;
            let inside = merged.strip_prefix("/").unwrap_or(&merged).to_path_buf();
            merged = PathBuf::from(format!("/proc/{shim}/root")).join(inside);
        }
        let mounts = if running {
            None
        } else {
            let images = self.images.clone();
            let id = entry.id.clone();
            Some(blocking(move || images.rootfs_mounts(&id).map_err(Error::from)).await?)
        };
        let user_mounts: Vec<berth_types::MountPoint> = if with_mounts && !running {
            entry.with(|d| d.mounts.clone())
        } else {
            Vec::new()
        };
        blocking(move || {
            if let Some(m) = &mounts {
                std::fs::create_dir_all(&merged)
                    .map_err(|e| Error::io(format!("cannot create {}", merged.display()), e))?;
                berth_sys::mount::mount_all(m, &merged).map_err(Error::Mount)?;
            }
            let r = match bind_user_mounts(&merged, &user_mounts) {
                Ok(()) => job(&merged),
                Err(e) => Err(e),
            };
            if mounts.is_some() {
                for m in berth_sys::mount::mounts_under(&merged).unwrap_or_default() {
                    if let Err(e) = berth_sys::mount::unmount(&m) {
                        eprintln!("berthd: unmount {}: {e}", m.display());
                    }
                }
            }
            r
        })
        .await
    }

    /// Streams what `job` writes as a response body; `job` first reports a header value (or an
    /// error, which becomes the HTTP error) through the oneshot.
    async fn stream_rootfs<M, F>(
        self: &Arc<Self>,
        entry: Arc<Entry>,
        with_mounts: bool,
        job: F,
    ) -> Result<(M, mpsc::Receiver<Bytes>)>
    where
        F: FnOnce(&Path, oneshot::Sender<Result<M>>, &mut ChannelWriter) + Send + 'static,
        M: Send + 'static,
    {
        let (tx, rx) = mpsc::channel(16);
        let (meta_tx, meta_rx) = oneshot::channel();
        let daemon = self.clone();
        tokio::spawn(async move {
            let r = daemon
                .on_root(&entry, with_mounts, move |merged| {
                    let mut w = ChannelWriter(tx);
                    job(merged, meta_tx, &mut w);
                    Ok(())
                })
                .await;
            if let Err(e) = r {
                eprintln!("berthd: {e}");
            }
        });
        match meta_rx.await {
            Ok(Ok(m)) => Ok((m, rx)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::internal("the container's filesystem could not be read")),
        }
    }

    /// `GET /containers/{id}/changes`.
    pub async fn changes(self: &Arc<Self>, key: &str) -> Result<Vec<Change>> {
        let entry = self.find(key)?;
        let images = self.images.clone();
        let id = entry.id.clone();
        blocking(move || images.changes(&id).map_err(Error::from)).await
    }

    /// `GET /containers/{id}/export`: the flattened root filesystem as a tar stream.
    pub async fn export(self: &Arc<Self>, key: &str) -> Result<mpsc::Receiver<Bytes>> {
        let entry = self.find(key)?;
        self.events
            .emit("container", "export", &entry.id, self.container_attrs(&entry));
        let ((), rx) = self
            .stream_rootfs(entry, false, |merged, meta, w| {
                let _ = meta.send(Ok(()));
                if let Err(e) = berth_image::export_tar(merged, w) {
                    eprintln!("berthd: export: {e}");
                }
            })
            .await?;
        Ok(rx)
    }

    /// `HEAD /containers/{id}/archive`.
    pub async fn archive_stat(self: &Arc<Self>, key: &str, path: &str) -> Result<PathStat> {
        let entry = self.find(key)?;
        let (name, path) = (key.to_string(), path.to_string());
        self.on_root(&entry, true, move |merged| {
            Ok(ContainerFs::new(merged, &name).stat(&path)?)
        })
        .await
    }

    /// `GET /containers/{id}/archive`: the path's stat (for the header) and a tar stream of it.
    pub async fn archive_get(
        self: &Arc<Self>,
        key: &str,
        path: &str,
    ) -> Result<(PathStat, mpsc::Receiver<Bytes>)> {
        let entry = self.find(key)?;
        let (name, path) = (key.to_string(), path.to_string());
        self.stream_rootfs(entry, true, move |merged, meta, w| {
            let fs = ContainerFs::new(merged, &name);
            match fs.stat(&path) {
                Ok(st) => {
                    let _ = meta.send(Ok(st));
                    if let Err(e) = fs.get(&path, w) {
                        eprintln!("berthd: archive get: {e}");
                    }
                }
                Err(e) => {
                    let _ = meta.send(Err(e.into()));
                }
            }
        })
        .await
    }

    /// `PUT /containers/{id}/archive`: extracts a tar into a directory of the container.
    pub async fn archive_put(
        self: &Arc<Self>,
        key: &str,
        path: &str,
        src: Box<dyn Read + Send>,
        opts: PutOptions,
    ) -> Result<()> {
        let entry = self.find(key)?;
        if entry.with(|d| d.host_config.readonly_rootfs.unwrap_or(false)) {
            return Err(Error::InvalidState("container rootfs is marked read-only".into()));
        }
        let (name, path) = (key.to_string(), path.to_string());
        self.on_root(&entry, true, move |merged| {
            let mut src = src;
            Ok(ContainerFs::new(merged, &name).put(&path, &mut src, opts)?)
        })
        .await
    }

    /// `POST /commit`: a new image from the container's changes.
    pub async fn commit(
        self: &Arc<Self>,
        key: &str,
        repo_tag: Option<String>,
        comment: String,
        author: String,
        changes: Vec<String>,
        pause: bool,
    ) -> Result<String> {
        let entry = self.find(key)?;
        let doc = entry.doc();
        let c = &doc.config;
        let config = ImageConfig {
            env: c.env.clone().unwrap_or_default(),
            cmd: c.cmd.clone(),
            entrypoint: c.entrypoint.clone(),
            working_dir: c.working_dir.clone().unwrap_or_default(),
            user: c.user.clone().unwrap_or_default(),
            labels: c.labels.clone().unwrap_or_default().into_iter().collect(),
            exposed_ports: c.exposed_ports.clone().unwrap_or_default(),
            volumes: c.volumes.clone().unwrap_or_default(),
            stop_signal: c.stop_signal.clone(),
        };
        let opts = CommitOptions {
            repo_tag: repo_tag.clone(),
            comment,
            author,
            changes,
            config,
            // The API's container config and the image's are the same JSON document.
            container_config: serde_json::to_value(&doc.config)
                .ok()
                .and_then(|v| serde_json::from_value(v).ok()),
        };
        // Freeze a running container so the layer is a consistent snapshot (docker's default).
        // As dockerd, a pause that fails does not fail the commit: the container may have exited
        // (its shim answering "not running", or gone) between the check and the request.
        let socket = self.shim_socket(&entry.id);
        let paused = pause
            && entry.status() == crate::container::Status::Running
            && match shim::call(&socket, &Request::Pause).await {
                Ok(r) if r.error.is_none() => true,
                Ok(r) => {
                    let e = r.error.unwrap_or_default();
                    eprintln!("berthd: commit {}: not paused: {e}", entry.id);
                    false
                }
                Err(e) => {
                    eprintln!("berthd: commit {}: not paused: {e}", entry.id);
                    false
                }
            };
        let images = self.images.clone();
        let id = entry.id.clone();
        let result = blocking(move || images.commit(&id, &opts).map_err(Error::from)).await;
        if paused {
            let _ = shim::call(&socket, &Request::Resume).await;
        }
        let image_id = result?;
        let mut attrs = self.container_attrs(&entry);
        attrs.insert("comment".into(), String::new());
        self.events.emit("container", "commit", &entry.id, attrs);
        if let Some(t) = repo_tag {
            self.emit_tag(&image_id, &t);
        }
        Ok(image_id)
    }

    /// `GET /images/get`: a docker-save tar of the named images.
    pub async fn save_images(self: &Arc<Self>, names: Vec<String>) -> Result<mpsc::Receiver<Bytes>> {
        // Resolve first so a missing image is a proper 404, not a truncated tar.
        // dockerd's words: a tagged or digested reference that does not exist is the reference
        // store's "reference does not exist"; a bare name is "No such image: NAME" as given.
        for n in &names {
            let images = self.images.clone();
            let name = n.clone();
            let r = blocking(move || images.resolve(&name).map(|_| ()).map_err(Error::from)).await;
            match r {
                Err(e) if e.kind() == berth_types::ErrorKind::NotFound => {
                    let last = n.rsplit('/').next().unwrap_or(n);
                    return Err(if last.contains(':') || last.contains('@') {
                        Error::Missing("reference does not exist".into())
                    } else {
                        Error::not_found("image", n.clone())
                    });
                }
                r => r?,
            }
        }
        let (tx, rx) = mpsc::channel(16);
        let images = self.images.clone();
        tokio::task::spawn_blocking(move || {
            let mut w = ChannelWriter(tx);
            if let Err(e) = images.save(&names, &mut w) {
                eprintln!("berthd: save: {e}");
            }
        });
        Ok(rx)
    }

    /// `POST /images/load`: returns the "Loaded image…" lines.
    pub async fn load_images(self: &Arc<Self>, src: Box<dyn Read + Send>) -> Result<Vec<String>> {
        let images = self.images.clone();
        let lines = blocking(move || {
            let mut src = src;
            images.load(&mut src, &mut |_| {}).map_err(Error::from)
        })
        .await?;
        for l in &lines {
            let name = l.rsplit(": ").next().unwrap_or_default().to_string();
            let mut a = std::collections::BTreeMap::new();
            a.insert("name".to_string(), name.clone());
            self.events.emit("image", "load", &name, a);
        }
        Ok(lines)
    }
}

/// Bind-mounts the binds and volumes of a stopped container onto its root at `merged`, parents
/// first; each target is opened inside the root (`RESOLVE_IN_ROOT`) and mounted on through its
/// fd, so no symlink in the container's layers can place a mount outside `merged`.
fn bind_user_mounts(merged: &Path, mounts: &[berth_types::MountPoint]) -> Result<()> {
    let mut sorted: Vec<&berth_types::MountPoint> = mounts
        .iter()
        .filter(|m| m.kind != berth_types::MountType::Tmpfs && !m.source.is_empty())
        .collect();
    sorted.sort_by_key(|m| Path::new(&m.target).components().count());
    for m in sorted {
        let target = match berth_image::open_in_root(merged, &m.target) {
            Ok(f) => f,
            // The container removed its mount point: nothing to show there.
            Err(_) => continue,
        };
        let via = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&target));
        let mut opts = vec!["rbind".to_string()];
        if m.read_only {
            opts.push("ro".into());
        }
        let bind = berth_types::Mount {
            kind: "bind".into(),
            source: m.source.clone(),
            options: opts,
        };
        berth_sys::mount::mount_all(&[bind], Path::new(&via)).map_err(Error::Mount)?;
    }
    Ok(())
}
