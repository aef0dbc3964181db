//! The `/volumes` endpoints: create, list (filters `dangling`, `name`, `driver`, `label`),
//! inspect, remove (refused while a container uses the volume), prune. Which containers use a
//! volume is read from the container records (`Doc::mounts`), the one source of truth.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_volume::Volume;
use serde::Serialize;

use crate::error::{blocking, Error, Result};
use crate::Daemon;

/// `POST /volumes/create` (docker's `VolumeCreateBody`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeCreate {
    pub name: Option<String>,
    pub driver: Option<String>,
    pub driver_opts: Option<BTreeMap<String, String>>,
    pub labels: Option<BTreeMap<String, String>>,
}

/// `POST /volumes/prune`'s answer.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumesPruneReport {
    /// `[]`, never `null`, when nothing was removed.
    pub volumes_deleted: Vec<String>,
    pub space_reclaimed: u64,
}

fn driver_attrs(driver: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("driver".to_string(), driver.to_string())])
}

fn check_filters(filters: &BTreeMap<String, Vec<String>>, accepted: &[&str]) -> Result<()> {
    if let Some(k) = filters.keys().find(|k| !accepted.contains(&k.as_str())) {
        return Err(Error::invalid(format!("Invalid filter '{k}'")));
    }
    Ok(())
}

fn labels_of(v: &Volume) -> BTreeMap<String, String> {
    v.labels.clone().unwrap_or_default()
}

impl Daemon {
    /// `docker volume create`: idempotent (an existing name returns that volume unchanged); emits
    /// `create` every time, as dockerd.
    pub async fn volume_create(self: &Arc<Self>, req: VolumeCreate) -> Result<Volume> {
        let store = self.volumes.clone();
        let opts = berth_volume::CreateOptions {
            name: req.name,
            driver: req.driver.unwrap_or_default(),
            labels: req.labels.unwrap_or_default(),
            options: req.driver_opts.unwrap_or_default(),
            anonymous: false,
        };
        let (v, _) = blocking(move || store.create(opts).map_err(Error::from)).await?;
        self.events
            .emit("volume", "create", &v.name, driver_attrs(&v.driver));
        Ok(v)
    }

    /// `GET /volumes/{name}`.
    pub fn volume_inspect(&self, name: &str) -> Result<Volume> {
        Ok(self.volumes.get(name)?)
    }

    /// `GET /volumes?filters=`.
    pub fn volume_list(&self, filters: &BTreeMap<String, Vec<String>>) -> Result<Vec<Volume>> {
        check_filters(filters, &["dangling", "name", "driver", "label"])?;
        let dangling = match filters.get("dangling").and_then(|v| v.first()) {
            None => None,
            Some(v) => match v.as_str() {
                "true" | "1" => Some(true),
                "false" | "0" => Some(false),
                other => return Err(Error::invalid(format!("Invalid filter 'dangling=[{other}]'"))),
            },
        };
        let mut out = Vec::new();
        for v in self.volumes.list()? {
            if let Some(d) = dangling {
                if self.volume_users(&v.name).is_empty() != d {
                    continue;
                }
            }
            if let Some(names) = filters.get("name") {
                if !names.iter().any(|n| v.name.contains(n.as_str())) {
                    continue;
                }
            }
            if let Some(drivers) = filters.get("driver") {
                if !drivers.contains(&v.driver) {
                    continue;
                }
            }
            if !berth_image::match_labels(filters, &labels_of(&v)) {
                continue;
            }
            out.push(v);
        }
        Ok(out)
    }

    /// `DELETE /volumes/{name}[?force=1]`: refused while a container (running or not) uses it,
    /// with dockerd's message; `force` ignores a missing volume.
    pub async fn volume_remove(self: &Arc<Self>, name: &str, force: bool) -> Result<()> {
        let v = match self.volumes.get(name) {
            Ok(v) => v,
            Err(e) if force && e.kind() == berth_types::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let users = self.volume_users(&v.name);
        if !users.is_empty() {
            return Err(Error::conflict(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(", ")
            )));
        }
        let store = self.volumes.clone();
        let n = v.name.clone();
        blocking(move || store.remove(&n).map_err(Error::from)).await?;
        self.events
            .emit("volume", "destroy", &v.name, driver_attrs(&v.driver));
        Ok(())
    }

    /// `POST /volumes/prune?filters=`: every unused volume matching the label filters. Volumes with driver
    /// options are left alone, as dockerd does. One `prune` event, no `destroy`s.
    pub async fn volume_prune(
        self: &Arc<Self>,
        filters: BTreeMap<String, Vec<String>>,
    ) -> Result<VolumesPruneReport> {
        check_filters(&filters, &["label", "label!", "all"])?;
        // API 1.41 prunes named volumes too; an explicit `all=false` (API 1.42's default, which
        // berth's CLI sends without `-a`) keeps them.
        let all = match filters.get("all").and_then(|v| v.first()) {
            Some(v) => berth_api::bool_value(v),
            None => true,
        };
        let mut report = VolumesPruneReport::default();
        for v in self.volumes.list()? {
            if v.has_options() || (!all && !v.anonymous) || !self.volume_users(&v.name).is_empty() {
                continue;
            }
            if !berth_image::match_labels(&filters, &labels_of(&v)) {
                continue;
            }
            let store = self.volumes.clone();
            let n = v.name.clone();
            let size = blocking(move || {
                let size = store.size(&n);
                store.remove(&n).map_err(Error::from).map(|()| size)
            })
            .await;
            match size {
                Ok(s) => {
                    report.space_reclaimed += s;
                    report.volumes_deleted.push(v.name);
                }
                Err(e) => eprintln!("berthd: volume prune: {}: {e}", v.name),
            }
        }
        self.emit_prune("volume", report.space_reclaimed);
        Ok(report)
    }

    /// `system df`'s `Volumes`: each volume with `UsageData{RefCount, Size}` (driver-option
    /// volumes left out, as dockerd 20.10).
    pub(crate) fn volume_usage(&self) -> Result<Vec<serde_json::Value>> {
        let mut out = Vec::new();
        for v in self.volumes.list()? {
            if v.has_options() {
                continue;
            }
            let mut j = serde_json::to_value(&v)?;
            j["UsageData"] = serde_json::json!({
                "RefCount": self.volume_users(&v.name).len(),
                "Size": self.volumes.size(&v.name),
            });
            out.push(j);
        }
        Ok(out)
    }
}
