//! `POST /images/prune`, as moby's `ImageService.ImagesPrune` (20.10, API 1.41) decides.
//!
//! Candidates: with `dangling=true` (the default) the images no other image names as parent
//! ("heads"), else every image; images without references (tags or repository digests) that
//! have children (intermediate) are skipped either way, as are images created after `until` and images whose labels do not match `label` /
//! `label!`. Each candidate is then removed through [`ImageService::remove`] with docker's rules:
//! a dangling-only prune removes candidates without references by ID, those with only digest
//! references by each digest, and tagged ones not at all; `-a` removes each reference of a
//! referenced candidate by name, which deletes the image with its last tag
//! unless a container uses it. Conflicts (an image in use, a child image) are skipped silently;
//! other failures are reported in [`PruneReport::warnings`] and the prune goes on. Each image
//! deletion is its own transaction with its failpoints (`image.rmi.*`), so a crash part way
//! leaves every image either whole or gone, and untagged parents of what was deleted go with it
//! (docker's `prune` flag of image delete).
//!
//! `SpaceReclaimed` is, as in dockerd, the sum of the sizes of the layers deleted (the
//! `Deleted: <chain id>` records), read from one query of the layer table taken before the
//! first deletion.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;

use berth_api::models::ImageDeleteResponseItem;
use berth_types::{ErrorKind, Reference};

use crate::{Error, ImageService};

/// What an image prune did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PruneReport {
    /// `Untagged`/`Deleted` records in the order they happened (images and their layers).
    pub images_deleted: Vec<ImageDeleteResponseItem>,
    /// Bytes of the layers deleted.
    pub space_reclaimed: u64,
    /// Images that could not be removed for a reason other than a conflict (dockerd logs these).
    pub warnings: Vec<String>,
}

/// The filters an image prune accepts.
const ACCEPTED: &[&str] = &["dangling", "label", "label!", "until"];

/// docker's `filters.Validate`: every key is one of `accepted`.
pub fn validate_filters(filters: &BTreeMap<String, Vec<String>>, accepted: &[&str]) -> Result<(), Error> {
    match filters.keys().find(|k| !accepted.contains(&k.as_str())) {
        Some(k) => Err(Error::InvalidArgument(format!("Invalid filter '{k}'"))),
        None => Ok(()),
    }
}

/// docker's `getUntilFromPruneFilters`: the `until` instant in unix nanoseconds, if given.
pub fn until_filter(filters: &BTreeMap<String, Vec<String>>, now: i64) -> Result<Option<i64>, Error> {
    match filters.get("until").map(Vec::as_slice) {
        None | Some([]) => Ok(None),
        Some([one]) => berth_types::time::parse_until(one, now)
            .map(Some)
            .map_err(Error::InvalidArgument),
        Some(_) => Err(Error::InvalidArgument(
            "more than one until filter specified".into(),
        )),
    }
}

/// docker's `filters.MatchKVList`: every `key` or `key=value` of `values` matches `labels`.
fn match_kv_list(values: &[String], labels: &BTreeMap<String, String>) -> bool {
    values.iter().all(|v| match v.split_once('=') {
        Some((k, val)) => labels.get(k).is_some_and(|x| x == val),
        None => labels.contains_key(v.as_str()),
    })
}

/// docker's prune `matchLabels`: all of `label` match, and not all of `label!` (when given).
pub fn match_labels(filters: &BTreeMap<String, Vec<String>>, labels: &BTreeMap<String, String>) -> bool {
    if let Some(want) = filters.get("label") {
        if !want.is_empty() && (labels.is_empty() || !match_kv_list(want, labels)) {
            return false;
        }
    }
    match filters.get("label!") {
        Some(not) if !not.is_empty() => labels.is_empty() || !match_kv_list(not, labels),
        _ => true,
    }
}

/// Resets the "prune running" flag when a prune ends, however it ends.
struct Running<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl ImageService {
    /// `docker image prune`: `filters` as the API sends them (`dangling`, `label`, `label!`,
    /// `until`); `is_running(container_id)` as for [`ImageService::remove`]. One prune at a time
    /// (docker's `a prune operation is already running`, a conflict).
    pub fn prune(
        &self,
        filters: &BTreeMap<String, Vec<String>>,
        is_running: &dyn Fn(&str) -> bool,
    ) -> Result<PruneReport, Error> {
        if self
            .pruning
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(Error::Conflict("a prune operation is already running".into()));
        }
        let _running = Running(&self.pruning);
        validate_filters(filters, ACCEPTED)?;
        let dangling_only = match filters.get("dangling").map(Vec::as_slice) {
            None | Some([]) => true,
            Some(vals) if vals.iter().any(|v| v == "false" || v == "0") => false,
            Some(vals) if vals.iter().any(|v| v == "true" || v == "1") => true,
            Some(vals) => {
                return Err(Error::InvalidArgument(format!(
                    "Invalid filter 'dangling=[{}]'",
                    vals.join(" ")
                )))
            }
        };
        let until = until_filter(filters, berth_types::time::now_nanos())?;
        let with_labels = filters.contains_key("label") || filters.contains_key("label!");

        // The whole store in a fixed number of queries, before anything is deleted.
        let parents = self.db.parent_ids()?;
        let mut refs: HashMap<String, Vec<String>> = HashMap::new();
        // docker's references: tags, then repository digests (`repo@sha256:…`).
        for (name, id) in self.db.all_tags()?.into_iter().chain(self.db.all_repo_digests()?) {
            refs.entry(id).or_default().push(name);
        }
        let layer_sizes: HashMap<String, i64> = self
            .db
            .layers()?
            .into_iter()
            .map(|l| (l.chain_id, l.size))
            .collect();
        let mut candidates = Vec::new();
        for img in self.db.images()? {
            let has_children = parents.contains(&img.id);
            if (dangling_only || !refs.contains_key(&img.id)) && has_children {
                continue;
            }
            if let Some(u) = until {
                if berth_types::time::parse_rfc3339(&img.created).is_some_and(|c| c > u) {
                    continue;
                }
            }
            if with_labels {
                let labels = self.config_file(&img.id)?.config.labels.unwrap_or_default();
                if !match_labels(filters, &labels) {
                    continue;
                }
            }
            candidates.push(img.id);
        }

        let mut report = PruneReport::default();
        for id in candidates {
            let names: Vec<String> = match refs.get(&id) {
                Some(names) => {
                    let has_tag = names
                        .iter()
                        .any(|n| Reference::parse(n).is_ok_and(|r| r.digest().is_none()));
                    if dangling_only && has_tag {
                        continue;
                    }
                    names.clone()
                }
                None => vec![id.trim_start_matches("sha256:").to_string()],
            };
            for name in names {
                match self.remove(&name, false, is_running) {
                    Ok(items) => report.images_deleted.extend(items),
                    // In use, or gone already with a child it was the untagged parent of.
                    Err(e) if matches!(e.kind(), ErrorKind::Conflict | ErrorKind::NotFound) => {}
                    Err(e) => report.warnings.push(format!("failed to prune image {name}: {e}")),
                }
            }
        }
        report.space_reclaimed = report
            .images_deleted
            .iter()
            .filter_map(|d| d.deleted.as_ref())
            .filter_map(|d| layer_sizes.get(d))
            .map(|s| (*s).max(0) as u64)
            .sum();
        Ok(report)
    }
}
