//! A container's filesystem changes: `docker diff` and `docker commit`.
//!
//! The container's rw layer is the active snapshot keyed by its ID (see
//! [`ImageService::prepare_rootfs`]): its `fs` dir is the overlay upper dir, its lowers are the
//! image's layers. Both calls read the upper dir directly, so they work whether or not the
//! container's overlay is mounted; while the container runs, the daemon pauses it (docker's
//! `--pause`, the default) for a consistent commit.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Seek, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use berth_archive::write_layer_tar;
use berth_snapshot::Change;

use crate::config::{ContainerConfig, Empty, History};
use crate::create::parse_tag;
use crate::{changes, now_rfc3339, ConfigFile, Error, ImageConfig, ImageService};

static COMMIT_SEQ: AtomicU64 = AtomicU64::new(0);

/// `docker commit` options (`POST /commit?container=…&repo=…&tag=…&comment=…&author=…&changes=…`).
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// `repo[:tag]` to tag the new image with.
    pub repo_tag: Option<String>,
    /// `-m`: the image's and the history entry's `comment`.
    pub comment: String,
    /// `-a`: the image's and the history entry's `author`.
    pub author: String,
    /// `-c`: Dockerfile lines applied to `config` (as import takes them).
    pub changes: Vec<String>,
    /// The container's effective config (its `Config`: cmd, entrypoint, env, workdir, user,
    /// labels, exposed ports, volumes, stop signal): the new image's config before `changes`.
    /// Its `cmd` also becomes the history entry's `created_by`, as docker records it.
    pub config: ImageConfig,
    /// The container's whole config as inspect shows it (hostname, tty, …): the image's
    /// `container_config`, as dockerd records it. Without it, `config` before the changes.
    pub container_config: Option<ContainerConfig>,
}

impl From<&ImageConfig> for ContainerConfig {
    fn from(c: &ImageConfig) -> Self {
        ContainerConfig {
            env: (!c.env.is_empty()).then(|| c.env.clone()),
            cmd: c.cmd.clone(),
            entrypoint: c.entrypoint.clone(),
            working_dir: c.working_dir.clone(),
            user: c.user.clone(),
            labels: (!c.labels.is_empty()).then(|| c.labels.clone()),
            exposed_ports: (!c.exposed_ports.is_empty())
                .then(|| c.exposed_ports.iter().map(|p| (p.clone(), Empty {})).collect()),
            volumes: (!c.volumes.is_empty())
                .then(|| c.volumes.iter().map(|v| (v.clone(), Empty {})).collect()),
            stop_signal: c.stop_signal.clone(),
            ..Default::default()
        }
    }
}

/// Removes a temporary file when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

impl ImageService {
    /// `docker diff`: what the container changed in its image's filesystem, sorted by path.
    /// `Change` serialises as docker's `{"Path":"/tmp","Kind":0}`.
    pub fn changes(&self, container_id: &str) -> Result<Vec<Change>, Error> {
        let upper = self.snapshots.upper_dir(container_id)?;
        let lowers = self.snapshots.lower_dirs(container_id)?;
        Ok(berth_snapshot::changes(&upper, &lowers)?)
    }

    /// The image a container was created from (its row in the database).
    fn container_image(&self, container_id: &str) -> Result<String, Error> {
        self.db
            .container(container_id)?
            .map(|c| c.image_id)
            .ok_or_else(|| Error::NoSuchContainer(container_id.to_string()))
    }

    /// `docker commit`: a new image made of the container's image's layers plus one layer holding
    /// exactly the container's changes (none if it changed nothing: the history entry is then
    /// an `empty_layer`). The layer is generated from the rw layer (whiteouts as `.wh.` entries,
    /// opaque directories as `.wh..wh..opq`), stored as a blob and unpacked into a new committed
    /// snapshot; the container keeps its own rw layer. `parent` is the container's image. Tags it
    /// with `repo_tag`. Crash-consistent like import. Returns `sha256:<hex>`.
    pub fn commit(&self, container_id: &str, opts: &CommitOptions) -> Result<String, Error> {
        let tag = opts
            .repo_tag
            .as_deref()
            .map(parse_tag)
            .transpose()?
            .map(|r| r.to_string());
        let image_id = self.container_image(container_id)?;
        let parent = self.config_file(&image_id)?;
        let created = now_rfc3339();
        let mut cfg = ConfigFile::for_host(created.clone());
        cfg.architecture = parent.architecture.clone();
        cfg.os = parent.os.clone();
        cfg.variant = parent.variant.clone();
        cfg.config = ContainerConfig::from(&opts.config);
        // As dockerd: `container_config` is the container's own config, before the changes.
        cfg.container_config = Some(
            opts.container_config
                .clone()
                .unwrap_or_else(|| cfg.config.clone()),
        );
        cfg.config.image = image_id.clone();
        changes::apply_changes(&mut cfg.config, &opts.changes).map_err(Error::InvalidArgument)?;
        cfg.author = opts.author.clone();
        cfg.comment = opts.comment.clone();
        cfg.container = container_id.to_string();
        cfg.history = parent.history.clone();

        // The layer: written to a file under the content store's ingest dir (removed at open if
        // a crash leaves it), then imported like any layer.
        let upper = self.snapshots.upper_dir(container_id)?;
        let tmp = TempFile(self.content.root().join("ingest").join(format!(
            "commit-{}-{}",
            std::process::id(),
            COMMIT_SEQ.fetch_add(1, Ordering::Relaxed)
        )));
        let io_err = |err| Error::Read {
            what: "container changes",
            err,
        };
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp.0)
            .map_err(io_err)?;
        let mut w = BufWriter::new(file);
        let entries = write_layer_tar(&upper, &mut w)?;
        let mut file = w.into_inner().map_err(|e| io_err(e.into_error()))?;
        file.flush().map_err(io_err)?;
        file.rewind().map_err(io_err)?;
        berth_sys::failpoint::hit("image.commit.layer-written");

        cfg.history.push(History {
            created,
            created_by: opts.config.cmd.as_deref().unwrap_or_default().join(" "),
            author: opts.author.clone(),
            comment: opts.comment.clone(),
            empty_layer: entries == 0,
        });
        let mut reader = BufReader::new(file);
        let mut layers: Vec<&mut dyn std::io::Read> = Vec::new();
        if entries > 0 {
            layers.push(&mut reader);
        }
        self.create_image(Some(&image_id), cfg, &mut layers, tag.as_deref())
    }
}
