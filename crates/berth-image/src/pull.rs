//! The store's side of `docker pull`: from an image config and its layers' blob streams to an
//! image, crash-consistently. The network side (berth-registry) and the order of work
//! (parallel downloads, layers unpacked in order) belong to the caller, which calls:
//!
//! 1. [`ImageService::pull_plan`] with the config's exact bytes: the image ID and, per layer,
//!    the chain ID and whether it is here already (those print `Already exists`). The plan
//!    leases every layer it names, so nothing removes them before the image is recorded.
//! 2. [`ImageService::pull_layer`] for each missing layer, in order, with the blob stream
//!    (compressed or not; gzip and zstd are recognised by their magic): decompressed, unpacked
//!    confined into a new snapshot and stored as the layer's tar, streaming — no layer is held
//!    in memory. The diff ID must be the config's. The stream is read to its end, so the
//!    caller's digest check (which fires at EOF) always runs.
//! 3. [`ImageService::pull_commit`]: the config blob, then one transaction with the layer rows,
//!    the image, its tag, its repository digest and the blob sources.
//!
//! Dropping the plan without committing removes every layer it unpacked that no image uses: a
//! failed pull leaves the store as it was. A crash leaves only orphans (snapshots and blobs
//! with no row), which start-up reconciliation deletes.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use berth_meta::{BlobSource, ImageRefs, ImageRow, LayerRow};
use sha2::{Digest as _, Sha256};

use berth_snapshot::Snapshotter;

use crate::config::ConfigFile;
use crate::create::{chain_id, decompress};
use crate::{Error, ImageService, MAX_LAYERS};

/// Chain IDs operations in flight rely on, counted.
#[derive(Debug, Default)]
pub(crate) struct Leases(Mutex<HashMap<String, usize>>);

impl Leases {
    fn take(&self, chains: &[String]) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for c in chains {
            *m.entry(c.clone()).or_default() += 1;
        }
    }

    fn release(&self, chains: &[String]) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for c in chains {
            if let Some(n) = m.get_mut(c) {
                *n -= 1;
                if *n == 0 {
                    m.remove(c);
                }
            }
        }
    }

    /// Whether an operation in flight relies on this layer.
    pub(crate) fn held(&self, chain: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(chain)
    }
}

/// One layer of a pull.
#[derive(Debug, Clone)]
pub struct PlannedLayer {
    /// From the config (`rootfs.diff_ids`).
    pub diff_id: String,
    pub chain_id: String,
    /// Already in the store.
    pub present: bool,
}

/// A pull in progress (see the module doc). Dropping it without [`ImageService::pull_commit`]
/// undoes what it unpacked.
pub struct PullPlan {
    svc: Arc<ImageService>,
    /// `sha256:` of the config: the image ID.
    pub id: String,
    config: Vec<u8>,
    pub layers: Vec<PlannedLayer>,
    /// The layer rows so far, bottom first (present ones and unpacked ones).
    rows: Vec<LayerRow>,
    chains: Vec<String>,
    committed: bool,
}

impl ImageService {
    /// Step 1: what the image needs, from its config's exact bytes.
    pub fn pull_plan(self: &Arc<Self>, config: &[u8]) -> Result<PullPlan, Error> {
        let cfg: ConfigFile = serde_json::from_slice(config)
            .map_err(|e| Error::InvalidArgument(format!("invalid image config: {e}")))?;
        let sum: [u8; 32] = Sha256::digest(config).into();
        let id = berth_types::Digest::from_sha256_bytes(&sum).to_string();
        if cfg.rootfs.diff_ids.len() > MAX_LAYERS {
            return Err(Error::InvalidArgument("max depth exceeded".into()));
        }
        let mut layers = Vec::new();
        let mut parent: Option<String> = None;
        for diff in &cfg.rootfs.diff_ids {
            berth_types::Digest::parse(diff).map_err(|_| {
                Error::InvalidArgument(format!("invalid diff ID {diff:?} in the image config"))
            })?;
            let chain = chain_id(parent.as_deref(), diff);
            layers.push(PlannedLayer {
                diff_id: diff.clone(),
                chain_id: chain.clone(),
                present: false,
            });
            parent = Some(chain);
        }
        let chains: Vec<String> = layers.iter().map(|l| l.chain_id.clone()).collect();
        // Leased before looking, so a layer found here cannot go before the image is recorded.
        self.leases.take(&chains);
        let mut plan = PullPlan {
            svc: self.clone(),
            id,
            config: config.to_vec(),
            layers,
            rows: Vec::new(),
            chains,
            committed: false,
        };
        // A layer is usable when it and every layer below it are here.
        for l in plan.layers.iter_mut() {
            match self.db.layer(&l.chain_id)? {
                Some(row) if self.snapshots.stat(&row.snapshot_key).is_ok() => {
                    l.present = true;
                    plan.rows.push(row);
                }
                _ => break,
            }
        }
        Ok(plan)
    }

    /// Step 2: unpacks layer `index` (the next one the plan lacks) from its blob stream, calling
    /// `progress` with the number of blob bytes consumed so far.
    pub fn pull_layer(
        &self,
        plan: &mut PullPlan,
        index: usize,
        blob: &mut dyn Read,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), Error> {
        if index != plan.rows.len() {
            return Err(Error::InvalidArgument(format!(
                "layer {index} of {} pulled out of order",
                plan.id
            )));
        }
        let want = plan.layers[index].diff_id.clone();
        let mut counted = Counting {
            inner: blob,
            n: 0,
            progress,
        };
        let x = {
            let mut tar = decompress(&mut counted)?;
            let x = self.unpack_layer(plan.rows.last(), &mut tar)?;
            // The rest of the stream (gzip trailer, padding): read to its end so the
            // caller's digest check runs.
            io::copy(&mut tar, &mut io::sink()).map_err(|err| Error::Read { what: "layer", err })?;
            x
        };
        io::copy(&mut counted, &mut io::sink()).map_err(|err| Error::Read { what: "layer", err })?;
        if x.diff_id != want {
            let got = x.diff_id.clone();
            let _ = self.snapshots.remove(&x.key);
            if matches!(self.db.diff_id_users(&got), Ok(0)) {
                let _ = crate::remove::delete_blob(&self.content, &got);
            }
            return Err(Error::InvalidArgument(format!(
                "layer {} of image {} does not match its config: expected diff ID {want}, got {got}",
                index + 1,
                plan.id
            )));
        }
        let row = {
            let _g = self.lock();
            self.commit_layer(plan.rows.last(), x)?
        };
        plan.layers[index].present = true;
        plan.rows.push(row);
        Ok(())
    }

    /// Step 3: records the image. `tags` and `repo_digests` are normalised references;
    /// `sources` say which registry blob each layer came from. Returns the image ID.
    pub fn pull_commit(
        &self,
        mut plan: PullPlan,
        tags: &[String],
        repo_digests: &[String],
        sources: &[BlobSource],
    ) -> Result<String, Error> {
        if plan.rows.len() != plan.layers.len() {
            return Err(Error::InvalidArgument(format!(
                "image {} is missing layers: {} of {} unpacked",
                plan.id,
                plan.rows.len(),
                plan.layers.len()
            )));
        }
        let cfg: ConfigFile = serde_json::from_slice(&plan.config)
            .map_err(|e| Error::InvalidArgument(format!("invalid image config: {e}")))?;
        let _g = self.lock();
        let digest = self.content.write_blob(&plan.config)?.to_string();
        debug_assert_eq!(digest, plan.id);
        berth_sys::failpoint::hit("image.pull.config-written");
        let now = berth_types::time::now_nanos();
        let row = ImageRow {
            id: plan.id.clone(),
            created: cfg.created.clone(),
            size: plan.rows.iter().map(|l| l.size).sum(),
            parent: String::new(),
            last_tag_time: (!tags.is_empty()).then(|| berth_types::time::rfc3339_nano(now)),
            added: now,
        };
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        let digests: Vec<&str> = repo_digests.iter().map(String::as_str).collect();
        self.db.insert_image_with(
            &row,
            &plan.rows,
            &ImageRefs {
                tags: &tags,
                repo_digests: &digests,
                sources,
            },
        )?;
        plan.committed = true;
        berth_sys::failpoint::hit("image.pull.committed");
        Ok(plan.id.clone())
    }
}

impl Drop for PullPlan {
    fn drop(&mut self) {
        self.svc.leases.release(&self.chains);
        if !self.committed {
            let _g = self.svc.lock();
            // Layers no row names and no other operation leases: what this pull unpacked (or
            // reused while an rmi removed its row).
            self.svc.drop_unreferenced(&self.rows, "");
        }
    }
}

/// Counts the bytes read and reports them (at most every 512 KiB, and at the end).
struct Counting<'a, 'p> {
    inner: &'a mut dyn Read,
    n: u64,
    progress: &'p mut dyn FnMut(u64),
}

impl Read for Counting<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        let before = self.n;
        self.n += k as u64;
        if k == 0 || self.n / (512 * 1024) != before / (512 * 1024) {
            (self.progress)(self.n);
        }
        Ok(k)
    }
}
