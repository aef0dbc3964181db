//! Test images made here, so no test needs Docker Hub: a busybox-static root filesystem layer
//! (gzip) plus a small layer naming the image's platform, a config and a manifest (Docker schema 2
//! or OCI), indexes of several platforms, pushed to a registry with raw HTTP or written as an OCI
//! layout for `skopeo copy`. Everything is deterministic (mtime 0, root-owned), so the same
//! options give the same digests.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use sha2::{Digest as _, Sha256};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// `sha256:<hex>` of bytes.
pub fn sha256(b: &[u8]) -> String {
    let sum = Sha256::digest(b);
    let mut s = String::from("sha256:");
    for byte in sum {
        s.push_str(&format!("{byte:02x}"));
    }
    s
}

/// Content with its media type and digest.
#[derive(Debug, Clone)]
pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &str, bytes: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.to_string(),
            digest: sha256(&bytes),
            bytes,
        }
    }

    /// Its descriptor JSON (mediaType, digest, size).
    pub fn descriptor(&self) -> serde_json::Value {
        serde_json::json!({"mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len()})
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct Spec {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
    /// OCI media types instead of Docker's.
    pub oci: bool,
    /// Leave out the busybox layer (small images for protocol tests).
    pub without_busybox: bool,
    /// A further uncompressed layer holding this many pseudo-random bytes (for chunked uploads).
    pub big_layer: Option<usize>,
    /// Words written into the platform layer, to make otherwise equal images differ.
    pub salt: String,
}

impl Default for Spec {
    fn default() -> Spec {
        Spec {
            os: "linux".into(),
            arch: "amd64".into(),
            variant: None,
            oci: false,
            without_busybox: false,
            big_layer: None,
            salt: String::new(),
        }
    }
}

/// A single-platform image.
#[derive(Debug, Clone)]
pub struct TestImage {
    pub spec: Spec,
    pub layers: Vec<Blob>,
    /// Uncompressed digests of the layers.
    pub diff_ids: Vec<String>,
    pub config: Blob,
    pub manifest: Blob,
}

fn tar_of(entries: &[(&str, Entry)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, e) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        match e {
            Entry::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, path, std::io::empty()).unwrap();
            }
            Entry::File(data, mode) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, &data[..]).unwrap();
            }
            Entry::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, path, target).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

enum Entry {
    Dir,
    File(Vec<u8>, u32),
    Symlink(String),
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// `n` pseudo-random (xorshift) bytes: incompressible and deterministic.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

fn busybox_tar() -> Vec<u8> {
    let busybox =
        std::fs::read("/bin/busybox").expect("/bin/busybox missing: apt-get install busybox-static");
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    let applets: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|a| *a != "busybox")
        .map(str::to_string)
        .collect();
    let mut entries: Vec<(&str, Entry)> = vec![];
    for d in ["bin/", "etc/", "tmp/", "root/", "proc/", "sys/", "dev/", "home/"] {
        entries.push((d, Entry::Dir));
    }
    entries.push(("bin/busybox", Entry::File(busybox, 0o755)));
    let links: Vec<String> = applets.iter().map(|a| format!("bin/{a}")).collect();
    for l in &links {
        entries.push((l, Entry::Symlink("busybox".into())));
    }
    entries.push((
        "etc/passwd",
        Entry::File(
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n".to_vec(),
            0o644,
        ),
    ));
    entries.push((
        "etc/group",
        Entry::File(b"root:x:0:\nnogroup:x:65534:\n".to_vec(), 0o644),
    ));
    tar_of(&entries)
}

impl TestImage {
    /// linux/amd64, Docker media types, busybox.
    pub fn busybox() -> TestImage {
        TestImage::build(Spec::default())
    }

    /// A small image (no busybox) for `arch` and `variant`.
    pub fn small(arch: &str, variant: Option<&str>, oci: bool) -> TestImage {
        TestImage::build(Spec {
            arch: arch.into(),
            variant: variant.map(str::to_string),
            oci,
            without_busybox: true,
            ..Spec::default()
        })
    }

    pub fn build(spec: Spec) -> TestImage {
        let (layer_gzip, layer_tar, config_type, manifest_type) = if spec.oci {
            (OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_CONFIG, OCI_MANIFEST)
        } else {
            (
                DOCKER_LAYER_GZIP,
                "application/vnd.docker.image.rootfs.diff.tar",
                DOCKER_CONFIG,
                DOCKER_MANIFEST,
            )
        };
        let mut tars: Vec<(Vec<u8>, bool)> = vec![];
        if !spec.without_busybox {
            tars.push((busybox_tar(), true));
        }
        let platform = platform_string(&spec.os, &spec.arch, spec.variant.as_deref());
        tars.push((
            tar_of(&[
                ("etc/", Entry::Dir),
                (
                    "etc/berth-test-platform",
                    Entry::File(format!("{platform}\n{}\n", spec.salt).into_bytes(), 0o644),
                ),
            ]),
            true,
        ));
        if let Some(n) = spec.big_layer {
            tars.push((
                tar_of(&[(
                    "big.bin",
                    Entry::File(noise(n, 0x9e37_79b9_7f4a_7c15 ^ n as u64), 0o644),
                )]),
                false,
            ));
        }
        let mut layers = vec![];
        let mut diff_ids = vec![];
        for (t, compress) in tars {
            diff_ids.push(sha256(&t));
            layers.push(if compress {
                Blob::new(layer_gzip, gzip(&t))
            } else {
                Blob::new(layer_tar, t)
            });
        }
        let mut config = serde_json::json!({
            "architecture": spec.arch, "os": spec.os,
            "created": "1970-01-01T00:00:00Z",
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": layers.iter().map(|_| serde_json::json!({"created": "1970-01-01T00:00:00Z", "created_by": "berth-testkit"})).collect::<Vec<_>>(),
        });
        if let Some(v) = &spec.variant {
            config["variant"] = v.clone().into();
        }
        let config = Blob::new(config_type, serde_json::to_vec(&config).unwrap());
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": manifest_type,
            "config": config.descriptor(),
            "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
        });
        let manifest = Blob::new(manifest_type, serde_json::to_vec_pretty(&manifest).unwrap());
        TestImage {
            spec,
            layers,
            diff_ids,
            config,
            manifest,
        }
    }

    /// What to upload: layers, config, then the manifest.
    pub fn pushable(&self) -> Pushable {
        let mut blobs = self.layers.clone();
        blobs.push(self.config.clone());
        Pushable {
            blobs,
            children: vec![],
            top: self.manifest.clone(),
        }
    }

    /// The platform as `os/arch[/variant]`.
    pub fn platform(&self) -> String {
        platform_string(&self.spec.os, &self.spec.arch, self.spec.variant.as_deref())
    }
}

fn platform_string(os: &str, arch: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    }
}

/// A manifest list (Docker) or index (OCI) of images.
#[derive(Debug, Clone)]
pub struct TestIndex {
    pub images: Vec<TestImage>,
    pub index: Blob,
}

impl TestIndex {
    pub fn new(images: Vec<TestImage>, oci: bool) -> TestIndex {
        let media_type = if oci { OCI_INDEX } else { DOCKER_LIST };
        let manifests: Vec<serde_json::Value> = images
            .iter()
            .map(|i| {
                let mut d = i.manifest.descriptor();
                let mut p = serde_json::json!({"os": i.spec.os, "architecture": i.spec.arch});
                if let Some(v) = &i.spec.variant {
                    p["variant"] = v.clone().into();
                }
                d["platform"] = p;
                d
            })
            .collect();
        let index = serde_json::json!({"schemaVersion": 2, "mediaType": media_type, "manifests": manifests});
        TestIndex {
            images,
            index: Blob::new(media_type, serde_json::to_vec_pretty(&index).unwrap()),
        }
    }

    pub fn pushable(&self) -> Pushable {
        let mut blobs = vec![];
        for i in &self.images {
            blobs.extend(i.layers.iter().cloned());
            blobs.push(i.config.clone());
        }
        Pushable {
            blobs,
            children: self.images.iter().map(|i| i.manifest.clone()).collect(),
            top: self.index.clone(),
        }
    }
}

/// Blobs, child manifests (pushed by digest) and the top manifest (pushed by the reference).
#[derive(Debug, Clone)]
pub struct Pushable {
    pub blobs: Vec<Blob>,
    pub children: Vec<Blob>,
    pub top: Blob,
}

fn path_of(location: &str) -> String {
    match location.split_once("://") {
        Some((_, rest)) => rest
            .find('/')
            .map(|i| rest[i..].to_string())
            .unwrap_or_else(|| "/".into()),
        None => location.to_string(),
    }
}

impl Pushable {
    /// Pushes with raw HTTP to a plain-http registry at `addr`: every blob monolithically (POST,
    /// PUT ?digest=), the child manifests by digest, the top manifest as `reference`.
    pub fn push(&self, addr: SocketAddr, repo: &str, reference: &str, authorization: Option<&str>) {
        let auth: Vec<(&str, &str)> = authorization
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        for b in &self.blobs {
            let m = crate::http::request(addr, "POST", &format!("/v2/{repo}/blobs/uploads/"), &auth, b"")
                .unwrap();
            assert_eq!(m.status(), 202, "starting an upload to {repo}: {m:?}");
            let loc = path_of(m.header("location").expect("upload Location"));
            let sep = if loc.contains('?') { '&' } else { '?' };
            let mut h = auth.clone();
            h.push(("Content-Type", "application/octet-stream"));
            let m = crate::http::request(
                addr,
                "PUT",
                &format!("{loc}{sep}digest={}", b.digest),
                &h,
                &b.bytes,
            )
            .unwrap();
            assert_eq!(m.status(), 201, "uploading {} to {repo}: {m:?}", b.digest);
        }
        for (m, r) in self
            .children
            .iter()
            .map(|c| (c, c.digest.as_str()))
            .chain([(&self.top, reference)])
        {
            let mut h = auth.clone();
            h.push(("Content-Type", &m.media_type));
            let resp = crate::http::request(addr, "PUT", &format!("/v2/{repo}/manifests/{r}"), &h, &m.bytes)
                .unwrap();
            assert_eq!(resp.status(), 201, "putting manifest {r} to {repo}: {resp:?}");
        }
    }

    /// Writes an OCI image layout in `dir` with the top manifest tagged `tag` (for `skopeo copy
    /// oci:DIR:TAG …`).
    pub fn write_oci_layout(&self, dir: &Path, tag: &str) {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        for b in self.blobs.iter().chain(&self.children).chain([&self.top]) {
            std::fs::write(blobs.join(&b.digest["sha256:".len()..]), &b.bytes).unwrap();
        }
        let mut d = self.top.descriptor();
        d["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [d]});
        std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    }
}

/// Runs `skopeo` with args, returning stdout; panics with stderr on failure.
pub fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo missing: apt-get install skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
