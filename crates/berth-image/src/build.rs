//! What Dockerfile builds need from the image store: a step's commit (a container's rw layer,
//! a given layer tar, or no layer) with the builder's config, probe config (`container_config`)
//! and history entry, and the children of an image (the classic builder's cache candidates).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};

use berth_archive::write_layer_tar;

use crate::config::{ConfigFile, ContainerConfig, History};
use crate::{now_rfc3339, Error, ImageService};

/// One build step to commit.
pub struct BuildCommit<'a> {
    /// The step's container: its rw layer becomes the layer (none if it changed nothing).
    pub container: Option<&'a str>,
    /// Or a layer tar (uncompressed).
    pub layer: Option<&'a mut dyn Read>,
    /// The image the step ran on (`None`: scratch).
    pub parent: Option<&'a str>,
    pub config: ContainerConfig,
    /// The step's probe config (`container_config`), which the cache compares.
    pub probe: ContainerConfig,
    pub created_by: String,
    /// `created` of the image and its history entry (RFC 3339); now when empty. When given
    /// (a reproducible build) the container's ID is not recorded either.
    pub created: String,
}

impl ImageService {
    /// Images whose parent is `image_id` (`""`: images without a parent).
    pub fn children(&self, image_id: &str) -> Result<Vec<String>, Error> {
        Ok(self.db.children(image_id)?)
    }

    /// The number of layers of an image.
    pub fn layer_count(&self, image_id: &str) -> Result<usize, Error> {
        Ok(self.db.image_layers(image_id)?.len())
    }

    /// Commits one build step as a new image, child of `parent`. Returns `sha256:<hex>`.
    /// Crash-consistent as `commit`: the layer tar is a temp file in the content store's ingest
    /// dir, then `create_image` (files first, then the record).
    pub fn build_commit(&self, step: BuildCommit<'_>) -> Result<String, Error> {
        let created = if step.created.is_empty() {
            now_rfc3339()
        } else {
            step.created.clone()
        };
        let mut cfg = ConfigFile::for_host(created.clone());
        let parent_id = match step.parent {
            Some(p) => {
                let id = self.resolve(p)?.id;
                let parent = self.config_file(&id)?;
                cfg.architecture = parent.architecture.clone();
                cfg.os = parent.os.clone();
                cfg.variant = parent.variant.clone();
                cfg.history = parent.history.clone();
                Some(id)
            }
            None => None,
        };
        cfg.config = step.config;
        cfg.config.image = parent_id.clone().unwrap_or_default();
        let mut probe = step.probe;
        probe.image = parent_id.clone().unwrap_or_default();
        cfg.container_config = Some(probe);
        if step.created.is_empty() {
            cfg.container = step.container.unwrap_or_default().to_string();
        }

        let mut tmp_file = None;
        if let Some(cid) = step.container {
            let upper = self.snapshots.upper_dir(cid)?;
            let path = self.content.root().join("ingest").join(format!(
                "build-{}-{}",
                std::process::id(),
                cid.get(..12).unwrap_or(cid)
            ));
            let io_err = |err| Error::Read {
                what: "build step changes",
                err,
            };
            let file = File::options()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(io_err)?;
            let guard = TempPath(path);
            let mut w = BufWriter::new(file);
            let entries = write_layer_tar(&upper, &mut w)?;
            let mut file = w.into_inner().map_err(|e| io_err(e.into_error()))?;
            file.flush().map_err(io_err)?;
            file.rewind().map_err(io_err)?;
            berth_sys::failpoint::hit("build.step.layer-written");
            if entries > 0 {
                tmp_file = Some((guard, BufReader::new(file)));
            }
        }
        let mut layers: Vec<&mut dyn Read> = Vec::new();
        if let Some((_, r)) = tmp_file.as_mut() {
            layers.push(r);
        }
        if let Some(l) = step.layer {
            layers.push(l);
        }
        cfg.history.push(History {
            created,
            created_by: step.created_by,
            empty_layer: layers.is_empty(),
            ..Default::default()
        });
        self.create_image(parent_id.as_deref(), cfg, &mut layers, None)
    }
}

/// Removes a temporary file when dropped.
struct TempPath(std::path::PathBuf);

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_meta::Db;

    fn tar_of(path: &str, data: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append(&h, data).unwrap();
        b.into_inner().unwrap()
    }

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    #[test]
    fn build_steps_chain_as_children_with_their_probe_config_and_history() {
        if !is_root() {
            eprintln!("skipped: requires root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("berth.db")).unwrap();
        let svc = ImageService::open(dir.path(), db).unwrap();
        let probe = |c: &str| ContainerConfig {
            cmd: Some(vec!["/bin/sh".into(), "-c".into(), c.into()]),
            ..Default::default()
        };
        let mut layer = &tar_of("f", b"x")[..];
        let first = svc
            .build_commit(BuildCommit {
                container: None,
                layer: Some(&mut layer),
                parent: None,
                config: ContainerConfig::default(),
                probe: probe("#(nop) COPY file:x in /f "),
                created_by: "/bin/sh -c #(nop) COPY file:x in /f ".into(),
                created: "2023-11-14T22:13:20Z".into(),
            })
            .unwrap();
        let cfg = ContainerConfig {
            labels: Some([("a".to_string(), "b".to_string())].into()),
            ..Default::default()
        };
        let second = svc
            .build_commit(BuildCommit {
                container: None,
                layer: None,
                parent: Some(&first),
                config: cfg.clone(),
                probe: probe("#(nop)  LABEL a=b"),
                created_by: "/bin/sh -c #(nop)  LABEL a=b".into(),
                created: "2023-11-14T22:13:20Z".into(),
            })
            .unwrap();
        assert_eq!(svc.children(&first).unwrap(), vec![second.clone()]);
        assert_eq!(svc.children("").unwrap(), vec![first.clone()]);
        assert_eq!(svc.layer_count(&second).unwrap(), 1);
        let c = svc.config_file(&second).unwrap();
        assert_eq!(c.config.labels, cfg.labels);
        assert_eq!(c.config.image, first);
        assert_eq!(c.container_config.unwrap().cmd, probe("#(nop)  LABEL a=b").cmd);
        assert_eq!(c.history.len(), 2);
        assert!(!c.history[0].empty_layer);
        assert!(c.history[1].empty_layer);
        assert_eq!(c.created, "2023-11-14T22:13:20Z");
        assert!(c.container.is_empty());
    }
}
