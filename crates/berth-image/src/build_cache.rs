//! `--cache-from`: the classic builder's history-based cache (moby's `image/cache`). A source
//! image (a pulled or loaded image, which has no local parent chain) can answer a build step
//! when the step's parent is a prefix of it (same history entries, same layer diff IDs) and the
//! source's next history entry was created by the step's command. The step's result is then
//! the parent plus that entry (and its layer, already in the store with the source), or, when
//! that entry is the source's last, the source image itself.

use berth_meta::ImageRow;

use crate::config::{ConfigFile, ContainerConfig, History};
use crate::{Error, ImageService};

/// What a `--cache-from` lookup found for a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheFromHit {
    /// The step consumes the source's last history entry: the source image is the result.
    Source(String),
    /// An image restored from the parent and the source's next entry (the source keeps
    /// answering the following steps).
    Restored(String),
}

/// moby's `isValidParent`: `parent`'s history and diff IDs are a strict prefix of `img`'s (no
/// parent, or an empty one, fits every image with a history).
pub fn is_valid_parent(img: &ConfigFile, parent: Option<&ConfigFile>) -> bool {
    if img.history.is_empty() {
        return false;
    }
    let Some(parent) = parent else { return true };
    if parent.history.is_empty() && parent.rootfs.diff_ids.is_empty() {
        return true;
    }
    parent.history.len() < img.history.len()
        && parent.rootfs.diff_ids.len() <= img.rootfs.diff_ids.len()
        && parent.history.iter().zip(&img.history).all(|(a, b)| a == b)
        && parent
            .rootfs
            .diff_ids
            .iter()
            .zip(&img.rootfs.diff_ids)
            .all(|(a, b)| a == b)
}

/// The layers of the first `n` history entries (moby's `getLayerForHistoryIndex` position).
fn layers_before(history: &[History], n: usize) -> usize {
    history[..n].iter().filter(|h| !h.empty_layer).count()
}

impl ImageService {
    /// Whether `ancestor` is on `id`'s parent chain (not `id` itself), as moby's `isParent`.
    pub fn is_ancestor(&self, id: &str, ancestor: &str) -> Result<bool, Error> {
        let mut cur = id.to_string();
        // A chain longer than any image's layer limit is a loop in damaged records: stop.
        for _ in 0..4096 {
            let Some(ImageRow { parent, .. }) = self.db.image(&cur)? else {
                return Ok(false);
            };
            if parent.is_empty() {
                return Ok(false);
            }
            if parent == ancestor {
                return Ok(true);
            }
            cur = parent;
        }
        Ok(false)
    }

    /// Looks a build step up in the `--cache-from` sources (in order): the first source the
    /// parent fits whose next history entry was created by `created_by`. `config` is the step's
    /// probe config, which a restored image carries as its config, as docker's does.
    pub fn cache_from_lookup(
        &self,
        parent: Option<&str>,
        sources: &[String],
        created_by: &str,
        config: &ContainerConfig,
    ) -> Result<Option<(String, CacheFromHit)>, Error> {
        let parent_cfg = parent.map(|p| self.config_file(p)).transpose()?;
        let len = parent_cfg.as_ref().map_or(0, |p| p.history.len());
        for source in sources {
            let Ok(src) = self.config_file(source) else {
                continue;
            };
            if !is_valid_parent(&src, parent_cfg.as_ref()) {
                continue;
            }
            let Some(next) = src.history.get(len) else {
                continue;
            };
            if next.created_by != created_by {
                continue;
            }
            // The entry's layer must be the one right above the parent's (moby appends the
            // source's layer at that history position to the parent's rootfs; in a consistent
            // image they are the same).
            let parent_layers = parent_cfg.as_ref().map_or(0, |p| p.rootfs.diff_ids.len());
            if !next.empty_layer && layers_before(&src.history, len) != parent_layers {
                continue;
            }
            if len + 1 == src.history.len() {
                if let Some(p) = parent {
                    self.db.set_image_parent(source, p)?;
                }
                return Ok(Some((source.clone(), CacheFromHit::Source(source.clone()))));
            }
            let id = self.restore_cached(parent, parent_cfg.as_ref(), source, &src, len, config)?;
            return Ok(Some((source.clone(), CacheFromHit::Restored(id))));
        }
        Ok(None)
    }

    /// moby's `restoreCachedImage`: the parent's history and layers plus the source's entry at
    /// `index` (and its layer unless it is an empty one), with `config`. The layer is the
    /// source's, already in the store: only a config blob and a record are written (files
    /// first, then the record, as every image).
    fn restore_cached(
        &self,
        parent: Option<&str>,
        parent_cfg: Option<&ConfigFile>,
        source: &str,
        src: &ConfigFile,
        index: usize,
        config: &ContainerConfig,
    ) -> Result<String, Error> {
        let entry = src.history[index].clone();
        let mut history = parent_cfg.map(|p| p.history.clone()).unwrap_or_default();
        history.push(entry.clone());
        let source_layers = self.db.image_layers(source)?;
        let mut count = parent_cfg.map_or(0, |p| p.rootfs.diff_ids.len());
        if !entry.empty_layer {
            count += 1;
        }
        let chain = source_layers.get(..count).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "cache source {source} has fewer layers than its history names"
            ))
        })?;
        let mut cfg = ConfigFile::for_host(entry.created.clone());
        cfg.architecture = src.architecture.clone();
        cfg.os = src.os.clone();
        cfg.variant = src.variant.clone();
        cfg.author = src.author.clone();
        cfg.config = config.clone();
        cfg.history = history;
        cfg.rootfs.kind = "layers".into();
        cfg.rootfs.diff_ids = chain.iter().map(|l| l.diff_id.clone()).collect();
        let bytes = serde_json::to_vec(&cfg).expect("config serialises");
        let _g = self.lock();
        let id = self.content.write_blob(&bytes)?.to_string();
        berth_sys::failpoint::hit("image.create.config-written");
        let now = berth_types::time::now_nanos();
        let row = ImageRow {
            id: id.clone(),
            created: cfg.created.clone(),
            size: chain.iter().map(|l| l.size).sum(),
            parent: parent.map(|p| p.to_string()).unwrap_or_default(),
            last_tag_time: None,
            added: now,
        };
        self.db.insert_image(&row, chain, &[])?;
        berth_sys::failpoint::hit("image.create.committed");
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(entries: &[(&str, bool)], diffs: &[&str]) -> ConfigFile {
        let mut c = ConfigFile::for_host("2024-01-01T00:00:00Z".into());
        c.history = entries
            .iter()
            .map(|(by, empty)| History {
                created: "2024-01-01T00:00:00Z".into(),
                created_by: by.to_string(),
                empty_layer: *empty,
                ..Default::default()
            })
            .collect();
        c.rootfs.diff_ids = diffs.iter().map(|d| d.to_string()).collect();
        c
    }

    #[test]
    fn a_valid_parent_is_a_strict_prefix_of_history_and_layers() {
        let base = image(&[("ADD rootfs", false)], &["sha256:a"]);
        let src = image(
            &[("ADD rootfs", false), ("ENV A=1", true), ("RUN x", false)],
            &["sha256:a", "sha256:b"],
        );
        assert!(is_valid_parent(&src, Some(&base)));
        assert!(is_valid_parent(&src, None));
        // Itself is not a parent (no next entry), nor one with another layer or history.
        assert!(!is_valid_parent(&src, Some(&src)));
        assert!(!is_valid_parent(
            &src,
            Some(&image(&[("ADD rootfs", false)], &["sha256:z"]))
        ));
        assert!(!is_valid_parent(
            &src,
            Some(&image(&[("ADD other", false)], &["sha256:a"]))
        ));
        // An image with no history answers nothing.
        assert!(!is_valid_parent(&image(&[], &[]), None));
        assert_eq!(layers_before(&src.history, 2), 1);
    }
}
