//! `docker rmi`, with docker's decision table and messages (moby `daemon/images/image_delete.go`).

use berth_api::models::ImageDeleteResponseItem;
use berth_meta::LayerRow;
use berth_snapshot::{SnapshotError, Snapshotter};
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
    message: String,
}

/// `DELETE /images/{name}` options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoveOptions {
    /// `-f`: ignore soft conflicts (other tags, stopped containers).
    pub force: bool,
    /// `noprune`: keep untagged parents the deleted image leaves behind (docker deletes them).
    pub noprune: bool,
}

impl ImageService {
    /// `docker rmi`, docker's default: as [`ImageService::remove_with`] without `noprune`.
    pub fn remove(
        &self,
        name_or_id: &str,
        force: bool,
        is_running: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<ImageDeleteResponseItem>, Error> {
        self.remove_with(
            name_or_id,
            RemoveOptions {
                force,
                noprune: false,
            },
            is_running,
        )
    }

    /// `docker rmi`. By name: untags, and deletes the image once no tag is left and no container
    /// uses it (when something still needs it, the image stays untagged, quietly, as in docker).
    /// By ID: deletes (refusing when it has several tags unless `force`). Refuses with docker's
    /// `conflict: …` messages while containers use the image; a running container
    /// (`is_running(container_id)`) blocks even `force`. Unless `noprune`, then deletes the
    /// image's parent (the image it was committed from) when that is left untagged, childless
    /// and unused, and so on up the chain, each in its own transaction.
    pub fn remove_with(
        &self,
        name_or_id: &str,
        opts: RemoveOptions,
        is_running: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<ImageDeleteResponseItem>, Error> {
        let force = opts.force;
        let id = self.find(name_or_id)?;
        let _g = self.lock();
        let tags = self.db.tags_of(&id)?;
        let digests = self.db.repo_digests_of(&id)?;
        // Docker's references: tags and repository digests alike.
        let refs: Vec<&String> = tags.iter().chain(&digests).collect();
        let familiar = |t: &str| {
            Reference::parse(t)
                .map(|r| r.familiar())
                .unwrap_or_else(|_| t.to_string())
        };
        let users = self.db.containers_using_image(&id)?;
        let mut records = Vec::new();
        if !is_id_prefix(&id, name_or_id) {
            // A repository reference: untag it, and delete the image with its last reference
            // unless something still needs it.
            if !force && refs.len() == 1 {
                if let Some(c) = users.first() {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to remove repository reference \"{name_or_id}\" (must force) - container {} is using its referenced image {}",
                        short(c),
                        short(&id)
                    )));
                }
            }
            let r = Reference::parse(name_or_id)?;
            let name = match r.digest() {
                Some(d) => format!("{}@{d}", r.name()),
                None => r.to_string(),
            };
            // Untagging a repository's last tag also drops its digest references (moby does).
            let mut gone = vec![name.clone()];
            let repo_of = |t: &str| Reference::parse(t).map(|x| x.name()).unwrap_or_default();
            if r.digest().is_none() && !tags.iter().any(|t| *t != name && repo_of(t) == r.name()) {
                gone.extend(digests.iter().filter(|d| repo_of(d) == r.name()).cloned());
            }
            let untagged_all = || gone.iter().map(|g| untagged(familiar(g))).collect::<Vec<_>>();
            if refs.iter().any(|t| !gone.contains(t)) {
                self.db.untag(&gone)?;
                return Ok(untagged_all());
            }
            if self
                .delete_conflict(&id, &users, !force, false, is_running)?
                .is_some()
            {
                // docker untags, then keeps the image quietly: a container uses it, or it has
                // child images (so it is not dangling but intermediate).
                self.db.untag(&gone)?;
                return Ok(untagged_all());
            }
            records.extend(untagged_all());
        } else {
            let other_refs = !force && refs.len() > 1;
            if let Some(c) = self.delete_conflict(&id, &users, !force, other_refs, is_running)? {
                return Err(Error::Conflict(conflict_message(&id, &c)));
            }
            for t in &refs {
                records.push(untagged(familiar(t)));
            }
        }
        let parent = self.db.image(&id)?.map(|row| row.parent).unwrap_or_default();
        self.delete_locked(&id, &mut records)?;
        if !opts.noprune {
            self.prune_parents(parent, &mut records)?;
        }
        Ok(records)
    }

    /// Deletes an image whose conflicts were checked: one transaction for the tags, the image
    /// and every layer no other image uses, then the files. Caller holds the state lock.
    fn delete_locked(&self, id: &str, records: &mut Vec<ImageDeleteResponseItem>) -> Result<(), Error> {
        let removed = self.db.delete_image(id)?;
        berth_sys::failpoint::hit("image.rmi.committed");
        records.push(deleted(id.to_string()));
        for l in &removed {
            records.push(deleted(l.chain_id.clone()));
        }
        self.delete_files(id, &removed)
    }

    /// docker's parent pruning after a delete: the parent goes when nothing needs it any more
    /// (no tag, no child image, no container, running or stopped), then its parent, and so on;
    /// the first one still needed ends it, quietly. Caller holds the state lock.
    fn prune_parents(
        &self,
        mut parent: String,
        records: &mut Vec<ImageDeleteResponseItem>,
    ) -> Result<(), Error> {
        while !parent.is_empty() {
            let Some(row) = self.db.image(&parent)? else {
                return Ok(());
            };
            if !self.db.tags_of(&parent)?.is_empty()
                || !self.db.repo_digests_of(&parent)?.is_empty()
                || !self.db.children(&parent)?.is_empty()
                || !self.db.containers_using_image(&parent)?.is_empty()
            {
                return Ok(());
            }
            self.delete_locked(&parent, records)?;
            parent = row.parent;
        }
        Ok(())
    }

    /// docker's `checkImageDeleteConflict`: always dependent children and running containers
    /// (hard); `other_refs` = the image has other tags; `soft_stopped` = stopped containers.
    fn delete_conflict(
        &self,
        id: &str,
        users: &[String],
        soft_stopped: bool,
        other_refs: bool,
        is_running: &dyn Fn(&str) -> bool,
    ) -> Result<Option<DeleteConflict>, Error> {
        if !self.db.children(id)?.is_empty() {
            return Ok(Some(DeleteConflict {
                hard: true,
                message: "image has dependent child images".into(),
            }));
        }
        if let Some(c) = users.iter().find(|c| is_running(c)) {
            return Ok(Some(DeleteConflict {
                hard: true,
                message: format!("image is being used by running container {}", short(c)),
            }));
        }
        if other_refs {
            return Ok(Some(DeleteConflict {
                hard: false,
                message: "image is referenced in multiple repositories".into(),
            }));
        }
        if soft_stopped {
            if let Some(c) = users.iter().find(|c| !is_running(c)) {
                return Ok(Some(DeleteConflict {
                    hard: false,
                    message: format!("image is being used by stopped container {}", short(c)),
                }));
            }
        }
        Ok(None)
    }

    /// After the rows are gone: the layers' snapshots and blobs, and the config blob. A blob is
    /// deleted only when the database answers that no layer uses it; any error stops the removal
    /// (what is left is unreferenced, and start-up reconciliation sweeps it).
    fn delete_files(&self, image_id: &str, removed: &[LayerRow]) -> Result<(), Error> {
        for l in removed {
            if self.leases.held(&l.chain_id) {
                // A pull in flight reuses this layer; it records the layer's row again.
                continue;
            }
            // The init layer its containers shared goes first (it sits on this layer), unless a
            // container still uses it.
            match self
                .snapshots
                .remove(&crate::shared_init_key(Some(&l.snapshot_key)))
            {
                Err(SnapshotError::HasChildren(_)) | Err(SnapshotError::NotFound(_)) | Ok(()) => {}
                Err(e) => return Err(e.into()),
            }
            match self.snapshots.remove(&l.snapshot_key) {
                // A container's rw layer still sits on it (`rmi -f` of an image a stopped
                // container uses): the snapshot goes with the container.
                Err(SnapshotError::HasChildren(_)) | Err(SnapshotError::NotFound(_)) | Ok(()) => {}
                Err(e) => return Err(e.into()),
            }
            if self.db.diff_id_users(&l.diff_id)? == 0 {
                delete_blob(&self.content, &l.diff_id)?;
            }
            berth_sys::failpoint::hit("image.rmi.layer-removed");
        }
        delete_blob(&self.content, image_id)
    }
}

/// Deletes a blob by its digest string; a blob that is already gone is not an error.
pub(crate) fn delete_blob(content: &berth_content::ContentStore, digest: &str) -> Result<(), Error> {
    let d = Digest::parse(digest).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    match content.delete(&d) {
        Ok(()) | Err(berth_content::ContentError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
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
