//! `docker save` and `docker load`.
//!
//! # The archive `save` writes
//! Both layouts at once, sharing the bytes through hard-link entries:
//! ```text
//! oci-layout                       {"imageLayoutVersion":"1.0.0"}
//! index.json                       one manifest descriptor per tag (or one untagged), annotated
//!                                  io.containerd.image.name / org.opencontainers.image.ref.name
//! blobs/sha256/<hex>               layer tars (uncompressed), configs, OCI manifests
//! <config-hex>.json                hard link to the config blob           (legacy docker save)
//! <chain-hex>/VERSION, json        "1.0" and {"id","parent"}              (legacy)
//! <chain-hex>/layer.tar            hard link to the layer blob            (legacy)
//! manifest.json                    [{"Config","RepoTags","Layers"}]       (legacy)
//! repositories                     {"repo":{"tag":"<top chain-hex>"}}     (legacy)
//! ```
//! Legacy layer directories are named by the layer's chain ID (unique per position, unlike the
//! diff ID), not by docker's v1 IDs; loaders go by `manifest.json`.
//!
//! # load
//! The (possibly compressed) archive is unpacked, confined, into `content/ingest/load-*` (deleted
//! when done, and at open after a crash); every file named by the archive is then opened with
//! `RESOLVE_IN_ROOT`, so `"../../etc/shadow"` or a symlinked `layer.tar` cannot read the host.
//! `manifest.json` is used when present, else `index.json` (OCI; layers may be compressed). The
//! config bytes are kept exactly, so the image ID survives the round trip; each layer is checked
//! against its diff ID. Layers already present (by chain ID) are not unpacked again. Each image is
//! created like an import: files first, then one transaction.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use berth_archive::{extract_tar, open_in_root};
use berth_meta::{ImageRow, LayerRow};
use berth_types::{Digest, Reference};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::create::{chain_id, decompress, parse_tag};
use crate::{ConfigFile, Error, ImageService, MAX_LAYERS};

static LOAD_SEQ: AtomicU64 = AtomicU64::new(0);

const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MT_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// One `manifest.json` entry.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestItem {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    digest: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Debug, Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
}

#[derive(Debug, Deserialize)]
struct OciIndex {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct OciManifest {
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

fn werr(err: io::Error) -> Error {
    Error::Write(err)
}

fn bad(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}

struct TarOut<'w> {
    b: tar::Builder<&'w mut dyn Write>,
    dirs: HashSet<String>,
}

impl TarOut<'_> {
    fn dir(&mut self, name: &str) -> Result<(), Error> {
        if !self.dirs.insert(name.to_string()) {
            return Ok(());
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        self.b.append_data(&mut h, name, io::empty()).map_err(werr)
    }

    fn file(&mut self, name: &str, size: u64, data: impl Read) -> Result<(), Error> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(size);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        self.b.append_data(&mut h, name, data).map_err(werr)
    }

    fn bytes(&mut self, name: &str, data: &[u8]) -> Result<(), Error> {
        self.file(name, data.len() as u64, data)
    }

    fn link(&mut self, name: &str, target: &str) -> Result<(), Error> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Link);
        h.set_mode(0o644);
        h.set_size(0);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        self.b.append_link(&mut h, name, target).map_err(werr)
    }
}

/// Removes a directory tree when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn sha256_digest(data: &[u8]) -> String {
    let sum: [u8; 32] = Sha256::digest(data).into();
    Digest::from_sha256_bytes(&sum).to_string()
}

impl ImageService {
    /// `docker save`: writes the images `names` (names, IDs or short IDs) to `w` as one tar in
    /// docker's legacy layout and the OCI image layout (see the module doc). A name that is a
    /// reference is saved with that tag; an ID without tags. Streams the layer blobs.
    pub fn save(&self, names: &[String], w: &mut dyn Write) -> Result<(), Error> {
        // image id → tags, in the order given.
        let mut images: Vec<(String, Vec<Reference>)> = Vec::new();
        for name in names {
            let id = self.find(name)?;
            // A name that is a tag of the image (not an ID) is saved with that tag.
            let tag = Reference::parse(name)
                .ok()
                .filter(|r| r.digest().is_none())
                .filter(|r| {
                    self.db.tag_target(&r.to_string()).ok().flatten().as_deref() == Some(id.as_str())
                });
            match images.iter_mut().find(|(i, _)| *i == id) {
                Some((_, tags)) => tags.extend(tag),
                None => images.push((id, tag.into_iter().collect())),
            }
        }
        let mut out = TarOut {
            b: tar::Builder::new(w),
            dirs: HashSet::new(),
        };
        out.dir("blobs/")?;
        out.dir("blobs/sha256/")?;
        let mut blobs_written: HashSet<String> = HashSet::new();
        let mut manifest = Vec::new();
        let mut index = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (id, tags) in &images {
            let digest = Digest::parse(id).map_err(|_| Error::NotFound(id.clone()))?;
            let config = self.content.read(&digest)?;
            let layers = self.db.image_layers(id)?;
            let mut layer_paths = Vec::new();
            let mut oci_layers = Vec::new();
            let mut parent: Option<&LayerRow> = None;
            for l in &layers {
                let d = Digest::parse(&l.diff_id).map_err(|_| Error::NotFound(l.diff_id.clone()))?;
                let blob = format!("blobs/sha256/{}", d.hex());
                let f = self.content.open_blob(&d)?;
                let size = f.metadata().map_err(werr)?.len();
                if blobs_written.insert(blob.clone()) {
                    out.file(&blob, size, f)?;
                }
                let dir = l.chain_id.trim_start_matches("sha256:").to_string();
                if !out.dirs.contains(&format!("{dir}/")) {
                    out.dir(&format!("{dir}/"))?;
                    out.bytes(&format!("{dir}/VERSION"), b"1.0")?;
                    let mut j = json!({ "id": dir });
                    if let Some(p) = parent {
                        j["parent"] = json!(p.chain_id.trim_start_matches("sha256:"));
                    }
                    out.bytes(&format!("{dir}/json"), j.to_string().as_bytes())?;
                    out.link(&format!("{dir}/layer.tar"), &blob)?;
                }
                layer_paths.push(format!("{dir}/layer.tar"));
                oci_layers.push(json!({"mediaType": MT_LAYER, "digest": l.diff_id, "size": size}));
                parent = Some(l);
            }
            let cfg_blob = format!("blobs/sha256/{}", digest.hex());
            if blobs_written.insert(cfg_blob.clone()) {
                out.bytes(&cfg_blob, &config)?;
                out.link(&format!("{}.json", digest.hex()), &cfg_blob)?;
            }
            let m = json!({
                "schemaVersion": 2,
                "mediaType": MT_MANIFEST,
                "config": {"mediaType": MT_CONFIG, "digest": id, "size": config.len()},
                "layers": oci_layers,
            })
            .to_string();
            let m_digest = sha256_digest(m.as_bytes());
            let m_blob = format!("blobs/sha256/{}", &m_digest[7..]);
            if blobs_written.insert(m_blob.clone()) {
                out.bytes(&m_blob, m.as_bytes())?;
            }
            let desc = |ann: Option<serde_json::Value>| {
                let mut d = json!({"mediaType": MT_MANIFEST, "digest": m_digest, "size": m.len()});
                if let Some(a) = ann {
                    d["annotations"] = a;
                }
                d
            };
            if tags.is_empty() {
                index.push(desc(None));
            }
            for t in tags {
                index.push(desc(Some(json!({
                    "io.containerd.image.name": t.to_string(),
                    "org.opencontainers.image.ref.name": t.tag().unwrap_or("latest"),
                }))));
                if let Some(top) = layers.last() {
                    repositories.entry(t.familiar_name()).or_default().insert(
                        t.tag().unwrap_or("latest").to_string(),
                        top.chain_id.trim_start_matches("sha256:").to_string(),
                    );
                }
            }
            manifest.push(ManifestItem {
                config: format!("{}.json", digest.hex()),
                repo_tags: (!tags.is_empty()).then(|| tags.iter().map(|t| t.familiar()).collect()),
                layers: layer_paths,
            });
        }
        out.bytes("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let index = json!({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": index});
        out.bytes("index.json", index.to_string().as_bytes())?;
        out.bytes(
            "manifest.json",
            serde_json::to_string(&manifest)
                .expect("manifest serialises")
                .as_bytes(),
        )?;
        if !repositories.is_empty() {
            out.bytes(
                "repositories",
                serde_json::to_string(&repositories)
                    .expect("serialises")
                    .as_bytes(),
            )?;
        }
        let w = out.b.into_inner().map_err(werr)?;
        w.flush().map_err(werr)
    }

    /// `docker load`: reads a `docker save` archive (legacy `manifest.json` or OCI `index.json`
    /// layout, possibly gzip/bzip2/xz/zstd compressed) and creates its images and tags. Calls
    /// `progress` with a status line per layer unpacked. Returns docker's output lines:
    /// `Loaded image: <tag>` per tag, `Loaded image ID: sha256:…` per untagged image.
    pub fn load(&self, r: &mut dyn Read, progress: &mut dyn FnMut(String)) -> Result<Vec<String>, Error> {
        let tmp = TempDir(self.content.root().join("ingest").join(format!(
            "load-{}-{}",
            std::process::id(),
            LOAD_SEQ.fetch_add(1, Ordering::Relaxed)
        )));
        fs::create_dir(&tmp.0).map_err(|err| Error::Read {
            what: "image archive",
            err,
        })?;
        let mut tar = decompress(r)?;
        extract_tar(&tmp.0, &mut tar)?;
        berth_sys::failpoint::hit("image.load.extracted");
        let root = tmp.0.as_path();
        let read = |path: &str| -> Result<Vec<u8>, Error> {
            let mut v = Vec::new();
            open_in_root(root, path)
                .and_then(|mut f| f.read_to_end(&mut v))
                .map_err(|err| match err.kind() {
                    io::ErrorKind::NotFound => bad(format!("invalid archive: {path} not found")),
                    _ => Error::Read {
                        what: "image archive",
                        err,
                    },
                })?;
            Ok(v)
        };
        // (config path, layer paths, tags)
        let mut items: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
        if let Ok(m) = open_in_root(root, "manifest.json") {
            let m: Vec<ManifestItem> = serde_json::from_reader(m)
                .map_err(|e| bad(format!("invalid archive: failed to decode manifest.json: {e}")))?;
            for it in m {
                items.push((it.config, it.layers, it.repo_tags.unwrap_or_default()));
            }
        } else {
            if open_in_root(root, "index.json").is_err() {
                // Neither layout: docker's words (it reads only manifest.json).
                return Err(bad("invalid archive: does not contain a manifest.json"));
            }
            let index: OciIndex = serde_json::from_slice(&read("index.json")?)
                .map_err(|e| bad(format!("invalid index.json: {e}")))?;
            for d in index.manifests {
                let tag = d
                    .annotations
                    .get("io.containerd.image.name")
                    .cloned()
                    .or_else(|| {
                        d.annotations
                            .get("org.opencontainers.image.ref.name")
                            .filter(|n| Reference::parse(n).is_ok() && n.contains(['/', ':']))
                            .cloned()
                    });
                let m = self.oci_manifest(&read, &d.digest, 0)?;
                let config = m.config.ok_or_else(|| bad("invalid manifest: no config"))?;
                items.push((
                    blob_path(&config.digest)?,
                    m.layers
                        .iter()
                        .map(|l| blob_path(&l.digest))
                        .collect::<Result<_, _>>()?,
                    tag.into_iter().collect(),
                ));
            }
        }
        if items.is_empty() {
            return Err(bad("no images found in the archive"));
        }
        let mut lines = Vec::new();
        for (config_path, layer_paths, tags) in items {
            let config = read(&config_path)?;
            let tags = tags.iter().map(|t| parse_tag(t)).collect::<Result<Vec<_>, _>>()?;
            let id = self.load_image(&config, &layer_paths, root, &tags, progress)?;
            berth_sys::failpoint::hit("image.load.committed");
            for r in &tags {
                lines.push(format!("Loaded image: {}", r.familiar()));
            }
            if tags.is_empty() {
                lines.push(format!("Loaded image ID: {id}"));
            }
        }
        Ok(lines)
    }

    /// An OCI manifest blob; an index is followed to the host's (or the first) manifest.
    fn oci_manifest(
        &self,
        read: &dyn Fn(&str) -> Result<Vec<u8>, Error>,
        digest: &str,
        depth: u32,
    ) -> Result<OciManifest, Error> {
        let bytes = read(&blob_path(digest)?)?;
        if sha256_digest(&bytes) != digest {
            return Err(bad(format!(
                "invalid archive: blob {digest} does not match its digest"
            )));
        }
        let m: OciManifest =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid manifest {digest}: {e}")))?;
        if m.config.is_none() && !m.manifests.is_empty() && depth < 4 {
            let arch = crate::config::host_architecture();
            let pick = m
                .manifests
                .iter()
                .find(|d| d.platform.as_ref().is_some_and(|p| p.architecture == arch))
                .unwrap_or(&m.manifests[0]);
            return self.oci_manifest(read, &pick.digest, depth + 1);
        }
        Ok(m)
    }

    /// Creates one loaded image from its exact config bytes and its layer files (in `root`), and
    /// points `tags` at it, in one transaction.
    fn load_image(
        &self,
        config: &[u8],
        layer_paths: &[String],
        root: &Path,
        tags: &[Reference],
        progress: &mut dyn FnMut(String),
    ) -> Result<String, Error> {
        let id = sha256_digest(config);
        let cfg: ConfigFile =
            serde_json::from_slice(config).map_err(|e| bad(format!("invalid image config: {e}")))?;
        let tags: Vec<String> = tags.iter().map(|r| r.to_string()).collect();
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        let tag_time = (!tags.is_empty()).then(crate::now_rfc3339);
        if let Some(img) = self.db.image(&id)? {
            if !tags.is_empty() {
                let _g = self.lock();
                let row = ImageRow {
                    last_tag_time: tag_time,
                    ..img
                };
                self.db.insert_image(&row, &self.db.image_layers(&id)?, &tags)?;
            }
            return Ok(id);
        }
        let diff_ids = &cfg.rootfs.diff_ids;
        if diff_ids.len() != layer_paths.len() {
            return Err(bad(format!(
                "invalid manifest, layers length mismatch: expected {}, got {}",
                diff_ids.len(),
                layer_paths.len()
            )));
        }
        if diff_ids.len() > MAX_LAYERS {
            return Err(bad("max depth exceeded"));
        }
        let _g = self.lock();
        let mut chain: Vec<LayerRow> = Vec::new();
        let mut created: Vec<LayerRow> = Vec::new();
        let result = (|| -> Result<(), Error> {
            for (diff, path) in diff_ids.iter().zip(layer_paths) {
                let cid = chain_id(chain.last().map(|l| l.chain_id.as_str()), diff);
                if let Some(row) = self.db.layer(&cid)? {
                    chain.push(row);
                    continue;
                }
                progress(format!(
                    "Loading layer {}",
                    &diff.trim_start_matches("sha256:")[..12.min(diff.len())]
                ));
                let mut f = open_in_root(root, path).map_err(|err| Error::Read { what: "layer", err })?;
                let mut tar = decompress(&mut f)?;
                let row = self.add_layer(chain.last(), &mut tar)?;
                if row.diff_id != *diff {
                    created.push(row.clone());
                    return Err(bad(format!(
                        "invalid diffID for layer {}: expected {diff}, got {}",
                        chain.len(),
                        row.diff_id
                    )));
                }
                created.push(row.clone());
                chain.push(row);
            }
            Ok(())
        })();
        if let Err(e) = result {
            self.drop_unreferenced(&created, &id);
            return Err(e);
        }
        let digest = self.content.write_blob(config)?.to_string();
        debug_assert_eq!(digest, id);
        let row = ImageRow {
            id: id.clone(),
            created: cfg.created.clone(),
            size: chain.iter().map(|l| l.size).sum(),
            parent: String::new(),
            last_tag_time: tag_time,
            added: berth_types::time::now_nanos(),
        };
        if let Err(e) = self.db.insert_image(&row, &chain, &tags) {
            self.drop_unreferenced(&created, &id);
            return Err(e.into());
        }
        Ok(id)
    }
}

/// `blobs/sha256/<hex>` for a digest, validated (no path tricks through the digest).
fn blob_path(digest: &str) -> Result<String, Error> {
    let d = Digest::parse(digest).map_err(|_| bad(format!("invalid digest {digest:?}")))?;
    Ok(format!("blobs/sha256/{}", d.hex()))
}
