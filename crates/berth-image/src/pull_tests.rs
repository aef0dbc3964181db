//! The store's side of pull and push: streaming layers in, "Already exists", failures that leave
//! nothing, repository digests, and push's deterministic compression.

use std::io::{Read, Write};

use berth_meta::BlobSource;

use super::tests::{env, never, rootfs_tar};
use super::*;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipped: requires root");
            return;
        }
    };
}

fn sha(b: &[u8]) -> String {
    use sha2::Digest as _;
    let sum: [u8; 32] = sha2::Sha256::digest(b).into();
    Digest::from_sha256_bytes(&sum).to_string()
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    w.write_all(b).unwrap();
    w.finish().unwrap()
}

/// An image config for `layers` (uncompressed tars).
fn config_for(layers: &[&[u8]]) -> Vec<u8> {
    let mut c = ConfigFile::for_host("2026-01-01T00:00:00Z".into());
    c.config.cmd = Some(vec!["sh".into()]);
    c.rootfs.diff_ids = layers.iter().map(|l| sha(l)).collect();
    serde_json::to_vec(&c).unwrap()
}

fn source(blob: &[u8], diff: &[u8]) -> BlobSource {
    BlobSource {
        digest: sha(blob),
        repository: "127.0.0.1:5000/test".into(),
        diff_id: sha(diff),
        media_type: push::LAYER_GZIP.into(),
        size: blob.len() as i64,
    }
}

#[test]
fn a_pulled_image_streams_in_and_a_second_pull_finds_its_layers() {
    require_root!();
    let e = env();
    let base = rootfs_tar(&[("bin/x", b"base")]);
    let top = rootfs_tar(&[("etc/y", b"top")]);
    let config = config_for(&[&base, &top]);
    let (gz_base, gz_top) = (gzip(&base), gzip(&top));
    let mut plan = e.svc.pull_plan(&config).unwrap();
    assert!(plan.layers.iter().all(|l| !l.present));
    let mut seen = 0;
    e.svc
        .pull_layer(&mut plan, 0, &mut &gz_base[..], &mut |n| seen = n)
        .unwrap();
    assert_eq!(seen, gz_base.len() as u64, "progress counts the blob bytes");
    e.svc
        .pull_layer(&mut plan, 1, &mut &top[..], &mut |_| {})
        .unwrap(); // uncompressed works too
    let id = e
        .svc
        .pull_commit(
            plan,
            &["127.0.0.1:5000/test:1".into()],
            &["127.0.0.1:5000/test@sha256:".to_string() + &"a".repeat(64)],
            &[source(&gz_base, &base), source(&gz_top, &top)],
        )
        .unwrap();
    assert_eq!(id, sha(&config), "the image ID is the config's digest");
    assert_eq!(e.svc.resolve("127.0.0.1:5000/test:1").unwrap().id, id);
    let by_digest = format!("127.0.0.1:5000/test@sha256:{}", "a".repeat(64));
    assert_eq!(e.svc.resolve(&by_digest).unwrap().id, id);
    assert_eq!(
        e.svc.inspect(&id).unwrap().repo_digests.unwrap(),
        vec![by_digest.clone()]
    );
    assert_eq!(e.db.source_diff_id(&sha(&gz_top)).unwrap(), Some(sha(&top)));
    // The same image again: everything is here.
    let plan = e.svc.pull_plan(&config).unwrap();
    assert!(plan.layers.iter().all(|l| l.present));
    drop(plan);
    // A different image on the same base: the base is here, the top is not.
    let other = rootfs_tar(&[("etc/z", b"other")]);
    let plan = e.svc.pull_plan(&config_for(&[&base, &other])).unwrap();
    assert_eq!(
        plan.layers.iter().map(|l| l.present).collect::<Vec<_>>(),
        vec![true, false]
    );
    drop(plan);
    assert!(e
        .svc
        .check(CheckOptions {
            verify_blobs: true,
            repair: false
        })
        .unwrap()
        .is_empty());
    // rmi by digest reference untags it, then the tag deletes the image.
    let items = e.svc.remove(&by_digest, false, &never).unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    e.svc.remove("127.0.0.1:5000/test:1", false, &never).unwrap();
    assert!(e.db.images().unwrap().is_empty());
}

#[test]
fn a_failed_pull_leaves_the_store_as_it_was() {
    require_root!();
    let e = env();
    let base = rootfs_tar(&[("bin/x", b"base")]);
    let top = rootfs_tar(&[("etc/y", &[7u8; 5000])]);
    let config = config_for(&[&base, &top]);
    // Truncated second layer.
    let mut plan = e.svc.pull_plan(&config).unwrap();
    e.svc
        .pull_layer(&mut plan, 0, &mut &gzip(&base)[..], &mut |_| {})
        .unwrap();
    let gz = gzip(&top);
    assert!(e
        .svc
        .pull_layer(&mut plan, 1, &mut &gz[..gz.len() / 2], &mut |_| {})
        .is_err());
    drop(plan);
    assert!(
        e.svc.snapshots.list().unwrap().is_empty(),
        "the first layer went with the failure"
    );
    assert!(e.svc.content.list().unwrap().is_empty());
    // A layer whose content is not what the config says.
    let mut plan = e.svc.pull_plan(&config).unwrap();
    let err = e
        .svc
        .pull_layer(&mut plan, 0, &mut &gzip(&top)[..], &mut |_| {})
        .unwrap_err();
    assert!(err.to_string().contains("does not match its config"), "{err}");
    drop(plan);
    assert!(e.svc.snapshots.list().unwrap().is_empty());
    assert!(e.svc.content.list().unwrap().is_empty());
    // A stream whose reader fails at its end (the registry's digest check) fails the layer.
    struct FailAtEof<'a>(&'a [u8]);
    impl Read for FailAtEof<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Err(std::io::Error::other("digest mismatch"));
            }
            let n = self.0.read(buf)?;
            Ok(n)
        }
    }
    let gz = gzip(&base);
    let mut plan = e.svc.pull_plan(&config).unwrap();
    assert!(e
        .svc
        .pull_layer(&mut plan, 0, &mut FailAtEof(&gz), &mut |_| {})
        .is_err());
    drop(plan);
    assert!(e.svc.snapshots.list().unwrap().is_empty(), "the check at EOF ran");
    assert!(e.db.images().unwrap().is_empty());
}

#[test]
fn a_layer_an_rmi_removes_mid_pull_stays_for_the_pull() {
    require_root!();
    let e = env();
    let base = rootfs_tar(&[("bin/x", b"base")]);
    let old = e.svc.import(&mut &base[..], &ImportOptions::default()).unwrap();
    let top = rootfs_tar(&[("etc/y", b"top")]);
    let config = config_for(&[&base, &top]);
    let mut plan = e.svc.pull_plan(&config).unwrap();
    assert!(plan.layers[0].present);
    // The only image using the base goes while the pull runs.
    e.svc.remove(&old, true, &never).unwrap();
    e.svc
        .pull_layer(&mut plan, 1, &mut &gzip(&top)[..], &mut |_| {})
        .unwrap();
    let id = e.svc.pull_commit(plan, &["x:1".into()], &[], &[]).unwrap();
    let c = e
        .svc
        .check(CheckOptions {
            verify_blobs: true,
            repair: false,
        })
        .unwrap();
    assert!(c.is_empty(), "{c:#?}");
    e.svc.prepare_rootfs(&id, "ctr", &[]).unwrap();
}

#[test]
fn push_compresses_deterministically_and_records_where_layers_went() {
    require_root!();
    let e = env();
    let tar = rootfs_tar(&[("bin/x", &[3u8; 10_000])]);
    let id = e
        .svc
        .import(
            &mut &tar[..],
            &ImportOptions {
                repo_tag: Some("127.0.0.1:5000/p:1".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let plan = e.svc.push_plan("127.0.0.1:5000/p:1").unwrap();
    assert_eq!(plan.id, id);
    assert_eq!(sha(&plan.config), id);
    assert_eq!(plan.layers.len(), 1);
    let a = e.svc.compress_layer(&plan.layers[0].diff_id).unwrap();
    let b = e.svc.compress_layer(&plan.layers[0].diff_id).unwrap();
    assert_eq!(a.digest, b.digest, "the same tar always gives the same blob");
    let mut bytes = Vec::new();
    a.open().unwrap().read_to_end(&mut bytes).unwrap();
    assert_eq!(sha(&bytes), a.digest.to_string());
    assert_eq!(bytes.len() as u64, a.size);
    let mut un = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_end(&mut un)
        .unwrap();
    assert_eq!(un, tar);
    let path = a.path.clone();
    drop(a);
    assert!(!path.exists(), "the temporary blob goes with its handle");
    let src = BlobSource {
        digest: b.digest.to_string(),
        repository: "127.0.0.1:5000/p".into(),
        diff_id: plan.layers[0].diff_id.clone(),
        media_type: push::LAYER_GZIP.into(),
        size: b.size as i64,
    };
    let repo_digest = format!("127.0.0.1:5000/p@sha256:{}", "b".repeat(64));
    e.svc
        .record_push(&id, &repo_digest, std::slice::from_ref(&src))
        .unwrap();
    assert_eq!(e.svc.push_plan(&id).unwrap().layers[0].sources, vec![src]);
    assert_eq!(e.svc.resolve(&repo_digest).unwrap().id, id);
    assert_eq!(
        e.svc.repository_tags("127.0.0.1:5000/p").unwrap(),
        vec![("1".to_string(), id)]
    );
}
