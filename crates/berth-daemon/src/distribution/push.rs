//! `docker push`, orchestrated: for each layer, what the registry already has is skipped (a HEAD
//! on what earlier pulls and pushes learned, then a cross-repository mount), the rest is
//! compressed (gzip, deterministic) and uploaded; then the config and a Docker schema 2
//! manifest. dockerd's progress messages throughout; errors after the stream starts are its last
//! message, as dockerd sends them.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_api::JsonMessage;
use berth_image::push::{PushLayer, CONFIG_V1, LAYER_GZIP, MANIFEST_V2};
use berth_meta::BlobSource;
use berth_registry::AuthConfig;
use berth_types::{Digest, Reference};
use serde_json::json;
use tokio::sync::{mpsc, Semaphore};

use crate::error::{blocking, Error, Result};
use crate::Daemon;

/// An image manifest (schema 2) as dockerd writes it: fields in this order, indented by three
/// spaces (Go's `json.MarshalIndent(m, "", "   ")`), no final newline. The same image pushed
/// by dockerd and by berth (its layers pulled, so the same blobs) gets the same manifest digest.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: Descriptor<'a>,
    layers: Vec<Descriptor<'a>>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor<'a> {
    media_type: &'a str,
    size: i64,
    digest: String,
}

fn manifest_bytes(m: &Manifest<'_>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"   ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    serde::Serialize::serialize(m, &mut ser).map_err(|e| Error::internal(e.to_string()))?;
    Ok(out)
}

/// Docker's `max-concurrent-uploads` default.
pub const MAX_UPLOADS: usize = 5;

fn short(d: &str) -> String {
    d.trim_start_matches("sha256:").chars().take(12).collect()
}

impl Daemon {
    /// `POST /images/{name}/push?tag=`: the stream of progress messages (empty `tag`: every
    /// local tag of the repository).
    pub async fn push(
        self: &Arc<Self>,
        name: &str,
        tag: &str,
        auth: AuthConfig,
    ) -> Result<mpsc::Receiver<JsonMessage>> {
        let named = Reference::parse_named(name).map_err(|e| Error::invalid(e.to_string()))?;
        let (tx, rx) = mpsc::channel(64);
        let daemon = self.clone();
        let tag = tag.to_string();
        tokio::spawn(async move {
            let _ = tx
                .send(JsonMessage::status(format!(
                    "The push refers to repository [{}]",
                    named.name()
                )))
                .await;
            if let Err(e) = daemon.push_all(&named, &tag, &auth, &tx).await {
                let _ = tx.send(JsonMessage::error(e.to_string(), None)).await;
            }
        });
        Ok(rx)
    }

    async fn push_all(
        self: &Arc<Self>,
        named: &Reference,
        tag: &str,
        auth: &AuthConfig,
        tx: &mpsc::Sender<JsonMessage>,
    ) -> Result<()> {
        // dockerd: a repository with no tag here at all is "An image does not exist locally with
        // the tag: NAME" (the name alone); one tag missing from it, "tag does not exist: NAME:TAG".
        let images = self.images.clone();
        let repo = named.name();
        let (here, in_repo) = blocking(move || {
            Ok((
                images.repository_has_references(&repo)?,
                images.repository_tags(&repo)?,
            ))
        })
        .await?;
        if !here {
            return Err(Error::invalid(format!(
                "An image does not exist locally with the tag: {}",
                named.familiar_name()
            )));
        }
        let tags: Vec<String> = if tag.is_empty() {
            in_repo.into_iter().map(|(t, _)| t).collect()
        } else {
            vec![tag.to_string()]
        };
        for t in tags {
            let r = named.with_tag(&t).map_err(|e| Error::invalid(e.to_string()))?;
            self.push_one(&r, auth, tx).await?;
        }
        Ok(())
    }

    async fn push_one(
        self: &Arc<Self>,
        r: &Reference,
        auth: &AuthConfig,
        tx: &mpsc::Sender<JsonMessage>,
    ) -> Result<()> {
        let images = self.images.clone();
        let name = r.to_string();
        let plan = blocking(move || {
            images.push_plan(&name).map_err(|e| match e.kind() {
                berth_types::ErrorKind::NotFound => {
                    Error::invalid(format!("tag does not exist: {}", name_familiar(&name)))
                }
                _ => e.into(),
            })
        })
        .await?;
        for l in &plan.layers {
            let _ = tx.send(JsonMessage::layer("Preparing", short(&l.diff_id))).await;
        }
        let limit = Arc::new(Semaphore::new(MAX_UPLOADS));
        let mut tasks = Vec::new();
        for l in plan.layers.clone() {
            let (daemon, r, auth, tx, limit) =
                (self.clone(), r.clone(), auth.clone(), tx.clone(), limit.clone());
            tasks.push(tokio::spawn(async move {
                if limit.available_permits() == 0 {
                    let _ = tx.send(JsonMessage::layer("Waiting", short(&l.diff_id))).await;
                }
                let _permit = limit.acquire_owned().await;
                daemon.push_layer(&r, &l, &auth, &tx).await
            }));
        }
        let mut layers = Vec::new();
        for t in tasks {
            layers.push(t.await??);
        }
        // The config blob, then the manifest.
        let config_digest = sha256(&plan.config);
        if !self.registry.blob_exists(r, &config_digest, auth).await? {
            let body = std::io::Cursor::new(plan.config.clone());
            self.registry
                .upload_blob(r, &config_digest, plan.config.len() as u64, body, |_| {}, auth)
                .await?;
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: MANIFEST_V2,
            config: Descriptor {
                media_type: CONFIG_V1,
                size: plan.config.len() as i64,
                digest: config_digest.to_string(),
            },
            layers: layers
                .iter()
                .map(|s: &BlobSource| Descriptor {
                    media_type: &s.media_type,
                    size: s.size,
                    digest: s.digest.clone(),
                })
                .collect(),
        };
        let body = manifest_bytes(&manifest)?;
        let tag = r.tag().unwrap_or("latest").to_string();
        let digest = self
            .registry
            .put_manifest(r, &tag, MANIFEST_V2, &body, auth)
            .await?;
        let _ = tx
            .send(JsonMessage::status(format!(
                "{tag}: digest: {digest} size: {}",
                body.len()
            )))
            .await;
        let _ = tx
            .send(JsonMessage::aux(
                json!({"Tag": tag, "Digest": digest.to_string(), "Size": body.len()}),
            ))
            .await;
        berth_sys::failpoint::hit("image.push.uploaded");
        let images = self.images.clone();
        let (id, repo_digest) = (plan.id.clone(), format!("{}@{digest}", r.name()));
        blocking(move || Ok(images.record_push(&id, &repo_digest, &layers)?)).await?;
        let mut a = BTreeMap::new();
        a.insert("name".to_string(), r.familiar());
        self.events.emit("image", "push", &r.familiar(), a);
        Ok(())
    }

    /// One layer: skipped, mounted or uploaded; where it is now.
    async fn push_layer(
        self: &Arc<Self>,
        r: &Reference,
        l: &PushLayer,
        auth: &AuthConfig,
        tx: &mpsc::Sender<JsonMessage>,
    ) -> Result<BlobSource> {
        let id = short(&l.diff_id);
        let here = |digest: &str, media_type: &str, size: i64| BlobSource {
            digest: digest.to_string(),
            repository: r.name(),
            diff_id: l.diff_id.clone(),
            media_type: media_type.to_string(),
            size,
        };
        // What earlier pulls and pushes learned: the same registry has it, in this repository or
        // in another one a mount can take it from.
        for s in l.sources.iter().filter(|s| same_registry(&s.repository, r)) {
            let Ok(d) = Digest::parse(&s.digest) else { continue };
            if s.repository == r.name() {
                if self.registry.blob_exists(r, &d, auth).await? {
                    let _ = tx
                        .send(JsonMessage::layer("Layer already exists", id.clone()))
                        .await;
                    return Ok(here(&s.digest, &s.media_type, s.size));
                }
            } else if self
                .registry
                .mount_blob(r, &d, &repo_path(&s.repository), auth)
                .await?
            {
                let from = repo_path(&s.repository);
                let _ = tx
                    .send(JsonMessage::layer(format!("Mounted from {from}"), id.clone()))
                    .await;
                return Ok(here(&s.digest, &s.media_type, s.size));
            }
        }
        let images = self.images.clone();
        let diff = l.diff_id.clone();
        let compressed = blocking(move || Ok(images.compress_layer(&diff)?)).await?;
        let (digest, size) = (compressed.digest.clone(), compressed.size);
        if self.registry.blob_exists(r, &digest, auth).await? {
            let _ = tx
                .send(JsonMessage::layer("Layer already exists", id.clone()))
                .await;
            return Ok(here(digest.as_ref(), LAYER_GZIP, size as i64));
        }
        let file = tokio::fs::File::from_std(
            compressed
                .open()
                .map_err(|e| Error::io("cannot open a compressed layer", e))?,
        );
        let progress_tx = tx.clone();
        let pid = id.clone();
        let mut shown = 0u64;
        self.registry
            .upload_blob(
                r,
                &digest,
                size,
                file,
                move |sent| {
                    if sent - shown >= 512 * 1024 || sent == size {
                        shown = sent;
                        let _ = progress_tx.try_send(JsonMessage::progress(
                            "Pushing",
                            pid.clone(),
                            sent as i64,
                            size as i64,
                        ));
                    }
                },
                auth,
            )
            .await?;
        drop(compressed);
        let _ = tx.send(JsonMessage::layer("Pushed", id)).await;
        Ok(here(digest.as_ref(), LAYER_GZIP, size as i64))
    }
}

fn sha256(b: &[u8]) -> Digest {
    use sha2::Digest as _;
    let sum: [u8; 32] = sha2::Sha256::digest(b).into();
    Digest::from_sha256_bytes(&sum)
}

fn same_registry(repository: &str, r: &Reference) -> bool {
    Reference::parse_named(repository).is_ok_and(|x| x.domain() == r.domain())
}

fn repo_path(repository: &str) -> String {
    Reference::parse_named(repository)
        .map(|x| x.path().to_string())
        .unwrap_or_default()
}

fn name_familiar(name: &str) -> String {
    Reference::parse(name)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte for byte what Go's `json.MarshalIndent(m, "", "   ")` makes of dockerd's manifest.
    #[test]
    fn the_manifest_is_written_as_dockerd_writes_it() {
        let m = Manifest {
            schema_version: 2,
            media_type: MANIFEST_V2,
            config: Descriptor {
                media_type: CONFIG_V1,
                size: 1457,
                digest: "sha256:aa".into(),
            },
            layers: vec![Descriptor {
                media_type: LAYER_GZIP,
                size: 772788,
                digest: "sha256:bb".into(),
            }],
        };
        let want = r#"{
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
   "config": {
      "mediaType": "application/vnd.docker.container.image.v1+json",
      "size": 1457,
      "digest": "sha256:aa"
   },
   "layers": [
      {
         "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
         "size": 772788,
         "digest": "sha256:bb"
      }
   ]
}"#;
        assert_eq!(String::from_utf8(manifest_bytes(&m).unwrap()).unwrap(), want);
    }
}
