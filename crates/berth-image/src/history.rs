//! `GET /images/{name}/history`, as moby's `ImageService.ImageHistory` builds it.
//!
//! One entry per history record of the image's config, newest first. A record that made a layer
//! (`empty_layer` false) takes the next of the image's layers, bottom first, and shows its size;
//! an `empty_layer` record (`CMD`, `ENV`, …) shows 0. IDs then come from the image's lineage as
//! dockerd assigns them: the newest entry is the image itself, the next its parent image (the
//! image it was committed from), and so on while a parent is recorded and still present; every
//! other entry is `<missing>` (its layer has no local image of its own — pulled and loaded images
//! record no parents). An entry with an image lists that image's tags (not digests), `null` when
//! it has none.

use serde::Serialize;

use berth_types::Reference;

use crate::{Error, ImageService};

/// One history entry, with dockerd's keys in dockerd's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryItem {
    #[serde(rename = "Comment")]
    pub comment: String,
    /// Unix seconds; 0 when the record has no time.
    #[serde(rename = "Created")]
    pub created: i64,
    #[serde(rename = "CreatedBy")]
    pub created_by: String,
    /// `sha256:…` or `<missing>`.
    #[serde(rename = "Id")]
    pub id: String,
    /// The layer's size in bytes; 0 for an `empty_layer` record.
    #[serde(rename = "Size")]
    pub size: i64,
    /// Familiar tags of the entry's image; `null` when none.
    #[serde(rename = "Tags")]
    pub tags: Option<Vec<String>>,
}

/// What dockerd shows for a history entry without a local image.
pub const MISSING: &str = "<missing>";

impl ImageService {
    /// `docker history NAME`: newest first. Queries: the image, its layers (one query), its
    /// config, then per image of its lineage one row and its tags (a lineage is as long as the
    /// chain of commits, never a scan of the store).
    pub fn history(&self, name_or_id: &str) -> Result<Vec<HistoryItem>, Error> {
        let id = self.find(name_or_id)?;
        let cfg = self.config_file(&id)?;
        let layers = self.db.image_layers(&id)?;
        let mut out = Vec::with_capacity(cfg.history.len());
        let mut next_layer = layers.iter();
        for h in &cfg.history {
            let size = if h.empty_layer {
                0
            } else {
                next_layer
                    .next()
                    .ok_or_else(|| Error::CorruptConfig {
                        id: id.clone(),
                        err: <serde_json::Error as serde::de::Error>::custom(
                            "too many non-empty layers in History section",
                        ),
                    })?
                    .size
            };
            out.push(HistoryItem {
                comment: h.comment.clone(),
                created: berth_types::time::parse_rfc3339_parts(&h.created)
                    .map(|(s, _)| s)
                    .unwrap_or(0),
                created_by: h.created_by.clone(),
                id: MISSING.to_string(),
                size,
                tags: None,
            });
        }
        out.reverse();
        let mut image = Some(id);
        for entry in out.iter_mut() {
            let Some(img) = image.take() else { break };
            let mut tags: Vec<String> = self
                .db
                .tags_of(&img)?
                .iter()
                .filter_map(|t| Reference::parse(t).ok())
                .filter(|r| r.digest().is_none())
                .map(|r| r.familiar())
                .collect();
            tags.sort();
            entry.tags = (!tags.is_empty()).then_some(tags);
            let parent = self.db.image(&img)?.map(|row| row.parent).unwrap_or_default();
            entry.id = img;
            if !parent.is_empty() && self.db.image(&parent)?.is_some() {
                image = Some(parent);
            }
        }
        Ok(out)
    }
}
