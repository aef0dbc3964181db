//! The image half of `GET /system/df`, with moby's formulas (`daemon/images/images.go`
//! `Images(…, withExtraAttrs)` and `LayerDiskUsage`, 20.10):
//! - `Images`: what `docker images` lists (intermediate images left out), each with
//!   `Containers` (how many containers use it) and `SharedSize` (the bytes of its layers that
//!   another listed image also uses); `Size - SharedSize` is what `df -v` calls UNIQUE SIZE.
//! - `LayersSize`: every layer used by a non-intermediate image, each counted once however many
//!   images share it.
//!
//! The store is read in a fixed number of queries (the image list, every image's layers, the
//! tags and repository digests, the parents), never a query per image.

use std::collections::{HashMap, HashSet};

use berth_api::models::ImageSummary;

use crate::{Error, ImageService, ListOptions};

/// Image disk usage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiskUsage {
    /// Bytes of all layers, shared ones once.
    pub layers_size: i64,
    /// The listed images, newest first, with `Containers` and `SharedSize` computed.
    pub images: Vec<ImageSummary>,
}

impl ImageService {
    /// Image disk usage for `system df`.
    pub fn disk_usage(&self) -> Result<DiskUsage, Error> {
        let mut images = self.list(&ListOptions::default())?;
        let mut layers_of: HashMap<String, Vec<(String, i64)>> = HashMap::new();
        for (image, l) in self.db.all_image_layers()? {
            layers_of.entry(image).or_default().push((l.chain_id, l.size));
        }
        let referenced: HashSet<String> = self
            .db
            .all_tags()?
            .into_iter()
            .chain(self.db.all_repo_digests()?)
            .map(|(_, id)| id)
            .collect();
        let parents = self.db.parent_ids()?;

        // LayersSize: the layers of every image but intermediate ones, each once.
        let mut sizes: HashMap<&str, i64> = HashMap::new();
        for (image, layers) in &layers_of {
            if !referenced.contains(image) && parents.contains(image) {
                continue;
            }
            for (chain, size) in layers {
                sizes.insert(chain, *size);
            }
        }
        let layers_size = sizes.values().sum();

        // SharedSize: layers that more than one listed image uses.
        let mut users: HashMap<&str, usize> = HashMap::new();
        for img in &images {
            for (chain, _) in layers_of.get(&img.id).map(Vec::as_slice).unwrap_or_default() {
                *users.entry(chain).or_default() += 1;
            }
        }
        let shared: Vec<i64> = images
            .iter()
            .map(|img| {
                layers_of
                    .get(&img.id)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .filter(|(chain, _)| users.get(chain.as_str()).copied().unwrap_or(0) > 1)
                    .map(|(_, size)| size)
                    .sum()
            })
            .collect();
        for (img, shared) in images.iter_mut().zip(shared) {
            img.shared_size = shared;
        }
        Ok(DiskUsage { layers_size, images })
    }
}
