//! Creating images: `import`, the general `create_image` (layers + config), built-in images.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use berth_archive::apply_layer;
use berth_meta::{ImageRow, LayerRow};
use berth_snapshot::Snapshotter;
use berth_types::{Digest, Reference};
use sha2::{Digest as _, Sha256};

use crate::config::{ConfigFile, History};
use crate::{changes, now_rfc3339, Error, ImageService, ImportOptions, MAX_LAYERS};

/// The hello program compiled by build.rs from `hello/hello.c`.
pub(crate) static HELLO: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hello"));

/// Fixed creation time of built-in images, so their IDs are stable.
const BUILTIN_CREATED: &str = "2025-01-01T00:00:00Z";
const BUILTIN_MTIME: u64 = 1_735_689_600; // 2025-01-01T00:00:00Z
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

static EXTRACT_SEQ: AtomicU64 = AtomicU64::new(0);

/// A layer unpacked into an `extract-*` snapshot, not yet committed.
pub(crate) struct Extracted {
    pub(crate) key: String,
    pub(crate) diff_id: String,
    size: u64,
}

/// Copies everything read into a content-store writer.
struct Tee<'a, R> {
    inner: R,
    out: &'a mut berth_content::Writer,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Wraps `r` in the decompressor its magic bytes call for (gzip, bzip2, xz, zstd) or none.
pub(crate) fn decompress<'a>(r: &'a mut dyn Read) -> Result<Box<dyn Read + 'a>, Error> {
    let mut magic = [0u8; 6];
    let mut n = 0;
    while n < magic.len() {
        match r.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => {
                return Err(Error::Read {
                    what: "image tar",
                    err,
                })
            }
        }
    }
    let head = io::Cursor::new(magic[..n].to_vec()).chain(r);
    Ok(match &magic[..n] {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(head)),
        [b'B', b'Z', b'h', ..] => Box::new(bzip2::read::MultiBzDecoder::new(head)),
        [0xfd, b'7', b'z', b'X', b'Z', 0x00] => Box::new(xz2::read::XzDecoder::new_multi_decoder(head)),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => {
            Box::new(zstd::stream::read::Decoder::new(head).map_err(|err| Error::Read {
                what: "zstd stream",
                err,
            })?)
        }
        _ => Box::new(head),
    })
}

pub(crate) fn chain_id(parent: Option<&str>, diff_id: &str) -> String {
    match parent {
        None => diff_id.to_string(),
        Some(p) => {
            let sum: [u8; 32] = Sha256::digest(format!("{p} {diff_id}").as_bytes()).into();
            Digest::from_sha256_bytes(&sum).to_string()
        }
    }
}

/// Parses a tag for a new image: normalised, `:latest` by default, no digest.
pub(crate) fn parse_tag(repo_tag: &str) -> Result<Reference, Error> {
    let r = Reference::parse(repo_tag)?;
    if r.digest().is_some() {
        return Err(Error::InvalidArgument(
            "refusing to create a tag with a digest reference".into(),
        ));
    }
    Ok(r)
}

impl ImageService {
    /// `docker import`: a root filesystem tar (possibly gzip/bzip2/xz/zstd compressed), applied
    /// confined, becomes a one-layer image. `changes` are Dockerfile lines; `message` goes in
    /// the history and `Comment`. Tags it when `repo_tag` is given. Returns `sha256:<hex>`.
    pub fn import(&self, src: &mut dyn Read, opts: &ImportOptions) -> Result<String, Error> {
        let tag = opts.repo_tag.as_deref().map(parse_tag).transpose()?;
        let created = now_rfc3339();
        let mut cfg = ConfigFile::for_host(created.clone());
        changes::apply_changes(&mut cfg.config, &opts.changes).map_err(Error::InvalidArgument)?;
        let message = if opts.message.is_empty() {
            "Imported from -".to_string()
        } else {
            opts.message.clone()
        };
        cfg.comment = message.clone();
        cfg.history = vec![History {
            created,
            comment: message,
            ..Default::default()
        }];
        let mut tar = decompress(src)?;
        self.create_image(
            None,
            cfg,
            &mut [&mut *tar],
            tag.as_ref().map(|r| r.to_string()).as_deref(),
        )
    }

    /// Creates an image from a config and layer tars (uncompressed), on top of the layers of
    /// `parent` (an image ID or name) if given. `config.rootfs.diff_ids` is filled in here;
    /// `created` and `history` are the caller's. Enforces docker's 127-layer limit
    /// (`max depth exceeded`). Tags the image with `tag` (a normalised or familiar reference).
    /// Returns `sha256:<hex>`. On failure nothing is left behind.
    pub fn create_image(
        &self,
        parent: Option<&str>,
        mut config: ConfigFile,
        layers: &mut [&mut dyn Read],
        tag: Option<&str>,
    ) -> Result<String, Error> {
        let tag = tag.map(parse_tag).transpose()?;
        let (parent_id, mut chain) = match parent {
            Some(p) => {
                let id = self.find(p)?;
                (id.clone(), self.db.image_layers(&id)?)
            }
            None => (String::new(), Vec::new()),
        };
        if chain.len() + layers.len() > MAX_LAYERS {
            return Err(Error::InvalidArgument("max depth exceeded".into()));
        }
        let _g = self.lock();
        let mut created: Vec<LayerRow> = Vec::new();
        let mut id = String::new();
        let result = (|| -> Result<(), Error> {
            for tar in layers.iter_mut() {
                let layer = self.add_layer(chain.last(), &mut **tar)?;
                created.push(layer.clone());
                chain.push(layer);
            }
            config.rootfs.kind = "layers".into();
            config.rootfs.diff_ids = chain.iter().map(|l| l.diff_id.clone()).collect();
            let bytes = serde_json::to_vec(&config).expect("config serialises");
            id = self.content.write_blob(&bytes)?.to_string();
            berth_sys::failpoint::hit("image.create.config-written");
            let now = berth_types::time::now_nanos();
            let row = ImageRow {
                id: id.clone(),
                created: config.created.clone(),
                size: chain.iter().map(|l| l.size).sum(),
                parent: parent_id,
                last_tag_time: tag.as_ref().map(|_| berth_types::time::rfc3339_nano(now)),
                added: now,
            };
            let tag = tag.as_ref().map(|r| r.to_string());
            self.db.insert_image(&row, &chain, tag.as_deref().as_slice())?;
            berth_sys::failpoint::hit("image.create.committed");
            Ok(())
        })();
        if let Err(e) = result {
            // Every layer this call unpacked, not only the last: a later layer's failure must
            // not leave the earlier ones behind.
            self.drop_unreferenced(&created, &id);
            return Err(e);
        }
        Ok(id)
    }

    /// After a failed create: removes the layers and config this call may have created. Only
    /// what the database positively answers is unreferenced goes; on a database error the files
    /// stay for start-up reconciliation to judge.
    pub(crate) fn drop_unreferenced(&self, chain: &[LayerRow], image_id: &str) {
        if !image_id.is_empty() && matches!(self.db.image(image_id), Ok(None)) {
            let _ = crate::remove::delete_blob(&self.content, image_id);
        }
        for l in chain.iter().rev() {
            if matches!(self.db.layer(&l.chain_id), Ok(None)) && !self.leases.held(&l.chain_id) {
                let _ = self.snapshots.remove(&l.snapshot_key);
                if matches!(self.db.diff_id_users(&l.diff_id), Ok(0)) {
                    let _ = crate::remove::delete_blob(&self.content, &l.diff_id);
                }
            }
        }
    }

    /// Unpacks one layer on top of `parent` into an `extract-*` snapshot while storing the tar
    /// as a blob, then commits it under its chain ID (or drops it if that layer exists).
    /// Caller holds the state lock.
    pub(crate) fn add_layer(&self, parent: Option<&LayerRow>, tar: &mut dyn Read) -> Result<LayerRow, Error> {
        let x = self.unpack_layer(parent, tar)?;
        self.commit_layer(parent, x)
    }

    /// The unlocked half of [`ImageService::add_layer`]: unpacks the tar into a new
    /// `extract-*` snapshot on top of `parent` and stores it as a blob. Needs no state lock
    /// (the extract key is unique), so a pull unpacks while other image operations go on.
    pub(crate) fn unpack_layer(
        &self,
        parent: Option<&LayerRow>,
        tar: &mut dyn Read,
    ) -> Result<Extracted, Error> {
        let key = format!(
            "extract-{}-{}",
            std::process::id(),
            EXTRACT_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        self.snapshots
            .prepare(&key, parent.map(|p| p.snapshot_key.as_str()))?;
        let result = (|| -> Result<Extracted, Error> {
            let upper = self.snapshots.upper_dir(&key)?;
            // apply_layer hashes the stream it reads (the diff ID): the blob needs no hash of its own.
            let mut blob = self.content.writer_hashed_by_caller()?;
            let (diff_id, size) = apply_layer(
                &upper,
                Tee {
                    inner: tar,
                    out: &mut blob,
                },
            )?;
            blob.commit(Some(&diff_id))?;
            berth_sys::failpoint::hit("image.layer.unpacked");
            Ok(Extracted {
                key: key.clone(),
                diff_id: diff_id.to_string(),
                size,
            })
        })();
        if result.is_err() {
            let _ = self.snapshots.remove(&key);
        }
        result
    }

    /// The locked half: commits an unpacked layer under its chain ID, or drops it when that
    /// layer exists already. Caller holds the state lock.
    pub(crate) fn commit_layer(&self, parent: Option<&LayerRow>, x: Extracted) -> Result<LayerRow, Error> {
        let chain = chain_id(parent.map(|p| p.chain_id.as_str()), &x.diff_id);
        let committed = if self.snapshots.stat(&chain).is_ok() {
            self.snapshots.remove(&x.key)
        } else {
            self.snapshots.commit(&chain, &x.key)
        };
        if let Err(e) = committed {
            let _ = self.snapshots.remove(&x.key);
            return Err(e.into());
        }
        berth_sys::failpoint::hit("image.layer.committed");
        Ok(LayerRow {
            snapshot_key: chain.clone(),
            chain_id: chain,
            diff_id: x.diff_id,
            parent_chain_id: parent.map(|p| p.chain_id.clone()),
            size: x.size as i64,
        })
    }

    /// Installs a built-in image if `reference` names one (`hello-world`, in any normalised
    /// form of `docker.io/library/hello-world:latest`). Idempotent. Returns its ID and whether
    /// this call created it (false: it was there already), or `None` if the reference is not
    /// built in.
    pub fn install_builtin(&self, reference: &str) -> Result<Option<(String, bool)>, Error> {
        let r = Reference::parse(reference)?;
        if r.to_string() != "docker.io/library/hello-world:latest" {
            return Ok(None);
        }
        let tag = r.to_string();
        let (config, tar) = hello_world();
        let mut reader: &[u8] = &tar;
        // Already there (same content → same ID): only make sure the tag points at it.
        let expected_id = {
            let mut c = config.clone();
            let sum: [u8; 32] = Sha256::digest(&tar).into();
            c.rootfs.diff_ids = vec![Digest::from_sha256_bytes(&sum).to_string()];
            let sum: [u8; 32] = Sha256::digest(serde_json::to_vec(&c).expect("config serialises")).into();
            Digest::from_sha256_bytes(&sum).to_string()
        };
        if self.db.image(&expected_id)?.is_some() {
            if self.db.tag_target(&tag)?.as_deref() != Some(expected_id.as_str()) {
                let _g = self.lock();
                self.db.set_tag(&tag, &expected_id, &now_rfc3339())?;
            }
            return Ok(Some((expected_id, false)));
        }
        let id = self.create_image(None, config, &mut [&mut reader], Some(&tag))?;
        debug_assert_eq!(id, expected_id);
        Ok(Some((id, true)))
    }
}

/// The hello-world image: config and its one deterministic layer tar (`/hello`).
fn hello_world() -> (ConfigFile, Vec<u8>) {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_path("hello").expect("static path");
    h.set_size(HELLO.len() as u64);
    h.set_mode(0o755);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(BUILTIN_MTIME);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    b.append(&h, HELLO).expect("in-memory tar");
    let tar = b.into_inner().expect("in-memory tar");

    let mut cfg = ConfigFile::for_host(BUILTIN_CREATED.to_string());
    cfg.config.env = Some(vec![DEFAULT_PATH.to_string()]);
    cfg.config.cmd = Some(vec!["/hello".to_string()]);
    cfg.history = vec![
        History {
            created: BUILTIN_CREATED.into(),
            created_by: "COPY hello / # berth built-in".into(),
            ..Default::default()
        },
        History {
            created: BUILTIN_CREATED.into(),
            created_by: "CMD [\"/hello\"]".into(),
            empty_layer: true,
            ..Default::default()
        },
    ];
    (cfg, tar)
}
