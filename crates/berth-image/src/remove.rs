//! `docker rmi`, with docker's decision table and messages (moby `daemon/images/image_delete.go`).

use berth_api::models::ImageDeleteResponseItem;
use berth_meta::LayerRow;
use berth_snapshot::Snapshotter;
use berth_types::{id::short, Digest, Reference};

use crate::{Error, ImageService};

fn untagged(s: String) -> ImageDeleteResponseItem {
    ImageDeleteResponseItem {
        untagged: Some(s),
        deleted: None,
    }
}

fn deleted(s: String) -> ImageDeleteResponseItem {
    ImageDeleteResponseItem {
        untagged: None,
        deleted: Some(s),
    }
}

/// `image_id` starts with `s`, with or without `sha256:`.
fn is_id_prefix(image_id: &str, s: &str) -> bool {
    image_id.starts_with(s) || image_id.strip_prefix("sha256:").is_some_and(|h| h.starts_with(s))
}

/// docker's `imageDeleteConflict`.
struct DeleteConflict {
    hard: bool,
    used: bool,
    message: String,
}

impl ImageService {
    /// `docker rmi`. By name: untags, and deletes the image once no tag is left and no container
    /// uses it. By ID: deletes (refusing when it has several tags unless `force`). Refuses with
    /// docker's `conflict: …` messages while containers use the image; a running container
    /// (`is_running(container_id)`) blocks even `force`.
    pub fn remove(
        &self,
        name_or_id: &str,
        force: bool,
        is_running: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<ImageDeleteResponseItem>, Error> {
        let id = self.find(name_or_id)?;
        let mut records = Vec::new();
        let tags = self.db.tags_of(&id)?;
        let users = self.db.containers_using_image(&id)?;
        let quiet = if !is_id_prefix(&id, name_or_id) {
            // A repository reference: untag it first.
            if !force && tags.len() == 1 {
                if let Some(c) = users.first() {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to remove repository reference \"{name_or_id}\" (must force) - container {} is using its referenced image {}",
                        short(c),
                        short(&id)
                    )));
                }
            }
            let r = Reference::parse(name_or_id)?;
            {
                let _g = self.lock();
                self.db.delete_tag(&r.to_string())?;
            }
            records.push(untagged(r.familiar()));
            if !self.db.tags_of(&id)?.is_empty() {
                return Ok(records);
            }
            true
        } else {
            if tags.len() == 1 {
                let conflict = self.delete_conflict(&id, &users, true, !force, false, is_running)?;
                if let Some(c) = conflict {
                    return Err(Error::Conflict(conflict_message(&id, &c)));
                }
                let _g = self.lock();
                for t in &tags {
                    self.db.delete_tag(t)?;
                    records.push(untagged(
                        Reference::parse(t)
                            .map(|r| r.familiar())
                            .unwrap_or_else(|_| t.clone()),
                    ));
                }
            }
            false
        };
        // imageDeleteHelper
        let conflict = self.delete_conflict(&id, &users, true, !force, !force, is_running)?;
        if let Some(c) = conflict {
            let dangling = self.db.tags_of(&id)?.is_empty();
            if quiet && (!dangling || c.used) {
                return Ok(records);
            }
            return Err(Error::Conflict(conflict_message(&id, &c)));
        }
        let _g = self.lock();
        for t in self.db.tags_of(&id)? {
            self.db.delete_tag(&t)?;
            records.push(untagged(Reference::parse(&t).map(|r| r.familiar()).unwrap_or(t)));
        }
        let removed = self.db.delete_image(&id)?;
        records.push(deleted(id.clone()));
        for l in &removed {
            records.push(deleted(l.chain_id.clone()));
        }
        self.delete_files(&id, &removed);
        Ok(records)
    }

    /// docker's `checkImageDeleteConflict`: `hard` = dependent children + running containers;
    /// `soft_refs` = other tags; `soft_stopped` = stopped containers.
    fn delete_conflict(
        &self,
        id: &str,
        users: &[String],
        hard: bool,
        soft_stopped: bool,
        soft_refs: bool,
        is_running: &dyn Fn(&str) -> bool,
    ) -> Result<Option<DeleteConflict>, Error> {
        if hard && !self.db.children(id)?.is_empty() {
            return Ok(Some(DeleteConflict {
                hard: true,
                used: false,
                message: "image has dependent child images".into(),
            }));
        }
        if hard {
            if let Some(c) = users.iter().find(|c| is_running(c)) {
                return Ok(Some(DeleteConflict {
                    hard: true,
                    used: true,
                    message: format!("image is being used by running container {}", short(c)),
                }));
            }
        }
        if soft_refs && !self.db.tags_of(id)?.is_empty() {
            return Ok(Some(DeleteConflict {
                hard: false,
                used: false,
                message: "image is referenced in multiple repositories".into(),
            }));
        }
        if soft_stopped {
            if let Some(c) = users.iter().find(|c| !is_running(c)) {
                return Ok(Some(DeleteConflict {
                    hard: false,
                    used: true,
                    message: format!("image is being used by stopped container {}", short(c)),
                }));
            }
        }
        Ok(None)
    }

    /// After the rows are gone: the layers' snapshots and blobs, and the config blob.
    fn delete_files(&self, image_id: &str, removed: &[LayerRow]) {
        let still_used: std::collections::HashSet<String> = self
            .db
            .layers()
            .unwrap_or_default()
            .into_iter()
            .map(|l| l.diff_id)
            .collect();
        for l in removed {
            let _ = self.snapshots.remove(&l.snapshot_key);
            if !still_used.contains(&l.diff_id) {
                if let Ok(d) = Digest::parse(&l.diff_id) {
                    let _ = self.content.delete(&d);
                }
            }
        }
        if let Ok(d) = Digest::parse(image_id) {
            let _ = self.content.delete(&d);
        }
    }
}

fn conflict_message(id: &str, c: &DeleteConflict) -> String {
    let force = if c.hard {
        "cannot be forced"
    } else {
        "must be forced"
    };
    format!(
        "conflict: unable to delete {} ({force}) - {}",
        short(id),
        c.message
    )
}
