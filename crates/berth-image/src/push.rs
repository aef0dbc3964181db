//! The store's side of `docker push`: what an image is made of, each layer compressed the way
//! registries expect (gzip, deterministic: the same tar always gives the same blob), and what a
//! push learned afterwards. The registry protocol and the order of work are the caller's.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use berth_meta::BlobSource;
use berth_types::{Digest, Reference};
use sha2::{Digest as _, Sha256};

use crate::{Error, ImageService};

static PUSH_SEQ: AtomicU64 = AtomicU64::new(0);

/// Docker's media types for what a push uploads.
pub const MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Image config blob.
pub const CONFIG_V1: &str = "application/vnd.docker.container.image.v1+json";
/// gzip layer blob.
pub const LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// One layer to push.
#[derive(Debug, Clone)]
pub struct PushLayer {
    /// The uncompressed layer's digest (`RootFS.Layers`); push progress ids are its first 12 hex.
    pub diff_id: String,
    /// Uncompressed size.
    pub size: i64,
    /// Registry blobs known to hold this layer (newest first).
    pub sources: Vec<BlobSource>,
}

/// What pushing one image takes.
#[derive(Debug, Clone)]
pub struct PushPlan {
    pub id: String,
    /// The config's exact bytes (its digest is the image ID).
    pub config: Vec<u8>,
    pub layers: Vec<PushLayer>,
}

/// A layer compressed into a temporary file under `content/ingest` (deleted when dropped).
#[derive(Debug)]
pub struct CompressedLayer {
    pub(crate) path: PathBuf,
    /// `sha256:` of the compressed bytes.
    pub digest: Digest,
    pub size: u64,
}

impl CompressedLayer {
    /// Opens the compressed bytes for upload.
    pub fn open(&self) -> io::Result<File> {
        File::open(&self.path)
    }
}

impl Drop for CompressedLayer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl ImageService {
    /// The image a push of `name_or_id` sends: its config bytes and its layers.
    pub fn push_plan(&self, name_or_id: &str) -> Result<PushPlan, Error> {
        let id = self.find(name_or_id)?;
        let digest = Digest::parse(&id).map_err(|_| Error::NotFound(name_or_id.to_string()))?;
        let config = self.content.read(&digest)?;
        let mut layers = Vec::new();
        for l in self.db.image_layers(&id)? {
            layers.push(PushLayer {
                sources: self.db.sources_of(&l.diff_id)?,
                diff_id: l.diff_id,
                size: l.size,
            });
        }
        Ok(PushPlan { id, config, layers })
    }

    /// The local tags of a repository (normalised name, e.g. `127.0.0.1:5000/x`), sorted, with
    /// their images: what `push -a` pushes.
    pub fn repository_tags(&self, repository: &str) -> Result<Vec<(String, String)>, Error> {
        let mut out = Vec::new();
        for (name, id) in self.db.all_tags()? {
            if let Ok(r) = Reference::parse(&name) {
                if r.name() == repository {
                    if let Some(t) = r.tag() {
                        out.push((t.to_string(), id));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Whether any reference of `repository` (a tag or a repository digest) is here: dockerd's
    /// test before a push (`ReferencesByName`).
    pub fn repository_has_references(&self, repository: &str) -> Result<bool, Error> {
        let in_repo = |name: &str| Reference::parse(name).is_ok_and(|r| r.name() == repository);
        Ok(self.db.all_tags()?.iter().any(|(n, _)| in_repo(n))
            || self.db.all_repo_digests()?.iter().any(|(n, _)| in_repo(n)))
    }

    /// Compresses a layer's tar with gzip into a temporary file, hashing it on the way.
    pub fn compress_layer(&self, diff_id: &str) -> Result<CompressedLayer, Error> {
        let d = Digest::parse(diff_id).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let tar = self.content.open_blob(&d)?;
        let path = self.content.root().join("ingest").join(format!(
            "push-{}-{}",
            std::process::id(),
            PUSH_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let io_err = |err| Error::Read {
            what: "layer for push",
            err,
        };
        let file = File::create(&path).map_err(io_err)?;
        let mut out = CompressedLayer {
            path,
            digest: d.clone(),
            size: 0,
        };
        let mut hashing = HashingWriter {
            inner: BufWriter::new(file),
            hasher: Sha256::new(),
            n: 0,
        };
        {
            // Level 1: push is bound by compression, and level 6 is ~2.5x slower here for blobs
            // only a little smaller (bench/RESULTS.md). The header has no timestamp: the same
            // tar always gives the same blob.
            let mut gz = flate2::write::GzEncoder::new(&mut hashing, flate2::Compression::fast());
            io::copy(&mut BufReader::new(tar), &mut gz).map_err(io_err)?;
            gz.finish().map_err(io_err)?;
        }
        hashing.inner.flush().map_err(io_err)?;
        let sum: [u8; 32] = hashing.hasher.finalize().into();
        out.digest = Digest::from_sha256_bytes(&sum);
        out.size = hashing.n;
        Ok(out)
    }

    /// Opens a blob of the store (a layer tar or a config) for reading.
    pub fn open_blob(&self, digest: &str) -> Result<Box<dyn Read + Send>, Error> {
        let d = Digest::parse(digest).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        Ok(Box::new(self.content.open_blob(&d)?))
    }

    /// What a push learned, in one transaction: the image's repository digest
    /// (`127.0.0.1:5000/x@sha256:…`, normalised) and where its layers now are.
    pub fn record_push(
        &self,
        image_id: &str,
        repo_digest: &str,
        sources: &[BlobSource],
    ) -> Result<(), Error> {
        let _g = self.lock();
        self.db.record_push(image_id, repo_digest, sources)?;
        Ok(())
    }
}

struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    n: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.hasher.update(&buf[..k]);
        self.n += k as u64;
        Ok(k)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
