//! Keeping the store tidy: image history, image and container prune, and `system df`, with
//! dockerd's events (`untag`/`delete` per image and `destroy` per container as rmi and rm emit
//! them, then one `prune` with `reclaimed` bytes and an empty actor ID).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use berth_image::{HistoryItem, PruneReport};

use crate::container::ListOptions;
use crate::error::{blocking, Error, Result};
use crate::Daemon;

/// The filters a container prune accepts.
const CONTAINER_FILTERS: &[&str] = &["label", "label!", "until"];

/// What a container prune did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainersPruneReport {
    /// Full IDs of the removed containers.
    pub deleted: Vec<String>,
    /// Bytes of their rw layers.
    pub space_reclaimed: u64,
}

/// Resets a "prune running" flag when the prune ends, however it ends.
struct Running<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Daemon {
    /// `docker history`.
    pub async fn image_history(self: &Arc<Self>, name: &str) -> Result<Vec<HistoryItem>> {
        let images = self.images.clone();
        let n = name.to_string();
        blocking(move || images.history(&n).map_err(Error::from)).await
    }

    /// `docker image prune` (`POST /images/prune`).
    pub async fn prune_images(
        self: &Arc<Self>,
        filters: BTreeMap<String, Vec<String>>,
    ) -> Result<PruneReport> {
        let images = self.images.clone();
        let daemon = self.clone();
        let report = blocking(move || {
            images
                .prune(&filters, &|cid| daemon.is_running(cid))
                .map_err(Error::from)
        })
        .await?;
        for w in &report.warnings {
            eprintln!("berthd: {w}");
        }
        self.emit_image_removals(&report.images_deleted, None);
        self.emit_prune("image", report.space_reclaimed);
        Ok(report)
    }

    /// `docker container prune` (`POST /containers/prune`): every container that is not running
    /// (created, exited, dead), created before `until`, whose labels match `label`/`label!`,
    /// removed as `docker rm` removes it (each removal crash-safe on its own). A container that
    /// cannot be removed (it started meanwhile, its files resist) is skipped and logged, as
    /// dockerd does.
    pub async fn prune_containers(
        self: &Arc<Self>,
        filters: BTreeMap<String, Vec<String>>,
    ) -> Result<ContainersPruneReport> {
        if self
            .pruning
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(Error::conflict("a prune operation is already running"));
        }
        let _running = Running(&self.pruning);
        berth_image::validate_filters(&filters, CONTAINER_FILTERS)?;
        let until = berth_image::until_filter(&filters, berth_types::time::now_nanos())?;
        let mut report = ContainersPruneReport::default();
        let mut all = self.all();
        all.reverse(); // newest first, as `ps` lists them
        for entry in all {
            let (created, labels) = entry.with(|d| (d.created, d.config.labels.clone().unwrap_or_default()));
            if entry.status().is_running()
                || until.is_some_and(|u| created > u)
                || !berth_image::match_labels(&filters, &labels.into_iter().collect())
            {
                continue;
            }
            let images = self.images.clone();
            let id = entry.id.clone();
            let size = blocking(move || Ok(images.rw_size(&id).unwrap_or(0))).await?;
            match self.remove_entry(&entry, false, false).await {
                Ok(()) => {
                    report.space_reclaimed += size;
                    report.deleted.push(entry.id.clone());
                }
                Err(e) => eprintln!("berthd: failed to prune container {}: {e}", entry.id),
            }
        }
        self.emit_prune("container", report.space_reclaimed);
        Ok(report)
    }

    /// `GET /system/df`: dockerd's `DiskUsage` document. `Images` and `LayersSize` as
    /// [`berth_image::ImageService::disk_usage`] computes them; `Containers` as
    /// `/containers/json?all=1` with `SizeRootFs` (rw layer + image) and `SizeRw` (left out when
    /// 0, as dockerd leaves it out); `Volumes` with their `UsageData`; no build cache yet
    /// (`null`, 0).
    pub async fn disk_usage(self: &Arc<Self>) -> Result<serde_json::Value> {
        let images = self.images.clone();
        let du = blocking(move || images.disk_usage().map_err(Error::from)).await?;
        let mut containers = self.list_containers(&ListOptions {
            all: true,
            ..Default::default()
        })?;
        let image_sizes: HashMap<String, i64> = du.images.iter().map(|i| (i.id.clone(), i.size)).collect();
        let images = self.images.clone();
        let ids: Vec<(String, String)> = containers
            .iter()
            .map(|c| {
                (
                    c.id.clone().unwrap_or_default(),
                    c.image_id.clone().unwrap_or_default(),
                )
            })
            .collect();
        // The rw layers are walked (as dockerd does); the image sizes come from the listing,
        // and only an image it leaves out (intermediate, or gone) is looked up on its own.
        let sizes = blocking(move || {
            Ok(ids
                .iter()
                .map(|(id, image)| {
                    let rw = images.rw_size(id).unwrap_or(0) as i64;
                    let image = image_sizes
                        .get(image)
                        .copied()
                        .unwrap_or_else(|| images.inspect(image).ok().and_then(|i| i.size).unwrap_or(0));
                    (rw, rw + image)
                })
                .collect::<Vec<_>>())
        })
        .await?;
        for (c, (rw, root)) in containers.iter_mut().zip(sizes) {
            c.size_rw = (rw != 0).then_some(rw);
            c.size_root_fs = Some(root);
        }
        Ok(serde_json::json!({
            "LayersSize": du.layers_size,
            "Images": du.images,
            "Containers": containers,
            "Volumes": self.volume_usage()?,
            "BuildCache": null,
            "BuilderSize": 0,
        }))
    }

    /// The `prune` event dockerd emits at the end of every prune, even one that removed nothing.
    pub fn emit_prune(&self, kind: &str, reclaimed: u64) {
        let mut a = BTreeMap::new();
        a.insert("reclaimed".to_string(), reclaimed.to_string());
        self.events.emit(kind, "prune", "", a);
    }
}
