//! Read-only views: `GET /images/json` and `GET /images/{name}/json`.

use std::collections::HashMap;

use berth_api::models::{
    DriverData, ImageConfig as ApiConfig, ImageInspect, ImageInspectMetadata, ImageInspectRootFs,
    ImageSummary,
};
use berth_meta::ImageRow;
use berth_types::Reference;

use crate::config::ContainerConfig;
use crate::{glob, Error, ImageService, ListOptions};

const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn secs(rfc3339: &str) -> i64 {
    berth_types::time::parse_rfc3339(rfc3339)
        .map(|n| n.div_euclid(1_000_000_000))
        .unwrap_or(0)
}

fn nanos(rfc3339: &str) -> i64 {
    berth_types::time::parse_rfc3339(rfc3339).unwrap_or(0)
}

/// docker's `FamiliarMatch`: the pattern against `name:tag`, then against `name`.
fn familiar_match(pattern: &str, r: &Reference) -> bool {
    glob::matches(pattern, &r.familiar()) || glob::matches(pattern, &r.familiar_name())
}

fn api_config(c: &ContainerConfig) -> ApiConfig {
    ApiConfig {
        hostname: Some(c.hostname.clone()),
        domainname: Some(c.domainname.clone()),
        user: Some(c.user.clone()),
        attach_stdin: Some(c.attach_stdin),
        attach_stdout: Some(c.attach_stdout),
        attach_stderr: Some(c.attach_stderr),
        exposed_ports: c.exposed_ports.as_ref().map(|m| m.keys().cloned().collect()),
        tty: Some(c.tty),
        open_stdin: Some(c.open_stdin),
        stdin_once: Some(c.stdin_once),
        env: c.env.clone(),
        cmd: c.cmd.clone(),
        image: Some(c.image.clone()),
        volumes: c.volumes.as_ref().map(|m| m.keys().cloned().collect()),
        working_dir: Some(c.working_dir.clone()),
        entrypoint: c.entrypoint.clone(),
        on_build: c.on_build.clone(),
        labels: c
            .labels
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        stop_signal: c.stop_signal.clone(),
        ..Default::default()
    }
}

impl ImageService {
    /// `docker images`: filters `dangling`, `reference` (globs like `busy*`, `busybox:lat*`),
    /// `label` (`key` or `key=value`), `before`, `since`. Newest first.
    pub fn list(&self, opts: &ListOptions) -> Result<Vec<ImageSummary>, Error> {
        let f = &opts.filters;
        if let Some(k) = f.keys().find(|k| {
            !matches!(
                k.as_str(),
                "dangling" | "label" | "before" | "since" | "reference"
            )
        }) {
            return Err(Error::InvalidArgument(format!("Invalid filter '{k}'")));
        }
        let dangling = match f.get("dangling").and_then(|v| v.first()).map(String::as_str) {
            None => None,
            Some("true") | Some("1") => Some(true),
            Some("false") | Some("0") => Some(false),
            Some(other) => {
                return Err(Error::InvalidArgument(format!(
                    "Invalid filter 'dangling=[{other}]'"
                )))
            }
        };
        let refs = f.get("reference").filter(|v| !v.is_empty());
        let bound = |key: &str| -> Result<Option<i64>, Error> {
            match f.get(key).and_then(|v| v.first()) {
                Some(name) => Ok(Some(nanos(&self.resolve(name)?.created))),
                None => Ok(None),
            }
        };
        let (before, since) = (bound("before")?, bound("since")?);
        let counts = self.db.container_counts()?;
        let mut tags_by_image: HashMap<String, Vec<Reference>> = HashMap::new();
        for (name, id) in self.db.all_tags()? {
            if let Ok(r) = Reference::parse(&name) {
                tags_by_image.entry(id).or_default().push(r);
            }
        }
        let mut digests_by_image: HashMap<String, Vec<Reference>> = HashMap::new();
        for (name, id) in self.db.all_repo_digests()? {
            if let Ok(r) = Reference::parse(&name) {
                digests_by_image.entry(id).or_default().push(r);
            }
        }
        // Each summary with its creation time in nanoseconds: the order is newest first to the
        // nanosecond (`Created` itself is in seconds, and images made within one second would
        // otherwise come out by ID).
        let mut out: Vec<(i64, ImageSummary)> = Vec::new();
        for img in self.db.images()? {
            let cfg = self.config_file(&img.id)?;
            let created = nanos(&img.created);
            if before.is_some_and(|b| created >= b) || since.is_some_and(|s| created <= s) {
                continue;
            }
            if let Some(labels) = f.get("label") {
                let have = cfg.config.labels.clone().unwrap_or_default();
                let ok = labels.iter().all(|l| match l.split_once('=') {
                    Some((k, v)) => have.get(k).is_some_and(|x| x == v),
                    None => have.contains_key(l.as_str()),
                });
                if !ok {
                    continue;
                }
            }
            let all_tags = tags_by_image.get(&img.id).cloned().unwrap_or_default();
            let mut repo_tags: Vec<String> = all_tags
                .iter()
                .filter(|r| refs.is_none_or(|pats| pats.iter().any(|p| familiar_match(p, r))))
                .map(Reference::familiar)
                .collect();
            repo_tags.sort();
            let mut repo_digests: Vec<String> = digests_by_image
                .get(&img.id)
                .into_iter()
                .flatten()
                .filter(|r| refs.is_none_or(|pats| pats.iter().any(|p| familiar_match(p, r))))
                .map(Reference::familiar)
                .collect();
            repo_digests.sort();
            if repo_tags.is_empty() && repo_digests.is_empty() {
                let has_children = !self.db.children(&img.id)?.is_empty();
                if (!opts.all && has_children) || dangling == Some(false) || refs.is_some() {
                    continue;
                }
                repo_tags = vec!["<none>:<none>".to_string()];
                repo_digests = vec!["<none>@<none>".to_string()];
            } else if dangling == Some(true) {
                continue;
            }
            out.push((
                created,
                ImageSummary {
                    id: img.id.clone(),
                    parent_id: img.parent.clone(),
                    repo_tags,
                    repo_digests,
                    created: secs(&img.created),
                    size: img.size,
                    shared_size: -1,
                    virtual_size: Some(img.size),
                    labels: cfg
                        .config
                        .labels
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .collect(),
                    containers: counts.get(&img.id).copied().unwrap_or(0),
                    manifests: None,
                    descriptor: None,
                },
            ));
        }
        out.sort_by(|(ca, a), (cb, b)| cb.cmp(ca).then_with(|| a.id.cmp(&b.id)));
        Ok(out.into_iter().map(|(_, s)| s).collect())
    }

    /// `docker image inspect` as the 1.49 model (which lacks the deprecated `Container` and
    /// `ContainerConfig`; [`ImageService::inspect_json`] adds them).
    pub fn inspect(&self, name_or_id: &str) -> Result<ImageInspect, Error> {
        let id = self.find(name_or_id)?;
        let row = self
            .db
            .image(&id)?
            .ok_or_else(|| Error::NotFound(name_or_id.to_string()))?;
        self.inspect_row(&row)
    }

    fn inspect_row(&self, row: &ImageRow) -> Result<ImageInspect, Error> {
        let cfg = self.config_file(&row.id)?;
        let layers = self.db.image_layers(&row.id)?;
        let mut data = HashMap::new();
        if let Some((top, lower)) = layers.split_last() {
            let dir = self.snapshots.dir(&top.snapshot_key)?;
            let mut lowers = Vec::new();
            for l in lower.iter().rev() {
                lowers.push(
                    self.snapshots
                        .upper_dir(&l.snapshot_key)?
                        .to_string_lossy()
                        .into_owned(),
                );
            }
            if !lowers.is_empty() {
                data.insert("LowerDir".to_string(), lowers.join(":"));
            }
            data.insert(
                "MergedDir".to_string(),
                dir.join("merged").to_string_lossy().into_owned(),
            );
            data.insert(
                "UpperDir".to_string(),
                dir.join("fs").to_string_lossy().into_owned(),
            );
            data.insert(
                "WorkDir".to_string(),
                dir.join("work").to_string_lossy().into_owned(),
            );
        }
        Ok(ImageInspect {
            id: Some(row.id.clone()),
            repo_tags: Some(self.familiar_tags(&row.id)?),
            repo_digests: Some(self.familiar_digests(&row.id)?),
            parent: Some(row.parent.clone()),
            comment: Some(cfg.comment.clone()),
            created: Some(cfg.created.clone()),
            docker_version: Some(cfg.docker_version.clone()),
            author: Some(cfg.author.clone()),
            config: Some(api_config(&cfg.config)),
            architecture: Some(cfg.architecture.clone()),
            variant: if cfg.variant.is_empty() {
                None
            } else {
                Some(cfg.variant.clone())
            },
            os: Some(cfg.os.clone()),
            size: Some(row.size),
            virtual_size: Some(row.size),
            graph_driver: Some(DriverData {
                name: "overlay2".to_string(),
                data,
            }),
            root_fs: Some(ImageInspectRootFs {
                typ: "layers".to_string(),
                layers: Some(cfg.rootfs.diff_ids.clone()),
            }),
            metadata: Some(ImageInspectMetadata {
                last_tag_time: Some(row.last_tag_time.clone().unwrap_or_else(|| ZERO_TIME.to_string())),
            }),
            ..Default::default()
        })
    }

    /// `docker image inspect` as JSON with every key docker 28 sends at API 1.41, including the
    /// deprecated `Container` and `ContainerConfig`, and `null` for empty config lists/maps
    /// (templates index into them).
    pub fn inspect_json(&self, name_or_id: &str) -> Result<serde_json::Value, Error> {
        let id = self.find(name_or_id)?;
        let cfg = self.config_file(&id)?;
        let mut v = serde_json::to_value(self.inspect(&id)?).expect("inspect serialises");
        let obj = v.as_object_mut().expect("inspect is an object");
        let full_config = serde_json::to_value(&cfg.config).expect("config serialises");
        obj.insert("Config".into(), full_config);
        obj.insert(
            "Container".into(),
            serde_json::Value::String(cfg.container.clone()),
        );
        let cc = cfg.container_config.clone().unwrap_or_default();
        obj.insert(
            "ContainerConfig".into(),
            serde_json::to_value(&cc).expect("config serialises"),
        );
        Ok(v)
    }
}
